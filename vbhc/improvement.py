"""The improvement cycle kept with the numbers: targets and norms, signals with what the team concluded, and
improvement actions (issue 14), so next month's meeting starts from what was decided instead of from zero.

Why it is stored this way:
- Nothing is deleted or overwritten. Every edit adds the next version of the item (item id + version number, who,
  when, what kind of change); `history` returns every version, and the current state is the highest version.
- Two people editing the same item at once: an edit names the version it was based on. When another edit landed
  first, EditConflict names who changed it and when, and nothing is written. The database enforces this with a
  unique (item_id, version) key, so two processes that both checked the version cannot both win.
- Role rules are enforced here, not only on the pages: a care team edits its own conditions' team goals,
  explanations, decisions and actions (a care team limited to some hospitals: of its hospitals' units only, and
  reads other hospitals' items status only; vbhc.access.may_edit_improvement); the quality directorate also sets
  external norms and sees everything; managers read the status of their own units' items only (the teams' free
  texts are left out for them).
- Every write is audited ("edit" events, in the same transaction as the write).
- Signals are detected on the persisted indicator results of a dataset version (vbhc.results): each detection run
  is stored with the units x indicators it flagged, so "new since the last meeting" is a comparison of stored
  states, and a flag that persists on the next dataset version is attributed to the signal already open for it.

Errors are ImprovementError (a ValueError) with a message key in the i18n catalogs ([improvement] error_*), so a
page shows them in the viewer's language; str(error) is the English text.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
import uuid
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypeVar

import numpy as np
from sqlalchemy import Connection, Engine, and_, func, insert, select
from sqlalchemy.exc import IntegrityError

from vbhc import audit, models
from vbhc.access import (
    AccessDenied,
    Permission,
    Role,
    Viewer,
    may_edit_improvement,
    may_read_improvement,
    may_see_unit,
    may_view_condition,
    require,
)
from vbhc.catalog import PROPORTION_KINDS, Catalog, default_catalog
from vbhc.i18n import fmt_date, fmt_datetime, t
from vbhc.ingest.problems import EARLIEST_DATE, case_twins, says_missing
from vbhc.registry import UNIT_LEVELS, condition_of, unit_ids, unit_parts

__all__ = [
    "ALL_UNITS",
    "ActionStatus",
    "Change",
    "Decision",
    "Direction",
    "EditConflict",
    "Explanation",
    "Flag",
    "ImprovementError",
    "IndicatorName",
    "ItemKind",
    "ItemNotFound",
    "Label",
    "Overdue",
    "Rule",
    "SecondOfKey",
    "Side",
    "SignalStatus",
    "TargetKind",
    "Write",
    "action_key",
    "actions",
    "check_one_per_key",
    "check_values",
    "checked_choice",
    "checked_date",
    "checked_text",
    "checked_unit",
    "create_action",
    "current_version",
    "decide_signal",
    "detect_signals",
    "explain_signal",
    "flags_in",
    "history",
    "in_force",
    "item_kind",
    "new_signals_since",
    "norm_involved",
    "overdue",
    "record_detection",
    "retire_target",
    "set_target",
    "signals",
    "target_key",
    "target_met",
    "targets",
    "unit_refusal",
    "update_action",
    "update_target",
    "write_versions",
]


# --------------------------------------------------------------------------------------------- vocabulary
class ItemKind(StrEnum):
    TARGET = "target"
    SIGNAL = "signal"
    ACTION = "action"


class TargetKind(StrEnum):
    TEAM_GOAL = "team_goal"  # the care team's own goal
    EXTERNAL_NORM = "external_norm"  # e.g. a national registry's norm; quality directorate only, with its source


class Direction(StrEnum):
    """Which side of the target value meets it."""

    AT_MOST = "at_most"
    AT_LEAST = "at_least"


class Rule(StrEnum):
    """What flagged a unit x indicator."""

    FUNNEL_998 = "funnel_998"  # outside the 99.8% funnel limits
    SPC = "spc"  # special-cause variation at the SPC chart's last point
    CUSUM = "cusum"  # CUSUM signal (not detected automatically yet; can be recorded)


class Side(StrEnum):
    BETTER = "better"
    WORSE = "worse"


class SignalStatus(StrEnum):
    NEW = "new"
    EXPLAINED = "explained"
    DECIDED = "decided"


class Explanation(StrEnum):
    DATA_ERROR = "data_error"
    CASE_MIX = "case_mix"  # case mix not captured by the model
    REAL = "real"  # a real difference in care


class Decision(StrEnum):
    NO_ACTION = "no_action"
    ACTION = "action"
    ESCALATE = "escalate"  # to the quality directorate


class ActionStatus(StrEnum):
    PLANNED = "planned"
    IN_PROGRESS = "in_progress"
    DONE = "done"
    STOPPED = "stopped"


class Change(StrEnum):
    """What a version did to its item (shown in the history)."""

    CREATED = "created"
    DETECTED = "detected"
    EDITED = "edited"
    EXPLAINED = "explained"
    DECIDED = "decided"
    RETIRED = "retired"
    IMPORTED = "imported"


#: The unit of a target or action that holds for every unit of the condition.
ALL_UNITS = ""
#: Free texts a team writes about its own work; a manager (status only) does not get them.
STATUS_ONLY_HIDDEN = ("explanation_text", "expected_effect", "changed_by")  # the team's texts and people
#: Action statuses after which an action can no longer be overdue.
FINISHED = (ActionStatus.DONE, ActionStatus.STOPPED)
MAX_TEXT_CHARS = 4000
_PREFIX = {ItemKind.TARGET: "T-", ItemKind.SIGNAL: "S-", ItemKind.ACTION: "A-"}
_MODEL: dict[ItemKind, Any] = {
    ItemKind.TARGET: models.ImprovementTarget,
    ItemKind.SIGNAL: models.ImprovementSignal,
    ItemKind.ACTION: models.ImprovementAction,
}
#: Fields of each kind that identify what the item is about: an edit cannot move an item to another condition.
_FIXED = {
    ItemKind.TARGET: ("condition",),
    ItemKind.SIGNAL: ("condition", "level", "unit", "indicator", "rule", "side", "detected_version", "detected_at"),
    ItemKind.ACTION: ("condition",),
}
_VERSION_FIELDS = ("id", "item_id", "version", "change", "changed_by", "changed_roles", "changed_at")

Item = models.ImprovementTarget | models.ImprovementSignal | models.ImprovementAction
T = TypeVar("T")


# --------------------------------------------------------------------------------------------- errors
@dataclass(frozen=True)
class Label:
    """A value of an error message that is itself a message (a status name), translated with the message."""

    key: str

    def text(self, lang: str) -> str:
        return t(self.key, lang)


@dataclass(frozen=True)
class IndicatorName:
    """An indicator in an error message by its name in the reader's language (the catalog's label, not its id)."""

    condition: str
    indicator: str

    def text(self, lang: str) -> str:
        try:
            return default_catalog().condition(self.condition).indicator(self.indicator).label(lang)
        except KeyError:
            return self.indicator


class ImprovementError(ValueError):
    """A refused change to an improvement item. `key` names the message ([improvement] error_<key> in the i18n
    catalogs) and `values` fill it, so the page shows it in the viewer's language."""

    def __init__(self, key: str, **values: Any) -> None:
        self.key, self.values = key, values
        super().__init__(self.message("en"))

    def message(self, lang: str) -> str:
        shown = {
            k: fmt_datetime(v, lang)
            if isinstance(v, dt.datetime)
            else fmt_date(v, lang)
            if isinstance(v, dt.date)
            else v.text(lang)
            if isinstance(v, Label | IndicatorName)
            else v
            for k, v in self.values.items()
        }
        return t(f"improvement.error_{self.key}", lang, **shown)


