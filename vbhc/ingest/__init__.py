"""Validated, atomic import of registry files (CSV and XLSX) into the database.

The package follows the data: `read` finds the tables in the files and reads their rows with exact shapes and
row numbers, `validate` checks every value against the catalog, `stage` loads and upserts through the
database, `run` orders the steps into one all-or-nothing batch and records it; `problems` is what the user is
told, `tables` the import tables derived from the stored schema.
"""

import importlib
from typing import TYPE_CHECKING, Any

from vbhc.ingest.problems import (
    HIDDEN_COLUMN,
    HIDDEN_IDENTIFIER,
    ImportRefused,
    ImportReport,
    Problem,
    Rule,
    SourceReport,
    rule_text,
    shown_column,
    shown_value,
)

if TYPE_CHECKING:
    from vbhc.ingest.run import explain_problems, import_files
    from vbhc.ingest.tables import TABLE_ORDER, TABLES, TableSpec

#: Names read from the heavier modules when first used (PEP 562): code that only needs `problems` (the
#: dashboard's pages, through vbhc.external) does not load the import machinery at a server's start.
_LAZY = {
    "explain_problems": "vbhc.ingest.run",
    "import_files": "vbhc.ingest.run",
    "TABLE_ORDER": "vbhc.ingest.tables",
    "TABLES": "vbhc.ingest.tables",
    "TableSpec": "vbhc.ingest.tables",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "HIDDEN_COLUMN",
    "HIDDEN_IDENTIFIER",
    "TABLES",
    "TABLE_ORDER",
    "ImportRefused",
    "ImportReport",
    "Problem",
    "Rule",
    "SourceReport",
    "TableSpec",
    "explain_problems",
    "import_files",
    "rule_text",
    "shown_column",
    "shown_value",
]
