"""Validated, atomic import of registry files (CSV and XLSX) into the database.

Why it works this way:
- One call is one batch: every file is validated and written inside a single transaction, and any problem
  rolls the whole batch back, so the database never holds half an import.
- Files stream in chunks into a temporary staging table, so a file with millions of PROM item rows needs
  little memory; duplicate keys and the final upsert are then done by the database itself.
- Re-imports upsert on natural keys (cycle_id, outcome, ...): identical rows are counted as unchanged, not
  added again, and a file whose exact content was imported before is skipped unless forced.
- Every problem names file, sheet, row, column, value and rule, because the person fixing it works in the
  source spreadsheet, not in our code.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import hashlib
import io
import logging
import re
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import Connection, Engine, delete, insert, select, update
from sqlalchemy.exc import SQLAlchemyError

from vbhc import audit, models
from vbhc.catalog import STORED_CASEMIX, Catalog, default_catalog
from vbhc.settings import (
    MAX_REPORTED_PROBLEMS,
    import_chunk_rows,
    max_cell_chars,
    max_unpacked_mb,
    max_upload_mb,
    max_zip_ratio,
)
from vbhc.store import get_engine, upgrade_schema

Progress = Callable[[str, int, int], None]
_log = logging.getLogger(__name__)

# --- table definitions -------------------------------------------------------------------------------


@dataclass(frozen=True)
class TableSpec:
    name: str
    key: tuple[str, ...]
    required: tuple[str, ...]
    optional: tuple[str, ...]
    target: str  # database table


TABLES: dict[str, TableSpec] = {
    "units": TableSpec(
        "units",
        key=("hospital", "department"),
        required=("hospital", "department", "hospital_name", "department_name"),
        optional=("division", "own_hospital"),
        target="departments",
    ),
    "care_cycles": TableSpec(
        "care_cycles",
        key=("cycle_id",),
        required=("cycle_id", "patient_id", "condition", "hospital", "department", "index_date"),
        optional=("treatment", *STORED_CASEMIX),
        target="care_cycles",
    ),
    "clinical_outcomes": TableSpec(
        "clinical_outcomes",
        key=("cycle_id", "outcome"),
        required=("cycle_id", "outcome", "value"),
        optional=("date",),
        target="clinical_outcomes",
    ),
    "prom_responses": TableSpec(
        "prom_responses",
        key=("cycle_id", "instrument", "timepoint", "item"),
        required=("cycle_id", "instrument", "timepoint", "item", "value"),
        optional=("completed_date",),
        target="prom_responses",
    ),
    "costs": TableSpec(
        "costs",
        key=("cycle_id", "activity"),
        required=("cycle_id", "activity", "quantity", "unit_cost"),
        optional=(),
        target="cost_lines",
    ),
}
TABLE_ORDER = tuple(TABLES)

#: Column names that suggest a direct identifier; pseudonymised registries must not carry them.
_IDENTIFIER_PATTERNS = re.compile(
    r"^(name|naam|full_?name|first_?name|last_?name|surname|voornaam|achternaam|initials|voorletters|"
    r"patient_?name|bsn|burgerservicenummer|ssn|social_security.*|address|adres|street|straat|"
    r"house_?number|huisnummer|postcode|postal_?code|zip(_?code)?|city|woonplaats|phone|telephone|"
    r"telefoon(nummer)?|mobile|e_?mail|dob|date_?of_?birth|birth_?date|birthdate|geboortedatum|"
    r"mrn|medical_?record_?number|patientnummer|ziekenhuisnummer)$"
)

#: Shown instead of the value in problems about patient identifiers: messages and logs never carry them.
HIDDEN_IDENTIFIER = "«hidden: patient identifier»"
#: Columns whose values are never shown in a problem (pseudonyms included: they still single out a patient).
_MASKED_COLUMNS = frozenset({"patient_id"})
#: Longest value shown in a problem; the rest is summarised (a 1 MB cell must not become a 1 MB message).
_SHOWN_VALUE_CHARS = 60


def _looks_like_bsn(text: str) -> bool:
    digits = re.sub(r"[\s.\-]", "", text)
    if not re.fullmatch(r"\d{9}", digits):
        return False
    return sum(int(c) * w for c, w in zip(digits, (9, 8, 7, 6, 5, 4, 3, 2, -1), strict=True)) % 11 == 0


def shown_value(column: str | None, value: str | None) -> str | None:
    """The value as a problem may show it: identifiers hidden, very long text shortened."""
    if value is None:
        return None
    col = (column or "").lower()
    if col in _MASKED_COLUMNS or _IDENTIFIER_PATTERNS.match(col) or _looks_like_bsn(value):
        return HIDDEN_IDENTIFIER
    if len(value) > _SHOWN_VALUE_CHARS:
        return f"{value[:_SHOWN_VALUE_CHARS]}… ({len(value):,} characters)"
    return value


# --- report ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    file: str
    sheet: str | None
    row: int | None  # row number as the user sees it (header = row 1); None for file-level problems
    column: str | None
    value: str | None  # as shown: identifiers masked, long values shortened (see shown_value)
    rule: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "value", shown_value(self.column, self.value))
        if self.column is not None and len(self.column) > _SHOWN_VALUE_CHARS:
            object.__setattr__(self, "column", f"{self.column[:_SHOWN_VALUE_CHARS]}… ({len(self.column):,} characters)")

    def __str__(self) -> str:
        where = self.file + (f" [sheet {self.sheet}]" if self.sheet else "")
        if self.row is not None:
            where += f" row {self.row}"
        if self.column:
            where += f" column '{self.column}'"
        value = "" if self.value is None else f" value {self.value!r}:"
        return f"{where}:{value} {self.rule}"


@dataclass
class SourceReport:
    file: str
    sheet: str | None
    table: str
    sha256: str
    rows_read: int = 0
    rows_inserted: int = 0
    rows_updated: int = 0
    rows_unchanged: int = 0
    skipped_reason: str | None = None


@dataclass
class ImportReport:
    sources: list[SourceReport] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    problem_count: int = 0
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.problem_count == 0

    def add(self, problem: Problem) -> None:
        self.problem_count += 1
        if len(self.problems) < MAX_REPORTED_PROBLEMS:
            self.problems.append(problem)

    def summary(self) -> str:
        lines = []
        if self.ok:
            for s in self.sources:
                label = s.file + (f" [sheet {s.sheet}]" if s.sheet else "")
                if s.skipped_reason:
                    lines.append(f"{label} ({s.table}): skipped, {s.skipped_reason}")
                else:
                    lines.append(
                        f"{label} ({s.table}): {s.rows_read} rows read, {s.rows_inserted} added, "
                        f"{s.rows_updated} updated, {s.rows_unchanged} unchanged"
                    )
            if all(s.skipped_reason for s in self.sources):
                lines.append("Nothing new to import.")
            else:
                lines.append(f"Import committed in {self.seconds:.1f} s.")
        else:
            lines.append(f"Import refused: {self.problem_count} problem(s); nothing was written.")
            lines.extend(f"  {p}" for p in self.problems)
            if self.problem_count > len(self.problems):
                lines.append(f"  ... and {self.problem_count - len(self.problems)} more problem(s)")
        return "\n".join(lines)


class ImportRefused(Exception):
    """The batch had problems; nothing was written. `report` lists them."""

    def __init__(self, report: ImportReport):
        super().__init__(report.summary())
        self.report = report


# --- reading files -----------------------------------------------------------------------------------


@dataclass
class _Source:
    path: Path
    sheet: str | None
    table: str
    sha256: str
    size: int

    @property
    def label(self) -> str:
        return self.path.name


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _head(path: Path, n: int = 8) -> bytes:
    with path.open("rb") as fh:
        return fh.read(n)


def _is_xlsx(path: Path) -> bool:
    return _head(path, 4) == b"PK\x03\x04"


#: Parts every XLSX workbook has; a ZIP without them is not a workbook, whatever its name says.
_XLSX_PARTS = ("[Content_Types].xml", "xl/workbook.xml")
_MAX_ZIP_MEMBERS = 10_000
_MB = 1024 * 1024


def _check_xlsx_container(path: Path) -> str | None:
    """Why this ZIP is not a safe XLSX workbook, judged from the ZIP directory alone; None when it is fine.

    Runs before openpyxl opens the file. The declared sizes are what Python's zipfile will unpack at most
    (it stops at the declared size and fails on a CRC mismatch), so checking them bounds the work for zip bombs.
    """
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError):
        return "damaged or truncated XLSX workbook: not a readable ZIP archive"
    names = {i.filename for i in infos}
    missing = [p for p in _XLSX_PARTS if p not in names]
    if missing:
        return f"not an XLSX workbook: the ZIP archive has no {missing[0]}"
    if len(infos) > _MAX_ZIP_MEMBERS:
        return f"not a plausible XLSX workbook: {len(infos):,} parts (more than {_MAX_ZIP_MEMBERS:,})"
    unpacked = sum(i.file_size for i in infos)
    if unpacked > max_unpacked_mb() * _MB:
        return (
            f"XLSX workbook unpacks to {unpacked / _MB:,.0f} MB, more than the limit of {max_unpacked_mb():,.0f} MB "
            "(VBHC_MAX_UNPACKED_MB); possibly a zip bomb"
        )
    ratio_limit = max_zip_ratio()
    for info in infos:
        if info.file_size > _MB and info.file_size > ratio_limit * max(info.compress_size, 1):
            return (
                f"XLSX part {info.filename} is compressed {info.file_size / max(info.compress_size, 1):,.0f} times, "
                f"more than the limit of {ratio_limit:,.0f} (VBHC_MAX_ZIP_RATIO); possibly a zip bomb"
            )
    return None


def _scan_text(path: Path) -> tuple[str, str | None]:
    """sha256 of a CSV file and, in the same pass, why it is not UTF-8 text (None when it is).

    UTF-8 with or without BOM is accepted; nothing else is guessed, because a wrong guess silently changes values.
    """
    h = hashlib.sha256()
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset, line, problem = 0, 1, None
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
            if problem is None:
                if offset == 0 and block.startswith((b"\xff\xfe", b"\xfe\xff")):
                    problem = "UTF-16 text (Excel 'Unicode text'); tried UTF-8 with and without BOM: save as CSV UTF-8"
                elif (nul := block.find(b"\x00")) >= 0:
                    at_line = line + block.count(b"\n", 0, nul)
                    problem = f"binary content, not CSV text: NUL byte at byte offset {offset + nul:,} (line {at_line})"
                else:
                    pending = len(decoder.getstate()[0])
                    try:
                        decoder.decode(block)
                    except UnicodeDecodeError as exc:
                        at = max(exc.start - pending, 0)
                        byte = exc.object[exc.start]
                        at_line = line + block.count(b"\n", 0, at)
                        problem = (
                            f"not UTF-8 text: byte 0x{byte:02X} at byte offset {offset + at:,} (line {at_line}) "
                            "cannot be decoded; tried UTF-8 with and without BOM: save as CSV UTF-8"
                        )
                line += block.count(b"\n")
            offset += len(block)
    if problem is None:
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            problem = (
                f"not UTF-8 text: the file ends in the middle of a character (byte offset {offset:,}); "
                "it may be truncated"
            )
    return h.hexdigest(), problem


def _table_from_name(stem: str) -> str | None:
    stem = stem.lower()
    for name in sorted(TABLES, key=len, reverse=True):
        if stem == name or stem.startswith(name + "_") or stem.startswith(name + "-") or stem.startswith(name + "."):
            return name
    return None


def _table_from_header(columns: list[str]) -> str | None:
    cols = set(columns)
    matches = [t.name for t in TABLES.values() if set(t.required) <= cols]
    # care_cycles' required columns include units' hospital/department: prefer the most specific match
    matches.sort(key=lambda n: len(TABLES[n].required), reverse=True)
    return matches[0] if matches else None


def _clean_header(raw: list[object]) -> list[str]:
    return [("" if c is None else str(c)).strip().lstrip("\ufeff").lower() for c in raw]


def _csv_dialect(path: Path) -> tuple[str, str]:
    """Delimiter and decimal mark: Dutch Excel writes ';' with decimal commas."""
    with path.open("rb") as fh:
        first = fh.readline(1 << 16).decode("utf-8-sig", errors="replace")
    if first.count(";") > first.count(","):
        return ";", ","
    return ",", "."


def _discover(paths: list[Path], report: ImportReport) -> list[_Source]:
    sources: list[_Source] = []
    for path in paths:
        if not path.exists():
            report.add(Problem(str(path), None, None, None, None, "file not found"))
            continue
        if not path.is_file():
            report.add(Problem(str(path), None, None, None, None, "not a file"))
            continue
        size = path.stat().st_size
        limit = max_upload_mb()
        if size > limit * _MB:
            report.add(
                Problem(
                    path.name,
                    None,
                    None,
                    None,
                    None,
                    f"file is {size / _MB:,.1f} MB, more than the limit of {limit:,.0f} MB (VBHC_MAX_UPLOAD_MB)",
                )
            )
            continue
        head = _head(path)
        if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
            why = _check_xlsx_container(path)
            if why is not None:
                report.add(Problem(path.name, None, None, None, None, why))
                continue
            sha = _sha256(path)
            try:
                sheets = _xlsx_sheet_names(path)
            except Exception as exc:  # untrusted content: any parser failure is a damaged file, not a crash
                report.add(Problem(path.name, None, None, None, None, f"damaged XLSX workbook ({type(exc).__name__})"))
                continue
            for sheet in sheets:
                table = _table_from_name(sheet)
                if table is None:
                    report.add(
                        Problem(
                            path.name,
                            sheet,
                            None,
                            None,
                            None,
                            f"sheet name is not a registry table ({', '.join(TABLES)})",
                        )
                    )
                    continue
                sources.append(_Source(path, sheet, table, sha, size))
        else:
            if head.startswith(b"\xd0\xcf\x11\xe0"):
                report.add(
                    Problem(
                        path.name, None, None, None, None, "old binary Excel (.xls) file: save as .xlsx or CSV UTF-8"
                    )
                )
                continue
            if path.suffix.lower() in (".xlsx", ".xlsm"):
                report.add(
                    Problem(
                        path.name, None, None, None, None, "named .xlsx but is not an XLSX workbook (no ZIP inside)"
                    )
                )
                continue
            if path.suffix.lower() not in (".csv", ".txt"):
                report.add(Problem(path.name, None, None, None, None, "unsupported file type: expected .csv or .xlsx"))
                continue
            table = _table_from_name(path.stem)
            if table is None:
                try:
                    header = _clean_header(next(csv.reader(io.StringIO(_first_line(path))), []))
                except UnicodeDecodeError:
                    header = []
                table = _table_from_header(header)
            if table is None:
                report.add(
                    Problem(
                        path.name,
                        None,
                        None,
                        None,
                        None,
                        f"cannot tell which table this is: name the file after a table ({', '.join(TABLES)})",
                    )
                )
                continue
            sha, why = _scan_text(path)
            if why is not None:
                report.add(Problem(path.name, None, None, None, None, why))
                continue
            sources.append(_Source(path, None, table, sha, size))
    sources.sort(key=lambda s: TABLE_ORDER.index(s.table))
    return sources


def _first_line(path: Path) -> str:
    with path.open("rb") as fh:
        return fh.readline(1 << 16).decode("utf-8-sig")


def _xlsx_sheet_names(path: Path) -> list[str]:
    from openpyxl import load_workbook

    wb = load_workbook(path, read_only=True, data_only=False)
    try:
        return list(wb.sheetnames)
    finally:
        wb.close()


def _cell_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        return value.date().isoformat() if value.time() == dt.time() else value.isoformat(sep=" ")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


@dataclass
class _Chunk:
    frame: pd.DataFrame  # all columns as str, '' = missing
    first_row: int  # file row number of frame's first row
    bytes_done: int


def _read_chunks(source: _Source, report: ImportReport, chunk_rows: int) -> Iterator[_Chunk]:
    """Yield string frames of `chunk_rows` rows; the header is validated by the caller."""
    if source.sheet is not None:
        yield from _read_xlsx_chunks(source, chunk_rows)
        return
    sep, _ = _csv_dialect(source.path)
    with source.path.open("rb") as fh:
        reader = pd.read_csv(
            fh,
            sep=sep,
            dtype=str,
            keep_default_na=False,
            na_filter=False,
            chunksize=chunk_rows,
            encoding="utf-8-sig",
            skipinitialspace=False,
        )
        row = 2
        for frame in reader:
            frame.columns = _clean_header(list(frame.columns))
            yield _Chunk(frame, row, fh.tell())
            row += len(frame)


class _DamagedFile(Exception):
    """openpyxl could not read the workbook; the message is the exception's type only (never cell content)."""


