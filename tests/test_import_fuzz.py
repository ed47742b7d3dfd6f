"""Malformed and hostile files: each gets ImportRefused with a clear message, nothing is written, the refusal is
audited without patient data, and no patient identifier appears in the message.

Explicit cases cover each kind the issue names (wrong encodings, formulas, huge cells, truncated files, zip
bombs, size limit, files that are not what their name says); bounded hypothesis tests mutate valid CSV and XLSX
files at random and check that the importer never crashes and never writes part of a refused file.
"""

from __future__ import annotations

import csv
import io
import re
import shutil
import warnings
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openpyxl import Workbook
from sqlalchemy import select

from tests import registry_source
from tests.backends import sqlite_only
from tests.registry_files import CYCLE_COLUMNS, cycles, write_csv, write_small_registry
from tests.xlsx_parts import (
    cell_moved_to_row_start,
    number_written,
    patch_sheet,
    row_again_at_end,
    row_moved_to_end,
    shared_strings,
    sheet_renamed,
    state_dimension,
)
from vbhc import audit, models
from vbhc.ingest import HIDDEN_IDENTIFIER, ImportRefused, import_files
from vbhc.store import get_engine, row_counts, upgrade_schema

PATIENT_IDS = [c["patient_id"] for c in cycles()]


def _refused(paths, engine) -> str:
    """Import must be refused with nothing written and an audited refusal; returns the message."""
    before = row_counts(engine)
    refused_before = len(audit.read(engine, action="import_refused"))
    with pytest.raises(ImportRefused) as info:
        import_files(paths, engine, imported_by="fuzz")
    assert row_counts(engine) == before
    events = audit.read(engine, action="import_refused")
    assert len(events) == refused_before + 1
    detail = events.iloc[-1]["detail"]
    message = str(info.value)
    for pid in PATIENT_IDS:
        assert pid not in message and pid not in detail
    assert len(message) < 20_000
    return message


@pytest.fixture(scope="module")
def base_files(tmp_path_factory) -> list[Path]:
    """The small registry's files, written once for the module (`base` imports the units; a test only reads them)."""
    return write_small_registry(tmp_path_factory.mktemp("base") / "files")


@pytest.fixture(scope="module")
def sqlite_base(base_files, _sqlite_schema, tmp_path_factory) -> registry_source.Source:
    """The units imported once into a SQLite registry of the current schema, the database every SQLite `base` is
    a copy of (importing them again for each of ~150 tests was a fifth of this module's CPU)."""
    return registry_source.sqlite_imported(_sqlite_schema, tmp_path_factory.mktemp("base_source"), base_files[:1])


@pytest.fixture(scope="module")
def postgres_base(base_files, postgres_server, _postgres_schema) -> Iterator[registry_source.Source]:
    """As sqlite_base, on the suite's PostgreSQL server (the template of every PostgreSQL `base`)."""
    with registry_source.postgres_imported(postgres_server, _postgres_schema, base_files[:1]) as source:
        yield source


#: A test that uses one of these fixtures gets a PostgreSQL `engine` made straight from the module's imported
#: registry, its source (tests/conftest.py `postgres_template`)
POSTGRES_SOURCES = {"base": "postgres_base"}


@pytest.fixture
def base(engine, base_files, request):
    """Units already imported; returns (engine, the files of a valid registry). The test's `engine` (SQLite or
    PostgreSQL) is made a copy of the module's registry with the units imported: the same rows, import batch and
    audit event as importing units.csv into it."""
    registry_source.overwrite_from(engine, request, "base")
    return engine, base_files


def _cycles_csv(path: Path, change: dict[str, str] | None = None, row: int = 2) -> Path:
    rows = cycles()
    rows[row].update(change or {})
    return write_csv(path, rows, CYCLE_COLUMNS)


def _cycles_sheet() -> tuple[Workbook, object]:
    """A workbook whose one sheet, care_cycles, holds the small registry's care cycles (row 2 is the first)."""
    wb = Workbook()
    ws = wb.active
    ws.title = "care_cycles"
    ws.append(CYCLE_COLUMNS)
    for row in cycles():
        ws.append([row[c] for c in CYCLE_COLUMNS])
    return wb, ws


# --- encodings and binary content ----------------------------------------------------------------------


@sqlite_only
@pytest.mark.parametrize(
    ("encode", "rule"),
    [
        (lambda text: text.encode("latin-1"), "not UTF-8 text: byte 0xE9 at byte offset"),
        (lambda text: text.encode("cp1252"), "tried UTF-8 with and without BOM"),
        (lambda text: text.encode("utf-16"), "UTF-16 text"),
        (lambda text: text.encode("utf-8").replace(b"C0003", b"C\x0003"), "binary content, not CSV text: NUL byte"),
    ],
)
def test_wrong_encodings_and_binary_content(base, tmp_path, encode, rule):
    engine, _files = base
    path = _cycles_csv(tmp_path / "care_cycles.csv", {"treatment": "oesophagectomié"})
    path.write_bytes(encode(path.read_text(encoding="utf-8")))
    message = _refused([path], engine)
    assert rule in message
    assert "care_cycles.csv" in message


@sqlite_only
def test_encoding_error_names_the_line(base, tmp_path):
    engine, _ = base
    path = _cycles_csv(tmp_path / "care_cycles.csv")
    lines = path.read_bytes().split(b"\n")
    lines[5] = lines[5].replace(b"oesophagectomy", b"oesophagectom\xff")
    path.write_bytes(b"\n".join(lines))
    assert "(line 6)" in _refused([path], engine)


def test_utf8_with_bom_is_accepted(base, tmp_path):
    engine, _ = base
    path = _cycles_csv(tmp_path / "care_cycles.csv")
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    import_files([path], engine)
    assert row_counts(engine)["care_cycles"] == 12


# --- Excel's separator line (sep=;) ---------------------------------------------------------------------


@sqlite_only
@pytest.mark.parametrize("name", ["care_cycles.csv", "export.csv"])
@pytest.mark.parametrize(
    ("bom", "line_end", "quoted"),
    [(b"", b"\n", False), (b"\xef\xbb\xbf", b"\r\n", False), (b"", b"\r\n", True), (b"", b"\r", False)],
)
def test_excels_separator_line_sets_the_separator_and_is_no_row(base, tmp_path, name, bom, line_end, quoted):
    """A CSV starting with Excel's separator line (sep=;, written so that Excel in every locale opens it in
    columns) is read as Excel reads it: the line sets the separator, the header is the next line. It was refused
    as 'this file has no header row'. Rows keep the file's line numbers (the separator line is line 1): a value
    in the sixth line is named in line 6, by the fast path (one line one row) and by the csv module's."""
    engine, _ = base
    plain = _cycles_csv(tmp_path / "plain.csv").read_bytes().replace(b"\r\n", b"\n").decode().splitlines()
    lines = [line.replace(",", ";") for line in plain]
    if quoted:
        lines[3] = lines[3].replace("oesophagectomy", '"oesophagectomy"')
    path = tmp_path / name
    path.write_bytes(bom + line_end.join(s.encode() for s in ["sep=;", *lines]) + line_end)
    import_files([path], engine)
    with engine.connect() as conn:
        stored = dict(conn.execute(select(models.CareCycle.cycle_id, models.CareCycle.treatment)).all())
    assert stored == {c["cycle_id"]: c["treatment"] for c in cycles()}
    lines[4] = lines[4].replace("oesophagectomy", "oesophagectom?")  # the file's sixth line
    path.write_bytes(bom + line_end.join(s.encode() for s in ["sep=;", *lines]) + line_end)
    message = _refused([path], engine)
    assert re.search(r"row 6 column 'treatment'", message), message


