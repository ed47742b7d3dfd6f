"""Property-based fuzzing of the targets and actions spreadsheets (vbhc.improvement_sheets), the input path a care
team edits by hand: a workbook the dashboard exported, with cells replaced by what people and spreadsheet programs
write (numbers as text, a decimal comma, dates in other orders, look-alike letters, formulas, blanks, an item id
that is not there, a new row), imported again. Two invariants hold for every file:

- a refused file changes no stored row, and says why in one line naming the file, row and column;
- an accepted file stores what a person reading it reads: every data row's cells, read as a person reads them
  (below, written apart from the importer's own parsing), equal the stored item of that row.

The readings here are deliberately narrow: a cell whose reading is not plain (a date as 01-02-2026, a number with a
decimal comma) may be refused or stored as read, never stored as anything else."""

from __future__ import annotations

import datetime as dt
import io
import itertools
import re
import shutil
import unicodedata
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openpyxl import load_workbook
from openpyxl.utils.exceptions import IllegalCharacterError
from sqlalchemy import Engine, select

from tests.registry_files import store_units
from tests.test_improvement import CARE, CARE_H01, CONDITION, INDICATOR, QUALITY
from vbhc import improvement, models
from vbhc import improvement_sheets as sheets
from vbhc.access import Viewer
from vbhc.catalog import default_catalog
from vbhc.improvement_sheets import ACTION_COLUMNS, TARGET_COLUMNS, SheetRefused
from vbhc.store import get_engine, upgrade_schema

# SQLite only: the sheet's reading does not depend on the database (tests/test_improvement.py runs the round trip
# on PostgreSQL too); each example imports into a fresh copy of one registry

UNITS = ("", "H01", "H02", "H01/SUR", "H01/ORT", "H02/SUR", "H02/ORT")
FILE = "plan.xlsx"

_counter = itertools.count()

#: What people and programs put in a cell: Python values written with openpyxl (a str is a text cell, a number a
#: number cell, a datetime a date cell, None an empty cell)
CELLS = st.one_of(
    st.sampled_from(
        [
            None,
            "",
            " ",
            # numbers, as numbers and as text
            0.07,
            7,
            0,
            -0.5,
            1e300,
            "0.07",
            " 0.2 ",
            "0,07",
            "7%",
            "1.000,5",
            "1,000.5",
            "1e-1",
            "inf",
            "nan",
            "1_0",
            "٠٫٥",
            "０.５",
            # dates
            dt.datetime(2026, 1, 1),
            dt.datetime(2026, 3, 1, 12, 30),
            "2026-01-01",
            "2026-1-1",
            "01-02-2026",
            "2026-02-30",
            "45000",
            "tomorrow",
            # yes/no
            "1",
            "0",
            "ja",
            "NEE",
            "true",
            "2",
            # ids and codes of this registry and catalog, and near misses
            CONDITION,
            "breast_cancer",
            "COLORECTAL_CANCER",
            INDICATOR,
            "mortality_30d",
            "ANASTOMOTIC_LEAK",
            "unknown",
            "H01",
            "h01",
            " H02",
            "H01/SUR",
            "H09",
            "H0l",
            "Н01",  # a Cyrillic En
            "H01\u200b",
            "team_goal",
            "external_norm",
            "Team_Goal",
            "at_most",
            "at_least",
            "AT_LEAST",
            "planned",
            "done",
            "Done",
            "anastomotic_leak, mortality_30d",
            "anastomotic_leak,,",
            "T-000000000000",
            "A-000000000000",
            # free text
            "DICA",
            "café",
            "cafe\u0301",
            "=1+1",
            "'=1+1",
            "+31 20 555",
            "@home",
            "two\nlines",
            "x" * 5000,
        ]
    ),
    st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), max_size=12),
)


# ---------------------------------------------------------------------------------------------- the registry
@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    """A SQLite registry with the units, a team goal, an external norm and an action: every example imports into a
    copy of it."""
    path = tmp_path_factory.mktemp("sheets") / "template.db"
    engine = get_engine(f"sqlite:///{path}")
    upgrade_schema(engine)
    store_units(engine)
    improvement.set_target(engine, CARE, CONDITION, INDICATOR, 0.10, source="team")
    improvement.set_target(
        engine, QUALITY, CONDITION, "mortality_30d", 0.03, kind="external_norm", source="DICA", unit="H01"
    )
    improvement.create_action(
        engine,
        CARE,
        CONDITION,
        "Fewer leaks",
        "surgeon",
        dt.date(2026, 1, 1),
        dt.date(2026, 6, 1),
        indicators=[INDICATOR],
        expected_effect="half the leaks",
    )
    engine.dispose()
    get_engine.cache_clear()
    return path