def _read_xlsx_chunks(source: _Source, chunk_rows: int) -> Iterator[_Chunk]:
    """Like _read_xlsx_rows, but any failure of the parser on this untrusted file becomes _DamagedFile."""
    rows = _read_xlsx_rows(source, chunk_rows)
    while True:
        try:
            chunk = next(rows)
        except StopIteration:
            return
        except Exception as exc:
            raise _DamagedFile(type(exc).__name__) from None
        yield chunk


def _read_xlsx_rows(source: _Source, chunk_rows: int) -> Iterator[_Chunk]:
    from openpyxl import load_workbook

    wb = load_workbook(source.path, read_only=True, data_only=False)
    try:
        ws = wb[source.sheet]
        rows = ws.iter_rows(values_only=True)
        header = _clean_header(list(next(rows, ())))
        while header and header[-1] == "":
            header.pop()
        width = len(header)
        buffer: list[list[str]] = []
        first = 2
        done = 0
        for raw in rows:
            values = [_cell_text(v) for v in raw[:width]]
            values += [""] * (width - len(values))
            buffer.append(values)
            if len(buffer) >= chunk_rows:
                done += len(buffer)
                yield _Chunk(pd.DataFrame(buffer, columns=header, dtype=str), first, done)
                first += len(buffer)
                buffer = []
        # drop trailing blank rows that spreadsheets often carry
        while buffer and not any(buffer[-1]):
            buffer.pop()
        if buffer or first == 2:
            yield _Chunk(pd.DataFrame(buffer, columns=header, dtype=str), first, done + len(buffer))
    finally:
        wb.close()


