"""External benchmark figures (vbhc.external): the file format and its validation, storage with provenance, the
own hospital's summary with small numbers withheld, and the round trip: hospitals that only exchange summary
figures get the table computed from all patient rows."""

from __future__ import annotations

import datetime as dt
import io
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openpyxl import Workbook
from sqlalchemy import func, insert, select

from tests.xlsx_parts import (
    number_written,
    patch_sheet,
    row_again_at_end,
    shared_strings,
    sheet_renamed,
    state_dimension,
)
from vbhc import audit, external, models
from vbhc.access import AccessDenied, Role, Scope, Viewer
from vbhc.catalog import BINARY_KINDS, CONTINUOUS_KINDS, load_catalog
from vbhc.external import ExternalRefused, combine, own_summary, read_figures, suppressed_summary, write_figures
from vbhc.indicators import compute_indicators, load_condition_data, restrict
from vbhc.ingest import rule_text
from vbhc.models import ExternalFigure, ExternalPublication
from vbhc.reports.privacy import SuppressionRule

QUALITY = Viewer("quality@example.org", "Quality", (Scope(Role.QUALITY),))
CARE = Viewer("care@example.org", "Care", (Scope(Role.CARE_TEAM, conditions=frozenset({"colorectal_cancer"})),))
CONDITION = "colorectal_cancer"
#: a yes/no, a textbook outcome, a PROM change reached, a continuous, a PROM response and the volume
INDICATORS = ["volume", "mortality_30d", "textbook_outcome", "eq5d_mic_12m", "length_of_stay", "prom_response_12m"]
HEADER = "source,published,period,condition,indicator,definition_version,unit,n,observed,expected,mean,sd"
PROVENANCE = "national registry,2025-03-01,2024,colorectal_cancer"


def _csv(*rows: str, header: str = HEADER) -> bytes:
    return ("\n".join([header, *rows]) + "\n").encode()


GOOD = (
    f"{PROVENANCE},mortality_30d,1,X01,120,6,5.2,,",
    f"{PROVENANCE},mortality_30d,1,X02,80,3,4.1,,",
    f"{PROVENANCE},length_of_stay,1,X01,120,,,6.5,2.1",
)


def test_a_good_file_is_read_with_its_provenance():
    got = read_figures(_csv(*GOOD), file_name="feedback.csv")
    assert (got.source, got.published, got.period, got.units) == ("national registry", dt.date(2025, 3, 1), "2024", 2)
    row = got.frame.set_index(["indicator", "unit"]).loc[("mortality_30d", "X01")]
    assert (row["n"], row["observed"], row["expected"]) == (120, 6, 5.2)
    assert np.isnan(row["mean"])
    assert got.warnings == []


@pytest.mark.parametrize(
    ("row", "column", "value", "rule"),
    [
        (f"{PROVENANCE},mortality_30d,1,X03,,2,1.5,,", "n", "", "n (the number of care cycles) is required"),
        (f"{PROVENANCE},mortality_30d,1,X03,10,12,1.5,,", "observed", "12", "observed is more than n"),
        (f"{PROVENANCE},mortality_30d,1,X03,10,2,-1.5,,", "expected", "-1.5", "expected cannot be negative"),
        (f"{PROVENANCE},mortality_31d,1,X03,10,2,1.5,,", "indicator", "mortality_31d", "unknown indicator"),
        (f"{PROVENANCE},mortality_30d,7,X03,10,2,1.5,,", "definition_version", "7", "unknown definition version"),
        (f"{PROVENANCE},mortality_30d,1,X01,10,2,1.5,,", "unit", "X01", "duplicate unit for mortality_30d"),
        (f"{PROVENANCE},mortality_30d,1,X03,ten,2,1.5,,", "n", "ten", "not a number"),
        (f"{PROVENANCE},mortality_30d,1,X03,10,2,nan,,", "expected", "nan", "not a number"),
        (f"{PROVENANCE},mortality_30d,1,X03,10,2,inf,,", "expected", "inf", "not a number"),
        (f"{PROVENANCE},mortality_30d,1,X03,10.5,2,1.5,,", "n", "10.5", "whole number"),
        (f"{PROVENANCE},mortality_30d,1,=HYPERLINK(1),10,2,1.5,,", "unit", "=HYPERLINK(1)", "looks like a formula"),
        (f"{PROVENANCE},mortality_30d,1,X03,10,2,12,,", "expected", "12", "cannot be more than the care cycles"),
        (f"{PROVENANCE},length_of_stay,1,X03,10,,,,", "mean", "", "needs mean and sd, or sum and sum_sq"),
        (f"{PROVENANCE},length_of_stay,1,X03,10,,,5.5,-1", "sd", "-1", "sd cannot be negative"),
        (f"{PROVENANCE},length_of_stay,1,X03,10,3,,5.5,1", "observed", "3", "does not apply to a mean indicator"),
        (
            "national registry,2025-03-01,2024,nowhere_cancer,mortality_30d,1,X03,10,2,1.5,,",
            "condition",
            "nowhere_cancer",
            "unknown condition",
        ),
        (
            "partner figures,2025-03-01,2024,colorectal_cancer,mortality_30d,1,X03,10,2,1.5,,",
            "source",
            "partner figures",
            "one file is one publication",
        ),
        # a unit that looks like another (X01 + a zero-width space), a control character, an Excel error value
        (f"{PROVENANCE},mortality_30d,1,X01\u200b,10,2,1.5,,", "unit", "X01\u200b", "character no one sees (U+200B)"),
        (f"{PROVENANCE},mortality_30d,1,X0\x073,10,2,1.5,,", "unit", "X0\x073", "character no one sees (U+0007)"),
        (f"{PROVENANCE},mortality_30d,#N/A,X03,10,2,1.5,,", "definition_version", "#N/A", "an Excel error value"),
        # a code that reads as another: a Cyrillic Х for X, a full-width version 1; numbers in the digits 0-9
        (f"{PROVENANCE},mortality_30d,1,\u042503,10,2,1.5,,", "unit", "\u042503", "U+0425 CYRILLIC CAPITAL LETTER HA"),
        (f"{PROVENANCE},mortality_30d,\uff11,X03,10,2,1.5,,", "definition_version", "\uff11", "U+FF11 FULLWIDTH"),
        # wholly in another script: a Cyrillic А reads as version A (accepted with a warning where versions warn)
        (f"{PROVENANCE},mortality_30d,\u0410,X03,10,2,1.5,,", "definition_version", "\u0410", "U+0410 CYRILLIC"),
        (f"{PROVENANCE},mortality_30d,1,X03,\uff11\uff10,2,1.5,,", "n", "\uff11\uff10", "not a number"),
    ],
)
def test_a_bad_row_refuses_the_whole_file_naming_file_row_column_and_value(row, column, value, rule):
    with pytest.raises(ExternalRefused) as caught:
        read_figures(_csv(*GOOD, row), file_name="feedback.csv")
    message = str(caught.value)
    assert message.startswith(f"feedback.csv row 5 column '{column}':"), message
    assert f"value {value!r}" in message if value else "value" not in message.split(":")[1]
    assert rule in message
    assert "\n" not in message


