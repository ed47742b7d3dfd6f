"""Privacy probes of the meeting page's items, by role, called in vbhc directly: an improvement action or target
of another hospital's unit edited by id (a form posted with its id) by a viewer who may not edit it is refused as
such, whatever version the form names. An edit based on an old version was refused as an edit conflict first,
whose message names the item's last editor (a person's e-mail address) and time, and whose `current` carries the
item's free texts (title, expected effect): a manager or a care team limited to H01 read them of H02's action."""

from __future__ import annotations

import datetime as dt
import shutil

import pytest
from sqlalchemy import create_engine

from tests.registry_files import store_units
from vbhc import audit, improvement
from vbhc.access import AccessDenied, Role, Scope, Viewer
from vbhc.improvement import EditConflict

CONDITION = "colorectal_cancer"
SECRET, EDITOR = "H02 secret plan for the leak rate", "quality@h02.example"
QUALITY = Viewer(EDITOR, "Quality", (Scope(Role.QUALITY),))
CARE_H01 = Viewer("care-h01@example.org", "", (Scope(Role.CARE_TEAM, frozenset({CONDITION}), frozenset({"H01"})),))
MANAGER = Viewer("manager@example.org", "", (Scope(Role.MANAGER, frozenset({CONDITION}), frozenset({"H01"})),))
ADMIN = Viewer("admin@example.org", "", (Scope(Role.ADMIN),))
ROLES = pytest.mark.parametrize("viewer", [CARE_H01, MANAGER, ADMIN], ids=["care_h01", "manager", "admin"])


@pytest.fixture
def engine(tmp_path, _sqlite_schema):
    """A registry of the units alone: a copy of the worker's migrated empty schema (tests/conftest.py; running
    every migration for each of these ~20 tests was most of their set-up)."""
    shutil.copyfile(_sqlite_schema, tmp_path / "meeting.db")
    eng = create_engine(f"sqlite:///{tmp_path / 'meeting.db'}")
    store_units(eng)
    return eng


def _h02_action(engine):
    start = dt.date(2026, 1, 5)
    action = improvement.create_action(
        engine, QUALITY, CONDITION, SECRET, "surgeon", start, start + dt.timedelta(days=60), unit="H02",
        expected_effect=SECRET,
    )  # fmt: skip
    return improvement.update_action(engine, QUALITY, action.item_id, action.version, status="in_progress")


def _refused_without_its_texts(call):
    with pytest.raises(Exception) as caught:
        call()
    error = caught.value
    assert not isinstance(error, EditConflict), "an edit conflict named the item's editor and texts"
    assert isinstance(error, AccessDenied | improvement.ItemNotFound)
    for lang in ("en", "nl"):
        shown = str(error) + (error.message(lang) if hasattr(error, "message") else "")
        assert EDITOR not in shown and SECRET not in shown


@ROLES
@pytest.mark.parametrize("based_on", [1, 2, 7], ids=["stale", "current", "future"])
def test_another_hospitals_action_edited_by_id_is_refused_naming_nothing_of_it(engine, viewer, based_on):
    action = _h02_action(engine)
    _refused_without_its_texts(
        lambda: improvement.update_action(engine, viewer, action.item_id, based_on, title="taken over")
    )
    assert improvement.current_version(engine, QUALITY, action.item_id).version == 2  # nothing written


@ROLES
def test_another_hospitals_target_retired_by_id_with_an_old_version_is_refused(engine, viewer):
    target = improvement.set_target(engine, QUALITY, CONDITION, "anastomotic_leak", 0.05, unit="H02", source=SECRET)
    target = improvement.update_target(engine, QUALITY, target.item_id, target.version, value=0.04)
    _refused_without_its_texts(lambda: improvement.retire_target(engine, viewer, target.item_id, 1))


@ROLES
def test_a_refused_edit_by_id_is_in_the_audit_log(engine, viewer):
    action = _h02_action(engine)
    with pytest.raises(AccessDenied):
        improvement.update_action(engine, viewer, action.item_id, 1, title="taken over")
    log = audit.read(engine, action="denied")
    assert viewer.user_id in set(log["user_id"])


def test_the_team_that_may_edit_still_gets_the_conflict(engine):
    action = _h02_action(engine)
    with pytest.raises(EditConflict):
        improvement.update_action(engine, QUALITY, action.item_id, 1, title="late")


