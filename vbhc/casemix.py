"""Case-mix (risk-adjustment) models, fitted on the benchmark population for one indicator at a time.

Why: O/E and adjusted rates are only fair when the expected value E comes from a model that knows the
patient characteristics a team cannot influence. Everything here is a pure function on pandas DataFrames (no
Streamlit, no database), and the design matrix is built with numpy so that ~70 indicators on up to ~150,000
care cycles each can be fitted in seconds. Binary outcomes are fitted by statsmodels' binomial-logit maximum
likelihood; continuous ones by ordinary least squares solved from the small Gram matrix (statsmodels' OLS estimates
and standard errors, without the SVD of every row); nothing here is a hand-rolled optimiser.

Modelling choices (one place, so the dashboard can show them and reviewers can challenge them)

- Numeric variables (age, charlson, bmi, lvef, baseline PROM score, ...) enter linearly, centred at the
  fitting-population mean. Age also gets a centred quadratic term ``((age - mean)/10)^2`` because mortality
  and complication risks bend upwards at high age; other numeric variables stay linear.
- asa and nyha are stored as integers but modelled as categories (their steps are not equally spaced in risk
  and there are only 4-5 of them). Every other integer (age, charlson) is numeric.
- Categories become dummies. The reference is the most frequent level (ties: the first in category order).
  A level with fewer than ``MIN_LEVEL_N`` (20) cycles, or, for binary outcomes, with no events or only events,
  is merged into the reference: this prevents the quasi-separation that tiny or event-free levels cause. A
  level never seen in the fitting data is also treated as the reference when predicting. A variable that is
  left with a single level (or a numeric variable with a single value) is dropped, and so is a variable with
  no recorded value at all. Columns that are exact linear combinations of others are dropped (pivoted QR of
  the small Gram matrix; the intercept is always kept), and listed in ``diagnostics.dropped``.
- Missing case-mix, ``missing="exclude"`` (the default): a cycle with any missing case-mix value is left out
  of the model and gets no expected value (NaN); ``excluded_by_reason`` counts, per variable, the cycles in
  the indicator missing that variable (a cycle missing two variables counts under both; ``n_excluded``
  counts distinct cycles). ``missing="indicator"``: a numeric variable is mean-imputed and gets a 0/1
  ``<name>:missing`` term (subject to the same 20-cycles/events rule, otherwise plain mean imputation); a
  category gets a ``(missing)`` level, which the merging rule may fold into the reference.
- Cycles whose outcome is NaN are not part of the indicator: dropped first, counted as "outcome not recorded".
- Edge cases never raise: no cycles, zero events (or only events), fewer cycles than parameters, or a
  failing fit give a constant model that predicts the overall rate/mean, with a ``warning``. Perfect or
  quasi-complete separation (statsmodels' PerfectSeparationWarning, no convergence, or absurd coefficients)
  falls back to a ridge-penalised logistic fit (statsmodels' Logit likelihood plus an L2 penalty, maximised
  by scipy's trust-region Newton; intercept not penalised, a N(0, 2.5^2)-like penalty per SD of each other
  column); its standard errors come from the penalised information matrix and are approximate.
- Contributions (``casemix_contributions``): per unit and variable, the expected value with the unit's own
  values minus the expected value with that variable's part of the linear predictor drawn from the
  population distribution (for the linear model: replaced by its population mean), per cycle, on the
  outcome scale, for the logistic model relative to the same swap for all cycles together; see that function
  for details.
- Grouped fits (``grouped=True``; the PREM tables, whose case-mix is three categories): where the fitting rows have
  few distinct case-mix patterns (at most GROUPED_SHARE of the rows), the model is fitted on the patterns, each with
  its number of rows as frequency weight: the same likelihood and the same least squares, so the same estimates and
  diagnostics up to summation order (~1e-13 on a year's PREM answers at 1,000,000 care cycles), at a fraction of the
  CPU. Its c-statistic ties all rows of a pattern, as it should; the per-row fit's linear predictors of one pattern
  can differ in their last bit and break a few of those ties at random (~1e-6 on the c-statistic).
- Diagnostics on the fitting data: c-statistic (rank / Mann-Whitney formula), calibration slope (logistic
  regression of the outcome on the linear predictor) and calibration-in-the-large (intercept with the linear
  predictor as offset), Brier score; for continuous outcomes R^2 and residual SD.

Note: warnings are captured with ``warnings.catch_warnings``, which is process-global; concurrent fits in
threads may see each other's warnings (harmless here: they only make the separation check more cautious).
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Literal

import numpy as np
import pandas as pd

from vbhc.catalog import CaseMixVariable
from vbhc.lazy import optimize, scipy_linalg, special, stats

__all__ = [
    "MIN_LEVEL_N",
    "ORDINAL_AS_CATEGORY",
    "CaseMixModel",
    "Diagnostics",
    "Recalibration",
    "c_statistic",
    "casemix_contributions",
    "fit_casemix_model",
    "intercept_shift",
    "recalibrate_in_the_large",
]

#: Category levels (and missing indicators) with fewer cycles than this are merged into the reference.
MIN_LEVEL_N = 20
#: Integer case-mix variables modelled as categories rather than linearly.
ORDINAL_AS_CATEGORY = frozenset({"asa", "nyha"})
#: Numeric variables that also get a centred quadratic term, and the unit of that term.
QUADRATIC = frozenset({"age"})
QUADRATIC_UNIT = 10.0
#: Prior-like standard deviation of the ridge penalty used when the logistic fit separates.
RIDGE_SD = 2.5
#: A coefficient whose effect per SD of its column exceeds this (logit scale) signals separation.
MAX_STD_EFFECT = 5.0
MAX_COEFFICIENT = 15.0

INTERCEPT = "(Intercept)"
REMAINDER = "(non-additive)"
MISSING_LEVEL = "(missing)"

Kind = Literal["binary", "continuous"]
MissingRule = Literal["exclude", "indicator"]


# --- encoding ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Term:
    """How one variable becomes design-matrix columns (fixed at fit time, reused by predict)."""

    variable: str
    kind: Literal["numeric", "category"]
    columns: tuple[str, ...]
    center: float = 0.0
    quadratic: bool = False
    missing_indicator: bool = False
    levels: tuple[str, ...] = ()  # category: non-reference levels, one column each
    reference: str = ""


def _statsmodels():
    """statsmodels.api, imported when a model is first fitted: it takes seconds to import, and a page that reads
    stored results (a restart, a new viewer) fits nothing."""
    import statsmodels.api

    return statsmodels.api


def _numeric(s: pd.Series) -> np.ndarray:
    if pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype):
        return s.to_numpy(dtype="float64", na_value=np.nan)  # already numbers (e.g. Int64): no parsing pass
    if isinstance(s.dtype, pd.CategoricalDtype):
        s = s.astype(object)
    return pd.to_numeric(s, errors="coerce").astype("Float64").to_numpy(dtype="float64", na_value=np.nan)


def _codes(s: pd.Series, missing_level: bool) -> tuple[np.ndarray, list[str], np.ndarray]:
    """Integer codes per row, level names in natural order, and the missing mask, without string copies.

    Natural order: the categorical's categories (catalog codes), else sorted values; integers are named
    without '.0'. With `missing_level`, missing rows get their own last level MISSING_LEVEL (else code -1).
    """
    if isinstance(s.dtype, pd.CategoricalDtype):
        codes = s.cat.codes.to_numpy().astype(np.int64)
        names = [str(c) for c in s.cat.categories]
    elif pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype):
        v = _numeric(s)
        ok = ~np.isnan(v)
        uniq = np.unique(v[ok])
        codes = np.full(len(v), -1, dtype=np.int64)
        codes[ok] = np.searchsorted(uniq, v[ok])
        names = [str(int(u)) if float(u).is_integer() else str(u) for u in uniq]
    else:
        codes, uniq = pd.factorize(s.astype("string"), sort=True)
        codes = codes.astype(np.int64)
        names = [str(u) for u in uniq]
    missing = codes < 0
    if missing_level:
        codes = np.where(missing, len(names), codes)
        names = [*names, MISSING_LEVEL]
    return codes, names, missing


def _is_category(name: str, casemix_type: str | None, s: pd.Series) -> bool:
    if casemix_type is not None:
        return casemix_type == "category" or name in ORDINAL_AS_CATEGORY
    return not pd.api.types.is_numeric_dtype(s.dtype) or pd.api.types.is_bool_dtype(s.dtype)


@dataclass
class ColumnCache:
    """The conversions of some columns (their missing mask, numbers, category codes), kept by a caller that encodes
    several frames holding the same values in those columns (a comparison group's indicators: one frame per indicator
    with the group's case-mix columns), so each column is converted once, not once per frame. `names`: the columns
    that are the same in every frame this cache is used with; any other column is converted as it comes. The kept
    arrays are read, never written."""

    names: frozenset[str]
    kept: dict[tuple[str, str, bool], object] = field(default_factory=dict)

    def get(self, what: str, s: pd.Series, make: Callable[[], object], flag: bool = False) -> object:
        if s.name not in self.names:
            return make()
        key = (what, str(s.name), flag)
        if key not in self.kept:
            self.kept[key] = make()
        return self.kept[key]


def _missing(s: pd.Series, cache: ColumnCache | None = None) -> np.ndarray:
    """Where the column has no value (kept by `cache`)."""
    if cache is None:
        return s.isna().to_numpy()
    return cache.get("missing", s, lambda: s.isna().to_numpy())


def _encode(
    term: _Term, s: pd.Series, rule: MissingRule, cache: ColumnCache | None = None, rows: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Design columns for one term (n x k) and the rows that cannot be predicted (missing under 'exclude');
    the column's numbers or codes kept by `cache` when given. `rows` (a mask): the design of those rows alone, from
    the whole column's conversion (the one `cache` keeps), not from a copy of the rows' part of the column."""
    n = len(s) if rows is None else int(np.count_nonzero(rows))
    if term.kind == "numeric":
        x = _numeric(s) if cache is None else cache.get("numeric", s, lambda: _numeric(s))
        if rows is not None:
            x = x[rows]
        miss = np.isnan(x)
        x = np.where(miss, 0.0, x - term.center)  # mean imputation = centred value 0
        cols = [x]
        if term.quadratic:
            cols.append((x / QUADRATIC_UNIT) ** 2)
        if term.missing_indicator:
            cols.append(miss.astype(float))
        return np.column_stack(cols), (miss if rule == "exclude" else np.zeros(n, bool))
    level = rule == "indicator"
    if cache is None:
        codes, names, miss = _codes(s, missing_level=level)
    else:
        codes, names, miss = cache.get("codes", s, lambda: _codes(s, missing_level=level), level)
    if rows is not None:
        codes, miss = codes[rows], miss[rows]
    position = {lev: i for i, lev in enumerate(term.levels)}
    lookup = np.array([position.get(nm, -1) for nm in names] + [-1], dtype=np.int64)  # code -1 -> last
    idx = lookup[codes]
    block = np.zeros((n, len(term.levels)))
    hit = idx >= 0
    block[np.flatnonzero(hit), idx[hit]] = 1.0
    return block, (miss if rule == "exclude" else np.zeros(n, bool))


# --- results -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExclusionReason:
    """Why care cycles were left out of a case-mix model: a reason code and, for a missing value, the case-mix
    variable. Pages render it in the reader's language through the catalog (vbhc.catalog.CaseMixVariable)."""

    code: str  # "outcome_not_recorded" | "missing"
    variable: str | None = None

    def __str__(self) -> str:  # plain English, for logs and the command line
        return f"{self.variable} missing" if self.code == "missing" else self.code.replace("_", " ")


OUTCOME_NOT_RECORDED = ExclusionReason("outcome_not_recorded")

#: The model warnings, by code (Diagnostics.warning_code): the English text of Diagnostics.warning; the pages
#: show the message model.warning_<code> of vbhc.i18n with Diagnostics.warning_values.
WARNINGS = {
    "no_data": "no cycles with a recorded outcome and case-mix",
    "no_events": "no events: no model fitted, expected = overall rate",
    "only_events": "only events: no model fitted, expected = overall rate",
    "too_few_cycles": "too few cycles ({cycles}) for {parameters} parameters: expected = overall",
    "fit_failed": "model fit failed ({error}): expected = overall",
    "few_events": "few events per parameter ({events_per_parameter:.1f} < 10): coefficients unstable",
    "separation": "perfect or quasi-complete separation: ridge-penalised fit, standard errors approximate",
    "separation_not_converged": (
        "perfect or quasi-complete separation: ridge-penalised fit, standard errors approximate; "
        "ridge optimiser did not converge ({error})"
    ),
}


@dataclass
class Diagnostics:
    """Model quality, shown next to every adjusted indicator (never hidden)."""

    n_input: int
    n_used: int
    n_excluded: int
    excluded_by_reason: dict[ExclusionReason, int]
    events: float | None
    method: str  # "logistic" (maximum likelihood) | "ridge" | "ols" | "constant"
    c_statistic: float = math.nan
    calibration_intercept: float = math.nan
    calibration_slope: float = math.nan
    brier: float = math.nan
    r_squared: float = math.nan
    residual_sd: float = math.nan
    events_per_parameter: float = math.nan
    merged_levels: dict[str, list[str]] = field(default_factory=dict)
    dropped: dict[str, str] = field(default_factory=dict)
    fit_seconds: float = 0.0
    warning: str | None = None
    warning_code: str | None = None  # key of WARNINGS
    warning_values: dict[str, object] = field(default_factory=dict)

    def set_warning(self, code: str | None, **values: object) -> None:
        """Record a warning by its code (WARNINGS) and values; `warning` gets its English text."""
        self.warning_code, self.warning_values = code, values
        self.warning = WARNINGS[code].format(**values) if code else None

    def as_dict(self) -> dict:
        # JSON-friendly: the exclusion reasons as their plain English text ("age missing")
        plain = replace(self, excluded_by_reason={str(k): v for k, v in self.excluded_by_reason.items()})
        return asdict(plain)


@dataclass(frozen=True)
class Recalibration:
    """How a model fitted on the whole registry was recalibrated in the large to a comparison group
    (recalibrate_in_the_large): the shift of its linear predictor (logit for binary, outcome scale for
    continuous; -inf/+inf when the group has no events/only events) and the registry fit it started from."""

    shift: float
    reference_n: int  # care cycles the registry model was fitted on
    reference_overall: float  # the registry's observed rate/mean (the group's is the model's `overall`)


@dataclass
class CaseMixModel:
    """A fitted case-mix model: expected values for any cycles of the same condition, plus its quality."""

    outcome: str
    kind: Kind
    missing: MissingRule
    terms: tuple[_Term, ...]
    required: tuple[str, ...]  # columns needed to predict (and, under "exclude", to be non-missing)
    params: np.ndarray
    overall: float  # observed mean outcome in the fitting population (the benchmark target)
    coefficients: pd.DataFrame
    diagnostics: Diagnostics
    expected: pd.Series  # expected value per cycle of the fitting data; NaN for excluded cycles
    constant: float | None = None  # set when no model could be fitted: predict this value
    mean_contribution: dict[str, float] = field(default_factory=dict)  # population mean of each term's lp part
    # population distribution of each term's lp part: (points, weights), for casemix_contributions
    population_contributions: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict, repr=False)
    # set when this is the registry's model recalibrated to a comparison group (recalibrate_in_the_large)
    recalibration: Recalibration | None = None

    @property
    def variables(self) -> tuple[str, ...]:
        return tuple(t.variable for t in self.terms)

    @property
    def warning(self) -> str | None:
        return self.diagnostics.warning

    def _design(
        self, data: pd.DataFrame, cache: ColumnCache | None = None
    ) -> tuple[np.ndarray, np.ndarray, list[slice]]:
        absent = [c for c in self.required if c not in data.columns]
        if absent:
            raise KeyError(f"case-mix model for {self.outcome!r} needs column(s) {', '.join(absent)}")
        n = len(data)
        ok = np.ones(n, bool)
        if self.missing == "exclude":
            for name in self.required:
                ok &= ~_missing(data[name], cache)
        blocks, slices, start = [np.ones((n, 1))], [], 1
        for term in self.terms:
            block, _ = _encode(term, data[term.variable], self.missing, cache)
            blocks.append(block)
            slices.append(slice(start, start + block.shape[1]))
            start += block.shape[1]
        return np.hstack(blocks), ok, slices

    def linear_predictor(self, data: pd.DataFrame) -> pd.Series:
        """Linear predictor (logit for binary, mean for continuous); NaN for cycles the model cannot score."""
        x, ok, _ = self._design(data)
        lp = x @ self.params if self.constant is None else np.full(len(data), _link(self.kind, self.constant))
        return pd.Series(np.where(ok, lp, np.nan), index=data.index, name="linear_predictor")

    def predict(self, data: pd.DataFrame) -> pd.Series:
        """Expected value per cycle (probability or mean), aligned to data's index; NaN for excluded cycles."""
        x, ok, _ = self._design(data)
        if self.constant is not None:
            value = np.full(len(data), self.constant)
        else:
            value = _inverse_link(self.kind, x @ self.params)
        return pd.Series(np.where(ok, value, np.nan), index=data.index, name="expected")

    def term_contributions(self, data: pd.DataFrame) -> pd.DataFrame:
        """Each variable's part of the linear predictor per cycle (columns = variables; NaN if excluded)."""
        x, ok, slices = self._design(data)
        out = {}
        for term, sl in zip(self.terms, slices, strict=True):
            part = x[:, sl] @ self.params[sl] if self.constant is None else np.zeros(len(data))
            out[term.variable] = np.where(ok, part, np.nan)
        return pd.DataFrame(out, index=data.index, columns=list(self.variables))


