"""A published groups' file with a mistake: the sidebar says so to every viewer, but the mistake itself (the
file's path on the server, the value written: a group's member hospitals, its note) only to the quality
directorate and the administrator who keep the file. Before, a manager and a care team read it in the sidebar,
with the members of a group never offered to them."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from tests.apptest import run_on_page
from tests.roles import MAPPING, USERS
from vbhc import access
from vbhc.access import Role, Scope, Viewer
from vbhc.i18n import t
from vbhc.settings import PROJECT_ROOT
from vbhc.store import get_engine

BROKEN = """
[[group]]
name = "Secret peers"
hospitals = ["H02", "H03", "H04", "H05", "H06", ""]
note = "SECRET-NOTE"
"""


@pytest.fixture
def broken_groups(small_demo_registry, monkeypatch, tmp_path):
    engine, _ = small_demo_registry
    mapping = tmp_path / "access.toml"
    mapping.write_text(MAPPING, encoding="utf-8")
    groups = tmp_path / "secret-groups.toml"
    groups.write_text(BROKEN, encoding="utf-8")
    monkeypatch.setenv("VBHC_DATABASE_URL", engine.url.render_as_string(hide_password=False))
    monkeypatch.setenv("VBHC_ACCESS_FILE", str(mapping))
    monkeypatch.setenv("VBHC_COMPARISON_GROUPS_FILE", str(groups))
    monkeypatch.setenv("VBHC_AUTH", "oidc")
    get_engine.cache_clear()
    yield groups
    get_engine.cache_clear()


def _sidebar_errors(user: str) -> str:
    at = AppTest.from_file(str(PROJECT_ROOT / "streamlit_app.py"), default_timeout=180)
    at.secrets["auth"] = {"client_id": "x", "client_secret": "x", "server_metadata_url": "http://localhost/x"}
    at.user = {"is_logged_in": True, **USERS[user]}
    at.query_params["lang"] = "en"
    at.session_state["condition"] = "colorectal_cancer"
    run_on_page(at, "views/compare.py")
    assert not at.exception, [e.value for e in at.exception]
    return " ".join(e.value for e in at.sidebar.error).replace("\\", "")  # markdown escapes off


@pytest.mark.parametrize("user", ["manager", "care_h01"])
def test_a_manager_or_care_team_is_told_no_group_can_be_chosen_not_the_files_contents(broken_groups, user):
    shown = _sidebar_errors(user)
    assert t("comparison.groups_unreadable", "en") in shown
    for secret in ("H03", "secret-groups.toml", str(broken_groups.parent)):
        assert secret not in shown


def test_the_quality_directorate_reads_the_mistake(broken_groups):
    shown = _sidebar_errors("quality")
    assert "secret-groups.toml" in shown and "H03" in shown


def test_published_groups_problem_per_role():
    error = "/etc/vbhc/groups.toml: group 1, key 'hospitals', value ['H02', '']: must be a non-empty list"
    scopes = {
        "quality": Scope(Role.QUALITY),
        "admin": Scope(Role.ADMIN),
        "manager": Scope(Role.MANAGER, frozenset({"colorectal_cancer"}), frozenset({"H01"})),
        "care": Scope(Role.CARE_TEAM, frozenset({"colorectal_cancer"})),
    }
    for role, scope in scopes.items():
        viewer = Viewer(f"{role}@example.org", role, (scope,))
        got = access.published_groups_problem(viewer, error, "nl")
        assert got == (error if role in ("quality", "admin") else t("comparison.groups_unreadable", "nl"))
        assert access.published_groups_problem(viewer, None, "en") is None
