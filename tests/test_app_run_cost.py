"""What a script run of the team page does again that an earlier run of the same view already did (issue 13 item 2).

Why: ten viewers opening the team page at once share one interpreter lock, so every run waits for the CPU of the
others' runs; a run should draw what the process has already finished, not derive it again. Counted, not timed."""

from __future__ import annotations

import datetime as dt

import pytest
from streamlit.testing.v1 import AppTest

from tests.apptest import run_on_page
from vbhc.i18n import fmt_date, t
from vbhc.settings import PROJECT_ROOT

pytestmark = pytest.mark.usefixtures("local_mode")  # tests/conftest.py


def _team_page(unit: str = "H01") -> AppTest:
    at = AppTest.from_file(str(PROJECT_ROOT / "streamlit_app.py"), default_timeout=180)
    at.query_params["lang"] = "en"
    at.session_state["condition"] = "colorectal_cancer"
    at.session_state["unit_hospital"] = unit
    run_on_page(at, "views/condition_team.py")
    assert not at.exception, [e.value for e in at.exception]
    return at


def _since_heading(at: AppTest) -> str:
    """The "since the last meeting" heading the run drew."""
    prefix = t("meeting.title", "en", date="")
    found = [h.value for h in at.subheader if h.value.startswith(prefix.strip()[:12])]
    assert len(found) == 1, [h.value for h in at.subheader]
    return found[0]


def test_the_team_pages_since_last_meeting_is_finished_once_per_view_unit_and_meeting_date(small_demo_db, monkeypatch):
    """A second run of the same view (another viewer, a rerun) draws "since the last meeting" from the finished
    table: it neither reads the view's data for its complete-until date nor builds the table's HTML again. The date
    it compares with is still read on every run: a meeting recorded since moves it, and the table follows."""
    from ui import render
    from vbhc import meeting, minutes

    at = _team_page()
    first = _since_heading(at)
    complete, built = [], []
    until, html = meeting.data_complete_until, render.table_html
    monkeypatch.setattr(meeting, "data_complete_until", lambda *a, **k: complete.append(1) or until(*a, **k))
    previous = t("meeting.column_previous", "en")  # a column of the since-the-last-meeting table only
    monkeypatch.setattr(render, "table_html", lambda *a, **k: built.append(previous in a[0].columns) or html(*a, **k))

    other = _team_page()  # a second session on the same view
    assert _since_heading(other) == first
    assert complete == []
    assert not any(built)

    # a meeting recorded since the first run: the next run compares with it (read again, table built for it)
    held = dt.date.today() - dt.timedelta(days=40)
    monkeypatch.setattr(minutes, "last_meeting_date", lambda *a, **k: held)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert _since_heading(at) == t("meeting.title", "en", date=fmt_date(held, "en"))
    assert _since_heading(at) != first
    assert any(built)  # the table of the new date was built
