"""The pandas layer: filtered registry queries returning tidy DataFrames with proper dtypes.

Filters (condition, units, period) are pushed into SQL so a page or report never loads more than it shows;
codes come back as categoricals and dates as datetime64 so downstream statistics need no cleaning.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import Column, Connection, Engine, Label, Null, Select, case, func, inspect, literal, null, select
from sqlalchemy.sql import sqltypes
from sqlalchemy.types import TypeDecorator

from vbhc import models, store
from vbhc.catalog import EVENT_DATE_SUFFIX, STORED_CASEMIX, SURVIVAL_KINDS, Catalog, default_catalog
from vbhc.i18n import t
from vbhc.store import get_engine

UNIT_LEVELS = ("hospital", "department", "condition_team")


@dataclass(frozen=True)
class Period:
    """A closed date range of index dates, with the label the user typed."""

    start: dt.date
    end: dt.date
    label: str

    def __post_init__(self) -> None:
        if self.start > self.end:
            raise ValueError(f"period {self.label!r}: start {self.start} is after end {self.end}")


def parse_period(text: str | Period | None) -> Period | None:
    """'2024', '2024Q2', '2024-03', '2022-2024', '2024-01-01..2024-06-30'; None means all dates."""
    if text is None or isinstance(text, Period):
        return text
    raw = str(text).strip()
    if not raw or raw.lower() == "all":
        return None
    if m := re.fullmatch(r"(\d{4})", raw):
        y = int(m[1])
        return Period(dt.date(y, 1, 1), dt.date(y, 12, 31), raw)
    if m := re.fullmatch(r"(\d{4})\s*-\s*(\d{4})", raw):
        return Period(dt.date(int(m[1]), 1, 1), dt.date(int(m[2]), 12, 31), raw)
    if m := re.fullmatch(r"(\d{4})-?[Qq]([1-4])", raw):
        y, q = int(m[1]), int(m[2])
        start = dt.date(y, 3 * q - 2, 1)
        end = (pd.Timestamp(start) + pd.offsets.QuarterEnd(0)).date()
        return Period(start, end, raw)
    if m := re.fullmatch(r"(\d{4})-(\d{2})", raw):
        y, mo = int(m[1]), int(m[2])
        if 1 <= mo <= 12:
            start = dt.date(y, mo, 1)
            return Period(start, (pd.Timestamp(start) + pd.offsets.MonthEnd(0)).date(), raw)
    if m := re.fullmatch(r"(\d{4}-\d{2}-\d{2})\s*\.\.\s*(\d{4}-\d{2}-\d{2})", raw):
        try:
            return Period(dt.date.fromisoformat(m[1]), dt.date.fromisoformat(m[2]), raw)
        except ValueError:
            pass
    raise ValueError(t("report_error.period", "en", period=raw))


def _cycle_filter(
    condition: str | None,
    hospitals: Sequence[str] | None,
    departments: Sequence[str] | None,
    period: str | Period | None,
) -> list:
    c = models.CareCycle
    where = []
    if condition is not None:
        default_catalog().condition(condition)  # unknown condition: clear KeyError, not an empty frame
        where.append(c.condition == condition)
    if hospitals:
        where.append(c.hospital.in_(list(hospitals)))
    if departments:
        where.append(c.department.in_(list(departments)))
    p = parse_period(period)
    if p is not None:
        where.append(c.index_date.between(p.start, p.end))
    return where


def _read(query: Select, engine: Engine | None, transform=None) -> pd.DataFrame:
    """Run `query` on the driver's own cursor: the ORM's row objects cost more than the query itself for the
    millions of PROM item rows a condition can have (about 2x faster than pandas.read_sql here). On PostgreSQL the
    rows come through COPY into Arrow where every column has an exact Arrow reading (_copy_types), else the values
    travel in binary (_binary_results). Either way a frame per batch of _FETCH_ROWS rows, typed as pandas types
    the driver's rows (_copied_frame), so the frames are the same whichever way the values travelled."""
    engine = engine or get_engine()
    with engine.connect() as conn:
        _read_settings(conn)
        types = _copy_types(query, conn)
        if types is not None:
            return _copied(store.copy_out(conn, query, types), transform)
        compiled = query.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
        if compiled.positional:
            params = tuple(compiled.params[name] for name in compiled.positiontup)
        else:
            params = compiled.params
        dbapi = conn.connection.dbapi_connection
        cursor = dbapi.cursor(binary=True) if _binary_results(query, conn) else dbapi.cursor()
        try:
            cursor.execute(str(compiled), params)
            columns = [d[0] for d in cursor.description]
            # batches keep the driver's Python row objects few; the frames hold compact (Arrow) strings
            frames = []
            while rows := cursor.fetchmany(_FETCH_ROWS):
                frame = pd.DataFrame(rows, columns=columns)
                del rows
                frames.append(transform(frame) if transform else frame)
        finally:
            cursor.close()
    return _joined(frames, columns, transform)


#: PostgreSQL settings for a registry read of one condition (or other filters), for the read's transaction only
#: (set_config(..., is_local => true)); a shared_reads scope's read of every condition keeps the server's own.
#: work_mem, each sort's or hash's memory: a condition's read hashes the condition's care cycles and probes them
#: with the whole child table; with the server's default (4 MB) the hash went to disk in batches, and with it every
#: probing row (at 10,000,000 cycles ~4 GB of temporary files per PROM read, a third of its server CPU). A parallel
#: hash gets it times hash_mem_multiplier per process (the largest condition's cycles at 10,000,000 need ~0.2 GB);
#: a larger sort merges on disk, which costs little against the scan. jit: compiling each read's expressions
#: cost ~3 s of server CPU per read at 10,000,000 cycles (a scan, a hash join and a sort), more than it saved.
READ_SETTINGS = {"work_mem": "64MB", "jit": "off"}


