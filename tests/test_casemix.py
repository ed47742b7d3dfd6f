"""Case-mix models: known truth recovered, predictions equal statsmodels' own, ML properties, edge cases."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
import statsmodels.formula.api as smf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import stats
from scipy.special import expit

from vbhc.casemix import (
    MIN_LEVEL_N,
    OUTCOME_NOT_RECORDED,
    REMAINDER,
    ExclusionReason,
    c_statistic,
    casemix_contributions,
    fit_casemix_model,
    shares_of_gap_read_as_shares,
)
from vbhc.catalog import CaseMixVariable, default_catalog

CASEMIX = (
    CaseMixVariable("age", "integer", 18, 100),
    CaseMixVariable("sex", "category", codes=("F", "M")),
    CaseMixVariable("asa", "integer", 1, 5),
    CaseMixVariable("charlson", "integer", 0, 24),
    CaseMixVariable("bmi", "number", 12, 70),
    CaseMixVariable("stage", "category", codes=("I", "II", "III", "IV")),
)

# true effects on the logit (binary) or mean (continuous) scale, in the module's parametrisation:
# age centred at the fitting mean, age^2 = ((age - mean)/10)^2, reference = most frequent level (sex M, asa 2, stage II)
TRUTH_BINARY = {
    "(Intercept)": -2.6,
    "age": 0.04,
    "age^2": 0.10,
    "sex[F]": -0.30,
    "asa[1]": -0.40,
    "asa[3]": 0.50,
    "asa[4]": 1.00,
    "charlson": 0.15,
    "bmi": 0.02,
    "stage[I]": -0.30,
    "stage[III]": 0.40,
    "stage[IV]": 0.90,
}


def simulate_cycles(n: int, seed: int = 1, asa_p=(0.2, 0.45, 0.27, 0.08, 0.0)) -> pd.DataFrame:
    """Care cycles shaped like vbhc.registry.care_cycles('colorectal_cancer') output."""
    rng = np.random.default_rng(seed)
    asa_p = np.asarray(asa_p) / np.sum(asa_p)
    df = pd.DataFrame(
        {
            "cycle_id": [f"C{i:07d}" for i in range(n)],
            "hospital": pd.Categorical(rng.choice([f"H{i}" for i in range(8)], n)),
            "age": pd.array(np.clip(np.round(rng.normal(68, 11, n)), 18, 100).astype(int), dtype="Int64"),
            "sex": pd.Categorical(rng.choice(["F", "M"], n, p=[0.45, 0.55]), categories=["F", "M"]),
            "asa": pd.array(rng.choice([1, 2, 3, 4, 5], n, p=asa_p), dtype="Int64"),
            "charlson": pd.array(rng.poisson(1.2, n), dtype="Int64"),
            "bmi": np.round(rng.normal(27, 4.5, n), 1),
            "stage": pd.Categorical(
                rng.choice(["I", "II", "III", "IV"], n, p=[0.22, 0.34, 0.30, 0.14]), categories=["I", "II", "III", "IV"]
            ),
        }
    )
    return df


def true_linear_predictor(df: pd.DataFrame, truth: dict[str, float], age_mean: float | None = None) -> np.ndarray:
    age = df["age"].to_numpy(dtype=float, na_value=np.nan)
    bmi = df["bmi"].to_numpy(dtype=float)
    ch = df["charlson"].to_numpy(dtype=float, na_value=np.nan)
    m_age = np.nanmean(age) if age_mean is None else age_mean
    asa = df["asa"].to_numpy(dtype=float, na_value=np.nan)
    stage = df["stage"].astype(str).to_numpy()
    lp = truth["(Intercept)"] + truth["age"] * (age - m_age) + truth["age^2"] * ((age - m_age) / 10) ** 2
    lp = lp + truth["sex[F]"] * (df["sex"].astype(str).to_numpy() == "F")
    for a in (1, 3, 4):
        lp = lp + truth[f"asa[{a}]"] * (asa == a)
    lp = lp + truth["charlson"] * (ch - np.nanmean(ch)) + truth["bmi"] * (bmi - np.nanmean(bmi))
    for s in ("I", "III", "IV"):
        lp = lp + truth[f"stage[{s}]"] * (stage == s)
    return lp


@pytest.fixture(scope="module")
def binary_data() -> pd.DataFrame:
    df = simulate_cycles(20_000, seed=11)
    rng = np.random.default_rng(12)
    df["y"] = rng.binomial(1, expit(true_linear_predictor(df, TRUTH_BINARY))).astype(float)
    return df


@pytest.fixture(scope="module")
def binary_model(binary_data):
    return fit_casemix_model(binary_data, "y", CASEMIX, "binary")


# --- truth and statsmodels agreement -------------------------------------------------------------------


def test_binary_coefficients_within_3_se_of_truth(binary_model):
    coef = binary_model.coefficients.set_index("term")
    assert set(coef.index) == set(TRUTH_BINARY)  # asa 5 never occurs; nothing else merged or dropped
    z = (coef["estimate"] - pd.Series(TRUTH_BINARY)) / coef["se"]
    assert (z.abs() < 3).all(), z
    assert binary_model.diagnostics.method == "logistic"
    assert binary_model.warning is None
    assert np.allclose(coef["odds_ratio"], np.exp(coef["estimate"]))


def test_continuous_coefficients_within_3_se_of_truth():
    df = simulate_cycles(20_000, seed=21)
    truth = {k: v * 3 for k, v in TRUTH_BINARY.items()}
    truth["(Intercept)"] = 8.0
    rng = np.random.default_rng(22)
    df["los"] = true_linear_predictor(df, truth) + rng.normal(0, 2.0, len(df))
    model = fit_casemix_model(df, "los", CASEMIX, "continuous")
    coef = model.coefficients.set_index("term")
    z = (coef["estimate"] - pd.Series(truth)) / coef["se"]
    assert (z.abs() < 3).all(), z
    assert "odds_ratio" not in coef
    d = model.diagnostics
    assert d.method == "ols"
    assert d.residual_sd == pytest.approx(2.0, rel=0.05)
    assert 0 < d.r_squared < 1
    assert d.calibration_slope == pytest.approx(1, abs=1e-9)
    assert d.calibration_intercept == pytest.approx(0, abs=1e-9)


def _complete_frame(df: pd.DataFrame) -> pd.DataFrame:
    """The same data as plain columns for a formula (asa as a string category)."""
    out = pd.DataFrame(
        {
            "y": df["y"],
            "age": df["age"].to_numpy(dtype=float, na_value=np.nan),
            "sex": df["sex"].astype(object),
            "asa": df["asa"].astype("string").astype(object),
            "charlson": df["charlson"].to_numpy(dtype=float, na_value=np.nan),
            "bmi": df["bmi"],
            "stage": df["stage"].astype(object),
        },
        index=df.index,
    )
    return out


FORMULA = (
    "y ~ age + I(age**2) + C(sex, Treatment('M')) + C(asa, Treatment('2')) + charlson + bmi + C(stage, Treatment('II'))"
)


def test_predictions_equal_statsmodels_formula_glm():
    df = simulate_cycles(5_000, seed=31)
    rng = np.random.default_rng(32)
    df["y"] = rng.binomial(1, expit(true_linear_predictor(df, TRUTH_BINARY))).astype(float)
    df.loc[rng.choice(df.index, 60, replace=False), "age"] = pd.NA
    df.loc[rng.choice(df.index, 30, replace=False), "y"] = np.nan
    df.index = df.index * 3 + 7  # a non-default index must be respected
    model = fit_casemix_model(df, "y", CASEMIX, "binary")

    frame = _complete_frame(df).dropna()
    ref = smf.glm(FORMULA, data=frame, family=sm.families.Binomial()).fit()
    expected = model.predict(df)
    assert expected.index.equals(df.index)
    np.testing.assert_allclose(expected.loc[frame.index], ref.predict(frame), rtol=1e-8, atol=1e-10)
    no_casemix = df["age"].isna().to_numpy()
    assert expected[no_casemix].isna().all()
    assert expected[~no_casemix].notna().all()  # an unrecorded outcome does not stop a prediction
    np.testing.assert_allclose(model.expected.loc[frame.index], ref.fittedvalues, rtol=1e-8, atol=1e-10)
    assert model.expected.drop(frame.index).isna().all()
    assert model.diagnostics.n_used == len(frame)
    # same fitted log-likelihood => same model, whatever the parametrisation
    assert model.diagnostics.brier == pytest.approx(np.mean((ref.fittedvalues - frame["y"]) ** 2), rel=1e-9)


def test_predictions_equal_statsmodels_formula_ols_with_baseline():
    df = simulate_cycles(3_000, seed=41)
    rng = np.random.default_rng(42)
    df["baseline"] = rng.normal(60, 15, len(df))
    df["y"] = 20 + 0.5 * df["baseline"] - 0.1 * df["age"].astype(float) + rng.normal(0, 10, len(df))
    model = fit_casemix_model(df, "y", CASEMIX, "continuous", extra_covariates=["baseline"])
    frame = _complete_frame(df).assign(baseline=df["baseline"])
    ref = smf.ols(FORMULA + " + baseline", data=frame).fit()
    np.testing.assert_allclose(model.predict(df), ref.predict(frame), rtol=1e-9)
    assert "baseline" in set(model.coefficients["term"])


@pytest.mark.parametrize("spread", [10.0, 0.01])
def test_least_squares_from_the_design_blocks_equal_statsmodels_ols(spread, monkeypatch):
    """The continuous models' OLS (vbhc.casemix._fit_ols: Cholesky QR of the design's p x p products in row blocks)
    against statsmodels' OLS (pseudo-inverse of the rows): estimates, standard errors and p-values, also for a
    column nearly constant beside the intercept (condition ~2e5, where the normal equations alone lose 6 digits of
    the standard errors), with blocks smaller than the rows."""
    from vbhc import casemix

    monkeypatch.setattr(casemix, "_OLS_BLOCK", 1000)
    rng = np.random.default_rng(5)
    n = 5000
    a = 1000 + rng.normal(0, spread, n)
    x = np.column_stack([np.ones(n), a, rng.integers(0, 2, n), rng.normal(0, 1, n)])
    y = 3 + 0.5 * a + x[:, 2] - 2 * x[:, 3] + rng.normal(0, 1, n)
    ref = sm.OLS(y, x).fit()
    params, se, p = casemix._fit_ols(y, x)
    np.testing.assert_allclose(params, ref.params, rtol=1e-9)
    np.testing.assert_allclose(se, ref.bse, rtol=1e-9)
    np.testing.assert_allclose(p, ref.pvalues, rtol=1e-8, atol=1e-12)


# --- maximum-likelihood properties and diagnostics -----------------------------------------------------


def test_sum_expected_equals_sum_observed(binary_data, binary_model):
    e = binary_model.expected.sum()
    o = binary_data["y"].sum()
    assert e == pytest.approx(o, rel=1e-6)
    assert binary_model.overall == pytest.approx(binary_data["y"].mean())


def test_calibration_on_fitting_data(binary_model):
    d = binary_model.diagnostics
    assert d.calibration_slope == pytest.approx(1.0, abs=1e-4)
    assert d.calibration_intercept == pytest.approx(0.0, abs=1e-4)
    assert 0.6 < d.c_statistic < 0.9
    assert d.events == pytest.approx(binary_model.expected.sum(), rel=1e-6)
    assert 0 < d.brier < 0.25


def test_calibration_detects_overfitted_predictions(binary_data, binary_model):
    """A slope below 1 for exaggerated predictions shows the diagnostic is not trivially 1."""
    from vbhc.casemix import _calibration

    lp = binary_model.linear_predictor(binary_data).to_numpy()
    y = binary_data["y"].to_numpy()
    citl, slope = _calibration(y, 2 * lp)
    assert slope == pytest.approx(0.5, abs=1e-3)
    # calibration-in-the-large: the intercept that, with 2*lp as offset, makes sum(expected) = sum(observed)
    assert abs(citl) > 0.01
    assert expit(2 * lp + citl).sum() == pytest.approx(y.sum(), rel=1e-8)


def brute_force_auc(y, score):
    pos = [s for s, t in zip(score, y, strict=True) if t == 1]
    neg = [s for s, t in zip(score, y, strict=True) if t == 0]
    total = sum(1.0 if p > q else 0.5 if p == q else 0.0 for p, q in itertools.product(pos, neg))
    return total / (len(pos) * len(neg))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_c_statistic_equals_pairwise_count(seed):
    rng = np.random.default_rng(seed)
    y = rng.binomial(1, 0.3, 60).astype(float)
    score = np.round(rng.normal(size=60) + y, 1)  # rounding makes ties
    assert c_statistic(y, score) == pytest.approx(brute_force_auc(y, score), abs=1e-12)
    u = stats.mannwhitneyu(score[y == 1], score[y == 0]).statistic
    assert c_statistic(y, score) == pytest.approx(u / ((y == 1).sum() * (y == 0).sum()), abs=1e-12)


def test_model_c_statistic_matches_brute_force_on_small_data():
    df = simulate_cycles(200, seed=5)
    df["y"] = np.random.default_rng(6).binomial(1, expit(-1 + 0.05 * (df["age"].astype(float) - 68))).astype(float)
    model = fit_casemix_model(df, "y", CASEMIX[:1], "binary")
    assert model.diagnostics.c_statistic == pytest.approx(brute_force_auc(df["y"], model.expected), abs=1e-12)


# --- design rules --------------------------------------------------------------------------------------


def test_rare_and_event_free_levels_merge_into_most_frequent_reference():
    df = simulate_cycles(4_000, seed=51, asa_p=(0.2, 0.45, 0.27, 0.08, 0.002))
    rng = np.random.default_rng(52)
    df["y"] = rng.binomial(1, 0.2, len(df)).astype(float)
    df.loc[df["stage"] == "IV", "y"] = 0.0  # a level with no events would separate
    asa5 = df.index[(df["asa"] == 5).to_numpy()]
    df.loc[asa5, "y"] = (np.arange(len(asa5)) % 2).astype(float)  # events and non-events: merged for size only
    df.loc[asa5, "stage"] = "II"
    model = fit_casemix_model(df, "y", CASEMIX, "binary")
    d = model.diagnostics
    assert 0 < (df["asa"] == 5).sum() < MIN_LEVEL_N
    assert d.merged_levels["asa"] == ["5"]
    assert d.merged_levels["stage"] == ["IV"]
    terms = set(model.coefficients["term"])
    assert {"asa[1]", "asa[3]", "asa[4]", "stage[I]", "stage[III]"} <= terms
    assert not {"asa[2]", "asa[5]", "stage[II]", "stage[IV]"} & terms
    assert d.method == "logistic"
    # merged levels predict like the reference
    probe = df.iloc[[0, 0]].copy()
    probe["asa"] = pd.array([2, 5], dtype="Int64")
    p = model.predict(probe)
    assert p.iloc[0] == pytest.approx(p.iloc[1])


def test_unseen_level_is_predicted_as_reference_and_absent_column_is_an_error(binary_data, binary_model):
    probe = binary_data.iloc[[0, 0]].copy()
    probe["asa"] = pd.array([2, 5], dtype="Int64")
    p = binary_model.predict(probe)
    assert p.iloc[0] == pytest.approx(p.iloc[1])
    with pytest.raises(KeyError, match="bmi"):
        binary_model.predict(binary_data.drop(columns="bmi"))


def test_missing_exclude_counts_per_variable():
    df = simulate_cycles(2_000, seed=61)
    df["y"] = np.random.default_rng(62).binomial(1, 0.25, len(df)).astype(float)
    age_missing = df.index[:12]
    asa_missing = df.index[9:16]  # 3 cycles miss both age and asa
    outcome_missing = df.index[10:50]  # overlaps both: those count as outcome not recorded only
    df.loc[age_missing, "age"] = pd.NA
    df.loc[asa_missing, "asa"] = pd.NA
    df.loc[outcome_missing, "y"] = np.nan
    model = fit_casemix_model(df, "y", CASEMIX, "binary")
    d = model.diagnostics
    assert {str(k): v for k, v in d.excluded_by_reason.items()} == {
        "outcome not recorded": 40,
        "age missing": 10,
        "asa missing": 1,
    }
    assert ExclusionReason("missing", "age") in d.excluded_by_reason and OUTCOME_NOT_RECORDED in d.excluded_by_reason
    # age: rows 0-9 (10-11 have no outcome); asa: rows 9-15 -> only row 9 has an outcome
    assert d.n_excluded == 40 + 10
    assert d.n_used == 2_000 - 50
    assert model.expected.iloc[:50].isna().all() and model.expected.iloc[50:].notna().all()
    pred = model.predict(df)
    assert pred.iloc[:16].isna().all()  # missing case-mix: no prediction
    assert pred.iloc[16:].notna().all()  # outcome missing does not stop a prediction


def test_missing_indicator_rule_keeps_cycles():
    df = simulate_cycles(3_000, seed=71)
    rng = np.random.default_rng(72)
    df["y"] = rng.binomial(1, 0.3, len(df)).astype(float)
    df.loc[df.index[:100], "bmi"] = np.nan
    df.loc[df.index[100:150], "stage"] = np.nan
    df.loc[df.index[150:155], "age"] = pd.NA  # too few for an indicator: plain mean imputation
    model = fit_casemix_model(df, "y", CASEMIX, "binary", missing="indicator")
    d = model.diagnostics
    assert d.n_used == 3_000 and d.excluded_by_reason == {}
    terms = set(model.coefficients["term"])
    assert "bmi:missing" in terms
    assert "stage[(missing)]" in terms
    assert "age:missing" not in terms
    assert model.predict(df).notna().all()
    # a cycle with bmi missing is scored as mean bmi plus the indicator
    probe = df.iloc[[200, 200]].copy()
    probe["bmi"] = [np.nan, model.terms[[t.variable for t in model.terms].index("bmi")].center]
    lp = model.linear_predictor(probe)
    beta = model.coefficients.set_index("term")["estimate"]
    assert lp.iloc[0] - lp.iloc[1] == pytest.approx(beta["bmi:missing"])


def test_default_missing_rule_is_exclude():
    df = simulate_cycles(500, seed=73)
    df["y"] = np.random.default_rng(74).binomial(1, 0.3, len(df)).astype(float)
    df.loc[df.index[:5], "bmi"] = np.nan
    assert fit_casemix_model(df, "y", CASEMIX, "binary").diagnostics.excluded_by_reason == {
        ExclusionReason("missing", "bmi"): 5
    }


# --- edge cases ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [0.0, 1.0])
def test_zero_events_or_only_events_predicts_overall_rate(value):
    df = simulate_cycles(300, seed=81)
    df["y"] = value
    model = fit_casemix_model(df, "y", CASEMIX, "binary")
    assert model.diagnostics.method == "constant"
    assert "events" in model.warning
    assert (model.predict(df) == value).all()
    assert model.expected.sum() == df["y"].sum()
    assert casemix_contributions(model, df, df["hospital"]).empty  # nothing to attribute


def test_single_level_variable_is_dropped():
    df = simulate_cycles(1_000, seed=91)
    df["sex"] = pd.Categorical(["F"] * len(df), categories=["F", "M"])
    df["charlson"] = pd.array([2] * len(df), dtype="Int64")
    df["y"] = np.random.default_rng(92).binomial(1, 0.3, len(df)).astype(float)
    model = fit_casemix_model(df, "y", CASEMIX, "binary")
    assert model.diagnostics.dropped["sex"] == "single level"
    assert model.diagnostics.dropped["charlson"] == "single value"
    assert "sex" not in model.variables and "charlson" not in model.variables
    assert model.predict(df).notna().all()


def test_all_missing_variable_is_dropped_not_excluding_everyone():
    df = simulate_cycles(500, seed=93)
    df["bmi"] = np.nan
    df["y"] = np.random.default_rng(94).binomial(1, 0.3, len(df)).astype(float)
    model = fit_casemix_model(df, "y", CASEMIX, "binary")
    assert model.diagnostics.dropped["bmi"] == "no values recorded"
    assert model.diagnostics.n_used == 500


@pytest.mark.parametrize("n", [0, 1, 3, 8, 25])
@pytest.mark.parametrize("kind", ["binary", "continuous"])
def test_tiny_data_does_not_crash(n, kind):
    df = simulate_cycles(max(n, 1), seed=101).iloc[:n]
    df["y"] = (np.arange(n) % 2).astype(float)
    model = fit_casemix_model(df, "y", CASEMIX, kind)
    pred = model.predict(df)
    assert len(pred) == n
    if n >= 2:
        assert pred.notna().all()
        assert model.expected.sum() == pytest.approx(df["y"].sum(), rel=1e-4)
    casemix_contributions(model, df, df["hospital"])


def test_no_recorded_outcome():
    df = simulate_cycles(50, seed=102)
    df["y"] = np.nan
    model = fit_casemix_model(df, "y", CASEMIX, "binary")
    assert model.diagnostics.n_used == 0
    assert model.diagnostics.excluded_by_reason == {OUTCOME_NOT_RECORDED: 50}
    assert model.warning


def test_perfect_separation_falls_back_to_ridge():
    df = simulate_cycles(2_000, seed=111)
    df["y"] = (df["bmi"] > 30).astype(float)
    model = fit_casemix_model(df, "y", CASEMIX, "binary")
    d = model.diagnostics
    assert d.method == "ridge"
    assert "separation" in d.warning
    assert np.isfinite(model.coefficients["estimate"]).all()
    assert d.c_statistic > 0.99
    # the unpenalised intercept keeps sum(E) = sum(O) up to the optimiser's tolerance
    assert model.expected.sum() == pytest.approx(df["y"].sum(), rel=1e-3)


def test_quasi_complete_separation_falls_back_to_ridge():
    """Outcome determined by bmi except at the boundary value: the MLE diverges without a warning of mu == y."""
    df = simulate_cycles(3_000, seed=112)
    df["bmi"] = df["bmi"].round(0)
    rng = np.random.default_rng(113)
    df["y"] = np.where(df["bmi"] > 30, 1.0, 0.0)
    at_boundary = df["bmi"] == 30
    assert at_boundary.sum() > 50
    df.loc[at_boundary, "y"] = rng.binomial(1, 0.5, at_boundary.sum()).astype(float)
    model = fit_casemix_model(df, "y", CASEMIX, "binary")
    assert model.diagnostics.method == "ridge"
    assert "separation" in model.warning
    assert model.predict(df).between(0, 1).all()
    assert np.isfinite(model.coefficients["se"]).all()


def test_strong_but_not_separated_predictor_stays_maximum_likelihood():
    df = simulate_cycles(3_000, seed=114)
    rng = np.random.default_rng(115)
    df["y"] = np.where(df["bmi"] > 35, 1.0, rng.binomial(1, 0.05, len(df)).astype(float))
    model = fit_casemix_model(df, "y", CASEMIX, "binary")
    assert model.diagnostics.method == "logistic"
    assert model.warning is None


def test_binary_outcome_must_be_zero_one():
    df = simulate_cycles(100, seed=120)
    df["y"] = 2.0
    with pytest.raises(ValueError, match="0/1"):
        fit_casemix_model(df, "y", CASEMIX, "binary")


def test_works_with_catalog_definition():
    cond = default_catalog().condition("colorectal_cancer")
    df = simulate_cycles(1_000, seed=121)
    df["y"] = np.random.default_rng(122).binomial(1, 0.2, len(df)).astype(float)
    model = fit_casemix_model(df, "y", cond.casemix, "binary")
    assert set(model.variables) <= set(cond.casemix_names)
    assert model.diagnostics.method == "logistic"


# --- contributions -------------------------------------------------------------------------------------


def _age_only_difference(seed: int, n: int = 4_000) -> pd.DataFrame:
    """Unit B is a sample; unit A is the same patients 15 years older (so they differ only in age)."""
    b = simulate_cycles(n, seed=seed)
    b = b[b["age"] <= 80].reset_index(drop=True)
    a = b.copy()
    a["age"] = a["age"] + 15
    b["unit"], a["unit"] = "B", "A"
    return pd.concat([b, a], ignore_index=True)


def test_contributions_attribute_age_gap_to_age_linear_model():
    df = _age_only_difference(131)
    rng = np.random.default_rng(132)
    df["y"] = 5 + 0.1 * df["age"].astype(float) + 2.0 * (df["sex"] == "M") + rng.normal(0, 1, len(df))
    model = fit_casemix_model(df, "y", CASEMIX, "continuous")
    out = casemix_contributions(model, df, df["unit"]).set_index(["unit", "variable"])
    for u in ("A", "B"):
        assert out.loc[(u, "age"), "share_of_gap"] == pytest.approx(1.0, abs=1e-9)
        others = out.loc[u].drop(index="age")
        assert np.allclose(others["contribution"], 0, atol=1e-9)
        assert out.loc[u, "contribution"].sum() == pytest.approx(out.loc[(u, "age"), "gap"], abs=1e-9)
    assert out.loc[("A", "age"), "gap"] > 0 > out.loc[("B", "age"), "gap"]


def test_logistic_contributions_of_two_halves_of_one_population_with_correlated_risk_factors_are_small():
    """Two random halves of one population have the same case mix: no variable explains much of either's small
    gap. With ASA and Charlson rising with age (as in the demo), swapping one variable for the population's broke
    its link with the others and gave both halves +1.3 points for age, +1.2 for ASA, +0.7 for Charlson and -3.3
    for the remainder, for gaps of -0.18 and +0.18 points; relative to the same swap for all cycles, each is
    within 0.1 point."""
    df = simulate_cycles(20_000, seed=151)
    rng = np.random.default_rng(152)
    z = (df["age"].to_numpy(dtype=float) - 68) / 11
    df["asa"] = pd.array(np.clip(np.round(2.1 + 0.8 * z + rng.normal(0, 0.5, len(df))), 1, 4).astype(int), "Int64")
    df["charlson"] = pd.array(rng.poisson(np.exp(0.2 + 0.6 * z)), dtype="Int64")
    df["y"] = rng.binomial(1, expit(true_linear_predictor(df, TRUTH_BINARY))).astype(float)
    df["unit"] = np.where(rng.random(len(df)) < 0.5, "A", "B")
    model = fit_casemix_model(df, "y", CASEMIX, "binary")
    out = casemix_contributions(model, df, df["unit"])
    assert out["gap"].abs().max() < 0.003
    assert out["contribution"].abs().max() < 0.002, out.pivot(index="variable", columns="unit", values="contribution")
    for _, unit in out.groupby("unit"):
        assert unit["contribution"].sum() == pytest.approx(unit["gap"].iloc[0], abs=1e-12)  # still adds up


def test_contributions_attribute_age_gap_to_age_logistic_model():
    df = _age_only_difference(141)
    truth = dict(TRUTH_BINARY, **{"age": 0.06})
    df["y"] = np.random.default_rng(142).binomial(1, expit(true_linear_predictor(df, truth))).astype(float)
    model = fit_casemix_model(df, "y", CASEMIX, "binary")
    out = casemix_contributions(model, df, df["unit"])
    a = out[out["unit"] == "A"].set_index("variable")
    gap = a["gap"].iloc[0]
    assert gap > 0.02
    assert a.loc["age", "share_of_gap"] == pytest.approx(1.0, abs=0.05)
    assert (a.drop(index="age")["contribution"].abs() < 0.05 * gap).all()
    assert a["contribution"].sum() == pytest.approx(gap, abs=1e-12)  # incl. the non-additive remainder
    assert abs(a.loc[REMAINDER, "contribution"]) < 0.05 * gap
    assert a["n"].iloc[0] == (df["unit"] == "A").sum()
    assert a["expected"].iloc[0] == pytest.approx(model.expected[df["unit"] == "A"].mean())


# --- invariance ----------------------------------------------------------------------------------------

_SMALL = simulate_cycles(400, seed=151, asa_p=(0.2, 0.45, 0.27, 0.08, 0.01))
_SMALL["y"] = np.random.default_rng(152).binomial(1, expit(true_linear_predictor(_SMALL, TRUTH_BINARY))).astype(float)
_SMALL.loc[_SMALL.index[:7], "bmi"] = np.nan
_SMALL_MODELS = {
    rule: fit_casemix_model(_SMALL, "y", CASEMIX, "binary", missing=rule) for rule in ("exclude", "indicator")
}


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(perm=st.permutations(list(range(len(_SMALL)))), rule=st.sampled_from(["exclude", "indicator"]))
def test_permuting_rows_changes_no_prediction(perm, rule):
    shuffled = _SMALL.iloc[perm]
    model = fit_casemix_model(shuffled, "y", CASEMIX, "binary", missing=rule)
    base = _SMALL_MODELS[rule]
    pd.testing.assert_series_equal(
        model.predict(_SMALL), base.predict(_SMALL), check_exact=False, rtol=1e-7, atol=1e-10
    )
    pd.testing.assert_series_equal(model.expected.loc[_SMALL.index], base.expected, rtol=1e-7, atol=1e-10)
    assert model.diagnostics.merged_levels == base.diagnostics.merged_levels


def test_shares_of_the_gap_read_as_shares_only_when_the_variables_pull_the_gaps_way():
    """The demo's colorectal mortality at the own hospital: contributions -0.7, 0.1, 0.2, 0.0, 0.5, 0.0 and -0.3
    points for a gap of -0.16 points gave shares of 440% and -330%: not shares."""
    assert not shares_of_gap_read_as_shares([-0.007, 0.001, 0.002, 0.0, 0.005, 0.0, -0.003], -0.0016)
    assert shares_of_gap_read_as_shares([0.01, 0.02, 0.0, np.nan], 0.03)
    assert shares_of_gap_read_as_shares([-0.01, -0.02, 0.001], -0.029)  # opposite 0.001: 3% of the gap
    assert not shares_of_gap_read_as_shares([-0.01, -0.02, 0.002], -0.028)  # 7%
    assert not shares_of_gap_read_as_shares([0.0, 0.0], 0.0)  # no gap: nothing to share
    assert not shares_of_gap_read_as_shares([], 0.01)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(-1, 1), min_size=1, max_size=8))
def test_shares_that_read_as_shares_lie_between_minus_5_and_105_percent(contributions):
    """Contributions that add up to the gap (as casemix_contributions' do, with the remainder row): where they read
    as shares, each lies within [-5%, 105%]."""
    gap = float(np.sum(contributions))
    if shares_of_gap_read_as_shares(contributions, gap):
        shares = np.asarray(contributions) / gap
        assert shares.min() >= -0.05 - 1e-9 and shares.max() <= 1.05 + 1e-9


def test_a_design_too_near_collinear_for_its_gram_matrix_is_fitted_as_statsmodels_ols(monkeypatch):
    """Where the Cholesky factor of X'X does not exist numerically, the continuous model falls back to statsmodels'
    OLS (the rows' pseudo-inverse) instead of a failed fit."""
    from vbhc import casemix

    def no_factor(y, x):
        raise np.linalg.LinAlgError("not positive definite")

    monkeypatch.setattr(casemix, "_fit_ols", no_factor)
    df = simulate_cycles(2_000, seed=43)
    rng = np.random.default_rng(44)
    df["y"] = 20 - 0.1 * df["age"].astype(float) + rng.normal(0, 10, len(df))
    model = fit_casemix_model(df, "y", CASEMIX, "continuous")
    assert model.diagnostics.method == "ols" and model.warning is None
    ref = smf.ols(FORMULA, data=_complete_frame(df)).fit()
    np.testing.assert_allclose(model.predict(df), ref.predict(_complete_frame(df)), rtol=1e-9)
