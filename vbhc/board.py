"""The board's monthly review (issue 14, item 5): per condition team, how its improvement cycle stands.

The board discusses quality with each division every month. What it needs is not the indicators themselves (the
teams' pages have those) but whether the teams follow up on them: open and overdue signals, open and overdue
actions, and how many targets are met. So this is a count per condition team of a hospital, grouped by division,
read from the stored improvement cycle (vbhc.improvement) and judged against the stored indicator results.

Why it is safe for every role that sees it:
- every item is read through vbhc.improvement, whose role rules decide what the viewer sees (a manager: the items of
  their own units only); the indicator values that judge a target go through vbhc.access.indicator_rows with other
  units hidden, so a target is never judged on a value the viewer may not see: a cell the viewer's table withholds
  (small numbers of another hospital) judges nothing and is counted as withheld, and for a viewer whose pages
  withhold across periods (a care team limited to some hospitals) another hospital's cell is judged only on a table
  withheld over the grid of periods (vbhc.access.grid_masked: the pages' result_for), never on one withheld on its
  own (a raw result judged H01's three colorectal targets for a care team of H03 on the 2,000-cycle demo, all
  dates, where the pages withhold all three);
- a row is a condition team the viewer may see by name (a manager: a hospital or a department in scope): other
  units do not appear at all, not even anonymised; there are no patient rows, only counts of items.
- The review is recorded in the audit log as a "view".
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import pandas as pd
from sqlalchemy import Engine

from vbhc import audit, improvement
from vbhc.access import (
    VIEW_DEDUPE_SECONDS,
    Permission,
    Role,
    Viewer,
    grid_masked,
    indicator_rows,
    limited_care_hospitals,
    may_see_unit,
    may_view_condition,
    require,
    withholds_across_periods,
)
from vbhc.agenda import unit_values
from vbhc.catalog import Catalog, default_catalog
from vbhc.improvement import ALL_UNITS, FINISHED
from vbhc.indicators import IndicatorResult
from vbhc.registry import condition_units, hospital_of, unit_parts
from vbhc.registry import units as registry_units
from vbhc.reports.privacy import suppressed_cells

__all__ = ["TeamStatus", "board_hospitals", "board_review"]

#: The result a target is judged on: (condition, unit level) -> the stored indicator result, or None when there is
#: none (its targets then count as "no data"). The page passes the results it already reads for the viewer.
ResultOf = Callable[[str, str], IndicatorResult | None]


@dataclass(frozen=True)
class TeamStatus:
    """One condition team of a hospital in the board's review: counts only, no texts and no patient rows."""

    division: str  # the division(s) of the departments that treat the condition at the hospital
    condition: str
    hospital: str
    open_signals: int = 0
    overdue_signals: int = 0
    open_actions: int = 0
    overdue_actions: int = 0
    targets_met: int = 0
    targets_not_met: int = 0
    targets_no_data: int = 0
    targets_withheld: int = 0  # the value is another hospital's small cell, withheld for this viewer: not judged

    @property
    def needs_attention(self) -> bool:
        """Something the board asks about: an overdue item or a target not met."""
        return bool(self.overdue_signals or self.overdue_actions or self.targets_not_met)


def board_hospitals(viewer: Viewer, units: pd.DataFrame) -> list[str]:
    """The hospitals the review is about by default: the own hospital(s) (the board's), and for a manager the
    hospitals of their grants (a department or division grant names its hospital through the units table)."""
    own = {str(h) for h in units.loc[units["own_hospital"].astype(bool), "hospital"]}
    managed: set[str] = set(viewer.hospitals) | {hospital_of(d) for d in viewer.departments}
    divisions = frozenset().union(*(s.divisions for s in viewer.scopes_for(Role.MANAGER)))
    if divisions and "division" in units:
        managed |= {str(h) for h in units.loc[units["division"].isin(divisions), "hospital"]}
    return sorted(own | managed)


def _judged_unit(target_unit: str, hospital: str) -> str:
    return hospital if target_unit == ALL_UNITS else target_unit


def _level_of(unit: str) -> str:
    if "@" in unit:
        return "condition_team"
    return "hospital" if unit_parts(unit)[1] is None else "department"


