"""What an import batch keeps per care cycle (vbhc.ingest.validate.BatchState, vbhc.ingest.ids.IdTable): the known
care cycles, patients and vital status are checked against across every file and chunk of a batch, so whatever is
kept per cycle grows with the registry (10,000,000 care cycles: 10 GB, when each id was a Python string in a frame
and in dictionaries). They are kept in compact arrays: no Python object per cycle, and look-ups as exact as a
dictionary's, also where two ids share a hash."""

from __future__ import annotations

import gc
import random
import sys

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from tests.gc_young import collections_of_new_objects
from vbhc.catalog import default_catalog
from vbhc.ingest import ids as ids_module
from vbhc.ingest.ids import IdTable
from vbhc.ingest.validate import BatchState

CYCLES = 30_000
CHUNK = 10_000


def _no_stored_cycles() -> pa.Table:
    return pa.table(
        {
            "cycle_id": pa.array([], pa.large_string()),
            "condition": pa.array([], pa.string()),
            "index_date": pa.array([], pa.timestamp("ns")),
        }
    )


def _fill(state: BatchState) -> None:
    """A first import's care cycles and vital status, chunk by chunk, as the validators hand them over."""
    condition = next(iter(state.catalog.conditions))
    for start in range(0, CYCLES, CHUNK):
        numbers = range(start, start + CHUNK)
        cycles = pd.Series([f"C{i:08d}" for i in numbers], dtype="str")
        patients = pd.Series([f"P{i // 2:08d}" for i in numbers], dtype="str")
        state.cycle_twins(cycles)
        state.patient_spellings.twins(patients)
        state.patient_spellings.add(patients)
        state.add_batch_cycles(
            cycles,
            pd.Series(condition, index=cycles.index, dtype="str"),
            pd.Series(pd.Timestamp("2024-01-01"), index=cycles.index),
        )
        state.add_batch_vital(
            cycles,
            pd.Series("vital_status", index=cycles.index, dtype="str"),
            pd.Series(1.0, index=cycles.index),
            pd.Series(pd.Timestamp("2025-01-01"), index=cycles.index),
        )
        del cycles, patients


def test_a_batch_keeps_no_python_object_per_care_cycle():
    """Python's small-object blocks (each str, tuple, dict entry's key) grow by far less than one per cycle."""
    state = BatchState(default_catalog(), set, _no_stored_cycles, lambda: _EMPTY_VITAL)
    # the collections pass over this test's objects only (what a worker's earlier tests left is set aside): the
    # blocks of the objects set aside are in both counts alike
    with collections_of_new_objects():
        gc.collect()
        before = sys.getallocatedblocks()
        _fill(state)
        gc.collect()
        held = sys.getallocatedblocks() - before
    assert held < CYCLES / 10, f"{held:,} Python blocks held for {CYCLES:,} care cycles"
    # and the batch still knows each cycle and its death
    conditions = state.cycle_conditions()
    assert len(conditions) == CYCLES and conditions.index[-1] == f"C{CYCLES - 1:08d}"
    assert (state.death_dates() == pd.Timestamp("2025-01-01")).sum() == CYCLES


_EMPTY_VITAL = pd.DataFrame(
    {"value": np.array([], dtype=float), "date": np.array([], dtype="datetime64[ns]")},
    index=pd.MultiIndex.from_arrays([np.array([], dtype=object)] * 2, names=["cycle_id", "outcome"]),
)


@pytest.mark.parametrize("collide", [False, True], ids=["hashes", "one-hash-in-four"])
@pytest.mark.parametrize("seed", range(6))
def test_the_table_finds_what_a_dictionary_finds(monkeypatch, seed, collide):
    """Random ids added in parts and looked up, also with a hash that gives four ids out of four one value."""
    if collide:
        real = ids_module._hashes
        monkeypatch.setattr(ids_module, "_hashes", lambda text: real(text) % np.uint64(4))
    rng = random.Random(seed)
    alphabet = ["a", "A", "b", "0", "1", "é", " ", ","]
    table, oracle = IdTable(), {}
    for _ in range(rng.randint(1, 12)):
        part = list(dict.fromkeys("".join(rng.choice(alphabet) for _ in range(rng.randint(0, 4))) for _ in range(30)))
        asked = part + [v + "x" for v in part[:5]]
        expected = [oracle.get(v, -1) for v in asked]
        assert table.find(pd.Series(asked, dtype=rng.choice(["str", object]))).tolist() == expected
        new = [v for v in part if v not in oracle]
        for value, slot in zip(new, table.add(new).tolist(), strict=True):
            oracle[value] = slot
        assert table.take(np.array(list(oracle.values()))).to_pylist() == list(oracle)
    assert len(table) == len(oracle)


@pytest.mark.parametrize("dictionary", [False, True], ids=["texts", "codes"])
def test_reading_the_stored_cycles_builds_no_array_of_objects_per_cycle(dictionary):
    """A small file into a large registry reads every stored care cycle into the batch's arrays (its cycles are
    looked up there): numpy's transient arrays stay near the ~40 bytes a cycle the id table's hashes and slots
    take. Each condition went through an object array per cycle, pd.factorize and a copy of the dates (~97 bytes
    a cycle: a 2,000-row outcomes file into a registry of 1,000,000 cycles peaked 80 MB higher than now).
    The conditions come as texts (PostgreSQL) or as codes of the distinct ones (SQLite)."""
    import tracemalloc

    n = 200_000
    catalog = default_catalog()
    names = list(catalog.conditions)
    conditions = [names[i % len(names)] if i % 7 else None for i in range(n)]
    days = (np.arange(n) % 900).astype("timedelta64[D]")
    dates = np.where(np.arange(n) % 5 == 0, np.datetime64("NaT"), np.datetime64("2024-01-01", "ns") + days)
    condition = pa.array(conditions, pa.string())
    stored = pa.table(
        {
            "cycle_id": pa.array([f"C{i:08d}" for i in range(n)], pa.large_string()),
            "condition": condition.dictionary_encode() if dictionary else condition,
            "index_date": pa.array(dates, pa.timestamp("ns")),
        }
    )
    state = BatchState(catalog, set, lambda: stored)
    asked = pd.Index(["C00000001", "C00000007", "C00000010", f"C{n - 1:08d}", "nobody"])
    tracemalloc.start()
    try:
        found = state.conditions_of(asked)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak / n < 60, f"{peak / n:.0f} bytes a cycle while the stored cycles were read"
    expected = [conditions[1], None, conditions[10], conditions[n - 1], None]
    assert [None if pd.isna(c) else c for c in found] == expected
    wanted = [dates[1], dates[7], dates[10], dates[n - 1], np.datetime64("NaT")]
    assert pd.DatetimeIndex(state.index_dates_of(asked)).equals(pd.DatetimeIndex(wanted))
