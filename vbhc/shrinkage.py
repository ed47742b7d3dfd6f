"""Shrinkage (random-effects) estimates of unit performance, with rankability and the expected rank.

Why: O/E and the adjusted mean treat every unit's own data as the whole truth, so a unit with 15 patients
and one unlucky death looks like the worst in the country. A random-effects model assumes the units' true
effects come from one common distribution (between-unit variance tau^2) and estimates each unit's effect
as a precision-weighted compromise between its own data and the average: a small unit is pulled strongly
towards the average, a large one hardly moves. This is how CMS's risk-standardised rates work.

Yes/no indicators (hierarchical logistic model, as CMS's risk-standardised rates; Krumholz et al.,
Circulation 2006;113:1683; Normand & Shahian, Stat Sci 2007;22:206):
    logit P(y_ij = 1) = logit(e_ij) + alpha + u_j,    u_j ~ N(0, tau^2)
with e_ij the case-mix expected probability of cycle i in unit j as a fixed offset. alpha and tau are
estimated by maximum likelihood of the marginal likelihood (adaptive Gauss-Hermite quadrature per unit);
u_j is the conditional mode (empirical Bayes), its variance v_j the inverse curvature at the mode. The
unit's shrunken value is the risk-standardised rate (P_j / E_j) x overall rate, with
    P_j = sum_i expit(logit e_ij + alpha + u_j),   E_j = sum_i expit(logit e_ij + alpha),
and its 95% interval is the same expression at u_j -/+ 1.96 sqrt(v_j + (1 - lambda_j)^2 var(alpha)), with
lambda_j = tau^2 / (tau^2 + w_j), w_j the within-unit variance below and var(alpha) = 1 / sum 1/(w_j + tau^2)
(the same Morris form as for continuous indicators). The per-unit sums over cycles are expanded
once in a Chebyshev series in the unit shift (see _UnitSums), so fitting costs one pass over the cycles.

Continuous indicators (normal-normal empirical Bayes, i.e. a random-intercept linear model, REML):
    r_ij = y_ij - e_ij = mu + u_j + eps_ij,    u_j ~ N(0, tau^2),  eps_ij ~ N(0, sigma^2)
u_j = lambda_j (rbar_j - mu),  lambda_j = tau^2 / (tau^2 + sigma^2 / n_j); the shrunken value is
overall + mu + u_j, with the variance of mu + u_j given the data (Morris 1983: lambda_j sigma^2 / n_j +
(1 - lambda_j)^2 var(mu)).

Rankability (van Dishoeck et al., BMJ Qual Saf 2011): tau^2 / (tau^2 + median within-unit variance) via
vbhc.benchmark.rankability, on the model's own scale (logit for yes/no, outcome units for continuous); the
within-unit variance is 1 / information of a unit's effect at the average (sum e'(1-e') on the logit
scale) or sigma^2 / n_j. Expected rank (1 = best; Roozenbeek/van Dishoeck): 1 + sum_k P(unit k is better
than unit j) under the normal posteriors of the u's, exactly; its 95% interval from 4000 draws of those
posteriors with a fixed seed, so the table is reproducible.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from vbhc.benchmark import rankability
from vbhc.lazy import optimize, special, stats

__all__ = [
    "COLUMNS",
    "RandomEffects",
    "expected_ranks",
    "shrink_binary",
    "shrink_continuous",
]

#: Columns one shrinkage fit adds to every unit row of the indicator table (names used by vbhc.indicators).
SHRUNKEN_VALUE = "shrunken_value"
SHRUNKEN_LOWER = "shrunken_lower"
SHRUNKEN_UPPER = "shrunken_upper"
SHRINKAGE_TAU2 = "shrinkage_tau2"
SHRINKAGE_RANKABILITY = "shrinkage_rankability"
EXPECTED_RANK = "expected_rank"
EXPECTED_RANK_LOWER = "expected_rank_lower"
EXPECTED_RANK_UPPER = "expected_rank_upper"
RANKED_UNITS = "ranked_units"
COLUMNS = (
    SHRUNKEN_VALUE,
    SHRUNKEN_LOWER,
    SHRUNKEN_UPPER,
    SHRINKAGE_TAU2,
    SHRINKAGE_RANKABILITY,
    EXPECTED_RANK,
    EXPECTED_RANK_LOWER,
    EXPECTED_RANK_UPPER,
    RANKED_UNITS,
)

RANK_DRAWS = 4000
RANK_SEED = 20111201  # fixed: the rank interval is part of a reproducible table
CI_LEVEL = 0.95
_HALF_WIDTH = 6.0  # unit shifts alpha + u_j beyond +/-6 on the logit scale (odds x 400) are clipped
_TERMS = 64  # Chebyshev terms: the softplus sums are analytic within pi of the real axis, so error ~1e-14
_MAX_TAU = 5.0  # the between-unit sd (logit) searched up to: odds ratios of e^10 between units 1 sd apart
_QUADRATURE = np.polynomial.hermite.hermgauss(21)  # adaptive Gauss-Hermite nodes and weights
_ORDERS = np.arange(_TERMS)  # the Chebyshev terms' degrees
_EXTREME = 600.0  # |offset| beyond which e^offset x e^6 overflows or e^offset underflows to denormals
_BLOCK = 8192  # (unit, offset) pairs per block of the per-unit sums: a block of 8192 x 64 softplus values, 4 MB


@dataclass(frozen=True)
class RandomEffects:
    """One random-intercept fit: per unit (in the order given) the effect's posterior, and the shrunken values."""

    units: np.ndarray
    n: np.ndarray  #: cycles per unit that entered the model
    effect: np.ndarray  #: u_j, the empirical-Bayes (conditional mode) estimate of the unit effect
    effect_sd: np.ndarray  #: its posterior standard deviation
    value: np.ndarray  #: shrunken value on the indicator's scale (rate or mean)
    lower: np.ndarray
    upper: np.ndarray
    tau2: float  #: between-unit variance (logit scale for yes/no, outcome units squared for continuous)
    centre: float  #: alpha (yes/no) or mu (continuous)
    sigma2: float  #: residual variance (continuous only; NaN for yes/no)
    within_variance: np.ndarray  #: per unit, the variance of its own effect estimate (for rankability)

    def rankability(self, enters: np.ndarray | None = None) -> float:
        """van Dishoeck's rankability with this model's tau^2 (units in `enters`, default all with data)."""
        keep = self.n > 0 if enters is None else (np.asarray(enters, bool) & (self.n > 0))
        return rankability(self.tau2, self.within_variance[keep])


