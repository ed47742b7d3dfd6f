"""The demo registry's improvement history (issue 14): targets for key indicators, explained signals and two
improvement actions, written by `vbhc demo` after the import and the signal detection, so a first look at the
team and meeting pages shows a cycle in progress instead of an empty one.

Why a module of its own, and why after the import: the generated registry rows are a contract (tests depend on
the planted outliers, and vbhc.demo's files are byte-identical for a seed), so the history is written through
vbhc.improvement like any team's work (versions, audit log, role rules), from the planted truth (truth.json):
- targets: per condition where the own hospital has a planted outlier, a team goal at the benchmark for that
  indicator and for the condition's 30-day mortality, and an external norm for the outlier indicator (its
  source says it is fictitious);
- signals of planted outliers are explained as real, those of the unit that differs by case mix only as case
  mix not captured; each is decided (a worse one of the own hospital: action). Other signals stay new, for the
  meeting to explain;
- an action under way on each of the own hospital's worse outliers, linked to its indicator (and its signal, when
  detected), and on the first of them also one done in an earlier year. An action under way starts the day the
  generator plants a real improvement of that outlier (vbhc.demo.PLANTED_IMPROVEMENTS: the excess is gone from
  then on; the default demo plants two, anastomotic leaks and hip readmissions), so its before/after view
  (vbhc.action_effect) shows an effect; the earlier one's year after its start holds no change, so its view shows
  none. The charts show where they started, and a rebase at their start compares the phases.
Written once: a database that already holds targets or actions is left alone.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine

from vbhc import improvement
from vbhc.access import Role, Scope, Viewer
from vbhc.catalog import PROPORTION_KINDS, Catalog, default_catalog
from vbhc.improvement import ActionStatus, Decision, Explanation, SignalStatus, TargetKind

__all__ = ["DEMO_VIEWER", "History", "benchmarks_from_store", "write_history"]

#: Who writes the demo's history: the quality directorate (it may set norms and edit every condition's items).
DEMO_VIEWER = Viewer("vbhc demo", "vbhc demo", (Scope(Role.QUALITY),))
#: The external norm's source: a registry's name is a proper name, shown as stored in either language, so the
#: demo's (fictitious) registry has one that reads the same in both ("Fictieve landelijke norm" showed in Dutch in
#: the English pages).
NORM_SOURCE = "NORMA 2024 (demo)"
#: The actions: (start, due, status, title template, expected effect), the texts filled with the indicator. The
#: first (done, without effect) only on the first worse outlier of the own hospital; the second (under way) on each,
#: starting when the generator's improvement of that outlier does, else on the date given here.
ACTIONS = (
    (dt.date(2023, 4, 1), dt.date(2023, 12, 31), ActionStatus.DONE, "Casusbespreking van elke {label}",
     "Oorzaken in beeld; geen direct effect op de uitkomst verwacht"),
    (dt.date(2024, 10, 1), dt.date(2027, 6, 30), ActionStatus.IN_PROGRESS, "Verbetertraject {label}",
     "Minder {label}, binnen een jaar te zien"),
)  # fmt: skip


@dataclass(frozen=True)
class History:
    """What write_history wrote (item ids), or that it found a history already there."""

    targets: list[str] = field(default_factory=list)
    explained: list[str] = field(default_factory=list)
    actions: list[str] = field(default_factory=list)
    already_there: bool = False

    def summary(self) -> str:
        if self.already_there:
            return "Improvement history: already there, nothing written"
        return (
            f"Improvement history: {len(self.targets)} target(s), {len(self.explained)} explained signal(s), "
            f"{len(self.actions)} action(s)"
        )


def _round(value: float, kind: str) -> float:
    """A target as a team writes it: proportions to half a percent, other values to two significant digits."""
    if kind in PROPORTION_KINDS:
        return round(round(value * 200) / 200, 3)
    if value == 0 or not math.isfinite(value):
        return value
    return round(value, 1 - math.floor(math.log10(abs(value))))


def benchmarks_from_store(engine: Engine, conditions: list[str]) -> dict[tuple[str, str], float]:
    """The benchmark (all units) per (condition, indicator) of the stored hospital-level results of the current
    dataset version (vbhc.results: read from disk, computed when missing)."""
    from vbhc.results import ResultStore, ViewKey

    store = ResultStore(engine)
    version = store.version()
    out: dict[tuple[str, str], float] = {}
    for condition in conditions:
        table = store.result(ViewKey.of(condition, "hospital"), version).table
        for indicator, value in table.groupby("indicator")["target"].first().items():
            if value is not None and math.isfinite(float(value)):
                out[(condition, str(indicator))] = float(value)
    return out


def write_history(
    engine: Engine,
    truth: Mapping[str, Any],
    benchmarks: Mapping[tuple[str, str], float],
    *,
    viewer: Viewer = DEMO_VIEWER,
    catalog: Catalog | None = None,
) -> History:
    """Write the demo's targets, explanations, decisions and actions (see the module docstring) through
    vbhc.improvement; `benchmarks` per (condition, indicator), e.g. from benchmarks_from_store."""
    catalog = catalog or default_catalog()
    if improvement.targets(engine, viewer, active_only=False) or improvement.actions(engine, viewer):
        return History(already_there=True)
    own = str(truth["own_hospital"])
    first_day = dt.date.fromisoformat(str(truth.get("index_period", ["2021-01-01"])[0]))
    planted = {(o["condition"], o["hospital"], o["indicator"]): o for o in truth.get("outliers", [])}
    case_mix = {(c["condition"], c["hospital"], c["indicator"]) for c in truth.get("casemix_only", [])}
    own_worse = [o for o in truth.get("outliers", []) if o["hospital"] == own and o["direction"] == "worse"]

    targets: list[str] = []
    goals: set[tuple[str, str]] = set()
    for outlier in own_worse:
        condition = catalog.condition(outlier["condition"])
        key = [outlier["indicator"], *(i.id for i in condition.indicators if i.id == "mortality_30d")]
        for indicator_id in dict.fromkeys(key):
            benchmark = benchmarks.get((condition.id, indicator_id))
            if benchmark is None or (condition.id, indicator_id) in goals:  # one goal per indicator, unit and date
                continue
            goals.add((condition.id, indicator_id))
            kind = condition.indicator(indicator_id).kind
            goal = improvement.set_target(
                engine, viewer, condition.id, indicator_id, _round(benchmark, kind), unit=own, valid_from=first_day
            )
            targets.append(goal.item_id)
        benchmark = benchmarks.get((condition.id, outlier["indicator"]))
        if benchmark is not None:
            kind = condition.indicator(outlier["indicator"]).kind
            norm = improvement.set_target(
                engine,
                viewer,
                condition.id,
                outlier["indicator"],
                _round(benchmark * 1.25, kind),
                kind=TargetKind.EXTERNAL_NORM,
                source=NORM_SOURCE,
                valid_from=first_day,
            )
            targets.append(norm.item_id)

    explained: list[str] = []
    signal_of: dict[tuple[str, str, str], str] = {}
    for signal in improvement.signals(engine, viewer, status=[SignalStatus.NEW]):
        where = (signal.condition, signal.unit, signal.indicator)
        outlier = planted.get(where)
        if outlier is not None and outlier["direction"] == signal.side:
            text = f"Echt verschil, in de demodata geplant: {outlier.get('note', '')}".strip()
            done = improvement.explain_signal(engine, viewer, signal.item_id, signal.version, Explanation.REAL, text)
            action_needed = signal.unit == own and signal.side == "worse"
            decision = Decision.ACTION if action_needed else Decision.NO_ACTION
            improvement.decide_signal(engine, viewer, signal.item_id, done.version, decision)
            signal_of[where] = signal.item_id
        elif where in case_mix:
            text = "Deze eenheid behandelt oudere en ziekere patiënten dan het casemixmodel meeneemt."
            done = improvement.explain_signal(
                engine, viewer, signal.item_id, signal.version, Explanation.CASE_MIX, text
            )
            improvement.decide_signal(engine, viewer, signal.item_id, done.version, Decision.NO_ACTION)
        else:
            continue
        explained.append(signal.item_id)

    actions: list[str] = []
    improved = {
        (i["condition"], i["hospital"], i["indicator"]): dt.date.fromisoformat(i["start"])
        for i in truth.get("improvements", [])
    }
    for position, outlier in enumerate(own_worse):
        condition = catalog.condition(outlier["condition"])
        label = condition.indicator(outlier["indicator"]).label("nl").lower()
        signal = signal_of.get((condition.id, own, outlier["indicator"]))
        for start, due, status, title, effect in ACTIONS if position == 0 else ACTIONS[1:]:
            if status == ActionStatus.IN_PROGRESS:  # starts the day the generator's improvement does, if one
                start = improved.get((condition.id, own, outlier["indicator"]), start)
            action = improvement.create_action(
                engine,
                viewer,
                condition.id,
                title.format(label=label),
                "verpleegkundig specialist",
                start,
                due,
                unit=own,
                indicators=[outlier["indicator"]],
                signals=[signal] if signal and status != ActionStatus.DONE else [],
                expected_effect=effect.format(label=label),
                status=status,
                catalog=catalog,
            )
            actions.append(action.item_id)
    return History(targets, explained, actions)
