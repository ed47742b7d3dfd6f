"""The meeting page (views/meeting.py) driven like a meeting: each role and language renders it, a care team
explains a signal and sees it explained, a manager gets no form, a stale edit is refused with who and when.
The agenda itself (vbhc.agenda) is tested without Streamlit in tests/test_agenda.py."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from tests.apptest import run_on_page
from tests.registry_copy import copy_registry
from tests.roles import MAPPING, USERS
from tests.shown import tables as shown_tables
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
    run_on_page(at, PAGE)
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
    return next(f.value for f in shown_tables(at) if t("agenda.col_explanation", lang) in f.value.columns)


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
    # no meeting is recorded: the page does not call the first of the month the previous meeting
    intro = next(c.value for c in at.caption if "·" in c.value)
    assert "nog geen overleg vastgelegd: nieuw sinds" in intro and "vorig overleg" not in intro
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


@pytest.mark.parametrize("status", ["planned", "in_progress"])
def test_an_action_started_at_the_meeting_is_listed_with_the_status_chosen(meeting_db, signed_in, status):
    """The action form offers planned or under way (started at the meeting); the actions table shows the choice."""
    at = _app("care")
    assert at.radio(key="mt_action_status").options == [
        t("improvement.action_planned", "en"),
        t("improvement.action_in_progress", "en"),
    ]
    at.text_input(key="mt_action_title").input("Stapler training")
    at.text_input(key="mt_action_owner").input("surgeon")
    at.radio(key="mt_action_status").set_value(status)
    at.selectbox(key="mt_action_indicator").set_value("anastomotic_leak")
    next(b for b in at.button if b.label == t("agenda.submit_action", "en")).click()
    at.run()
    assert not at.exception and [e.value for e in at.error] == []
    [action] = improvement.actions(meeting_db, improvement_viewer("care"), CONDITION)
    assert (action.title, action.status, action.indicator_ids) == ("Stapler training", status, ["anastomotic_leak"])
    listed = next(
        f.value
        for f in shown_tables(at)
        if t("agenda.field_title", "en") in f.value.columns and len(f.value.columns) > 6
    )
    row = listed[listed[t("agenda.field_title", "en")] == "Stapler training"]
    assert list(row[t("agenda.col_status", "en")]) == [t(f"improvement.action_{status}", "en")]


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


def _linked_action(engine, unit: str = "H01", start=None):
    import datetime as dt

    return improvement.create_action(
        engine,
        improvement_viewer("quality"),
        CONDITION,
        "Nieuw protocol",
        "verpleegkundig specialist",
        start or dt.date(2024, 1, 1),
        dt.date(2026, 12, 31),
        unit=unit,
        indicators=["anastomotic_leak", "length_of_stay"],
    )


@pytest.mark.parametrize(("user", "lang"), [("care", "en"), ("manager", "nl")])
def test_an_actions_before_and_after_is_shown_with_its_verdict(meeting_db, signed_in, user, lang):
    """Whoever may see the indicator sees the before/after: the care team and the unit's manager, each indicator
    linked to the action with a verdict, the windows and a chart split at the start; in Dutch, no English."""
    from vbhc import action_effect
    from vbhc.indicators import compute_indicators, load_condition_data

    action = _linked_action(meeting_db)
    at = _app(user, lang)
    texts = _texts(at)
    assert t("action_effect.title", lang) in texts and t("action_effect.intro", lang) in texts
    assert at.selectbox(key="mt_effect_action").value == action.item_id
    # the verdict the page shows is vbhc.action_effect's on the same data (all dates, hospital level)
    result = compute_indicators(load_condition_data(CONDITION, engine=meeting_db), level="hospital")
    for indicator in ("anastomotic_leak", "length_of_stay"):
        effect = action_effect.action_effect(result, indicator, "H01", action.start)
        assert effect.sentence(lang) in texts, (indicator, effect.sentence(lang))
        before = t("action_effect.windows", lang, **_window_values(effect, lang)).split(";")[0]
        assert before in texts
        # the small registry may have too few cycles for a verdict; with one, the page names the method
        assert (t(f"action_effect.method_{effect.method}", lang) in texts) if effect.method else True
    assert texts.count(t("action_effect.chart", lang)) == 2  # a trend split at the start per indicator
    if lang == "nl":
        found = findings(at, PAGE)
        assert not found, _report(found)


def _window_values(effect, lang: str) -> dict[str, str]:
    from vbhc.i18n import fmt_date, fmt_int

    return {
        f"{side}_{what}": (fmt_int if what == "n" else fmt_date)(getattr(getattr(effect, side), what), lang)
        for side in ("before", "after")
        for what in ("first", "last", "n")
    }


def test_another_hospitals_action_is_not_shown_to_a_manager(meeting_db, signed_in):
    """A manager of H01 does not get H02's action (vbhc.improvement's rules), so no before/after of it either."""
    _linked_action(meeting_db, unit="H02")
    at = _app("manager")
    texts = _texts(at)
    assert t("action_effect.none", "en") in texts
    assert "Nieuw protocol" not in texts


def test_another_hospitals_action_shows_no_windows_to_a_care_team_limited_to_its_hospital(meeting_db, signed_in):
    """A care team limited to H01 took H02 as its unit (a tampered ?unit=H02) and got H02's action with its care
    cycles before and after the start: windows and quarters of a few care cycles (each with its n and rate) below
    the cells its tables withhold. Its unit is now one of its own hospital's (vbhc.access.focus_units)."""
    _linked_action(meeting_db, unit="H02")
    at = AppTest.from_file(str(PROJECT_ROOT / "streamlit_app.py"), default_timeout=180)
    at.secrets["auth"] = {"client_id": "x", "client_secret": "x", "server_metadata_url": "http://localhost/x"}
    at.user = {"is_logged_in": True, **USERS["care_h01"]}
    at.query_params["lang"] = "en"
    at.session_state["condition"] = CONDITION
    at.session_state["unit_hospital"] = "H02"
    run_on_page(at, PAGE)
    assert not at.exception, [e.value for e in at.exception]
    texts = _texts(at)
    assert at.selectbox(key="unit_hospital").value == "H01"
    assert "Nieuw protocol" not in texts and t("action_effect.chart", "en") not in texts


