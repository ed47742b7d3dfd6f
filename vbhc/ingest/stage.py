"""Staging and writing: rows go into a temporary table per file, the database finds duplicate keys, and one
set-based upsert writes them (insert new keys, update changed rows, leave identical rows alone).

Statements are SQLAlchemy constructs: the staging tables copy the stored columns' types from vbhc.models, and
the upsert is the dialect's own INSERT ... ON CONFLICT. Bulk loading uses the driver's fast path (SQLite
executemany of a compiled INSERT, PostgreSQL COPY with composed identifiers), never values in SQL text; on
PostgreSQL a chunk's COPY runs in a worker thread while the next chunk is read (_CopyBehind).
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from itertools import repeat
from typing import ClassVar
from weakref import WeakKeyDictionary

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
from sqlalchemy import (
    Column,
    Connection,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    UniqueConstraint,
    and_,
    column,
    delete,
    event,
    func,
    inspect,
    literal,
    or_,
    select,
    table,
    true,
    tuple_,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError
from sqlalchemy.schema import AddConstraint, Constraint, CreateIndex, DropConstraint

from vbhc import models
from vbhc.ingest.tables import TableSpec, column_kind
from vbhc.store import copy_out

STAGE_PREFIX = "vbhc_stage_"
KEYS_PREFIX = "vbhc_keys_"


def stage_table(spec: TableSpec) -> Table:
    """A temporary table with the stored table's columns plus the row number each row came from."""
    columns = [Column("row_no", Integer)]
    columns += [Column(c, spec.target.columns[c].type) for c in spec.target_columns]
    return Table(STAGE_PREFIX + spec.name, MetaData(), *columns, prefixes=["TEMPORARY"])


def keys_table(spec: TableSpec) -> Table:
    """The keys of every file of the batch already staged for this table: where each came from."""
    columns = [Column("source_no", Integer), Column("row_no", Integer)]
    columns += [Column(c, spec.target.columns[c].type) for c in spec.target_key]
    return Table(KEYS_PREFIX + spec.name, MetaData(), *columns, prefixes=["TEMPORARY"])


def create(conn: Connection, table: Table) -> None:
    table.drop(conn, checkfirst=True)
    table.create(conn)


def drop(conn: Connection, table: Table) -> None:
    table.drop(conn, checkfirst=True)


def records(spec: TableSpec, frame: pd.DataFrame, row_numbers=None, *extra: object) -> Iterator[tuple]:
    """Plain Python tuples with None for missing values, dates as ISO text (valid for both databases): the row
    number first when `row_numbers` is given (a staging row), then the stored columns, then `extra` (the same
    values on every row). Made one at a time as the driver binds them: a list of a million tuples would wake
    the garbage collector again and again.

    Why per column and through the distinct values: a chunk of 200,000 PROM rows holds a few hundred distinct
    dates, and formatting those (then picking them by position) is ~100 times faster than formatting every row."""
    arrays: list[list] = [] if row_numbers is None else [np.asarray(row_numbers).tolist()]
    for c in spec.target_columns:
        s = frame[c]
        kind = column_kind(spec, c)
        if kind == "date":
            values = _by_distinct_value(s, lambda u: u.strftime("%Y-%m-%d"))
        elif kind == "integer":
            values = s.astype("Int64").to_numpy(dtype=object, na_value=None)
        elif kind == "number":
            values = s.astype("float64").to_numpy(dtype=object, na_value=None)
        else:
            values = s.to_numpy(dtype=object, na_value=None)
        arrays.append(values.tolist())
    arrays += [repeat(value, len(frame)) for value in extra]
    return zip(*arrays, strict=True)


def _by_distinct_value(values: pd.Series, convert) -> np.ndarray:
    """`convert` applied to the distinct values only, then spread back by position; None where missing."""
    codes, distinct = pd.factorize(values)
    converted = np.append(np.asarray(convert(pd.Index(distinct)), dtype=object), None)  # code -1 picks None
    return converted[codes]


def load(conn: Connection, stage: Table, spec: TableSpec, frame: pd.DataFrame, row_numbers) -> None:
    """Bulk-load a validated chunk (its rows numbered by `row_numbers`) through the driver's fast path.

    PostgreSQL: the chunk as one Arrow table written as CSV straight into COPY, no Python object per row.
    SQLite: executemany of plain tuples (its C loop binds them; there is no faster path from Python).
    """
    if frame.empty:
        return
    names = [c.name for c in stage.columns]
    if conn.dialect.name == "postgresql":
        from psycopg import sql

        copy_sql = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT csv)").format(
            sql.Identifier(stage.name), sql.SQL(", ").join(sql.Identifier(n) for n in names)
        )
        _CopyBehind.of(conn).submit(copy_sql, spec, frame, row_numbers)
    else:
        compiled = stage.insert().compile(dialect=conn.dialect, column_keys=names)
        params = compiled.positiontup
        assert params == names, "the compiled INSERT must take the columns in stage order"
        executemany(conn, str(compiled), records(spec, frame, row_numbers))


