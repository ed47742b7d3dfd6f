"""What a workbook sheet shows its reader differently from the cells the import reads.

openpyxl's read-only mode (the only one that reads a large sheet in bounded memory) gives the cell values but not
the sheet's layout, so three things a reader sees otherwise went unnoticed:

- merged cells: Excel shows the first cell's value over the whole range; the import read the other cells as
  empty (a BMI merged over two rows was stored for the first care cycle only);
- hidden rows (hidden by hand or by a filter) and hidden columns: their values were imported although a reader of
  the workbook does not see them, as a hidden sheet's were before it was refused;
- a row written again or out of order (row 3 after row 6, two rows 3): openpyxl leaves it out without a word,
  Excel calls the file damaged and offers to repair it; either way the reader's rows are not the cells read;
- a cell written again or out of order within its row (C2 before A2, a second B2, a cell of row 5 inside row
  2): openpyxl's read-only mode ends a row at its last cell written, so the cells before that were left out (a
  row written F2, A2 was read as A2 alone) or put in another row;
- a text of the shared strings table written with Excel's codes (ECMA-376 ST_Xstring, excel_unescape): openpyxl
  deletes every 'x005F_' from those texts (and only those: not from inline strings), so the text Excel shows as
  _x0043_ (written _x005F_x0043_) reached the reader as _x0043_ and was read as the letter C, and a text
  ax005F_b as ab. The table is read here as written, and each of its texts openpyxl changes is read as Excel shows
  it (Layout.shown_text); one that two written texts could have given is refused (Layout.unclear_texts);
- a number cell's value written otherwise than Excel writes a number (6_1, " 61 ", infinity, 1e5_0, digits of
  another script): openpyxl reads it through Python's int() and float(), which take 6_1 as 61, where Excel shows
  an error or refuses the file (Layout.numbers_not_excel). Only a part holding a value that may be such (a
  character no number has: also every error or text cell's value) is read with each cell's type, so a sheet of
  numbers costs one more C-speed search (+0.7 s CPU over 1.8 s on a 2.4 million-cell sheet that openpyxl reads in 21 s).

The sheet's XML is scanned for the row, column and merge elements only, in blocks, with byte regular expressions
(C speed; a 200,000-row sheet is a few tenths of a second), and only when the part mentions them at all.
"""

from __future__ import annotations

import contextlib
import math
import posixpath
import re
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import BinaryIO
from xml.etree import ElementTree

