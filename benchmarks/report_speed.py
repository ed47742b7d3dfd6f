"""`vbhc report` on the default demo: time and peak memory of the CLI, each run in a fresh process.

    python benchmarks/report_speed.py                  # the default demo, 50,000 cycles (built once into data/bench/)
    python benchmarks/report_speed.py --level department
Targets (issue 13, item 6): the Excel workbook and the PDF for all conditions each in under 10 s, read from the
persisted indicator results (vbhc.results; `vbhc demo` stores them after its import); `--empty-store` removes
them before each run, as a report computed from the registry (the first report after an import without
precomputing). The PDF run makes one file with a section per condition team of the own hospital (all seven
conditions), as `--all` does. Times include starting Python and importing the package, as a scheduled job would
see them.
"""

from __future__ import annotations

import argparse
import os
import shutil
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
RESULT = {{"seconds": time.perf_counter() - started, "bytes": Path({out!r}).stat().st_size}}
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cycles", type=int, default=50_000)
    parser.add_argument("--level", default="hospital", choices=["hospital", "department", "condition_team"])
    parser.add_argument("--empty-store", action="store_true", help="remove the persisted results before each run")
    args = parser.parse_args()
    db = bench_database(args.cycles)
    env = {"VBHC_DATABASE_URL": f"sqlite:///{db}", "PATH": "/usr/bin:/bin"}
    with tempfile.TemporaryDirectory(prefix="vbhc-report-bench-") as tmp:
        for fmt, target in (("xlsx", 10), ("pdf", 10)):
            if args.empty_store:
                shutil.rmtree(Path(f"{db}.results"), ignore_errors=True)
            out = str(Path(tmp) / f"report.{fmt}")
            seconds, peak_mb, result = run_measured(RUN.format(fmt=fmt, level=args.level, out=out), env=env)
            extra = ""
            if fmt == "pdf":
                from pypdf import PdfReader

                extra = f", {len(PdfReader(out).pages)} pages"
            print(
                f"vbhc report --all --format {fmt} ({args.cycles:,} cycles, level {args.level}): {seconds:.1f} s "
                f"(inside main {result['seconds']:.1f} s; target < {target} s), peak {peak_mb:,.0f} MB, "
                f"{result['bytes'] / 1e6:.1f} MB{extra} (load average {os.getloadavg()[0]:.2f})"
            )


if __name__ == "__main__":
    main()
