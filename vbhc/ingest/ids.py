"""A set of distinct text ids held as compact arrays, for the import's checks that span a batch (every known care
cycle, patient and PREM response).

Why not a dict or a pandas Index of Python strings: those cost ~100-250 bytes per id (a str object, a hash table
entry, pointers), and a batch knows every stored and imported care cycle: at 10,000,000 care cycles that was most
of the import's 10 GB. Here an id costs ~30 bytes: its text in an Arrow array (by slot, the order ids were
added), and its 64-bit hash in sorted runs beside its slot. A look-up hashes only the ids asked about, finds
their hashes by binary search and compares the texts found with the texts asked (a hash shared by two ids is
resolved by comparing each candidate), so the answer is exact."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pandas.util import hash_array

_EMPTY_SLOTS = np.empty(0, np.int64)


def _text(values: object) -> pa.Array:
    """`values` (a Series, Index, array or list of str) as one Arrow large_string array; a column Arrow holds
    already is taken as it is, without a Python object per id."""
    if isinstance(values, (pd.Series, pd.Index)) and isinstance(values.dtype, pd.StringDtype):
        values = pa.array(values.array)
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if isinstance(values, pa.Array):
        return values.cast(pa.large_string())
    if isinstance(values, (pd.Series, pd.Index)):
        values = values.to_numpy(dtype=object)
    return pa.array(np.asarray(values, dtype=object), type=pa.large_string())


#: Ids hashed per pass (_hashes): each pass makes a Python str of each of its ids for a moment, so a part, not a
#: whole table, at once.
_HASHED_PER_PASS = 32_768


def _hashes(text: pa.Array) -> np.ndarray:
    """Each id's 64-bit hash: pandas' hash_array (SipHash in C, a public, well-kept function) of the ids' texts, in
    parts of _HASHED_PER_PASS ids so only that many Python strings exist at once. Equal texts hash equal; two
    texts of one hash are told apart by IdTable.find. A missing id hashes as the empty text."""
    n = len(text)
    if not n:
        return np.empty(0, np.uint64)
    text = pc.fill_null(text, "")
    parts = [
        hash_array(text.slice(start, _HASHED_PER_PASS).to_numpy(zero_copy_only=False), categorize=False)
        for start in range(0, n, _HASHED_PER_PASS)
    ]
    return np.concatenate(parts) if len(parts) > 1 else parts[0]


class IdTable:
    """Distinct ids, each at a slot (0, 1, ... in the order they were added) that the caller's own arrays index."""

    def __init__(self) -> None:
        self._text = pa.array([], type=pa.large_string())
        self._pending: list[pa.Array] = []  # added texts not yet joined into _text
        self._count = 0
        # sorted runs of (hash, slot); a run is merged with the one before it once that is not twice as large,
        # so there are ~log2(n) runs and each id is re-sorted ~log2(n) times in all
        self._runs: list[tuple[np.ndarray, np.ndarray]] = []

    def __len__(self) -> int:
        return self._count

    def texts(self) -> pa.Array:
        """Every id by slot."""
        if self._pending:
            self._text = pa.concat_arrays([self._text, *self._pending])
            self._pending = []
        return self._text

    def take(self, slots: np.ndarray) -> pa.Array:
        """The ids at `slots`."""
        return self.texts().take(pa.array(np.asarray(slots, dtype=np.int64)))

    def find(self, values: object) -> np.ndarray:
        """Each of `values`' slot, -1 where it is not in the table."""
        text = _text(values)
        slots = np.full(len(text), -1, dtype=np.int64)
        if not self._count or not len(text):
            return slots
        hashes = _hashes(text)
        unsure: list[int] = []  # positions whose hash is found but whose first candidate is another id
        for run_hashes, run_slots in self._runs:
            at = np.searchsorted(run_hashes, hashes)
            inside = at < len(run_hashes)
            hit = np.zeros(len(text), dtype=bool)
            hit[inside] = run_hashes[at[inside]] == hashes[inside]
            hit &= slots < 0
            if not hit.any():
                continue
            where = np.flatnonzero(hit)
            candidates = run_slots[at[where]]
            same = pc.equal(self.take(candidates), text.take(pa.array(where))).to_numpy(zero_copy_only=False)
            slots[where[same]] = candidates[same]
            unsure.extend(int(w) for w in where[~same])
        for i in unsure:  # two ids of one hash (one in ~10^12 pairs): every candidate of every run compared
            if slots[i] >= 0:
                continue
            wanted = text[i].as_py()
            for run_hashes, run_slots in self._runs:
                lo, hi = np.searchsorted(run_hashes, hashes[i]), np.searchsorted(run_hashes, hashes[i], side="right")
                for slot in run_slots[lo:hi]:
                    if self.take(np.array([slot]))[0].as_py() == wanted:
                        slots[i] = slot
        return slots

    def add(self, values: object) -> np.ndarray:
        """Add `values` (distinct, none of them in the table yet); returns their new slots."""
        text = _text(values)
        n = len(text)
        if not n:
            return _EMPTY_SLOTS
        slots = np.arange(self._count, self._count + n, dtype=np.int64)
        hashes = _hashes(text)
        order = np.argsort(hashes, kind="stable")
        self._runs.append((hashes[order], slots[order]))
        self._pending.append(text)
        self._count += n
        while len(self._runs) > 1 and len(self._runs[-2][0]) <= 2 * len(self._runs[-1][0]):
            (h1, s1), (h2, s2) = self._runs[-2], self._runs.pop()
            merged = np.concatenate([h1, h2])
            order = np.argsort(merged, kind="stable")  # two sorted runs: one merge pass
            self._runs[-1] = (merged[order], np.concatenate([s1, s2])[order])
        return slots

    def nbytes(self) -> int:
        """Bytes held (the texts and the runs), for the tests of its size."""
        runs = sum(h.nbytes + s.nbytes for h, s in self._runs)
        return self._text.nbytes + sum(p.nbytes for p in self._pending) + runs