_BLOCK = 4 << 20
_PREFIX = rb"<(?:[A-Za-z_][\w.-]*:)?"
_ROW = re.compile(_PREFIX + rb"row\b([^>]*)>")
_CELL = rb"""c\b(?:[^>]*?\br\s*=\s*["']([A-Za-z]{1,3})([0-9]+)["'])?[^>]*>"""
_TYPE = rb"""(?:(?=[^>]*?\bt\s*=\s*["']([A-Za-z]*)["']))?"""
#: A value's text that may not be a number as Excel writes it: with a character no such number has, or an exponent
#: of three digits or more. One of digits, sign, point and a short exponent is either such a number or one openpyxl
#: cannot read at all (a damaged row), and is left to C speed. A part ends before a '<': its last text is whole
_ODD = rb"""(?=[0-9.eE+\-]*(?:[^0-9.eE+\-<]|[eE][+-]?[0-9]{3}))([^<]*)(?:<|\Z)"""
#: A row's start tag (groups: "row", its attributes) or a cell's (groups: "", "", "", its reference's column letters
#: and row number, both "" when it has none), in the order the part writes them; groups 3 and 6 are always "" (the
#: groups of _ROW_CELL_OR_VALUE, so one loop reads either)
_ROW_OR_CELL = re.compile(_PREFIX + rb"(?:(row)\b([^>]*)>|" + _CELL.replace(b"c\\b", b"c\\b()", 1) + rb")()")
#: As _ROW_OR_CELL, plus each cell's type (t, group 3) and each cell value that may not be a number as Excel writes
#: it (group 6: its text): slower, so used for a part only where _ODD_VALUE finds such a value
_ROW_CELL_OR_VALUE = re.compile(
    _PREFIX + rb"(?:(row)\b([^>]*)>|" + _CELL.replace(b"c\\b", b"c\\b" + _TYPE, 1) + rb"|v\b[^>]*>" + _ODD + rb")"
)
#: A value that may not be a number as Excel writes it, as Excel writes the tag (<v>: a literal, found at C speed),
#: and written any other way (a namespace prefix, attributes), looked for only in a part that writes such a tag
_ODD_VALUE = re.compile(rb"<v>" + _ODD)
_ODD_VALUE_ANY = re.compile(_PREFIX + rb"v\b[^>]*>" + _ODD)
#: The last cell's start tag of a part, read for its type: a value in the next part is this cell's
_LAST_CELL = re.compile(_PREFIX + _CELL.replace(b"c\\b", b"c\\b" + _TYPE, 1))
_LAST_CELL_SPAN = 1 << 20
#: A number as Excel writes a cell's value (XML Schema's double without INF and NaN, and without spaces): openpyxl
#: reads the value through Python's int() and float(), which also take 6_1 (as 61), " 61 ", "infinity", "nan",
#: 1e5_0 and digits of other scripts, values Excel shows as an error or refuses the file for
_EXCEL_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
#: Cell types whose value openpyxl reads through int() or float(): a number (no type, n) and a shared string's index
#: (0_1 read as index 1, another text). A yes/no cell's value other than 0 or 1 is one openpyxl cannot read
_NUMBER_TYPES = (b"", b"n", b"s")
_COL = re.compile(_PREFIX + rb"col\b([^>]*)>")
_MERGE = re.compile(_PREFIX + rb"mergeCell\b([^>]*)>")
_HIDDEN = re.compile(rb"""\bhidden\s*=\s*["'](?:1|true)["']""")
_R = re.compile(rb"""\br\s*=\s*["']([0-9]+)["']""")
_MIN = re.compile(rb"""\bmin\s*=\s*["']([0-9]+)["']""")
_MAX = re.compile(rb"""\bmax\s*=\s*["']([0-9]+)["']""")
_REF = re.compile(rb"""\bref\s*=\s*["']([A-Za-z]{1,3}[0-9]+(?::[A-Za-z]{1,3}[0-9]+)?)["']""")
#: A cell of an inline string or a formula's text: its text is what the sheet part writes, never a shared one
_OWN_TEXT_CELL = re.compile(_PREFIX + rb"""c\b[^>]*?\bt\s*=\s*["'](?:inlineStr|str)["']""")
#: A text run (<r>) of a rich text (not <rPh>, a phonetic reading no cell shows)
_RUN = re.compile(_PREFIX + rb"r[\s>]")
#: Column ranges wider than this are hidden columns beyond the data (hiding K:XFD tidies a sheet); kept as ranges
_MAX_COLUMN = 16384


#: How a workbook's XML writes a character as a code (ECMA-376 ST_Xstring): _x000D_ for the carriage return of a
#: line break pasted from Windows (XML cannot hold most control characters), _x0043_ for a C, _x005F_ for the
#: underscore that starts a code written as text (_x005F_x0043_ is the text _x0043_). Excel and LibreOffice show
#: the character; openpyxl gives the code as text, so 'Heelkunde_x000D_' + a line feed was stored with the letters
#: _x000D_ in it, a unit written H_x0030_1 (Excel shows H01) was stored as a unit no one sees, and the text
#: _x005F_x000D_ was read as '_x005F' + a carriage return.
_EXCEL_ESCAPE = re.compile(r"_x([0-9A-Fa-f]{4})_")
_SURROGATES = re.compile("[\ud800-\udfff]")


def excel_unescape(text: str) -> str:
    """A workbook string as a spreadsheet program shows it: each _xHHHH_ code, read left to right, as the UTF-16
    code unit it stands for (a pair of surrogate codes is the one character beyond U+FFFF they make, an unpaired
    one the replacement character U+FFFD it shows as)."""
    if "_x" not in text:
        return text
    decoded = _EXCEL_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), text)
    if _SURROGATES.search(decoded):
        decoded = decoded.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return decoded