class SecondOfKey(ImprovementError):
    """check_one_per_key's refusal: `position` is the place, among the versions just written, of the one that
    makes a second active target or open action, so a workbook's import names the row that wrote it."""

    def __init__(self, key: str, position: int, **values: Any) -> None:
        self.position = position
        super().__init__(key, **values)


class ItemNotFound(ImprovementError):
    def __init__(self, item_id: str) -> None:
        super().__init__("not_found", item=item_id)


class EditConflict(ImprovementError):
    """Someone else's edit landed after the version this edit was based on; nothing was written. `current` is
    their version, so the page can show it beside the refused change. One refusal for every versioned record: a
    meeting record's (vbhc.minutes.MeetingConflict) names its own facts and words its own message."""

    def __init__(self, current: Any, based_on: int) -> None:
        self.current, self.based_on = current, based_on
        super().__init__("conflict", based_on=based_on, **self.facts(current))

    @staticmethod
    def facts(current: Item) -> dict[str, Any]:
        """What the message says about the version that landed first: which item, its version, who and when."""
        return {
            "item": current.item_id,
            "version": current.version,
            "user": current.changed_by,
            "at": current.changed_at,
        }


class _LostRace(Exception):
    """The unique (item_id, version) key refused an insert: another process wrote that version first."""

    def __init__(self, kind: ItemKind, item_id: str, based_on: int) -> None:
        self.kind, self.item_id, self.based_on = kind, item_id, based_on


# --------------------------------------------------------------------------------------------- versions
def item_kind(item_id: str) -> ItemKind:
    for kind, prefix in _PREFIX.items():
        if str(item_id).startswith(prefix):
            return kind
    raise ItemNotFound(str(item_id))


def _new_item_id(kind: ItemKind) -> str:
    """A new item's id: its kind's prefix and 12 random hex digits, never a run of 9 digits or more. Why: a
    message or log shows such a run as a possible patient identifier (vbhc.ingest.problems: a BSN), so about one
    id in 20 read "«hidden: patient identifier»" in the workbook's problems and could not be found."""
    while True:
        digits = uuid.uuid4().hex[:12]
        if not _DIGIT_RUN.search(digits):
            return _PREFIX[kind] + digits


#: A run of digits a message would hide as a possible patient identifier (vbhc.ingest.problems._holds_identifier)
_DIGIT_RUN = re.compile(r"\d{9,}")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _as_item(kind: ItemKind, row: Mapping[str, Any]) -> Item:
    return _MODEL[kind](**dict(row))


def _latest(conn: Connection, kind: ItemKind, item_id: str) -> Item | None:
    table = _MODEL[kind].__table__
    row = (
        conn.execute(select(table).where(table.c.item_id == item_id).order_by(table.c.version.desc()).limit(1))
        .mappings()
        .first()
    )
    return None if row is None else _as_item(kind, row)


def _current(conn: Connection, kind: ItemKind, *where: Any) -> list[Item]:
    """The latest version of every item of `kind` (matching `where` on that latest version)."""
    table = _MODEL[kind].__table__
    last = select(table.c.item_id, func.max(table.c.version).label("version")).group_by(table.c.item_id).subquery()
    query = (
        select(table)
        .join(last, and_(table.c.item_id == last.c.item_id, table.c.version == last.c.version))
        .where(*where)
        .order_by(table.c.id)
    )
    return [_as_item(kind, row) for row in conn.execute(query).mappings()]


def _insert_version(
    conn: Connection,
    actor: Viewer | str,
    kind: ItemKind,
    item_id: str,
    version: int,
    values: Mapping[str, Any],
    change: Change,
) -> Item:
    user, roles = audit.actor_fields(actor)
    row = dict(values) | {
        "item_id": item_id,
        "version": version,
        "change": str(change),
        "changed_by": user[:200],
        "changed_roles": roles[:200],
        "changed_at": _now(),
    }
    row.pop("id", None)
    table = _MODEL[kind].__table__
    try:
        new_id = conn.execute(insert(table).values(**row).returning(table.c.id)).scalar_one()
    except IntegrityError:
        raise _LostRace(kind, item_id, version - 1) from None
    audit.record(
        conn,
        actor,
        "edit",
        condition=row.get("condition"),
        unit=row.get("unit") or None,
        detail={"what": str(kind), "item": item_id, "version": version, "change": str(change)},
    )
    return _as_item(kind, row | {"id": new_id})


def _transaction(engine: Engine, work: Callable[[Connection], T]) -> T:
    """Run `work` in one transaction; a version lost to a concurrent writer becomes EditConflict (rolled back)."""
    try:
        with engine.begin() as conn:
            return work(conn)
    except _LostRace as lost:
        with engine.connect() as conn:
            winner = _latest(conn, lost.kind, lost.item_id)
        if winner is None:  # the item itself was never written: only a clash of two new ids, practically never
            raise ImprovementError("write_failed", item=lost.item_id) from None
        raise EditConflict(winner, lost.based_on) from None


def _edit(
    conn: Connection,
    actor: Viewer,
    item_id: str,
    based_on: int,
    check: Callable[[Item], dict[str, Any]],
    change: Change,
) -> Item:
    """The next version of `item_id` from the changes `check` returns for the current version; EditConflict when
    the current version is not `based_on`."""
    kind = item_kind(item_id)
    current = _latest(conn, kind, item_id)
    if current is None:
        raise ItemNotFound(item_id)
    if current.version != int(based_on):
        if not may_edit_improvement(actor, current.condition, current.unit):
            # who may not edit the item is refused as such (check: AccessDenied, audited), whatever version a form
            # names: the conflict names the item's last editor (an e-mail address) and carries its free texts
            check(current)
            raise ItemNotFound(item_id)
        raise EditConflict(current, int(based_on))
    changes = check(current)
    for name in _FIXED[kind]:
        if name in changes and changes[name] != getattr(current, name):
            raise ImprovementError("fixed_field", item=item_id, field=name)
    values = {k: v for k, v in current.model_dump().items() if k not in _VERSION_FIELDS} | changes
    return _insert_version(conn, actor, kind, item_id, current.version + 1, values, change)


