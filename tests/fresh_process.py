"""A check run in a fresh Python process: what one process does once (vl-convert's fonts, the modules imported at
start, a second server process reading the first one's results) can only be seen from a process of its own."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from vbhc.settings import PROJECT_ROOT


def run_json(code: str, *args: str, env: dict[str, str] | None = None, timeout: float = 300) -> object:
    """Run `python -c code args` in the project (its folder and PYTHONPATH) with os.environ updated by `env`, and
    return its last line of output read as JSON; a failure shows the end of the process's error output."""
    done = subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=PROJECT_ROOT,
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT), **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])
