"""A roles mapping (VBHC_ACCESS_FILE) with a mistake, or none at all: every signed-in user read the loader's error
on the page, with the file's path on the server and the value written (a person's e-mail address, a group's
name). The page now says in the viewer's language that no role can be given and to tell the administrator; the
server's log has the one-line error (vbhc.access.config_problem, as for the published groups' file)."""

from __future__ import annotations

import logging

import pytest
from streamlit.testing.v1 import AppTest

from tests.roles import USERS
from vbhc import access
from vbhc.access import AccessConfigError, Role, Scope, Viewer, load_access, load_comparison_groups
from vbhc.i18n import t
from vbhc.settings import PROJECT_ROOT

#: a typo in a person's address (no @) and a group that names a care team: both must stay off the page
BROKEN = """
[[grant]]
group = "zorgteam-geheim-h07"
role = "quality"

[[grant]]
user = "jan.de.vries.umc-utrecht.nl"
role = "admin"
"""


def _page(tmp_path, monkeypatch, mapping: str | None, lang: str) -> tuple[AppTest, str]:
    folder = tmp_path / "etc-vbhc-secret"
    folder.mkdir()
    path = folder / "access.toml"
    if mapping is not None:
        path.write_text(mapping, encoding="utf-8")
    monkeypatch.setenv("VBHC_ACCESS_FILE", str(path))
    monkeypatch.setenv("VBHC_AUTH", "oidc")
    monkeypatch.setenv("VBHC_DATABASE_URL", f"sqlite:///{tmp_path / 'vbhc.db'}")
    at = AppTest.from_file(str(PROJECT_ROOT / "streamlit_app.py"), default_timeout=120)
    at.secrets["auth"] = {"client_id": "x", "client_secret": "x", "server_metadata_url": "http://localhost/x"}
    at.user = {"is_logged_in": True, **USERS["admin"]}
    at.query_params["lang"] = lang
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    shown = " ".join(e.value for e in [*at.error, *at.markdown, *at.caption, *at.sidebar.caption])
    return at, shown.replace("\\", "")  # markdown escapes off


@pytest.mark.parametrize("lang", ["en", "nl"])
def test_a_broken_mapping_is_told_not_shown(tmp_path, monkeypatch, caplog, lang):
    caplog.set_level(logging.ERROR, logger="vbhc.access")
    at, shown = _page(tmp_path, monkeypatch, BROKEN, lang)
    assert [e.value for e in at.error] == [t("auth.mapping_unreadable", lang)]
    for secret in ("jan.de.vries", "etc-vbhc-secret", "access.toml", str(tmp_path), "'user'"):
        assert secret not in shown, secret
    logged = caplog.text
    assert "etc-vbhc-secret/access.toml" in logged and "jan.de.vries.umc-utrecht.nl" in logged
    assert "grant 2, key 'user'" in logged and "Traceback" not in logged


def test_a_missing_mapping_names_no_path(tmp_path, monkeypatch, caplog):
    caplog.set_level(logging.ERROR, logger="vbhc.access")
    at, shown = _page(tmp_path, monkeypatch, None, "nl")
    assert [e.value for e in at.error] == [t("auth.mapping_unreadable", "nl")]
    assert "etc-vbhc-secret" not in shown and str(tmp_path) not in shown
    assert "etc-vbhc-secret/access.toml: roles mapping file not found" in caplog.text


def test_config_problem_keeps_the_detail_for_its_keepers_and_the_log(caplog):
    """One function for both files: with no viewer (the roles mapping itself is wrong) nobody reads the detail;
    for the published groups the quality directorate and the administrator do. The log has it every time."""
    error = "/etc/vbhc/access.toml: grant 2, key 'user', value 'jan.de.vries': must be an email address"
    admin = Viewer("admin@example.org", "Admin", (Scope(Role.ADMIN),))
    manager = Viewer("m@example.org", "M", (Scope(Role.MANAGER, hospitals=frozenset({"H01"})),))
    with caplog.at_level(logging.ERROR, logger="vbhc.access"):
        assert access.config_problem(error, "en", "auth.mapping_unreadable") == t("auth.mapping_unreadable", "en")
        assert access.config_problem(error, "nl", "comparison.groups_unreadable", manager) == t(
            "comparison.groups_unreadable", "nl"
        )
        assert access.config_problem(error, "nl", "comparison.groups_unreadable", admin) == error
    assert caplog.text.count(error) == 3


@pytest.mark.parametrize("load", [load_access, load_comparison_groups])
def test_a_file_the_server_cannot_read_is_a_one_line_mistake(tmp_path, monkeypatch, load):
    """A mapping or groups' file the server may not read (permissions) raised PermissionError, which no page
    caught: a traceback on every page. It is a mistake naming the file, like any other."""
    path = tmp_path / "config.toml"
    path.write_text("", encoding="utf-8")

    def refuse(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(type(path), "read_text", refuse)
    with pytest.raises(AccessConfigError, match=r"config\.toml: cannot be read: Permission denied"):
        load(path)