@dataclass
class Layout:
    """The sheet's merged ranges (as Excel names them, first row, first column from 0), hidden rows (1-based) and
    hidden column ranges (from 0, end excluded)."""

    merged: list[tuple[str, int, int]] = field(default_factory=list)
    hidden_rows: set[int] = field(default_factory=set)
    hidden_columns: list[tuple[int, int]] = field(default_factory=list)
    #: (row, the row written before it) of each row the sheet's part holds again or after a later row
    rows_out_of_order: list[tuple[int, int]] = field(default_factory=list)
    #: (row, column position from 0, the cell, the cell written before it) of each cell its row holds again or
    #: after a later cell, or that names another row than the one it is written in ("" before it); one per row
    cells_out_of_order: list[tuple[int, int, str, str]] = field(default_factory=list)
    #: (row, column position from 0, the cell, its value as written) of each number cell whose value is not a number
    #: as Excel writes it (6_1, " 61 ", infinity: Python reads them, Excel shows an error or refuses the file)
    numbers_not_excel: list[tuple[int, int, str, str]] = field(default_factory=list)
    #: openpyxl's text -> the text Excel shows, for each shared string openpyxl reads otherwise than Excel shows it
    shown_texts: dict[str, str] = field(default_factory=dict)
    #: openpyxl's text -> the texts Excel shows, for a text more than one written text could have given: the
    #: shared strings' (and the sheet's own inline strings', read as written) that openpyxl reads alike
    unclear_texts: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def shown_text(self, value: str) -> str:
        """A text cell's value as openpyxl gives it, as the text Excel shows in the cell."""
        shown = self.shown_texts.get(value)
        return excel_unescape(value) if shown is None else shown

    def column_hidden(self, position: int) -> bool:
        return any(start <= position < end for start, end in self.hidden_columns)

    def __bool__(self) -> bool:
        return bool(
            self.merged
            or self.hidden_rows
            or self.hidden_columns
            or self.rows_out_of_order
            or self.cells_out_of_order
            or self.numbers_not_excel
        )

    def unseen(self, filled: Sequence[Sequence[int]]) -> list[tuple[str, int, int, dict[str, object]]]:
        """Where the sheet shows its reader otherwise than the cells read, given each row's filled positions (row 1
        first): (what, row, position, values), `what` one of cells_merged (each range at its first cell), row_hidden
        (a hidden row holding a value, at its first one), column_hidden (a hidden column, at its first value),
        row_out_of_order (a row written again or after a later one, which no reader of the cells sees),
        cell_out_of_order (a cell written again or after a later cell of its row) and number_not_excel (a number
        cell's value Excel does not read as the number read). The one list the sheet readers of external figures and
        improvement workbooks turn into their problems."""
        found: list[tuple[str, int, int, dict[str, object]]] = [
            ("cells_merged", row, position, {"cells": ref}) for ref, row, position in self.merged
        ]
        found += [("row_out_of_order", row, 0, {"after": after}) for row, after in self.rows_out_of_order]
        found += [
            ("cell_out_of_order", row, position, {"cell": cell, "after": after})
            if after
            else ("cell_in_other_row", row, position, {"cell": cell})
            for row, position, cell, after in self.cells_out_of_order
        ]
        found += [
            ("number_not_excel", row, position, {"cell": cell, "written": repr(value)})
            for row, position, cell, value in self.numbers_not_excel
        ]
        columns: set[int] = set()
        for number, positions in enumerate(filled, start=1):
            if positions and number in self.hidden_rows:
                found.append(("row_hidden", number, positions[0], {}))
            for position in positions:
                if position not in columns and self.column_hidden(position):
                    columns.add(position)
                    found.append(("column_hidden", number, position, {"position": position + 1}))
        return found


def same_sheet_names(titles: Sequence[str]) -> list[tuple[str, str]]:
    """(name, the earlier sheet's name), both as the tabs show them (excel_unescape), for each sheet whose name
    equals an earlier one's but for case. Excel keeps a workbook's sheet names unique ignoring case and calls a
    workbook with two such names damaged (its repair renames one): which sheet a reader sees under the name
    cannot be told, and the readers found the one they read by the name (openpyxl lists both)."""
    seen: dict[str, str] = {}
    found = []
    for title in titles:
        shown = excel_unescape(title)
        if shown.casefold() in seen:
            found.append((shown, seen[shown.casefold()]))
        else:
            seen[shown.casefold()] = shown
    return found