def board_review(
    engine: Engine,
    viewer: Viewer,
    *,
    hospitals: Sequence[str] | None = None,
    result_of: ResultOf | None = None,
    today: dt.date | None = None,
    explain_within_days: float | None = None,
    units: pd.DataFrame | None = None,
    catalog: Catalog | None = None,
) -> list[TeamStatus]:
    """Per condition team of `hospitals` (default board_hospitals) that the viewer may see: open and overdue
    signals and actions, and the targets in force met, not met or without a value to judge. Sorted by division,
    condition and hospital. A viewer without a role that sees conditions gets AccessDenied (audited).

    An item belongs to a team when its unit is the hospital or one of its departments; a target or action of
    every unit (ALL_UNITS) belongs to each team of its condition. A target is judged on its own unit's value, or
    on the hospital's for a target of every unit, from `result_of` (None: every target counts as no data)."""
    catalog = catalog or default_catalog()
    conditions = [c for c in catalog.conditions if may_view_condition(viewer, c)]
    if not conditions:
        require(viewer, Permission.VIEW_CONDITION, engine=engine, what="board review")  # refuses and audits
    today = today or dt.date.today()
    units = registry_units(engine) if units is None else units
    chosen = set(board_hospitals(viewer, units) if hospitals is None else hospitals)
    division_of = {
        (str(h), str(d)): ("" if pd.isna(v) else str(v))
        for h, d, v in zip(units["hospital"], units["department"], units.get("division", pd.Series()), strict=False)
    }
    rows: list[TeamStatus] = []
    for condition in conditions:
        teams = _teams(viewer, condition, condition_units(condition, engine), chosen, division_of)
        if not teams:
            continue
        signals = improvement.signals(engine, viewer, condition, open_only=True)
        late = improvement.overdue(engine, viewer, condition, today=today, explain_within_days=explain_within_days)
        actions = improvement.actions(engine, viewer, condition)
        targets = improvement.in_force(improvement.targets(engine, viewer, condition, on=today))
        values = _Values(engine, viewer, condition, result_of, units)
        for hospital, division in teams.items():

            def mine(items: Iterable, *, every_unit: bool = False, hospital: str = hospital) -> list:
                return [
                    i
                    for i in items
                    if (every_unit and i.unit == ALL_UNITS) or (i.unit and hospital_of(i.unit) == hospital)
                ]

            verdicts = [values.judge(t, _judged_unit(t.unit, hospital)) for t in mine(targets, every_unit=True)]
            rows.append(
                TeamStatus(
                    division=division,
                    condition=condition,
                    hospital=hospital,
                    open_signals=len(mine(signals)),
                    overdue_signals=len(mine(late.signals)),
                    open_actions=len([a for a in mine(actions, every_unit=True) if a.status not in FINISHED]),
                    overdue_actions=len(mine(late.actions, every_unit=True)),
                    targets_met=verdicts.count(True),
                    targets_not_met=verdicts.count(False),
                    targets_no_data=verdicts.count(None),
                    targets_withheld=verdicts.count(WITHHELD),
                )
            )
    rows.sort(key=lambda r: (r.division, r.condition, r.hospital))
    audit.record(
        engine,
        viewer,
        "view",
        detail={"what": "board", "hospitals": sorted({r.hospital for r in rows}), "teams": len(rows)},
        dedupe_seconds=VIEW_DEDUPE_SECONDS,
    )
    return rows


def _teams(
    viewer: Viewer,
    condition: str,
    treated: pd.DataFrame,
    hospitals: set[str],
    division_of: dict[tuple[str, str], str],
) -> dict[str, str]:
    """hospital -> division(s) of the condition's teams in `hospitals` that the viewer may see by name: the whole
    hospital, or (a manager's department or division grant) one of the departments that treat the condition."""
    teams: dict[str, str] = {}
    for hospital, part in treated.groupby(treated["hospital"].astype(str)):
        if hospital not in hospitals:
            continue
        departments = [str(d) for d in part["department"]]
        divisions = [division_of.get((hospital, d), "") for d in departments]
        if may_see_unit(viewer, condition, hospital) or any(
            may_see_unit(viewer, condition, hospital, d, v or None) for d, v in zip(departments, divisions, strict=True)
        ):
            teams[hospital] = ", ".join(sorted({v for v in divisions if v}))
    return teams


#: A target whose value the viewer's table withholds: not judged (TeamStatus.targets_withheld).
WITHHELD = "withheld"


class _Values:
    """The indicator values a viewer may see, per unit, read once per unit level and only when a target asks; the
    cells withheld from the viewer judge nothing (WITHHELD)."""

    def __init__(
        self, engine: Engine, viewer: Viewer, condition: str, result_of: ResultOf | None, units: pd.DataFrame
    ) -> None:
        self.engine, self.viewer, self.condition, self.result_of, self.units = (
            engine,
            viewer,
            condition,
            result_of,
            units,
        )
        self.tables: dict[str, pd.DataFrame | None] = {}
        self.values: dict[str, dict[str, float]] = {}
        self.withheld: dict[str, set[tuple[str, str]]] = {}
        # whose cells count as withheld when the table was not withheld over the grid of periods
        self.own = limited_care_hospitals(viewer, condition) if withholds_across_periods(viewer, condition) else None

    def _table(self, level: str) -> pd.DataFrame | None:
        if level not in self.tables:
            result = self.result_of(self.condition, level) if self.result_of is not None else None
            if result is None or result.table.empty:
                self.tables[level] = None
            elif grid_masked(self.viewer, result.table):  # the pages' table: judged as the pages show it
                self.tables[level] = result.table[~result.table["anonymised"].astype(bool)]
            else:
                table = indicator_rows(
                    self.viewer, result.table, units=self.units, others="hide", engine=self.engine, record_view=False
                )
                if self.own is not None:  # withheld on its own: no other hospital's cell may be judged on it
                    other = ~table["hospital"].astype(str).isin(self.own) if "hospital" in table else True
                    table = table.assign(suppressed=table.get("suppressed", False) | other)
                self.tables[level] = table
            table = self.tables[level]
            # a manager's own rows carry no `suppressed` (missing beside the anonymised rows' flags): not withheld
            hit = table is not None and "suppressed" in table
            flags = table["suppressed"].fillna(False).astype(bool) if hit else None
            self.withheld[level] = suppressed_cells(table.assign(suppressed=flags)) if hit else set()
        return self.tables[level]

    def judge(self, target: object, unit: str) -> bool | str | None:
        """improvement.target_met of the unit's value; WITHHELD where the viewer's table withholds the cell, None
        without a value."""
        level = _level_of(unit)
        table = self._table(level)
        if (unit, target.indicator) in self.withheld.get(level, set()):
            return WITHHELD
        if unit not in self.values:
            self.values[unit] = unit_values(table, unit)
        value = self.values[unit].get(target.indicator)
        return improvement.target_met(target, value) if value is not None else None
