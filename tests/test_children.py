"""vbhc.children: the one way background work starts a child process (the years' views, the report's charts)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from vbhc.children import LOWEST_PRIORITY, child_command

PROBE = """
import os
from pathlib import Path


def niceness(out: str, *words: str) -> int:
    Path(out).write_text(" ".join([str(os.nice(0)), *words]))
    return len(words)
"""


def _run(tmp_path, command: list[str]) -> subprocess.CompletedProcess:
    (tmp_path / "probe_module.py").write_text(PROBE)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path])}
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.skipif(not hasattr(os, "nice"), reason="no process priorities on this system")
def test_the_child_runs_its_function_with_its_arguments_at_its_priority(tmp_path):
    out = tmp_path / "out.txt"
    done = _run(tmp_path, child_command("probe_module:niceness", str(out), "a", "b c", niceness=5))
    assert done.returncode == 2, done.stderr  # the function's return value is the exit status
    niceness, *words = out.read_text().split(" ", 1)
    assert int(niceness) == min(os.nice(0) + 5, LOWEST_PRIORITY) and words == ["a b c"]


@pytest.mark.skipif(not hasattr(os, "nice"), reason="no process priorities on this system")
def test_niceness_zero_keeps_the_callers_priority(tmp_path):
    out = tmp_path / "out.txt"
    assert _run(tmp_path, child_command("probe_module:niceness", str(out), niceness=0)).returncode == 0
    assert int(out.read_text()) == os.nice(0)


def test_a_failing_child_says_so_in_its_exit_status(tmp_path):
    done = _run(tmp_path, child_command("probe_module:no_such_function"))
    assert done.returncode != 0 and "no_such_function" in done.stderr
