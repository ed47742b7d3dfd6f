"""Benchmarking against figures from outside: a national registry's feedback or a partner hospital's summary.

A hospital holds patient rows of its own patients only; its peers reach it as figures per unit and indicator
(n, observed, expected for yes/no indicators; n with mean and sd, or sum and sum of squares, for continuous
ones). This module reads such files with the care of a registry import (one problem refuses the whole file
with a one-line message naming file, row, column and value; nothing half-written), stores them with their
provenance (source, publication date, period, definition version), writes the own hospital's summary in the
same format (small numbers withheld by the export rule of vbhc.reports.privacy) and combines the own units'
locally computed figures with the external units into the indicator table the funnel, caterpillar and verdict
read, with the benchmark population named ("national registry 2024, 71 hospitals").

What summary figures carry (`combine` says it for every indicator it cannot carry):
- yes/no indicators: crude rates and their limits exactly; case-mix adjusted O/E only when every unit's
  expected comes from the same model (the benchmark's: a hospital's own model always gives O/E = 1 on its
  own patients), else the comparison is on crude rates;
- continuous indicators: crude means and their limits; the adjusted mean needs the case-mix model's residual
  sd, which summary figures do not carry;
- shrinkage estimates and model diagnostics need patient rows: never carried.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import math
import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import Engine, delete, insert, or_, select
from sqlalchemy.exc import SQLAlchemyError

from vbhc import audit
from vbhc.access import (
    Permission,
    Viewer,
    export_file,
    indicator_rows,
    may_see_unit,
    require,
    require_file_export,
    sees_all_units,
)
from vbhc.casemix import CaseMixModel
from vbhc.catalog import BINARY_KINDS, CONTINUOUS_KINDS, SURVIVAL_KINDS, Catalog, Indicator, default_catalog
from vbhc.i18n import t
from vbhc.indicators import BASE_COLUMNS, TAIL_COLUMNS, IndicatorResult, indicator_cycles, indicators_from_summary
from vbhc.ingest.directive import SEPARATORS, first_line_of, separator_directive
from vbhc.ingest.problems import (
    EARLIEST_DATE,
    EXCEL_ERRORS,
    Number,
    Problem,
    Rule,
    audited_problems,
    case_twins,
    invisible_character,
    lookalike_character,
    normalise_name,
    says_missing,
    short,
    shown_file,
)
from vbhc.models import ExternalFigure, ExternalPublication
from vbhc.registry import hospital_of, parse_period, unit_ids, unit_parts
from vbhc.reports.privacy import SuppressionRule, suppression_mask
from vbhc.safety import FORMULA_TRIGGERS, neutralise_formula, safe_csv
from vbhc.settings import max_rows, max_upload_mb
from vbhc.shrinkage import COLUMNS as SHRINKAGE_COLUMNS

__all__ = [
    "COLUMNS",
    "NUMBER_COLUMNS",
    "REQUIRED_COLUMNS",
    "SHEET",
    "ExternalBenchmark",
    "ExternalFigures",
    "ExternalImport",
    "ExternalRefused",
    "OwnSummary",
    "benchmark_population",
    "benchmarked",
    "combine",
    "export_summary",
    "external_benchmark",
    "figures",
    "grid_withheld",
    "import_figures",
    "latest_figures",
    "own_summary",
    "population_of",
    "publications",
    "read_figures",
    "reason_text",
    "stamp",
    "suppressed_summary",
    "write_figures",
]

#: Provenance columns: the same in every row of a file (one file is one publication).
PROVENANCE_COLUMNS = ("source", "published", "period")
#: Number columns: counts, expected events, means; empty where they do not apply.
NUMBER_COLUMNS = ("n", "observed", "expected", "n_adjusted", "observed_adjusted", "mean", "sd", "sum", "sum_sq")
#: Columns of the file format, in order.
COLUMNS = (*PROVENANCE_COLUMNS, "condition", "indicator", "definition_version", "unit", *NUMBER_COLUMNS)
REQUIRED_COLUMNS = (*PROVENANCE_COLUMNS, "condition", "indicator", "definition_version", "unit", "n")
#: The sheet of a workbook that holds the figures (a workbook with one sheet may name it otherwise).
SHEET = "external_figures"
#: Unit codes as the registry writes them: a hospital, or hospital/department.
_UNIT = re.compile(r"^[A-Za-z0-9_-]{1,40}(/[A-Za-z0-9_-]{1,40})?$")
#: Numbers are written with the digits 0-9, as in a registry file: \d (and float()) also read full-width １２
#: and other scripts' digits
_NUMBER = re.compile(r"^[+-]?([0-9]+([.,][0-9]+)?|[.,][0-9]+)([eE][+-]?[0-9]+)?$")
#: 1.250: a decimal or a thousands separator? Not 0.125: no one groups a number's thousands after a 0 (as the
#: registry import reads it, vbhc.ingest.validate.DecimalMarks)
_UNDECIDED = re.compile(r"^[+-]?(?!0[.,])[0-9]{1,3}[.,][0-9]{3}$")
_MAX_TEXT = 200
_MB = 1024 * 1024
#: Why a continuous indicator is compared on crude means among external units.
CONTINUOUS_REASON = (
    "the case-mix adjusted mean needs the model's residual sd, which summary figures do not carry: "
    "compared on crude means"
)
#: Why an own yes/no indicator has no expected figures without the benchmark's model.
EXPECTED_REASON = "expected needs the benchmark's case-mix model (a model of the own patients only gives O/E = 1)"
#: Why shrinkage and model diagnostics are empty.
PATIENT_ROWS_REASON = "shrinkage estimates and model diagnostics need patient rows"
#: Why a yes/no indicator is compared on crude rates although some units came with expected figures.
MIXED_EXPECTED_REASON = "not every unit has expected figures under the same model: compared on crude rates"
#: Why a survival indicator is left out of summary figures.
SURVIVAL_REASON = "survival figures are not exchanged as summaries (they need follow-up per patient)"
#: The message key (vbhc/i18n) of each reason: the pages and reports say it in the reader's language.
REASON_KEYS = {
    SURVIVAL_REASON: "external.reason_survival",
    CONTINUOUS_REASON: "external.reason_continuous",
    EXPECTED_REASON: "external.reason_expected",
    PATIENT_ROWS_REASON: "external.reason_patient_rows",
    MIXED_EXPECTED_REASON: "external.reason_mixed_expected",
}
#: Columns of the indicator table that need patient rows: never carried by summary figures.
_PATIENT_ONLY = (
    *SHRINKAGE_COLUMNS,
    "model_c_statistic",
    "model_calibration_slope",
    "model_r_squared",
    "model_n_excluded",
)


# --------------------------------------------------------------------------------------------- problems
class ExternalRefused(ValueError):
    """The file had problems; nothing was stored. `problems` lists every one; the message names the first."""

    def __init__(self, file: str, problems: Sequence[Problem]) -> None:
        self.file, self.problems = shown_file(file), list(problems)
        more = len(self.problems) - 1
        first = str(self.problems[0]) if self.problems else self.file
        super().__init__(first + (f" (and {more} more problem{'s' if more > 1 else ''})" if more > 0 else ""))

    def line(self, lang: str) -> str:
        """The message in `lang` (str() is the English one): the first problem, and how many more."""
        from vbhc.i18n import t

        more = len(self.problems) - 1
        first = self.problems[0].line(lang) if self.problems else self.file
        return first + (" " + t("problem.more", lang, count=more) if more > 0 else "")


@dataclass
class ExternalFigures:
    """A validated file: its provenance, the figures (one row per condition x indicator x unit, numbers as
    floats, NaN where empty) and warnings (figures accepted under another definition version)."""

    file: str
    sha256: str
    source: str
    published: dt.date
    period: str
    frame: pd.DataFrame
    warnings: list[str] = field(default_factory=list)

    @property
    def units(self) -> int:
        return int(self.frame["unit"].nunique())


@dataclass
class ExternalImport:
    """What an accepted file did: the stored publication, its rows, and the older ones it replaced."""

    publication_id: int
    rows: int
    replaced: int
    warnings: list[str]


# --------------------------------------------------------------------------------------------- reading
def _records(
    data: bytes, file: str, required: Sequence[str] = (), not_read: list[str] | None = None
) -> tuple[str | None, list[tuple[int, list[str]]], list[Problem], dict[tuple[int, int], str]]:
    """(sheet, rows as text with the row numbers a person sees, the file's problems, and the number format of
    each number cell that may show another text than its number by (row, column position)) of a CSV or XLSX
    file (vbhc.ingest.read.shown_cell). `required`: the header's columns, which decide a CSV's separator and tell
    a workbook's other sheet of figures (refused) from a sheet of notes, whose name goes to `not_read`."""

    def refuse(rule: str, sheet: str | None = None, row: int | None = None, column: str | None = None):
        return None, [], [Problem(file, sheet, row, column, None, rule)], {}

    if not data.strip():
        return refuse(Rule("external.file_empty"))
    if len(data) > max_upload_mb() * _MB:
        return refuse(Rule("external.file_too_large", limit=Number(max_upload_mb())))
    if data.startswith(b"\xd0\xcf\x11\xe0"):  # a compound file: an old .xls or a workbook with a password
        from vbhc.ingest.read import _check_xlsx_container

        return refuse(_check_xlsx_container(io.BytesIO(data)))
    if data.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        # here, not at module level: the dashboard's pages import this module, and openpyxl and the import
        # machinery take a few tenths of a second to load at a server's start
        from openpyxl import load_workbook

        from vbhc.ingest.layout import excel_unescape, same_sheet_names, sheet_layout
        from vbhc.ingest.read import (
            DamagedRow,
            _check_xlsx_container,
            format_hides,
            sheet_looks_like_table,
            sheet_rows,
            shown_cell,
        )

        why = _check_xlsx_container(io.BytesIO(data))
        if why is not None:
            return refuse(why)
        try:
            wb = load_workbook(io.BytesIO(data), read_only=True, data_only=False)
        except Exception:  # openpyxl raises many kinds for a damaged workbook
            return refuse(Rule("external.workbook_damaged"))
        try:
            for name, earlier in same_sheet_names(wb.sheetnames):  # Excel calls it damaged: which sheet is unknown
                return refuse(Rule("read.sheet_name_twice", other=repr(earlier)), sheet=name)
            # each sheet's name as its tab shows it (Excel's _xHHHH_ codes read) -> as the workbook writes it
            titles = {excel_unescape(title): title for title in wb.sheetnames}
            sheet = SHEET if SHEET in titles else next(iter(titles)) if len(titles) == 1 else None
            if sheet is None:
                return refuse(Rule("external.sheet_missing", sheet=repr(SHEET)))
            rows, problems, formatted = [], [], {}
            ws = wb[titles[sheet]]
            if getattr(ws, "sheet_state", "visible") != "visible":  # the one sheet read is one no reader sees
                return refuse(Rule("read.sheet_hidden"), sheet=sheet)
            # the other sheets are not read: one of figures is refused naming it (its rows would silently not be
            # imported), one of notes (a feedback file's explanation, a legend) is named in the summary
            for other in (name for name in titles if name != sheet):
                header = sheet_looks_like_table(wb[titles[other]], required)
                if header is not None:
                    return refuse(Rule("read.other_sheet_has_rows", read=repr(sheet)), sheet=other, row=header)
                if not_read is not None:
                    not_read.append(other)
            # the sheet's layout first: a shared string openpyxl reads otherwise than Excel shows it is read through it
            layout = sheet_layout(io.BytesIO(data), titles[sheet])
            filled: list[list[int]] = []  # each row's filled positions, for the sheet's layout
            try:  # a cell openpyxl cannot read (Excel calls the file damaged): refused naming its row
                for number, raw in enumerate(sheet_rows(ws, io.BytesIO(data), titles[sheet]), start=1):
                    filled.append([position for position, cell in enumerate(raw) if cell.value not in (None, "")])
                    cells = []
                    for position, cell in enumerate(raw):
                        value = cell.value
                        if value is not None and not isinstance(value, str | int | float | bool | dt.date):
                            problems.append(Problem(file, sheet, number, None, None, Rule("external.not_plain_value")))
                            cells.append("")
                            continue
                        if isinstance(value, str) and value in layout.unclear_texts:
                            shown = " | ".join(layout.unclear_texts[value])
                            # the column's name in the header, the first row with a value
                            names = next((named for _, named in rows if any(c.strip() for c in named)), [])
                            name = names[position].strip() if position < len(names) else ""
                            rule = Rule("read.cell_text_unclear_at", position=position + 1)
                            rule = Rule("read.cell_text_unclear") if name else rule
                            problems.append(Problem(file, sheet, number, name or None, shown, rule))
                            cells.append("")
                            continue
                        text, number_format = shown_cell(cell, layout)
                        if (hiding := format_hides(cell)) is not None:  # ;;; hides it, #,##0, shows 1500 as 2
                            names = next((named for _, named in rows if any(c.strip() for c in named)), [])
                            name = names[position].strip() if position < len(names) else ""
                            rule = Rule("read.cell_format_hides_at", format=hiding, position=position + 1)
                            rule = Rule("read.cell_format_hides", format=hiding) if name else rule
                            problems.append(Problem(file, sheet, number, name or None, text, rule))
                            cells.append("")
                            continue
                        if number_format is not None:
                            formatted[(number, position)] = number_format
                        typed = isinstance(cell.value, int | float) and not isinstance(cell.value, bool)
                        cells.append(NumberCell(text) if typed else text)
                    rows.append((number, cells))
            except DamagedRow as damaged:
                if layout.numbers_not_excel:  # a number openpyxl cannot read (nan, infinity): named as written
                    return None, [], [Problem(file, sheet, row, None, None, Rule(f"read.{what}", **values))
                                      for what, row, _, values in layout.unseen([])], {}  # fmt: skip
                return refuse(Rule("read.row_damaged", error=damaged.error), sheet=sheet, row=damaged.row)
            # merged cells, hidden rows and columns holding values: the reader sees otherwise than the cells read
            unseen = layout.unseen(filled)
            problems[:0] = [Problem(file, sheet, row, None, None, Rule(f"read.{what}", **values))
                            for what, row, _, values in unseen]  # fmt: skip
            return sheet, rows, problems, formatted
        finally:
            wb.close()
    if b"\x00" in data:
        return refuse(Rule("external.not_text"))
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        return refuse(Rule("external.not_utf8", byte=exc.start + 1))
    # Excel's separator line (sep=;) sets the separator and is no row; the rows keep the file's line numbers
    first = first_line_of(text)
    directive, separator = separator_directive(first)
    if directive and separator is None:
        return None, [], [Problem(file, None, 1, None, first, Rule("read.separator_directive_other"))], {}
    lines = text.splitlines()[int(directive) :]
    header = next((line for line in lines if line.strip()), "")
    from vbhc.ingest.read import HEADER_SEARCH_ROWS

    near = lines[: HEADER_SEARCH_ROWS + 1]
    # the header decides the separator, not a title or note above it ('Terugkoppeling 2024', 'Export; registry
    # H01; 2026'): the first of the next few lines that, split on a separator, names every required column; else
    # a line without one (a title) gives way to the line with the most separators. read_table then refuses the
    # rows above the header naming it (the title's own separator split the table's header wrongly)
    named = next((line for line in near if _names_required(line, required)), None)
    if named is not None:
        header = named
    elif not any(d in header for d in SEPARATORS):
        header = max(near, key=lambda line: max(line.count(d) for d in SEPARATORS), default=header)
    counts = {d: header.count(d) for d in SEPARATORS}
    best = max(counts.values())
    if separator is not None:
        delimiter = separator
    elif best == 0:
        return refuse(Rule("external.no_header"), row=1)
    elif list(counts.values()).count(best) > 1:
        return refuse(Rule("external.separator_unclear"), row=1)
    else:
        delimiter = max(counts, key=counts.__getitem__)
    rows = []
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    try:
        for fields in reader:
            if directive and reader.line_num == 1:
                continue
            rows.append((reader.line_num, fields))
    except csv.Error as exc:
        # the csv module's own words are English and name no row: the row where the value starts, and why
        start = rows[-1][0] + 1 if rows else 1
        if "expected after" in str(exc):
            return refuse(Rule("external.text_after_quote"), row=start)
        if "end of data" in str(exc):
            return refuse(Rule("external.quote_not_closed"), row=start)
        return refuse(Rule("external.csv_malformed"), row=start)
    return None, rows, [], {}