# --- validation helpers ------------------------------------------------------------------------------

#: First characters (after leading whitespace) that make a spreadsheet run a cell; ASCII and full-width forms.
_FORMULA_STARTS = ["=", "+", "-", "@", "\uff1d", "\uff0b", "\uff0d", "\uff20"]


class _Checker:
    """Collects problems for one chunk; every check is vectorised over a column."""

    def __init__(self, source: _Source, chunk: _Chunk, report: ImportReport, decimal: str):
        self.source, self.chunk, self.report, self.decimal = source, chunk, report, decimal
        self.frame = chunk.frame
        self.bad = np.zeros(len(chunk.frame), dtype=bool)
        self._found: list[Problem] = []

    def flag(self, mask: np.ndarray | pd.Series, column: str | None, rule: str | Callable[[int], str]) -> None:
        """Mark rows as bad; `rule` is the message or a function of the row's position in the chunk."""
        mask = np.asarray(mask, dtype=bool)
        if not mask.any():
            return
        self.bad |= mask
        rows = np.flatnonzero(mask)
        # count every problem, but only materialise the ones that can still be reported
        room = max(MAX_REPORTED_PROBLEMS - len(self.report.problems) - len(self._found), 0)
        values = self.frame[column].to_numpy() if column in self.frame.columns else None
        for i in rows[:room]:
            value = None if values is None else str(values[i])
            message = rule(int(i)) if callable(rule) else rule
            self._found.append(
                Problem(
                    self.source.label,
                    self.source.sheet,
                    int(self.chunk.first_row + i),
                    column,
                    value,
                    message,
                )
            )
        self.report.problem_count += len(rows) - min(len(rows), room)

    def finish(self) -> None:
        self._found.sort(key=lambda p: (p.row or 0, p.column or ""))
        for p in self._found:
            self.report.add(p)

    def text(self, column: str, required: bool = True, max_len: int = 64) -> pd.Series:
        s = self.frame[column].str.strip()
        if required:
            self.flag(s == "", column, "required value is empty")
        self.flag(s.str.len() > max_len, column, f"longer than {max_len} characters")
        first = s.str[:1]
        starts = first.isin(_FORMULA_STARTS)
        if starts.any():
            formula = starts & (first.isin(["=", "\uff1d"]) | s.str.contains(r"[(!]", regex=True))
            self.flag(formula, column, "looks like a spreadsheet formula; formulas are not accepted")
        return s

    def cell_sizes(self, limit: int) -> None:
        """Any cell longer than `limit` characters (Excel's own limit by default) is refused, in every column."""
        for column in self.frame.columns:
            lengths = self.frame[column].str.len().to_numpy()
            too_long = lengths > limit
            if too_long.any():
                self.flag(
                    too_long,
                    column,
                    lambda i, lengths=lengths: (
                        f"cell has {int(lengths[i]):,} characters, more than the limit of {limit:,} "
                        "(VBHC_MAX_CELL_CHARS)"
                    ),
                )

    def number(self, column: str, required: bool = True) -> pd.Series:
        s = self.frame[column].str.strip()
        if self.decimal == ",":
            s = s.str.replace(".", "", regex=False).str.replace(",", ".", regex=False)
        values = pd.to_numeric(s, errors="coerce")
        empty = s == ""
        if required:
            self.flag(empty, column, "required value is empty")
        self.flag(~empty & values.isna(), column, "not a number")
        self.flag(~empty & np.isinf(values.fillna(0)), column, "not a finite number")
        return values.astype("float64")

    def date(self, column: str, required: bool = True) -> pd.Series:
        s = self.frame[column].str.strip()
        values = pd.to_datetime(s, format="%Y-%m-%d", errors="coerce")
        empty = s == ""
        if required:
            self.flag(empty, column, "required value is empty")
        self.flag(~empty & values.isna(), column, "not a date in the form YYYY-MM-DD")
        today = pd.Timestamp(dt.date.today())
        self.flag(values > today, column, "date lies in the future")
        self.flag(values < pd.Timestamp("1900-01-01"), column, "date before 1900")
        return values

    def codes(self, column: str, values: pd.Series, allowed: set[str], what: str) -> None:
        unknown = ~values.isin(allowed) & (values != "")
        listed = ", ".join(sorted(allowed)[:12]) + (" ..." if len(allowed) > 12 else "")
        self.flag(unknown, column, f"unknown {what} (allowed: {listed})")


