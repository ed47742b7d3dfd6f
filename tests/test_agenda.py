"""The meeting's agenda (vbhc.agenda) from the stored improvement cycle, without Streamlit: what is on it for a unit,
targets judged against the stored result, the versions an edit is based on, and the workbook import by sheet."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from tests.registry_files import store_units
from tests.xlsx_parts import sheet_renamed
from vbhc import agenda, improvement, minutes
from vbhc.access import Role, Scope, Viewer
from vbhc.i18n import t
from vbhc.improvement import ActionStatus, Explanation, Flag, ImprovementError, Rule, TargetKind
from vbhc.improvement_sheets import SheetRefused, export_actions

CONDITION = "colorectal_cancer"
INDICATOR = "anastomotic_leak"
CARE = Viewer("care@example.org", "Care", (Scope(Role.CARE_TEAM, frozenset({CONDITION})),))
QUALITY = Viewer("quality@example.org", "Quality", (Scope(Role.QUALITY),))
MANAGER = Viewer("manager@example.org", "Manager", (Scope(Role.MANAGER, hospitals=frozenset({"H01"})),))


def flag(unit: str) -> Flag:
    return Flag(unit, INDICATOR, Rule.FUNNEL_998, "worse", 0.2)


@pytest.fixture
def planted(sqlite_engine):
    """Two signals (H01 explained, H02 new), a team goal, a norm, an overdue and a finished action."""
    engine = store_units(sqlite_engine)
    improvement.record_detection(engine, "import", CONDITION, "hospital", "1-1", [flag("H01"), flag("H02")])
    h01 = improvement.signals(engine, CARE, CONDITION, unit="H01")[0]
    improvement.explain_signal(engine, CARE, h01.item_id, 1, Explanation.REAL, "New stapler")
    improvement.set_target(engine, CARE, CONDITION, INDICATOR, 0.10, valid_from=dt.date(2026, 1, 1))
    improvement.set_target(
        engine,
        QUALITY,
        CONDITION,
        "mortality_30d",
        0.03,
        kind=TargetKind.EXTERNAL_NORM,
        source="DICA 2025",
        valid_from=dt.date(2026, 1, 1),
    )
    start = dt.date(2026, 1, 1)
    late = improvement.create_action(engine, CARE, CONDITION, "Prehabilitation", "nurse", start, start, unit="H01")
    done = improvement.create_action(engine, CARE, CONDITION, "Training", "surgeon", start, start)
    improvement.update_action(engine, CARE, done.item_id, 1, status=ActionStatus.DONE)
    improvement.create_action(engine, CARE, CONDITION, "Elsewhere", "surgeon", start, start, unit="H02")
    return engine, h01, late


def test_the_agenda_of_a_unit(planted):
    engine, h01, late = planted
    today = dt.date(2026, 6, 1)
    values = {INDICATOR: 0.12, "mortality_30d": 0.02}
    found = agenda.meeting_agenda(engine, CARE, CONDITION, dt.date(2000, 1, 1), unit="H01", values=values, today=today)
    assert [s.unit for s in found.new_signals] == ["H01"]  # H02's signal is another unit's
    assert [(s.unit, s.status, s.explanation_text) for s in found.open_signals] == [("H01", "explained", "New stapler")]
    assert [s.item_id for s in found.decidable] == [h01.item_id]
    assert found.overdue.actions and [a.item_id for a in found.overdue.actions] == [late.item_id]
    assert [a.title for a in found.actions] == ["Prehabilitation", "Training"]  # open first, other units left out
    met = {r.target.indicator: (r.value, r.met) for r in found.targets}
    assert met == {INDICATOR: (0.12, False), "mortality_30d": (0.02, True)}
    assert (found.may_edit, found.may_set_norms, found.may_export) == (True, False, True)
    assert found.versions[h01.item_id] == 2
    # after the meeting nothing is new; the open items stay on the agenda
    after = dt.date.today() + dt.timedelta(days=1)  # the signals were detected today
    later = agenda.meeting_agenda(engine, CARE, CONDITION, after, unit="H01", today=today)
    assert later.new_signals == [] and len(later.open_signals) == 1
    assert all(r.met is None for r in later.targets)  # no stored values: the result does not tell


def test_a_goal_followed_by_a_later_one_is_off_the_agenda_and_the_report(planted):
    """Before: the meeting's agenda and the report's follow-up listed a team goal followed by a new one from a
    later date beside it, judged twice ('not met' against the old 10%, 'met' against the new 15%); the charts
    draw the new goal alone, and so do they now."""
    from vbhc.reports.followup import read_follow_up

    engine, _, _ = planted
    today = dt.date(2026, 6, 1)
    improvement.set_target(engine, CARE, CONDITION, INDICATOR, 0.15, valid_from=dt.date(2026, 3, 1))
    found = agenda.meeting_agenda(engine, CARE, CONDITION, dt.date(2000, 1, 1), unit="H01", values={INDICATOR: 0.12})
    goals = [(r.target.value, r.met) for r in found.targets if r.target.indicator == INDICATOR]
    assert goals == [(0.15, True)]
    follow = read_follow_up(engine, CARE, [CONDITION], today=today)[CONDITION]
    assert [t.value for t in follow.targets if t.indicator == INDICATOR] == [0.15]


def test_a_department_sees_its_hospitals_signals_and_a_manager_the_status_only(planted):
    engine, *_ = planted
    department = agenda.meeting_agenda(engine, QUALITY, CONDITION, dt.date(2000, 1, 1), unit="H01/SUR")
    assert {s.unit for s in department.open_signals} == {"H01"}
    everything = agenda.meeting_agenda(engine, QUALITY, CONDITION, dt.date(2000, 1, 1))
    assert {s.unit for s in everything.open_signals} == {"H01", "H02"} and everything.may_set_norms
    manager = agenda.meeting_agenda(engine, MANAGER, CONDITION, dt.date(2000, 1, 1), unit="H01")
    assert (manager.may_edit, manager.may_export) == (False, False)
    assert [s.explanation_text for s in manager.open_signals] == [""]
    assert all(a.expected_effect == "" for a in manager.actions)


def test_unit_values_take_the_adjusted_value_else_the_crude_one():
    table = pd.DataFrame(
        {
            "unit": ["H01", "H01", "H01", "H02"],
            "indicator": ["a", "b", "c", "a"],
            "adjusted_value": [0.1, float("nan"), None, 0.5],
            "crude_value": [0.2, 0.3, None, 0.6],
        }
    )
    assert agenda.unit_values(table, "H01") == {"a": 0.1, "b": 0.3}
    assert agenda.unit_values(table, None) == {} and agenda.unit_values(None, "H01") == {}


def test_values_are_typed_as_shown():
    assert agenda.to_shown(0.08, "proportion") == pytest.approx(8)
    assert agenda.from_shown(8, "proportion") == pytest.approx(0.08)
    assert agenda.from_shown(42.0, "prom_score") == 42.0


def test_an_error_names_the_field_as_the_form_does():
    error = ImprovementError("empty", field="explanation_text")
    assert agenda.error_text(error, "nl") == "Conclusie van het team moet worden ingevuld." or (
        "Conclusie van het team" in agenda.error_text(error, "nl")
    )
    assert "explanation_text" not in agenda.error_text(error, "en")
    assert agenda.error_text(ImprovementError("empty", field="unknown_field"), "en").startswith("unknown_field")


def test_a_workbook_is_imported_by_its_sheet(planted):
    engine, *_ = planted
    kind, done = agenda.import_workbook(engine, CARE, export_actions(engine, CARE, CONDITION), "actions.xlsx")
    assert kind == "actions" and done.unchanged == 3
    with pytest.raises(SheetRefused, match="not a readable XLSX workbook with a sheet targets"):
        agenda.import_workbook(engine, CARE, b"not a workbook", "plan.xlsx")
    # the sheet actions written with Excel's codes (the tab reads actions) was taken for a targets workbook
    coded = sheet_renamed(export_actions(engine, CARE, CONDITION), "actions", "_x0061_ctions")
    kind, done = agenda.import_workbook(engine, CARE, coded, "actions.xlsx")
    assert kind == "actions" and done.unchanged == 3


def test_a_zip_bomb_is_refused_before_openpyxl_unpacks_it(planted, monkeypatch):
    """The meeting page's upload opened the workbook (openpyxl reads its shared strings on opening) to see which
    sheet it has, before the ZIP's sizes were checked: a bomb was unpacked first. Now nothing is opened."""
    import io
    import zipfile

    import openpyxl

    engine, *_ = planted
    data = io.BytesIO(export_actions(engine, CARE, CONDITION))
    with zipfile.ZipFile(data, "a", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        zf.writestr("xl/media/bomb.bin", b"\x00" * (8 * 1024 * 1024))  # 8 MB of zeros packs to ~8 kB
    opened = []
    monkeypatch.setattr(openpyxl, "load_workbook", lambda *a, **k: opened.append(a))
    with pytest.raises(SheetRefused, match="not a readable XLSX workbook"):
        agenda.import_workbook(engine, CARE, data.getvalue(), "actions.xlsx")
    assert opened == []


def test_items_are_named_apart_by_what_differs_never_by_their_ids():
    """Two actions of one title are told apart by the first qualifier that differs between them (the unit, else
    the owner), the same ones still alike by a number; a unique title stays as it is."""
    from vbhc.agenda import distinct_labels

    items = [
        ("Audit", "H01", "nurse"),
        ("Audit", "H01", "surgeon"),
        ("Call", "H01", "nurse"),
        ("Audit", "H02", "nurse"),
        ("Audit", "H02", "nurse"),
    ]
    labels = distinct_labels(items, lambda i: i[0], [lambda i: i[1], lambda i: i[2]])
    assert labels == ["Audit · H01 · nurse", "Audit · H01 · surgeon", "Call", "Audit · H02 (1)", "Audit · H02 (2)"]
    assert distinct_labels(items[:1], lambda i: i[0], []) == ["Audit"]


def test_the_agenda_says_whether_its_date_is_a_meeting(planted):
    """The meeting page read "vorig overleg 1 dec 2026" when no meeting was recorded: the date was only the first of
    the month. The agenda tells the page whether `since` is a meeting (named by the viewer, or the last recorded)."""
    engine, *_ = planted
    today = dt.date(2026, 6, 15)
    first = agenda.meeting_agenda(engine, CARE, CONDITION, unit="H01", today=today)
    assert (first.since, first.since_meeting) == (dt.date(2026, 6, 1), False)
    named = agenda.meeting_agenda(engine, CARE, CONDITION, dt.date(2026, 5, 20), unit="H01", today=today)
    assert (named.since, named.since_meeting) == (dt.date(2026, 5, 20), True)
    minutes.record_meeting(engine, CARE, CONDITION, dt.date(2026, 6, 10), ["surgeon"], [], unit="H01", today=today)
    held = agenda.meeting_agenda(engine, CARE, CONDITION, unit="H01", today=today)
    assert (held.since, held.since_meeting) == (dt.date(2026, 6, 10), True)
    assert "nog geen overleg vastgelegd" in t("agenda.intro_no_meeting", "nl", condition="c", unit="u", date="d")


def test_without_a_meeting_the_agenda_starts_at_the_latest_period_with_data(planted):
    """With no meeting recorded or chosen the agenda took the first of this month, which lies after a registry's
    last import more often than not: "new signals since 1 Dec 2026: nothing to discuss" on the demo. Now, as the
    pages' "since the last meeting" (vbhc.meeting.since_date), the start of the latest comparison period of the
    data; a recorded meeting still comes first."""
    engine, *_ = planted
    today = dt.date(2026, 12, 5)
    until = pd.Timestamp("2025-12-31")
    found = agenda.meeting_agenda(engine, CARE, CONDITION, unit="H01", today=today, until=until)
    assert (found.since, found.since_meeting) == (dt.date(2025, 10, 1), False)
    halves = agenda.meeting_agenda(
        engine, CARE, CONDITION, unit="H01", today=today, until=until, comparison="half_year"
    )
    assert halves.since == dt.date(2025, 7, 1)
    minutes.record_meeting(engine, CARE, CONDITION, dt.date(2025, 11, 10), ["surgeon"], [], unit="H01", today=today)
    held = agenda.meeting_agenda(engine, CARE, CONDITION, unit="H01", today=today, until=until)
    assert (held.since, held.since_meeting) == (dt.date(2025, 11, 10), True)
