"""One import batch, from files to committed rows: the order of the steps and what is recorded about them.

Why it works this way:
- One call is one batch: every file is validated and written inside a single transaction, and any problem
  rolls the whole batch back, so the database never holds half an import.
- Files stream in chunks into a temporary staging table, so a file with millions of PROM item rows needs
  little memory; duplicate keys (within a file and across the files of the batch) and the final upsert are
  done by the database itself.
- A first import of a table (the table empty, one file of it in the batch) skips the staging copy: its chunks
  go straight into the table (PostgreSQL: COPY in a worker thread, inside a savepoint), whose unique and foreign
  keys check every row; a row they refuse sends the file through the staging path after all, which names it.
  Same rows, ids and counts either way.
- Re-imports upsert on natural keys: identical rows are counted as unchanged, not added again. A file (or
  sheet) whose exact content was imported before is skipped unless forced, but only while nothing imported
  since then may have changed its rows.
- A change to a stored row is checked against what hangs on it (a care cycle's outcomes, PROMs and costs).
- A database that refuses the write (read-only, disk full) is one line in the report, never a traceback.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
from sqlalchemy import (
    Column,
    Connection,
    Date,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    and_,
    case,
    delete,
    func,
    insert,
    literal,
    or_,
    select,
    tuple_,
    type_coerce,
    update,
)
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from vbhc import audit, models
from vbhc.catalog import SURVIVAL_KINDS, Catalog, default_catalog
from vbhc.ingest import prom_store
from vbhc.ingest import stage as staging
from vbhc.ingest.problems import (
    ImportRefused,
    ImportReport,
    Problem,
    Rule,
    SourceReport,
    audited_problems,
    rule_text,
    shown_file,
    shown_in,
)
from vbhc.ingest.read import (
    Chunk,
    DamagedFile,
    DamagedRow,
    Header,
    MalformedText,
    Source,
    check_header,
    discover,
    read,
)
from vbhc.ingest.tables import TABLES
from vbhc.ingest.validate import PREM_RESPONSE_COLUMNS, VALIDATORS, BatchState, Checker, DecimalMarks
from vbhc.progress import Progress
from vbhc.settings import import_chunk_rows, max_import_mb, max_upload_mb
from vbhc.store import get_engine, upgrade_schema

_log = logging.getLogger(__name__)
#: Rows of each index SQLite's ANALYZE reads after an import (SQLite's advice for PRAGMA optimize: 400-1000).
_SQLITE_ANALYSIS_LIMIT = "PRAGMA analysis_limit=1000"


def _require_import(actor: object, engine: Engine, file_count: int) -> None:
    """A viewer as the actor must hold the import right (vbhc.access.may_import: quality, admin), as through
    vbhc.access.guarded_import: a direct call with a care team's or a manager's Viewer imported all the same.
    A name (the command line, a scheduled run) is trusted as before. AccessDenied (audited) before anything.
    A name needs no look-up: vbhc.access (and the disclosure rules it loads, ~0.4 s) is imported for a Viewer only."""
    if isinstance(actor, str):
        return
    from vbhc.access import Permission, Viewer, require

    if isinstance(actor, Viewer):
        require(actor, Permission.IMPORT, engine=engine, what="import_files", file_count=file_count)


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
    upload: bool = False,
) -> ImportReport:
    """Validate and import `paths` as one all-or-nothing batch; raise ImportRefused on any problem.

    Each file's size is bounded by VBHC_MAX_IMPORT_MB, or for an `upload` through the dashboard by the smaller
    VBHC_MAX_UPLOAD_MB.
    Every call is audited (vbhc.audit) under `actor` (a vbhc.access.Viewer or a user name; default `imported_by`):
    an "import" event per file, written in the batch's own transaction so it exists only if the batch commits,
    or one "import_refused" event, written after the rollback, naming files and rules but never values.
    """
    started = time.perf_counter()
    engine = engine or get_engine()
    catalog = catalog or default_catalog()
    chunk_rows = chunk_rows or import_chunk_rows()
    actor = actor if actor is not None else (imported_by or "unknown")
    files = [Path(p) for p in paths]
    report = ImportReport()
    sources: list[Source] = []

    def refuse(error: BaseException | None = None) -> ImportRefused:
        report.seconds = time.perf_counter() - started
        _audit_refused(engine, actor, files, sources, report, error)
        return ImportRefused(report)

    try:
        upgrade_schema(engine)
    except SQLAlchemyError as exc:
        report.add(_database_problem(exc))
        raise refuse(exc) from None
    _require_import(actor, engine, len(files))
    limit = (max_upload_mb(), "VBHC_MAX_UPLOAD_MB") if upload else (max_import_mb(), "VBHC_MAX_IMPORT_MB")
    sources = discover(files, report, limit)
    if not report.ok:
        raise refuse()
    try:
        with engine.connect() as conn:
            cache_size = staging.shrink_sqlite_cache(conn)
            try:
                row_checks_off = staging.skip_sqlite_row_checks(conn)
                try:
                    trans = conn.begin()
                    try:
                        _run_batch(
                            conn, sources, catalog, report, imported_by, force, progress, chunk_rows, row_checks_off
                        )
                        if report.ok:
                            _audit_imported(conn, actor, report)
                            trans.commit()
                        else:
                            trans.rollback()
                    except BaseException:
                        trans.rollback()
                        raise
                finally:
                    if row_checks_off:
                        try:
                            staging.restore_sqlite_row_checks(conn)
                        except BaseException:
                            conn.invalidate()  # never back into the pool without its foreign-key check
                            raise
                if report.ok and conn.dialect.name == "sqlite" and any(s.rows_inserted for s in report.sources):
                    # the planner's statistics from a sample of each index, not a scan of every row
                    conn.exec_driver_sql(_SQLITE_ANALYSIS_LIMIT)
                    conn.exec_driver_sql("ANALYZE")
            finally:
                if cache_size is not None:
                    try:
                        staging.restore_sqlite_cache(conn, cache_size)
                    except Exception:
                        conn.invalidate()  # discarded, not back into the pool with the import's small cache
    except SQLAlchemyError as exc:
        report.sources.clear()
        report.add(_database_problem(exc))
        raise refuse(exc) from None
    except Exception as exc:
        _audit_refused(engine, actor, files, sources, report, exc)
        raise
    if not report.ok:
        raise refuse()
    report.seconds = time.perf_counter() - started
    return report


def _database_problem(exc: SQLAlchemyError) -> Problem:
    """One line on why the database refused the write; never its SQL or parameters (they carry values)."""
    text = str(getattr(exc, "orig", None) or "").lower()
    if "readonly" in text or "read-only" in text or "read only" in text:
        why = Rule("read.database_read_only")
    elif ("disk" in text and "full" in text) or "no space" in text or "database or disk is full" in text:
        why = Rule("read.database_full")
    elif "locked" in text:
        why = Rule("read.database_locked")
    elif "unable to open" in text or "could not connect" in text or "connection" in text:
        why = Rule("read.database_unreachable")
    else:
        why = Rule("read.database_refused", error=type(exc).__name__)
    return Problem("database", None, None, None, None, why)


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
    sources: list[Source],
    report: ImportReport,
    error: BaseException | None = None,
) -> None:
    """One "import_refused" event: files (with sha256 where known), problem count and rules, never values."""
    shas = {s.path.name: s.sha256 for s in sources}
    detail: dict[str, object] = {
        "files": [{"file": shown_file(f.name), "sha256": shas.get(f.name)} for f in files],
        "problem_count": report.problem_count,
        "problems": audited_problems(report.problems),  # where and which rule, read in the log's language
    }
    if error is not None:
        detail["error"] = type(error).__name__  # the message may quote database values: not logged
    unique = set(shas.values())
    try:
        audit.record(engine, actor, "import_refused", detail=detail, sha256=unique.pop() if len(unique) == 1 else None)
    except SQLAlchemyError as exc:  # the refusal stands even when the log cannot be written
        _log.error("could not write the audit event for a refused import (%s)", type(exc).__name__)


#: Stored care cycles read per part (_Batch._stored_cycles).
_CYCLES_READ = 50_000


class _Batch:
    """State shared by the files of one batch (one transaction)."""

    def __init__(
        self, conn: Connection, catalog: Catalog, report: ImportReport, imported_by: str, row_checks_off: bool
    ):
        self.conn, self.catalog, self.report, self.imported_by = conn, catalog, report, imported_by
        self.state = BatchState(
            catalog,
            self._stored_units,
            self._stored_cycles,
            self._stored_vital,
            self._stored_responses,
            self._stored_patients,
        )
        self.batch_ids: set[int] = set()
        self.seen_keys: dict[str, object] = {}  # table -> keys table, when the batch has several files of it
        self.labels: dict[int, Source] = {}
        self.moved_cycles: Table | None = None  # stored care cycles whose index date a file of the batch moves
        self.cost_lines: list[pd.DataFrame] = []  # the batch's valid cost lines, for _check_cycle_costs
        # the references are checked once per file, set-based, instead of by a trigger per row (PostgreSQL) or
        # SQLite's look-up per row (switched off for this batch's connection, staging.skip_sqlite_row_checks)
        self.skip_row_triggers = row_checks_off or staging.may_skip_row_triggers(conn)
        staging.raise_work_mem(conn)

    def _stored_units(self) -> set[tuple[str, str]]:
        rows = self.conn.execute(select(models.Department.hospital, models.Department.code)).all()
        return {(h, d) for h, d in rows}

    def _stored_cycles(self) -> pa.Table:
        """The stored care cycles' cycle_id, condition and index date (timestamp, null where not given) as Arrow
        columns: an id costs its text, not a Python string (a batch keeps them, vbhc.ingest.ids). Read in parts
        on SQLite: a condition and a date are converted once per distinct value (a million cycles hold a few
        conditions and a few thousand dates), so the transient rows of a million cycles (~0.5 GB, kept by the
        allocator) are never all in memory.

        The date is read as the driver gives it (SQLite: ISO text) and turned into a date by the column type's
        own conversion once per distinct value, not per row; each part's values are coded by pd.factorize."""
        c = models.CareCycle
        if self.conn.dialect.name == "postgresql":
            return _cycles_table(
                staging.read_postgres(self.conn, select(c.cycle_id, c.condition, c.index_date), _CYCLE_TYPES)
            )
        ids: list[pa.Array] = []
        condition_codes: list[np.ndarray] = []
        date_codes: list[np.ndarray] = []
        conditions: dict[object, int] = {}
        dates: dict[object, int] = {}
        date_type = models.CareCycle.__table__.c.index_date.type
        as_date = date_type.dialect_impl(self.conn.dialect).result_processor(self.conn.dialect, None)
        # on the statement: Connection.execution_options would set it for every later statement of the batch
        result = self.conn.execute(
            select(c.cycle_id, c.condition, type_coerce(c.index_date, String)).execution_options(yield_per=_CYCLES_READ)
        )
        for part in result.partitions():
            part_ids, part_conditions, part_dates = zip(*part, strict=True)
            ids.append(pa.array(part_ids, type=pa.large_string()))
            condition_codes.append(_coded(part_conditions, conditions))
            date_codes.append(_coded(part_dates, dates))
        codes = np.concatenate(condition_codes) if ids else np.empty(0, np.int64)
        distinct = np.array(list(conditions), dtype=object)
        distinct_dates = [as_date(v) for v in dates] if as_date is not None else list(dates)
        converted = pd.to_datetime(pd.Series(distinct_dates, dtype=object)).to_numpy(dtype="datetime64[ns]")
        return pa.table(
            {
                "cycle_id": pa.concat_arrays(ids) if ids else pa.array([], type=pa.large_string()),
                # a code of the distinct conditions per cycle, not a string each (BatchState reads the codes)
                "condition": pa.DictionaryArray.from_arrays(
                    pa.array(codes, pa.int32()), pa.array(distinct, pa.string())
                ),
                "index_date": pa.array(converted[np.concatenate(date_codes)] if ids else converted, pa.timestamp("ns")),
            }
        )

    def _stored_responses(self) -> pd.Index:
        """The stored PREM response ids, each once."""
        r = models.PremResponse
        return pd.Index(self.conn.execute(select(r.response_id).distinct()).scalars().all(), dtype=object)

    def _stored_patients(self) -> pd.Index:
        """The stored care cycles' patient ids, each once (read once per batch, on its first care cycles file:
        validate.flag_patient_twins compares a file's new ones with them)."""
        c = models.CareCycle
        return pd.Index(self.conn.execute(select(c.patient_id).distinct()).scalars().all(), dtype=object)

    def _stored_vital(self) -> pd.DataFrame:
        """The stored vital status rows (outcomes a survival indicator follows), indexed by (cycle_id, outcome)."""
        indicators = [i for c in self.catalog.conditions.values() for i in c.indicators]
        followed = sorted({i.outcome for i in indicators if i.kind in SURVIVAL_KINDS and i.outcome})
        o = models.ClinicalOutcome
        rows = self.conn.execute(select(o.cycle_id, o.outcome, o.value, o.date).where(o.outcome.in_(followed))).all()
        ids, outcomes, values, dates = zip(*rows, strict=True) if rows else ((), (), (), ())
        return pd.DataFrame(
            {
                "value": np.array(values, dtype=float),
                "date": pd.to_datetime(pd.Series(dates, dtype=object)).to_numpy(dtype="datetime64[ns]"),
            },
            index=pd.MultiIndex.from_arrays(
                [np.array(ids, dtype=object), np.array(outcomes, dtype=object)], names=["cycle_id", "outcome"]
            ),
        )


