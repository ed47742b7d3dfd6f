"""Schema: Alembic migrations create it, match the models exactly, and upgrade an existing database in place."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from vbhc import models
from vbhc.store import schema_is_current, upgrade_schema


def test_migrations_match_the_models(engine):
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), models.metadata)
    assert diff == []
    assert schema_is_current(engine)


def test_upgrade_is_idempotent_and_keeps_data(engine, tmp_path):
    from tests.registry_files import write_small_registry
    from vbhc.ingest import import_files
    from vbhc.store import row_counts

    import_files(write_small_registry(tmp_path / "f"), engine)
    before = row_counts(engine)
    upgrade_schema(engine)
    assert row_counts(engine) == before


def test_indexes_for_dashboard_queries(engine):
    names = {ix["name"] for ix in inspect(engine).get_indexes("care_cycles")}
    assert {"ix_care_cycles_condition_date", "ix_care_cycles_unit"} <= names


def test_a_sqlite_uri_filename_is_the_file_it_names_and_creates_no_folder_named_file(tmp_path, monkeypatch):
    """`sqlite:///file:<path>?mode=ro&uri=true` opens a database read-only; it used to create a folder `file:`
    in the working directory and give the results store another identity than the same file opened plainly."""
    from pathlib import Path

    from sqlalchemy.engine import make_url

    from vbhc.results import database_identity
    from vbhc.settings import results_dir, sqlite_file
    from vbhc.store import get_engine

    db = tmp_path / "data" / "vbhc.db"
    assert sqlite_file(make_url(f"sqlite:///file:{db}?mode=ro&uri=true")) == db
    assert sqlite_file(make_url("sqlite:///file:/x/a%20b.db?uri=true")) == Path("/x/a b.db")
    assert sqlite_file(make_url("sqlite:///file:mem?mode=memory&uri=true")) is None
    assert sqlite_file(make_url("sqlite://")) is None and sqlite_file(make_url("sqlite:///:memory:")) is None
    assert sqlite_file(make_url("sqlite:///file:name.db")) == Path("file:name.db")  # no uri=true: a plain name
    assert results_dir(f"sqlite:///file:{db}?mode=ro&uri=true") == results_dir(f"sqlite:///{db}")

    monkeypatch.chdir(tmp_path)
    plain = get_engine(f"sqlite:///{db}")
    upgrade_schema(plain)
    read_only = get_engine(f"sqlite:///file:{db}?mode=ro&uri=true")
    assert database_identity(read_only) == database_identity(plain)
    with read_only.connect():
        pass
    assert not (tmp_path / "file:").exists()
    plain.dispose()
    read_only.dispose()
    get_engine.cache_clear()
