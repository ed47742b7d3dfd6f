"""Demo generation and import: time, rows per second and peak memory (each step in a fresh process).

    python benchmarks/import_speed.py                 # default demo, 50,000 cycles, SQLite
    python benchmarks/import_speed.py --cycles 35000  # about 1,000,000 PROM item rows
    python benchmarks/import_speed.py --postgres      # a throw-away PostgreSQL server (tests/pg_server.py)
    python benchmarks/import_speed.py --database-url postgresql+psycopg://user@host/db   # an existing server
    python benchmarks/import_speed.py --repeat 3 --baseline-tree /work/main   # before/after in the same run
Targets (issue 2): 50,000 cycles generated and imported in under a minute; a file of 1,000,000 PROM item rows
imported within ~1.5 GB peak memory (the peak printed is the whole import's). Issue 13: the import at >= 1/3 of
the raw loader's pace. Both are timed as a person runs them, one process each, start-up included: our import of
every file in one Python process (`vbhc import`), and the SQLite command-line shell's `.import`, or on
PostgreSQL a raw `COPY ... FROM STDIN (FORMAT csv)` of the same CSV files into plain text tables (no checks, no
constraints), timed in the same run beside every import, so the ratio holds on a noisy machine. `--baseline-tree`
imports the same files with another source tree (e.g. the main checkout) in the same run, interleaved with this
one. The 1-minute load average is printed with each figure; with `--repeat` the medians are printed last.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import ROOT, run_measured

#: The demo's files in import order; the raw loaders take the CSV ones.
FILES = ("units.xlsx", "care_cycles.csv", "clinical_outcomes.csv", "prom_responses.csv", "costs.csv")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cycles", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=20261124)
    parser.add_argument("--database-url", help="a PostgreSQL server URL; default: fresh SQLite files")
    parser.add_argument("--postgres", action="store_true", help="start a throw-away PostgreSQL server")
    parser.add_argument("--repeat", type=int, default=1, help="imports per tree, each into a fresh database")
    parser.add_argument("--baseline-tree", type=Path, help="another source tree to time on the same files")
    parser.add_argument("--no-force", action="store_true", help="skip the forced re-import")
    args = parser.parse_args()
    server = None
    if args.postgres:
        sys.path.insert(0, str(ROOT))
        from tests.pg_server import start_postgres

        server = start_postgres()
        args.database_url = server.url("postgres")
    try:
        with tempfile.TemporaryDirectory(prefix="vbhc-bench-") as tmp:
            _run(args, Path(tmp))
    finally:
        if server is not None:
            server.stop()


def _run(args: argparse.Namespace, folder: Path) -> None:
    gen_s, gen_mb, gen = run_measured(
        "from pathlib import Path\nfrom vbhc.demo import generate_demo\n"
        f"r = generate_demo(Path({str(folder / 'files')!r}), cycles={args.cycles}, seed={args.seed})\n"
        "RESULT = {'counts': r.counts}"
    )
    counts = gen["counts"]
    print(
        f"demo generation: {args.cycles:,} cycles, {sum(counts.values()):,} rows in {gen_s:.1f} s, "
        f"peak {gen_mb:,.0f} MB  [load {_load()}]",
        flush=True,
    )
    files = [str(folder / "files" / n) for n in FILES]
    csvs = [f for f in files if f.endswith(".csv")]
    csv_rows = counts["care_cycles"] + counts["clinical_outcomes"] + counts["costs"] + counts["prom_responses"]
    trees = [("this tree", ROOT)] + ([("baseline", args.baseline_tree.resolve())] if args.baseline_tree else [])
    results: dict[str, list[dict]] = {name: [] for name, _ in trees}
    raw_name = "COPY" if args.database_url else "sqlite3 .import"
    for run in range(1, args.repeat + 1):
        for name, tree in trees:
            url, dispose = _fresh_database(args.database_url, folder, f"{name.replace(' ', '_')}_{run}")
            try:
                r = _import_once(tree, url, files, counts, force=not args.no_force)
                raw = _raw_load(args.database_url, folder, csvs, f"raw_{run}_{name.replace(' ', '_')}")
            finally:
                dispose()
            r["raw_s"] = raw
            results[name].append(r)
            ratio = f"{raw / r['wall_s']:.2f}" if raw else "n/a"
            print(
                f"[{name} #{run}] import {r['wall_s']:.1f} s in one process (Python's start and exit "
                f"{r['wall_s'] - r['imp_s'] - r['prom_s']:.1f} s, without PROMs (imports included) {r['imp_s']:.1f} s, "
                f"prom_responses "
                f"{counts['prom_responses']:,} rows {r['prom_s']:.1f} s = "
                f"{counts['prom_responses'] / r['prom_s']:,.0f} rows/s), peak {r['peak_mb']:,.0f} MB"
                + (f"; forced re-import {r['again_s']:.1f} s" if "again_s" in r else "")
                + f"; raw {raw_name} {csv_rows:,} rows {raw or float('nan'):.1f} s; ratio {ratio} "
                f"(target >= 0.33)  [load {r['load']} / {_load()}]",
                flush=True,
            )
    for name, runs in results.items():
        ours = statistics.median(r["wall_s"] for r in runs)
        raws = [r["raw_s"] for r in runs if r["raw_s"]]
        ratios = [r["raw_s"] / r["wall_s"] for r in runs if r["raw_s"]]
        print(
            f"MEDIAN {name} over {len(runs)} run(s): import {ours:.1f} s in one process "
            f"({csv_rows / ours:,.0f} rows/s; inside it {statistics.median(r['imp_s'] + r['prom_s'] for r in runs):.1f}"
            f" s), PROMs {statistics.median(r['prom_s'] for r in runs):.1f} s, "
            f"peak {max(r['peak_mb'] for r in runs):,.0f} MB; raw {raw_name} "
            + (f"{statistics.median(raws):.1f} s; ratio {statistics.median(ratios):.2f}" if raws else "not measured")
            + f"  [load {_load()}]"
        )
    ours = statistics.median(r["wall_s"] for r in results["this tree"])
    print(f"TOTAL generate + import (this tree, median): {gen_s + ours:.1f} s")


def _import_once(tree: Path, url: str, files: list[str], counts: dict, *, force: bool) -> dict:
    """One process imports every file through `vbhc import --no-precompute` (vbhc.cli.main reading the process's
    command line, as the console script runs it: its start-up and its exit counted once, as the raw loader's are):
    the process's wall time, and inside it the import without the PROM file and the PROM file alone."""
    env = {**os.environ, "PYTHONPATH": str(tree), "VBHC_DATABASE_URL": url}
    code = (
        "import vbhc\nassert vbhc.__file__.startswith(" + repr(str(tree)) + "), vbhc.__file__\n"
        "from vbhc.cli import main\n"
        "def vbhc_import(files, *options):\n"
        "    sys.argv = ['vbhc', 'import', '--no-precompute', '--by', 'bench', *options, *files]\n"
        "    assert main() == 0\n"
    )
    load = _load()
    timed = (
        "import time\n"
        f"t0 = time.perf_counter(); vbhc_import({files[:3] + files[4:]!r})\n"
        f"t1 = time.perf_counter(); vbhc_import([{files[3]!r}])\n"
        "RESULT = {'imp_s': t1 - t0, 'prom_s': time.perf_counter() - t1}"
    )
    wall_s, peak_mb, inside = run_measured(code + timed, env, tree)
    out = {"wall_s": wall_s, "imp_s": inside["imp_s"], "prom_s": inside["prom_s"], "peak_mb": peak_mb, "load": load}
    if force:
        out["again_s"], _, _ = run_measured(code + f"vbhc_import({files!r}, '--force')", env, tree)
    return out


def _load() -> str:
    return f"{os.getloadavg()[0]:.1f}"


def _fresh_database(server_url: str | None, folder: Path, name: str):
    """(url, dispose): a fresh SQLite file, or a fresh database on the PostgreSQL server."""
    if not server_url:
        path = folder / f"{name}.db"
        return f"sqlite:///{path}", lambda: [p.unlink(missing_ok=True) for p in folder.glob(f"{name}.db*")]
    import psycopg
    from sqlalchemy.engine import make_url

    base = make_url(server_url)
    database = f"vbhc_bench_{name}_{os.getpid()}".lower()
    admin = base.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(psycopg.sql.SQL("CREATE DATABASE {}").format(psycopg.sql.Identifier(database)))

    def dispose() -> None:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(psycopg.sql.SQL("DROP DATABASE IF EXISTS {}").format(psycopg.sql.Identifier(database)))

    return base.set(database=database).render_as_string(hide_password=False), dispose


def _raw_load(server_url: str | None, folder: Path, csvs: list[str], name: str) -> float | None:
    """Seconds the raw loader takes for the CSV files as they are: SQLite's shell `.import`, or PostgreSQL
    COPY into plain text tables of a fresh database (None without a sqlite3 binary)."""
    if not server_url:
        if shutil.which("sqlite3") is None:
            print("raw loader: no sqlite3 command-line shell on PATH; ratio not measured")
            return None
        script = ".mode csv\n" + "".join(f".import {f} {Path(f).stem}\n" for f in csvs)
        started = time.perf_counter()
        subprocess.run(["sqlite3", str(folder / f"{name}.db")], input=script, text=True, check=True)
        seconds = time.perf_counter() - started
        (folder / f"{name}.db").unlink()
        return seconds
    import psycopg
    from psycopg import sql

    url, dispose = _fresh_database(server_url, folder, name)
    from sqlalchemy.engine import make_url

    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    try:
        started = time.perf_counter()
        with psycopg.connect(dsn) as conn:
            for path in csvs:
                with open(path, "rb") as fh:
                    header = fh.readline().decode("utf-8-sig").strip().split(",")
                    table = sql.Identifier(Path(path).stem)
                    cols = sql.SQL(", ").join(sql.SQL("{} text").format(sql.Identifier(c)) for c in header)
                    conn.execute(sql.SQL("CREATE TABLE {} ({})").format(table, cols))
                    with conn.cursor().copy(sql.SQL("COPY {} FROM STDIN (FORMAT csv)").format(table)) as copy:
                        while block := fh.read(1 << 20):
                            copy.write(block)
        return time.perf_counter() - started
    finally:
        dispose()


if __name__ == "__main__":
    main()