def test_a_care_team_limited_to_its_hospital_sets_its_units_goal_not_the_whole_conditions(meeting_db, signed_in):
    """The team goal form set a goal of the whole condition for a care team limited to H01 (a goal for every
    hospital of the registry); now it sets the goal of its unit, and it explains its own hospital's signal."""
    at = _app("care_h01")
    assert at.selectbox(key="unit_hospital").value == "H01"
    at.selectbox(key="mt_goal_indicator").set_value("anastomotic_leak")
    at.number_input(key="mt_goal_value").set_value(8.0)
    next(b for b in at.button if b.label == t("agenda.submit_goal", "en")).click()
    at.run()
    assert not at.exception and [e.value for e in at.error] == []
    [goal] = improvement.targets(meeting_db, improvement_viewer("quality"), CONDITION)
    assert (goal.unit, goal.value, goal.changed_by) == ("H01", 0.08, "care-h01@example.org")
    # the message names what was saved in words; the goal's item id is in no table on the page
    [saved] = [s.value for s in at.success]
    assert "Anastomotic leak" in saved and "8.0%" in saved and goal.item_id not in saved, saved
    at = _explain(at, "Ours")
    assert [e.value for e in at.error] == []
    assert list(_open_signals(at)[t("agenda.field_explanation_text", "en")]) == ["Ours"]