def test_file_level_problems_are_one_line():
    cases = {
        b"": "the file is empty",
        _csv(*GOOD, header=HEADER.replace(",n,", ",cycles,")): "column 'cycles'",
        _csv(*GOOD, header=HEADER.replace(",unit,", ",unit_code,")): "required column is missing",
        b"\x00\x01binary": "not a text file",
        _csv(f"{PROVENANCE},mortality_30d,1,X01,120,6,5.2,,", f"{PROVENANCE},mortality_30d,1,X02,80,3,4.1,,,9"): (
            "a value under no column"
        ),
        # a header without figures would store an empty publication
        _csv(header=HEADER): "f.csv row 1: the file has a header row but no figures",
        # the csv module's own English words never reach the reader: the row and why, in their language
        _csv(*GOOD, f'{PROVENANCE},mortality_30d,1,"X0"9,10,2,1.5,,'): "f.csv row 5: text after the closing quote",
        _csv(*GOOD, f'{PROVENANCE},mortality_30d,1,"X09,10,2,1.5,,'): "f.csv row 5: a quoted value is not closed",
        # the whole date as written, not its first ten characters
        _csv(*[r.replace("2025-03-01", "2025-03-01xyz") for r in GOOD]): "value '2025-03-01xyz': not a date",
        # the ISO week and the date without dashes are not the form the file writes (a Monday no one wrote)
        _csv(*[r.replace("2025-03-01", "2025-W05") for r in GOOD]): "value '2025-W05': not a date",
        _csv(*[r.replace("2025-03-01", "20250301") for r in GOOD]): "value '20250301': not a date",
    }
    for data, expected in cases.items():
        with pytest.raises(ExternalRefused) as caught:
            read_figures(data, file_name="f.csv")
        assert "\n" not in str(caught.value)
        assert any(expected in str(p) for p in caught.value.problems), str(caught.value)
        assert "expected after" not in caught.value.line("nl") and "end of data" not in caught.value.line("nl")


def test_a_column_twice_in_the_header_is_named_with_its_positions(engine):
    """'a column appears twice in the header' named no column: its reader searched every header cell, and Unit
    and unit are one column here, which a reader does not see. It names the column and its positions, as the
    registry import does, in both languages; nothing is stored (external figures and published models)."""
    data = _csv(*[f"{r},X09" for r in GOOD], header=HEADER.replace(",unit,", ",Unit,") + ",unit")
    with pytest.raises(ExternalRefused) as caught:
        external.import_figures(engine, QUALITY, data, file_name="f.csv")
    said = "column appears 2 times in the header (columns 7, 13); keep one"
    assert str(caught.value) == f"f.csv row 1 column 'Unit': {said}"
    assert "de kolom staat 2 keer in de kopregel (kolommen 7, 13)" in caught.value.line("nl")
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(ExternalFigure)).scalar_one() == 0
        assert conn.execute(select(func.count()).select_from(ExternalPublication)).scalar_one() == 0
    from tests.test_external_models import HEADER as MODEL_HEADER
    from tests.test_external_models import MODEL
    from vbhc.external_models import read_model

    model = ("\n".join([MODEL_HEADER + ",term", *[f"{r},age" for r in MODEL]]) + "\n").encode()
    with pytest.raises(ExternalRefused) as caught:
        read_model(model, file_name="m.csv")
    assert "m.csv row 1 column 'term': column appears 2 times in the header (columns " in str(caught.value)


@pytest.mark.parametrize("word", ["n.v.t.", "onbekend", "nvt", "n/a", "NA", "-", "?", "leeg", "unknown", "missing"])
def test_a_word_for_a_missing_number_is_refused_with_how_to_write_one(engine, word):
    """'n.v.t.' or '-' in a number column of external figures or a published model was 'not a number' and nothing
    else; still refused, with the hint that a missing value is an empty cell (en+nl); other text keeps the plain
    message. Nothing is stored."""
    from tests.test_external_models import HEADER as MODEL_HEADER
    from tests.test_external_models import MODEL, P
    from vbhc.external_models import import_model

    hint = "not a number (a finite number without thousands separator): a missing value is written as an empty cell"
    data = _csv(*GOOD, f"{PROVENANCE},length_of_stay,1,X02,{word},,,6.5,abc")
    with pytest.raises(ExternalRefused) as caught:
        external.import_figures(engine, QUALITY, data, file_name="f.csv")
    said = {(p.row, p.column): (str(p.rule), p.line("nl")) for p in caught.value.problems}
    assert said[(5, "n")][0].startswith(hint)
    assert "een ontbrekende waarde is een lege cel" in said[(5, "n")][1]
    assert said[(5, "sd")][0] == "not a number (a finite number without thousands separator)"
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(ExternalPublication)).scalar_one() == 0
    rows = [*MODEL[:1], f"{P},age,,{word},,65,18,90", f"{P},asa,,0.3,,2,1,abc", *MODEL[2:4]]
    with pytest.raises(ExternalRefused) as caught:
        import_model(engine, QUALITY, ("\n".join([MODEL_HEADER, *rows]) + "\n").encode(), file_name="m.csv")
    said = [(p.row, p.column, str(p.rule), p.line("nl")) for p in caught.value.problems]
    hint = "not a number: a missing value is written as an empty cell"
    hinted = [(r, c, nl) for r, c, en, nl in said if en.startswith(hint)]  # the empty coefficient is named too
    assert [(r, c) for r, c, _ in hinted] == [(3, "coefficient")]
    assert "een ontbrekende waarde is een lege cel" in hinted[0][2]
    assert (4, "max", "not a number") in [(r, c, en) for r, c, en, nl in said]
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(models.PublishedModel)).scalar_one() == 0


def test_decimal_commas_are_read_and_a_mix_of_marks_refused():
    semicolon = HEADER.replace(",", ";")
    rows = [r.replace(",", ";") for r in (f"{PROVENANCE},mortality_30d,1,X01,120,6,5.2,,",)]
    got = read_figures(_csv(rows[0].replace("5.2", "5,25"), header=semicolon))
    assert got.frame["expected"].iloc[0] == 5.25
    with pytest.raises(ExternalRefused, match=r"both '\.' and ','"):
        read_figures(_csv(rows[0].replace("5.2", "5,25"), rows[0].replace("X01", "X02"), header=semicolon))
    with pytest.raises(ExternalRefused, match="thousands separator"):
        read_figures(_csv(rows[0].replace("5.2", "1.250").replace(";120;", ";2000;"), header=semicolon))


def test_excels_separator_line_sets_the_separator_and_is_no_row():
    """A file starting with Excel's separator line (sep=;) is read as Excel reads it: the line sets the
    separator and is no row; rows keep the file's line numbers (it was 'unknown column sep=')."""
    semicolon = [r.replace(",", ";") for r in (HEADER, *GOOD)]
    got = read_figures(("sep=;\r\n" + "\r\n".join(semicolon)).encode("utf-8-sig"), file_name="f.csv")
    assert got.frame.drop(columns="row").equals(read_figures(_csv(*GOOD)).frame.drop(columns="row"))
    assert got.frame["row"].tolist() == [3, 4, 5]
    with pytest.raises(ExternalRefused, match="separator line") as caught:
        read_figures(("sep=|\n" + "\n".join(r.replace(";", "|") for r in semicolon)).encode(), file_name="f.csv")
    assert caught.value.problems[0].row == 1


def _workbook(rows: list[list[object]]) -> bytes:
    wb = Workbook()
    ws = wb.active
    ws.title = external.SHEET
    for row in rows:
        ws.append(row)
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def test_workbooks_are_read_and_formulas_in_them_refused():
    header = HEADER.split(",")
    row = ["national registry", "2025-03-01", "2024", CONDITION, "mortality_30d", "1", "X01", 120, 6, 5.2, None, None]
    got = read_figures(_workbook([header, row]), file_name="feedback.xlsx")
    assert got.frame["n"].iloc[0] == 120
    bad = [*row[:6], "=1+1", *row[7:]]
    with pytest.raises(ExternalRefused, match=r"feedback.xlsx \[sheet external_figures\] row 2 column 'unit'"):
        read_figures(_workbook([header, bad]), file_name="feedback.xlsx")


