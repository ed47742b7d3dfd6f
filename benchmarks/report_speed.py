"""`vbhc report` on the default demo: time and peak memory of the CLI, each run in a fresh process.

    python benchmarks/report_speed.py                  # the default demo, 50,000 cycles (built once into data/bench/)
    python benchmarks/report_speed.py --level department
    python benchmarks/report_speed.py --runs 5             # runs per format (default 3): each run and the median
    python benchmarks/report_speed.py --after-import       # each PDF the first after an import (see below)
Targets (issue 13, item 6): the Excel workbook and the PDF for all conditions each in under 10 s, read from the
persisted indicator results (vbhc.results; `vbhc demo` stores them after its import); `--empty-store` removes
them before each run, as a report computed from the registry (the first report after an import without
precomputing). The PDF run makes one file with a section per condition team of the own hospital (all seven
conditions), as `--all` does. Times include starting Python and importing the package, as a scheduled job would
see them, and the CPU time of the process (user + system: on a shared machine the wall time also counts the wait
for a core). Each line says what the run computed instead of reading it from the store (vbhc.results.compute_counts):
a PDF's charts are rendered once per dataset version and stored, so the first PDF run after an import (or with
`--empty-store`) renders them and the later runs read them. `vbhc import` renders them after its views
(vbhc.reports.run.prepare_report_charts; `vbhc demo` leaves them to the server's warm-up): `--after-import` removes
the stored charts before each PDF run and runs `vbhc precompute` first, as an import does after its views (the
views are stored, so it renders the charts), and prints its time beside the report's.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import bench_database, run_measured

RUN = """
import time
from pathlib import Path
from vbhc.cli import main
started = time.perf_counter()
code = main(["report", "--all", "--format", {fmt!r}, "--level", {level!r}, "--lang", "nl", "--out", {out!r}])
assert code == 0, code
from vbhc.results import compute_counts
usage = resource.getrusage(resource.RUSAGE_SELF)
RESULT = {{"seconds": time.perf_counter() - started, "bytes": Path({out!r}).stat().st_size, "computed": compute_counts,
          "cpu": usage.ru_utime + usage.ru_stime}}
"""

PRECOMPUTE = """
import contextlib, io
from vbhc.cli import main
with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
    assert main(["precompute"]) == 0
from vbhc.results import compute_counts
cpu = sum(u.ru_utime + u.ru_stime for u in map(resource.getrusage, (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)))
RESULT = {"computed": compute_counts, "cpu": cpu}  # the charts are rendered in a child process
"""


def _counts(result: dict) -> str:
    return ", ".join(f"{k} {v}" for k, v in result["computed"].items() if v) or "nothing"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cycles", type=int, default=50_000)
    parser.add_argument("--level", default="hospital", choices=["hospital", "department", "condition_team"])
    parser.add_argument("--empty-store", action="store_true", help="remove the persisted results before each run")
    parser.add_argument(
        "--after-import",
        action="store_true",
        help="before each PDF run remove the stored charts and run `vbhc precompute` as an import does (timed apart)",
    )
    parser.add_argument("--runs", type=int, default=3, help="runs per format (default 3); the median is printed")
    args = parser.parse_args()
    db = bench_database(args.cycles)
    env = {"VBHC_DATABASE_URL": f"sqlite:///{db}", "PATH": "/usr/bin:/bin"}
    if os.environ.get("PYTHONPATH"):  # a checkout run with its own tree first on the path
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    with tempfile.TemporaryDirectory(prefix="vbhc-report-bench-") as tmp:
        for fmt, target in (("xlsx", 10), ("pdf", 10)):
            times, cpu = [], []
            for run in range(1, args.runs + 1):
                if args.empty_store:
                    shutil.rmtree(Path(f"{db}.results"), ignore_errors=True)
                if args.after_import and fmt == "pdf":
                    for chart in Path(f"{db}.results").glob("*/*/chart-*.pkl"):
                        chart.unlink()
                    seconds, _, result = run_measured(PRECOMPUTE, env=env)
                    print(
                        f"vbhc precompute after an import (renders the report's charts) run {run}: {seconds:.1f} s "
                        f"(CPU with its child {result['cpu']:.1f} s); computed here: {_counts(result)} "
                        f"(load average {os.getloadavg()[0]:.2f})",
                        flush=True,
                    )
                out = str(Path(tmp) / f"report.{fmt}")
                seconds, peak_mb, result = run_measured(RUN.format(fmt=fmt, level=args.level, out=out), env=env)
                times.append(seconds)
                cpu.append(result["cpu"])
                extra = ""
                if fmt == "pdf":
                    from pypdf import PdfReader

                    reader = PdfReader(out)
                    images = sum(len(page.images) for page in reader.pages)
                    extra = f", {len(reader.pages)} pages, {images} charts"
                computed = _counts(result)
                print(
                    f"vbhc report --all --format {fmt} ({args.cycles:,} cycles, level {args.level}) run {run}: "
                    f"{seconds:.1f} s (inside main {result['seconds']:.1f} s; CPU {result['cpu']:.1f} s), "
                    f"peak {peak_mb:,.0f} MB, "
                    f"{result['bytes'] / 1e6:.1f} MB{extra}; computed: {computed} "
                    f"(load average {os.getloadavg()[0]:.2f})",
                    flush=True,
                )
            print(
                f"vbhc report --all --format {fmt} ({args.cycles:,} cycles, level {args.level}): median of "
                f"{len(times)} {statistics.median(times):.1f} s, CPU {statistics.median(cpu):.1f} s "
                f"(target < {target} s) "
                f"(load average {os.getloadavg()[0]:.2f})",
                flush=True,
            )


if __name__ == "__main__":
    main()