def _line(data: bytes, number: int) -> str:
    """A CSV file's line `number` as written (a title above the header, named whole in its refusal)."""
    lines = io.StringIO(data.decode("utf-8-sig", "replace"), newline="")
    return next((line.strip().replace("\t", " ") for n, line in enumerate(lines, start=1) if n == number), "")


def _names_required(line: str, required: Sequence[str]) -> bool:
    """Whether the CSV line, split on one of the separators, names every one of the `required` columns."""
    if not required:
        return False
    for delimiter in SEPARATORS:
        try:
            fields = next(csv.reader([line[: 1 << 20]], delimiter=delimiter), [])
        except csv.Error:
            continue
        if set(required) <= {normalise_name(f) for f in fields}:
            return True
    return False


class NumberCell(str):
    """The text of a workbook's number cell: the number as Python writes it, whose point is no decimal mark a
    person wrote (Dutch Excel shows 5.125 as 5,125) and never a thousands separator. It decides nothing about
    the file's decimal mark (_decimal_mark) and is read with its point (_number)."""

    __slots__ = ()


def _kept(cell: str, text: str) -> str:
    """`text`, read from `cell`, as a NumberCell again when the cell was one."""
    return NumberCell(text) if isinstance(cell, NumberCell) else text


def _plain(text: str) -> str:
    """A text cell without the apostrophe an export put before a formula trigger (vbhc.safety)."""
    text = text.strip()
    if text.startswith("'") and text[1:].lstrip().startswith(FORMULA_TRIGGERS):
        return text[1:]
    return text