def _read_settings(conn: Connection) -> None:
    """READ_SETTINGS for the statements of this connection's transaction (PostgreSQL; elsewhere nothing)."""
    if conn.dialect.name == "postgresql":
        conn.execute(select(*(func.set_config(name, value, True) for name, value in READ_SETTINGS.items())))


def _joined(frames: list[pd.DataFrame], columns: list[str], transform) -> pd.DataFrame:
    if not frames:
        empty = pd.DataFrame({c: [] for c in columns})
        return transform(empty) if transform else empty
    return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)


def _copied(table: pa.Table, transform) -> pd.DataFrame:
    """The frame _read builds from the driver's rows, from the same rows as an Arrow table: per batch of
    _FETCH_ROWS rows, each converted as pandas converts those rows (_copied_frame)."""
    frames = []
    for start in range(0, table.num_rows, _FETCH_ROWS):
        frame = _copied_frame(table.slice(start, _FETCH_ROWS))
        frames.append(transform(frame) if transform else frame)
    return _joined(frames, table.column_names, transform)


def _copied_frame(batch: pa.Table) -> pd.DataFrame:
    """The frame pd.DataFrame(rows) gives for these rows read one by one: text as pandas' str, whole numbers as
    int64 (float64 when some are missing), floats as float64, yes/no as bool (object when some are missing),
    dates as datetime.date objects, and a column with no value at all as None objects."""
    columns = {}
    for name, values in zip(batch.column_names, batch.columns, strict=True):
        if values.null_count == len(values):
            columns[name] = np.full(len(values), None, dtype=object)
        elif pa.types.is_date(values.type):
            columns[name] = values.to_pandas(date_as_object=True).to_numpy()
        else:
            columns[name] = values.to_pandas()
    return pd.DataFrame(columns)


#: Rows fetched from the database cursor at a time.
_FETCH_ROWS = 250_000


#: Column types psycopg reads in binary as the same Python values as from text (str, int, float, Decimal, date,
#: datetime, bool): PostgreSQL sends them without printing each float and date, psycopg parses no text.
_BINARY_SAFE = (
    sqltypes.String,
    sqltypes.Integer,
    sqltypes.Float,
    sqltypes.Numeric,
    sqltypes.Date,
    sqltypes.DateTime,
    sqltypes.Boolean,
)


#: Arrow's reading of each column type the registry reads through COPY (_copy_types): the value the driver gives
#: (str, int, float, date, bool), parsed from PostgreSQL's CSV text exactly.
_COPY_TYPES = (
    (sqltypes.String, pa.string()),
    (sqltypes.Integer, pa.int64()),
    (sqltypes.Float, pa.float64()),
    (sqltypes.Date, pa.date32()),
    (sqltypes.Boolean, pa.bool_()),
    (sqltypes.NullType, pa.null()),
)


def _psycopg(conn: Connection | Engine) -> bool:
    return conn.dialect.name == "postgresql" and conn.dialect.driver == "psycopg"


def _stored_type(kind, dialect):
    """The SQL type a column's values arrive as: a decorated type (SQLModel's AutoString) counts as the type it
    stores; None when the decoration converts what it reads (then only the driver's own rows are right)."""
    if isinstance(kind, TypeDecorator):
        if type(kind).process_result_value is not TypeDecorator.process_result_value:
            return None
        return kind.load_dialect_impl(dialect)
    return kind


def _copy_types(query: Select, conn) -> dict[str, pa.DataType] | None:
    """The Arrow type of each of `query`'s columns when its rows can be read through COPY (PostgreSQL with psycopg,
    every column named once and of a type in _COPY_TYPES, a decorated type counted as the type it stores unless it
    converts what it reads); None otherwise. Decimal numbers, timestamps, intervals and enums are not."""
    if not _psycopg(conn):
        return None
    types: dict[str, pa.DataType] = {}
    for column in query.selected_columns:
        kind = _stored_type(column.type, conn.dialect)
        if kind is None:
            return None
        named = isinstance(column, Column | Label) and "%(" not in column.name  # not an anonymous label
        if not named or column.name in types or isinstance(kind, sqltypes.Interval | sqltypes.Enum):
            return None
        if isinstance(kind, sqltypes.NullType) and not isinstance(getattr(column, "element", None), Null):
            return None  # an expression of unknown type: only a bare NULL has no value to parse
        arrow = next((arrow for sql_type, arrow in _COPY_TYPES if isinstance(kind, sql_type)), None)
        if arrow is None:
            return None
        types[column.name] = arrow
    return types


def _binary_results(query: Select, conn) -> bool:
    """Whether `query`'s rows are read in PostgreSQL's binary format (psycopg only): when every column's type has a
    binary reading that gives the value the text one gives. A decorated type (SQLModel's AutoString) counts as the
    type it stores, unless it converts what it reads; any other type keeps the text format."""
    if not _psycopg(conn):
        return False
    for column in query.selected_columns:
        kind = _stored_type(column.type, conn.dialect)
        if kind is None:
            return False
        if isinstance(kind, sqltypes.NullType):  # a bare NULL: PostgreSQL types it text
            continue
        if not isinstance(kind, _BINARY_SAFE) or isinstance(kind, sqltypes.Interval | sqltypes.Enum):
            return False
    return True