# ------------------------------------------------------------------------------------------ yes/no
def _node_sums(offset: np.ndarray, codes: np.ndarray, n_units: int) -> np.ndarray:
    """Per unit (row) and Chebyshev node (column) the sum of log(1 + exp(offset + node)) over the unit's cycles.

    Why: at 1M cycles the direct form (np.logaddexp per cycle and node, 64M of them, and two n x 64 temporaries)
    took seconds. Cycles of one unit that share an offset (a case-mix model on categories) are counted once and
    weighted by their number; the softplus is log1p(e^o e^s), one multiplication and one log1p per term (~1e-16
    relative; beyond |o| = 600, where e^o over- or underflows, np.logaddexp as before); and the terms are taken in
    blocks of (unit, offset) pairs ordered by unit, summed per unit along the rows, so no temporary grows with the
    cycles.
    Exact: the same terms summed in another order (differences ~1e-14 relative).
    """
    nodes = _HALF_WIDTH * np.cos(np.pi * (_ORDERS + 0.5) / _TERMS)
    scale = np.exp(nodes)
    # the cycles ordered by unit, then offset (one sort by offset, then a stable one by unit: a radix sort on
    # 16-bit codes), so that the (unit, distinct offset) pairs present are runs, counted by where a run begins
    order = np.argsort(offset)
    small = np.uint16 if n_units <= 1 << 16 else np.intp
    order = order[np.argsort(codes[order].astype(small), kind="stable")]
    sorted_offset, sorted_unit = offset[order], codes[order]
    first = np.flatnonzero(
        np.r_[True, (sorted_unit[1:] != sorted_unit[:-1]) | (sorted_offset[1:] != sorted_offset[:-1])]
    )
    count = np.diff(np.r_[first, offset.size])
    pair_offset, unit = sorted_offset[first], sorted_unit[first]
    with np.errstate(over="ignore", under="ignore"):  # beyond _EXTREME: replaced below
        odds = np.exp(pair_offset)
    out = np.zeros((n_units, _TERMS))
    for start in range(0, unit.size, _BLOCK):
        stop = min(start + _BLOCK, unit.size)
        with np.errstate(over="ignore", under="ignore"):
            terms = np.log1p(odds[start:stop, None] * scale)
        extreme = np.flatnonzero(np.abs(pair_offset[start:stop]) > _EXTREME)
        if extreme.size:  # e^o would overflow or lose its digits to underflow: the direct form there
            terms[extreme] = np.logaddexp(0.0, pair_offset[start + extreme, None] + nodes)
        terms *= count[start:stop, None]
        owner = unit[start:stop]
        begins = np.flatnonzero(np.r_[True, owner[1:] != owner[:-1]])  # where each unit's rows begin in the block
        out[owner[begins]] += np.add.reduceat(terms, begins, axis=0)
    return out


