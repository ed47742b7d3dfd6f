"""The meeting record (vbhc.minutes) and its minutes as PDF and DOCX (vbhc.reports.minutes), without Streamlit:
who may record and read, nothing half-written or deleted, a recording that lands second is refused, the agenda's
"since the last meeting", and minutes in the chosen language without raw ids or None."""

from __future__ import annotations

import datetime as dt
import io
import re

import pytest
from sqlalchemy import func, select

from tests.registry_files import store_units
from vbhc import agenda, audit, improvement, minutes, models
from vbhc.access import AccessDenied, Role, Scope, Viewer
from vbhc.improvement import ActionStatus, EditConflict, Explanation, Flag, ImprovementError, ItemNotFound, Rule
from vbhc.minutes import Decided, ItemDecision, MinutesError, Section
from vbhc.reports.minutes import build_minutes_docx, build_minutes_pdf, export_minutes, minutes_content

CONDITION = "colorectal_cancer"
OTHER = "breast_cancer"
INDICATOR = "anastomotic_leak"
CARE = Viewer("care@example.org", "Care", (Scope(Role.CARE_TEAM, frozenset({CONDITION})),))
OTHER_CARE = Viewer("breast@example.org", "Care", (Scope(Role.CARE_TEAM, frozenset({OTHER})),))
QUALITY = Viewer("quality@example.org", "Quality", (Scope(Role.QUALITY),))
MANAGER = Viewer("manager@example.org", "Manager", (Scope(Role.MANAGER, hospitals=frozenset({"H01"})),))
MANAGER_H02 = Viewer("m2@example.org", "Manager", (Scope(Role.MANAGER, hospitals=frozenset({"H02"})),))
#: a care team limited to one hospital (tests/roles.py's care_h01)
CARE_H01 = Viewer(
    "care-h01@example.org", "Care H01", (Scope(Role.CARE_TEAM, frozenset({CONDITION}), frozenset({"H01"})),)
)
HELD = dt.date(2026, 3, 2)
RAW_ID = re.compile(r"\b[SATM]-[0-9a-f]{12}\b")


def _count(engine, model) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(model)).scalar_one()


@pytest.fixture
def items(sqlite_engine):
    """A signal of H01 (explained), a team goal and two actions (one open, one done)."""
    return _plant(sqlite_engine)


@pytest.fixture
def items_both(engine):
    """The same items on SQLite and on PostgreSQL (the record's unique keys and transactions on both)."""
    return _plant(engine)


def _plant(engine):
    store_units(engine)
    flag = Flag("H01", INDICATOR, Rule.FUNNEL_998, "worse", 0.2)
    improvement.record_detection(engine, "import", CONDITION, "hospital", "1-1", [flag])
    signal = improvement.signals(engine, CARE, CONDITION)[0]
    signal = improvement.explain_signal(engine, CARE, signal.item_id, 1, Explanation.REAL, "New stapler")
    goal = improvement.set_target(engine, CARE, CONDITION, INDICATOR, 0.10, valid_from=dt.date(2026, 1, 1))
    start = dt.date(2026, 1, 1)
    action = improvement.create_action(
        engine, CARE, CONDITION, "Prehabilitation", "nurse specialist", start, dt.date(2026, 6, 30), unit="H01"
    )
    done = improvement.create_action(engine, CARE, CONDITION, "Training", "surgeon", start, start)
    improvement.update_action(engine, CARE, done.item_id, 1, status=ActionStatus.DONE)
    return engine, signal, goal, action


def _decisions(signal, goal, action) -> list[Decided]:
    return [
        Decided(signal.item_id, ItemDecision.ACTION, "Start prehabilitation", Section.OPEN_SIGNAL),
        Decided(goal.item_id, ItemDecision.NOTED, "", Section.TARGET_NOT_MET),
        Decided(action.item_id, ItemDecision.DEFERRED, "Await the first quarter", Section.ACTION),
    ]


