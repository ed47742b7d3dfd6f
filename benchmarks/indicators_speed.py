"""Time and peak memory to compute every indicator of every condition for all units (with the shrinkage
columns, the textbook outcome's failures per component and the survival indicators), against the time pandas
needs just to load the same data from the database (the ratio is the figure we track; target ≤ 3×, < 4 GB).

    python benchmarks/indicators_speed.py                     # the 1,000,000-cycle demo (built on first run)
    python benchmarks/indicators_speed.py --cycles 50000      # quicker, on the default demo size
    python benchmarks/indicators_speed.py --database postgresql --cycles 200000   # on a PostgreSQL server
    python benchmarks/indicators_speed.py --database postgresql --database-url postgresql+psycopg://...

The demo database is kept in data/bench/ (git-ignored) so later runs skip the build; on PostgreSQL a private
server's cluster is kept there too (data/bench/demo_<cycles>/postgresql), unless --database-url names a server.

What the indicators read of the PROMs is compared in the same run: the item rows (one per answered item, scored
in pandas) against the questionnaires the database pivots (one row per questionnaire, registry.prom_scores).
--before times the indicator tables once more on the item rows (the code before the pivot), for the ratio.

The tables read each child table once for all conditions (vbhc.registry.shared_reads: on PostgreSQL up to 2M cycles);
--per-condition reads each condition's rows on their own, as a single view's page does.

--engines compares, instead of the tables, the engines for the heavy reads: the exact per-unit aggregates of the
clinical outcomes (cycles, sum, sum of squares per hospital) loaded into pandas and grouped there, grouped by the
database, and grouped by DuckDB scanning the database, each checked against the database's. DuckDB is not a
dependency: it runs when `duckdb` is installed and can load its sqlite or postgres scanner extension (DuckDB
downloads those on first use from its own server, which a machine that reaches only the package registries cannot;
a pip package of the extension, duckdb-extension-<name>-scanner, pinned to its DuckDB version, is loaded from its
file), and says why not otherwise.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import bench_database, bench_postgres, run_measured

# the three frames the indicators read, PROMs as item rows (the figure tracked since the first benchmark)
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

# the PROM scores alone, by either path: item rows read and scored in pandas, or questionnaires pivoted in SQL
PROM_SCORES = """
from vbhc import proms, registry
from vbhc.catalog import default_catalog
from vbhc.store import get_engine
engine = get_engine({url!r})
rows = scores = 0
for condition in default_catalog().conditions:
    if {items!r}:
        responses = registry.prom_responses(condition, engine=engine)
        rows += len(responses)
        frame = proms.score_responses(responses)
        del responses
    else:
        frame = registry.prom_scores(condition, engine=engine)
    scores += len(frame)
    del frame
RESULT = {{"rows": rows, "scores": scores}}
"""

# the code before the pivot: the indicators read the item rows and score them in pandas
ITEM_ROWS = """
from vbhc import proms, registry
def _item_scores(condition, *, catalog=None, **filters):
    return proms.score_responses(registry.prom_responses(condition, **filters), catalog)
registry.prom_scores = _item_scores
"""

COMPUTE = """
import contextlib
import dataclasses
import time
{patch}
from vbhc import indicators, registry
from vbhc.catalog import SURVIVAL_KINDS, default_catalog
from vbhc.indicators import composite_failures, compute_indicators, indicator_table
from vbhc.store import get_engine
engine = get_engine({url!r})
per_condition, reading, rows, survival_rows, survival_s = {{}}, {{}}, 0, 0, 0.0
_load_data = indicators.load_condition_data


def _timed_load(condition, *args, **kwargs):  # the tables' reading share: the registry's frames of the condition
    t = time.perf_counter()
    data = _load_data(condition, *args, **kwargs)
    reading[condition] = round(reading.get(condition, 0.0) + time.perf_counter() - t, 1)
    return data


indicators.load_condition_data = _timed_load
# every condition in turn: each child table read once for all of them (PostgreSQL; the first condition's reading
# time holds the others' rows too)
with {shared}:
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
import resource
used = resource.getrusage(resource.RUSAGE_SELF)
RESULT = {{"per_condition": per_condition, "reading": reading, "table_rows": rows, "survival_rows": survival_rows,
           "survival_s": round(survival_s, 1), "cpu_s": round(used.ru_utime + used.ru_stime, 1)}}