@pytest.mark.parametrize("layout", ["merged", "hidden row", "hidden column", "hidden sheet", "row again"])
def test_a_workbook_showing_other_values_than_its_cells_is_refused(layout):
    """Figures whose n is merged over two units' rows (the second read as empty), a hidden or filtered row, a
    hidden column, the figures sheet hidden behind a visible one, or a row the sheet's part holds twice (openpyxl
    left the second copy out): the reader sees other figures than the cells read, so the file is refused naming
    where."""
    header = HEADER.split(",")
    row = ["national registry", "2025-03-01", "2024", CONDITION, "mortality_30d", "1", "X01", 120, 6, 5.2, None, None]
    wb = Workbook()
    ws = wb.active
    ws.title = external.SHEET
    for values in (header, row, [*row[:6], "X02", *row[7:]]):
        ws.append(values)
    n = "ABCDEFGHIJKL"[header.index("n")]
    if layout == "merged":
        ws.merge_cells(f"{n}2:{n}3")
    elif layout == "hidden row":
        ws.row_dimensions[3].hidden = True
    elif layout == "hidden column":
        ws.column_dimensions[n].hidden = True
    elif layout == "hidden sheet":
        wb.create_sheet("summary").append(["see the figures"])
        ws.sheet_state = "hidden"
    out = io.BytesIO()
    wb.save(out)
    data = patch_sheet(out.getvalue(), row_again_at_end(3)) if layout == "row again" else out.getvalue()
    with pytest.raises(ExternalRefused) as caught:
        read_figures(data, file_name="feedback.xlsx")
    expected = {
        "merged": f"feedback.xlsx [sheet external_figures] row 2: cells {n}2:{n}3 are merged",
        "hidden row": "feedback.xlsx [sheet external_figures] row 3: the row is hidden",
        "hidden column": f"feedback.xlsx [sheet external_figures] row 1: column {header.index('n') + 1} is hidden",
        "hidden sheet": "feedback.xlsx [sheet external_figures]: the sheet is hidden",
        "row again": "feedback.xlsx [sheet external_figures] row 3: the sheet's file holds this row again",
    }[layout]
    assert expected in str(caught.value), str(caught.value)


@pytest.mark.parametrize(("written", "refused"), [("12_0", True), ("infinity", True), ("1.2E2", False)])
def test_a_number_excel_would_not_read_is_refused(written, refused):
    """Figures whose n is written 12_0 (Python reads 120, Excel shows an error or refuses the file) or infinity:
    refused naming the row and cell; 1.2E2 is a number as Excel writes it and read as 120."""
    header = HEADER.split(",")
    row = ["national registry", "2025-03-01", "2024", CONDITION, "mortality_30d", "1", "X01", 120, 6, 5.2, None, None]
    cell = f"{'ABCDEFGHIJKL'[header.index('n')]}2"
    data = patch_sheet(_workbook([header, row]), number_written(cell, written.encode()))
    if not refused:
        assert read_figures(data, file_name="feedback.xlsx").frame["n"].iloc[0] == 120
        return
    with pytest.raises(ExternalRefused) as caught:
        read_figures(data, file_name="feedback.xlsx")
    expected = f"feedback.xlsx [sheet external_figures] row 2: cell {cell} holds the number written as {written!r}"
    assert expected in str(caught.value), str(caught.value)


def test_a_sheet_whose_dimension_tag_states_less_is_read_whole():
    """A sheet whose dimension tag says A1:C2 (a writer may state less than it wrote): openpyxl's read-only mode
    read the header's first three columns and one unit, and the file was refused for missing columns (or, with a
    wider tag, imported without its later units); Excel ignores the tag, and so does the reader now."""
    header = HEADER.split(",")
    row = ["national registry", "2025-03-01", "2024", CONDITION, "mortality_30d", "1", "X01", 120, 6, 5.2, None, None]
    data = patch_sheet(_workbook([header, row, [*row[:6], "X02", *row[7:]]]), state_dimension("A1:C2"))
    got = read_figures(data, file_name="feedback.xlsx")
    assert list(got.frame["unit"]) == ["X01", "X02"]


def test_a_source_with_an_accent_typed_as_a_separate_mark_is_the_source_it_reads_as():
    rows = [row.replace("national registry", "Régistre national") for row in GOOD]
    rows[1] = rows[1].replace("Régistre", "Re\u0301gistre")  # é as e + an accent mark: reads the same
    assert read_figures(_csv(*rows), file_name="f.csv").source == "Régistre national"


def test_a_shared_string_with_an_excel_code_is_read_as_excel_shows_it():
    """A figures workbook saved by Excel keeps its texts in a shared strings table, where the text _x0058_01 is
    written _x005F_x0058_01; openpyxl deletes every 'x005F_' from such texts, so the unit was read as X01 (another
    hospital's code). Read as Excel shows it; a text two written texts give alike is refused naming the row."""
    header = HEADER.split(",")
    row = ["national registry", "2025-03-01", "2024", CONDITION, "mortality_30d", "1", "_x005F_x0058_01", 120, 6, 5.2]
    data = shared_strings(_workbook([header, row]))
    assert list(read_figures(data, file_name="f.xlsx").frame["unit"]) == ["_x0058_01"]
    with pytest.raises(ExternalRefused) as caught:
        read_figures(shared_strings(_workbook([header, row]), (b"<t>_x0058_01</t>",)), file_name="f.xlsx")
    assert "f.xlsx [sheet external_figures] row 2 column 'unit': value 'X01 | _x0058_01'" in str(caught.value)


def test_a_sheet_name_is_read_as_its_tab_shows_it():
    """The sheet external_figures written with Excel's codes (_x0065_xternal_figures: the tab reads
    external_figures) beside a notes sheet was refused as 'none is named external_figures'; read as the tab shows
    it. Two sheets whose names are one to Excel (Excel calls the workbook damaged) are refused naming both."""
    header = HEADER.split(",")
    row = ["national registry", "2025-03-01", "2024", CONDITION, "mortality_30d", "1", "X01", 120, 6, 5.2]
    wb = Workbook()
    wb.active.title = external.SHEET
    for values in (header, row):
        wb.active.append(values)
    wb.create_sheet("notes")
    out = io.BytesIO()
    wb.save(out)
    coded = sheet_renamed(out.getvalue(), external.SHEET, "_x0065_xternal_figures")
    assert list(read_figures(coded, file_name="f.xlsx").frame["unit"]) == ["X01"]
    with pytest.raises(ExternalRefused) as caught:
        read_figures(sheet_renamed(out.getvalue(), "notes", "External_Figures"), file_name="f.xlsx")
    assert "f.xlsx [sheet External_Figures]: the workbook has another sheet named 'external_figures'" in str(
        caught.value
    )


@pytest.mark.parametrize("cell", ['<c r="H2" t="b"><v>true</v></c>', '<c r="H2" s="99"><v>120</v></c>'])
def test_a_cell_that_cannot_be_read_is_refused_naming_its_row(cell):
    """A cell openpyxl cannot read (a yes/no cell 'true', a style the workbook does not have; Excel calls the file
    damaged) ended the reading with a ValueError or IndexError ('unexpected error' on the command line): refused
    naming the row."""
    header = HEADER.split(",")
    row = ["national registry", "2025-03-01", "2024", CONDITION, "mortality_30d", "1", "X01", 120, 6, 5.2]
    data = patch_sheet(_workbook([header, row]), lambda xml: re.sub(rb'<c r="H2".*?</c>', cell.encode(), xml))
    with pytest.raises(ExternalRefused) as caught:
        read_figures(data, file_name="f.xlsx")
    assert "f.xlsx [sheet external_figures] row 2: a cell of this row cannot be read (" in str(caught.value)


