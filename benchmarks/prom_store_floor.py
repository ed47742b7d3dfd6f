"""How fast could the import be if PROM answers were stored one row per questionnaire? CPU seconds, not wall.

(Written before the product stored them so, vbhc.models.PromQuestionnaire; "today" is now that store, and the
prototype, in its own table prom_prototype, the floor's write with the checks and counts left out.)

    python benchmarks/prom_store_floor.py                 # the default demo, 50,000 cycles, SQLite
    python benchmarks/prom_store_floor.py --cycles 20000 --repeat 3
    python benchmarks/prom_store_floor.py --postgres      # a throw-away PostgreSQL server (tests/pg_server.py)

Issue 13 item 4 asks the import to run at >= 1/3 of the raw loader's pace (benchmarks/import_speed.py measures
the ratio in wall time). On a shared machine wall time swings with the load; the CPU seconds of one process do
not, so this script splits the import as import_speed.py runs it (one process: start-up, the four non-PROM files,
prom_responses.csv) into CPU seconds, beside the sqlite3 shell's own CPU for `.import` of the same CSV files:
- today's import, start-up / non-PROM files / PROM file;
- the PROM file read and validated exactly as the importer does (vbhc.ingest.run._read_validated) with nothing
  written: the floor of every stored shape, since the file format and the checks per row stay;
- a prototype of the questionnaire table (one row per cycle x instrument x timepoint, one REAL column per item
  position in the catalog's order, completed date and batch), packed from the same validated chunks and written
  with executemany and an upsert that merges a partial re-send item by item (COALESCE per column): what the
  write would cost. It is a measurement, not the importer: no duplicate-item check, no per-item dates or
  provenance, no counts.
- reading the PROMs back: registry.prom_questionnaires (the database pivots the item rows) against a plain
  SELECT of the prototype's rows, and the database size of each.
Each figure in a fresh process, the 1-minute load average beside it. The ratio bounds printed last are raw CPU
over (start-up + non-PROM + PROM), with the PROM part as today, as its floor, and as the prototype.

With --postgres the PROM file alone, in wall seconds beside the client's CPU (the server's work is not in the
client's CPU): a raw COPY into a plain text table, today's import, and the prototype (each validated chunk packed
and COPYed into a staging table, then one INSERT ... SELECT ... GROUP BY ... ON CONFLICT), with table sizes.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import ROOT, run_measured

REST = ("units.xlsx", "care_cycles.csv", "clinical_outcomes.csv", "costs.csv")
PROM = "prom_responses.csv"

#: The CPU of this process so far (user + system), for the steps' own measurement.
_CPU = (
    "import resource\n"
    "def cpu():\n"
    "    r = resource.getrusage(resource.RUSAGE_SELF)\n"
    "    return r.ru_utime + r.ru_stime\n"
)

#: today's import, as import_speed.py runs it (one process, every file), split into CPU seconds
_IMPORT = (
    _CPU
    + "c0 = cpu()\nfrom vbhc.ingest import import_files\nfrom vbhc.store import get_engine\n"
    + "c1 = cpu()\nimport_files({rest!r}, get_engine({url!r}))\n"
    + "c2 = cpu()\nimport_files([{prom!r}], get_engine({url!r}))\n"
    + "RESULT = {{'start_s': c1, 'rest_s': c2 - c1, 'prom_s': cpu() - c2}}"
)

#: the non-PROM files only: the database the PROM-only steps start from
_REST = (
    "from vbhc.ingest import import_files\n"
    "from vbhc.store import get_engine\n"
    "import_files({rest!r}, get_engine({url!r}))"
)

#: the PROM file read and validated as the importer does, each valid chunk handed to `write` (none, or the
#: prototype's packing and executemany); the non-PROM files are already stored in the database at `url`
_PROM_ONLY = (
    _CPU
    + """
from pathlib import Path
import numpy as np
import pandas as pd
from vbhc.catalog import default_catalog
from vbhc.ingest import run
from vbhc.ingest.problems import ImportReport, SourceReport
from vbhc.ingest.read import discover
from vbhc.ingest.validate import DecimalMarks
from vbhc.store import get_engine

