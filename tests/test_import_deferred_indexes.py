"""SQLite's first load of a table builds its plain indexes after the rows (vbhc.ingest.stage.defer_sqlite_indexes):
dropped inside the batch's transaction only, never a unique one nor one whose stored definition differs from
vbhc.models, and back exactly as migrated after a stored, a refused and a restaged file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from vbhc import models
from vbhc.demo import generate_demo
from vbhc.ingest import ImportRefused, import_files
from vbhc.ingest import stage as staging
from vbhc.store import get_engine, upgrade_schema

CARE_CYCLES = models.CareCycle.__table__
PLAIN = {"ix_care_cycles_batch_id", "ix_care_cycles_condition_date", "ix_care_cycles_patient_id", "ix_care_cycles_unit"}


@pytest.fixture
def engine(tmp_path) -> Iterator[Engine]:
    engine = get_engine(f"sqlite:///{tmp_path / 'registry.db'}")
    upgrade_schema(engine)
    yield engine
    engine.dispose()
    get_engine.cache_clear()


def _schema(engine: Engine) -> list[tuple]:
    with engine.connect() as conn:
        return sorted(
            conn.execute(text("SELECT type, name, tbl_name, sql FROM sqlite_master WHERE name <> 'sqlite_stat1'")).all()
        )


def _indexes(conn) -> set[str]:
    rows = conn.execute(text("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'care_cycles'"))
    return {name for (name,) in rows}


def test_plain_indexes_dropped_in_the_transaction_and_built_again(engine):
    before = _schema(engine)
    with engine.connect() as conn, conn.begin():
        assert staging.defer_sqlite_indexes(conn, CARE_CYCLES) == []  # no transaction open yet: nothing dropped
        assert _indexes(conn) >= PLAIN
        conn.execute(text("DELETE FROM care_cycles"))  # pysqlite opens the transaction at a write
        deferred = staging.defer_sqlite_indexes(conn, CARE_CYCLES)
        assert {ix.name for ix in deferred} == PLAIN
        assert _indexes(conn) == {"sqlite_autoindex_care_cycles_1"}  # the primary key stays
        staging.rebuild_indexes(conn, deferred)
    assert _schema(engine) == before


def test_a_rollback_puts_the_dropped_indexes_back(engine):
    before = _schema(engine)
    with engine.connect() as conn:
        trans = conn.begin()
        conn.execute(text("DELETE FROM care_cycles"))
        assert staging.defer_sqlite_indexes(conn, CARE_CYCLES)
        trans.rollback()
    assert _schema(engine) == before


def test_an_index_defined_otherwise_than_the_models_is_left_alone(engine):
    with engine.begin() as conn:
        conn.execute(text("DROP INDEX ix_care_cycles_patient_id"))
        conn.execute(text("CREATE INDEX ix_care_cycles_patient_id ON care_cycles (patient_id, condition)"))
    with engine.connect() as conn, conn.begin():
        conn.execute(text("DELETE FROM care_cycles"))
        deferred = staging.defer_sqlite_indexes(conn, CARE_CYCLES)
        assert {ix.name for ix in deferred} == PLAIN - {"ix_care_cycles_patient_id"}
        assert "ix_care_cycles_patient_id" in _indexes(conn)
        staging.rebuild_indexes(conn, deferred)


def test_imports_leave_the_schema_as_migrated(engine, tmp_path: Path, monkeypatch):
    """A first load refused after its direct write met a duplicate key (restaged), then one stored: the direct
    write ran without the plain indexes, and the schema is the migrated one after each import."""
    during: list[set[str]] = []
    insert_directly = staging.insert_directly

    def recorded(conn, spec, frame, batch_id):
        if spec.target is CARE_CYCLES:
            during.append(_indexes(conn))
        return insert_directly(conn, spec, frame, batch_id)

    monkeypatch.setattr(staging, "insert_directly", recorded)
    folder = tmp_path / "demo"
    generate_demo(folder, cycles=30, seed=3)
    before = _schema(engine)
    import_files([folder / "units.xlsx"], engine)
    lines = (folder / "care_cycles.csv").read_text(encoding="utf-8").splitlines()
    duplicate = tmp_path / "care_cycles.csv"
    duplicate.write_text("\n".join([*lines, lines[3]]) + "\n", encoding="utf-8")
    with pytest.raises(ImportRefused) as refused:
        import_files([duplicate], engine)
    assert any(getattr(p.rule, "code", None) == "read.duplicate_key" for p in refused.value.report.problems)
    assert _schema(engine) == before
    import_files([folder / "care_cycles.csv"], engine)
    assert _schema(engine) == before
    assert len(during) == 2  # one chunk of each of the two files
    assert all(names == {"sqlite_autoindex_care_cycles_1"} for names in during)
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA integrity_check")).scalar_one() == "ok"
        plan = conn.execute(text("EXPLAIN QUERY PLAN SELECT cycle_id FROM care_cycles WHERE patient_id = 'x'")).all()
        assert any("ix_care_cycles_patient_id" in str(row) for row in plan)
        assert conn.execute(text("SELECT count(*) FROM care_cycles")).scalar_one() == len(lines) - 1
