"""The import's duplicate-key hashes (vbhc.ingest.run.RefusedKeys) hold 8 bytes per valid row, not 17 plus the
concatenated and sorted copies (issue 13 item 4: a 30-million-row PROM file held ~0.5 GB of them and peaked at
~1 GB more in the check). The check sorts them in place, so the refused rows' duplicates (report) are taken
before: a PROM file alone of its table checks first and reports after, in small chunks here."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pandas as pd
import pytest

from tests.registry_files import CYCLE_COLUMNS, cycles, proms, write_csv, write_units
from vbhc.ingest import ImportRefused, import_files
from vbhc.ingest.run import RefusedKeys
from vbhc.store import row_counts

ROWS, CHUNKS = 400_000, 8


def test_the_duplicate_check_holds_about_eight_bytes_a_row():
    size = ROWS // CHUNKS
    chunks = [
        pd.DataFrame({"cycle_id": [f"C{i:09d}" for i in range(n * size, (n + 1) * size)], "item": "MO"})
        for n in range(CHUNKS)
    ]
    ok = np.zeros(size, dtype=bool)
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        refused = RefusedKeys(["cycle_id", "item"])
        for n, chunk in enumerate(chunks):
            refused.add(chunk, np.arange(n * size + 2, (n + 1) * size + 2), ok, ok, (n + 1) / CHUNKS)
        held = tracemalloc.get_traced_memory()[0] - base
        tracemalloc.reset_peak()
        assert not refused.valid_duplicate()
        check = tracemalloc.get_traced_memory()[1] - base - held
    finally:
        tracemalloc.stop()
    assert held < 9 * ROWS, held  # the hashes; a chunk of consecutive rows keeps only its first row number
    assert check < 2 * ROWS, check  # sorted in place: no copy of them all


@pytest.mark.parametrize("stored_before", [False, True], ids=["first import", "later import"])
@pytest.mark.parametrize("refused_row", ["first", "later"])
def test_a_prom_duplicate_of_a_refused_row_is_named_across_chunks(engine, tmp_path, stored_before, refused_row):
    import_files(
        [write_units(tmp_path / "units.csv"), write_csv(tmp_path / "care_cycles.csv", cycles(), CYCLE_COLUMNS)], engine
    )
    rows = proms()
    if stored_before:
        import_files([write_csv(tmp_path / "proms_before.csv", rows[:6])], engine)
    rows = [*rows, dict(rows[8])]  # the key of row 10 (header = row 1) again in the last row
    last = len(rows) + 1
    rows[8 if refused_row == "first" else -1]["value"] = "n.v.t."
    before = row_counts(engine)
    with pytest.raises(ImportRefused) as refused:
        import_files([write_csv(tmp_path / "proms.csv", rows)], engine, chunk_rows=5)
    assert row_counts(engine) == before
    problems = refused.value.report.problems
    duplicates = [(p.row, p.rule.values["row"]) for p in problems if p.rule.code == "read.duplicate_key"]
    assert duplicates == [(last, 10)]
