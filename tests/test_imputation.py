"""Multiple imputation of missing case-mix values (vbhc.imputation), checked against statsmodels' own MICE run
independently on the same data and seed, against statsmodels' Rubin pooling (MICE.combine) of Poisson models of
O with log E as offset, and on the cases a methodologist would try: nothing missing (the imputed result is the
complete-case one), missingness concentrated in one unit (its cycles come back), the same seed twice."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy import stats
from scipy.special import expit
from statsmodels.imputation.mice import MICE, MICEData

from vbhc import imputation
from vbhc.casemix import fit_casemix_model
from vbhc.catalog import CaseMixVariable

CASEMIX = (
    CaseMixVariable("age", "integer", 18, 100),
    CaseMixVariable("sex", "category", codes=("F", "M")),
    CaseMixVariable("asa", "integer", 1, 5),
    CaseMixVariable("bmi", "number", 12, 70),
)
UNITS = ("A", "B", "C", "D", "E", "F")
PER_UNIT = 300
#: the unit whose registration misses the ASA class of two patients in five (the others: one in fifty)
CONCENTRATED = "A"


def _cycles(seed: int = 7, missing: bool = True, continuous: bool = False) -> pd.DataFrame:
    """Six units of 300 cycles; the outcome depends on age, sex, ASA and BMI; ASA missing mostly in unit A,
    BMI in 3% of every unit's cycles."""
    rng = np.random.default_rng(seed)
    n = len(UNITS) * PER_UNIT
    unit = np.repeat(UNITS, PER_UNIT)
    age = rng.normal(68, 10, n).round().clip(18, 100)
    sex = rng.choice(["F", "M"], n)
    asa = rng.choice([1, 2, 3, 4], n, p=[0.2, 0.4, 0.3, 0.1])
    bmi = rng.normal(27, 4, n).round(1)
    lp = -2.2 + 0.04 * (age - 68) + 0.3 * (sex == "M") + 0.5 * (asa - 2) + 0.03 * (bmi - 27)
    y = rng.normal(5 + 0.1 * (age - 68) + 1.2 * (asa - 2), 2.0) if continuous else rng.binomial(1, expit(lp))
    frame = pd.DataFrame(
        {
            "cycle_id": [f"c{i}" for i in range(n)],
            "unit": unit,
            "age": pd.array(age.astype(int), dtype="Int64"),
            "sex": pd.Categorical(sex, categories=["F", "M"]),
            "asa": pd.array(asa, dtype="Int64"),
            "bmi": bmi,
            "y": y.astype(float),
        }
    )
    if missing:
        share = np.where(unit == CONCENTRATED, 0.4, 0.02)
        frame.loc[rng.random(n) < share, "asa"] = pd.NA
        frame.loc[rng.random(n) < 0.03, "bmi"] = np.nan
    return frame


def _run(frame: pd.DataFrame, kind: str = "binary", **options) -> imputation.MultipleImputation:
    return imputation.multiple_imputation(frame, "y", CASEMIX, kind, frame["unit"], **options)


@pytest.fixture(scope="module")
def binary_result() -> tuple[pd.DataFrame, imputation.MultipleImputation]:
    frame = _cycles()
    return frame, _run(frame)


def test_pooled_expected_equals_statsmodels_mice_run_independently(binary_result):
    """statsmodels' MICE on the same numbers and seed, its analysis model the case-mix model's design as a
    formula (age + age^2, sex and ASA as categories, BMI linear: the same column space, so the same fitted
    probabilities whatever the centring and reference levels): its m fits give the same expected events per
    unit, and so the same pooled E and O/E."""
    frame, result = binary_result
    numbers = pd.DataFrame(
        {
            "age": frame["age"].astype(float),
            "sex": frame["sex"].cat.codes.astype(float),
            "asa": frame["asa"].astype("Float64").to_numpy("float64", na_value=np.nan),
            "bmi": frame["bmi"],
            "y": frame["y"],
        }
    )
    chain = MICEData(numbers, k_pmm=20, rng=imputation.SEED)
    mice = MICE("y ~ age + I(age ** 2) + C(sex) + C(asa) + bmi", sm.Logit, chain, n_skip=imputation.N_SKIP)
    mice.fit_kwds = {"disp": 0, "maxiter": 100}
    pooled = mice.fit(n_burnin=imputation.N_BURNIN, n_imputations=imputation.M)
    assert len(mice.results_list) == imputation.M
    per_imputation = np.array(
        [pd.Series(r.predict(), index=frame.index).groupby(frame["unit"]).sum() for r in mice.results_list]
    )
    ours = result.per_unit.set_index(imputation.UNIT)
    np.testing.assert_allclose(ours[imputation.EXPECTED_MI], per_imputation.mean(axis=0), rtol=1e-6)
    observed = frame.groupby("unit")["y"].sum()
    np.testing.assert_allclose(ours[imputation.ESTIMATE_MI], observed / per_imputation.mean(axis=0), rtol=1e-6)
    # every imputation's own expected values, per cycle
    for k, fit in enumerate(mice.results_list):
        np.testing.assert_allclose(result.expected_by_imputation[k], fit.predict(), rtol=1e-6, atol=1e-9)
    # the pooled coefficients (Rubin) are what MICE reports: the imputation is not a point estimate
    assert np.all(np.isfinite(pooled.params)) and np.all(pooled.bse > 0)


