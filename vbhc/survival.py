"""Survival indicators: Kaplan-Meier per unit and a Cox model for the standardised mortality ratio (SMR).

A survival indicator follows every care cycle from its index date to death or to the last date the patient
was known to be alive (loss to follow-up), censored at the data's end date (ConditionData.as_of) and at the
indicator's horizon (1, 2 or 5 years). The registry holds this as one clinical outcome per cycle: value 1
with the date of death, value 0 with the date last known alive (catalog: the indicator's `outcome`; the date
column is named with catalog.EVENT_DATE_SUFFIX). Why a survival kind next to the binary "1-year mortality":
a binary rate must drop every cycle whose year has not passed, Kaplan-Meier uses every day of follow-up.

- Kaplan-Meier estimates and their log(-log) confidence bands come from lifelines (well kept, checked against
  statsmodels and hand-worked cases in tests/test_survival.py) rather than hand-written code.
- Risk adjustment: a Cox proportional-hazards model on the whole benchmark population with the condition's
  case-mix variables, encoded as the logistic case-mix models encode them (vbhc.casemix.casemix_design),
  gives every cycle its expected cumulative hazard up to its own follow-up end; summed per unit that is the
  expected number of deaths E. SMR = O/E with the exact Poisson CI (benchmark.oe_ratio), compared with
  Poisson funnel limits at precision E (benchmark.benchmark_units, kind "ratio"), as for O/E.
- The table shows survival, not deaths: crude = the unit's KM survival at the horizon; adjusted = overall KM
  survival ** SMR (the unit's survival if its hazard is SMR times the benchmark's, proportional hazards); the
  limits are mapped the same way, so a unit's position against them is exactly its SMR's against the funnel.
- The proportional-hazards assumption is checked with the Schoenfeld-residual test (lifelines,
  rank-transformed time) and reported per variable; the table keeps the smallest p-value.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from vbhc import benchmark
from vbhc.casemix import casemix_design
from vbhc.catalog import DAYS_PER_YEAR, EVENT_DATE_SUFFIX, CaseMixVariable

#: Extra columns of a survival row in the indicator table (besides the standard ones).
PH_P_VALUE = "ph_p_value"  # smallest Schoenfeld-test p-value over the case-mix variables
PH_VARIABLE = "ph_variable"  # the variable it belongs to
#: Fit tolerances of the Cox model (lifelines' Newton-Raphson): its defaults (step 1e-7, relative log-likelihood
#: change 1e-9) stop about 1e-6 away from the maximum; these make E agree with other software to 1e-8.
COX_FIT_OPTIONS = {"precision": 1e-12, "r_precision": 0.0, "max_steps": 500}
#: L2 penalty of the fallback fit when the plain Cox model does not converge (lifelines' penalizer).
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
    """A right-continuous step function (lifelines' tables) at time `at`."""
    pos = int(np.searchsorted(index, at, side="right")) - 1
    return float(values[pos]) if pos >= 0 else float("nan")


def kaplan_meier(time: np.ndarray, event: np.ndarray, at: float, level: float = 0.95) -> tuple[float, float, float]:
    """Kaplan-Meier survival at `at` (same unit as time) with lifelines' log(-log) confidence interval."""
    from lifelines import KaplanMeierFitter

    time, event = np.asarray(time, float), np.asarray(event, float)
    if time.size == 0:
        return float("nan"), float("nan"), float("nan")
    km = KaplanMeierFitter(alpha=1 - level).fit(time, event)
    idx = km.survival_function_.index.to_numpy(float)
    ci = km.confidence_interval_.to_numpy(float)
    estimate = _step_at(idx, km.survival_function_.iloc[:, 0].to_numpy(float), at)
    return estimate, _step_at(idx, ci[:, 0], at), _step_at(idx, ci[:, 1], at)


def km_curves(frame: pd.DataFrame, unit: str = "unit", level: float = 0.95) -> pd.DataFrame:
    """Kaplan-Meier curve per unit with its confidence band, tidy: unit, time (days), survival, lower, upper,
    at_risk. Input: one row per cycle with columns unit, time, event (follow_up's, NaN rows left out)."""
    from lifelines import KaplanMeierFitter

    rows = []
    part = frame.dropna(subset=["time", "event"])
    for name, g in part.groupby(unit, sort=True, observed=True):
        km = KaplanMeierFitter(alpha=1 - level).fit(g["time"].to_numpy(float), g["event"].to_numpy(float))
        table = km.event_table
        rows.append(
            pd.DataFrame(
                {
                    "unit": name,
                    "time": km.survival_function_.index.to_numpy(float),
                    "survival": km.survival_function_.iloc[:, 0].to_numpy(float),
                    "lower": km.confidence_interval_.iloc[:, 0].to_numpy(float),
                    "upper": km.confidence_interval_.iloc[:, 1].to_numpy(float),
                    "at_risk": table["at_risk"].reindex(km.survival_function_.index).to_numpy(float),
                }
            )
        )
    columns = ["unit", "time", "survival", "lower", "upper", "at_risk"]
    return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(columns=columns)


# --- Cox model --------------------------------------------------------------------------------------------


@dataclass
class CoxModel:
    """A fitted Cox model: coefficients, the Breslow baseline cumulative hazard and the PH check."""

    coefficients: pd.Series  # per design column (log hazard ratios)
    means: pd.Series  # the covariate means lifelines centres on (baseline = a patient with these values)
    baseline_time: np.ndarray  # event times of the baseline cumulative hazard (days)
    baseline_cumhaz: np.ndarray  # H0 at those times, for the centred covariates
    ph_test: pd.DataFrame = field(default_factory=pd.DataFrame)  # variable, statistic, p
    concordance: float = float("nan")
    n: int = 0
    n_excluded: int = 0
    fit_note: str | None = None  # "ridge" when the plain fit did not converge (see fit_cox)

    def expected(self, time: np.ndarray, design: pd.DataFrame) -> np.ndarray:
        """Expected cumulative hazard H0(t) * exp((x - mean) b) of each cycle up to its own follow-up end."""
        lp = np.zeros(len(design))
        if len(self.coefficients):
            x = design[self.coefficients.index].to_numpy(float) - self.means.to_numpy(float)
            lp = x @ self.coefficients.to_numpy(float)
        pos = np.searchsorted(self.baseline_time, np.asarray(time, float), side="right") - 1
        h0 = np.where(pos >= 0, self.baseline_cumhaz[np.maximum(pos, 0)], 0.0)
        return h0 * np.exp(lp)


def fit_cox(time: np.ndarray, event: np.ndarray, design: pd.DataFrame, ph_check: bool = True) -> CoxModel:
    """Cox model (lifelines, Efron ties) of follow-up on the case-mix design; rows with NaN are left out.

    Constant columns are dropped (a code absent from this population); without events or covariates the
    model is the Nelson-Aalen cumulative hazard of the whole population (every patient equally at risk).
    """
    from lifelines import CoxPHFitter
    from lifelines.exceptions import ConvergenceError
    from lifelines.statistics import proportional_hazard_test

    time, event = np.asarray(time, float), np.asarray(event, float)
    ok = np.isfinite(time) & np.isfinite(event) & design.notna().all(axis=1).to_numpy()
    x = design.loc[ok]
    x = x.loc[:, x.nunique() > 1]
    data = x.assign(_time=time[ok], _event=event[ok]).reset_index(drop=True)
    n_events = int(data["_event"].sum())
    cph, note = None, None
    if x.shape[1] and n_events:
        try:
            cph = CoxPHFitter().fit(data, "_time", "_event", fit_options=dict(COX_FIT_OPTIONS))
        except ConvergenceError:
            # few deaths for the number of variables (a collinear or separated design): a small ridge penalty
            # keeps every variable in, as the logistic case-mix models do when they cannot be fitted plainly
            note = "ridge"
            try:
                cph = CoxPHFitter(penalizer=RIDGE_PENALTY).fit(
                    data, "_time", "_event", fit_options=dict(COX_FIT_OPTIONS)
                )
            except ConvergenceError:
                note = "unadjusted"
    if cph is None:
        na = _nelson_aalen(data["_time"].to_numpy(float), data["_event"].to_numpy(float))
        empty = pd.Series(dtype=float)
        return CoxModel(empty, empty, *na, n=int(ok.sum()), n_excluded=int((~ok).sum()), fit_note=note)
    base = cph.baseline_cumulative_hazard_
    ph = pd.DataFrame(columns=["variable", "statistic", "p"])
    if ph_check:
        try:
            test = proportional_hazard_test(cph, data, time_transform="rank").summary
        except (ValueError, np.linalg.LinAlgError):  # the check must never stop the indicator table
            test = pd.DataFrame({"test_statistic": [], "p": []})
        ph = pd.DataFrame(
            {"variable": test.index.astype(str), "statistic": test["test_statistic"].to_numpy(float), "p": test["p"]}
        ).reset_index(drop=True)
    return CoxModel(
        coefficients=cph.params_.copy(),
        # lifelines' baseline is that of the average fitted patient (its covariates centred on their means)
        means=x.mean().reindex(cph.params_.index),
        baseline_time=base.index.to_numpy(float),
        baseline_cumhaz=base.iloc[:, 0].to_numpy(float),
        ph_test=ph,
        concordance=float(cph.concordance_index_),
        n=int(ok.sum()),
        n_excluded=int((~ok).sum()),
        fit_note=note,
    )


def _nelson_aalen(time: np.ndarray, event: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nelson-Aalen cumulative hazard at the distinct times (the Cox baseline without covariates)."""
    times, inverse, counts = np.unique(time, return_inverse=True, return_counts=True)
    deaths = np.bincount(inverse, weights=event, minlength=len(times))
    at_risk = len(time) - np.concatenate([[0], np.cumsum(counts)[:-1]])  # still followed at each time
    return times, np.cumsum(deaths / at_risk)


# --- the indicator rows -----------------------------------------------------------------------------------


def survival_table(
    cycles: pd.DataFrame,
    unit: np.ndarray,
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
) -> tuple[pd.DataFrame, pd.DataFrame, CoxModel] | None:
    """Per unit the survival indicator's standard columns, the per-cycle values and the Cox model.

    None when no cycle has a follow-up record (the registry has no dates: the binary indicator stays).
    n = cycles followed, n_adjusted = those in the Cox model, observed = deaths within the horizon,
    expected = summed Cox cumulative hazards, oe = SMR; see the module docstring for the survival scale.
    """
    horizon = float(horizon_years) * DAYS_PER_YEAR
    fu = follow_up(cycles, outcome, as_of, horizon)
    known = fu["time"].notna().to_numpy()
    if not known.any():
        return None
    # the logistic models' encoding of the case-mix (vbhc.casemix), decided on the deaths within the horizon
    design, unscored = casemix_design(cycles, casemix, fu["event"].to_numpy())
    in_model = known & ~unscored
    if model is None:  # `model`: this indicator's fit on the same cycles (the unit level does not enter it)
        fitted = design.copy()
        fitted.loc[~in_model] = np.nan
        model = fit_cox(fu["time"].to_numpy(), fu["event"].to_numpy(), fitted)
    expected = np.where(in_model, model.expected(fu["time"].fillna(0).to_numpy(), design), np.nan)
    frame = pd.DataFrame(
        {"unit": unit, "time": fu["time"].to_numpy(), "event": fu["event"].to_numpy(), "expected": expected}
    )
    units = pd.Index(sorted(pd.unique(unit)), name="unit")
    followed = frame[known]
    adjusted = frame[in_model]
    agg = (
        adjusted.groupby("unit")
        .agg(n_adjusted=("event", "size"), observed=("event", "sum"), expected=("expected", "sum"))
        .reindex(units)
    )
    agg["n_adjusted"] = agg["n_adjusted"].fillna(0)
    n = followed.groupby("unit").size().reindex(units, fill_value=0)
    overall = kaplan_meier(followed["time"].to_numpy(), followed["event"].to_numpy(), horizon, level)[0]
    crude = pd.DataFrame([_unit_km(followed, u, horizon, level) for u in units], columns=["value", "lower", "upper"])
    bench = pd.DataFrame(
        {
            "unit": units,
            "n": n.to_numpy(float),
            "observed": agg["observed"].fillna(0).to_numpy(float),
            "expected": agg["expected"].fillna(0).to_numpy(float),
        }
    )
    # the funnel on SMR: Poisson limits around 1 at precision E (deaths are the event: lower is better)
    out = benchmark.benchmark_units(
        bench, "ratio", direction="lower", levels=levels, dispersion=dispersion, min_n=min_n, ci_level=level
    )
    smr = out["oe"].to_numpy(float)
    result = pd.DataFrame(
        {
            "unit": units,
            "n": n.to_numpy(),
            "n_adjusted": agg["n_adjusted"].to_numpy(),
            "observed": bench["observed"].to_numpy(),
            "expected": bench["expected"].to_numpy(),
            "oe": smr,
            "oe_lower": out["oe_lower"].to_numpy(float),
            "oe_upper": out["oe_upper"].to_numpy(float),
            "crude_value": crude["value"].to_numpy(),
            "crude_lower": crude["lower"].to_numpy(),
            "crude_upper": crude["upper"].to_numpy(),
            "adjusted_value": overall**smr,
            "adjusted_lower": overall ** out["oe_upper"].to_numpy(float),
            "adjusted_upper": overall ** out["oe_lower"].to_numpy(float),
            "target": np.full(len(units), overall),
            "precision": bench["expected"].to_numpy(),
        }
    )
    higher = direction == "higher"
    for lvl in levels:
        sfx = benchmark.level_suffix(lvl)
        lo, up = out[f"lower_{sfx}"].to_numpy(float), out[f"upper_{sfx}"].to_numpy(float)
        result[f"lower_{sfx}"], result[f"upper_{sfx}"] = overall**up, overall**lo
    lows = result[[f"lower_{benchmark.level_suffix(lv)}" for lv in levels]]
    ups = result[[f"upper_{benchmark.level_suffix(lv)}" for lv in levels]]
    pos = benchmark.classify_position(result["adjusted_value"], lows, ups, higher, n=result["n"], min_n=min_n)
    for col in pos.columns:
        result[col] = pos[col].to_numpy()
    for col in ("too_few_cycles", "dispersion_method", "phi", "tau2", "rankability", "rankability_note"):
        result[col] = out[col].to_numpy()
    result["detectable_difference"] = out["detectable_difference"].to_numpy()
    result["model_c_statistic"] = model.concordance
    result["model_n_excluded"] = int((known & ~in_model).sum())
    worst = model.ph_test.sort_values("p").head(1)
    result[PH_P_VALUE] = float(worst["p"].iloc[0]) if len(worst) else np.nan
    result[PH_VARIABLE] = str(worst["variable"].iloc[0]) if len(worst) else None
    per_cycle = pd.DataFrame(
        {
            "cycle_id": cycles["cycle_id"].astype(str).to_numpy()[known],
            "unit": np.asarray(unit)[known],
            "index_date": cycles["index_date"].to_numpy()[known],
            "observed": fu["event"].to_numpy()[known],
            "expected": expected[known],
        }
    )
    return result, per_cycle, model


def _unit_km(followed: pd.DataFrame, unit: object, horizon: float, level: float) -> tuple[float, float, float]:
    g = followed[followed["unit"] == unit]
    return kaplan_meier(g["time"].to_numpy(), g["event"].to_numpy(), horizon, level)


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