def _read(engine: Engine, item_id: str) -> Item:
    with engine.connect() as conn:
        current = _latest(conn, item_kind(item_id), item_id)
    if current is None:
        raise ItemNotFound(item_id)
    return current


# --------------------------------------------------------------------------------------------- checks
def _may_edit(engine: Engine, viewer: Viewer, condition: str, unit: str | None, what: str) -> None:
    """AccessDenied (audited) unless the viewer may edit the items of `condition` and `unit` (ALL_UNITS: the whole
    condition), by vbhc.access.may_edit_improvement."""
    require(viewer, Permission.EDIT_IMPROVEMENT, engine=engine, condition=condition, unit=unit or None, what=what)


def _check_condition(condition: str, catalog: Catalog) -> str:
    if condition not in catalog.conditions:
        raise ImprovementError("unknown_condition", condition=condition)
    return condition


def _check_indicator(condition: str, indicator: str, catalog: Catalog) -> str:
    known = {i.id for i in catalog.condition(_check_condition(condition, catalog)).indicators}
    if indicator not in known:
        raise ImprovementError("unknown_indicator", condition=condition, indicator=indicator)
    return indicator


def checked_choice(enum: type[StrEnum], value: object, name: str) -> str:
    """One of the enum's values, or the one-line refusal naming the field (also for vbhc.minutes)."""
    try:
        return str(enum(str(value)))
    except ValueError:
        allowed = ", ".join(e.value for e in enum)
        raise ImprovementError("unknown_value", field=name, value=str(value), allowed=allowed) from None


def checked_text(value: object, name: str, *, required: bool = False, limit: int = MAX_TEXT_CHARS) -> str:
    """A stripped text within the length limit (required: not empty), else the one-line refusal."""
    text = "" if value is None else str(value).strip()
    if required and not text:
        raise ImprovementError("empty", field=name)
    if len(text) > limit:
        raise ImprovementError("too_long", field=name, count=limit)
    return text


#: A number as text the way a person writes it; float() alone also reads "1_000" or other scripts' digits
_NUMBER_TEXT = re.compile(r"\s*[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?\s*")


_DATE_TEXT = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _number(value: object, name: str) -> float:
    if value is None or (isinstance(value, str) and not value.strip()):  # was "value:  is not a number."
        raise ImprovementError("empty", field=name)
    if isinstance(value, str) and not _NUMBER_TEXT.fullmatch(value):
        # "n.v.t." or "-" for a missing value: the refusal says a missing value is an empty cell
        raise ImprovementError(
            "not_a_number_missing" if says_missing(value) else "not_a_number", field=name, value=value
        )
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ImprovementError("not_a_number", field=name, value=str(value)) from None
    if not np.isfinite(number):
        raise ImprovementError("not_a_number", field=name, value=str(value))
    return number


def checked_date(value: object, name: str) -> dt.date:
    """A date from a date, a datetime or ISO text, else the one-line refusal naming the field. A date before
    EARLIEST_DATE is refused as the registry's dates are: 1900-01-01 is Excel's 'no date' (a cleared date cell
    in the actions workbook) or a typo, and an action started then would draw its effect over every period."""
    if isinstance(value, dt.datetime):
        date = value.date()
    elif isinstance(value, dt.date):
        date = value
    else:
        text = str(value).strip()
        try:
            # year first as written (2026-03-31); fromisoformat alone also reads 20260331 and the ISO week 2026-W05
            if not _DATE_TEXT.fullmatch(text):
                raise ValueError(text)
            date = dt.date.fromisoformat(text)
        except ValueError:
            raise ImprovementError("not_a_date", field=name, value=str(value)) from None
    if date < EARLIEST_DATE:
        raise ImprovementError("date_too_early", field=name, value=date.isoformat(), floor=EARLIEST_DATE.isoformat())
    return date


def _unit(value: object) -> str:
    return checked_text(value, "unit", limit=200)


def unit_refusal(unit: str, condition: str, known: Collection[str]) -> ImprovementError | None:
    """Why `unit` names no unit of the registry (None when it names one, or every unit): a hospital, a
    hospital/department or the condition's own team (condition@hospital) of the units in `known` (unit_ids). A
    code that differs from a known one only in case (h01 for H01) is named with the registry's spelling: a person
    reads the two as one unit, the database would keep two, and the item would show on neither unit's charts.
    The one check of every writer of a unit (targets, actions, their workbook import, meeting records)."""
    if unit == ALL_UNITS:
        return None
    team = condition_of(unit)
    label = unit
    if team is not None:
        label, department = unit_parts(unit)
        if team != condition or department is not None:  # another condition's team, or a team of a department
            return ImprovementError("unknown_unit")
    if label in known:
        return None
    twin = case_twins([label], known).get(label)
    if twin is not None:
        return ImprovementError("unit_case", known=f"{team}@{twin}" if team is not None else twin)
    return ImprovementError("unknown_unit")


def checked_unit(
    engine: Engine, unit: str, condition: str, current: Item | None = None, known: Collection[str] | None = None
) -> str:
    """`unit` when it names a unit the registry holds now (unit_refusal; `known`: unit_ids already read), else the
    refusal. A unit the item already has passes unread: an edit of its other fields does not depend on the units
    table."""
    if unit == ALL_UNITS or (current is not None and unit == current.unit):
        return unit
    if (error := unit_refusal(unit, condition, unit_ids(engine) if known is None else known)) is not None:
        raise error
    return unit


# --------------------------------------------------------------------------------------------- visibility
def _visible(viewer: Viewer, condition: str, unit: str, divisions: Mapping[tuple[str, str], str] | None = None) -> bool:
    if not may_view_condition(viewer, condition):
        return False
    if unit == ALL_UNITS:
        return True
    hospital, department = unit_parts(unit)
    division = (divisions or {}).get((hospital, department or ""))
    return may_see_unit(viewer, condition, hospital, department, division)


def _divisions(engine: Engine, viewer: Viewer) -> dict[tuple[str, str], str]:
    """(hospital, department) -> division, read only for a manager whose grant names divisions: their departments'
    items are theirs to read, as the departments' indicator rows are (vbhc.access.indicator_rows)."""
    if not any(s.divisions for s in viewer.scopes_for(Role.MANAGER)):
        return {}
    from vbhc.registry import units

    frame = units(engine)
    return {
        (str(h), str(d)): str(v)
        for h, d, v in zip(frame["hospital"], frame["department"], frame["division"], strict=True)
        if v is not None and not (isinstance(v, float) and np.isnan(v))
    }


def _as_shown(viewer: Viewer, item: Item) -> Item:
    """The item as the viewer may read it: status only (no team free texts) unless the viewer reads it in full
    (vbhc.access.may_read_improvement: a manager never; a care team limited to some hospitals not another
    hospital's)."""
    if may_read_improvement(viewer, item.condition, item.unit):
        return item
    hidden = {k: "" for k in STATUS_ONLY_HIDDEN if hasattr(item, k)}
    return item.model_copy(update=hidden) if hidden else item