"""


#: COMPUTE's scope over the conditions: each child table read once for all of them (vbhc.registry.shared_reads), or
#: (--per-condition) each condition's rows read on their own
SHARED = "registry.shared_reads(engine)"
PER_CONDITION = "contextlib.nullcontext()"


# the exact per-unit aggregates of the clinical outcomes (cycles, sum, sum of squares per condition, hospital and
# outcome: what crude rates, means and their spread need), three ways: the rows loaded into pandas and grouped there,
# grouped by the database (SQLAlchemy), grouped by DuckDB reading the database through its scanner extension
CRUDE_PANDAS = """
from vbhc import registry
from vbhc.catalog import default_catalog
from vbhc.store import get_engine
engine = get_engine({url!r})
rows = []
for condition, cond in default_catalog().conditions.items():
    wide = registry.outcomes_wide(condition, engine=engine)
    hospital = wide["hospital"].astype(str)
    for outcome in cond.outcomes:
        y = wide[outcome.id]
        part = y.notna()
        grouped = y[part].groupby(hospital[part])
        sums = grouped.agg(["count", "sum"]).join((y[part] ** 2).groupby(hospital[part]).sum().rename("sq"))
        for h, r in sums.iterrows():
            rows.append([condition, h, outcome.id, int(r["count"]), float(r["sum"]), float(r["sq"])])
    del wide
RESULT = {{"rows": rows}}
"""

CRUDE_DATABASE = """
from sqlalchemy import func, select
from vbhc import models
from vbhc.store import get_engine
o, c = models.ClinicalOutcome, models.CareCycle
query = (
    select(c.condition, c.hospital, o.outcome, func.count(o.value), func.sum(o.value), func.sum(o.value * o.value))
    .join(c, c.cycle_id == o.cycle_id)
    .group_by(c.condition, c.hospital, o.outcome)
)
with get_engine({url!r}).connect() as conn:
    rows = [[a, b, d, int(n), float(s), float(q)] for a, b, d, n, s, q in conn.execute(query)]
RESULT = {{"rows": rows}}
"""

CRUDE_DUCKDB = """
import importlib.util, pathlib
import duckdb
from sqlalchemy import make_url
url = make_url({url!r})
con = duckdb.connect()
scanner = "sqlite" if url.get_backend_name() == "sqlite" else "postgres"
try:
    con.execute(f"LOAD {{scanner}}")
except duckdb.Error:  # not installed: DuckDB downloads it on first use; a packaged copy (pip) is loaded from its file
    spec = importlib.util.find_spec(f"duckdb_extension_{{scanner}}_scanner")
    if spec is None:
        raise
    found = next(pathlib.Path(spec.origin).parent.rglob("*.duckdb_extension"))
    con.execute(f"LOAD '{{found}}'")
if scanner == "sqlite":
    source = url.database
else:
    q = url.query
    where = f"host={{q.get('host', url.host)}} port={{q.get('port', url.port)}}"
    source = f"dbname={{url.database}} user={{url.username}} {{where}}"