def test_the_interval_is_rubins_rules_as_statsmodels_pools_them(binary_result):
    """A Poisson model of the events with a coefficient per unit and log E_k as offset has coefficients
    log(O_u / E_u,k) and variances 1/O_u: statsmodels' MICE.combine pools them into the total variance
    T = W + (1 + 1/m) B. The interval is the exact Poisson interval of O / mean E with its log half-widths times
    (t_df / z) sqrt(T / W)."""
    frame, result = binary_result
    m = result.m
    ours = result.per_unit.set_index(imputation.UNIT)
    z = stats.norm.ppf(0.975)
    dummies = pd.get_dummies(frame["unit"]).astype(float)
    y = frame["y"].to_numpy()
    fits = [
        sm.GLM(y, dummies, family=sm.families.Poisson(), offset=np.log(e)).fit() for e in result.expected_by_imputation
    ]
    pool = MICE("y ~ 1", sm.GLM, MICEData(pd.DataFrame({"y": y})))
    pool.results_list, pool.exog_names, pool.endog_names = fits, list(dummies.columns), "y"
    totals = np.diag(pool.combine().cov_params())
    for j, u in enumerate(dummies.columns):
        rows = (frame["unit"] == u).to_numpy()
        o = y[rows].sum()
        total, within = float(totals[j]), 1 / o
        between = (total - within) / (1 + 1 / m)
        assert between > 0
        r = (1 + 1 / m) * between / within
        df = (m - 1) * (1 + 1 / r) ** 2
        factor = stats.t.ppf(0.975, df) / z * np.sqrt(total / within)
        e_bar = result.expected_by_imputation[:, rows].sum(axis=1).mean()
        estimate = o / e_bar
        low, high = stats.chi2.ppf(0.025, 2 * o) / 2 / e_bar, stats.chi2.ppf(0.975, 2 * o + 2) / 2 / e_bar
        line = ours.loc[u]
        assert line[imputation.ESTIMATE_MI] == pytest.approx(estimate, rel=1e-12)
        assert line[imputation.LOWER_MI] == pytest.approx(np.exp(np.log(estimate) - np.log(estimate / low) * factor))
        assert line[imputation.UPPER_MI] == pytest.approx(np.exp(np.log(estimate) + np.log(high / estimate) * factor))
        # B is small (a few % imputed): GLM's own convergence tolerance shows in its 5th digit
        assert line[imputation.FMI] == pytest.approx((1 + 1 / m) * between / total, rel=1e-4)
        assert line[imputation.LOWER_MI] < low and line[imputation.UPPER_MI] > high  # imputation widens it


def test_rubin_interval_by_hand():
    """m = 3, O/E = 2 with exact limits 1 and 4, W = 0.1, B = 0.03: r = 0.4, df = 2 (1 + 2.5)^2 = 24.5."""
    lower, upper, fmi = imputation.rubin_interval(
        np.array([2.0]), np.array([1.0]), np.array([4.0]), np.array([0.1]), np.array([0.03]), 3, log_scale=True
    )
    factor = stats.t.ppf(0.975, 24.5) / stats.norm.ppf(0.975) * np.sqrt(1.4)
    assert lower[0] == pytest.approx(2 / 2**factor)
    assert upper[0] == pytest.approx(2 * 2**factor)
    assert fmi[0] == pytest.approx(0.4 / 1.4)
    # nothing imputed (B = 0): the complete-data interval unchanged; no events: the exact one-sided interval
    same = imputation.rubin_interval(
        np.array([2.0, 0.0]), np.array([1.0, 0.0]), np.array([4.0, 1.5]), np.array([0.1, np.inf]),
        np.array([0.0, 0.02]), 3, log_scale=True,
    )  # fmt: skip
    np.testing.assert_allclose(same[0], [1.0, 0.0])
    np.testing.assert_allclose(same[1], [4.0, 1.5])
    np.testing.assert_allclose(same[2], [0.0, 0.0])