def _readable(
    engine: Engine, viewer: Viewer, kind: ItemKind, condition: str | None, *where: Any, what: str
) -> list[Item]:
    table = _MODEL[kind].__table__
    if condition is not None:
        require(viewer, Permission.VIEW_CONDITION, engine=engine, condition=condition, what=what)
        where = (*where, table.c.condition == condition)
    with engine.connect() as conn:
        items = _current(conn, kind, *where)
    divisions = _divisions(engine, viewer)
    return [_as_shown(viewer, i) for i in items if _visible(viewer, i.condition, i.unit, divisions)]


def history(engine: Engine, viewer: Viewer, item_id: str) -> list[Item]:
    """Every version of an item, oldest first: who changed what and when (nothing is ever overwritten).
    ItemNotFound when there is none or the viewer may not see it, also for another condition's item (its refusal
    named the condition: an id told whether it was some other team's item, and of which condition)."""
    kind = item_kind(item_id)
    table = _MODEL[kind].__table__
    with engine.connect() as conn:
        rows = conn.execute(select(table).where(table.c.item_id == item_id).order_by(table.c.version)).mappings()
        versions = [_as_item(kind, r) for r in rows]
    if not versions:
        raise ItemNotFound(item_id)
    latest = versions[-1]
    try:
        require(
            viewer, Permission.VIEW_CONDITION, engine=engine, condition=latest.condition, what="history", item=item_id
        )
    except AccessDenied:  # audited as denied; the caller learns no more than of an id that does not exist
        raise ItemNotFound(item_id) from None
    if not _visible(viewer, latest.condition, latest.unit, _divisions(engine, viewer)):
        raise ItemNotFound(item_id)
    return [_as_shown(viewer, v) for v in versions]


# --------------------------------------------------------------------------------------------- targets
def _target_values(
    engine: Engine,
    viewer: Viewer,
    values: Mapping[str, Any],
    catalog: Catalog,
    current: Item | None = None,
    *,
    check_roles: bool = True,
    check_unit: bool = True,
) -> dict[str, Any]:
    """The checked values of a target version (`values` over the current version's); AccessDenied when the viewer
    may not write it (check_roles=False: the caller checks, as the spreadsheet import does per changed row), then
    ImprovementError when a new or changed unit is none of the registry's (check_unit=False: the caller checks)."""
    merged = ({} if current is None else current.model_dump()) | dict(values)
    condition = _check_condition(str(merged["condition"]), catalog)
    indicator = _check_indicator(condition, str(merged["indicator"]), catalog)
    kind = checked_choice(TargetKind, merged.get("kind") or TargetKind.TEAM_GOAL, "kind")
    direction = merged.get("direction")
    if direction in (None, ""):
        ind = next(i for i in catalog.condition(condition).indicators if i.id == indicator)
        direction = Direction.AT_LEAST if ind.direction == "higher" else Direction.AT_MOST
    out = {
        "condition": condition,
        "indicator": indicator,
        "unit": _unit(merged.get("unit", ALL_UNITS)),
        "kind": kind,
        "value": _number(merged.get("value"), "value"),
        "direction": checked_choice(Direction, direction, "direction"),
        "source": checked_text(merged.get("source"), "source"),
        "valid_from": checked_date(merged.get("valid_from") or dt.date.today(), "valid_from"),
        "active": bool(merged.get("active", True)),
    }
    ind = next(i for i in catalog.condition(condition).indicators if i.id == indicator)
    if ind.kind in PROPORTION_KINDS and not 0 <= out["value"] <= 1:
        # a rate is stored as a fraction (10% is 0.1), as the workbook export writes it: a rate of 10 is 1000%
        raise ImprovementError("not_a_proportion", field="value", value=f"{out['value']:g}")
    low, high = catalog.value_range(condition, ind)
    if not low <= out["value"] <= high:
        # a goal no unit can reach or miss (a stay of -2 days, an Oxford score of 60 on its 0-48 scale) is never
        # judged as meant: the board and the charts compare every value with it
        if math.isinf(high):
            raise ImprovementError("below_range", field="value", value=f"{out['value']:g}", low=f"{low:g}")
        raise ImprovementError(
            "out_of_range", field="value", value=f"{out['value']:g}", low=f"{low:g}", high=f"{high:g}"
        )
    if kind == TargetKind.EXTERNAL_NORM and not out["source"]:
        raise ImprovementError("norm_needs_source", indicator=indicator)
    if check_roles:
        _require_write(engine, viewer, ItemKind.TARGET, out, current)
    if check_unit:
        checked_unit(engine, out["unit"], condition, current)
    return out


def norm_involved(values: Mapping[str, Any], current: Item | None = None) -> bool:
    """Whether writing `values` over `current` sets or changes an external norm (quality directorate only)."""
    return values.get("kind") == TargetKind.EXTERNAL_NORM or (
        current is not None and getattr(current, "kind", None) == TargetKind.EXTERNAL_NORM
    )


def set_target(
    engine: Engine,
    viewer: Viewer,
    condition: str,
    indicator: str,
    value: float,
    *,
    kind: TargetKind | str = TargetKind.TEAM_GOAL,
    direction: Direction | str | None = None,
    unit: str = ALL_UNITS,
    source: str = "",
    valid_from: dt.date | None = None,
    catalog: Catalog | None = None,
) -> models.ImprovementTarget:
    """A new target for an indicator (all units, or one unit). The direction defaults to the indicator's own
    (lower is better: at most the value). An external norm needs its source and the quality directorate."""
    values = {
        "condition": condition,
        "indicator": indicator,
        "value": value,
        "kind": kind,
        "direction": direction,
        "unit": unit,
        "source": source,
        "valid_from": valid_from,
    }
    return _create(engine, viewer, ItemKind.TARGET, values, catalog)


def update_target(
    engine: Engine, viewer: Viewer, item_id: str, based_on: int, *, catalog: Catalog | None = None, **changes: Any
) -> models.ImprovementTarget:
    """The next version of a target with `changes` (value, direction, unit, source, valid_from, kind, indicator)."""
    return _update(engine, viewer, ItemKind.TARGET, item_id, based_on, changes, catalog)


def retire_target(engine: Engine, viewer: Viewer, item_id: str, based_on: int) -> models.ImprovementTarget:
    """A target no longer in force: a new version marked inactive (the old ones stay readable)."""
    _expect(item_id, ItemKind.TARGET)

    def check(current: Item) -> dict[str, Any]:
        # the role rules of an edit, not its values: a target stored before a value rule (a rate of 10, a stay of
        # -2 days, a date of 1900-01-01) must still be retirable, and is refused as written by every other edit
        _require_write(engine, viewer, ItemKind.TARGET, current.model_dump(), current)
        return {"active": False}

    return _transaction(engine, lambda conn: _edit(conn, viewer, item_id, based_on, check, Change.RETIRED))