quoted = source.replace("'", "''")  # ATTACH takes no bound parameters: a quoted literal
con.execute(f"ATTACH '{{quoted}}' AS db (TYPE {{scanner}}, READ_ONLY)")
rows = con.execute(
    "SELECT c.condition, c.hospital, o.outcome, count(o.value), sum(o.value), sum(o.value * o.value) "
    "FROM db.clinical_outcomes o JOIN db.care_cycles c ON c.cycle_id = o.cycle_id "
    "GROUP BY c.condition, c.hospital, o.outcome"
).fetchall()
RESULT = {{"rows": [[a, b, d, int(n), float(s), float(q)] for a, b, d, n, s, q in rows], "duckdb": duckdb.__version__}}
"""


def _crude_rows(result: dict) -> dict[tuple[str, str, str], tuple[int, float, float]]:
    return {(a, b, d): (n, s, q) for a, b, d, n, s, q in result["rows"]}


def _same_sums(one: dict, other: dict) -> str:
    """Whether two engines' per-unit aggregates agree: the same keys and counts, sums to 1e-12 relative (the order
    floats are added in differs between engines)."""
    if one.keys() != other.keys():
        return f"DIFFERENT keys ({len(one.keys() ^ other.keys())} differ)"
    worst = 0.0
    for key, (n, s, q) in one.items():
        n2, s2, q2 = other[key]
        if n != n2:
            return f"DIFFERENT count at {key}: {n} / {n2}"
        for a, b in ((s, s2), (q, q2)):
            worst = max(worst, abs(a - b) / max(abs(a), abs(b), 1e-300))
    return (
        f"equal ({len(one):,} unit x outcome rows; sums within {worst:.0e} relative)"
        if worst <= 1e-12
        else (f"DIFFERENT sums ({worst:.0e} relative)")
    )


def _crude_comparison(url: str, runs: int) -> None:
    """Time the exact per-unit aggregates in pandas, in the database and in DuckDB, and check they agree."""
    print("exact per-unit aggregates of the clinical outcomes (cycles, sum, sum of squares per hospital):")
    pandas_s, pandas_mb, pandas_rows, loads = _median(CRUDE_PANDAS.format(url=url), runs)
    print(f"  pandas (rows loaded, grouped in pandas): {pandas_s:.1f} s, peak {pandas_mb:,.0f} MB ({loads})")
    db_s, db_mb, db_rows, loads = _median(CRUDE_DATABASE.format(url=url), runs)
    reference = _crude_rows(db_rows)
    print(
        f"  the database (GROUP BY, SQLAlchemy): {db_s:.1f} s, peak {db_mb:,.0f} MB ({loads}); "
        f"{pandas_s / db_s:.1f}x faster than pandas; pandas vs database: "
        f"{_same_sums(reference, _crude_rows(pandas_rows))}"
    )
    try:
        duck_s, duck_mb, duck_rows, loads = _median(CRUDE_DUCKDB.format(url=url), runs)
    except SystemExit as error:  # DuckDB or its scanner extension cannot be had here
        reason = [line for line in str(error).strip().splitlines() if "Error" in line or "Exception" in line]
        print(f"  DuckDB: not run ({(reason or ['failed'])[-1][:200]})")
        return
    print(
        f"  DuckDB {duck_rows['duckdb']} (scanning the database): {duck_s:.1f} s, peak {duck_mb:,.0f} MB ({loads}); "
        f"{db_s / duck_s:.2f}x the database's speed; DuckDB vs database: "
        f"{_same_sums(reference, _crude_rows(duck_rows))}"
    )


def _server_cpu(server) -> float:
    """CPU seconds the private PostgreSQL server has used so far (Linux /proc: the postmaster's own and its ended
    backends', and its running ones'); 0 without a private server. Why: on a shared machine the wall time says
    little, the CPU each side spends is the figure to compare."""
    if server is None:
        return 0.0
    postmaster = (server.directory / "data" / "postmaster.pid").read_text().split()[0]
    ticks = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:  # ended meanwhile
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if pid == postmaster:
            ticks += sum(int(f) for f in fields[11:15])  # its own time and its ended children's
        elif fields[1] == postmaster:
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def _load() -> str:
    """The 1-minute load average, printed beside every figure (the machine is shared)."""
    return f"load {os.getloadavg()[0]:.1f}"


def _median(code: str, runs: int) -> tuple[float, float, dict, str]:
    """Median seconds and peak MB of `runs` runs, the last run's result, and the load averages seen."""
    times, peaks, loads, result = [], [], [], {}
    for _ in range(runs):
        loads.append(_load())
        seconds, peak, result = run_measured(code)
        times.append(seconds)
        peaks.append(peak)
    return statistics.median(times), max(peaks), result, ", ".join(loads)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cycles", type=int, default=1_000_000)
    parser.add_argument("--level", default="hospital", choices=["hospital", "department", "condition_team"])
    parser.add_argument("--database", default="sqlite", choices=["sqlite", "postgresql"])
    parser.add_argument("--database-url", help="a PostgreSQL server to build the demo in (default: a private one)")
    parser.add_argument("--runs", type=int, default=1, help="runs of each load (the median is printed)")
    parser.add_argument("--before", action="store_true", help="time the tables on the item rows too (slow)")
    parser.add_argument(
        "--per-condition",
        action="store_true",
        help="read each condition's rows on their own (not each child table once for all conditions)",
    )
    parser.add_argument(
        "--engines",
        action="store_true",
        help="instead of the tables: the per-unit aggregates in pandas, the database and DuckDB",
    )
    args = parser.parse_args()
    server = None
    if args.database == "sqlite":
        url = f"sqlite:///{bench_database(args.cycles)}"
    else:
        url, server = bench_postgres(args.cycles, args.database_url)
    try:
        _report(url, args, server)
    finally:
        if server is not None:
            server.stop_keeping()


