"""The record of an improvement meeting (issue 14, item 4): the date, the roles present and, per agenda item, what
the meeting decided (a choice from ItemDecision and a note), so the next meeting starts from what was decided.

Why it is kept this way:
- No patient data: an agenda item is named by its improvement item id (signal, action or target) and the version
  the meeting saw; roles present are roles ("care team", "surgeon"), not people.
- Nothing is deleted or overwritten: recording the same meeting (condition, unit, date) again adds its next
  version, which names the version it was based on; a recording that lands after someone else's is refused with
  their name and time and nothing is written. A unique (meeting_id, version) key decides between two processes.
- Role rules here, not only on the page: the condition's care team and the quality directorate record (a care
  team limited to some hospitals: the meetings of its hospitals' units); a manager reads the meetings of their own
  units, without the teams' notes (as vbhc.improvement shows items status only), and so does a care team limited to
  some hospitals read another hospital's meetings (vbhc.access.may_edit_improvement, may_read_improvement).
- Every recording is audited ("edit"), in the same transaction as the record; a refusal writes nothing.
- "Since the last meeting" (vbhc.agenda) is the date of the last recorded meeting when there is one.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, and_, func, insert, select
from sqlalchemy.exc import IntegrityError

from vbhc import audit, improvement, models
from vbhc.access import Permission, Role, Viewer, may_read_improvement, may_see_unit, may_view_condition, require
from vbhc.catalog import Catalog, default_catalog
from vbhc.i18n import t
from vbhc.improvement import ALL_UNITS, FINISHED, ImprovementError, Label
from vbhc.registry import unit_parts

if TYPE_CHECKING:
    from vbhc.agenda import Agenda

__all__ = [
    "STANDARD_ROLES",
    "AgendaItem",
    "Decided",
    "ItemDecision",
    "Meeting",
    "MeetingConflict",
    "MinutesError",
    "Section",
    "agenda_items",
    "decision_label",
    "last_meeting_date",
    "meeting",
    "meetings",
    "record_meeting",
    "role_label",
    "versions_seen",
]

MAX_NOTE_CHARS = improvement.MAX_TEXT_CHARS
MAX_ROLES = 20
#: Roles present that the page offers as choices (the dashboard's own roles, translated as role.<name>); any other
#: role present ("surgeon") is kept as typed.
STANDARD_ROLES = (Role.CARE_TEAM.value, Role.QUALITY.value, Role.MANAGER.value)


class Section(StrEnum):
    """Where an item stood on the agenda (the minutes group the decisions by it)."""

    NEW_SIGNAL = "new_signal"
    OVERDUE_SIGNAL = "overdue_signal"
    OPEN_SIGNAL = "open_signal"
    OVERDUE_ACTION = "overdue_action"
    TARGET_NOT_MET = "target_not_met"
    ACTION = "action"


class ItemDecision(StrEnum):
    """What the meeting decided about an agenda item. The three a signal can get (improvement.Decision) share its
    values and labels; the others are about the meeting's own course."""

    NOTED = "noted"  # discussed, nothing changes
    NO_ACTION = improvement.Decision.NO_ACTION.value
    ACTION = improvement.Decision.ACTION.value
    ESCALATE = improvement.Decision.ESCALATE.value
    DEFERRED = "deferred"  # on the next meeting's agenda
    CLOSED = "closed"  # e.g. an action done, a target reached


_SIGNAL_DECISIONS = frozenset(d.value for d in improvement.Decision)


def decision_label(value: str, lang: str) -> str:
    """The decision in the reader's words (a signal's decision with improvement's own label)."""
    prefix = "improvement.decision" if value in _SIGNAL_DECISIONS else "minutes.decision"
    return t(f"{prefix}_{value}", lang)


def role_label(role: str, lang: str) -> str:
    """A role present in the reader's words: a standard role translated, any other as the meeting typed it."""
    return t(f"role.{role}", lang) if role in STANDARD_ROLES else role


class MinutesError(ImprovementError):
    """A refused meeting record; the message key is minutes.error_<key> (or an improvement.error_<key> shared with
    the improvement items, such as empty or too_long), shown in the viewer's language."""

    _OWN = frozenset({"conflict", "future_date", "duplicate_item", "not_found", "wrong_condition", "no_roles"})

    def message(self, lang: str) -> str:
        if self.key not in self._OWN:
            return super().message(lang)
        shown = {k: v.text(lang) if isinstance(v, Label) else v for k, v in self.values.items()}
        if isinstance(self.values.get("at"), dt.datetime):
            from vbhc.i18n import fmt_datetime

            shown["at"] = fmt_datetime(self.values["at"], lang)
        if isinstance(self.values.get("date"), dt.date):
            from vbhc.i18n import fmt_date

            shown["date"] = fmt_date(self.values["date"], lang)
        return t(f"minutes.error_{self.key}", lang, **shown)


