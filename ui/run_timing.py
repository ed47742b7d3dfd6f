"""How long each script run took on the server, for the benchmarks: benchmarks/page_speed.py reads the run's wall
from the session (`_run_seconds`), and benchmarks/browser_speed.py the opt-in log VBHC_RUN_TIMING_LOG (one JSON
line per run: page, wall, the run thread's CPU, its wait for a CPU, whether the warm-up was running)."""

from __future__ import annotations

import json
import os
import time


def cpu_wait_seconds() -> float | None:
    """Seconds this thread has waited for a free CPU (Linux's per-thread schedstat): the part of a run's wall that
    is neither its own CPU nor a wait for the interpreter lock, a lock or I/O (ten viewers at once on two cores:
    either other processes took the CPU, or the server's own threads did). None where the kernel does not say."""
    try:
        with open("/proc/thread-self/schedstat", encoding="ascii") as stat:
            return int(stat.read().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):  # not Linux, or a kernel without schedstats
        return None


class RunTiming:
    """Started at the top of a script run (in its thread), finished at its end."""

    def __init__(self) -> None:
        self.log = os.environ.get("VBHC_RUN_TIMING_LOG")
        self.started, self.cpu_started = time.perf_counter(), time.thread_time()
        self.waited_before = cpu_wait_seconds() if self.log else None

    def seconds(self) -> float:
        """The run's wall so far."""
        return time.perf_counter() - self.started

    def finish(self, page: str, warming_up: bool) -> float:
        """The run's wall; with VBHC_RUN_TIMING_LOG set, its line appended to that file."""
        wall = self.seconds()
        if self.log:
            line = {"page": page, "wall": wall, "cpu": time.thread_time() - self.cpu_started}
            if self.waited_before is not None and (waited := cpu_wait_seconds()) is not None:
                line["cpu_wait"] = waited - self.waited_before
            line["warming_up"] = warming_up
            with open(self.log, "a", encoding="utf-8") as out:
                out.write(json.dumps({**line, "at": time.time()}) + "\n")
        return wall
