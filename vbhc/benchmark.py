"""Benchmark statistics: O/E with exact CIs, funnel limits, over-dispersion, SPC and CUSUM/VLAD over time.

Pure functions on numpy arrays and pandas DataFrames (no Streamlit, no database), vectorised so that ~70
indicators x ~100 units are instant and CUSUM/VLAD over ~1M care cycles takes well under a second.

Methods and references
- Exact Poisson (Garwood) limits for O, divided by E, for the CI of O/E; Wilson interval for proportions.
- Funnel plots: Spiegelhalter DJ. Funnel plots for comparing institutional performance. Stat Med
  2005;24:1185-1202 (exact binomial/Poisson limits with the interpolation of its appendix).
- Over-dispersion: Spiegelhalter DJ. Handling over-dispersion of performance indicators. Qual Saf Health
  Care 2005;14:347-351 (winsorised z-scores, multiplicative phi, additive random effect tau^2 estimated with
  the DerSimonian-Laird moment estimator, DerSimonian & Laird, Control Clin Trials 1986;7:177).
- Rankability: van Dishoeck AM et al. Random variation and rankability of hospitals using outcome
  indicators. BMJ Qual Saf 2011;20:869-874.
- SPC: Shewhart p chart, Laney p' chart (Laney DB, Quality Engineering 2002;14:531), XmR chart.
- Risk-adjusted CUSUM: Steiner SH et al. Monitoring surgical performance using risk-adjusted cumulative sum
  charts. Biostatistics 2000;1:441-452. VLAD: Lovegrove J et al. 1997 / Sherlaw-Johnson 2005.

Column naming: a confidence or control level becomes a suffix without the decimal point (0.95 -> "95",
0.998 -> "998"), so funnel limits are lower_95, upper_95, lower_998, upper_998.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from vbhc.lazy import stats

__all__ = [
    "DEFAULT_LEVELS",
    "Dispersion",
    "adjusted_rate",
    "benchmark_columns",
    "benchmark_units",
    "classify_position",
    "cusum_vlad_by_unit",
    "cusum_weights",
    "detectable_difference",
    "dispersed_limits",
    "dispersion_z_scores",
    "estimate_overdispersion",
    "funnel_limits_mean",
    "funnel_limits_proportion",
    "funnel_limits_ratio",
    "level_suffix",
    "mean_ci",
    "mean_sd_from_sums",
    "oe_columns",
    "oe_ratio",
    "poisson_ci",
    "position_columns",
    "rankability",
    "risk_adjusted_cusum",
    "run_rules",
    "spc_p_chart",
    "spc_xmr",
    "vlad",
    "wilson_ci",
]

#: Default funnel levels: 95% ("warning", z = 1.96) and 99.8% ("alarm", z = 3.09), two-sided.
DEFAULT_LEVELS: tuple[float, ...] = (0.95, 0.998)

Kind = Literal["proportion", "ratio", "mean"]
DispersionChoice = Literal["auto", "none", "multiplicative", "additive"]

TOO_FEW = "too few cycles"
NO_DATA = "no data"
NO_BENCHMARK = "no benchmark"  # a unit alone in its benchmark population (vbhc.indicators): nothing to compare with
CANNOT_RANK = "cannot tell units apart"


# --------------------------------------------------------------------------------------------- helpers
def level_suffix(level: float) -> str:
    """Column suffix for a level: 0.95 -> "95", 0.998 -> "998" (so columns read lower_95, upper_998)."""
    _check_level(level)
    return f"{round(level * 100, 6):g}".replace(".", "")


def _check_level(level: float) -> None:
    if not 0 < level < 1:
        raise ValueError(f"a level must lie strictly between 0 and 1, got {level!r}")


@functools.lru_cache(maxsize=64)
def _z(level: float) -> float:
    """Two-sided normal quantile: 0.95 -> 1.959964, 0.998 -> 3.090232. Kept per level: scipy's ppf of one number
    costs ~0.1 ms, and a comparison group's view asks for the same few levels hundreds of times."""
    _check_level(level)
    return float(stats.norm.ppf(1 - (1 - level) / 2))


@functools.lru_cache(maxsize=64)
def _norm_quantile(q: float) -> float:
    """The standard normal quantile of q (kept, as _z)."""
    return float(stats.norm.ppf(q))


def _arr(x: ArrayLike) -> np.ndarray:
    return np.asarray(x, dtype=float)


def _index(*xs: object) -> pd.Index | None:
    """The index of the first pandas argument, so results line up with the caller's rows."""
    for x in xs:
        if isinstance(x, pd.Series | pd.DataFrame):
            return x.index
    return None


def _frame(columns: dict[str, np.ndarray], index: pd.Index | None) -> pd.DataFrame:
    n = len(next(iter(columns.values()))) if columns else 0
    return pd.DataFrame(columns, index=index if index is not None and len(index) == n else None)


