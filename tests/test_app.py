"""The landing page shows the registry's volumes, and a clear empty state without data."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from tests.registry_files import write_small_registry
from vbhc.ingest import import_files
from vbhc.registry import condition_volumes
from vbhc.settings import PROJECT_ROOT
from vbhc.store import get_engine


@pytest.fixture
def app_db(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'app.db'}"
    monkeypatch.setenv("VBHC_DATABASE_URL", url)
    get_engine.cache_clear()
    yield url
    get_engine.cache_clear()


def _run() -> AppTest:
    at = AppTest.from_file(str(PROJECT_ROOT / "streamlit_app.py"), default_timeout=60)
    at.run()
    assert not at.exception, at.exception
    return at


def test_empty_database_shows_how_to_load_data(app_db):
    at = _run()
    assert "database is empty" in at.info[0].value
    assert "vbhc demo" in at.info[0].value


def test_volumes_match_the_registry(app_db, tmp_path):
    engine = get_engine(app_db)
    import_files(write_small_registry(tmp_path / "files"), engine)
    at = _run()
    expected = condition_volumes(engine=engine)
    assert at.metric[0].value == f"{int(expected['care_cycles'].sum()):,}"
    shown = at.dataframe[0].value
    assert list(shown["Care cycles"]) == list(expected["care_cycles"])
    assert "Oesophageal cancer" in set(shown["Condition"])


def test_new_import_shows_without_waiting_for_the_cache(app_db, tmp_path):
    engine = get_engine(app_db)
    files = write_small_registry(tmp_path / "files")
    import_files(files[:2], engine)
    at = _run()
    assert at.metric[0].value == "12"
    from tests.registry_files import cycles, write_csv

    more = [dict(r, cycle_id=r["cycle_id"] + "b") for r in cycles()]
    import_files([write_csv(tmp_path / "care_cycles_more.csv", more)], engine)
    at.run()
    assert at.metric[0].value == "24"