def _copy(template: Path) -> Iterator[Engine]:
    path = template.with_name(f"copy-{next(_counter)}.db")
    shutil.copyfile(template, path)
    engine = get_engine(f"sqlite:///{path}")
    try:
        yield engine
    finally:
        engine.dispose()
        get_engine.cache_clear()
        path.unlink(missing_ok=True)


def _stored(engine: Engine) -> list[tuple]:
    """Every row of the improvement tables, in a fixed order: what a refused file must leave as it was."""
    out = []
    with engine.connect() as conn:
        for table in (models.ImprovementTarget, models.ImprovementAction):
            cols = list(table.__table__.c)
            out.extend(sorted((table.__tablename__, *row) for row in conn.execute(select(*cols)).all()))
    return out


# ---------------------------------------------------------------------------------------------- the readings
class NotPlain(Exception):
    """The cell has no one reading a person would agree on: the import may refuse it or store one of `readings`."""

    def __init__(self, *readings: object) -> None:
        self.readings = readings


_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_YES, _NO = {"1", "ja", "yes", "true", "waar", ""}, {"0", "nee", "no", "false", "onwaar"}
_ENUMS = {"kind", "direction", "status"}
_DATES = {"valid_from", "start", "due"}
_FREE = {"source", "title", "owner_role", "expected_effect"}


def _text(value: object) -> str:
    """A cell's text as Excel shows it under the General format (the numbers this module writes)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer() and abs(value) < 1e15):
        return str(int(value))
    if isinstance(value, float):
        raise NotPlain()  # General shows 1E+300, 0.07: left to the importer's refusal
    if isinstance(value, dt.datetime):
        raise NotPlain()
    return str(value)


def reading(column: str, value: object) -> object:
    """What a person reads in the cell, as the stored item holds it; NotPlain where readings differ."""
    if isinstance(value, str) and value.lstrip().startswith(("=", "+", "-", "@")) and column not in ("value",):
        raise NotPlain()  # a formula (openpyxl writes "=..." as one) or text that reads as one: refused
    if column == "value":
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        text = _text(value).strip()
        if _NUMBER.fullmatch(text):
            return float(text)
        raise NotPlain()
    if column in _DATES:
        if isinstance(value, dt.datetime):
            if value.time() != dt.time(0):
                raise NotPlain(value.date())
            return value.date()
        text = _text(value).strip()
        if m := re.fullmatch(r"(\d{4})-(\d{2})-(\d{2})", text):
            try:
                return dt.date(*map(int, m.groups()))
            except ValueError:
                raise NotPlain() from None
        if m := re.fullmatch(r"(\d{4})-(\d{1,2})-(\d{1,2})", text):
            raise NotPlain(dt.date(*map(int, m.groups())))
        if m := re.fullmatch(r"(\d{1,2})-(\d{1,2})-(\d{4})", text):  # day-month-year, as Dutch writes it
            d, mo, y = map(int, m.groups())
            raise NotPlain(dt.date(y, mo, d))
        raise NotPlain()
    if column == "active":
        text = _text(value).strip().lower()
        if text in _YES:
            return True
        if text in _NO:
            return False
        raise NotPlain()
    text = _text(value)
    if text.startswith("'") and text[1:].lstrip().startswith(("=", "+", "-", "@")):
        text = text[1:]  # the apostrophe the export puts before a text that reads as a formula
    text = text.strip()
    if column in _FREE:
        return unicodedata.normalize("NFC", text)
    if column in ("indicators", "signals"):
        return [part.strip() for part in text.split(",") if part.strip()]
    if column in _ENUMS:
        if not text:
            raise NotPlain()  # left empty: the default (a team goal, the indicator's direction, planned)
        raise NotPlain(text, text.lower())  # a code in other case may be refused or read as the code
    return text


def _expected(columns: tuple[str, ...], cells: dict[str, object]) -> dict[str, object]:
    """The row's readings by column, NotPlain instances for the cells without one."""
    out: dict[str, object] = {}
    for column in columns:
        if column in ("item_id", "version"):
            continue
        try:
            out[column] = reading(column, cells.get(column))
        except NotPlain as unclear:
            out[column] = unclear
    return out


def _stored_value(item: object, column: str) -> object:
    if column == "indicators":
        return item.indicator_ids
    if column == "signals":
        return item.signal_ids
    value = getattr(item, column)
    return value.value if hasattr(value, "value") and not isinstance(value, bool | float | int) else value


