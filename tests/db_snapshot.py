"""One snapshot of a registry database, to compare it before and after an import (tests of refused and
accepted imports: tests/test_import_trust.py and tests/test_import_properties.py)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Engine, MetaData, select, text

#: The reflected schema by what the database's tables are (see reflected)
_METADATA: dict[tuple, MetaData] = {}

#: Every column of every table of the current schema, as the catalog describes it (PostgreSQL)
_POSTGRES_COLUMNS = text(
    "SELECT c.relname, a.attnum, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull"
    " FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace"
    " WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped"
    " ORDER BY 1, 2"
)
#: Every foreign key of the current schema (PostgreSQL): the order of MetaData.sorted_tables
_POSTGRES_KEYS = text(
    "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint"
    " WHERE contype = 'f' AND connamespace = current_schema()::regnamespace ORDER BY 1, 2"
)
#: Every table's definition (SQLite)
_SQLITE_TABLES = text("SELECT name, sql FROM sqlite_master WHERE type = 'table' ORDER BY name")


def _tables(engine: Engine) -> tuple:
    """What the database's tables are: their names, columns, types and foreign keys (SQLite's definitions of
    them; PostgreSQL's catalog)."""
    queries = [_SQLITE_TABLES] if engine.dialect.name == "sqlite" else [_POSTGRES_COLUMNS, _POSTGRES_KEYS]
    with engine.connect() as conn:
        return (engine.dialect.name, *(tuple(map(tuple, conn.execute(query))) for query in queries))


def reflected(engine: Engine) -> MetaData:
    """The reflected schema, once per set of tables (their names, columns, types and foreign keys), whichever
    database has them.

    Why: nearly every test's database is a new copy of the same migrated schema, and reflecting it (~30 ms of CPU)
    for each of ~300 snapshots a run was a tenth of the import-trust tests' time; a snapshot selects each table's
    columns (in the order of their foreign keys), which a database with the same tables has alike. The catalog is
    read every time, so a table or column added later (an import's staging table) is seen."""
    key = _tables(engine)
    if key not in _METADATA:
        md = MetaData()
        md.reflect(engine)
        _METADATA[key] = md
    return _METADATA[key]


def _sort_key(row: tuple) -> list:
    # numbers as numbers: ids 8 and 10 must sort as 8 < 10 ("10" < "8" as text); a list (compared as the tuple
    # of the same items would be), made by a comprehension: a snapshot sorts every stored row by it
    return [
        (False, False, v) if isinstance(v, int | float) else (v is None, True, "None" if v is None else str(v))
        for v in row
    ]


def snapshot(engine: Engine, *, skip: Iterable[str] = ()) -> dict[str, list[dict[str, Any]]]:
    """Every row of every stored table as {column: value}, in a stable order; without the schema version, the
    importer's staging tables and the tables named in `skip` (e.g. "audit_events")."""
    skipped = {"alembic_version", *skip}
    out: dict[str, list[dict[str, Any]]] = {}
    with engine.connect() as conn:
        for table in reflected(engine).sorted_tables:
            if table.name in skipped or table.name.startswith("vbhc_stage"):
                continue
            result = conn.execute(select(table))
            columns = list(result.keys())
            # sorted as tuples, then made dicts: the same order (the key reads the values in column order) without
            # a mapping view and a tuple of its values per row
            out[table.name] = [dict(zip(columns, r, strict=True)) for r in sorted(result, key=_sort_key)]
    if "prom_questionnaires" in out and "prom_responses" not in skipped:
        out["prom_responses"] = answer_rows(out["prom_questionnaires"], out.get("prom_items", []))
    return out


def answer_rows(questionnaires: list[dict[str, Any]], items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The stored PROM answers as the item rows a file gives (cycle_id, instrument, timepoint, item, value,
    completed_date) with their questionnaire's batch_id: what tests compare against the files, whatever the
    positions prom_items gave the items."""
    item_at = {(i["instrument"], i["position"]): i["item"] for i in items}
    rows = []
    for q in questionnaires:
        for column, value in q.items():
            if len(column) == 3 and column[0] == "a" and column[1:].isdigit() and value is not None:
                item = item_at[(q["instrument"], int(column[1:]))]
                key = {k: q[k] for k in ("cycle_id", "instrument", "timepoint")}
                rows.append(
                    key
                    | {"item": item, "value": value, "completed_date": q["completed_date"]}
                    | {"batch_id": q["batch_id"]}
                )
    return sorted(rows, key=lambda r: _sort_key(tuple(r.values())))
