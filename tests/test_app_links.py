"""A link (the URL's query string) that asks for what the viewer may not see: another condition, another
hospital's unit, a unit level or comparison group the role is not offered. The page falls back to what the viewer
may see, says so in the viewer's language, and the attempt is in the audit log as "denied" (AppTest)."""

from __future__ import annotations

import json

import pytest
from streamlit.testing.v1 import AppTest

from tests.apptest import run_on_page
from tests.registry_copy import copy_registry
from tests.roles import USERS, sign_in_with_roles
from vbhc import audit
from vbhc.catalog import default_catalog
from vbhc.i18n import t
from vbhc.settings import PROJECT_ROOT
from vbhc.store import get_engine


@pytest.fixture(scope="module")
def _linked_registry(small_demo_registry, tmp_path_factory):
    """This module's own copy of the small demo registry: its refusals go to its own audit log, not to the log the
    other modules' tests read (tests/test_app_roles.py asks that a manager's visit leaves no "denied" event)."""
    engine, _ = small_demo_registry
    return copy_registry(engine, tmp_path_factory.mktemp("links") / "demo.db")


@pytest.fixture
def signed_in_db(_linked_registry, monkeypatch, tmp_path):
    sign_in_with_roles(monkeypatch, tmp_path, _linked_registry)
    get_engine.cache_clear()
    yield _linked_registry
    get_engine.cache_clear()


def _linked(user: str, page: str, lang: str = "en", **params: str) -> AppTest:
    """The page opened from a link with `params` in its query string (not set in session state: as a URL)."""
    at = AppTest.from_file(str(PROJECT_ROOT / "streamlit_app.py"), default_timeout=180)
    at.secrets["auth"] = {"client_id": "x", "client_secret": "x", "server_metadata_url": "http://localhost/x"}
    at.user = {"is_logged_in": True, **USERS[user]}
    at.query_params["lang"] = lang
    for key, value in params.items():
        at.query_params[key] = value
    run_on_page(at, page)
    assert not at.exception, [e.value for e in at.exception]
    return at


def _refusals(engine, user: str) -> list[dict]:
    events = audit.read(engine, user=USERS[user]["email"])
    return [json.loads(d) for d in events.loc[events["action"] == "denied", "detail"]]


def _said(at: AppTest, lang: str, filter_key: str) -> bool:
    return t("auth.link_refused", lang, filter=t(filter_key, lang)) in [w.value for w in at.warning]


@pytest.mark.parametrize("lang", ["en", "nl"])
def test_a_link_to_another_condition_falls_back_says_so_and_is_audited(signed_in_db, lang):
    """A colorectal care team's link to oesophageal cancer showed the colorectal page without a word (the URL's
    value was silently dropped) and left nothing in the audit log."""
    at = _linked("care", "views/condition_team.py", lang, condition="oesophageal_cancer")
    assert at.selectbox(key="condition").value == "colorectal_cancer"
    assert _said(at, lang, "filter.condition")
    other = default_catalog().condition("oesophageal_cancer").label(lang)
    assert not [e for e in at.markdown if other in e.value] and other not in at.title[0].value
    asked = [e for e in _refusals(signed_in_db, "care") if e.get("filter") == "condition"]
    assert asked and asked[-1] == {"what": "link", "filter": "condition", "asked": "oesophageal_cancer"}


def test_a_link_to_another_hospitals_unit_or_a_group_is_refused_for_a_team_limited_to_its_hospital(
    signed_in_db,
):
    at = _linked("care_h01", "views/condition_team.py", unit_hospital="H02", peers="H02,H03")
    assert at.selectbox(key="unit_hospital").value == "H01"
    assert _said(at, "en", "filter.unit") and _said(at, "en", "filter.comparison_group")
    asked = {e["filter"]: e["asked"] for e in _refusals(signed_in_db, "care_h01") if e.get("what") == "link"}
    assert asked.items() >= {"unit_hospital": "H02", "peers": "H02,H03"}.items()


def test_a_managers_link_to_another_hospitals_department_and_a_level_that_does_not_exist(signed_in_db):
    at = _linked("manager", "views/overview.py", level="department", unit_department="H02/SUR")
    assert at.selectbox(key="unit_department").value.startswith("H01/")
    assert _said(at, "en", "filter.unit")
    at = _linked("manager", "views/overview.py", level="patient")
    assert at.selectbox(key="level").value == "hospital" and _said(at, "en", "filter.unit_level")
    asked = {e["filter"]: e["asked"] for e in _refusals(signed_in_db, "manager") if e.get("what") == "link"}
    assert asked.items() >= {"unit_department": "H02/SUR", "level": "patient"}.items()


def test_a_link_the_viewer_may_follow_is_neither_refused_nor_audited(signed_in_db):
    before = len(_refusals(signed_in_db, "care"))  # the registry (and its log) is shared by the module's tests
    at = _linked("care", "views/condition_team.py", condition="colorectal_cancer", unit_hospital="H02")
    assert at.selectbox(key="unit_hospital").value == "H02"
    assert not at.warning and len(_refusals(signed_in_db, "care")) == before
    # the notice goes once the viewer picks other filters
    at = _linked("care", "views/condition_team.py", level="patient")
    assert at.warning
    at.selectbox(key="unit_hospital").select("H03").run()
    assert not at.warning


def test_a_links_unknown_language_or_meeting_date_is_said_and_audited(signed_in_db):
    at = _linked("care", "views/overview.py", "xx", meeting="not-a-date")
    lang = at.radio(key="lang").value  # the language the page fell back to (the browser's, else Dutch)
    assert _said(at, lang, "filter.language") and _said(at, lang, "meeting.date")
    asked = {e["filter"]: e["asked"] for e in _refusals(signed_in_db, "care") if e.get("what") == "link"}
    assert asked.items() >= {"language": "xx", "meeting": "not-a-date"}.items()
