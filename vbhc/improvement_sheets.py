"""Targets and improvement actions as XLSX, and back: teams keep their plans in spreadsheets, so the dashboard
exports its current items and imports the edited file with the same care as a registry file.

- A row names the item and the version it was exported at; a row whose item changed since is refused (the same
  optimistic concurrency as an edit on a page), and a row without an item id creates a new item.
- Every row is checked first (columns, values, role rules); one problem refuses the whole file with a one-line
  message naming file, row, column and value, and nothing is written. A file without problems is written in one
  transaction, with its audit event.
- Exports neutralise text a spreadsheet would run as a formula (vbhc.safety); the import takes that apostrophe
  off again, and refuses real formulas (paste the values instead), like the registry import.
"""

from __future__ import annotations

import io
import math
import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from openpyxl import Workbook, load_workbook
from sqlalchemy import Connection, Engine

from vbhc import audit
from vbhc.access import AccessDenied, Viewer, export_file, may_edit_improvement, may_read_improvement, may_set_norms
from vbhc.catalog import Catalog, default_catalog
from vbhc.i18n import t
from vbhc.improvement import (
    ALL_UNITS,
    EditConflict,
    ImprovementError,
    ItemKind,
    Label,
    SecondOfKey,
    Write,
    actions,
    check_values,
    current_version,
    item_kind,
    norm_involved,
    target_key,
    targets,
    unit_refusal,
    write_versions,
)
from vbhc.ingest.layout import Layout, excel_unescape, same_sheet_names, sheet_layout
from vbhc.ingest.problems import (
    EXCEL_ERRORS,
    invisible_character,
    lookalike_character,
    one_line,
    shown_file,
    shown_value,
)
from vbhc.ingest.read import (
    DamagedRow,
    _check_xlsx_container,
    format_hides,
    header_below,
    row_text,
    sheet_looks_like_table,
    sheet_rows,
    shown_cell,
)
from vbhc.registry import unit_ids
from vbhc.safety import FORMULA_TRIGGERS, neutralise_formula
from vbhc.settings import max_upload_mb

__all__ = [
    "ACTION_COLUMNS",
    "SHEETS",
    "TARGET_COLUMNS",
    "SheetImport",
    "SheetProblem",
    "SheetRefused",
    "export_actions",
    "export_targets",
    "import_actions",
    "import_targets",
]

TARGET_COLUMNS = (
    "item_id",
    "version",
    "condition",
    "indicator",
    "unit",
    "kind",
    "value",
    "direction",
    "source",
    "valid_from",
    "active",
)
ACTION_COLUMNS = (
    "item_id",
    "version",
    "condition",
    "unit",
    "title",
    "owner_role",
    "start",
    "due",
    "status",
    "indicators",
    "signals",
    "expected_effect",
)
SHEETS = {ItemKind.TARGET: "targets", ItemKind.ACTION: "actions"}
_COLUMNS = {ItemKind.TARGET: TARGET_COLUMNS, ItemKind.ACTION: ACTION_COLUMNS}
#: The column a value error belongs to, for errors that do not name their field.
_ERROR_COLUMN = {
    "unknown_condition": "condition",
    "unknown_indicator": "indicator",
    "norm_needs_source": "source",
    "due_before_start": "due",
    "unknown_signal": "signals",
    "fixed_field": "condition",
}
#: The actions sheet names its indicators in one column, "indicators" (the targets sheet: "indicator")
_ACTION_ERROR_COLUMN = {**_ERROR_COLUMN, "unknown_indicator": "indicators"}
#: Columns of words a person writes; every other column holds ids and codes (item, unit, indicator, signal ids),
#: where a look-alike character makes another id that reads the same (vbhc.ingest.problems.lookalike_character)
_FREE_TEXT = frozenset({"title", "owner_role", "source", "expected_effect"})
#: Columns of ids and codes, where a number cell must read as its number (shown_cell): not the numbers, dates, yes/no
_NOT_IDS = {"version", "value", "valid_from", "active", "start", "due"}
_ID_COLUMNS = frozenset(TARGET_COLUMNS + ACTION_COLUMNS) - _FREE_TEXT - _NOT_IDS
#: What the registry import's detection (vbhc.ingest.read._check_xlsx_container) finds a file to be when it is no
#: XLSX workbook a program could save again as one: told as what it is with what to do ("save it as .xlsx"), not as
#: a workbook without the sheet, which sends its owner looking for a sheet in a file this import cannot read
_FILE_KIND = {
    "read.workbook_encrypted": "workbook_encrypted",
    "read.old_xls": "old_xls",
    "read.opendocument": "opendocument",
    "read.xlsb": "xlsb",
}
_TRUE, _FALSE = {"1", "true", "yes", "ja", "waar"}, {"0", "false", "no", "nee", "onwaar"}
_MB = 1024 * 1024
#: A number as a person writes it in a cell (Python's float() also reads "1_000", "inf" and other scripts' digits)
_PLAIN_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