def _categorise(df: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    for col in columns:
        if col in df:
            df[col] = df[col].astype("category")
    return df


def _dates(df: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    for col in columns:
        if col in df:
            df[col] = pd.to_datetime(df[col])
    return df


def care_cycles(
    condition: str | None = None,
    *,
    hospitals: Sequence[str] | None = None,
    departments: Sequence[str] | None = None,
    period: str | Period | None = None,
    engine: Engine | None = None,
) -> pd.DataFrame:
    """One row per care cycle with its case-mix; only the case-mix columns the condition uses."""
    c = models.CareCycle
    casemix = (
        list(default_catalog().condition(condition).casemix_names) if condition is not None else list(STORED_CASEMIX)
    )
    columns = [c.cycle_id, c.patient_id, c.condition, c.hospital, c.department, c.index_date, c.treatment]
    columns += [getattr(c, name) for name in casemix]
    query = select(*columns).where(*_cycle_filter(condition, hospitals, departments, period)).order_by(c.cycle_id)
    df = _read(query, engine)
    df = _dates(df, ["index_date"])
    for name in casemix:
        kind = STORED_CASEMIX[name]
        if kind == "integer":
            df[name] = df[name].astype("Int64")
        elif kind == "number":
            df[name] = df[name].astype("float64")
    cats = ["condition", "hospital", "department", "treatment"] + [
        n for n in casemix if STORED_CASEMIX[n] == "category"
    ]
    df = _categorise(df, cats)
    if condition is not None:
        cond = default_catalog().condition(condition)
        for var in cond.casemix:
            if var.type == "category":
                df[var.name] = df[var.name].cat.set_categories(list(var.codes))
    return df


def _child_query(model, columns, condition, hospitals, departments, period, extra_where=()) -> Select:
    c = models.CareCycle
    return (
        select(*columns)
        .join(c, c.cycle_id == model.cycle_id)
        .where(*_cycle_filter(condition, hospitals, departments, period), *extra_where)
    )


def _read_child(
    model, columns, condition, hospitals, departments, period, extra_where, order_by, engine, transform=None
) -> pd.DataFrame:
    """The _child_query of these columns and filters, in this order, read; or, when a shared_reads scope is open
    for this engine and nothing but the condition filters the rows, cut from its one read of every condition's."""
    query = _child_query(model, columns, condition, hospitals, departments, period, extra_where).order_by(*order_by)
    scope = _SHARED.get()
    alone = condition is not None and not (hospitals or departments or period)
    if scope is not None and alone and (engine or get_engine()) is scope.engine:
        c = models.CareCycle
        every = _child_query(model, [*columns, c.condition.label(_CONDITION)], None, None, None, None, extra_where)
        piece = scope.piece(every.order_by(*order_by), condition)
        if piece is not None:
            return _copied(piece, transform)
    return _read(query, engine, transform)


#: Care cycles up to which shared_reads holds a child table's rows of every condition at once (in Arrow, ~0.2 GB
#: per table at 1,000,000 cycles); a larger registry's are spilled to a file per condition (_SpilledReads).
SHARED_READ_MAX_CYCLES = 2_000_000

#: The column shared_reads adds to a child table's query: the condition of each row's care cycle.
_CONDITION = "vbhc_condition"


class _ReadsPerCondition:
    """What shared_reads' two ways of holding the rows share: each child query of every condition is read once
    (PostgreSQL, through COPY) and a condition's rows are handed out once, as the condition's own COPY gives them:
    same columns, same rows, same order. Subclasses say where the rows wait (`_hold`) and how they come back
    (`_take`)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.schemas: dict[tuple, pa.Schema] = {}
        self.handed: set[tuple] = set()

    def piece(self, every: Select, condition: str) -> pa.Table | None:
        """`condition`'s rows of `every` (a child query of all conditions with their condition added, ordered on
        the table's unique key). None when COPY cannot read them or they were handed out already (then the caller
        reads them itself)."""
        with self.engine.connect() as conn:
            compiled = every.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
            key = (str(compiled), tuple(sorted((k, repr(v)) for k, v in compiled.params.items())))
            if (key, condition) in self.handed:
                return None
            if key not in self.schemas:
                types = _copy_types(every, conn)
                if types is None:
                    return None
                self.schemas[key] = self._hold(conn, every, types, key)  # last: a failed read is read again
        self.handed.add((key, condition))
        return self._take(key, condition)

    def _hold(self, conn: Connection, every: Select, types: dict, key: tuple) -> pa.Schema:
        """Read `every`'s rows and keep each condition's for `_take`; the rows' schema without the condition."""
        raise NotImplementedError

    def _take(self, key: tuple, condition: str) -> pa.Table:
        raise NotImplementedError


class _SharedReads(_ReadsPerCondition):
    """The rows of every condition held in memory, cut per condition; a condition's rows are dropped once handed
    out, so memory falls as conditions are done."""

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine)
        self.pieces: dict[tuple, dict[str, pa.Table]] = {}

    def _hold(self, conn: Connection, every: Select, types: dict, key: tuple) -> pa.Schema:
        # not READ_SETTINGS: at 1,000,000 cycles these reads of every condition took more server CPU with them
        # (the questionnaires' reads: 6.3 -> 9.1 s), the plan not looked into yet
        table = store.copy_out(conn, every, types)
        conditions = table.column(_CONDITION)
        self.pieces[key] = {
            name: table.filter(pc.equal(conditions, name)).drop_columns([_CONDITION])
            for name in pc.unique(conditions).to_pylist()
        }
        return table.schema.remove(table.schema.get_field_index(_CONDITION))

    def _take(self, key: tuple, condition: str) -> pa.Table:
        found = self.pieces[key].pop(condition, None)
        return found if found is not None else self.schemas[key].empty_table()