def _is_bsn(values: pd.Series) -> np.ndarray:
    """9-digit numbers passing the Dutch 11-test look like a citizen service number (BSN)."""
    s = values.str.strip()
    candidates = s.str.fullmatch(r"\d{9}").fillna(False).to_numpy()
    out = np.zeros(len(s), dtype=bool)
    if candidates.any():
        digits = np.array([[int(c) for c in v] for v in s[candidates]], dtype=np.int64)
        weights = np.array([9, 8, 7, 6, 5, 4, 3, 2, -1])
        out[candidates] = (digits @ weights) % 11 == 0
    return out


# --- the importer ------------------------------------------------------------------------------------


class _Batch:
    """State shared by the files of one batch (one transaction)."""

    def __init__(self, conn: Connection, catalog: Catalog, report: ImportReport, imported_by: str):
        self.conn, self.catalog, self.report, self.imported_by = conn, catalog, report, imported_by
        self._units: set[tuple[str, str]] | None = None
        self._cycle_conditions: pd.Series | None = None
        self._batch_cycles: list[pd.Series] = []
        self.batch_units: set[tuple[str, str]] = set()

    # known units and cycles: what the database has plus what this batch brings
    def units(self) -> set[tuple[str, str]]:
        if self._units is None:
            rows = self.conn.execute(select(models.Department.hospital, models.Department.code)).all()
            self._units = {(h, d) for h, d in rows}
        return self._units | self.batch_units

    def cycle_conditions(self) -> pd.Series:
        if self._cycle_conditions is None:
            db = pd.read_sql(select(models.CareCycle.cycle_id, models.CareCycle.condition), self.conn, dtype=str)
            parts = [db.set_index("cycle_id")["condition"], *self._batch_cycles]
            series = pd.concat(parts) if parts else pd.Series(dtype=str)
            self._cycle_conditions = series[~series.index.duplicated(keep="last")]
        return self._cycle_conditions

    def add_batch_cycles(self, cycle_ids: pd.Series, conditions: pd.Series) -> None:
        self._batch_cycles.append(pd.Series(conditions.to_numpy(), index=cycle_ids.to_numpy()))
        self._cycle_conditions = None


def _check_header(source: _Source, columns: list[str], report: ImportReport) -> bool:
    spec = TABLES[source.table]
    ok = True
    for col in columns:
        if col and _IDENTIFIER_PATTERNS.match(col):
            report.add(
                Problem(
                    source.label,
                    source.sheet,
                    1,
                    col,
                    None,
                    "column looks like a direct patient identifier; registries must be pseudonymised",
                )
            )
            ok = False
    missing = [c for c in spec.required if c not in columns]
    for col in missing:
        report.add(Problem(source.label, source.sheet, 1, col, None, f"required column missing from {spec.name}"))
        ok = False
    allowed = set(spec.required) | set(spec.optional)
    for col in columns:
        if col and col not in allowed and not _IDENTIFIER_PATTERNS.match(col):
            report.add(
                Problem(
                    source.label,
                    source.sheet,
                    1,
                    col,
                    None,
                    f"unknown column for {spec.name} (expected: {', '.join(spec.required + spec.optional)})",
                )
            )
            ok = False
    dupes = {c for c in columns if columns.count(c) > 1 and c}
    for col in sorted(dupes):
        report.add(Problem(source.label, source.sheet, 1, col, None, "column appears more than once"))
        ok = False
    return ok


def _validate_units(ck: _Checker, batch: _Batch) -> pd.DataFrame:
    f = ck.frame
    hospital = ck.text("hospital", max_len=40)
    department = ck.text("department", max_len=40)
    hospital_name = ck.text("hospital_name", max_len=200)
    department_name = ck.text("department_name", max_len=200)
    division = ck.text("division", required=False, max_len=200) if "division" in f else pd.Series("", index=f.index)
    own = pd.Series(False, index=f.index)
    if "own_hospital" in f:
        raw = f["own_hospital"].str.strip().str.lower()
        truthy, falsy = {"1", "yes", "ja", "true", "y", "j"}, {"0", "no", "nee", "false", "n", ""}
        ck.flag(~raw.isin(truthy | falsy), "own_hospital", "expected 1/0 (or yes/no)")
        own = raw.isin(truthy)
    out = pd.DataFrame(
        {
            "hospital": hospital,
            "code": department,
            "hospital_name": hospital_name,
            "name": department_name,
            "division": division,
            "own_hospital": own,
        }
    )
    # one hospital, one name
    names = out.groupby("hospital")["hospital_name"].transform("nunique")
    ck.flag(names > 1, "hospital_name", "the same hospital code has different names in this file")
    return out