#: The stored care cycles' columns _Batch._stored_cycles reads on PostgreSQL, as Arrow types.
_CYCLE_TYPES = {"cycle_id": pa.string(), "condition": pa.string(), "index_date": pa.date32()}


def _cycles_table(table: pa.Table) -> pa.Table:
    """_Batch._stored_cycles's columns from the cycles as PostgreSQL's COPY gives them: each date converted once
    per distinct value (by pd.to_datetime, as the rows read one by one are)."""
    dates = table.column("index_date").combine_chunks().dictionary_encode()
    converted = pd.to_datetime(pd.Series(dates.dictionary.to_pylist(), dtype=object)).to_numpy(dtype="datetime64[ns]")
    codes = dates.indices.fill_null(len(converted)).to_numpy(zero_copy_only=False).astype(np.int64)
    every = np.append(converted, np.datetime64("NaT", "ns"))[codes]
    return pa.table(
        {
            "cycle_id": table.column("cycle_id"),
            "condition": table.column("condition"),
            "index_date": pa.array(every, pa.timestamp("ns")),
        }
    )


def _coded(values: tuple, known: dict[object, int]) -> np.ndarray:
    """`values` as codes of `known` (each value new to it added with the next code), through pd.factorize: one
    dictionary look-up per distinct value instead of per row."""
    codes, distinct = pd.factorize(np.array(values, dtype=object), use_na_sentinel=False)
    return np.array([known.setdefault(v, len(known)) for v in distinct], dtype=np.int64)[codes]


def _previous_import(conn: Connection, source: Source, batch: _Batch) -> object | None:
    """The earlier batch that imported this exact content, while no later import has written to the table."""
    b = models.ImportBatch
    query = select(b.id, b.file_name, b.imported_at).where(b.sha256 == source.sha256, b.table_name == source.table)
    query = query.where(b.sheet.is_(None) if source.sheet is None else b.sheet == source.sheet)
    if batch.batch_ids:
        query = query.where(b.id.not_in(batch.batch_ids))
    previous = conn.execute(query.order_by(b.id.desc())).first()
    if previous is None:
        return None
    later = conn.execute(select(func.count()).where(b.table_name == source.table, b.id > previous.id)).scalar_one()
    return None if later else previous


def _run_batch(
    conn: Connection,
    sources: list[Source],
    catalog: Catalog,
    report: ImportReport,
    imported_by: str,
    force: bool,
    progress: Progress | None,
    chunk_rows: int,
    row_checks_off: bool = False,
) -> None:
    batch = _Batch(conn, catalog, report, imported_by, row_checks_off)
    per_table: dict[str, int] = {}
    for s in sources:
        per_table[s.table] = per_table.get(s.table, 0) + 1
    for number, source in enumerate(sources):
        batch.labels[number] = source
        src_report = SourceReport(source.label, source.sheet, source.table, source.sha256)
        report.sources.append(src_report)
        previous = None if force or per_table[source.table] > 1 else _previous_import(conn, source, batch)
        if previous is not None:
            src_report.skipped_reason = (
                f"identical content already imported as {previous.file_name} on "
                f"{previous.imported_at:%Y-%m-%d %H:%M} (batch {previous.id}); use --force to re-check"
            )
            continue
        started = time.perf_counter()
        _import_source(
            conn, number, source, batch, src_report, progress, chunk_rows, several=per_table[source.table] > 1
        )
        src_report.seconds = time.perf_counter() - started
    if batch.cost_lines and report.ok:  # after every file is written: the lines each cycle now holds
        _check_cycle_costs(conn, batch)
    if batch.moved_cycles is not None:
        if report.ok:  # after every file is written: a later file of the batch may re-date the rows in question
            _check_moved_index_dates(conn, batch)
        staging.drop(conn, batch.moved_cycles)
    for seen in batch.seen_keys.values():
        staging.drop(conn, seen)


