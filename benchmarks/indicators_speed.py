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

The tables read each child table once for all conditions (vbhc.registry.shared_reads, on PostgreSQL: held in memory up
to 2M cycles, above that spilled to a file per condition in a temporary folder, TMPDIR's); --per-condition reads
each condition's rows on their own, as a single view's page does; --spill spills them whatever the size (what the
memory of 10,000,000 cycles is like, at 1,000,000).

The tables' time is split into phases (reads, with the server's CPU from /proc of its backends; PROM scoring; the
frames; case-mix fits; indicator values; limits; shrinkage; survival; ...), each one's CPU seconds client + server and
its linear extrapolation to 10,000,000 cycles, against the target of < 60 s there. --tables-only times the tables
alone; --baseline DIR times another checkout's tables too (e.g. main's: `git archive main | tar -x -C DIR`), runs
interleaved. The phases' sum is less than the client's CPU by the start-up (imports) of the step.

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
import resource
import time
{patch}
{phases}
from vbhc import indicators, registry
if {spill!r}:  # --spill: the shared reads spilled to files whatever the registry's size, as at 10,000,000 cycles
    registry.SHARED_READ_MAX_CYCLES = 0
from vbhc.catalog import SURVIVAL_KINDS, default_catalog
from vbhc.indicators import composite_failures, compute_indicators, indicator_table
from vbhc.store import get_engine
engine = get_engine({url!r})
per_condition, costs, reading, rows, survival_rows, survival_s = {{}}, {{}}, {{}}, 0, 0, 0.0
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
    t, cpu, server = time.perf_counter(), time.process_time(), PHASES.server()
    result = indicator_table(condition, {level!r}, engine=engine)  # with shrinkage, textbook outcome and survival
    for ind in result.data.condition.indicators:
        if ind.kind == "composite":
            PHASES.timed("textbook outcome failures", composite_failures)(result, ind.id)
    per_condition[condition] = round(time.perf_counter() - t, 1)
    # its CPU (the client's, the private server's) and the peak RSS so far: where a condition's cost is
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    costs[condition] = (round(time.process_time() - cpu, 1), round(PHASES.server() - server, 1), round(peak_mb))
    rows += len(result.table)
    survival_rows += int(result.table["kind"].isin(SURVIVAL_KINDS).sum())
    # the survival indicators' own share: computed again on the same data without the shared Cox fits
    ids = [i.id for i in result.data.condition.indicators if i.kind in SURVIVAL_KINDS]
    if ids:
        fresh = dataclasses.replace(result.data, fitted={{}}, cox={{}})
        t = time.perf_counter()
        PHASES.on = False  # not part of the tables' phases
        compute_indicators(fresh, {level!r}, indicators=ids)
        PHASES.on = True
        survival_s += time.perf_counter() - t
        del fresh  # it holds the condition's data: kept, it was read and computed beside the next condition's
    del result
used = resource.getrusage(resource.RUSAGE_SELF)
RESULT = {{"per_condition": per_condition, "costs": costs, "reading": reading, "table_rows": rows,
           "survival_rows": survival_rows, "survival_s": round(survival_s, 1),
           "cpu_s": round(used.ru_utime + used.ru_stime, 1),
           "phases": PHASES.spent}}
"""

# Where the tables' time goes: each phase's own CPU seconds (the client's; for the reads also the server's, from
# /proc of the postmaster's backends), nested calls counted in the inner phase only, so the phases add up to the
# tables' CPU. The wrapped functions are looked up by name in the tree the step runs in (--baseline: main's).
PHASES = """
import os
import time
from vbhc import benchmark, casemix, indicators, proms, registry, store, survival

