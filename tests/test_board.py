"""The board's monthly review (vbhc.board) called directly for every role, on SQLite and PostgreSQL: counts per
condition team of open and overdue signals and actions, targets met / not met / without data, and nothing of a
unit a manager may not see."""

from __future__ import annotations

import datetime as dt
import json
from types import SimpleNamespace

import pandas as pd
import pytest

from tests.backends import sqlite_only
from tests.registry_files import write_csv, write_units
from vbhc import audit, improvement
from vbhc.access import AccessDenied, Role, Scope, Viewer
from vbhc.board import TeamStatus, board_review
from vbhc.improvement import ActionStatus, Explanation, Flag, Rule
from vbhc.ingest import import_files

OESO, HIP = "oesophageal_cancer", "hip_osteoarthritis"
DIVISION = "Snijdende specialismen"
QUALITY = Viewer("quality@example.org", "Quality", (Scope(Role.QUALITY),))
CARE = Viewer("care@example.org", "Care", (Scope(Role.CARE_TEAM, frozenset({OESO})),))
MANAGER = Viewer("manager@example.org", "Manager", (Scope(Role.MANAGER, hospitals=frozenset({"H01"})),))
ORT_MANAGER = Viewer("ort@example.org", "Ort", (Scope(Role.MANAGER, departments=frozenset({"H01/ORT"})),))
DIVISION_MANAGER = Viewer("div@example.org", "Div", (Scope(Role.MANAGER, divisions=frozenset({DIVISION})),))
NOBODY = Viewer("nobody@example.org", "Nobody")
START = dt.date(2026, 1, 1)
TODAY = dt.date.today() + dt.timedelta(days=60)  # every new signal is overdue by then (30 days to explain)


@pytest.fixture
def board(engine, tmp_path):
    """Two hospitals (H01 own), oesophageal cancer at SUR and hip at ORT, with improvement items of both."""
    cycles = [
        {"cycle_id": f"C{i}", "patient_id": f"P{i}x", "condition": cond, "hospital": hosp, "department": dept,
         "index_date": "2025-03-01", "treatment": treat, "age": "60", "sex": "F", "asa": "2", "charlson": "1",
         "bmi": "25.0", "stage": stage, "smoking": smoke}
        for i, (cond, hosp, dept, treat, stage, smoke) in enumerate(
            [
                (OESO, "H01", "SUR", "oesophagectomy", "II", ""),
                (OESO, "H02", "SUR", "oesophagectomy", "II", ""),
                (HIP, "H01", "ORT", "total_hip_arthroplasty", "", "never"),
                (HIP, "H02", "ORT", "total_hip_arthroplasty", "", "never"),
            ]
        )
    ]  # fmt: skip
    import_files([write_units(tmp_path / "units.csv"), write_csv(tmp_path / "care_cycles.csv", cycles)], engine)
    flags = [Flag(u, "mortality_30d", Rule.FUNNEL_998, "worse", 0.2) for u in ("H01", "H01/SUR", "H02")]
    improvement.record_detection(engine, "import", OESO, "hospital", "1-1", flags)
    explained = improvement.signals(engine, QUALITY, OESO, unit="H01/SUR")[0]
    improvement.explain_signal(engine, QUALITY, explained.item_id, 1, Explanation.CASE_MIX, "older patients")
    improvement.record_detection(engine, "import", HIP, "hospital", "1-1", [Flag("H01", "revision_1y", "spc", "worse")])
    late = improvement.create_action(engine, CARE, OESO, "Prehabilitation", "nurse", START, START, unit="H01")
    done = improvement.create_action(engine, CARE, OESO, "Checklist", "surgeon", START, START)
    improvement.update_action(engine, CARE, done.item_id, 1, status=ActionStatus.DONE)
    improvement.create_action(engine, CARE, OESO, "Audit", "surgeon", START, TODAY + dt.timedelta(days=30))
    improvement.create_action(engine, CARE, OESO, "Elsewhere", "surgeon", START, START, unit="H02")
    improvement.set_target(engine, CARE, OESO, "mortality_30d", 0.05, valid_from=START)  # met at H01
    improvement.set_target(engine, CARE, OESO, "anastomotic_leak", 0.10, valid_from=START)  # not met at H01
    improvement.set_target(engine, CARE, OESO, "radical_resection", 0.9, valid_from=START)  # no value: no data
    improvement.set_target(engine, CARE, OESO, "mortality_30d", 0.01, unit="H02", valid_from=START)
    improvement.set_target(engine, CARE, OESO, "severe_complication", 0.2, valid_from=TODAY + dt.timedelta(days=1))
    return engine, late


def results(condition: str, level: str):
    """Stored results as the board reads them: H01 and H02 at hospital level, only oesophageal cancer."""
    if condition != OESO or level != "hospital":
        return None
    table = pd.DataFrame(
        {
            "condition": OESO,
            "unit_level": "hospital",
            "unit": ["H01", "H01", "H02", "H02"],
            "hospital": ["H01", "H01", "H02", "H02"],
            "indicator": ["mortality_30d", "anastomotic_leak", "mortality_30d", "anastomotic_leak"],
            "kind": "proportion",
            "n": [120, 120, 90, 90],
            "adjusted_value": [0.04, 0.15, 0.03, 0.05],
            "crude_value": [0.04, 0.15, 0.03, 0.05],
        }
    )
    return SimpleNamespace(table=table)


def review(engine, viewer, **kwargs) -> dict[tuple[str, str], TeamStatus]:
    rows = board_review(engine, viewer, result_of=results, today=TODAY, **kwargs)
    return {(r.condition, r.hospital): r for r in rows}