def sheet_layout(workbook: str | BinaryIO, sheet: str) -> Layout:
    """The layout of the sheet named `sheet` in the workbook file or stream; an empty Layout when the sheet's part
    cannot be found (the cells are then read as before)."""
    layout = Layout()
    try:
        with _opened_sheet(workbook, sheet) as (zf, fh):
            if fh is None:
                return layout
            own_texts = _scan(fh, layout)
            _shared_texts(zf, layout, own_texts)
    except _UNREADABLE:
        return Layout()
    return layout


def row_after(workbook: str | BinaryIO, sheet: str, row: int) -> int:
    """The number of the first row the sheet's part writes after row `row` (a row without its number is the one
    after the row before): where a reader that stopped after row `row` met what it could not read. row + 1 when
    the part cannot be read."""
    try:
        with _opened_sheet(workbook, sheet) as (_, fh):
            if fh is None:
                return row + 1
            number, rest = 0, b""
            for block in iter(lambda: fh.read(_BLOCK), b""):
                data = rest + block
                end = data.rfind(b">") + 1
                for match in _ROW.finditer(data, 0, end):
                    found = _R.search(match.group(1))
                    number = int(found.group(1)) if found else number + 1
                    if number > row:
                        return number
                rest = data[end:]
    except _UNREADABLE:
        pass
    return row + 1


#: What opening or scanning a damaged workbook's parts raises: the scan then says nothing (openpyxl's read names it)
_UNREADABLE = (KeyError, zipfile.BadZipFile, OSError, ValueError, EOFError, ElementTree.ParseError)


@contextlib.contextmanager
def _opened_sheet(
    workbook: str | BinaryIO, sheet: str
) -> Iterator[tuple[zipfile.ZipFile, BinaryIO] | tuple[zipfile.ZipFile, None]]:
    """The workbook's ZIP and its sheet part `sheet` opened (the part None when the workbook has no such sheet); a
    stream is read from its start and left at its start for the reader after the scan."""
    if hasattr(workbook, "seek"):
        workbook.seek(0)
    try:
        with zipfile.ZipFile(workbook) as zf:
            part = _sheet_part(zf, sheet)
            if part is None:
                yield zf, None
                return
            with zf.open(part) as fh:
                yield zf, fh
    finally:
        if hasattr(workbook, "seek"):
            workbook.seek(0)


def _sheet_part(zf: zipfile.ZipFile, sheet: str) -> str | None:
    """The ZIP part holding the sheet named `sheet`, found as every spreadsheet program finds it (Open Packaging
    Conventions): the package's relationships name the workbook part, the workbook gives the sheet's relationship
    id, and the workbook's relationships that id's part. Names are compared without namespaces, so strict and
    transitional OOXML read alike; these parts are small (a sheet's list), so they are parsed whole."""
    workbook = _workbook_part(zf)
    if workbook is None:
        return None
    rel_id = None
    for element in ElementTree.fromstring(zf.read(workbook)).iter():
        if _local(element.tag) == "sheet" and element.get("name") == sheet:
            rel_id = next((v for k, v in element.attrib.items() if _local(k) == "id"), None)
            break
    found = _targets(zf, workbook).get(rel_id or "")
    return found[1] if found else None


def _workbook_part(zf: zipfile.ZipFile) -> str | None:
    """The workbook part's path, as the package's relationships name it."""
    office = _targets(zf, "")
    return next((target for kind, target in office.values() if kind.endswith("/officeDocument")), None)


