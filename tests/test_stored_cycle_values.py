"""A registry's view read from the results store brings the value of every care cycle per indicator that its
computation derived (vbhc.results: stored with the view), so the first comparison group cut from it takes its
cycles' rows of them instead of deriving them again for every indicator; the group's view is the same, to the bit."""

from __future__ import annotations

import numpy as np
import pandas as pd

from vbhc import indicators
from vbhc.indicators import compute_indicators, restrict
from vbhc.results import ResultStore, ViewKey

CONDITION = "colorectal_cancer"
PEERS = ["H01", "H02", "H04"]


def test_a_stored_registry_view_brings_its_cycle_values_for_its_groups(small_demo_registry, tmp_path, monkeypatch):
    engine, _ = small_demo_registry
    key = ViewKey(CONDITION, "department", "2024")
    writer = ResultStore(engine, root=tmp_path / "store", memo=0)
    version = writer.version()
    computed = writer.result(key, version)  # computed and stored
    expected = compute_indicators(restrict(computed.data, None, PEERS), "department")  # values derived in memory
    derived = {
        k[1]: v
        for k, v in computed.data.derived.items()
        if isinstance(k, tuple) and k[0] == indicators.CYCLE_VALUES and v
    }
    assert len(derived) >= 5

    reader = ResultStore(engine, root=tmp_path / "store", memo=0)  # another process: the view is read
    data = reader.condition_data(key, version)
    assert not any(isinstance(k, tuple) and k[0] == indicators.CYCLE_VALUES for k in data.derived)
    read = reader.get(key, version, data)
    assert read is not None
    for indicator, (y, extra) in derived.items():
        got = data.derived.get((indicators.CYCLE_VALUES, indicator))
        assert got is not None, indicator
        np.testing.assert_array_equal(got[0], y)
        assert got[1].keys() == extra.keys()
        for name, column in extra.items():
            np.testing.assert_array_equal(got[1][name], column)

    _group_without(monkeypatch, indicators, "_outcome_column", data, "department", expected)


def _group_without(monkeypatch, module, name: str, data, level: str, expected):
    """The comparison group PEERS cut from `data` with `module.name` raising (what the stored view brings must not
    be derived again), its table and per-cycle values equal to `expected`'s, to the bit."""

    def derive(*args, **kwargs):
        raise AssertionError(f"{name} called: derived again from the registry's cycles")

    with monkeypatch.context() as patched:
        patched.setattr(module, name, derive)
        group = compute_indicators(restrict(data, None, PEERS), level)
    pd.testing.assert_frame_equal(group.table, expected.table, check_exact=True)
    pd.testing.assert_frame_equal(group.cycle_values, expected.cycle_values, check_exact=True)
    return group


def test_a_stored_registry_view_brings_its_cox_encodings_for_its_groups(small_demo_registry, tmp_path, monkeypatch):
    """The registry's case-mix encoding of each survival indicator (vbhc.survival.registry_encoding), which every
    comparison group's Cox model encodes the group's cycles with, is stored with the registry's view: a group cut
    from the view read back does not derive it again from every care cycle of the registry (before, each new
    group's first table did: ~3 % of its click on the 50k demo), and its view is the same, to the bit."""
    from vbhc import survival

    engine, _ = small_demo_registry
    key = ViewKey(CONDITION, "hospital")
    writer = ResultStore(engine, root=tmp_path / "store", memo=0)
    version = writer.version()
    writer.result(key, version)  # computed and stored
    fresh = indicators.load_condition_data(CONDITION, engine=engine)  # nothing derived: the encodings made anew
    expected = compute_indicators(restrict(fresh, None, PEERS), "hospital")
    encoded = {k[1] for k in fresh.derived if isinstance(k, tuple) and k[0] == indicators.COX_ENCODING}
    assert encoded == {"survival_1y", "survival_2y", "survival_5y"}

    reader = ResultStore(engine, root=tmp_path / "store", memo=0)  # another process: the view is read
    data = reader.condition_data(key, version)
    assert reader.get(key, version, data) is not None
    for indicator in encoded:
        stored = data.derived.get((indicators.COX_ENCODING, indicator, data.as_of))
        assert stored == fresh.derived[(indicators.COX_ENCODING, indicator, fresh.as_of)], indicator

    group = _group_without(monkeypatch, survival, "registry_encoding", data, "hospital", expected)
    for indicator in encoded:  # the group's Cox models: the registry's, recalibrated to the group
        got, want = group.data.cox[indicator], expected.data.cox[indicator]
        pd.testing.assert_series_equal(got.coefficients, want.coefficients, check_exact=True)
        np.testing.assert_array_equal(got.baseline_cumhaz, want.baseline_cumhaz)