def read_table(
    data: bytes,
    file: str,
    columns: Sequence[str],
    required: Sequence[str],
    numbers: Sequence[str],
    free_text: Sequence[str] = ("source",),
    not_read: list[str] | None = None,
) -> tuple[list[tuple[int, dict[str, str]]], list[Problem], Callable[[int | None, str | None, str | None, str], None]]:
    """The rows of a CSV or XLSX file as {column: text} with their row numbers, after the checks every external
    file gets (size, shape, header, values under no column, formula-like text, and in every column but the
    numbers and `free_text` a code that reads as another: vbhc.ingest.problems.lookalike_character); raises
    ExternalRefused on the first kind of problem. Returns the records, the list later problems go to and the
    function that adds one; a workbook's sheets of notes, not read, are named in `not_read`."""
    sheet, rows, problems, formatted = _records(data, file, required, not_read)
    if problems:
        raise ExternalRefused(file, problems)
    rows = [(number, cells) for number, cells in rows if any(c.strip() for c in cells)]
    if not rows:
        raise ExternalRefused(file, [Problem(file, sheet, None, None, None, Rule("external.file_empty"))])
    if len(rows) == 1:  # a header without figures would store an empty publication
        raise ExternalRefused(file, [Problem(file, sheet, rows[0][0], None, None, Rule("external.no_rows"))])
    if len(rows) - 1 > max_rows():
        rule = Rule("external.too_many_rows", count=len(rows) - 1, limit=Number(max_rows()))
        raise ExternalRefused(file, [Problem(file, sheet, None, None, None, rule)])
    if not any(normalise_name(c) in columns for c in rows[0][1]):
        # a title or note above the table: refused naming it and the header's row (a note may say how to read
        # the values), where its first row was read as the header ('unknown column' for the title)
        from vbhc.ingest.read import header_below, row_text

        below = header_below(iter(rows[1:]), rows[0][0], required)
        if below is not None:
            text = row_text(rows[0][1]) if sheet else _line(data, rows[0][0]) or row_text(rows[0][1])
            rule = Rule("read.rows_above_header", header=below)
            raise ExternalRefused(file, [Problem(file, sheet, rows[0][0], None, short(text, 60), rule)])
    header_row, raw_header = rows[0]
    header = [normalise_name(c) for c in raw_header]  # "Definition version" is definition_version
    while header and header[-1] == "":
        header.pop()

    def problem(row: int | None, column: str | None, value: str | None, rule: str) -> None:
        problems.append(Problem(file, sheet, row, column, value or None, rule))  # an empty cell shows no value

    for position, name in enumerate(header):
        if name not in columns:
            problem(
                header_row,
                raw_header[position] or f"#{position + 1}",
                None,
                Rule("external.unknown_column", columns=", ".join(columns)),
            )
    for name in dict.fromkeys(n for n in header if n and header.count(n) > 1):  # an empty name is unknown, above
        # named with its positions, as the registry import does: "a column appears twice" sent its reader through
        # every header cell (and "Unit" and "unit" are one column here, which a reader does not see)
        positions = [i for i, n in enumerate(header, start=1) if n == name]
        shown = ", ".join(str(i) for i in positions)
        rule = Rule("external.column_twice", times=len(positions), positions=shown)
        problem(header_row, raw_header[positions[0] - 1].strip() or name, None, rule)
    for name in required:
        if name not in header:
            problem(header_row, name, None, Rule("external.column_missing"))
    if problems:
        raise ExternalRefused(file, problems)

    records: list[tuple[int, dict[str, str]]] = []
    for number, cells in rows[1:]:
        extra = [c for c in cells[len(header) :] if c.strip()]
        if extra:
            problem(number, None, extra[0], Rule("external.value_without_column"))
        raw = dict(zip(header, [*cells, *[""] * len(header)], strict=False))
        for position, name in enumerate(header):
            value = raw[name].strip()
            if name not in numbers and (number, position) in formatted:  # unit 5 shown as 5.0, 1.00E+05, ...
                problem(number, name, value, Rule("external.id_number_formatted", format=formatted[(number, position)]))
            elif name not in numbers and value.startswith(FORMULA_TRIGGERS) and not value.startswith("'"):
                problem(number, name, value, Rule("external.looks_like_formula"))
            elif value.upper() in EXCEL_ERRORS:
                problem(number, name, value, Rule("external.excel_error"))
            elif (code := invisible_character(value)) is not None:  # "X01" and "X01" + U+200B look the same
                problem(number, name, value, Rule("external.invisible_character", code=code))
            elif name not in numbers and name not in free_text and (odd := lookalike_character(value)) is not None:
                problem(number, name, value, Rule(f"external.{odd[0]}", character=odd[1]))  # a unit С01 for C01
        # in composed form (NFC): a source named with é as e + an accent mark is the source named with é
        records.append(
            (number, {name: _kept(raw[name], unicodedata.normalize("NFC", _plain(raw[name]))) for name in header})
        )
    return records, problems, problem


def read_figures(
    source: Path | bytes, *, file_name: str | None = None, catalog: Catalog | None = None
) -> ExternalFigures:
    """Read and validate a file of external figures; raises ExternalRefused naming every problem's place."""
    catalog = catalog or default_catalog()
    data = source.read_bytes() if isinstance(source, Path) else bytes(source)
    file = file_name or (source.name if isinstance(source, Path) else "upload")
    not_read: list[str] = []
    records, problems, problem = read_table(data, file, COLUMNS, REQUIRED_COLUMNS, NUMBER_COLUMNS, not_read=not_read)
    mark = _decimal_mark(records, problem)
    frame_rows = [_row(number, values, mark, catalog, problem) for number, values in records]
    warnings = _versions(records, catalog, problem, file)
    if not_read:  # a feedback file's notes sheet: read the figures, say which sheets were not
        names = ", ".join(repr(name) for name in not_read)
        warnings.append(Rule("read.sheets_not_read", count=len(not_read), sheets=names))
    provenance = _provenance(records, problem)
    _duplicates(records, problem)
    _unit_case(records, problem)
    if problems:
        raise ExternalRefused(file, problems)
    frame = pd.DataFrame(
        frame_rows, columns=["row", "condition", "indicator", "definition_version", "unit", *NUMBER_COLUMNS]
    )
    source_text, published, period = provenance
    return ExternalFigures(file, audit.sha256_of(data), source_text, published, period, frame, warnings)