catalog = default_catalog()
engine = get_engine({url!r})
report = ImportReport()
[source] = discover([Path({prom!r})], report, (1e9, "limit"))
slots = max(len(i.items) for i in catalog.instruments.values())
positions = pd.Index(["|".join(k) for k in ((i, it.id) for i, s in catalog.instruments.items() for it in s.items)])
slot_of = np.array([n for s in catalog.instruments.values() for n in range(len(s.items))])
names = ["cycle_id", "instrument", "timepoint", "completed_date", *[f"v{{n + 1}}" for n in range(slots)], "batch_id"]
TABLE = ("CREATE TABLE prom_prototype (id INTEGER PRIMARY KEY, cycle_id VARCHAR(64) NOT NULL REFERENCES "
         "care_cycles (cycle_id), instrument VARCHAR(40) NOT NULL, timepoint VARCHAR(40) NOT NULL, completed_date "
         "DATE, " + ", ".join(f"v{{n + 1}} FLOAT" for n in range(slots)) + ", batch_id INTEGER NOT NULL, "
         "UNIQUE (cycle_id, instrument, timepoint))")
UPSERT = ("INSERT INTO prom_prototype (" + ", ".join(names) + ") VALUES (" + ", ".join("?" * len(names)) + ") "
          "ON CONFLICT (cycle_id, instrument, timepoint) DO UPDATE SET "
          + ", ".join(f"v{{n + 1}} = coalesce(excluded.v{{n + 1}}, v{{n + 1}})" for n in range(slots))
          + ", completed_date = excluded.completed_date, batch_id = excluded.batch_id")
spent = {{"pack_s": 0.0, "write_s": 0.0, "questionnaires": 0}}


def pack(valid, rows):
    # a questionnaire is a run of rows with one (cycle, instrument, timepoint); one split over two chunks, or
    # listed apart, is merged by the upsert
    c0 = cpu()
    cycle = valid["cycle_id"].to_numpy(dtype=object)
    inst = valid["instrument"].to_numpy(dtype=object)
    time_ = valid["timepoint"].to_numpy(dtype=object)
    starts = np.ones(len(cycle), dtype=bool)
    starts[1:] = (cycle[1:] != cycle[:-1]) | (inst[1:] != inst[:-1]) | (time_[1:] != time_[:-1])
    q = np.cumsum(starts) - 1
    first = np.flatnonzero(starts)
    i_codes, i_values = pd.factorize(valid["instrument"])
    t_codes, t_values = pd.factorize(valid["item"])
    pair_slot = slot_of[positions.get_indexer([f"{{a}}|{{b}}" for a in i_values for b in t_values])]
    wide = np.full((len(first), slots), np.nan)
    wide[q, pair_slot[i_codes * len(t_values) + t_codes]] = valid["value"].to_numpy(dtype=float)
    dates = pd.Series(valid["completed_date"].to_numpy()).groupby(q).max()
    d_codes, d_values = pd.factorize(dates)
    shown = np.append(np.asarray(pd.Index(d_values).strftime("%Y-%m-%d"), dtype=object), None)[d_codes]
    cells = wide.astype(object)
    cells[np.isnan(wide)] = None
    out = zip(cycle[first].tolist(), inst[first].tolist(), time_[first].tolist(), shown.tolist(),
              *cells.T.tolist(), [1] * len(first))
    c1 = cpu()
    conn.connection.driver_connection.executemany(UPSERT, out)
    spent["pack_s"] += c1 - c0
    spent["write_s"] += cpu() - c1
    spent["questionnaires"] += len(first)


with engine.connect() as conn:
    prototype = {prototype!r}
    if prototype:
        conn.exec_driver_sql(TABLE)
    batch = run._Batch(conn, catalog, report, "", False)
    batch.labels[0] = source
    done = SourceReport(source.label, None, source.table, source.sha256)
    c0 = cpu()
    run._read_validated(source, batch, done, None, 200_000, DecimalMarks(source), pack if prototype else
                        (lambda valid, rows: None))
    c1 = cpu()
    conn.commit()
    assert report.ok, report.problems[:3]
RESULT = {{**spent, "read_validate_s": c1 - c0 - spent["pack_s"] - spent["write_s"], "commit_s": cpu() - c1,
           "rows": done.rows_read}}
"""
)

#: the PROMs read back: the database's pivot of item rows (today) or the prototype's rows as stored
_READ_BACK = (
    _CPU
    + """
import time
import pandas as pd
from vbhc import registry
from vbhc.catalog import default_catalog
from vbhc.store import get_engine

engine = get_engine({url!r})
catalog = default_catalog()
uses = sorted({{(c.id, u.instrument) for c in catalog.conditions.values() for u in c.proms}})
c0, w0 = cpu(), time.perf_counter()
if {prototype!r}:
    with engine.connect() as conn:
        rows = conn.exec_driver_sql("SELECT q.* FROM prom_prototype q JOIN care_cycles c USING (cycle_id) "
                                    "ORDER BY c.condition, q.instrument").fetchall()
    n = len(pd.DataFrame(rows))