class _UnitSums:
    """A_j(s) = sum over unit j's cycles of log(1 + exp(o_i + s)), as a Chebyshev series in s on [-L, L].

    Why: the marginal likelihood needs A_j, A_j' (= expected events at shift s) and A_j'' at many shifts
    while alpha and tau are optimised. Evaluating them on 64 Chebyshev nodes once (one pass over the cycles)
    and interpolating makes every later step cost O(units) instead of O(cycles), exactly to ~1e-13.
    """

    def __init__(self, offset: np.ndarray, codes: np.ndarray, n_units: int):
        k = _ORDERS
        angles = np.pi * (k + 0.5) / _TERMS
        values = _node_sums(np.asarray(offset, dtype=float), np.asarray(codes, dtype=np.intp), n_units)
        basis = np.cos(np.outer(k, angles))  # T_m at the nodes
        coef = values @ basis.T * (2.0 / _TERMS)
        coef[:, 0] /= 2
        self.coef = [coef]
        for _ in range(2):
            self.coef.append(np.polynomial.chebyshev.chebder(self.coef[-1], axis=1) / _HALF_WIDTH)

    def __call__(self, s: np.ndarray, derivative: int = 0) -> np.ndarray:
        """A_j^(derivative) at shifts s (shape (units,) or (units, m)); row j of s belongs to unit j."""
        return self.at(s, derivative)[0]

    def at(self, s: np.ndarray, *derivatives: int) -> tuple[np.ndarray, ...]:
        """A_j^(d) at shifts s for each d in `derivatives`, from one Chebyshev basis: the basis (a cosine per shift
        and term) is most of the cost, and the fit needs two derivatives at the same shifts at every step."""
        t = np.minimum(np.maximum(s, -_HALF_WIDTH), _HALF_WIDTH) / _HALF_WIDTH  # np.clip's values, less overhead
        basis = np.cos(np.arccos(t)[..., None] * _ORDERS)  # T_m(t) = cos(m arccos t)
        out = []
        for derivative in derivatives:  # a derivative's series is one term shorter (chebder)
            c = self.coef[derivative]
            out.append((basis[..., : c.shape[1]] * (c if t.ndim == 1 else c[:, None, :])).sum(axis=-1))
        return tuple(out)


def _modes(sums: _UnitSums, events: np.ndarray, alpha: float, tau: float, start: np.ndarray) -> np.ndarray:
    """Per unit the u maximising events*(alpha+u) - A(alpha+u) - u^2/(2 tau^2) (concave: damped Newton)."""
    u = start.copy()
    for _ in range(100):
        slope, bend = sums.at(alpha + u, 1, 2)
        grad = events - slope - u / tau**2
        curv = bend + 1 / tau**2
        step = np.minimum(np.maximum(grad / curv, -2.0), 2.0)
        u += step
        if np.max(np.abs(step)) < 1e-12:
            break
    return u