def test_a_care_team_records_its_meeting_and_a_correction_is_the_next_version(items_both):
    engine, signal, goal, action = items_both
    done = minutes.record_meeting(
        engine, CARE, CONDITION, HELD, ["care_team", "surgeon", " surgeon "], _decisions(signal, goal, action)
    )
    assert (done.version, done.record.roles, len(done.decisions)) == (1, ["care_team", "surgeon"], 3)
    assert done.decisions[0].item_version == signal.version  # the version the meeting saw
    # the same meeting recorded again from version 1: version 2; version 1 stays readable
    fixed = minutes.record_meeting(
        engine, CARE, CONDITION, HELD, ["care_team"], _decisions(signal, goal, action)[:1], based_on=1
    )
    assert (fixed.meeting_id, fixed.version) == (done.meeting_id, 2)
    assert [m.version for m in minutes.meetings(engine, CARE, CONDITION)] == [2]
    assert len(minutes.meeting(engine, CARE, done.meeting_id, version=1).decisions) == 3
    events = audit.read(engine, action="edit")
    assert events["detail"].str.contains('"what": "meeting"').sum() == 2


def test_a_stale_recording_is_refused_with_who_and_when_and_writes_nothing(items_both):
    engine, signal, goal, action = items_both
    minutes.record_meeting(engine, QUALITY, CONDITION, HELD, ["quality"], [])
    before = (_count(engine, models.MeetingRecord), _count(engine, models.MeetingDecision))
    with pytest.raises(MinutesError) as refused:  # CARE opened the page before QUALITY recorded it
        minutes.record_meeting(engine, CARE, CONDITION, HELD, ["care_team"], _decisions(signal, goal, action))
    assert "quality@example.org" in str(refused.value) and "version 1" in str(refused.value)
    # one conflict for every versioned record: the page handles a meeting's like an item's
    assert isinstance(refused.value, EditConflict) and refused.value.based_on == 0
    assert refused.value.current.version == 1 and refused.value.current.recorded_by == "quality@example.org"
    assert "opnieuw vastgelegd door quality@example.org" in refused.value.message("nl")
    assert (_count(engine, models.MeetingRecord), _count(engine, models.MeetingDecision)) == before


@pytest.mark.parametrize(
    ("change", "error", "expected"),
    [
        ({"roles_present": [" "]}, MinutesError, "at least one role"),
        ({"held_on": dt.date(2026, 3, 3)}, MinutesError, "in the future"),
        ({"held_on": "2026-13-01"}, ImprovementError, "is not a date"),
        ({"decision": "maybe"}, ImprovementError, "maybe is not allowed"),
        ({"note": "x" * 4001}, ImprovementError, "Note is longer than 4,000 characters"),
        ({"item_id": "S-000000000000"}, ItemNotFound, "S-000000000000"),
        ({"twice": True}, MinutesError, "has two decisions"),
    ],
)
def test_bad_input_is_one_clear_line_and_changes_no_row(items, change, error, expected):
    engine, signal, goal, action = items
    decided = _decisions(signal, goal, action)
    if "decision" in change or "note" in change or "item_id" in change:
        first = decided[0]
        decided[0] = Decided(
            change.get("item_id", first.item_id),
            change.get("decision", first.decision),
            change.get("note", first.note),
            first.section,
        )
    if change.get("twice"):
        decided.append(decided[0])
    with pytest.raises(error, match=expected) as refused:
        minutes.record_meeting(
            engine,
            CARE,
            CONDITION,
            change.get("held_on", HELD),
            change.get("roles_present", ["care_team"]),
            decided,
            today=HELD,
        )
    assert "\n" not in str(refused.value)
    assert _count(engine, models.MeetingRecord) == 0 and _count(engine, models.MeetingDecision) == 0


@pytest.mark.parametrize(
    ("unit", "key", "known"),
    [
        ("H99", "unknown_unit", None),
        (f"{OTHER}@H01", "unknown_unit", None),  # another condition's team
        ("h01", "unit_case", "H01"),
        (f"{CONDITION}@h01/sur", "unknown_unit", None),
        ("h01/sur", "unit_case", "H01/SUR"),
    ],
)
def test_a_meeting_of_a_unit_the_registry_does_not_hold_is_refused_and_writes_nothing(items, unit, key, known):
    """A meeting record stored any unit: the meeting of H99, or of h01 beside H01, was the meeting of no unit and
    its date never "the last meeting" of H01's agenda. It is checked as a target's unit is (vbhc.improvement
    .checked_unit), naming the registry's spelling of a case twin."""
    engine, signal, goal, action = items
    events = len(audit.read(engine))
    with pytest.raises(ImprovementError) as refused:
        minutes.record_meeting(
            engine, CARE, CONDITION, HELD, ["care_team"], _decisions(signal, goal, action), unit=unit, today=HELD
        )
    assert refused.value.key == key and refused.value.values.get("known") == known
    assert "\n" not in str(refused.value) and "registr" in refused.value.message("nl")
    assert _count(engine, models.MeetingRecord) == 0 and _count(engine, models.MeetingDecision) == 0
    assert len(audit.read(engine)) == events
    for unit in ("H01", "H02/SUR", f"{CONDITION}@H02"):  # every level the meeting page chooses
        minutes.record_meeting(engine, CARE, CONDITION, HELD, ["care_team"], [], unit=unit, today=HELD)
    again = minutes.record_meeting(engine, CARE, CONDITION, HELD, ["care_team"], [], unit=" H01 ", based_on=1)
    assert (again.record.unit, again.version) == ("H01", 2)  # spaces are not part of a code: H01's meeting