def _decimal_mark(records: list[tuple[int, dict[str, str]]], problem, numbers: Sequence[str] = NUMBER_COLUMNS) -> str:
    """The file's decimal mark, read from its numbers ('12.5' or '2,5'), never guessed: '1.250' decides
    nothing (it could be a thousands separator) and a file that mixes both marks is refused."""
    decided: dict[str, tuple[int, str, str]] = {}
    undecided: tuple[int, str, str] | None = None
    for number, values in records:
        for name in numbers:
            text = values.get(name, "")
            if isinstance(text, NumberCell) or not _NUMBER.match(text) or ("." not in text and "," not in text):
                continue
            if _UNDECIDED.match(text):
                undecided = undecided or (number, name, text)
            else:
                decided.setdefault("." if "." in text else ",", (number, name, text))
    if len(decided) > 1:
        number, name, text = decided[","]
        problem(number, name, text, Rule("external.decimal_mark_mixed"))
        return "."
    if not decided and undecided is not None:
        number, name, text = undecided
        problem(number, name, text, Rule("external.decimal_mark_unclear"))
    return next(iter(decided), ".")


def _number(text: str, mark: str) -> float | None:
    """The number `text` writes with the file's decimal `mark` (a workbook's number cell with its point)."""
    mark = "." if isinstance(text, NumberCell) else mark
    if not _NUMBER.match(text) or (mark == "." and "," in text) or (mark == "," and "." in text):
        return None
    value = float(text.replace(",", "."))
    return value if math.isfinite(value) else None


def _row(number: int, values: dict[str, str], mark: str, catalog: Catalog, problem) -> list[object]:
    """One validated row as [row, condition, indicator, version, unit, numbers...] (problems reported)."""
    nums: dict[str, float] = {}
    for name in NUMBER_COLUMNS:
        text = values.get(name, "")
        if text == "":
            nums[name] = math.nan
            continue
        value = _number(text, mark)
        if value is None:
            # "n.v.t." or "-" for a missing value: the refusal says a missing value is an empty cell
            problem(
                number,
                name,
                text,
                Rule("external.not_a_number_missing" if says_missing(text) else "external.not_a_number"),
            )
            nums[name] = math.nan
        else:
            nums[name] = value
    condition, indicator, unit = values["condition"], values["indicator"], values["unit"]
    ind = None
    if condition not in catalog.conditions and condition not in catalog.prems:
        known = ", ".join([*catalog.conditions, *catalog.prems])
        problem(number, "condition", condition, Rule("external.unknown_condition", known=known))
    else:
        try:
            ind = catalog.indicator_set(condition).indicator(indicator)
        except KeyError:
            problem(number, "indicator", indicator, Rule("external.unknown_indicator", condition=condition))
    if not _UNIT.match(unit):
        problem(number, "unit", unit, Rule("external.unit_code"))
    if ind is not None:
        _check_numbers(number, ind, nums, values, problem, catalog.value_range(condition, ind))
    return [number, condition, indicator, values["definition_version"], unit, *(nums[c] for c in NUMBER_COLUMNS)]


def _check_numbers(
    number: int,
    ind: Indicator,
    nums: dict[str, float],
    values: dict[str, str],
    problem,
    bounds: tuple[float, float] = (-math.inf, math.inf),
) -> None:
    """A row's numbers against each other and the indicator (`bounds`: the values a unit's mean can take,
    Catalog.value_range)."""

    def given(name: str) -> bool:
        return not math.isnan(nums[name])

    def whole(name: str) -> bool:
        value = nums[name]
        if given(name) and (value < 0 or not float(value).is_integer()):
            problem(number, name, values[name], Rule("external.not_whole"))
            return False
        return given(name)

    if values.get("n", "") == "":
        problem(number, "n", "", Rule("external.n_required"))
        return
    if not whole("n"):
        return
    n = nums["n"]
    if ind.kind in SURVIVAL_KINDS:  # combine() could not use them: refused rather than stored and left out unseen
        problem(number, "indicator", ind.id, Rule("external.survival_not_exchanged", indicator=ind.id))
        return
    binary = ind.kind in BINARY_KINDS or ind.kind == "response_rate"
    allowed = {"n"}
    if binary:
        allowed |= {"observed", "expected", "n_adjusted", "observed_adjusted"}
        if not given("observed"):
            problem(number, "observed", "", Rule("external.observed_required", indicator=ind.id, column="observed"))
        elif whole("observed") and nums["observed"] > n:
            rule = Rule("external.more_than_n", column="observed", n=Number(n))
            problem(number, "observed", values["observed"], rule)
        n_adj = nums["n_adjusted"] if given("n_adjusted") else n
        if whole("n_adjusted") and n_adj > n:
            problem(number, "n_adjusted", values["n_adjusted"], Rule("external.n_adjusted_above_n"))
        if whole("observed_adjusted") and nums["observed_adjusted"] > n_adj:
            problem(number, "observed_adjusted", values["observed_adjusted"], Rule("external.observed_adjusted_above"))
        if (given("n_adjusted") or given("observed_adjusted")) and not given("expected"):
            problem(number, "expected", "", Rule("external.expected_required", column="expected"))
        if given("n_adjusted") != given("observed_adjusted"):
            problem(number, "n_adjusted", values.get("n_adjusted", ""), Rule("external.adjusted_together"))
        if given("expected"):
            if nums["expected"] < 0:
                problem(number, "expected", values["expected"], Rule("external.negative", column="expected"))
            elif nums["expected"] > n_adj:
                problem(number, "expected", values["expected"], Rule("external.expected_above_n"))
            if ind.kind == "response_rate":
                problem(number, "expected", values["expected"], Rule("external.response_rate_expected"))
    elif ind.kind in CONTINUOUS_KINDS:
        allowed |= {"mean", "sd", "sum", "sum_sq"}
        pairs = (given("mean") and given("sd"), given("sum") and given("sum_sq"))
        if n > 0 and not any(pairs):
            columns = {"mean": "mean", "sd": "sd", "sum": "sum", "sum_sq": "sum_sq"}  # names, not words to translate
            rule = Rule("external.continuous_required", indicator=ind.id, **columns)
            problem(number, "mean", values.get("mean", ""), rule)
        if given("sd") and nums["sd"] < 0:
            problem(number, "sd", values["sd"], Rule("external.negative", column="sd"))
        if pairs[1]:
            with np.errstate(over="ignore", invalid="ignore"):  # Python's float ** raised OverflowError (a crash)
                spread = float(np.float64(nums["sum_sq"]) - (np.float64(nums["sum"]) ** 2 / n if n > 0 else 0.0))
            if spread < -1e-9 * max(1.0, abs(nums["sum_sq"])):
                problem(number, "sum_sq", values["sum_sq"], Rule("external.sum_sq_too_small", sum="sum"))
        # a unit's mean lies within what its patients' values can be (a stay of -5 days, an Oxford score of 200
        # on its 0-48 scale, a rating of 15 out of 10 is no mean of any patients): the funnel drew it as one
        from vbhc.costs import MAX_CYCLE_COST  # a value without an upper end (a cost): the registry's own limit

        finite = (max(bounds[0], -MAX_CYCLE_COST), min(bounds[1], MAX_CYCLE_COST))
        for name, mean in (("mean", nums["mean"]), ("sum", nums["sum"] / n if n > 0 else math.nan)):
            if given(name) and not math.isnan(mean) and not bounds[0] <= mean <= bounds[1]:
                problem(number, name, values[name], _outside(ind.id, mean, bounds))
            elif given(name) and not math.isnan(mean) and not finite[0] <= mean <= finite[1]:
                problem(number, name, values[name], _outside(ind.id, mean, finite))
        # and so does their spread: values between lo and hi have an sd of at most (hi - lo) / 2 (times
        # sqrt(n / (n - 1)) for a sample's); an unbounded one (a cost) at most MAX_CYCLE_COST, as the registry's.
        # An sd of 1e200 for a stay of 0-365 days made the benchmark's limits infinite: every unit 'as expected'
        limit = _sd_limit(bounds, n)
        implied = {"sd": nums["sd"]}
        if pairs[1] and n > 1:
            with np.errstate(over="ignore", invalid="ignore"):
                square = np.float64(nums["sum"]) ** 2 / n
                implied["sum_sq"] = float(np.sqrt(max(np.float64(nums["sum_sq"]) - square, 0.0) / (n - 1)))
        for name, sd in implied.items():
            if given(name) and not math.isnan(sd) and sd > limit:
                rule = Rule("external.sd_too_large", indicator=ind.id, sd=_shown_bound(sd), limit=_shown_bound(limit))
                problem(number, name, values[name], rule)
    for name in NUMBER_COLUMNS:
        if name not in allowed and given(name):
            problem(number, name, values[name], Rule("external.not_applicable", kind=ind.kind))