def _link(kind: Kind, value: float) -> float:
    if kind == "continuous":
        return value
    with np.errstate(divide="ignore"):
        return float(special.logit(value))


def _inverse_link(kind: Kind, lp: np.ndarray) -> np.ndarray:
    return special.expit(lp) if kind == "binary" else lp


# --- statistics ----------------------------------------------------------------------------------------


def c_statistic(y: np.ndarray | pd.Series, score: np.ndarray | pd.Series) -> float:
    """AUC = P(score of an event > score of a non-event), ties 1/2, via the Mann-Whitney rank formula."""
    y = np.asarray(y, dtype=float)
    score = np.asarray(score, dtype=float)
    keep = ~(np.isnan(y) | np.isnan(score))
    y, score = y[keep], score[keep]
    n1 = float((y == 1).sum())
    n0 = float((y == 0).sum())
    if n1 == 0 or n0 == 0:
        return math.nan
    ranks = stats.rankdata(score)
    return float((ranks[y == 1].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def _calibration(y: np.ndarray, lp: np.ndarray, fitted: bool = False) -> tuple[float, float]:
    """(calibration-in-the-large, slope) of a logistic model on its linear predictor.

    `fitted`: lp is that of a maximum-likelihood logistic fit on these very rows, where intercept 0 and slope 1 (the
    perfect calibration) are the calibration fit's optimum (the model's score equations say so): the slope's Newton
    starts there and stops after a step instead of the six or seven from zero, at the same maximum (~1e-15 apart on
    the demo). Newton is not safe from any start (from slope 1 on a model whose slope is 0.5 it overflows), so a start
    there that fails or does not converge is retried from zero, as it is for any other model (a ridge fit). The
    intercept's Newton starts at 0, its optimum, already."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # no rank check (a QR of the n x 2 design per fit): the estimates do not depend on it
            design = np.column_stack([np.ones_like(lp), lp])
            slope = _slope_from_optimum(y, design) if fitted else None
            if slope is None:
                slope = _statsmodels().Logit(y, design, check_rank=False).fit(method="newton", disp=0).params
            ones = np.ones((len(y), 1))
            citl = _statsmodels().Logit(y, ones, offset=lp, check_rank=False).fit(method="newton", disp=0)
        return float(citl.params[0]), float(slope[1])
    except Exception:  # a diagnostic must never break the indicator
        return math.nan, math.nan


def _slope_from_optimum(y: np.ndarray, design: np.ndarray) -> np.ndarray | None:
    """_calibration's slope fit by Newton from (0, 1); None when it fails or does not converge."""
    try:
        res = _statsmodels().Logit(y, design, check_rank=False).fit(start_params=np.array([0.0, 1.0]), disp=0)
    except (np.linalg.LinAlgError, ValueError, OverflowError):
        return None
    params = np.asarray(res.params)
    return params if res.mle_retvals.get("converged", False) and np.all(np.isfinite(params)) else None


# --- fitting -------------------------------------------------------------------------------------------


def _outcome_values(data: pd.DataFrame, outcome: str, kind: Kind) -> np.ndarray:
    if outcome not in data.columns:
        raise KeyError(f"outcome column {outcome!r} not in data")
    y = _numeric(data[outcome])
    if kind == "binary":
        bad = ~np.isnan(y) & (y != 0) & (y != 1)
        if bad.any():
            raise ValueError(f"binary outcome {outcome!r} has values other than 0/1: {np.unique(y[bad])[:5]}")
    return y


def _build_terms(
    data: pd.DataFrame,
    used: np.ndarray,
    y: np.ndarray,
    variables: list[tuple[str, bool]],
    kind: Kind,
    rule: MissingRule,
    merged: dict[str, list[str]],
    dropped: dict[str, str],
    weights: np.ndarray | None = None,
    cache: ColumnCache | None = None,
) -> list[_Term]:
    """Decide each variable's encoding on the fitting rows: centring, reference level, merged levels. With `weights`
    the rows are case-mix patterns (a grouped fit): `weights` the rows each stands for, `y` their outcomes summed.
    The fitting rows' values are taken from the whole column's numbers or codes (kept by `cache` when given): the same
    values as the rows' part of the column converted on its own, without copying that part."""
    yu = y[used]
    wu = None if weights is None else weights[used]
    level = rule == "indicator"
    terms: list[_Term] = []
    for name, is_cat in variables:
        s = data[name]
        if not is_cat:
            x = (_numeric(s) if cache is None else cache.get("numeric", s, lambda s=s: _numeric(s)))[used]
            miss = np.isnan(x)
            xs = x[~miss]
            distinct = len(np.unique(xs))
            if distinct < 2:
                dropped[name] = "single value"
                continue
            center = float(xs.mean()) if wu is None else float(np.average(xs, weights=wu[~miss]))
            quadratic = name in QUADRATIC and distinct >= 3
            indicator = False
            if rule == "indicator" and miss.any():
                ev = yu[miss]
                count = miss.sum() if wu is None else wu[miss].sum()
                indicator = count >= MIN_LEVEL_N and (kind == "continuous" or 0 < ev.sum() < count)
                if not indicator:
                    merged[name] = [MISSING_LEVEL + " mean-imputed without indicator"]
            cols = [name] + ([f"{name}^2"] if quadratic else []) + ([f"{name}:missing"] if indicator else [])
            terms.append(_Term(name, "numeric", tuple(cols), center, quadratic, indicator))
            continue
        if cache is None:
            codes, names, _ = _codes(s, missing_level=level)
        else:
            codes, names, _ = cache.get("codes", s, lambda s=s: _codes(s, missing_level=level), level)
        codes = codes[used]
        valid = codes >= 0
        size = np.bincount(codes[valid], weights=None if wu is None else wu[valid], minlength=len(names))
        events = np.bincount(codes[valid], weights=yu[valid], minlength=len(names))
        present = np.flatnonzero(size > 0)
        if len(present) == 0:
            dropped[name] = "no values"
            continue
        # most frequent level; ties go to the first in natural (catalog) order, so row order never matters
        ref = int(np.argmax(size))
        reference = names[ref]
        kept, folded = [], []
        for i in present:
            if i == ref:
                continue
            rare = size[i] < MIN_LEVEL_N or (kind == "binary" and (events[i] == 0 or events[i] == size[i]))
            (folded if rare else kept).append(names[i])
        if folded:
            merged[name] = folded
        if not kept:
            dropped[name] = "single level" if len(present) == 1 else "single level after merging rare levels"
            continue
        terms.append(
            _Term(name, "category", tuple(f"{name}[{lev}]" for lev in kept), levels=tuple(kept), reference=reference)
        )
    return terms


def casemix_design(
    data: pd.DataFrame,
    casemix: Sequence[CaseMixVariable],
    events: np.ndarray,
    *,
    at: pd.DataFrame | None = None,
    at_events: np.ndarray | None = None,
) -> tuple[pd.DataFrame, np.ndarray]:
    """The case-mix design columns the logistic models use (same centring, categories, reference levels and
    merging of rare or event-free levels, decided on the rows with a recorded event indicator), without an
    intercept, for models fitted elsewhere (the Cox model of vbhc.survival); and the rows it cannot score
    (a missing case-mix value, or no recorded event: left out and counted, as missing="exclude" does).

    `at` (with its own `at_events`): encode those rows instead, with the encoding decided on `data`. For a
    comparison group among the registry's cycles: the registry's encoding, without encoding every registry row
    again for each group."""
    encoding = design_encoding(data, casemix, events)
    return encode_design(encoding, data, events) if at is None else encode_design(encoding, at, at_events)


@dataclass(frozen=True)
class DesignEncoding:
    """How casemix_design encodes the case-mix, as decided on one population: its terms, and the variables whose
    missing value leaves a row unscored. Kept, it encodes other rows (a comparison group's) as that population's
    without deciding again on every row of it (design_encoding, encode_design)."""

    terms: tuple[_Term, ...]
    variables: tuple[str, ...]


def design_encoding(data: pd.DataFrame, casemix: Sequence[CaseMixVariable], events: np.ndarray) -> DesignEncoding:
    """casemix_design's encoding decided on `data` (`events`: their event indicator, NaN = not recorded)."""
    y = np.asarray(events, dtype=float)
    recorded = ~np.isnan(y)
    types = {v.name: v.type for v in casemix}
    variables: list[tuple[str, bool]] = []
    used = recorded.copy()
    for v in casemix:
        if v.name not in data.columns:
            continue
        miss = data[v.name].isna().to_numpy()
        if recorded.any() and miss[recorded].all():
            continue
        variables.append((v.name, _is_category(v.name, types[v.name], data[v.name])))
        used &= ~miss
    terms = _build_terms(data, used, np.nan_to_num(y), variables, "binary", "exclude", {}, {})
    return DesignEncoding(tuple(terms), tuple(name for name, _ in variables))


def encode_design(encoding: DesignEncoding, rows: pd.DataFrame, events: np.ndarray) -> tuple[pd.DataFrame, np.ndarray]:
    """casemix_design's columns of `rows` with `encoding`, and the rows it cannot score (no recorded event, or a
    missing value of a variable the encoding was decided with)."""
    scored = ~np.isnan(np.asarray(events, dtype=float))
    for name in encoding.variables:
        scored &= ~rows[name].isna().to_numpy()
    columns: dict[str, np.ndarray] = {}
    for term in encoding.terms:
        block, _ = _encode(term, rows[term.variable], "exclude")
        for j, name in enumerate(term.columns):
            columns[name] = block[:, j]
    return pd.DataFrame(columns, index=rows.index), ~scored


def _constant_model(
    *,
    outcome: str,
    kind: Kind,
    rule: MissingRule,
    required: tuple[str, ...],
    data: pd.DataFrame,
    used: np.ndarray,
    value: float,
    diag: Diagnostics,
    warning: str,
    warning_values: dict[str, object] | None = None,
) -> CaseMixModel:
    diag.method = "constant"
    diag.set_warning(warning, **(warning_values or {}))
    expected = pd.Series(np.where(used, value, np.nan), index=data.index, name="expected")
    coef = pd.DataFrame(
        {
            "term": [INTERCEPT],
            "variable": [""],
            "estimate": [_link(kind, value) if not math.isnan(value) else math.nan],
            "se": [math.nan],
            "p": [math.nan],
        }
    )
    if kind == "binary":
        coef["odds_ratio"] = np.exp(coef["estimate"])
    if kind == "binary" and used.any():
        y = _numeric(data[outcome])[used]
        diag.brier = float(np.mean((value - y) ** 2))
    return CaseMixModel(
        outcome=outcome,
        kind=kind,
        missing=rule,
        terms=(),
        required=required,
        params=np.array([_link(kind, value)]),
        overall=value,
        coefficients=coef,
        diagnostics=diag,
        expected=expected,
        constant=value,
    )


#: ColumnCache key of the last per-row fit's design (_fitting_design)
_DESIGN = ("design", "", False)


def _fitting_design(
    terms: tuple[_Term, ...], data: pd.DataFrame, used: np.ndarray, rule: MissingRule, cache: ColumnCache | None
) -> tuple[np.ndarray, list[slice], np.ndarray, list[int]]:
    """The per-row fit's design of the fitting rows `used` (intercept first, then each term's columns: x_all and each
    term's slice of it) and its columns of full rank (x, and their positions `keep`, _drop_collinear).

    Built from the whole columns' numbers or codes, the rows' part of them taken as arrays (not the rows' part of the
    frame copied by pandas first). Kept by `cache` for the next fit when every term's column is one it keeps: a
    condition's indicators of the same rows (a cycle's recorded case-mix, the outcomes recorded for the same cycles)
    and the same encoding share one design, built and checked for collinearity once. Only the last design is kept
    (at 10,000,000 care cycles x_all and x are ~170 MB each)."""
    shared = cache is not None and all(t.variable in cache.names for t in terms)
    if shared:
        found = cache.kept.get(_DESIGN)  # type: ignore[union-attr]
        if found is not None:
            key_terms, key_rule, key_used, design = found  # type: ignore[misc]
            if key_terms == terms and key_rule == rule and np.array_equal(key_used, used):
                return design
    n = int(np.count_nonzero(used))
    # row-major as np.hstack made it, and x (x_all[:, keep], numpy's fancy indexing) column-major as it was: BLAS
    # adds up in another order on another layout, and the fit and the terms' parts are the same to the last bit
    x_all = np.empty((n, 1 + sum(len(t.columns) for t in terms)))
    x_all[:, 0] = 1.0
    slices, start = [], 1
    for term in terms:
        block, _ = _encode(term, data[term.variable], rule, cache if shared else None, rows=used)
        x_all[:, start : start + block.shape[1]] = block
        slices.append(slice(start, start + block.shape[1]))
        start += block.shape[1]
    x, keep = _drop_collinear(x_all)
    design = (x_all, slices, x, keep)
    if shared:
        cache.kept[_DESIGN] = (terms, rule, used.copy(), design)  # type: ignore[union-attr]
    return design


def _drop_collinear(x: np.ndarray, weights: np.ndarray | None = None) -> tuple[np.ndarray, list[int]]:
    """Columns to keep so that x has full column rank (intercept first, then in order of pivoted QR).

    Works on the small Gram matrix of RMS-scaled columns (p x p) instead of the n x p matrix: same null space,
    a fraction of the time on 150,000 rows. `weights`: the rows are case-mix patterns, each standing for this
    many rows (a grouped fit): the Gram matrix of the rows they stand for.
    """
    if weights is None:
        scale = np.sqrt((x**2).mean(axis=0))
        scale[scale == 0] = 1.0
        xs = x / scale
        gram = xs.T @ xs / len(x)
    else:
        total = float(weights.sum())
        scale = np.sqrt(weights @ x**2 / total)
        scale[scale == 0] = 1.0
        xs = x / scale
        gram = xs.T @ (xs * weights[:, None]) / total
    _, r, piv = scipy_linalg.qr(gram, pivoting=True)
    d = np.abs(np.diag(r))
    rank = int((d > d.max() * 1e-10).sum()) if d.size and d.max() > 0 else 0
    keep = sorted(piv[:rank].tolist())
    if 0 not in keep:  # the intercept is never dropped
        keep = sorted([0, *keep[:-1]]) if keep else [0]
    return x[:, keep], keep


def _separated(res, x: np.ndarray, caught: list[warnings.WarningMessage], weights: np.ndarray | None = None) -> bool:
    from statsmodels.tools.sm_exceptions import ConvergenceWarning, PerfectSeparationWarning

    if any(issubclass(w.category, (PerfectSeparationWarning, ConvergenceWarning)) for w in caught):
        return True
    converged = getattr(res, "converged", None)
    if converged is None:
        converged = getattr(res, "mle_retvals", {}).get("converged", True)
    if not converged:
        return True
    beta = np.asarray(res.params)[1:]
    if not np.all(np.isfinite(res.params)) or not np.all(np.isfinite(res.bse)):
        return True
    sd = x[:, 1:].std(axis=0) if weights is None else _weighted_sd(x[:, 1:], weights)
    return bool(np.any(np.abs(beta * sd) > MAX_STD_EFFECT) or np.any(np.abs(beta) > MAX_COEFFICIENT))


def _fit_binary(
    y: np.ndarray, x: np.ndarray
) -> tuple[np.ndarray, np.ndarray, str, tuple[str, dict[str, object]] | None]:
    """(params, se, method, warning as (code, values)): maximum likelihood, or a ridge fit when the data separate.

    The binomial-logit likelihood is maximised by statsmodels' Logit with Newton steps: for the canonical
    logit link these are the same iterations as GLM Binomial IRLS (estimates agree to ~1e-12) at about a
    third of the time on 150,000 rows. Logistic Newton converges in well under 30 steps unless the data
    separate, so maxiter=30 also bounds the time spent on a separated fit before the ridge fallback.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            res = _statsmodels().Logit(y, x, check_rank=False).fit(method="newton", maxiter=30, disp=0)
        except (np.linalg.LinAlgError, ValueError, OverflowError):
            res = None
    if res is not None and not _separated(res, x, caught):
        return np.asarray(res.params), np.asarray(res.bse), "logistic", None
    return _fit_ridge(y, x)


#: rows per block of the least-squares products (bounds their n x p temporaries)
_OLS_BLOCK = 1 << 18


def _fit_ols(
    y: np.ndarray, x: np.ndarray, ssr_within: float = 0.0, n: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(params, se, p) of the least-squares fit, as statsmodels' OLS(y, x).fit() gives them, from p x p products of
    the design in row blocks instead of the pseudo-inverse of the n x p design (an SVD: most of a continuous
    indicator's fit at 100,000 cycles). The triangular factor R (X'X = R'R) by Cholesky QR twice on the RMS-scaled
    columns (the second pass on X R1^-1, whose Gram is near the identity, so R is as accurate as a QR's), then one
    step of iterative refinement on the rows' residuals. x has full column rank (_drop_collinear); se from
    s^2 (X'X)^-1, p from Student's t on n - p degrees of freedom. A grouped fit passes the case-mix patterns' rows
    (y their mean outcome and x their design, both times the square root of their number of rows), the sum of squares
    of the rows about their pattern's mean (`ssr_within`) and the number of rows `n`."""
    scale = np.sqrt((x**2).mean(axis=0))
    scale[scale == 0] = 1.0
    blocks = [slice(start, start + _OLS_BLOCK) for start in range(0, len(y), _OLS_BLOCK)]
    first = scipy_linalg.cholesky(sum((x[b] / scale).T @ (x[b] / scale) for b in blocks))
    gram, moment = 0.0, 0.0
    for b in blocks:
        q = scipy_linalg.solve_triangular(first, (x[b] / scale).T, trans="T").T  # x R1^-1
        gram, moment = gram + q.T @ q, moment + q.T @ y[b]
    second = scipy_linalg.cholesky(gram)
    r = second @ first

    def solve_normal(v: np.ndarray) -> np.ndarray:  # (X'X)^-1 v = R^-1 R^-T v
        return scipy_linalg.solve_triangular(r, scipy_linalg.solve_triangular(r, v, trans="T"))

    beta = scipy_linalg.solve_triangular(r, scipy_linalg.solve_triangular(second, moment, trans="T"))
    beta += solve_normal(sum((x[b] / scale).T @ (y[b] - (x[b] / scale) @ beta) for b in blocks))
    ssr = sum(float(((y[b] - (x[b] / scale) @ beta) ** 2).sum()) for b in blocks) + ssr_within
    df = (len(y) if n is None else n) - x.shape[1]
    inverse = solve_normal(np.eye(x.shape[1]))
    se = np.sqrt(ssr / df * np.diag(inverse)) / scale
    params = beta / scale
    return params, se, 2 * stats.t.sf(np.abs(params / se), df)


def _fit_ridge(y: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, str, tuple[str, dict[str, object]]]:
    """Ridge-penalised logistic fit for separated data: keeps every estimate finite.

    Penalty: 0.5 * sum(b_k^2) / RIDGE_SD^2 on the coefficients of standardised columns (a N(0, 2.5^2) prior
    per SD of each column; unit-free), intercept unpenalised so sum(expected) = sum(observed) still holds.
    The objective is statsmodels' Logit log-likelihood (with its analytic score and Hessian) minus the
    penalty, maximised by scipy's trust-region Newton ("trust-exact"): ~10x faster than the BFGS inside
    GLM.fit_regularized(L1_wt=0) on 150,000 rows, same optimum. Standard errors from the inverse penalised
    information matrix (approximate).
    """
    sd = x.std(axis=0)
    sd[0] = 1.0
    sd[sd == 0] = 1.0
    return _ridge(_statsmodels().Logit(y, x / sd, check_rank=False), sd, float(y.mean()))


def _ridge(lm, sd: np.ndarray, rate: float) -> tuple[np.ndarray, np.ndarray, str, tuple[str, dict[str, object]]]:
    """_fit_ridge's optimisation of the likelihood model `lm` (its design's columns divided by `sd`; `rate` the
    observed rate): the per-row Logit, or the grouped fit's GLM of its patterns' rows with frequency weights."""
    lam = np.full(len(sd), 1.0 / RIDGE_SD**2)
    lam[0] = 0.0
    start = np.zeros(len(sd))
    start[0] = special.logit(np.clip(rate, 1e-6, 1 - 1e-6))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        opt = optimize.minimize(
            lambda b: -lm.loglike(b) + 0.5 * np.sum(lam * b * b),
            start,
            jac=lambda b: -lm.score(b) + lam * b,
            hess=lambda b: -lm.hessian(b) + np.diag(lam),
            method="trust-exact",
        )
    beta_s = opt.x
    try:
        cov_s = np.linalg.inv(-lm.hessian(beta_s) + np.diag(lam))
        se = np.sqrt(np.diag(cov_s)) / sd
    except np.linalg.LinAlgError:
        se = np.full(len(sd), np.nan)
    note = ("separation", {}) if opt.success else ("separation_not_converged", {"error": str(opt.message)})
    return beta_s / sd, se, "ridge", note


def _set_coefficients(
    model: CaseMixModel,
    kind: str,
    colnames: list[str],
    colvars: list[str],
    keep: list[int],
    params: np.ndarray,
    se: np.ndarray,
    pval: np.ndarray,
) -> np.ndarray:
    """The fit's estimates into `model` (params over every design column, 0 for one dropped as collinear; the
    coefficient table of the kept ones), as the per-row and the grouped fit give them; returns the full params."""
    full = np.zeros(len(colnames))
    full[keep] = params
    model.params = full
    coef = pd.DataFrame(
        {
            "term": [colnames[i] for i in keep],
            "variable": [colvars[i] for i in keep],
            "estimate": params,
            "se": se,
            "p": pval,
        }
    )
    if kind == "binary":
        coef["odds_ratio"] = np.exp(coef["estimate"])
    model.coefficients = coef
    return full


# --- grouped fits: one row per case-mix pattern -----------------------------------------------------------

#: fit_casemix_model(grouped=True) fits on the case-mix patterns when there are at most this share of the fitting rows.
GROUPED_SHARE = 0.1


def _weighted_sd(x: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The columns' standard deviation (ddof 0) over the rows the weighted rows stand for."""
    total = float(weights.sum())
    mean = weights @ x / total
    return np.sqrt(weights @ (x - mean) ** 2 / total)


def _patterns(data: pd.DataFrame, names: Sequence[str], cache: ColumnCache | None) -> tuple[np.ndarray, pd.DataFrame]:
    """Per row, the number (0, 1, ...) of its combination of the values of `names` (a missing value is a value):
    rows with the same number have the same design row; and the columns `names` of one row of each number. Kept by
    `cache` when it keeps every column of `names` (taking rows of a text column copies all of it: once per frame)."""
    key_name = ("patterns", "|".join(names), False)
    kept = cache is not None and all(name in cache.names for name in names)
    if kept and key_name in cache.kept:  # type: ignore[union-attr]
        return cache.kept[key_name]  # type: ignore[union-attr,return-value]
    key = np.zeros(len(data), dtype=np.int64)
    coded: dict[str, tuple[np.ndarray, list[str], np.ndarray]] = {}
    for name in names:
        s = data[name]

        def make(s: pd.Series = s) -> tuple[np.ndarray, list[str], np.ndarray]:
            return _codes(s, missing_level=False)

        coded[name] = make() if cache is None else cache.get("codes", s, make, False)  # type: ignore[assignment]
        codes = coded[name][0] + 1
        size = int(codes.max()) + 1 if len(codes) else 1
        if int(key.max(initial=0)) + 1 > (1 << 62) // size:  # the combined numbers would overflow: number them anew
            key = np.unique(key, return_inverse=True)[1].reshape(-1).astype(np.int64)
        key = key * size + codes
    ids = np.unique(key, return_inverse=True)[1].reshape(-1)
    first = np.empty(int(ids.max(initial=-1)) + 1, dtype=np.int64)
    first[ids] = np.arange(len(ids))  # any row of a pattern stands for it
    columns: dict[str, object] = {}
    for name in names:
        s = data[name]
        if isinstance(s.dtype, pd.CategoricalDtype) or (
            pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype)
        ):
            columns[name] = s.iloc[first].reset_index(drop=True)
        else:  # text: as a categorical of its levels in _codes' (sorted) order, which _codes then reads as they are
            codes, levels, _ = coded[name]
            columns[name] = pd.Categorical.from_codes(codes[first], categories=levels)
    found = ids, pd.DataFrame(columns, index=pd.RangeIndex(len(first)))
    if kept:
        cache.kept[key_name] = found  # type: ignore[union-attr]
    return found


def _bernoulli_rows(events: np.ndarray, trials: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, ...]:
    """The patterns as the rows they stand for: each pattern's events (y = 1) and non-events (y = 0) as one row each
    with their number as frequency weight (a pattern without either has no such row): (y, x, weights)."""
    y = np.concatenate([np.ones(len(x)), np.zeros(len(x))])
    w = np.concatenate([events, trials - events])
    keep = w > 0
    return y[keep], np.vstack([x, x])[keep], w[keep]


def _glm_binomial(y: np.ndarray, x: np.ndarray, weights: np.ndarray, offset: np.ndarray | None = None):
    """statsmodels' binomial-logit GLM of the weighted Bernoulli rows: its likelihood is the per-row Logit's."""
    sm = _statsmodels()
    return sm.GLM(y, x, family=sm.families.Binomial(), freq_weights=weights, offset=offset)


def _fit_binary_grouped(
    events: np.ndarray, trials: np.ndarray, x: np.ndarray
) -> tuple[np.ndarray, np.ndarray, str, tuple[str, dict[str, object]] | None]:
    """_fit_binary on case-mix patterns (`events` of `trials` each, design rows x): the same likelihood, Newton steps
    and separation checks, on a few hundred rows instead of hundreds of thousands."""
    y, xx, w = _bernoulli_rows(events, trials, x)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            res = _glm_binomial(y, xx, w).fit(method="newton", maxiter=30, disp=0)
        except (np.linalg.LinAlgError, ValueError, OverflowError):
            res = None
    if res is not None and not _separated(res, x, caught, trials):
        return np.asarray(res.params), np.asarray(res.bse), "logistic", None
    sd = _weighted_sd(x, trials)
    sd[0] = 1.0
    sd[sd == 0] = 1.0
    return _ridge(_glm_binomial(y, xx / sd, w), sd, float(events.sum() / trials.sum()))


def _c_statistic_grouped(score: np.ndarray, events: np.ndarray, non_events: np.ndarray) -> float:
    """c_statistic of rows grouped by score: the (event, non-event) pairs the event scores higher, ties 1/2."""
    n1, n0 = float(events.sum()), float(non_events.sum())
    if n1 == 0 or n0 == 0:
        return math.nan
    values, at = np.unique(score, return_inverse=True)
    e = np.bincount(at, weights=events, minlength=len(values))
    f = np.bincount(at, weights=non_events, minlength=len(values))
    below = np.cumsum(f) - f
    return float(np.sum(e * (below + 0.5 * f)) / (n1 * n0))


def _calibration_grouped(events: np.ndarray, trials: np.ndarray, lp: np.ndarray) -> tuple[float, float]:
    """_calibration of rows grouped by case-mix pattern (linear predictor lp, `events` of `trials` each)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            y, design, w = _bernoulli_rows(events, trials, np.column_stack([np.ones_like(lp), lp]))
            slope = _glm_binomial(y, design, w).fit(method="newton", disp=0)
            citl = _glm_binomial(y, design[:, :1], w, offset=design[:, 1]).fit(method="newton", disp=0)
        return float(citl.params[0]), float(slope.params[1])
    except Exception:  # a diagnostic must never break the indicator
        return math.nan, math.nan


def _weighted_distribution(values: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """_distribution of the rows the weighted values stand for."""
    uniq, at = np.unique(values, return_inverse=True)
    if len(uniq) <= 100:
        w = np.bincount(at.reshape(-1), weights=weights, minlength=len(uniq))
        return uniq, w / w.sum()
    return _distribution(np.repeat(values, weights.astype(np.int64)))


def _fit_grouped(
    data: pd.DataFrame,
    y: np.ndarray,
    used: np.ndarray,
    variables: list[tuple[str, bool]],
    model: CaseMixModel,
    cache: ColumnCache | None,
) -> CaseMixModel | None:
    """fit_casemix_model's fit and diagnostics on the case-mix patterns of the fitting rows (None: fit per row).

    Why: a PREM questionnaire's case-mix is three categories, so its 400,000 answers of a year have a few hundred
    patterns, and a model on them is the same model: the logistic likelihood of the rows is that of each pattern's
    events and non-events with their numbers as frequency weights (statsmodels' GLM), least squares on the rows is
    least squares on the patterns' means weighted by their numbers plus the sum of squares within the patterns, and
    every diagnostic is a sum over patterns. The same estimates (to summation order, ~1e-12) at a fraction of the
    CPU. Used when the patterns are at most GROUPED_SHARE of the rows; a fit that would give a constant model (no
    terms, too few rows) or fails is left to the per-row fit, which says why."""
    kind, diag = model.kind, model.diagnostics
    if not model.required:
        return None
    n_used = int(used.sum())
    ids, patterns = _patterns(data, list(model.required), cache)
    pattern = ids[used]
    counts = np.bincount(pattern)
    present = np.flatnonzero(counts)
    if len(present) > GROUPED_SHARE * n_used:
        return None
    number = np.full(len(counts), -1, dtype=np.int64)
    number[present] = np.arange(len(present))
    inverse = number[pattern]
    trials = counts[present].astype(float)
    yu = y[used]
    total = np.bincount(inverse, weights=yu, minlength=len(present))
    rep = patterns.iloc[present].reset_index(drop=True)
    merged, dropped = dict(diag.merged_levels), dict(diag.dropped)
    terms = _build_terms(rep, np.ones(len(rep), bool), total, variables, kind, model.missing, merged, dropped, trials)
    if not terms:
        return None
    model = replace(model, terms=tuple(terms), params=np.zeros(1 + sum(len(t.columns) for t in terms)))
    x_all, _, slices = model._design(rep)
    colnames = [INTERCEPT] + [c for t in terms for c in t.columns]
    colvars = [""] + [t.variable for t in terms for _ in t.columns]
    x, keep = _drop_collinear(x_all, trials)
    p_fit = x.shape[1]
    if n_used < p_fit + 2:
        return None
    warning: tuple[str, dict[str, object]] | None = None
    mean = total / trials
    try:
        if kind == "binary":
            params, se, method, warning = _fit_binary_grouped(total, trials, x)
            pval = 2 * stats.norm.sf(np.abs(params / se))
        else:
            within = float(np.sum((yu - mean[inverse]) ** 2))
            root = np.sqrt(trials)
            params, se, pval = _fit_ols(mean * root, x * root[:, None], within, n_used)
            method = "ols"
    except Exception:  # the per-row fit falls back as it does
        return None
    diag.merged_levels.update(merged)
    diag.dropped.update(dropped)
    for i in range(len(colnames)):
        if i not in keep:
            diag.dropped[colnames[i]] = "collinear with other terms"
    full = _set_coefficients(model, kind, colnames, colvars, keep, params, se, pval)
    lp = x @ params
    mu = _inverse_link(kind, lp)
    model.expected = pd.Series(np.nan, index=data.index, name="expected")
    model.expected[used] = mu[inverse]
    model.mean_contribution, model.population_contributions = {}, {}
    for t, sl in zip(terms, slices, strict=True):
        part = x_all[:, sl] @ full[sl]
        model.mean_contribution[t.variable] = float(trials @ part / n_used)
        model.population_contributions[t.variable] = _weighted_distribution(part, trials)
    diag.method = method
    n_par = p_fit - 1
    if kind == "binary":
        events = float(total.sum())
        diag.c_statistic = _c_statistic_grouped(lp, total, trials - total)
        diag.calibration_intercept, diag.calibration_slope = _calibration_grouped(total, trials, lp)
        diag.brier = float(np.sum(total * (mu - 1) ** 2 + (trials - total) * mu**2) / n_used)
        diag.events_per_parameter = min(events, n_used - events) / n_par if n_par else math.inf
        if n_par and diag.events_per_parameter < 10 and warning is None:
            warning = ("few_events", {"events_per_parameter": diag.events_per_parameter})
    else:
        resid = mean - mu
        ssr = within + float(trials @ resid**2)
        sst = float(((yu - yu.mean()) ** 2).sum())
        diag.r_squared = 1 - ssr / sst if sst > 0 else math.nan
        diag.residual_sd = float(np.sqrt(ssr / (n_used - p_fit)))
        diag.calibration_intercept = float(trials @ resid / n_used)
        mu_mean = float(trials @ mu / n_used)
        var_mu = float(trials @ (mu - mu_mean) ** 2 / n_used)
        cov = float(trials @ ((mean - yu.mean()) * (mu - mu_mean)) / n_used)
        diag.calibration_slope = cov / var_mu if var_mu > 0 else math.nan
        diag.events_per_parameter = n_used / n_par if n_par else math.inf
    code, values = warning or (None, {})
    diag.set_warning(code, **values)
    return model


def fit_casemix_model(
    data: pd.DataFrame,
    outcome: str,
    casemix: Sequence[CaseMixVariable],
    kind: Literal["binary", "continuous"],
    extra_covariates: Sequence[str] = (),
    missing: Literal["exclude", "indicator"] = "exclude",
    *,
    grouped: bool = False,
    cache: ColumnCache | None = None,
) -> CaseMixModel:
    """Fit the case-mix model for one indicator on the benchmark population (all units, one period).

    `data` are care cycles with the case-mix columns and the outcome column (NaN = not recorded);
    `extra_covariates` are further columns such as the baseline PROM score (numeric unless categorical
    dtype). See the module docstring for functional forms, merging, missing-data and separation rules.
    `grouped`: fit on the case-mix patterns when they are few (_fit_grouped: the same model to summation order, not
    bit-equal to the per-row fit); `cache`: conversions of the case-mix columns kept across the fits of one frame's
    indicators (ColumnCache), and the last per-row fit's design, which the next fit on the same rows with the same
    encoding reuses (_fitting_design: the same numbers, built once).
    """
    if kind not in ("binary", "continuous"):
        raise ValueError(f"kind must be 'binary' or 'continuous', got {kind!r}")
    if missing not in ("exclude", "indicator"):
        raise ValueError(f"missing must be 'exclude' or 'indicator', got {missing!r}")
    t0 = time.perf_counter()
    y = _outcome_values(data, outcome, kind)
    types = {v.name: v.type for v in casemix}
    names = [v.name for v in casemix] + [c for c in extra_covariates if c not in types]
    absent = [c for c in names if c not in data.columns]
    if absent:
        raise KeyError(f"case-mix column(s) not in data: {', '.join(absent)}")

    n_input = len(data)
    recorded = ~np.isnan(y)
    reasons: dict[ExclusionReason, int] = {}
    if (~recorded).any():
        reasons[OUTCOME_NOT_RECORDED] = int((~recorded).sum())
    dropped: dict[str, str] = {}
    merged: dict[str, list[str]] = {}
    variables: list[tuple[str, bool]] = []
    used = recorded.copy()
    for name in names:
        miss = _missing(data[name], cache)
        if recorded.any() and miss[recorded].all():
            dropped[name] = "no values recorded"
            continue
        variables.append((name, _is_category(name, types.get(name), data[name])))
        if missing == "exclude" and (miss & recorded).any():
            reasons[ExclusionReason("missing", name)] = int((miss & recorded).sum())
            used &= ~miss
    required = tuple(name for name, _ in variables)

    n_used = int(used.sum())
    events = float(y[used].sum()) if kind == "binary" else None
    diag = Diagnostics(
        n_input=n_input,
        n_used=n_used,
        n_excluded=n_input - n_used,
        excluded_by_reason=reasons,
        events=events,
        method="",
        merged_levels=merged,
        dropped=dropped,
    )
    common = dict(outcome=outcome, kind=kind, rule=missing, required=required, data=data, used=used, diag=diag)
    overall = float(y[used].mean()) if n_used else math.nan

    def finish(model: CaseMixModel) -> CaseMixModel:
        model.diagnostics.fit_seconds = time.perf_counter() - t0
        return model

    if n_used == 0:
        return finish(_constant_model(value=math.nan, warning="no_data", **common))
    if kind == "binary" and (events == 0 or events == n_used):
        return finish(_constant_model(value=overall, warning="no_events" if events == 0 else "only_events", **common))

    if grouped:
        template = CaseMixModel(
            outcome=outcome,
            kind=kind,
            missing=missing,
            terms=(),
            required=required,
            params=np.zeros(1),
            overall=overall,
            coefficients=pd.DataFrame(),
            diagnostics=diag,
            expected=pd.Series(dtype=float),
        )
        found = _fit_grouped(data, y, used, variables, template, cache)
        if found is not None:
            return finish(found)
    terms = _build_terms(data, used, y, variables, kind, missing, merged, dropped, cache=cache)
    model = CaseMixModel(
        outcome=outcome,
        kind=kind,
        missing=missing,
        terms=tuple(terms),
        required=required,
        params=np.zeros(1 + sum(len(t.columns) for t in terms)),
        overall=overall,
        coefficients=pd.DataFrame(),
        diagnostics=diag,
        expected=pd.Series(dtype=float),
    )
    x_all, slices, x, keep = _fitting_design(model.terms, data, used, missing, cache)
    colnames = [INTERCEPT] + [c for t in terms for c in t.columns]
    colvars = [""] + [t.variable for t in terms for _ in t.columns]
    for i in range(len(colnames)):
        if i not in keep:
            dropped[colnames[i]] = "collinear with other terms"
    yu = y[used]
    p_fit = x.shape[1]
    if n_used < p_fit + 2:
        return finish(
            _constant_model(
                value=overall,
                warning="too_few_cycles",
                warning_values={"cycles": n_used, "parameters": p_fit},
                **common,
            )
        )

    warning: tuple[str, dict[str, object]] | None = None
    try:
        if kind == "binary":
            params, se, method, warning = _fit_binary(yu, x)
            zval = params / se
            pval = 2 * stats.norm.sf(np.abs(zval))
        else:
            try:
                params, se, pval = _fit_ols(yu, x)
            except np.linalg.LinAlgError:  # a design too near collinear for its Gram matrix: the rows' pseudo-inverse
                res = _statsmodels().OLS(yu, x).fit()
                params, se, pval = np.asarray(res.params), np.asarray(res.bse), np.asarray(res.pvalues)
            method = "ols"
    except Exception as exc:  # never crash an indicator because a fit failed
        return finish(
            _constant_model(value=overall, warning="fit_failed", warning_values={"error": f"{exc!s:.120}"}, **common)
        )

    full = _set_coefficients(model, kind, colnames, colvars, keep, params, se, pval)

    lp = x @ params
    mu = _inverse_link(kind, lp)
    expected = np.full(len(data), np.nan)
    expected[used] = mu
    model.expected = pd.Series(expected, index=data.index, name="expected")
    for t, sl in zip(terms, slices, strict=True):
        part = x_all[:, sl] @ full[sl]
        model.mean_contribution[t.variable] = float(part.mean())
        model.population_contributions[t.variable] = _distribution(part)

    diag.method = method
    n_par = p_fit - 1
    if kind == "binary":
        diag.c_statistic = c_statistic(yu, lp)
        diag.calibration_intercept, diag.calibration_slope = _calibration(yu, lp, fitted=method == "logistic")
        diag.brier = float(np.mean((mu - yu) ** 2))
        diag.events_per_parameter = min(events, n_used - events) / n_par if n_par else math.inf
        if n_par and diag.events_per_parameter < 10 and warning is None:
            warning = ("few_events", {"events_per_parameter": diag.events_per_parameter})
    else:
        resid = yu - mu
        sst = float(((yu - yu.mean()) ** 2).sum())
        diag.r_squared = 1 - float((resid**2).sum()) / sst if sst > 0 else math.nan
        diag.residual_sd = float(np.sqrt((resid**2).sum() / (n_used - p_fit)))
        diag.calibration_intercept = float(resid.mean())
        var_mu = float(np.var(mu))
        diag.calibration_slope = float(np.cov(yu, mu, bias=True)[0, 1] / var_mu) if var_mu > 0 else math.nan
        diag.events_per_parameter = n_used / n_par if n_par else math.inf
    code, values = warning or (None, {})
    diag.set_warning(code, **values)
    return finish(model)


# --- recalibration to a comparison group ----------------------------------------------------------------

#: Newton on the intercept shift stops when the expected total is this close to the observed one (in events).
SHIFT_TOLERANCE = 1e-9
#: Linear predictors are clipped to this magnitude when solving the shift (expit saturates long before).
_LP_CLIP = 50.0


def intercept_shift(lp: np.ndarray, y: np.ndarray) -> float:
    """The shift d with sum(expit(lp + d)) = sum(y): calibration in the large of a logistic model on other data.

    Newton on one parameter (the expected total is increasing and convex-concave in d), kept inside a bracket
    where the sign of the gap is known, with bisection when a step leaves it; -inf without events, +inf with
    only events (the expected values are then 0 or 1), NaN without cycles.
    """
    lp = np.clip(np.asarray(lp, dtype=float), -_LP_CLIP, _LP_CLIP)
    y = np.asarray(y, dtype=float)
    n, observed = len(y), float(y.sum())
    if n == 0:
        return math.nan
    if observed <= 0:
        return -math.inf
    if observed >= n:
        return math.inf
    rate = float(special.logit(observed / n))
    # every expit(lp + d) <= the observed rate at `low`, >= it at `high`: the root lies between
    low, high = rate - float(lp.max()), rate - float(lp.min())
    d = rate - float(special.logit(np.clip(special.expit(lp).mean(), 1e-12, 1 - 1e-12)))
    d = min(max(d, low), high)
    for _ in range(100):
        p = special.expit(lp + d)
        gap = float(p.sum()) - observed
        if abs(gap) <= SHIFT_TOLERANCE * max(1.0, observed):
            break
        if gap > 0:
            high = d
        else:
            low = d
        slope = float((p * (1 - p)).sum())
        step = d - gap / slope if slope > 0 else math.nan
        d = step if low < step < high else (low + high) / 2
    return d


def recalibrate_in_the_large(
    model: CaseMixModel, data: pd.DataFrame, outcome: str, cache: ColumnCache | None = None
) -> CaseMixModel:
    """The registry's case-mix model recalibrated in the large to `data` (a comparison group), without refitting.

    Why: the coefficients describe patient risk and are estimated best on the whole registry (a refit on a few
    hospitals overfits and moves with the group); the group only sets the level that counts as "as expected".
    Binary: expected = expit(lp + d) with d such that the group's expected total equals its observed total
    (intercept_shift); continuous: expected = prediction + mean(observed - prediction) over the group. So the
    group's pooled O/E is 1 and `overall` (the benchmark target) is the group's observed rate or mean.

    The returned model keeps the registry's coefficients and quality measures (c-statistic, calibration, R^2,
    residual sd, warnings); its `expected`, `overall` and cycle counts are the group's, its intercept carries
    the shift (`recalibration`), and its population distributions (casemix_contributions) are the group's, so
    the contributions explain the gap to the group's level. `data` holds the outcome column `outcome` (NaN =
    not part of the indicator) and the model's case-mix columns. `cache`: conversions of the case-mix columns kept
    across the indicators of one group (ColumnCache).
    """
    y = _outcome_values(data, outcome, model.kind)
    x, ok, slices = model._design(data, cache)  # once: the linear predictor and the contributions below share it
    lp = np.where(ok, x @ model.params, np.nan) if model.constant is None else model.linear_predictor(data).to_numpy()
    recorded = ~np.isnan(y)
    used = recorded & ~np.isnan(lp)
    yu, lpu = y[used], lp[used]
    n_used = int(used.sum())
    overall = float(yu.mean()) if n_used else math.nan
    if model.kind == "binary":
        shift = intercept_shift(lpu, yu)
        finite = math.isfinite(shift)
        mu = special.expit(np.clip(lpu, -_LP_CLIP, _LP_CLIP) + shift) if finite else np.full(n_used, overall)
    else:
        shift = float((yu - lpu).mean()) if n_used else math.nan
        mu = lpu + shift
    expected = pd.Series(np.nan, index=data.index, name="expected")
    expected[used] = mu
    reasons: dict[ExclusionReason, int] = {}
    if (~recorded).any():
        reasons[OUTCOME_NOT_RECORDED] = int((~recorded).sum())
    if model.missing == "exclude":
        for name in model.required:
            missing = int((_missing(data[name], cache) & recorded).sum())
            if missing:
                reasons[ExclusionReason("missing", name)] = missing
    reference = model.diagnostics
    diag = replace(
        reference,
        n_input=len(data),
        n_used=n_used,
        n_excluded=len(data) - n_used,
        excluded_by_reason=reasons,
        events=float(yu.sum()) if model.kind == "binary" else None,
    )
    params, constant = model.params.copy(), model.constant
    if constant is not None or not math.isfinite(shift):
        constant = overall  # a constant model, or a group without events (or only events): its own rate
    else:
        params[0] += shift
    recalibrated = replace(
        model,
        params=params,
        constant=constant,
        overall=overall,
        diagnostics=diag,
        expected=expected,
        recalibration=Recalibration(shift, reference.n_used, model.overall),
        mean_contribution={},
        population_contributions={},
    )
    if constant is None and n_used:
        x_used = x[used]
        for term, part in zip(recalibrated.terms, slices, strict=True):
            variable = term.variable
            values = x_used[:, part] @ params[part]
            recalibrated.mean_contribution[variable] = float(values.mean())
            recalibrated.population_contributions[variable] = _distribution(values)
    return recalibrated


# --- contributions -------------------------------------------------------------------------------------


def shares_of_gap_read_as_shares(contributions: Sequence[float] | np.ndarray, gap: float) -> bool:
    """Whether a unit's shares of its gap (casemix_contributions' share_of_gap) read as shares: every variable
    on the gap's side, save opposite contributions adding up to at most 5% of the gap. Where variables pull in
    opposite directions the net gap can be small beside them, and the shares run to hundreds of percent either
    way (440% and -330% for a unit whose expected rate was 0.2 points from the benchmark): the contributions
    then say what each variable does, and the shares say nothing."""
    values = np.asarray(contributions, dtype=float)
    values = values[~np.isnan(values)]
    if not np.isfinite(gap) or abs(gap) <= 1e-12 or values.size == 0:
        return False
    opposite = values[np.sign(values) == -np.sign(gap)]
    return float(np.abs(opposite).sum()) <= 0.05 * abs(gap)


def casemix_contributions(model: CaseMixModel, data: pd.DataFrame, unit: pd.Series) -> pd.DataFrame:
    """How much of each unit's gap (expected − overall) each case-mix variable explains.

    Method: for unit u with n_u cycles, E_full = sum of expected values. For variable j, each cycle keeps its
    other characteristics but its part of the linear predictor due to j is replaced by the fitting
    population's distribution of that part (the expected value is averaged over that distribution), giving
    E_without_j: "what would this unit expect if its patients had the population's j". Then
    contribution_j = (E_full − E_without_j) / n_u on the outcome scale (probability or mean), and
    share_of_gap = contribution_j / gap with gap = E_full / n_u − overall.

    For the linear (continuous) model averaging over the distribution equals replacing the part by its
    population mean, and the contributions add up to the gap exactly. For the logistic model we average over
    the distribution rather than plug in the mean: plugging in the mean gives even a typical unit non-zero
    contributions (Jensen's inequality: the logit link is curved). The part of the gap the variables do not
    explain one at a time (interplay through the curved link) is the row "(non-additive)". Each logistic
    contribution is taken relative to the same swap for all cycles of `data` together (their weighted mean over
    the units is subtracted): the swap draws j independently of the patient's other variables, and where these
    go together it lowers the expected value of every unit alike, which is no property of any one unit's case
    mix (at 50,000 demo cycles every hospital's age, ASA and Charlson each "explained" +0.2-0.4 points of 30-day
    mortality and the remainder -1.1 to -1.3, whatever the hospital's own gap). Distributions
    with more than ``max_points`` distinct values are summarised by equal-count quantile bins (bin means),
    which keeps their mean exact. Cycles without an expected value (case-mix excluded, outcome not
    recorded when the outcome column is present, or no unit) are left out.

    Returns long format: unit, variable, contribution, share_of_gap, n, expected, overall, gap.
    """
    if not unit.index.equals(data.index):
        unit = unit.reindex(data.index)
    columns = ["unit", "variable", "contribution", "share_of_gap", "n", "expected", "overall", "gap"]
    lp = model.linear_predictor(data).to_numpy()
    keep = ~np.isnan(lp) & unit.notna().to_numpy()
    if model.outcome in data.columns:
        keep &= ~np.isnan(_numeric(data[model.outcome]))
    if not keep.any() or not model.variables:
        return pd.DataFrame(columns=columns)
    parts = model.term_contributions(data).to_numpy()[keep]
    lp = lp[keep]
    codes, labels = pd.factorize(unit.to_numpy()[keep], sort=True)
    k = len(labels)
    n_u = np.bincount(codes, minlength=k).astype(float)
    e_full = np.bincount(codes, weights=_inverse_link(model.kind, lp), minlength=k)
    expected = e_full / n_u
    gap = expected - model.overall
    safe_gap = np.where(np.abs(gap) > 1e-12, gap, np.nan)
    results: list[tuple[str, np.ndarray]] = []
    explained = np.zeros(k)
    for j, var in enumerate(model.variables):
        rest = lp - parts[:, j]
        if model.kind == "continuous":
            e_cycle = rest + model.mean_contribution[var]
        else:
            points, weights = model.population_contributions[var]
            e_cycle = _expit_averaged(rest, points, weights)
        contrib = (e_full - np.bincount(codes, weights=e_cycle, minlength=k)) / n_u
        if model.kind == "binary":
            # less what the same swap gives the view's cycles as a whole (whose case-mix is by definition their
            # own): a swap breaks the link between j and the other variables, which through the curved link
            # lowers every unit's expected value where risk factors go together (age, ASA, Charlson), and every
            # unit of the demo got the same +0.2-0.4 points per variable and -1.2 in the remainder
            contrib = contrib - np.sum(contrib * n_u) / np.sum(n_u)
        explained += contrib
        results.append((var, contrib))
    if model.kind == "binary":
        results.append((REMAINDER, gap - explained))
    frames = [
        pd.DataFrame(
            {
                "unit": labels,
                "variable": var,
                "contribution": contrib,
                "share_of_gap": contrib / safe_gap,
                "n": n_u.astype(int),
                "expected": expected,
                "overall": model.overall,
                "gap": gap,
            }
        )
        for var, contrib in results
    ]
    out = pd.concat(frames, ignore_index=True)
    return out.sort_values("unit", kind="stable", ignore_index=True)[columns]


def _expit_averaged(rest: np.ndarray, points: np.ndarray, weights: np.ndarray, chunk: int = 8192) -> np.ndarray:
    """Per cycle: sum_b weights_b * expit(rest + points_b), in row chunks to bound memory."""
    out = np.empty(len(rest))
    for start in range(0, len(rest), chunk):
        r = rest[start : start + chunk, None] + points[None, :]
        out[start : start + chunk] = special.expit(r) @ weights
    return out


def _distribution(values: np.ndarray, max_points: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """Distinct values and their shares, or equal-count quantile-bin means when there are many."""
    uniq, counts = np.unique(values, return_counts=True)
    if len(uniq) <= max_points:
        return uniq, counts / counts.sum()
    s = np.sort(values)
    edges = np.linspace(0, len(s), max_points + 1).round().astype(int)
    edges = np.unique(edges)
    sizes = np.diff(edges)
    return np.add.reduceat(s, edges[:-1]) / sizes, sizes / len(s)
