"""The import's text checks look at a column's UTF-8 bytes first (vbhc.ingest.validate._Bytes) and skip a check
that cannot find anything there (issue 13 item 4: the import's CPU). A skipped check must be one that would have
found nothing: the property below holds that for any text, and the cases after it pin the refusals (rule, row,
column) where a bad cell sits among many clean ones, also in a chunk that is a slice of a larger Arrow column."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.registry_files import write_csv, write_small_registry
from vbhc.ingest import ImportRefused, import_files
from vbhc.ingest.problems import ImportReport
from vbhc.ingest.read import Chunk, Source
from vbhc.ingest.validate import (
    _EXCEL_SCIENTIFIC,
    _FORMULA_STARTS,
    Checker,
    DecimalMarks,
    _Bytes,
    flag_unknown_units,
)
from vbhc.store import get_engine

_HIDDEN = r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\p{Cf}]"

#: every kind of character the checks look for, beside plain ones, so that examples hit them often
_CHARS = st.one_of(
    st.characters(codec="utf-8"),
    st.sampled_from(["\u200b", "\ufeff", "\x7f", "\x85", "\t", "\n", "\r", "E", "=", "#", "\uff1d", "\uff20", "é"]),
    st.sampled_from("C0123456789+-.,"),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(_CHARS, max_size=12), min_size=1, max_size=30), st.integers(0, 5))
def test_a_skipped_check_finds_nothing(texts: list[str], start: int) -> None:
    values = pa.array(texts, type=pa.string())[min(start, len(texts) - 1) :]  # a slice: Arrow's offset is not 0
    seen = _Bytes(values)
    shown = values.to_pylist()
    if not seen.control_or_not_ascii:
        assert not pc.any(pc.match_substring_regex(values, _HIDDEN)).as_py()
        assert not pc.any(pc.match_substring_regex(values, r"[\t\n\r]")).as_py()
        assert pc.all(pc.string_is_ascii(values)).as_py() in (True, None)
    if not seen.holds(b"E"):
        assert not pc.any(pc.match_substring_regex(values, _EXCEL_SCIENTIFIC)).as_py()
    if not seen.first_in(np.array([ord(c) for c in "=+-@#"], dtype=np.uint8)):
        assert not any(t[:1] in _FORMULA_STARTS or t[:1] == "#" for t in shown)
    assert seen.longest >= max((len(t) for t in shown), default=0)
    plain = [re.fullmatch(r"[+-]?[0-9]+", t) is not None for t in shown]
    assert seen.plain_integers().tolist() == plain


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.none(), st.from_regex(r"[+-]?[0-9]{0,4}", fullmatch=True), st.text(_CHARS, max_size=5))))
def test_plain_integers_are_found_by_their_bytes(texts: list[str | None]) -> None:
    values = pa.array(texts, type=pa.string())
    expected = [t is not None and re.fullmatch(r"[+-]?[0-9]+", t) is not None for t in texts]
    assert _Bytes(values).plain_integers().tolist() == expected


def _checker(tmp_path: Path, frame: pd.DataFrame, table: str = "prom_responses") -> tuple[Checker, ImportReport]:
    source = Source(tmp_path / f"{table}.csv", None, table, "0" * 64, 0)
    report = ImportReport()
    rows = np.arange(2, len(frame) + 2, dtype=np.int64)
    return Checker(source, Chunk(frame, rows, 0), report, DecimalMarks(source)), report


def _frame(columns: dict[str, list[str]]) -> pd.DataFrame:
    """A chunk's frame as the reader makes it: pandas' string dtype over Arrow."""
    return pd.DataFrame(columns, dtype=str)


def _found(report: ImportReport) -> list[tuple[int | None, str | None, str]]:
    return [(p.row, p.column, p.rule.code) for p in report.problems]


def test_a_bad_id_among_clean_ones_is_named_on_its_own_row(tmp_path):
    ids = [f"C{i:07d}" for i in range(1000)]
    ids[700] = "C0000700\u200b"  # invisible
    ids[800] = "C00\x7f00800"  # DEL
    ids[900] = "C0000\t900"  # a tab inside a key
    ids[950] = "1,23457E+11"  # Excel's scientific form
    frame = _frame({"cycle_id": ids})
    ck, report = _checker(tmp_path, frame)
    ck.identifier("cycle_id")
    ck.finish()
    assert [(p.row, p.column, p.rule.code, p.rule.values) for p in report.problems] == [
        (702, "cycle_id", "validate.invisible_character", {"code": "U+200B"}),
        (702, "cycle_id", "validate.variant_character", {"character": "U+200B ZERO WIDTH SPACE"}),
        (802, "cycle_id", "validate.invisible_character", {"code": "U+007F"}),
        (902, "cycle_id", "validate.id_line_break", {"code": "U+0009"}),
        (952, "cycle_id", "validate.id_scientific", {}),
    ]


def test_a_formula_or_error_after_clean_rows_is_named(tmp_path):
    items = ["MO"] * 500
    items[300] = "\uff1dSUM(A1)"  # a full-width equals sign: a spreadsheet runs it too
    items[400] = "#N/A"
    ck, report = _checker(tmp_path, _frame({"item": items}))
    ck.text("item", max_len=40)
    ck.finish()
    assert _found(report) == [(302, "item", "validate.formula"), (402, "item", "validate.excel_error")]


def test_length_counts_characters_not_bytes(tmp_path):
    names = ["baseline"] * 200
    names[50] = "é" * 40  # 80 bytes, 40 characters: not too long
    names[150] = "é" * 41
    ck, report = _checker(tmp_path, _frame({"timepoint": names}))
    ck.text("timepoint", max_len=40)
    ck.finish()
    assert _found(report) == [(152, "timepoint", "validate.too_long")]
    assert report.problems[0].rule.values == {"count": 40}


def test_a_cell_over_the_size_limit_is_named_by_its_characters(tmp_path, monkeypatch):
    monkeypatch.setenv("VBHC_MAX_CELL_CHARS", "50")
    from vbhc.settings import max_cell_chars

    assert max_cell_chars() == 50
    cells = ["x"] * 100
    cells[10] = "ë" * 50  # 100 bytes, 50 characters: at the limit
    cells[90] = "a" * 51
    ck, report = _checker(tmp_path, _frame({"item": cells}))
    ck.cell_sizes()
    ck.finish()
    assert _found(report) == [(92, "item", "validate.cell_too_long")]
    assert report.problems[0].rule.values["count"] == 51


def test_unknown_units_are_named_per_row_with_the_known_spelling(tmp_path):
    n = 600
    hospital, department = ["H01"] * n, ["ORT"] * n
    hospital[100], department[100] = "h01", "ORT"  # the hospital differs only in case
    hospital[200], department[200] = "H01", "ort"  # the department does
    hospital[300], department[300] = "H99", "ORT"  # no such unit
    hospital[400], department[400] = "h01", "ORT"  # the same twin again: named again
    frame = _frame({"hospital": hospital, "department": department})
    ck, report = _checker(tmp_path, frame, "care_cycles")
    flag_unknown_units(ck, frame["hospital"], frame["department"], {("H01", "ORT"), ("H02", "CAR")})
    ck.finish()
    assert _found(report) == [
        (102, "hospital", "validate.unit_case"),
        (202, "department", "validate.unit_case"),
        (302, "department", "validate.unknown_unit"),
        (402, "hospital", "validate.unit_case"),
    ]
    assert [p.rule.values.get("known") for p in report.problems] == ["H01", "H01/ORT", None, "H01"]


def _rewrite(path: Path, edits: list[tuple[int, str, str]]) -> None:
    """Set cells of a CSV: (data row from 0, column, value)."""
    with path.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    for i, column, value in edits:
        rows[i][column] = value
    write_csv(path, rows, list(rows[0]))


def test_outcomes_and_costs_are_checked_per_condition_on_their_own_rows(tmp_path):
    """The clinical outcomes' and costs' checks per condition run through codes of the conditions, outcomes and
    activities (vbhc.ingest.validate._Codes): each refusal keeps its row, column and message."""
    files = write_small_registry(tmp_path / "files")
    outcomes_csv = next(p for p in files if p.name == "clinical_outcomes.csv")
    costs_csv = next(p for p in files if p.name == "costs.csv")
    _rewrite(
        outcomes_csv,
        [
            (1, "outcome", "death"),  # the vital status a survival indicator follows, without its date
            (1, "value", "1"),
            (2, "value", "2"),  # a yes/no outcome
            (3, "value", "-1"),  # below its range
            (7, "value", "400"),  # above it
            (12, "value", "1.5"),
            (13, "outcome", "death"),  # no outcome of a hip's care cycle
            (14, "outcome", ""),
        ],
    )
    _rewrite(costs_csv, [(5, "activity", "helicopter")])
    with pytest.raises(ImportRefused) as info:
        import_files(files, get_engine(f"sqlite:///{tmp_path / 'registry.db'}"))
    found = [(p.file, p.row, p.column, p.rule.code, p.rule.values) for p in info.value.report.problems]
    los = {"outcome": "length_of_stay", "low": "0", "high": "365"}
    assert found == [
        ("clinical_outcomes.csv", 3, "date", "validate.survival_outcome_undated", {"outcome": "death"}),
        ("clinical_outcomes.csv", 4, "value", "validate.outcome_yes_no", {"outcome": "mortality_30d"}),
        ("clinical_outcomes.csv", 5, "value", "validate.outcome_out_of_range", los),
        ("clinical_outcomes.csv", 9, "value", "validate.outcome_out_of_range", los),
        ("clinical_outcomes.csv", 14, "value", "validate.outcome_yes_no", {"outcome": "revision_1y"}),
        (
            "clinical_outcomes.csv",
            15,
            "outcome",
            "validate.unknown_outcome",
            {
                "condition": "hip_osteoarthritis",
                "allowed": "revision_1y, complication_90d, readmission_30d, length_of_stay",
            },
        ),
        ("clinical_outcomes.csv", 16, "outcome", "validate.required_empty", {}),
        (
            "costs.csv",
            7,
            "activity",
            "validate.unknown_activity",
            {
                "condition": "oesophageal_cancer",
                "allowed": "outpatient_visit, imaging, operating_theatre, icu_day, ward_day, chemotherapy_cycle, "
                "radiotherapy_fraction",
            },
        ),
    ]