def _validate_care_cycles(ck: _Checker, batch: _Batch) -> pd.DataFrame:
    f = ck.frame
    catalog = batch.catalog
    cycle_id = ck.text("cycle_id")
    patient_id = ck.text("patient_id")
    ck.flag(_is_bsn(patient_id), "patient_id", "looks like a BSN (passes the 11-test); use a pseudonym")
    condition = ck.text("condition")
    ck.codes("condition", condition, set(catalog.conditions), "condition")
    hospital = ck.text("hospital", max_len=40)
    department = ck.text("department", max_len=40)
    known_units = batch.units()
    pairs = pd.Series(list(zip(hospital, department, strict=True)), index=f.index)
    unknown_unit = ~pairs.isin(known_units) & (hospital != "") & (department != "")
    ck.flag(unknown_unit, "department", "unknown hospital/department: import it in the units table first")
    index_date = ck.date("index_date")
    treatment = ck.text("treatment", required=False, max_len=100) if "treatment" in f else pd.Series("", index=f.index)

    out = pd.DataFrame(
        {
            "cycle_id": cycle_id,
            "patient_id": patient_id,
            "condition": condition,
            "hospital": hospital,
            "department": department,
            "index_date": index_date,
            "treatment": treatment,
        }
    )
    for name, kind in STORED_CASEMIX.items():
        out[name] = np.nan if kind != "category" else None
    for cond_id, rows in out.groupby("condition", sort=False).groups.items():
        if cond_id not in catalog.conditions:
            continue
        cond = catalog.conditions[cond_id]
        mask = f.index.isin(rows)
        bad_treatment = mask & (treatment != "") & ~treatment.isin(cond.treatments)
        ck.flag(
            bad_treatment,
            "treatment",
            f"unknown treatment for {cond_id} (allowed: {', '.join(cond.treatments)})",
        )
        used = {v.name: v for v in cond.casemix}
        for name in STORED_CASEMIX:
            if name not in f:
                continue
            raw = f[name].str.strip()
            if name not in used:
                ck.flag(mask & (raw != ""), name, f"not a case-mix variable of {cond_id}; leave it empty")
                continue
            var = used[name]
            sub = raw.where(mask, "")
            if var.type == "category":
                ck.codes(name, sub, set(var.codes), f"code for {name}")
                out.loc[mask, name] = sub[mask].replace("", None)
            else:
                s = sub.str.replace(",", ".", regex=False) if ck.decimal == "," else sub
                values = pd.to_numeric(s, errors="coerce")
                ck.flag(mask & (sub != "") & values.isna(), name, "not a number")
                if var.type == "integer":
                    ck.flag(mask & values.notna() & (values % 1 != 0), name, "not a whole number")
                lo, hi = var.min, var.max
                ck.flag(
                    mask & values.notna() & ((values < lo) | (values > hi)),
                    name,
                    f"outside the allowed range {lo:g} to {hi:g} for {cond_id}",
                )
                out.loc[mask, name] = values[mask]
    return out


def _child_conditions(ck: _Checker, batch: _Batch, cycle_id: pd.Series) -> pd.Series:
    known = batch.cycle_conditions()
    conditions = cycle_id.map(known)
    ck.flag(conditions.isna() & (cycle_id != ""), "cycle_id", "unknown cycle_id: not in care_cycles")
    return conditions.astype(object).where(conditions.notna(), "")


def _validate_clinical_outcomes(ck: _Checker, batch: _Batch) -> pd.DataFrame:
    f = ck.frame
    cycle_id = ck.text("cycle_id")
    conditions = _child_conditions(ck, batch, cycle_id)
    outcome = ck.text("outcome")
    value = ck.number("value")
    date = ck.date("date", required=False) if "date" in f else pd.Series(pd.NaT, index=f.index)
    for cond_id, rows in pd.Series(conditions).groupby(conditions, sort=False).groups.items():
        if not cond_id:
            continue
        cond = batch.catalog.conditions[cond_id]
        mask = f.index.isin(rows)
        by_id = {o.id: o for o in cond.outcomes}
        ck.flag(
            mask & ~outcome.isin(by_id) & (outcome != ""),
            "outcome",
            f"not an outcome of {cond_id} (allowed: {', '.join(by_id)})",
        )
        for o in cond.outcomes:
            m = mask & (outcome == o.id).to_numpy() & value.notna().to_numpy()
            if o.type == "binary":
                ck.flag(m & ~value.isin([0.0, 1.0]), "value", f"{o.id} is yes/no: expected 0 or 1")
            else:
                ck.flag(
                    m & ((value < o.min) | (value > o.max)),
                    "value",
                    f"{o.id} outside the allowed range {o.min:g} to {o.max:g}",
                )
    return pd.DataFrame({"cycle_id": cycle_id, "outcome": outcome, "value": value, "date": date})


def _validate_prom_responses(ck: _Checker, batch: _Batch) -> pd.DataFrame:
    f = ck.frame
    cycle_id = ck.text("cycle_id")
    conditions = _child_conditions(ck, batch, cycle_id)
    instrument = ck.text("instrument", max_len=40)
    timepoint = ck.text("timepoint", max_len=40)
    item = ck.text("item", max_len=40)
    value = ck.number("value")
    completed = ck.date("completed_date", required=False) if "completed_date" in f else pd.Series(pd.NaT, index=f.index)
    catalog = batch.catalog
    for cond_id, rows in conditions.groupby(conditions, sort=False).groups.items():
        if not cond_id:
            continue
        cond = catalog.conditions[cond_id]
        mask = f.index.isin(rows)
        uses = {p.instrument: p for p in cond.proms}
        ck.flag(
            mask & ~instrument.isin(uses) & (instrument != ""),
            "instrument",
            f"not a PROM instrument of {cond_id} (allowed: {', '.join(uses)})",
        )
        for inst_id, use in uses.items():
            m = mask & (instrument == inst_id).to_numpy()
            ck.flag(
                m & ~timepoint.isin(use.timepoints) & (timepoint != ""),
                "timepoint",
                f"{inst_id} is not collected at this timepoint for {cond_id} (allowed: {', '.join(use.timepoints)})",
            )
    # item ranges through a lookup on "instrument|item", so millions of rows need no loop over items
    lows, highs = _item_bounds(catalog)
    key = instrument + "|" + item
    lo, hi = key.map(lows), key.map(highs)
    known_instrument = instrument.isin(catalog.instruments)
    ck.flag(
        known_instrument & lo.isna() & (item != ""),
        "item",
        lambda i: f"not an item of {instrument.iat[i]}",
    )
    ck.flag(
        lo.notna() & value.notna() & ((value < lo) | (value > hi) | (value % 1 != 0)),
        "value",
        _item_rule(instrument, item, lows, highs),
    )
    return pd.DataFrame(
        {
            "cycle_id": cycle_id,
            "instrument": instrument,
            "timepoint": timepoint,
            "item": item,
            "value": value,
            "completed_date": completed,
        }
    )


