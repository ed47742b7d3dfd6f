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