# --------------------------------------------------------------------------------------------- problems
@dataclass(frozen=True)
class SheetProblem:
    """One refused cell: where it is (as the person sees it in Excel) and why, in either language."""

    file: str
    row: int  # as Excel shows it; 0 for a problem with the file as a whole
    column: str
    value: str
    error: ImprovementError

    def text(self, lang: str) -> str:
        """One line, also where the cell (quoted, or named by the rule) holds a line break."""
        if self.row == 0:  # the file itself (not a workbook, no such sheet)
            text = t("improvement.sheet_file_problem", lang, file=shown_file(self.file), rule=self.error.message(lang))
        elif not self.column:  # the row as a whole (a cell of it that cannot be read)
            rule = self.error.message(lang)
            text = t("improvement.sheet_row_problem", lang, file=shown_file(self.file), row=self.row, rule=rule)
        else:
            text = t(
                "improvement.sheet_problem",
                lang,
                file=shown_file(self.file),
                row=self.row,
                column=self.column,
                value=shown_value(self.column, self.value) or "",
                rule=self.error.message(lang),
            )
        return one_line(text)

    def __str__(self) -> str:
        return self.text("en")


class SheetRefused(ImprovementError):
    """The file had problems; nothing was written. `problems` lists every one (the message names the first)."""

    def __init__(self, file: str, problems: Sequence[SheetProblem]) -> None:
        self.file, self.problems = file, list(problems)
        super().__init__("sheet_refused", file=shown_file(file), count=len(self.problems), first="")

    def message(self, lang: str) -> str:
        first = self.problems[0].text(lang) if self.problems else ""
        return t("improvement.sheet_refused", lang, file=shown_file(self.file), count=len(self.problems), first=first)


@dataclass
class SheetImport:
    """What an accepted file did: item ids created and updated, rows unchanged."""

    file: str
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: int = 0
    #: the workbook's other sheets, of notes (a sheet of this file's rows is refused): not read, said in the summary
    not_read: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------------------------- export
def _cell(value: Any) -> Any:
    if isinstance(value, bool):
        return 1 if value else 0
    return neutralise_formula(value)


def _workbook(kind: ItemKind, rows: list[dict[str, Any]]) -> bytes:
    wb = Workbook()
    ws = wb.active
    ws.title = SHEETS[kind]
    columns = _COLUMNS[kind]
    ws.append(list(columns))
    for row in rows:
        ws.append([_cell(row.get(c)) for c in columns])
    for letter_cells in ws.iter_cols(min_row=1, max_row=1):
        ws.column_dimensions[letter_cells[0].column_letter].width = 18
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def export_targets(
    engine: Engine, viewer: Viewer, condition: str | None = None, *, file_name: str = "targets.xlsx"
) -> bytes:
    """The current targets (retired ones too, marked active 0) as XLSX; checked and audited as an export."""
    rows = [item.model_dump() for item in targets(engine, viewer, condition, active_only=False)]
    return export_file(
        viewer,
        lambda: _workbook(ItemKind.TARGET, rows),
        what="improvement targets",
        file_name=file_name,
        condition=condition,
        engine=engine,
    )