def test_a_yes_no_cell_in_a_number_column_is_refused_as_the_text_true_is():
    header = HEADER.split(",")
    row = ["national registry", "2025-03-01", "2024", CONDITION, "mortality_30d", "1", "X01", 120, True, 5.2]
    with pytest.raises(ExternalRefused) as caught:  # a person reads TRUE, not 1 event
        read_figures(_workbook([header, row]), file_name="feedback.xlsx")
    assert "row 2 column 'observed': value 'TRUE': not a number" in str(caught.value)


def test_a_code_in_a_number_cell_is_read_as_the_cell_shows_it():
    header = HEADER.split(",")
    row = ["national registry", "2025-03-01", "2024", CONDITION, "mortality_30d", "1", 7, 120, 6, 5.2]

    def formatted(number_format: str) -> bytes:
        wb = Workbook()
        ws = wb.active
        ws.title = "external_figures"
        ws.append(header)
        ws.append(row)
        ws["G2"].number_format = number_format
        out = io.BytesIO()
        wb.save(out)
        return out.getvalue()

    assert list(read_figures(formatted("000"), file_name="f.xlsx").frame["unit"]) == ["007"]  # as the cell shows
    with pytest.raises(ExternalRefused) as caught:  # 7.0 is not the unit 7
        read_figures(formatted("0.0"), file_name="f.xlsx")
    assert (
        "f.xlsx [sheet external_figures] row 2 column 'unit': value '7': a number cell under the number format 0.0"
        in (str(caught.value))
    )


def test_a_number_below_one_with_three_decimals_decides_the_mark():
    """0.125 is read as a decimal (no one groups thousands after a 0), as the registry import reads it: a file
    whose only decimals were an EQ-5D change of 0.125 and an sd of 0.250 was refused as 'cannot tell a decimal
    mark from a thousands separator'. 1.250 alone still decides nothing."""
    provenance = "national registry,2025-03-01,2024,hip_osteoarthritis"
    got = read_figures(_csv(f"{provenance},eq5d_change_12m,1,X01,120,,,0.125,0.250"), file_name="f.csv")
    assert got.frame[["mean", "sd"]].iloc[0].tolist() == [0.125, 0.25]
    with pytest.raises(ExternalRefused, match="cannot tell a decimal mark"):
        read_figures(_csv(f"{provenance},eq5d_change_12m,1,X01,120,,,1.250,"), file_name="f.csv")


def test_a_workbooks_number_cells_decide_no_decimal_mark():
    """An expected count typed as the number 5.125 is a number, not a text whose point may be a thousands
    separator (Dutch Excel shows it as 5,125): it was refused as 'cannot tell a decimal mark from a thousands
    separator', and beside a text '4,1' as 'not a number'. Only numbers written as text decide the mark."""
    header = HEADER.split(",")
    first = ["national registry", "2025-03-01", "2024", CONDITION, "mortality_30d", "1", "X01", 120, 6, 5.125]
    second = ["national registry", "2025-03-01", "2024", CONDITION, "mortality_30d", "1", "X02", 80, 3, 4.1]
    assert list(read_figures(_workbook([header, first, second]), file_name="f.xlsx").frame["expected"]) == [5.125, 4.1]
    second[-1] = "4,1"
    assert list(read_figures(_workbook([header, first, second]), file_name="f.xlsx").frame["expected"]) == [5.125, 4.1]
    second[-1] = "1.500"  # a text: still undecided
    with pytest.raises(ExternalRefused, match="cannot tell a decimal mark"):
        read_figures(_workbook([header, first, second]), file_name="f.xlsx")


def test_a_number_format_that_hides_a_value_is_refused():
    """;;; hides a cell's value (Excel shows it empty), #,##0, shows 1200 as 1: a reader does not read what would
    be stored; refused naming row, column, value and format (it was stored as the hidden number)."""
    header = HEADER.split(",")
    row = ["national registry", "2025-03-01", "2024", CONDITION, "mortality_30d", "1", "X01", 120, 6, 5.2]
    for column, number_format, shown in (("H2", ";;;", "'120'"), ("I2", "#,##0,", "'6'"), ("G2", ";;;", "'X01'")):
        wb = Workbook()
        ws = wb.active
        ws.title = "external_figures"
        ws.append(header)
        ws.append(row)
        ws[column].number_format = number_format
        out = io.BytesIO()
        wb.save(out)
        with pytest.raises(ExternalRefused) as caught:
            read_figures(out.getvalue(), file_name="f.xlsx")
        assert f"row 2 column '{ws[column.replace('2', '1')].value}': value {shown}" in str(caught.value)
        assert f"number format {number_format} shows its value otherwise" in str(caught.value)


@pytest.mark.parametrize("kind", ["xlsx", "csv", "csv_semicolon"])
def test_a_title_or_note_above_the_header_is_refused_naming_both_rows(kind):
    """A feedback file whose table starts under a title ('Terugkoppeling 2024') and a note: its first row was
    read as the header ('unknown column' for the title), or a CSV's separator decided by the title line. Now the
    refusal names the title's row and the header's, in both languages (a note may say how to read the values)."""
    header = HEADER.split(",")
    row = ["national registry", "2025-03-01", "2024", CONDITION, "mortality_30d", "1", "X01", "120", "6", "5.2"]
    above = [["Terugkoppeling 2024"], ["n = aantal patiënten"], []]
    if kind == "xlsx":
        data, name = _workbook([*above, header, row]), "f.xlsx"
    else:
        sep = "," if kind == "csv" else ";"
        data, name = ("\n".join(sep.join(r) for r in [*above, header, row]) + "\n").encode(), "f.csv"
    with pytest.raises(ExternalRefused) as caught:
        read_figures(data, file_name=name)
    assert [(p.row, p.column, p.value, p.rule.code) for p in caught.value.problems] == [
        (1, None, "Terugkoppeling 2024", "read.rows_above_header")
    ]
    assert "row 1" in caught.value.line("en") and "header (row 4)" in caught.value.line("en")
    assert "kopregel van de tabel (rij 4)" in caught.value.line("nl")


@pytest.mark.parametrize(
    ("sep", "title"),
    [
        (";", "Terugkoppeling; registry H01; 2026"),
        (",", "Terugkoppeling, registry H01, 2026"),
        (";", "Terugkoppeling, registry H01, 2026"),
        (",", "Terugkoppeling; registry; H01; 2026"),
    ],
)
def test_a_title_holding_a_separator_above_the_header_is_refused_naming_both_rows(sep, title):
    """A feedback file's title line that holds a separator itself: a title with another separator than the
    table's decided the separator (every column 'unknown'), one with the same was refused naming its first
    field only. Now the header decides the separator and the title is refused whole, naming its row and the
    header's, in both languages."""
    header = HEADER.split(",")
    row = ["national registry", "2025-03-01", "2024", CONDITION, "mortality_30d", "1", "X01", "120", "6", "5.2"]
    data = ("\n".join([title, "", sep.join(header), sep.join(row)]) + "\n").encode()
    with pytest.raises(ExternalRefused) as caught:
        read_figures(data, file_name="f.csv")
    assert [(p.row, p.column, p.value, p.rule.code) for p in caught.value.problems] == [
        (1, None, title, "read.rows_above_header")
    ]
    assert "header (row 3)" in caught.value.line("en") and "kopregel van de tabel (rij 3)" in caught.value.line("nl")