else:
    n = sum(len(registry.prom_questionnaires(cond, inst, engine=engine)) for cond, inst in uses)
RESULT = {{"read_s": cpu() - c0, "read_wall_s": time.perf_counter() - w0, "questionnaires": n}}
"""
)


#: PostgreSQL: the PROM file into a database holding the non-PROM files, today's import or the prototype
_PG_PROM = (
    _CPU
    + """
import time
from pathlib import Path
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
from vbhc.catalog import default_catalog
from vbhc.ingest import import_files, run
from vbhc.ingest.problems import ImportReport, SourceReport
from vbhc.ingest.read import discover
from vbhc.ingest.validate import DecimalMarks
from vbhc.store import get_engine

engine = get_engine({url!r})
c0, w0 = cpu(), time.perf_counter()
if not {prototype!r}:
    import_files([{prom!r}], engine)
    table = "prom_questionnaires"
else:
    catalog = default_catalog()
    slots = max(len(i.items) for i in catalog.instruments.values())
    keys = [(i, it.id) for i, s in catalog.instruments.items() for it in s.items]
    positions = pd.Index(["|".join(k) for k in keys])
    slot_of = np.array([n for s in catalog.instruments.values() for n in range(len(s.items))])
    v = [f"v{{n + 1}}" for n in range(slots)]
    names = ["cycle_id", "instrument", "timepoint", "completed_date", *v]
    report = ImportReport()
    [source] = discover([Path({prom!r})], report, (1e9, "limit"))
    table = "prom_prototype"
    with engine.connect() as conn:
        conn.exec_driver_sql(
            "CREATE TABLE prom_prototype (id SERIAL PRIMARY KEY, cycle_id VARCHAR(64) NOT NULL REFERENCES "
            "care_cycles (cycle_id), instrument VARCHAR(40) NOT NULL, timepoint VARCHAR(40) NOT NULL, completed_date "
            "DATE, " + ", ".join(f"{{c}} FLOAT" for c in v) + ", batch_id INTEGER NOT NULL, "
            "UNIQUE (cycle_id, instrument, timepoint))"
        )
        conn.exec_driver_sql(
            "CREATE TEMPORARY TABLE stage (cycle_id VARCHAR(64), instrument VARCHAR(40), timepoint VARCHAR(40), "
            "completed_date DATE, " + ", ".join(f"{{c}} FLOAT" for c in v) + ")"
        )
        driver = conn.connection.driver_connection

        def pack(valid, rows):
            cycle = valid["cycle_id"].to_numpy(dtype=object)
            inst = valid["instrument"].to_numpy(dtype=object)
            time_ = valid["timepoint"].to_numpy(dtype=object)
            starts = np.ones(len(cycle), dtype=bool)
            starts[1:] = (cycle[1:] != cycle[:-1]) | (inst[1:] != inst[:-1]) | (time_[1:] != time_[:-1])
            q = np.cumsum(starts) - 1
            first = np.flatnonzero(starts)
            i_codes, i_values = pd.factorize(valid["instrument"])
            t_codes, t_values = pd.factorize(valid["item"])
            pair_slot = slot_of[positions.get_indexer([f"{{a}}|{{b}}" for a in i_values for b in t_values])]
            wide = np.full((len(first), slots), np.nan)
            wide[q, pair_slot[i_codes * len(t_values) + t_codes]] = valid["value"].to_numpy(dtype=float)
            dates = pd.Series(valid["completed_date"].to_numpy()).groupby(q).max()
            arrays = [pa.array(a[first], pa.string()) for a in (cycle, inst, time_)]
            arrays.append(pa.array(dates, from_pandas=True).cast(pa.date32()))
            arrays += [pa.array(wide[:, k], from_pandas=True) for k in range(slots)]
            out = pa.BufferOutputStream()
            options = pa_csv.WriteOptions(include_header=False, quoting_style="needed")
            pa_csv.write_csv(pa.Table.from_arrays(arrays, names=names), out, options)
            with driver.cursor() as cur, cur.copy("COPY stage FROM STDIN (FORMAT csv)") as copy:
                copy.write(out.getvalue().to_pybytes())

        batch = run._Batch(conn, catalog, report, "", False)
        batch.labels[0] = source
        done = SourceReport(source.label, None, source.table, source.sha256)
        run._read_validated(source, batch, done, None, 200_000, DecimalMarks(source), pack)
        assert report.ok, report.problems[:3]
        merged = ", ".join(["cycle_id", "instrument", "timepoint", "max(completed_date)", *[f"max({{c}})" for c in v]])
        conn.exec_driver_sql(
            f"INSERT INTO prom_prototype ({{', '.join(names)}}, batch_id) SELECT {{merged}}, 1 FROM stage "
            "GROUP BY cycle_id, instrument, timepoint ON CONFLICT (cycle_id, instrument, timepoint) DO UPDATE SET "
            + ", ".join(f"{{c}} = coalesce(excluded.{{c}}, prom_prototype.{{c}})" for c in v)
        )
        conn.commit()
