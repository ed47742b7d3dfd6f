"""The demo as one hospital has it (issue 15, item 6): the patient rows of its own care cycles only, and the other
hospitals as figures, the way a national quality registry's feedback reaches it.

`vbhc demo --mode own` writes both from the demo registry: the registry files cut down to the own hospital's care
cycles (units.xlsx stays whole: the hospitals and their departments are public), and one file of external
figures (vbhc.external's format) for the nine other hospitals, computed from their patient rows the way a
partner's `vbhc external export` computes them, with expected counts from the case-mix model fitted on every
hospital (the "national model"), small numbers withheld by the export rule. Importing both gives the team page
the own hospital among the external benchmark, with the population named.
"""

from __future__ import annotations

import csv
import datetime as dt
import shutil
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
from sqlalchemy import Engine

from vbhc.catalog import Catalog, default_catalog
from vbhc.external import own_summary, suppressed_summary, write_figures
from vbhc.indicators import compute_indicators, load_condition_data
from vbhc.registry import hospital_of
from vbhc.reports.privacy import SuppressionRule

__all__ = ["EXTERNAL_FILE", "SOURCE", "external_figures", "own_hospital_files"]

EXTERNAL_FILE = "external_figures.csv"
SOURCE = "Landelijke kwaliteitsregistratie (demo)"
_CYCLES = "care_cycles.csv"


def own_hospital_files(files: Sequence[Path], own: str, out_dir: Path) -> list[Path]:
    """Copies of the registry files in `out_dir` holding only the own hospital's care cycles and the rows that
    belong to them; every cell is copied as text, as written (nothing parsed, so nothing changes on the way)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    by_name = {Path(f).name: Path(f) for f in files}
    if _CYCLES not in by_name:
        raise ValueError(f"the demo files hold no {_CYCLES}")
    kept: set[str] = set()
    written: list[Path] = []
    for path in [by_name[_CYCLES], *(p for name, p in by_name.items() if name != _CYCLES)]:
        target = out_dir / path.name
        if path.suffix.lower() != ".csv":
            shutil.copyfile(path, target)
        else:
            with path.open(encoding="utf-8", newline="") as src, target.open("w", encoding="utf-8", newline="") as dst:
                reader, writer = csv.reader(src), csv.writer(dst, lineterminator="\n")
                header = next(reader)
                writer.writerow(header)
                if "cycle_id" not in header:  # patient experience: rows name their unit, not a care cycle
                    hospital = header.index("hospital")
                    writer.writerows(row for row in reader if row[hospital] == own)
                    written.append(target)
                    continue
                cycle = header.index("cycle_id")
                if path.name == _CYCLES:
                    hospital = header.index("hospital")
                    for row in reader:
                        if row[hospital] == own:
                            kept.add(row[cycle])
                            writer.writerow(row)
                else:
                    writer.writerows(row for row in reader if row[cycle] in kept)
        written.append(target)
    order = {Path(f).name: i for i, f in enumerate(files)}
    return sorted(written, key=lambda p: order[p.name])


def external_figures(
    engine: Engine,
    own: str,
    out_dir: Path,
    *,
    published: dt.date,
    catalog: Catalog | None = None,
    rule: SuppressionRule | None = None,
) -> Path:
    """The other hospitals' figures per hospital and indicator of every condition, from the registry in
    `engine` (every hospital's patient rows), written as one external figures file in `out_dir`."""
    catalog = catalog or default_catalog()
    rule = rule or SuppressionRule.from_settings()
    frames: list[pd.DataFrame] = []
    years: set[int] = set()
    for condition in catalog.conditions:
        data = load_condition_data(condition, engine=engine, catalog=catalog)
        if data.cycles.empty:
            continue
        years.update(pd.to_datetime(data.cycles["index_date"]).dt.year.unique().tolist())
        result = compute_indicators(data, "hospital")
        others = sorted({hospital_of(str(u)) for u in result.table["unit"]} - {own})
        # expected from the model fitted on every hospital: the registry's national model
        summary = own_summary(result, models=result.models, hospitals=others)
        frames.append(suppressed_summary(summary, rule))
    if not frames:
        raise ValueError("the registry holds no care cycles to compute external figures from")
    period = f"{min(years)}-{max(years)}" if len(years) > 1 else str(min(years))
    target = out_dir / EXTERNAL_FILE
    target.write_bytes(
        write_figures(pd.concat(frames, ignore_index=True), source=SOURCE, published=published, period=period)
    )
    return target