@pytest.mark.parametrize("hidden", [False, True])
def test_a_notes_sheet_is_named_as_not_read_and_a_second_sheet_of_figures_is_refused(hidden):
    """A feedback workbook's other sheets were ignored without a word. Now a sheet of notes (a legend, an
    explanation) is left unread and named in the summary (both languages), and another sheet holding figures
    (its header under a title) is refused naming it and its header's row: its rows would silently not be read."""
    from openpyxl import Workbook

    header = HEADER.split(",")
    row = ["national registry", "2025-03-01", "2024", CONDITION, "mortality_30d", "1", "X01", "120", "6", "5.2"]
    wb = Workbook()
    wb.active.title = external.SHEET
    for cells in (header, row):
        wb.active.append(cells)
    notes = wb.create_sheet("Toelichting")
    notes.append(["indicator", "uitleg"])
    notes.append(["mortality_30d", "overleden binnen 30 dagen"])
    if hidden:
        notes.sheet_state = "hidden"

    def saved() -> bytes:
        out = io.BytesIO()
        wb.save(out)
        return out.getvalue()

    figures = read_figures(saved(), file_name="f.xlsx")
    assert len(figures.frame) == 1
    said = [w for w in figures.warnings if w.code == "read.sheets_not_read"]
    assert (
        len(said) == 1 and "'Toelichting'" in said[0].in_language("en") and "niet gelezen" in said[0].in_language("nl")
    )
    more = wb.create_sheet("2023")
    more.append(["Terugkoppeling 2023"])
    for cells in (header, row):
        more.append(cells)
    with pytest.raises(ExternalRefused) as caught:
        read_figures(saved(), file_name="f.xlsx")
    assert [(p.sheet, p.row, p.rule.code) for p in caught.value.problems] == [("2023", 2, "read.other_sheet_has_rows")]
    assert f"'{external.SHEET}'" in caught.value.line("en") and "werkblad" in caught.value.line("nl")


@pytest.fixture
def versioned_catalog(tmp_path) -> Path:
    """The shipped catalog with mortality_30d at definition version 2, figures of other versions warned about."""
    from vbhc.settings import catalog_dir

    target = tmp_path / "catalog"
    shutil.copytree(catalog_dir(), target)
    path = target / "colorectal_cancer.toml"
    text = path.read_text(encoding="utf-8")
    marker = 'outcome = "mortality_30d", direction'
    assert text.count(marker) == 1
    changed = text.replace(marker, 'outcome = "mortality_30d", version = 2, other_version = "warn", direction')
    path.write_text(changed, encoding="utf-8")
    return target


def test_definition_versions_are_refused_or_warned_as_the_catalog_says(versioned_catalog):
    catalog = load_catalog(versioned_catalog)
    ind = catalog.condition(CONDITION).indicator("mortality_30d")
    assert (ind.version, ind.other_version) == ("2", "warn")
    assert catalog.condition(CONDITION).indicator("anastomotic_leak").version == "1"  # the default
    got = read_figures(_csv(*GOOD), catalog=catalog)  # version 1 figures of a version 2 definition: warned
    assert got.warnings == ["the figures of mortality_30d are under definition version 1; the catalog's is 2"]
    assert (
        rule_text(got.warnings[0], "nl")
        == "de cijfers van mortality_30d hebben definitieversie 1; de catalogus heeft 2"
    )
    both = combine(got.frame.iloc[:0], got.frame, CONDITION, population="p", catalog=catalog)
    assert any("under another definition version" in w for w in both.warnings)
    assert both.other_version == {"mortality_30d": False}  # compared all the same: the page says so
    assert set(both.table["indicator"]) == {"mortality_30d", "length_of_stay"}
    # the shipped catalog refuses (default other_version = "refuse"): these figures are left out there
    shipped = read_figures(_csv(*GOOD))
    newer = shipped.frame.assign(
        definition_version=np.where(shipped.frame["indicator"] == "mortality_30d", "2", "1")
    )  # figures of a definition this installation does not know yet
    refused = combine(shipped.frame.iloc[:0], newer, CONDITION, population="p")
    assert set(refused.table["indicator"]) == {"length_of_stay"}
    assert refused.other_version == {"mortality_30d": True}  # left out


def test_a_bad_version_rule_in_the_catalog_names_file_and_key(versioned_catalog):
    from vbhc.catalog import CatalogError

    path = versioned_catalog / "colorectal_cancer.toml"
    path.write_text(path.read_text(encoding="utf-8").replace('"warn"', '"ignore"'), encoding="utf-8")
    with pytest.raises(CatalogError, match=r"other_version.*must be one of refuse, warn"):
        load_catalog(versioned_catalog)


# ----------------------------------------------------------------------------------------- the store
def _count(engine, model) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(model.__table__)).scalar_one()


def test_import_stores_with_provenance_replaces_and_refuses_whole_files(engine):
    done = external.import_figures(engine, QUALITY, _csv(*GOOD), file_name="feedback.csv")
    assert (done.rows, done.replaced) == (3, 0)
    stored = external.figures(engine, CARE, CONDITION)
    assert set(stored["source"]) == {"national registry"} and set(stored["period"]) == {"2024"}
    assert stored.set_index(["indicator", "unit"]).loc[("mortality_30d", "X02"), "expected"] == 4.1
    # the next file of the same source and period replaces the older one, in one transaction
    again = external.import_figures(engine, QUALITY, _csv(*GOOD[:2]), file_name="feedback.csv")
    assert (again.rows, again.replaced) == (2, 1)
    assert (_count(engine, ExternalPublication), _count(engine, ExternalFigure)) == (1, 2)
    # a refused file stores nothing and is audited as refused
    with pytest.raises(ExternalRefused, match="observed is more than n"):
        external.import_figures(
            engine, QUALITY, _csv(GOOD[0], f"{PROVENANCE},mortality_30d,1,X09,5,6,1,,"), file_name="bad.csv"
        )
    assert (_count(engine, ExternalPublication), _count(engine, ExternalFigure)) == (1, 2)
    events = audit.read(engine)
    assert list(events["action"]).count("import") == 2 and list(events["action"]).count("import_refused") == 1
    # its problems kept as where and which rule, never the value: the log reads them in its reader's language
    refused = events[events["action"] == "import_refused"].iloc[0]["detail"]
    assert "'6'" not in refused
    assert "bad.csv rij 3 kolom 'observed': observed is groter dan n (5)" in audit.describe(refused, "nl")
    assert "bad.csv row 3 column 'observed': observed is more than n (5)" in audit.describe(refused, "en")
    # a manager reads only the units of their scope: other hospitals never by name
    manager = Viewer("m@x", "M", (Scope(Role.MANAGER, hospitals=frozenset({"X02"})),))
    assert list(external.figures(engine, manager, CONDITION)["unit"]) == ["X02"]
    # a care team may read the figures but not import them
    with pytest.raises(AccessDenied):
        external.import_figures(engine, CARE, _csv(*GOOD), file_name="feedback.csv")
    assert _count(engine, ExternalFigure) == 2


