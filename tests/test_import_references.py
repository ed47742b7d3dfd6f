"""The foreign keys of an import, checked once per file (issue 13): on PostgreSQL the upsert skips the trigger per
row when the role may, and SQLite's batch connection its look-up per row, so the set-based check must refuse what
the per-row check would have refused, with its row."""

from __future__ import annotations

import csv

import numpy as np
import pandas as pd
import pytest

from tests.registry_files import write_small_registry
from vbhc.ingest import ImportRefused, import_files
from vbhc.ingest import run as ingest_run
from vbhc.ingest import stage as staging
from vbhc.ingest.validate import BatchState
from vbhc.store import row_counts


def _add_outcome_of_a_cycle_nobody_stored(path, cycle_id: str) -> int:
    """Append an outcome row for `cycle_id`; returns its row number as a person sees it."""
    with path.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    template = next(r for r in rows if r["outcome"] == "length_of_stay")
    rows.append({**template, "cycle_id": cycle_id})
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return len(rows) + 1


@pytest.mark.parametrize("direct", [True, False], ids=["first-import", "staged"])
def test_a_reference_the_validation_let_through_is_refused_and_nothing_is_written(
    engine, tmp_path, monkeypatch, direct
):
    """On SQLite both paths: the direct path of a first import (outcomes into an empty table) and the staged one."""
    if not direct:
        monkeypatch.setattr(ingest_run, "DIRECT_TABLES", frozenset())
    files = write_small_registry(tmp_path / "files")
    import_files(files[:2], engine)
    before = row_counts(engine)
    outcomes = files[2]
    row = _add_outcome_of_a_cycle_nobody_stored(outcomes, "GHOST-1")
    condition = next(r for r in csv.DictReader(outcomes.open(encoding="utf-8")) if r["outcome"] == "length_of_stay")
    known = BatchState.conditions_of

    def with_a_ghost(self, distinct):  # the validation believes the cycle exists, as if it vanished after the check
        found = known(self, distinct)
        ghost = np.asarray(distinct, dtype=object) == "GHOST-1"
        found[ghost] = known(self, pd.Index([condition["cycle_id"]]))[0]
        return found

    monkeypatch.setattr(BatchState, "conditions_of", with_a_ghost)
    with pytest.raises(ImportRefused) as info:
        import_files(files[2:], engine)
    report = info.value.report
    assert row_counts(engine) == before, "a refusal changes no row"
    with engine.connect() as conn:
        set_based = engine.dialect.name == "sqlite" or staging.may_skip_row_triggers(conn)
    if set_based:  # SQLite, or PostgreSQL with the privilege: the set-based check names the row
        lines = [p for p in report.problems if "not stored" in p.rule]
        assert [(p.file, p.row, p.column, p.value) for p in lines] == [(outcomes.name, row, "cycle_id", "GHOST-1")]
        assert lines[0].rule == "refers to a row of care_cycles that is not stored"
    else:  # the database's own foreign key refuses the batch: one line, nothing imported
        assert len(report.problems) == 1 and "nothing was imported" in report.problems[0].rule


@pytest.mark.postgres
def test_a_role_without_the_privilege_keeps_the_row_triggers_and_imports_the_same(request, tmp_path):
    """A PostgreSQL role that may not set session_replication_role imports through the per-row foreign-key
    triggers, with the same result as the set-based check."""
    server = request.getfixturevalue("postgres_server")
    from sqlalchemy import create_engine, text

    from tests.conftest import _postgres_engine

    gen = _postgres_engine(server)
    fast = next(gen)
    try:
        files = write_small_registry(tmp_path / "files")
        with fast.connect() as conn:
            assert staging.may_skip_row_triggers(conn), "the test server's role is a superuser"
        expected = import_files(files, fast)
        database = fast.url.database
        role = f"importer_{database}"
        with fast.begin() as conn:
            conn.execute(text(f"CREATE ROLE {role} LOGIN NOSUPERUSER"))
            conn.execute(text(f"GRANT ALL ON ALL TABLES IN SCHEMA public TO {role}"))
            conn.execute(text(f"GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO {role}"))
            conn.execute(
                text(
                    "TRUNCATE prem_responses, prom_questionnaires, prom_items, cost_lines, clinical_outcomes, "
                    "care_cycles, departments, hospitals, import_batches, audit_events CASCADE"
                )
            )
        slow = create_engine(fast.url.set(username=role))
        try:
            with slow.connect() as conn:
                assert not staging.may_skip_row_triggers(conn)
            got = import_files(files, slow)
            assert [(s.file, s.rows_inserted, s.rows_updated) for s in got.sources] == [
                (s.file, s.rows_inserted, s.rows_updated) for s in expected.sources
            ]
            assert row_counts(slow) == row_counts(fast)
            again = import_files(files, slow, force=True)
            assert all(s.rows_unchanged == s.rows_read for s in again.sources if s.table != "units")
        finally:
            slow.dispose()
            with fast.begin() as conn:
                conn.execute(text(f"DROP OWNED BY {role}"))
                conn.execute(text(f"DROP ROLE {role}"))
    finally:
        next(gen, None)


@pytest.mark.postgres
def test_postgresql_locks_the_stored_rows_a_file_refers_to_and_not_the_batchs_own(request, tmp_path, monkeypatch):
    """The set-based check locks each stored care cycle a file refers to (FOR KEY SHARE, as the per-row trigger
    would): another session cannot delete or re-key it before the batch commits. A care cycle the batch wrote
    itself is seen by no other session before the commit, so with every referenced cycle the batch's own (a first
    import) no lock is taken: the lock's join was a third of a child file's time in the database."""
    from sqlalchemy import create_engine, event, select, text

    from tests.conftest import _postgres_engine
    from vbhc import models

    gen = _postgres_engine(request.getfixturevalue("postgres_server"))
    engine = next(gen)
    other = create_engine(engine.url)
    try:
        locks: list[str] = []

        def seen(conn, cursor, statement, parameters, context, executemany):
            if "FOR KEY SHARE" in statement:
                locks.append(statement)

        event.listen(engine, "before_cursor_execute", seen)
        files = write_small_registry(tmp_path / "files")
        import_files(files, engine)  # one batch: every cycle the outcomes, PROMs and costs name is its own
        assert locks == [] or all("departments" in s for s in locks), locks

        with engine.connect() as conn:
            stored = conn.execute(select(models.CareCycle.cycle_id).order_by(models.CareCycle.cycle_id)).scalars().all()
        blocked: list[bool] = []
        real = staging.unresolved_references

        def and_try_to_delete(conn, stage, target, limit, own_batches=()):
            found = real(conn, stage, target, limit, own_batches)
            if target.name == "clinical_outcomes":  # inside the batch's transaction: another session tries
                with other.connect() as intruder:
                    intruder.execute(text("SET lock_timeout = '200ms'"))
                    try:
                        intruder.execute(
                            select(models.CareCycle.cycle_id)
                            .where(models.CareCycle.cycle_id == stored[0])
                            .with_for_update(nowait=True)
                        ).all()
                        blocked.append(False)
                    except Exception:
                        blocked.append(True)
                    intruder.rollback()
            return found

        monkeypatch.setattr(staging, "unresolved_references", and_try_to_delete)
        locks.clear()
        report = import_files([files[2]], engine, force=True)  # outcomes of stored care cycles: another batch's
        assert report.ok and blocked == [True]
        assert any("care_cycles" in s for s in locks)
    finally:
        other.dispose()
        next(gen, None)