def _shown_bound(value: float) -> Number | str:
    """A range end or mean as the catalog writes it (-0.446, 48), grouped in the reader's language; a number
    too large to write out is shown in exponent form."""
    text = f"{value:.6g}"
    if "e" in text:
        return text
    decimals = len(text.split(".")[1]) if "." in text else 0
    return Number(float(text), decimals)


def _sd_limit(bounds: tuple[float, float], n: float) -> float:
    """The largest sd `n` values within `bounds` can have (half of them at each end), with a margin for a
    published sd's rounding; MAX_CYCLE_COST for values without an upper end (their squares stay finite)."""
    from vbhc.costs import MAX_CYCLE_COST

    low, high = bounds
    if math.isinf(low) or math.isinf(high):
        return MAX_CYCLE_COST
    spread = (high - low) / 2 * (math.sqrt(n / (n - 1)) if n > 1 else 1.0)
    return spread * (1 + 1e-3) + 1e-9


def _outside(indicator: str, mean: float, bounds: tuple[float, float]) -> Rule:
    """The rule for a mean outside the indicator's possible values: the range, or its lower end alone."""
    shown = _shown_bound(mean)
    if math.isinf(bounds[1]):
        return Rule("external.mean_below", indicator=indicator, mean=shown, low=_shown_bound(bounds[0]))
    low, high = _shown_bound(bounds[0]), _shown_bound(bounds[1])
    return Rule("external.mean_out_of_range", indicator=indicator, mean=shown, low=low, high=high)


def _versions(records: list[tuple[int, dict[str, str]]], catalog: Catalog, problem, file: str) -> list[str]:
    """Figures under another definition version than the catalog's: refused, or a warning, as the catalog says."""
    warnings: list[str] = []
    for number, values in records:
        version = values["definition_version"]
        if not version or len(version) > 20:
            problem(number, "definition_version", version, Rule("external.version_required"))
            continue
        try:
            ind = catalog.indicator_set(values["condition"]).indicator(values["indicator"])
        except KeyError:
            continue  # reported by _row
        if version == ind.version:
            continue
        message = Rule("external.other_version_warned", indicator=ind.id, version=version, catalog_version=ind.version)
        if ind.other_version == "refuse":
            rule = Rule("external.version_unknown", catalog_version=ind.version)
            problem(number, "definition_version", version, rule)
        elif message not in warnings:
            warnings.append(message)
    return warnings


def _provenance(records: list[tuple[int, dict[str, str]]], problem) -> tuple[str, dt.date, str]:
    """Source, publication date and period: given, the same in every row, and readable."""
    first: dict[str, str] = {}
    for number, values in records:
        for name in PROVENANCE_COLUMNS:
            value = values[name]
            if not value:
                problem(number, name, value, Rule("external.provenance_required", column=name))
            elif len(value) > _MAX_TEXT:
                problem(number, name, value, Rule("external.text_too_long", count=_MAX_TEXT))
            elif first.setdefault(name, value) != value:
                problem(
                    number,
                    name,
                    value,
                    Rule("external.provenance_differs", column=name, first=repr(first[name])),
                )
    published = dt.date(1900, 1, 1)
    dated = False
    if "published" in first:
        try:
            published = _published(first["published"])
            dated = True
        except ValueError:
            problem(records[0][0], "published", first["published"], Rule("external.not_a_date"))
    if dated and published > dt.date.today():  # as every registry date: none in the future, none before 1990
        problem(records[0][0], "published", first["published"], Rule("external.published_future"))
        dated = False
    elif dated and published < EARLIEST_DATE:
        floor = EARLIEST_DATE.isoformat()
        problem(records[0][0], "published", first["published"], Rule("external.published_too_early", floor=floor))
        dated = False
    if "period" in first:
        try:
            period = parse_period(first["period"])
        except ValueError:
            problem(records[0][0], "period", first["period"], Rule("external.not_a_period"))
        else:
            # figures of a period are counted after it begins: a period starting after the publication date is
            # a typo in one of the two (2052 for 2025), and its figures would be compared as that period's
            if dated and period is not None and period.start > published:
                rule = Rule("external.period_after_published", published=published.isoformat())
                problem(records[0][0], "period", first["period"], rule)
    return first.get("source", ""), published, first.get("period", "")


#: A date as the format writes it, year first, with the time a workbook's date cell may carry; Python's
#: fromisoformat also reads 20250301 and the ISO week 2025-W05 (a Monday no one wrote)
_DATE_TEXT = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}(?: [0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]{1,6})?)?)?")


def _published(text: str) -> dt.date:
    """A publication date as written in full: 2025-03-01, or a date with its time (a workbook's date cell); the
    first ten characters of '2025-03-01xyz' are not what the cell says."""
    if not _DATE_TEXT.fullmatch(text):
        raise ValueError(text)
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        return dt.datetime.fromisoformat(text).date()


def _duplicates(records: list[tuple[int, dict[str, str]]], problem) -> None:
    seen: dict[tuple[str, str, str], int] = {}
    for number, values in records:
        key = (values["condition"], values["indicator"], values["unit"])
        if key in seen:
            problem(number, "unit", values["unit"], Rule("external.duplicate_unit", indicator=key[1], row=seen[key]))
        else:
            seen[key] = number


def _unit_case(records: list[tuple[int, dict[str, str]]], problem, known: Sequence[str] | set[str] = ()) -> None:
    """A unit code differing from an earlier row's, or a `known` one, only in case (X01 and x01): one unit to a
    reader, two units among the benchmark's. Refused naming the other spelling rather than merged: the file's
    sender knows which is meant (unit codes are keys, compared as written everywhere else)."""
    twins = case_twins((values["unit"] for _, values in records), known)
    for number, values in records:
        if values["unit"] in twins:
            problem(number, "unit", values["unit"], Rule("external.unit_case", known=twins[values["unit"]]))


def _stored_unit_case(engine: Engine, figures_: ExternalFigures) -> None:
    """ExternalRefused when a unit of the file differs only in case from a unit already stored: among the other
    publications' figures (not those this file replaces) or the registry's own units (vbhc.registry.unit_ids)."""
    pubs, figs = ExternalPublication.__table__, ExternalFigure.__table__
    query = (
        select(figs.c.unit)
        .distinct()
        .select_from(figs.join(pubs, pubs.c.id == figs.c.publication_id))
        .where(or_(pubs.c.source != figures_.source, pubs.c.period != figures_.period))
    )
    with engine.connect() as conn:
        known = {str(unit) for (unit,) in conn.execute(query)} | unit_ids(engine)
    problems: list[Problem] = []

    def problem(row: int | None, column: str | None, value: str | None, rule: str) -> None:
        problems.append(Problem(figures_.file, None, row, column, value or None, rule))

    frame = figures_.frame
    records = [(int(row), {"unit": str(unit)}) for row, unit in zip(frame["row"], frame["unit"], strict=True)]
    _unit_case(records, problem, known)
    if problems:
        raise ExternalRefused(figures_.file, problems)


