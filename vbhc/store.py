"""Database engine and schema: one engine per URL, schema always brought to the latest Alembic revision."""

from __future__ import annotations

import ast
import time
from collections.abc import Iterator
from functools import cache
from typing import TYPE_CHECKING

from sqlalchemy import (
    Connection,
    Engine,
    Executable,
    column,
    create_engine,
    event,
    func,
    inspect,
    literal,
    select,
    table,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, InvalidatePoolError, SQLAlchemyError

from vbhc import models
from vbhc.settings import database_url, package_data, sqlite_file

if TYPE_CHECKING:
    import pyarrow as pa
    from alembic.config import Config

MIGRATIONS_DIR = package_data("migrations")
#: Alembic's bookkeeping table (its default name; migrations/env.py keeps the default)
VERSION_TABLE = "alembic_version"


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    # Foreign keys are off by default in SQLite; WAL lets the dashboard read while an import writes.
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    # an import's staging tables are temporary tables: on disk, so a large import does not hold them in memory
    cursor.execute("PRAGMA temp_store=FILE")
    cursor.execute("PRAGMA cache_size=-200000")
    cursor.close()


#: A pooled connection (PostgreSQL) idle for longer than this is asked whether the server still answers before a
#: run uses it; one used more recently is not. Why: pool_pre_ping asked on every checkout, one round trip each, a
#: dozen per script run of a busy server, whose connections had been used a moment before by the previous run.
PING_AFTER_IDLE_SECONDS = 10.0
_IDLE_SINCE = "vbhc_idle_since"


def _note_idle(_dbapi_connection, record) -> None:
    record.info[_IDLE_SINCE] = time.monotonic()


def _ping_when_idle(engine: Engine):
    """A pool `checkout` listener: ping a connection that was idle for PING_AFTER_IDLE_SECONDS or longer (the
    server restarted, a firewall dropped it). A dead one is replaced, with every connection pooled before it
    (InvalidatePoolError: the pool checks out a new one, SQLAlchemy's documented pessimistic disconnect handling)."""

    def checkout(dbapi_connection, record, _proxy) -> None:
        idle_since = record.info.get(_IDLE_SINCE)
        if idle_since is None or time.monotonic() - idle_since < PING_AFTER_IDLE_SECONDS:
            return  # new, or in use a moment ago
        try:
            engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as exc:
            raise InvalidatePoolError(f"a pooled connection no longer answers: {exc}") from exc

    return checkout


@cache
def get_engine(url: str | None = None) -> Engine:
    """The engine for `url` (default: settings.database_url()), created once per process."""
    url = url or database_url()
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        path = sqlite_file(parsed)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 60})
        event.listen(engine, "connect", _sqlite_pragmas)
    else:
        engine = create_engine(url)
        event.listen(engine, "checkin", _note_idle)
        event.listen(engine, "checkout", _ping_when_idle(engine))
    return engine


def alembic_config(engine: Engine) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    # configparser treats '%' specially; URLs with socket paths contain %2F
    cfg.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False).replace("%", "%%"))
    cfg.attributes["engine"] = engine
    return cfg


def upgrade_schema(engine: Engine | None = None) -> None:
    """Create the schema or upgrade an existing database in place to the latest revision.

    A database already at the newest revision is recognised without Alembic: loading it (and the SQL dialects
    it imports) took a few tenths of a second of every server start, and every start checks the schema."""
    engine = engine or get_engine()
    head = head_revision()
    if head is not None and _stored_revisions(engine) == (head,):
        return
    from alembic import command

    command.upgrade(alembic_config(engine), "head")


def schema_is_current(engine: Engine) -> bool:
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config(engine)).get_current_head()
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision() == head


@cache
def head_revision() -> str | None:
    """The newest revision of the migration scripts, read from their `revision` and `down_revision` lines; None
    unless they form one line of revisions (branches, merges, anything unusual: Alembic decides)."""
    parents: dict[str, object] = {}
    for path in sorted((MIGRATIONS_DIR / "versions").glob("*.py")):
        names = {}
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.Assign | ast.AnnAssign) and isinstance(node.value, ast.Constant):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                names |= {t.id: node.value.value for t in targets if isinstance(t, ast.Name)}
        if "revision" in names:
            if not isinstance(names["revision"], str) or names["revision"] in parents:
                return None
            parents[names["revision"]] = names.get("down_revision", ...)
    named = set(parents.values())
    if any(p is not None and not isinstance(p, str) for p in named) or len(named) != len(parents):
        return None  # a revision without a plain down_revision, or two revisions with the same parent
    heads = [revision for revision in parents if revision not in named]
    return heads[0] if len(heads) == 1 else None


def _stored_revisions(engine: Engine) -> tuple[str, ...] | None:
    """The revisions the database records (Alembic's table); None when it has none or cannot be read."""
    try:
        with engine.connect() as conn:
            if not inspect(conn).has_table(VERSION_TABLE):
                return None
            rows = conn.execute(select(column("version_num")).select_from(table(VERSION_TABLE))).scalars().all()
    except SQLAlchemyError:
        return None
    return tuple(rows)