def export_actions(
    engine: Engine, viewer: Viewer, condition: str | None = None, *, file_name: str = "actions.xlsx"
) -> bytes:
    """The current improvement actions as XLSX (linked indicators and signals comma-separated)."""
    rows = []
    for item in actions(engine, viewer, condition):
        row = item.model_dump()
        row["indicators"] = ", ".join(item.indicator_ids)
        row["signals"] = ", ".join(item.signal_ids)
        rows.append(row)
    return export_file(
        viewer,
        lambda: _workbook(ItemKind.ACTION, rows),
        what="improvement actions",
        file_name=file_name,
        condition=condition,
        engine=engine,
    )


# --------------------------------------------------------------------------------------------- import
def import_targets(
    engine: Engine,
    viewer: Viewer,
    source: Path | bytes,
    *,
    file_name: str | None = None,
    catalog: Catalog | None = None,
) -> SheetImport:
    """Import an edited targets workbook (sheet "targets"): all rows or none."""
    return _import(engine, viewer, ItemKind.TARGET, source, file_name, catalog or default_catalog())


def import_actions(
    engine: Engine,
    viewer: Viewer,
    source: Path | bytes,
    *,
    file_name: str | None = None,
    catalog: Catalog | None = None,
) -> SheetImport:
    """Import an edited actions workbook (sheet "actions"): all rows or none."""
    return _import(engine, viewer, ItemKind.ACTION, source, file_name, catalog or default_catalog())


def _plain(shown: str) -> str:
    """A cell's text as a person reads it (vbhc.ingest.read.shown_cell), the export's neutralising apostrophe
    taken off again."""
    text = shown.strip()
    if text.startswith("'") and text[1:].lstrip().startswith(FORMULA_TRIGGERS):
        return text[1:]
    return text


