"""Statistical process control in the NHS "Making Data Count" convention: rules per point, variation and
assurance icons, XmR and p charts with moving-range screening, a frozen baseline and rebasing.

Pure functions on numpy/pandas (no Streamlit). Reuses vbhc.benchmark for the run helper.

Charts
- XmR (individuals): centre = mean of the baseline points; sigma = MR_bar / 1.128 (d2 for n = 2), limits
  centre +/- 3 sigma (= 2.66 MR_bar). Moving-range screening (``screen_mr=True``, the default, as in
  NHSRplotthedots' ``screen_outliers``; Nelson 1982): moving ranges of 3.267 x MR_bar (the upper limit of
  the mR chart) or more are left out and MR_bar is computed again from the rest, once.
- p chart: centre p_bar = sum events / sum n over the baseline points, sigma_i = sqrt(p_bar (1 - p_bar) / n_i);
  ``laney=True`` multiplies sigma_i by sigma_z = mean moving range of the z-scores / 1.128 (Laney's p').
- Frozen baseline (``baseline=N``): centre and sigma come from the first N points (of each segment) and are
  extended unchanged over the later points, which are then judged against them.
- Rebase (``rebase=[date, ...]``): the series is cut into segments at those dates; each segment gets limits
  from its own points (its first N with a frozen baseline), and the rules run within a segment only. Rebasing
  at an improvement action's start (the "phase" of SPC practice) compares before and after honestly: a period
  that starts on or after the date belongs to the phase after it, a period that starts before it (and so holds
  care from before the action) to the phase before. ``phases`` summarises each phase: its centre, its limits
  and whether it has enough points for limits to be more than provisional (MIN_PHASE_POINTS).

Rules, every point of a qualifying pattern flagged (column per rule, ``rule`` = the first that fired in the
order below, ``rules`` = all of them, ``signal`` = any):
- ``beyond_limits``: a point above the upper or below the lower 3-sigma limit.
- ``trend``: TREND_RUN = 6 or more consecutive points each strictly higher (or lower) than the one before
  (ties break it); it may cross the centre line.
- ``two_of_three``: two of three consecutive points beyond 2 sigma on the same side of the centre (the
  third may be anywhere); the points beyond 2 sigma are flagged, not the third.
- ``shift``: SHIFT_RUN = 7 or more consecutive points on one side of the centre line (NHS Making Data
  Count; a point on the centre line or missing breaks the run).
- ``anhoej_run`` (Anhøj & Olesen 2014): a run on one side of the centre longer than round(log2(n) + 3),
  n = the useful points (not on the centre line) of the segment; the points of that run are flagged.
- ``anhoej_crossings`` (chart level, repeated on every point of the segment, not part of ``signal``): fewer
  crossings of the centre line than qbinom(0.05, n - 1, 0.5), the 5th percentile of Binomial(n - 1, 1/2).
The direction of a special cause (variation icon, "rising/falling since"): the trend's direction for a
point in a trend that is not beyond the limits, otherwise the point's side of the centre line.

Where this differs from the reference tools
- qicharts2 (Anhøj): its control charts use the 3-sigma rule and the two Anhøj rules only (no fixed shift or
  trend length, no two-of-three); it reports one runs signal per chart (either Anhøj rule) and marks the
  centre line, where this module flags the points of a too-long run and keeps crossings per chart.
  qicharts2 screens moving ranges only when option ``qic.screenedmr`` is set (default off); here screening
  is on by default (``screen_mr=False`` for qicharts2's default). Run charts (``run_chart``) use the median,
  as qicharts2 does.
- NHSRplotthedots: 3 sigma, shift of 7, two-in-three and a trend of 7 points (here 6, the value the NHS
  Making Data Count guidance and vbhc.benchmark.run_rules use); no Anhøj rules and no p chart (XmR only).
  Its two-in-three rule also requires all three points of the window on the same side of the mean; here
  only the two points beyond 2 sigma must share a side. Screening, baseline (``fix_after_n_points``),
  rebasing, the precedence of the direction (limits, trend, two-in-three, shift) and the icons follow it:
  the variation icon is the type of the last point; assurance compares the target with the process limits
  of the last segment (higher is better: lower limit above the target = consistently met, upper limit
  below it = consistently not met, else inconsistent; mirrored for lower is better; no target or no
  direction = no assurance icon).
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from functools import cache
from typing import Literal

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from vbhc.benchmark import _run_lengths

__all__ = [
    "D2",
    "MIN_ICON_POINTS",
    "MIN_PHASE_POINTS",
    "MR_UPPER",
    "RULES",
    "SHIFT_RUN",
    "TOO_FEW_PERIODS",
    "TREND_RUN",
    "anhoej",
    "anhoej_crossings_limit",
    "anhoej_run_limit",
    "assurance",
    "mean_moving_range",
    "p_chart",
    "phases",
    "point_rules",
    "run_chart",
    "variation",
    "xmr_chart",
]

SHIFT_RUN = 7  #: NHS Making Data Count (qicharts2 uses the Anhøj run rule instead; some texts use 8)
TREND_RUN = 6
D2 = 1.128  #: d2 for moving ranges of 2 points
MR_UPPER = 3.267  #: D4 for n = 2: the upper limit of the moving-range chart, x MR_bar
RULES = ("beyond_limits", "trend", "two_of_three", "shift", "anhoej_run")
#: Fewer points than this give a phase provisional limits (Provost & Murray, The Health Care Data Guide: limits
#: from 12 points are trial limits, 20 or more are steadier): the page says so beside a rebased chart.
MIN_PHASE_POINTS = 12
#: Fewer periods with data than this give no Making Data Count icon (TOO_FEW_PERIODS instead): one period is its own
#: centre line and two give a single moving range, so "common cause variation" or "target met inconsistently"
#: from them is a verdict the chart cannot support (a registry whose care cycles all fall in one quarter showed both).
MIN_ICON_POINTS = 3
#: The variation and assurance icon of a chart with fewer than MIN_ICON_POINTS periods with data.
TOO_FEW_PERIODS = "too_few_periods"

#: The chance below which too few crossings signal, less a hair for ties (R's qbinom), as an exact fraction
_CROSSINGS_P = Fraction(0.05 - 1e-12)

Direction = Literal["higher", "lower"] | None


# ------------------------------------------------------------------------------------------ Anhøj
def anhoej_run_limit(n: int) -> int:
    """Longest run expected by chance among n useful points: round(log2(n) + 3) (a longer run signals)."""
    return round(float(np.log2(n)) + 3) if n > 0 else 0


@cache
def anhoej_crossings_limit(n: int) -> int:
    """Fewest crossings expected by chance among n useful points: qbinom(0.05, n - 1, 0.5) (fewer signal)."""
    if n < 2:
        return 0
    # smallest k with P(X <= k) >= 0.05 (R's qbinom), in whole numbers: P(X <= k) = sum of C(n-1, i) for i <= k,
    # over 2^(n-1), so no rounding at ties and no SciPy to import for the charts of a page (vbhc.lazy); the same
    # limits as scipy.stats.binom.cdf (tests/test_spc.py compares them)
    m = n - 1
    # below >= p/q * 2^m as below * q >= p * 2^m: whole numbers throughout (comparing with a Fraction took
    # a gcd per step), each C(m, k) from the one before
    target = _CROSSINGS_P.numerator << m
    scale = _CROSSINGS_P.denominator
    below = comb = 0
    for k in range(n):
        comb = 1 if k == 0 else comb * (m - k + 1) // k
        below += comb
        if below * scale >= target:
            return k
    return m


def anhoej(values: ArrayLike, centre: ArrayLike) -> dict[str, object]:
    """The Anhøj run-chart rules of one series around its centre line (points on the line are not useful).

    Returns n_useful, longest_run, run_limit, runs_signal (longest_run > run_limit), crossings,
    crossings_limit, crossings_signal (crossings < crossings_limit) and run_points (bool per point: part of
    a run longer than the limit).
    """
    v = np.asarray(values, dtype=float)
    c = np.broadcast_to(np.asarray(centre, dtype=float), v.shape)
    side = np.sign(np.where(np.isfinite(v) & np.isfinite(c), v - c, 0.0))
    useful = np.flatnonzero(side != 0)
    s = side[useful]
    n = int(useful.size)
    _, length = _run_lengths(s)
    longest = int(length.max()) if n else 0
    crossings = int(np.count_nonzero(s[1:] != s[:-1])) if n > 1 else 0
    run_limit, cross_limit = anhoej_run_limit(n), anhoej_crossings_limit(n)
    run_points = np.zeros(v.shape, bool)
    if n:
        run_points[useful] = length > run_limit
    return {
        "n_useful": n,
        "longest_run": longest,
        "run_limit": run_limit,
        "runs_signal": bool(n and longest > run_limit),
        "crossings": crossings,
        "crossings_limit": cross_limit,
        "crossings_signal": bool(n > 1 and crossings < cross_limit),
        "run_points": run_points,
    }


# ------------------------------------------------------------------------------------------ rules
def _shift(side: np.ndarray, run: int) -> np.ndarray:
    _, length = _run_lengths(side)
    return (side != 0) & (length >= run)


def _trend(v: np.ndarray, run: int) -> tuple[np.ndarray, np.ndarray]:
    """Points in >= run consecutive strictly rising/falling points, and the trend's direction per point."""
    flag, direction = np.zeros(v.shape, bool), np.zeros(v.shape)
    if v.size < 2 or run < 2:
        return flag, direction
    d = np.diff(v)
    step = np.sign(np.where(np.isfinite(d), d, 0.0))
    _, length = _run_lengths(step)
    ok = (step != 0) & (length >= run - 1)
    for lo, hi in ((slice(None, -1), ok), (slice(1, None), ok)):
        flag[lo] |= hi
        direction[lo] = np.where(hi, step, direction[lo])
    return flag, direction