def test_roles_care_team_of_another_condition_and_a_manager_may_not_record(items):
    engine, *_ = items
    for viewer in (OTHER_CARE, MANAGER):
        with pytest.raises(AccessDenied):
            minutes.record_meeting(engine, viewer, CONDITION, HELD, ["manager"], [])
    assert _count(engine, models.MeetingRecord) == 0
    assert (audit.read(engine, action="denied")["detail"].str.contains("meeting record")).sum() == 2
    # another condition's item cannot be decided in this condition's meeting
    other = improvement.set_target(engine, QUALITY, OTHER, "reexcision", 0.1)
    with pytest.raises(MinutesError, match="is not an item of condition"):
        minutes.record_meeting(engine, QUALITY, CONDITION, HELD, ["quality"], [Decided(other.item_id, "noted")])


def test_a_manager_reads_own_units_meetings_without_the_notes(items):
    engine, signal, goal, action = items
    minutes.record_meeting(engine, CARE, CONDITION, HELD, ["care_team"], _decisions(signal, goal, action), unit="H01")
    minutes.record_meeting(engine, CARE, CONDITION, HELD, ["care_team"], [], unit="H02")
    seen = minutes.meetings(engine, MANAGER, CONDITION)
    assert [m.record.unit for m in seen] == ["H01"]
    assert [d.decision for d in seen[0].decisions] == ["action", "noted", "deferred"]
    assert all(d.note == "" for d in seen[0].decisions)
    assert {d.note for d in minutes.meetings(engine, CARE, CONDITION, unit="H01")[0].decisions} > {""}
    with pytest.raises(MinutesError, match="no meeting record"):
        minutes.meeting(engine, MANAGER_H02, seen[0].meeting_id)
    with pytest.raises(AccessDenied):  # the manager may read but not export the minutes
        export_minutes(engine, MANAGER, seen[0].meeting_id, "pdf", "en")


def test_a_care_team_limited_to_its_hospital_records_and_reads_in_full_its_own_hospitals_meetings_only(items):
    """A care team limited to H01 recorded H02's and the whole condition's meetings and read their notes, and the
    meeting page let it edit H02's agenda. Now: its own hospital's meetings only; another hospital's read without
    the notes (status only), the whole condition's read in full; the page's forms for its own units only."""
    engine, signal, goal, action = items
    minutes.record_meeting(
        engine, CARE, CONDITION, HELD, ["care_team"], [Decided(goal.item_id, "noted", "H02 notes")], unit="H02"
    )
    minutes.record_meeting(engine, CARE, CONDITION, HELD, ["care_team"], [Decided(goal.item_id, "noted", "All notes")])
    before = _count(engine, models.MeetingRecord)
    for unit in ("H02", "H02/SUR", improvement.ALL_UNITS):
        with pytest.raises(AccessDenied, match="limited to some hospitals"):
            minutes.record_meeting(engine, CARE_H01, CONDITION, HELD, ["care_team"], [], unit=unit)
    assert _count(engine, models.MeetingRecord) == before
    own = minutes.record_meeting(
        engine, CARE_H01, CONDITION, HELD, ["care_team"], _decisions(signal, goal, action), unit="H01"
    )
    notes = {m.record.unit: [d.note for d in m.decisions] for m in minutes.meetings(engine, CARE_H01, CONDITION)}
    assert notes == {
        "H01": ["Start prehabilitation", "", "Await the first quarter"],
        "H02": [""],  # status only
        "": ["All notes"],
    }
    assert minutes.meeting(engine, CARE, own.meeting_id).decisions[0].note == "Start prehabilitation"

    today = dt.date(2026, 5, 20)
    for unit, may in (("H01", True), ("H01/SUR", True), ("H02", False), (None, False)):
        found = agenda.meeting_agenda(engine, CARE_H01, CONDITION, unit=unit, today=today)
        assert (found.may_edit, found.may_export) == (may, may), unit
    assert agenda.meeting_agenda(engine, CARE, CONDITION, unit="H02", today=today).may_edit  # unchanged
    assert agenda.meeting_agenda(engine, QUALITY, CONDITION, today=today).may_edit