def targets(
    engine: Engine,
    viewer: Viewer,
    condition: str | None = None,
    *,
    indicator: str | None = None,
    on: dt.date | None = None,
    active_only: bool = True,
) -> list[models.ImprovementTarget]:
    """Current targets the viewer may read; `on` keeps those valid on that date."""
    c = models.ImprovementTarget.__table__.c
    where = []
    if indicator is not None:
        where.append(c.indicator == indicator)
    if active_only:
        where.append(c.active.is_(True))
    if on is not None:
        where.append(c.valid_from <= on)
    return _readable(engine, viewer, ItemKind.TARGET, condition, *where, what="targets")


def in_force(found: Iterable[models.ImprovementTarget]) -> list[models.ImprovementTarget]:
    """Of targets valid on a date (targets(on=...)), the one in force per indicator, unit and kind: the latest
    valid_from (then the later item), as the charts draw it (vbhc.annotations.chart_targets). A goal followed by a
    new one from a later date no longer holds; the board judged both ('1 met, 1 not met' for one goal)."""
    found = list(found)
    latest: dict[tuple, models.ImprovementTarget] = {}
    for target in found:
        key = (target.condition, target.indicator, target.unit, str(target.kind))
        rank = (target.valid_from, target.id or 0)
        if key not in latest or rank > (latest[key].valid_from, latest[key].id or 0):
            latest[key] = target
    return [t for t in found if latest.get((t.condition, t.indicator, t.unit, str(t.kind))) is t]