def _marginal_loglik(
    sums: _UnitSums, events: np.ndarray, alpha: float, tau: float, start: np.ndarray
) -> tuple[float, np.ndarray, np.ndarray]:
    """log L(alpha, tau) up to a constant (adaptive Gauss-Hermite per unit), the modes found, and the gradient in
    (alpha, log tau): per unit the posterior means of events - A'(alpha + u) and of u^2 / tau^2 - 1 (the
    derivatives of the integral), on the same nodes. Why the gradient: a quasi-Newton fit needs ~20 evaluations
    where Nelder-Mead needed ~140, and stops at a gradient of ~1e-10 instead of ~1e-6."""
    u = _modes(sums, events, alpha, tau, start)
    sd = 1 / np.sqrt(sums(alpha + u, 2) + 1 / tau**2)
    x, w = _QUADRATURE
    nodes = u[:, None] + np.sqrt(2) * sd[:, None] * x[None, :]
    level, slope = sums.at(alpha + nodes, 0, 1)
    g = events[:, None] * (alpha + nodes) - level - nodes**2 / (2 * tau**2)
    top = g.max(axis=1, keepdims=True)
    mass = w * np.exp(g - top + x**2)
    total = mass.sum(axis=1)
    integral = np.log(total) + top[:, 0]
    per_unit = integral + np.log(np.sqrt(2) * sd) - np.log(np.sqrt(2 * np.pi) * tau)
    posterior = mass / total[:, None]
    gradient = np.array(
        [
            float((posterior * (events[:, None] - slope)).sum()),
            float((posterior * nodes**2).sum() / tau**2 - len(events)),
        ]
    )
    return float(per_unit.sum()), u, gradient


