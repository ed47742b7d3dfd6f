"""Staging and writing: rows go into a temporary table per file, the database finds duplicate keys, and one
set-based upsert writes them (insert new keys, update changed rows, leave identical rows alone).

Statements are SQLAlchemy constructs: the staging tables copy the stored columns' types from vbhc.models, and
the upsert is the dialect's own INSERT ... ON CONFLICT. Bulk loading uses the driver's fast path (SQLite
executemany of a compiled INSERT, PostgreSQL COPY with composed identifiers), never values in SQL text.
"""

from __future__ import annotations

import pandas as pd
from sqlalchemy import Column, Connection, Integer, MetaData, Table, and_, func, literal, not_, or_, select, true
from sqlalchemy.dialects import postgresql, sqlite

from vbhc.ingest.tables import TableSpec, column_kind

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


def records(spec: TableSpec, frame: pd.DataFrame, row_numbers) -> list[tuple]:
    """Plain Python tuples with None for missing values, dates as ISO text (valid for both databases)."""
    arrays: list[list] = [row_numbers.tolist()]
    for c in spec.target_columns:
        s = frame[c]
        kind = column_kind(spec, c)
        if kind == "date":
            values = s.dt.strftime("%Y-%m-%d").to_numpy(dtype=object, na_value=None)
        elif kind == "integer":
            values = s.astype("Int64").to_numpy(dtype=object, na_value=None)
        elif kind == "number":
            values = s.astype("float64").to_numpy(dtype=object, na_value=None)
        else:
            values = s.to_numpy(dtype=object, na_value=None)
        arrays.append(values.tolist())
    return list(zip(*arrays, strict=True))


def load(conn: Connection, stage: Table, rows: list[tuple]) -> None:
    """Bulk-load rows (row_no first, then the stage's columns in order) through the driver's fast path."""
    if not rows:
        return
    names = [c.name for c in stage.columns]
    if conn.dialect.name == "postgresql":
        from psycopg import sql

        copy_sql = sql.SQL("COPY {} ({}) FROM STDIN").format(
            sql.Identifier(stage.name), sql.SQL(", ").join(sql.Identifier(n) for n in names)
        )
        with conn.connection.driver_connection.cursor() as cur, cur.copy(copy_sql) as copy:
            for rec in rows:
                copy.write_row(rec)
    else:
        compiled = stage.insert().compile(dialect=conn.dialect, column_keys=names)
        params = compiled.positiontup
        assert params == names, "the compiled INSERT must take the columns in stage order"
        conn.connection.driver_connection.executemany(str(compiled), rows)


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


def upsert(
    conn: Connection, spec: TableSpec, stage: Table, batch_id: int, given: frozenset[str] | None = None
) -> tuple[int, int, int]:
    """Insert new keys, update changed rows, leave identical rows alone: (inserted, updated, unchanged).

    `given` holds the stored columns the file has: a column the file leaves out keeps its stored values (a
    file without a bmi column says nothing about bmi), while an empty cell in a given column clears the value.
    """
    target = spec.target
    columns = spec.target_columns
    keys = spec.target_key
    values = [c for c in columns if c not in keys and (given is None or c in given)]
    on = and_(*[target.c[k] == stage.c[k] for k in keys])
    same = and_(true(), *[not_(target.c[c].is_distinct_from(stage.c[c])) for c in values])
    total = conn.execute(select(func.count()).select_from(stage)).scalar_one()
    existing = conn.execute(select(func.count()).select_from(stage.join(target, on))).scalar_one()
    unchanged = conn.execute(select(func.count()).select_from(stage.join(target, on)).where(same)).scalar_one()
    dialect_insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    # "WHERE true" keeps SQLite from reading ON CONFLICT as the join's ON (its documented parsing ambiguity)
    source = select(*[stage.c[c] for c in columns], literal(batch_id)).where(true())
    statement = dialect_insert(target).from_select([*columns, "batch_id"], source)
    statement = statement.on_conflict_do_update(
        index_elements=list(keys),
        set_={c: statement.excluded[c] for c in [*values, "batch_id"]},
        where=or_(*[target.c[c].is_distinct_from(statement.excluded[c]) for c in values]),
    )
    conn.execute(statement)
    return total - existing, existing - unchanged, unchanged
