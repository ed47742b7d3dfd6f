"""PostgreSQL's COPY in the import. A chunk's COPY runs in a worker thread while the next chunk is read
(vbhc.ingest.stage._CopyBehind): every later statement must see the rows copied before it, a COPY the server refuses
must be one line in the report with nothing stored, and no thread may outlive the batch. The stored care cycles are
read back with COPY ... TO STDOUT as CSV (vbhc.ingest.stage.read_postgres): every id must come back as stored."""

from __future__ import annotations

import threading
import time

import pandas as pd
import pytest
from sqlalchemy import select, update

from tests.registry_files import write_small_registry
from vbhc import models
from vbhc.catalog import default_catalog
from vbhc.ingest import ImportRefused, ImportReport, import_files
from vbhc.ingest import run as ingest_run
from vbhc.ingest import stage as staging
from vbhc.store import row_counts

on_postgres = pytest.mark.parametrize("engine", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)


def _copy_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("vbhc-copy")]


@on_postgres
def test_a_slow_copy_is_waited_for_by_every_later_statement(engine, tmp_path, monkeypatch):
    """Each chunk's COPY starts late in its thread: the checks and the upsert after it still see all its rows."""
    files = write_small_registry(tmp_path / "files")
    copy_chunk = staging._copy_chunk

    def late(*args):
        time.sleep(0.05)
        copy_chunk(*args)

    monkeypatch.setattr(staging, "_copy_chunk", late)
    report = import_files(files, engine, chunk_rows=3)
    counts = row_counts(engine)
    for source in report.sources:
        assert source.rows_inserted == source.rows_read > 0, source
    assert counts["care_cycles"] == report.sources[1].rows_read
    assert counts["clinical_outcomes"] == report.sources[2].rows_read
    assert counts["cost_lines"] == report.sources[4].rows_read
    assert counts["prom_responses"] == report.sources[3].rows_read
    assert not _copy_threads()


@on_postgres
def test_a_copy_the_server_refuses_midway_is_one_line_and_nothing_is_stored(engine, tmp_path, monkeypatch):
    """The second chunk's COPY text is damaged (as a server refusing the write): the batch is refused with the
    database's one line, not a driver traceback, and the first chunk's rows and the other files' are rolled back."""
    files = write_small_registry(tmp_path / "files")
    import_files(files[:2], engine)
    before = row_counts(engine)
    csv_bytes = staging._csv_bytes
    calls = []

    def damaged_second_chunk(spec, frame, row_numbers, *batch_id):
        calls.append(spec.name)
        data = csv_bytes(spec, frame, row_numbers, *batch_id)
        return b"\x00" + data if len(calls) == 2 else data  # no column takes a NUL byte

    monkeypatch.setattr(staging, "_csv_bytes", damaged_second_chunk)
    with pytest.raises(ImportRefused) as refused:
        import_files(files[2:3], engine, chunk_rows=3, force=True)
    problems = refused.value.report.problems
    assert [(p.file, p.row, p.column) for p in problems] == [("database", None, None)]
    assert problems[0].rule.code == "read.database_refused"
    assert len(calls) >= 2
    assert row_counts(engine) == before
    assert not _copy_threads()


@on_postgres
def test_the_stored_cycles_read_through_copy_are_the_rows_as_stored(engine, tmp_path):
    """Ids that CSV must quote or could misread (a comma, a quote, a line break, a carriage return, spaces, an empty
    id, the texts NULL and \\N, non-ASCII) come back exactly, with their condition and index date."""
    files = write_small_registry(tmp_path / "files")
    import_files(files[:2], engine)
    c = models.CareCycle.__table__
    awkward = ["a,b", 'quo"te', "line\nbreak", "carriage\rreturn", " spaced ", "", "NULL", "\\N", "ümlaut"]
    with engine.begin() as conn:
        ids = conn.execute(select(c.c.cycle_id).order_by(c.c.cycle_id)).scalars().all()
        assert len(ids) >= len(awkward)
        for old, new in zip(ids, awkward, strict=False):
            conn.execute(update(c).where(c.c.cycle_id == old).values(cycle_id=new))
    with engine.connect() as conn:
        frame = ingest_run._Batch(conn, default_catalog(), ImportReport(), "", False)._stored_cycles()
        query = select(c.c.cycle_id, c.c.condition, c.c.index_date)
        rows = conn.execute(query).all()
        copied = staging.read_postgres(conn, query, ingest_run._CYCLE_TYPES).to_pylist()
    assert sorted(tuple(r.values()) for r in copied) == sorted(tuple(r) for r in rows)
    assert frame.column_names == ["cycle_id", "condition", "index_date"] and len(frame) == len(rows)
    got = {
        i: (condition, pd.Timestamp(date))
        for i, condition, date in zip(*(frame.column(n).to_pylist() for n in frame.column_names), strict=True)
    }
    assert got == {r.cycle_id: (r.condition, pd.Timestamp(r.index_date)) for r in rows}
    assert set(awkward) <= set(got)