# --------------------------------------------------------------------------------------------- storing
def import_figures(
    engine: Engine,
    viewer: Viewer,
    source: Path | bytes,
    *,
    file_name: str | None = None,
    catalog: Catalog | None = None,
) -> ExternalImport:
    """Validate and store a file of external figures in one transaction, replacing an older file of the same
    source and period; refused files are audited and store nothing. Quality and admin only."""
    name = file_name or (source.name if isinstance(source, Path) else "upload")
    require(viewer, Permission.IMPORT, engine=engine, what="external_figures", file=shown_file(name))
    try:
        figures_ = read_figures(source, file_name=name, catalog=catalog)
        _stored_unit_case(engine, figures_)
    except ExternalRefused as exc:
        detail = {
            "what": "external figures",
            "file": exc.file,
            "problem_count": len(exc.problems),
            "problems": audited_problems(exc.problems),  # where and which rule, read in the log's language
        }
        audit.record(engine, viewer, "import_refused", detail=detail)
        raise
    pubs, figs = ExternalPublication.__table__, ExternalFigure.__table__
    try:
        with engine.begin() as conn:
            old = [
                r[0]
                for r in conn.execute(
                    select(pubs.c.id).where(pubs.c.source == figures_.source, pubs.c.period == figures_.period)
                )
            ]
            if old:
                conn.execute(delete(figs).where(figs.c.publication_id.in_(old)))
                conn.execute(delete(pubs).where(pubs.c.id.in_(old)))
            new_id = conn.execute(
                insert(pubs).values(
                    source=figures_.source,
                    published=figures_.published,
                    period=figures_.period,
                    file_name=shown_file(name)[:500],
                    sha256=figures_.sha256,
                    imported_by=viewer.user_id[:200],
                    imported_at=dt.datetime.now(dt.UTC),
                    warnings=json.dumps(figures_.warnings, ensure_ascii=False),
                )
            ).inserted_primary_key[0]
            rows = [
                {"publication_id": new_id, **{k: _cell(v) for k, v in rec.items() if k != "row"}}
                for rec in figures_.frame.to_dict("records")
            ]
            conn.execute(insert(figs), rows)
            detail = {
                "what": "external figures",
                "file": shown_file(name),
                "source": figures_.source,
                "period": figures_.period,
                "figures": len(rows),
                "replaced": len(old),
            }
            audit.record(conn, viewer, "import", detail=detail, sha256=figures_.sha256)
    except SQLAlchemyError as exc:
        rule = Rule("external.database_error", error=type(exc).__name__)
        problem = Problem(name, None, None, None, None, rule)
        raise ExternalRefused(name, [problem]) from exc
    return ExternalImport(int(new_id), len(rows), len(old), figures_.warnings)


def _cell(value: object) -> object:
    return None if isinstance(value, float) and math.isnan(value) else value


def figures(engine: Engine, viewer: Viewer, condition: str) -> pd.DataFrame:
    """The stored external figures of a condition with their provenance (source, published, period): every unit
    for whoever sees all units of the condition (quality, its care teams); a manager only the units of their
    scope (other hospitals reach a manager anonymised, through external_benchmark)."""
    require(viewer, Permission.VIEW_CONDITION, engine=engine, condition=condition)
    frame = _stored(engine, condition)
    if sees_all_units(viewer, condition):
        return frame
    visible = [may_see_unit(viewer, condition, *unit_parts(str(u))) for u in frame["unit"]]
    return frame[np.asarray(visible, dtype=bool)].reset_index(drop=True)


def _stored(engine: Engine, condition: str) -> pd.DataFrame:
    pubs, figs = ExternalPublication.__table__, ExternalFigure.__table__
    query = (
        select(figs, pubs.c.source, pubs.c.published, pubs.c.period)
        .join(pubs, pubs.c.id == figs.c.publication_id)
        .where(figs.c.condition == condition)
        .order_by(figs.c.publication_id, figs.c.indicator, figs.c.unit)
    )
    with engine.connect() as conn:
        frame = pd.read_sql(query, conn)
    for name in NUMBER_COLUMNS:
        frame[name] = pd.to_numeric(frame[name], errors="coerce").astype(float)
    return frame


def publications(engine: Engine, viewer: Viewer) -> pd.DataFrame:
    """The stored publications (source, published, period, file, who, when, warnings) for the Data page."""
    require(viewer, Permission.IMPORT, engine=engine, what="external publications")
    with engine.connect() as conn:
        return pd.read_sql(select(ExternalPublication.__table__).order_by(ExternalPublication.__table__.c.id), conn)


# --------------------------------------------------------------------------------------------- the own summary
@dataclass
class OwnSummary:
    """The own units' figures in the file format (provenance columns excepted) and, per indicator, why a
    figure could not be given (e.g. expected without the benchmark's case-mix model)."""

    frame: pd.DataFrame
    not_carried: dict[str, str] = field(default_factory=dict)


def own_summary(
    result: IndicatorResult,
    *,
    models: Mapping[str, CaseMixModel] | None = None,
    hospitals: Sequence[str] | None = None,
) -> OwnSummary:
    """Summary figures of the units of `result` (computed from the own patient rows), per unit x indicator.

    Expected counts need the benchmark's case-mix model (`models`, per indicator id: a published or shared
    model): a model fitted on the own patients only always gives O/E = 1, so without one expected stays empty
    and `not_carried` says so. `hospitals` limits the rows to those hospitals' units.
    """
    data = result.data
    if data is None:
        raise ValueError("the indicator result has no data behind it: compute it from the registry")
    cond = data.condition
    table = result.table
    rows: list[dict[str, object]] = []
    not_carried: dict[str, str] = {}
    for ind in cond.indicators:
        part = table[table["indicator"] == ind.id]
        if part.empty:
            continue
        if hospitals is not None:
            part = part[part["unit"].astype(str).map(hospital_of).isin(list(hospitals))]
        base = {"condition": cond.id, "indicator": ind.id, "definition_version": ind.version}
        if ind.kind in SURVIVAL_KINDS:  # deaths within the horizon need each patient's follow-up, not n and O
            not_carried[ind.id] = SURVIVAL_REASON
            continue
        if ind.kind in ("volume", "response_rate"):
            for rec in part.to_dict("records"):
                row = base | {"unit": rec["unit"], "n": float(rec["n"])}
                if ind.kind == "response_rate":
                    row["observed"] = float(rec["observed"])
                rows.append(row)
            continue
        frame = indicator_cycles(ind, data, result.level)
        frame = frame[frame["y"].notna()]
        if ind.kind in BINARY_KINDS:
            model = (models or {}).get(ind.id)
            if model is not None:
                frame = frame.assign(expected=model.predict(frame).to_numpy(float))
            else:
                not_carried[ind.id] = EXPECTED_REASON
        for rec in part.to_dict("records"):
            cycles = frame[frame["unit"] == rec["unit"]]
            y = cycles["y"].to_numpy(float)
            row = base | {"unit": rec["unit"], "n": float(y.size)}
            if ind.kind in BINARY_KINDS:
                row["observed"] = float(y.sum())
                if "expected" in cycles:
                    scored = cycles["expected"].notna().to_numpy()
                    row |= {
                        "expected": float(cycles["expected"].to_numpy(float)[scored].sum()),
                        "n_adjusted": float(scored.sum()),
                        "observed_adjusted": float(y[scored].sum()),
                    }
            else:
                row |= {"sum": float(y.sum()), "sum_sq": float((y**2).sum())}
            rows.append(row)
    columns = ["condition", "indicator", "definition_version", "unit", *NUMBER_COLUMNS]
    return OwnSummary(pd.DataFrame(rows, columns=columns), not_carried)