class _SpilledReads(_ReadsPerCondition):
    """shared_reads above SHARED_READ_MAX_CYCLES: each child query's rows streamed in chunks
    (store.copy_out_chunks) and each chunk's rows appended to their condition's Arrow IPC file in `folder`; a
    condition's rows are read back from its file when it asks for them, once, and the file deleted. Why: at
    10,000,000 care cycles a child table of every condition does not fit in memory beside the computation (the
    PROM questionnaires alone are several GB), while reading each condition's rows on its own scanned the whole
    child table once per condition (their cycles are interleaved on disk)."""

    def __init__(self, engine: Engine, folder: Path) -> None:
        super().__init__(engine)
        self.folder = folder
        self.files: dict[tuple, dict[str, Path]] = {}

    def _hold(self, conn: Connection, every: Select, types: dict, key: tuple) -> pa.Schema:
        schema = pa.schema([(name, kind) for name, kind in types.items() if name != _CONDITION])
        self.files[key] = self._spill(conn, every, types, schema)
        return schema

    def _take(self, key: tuple, condition: str) -> pa.Table:
        path = self.files[key].pop(condition, None)
        if path is None:
            return self.schemas[key].empty_table()
        try:
            with pa.OSFile(str(path)) as source:  # read into memory, not mapped: the file goes now
                return pa.ipc.open_file(source).read_all()
        finally:
            path.unlink()

    def _spill(self, conn: Connection, every: Select, types: dict[str, pa.DataType], schema: pa.Schema) -> dict:
        """`every`'s rows, in its order, written to one IPC file per condition (LZ4 compressed: less disk)."""
        query = len(self.files)
        files: dict[str, Path] = {}
        writers: dict[str, pa.ipc.RecordBatchFileWriter] = {}
        options = pa.ipc.IpcWriteOptions(compression="lz4")
        try:
            for chunk in store.copy_out_chunks(conn, every, types):
                conditions = chunk.column(_CONDITION)
                for name in pc.unique(conditions).to_pylist():
                    if name not in writers:
                        files[name] = self.folder / f"{query}-{len(files)}.arrow"
                        writers[name] = pa.ipc.new_file(str(files[name]), schema, options=options)
                    writers[name].write_table(chunk.filter(pc.equal(conditions, name)).drop_columns([_CONDITION]))
                del chunk, conditions
        finally:
            for writer in writers.values():
                writer.close()
        return files


_SHARED: ContextVar[_ReadsPerCondition | None] = ContextVar("vbhc_shared_reads", default=None)


@contextmanager
def shared_reads(engine: Engine | None = None) -> Iterator[None]:
    """Within the block, each child table's rows (clinical outcomes, PROM questionnaires, cost lines) are read
    once for every condition and each condition's read without other filters is cut from them: the same frames,
    for whoever reads every condition in turn (the indicator tables of all conditions, a precompute).

    Why: on PostgreSQL a condition's read joins its cycles to the whole child table (the conditions' cycles are
    interleaved), so reading the conditions one by one scanned each child table once per condition; at 1,000,000
    cycles that was most of the server's time. Only on PostgreSQL through COPY, for registries up to
    SHARED_READ_MAX_CYCLES care cycles the rows are held in memory until their condition is read; above it they
    are spilled, as they arrive, to a file per condition in a temporary folder (tempfile's: TMPDIR) removed when
    the block ends, however it ends. Elsewhere a no-op. Only in the thread (context) that opened it."""
    engine = engine or get_engine()
    scope: _ReadsPerCondition | None = None
    folder = None
    if _psycopg(engine):
        with engine.connect() as conn:
            cycles = conn.execute(select(func.count()).select_from(models.CareCycle.__table__)).scalar_one()
        if cycles <= SHARED_READ_MAX_CYCLES:
            scope = _SharedReads(engine)
        else:
            folder = Path(tempfile.mkdtemp(prefix="vbhc-shared-reads-"))
            scope = _SpilledReads(engine, folder)
    token = _SHARED.set(scope)
    try:
        yield
    finally:
        _SHARED.reset(token)
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)


def clinical_outcomes(
    condition: str,
    *,
    outcomes: Sequence[str] | None = None,
    hospitals: Sequence[str] | None = None,
    departments: Sequence[str] | None = None,
    period: str | Period | None = None,
    engine: Engine | None = None,
) -> pd.DataFrame:
    """Long: one row per cycle and outcome (cycle_id, outcome, value, date)."""
    o = models.ClinicalOutcome
    extra = [o.outcome.in_(list(outcomes))] if outcomes else []
    columns, order = [o.cycle_id, o.outcome, o.value, o.date], [o.cycle_id, o.outcome]
    df = _read_child(o, columns, condition, hospitals, departments, period, extra, order, engine)
    return _categorise(_dates(df, ["date"]), ["outcome"])


def outcomes_wide(
    condition: str,
    *,
    hospitals: Sequence[str] | None = None,
    departments: Sequence[str] | None = None,
    period: str | Period | None = None,
    engine: Engine | None = None,
) -> pd.DataFrame:
    """Care cycles with one column per clinical outcome of the condition (NaN = not recorded)."""
    cycles = care_cycles(condition, hospitals=hospitals, departments=departments, period=period, engine=engine)
    long = clinical_outcomes(condition, hospitals=hospitals, departments=departments, period=period, engine=engine)
    wide = long.pivot(index="cycle_id", columns="outcome", values="value")
    wide.columns = [str(c) for c in wide.columns]
    cond = default_catalog().condition(condition)
    for outcome in cond.outcomes:
        if outcome.id not in wide:
            wide[outcome.id] = float("nan")
    # survival indicators follow their outcome's date too (death or last known alive)
    for ident in sorted({i.outcome for i in cond.indicators if i.kind in SURVIVAL_KINDS and i.outcome}):
        dated = long[long["outcome"] == ident].set_index("cycle_id")["date"]
        wide[ident + EVENT_DATE_SUFFIX] = pd.to_datetime(dated.reindex(wide.index))
    return cycles.merge(wide, left_on="cycle_id", right_index=True, how="left")