def target_met(target: models.ImprovementTarget, value: float) -> bool | None:
    """Whether a value meets the target; None without a value (the assurance icon then says nothing)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    if not np.isfinite(number):
        return None
    return number <= target.value if target.direction == Direction.AT_MOST else number >= target.value


#: Fields an update may change, per kind (a misspelt field is a programming error, not silently ignored).
_EDITABLE = {
    ItemKind.TARGET: frozenset({"indicator", "unit", "kind", "value", "direction", "source", "valid_from", "active"}),
    ItemKind.ACTION: frozenset(
        {"unit", "title", "owner_role", "start", "due", "status", "indicators", "signals", "expected_effect"}
    ),
}


def _editable(kind: ItemKind, changes: Mapping[str, Any]) -> None:
    unknown = sorted(set(changes) - _EDITABLE[kind])
    if unknown:
        raise TypeError(
            f"cannot change {', '.join(unknown)} of a {kind}; editable: {', '.join(sorted(_EDITABLE[kind]))}"
        )


def _expect(item_id: str, kind: ItemKind) -> None:
    if item_kind(item_id) != kind:
        raise ItemNotFound(item_id)


# --------------------------------------------------------------------------------------------- signals
def explain_signal(
    engine: Engine, viewer: Viewer, item_id: str, based_on: int, explanation: Explanation | str, text: str = ""
) -> models.ImprovementSignal:
    """new/explained -> explained: the team's conclusion (data error, case mix not captured, real) with its text.
    A real difference needs a text: it is what the next meeting and the reports show beside the indicator."""
    _expect(item_id, ItemKind.SIGNAL)
    kind = checked_choice(Explanation, explanation, "explanation")
    body = checked_text(text, "explanation_text", required=kind == Explanation.REAL)

    def check(current: Item) -> dict[str, Any]:
        _may_edit(engine, viewer, current.condition, current.unit, "signal explanation")
        if current.status == SignalStatus.DECIDED:
            raise _bad_transition(item_id, current.status, SignalStatus.EXPLAINED)
        return {"status": str(SignalStatus.EXPLAINED), "explanation": kind, "explanation_text": body}

    return _transaction(engine, lambda conn: _edit(conn, viewer, item_id, based_on, check, Change.EXPLAINED))


def decide_signal(
    engine: Engine, viewer: Viewer, item_id: str, based_on: int, decision: Decision | str
) -> models.ImprovementSignal:
    """explained (or decided, to revise) -> decided: no action, an action, or escalation to the directorate. A
    signal is decided only after it is explained: the decision must rest on a conclusion."""
    _expect(item_id, ItemKind.SIGNAL)
    choice = checked_choice(Decision, decision, "decision")

    def check(current: Item) -> dict[str, Any]:
        _may_edit(engine, viewer, current.condition, current.unit, "signal decision")
        if current.status == SignalStatus.NEW:
            raise _bad_transition(item_id, current.status, SignalStatus.DECIDED)
        return {"status": str(SignalStatus.DECIDED), "decision": choice}

    return _transaction(engine, lambda conn: _edit(conn, viewer, item_id, based_on, check, Change.DECIDED))


def _bad_transition(item_id: str, status: str, to: SignalStatus) -> ImprovementError:
    return ImprovementError(
        "bad_transition",
        item=item_id,
        status=Label(f"improvement.status_{status}"),
        to=Label(f"improvement.status_{to}"),
    )


def signals(
    engine: Engine,
    viewer: Viewer,
    condition: str | None = None,
    *,
    indicator: str | None = None,
    unit: str | None = None,
    status: Iterable[SignalStatus | str] | None = None,
    open_only: bool = False,
) -> list[models.ImprovementSignal]:
    """Current signals the viewer may read (a manager: of their own units). Open = not yet decided."""
    c = models.ImprovementSignal.__table__.c
    where = []
    if indicator is not None:
        where.append(c.indicator == indicator)
    if unit is not None:
        where.append(c.unit == unit)
    if status is not None:
        where.append(c.status.in_([str(s) for s in status]))
    if open_only:
        where.append(c.status != str(SignalStatus.DECIDED))
    return _readable(engine, viewer, ItemKind.SIGNAL, condition, *where, what="signals")


def new_signals_since(
    engine: Engine, viewer: Viewer, condition: str, since: dt.datetime | dt.date
) -> list[models.ImprovementSignal]:
    """Signals first detected after `since` (the last meeting): a comparison of stored detections."""
    moment = since if isinstance(since, dt.datetime) else dt.datetime.combine(since, dt.time(), dt.UTC)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    c = models.ImprovementSignal.__table__.c
    return _readable(engine, viewer, ItemKind.SIGNAL, condition, c.detected_at > moment, what="signals")


# --------------------------------------------------------------------------------------------- actions
def _action_values(
    engine: Engine,
    viewer: Viewer,
    values: Mapping[str, Any],
    catalog: Catalog,
    current: Item | None = None,
    *,
    check_roles: bool = True,
    check_unit: bool = True,
) -> dict[str, Any]:
    """The checked values of an action version (`values` over the current version's); see _target_values."""
    merged = ({} if current is None else current.model_dump()) | dict(values)
    condition = _check_condition(str(merged["condition"]), catalog)
    unit = _unit(merged.get("unit", ALL_UNITS))
    if check_roles:
        _require_write(engine, viewer, ItemKind.ACTION, {"condition": condition, "unit": unit}, current)
    if check_unit:
        checked_unit(engine, unit, condition, current)
    linked = merged.get("indicators", "[]")
    indicators = json.loads(linked) if isinstance(linked, str) else list(linked or [])
    indicators = sorted({_check_indicator(condition, str(i), catalog) for i in indicators})
    linked = merged.get("signals", "[]")
    signal_ids = sorted({str(s) for s in (json.loads(linked) if isinstance(linked, str) else list(linked or []))})
    if signal_ids:
        c = models.ImprovementSignal.__table__.c
        with engine.connect() as conn:
            found = {s.item_id: s for s in _current(conn, ItemKind.SIGNAL, c.item_id.in_(signal_ids))}
        for sid in signal_ids:
            if sid not in found or found[sid].condition != condition:
                raise ImprovementError("unknown_signal", signal=sid, condition=condition)
    start, due = checked_date(merged.get("start"), "start"), checked_date(merged.get("due"), "due")
    if due < start:
        raise ImprovementError("due_before_start", start=start.isoformat(), due=due.isoformat())
    return {
        "condition": condition,
        "unit": unit,
        "title": checked_text(merged.get("title"), "title", required=True, limit=300),
        "owner_role": checked_text(merged.get("owner_role"), "owner_role", required=True, limit=100),
        "start": start,
        "due": due,
        "status": checked_choice(ActionStatus, merged.get("status") or ActionStatus.PLANNED, "status"),
        "indicators": json.dumps(indicators),
        "signals": json.dumps(signal_ids),
        "expected_effect": checked_text(merged.get("expected_effect"), "expected_effect"),
    }


def create_action(
    engine: Engine,
    viewer: Viewer,
    condition: str,
    title: str,
    owner_role: str,
    start: dt.date,
    due: dt.date,
    *,
    unit: str = ALL_UNITS,
    indicators: Sequence[str] = (),
    signals: Sequence[str] = (),
    expected_effect: str = "",
    status: ActionStatus | str = ActionStatus.PLANNED,
    catalog: Catalog | None = None,
) -> models.ImprovementAction:
    """A new improvement action. The owner is a role ("verpleegkundig specialist"), not a person: roles outlast
    people, and the dashboard stores no staff names beyond who edited."""
    values = {
        "condition": condition,
        "title": title,
        "owner_role": owner_role,
        "start": start,
        "due": due,
        "unit": unit,
        "indicators": list(indicators),
        "signals": list(signals),
        "expected_effect": expected_effect,
        "status": status,
    }
    return _create(engine, viewer, ItemKind.ACTION, values, catalog)


def update_action(
    engine: Engine, viewer: Viewer, item_id: str, based_on: int, *, catalog: Catalog | None = None, **changes: Any
) -> models.ImprovementAction:
    """The next version of an action with `changes` (status, due, title, indicators, signals, ...)."""
    return _update(engine, viewer, ItemKind.ACTION, item_id, based_on, changes, catalog)


def actions(
    engine: Engine,
    viewer: Viewer,
    condition: str | None = None,
    *,
    indicator: str | None = None,
    status: Iterable[ActionStatus | str] | None = None,
) -> list[models.ImprovementAction]:
    """Current actions the viewer may read; `indicator` keeps those linked to it (chart annotations)."""
    c = models.ImprovementAction.__table__.c
    where = [c.status.in_([str(s) for s in status])] if status is not None else []
    found = _readable(engine, viewer, ItemKind.ACTION, condition, *where, what="actions")
    if indicator is not None:
        found = [a for a in found if indicator in a.indicator_ids]
    return found


# --------------------------------------------------------------------------------------------- writing items
def _require_write(
    engine: Engine, viewer: Viewer, kind: ItemKind, values: Mapping[str, Any], current: Item | None = None
) -> None:
    """The role rules of writing a target or an action: the condition's care team or the quality directorate (a
    care team limited to some hospitals: for its hospitals' units, the unit written and the unit it had), and the
    quality directorate alone for anything that sets or changes an external norm. AccessDenied (audited)."""
    condition = str(values["condition"])
    what = "target" if kind == ItemKind.TARGET else "improvement action"
    _may_edit(engine, viewer, condition, str(values.get("unit", ALL_UNITS)), what)
    if current is not None and current.unit != values.get("unit", ALL_UNITS):  # moved from another unit
        _may_edit(engine, viewer, condition, current.unit, what)
    if kind == ItemKind.TARGET and norm_involved(values, current):
        require(viewer, Permission.SET_NORMS, engine=engine, condition=condition, what="external norm")


def check_values(
    engine: Engine,
    viewer: Viewer,
    kind: ItemKind,
    values: Mapping[str, Any],
    *,
    catalog: Catalog | None = None,
    current: Item | None = None,
    check_roles: bool = True,
    check_unit: bool = True,
) -> dict[str, Any]:
    """The checked values of a target or action version (`values` over `current`'s): ImprovementError naming the
    field for a refused value or a new or changed unit the registry does not hold (checked_unit), AccessDenied
    when the viewer may not write it. check_roles=False and check_unit=False leave those checks to a caller that
    applies them per changed row itself (the spreadsheet import, which reads the registry's units once)."""
    if kind not in (ItemKind.TARGET, ItemKind.ACTION):
        raise TypeError(f"only targets and actions are written from values, not a {kind}")
    checker = _target_values if kind == ItemKind.TARGET else _action_values
    return checker(
        engine, viewer, values, catalog or default_catalog(), current, check_roles=check_roles, check_unit=check_unit
    )


def target_key(values: Mapping[str, Any]) -> tuple[str, str, str, str, dt.date]:
    """What makes two active targets the same goal: condition, indicator, unit, kind and the date it holds from.
    One of each is in force: two were both stored, the charts drew the one written last and the board judged both."""
    return (
        str(values["condition"]),
        str(values["indicator"]),
        str(values["unit"]),
        str(values["kind"]),
        values["valid_from"],
    )


def action_key(values: Mapping[str, Any]) -> tuple[str, str, str, str, dt.date, dt.date]:
    """What makes two open actions the same action: condition, unit, title and owner (case and spaces aside),
    start and due. A second such action is a form sent twice (or a row added again), not a second piece of work:
    both were listed on the agenda and chased as overdue, and closing one left the other open. The same title for
    another owner (a surgeon's and a nurse specialist's "new protocol") is another piece of work, told apart by
    the owner on the agenda."""

    def plain(text: object) -> str:
        return " ".join(str(text or "").split()).casefold()

    unit, condition = str(values["unit"]), str(values["condition"])
    return (condition, unit, plain(values["title"]), plain(values.get("owner_role")), values["start"], values["due"])


_OPEN_ACTIONS = (ActionStatus.PLANNED, ActionStatus.IN_PROGRESS)


def check_one_per_key(conn: Connection, kind: ItemKind, written: Sequence[Item]) -> None:
    """SecondOfKey when a version just written (in this transaction) makes two active targets one goal
    (target_key) or two open actions one action (action_key): every writer (the meeting page's forms, the
    workbooks, the API) runs it after writing, so the transaction rolls back and nothing is stored. Checked after
    the writes rather than before, so a batch that moves one target's date and gives another the old one passes."""
    if kind == ItemKind.TARGET:
        key, live = target_key, (lambda i: i.active)
        mine = [w for w in written if live(w)]
        c = models.ImprovementTarget.__table__.c
        where = [
            c.condition.in_(sorted({w.condition for w in mine})),
            c.indicator.in_(sorted({w.indicator for w in mine})),
        ]
    elif kind == ItemKind.ACTION:
        key, live = action_key, (lambda i: i.status in _OPEN_ACTIONS)
        mine = [w for w in written if live(w)]
        c = models.ImprovementAction.__table__.c
        where = [c.condition.in_(sorted({w.condition for w in mine}))]
    else:
        return
    if not mine:
        return
    by_key: dict[tuple, list[Item]] = {}
    for item in _current(conn, kind, *where):
        if live(item):
            by_key.setdefault(key(item.model_dump()), []).append(item)
    ours = {w.item_id for w in written}
    firsts: set[tuple] = set()  # keys of this batch's versions seen so far: the second of two is the one named
    for position, item in enumerate(written):
        if not live(item):
            continue
        item_key = key(item.model_dump())
        if not any(o.item_id not in ours for o in by_key.get(item_key, [])) and item_key not in firsts:
            firsts.add(item_key)
            continue
        if kind == ItemKind.TARGET:
            raise SecondOfKey(
                "target_in_force",
                position,
                indicator=IndicatorName(item.condition, item.indicator),
                unit=item.unit or Label("agenda.all_units"),
                kind=Label(f"improvement.target_{item.kind}"),
                valid_from=item.valid_from,
            )
        raise SecondOfKey(
            "action_open_twice",
            position,
            title=item.title,
            unit=item.unit or Label("agenda.all_units"),
            start=item.start,
            due=item.due,
        )


def _create(engine: Engine, viewer: Viewer, kind: ItemKind, values: Mapping[str, Any], catalog: Catalog | None) -> Item:
    """Version 1 of a new target or action: values and role rules checked first, then one transaction, which
    refuses a second active target of one goal or a second open copy of an action (check_one_per_key)."""
    checked = check_values(engine, viewer, kind, values, catalog=catalog)
    item_id = _new_item_id(kind)

    def work(conn: Connection) -> Item:
        item = _insert_version(conn, viewer, kind, item_id, 1, checked, Change.CREATED)
        check_one_per_key(conn, kind, [item])
        return item

    return _transaction(engine, work)


def _update(
    engine: Engine,
    viewer: Viewer,
    kind: ItemKind,
    item_id: str,
    based_on: int,
    changes: Mapping[str, Any],
    catalog: Catalog | None,
) -> Item:
    """The next version of a target or action with `changes`, checked against the version it replaces."""
    catalog = catalog or default_catalog()
    _expect(item_id, kind)
    _editable(kind, changes)

    def check(current: Item) -> dict[str, Any]:
        return check_values(engine, viewer, kind, changes, catalog=catalog, current=current)

    def work(conn: Connection) -> Item:
        item = _edit(conn, viewer, item_id, based_on, check, Change.EDITED)
        check_one_per_key(conn, kind, [item])
        return item

    return _transaction(engine, work)


def current_version(engine: Engine, viewer: Viewer, item_id: str) -> Item:
    """The item's current version as the viewer may read it (what an edit names as its base); ItemNotFound when
    there is none or the viewer may not see it, so a file row cannot probe another team's items."""
    current = _read(engine, item_id)
    if not _visible(viewer, current.condition, current.unit, _divisions(engine, viewer)):
        raise ItemNotFound(item_id)
    return _as_shown(viewer, current)


@dataclass(frozen=True)
class Write:
    """One version to write: a new item (item_id None) or the next version of `item_id` based on `based_on`,
    with values already checked by check_values."""

    item_id: str | None
    based_on: int
    values: Mapping[str, Any]


def write_versions(
    engine: Engine,
    viewer: Viewer,
    kind: ItemKind,
    writes: Sequence[Write],
    *,
    change: Change = Change.IMPORTED,
    then: Callable[[Connection, list[Item]], None] | None = None,
) -> list[Item]:
    """Write several targets or actions all-or-nothing (a spreadsheet's rows): the role rules of every write are
    checked before anything is written, and every new or changed unit against the registry's units (so values
    that bypassed check_values cannot store an unknown unit either), then one transaction holds every version and
    `then` (the caller's audit event); a version changed meanwhile refuses the whole batch as EditConflict."""
    known: frozenset[str] | None = None  # the registry's units, read once for the batch
    for write in writes:
        current = None if write.item_id is None else _read(engine, write.item_id)
        _require_write(engine, viewer, kind, write.values, current)
        unit = str(write.values.get("unit", ALL_UNITS))
        if unit != ALL_UNITS and (current is None or unit != current.unit):
            known = unit_ids(engine) if known is None else known
            checked_unit(engine, unit, str(write.values["condition"]), current, known)

    def work(conn: Connection) -> list[Item]:
        written = []
        for write in writes:
            values = dict(write.values)
            if write.item_id is None:
                written.append(_insert_version(conn, viewer, kind, _new_item_id(kind), 1, values, change))
            else:
                written.append(_edit(conn, viewer, write.item_id, write.based_on, lambda _c, v=values: v, change))
        check_one_per_key(conn, kind, written)
        if then is not None:
            then(conn, written)
        return written

    return _transaction(engine, work)


# --------------------------------------------------------------------------------------------- overdue
@dataclass(frozen=True)
class Overdue:
    """What the meeting must chase: signals not explained in time, actions past their due date and not done."""

    signals: list[models.ImprovementSignal] = field(default_factory=list)
    actions: list[models.ImprovementAction] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.signals) + len(self.actions)


