"""Demo generation and import: time, rows per second and peak memory (each step in a fresh process).

    python benchmarks/import_speed.py                 # default demo, 50,000 cycles
    python benchmarks/import_speed.py --cycles 35000  # about 1,000,000 PROM item rows
Targets (issue 2): 50,000 cycles generated and imported in under a minute; a file of 1,000,000 PROM item rows
imported within ~1.5 GB peak memory.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
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


if __name__ == "__main__":
    main()