def test_a_unit_code_differing_only_in_case_is_refused_naming_both(engine):
    """X01 and x01 were stored as two external units that read as one. Refused naming the other spelling: in one
    file, against another publication's stored units and against the registry's own units; nothing is stored.
    A file replacing the publication that holds X01 may spell it anew."""
    with pytest.raises(ExternalRefused) as caught:
        read_figures(_csv(*GOOD, f"{PROVENANCE},length_of_stay,1,x02,80,,,5.0,2.0"), file_name="f.csv")
    assert "f.csv row 5 column 'unit': value 'x02': differs from the unit X02" in str(caught.value)
    assert "alleen in hoofdletters en kleine letters" in caught.value.line("nl")

    external.import_figures(engine, QUALITY, _csv(*GOOD), file_name="feedback.csv")
    partner = "partner figures,2025-03-01,2024,colorectal_cancer"
    with pytest.raises(ExternalRefused, match=r"f\.csv row 2 column 'unit': value 'x01': differs from the unit X01"):
        external.import_figures(engine, QUALITY, _csv(f"{partner},mortality_30d,1,x01,50,2,,,"), file_name="f.csv")
    with engine.begin() as conn:  # the registry's own hospital H01
        batch = conn.execute(
            insert(models.ImportBatch).values(
                file_name="u.csv", table_name="units", sha256="0" * 64, imported_at=dt.datetime.now(dt.UTC)
            )
        ).inserted_primary_key[0]
        conn.execute(insert(models.Hospital).values(code="H01", name="Own", own_hospital=True, batch_id=batch))
    with pytest.raises(ExternalRefused, match="value 'h01': differs from the unit H01"):
        external.import_figures(engine, QUALITY, _csv(f"{partner},mortality_30d,1,h01,50,2,,,"), file_name="f.csv")
    assert (_count(engine, ExternalPublication), _count(engine, ExternalFigure)) == (1, 3)
    assert list(audit.read(engine)["action"]).count("import_refused") == 2
    renamed = [row.replace("X01", "x01") for row in GOOD]  # the same source and period: it replaces the X01 file
    assert external.import_figures(engine, QUALITY, _csv(*renamed), file_name="feedback.csv").replaced == 1


# ----------------------------------------------------------------------------------------- the round trip
@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    """A small generated registry (800 care cycles, ten hospitals) and colorectal cancer's table from all
    patient rows: what a collaboration sharing patient rows sees."""
    from vbhc.demo import generate_demo
    from vbhc.ingest import import_files
    from vbhc.store import get_engine

    folder = tmp_path_factory.mktemp("external")
    files = generate_demo(folder / "files", cycles=800).files
    eng = get_engine(f"sqlite:///{folder / 'registry.db'}")
    import_files(files, eng, imported_by="test")
    data = load_condition_data(CONDITION, engine=eng)
    pooled = compute_indicators(data, "hospital", indicators=INDICATORS)
    yield eng, data, pooled
    eng.dispose()


def _local(data, hospital: str):
    """What one hospital computes from its own patient rows only."""
    return compute_indicators(restrict(data, hospitals=[hospital]), "hospital", indicators=INDICATORS)


_EXACT = [
    "n",
    "n_adjusted",
    "observed",
    "expected",
    "oe",
    "oe_lower",
    "oe_upper",
    "crude_value",
    "crude_lower",
    "crude_upper",
    "adjusted_value",
    "adjusted_lower",
    "adjusted_upper",
    "target",
    "precision",
    "lower_95",
    "upper_95",
    "lower_998",
    "upper_998",
    "phi",
    "tau2",
    "rankability",
]


@pytest.fixture(scope="module")
def summaries(registry):
    """Every hospital's own summary, computed from its own patient rows with the shared (benchmark) case-mix
    model; the model fitted on all rows stands in for a published one."""
    _, data, pooled = registry
    hospitals = sorted(pooled.table["hospital"].unique())
    return {h: own_summary(_local(data, h), models=pooled.models) for h in hospitals}


def test_hospitals_exchanging_summaries_get_the_table_of_all_patient_rows(registry, summaries):
    pooled = registry[2]
    hospitals = sorted(summaries)
    assert len(hospitals) == 10
    me, partners = hospitals[0], hospitals[1:]
    files = {}
    for h in partners:
        files[h] = write_figures(
            suppressed_summary(summaries[h], SuppressionRule(0)),
            source=f"partner {h}",
            published=dt.date(2025, 3, 1),
            period="2021-2024",
            file_format="xlsx" if h == partners[0] else "csv",
        )
    received = pd.concat([read_figures(files[h], file_name=f"{h}.csv").frame for h in partners], ignore_index=True)
    mine = summaries[me]
    assert mine.not_carried == {}
    got = combine(mine.frame, received, CONDITION, population="partners 2021-2024, 10 hospitals")
    assert set(got.table["benchmark_population"]) == {"partners 2021-2024, 10 hospitals"}
    assert set(got.table.loc[~got.table["external"], "unit"]) == {me}

    want = pooled.table.set_index(["indicator", "unit"])
    have = got.table.set_index(["indicator", "unit"]).reindex(want.index)
    for ind_id, rows in want.groupby(level=0):
        kind = rows["kind"].iloc[0]
        if kind in BINARY_KINDS or kind == "response_rate":
            columns = [c for c in _EXACT if c in rows and rows[c].notna().any()]
            for label in ("position_998", "assessment_998", "position_95", "dispersion_method"):
                assert list(have.loc[rows.index, label]) == list(rows[label]), (ind_id, label)
        elif kind in CONTINUOUS_KINDS:  # crude means: sums carried exactly, so only float rounding differs
            columns = ["n", "crude_value", "crude_lower", "crude_upper"]
            assert external.CONTINUOUS_REASON in got.not_carried[ind_id]
        else:
            columns = ["n", "crude_value"]
        for column in columns:
            np.testing.assert_allclose(
                have.loc[rows.index, column].to_numpy(float),
                rows[column].to_numpy(float),
                rtol=1e-9,
                atol=1e-12,
                err_msg=f"{ind_id} {column}",
            )
        assert external.PATIENT_ROWS_REASON in got.not_carried[ind_id]
    assert have["shrunken_value"].isna().all()


def test_without_the_benchmark_model_expected_is_not_carried_and_rates_are_crude(registry, summaries):
    _, data, pooled = registry
    own = own_summary(_local(data, "H01"))
    assert own.not_carried["mortality_30d"] == external.EXPECTED_REASON
    assert own.frame["expected"].isna().all()
    partners = [summaries[h].frame for h in ("H02", "H03", "H04")]
    got = combine(own.frame, pd.concat(partners), CONDITION, population="p", own_not_carried=own.not_carried)
    rows = got.table[got.table["indicator"] == "mortality_30d"].set_index("unit")
    assert rows["oe"].isna().all() and rows["expected"].isna().all()  # compared on crude rates, not O/E
    assert any("compared on crude rates" in r for r in got.not_carried["mortality_30d"])
    crude = pooled.table[pooled.table["indicator"] == "mortality_30d"].set_index("unit")
    np.testing.assert_allclose(rows.loc["H01", "crude_value"], crude.loc["H01", "crude_value"], rtol=1e-12)


def test_the_export_withholds_small_numbers_and_is_audited(registry, sqlite_engine):
    _, data, pooled = registry
    local = compute_indicators(restrict(data, hospitals=["H01"]), "hospital", indicators=INDICATORS)
    summary = own_summary(local, models=pooled.models)
    small = summary.frame[summary.frame[["n", "n_adjusted"]].min(axis=1) < 10]
    assert not small.empty  # the generated registry has small cells: the rule has something to do
    content = external.export_summary(
        sqlite_engine,
        CARE,
        local,
        source="UMC H01",
        published=dt.date(2025, 3, 1),
        period="2021-2024",
        models=pooled.models,
        rule=SuppressionRule(10),
    )
    back = read_figures(content, file_name="summary.csv")
    assert back.source == "UMC H01"
    assert (back.frame[["n", "n_adjusted"]].min(axis=1) >= 10).all()
    assert len(back.frame) < len(summary.frame)
    events = audit.read(sqlite_engine)
    assert list(events["action"]) == ["export"] and events["sha256"].iloc[0] == audit.sha256_of(content)


