"""A table that does not start in the first column: one line saying where its header starts.

A sheet whose table sits at C5 (a title block or a margin left empty), a CSV whose lines start with separators,
pandas' unnamed index column: before, each column before the header was its own problem, "column 1 has no name:
every column with values needs a header", also for columns without a single value. Now one line names the row,
the header's first column and where it starts, in the reader's language.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openpyxl import Workbook
from openpyxl.utils import get_column_letter

from tests.registry_files import UNITS
from vbhc.ingest import ImportRefused, import_files
from vbhc.store import row_counts

COLUMNS = ["hospital", "department", "hospital_name", "department_name", "division", "own_hospital"]


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(first_row=st.integers(1, 8), skipped=st.integers(1, 4), workbook=st.booleans(), index=st.booleans())
def test_a_header_after_empty_columns_is_named_where_it_starts(
    engine, tmp_path_factory, first_row, skipped, workbook, index
):
    """`index`: the columns before the header hold values (pandas' row numbers), else they are empty."""
    folder = tmp_path_factory.mktemp("offset")
    rows = [COLUMNS, *[list(u) for u in UNITS]]
    lead = [[(str(n) if index and n else "") for _ in range(skipped)] for n in range(len(rows))]
    rows = [before + row for before, row in zip(lead, rows, strict=True)]
    if workbook:
        wb = Workbook()
        ws = wb.active
        ws.title = "units"
        for r, row in enumerate(rows):
            for c, value in enumerate(row[skipped:] if not index else row, start=1):
                ws.cell(row=first_row + r, column=c + (skipped if not index else 0), value=value or None)
        path = folder / "units.xlsx"
        wb.save(path)
    else:
        path = folder / "units.csv"
        path.write_text("\n" * (first_row - 1) + "\n".join(",".join(row) for row in rows) + "\n", encoding="utf-8")
    before = row_counts(engine)
    with pytest.raises(ImportRefused) as refused:
        import_files([path], engine)
    assert row_counts(engine) == before
    problems = refused.value.report.problems
    assert [(p.row, p.column) for p in problems] == [(first_row, "hospital")]
    rule = problems[0].rule
    start = get_column_letter(skipped + 1) if workbook else str(skipped + 1)
    assert rule.code == ("read.header_not_in_first_column" if workbook else "read.header_not_in_first_field")
    assert rule.values["column"] == start
    assert start in rule.in_language("nl") and rule.in_language("nl") != rule.in_language("en")