@pytest.mark.parametrize("lang", ["en", "nl"])
def test_actions_and_signals_are_named_in_a_persons_words_never_by_item_id(meeting_db, signed_in, lang):
    """The actions table and every picker name an item by what a care team recognises (title, unit, owner, due
    date; a signal by indicator and unit), never by its item id (A-ec7ae80563b4): the id is the workbook's key
    only. Two actions of the same title are told apart in the picker by what differs between them (the owner)."""
    import datetime as dt
    import re

    first = _linked_action(meeting_db)
    second = improvement.create_action(
        meeting_db,
        improvement_viewer("quality"),
        CONDITION,
        "Nieuw protocol",
        "chirurg",
        dt.date(2024, 1, 1),
        dt.date(2026, 12, 31),
        unit="H01",
        indicators=["anastomotic_leak"],
    )
    at = _app("care", lang)
    signal = improvement.signals(meeting_db, improvement_viewer("quality"), CONDITION)[0]
    ids = {first.item_id, second.item_id, signal.item_id}
    raw = re.compile(r"\b[ASTG]-[0-9a-f]{8,}\b")
    cells = [str(v) for f in shown_tables(at) for v in [*f.value.columns, *f.value.astype(str).to_numpy().ravel()]]
    assert not [c for c in cells if raw.search(c) or any(i in c for i in ids)], cells
    actions = next(f.value for f in shown_tables(at) if t("agenda.field_expected_effect", lang) in f.value.columns)
    assert list(actions[t("agenda.field_title", lang)]).count("Nieuw protocol") == 2
    for box in at.selectbox:  # every picker: the actions', the signals' (explain, link to an action), ...
        assert not [o for o in box.options if raw.search(o) or any(i in o for i in ids)], (box.key, box.options)
    assert len(at.selectbox(key="mt_explain_signal").options) == 1  # the new signal, by indicator and unit
    picked = at.selectbox(key="mt_effect_action").options
    assert len(set(picked)) == len(picked) == 2, picked
    assert all("Nieuw protocol" in o for o in picked) and any("chirurg" in o for o in picked), picked


def test_a_goal_set_twice_on_the_form_is_refused_in_the_viewers_language(meeting_db, signed_in):
    """Before: the goal form stored a second active team goal for the same indicator, unit and date (the targets
    workbook refuses that); now the second is one line in the viewer's language and nothing more is stored."""
    at = _app("care_h01", "nl")
    for _ in range(2):
        at.selectbox(key="mt_goal_indicator").set_value("anastomotic_leak")
        at.number_input(key="mt_goal_value").set_value(8.0)
        next(b for b in at.button if b.label == t("agenda.submit_goal", "nl")).click()
        at.run()
    assert not at.exception
    [error] = [e.value for e in at.error]
    assert error.startswith("Teamdoel voor Naadlekkage (H01) vanaf ") and "geldt al" in error, error
    assert len(improvement.targets(meeting_db, improvement_viewer("quality"), CONDITION)) == 1


def test_a_workbook_repeating_an_open_action_is_refused_on_the_page_naming_its_row(meeting_db, signed_in):
    """The page's workbook upload: a new row repeating an open action is refused in one Dutch line that names the
    file, the row and the column (before: the store's message alone, without file, row or column), a cell with a
    line break stays on that line, and nothing is stored."""
    import datetime as dt
    import io

    from openpyxl import load_workbook

    from vbhc.improvement_sheets import ACTION_COLUMNS, export_actions

    care = improvement_viewer("care")
    improvement.create_action(
        meeting_db, care, CONDITION, "Minder lekkage", "chirurg", dt.date(2026, 1, 1), dt.date(2026, 6, 1)
    )
    before = len(improvement.actions(meeting_db, care, CONDITION))
    wb = load_workbook(io.BytesIO(export_actions(meeting_db, care, CONDITION)))
    ws = wb["actions"]
    header = [c.value for c in ws[1]]
    row = next(r for r in range(2, ws.max_row + 1) if ws.cell(r, header.index("title") + 1).value == "Minder lekkage")
    again = [c.value for c in ws[row]]
    again[0] = again[1] = None
    again[ACTION_COLUMNS.index("title")] = "Minder\nlekkage"  # the same action: case and spaces aside
    ws.append(again)
    out = io.BytesIO()
    wb.save(out)
    at = _app("care", "nl")
    at.file_uploader(key="mt_upload").set_value(("plan.xlsx", out.getvalue(), "application/octet-stream"))
    at.run()
    next(b for b in at.button if b.label == t("agenda.import_button", "nl")).click()
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    [error] = [e.value for e in at.error]
    assert error.startswith("plan.xlsx is niet geïmporteerd (1 probleem; er is niets opgeslagen)"), error
    assert f"plan.xlsx rij {ws.max_row} kolom 'title' waarde 'Minder\\nlekkage'" in error, error
    assert "staat al open" in error and "\n" not in error, error
    assert len(improvement.actions(meeting_db, care, CONDITION)) == before