def test_cli_imports_and_refuses_with_one_line(tmp_path, monkeypatch, capsys):
    from vbhc.cli import main
    from vbhc.store import get_engine

    monkeypatch.setenv("VBHC_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    get_engine.cache_clear()
    good, bad = tmp_path / "feedback.csv", tmp_path / "bad.csv"
    good.write_bytes(_csv(*GOOD))
    bad.write_bytes(_csv(GOOD[0], f"{PROVENANCE},mortality_30d,1,X09,,6,1,,"))
    try:
        assert main(["external", "import", str(good)]) == 0
        assert "3 external figure(s) stored" in capsys.readouterr().out
        assert main(["external", "import", str(bad)]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("vbhc external import: bad.csv row 3 column 'n'") and "\n" not in err
    finally:
        get_engine.cache_clear()


def test_stored_figures_benchmark_the_own_units_with_the_population_named(registry, summaries, sqlite_engine):
    _, data, pooled = registry
    partners = pd.concat([summaries[h].frame for h in sorted(summaries)[1:]], ignore_index=True)
    feedback = write_figures(partners, source="national registry", published=dt.date(2025, 3, 1), period="2024")
    external.import_figures(sqlite_engine, QUALITY, feedback, file_name="feedback.csv")
    local = _local(data, "H01")
    got = external.external_benchmark(sqlite_engine, CARE, local, models=pooled.models, lang="nl")
    assert got.population == "national registry 2024, 10 ziekenhuizen"
    table = got.table
    assert set(table.loc[~table["external"], "unit"]) == {"H01"} and table["external"].sum() > 0
    want = pooled.table.set_index(["indicator", "unit"])["oe"]
    have = table.set_index(["indicator", "unit"])["oe"].reindex(want.index)
    np.testing.assert_allclose(have.to_numpy(float), want.to_numpy(float), rtol=1e-9)
    english = external.external_benchmark(sqlite_engine, CARE, local, models=pooled.models)
    assert english.population == "national registry 2024, 10 hospitals"
    manager = Viewer("m@x", "M", (Scope(Role.MANAGER, hospitals=frozenset({"H01"})),))
    shown = external.external_benchmark(sqlite_engine, manager, local, models=pooled.models).table
    others = shown[shown["hospital"] != "H01"]
    assert others["anonymised"].all() and not others["unit"].str.startswith("H").any()  # no other hospital named
    with pytest.raises(AccessDenied):  # a care team of another condition sees nothing of this one
        other = Viewer("c@x", "C", (Scope(Role.CARE_TEAM, conditions=frozenset({"breast_cancer"})),))
        external.external_benchmark(sqlite_engine, other, local)


def test_a_unit_in_two_publications_is_benchmarked_once_on_its_latest_figures(registry, summaries, sqlite_engine):
    """Each file replaces only its own source and period, so last year's feedback stays stored beside this
    year's. Before: a unit in both was two units of the benchmark (drawn twice on the funnel, counted twice in its
    target, last year's figures among this year's); now each unit's latest publication is used, in any order of
    import, and the population names the publications used."""
    _, data, pooled = registry
    partners = pd.concat([summaries[h].frame for h in sorted(summaries)[1:]], ignore_index=True)
    older = partners.assign(observed=partners["observed"].where(partners["observed"].isna(), 0.0))  # other figures
    current = write_figures(partners, source="national registry", published=dt.date(2025, 3, 1), period="2024")
    last_year = write_figures(older, source="national registry", published=dt.date(2024, 3, 1), period="2023")
    external.import_figures(sqlite_engine, QUALITY, current, file_name="feedback-2024.csv")
    external.import_figures(sqlite_engine, QUALITY, last_year, file_name="feedback-2023.csv")
    assert len(external.figures(sqlite_engine, QUALITY, CONDITION)) == 2 * len(partners)  # both stay listed
    got = external.external_benchmark(sqlite_engine, CARE, _local(data, "H01"), models=pooled.models)
    table = got.table
    assert not table.duplicated(["indicator", "unit"]).any()
    assert got.population == "national registry 2024, 10 hospitals"
    want = pooled.table.set_index(["indicator", "unit"])["oe"]
    have = table.set_index(["indicator", "unit"])["oe"].reindex(want.index)
    np.testing.assert_allclose(have.to_numpy(float), want.to_numpy(float), rtol=1e-9)


def test_the_combined_table_feeds_the_funnel_caterpillar_and_verdict(registry, summaries):
    from vbhc import charts
    from vbhc.indicators import funnel_curve
    from vbhc.verdict import verdict_labels

    hospitals = sorted(summaries)
    others = pd.concat([summaries[h].frame for h in hospitals[1:]], ignore_index=True)
    got = combine(summaries[hospitals[0]].frame, others, CONDITION, population="national registry 2024, 10 hospitals")
    for ind_id in ("mortality_30d", "length_of_stay"):
        rows = got.table[got.table["indicator"] == ind_id]
        curve = funnel_curve(rows)
        # the drawn limits at each unit's n are the unit's own limits
        for _, row in rows.iterrows():
            at = funnel_curve(rows, grid=[row["precision"]])
            upper = at.loc[at["level"] == 0.998, "upper"].iloc[0]
            assert np.isclose(upper, row["upper_998"], rtol=1e-9), (ind_id, row["unit"])
        assert charts.funnel_chart(rows, curve, highlight=hospitals[0])
        assert charts.caterpillar_chart(rows, highlight=hospitals[0])
        labels = verdict_labels(rows, "nl")
        assert len(labels) == len(rows) and all(isinstance(text, str) and text for text in labels)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    position=st.integers(min_value=0, max_value=400),
    junk=st.binary(min_size=1, max_size=6),
    limit=st.sampled_from(["", "1"]),
)
def test_a_mutated_file_is_read_or_refused_never_a_crash(position, junk, limit):
    good = _csv(*GOOD)
    data = good[:position] + junk + good[position + len(junk) :]
    with pytest.MonkeyPatch.context() as mp:
        if limit:
            mp.setenv("VBHC_MAX_ROWS", limit)
        try:
            got = read_figures(data, file_name="mutated.csv")
        except ExternalRefused as exc:
            assert str(exc).startswith("mutated.csv") and "\n" not in str(exc)
        else:
            assert not limit and len(got.frame) == 3 and got.frame["n"].notna().all()


def test_cli_exports_the_own_summary_with_expected_from_the_registrys_model(registry, tmp_path, monkeypatch, capsys):
    from vbhc.cli import main
    from vbhc.store import get_engine

    eng, _, pooled = registry
    monkeypatch.setenv("VBHC_DATABASE_URL", eng.url.render_as_string(hide_password=False))
    monkeypatch.setenv("VBHC_RESULTS_DIR", "off")
    get_engine.cache_clear()
    out = tmp_path / "summary.xlsx"
    args = ["external", "export", "--condition", CONDITION, "--source", "UMC H01", "--published", "2025-03-01"]
    try:
        assert main([*args, "--expected-from-registry", "--suppress-below", "0", "--out", str(out)]) == 0
        assert "written to" in capsys.readouterr().out
        assert main([*args[:3], "nowhere", *args[4:], "--out", str(out)]) == 2
        assert capsys.readouterr().err.strip() == (
            "vbhc external export: unknown condition 'nowhere': choose from " + ", ".join(load_catalog().conditions)
        )
    finally:
        get_engine.cache_clear()
    back = read_figures(out)
    own = set(pooled.table.loc[pooled.table["hospital"] == "H01", "unit"])
    assert set(back.frame["unit"]) == own == {"H01"}
    rows = back.frame.set_index("indicator")
    want = pooled.table[pooled.table["unit"] == "H01"].set_index("indicator")
    assert np.isclose(rows.loc["mortality_30d", "expected"], want.loc["mortality_30d", "expected"], rtol=1e-9)


def test_refusals_read_in_dutch_on_the_data_page():
    """Every rule of a refused figure file is a catalog message: line("nl") reads Dutch, line("en") is str()."""
    from vbhc.ingest.problems import Rule

    bad_rows = _csv(
        *GOOD,
        f"{PROVENANCE},mortality_30d,1,X03,,2,1.5,,",  # n missing
        f"{PROVENANCE},mortality_30d,1,X04,10,12,1.5,,",  # observed more than n
        f"{PROVENANCE},length_of_stay,1,X05,10,3,,5.5,1",  # observed does not apply to a mean indicator
    )
    cases = {
        b"": "f.csv: het bestand is leeg",
        bad_rows: "f.csv rij 5 kolom 'n': n (het aantal zorgtrajecten) is verplicht (en nog 2 problemen)",
    }
    for data, dutch in cases.items():
        with pytest.raises(ExternalRefused) as caught:
            read_figures(data, file_name="f.csv")
        refused = caught.value
        assert refused.line("nl") == dutch
        assert refused.line("en") == str(refused)
        assert all(isinstance(p.rule, Rule) for p in refused.problems)
    assert [p.line("nl") for p in refused.problems[1:]] == [
        "f.csv rij 6 kolom 'observed': waarde '12': observed is groter dan n (10)",
        "f.csv rij 7 kolom 'observed': waarde '3': geldt niet voor een indicator van het type mean: laat leeg",
    ]


def test_every_reason_a_summary_gives_is_named_in_both_languages():
    """The reasons own_summary gives for what summary figures do not carry are read on Dutch pages: each has a
    message (the survival indicators' reason had none and showed in English)."""
    reasons = {value for name, value in vars(external).items() if name.endswith("_REASON")}
    assert reasons == set(external.REASON_KEYS)
    for reason in reasons:
        assert external.reason_text(reason, "nl") != reason != external.reason_text(reason, "en")


def test_a_workbook_with_a_password_is_refused_for_its_password():
    """An .xlsx saved with a password is a compound file: it was refused as a damaged ZIP archive."""
    from tests.test_import_fuzz import ENCRYPTED_WORKBOOK

    with pytest.raises(ExternalRefused, match="protected with a password"):
        read_figures(ENCRYPTED_WORKBOOK, file_name="feedback.xlsx")


FIGURES = "source,published,period,condition,indicator,definition_version,unit,n,observed,mean,sd,sum,sum_sq"


@pytest.mark.parametrize(
    ("row", "column", "value", "rule"),
    [
        # a unit's mean lies within what its patients' values can be (Catalog.value_range)
        ("colorectal_cancer,length_of_stay,1,X03,10,,-5,2,,", "mean", "-5", "lies between 0 and 365"),
        ("colorectal_cancer,qol_12m,1,X03,10,,140,2,,", "mean", "140", "lies between 0 and 100"),
        ("colorectal_cancer,cost_per_cycle,1,X03,10,,-1000,2,,", "mean", "-1000", "is 0 or more"),
        ("hip_osteoarthritis,oxford_12m,1,X03,10,,,,500,25010", "sum", "500", "this row's mean is 50"),
        ("hip_osteoarthritis,eq5d_change_12m,1,X03,10,,5,0.1,,", "mean", "5", "between \u22121.446 and 1.446"),
        ("prem_clinical,prem_rating,1,X03,40,,15,1,,", "mean", "15", "lies between 0 and 10"),
        ("prem_clinical,prem_nps,1,X03,40,,300,1,,", "mean", "300", "lies between \u2212100 and 100"),
        # nor can their spread: an sd of 1e200 days made the benchmark's limits infinite (every unit 'as expected')
        ("colorectal_cancer,length_of_stay,1,X03,10,,6,1e200,,", "sd", "1e200", "cannot spread this far"),
        ("colorectal_cancer,length_of_stay,1,X03,10,,,,50,1e300", "sum_sq", "1e300", "their sd is at most 192.564"),
        # a cost beyond the registry's own limit per care cycle; a sum whose square overflows (was OverflowError)
        ("colorectal_cancer,cost_per_cycle,1,X03,10,,1e160,1,,", "mean", "1e160", "between 0 and 1e+150"),
        ("colorectal_cancer,cost_per_cycle,1,X03,10,,,,1e200,1e300", "sum_sq", "1e300", "do not fit together"),
        # a survival indicator is not exchanged as summary figures: combine() left the row out unseen
        ("colorectal_cancer,survival_1y,1,X03,40,,,,,", "indicator", "survival_1y", "not exchanged"),
    ],
)
def test_figures_no_patients_can_have_are_refused(row, column, value, rule):
    """Before: a mean of -5 days' stay, 15 out of 10 or an Oxford score of 50 on its 0-48 scale was stored and
    drawn on the funnel, and a survival row stored and left out of every table without a word."""
    with pytest.raises(ExternalRefused) as caught:
        read_figures(_csv(f"national registry,2025-03-01,2024,{row}", header=FIGURES), file_name="f.csv")
    message = str(caught.value)
    assert message.startswith(f"f.csv row 2 column '{column}': value {value!r}"), message
    assert rule in message
    assert "\n" not in message
    assert caught.value.line("nl") != message  # the rule reads Dutch too


def test_means_at_the_ends_of_their_range_are_read():
    """Not over-refused: means on the range's ends, a negative change, a cost of 0, a rating of 10."""
    rows = [
        "colorectal_cancer,length_of_stay,1,X03,10,,0,0,,",
        "colorectal_cancer,qol_12m,1,X03,10,,100,0,,",
        "colorectal_cancer,summary_change_12m,1,X03,10,,-12.5,3,,",
        "colorectal_cancer,length_of_stay,1,X03,2,,182.5,258,,",  # one stay of 0 days and one of 365
        "colorectal_cancer,cost_per_cycle,1,X03,10,,,,0,0",
        "hip_osteoarthritis,oxford_12m,1,X03,10,,,,480,23040",
        "prem_clinical,prem_rating,1,X03,40,,10,0,,",
        "prem_clinical,prem_nps,1,X03,40,,-100,0,,",
    ]
    for row in rows:
        got = read_figures(_csv(f"national registry,2025-03-01,2024,{row}", header=FIGURES), file_name="f.csv")
        assert len(got.frame) == 1


@pytest.mark.parametrize(
    ("published", "period", "column", "rule"),
    [
        ("2099-01-01", "2024", "published", "a publication date in the future"),
        ("1900-01-01", "2024", "published", "a publication date before 1990-01-01"),
        ("2025-03-01", "2052", "period", "the period begins after the publication date (2025-03-01)"),
        ("2024-06-30", "2024Q3", "period", "the period begins after the publication date (2024-06-30)"),
    ],
)
def test_a_publication_dated_in_the_future_or_before_its_period_is_refused(engine, published, period, column, rule):
    """Before: figures published 2099-01-01, or of 2052 published in 2025, were stored as that period's."""
    row = f"national registry,{published},{period},colorectal_cancer,mortality_30d,1,X01,120,6,,,,"
    with pytest.raises(ExternalRefused) as caught:
        external.import_figures(engine, QUALITY, _csv(row, header=FIGURES), file_name="f.csv")
    message = str(caught.value)
    assert message.startswith(f"f.csv row 2 column '{column}':"), message
    assert rule in message
    assert (_count(engine, ExternalPublication), _count(engine, ExternalFigure)) == (0, 0)
    # a period that began before its publication date, even one still running, is read
    ok = "national registry,2024-06-30,2024,colorectal_cancer,mortality_30d,1,X01,120,6,,,,"
    assert read_figures(_csv(ok, header=FIGURES), file_name="f.csv").period == "2024"
