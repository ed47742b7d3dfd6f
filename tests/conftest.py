"""Shared fixtures: a database engine on SQLite and on a real PostgreSQL server, and small registries."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text

from tests.pg_server import start_postgres
from vbhc.store import get_engine, upgrade_schema

_counter = itertools.count()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[object]:
    """A private PostgreSQL server for the whole session, or the one named by VBHC_TEST_POSTGRES_URL."""
    if os.environ.get("VBHC_TEST_SKIP_POSTGRES") == "1":
        pytest.skip("VBHC_TEST_SKIP_POSTGRES=1: PostgreSQL tests explicitly switched off")
    server = start_postgres()
    yield server
    server.stop()


def _postgres_engine(server) -> Iterator[Engine]:
    name = f"vbhc_test_{os.getpid()}_{next(_counter)}"
    admin = create_engine(server.admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name}"))
    engine = get_engine(server.url(name))
    try:
        yield engine
    finally:
        engine.dispose()
        get_engine.cache_clear()
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()


def _sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    engine = get_engine(f"sqlite:///{tmp_path / 'vbhc.db'}")
    try:
        yield engine
    finally:
        engine.dispose()
        get_engine.cache_clear()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request, tmp_path) -> Iterator[Engine]:
    """An empty registry database with the current schema, on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        gen = _sqlite_engine(tmp_path)
    else:
        gen = _postgres_engine(request.getfixturevalue("postgres_server"))
    eng = next(gen)
    try:
        upgrade_schema(eng)
        yield eng
    finally:
        next(gen, None)


@pytest.fixture
def sqlite_engine(tmp_path) -> Iterator[Engine]:
    gen = _sqlite_engine(tmp_path)
    eng = next(gen)
    try:
        upgrade_schema(eng)
        yield eng
    finally:
        next(gen, None)


@pytest.fixture(scope="session")
def demo_registry(tmp_path_factory):
    """The default demo registry (50,000 cycles, default seed), generated and imported once per session.

    Returns (engine, truth): the planted truth is what the statistics must find.
    """
    import json

    from vbhc.demo import generate_demo
    from vbhc.ingest import import_files

    folder = tmp_path_factory.mktemp("demo")
    result = generate_demo(folder / "files")
    engine = get_engine(f"sqlite:///{folder / 'demo.db'}")
    import_files(result.files, engine, imported_by="test")
    truth = json.loads(result.truth_path.read_text(encoding="utf-8"))
    yield engine, truth
    engine.dispose()


@pytest.fixture
def local_mode(monkeypatch) -> Iterator[None]:
    """The single-user mode (every role, no sign-in): it runs only when the server listens on localhost, and
    AppTest has no server, so the address is set here (and VBHC_AUTH cleared) for the test."""
    from streamlit import config

    monkeypatch.delenv("VBHC_AUTH", raising=False)
    previous = config.get_option("server.address")
    config.set_option("server.address", "localhost")
    yield
    config.set_option("server.address", previous)
