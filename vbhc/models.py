"""Stored data: the registry tables (SQLModel), one row per thing a hospital registers.

Care cycles are keyed by their pseudonymous cycle_id so re-imports upsert on the natural key and child rows
need no lookup of surrogate ids. Every stored row points to the ImportBatch that last wrote it (provenance
for reports). The schema itself is owned by Alembic migrations (vbhc/migrations); these classes describe it.
"""

from __future__ import annotations

import datetime as dt
import json

from sqlalchemy import (
    Column,
    Date,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
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


#: Answer columns of a stored PROM questionnaire, one per item position (prom_items): a01 .. a64. Enough for the
#: largest instrument a hospital may load (KOOS has 42 items); an instrument with more items is refused at import.
PROM_ANSWER_SLOTS = 64


def prom_answer_column(position: int) -> str:
    """The answer column of an item position (1-based): a01, a02, ..."""
    return f"a{position:02d}"


PROM_ANSWER_COLUMNS = tuple(prom_answer_column(n) for n in range(1, PROM_ANSWER_SLOTS + 1))


#: One returned PROM questionnaire (a care cycle's instrument at a timepoint): its one completed date and its
#: answers, each in the column of its item's position (prom_items). One row per questionnaire instead of one per
#: answer: the import writes ~13x fewer rows and the database is ~7x smaller. Every answer's provenance is the
#: questionnaire's: batch_id is the last import that changed any of its answers or its date.
PromQuestionnaire = Table(
    "prom_questionnaires",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("cycle_id", String(64), ForeignKey("care_cycles.cycle_id"), nullable=False),
    Column("instrument", String(40), nullable=False),
    Column("timepoint", String(40), nullable=False),
    Column("completed_date", Date, nullable=True),
    *[Column(c, Float, nullable=True) for c in PROM_ANSWER_COLUMNS],
    Column("batch_id", Integer, ForeignKey("import_batches.id"), nullable=False),
    UniqueConstraint("cycle_id", "instrument", "timepoint", name="uq_prom_questionnaires_key"),
)


class PromItem(SQLModel, table=True):
    """Where an instrument's item is stored in prom_questionnaires: its answer column's position, given when the
    item is first imported and never changed. Not the catalog's order: the catalog is configurable, and a
    catalog update must never move a stored answer to another item."""

    __tablename__ = "prom_items"
    __table_args__ = (
        UniqueConstraint("instrument", "item", name="uq_prom_items_item"),
        UniqueConstraint("instrument", "position", name="uq_prom_items_position"),
    )

    id: int | None = Field(default=None, primary_key=True)
    instrument: str = Field(max_length=40)
    item: str = Field(max_length=40)
    position: int


#: The item rows of a PROM file (cycle_id, instrument, timepoint, item, value, completed_date): what the import
#: reads, checks and stages, not a stored table (its own MetaData: no migration creates it). The import packs them
#: into prom_questionnaires.
PROM_ITEM_ROWS = Table(
    "prom_responses",
    MetaData(),
    Column("id", Integer, primary_key=True),
    Column("cycle_id", String(64), ForeignKey(CareCycle.__table__.c.cycle_id), nullable=False),
    Column("instrument", String(40), nullable=False),
    Column("timepoint", String(40), nullable=False),
    Column("item", String(40), nullable=False),
    Column("value", Float, nullable=False),
    Column("completed_date", Date, nullable=True),
    Column("batch_id", Integer, nullable=False),
    UniqueConstraint("cycle_id", "instrument", "timepoint", "item", name="uq_prom_responses_key"),
)


class CostLine(SQLModel, table=True):
    __tablename__ = "cost_lines"
    __table_args__ = (UniqueConstraint("cycle_id", "activity", name="uq_cost_lines_key"),)

    id: int | None = Field(default=None, primary_key=True)
    cycle_id: str = Field(foreign_key="care_cycles.cycle_id", max_length=64)
    activity: str = Field(max_length=64)
    quantity: float
    unit_cost: float
    batch_id: int = Field(foreign_key="import_batches.id")


class PremResponse(SQLModel, table=True):
    """One answer of one returned patient-experience questionnaire (vbhc.prems): item level, as the survey
    bureau delivers it. A response is not tied to a care cycle: the hospital asks every patient after a visit,
    so a row names its unit and visit itself, and carries the respondent's case-mix (the same on every row of
    one response; the importer checks that)."""

    __tablename__ = "prem_responses"
    __table_args__ = (
        UniqueConstraint("response_id", "item", name="uq_prem_responses_key"),
        Index("ix_prem_responses_unit", "questionnaire", "hospital", "department", "visit_date"),
        ForeignKeyConstraint(
            ["hospital", "department"], ["departments.hospital", "departments.code"], name="fk_prem_responses_unit"
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    response_id: str = Field(max_length=64, index=True)  # pseudonymous id of one returned questionnaire
    questionnaire: str = Field(max_length=64)
    hospital: str = Field(max_length=40)
    department: str = Field(max_length=40)
    visit_date: dt.date
    visit_type: str = Field(max_length=20)  # vbhc.catalog.PREM_VISIT_TYPES
    item: str = Field(max_length=40)
    answer: float
    # the respondent's case-mix (vbhc.catalog.PREM_CASEMIX); NULL = not answered
    age_band: str | None = Field(default=None, max_length=20)
    education: str | None = Field(default=None, max_length=20)
    self_rated_health: str | None = Field(default=None, max_length=20)
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


# --- the improvement cycle (vbhc.improvement) ---------------------------------------------------------------
class _Version(SQLModel):
    """One version of an improvement item. Nothing is updated or deleted: an edit adds the next version of the
    same item, so the history stays readable with who changed what and when. The unique (item_id, version) key
    is what makes two simultaneous edits of the same version fail in the database, not only in Python."""

    id: int | None = Field(default=None, primary_key=True)
    item_id: str = Field(max_length=40)
    version: int
    change: str = Field(max_length=20)  # vbhc.improvement.Change: created, edited, explained, decided, imported
    changed_by: str = Field(max_length=200)
    changed_roles: str = Field(default="", max_length=200)
    changed_at: dt.datetime  # UTC


class ImprovementTarget(_Version, table=True):
    """A target for an indicator: the care team's own goal or an external norm (with its source)."""

    __tablename__ = "improvement_targets"
    __table_args__ = (
        UniqueConstraint("item_id", "version", name="uq_improvement_targets_version"),
        Index("ix_improvement_targets_condition", "condition", "indicator"),
    )

    condition: str = Field(max_length=64)
    indicator: str = Field(max_length=64)
    unit: str = Field(default="", max_length=200)  # "" = every unit
    kind: str = Field(max_length=20)  # vbhc.improvement.TargetKind
    value: float
    direction: str = Field(max_length=20)  # vbhc.improvement.Direction
    source: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    valid_from: dt.date
    active: bool = True


class ImprovementSignal(_Version, table=True):
    """A unit x indicator flagged on a dataset version, and what the team concluded about it."""

    __tablename__ = "improvement_signals"
    __table_args__ = (
        UniqueConstraint("item_id", "version", name="uq_improvement_signals_version"),
        Index("ix_improvement_signals_condition", "condition", "indicator", "unit"),
    )

    condition: str = Field(max_length=64)
    level: str = Field(max_length=20)  # unit level of the result it was found in (vbhc.registry.UNIT_LEVELS)
    unit: str = Field(max_length=200)
    indicator: str = Field(max_length=64)
    rule: str = Field(max_length=20)  # vbhc.improvement.Rule
    side: str = Field(max_length=20)  # better / worse
    value: float | None = None  # the indicator's value when first flagged
    detected_version: str = Field(max_length=64)  # vbhc.registry.dataset_version
    detected_at: dt.datetime  # UTC
    status: str = Field(max_length=20)  # vbhc.improvement.SignalStatus
    explanation: str | None = Field(default=None, max_length=20)  # vbhc.improvement.Explanation
    explanation_text: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    decision: str | None = Field(default=None, max_length=20)  # vbhc.improvement.Decision


class ImprovementAction(_Version, table=True):
    """An improvement action: what, who (a role, not a person), when, linked indicators and signals."""

    __tablename__ = "improvement_actions"
    __table_args__ = (
        UniqueConstraint("item_id", "version", name="uq_improvement_actions_version"),
        Index("ix_improvement_actions_condition", "condition"),
    )

    condition: str = Field(max_length=64)
    unit: str = Field(default="", max_length=200)  # "" = every unit
    title: str = Field(max_length=300)
    owner_role: str = Field(max_length=100)
    start: dt.date
    due: dt.date
    status: str = Field(max_length=20)  # vbhc.improvement.ActionStatus
    indicators: str = Field(default="[]", sa_column=Column(Text, nullable=False, default="[]"))  # JSON list of ids
    signals: str = Field(default="[]", sa_column=Column(Text, nullable=False, default="[]"))  # JSON list of item ids
    expected_effect: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))

    @property
    def indicator_ids(self) -> list[str]:
        return list(json.loads(self.indicators or "[]"))

    @property
    def signal_ids(self) -> list[str]:
        return list(json.loads(self.signals or "[]"))


class SignalDetection(SQLModel, table=True):
    """One detection run: a condition's stored result at one unit level on one dataset version. Unique, so running
    detection again on the same version adds nothing; comparing runs is how "new since the meeting" is found."""

    __tablename__ = "improvement_detections"
    __table_args__ = (
        UniqueConstraint("condition", "level", "dataset_version", name="uq_improvement_detections_version"),
    )

    id: int | None = Field(default=None, primary_key=True)
    condition: str = Field(max_length=64)
    level: str = Field(max_length=20)
    dataset_version: str = Field(max_length=64)
    detected_at: dt.datetime  # UTC
    detected_by: str = Field(max_length=200)
    flags: int = 0


class SignalFlag(SQLModel, table=True):
    """A unit x indicator flagged in one detection run, and the signal it was attributed to."""

    __tablename__ = "improvement_signal_flags"
    __table_args__ = (UniqueConstraint("detection_id", "unit", "indicator", "rule", name="uq_improvement_flags_key"),)

    id: int | None = Field(default=None, primary_key=True)
    detection_id: int = Field(foreign_key="improvement_detections.id", index=True)
    unit: str = Field(max_length=200)
    indicator: str = Field(max_length=64)
    rule: str = Field(max_length=20)
    side: str = Field(max_length=20)
    value: float | None = None
    signal_item_id: str = Field(max_length=40, index=True)


# --- external benchmark figures (vbhc.external) ---------------------------------------------------------------
class ExternalPublication(SQLModel, table=True):
    """One imported file of benchmark figures from outside (a national registry's feedback, a partner's export):
    where the figures come from, so every chart and report can name its benchmark population. A newer file of the
    same source and period replaces the older one in the same transaction."""

    __tablename__ = "external_publications"

    id: int | None = Field(default=None, primary_key=True)
    source: str = Field(max_length=200)
    published: dt.date
    period: str = Field(max_length=40)
    file_name: str = Field(max_length=500)
    sha256: str = Field(max_length=64)
    imported_by: str = Field(default="", max_length=200)
    imported_at: dt.datetime  # UTC
    warnings: str = Field(default="[]", sa_column=Column(Text, nullable=False, default="[]"))  # JSON list of texts


class ExternalFigure(SQLModel, table=True):
    """Summary figures of one unit x indicator from an external publication (no patient rows): n and observed /
    expected for yes/no indicators, n with mean and sd or sum and sum of squares for continuous ones."""

    __tablename__ = "external_figures"
    __table_args__ = (
        UniqueConstraint("publication_id", "condition", "indicator", "unit", name="uq_external_figures_key"),
    )

    id: int | None = Field(default=None, primary_key=True)
    publication_id: int = Field(foreign_key="external_publications.id", index=True)
    condition: str = Field(max_length=64, index=True)
    indicator: str = Field(max_length=64)
    definition_version: str = Field(max_length=20)
    unit: str = Field(max_length=200)
    n: float
    observed: float | None = None
    expected: float | None = None
    n_adjusted: float | None = None
    observed_adjusted: float | None = None
    mean: float | None = None
    sd: float | None = None
    sum: float | None = None
    sum_sq: float | None = None


class PublishedModel(SQLModel, table=True):
    """A published case-mix model of one indicator (vbhc.external_models), imported once by the quality directorate:
    the file as it arrived (re-read with the same checks when used) and its provenance. A newer import of the same
    source, condition, indicator and definition version adds its next version (unique key, so two imports at once
    cannot both win); the older ones stay readable."""

    __tablename__ = "published_models"
    __table_args__ = (
        UniqueConstraint(
            "source", "condition", "indicator", "definition_version", "version", name="uq_published_models_version"
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    source: str = Field(max_length=200)
    published: dt.date
    period: str = Field(max_length=40)
    condition: str = Field(max_length=64, index=True)
    indicator: str = Field(max_length=64)
    definition_version: str = Field(max_length=20)
    link: str = Field(max_length=20)
    version: int
    file_name: str = Field(max_length=500)
    sha256: str = Field(max_length=64)
    content: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    imported_by: str = Field(default="", max_length=200)
    imported_at: dt.datetime  # UTC


# --- the improvement meeting's record (vbhc.minutes) ---------------------------------------------------------
class MeetingRecord(SQLModel, table=True):
    """What a condition team's meeting on one date decided: who (roles, not people) was there. Recording the same
    meeting again adds its next version (unique (meeting_id, version), as the improvement items): nothing is
    updated or deleted, and two people recording the same meeting at once cannot both win."""

    __tablename__ = "meeting_records"
    __table_args__ = (
        UniqueConstraint("meeting_id", "version", name="uq_meeting_records_version"),
        Index("ix_meeting_records_condition", "condition", "held_on"),
    )

    id: int | None = Field(default=None, primary_key=True)
    meeting_id: str = Field(max_length=40)  # the same for every version of one meeting (condition, unit, date)
    version: int
    condition: str = Field(max_length=64)
    unit: str = Field(default="", max_length=200)  # "" = every unit
    held_on: dt.date
    roles_present: str = Field(default="[]", sa_column=Column(Text, nullable=False, default="[]"))  # JSON list
    recorded_by: str = Field(max_length=200)
    recorded_roles: str = Field(default="", max_length=200)
    recorded_at: dt.datetime  # UTC

    @property
    def roles(self) -> list[str]:
        return list(json.loads(self.roles_present or "[]"))


class MeetingDecision(SQLModel, table=True):
    """The decision a meeting took on one agenda item (a signal, action or target at the version discussed)."""

    __tablename__ = "meeting_decisions"
    __table_args__ = (UniqueConstraint("record_id", "item_id", name="uq_meeting_decisions_item"),)

    id: int | None = Field(default=None, primary_key=True)
    record_id: int = Field(foreign_key="meeting_records.id", index=True)
    position: int  # order on the agenda
    section: str = Field(max_length=20)  # vbhc.minutes.Section
    item_id: str = Field(max_length=40)  # an improvement item (S-, A-, T-)
    item_version: int  # the version the meeting saw
    decision: str = Field(max_length=20)  # vbhc.minutes.ItemDecision
    note: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))


#: Registry tables in import (dependency) order.
REGISTRY_TABLES = ("units", "care_cycles", "clinical_outcomes", "prom_responses", "costs", "prem_responses")
