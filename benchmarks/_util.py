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


def run_measured(code: str, env: dict | None = None) -> tuple[float, float, dict]:
    """Run `code` in a fresh Python; return (seconds, peak resident MB, the JSON it printed last)."""
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
