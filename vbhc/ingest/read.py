"""Finding the tables in a batch's files and reading their rows exactly as a person sees them.

- A file's kind is decided by its content, not its name: a workbook named .csv is read as the workbook it is.
- The shape of a file is bounded before the expensive work (size, unpacked size, columns, rows), so a hostile
  file is refused in milliseconds instead of minutes.
- Every row must have exactly the header's fields; a value under no header is refused, never dropped.
- Row numbers are the ones Excel or a text editor shows: blank lines count, a quoted line break does not start a
  new row.
- XLSX cells must be plain values (text, number, date, yes/no); a formula or array formula is refused.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import dataclasses
import datetime as dt
import functools
import hashlib
import io
import math
import os
import queue
import re
import threading
import warnings
import zipfile
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

from vbhc.ingest.directive import SEPARATORS, first_line_of, separator_directive
from vbhc.ingest.layout import Layout, excel_unescape, row_after, same_sheet_names, sheet_layout
from vbhc.ingest.problems import (
    ImportReport,
    Number,
    Problem,
    Rule,
    is_identifier_column,
    normalise_name,
    short,
    shown_file,
)
from vbhc.ingest.tables import ID_COLUMNS, TABLE_ORDER, TABLES, TableSpec
from vbhc.settings import max_columns, max_rows, max_unpacked_mb, max_zip_ratio

_MB = 1024 * 1024
#: Parts every XLSX workbook has; a ZIP without them is not a workbook, whatever its name says.
_XLSX_PARTS = ("[Content_Types].xml", "xl/workbook.xml")
_MAX_ZIP_MEMBERS = 10_000
_DELIMITERS = SEPARATORS


@dataclass
class Source:
    """One table to import: a CSV file, or one sheet of a workbook."""

    path: Path
    sheet: str | None
    table: str
    sha256: str
    size: int
    delimiter: str = ","
    # a CSV without quote characters or lone carriage returns: one line is one row, so Arrow's CSV reader can
    # read it with the row numbers a person sees (vbhc.ingest.read._plain_rows)
    plain_lines: bool = False
    #: the sheet's name as the workbook's XML writes it, by which it is found (openpyxl, the layout scan): `sheet`
    #: is the name as Excel shows it, Excel's _xHHHH_ codes read (_x0075_nits is the sheet units)
    sheet_title: str | None = None
    #: lines before the table that are no row: 1 for Excel's separator line `sep=;` (vbhc.ingest.directive); they
    #: keep their line numbers, so every row is named by the line a text editor shows it on
    skip_lines: int = 0

    @property
    def label(self) -> str:
        return shown_file(self.path.name)

    @property
    def spec(self) -> TableSpec:
        return TABLES[self.table]

    def problem(self, rule: str, row: int | None = None, column: str | None = None, value: str | None = None):
        return Problem(self.label, self.sheet, row, column, value, rule)


# --- discovery ---------------------------------------------------------------------------------------


def discover(paths: list[Path], report: ImportReport, limit: tuple[float, str]) -> list[Source]:
    """The tables in `paths`, in import order; every file that cannot be read is a problem in `report`."""
    sources: list[Source] = []
    names = Counter(p.name for p in paths)
    for name, count in sorted(names.items()):
        if count > 1:
            report.add(Problem(name, None, None, None, None, Rule("read.duplicate_name", count=count)))
    for path in paths:
        sources.extend(_discover_file(path, report, limit))
    sources.sort(key=lambda s: TABLE_ORDER.index(s.table))
    return sources


def _discover_file(path: Path, report: ImportReport, limit: tuple[float, str]) -> list[Source]:
    def refuse(rule: Rule, sheet: str | None = None) -> list[Source]:
        report.add(Problem(path.name, sheet, None, None, None, rule))
        return []

    try:
        if not path.exists():
            return refuse(Rule("read.file_not_found"))
        if not path.is_file():
            return refuse(Rule("read.not_a_file"))
        size = path.stat().st_size
        max_mb, setting = limit
        if size > max_mb * _MB:
            return refuse(
                Rule("read.file_too_large", size=Number(size / _MB, 1), limit=Number(max_mb), setting=setting)
            )
        head = _head(path)
    except OSError as exc:
        return refuse(Rule("read.cannot_read", reason=exc.strerror or type(exc).__name__))
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return _discover_workbook(path, size, report)
    if head.startswith(_OLE_MAGIC):
        with path.open("rb") as fh:
            return refuse(_compound_file_rule(fh))
    if path.suffix.lower() in (".xlsx", ".xlsm"):
        return refuse(Rule("read.xlsx_not_zip"))
    if path.suffix.lower() not in (".csv", ".txt", ".tsv"):
        return refuse(Rule("read.unsupported_type"))
    sha, why, plain_lines = _scan_text(path)
    if why is not None:
        return refuse(why)
    first = first_line_of(_head(path, 64).decode("utf-8", "replace"))
    directive, separator = separator_directive(first)
    if directive and separator is None:  # Excel's separator line naming one this import does not read
        report.add(Problem(path.name, None, 1, None, first, Rule("read.separator_directive_other")))
        return []
    header_line = _first_line(path, skip=int(directive))
    if separator is None:
        # the header decides the separator, not a title or note above it ('Kosten 2024', 'Export; registry H01;
        # 2026'): a ;-separated table under a title was split on ',' (or on the title's own separator) and told as
        # having no header, or its table not known; the rows above the header are then refused naming it
        header_line = _separated_line(path, int(directive)) or header_line
    if separator is not None:  # the separator line decides, as in Excel: the header is split on it
        delimiter = separator
    else:
        delimiter, why = _delimiter(header_line)
        if why is not None:
            return refuse(why)
    table = _table_from_name(path.stem)
    if table is None:
        try:
            header = next(csv.reader([header_line], delimiter=delimiter), [])
        except csv.Error:  # a header record the csv module cannot read: no table's header
            header = []
        table = _table_from_header([normalise_name(c) for c in header])
    if table is None:
        return refuse(Rule("read.unknown_table", tables=", ".join(TABLES)))
    return [Source(path, None, table, sha, size, delimiter, plain_lines, skip_lines=int(directive))]


def _discover_workbook(path: Path, size: int, report: ImportReport) -> list[Source]:
    why = _check_xlsx_container(path)
    if why is not None:
        report.add(Problem(path.name, None, None, None, None, why))
        return []
    sha = _sha256(path)
    try:
        sheets = _sheet_names(path)
    except Exception as exc:  # untrusted content: any parser failure is a damaged file, not a crash
        report.add(
            Problem(path.name, None, None, None, None, Rule("read.workbook_unreadable", error=type(exc).__name__))
        )
        return []
    twice = same_sheet_names([title for title, _ in sheets])
    for sheet, earlier in twice:  # Excel calls the workbook damaged: neither sheet is read
        report.add(Problem(path.name, sheet, None, None, None, Rule("read.sheet_name_twice", other=repr(earlier))))
    if twice:
        return []
    sources = []
    for title, state in sheets:
        sheet = excel_unescape(title)  # the name the sheet's tab shows
        if state != "visible":  # a person reading the workbook does not see it: it is not read for them unseen
            report.add(Problem(path.name, sheet, None, None, None, Rule("read.sheet_hidden")))
            continue
        table = _table_from_name(sheet)
        if table is None:
            report.add(
                Problem(path.name, sheet, None, None, None, Rule("read.sheet_not_table", tables=", ".join(TABLES)))
            )
            continue
        sources.append(Source(path, sheet, table, sha, size, sheet_title=title))
    return sources


def _head(path: Path, n: int = 8) -> bytes:
    with path.open("rb") as fh:
        return fh.read(n)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _first_line(path: Path, skip: int = 0) -> str:
    """The first non-blank record (the header), as text: its line and, while a quote is open at a line's end, the
    next ones (a first line of data whose quoted value holds a line break goes on there; its separators too).
    A line ends as the csv module ends it: at a line feed, a carriage return and line feed, or a carriage return
    alone (an old Mac export: the whole file was one 'line', and the table could not be told from its header).
    The first `skip` lines are left out (Excel's separator line)."""
    record: list[str] = []
    size = 0
    with path.open("rb") as raw, io.TextIOWrapper(raw, encoding="utf-8-sig", errors="replace", newline=None) as fh:
        for number, line in enumerate(fh):
            if number < skip:
                continue
            line = line.rstrip("\n")
            if not record and not line.strip():
                continue
            record.append(line)
            size += len(line)
            if sum(part.count('"') for part in record) % 2 == 0 or size > 1 << 20 or len(record) >= 1000:
                break
    return "\n".join(record)[: 1 << 20]


def _separated_line(path: Path, skip: int) -> str | None:
    """The first of the file's first HEADER_SEARCH_ROWS lines (after `skip`) that, split on one of the
    separators, names every required column of a table: a header under a title or note; None when none does."""
    with path.open("rb") as raw, io.TextIOWrapper(raw, encoding="utf-8-sig", errors="replace", newline=None) as fh:
        for number, line in enumerate(fh):
            if number >= skip + HEADER_SEARCH_ROWS:
                return None
            if number < skip:
                continue
            for delimiter in _DELIMITERS:
                try:
                    fields = next(csv.reader([line[: 1 << 20]], delimiter=delimiter), [])
                except csv.Error:
                    continue
                if _table_from_header([normalise_name(f) for f in fields]) is not None:
                    return _first_line(path, skip=number)
    return None


def _delimiter(header: str) -> tuple[str, Rule | None]:
    """The separator, from the header record (_first_line): the one that splits it; never a guess between two.
    Only what stands outside quotes counts: a quoted value's commas ("Zürich, Bern") separate nothing (a first
    line of data with such a value, tab-separated, was read as comma-separated and refused for its quotes, not
    for having no header)."""
    outside = "".join(part for i, part in enumerate(header.split('"')) if i % 2 == 0)
    counts = {d: outside.count(d) for d in _DELIMITERS}
    best = max(counts.values())
    if best == 0:
        return ",", None  # one column (or no header at all): the header check says what is wrong
    winners = [d for d, n in counts.items() if n == best]
    if len(winners) > 1:  # two or all three of _DELIMITERS
        shown = [repr(d) for d in winners]
        if len(shown) == 2:
            return ",", Rule("read.separator_two", first=shown[0], second=shown[1])
        return ",", Rule("read.separator_three", first=shown[0], second=shown[1], third=shown[2])
    return winners[0], None


def _table_from_name(stem: str) -> str | None:
    stem = stem.lower()
    for name in sorted(TABLES, key=len, reverse=True):
        if stem == name or stem.startswith((name + "_", name + "-", name + ".", name + " ")):
            return name
    return None


def _table_from_header(columns: list[str]) -> str | None:
    cols = set(columns)
    matches = [t.name for t in TABLES.values() if set(t.required) <= cols]
    # care_cycles' required columns include units' hospital/department: prefer the most specific match
    matches.sort(key=lambda n: len(TABLES[n].required), reverse=True)
    return matches[0] if matches else None


#: An OLE2 compound file: the old binary Excel (.xls), or an .xlsx saved with a password (Office encrypts the whole
#: workbook into the EncryptedPackage stream of such a file, whose directory names it in UTF-16)
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_ENCRYPTED_PACKAGE = "EncryptedPackage".encode("utf-16-le")


def _compound_file_rule(fh: BinaryIO) -> Rule:
    """Why a compound file is refused: a workbook with a password cannot be read without it (saving it as .xls
    would not help, as the old binary Excel's advice says), an old binary workbook is saved again as .xlsx."""
    tail = b""
    for block in iter(lambda: fh.read(1 << 20), b""):
        if _ENCRYPTED_PACKAGE in tail + block:
            return Rule("read.workbook_encrypted")
        tail = block[-len(_ENCRYPTED_PACKAGE) :]
    return Rule("read.old_xls")


def _check_xlsx_container(path: Path | BinaryIO) -> Rule | None:
    """Why this ZIP is not a safe XLSX workbook, judged from the ZIP directory alone; None when it is fine (a
    compound file, which is no ZIP, is told as what it is: an old .xls or a workbook with a password).

    Runs before openpyxl opens the file. The declared sizes are what Python's zipfile will unpack at most
    (it stops at the declared size and fails on a CRC mismatch), so checking them bounds the work for zip bombs
    and for workbooks too large to read in reasonable time.
    """
    with path.open("rb") if isinstance(path, Path) else contextlib.nullcontext(path) as fh:
        fh.seek(0)
        if fh.read(len(_OLE_MAGIC)) == _OLE_MAGIC:
            return _compound_file_rule(fh)
        fh.seek(0)
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
            names = {i.filename for i in infos}
            # what else a spreadsheet program saves as a ZIP: told by what it is, with what to do, instead of a
            # part an XLSX workbook has that it lacks
            mimetype = b""
            if "mimetype" in names:  # its first bytes only: the part's size is not checked yet
                with zf.open("mimetype") as part:
                    mimetype = part.read(100)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError, RuntimeError):
        return Rule("read.zip_unreadable")
    if mimetype.startswith(b"application/vnd.oasis.opendocument"):
        return Rule("read.opendocument")
    if "xl/workbook.bin" in names and "xl/workbook.xml" not in names:
        return Rule("read.xlsb")
    missing = [p for p in _XLSX_PARTS if p not in names]
    if missing:
        return Rule("read.zip_part_missing", part=missing[0])
    if len(infos) > _MAX_ZIP_MEMBERS:
        return Rule("read.zip_too_many_parts", parts=Number(len(infos)), limit=Number(_MAX_ZIP_MEMBERS))
    unpacked = sum(i.file_size for i in infos)
    if unpacked > max_unpacked_mb() * _MB:
        return Rule("read.zip_unpacked_too_large", size=Number(unpacked / _MB), limit=Number(max_unpacked_mb()))
    ratio_limit = max_zip_ratio()
    for info in infos:
        if info.file_size > _MB and info.file_size > ratio_limit * max(info.compress_size, 1):
            return Rule(
                "read.zip_ratio",
                part=info.filename,
                ratio=Number(info.file_size / max(info.compress_size, 1)),
                limit=f"{ratio_limit:,.0f}",
            )
    return None


