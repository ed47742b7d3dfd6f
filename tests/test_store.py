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


def test_head_revision_is_alembics_head():
    """The schema check at a server's start reads the newest revision without Alembic; it must name the one
    Alembic upgrades to."""
    from alembic.script import ScriptDirectory

    from vbhc.store import alembic_config, get_engine, head_revision

    script = ScriptDirectory.from_config(alembic_config(get_engine("sqlite://")))
    assert head_revision() == script.get_current_head() is not None


def test_an_older_database_is_still_upgraded(tmp_path):
    """The quick check only skips Alembic for a database at the newest revision: one at an older revision is
    upgraded in place, and one at the newest is left alone without loading Alembic."""
    import subprocess
    import sys

    from alembic import command

    from vbhc.store import alembic_config, get_engine, head_revision

    db = tmp_path / "old.db"
    engine = get_engine(f"sqlite:///{db}")
    command.upgrade(alembic_config(engine), "0006")
    assert not schema_is_current(engine)
    upgrade_schema(engine)
    assert schema_is_current(engine) and head_revision() == "0008"
    engine.dispose()
    get_engine.cache_clear()
    code = (
        "import sys\n"
        "from vbhc.store import get_engine, upgrade_schema\n"
        f"upgrade_schema(get_engine({f'sqlite:///{db}'!r}))\n"
        "assert 'alembic' not in sys.modules, 'Alembic was loaded for a database at the newest revision'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
