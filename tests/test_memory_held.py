"""What a large condition's table holds at its peak: the per-cycle values and the long PROM scores are not held
twice over while they are joined (at 10,000,000 care cycles these are tens of millions of rows each, and the
table's peak RSS was theirs)."""

from __future__ import annotations

import weakref

import numpy as np
import pandas as pd

from vbhc import indicators, proms
from vbhc.catalog import default_catalog


def _per_cycle(n: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    return {
        "cycle_id": pd.array([f"C{i:08d}" for i in range(n)], dtype="str"),
        "unit": pd.array(rng.choice(["H01", "H02", "H03"], n), dtype="str"),
        "index_date": (np.datetime64("2023-01-01") + rng.integers(0, 365, n).astype("timedelta64[D]")).astype(
            "datetime64[ns]"
        ),
        "observed": rng.random(n),
        "expected": rng.random(n),
    }


def test_per_cycle_values_are_joined_without_a_second_copy():
    """The frame is the one the pieces' concatenation gives, the caller's pieces are handed over (its list emptied,
    each column's pieces dropped once joined)."""
    values = [(f"ind{k}", _per_cycle(200_000, k)) for k in range(4)]
    expected = pd.DataFrame(
        {
            name: (
                pd.concat([pd.Series(columns[name]) for _, columns in values], ignore_index=True)
                if name in ("cycle_id", "unit")
                else np.concatenate([columns[name] for _, columns in values])
            )
            for name in values[0][1]
        }
        | {"indicator": np.repeat(np.array([ind for ind, _ in values], dtype=object), 200_000)}
    )
    pieces = [weakref.ref(columns[name]) for _, columns in values for name in ("observed", "expected")]
    got = indicators._cycle_values(values)
    pd.testing.assert_frame_equal(got, expected, check_exact=True)
    assert values == []
    # the float columns' pieces are gone while the frame lives: not held beside the joined columns (on main they
    # were, and the joined columns were copied once more into one block: three copies at the table's peak)
    assert all(piece() is None for piece in pieces)


def test_long_scores_drop_each_wide_frame_once_used():
    """The wide scores handed to _long_scores are let go as they are made long (the list's entries), and the long
    frame is the one it was."""
    catalog = default_catalog()
    instruments = [catalog.instruments[i] for i in sorted(catalog.instruments)[:2]]
    wides = []
    for instrument in instruments:
        n = 1_000
        wide = pd.DataFrame(
            {
                "cycle_id": [f"C{i:05d}" for i in range(n)],
                "timepoint": pd.Categorical(["baseline"] * n),
                "completed_date": pd.to_datetime(["2023-01-01"] * n),
            }
        )
        for k, scale in enumerate(instrument.scales):
            wide[scale.id] = np.arange(n, dtype=float) + k
        wides.append(wide)
    copies = [w.copy() for w in wides]
    got = proms._long_scores(instruments, wides)
    assert all(wide is None for wide in wides)
    expected = proms._long_scores(instruments, copies)
    pd.testing.assert_frame_equal(got, expected, check_exact=True)
    assert len(got) == sum(1_000 * len(i.scales) for i in instruments)
