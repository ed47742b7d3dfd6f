"""Reading ahead (vbhc.ingest.ahead): an import validates the next chunk in a reading thread while the batch's
connection writes this one. The chunks keep their order, an error while reading arrives where its chunk would
have, a failed write stops the reader, and only the caller's thread touches the database or the progress bar."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import event

from tests.registry_files import write_small_registry
from vbhc.ingest import import_files
from vbhc.ingest.ahead import ReadAhead
from vbhc.ingest.validate import STATE_NEEDS, VALIDATORS, BatchState


def _counted(n: int, made: list[int], closed: list[bool]) -> Iterator[int]:
    try:
        for i in range(n):
            made.append(i)
            yield i
    finally:
        closed.append(True)


def test_the_chunks_arrive_in_order_and_the_reader_stays_one_ahead():
    made: list[int] = []
    seen: list[int] = []
    with ReadAhead(_counted(50, made, [])) as chunks:
        for item in chunks:
            time.sleep(0.002)  # the write: the reader has time to run ahead, if it would
            # made: the item in hand, one in the queue and one the reader holds while it waits to hand it over
            assert len(made) <= len(seen) + 3
            seen.append(item)
    assert seen == list(range(50))


def test_an_error_while_reading_arrives_where_its_chunk_would_have():
    def failing() -> Iterator[int]:
        yield 1
        yield 2
        raise ValueError("row 7: damaged")

    seen: list[int] = []
    with pytest.raises(ValueError, match="row 7: damaged"), ReadAhead(failing()) as chunks:
        for item in chunks:
            seen.append(item)
    assert seen == [1, 2]


def test_a_failed_write_stops_the_reader_and_closes_what_it_read():
    made: list[int] = []
    closed: list[bool] = []
    ahead = ReadAhead(_counted(1_000, made, closed))
    with pytest.raises(RuntimeError, match="disk full"), ahead as chunks:
        for _ in chunks:
            raise RuntimeError("disk full")
    assert not ahead._thread.is_alive()
    assert closed == [True] and len(made) <= 3


def test_every_validator_says_what_it_reads_from_the_database():
    """The reading thread never touches the connection: what a validator needs is read before (prefetch)."""
    assert set(STATE_NEEDS) == set(VALIDATORS)


def test_a_validator_that_reads_the_database_from_the_reading_thread_is_a_loud_error():
    state = BatchState(None, lambda: {("H01", "ORT")}, lambda: None)  # type: ignore[arg-type]
    state.prefetch("care_cycles")
    state.offline = True
    assert ("H01", "ORT") in state.units()  # prefetched: no database read
    with pytest.raises(RuntimeError, match="reading thread"):
        state.cycle_conditions()


def test_an_import_touches_the_database_and_the_progress_bar_only_from_its_own_thread(sqlite_engine, tmp_path):
    """Streamlit's progress bar belongs to the page's script thread, and a connection to one thread at a time."""
    caller = threading.get_ident()
    statements: set[int] = set()
    progress: set[int] = set()

    def on_statement(*_args) -> None:
        statements.add(threading.get_ident())

    def record(stage: str, done: int, total: int | None, *, fraction: float | None = None) -> None:
        progress.add(threading.get_ident())

    event.listen(sqlite_engine, "before_cursor_execute", on_statement)
    try:
        report = import_files(write_small_registry(tmp_path), engine=sqlite_engine, progress=record, chunk_rows=3)
    finally:
        event.remove(sqlite_engine, "before_cursor_execute", on_statement)
    assert report.ok and sum(s.rows_inserted for s in report.sources) > 0
    assert statements == {caller} and progress == {caller}