def shrink_binary(
    units: Sequence | np.ndarray,
    outcome: Sequence[float] | np.ndarray,
    expected: Sequence[float] | np.ndarray,
    overall: float | None = None,
    *,
    ci_level: float = CI_LEVEL,
) -> RandomEffects:
    """Hierarchical logistic model with the case-mix expected risk as offset (see the module docstring).

    `units`, `outcome` (0/1) and `expected` (case-mix probability) are per cycle; cycles without an
    expected value must be left out by the caller. `overall` is the benchmark rate the risk-standardised
    rate is scaled to (default: the observed rate of these cycles). No estimate (NaN) with one unit, without events
    or with only events, and when the fit ends on the edge of its search (|alpha| = 3 or tau = 5: all events in one
    unit and none elsewhere).
    """
    codes, labels = pd.factorize(pd.Series(np.asarray(units)), sort=True)
    y = np.asarray(outcome, dtype=float)
    e = np.clip(np.asarray(expected, dtype=float), 1e-12, 1 - 1e-12)
    j = len(labels)
    n = np.bincount(codes, minlength=j).astype(float)
    events = np.bincount(codes, weights=y, minlength=j)
    if overall is None:
        overall = float(y.mean()) if y.size else float("nan")
    if j < 2 or events.sum() in (0, y.size):  # one unit, no events or only events: nothing to estimate
        return _empty(labels, n)
    sums = _UnitSums(special.logit(e), codes, j)
    start = np.zeros(j)
    memo = {"u": start}

    def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
        value, memo["u"], gradient = _marginal_loglik(sums, events, float(theta[0]), float(np.exp(theta[1])), memo["u"])
        return -value, -gradient

    alpha0 = float(np.log(max(events.sum(), 0.5) / sums(np.zeros(j), 1).sum()))
    start = np.array([alpha0, np.log(0.3)])
    bounds = [(-_HALF_WIDTH / 2, _HALF_WIDTH / 2), (np.log(1e-4), np.log(_MAX_TAU))]
    best = optimize.minimize(
        objective, start, jac=True, method="L-BFGS-B", bounds=bounds, options={"ftol": 0.0, "gtol": 1e-10}
    )
    if not best.success:  # the line search gave up (a flat likelihood): the derivative-free search from there
        noise = 1e-12 * (1 + abs(best.fun))  # the log-likelihood's own rounding: no point going below
        best = optimize.minimize(
            lambda theta: objective(theta)[0],
            best.x,
            method="Nelder-Mead",
            bounds=bounds,
            options={"xatol": 1e-9, "fatol": noise, "maxiter": 4000},
        )
    alpha, tau = float(best.x[0]), float(np.exp(best.x[1]))
    if abs(alpha) >= _HALF_WIDTH / 2 * 0.999 or tau >= _MAX_TAU * 0.999:
        # the fit stopped at the edge of the search: its maximum lies beyond it (all events in one unit, the others
        # without: alpha -5.7 and tau 5.4 by direct integration), so alpha and tau are the bounds', not the data's.
        # With a between-unit sd that large the median unit is nothing like the average one and P_j / E_j x overall
        # is no rate (10 of 20 events beside four units without read 876%, their upper limits 862%): no estimate,
        # as with no events at all
        return _empty(labels, n)
    if tau <= 1.0001e-4:  # at the boundary: no between-unit variance worth speaking of
        tau = 0.0
        u, sd = np.zeros(j), np.zeros(j)
        for _ in range(50):  # alpha is then the plain ML calibration shift: expected events = observed events
            step = (sums(np.full(j, alpha), 1).sum() - events.sum()) / sums(np.full(j, alpha), 2).sum()
            alpha -= step
            if abs(step) < 1e-13:
                break
    else:
        u = _modes(sums, events, alpha, tau, memo["u"])
        sd = 1 / np.sqrt(sums(alpha + u, 2) + 1 / tau**2)
    z = float(stats.norm.ppf(0.5 + ci_level / 2))
    info = sums(np.full(j, alpha), 2)
    with np.errstate(divide="ignore"):
        within = np.where(info > 0, 1 / info, np.inf)
    # the interval of alpha + u_j also carries the uncertainty of alpha (Morris), as the continuous one does
    # of mu: at tau^2 = 0 it is the overall rate's own uncertainty rather than a zero-width interval
    lam = tau**2 / (tau**2 + within)
    var_alpha = 1 / float((1 / (within + tau**2)).sum())
    spread = np.sqrt(sd**2 + (1 - lam) ** 2 * var_alpha)
    base = sums(np.full(j, alpha), 1)
    ratio = sums(alpha + u, 1) / base
    lower = sums(alpha + u - z * spread, 1) / base
    upper = sums(alpha + u + z * spread, 1) / base
    return RandomEffects(
        units=np.asarray(labels),
        n=n,
        effect=u,
        effect_sd=sd,
        value=ratio * overall,
        lower=lower * overall,
        upper=upper * overall,
        tau2=tau**2,
        centre=alpha,
        sigma2=float("nan"),
        within_variance=within,
    )


# --------------------------------------------------------------------------------------- continuous
def _reml_profile(gamma: float, n: np.ndarray, mean: np.ndarray, ssw: float, total: int) -> tuple[float, float, float]:
    """-2 x profiled REML log-likelihood at gamma = tau^2/sigma^2, with sigma^2 and mu at their optimum."""
    w = n / (1 + n * gamma)
    mu = float((w * mean).sum() / w.sum())
    q = ssw + float((w * (mean - mu) ** 2).sum())
    sigma2 = q / (total - 1)
    value = (total - 1) * np.log(sigma2) + float(np.log1p(n * gamma).sum()) + float(np.log(w.sum()))
    return value, sigma2, mu