# ----------------------------------------------------------------------------- confidence intervals
def poisson_ci(observed: ArrayLike, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Exact (Garwood) Poisson CI for a count O: chi2(a/2, 2O)/2 to chi2(1-a/2, 2O+2)/2; 0 when O = 0.

    Exact rather than normal because O/E of small units (a few deaths) is where the decisions are made.
    """
    o = _arr(observed)
    a = 1 - level
    _check_level(level)
    with np.errstate(invalid="ignore"):
        lower = np.where(o > 0, stats.chi2.ppf(a / 2, 2 * np.where(o > 0, o, 1)) / 2, 0.0)
        upper = stats.chi2.ppf(1 - a / 2, 2 * o + 2) / 2
    bad = ~np.isfinite(o) | (o < 0)
    return np.where(bad, np.nan, lower), np.where(bad, np.nan, upper)


def oe_ratio(observed: ArrayLike, expected: ArrayLike, level: float = 0.95) -> pd.DataFrame:
    """O/E with the exact Poisson CI of O divided by E (E from the case-mix model is treated as fixed).

    Returns columns observed, expected, oe, oe_lower, oe_upper; O/E is NaN where E <= 0.
    """
    return _frame(oe_columns(_arr(observed), _arr(expected), level), _index(observed, expected))


def oe_columns(o: np.ndarray, e: np.ndarray, level: float = 0.95) -> dict[str, np.ndarray]:
    """oe_ratio's columns as arrays (the indicator table builds its rows from arrays, not frames)."""
    lo, up = poisson_ci(o, level)
    pos = e > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        return {
            "observed": o,
            "expected": e,
            "oe": np.where(pos, o / e, np.nan),
            "oe_lower": np.where(pos, lo / e, np.nan),
            "oe_upper": np.where(pos, up / e, np.nan),
        }


def adjusted_rate(oe: pd.DataFrame, overall_rate: float | ArrayLike) -> pd.DataFrame:
    """Adjusted (indirectly standardised) rate = O/E x overall rate, CI likewise (DESIGN "Statistics").

    Not clipped at 1: an O/E far above 1/overall_rate is itself the message.
    """
    r = _arr(overall_rate)
    return pd.DataFrame(
        {
            "adjusted_rate": oe["oe"].to_numpy(float) * r,
            "adjusted_lower": oe["oe_lower"].to_numpy(float) * r,
            "adjusted_upper": oe["oe_upper"].to_numpy(float) * r,
        },
        index=oe.index,
    )


def wilson_ci(successes: ArrayLike, n: ArrayLike, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval for a proportion: good coverage for small n and p near 0 or 1 (unlike Wald)."""
    x, m = _arr(successes), _arr(n)
    z = _z(level)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = x / m
        denom = 1 + z**2 / m
        centre = (p + z**2 / (2 * m)) / denom
        half = z * np.sqrt(p * (1 - p) / m + z**2 / (4 * m**2)) / denom
    ok = m > 0
    return (
        np.where(ok, np.clip(centre - half, 0, 1), np.nan),
        np.where(ok, np.clip(centre + half, 0, 1), np.nan),
    )


def mean_ci(mean: ArrayLike, sd: ArrayLike, n: ArrayLike, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """t-based CI of a mean (t with n-1 df, since sd is estimated from the unit's own cycles); NaN if n < 2."""
    mu, s, m = _arr(mean), _arr(sd), _arr(n)
    _check_level(level)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = stats.t.ppf(1 - (1 - level) / 2, np.where(m >= 2, m - 1, np.nan))
        half = t * s / np.sqrt(m)
    return mu - half, mu + half


def mean_sd_from_sums(n: ArrayLike, total: ArrayLike, total_sq: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Mean and sample sd from aggregated figures (n, sum x, sum x^2), as national registries publish them."""
    m, s, ss = _arr(n), _arr(total), _arr(total_sq)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = np.where(m > 0, s / m, np.nan)
        var = np.where(m > 1, (ss - s * s / m) / (m - 1), np.nan)
    return mean, np.sqrt(np.maximum(var, 0.0))  # tiny negatives are rounding error


def with_columns(frame: pd.DataFrame, columns: dict[str, object]) -> pd.DataFrame:
    """`frame` with `columns` set as `frame[name] = value` in turn would set them (an existing column keeps its
    place, new ones follow in order), in one step. Why: each single insertion rebuilds the frame's column index
    (Arrow text in pandas 3); about forty per indicator were a sixth of computing a comparison group's view."""
    existing = [name for name in columns if name in frame.columns]
    if existing:
        frame = frame.copy()
        for name in existing:
            frame[name] = columns[name]
    added = {name: value for name, value in columns.items() if name not in frame.columns}
    if not added:
        return frame
    return pd.concat([frame, pd.DataFrame(added, index=frame.index)], axis=1)


# ------------------------------------------------------------------------------------ funnel limits
def _exact_quantile(cdf, ppf, q: float, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Spiegelhalter (2005 Stat Med, appendix) continuous version of a discrete quantile: (r_p, r_p - alpha).

    r_p = smallest r with F(r) >= q; alpha = (F(r_p) - q) / (F(r_p) - F(r_p - 1)); the limit is r_p - alpha.
    Interpolating between r_p - 1 and r_p makes plotted limits run smoothly with volume instead of in steps.
    Compared with an integer count O it means: below the lower limit <=> P(X <= O) < q (the exact test);
    above the upper limit <=> P(X > O) < 1 - q, i.e. one count more liberal than the exact test (see
    Manktelow & Seaton, PLoS ONE 2012;7:e45723 on the probability characteristics of such limits).
    """
    r = np.broadcast_to(np.asarray(ppf(q), dtype=float), shape).copy()
    # scipy's ppf may be off by one near ties: enforce the definition with the same cdf we interpolate with.
    for _ in range(4):
        down = np.isfinite(r) & (r >= 1) & (cdf(r - 1) >= q)
        up = np.isfinite(r) & (cdf(r) < q)
        if not (down.any() or up.any()):
            break
        r = r - down + up
    f_r, f_r1 = cdf(r), cdf(r - 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        alpha = (f_r - q) / (f_r - f_r1)
    return r, r - alpha


def funnel_limits_proportion(
    p0: float, n: ArrayLike, levels: Sequence[float] = DEFAULT_LEVELS, exact: bool = True
) -> pd.DataFrame:
    """Funnel limits for a proportion around target p0 at volume n (Spiegelhalter 2005 Stat Med).

    exact=True: interpolated binomial quantiles (r_p - alpha)/n, needed for small n and rare events; where
    the upper quantile r_p is n itself (P(X = n) > (1-level)/2) the upper limit is 1, mirroring the lower
    limit's floor at 0, so that 100% is never flagged when it is not improbable (the bare interpolation
    would put the limit just below 1). exact=False: p0 +/- z*sqrt(p0(1-p0)/n).
    Clipped to [0, 1]. Columns lower_<level>, upper_<level>.
    """
    return _frame(_proportion_limits(p0, _arr(n), levels, exact), _index(n))


def _proportion_limits(p0: float, m: np.ndarray, levels: Sequence[float], exact: bool) -> dict[str, np.ndarray]:
    """funnel_limits_proportion's columns as arrays."""
    ok = m > 0
    mm = np.where(ok, m, 1.0)
    cols: dict[str, np.ndarray] = {}
    for level in levels:
        sfx, a = level_suffix(level), 1 - level
        if exact:

            def cdf(r, mm=mm):
                return stats.binom.cdf(r, mm, p0)

            def ppf(qq, mm=mm):
                return stats.binom.ppf(qq, mm, p0)

            lo = _exact_quantile(cdf, ppf, a / 2, mm.shape)[1] / mm
            r_up, up = _exact_quantile(cdf, ppf, 1 - a / 2, mm.shape)
            up = np.where(r_up >= mm, mm, up) / mm
        else:
            half = _z(level) * np.sqrt(p0 * (1 - p0) / mm)
            lo, up = p0 - half, p0 + half
        cols[f"lower_{sfx}"] = np.where(ok, np.clip(lo, 0, 1), np.nan)
        cols[f"upper_{sfx}"] = np.where(ok, np.clip(up, 0, 1), np.nan)
    return cols


def funnel_limits_ratio(
    expected: ArrayLike, levels: Sequence[float] = DEFAULT_LEVELS, exact: bool = True
) -> pd.DataFrame:
    """Funnel limits for O/E around 1 at precision E (Spiegelhalter 2005: O ~ Poisson(E) under the target).

    exact=True: interpolated Poisson quantiles (r_p - alpha)/E; exact=False: 1 +/- z/sqrt(E). Lower >= 0.
    """
    return _frame(_ratio_limits(_arr(expected), levels, exact), _index(expected))


def _ratio_limits(e: np.ndarray, levels: Sequence[float], exact: bool) -> dict[str, np.ndarray]:
    """funnel_limits_ratio's columns as arrays."""
    ok = e > 0
    ee = np.where(ok, e, 1.0)
    cols: dict[str, np.ndarray] = {}
    for level in levels:
        sfx, a = level_suffix(level), 1 - level
        if exact:
            lo, up = (
                _exact_quantile(
                    lambda r, ee=ee: stats.poisson.cdf(r, ee),
                    lambda qq, ee=ee: stats.poisson.ppf(qq, ee),
                    q,
                    ee.shape,
                )[1]
                / ee
                for q in (a / 2, 1 - a / 2)
            )
        else:
            half = _z(level) / np.sqrt(ee)
            lo, up = 1 - half, 1 + half
        cols[f"lower_{sfx}"] = np.where(ok, np.maximum(lo, 0), np.nan)
        cols[f"upper_{sfx}"] = np.where(ok, np.maximum(up, 0), np.nan)
    return cols


def funnel_limits_mean(mu: float, sd: float, n: ArrayLike, levels: Sequence[float] = DEFAULT_LEVELS) -> pd.DataFrame:
    """Funnel limits for a mean: mu +/- z*sd/sqrt(n), sd being the benchmark population's sd."""
    return _frame(_mean_limits(mu, sd, _arr(n), levels), _index(n))


def _mean_limits(mu: float, sd: float, m: np.ndarray, levels: Sequence[float]) -> dict[str, np.ndarray]:
    """funnel_limits_mean's columns as arrays."""
    ok = m > 0
    cols: dict[str, np.ndarray] = {}
    for level in levels:
        sfx = level_suffix(level)
        half = _z(level) * sd / np.sqrt(np.where(ok, m, 1.0))
        cols[f"lower_{sfx}"] = np.where(ok, mu - half, np.nan)
        cols[f"upper_{sfx}"] = np.where(ok, mu + half, np.nan)
    return cols


# -------------------------------------------------------------------------------- over-dispersion
_SCALES = {
    "proportion": ("arcsine", "identity"),
    "ratio": ("sqrt", "log", "identity"),
    "mean": ("identity",),
}


def _default_scale(kind: str, scale: str | None) -> str:
    if kind not in _SCALES:
        raise ValueError(f"kind must be one of {sorted(_SCALES)}, got {kind!r}")
    scale = scale or _SCALES[kind][0]
    if scale not in _SCALES[kind]:
        raise ValueError(f"scale {scale!r} does not fit kind {kind!r}; choose from {_SCALES[kind]}")
    return scale


def _transform(kind: str, scale: str, x: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        if scale == "arcsine":
            return np.arcsin(np.sqrt(np.clip(x, 0, 1)))
        if scale == "sqrt":
            return np.sqrt(np.maximum(x, 0))
        if scale == "log":
            return np.log(x)
    return x


def _back(kind: str, scale: str, y: np.ndarray) -> np.ndarray:
    if scale == "arcsine":
        return np.sin(np.clip(y, 0, np.pi / 2)) ** 2
    if scale == "sqrt":
        return np.maximum(y, 0) ** 2
    if scale == "log":
        return np.exp(y)
    if kind == "proportion":
        return np.clip(y, 0, 1)
    if kind == "ratio":
        return np.maximum(y, 0)
    return y


def _within_se(kind: str, scale: str, precision: np.ndarray, target: float, sd: float | None) -> np.ndarray:
    """Within-unit SE under the target on the chosen scale (delta method).

    arcsine sqrt(p): Var = 1/(4n)          -> s = 1/(2 sqrt(n))
    sqrt(O/E):      Var(sqrt O) = 1/4 for Poisson O, so Var(sqrt(O/E)) = 1/(4E) -> s = 1/(2 sqrt(E))
    log(O/E):       Var = 1/E              -> s = 1/sqrt(E)
    identity:       proportion sqrt(p0(1-p0)/n); ratio 1/sqrt(E); mean sd/sqrt(n).
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        root = np.sqrt(np.where(precision > 0, precision, np.nan))
        if scale in ("arcsine", "sqrt"):
            return 1 / (2 * root)
        if kind == "ratio":
            return 1 / root
        if kind == "proportion":
            return np.sqrt(target * (1 - target)) / root
        if sd is None:
            raise ValueError("a mean indicator needs the benchmark sd")
        return sd / root


def dispersion_z_scores(
    kind: Kind,
    value: ArrayLike,
    precision: ArrayLike,
    target: float,
    *,
    scale: str | None = None,
    sd: float | None = None,
    observed: ArrayLike | None = None,
) -> pd.DataFrame:
    """z-scores on a variance-stabilising scale (Spiegelhalter 2005 QSHC): z = (f(y) - f(target)) / s.

    kind "proportion": value = O/n, precision = n, default arcsine: z = 2 sqrt(n) (asin sqrt y - asin sqrt p0).
    kind "ratio": value = O/E, precision = E, target ignored (always O/E = 1), default sqrt:
    z = 2 (sqrt O - sqrt E); "log" uses log(O/E) sqrt(E) with O = 0 replaced by 0.5 (pass `observed`).
    kind "mean": value = mean, precision = n, z = (mean - mu) sqrt(n) / sd.
    Returns columns y (transformed value), s (within-unit SE on that scale) and z.
    """
    scale = _default_scale(kind, scale)
    cols = _z_columns(kind, _arr(value), _arr(precision), target, scale, sd, observed)
    return _frame(cols, _index(value, precision))


def _z_columns(
    kind: Kind,
    v: np.ndarray,
    prec: np.ndarray,
    target: float,
    scale: str,
    sd: float | None,
    observed: ArrayLike | None = None,
) -> dict[str, np.ndarray]:
    """dispersion_z_scores' columns as arrays (`scale` already checked)."""
    if kind == "ratio" and scale == "log":
        o = _arr(observed) if observed is not None else v * prec
        with np.errstate(divide="ignore", invalid="ignore"):
            v = np.where((o <= 0) & (prec > 0), 0.5 / prec, v)
    y = _transform(kind, scale, v)
    t = float(_transform(kind, scale, np.asarray(1.0 if kind == "ratio" else target)))
    s = _within_se(kind, scale, prec, target, sd)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (y - t) / s
    return {"y": y, "s": s, "z": z}


@dataclass(frozen=True)
class Dispersion:
    """Over-dispersion of one indicator across units (Spiegelhalter 2005 QSHC)."""

    phi: float  #: mean of the (winsorised) squared z-scores
    p_value: float  #: P(chi2_{I-1} >= I*phi): small means over-dispersed
    significant: bool
    tau2: float  #: DerSimonian-Laird between-unit variance on the transformed scale of the z-scores, >= 0
    n_units: int  #: I, the units that entered the estimate


def estimate_overdispersion(z: ArrayLike, s: ArrayLike, winsor: float | None = 0.1, alpha: float = 0.05) -> Dispersion:
    """phi, its chi-squared test and the additive tau^2 from unit z-scores (Spiegelhalter 2005 QSHC).

    z-scores are winsorised (the `winsor` fraction at each end set to the winsor/1-winsor percentiles) so a
    few true outliers do not inflate phi; phi = mean(z^2); I*phi is compared with chi2 on I-1 df.
    tau^2 = (I*phi - (I-1)) / (sum w - sum w^2 / sum w), w = 1/s^2, truncated at 0: the DerSimonian-Laird
    moment estimator with Q = sum w (y - target)^2 = I*phi around the fixed target.
    Note: winsorising shrinks phi under the null (10%: E[phi] ~ 0.68 for normal z), as in the paper.
    Non-finite z or s are left out.
    """
    zz, ss = _arr(z), _arr(s)
    ok = np.isfinite(zz) & np.isfinite(ss) & (ss > 0)
    zz, ss = zz[ok], ss[ok]
    i = zz.size
    if i < 2:
        return Dispersion(np.nan, np.nan, False, np.nan, i)
    if winsor:
        if not 0 < winsor < 0.5:
            raise ValueError(f"winsor must be a fraction below 0.5, got {winsor!r}")
        lo, hi = np.quantile(zz, [winsor, 1 - winsor])
        zz = np.clip(zz, lo, hi)
    phi = float(np.mean(zz**2))
    p_value = float(stats.chi2.sf(i * phi, i - 1))
    w = 1 / ss**2
    denom = w.sum() - (w**2).sum() / w.sum()
    tau2 = float(max(0.0, (i * phi - (i - 1)) / denom)) if denom > 0 else 0.0
    return Dispersion(phi, p_value, bool(p_value < alpha), tau2, i)


def dispersed_limits(
    kind: Kind,
    target: float,
    precision: ArrayLike,
    levels: Sequence[float] = DEFAULT_LEVELS,
    *,
    method: Literal["multiplicative", "additive"],
    phi: float = 1.0,
    tau2: float = 0.0,
    scale: str | None = None,
    sd: float | None = None,
) -> pd.DataFrame:
    """Funnel limits widened for over-dispersion, built on the transformed scale and back-transformed.

    multiplicative: f(target) +/- z sqrt(phi) s; additive: f(target) +/- z sqrt(s^2 + tau^2)
    (Spiegelhalter 2005 QSHC). For kind "ratio" the target is O/E = 1 whatever `target` says.
    """
    scale = _default_scale(kind, scale)
    cols = _dispersed_limits(kind, target, _arr(precision), levels, method, phi, tau2, scale, sd)
    return _frame(cols, _index(precision))


def _dispersed_limits(
    kind: Kind,
    target: float,
    prec: np.ndarray,
    levels: Sequence[float],
    method: str,
    phi: float,
    tau2: float,
    scale: str,
    sd: float | None,
) -> dict[str, np.ndarray]:
    """dispersed_limits' columns as arrays (`scale` already checked)."""
    s = _within_se(kind, scale, prec, target, sd)
    t = float(_transform(kind, scale, np.asarray(1.0 if kind == "ratio" else target)))
    if method == "multiplicative":
        spread = s * np.sqrt(max(phi, 1.0))
    elif method == "additive":
        spread = np.sqrt(s**2 + max(tau2, 0.0))
    else:
        raise ValueError(f"method must be 'multiplicative' or 'additive', got {method!r}")
    cols: dict[str, np.ndarray] = {}
    ok = prec > 0
    for level in levels:
        sfx, z = level_suffix(level), _z(level)
        cols[f"lower_{sfx}"] = np.where(ok, _back(kind, scale, t - z * spread), np.nan)
        cols[f"upper_{sfx}"] = np.where(ok, _back(kind, scale, t + z * spread), np.nan)
    return cols


# ----------------------------------------------------------------------------------- classification
def classify_position(
    value: ArrayLike,
    lower_limits: pd.DataFrame | ArrayLike,
    upper_limits: pd.DataFrame | ArrayLike,
    higher_is_better: bool,
    n: ArrayLike | None = None,
    min_n: float = 0,
) -> pd.DataFrame:
    """Where each unit lies against the limits at each level, and what that means for patients.

    position: "above" / "below" / "within" (a value on a limit counts as within); assessment is direction
    aware: "better" / "worse" / "as expected". Units with n < min_n get "too few cycles" (DESIGN: never
    flagged as outliers); units without a value get "no data". DataFrame limits pair up column by column
    (lower_95 with upper_95 -> position_95, assessment_95); 1-D limits give columns position, assessment.
    """
    v = _arr(value)
    if isinstance(lower_limits, pd.DataFrame):
        if not isinstance(upper_limits, pd.DataFrame) or upper_limits.shape != lower_limits.shape:
            raise ValueError("lower_limits and upper_limits must have the same columns")
        names = [str(c).removeprefix("lower_") for c in lower_limits.columns]
        lows = [lower_limits[c].to_numpy(float) for c in lower_limits.columns]
        ups = [upper_limits[c].to_numpy(float) for c in upper_limits.columns]
    else:
        names, lows, ups = [""], [_arr(lower_limits)], [_arr(upper_limits)]
    return _frame(position_columns(v, names, lows, ups, higher_is_better, n, min_n), _index(value))


def position_columns(
    v: np.ndarray,
    names: Sequence[str],
    lows: Sequence[np.ndarray],
    ups: Sequence[np.ndarray],
    higher_is_better: bool,
    n: ArrayLike | None,
    min_n: float,
) -> dict[str, np.ndarray]:
    """classify_position's columns as arrays: `names` are the levels' suffixes ("" for 1-D limits), `lows` and `ups`
    each level's limits."""
    too_few = np.zeros(v.shape, bool) if n is None or min_n <= 0 else ~(_arr(n) >= min_n)
    missing = ~np.isfinite(v)
    good, bad = ("better", "worse") if higher_is_better else ("worse", "better")
    cols: dict[str, np.ndarray] = {}
    for name, lo, up in zip(names, lows, ups, strict=True):
        sfx = f"_{name}" if name else ""
        above, below = v > up, v < lo
        conds = [too_few, missing, above, below]
        cols[f"position{sfx}"] = np.select(conds, [TOO_FEW, NO_DATA, "above", "below"], "within").astype(object)
        cols[f"assessment{sfx}"] = np.select(conds, [TOO_FEW, NO_DATA, good, bad], "as expected").astype(object)
    return cols


# ------------------------------------------------------------------------------------ detectability
def rankability(tau2: float, within_variances: ArrayLike) -> float:
    """van Dishoeck 2011: tau^2 / (tau^2 + median within-unit variance), both on the same scale.

    Near 0 the spread between units is mostly chance, so ranking them (or a league table) misleads;
    above ~0.7 ranking is reasonable. NaN when there is nothing to compare.
    """
    w = _arr(within_variances)
    w = w[np.isfinite(w)]
    if not np.isfinite(tau2) or w.size == 0:
        return float("nan")
    denom = tau2 + float(np.median(w))
    return float(tau2 / denom) if denom > 0 else float("nan")


def detectable_difference(
    kind: Kind,
    precision: ArrayLike,
    *,
    target: float | None = None,
    sd: float | None = None,
    level: float = 0.998,
    power: float = 0.8,
) -> np.ndarray:
    """Smallest true difference from the target a unit could detect: (z_{1-a/2} + z_power) x SE.

    SE is the null standard error at the unit's volume on the indicator's own scale: sqrt(p0(1-p0)/n)
    for a proportion, 1/sqrt(E) for O/E, sd/sqrt(n) for a mean. One-sided power (the far tail is ignored),
    normal approximation. Tells a small team that "as expected" may just mean "too small to tell".
    """
    prec = _arr(precision)
    with np.errstate(divide="ignore", invalid="ignore"):
        root = np.sqrt(np.where(prec > 0, prec, np.nan))
        if kind == "proportion":
            if target is None:
                raise ValueError("a proportion needs its target p0")
            se = np.sqrt(target * (1 - target)) / root
        elif kind == "ratio":
            se = 1 / root
        elif kind == "mean":
            if sd is None:
                raise ValueError("a mean needs the benchmark sd")
            se = sd / root
        else:
            raise ValueError(f"unknown kind {kind!r}")
    return (_z(level) + _norm_quantile(power)) * se


# ------------------------------------------------------------------------------------- SPC charts
def _run_lengths(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each position: the id of its run of equal consecutive labels and that run's length."""
    if labels.size == 0:
        return np.zeros(0, int), np.zeros(0, int)
    change = np.r_[True, labels[1:] != labels[:-1]]
    run_id = np.cumsum(change) - 1
    return run_id, np.bincount(run_id)[run_id]


def run_rules(
    values: ArrayLike,
    centre: ArrayLike,
    lower: ArrayLike,
    upper: ArrayLike,
    shift_run: int = 8,
    trend_run: int = 6,
) -> pd.DataFrame:
    """SPC run rules, every point of a qualifying run flagged.

    beyond_limits: a point outside the control limits. shift: >= shift_run consecutive points on one side
    of the centre line (a point on the line or missing breaks the run). trend: >= trend_run consecutive
    points each strictly higher (or lower) than the one before (ties and gaps break it). signal: any.
    """
    v = _arr(values)
    c = np.broadcast_to(_arr(centre), v.shape)
    lo, up = np.broadcast_to(_arr(lower), v.shape), np.broadcast_to(_arr(upper), v.shape)
    beyond = (v > up) | (v < lo)
    side = np.sign(np.where(np.isfinite(v), v - c, 0.0))
    _, length = _run_lengths(side)
    shift = (side != 0) & (length >= shift_run)
    trend = np.zeros(v.shape, bool)
    if v.size > 1 and trend_run >= 2:
        d = np.diff(v)
        step = np.sign(np.where(np.isfinite(d), d, 0.0))
        _, length = _run_lengths(step)
        qualifies = (step != 0) & (length >= trend_run - 1)
        # a run of k rising steps spans k+1 points: flag every step's two ends
        trend[:-1] |= qualifies
        trend[1:] |= qualifies
    return pd.DataFrame({"beyond_limits": beyond, "shift": shift, "trend": trend, "signal": beyond | shift | trend})


def spc_p_chart(
    events: ArrayLike,
    n_per_period: ArrayLike,
    laney: bool = False,
    *,
    periods: ArrayLike | None = None,
    sigma: float = 3.0,
    shift_run: int = 8,
    trend_run: int = 6,
) -> pd.DataFrame:
    """p chart per period: centre p_bar = sum events / sum n, limits p_bar +/- 3 sqrt(p_bar(1-p_bar)/n_i).

    laney=True gives Laney's p' chart (2002): z_i = (p_i - p_bar)/sigma_i, sigma_z = mean |z_i - z_{i-1}|
    / 1.128 (moving ranges between consecutive periods with data), limits p_bar +/- 3 sigma_i sigma_z. It
    keeps limits honest with large n, where between-period variation makes the p chart flag everything.
    One row per period with run-rule signal columns (see run_rules).
    """
    x, m = _arr(events), _arr(n_per_period)
    ok = m > 0
    p_bar = x[ok].sum() / m[ok].sum() if ok.any() else np.nan
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.where(ok, x / m, np.nan)
        se = np.where(ok, np.sqrt(p_bar * (1 - p_bar) / m), np.nan)
        sigma_z = 1.0
        if laney:
            z = (p - p_bar) / se
            zf = z[np.isfinite(z)]
            sigma_z = float(np.mean(np.abs(np.diff(zf))) / 1.128) if zf.size > 1 else np.nan
            z_col = z
        else:
            z_col = (p - p_bar) / se
    lower = np.where(ok, np.clip(p_bar - sigma * se * sigma_z, 0, 1), np.nan)
    upper = np.where(ok, np.clip(p_bar + sigma * se * sigma_z, 0, 1), np.nan)
    out = pd.DataFrame(
        {
            "period": np.arange(x.size) if periods is None else np.asarray(periods),
            "events": x,
            "n": m,
            "p": p,
            "centre": np.full(x.size, p_bar),
            "sigma": se * sigma_z,
            "sigma_z": np.full(x.size, sigma_z),
            "z": z_col,
            "lower": lower,
            "upper": upper,
        }
    )
    return pd.concat([out, run_rules(p, p_bar, lower, upper, shift_run, trend_run)], axis=1)


def spc_xmr(
    values: ArrayLike,
    *,
    periods: ArrayLike | None = None,
    shift_run: int = 8,
    trend_run: int = 6,
) -> pd.DataFrame:
    """Individuals (XmR) chart: mean +/- 2.66 x mean moving range (2.66 = 3/1.128); mr_upper = 3.267 MR_bar.

    For a mean, cost or PROM score per period where no binomial model applies. Missing values are skipped
    (the moving range bridges them). One row per period with run-rule signal columns.
    """
    v = _arr(values)
    fin = np.isfinite(v)
    centre = float(v[fin].mean()) if fin.any() else np.nan
    mr = np.full(v.size, np.nan)
    idx = np.flatnonzero(fin)
    if idx.size > 1:
        mr[idx[1:]] = np.abs(np.diff(v[idx]))
    mr_bar = float(np.nanmean(mr)) if np.isfinite(mr).any() else np.nan
    out = pd.DataFrame(
        {
            "period": np.arange(v.size) if periods is None else np.asarray(periods),
            "value": v,
            "moving_range": mr,
            "centre": np.full(v.size, centre),
            "lower": np.full(v.size, centre - 2.66 * mr_bar),
            "upper": np.full(v.size, centre + 2.66 * mr_bar),
            "mr_upper": np.full(v.size, 3.267 * mr_bar),
        }
    )
    return pd.concat([out, run_rules(v, centre, out["lower"], out["upper"], shift_run, trend_run)], axis=1)


# ------------------------------------------------------------------------------------- CUSUM, VLAD
def cusum_weights(outcomes: ArrayLike, predicted_p: ArrayLike, odds_ratio: float) -> np.ndarray:
    """Steiner 2000 log-likelihood ratio score: W = y log R - log(1 - p + R p) for odds ratio R."""
    y, p = _arr(outcomes), _arr(predicted_p)
    if odds_ratio <= 0:
        raise ValueError("odds_ratio must be positive")
    if np.any(~np.isfinite(y)) or np.any(~np.isfinite(p)):
        raise ValueError("outcomes and predicted probabilities must not be missing")
    if np.any((p < 0) | (p > 1)):
        raise ValueError("predicted probabilities must lie in [0, 1]")
    return y * np.log(odds_ratio) - np.log1p((odds_ratio - 1) * p)


_WINDOW_BUDGET = 1 << 20  # cells of one window matrix (8 MB)
_MAX_ROUNDS = 4000


def _cusum_scalar(w: np.ndarray, c0: float, h: float) -> tuple[np.ndarray, np.ndarray]:
    """Reference recursion, used to finish pathological series (an alarm every few cycles)."""
    out = np.empty(w.size)
    c = c0
    for i, wi in enumerate(w.tolist()):
        c = max(0.0, (c if c < h else 0.0) + wi)
        out[i] = c
    return out, out >= h


def _segmented_cusum(w: np.ndarray, starts: np.ndarray, ends: np.ndarray, h: float) -> tuple[np.ndarray, np.ndarray]:
    """C_t = max(0, C'_{t-1} + W_t) with C' = 0 at each segment start and after each alarm (C >= h).

    Loop-free within a window: from a state c0 the Lindley recursion is C_t = max(c0 + S_t, S_t - min_{s<=t}
    S_s) with S the cumulative sum of W, so every active unit is advanced at once through a window of the
    next L cycles (a 2-D cumsum / minimum.accumulate), up to and including its first alarm, after which it
    restarts from 0. Rounds therefore number about (cycles per unit / L + alarms per unit); L adapts to how
    often units alarm, and after _MAX_ROUNDS the rest is finished by the plain recursion.
    """
    out = np.empty(w.size)
    alarm = np.zeros(w.size, bool)
    pos, end = starts.astype(np.int64), ends.astype(np.int64)
    live = pos < end
    pos, end = pos[live], end[live]
    c0 = np.zeros(pos.size)
    window, rounds = 512, 0
    while pos.size:
        if rounds >= _MAX_ROUNDS:
            for p_, e_, c_ in zip(pos.tolist(), end.tolist(), c0.tolist(), strict=True):
                out[p_:e_], alarm[p_:e_] = _cusum_scalar(w[p_:e_], c_, h)
            break
        rounds += 1
        a = pos.size
        width = int(min(window, max(16, _WINDOW_BUDGET // a), (end - pos).max()))
        offs = np.arange(width)
        idx = pos[:, None] + offs
        valid = idx < end[:, None]
        ww = np.where(valid, w[np.minimum(idx, w.size - 1)], 0.0)
        s = np.cumsum(ww, axis=1)
        c = np.maximum(c0[:, None] + s, s - np.minimum.accumulate(s, axis=1))
        hit = (c >= h) & valid
        has = hit.any(axis=1)
        take = np.where(has, hit.argmax(axis=1) + 1, np.minimum(end - pos, width))
        keep = offs[None, :] < take[:, None]
        out[idx[keep]] = c[keep]
        alarm[pos[has] + take[has] - 1] = True
        c0 = np.where(has, 0.0, c[np.arange(a), take - 1])
        pos = pos + take
        live = pos < end
        pos, end, c0 = pos[live], end[live], c0[live]
        share = has.mean()
        if share > 0.5:
            window = max(16, window // 2)
        elif share < 0.1:
            window = min(1 << 16, window * 2)
    return out, alarm


def _group_order(groups: ArrayLike | None, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stable order that makes each group contiguous (time order within a group kept), and group bounds."""
    if groups is None:
        return np.arange(size), np.array([0]), np.array([size])
    codes = pd.factorize(np.asarray(groups))[0]
    # factorize numbers groups by first appearance, so contiguous groups (the usual case) need no sort
    order = np.arange(size) if np.all(codes[1:] >= codes[:-1]) else np.argsort(codes, kind="stable")
    sc = codes[order]
    starts = np.flatnonzero(np.r_[True, sc[1:] != sc[:-1]]) if size else np.zeros(0, int)
    ends = np.r_[starts[1:], size] if size else np.zeros(0, int)
    return order, starts, ends


def risk_adjusted_cusum(
    outcomes: ArrayLike,
    predicted_p: ArrayLike,
    odds_ratio: float = 2.0,
    h: float = 4.5,
    groups: ArrayLike | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Risk-adjusted Bernoulli CUSUM (Steiner 2000): C_t = max(0, C_{t-1} + W_t), alarm when C_t >= h.

    After an alarm the chart restarts at 0. R > 1 watches for deterioration (default doubles the odds);
    R < 1 (e.g. 0.5) for improvement, the statistic is still returned as >= 0. Rows must be in time order
    within each group (unit); groups need not be contiguous. Returns (cusum, alarm) in input order.
    """
    w = cusum_weights(outcomes, predicted_p, odds_ratio)
    order, starts, ends = _group_order(groups, w.size)
    c_sorted, a_sorted = _segmented_cusum(w[order], starts, ends, h)
    c, a = np.empty(w.size), np.empty(w.size, bool)
    c[order], a[order] = c_sorted, a_sorted
    return c, a


def vlad(outcomes: ArrayLike, predicted_p: ArrayLike, groups: ArrayLike | None = None) -> np.ndarray:
    """Variable life-adjusted display: cumulative sum of (p - y) = expected minus observed events.

    Rising means fewer events than the case-mix predicts ("lives saved"). Cumulated within each group in
    row order; rows must be in time order within a group.
    """
    y, p = _arr(outcomes), _arr(predicted_p)
    d = p - y
    if groups is None:
        return np.cumsum(d)
    return pd.Series(d).groupby(pd.factorize(np.asarray(groups))[0]).cumsum().to_numpy()


def _number_within_groups(codes: np.ndarray) -> np.ndarray:
    """1, 2, 3, ... within each run of equal contiguous codes."""
    if codes.size == 0:
        return np.zeros(0, np.int64)
    starts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]])
    lengths = np.diff(np.r_[starts, codes.size])
    return np.arange(codes.size) - np.repeat(starts, lengths) + 1


def cusum_vlad_by_unit(
    cycles: pd.DataFrame,
    *,
    unit: str = "unit",
    date: str = "date",
    outcome: str = "outcome",
    expected: str = "expected",
    odds_ratio_up: float = 2.0,
    odds_ratio_down: float = 0.5,
    h: float = 4.5,
    h_down: float | None = None,
) -> pd.DataFrame:
    """Per-cycle CUSUM (both directions) and VLAD for every unit at once.

    Input: one row per care cycle with unit, date, outcome (0/1) and expected (the case-mix probability).
    Output: the rows sorted by unit then date (ties keep input order; original index kept) with
    cusum_up (R = odds_ratio_up, >= 0), cusum_down (R = odds_ratio_down, drawn downwards as <= 0 like Steiner
    2000, alarm at -h_down), alarm_up, alarm_down, alarm, vlad and cycle_number (1.. within the unit).
    """
    df = cycles.sort_values([unit, date], kind="stable")
    y, p = df[outcome].to_numpy(float), df[expected].to_numpy(float)
    g = pd.factorize(df[unit])[0]  # codes: contiguous and cheap to regroup
    up, a_up = risk_adjusted_cusum(y, p, odds_ratio_up, h, groups=g)
    down, a_down = risk_adjusted_cusum(y, p, odds_ratio_down, h if h_down is None else h_down, groups=g)
    return df.assign(
        cycle_number=_number_within_groups(g),
        cusum_up=up,
        cusum_down=-down,
        alarm_up=a_up,
        alarm_down=a_down,
        alarm=a_up | a_down,
        vlad=vlad(y, p, groups=g),
    )


# ----------------------------------------------------------------------------------- the benchmark
def _col(columns: Mapping[str, ArrayLike], name: str) -> np.ndarray | None:
    if name not in columns:
        return None
    values = columns[name]
    return values.to_numpy(float) if isinstance(values, pd.Series | pd.Index) else np.asarray(values, dtype=float)


def benchmark_units(
    units: pd.DataFrame,
    kind: Kind = "proportion",
    *,
    direction: Literal["higher", "lower"],
    target: float | None = None,
    levels: Sequence[float] = DEFAULT_LEVELS,
    dispersion: DispersionChoice = "auto",
    min_n: float = 0,
    adjusted: bool | None = None,
    exact: bool = True,
    scale: str | None = None,
    sd: float | None = None,
    winsor: float | None = 0.1,
    dispersion_alpha: float = 0.05,
    dispersion_estimate: Dispersion | None = None,
    rankability_threshold: float = 0.5,
    detect_level: float = 0.998,
    power: float = 0.8,
    ci_level: float = 0.95,
) -> pd.DataFrame:
    """One tidy row per unit: estimates with CIs, funnel limits, position, over-dispersion and rankability.

    Works from aggregated input, so a hospital can be benchmarked against national summary figures:
    - kind "proportion" (binary outcome per cycle): columns unit, n, observed[, expected]. With expected
      (case-mix adjusted; adjusted=None means "if the column is there") units are compared on O/E against 1
      with Poisson limits at precision E; without, on the crude rate O/n against `target` with binomial
      limits at precision n. `target` is the benchmark rate (default: sum O / sum n).
    - kind "ratio" (event counts): unit, observed, expected[, n]; compared on O/E with Poisson limits.
    - kind "mean": unit, n and either mean, sd or sum, sum_sq[, expected = mean expected per unit, then the
      adjusted mean target + mean - expected is compared]. Limits mu +/- z sd/sqrt(n), `sd` defaults to
      the population sd pooled from the aggregates (pass the national or residual sd if you have it).
    Dispersion: "none"; "multiplicative" (applied when phi > 1); "additive" (when tau^2 > 0); "auto" =
    additive when the chi-squared test of phi is significant at dispersion_alpha. Only units with
    n >= min_n and a finite z enter the estimate; pass dispersion_estimate to reuse a national one.
    Units with n < min_n are "too few cycles" and never flagged. Indicator-level figures (phi, tau2,
    dispersion_method, rankability, rankability_note) repeat on every row.
    """
    options = {
        "direction": direction,
        "target": target,
        "levels": levels,
        "dispersion": dispersion,
        "min_n": min_n,
        "adjusted": adjusted,
        "exact": exact,
        "scale": scale,
        "sd": sd,
        "winsor": winsor,
        "dispersion_alpha": dispersion_alpha,
        "dispersion_estimate": dispersion_estimate,
        "rankability_threshold": rankability_threshold,
        "detect_level": detect_level,
        "power": power,
        "ci_level": ci_level,
    }
    given = {str(c): units[c] for c in units.columns}
    if "unit" not in given:
        given["unit"] = units.index
    return pd.DataFrame(benchmark_columns(given, kind, **options), index=units.index)


def benchmark_columns(
    units: Mapping[str, ArrayLike],
    kind: Kind = "proportion",
    *,
    direction: Literal["higher", "lower"],
    target: float | None = None,
    levels: Sequence[float] = DEFAULT_LEVELS,
    dispersion: DispersionChoice = "auto",
    min_n: float = 0,
    adjusted: bool | None = None,
    exact: bool = True,
    scale: str | None = None,
    sd: float | None = None,
    winsor: float | None = 0.1,
    dispersion_alpha: float = 0.05,
    dispersion_estimate: Dispersion | None = None,
    rankability_threshold: float = 0.5,
    detect_level: float = 0.998,
    power: float = 0.8,
    ci_level: float = 0.95,
) -> dict[str, np.ndarray]:
    """benchmark_units' columns as arrays, from the units' columns as arrays (`units` maps a column name to its
    values: unit, n, observed, ...). Why: a comparison group's indicator table is built from arrays, and a frame in
    and out of each indicator (and one per step inside) was a fifth of computing it."""
    if direction not in ("higher", "lower"):
        raise ValueError(f"direction must be 'higher' or 'lower', got {direction!r}")
    if dispersion not in ("auto", "none", "multiplicative", "additive"):
        raise ValueError(f"unknown dispersion handling {dispersion!r}")
    for level in levels:
        _check_level(level)
    unit_ids = np.asarray(units["unit"])
    n = _col(units, "n")
    cols: dict[str, np.ndarray] = {"unit": unit_ids}

    if kind in ("proportion", "ratio"):
        o = _col(units, "observed")
        if o is None:
            raise ValueError(f"a {kind} indicator needs an 'observed' column")
        e = _col(units, "expected")
        if n is None:
            if kind == "proportion":
                raise ValueError("a proportion indicator needs an 'n' column")
            n = np.full(o.size, np.nan)
        has_n = np.isfinite(n) & (n > 0)
        overall = target
        if overall is None:
            overall = float(o[has_n].sum() / n[has_n].sum()) if has_n.any() else np.nan
        use_oe = kind == "ratio" or (e is not None if adjusted is None else adjusted)
        if use_oe and e is None:
            raise ValueError("comparing on O/E needs an 'expected' column")
        if e is None:
            e = n * overall
        oe = oe_columns(o, e, ci_level)
        r = _arr(overall)
        adj = {
            "adjusted_rate": oe["oe"] * r,
            "adjusted_lower": oe["oe_lower"] * r,
            "adjusted_upper": oe["oe_upper"] * r,
        }
        with np.errstate(divide="ignore", invalid="ignore"):
            rate = np.where(has_n, o / n, np.nan)
        if kind == "proportion":
            r_lo, r_up = wilson_ci(o, n, ci_level)
        else:
            p_lo, p_up = poisson_ci(o, ci_level)
            with np.errstate(divide="ignore", invalid="ignore"):
                r_lo, r_up = np.where(has_n, p_lo / n, np.nan), np.where(has_n, p_up / n, np.nan)
        cols |= {"n": n, **oe}
        cols |= {"rate": rate, "rate_lower": r_lo, "rate_upper": r_up}
        cols |= adj
        cols["overall_rate"] = np.full(o.size, overall)
        if use_oe:
            sub_kind, compared_on, value, precision, centre = "ratio", "oe", oe["oe"], e, 1.0
        else:
            sub_kind, compared_on, value, precision, centre = "proportion", "rate", rate, n, overall
        pop_sd = None
        z_extra = {"observed": o} if sub_kind == "ratio" else {}
    elif kind == "mean":
        if n is None:
            raise ValueError("a mean indicator needs an 'n' column")
        if "sum" in units and "sum_sq" in units:
            tot, tot_sq = _col(units, "sum"), _col(units, "sum_sq")
            mean, unit_sd = mean_sd_from_sums(n, tot, tot_sq)
        elif "mean" in units and "sd" in units:
            mean, unit_sd = _col(units, "mean"), _col(units, "sd")
            tot = n * mean
            tot_sq = np.where(n > 1, (n - 1) * unit_sd**2, 0.0) + n * mean**2
        else:
            raise ValueError("a mean indicator needs columns mean and sd, or sum and sum_sq")
        ok = np.isfinite(tot) & (n > 0)
        big_n, big_sum, big_sq = n[ok].sum(), tot[ok].sum(), np.nansum(tot_sq[ok])
        # no unit with a value (or one care cycle): no overall mean (or spread), without numpy's warning
        overall = (float(big_sum / big_n) if big_n > 0 else np.nan) if target is None else float(target)
        pop_sd = sd
        if pop_sd is None:
            pop_sd = float(np.sqrt(max((big_sq - big_sum**2 / big_n) / (big_n - 1), 0.0))) if big_n > 1 else np.nan
        lo, up = mean_ci(mean, unit_sd, n, ci_level)
        cols |= {"n": n, "mean": mean, "sd": unit_sd, "mean_lower": lo, "mean_upper": up}
        e = _col(units, "expected")
        if adjusted is False:
            e = None
        if e is not None:
            shift = overall - e
            cols |= {"expected": e, "adjusted_mean": mean + shift}
            cols |= {"adjusted_lower": lo + shift, "adjusted_upper": up + shift}
            compared_on, value = "adjusted_mean", mean + shift
        else:
            compared_on, value = "mean", mean
        cols["overall_mean"] = np.full(n.size, overall)
        sub_kind, precision, centre, z_extra = "mean", n, overall, {}
    else:
        raise ValueError(f"kind must be 'proportion', 'ratio' or 'mean', got {kind!r}")

    # over-dispersion on the variance-stabilising scale
    scale = _default_scale(sub_kind, scale)
    zs = _z_columns(sub_kind, _arr(value), _arr(precision), centre, scale, pop_sd, z_extra.get("observed"))
    z, s = zs["z"], zs["s"]
    too_few = ~(n >= min_n) if min_n > 0 else np.zeros(n.size, bool)
    enters = ~too_few & np.isfinite(z) & np.isfinite(s)
    est = dispersion_estimate or estimate_overdispersion(z[enters], s[enters], winsor, dispersion_alpha)
    method = "none"
    wants_additive = dispersion == "additive" or (dispersion == "auto" and est.significant)
    if dispersion == "multiplicative" and est.phi > 1:
        method = "multiplicative"
    elif wants_additive and est.tau2 > 0:
        method = "additive"

    prec = _arr(precision)
    if method != "none":
        limits = _dispersed_limits(sub_kind, centre, prec, levels, method, est.phi, est.tau2, scale, pop_sd)
    elif sub_kind == "proportion":
        limits = _proportion_limits(centre, prec, levels, exact)
    elif sub_kind == "ratio":
        limits = _ratio_limits(prec, levels, exact)
    else:
        limits = _mean_limits(centre, pop_sd, prec, levels)
    names = [c.removeprefix("lower_") for c in limits if c.startswith("lower_")]
    lows = [limits[c] for c in limits if c.startswith("lower_")]
    ups = [limits[c] for c in limits if c.startswith("upper_")]
    pos = position_columns(_arr(value), names, lows, ups, direction == "higher", n, min_n)

    rank = rankability(est.tau2, s[enters] ** 2)
    size = n.size
    cols |= {
        "compared_on": np.full(size, compared_on, dtype=object),
        "value": value,
        "precision": precision,
        "target": np.full(size, centre),
        "z": z,
    }
    cols |= limits
    cols |= pos
    cols |= {
        "too_few_cycles": too_few,
        "detectable_difference": detectable_difference(
            sub_kind, precision, target=centre, sd=pop_sd, level=detect_level, power=power
        ),
        "phi": np.full(size, est.phi),
        "phi_p_value": np.full(size, est.p_value),
        "tau2": np.full(size, est.tau2),
        "dispersion_method": np.full(size, method, dtype=object),
        "rankability": np.full(size, rank),
        "rankability_note": np.full(size, CANNOT_RANK if not rank >= rankability_threshold else "", dtype=object),
    }
    return cols