class _CopyBehind:
    """PostgreSQL: a chunk's conversion to COPY text and its COPY run in one worker thread while the batch reads and
    checks the next chunk, one chunk at a time and in order. Any other statement of the batch's connection (a
    check on the staging table, the next file's, the commit or rollback) first waits for the chunk in flight and
    raises its error, so every statement sees the rows loaded before it, as when the COPY ran in line.

    Why: COPY kept the server busy and the import waiting, then the import kept the server idle while it checked
    the next chunk; on two cores the two now overlap (Arrow's CSV writer and the socket wait release the GIL)."""

    _running: ClassVar[WeakKeyDictionary[Connection, _CopyBehind]] = WeakKeyDictionary()

    def __init__(self, conn: Connection):
        self.conn = conn
        self.pool: ThreadPoolExecutor | None = None
        self.pending: Future | None = None
        #: table name -> its id sequence, while defer_postgres_keys holds the table (copy_directly takes ids at once)
        self.sequences: dict[str, str] = {}
        event.listen(conn, "before_cursor_execute", self._before_statement)
        event.listen(conn, "rollback_savepoint", self._after_savepoint_rollback)
        event.listen(conn, "commit", self._before_commit)
        event.listen(conn, "rollback", self._before_rollback)

    @classmethod
    def of(cls, conn: Connection) -> _CopyBehind:
        """The connection's writer: its listeners stay as long as the connection, its thread runs from a chunk to
        the end of the transaction."""
        found = cls._running.get(conn)
        if found is None:
            found = cls._running[conn] = cls(conn)
        return found

    @classmethod
    def wait_for(cls, conn: Connection) -> None:
        """Wait for `conn`'s chunk in flight, if any (before a statement that bypasses SQLAlchemy's execute)."""
        found = cls._running.get(conn)
        if found is not None:
            found.wait()

    def submit(
        self,
        copy_sql: object,
        spec: TableSpec,
        frame: pd.DataFrame,
        row_numbers,
        batch_id: int | None = None,
        reserve: tuple[str, dict] | None = None,
    ) -> None:
        self.wait()  # one chunk in flight: its rows and this one's, not the file's, in memory
        driver = self.conn.connection.driver_connection
        if self.pool is None:
            self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vbhc-copy")
        self.pending = self.pool.submit(_copy_chunk, driver, copy_sql, spec, frame, row_numbers, batch_id, reserve)

    def wait(self) -> None:
        """Wait for the chunk in flight; its error raised as SQLAlchemy's (a refused write is one line in the
        report, as any statement's)."""
        pending, self.pending = self.pending, None
        if pending is None:
            return
        dbapi = self.conn.dialect.loaded_dbapi
        try:
            pending.result()
        except dbapi.Error as exc:
            raise DBAPIError.instance("COPY", None, exc, dbapi.Error, hide_parameters=True) from exc

    def _before_statement(self, *_args: object) -> None:
        self.wait()

    def _before_commit(self, _conn: Connection) -> None:
        try:
            self.wait()
        finally:
            self._stop()

    def _before_rollback(self, _conn: Connection) -> None:
        try:
            self.wait()
        except DBAPIError:
            pass  # the batch is rolled back for another error already; this chunk's rows go with it
        finally:
            self._stop()

    def _after_savepoint_rollback(self, *_args: object) -> None:
        """A rollback to a savepoint puts dropped keys back and lets the table's lock go: ids one at a time again."""
        self.sequences.clear()

    def _stop(self) -> None:
        """The thread ends with the transaction (the listeners stay: SQLAlchemy is calling them)."""
        self.sequences.clear()
        pool, self.pool = self.pool, None
        if pool is not None:
            pool.shutdown(wait=True)


def wait_for_copy(conn: Connection) -> None:
    """Wait for `conn`'s chunk still being copied in, if any; a COPY the server refused raises here, as SQLAlchemy's
    error (IntegrityError for a duplicate key)."""
    _CopyBehind.wait_for(conn)


def read_postgres(conn: Connection, query, types: dict[str, pa.DataType]) -> pa.Table:
    """PostgreSQL: `query`'s rows as one Arrow table of `types` (vbhc.store.copy_out: COPY ... TO STDOUT read
    by Arrow's CSV reader, no Python object per row), after the chunk still being copied in.

    Why: the import reads every stored care cycle once per batch (vbhc.ingest.run._Batch._stored_cycles); fetched
    row by row that was ~0.5 s of the import's CPU at 100,000 cycles."""
    _CopyBehind.wait_for(conn)  # a statement of its own: after the chunk in flight, as any other
    return copy_out(conn, query, types)


