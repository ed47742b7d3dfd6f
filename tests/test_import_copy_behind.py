"""PostgreSQL: a chunk's COPY runs in a worker thread while the next chunk is read (vbhc.ingest.stage._CopyBehind).
Every later statement must see the rows copied before it, a COPY the server refuses must be one line in the report
with nothing stored, and no thread may outlive the batch."""

from __future__ import annotations

import threading
import time

import pytest

from tests.registry_files import write_small_registry
from vbhc.ingest import ImportRefused, import_files
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

    def damaged_second_chunk(spec, frame, row_numbers):
        calls.append(spec.name)
        data = csv_bytes(spec, frame, row_numbers)
        return b"not a row number" + data if len(calls) == 2 else data

    monkeypatch.setattr(staging, "_csv_bytes", damaged_second_chunk)
    with pytest.raises(ImportRefused) as refused:
        import_files(files[2:3], engine, chunk_rows=3, force=True)
    problems = refused.value.report.problems
    assert [(p.file, p.row, p.column) for p in problems] == [("database", None, None)]
    assert problems[0].rule.code == "read.database_refused"
    assert len(calls) >= 2
    assert row_counts(engine) == before
    assert not _copy_threads()
