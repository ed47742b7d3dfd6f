"""Did the improvement action make a difference? The indicator of a unit before and after an action's start, with
the difference and its 95% confidence interval, and a verdict in plain words (issue 14).

Why this way:
- Two windows of equal length split at the action's start: the "after" window runs from the start for a year
  (DEFAULT_DAYS), or to the last index date with a known outcome when that comes first; the "before" window has
  the same length and ends the day before the start. Equal lengths, so seasonality and the trend weigh about the
  same on both sides; at most a year, so an older action's "after" does not soak up what later actions did.
- Proportions: the difference after - before with Newcombe's hybrid score interval (Newcombe 1998, method 10:
  Wilson score limits of each proportion combined by the square-and-add rule). It keeps its coverage for small
  windows and rates near 0, where a Wald interval does not; checked against statsmodels'
  confint_proportions_2indep(method="newcomb").
- Continuous indicators (a mean, a PROM score, a cost): Welch's t interval for the difference of the means
  (unequal variances: the after window is often the smaller one).
- Case-mix adjusted yes/no indicators also get O/E per window (exact Poisson CI of O over E, vbhc.benchmark) and
  the ratio O/E after / O/E before with the exact conditional interval (given O_after + O_before, O_after is
  binomial; Clopper-Pearson limits of that split, turned into a ratio of the two rates per expected event). A
  change of case mix after the start then does not pass for an effect.
- The verdict says "more than chance" only when the 95% interval excludes zero, and says in which direction, by
  the indicator's own direction (lower or higher is better). Below the indicator's minimum number of care
  cycles (catalog min_n, at least MIN_CYCLES) in either window it says that there are too few patients to tell.
- Only counts and means leave this module: no patient rows.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import pandas as pd

from vbhc.benchmark import oe_ratio, wilson_ci
from vbhc.catalog import BINARY_KINDS, CONTINUOUS_KINDS
from vbhc.i18n import MISSING, fmt_date, fmt_difference, fmt_int, fmt_number, fmt_ratio, format_value, t
from vbhc.indicators import IndicatorResult, unit_cycle_values
from vbhc.lazy import stats
from vbhc.registry import unit_parts

__all__ = [
    "DEFAULT_DAYS",
    "MIN_CYCLES",
    "Effect",
    "Outcome",
    "Window",
    "action_effect",
    "data_until",
    "exact_rate_ratio",
    "newcombe_difference",
    "unit_level",
    "welch_difference",
]

#: At least this many care cycles in each window before the verdict says anything about an effect.
MIN_CYCLES = 10
#: The windows' length when the data reach that far: a year either side of the start.
DEFAULT_DAYS = 365
LEVEL = 0.95


class Outcome(StrEnum):
    """The verdict on an action's effect on one indicator of one unit."""

    IMPROVED = "improved"  # the interval excludes zero, in the indicator's better direction
    WORSENED = "worsened"
    NO_CHANGE = "no_change"  # the interval holds zero: no change shown
    TOO_FEW = "too_few"  # too few care cycles in a window to tell
    NOT_STARTED = "not_started"  # the action starts after the last data


# --------------------------------------------------------------------------------------------- statistics
def _check(level: float) -> float:
    if not 0 < level < 1:
        raise ValueError(f"level must be between 0 and 1, got {level}")
    return stats.norm.ppf(0.5 + level / 2)


def newcombe_difference(
    events_after: float, n_after: float, events_before: float, n_before: float, level: float = LEVEL
) -> tuple[float, float, float]:
    """p_after - p_before with Newcombe's hybrid score interval (1998, method 10, no continuity correction):
    (difference, lower, upper). Raises ValueError for an empty window or more events than cycles."""
    _check(level)
    for events, n in ((events_after, n_after), (events_before, n_before)):
        if n <= 0 or events < 0 or events > n:
            raise ValueError(f"need 0 <= events <= n and n > 0, got {events} of {n}")
    p2, p1 = events_after / n_after, events_before / n_before
    (l2, l1), (u2, u1) = wilson_ci(np.array([events_after, events_before]), np.array([n_after, n_before]), level)
    diff = p2 - p1
    lower = diff - math.sqrt((p2 - l2) ** 2 + (u1 - p1) ** 2)
    upper = diff + math.sqrt((u2 - p2) ** 2 + (p1 - l1) ** 2)
    return float(diff), float(lower), float(upper)


