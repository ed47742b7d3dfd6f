"""A registry imported once per test module, and a copy of it for each test (tests/test_results.py,
tests/test_prem_indicators.py).

Why: importing the demo into every test's database (and computing the same view in a dozen tests) was a fifth of
tests/test_results.py. A copy (a SQLite backup, a PostgreSQL CREATE DATABASE ... TEMPLATE) holds the source's rows
and import batches (ids and timestamps), so it has the source's dataset version, and the views stored for the
source are valid in the copy's results store (vbhc.results names a version's folder by them).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

from tests.pg_server import COPY_STRATEGY
from vbhc import results
from vbhc.ingest import import_files
from vbhc.store import get_engine

_counter = itertools.count()


@dataclass(frozen=True)
class Source:
    """An imported registry: its URL, and the folder of its results store with the views computed on it (None:
    no views stored)."""

    url: str
    store: Path | None


def build(engine: Engine, files: list[Path], root: Path, views: Callable[[Engine], list[results.ViewKey]]) -> Source:
    """Import `files` into `engine`'s empty registry and store `views(engine)` in a results store under `root`."""
    import_files(files, engine, imported_by="test")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("VBHC_RESULTS_DIR", str(root))
        results.precompute(engine, views(engine))
        folder = results.ResultStore(engine).folder
    assert folder is not None and folder.is_dir()
    url = engine.url.render_as_string(hide_password=False)
    engine.dispose()  # SQLite: the write-ahead log folded into the file; PostgreSQL: no session left on a template
    get_engine.cache_clear()
    return Source(url, folder)


def imported(engine: Engine, *batches: list[Path], imported_by: str = "") -> Source:
    """Import each batch of files into `engine`'s empty registry, one import after the other, and store no views:
    the source of the copies of tests that check what an import stored, not the views computed on it."""
    for files in batches:
        import_files(files, engine, imported_by=imported_by)
    url = engine.url.render_as_string(hide_password=False)
    engine.dispose()  # as build: SQLite's write-ahead log folded into the file, no session left on a template
    get_engine.cache_clear()
    return Source(url, None)


@contextlib.contextmanager
def postgres_imported(server, schema: str, *batches: list[Path], imported_by: str = "") -> Iterator[Source]:
    """`imported` into a new database on the PostgreSQL `server` made from the migrated empty `schema`
    (tests/conftest.py `_postgres_schema`), dropped afterwards: a module's source database, built once, that its
    tests' databases are made from."""
    with postgres_database(server, schema) as engine:
        yield imported(engine, *batches, imported_by=imported_by)


def sqlite_imported(schema: Path, folder: Path, *batches: list[Path], imported_by: str = "") -> Source:
    """`imported` into a copy of the migrated empty SQLite `schema` (tests/conftest.py `_sqlite_schema`) at
    folder/vbhc.db: a module's source database, built once, that its tests copy."""
    shutil.copyfile(schema, folder / "vbhc.db")
    return imported(get_engine(f"sqlite:///{folder / 'vbhc.db'}"), *batches, imported_by=imported_by)


def _backup(source: Source, path: str | Path) -> None:
    """The source's SQLite file copied to `path` with SQLite's backup (a consistent copy of the whole file)."""
    with (
        contextlib.closing(sqlite3.connect(make_url(source.url).database)) as original,
        contextlib.closing(sqlite3.connect(path)) as copy,
    ):
        original.backup(copy)


def sqlite_copy(source: Source, path: Path) -> Engine:
    """An engine on a copy of the source's SQLite file at `path` (without its results)."""
    _backup(source, path)
    return get_engine(f"sqlite:///{path}")


def copy_for_test(request: pytest.FixtureRequest, backend: str, tmp_path: Path) -> Iterator[Engine]:
    """A test's own copy of the module's imported registry on `backend` (a fixture `<backend>_source` gives it):
    a SQLite file in tmp_path, or a PostgreSQL database made from it as template; disposed (dropped) after the
    test. For a fixture to `yield from`."""
    source = request.getfixturevalue(f"{backend}_source")
    if backend == "postgres":
        with postgres_copy(request.getfixturevalue("postgres_server"), source) as engine:
            yield engine
        return
    engine = sqlite_copy(source, tmp_path / "vbhc.db")
    try:
        yield engine
    finally:
        engine.dispose()
        get_engine.cache_clear()


@contextlib.contextmanager
def postgres_database(server, template: str) -> Iterator[Engine]:
    """A new database on the PostgreSQL `server`, a copy of the database `template`, dropped afterwards."""
    name = f"vbhc_copy_{os.getpid()}_{next(_counter)}"
    with server.admin().connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name} TEMPLATE {template} {COPY_STRATEGY}"))
    engine = get_engine(server.url(name))
    try:
        yield engine
    finally:
        engine.dispose()
        get_engine.cache_clear()
        server.drop_later(name)  # in the background (tests/pg_server.py PostgresServer.drop_later)


def overwrite(engine: Engine, source: Source, server=None) -> None:
    """Make the database behind `engine` a copy of the source's, in place: the engine (the `engine` fixture's, with
    its parametrization and teardown) goes on working on the same file or database name. `server`: the PostgreSQL
    server both are on (a PostgreSQL database is dropped and made again from the source as its template)."""
    engine.dispose()  # no connection may stay open on the database replaced
    if engine.dialect.name == "sqlite":
        _backup(source, engine.url.database)
        return
    name, template = engine.url.database, make_url(source.url).database
    with server.admin().connect() as conn:
        conn.execute(text(f"DROP DATABASE {name} WITH (FORCE)"))
        conn.execute(text(f"CREATE DATABASE {name} TEMPLATE {template} {COPY_STRATEGY}"))


def database_of(source: Source) -> str:
    """The name of the source's PostgreSQL database (the template its copies are made from)."""
    return str(make_url(source.url).database)


def template_of(request: pytest.FixtureRequest, empty: str, **starts_from: str) -> str:
    """The database a test's PostgreSQL `engine` is made from (tests/conftest.py `postgres_template`): the
    module's imported source (`starts_from`: the per-test fixture that starts from it -> the source's fixture)
    when the test uses that fixture, so its database is made once from it; else `empty`, the migrated schema."""
    for fixture, source in starts_from.items():
        if fixture in request.fixturenames:
            return database_of(request.getfixturevalue(source))
    return empty


def overwrite_from(engine: Engine, request: pytest.FixtureRequest, name: str) -> None:
    """`overwrite` the test's `engine` with the module's source of its backend: the fixture `sqlite_<name>` or
    `postgres_<name>` by the engine's dialect (a per-test fixture's one line, whichever backend it is given). A
    PostgreSQL engine already made from that source (the module's POSTGRES_SOURCES names it) is left as it is."""
    if engine.dialect.name == "sqlite":
        overwrite(engine, request.getfixturevalue(f"sqlite_{name}"))
        return
    source = request.getfixturevalue(f"postgres_{name}")
    if request.getfixturevalue("postgres_template") != database_of(source):
        overwrite(engine, source, request.getfixturevalue("postgres_server"))


def postgres_copy(server, source: Source) -> contextlib.AbstractContextManager[Engine]:
    """A copy of the source's PostgreSQL database (without its results), dropped afterwards."""
    return postgres_database(server, database_of(source))
