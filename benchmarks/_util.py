"""Shared helpers for the benchmark scripts: run a step in a child process and report wall time and peak RSS."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time


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