def overdue(
    engine: Engine,
    viewer: Viewer,
    condition: str | None = None,
    *,
    today: dt.date | None = None,
    explain_within_days: float | None = None,
) -> Overdue:
    """A new signal is overdue `explain_within_days` (default settings.signal_explain_days()) after it was
    detected; an action when its due date has passed and it is neither done nor stopped."""
    from vbhc.settings import signal_explain_days

    today = today or dt.date.today()
    days = signal_explain_days() if explain_within_days is None else float(explain_within_days)
    late_signals = [
        s
        for s in signals(engine, viewer, condition, status=[SignalStatus.NEW])
        if (today - s.detected_at.date()).days > days
    ]
    late_actions = [a for a in actions(engine, viewer, condition) if a.due < today and a.status not in FINISHED]
    return Overdue(late_signals, late_actions)


# --------------------------------------------------------------------------------------------- detection
@dataclass(frozen=True)
class Flag:
    """A unit x indicator flagged in an indicator result."""

    unit: str
    indicator: str
    rule: str
    side: str
    value: float | None = None

    @property
    def key(self) -> tuple[str, str, str, str]:
        return self.unit, self.indicator, self.rule, self.side


@dataclass(frozen=True)
class Detection:
    """What one detection run found: the flags, the signals it opened, and whether it was already stored."""

    condition: str
    level: str
    dataset_version: str
    flags: int
    opened: list[str] = field(default_factory=list)  # item ids of new signals
    already_done: bool = False


