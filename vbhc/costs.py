"""Cost over the full care cycle (time-driven activity-based costing) and the value view.

Porter's value is outcomes that matter to patients divided by the cost of the whole care cycle, so cost is
summed per cycle over all TDABC lines (quantity × unit cost), broken down by activity to show where it goes,
and paired with the unit's adjusted outcome rather than shown on its own.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

#: The most a care cycle's cost (the sum of its lines' quantity × unit cost) may be, in EUR: far above any real
#: care cycle, yet its square (1e300) summed over a hundred million care cycles stays a finite float (at most
#: 1.8e308). The cost indicators sum care cycles' costs and square them (a unit's variance,
#: vbhc.indicators._UnitRows); lines that each are finite can still add up to infinity (three of 1e308), and the
#: indicators would then show inf or NaN. The importer refuses a cycle whose lines add up to more
#: (vbhc.ingest.run._check_cycle_costs).
MAX_CYCLE_COST = 1e150


def cost_per_cycle(lines: pd.DataFrame, cycles: pd.DataFrame | None = None) -> pd.DataFrame:
    """Total cost (EUR) per care cycle; cycles without any cost line get NaN (cost not recorded), not 0."""
    cost = lines["quantity"].astype(float) * lines["unit_cost"].astype(float)
    totals = cost.groupby(lines["cycle_id"].astype(str), observed=True, sort=True).sum().rename("cost").to_frame()
    totals.index.name = "cycle_id"
    if cycles is not None:
        totals = totals.reindex(pd.Index(cycles["cycle_id"].astype(str), name="cycle_id"))
    return totals.reset_index()


def cost_breakdown(lines: pd.DataFrame, cycles: pd.DataFrame, unit: pd.Series) -> pd.DataFrame:
    """Per unit and activity: cycles with the activity, total quantity and cost, cost per care cycle and share.

    Cost per care cycle divides by all the unit's costed cycles (not only those using the activity), so the
    activities of a unit add up to its mean cost per cycle.
    """
    unit_of = pd.Series(unit.to_numpy(), index=cycles["cycle_id"].astype(str).to_numpy())
    df = pd.DataFrame(
        {
            "unit": lines["cycle_id"].astype(str).map(unit_of).to_numpy(),
            "activity": lines["activity"].astype(str).to_numpy(),
            "cycle_id": lines["cycle_id"].astype(str).to_numpy(),
            "quantity": lines["quantity"].astype(float).to_numpy(),
            "cost": (lines["quantity"].astype(float) * lines["unit_cost"].astype(float)).to_numpy(),
        }
    ).dropna(subset=["unit"])
    costed = df.groupby("unit")["cycle_id"].nunique().rename("costed_cycles")
    out = (
        df.groupby(["unit", "activity"], sort=True)
        .agg(cycles=("cycle_id", "nunique"), quantity=("quantity", "sum"), total_cost=("cost", "sum"))
        .reset_index()
        .merge(costed, left_on="unit", right_index=True)
    )
    out["cost_per_cycle"] = out["total_cost"] / out["costed_cycles"]
    out["share"] = out["total_cost"] / out.groupby("unit")["total_cost"].transform("sum")
    return out


def value_view(
    outcome: pd.DataFrame,
    cost: pd.DataFrame,
    *,
    outcome_higher_is_better: bool,
    outcome_target: float,
    cost_target: float,
) -> pd.DataFrame:
    """Pair each unit's adjusted outcome with its adjusted cost per care cycle and name its value quadrant.

    `outcome` and `cost` are indicator-table rows (unit, adjusted_value, adjusted_lower, adjusted_upper);
    a unit is only placed in a quadrant when both intervals exclude the benchmark, otherwise it is
    "as expected" on that axis: a point estimate alone would make noise look like a strategy.
    """
    cols = ["unit", "adjusted_value", "adjusted_lower", "adjusted_upper"]
    cols += ["n"] if "n" in outcome.columns and "n" in cost.columns else []  # care cycles behind each figure
    merged = outcome[cols].merge(cost[cols], on="unit", suffixes=("_outcome", "_cost"))
    lo_o, up_o = merged["adjusted_lower_outcome"], merged["adjusted_upper_outcome"]
    better = (lo_o > outcome_target) if outcome_higher_is_better else (up_o < outcome_target)
    worse = (up_o < outcome_target) if outcome_higher_is_better else (lo_o > outcome_target)
    cheaper = merged["adjusted_upper_cost"] < cost_target
    dearer = merged["adjusted_lower_cost"] > cost_target
    merged["outcome_assessment"] = np.select([better, worse], ["better", "worse"], "as expected")
    merged["cost_assessment"] = np.select([cheaper, dearer], ["lower", "higher"], "as expected")
    merged["quadrant"] = np.select(
        [better & cheaper, worse & dearer, better & dearer, worse & cheaper],
        [
            "better outcome, lower cost",
            "worse outcome, higher cost",
            "better outcome, higher cost",
            "worse outcome, lower cost",
        ],
        "no clear difference",
    )
    return merged
