"""Background work in a child process at a chosen priority: one way to start one, for every caller.

Why a child and not a thread: the work (a year's indicator views, the report's charts) holds the interpreter lock
for seconds at a time, and a server's pages drawn meanwhile would wait for it. A child at nice 19 takes only the CPU
the pages leave (where the system has priorities: not on Windows).
"""

from __future__ import annotations

import sys

#: The lowest priority: what a child started beside a server's pages runs at.
LOWEST_PRIORITY = 19

#: What the child runs: set its niceness (argv[1]), then `module:function` (argv[2]) with the remaining arguments
#: as strings; the function's return value is the child's exit status.
_CHILD = """
import importlib, os, sys
if hasattr(os, "nice") and int(sys.argv[1]):
    try:
        os.nice(int(sys.argv[1]))
    except OSError:
        pass
module, _, name = sys.argv[2].partition(":")
sys.exit(getattr(importlib.import_module(module), name)(*sys.argv[3:]))
"""


def child_command(target: str, *args: str, niceness: int = LOWEST_PRIORITY) -> list[str]:
    """The command line that runs `target` ("module:function", called with `args` as strings) in a fresh interpreter
    at `niceness` (0: the caller's own priority)."""
    return [sys.executable, "-c", _CHILD, str(int(niceness)), target, *args]