def flags_in(result: Any, rules: Iterable[Rule | str] = (Rule.FUNNEL_998,)) -> list[Flag]:
    """The units x indicators of an IndicatorResult outside the 99.8% limits (vbhc.verdict, severity "998"), and
    with Rule.SPC those with special-cause variation at the SPC chart's last point (costly: a chart per row)."""
    from vbhc import indicators, verdict

    rules = {str(r) for r in rules}
    found: list[Flag] = []
    for _, row in result.table.iterrows():
        if row.get("kind") == "volume":
            continue
        v = verdict.verdict(row)
        value = float(v.value) if np.isfinite(v.value) else None
        if Rule.FUNNEL_998 in rules and v.severity == "998" and v.category in (Side.BETTER, Side.WORSE):
            found.append(Flag(str(row["unit"]), str(row["indicator"]), str(Rule.FUNNEL_998), v.category, value))
        if Rule.SPC in rules and row.get("kind") != "response_rate" and v.category not in ("too_few", "no_data"):
            chart = indicators.indicator_over_time(result, row["indicator"], row["unit"])
            if chart is not None and len(chart):
                variation = verdict.verdict(row, chart).variation
                if variation in ("improvement", "concern"):
                    side = Side.BETTER if variation == "improvement" else Side.WORSE
                    found.append(Flag(str(row["unit"]), str(row["indicator"]), str(Rule.SPC), str(side), value))
    return found


def record_detection(
    engine: Engine,
    actor: Viewer | str,
    condition: str,
    level: str,
    dataset_version: str,
    flags: Iterable[Flag],
) -> Detection:
    """Store one detection run and turn its flags into signals. Idempotent: a run on a dataset version already
    stored adds nothing. A flag whose signal is still open (new or explained) is attributed to it; a flag that was
    also there in the previous run is attributed to that run's signal even when it was decided (the team already
    discussed it); any other flag opens a new signal. A flag's unit must be one of the registry's (unit_refusal),
    as every other writer's: a run naming another is refused whole, and nothing of it is stored."""
    if level not in UNIT_LEVELS:
        raise ImprovementError("unknown_value", field="level", value=level, allowed=", ".join(UNIT_LEVELS))
    if isinstance(actor, Viewer):
        _may_edit(engine, actor, condition, ALL_UNITS, "signal detection")  # flags every unit of the condition
    flags = list({f.key: f for f in flags}.values())
    known = unit_ids(engine) if flags else frozenset()
    for flag in flags:  # flags come from computed results, but a caller may pass any text: one check per writer
        if (error := unit_refusal(flag.unit, condition, known)) is not None:
            raise error
    runs = models.SignalDetection.__table__
    marks = models.SignalFlag.__table__
    sig = models.ImprovementSignal.__table__.c

    def work(conn: Connection) -> Detection:
        def same_run() -> Any:
            return runs.c.condition == condition, runs.c.level == level

        done = conn.execute(select(runs.c.flags).where(*same_run(), runs.c.dataset_version == dataset_version)).first()
        if done is not None:
            return Detection(condition, level, dataset_version, int(done.flags), already_done=True)
        previous_run = conn.execute(select(func.max(runs.c.id)).where(*same_run())).scalar_one()
        previous: dict[tuple, str] = {}
        if previous_run is not None:
            rows = conn.execute(select(marks).where(marks.c.detection_id == previous_run)).mappings()
            previous = {(r["unit"], r["indicator"], r["rule"], r["side"]): r["signal_item_id"] for r in rows}
        open_signals = {
            (s.unit, s.indicator, s.rule, s.side): s.item_id
            for s in _current(
                conn,
                ItemKind.SIGNAL,
                sig.condition == condition,
                sig.level == level,
                sig.status != str(SignalStatus.DECIDED),
            )
        }
        now = _now()
        user, _ = audit.actor_fields(actor)
        run_id = conn.execute(
            insert(runs)
            .values(
                condition=condition,
                level=level,
                dataset_version=dataset_version,
                detected_at=now,
                detected_by=user[:200],
                flags=len(flags),
            )
            .returning(runs.c.id)
        ).scalar_one()
        opened = []
        for flag in flags:
            item_id = open_signals.get(flag.key) or previous.get(flag.key)
            if item_id is None:
                item_id = _new_item_id(ItemKind.SIGNAL)
                values = {
                    "condition": condition,
                    "level": level,
                    "unit": flag.unit,
                    "indicator": flag.indicator,
                    "rule": flag.rule,
                    "side": flag.side,
                    "value": flag.value,
                    "detected_version": dataset_version,
                    "detected_at": now,
                    "status": str(SignalStatus.NEW),
                    "explanation": None,
                    "explanation_text": "",
                    "decision": None,
                }
                _insert_version(conn, actor, ItemKind.SIGNAL, item_id, 1, values, Change.DETECTED)
                opened.append(item_id)
            conn.execute(
                insert(marks).values(
                    detection_id=run_id,
                    unit=flag.unit,
                    indicator=flag.indicator,
                    rule=flag.rule,
                    side=flag.side,
                    value=flag.value,
                    signal_item_id=item_id,
                )
            )
        return Detection(condition, level, dataset_version, len(flags), opened)

    try:
        return _transaction(engine, work)
    except IntegrityError:  # another process stored this run at the same moment: theirs stands
        with engine.connect() as conn:
            done = conn.execute(
                select(runs.c.flags).where(
                    runs.c.condition == condition, runs.c.level == level, runs.c.dataset_version == dataset_version
                )
            ).first()
        if done is None:
            raise
        return Detection(condition, level, dataset_version, int(done.flags), already_done=True)


def detect_signals(
    engine: Engine,
    actor: Viewer | str = "vbhc",
    *,
    conditions: Sequence[str] | None = None,
    level: str = "hospital",
    rules: Iterable[Rule | str] = (Rule.FUNNEL_998,),
    store: Any = None,
) -> list[Detection]:
    """Signals from the persisted indicator results of the current dataset version (vbhc.results: read from disk
    when stored, else computed and stored), one detection run per condition. Run after every import (the CLI can
    pass the importing user); a Viewer needs the right to edit the condition's improvement items."""
    from vbhc.registry import condition_volumes
    from vbhc.results import ResultStore, ViewKey

    store = store or ResultStore(engine)
    store_version = store.version()
    dataset_version = "-".join(str(store_version).split("-")[:2])
    if conditions is None:
        volumes = condition_volumes(engine=engine)
        conditions = [] if volumes.empty else [str(c) for c in volumes["condition"]]
    rules = tuple(rules)
    found = []
    for condition in conditions:
        result = store.result(ViewKey.of(condition, level), store_version)
        found.append(record_detection(engine, actor, condition, level, dataset_version, flags_in(result, rules)))
    return found