def test_the_agenda_starts_from_the_last_recorded_meeting(items):
    engine, *_ = items
    today = dt.date(2026, 5, 20)
    first = agenda.meeting_agenda(engine, CARE, CONDITION, unit="H01", today=today)
    assert first.since == dt.date(2026, 5, 1)  # nothing recorded: the first day of the month
    minutes.record_meeting(engine, CARE, CONDITION, HELD, ["care_team"], [], unit="H01", today=today)
    minutes.record_meeting(engine, CARE, CONDITION, dt.date(2026, 4, 6), ["care_team"], [], today=today)
    assert agenda.meeting_agenda(engine, CARE, CONDITION, unit="H01", today=today).since == dt.date(2026, 4, 6)
    assert agenda.meeting_agenda(engine, CARE, CONDITION, unit="H02", today=today).since == dt.date(2026, 4, 6)
    assert agenda.meeting_agenda(engine, CARE, CONDITION, HELD, unit="H02", today=today).since == HELD  # chosen


def test_agenda_items_are_each_item_once_in_meeting_order(items):
    engine, signal, goal, action = items
    found = agenda.meeting_agenda(
        engine, CARE, CONDITION, dt.date(2000, 1, 1), unit="H01", values={INDICATOR: 0.2}, today=dt.date(2026, 7, 1)
    )
    listed = [(i.section, i.item_id) for i in minutes.agenda_items(found)]
    assert listed == [
        ("new_signal", signal.item_id),
        ("overdue_action", action.item_id),
        ("target_not_met", goal.item_id),
    ]


def _pdf_text(data: bytes) -> str:
    from pypdf import PdfReader

    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)


def _docx_text(data: bytes) -> str:
    from docx import Document

    doc = Document(io.BytesIO(data))
    cells = [c.text for table in doc.tables for row in table.rows for c in row.cells]
    return "\n".join([p.text for p in doc.paragraphs] + cells)


@pytest.mark.parametrize("lang", ["nl", "en"])
def test_the_minutes_as_pdf_and_docx_hold_the_decisions_in_the_chosen_language(items, lang):
    engine, signal, goal, action = items
    done = minutes.record_meeting(
        engine, CARE, CONDITION, HELD, ["care_team", "surgeon"], _decisions(signal, goal, action), unit="H01"
    )
    names = {"H01": "Academisch Ziekenhuis Een", "": "every unit"}
    content = minutes_content(engine, CARE, done.meeting_id, lang, unit_name=names.get)
    words = {
        "nl": ["Verslag van het verbeteroverleg", "zorgteam", "Actie", "Besproken, geen wijziging", "Gepland"],
        "en": ["Minutes of the improvement meeting", "care team", "Action", "Discussed, no change", "Planned"],
    }[lang]
    expected = [
        *words,
        "surgeon",
        "Start prehabilitation",  # the meeting's notes
        "Prehabilitation (nurse specialist)",  # an action by what and who
        "Academisch Ziekenhuis Een",  # units by name
        "30",  # the open action's due date (June 30)
    ]
    for data, text_of in ((build_minutes_pdf(content), _pdf_text), (build_minutes_docx(content), _docx_text)):
        text = re.sub(r"\s+", " ", text_of(data))
        for word in expected:
            assert word in text, (lang, word)
        assert "Training" not in text  # done before the meeting: not an open action
        assert not RAW_ID.search(text) and "None" not in text and "nan" not in text.lower().split()
        other = "Minutes of the improvement meeting" if lang == "nl" else "Verslag van het verbeteroverleg"
        assert other not in text


def test_an_export_is_audited_and_describes_items_as_the_meeting_saw_them(items):
    engine, signal, goal, action = items
    done = minutes.record_meeting(engine, CARE, CONDITION, HELD, ["care_team"], _decisions(signal, goal, action))
    improvement.update_action(engine, CARE, action.item_id, 1, title="Renamed later")
    data = export_minutes(engine, CARE, done.meeting_id, "docx", "en")
    text = _docx_text(data)
    assert "Prehabilitation (nurse specialist)" in text and "Renamed later" not in text
    exports = audit.read(engine, action="export")
    assert list(exports["sha256"]) == [audit.sha256_of(data)]
    assert '"what": "minutes_docx"' in exports["detail"].iloc[0]


