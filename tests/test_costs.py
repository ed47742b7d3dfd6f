"""Cost per care cycle (TDABC) and the value view, checked on hand-computed cases."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vbhc.costs import cost_breakdown, cost_per_cycle, value_view

LINES = pd.DataFrame(
    {
        "cycle_id": ["a", "a", "b", "c", "c"],
        "activity": ["ward_day", "imaging", "ward_day", "ward_day", "operating_theatre"],
        "quantity": [3, 1, 5, 2, 90],
        "unit_cost": [680.0, 420.0, 680.0, 700.0, 32.0],
    }
)
CYCLES = pd.DataFrame({"cycle_id": ["a", "b", "c", "d"], "hospital": ["H1", "H1", "H2", "H2"]})


def test_cost_per_cycle_sums_lines_and_marks_uncosted_cycles():
    cost = cost_per_cycle(LINES, CYCLES).set_index("cycle_id")["cost"]
    assert cost["a"] == 3 * 680 + 420
    assert cost["b"] == 5 * 680
    assert cost["c"] == 2 * 700 + 90 * 32
    assert np.isnan(cost["d"]), "no cost lines means cost not recorded, not zero"


def test_breakdown_adds_up_to_cost_per_cycle():
    out = cost_breakdown(LINES, CYCLES, CYCLES["hospital"])
    h1 = out[out["unit"] == "H1"].set_index("activity")
    assert h1.loc["ward_day", "total_cost"] == 8 * 680
    assert h1.loc["ward_day", "cycles"] == 2
    assert h1["cost_per_cycle"].sum() == pytest.approx((3 * 680 + 420 + 5 * 680) / 2)
    assert h1["share"].sum() == pytest.approx(1.0)


@settings(max_examples=40, deadline=None)
@given(st.permutations(range(5)))
def test_breakdown_ignores_row_order(order):
    a = cost_breakdown(LINES, CYCLES, CYCLES["hospital"])
    b = cost_breakdown(LINES.iloc[list(order)], CYCLES, CYCLES["hospital"])
    pd.testing.assert_frame_equal(a, b)


def test_value_quadrants_need_both_intervals_to_exclude_the_benchmark():
    outcome = pd.DataFrame(
        {
            "unit": ["good_cheap", "bad_dear", "unclear"],
            "adjusted_value": [0.02, 0.09, 0.05],
            "adjusted_lower": [0.01, 0.07, 0.02],
            "adjusted_upper": [0.03, 0.11, 0.08],
        }
    )
    cost = pd.DataFrame(
        {
            "unit": ["good_cheap", "bad_dear", "unclear"],
            "adjusted_value": [18000.0, 26000.0, 30000.0],
            "adjusted_lower": [17000.0, 25000.0, 15000.0],
            "adjusted_upper": [19000.0, 27000.0, 45000.0],
        }
    )
    view = value_view(outcome, cost, outcome_higher_is_better=False, outcome_target=0.05, cost_target=22000)
    quadrant = view.set_index("unit")["quadrant"]
    assert quadrant["good_cheap"] == "better outcome, lower cost"
    assert quadrant["bad_dear"] == "worse outcome, higher cost"
    assert quadrant["unclear"] == "no clear difference"
