"""The meeting page records the meeting (views/meeting.py): a care team records its decisions in one form and finds
the meeting among the earlier ones with its minutes to download; a refused record is one line and writes nothing.
A manager gets no form (tests/test_app_meeting.py); the record and the minutes are tested in tests/test_minutes.py."""

from __future__ import annotations

from tests.shown import tables as shown_tables
from tests.test_app_meeting import CONDITION, _app, improvement_viewer, meeting_db  # noqa: F401
from vbhc import improvement, minutes
from vbhc.i18n import t


def _submit(at, lang: str):
    next(b for b in at.button if b.label == t("minutes.submit", lang)).click()
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_a_care_team_records_the_meeting_and_finds_its_minutes(meeting_db):  # noqa: F811
    at = _app("care")
    [signal] = improvement.signals(meeting_db, improvement_viewer("care"), CONDITION)
    at.selectbox(key=f"mt_min_dec_{signal.item_id}").set_value("escalate")
    at.text_input(key=f"mt_min_note_{signal.item_id}").input("Ask the directorate for a data audit")
    at = _submit(at, "en")  # no role present named: refused in one line, nothing written
    assert [e.value for e in at.error] == [t("minutes.error_no_roles", "en")]
    assert minutes.meetings(meeting_db, improvement_viewer("care"), CONDITION) == []
    at.multiselect(key="mt_min_roles").set_value(["care_team"])
    at.text_input(key="mt_min_other_roles").input("surgeon, nurse specialist")
    at = _submit(at, "en")  # the decision and note typed before the refusal are still there
    assert [e.value for e in at.error] == []
    assert any("version 1, 1 decision)" in s.value for s in at.success)  # one decision: singular
    [held] = minutes.meetings(meeting_db, improvement_viewer("care"), CONDITION)
    assert held.record.roles == ["care_team", "surgeon", "nurse specialist"]
    assert [(d.item_id, d.decision, d.note) for d in held.decisions] == [
        (signal.item_id, "escalate", "Ask the directorate for a data audit")
    ]
    # the list of earlier meetings opens it, with the decision in words and the minutes to download
    table = next(f.value for f in shown_tables(at) if t("minutes.col_item", "en") in f.value.columns)
    assert list(table[t("minutes.col_decision", "en")]) == [t("improvement.decision_escalate", "en")]
    assert signal.item_id not in " ".join(table.astype(str).to_numpy().ravel())
    downloads = [b.proto.label for b in at.get("download_button")]
    assert {t("minutes.download_pdf", "en"), t("minutes.download_docx", "en")} <= set(downloads)


def test_a_recorded_meeting_prepares_the_team_pages_view_as_it_was_then(meeting_db, monkeypatch):  # noqa: F811
    """The meeting just recorded is the team page's new "since the last meeting" date: the view as it was then and
    every unit's signals then are prepared in the background (ui.data.prepare_since), not computed by the first
    team page after the recording while its viewer waits."""
    import datetime as dt

    from ui import data

    at = _app("care")
    held = dt.date(2025, 7, 15)  # inside the small demo's data: a view of its own
    at.date_input(key="mt_min_date").set_value(held)
    at.multiselect(key="mt_min_roles").set_value(["care_team"])
    monkeypatch.setattr(data, "background_work", True)
    at = _submit(at, "en")
    assert [e.value for e in at.error] == []
    data._signals_pool.submit(lambda: None).result()  # what the recording started has run
    prepared = [args for args in data._signals_ready if args[2:4] == (CONDITION, "hospital") and args[5] == held]
    assert len(prepared) == 1 and prepared[0][4] not in ("", None)