#: Tables a file may write straight into (the table empty when the file begins): not units (a units
#: file writes hospitals first), nor PROM or PREM responses (their rows are checked against each other across
#: chunks in the staging table; PROM item rows are packed from it into questionnaires, vbhc.ingest.prom_store).
DIRECT_TABLES = frozenset({"care_cycles", "clinical_outcomes", "costs"})


#: Tables whose file, alone of its table in the batch, is packed in memory instead of staged row by row (PROM item
#: rows into questionnaires, vbhc.ingest.prom_store.Packer); the staged path packs them in SQL.
PACKED_TABLES = frozenset({"prom_responses"})


class _NeedsStaging(Exception):
    """The direct write met a row the table's keys refuse: the file is redone through the staging table."""


def _writes_directly(conn: Connection, source: Source, several: bool) -> bool:
    """Whether this file may skip the staging table: for a file alone of its table in the batch, whose table
    holds no row yet (a first import). Nothing is stored to upsert against then, so every valid row is an insert;
    the table's unique key still refuses a duplicate within the file (or a key another session stores meanwhile,
    as the staged path's plain INSERT does)."""
    if conn.dialect.name not in ("sqlite", "postgresql") or several or source.table not in DIRECT_TABLES:
        return False
    target = source.spec.target
    return conn.execute(select(literal(1)).select_from(target).limit(1)).first() is None


def _import_source(
    conn: Connection,
    number: int,
    source: Source,
    batch: _Batch,
    src_report: SourceReport,
    progress: Progress | None,
    chunk_rows: int,
    *,
    several: bool,
) -> None:
    args = (conn, source, batch, src_report, progress, chunk_rows)
    if _writes_directly(conn, source, several) and _without_staging(_import_directly, args):
        return
    if source.table in PACKED_TABLES and not several and _without_staging(_import_packed, args):
        return
    _import_staged(conn, number, source, batch, src_report, progress, chunk_rows, several=several)


def _without_staging(path: Callable[..., None], args: tuple) -> bool:
    """True when `path` (the direct or the packed write) stored the file; False when it met a row only the staged
    path can name: the staged path reads the file again, so its problems replace the ones `path` listed."""
    report, src_report = args[2].report, args[3]
    listed, counted = len(report.problems), report.problem_count
    try:
        path(*args)
        return True
    except _NeedsStaging:
        del report.problems[listed:]
        report.problem_count = counted
        src_report.rows_read = 0
        return False


def _import_packed(
    conn: Connection,
    source: Source,
    batch: _Batch,
    src_report: SourceReport,
    progress: Progress | None,
    chunk_rows: int,
) -> None:
    """A PROM file alone of its table in the batch: each valid chunk packed in memory into questionnaires
    (vbhc.ingest.prom_store.Packer), then upserted answer by answer as the staged path does, with the same rows,
    counts and problems. On a first import (prom_questionnaires empty, as _writes_directly) they go
    straight into the table instead, with the ids and counts the upsert would give. A duplicate item (found by the
    packer: Packer.write, Packer.duplicate_item), a row refused for a cell outside its key (_RefusedRowSeen), a
    questionnaire with two dates, or on the direct write a questionnaire listed apart raises _NeedsStaging (after
    the direct write's rows are taken back): the staged path, which holds the item rows, names them.

    PostgreSQL's first import goes straight into the table too: each chunk's questionnaires a COPY in the worker
    thread (ids from the table's sequence, in the order of their first rows, as the upsert's ORDER BY gives them),
    inside a savepoint that takes them back, as _import_directly does, with the table's primary key and unique key
    built after the last chunk (staging.defer_postgres_keys)."""
    report = batch.report
    direct = _packs_directly(conn)
    postgres = conn.dialect.name == "postgresql"
    savepoint = conn.begin_nested() if direct and postgres else None
    batch_id = _new_batch_row(conn, source, batch, 0) if direct else None
    # rebuilt after the last chunk: a questionnaire listed apart is refused there, as by the COPY with the keys
    keys = staging.defer_postgres_keys(conn, models.PromQuestionnaire) if savepoint is not None else []
    triggers_off = savepoint is not None and batch.skip_row_triggers
    if triggers_off:
        conn.exec_driver_sql(staging._ROW_TRIGGERS_OFF)  # for this file's COPYs; back on after the last one
    packer = prom_store.Packer(conn, batch_id)

    def write(valid: pd.DataFrame, rows: np.ndarray) -> None:
        try:
            packer.write(valid, rows)
        except (IntegrityError, prom_store.NeedsItemRows) as exc:
            raise _NeedsStaging from exc

    def take_back() -> None:
        """The direct write's questionnaires and batch row out again (the staged path redoes the file)."""
        if savepoint is not None:
            _roll_back_file(conn, savepoint, batch, batch_id)
        elif batch_id is not None:
            conn.execute(delete(models.PromQuestionnaire).where(models.PromQuestionnaire.c.batch_id == batch_id))
            _forget_batch_row(conn, batch, batch_id)

    def release() -> None:
        """The savepoint released: the file's rows stay in the batch's transaction (rolled back with it if refused)."""
        if savepoint is not None and savepoint.is_active:
            savepoint.commit()

    try:
        marks = DecimalMarks(source)
        try:
            try:
                header, header_ok, _ = _read_validated(
                    source, batch, src_report, progress, chunk_rows, marks, write, _RefusedRowSeen()
                )
                if header is not None and header_ok:
                    try:
                        packer.finish()  # the questionnaire held back at the last chunk's end
                    except (IntegrityError, prom_store.NeedsItemRows) as exc:
                        raise _NeedsStaging from exc
                if savepoint is not None:
                    staging.wait_for_copy(conn)  # the last chunk's COPY: its refusal is this file's
                    staging.rebuild_keys(conn, keys)
            except IntegrityError as exc:
                if savepoint is None:
                    raise
                raise _NeedsStaging from exc  # a COPY refused, raised by a statement the checks ran meanwhile
            if packer.duplicate_item():
                raise _NeedsStaging
        except _NeedsStaging:
            take_back()
            raise
        if triggers_off:
            conn.exec_driver_sql(staging._ROW_TRIGGERS_ON)
        if header is None or not header_ok:
            take_back()
            return
        if (verdict := marks.verdict()) is not None:
            report.add(verdict)
        if not report.ok:
            release()
            return  # refused: the whole batch is rolled back, a direct write's rows with it
        packer.assign_positions(source, report)
        if not report.ok:
            release()
            return
        if batch_id is not None:
            if batch.skip_row_triggers and not _direct_references_resolved(
                conn, models.PromQuestionnaire, batch, batch_id
            ):
                # validation refuses unknown care cycles, so only a database changed underneath gets here
                take_back()
                raise _NeedsStaging  # the staged path names the rows
            release()
            counts = (packer.answers_written, 0, 0)
        else:
            packed = packer.packed()
            if prom_store.dates_differ(conn, packed):
                raise _NeedsStaging
            batch_id = _new_batch_row(conn, source, batch, src_report.rows_read)
            if batch.skip_row_triggers:
                _check_references(conn, source, packed, report, batch.batch_ids)  # names a questionnaire's first row
                if not report.ok:
                    return
            date_given = prom_store.COMPLETED_DATE in {source.spec.stored(c) for c in header.names}
            counts = prom_store.upsert(conn, packed, batch_id, date_given, skip_row_triggers=batch.skip_row_triggers)
    finally:
        packer.drop()
    src_report.rows_inserted, src_report.rows_updated, src_report.rows_unchanged = counts
    if not (counts[0] or counts[1]):
        _forget_batch_row(conn, batch, batch_id)  # nothing changed: the questionnaires keep their batch
        return
    conn.execute(
        update(models.ImportBatch)
        .where(models.ImportBatch.id == batch_id)
        .values(
            rows_read=src_report.rows_read, rows_inserted=counts[0], rows_updated=counts[1], rows_unchanged=counts[2]
        )
    )


def _packs_directly(conn: Connection) -> bool:
    """Whether a PROM file alone of its table goes straight into prom_questionnaires: while the table holds no
    questionnaire (a first import; nothing to upsert against, as _writes_directly)."""
    if conn.dialect.name not in ("sqlite", "postgresql"):
        return False
    return conn.execute(select(literal(1)).select_from(models.PromQuestionnaire).limit(1)).first() is None