def shrink_continuous(
    units: Sequence | np.ndarray,
    residual: Sequence[float] | np.ndarray,
    overall: float,
    *,
    ci_level: float = CI_LEVEL,
) -> RandomEffects:
    """Normal-normal empirical Bayes (random-intercept linear model, REML) of the units' mean residual.

    `residual` is observed minus case-mix expected per cycle; the shrunken value is overall + mu + u_j,
    comparable with the adjusted mean (overall + the unit's mean residual).
    """
    codes, labels = pd.factorize(pd.Series(np.asarray(units)), sort=True)
    r = np.asarray(residual, dtype=float)
    j = len(labels)
    if j == 0:
        return _empty(labels)
    n = np.bincount(codes, minlength=j).astype(float)
    mean = np.bincount(codes, weights=r, minlength=j) / n
    ssw = float(((r - mean[codes]) ** 2).sum())
    total = r.size
    if total <= j or j < 2 or not ssw > 0:  # no within-unit or between-unit information: no estimate
        return _empty(labels, n)

    def objective(root: float) -> float:
        return _reml_profile(root**2, n, mean, ssw, total)[0]

    spread = float(np.var(mean)) / max(ssw / (total - j), 1e-300)
    fit = optimize.minimize_scalar(
        objective, bounds=(0.0, np.sqrt(max(spread, 1e-6)) * 10 + 1.0), method="bounded", options={"xatol": 1e-12}
    )
    root = float(fit.x) if fit.fun < objective(0.0) else 0.0
    gamma = root**2
    _, sigma2, mu = _reml_profile(gamma, n, mean, ssw, total)
    tau2 = gamma * sigma2
    lam = tau2 / (tau2 + sigma2 / n)
    u = lam * (mean - mu)
    var_mu = 1 / float((1 / (tau2 + sigma2 / n)).sum())
    var = lam * sigma2 / n + (1 - lam) ** 2 * var_mu
    z = float(stats.norm.ppf(0.5 + ci_level / 2))
    value = overall + mu + u
    return RandomEffects(
        units=np.asarray(labels),
        n=n,
        effect=u,
        effect_sd=np.sqrt(lam * sigma2 / n),
        value=value,
        lower=value - z * np.sqrt(var),
        upper=value + z * np.sqrt(var),
        tau2=tau2,
        centre=mu,
        sigma2=sigma2,
        within_variance=sigma2 / n,
    )


def _empty(labels: Sequence, n: np.ndarray | None = None) -> RandomEffects:
    size = len(labels)
    nan = np.full(size, np.nan)
    return RandomEffects(
        np.asarray(labels),
        np.zeros(size) if n is None else n,
        nan,
        nan,
        nan,
        nan,
        nan,
        float("nan"),
        float("nan"),
        float("nan"),
        nan,
    )


# ---------------------------------------------------------------------------------------------- ranks
def expected_ranks(
    effect: np.ndarray,
    effect_sd: np.ndarray,
    *,
    lower_is_better: bool,
    level: float = CI_LEVEL,
    draws: int = RANK_DRAWS,
    seed: int = RANK_SEED,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Expected rank (1 = best) with its interval, for independent normal posteriors of the unit effects.

    The mean is exact: 1 + sum_k P(u_k better than u_j); the interval comes from `draws` joint draws with a
    fixed seed. Units with a non-finite effect get NaN.
    """
    m = np.asarray(effect, dtype=float)
    sd = np.asarray(effect_sd, dtype=float)
    out = [np.full(m.size, np.nan) for _ in range(3)]
    ok = np.isfinite(m) & np.isfinite(sd)
    if not ok.any():
        return out[0], out[1], out[2]
    sign = 1.0 if lower_is_better else -1.0
    mm, ss = sign * m[ok], sd[ok]
    k = mm.size
    scale = np.sqrt(ss[:, None] ** 2 + ss[None, :] ** 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        better = np.where(scale > 0, stats.norm.cdf((mm[:, None] - mm[None, :]) / scale), 0.5)
    np.fill_diagonal(better, 0.0)
    mean_rank = 1 + better.sum(axis=1)
    rng = np.random.default_rng(seed)
    sample = mm[None, :] + ss[None, :] * rng.standard_normal((draws, k))
    ranks = sample.argsort(axis=1).argsort(axis=1) + 1.0
    tail = (1 - level) / 2
    lo = np.quantile(ranks, tail, axis=0, method="inverted_cdf")
    hi = np.quantile(ranks, 1 - tail, axis=0, method="inverted_cdf")
    if not (ss > 0).any():  # no posterior spread at all (tau^2 = 0): every order is equally likely
        lo, hi = np.ones(k), np.full(k, float(k))
    out[0][ok], out[1][ok], out[2][ok] = mean_rank, lo, hi
    return out[0], out[1], out[2]