def prom_responses(
    condition: str,
    *,
    instruments: Sequence[str] | None = None,
    timepoints: Sequence[str] | None = None,
    hospitals: Sequence[str] | None = None,
    departments: Sequence[str] | None = None,
    period: str | Period | None = None,
    engine: Engine | None = None,
) -> pd.DataFrame:
    """Long item responses: cycle_id, instrument, timepoint, item, value, completed_date (the questionnaire's).

    The stored questionnaire rows unpivoted, one row per answer, in the order of the questionnaires and their
    items' positions: the frame the item rows gave when they were stored one per answer."""
    q = models.PromQuestionnaire
    extra = []
    if instruments:
        extra.append(q.c.instrument.in_(list(instruments)))
    if timepoints:
        extra.append(q.c.timepoint.in_(list(timepoints)))
    items = _prom_positions(engine)
    slots = max((position for by in items.values() for position in by), default=0)
    answers = [q.c[models.prom_answer_column(n)] for n in range(1, slots + 1)]
    query = _child_query(
        q.c,
        [q.c.cycle_id, q.c.instrument, q.c.timepoint, q.c.completed_date, *answers],
        condition,
        hospitals,
        departments,
        period,
        extra,
    ).order_by(q.c.id)
    kinds = _prom_dtypes()
    # the item at each (instrument, position): one lookup per answer, by the instrument's code in its categories
    names = kinds["instrument"].categories
    item_at = np.full((len(names) + 1, slots + 1), None, dtype=object)
    for instrument, by in items.items():
        row = names.get_indexer([instrument])[0]
        for position, item in by.items():
            item_at[row, position] = item

    def unpivot(frame: pd.DataFrame) -> pd.DataFrame:
        # fixed categories per batch, so millions of answers concatenate without ever being Python strings
        frame = _in_categories(frame, {k: kinds[k] for k in ("instrument", "timepoint")})
        values = frame[[a.name for a in answers]].to_numpy(dtype="float64", na_value=np.nan)
        rows, positions = np.nonzero(~np.isnan(values))
        codes = frame["instrument"].cat.codes.to_numpy()[rows]
        long = pd.DataFrame(
            {
                "cycle_id": frame["cycle_id"].to_numpy(dtype=object)[rows],
                "instrument": frame["instrument"].to_numpy()[rows],
                "timepoint": frame["timepoint"].to_numpy()[rows],
                "item": item_at[codes, positions + 1],
                "value": values[rows, positions],
                "completed_date": pd.to_datetime(frame["completed_date"]).to_numpy()[rows],
            }
        )
        long["instrument"] = long["instrument"].astype(kinds["instrument"])
        long["timepoint"] = long["timepoint"].astype(kinds["timepoint"])
        return _in_categories(long, {"item": kinds["item"]})

    df = _read(query, engine, unpivot)
    return _categorise(df, ["cycle_id"])


def _prom_positions(engine: Engine | None) -> dict[str, dict[int, str]]:
    """Per instrument, the item stored at each answer position (vbhc.models.PromItem)."""
    i = models.PromItem
    found: dict[str, dict[int, str]] = {}
    for instrument, item, position in _read(select(i.instrument, i.item, i.position), engine).itertuples(index=False):
        found.setdefault(str(instrument), {})[int(position)] = str(item)
    return found


def prom_questionnaires(
    condition: str,
    instrument: str,
    *,
    hospitals: Sequence[str] | None = None,
    departments: Sequence[str] | None = None,
    period: str | Period | None = None,
    engine: Engine | None = None,
    catalog: Catalog | None = None,
) -> pd.DataFrame:
    """One row per returned questionnaire of `instrument`: cycle_id, timepoint, completed_date and one float
    column per catalog item (NaN = not answered), in the catalog's item order.

    The stored rows as they are (one per questionnaire), each catalog item read from its answer column
    (vbhc.models.PromItem gives its position, whatever the catalog's order). A stored answer to an item the
    catalog does not list is an error, as it is when the answers are scored (vbhc.proms).
    """
    q = models.PromQuestionnaire
    spec = (catalog or default_catalog()).instruments[instrument]
    item_ids = [i.id for i in spec.items]
    labels = [f"item_{j}" for j in range(len(item_ids))]
    positions = {item: position for position, item in _prom_positions(engine).get(instrument, {}).items()}
    columns = [q.c.cycle_id, q.c.timepoint, q.c.completed_date]
    for item, label in zip(item_ids, labels, strict=True):
        stored = q.c[models.prom_answer_column(positions[item])] if item in positions else null()
        columns.append(stored.label(label))
    where = [q.c.instrument == instrument]
    timepoints = _prom_dtypes()["timepoint"]

    def compact(frame: pd.DataFrame) -> pd.DataFrame:
        frame = _in_categories(frame, {"timepoint": timepoints}).astype(dict.fromkeys(labels, "float64"))
        frame["completed_date"] = pd.to_datetime(frame["completed_date"])
        return frame

    others = {item: position for item, position in positions.items() if item not in set(item_ids)}
    if others:
        answered = [
            func.count(q.c[models.prom_answer_column(position)]).label(f"n_{n}")
            for n, position in enumerate(others.values())
        ]
        found = _read(_child_query(q.c, answered, condition, hospitals, departments, period, where), engine)
        unknown = sorted(item for item, n in zip(others, found.iloc[0], strict=True) if n)
        if unknown:
            raise ValueError(f"items not in instrument {instrument!r}: {', '.join(unknown)}")
    order = [q.c.cycle_id, q.c.timepoint]
    df = _read_child(q.c, columns, condition, hospitals, departments, period, where, order, engine, compact)
    return df.rename(columns=dict(zip(labels, item_ids, strict=True)))