def _rows(
    data: bytes, kind: ItemKind, file: str, not_read: list[str] | None = None
) -> tuple[list[tuple[int, dict[str, str]]], list[SheetProblem]]:
    """The sheet's data rows as {column: text} with their Excel row numbers, or the problems that stop reading.
    The workbook's other sheets are not read: one holding rows of this kind is refused naming it (they would
    silently not be imported), one of notes is named in `not_read`."""
    columns = _COLUMNS[kind]
    sheet = SHEETS[kind]
    expected = ", ".join(columns)

    def problem(row: int, column: str, value: str, key: str, **values: Any) -> SheetProblem:
        return SheetProblem(file, row, column, value, ImprovementError(key, **values))

    why = None if len(data) > max_upload_mb() * _MB else _check_xlsx_container(io.BytesIO(data))
    if why is not None and why.code in _FILE_KIND:  # what the file is stops it (or its password), not the sheet
        return [], [problem(0, "", "", _FILE_KIND[why.code])]
    if len(data) > max_upload_mb() * _MB or why is not None:
        return [], [problem(0, "", "", "not_a_sheet", sheet=sheet)]
    try:
        wb = load_workbook(io.BytesIO(data), read_only=True, data_only=False)
    except Exception:  # openpyxl raises many kinds for a damaged workbook
        return [], [problem(0, "", "", "not_a_sheet", sheet=sheet)]
    try:
        for name, earlier in same_sheet_names(wb.sheetnames):  # Excel calls it damaged: which sheet is unknown
            return [], [problem(0, "", "", "sheet_name_twice", sheet=repr(name), other=repr(earlier))]
        # the sheet as its tab shows its name (Excel's _xHHHH_ codes read: _x0074_argets is the sheet targets)
        title = next((title for title in wb.sheetnames if excel_unescape(title) == sheet), None)
        if title is None:
            return [], [problem(0, "", "", "not_a_sheet", sheet=sheet)]
        ws = wb[title]
        if getattr(ws, "sheet_state", "visible") != "visible":  # the sheet read is one no reader sees
            return [], [problem(0, "", "", "sheet_hidden", sheet=sheet)]
        for other in (name for name in wb.sheetnames if name != title):
            header = sheet_looks_like_table(wb[other], [c for c in columns if c not in ("item_id", "version")])
            if header is not None:
                return [], [problem(header, "", "", "other_sheet_has_rows", sheet=repr(excel_unescape(other)),
                                    read=repr(sheet))]  # fmt: skip
            if not_read is not None:
                not_read.append(excel_unescape(other))
        # the sheet's layout first: a shared string openpyxl reads otherwise than Excel shows it is read through it
        layout = sheet_layout(io.BytesIO(data), title)
        # the cells, not their values only: a number's format tells whether it shows another text (shown_cell)
        hiding: list[tuple[int, int, str, str]] = []  # (row, position, format, text): a format that hides the value
        try:
            raw_rows = []
            for number, row in enumerate(sheet_rows(ws, io.BytesIO(data), title), start=1):
                raw_rows.append([(cell.value, *shown_cell(cell, layout)) for cell in row])
                hiding.extend(
                    (number, position, found, raw_rows[-1][position][1])
                    for position, cell in enumerate(row)
                    if (found := format_hides(cell)) is not None
                )
        except DamagedRow as damaged:  # a cell openpyxl cannot read: Excel calls the file damaged
            if layout.numbers_not_excel:  # a number openpyxl cannot read (nan, infinity): named as written
                return [], [problem(row, "", "", what, **values) for what, row, _, values in layout.unseen([])]
            return [], [problem(damaged.row, "", "", "row_damaged", error=damaged.error)]
    finally:
        wb.close()
    # the header is the first row with a value (blank rows above it are no rows, as in the registry import)
    first = next((i for i, cells in enumerate(raw_rows) if any(text.strip() for _, text, _ in cells)), 0)
    unseen = _unseen(raw_rows, layout, problem, first)
    if unseen:
        return [], unseen
    if raw_rows and not any(_plain(text).lower() in columns for _, text, _ in raw_rows[first]):
        # a title or note above the table ('Doelen 2026'): refused naming it and the header's row, where its first
        # row was read as the header (an unknown column for the title, every column missing)
        texts = ((n, [text for _, text, _ in cells]) for n, cells in enumerate(raw_rows, start=1))
        below = header_below(texts, first + 1, columns)
        if below is not None:
            title = row_text([text for _, text, _ in raw_rows[first]])
            return [], [problem(first + 1, "", title, "rows_above_header", header=below)]
    if hiding:  # ;;; hides a value, #,##0, shows 1500 as 2: a reader does not read what would be imported
        names = [text.strip().lower() for _, text, _ in (raw_rows[first] if raw_rows else ())]
        return [], [
            problem(row, names[position] if position < len(names) and names[position] else f"#{position + 1}",
                    text, "cell_format_hides", format=found)
            for row, position, found, text in hiding
        ]  # fmt: skip
    problems: list[SheetProblem] = []
    header = [text.strip().lower() for _, text, _ in (raw_rows[first] if raw_rows else ())]
    while header and header[-1] == "":
        header.pop()
    for position, name in enumerate(header):
        if name not in columns:
            problems.append(problem(first + 1, name or f"#{position + 1}", name, "unknown_column", columns=expected))
    for name in columns:
        if name not in header:
            problems.append(problem(first + 1, name, "", "missing_column", columns=expected))
    for name in dict.fromkeys(n for n in header if n and header.count(n) > 1):
        # two columns of one name: which one a row means cannot be told, so neither is read
        positions = ", ".join(str(i) for i, n in enumerate(header, start=1) if n == name)
        problems.append(problem(first + 1, name, name, "column_twice", positions=positions))
    if problems:
        return [], problems
    rows = []
    for number, raw in enumerate(raw_rows[first + 1 :], start=first + 2):
        cells = list(raw)[: len(header)]
        # a value under no header was left out unseen, the row read without it; the registry import refuses it too
        beyond = [(p, text) for p, (_, text, _) in enumerate(raw[len(header) :], start=len(header) + 1) if text.strip()]
        if beyond:
            position, text = beyond[0]
            problems.append(problem(number, f"#{position}", text, "value_without_header", position=position))
        if all(v is None or (isinstance(v, str) and not v.strip()) for v, _, _ in cells):
            continue
        row: dict[str, str] = {}
        for name, (value, shown, number_format) in zip(
            header, cells + [(None, "", None)] * (len(header) - len(cells)), strict=True
        ):
            text = _plain(shown)
            if number_format is not None and name in _ID_COLUMNS:  # an item or unit 5 shown as 5.0 or 1.00E+05
                problems.append(problem(number, name, text, "id_number_formatted", format=number_format))
            elif isinstance(value, str) and shown.startswith("="):  # =, or _x003D_ as Excel reads it; "=" alone too
                problems.append(problem(number, name, shown, "formula"))
            elif text.upper() in EXCEL_ERRORS:
                problems.append(problem(number, name, text, "excel_error"))
            elif (code := invisible_character(text)) is not None:  # a title or unit that only looks like another
                problems.append(problem(number, name, text, "invisible_character", code=code))
            elif name not in _FREE_TEXT and (odd := lookalike_character(text)) is not None:  # H01/SUR with a Cyrillic С
                problems.append(problem(number, name, text, odd[0], character=odd[1]))
            row[name] = unicodedata.normalize("NFC", text)  # é typed as e + an accent mark is the é it reads as
        rows.append((number, row))
    return rows, problems