def _item_bounds(catalog: Catalog) -> tuple[pd.Series, pd.Series]:
    keys, lo, hi = [], [], []
    for inst in catalog.instruments.values():
        for it in inst.items:
            keys.append(f"{inst.id}|{it.id}")
            lo.append(it.min)
            hi.append(it.max)
    return pd.Series(lo, index=keys, dtype=float), pd.Series(hi, index=keys, dtype=float)


def _item_rule(instrument: pd.Series, item: pd.Series, lows: pd.Series, highs: pd.Series) -> Callable[[int], str]:
    def rule(i: int) -> str:
        key = f"{instrument.iat[i]}|{item.iat[i]}"
        return f"{instrument.iat[i]} item {item.iat[i]} must be a whole number from {lows[key]:g} to {highs[key]:g}"

    return rule


def _validate_costs(ck: _Checker, batch: _Batch) -> pd.DataFrame:
    f = ck.frame
    cycle_id = ck.text("cycle_id")
    conditions = _child_conditions(ck, batch, cycle_id)
    activity = ck.text("activity")
    quantity = ck.number("quantity")
    unit_cost = ck.number("unit_cost")
    ck.flag(quantity < 0, "quantity", "must be 0 or more")
    ck.flag(unit_cost < 0, "unit_cost", "must be 0 or more (EUR per unit)")
    for cond_id, rows in pd.Series(conditions).groupby(conditions, sort=False).groups.items():
        if not cond_id:
            continue
        cond = batch.catalog.conditions[cond_id]
        mask = f.index.isin(rows)
        ck.flag(
            mask & ~activity.isin(cond.cost_activities) & (activity != ""),
            "activity",
            f"not a cost activity of {cond_id} (allowed: {', '.join(cond.cost_activities)})",
        )
    return pd.DataFrame({"cycle_id": cycle_id, "activity": activity, "quantity": quantity, "unit_cost": unit_cost})


_VALIDATORS = {
    "units": _validate_units,
    "care_cycles": _validate_care_cycles,
    "clinical_outcomes": _validate_clinical_outcomes,
    "prom_responses": _validate_prom_responses,
    "costs": _validate_costs,
}

# --- staging and upsert ------------------------------------------------------------------------------

#: Columns written to the target table, per import table (the staging table has these plus row_no).
_TARGET_COLUMNS = {
    "units": ("hospital", "code", "name", "division"),
    "care_cycles": (
        "cycle_id",
        "patient_id",
        "condition",
        "hospital",
        "department",
        "index_date",
        "treatment",
        *STORED_CASEMIX,
    ),
    "clinical_outcomes": ("cycle_id", "outcome", "value", "date"),
    "prom_responses": ("cycle_id", "instrument", "timepoint", "item", "value", "completed_date"),
    "costs": ("cycle_id", "activity", "quantity", "unit_cost"),
}
_TARGET_KEYS = {
    "units": ("hospital", "code"),
    "care_cycles": ("cycle_id",),
    "clinical_outcomes": ("cycle_id", "outcome"),
    "prom_responses": ("cycle_id", "instrument", "timepoint", "item"),
    "costs": ("cycle_id", "activity"),
}
_DATE_COLUMNS = {"index_date", "date", "completed_date"}
_FLOAT_COLUMNS = {"value", "quantity", "unit_cost", "bmi", "lvef"}
_INT_COLUMNS = {"age", "asa", "charlson", "nyha"}


def _stage_name(table: str) -> str:
    return f"vbhc_stage_{table}"


def _create_stage(conn: Connection, table: str) -> None:
    cols = []
    for c in _TARGET_COLUMNS[table]:
        if c in _FLOAT_COLUMNS:
            kind = "DOUBLE PRECISION" if conn.dialect.name == "postgresql" else "REAL"
        elif c in _INT_COLUMNS:
            kind = "INTEGER"
        elif c in _DATE_COLUMNS:
            kind = "DATE" if conn.dialect.name == "postgresql" else "TEXT"
        else:
            kind = "TEXT"
        cols.append(f"{c} {kind}")
    name = _stage_name(table)
    conn.exec_driver_sql(f"DROP TABLE IF EXISTS {name}")
    conn.exec_driver_sql(f"CREATE TEMPORARY TABLE {name} (row_no INTEGER, {', '.join(cols)})")


def _records(frame: pd.DataFrame, columns: tuple[str, ...], row_numbers: np.ndarray) -> list[tuple]:
    """Plain Python tuples with None for missing values, dates as ISO text (valid for both databases)."""
    arrays: list[object] = [row_numbers.tolist()]
    for c in columns:
        s = frame[c]
        if c in _DATE_COLUMNS:
            values = s.dt.strftime("%Y-%m-%d").to_numpy(dtype=object, na_value=None)
        elif c in _INT_COLUMNS:
            values = s.astype("Int64").to_numpy(dtype=object, na_value=None)
        elif c in _FLOAT_COLUMNS:
            values = s.astype("float64").to_numpy(dtype=object, na_value=None)
        else:
            values = s.to_numpy(dtype=object, na_value=None)
        arrays.append(values.tolist())
    return list(zip(*arrays, strict=True))


def _stage_rows(conn: Connection, table: str, frame: pd.DataFrame, row_numbers: np.ndarray) -> None:
    if frame.empty:
        return
    columns = _TARGET_COLUMNS[table]
    records = _records(frame, columns, row_numbers)
    name = _stage_name(table)
    if conn.dialect.name == "postgresql":
        raw = conn.connection.driver_connection
        with raw.cursor() as cur, cur.copy(f"COPY {name} (row_no, {', '.join(columns)}) FROM STDIN") as copy:
            for rec in records:
                copy.write_row(rec)
    else:
        marks = ", ".join("?" for _ in range(len(columns) + 1))
        conn.connection.driver_connection.executemany(
            f"INSERT INTO {name} (row_no, {', '.join(columns)}) VALUES ({marks})", records
        )


def _duplicate_problems(conn: Connection, source: _Source, report: ImportReport) -> None:
    table = source.table
    keys = _TARGET_KEYS[table]
    user_keys = TABLES[table].key
    name = _stage_name(table)
    key_sql = ", ".join(keys)
    total = conn.exec_driver_sql(
        f"SELECT COUNT(*) FROM (SELECT {key_sql} FROM {name} GROUP BY {key_sql} HAVING COUNT(*) > 1) d"
    ).scalar_one()
    if not total:
        return
    rows = conn.exec_driver_sql(
        f"SELECT s.row_no, {', '.join('s.' + k for k in keys)}, d.first_row FROM {name} s JOIN "
        f"(SELECT {key_sql}, MIN(row_no) AS first_row FROM {name} GROUP BY {key_sql} HAVING COUNT(*) > 1) d "
        f"ON {' AND '.join(f's.{k} = d.{k}' for k in keys)} WHERE s.row_no > d.first_row ORDER BY s.row_no"
    ).all()
    for row in rows:
        value = "/".join(str(v) for v in row[1:-1])
        report.add(
            Problem(
                source.label,
                source.sheet,
                int(row[0]),
                "+".join(user_keys),
                value,
                f"duplicate key: already given in row {int(row[-1])}",
            )
        )


