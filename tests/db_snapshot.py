"""One snapshot of a registry database, to compare it before and after an import (tests of refused and
accepted imports: tests/test_import_trust.py and tests/test_import_properties.py)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Engine, MetaData, select

_METADATA: dict[str, MetaData] = {}


def reflected(engine: Engine) -> MetaData:
    """The reflected schema, once per database (imports never change the schema; reflect after the upgrade)."""
    url = engine.url.render_as_string()
    if url not in _METADATA:
        md = MetaData()
        md.reflect(engine)
        _METADATA[url] = md
    return _METADATA[url]


def _sort_key(row: tuple) -> tuple:
    # numbers as numbers: ids 8 and 10 must sort as 8 < 10 ("10" < "8" as text)
    return tuple((v is None, not isinstance(v, int | float), v if isinstance(v, int | float) else str(v)) for v in row)


def snapshot(engine: Engine, *, skip: Iterable[str] = ()) -> dict[str, list[dict[str, Any]]]:
    """Every row of every stored table as {column: value}, in a stable order; without the schema version, the
    importer's staging tables and the tables named in `skip` (e.g. "audit_events")."""
    skipped = {"alembic_version", *skip}
    out: dict[str, list[dict[str, Any]]] = {}
    with engine.connect() as conn:
        for table in reflected(engine).sorted_tables:
            if table.name in skipped or table.name.startswith("vbhc_stage"):
                continue
            rows = [dict(r._mapping) for r in conn.execute(select(table))]
            out[table.name] = sorted(rows, key=lambda r: _sort_key(tuple(r.values())))
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