def _unseen(
    raw_rows: list[list[tuple]], layout: Layout, problem: Callable[..., SheetProblem], first: int = 0
) -> list[SheetProblem]:
    """Merged cells, and hidden rows and columns that hold a value: the workbook shows its reader other values
    than the cells read (a merged range's value over cells read as empty; values no reader sees); and texts whose
    shown text cannot be told (Layout.unclear_texts). `first`: the header's position in `raw_rows`."""
    names = [text.strip().lower() for _, text, _ in (raw_rows[first] if raw_rows else ())]

    def where(number: int, position: int) -> tuple[int, str, str]:
        cells = raw_rows[number - 1] if 0 < number <= len(raw_rows) else []
        text = cells[position][1] if position < len(cells) else ""
        return number, (names[position] if position < len(names) else "") or f"#{position + 1}", text

    filled = [[p for p, (value, _, _) in enumerate(cells) if value not in (None, "")] for cells in raw_rows]
    found = [problem(*where(row, position), what, **values) for what, row, position, values in layout.unseen(filled)]
    if layout.unclear_texts:  # a shared string two written texts give alike: which one the cell shows is unknown
        found += [
            problem(number, where(number, position)[1], " | ".join(layout.unclear_texts[value]), "text_unclear")
            for number, cells in enumerate(raw_rows, start=1)
            for position, (value, _, _) in enumerate(cells)
            if isinstance(value, str) and value in layout.unclear_texts
        ]
    return found


def _version(text: str) -> int | None:
    """The version a row names: a whole number as written ("3", or 3.0 from a number cell); None for anything
    else (1.7, inf, text), which the row's problem names rather than a version it does not say."""
    if not _PLAIN_NUMBER.fullmatch(text):
        return None
    number = float(text)
    return int(number) if math.isfinite(number) and number.is_integer() else None


def _flag(text: str) -> bool | None:
    lowered = text.strip().lower()
    return True if lowered in _TRUE or lowered == "" else False if lowered in _FALSE else None


def _values(kind: ItemKind, row: dict[str, str]) -> dict[str, Any]:
    if kind == ItemKind.TARGET:
        values: dict[str, Any] = {c: row[c] for c in TARGET_COLUMNS if c not in ("item_id", "version", "active")}
        active = _flag(row["active"])
        if active is None:
            raise ImprovementError("unknown_value", field="active", value=row["active"], allowed="1, 0")
        values["active"] = active
        return values
    values = {c: row[c] for c in ACTION_COLUMNS if c not in ("item_id", "version")}
    for name in ("indicators", "signals"):
        values[name] = [part.strip() for part in row[name].split(",") if part.strip()]
    return values