def _matches(item: object, expected: dict[str, object]) -> list[str]:
    """The columns whose stored value is not the cell's reading (a NotPlain cell: not one of its readings)."""
    wrong = []
    for column, want in expected.items():
        got = _stored_value(item, column)
        if isinstance(want, NotPlain):
            if want.readings and got not in want.readings:
                wrong.append(f"{column}: stored {got!r}, read {want.readings!r}")
            continue
        if got != want:
            wrong.append(f"{column}: stored {got!r}, read {want!r}")
    return wrong


# ---------------------------------------------------------------------------------------------- the property
EDITS = st.lists(
    st.tuples(st.integers(0, 3), st.integers(0, 11), CELLS),  # (row: 0-2 the exported rows, 3 a new one; column)
    min_size=1,
    max_size=3,
)


def _mutated(data: bytes, columns: tuple[str, ...], edits: list[tuple[int, int, object]]) -> bytes | None:
    wb = load_workbook(io.BytesIO(data))
    ws = wb.active
    exported = ws.max_row - 1
    if any(row == 3 for row, _, _ in edits):  # a new row: a copy of the first, without its item id and version
        ws.append([c.value for c in ws[2]])
        ws.cell(ws.max_row, 1).value = None
        ws.cell(ws.max_row, 2).value = None
    for row, col, value in edits:
        excel_row = 2 + (row if row < 3 else exported)
        if excel_row > ws.max_row or col >= len(columns):
            continue
        try:
            ws.cell(excel_row, col + 1).value = value
        except (IllegalCharacterError, ValueError):
            return None
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def _check(engine: Engine, viewer: Viewer, kind: str, data: bytes) -> None:
    columns = TARGET_COLUMNS if kind == "targets" else ACTION_COLUMNS
    load = sheets.import_targets if kind == "targets" else sheets.import_actions
    before = _stored(engine)
    try:
        done = load(engine, viewer, data, file_name=FILE)
    except SheetRefused as refused:  # every refusal is the file's, naming its rows (never another error)
        assert _stored(engine) == before, "a refused file changed stored rows"
        assert refused.problems and FILE in refused.message("en")
        for p in refused.problems:  # one line each, naming the file, the row and (for a cell) the column
            assert p.file == FILE and p.row >= 0 and "\n" not in p.text("en") and "\n" not in p.text("nl")
        return
    # accepted: every data row reads as stored
    wb = load_workbook(io.BytesIO(data))
    ws = wb.active
    header = [c.value for c in ws[1]]
    items = (
        improvement.targets(engine, viewer, CONDITION, active_only=False)
        if kind == "targets"
        else improvement.actions(engine, viewer, CONDITION)
    )
    by_id = {i.item_id: i for i in items}
    created = [by_id[i] for i in done.created]
    for cells in ws.iter_rows(min_row=2, values_only=True):
        row = dict(zip(header, cells, strict=False))
        if all(v is None for v in cells):
            continue
        expected = _expected(columns, row)
        item_id = str(row.get("item_id") or "").strip()
        if item_id:
            assert item_id in by_id, f"row of {item_id} accepted, item not stored"
            wrong = _matches(by_id[item_id], expected)
            assert not wrong, f"{item_id}: {wrong}"
        else:
            assert any(not _matches(c, expected) for c in created), (
                f"new row {expected} stored as none of {[_matches(c, expected) for c in created]}"
            )
    units = {str(i.unit) for i in items}
    assert units <= set(UNITS), f"a unit the registry does not hold was stored: {units - set(UNITS)}"
    catalog = default_catalog()
    if kind == "targets":
        known = {i.id for i in catalog.conditions[CONDITION].indicators}
        assert {i.indicator for i in items} <= known


@pytest.mark.parametrize("kind", ["targets", "actions"])
@settings(
    max_examples=50,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
# a care team, the quality directorate (who may set norms), and a care team limited to H01 (its file holds H02's
# rows, which it may leave as exported but not change)
@given(edits=EDITS, viewer=st.sampled_from([CARE, QUALITY, CARE_H01]))
def test_an_edited_sheet_is_refused_whole_or_stored_as_it_reads(template, kind, edits, viewer):
    columns = TARGET_COLUMNS if kind == "targets" else ACTION_COLUMNS
    for engine in _copy(template):
        export = sheets.export_targets if kind == "targets" else sheets.export_actions
        data = _mutated(export(engine, viewer, CONDITION), columns, edits)
        if data is not None:
            _check(engine, viewer, kind, data)