def write_figures(
    frame: pd.DataFrame, *, source: str, published: dt.date, period: str, file_format: str = "csv"
) -> bytes:
    """Figures in the file format (CSV UTF-8 or XLSX, sheet external_figures), formula-safe, numbers exact."""
    out = frame.reindex(columns=[c for c in COLUMNS if c not in PROVENANCE_COLUMNS]).copy()
    out.insert(0, "period", period)
    out.insert(0, "published", published.isoformat())
    out.insert(0, "source", source)
    if file_format == "csv":
        return safe_csv(out)
    if file_format != "xlsx":
        raise ValueError(f"file format must be csv or xlsx, got {file_format!r}")
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    ws.title = SHEET
    ws.append(list(out.columns))
    for rec in out.itertuples(index=False):
        ws.append([None if isinstance(v, float) and math.isnan(v) else neutralise_formula(v) for v in rec])
    buffer = io.BytesIO()
    wb.save(buffer)
    return buffer.getvalue()


def suppressed_summary(
    summary: OwnSummary, rule: SuppressionRule, *, withheld: set[tuple[str, str]] | None = None
) -> pd.DataFrame:
    """The rows a file may carry: a unit x indicator below the threshold (in n or in the cycles behind
    expected) is left out, with the secondary cells of vbhc.reports.privacy. `withheld`: the (unit, indicator)
    cells the registry's grid of periods withholds (grid_withheld: the cells `vbhc report` withholds in the same
    period), which are then left out instead of the summary's own secondary cells, so the exports of all dates
    and of each year cannot be differenced; a row whose cycles behind expected are below the threshold is left
    out too."""
    frame = summary.frame
    if frame.empty or not rule.active:
        return frame
    if withheld is not None:
        cells = pd.Series(list(zip(frame["unit"].astype(str), frame["indicator"].astype(str), strict=True)))
        adjusted = pd.to_numeric(frame["n_adjusted"], errors="coerce").fillna(math.inf)
        hit = cells.isin(withheld).to_numpy() | rule.applies(adjusted)
        return frame[~hit].reset_index(drop=True)
    catalog = default_catalog()
    kinds = [
        catalog.indicator_set(c).indicator(i).kind for c, i in zip(frame["condition"], frame["indicator"], strict=True)
    ]
    probe = frame.assign(
        n=frame[["n", "n_adjusted"]].min(axis=1, skipna=True),
        kind=kinds,
        # an indicator's total is known outside (a registry publishes it): secondary cells protect a small one
        target=np.where(np.asarray(kinds) == "volume", np.nan, 0.0),
    )
    hit = suppression_mask(probe, rule)
    return frame[~hit].reset_index(drop=True)


def grid_withheld(
    engine: Engine, result: IndicatorResult, period: str | None, rule: SuppressionRule
) -> set[tuple[str, str]]:
    """The (unit, indicator) cells of `result`'s condition and level that the registry's files withhold in
    `period` (all dates or one calendar year), over the grid of all dates and every year (vbhc.reports.core.
    grid_tables, vbhc.reports.privacy.grid_masks: jointly with the PROM response and cost frames, as a `vbhc
    report` workbook withholds them): what the own summary of that period leaves out."""
    from vbhc.reports.core import grid_tables
    from vbhc.reports.privacy import grid_label, grid_masks
    from vbhc.reports.run import own_hospital

    grid = grid_tables([result], engine=engine).get(result.condition) or {}
    label = grid_label(period)
    if label not in grid:
        return set()
    table = grid[label]
    own = own_hospital(engine)  # as every file of the installation withholds them (vbhc.reports.run)
    got = grid_masks(table, label, grid, rule, own_hospitals=(own,) if own else ())
    mask = got.masks[label] if got is not None else np.zeros(len(table), bool)
    hidden = table[np.asarray(mask, bool)]
    return set(zip(hidden["unit"].astype(str), hidden["indicator"].astype(str), strict=True))


def export_summary(
    engine: Engine,
    viewer: Viewer,
    result: IndicatorResult,
    *,
    source: str,
    published: dt.date,
    period: str,
    file_format: str = "csv",
    models: Mapping[str, CaseMixModel] | None = None,
    hospitals: Sequence[str] | None = None,
    rule: SuppressionRule | None = None,
    file_name: str = "",
    withheld: set[tuple[str, str]] | None = None,
) -> bytes:
    """The own summary as a file partners can import: small numbers withheld (VBHC_SUPPRESS_BELOW), checked
    and audited as an export of aggregated figures (never patient rows). `withheld`: the cells the registry's
    grid of periods withholds in the export's period (grid_withheld), left out as `vbhc report` leaves them out."""
    rule = rule or SuppressionRule.from_settings()
    what = "external summary figures"
    require_file_export(viewer, result.condition, what=what, threshold=rule.threshold, engine=engine)
    summary = own_summary(result, models=models, hospitals=hospitals)

    def build() -> bytes:
        frame = suppressed_summary(summary, rule, withheld=withheld)
        return write_figures(frame, source=source, published=published, period=period, file_format=file_format)

    return export_file(
        viewer,
        build,
        what=what,
        file_name=file_name or f"summary_{result.condition}.{file_format}",
        condition=result.condition,
        engine=engine,
    )


# --------------------------------------------------------------------------------------------- combining
@dataclass
class ExternalBenchmark:
    """The indicator table of the own units among the external ones (what funnel, caterpillar and verdict
    read), the benchmark population named for charts and reports, and per indicator what the summary figures
    could not carry and why."""

    table: pd.DataFrame
    population: str
    not_carried: dict[str, list[str]]
    warnings: list[str]
    #: per indicator with figures under another definition version: True when they were left out, False when
    #: compared all the same (the catalog's other_version); the pages say it in the reader's language
    other_version: dict[str, bool] = field(default_factory=dict)


def benchmark_population(sources: str, hospitals: int, lang: str = "en") -> str:
    """'national registry 2024, 71 hospitals': the name a chart or report gives its benchmark (`sources`: the
    publications' source and period)."""
    return t("external.population", lang, sources=sources, count=hospitals)


def _as_sums(rows: pd.DataFrame) -> pd.DataFrame:
    """Continuous figures as sum and sum_sq wherever they came as mean and sd (one form per table)."""
    out = rows.copy()
    for name in ("sum", "sum_sq", "mean", "sd"):
        if name not in out:
            out[name] = np.nan
    n = out["n"].to_numpy(float)
    mean, sd = out["mean"].to_numpy(float), out["sd"].to_numpy(float)
    need = np.isnan(out["sum"].to_numpy(float)) & np.isfinite(mean)
    out.loc[need, "sum"] = (n * mean)[need]
    out.loc[need, "sum_sq"] = (np.where(n > 1, (n - 1) * np.nan_to_num(sd) ** 2, 0.0) + n * mean**2)[need]
    zero = n == 0
    out.loc[zero, ["sum", "sum_sq"]] = 0.0
    return out.drop(columns=["mean", "sd"])


def latest_figures(external: pd.DataFrame) -> pd.DataFrame:
    """One row per indicator and unit: the figures of its latest publication (published date, then the later
    import). Publications of several periods are kept (each file replaces only its own source and period), so a
    unit in the 2023 and the 2024 feedback was two units of the benchmark, drawn twice on the funnel and counted
    twice in its target."""
    if external.empty or "published" not in external:
        return external
    order = ["published", "publication_id"] if "publication_id" in external else ["published"]
    latest = external.sort_values(order, kind="stable").drop_duplicates(["condition", "indicator", "unit"], keep="last")
    return latest.sort_index()


