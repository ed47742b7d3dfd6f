"""The import tables, derived from the stored schema (vbhc.models) so that a column is named in one place.

A registry file names its columns as the README documents them; they are the model's columns, except for the
units table, which writes two models (hospitals and departments) and calls a department's code `department`.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Date, Float, Integer, Table, UniqueConstraint

from vbhc import models

#: Columns every stored registry row has but no file gives.
_BOOKKEEPING = frozenset({"id", "batch_id"})


@dataclass(frozen=True)
class TableSpec:
    """One import table: its columns as files name them, and how they map onto the stored table."""

    name: str
    target: Table  # the stored table the rows are upserted into
    key: tuple[str, ...]  # natural key, as files name it
    required: tuple[str, ...]
    optional: tuple[str, ...]
    renamed: dict[str, str]  # file column -> stored column, where they differ
    extra: tuple[str, ...] = ()  # file columns stored elsewhere (units: the hospital's name and own-hospital flag)

    @property
    def columns(self) -> tuple[str, ...]:
        return self.required + self.optional

    def stored(self, column: str) -> str:
        return self.renamed.get(column, column)

    @property
    def target_columns(self) -> tuple[str, ...]:
        """Stored columns written from a file, in the stored table's order."""
        return tuple(c.name for c in self.target.columns if c.name not in _BOOKKEEPING)

    @property
    def target_key(self) -> tuple[str, ...]:
        return tuple(self.stored(k) for k in self.key)


def _natural_key(table: Table) -> tuple[str, ...]:
    unique = [c for c in table.constraints if isinstance(c, UniqueConstraint)]
    if unique:
        return tuple(col.name for col in unique[0].columns)
    return tuple(c.name for c in table.primary_key.columns)


def _spec(name: str, model: type, renamed: dict[str, str] | None = None, extra_required=(), extra_optional=()):
    table: Table = model if isinstance(model, Table) else model.__table__
    renamed = renamed or {}
    back = {v: k for k, v in renamed.items()}
    key = tuple(back.get(c, c) for c in _natural_key(table))
    required, optional = list(key), []
    for col in table.columns:
        if col.name in _BOOKKEEPING:
            continue
        name_in_file = back.get(col.name, col.name)
        if name_in_file in required:
            continue
        needed = not col.nullable and col.default is None and col.server_default is None
        (required if needed else optional).append(name_in_file)
    return TableSpec(
        name,
        table,
        key,
        tuple(required) + tuple(extra_required),
        tuple(optional) + tuple(extra_optional),
        renamed,
        tuple(extra_required) + tuple(extra_optional),
    )


TABLES: dict[str, TableSpec] = {
    "units": _spec(
        "units",
        models.Department,
        {"department": "code", "department_name": "name"},
        extra_required=("hospital_name",),
        extra_optional=("own_hospital",),
    ),
    "care_cycles": _spec("care_cycles", models.CareCycle),
    "clinical_outcomes": _spec("clinical_outcomes", models.ClinicalOutcome),
    # the file's item rows; stored packed into prom_questionnaires (vbhc.ingest.prom_store)
    "prom_responses": _spec("prom_responses", models.PROM_ITEM_ROWS),
    "costs": _spec("costs", models.CostLine),
    "prem_responses": _spec("prem_responses", models.PremResponse),
}
#: Columns of ids and unit codes: keys a person reads as written (a look-alike character, or a number cell that
#: shows another text than its number, would make another key).
ID_COLUMNS = frozenset({"cycle_id", "patient_id", "response_id", "hospital", "department"})
#: Import (dependency) order: units before care cycles before what hangs on a care cycle.
TABLE_ORDER = tuple(TABLES)
assert TABLE_ORDER == models.REGISTRY_TABLES


def column_kind(table: TableSpec, stored_column: str) -> str:
    """ "date", "integer", "number" or "text": how a stored column's values are converted for staging."""
    kind = table.target.columns[stored_column].type
    if isinstance(kind, Date):
        return "date"
    if isinstance(kind, Integer):
        return "integer"
    if isinstance(kind, Float):
        return "number"
    return "text"
