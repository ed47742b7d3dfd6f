"""PostgreSQL's first load of care cycles builds the table's plain indexes after its rows
(vbhc.ingest.stage.defer_postgres_indexes): dropped inside the batch's transaction only, never a unique one nor one
whose stored definition differs from vbhc.models, never by a role that does not own the table, and back exactly
as migrated after a stored and a refused batch."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from tests.pg_schema import schema, statements_while_importing
from tests.registry_files import write_small_registry
from vbhc import models
from vbhc.ingest import ImportRefused
from vbhc.ingest import stage as staging
from vbhc.store import row_counts

on_postgres = pytest.mark.parametrize("engine", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)
CARE_CYCLES = models.CareCycle.__table__
PLAIN = {"ix_care_cycles_batch_id", "ix_care_cycles_condition_date", "ix_care_cycles_patient_id", "ix_care_cycles_unit"}


def _indexes(conn) -> dict[str, str]:
    rows = conn.execute(text("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'care_cycles'"))
    return dict(rows.all())


def _drops_an_index(statement: str) -> bool:
    return statement.strip().startswith("DROP INDEX")


@on_postgres
def test_a_first_load_builds_the_plain_indexes_after_its_rows(engine, tmp_path):
    before = schema(engine)
    files = write_small_registry(tmp_path / "files")
    dropped = statements_while_importing(engine, files, _drops_an_index)
    assert {s.split()[-1] for s in dropped} == PLAIN  # the primary key and unique keys stay
    assert schema(engine) == before
    assert row_counts(engine)["care_cycles"] > 0
    # a table that holds rows keeps its indexes: the upsert is not a first load
    again = statements_while_importing(engine, files, _drops_an_index, force=True)
    assert again == []
    assert schema(engine) == before


@on_postgres
def test_a_refused_first_load_leaves_the_indexes_and_no_row(engine, tmp_path):
    before = schema(engine)
    files = write_small_registry(tmp_path / "files")
    outcomes = files[2].read_text(encoding="utf-8").splitlines()
    cells = outcomes[1].split(",")
    cells[0] = "NO_SUCH_CYCLE"  # a reference to no care cycle: the batch is refused after the care cycles' upsert
    files[2].write_text("\n".join([outcomes[0], ",".join(cells), *outcomes[2:]]) + "\n", encoding="utf-8")
    dropped: list[str] = []
    with pytest.raises(ImportRefused):
        statements_while_importing(engine, files, _drops_an_index, dropped)
    assert {s.split()[-1] for s in dropped} == PLAIN
    assert schema(engine) == before
    assert row_counts(engine)["care_cycles"] == 0


@on_postgres
def test_only_plain_indexes_as_the_models_define_them_and_only_when_empty(engine):
    with engine.begin() as conn:
        conn.execute(text("DROP INDEX ix_care_cycles_patient_id"))
        conn.execute(text("CREATE INDEX ix_care_cycles_patient_id ON care_cycles (patient_id, condition)"))
    with engine.connect() as conn:
        assert staging.defer_postgres_indexes(conn, CARE_CYCLES) == []  # no transaction open: nothing dropped
        with conn.begin():
            deferred = staging.defer_postgres_indexes(conn, CARE_CYCLES)
            assert {ix.name for ix in deferred} == PLAIN - {"ix_care_cycles_patient_id"}
            assert set(_indexes(conn)) == {"care_cycles_pkey", "ix_care_cycles_patient_id"}
            staging.rebuild_indexes(conn, deferred)
        assert set(_indexes(conn)) == PLAIN | {"care_cycles_pkey"}


@on_postgres
def test_a_role_that_does_not_own_the_table_keeps_the_indexes(engine):
    with engine.begin() as conn:
        conn.execute(text("CREATE ROLE vbhc_importer_z NOLOGIN"))
        conn.execute(text("GRANT SELECT, INSERT ON care_cycles TO vbhc_importer_z"))
    try:
        with engine.connect() as conn, conn.begin():
            conn.execute(text("SET LOCAL ROLE vbhc_importer_z"))
            assert staging.defer_postgres_indexes(conn, CARE_CYCLES) == []
            assert set(_indexes(conn)) == PLAIN | {"care_cycles_pkey"}
    finally:
        with engine.begin() as conn:
            conn.execute(text("REVOKE ALL ON care_cycles FROM vbhc_importer_z"))
            conn.execute(text("DROP ROLE vbhc_importer_z"))