def _copy_chunk(
    driver, copy_sql, spec: TableSpec, frame: pd.DataFrame, row_numbers, batch_id: int | None, reserve
) -> None:
    """One chunk's COPY (in _CopyBehind's thread). With `reserve` (copy_directly's statement that takes the chunk's
    ids from the table's sequence), the ids it gives are the first column, as `row_numbers` are a staging row's."""
    with driver.cursor() as cur:
        if reserve is not None:
            last = int(cur.execute(*reserve).fetchone()[0])
            row_numbers = np.arange(last - len(frame) + 1, last + 1, dtype=np.int64)
        data = _csv_bytes(spec, frame, row_numbers, batch_id)
        with cur.copy(copy_sql) as copy:
            copy.write(data)


def insert_directly(conn: Connection, spec: TableSpec, frame: pd.DataFrame, batch_id: int) -> int:
    """Write a validated chunk straight into its stored table, for a file whose table held no row when the file
    began: there is nothing to upsert against, so staging every row only to copy it again is half the work. The
    table's own unique and foreign keys still check every row; a row they refuse raises SQLAlchemy's
    IntegrityError, and the caller then takes the staged path (which names the rows).

    PostgreSQL: a COPY into the table, run in the worker thread while the next chunk is read and checked
    (_CopyBehind, as staging's load): its IntegrityError comes with the next chunk's write or the caller's
    wait_for, and the caller rolls back to a savepoint taken before the file. SQLite: executemany."""
    if frame.empty:
        return 0
    if conn.dialect.name == "postgresql":
        copy_directly(conn, spec, frame, batch_id)
        return len(frame)
    names = [*spec.target_columns, "batch_id"]
    compiled = spec.target.insert().compile(dialect=conn.dialect, column_keys=names)
    assert compiled.positiontup == names, "the compiled INSERT must take the columns in this order"
    executemany(conn, str(compiled), records(spec, frame, None, batch_id))
    return len(frame)


def copy_directly(conn: Connection, spec: TableSpec, frame: pd.DataFrame, batch_id: int) -> None:
    """PostgreSQL: a COPY of `frame`'s rows (spec.target_columns) into the stored table spec.target under
    `batch_id`, in the worker thread while the next chunk is read (_CopyBehind). Ids come from the table's
    sequence, in the order of the rows: each row's nextval (the column's default), or while the table's keys are
    dropped (defer_postgres_keys: the table locked against every other session) the chunk's ids taken at once, the
    sequence left where the rows' nextval calls would have left it.

    Why: the COPY of the 100,000-cycle demo's 521,147 cost lines into a table without keys took 1.9-3.4 s with the
    ids given, 3.6-4.5 s with each row's nextval (load ~19, 3 runs each)."""
    from psycopg import sql

    writer = _CopyBehind.of(conn)
    names = [*spec.target_columns, "batch_id"]
    reserve = None
    sequence = writer.sequences.get(spec.target.name)
    if sequence is not None:
        names.insert(0, "id")
        # the chunk's last id; its first is len(frame) - 1 before it
        taken = select(func.setval(sequence, func.nextval(sequence) + (len(frame) - 1)))
        compiled = taken.compile(dialect=conn.dialect)
        reserve = (str(compiled), compiled.params)
    copy_sql = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT csv)").format(
        sql.Identifier(spec.target.name), sql.SQL(", ").join(sql.Identifier(n) for n in names)
    )
    writer.submit(copy_sql, spec, frame, None, batch_id, reserve)


#: SQLite's catalog of the schema (its own table, not one of vbhc.models)
_SQLITE_SCHEMA = table(
    "sqlite_master", column("type", String), column("name", String), column("tbl_name", String), column("sql", String)
)


def defer_sqlite_indexes(conn: Connection, target: Table) -> list[Index]:
    """Drop the plain (not unique) indexes of `target` for insert_directly's first load of the empty table, and
    return them for rebuild_indexes after its last chunk: an index built once over the loaded rows costs less
    than one kept up to date row by row (the 50k demo's care cycles: 0.35 s of CPU for four indexes, 0.13 s
    built after). Unique ones stay: they are the keys that refuse a duplicate row.

    Only inside the batch's open transaction (SQLite's DDL is transactional): a refused batch's rollback puts
    the indexes back with everything else. Only an index whose stored definition is exactly what vbhc.models
    creates (sqlite_master's text), so the rebuilt one is the same; any other is left alone. [] elsewhere."""
    if conn.dialect.name != "sqlite" or not conn.connection.driver_connection.in_transaction:
        return []
    m = _SQLITE_SCHEMA
    stored = conn.execute(select(m.c.name, m.c.sql).where(m.c.type == "index", m.c.tbl_name == target.name)).all()
    models_indexes = {ix.name: ix for ix in target.indexes if not ix.unique}
    deferred = []
    for name, sql in stored:
        ix = models_indexes.get(name)
        if ix is not None and sql == str(CreateIndex(ix).compile(dialect=conn.dialect)):
            deferred.append(ix)
    for ix in deferred:
        ix.drop(conn)
    return deferred