def _report(url: str, args: argparse.Namespace, server=None) -> None:
    print(f"{args.database}, {args.cycles:,} cycles, {args.level} level, median of {args.runs} run(s)")
    if args.engines:  # a few minutes at 1M: asked for, not run every time
        _crude_comparison(url, args.runs)
        return
    load_s, load_mb, load, loads = _median(LOAD.format(url=url), args.runs)
    print(
        f"pandas load of cycles, outcomes, PROM items and cost lines: {load['rows']:,} rows in {load_s:.1f} s, "
        f"peak {load_mb:,.0f} MB ({loads})"
    )
    items_s, items_mb, items, loads = _median(PROM_SCORES.format(url=url, items=True), args.runs)
    print(
        f"  PROM scores from item rows (read + scored in pandas): {items['rows']:,} rows -> {items['scores']:,} "
        f"scores in {items_s:.1f} s, peak {items_mb:,.0f} MB ({loads})"
    )
    pivot_s, pivot_mb, pivot, loads = _median(PROM_SCORES.format(url=url, items=False), args.runs)
    print(
        f"  PROM scores from questionnaires pivoted in SQL: {pivot['scores']:,} scores in {pivot_s:.1f} s, "
        f"peak {pivot_mb:,.0f} MB ({loads}); {items_s / pivot_s:.1f}x faster"
    )
    before = None
    if args.before:
        loads = _load()
        before = run_measured(COMPUTE.format(url=url, level=args.level, patch=ITEM_ROWS, shared=SHARED))
        print(f"full indicator tables on item rows (before): {before[0]:.1f} s, peak {before[1]:,.0f} MB ({loads})")
    shared = PER_CONDITION if args.per_condition else SHARED
    loads = _load()
    server_before = _server_cpu(server)
    comp_s, comp_mb, comp = run_measured(COMPUTE.format(url=url, level=args.level, patch="", shared=shared))
    server_s = "" if server is None else f", the private server's {_server_cpu(server) - server_before:.1f} s"
    print(
        f"full indicator tables ({args.level} level, {comp['table_rows']:,} unit x indicator rows): {comp_s:.1f} s, "
        f"peak {comp_mb:,.0f} MB ({loads}); CPU: the client's {comp['cpu_s']:.1f} s{server_s}"
    )
    print("  per condition (s): " + ", ".join(f"{k} {v}" for k, v in comp["per_condition"].items()))
    # the registry's frames (vbhc.indicators.load_condition_data) against the statistics computed on them
    read_s = sum(comp["reading"].values())
    print(
        f"  reading the registry's frames: {read_s:.1f} s of the tables' {sum(comp['per_condition'].values()):.1f} s "
        "(per condition: " + ", ".join(f"{k} {v}" for k, v in comp["reading"].items()) + "); the rest is statistics"
    )
    # measured again after the tables (not part of their time): Kaplan-Meier and the Cox fit per indicator
    print(
        f"  survival indicators ({comp['survival_rows']:,} rows; none without the vital status file): "
        f"{comp['survival_s']:.1f} s of the tables' time, {comp['survival_s'] / load_s:.2f}x the load"
    )
    if before is not None:
        print(f"  tables after / before: {comp_s / before[0]:.2f}x")
    print(
        f"RATIO indicators / load: {comp_s / load_s:.2f}x (target <= 3x); peak {comp_mb / 1024:.2f} GB (target < 4 GB)"
    )


if __name__ == "__main__":
    main()