def welch_difference(
    after: np.ndarray | pd.Series, before: np.ndarray | pd.Series, level: float = LEVEL
) -> tuple[float, float, float]:
    """mean(after) - mean(before) with Welch's t interval (unequal variances, Welch-Satterthwaite df):
    (difference, lower, upper). Needs at least two values on each side."""
    _check(level)
    a, b = np.asarray(after, float), np.asarray(before, float)
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    if len(a) < 2 or len(b) < 2:
        raise ValueError(f"need at least 2 values on each side, got {len(a)} and {len(b)}")
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    diff = float(a.mean() - b.mean())
    se = math.sqrt(va + vb)
    if se == 0:
        return diff, diff, diff
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    half = float(stats.t.ppf(0.5 + level / 2, df)) * se
    return diff, diff - half, diff + half


def exact_rate_ratio(
    observed_after: float, expected_after: float, observed_before: float, expected_before: float, level: float = LEVEL
) -> tuple[float, float, float]:
    """(O/E after) / (O/E before) with the exact conditional interval: O_after given O_after + O_before is binomial
    with p = E_a R / (E_a R + E_b); the Clopper-Pearson limits of p give R = p / (1 - p) * E_b / E_a. NaN ratio
    when a window has no expected events or no events at all were observed."""
    _check(level)
    if expected_after <= 0 or expected_before <= 0:
        return math.nan, math.nan, math.nan
    total = observed_after + observed_before
    if total <= 0:
        return math.nan, math.nan, math.nan
    a = (1 - level) / 2
    k = observed_after
    p_low = stats.beta.ppf(a, k, total - k + 1) if k > 0 else 0.0
    p_high = stats.beta.ppf(1 - a, k + 1, total - k) if k < total else 1.0
    scale = expected_before / expected_after

    def ratio(p: float) -> float:
        return math.inf if p >= 1 else p / (1 - p) * scale

    point = ratio(k / total) if observed_before > 0 else math.inf
    return float(point), float(ratio(p_low)), float(ratio(p_high))


# --------------------------------------------------------------------------------------------- windows
@dataclass(frozen=True)
class Window:
    """One side of the start: its dates (inclusive), care cycles, the indicator's value and, when the indicator is
    case-mix adjusted (yes/no indicators), O/E with its exact 95% CI."""

    first: dt.date
    last: dt.date
    n: int
    value: float  # rate or mean; NaN without cycles
    events: float = math.nan  # yes/no indicators: events among the n cycles
    observed: float = math.nan  # O and E of the cycles with a case-mix expected value (O/E)
    expected: float = math.nan
    oe: float = math.nan
    oe_lower: float = math.nan
    oe_upper: float = math.nan