wall, spent = time.perf_counter() - w0, cpu() - c0
with engine.connect() as conn:
    size = conn.exec_driver_sql(f"SELECT pg_total_relation_size('{{table}}')").scalar_one()
RESULT = {{"wall_s": wall, "cpu_s": spent, "mb": size / 2**20}}
"""
)


def _postgres(folder: Path, rest: list[str], prom: str, repeat: int) -> None:
    """The PROM file on a throw-away PostgreSQL server: raw COPY, today's import, the prototype (wall + CPU)."""
    import psycopg
    from psycopg import sql

    sys.path.insert(0, str(ROOT))
    from tests.pg_server import start_postgres

    server = start_postgres()
    try:
        admin = server.admin_url.replace("postgresql+psycopg", "postgresql")
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute("CREATE DATABASE floor_base")
        _step(_REST, url=server.url("floor_base"), rest=rest)
        for run in range(1, repeat + 1):
            names = {kind: f"floor_{kind}_{run}" for kind in ("raw", "today", "prototype")}
            with psycopg.connect(admin, autocommit=True) as conn:
                for name in names.values():
                    conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE floor_base").format(sql.Identifier(name)))
            with psycopg.connect(server.url(names["raw"]).replace("postgresql+psycopg", "postgresql")) as conn:
                conn.execute(
                    "CREATE TABLE raw (cycle_id text, instrument text, timepoint text, item text, value text, "
                    "completed_date text)"
                )
                started = time.perf_counter()
                with open(prom, "rb") as fh, conn.cursor().copy("COPY raw FROM STDIN (FORMAT csv, HEADER)") as copy:
                    while block := fh.read(1 << 20):
                        copy.write(block)
                conn.commit()
                raw = time.perf_counter() - started
                size = conn.execute("SELECT pg_total_relation_size('raw')").fetchone()[0] / 2**20
            print(f"[#{run}] PostgreSQL raw COPY of {PROM}: {raw:.2f} s wall, {size:.0f} MB  [load {_load()}]")
            for kind in ("today", "prototype"):
                r = _step(_PG_PROM, url=server.url(names[kind]), prom=prom, prototype=kind == "prototype")
                print(
                    f"[#{run}] PostgreSQL {PROM}, {kind}: {r['wall_s']:.2f} s wall ({r['cpu_s']:.2f} s client CPU), "
                    f"table {r['mb']:.0f} MB; ratio raw / ours {raw / r['wall_s']:.2f}  [load {r['load']}]",
                    flush=True,
                )
            with psycopg.connect(admin, autocommit=True) as conn:
                for name in names.values():
                    conn.execute(sql.SQL("DROP DATABASE {}").format(sql.Identifier(name)))
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cycles", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=20261124)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--postgres", action="store_true", help="the PROM file on a throw-away PostgreSQL server")
    args = parser.parse_args()
    if not args.postgres and shutil.which("sqlite3") is None:
        raise SystemExit("needs the sqlite3 command-line shell on PATH (the raw loader)")
    with tempfile.TemporaryDirectory(prefix="vbhc-floor-") as tmp:
        _run(args, Path(tmp))


def _load() -> str:
    return f"{os.getloadavg()[0]:.1f}"


def _step(template: str, **values: object) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    _, _, result = run_measured(template.format(**values), env, ROOT)
    return result | {"load": _load()}


