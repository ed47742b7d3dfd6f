"""The stored care cycles are read once per import batch (vbhc.ingest.validate.BatchState): a care cycles file
in the batch adds its own cycles to what was read, so its child files need no second read of the whole table
(once per file of a million cycles it was a second or more). The checks stay the same: a child row of a cycle
stored before the batch, or brought by it, is accepted; one of neither is refused."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from vbhc import models
from vbhc.demo import generate_demo
from vbhc.ingest import ImportRefused, import_files
from vbhc.ingest import run as ingest_run


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("demo")
    generate_demo(folder, cycles=30, seed=11)
    return folder


@pytest.fixture
def reads(monkeypatch) -> list[int]:
    """The rows of each read of the stored care cycles."""
    seen: list[int] = []
    original = ingest_run._Batch._stored_cycles

    def counted(self):
        frame = original(self)
        seen.append(len(frame))
        return frame

    monkeypatch.setattr(ingest_run._Batch, "_stored_cycles", counted)
    return seen


def _split_cycles(demo: Path, tmp_path: Path) -> tuple[Path, Path, list[str]]:
    """The demo's care cycles as two files (the first 20, the rest), and the ids of the rest."""
    with (demo / "care_cycles.csv").open(encoding="utf-8", newline="") as fh:
        rows = list(csv.reader(fh))
    first, rest = tmp_path / "first" / "care_cycles.csv", tmp_path / "rest" / "care_cycles.csv"
    for path, part in ((first, rows[1:21]), (rest, rows[21:])):
        path.parent.mkdir()
        with path.open("w", encoding="utf-8", newline="") as fh:
            csv.writer(fh).writerows([rows[0], *part])
    return first, rest, [r[0] for r in rows[21:]]


def test_a_batch_reads_the_stored_cycles_once(engine: Engine, demo: Path, tmp_path: Path, reads: list[int]):
    first, rest, _ = _split_cycles(demo, tmp_path)
    import_files([demo / "units.xlsx", first], engine)
    reads.clear()
    # a second batch: more care cycles, then outcomes and costs of every cycle (stored ones and the batch's own)
    report = import_files([rest, demo / "clinical_outcomes.csv", demo / "costs.csv"], engine)
    assert reads == [20]  # read once, before the batch wrote any cycle
    assert [s.rows_inserted > 0 for s in report.sources] == [True, True, True]
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(models.CareCycle)).scalar_one() == 30


def test_a_child_row_of_no_known_cycle_is_still_refused(engine: Engine, demo: Path, tmp_path: Path, reads: list[int]):
    first, rest, _ = _split_cycles(demo, tmp_path)
    import_files([demo / "units.xlsx", first], engine)
    costs = tmp_path / "costs.csv"
    lines = (demo / "costs.csv").read_text(encoding="utf-8").splitlines()
    costs.write_text("\n".join([*lines, "C9999999,imaging,1,10.00"]) + "\n", encoding="utf-8")
    with pytest.raises(ImportRefused) as refused:
        import_files([rest, costs], engine)
    assert len(reads) == 2  # once for each batch
    problems = refused.value.report.problems
    assert [(p.row, p.column, p.value) for p in problems] == [(len(lines) + 1, "cycle_id", "C9999999")]
    with engine.connect() as conn:  # the refused batch changed no row
        assert conn.execute(select(func.count()).select_from(models.CareCycle)).scalar_one() == 20
        assert conn.execute(select(func.count()).select_from(models.CostLine)).scalar_one() == 0