def row_counts(engine: Engine | None = None) -> dict[str, int]:
    """Rows per registry table; used by the CLI summary and by tests that check nothing changed. PROM answers are
    counted as the files give them (prom_responses: one per answer), beside the questionnaires that hold them."""
    engine = engine or get_engine()
    tables = [
        models.ImportBatch.__table__,
        models.Hospital.__table__,
        models.Department.__table__,
        models.CareCycle.__table__,
        models.ClinicalOutcome.__table__,
        models.PromQuestionnaire,
        models.CostLine.__table__,
        models.PremResponse.__table__,
    ]
    existing = set(inspect(engine).get_table_names())
    counts: dict[str, int] = {}
    q = models.PromQuestionnaire
    with engine.connect() as conn:
        for table in tables:
            name = table.name
            if table is q:
                answers = sum((func.count(q.c[c]) for c in models.PROM_ANSWER_COLUMNS), literal(0))
                counts["prom_responses"] = (
                    int(conn.execute(select(answers).select_from(q)).scalar_one() or 0) if name in existing else 0
                )
            counts[name] = conn.execute(select(func.count()).select_from(table)).scalar_one() if name in existing else 0
    return counts


def copy_out(conn: Connection, query: Executable, types: dict[str, pa.DataType]) -> pa.Table:
    """PostgreSQL: `query`'s rows as one Arrow table of `types` (its columns in order), through COPY (...) TO
    STDOUT (FORMAT csv) read by Arrow's CSV reader: no Python object per row or value.

    Why: fetched row by row, the registry's frames (millions of outcome, PROM and cost rows) and the import's
    stored cycles spent most of their client time building Python tuples. Bound parameters are merged into the
    statement by psycopg's own quoting (COPY takes no server-side parameters). Exact: PostgreSQL writes floats in
    their shortest exact form, NULL as an unquoted empty field and an empty text as "" (only an unquoted empty
    field is NULL here, never text such as NA), booleans as t/f."""
    data = bytearray()  # one growing buffer, not a bytes object per row (COPY sends a row at a time): half the peak
    for block in _copy_blocks(conn, query):
        data += block
    return _parse_copied(data, types)


#: Bytes of COPY's CSV text parsed at a time by copy_out_chunks.
COPY_CHUNK_BYTES = 64 * 1024 * 1024


def copy_out_chunks(
    conn: Connection, query: Executable, types: dict[str, pa.DataType], chunk_bytes: int | None = None
) -> Iterator[pa.Table]:
    """copy_out's rows in consecutive Arrow tables of whole rows, each parsed from about `chunk_bytes` of COPY's
    text (COPY_CHUNK_BYTES): together the rows copy_out gives, in its order and of its values, with never more
    than a chunk of them in memory. Why: a read of a child table of every condition at 10,000,000 care cycles is
    several GB of text (vbhc.registry.shared_reads spills it per condition as it arrives).

    A chunk ends at a row's end: a newline outside quotes (PostgreSQL's CSV quotes a text with a newline and
    doubles its quotes, so a newline ends a row where the quotes before it, from the chunk's start, are even)."""
    limit = chunk_bytes or COPY_CHUNK_BYTES
    data = bytearray()
    for block in _copy_blocks(conn, query):
        data += block
        if len(data) >= limit:
            end = _rows_end(data)
            if end:
                yield _parse_copied(data[:end], types)
                del data[:end]
    if data:
        yield _parse_copied(data, types)


def _rows_end(data: bytearray) -> int:
    """The length of `data`'s leading whole rows of CSV (0 when no row ends in it): up to its last newline
    outside quotes, `data` starting at a row's start."""
    quotes = data.count(b'"')
    end = len(data)
    while (newline := data.rfind(b"\n", 0, end)) >= 0:
        quotes -= data.count(b'"', newline, end)
        if quotes % 2 == 0:
            return newline + 1
        end = newline
    return 0


def _copy_blocks(conn: Connection, query: Executable) -> Iterator[bytes]:
    """The blocks of COPY (`query`) TO STDOUT (FORMAT csv), as psycopg receives them."""
    from psycopg import sql

    compiled = query.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
    params = tuple(compiled.params[name] for name in compiled.positiontup) if compiled.positional else compiled.params
    statement = sql.SQL("COPY ({}) TO STDOUT (FORMAT csv)").format(sql.SQL(str(compiled)))
    driver = conn.connection.driver_connection
    try:
        with driver.cursor() as cur, cur.copy(statement, params or None) as copy:
            yield from copy
    except conn.dialect.loaded_dbapi.Error as exc:
        raise DBAPIError.instance("COPY", None, exc, conn.dialect.loaded_dbapi.Error, hide_parameters=True) from exc


def _parse_copied(data: bytearray | bytes, types: dict[str, pa.DataType]) -> pa.Table:
    """COPY's CSV text of whole rows as an Arrow table of `types`."""
    import pyarrow as pa
    import pyarrow.csv as pa_csv

    if not data:
        return pa.table({n: pa.array([], type=t) for n, t in types.items()})
    return pa_csv.read_csv(
        pa.BufferReader(pa.py_buffer(data)),
        read_options=pa_csv.ReadOptions(column_names=list(types)),
        parse_options=pa_csv.ParseOptions(newlines_in_values=True),
        convert_options=pa_csv.ConvertOptions(
            column_types=types,
            null_values=[""],
            true_values=["t"],
            false_values=["f"],
            strings_can_be_null=True,
            quoted_strings_can_be_null=False,
        ),
    )
