"""The operator's VBHC_* settings and the files commands write: a value the product cannot use, a database it
cannot reach, or an output path that is not a file gives one line naming it, never a traceback, an error box or
a device replaced by a report."""

from __future__ import annotations

import os
import stat

import pytest
from streamlit.testing.v1 import AppTest

from tests.apptest import run_on_page
from vbhc import settings
from vbhc.catalog import default_catalog
from vbhc.cli import main
from vbhc.settings import SettingError, check_settings
from vbhc.store import get_engine


@pytest.fixture(autouse=True)
def _catalog_read_again():
    """The catalog is read once per process (default_catalog): a test of VBHC_CATALOG_DIR reads it afresh, and
    the tests after it read the shipped one again."""
    default_catalog.cache_clear()
    yield
    default_catalog.cache_clear()


#: (setting, value, what the line says): every kind of setting, each with a value it cannot use
BAD = [
    ("VBHC_SUPPRESS_BELOW", "abc", "must be a whole number"),
    ("VBHC_SUPPRESS_BELOW", "-5", "must be 0 or more"),
    ("VBHC_SUPPRESS_BELOW", "2.5", "must be a whole number"),
    ("VBHC_MAX_UPLOAD_MB", "nan", "must be more than 0"),  # NaN passes every comparison: no limit at all
    ("VBHC_MAX_UPLOAD_MB", "ten", "must be a number"),
    ("VBHC_MAX_ROWS", "0", "must be more than 0"),
    ("VBHC_SIGNAL_EXPLAIN_DAYS", "-3", "must be more than 0"),
    ("VBHC_IMPORT_CHUNK_ROWS", "0", "must be more than 0"),
    ("VBHC_IMPORT_CHUNK_ROWS", "1e5", "must be a whole number"),
    ("VBHC_WARM_UP_YEARS_UP_TO", "lots", "must be a whole number"),
    ("VBHC_AUTH", "ldap", "must be 'oidc' or 'local'"),
    ("VBHC_DATABASE_URL", "garbage", "is not a database address"),
    ("VBHC_DATABASE_URL", "mysql://user:secret@db/vbhc", "is not a database address"),
    ("VBHC_CATALOG_DIR", "/nonexistent/catalog", "names a condition catalog that cannot be used"),
]


@pytest.mark.parametrize(("name", "value", "says"), BAD, ids=[f"{n}={v}" for n, v, _ in BAD])
def test_a_command_refuses_a_setting_it_cannot_use_in_one_line(monkeypatch, capsys, tmp_path, name, value, says):
    """Before: VBHC_SUPPRESS_BELOW=abc gave `vbhc report: unexpected error (ValueError)`, VBHC_DATABASE_URL=garbage
    'the database refused the request (ArgumentError)', VBHC_MAX_UPLOAD_MB=nan switched the upload limit off."""
    monkeypatch.setenv("VBHC_DATABASE_URL", f"sqlite:///{tmp_path / 'vbhc.db'}")
    monkeypatch.setenv(name, value)
    assert main(["status"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith(f"vbhc status: The setting {name} ") and says in err
    assert "secret" not in err  # a database address's password is never printed
    with pytest.raises(SettingError):
        check_settings()
    assert not (tmp_path / "vbhc.db").exists()  # refused before anything was opened


def test_the_defaults_and_good_values_pass(monkeypatch):
    for name in {n for n, _, _ in BAD}:
        monkeypatch.delenv(name, raising=False)
    check_settings()
    monkeypatch.setenv("VBHC_MAX_UPLOAD_MB", "inf")  # no limit, said so
    monkeypatch.setenv("VBHC_SUPPRESS_BELOW", " 0 ")
    monkeypatch.setenv("VBHC_AUTH", "OIDC")
    monkeypatch.setenv("VBHC_DATABASE_URL", "postgresql+psycopg://vbhc:pw@db.example.org:5432/vbhc")
    check_settings()
    assert settings.max_upload_mb() == float("inf") and settings.suppress_below() == 0
    assert settings.auth_mode() == "oidc"


def _dashboard(lang: str) -> AppTest:
    at = AppTest.from_file(str(settings.PROJECT_ROOT / "streamlit_app.py"), default_timeout=120)
    at.query_params["lang"] = lang
    return run_on_page(at, "views/methods.py")


@pytest.mark.parametrize(
    ("name", "value"), [("VBHC_SUPPRESS_BELOW", "abc"), ("VBHC_AUTH", "ldap"), ("VBHC_CATALOG_DIR", "/nonexistent")]
)
def test_the_dashboard_names_a_wrong_setting_in_one_line_not_an_error_box(local_mode, monkeypatch, name, value):
    """Before: Streamlit's box 'This app has encountered an error' on every page. Now one line in the viewer's
    language naming the setting (not its value: a page is no place for the operator's configuration)."""
    monkeypatch.setenv(name, value)
    at = _dashboard("nl")
    assert not at.exception
    assert [e.value for e in at.error] == [
        f"Het dashboard is verkeerd ingesteld: de instelling {name} heeft een waarde waarmee het niet kan werken. "
        "Vraag de beheerder van het dashboard dit te herstellen (het logboek van de server noemt de waarde)."
    ]
    assert value not in at.error[0].value
    assert not at.selectbox and not at.dataframe


def test_the_dashboard_says_the_database_cannot_be_reached(local_mode, monkeypatch, tmp_path):
    """A database that cannot be opened (here a folder where the file should be; on a server, PostgreSQL down)
    gave Streamlit's error box; now one line that says so and what to do."""
    (tmp_path / "vbhc.db").mkdir()
    monkeypatch.setenv("VBHC_DATABASE_URL", f"sqlite:///{tmp_path / 'vbhc.db'}")
    get_engine.cache_clear()
    try:
        at = _dashboard("en")
    finally:
        get_engine.cache_clear()
    assert not at.exception
    assert [e.value for e in at.error] == [
        "The database cannot be reached, so nothing can be shown. Try again in a moment; if it stays so, tell the "
        "dashboard's administrator."
    ]


@pytest.mark.parametrize(
    "command",
    [
        ["report", "--condition", "hip_osteoarthritis", "--out"],
        ["audit", "--csv"],
        ["external", "export", "--condition", "hip_osteoarthritis", "--source", "Ons ziekenhuis", "--out"],
    ],
    ids=["report", "audit", "external-export"],
)
def test_a_command_never_writes_its_file_over_a_pipe_or_device(monkeypatch, capsys, tmp_path, command):
    """`vbhc report --out /dev/full` (run as root) replaced the device with the PDF, as the report is written
    beside its target and moved into place; `vbhc external export` wrote NAME.tmp beside it without any check.
    Now each refuses a target that is not a file, in one line, and leaves it as it was."""
    monkeypatch.setenv("VBHC_DATABASE_URL", f"sqlite:///{tmp_path / 'vbhc.db'}")
    pipe = tmp_path / ("out.csv" if command[0] == "audit" else "out.xlsx")
    os.mkfifo(pipe)
    assert main([*command, str(pipe)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "it is not a file but a device, pipe or socket" in err, err
    assert stat.S_ISFIFO(pipe.stat().st_mode)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("out")) == [pipe.name]
