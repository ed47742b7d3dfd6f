"""What the teams concluded and did, in the reports: targets and whether they are met, signals with the team's
explanation and decision, and improvement actions (issue 14: "the Excel workbook and PDF report include targets,
explanations and actions").

Two steps, so the file builders stay free of the database and of roles:
- `read_follow_up` reads the items through vbhc.improvement with the viewer's role rules (a condition the viewer may
  not see is refused; the teams' free texts only for those who may edit them);
- the builders judge them against the report's own indicator table, after its small-number rule
  (vbhc.reports.privacy): a value the table withholds is withheld here too, so a target's "met" or a signal's value
  never gives a small cell back. A value of a unit the table does not hold (another unit level) is not shown.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field

import pandas as pd
from sqlalchemy import Engine

from vbhc import improvement, models
from vbhc.access import Viewer
from vbhc.agenda import belongs_to_unit
from vbhc.improvement import ALL_UNITS, FINISHED, SignalStatus
from vbhc.reports.privacy import suppressed_cells

__all__ = ["FollowUp", "SignalLine", "TargetLine", "action_lines", "read_follow_up", "signal_lines", "target_lines"]


@dataclass(frozen=True)
class FollowUp:
    """One condition's targets in force, current signals and actions, as the viewer may read them."""

    condition: str
    targets: list[models.ImprovementTarget] = field(default_factory=list)
    signals: list[models.ImprovementSignal] = field(default_factory=list)
    actions: list[models.ImprovementAction] = field(default_factory=list)


@dataclass(frozen=True)
class TargetLine:
    """A target judged for one unit: its value in the report's table, whether that meets the target (None: no
    value), and whether the small-number rule withholds both."""

    target: models.ImprovementTarget
    unit: str
    value: float | None
    met: bool | None
    withheld: bool = False


@dataclass(frozen=True)
class SignalLine:
    """A signal with the value it was found at, unless the report's table withholds that unit × indicator."""

    signal: models.ImprovementSignal
    value: float | None
    withheld: bool = False


def read_follow_up(
    engine: Engine, viewer: Viewer, conditions: Sequence[str], *, today: dt.date | None = None
) -> dict[str, FollowUp]:
    """The improvement items of `conditions` for a report, read with the viewer's role rules (AccessDenied, audited,
    for a condition the viewer may not see): targets in force on `today`, every current signal and action."""
    today = today or dt.date.today()
    return {
        condition: FollowUp(
            condition,
            improvement.in_force(improvement.targets(engine, viewer, condition, on=today)),
            improvement.signals(engine, viewer, condition),
            improvement.actions(engine, viewer, condition),
        )
        for condition in dict.fromkeys(conditions)
    }


def _cells(table: pd.DataFrame) -> tuple[dict[tuple[str, str], float | None], set[tuple[str, str]]]:
    """(unit, indicator) -> the value a report shows (adjusted where there is one, else crude), and the cells
    withheld."""
    values: dict[tuple[str, str], float | None] = {}
    for row in table.itertuples():
        number = None
        for column in ("adjusted_value", "crude_value"):
            found = pd.to_numeric(getattr(row, column, None), errors="coerce")
            if pd.notna(found):
                number = float(found)
                break
        values[(str(row.unit), str(row.indicator))] = number
    return values, suppressed_cells(table)


def target_lines(follow: FollowUp, table: pd.DataFrame, unit: str | None = None) -> list[TargetLine]:
    """The targets judged against the report's (suppressed) table: for one unit (the PDF's condition team: the
    targets that hold for it), or with unit None for every unit a target holds for (the workbook: a target of all
    units once per unit of the table)."""
    values, withheld = _cells(table)
    units = sorted({str(u) for u in table["unit"]}) if "unit" in table else []
    lines = []
    for target in sorted(follow.targets, key=lambda t: (t.indicator, t.kind, t.valid_from, t.unit)):
        if unit is not None:
            if not belongs_to_unit(target.unit, unit):
                continue
            judged = [unit if target.unit == ALL_UNITS else target.unit]
        else:
            judged = units if target.unit == ALL_UNITS else [target.unit]
        for where in judged:
            key = (where, target.indicator)
            if key in withheld:
                lines.append(TargetLine(target, where, None, None, withheld=True))
                continue
            value = values.get(key)
            lines.append(
                TargetLine(target, where, value, None if value is None else improvement.target_met(target, value))
            )
    return lines


def signal_lines(follow: FollowUp, table: pd.DataFrame, unit: str | None = None) -> list[SignalLine]:
    """The signals (of `unit`, or all), open ones first and newest first; the value withheld where the table
    withholds the cell, and not shown for a unit the table does not hold (its n is unknown here)."""
    values, withheld = _cells(table)
    chosen = [s for s in follow.signals if belongs_to_unit(s.unit, unit)]
    chosen.sort(key=lambda s: s.detected_at, reverse=True)
    chosen.sort(key=lambda s: s.status == SignalStatus.DECIDED)
    lines = []
    for s in chosen:
        key = (s.unit, s.indicator)
        hidden = key in withheld
        lines.append(SignalLine(s, None if hidden or key not in values else s.value, withheld=hidden))
    return lines


def action_lines(follow: FollowUp, unit: str | None = None) -> list[models.ImprovementAction]:
    """The actions (of `unit`, or all), open ones first, then by due date."""
    chosen = [a for a in follow.actions if belongs_to_unit(a.unit, unit)]
    return sorted(chosen, key=lambda a: (a.status in FINISHED, a.due))