def _target_key(values: dict[str, Any]) -> tuple:
    """What makes two active targets the same goal: the one definition the forms are held to too (target_key)."""
    return target_key(values)


def _key_values(values: dict[str, Any]) -> dict[str, Any]:
    """A target key's parts as the messages name them (every unit as the catalog's words, not an empty unit)."""
    return {
        "indicator": values["indicator"],
        "unit": values["unit"] or Label("agenda.all_units"),
        "kind": str(values["kind"]),
        "valid_from": values["valid_from"].isoformat(),
    }


def _stored_target_keys(engine: Engine, viewer: Viewer, conditions: set[str]) -> dict[tuple, str]:
    """The stored active targets the viewer reads, of the file's conditions, by key (_target_key)."""
    keys: dict[tuple, str] = {}
    for condition in sorted(conditions):
        try:
            found = targets(engine, viewer, condition)
        except (AccessDenied, ImprovementError, KeyError):  # not the viewer's condition, or none: refused by row
            continue
        for target in found:
            keys[_target_key(target.model_dump())] = target.item_id
    return keys


def _unit_refused(condition: str, unit: str) -> ImprovementError:
    """Why a care team limited to some hospitals may not write a row: the unit named, or the whole condition."""
    if unit == ALL_UNITS:
        return ImprovementError("whole_condition_not_allowed", condition=condition)
    return ImprovementError("unit_not_allowed", unit=unit)


def _same(current: Any, values: dict[str, Any]) -> bool:
    return all(getattr(current, k) == v for k, v in values.items())