class _Phases:
    def __init__(self, postmaster):
        self.postmaster, self.spent, self.stack, self.on = postmaster, {{}}, [], True

    def server(self):
        if self.postmaster is None:
            return 0.0
        ticks = 0
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                stat = open(f"/proc/{{pid}}/stat").read()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2 :].split()
            if fields[1] == str(self.postmaster):
                ticks += int(fields[11]) + int(fields[12])
        return ticks / os.sysconf("SC_CLK_TCK")

    def timed(self, name, fn, server=False):
        def wrapped(*args, **kwargs):
            if not self.on:
                return fn(*args, **kwargs)
            self.stack.append(0.0)
            start, server_start = time.process_time(), self.server() if server else 0.0
            try:
                return fn(*args, **kwargs)
            finally:
                inner = time.process_time() - start
                own = inner - self.stack.pop()
                if self.stack:
                    self.stack[-1] += inner
                spent = self.spent.setdefault(name, [0.0, 0.0, 0])
                spent[0] += own
                spent[1] += (self.server() - server_start) if server else 0.0
                spent[2] += 1
        return wrapped

PHASES = _Phases({postmaster!r})
for module, name, phase, server in [
    (indicators, "load_condition_data", "frames: outcomes pivot, cost per cycle, dates", False),
    (registry, "care_cycles", "read: care cycles", True),
    (registry, "clinical_outcomes", "read: clinical outcomes", True),
    (registry, "prom_questionnaires", "read: PROM questionnaires", True),
    (proms, "score_questionnaires", "PROM scoring", False),
    (registry, "cost_lines", "read: cost lines", True),
    (indicators, "compute_indicators", "table: the rest (columns, joins)", False),
    (indicators, "_outcome_column", "table: indicator values per cycle", False),
    (indicators, "fit_casemix_model", "table: case-mix fits", False),
    (indicators, "recalibrate_in_the_large", "table: case-mix fits", False),
    (benchmark, "benchmark_columns", "table: funnel limits", False),
    (indicators, "_shrinkage_columns", "table: shrinkage", False),
    (survival, "survival_columns", "table: survival (Kaplan-Meier, Cox)", False),
    (proms, "response_flags", "table: PROM response", False),
    (indicators, "_cycle_values", "table: per-cycle values frame", False),
]:
    setattr(module, name, PHASES.timed(phase, getattr(module, name), server))
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
        "--spill",
        action="store_true",
        help="spill the shared reads to files whatever the registry's size (as above 2M cycles): 10M's memory at 1M",
    )
    parser.add_argument(
        "--tables-only",
        action="store_true",
        help="time the indicator tables alone (not the pandas load and the PROM score paths)",
    )
    parser.add_argument(
        "--baseline",
        help="another checkout (e.g. main's) whose tables are timed too, runs interleaved with this tree's",
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
    if args.tables_only:
        _tables(url, args, server)
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
        code = COMPUTE.format(
            url=url, level=args.level, patch=ITEM_ROWS, shared=SHARED, phases=_phases(server), spill=args.spill
        )
        before = run_measured(code)
        print(f"full indicator tables on item rows (before): {before[0]:.1f} s, peak {before[1]:,.0f} MB ({loads})")
    comp_s, comp_mb = _tables(url, args, server)
    if before is not None:
        print(f"  tables after / before: {comp_s / before[0]:.2f}x")
    print(
        f"RATIO indicators / load: {comp_s / load_s:.2f}x (target <= 3x); peak {comp_mb / 1024:.2f} GB (target < 4 GB)"
    )


def _tables(url: str, args: argparse.Namespace, server=None) -> tuple[float, float]:
    """Time every condition's full indicator table (the median of --runs runs; with --baseline, runs of the other
    tree interleaved with this one's), and print where the time goes: per phase, the client's and the server's CPU
    seconds, and the same figures times the 10M / cycles ratio (linear: the case-mix fits' Newton steps and the
    sorts of the survival fits grow a little faster)."""
    shared = PER_CONDITION if args.per_condition else SHARED
    code = COMPUTE.format(url=url, level=args.level, patch="", shared=shared, phases=_phases(server), spill=args.spill)
    trees = [("this tree", None)] + ([("baseline", Path(args.baseline))] if args.baseline else [])
    runs: dict[str, list] = {name: [] for name, _ in trees}
    for _ in range(args.runs):
        for name, cwd in trees:
            loads = _load()
            server_before = _server_cpu(server)
            seconds, peak, result = run_measured(code, cwd=cwd)
            runs[name].append((seconds, peak, result, _server_cpu(server) - server_before, loads))
    for name, _ in reversed(trees):
        done = runs[name]
        seconds = statistics.median(r[0] for r in done)
        peak, comp = max(r[1] for r in done), done[-1][2]
        client = statistics.median(r[2]["cpu_s"] for r in done)
        server_s = statistics.median(r[3] for r in done)
        loads = ", ".join(r[4] for r in done)
        print(
            f"full indicator tables, {name} ({args.level} level, {comp['table_rows']:,} unit x indicator rows): "
            f"{seconds:.1f} s, peak {peak:,.0f} MB ({loads}); CPU: the client's {client:.1f} s"
            + ("" if server is None else f", the private server's {server_s:.1f} s")
        )
        _print_phases([r[2]["phases"] for r in done], args.cycles)
    comp = runs["this tree"][-1][2]
    print("  per condition (s): " + ", ".join(f"{k} {v}" for k, v in comp["per_condition"].items()))
    for condition, (client_s, server_s, peak_mb) in comp.get("costs", {}).items():
        print(
            f"    {condition}: {comp['per_condition'][condition]} s, CPU: the client's {client_s} s"
            + ("" if server is None else f", the private server's {server_s} s")
            + f"; peak RSS so far {peak_mb:,} MB"
        )
    # the registry's frames (vbhc.indicators.load_condition_data) against the statistics computed on them
    read_s = sum(comp["reading"].values())
    print(
        f"  reading the registry's frames: {read_s:.1f} s of the tables' {sum(comp['per_condition'].values()):.1f} s "
        "(per condition: " + ", ".join(f"{k} {v}" for k, v in comp["reading"].items()) + "); the rest is statistics"
    )
    # measured again after the tables (not part of their time): Kaplan-Meier and the Cox fit per indicator
    print(
        f"  survival indicators ({comp['survival_rows']:,} rows; none without the vital status file): "
        f"{comp['survival_s']:.1f} s of the tables' time"
    )
    done = runs["this tree"]
    return statistics.median(r[0] for r in done), max(r[1] for r in done)


#: The registry size the issue's target is for: the indicator table in < 60 s and < 4 GB
TARGET_CYCLES, TARGET_SECONDS = 10_000_000, 60.0


def _print_phases(phases: list[dict], cycles: int) -> None:
    """Per phase, the median over runs of the client's and the server's CPU seconds, and their linear
    extrapolation to TARGET_CYCLES."""
    scale = TARGET_CYCLES / cycles
    names = list(dict.fromkeys(name for run in phases for name in run))
    rows = []
    for name in names:
        client = statistics.median(run.get(name, [0.0, 0.0, 0])[0] for run in phases)
        server = statistics.median(run.get(name, [0.0, 0.0, 0])[1] for run in phases)
        rows.append((client + server, name, client, server, phases[-1].get(name, [0, 0, 0])[2]))
    total_client, total_server = sum(r[2] for r in rows), sum(r[3] for r in rows)
    print(f"  phases (CPU s: client + server; x{scale:g} = linear extrapolation to {TARGET_CYCLES:,} cycles):")
    for _, name, client, server, calls in sorted(rows, reverse=True):
        print(
            f"    {name:<48} {client:7.1f} + {server:6.1f}  ({calls} calls)   "
            f"x{scale:g}: {(client + server) * scale:7.0f} s"
        )
    print(
        f"    {'all phases':<48} {total_client:7.1f} + {total_server:6.1f}              "
        f"x{scale:g}: {(total_client + total_server) * scale:7.0f} s "
        f"(target {TARGET_SECONDS:.0f} s on one core each side: "
        f"{'within' if max(total_client, total_server) * scale < TARGET_SECONDS else 'NOT within'})"
    )


def _phases(server) -> str:
    """The PHASES preamble of COMPUTE, with the private server's postmaster (for its backends' CPU) if any."""
    postmaster = None
    if server is not None:
        postmaster = int((server.directory / "data" / "postmaster.pid").read_text().split()[0])
    return PHASES.format(postmaster=postmaster)


if __name__ == "__main__":
    main()