def _distinct(dialect: str, a: str, b: str) -> str:
    return f"{a} IS NOT {b}" if dialect == "sqlite" else f"{a} IS DISTINCT FROM {b}"


def _upsert(conn: Connection, table: str, batch_id: int, report: SourceReport) -> None:
    """Insert new keys, update changed rows, leave identical rows alone; count each."""
    dialect = conn.dialect.name
    stage = _stage_name(table)
    target = TABLES[table].target
    columns = _TARGET_COLUMNS[table]
    keys = _TARGET_KEYS[table]
    values = [c for c in columns if c not in keys]
    join = " AND ".join(f"t.{k} = s.{k}" for k in keys)
    cast = (
        (lambda c: f"CAST(s.{c} AS DATE)" if c in _DATE_COLUMNS else f"s.{c}")
        if dialect == "postgresql"
        else (lambda c: f"s.{c}")
    )
    same = " AND ".join(f"NOT ({_distinct(dialect, f't.{c}', cast(c))})" for c in values) or "1=1"
    existing = conn.exec_driver_sql(f"SELECT COUNT(*) FROM {stage} s JOIN {target} t ON {join}").scalar_one()
    unchanged = conn.exec_driver_sql(
        f"SELECT COUNT(*) FROM {stage} s JOIN {target} t ON {join} WHERE {same}"
    ).scalar_one()
    total = conn.exec_driver_sql(f"SELECT COUNT(*) FROM {stage}").scalar_one()
    changed = " OR ".join(_distinct(dialect, f"{target}.{c}", f"excluded.{c}") for c in values) or "1=0"
    conn.exec_driver_sql(
        f"INSERT INTO {target} ({', '.join(columns)}, batch_id) "
        f"SELECT {', '.join(cast(c) for c in columns)}, {int(batch_id)} FROM {stage} s WHERE 1=1 "
        f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET "
        f"{', '.join(f'{c} = excluded.{c}' for c in [*values, 'batch_id'])} WHERE {changed}"
    )
    report.rows_inserted = total - existing
    report.rows_updated = existing - unchanged
    report.rows_unchanged = unchanged


def _upsert_hospitals(conn: Connection, hospitals: pd.DataFrame, batch_id: int) -> None:
    """Hospitals come from the units table: one row per hospital, a handful per import."""
    for row in hospitals.itertuples(index=False):
        exists = conn.execute(
            select(models.Hospital.name, models.Hospital.own_hospital).where(models.Hospital.code == row.hospital)
        ).first()
        if exists is None:
            conn.execute(
                insert(models.Hospital).values(
                    code=row.hospital,
                    name=row.hospital_name,
                    own_hospital=bool(row.own_hospital),
                    batch_id=batch_id,
                )
            )
        elif (exists.name, bool(exists.own_hospital)) != (row.hospital_name, bool(row.own_hospital)):
            conn.execute(
                update(models.Hospital)
                .where(models.Hospital.code == row.hospital)
                .values(name=row.hospital_name, own_hospital=bool(row.own_hospital), batch_id=batch_id)
            )


# --- public API --------------------------------------------------------------------------------------


def import_files(
    paths: list[Path | str],
    engine: Engine | None = None,
    *,
    imported_by: str = "",
    actor: object | None = None,
    force: bool = False,
    catalog: Catalog | None = None,
    progress: Progress | None = None,
    chunk_rows: int | None = None,
) -> ImportReport:
    """Validate and import `paths` as one all-or-nothing batch; raise ImportRefused on any problem.

    Every call is audited (vbhc.audit) under `actor` (a vbhc.access.Viewer or a user name; default `imported_by`):
    an "import" event per file, written in the batch's own transaction so it exists only if the batch commits,
    or one "import_refused" event, written after the rollback, naming files and rules but never values.
    """
    started = time.perf_counter()
    engine = engine or get_engine()
    upgrade_schema(engine)
    catalog = catalog or default_catalog()
    chunk_rows = chunk_rows or import_chunk_rows()
    actor = actor if actor is not None else (imported_by or "unknown")
    files = [Path(p) for p in paths]
    report = ImportReport()
    sources = _discover(files, report)
    if not report.ok:
        report.seconds = time.perf_counter() - started
        _audit_refused(engine, actor, files, sources, report)
        raise ImportRefused(report)

    with engine.connect() as conn:
        trans = conn.begin()
        try:
            _run_batch(conn, sources, catalog, report, imported_by, force, progress, chunk_rows)
            if report.ok:
                _audit_imported(conn, actor, report)
        except Exception as exc:
            trans.rollback()
            _audit_refused(engine, actor, files, sources, report, error=exc)
            raise
        except BaseException:
            trans.rollback()
            raise
        if report.ok:
            trans.commit()
        else:
            trans.rollback()
        if report.ok and conn.dialect.name == "sqlite" and any(s.rows_inserted for s in report.sources):
            conn.exec_driver_sql("ANALYZE")
    report.seconds = time.perf_counter() - started
    if not report.ok:
        _audit_refused(engine, actor, files, sources, report)
        raise ImportRefused(report)
    return report


def _audit_imported(conn: Connection, actor: object, report: ImportReport) -> None:
    for s in report.sources:
        detail: dict[str, object] = {"file": s.file, "table": s.table, "rows_read": s.rows_read}
        if s.sheet:
            detail["sheet"] = s.sheet
        if s.skipped_reason:
            detail["skipped"] = "identical content already imported"
        else:
            detail |= {"inserted": s.rows_inserted, "updated": s.rows_updated, "unchanged": s.rows_unchanged}
        audit.record(conn, actor, "import", detail=detail, sha256=s.sha256)


def _audit_refused(
    engine: Engine,
    actor: object,
    files: list[Path],
    sources: list[_Source],
    report: ImportReport,
    error: BaseException | None = None,
) -> None:
    """One "import_refused" event: files (with sha256 where known), problem count and rules, never values."""
    shas = {s.path.name: s.sha256 for s in sources}
    detail: dict[str, object] = {
        "files": [{"file": f.name, "sha256": shas.get(f.name)} for f in files],
        "problem_count": report.problem_count,
        "problems": [
            f"{p.file}"
            + (f" [sheet {p.sheet}]" if p.sheet else "")
            + (f" row {p.row}" if p.row is not None else "")
            + (f" column '{p.column}'" if p.column else "")
            + f": {_short(p.rule, 120)}"
            for p in report.problems[:10]
        ],
    }
    if error is not None:
        detail["error"] = type(error).__name__  # the message may quote database values: not logged
    unique = set(shas.values())
    try:
        audit.record(engine, actor, "import_refused", detail=detail, sha256=unique.pop() if len(unique) == 1 else None)
    except SQLAlchemyError as exc:  # the refusal stands even when the log cannot be written
        _log.error("could not write the audit event for a refused import (%s)", type(exc).__name__)