#: PostgreSQL's catalog of relations (its own table, not one of vbhc.models)
_PG_CLASS = table("pg_class", column("oid"), column("relowner"))


def defer_postgres_indexes(conn: Connection, target: Table) -> list[Index]:
    """PostgreSQL: drop the plain (not unique) indexes of `target` before upsert's plain INSERT of the batch's rows
    into the empty table, and return them for rebuild_indexes after it: a first import of 100,000 care cycles
    cost the server 1.1-1.4 s of CPU with its four plain indexes kept up to date row by row, 0.5-0.6 s with them
    built after the rows. Unique ones stay: they are the keys that refuse a duplicate row.

    Only inside the batch's transaction (PostgreSQL's DDL is transactional: a refused batch's rollback puts the
    indexes back with everything else), only when the table holds no row, only when this role owns the table
    (DROP INDEX needs it; another role keeps the indexes, slower, same rows), and only an index whose stored
    definition is the one vbhc.models creates (name, columns, nothing else), so the rebuilt one is the same.
    DROP INDEX holds the table's exclusive lock until the commit: a reader of the still empty table waits for
    the first import instead of seeing no rows. [] elsewhere."""
    if not _first_load_in_transaction(conn, target):
        return []
    stored = {ix["name"]: ix for ix in inspect(conn).get_indexes(target.name)}
    deferred = []
    for ix in target.indexes:
        found = stored.get(ix.name)
        of_columns = len(ix.expressions) == len(ix.columns) and all(
            e is c for e, c in zip(ix.expressions, ix.columns, strict=True)
        )
        if ix.unique or found is None or found.get("unique") or dict(ix.dialect_kwargs) or not of_columns:
            continue
        plain = (
            not any((found.get("dialect_options") or {}).values())
            and not found.get("column_sorting")
            and not found.get("include_columns")
        )
        if plain and found.get("column_names") == [c.name for c in ix.columns]:
            deferred.append(ix)
    for ix in deferred:
        ix.drop(conn)
    return deferred


#: PostgreSQL's catalog of constraints (its own table, not one of vbhc.models)
_PG_CONSTRAINT = table("pg_constraint", column("contype"), column("confrelid"))


def defer_postgres_keys(conn: Connection, target: Table) -> list[Constraint]:
    """PostgreSQL: drop the primary key and unique constraints of the empty `target` before the direct path's COPY
    of a file into it (vbhc.ingest.run._import_directly, inside its savepoint), and return them for rebuild_keys
    after the file's last chunk: one sort of the loaded rows per key costs the server less than keeping both btrees
    up to date row by row (a first import of the 100,000-cycle demo's 521,147 cost lines: COPY 9.3-12.3 s with the
    keys, 3.4-4.4 s without them plus 1.5-2.2 s to build them after, load ~9).

    The keys still refuse every duplicate: rebuild_keys fails on one with IntegrityError, as the COPY did, and the
    caller takes the staged path, which names the rows. Only where defer_postgres_indexes may drop an index (in a
    transaction, an empty table this role owns; ALTER TABLE holds the table's exclusive lock until the commit,
    so no other session writes a key meanwhile), only when no foreign key refers to `target` (its primary key
    stays then), and only keys whose stored definition is the one vbhc.models gives (columns; a unique
    constraint's name), so the rebuilt ones are the same. [] elsewhere."""
    if not _first_load_in_transaction(conn, target):
        return []
    referred = select(literal(1)).where(
        _PG_CONSTRAINT.c.contype == "f", _PG_CONSTRAINT.c.confrelid == func.to_regclass(target.name)
    )
    if conn.execute(referred.limit(1)).first() is not None:
        return []
    found = inspect(conn)
    # a copy of the table: AddConstraint and DropConstraint mark the constraint they take as not part of its
    # CREATE TABLE any more, which must not happen to vbhc.models' own
    shadow = target.to_metadata(MetaData())
    keys: list[Constraint] = []
    pk = found.get_pk_constraint(target.name)
    if pk.get("name") and pk.get("constrained_columns") == [c.name for c in target.primary_key.columns]:
        shadow.primary_key.name = pk["name"]
        keys.append(shadow.primary_key)
    stored = {uc["name"]: uc for uc in found.get_unique_constraints(target.name)}
    for uc in sorted(shadow.constraints, key=lambda c: c.name or ""):
        if not isinstance(uc, UniqueConstraint) or uc.name is None or uc.name not in stored:
            continue
        given = stored[uc.name]
        if given.get("column_names") == [c.name for c in uc.columns] and not any(
            (given.get("dialect_options") or {}).values()
        ):
            keys.append(uc)
    for key in keys:
        conn.execute(DropConstraint(key))
    if keys and list(target.primary_key.columns) == [target.c.get("id")]:
        # the table is locked against every other session until the commit: copy_directly may take its ids at once
        sequence = conn.execute(select(func.pg_get_serial_sequence(target.name, "id"))).scalar()
        if sequence is not None:
            _CopyBehind.of(conn).sequences[target.name] = sequence
    return keys


