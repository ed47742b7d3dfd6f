"""Time and peak memory to compute every indicator of every condition for all units (with the shrinkage
columns, the textbook outcome's failures per component and the survival indicators), against the time pandas
needs just to load the same data from the database (the ratio is the figure we track; target ≤ 3×, < 4 GB).

    python benchmarks/indicators_speed.py                     # the 1,000,000-cycle demo (built on first run)
    python benchmarks/indicators_speed.py --cycles 50000      # quicker, on the default demo size
The demo database is kept in data/bench/ (git-ignored) so later runs skip the build.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import bench_database, run_measured

LOAD = """
from vbhc import registry
from vbhc.catalog import default_catalog
from vbhc.store import get_engine
engine = get_engine({url!r})
rows = 0
for condition in default_catalog().conditions:
    frames = [registry.outcomes_wide(condition, engine=engine), registry.prom_responses(condition, engine=engine),
              registry.cost_lines(condition, engine=engine)]
    rows += sum(len(f) for f in frames)
    del frames
RESULT = {{"rows": rows}}
"""

COMPUTE = """
import dataclasses
import time
from vbhc.catalog import SURVIVAL_KINDS, default_catalog
from vbhc.indicators import composite_failures, compute_indicators, indicator_table
from vbhc.store import get_engine
engine = get_engine({url!r})
per_condition, rows, survival_rows, survival_s = {{}}, 0, 0, 0.0
for condition in default_catalog().conditions:
    t = time.perf_counter()
    result = indicator_table(condition, {level!r}, engine=engine)  # with shrinkage, textbook outcome and survival
    for ind in result.data.condition.indicators:
        if ind.kind == "composite":
            composite_failures(result, ind.id)
    per_condition[condition] = round(time.perf_counter() - t, 1)
    rows += len(result.table)
    survival_rows += int(result.table["kind"].isin(SURVIVAL_KINDS).sum())
    # the survival indicators' own share: computed again on the same data without the shared Cox fits
    ids = [i.id for i in result.data.condition.indicators if i.kind in SURVIVAL_KINDS]
    if ids:
        fresh = dataclasses.replace(result.data, fitted={{}}, cox={{}})
        t = time.perf_counter()
        compute_indicators(fresh, {level!r}, indicators=ids)
        survival_s += time.perf_counter() - t
    del result
RESULT = {{"per_condition": per_condition, "table_rows": rows, "survival_rows": survival_rows,
           "survival_s": round(survival_s, 1)}}
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cycles", type=int, default=1_000_000)
    parser.add_argument("--level", default="hospital", choices=["hospital", "department", "condition_team"])
    args = parser.parse_args()
    db = bench_database(args.cycles)
    url = f"sqlite:///{db}"
    load_s, load_mb, load = run_measured(LOAD.format(url=url))
    print(
        f"pandas load of cycles, outcomes, PROM items and cost lines: {load['rows']:,} rows in {load_s:.1f} s, "
        f"peak {load_mb:,.0f} MB"
    )
    comp_s, comp_mb, comp = run_measured(COMPUTE.format(url=url, level=args.level))
    print(
        f"full indicator tables ({args.level} level, {comp['table_rows']:,} unit x indicator rows): {comp_s:.1f} s, "
        f"peak {comp_mb:,.0f} MB"
    )
    print("  per condition (s): " + ", ".join(f"{k} {v}" for k, v in comp["per_condition"].items()))
    # measured again after the tables (not part of their time): Kaplan-Meier and the Cox fit per indicator
    print(
        f"  survival indicators ({comp['survival_rows']:,} rows; none without the vital status file): "
        f"{comp['survival_s']:.1f} s of the tables' time, {comp['survival_s'] / load_s:.2f}x the load"
    )
    print(
        f"RATIO indicators / load: {comp_s / load_s:.2f}x (target <= 3x); peak {comp_mb / 1024:.2f} GB (target < 4 GB)"
    )


if __name__ == "__main__":
    main()
