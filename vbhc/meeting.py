"""Since the last meeting: per indicator the change from the previous period, new signals, and how far the
data reach.

Definitions (also shown on the pages):
- Data complete until: the latest date that every table loaded with the indicators has reached, i.e. the
  minimum over the tables of their latest date (care cycles: index_date; PROMs: completed_date; clinical
  outcome dates when the caller passes them). It says how far the registry reaches, not that every outcome
  window of the most recent care cycles has closed: a 30-day outcome of a cycle started last week is simply
  not there yet (the indicators leave cycles without a recorded outcome out).
- Periods: the latest period is the comparison length (month, quarter, half year, year) ending at the
  data-complete date; the previous period is the same length just before it.
- Change: crude values per period (not case-mix adjusted: case mix rarely moves much between adjacent
  periods, and the verdict does the adjusted comparison). Beyond chance = two-sided p < 0.05: pooled
  two-proportion z-test for yes/no indicators, Welch's t-test for means. Arrow ↑/↓/→ by the sign of the
  change (→ no change or no data), coloured better/worse by the indicator's direction only when beyond
  chance, otherwise grey.
- New signal: a signal (verdict outside the deciding limits, or special-cause variation at the last point
  of the SPC chart, vbhc.spc) present in the data now that was not present in the data up to the meeting
  date (the indicator table recomputed, case-mix models included, on care cycles up to that date).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from vbhc import indicators, verdict
from vbhc.catalog import BINARY_KINDS, SURVIVAL_KINDS
from vbhc.lazy import special
from vbhc.registry import Period

__all__ = [
    "COMPARISON_MONTHS",
    "changes",
    "data_complete_until",
    "default_meeting_date",
    "result_as_of",
    "signalled",
    "signals",
    "since_date",
    "since_last_meeting",
    "windows",
]

COMPARISON_MONTHS = {"month": 1, "quarter": 3, "half_year": 6, "year": 12}
ALPHA = 0.05
ARROWS = {1: "↑", -1: "↓", 0: "→"}


def default_meeting_date(today: dt.date | None = None) -> dt.date:
    """The first day of the current month (the sidebar's meeting date when none is chosen)."""
    today = today or dt.date.today()
    return today.replace(day=1)


#: What the "since the last meeting" date is: the one chosen in the sidebar, the last recorded meeting, (none
#: recorded) the start of the latest period with data, or (no data either) the first of this month
SINCE_CHOSEN, SINCE_RECORDED, SINCE_DATA, SINCE_MONTH = "chosen", "recorded", "data", "month"


def since_date(
    chosen: dt.date | None,
    recorded: dt.date | None,
    until: pd.Timestamp | dt.date | None,
    comparison: str = "quarter",
    today: dt.date | None = None,
) -> tuple[dt.date, str]:
    """The date "since the last meeting" compares with, and what it is (SINCE_*): the date the viewer chose (not
    the sidebar's default, default_meeting_date), else the last recorded meeting, else the start of the latest
    comparison period of the data (`until`: data_complete_until). Why: the first of this month lies after a
    registry's last import more often than not, so nothing was ever new since it until a meeting was recorded."""
    if chosen is not None and chosen != default_meeting_date(today):
        return chosen, SINCE_CHOSEN
    if recorded is not None:
        return recorded, SINCE_RECORDED
    if until is None or pd.isna(until):
        return default_meeting_date(today), SINCE_MONTH
    return windows(pd.Timestamp(until), comparison)[1].start, SINCE_DATA


def data_complete_until(data: indicators.ConditionData, outcome_dates: pd.Series | None = None) -> pd.Timestamp:
    """The minimum over the tables of their latest date (see the module docstring); NaT without data."""
    latest = [pd.to_datetime(data.cycles["index_date"]).max()]
    if outcome_dates is not None and outcome_dates.notna().any():
        latest.append(pd.to_datetime(outcome_dates).max())
    scores = data.scores
    if len(scores) and "completed_date" in scores and scores["completed_date"].notna().any():
        latest.append(pd.to_datetime(scores["completed_date"]).max())
    latest = [d for d in latest if pd.notna(d)]
    return min(latest) if latest else pd.NaT


def windows(until: pd.Timestamp, comparison: str = "quarter") -> tuple[Period, Period]:
    """(previous, latest): two adjacent periods of the comparison length, the latest ending at `until`."""
    months = COMPARISON_MONTHS[comparison]
    end = pd.Timestamp(until).normalize()
    start = end + pd.Timedelta(days=1) - pd.DateOffset(months=months)
    prev_end = start - pd.Timedelta(days=1)
    prev_start = start - pd.DateOffset(months=months)
    latest = Period(start.date(), end.date(), f"{start.date()}..{end.date()}")
    previous = Period(prev_start.date(), prev_end.date(), f"{prev_start.date()}..{prev_end.date()}")
    return previous, latest


def _welch_p(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sided p-value of Welch's t-test of b against a: scipy.stats.ttest_ind(b, a, equal_var=False) step by
    step (its mean, its variance as the mean squared deviation times n/(n-1), its degrees of freedom and
    Student's t from scipy.special), so a page drawing "since the last meeting" does not import scipy.stats
    (vbhc.lazy); tests/test_meeting.py checks the two agree exactly."""
    n1, n2 = b.size, a.size
    m1, m2 = b.mean(), a.mean()
    v1 = np.mean((b - m1) ** 2) * (n1 / (n1 - 1))
    v2 = np.mean((a - m2) ** 2) * (n2 / (n2 - 1))
    vn1, vn2 = v1 / n1, v2 / n2
    with np.errstate(divide="ignore", invalid="ignore"):
        df = (vn1 + vn2) ** 2 / (vn1**2 / (n1 - 1) + vn2**2 / (n2 - 1))
        t = np.divide(m1 - m2, np.sqrt(vn1 + vn2))
    df = 1.0 if np.isnan(df) else df
    return float(2 * special.stdtr(df, -np.abs(t)))


def _test(kind: str, a: np.ndarray, b: np.ndarray) -> float:
    """Two-sided p-value of the difference between period a (previous) and b (latest)."""
    if len(a) < 2 or len(b) < 2:
        return float("nan")
    if kind in BINARY_KINDS:
        x1, n1, x2, n2 = a.sum(), len(a), b.sum(), len(b)
        pooled = (x1 + x2) / (n1 + n2)
        se = np.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
        if se == 0:
            return 1.0
        # 2 * scipy.stats.norm.sf(z): the normal survival function is scipy.special.ndtr(-z)
        return float(2 * special.ndtr(-(abs(x2 / n2 - x1 / n1) / se)))
    if np.std(a) == 0 and np.std(b) == 0:
        return 1.0 if a.mean() == b.mean() else 0.0
    return _welch_p(a, b)


#: The columns of changes() without any values
_CHANGES_COLUMNS = ["indicator", "kind", "previous", "current", "change", "arrow", "p_value"]


def _period_values(
    part: pd.DataFrame, previous: Period, latest: Period
) -> tuple[set[str], dict[tuple[str, int], np.ndarray]]:
    """The unit's indicators with any value, and per (indicator, 0 = previous / 1 = latest period) the observed
    values (missing ones left out) in the order of the per-cycle table: one pass over the unit's rows, not one
    per indicator."""
    dates = pd.to_datetime(part["index_date"])
    in_prev = ((dates >= pd.Timestamp(previous.start)) & (dates <= pd.Timestamp(previous.end))).to_numpy()
    in_latest = ((dates >= pd.Timestamp(latest.start)) & (dates <= pd.Timestamp(latest.end))).to_numpy()
    observed = part["observed"].to_numpy(float)
    codes, names = pd.factorize(part["indicator"], sort=False)
    window = np.where(in_prev, 0, np.where(in_latest, 1, -1))
    keep = np.flatnonzero((window >= 0) & (codes >= 0) & ~np.isnan(observed))
    # stable: within an (indicator, period) the values keep their order, so sums and means are the same floats
    keep = keep[np.lexsort((window[keep], codes[keep]))]
    group = codes[keep] * 2 + window[keep]
    if not keep.size:  # no values in either period (the indicators are still listed, untested)
        return {str(n) for n in names}, {}
    starts = np.flatnonzero(np.r_[True, group[1:] != group[:-1]])
    ends = np.r_[starts[1:], keep.size]
    found = {
        (str(names[group[s] // 2]), int(group[s] % 2)): observed[keep[s:e]] for s, e in zip(starts, ends, strict=True)
    }
    return {str(n) for n in names}, found


def changes(
    result: indicators.IndicatorResult, unit: str, until: pd.Timestamp, comparison: str = "quarter"
) -> pd.DataFrame:
    """Per indicator of the unit: previous and latest crude value, change, arrow, p-value, assessment.

    assessment: "better"/"worse" (beyond chance, by the indicator's direction), "no change" (within
    chance), "" (not tested: too few cycles in a period).
    """
    previous, latest = windows(until, comparison)
    values = result.cycle_values
    rows = []
    if values.empty:
        return pd.DataFrame(columns=_CHANGES_COLUMNS)
    present, by_period = _period_values(values[values["unit"] == unit], previous, latest)
    empty = np.array([], dtype=float)
    for ind in result.data.condition.indicators:
        if ind.id not in present:
            continue
        a, b = by_period.get((ind.id, 0), empty), by_period.get((ind.id, 1), empty)
        prev_v = float(a.mean()) if a.size else np.nan
        cur_v = float(b.mean()) if b.size else np.nan
        p = _test(ind.kind, a, b)
        if ind.kind in SURVIVAL_KINDS:
            # not compared by period: the latest period's patients have been followed for weeks, the previous
            # period's for months longer, so their shares of deaths differ for that reason alone (new signals of
            # the survival verdict still show)
            prev_v = cur_v = p = np.nan
        change = cur_v - prev_v
        sign = int(np.sign(change)) if np.isfinite(change) else 0
        if not np.isfinite(p):
            assessment = ""
        elif p < ALPHA and sign != 0:
            assessment = "better" if (sign > 0) == (ind.direction == "higher") else "worse"
        else:
            assessment = "no change"
        rows.append(
            {
                "indicator": ind.id,
                "kind": ind.kind,
                "direction": ind.direction,
                "label_en": ind.label_en,
                "label_nl": ind.label_nl,
                "n_previous": a.size,
                "n_current": b.size,
                # the counts a yes/no share is made of, shown beside it (a share of four cycles reads otherwise)
                "events_previous": float(a.sum()) if ind.kind in BINARY_KINDS else np.nan,
                "events_current": float(b.sum()) if ind.kind in BINARY_KINDS else np.nan,
                "previous": prev_v,
                "current": cur_v,
                "change": change,
                "arrow": ARROWS[sign],
                "p_value": p,
                "beyond_chance": bool(np.isfinite(p) and p < ALPHA),
                "assessment": assessment,
            }
        )
    out = pd.DataFrame(rows)
    out.attrs["previous"], out.attrs["latest"] = previous, latest
    return out


def as_of_period(first: dt.date, date: dt.date, within: Period | None = None) -> Period | None:
    """The period of the care cycles as they were at `date`: from the first care cycle (or the viewed period's
    start) up to the date (or the period's end, when earlier). As a plain date range it is a view like any other,
    so the results store keeps the table as it was at the meeting (vbhc.results.default_views). None when the
    date lies before the start."""
    if within is not None and date >= within.end:
        return within  # the whole period had passed: the same view
    start = within.start if within is not None else first
    end = min(within.end, date) if within is not None else date
    if end < start:
        return None
    return Period(start, end, f"{start.isoformat()}..{end.isoformat()}")


def as_of_label(current: indicators.IndicatorResult, when: dt.date) -> str | None:
    """The period label of the view as it was at `when` (the view of the results store that holds it); None for
    an empty view."""
    cycles = current.data.cycles if current.data is not None else None
    if cycles is None or cycles.empty:
        return None
    dates = pd.to_datetime(cycles["index_date"])
    if unchanged_since(dates, when):
        return current.period.label if current.period is not None else ""
    period = as_of_period(pd.Timestamp(dates.min()).date(), when, current.period)
    return period.label if period is not None else None


def unchanged_since(index_dates: pd.Series, when: dt.date | pd.Timestamp) -> bool:
    """Whether no care cycle of a view started after `when`: the view as it was then holds the same care cycles
    (with the outcomes and questionnaires recorded since), so its table is the view's own table. A monthly meeting
    after the last import is this case; it then needs no second table computed or stored."""
    last = pd.to_datetime(index_dates).max()
    return pd.notna(last) and pd.Timestamp(last) <= pd.Timestamp(when)


def result_as_of(
    result: indicators.IndicatorResult,
    date: dt.date | pd.Timestamp,
    only: list[str] | None = None,
    *,
    reference: indicators.ConditionData | None = None,
) -> indicators.IndicatorResult:
    """The indicator table as it was with the care cycles up to `date` (models refitted on those data); `only`
    limits it to those indicators (e.g. the key indicators of the overview). For a comparison group the models
    are the registry's as it was then, recalibrated to the group: `reference` is that registry's data up to
    `date` when the caller has it (with the models its stored view holds), else it is cut and fitted here."""
    data = result.data
    first = pd.to_datetime(data.cycles["index_date"]).min()
    end = pd.Timestamp(date)
    period = as_of_period(end.date() if pd.isna(first) or first > end else first.date(), end.date())
    computed = list(pd.unique(result.table["indicator"])) if len(result.table) else None
    if only is not None:
        computed = [i for i in (computed or only) if i in set(only)]
    registry = reference if reference is not None else data.reference
    if unchanged_since(data.cycles["index_date"], end) and (
        registry is None or unchanged_since(registry.cycles["index_date"], end)
    ):
        # the same care cycles (and, for a comparison group, the same registry its models come from): the same table
        kept = result.table if computed is None else result.table[result.table["indicator"].isin(computed)]
        return dataclasses.replace(result, table=kept.reset_index(drop=True))
    then = indicators.restrict(data, period)
    if reference is not None and then.reference is not None:
        then.reference = reference  # the group's cycles up to `date` are among the registry's up to `date`
    return indicators.compute_indicators(then, result.level, indicators=computed)


def signals(
    result: indicators.IndicatorResult,
    unit: str,
    until: dt.date | pd.Timestamp | None = None,
    *,
    charts: dict[str, pd.DataFrame] | None = None,
) -> dict[str, set[str]]:
    """Per indicator the signals of the unit: "worse"/"better" (verdict outside the deciding limits) and
    "concern"/"improvement" (special cause at the SPC chart's last point); data up to `until` for the chart.

    `charts`: the unit's quarterly SPC charts of `result` (vbhc.unit_charts.unit_charts) when the caller already
    has them, as a page that shows them does: the same charts, not drawn a second time (only without `until`)."""
    if charts is not None and until is not None:
        raise ValueError("charts are the charts of all data; signals up to a date draw their own")
    out: dict[str, set[str]] = {}
    mine = result.table[result.table["unit"] == unit]
    for _, row in mine.iterrows():
        if row["kind"] in ("volume",):
            continue
        found: set[str] = set()
        chart = None
        if charts is not None:
            chart = charts.get(str(row["indicator"]))
        elif row["kind"] != "response_rate":
            chart = indicators.indicator_over_time(result, row["indicator"], unit, until=until)
        v = verdict.verdict(row, chart if chart is not None and len(chart) else None)
        if v.category in ("better", "worse") and v.decisive:
            found.add(v.category)
        if v.variation in ("improvement", "concern"):
            found.add(v.variation)
        out[str(row["indicator"])] = found
    return out


def unit_signals(
    result: indicators.IndicatorResult,
    until: dt.date | pd.Timestamp | None = None,
    *,
    pause: Callable[[], None] | None = None,
) -> dict[str, dict[str, set[str]]]:
    """signals() of every unit of the result, by unit: computed once per view (and kept in the results store,
    vbhc.results), so picking another unit in a meeting reads them instead of drawing every SPC chart again.
    `pause` is called before each unit (a server computing them in the background waits there for its pages)."""
    out: dict[str, dict[str, set[str]]] = {}
    for unit in result.table["unit"].unique():
        if pause is not None:
            pause()
        out[str(unit)] = signals(result, str(unit), until)
    return out


def signalled(now: dict[str, set[str]], only: Sequence[str] | None = None) -> tuple[str, ...]:
    """The indicators with a signal now (of `only`, when given), sorted: the only ones of which since_last_meeting reads
    the view at the meeting (`before`: its rows and their signals then). An indicator without a signal now has no
    new one, whatever it had then, so a `before` with only these indicators' rows gives the same table. Why: a
    comparison group's view at the meeting is computed for the click that picks the group (not stored ahead), and
    the whole view and its signals then were over half of that click's CPU (0.6-0.8 s on the 50k demo)."""
    return tuple(sorted(str(k) for k, v in now.items() if v and (only is None or k in only)))


def _benchmark_withheld(table: pd.DataFrame, unit: str) -> set[str]:
    """The indicators of the unit's rows whose benchmark and model figures the viewer's table withholds
    (vbhc.access.indicator_rows: too few other units counted). Their signals are judged against those figures
    (the verdict against the benchmark, the SPC chart around the expected values), so they are not shown."""
    from vbhc.access import BENCHMARK_WITHHELD

    if BENCHMARK_WITHHELD not in table or "indicator" not in table:
        return set()
    mine = table[(table["unit"].astype(str) == str(unit)) & table[BENCHMARK_WITHHELD].fillna(False).astype(bool)]
    return set(mine["indicator"].astype(str))


def since_last_meeting(
    result: indicators.IndicatorResult,
    unit: str,
    meeting: dt.date | pd.Timestamp,
    comparison: str = "quarter",
    before: indicators.IndicatorResult | None = None,
    until: pd.Timestamp | None = None,
    *,
    now: dict[str, dict[str, set[str]]] | None = None,
    then: dict[str, dict[str, set[str]]] | None = None,
    unchanged: bool = False,
) -> pd.DataFrame:
    """changes() with a new_signals column (sorted names of the signals new since the meeting).

    `before` is the result on the data up to the meeting (result_as_of; computed when not given);
    `until` the data-complete date (data_complete_until when not given); `now` and `then` the unit_signals()
    of `result` and of `before` up to the meeting when the caller has them; `unchanged` when no care cycle of the
    view started after the meeting (as_of_label gave the view itself): the signals then are the signals now.
    `result` is the viewer's view (vbhc.access.indicator_rows): `now` and `then` are shared by every viewer and
    computed on every unit's figures, so an indicator whose benchmark the viewer's rows withhold gets no new signal.
    attrs: complete_until, meeting.
    """
    until = pd.Timestamp(until) if until is not None else data_complete_until(result.data)
    table = changes(result, unit, until, comparison)
    if before is None:
        before = result_as_of(result, meeting)
    now_signals = now[unit] if now is not None and unit in now else signals(result, unit)
    if then is not None:
        then_signals = then.get(unit, {})
    elif unchanged:
        then_signals = now_signals
    else:
        then_signals = signals(before, unit, until=meeting) if unit in set(before.table["unit"]) else {}
    known = set(before.table["indicator"]) if len(before.table) else set()
    known -= _benchmark_withheld(result.table, unit)
    new: dict[str, Any] = {
        k: sorted(v - then_signals.get(k, set())) if k in known else [] for k, v in now_signals.items()
    }
    if len(table):
        table["new_signals"] = [new.get(i, []) for i in table["indicator"]]
    else:
        table["new_signals"] = []
    table.attrs["complete_until"], table.attrs["meeting"] = until, pd.Timestamp(meeting)
    return table
