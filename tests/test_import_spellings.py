"""The twin-id check of a file read in chunks (vbhc.ingest.validate.Spellings, BatchState.cycle_twins): each chunk
costs its own ids, not every id known so far. Before, every chunk rebuilt and hashed an index of every known id
(stored and of earlier chunks), so a first import of a million care cycles did that five times per id column, ten
million fifty times (the cost is for benchmarks/import_speed.py to show: no timed asserts in tests). The
twins found are those of a row-by-row oracle, chunk after chunk.
"""

from __future__ import annotations

import random

import pandas as pd
import pyarrow as pa
import pytest

from vbhc.catalog import default_catalog
from vbhc.ingest.validate import BatchState, Spellings


def _key(value: str) -> str:
    """How a reader compares ids, written out: case alike, a number's leading zeros left off."""
    folded = value.casefold()
    return (folded.lstrip("0") or "0") if folded.isdigit() and folded.isascii() else folded


class _Oracle:
    """Row by row: an id not known exactly is a twin of the first known id, or earlier new id, of its key."""

    def __init__(self, stored: list[str]):
        self.known: set[str] = set(stored)
        self.first: dict[str, str] = {}
        for value in stored:
            self.first.setdefault(_key(value), value)

    def twins(self, ids: list[str]) -> dict[str, str]:
        first = dict(self.first)
        found = {}
        for value in ids:
            if value == "" or value in self.known:
                continue
            seen = first.setdefault(_key(value), value)
            if seen != value:
                found[value] = seen
        return found

    def add(self, ids: list[str]) -> None:
        for value in ids:
            if value != "":
                self.known.add(value)
                self.first.setdefault(_key(value), value)


def _stored_ids(count: int) -> pd.Index:
    return pd.Index([f"C{n:07d}" for n in range(count)], dtype=object, name="cycle_id")


def _chunks(count: int, size: int) -> list[pd.Series]:
    return [
        pd.Series([f"N{n:07d}-{c}" for n in range(size)], dtype="string[pyarrow]").rename("cycle_id")
        for c in range(count)
    ]


def _stored_cycles(ids: list[str], condition: str, index_date: pd.Timestamp | None) -> pa.Table:
    """Stored care cycles as vbhc.ingest.run reads them: Arrow columns cycle_id, condition and index_date."""
    return pa.table(
        {
            "cycle_id": pa.array(ids, pa.large_string()),
            "condition": pa.array([condition] * len(ids), pa.string()),
            "index_date": pa.array([index_date] * len(ids), pa.timestamp("ns")),
        }
    )


def test_the_batch_still_knows_every_care_cycle():
    stored = _stored_ids(3)
    table = _stored_cycles(list(stored), "breast_cancer", pd.Timestamp("2024-01-01"))
    state = BatchState(default_catalog(), set, lambda: table)
    for chunk in _chunks(2, 2):
        state.cycle_twins(chunk)
        state.add_batch_cycles(
            chunk, pd.Series("colorectal_cancer", index=chunk.index), pd.Series("2024-02-01", index=chunk.index)
        )
    conditions = state.cycle_conditions()
    assert list(conditions.index) == [*stored, "N0000000-0", "N0000001-0", "N0000000-1", "N0000001-1"]
    assert list(conditions) == ["breast_cancer"] * 3 + ["colorectal_cancer"] * 4


@pytest.mark.parametrize("seed", range(40))
def test_the_twins_found_chunk_by_chunk_are_the_row_by_row_oracles(seed):
    rng = random.Random(seed)
    alphabet = ["a", "A", "b", "B", "0", "1", "7", "é", "É", ""]

    def some_ids(count: int) -> list[str]:
        return ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 3))) for _ in range(count)]

    stored = list(dict.fromkeys(v for v in some_ids(rng.randint(0, 12)) if v))
    oracle = _Oracle(stored)
    spellings = Spellings(lambda: pd.Index(stored, dtype=object))
    state = BatchState(
        default_catalog(),
        set,
        lambda: _stored_cycles(stored, "breast_cancer", None),
    )
    for _ in range(rng.randint(1, 8)):
        ids = some_ids(rng.randint(0, 10))
        chunk = pd.Series(ids, dtype=rng.choice(["string[pyarrow]", object]))
        expected = oracle.twins(ids)
        assert spellings.twins(chunk) == expected
        assert state.cycle_twins(chunk) == expected
        # a care cycle is known once its row named a condition: all of them, or a random part (another Series)
        named = chunk if rng.random() < 0.5 else chunk[[rng.random() < 0.8 for _ in ids]]
        spellings.add(named)
        state.add_batch_cycles(
            named, pd.Series("breast_cancer", index=named.index), pd.Series(pd.NaT, index=named.index)
        )
        oracle.add(list(named))
