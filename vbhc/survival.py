"""Survival indicators: Kaplan-Meier per unit and a Cox model for the standardised mortality ratio (SMR).

A survival indicator follows every care cycle from its index date to death or to the last date the patient
was known to be alive (loss to follow-up), censored at the data's end date (ConditionData.as_of) and at the
indicator's horizon (1, 2 or 5 years). The registry holds this as one clinical outcome per cycle: value 1
with the date of death, value 0 with the date last known alive (catalog: the indicator's `outcome`; the date
column is named with catalog.EVENT_DATE_SUFFIX). Why a survival kind next to the binary "1-year mortality":
a binary rate must drop every cycle whose year has not passed, Kaplan-Meier uses every day of follow-up.

- Kaplan-Meier estimates: the product limit with Greenwood's variance and the log(-log) confidence interval
  (numpy, a few lines; checked against statsmodels' SurvfuncRight and hand-worked cases in tests/test_survival.py).
- Risk adjustment: a Cox proportional-hazards model on the whole benchmark population with the condition's
  case-mix variables, encoded as the logistic case-mix models encode them (vbhc.casemix.casemix_design),
  gives every cycle its expected cumulative hazard up to its own follow-up end; summed per unit that is the
  expected number of deaths E. SMR = O/E with the exact Poisson CI (benchmark.oe_ratio), compared with
  Poisson funnel limits at precision E (benchmark.benchmark_units, kind "ratio"), as for O/E.
- The table shows survival, not deaths: crude = the unit's KM survival at the horizon; adjusted = overall KM
  survival ** SMR (the unit's survival if its hazard is SMR times the benchmark's, proportional hazards); the
  limits are mapped the same way, so a unit's position against them is exactly its SMR's against the funnel.
- The Cox model (Efron ties) is fitted by statsmodels' Newton-Raphson on the partial likelihood written out here
  on numpy arrays (_Efron: PHReg's formulas without its loop over the distinct times; tests/test_survival.py checks
  it against PHReg); the baseline is Breslow's, written out here.
- The proportional-hazards assumption is checked with the Schoenfeld-residual test (Grambsch-Therneau's
  approximation on the Schoenfeld residuals, as PHReg's, rank-transformed time) and reported per variable; the
  table keeps the smallest p-value.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from vbhc import benchmark
from vbhc.casemix import DesignEncoding, casemix_design, design_encoding, encode_design
from vbhc.catalog import DAYS_PER_YEAR, EVENT_DATE_SUFFIX, CaseMixVariable
from vbhc.lazy import stats

#: Extra columns of a survival row in the indicator table (besides the standard ones).
PH_P_VALUE = "ph_p_value"  # smallest Schoenfeld-test p-value over the case-mix variables
PH_VARIABLE = "ph_variable"  # the variable it belongs to
#: Newton-Raphson of the Cox model (as PHReg.fit's): stop when no coefficient moves more than `tol` (Newton converges
#: quadratically, so the estimate is then far closer than that to the maximum); more steps mean no convergence.
COX_FIT_OPTIONS = {"maxiter": 100, "tol": 1e-10}
#: L2 penalty of the fallback fit when the plain Cox model does not converge: the log partial likelihood minus
#: n * RIDGE_PENALTY / 2 * |b|^2 on standardised covariates (so the penalty does not depend on their units).
RIDGE_PENALTY = 0.1


def follow_up(
    cycles: pd.DataFrame, outcome: str, as_of: pd.Timestamp, horizon_days: float | None = None
) -> pd.DataFrame:
    """Per cycle: follow-up time in days and event (1 = died), NaN where the cycle has no follow-up record.

    Censored at the record's date when alive (loss to follow-up or last check), at `as_of` (a death after
    the data's end date is not known yet) and at the horizon. A date before the index date is no follow-up.
    """
    value = pd.to_numeric(cycles[outcome], errors="coerce").to_numpy(float)
    end = pd.to_datetime(cycles[outcome + EVENT_DATE_SUFFIX]).to_numpy("datetime64[ns]")
    start = pd.to_datetime(cycles["index_date"]).to_numpy("datetime64[ns]")
    limit = np.datetime64(pd.Timestamp(as_of).to_datetime64(), "ns")
    event = value == 1
    late = end > limit
    end = np.where(late, limit, end)
    event &= ~late
    days = (end - start) / np.timedelta64(1, "D")
    known = np.isfinite(value) & ~np.isnat(end) & (days >= 0)
    if horizon_days is not None:
        beyond = days > horizon_days
        days = np.where(beyond, horizon_days, days)
        event &= ~beyond
    return pd.DataFrame(
        {"time": np.where(known, days, np.nan), "event": np.where(known, event.astype(float), np.nan)},
        index=cycles.index,
    )


def _step_at(index: np.ndarray, values: np.ndarray, at: float) -> float:
    """A right-continuous step function (the Kaplan-Meier tables) at time `at`."""
    pos = int(np.searchsorted(index, at, side="right")) - 1
    return float(values[pos]) if pos >= 0 else float("nan")


def _km_table(time: np.ndarray, event: np.ndarray, level: float) -> dict[str, np.ndarray]:
    """Kaplan-Meier table at time 0 and every distinct follow-up time: survival (product limit), the log(-log)
    interval with Greenwood's variance, and the number at risk. Where S = 1 the interval is (1, 1); after a
    step to 0 it is (0, 0) (Greenwood's term d / (n (n - d)) is taken as 0 when everyone at risk died)."""
    times, inverse, counts = np.unique(time, return_inverse=True, return_counts=True)
    deaths = np.bincount(inverse, weights=event, minlength=len(times))
    at_risk = len(time) - np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(float)
    if not len(times) or times[0] > 0:  # the table starts at 0, everyone at risk and no death yet
        times, deaths, at_risk = np.r_[0.0, times], np.r_[0.0, deaths], np.r_[float(len(time)), at_risk]
    with np.errstate(divide="ignore", invalid="ignore"):
        surv = np.cumprod(1.0 - deaths / at_risk)
        greenwood = np.cumsum(np.where(at_risk > deaths, deaths / (at_risk * (at_risk - deaths)), 0.0))
        z = stats.norm.ppf(0.5 + level / 2)
        log_s = np.log(surv)
        half = z * np.sqrt(greenwood) / log_s  # negative: log S < 0
        lower = np.exp(-np.exp(np.log(-log_s) - half))  # S ** exp(+z se / |log S|)
        upper = np.exp(-np.exp(np.log(-log_s) + half))
    lower, upper = np.where(np.isnan(lower), 1.0, lower), np.where(np.isnan(upper), 1.0, upper)
    return {"time": times, "survival": surv, "lower": lower, "upper": upper, "at_risk": at_risk}


def kaplan_meier(time: np.ndarray, event: np.ndarray, at: float, level: float = 0.95) -> tuple[float, float, float]:
    """Kaplan-Meier survival at `at` (same unit as time) with its log(-log) confidence interval (Greenwood)."""
    time, event = np.asarray(time, float), np.asarray(event, float)
    if time.size == 0:
        return float("nan"), float("nan"), float("nan")
    km = _km_table(time, event, level)
    return (
        _step_at(km["time"], km["survival"], at),
        _step_at(km["time"], km["lower"], at),
        _step_at(km["time"], km["upper"], at),
    )


def km_curves(frame: pd.DataFrame, unit: str = "unit", level: float = 0.95) -> pd.DataFrame:
    """Kaplan-Meier curve per unit with its confidence band, tidy: unit, time (days), survival, lower, upper,
    at_risk. Input: one row per cycle with columns unit, time, event (follow_up's, NaN rows left out)."""
    rows = []
    part = frame.dropna(subset=["time", "event"])
    for name, g in part.groupby(unit, sort=True, observed=True):
        km = _km_table(g["time"].to_numpy(float), g["event"].to_numpy(float), level)
        rows.append(pd.DataFrame({"unit": name, **km}))
    columns = ["unit", "time", "survival", "lower", "upper", "at_risk"]
    return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(columns=columns)


def at_risk_times(horizon_years: float) -> np.ndarray:
    """The few times (years) a number-at-risk table is shown at: every year up to a horizon of 3 years or
    more, else every quarter of the horizon (a 1-year curve is read at 0, 3, 6, 9 and 12 months)."""
    years = float(horizon_years)
    if years >= 3:
        return np.arange(0.0, np.floor(years) + 1.0)
    return np.linspace(0.0, years, 5)


def number_at_risk(frame: pd.DataFrame, times_years: Sequence[float], level: float = 0.95) -> pd.DataFrame:
    """Per group (column `unit`) and time: the care cycles still followed (time >= t: alive and not yet
    censored just before t) and the Kaplan-Meier survival at t with its interval; tidy, one row per group and
    time. Input: one row per cycle with unit, time (days) and event, as km_curves takes."""
    part = frame.dropna(subset=["time", "event"])
    rows = []
    for name, g in part.groupby("unit", sort=False, observed=True):
        time, event = g["time"].to_numpy(float), g["event"].to_numpy(float)
        for years in times_years:
            at = float(years) * DAYS_PER_YEAR
            s, lower, upper = kaplan_meier(time, event, at, level)
            rows.append(
                {"unit": name, "years": float(years), "at_risk": int((time >= at).sum()), "survival": s,
                 "lower": lower, "upper": upper}
            )  # fmt: skip
    return pd.DataFrame(rows, columns=["unit", "years", "at_risk", "survival", "lower", "upper"])


# --- Cox model --------------------------------------------------------------------------------------------


@dataclass
class CoxModel:
    """A fitted Cox model: coefficients, the Breslow baseline cumulative hazard and the PH check."""

    coefficients: pd.Series  # per design column (log hazard ratios)
    means: pd.Series  # the covariate means the baseline is centred on (a patient with these values)
    baseline_time: np.ndarray  # event times of the baseline cumulative hazard (days)
    baseline_cumhaz: np.ndarray  # H0 at those times, for the centred covariates
    ph_test: pd.DataFrame = field(default_factory=pd.DataFrame)  # variable, statistic, p
    concordance: float = float("nan")
    n: int = 0  # cycles in the model (followed, case-mix complete)
    n_excluded: int = 0
    fit_note: str | None = None  # "ridge" when the plain fit did not converge (see fit_cox)
    events: int = 0  # deaths within the horizon among the n cycles
    # set when this is the registry's model recalibrated to a comparison group (recalibrate_cox): the factor its
    # baseline cumulative hazard was multiplied by (the group's O / E under the registry's baseline)
    baseline_scale: float | None = None

    def expected(self, time: np.ndarray, design: pd.DataFrame) -> np.ndarray:
        """Expected cumulative hazard H0(t) * exp((x - mean) b) of each cycle up to its own follow-up end."""
        lp = np.zeros(len(design))
        if len(self.coefficients):
            x = design[self.coefficients.index].to_numpy(float) - self.means.to_numpy(float)
            lp = x @ self.coefficients.to_numpy(float)
        pos = np.searchsorted(self.baseline_time, np.asarray(time, float), side="right") - 1
        h0 = np.where(pos >= 0, self.baseline_cumhaz[np.maximum(pos, 0)], 0.0)
        return h0 * np.exp(lp)


def recalibrate_cox(model: CoxModel, expected: np.ndarray, event: np.ndarray) -> CoxModel:
    """The registry's Cox model recalibrated in the large to a comparison group: the same coefficients, its
    baseline cumulative hazard multiplied by O / E over the group's modelled cycles (`expected`: their
    cumulative hazards under the registry's model, `event`: their deaths), so the group's summed expected
    deaths equal its observed deaths and the group's own level is what SMR = 1 means. A group without
    expected deaths keeps the registry's baseline (factor 1: there is nothing to scale)."""
    e, o = float(np.sum(expected)), float(np.sum(event))
    scale = o / e if e > 0 else 1.0
    return replace(model, baseline_cumhaz=model.baseline_cumhaz * scale, baseline_scale=scale)


def fit_cox(
    time: np.ndarray,
    event: np.ndarray,
    design: pd.DataFrame,
    ph_check: bool = True,
    rows: np.ndarray | None = None,
) -> CoxModel:
    """Cox model (Efron ties, statsmodels PHReg's likelihood) of follow-up on the case-mix design; rows with NaN are
    left out, and with `rows` (a yes/no per row) those it says no to, as if their design were NaN.

    Constant columns are dropped (a code absent from this population); without events or covariates the
    model is the Nelson-Aalen cumulative hazard of the whole population (every patient equally at risk).
    Why `rows`: the caller's copy of the design with the rows left out set to NaN was, with this function's own
    copies of it, the peak of a survival indicator (at 10,000,000 care cycles ~160 MB a copy); the fitted rows'
    design is copied once here, as one array.
    """
    time, event = np.asarray(time, float), np.asarray(event, float)
    ok = np.isfinite(time) & np.isfinite(event) & design.notna().all(axis=1).to_numpy()
    if rows is not None:
        ok &= np.asarray(rows, dtype=bool)
    x = design.loc[ok]
    varies = x.nunique() > 1
    if not varies.all():  # (a selection of every column is one more copy of the design)
        x = x.loc[:, varies]
    t, e = time[ok], event[ok]
    n_events = int(e.sum())
    fit, note = None, None
    values = x.to_numpy(float)  # once, for the fit and the baseline
    if x.shape[1] and n_events:
        fit = _phreg(t, e, values)
        if fit is None:
            # few deaths for the number of variables (a collinear or separated design): a small ridge penalty
            # keeps every variable in, as the logistic case-mix models do when they cannot be fitted plainly
            note = "ridge"
            fit = _phreg_ridge(t, e, values)
            if fit is None:
                note = "unadjusted"
    if fit is None:
        na = _nelson_aalen(t, e)
        empty = pd.Series(dtype=float)
        return CoxModel(empty, empty, *na, n=int(ok.sum()), n_excluded=int((~ok).sum()), fit_note=note, events=n_events)
    params, cov, model = fit
    means = x.mean()
    names = x.columns
    # the baseline is that of the average fitted patient (the covariates centred on their means)
    risk = np.exp((values - means.to_numpy(float)) @ params)
    del values
    base_time, base_cumhaz = _breslow(t, e, risk)
    ph = pd.DataFrame(columns=["variable", "statistic", "p"])
    if ph_check:
        try:
            statistic, p = _schoenfeld_test(model, params, cov)
        except (ValueError, np.linalg.LinAlgError):  # the check must never stop the indicator table
            statistic, p = np.array([]), np.array([])
        variables = names.astype(str) if len(p) else pd.Index([], dtype=str)
        ph = pd.DataFrame({"variable": variables, "statistic": statistic, "p": p}).reset_index(drop=True)
    return CoxModel(
        coefficients=pd.Series(params, index=names),
        means=means,
        baseline_time=base_time,
        baseline_cumhaz=base_cumhaz,
        ph_test=ph,
        concordance=concordance_index(t, risk, e),
        n=int(ok.sum()),
        n_excluded=int((~ok).sum()),
        fit_note=note,
        events=n_events,
    )


def _phreg(time: np.ndarray, event: np.ndarray, x: np.ndarray):
    """The Cox model (Efron ties) by statsmodels' Newton-Raphson on the exact likelihood of _Efron: (coefficients,
    their covariance, the likelihood for the Schoenfeld residuals), or None when the fit does not converge, the
    design is collinear (no unique maximum) or the information matrix is not finite."""
    if np.linalg.matrix_rank(x - x.mean(axis=0)) < x.shape[1]:
        return None
    efron = _Efron(time, event, x)
    with np.errstate(all="ignore"):
        try:
            params, converged = _newton(efron, np.zeros(x.shape[1]), COX_FIT_OPTIONS["maxiter"], COX_FIT_OPTIONS["tol"])
            cov = np.linalg.inv(-efron.hessian(params))
        except (ValueError, np.linalg.LinAlgError, FloatingPointError):
            return None
    if not (converged and np.isfinite(params).all() and np.isfinite(cov).all() and (np.diag(cov) > 0).all()):
        return None
    return params, cov, efron


def _phreg_ridge(time: np.ndarray, event: np.ndarray, x: np.ndarray):
    """The ridge fallback: the Efron log partial likelihood minus n * RIDGE_PENALTY / 2 * |b|^2 on the
    standardised covariates, maximised by Newton-Raphson (strictly concave, so it converges); the covariance
    is the inverse of the penalised information. None when even that is not finite."""
    scale = x.std(axis=0, ddof=1)
    z = (x - x.mean(axis=0)) / scale
    model = _Efron(time, event, z)
    penalty = RIDGE_PENALTY * len(time)
    b = np.zeros(z.shape[1])
    with np.errstate(all="ignore"):
        try:
            objective = model.loglike(b) - penalty / 2 * b @ b
            for _ in range(COX_FIT_OPTIONS["maxiter"]):
                score, hess = model.score_hessian(b)
                step = np.linalg.solve(hess - penalty * np.eye(len(b)), score - penalty * b)
                new = b - step
                new_objective = model.loglike(new) - penalty / 2 * new @ new
                while not new_objective >= objective - 1e-12 * abs(objective) and np.abs(new - b).max() > 1e-14:
                    new = (b + new) / 2  # step halving (the objective is concave, so this rarely happens)
                    new_objective = model.loglike(new) - penalty / 2 * new @ new
                moved = np.abs(new - b).max()
                b, objective = new, new_objective
                if moved < COX_FIT_OPTIONS["tol"]:
                    break
            cov = np.linalg.inv(-(model.hessian(b) - penalty * np.eye(len(b))))
        except (ValueError, np.linalg.LinAlgError, FloatingPointError):
            return None
    if not (np.isfinite(b).all() and np.isfinite(cov).all()):
        return None
    params = b / scale
    # the likelihood on the original covariates (the Schoenfeld residuals are in their units)
    return params, cov / np.outer(scale, scale), _Efron(time, event, x)


class _Efron:
    """The Cox log partial likelihood with Efron's ties, its score and Hessian, on numpy arrays: what statsmodels'
    PHReg computes (the same formulas), without its Python loop over the distinct times, which took most of the
    indicator table's time on a survival condition (breast cancer at 100,000 cycles: 7 of its 10 s).

    Rows are sorted by time once; the risk-set sums S0, S1 at every distinct time are reverse cumulative sums of
    per-time sums, and the d deaths of a day enter as d terms S - l/d D (l = 0..d-1, D the day's deaths' sums). The
    Hessian's sums of r x x' over risk sets are one weighted product X' diag(w) X, with w per row the summed weights
    of the death times the row is at risk at, so a Newton step is O(n p^2) without an n x p x p array."""

    #: rows per block of the weighted product (bounds its n x p temporary)
    BLOCK = 1 << 18

    def __init__(self, time: np.ndarray, event: np.ndarray, x: np.ndarray) -> None:
        order = np.argsort(time, kind="stable")
        self.x = np.ascontiguousarray(x[order], dtype=float)
        self.n, self.p = self.x.shape
        sorted_time = time[order]
        self.dead = event[order] == 1
        times, self.index = np.unique(sorted_time, return_inverse=True)
        self.m = len(times)
        deaths = np.bincount(self.index, weights=self.dead, minlength=self.m).astype(np.int64)
        self.event_times = np.flatnonzero(deaths)
        per = deaths[self.event_times]
        # one term per death: its time's position and l / d for the l-th of the d deaths that day
        self.pair = np.repeat(self.event_times, per)
        first = np.repeat(np.cumsum(per) - per, per)
        self.fraction = (np.arange(len(self.pair)) - first) / np.repeat(per, per).astype(float)
        self.dead_sum = self.x[self.dead].sum(axis=0)
        self.dead_x = self.x[self.dead]
        self.rows = _time_runs(self.index, self.BLOCK)
        self.dead_rows = _time_runs(self.index[self.dead], self.BLOCK)

    def _sums(self, b: np.ndarray, second: bool):
        lp = self.x @ b
        lp -= lp.max()  # the partial likelihood does not change; exp cannot overflow
        r = np.exp(lp)
        rd = np.where(self.dead, r, 0.0)
        s0 = np.cumsum(np.bincount(self.index, weights=r, minlength=self.m)[::-1])[::-1]
        d0 = np.bincount(self.index, weights=rd, minlength=self.m)
        c0 = s0[self.pair] - self.fraction * d0[self.pair]
        out = {"lp": lp, "r": r, "s0": s0, "c0": c0}
        if second:
            s1 = np.cumsum(_time_sums(self.x, r, self.rows, self.m)[::-1], axis=0)[::-1]
            d1 = _time_sums(self.dead_x, r[self.dead], self.dead_rows, self.m)
            out |= {"rd": rd, "s1": s1, "d1": d1}
        return out

    def loglike(self, b: np.ndarray) -> float:
        s = self._sums(b, second=False)
        return float(s["lp"][self.dead].sum() - np.log(s["c0"]).sum())

    def score(self, b: np.ndarray) -> np.ndarray:
        return self.score_hessian(b, hessian=False)[0]

    def hessian(self, b: np.ndarray) -> np.ndarray:
        return self.score_hessian(b)[1]

    def score_hessian(self, b: np.ndarray, hessian: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
        s = self._sums(b, second=True)
        c0, a, pair, m = s["c0"], self.fraction, self.pair, self.m
        u1 = np.bincount(pair, weights=1 / c0, minlength=m)
        u2 = np.bincount(pair, weights=a / c0, minlength=m)
        s1, d1 = s["s1"], s["d1"]
        score = self.dead_sum - (u1 @ s1 - u2 @ d1)
        if not hessian:
            return score, None
        # sum over deaths of (S2 - a D2) / c0: per row r x x' times the weights of the times it is at risk at
        w = s["r"] * np.cumsum(u1)[self.index] - s["rd"] * u2[self.index]
        second = np.zeros((self.p, self.p))
        for start in range(0, self.n, self.BLOCK):
            block = self.x[start : start + self.BLOCK]
            second += (block * w[start : start + self.BLOCK, None]).T @ block
        # minus the sum over deaths of (S1 - a D1)(S1 - a D1)' / c0^2, per death time
        e = self.event_times
        v0 = np.bincount(pair, weights=1 / c0**2, minlength=m)[e]
        v1 = np.bincount(pair, weights=a / c0**2, minlength=m)[e]
        v2 = np.bincount(pair, weights=a**2 / c0**2, minlength=m)[e]
        se, de = s1[e], d1[e]
        cross = se.T @ (v1[:, None] * de)
        outer = se.T @ (v0[:, None] * se) - cross - cross.T + de.T @ (v2[:, None] * de)
        return score, -(second - outer)

    def schoenfeld_residuals(self, b: np.ndarray) -> np.ndarray:
        """Per death, in order of time (ties in row order): its covariates less the risk-weighted mean of those at
        risk at its time (PHRegResults.schoenfeld_residuals)."""
        s = self._sums(b, second=True)
        k = self.index[self.dead]
        return self.x[self.dead] - s["s1"][k] / s["s0"][k, None]


def _time_runs(index: np.ndarray, block: int) -> list[tuple[slice, np.ndarray, np.ndarray]]:
    """Rows sorted by time, in blocks: per block its rows, where its runs of one time start, and those times."""
    runs = []
    for start in range(0, len(index), block):
        part = index[start : start + block]
        first = np.flatnonzero(np.r_[True, part[1:] != part[:-1]])
        runs.append((slice(start, start + block), first, part[first]))
    return runs


def _time_sums(x: np.ndarray, weights: np.ndarray, runs: list, m: int) -> np.ndarray:
    """Per distinct time (m of them) the sum of weights * x over its rows (sorted by time, in runs: _time_runs), by
    contiguous sums of each block's rows rather than one strided pass over the rows per column."""
    out = np.zeros((m, x.shape[1]))
    for rows, first, times in runs:
        out[times] += np.add.reduceat(x[rows] * weights[rows, None], first, axis=0)
    return out


def _newton(efron: _Efron, start: np.ndarray, maxiter: int, tol: float) -> tuple[np.ndarray, bool]:
    """statsmodels' Newton-Raphson (LikelihoodModel.fit(method="newton")) on the log partial likelihood: the same
    steps, with its 1e-10 ridge on the Hessian divided by the number of rows, and the same stopping rule (no
    coefficient moves more than `tol`; converged unless `maxiter` steps were taken)."""
    iterations, old, new = 0, np.full(len(start), np.inf), np.asarray(start, float)
    ridge = 1e-10 * efron.n * np.eye(len(start))
    while iterations < maxiter and np.any(np.abs(new - old) > tol):
        score, hess = efron.score_hessian(new)
        old = new
        new = old + np.linalg.solve(-hess + ridge, score)
        iterations += 1
    return new, iterations < maxiter


def _breslow(time: np.ndarray, event: np.ndarray, risk: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Breslow's baseline cumulative hazard at the distinct times: the sum over days up to t of the deaths
    that day over the summed relative risk of everyone still followed (all ties over one risk set)."""
    times, inverse = np.unique(time, return_inverse=True)
    deaths = np.bincount(inverse, weights=event, minlength=len(times))
    summed = np.bincount(inverse, weights=risk, minlength=len(times))
    at_risk = np.cumsum(summed[::-1])[::-1]
    return times, np.cumsum(deaths / at_risk)


def _schoenfeld_test(model: _Efron, params: np.ndarray, cov: np.ndarray):
    """Per variable the Schoenfeld-residual test of proportional hazards (Grambsch and Therneau's approximation,
    as R's survival used before 3.0): residuals scaled by d * Var(b) against the rank of the death time,
    statistic (sum (g - mean g) r*)^2 / (d Var(b_k) sum (g - mean g)^2) on 1 degree of freedom."""
    resid = model.schoenfeld_residuals(params)  # the deaths in order of time
    if not np.isfinite(resid).all() or not len(resid):
        raise ValueError("no Schoenfeld residuals")
    d = len(resid)
    if d < 2:  # one death has no rank to correlate with: no test (ValueError: the table shows no p-value)
        raise ValueError("too few deaths for the Schoenfeld test")
    scaled = d * resid @ cov
    g = np.arange(1, d + 1, dtype=float)
    g -= g.mean()
    statistic = (g @ scaled) ** 2 / (d * np.diag(cov) * (g @ g))
    return statistic, stats.chi2.sf(statistic, 1)


def concordance_index(time: np.ndarray, risk: np.ndarray, event: np.ndarray) -> float:
    """Harrell's C of the relative risks: over the comparable pairs (a death and someone followed longer, or
    censored on the day of that death) the share where the death had the higher risk, ties in risk counting
    half; NaN without comparable pairs. Counted in O(n log n): per bit of the risk's rank, the deaths with that
    bit set against the later patients without it (within the same higher bits)."""
    time, risk, event = np.asarray(time, float), np.asarray(risk, float), np.asarray(event, float) == 1
    if not event.any():
        return float("nan")
    rank = np.unique(risk, return_inverse=True)[1].astype(np.int64)
    # per patient: 0 = a death (compared with deaths strictly before), 2 = censored (deaths on the day count)
    priority = np.where(event, 0, 2)
    death_times = np.sort(time[event])
    pairs = np.where(event, np.searchsorted(death_times, time, "left"), np.searchsorted(death_times, time, "right"))

    def earlier(group: np.ndarray, counted: np.ndarray, asked: np.ndarray) -> float:
        """Sum over `asked` patients of the `counted` deaths in the same group that come before them."""
        c, a = np.flatnonzero(counted), np.flatnonzero(asked)
        g, t = np.r_[group[c], group[a]], np.r_[time[c], time[a]]
        prio = np.r_[np.ones(len(c), np.int64), priority[a]]  # a counted death comes after a death that day
        is_counted = np.r_[np.ones(len(c), np.int64), np.zeros(len(a), np.int64)]
        order = np.lexsort((prio, t, g))
        g, k = g[order], is_counted[order]
        before = np.cumsum(k) - k
        start = np.r_[0, np.flatnonzero(np.diff(g)) + 1]
        first = np.repeat(before[start], np.diff(np.r_[start, len(g)]))
        return float(((before - first) * (1 - k)).sum())

    correct = 0.0
    for bit in range(int(rank.max()).bit_length()):
        high, set_ = rank >> (bit + 1), (rank >> bit) & 1 == 1
        correct += earlier(high, event & set_, ~set_)
    tied = earlier(rank, event, np.ones(len(rank), bool))
    total = float(pairs.sum())
    return (correct + tied / 2) / total if total else float("nan")


def _nelson_aalen(time: np.ndarray, event: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nelson-Aalen cumulative hazard at the distinct times (the Cox baseline without covariates)."""
    times, inverse, counts = np.unique(time, return_inverse=True, return_counts=True)
    deaths = np.bincount(inverse, weights=event, minlength=len(times))
    at_risk = len(time) - np.concatenate([[0], np.cumsum(counts)[:-1]])  # still followed at each time
    return times, np.cumsum(deaths / at_risk)


# --- the indicator rows -----------------------------------------------------------------------------------


def _text(values: pd.Series) -> np.ndarray | pd.api.extensions.ExtensionArray:
    """Text as pandas' own (Arrow) array, as vbhc.indicators._UnitRows.column gives the other indicators' per-cycle
    text (joined without becoming Python strings); anything else as a NumPy array, as before."""
    return values.array if isinstance(values.dtype, pd.StringDtype) else values.to_numpy()


def survival_table(
    cycles: pd.DataFrame, unit: np.ndarray | tuple[pd.Index, np.ndarray], **options: object
) -> tuple[pd.DataFrame, pd.DataFrame, CoxModel] | None:
    """Per unit the survival indicator's standard columns, the per-cycle values and the Cox model, as frames; None
    when no cycle has a follow-up record. `options` and the columns: see survival_columns."""
    out = survival_columns(cycles, unit, **options)
    if out is None:
        return None
    result, added, per_cycle, model = out
    return benchmark.with_columns(pd.DataFrame(result), added), pd.DataFrame(per_cycle), model


def survival_columns(
    cycles: pd.DataFrame,
    unit: np.ndarray | tuple[pd.Index, np.ndarray],
    *,
    outcome: str,
    casemix: Sequence[CaseMixVariable],
    as_of: pd.Timestamp,
    horizon_years: float,
    direction: str = "higher",
    levels: Sequence[float] = benchmark.DEFAULT_LEVELS,
    dispersion: str = "auto",
    min_n: int = 0,
    level: float = 0.95,
    model: CoxModel | None = None,
    reference: pd.DataFrame | None = None,
    encoding: DesignEncoding | None = None,
    kept: dict[str, object] | None = None,
) -> tuple[dict[str, object], dict[str, object], dict[str, np.ndarray], CoxModel] | None:
    """Per unit the survival indicator's standard columns (the table's, then the added ones: arrays, or one value for
    every unit), the per-cycle values (arrays) and the Cox model; survival_table makes frames of them. Why columns:
    the indicator table joins every indicator's columns at once (vbhc.indicators).

    None when no cycle has a follow-up record (the registry has no dates: the binary indicator stays).
    n = cycles followed, n_adjusted = those in the Cox model, observed = deaths within the horizon,
    expected = summed Cox cumulative hazards, oe = SMR; see the module docstring for the survival scale.

    `unit`: each cycle's unit, or the view's units (sorted) and each cycle's position among them, as the indicator
    table counts them (vbhc.indicators._UnitRows), so both count the same units.
    `model`: this indicator's Cox model of the same cycles (the unit level does not enter it), else fitted here.
    `reference`: for a comparison group, the whole registry's cycles of the same period (`cycles` are some of
    them): the design is encoded as on the registry and `model` is the registry's, recalibrated to the group
    (recalibrate_cox) unless it already is. `encoding`: the registry's encoding of the case-mix (registry_encoding),
    when the caller keeps it, instead of deciding it on `reference` again.
    `kept`: a dict the caller keeps with these cycles (empty the first time): the follow-up, the Cox model and the
    expected values of each cycle do not depend on the unit level, so the view's other unit level reads them from it
    instead of encoding the case-mix and evaluating the model again (half of a level's survival rows at 1,000,000
    care cycles).
    """
    if kept:
        fu, known, in_model, expected, model, overall = (
            kept[name] for name in ("fu", "known", "in_model", "expected", "model", "overall")
        )
    else:
        prepared = _per_cycle(cycles, outcome, casemix, as_of, horizon_years, level, model, reference, encoding)
        if prepared is None:
            return None
        fu, known, in_model, expected, model, overall = prepared
        if kept is not None:
            kept.update(fu=fu, known=known, in_model=in_model, expected=expected, model=model, overall=overall)
    horizon = float(horizon_years) * DAYS_PER_YEAR
    time, event = fu["time"].to_numpy(float), fu["event"].to_numpy(float)
    # per unit, counted on the units' positions (np.bincount), not a pandas group-by: most of a small view's cost
    if isinstance(unit, tuple):
        units, codes = unit
    else:
        units = pd.Index(sorted(pd.unique(unit)), name="unit")
        codes = units.get_indexer(unit)
    k = len(units)
    n = np.bincount(codes[known], minlength=k)
    n_adjusted = np.bincount(codes[in_model], minlength=k)
    # each unit's Kaplan-Meier from one sort of the followed cycles by unit (not a scan of every cycle per unit)
    order = np.argsort(codes[known], kind="stable")
    by_unit, unit_time, unit_event = codes[known][order], time[known][order], event[known][order]
    bounds = np.searchsorted(by_unit, np.arange(k + 1))
    crude = np.array(
        [kaplan_meier(unit_time[a:b], unit_event[a:b], horizon, level) for a, b in itertools.pairwise(bounds)],
        dtype=float,
    ).reshape(-1, 3)  # value, lower, upper
    bench = {
        "unit": units.to_numpy(),
        "n": n.astype(float),
        "observed": np.bincount(codes[in_model], weights=event[in_model], minlength=k),
        "expected": np.bincount(codes[in_model], weights=expected[in_model], minlength=k),
    }
    # the funnel on SMR: Poisson limits around 1 at precision E (deaths are the event: lower is better)
    out = benchmark.benchmark_columns(
        bench, "ratio", direction="lower", levels=levels, dispersion=dispersion, min_n=min_n, ci_level=level
    )
    smr = out["oe"]
    adjusted = overall**smr
    result = {
        "unit": units.to_numpy(),
        "n": n,
        "n_adjusted": n_adjusted,
        "observed": bench["observed"],
        "expected": bench["expected"],
        "oe": smr,
        "oe_lower": out["oe_lower"],
        "oe_upper": out["oe_upper"],
        "crude_value": crude[:, 0],
        "crude_lower": crude[:, 1],
        "crude_upper": crude[:, 2],
        "adjusted_value": adjusted,
        "adjusted_lower": overall ** out["oe_upper"],
        "adjusted_upper": overall ** out["oe_lower"],
        "target": np.full(len(units), overall),
        "precision": bench["expected"],
    }
    higher = direction == "higher"
    added: dict[str, object] = {}
    for lvl in levels:
        sfx = benchmark.level_suffix(lvl)
        lo, up = out[f"lower_{sfx}"], out[f"upper_{sfx}"]
        added[f"lower_{sfx}"], added[f"upper_{sfx}"] = overall**up, overall**lo
    names = [benchmark.level_suffix(lv) for lv in levels]
    lows = [added[f"lower_{sfx}"] for sfx in names]
    ups = [added[f"upper_{sfx}"] for sfx in names]
    added |= benchmark.position_columns(adjusted, names, lows, ups, higher, n, min_n)
    for col in ("too_few_cycles", "dispersion_method", "phi", "tau2", "rankability", "rankability_note"):
        added[col] = out[col]
    added["detectable_difference"] = out["detectable_difference"]
    added["model_c_statistic"] = model.concordance
    added["model_n_excluded"] = int((known & ~in_model).sum())
    ph = model.ph_test
    # no PH test (no case-mix terms, or too few deaths): an empty frame, perhaps without columns
    worst = ph.sort_values("p").head(1) if len(ph) and "p" in ph.columns else pd.DataFrame(columns=["p", "variable"])
    added[PH_P_VALUE] = float(worst["p"].iloc[0]) if len(worst) else np.nan
    added[PH_VARIABLE] = str(worst["variable"].iloc[0]) if len(worst) else None
    per_cycle = {
        "cycle_id": _text(cycles["cycle_id"].astype(str))[known],
        "unit": _text(pd.Series(units, copy=False)).take(codes[known]),
        "index_date": cycles["index_date"].to_numpy()[known],
        "observed": fu["event"].to_numpy()[known],
        "expected": expected[known],
    }
    return result, added, per_cycle, model


def _per_cycle(
    cycles: pd.DataFrame,
    outcome: str,
    casemix: Sequence[CaseMixVariable],
    as_of: pd.Timestamp,
    horizon_years: float,
    level: float,
    model: CoxModel | None,
    reference: pd.DataFrame | None,
    encoding: DesignEncoding | None,
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, np.ndarray, CoxModel, float] | None:
    """survival_columns' part that does not depend on the unit level: the follow-up, which cycles are followed and
    which are in the model, their expected values, the Cox model (recalibrated for a comparison group) and the
    overall Kaplan-Meier survival at the horizon; None when no cycle has a follow-up record."""
    horizon = float(horizon_years) * DAYS_PER_YEAR
    fu = follow_up(cycles, outcome, as_of, horizon)
    known = fu["time"].notna().to_numpy()
    if not known.any():
        return None
    # the logistic models' encoding of the case-mix (vbhc.casemix), decided on the deaths within the horizon
    if reference is None:
        design, unscored = casemix_design(cycles, casemix, fu["event"].to_numpy())
    else:
        events = fu["event"].to_numpy()
        if encoding is None:
            encoding = registry_encoding(reference, outcome, casemix, as_of, horizon_years)
        design, unscored = encode_design(encoding, cycles, events)
    in_model = known & ~unscored
    if model is None:
        model = _fit_on(fu, design, in_model)
    expected = np.where(in_model, model.expected(fu["time"].fillna(0).to_numpy(), design), np.nan)
    if reference is not None and model.baseline_scale is None:
        model = recalibrate_cox(model, expected[in_model], fu["event"].to_numpy()[in_model])
        expected = np.where(in_model, model.expected(fu["time"].fillna(0).to_numpy(), design), np.nan)
    time, event = fu["time"].to_numpy(float), fu["event"].to_numpy(float)
    overall = kaplan_meier(time[known], event[known], horizon, level)[0]
    return fu, known, in_model, expected, model, overall


def cox_model(
    cycles: pd.DataFrame,
    *,
    outcome: str,
    casemix: Sequence[CaseMixVariable],
    as_of: pd.Timestamp,
    horizon_years: float,
) -> CoxModel | None:
    """The survival indicator's Cox model of these cycles alone (what survival_table fits), e.g. the whole
    registry's for a comparison group to be recalibrated to; None when no cycle has a follow-up record."""
    horizon = float(horizon_years) * DAYS_PER_YEAR
    fu = follow_up(cycles, outcome, as_of, horizon)
    known = fu["time"].notna().to_numpy()
    if not known.any():
        return None
    design, unscored = casemix_design(cycles, casemix, fu["event"].to_numpy())
    return _fit_on(fu, design, known & ~unscored)


def _fit_on(fu: pd.DataFrame, design: pd.DataFrame, in_model: np.ndarray) -> CoxModel:
    """The Cox model of the cycles in the model (`in_model`), the design not copied (fit_cox's `rows`)."""
    return fit_cox(fu["time"].to_numpy(), fu["event"].to_numpy(), design, rows=in_model)


def registry_encoding(
    reference: pd.DataFrame,
    outcome: str,
    casemix: Sequence[CaseMixVariable],
    as_of: pd.Timestamp,
    horizon_years: float,
) -> DesignEncoding:
    """The case-mix encoding of the registry's cycles (`reference`) that its Cox model of the outcome was fitted with
    (centring, reference levels and merged levels, decided on the deaths within the horizon): a comparison group's
    cycles are encoded with it (survival_table)."""
    registry_events = follow_up(reference, outcome, as_of, float(horizon_years) * DAYS_PER_YEAR)["event"].to_numpy()
    return design_encoding(reference, casemix, registry_events)


def survival_funnel(
    target: float,
    expected_grid: np.ndarray,
    levels: Sequence[float] = benchmark.DEFAULT_LEVELS,
    *,
    method: str = "none",
    phi: float = 1.0,
    tau2: float = 0.0,
) -> pd.DataFrame:
    """The survival funnel along a grid of expected deaths: the SMR's Poisson limits (widened for
    over-dispersion as the table's were) mapped to survival, target ** SMR limit, as survival_table does."""
    grid = np.asarray(expected_grid, dtype=float)
    if method in ("multiplicative", "additive"):
        limits = benchmark.dispersed_limits("ratio", 1.0, grid, levels, method=method, phi=phi, tau2=tau2)
    else:
        limits = benchmark.funnel_limits_ratio(grid, levels)
    out = {}
    for lvl in levels:
        sfx = benchmark.level_suffix(lvl)
        out[f"lower_{sfx}"] = target ** limits[f"upper_{sfx}"].to_numpy(float)
        out[f"upper_{sfx}"] = target ** limits[f"lower_{sfx}"].to_numpy(float)
    return pd.DataFrame(out)