def combine(
    own: pd.DataFrame,
    external: pd.DataFrame,
    condition: str,
    *,
    population: str,
    catalog: Catalog | None = None,
    own_not_carried: Mapping[str, str] | None = None,
    level: str = "hospital",
) -> ExternalBenchmark:
    """The own units' summary figures (own_summary: computed locally from patient rows) among the external
    units' figures, as one indicator table with the benchmark population named in column `benchmark_population`.

    External rows of an own unit are dropped (the own figures are computed from the patient rows). Figures
    under another definition version than the catalog's now are left out (or kept with a warning, as the
    catalog says). A yes/no indicator is compared on O/E only when every unit has expected figures, else on
    crude rates; continuous ones on crude means.
    """
    catalog = catalog or default_catalog()
    cond = catalog.indicator_set(condition)
    own = own[own["condition"] == condition].assign(origin="own")
    ext = latest_figures(external[external["condition"] == condition]).assign(origin="external")
    ext = ext[~ext["unit"].astype(str).isin(set(own["unit"].astype(str)))]
    rows = pd.concat([own, ext], ignore_index=True)
    not_carried: dict[str, list[str]] = {i: [r] for i, r in (own_not_carried or {}).items()}
    warnings: list[str] = []
    other_version: dict[str, bool] = {}
    keep = pd.Series(True, index=rows.index)
    parts = []
    for ind_id, part in rows.groupby("indicator", sort=False):
        try:
            ind = cond.indicator(str(ind_id))
        except KeyError:
            keep[part.index] = False
            continue
        if ind.kind in SURVIVAL_KINDS:  # not exchanged as summary figures (own_summary says why)
            keep[part.index] = False
            continue
        other = part["definition_version"].astype(str) != ind.version
        if other.any():
            text = f"{ind.id}: {int(other.sum())} unit(s) under another definition version than {ind.version}"
            other_version[ind.id] = ind.other_version == "refuse"
            if ind.other_version == "refuse":
                keep[part.index[other.to_numpy()]] = False
                warnings.append(text + ": left out")
            else:
                warnings.append(text + ": compared all the same")
        part = part[keep[part.index]]
        if part.empty:
            continue
        if ind.kind in BINARY_KINDS:
            if "expected" in part and part["expected"].isna().any():
                if part["expected"].notna().any():
                    not_carried.setdefault(ind.id, []).append(MIXED_EXPECTED_REASON)
                part = part.drop(columns=["expected", "n_adjusted", "observed_adjusted"], errors="ignore")
        elif ind.kind in CONTINUOUS_KINDS:
            not_carried.setdefault(ind.id, []).append(CONTINUOUS_REASON)
            part = _as_sums(part.drop(columns=["expected"], errors="ignore"))
        parts.append(part)
    if not parts:
        raise ValueError(f"no figures of {condition} to compare")
    table = pd.concat([_table(p, condition, catalog) for p in parts], ignore_index=True)
    for name in _PATIENT_ONLY:
        table[name] = np.nan
    table["hospital"] = table["unit"].astype(str).map(hospital_of)
    origin = rows.drop_duplicates(["indicator", "unit"]).set_index(["indicator", "unit"])["origin"]
    table["external"] = pd.MultiIndex.from_frame(table[["indicator", "unit"]]).map(origin) == "external"
    table["benchmark_population"] = population
    table["unit_level"] = level  # the units' level (hospital or department), as in the own indicator table
    # the indicator table's columns in its order, so every page and report reads this table like its own
    rest = [c for c in table.columns if c not in BASE_COLUMNS and c not in TAIL_COLUMNS]
    table = table.reindex(columns=[*BASE_COLUMNS, *rest, *TAIL_COLUMNS])
    for ind_id in table["indicator"].unique():
        not_carried.setdefault(str(ind_id), []).append(PATIENT_ROWS_REASON)
    return ExternalBenchmark(table, population, not_carried, warnings, other_version)


def _table(part: pd.DataFrame, condition: str, catalog: Catalog) -> pd.DataFrame:
    columns = [c for c in ("unit", "indicator", *NUMBER_COLUMNS) if c in part and part[c].notna().any()]
    return indicators_from_summary(part[columns].reset_index(drop=True), condition, catalog=catalog)


def external_benchmark(
    engine: Engine,
    viewer: Viewer,
    result: IndicatorResult,
    *,
    hospitals: Sequence[str] | None = None,
    models: Mapping[str, CaseMixModel] | None = None,
    lang: str = "en",
) -> ExternalBenchmark | None:
    """The own units of `result` (computed from the own patient rows; `hospitals` limits them) among the stored
    external figures of the condition, with the benchmark population named from the publications ("national
    registry 2024, 71 hospitals"), the rows as this viewer may see them (vbhc.access.indicator_rows); None when no
    external figures of the condition are stored."""
    prem = result.condition in default_catalog().prems  # patient experience: vbhc.prems' role rules
    if not prem:
        require(viewer, Permission.VIEW_CONDITION, engine=engine, condition=result.condition)
    stored = _stored(engine, result.condition)  # every unit: the benchmark needs them; rows are guarded below
    if stored.empty:
        return None
    stored = latest_figures(stored)  # one figure per unit: the population named from the publications used
    own = own_summary(result, models=models, hospitals=hospitals)
    names = stored.drop_duplicates(["source", "period"])
    units = set(own.frame["unit"].astype(str)) | set(stored["unit"].astype(str))
    count = len({hospital_of(u) for u in units})
    label = "; ".join(f"{s} {p}" for s, p in zip(names["source"], names["period"], strict=True))
    population = benchmark_population(label, count, lang)
    got = combine(
        own.frame,
        stored,
        result.condition,
        population=population,
        own_not_carried=own.not_carried,
        level=result.level,
    )
    # what this viewer may see of the other units: anonymised for a manager, small cells withheld for a care
    # team limited to some hospitals (vbhc.access, as for the registry's own indicator table)
    if prem:
        from vbhc.prems import prem_rows

        got.table = prem_rows(viewer, replace(result, table=got.table), engine=engine)
    else:
        got.table = indicator_rows(viewer, got.table, engine=engine, record_view=False)
    return got


# --------------------------------------------------------------------------------------------- for pages and reports
def stamp(engine: Engine, condition: str) -> str:
    """Which publications hold figures of the condition ("" when none): cheap to read on every page run, and part
    of a cache key, since a new publication does not change the registry's dataset version."""
    pubs, figs = ExternalPublication.__table__, ExternalFigure.__table__
    query = (
        select(pubs.c.id, pubs.c.imported_at)
        .where(pubs.c.id.in_(select(figs.c.publication_id).where(figs.c.condition == condition)))
        .order_by(pubs.c.id)
    )
    with engine.connect() as conn:
        return ";".join(f"{i}@{when}" for i, when in conn.execute(query))


def stored_levels(engine: Engine, condition: str) -> set[str]:
    """The unit levels ("hospital", "department") of the stored figures of a condition or PREM questionnaire:
    a page compares its units with figures of the same level only."""
    figs = ExternalFigure.__table__
    with engine.connect() as conn:
        units = conn.execute(select(figs.c.unit).where(figs.c.condition == condition).distinct()).scalars().all()
    return {"department" if "/" in str(u) else "hospital" for u in units}


def population_of(table: pd.DataFrame) -> str | None:
    """The benchmark population an indicator table was compared with (None: the registry's own units)."""
    if "benchmark_population" not in table:
        return None
    named = table["benchmark_population"].dropna()
    return str(named.iloc[0]) if len(named) else None


def reason_text(reason: str, lang: str) -> str:
    """A not_carried reason in the reader's language (the English text itself for a reason without a key)."""
    key = REASON_KEYS.get(reason)
    return t(key, lang) if key else reason


def benchmarked(
    engine: Engine,
    viewer: Viewer,
    result: IndicatorResult,
    *,
    hospitals: Sequence[str] | None = None,
    lang: str = "en",
) -> IndicatorResult | None:
    """`result` with the own units (of `hospitals`) among the stored external figures as its indicator table,
    the benchmark population named in it (what a report compares with); None when none are stored or usable."""
    try:
        got = external_benchmark(engine, viewer, result, hospitals=hospitals, lang=lang)
    except ValueError:  # every stored figure left out (another definition version): the registry's own benchmark
        return None
    if got is None:
        return None
    return replace(result, table=got.table)