def _raw_cpu(folder: Path, csvs: list[Path]) -> tuple[float, float]:
    """(CPU, wall) seconds of the sqlite3 shell's `.import` of the CSV files into a fresh database."""
    db = folder / "raw.db"
    db.unlink(missing_ok=True)
    script = ".mode csv\n" + "".join(f".import {f} {f.stem}\n" for f in csvs)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(["sqlite3", str(db)], input=script, text=True, check=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    db.unlink()
    return after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, wall


def _size_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*")) / 2**20


def _run(args: argparse.Namespace, folder: Path) -> None:
    files = folder / "files"
    _, _, gen = run_measured(
        "from pathlib import Path\nfrom vbhc.demo import generate_demo\n"
        f"r = generate_demo(Path({str(files)!r}), cycles={args.cycles}, seed={args.seed})\nRESULT = {{'n': r.counts}}",
        {**os.environ, "PYTHONPATH": str(ROOT)},
        ROOT,
    )
    rows = gen["n"]["prom_responses"]
    rest = [str(files / n) for n in REST]
    prom = str(files / PROM)
    csvs = [files / n for n in (*REST[1:], PROM)]
    print(f"{args.cycles:,} cycles, {rows:,} PROM item rows  [load {_load()}]", flush=True)
    if args.postgres:
        _postgres(folder, rest, prom, args.repeat)
        return
    runs: dict[str, list[float]] = {k: [] for k in ("raw", "start", "rest", "prom", "floor", "prototype")}
    for run in range(1, args.repeat + 1):
        raw, raw_wall = _raw_cpu(folder, csvs)
        runs["raw"].append(raw)
        print(f"[#{run}] sqlite3 .import of the 4 CSV files: {raw:.2f} s CPU ({raw_wall:.1f} s wall)  [load {_load()}]")
        today = folder / f"today_{run}.db"
        r = _step(_IMPORT, url=f"sqlite:///{today}", rest=rest, prom=prom)
        runs["start"].append(r["start_s"])
        runs["rest"].append(r["rest_s"])
        runs["prom"].append(r["prom_s"])
        print(
            f"[#{run}] today's import: start-up {r['start_s']:.2f} s, non-PROM files {r['rest_s']:.2f} s, "
            f"prom_responses {r['prom_s']:.2f} s CPU; database {_size_mb(today):.0f} MB  [load {r['load']}]",
            flush=True,
        )
        base = folder / f"base_{run}.db"
        _step(_REST, url=f"sqlite:///{base}", rest=rest)
        for name, prototype in (("floor", False), ("prototype", True)):
            db = folder / f"{name}_{run}.db"
            shutil.copy(base, db)
            r = _step(_PROM_ONLY, url=f"sqlite:///{db}", prom=prom, prototype=prototype)
            assert r["rows"] == rows, r
            total = r["read_validate_s"] + r["pack_s"] + r["write_s"] + r["commit_s"]
            runs[name].append(total)
            what = (
                f"prototype: read + validate {r['read_validate_s']:.2f} s, pack {r['pack_s']:.2f} s, executemany "
                f"{r['write_s']:.2f} s ({r['questionnaires']:,} questionnaire rows), commit {r['commit_s']:.2f} s"
                if prototype
                else f"floor (read + validate, nothing written): {r['read_validate_s']:.2f} s"
            )
            size = f"; database {_size_mb(db):.0f} MB" if prototype else ""
            print(f"[#{run}] PROM file {what} = {total:.2f} s CPU{size}  [load {r['load']}]", flush=True)
        for name, db, prototype in (
            ("item rows, pivoted by the database", today, False),
            ("prototype's rows", folder / f"prototype_{run}.db", True),
        ):
            r = _step(_READ_BACK, url=f"sqlite:///{db}", prototype=prototype)
            print(
                f"[#{run}] PROMs read back, {name}: {r['questionnaires']:,} rows, {r['read_s']:.2f} s CPU "
                f"({r['read_wall_s']:.1f} s wall)  [load {r['load']}]",
                flush=True,
            )
        for p in folder.glob("*.db*"):
            p.unlink()
    m = {k: statistics.median(v) for k, v in runs.items()}
    fixed = m["start"] + m["rest"]
    print(
        f"MEDIAN over {args.repeat} run(s), CPU: raw {m['raw']:.2f} s; ours start-up + non-PROM {fixed:.2f} s + "
        f"PROM today {m['prom']:.2f} s / floor {m['floor']:.2f} s / prototype {m['prototype']:.2f} s  "
        f"[load {_load()}]"
    )
    for name in ("prom", "floor", "prototype"):
        label = {"prom": "today", "floor": "floor (PROM write free)", "prototype": "prototype"}[name]
        print(f"  ratio raw / ours, {label}: {m['raw'] / (fixed + m[name]):.2f} (target >= 0.33)")
    print(f"  the PROM file may cost at most {3 * m['raw'] - fixed:.2f} s CPU for 0.33 with the rest as today")


if __name__ == "__main__":
    main()
