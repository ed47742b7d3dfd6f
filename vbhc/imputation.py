"""Multiple imputation of missing case-mix values (chained equations): the documented alternative to leaving
care cycles with a missing case-mix value out of the case-mix model.

Why: the indicator table fits its case-mix models on complete cases (vbhc.casemix, missing="exclude"): a cycle
missing, say, its ASA class gets no expected value and is left out of O, E and O/E, and counted. That is
unbiased when values are missing completely at random, but a unit whose registration misses one variable more
often than others loses a large part of its patients from its O/E, and when missingness depends on the
patient (sicker patients less often completely registered) complete-case E is biased. Multiple imputation
gives every cycle with a recorded outcome back to the model, and says how much the answer depends on the
values that had to be imputed (the between-imputation variance widens the interval).

Method (shown on the team page's case-mix tab on request, and described on the methods page):

- The cycles of the indicator (outcome recorded; the outcome itself is never imputed: a cycle without it is not
  part of the indicator) with the case-mix model's covariates: the condition's case-mix variables and the extra
  covariates (a PROM's baseline score). A variable without any recorded value is left out, as the model does.
- Chained equations with statsmodels' MICEData, seeded (``SEED``; its own numpy Generator, so two sessions
  imputing at once do not disturb each other's draws): every incomplete variable is imputed by predictive mean
  matching (``K_PMM`` nearest donors) from a linear model on all other covariates and the outcome (the outcome
  belongs in the imputation model; without it the imputed variable's association with the outcome is weakened),
  the model's parameters drawn from their approximate posterior (MICEData's Gaussian perturbation). Categories
  are imputed on their codes in catalog order: every categorical case-mix variable of the catalog is binary or
  ordered (sex, ASA, NYHA, tumour stage, smoking never/former/current), and matching only ever imputes a code
  some patient has, so no impossible category arises. One chain, as statsmodels' MICE runs it: ``N_BURNIN``
  cycles of burn-in, then an imputed dataset every ``N_SKIP`` + 1 cycles, ``M`` datasets (fewer cycles than
  statsmodels' defaults of 10 and 3: with a few percent of values missing every cycle redraws nearly all of
  them from freshly perturbed models, and each cycle costs most of a second on a condition of the demo).
- On each imputed dataset the indicator's own case-mix model is fitted again (vbhc.casemix.fit_casemix_model:
  same terms, merging and fallbacks), giving every cycle an expected value E_k. Pooled E per cycle and per unit
  is the mean over the imputations (Rubin's point estimate of E).
- Yes/no indicators: O/E = O / mean_k E_k over all the unit's cycles. Its interval applies Rubin's rules on the
  log scale to the complete-data interval: within-imputation variance W = 1/O (the variance of log O for a
  Poisson count; O does not vary between imputations), between-imputation variance B = var_k(log E_k), total
  T = W + (1 + 1/m) B with Rubin's degrees of freedom (m - 1)(1 + 1/r)^2, r = (1 + 1/m) B / W. The exact Poisson
  interval that the indicator table uses (E fixed) is kept and widened on the log scale by
  t_df sqrt(T) / (z sqrt(W)) = (t_df / z) sqrt(1 + r): with nothing imputed (B = 0) it is the table's exact
  interval, and O = 0 keeps its exact one-sided interval (W is then infinite and r = 0).
- Continuous indicators: the estimate is mean(O) - mean(E) (the adjusted mean minus the benchmark); within
  variance sigma_k^2 / n (sigma_k the residual SD of imputation k's model), between variance var_k(mean E_k),
  the same total and degrees of freedom, interval estimate +/- t_df sqrt(T). Complete case: the same with one
  model and z (the table's limits use z with the residual SD).

Runtime (measured on the 50,000-cycle demo, see the README): about 6 s of CPU time per indicator of 7,000
cycles, most of it in MICEData's formula handling; the pages compute it only when asked and keep it per view
(ui.render.cached).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd

from vbhc import benchmark
from vbhc.casemix import CaseMixModel, fit_casemix_model
from vbhc.catalog import CaseMixVariable
from vbhc.lazy import stats

__all__ = [
    "COLUMNS",
    "N_BURNIN",
    "N_SKIP",
    "SEED",
    "M",
    "MultipleImputation",
    "imputation_frame",
    "impute_datasets",
    "multiple_imputation",
    "rubin_interval",
]

#: Imputed datasets (about 5% of the demo's cycles miss a case-mix value; m >= 100 x the fraction of
#: incomplete cycles is White, Royston and Wood's rule of thumb, Stat Med 2011;30:377).
M = 5
#: Chain cycles before the first dataset, and cycles skipped between two datasets (statsmodels' MICE: 10 and 3;
#: with a few percent missing the chain mixes within a cycle or two, and every cycle costs 0.3-1 s on the 7,000
#: cycles of the demo's colorectal cancer, most of it MICEData's formula handling).
N_BURNIN = 5
N_SKIP = 1
#: Seed of the imputation chain: the same data give the same imputations, so the page is reproducible.
SEED = 20_161_204
#: Donors predictive mean matching draws from (statsmodels' default).
K_PMM = 20
LEVEL = 0.95

#: Per-unit columns of MultipleImputation.per_unit. "estimate" is O/E for yes/no indicators and mean observed
#: minus mean expected for continuous ones; "_cc" is complete-case analysis (the indicator table's model),
#: "_mi" multiple imputation.
UNIT = "unit"
N = "n"  # cycles with a recorded outcome (all of them enter the imputed analysis)
N_EXCLUDED = "n_excluded"  # of these, left out by complete-case analysis (a missing case-mix value)
OBSERVED = "observed"  # yes/no: events in all n cycles; continuous: their mean
OBSERVED_CC = "observed_cc"  # the same over the complete cases
EXPECTED_CC = "expected_cc"  # yes/no: expected events; continuous: mean expected
ESTIMATE_CC = "estimate_cc"
LOWER_CC = "lower_cc"
UPPER_CC = "upper_cc"
EXPECTED_MI = "expected_mi"
ESTIMATE_MI = "estimate_mi"
LOWER_MI = "lower_mi"
UPPER_MI = "upper_mi"
FMI = "fraction_missing_information"  # (1 + 1/m) B / T: the share of the uncertainty due to imputation
COLUMNS = (
    UNIT,
    N,
    N_EXCLUDED,
    OBSERVED,
    OBSERVED_CC,
    EXPECTED_CC,
    ESTIMATE_CC,
    LOWER_CC,
    UPPER_CC,
    EXPECTED_MI,
    ESTIMATE_MI,
    LOWER_MI,
    UPPER_MI,
    FMI,
)

OUTCOME = "outcome_"  # the outcome's column in the imputation frame (no case-mix variable has this name)

Kind = Literal["binary", "continuous"]


@dataclass
class MultipleImputation:
    """Complete-case and multiply imputed expected values of one indicator, per unit and per cycle."""

    kind: Kind
    m: int
    per_unit: pd.DataFrame  # COLUMNS
    expected_cc: pd.Series  # per cycle of the indicator (index of the input); NaN where excluded
    expected_mi: pd.Series  # per cycle: the mean over the imputations
    expected_by_imputation: np.ndarray  # m x cycles
    imputed: dict[str, int]  # per covariate, the cycles whose value was imputed
    models: list[CaseMixModel] = field(default_factory=list, repr=False)
    failed: str | None = None  # why no imputation could be made (the MI columns are then NaN)

    @property
    def n_incomplete(self) -> int:
        """Cycles with at least one missing covariate (excluded under complete-case analysis)."""
        return int(self.per_unit[N_EXCLUDED].sum()) if len(self.per_unit) else 0


def imputation_frame(
    data: pd.DataFrame, outcome: str, names: Sequence[str]
) -> tuple[pd.DataFrame, dict[str, pd.CategoricalDtype]]:
    """The numbers MICEData works on (float columns, NaN = missing; categories as their codes in catalog order,
    the outcome in column OUTCOME) and the categorical dtypes to turn codes back into categories."""
    columns: dict[str, np.ndarray] = {}
    categories: dict[str, pd.CategoricalDtype] = {}
    for name in names:
        s = data[name]
        if isinstance(s.dtype, pd.CategoricalDtype):
            codes = s.cat.codes.to_numpy().astype(float)
            columns[name] = np.where(codes < 0, np.nan, codes)
            categories[name] = s.dtype
        else:
            if not pd.api.types.is_numeric_dtype(s.dtype) or pd.api.types.is_bool_dtype(s.dtype):
                dtype = pd.CategoricalDtype(sorted(pd.unique(s.dropna().astype(str))))
                s = s.astype("string").astype(dtype)
                codes = s.cat.codes.to_numpy().astype(float)
                columns[name] = np.where(codes < 0, np.nan, codes)
                categories[name] = dtype
                continue
            columns[name] = pd.to_numeric(s, errors="coerce").astype("Float64").to_numpy("float64", na_value=np.nan)
    columns[OUTCOME] = pd.to_numeric(data[outcome], errors="coerce").to_numpy(float)
    frame = pd.DataFrame(columns)
    frame.columns = frame.columns.astype(object)  # MICEData wants plain string column names
    return frame, categories


def _restored(imputed: pd.DataFrame, like: pd.DataFrame, categories: dict[str, pd.CategoricalDtype]) -> pd.DataFrame:
    """An imputed dataset in the input's shape: codes back to their categories, the input's index."""
    out = like.copy()
    for name in imputed.columns:
        if name == OUTCOME:
            continue
        values = imputed[name].to_numpy(float)
        if name in categories:
            out[name] = pd.Categorical.from_codes(np.rint(values).astype(int), dtype=categories[name])
        else:
            out[name] = values
    return out


def rubin_interval(
    estimate: np.ndarray,
    complete_lower: np.ndarray,
    complete_upper: np.ndarray,
    within: np.ndarray,
    between: np.ndarray,
    m: int,
    *,
    log_scale: bool,
    level: float = LEVEL,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The complete-data interval widened by Rubin's rules: half-widths (on the log scale for a ratio) times
    (t_df / z) sqrt(1 + r), r = (1 + 1/m) B / W, df = (m - 1)(1 + 1/r)^2; returns lower, upper and the fraction
    of missing information (1 + 1/m) B / T. With B = 0 the complete-data interval is returned unchanged."""
    est, lo, up = (np.asarray(a, float) for a in (estimate, complete_lower, complete_upper))
    w, b = np.asarray(within, float), np.asarray(between, float)
    z = stats.norm.ppf(0.5 + level / 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(b > 0, (1 + 1 / m) * b / w, 0.0)  # W infinite (no events): r = 0
        r = np.where(np.isfinite(r), r, 0.0)
        df = np.where(r > 0, (m - 1) * (1 + 1 / r) ** 2, np.inf)
        t = np.where(np.isfinite(df), stats.t.ppf(0.5 + level / 2, np.where(np.isfinite(df), df, 1.0)), z)
        factor = t / z * np.sqrt(1 + r)
        fmi = r / (1 + r)
        if log_scale:
            centre = np.log(est)
            lower = np.where(lo > 0, np.exp(centre - (centre - np.log(lo)) * factor), lo)
            upper = np.exp(centre + (np.log(up) - centre) * factor)
            upper = np.where(est > 0, upper, up)  # O = 0: the exact upper limit (nothing to widen around)
        else:
            lower = est - (est - lo) * factor
            upper = est + (up - est) * factor
    return lower, upper, fmi


def _unit_figures(
    kind: Kind, y: np.ndarray, codes: np.ndarray, k: int, expected: np.ndarray, sigma: float
) -> dict[str, np.ndarray]:
    """Per unit: n, observed, expected and the complete-data estimate with its interval, from the cycles given
    (expected without NaN)."""
    n = np.bincount(codes, minlength=k).astype(float)
    o = np.bincount(codes, weights=y, minlength=k)
    e = np.bincount(codes, weights=expected, minlength=k)
    if kind == "binary":
        oe = benchmark.oe_ratio(o, e, LEVEL)
        return {
            "n": n,
            "observed": o,
            "expected": e,
            "estimate": oe["oe"].to_numpy(float),
            "lower": oe["oe_lower"].to_numpy(float),
            "upper": oe["oe_upper"].to_numpy(float),
        }
    with np.errstate(divide="ignore", invalid="ignore"):
        mean_o, mean_e = o / n, e / n
        half = stats.norm.ppf(0.5 + LEVEL / 2) * sigma / np.sqrt(n)
    estimate = mean_o - mean_e
    return {
        "n": n,
        "observed": mean_o,
        "expected": mean_e,
        "estimate": estimate,
        "lower": estimate - half,
        "upper": estimate + half,
    }


def _residual_sd(model: CaseMixModel, y: np.ndarray) -> float:
    sd = model.diagnostics.residual_sd
    if np.isfinite(sd) and sd > 0:
        return float(sd)
    return float(np.nanstd(y, ddof=1)) if np.isfinite(y).sum() > 1 else math.nan


def impute_datasets(
    frame: pd.DataFrame, *, m: int = M, seed: int = SEED, n_burnin: int = N_BURNIN, n_skip: int = N_SKIP
) -> list[pd.DataFrame]:
    """m imputed copies of `frame` (imputation_frame's numbers) from one seeded MICEData chain: `n_burnin`
    cycles, then a dataset every `n_skip` + 1 cycles (as statsmodels' MICE.fit takes them)."""
    from statsmodels.imputation.mice import MICEData

    chain = MICEData(frame, k_pmm=K_PMM, rng=seed)
    datasets = []
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        chain.update_all(n_burnin)
        for _ in range(m):
            chain.update_all(n_skip + 1)
            datasets.append(chain.data.copy())
    return datasets


def multiple_imputation(
    data: pd.DataFrame,
    outcome: str,
    casemix: Sequence[CaseMixVariable],
    kind: Kind,
    unit: pd.Series,
    *,
    extra_covariates: Sequence[str] = (),
    complete_case: CaseMixModel | None = None,
    m: int = M,
    seed: int = SEED,
    n_burnin: int = N_BURNIN,
    n_skip: int = N_SKIP,
) -> MultipleImputation:
    """Complete-case and multiply imputed E and O/E (or O - E) per unit of one indicator; see the module docstring.

    `data`: the indicator's cycles with the outcome column and the covariates; cycles whose outcome is NaN are
    not part of the indicator and are left out. `complete_case`: the indicator table's model of the same
    cycles (fitted here when not given), so the complete-case figures are the table's.
    """
    if m < 2:
        raise ValueError("multiple imputation needs at least 2 imputations")
    names = [v.name for v in casemix] + [c for c in extra_covariates if c not in {v.name for v in casemix}]
    absent = [c for c in [outcome, *names] if c not in data.columns]
    if absent:
        raise KeyError(f"column(s) not in data: {', '.join(absent)}")
    part = data[pd.to_numeric(data[outcome], errors="coerce").notna().to_numpy()]
    unit = unit.reindex(part.index)
    if complete_case is None:
        complete_case = fit_casemix_model(part, outcome, casemix, kind, extra_covariates=extra_covariates)
    y = pd.to_numeric(part[outcome], errors="coerce").to_numpy(float)
    e_cc = complete_case.predict(part).to_numpy(float) if len(part) else np.array([])
    codes, labels = pd.factorize(unit.to_numpy(), sort=True)
    k = len(labels)
    scored = ~np.isnan(e_cc)
    cc = _unit_figures(kind, y[scored], codes[scored], k, e_cc[scored], _residual_sd(complete_case, y[scored]))
    n_all = np.bincount(codes, minlength=k).astype(float)
    observed_all = np.bincount(codes, weights=y, minlength=k)
    if kind == "continuous":
        with np.errstate(divide="ignore", invalid="ignore"):
            observed_all = observed_all / n_all

    used = [c for c in names if part[c].notna().any()]  # a variable never recorded is left out, as the model does
    frame, categories = imputation_frame(part, outcome, used)
    imputed = {c: int(frame[c].isna().sum()) for c in used if frame[c].isna().any()}
    failed: str | None = None
    by_imputation = np.full((m, len(part)), np.nan)
    models: list[CaseMixModel] = []
    per_imputation: list[dict[str, np.ndarray]] = []
    try:
        datasets = impute_datasets(frame, m=m, seed=seed, n_burnin=n_burnin, n_skip=n_skip) if len(part) else []
        for j, dataset in enumerate(datasets):
            complete = _restored(dataset, part, categories)
            model = fit_casemix_model(complete, outcome, casemix, kind, extra_covariates=extra_covariates)
            models.append(model)
            by_imputation[j] = model.expected.reindex(part.index).to_numpy(float)
            per_imputation.append(
                _unit_figures(kind, y, codes, k, np.nan_to_num(by_imputation[j]), _residual_sd(model, y))
            )
    except Exception as exc:  # an imputation that cannot be made must not take the page down: say why instead
        failed = f"{type(exc).__name__}: {exc!s:.160}"
        per_imputation = []

    per_unit = pd.DataFrame(
        {
            UNIT: labels,
            N: n_all.astype(int),
            N_EXCLUDED: (n_all - cc["n"]).astype(int),
            OBSERVED: observed_all,
            OBSERVED_CC: cc["observed"],
            EXPECTED_CC: cc["expected"],
            ESTIMATE_CC: cc["estimate"],
            LOWER_CC: cc["lower"],
            UPPER_CC: cc["upper"],
        }
    )
    if per_imputation and not np.isnan(by_imputation).any():
        expected = np.array([f["expected"] for f in per_imputation])  # m x units
        pooled = expected.mean(axis=0)
        if kind == "binary":
            complete = benchmark.oe_ratio(observed_all, pooled, LEVEL)
            estimate = complete["oe"].to_numpy(float)
            with np.errstate(divide="ignore", invalid="ignore"):
                within = np.where(observed_all > 0, 1.0 / observed_all, np.inf)
                between = np.var(np.log(expected), axis=0, ddof=1)
            lower, upper, fmi = rubin_interval(
                estimate,
                complete["oe_lower"].to_numpy(float),
                complete["oe_upper"].to_numpy(float),
                within,
                between,
                m,
                log_scale=True,
            )
        else:
            estimate = observed_all - pooled
            within = np.array([(_residual_sd(mod, y) ** 2) / n_all for mod in models]).mean(axis=0)
            between = np.var(expected, axis=0, ddof=1)
            half = stats.norm.ppf(0.5 + LEVEL / 2) * np.sqrt(within)
            lower, upper, fmi = rubin_interval(
                estimate, estimate - half, estimate + half, within, between, m, log_scale=False
            )
        per_unit[EXPECTED_MI], per_unit[ESTIMATE_MI] = pooled, estimate
        per_unit[LOWER_MI], per_unit[UPPER_MI], per_unit[FMI] = lower, upper, fmi
    else:
        if failed is None and len(part):
            failed = "an imputed dataset could not be scored"
        for column in (EXPECTED_MI, ESTIMATE_MI, LOWER_MI, UPPER_MI, FMI):
            per_unit[column] = np.nan
    pooled_cycle = by_imputation.mean(axis=0) if per_imputation else np.full(len(part), np.nan)
    return MultipleImputation(
        kind=kind,
        m=m,
        per_unit=per_unit[list(COLUMNS)],
        expected_cc=pd.Series(e_cc, index=part.index, name="expected_cc"),
        expected_mi=pd.Series(pooled_cycle, index=part.index, name="expected_mi"),
        expected_by_imputation=by_imputation,
        imputed=imputed,
        models=models,
        failed=failed,
    )