def _two_of_three(v: np.ndarray, c: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """Points beyond 2 sigma that, with another such point on the same side, lie within 3 consecutive points."""
    with np.errstate(invalid="ignore"):
        hi = np.where(np.isfinite(v), v > c + 2 * sigma, False)
        lo = np.where(np.isfinite(v), v < c - 2 * sigma, False)
    out = np.zeros(v.shape, bool)
    for beyond in (hi, lo):
        for i in range(v.size - 1):
            window = beyond[i : i + 3]
            if window.sum() >= 2:
                out[i : i + 3] |= window
    return out


def point_rules(
    values: ArrayLike,
    centre: ArrayLike,
    sigma: ArrayLike,
    *,
    segments: ArrayLike | None = None,
    shift_run: int = SHIFT_RUN,
    trend_run: int = TREND_RUN,
    direction: Direction = None,
) -> pd.DataFrame:
    """All rules per point of a chart with the given centre and sigma (limits at 3 sigma), within segments.

    Columns: one bool per rule (RULES), anhoej_crossings (chart level), signal, rule (first fired, "" if
    none), rules ("; "-joined), special_side (+1 above / -1 below or rising / falling, 0 = common cause) and
    point_type ("common_cause", "improvement", "concern" or "neutral").
    """
    return pd.DataFrame(
        _rule_columns(
            values, centre, sigma, segments=segments, shift_run=shift_run, trend_run=trend_run, direction=direction
        )
    )


def _rule_columns(
    values: ArrayLike,
    centre: ArrayLike,
    sigma: ArrayLike,
    *,
    segments: ArrayLike | None,
    shift_run: int,
    trend_run: int,
    direction: Direction,
) -> dict[str, np.ndarray]:
    """point_rules' columns as arrays (a chart adds them to its own columns: one frame built, not two joined)."""
    v = np.asarray(values, dtype=float)
    c = np.broadcast_to(np.asarray(centre, dtype=float), v.shape)
    s = np.broadcast_to(np.asarray(sigma, dtype=float), v.shape)
    seg = np.zeros(v.size, int) if segments is None else pd.factorize(np.asarray(segments))[0]
    cols = {r: np.zeros(v.size, bool) for r in (*RULES, "anhoej_crossings")}
    side_of_point = np.sign(np.where(np.isfinite(v), v - c, 0.0))
    trend_dir = np.zeros(v.size)
    for g in np.unique(seg):
        ix = np.flatnonzero(seg == g)
        vv, cc, ss = v[ix], c[ix], s[ix]
        side = side_of_point[ix]
        with np.errstate(invalid="ignore"):
            cols["beyond_limits"][ix] = np.where(np.isfinite(vv), np.abs(vv - cc) > 3 * ss, False)
        cols["two_of_three"][ix] = _two_of_three(vv, cc, ss)
        cols["shift"][ix] = _shift(side, shift_run)
        flag, tdir = _trend(vv, trend_run)
        cols["trend"][ix], trend_dir[ix] = flag, tdir
        a = anhoej(vv, cc)
        cols["anhoej_run"][ix] = a["run_points"]
        cols["anhoej_crossings"][ix] = a["crossings_signal"]
    signal = np.zeros(v.size, bool)
    for r in RULES:
        signal |= cols[r]
    names = np.array(RULES, dtype=object)
    hits = np.column_stack([cols[r] for r in RULES]) if v.size else np.zeros((0, len(RULES)), bool)
    rule = np.array([names[h][0] if h.any() else "" for h in hits], dtype=object)
    rules = np.array(["; ".join(names[h]) for h in hits], dtype=object)
    # direction of the special cause: the point's side, or the trend's direction when only a trend fired
    special_side = np.where(signal, side_of_point, 0.0)
    special_side = np.where(cols["trend"] & ~cols["beyond_limits"], trend_dir, special_side)
    if direction is None:
        point_type = np.where(signal, "neutral", "common_cause")
    else:
        good = 1.0 if direction == "higher" else -1.0
        point_type = np.where(
            ~signal,
            "common_cause",
            np.where(special_side == good, "improvement", np.where(special_side == 0, "neutral", "concern")),
        )
    return {
        **cols,
        "signal": signal,
        "rule": rule,
        "rules": rules,
        "special_side": special_side,
        "point_type": point_type.astype(object),
    }


# ------------------------------------------------------------------------------------------ charts
def mean_moving_range(values: ArrayLike, screen: bool = True) -> float:
    """Mean moving range of consecutive finite values; with `screen`, ranges of 3.267 x MR_bar or more are left
    out and the mean taken again (once)."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if v.size < 2:
        return float("nan")
    mr = np.abs(np.diff(v))
    bar = float(mr.mean())
    if screen:
        kept = mr[mr < MR_UPPER * bar]
        # a series that is constant but for one point has only zero ranges left: limits of zero width would put
        # every other point "beyond the limits" (special cause: concern); the unscreened mean is kept then
        screened = float(kept.mean()) if kept.size else bar
        bar = screened if screened > 0 else bar
    return bar


def _segments(periods: pd.Series, rebase: Sequence | None) -> np.ndarray:
    if not rebase:
        return np.zeros(len(periods), int)
    cuts = sorted(pd.Timestamp(d) for d in rebase)
    when = pd.to_datetime(periods).to_numpy()
    return np.searchsorted(np.array(cuts, dtype="datetime64[ns]"), when, side="right")


def _baseline_mask(seg: np.ndarray, finite: np.ndarray, baseline: int | None) -> np.ndarray:
    """Points whose values set the limits: all of each segment, or its first `baseline` points with data."""
    if not baseline:
        return finite.copy()
    mask = np.zeros(seg.size, bool)
    for g in np.unique(seg):
        ix = np.flatnonzero((seg == g) & finite)
        mask[ix[:baseline]] = True
    return mask


def _finish(
    columns: dict[str, np.ndarray],
    v: np.ndarray,
    direction: Direction,
    shift_run: int,
    trend_run: int,
    target: float | None,
) -> pd.DataFrame:
    """The chart's frame: its `columns`, then the rule columns of its values `v`, with the icons in attrs (from the
    arrays: a meeting draws a chart for every indicator of every unit)."""
    rules = _rule_columns(
        v,
        columns["centre"],
        columns["sigma"],
        segments=columns["segment"],
        shift_run=shift_run,
        trend_run=trend_run,
        direction=direction,
    )
    out = pd.DataFrame({**columns, **rules})
    points = int(np.isfinite(v).sum())
    if 0 < points < MIN_ICON_POINTS:
        out.attrs["variation"] = out.attrs["assurance"] = TOO_FEW_PERIODS
        return out
    out.attrs["variation"] = _variation(v, rules["point_type"])
    out.attrs["assurance"] = (
        _assurance(float(columns["lower"][-1]), float(columns["upper"][-1]), target, direction) if v.size else ""
    )
    return out


def xmr_chart(
    values: ArrayLike,
    *,
    periods: ArrayLike | None = None,
    screen_mr: bool = True,
    baseline: int | None = None,
    rebase: Sequence | None = None,
    direction: Direction = None,
    target: float | None = None,
    shift_run: int = SHIFT_RUN,
    trend_run: int = TREND_RUN,
) -> pd.DataFrame:
    """XmR chart with every rule per point (see the module docstring).

    Columns: period, value, moving_range, segment, baseline (the point helped set the limits), centre,
    sigma, lower, upper, lower_2s, upper_2s, mr_upper, the rule columns of point_rules. attrs holds the
    variation and assurance icons.
    """
    v = np.asarray(values, dtype=float)
    per = pd.Series(np.arange(v.size) if periods is None else np.asarray(periods))
    seg = _segments(per, rebase)
    finite = np.isfinite(v)
    base = _baseline_mask(seg, finite, baseline)
    centre, mrbar = np.full(v.size, np.nan), np.full(v.size, np.nan)
    mr = np.full(v.size, np.nan)
    for g in np.unique(seg):
        ix = np.flatnonzero(seg == g)
        fi = ix[finite[ix]]
        if fi.size > 1:
            mr[fi[1:]] = np.abs(np.diff(v[fi]))
        b = ix[base[ix]]
        centre[ix] = v[b].mean() if b.size else np.nan
        mrbar[ix] = mean_moving_range(v[b], screen_mr)
    sigma = mrbar / D2
    columns = {
        "period": per.to_numpy(),
        "value": v,
        "moving_range": mr,
        "segment": seg,
        "baseline": base,
        "centre": centre,
        "sigma": sigma,
        "lower": centre - 3 * sigma,
        "upper": centre + 3 * sigma,
        "lower_2s": centre - 2 * sigma,
        "upper_2s": centre + 2 * sigma,
        "mr_upper": MR_UPPER * mrbar,
    }
    return _finish(columns, v, direction, shift_run, trend_run, target)


def p_chart(
    events: ArrayLike,
    n: ArrayLike,
    *,
    periods: ArrayLike | None = None,
    laney: bool = False,
    baseline: int | None = None,
    rebase: Sequence | None = None,
    direction: Direction = None,
    target: float | None = None,
    shift_run: int = SHIFT_RUN,
    trend_run: int = TREND_RUN,
) -> pd.DataFrame:
    """p (or Laney p') chart with every rule per point; limits clipped to [0, 1] (sigma is not clipped).

    Columns as xmr_chart, with p instead of value, and events, n, sigma_z.
    """
    x, m = np.asarray(events, dtype=float), np.asarray(n, dtype=float)
    per = pd.Series(np.arange(x.size) if periods is None else np.asarray(periods))
    ok = m > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.where(ok, x / m, np.nan)
    seg = _segments(per, rebase)
    base = _baseline_mask(seg, ok, baseline)
    centre, sigma, sigma_z = (np.full(x.size, np.nan) for _ in range(3))
    for g in np.unique(seg):
        ix = np.flatnonzero(seg == g)
        b = ix[base[ix]]
        pbar = x[b].sum() / m[b].sum() if b.size and m[b].sum() > 0 else np.nan
        with np.errstate(divide="ignore", invalid="ignore"):
            se = np.where(ok[ix], np.sqrt(pbar * (1 - pbar) / np.where(ok[ix], m[ix], 1)), np.nan)
        sz = 1.0
        if laney:  # a baseline of no events (or only events) has no spread: its z-scores are NaN, not a warning
            with np.errstate(divide="ignore", invalid="ignore"):
                zb = (p[b] - pbar) / np.sqrt(pbar * (1 - pbar) / m[b]) if b.size else np.array([])
            zb = zb[np.isfinite(zb)]
            sz = float(np.mean(np.abs(np.diff(zb))) / D2) if zb.size > 1 else np.nan
        centre[ix], sigma[ix], sigma_z[ix] = pbar, se * sz, sz
    columns = {
        "period": per.to_numpy(),
        "events": x,
        "n": m,
        "p": p,
        "segment": seg,
        "baseline": base,
        "centre": centre,
        "sigma": sigma,
        "sigma_z": sigma_z,
        "lower": np.clip(centre - 3 * sigma, 0, 1),
        "upper": np.clip(centre + 3 * sigma, 0, 1),
        "lower_2s": np.clip(centre - 2 * sigma, 0, 1),
        "upper_2s": np.clip(centre + 2 * sigma, 0, 1),
    }
    return _finish(columns, p, direction, shift_run, trend_run, target)


def run_chart(values: ArrayLike, *, periods: ArrayLike | None = None, baseline: int | None = None) -> pd.DataFrame:
    """Run chart: the median (of the first `baseline` points, if given) with the two Anhøj rules."""
    v = np.asarray(values, dtype=float)
    fin = v[np.isfinite(v)]
    med = float(np.median(fin[:baseline] if baseline else fin)) if fin.size else np.nan
    a = anhoej(v, med)
    return pd.DataFrame(
        {
            "period": np.arange(v.size) if periods is None else np.asarray(periods),
            "value": v,
            "centre": med,
            "anhoej_run": a["run_points"],
            "anhoej_crossings": a["crossings_signal"],
        }
    )


def phases(chart: pd.DataFrame) -> pd.DataFrame:
    """One row per phase (segment) of an xmr_chart or p_chart frame, for comparing before and after a rebase.

    Columns: phase (0, 1, ...), first and last period, points (periods with data), centre, lower and upper (the
    3-sigma limits; a p chart's vary with n per period, so they are given at the phase's mean n, with sigma_z
    for Laney's p'), n and events (p chart: totals of the phase), provisional (fewer than MIN_PHASE_POINTS
    points) and change (the centre minus the previous phase's centre; NaN for the first).
    """
    columns = ["phase", "first", "last", "points", "centre", "lower", "upper", "n", "events", "provisional", "change"]
    if chart.empty:
        return pd.DataFrame(columns=columns)
    p_kind = "p" in chart.columns
    rows = []
    for phase, part in chart.groupby("segment", sort=True):
        have = np.isfinite(pd.to_numeric(part["p" if p_kind else "value"], errors="coerce").to_numpy(float))
        centre = float(part["centre"].iloc[0])
        if p_kind:
            n = part["n"].to_numpy(float)
            n_bar = float(n[n > 0].mean()) if (n > 0).any() else float("nan")
            sigma_z = float(part["sigma_z"].iloc[0]) if "sigma_z" in part.columns else 1.0
            with np.errstate(invalid="ignore", divide="ignore"):
                sigma = np.sqrt(centre * (1 - centre) / n_bar) * sigma_z
            lower, upper = float(np.clip(centre - 3 * sigma, 0, 1)), float(np.clip(centre + 3 * sigma, 0, 1))
            total_n, events = float(n.sum()), float(part["events"].sum())
        else:
            lower, upper = float(part["lower"].iloc[0]), float(part["upper"].iloc[0])
            total_n, events = float("nan"), float("nan")
        points = int(have.sum())
        rows.append(
            {
                "phase": int(phase),
                "first": part["period"].iloc[0],
                "last": part["period"].iloc[-1],
                "points": points,
                "centre": centre,
                "lower": lower,
                "upper": upper,
                "n": total_n,
                "events": events,
                "provisional": points < MIN_PHASE_POINTS,
            }
        )
    out = pd.DataFrame(rows)
    out["change"] = out["centre"].diff()
    return out[columns]


# ------------------------------------------------------------------------------------------ icons
def variation(chart: pd.DataFrame) -> str:
    """Variation icon from the last point with data: "common_cause", "improvement", "concern" or "neutral"
    (special cause without a known direction); "" for an empty chart."""
    value = chart["p"] if "p" in chart.columns else chart["value"]
    return _variation(pd.to_numeric(value, errors="coerce").to_numpy(float), chart["point_type"].to_numpy())


def _variation(values: np.ndarray, point_type: np.ndarray) -> str:
    """variation() from a chart's values and point types."""
    have = np.flatnonzero(np.isfinite(values))
    return str(point_type[have[-1]]) if have.size else ""


def assurance(chart: pd.DataFrame, target: float | None, direction: Direction) -> str:
    """Assurance icon from the process limits of the last segment against the target: "pass" (consistently
    met), "fail" (consistently not met), "inconsistent", or "" without a target, direction or limits."""
    if chart.empty:
        return ""
    return _assurance(float(chart["lower"].iloc[-1]), float(chart["upper"].iloc[-1]), target, direction)


def _assurance(lo: float, up: float, target: float | None, direction: Direction) -> str:
    """assurance() from the limits of the chart's last point (which is in its last segment)."""
    if target is None or direction is None or not np.isfinite(target):
        return ""
    if not (np.isfinite(lo) and np.isfinite(up)):
        return ""
    # a process whose limits touch the target from the right side meets it every time: limits of zero width on
    # the target itself (no events anywhere, all expected 0) are met, not "met inconsistently"
    if direction == "higher":
        return "pass" if lo >= target else "fail" if up < target else "inconsistent"
    return "pass" if up <= target else "fail" if lo > target else "inconsistent"