def prom_scores(
    condition: str,
    *,
    hospitals: Sequence[str] | None = None,
    departments: Sequence[str] | None = None,
    period: str | Period | None = None,
    engine: Engine | None = None,
    catalog: Catalog | None = None,
) -> pd.DataFrame:
    """The condition's PROM scale scores, long (vbhc.proms.score_responses' columns), scored from questionnaires
    the database pivoted: the same frame as scoring prom_responses(), for the instruments the catalog gives the
    condition (the only ones the importer accepts for it), read in a fraction of the time."""
    from vbhc import proms

    catalog = catalog or default_catalog()
    cond = catalog.condition(condition)
    filters = {"hospitals": hospitals, "departments": departments, "period": period, "engine": engine}
    frames = {
        use.instrument: prom_questionnaires(condition, use.instrument, catalog=catalog, **filters) for use in cond.proms
    }
    # cycle_id as a categorical over every instrument's cycles, as prom_responses gives it
    ids = pd.Index(pd.unique(pd.concat([f["cycle_id"] for f in frames.values()], ignore_index=True)))
    cycle_ids = pd.CategoricalDtype(ids.sort_values())
    for frame in frames.values():
        frame["cycle_id"] = frame["cycle_id"].astype(cycle_ids)
    return proms.score_questionnaires(frames, catalog)


def _in_categories(frame: pd.DataFrame, kinds: dict[str, pd.CategoricalDtype]) -> pd.DataFrame:
    """`frame` with these columns in the catalog's fixed categories. A value outside them (an item or timepoint the
    catalog does not know) is a ValueError that names it: astype would make it a missing value (pandas 3) or raise
    without naming it (pandas 4). The codes come from one lookup per column, as astype finds them."""
    for column, kind in kinds.items():
        values = frame[column]
        codes = kind.categories.get_indexer(values)
        unknown = (codes == -1) & values.notna().to_numpy()
        if unknown.any():
            names = ", ".join(sorted(map(str, values[unknown].unique())))
            raise ValueError(f"PROM {column}s not in the catalog: {names}")
        frame[column] = pd.Categorical.from_codes(codes, dtype=kind)
    return frame


@functools.cache
def _prom_dtypes() -> dict[str, pd.CategoricalDtype]:
    """The fixed categories of PROM item rows (every catalog instrument, timepoint and item)."""
    catalog = default_catalog()
    return {
        "instrument": pd.CategoricalDtype(sorted(catalog.instruments)),
        "timepoint": pd.CategoricalDtype(sorted({t.id for c in catalog.conditions.values() for t in c.timepoints})),
        "item": pd.CategoricalDtype(sorted({i.id for inst in catalog.instruments.values() for i in inst.items})),
    }


def _prem_where(
    questionnaire: str,
    hospitals: Sequence[str] | None,
    departments: Sequence[str] | None,
    period: str | Period | None,
    engine: Engine | None,
) -> list:
    """The WHERE of one questionnaire's answers (the two reads of prem_answer_parts). With a period
    and no hospitals or departments given, every hospital and department of the registry are named all the same:
    the answers' index (questionnaire, hospital, department, visit date) then finds the period's answers of each unit
    (SQLite read every answer of the questionnaire, of all years, to keep one year's: a third of the reads' CPU at
    1,000,000 care cycles). An answer's unit is a department of the registry (fk_prem_responses_unit)."""
    default_catalog().questionnaire(questionnaire)  # unknown questionnaire: clear KeyError, not an empty frame
    r = models.PremResponse
    where = [r.questionnaire == questionnaire]
    p = parse_period(period)
    if p is not None and not (hospitals and departments):
        d = models.Department
        with (engine or get_engine()).connect() as conn:
            known = conn.execute(select(d.hospital, d.code)).all()
        hospitals = hospitals or sorted({h for h, _ in known})
        departments = departments or sorted({code for _, code in known})
    if hospitals:
        where.append(r.hospital.in_(list(hospitals)))
    if departments:
        where.append(r.department.in_(list(departments)))
    if p is not None:
        where.append(r.visit_date.between(p.start, p.end))
    return where


