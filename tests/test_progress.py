"""Progress lines say only what is known: no rate from a single chunk, no total that changes (issue 13)."""

from __future__ import annotations

import io

import pytest

from tests.registry_files import write_small_registry
from vbhc import progress as progress_module
from vbhc.ingest import import_files
from vbhc.progress import ProgressPrinter


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch) -> _Clock:
    c = _Clock()
    monkeypatch.setattr(progress_module.time, "monotonic", c)
    return c


def _printer() -> tuple[ProgressPrinter, io.StringIO]:
    out = io.StringIO()
    return ProgressPrinter(out, interval=0.0), out


def test_a_first_chunk_right_after_the_start_shows_no_rate(clock):
    printer, out = _printer()
    printer("care_cycles.csv", 0, None, fraction=0.0)
    clock.now += 1e-6  # the first chunk arrives a microsecond later: 50,000 rows would read as 5e10 rows/s
    printer("care_cycles.csv", 50_000, None, fraction=0.25)
    assert "rows/s" not in out.getvalue()
    assert out.getvalue().splitlines()[-1] == "care_cycles.csv: 50,000 rows  25% of the file"


def test_the_rate_is_measured_from_the_stage_start_and_the_time_left_from_the_share_read(clock):
    printer, out = _printer()
    printer("costs.csv", 0, None, fraction=0.0)
    clock.now += 2.0
    printer("costs.csv", 100_000, None, fraction=0.5)
    assert out.getvalue().splitlines()[-1] == "costs.csv: 100,000 rows  50% of the file  50,000 rows/s  2 s left"


def test_a_stage_whose_first_report_is_late_counts_only_the_rows_after_it(clock):
    printer, out = _printer()
    printer("prom_responses.csv", 40_000, None, fraction=0.4)  # no report at zero: the clock starts here
    clock.now += 4.0
    printer("prom_responses.csv", 60_000, None, fraction=0.6)
    assert "5,000 rows/s" in out.getvalue().splitlines()[-1]


def test_an_exact_total_is_shown_with_the_time_left(clock):
    printer, out = _printer()
    printer("cycles", 0, 1_000)
    clock.now += 1.0
    printer("cycles", 250, 1_000)
    assert out.getvalue().splitlines()[-1] == "cycles: 250/1,000 rows  250 rows/s  3 s left"


def test_an_import_reports_no_invented_total_and_reads_each_file_to_the_end(sqlite_engine, tmp_path):
    calls: list[tuple[str, int, int | None, float | None]] = []

    def record(stage: str, done: int, total: int | None, *, fraction: float | None = None) -> None:
        calls.append((stage, done, total, fraction))

    files = write_small_registry(tmp_path)
    report = import_files(files, engine=sqlite_engine, progress=record, chunk_rows=3)
    csv_stages = {s.file for s in report.sources if s.sheet is None}
    assert csv_stages
    for stage in csv_stages:
        mine = [c for c in calls if c[0] == stage]
        assert mine[0][1:] == (0, None, 0.0), "the clock starts before the first row is read"
        assert all(total is None for _, _, total, _ in mine), "a CSV's row count is not known before the end"
        shares = [f for *_, f in mine]
        assert shares == sorted(shares) and shares[-1] == 1.0
        rows = [done for _, done, _, _ in mine]
        assert rows == sorted(rows) and rows[-1] == next(s.rows_read for s in report.sources if s.file == stage)
    # the summary gives each file's true pace, measured over the whole file
    assert all(s.seconds > 0 for s in report.sources)
    assert " rows read, " in report.summary() and " s" in report.summary()


def test_files_whose_rows_fill_the_last_chunk_exactly_are_imported(sqlite_engine, tmp_path):
    """Every file then ends with an empty chunk (it carries the end of the file for the progress line)."""
    files = write_small_registry(tmp_path)
    report = import_files(files, engine=sqlite_engine, chunk_rows=1)
    assert report.ok and all(s.rows_read > 0 for s in report.sources)


def test_a_share_just_short_of_the_whole_file_is_not_shown_as_100_percent():
    line = ProgressPrinter.line("costs.csv", 260_000, None, 0.996, 10.0, 260_000)
    assert line.startswith("costs.csv: 260,000 rows  99% of the file  26,000 rows/s")
    assert "100%" in ProgressPrinter.line("costs.csv", 260_814, None, 1.0, 10.0, 260_814)


@pytest.mark.parametrize("quoted", [False, True], ids=["arrow", "csv-module"])
def test_only_the_end_of_a_file_reports_100_percent_and_the_share_follows_the_rows(sqlite_engine, tmp_path, quoted):
    """Observed: 'costs.csv: 200,000 rows 100% of the file' and then '260,814 rows 100% of the file': Arrow reads
    ahead of the rows it hands out, so the file position is no measure of the rows done."""
    files = write_small_registry(tmp_path)
    outcomes = tmp_path / "clinical_outcomes.csv"
    text = outcomes.read_text()
    if quoted:  # a quote sends the file through the csv module instead of Arrow
        head, *rest = text.splitlines()
        first = rest[0].split(",")
        rest[0] = ",".join([f'"{first[0]}"', *first[1:]])
        text = "\n".join([head, *rest]) + "\n"
        outcomes.write_text(text)
    calls: list[tuple[int, float | None]] = []

    def record(stage: str, done: int, total: int | None, *, fraction: float | None = None) -> None:
        if stage == outcomes.name:
            calls.append((done, fraction))

    report = import_files(files, engine=sqlite_engine, progress=record, chunk_rows=2)
    rows = next(s.rows_read for s in report.sources if s.file == outcomes.name)
    assert rows >= 6 and len(calls) >= 4
    shares = [f for _, f in calls]
    assert shares[-1] == 1.0 and all(f < 1.0 for f in shares[:-1]), shares
    assert shares == sorted(shares)
    if not quoted:  # Arrow's path counts the bytes of the rows handed out: the share follows the rows
        for done, share in calls[1:-1]:
            assert abs(share - done / rows) < 0.2, (done, rows, share)