def _open_workbook(path: Path):
    """openpyxl on the file's bytes: by handle, so a workbook named .csv is not refused for its name."""
    from openpyxl import load_workbook

    fh = path.open("rb")
    try:
        return load_workbook(fh, read_only=True, data_only=False), fh
    except BaseException:
        fh.close()
        raise


class DamagedRow(Exception):
    """A cell of sheet row `row` that openpyxl cannot read (a yes/no cell holding 'true', a number 'inf', a style
    or shared string that does not exist: Excel calls such a file damaged); `error` is the exception's type name,
    never cell content."""

    def __init__(self, row: int, error: str):
        super().__init__(error)
        self.row, self.error = row, error


def sheet_rows(ws, workbook: Path | BinaryIO | None = None, title: str | None = None) -> Iterator[tuple]:
    """Every row of a read-only sheet (openpyxl), as far as its cells go. openpyxl's read-only mode stops at the
    range the sheet's own dimension tag states, and a writer may state less than it wrote (A1, or the size of an
    older version of the sheet): the rows and columns beyond were left out unseen (a sheet of five care cycles
    whose tag said A1:L3 was imported as two, without its last four columns). Excel ignores the tag; so does this.

    A cell openpyxl cannot read raises DamagedRow naming its row (found in the sheet `title` of `workbook`, the
    rows after the last one read): the reader's one-line refusal, where it was a bare 'damaged workbook
    (ValueError)' in the registry import and a crash ('unexpected error') in the external figures and
    targets/actions workbooks."""
    ws.reset_dimensions()
    _quiet_date_errors()
    rows = ws.iter_rows()
    read = 0
    while True:
        try:
            cells = next(rows)
        except StopIteration:
            return
        except Exception as exc:  # openpyxl on untrusted content: any parser failure is a damaged cell
            where = row_after(workbook, title, read) if workbook is not None and title is not None else read + 1
            raise DamagedRow(where, type(exc).__name__) from None
        read += 1
        yield cells