@sqlite_only
def test_a_separator_line_naming_another_separator_is_refused_naming_it(base, tmp_path):
    """sep=| names a separator the import does not read: refused naming the line, not 'no header row'."""
    engine, _ = base
    path = _cycles_csv(tmp_path / "care_cycles.csv")
    path.write_bytes(b"sep=|\n" + path.read_bytes().replace(b",", b"|"))
    message = _refused([path], engine)
    assert "row 1" in message and "'sep=|'" in message and "separator line" in message, message
    assert "no header row" not in message


@sqlite_only
@pytest.mark.parametrize("sep", [",", ";"])
@pytest.mark.parametrize("column", ["cycle_id", "patient_id"])
def test_an_id_excel_turned_into_scientific_notation_is_refused(base, tmp_path, sep, column):
    """A long numeric id that Excel showed as 1.23457E+11 (1,23457E+11 in Dutch) and saved to CSV so lost its
    digits, and two ids may have become one; it was stored as the id '1.23457E+11'. Refused naming row and
    column (a patient id's value hidden); an id such as 4.5e3 or 12345678901234567890, which Excel does not
    write, is read as written."""
    engine, _ = base
    mark = "." if sep == "," else ","
    rows = cycles()
    rows[2][column] = f"1{mark}23457E+11"
    path = write_csv(tmp_path / "care_cycles.csv", rows, CYCLE_COLUMNS, sep=sep)
    message = _refused([path], engine)
    assert f"row 4 column '{column}'" in message and "an id written as Excel shows a long number" in message
    assert (f"value '1{mark}23457E+11'" in message) == (column == "cycle_id"), message
    rows[2][column] = "4.5e3" if sep == "," else "12345678901234567890"
    import_files([write_csv(tmp_path / "care_cycles.csv", rows, CYCLE_COLUMNS, sep=sep)], engine)


# --- formulas ------------------------------------------------------------------------------------------

FORMULAS = [
    '=HYPERLINK("http://evil.example","klik")',
    '   =HYPERLINK("http://evil.example")',
    "\t=1+1",
    "+cmd|' /C calc'!A0",
    "-2+3+cmd|' /C calc'!A0",
    "@SUM(A1:A9)",
    "\uff1dHYPERLINK(1)",
]


@sqlite_only
@pytest.mark.parametrize("formula", FORMULAS)
def test_formulas_in_csv_cells_are_refused(base, tmp_path, formula):
    engine, _ = base
    path = _cycles_csv(tmp_path / "care_cycles.csv", {"treatment": formula})
    assert "formulas are not accepted" in _refused([path], engine)


@sqlite_only
@pytest.mark.parametrize(
    ("change", "rule"),
    [
        # a second key that looks like the first: C0003 with a zero-width space, a direction override, a control
        ({"cycle_id": "C0003\u200b"}, "value 'C0003\\u200b': holds a character no one sees (U+200B)"),
        ({"treatment": "total_hip\u202earthroplasty"}, "holds a character no one sees (U+202E)"),
        ({"cycle_id": "C00\x0b03"}, "holds a character no one sees (U+000B)"),
        # an Excel error value is no value, not a text to store
        ({"cycle_id": "#N/A"}, "column 'cycle_id': value '#N/A': an Excel error value, not a value"),
        ({"treatment": "#div/0!"}, "an Excel error value"),
        # other scripts' digits match Python's \d but no number parser reads them: refused by name, never a
        # database error
        ({"age": "\u0666\u0668"}, "column 'age': value '\u0666\u0668': not a number"),
        ({"bmi": "2\u0662.5"}, "column 'bmi': value '2\u0662.5': not a number"),
    ],
)
def test_invisible_characters_excel_errors_and_other_digits_are_refused_by_name(base, tmp_path, change, rule):
    engine, _ = base
    path = _cycles_csv(tmp_path / "care_cycles.csv", change)
    message = _refused([path], engine)
    assert rule in message and "row 4" in message and "database" not in message


#: What people write in a number cell for a value that is missing (the brief's list, as written)
MISSING_WORDS = ["n.v.t.", "onbekend", "nvt", "n/a", "NA", "-", "?", "leeg", "unknown", "missing", "N.V.T."]


@sqlite_only
@pytest.mark.parametrize("word", MISSING_WORDS)
@pytest.mark.parametrize("workbook", [False, True], ids=["csv", "xlsx"])
def test_a_word_for_a_missing_number_is_refused_with_how_to_write_one(base, tmp_path, word, workbook):
    """'n.v.t.', '-', 'onbekend' in a number column were 'not a number' and nothing else: their writer meant a missing
    value and could not tell how to write one. Still refused (a reader of 'n.v.t.' reads 'not applicable', which the
    registry does not store), with the hint that a missing value is an empty cell, in both languages; other text
    keeps the plain 'not a number'. Nothing is stored."""
    engine, _ = base
    if workbook:
        wb, ws = _cycles_sheet()
        ws.cell(4, CYCLE_COLUMNS.index("age") + 1).value = word
        ws.cell(5, CYCLE_COLUMNS.index("bmi") + 1).value = "abc"
        path = tmp_path / "care_cycles.xlsx"
        wb.save(path)
    else:
        rows = cycles()
        rows[2]["age"], rows[3]["bmi"] = word, "abc"
        path = write_csv(tmp_path / "care_cycles.csv", rows, CYCLE_COLUMNS)
    problems = _refused_problems([path], engine)
    said = {(p.row, p.column): (str(p.rule), p.line("nl")) for p in problems}
    assert said[(4, "age")][0] == (
        "not a number: a missing value is written as an empty cell, not as a word or sign (leave the cell empty "
        "where the value may be missing, else write the number)"
    )
    assert "een ontbrekende waarde is een lege cel" in said[(4, "age")][1]
    assert said[(5, "bmi")][0] == "not a number"


@sqlite_only
def test_text_after_a_closing_quote_is_named_in_the_readers_words(base, tmp_path):
    engine, _ = base
    path = tmp_path / "costs.csv"
    path.write_text('cycle_id,activity,quantity,unit_cost\n"C0001"x,imaging,1,2\n', encoding="utf-8")
    message = _refused([path], engine)
    assert "costs.csv row 2: text after the closing quote of a value" in message
    assert "expected after" not in message  # the csv module's own English words


@sqlite_only
def test_the_separator_is_told_by_what_stands_outside_quotes(base, tmp_path):
    """A tab-separated first line whose quoted values hold commas (a file without its header row, found by the
    property tests): it was read as comma-separated and refused for its quotes; it is refused for having no
    header row. A header whose quoted names hold commas is read by its tabs."""
    engine, _ = base
    path = tmp_path / "units.csv"
    path.write_text(
        '"SUR"\t"Zürich, Süd, Ærø, Aarau, Bern, Chur, Davos"\t"Heelkunde; ""A"", B"\t"Noord"\t"H01"\t"1"\n',
        encoding="utf-8",
    )
    message = _refused([path], engine)
    assert "units.csv row 1: this file has no header row" in message and "quote" not in message
    # the first value holds a line break: the first line ends inside quotes, the record (and its separators) goes on
    path.write_text('\ufeff"Heelkunde; ""A"", B\nline two";"1";"H01";"Snijdende";"Noord";"SUR"\n', encoding="utf-8")
    message = _refused([path], engine)
    assert "units.csv row 1: this file has no header row" in message and "quote" not in message
    path = tmp_path / "costs.csv"
    path.write_text(
        '"cycle_id"\t"activity"\t"quantity, each, in units, as counted"\t"unit_cost"\n"C0001"\tx\t1\t2\n',
        encoding="utf-8",
    )
    message = _refused([path], engine)
    # read by its tabs: the one misnamed column is named, nothing about quotes or separators
    assert "costs.csv row 1 column 'quantity': required column missing" in message, message
    assert "quote" not in message and "separator" not in message, message