def prem_answer_parts(
    questionnaire: str,
    *,
    hospitals: Sequence[str] | None = None,
    departments: Sequence[str] | None = None,
    period: str | Period | None = None,
    engine: Engine | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A PREM questionnaire's item-level answers (the period on the visit date) in two parts: the responses (one row
    per returned questionnaire: response_id, the number of its `answers`, hospital, department, visit_date and
    case-mix, in the database's order of response_id) and their answers (item, a category of the questionnaire's
    items, NaN for an item the catalog does not name, and answer), in the same order of response_id, then item:
    each response's answers follow each other, as many as its `answers`. Why: a response's unit, visit and
    case-mix are the same on each of its rows (the importer checks that), and reading and converting them, or its
    id, once per answer was most of a year's PREM tables at 1,000,000 care cycles (about 740,000 answers of
    100,000 respondents)."""
    from vbhc.catalog import PREM_CASEMIX

    engine = engine or get_engine()
    r = models.PremResponse
    same = [r.hospital, r.department, r.visit_date, *(getattr(r, name) for name in PREM_CASEMIX)]
    items = [i.id for i in default_catalog().questionnaire(questionnaire).items]
    # the item as its position among the catalog's items: an integer per answer instead of a string
    code = case({item: k for k, item in enumerate(items)}, value=r.item, else_=-1) if items else literal(-1)
    # the two reads are two statements: an import committed between them would pair one version's responses with
    # another's answers, so both are read again until the dataset version is the same before and after them
    version = dataset_version(engine)
    for _ in range(_SAME_VERSION_TRIES):
        where = _prem_where(questionnaire, hospitals, departments, period, engine)
        # MIN of values equal on every row of a response: the value, or NULL when no row has one
        per_response = select(
            r.response_id, func.count().label("answers"), *(func.min(c).label(c.key) for c in same)
        ).where(*where)
        per_response = per_response.group_by(r.response_id).order_by(r.response_id)
        responses = _dates(_read(per_response, engine), ["visit_date"])
        query = select(code.label("item"), r.answer).where(*where).order_by(r.response_id, r.item)
        answers = _read(query, engine)
        read, version = version, dataset_version(engine)
        if read == version:
            break
    else:
        raise RegistryChanging(f"the registry changed {_SAME_VERSION_TRIES} times while its PREM answers were read")
    responses["answers"] = responses["answers"].to_numpy(dtype=np.int64)
    codes = answers["item"].to_numpy(dtype=np.int64)
    answers["item"] = pd.Categorical.from_codes(codes, categories=pd.Index(items, dtype=object))
    answers["answer"] = pd.to_numeric(answers["answer"]).astype(float)
    return responses, answers


#: How often prem_answer_parts reads a period's answers again when an import lands between its two reads.
_SAME_VERSION_TRIES = 5


class RegistryChanging(RuntimeError):
    """Imports kept landing while a read of several statements ran: the caller tries again later."""


def cost_lines(
    condition: str,
    *,
    hospitals: Sequence[str] | None = None,
    departments: Sequence[str] | None = None,
    period: str | Period | None = None,
    engine: Engine | None = None,
) -> pd.DataFrame:
    """TDABC cost lines: cycle_id, activity, quantity, unit_cost, cost (= quantity × unit_cost, EUR)."""
    k = models.CostLine
    columns, order = [k.cycle_id, k.activity, k.quantity, k.unit_cost], [k.cycle_id, k.activity]
    df = _read_child(k, columns, condition, hospitals, departments, period, (), order, engine)
    df["cost"] = df["quantity"] * df["unit_cost"]
    return _categorise(df, ["activity"])


def units(engine: Engine | None = None) -> pd.DataFrame:
    """Every hospital department with its hospital's name and the own-hospital flag."""
    d, h = models.Department, models.Hospital
    query = (
        select(
            d.hospital,
            h.name.label("hospital_name"),
            h.own_hospital,
            d.code.label("department"),
            d.name.label("department_name"),
            d.division,
        )
        .join(h, h.code == d.hospital)
        .order_by(d.hospital, d.code)
    )
    df = _read(query, engine)
    df["own_hospital"] = df["own_hospital"].astype(bool)
    return df


def unit_ids(engine: Engine | None = None) -> frozenset[str]:
    """Every hospital code and hospital/department id of the registry as it is now (as unit_labels writes
    them): what a reference to a unit read from a file (a target's, an action's) may name."""
    engine = engine or get_engine()
    h, d = models.Hospital.__table__, models.Department.__table__
    with engine.connect() as conn:
        hospitals = {str(code) for (code,) in conn.execute(select(h.c.code))}
        departments = {f"{hospital}/{code}" for hospital, code in conn.execute(select(d.c.hospital, d.c.code))}
    return frozenset(hospitals | departments)


def _as_text(column: pd.Series) -> pd.Series:
    """A column as text, equal to `astype(str)`. A categorical column (as the registry reads the care cycles) is
    converted through its categories and codes: `astype(str)` would make one Python string per row and convert
    that array to Arrow text (at 10,000,000 care cycles ~80 MB of pointers on top of the tables' peak)."""
    if isinstance(column.dtype, pd.CategoricalDtype) and len(column):
        codes = column.cat.codes.to_numpy()
        if codes.min() >= 0:  # (a missing value keeps astype's own conversion)
            text = column.cat.categories.astype(str).take(codes)
            return pd.Series(text, index=column.index, name=column.name)
    return column.astype(str)