class MeetingConflict(improvement.EditConflict, MinutesError):
    """improvement.EditConflict for a meeting record: someone recorded this meeting again after the version the
    recorder saw; nothing was written. Worded as minutes.error_conflict (the meeting's date, not an item id)."""

    @staticmethod
    def facts(current: models.MeetingRecord) -> dict[str, Any]:
        return {
            "date": current.held_on,
            "version": current.version,
            "user": current.recorded_by,
            "at": current.recorded_at,
        }


@dataclass(frozen=True)
class AgendaItem:
    """One item the meeting can decide on: the improvement item and the version the agenda showed."""

    section: str
    item: Any  # models.ImprovementSignal | ImprovementAction | ImprovementTarget

    @property
    def item_id(self) -> str:
        return self.item.item_id


@dataclass(frozen=True)
class Decided:
    """A decision as the page (or a caller) hands it to record_meeting."""

    item_id: str
    decision: ItemDecision | str
    note: str = ""
    section: Section | str = Section.OPEN_SIGNAL


@dataclass(frozen=True)
class Meeting:
    """One version of a meeting's record with its decisions in agenda order."""

    record: models.MeetingRecord
    decisions: list[models.MeetingDecision] = field(default_factory=list)

    @property
    def meeting_id(self) -> str:
        return self.record.meeting_id

    @property
    def version(self) -> int:
        return self.record.version

    @property
    def held_on(self) -> dt.date:
        return self.record.held_on


def agenda_items(agenda: Agenda) -> list[AgendaItem]:
    """The items of an agenda (vbhc.agenda) a meeting decides on, each once, in the order they are discussed: new
    and overdue signals, the other open signals, overdue actions, targets not met, the other open actions."""
    ordered: list[tuple[Section, Iterable[Any]]] = [
        (Section.NEW_SIGNAL, agenda.new_signals),
        (Section.OVERDUE_SIGNAL, agenda.overdue.signals),
        (Section.OPEN_SIGNAL, agenda.open_signals),
        (Section.OVERDUE_ACTION, agenda.overdue.actions),
        (Section.TARGET_NOT_MET, [r.target for r in agenda.targets if r.met is False]),
        (Section.ACTION, [a for a in agenda.actions if a.status not in FINISHED]),
    ]
    seen: set[str] = set()
    out = []
    for section, items in ordered:
        for item in items:
            if item.item_id not in seen:
                seen.add(item.item_id)
                out.append(AgendaItem(str(section), item))
    return out


# --------------------------------------------------------------------------------------------- writing
def _meeting_id(condition: str, unit: str, held_on: dt.date) -> str:
    """The same id for every recording of one meeting, so the unique key catches two first recordings too."""
    digest = hashlib.sha256(f"{condition}|{unit}|{held_on.isoformat()}".encode()).hexdigest()
    return "M-" + digest[:12]


def _roles(roles_present: Iterable[str]) -> list[str]:
    out: list[str] = []
    for role in roles_present:
        text = "" if role is None else str(role).strip()
        if len(text) > 100:
            raise MinutesError("too_long", field=Label("minutes.field_roles"), count=100)
        if text and text not in out:
            out.append(text)
    if not out:
        raise MinutesError("no_roles")
    if len(out) > MAX_ROLES:
        raise MinutesError("too_long", field=Label("minutes.field_roles"), count=MAX_ROLES)
    return out


def _latest_record(conn: Any, meeting_id: str) -> models.MeetingRecord | None:
    table = models.MeetingRecord.__table__
    row = (
        conn.execute(select(table).where(table.c.meeting_id == meeting_id).order_by(table.c.version.desc()).limit(1))
        .mappings()
        .first()
    )
    return None if row is None else models.MeetingRecord(**dict(row))


