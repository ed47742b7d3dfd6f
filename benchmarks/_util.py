"""Shared helpers for the benchmark scripts: the demo database they share, and a step run in a child process
with its wall time and peak RSS."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_measured(code: str, env: dict | None = None, cwd: Path | None = None) -> tuple[float, float, dict]:
    """Run `code` in a fresh Python in `cwd`; return (seconds, peak resident MB, the JSON it printed last).

    `python -c` puts its working folder first on the module path, before PYTHONPATH: a baseline tree is only
    imported when the step runs in that tree's folder (`cwd`), not in this checkout's."""
    started = time.perf_counter()
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "import resource, json, sys\n" + code + "\n"
            "print(json.dumps({**globals().get('RESULT', {}), 'peak_mb': "
            "resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        check=False,
    )
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"benchmark step failed:\n{proc.stderr[-3000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    return seconds, result["peak_mb"], result


del resource


def bench_database(cycles: int) -> Path:
    """The SQLite demo registry of `cycles` care cycles under data/bench/ (git-ignored), built on first use."""
    db = ROOT / "data" / "bench" / f"demo_{cycles}" / "vbhc.db"
    if not db.exists():
        db.parent.mkdir(parents=True, exist_ok=True)
        print(f"building the {cycles:,}-cycle demo database at {db} (once) ...", flush=True)
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "vbhc.cli", "demo", "--cycles", str(cycles), "--out", str(db.parent / "files")],
            check=True,
            env={"VBHC_DATABASE_URL": f"sqlite:///{db}", "PATH": "/usr/bin:/bin"},
        )
        print(f"built in {time.perf_counter() - started:.0f} s")
    return db


def bench_postgres(cycles: int, url: str | None) -> tuple[str, object | None]:
    """(URL, server) of the demo registry of `cycles` care cycles on PostgreSQL, imported on first use.

    Without `url` a private server runs on a cluster kept in data/bench/demo_<cycles>/postgresql (the caller
    stops it with stop_keeping()); with `url` the database it names is used. The demo files are the SQLite
    build's when it has them, else written once (vbhc demo --no-import); the import streams them in chunks.
    """
    import os

    from sqlalchemy import create_engine, text

    sys.path.insert(0, str(ROOT))
    server = None
    if url is None:
        from tests.pg_server import start_postgres

        server = start_postgres(ROOT / "data" / "bench" / f"demo_{cycles}" / "postgresql")
        url = server.admin_url  # initdb's own database: one kept cluster per size, so no DDL here
    engine = create_engine(url)
    with engine.connect() as conn:
        has = conn.execute(text("SELECT to_regclass('care_cycles') IS NOT NULL")).scalar()
        found = conn.execute(text("SELECT count(*) FROM care_cycles")).scalar() if has else 0
    engine.dispose()
    if found != cycles:
        if found:
            raise SystemExit(f"{url} holds {found:,} care cycles, not {cycles:,}: name an empty database")
        files = _demo_files(cycles)
        print(f"importing the {cycles:,}-cycle demo into PostgreSQL (once) ...", flush=True)
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "vbhc.cli", "import", *map(str, files), "--by", "bench", "--no-precompute"],
            check=True,
            env={**os.environ, "VBHC_DATABASE_URL": url},
        )
        print(f"imported in {time.perf_counter() - started:.0f} s")
    return url, server


def _demo_files(cycles: int) -> list[Path]:
    """The demo's files in import order, written once under data/bench/demo_<cycles>/files."""
    from vbhc.demo import TABLES, DemoResult

    folder = ROOT / "data" / "bench" / f"demo_{cycles}" / "files"
    files = [folder / "units.xlsx"] + [folder / f"{t}.csv" for t in TABLES[1:]]
    follow_up, prems = folder / "clinical_outcomes_follow_up.csv", folder / "prem_responses.csv"
    if not all(f.exists() for f in [*files, follow_up, prems]):
        print(f"writing the {cycles:,}-cycle demo files to {folder} (once) ...", flush=True)
        subprocess.run(
            [sys.executable, "-m", "vbhc.cli", "demo", "--cycles", str(cycles), "--out", str(folder), "--no-import"],
            check=True,
        )
    return DemoResult(files, folder / "truth.json", {}, follow_up, prems).import_order()