def _targets(zf: zipfile.ZipFile, source: str) -> dict[str, tuple[str, str]]:
    """Relationship id -> (type, part path in the ZIP) of the part `source` ("" for the package itself)."""
    folder, name = posixpath.split(source)
    rels = posixpath.join(folder, "_rels", f"{name}.rels")
    try:
        root = ElementTree.fromstring(zf.read(rels))
    except KeyError:
        return {}
    out = {}
    for element in root.iter():
        target = element.get("Target")
        if _local(element.tag) != "Relationship" or not target or element.get("TargetMode") == "External":
            continue
        path = target.lstrip("/") if target.startswith("/") else posixpath.normpath(posixpath.join(folder, target))
        out[element.get("Id", "")] = (element.get("Type", ""), path)
    return out


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _scan(fh: BinaryIO, layout: Layout) -> bool:
    """Fills `layout` from the sheet's part; whether the part holds a cell with a text of its own (an inline
    string, a formula's text), which openpyxl reads as written."""
    # here: openpyxl loads only when a workbook is read
    from openpyxl.utils.cell import column_index_from_string, get_column_letter, range_boundaries

    columns: dict[bytes, int] = {}

    rest = b""
    row = 0
    row_digits = b"0"  # the row's number as a cell reference writes it
    column = 0  # the row's last cell's column (1-based), 0 before its first cell
    flagged = False  # the row's first cell out of order is named; the rest of the row follows from it
    own_texts = False
    cell_type = b""  # the last cell's type (t), "" for a number
    while True:
        block = fh.read(_BLOCK)
        data = rest + block
        if not block:
            end = len(data)
        else:
            # cut only before a '<': no tag is split, nor a cell value's text (cut after a '>', <v>6_ and 1</v>)
            end = data.rfind(b"<")
            if end <= 0:
                rest = data
                continue
        part, rest = data[:end], data[end:]
        if not own_texts and (b"inlineStr" in part or b"str" in part):
            own_texts = _OWN_TEXT_CELL.search(part) is not None
        # a value that may not be a number (rare: text and error cells' values): this part read with cell types
        odd_here = (b"<v>" in part and _ODD_VALUE.search(part) is not None) or (
            (b"<v " in part or b":v>" in part or b":v " in part) and _ODD_VALUE_ANY.search(part) is not None
        )
        for is_row, attrs, kind, letters, digits, odd in (_ROW_CELL_OR_VALUE if odd_here else _ROW_OR_CELL).findall(
            part
        ):
            if odd:  # a value that may not be a number as Excel writes it: of the cell just written
                if cell_type in _NUMBER_TYPES and (value := _not_excel_number(odd)) is not None:
                    at = max(column, 1)
                    cell = f"{get_column_letter(min(at, _MAX_COLUMN))}{row}"
                    layout.numbers_not_excel.append((row, at - 1, cell, value))
                continue
            if not is_row:  # a cell: C speed for the usual one, after the row's last cell and naming its row
                if odd_here:
                    cell_type = kind
                if not letters:  # a cell without its reference is the one after the row's last cell
                    column += 1
                    continue
                at = columns.get(letters)
                if at is None:
                    at = columns[letters] = column_index_from_string(letters.decode("ascii").upper())
                if at > column and digits == row_digits:
                    column = at
                    continue
                cell_row = int(digits)
                if at > column and cell_row == row:  # a row number written with leading zeros
                    column = at
                    continue
                if not flagged:  # "" after: a cell naming another row
                    after = f"{get_column_letter(min(column, _MAX_COLUMN))}{row}" if column and cell_row == row else ""
                    cell = f"{get_column_letter(min(at, _MAX_COLUMN))}{cell_row}"
                    layout.cells_out_of_order.append((row, at - 1, cell, after))
                    flagged = True
                column = max(column, at)
                continue
            number = _R.search(attrs)
            previous, row = row, int(number.group(1)) if number else row + 1
            row_digits, column, flagged = str(row).encode(), 0, False
            if row <= previous:
                layout.rows_out_of_order.append((row, previous))
            if _HIDDEN.search(attrs):
                layout.hidden_rows.add(row)
        if not odd_here:  # the type of the part's last cell, for a value the next part writes before any cell
            for span in (1 << 16, _LAST_CELL_SPAN):
                last = _LAST_CELL.findall(part, max(0, len(part) - span))
                if last or span >= len(part):
                    cell_type = last[-1][0] if last else cell_type
                    break
        if b"hidden" in part:
            for match in _COL.finditer(part):
                attrs = match.group(1)
                low, high = _MIN.search(attrs), _MAX.search(attrs)
                if _HIDDEN.search(attrs) and low and high:
                    start, stop = int(low.group(1)) - 1, min(int(high.group(1)), _MAX_COLUMN)
                    if start < stop:
                        layout.hidden_columns.append((start, stop))
        if b"mergeCell" in part:
            for match in _MERGE.finditer(part):
                ref = _REF.search(match.group(1))
                if ref is None:
                    continue
                text = ref.group(1).decode("ascii").upper()
                try:
                    first_col, first_row, _, _ = range_boundaries(text)
                except ValueError:  # a reference no spreadsheet writes: still merged, its place unknown
                    first_col, first_row = 1, 1
                layout.merged.append((text, int(first_row or 1), int(first_col or 1) - 1))
        if not block:
            return own_texts


