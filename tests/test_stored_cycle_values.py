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
    derived = {k[1]: v for k, v in computed.data.derived.items() if isinstance(k, tuple) and k[0] == "values" and v}
    assert len(derived) >= 5

    reader = ResultStore(engine, root=tmp_path / "store", memo=0)  # another process: the view is read
    data = reader.condition_data(key, version)
    assert not any(isinstance(k, tuple) and k[0] == "values" for k in data.derived)
    read = reader.get(key, version, data)
    assert read is not None
    for indicator, (y, extra) in derived.items():
        got = data.derived.get(("values", indicator))
        assert got is not None, indicator
        np.testing.assert_array_equal(got[0], y)
        assert got[1].keys() == extra.keys()
        for name, column in extra.items():
            np.testing.assert_array_equal(got[1][name], column)

    def derive(*args, **kwargs):
        raise AssertionError("a value derived again from the registry's cycles")

    with monkeypatch.context() as patched:
        patched.setattr(indicators, "_outcome_column", derive)
        group = compute_indicators(restrict(data, None, PEERS), "department")
    pd.testing.assert_frame_equal(group.table, expected.table, check_exact=True)
    pd.testing.assert_frame_equal(group.cycle_values, expected.cycle_values, check_exact=True)
