"""Chart build time (Vega-Lite spec as a dict, datasets included) of the charts a filter change draws.

    python benchmarks/chart_speed.py                    # the default demo (50,000 cycles)
    python benchmarks/chart_speed.py --cycles 1000000

Each chart of one condition (colorectal cancer, hospital level, the whole period) is built `--repeat` times;
the table shows the median seconds. "First" is the first build in the process (the message catalog and the
locales still unread), as for the first view after start-up. The specs are plain dicts (vbhc.charts builds
no Altair objects), so a build is its whole cost: pages send them as they are.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import ROOT, bench_database

sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cycles", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    db = bench_database(args.cycles)

    from vbhc import charts
    from vbhc.indicators import compute_indicators, cusum_vlad, funnel_curve, indicator_over_time, load_condition_data
    from vbhc.store import get_engine

    result = compute_indicators(
        load_condition_data("colorectal_cancer", engine=get_engine(f"sqlite:///{db}")), "hospital"
    )
    table, unit, indicator = result.table, "H01", "severe_complication"
    rows = table[table["indicator"] == indicator]
    curve = funnel_curve(rows)
    trend = indicator_over_time(result, indicator, unit, freq="QS")
    series = cusum_vlad(result, indicator, unit)
    key_rows = table[table["key"].astype(bool) | table["kind"].isin(["response_rate"])]
    team = {
        "funnel": lambda: charts.funnel_chart(rows, curve, highlight=unit, lang="nl"),
        "caterpillar": lambda: charts.caterpillar_chart(rows, highlight=unit, lang="nl", value="oe"),
        "trend": lambda: charts.trend_chart(trend, kind="proportion", lang="nl"),
        "vlad": lambda: charts.vlad_chart(series, lang="nl"),
        "cusum": lambda: charts.cusum_chart(series, lang="nl"),
    }
    builders = {**team, "small multiples": lambda: charts.small_multiples_chart(key_rows, lang="nl", highlight=unit)}

    def seconds(build) -> list[float]:
        times = []
        for _ in range(args.repeat):
            started = time.perf_counter()
            build().to_dict(validate=False)
            times.append(time.perf_counter() - started)
        return times

    figures = {name: seconds(build) for name, build in builders.items()}
    print(f"{args.cycles:,}-cycle demo, colorectal cancer; seconds per chart (spec build), median of {args.repeat}")
    print(f"{'chart':18} {'median':>9} {'(first)':>9}")
    for name, times in figures.items():
        print(f"{name:18} {statistics.median(times):9.3f} {times[0]:9.3f}")
    for label, names in (("condition team (5)", list(team)), ("compare page (1)", ["small multiples"])):
        print(f"{label:18} {sum(statistics.median(figures[n]) for n in names):9.3f}")


if __name__ == "__main__":
    main()
