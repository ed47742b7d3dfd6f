"""A comparison group's indicator table takes its cycles' values from the registry's view (the group's rows of them:
outcome values, PROM response flags, the survival encoding), converts its case-mix columns once for all its
indicators and joins the indicators' columns at once (vbhc.indicators). Checked against the slow path that did the
same before: the group deriving everything from its own rows, converting its columns per indicator, and a frame per
indicator concatenated by pandas. Every number, text and type equal (to the bit), for groups of one to three
hospitals, both unit levels, a period, and every condition of the small demo registry."""

from __future__ import annotations

import random

import numpy as np
import pandas as pd
import pytest

from vbhc import indicators
from vbhc.catalog import default_catalog
from vbhc.indicators import compute_indicators, load_condition_data, restrict


def _slow(monkeypatch: pytest.MonkeyPatch) -> None:
    """The group's view as it was computed before: nothing from the registry's rows, frames concatenated."""

    def concat(parts: list[dict[str, object]], empty: list[str]) -> pd.DataFrame:
        if not parts:
            return pd.DataFrame(columns=empty)
        return pd.concat([pd.DataFrame(part) for part in parts], ignore_index=True)

    def values(parts: list[tuple[str, dict[str, np.ndarray]]]) -> pd.DataFrame:
        if not parts:
            return pd.DataFrame()
        frames = [  # an indicator's cycle ids, units and dates as the arrays they were (not positions: _Taken)
            pd.DataFrame({name: indicators._materialized(piece) for name, piece in columns.items()}).assign(
                indicator=ind
            )
            for ind, columns in parts
        ]
        return pd.concat(frames, ignore_index=True)

    monkeypatch.setattr(indicators, "_group_rows", lambda data: None)
    monkeypatch.setattr(indicators, "_column_cache", lambda data: None)
    monkeypatch.setattr(indicators, "_joined_table", concat)
    monkeypatch.setattr(indicators, "_cycle_values", values)


@pytest.fixture(scope="module")
def registry(small_demo_registry) -> dict[str, indicators.ConditionData]:
    engine, _ = small_demo_registry
    return {c: load_condition_data(c, engine=engine) for c in default_catalog().conditions}


def _groups(full: indicators.ConditionData, seed: int) -> list[tuple[list[str], str | None]]:
    hospitals = sorted(pd.unique(full.cycles["hospital"].astype(str)))
    rng = random.Random(seed)
    sizes = [k for k in (1, 3) if k <= len(hospitals)]  # and a year's group of two below (2 and 5 added ~14 s)
    year = str(pd.Timestamp(full.cycles["index_date"].max()).year)
    return [(sorted(rng.sample(hospitals, k)), None) for k in sizes] + [(sorted(rng.sample(hospitals, 2)), year)]


@pytest.mark.parametrize("condition", list(default_catalog().conditions))
def test_a_groups_view_equals_the_slow_paths_to_the_bit(registry, condition, monkeypatch):
    full = registry[condition]
    cases = _groups(full, seed=len(condition))
    fast = {}

    def not_joined(parts: object) -> None:
        raise AssertionError("the table fell back to a frame per indicator")

    monkeypatch.setattr(indicators, "_concat_frames", not_joined)  # every column of these tables is joined
    for peers, period in cases:
        data = restrict(full, period, peers)
        for level in ("hospital", "department"):
            result = compute_indicators(data, level)
            fast[(tuple(peers), period, level)] = (result.table, result.cycle_values)
    assert any(len(values) for _, values in fast.values())
    monkeypatch.undo()
    with monkeypatch.context() as patched:
        _slow(patched)
        for peers, period in cases:
            data = restrict(full, period, peers)  # the same registry models (full.fitted), a new group
            for level in ("hospital", "department"):
                slow = compute_indicators(data, level)
                table, values = fast[(tuple(peers), period, level)]
                pd.testing.assert_frame_equal(table, slow.table, check_exact=True)
                pd.testing.assert_frame_equal(values, slow.cycle_values, check_exact=True)


def test_the_registrys_view_equals_the_slow_paths(registry, monkeypatch):
    full = registry["colorectal_cancer"]
    fast = compute_indicators(full, "hospital")
    with monkeypatch.context() as patched:
        _slow(patched)
        slow = compute_indicators(full, "hospital")
    pd.testing.assert_frame_equal(fast.table, slow.table, check_exact=True)
    pd.testing.assert_frame_equal(fast.cycle_values, slow.cycle_values, check_exact=True)


def test_the_joined_table_has_the_types_of_a_concat_of_frames():
    """Columns missing in some indicators, whole numbers beside fractions, yes/no and text with gaps, None beside
    text, one value for all rows: the same columns, order, values and types as pandas' concat."""
    parts = [
        {
            "unit_level": "hospital",
            "unit": np.array(["A", "B"], dtype=object),
            "n": np.array([3, 4], dtype=np.int64),
            "too_few_cycles": np.array([True, False]),
            "tier": None,
            "min_n": 10,
        },
        {
            "unit_level": "hospital",
            "unit": np.array(["A", "B", "C"], dtype=object),
            "n": np.array([1.5, 2.0, np.nan]),
            "too_few_cycles": np.array([False, False, True]),
            "tier": "clinical",
            "position_95": np.array(["above", "within", "no data"], dtype=object),
            "tau2": 0.25,
            "key": True,
            "min_n": 20,
        },
        {
            "unit_level": "hospital",
            "unit": np.array(["C"], dtype=object),
            "n": np.array([7], dtype=np.int64),
            "ph_variable": None,
            "tier": 2,
            "min_n": 5,
        },
    ]
    joined = indicators._joined_table(parts, [])
    expected = pd.concat([pd.DataFrame(part) for part in parts], ignore_index=True)
    pd.testing.assert_frame_equal(joined, expected, check_exact=True)
    assert list(joined.columns) == list(expected.columns)
    assert (joined.dtypes == expected.dtypes).all()


def test_a_group_with_a_cycle_the_registry_lacks_derives_its_own_values(registry):
    full = registry["colorectal_cancer"]
    hospitals = sorted(pd.unique(full.cycles["hospital"].astype(str)))
    group = restrict(full, None, hospitals[:2])
    assert indicators._group_rows(group) is not None
    stranger = restrict(full, None, hospitals[:2])
    cycles = stranger.cycles.copy()
    cycles.loc[0, "cycle_id"] = "not-in-the-registry"
    stranger.cycles = cycles
    assert indicators._group_rows(stranger) is None