def _read_validated(
    source: Source,
    batch: _Batch,
    src_report: SourceReport,
    progress: Progress | None,
    chunk_rows: int,
    marks: DecimalMarks,
    write: Callable[[pd.DataFrame, np.ndarray], None],
    refused: RefusedKeys | None = None,
) -> tuple[Header | None, bool, list[pd.DataFrame]]:
    """Read and check the file chunk by chunk, handing each chunk's valid rows to `write(frame, row_numbers)`
    and, to `refused`, the keys of every row (a refused row's too, where the refusal is not about its key);
    returns (header, whether the header is usable, a units file's valid rows)."""
    report = batch.report
    all_units: list[pd.DataFrame] = []
    header: Header | None = None
    header_ok = False
    if progress:
        progress(source.label, 0, None, fraction=None if source.sheet is not None else 0.0)
    try:
        for part in read(source, report, chunk_rows):
            if isinstance(part, Header):
                header = part
                header_ok = check_header(source, header, report)
                if not header_ok:
                    break
                continue
            chunk: Chunk = part
            ck = Checker(source, chunk, report, marks)
            ck.cell_sizes()
            frame = VALIDATORS[source.table](ck, batch.state)
            ck.finish()
            good = ~ck.bad
            if refused is not None:
                refused.add(frame, chunk.rows, ck.bad, ck.key_bad, _share_read(source, chunk))
            if source.table == "units":
                all_units.append(frame[good])
                batch.state.batch_units |= set(zip(frame["hospital"][good], frame["code"][good], strict=True))
            elif source.table == "care_cycles":
                # a cycle with a bad value is reported once, on its own row: its outcomes, PROMs and costs
                # are still checked against its condition instead of each being reported as unknown
                named = (frame["cycle_id"] != "") & frame["condition"].isin(batch.catalog.conditions)
                batch.state.add_batch_cycles(
                    frame["cycle_id"][named], frame["condition"][named], frame["index_date"][named]
                )
            src_report.rows_read += len(frame)
            # the usual chunk has no bad row: no copy of it then
            valid, rows = (frame, chunk.rows) if not ck.bad.any() else (frame[good], chunk.rows[good])
            if source.table == "costs":
                number = next(n for n, s in batch.labels.items() if s is source)
                lines = _cost_lines(valid, rows, number)
                if lines is not None:
                    batch.cost_lines.append(lines)
            write(valid, rows)
            if progress:
                progress(source.label, src_report.rows_read, None, fraction=_share_read(source, chunk))
    except MalformedText as exc:
        report.add(source.problem(exc.reason, exc.row))
    except DamagedRow as exc:
        report.add(source.problem(Rule("read.row_damaged", error=exc.error), exc.row))
    except DamagedFile as exc:
        report.add(source.problem(Rule("read.workbook_damaged", error=str(exc))))
    except (SQLAlchemyError, MemoryError, _NeedsStaging):
        raise
    except Exception as exc:  # the parser on untrusted content: a damaged file, not a crash
        if source.sheet is None:
            raise
        report.add(source.problem(Rule("read.workbook_damaged", error=type(exc).__name__)))
    return header, header_ok, all_units


class RefusedKeys:
    """The keys of a file's rows, to name a duplicate key one of whose rows is refused for another cell (a grouped
    number, a code out of range). Such a row is not staged, so the store's duplicate check never saw its key:
    the refusal named its cell and, once that was mended, the duplicate, in a second round. A row refused for
    its key (or as a whole) is left out: its key is not what the row means.

    A valid row's key is kept as a 64-bit hash alone (8 bytes a row: a 30-million-row PROM file holds 240 MB, not
    the 1.2 GB that hashes, row numbers and flags in chunks cost once concatenated and sorted): in one array grown
    in place toward the file's size as estimated from the share of it read, sorted in place for the duplicate
    check. Row numbers are kept per chunk, as the first row of a chunk of consecutive rows (the usual chunk) or
    as an array. A refused row's hash, row number and exact key are kept apart. Only pairs with a refused row
    are reported here: two valid rows with one key are the store's duplicate check's
    (vbhc.ingest.stage.duplicates), as before."""

    def __init__(self, keys: list[str]):
        self.keys = keys
        self._valid = np.empty(0, np.uint64)  # the valid rows' key hashes in file order ([: self._count])
        self._count = 0
        self._runs: list[tuple[int, int | np.ndarray]] = []  # (first position in _valid, row numbers)
        self._refused_hashes: list[np.ndarray] = []
        self._refused_rows: list[np.ndarray] = []
        self._values: dict[int, tuple] = {}  # refused row number -> its key values
        self._shared: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # report()'s rows, before sorting
        self._sorted = False

    def add(
        self,
        frame: pd.DataFrame,
        rows: np.ndarray,
        bad: np.ndarray,
        key_bad: np.ndarray,
        share: float | None = None,
    ) -> None:
        """Keep a chunk's keys; `share` is the part of the file read so far (None when unknown), to size the array
        once for the whole file instead of growing it chunk by chunk."""
        if self._sorted:
            raise RuntimeError("RefusedKeys.add after the duplicate check")
        usable = ~key_bad
        if not bad.any():  # the usual chunk
            usable = slice(None)
        part = frame[self.keys][usable]
        hashes = pd.util.hash_pandas_object(part, index=False).to_numpy()
        rows = np.asarray(rows)[usable]
        flagged = np.asarray(bad[usable], dtype=bool)
        if flagged.any():
            self._refused_hashes.append(hashes[flagged])
            self._refused_rows.append(rows[flagged])
            for row, values in zip(rows[flagged], part[flagged].itertuples(index=False, name=None), strict=True):
                self._values[int(row)] = values
            hashes, rows = hashes[~flagged], rows[~flagged]
        self._keep(hashes, rows, share)

    def _keep(self, hashes: np.ndarray, rows: np.ndarray, share: float | None) -> None:
        n = len(hashes)
        if not n:
            return
        needed = self._count + n
        if needed > len(self._valid):
            grown = int(len(self._valid) * 1.25) + 1024
            if share is not None and 0.0 < share < 1.0:
                grown = int(needed / share * 1.02) + 1024  # the whole file's rows, as its bytes read so far tell
            # in place where the allocator can (a large block is remapped, not copied)
            self._valid.resize(max(needed, grown), refcheck=False)
        self._valid[self._count : needed] = hashes
        first = int(rows[0])
        consecutive = int(rows[-1]) - first == n - 1 and bool((np.diff(rows) == 1).all())
        self._runs.append((self._count, first if consecutive else np.array(rows, dtype=np.int64)))
        self._count = needed

    def _rows_at(self, positions: np.ndarray) -> np.ndarray:
        """The row numbers of the valid rows at `positions` (ascending) of the array in file order."""
        starts = np.array([start for start, _ in self._runs], dtype=np.int64)
        runs = np.searchsorted(starts, positions, side="right") - 1
        out = positions - starts[runs]  # the offset in its chunk, then its row number
        for run in np.unique(runs):
            here = runs == run
            rows = self._runs[run][1]
            out[here] = rows + out[here] if isinstance(rows, int) else rows[out[here]]
        return out

    def _take_shared(self) -> None:
        """The rows whose key hash is a refused row's (report's rows), taken while the array is in file order."""
        if self._shared is not None or not self._values:
            return
        refused_hashes = np.concatenate(self._refused_hashes)
        refused_rows = np.concatenate(self._refused_rows)
        positions = np.flatnonzero(np.isin(self._valid[: self._count], refused_hashes))
        self._shared = (
            np.concatenate([self._valid[positions], refused_hashes]),
            np.concatenate([self._rows_at(positions), refused_rows.astype(np.int64)]),
            np.r_[np.zeros(len(positions), dtype=bool), np.ones(len(refused_hashes), dtype=bool)],
        )

    def valid_duplicate(self) -> bool:
        """Whether two valid rows' key hashes are equal (then the exact check in SQL names them). Sorts the kept
        hashes in place: report() still answers, from the rows it needs taken before; add() no longer does."""
        self._take_shared()
        self._valid.resize(self._count, refcheck=False)  # the estimate's spare room back
        self._valid.sort()
        self._sorted = True
        return bool((self._valid[1:] == self._valid[:-1]).any())

    def report(self, source: Source, report: ImportReport) -> None:
        """A duplicate_key problem at each later row of a key whose rows include a refused one."""
        if not self._values:
            return
        self._take_shared()
        hashes, rows, refused = self._shared or (np.empty(0, np.uint64), np.empty(0, np.int64), np.empty(0, bool))
        order = np.lexsort((rows, hashes))
        hashes, rows, refused = hashes[order], rows[order], refused[order]
        starts = np.flatnonzero(np.r_[True, hashes[1:] != hashes[:-1]])
        for start, end in zip(starts, [*starts[1:], len(hashes)], strict=True):
            first = int(rows[start])
            valid_seen = not refused[start]
            for i in range(start + 1, end):
                if not refused[i]:
                    if valid_seen:
                        continue  # a second valid row: the store's duplicate check names it
                    valid_seen = True
                values = self._values.get(int(rows[i])) or self._values[first]
                report.add(
                    source.problem(
                        Rule("read.duplicate_key", row=first),
                        int(rows[i]),
                        "+".join(source.spec.key),
                        "/".join(str(v) for v in values),
                    )
                )


