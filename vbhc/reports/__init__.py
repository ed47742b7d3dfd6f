"""Reports for the quality directorate: the Excel workbook and the PDF meeting report per condition team.

Two ways in, one set of functions: the dashboard's download buttons call `build_workbook` / `build_pdf` with the
indicator results it already has (they return bytes), the `vbhc report` command calls `make_report`, which
selects the data, builds the file and writes it atomically (`write_report`). Small-number and privacy rules
(privacy.py) are applied in every export, and every file says which.
"""

from __future__ import annotations

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