def _import(
    engine: Engine, viewer: Viewer, kind: ItemKind, source: Path | bytes, file_name: str | None, catalog: Catalog
) -> SheetImport:
    data = Path(source).read_bytes() if isinstance(source, Path) else bytes(source)
    file = file_name or (Path(source).name if isinstance(source, Path) else f"{SHEETS[kind]}.xlsx")
    not_read: list[str] = []
    rows, problems = _rows(data, kind, file, not_read)
    plan: list[Write] = []
    plan_rows: list[tuple[int, dict[str, str]]] = []  # the file row (number, cells) of each write in the plan
    seen: set[str] = set()
    unchanged = 0
    known_units: frozenset[str] | None = None  # the registry's units as they are at import time, read once
    refused_cells = {(p.row, p.column) for p in problems}  # one problem per cell: its text was refused already
    in_file = {row["item_id"] for _, row in rows if row["item_id"]}
    target_rows: dict[tuple, int] = {}  # an active target's key -> the file row that sets it
    stored_keys: dict[tuple, str] | None = None  # the viewer's stored active targets' keys -> item, read once
    for number, row in rows:

        def refuse(column: str, error: ImprovementError, row: dict[str, str] = row, number: int = number) -> None:
            problems.append(SheetProblem(file, number, column, row.get(column, ""), error))

        item_id, current = row["item_id"] or None, None
        if item_id is not None:
            if item_id in seen:
                refuse("item_id", ImprovementError("duplicate_item", item=item_id))
                continue
            seen.add(item_id)
            try:
                if item_kind(item_id) != kind:
                    raise ImprovementError("not_found", item=item_id)
                current = current_version(engine, viewer, item_id)
            except ImprovementError as error:
                refuse("item_id", error)
                continue
            based_on = _version(row["version"])
            if based_on is None:
                refuse("version", ImprovementError("not_whole", field="version", value=row["version"]))
                continue
            if current.version != based_on:
                conflict = EditConflict(current, based_on)
                refuse("version", ImprovementError("stale", **conflict.values))
                continue
        try:
            values = check_values(
                engine, viewer, kind, _values(kind, row), catalog=catalog, check_roles=False, check_unit=False
            )
        except ImprovementError as error:
            columns = _ACTION_ERROR_COLUMN if kind == ItemKind.ACTION else _ERROR_COLUMN
            column = str(error.values.get("field") or columns.get(error.key, ""))
            refuse(column, error)
            continue
        if (number, "unit") not in refused_cells and (current is None or values["unit"] != current.unit):
            # a new or changed unit names one the registry knows now; a unit as exported stays as it was stored
            if known_units is None:
                known_units = unit_ids(engine)
            if (error := unit_refusal(values["unit"], values["condition"], known_units)) is not None:
                refuse("unit", error)
                continue
        if kind == ItemKind.TARGET and values["active"]:
            # one target of a kind per indicator, unit and date: two (in the file, or a new row beside a stored
            # one) were both stored, the charts drew the one written last and the board judged both
            key = _target_key(values)
            if key in target_rows:
                refuse("indicator", ImprovementError("target_twice", row=target_rows[key], **_key_values(values)))
                continue
            target_rows[key] = number
            if current is None:
                if stored_keys is None:
                    stored_keys = _stored_target_keys(engine, viewer, {r["condition"] for _, r in rows})
                other = stored_keys.get(key)
                if other is not None and other not in in_file:
                    refuse("indicator", ImprovementError("target_exists", item=other, **_key_values(values)))
                    continue
        if current is not None:
            if current.condition != values["condition"]:
                refuse("condition", ImprovementError("fixed_field", item=item_id, field="condition"))
                continue
            if _same(current, values):
                unchanged += 1
                continue
        # role rules for the rows that write: a row left as exported (a norm in a care team's file, another
        # hospital's item in the file of a care team limited to its hospitals) passes; a changed row needs the
        # right to edit the item's unit, the one it had and the one it is given
        condition = values["condition"]
        units = [values["unit"], *([current.unit] if current is not None else [])]
        refused = next((u for u in units if not may_edit_improvement(viewer, condition, u)), None)
        if refused is not None and not may_read_improvement(viewer, condition, ALL_UNITS):  # not its condition
            refuse("condition", ImprovementError("not_allowed", condition=condition))
            continue
        if refused is not None:  # a care team limited to some hospitals: another hospital's unit, or every unit
            refuse("unit", _unit_refused(condition, refused))
            continue
        if kind == ItemKind.TARGET and norm_involved(values, current) and not may_set_norms(viewer):
            refuse("kind", ImprovementError("norm_not_allowed"))
            continue
        plan.append(Write(item_id, current.version if current is not None else 0, values))
        plan_rows.append((number, row))
    what = f"improvement {SHEETS[kind]}"
    digest = audit.sha256_of(data)

    def refused(problems: list[SheetProblem]) -> SheetRefused:
        audit.record(
            engine,
            viewer,
            "import_refused",
            detail={"what": what, "file": shown_file(file), "problem_count": len(problems)},
            sha256=digest,
        )
        return SheetRefused(file, problems)

    if problems:
        raise refused(problems)
    outcome = SheetImport(file, unchanged=unchanged, not_read=not_read)

    def record(conn: Connection, written: list[Any]) -> None:
        outcome.created = [item.item_id for item in written if item.version == 1]
        outcome.updated = [item.item_id for item in written if item.version > 1]
        audit.record(
            conn,
            viewer,
            "import",
            detail={
                "what": what,
                "file": shown_file(file),
                "created": len(outcome.created),
                "updated": len(outcome.updated),
                "unchanged": outcome.unchanged,
            },
            sha256=digest,
        )

    try:
        write_versions(engine, viewer, kind, plan, then=record)
    except SecondOfKey as second:
        # a second active target or open action, found once written (a row edited into an item stored but not in
        # the file, two new rows of one action): refused naming the row that wrote it, as the checks above do
        number, row = plan_rows[second.position]
        column = "indicator" if kind == ItemKind.TARGET else "title"
        raise refused([SheetProblem(file, number, column, row.get(column, ""), second)]) from None
    return outcome