@pytest.mark.parametrize("kind", ["binary", "continuous"])
def test_without_missing_values_the_imputed_result_is_the_complete_case_one(kind):
    frame = _cycles(seed=3, missing=False, continuous=kind == "continuous")
    result = _run(frame, kind)
    assert result.failed is None and result.imputed == {}
    table = result.per_unit
    assert (table[imputation.N_EXCLUDED] == 0).all()
    for cc, mi in (
        (imputation.EXPECTED_CC, imputation.EXPECTED_MI),
        (imputation.ESTIMATE_CC, imputation.ESTIMATE_MI),
        (imputation.LOWER_CC, imputation.LOWER_MI),
        (imputation.UPPER_CC, imputation.UPPER_MI),
    ):
        np.testing.assert_allclose(table[mi], table[cc], rtol=1e-10)
    np.testing.assert_allclose(table[imputation.FMI], 0.0)
    np.testing.assert_allclose(result.expected_mi, result.expected_cc, rtol=1e-10)
    # and the complete-case figures are the case-mix model's own
    model = fit_casemix_model(frame, "y", CASEMIX, kind)
    expected = model.expected.groupby(frame["unit"]).sum()
    if kind == "continuous":
        expected = expected / PER_UNIT
    np.testing.assert_allclose(table[imputation.EXPECTED_CC], expected.to_numpy(), rtol=1e-12)


def test_a_unit_with_concentrated_missingness_gets_its_cycles_back(binary_result):
    frame, result = binary_result
    table = result.per_unit.set_index(imputation.UNIT)
    missing = frame.assign(incomplete=frame[["asa", "bmi"]].isna().any(axis=1)).groupby("unit")["incomplete"].sum()
    np.testing.assert_array_equal(table[imputation.N_EXCLUDED], missing.loc[table.index])
    assert table.loc[CONCENTRATED, imputation.N_EXCLUDED] > 0.3 * PER_UNIT
    assert (table.drop(CONCENTRATED)[imputation.N_EXCLUDED] < 0.1 * PER_UNIT).all()
    # complete case: A's O and E come from the 60% of its cycles with a recorded ASA class; imputed: from all
    assert (table[imputation.N] == PER_UNIT).all()
    assert result.expected_mi.notna().all()
    cc_cycles = result.expected_cc[frame["unit"] == CONCENTRATED].notna().sum()
    assert cc_cycles == PER_UNIT - table.loc[CONCENTRATED, imputation.N_EXCLUDED]
    assert table.loc[CONCENTRATED, imputation.OBSERVED] == frame.loc[frame["unit"] == CONCENTRATED, "y"].sum()
    assert table.loc[CONCENTRATED, imputation.OBSERVED_CC] < table.loc[CONCENTRATED, imputation.OBSERVED]
    e_mi = result.expected_mi[frame["unit"] == CONCENTRATED].sum()
    assert table.loc[CONCENTRATED, imputation.EXPECTED_MI] == pytest.approx(e_mi, rel=1e-12)
    assert table.loc[CONCENTRATED, imputation.EXPECTED_MI] > 1.4 * table.loc[CONCENTRATED, imputation.EXPECTED_CC]
    assert result.imputed["asa"] == int(frame["asa"].isna().sum())


def test_imputed_values_are_values_some_patient_has_and_recorded_values_stay():
    """Predictive mean matching draws from observed donors: an imputed ASA class is a class that occurs, an
    imputed age-like integer stays whole, and no recorded value changes."""
    frame = _cycles(seed=5)
    numbers, categories = imputation.imputation_frame(frame, "y", ["age", "sex", "asa", "bmi"])
    assert set(categories) == {"sex"}
    for dataset in imputation.impute_datasets(numbers, m=2):
        assert not dataset.isna().any().any()
        recorded = numbers.notna()
        pd.testing.assert_frame_equal(dataset.where(recorded), numbers.where(recorded))
        assert set(dataset["asa"]) <= set(numbers["asa"].dropna())
        assert set(dataset["bmi"]) <= set(numbers["bmi"].dropna())


def test_the_same_seed_gives_the_same_imputations_and_another_seed_other_ones(binary_result):
    frame, result = binary_result
    again = _run(frame)
    np.testing.assert_array_equal(again.expected_by_imputation, result.expected_by_imputation)
    other = _run(frame, seed=imputation.SEED + 1)
    assert not np.allclose(other.expected_by_imputation, result.expected_by_imputation)


def test_the_outcome_is_never_imputed():
    """A cycle without a recorded outcome is not part of the indicator: not imputed, not counted."""
    frame = _cycles(seed=11)
    frame.loc[frame.index[:50], "y"] = np.nan
    result = _run(frame)
    assert result.per_unit[imputation.N].sum() == len(frame) - 50
    assert not result.expected_mi.index.isin(frame.index[:50]).any()