def record_meeting(
    engine: Engine,
    viewer: Viewer,
    condition: str,
    held_on: dt.date,
    roles_present: Sequence[str],
    decisions: Sequence[Decided],
    *,
    unit: str = ALL_UNITS,
    based_on: int = 0,
    today: dt.date | None = None,
    catalog: Catalog | None = None,
) -> Meeting:
    """Record what the meeting of `condition` (and `unit`) on `held_on` decided. `based_on` is the version of this
    meeting's record the viewer saw (0: none yet); a later one refuses the recording (MeetingConflict).
    Every decided item must be an improvement item of the condition the viewer may read; its current version is
    kept with the decision. All or nothing: a refusal writes no row."""
    catalog = catalog or default_catalog()
    unit = "" if unit is None else str(unit).strip()
    require(
        viewer,
        Permission.EDIT_IMPROVEMENT,
        engine=engine,
        condition=condition,
        unit=unit or None,
        what="meeting record",
    )
    if condition not in catalog.conditions:
        raise ImprovementError("unknown_condition", condition=condition)
    held_on = improvement.checked_date(held_on, "held_on")
    if held_on > (today or dt.date.today()):
        raise MinutesError("future_date", date=held_on)
    roles = _roles(roles_present)
    if len(unit) > 200:
        raise MinutesError("too_long", field="unit", count=200)
    improvement.checked_unit(engine, unit, condition)  # H99 or h01 would be the meeting of no unit
    rows = []
    seen: set[str] = set()
    for position, d in enumerate(decisions):
        item_id = str(d.item_id)
        if item_id in seen:
            raise MinutesError("duplicate_item", item=item_id)
        seen.add(item_id)
        choice = improvement.checked_choice(ItemDecision, d.decision, "decision")
        section = improvement.checked_choice(Section, d.section, "section")
        note = improvement.checked_text(d.note, Label("minutes.field_note"), limit=MAX_NOTE_CHARS)
        versions = improvement.history(engine, viewer, item_id)  # ItemNotFound when missing or not visible
        if versions[-1].condition != condition:
            raise MinutesError("wrong_condition", item=item_id, condition=condition)
        rows.append(
            {
                "position": position,
                "section": section,
                "item_id": item_id,
                "item_version": versions[-1].version,
                "decision": choice,
                "note": note,
            }
        )
    meeting_id = _meeting_id(condition, unit, held_on)
    records, marks = models.MeetingRecord.__table__, models.MeetingDecision.__table__
    user, user_roles = audit.actor_fields(viewer)

    def work(conn: Any) -> Meeting:
        current = _latest_record(conn, meeting_id)
        version = 0 if current is None else current.version
        if version != int(based_on):
            raise MeetingConflict(current, int(based_on))
        record = {
            "meeting_id": meeting_id,
            "version": version + 1,
            "condition": condition,
            "unit": unit,
            "held_on": held_on,
            "roles_present": json.dumps(roles, ensure_ascii=False),
            "recorded_by": user[:200],
            "recorded_roles": user_roles[:200],
            "recorded_at": dt.datetime.now(dt.UTC),
        }
        record_id = conn.execute(insert(records).values(**record).returning(records.c.id)).scalar_one()
        for row in rows:
            conn.execute(insert(marks).values(record_id=record_id, **row))
        audit.record(
            conn,
            viewer,
            "edit",
            condition=condition,
            unit=unit or None,
            detail={"what": "meeting", "item": meeting_id, "version": version + 1, "decisions": len(rows)},
        )
        saved = models.MeetingRecord(id=record_id, **record)
        return Meeting(saved, [models.MeetingDecision(record_id=record_id, **r) for r in rows])

    try:
        with engine.begin() as conn:
            return work(conn)
    except IntegrityError:  # another process recorded this version of the meeting first: theirs stands
        with engine.connect() as conn:
            winner = _latest_record(conn, meeting_id)
        if winner is None:
            raise
        raise MeetingConflict(winner, int(based_on)) from None


# --------------------------------------------------------------------------------------------- reading
def _visible(viewer: Viewer, record: models.MeetingRecord) -> bool:
    if not may_view_condition(viewer, record.condition):
        return False
    if record.unit == ALL_UNITS:
        return True
    hospital, department = unit_parts(record.unit)
    return may_see_unit(viewer, record.condition, hospital, department)


def _with_decisions(engine: Engine, viewer: Viewer, records: list[models.MeetingRecord]) -> list[Meeting]:
    if not records:
        return []
    table = models.MeetingDecision.__table__
    by_record: dict[int, list[models.MeetingDecision]] = {r.id: [] for r in records}
    with engine.connect() as conn:
        rows = conn.execute(
            select(table).where(table.c.record_id.in_(list(by_record))).order_by(table.c.record_id, table.c.position)
        ).mappings()
        for row in rows:
            by_record[row["record_id"]].append(models.MeetingDecision(**dict(row)))
    out = []
    for record in records:
        decided = by_record[record.id]
        if not may_read_improvement(viewer, record.condition, record.unit):  # status only: no team's notes
            decided = [d.model_copy(update={"note": ""}) for d in decided]
        out.append(Meeting(record, decided))
    return out


