"""One call from selection to file, for `vbhc report` and scheduled batch runs."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from sqlalchemy import Engine

from vbhc.registry import units as registry_units
from vbhc.reports.core import FORMATS, ReportError, Selection, check_lang, check_writable, compute_results, provenance
from vbhc.reports.core import write_report as _write
from vbhc.reports.excel import build_workbook
from vbhc.reports.pdf import build_pdf

__all__ = ["make_report", "own_hospital"]


def own_hospital(engine: Engine | None = None) -> str | None:
    """The hospital flagged as own in the units table (the dashboard's default unit), if any."""
    try:
        frame = registry_units(engine)
    except Exception:
        return None
    own = frame.loc[frame["own_hospital"], "hospital"]
    return str(own.iloc[0]) if len(own) else None


def make_report(
    path: str | os.PathLike[str],
    *,
    fmt: str,
    conditions: Sequence[str] | None = None,
    period: str | None = None,
    level: str = "hospital",
    lang: str = "nl",
    unit: str | None = None,
    engine: Engine | None = None,
    suppress_below: int | None = None,
) -> Path:
    """Select, compute, build and atomically write one report; ReportError with a clear message otherwise.

    conditions=None means every condition with care cycles in the period. For PDF the file holds one section
    per condition team (the own hospital's unit unless `unit` is given).
    """
    if fmt not in FORMATS:
        raise ReportError(f"unknown format {fmt!r}; choose from: {', '.join(FORMATS)}")
    check_lang(lang)
    Selection.validate(conditions, period, level)  # cheap checks before the path and the data
    target = check_writable(path)
    results = compute_results(conditions, period, level, engine=engine)
    batches = provenance(engine)
    if fmt == "xlsx":
        content = build_workbook(results, lang=lang, suppress_below=suppress_below, batches=batches)
    else:
        if unit is not None:
            missing = [r.condition for r in results if unit not in set(r.table["unit"].astype(str))]
            if missing:
                choices = sorted(set(results[0].table["unit"].astype(str)))
                raise ReportError(
                    f"unknown unit {unit!r} for {', '.join(missing)} at level {level!r}; choose from: "
                    f"{', '.join(choices)}"
                )
        content = build_pdf(
            results,
            unit,
            lang=lang,
            suppress_below=suppress_below,
            batches=batches,
            own_hospital=own_hospital(engine),
        )
    return _write(target, content)