@sqlite_only
def test_excel_error_cells_in_a_workbook_are_refused(base, tmp_path):
    engine, _files = base
    wb, ws = _cycles_sheet()
    ws.cell(3, CYCLE_COLUMNS.index("treatment") + 1).value = "#N/A"
    ws.cell(3, CYCLE_COLUMNS.index("treatment") + 1).data_type = "e"  # an error cell, as Excel writes one
    path = tmp_path / "registry.xlsx"
    wb.save(path)
    assert "row 3 column 'treatment': value '#N/A': an Excel error value" in _refused([path], engine)


@sqlite_only
def test_formulas_in_xlsx_cells_are_refused(base, tmp_path):
    engine, _files = base
    wb, ws = _cycles_sheet()
    ws.cell(6, CYCLE_COLUMNS.index("cycle_id") + 1).value = '=HYPERLINK("http://evil.example","C0005")'
    path = tmp_path / "registry.xlsx"
    wb.save(path)
    message = _refused([path], engine)
    assert "[sheet care_cycles] row 6 column 'cycle_id'" in message and "formulas are not accepted" in message
    assert "evil.example" not in message


@sqlite_only
def test_a_number_under_a_date_format_that_is_no_date_is_refused_without_a_warning_line(base, tmp_path):
    """1e7 under yyyy-mm-dd (Excel shows #####): openpyxl reads it as #VALUE! and printed a warning line on the
    command line before the refusal; the refusal names the cell, and no warning comes out."""
    engine, _files = base
    wb, ws = _cycles_sheet()
    cell = ws.cell(4, CYCLE_COLUMNS.index("index_date") + 1)
    cell.value, cell.number_format = 10_000_000, "yyyy-mm-dd"
    path = tmp_path / "registry.xlsx"
    wb.save(path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        message = _refused([path], engine)
    assert "[sheet care_cycles] row 4 column 'index_date': value '#VALUE!': not a date" in message
    assert not [w for w in caught if "marked as a date" in str(w.message)], [str(w.message) for w in caught]


@sqlite_only
@pytest.mark.parametrize(
    ("column", "value", "number_format"),
    [
        ("age", 64, ";;;"),  # Excel's way to hide a cell's value: the cell reads as empty
        ("treatment", "oesophagectomy", ";;;"),  # a text under an empty text section: hidden too
        ("age", 0, "0;-0;;@"),  # an empty section for zero
        ("age", 3, '[<5]"<5";0'),  # a condition shows '<5' for the number
        ("age", 64, '"n.v.t."'),  # a text-only format
        ("bmi", 27.5, "#"),  # 27.5 shows 28: rounded to another number; 0.3 shows nothing
        ("bmi", 0.3, "#"),
        ("age", 1500, "#,##0,"),  # divided by a thousand: shows 2
        ("treatment", "oesophagectomy", '"x"@'),  # shows xoesophagectomy
        ("bmi", -4, "0;0"),  # a second section writes no sign: shows 4 (0;-0, 0;(0) and 0;[Red]0 show it)
    ],
)
def test_a_number_format_that_shows_a_value_otherwise_than_stored_is_refused(
    base, tmp_path, column, value, number_format
):
    """A cell whose number format shows its value otherwise than it is stored (;;; hides it, an empty or
    text-only section, a condition, #,##0, divides by a thousand, a text section with more than @) was imported
    with the value the sheet does not show: a reader saw an empty cell (or '<5', or 2) where 64, 3 or 1500 was
    stored. Refused naming row, column, value and format; so is a number its format shows rounded to another
    (27.5 under # reads 28, and was stored as 27.5). A number format that shows the number (28 under #) is read
    as before."""
    engine, _files = base
    wb, ws = _cycles_sheet()
    cell = ws.cell(4, CYCLE_COLUMNS.index(column) + 1)
    cell.value, cell.number_format = value, number_format
    path = tmp_path / "registry.xlsx"
    wb.save(path)
    if value == 27.5:
        cell.value = 28
        wb.save(path)
        import_files([path], engine)
        cell.value = value
        wb.save(path)
    message = _refused([path], engine)
    assert f"[sheet care_cycles] row 4 column '{column}': value '{value}'" in message, message
    assert f"number format {number_format} shows its value otherwise" in message, message


@pytest.mark.parametrize(
    ("value", "number_format", "rounded"),
    [
        (1.5, "0", True),  # reads 2
        (24.04, "0.0", True),  # reads 24.0
        (0.125, "0%", True),  # reads 13%
        (0.125, "0.0%", False),  # reads 12.5%: the number 0.125
        (0.5, "0%", False),  # reads 50%: the number 0.5
        (1234.5, '"€" #,##0.00', False),  # reads € 1,234.50
        (1234.5, "[$€-413] #,##0", True),  # reads € 1,235 (a Dutch currency format)
        (1234.5, "#,##0.00;[Red]-#,##0.00", False),
        (-1234.567, "#,##0.00;[Red]-#,##0.00", True),  # the negative section rounds too
        (0.30000000000000004, "0.00", False),  # a float's last digits: no other number
        (123456, "0.00E+00", True),  # reads 1.23E+05
        (123000, "0.00E+00", False),
        (1.5, "# ?/?", False),  # reads 1 1/2
        (0.3, "# ?/?", True),  # reads 2/7
        (0.25, "# ??/100", False),  # reads 25/100
        (27.68166089965398, "General", False),  # General shows what fits: not judged
        (7, "0", False),
    ],
)
def test_a_format_that_shows_a_number_rounded_to_another_is_told(value, number_format, rounded):
    """format_hides, the one judge of the three workbook readers (registry, external figures and models,
    targets and actions): a number its format shows as another number (fewer decimals than it has, a fraction
    that is not it) is told; a format that shows the number (more decimals, a percent sign, a currency) is not."""
    from vbhc.ingest.read import format_hides

    cell = Workbook().active.cell(1, 1, value)
    cell.number_format = number_format
    assert (format_hides(cell) == number_format) is rounded


@sqlite_only
def test_number_cells_decide_no_decimal_mark(base, tmp_path):
    """A workbook's number cell holds a number, not a text with a mark a person wrote (Dutch Excel shows 27.125 as
    27,125): a sheet whose one decimal was 27.125 was refused as 'cannot tell whether '.' in 27.125 is a decimal
    mark or a thousands separator', and number cells beside a text '27,5' as 'this file mixes decimal marks:
    '22.5' uses '.'', a mark the reader of a Dutch Excel does not see. Only numbers written as text decide the
    file's mark: a text 1.500 beside a text 27,5 is still refused."""
    engine, _ = base
    wb, ws = _cycles_sheet()
    bmi = CYCLE_COLUMNS.index("bmi") + 1
    for row in range(2, ws.max_row + 1):
        ws.cell(row, bmi).value = 25.0  # number cells, whole
    ws.cell(3, bmi).value = 27.125
    path = tmp_path / "care_cycles.xlsx"
    wb.save(path)
    import_files([path], engine)
    with engine.connect() as conn:
        stored = conn.execute(select(models.CareCycle.bmi).where(models.CareCycle.cycle_id == "C0002")).scalar_one()
    assert stored == 27.125
    ws.cell(3, bmi).value = 22.5
    ws.cell(4, bmi).value = "27,5"  # a number written as text, Dutch
    wb.save(path)
    import_files([path], engine)
    with engine.connect() as conn:
        stored = conn.execute(select(models.CareCycle.bmi).where(models.CareCycle.cycle_id == "C0003")).scalar_one()
    assert stored == 27.5
    ws.cell(5, bmi).value = "1.500"
    wb.save(path)
    assert "so '1.500' would hold a thousands separator" in _refused([path], engine)


@sqlite_only
@pytest.mark.parametrize("state", ["hidden", "veryHidden"])
def test_a_hidden_sheet_refuses_the_workbook(base, tmp_path, state):
    """A workbook whose costs sheet is hidden: a person reading it sees the care cycles only, so nothing is
    imported from it unseen; the refusal names the sheet and says how to go on."""
    engine, _files = base
    wb, _ = _cycles_sheet()
    hidden = wb.create_sheet("costs")
    hidden.append(["cycle_id", "activity", "quantity", "unit_cost"])
    hidden.append(["C0001", "imaging", 1, 250.0])
    hidden.sheet_state = state
    path = tmp_path / "registry.xlsx"
    wb.save(path)
    message = _refused([path], engine)
    assert "registry.xlsx [sheet costs]: the sheet is hidden" in message and "unhide it" in message


def _refused_problems(paths, engine) -> list:
    """Like _refused, the refusal's problems (each also in Dutch through Problem.line)."""
    before = row_counts(engine)
    with pytest.raises(ImportRefused) as info:
        import_files(paths, engine, imported_by="fuzz")
    assert row_counts(engine) == before
    return info.value.report.problems


def _bmi_column() -> str:
    return "ABCDEFGHIJKLMNOPQRSTUVWXYZ"[CYCLE_COLUMNS.index("bmi")]


@sqlite_only
def test_merged_cells_are_refused_naming_the_range(base, tmp_path):
    """A BMI merged over two care cycles' rows: Excel shows 22.0 in both, openpyxl reads the second as empty,
    and an empty BMI is allowed, so the second care cycle was stored without the BMI its reader sees."""
    engine, _ = base
    wb, ws = _cycles_sheet()
    col = _bmi_column()
    ws[f"{col}3"] = None
    ws.merge_cells(f"{col}2:{col}3")
    path = tmp_path / "care_cycles.xlsx"
    wb.save(path)
    (problem,) = _refused_problems([path], engine)
    assert str(problem) == (
        f"care_cycles.xlsx [sheet care_cycles] row 2 column 'bmi': cells {col}2:{col}3 are merged: the sheet shows "
        "one value over all of them, the import would read it in the first cell only; unmerge them and fill in "
        "every cell"
    )
    assert f"de cellen {col}2:{col}3 zijn samengevoegd" in problem.line("nl")


@sqlite_only
@pytest.mark.parametrize("how", ["by hand", "by a filter"])
def test_hidden_rows_are_refused_row_by_row(base, tmp_path, how):
    """Rows hidden by hand or by a filter were imported although a reader of the sheet does not see them (as a
    hidden sheet's were); each is named."""
    engine, _ = base
    wb, ws = _cycles_sheet()
    for row in (3, 5):
        ws.row_dimensions[row].hidden = True
    if how == "by a filter":
        ws.auto_filter.ref = f"A1:{_bmi_column()}{ws.max_row}"
    path = tmp_path / "care_cycles.xlsx"
    wb.save(path)
    problems = _refused_problems([path], engine)
    assert [(p.row, p.rule.code) for p in problems] == [(3, "read.row_hidden"), (5, "read.row_hidden")]
    assert "the row is hidden (by hand or by a filter)" in str(problems[0])
    assert "de rij is verborgen" in problems[0].line("nl")


@sqlite_only
def test_rows_and_columns_of_no_height_or_width_are_refused_as_hidden(base, tmp_path):
    """A row of height 0 (ht="0") or a column of width 0, as another program than Excel writes a hidden one:
    Excel shows them no more than hidden ones, and their values were imported unseen. A row or column of
    another size is read as before."""
    engine, _ = base
    wb, _ = _cycles_sheet()
    wb.save(tmp_path / "plain.xlsx")
    data = (tmp_path / "plain.xlsx").read_bytes()
    position = CYCLE_COLUMNS.index("bmi") + 1

    def sized(xml: bytes) -> bytes:
        xml = xml.replace(b'<row r="4"', b'<row r="4" ht="0" customHeight="1"', 1)
        xml = xml.replace(b'<row r="6"', b'<row r="6" ht="0.5" customHeight="1"', 1)  # thin, not hidden
        cols = f'<cols><col min="{position}" max="{position}" width="0" customWidth="1"/></cols>'.encode()
        return re.sub(rb"(<sheetData)", cols + rb"\1", xml, count=1)

    path = tmp_path / "care_cycles.xlsx"
    path.write_bytes(patch_sheet(data, sized))
    problems = _refused_problems([path], engine)
    assert [(p.row, p.column, p.rule.code) for p in problems] == [
        (1, "bmi", "read.column_hidden"),
        (4, None, "read.row_hidden"),
    ], [str(p) for p in problems]


@sqlite_only
def test_a_hidden_column_is_refused_but_hidden_empty_columns_beyond_the_data_are_not(base, tmp_path):
    """A hidden column of the data is refused at the header, naming it; hiding the unused columns to the right of
    the data (a tidy sheet) hides nothing that is read, and the workbook is imported."""
    engine, _ = base
    wb, ws = _cycles_sheet()
    ws.column_dimensions.group("Z", "AD", hidden=True)
    ws.row_dimensions[40].hidden = True  # an empty row below the data
    tidy = tmp_path / "tidy" / "care_cycles.xlsx"
    tidy.parent.mkdir()
    wb.save(tidy)
    ws.column_dimensions[_bmi_column()].hidden = True
    path = tmp_path / "care_cycles.xlsx"
    wb.save(path)
    (problem,) = _refused_problems([path], engine)
    position = CYCLE_COLUMNS.index("bmi") + 1
    assert str(problem) == (
        f"care_cycles.xlsx [sheet care_cycles] row 1 column 'bmi': column {position} is hidden, so a reader of "
        "the workbook does not see it: unhide it or delete it"
    )
    import_files([tidy], engine, imported_by="fuzz")


@sqlite_only
@pytest.mark.parametrize("dimension", ["A1", "A1:C3"])
def test_a_sheet_whose_dimension_tag_states_less_is_read_whole(base, tmp_path, dimension):
    """openpyxl's read-only mode reads a sheet only as far as its dimension tag states, and a writer may state
    less than it wrote: with A1:C3 the care cycles beyond row 3 and every column beyond C were left out unseen
    and the import said nothing (A1 refused a good file for its missing columns). Excel ignores the tag."""
    engine, _ = base
    wb, _ws = _cycles_sheet()
    whole = io.BytesIO()
    wb.save(whole)
    path = tmp_path / "care_cycles.xlsx"
    path.write_bytes(patch_sheet(whole.getvalue(), state_dimension(dimension)))
    report = import_files([path], engine, imported_by="fuzz")
    assert report.sources[0].rows_read == len(cycles())
    assert row_counts(engine)["care_cycles"] == len(cycles())


@sqlite_only
@pytest.mark.parametrize("change", [row_moved_to_end(3), row_again_at_end(3)])
def test_a_row_written_out_of_order_or_twice_is_refused(base, tmp_path, change):
    """A sheet part holding row 3 after the last row, or twice: openpyxl leaves the late copy out without a
    word (a care cycle of the sheet was not imported), Excel calls the file damaged. Refused naming the row."""
    engine, _ = base
    wb, ws = _cycles_sheet()
    last = ws.max_row
    whole = io.BytesIO()
    wb.save(whole)
    path = tmp_path / "care_cycles.xlsx"
    path.write_bytes(patch_sheet(whole.getvalue(), change))
    (problem,) = _refused_problems([path], engine)
    assert (problem.row, problem.rule.code) == (3, "read.row_out_of_order")
    assert f"holds this row again or after a later row (row {last})" in str(problem)
    assert "bevat deze rij nog eens of na een latere rij" in problem.line("nl")


@sqlite_only
@pytest.mark.parametrize(
    ("column", "value"), [("cycle_id", "C00\n03"), ("patient_id", "P00\r\n03"), ("hospital", "H\t01")]
)
def test_an_identifier_holding_a_line_break_or_tab_is_refused(base, tmp_path, column, value):
    """A quoted CSV field over two lines (or a cell with Alt+Enter, or a tab) in an id column: the care cycle was
    stored under a key that shows as two lines, which no one can type or find. Refused naming row, column and the
    character; a text column keeps its line breaks as the cell shows them (test above)."""
    engine, _ = base
    rows = cycles()
    rows[2][column] = value
    path = write_csv(tmp_path / "care_cycles.csv", rows, CYCLE_COLUMNS)
    (problem,) = [p for p in _refused_problems([path], engine) if p.rule.code == "validate.id_line_break"]
    assert (problem.row, problem.column) == (4, column)
    assert "\n" not in str(problem) and "line break or tab" in str(problem)
    assert "regeleinde of tab" in problem.line("nl")


def _cell_again(ref: str):
    """A change writing cell `ref` a second time at the end of its row."""

    def change(xml: bytes) -> bytes:
        cell = re.search(rb'<c r="%s"[^>]*?(?:/>|>.*?</c>)' % ref.encode(), xml, re.S).group(0)
        row = re.search(rb'<row r="%s"[^>]*>.*?</row>' % re.search(rb"[0-9]+", ref.encode()).group(0), xml, re.S)
        return xml.replace(row.group(0), row.group(0).replace(b"</row>", cell + b"</row>"))

    return change


def _cell_names_row(ref: str, other: str):
    """A change naming cell `ref` as `other` where it stands (a cell of another row written inside this one)."""
    return lambda xml: xml.replace(b'<c r="%s"' % ref.encode(), b'<c r="%s"' % other.encode())


def _cells_without_reference(row: int):
    """A change leaving out every cell reference of row `row` but its first (each cell follows the one before)."""

    def change(xml: bytes) -> bytes:
        found = re.search(rb'<row r="%d"[^>]*>.*?</row>' % row, xml, re.S)
        first = re.search(rb'<c r="[A-Z]+%d"' % row, found.group(0)).group(0)
        body = re.sub(rb'<c r="[A-Z]+%d"' % row, b"<c", found.group(0)).replace(b"<c", first, 1)
        return xml.replace(found.group(0), body)

    return change


@sqlite_only
@pytest.mark.parametrize(
    ("change", "code", "after"),
    [
        ("moved", "read.cell_out_of_order", "after a later cell of its row ({last}3)"),
        ("again", "read.cell_out_of_order", "after a later cell of its row ({last}3)"),
        ("other row", "read.cell_in_other_row", "holds cell A9 inside this row"),
        ("no reference", None, None),
    ],
)
def test_a_cell_written_out_of_order_in_its_row_is_refused(base, tmp_path, change, code, after):
    """A row whose part writes its last cell first (L3 before A3): openpyxl's read-only mode ends the row at its
    last cell written, so row 3 was read as its last value alone (its other cells empty); a cell written twice
    was read as the second; a cell naming row 9 inside row 3 was read in row 3. Excel calls such a file damaged.
    Refused naming the row and the cell; cells without a reference after the row's first are read as Excel reads
    them, each after the one before."""
    engine, _ = base
    wb, ws = _cycles_sheet()
    last = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"[ws.max_column - 1]
    whole = io.BytesIO()
    wb.save(whole)
    path = tmp_path / "care_cycles.xlsx"
    patch = {
        "moved": cell_moved_to_row_start(f"{last}3"),
        "again": _cell_again("B3"),
        "other row": _cell_names_row("A3", "A9"),
        "no reference": _cells_without_reference(3),
    }[change]
    path.write_bytes(patch_sheet(whole.getvalue(), patch))
    if code is None:
        import_files([path], engine, imported_by="fuzz")
        assert row_counts(engine)["care_cycles"] == len(cycles())
        return
    problems = _refused_problems([path], engine)
    assert (problems[0].row, problems[0].rule.code) == (3, code)
    assert after.format(last=last) in str(problems[0])
    assert "Excel calls the file damaged" in str(problems[0])
    assert "Excel noemt het bestand beschadigd" in problems[0].line("nl")


@sqlite_only
@pytest.mark.parametrize(
    ("written", "stored"),
    [
        ("Heelkunde_x000D_\nen chirurgie", "Heelkunde\r\nen chirurgie"),
        ("Heel_x0007_kunde", None),
        ("Heel_x006B_unde", "Heelkunde"),
        ("_x005F_x000D_ is de code", "_x000D_ is de code"),
        ("Hart_xD83D__xDC93_", "Hart\U0001f493"),
        ("Hart_xD83D_", "Hart\ufffd"),
        ("_x003D_1+1", "formula"),
    ],
)
def test_a_character_written_as_an_excel_code_is_read_as_the_character(engine, tmp_path, written, stored):
    """A workbook writes a character as a code _xHHHH_ (ECMA-376 ST_Xstring; Excel: _x000D_ for the carriage
    return of a line break pasted from Windows). openpyxl gives the code as text, so the letters _x000D_ were
    stored in a department's name where the sheet shows a line break. Read as the character Excel and LibreOffice
    show: a line break is kept, an invisible one (_x0007_) refused like any character no one sees, a letter's code
    is the letter (Excel shows Heelkunde), _x005F_ the underscore of a code written as text (Excel shows
    _x000D_; it was read as '_x005F' + a carriage return), a pair of surrogate codes the one character they make,
    and a cell that reads =1+1 is refused as a formula."""
    wb = Workbook()
    ws = wb.active
    ws.title = "units"
    ws.append(["hospital", "department", "hospital_name", "department_name", "division", "own_hospital"])
    ws.append(["H01", "SUR", "Testziekenhuis Noord", written, "Snijdende specialismen", 1])
    path = tmp_path / "units.xlsx"
    wb.save(path)
    if stored is None:
        (problem,) = _refused_problems([path], engine)
        assert (problem.row, problem.column) == (2, "department_name")
        assert problem.rule.code == "validate.invisible_character"
        assert "U+0007" in str(problem)
        return
    if stored == "formula":
        (problem,) = _refused_problems([path], engine)
        assert (problem.row, problem.column, problem.rule.code) == (2, "department_name", "read.cell_formula")
        return
    import_files([path], engine, imported_by="fuzz")
    with engine.connect() as conn:
        assert conn.execute(select(models.Department.name)).scalar_one() == stored


@sqlite_only
@pytest.mark.parametrize(
    ("written", "extra", "stored"),
    [
        ("_x005F_x0043_", (), "_x0043_"),
        ("ax005F_b", (), "ax005F_b"),
        ("Heel_x006B_unde", (), "Heelkunde"),
        ("_x005F_x0043_", (b"<t>_x0043_</t>",), None),
        ("Heelkunde_x0043_", (b"<r><t>Heelkunde_x</t></r><r><t>0043_</t></r>",), None),
    ],
)
def test_a_shared_string_with_an_excel_code_is_read_as_excel_shows_it(engine, tmp_path, written, extra, stored):
    """A workbook saved by Excel or LibreOffice keeps its texts in a shared strings table; openpyxl deletes every
    'x005F_' from those texts (not from inline strings), so the text Excel shows as _x0043_ (written _x005F_x0043_)
    was stored as the letter C, and ax005F_b as ab. Read as Excel shows it; a text that two written texts give
    alike to openpyxl (_x005F_x0043_ and _x0043_, a code split over two rich-text runs) is refused naming row,
    column and the texts it may be, nothing stored."""
    wb = Workbook()
    ws = wb.active
    ws.title = "units"
    ws.append(["hospital", "department", "hospital_name", "department_name", "division", "own_hospital"])
    ws.append(["H01", "SUR", "Testziekenhuis Noord", written, "Snijdende specialismen", 1])
    whole = io.BytesIO()
    wb.save(whole)
    path = tmp_path / "units.xlsx"
    path.write_bytes(shared_strings(whole.getvalue(), extra))
    if stored is None:
        (problem,) = _refused_problems([path], engine)
        assert (problem.row, problem.column, problem.rule.code) == (2, "department_name", "read.cell_text_unclear")
        assert " | " in problem.value and "cannot be told" in str(problem)
        assert "niet te bepalen" in problem.line("nl")
        return
    import_files([path], engine, imported_by="fuzz")
    with engine.connect() as conn:
        assert conn.execute(select(models.Department.name)).scalar_one() == stored


@sqlite_only
@pytest.mark.parametrize(
    ("name", "refused"),
    [("_x0075_nits", None), ("UNITS", "UNITS"), ("_x0075_nits", "units")],
)
def test_a_sheet_name_is_read_as_its_tab_shows_it(engine, tmp_path, name, refused):
    """A sheet name written with Excel's codes (_x0075_nits: the tab reads units) was refused as 'not a registry
    table'; read as the tab shows it. Two sheets whose names are one to Excel (units and UNITS, or units and
    _x0075_nits: Excel calls such a workbook damaged) are refused naming both, nothing stored."""
    wb = Workbook()
    wb.remove(wb.active)
    titles = ["units"] if refused is None else ["units", "other"]
    for number, title in enumerate(titles):
        ws = wb.create_sheet(title)
        ws.append(["hospital", "department", "hospital_name", "department_name", "division", "own_hospital"])
        ws.append(["H01", "SUR" if number == 0 else "ORT", "Testziekenhuis Noord", "Heelkunde", "Snijdend", 1])
    whole = io.BytesIO()
    wb.save(whole)
    path = tmp_path / "registry.xlsx"
    path.write_bytes(sheet_renamed(whole.getvalue(), titles[-1], name))
    if refused is None:
        import_files([path], engine, imported_by="fuzz")
        assert row_counts(engine)["departments"] == 1
        return
    (problem,) = _refused_problems([path], engine)
    assert (problem.sheet, problem.rule.code) == (refused, "read.sheet_name_twice")
    assert "another sheet named 'units'" in str(problem) and "calls the file damaged" in str(problem)


def _cell_written(ref: str, xml: str):
    """A change writing cell `ref` as the XML `xml` (REF stands for the reference)."""

    def change(part: bytes) -> bytes:
        found = re.search(rb'<c r="%s"[^>]*?(?:/>|>.*?</c>)' % ref.encode(), part, re.S)
        assert found is not None, f"no cell {ref}"
        return part.replace(found.group(0), xml.replace("REF", ref).encode(), 1)

    return change


def _row_left_out(row: int):
    """A change leaving out row `row` (a blank row: Excel writes none for it)."""
    return lambda part: re.sub(rb'<row r="%d"[ >].*?</row>' % row, b"", part, count=1, flags=re.S)


@sqlite_only
@pytest.mark.parametrize(
    ("cell", "error"),
    [
        ('<c r="REF" t="b"><v>true</v></c>', "ValueError"),  # a yes/no cell is 0 or 1
        ('<c r="REF"><v>inf</v></c>', "number"),  # no number Excel writes: named as written
        ('<c r="REF" t="d"><v>2024-02-30</v></c>', "ValueError"),  # a date cell of a day that does not exist
        ('<c r="REF" t="s"><v>0</v></c>', "IndexError"),  # a shared string the workbook does not have
        ('<c r="REF" s="99"><v>61</v></c>', "IndexError"),  # a style the workbook does not have
    ],
)
def test_a_cell_that_cannot_be_read_is_refused_naming_its_row(base, tmp_path, cell, error):
    """A cell openpyxl cannot read (Excel calls the file damaged and offers to repair it) was refused as 'damaged
    or truncated XLSX workbook (ValueError)' naming no row: which of a large sheet's cells to look at could not be
    told. Refused naming the row (the one the sheet writes after the last row read: here row 5, row 4 being
    blank); nothing stored."""
    engine, _ = base
    wb, _ws = _cycles_sheet()
    whole = io.BytesIO()
    wb.save(whole)
    path = tmp_path / "care_cycles.xlsx"
    data = patch_sheet(whole.getvalue(), _row_left_out(4))
    path.write_bytes(patch_sheet(data, _cell_written("H5", cell)))
    problems = _refused_problems([path], engine)
    if error == "number":
        assert (problems[0].row, problems[0].column, problems[0].rule.code) == (5, "age", "read.number_not_excel")
        assert "cell H5 holds the number written as 'inf'" in str(problems[0])
        return
    (problem,) = problems
    assert (problem.row, problem.rule.code) == (5, "read.row_damaged")
    assert f"row 5: a cell of this row cannot be read ({error})" in str(problem)
    assert "kan niet worden gelezen" in problem.line("nl")


# --- huge cells ----------------------------------------------------------------------------------------


@sqlite_only
def test_huge_cell_is_named_and_not_echoed(base, tmp_path):
    engine, _ = base
    path = _cycles_csv(tmp_path / "care_cycles.csv", {"treatment": "x" * 40_000}, row=3)
    message = _refused([path], engine)
    assert "care_cycles.csv row 5 column 'treatment'" in message
    assert "cell has 40,000 characters, more than the limit of 32,767" in message
    assert "x" * 100 not in message


@sqlite_only
def test_cell_limit_is_a_setting(base, tmp_path, monkeypatch):
    engine, _ = base
    monkeypatch.setenv("VBHC_MAX_CELL_CHARS", "10")
    path = _cycles_csv(tmp_path / "care_cycles.csv", {"treatment": "total_hip_arthroplasty"}, row=7)
    assert "more than the limit of 10" in _refused([path], engine)


# --- patient identifiers never in messages -------------------------------------------------------------


@sqlite_only
def test_patient_ids_and_bsn_are_masked_in_problems(base, tmp_path):
    engine, _ = base
    rows = cycles()
    rows[1]["patient_id"] = "x" * 80  # too long: the problem names the cell, not the value
    rows[2]["patient_id"] = "123456782"  # a BSN
    rows[3]["age"] = "123.456.782"  # a BSN in another column
    path = write_csv(tmp_path / "care_cycles.csv", rows, CYCLE_COLUMNS)
    message = _refused([path], engine)
    assert message.count(HIDDEN_IDENTIFIER) == 3
    assert "123456782" not in message and "123.456.782" not in message and "xxxx" not in message


# --- size limit, file types by content -----------------------------------------------------------------


@sqlite_only
def test_size_limit_is_checked_before_reading(base, tmp_path, monkeypatch):
    engine, files = base
    monkeypatch.setenv("VBHC_MAX_IMPORT_MB", "0.001")
    message = _refused([files[1]], engine)
    assert "more than the limit of 0 MB (VBHC_MAX_IMPORT_MB)" in message
    # an upload through the dashboard has its own, smaller limit
    monkeypatch.delenv("VBHC_MAX_IMPORT_MB")
    monkeypatch.setenv("VBHC_MAX_UPLOAD_MB", "0.001")
    before = row_counts(engine)
    with pytest.raises(ImportRefused, match=r"more than the limit of 0 MB \(VBHC_MAX_UPLOAD_MB\)"):
        import_files([files[1]], engine, upload=True)
    assert row_counts(engine) == before


#: What Office writes for an .xlsx saved with a password: a compound file whose directory names EncryptedPackage
ENCRYPTED_WORKBOOK = b"".join(
    [
        b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1",
        b"\x00" * ((1 << 20) - 18),
        "EncryptedPackage".encode("utf-16-le"),
        b"\x00" * 64,
    ]
)


@sqlite_only
@pytest.mark.parametrize(
    ("name", "content", "rule"),
    [
        ("care_cycles.xlsx", b"cycle_id,patient_id\n", "named .xlsx but is not an XLSX workbook"),
        ("care_cycles.csv", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 100, "old binary Excel (.xls)"),
        ("registry.xlsx", b"PK\x03\x04" + b"\x00" * 50, "damaged or truncated XLSX workbook"),
        # a workbook saved with a password is a compound file too: told apart by its EncryptedPackage stream, whose
        # name here spans two of the blocks the file is read in (it was refused as an old .xls, "save as .xlsx")
        ("care_cycles.xlsx", ENCRYPTED_WORKBOOK, "the workbook is protected with a password"),
    ],
)
def test_files_are_judged_by_content_not_name(base, tmp_path, name, content, rule):
    engine, _ = base
    path = tmp_path / name
    path.write_bytes(content)
    assert rule in _refused([path], engine)


@sqlite_only
def test_zip_without_workbook_parts_is_not_a_workbook(base, tmp_path):
    engine, _ = base
    path = tmp_path / "registry.xlsx"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("hello.txt", "not a workbook")
    assert "not an XLSX workbook: the ZIP archive has no [Content_Types].xml" in _refused([path], engine)


@sqlite_only
@pytest.mark.parametrize("name", ["registry.xlsx", "registry.ods", "registry.xlsb"])
@pytest.mark.parametrize(
    ("parts", "rule"),
    [
        (
            {"mimetype": "application/vnd.oasis.opendocument.spreadsheet", "content.xml": "<x/>"},
            "an OpenDocument file (.ods, saved by LibreOffice or OpenOffice), not an XLSX workbook: save it as",
        ),
        (
            {"[Content_Types].xml": "<Types/>", "xl/workbook.bin": "\x83\x01"},
            "an Excel binary workbook (.xlsb), not an XLSX workbook: save it as",
        ),
    ],
)
def test_an_ods_or_xlsb_workbook_is_refused_for_what_it_is(base, tmp_path, name, parts, rule):
    """An .ods (LibreOffice) or .xlsb (Excel binary) workbook, under its own name or named .xlsx, is told as what
    it is with what to do; it was 'not an XLSX workbook: the ZIP archive has no [Content_Types].xml' (or no
    xl/workbook.xml), which no reader can act on."""
    engine, _ = base
    path = tmp_path / name
    with zipfile.ZipFile(path, "w") as zf:
        for part, text in parts.items():
            zf.writestr(part, text)
    assert rule in _refused([path], engine)


def _workbook(path: Path) -> Path:
    wb, _ = _cycles_sheet()
    wb.save(path)
    return path


def _add_member(path: Path, name: str, data: bytes) -> None:
    with zipfile.ZipFile(path, "a", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        zf.writestr(name, data)


@sqlite_only
def test_zip_bomb_by_compression_ratio(base, tmp_path):
    engine, _ = base
    path = _workbook(tmp_path / "registry.xlsx")
    _add_member(path, "xl/media/bomb.bin", b"\x00" * (8 * 1024 * 1024))  # 8 MB of zeros packs to ~8 kB
    message = _refused([path], engine)
    assert "xl/media/bomb.bin is compressed" in message and "possibly a zip bomb" in message


@sqlite_only
def test_zip_bomb_by_total_unpacked_size(base, tmp_path, monkeypatch):
    engine, _ = base
    monkeypatch.setenv("VBHC_MAX_UNPACKED_MB", "0.01")
    path = _workbook(tmp_path / "registry.xlsx")
    assert "more than the limit of 0 MB (VBHC_MAX_UNPACKED_MB); possibly a zip bomb" in _refused([path], engine)


@sqlite_only
@pytest.mark.parametrize("keep", [0.3, 0.6, 0.9, 0.99])
def test_truncated_xlsx(base, tmp_path, keep):
    engine, _ = base
    path = _workbook(tmp_path / "registry.xlsx")
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    assert "damaged or truncated XLSX workbook" in _refused([path], engine)


@sqlite_only
def test_truncated_csv_in_the_middle_of_a_character(base, tmp_path):
    engine, _ = base
    path = _cycles_csv(tmp_path / "care_cycles.csv", {"treatment": "oesophagectomié"}, row=11)
    data = path.read_bytes()
    path.write_bytes(data[: data.rindex("é".encode()) + 1])
    assert "ends in the middle of a character" in _refused([path], engine)


@sqlite_only
def test_damaged_sheet_xml_inside_a_valid_container(base, tmp_path):
    engine, _ = base
    good = _workbook(tmp_path / "good.xlsx")
    path = tmp_path / "registry.xlsx"
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            data = src.read(info.filename)
            if info.filename.startswith("xl/worksheets/sheet"):
                data = data[: len(data) // 2] + b"<<<not xml"
            dst.writestr(info, data)
    message = _refused([path], engine)
    assert "damaged" in message and "Traceback" not in message


# --- random mutations (bounded) ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fuzz_db(tmp_path_factory, _sqlite_schema):
    folder = tmp_path_factory.mktemp("fuzz")
    files = write_small_registry(folder / "files")
    shutil.copyfile(_sqlite_schema, folder / "fuzz.db")  # the migrated empty schema, not the migrations run again
    engine = get_engine(f"sqlite:///{folder / 'fuzz.db'}")
    upgrade_schema(engine)
    import_files(files[:2], engine)
    yield engine, files, folder
    engine.dispose()


def _try_import(engine, path: Path) -> None:
    before = row_counts(engine)
    try:
        import_files([path], engine, force=True)
    except ImportRefused as exc:
        assert row_counts(engine) == before
        assert exc.report.problems, "a refusal always says why"
        for p in exc.report.problems:
            assert p.rule and p.file
            assert p.value is None or len(p.value) < 100


mutation = st.one_of(
    st.tuples(st.just("truncate"), st.floats(0, 1), st.binary(max_size=0)),
    st.tuples(st.just("insert"), st.floats(0, 1), st.binary(min_size=1, max_size=40)),
    st.tuples(st.just("overwrite"), st.floats(0, 1), st.binary(min_size=1, max_size=40)),
)


def _mutate(data: bytes, kind: str, where: float, extra: bytes) -> bytes:
    at = int(where * len(data))
    if kind == "truncate":
        return data[:at]
    if kind == "insert":
        return data[:at] + extra + data[at:]
    return data[:at] + extra + data[at + len(extra) :]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(mutations=st.lists(mutation, min_size=1, max_size=3))
def test_mutated_csv_never_crashes_and_never_half_writes(fuzz_db, mutations):
    engine, files, folder = fuzz_db
    data = files[2].read_bytes()  # clinical_outcomes
    for kind, where, extra in mutations:
        data = _mutate(data, kind, where, extra)
    path = folder / "clinical_outcomes_fuzz.csv"
    path.write_bytes(data)
    _try_import(engine, path)


cell_text = st.one_of(
    st.sampled_from(FORMULAS),
    st.text(max_size=30),
    st.text(alphabet="=+-@\t ()!\"';,", max_size=12),
    st.integers(-(10**12), 10**12).map(str),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(column=st.sampled_from(["cycle_id", "outcome", "value", "date"]), row=st.integers(0, 17), text=cell_text)
def test_hostile_cell_text_is_refused_or_stored_as_plain_text(fuzz_db, column, row, text):
    engine, files, folder = fuzz_db
    with files[2].open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    rows[row][column] = text
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    path = folder / "clinical_outcomes_cell.csv"
    path.write_text(buffer.getvalue(), encoding="utf-8")
    if text.strip().startswith(("=", "\uff1d")):
        with pytest.raises(ImportRefused):
            import_files([path], engine, force=True)
    else:
        _try_import(engine, path)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(mutations=st.lists(mutation, min_size=1, max_size=2))
def test_mutated_xlsx_never_crashes_and_never_half_writes(fuzz_db, mutations):
    engine, _files, folder = fuzz_db
    good = folder / "good.xlsx"
    if not good.exists():
        _workbook(good)
    data = good.read_bytes()
    for kind, where, extra in mutations:
        data = _mutate(data, kind, where, extra)
    path = folder / "registry_fuzz.xlsx"
    path.write_bytes(data)
    _try_import(engine, path)


# --- numbers Excel would not read ---------------------------------------------------------------------


@sqlite_only
@pytest.mark.parametrize("written", ["2_4", " 24 ", "infinity", "1e5_0", "\u0662\u0664", "&#x0662;4", "1E999"])
def test_a_number_excel_would_not_read_is_refused_naming_its_cell(base, tmp_path, written):
    """A number cell written 2_4 (hand-edited, or a faulty exporter's): openpyxl reads it through Python's int()
    and float(), which take 2_4 as 24, " 24 ", 1e5_0 as 1e50, Arabic-Indic digits, 1E999 as infinity; Excel shows
    an error or refuses the file. The care cycle was stored with a BMI of 24 no one reads in the workbook. Refused
    naming the row, column, cell and the value as written; nothing is stored."""
    engine, _ = base
    wb, _ws = _cycles_sheet()
    whole = io.BytesIO()
    wb.save(whole)
    path = tmp_path / "care_cycles.xlsx"
    cell = f"{_bmi_column()}4"
    path.write_bytes(patch_sheet(whole.getvalue(), number_written(cell, written.encode())))
    problems = _refused_problems([path], engine)
    [problem] = [p for p in problems if p.rule.code == "read.number_not_excel"]
    assert (problem.row, problem.column) == (4, "bmi")
    shown = written.replace("&#x0662;", "\u0662")
    assert f"cell {cell} holds the number written as {shown!r}, which is not a number as Excel" in str(problem)
    assert f"cel {cell} bevat het getal geschreven als" in problem.line("nl")


@sqlite_only
@pytest.mark.parametrize("written", ["24", "24.5", "2.45E1", "+24", ".245e2", "24.", "&#50;4"])
def test_a_number_as_excel_writes_it_is_read(base, tmp_path, written):
    """Digits with a sign, a decimal point and an exponent (and a character reference of a digit, which any XML
    reader reads as the digit) are what Excel writes and reads: imported."""
    engine, _ = base
    wb, _ws = _cycles_sheet()
    whole = io.BytesIO()
    wb.save(whole)
    path = tmp_path / "care_cycles.xlsx"
    path.write_bytes(patch_sheet(whole.getvalue(), number_written(f"{_bmi_column()}4", written.encode())))
    import_files([path], engine, imported_by="fuzz")
    assert row_counts(engine)["care_cycles"] == len(cycles())


def test_the_number_scan_names_only_number_cells_and_reads_across_blocks(monkeypatch):
    """The layout scan reads a sheet's part in blocks and a value's cell type from the cell before it: an error
    cell's #N/A, a formula's text, a date cell, an inline string and a yes/no cell are no numbers and pass; a number
    and a shared string's index written otherwise are named, also when a block ends inside their cell. A workbook
    openpyxl writes (numbers, dates, booleans, texts, formulas) has none."""
    import datetime as dt

    from openpyxl import load_workbook

    from vbhc.ingest import layout

    wb = Workbook()
    ws = wb.active
    ws.append(["n", "x", "when", "ok", "text", "formula"])
    for i in range(40):
        ws.append([i, i * 0.37 - 5, dt.date(2024, 1, 1 + i % 28), i % 2 == 0, f"t{i}", f"=A{i + 2}*2"])
    ws.append([1e-300, -1.5e300, dt.datetime(2024, 5, 1, 12, 30), False, "6_1", "=1/0"])
    plain = io.BytesIO()
    wb.save(plain)
    assert layout.sheet_layout(io.BytesIO(plain.getvalue()), "Sheet").numbers_not_excel == []
    changes = [
        number_written("B3", b"#N/A", b"e"),
        number_written("C3", b"2024-01-01T00:00:00", b"d"),
        number_written("E3", b"a text", b"str"),
        number_written("A5", b"6_1"),
        number_written("B6", b" 1 ", b"n"),
        number_written("D7", b"tru", b"b"),  # openpyxl cannot read it: a damaged row
        number_written("E7", b"0_1", b"s"),  # the shared string 1, another text
        number_written("B8", b"#DIV/0!", b"e"),
    ]
    data = plain.getvalue()
    for change in changes:
        data = patch_sheet(data, change)
    expected = [(5, 0, "A5", "6_1"), (6, 1, "B6", " 1 "), (7, 4, "E7", "0_1")]
    for block in (layout._BLOCK, *range(5, 160, 2)):  # blocks cut everywhere: inside cells, before a value
        monkeypatch.setattr(layout, "_BLOCK", block)
        assert layout.sheet_layout(io.BytesIO(data), "Sheet").numbers_not_excel == expected, block
    assert load_workbook(io.BytesIO(data), read_only=True).active["A5"].value == 61  # what was stored before


@sqlite_only
@pytest.mark.parametrize("kind", ["xlsx", "csv", "csv_semicolon"])
def test_a_title_or_note_above_the_header_is_refused_naming_both_rows(base, tmp_path, kind):
    """A sheet or CSV whose table starts under a title ('Zorgtrajecten 2024') or a note ('leeftijd in jaren'):
    refused as 'this file has no header row: the first row does not name any column', which sent its reader
    looking for a header that is there. Now the refusal names the row above the table and the header's row (a
    note may say how to read the values, which the import cannot); a file with no header anywhere is told as
    before."""
    engine, _ = base
    above = [["Zorgtrajecten 2024"], ["leeftijd in jaren, bmi in kg/m2"], []]
    rows = [CYCLE_COLUMNS, *[[row[c] for c in CYCLE_COLUMNS] for row in cycles()]]
    if kind == "xlsx":
        wb = Workbook()
        wb.active.title = "care_cycles"
        for row in [*above, *rows]:
            wb.active.append(row)
        path = tmp_path / "care_cycles.xlsx"
        wb.save(path)
    else:
        sep = "," if kind == "csv" else ";"
        path = tmp_path / "care_cycles.csv"
        path.write_text("\n".join(sep.join(row) for row in [*above, *rows]) + "\n", encoding="utf-8")
    problems = _refused_problems([path], engine)
    assert [(p.row, p.column, p.value, p.rule.code) for p in problems] == [
        (1, None, "Zorgtrajecten 2024", "read.rows_above_header")
    ]
    assert "header (row 4)" in problems[0].rule.in_language("en")
    assert "kopregel van de tabel (rij 4)" in problems[0].rule.in_language("nl")
    # no header below either: told as a file without a header
    path.write_text("Zorgtrajecten 2024\nC0001,P0001x\n", encoding="utf-8")
    problems = _refused_problems([path.rename(tmp_path / "care_cycles.csv")], engine)
    assert [p.rule.code for p in problems] == ["read.no_header"]


@sqlite_only
@pytest.mark.parametrize("name", ["care_cycles.csv", "export.csv"])
@pytest.mark.parametrize(
    ("sep", "title"),
    [
        (";", "Export; registry H01; 2026"),
        (",", "Export, registry H01, 2026"),
        (";", "Export, registry H01, 2026"),
        (",", "Export; registry; H01; 2026"),
        ("\t", "Export; registry H01; 2026"),
    ],
)
def test_a_title_holding_a_separator_above_the_header_is_refused_naming_both_rows(base, tmp_path, name, sep, title):
    """A title line above the header that itself holds a separator ('Export; registry H01; 2026'): its separator
    split the table's header (a ;-table under a title with commas was read on ',' and told as having no header),
    or the file's table was looked up in the title ('unknown table' for export.csv), or the refusal named 'Export'
    alone. Now the header decides the separator and the table, and the title is refused whole, naming its row and
    the header's, nothing stored."""
    engine, _ = base
    rows = [CYCLE_COLUMNS, *[[row[c] for c in CYCLE_COLUMNS] for row in cycles()]]
    path = tmp_path / name
    path.write_text("\n".join([title, "", *(sep.join(row) for row in rows)]) + "\n", encoding="utf-8")
    problems = _refused_problems([path], engine)
    assert [(p.row, p.column, p.value, p.rule.code) for p in problems] == [(1, None, title, "read.rows_above_header")]
    assert "header (row 3)" in problems[0].rule.in_language("en")
    assert "kopregel van de tabel (rij 3)" in problems[0].rule.in_language("nl")