def test_the_board_counts_per_condition_team_for_every_role(board):
    engine, late = board
    oeso_h01 = TeamStatus(DIVISION, OESO, "H01", 2, 1, 2, 1, 1, 1, 1)
    hip_h01 = TeamStatus(DIVISION, HIP, "H01", 1, 1, 0, 0, 0, 0, 0)

    # the quality directorate: the own hospital's teams by default, any hospital when asked
    assert review(engine, QUALITY) == {(OESO, "H01"): oeso_h01, (HIP, "H01"): hip_h01}
    assert oeso_h01.needs_attention
    h02 = review(engine, QUALITY, hospitals=["H02"])[(OESO, "H02")]
    # the actions and goals of every unit count for H02's team too; its own goal of 1% is not met
    assert (h02.open_signals, h02.open_actions, h02.targets_met, h02.targets_not_met, h02.targets_no_data) == (
        1,
        2,
        2,
        1,
        1,
    )

    # a care team: its own condition only
    assert review(engine, CARE) == {(OESO, "H01"): oeso_h01}

    # a manager of H01: the same status of the own teams, and another hospital never appears, even when asked
    assert review(engine, MANAGER) == {(OESO, "H01"): oeso_h01, (HIP, "H01"): hip_h01}
    assert set(review(engine, MANAGER, hospitals=["H01", "H02"])) == {(OESO, "H01"), (HIP, "H01")}
    # a manager of one department: the team that department treats, without the hospital-wide signal
    assert review(engine, ORT_MANAGER) == {(HIP, "H01"): TeamStatus(DIVISION, HIP, "H01")}
    # a manager of a division: its departments' items (the SUR signal, the actions and goals of every unit), not
    # the hospital-wide ones, and no hospital-wide value to judge a goal on
    by_division = review(engine, DIVISION_MANAGER)
    assert by_division[(OESO, "H01")] == TeamStatus(DIVISION, OESO, "H01", 1, 0, 1, 0, 0, 0, 3)

    # finishing the overdue action takes it off the board
    improvement.update_action(engine, CARE, late.item_id, 1, status=ActionStatus.DONE)
    after = review(engine, QUALITY)[(OESO, "H01")]
    assert (after.open_actions, after.overdue_actions) == (1, 0)

    # no role: refused and audited
    with pytest.raises(AccessDenied):
        board_review(engine, NOBODY)
    log = audit.read(engine)
    assert {"board"} <= {json.loads(d).get("what") for d in log["detail"]}
    assert (log["action"] == "denied").any()


def test_a_goal_followed_by_a_later_one_is_no_longer_judged(board):
    """Before: a team goal followed by a new goal from a later date (a new target, as the page's form and the
    workbook's new rows make it) stayed in force beside it, and the board judged both: H01's 30-day mortality
    counted once met (4% against the new 5%) and once not met (against the old 1%), where the charts draw the
    new goal alone. Goals of another unit or kind are still judged apart."""
    engine, _ = board
    before = review(engine, QUALITY)[(OESO, "H01")]
    improvement.set_target(engine, CARE, OESO, "mortality_30d", 0.01, valid_from=START - dt.timedelta(days=365))
    after = review(engine, QUALITY)[(OESO, "H01")]
    assert (after.targets_met, after.targets_not_met, after.targets_no_data) == (
        before.targets_met,
        before.targets_not_met,
        before.targets_no_data,
    )
    # the newest goal holds: one from a later date than the 5% goal (yet in force) takes its place
    improvement.set_target(engine, CARE, OESO, "mortality_30d", 0.02, valid_from=START + dt.timedelta(days=1))
    now = review(engine, QUALITY)[(OESO, "H01")]
    assert (now.targets_met, now.targets_not_met) == (before.targets_met - 1, before.targets_not_met + 1)


@sqlite_only  # the same reads as above; only the values are missing
def test_without_results_every_target_counts_as_no_data(board):
    engine, _ = board
    row = {(r.condition, r.hospital): r for r in board_review(engine, QUALITY, today=TODAY)}[(OESO, "H01")]
    assert (row.targets_met, row.targets_not_met, row.targets_no_data) == (0, 0, 3)


def test_a_care_team_of_another_hospital_gets_no_verdict_on_a_value_withheld_from_it(board):
    """A care team limited to H02 reads the board of the own hospital H01: its targets were judged (met / not met)
    on H01's values read through indicator_rows alone, withheld on the table on its own, not over the grid of
    periods the pages use (on the 2,000-cycle demo a care team of H03 got H01's three colorectal targets judged,
    all dates, where its pages withhold all three cells). Another hospital's cell is now judged only on the pages'
    table (vbhc.access.grid_masked), a cell it withholds counts as withheld, not as met or not met."""
    import numpy as np

    from vbhc.access import indicator_rows

    engine, _ = board
    h02 = Viewer("care-h02@example.org", "Care H02", (Scope(Role.CARE_TEAM, frozenset({OESO}), frozenset({"H02"})),))
    raw = review(engine, h02)[(OESO, "H01")]
    assert (raw.targets_met, raw.targets_not_met, raw.targets_withheld) == (0, 0, 2)  # was 1 met, 1 not met

    def pages(condition, level):  # the pages' table: H01's mortality withheld over the grid, its leak rate shown
        found = results(condition, level)
        if found is None:
            return None
        withheld = np.array([True, False, False, False])
        table = indicator_rows(h02, found.table, engine=engine, record_view=False, withheld=withheld)
        return SimpleNamespace(table=table)

    rows = board_review(engine, h02, result_of=pages, today=TODAY)
    seen = {(r.condition, r.hospital): r for r in rows}[(OESO, "H01")]
    assert (seen.targets_met, seen.targets_not_met, seen.targets_withheld, seen.targets_no_data) == (0, 1, 1, 1)
    # a viewer who sees every cell: judged as before
    assert review(engine, CARE)[(OESO, "H01")].targets_withheld == 0