def _already_imported(conn: Connection, source: _Source) -> models.ImportBatch | None:
    row = conn.execute(
        select(models.ImportBatch.id, models.ImportBatch.file_name, models.ImportBatch.imported_at)
        .where(models.ImportBatch.sha256 == source.sha256)
        .where(models.ImportBatch.table_name == source.table)
        .order_by(models.ImportBatch.id)
    ).first()
    return row


def _run_batch(
    conn: Connection,
    sources: list[_Source],
    catalog: Catalog,
    report: ImportReport,
    imported_by: str,
    force: bool,
    progress: Progress | None,
    chunk_rows: int,
) -> None:
    batch = _Batch(conn, catalog, report, imported_by)
    for source in sources:
        src_report = SourceReport(source.label, source.sheet, source.table, source.sha256)
        report.sources.append(src_report)
        previous = None if force else _already_imported(conn, source)
        if previous is not None:
            src_report.skipped_reason = (
                f"identical content already imported as {previous.file_name} on "
                f"{previous.imported_at:%Y-%m-%d %H:%M} (batch {previous.id}); use --force to re-check"
            )
            if source.table == "units":
                batch._units = None
            continue
        _import_source(conn, source, batch, src_report, progress, chunk_rows)


def _import_source(
    conn: Connection,
    source: _Source,
    batch: _Batch,
    src_report: SourceReport,
    progress: Progress | None,
    chunk_rows: int,
) -> None:
    report = batch.report
    table = source.table
    _, decimal = _csv_dialect(source.path) if source.sheet is None else (",", ".")
    _create_stage(conn, table)
    header_ok = None
    cell_limit = max_cell_chars()
    all_units: list[pd.DataFrame] = []
    key_hashes: list[np.ndarray] = []
    try:
        for chunk in _read_chunks(source, report, chunk_rows):
            if header_ok is None:
                header_ok = _check_header(source, list(chunk.frame.columns), report)
            if not header_ok:
                break
            ck = _Checker(source, chunk, report, decimal)
            ck.cell_sizes(cell_limit)
            frame = _VALIDATORS[table](ck, batch)
            ck.finish()
            good = ~ck.bad
            rows = np.arange(chunk.first_row, chunk.first_row + len(frame))
            if table == "units":
                all_units.append(frame[good])
                batch.batch_units |= set(zip(frame["hospital"][good], frame["code"][good], strict=True))
            elif table == "care_cycles":
                # a cycle with a bad value is reported once, on its own row: its outcomes, PROMs and costs
                # are still checked against its condition instead of each being reported as unknown
                named = (frame["cycle_id"] != "") & frame["condition"].isin(batch.catalog.conditions)
                batch.add_batch_cycles(frame["cycle_id"][named], frame["condition"][named])
            src_report.rows_read += len(frame)
            key_hashes.append(
                pd.util.hash_pandas_object(frame.loc[good, list(_TARGET_KEYS[table])], index=False).to_numpy()
            )
            _stage_rows(conn, table, frame[good], rows[good])
            if progress:
                progress(f"{source.label}", src_report.rows_read, _estimate_rows(source, chunk, src_report))
    except UnicodeDecodeError as exc:
        report.add(
            Problem(
                source.label,
                source.sheet,
                None,
                None,
                None,
                f"not UTF-8 text (byte {exc.start}): save as CSV UTF-8",
            )
        )
        return
    except (pd.errors.ParserError, csv.Error) as exc:
        report.add(Problem(source.label, source.sheet, None, None, None, f"malformed CSV: {_short(str(exc))}"))
        return
    except _DamagedFile as exc:
        report.add(Problem(source.label, source.sheet, None, None, None, f"damaged or truncated XLSX workbook ({exc})"))
        return
    except pd.errors.EmptyDataError:
        report.add(Problem(source.label, source.sheet, None, None, None, "file is empty (no header row)"))
        return
    if header_ok is None:
        report.add(Problem(source.label, source.sheet, None, None, None, "file is empty (no header row)"))
        return
    if not header_ok:
        return
    # hashing every key is cheap; the exact (and slower) check in SQL runs only when two hashes collide
    hashes = np.sort(np.concatenate(key_hashes)) if key_hashes else np.empty(0, np.uint64)
    if (hashes[1:] == hashes[:-1]).any():
        _duplicate_problems(conn, source, report)
    if not report.ok:
        return  # keep validating the other files, but write nothing more
    batch_row = conn.execute(
        insert(models.ImportBatch)
        .values(
            file_name=source.label,
            table_name=table,
            sheet=source.sheet,
            sha256=source.sha256,
            rows_read=src_report.rows_read,
            imported_by=batch.imported_by,
            imported_at=dt.datetime.now(dt.UTC),
        )
        .returning(models.ImportBatch.id)
    ).scalar_one()
    if table == "units":
        units = pd.concat(all_units) if all_units else pd.DataFrame()
        hospitals = units.drop_duplicates("hospital", keep="last")
        if "own_hospital" in units:
            hospitals = hospitals.assign(own_hospital=units.groupby("hospital")["own_hospital"].transform("max"))
        _upsert_hospitals(conn, hospitals, batch_row)
    _upsert(conn, table, batch_row, src_report)
    if not (src_report.rows_inserted or src_report.rows_updated):
        # nothing changed: the rows keep pointing at the batch that wrote them, so record no new batch
        conn.execute(delete(models.ImportBatch).where(models.ImportBatch.id == batch_row))
        conn.exec_driver_sql(f"DROP TABLE {_stage_name(table)}")
        return
    conn.execute(
        update(models.ImportBatch)
        .where(models.ImportBatch.id == batch_row)
        .values(
            rows_inserted=src_report.rows_inserted,
            rows_updated=src_report.rows_updated,
            rows_unchanged=src_report.rows_unchanged,
        )
    )
    conn.exec_driver_sql(f"DROP TABLE {_stage_name(table)}")
    if table == "units":
        batch._units = None


def _short(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def _estimate_rows(source: _Source, chunk: _Chunk, src_report: SourceReport) -> int:
    if chunk.bytes_done <= 0 or source.sheet is not None:
        return src_report.rows_read
    return max(src_report.rows_read, int(src_report.rows_read * source.size / chunk.bytes_done))


def explain_problems(report: ImportReport) -> pd.DataFrame:
    """The problems as a table (for the upload page)."""
    return pd.DataFrame(
        [
            {
                "file": p.file,
                "sheet": p.sheet,
                "row": p.row,
                "column": p.column,
                "value": p.value,
                "rule": p.rule,
            }
            for p in report.problems
        ],
        columns=["file", "sheet", "row", "column", "value", "rule"],
    )
