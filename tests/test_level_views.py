"""A view's second unit level takes what does not depend on the unit level from the first level's table of the same
data (vbhc.indicators: ConditionData.derived): the indicators' values per care cycle, the PROM response flags, and
the survival indicators' follow-up, Cox model and expected values. At 1,000,000 care cycles deriving them again was
a third of a unit-level click's table (0.71-0.77 -> 0.49 s of CPU for a year's department table). Checked against
the table of that level computed first, on fresh data: every number, text and type equal (to the bit), for every
condition of the small demo registry, the whole period and a year, and a comparison group."""

from __future__ import annotations

import pandas as pd
import pytest

from vbhc import indicators, proms, survival
from vbhc.catalog import default_catalog
from vbhc.indicators import compute_indicators, load_condition_data, restrict


@pytest.fixture(scope="module")
def registry(small_demo_registry) -> dict[str, indicators.ConditionData]:
    engine, _ = small_demo_registry
    return {c: load_condition_data(c, engine=engine) for c in default_catalog().conditions}


def _counted(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """How often the level-independent parts are derived (the indicators' values, the response flags, the
    survival indicators' case-mix design) while the monkeypatch is active."""
    calls = {"values": 0, "flags": 0, "survival": 0}

    def counting(name: str, function):
        def counted(*args, **kwargs):
            calls[name] += 1
            return function(*args, **kwargs)

        return counted

    monkeypatch.setattr(indicators, "_outcome_column", counting("values", indicators._outcome_column))
    monkeypatch.setattr(proms, "response_flags", counting("flags", proms.response_flags))
    monkeypatch.setattr(survival, "casemix_design", counting("survival", survival.casemix_design))
    monkeypatch.setattr(survival, "encode_design", counting("survival", survival.encode_design))
    return calls


def _cases(full: indicators.ConditionData) -> list[tuple[str | None, list[str] | None]]:
    year = str(pd.Timestamp(full.cycles["index_date"].max()).year)
    hospitals = sorted(pd.unique(full.cycles["hospital"].astype(str)))
    return [(None, None), (year, None), (year, hospitals[:2])]


@pytest.mark.parametrize("condition", list(default_catalog().conditions))
def test_a_second_unit_level_derives_nothing_again_and_equals_its_own_table(registry, condition, monkeypatch):
    full = registry[condition]
    for period, peers in _cases(full):
        first, second = ("department", "hospital") if peers else ("hospital", "department")
        data = restrict(full, period, peers) if period or peers else restrict(full, None)
        compute_indicators(data, first)
        with monkeypatch.context() as patched:
            calls = _counted(patched)
            reused = compute_indicators(data, second)
        assert calls == {"values": 0, "flags": 0, "survival": 0}, (period, peers)
        # the same level computed first on fresh data (the registry's models: those `full` holds, as before)
        alone = compute_indicators(restrict(full, period, peers) if period or peers else restrict(full, None), second)
        assert len(reused.table) and (reused.table["unit_level"] == second).all()
        pd.testing.assert_frame_equal(reused.table, alone.table, check_exact=True)
        pd.testing.assert_frame_equal(reused.cycle_values, alone.cycle_values, check_exact=True)
        assert reused.models.keys() == alone.models.keys()
