"""The board review page (views/board.py) as a manager, in Dutch: the own hospital's condition teams with their
counts, no other hospital by name, no English word or raw id. The counts themselves are tested without Streamlit
in tests/test_board.py."""

from __future__ import annotations

import contextlib
import sqlite3

from streamlit.testing.v1 import AppTest

from tests.roles import MAPPING, USERS
from tests.shown import tables as shown_tables
from tests.test_dutch_walk import _report, findings
from vbhc import improvement
from vbhc.access import Role, Scope, Viewer
from vbhc.catalog import default_catalog
from vbhc.i18n import t
from vbhc.improvement import Flag, Rule
from vbhc.registry import units
from vbhc.settings import PROJECT_ROOT
from vbhc.store import get_engine

CONDITION = "colorectal_cancer"
PAGE = "views/board.py"


def test_a_manager_reads_the_board_review_in_dutch(small_demo_registry, tmp_path, monkeypatch):
    engine, truth = small_demo_registry
    path = tmp_path / "board.db"
    with (
        contextlib.closing(sqlite3.connect(engine.url.database)) as source,
        contextlib.closing(sqlite3.connect(path)) as copy,
    ):
        source.backup(copy)  # a copy: the signals written here stay out of the other tests' registry
    get_engine.cache_clear()
    url = f"sqlite:///{path}"
    own = truth["own_hospital"]
    flags = [Flag(h, "anastomotic_leak", Rule.FUNNEL_998, "worse", 0.21) for h in (own, "H02")]
    improvement.record_detection(get_engine(url), "import", CONDITION, "hospital", "1-1", flags)
    quality = Viewer("quality@example.org", "Quality", (Scope(Role.QUALITY),))
    improvement.set_target(get_engine(url), quality, CONDITION, "anastomotic_leak", 0.5)  # met by any hospital
    mapping = tmp_path / "access.toml"
    mapping.write_text(MAPPING, encoding="utf-8")
    monkeypatch.setenv("VBHC_DATABASE_URL", url)
    monkeypatch.setenv("VBHC_ACCESS_FILE", str(mapping))
    monkeypatch.setenv("VBHC_AUTH", "oidc")
    monkeypatch.setenv("VBHC_START_PAGE", "board")  # the first run draws the board, not the overview

    at = AppTest.from_file(str(PROJECT_ROOT / "streamlit_app.py"), default_timeout=180)
    at.secrets["auth"] = {"client_id": "x", "client_secret": "x", "server_metadata_url": "http://localhost/x"}
    at.user = {"is_logged_in": True, **USERS["manager"], "name": "Testgebruiker"}
    at.query_params["lang"] = "nl"
    at.run()
    assert not at.exception, [e.value for e in at.exception]

    assert at.title[0].value == t("board.title", "nl")
    table = shown_tables(at)[0].value
    names = units(get_engine(url)).drop_duplicates("hospital").set_index("hospital")["hospital_name"]
    # the manager's own hospital (H01) only: named once in the caption, no column repeating it in every row
    assert t("column.hospital", "nl") not in table.columns
    assert names[own] in " ".join(e.value for e in at.caption)
    row = table[table[t("column.condition", "nl")] == default_catalog().condition(CONDITION).label("nl")]
    assert list(row[t("board.col_open_signals", "nl")]) == ["1"]  # H02's signal is not the manager's
    assert list(row[t("board.col_targets_met", "nl")]) == ["1"]  # judged on the stored result the manager sees
    shown = " ".join(e.value for e in at.caption) + table.to_string()
    assert all(name not in shown for h, name in names.items() if h != own)
    found = findings(at, PAGE)
    assert not found, _report(found)
    get_engine.cache_clear()
