"""Stored data: the registry tables (SQLModel), one row per thing a hospital registers.

Care cycles are keyed by their pseudonymous cycle_id so re-imports upsert on the natural key and child rows
need no lookup of surrogate ids. Every stored row points to the ImportBatch that last wrote it (provenance
for reports). The schema itself is owned by Alembic migrations (vbhc/migrations); these classes describe it.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Column, ForeignKey, ForeignKeyConstraint, Index, String, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

metadata = SQLModel.metadata


class ImportBatch(SQLModel, table=True):
    """One imported file: what, from where, by whom, and what it did to the database."""

    __tablename__ = "import_batches"

    id: int | None = Field(default=None, primary_key=True)
    file_name: str = Field(max_length=500)
    table_name: str = Field(max_length=40)
    sheet: str | None = Field(default=None, max_length=100)
    sha256: str = Field(max_length=64, index=True)
    rows_read: int = 0
    rows_inserted: int = 0
    rows_updated: int = 0
    rows_unchanged: int = 0
    imported_by: str = Field(default="", max_length=200)
    imported_at: dt.datetime


class Hospital(SQLModel, table=True):
    __tablename__ = "hospitals"

    code: str = Field(primary_key=True, max_length=40)
    name: str = Field(max_length=200)
    own_hospital: bool = False
    batch_id: int = Field(foreign_key="import_batches.id")


class Department(SQLModel, table=True):
    __tablename__ = "departments"

    hospital: str = Field(sa_column=Column(String(40), ForeignKey("hospitals.code"), primary_key=True, nullable=False))
    code: str = Field(primary_key=True, max_length=40)
    name: str = Field(max_length=200)
    division: str = Field(default="", max_length=200)
    batch_id: int = Field(foreign_key="import_batches.id")


class CareCycle(SQLModel, table=True):
    """One patient's full cycle of care for a condition; carries its case-mix values."""

    __tablename__ = "care_cycles"
    __table_args__ = (
        Index("ix_care_cycles_condition_date", "condition", "index_date"),
        Index("ix_care_cycles_unit", "condition", "hospital", "department", "index_date"),
        ForeignKeyConstraint(
            ["hospital", "department"], ["departments.hospital", "departments.code"], name="fk_care_cycles_unit"
        ),
    )

    cycle_id: str = Field(primary_key=True, max_length=64)
    patient_id: str = Field(max_length=64, index=True)
    condition: str = Field(max_length=64)
    hospital: str = Field(max_length=40)
    department: str = Field(max_length=40)
    index_date: dt.date
    treatment: str = Field(default="", max_length=100)
    # case-mix (vbhc.catalog.STORED_CASEMIX); NULL = not recorded
    age: int | None = None
    sex: str | None = Field(default=None, max_length=20)
    asa: int | None = None
    charlson: int | None = None
    bmi: float | None = None
    stage: str | None = Field(default=None, max_length=20)
    nyha: int | None = None
    lvef: float | None = None
    smoking: str | None = Field(default=None, max_length=20)
    batch_id: int = Field(foreign_key="import_batches.id", index=True)


class ClinicalOutcome(SQLModel, table=True):
    __tablename__ = "clinical_outcomes"
    __table_args__ = (UniqueConstraint("cycle_id", "outcome", name="uq_clinical_outcomes_key"),)

    id: int | None = Field(default=None, primary_key=True)
    cycle_id: str = Field(foreign_key="care_cycles.cycle_id", max_length=64)
    outcome: str = Field(max_length=64)
    value: float
    date: dt.date | None = None
    batch_id: int = Field(foreign_key="import_batches.id")


class PromResponse(SQLModel, table=True):
    __tablename__ = "prom_responses"
    __table_args__ = (UniqueConstraint("cycle_id", "instrument", "timepoint", "item", name="uq_prom_responses_key"),)

    id: int | None = Field(default=None, primary_key=True)
    cycle_id: str = Field(foreign_key="care_cycles.cycle_id", max_length=64)
    instrument: str = Field(max_length=40)
    timepoint: str = Field(max_length=40)
    item: str = Field(max_length=40)
    value: float
    completed_date: dt.date | None = None
    batch_id: int = Field(foreign_key="import_batches.id")


class CostLine(SQLModel, table=True):
    __tablename__ = "cost_lines"
    __table_args__ = (UniqueConstraint("cycle_id", "activity", name="uq_cost_lines_key"),)

    id: int | None = Field(default=None, primary_key=True)
    cycle_id: str = Field(foreign_key="care_cycles.cycle_id", max_length=64)
    activity: str = Field(max_length=64)
    quantity: float
    unit_cost: float
    batch_id: int = Field(foreign_key="import_batches.id")


class AuditEvent(SQLModel, table=True):
    """One thing someone did with registry data: viewed, exported, imported, or was refused (vbhc.audit).

    Never holds patient data: `detail` carries ids of conditions, indicators, units and files, counts and rule
    texts only. Rows are only ever added.
    """

    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_events_user_at", "user_id", "at"),)

    id: int | None = Field(default=None, primary_key=True)
    at: dt.datetime = Field(index=True)  # UTC
    user_id: str = Field(max_length=200)
    roles: str = Field(default="", max_length=200)  # comma-separated role names at the time of the event
    action: str = Field(max_length=20, index=True)  # vbhc.audit.ACTIONS
    condition: str | None = Field(default=None, max_length=64)
    unit: str | None = Field(default=None, max_length=200)
    detail: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    sha256: str | None = Field(default=None, max_length=64)


#: Registry tables in import (dependency) order.
REGISTRY_TABLES = ("units", "care_cycles", "clinical_outcomes", "prom_responses", "costs")