@dataclass(frozen=True)
class Effect:
    """The indicator of one unit before and after an action's start, the difference after - before with its CI,
    and the verdict."""

    indicator: str
    unit: str
    kind: str
    direction: str  # "lower" or "higher" is better
    start: dt.date
    before: Window | None
    after: Window | None
    outcome: Outcome
    difference: float = math.nan
    lower: float = math.nan
    upper: float = math.nan
    method: str = ""  # "newcombe" or "welch"
    oe_ratio: float = math.nan
    oe_ratio_lower: float = math.nan
    oe_ratio_upper: float = math.nan
    min_n: int = MIN_CYCLES
    data_until: dt.date | None = None

    @property
    def adjusted(self) -> bool:
        return self.before is not None and math.isfinite(self.before.oe) and self.after is not None

    def sentence(self, lang: str) -> str:
        """The verdict in plain words, e.g. 'rate fell from 18.2% to 11.0%; difference -7.2 points (95% CI -12.1
        to -2.3): more than chance, an improvement'."""
        if self.outcome is Outcome.NOT_STARTED:
            return t("action_effect.not_started", lang, date=fmt_date(self.data_until, lang))
        if self.outcome is Outcome.TOO_FEW:
            after = self.after.n if self.after else 0
            before = self.before.n if self.before else 0
            return t(
                "action_effect.too_few",
                lang,
                after=fmt_int(after, lang),
                before=fmt_int(before, lang),
                min_n=fmt_int(self.min_n, lang),
            )
        rate = self.kind in BINARY_KINDS
        before = format_value(self.before.value, self.kind, lang)
        after = format_value(self.after.value, self.kind, lang)
        moved = "same" if before == after else ("fell" if self.difference < 0 else "rose")
        head = t(f"action_effect.{'rate' if rate else 'mean'}_{moved}", lang, before=before, after=after)
        diff = t(
            "action_effect.difference",
            lang,
            difference=self._amount(self.difference, lang),
            lower=self._amount(self.lower, lang, unit=False),
            upper=self._amount(self.upper, lang, unit=False),
        )
        return f"{head}; {diff}: {t(f'action_effect.outcome_{self.outcome}', lang)}"

    def adjusted_sentence(self, lang: str) -> str:
        """O/E before and after and their ratio, for a case-mix adjusted yes/no indicator ('' otherwise)."""
        if not self.adjusted or self.outcome in (Outcome.TOO_FEW, Outcome.NOT_STARTED):
            return ""
        b, a = self.before, self.after
        return t(
            "action_effect.oe",
            lang,
            before=fmt_ratio(b.oe, lang),
            before_ci=_range(b.oe_lower, b.oe_upper, lang),
            after=fmt_ratio(a.oe, lang),
            after_ci=_range(a.oe_lower, a.oe_upper, lang),
            ratio=fmt_ratio(self.oe_ratio, lang),
            ratio_ci=_range(self.oe_ratio_lower, self.oe_ratio_upper, lang),
        )

    def _amount(self, value: float, lang: str, *, unit: bool = True) -> str:
        """A difference with its sign: percentage points for rates ('points' named once, not on the CI's bounds),
        the indicator's own unit otherwise."""
        if not math.isfinite(value):
            return MISSING
        if self.kind in BINARY_KINDS and unit:  # percentage points, as every difference of two rates (fmt_difference)
            return fmt_difference(value, self.kind, lang)
        if self.kind in BINARY_KINDS:
            text = fmt_number(abs(value) * 100, lang, 1)
        else:
            text = format_value(abs(value), self.kind, lang)
        shown = any(c in "123456789" for c in text)  # no sign on a difference that rounds to zero
        return ("−" if value < 0 else "+" if value > 0 else "") * shown + text


def _range(lower: float, upper: float, lang: str) -> str:
    if not (math.isfinite(lower) and math.isfinite(upper)):
        return MISSING
    return t("action_effect.range", lang, lower=fmt_ratio(lower, lang), upper=fmt_ratio(upper, lang))


def _window(part: pd.DataFrame, first: dt.date, last: dt.date, binary: bool) -> tuple[Window, pd.DataFrame]:
    dates = pd.to_datetime(part["index_date"])
    rows = part[(dates >= pd.Timestamp(first)) & (dates <= pd.Timestamp(last))]
    values = rows["observed"].to_numpy(float)
    n = len(values)
    value = float(values.mean()) if n else math.nan
    if not binary:
        return Window(first, last, n, value), rows
    # O/E over the cycles the case-mix model gave an expected value (as the indicator table does: a cycle with a
    # missing case-mix value it cannot impute is left out of the adjusted comparison)
    modelled = rows[rows["expected"].notna()]
    if not len(modelled):  # not adjusted: no O/E
        return Window(first, last, n, value, events=float(values.sum())), rows
    oe = oe_ratio(np.array([modelled["observed"].sum()]), np.array([modelled["expected"].sum()])).iloc[0]
    return (
        Window(
            first,
            last,
            n,
            value,
            events=float(values.sum()),
            observed=float(oe["observed"]),
            expected=float(oe["expected"]),
            oe=float(oe["oe"]),
            oe_lower=float(oe["oe_lower"]),
            oe_upper=float(oe["oe_upper"]),
        ),
        rows,
    )