def rebuild_keys(conn: Connection, keys: list[Constraint]) -> None:
    """The keys defer_postgres_keys dropped, built again over the table's rows; a duplicate key raises
    IntegrityError (the table's rows are then taken back to the savepoint taken before them)."""
    for key in keys:
        _CopyBehind.of(conn).sequences.pop(key.table.name, None)  # ids one at a time again, as without the keys
        conn.execute(AddConstraint(key))


def _first_load_in_transaction(conn: Connection, target: Table) -> bool:
    """PostgreSQL, inside a transaction, `target` empty and owned by this role: where defer_postgres_indexes and
    defer_postgres_keys may drop what they rebuild after the first load's rows (the DDL rolled back with a refusal)."""
    if conn.dialect.name != "postgresql" or not conn.in_transaction():
        return False
    if conn.execute(select(literal(1)).select_from(target).limit(1)).first() is not None:
        return False
    return _owns(conn, target)


def _owns(conn: Connection, target: Table) -> bool:
    """PostgreSQL: whether this role owns `target` (or is a member of its owner), as DROP INDEX and ANALYZE need."""
    owns = select(func.pg_has_role(_PG_CLASS.c.relowner, "USAGE")).where(
        _PG_CLASS.c.oid == func.to_regclass(target.name)
    )
    return bool(conn.execute(owns).scalar())


def analyze_references(conn: Connection, target: Table) -> None:
    """PostgreSQL: the planner's statistics of the columns a reference check of `target` reads (batch_id and its
    foreign keys' columns), after a first import wrote the table's rows directly (never analyzed then: autovacuum
    counts them only after the commit), when this role owns the table.

    Why: the planner took the file's rows (batch_id = this batch) for ~0.5% of a table it knew nothing of and
    checked and locked their care cycles by an index probe per row: 237,054 probes (each a heap fetch) in
    parallel workers for a 100,000-cycle demo's PROM questionnaires, ~0.55-0.7 s of server CPU; with these two
    columns analyzed (~0.07 s, a sample of the rows) it hashes the care cycles once, ~0.35-0.4 s in all. Inside
    the batch's transaction: a refused batch's rollback takes the statistics back too (not the page and row
    counts PostgreSQL writes in place; autovacuum corrects those as it would after any rollback)."""
    if conn.dialect.name != "postgresql" or not _owns(conn, target):
        return
    columns = sorted({"batch_id", *(c for fk in target.foreign_key_constraints for c in fk.column_keys)})
    quote = conn.dialect.identifier_preparer.quote
    # identifiers of vbhc.models' own tables and columns, quoted by the dialect (ANALYZE takes no bound parameter)
    conn.exec_driver_sql(f"ANALYZE {quote(target.name)} ({', '.join(quote(c) for c in columns)})")


def rebuild_indexes(conn: Connection, indexes: list[Index]) -> None:
    """The indexes defer_sqlite_indexes or defer_postgres_indexes dropped, built again over the table's rows."""
    for ix in indexes:
        ix.create(conn)


def executemany(conn: Connection, statement: str, rows: Iterator[tuple]) -> None:
    """The driver's executemany (SQLite binds the rows in its C loop), its errors raised as SQLAlchemy's own
    (IntegrityError, OperationalError, ...) so that a refused write is reported like any other statement's."""
    try:
        conn.connection.driver_connection.executemany(statement, rows)
    except conn.dialect.loaded_dbapi.Error as exc:
        raise DBAPIError.instance(statement, None, exc, conn.dialect.loaded_dbapi.Error, hide_parameters=True) from exc


def delete_batch_rows(conn: Connection, spec: TableSpec, batch_id: int) -> None:
    """Take back what insert_directly wrote for one batch (before the staged path redoes the file)."""
    conn.execute(delete(spec.target).where(spec.target.c.batch_id == batch_id))


def _csv_bytes(spec: TableSpec, frame: pd.DataFrame, row_numbers, batch_id: int | None = None) -> bytes:
    """The chunk as CSV for PostgreSQL's COPY: every text value quoted (so an empty text stays empty text) and
    a missing value an unquoted empty field (NULL); numbers in their shortest exact form, dates as ISO. The row
    numbers first (a staging table's row_no; none for a stored table), `batch_id` last on every row if given."""
    arrays = [] if row_numbers is None else [pa.array(np.asarray(row_numbers, dtype=np.int64))]
    for c in spec.target_columns:
        s = frame[c]
        kind = column_kind(spec, c)
        if kind == "date":
            arrays.append(pa.array(s, from_pandas=True).cast(pa.date32()))
        elif kind == "integer":
            arrays.append(pa.array(s.astype("Int64"), type=pa.int64(), from_pandas=True))
        elif kind == "number":
            arrays.append(pa.array(s.astype("float64"), type=pa.float64(), from_pandas=True))
        else:
            arrays.append(pa.array(s, type=pa.string(), from_pandas=True))
    names = ([] if row_numbers is None else ["row_no"]) + list(spec.target_columns)
    if batch_id is not None:
        arrays.append(pa.array(np.full(len(frame), batch_id, dtype=np.int64)))
        names.append("batch_id")
    table = pa.Table.from_arrays(arrays, names=names)
    out = pa.BufferOutputStream()
    pa_csv.write_csv(table, out, pa_csv.WriteOptions(include_header=False, quoting_style="needed"))
    return out.getvalue().to_pybytes()