def _quiet_date_errors() -> None:
    """openpyxl reads a number under a date format that is no date (1e7 under yyyy-mm-dd; Excel shows #####) as
    the error value #VALUE!, which every reader refuses naming its row and column, and prints a warning line of
    its own besides: on the command line that line came before the refusal. Its one message is left out (the
    filter is added again on every read: a test runner restores the filters between tests; an equal filter is
    replaced, not added twice)."""
    warnings.filterwarnings(
        "ignore", message=r"Cell \S+ is marked as a date but the serial value", category=UserWarning
    )


def _sheet_names(path: Path) -> list[tuple[str, str]]:
    """Each sheet's name and state (visible, hidden, veryHidden), in the workbook's order."""
    wb, fh = _open_workbook(path)
    try:
        return [(ws.title, str(getattr(ws, "sheet_state", "visible") or "visible")) for ws in wb.worksheets]
    finally:
        wb.close()
        fh.close()


def _scan_text(path: Path) -> tuple[str, Rule | None, bool]:
    """sha256 of a CSV file and, in the same pass, why it is not UTF-8 text (None when it is), and whether one
    line is one row (no quote characters, no carriage return outside a CRLF line end).

    UTF-8 with or without BOM is accepted; nothing else is guessed, because a wrong guess silently changes values.
    """
    h = hashlib.sha256()
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = 0
    problem: Rule | None = None
    quotes = lone_cr = False
    cr_pending = False  # the previous block ended in CR: a CRLF may straddle the blocks
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
            if not (quotes or lone_cr):
                quotes = b'"' in block
                if cr_pending and not block.startswith(b"\n"):
                    lone_cr = True
                cr_pending = block.endswith(b"\r")
                # counted only in a block that holds a CR (memchr finds none in nearly every file's blocks)
                if b"\r" in block:
                    lone_cr = lone_cr or block.count(b"\r") - block.count(b"\r\n") > int(cr_pending)
            if problem is None:
                if offset == 0 and block.startswith((b"\xff\xfe", b"\xfe\xff")):
                    problem = Rule("read.utf16")
                elif (nul := block.find(b"\x00")) >= 0:
                    at_line = _line_at(path, offset) + block.count(b"\n", 0, nul)
                    problem = Rule("read.nul_byte", offset=Number(offset + nul), line=at_line)
                elif not (block.isascii() and not decoder.getstate()[0]):  # ASCII is UTF-8: nothing to decode
                    pending = len(decoder.getstate()[0])
                    try:
                        decoder.decode(block)
                    except UnicodeDecodeError as exc:
                        at = max(exc.start - pending, 0)
                        byte = exc.object[exc.start]
                        at_line = _line_at(path, offset) + block.count(b"\n", 0, at)
                        problem = Rule("read.not_utf8", byte=f"0x{byte:02X}", offset=Number(offset + at), line=at_line)
            offset += len(block)
    if problem is None:
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            problem = Rule("read.utf8_truncated", offset=Number(offset))
    return h.hexdigest(), problem, not (quotes or lone_cr or cr_pending)


def _line_at(path: Path, offset: int) -> int:
    """The line number at byte `offset` of the file. Counted only for a file refused for a byte: counting every
    block's lines as it is hashed was a tenth of a second of each 100 MB imported."""
    line = 1
    with path.open("rb") as fh:
        while offset > 0 and (block := fh.read(min(offset, 1 << 20))):
            line += block.count(b"\n")
            offset -= len(block)
    return line


# --- the header --------------------------------------------------------------------------------------


@dataclass
class Header:
    """The columns of a file: normalised names, and where the header row is."""

    names: list[str]  # normalised, in file order; trailing unnamed columns removed
    raw: list[str]  # as written
    width: int  # fields a row may have: the header's, trailing unnamed columns included
    row: int


def check_header(source: Source, header: Header, report: ImportReport) -> bool:
    """Whether the header names the table's columns; every problem with it is added to `report`."""
    spec = source.spec
    names = header.names
    known = set(spec.columns)
    if not any(n in known for n in names):
        source_problem = source.problem(
            Rule("read.no_header", table=spec.name, columns=", ".join(spec.columns)), row=header.row
        )
        report.add(source_problem)
        return False
    other = _table_from_header(names)
    if other is not None and other != spec.name and not set(spec.required) <= set(names):
        # named for one table, holding another's header (prom_responses.csv saved as costs.csv): one line that says
        # so, instead of a missing and an unknown column for each of the two tables' columns
        rule = Rule("read.header_of_other_table", table=spec.name, other=other)
        report.add(source.problem(rule, row=header.row))
        return False
    ok = True
    for raw, name in zip(header.raw, names, strict=True):
        if name and is_identifier_column(raw):
            report.add(source.problem(Rule("read.identifier_column"), header.row, raw))
            ok = False
    # a table that starts to the right of the first column (a sheet whose table is at C5, a CSV line starting
    # with separators, pandas' unnamed index): one line saying where the header starts, rather than one for each
    # column before it ('column 1 has no name: every column with values needs a header', of an empty column)
    leading = next((i for i, name in enumerate(names) if name), 0)
    if leading:
        from openpyxl.utils import get_column_letter

        where = get_column_letter(leading + 1) if source.sheet is not None else str(leading + 1)
        rule = "read.header_not_in_first_column" if source.sheet is not None else "read.header_not_in_first_field"
        report.add(source.problem(Rule(rule, column=where), header.row, header.raw[leading]))
        ok = False
    for position, name in enumerate(names[leading:], start=leading + 1):
        if name == "":
            report.add(source.problem(Rule("read.unnamed_column", position=position), header.row))
            ok = False
    for col in spec.required:
        if col not in names:
            report.add(source.problem(Rule("read.required_column", table=spec.name), header.row, col))
            ok = False
    for raw, name in zip(header.raw, names, strict=True):
        if name and name not in known and not is_identifier_column(raw):
            report.add(
                source.problem(
                    Rule("read.unknown_column", table=spec.name, columns=", ".join(spec.columns)),
                    header.row,
                    raw.strip(),
                )
            )
            ok = False
    counts = Counter(n for n in names if n)
    for name, count in sorted(counts.items()):
        if count > 1:
            positions = [str(i) for i, n in enumerate(names, start=1) if n == name]
            report.add(
                source.problem(
                    Rule("read.repeated_column", times=count, positions=", ".join(positions)), header.row, name
                )
            )
            ok = False
    return ok


#: How far below a first row that names no column the header is looked for (a title, a note, a blank line or two)
HEADER_SEARCH_ROWS = 20