def meetings(engine: Engine, viewer: Viewer, condition: str, *, unit: str | None = None) -> list[Meeting]:
    """The latest version of every recorded meeting of `condition` the viewer may read, newest first; `unit` keeps
    the meetings of that unit and those of every unit."""
    require(viewer, Permission.VIEW_CONDITION, engine=engine, condition=condition, what="meetings")
    table = models.MeetingRecord.__table__
    last = (
        select(table.c.meeting_id, func.max(table.c.version).label("version"))
        .where(table.c.condition == condition)
        .group_by(table.c.meeting_id)
        .subquery()
    )
    query = select(table).join(last, and_(table.c.meeting_id == last.c.meeting_id, table.c.version == last.c.version))
    if unit is not None:
        query = query.where(table.c.unit.in_([unit, ALL_UNITS]))
    query = query.order_by(table.c.held_on.desc(), table.c.id.desc())
    with engine.connect() as conn:
        records = [models.MeetingRecord(**dict(r)) for r in conn.execute(query).mappings()]
    return _with_decisions(engine, viewer, [r for r in records if _visible(viewer, r)])


def meeting(engine: Engine, viewer: Viewer, meeting_id: str, version: int | None = None) -> Meeting:
    """One meeting's record (the latest version, or `version`: earlier ones stay readable)."""
    table = models.MeetingRecord.__table__
    query = select(table).where(table.c.meeting_id == str(meeting_id))
    query = query.where(table.c.version == int(version)) if version is not None else query
    with engine.connect() as conn:
        row = conn.execute(query.order_by(table.c.version.desc()).limit(1)).mappings().first()
    if row is None:
        raise MinutesError("not_found", item=str(meeting_id))
    record = models.MeetingRecord(**dict(row))
    require(viewer, Permission.VIEW_CONDITION, engine=engine, condition=record.condition, what="meetings")
    if not _visible(viewer, record):
        raise MinutesError("not_found", item=str(meeting_id))
    return _with_decisions(engine, viewer, [record])[0]


def last_meeting_date(
    engine: Engine, viewer: Viewer, condition: str, *, unit: str | None = None, on_or_before: dt.date | None = None
) -> dt.date | None:
    """The date of the last recorded meeting of `condition` for `unit` (or for every unit), up to `on_or_before`;
    None when none is recorded."""
    dates = [
        m.held_on
        for m in meetings(engine, viewer, condition, unit=ALL_UNITS if unit is None else unit)
        if on_or_before is None or m.held_on <= on_or_before
    ]
    return max(dates, default=None)


#: At most this many recorded meeting dates per condition are prepared ahead (recorded_since_dates), newest first:
#: each is a view as it was then per unit level, a case-mix fit each
RECORDED_SINCE_DATES = 8


def recorded_since_dates(engine: Engine, condition: str, *, today: dt.date | None = None) -> list[dt.date]:
    """The dates the team pages of `condition` compare with once meetings are recorded (vbhc.meeting.since_date,
    SINCE_RECORDED): for each unit its last meeting up to today, or the last one of every unit when that is
    later; newest first, at most RECORDED_SINCE_DATES. For the preparation of the views as they were then
    (vbhc.results.as_of_dates) by `vbhc import` and the server, which read for no viewer: only dates, never shown."""
    today = today or dt.date.today()
    table = models.MeetingRecord.__table__
    query = (
        select(table.c.unit, func.max(table.c.held_on))
        .where(table.c.condition == condition, table.c.held_on <= today)
        .group_by(table.c.unit)
    )
    with engine.connect() as conn:
        last = {str(unit or ""): held for unit, held in conn.execute(query)}
    every = last.pop(ALL_UNITS, None)
    dates = {max(held, every) if every is not None else held for held in last.values()}
    dates |= {every} if every is not None else set()
    return sorted(dates, reverse=True)[:RECORDED_SINCE_DATES]


def versions_seen(found: Sequence[Meeting], unit: str = ALL_UNITS) -> Mapping[str, int]:
    """The version of each shown meeting of `unit` by its date (ISO): what a recording of that date is based on."""
    return {m.held_on.isoformat(): m.version for m in found if m.record.unit == unit}
