"""What the improvement cycle puts on a unit's charts (issue 14): the targets in force and the improvement actions
linked to the indicator, read through vbhc.improvement with the viewer, so its role rules hold (a manager sees
their own units' items only, and status only: an action's title and start are status, the team's texts are not
drawn).

Why a module of its own: the team page stays thin (filters -> annotations -> charts), the charts only draw what
they are given (vbhc.charts needs no database), and which target belongs on which unit's chart is decided once,
here, and tested without Streamlit:
- targets: per kind (team goal, external norm) the one closest to the unit (the unit's own, else its hospital's
  when the unit is a department, else the one for every unit), of those the latest valid-from date on or before
  `on`. Another department's goal is not the hospital's goal, so it is never drawn on the hospital's chart.
- actions: those linked to the indicator for every unit, for the unit, for its hospital, or for one of its
  departments when the unit is a hospital (the hospital's numbers hold that department's care).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import pandas as pd
from sqlalchemy import Engine

from vbhc import improvement, models, spc
from vbhc.access import Viewer
from vbhc.improvement import ALL_UNITS
from vbhc.registry import unit_parts

__all__ = [
    "ChartNotes",
    "PhaseComparison",
    "chart_actions",
    "chart_notes",
    "chart_targets",
    "closeness",
    "compare_phases",
]


def closeness(item_unit: str, unit: str) -> int | None:
    """How closely an item's unit covers `unit`: 3 the unit itself, 2 its hospital (of a department), 1 every
    unit, 0 a department of the hospital `unit`; None when the item is about another unit."""
    if item_unit == ALL_UNITS:
        return 1
    (h1, d1), (h2, d2) = unit_parts(item_unit), unit_parts(unit)
    if h1 != h2:
        return None
    if d1 == d2:
        return 3
    if d1 is None:
        return 2
    return 0 if d2 is None else None


def chart_targets(
    engine: Engine,
    viewer: Viewer,
    condition: str,
    indicator: str,
    unit: str,
    *,
    on: dt.date | None = None,
) -> list[models.ImprovementTarget]:
    """The team goal and the external norm in force on `on` (default today) for the unit's charts of `indicator`:
    at most one of each kind, the team goal first."""
    found = improvement.targets(engine, viewer, condition, indicator=indicator, on=on or dt.date.today())
    best: dict[str, tuple[tuple[int, dt.date, int], models.ImprovementTarget]] = {}
    for target in found:
        close = closeness(target.unit, unit)
        if not close:  # another unit's, or a department's on its hospital's chart
            continue
        rank = (close, target.valid_from, target.id or 0)
        if target.kind not in best or rank > best[target.kind][0]:
            best[target.kind] = (rank, target)
    order = [str(k) for k in improvement.TargetKind]
    return [best[k][1] for k in order if k in best]


def chart_actions(
    engine: Engine, viewer: Viewer, condition: str, indicator: str, unit: str
) -> list[models.ImprovementAction]:
    """The improvement actions linked to `indicator` that concern the unit, by start date."""
    found = improvement.actions(engine, viewer, condition, indicator=indicator)
    mine = [a for a in found if closeness(a.unit, unit) is not None]
    return sorted(mine, key=lambda a: (a.start, a.title))


@dataclass(frozen=True)
class ChartNotes:
    """What a unit's charts of one indicator draw from the improvement cycle."""

    targets: list[models.ImprovementTarget] = field(default_factory=list)
    actions: list[models.ImprovementAction] = field(default_factory=list)

    @property
    def key(self) -> tuple:
        """Identifies the drawn items and their versions: part of a cached chart's key, so an edit redraws it."""
        return tuple((i.item_id, i.version) for i in (*self.targets, *self.actions))

    def action(self, item_id: str | None) -> models.ImprovementAction | None:
        return next((a for a in self.actions if a.item_id == item_id), None)


def chart_notes(
    engine: Engine, viewer: Viewer, condition: str, indicator: str, unit: str, *, on: dt.date | None = None
) -> ChartNotes:
    """The targets in force and the linked actions for the unit's charts of `indicator` (see the module's rules)."""
    return ChartNotes(
        chart_targets(engine, viewer, condition, indicator, unit, on=on),
        chart_actions(engine, viewer, condition, indicator, unit),
    )


@dataclass(frozen=True)
class PhaseComparison:
    """The phases of an SPC chart rebased at an action's start, either side of it (vbhc.spc.phases rows)."""

    before: pd.Series
    after: pd.Series

    @property
    def provisional(self) -> bool:
        """Either phase has too few points for steady limits (spc.MIN_PHASE_POINTS)."""
        return bool(self.before["provisional"] or self.after["provisional"])


def compare_phases(chart: pd.DataFrame, start: dt.date) -> PhaseComparison | None:
    """The phase that begins at an action's `start` (its first period on or after that date) and the phase before
    it, of a chart rebased there (vbhc.spc); None when the chart has no phase on either side."""
    table = spc.phases(chart)
    if len(table) < 2:
        return None
    after = table.index[pd.to_datetime(table["first"]) >= pd.Timestamp(start)]
    if not len(after) or after[0] == table.index[0]:
        return None
    return PhaseComparison(table.loc[after[0] - 1], table.loc[after[0]])