class _RefusedRowSeen(RefusedKeys):
    """RefusedKeys for the packed path (a PROM file alone of its table), which keeps no key: the packer finds a
    duplicate item itself (vbhc.ingest.prom_store.Packer), and a row refused for a cell outside its key sends the
    file through the staged path (_NeedsStaging), whose RefusedKeys names a duplicate of such a row as before.

    Why: RefusedKeys keeps 8 bytes for every valid row of the file until its end (240 MB for the 30 million item
    rows of a 1,000,000-cycle registry's PROM file, 2.4 GB at 10,000,000), only for the file that has a refused
    row, which the batch refuses anyway; a refused file is read twice instead."""

    def __init__(self) -> None:
        super().__init__([])

    def add(
        self,
        frame: pd.DataFrame,
        rows: np.ndarray,
        bad: np.ndarray,
        key_bad: np.ndarray,
        share: float | None = None,
    ) -> None:
        if (np.asarray(bad, dtype=bool) & ~np.asarray(key_bad, dtype=bool)).any():
            raise _NeedsStaging


def _new_batch_row(conn: Connection, source: Source, batch: _Batch, rows_read: int) -> int:
    """The import_batches row this file's rows will point at."""
    batch_id = conn.execute(
        insert(models.ImportBatch)
        .values(
            file_name=source.label,
            table_name=source.table,
            sheet=source.sheet,
            sha256=source.sha256,
            rows_read=rows_read,
            imported_by=batch.imported_by,
            imported_at=dt.datetime.now(dt.UTC),
        )
        .returning(models.ImportBatch.id)
    ).scalar_one()
    batch.batch_ids.add(batch_id)
    return batch_id


def _forget_batch_row(conn: Connection, batch: _Batch, batch_id: int) -> None:
    conn.execute(delete(models.ImportBatch).where(models.ImportBatch.id == batch_id))
    batch.batch_ids.discard(batch_id)


def _import_directly(
    conn: Connection,
    source: Source,
    batch: _Batch,
    src_report: SourceReport,
    progress: Progress | None,
    chunk_rows: int,
) -> None:
    """A first import of a table (see _writes_directly): each valid chunk goes straight into the table, under
    a batch row written first. The same rows, values, order and counts as the staged path; a problem in the
    file refuses the batch as there (the transaction is rolled back); a row the table's keys refuse raises
    _NeedsStaging after this file's rows and batch row are taken back.

    PostgreSQL: each chunk is a COPY into the table in the worker thread, while the next chunk is checked
    (staging.insert_directly), instead of a COPY into the staging table and, after the file, an INSERT ... SELECT
    the import waited for (at 100,000 care cycles most of the server's time). The file runs inside a savepoint: a
    refused COPY (a duplicate key) aborts the statement, and rolling back to the savepoint takes back its rows,
    its batch row and the dropped indexes before the staged path redoes the file. The table's primary key and unique
    keys are dropped for the file too and built again after its last chunk (staging.defer_postgres_keys: a sort per
    key instead of two btrees kept up to date row by row, about half the cost lines' COPY); a duplicate key of the
    file is refused there, with the same _NeedsStaging as a refused COPY. With the per-row foreign-key
    triggers off (batch.skip_row_triggers) the references are checked once after the file, and the referenced rows
    locked, as the staged path does (_direct_references_resolved)."""
    spec = source.spec
    postgres = conn.dialect.name == "postgresql"
    savepoint = conn.begin_nested() if postgres else None
    batch_id = _new_batch_row(conn, source, batch, 0)  # the transaction is open from here: the indexes' DDL in it
    keys = []
    if postgres:
        deferred = staging.defer_postgres_indexes(conn, spec.target)
        keys = staging.defer_postgres_keys(conn, spec.target)  # rebuilt after the last chunk, refusing a duplicate
    else:
        deferred = staging.defer_sqlite_indexes(conn, spec.target)
    triggers_off = postgres and batch.skip_row_triggers
    if triggers_off:
        conn.exec_driver_sql(staging._ROW_TRIGGERS_OFF)  # for this file's COPYs; back on after the last one
    inserted = 0

    def write(valid: pd.DataFrame, rows: np.ndarray) -> None:
        nonlocal inserted
        try:
            inserted += staging.insert_directly(conn, spec, valid, batch_id)
        except IntegrityError as exc:
            raise _NeedsStaging from exc

    def take_back() -> None:
        """This file's rows and its batch row out again (the staged path redoes the file, or nothing is kept)."""
        if savepoint is not None:
            _roll_back_file(conn, savepoint, batch, batch_id)
            return
        staging.delete_batch_rows(conn, spec, batch_id)
        _forget_batch_row(conn, batch, batch_id)

    marks = DecimalMarks(source)
    refused = RefusedKeys(list(spec.target_key))
    try:
        try:
            header, header_ok, _ = _read_validated(
                source, batch, src_report, progress, chunk_rows, marks, write, refused
            )
            staging.wait_for_copy(conn)  # the last chunk's COPY: its refusal is this file's
            staging.rebuild_keys(conn, keys)  # a duplicate key of the file refused here
        except IntegrityError as exc:
            if not postgres:
                raise
            # a COPY or a key refused: raised by the next chunk's write, by a statement the checks ran meanwhile,
            # or by the keys built again over the file's rows
            raise _NeedsStaging from exc
    except _NeedsStaging:
        take_back()
        if savepoint is None:
            staging.rebuild_indexes(conn, deferred)  # before the staged path writes the file again
        raise
    # any other error rolls the batch back, the dropped indexes with it
    if triggers_off:
        conn.exec_driver_sql(staging._ROW_TRIGGERS_ON)
    staging.rebuild_indexes(conn, deferred)
    if header is None or not header_ok:
        take_back()
        return
    refused.report(source, batch.report)
    if (verdict := marks.verdict()) is not None:
        batch.report.add(verdict)
    if not batch.report.ok:
        if savepoint is not None:
            savepoint.commit()  # released: the next files are still checked, in the batch's transaction
        return  # refused: the whole batch is rolled back, these rows with it
    if batch.skip_row_triggers and not _direct_references_resolved(conn, spec.target, batch, batch_id):
        # validation refuses unknown units and care cycles, so only a database changed underneath gets here
        take_back()
        raise _NeedsStaging  # the staged path names the rows
    if savepoint is not None:
        savepoint.commit()  # released: the file's rows stay in the batch's transaction
    if inserted == 0:
        _forget_batch_row(conn, batch, batch_id)  # as the staged path: no batch row for a file that wrote nothing
        return
    src_report.rows_inserted, src_report.rows_updated, src_report.rows_unchanged = inserted, 0, 0
    conn.execute(
        update(models.ImportBatch)
        .where(models.ImportBatch.id == batch_id)
        .values(rows_read=src_report.rows_read, rows_inserted=inserted, rows_updated=0, rows_unchanged=0)
    )


def _roll_back_file(conn: Connection, savepoint, batch: _Batch, batch_id: int | None) -> None:
    """PostgreSQL's direct write of a file taken back: the chunk still being copied waited for (a refused one
    aborted the savepoint already), then the rollback to the savepoint taken before the file, which takes back
    its rows, its batch row, the indexes it dropped and the triggers' setting."""
    with contextlib.suppress(IntegrityError):
        staging.wait_for_copy(conn)
    savepoint.rollback()
    batch.batch_ids.discard(batch_id)


def _direct_references_resolved(conn: Connection, target: Table, batch: _Batch, batch_id: int) -> bool:
    """Whether every row the direct path wrote refers to a stored row, by the table's foreign keys (their per-row
    triggers were off). SQLite: one look-up per distinct value (no other session writes meanwhile). PostgreSQL: the
    staged path's set-based check over the file's rows (staging.unresolved_references), which also locks each
    referenced row another batch stored against deletion until the commit, as the triggers would have."""
    if conn.dialect.name != "postgresql":
        return not staging.any_unresolved_reference(conn, target)
    staging.analyze_references(conn, target)  # the file's rows are the table's: a hash of the referenced rows
    written = select(literal(0).label("row_no"), *target.c).where(target.c.batch_id == batch_id).subquery("written")
    return not staging.unresolved_references(conn, written, target, 1, batch.batch_ids)