def _text_joined(first: pd.Series, sep: str, second: pd.Series) -> pd.Series:
    """`first` and `second` as text joined by `sep` per row, equal to `astype(str) + sep + astype(str)`. Of two
    categorical columns (the care cycles as the registry reads them) each pair of categories present is joined
    once and the rows take their pair's text: the concatenation row by row cost ~0.17 s of CPU per million care
    cycles."""
    if isinstance(first.dtype, pd.CategoricalDtype) and isinstance(second.dtype, pd.CategoricalDtype) and len(first):
        a, b = first.cat.codes.to_numpy(), second.cat.codes.to_numpy()
        if a.min() >= 0 and b.min() >= 0:
            width = len(second.cat.categories)
            pairs, present = pd.factorize(a.astype(np.int64) * width + b)
            texts = first.cat.categories.astype(str)[present // width] + sep
            texts = texts + second.cat.categories.astype(str)[present % width]
            name = first.name if first.name == second.name else None  # (as pandas names a sum of two series)
            return pd.Series(texts.take(pairs), index=first.index, name=name)
    return _as_text(first) + sep + _as_text(second)


def unit_labels(df: pd.DataFrame, level: str) -> pd.Series:
    """The unit a care cycle belongs to at `level`: hospital, department (hospital/department) or condition team."""
    if level == "hospital":
        return _as_text(df["hospital"])
    if level == "department":
        return _text_joined(df["hospital"], "/", df["department"])
    if level == "condition_team":
        return _text_joined(df["condition"], "@", df["hospital"])
    raise ValueError(f"unknown unit level {level!r}; use one of {', '.join(UNIT_LEVELS)}")


def unit_parts(unit: str) -> tuple[str, str | None]:
    """(hospital, department or None) of a unit id as unit_labels writes it: 'H01', 'H01/SUR' and
    'colorectal_cancer@H01' all belong to hospital H01. The one parser of unit ids."""
    label = unit.split("@", 1)[1] if "@" in unit else unit
    hospital, _, department = label.partition("/")
    return hospital, department or None


def condition_of(unit: str) -> str | None:
    """The condition of a condition team's unit id ('colorectal_cancer@H01'); None for a hospital or department."""
    condition, at, _ = unit.partition("@")
    return condition if at else None


def hospital_of(unit: str) -> str:
    """The hospital a unit id belongs to (unit_parts)."""
    return unit_parts(unit)[0]


def unit_names(
    units_df: pd.DataFrame, level: str, condition: str | None = None, condition_label: str = ""
) -> dict[str, str]:
    """Display name of every unit id at `level` (the ids unit_labels makes): the hospital's name, "hospital –
    department" or "condition – hospital". A name two units share gets its id added, so a picker never offers
    two identical names. `units_df` is units(); ids not in it (e.g. "other unit 3") are simply not keyed."""
    if units_df.empty:
        return {}
    frame = units_df.assign(condition=condition or "")
    ids = unit_labels(frame, level)
    hospital = frame["hospital_name"].fillna(frame["hospital"]).astype(str)
    if level == "hospital":
        names = hospital
    elif level == "department":
        names = hospital + " – " + frame["department_name"].fillna(frame["department"]).astype(str)
    else:
        names = (condition_label or str(condition or "")) + " – " + hospital
    mapping = dict(zip(ids, names, strict=True))
    counts = pd.Series(list(mapping.values())).value_counts()
    return {u: (f"{n} ({u})" if counts.get(n, 0) > 1 else n) for u, n in mapping.items()}


def condition_volumes(period: str | Period | None = None, engine: Engine | None = None) -> pd.DataFrame:
    """Care cycles, hospitals and date range per condition (for the landing page)."""
    engine = engine or get_engine()
    if not inspect(engine).has_table(models.CareCycle.__tablename__):
        return pd.DataFrame(columns=["condition", "care_cycles", "hospitals", "first_index_date", "last_index_date"])
    c = models.CareCycle
    query = (
        select(
            c.condition,
            func.count().label("care_cycles"),
            func.count(func.distinct(c.hospital)).label("hospitals"),
            func.min(c.index_date).label("first_index_date"),
            func.max(c.index_date).label("last_index_date"),
        )
        .where(*_cycle_filter(None, None, None, period))
        .group_by(c.condition)
        .order_by(c.condition)
    )
    return _dates(_read(query, engine), ["first_index_date", "last_index_date"])


def import_batches(engine: Engine | None = None) -> pd.DataFrame:
    """Provenance: every import batch, newest first."""
    b = models.ImportBatch
    df = _read(select(b).order_by(b.id.desc()), engine)
    return _dates(df, ["imported_at"])


def batch_reach(engine: Engine | None = None) -> pd.DataFrame:
    """Per import batch the conditions and hospitals of the stored rows it last wrote (columns batch_id,
    condition, hospital; condition None for the units tables): a file a viewer takes away lists only the batches
    of data the viewer may read (vbhc.access.provenance_for), not other hospitals' file names and importers."""
    c = models.CareCycle
    queries = [select(c.batch_id, c.condition, c.hospital).distinct()]
    for child in (models.ClinicalOutcome.__table__, models.PromQuestionnaire, models.CostLine.__table__):
        queries.append(
            select(child.c.batch_id, c.condition, c.hospital).join(c, c.cycle_id == child.c.cycle_id).distinct()
        )
    h, d = models.Hospital, models.Department
    queries.append(select(h.batch_id, null().label("condition"), h.code.label("hospital")).distinct())
    queries.append(select(d.batch_id, null().label("condition"), d.hospital).distinct())
    frames = [_read(q, engine) for q in queries]
    reach = pd.concat([f for f in frames if len(f)] or frames[:1], ignore_index=True)
    reach.columns = ["batch_id", "condition", "hospital"]
    return reach.drop_duplicates(ignore_index=True)


def dataset_version(engine: Engine | None = None) -> str:
    """Changes whenever an import changes the data: a cache key, so cached results never outlive an import."""
    engine = engine or get_engine()
    if not inspect(engine).has_table(models.ImportBatch.__tablename__):
        return "empty"
    b = models.ImportBatch
    with engine.connect() as conn:
        last, count = conn.execute(select(func.max(b.id), func.count())).one()
    return f"{last or 0}-{count}"


def condition_units(condition: str, engine: Engine | None = None) -> pd.DataFrame:
    """The hospitals and departments that treat a condition, with their number of care cycles."""
    c = models.CareCycle
    default_catalog().condition(condition)
    query = (
        select(c.hospital, c.department, func.count().label("care_cycles"))
        .where(c.condition == condition)
        .group_by(c.hospital, c.department)
        .order_by(c.hospital, c.department)
    )
    return _read(query, engine)


def condition_unit_years(condition: str, engine: Engine | None = None) -> pd.DataFrame:
    """condition_units per year of the index date (column `year`): a comparison group's atoms must hold enough
    units in every year a page shows (vbhc.access.offered_groups), not only over all dates."""
    c = models.CareCycle
    default_catalog().condition(condition)
    year = func.extract("year", c.index_date)
    query = (
        select(c.hospital, c.department, year.label("year"), func.count().label("care_cycles"))
        .where(c.condition == condition)
        .group_by(c.hospital, c.department, year)
        .order_by(c.hospital, c.department, year)
    )
    frame = _read(query, engine)
    frame["year"] = pd.to_numeric(frame["year"], errors="coerce").astype("Int64")
    return frame


def completeness(condition: str, engine: Engine | None = None) -> pd.DataFrame:
    """Share of care cycles with each case-mix variable filled in, per hospital (the data steward's view)."""
    cycles = care_cycles(condition, engine=engine)
    names = list(default_catalog().condition(condition).casemix_names)
    if cycles.empty:
        return pd.DataFrame(columns=["hospital", "variable", "filled", "care_cycles"])
    filled = cycles[names].notna().groupby(cycles["hospital"].astype(str)).mean()
    counts = cycles.groupby(cycles["hospital"].astype(str)).size()
    long = filled.reset_index().melt(id_vars="hospital", var_name="variable", value_name="filled")
    return long.assign(care_cycles=long["hospital"].map(counts))