def duplicates(conn: Connection, stage: Table, keys: tuple[str, ...], limit: int) -> tuple[int, list[tuple]]:
    """Rows whose key an earlier row of the same file already gave: (count, [(row, key values..., first row)])."""
    key_cols = [stage.c[k] for k in keys]
    groups = (
        select(*key_cols, func.min(stage.c.row_no).label("first_row"))
        .group_by(*key_cols)
        .having(func.count() > 1)
        .subquery()
    )
    on = and_(*[stage.c[k] == groups.c[k] for k in keys])
    later = (
        select(stage.c.row_no, *key_cols, groups.c.first_row)
        .join(groups, on)
        .where(stage.c.row_no > groups.c.first_row)
    )
    count = conn.execute(select(func.count()).select_from(later.subquery())).scalar_one()
    rows = conn.execute(later.order_by(stage.c.row_no).limit(max(limit, 0))).all() if count else []
    return count, [tuple(r) for r in rows]


def duplicates_across(
    conn: Connection, stage: Table, seen: Table, keys: tuple[str, ...], limit: int
) -> tuple[int, list[tuple]]:
    """Rows whose key another file of the batch already gave: (count, [(row, source_no, other row, key...)])."""
    on = and_(*[stage.c[k] == seen.c[k] for k in keys])
    clash = select(stage.c.row_no, seen.c.source_no, seen.c.row_no.label("other_row"), *[stage.c[k] for k in keys])
    clash = clash.join(seen, on)
    count = conn.execute(select(func.count()).select_from(clash.subquery())).scalar_one()
    rows = conn.execute(clash.order_by(stage.c.row_no).limit(max(limit, 0))).all() if count else []
    return count, [tuple(r) for r in rows]


def remember_keys(conn: Connection, stage: Table, seen: Table, keys: tuple[str, ...], source_no: int) -> None:
    columns = ["source_no", "row_no", *keys]
    conn.execute(
        seen.insert().from_select(columns, select(literal(source_no), stage.c.row_no, *[stage.c[k] for k in keys]))
    )


def changed_keys(conn: Connection, stage: Table, target: Table, keys: tuple[str, ...], column: str) -> list[tuple]:
    """(row, key..., stored value, new value) for staged rows that change `column` of a stored row."""
    on = and_(*[target.c[k] == stage.c[k] for k in keys])
    query = (
        select(stage.c.row_no, *[stage.c[k] for k in keys], target.c[column], stage.c[column])
        .join(target, on)
        .where(target.c[column].is_distinct_from(stage.c[column]))
        .order_by(stage.c.row_no)
    )
    return [tuple(r) for r in conn.execute(query).all()]


def may_skip_row_triggers(conn: Connection) -> bool:
    """Whether this PostgreSQL session may switch off per-row triggers for its own transaction
    (session_replication_role: a superuser, or on PostgreSQL 15+ a role granted SET on it).

    Why: PostgreSQL checks a foreign key with a trigger per written row, each a lookup and a row lock on the
    referenced table; for a million PROM rows that is most of the import. A role that may not switch them off
    keeps the per-row checks (slower, same result)."""
    if conn.dialect.name != "postgresql":
        return False
    if conn.execute(select(func.current_setting("is_superuser"))).scalar_one() == "on":
        return True
    if (conn.dialect.server_version_info or (0,)) < (15,):
        return False
    privilege = func.has_parameter_privilege(SKIPPED_TRIGGERS_SETTING, "SET")
    return bool(conn.execute(select(privilege)).scalar_one())


#: PostgreSQL's memory for each sort or hash of the import's statements, for the batch's transaction only
#: (set_config(..., is_local => true)): with the server's default (4 MB) the hashes of a file's keys (reference
#: checks, duplicate and split checks, a re-import's joins) and the sort of a PROM file's questionnaires into file
#: order before their insert (~50 MB at 100,000 cycles) went to disk.
IMPORT_WORK_MEM = "64MB"


def raise_work_mem(conn: Connection) -> None:
    """Give the import's statements IMPORT_WORK_MEM on PostgreSQL, until the batch's transaction ends."""
    if conn.dialect.name == "postgresql":
        conn.execute(select(func.set_config("work_mem", IMPORT_WORK_MEM, True)))


