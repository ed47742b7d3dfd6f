"""What the PostgreSQL import tests read of the schema and of the DDL an import runs, shared by the tests of the
index deferral and of the key deferral (vbhc.ingest.stage): a deferral must leave the schema exactly as migrated."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from sqlalchemy import event, text
from sqlalchemy.engine import Engine

from vbhc.ingest import import_files


def schema(engine: Engine) -> list[tuple]:
    """Every index and constraint of the current schema, as PostgreSQL defines them."""
    with engine.connect() as conn:
        indexes = conn.execute(
            text("SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema()")
        ).all()
        constraints = conn.execute(
            text(
                "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint "
                "WHERE connamespace = current_schema()::regnamespace"
            )
        ).all()
    return sorted(indexes) + sorted(constraints)


def statements_while_importing(
    engine: Engine, files: list[Path], wanted: Callable[[str], bool], seen: list[str] | None = None, **kwargs
) -> list[str]:
    """The statements the import of `files` ran that `wanted` picks, in order. They are appended to `seen` as they
    run, so a test whose import is refused (and raises) still reads them."""
    seen = [] if seen is None else seen

    def watch(conn, cursor, statement, parameters, context, executemany):
        if wanted(statement):
            seen.append(statement)

    event.listen(engine, "before_cursor_execute", watch)
    try:
        import_files(files, engine, **kwargs)
    finally:
        event.remove(engine, "before_cursor_execute", watch)
    return seen