def test_a_manager_reads_a_meeting_of_every_unit_without_another_units_items(items):
    engine, signal, goal, _ = items
    improvement.record_detection(
        engine, "import", CONDITION, "hospital", "2-2", [Flag("H02", INDICATOR, Rule.FUNNEL_998, "worse", 0.3)]
    )
    theirs = improvement.signals(engine, QUALITY, CONDITION, unit="H02")[0]
    decided = [
        Decided(signal.item_id, "noted", "Ours"),
        Decided(theirs.item_id, "noted"),
        Decided(goal.item_id, "closed"),
    ]
    done = minutes.record_meeting(engine, QUALITY, CONDITION, HELD, ["quality"], decided)
    content = minutes_content(engine, MANAGER, done.meeting_id, "en", unit_name=lambda u: u or "every unit")
    rows = [row for _, section_rows in content.decisions for row in section_rows]
    assert [row[0].split(" · ")[1] for row in rows] == ["H01", "every unit"]  # H02's signal is left out
    assert {row[2] for row in rows} == {"–"}  # no notes for a manager


def test_the_minutes_keep_what_the_team_concluded_about_a_signal(items):
    """A signal's row names its explanation (kind and text, as the meeting saw it); a manager gets the kind only."""
    engine, signal, goal, action = items
    done = minutes.record_meeting(engine, QUALITY, CONDITION, HELD, ["quality"], _decisions(signal, goal, action))
    rows = {
        who: [
            row[0] for _, section in minutes_content(engine, viewer, done.meeting_id, "en").decisions for row in section
        ]
        for who, viewer in (("care", CARE), ("manager", MANAGER))
    }
    assert rows["care"][0].endswith(" · Real difference: New stapler")
    assert rows["manager"][0].endswith(" · Real difference")
    assert "New stapler" in _docx_text(export_minutes(engine, CARE, done.meeting_id, "docx", "en"))


def test_recorded_since_dates_are_each_units_last_meeting_or_every_units_later_one(items, monkeypatch):
    """The dates `vbhc import` and the server prepare the views at (vbhc.results.as_of_dates): for each unit the
    date the team page compares with (agenda's `since`: its own last meeting, or every unit's when later), none
    after today, newest first and at most RECORDED_SINCE_DATES."""
    engine, *_ = items
    today = dt.date(2026, 5, 20)
    assert minutes.recorded_since_dates(engine, CONDITION, today=today) == []
    minutes.record_meeting(engine, CARE, CONDITION, dt.date(2026, 5, 4), ["care_team"], [], unit="H01", today=today)
    minutes.record_meeting(engine, CARE, CONDITION, dt.date(2026, 3, 2), ["care_team"], [], unit="H02", today=today)
    minutes.record_meeting(engine, CARE, CONDITION, dt.date(2026, 4, 6), ["care_team"], [], today=today)
    later = dt.date(2026, 6, 2)  # recorded then, read as of `today`: not yet the date any page compares with
    minutes.record_meeting(engine, CARE, CONDITION, dt.date(2026, 6, 1), ["care_team"], [], unit="H02", today=later)
    found = minutes.recorded_since_dates(engine, CONDITION, today=today)
    assert found == [dt.date(2026, 5, 4), dt.date(2026, 4, 6)]  # H02's March meeting: every unit's April one is later
    for unit in ("H01", "H02", "H01/SUR"):
        assert agenda.meeting_agenda(engine, CARE, CONDITION, unit=unit, today=today).since in found
    assert minutes.recorded_since_dates(engine, "breast_cancer", today=today) == []
    for day, unit in enumerate(("H01/SUR", "H01/ORT", "H02/SUR"), start=11):  # more units' meetings: the newest few
        held = dt.date(2026, 5, day)
        minutes.record_meeting(engine, CARE, CONDITION, held, ["care_team"], [], unit=unit, today=today)
    monkeypatch.setattr(minutes, "RECORDED_SINCE_DATES", 2)
    assert minutes.recorded_since_dates(engine, CONDITION, today=today) == [dt.date(2026, 5, 13), dt.date(2026, 5, 12)]
