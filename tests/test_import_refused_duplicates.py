"""A duplicate key is named when one of its rows is refused for another cell.

Before, a row refused for a cell outside its key (a grouped number '1,972.66', a word in a number column) was not
staged, so the duplicate check never saw its key: the refusal named the cell, and the duplicate only in a second
round, once the cell was mended (the damaged-CSV property in tests/test_import_properties.py allowed this as
"left unnamed"). Now both are named in the one refusal, on the first import of a table (rows written directly)
and on a later one (staged), whichever of the two rows is refused (vbhc.ingest.run.RefusedKeys).
"""

from __future__ import annotations

import pytest

from tests.registry_files import CYCLE_COLUMNS, costs, cycles, write_csv, write_units
from vbhc.ingest import ImportRefused, import_files
from vbhc.store import row_counts

BAD_CELLS = ["1,972.66", "n.v.t.", "-5"]


@pytest.mark.parametrize("refused_row", ["first", "later", "both"])
@pytest.mark.parametrize("stored_before", [False, True], ids=["first import", "later import"])
@pytest.mark.parametrize("bad", BAD_CELLS)
def test_a_duplicate_of_a_refused_row_is_named_in_the_same_refusal(engine, tmp_path, refused_row, stored_before, bad):
    import_files(
        [write_units(tmp_path / "units.csv"), write_csv(tmp_path / "care_cycles.csv", cycles(), CYCLE_COLUMNS)], engine
    )
    rows = costs()
    if stored_before:
        import_files([write_csv(tmp_path / "costs_before.csv", rows[4:6])], engine)
    rows = [*rows, dict(rows[2])]  # the key of row 4 (header = row 1) again in the last row
    last = len(rows) + 1
    if refused_row in ("first", "both"):
        rows[2]["unit_cost"] = bad
    if refused_row in ("later", "both"):
        rows[-1]["unit_cost"] = bad
    before = row_counts(engine)
    with pytest.raises(ImportRefused) as refused:
        import_files([write_csv(tmp_path / "costs.csv", rows)], engine)
    assert row_counts(engine) == before
    problems = refused.value.report.problems
    duplicates = [(p.row, p.column, p.value) for p in problems if p.rule.code == "read.duplicate_key"]
    key = f"{rows[2]['cycle_id']}/{rows[2]['activity']}"
    assert duplicates == [(last, "cycle_id+activity", key)]
    assert next(p for p in problems if p.rule.code == "read.duplicate_key").rule.values["row"] == 4
    cells = sorted(p.row for p in problems if p.column == "unit_cost")
    assert cells == {"first": [4], "later": [last], "both": [4, last]}[refused_row]