def _cells(content: bytes) -> str:
    import io

    from openpyxl import load_workbook

    book = load_workbook(io.BytesIO(content), read_only=True)
    return "\n".join(str(v) for ws in book.worksheets for row in ws.iter_rows(values_only=True) for v in row)


def test_the_actions_workbook_of_a_care_team_of_one_hospital_names_no_other_hospitals_people(engine):
    """The meeting page's actions download as a care team limited to H01: H02's action is listed status only, its
    expected effect and the person who last edited it (an e-mail address of H02) not."""
    _h02_action(engine)
    from vbhc.improvement_sheets import export_actions

    shown = _cells(export_actions(engine, CARE_H01, CONDITION))
    assert "in_progress" in shown or "H02" in shown  # the row is there
    assert shown.count(SECRET) == 1  # the title (its status), not the expected effect
    assert EDITOR not in shown


@pytest.mark.parametrize("viewer", [MANAGER, ADMIN], ids=["manager", "admin"])
def test_the_targets_and_actions_workbooks_are_refused_to_a_viewer_without_export(engine, viewer):
    from vbhc.improvement_sheets import export_actions, export_targets

    _h02_action(engine)
    for export in (export_actions, export_targets):
        with pytest.raises(AccessDenied):
            export(engine, viewer, CONDITION)


def test_another_hospitals_item_read_status_only_names_none_of_its_people(engine):
    """history() and actions() of H02's action for a care team limited to H01 (status only): the versions named
    who changed them, e-mail addresses of another hospital's people, which no page of its shows it."""
    action = _h02_action(engine)
    for item in [*improvement.history(engine, CARE_H01, action.item_id), *improvement.actions(engine, CARE_H01)]:
        assert EDITOR not in item.model_dump_json()
        assert SECRET not in item.expected_effect
    assert improvement.history(engine, QUALITY, action.item_id)[-1].changed_by == EDITOR


def test_since_the_last_meeting_gives_no_signal_judged_on_a_benchmark_the_managers_rows_withhold(engine):
    """Seven hospitals, 30-day mortality recorded only by H01 (the manager's) and H02, and H01's deaths up since the
    meeting: the manager's row withholds the benchmark and the model's figures (H02's alone, minus H01's own).
    The meeting's signals are computed once for every unit on those figures and shared by every viewer (the
    results store, ui.data.signals); the manager's "since the last meeting" said which H01 gained, judged against
    what its table withholds. It now gives none for that indicator; quality's view keeps them, and the manager
    keeps H01's own crude values per period."""
    import dataclasses

    import numpy as np
    import pandas as pd

    from tests.test_privacy_groups import INDICATOR, _registry
    from tests.test_privacy_groups import MANAGER as H01_MANAGER
    from vbhc import access, meeting
    from vbhc.indicators import compute_indicators

    data = _registry(7, seed=3)
    cycles = data.cycles.copy()
    cycles.loc[~cycles["hospital"].isin(["H01", "H02"]), INDICATOR] = np.nan
    cycles.loc[(cycles["hospital"] == "H01") & (pd.to_datetime(cycles["index_date"]) >= "2025-07-01"), INDICATOR] = 1.0
    full = compute_indicators(dataclasses.replace(data, cycles=cycles), "hospital")
    when = dt.date(2025, 7, 1)
    now, then = meeting.unit_signals(full), meeting.unit_signals(meeting.result_as_of(full, when), until=when)
    rows = access.indicator_rows(H01_MANAGER, full.table, engine=engine, record_view=False)
    assert bool(rows.loc[rows["unit"] == "H01", access.BENCHMARK_WITHHELD].iloc[0])
    seen = meeting.since_last_meeting(full, "H01", when, now=now, then=then).set_index("indicator")
    assert seen.loc[INDICATOR, "new_signals"], "quality's view has a new signal: the probe reads it"
    managers = dataclasses.replace(full, table=rows)
    shown = meeting.since_last_meeting(managers, "H01", when, now=now, then=then).set_index("indicator")
    assert shown.loc[INDICATOR, "new_signals"] == []
    assert shown.loc[INDICATOR, "current"] == seen.loc[INDICATOR, "current"] == 1.0