def unit_level(unit: str) -> str:
    """The level whose results hold `unit` (an action names a unit id, not a level): 'condition@H01' a condition
    team, 'H01/SUR' a department, 'H01' a hospital."""
    if "@" in unit:
        return "condition_team"
    return "hospital" if unit_parts(unit)[1] is None else "department"


def data_until(result: IndicatorResult, indicator: str) -> dt.date | None:
    """The last index date of any unit's care cycle with a known value of the indicator: where the after window
    ends (a later cycle's outcome is not known yet)."""
    values = result.cycle_values
    if values.empty:
        return None
    rows = values[(values["indicator"] == indicator) & values["observed"].notna()]
    if rows.empty:
        return None
    return pd.Timestamp(rows["index_date"].max()).date()


def action_effect(
    result: IndicatorResult,
    indicator: str,
    unit: str,
    start: dt.date,
    *,
    days: int | None = DEFAULT_DAYS,
    level: float = LEVEL,
) -> Effect:
    """The indicator of `unit` in equal windows before and after `start` (see the module docstring); `days` caps
    both windows' length (None: the after window runs to the data's end). `result` should hold all dates (period
    None): a one-year result cuts the windows.
    Raises ValueError for an indicator that is not a yes/no or continuous indicator, or days < 1."""
    ind = result.data.condition.indicator(indicator)
    binary = ind.kind in BINARY_KINDS
    if not binary and ind.kind not in CONTINUOUS_KINDS:
        raise ValueError(f"before and after needs a yes/no or continuous indicator; {indicator!r} is {ind.kind}")
    if days is not None and days < 1:
        raise ValueError(f"days must be at least 1, got {days}")
    min_n = max(MIN_CYCLES, int(ind.min_n))
    base = {"indicator": indicator, "unit": unit, "kind": ind.kind, "direction": ind.direction, "start": start}
    until = data_until(result, indicator)
    if until is None or start > until:
        return Effect(**base, before=None, after=None, outcome=Outcome.NOT_STARTED, min_n=min_n, data_until=until)
    length = (until - start).days + 1
    if days is not None:
        length = min(length, days)
    part = unit_cycle_values(result, indicator, unit)
    part = part[part["observed"].notna()]
    after, after_rows = _window(part, start, start + dt.timedelta(days=length - 1), binary)
    before, before_rows = _window(part, start - dt.timedelta(days=length), start - dt.timedelta(days=1), binary)
    common = {**base, "before": before, "after": after, "min_n": min_n, "data_until": until}
    if before.n < min_n or after.n < min_n:
        return Effect(**common, outcome=Outcome.TOO_FEW)
    if binary:
        diff, lower, upper = newcombe_difference(after.events, after.n, before.events, before.n, level)
        method = "newcombe"
    else:
        diff, lower, upper = welch_difference(after_rows["observed"], before_rows["observed"], level)
        method = "welch"
    if lower > 0 or upper < 0:
        better = (diff < 0) == (ind.direction == "lower")
        outcome = Outcome.IMPROVED if better else Outcome.WORSENED
    else:
        outcome = Outcome.NO_CHANGE
    ratio = (math.nan,) * 3
    if math.isfinite(before.oe) and math.isfinite(after.oe):
        ratio = exact_rate_ratio(after.observed, after.expected, before.observed, before.expected, level)
    return Effect(
        **common,
        outcome=outcome,
        difference=diff,
        lower=lower,
        upper=upper,
        method=method,
        oe_ratio=ratio[0],
        oe_ratio_lower=ratio[1],
        oe_ratio_upper=ratio[2],
    )
