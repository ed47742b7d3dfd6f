"""The monthly meeting's agenda from the stored improvement cycle (vbhc.improvement), as plain data a page shows.

Why a module of its own: the meeting page stays thin (filters -> agenda -> render), and what counts as "on the
agenda" is decided once, here, and tested without Streamlit:
- new signals: first detected after the previous meeting (a comparison of stored detections);
- open signals: not yet decided (new or explained), with the team's explanation;
- overdue: signals not explained in time and actions past their due date (improvement.overdue);
- targets and norms in force for the condition, with whether the unit's stored result meets them;
- the condition's actions, open ones first.
Items of the chosen unit are shown: a signal of that unit (or of its hospital, when one of the two is a hospital),
and targets and actions of every unit or of that unit.
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from sqlalchemy import Engine

from vbhc import improvement, minutes, models
from vbhc.access import Viewer, may_edit_improvement, may_export, may_set_norms
from vbhc.catalog import PROPORTION_KINDS
from vbhc.improvement import ALL_UNITS, FINISHED, Overdue
from vbhc.meeting import since_date
from vbhc.registry import unit_parts

if TYPE_CHECKING:  # the sheets pull in openpyxl: imported by the workbook import, not by every reader of agenda
    from vbhc.improvement_sheets import SheetImport

__all__ = [
    "Agenda",
    "TargetRow",
    "belongs_to_unit",
    "distinct_labels",
    "error_text",
    "from_shown",
    "import_workbook",
    "meeting_agenda",
    "to_shown",
    "unit_values",
]


@dataclass(frozen=True)
class TargetRow:
    """A target or norm in force, the unit's current value of its indicator and whether that meets it (None: the
    stored result does not tell, e.g. no value for the unit)."""

    target: models.ImprovementTarget
    value: float | None
    met: bool | None


@dataclass(frozen=True)
class Agenda:
    """What the meeting discusses, and what the viewer may do about it."""

    condition: str
    unit: str | None
    since: dt.date
    #: `since` is a meeting: the one the viewer named, or the last one recorded; False: none is recorded yet and
    #: `since` is the first day of the month (the page must not call it the previous meeting)
    since_meeting: bool = True
    new_signals: list[models.ImprovementSignal] = field(default_factory=list)
    open_signals: list[models.ImprovementSignal] = field(default_factory=list)
    overdue: Overdue = field(default_factory=Overdue)
    targets: list[TargetRow] = field(default_factory=list)
    actions: list[models.ImprovementAction] = field(default_factory=list)
    may_edit: bool = False  # team goals, explanations, decisions, actions and the meeting record of the unit
    may_set_norms: bool = False  # external norms (quality directorate)
    may_export: bool = False  # the targets and actions workbooks

    @property
    def versions(self) -> dict[str, int]:
        """The version of every item shown: an edit made from this agenda is based on it (EditConflict if stale)."""
        items = [*self.new_signals, *self.open_signals, *self.actions, *(r.target for r in self.targets)]
        return {i.item_id: i.version for i in items}

    @property
    def explainable(self) -> list[models.ImprovementSignal]:
        """Signals a team may (re-)explain: every open one."""
        return list(self.open_signals)

    @property
    def decidable(self) -> list[models.ImprovementSignal]:
        """Signals ready for a decision: explained (a decision rests on a conclusion)."""
        return [s for s in self.open_signals if s.status == improvement.SignalStatus.EXPLAINED]


def distinct_labels(
    items: Sequence[Any], name: Callable[[Any], str], qualifiers: Sequence[Callable[[Any], str]]
) -> list[str]:
    """Each item's name in a person's words, told apart from the others: items whose names are the same get the
    first qualifier that differs among them (e.g. the unit, then the owner, the due date), and items still the
    same after all qualifiers a number, (1), (2), ... in the given order. A name that is unique stays as it is.

    Why: a picker or a list offers items by what a care team recognises, not by their item ids (which only the
    targets/actions workbook needs to match its rows), and two actions may carry the same title."""
    labels = [name(item) for item in items]
    for qualify in qualifiers:
        groups: dict[str, list[int]] = {}
        for i, text in enumerate(labels):
            groups.setdefault(text, []).append(i)
        for members in groups.values():
            words = [qualify(items[i]) for i in members]
            if len(members) > 1 and len(set(words)) > 1:  # a qualifier the same for all of them tells nothing
                for i, word in zip(members, words, strict=True):
                    labels[i] = f"{labels[i]} · {word}"
    counts: dict[str, int] = {}
    for text in labels:
        counts[text] = counts.get(text, 0) + 1
    seen: dict[str, int] = {}
    for i, text in enumerate(labels):
        if counts[text] > 1:
            seen[text] = seen.get(text, 0) + 1
            labels[i] = f"{text} ({seen[text]})"
    return labels


def belongs_to_unit(item_unit: str, unit: str | None) -> bool:
    """An item of every unit, of the unit itself, or of its hospital when one of the two is a whole hospital."""
    if unit is None or item_unit in (ALL_UNITS, unit):
        return True
    (h1, d1), (h2, d2) = unit_parts(item_unit), unit_parts(unit)
    return h1 == h2 and (d1 is None or d2 is None)


def unit_values(table: pd.DataFrame | None, unit: str | None) -> dict[str, float]:
    """The unit's value per indicator in a stored indicator table: case-mix adjusted where there is one (what the
    verdict judges), else crude; missing values left out, so target_met says nothing for them."""
    if table is None or unit is None or table.empty or "unit" not in table:
        return {}
    out: dict[str, float] = {}
    for _, row in table[table["unit"] == unit].iterrows():
        for column in ("adjusted_value", "crude_value"):
            number = pd.to_numeric(row.get(column), errors="coerce")
            if pd.notna(number) and np.isfinite(float(number)):
                out[str(row["indicator"])] = float(number)
                break
    return out


def meeting_agenda(
    engine: Engine,
    viewer: Viewer,
    condition: str,
    since: dt.date | None = None,
    *,
    unit: str | None = None,
    values: Mapping[str, float] | None = None,
    today: dt.date | None = None,
    until: pd.Timestamp | dt.date | None = None,
    comparison: str = "quarter",
) -> Agenda:
    """The agenda of the condition's meeting for `unit`, since the previous meeting on `since`. `values` are the
    unit's current indicator values (unit_values of the stored result) for judging the targets. Read through
    vbhc.improvement, so its role rules hold: a manager gets their own units' status only. `since` None: the last
    recorded meeting of the condition and unit (vbhc.minutes), else, as the pages' "since the last meeting"
    (vbhc.meeting.since_date), the start of the latest `comparison` period of the data complete `until`, else the
    first day of the month (which lies after the data more often than not: nothing was ever new since it)."""
    today = today or dt.date.today()
    since_meeting = since is not None
    if since is None:
        since = minutes.last_meeting_date(engine, viewer, condition, unit=unit, on_or_before=today)
        since_meeting = since is not None
        since = since or since_date(None, None, until, comparison, today)[0]
    values = values or {}

    def mine(items: list[Any]) -> list[Any]:
        return [i for i in items if belongs_to_unit(i.unit, unit)]

    new = mine(improvement.new_signals_since(engine, viewer, condition, since))
    open_signals = mine(improvement.signals(engine, viewer, condition, open_only=True))
    late = improvement.overdue(engine, viewer, condition, today=today)
    rows = []
    for target in mine(improvement.in_force(improvement.targets(engine, viewer, condition, on=today))):
        value = values.get(target.indicator)
        met = improvement.target_met(target, value) if value is not None else None
        rows.append(TargetRow(target, value, met))
    rows.sort(key=lambda r: (r.target.indicator, r.target.kind, r.target.valid_from))
    acts = mine(improvement.actions(engine, viewer, condition))
    acts.sort(key=lambda a: (a.status in FINISHED, a.due))
    return Agenda(
        condition=condition,
        unit=unit,
        since=since,
        since_meeting=since_meeting,
        new_signals=sorted(new, key=lambda s: s.detected_at, reverse=True),
        open_signals=sorted(open_signals, key=lambda s: (s.status, s.detected_at)),
        overdue=Overdue(mine(late.signals), mine(late.actions)),
        targets=rows,
        actions=acts,
        may_edit=may_edit_improvement(viewer, condition, unit),
        may_set_norms=may_set_norms(viewer),
        may_export=may_edit_improvement(viewer, condition, unit) and may_export(viewer, condition),
    )


def to_shown(value: float, kind: str) -> float:
    """A stored indicator value as a person reads and types it: percentages for the kinds stored as fractions
    (vbhc.catalog.PROPORTION_KINDS: yes/no indicators, a textbook outcome)."""
    return value * 100 if kind in PROPORTION_KINDS else value


def from_shown(value: float, kind: str) -> float:
    """What a person typed (a percentage for yes/no indicators) as the stored value."""
    return value / 100 if kind in PROPORTION_KINDS else value


def import_workbook(engine: Engine, viewer: Viewer, data: bytes, file_name: str) -> tuple[str, SheetImport]:
    """Import an edited targets or actions workbook, told apart by its sheet ("actions" or else "targets": a file
    that is neither is refused by the targets import with its one-line reason). All rows or none."""
    from openpyxl import load_workbook

    from vbhc.improvement_sheets import SHEETS, import_actions, import_targets
    from vbhc.ingest.layout import excel_unescape
    from vbhc.ingest.read import _check_xlsx_container
    from vbhc.settings import max_upload_mb

    kind = "targets"
    try:
        # the ZIP's sizes checked before openpyxl unpacks anything (its shared strings are read on opening): a
        # zip bomb or an oversized file goes to the targets import, which refuses it in the viewer's language
        if len(data) > max_upload_mb() * 1024 * 1024 or _check_xlsx_container(io.BytesIO(data)) is not None:
            raise ValueError("not a safe workbook")
        workbook = load_workbook(io.BytesIO(data), read_only=True)
        try:
            names = {excel_unescape(title) for title in workbook.sheetnames}  # as the tabs show them
            if SHEETS[improvement.ItemKind.ACTION] in names and SHEETS[improvement.ItemKind.TARGET] not in names:
                kind = "actions"
        finally:
            workbook.close()
    except Exception:  # not a workbook: the targets import says so in the viewer's language
        kind = "targets"
    importer = import_actions if kind == "actions" else import_targets
    return kind, importer(engine, viewer, data, file_name=file_name)


def error_text(error: improvement.ImprovementError, lang: str) -> str:
    """The refusal as one line in the viewer's language, a field named as the meeting page's form labels it
    (explanation_text -> "What the team concluded") rather than by its stored name."""
    from vbhc.i18n import catalog

    field_name = error.values.get("field")
    key = f"agenda.field_{field_name}"
    if type(error) is improvement.ImprovementError and isinstance(field_name, str) and key in catalog(lang):
        error = improvement.ImprovementError(error.key, **{**error.values, "field": improvement.Label(key)})
    return error.message(lang)