def _not_excel_number(written: bytes) -> str | None:
    """The value of a number cell as written (its XML character references read) when it is not a number as Excel
    writes it, or one beyond Excel's numbers (1E999, read as infinity); None when it is one."""
    text = written.decode("utf-8", "replace")
    if "&" in text:
        try:
            text = ElementTree.fromstring(b"<v>" + written + b"</v>").text or ""
        except ElementTree.ParseError:
            return text
    if _EXCEL_NUMBER.fullmatch(text) and math.isfinite(float(text)):
        return None
    return text


def _shared_texts(zf: zipfile.ZipFile, layout: Layout, own_texts: bool) -> None:
    """Fills layout.shown_texts and layout.unclear_texts from the workbook's shared strings table, read as written.

    openpyxl gives a shared string as its text runs joined with every 'x005F_' deleted; Excel shows each run with
    its codes read (excel_unescape). Where the two differ beyond what excel_unescape does to openpyxl's text, the
    text is mapped; where another entry (or, when the sheet holds any, an inline string read as written) gives
    the same openpyxl text but shows otherwise, the cell cannot be told and is refused by the reader. Parsed only
    when the table holds an 'x005F_' or a code inside rich text runs: otherwise every text reads as Excel shows it.
    """
    found = next(
        (target for kind, target in _targets(zf, _workbook_part(zf) or "").values() if kind.endswith("/sharedStrings")),
        None,
    )
    if found is None:
        return
    try:
        info = zf.getinfo(found)
    except KeyError:
        return
    with zf.open(info) as fh:
        tail = b""
        needed = runs = codes = False
        for block in iter(lambda: fh.read(_BLOCK), b""):
            data = tail + block
            needed = needed or b"x005F_" in data
            runs = runs or _RUN.search(data) is not None
            codes = codes or b"_x" in data
            if needed or (runs and codes):
                break
            tail = data[-8:]
        else:
            return
    plain: set[str] = set()  # openpyxl's texts of the entries it reads as Excel shows them
    mapped: dict[str, set[str]] = {}
    with zf.open(info) as fh:
        for _, element in ElementTree.iterparse(fh):
            if _local(element.tag) != "si":
                continue
            kinds = [_local(child.tag) for child in element]
            pieces = [
                _run_text(child) if kind == "r" else (child.text or "")
                for child, kind in zip(element, kinds, strict=True)
                if kind in ("t", "r")
            ]
            element.clear()
            given = "".join(pieces).replace("x005F_", "")
            shown = "".join(excel_unescape(piece) for piece in pieces)
            if shown == excel_unescape(given):
                plain.add(given)
            else:
                mapped.setdefault(given, set()).add(shown)
    for given, shown in mapped.items():
        candidates = set(shown)
        if given in plain or own_texts:
            candidates.add(excel_unescape(given))
        if len(candidates) == 1:
            layout.shown_texts[given] = next(iter(candidates))
        else:
            layout.unclear_texts[given] = tuple(sorted(candidates))


def _run_text(run: ElementTree.Element) -> str:
    """A rich text run's text (its <t>; its <rPr> is formatting)."""
    return next((child.text or "" for child in run if _local(child.tag) == "t"), "")