#: The PostgreSQL setting that, set to "replica" for one transaction, fires no ordinary or foreign-key trigger;
#: SET takes no bound parameters, so the two statements are constants.
SKIPPED_TRIGGERS_SETTING = "session_replication_role"
_ROW_TRIGGERS_OFF = "SET LOCAL session_replication_role = replica"
_ROW_TRIGGERS_ON = "SET LOCAL session_replication_role = DEFAULT"


#: SQLite's per-row foreign-key check, per connection (SQLite ignores the pragma inside a transaction); the
#: statements are constants.
_SQLITE_ROW_CHECKS = "PRAGMA foreign_keys"
_SQLITE_ROW_CHECKS_OFF = "PRAGMA foreign_keys=OFF"
_SQLITE_ROW_CHECKS_ON = "PRAGMA foreign_keys=ON"


def skip_sqlite_row_checks(conn: Connection) -> bool:
    """Switch off SQLite's per-row foreign-key check on this connection, before the batch's transaction
    begins; True when it did (the caller switches it on again with restore_sqlite_row_checks).

    Why: SQLite looks up the referenced row of every written row (~10% of writing a million PROM rows);
    the batch checks its references once per file instead (unresolved_references, any_unresolved_reference),
    as on PostgreSQL, and no other session can write in between (SQLite has one writer at a time)."""
    if conn.dialect.name != "sqlite":
        return False
    driver = conn.connection.driver_connection
    if driver.in_transaction or driver.execute(_SQLITE_ROW_CHECKS).fetchone()[0] != 1:
        return False
    driver.execute(_SQLITE_ROW_CHECKS_OFF)
    return True


def restore_sqlite_row_checks(conn: Connection) -> None:
    """Switch SQLite's per-row foreign-key check on again, after the batch's commit or rollback."""
    driver = conn.connection.driver_connection
    driver.execute(_SQLITE_ROW_CHECKS_ON)
    if driver.execute(_SQLITE_ROW_CHECKS).fetchone()[0] != 1:
        raise RuntimeError("SQLite's foreign-key check could not be switched on again")


#: SQLite's page cache for an import's connection (KiB, as a negative cache_size): vbhc.store gives every connection
#: 200 MB for the pages' reads, which an import filled with the pages it writes (the 1M demo's 30-million-row PROM
#: file: peak RSS 1,585 MB, 1,381 MB with this, the same CPU time). An import writes each page once and reads few of
#: them again. Constants: a PRAGMA takes no bound parameters.
_SQLITE_CACHE_SIZE = "PRAGMA cache_size"
_SQLITE_IMPORT_CACHE = "PRAGMA cache_size=-20000"


def shrink_sqlite_cache(conn: Connection) -> int | None:
    """Give this SQLite connection the import's smaller page cache; returns the size it had (None elsewhere), for
    restore_sqlite_cache once the batch is over (the pool hands the connection to page reads next)."""
    if conn.dialect.name != "sqlite":
        return None
    driver = conn.connection.driver_connection
    before = int(driver.execute(_SQLITE_CACHE_SIZE).fetchone()[0])
    driver.execute(_SQLITE_IMPORT_CACHE)
    return before


def restore_sqlite_cache(conn: Connection, size: int) -> None:
    """The page cache this connection had before the import (shrink_sqlite_cache)."""
    conn.connection.driver_connection.execute(f"PRAGMA cache_size={int(size)}")


def any_unresolved_reference(conn: Connection, target: Table) -> bool:
    """Whether a stored row of `target` refers to no row, by its foreign keys: one look-up per distinct value.
    For SQLite's direct path, whose file wrote every row the table holds; its own batch row is left out."""
    for fk in target.foreign_key_constraints:
        parent = fk.referred_table
        if parent.name == models.ImportBatch.__tablename__:
            continue
        local = [target.c[c] for c in fk.column_keys]
        used = select(*local).where(and_(*[c.is_not(None) for c in local])).distinct().subquery()
        same = and_(*[e.column == used.c[c.name] for e, c in zip(fk.elements, local, strict=True)])
        orphan = select(literal(1)).select_from(used).where(~select(literal(1)).where(same).exists()).limit(1)
        if conn.execute(orphan).first() is not None:
            return True
    return False


