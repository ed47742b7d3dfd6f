"""Validated, atomic import of registry files (CSV and XLSX) into the database.

The package follows the data: `read` finds the tables in the files and reads their rows with exact shapes and
row numbers, `validate` checks every value against the catalog, `stage` loads and upserts through the
database, `run` orders the steps into one all-or-nothing batch and records it; `problems` is what the user is
told, `tables` the import tables derived from the stored schema.
"""

from vbhc.ingest.problems import (
    HIDDEN_COLUMN,
    HIDDEN_IDENTIFIER,
    ImportRefused,
    ImportReport,
    Problem,
    SourceReport,
    shown_column,
    shown_value,
)
from vbhc.ingest.run import explain_problems, import_files
from vbhc.ingest.tables import TABLE_ORDER, TABLES, TableSpec

__all__ = [
    "HIDDEN_COLUMN",
    "HIDDEN_IDENTIFIER",
    "TABLES",
    "TABLE_ORDER",
    "ImportRefused",
    "ImportReport",
    "Problem",
    "SourceReport",
    "TableSpec",
    "explain_problems",
    "import_files",
    "shown_column",
    "shown_value",
]