def _import_staged(
    conn: Connection,
    number: int,
    source: Source,
    batch: _Batch,
    src_report: SourceReport,
    progress: Progress | None,
    chunk_rows: int,
    *,
    several: bool,
) -> None:
    report = batch.report
    spec = source.spec
    stage = staging.stage_table(spec)
    staging.create(conn, stage)
    marks = DecimalMarks(source)
    keys = list(spec.target_key)

    def write(valid: pd.DataFrame, rows: np.ndarray) -> None:
        staging.load(conn, stage, spec, valid, rows)

    refused = RefusedKeys(keys)
    header, header_ok, all_units = _read_validated(
        source, batch, src_report, progress, chunk_rows, marks, write, refused
    )
    if header is None or not header_ok:
        staging.drop(conn, stage)
        return
    refused.report(source, report)
    if (verdict := marks.verdict()) is not None:
        report.add(verdict)
    # every key is hashed as it is read (RefusedKeys); the exact (and slower) check in SQL runs only when two
    # valid rows' hashes collide
    if refused.valid_duplicate():
        _duplicate_problems(conn, source, stage, report)
    if several:
        _duplicates_across(conn, number, source, stage, batch)
    if source.table == "care_cycles":
        _check_condition_changes(conn, source, stage, batch)
        _remember_moved_index_dates(conn, number, stage, batch)
    if source.table == "prem_responses":
        _check_prem_responses(conn, source, stage, batch)
    packed = None
    if source.table == "prom_responses" and report.ok:
        prom_store.assign_positions(conn, source, stage, report)
        if report.ok:
            packed = prom_store.pack(conn, stage)
            prom_store.check_dates(conn, source, stage, packed, report)
    if not report.ok:
        staging.drop(conn, stage)
        if packed is not None:
            staging.drop(conn, packed)
        return  # keep validating the other files, but write nothing more
    batch_id = _new_batch_row(conn, source, batch, src_report.rows_read)
    hospitals_changed = 0
    if source.table == "units":
        units = pd.concat(all_units) if all_units else pd.DataFrame()
        flag_given = "own_hospital" in header.names
        hospitals_changed = src_report.hospitals_changed = _upsert_hospitals(conn, units, batch_id, flag_given)
    if batch.skip_row_triggers:  # after the hospitals a units file brings: its departments refer to them
        _check_references(conn, source, stage, report, batch.batch_ids)
        if not report.ok:
            staging.drop(conn, stage)
            if packed is not None:
                staging.drop(conn, packed)
            return  # the batch is refused: the transaction is rolled back, the batch row with it
    given = frozenset(spec.stored(c) for c in header.names)
    if packed is not None:
        date_given = prom_store.COMPLETED_DATE in given
        inserted, updated, unchanged = prom_store.upsert(
            conn, packed, batch_id, date_given, skip_row_triggers=batch.skip_row_triggers
        )
        staging.drop(conn, packed)
    else:
        deferred = staging.defer_postgres_indexes(conn, spec.target)  # a first load of the table: built after it
        inserted, updated, unchanged = staging.upsert(
            conn, spec, stage, batch_id, given, skip_row_triggers=batch.skip_row_triggers
        )
        staging.rebuild_indexes(conn, deferred)  # an error before this rolls the batch back, the indexes with it
    src_report.rows_inserted, src_report.rows_updated, src_report.rows_unchanged = inserted, updated, unchanged
    staging.drop(conn, stage)
    if not (inserted or updated or hospitals_changed):
        # nothing changed: the rows keep pointing at the batch that wrote them, so record no new batch
        _forget_batch_row(conn, batch, batch_id)
        return
    conn.execute(
        update(models.ImportBatch)
        .where(models.ImportBatch.id == batch_id)
        .values(rows_inserted=inserted, rows_updated=updated, rows_unchanged=unchanged)
    )


def _duplicate_problems(conn: Connection, source: Source, stage, report: ImportReport) -> None:
    spec = source.spec
    count, rows = staging.duplicates(conn, stage, spec.target_key, report.room)
    for row in rows:
        report.add(
            source.problem(
                Rule("read.duplicate_key", row=int(row[-1])),
                int(row[0]),
                "+".join(spec.key),
                "/".join(str(v) for v in row[1:-1]),
            )
        )
    report.problem_count += count - len(rows)


def _duplicates_across(conn: Connection, number: int, source: Source, stage, batch: _Batch) -> None:
    spec = source.spec
    seen = batch.seen_keys.get(source.table)
    if seen is None:
        seen = staging.keys_table(spec)
        staging.create(conn, seen)
        batch.seen_keys[source.table] = seen
    report = batch.report
    count, rows = staging.duplicates_across(conn, stage, seen, spec.target_key, report.room)
    key_columns = "+".join(spec.key)
    for row in rows:
        other = batch.labels[int(row[1])]
        if other.sheet:
            rule = Rule(
                "read.duplicate_key_across_sheet",
                file=other.label,
                sheet=other.sheet,
                row=int(row[2]),
                key_columns=key_columns,
            )
        else:
            rule = Rule("read.duplicate_key_across", file=other.label, row=int(row[2]), key_columns=key_columns)
        report.add(
            source.problem(
                rule,
                int(row[0]),
                key_columns,
                "/".join(str(v) for v in row[3:]),
            )
        )
    report.problem_count += count - len(rows)
    staging.remember_keys(conn, stage, seen, spec.target_key, number)


def _check_references(
    conn: Connection, source: Source, stage, report: ImportReport, own_batches: set[int] | None = None
) -> None:
    """The foreign keys' check, once for the whole file: a row whose unit or care cycle is not stored.

    Validation already refuses such rows (unknown unit, unknown care cycle), so this finds nothing unless the
    database changed underneath; it stands in for the per-row triggers the upsert then skips."""
    found = staging.unresolved_references(conn, stage, source.spec.target, report.room, own_batches or ())
    for columns, parent, count, rows in found:
        for row in rows:
            report.add(
                source.problem(
                    Rule("read.unresolved_reference", table=parent),
                    int(row[0]),
                    "+".join(columns),
                    "/".join(str(v) for v in row[1:]),
                )
            )
        report.problem_count += count - len(rows)


#: What hangs on a care cycle, and the catalog's answer to "does this row belong to that condition?"
def _children_of(conn: Connection, cycle_ids: list[str]) -> list[tuple[str, str, str, str]]:
    """(cycle_id, what, id, timepoint) of every stored row that hangs on these care cycles."""
    found: list[tuple[str, str, str, str]] = []
    for start in range(0, len(cycle_ids), 500):
        part = cycle_ids[start : start + 500]
        o, p, c = models.ClinicalOutcome, models.PromQuestionnaire.c, models.CostLine
        found += [
            (r[0], "outcome", r[1], "") for r in conn.execute(select(o.cycle_id, o.outcome).where(o.cycle_id.in_(part)))
        ]
        found += [
            (r[0], "prom", r[1], r[2])
            for r in conn.execute(select(p.cycle_id, p.instrument, p.timepoint).where(p.cycle_id.in_(part)).distinct())
        ]
        found += [
            (r[0], "cost", r[1], "") for r in conn.execute(select(c.cycle_id, c.activity).where(c.cycle_id.in_(part)))
        ]
    return found


def _check_condition_changes(conn: Connection, source: Source, stage, batch: _Batch) -> None:
    """A stored care cycle may change condition only when everything stored for it fits the new condition."""
    changes = staging.changed_keys(conn, stage, TABLES["care_cycles"].target, ("cycle_id",), "condition")
    if not changes:
        return
    new_condition = {cycle: (row, old, new) for row, cycle, old, new in changes}
    catalog = batch.catalog
    misfits: dict[str, list[tuple[str, dict[str, str]]]] = {}  # cycle -> (kind, values) per stored row
    for cycle, what, ident, timepoint in _children_of(conn, list(new_condition)):
        cond = catalog.conditions.get(new_condition[cycle][2])
        if cond is None:
            continue
        if what == "outcome" and ident not in {o.id for o in cond.outcomes}:
            misfits.setdefault(cycle, []).append(("o", {"outcome": repr(ident)}))
        elif what == "prom":
            uses = {u.instrument: u for u in cond.proms}
            if ident not in uses or timepoint not in uses[ident].timepoints:
                misfits.setdefault(cycle, []).append(("p", {"prom": repr(ident), "timepoint": repr(timepoint)}))
        elif what == "cost" and ident not in cond.cost_activities:
            misfits.setdefault(cycle, []).append(("c", {"activity": repr(ident)}))
    for cycle, items in sorted(misfits.items(), key=lambda kv: new_condition[kv[0]][0]):
        row, old, new = new_condition[cycle]
        batch.report.add(source.problem(_condition_change_rule(old, new, items), int(row), "condition", new))


