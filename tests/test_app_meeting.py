"""The meeting page (views/meeting.py) driven like a meeting: each role and language renders it, a care team
explains a signal and sees it explained, a manager gets no form, a stale edit is refused with who and when.
The agenda itself (vbhc.agenda) is tested without Streamlit in tests/test_agenda.py."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from tests.registry_copy import copy_registry
from tests.roles import MAPPING, USERS
from tests.test_dutch_walk import _report, findings
from vbhc import improvement
from vbhc.i18n import t
from vbhc.improvement import Explanation, Flag, Rule
from vbhc.settings import PROJECT_ROOT
from vbhc.store import get_engine

CONDITION = "colorectal_cancer"
PAGE = "views/meeting.py"


@pytest.fixture
def meeting_db(small_demo_registry, tmp_path, monkeypatch):
    """A copy of the small demo registry (the tests write to it) with one new signal of the own hospital."""
    engine, truth = small_demo_registry
    get_engine.cache_clear()
    own = copy_registry(engine, tmp_path / "meeting.db")
    url = own.url.render_as_string(hide_password=False)
    flag = Flag(truth["own_hospital"], "anastomotic_leak", Rule.FUNNEL_998, "worse", 0.21)
    improvement.record_detection(own, "import", CONDITION, "hospital", "1-1", [flag])
    mapping = tmp_path / "access.toml"
    mapping.write_text(MAPPING, encoding="utf-8")
    monkeypatch.setenv("VBHC_DATABASE_URL", url)
    monkeypatch.setenv("VBHC_ACCESS_FILE", str(mapping))
    yield own
    get_engine.cache_clear()


def _app(user: str, lang: str = "en") -> AppTest:
    """The meeting page as `user` ("local": the single-user mode with every role) in `lang`."""
    at = AppTest.from_file(str(PROJECT_ROOT / "streamlit_app.py"), default_timeout=180)
    if user != "local":
        at.secrets["auth"] = {"client_id": "x", "client_secret": "x", "server_metadata_url": "http://localhost/x"}
        at.user = {"is_logged_in": True, **USERS[user], "name": "Testgebruiker"}
    at.query_params["lang"] = lang
    at.session_state["condition"] = CONDITION
    at.run()
    at.switch_page(PAGE)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


@pytest.fixture
def signed_in(monkeypatch):
    monkeypatch.setenv("VBHC_AUTH", "oidc")


def _texts(at: AppTest) -> str:
    kinds = ("caption", "info", "markdown", "error", "warning", "success", "subheader")
    return " ".join(e.value for kind in kinds for e in getattr(at, kind))


def _open_signals(at: AppTest, lang: str = "en"):
    """The open-signals table: the one with an explanation column and the signal's item id."""
    return next(f.value for f in at.table if t("agenda.col_explanation", lang) in f.value.columns)


@pytest.mark.parametrize("lang", ["en", "nl"])
@pytest.mark.parametrize("user", ["care", "quality", "manager"])
def test_the_page_renders_for_each_role_in_both_languages(meeting_db, signed_in, user, lang):
    at = _app(user, lang)
    assert at.title[0].value == t("agenda.title", lang)
    texts = _texts(at)
    assert t("agenda.open_signals", lang) in texts and t("agenda.targets", lang) in texts
    shown = _open_signals(at, lang)
    assert list(shown[t("agenda.col_status", lang)]) == [t("improvement.status_new", lang)]
    forms = [b.label for b in at.button if b.proto.is_form_submitter]
    if user == "manager":  # status only: no form, no free text, no workbook
        assert forms == [] and not at.text_area and not at.text_input
        assert t("agenda.field_explanation_text", lang) not in shown.columns
        assert t("agenda.status_only", lang) in texts
    else:
        assert t("agenda.submit_explain", lang) in forms and t("agenda.submit_action", lang) in forms
        assert (t("agenda.submit_norm", lang) in forms) == (user == "quality")  # norms: the directorate only
    if lang == "nl":
        found = findings(at, PAGE)
        assert not found, _report(found)


@pytest.mark.usefixtures("local_mode")
def test_the_page_renders_for_the_local_viewer(meeting_db):
    at = _app("local", "nl")
    forms = [b.label for b in at.button if b.proto.is_form_submitter]
    assert t("agenda.submit_norm", "nl") in forms  # the local viewer has every role
    found = findings(at, PAGE)
    assert not found, _report(found)


def _explain(at: AppTest, text: str) -> AppTest:
    at.radio(key="mt_explain_kind").set_value(Explanation.REAL.value)
    at.text_area(key="mt_explain_text").input(text)
    next(b for b in at.button if b.label == t("agenda.submit_explain", "en")).click()
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_a_care_team_explains_a_signal_and_sees_it_explained(meeting_db, signed_in):
    at = _explain(_app("care"), "Leaks after the new stapler")
    assert [e.value for e in at.error] == []
    assert any(t("agenda.saved", "en", item="", version=2).split(":")[0] in s.value for s in at.success)
    shown = _open_signals(at)
    assert list(shown[t("agenda.col_status", "en")]) == [t("improvement.status_explained", "en")]
    assert list(shown[t("agenda.field_explanation_text", "en")]) == ["Leaks after the new stapler"]
    [signal] = improvement.signals(meeting_db, improvement_viewer("care"), CONDITION)
    assert (signal.version, signal.changed_by) == (2, "care@example.org")
    # now explained, it can be decided
    at.radio(key="mt_decide_choice").set_value("action")
    next(b for b in at.button if b.label == t("agenda.submit_decide", "en")).click()
    at.run()
    assert improvement.signals(meeting_db, improvement_viewer("care"), CONDITION)[0].decision == "action"


def test_a_stale_edit_shows_who_changed_it_and_the_current_state(meeting_db, signed_in):
    at = _app("care")
    [signal] = improvement.signals(meeting_db, improvement_viewer("quality"), CONDITION)
    # the quality directorate explains it while the care team's page still shows version 1
    improvement.explain_signal(
        meeting_db, improvement_viewer("quality"), signal.item_id, 1, Explanation.DATA_ERROR, "Double entry"
    )
    at = _explain(at, "Our text")
    [error] = [e.value for e in at.error]
    assert "quality@example.org" in error and t("agenda.now_current", "en") in error
    shown = _open_signals(at)
    assert list(shown[t("agenda.field_explanation_text", "en")]) == ["Double entry"]  # theirs, not lost
    assert len(improvement.history(meeting_db, improvement_viewer("quality"), signal.item_id)) == 2


def test_a_refused_edit_is_one_translated_line(meeting_db, signed_in):
    at = _app("care", "nl")
    at.radio(key="mt_explain_kind").set_value(Explanation.REAL.value)  # a real difference needs its text
    next(b for b in at.button if b.label == t("agenda.submit_explain", "nl")).click()
    at.run()
    [error] = [e.value for e in at.error]
    assert t("agenda.field_explanation_text", "nl") in error and "explanation_text" not in error
    assert "\n" not in error


def improvement_viewer(user: str):
    from vbhc.access import Role, Scope, Viewer

    scopes = {
        "care": (Scope(Role.CARE_TEAM, frozenset({CONDITION})),),
        "quality": (Scope(Role.QUALITY),),
    }[user]
    return Viewer(USERS[user]["email"], USERS[user]["name"], scopes)