def unresolved_references(
    conn: Connection, stage: Table, target: Table, limit: int, own_batches: Collection[int] = ()
) -> list[tuple]:
    """Check the staged rows' references once, set-based, as the foreign keys of `target` would row by row:
    every referenced row is locked against deletion (FOR KEY SHARE, as PostgreSQL's own check does) and the
    staged rows that reference no row are returned as (fk columns, count, [(row, values...)]).

    The batch's own import_batches row is left out: the import wrote it in this transaction. So are the
    referenced rows this transaction wrote (their batch_id one of `own_batches`): no other session sees an
    inserted one before the commit, and one it updated is locked by that update. When the referenced table holds
    no other row (the usual first import: every care cycle is the batch's own), the lock's join is skipped; it
    was a third of a PROM, outcome or cost file's time in the database."""
    found: list[tuple] = []
    for fk in sorted(target.foreign_key_constraints, key=lambda f: f.name or ""):
        parent = fk.referred_table
        if parent.name == models.ImportBatch.__tablename__:
            continue
        local = [stage.c[c] for c in fk.column_keys]
        remote = [e.column for e in fk.elements]
        given = and_(*[c.is_not(None) for c in local])
        referenced = select(*remote).where(tuple_(*remote).in_(select(*local).where(given)))
        same = and_(*[r == c for r, c in zip(remote, local, strict=True)])
        match = select(literal(1)).select_from(parent).where(same)
        if conn.dialect.name == "postgresql":
            others = parent.c.batch_id.not_in(list(own_batches)) if own_batches and "batch_id" in parent.c else None
            if others is not None:
                referenced = referenced.where(others)
            if others is None or conn.execute(select(literal(1)).where(others).limit(1)).first() is not None:
                locked = referenced.with_for_update(read=True, key_share=True).subquery()
                conn.execute(select(func.count()).select_from(locked)).scalar_one()
            else:
                # nothing was locked: only the batch's own rows resolve a reference. A row another session commits
                # after the look-up above is not locked here, so it could be deleted before this commit; a
                # reference to it is refused as unresolved (imported again, it is locked then)
                match = match.where(~others)
        missing = select(stage.c.row_no, *local).where(given, ~match.exists())
        count = conn.execute(select(func.count()).select_from(missing.subquery())).scalar_one()
        if count:
            rows = conn.execute(missing.order_by(stage.c.row_no).limit(max(limit, 1))).all()
            found.append((tuple(fk.column_keys), parent.name, count, [tuple(r) for r in rows]))
    return found


def upsert(
    conn: Connection,
    spec: TableSpec,
    stage: Table,
    batch_id: int,
    given: frozenset[str] | None = None,
    *,
    skip_row_triggers: bool = False,
) -> tuple[int, int, int]:
    """Insert new keys, update changed rows, leave identical rows alone: (inserted, updated, unchanged).

    `given` holds the stored columns the file has: a column the file leaves out keeps its stored values (a
    file without a bmi column says nothing about bmi), while an empty cell in a given column clears the value.
    `skip_row_triggers` (PostgreSQL, after unresolved_references found none) writes without the per-row
    foreign-key triggers, for this statement only.
    The counts come from the statement itself (rows written = inserted + updated) and one join for the staged
    keys already stored, skipped when the table is empty (a first import).
    The staged keys must be unique (vbhc.ingest.run refuses a file with duplicate keys before this).
    """
    target = spec.target
    columns = spec.target_columns
    keys = spec.target_key
    values = [c for c in columns if c not in keys and (given is None or c in given)]
    on = and_(*[target.c[k] == stage.c[k] for k in keys])
    total = conn.execute(select(func.count()).select_from(stage)).scalar_one()
    stored = conn.execute(select(literal(1)).select_from(target).limit(1)).first() is not None
    existing = conn.execute(select(func.count()).select_from(stage.join(target, on))).scalar_one() if stored else 0
    dialect_insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    # "WHERE true" keeps SQLite from reading ON CONFLICT as the join's ON (its documented parsing ambiguity)
    source = select(*[stage.c[c] for c in columns], literal(batch_id)).where(true())
    statement = dialect_insert(target).from_select([*columns, "batch_id"], source)
    if existing:
        statement = statement.on_conflict_do_update(
            index_elements=list(keys),
            set_={c: statement.excluded[c] for c in [*values, "batch_id"]},
            where=or_(*[target.c[c].is_distinct_from(statement.excluded[c]) for c in values]),
        )
    # with no staged key stored, a plain INSERT does the same without a conflict check per row (half the time
    # on PostgreSQL); a key another session stores meanwhile makes it fail, and the whole batch with it
    # (SQLite: the batch's connection already writes without its per-row check, see skip_sqlite_row_checks)
    set_role = skip_row_triggers and conn.dialect.name == "postgresql"
    if set_role:
        conn.exec_driver_sql(_ROW_TRIGGERS_OFF)
    # SQLAlchemy keeps an INSERT's row count only when asked
    written = conn.execute(statement.execution_options(preserve_rowcount=True)).rowcount
    if set_role:
        conn.exec_driver_sql(_ROW_TRIGGERS_ON)
    inserted = total - existing
    updated = written - inserted
    if not 0 <= updated <= existing:
        raise RuntimeError(f"the upsert wrote {written} rows for {total} staged, {existing} of them stored")
    return inserted, updated, existing - updated
