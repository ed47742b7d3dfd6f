"""Reports for the quality directorate: the Excel workbook and the PDF meeting report per condition team.

Two ways in, one set of functions: the dashboard's download buttons call `build_workbook` / `build_pdf` with the
indicator results it already has (they return bytes), the `vbhc report` command calls `make_report`, which
selects the data, builds the file and writes it atomically (`write_report`). Small-number and privacy rules
(privacy.py) are applied in every export, and every file says which.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

#: Where each public name lives. The modules are imported on first use (PEP 562): the workbook and PDF builders
#: pull in openpyxl, fpdf and vl-convert, seconds of a restart's first page that a page without a download
#: button, or the privacy rules alone (vbhc.access), should not pay.
_WHERE = {
    "FORMATS": "core",
    "ReportError": "core",
    "Selection": "core",
    "check_writable": "core",
    "compute_results": "core",
    "default_unit": "core",
    "provenance": "core",
    "write_report": "core",
    "build_workbook": "excel",
    "build_pdf": "pdf",
    "SuppressionRule": "privacy",
    "patient_rows": "privacy",
    "suppress_table": "privacy",
    "make_report": "run",
}

if TYPE_CHECKING:
    from vbhc.reports.core import (
        FORMATS,
        ReportError,
        Selection,
        check_writable,
        compute_results,
        default_unit,
        provenance,
        write_report,
    )
    from vbhc.reports.excel import build_workbook
    from vbhc.reports.pdf import build_pdf
    from vbhc.reports.privacy import SuppressionRule, patient_rows, suppress_table
    from vbhc.reports.run import make_report


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    globals()[name] = value
    return value


__all__ = [
    "FORMATS",
    "ReportError",
    "Selection",
    "SuppressionRule",
    "build_pdf",
    "build_workbook",
    "check_writable",
    "compute_results",
    "default_unit",
    "make_report",
    "patient_rows",
    "provenance",
    "suppress_table",
    "write_report",
]