def _condition_change_rule(old: str, new: str, items: list[tuple[str, dict[str, str]]]) -> Rule:
    """The rule for a care cycle whose stored rows do not fit its new condition: the first three of them named
    (outcomes, then PROMs, then costs), the rest counted. One message per combination of the rows named
    (problem.read.condition_change_<kinds>[_more]), so each language lists them in its own words."""
    items = sorted(items, key=lambda item: "opc".index(item[0]))  # _children_of's order already: unchanged
    shown = items[:3]
    code = "read.condition_change_" + "".join(kind for kind, _ in shown) + ("_more" if len(items) > 3 else "")
    values: dict[str, object] = {"old": old, "new": new}
    for position, (_, named) in enumerate(shown, start=1):
        values |= {f"{name}{position}": value for name, value in named.items()}
    if len(items) > 3:
        values["others"] = len(items) - 3
    return Rule(code, **values)


#: The stored care cycles whose index date a care-cycle file of the batch moves: (file, row, cycle, its new
#: condition, the stored and the new index date).
_MOVED_CYCLES = Table(
    staging.STAGE_PREFIX + "moved_cycles",
    MetaData(),
    Column("source_no", Integer),
    Column("row_no", Integer),
    Column("cycle_id", String(64)),
    Column("condition", String(64)),
    Column("old_date", Date),
    Column("new_date", Date),
    prefixes=["TEMPORARY"],
)


def _remember_moved_index_dates(conn: Connection, number: int, stage: Table, batch: _Batch) -> None:
    """Note the staged care cycles that move a stored cycle's index date, for _check_moved_index_dates."""
    target = TABLES["care_cycles"].target
    if batch.moved_cycles is None:
        staging.create(conn, _MOVED_CYCLES)
        batch.moved_cycles = _MOVED_CYCLES
    moved = (
        select(literal(number), stage.c.row_no, stage.c.cycle_id, stage.c.condition)
        .add_columns(target.c.index_date, stage.c.index_date)
        .join(target, target.c.cycle_id == stage.c.cycle_id)
        .where(target.c.index_date.is_distinct_from(stage.c.index_date))
    )
    columns = ["source_no", "row_no", "cycle_id", "condition", "old_date", "new_date"]
    conn.execute(_MOVED_CYCLES.insert().from_select(columns, moved))


def _check_moved_index_dates(conn: Connection, batch: _Batch) -> None:
    """A stored care cycle's index date may move only to a date on or before the stored rows dated after it:
    its clinical outcomes, and its follow-up PROMs (timepoints the catalog places days > 0 after the index date);
    and no later than its baseline PROMs' window after them (a baseline may precede the index date by at most
    its timepoint's before_days, as validate_prom_responses allows). Checked set-based once the batch's files
    are written (a PROM file of the batch may re-date the same rows), one problem per care-cycle row naming
    its earliest stored row out of place."""
    moved = batch.moved_cycles
    o, p = models.ClinicalOutcome.__table__, models.PromQuestionnaire
    follow_ups = [(c.id, t.id) for c in batch.catalog.conditions.values() for t in c.timepoints if t.days > 0]
    where = (moved.c.source_no, moved.c.row_no, moved.c.old_date, moved.c.new_date)
    early_outcomes = (
        select(*where, o.c.outcome, literal(""), func.min(o.c.date))
        .join(o, o.c.cycle_id == moved.c.cycle_id)
        .where(o.c.date < moved.c.new_date)
        .group_by(*where, o.c.outcome)
    )
    early_proms = (
        select(*where, p.c.instrument, p.c.timepoint, func.min(p.c.completed_date))
        .join(p, p.c.cycle_id == moved.c.cycle_id)
        .where(p.c.completed_date < moved.c.new_date, tuple_(moved.c.condition, p.c.timepoint).in_(follow_ups))
        .group_by(*where, p.c.instrument, p.c.timepoint)
    )
    earliest: dict[tuple[int, int], tuple] = {}
    for query in (early_outcomes, early_proms) if follow_ups else (early_outcomes,):
        for source_no, row, old, new, ident, timepoint, date in conn.execute(query):
            key = (int(source_no), int(row))
            if key not in earliest or date < earliest[key][4]:
                earliest[key] = (old, new, ident, timepoint, date, None)
    # baselines: each moved cycle's earliest stored baseline per instrument, against its timepoint's window (the
    # window is per condition and timepoint, so compared here rather than as date arithmetic in SQL)
    windows = {
        (c.id, t.id): t.before_days for c in batch.catalog.conditions.values() for t in c.timepoints if t.days == 0
    }
    if windows:
        baselines = (
            select(*where, moved.c.condition, p.c.instrument, p.c.timepoint, func.min(p.c.completed_date))
            .join(p, p.c.cycle_id == moved.c.cycle_id)
            .where(p.c.completed_date.is_not(None), tuple_(moved.c.condition, p.c.timepoint).in_(list(windows)))
            .group_by(*where, moved.c.condition, p.c.instrument, p.c.timepoint)
        )
        for source_no, row, old, new, condition, ident, timepoint, date in conn.execute(baselines):
            days = windows[(condition, timepoint)]
            if new is None or date >= new - dt.timedelta(days=days):
                continue
            key = (int(source_no), int(row))
            # an outcome or follow-up after the new date is named first, else the earliest baseline
            first = earliest.get(key)
            if first is None or (first[5] is not None and date < first[4]):
                earliest[key] = (old, new, ident, timepoint, date, days)
    for (source_no, row), (old, new, ident, timepoint, date, days) in sorted(earliest.items(), key=lambda kv: kv[0]):
        values = {"old": _shown(old), "new": _shown(new), "date": _shown(date)}
        if days is not None:
            rule = Rule(
                "read.index_date_after_baseline", prom=repr(ident), timepoint=repr(timepoint), count=days, **values
            )
        elif timepoint:
            rule = Rule("read.index_date_after_prom", prom=repr(ident), timepoint=repr(timepoint), **values)
        else:
            rule = Rule("read.index_date_after_outcome", outcome=repr(ident), **values)
        batch.report.add(batch.labels[source_no].problem(rule, row, "index_date", _shown(new)))


#: A cost line whose cost passes this is kept for _check_cycle_costs; the others are not held in memory (a
#: million care cycles' ~5 million lines took ~0.8 GB). A care cycle holds one line per activity (its key), a few
#: dozen at most, so its lines pass MAX_CYCLE_COST only with a line far above this; no real line comes near it.
_WATCHED_LINE_COST = 1e144
#: A line above _WATCHED_LINE_COST has a quantity or a unit cost above its square root (the stored lines of the
#: cycles in question are found by it, without a product that could overflow in the database).
_WATCHED_FACTOR = 1e72


def _cost_lines(valid: pd.DataFrame, rows: np.ndarray, number: int) -> pd.DataFrame | None:
    """A chunk's cost lines that _check_cycle_costs watches (above _WATCHED_LINE_COST; None when there are
    none, as in every real file): cycle, activity, cost, file (its number in the batch) and row."""
    with np.errstate(over="ignore", invalid="ignore"):  # an infinite line cost is refused by validate_costs
        cost = valid["quantity"].to_numpy(dtype=float) * valid["unit_cost"].to_numpy(dtype=float)
    watched = ~(cost <= _WATCHED_LINE_COST)
    if not watched.any():
        return None
    return pd.DataFrame(
        {
            "cycle_id": valid["cycle_id"].to_numpy(dtype=object)[watched],
            "activity": valid["activity"].to_numpy(dtype=object)[watched],
            "cost": cost[watched],
            "source_no": number,
            "row": np.asarray(rows, dtype=np.int64)[watched],
        }
    )


