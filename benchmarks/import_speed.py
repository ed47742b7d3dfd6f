"""Demo generation and import: time, rows per second and peak memory (each step in a fresh process).

    python benchmarks/import_speed.py                 # default demo, 50,000 cycles
    python benchmarks/import_speed.py --cycles 35000  # about 1,000,000 PROM item rows
Targets (issue 2): 50,000 cycles generated and imported in under a minute; a file of 1,000,000 PROM item rows
imported within ~1.5 GB peak memory. Issue 13: the import at >= 1/3 of the raw loader's pace: on SQLite the
SQLite command-line shell's `.import` of the same CSV files into a fresh database (no checks, no constraints),
timed in the same run, so the ratio holds on a noisy machine. The 1-minute load average is printed with each step.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import run_measured


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cycles", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=20261124)
    parser.add_argument("--database-url", help="default: a fresh SQLite file in a temporary folder")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="vbhc-bench-") as tmp:
        folder = Path(tmp)
        url = args.database_url or f"sqlite:///{folder / 'bench.db'}"
        gen_s, gen_mb, gen = run_measured(
            "from pathlib import Path\nfrom vbhc.demo import generate_demo\n"
            f"r = generate_demo(Path({str(folder / 'files')!r}), cycles={args.cycles}, seed={args.seed})\n"
            "RESULT = {'counts': r.counts}"
        )
        counts = gen["counts"]
        print(
            f"demo generation: {args.cycles:,} cycles, {sum(counts.values()):,} rows in {gen_s:.1f} s, "
            f"peak {gen_mb:,.0f} MB"
        )
        files = [
            str(folder / "files" / n)
            for n in ("units.xlsx", "care_cycles.csv", "clinical_outcomes.csv", "prom_responses.csv", "costs.csv")
        ]
        imp_s, imp_mb, _ = run_measured(
            "from vbhc.ingest import import_files\nfrom vbhc.store import get_engine\n"
            f"import_files({files[:3] + files[4:]!r}, get_engine({url!r}))"
        )
        print(
            f"import without PROMs: {counts['care_cycles'] + counts['clinical_outcomes'] + counts['costs']:,} rows "
            f"in {imp_s:.1f} s, peak {imp_mb:,.0f} MB"
        )
        prom_s, prom_mb, _ = run_measured(
            "from vbhc.ingest import import_files\nfrom vbhc.store import get_engine\n"
            f"import_files([{files[3]!r}], get_engine({url!r}))"
        )
        rows = counts["prom_responses"]
        print(
            f"import of prom_responses: {rows:,} item rows in {prom_s:.1f} s ({rows / prom_s:,.0f} rows/s), "
            f"peak {prom_mb:,.0f} MB"
        )
        again_s, _, _ = run_measured(
            "from vbhc.ingest import import_files\nfrom vbhc.store import get_engine\n"
            f"import_files({files!r}, get_engine({url!r}), force=True)"
        )
        print(f"forced re-import of everything (all rows unchanged): {again_s:.1f} s")
        print(f"TOTAL generate + import: {gen_s + imp_s + prom_s:.1f} s")
        raw = _raw_sqlite_import(folder, files)
        if raw is not None:
            csv_rows = counts["care_cycles"] + counts["clinical_outcomes"] + counts["costs"] + rows
            ours = imp_s + prom_s
            print(
                f"raw loader (sqlite3 .import, no checks): {csv_rows:,} rows in {raw:.1f} s; vbhc import "
                f"{ours:.1f} s: {raw / ours:.2f} of the raw pace (target >= 0.33)  [load {_load()}]"
            )


def _load() -> str:
    return f"{os.getloadavg()[0]:.1f}"


def _raw_sqlite_import(folder: Path, files: list[str]) -> float | None:
    """Seconds the SQLite shell takes to load the CSV files as they are (None without a sqlite3 binary)."""
    if shutil.which("sqlite3") is None:
        print("raw loader: no sqlite3 command-line shell on PATH; ratio not measured")
        return None
    script = ".mode csv\n" + "".join(f".import {f} {Path(f).stem}\n" for f in files if f.endswith(".csv"))
    started = time.perf_counter()
    subprocess.run(["sqlite3", str(folder / "raw.db")], input=script, text=True, check=True)
    return time.perf_counter() - started


if __name__ == "__main__":
    main()