def header_below(rows: Iterator[tuple[int, list[str]]], first: int, required: Sequence[str]) -> int | None:
    """The row number of the first of `rows` (row number, its texts) after row `first`, and within
    HEADER_SEARCH_ROWS of it, that names every one of the `required` columns: a table's header under a title or a
    note. None when there is none."""
    for row_no, fields in rows:
        if row_no <= first:
            continue
        if row_no > first + HEADER_SEARCH_ROWS:
            return None
        if set(required) <= {normalise_name(f) for f in fields}:
            return row_no
    return None


def sheet_looks_like_table(ws, required: Sequence[str]) -> int | None:
    """The row of a worksheet (openpyxl) among its first HEADER_SEARCH_ROWS that names at least half of a reader's
    `required` columns: a sheet of the reader's data, which the reader does not read when it is not the sheet it
    reads (refused naming it: rows a person put there would silently not be imported). None: a sheet of notes, a
    legend or a copy of something else, which may be left unread (its name said in the summary)."""
    wanted = set(required)
    try:
        for number, values in enumerate(ws.iter_rows(max_row=HEADER_SEARCH_ROWS, values_only=True), start=1):
            named = {normalise_name(str(v)) for v in values if v is not None} & wanted
            if len(named) >= max(2, (len(wanted) + 1) // 2):
                return number
    except Exception:  # a sheet openpyxl cannot read is not read: it is named as such in the summary
        return None
    return None


def row_text(fields: Sequence[str], separator: str | None = None) -> str:
    """A row above a table's header as its reader wrote it, every filled field ('Export; registry H01; 2026', not
    'Export' alone): the refusal names the title the person sees. `separator`: a CSV's (a sheet's cells are
    joined by a space)."""
    joint = f"{separator} " if separator in (",", ";") else " "
    return joint.join(f.strip() for f in fields if f and f.strip())


def _above_header(source: Source, row_no: int, fields: list[str], report: ImportReport) -> bool:
    """Whether the first filled row `row_no` names no column of the table while a header lies a few rows below it
    (header_below): a title or note above the table ('Kosten 2024', 'bedragen in duizenden euro's'). Such a row
    may say how to read the values, which the import cannot: the file is refused naming the row and the header's,
    where it was refused as having no header at all ('the first row does not name any column')."""
    if any(normalise_name(f) in source.spec.columns for f in fields):
        return False
    records = _xlsx_records(source, Layout()) if source.sheet is not None else _csv_records(source, [0])
    try:
        below = header_below(((n, f) for n, f, *_ in records), row_no, source.spec.required)
    except Exception:  # a damaged part further down: the reading proper names it
        below = None
    finally:
        records.close()
    if below is None:
        return False
    text = row_text(fields, source.delimiter if source.sheet is None else None)
    report.add(source.problem(Rule("read.rows_above_header", header=below), row_no, None, short(text, 60)))
    return True


def _make_header(raw: list[str], row: int, source: Source, report: ImportReport) -> Header | None:
    limit = max_columns()
    if len(raw) > limit:
        report.add(source.problem(Rule("read.too_many_columns", width=Number(len(raw)), limit=Number(limit))))
        return None
    cleaned = [c.strip().lstrip("\ufeff").strip() for c in raw]
    names = [normalise_name(c) for c in cleaned]
    width = len(names)
    while names and names[-1] == "":
        names.pop()
    return Header(names, cleaned[: len(names)], width, row)


# --- rows --------------------------------------------------------------------------------------------


@dataclass
class Chunk:
    frame: pd.DataFrame  # every column as str, "" = missing
    rows: np.ndarray  # the row number a person sees, per frame row
    bytes_done: int
    #: per row and column of `frame`, whether the cell is a workbook's number cell (None for a CSV): its text is
    #: the number as Python writes it, whose point is no decimal mark a person wrote (Dutch Excel shows 188.125
    #: as 188,125) and never a thousands separator, so it decides nothing about the marks of the file's texts
    numeric: np.ndarray | None = None


class DamagedFile(Exception):
    """The parser could not read the file; the message never carries cell content."""


def read(source: Source, report: ImportReport, chunk_rows: int) -> Iterator[Header | Chunk]:
    """The header first, then chunks of rows; problems with a row's shape go to `report`."""
    if source.sheet is None and source.plain_lines and not _SLOW_PATH_ONLY:
        yield from _plain_rows(source, report, chunk_rows)
        return
    workbook = source.sheet is not None
    position = [0]  # bytes read so far (CSV), for the progress estimate; read at chunk boundaries only
    layout = Layout()  # a workbook sheet's merged cells, hidden rows and columns: filled before its first row
    records = _xlsx_records(source, layout) if workbook else _csv_records(source, position)
    header: Header | None = None
    buffer: list[list[str]] = []
    numbers: list[int] = []
    numeric: list[list[int]] | None = [] if workbook else None  # each buffered row's number cells
    row_limit = max_rows()
    named = width = 0
    for row_no, fields, odd, formatted, typed in records:
        if odd:
            _not_plain(source, header, row_no, odd, report)
            if header is not None:
                continue
            return
        if formatted and header is not None and _formatted_ids(source, header, row_no, fields, formatted, report):
            continue
        if header is None:
            if not any(f.strip() for f in fields):
                continue  # blank lines before the header
            if _above_header(source, row_no, fields, report):
                return
            header = _make_header(fields, row_no, source, report)
            if header is None:
                return
            named, width = len(header.names), header.width
            if layout:
                _unseen_cells(source, header, layout, report)
                if row_no in layout.hidden_rows:
                    report.add(source.problem(Rule("read.row_hidden"), row_no))
            yield header
            continue
        if not any(fields):
            continue  # a blank row (or one of separators only): not data, but it keeps its number
        if row_no in layout.hidden_rows:
            report.add(source.problem(Rule("read.row_hidden"), row_no))
            continue
        if len(fields) != width:
            if workbook:  # a workbook row ends at its last filled cell; none may lie beyond the header
                if len(fields) > named and not _row_shape_ok(source, named, row_no, fields, report):
                    continue
                fields = (fields + [""] * (named - len(fields)))[:named]
            else:  # a text row has exactly the header's fields, trailing separators included
                _wrong_width(source, width, row_no, fields, report)
                continue
        elif width != named:  # trailing columns without a name: they must be empty
            if any(f.strip() for f in fields[named:]):
                _row_shape_ok(source, named, row_no, fields, report)
                continue
            fields = fields[:named]
        buffer.append(fields)
        numbers.append(row_no)
        if numeric is not None:
            numeric.append(typed or [])
        if len(buffer) >= chunk_rows:
            if _too_many(source, report, row_limit, numbers, buffer):
                return
            yield _chunk(header, buffer, numbers, _before_end(np.array([position[0]]), source.size), numeric)
            row_limit -= len(buffer)
            buffer, numbers = [], []
            numeric = [] if workbook else None
    if header is None:
        report.add(source.problem(Rule("read.file_empty")))
        return
    if _too_many(source, report, row_limit, numbers, buffer):
        return
    yield _chunk(header, buffer, numbers, 0 if workbook else source.size, numeric)


#: VBHC_IMPORT_SLOW_PATH=1 reads every CSV with the csv module (the fast path's equivalence tests use it too)
_SLOW_PATH_ONLY = os.environ.get("VBHC_IMPORT_SLOW_PATH") == "1"
#: Arrow reads this many bytes at a time; a single row longer than this is refused (no registry row comes near)
_ARROW_BLOCK_BYTES = 16 << 20


def _plain_rows(source: Source, report: ImportReport, chunk_rows: int) -> Iterator[Header | Chunk]:
    """read() for a CSV where one line is one row, through Arrow's C reader instead of a Python loop per row.

    Same rows, row numbers, chunks and problems as the csv-module path: the header is found by that path; a
    row with the wrong number of fields comes back from Arrow with its line number and text, which split on the
    separator are exactly its fields (there are no quotes); blank rows are dropped but keep their number.
    """
    header: Header | None = None
    found = False
    records = _csv_records(source, [0])
    try:
        for row_no, fields, *_ in records:
            if any(f.strip() for f in fields):
                if _above_header(source, row_no, fields, report):
                    return
                found, header = True, _make_header(fields, row_no, source, report)
                break
    finally:
        records.close()
    if not found:
        report.add(source.problem(Rule("read.file_empty")))
    if header is None:
        return
    yield header
    named, width = len(header.names), header.width
    columns = [f"c{i}" for i in range(width)]
    wrong: list[tuple[int, str]] = []  # (line number, text) of rows with another number of fields

    wrong_lock = threading.Lock()  # Arrow parses in the read-ahead thread (_read_ahead), which calls on_invalid

    def on_invalid(row: pa_csv.InvalidRow) -> str:
        with wrong_lock:
            wrong.append((header.row + row.number, row.text))  # Arrow counts lines from where it started
        return "skip"

    def set_aside(through: float) -> int:
        """Report the rows Arrow set aside up to line `through`; return their bytes. Arrow may parse ahead of
        the batch it hands out, so rows set aside beyond the batch wait for their own batch."""
        with wrong_lock:
            wrong.sort()
            due = []
            while wrong and wrong[0][0] <= through:
                due.append(wrong.pop(0))
        size = 0
        for line, text in due:
            size += len(text.encode()) + line_break
            fields = text.split(source.delimiter) if text else []
            if any(fields):  # a blank line is not a row; it keeps its number
                _wrong_width(source, width, line, fields, report)
        return size

    def batches(reader: pa_csv.CSVStreamingReader) -> Iterator[pa.RecordBatch]:
        """A row Arrow cannot hold in one block ends the file with a problem, not a crash."""
        try:
            with contextlib.closing(_read_ahead(reader)) as ahead:
                yield from ahead
        except pa.ArrowInvalid:
            report.add(source.problem(Rule("read.row_too_long", size=_ARROW_BLOCK_BYTES // _MB), next_line))

    row_limit = max_rows()
    pending: list[pd.DataFrame] = [_chunk(header, [], [], 0).frame]
    # per pending row: its line number and the byte offset where the line ends (for the share of the file read:
    # Arrow reads ahead, so the file position would say 100% long before the last row is handed out)
    pending_numbers: list[np.ndarray] = [np.empty((0, 2), dtype=np.int64)]
    pending_rows = 0
    next_line = header.row + 1
    with source.path.open("rb") as raw, contextlib.ExitStack() as parsing:
        for _ in range(header.row):  # to the line after the header: here a line is a row
            line_end = raw.readline()
        line_break = 2 if line_end.endswith(b"\r\n") else 1
        offset = raw.tell()
        reader = _arrow_reader(raw, source, columns, on_invalid) if raw.tell() < source.size else iter(())
        # closed on the way out, before the file: the read-ahead thread stops first
        for batch in parsing.enter_context(contextlib.closing(batches(reader))):
            frame = batch.to_pandas()
            # the lines of this batch: consecutive, except those Arrow set aside
            with wrong_lock:
                skipped = sorted(line for line, _ in wrong)
            numbers = _lines_without(next_line, len(frame), skipped)
            if len(numbers):
                next_line = int(numbers[-1]) + 1
                offset += set_aside(next_line - 1)
            line_bytes = _line_bytes(batch, line_break)
            ends = offset + np.cumsum(line_bytes)
            offset = int(ends[-1]) if len(ends) else offset
            # a row of empty fields is not data: its line holds the separators and the line break alone (from the
            # lengths just summed, not a comparison of every field's text with "")
            keep = line_bytes > batch.num_columns - 1 + line_break
            if width != named:  # trailing columns without a name must be empty
                extra = (frame[columns[named:]].apply(lambda c: c.str.strip()) != "").any(axis=1).to_numpy() & keep
                for i in np.flatnonzero(extra):
                    _row_shape_ok(source, named, int(numbers[i]), frame.iloc[i].tolist(), report)
                keep &= ~extra
            frame = frame.loc[keep, columns[:named]] if width != named or not keep.all() else frame
            frame.columns = header.names
            pending.append(frame.reset_index(drop=True))
            pending_numbers.append(np.column_stack([numbers, ends])[keep])
            pending_rows += len(frame)
            while pending_rows >= chunk_rows:
                block, block_numbers = _take(pending, pending_numbers, chunk_rows)
                pending_rows -= len(block)
                if _too_many(source, report, row_limit, block_numbers[:, 0], block):
                    return
                yield Chunk(block, block_numbers[:, 0], _before_end(block_numbers[:, 1], source.size))
                row_limit -= len(block)
    set_aside(float("inf"))  # rows set aside after the last batch
    block, block_numbers = _take(pending, pending_numbers, pending_rows)
    if _too_many(source, report, row_limit, block_numbers[:, 0], block):
        return
    yield Chunk(block, block_numbers[:, 0], source.size)


def _read_ahead(reader: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """The reader's batches, the next one parsed in a thread of its own while the caller checks this one.

    Why: Arrow's parse of a PROM file's text was a fifth of the import's main thread (0.7 of 4.1 s of CPU at
    100,000 cycles on PostgreSQL), and its streaming reader parses on the thread that asks for the next batch
    (use_threads only reads the file ahead). Arrow releases the GIL while it parses, so the parse of the next
    block overlaps the checks and packing of this one. A batch is parsed only once the one before is handed out:
    one batch in memory beyond the caller's (~16 MB of text, _ARROW_BLOCK_BYTES). Batches and errors come in the
    reader's order; closing the generator stops the thread before the file is closed."""
    stream = iter(reader)
    asked: queue.SimpleQueue[bool] = queue.SimpleQueue()  # True: parse the next batch; False: stop
    handed: queue.SimpleQueue[tuple[pa.RecordBatch | None, BaseException | None]] = queue.SimpleQueue()

    def parse() -> None:
        while asked.get():
            try:
                item = (next(stream), None)
            except StopIteration:
                item = (None, None)
            except BaseException as exc:  # handed to the caller, raised where it asks for this batch
                item = (None, exc)
            handed.put(item)
            if item[0] is None:
                return

    thread = threading.Thread(target=parse, name="vbhc-csv-read-ahead", daemon=True)
    thread.start()
    asked.put(True)
    try:
        while True:
            batch, error = handed.get()
            if error is not None:
                raise error
            if batch is None:
                return
            asked.put(True)  # the next batch is parsed while the caller checks this one
            yield batch
    finally:
        asked.put(False)  # a parse under way hands its batch over first
        thread.join()


def _line_bytes(batch: pa.RecordBatch, line_break: int) -> np.ndarray:
    """The bytes of each line of an Arrow batch: its fields, the separators between them and the line break."""
    total = np.full(batch.num_rows, batch.num_columns - 1 + line_break, dtype=np.int64)
    for column in batch.columns:
        total += pc.binary_length(column).to_numpy(zero_copy_only=False)
    return total


def _before_end(ends: np.ndarray, size: int) -> int:
    """Bytes read through a chunk that is not the last: never the whole file, which only the last chunk reads."""
    return min(int(ends[-1]) if len(ends) else 0, size - 1)


def _arrow_reader(raw, source: Source, columns: list[str], on_invalid) -> pa_csv.CSVStreamingReader:
    """Arrow's streaming CSV reader from the file's current position: every field text, nothing inferred."""
    return pa_csv.open_csv(
        raw,
        read_options=pa_csv.ReadOptions(column_names=columns, block_size=_ARROW_BLOCK_BYTES, use_threads=False),
        parse_options=pa_csv.ParseOptions(
            delimiter=source.delimiter,
            quote_char=False,
            newlines_in_values=False,
            ignore_empty_lines=False,
            invalid_row_handler=on_invalid,
        ),
        convert_options=pa_csv.ConvertOptions(
            # pandas holds Arrow strings as large_string: read so, to_pandas copies no column to convert it
            column_types=dict.fromkeys(columns, pa.large_string()),
            null_values=[],
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
        ),
    )


def _lines_without(first: int, count: int, skipped: list[int]) -> np.ndarray:
    """`count` consecutive line numbers from `first`, stepping over the `skipped` ones."""
    numbers = np.arange(first, first + count + len(skipped), dtype=np.int64)
    if skipped:
        numbers = numbers[~np.isin(numbers, skipped)]
    return numbers[:count]


def _take(frames: list[pd.DataFrame], numbers: list[np.ndarray], rows: int) -> tuple[pd.DataFrame, np.ndarray]:
    """The first `rows` rows of the pending frames (removed from them)."""
    frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    number = np.concatenate(numbers) if len(numbers) > 1 else numbers[0]
    frames[:] = [frame.iloc[rows:].reset_index(drop=True)]
    numbers[:] = [number[rows:]]
    return frame.iloc[:rows].reset_index(drop=True), number[:rows]


@dataclass(frozen=True)
class FormatHides:
    """Why a workbook cell is not read: its number format shows its value otherwise than stored (format_hides)."""

    number_format: str
    value: str


#: Why a workbook cell is not read: the value's type name, None for a formula, the texts Excel may show for a
#: shared string openpyxl gives alike for more than one (vbhc.ingest.layout.Layout.unclear_texts), or the number
#: format that shows it otherwise than stored
Odd = str | tuple[str, ...] | FormatHides | None


def _not_plain(
    source: Source, header: Header | None, row_no: int, odd: list[tuple[int, Odd]], report: ImportReport
) -> None:
    """A problem per cell that is not a plain value; `odd` holds (column position, why: Odd)."""
    for position, kind in odd:
        name = header.names[position] if header is not None and position < len(header.names) else None
        if isinstance(kind, FormatHides):
            rule = Rule("read.cell_format_hides", format=kind.number_format)
            if not name:
                rule = Rule("read.cell_format_hides_at", format=kind.number_format, position=position + 1)
            report.add(source.problem(rule, row_no, name, kind.value))
            continue
        if isinstance(kind, tuple):
            shown = " | ".join(kind)
            rule = Rule("read.cell_text_unclear") if name else Rule("read.cell_text_unclear_at", position=position + 1)
            report.add(source.problem(rule, row_no, name, shown))
            continue
        if kind is None:
            rule = Rule("read.cell_formula") if name else Rule("read.cell_formula_at", position=position + 1)
        elif name:
            rule = Rule("read.cell_not_plain", kind=kind)
        else:
            rule = Rule("read.cell_not_plain_at", position=position + 1, kind=kind)
        report.add(source.problem(rule, row_no, name))


def _formatted_ids(
    source: Source, header: Header, row_no: int, fields: list[str], formatted: list[tuple[int, str]], report
) -> bool:
    """Whether a number cell of an id column has a format that may show another text than the number (1.00E+05
    for 100000, 5 as 5.0): the id stored would not be the one a person reads. A number column keeps the number
    whatever its format shows (24.04 shown as 24.0 is the number 24.04, as Excel's formula bar says)."""
    refused = False
    for position, number_format in formatted:
        name = header.names[position] if position < len(header.names) else None
        if name in ID_COLUMNS:
            value = fields[position] if position < len(fields) else None
            report.add(source.problem(Rule("read.id_number_formatted", format=number_format), row_no, name, value))
            refused = True
    return refused


def _unseen_cells(source: Source, header: Header, layout: Layout, report: ImportReport) -> None:
    """A problem per merged range and per hidden column of the header's width: the import would read
    otherwise than a reader of the sheet (the other cells of a merged range as empty, a hidden column's values
    unseen), per row the sheet's part holds again or after a later row (openpyxl leaves it out), and per row whose
    cells are written out of order (openpyxl ends the row at its last cell written). Hidden rows are refused row
    by row as they are read."""
    for row, after in layout.rows_out_of_order:
        report.add(source.problem(Rule("read.row_out_of_order", after=after), row))
    for row, position, cell, after in layout.cells_out_of_order:
        name = header.names[position] if 0 <= position < len(header.names) else None
        rule = (
            Rule("read.cell_out_of_order", cell=cell, after=after)
            if after
            else Rule("read.cell_in_other_row", cell=cell)
        )
        report.add(source.problem(rule, row, name or None))
    for ref, row, position in layout.merged:
        name = header.names[position] if position < len(header.names) else None
        report.add(source.problem(Rule("read.cells_merged", cells=ref), row, name or None))
    for row, position, cell, value in layout.numbers_not_excel:  # 6_1 read as 61, where Excel shows an error
        name = header.names[position] if 0 <= position < len(header.names) else None
        rule = Rule("read.number_not_excel", cell=cell, written=repr(value))
        report.add(source.problem(rule, row, name or None, value))
    for position in range(header.width):
        if layout.column_hidden(position):
            name = header.names[position] if position < len(header.names) else None
            report.add(source.problem(Rule("read.column_hidden", position=position + 1), header.row, name or None))


def _too_many(source: Source, report: ImportReport, left: int, numbers: list[int], buffer: list) -> bool:
    if len(buffer) <= left:
        return False
    report.add(source.problem(Rule("read.too_many_rows", count=max_rows()), numbers[left]))
    return True


def _chunk(
    header: Header, buffer: list[list[str]], numbers: list[int], done: int, numeric: list[list[int]] | None = None
) -> Chunk:
    # pandas' own string dtype: the checks run vectorised over it, where object columns loop in Python
    if buffer:
        frame = pd.DataFrame(buffer, columns=header.names, dtype=str)
    else:
        frame = pd.DataFrame({n: pd.Series(dtype=str) for n in header.names})
    typed = None
    if numeric is not None:  # the number cells of a workbook's rows, by column position
        typed = np.zeros((len(buffer), len(header.names)), dtype=bool)
        for row, positions in enumerate(numeric):
            typed[row, [p for p in positions if p < len(header.names)]] = True
    return Chunk(frame, np.asarray(numbers, dtype=np.int64), done, typed)


def _wrong_width(source: Source, width: int, row_no: int, fields: list[str], report: ImportReport) -> None:
    extra = [(i, f) for i, f in enumerate(fields[width:], start=width + 1) if f.strip()]
    if extra:
        position, value = extra[0]
        rule = Rule("read.row_extra_value", fields=len(fields), width=width, position=position)
        report.add(source.problem(rule, row_no, None, value))
        return
    code = "read.row_too_few_fields" if len(fields) < width else "read.row_too_many_fields"
    report.add(source.problem(Rule(code, fields=len(fields), width=width), row_no))


def _row_shape_ok(source: Source, named: int, row_no: int, fields: list[str], report: ImportReport) -> bool:
    """A workbook row with cells beyond the header: fine only when they are empty."""
    extra = [(i, f) for i, f in enumerate(fields[named:], start=named + 1) if f.strip()]
    if extra:
        position, value = extra[0]
        report.add(source.problem(Rule("read.value_without_header", position=position), row_no, None, value))
        return False
    return True


def _csv_records(source: Source, position: list[int]) -> Iterator[tuple[int, list[str], None, None, None]]:
    """(row number as Excel shows it, fields, None, None, None) per record; `position[0]` follows the bytes read."""
    with source.path.open("rb") as raw, open(raw.fileno(), encoding="utf-8-sig", newline="", closefd=False) as fh:
        reader = csv.reader(fh, delimiter=source.delimiter, strict=True)
        row_no = 0
        try:
            for fields in reader:
                row_no += 1
                if not row_no & 0xFFF:
                    position[0] = raw.tell()
                # a line before the table (Excel's separator line, one line without quotes) is no row: read as
                # a blank line, it keeps its number
                yield row_no, [] if row_no <= source.skip_lines else fields, None, None, None
        except csv.Error as exc:
            raise MalformedText(row_no + 1, _csv_reason(str(exc))) from None


class MalformedText(Exception):
    """A CSV the csv module cannot parse from `row` on; `reason` is the problem's rule."""

    def __init__(self, row: int, reason: Rule):
        super().__init__(reason)
        self.row, self.reason = row, reason


def _csv_reason(message: str) -> Rule:
    if "field larger than field limit" in message:
        return Rule("read.cell_too_long", count=csv.field_size_limit())
    if "unexpected end of data" in message or "EOF" in message:
        return Rule("read.quote_not_closed")
    if "expected after" in message:  # "',' expected after '\"'": text after a closing quote
        return Rule("read.text_after_quote")
    return Rule("read.malformed_csv", detail=short(message, 120))


#: Cell types that are plain values; anything else (formulas, array formulas, rich text, errors) is refused.
_PLAIN = (str, int, float, bool, dt.datetime, dt.date)


def cell_text(value: object) -> str:
    """A plain cell value as the text a person reads in the cell.

    A yes/no cell reads TRUE or FALSE, not 1 or 0: a number column refuses it as the CSV text TRUE is refused,
    and a yes/no column (own_hospital, a target's active) takes it as it takes the CSV text true.
    """
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, dt.datetime):
        return value.date().isoformat() if value.time() == dt.time() else value.isoformat(sep=" ")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)
    if isinstance(value, str) and "_x" in value:
        return excel_unescape(value)
    return str(value)


#: Number formats under which a cell shows its number as cell_text writes it (Excel's default, and text)
_GENERAL_FORMATS = frozenset({"General", "@"})
#: A format of zeros only shows a whole number padded with leading zeros: 5 under 0000 reads 0005
_ZERO_PADDED = re.compile(r"0+")
#: Excel's General format shows a number longer than this many characters otherwise: 123456789012 (an id typed as
#: a number, or written by pandas from an int64 column) reads 1.23457E+11, -1234567890.5 reads -1234567891
_GENERAL_CHARACTERS = 11
#: Excel keeps this many significant digits of a number: 1234567890123456789 written by a program reads
#: 1234567890123450000 under any format
_EXCEL_DIGITS = 15


def shown_cell(cell: object, layout: Layout | None = None) -> tuple[str, str | None]:
    """A workbook cell (openpyxl, read-only) as the text a person reads in it, and the cell's number format when
    it is a number whose format may show another text (1.00E+05, 5.0, 50%): None when the text is what it shows.
    A number under a format of zeros reads with the leading zeros it shows (5 under 0000 is 0005); one under
    General (or Text) whose text is longer than General shows is told as its format too. A text is read
    through the sheet's `layout` where openpyxl gives a shared string otherwise than Excel shows it
    (Layout.shown_text; check Layout.unclear_texts first). A number format that cannot be read raises DamagedRow.
    """
    value = getattr(cell, "value", None)
    if isinstance(value, str) and layout is not None:
        return layout.shown_text(value), None
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            number_format = getattr(cell, "number_format", "General")
        except Exception as exc:  # a style the workbook does not have (s="99" of 3): Excel calls it damaged
            raise DamagedRow(int(getattr(cell, "row", 0) or 0), type(exc).__name__) from None
        text = cell_text(value)
        if number_format not in _GENERAL_FORMATS:
            if _ZERO_PADDED.fullmatch(number_format) and 0 <= value < 10**_EXCEL_DIGITS and float(value).is_integer():
                return str(int(value)).zfill(len(number_format)), None
            return text, number_format
        if len(text) > _GENERAL_CHARACTERS:  # General shows it shortened or in scientific notation
            return text, number_format
        return text, None
    return cell_text(value), None


#: A number format's tokens: a quoted literal, an escaped character, a [bracket] (colour, condition, locale), a
#: padding (_x) or fill (*x) with its character, one other character
_FORMAT_TOKEN = re.compile(r'"[^"]*"?|\\.|\[[^\]]*\]?|[_*].?|.', re.DOTALL)
_FORMAT_CONDITION = re.compile(r"\[(<=|>=|<>|<|>|=)\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\]")
_COMPARE = {
    "<": lambda a, b: a < b,
    ">": lambda a, b: a > b,
    "=": lambda a, b: a == b,
    "<=": lambda a, b: a <= b,
    ">=": lambda a, b: a >= b,
    "<>": lambda a, b: a != b,
}


@functools.lru_cache(maxsize=256)
def _format_sections(number_format: str) -> tuple[tuple[str, ...], ...] | None:
    """A number format's sections (split at ';' outside quotes and brackets), each as its tokens; None for a date
    format (openpyxl reads the cell as its date, which the date checks read)."""
    from openpyxl.styles.numbers import is_date_format

    if is_date_format(number_format):
        return None
    sections: list[tuple[str, ...]] = []
    tokens: list[str] = []
    for token in _FORMAT_TOKEN.findall(number_format):
        if token == ";":
            sections.append(tuple(tokens))
            tokens = []
        else:
            tokens.append(token)
    sections.append(tuple(tokens))
    return tuple(sections)


def _number_section(sections: tuple[tuple[str, ...], ...], value: float) -> tuple[str, ...] | None:
    """The section Excel shows `value` with (None: none, Excel shows ####): the conditions' sections in order
    and then the first without one; else positive;negative;zero (two sections: zero with the first)."""
    numeric = sections[:3]
    conditions = [next((m for t in s if (m := _FORMAT_CONDITION.fullmatch(t))), None) for s in numeric]
    if any(conditions):
        for section, condition in zip(numeric, conditions, strict=True):
            if condition is None or _COMPARE[condition[1]](value, float(condition[2])):
                return section
        return None
    if len(numeric) == 1 or value > 0 or (value == 0 and len(numeric) == 2):
        return numeric[0]
    return numeric[1] if value < 0 else numeric[2]


def _shows_number(section: tuple[str, ...], value: float) -> bool:
    """Whether a format section shows the number as it is: it has a digit (0 # ?) or General, shows a digit for
    this value (# and ? show none for a value that rounds to 0: 0 under # reads as an empty cell), and does not
    divide the number by a thousand (a comma after the digits: #,##0, shows 1500 as 2)."""
    words = "".join(t for t in section if len(t) == 1).lower()
    if "general" in words:
        return True
    digits = [i for i, t in enumerate(section) if t in ("0", "#", "?")]
    if not digits:
        return False
    point = next((i for i, t in enumerate(section) if t == "."), len(section))
    decimals = sum(1 for i in digits if i > point)
    if "0" not in section and "/" not in section and abs(value) < 0.5 * 10.0**-decimals:
        return False
    commas = [i for i, t in enumerate(section) if t == ","]
    return not any(i > digits[0] and not any(d > i for d in digits) for i in commas) and not any(
        i > digits[0] and section[i + 1 : i + 2] == (".",) for i in commas
    )


def _shows_negative(section: tuple[str, ...]) -> bool:
    """Whether a section for negative numbers shows them as negative: Excel writes no minus sign of its own there,
    so the section has one, parentheses (accounting) or a colour ([Red], as Excel's own formats offer)."""
    return any(("-" in t or "(" in t) and not t.startswith(("[", "_", "*")) for t in section) or any(
        t.startswith("[") and t[1:-1].strip().lower() in _COLOURS for t in section
    )


_COLOURS = frozenset({"red", "rood", "black", "blue", "cyan", "green", "magenta", "white", "yellow"}) | {
    f"color{n}" for n in range(1, 57)
}


@functools.lru_cache(maxsize=256)
def _shown_digits(section: tuple[str, ...]) -> tuple[str, int, int, int]:
    """How a format section shows a number's digits: (how, the percent signs, decimals or the fraction's
    denominator, integer places), `how` one of general, fixed, scientific, fraction (denominator fixed as written),
    fraction_up_to (a denominator of up to that many digits)."""
    words = [t for t in section if len(t) == 1]
    percent = words.count("%")
    if "general" in "".join(words).lower():
        return "general", percent, 0, 0
    if "/" in words:  # a fraction: # ?/? (denominator up to 9), # ??/100 (hundredths)
        after = section[section.index("/") + 1 :]
        fixed = "".join(t for t in after if t.isdigit())
        if fixed:
            return "fraction", percent, int(fixed), 0
        return "fraction_up_to", percent, sum(1 for t in after if t in ("0", "#", "?")), 0
    exponent = next(
        (i for i, t in enumerate(section) if t in ("E", "e") and section[i + 1 : i + 2] in (("+",), ("-",))), None
    )
    mantissa = section if exponent is None else section[:exponent]
    point = next((i for i, t in enumerate(mantissa) if t == "."), len(mantissa))
    decimals = sum(1 for t in mantissa[point + 1 :] if t in ("0", "#", "?"))
    places = sum(1 for t in mantissa[:point] if t in ("0", "#", "?"))
    return ("fixed" if exponent is None else "scientific"), percent, decimals, places


def _rounds(section: tuple[str, ...], value: float) -> bool:
    """Whether a format section shows the number rounded to another number: fewer decimals than it has (1.5
    under 0 reads 2, 24.04 under 0.0 reads 24.0, 0.125 under 0% reads 13%, 123456 under 0.0E+00 reads 1.2E+05),
    or a fraction that is not the number (0.3 under # ?/? reads 2/7). A difference a float's last digits make
    (0.30000000000000004 under 0.00) is no other number. A percent sign shows the number times 100 (0.5 under 0%
    reads 50%, which is the number 0.5: not rounded). General shows up to ten or eleven digits: not judged."""
    how, percent, digits, places = _shown_digits(section)
    if how == "general":
        return False
    scaled = float(value) * 100.0**percent
    if how == "fixed":
        shown = round(scaled, digits)
    elif how == "scientific":
        if scaled == 0 or not math.isfinite(scaled):
            return False
        shown = float(f"{scaled:.{digits + max(places, 1) - 1}e}")
    else:
        from fractions import Fraction

        if how == "fraction":
            shown = float(Fraction(round(scaled * digits), digits))
        else:
            shown = float(Fraction(scaled).limit_denominator(max(10**digits - 1, 1)))
    return not math.isclose(shown, scaled, rel_tol=1e-9, abs_tol=1e-12)


def format_hides(cell: object) -> str | None:
    """The cell's number format when Excel shows the cell's value otherwise than it is stored: no number at all
    (the format ;;; that hides a cell, an empty or text-only section for zero, a condition such as [<5]"<5"), a
    number divided by a thousand (#,##0,), rounded to another number (1.5 under 0 reads 2: _rounds), a negative
    number without its sign (0;0 shows -4 as 4), or a text
    under a text section that is not @ alone (;;; hides it, "H"@ shows H before it). A reader of the workbook does
    not read the value the import would store; the formula bar shows it, the sheet does not. None for every other
    cell (General, Text, the decimals the number has, %, dates, ...)."""
    value = getattr(cell, "value", None)
    if value is None or isinstance(value, bool | dt.date) or not getattr(cell, "has_style", True):
        return None
    try:
        number_format = getattr(cell, "number_format", "General")
    except Exception as exc:  # a style the workbook does not have (s="99" of 3): Excel calls it damaged
        raise DamagedRow(int(getattr(cell, "row", 0) or 0), type(exc).__name__) from None
    if number_format in _GENERAL_FORMATS or not isinstance(number_format, str):
        return None
    sections = _format_sections(number_format)
    if sections is None:
        return None
    if isinstance(value, str):
        if len(sections) >= 4:
            text = sections[3]
        elif len(sections) == 1 and "@" in sections[0] and not {"0", "#", "?"} & set(sections[0]):
            text = sections[0]
        else:  # no text section: Excel shows the text as typed
            return None
        shown = [t for t in text if not t.startswith(("[", "_", "*"))]  # colours, padding and fill show no text
        return None if shown == ["@"] else number_format
    if isinstance(value, int | float):
        section = _number_section(sections, value)
        if section is None or not _shows_number(section, value) or _rounds(section, value):
            return number_format
        if value < 0 and section is not sections[0] and not _shows_negative(section):
            return number_format  # 0;0 shows -4 as 4: a second section writes its own sign, or none
        return None
    return None


def _xlsx_records(
    source: Source, layout: Layout
) -> Iterator[tuple[int, list[str], list[tuple[int, Odd]] | None, list[tuple[int, str]] | None, list[int]]]:
    """Like _csv_records, plus the cells that are not plain values: (column position, the value's type name, or
    None for a formula); the positions of the number cells (Chunk.numeric); and the number cells whose format
    may show another text than the number: (column
    position, the format). A number under a format of zeros is read with the leading zeros it shows. `layout`
    is filled with the sheet's merged cells and hidden rows and columns before the first row."""
    wb, fh = _open_workbook(source.path)
    try:
        title = source.sheet_title or source.sheet
        ws = wb[title]
        found = sheet_layout(fh, title)
        for name in (f.name for f in dataclasses.fields(found)):  # every field the sheet's part gave
            setattr(layout, name, getattr(found, name))
        for row_no, cells in enumerate(sheet_rows(ws, fh, title), start=1):
            fields = []
            odd: list[tuple[int, Odd]] | None = None
            formatted: list[tuple[int, str]] | None = None
            typed: list[int] = []
            for col, cell in enumerate(cells):
                value = cell.value
                if value is not None and not isinstance(value, _PLAIN):
                    odd = [*(odd or []), (col, type(value).__name__)]
                    fields.append("")
                    continue
                if isinstance(value, str) and value in layout.unclear_texts:
                    odd = [*(odd or []), (col, layout.unclear_texts[value])]
                    fields.append("")
                    continue
                text, number_format = shown_cell(cell, layout)
                if (hiding := format_hides(cell)) is not None:  # ;;; hides it, #,##0, shows 1500 as 2, ...
                    odd = [*(odd or []), (col, FormatHides(hiding, text))]
                    fields.append("")
                    continue
                if isinstance(value, str) and text.startswith("=") and len(text) > 1:  # = or _x003D_ (Excel's code)
                    odd = [*(odd or []), (col, None)]
                if number_format is not None:
                    formatted = [*(formatted or []), (col, number_format)]
                if isinstance(value, int | float) and not isinstance(value, bool):
                    typed.append(col)
                fields.append(text)
            while fields and fields[-1] == "":
                fields.pop()
            yield row_no, fields, odd, formatted, typed
    finally:
        wb.close()
        fh.close()