def _check_cycle_costs(conn: Connection, batch: _Batch) -> None:
    """A care cycle's cost lines, the batch's and the stored ones it keeps, may add up to at most MAX_CYCLE_COST:
    each line's cost is checked finite (validate_costs), but several add up (three lines of 1e308 are infinite),
    and the cost indicators sum and square care cycles' costs. One problem per such cycle, on its line where the
    running total (stored lines first, then the batch's in file order) passes the limit. Summed here in floats, as
    vbhc.costs does: the database's own sum of a product would overflow (PostgreSQL refuses it). Only the cycles
    of the batch's watched lines (_cost_lines) are summed, and the batch's other lines left out of their sums:
    each is below _WATCHED_LINE_COST, a millionth of the limit, and a cycle has a few dozen at most."""
    from vbhc.costs import MAX_CYCLE_COST

    new = pd.concat(batch.cost_lines, ignore_index=True).drop_duplicates(["cycle_id", "activity"], keep="last")
    k = models.CostLine.__table__
    ids = list(batch.batch_ids)
    stored = pd.DataFrame({"cycle_id": [], "activity": [], "cost": []})
    if ids:  # the stored lines of the cycles this batch wrote lines of, but not the lines the batch holds itself
        big = or_(k.c.quantity > _WATCHED_FACTOR, k.c.unit_cost > _WATCHED_FACTOR)  # every watched line
        written = select(k.c.cycle_id).where(k.c.batch_id.in_(ids), big)
        query = select(k.c.cycle_id, k.c.activity, k.c.quantity, k.c.unit_cost).where(
            k.c.cycle_id.in_(written), k.c.batch_id.not_in(ids)
        )
        found = pd.DataFrame(conn.execute(query).all(), columns=["cycle_id", "activity", "quantity", "unit_cost"])
        if not found.empty:
            keys = pd.MultiIndex.from_frame(found[["cycle_id", "activity"]])
            found = found[~keys.isin(pd.MultiIndex.from_frame(new[["cycle_id", "activity"]]))]
            with np.errstate(over="ignore", invalid="ignore"):
                cost = found["quantity"].to_numpy(dtype=float) * found["unit_cost"].to_numpy(dtype=float)
            stored = pd.DataFrame(
                {"cycle_id": found["cycle_id"].to_numpy(), "activity": found["activity"], "cost": cost}
            )
    lines = pd.concat([stored.assign(source_no=-1, row=-1), new], ignore_index=True)
    with np.errstate(over="ignore", invalid="ignore"):
        totals = lines.groupby("cycle_id", sort=False)["cost"].sum()
        over = totals[~(totals.to_numpy(dtype=float) <= MAX_CYCLE_COST)]
        if over.empty:
            return
        lines = lines[lines["cycle_id"].isin(over.index)]
        running = lines.groupby("cycle_id", sort=False)["cost"].cumsum().to_numpy(dtype=float)
    in_batch = (lines["source_no"] >= 0).to_numpy()
    # the batch's line where the running total passes the limit; a cycle whose stored lines alone pass it (stored
    # before this check existed): its first line in the batch
    past = lines[in_batch & ~(running <= MAX_CYCLE_COST)].groupby("cycle_id", sort=False).head(1)
    first = lines[in_batch].groupby("cycle_id", sort=False).head(1)
    at = pd.concat([past, first]).drop_duplicates("cycle_id").sort_values(["source_no", "row"])
    for cycle, number, row in zip(at["cycle_id"], at["source_no"], at["row"], strict=True):
        total = float(over[cycle])
        if np.isfinite(total):
            rule = Rule("read.cycle_cost_too_large", total=f"{total:.6g}", limit=f"{MAX_CYCLE_COST:g}")
        else:
            rule = Rule("read.cycle_cost_infinite", limit=f"{MAX_CYCLE_COST:g}")
        batch.report.add(batch.labels[int(number)].problem(rule, int(row), "cycle_id", str(cycle)))


def _check_prem_responses(conn: Connection, source: Source, stage, batch: _Batch) -> None:
    """One returned questionnaire describes one visit of one respondent: the rows of a response must agree on
    questionnaire, unit, visit and case-mix across the chunks of a file and with its stored rows that the file
    does not replace (a chunk checks its own rows in vbhc.ingest.validate).

    Why first one pass over the file: pairing every row of a response with every other, once per column, is
    quadratic in a response's items and was most of a PREM import; one grouped pass finds the responses that
    disagree at all (none, in a good file), and the pairing that names the rows runs on those alone."""
    target = TABLES["prem_responses"].target
    other = stage.alias("other")
    disagreeing = _responses_disagreeing(conn, stage)
    replaced = select(other.c.row_no).where(other.c.response_id == target.c.response_id, other.c.item == target.c.item)
    for column in PREM_RESPONSE_COLUMNS:
        # None: a query that can find nothing, not run (the report is still checked after it, as ever)
        within = None
        if column in disagreeing:
            # one line per file row: the first other value it contradicts
            within = (
                select(stage.c.row_no, stage.c[column], func.min(other.c[column]))
                .join(other, other.c.response_id == stage.c.response_id)
                .where(
                    stage.c[column].is_distinct_from(other.c[column]),
                    stage.c.response_id.in_(disagreeing[column]),
                )
                .group_by(stage.c.row_no, stage.c[column])
            )
        stored = (
            select(stage.c.row_no, stage.c[column], func.min(target.c[column]))
            .join(target, target.c.response_id == stage.c.response_id)
            .where(stage.c[column].is_distinct_from(target.c[column]), ~replaced.exists())
            .group_by(stage.c.row_no, stage.c[column])
        )
        # the other value is shown in the rule; an empty one is said in words ("(empty)", "(leeg)")
        for query, code in ((within, "read.response_differs_in_file"), (stored, "read.response_differs_stored")):
            found = [] if query is None else conn.execute(query.order_by(stage.c.row_no).limit(batch.report.room)).all()
            for row, value, seen in found:
                rule = Rule(f"{code}_empty") if seen is None else Rule(code, seen=_shown(seen))
                batch.report.add(
                    source.problem(
                        rule,
                        int(row),
                        column,
                        _shown(value),
                    )
                )
            if not batch.report.ok:
                return


def _responses_disagreeing(conn: Connection, stage) -> dict[str, object]:
    """For each PREM response column some response of the staged file disagrees on: a query of those responses.

    One grouped pass over the staging table: a response disagrees on a column when its rows hold two values, or
    a value and an empty cell (the IS DISTINCT FROM of the row-by-row check)."""

    def differs(column: str):
        c = stage.c[column]
        filled = func.count(c)
        return or_(func.min(c) != func.max(c), and_(filled > 0, filled < func.count()))

    flags = (
        select(*[case((differs(c), 1), else_=0).label(c) for c in PREM_RESPONSE_COLUMNS])
        .group_by(stage.c.response_id)
        .subquery()
    )
    found = conn.execute(select(*[func.max(flags.c[c]) for c in PREM_RESPONSE_COLUMNS])).one()
    return {
        c: select(stage.c.response_id).group_by(stage.c.response_id).having(differs(c)).correlate(None)
        for c, flag in zip(PREM_RESPONSE_COLUMNS, found, strict=True)
        if flag
    }


def _shown(value: object) -> str:
    if value is None:
        return "empty"
    return value.isoformat() if isinstance(value, dt.date) else str(value)


def _upsert_hospitals(conn: Connection, units: pd.DataFrame, batch_id: int, flag_given: bool = True) -> int:
    """Hospitals come from the units table: one row per hospital, a handful per import; returns how many changed.

    A units file without an own_hospital column leaves the stored flags alone.
    """
    if units.empty:
        return 0
    hospitals = units.drop_duplicates("hospital", keep="last")
    changed = 0
    for row in hospitals.itertuples(index=False):
        h = models.Hospital
        exists = conn.execute(select(h.name, h.own_hospital).where(h.code == row.hospital)).first()
        if exists is None:
            conn.execute(
                insert(h).values(
                    code=row.hospital, name=row.hospital_name, own_hospital=bool(row.own_hospital), batch_id=batch_id
                )
            )
            changed += 1
        else:
            own = bool(row.own_hospital) if flag_given else bool(exists.own_hospital)
            if (exists.name, bool(exists.own_hospital)) != (row.hospital_name, own):
                conn.execute(
                    update(h)
                    .where(h.code == row.hospital)
                    .values(name=row.hospital_name, own_hospital=own, batch_id=batch_id)
                )
                changed += 1
    return changed


def _share_read(source: Source, chunk: Chunk) -> float | None:
    """The share of a CSV's bytes read so far (a workbook sheet's size is not known in rows or bytes)."""
    if source.sheet is not None or source.size <= 0:
        return None
    return min(chunk.bytes_done / source.size, 1.0)


def explain_problems(report: ImportReport, lang: str = "en") -> pd.DataFrame:
    """The problems as a table for the upload page, their rules and hidden values in `lang`."""
    return pd.DataFrame(
        [
            {
                "file": p.file,
                "sheet": p.sheet,
                "row": p.row,
                "column": shown_in(p.column, lang),
                "value": shown_in(p.value, lang),
                "rule": rule_text(p.rule, lang),
            }
            for p in report.problems
        ],
        columns=["file", "sheet", "row", "column", "value", "rule"],
    )
