"""PostgreSQL's first load of a table builds its primary key and unique keys after its rows
(vbhc.ingest.stage.defer_postgres_keys): dropped inside the file's savepoint only, never where a foreign key refers
to the table (care_cycles), back exactly as migrated after a stored and a refused batch, and a duplicate key of the
file still refused and named on its rows."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.schema import CreateTable

from tests.pg_schema import schema, statements_while_importing
from tests.registry_files import write_small_registry
from vbhc import models
from vbhc.ingest import ImportRefused, import_files
from vbhc.ingest import stage as staging
from vbhc.store import row_counts

on_postgres = pytest.mark.parametrize("engine", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)
OUTCOMES = models.ClinicalOutcome.__table__
COSTS = models.CostLine.__table__
#: the keys a first import of the small registry builds after its rows: the tables no foreign key refers to
DEFERRED = {
    ("clinical_outcomes", "clinical_outcomes_pkey"),
    ("clinical_outcomes", "uq_clinical_outcomes_key"),
    ("cost_lines", "cost_lines_pkey"),
    ("cost_lines", "uq_cost_lines_key"),
    ("prom_questionnaires", "prom_questionnaires_pkey"),
    ("prom_questionnaires", "uq_prom_questionnaires_key"),
}


def _drops_a_key(statement: str) -> bool:
    words = statement.split()
    return words[:2] == ["ALTER", "TABLE"] and words[3:5] == ["DROP", "CONSTRAINT"]


def _dropped_keys(engine, files, **kwargs) -> set[tuple[str, str]]:
    """(table, constraint) of each ALTER TABLE ... DROP CONSTRAINT the import ran."""
    words = [s.split() for s in statements_while_importing(engine, files, _drops_a_key, **kwargs)]
    return {(w[2].strip('"'), w[5].strip('"')) for w in words}


@on_postgres
def test_a_first_load_builds_the_keys_after_its_rows(engine, tmp_path):
    before = schema(engine)
    files = write_small_registry(tmp_path / "files")
    assert _dropped_keys(engine, files) == DEFERRED  # care_cycles' key stays: other tables refer to it
    assert schema(engine) == before
    counts = row_counts(engine)
    assert counts["clinical_outcomes"] > 0 and counts["cost_lines"] > 0 and counts["prom_questionnaires"] > 0
    # vbhc.models' own tables still create their keys (the constraints dropped and added were a copy's)
    created = str(CreateTable(OUTCOMES).compile(dialect=engine.dialect))
    assert "uq_clinical_outcomes_key" in created and "PRIMARY KEY" in created
    # a table that holds rows keeps its keys: the upsert is not a first load
    assert _dropped_keys(engine, files, force=True) == set()
    assert schema(engine) == before


@on_postgres
def test_a_duplicate_key_is_refused_and_named_with_the_keys_built_after(engine, tmp_path):
    before = schema(engine)
    files = write_small_registry(tmp_path / "files")
    costs = files[4].read_text(encoding="utf-8").splitlines()
    costs.append(costs[1])  # the first cost line again, as the file's last row
    files[4].write_text("\n".join(costs) + "\n", encoding="utf-8")
    with pytest.raises(ImportRefused) as refused:
        import_files(files, engine)
    problems = [p for p in refused.value.report.problems if p.rule.code == "read.duplicate_key"]
    cycle, activity = costs[1].split(",")[:2]
    assert [(p.row, p.column, p.value) for p in problems] == [(len(costs), "cycle_id+activity", f"{cycle}/{activity}")]
    assert problems[0].rule.values["row"] == 2
    assert schema(engine) == before
    assert row_counts(engine)["cost_lines"] == 0


@on_postgres
def test_only_keys_as_the_models_define_them_and_only_when_empty(engine):
    with engine.begin() as conn:
        conn.execute(text("ALTER TABLE clinical_outcomes DROP CONSTRAINT uq_clinical_outcomes_key"))
        conn.execute(
            text("ALTER TABLE clinical_outcomes ADD CONSTRAINT uq_clinical_outcomes_key UNIQUE (outcome, cycle_id)")
        )
    with engine.connect() as conn:
        assert staging.defer_postgres_keys(conn, OUTCOMES) == []  # no transaction open: nothing dropped
        with conn.begin():
            keys = staging.defer_postgres_keys(conn, OUTCOMES)
            assert [k.name for k in keys] == ["clinical_outcomes_pkey"]
            staging.rebuild_keys(conn, keys)
        with conn.begin():
            assert staging.defer_postgres_keys(conn, models.CareCycle.__table__) == []  # outcomes refer to it


@on_postgres
def test_a_role_that_does_not_own_the_table_keeps_the_keys(engine):
    before = schema(engine)
    with engine.begin() as conn:
        conn.execute(text("CREATE ROLE vbhc_importer_k NOLOGIN"))
        conn.execute(text("GRANT SELECT, INSERT ON clinical_outcomes TO vbhc_importer_k"))
    try:
        with engine.connect() as conn, conn.begin():
            conn.execute(text("SET LOCAL ROLE vbhc_importer_k"))
            assert staging.defer_postgres_keys(conn, OUTCOMES) == []
    finally:
        with engine.begin() as conn:
            conn.execute(text("REVOKE ALL ON clinical_outcomes FROM vbhc_importer_k"))
            conn.execute(text("DROP ROLE vbhc_importer_k"))
    assert schema(engine) == before


@on_postgres
def test_a_first_load_takes_its_ids_in_file_order_and_leaves_the_sequence_after_them(engine, tmp_path):
    """The direct write takes each chunk's ids at once (stage.copy_directly while the keys are dropped): the same
    ids as the column's default gave row by row, and the sequence where those calls left it."""
    files = write_small_registry(tmp_path / "files")
    import_files(files, engine, chunk_rows=7)  # several chunks per file
    with engine.connect() as conn:
        for table, key in ((COSTS, ("cycle_id", "activity")), (OUTCOMES, ("cycle_id", "outcome"))):
            stored = conn.execute(select(table.c.id, *(table.c[k] for k in key)).order_by(table.c.id)).all()
            assert [r[0] for r in stored] == list(range(1, len(stored) + 1))
            written = [tuple(r[1:]) for r in stored]
            path = files[4] if table is COSTS else files[2]
            lines = path.read_text(encoding="utf-8").splitlines()
            header = lines[0].split(",")
            in_file = [tuple(cells[header.index(k)] for k in key) for cells in (line.split(",") for line in lines[1:])]
            assert written == in_file
            following = conn.execute(select(func.nextval(func.pg_get_serial_sequence(table.name, "id")))).scalar()
            assert following == len(stored) + 1
        questionnaires = conn.execute(text("SELECT id FROM prom_questionnaires ORDER BY id")).scalars().all()
        assert questionnaires == list(range(1, len(questionnaires) + 1))
