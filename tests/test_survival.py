"""Survival indicators against independent references: Kaplan-Meier by hand (product limit, Greenwood with the
log(-log) interval) and statsmodels' SurvfuncRight; the Cox model's coefficients against statsmodels PHReg and
its expected deaths against the Breslow estimator written out here with PHReg's coefficients (statsmodels'
own baseline_cumulative_hazard is the value just before each event time, one step behind the usual Breslow
estimator, so it is not used); the SMR's exact Poisson interval by the chi-squared formula; and on a small
generated registry, that the planted survival outlier is flagged and the case-mix-only unit is not."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from statsmodels.duration.hazard_regression import PHReg
from statsmodels.duration.survfunc import SurvfuncRight

from vbhc import meeting, survival
from vbhc.catalog import DAYS_PER_YEAR, CaseMixVariable, default_catalog
from vbhc.demo import AS_OF, CASEMIX_ONLY, FOLLOW_UP_FILE, PLANTED_SURVIVAL, generate_demo
from vbhc.external import own_summary
from vbhc.i18n import fmt_ratio
from vbhc.indicators import (
    ConditionData,
    SurvivalCurves,
    compute_indicators,
    funnel_curve,
    indicator_over_time,
    survival_curves,
)
from vbhc.verdict import verdict

# hand-worked: six patients, deaths at days 1, 3, 4 and 6, censored at 2 and 5
HAND_TIME = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
HAND_EVENT = np.array([1.0, 0.0, 1.0, 1.0, 0.0, 1.0])
#: S(t) by the product limit: 5/6, then x 3/4 at day 3, x 2/3 at day 4, x 0 at day 6
HAND_KM = {0.5: 1.0, 1.0: 5 / 6, 2.5: 5 / 6, 3.0: 5 / 6 * 3 / 4, 4.0: 5 / 6 * 3 / 4 * 2 / 3, 5.5: 5 / 6 * 3 / 4 * 2 / 3}
#: Greenwood sums d / (n (n - d)) at days 1, 3 and 4 (6 at risk, then 4, then 3)
HAND_GREENWOOD = {3.0: 1 / (6 * 5) + 1 / (4 * 3), 4.0: 1 / (6 * 5) + 1 / (4 * 3) + 1 / (3 * 2)}


def _cox_case(seed: int = 3, n: int = 40):
    """Continuous times (no ties, so Efron = Breslow), two covariates, random censoring."""
    rng = np.random.default_rng(seed)
    x = pd.DataFrame({"age": rng.normal(70, 8, n), "asa": rng.integers(1, 4, n).astype(float)})
    lp = 0.04 * (x["age"] - 70) + 0.5 * (x["asa"] - 2)
    t = rng.exponential(400 / np.exp(lp.to_numpy())) + rng.random(n) * 1e-3
    c = rng.uniform(50, 900, n)
    return np.minimum(t, c), (t <= c).astype(float), x


def _breslow_expected(time, event, x, beta):
    """E_i = sum over deaths j with t_j <= t_i of exp(x_i b) / sum_{k: t_k >= t_j} exp(x_k b) (Breslow)."""
    risk = np.exp(x @ beta)
    h = np.array([event[j] / risk[time >= time[j]].sum() for j in range(len(time))])
    return np.array([h[time <= ti].sum() for ti in time]) * risk


def test_kaplan_meier_equals_the_hand_worked_case_and_statsmodels():
    for at, want in HAND_KM.items():
        assert survival.kaplan_meier(HAND_TIME, HAND_EVENT, at)[0] == pytest.approx(want, abs=1e-12)
    z = stats.norm.ppf(0.975)
    for at, greenwood in HAND_GREENWOOD.items():
        s = HAND_KM[at]
        half = z * np.sqrt(greenwood) / abs(np.log(s))
        _, lower, upper = survival.kaplan_meier(HAND_TIME, HAND_EVENT, at)
        assert lower == pytest.approx(s ** np.exp(half), abs=1e-8)
        assert upper == pytest.approx(s ** np.exp(-half), abs=1e-8)
    time, event, _ = _cox_case(seed=11, n=60)
    ref = SurvfuncRight(time, event)
    for at in (100.0, 250.0, 600.0):
        pos = np.searchsorted(ref.surv_times, at, side="right") - 1
        assert survival.kaplan_meier(time, event, at)[0] == pytest.approx(ref.surv_prob[pos], abs=1e-8)


def test_cox_coefficients_and_expected_deaths_equal_statsmodels_phreg():
    time, event, x = _cox_case()
    model = survival.fit_cox(time, event, x)
    ref = PHReg(time, x.to_numpy(), status=event, ties="efron").fit()
    np.testing.assert_allclose(model.coefficients.to_numpy(), ref.params, atol=1e-8)
    expected = model.expected(time, x)
    np.testing.assert_allclose(expected, _breslow_expected(time, event, x.to_numpy(), ref.params), atol=1e-8)
    # Breslow's baseline makes the expected deaths add up to the observed ones over the whole population
    assert expected.sum() == pytest.approx(event.sum(), abs=1e-8)
    assert list(model.ph_test["variable"]) == ["age", "asa"]
    assert model.ph_test["p"].between(0, 1).all()


def test_tied_days_fit_as_statsmodels_efron_and_expected_is_breslow():
    """Registry follow-up is in whole days, so deaths share days: the Efron fit equals PHReg's, and the
    baseline over tied deaths is Breslow's (all d_j deaths of day j over one risk set)."""
    time, event, x = _cox_case(seed=8, n=80)
    time = np.ceil(time / 20.0)  # about 45 distinct follow-up times for 80 patients
    assert len(np.unique(time[event == 1])) < event.sum()
    model = survival.fit_cox(time, event, x)
    ref = PHReg(time, x.to_numpy(), status=event, ties="efron").fit()
    np.testing.assert_allclose(model.coefficients.to_numpy(), ref.params, atol=1e-8)
    breslow = _breslow_expected(time, event, x.to_numpy(), ref.params)
    np.testing.assert_allclose(model.expected(time, x), breslow, atol=1e-8)


@pytest.mark.parametrize("days", [None, 1.0, 30.0])
def test_the_numpy_efron_likelihood_fit_and_schoenfeld_residuals_equal_statsmodels_phreg(days, monkeypatch):
    """The Cox fit's own partial likelihood (survival._Efron, no loop over the times) against PHReg's, untied and on
    whole days or months (many deaths a day): log likelihood, score and Hessian at a point away from the optimum,
    the fitted coefficients and their covariance, and the Schoenfeld residuals of the deaths in order of time. Its
    row blocks are made small, so a day's rows span two blocks."""
    monkeypatch.setattr(survival._Efron, "BLOCK", 97)
    rng = np.random.default_rng(21)
    n = 3000
    x = np.column_stack(
        [rng.normal(0, 10, n), rng.integers(0, 2, n), rng.integers(0, 4, n), rng.normal(25, 4, n)]
    ).astype(float)
    t = rng.exponential(400 / np.exp(x @ np.array([0.03, -0.4, 0.3, 0.05])))
    c = rng.uniform(20, 900, n)
    time, event = np.minimum(t, c), (t <= c).astype(float)
    if days is not None:
        time = np.ceil(time / days)
        assert len(np.unique(time[event == 1])) < event.sum() / 2 or days == 1.0
    ref_model = PHReg(time, x, status=event, ties="efron")
    efron = survival._Efron(time, event, x)
    b = np.array([0.02, -0.3, 0.1, 0.2])  # 0.2 per unit of a covariate near 25: exp would overflow unshifted
    assert efron.loglike(b) == pytest.approx(ref_model.loglike(b), rel=1e-12)
    np.testing.assert_allclose(
        efron.score(b), ref_model.score(b), rtol=1e-9, atol=1e-9 * np.abs(ref_model.score(b)).max()
    )
    np.testing.assert_allclose(efron.hessian(b), ref_model.hessian(b), rtol=1e-10)
    ref = ref_model.fit()
    params, cov, model = survival._phreg(time, event, x)
    np.testing.assert_allclose(params, ref.params, rtol=1e-8)
    np.testing.assert_allclose(cov, ref.cov_params(), rtol=1e-8)
    dead = np.flatnonzero(event == 1)
    dead = dead[np.argsort(time[dead], kind="stable")]
    np.testing.assert_allclose(model.schoenfeld_residuals(params), ref.schoenfeld_residuals[dead], atol=1e-9)


def _naive_concordance(time, risk, event):
    """Harrell's C pair by pair: a death and anyone followed longer (or censored on the day of that death)."""
    correct = tied = pairs = 0
    for i in np.flatnonzero(event == 1):
        for j in range(len(time)):
            if time[j] > time[i] or (time[j] == time[i] and event[j] == 0):
                pairs += 1
                correct += risk[i] > risk[j]
                tied += risk[i] == risk[j]
    return (correct + tied / 2) / pairs


def test_concordance_counts_the_comparable_pairs():
    rng = np.random.default_rng(4)
    for _ in range(30):
        n = int(rng.integers(3, 40))
        time = rng.integers(0, 8, n).astype(float)  # tied days and tied risks on purpose
        event = (rng.random(n) < 0.6).astype(float)
        event[0] = 1.0
        risk = rng.integers(0, 5, n).astype(float)
        if (time[event == 1].min() < time).any():
            assert survival.concordance_index(time, risk, event) == pytest.approx(
                _naive_concordance(time, risk, event), abs=1e-12
            )
    time, event, x = _cox_case()
    model = survival.fit_cox(time, event, x)
    risk = np.exp(x.to_numpy() @ model.coefficients.to_numpy())
    assert model.concordance == pytest.approx(_naive_concordance(time, risk, event), abs=1e-12)


def test_schoenfeld_test_flags_a_hazard_ratio_that_changes_over_time():
    """Grambsch-Therneau on PHReg's Schoenfeld residuals: the rank-time statistic by hand, and a covariate whose
    effect reverses half-way is flagged while one with a constant effect is not."""
    rng = np.random.default_rng(7)
    n = 1500
    x = pd.DataFrame({"early": rng.integers(0, 2, n).astype(float), "steady": rng.integers(0, 2, n).astype(float)})
    # piecewise exponential: "early" triples the hazard before day 200 and thirds it after, "steady" doubles it
    rate = np.exp(np.log(2) * x["steady"].to_numpy()) / 500
    first = rng.exponential(1 / (rate * np.exp(np.log(3) * x["early"].to_numpy())))
    later = 200 + rng.exponential(1 / (rate * np.exp(-np.log(3) * x["early"].to_numpy())))
    t = np.where(first < 200, first, later)
    c = rng.uniform(100, 1500, n)
    time, event = np.minimum(t, c), (t <= c).astype(float)
    model = survival.fit_cox(time, event, x)
    p = model.ph_test.set_index("variable")["p"]
    assert p["early"] < 1e-6 and p["steady"] > 0.01
    ref = PHReg(time, x.to_numpy(), status=event, ties="efron").fit()
    dead = np.flatnonzero(event == 1)
    dead = dead[np.argsort(time[dead])]
    d = len(dead)
    scaled = d * ref.schoenfeld_residuals[dead] @ ref.cov_params()
    g = np.arange(d) - (d - 1) / 2
    want = (g @ scaled) ** 2 / (d * np.diag(ref.cov_params()) * (g @ g))
    np.testing.assert_allclose(model.ph_test["statistic"], want, rtol=1e-6)
    np.testing.assert_allclose(model.ph_test["p"], stats.chi2.sf(want, 1), rtol=1e-5)


def test_a_collinear_design_falls_back_to_ridge_and_then_to_no_adjustment(monkeypatch):
    time, event, x = _cox_case(seed=6, n=50)
    twin = x.assign(age_months=x["age"] * 12)  # no unique maximum: PHReg cannot be fitted plainly
    model = survival.fit_cox(time, event, twin)
    assert model.fit_note == "ridge" and list(model.coefficients.index) == ["age", "asa", "age_months"]
    assert np.isfinite(model.coefficients).all() and np.isfinite(model.ph_test["p"]).all()
    # the penalised fit on standardised covariates splits age's effect between the twins, and its Breslow
    # baseline still makes the expected deaths add up to the observed ones
    per_sd = model.coefficients * twin.std()
    assert per_sd["age"] == pytest.approx(per_sd["age_months"], rel=1e-6)
    assert model.expected(time, twin).sum() == pytest.approx(event.sum(), abs=1e-8)
    # separation (every patient with asa 3 dies first): the plain fit diverges, the ridge fit does not
    sep_time = np.arange(1.0, 31.0)
    sep = pd.DataFrame({"asa": np.where(sep_time <= 10, 3.0, 1.0), "age": np.linspace(60, 80, 30)})
    sep_event = np.where(sep_time <= 10, 1.0, (sep_time % 3 == 0).astype(float))
    assert survival.fit_cox(sep_time, sep_event, sep).fit_note == "ridge"
    none = survival.fit_cox(time, np.zeros_like(event), x)
    assert none.coefficients.empty and np.all(none.expected(time, x) == 0)
    # when even the ridge fit fails, the model is the Nelson-Aalen hazard of everyone (no case-mix adjustment)
    monkeypatch.setattr(survival, "_phreg_ridge", lambda *args: None)
    plain = survival.fit_cox(time, event, twin)
    assert plain.fit_note == "unadjusted" and plain.coefficients.empty and plain.ph_test.empty
    nelson_aalen = survival.fit_cox(time, event, pd.DataFrame(index=twin.index))
    np.testing.assert_allclose(plain.expected(time, twin), nelson_aalen.expected(time, twin), atol=1e-12)


def test_without_covariates_expected_is_the_nelson_aalen_hazard():
    model = survival.fit_cox(HAND_TIME, HAND_EVENT, pd.DataFrame(index=range(6)))
    # Nelson-Aalen: 1/6 at day 1, + 1/4 at day 3, + 1/3 at day 4, + 1/1 at day 6
    want = np.cumsum([1 / 6, 0, 1 / 4, 1 / 3, 0, 1])
    np.testing.assert_allclose(model.expected(HAND_TIME, pd.DataFrame(index=range(6))), want, atol=1e-12)


def test_follow_up_censors_at_the_data_end_the_horizon_and_loss_to_follow_up():
    cycles = pd.DataFrame(
        {
            "index_date": pd.to_datetime(["2024-01-01"] * 6),
            "death": [1, 1, 1, 0, np.nan, 1],
            "death_date": pd.to_datetime(["2024-03-01", "2026-08-01", "2025-06-01", "2024-07-01", None, "2023-12-01"]),
        }
    )
    fu = survival.follow_up(cycles, "death", pd.Timestamp("2026-06-30"), horizon_days=365.25)
    # died at 60 days; died after the data end (censored there, then at the horizon); died after the horizon;
    # lost to follow-up at 182 days; no record; a date before the index date
    np.testing.assert_array_equal(fu["time"].to_numpy()[:4], [60.0, 365.25, 365.25, 182.0])
    np.testing.assert_array_equal(fu["event"].to_numpy()[:4], [1.0, 0.0, 0.0, 0.0])
    assert fu.iloc[4:].isna().all().all()
    no_horizon = survival.follow_up(cycles, "death", pd.Timestamp("2026-06-30"))
    assert no_horizon["time"].iloc[1] == (pd.Timestamp("2026-06-30") - pd.Timestamp("2024-01-01")).days


def test_smr_interval_is_the_exact_poisson_interval():
    time, event, x = _cox_case(seed=5, n=60)
    unit = np.where(np.arange(60) % 3 == 0, "A", np.where(np.arange(60) % 3 == 1, "B", "C"))
    start = pd.Timestamp("2022-01-01")
    cycles = x.assign(
        cycle_id=[f"C{i}" for i in range(60)],
        index_date=start,
        death=event,
        death_date=start + pd.to_timedelta(np.floor(time), unit="D"),
    )
    casemix = [CaseMixVariable("age", "integer"), CaseMixVariable("asa", "integer")]
    table, per_cycle, _ = survival.survival_table(
        cycles, unit, outcome="death", casemix=casemix, as_of=pd.Timestamp("2030-01-01"), horizon_years=5
    )
    o, e = table["observed"].to_numpy(), table["expected"].to_numpy()
    np.testing.assert_allclose(table["oe"], o / e, rtol=1e-12)
    np.testing.assert_allclose(table["oe_lower"], stats.chi2.ppf(0.025, 2 * o) / 2 / e, rtol=1e-10)
    np.testing.assert_allclose(table["oe_upper"], stats.chi2.ppf(0.975, 2 * o + 2) / 2 / e, rtol=1e-10)
    assert o.sum() == event.sum() and e.sum() == pytest.approx(o.sum(), abs=1e-6)
    # adjusted survival is the overall survival to the power SMR, its interval likewise
    np.testing.assert_allclose(table["adjusted_value"], table["target"] ** table["oe"], rtol=1e-12)
    np.testing.assert_allclose(table["adjusted_lower"], table["target"] ** table["oe_upper"], rtol=1e-12)
    assert per_cycle["expected"].sum() == pytest.approx(e.sum(), abs=1e-9)


@pytest.fixture(scope="module")
def registry_frames(tmp_path_factory):
    """A small generated registry (colorectal cancer with its vital status), read from the files."""
    out = tmp_path_factory.mktemp("survival_demo")
    result = generate_demo(out, cycles=12_000)
    assert result.follow_up == out / FOLLOW_UP_FILE
    cycles = pd.read_csv(out / "care_cycles.csv", dtype={"cycle_id": str})
    outcomes = pd.read_csv(out / "clinical_outcomes.csv", dtype={"cycle_id": str})
    follow = pd.read_csv(result.follow_up, dtype={"cycle_id": str})
    return cycles, outcomes, follow


def test_vital_status_agrees_with_the_recorded_mortality(registry_frames):
    cycles, outcomes, follow = registry_frames
    cancers = {c.id for c in default_catalog().conditions.values() if c.id.endswith("_cancer")}
    assert set(follow["cycle_id"]) == set(cycles.loc[cycles["condition"].isin(cancers), "cycle_id"])
    dead = outcomes[outcomes["outcome"].str.startswith("mortality") & (outcomes["value"] == 1)]
    dead = dead[dead["cycle_id"].isin(follow["cycle_id"])]
    assert len(dead) > 10
    first = dead.groupby("cycle_id")["date"].min()
    vital = follow.set_index("cycle_id")
    assert (vital.loc[first.index, "value"] == 1).all()
    assert (vital.loc[first.index, "date"] == first).all()
    assert (pd.to_datetime(follow["date"]) <= pd.Timestamp(AS_OF)).all()


def test_planted_survival_outlier_is_found_and_the_casemix_only_unit_is_not(registry_frames):
    cycles, _, follow = registry_frames
    cond = default_catalog().condition("colorectal_cancer")
    part = cycles[cycles["condition"] == cond.id].merge(
        follow.rename(columns={"value": "death", "date": "death_date"})[["cycle_id", "death", "death_date"]],
        on="cycle_id",
        how="left",
    )
    part["index_date"] = pd.to_datetime(part["index_date"])
    part["death_date"] = pd.to_datetime(part["death_date"])
    empty = pd.DataFrame(columns=["cycle_id", "instrument", "timepoint", "scale", "score", "completed_date"])
    data = ConditionData(cond, None, part, empty, pd.DataFrame(columns=["cycle_id", "cost"]), pd.Timestamp(AS_OF))
    result = compute_indicators(data, "hospital", indicators=["survival_1y", "survival_5y"])
    table = result.table.set_index(["indicator", "unit"])
    outlier = next(p.hospital for p in PLANTED_SURVIVAL if p.condition == cond.id)
    row = table.loc[("survival_5y", outlier)]
    assert row["kind"] == "survival" and row["assessment_998"] == "worse"
    assert row["oe_lower"] > 1 and row["adjusted_value"] < row["lower_998"]
    mix = table.loc[("survival_5y", CASEMIX_ONLY.hospital)]
    assert mix["crude_value"] < mix["target"]  # older, sicker patients: lower crude survival ...
    assert mix["assessment_95"] == "as expected" and mix["oe_lower"] < 1 < mix["oe_upper"]  # ... not worse care
    said = verdict(row)  # what the pages and reports say: more deaths than expected (SMR above 1), at 99.8 %
    assert said.category == "worse" and said.severity == "998" and said.against == "deaths"
    assert said.value == row["observed"] and said.expected == pytest.approx(row["expected"])
    assert (said.ci_lower, said.ci_upper) == (row["oe_lower"], row["oe_upper"]) and said.ci_lower > 1
    assert f"(SMR {fmt_ratio(row['observed'] / row['expected'], 'en')})" in said.sentence("en")
    others = table.xs("survival_5y").drop(index=[outlier])
    assert (others["assessment_998"] != "worse").all()
    assert np.isfinite(table["ph_p_value"]).all()
    # national summary figures carry n and events, not follow-up: survival is named as not exchanged
    shared = own_summary(result)
    assert {"survival_1y", "survival_5y"} <= set(shared.not_carried) and shared.frame.empty
    # the department table reuses the hospital table's Cox fit (the unit level does not enter it)
    fit = data.cox["survival_5y"]
    departments = compute_indicators(data, "department", indicators=["survival_5y"])
    assert data.cox["survival_5y"] is fit
    by_cycle = result.cycle_values[result.cycle_values["indicator"] == "survival_5y"].set_index("cycle_id")
    again = departments.cycle_values.set_index("cycle_id")
    np.testing.assert_array_equal(again["expected"], by_cycle.loc[again.index, "expected"])
    # the funnel drawn for the page goes through the unit's own limits at its expected deaths
    rows = result.table[result.table["indicator"] == "survival_5y"]
    curve = funnel_curve(rows, grid=[row["precision"]])
    at = curve[curve["level"] == 0.998].iloc[0]
    assert at["lower"] == pytest.approx(row["lower_998"]) and at["upper"] == pytest.approx(row["upper_998"])


def test_no_survival_rows_without_follow_up_dates():
    cond = default_catalog().condition("colorectal_cancer")
    cycles = pd.DataFrame(
        {
            "cycle_id": ["C1", "C2"],
            "hospital": ["H01", "H02"],
            "department": ["SUR", "SUR"],
            "index_date": pd.to_datetime(["2024-01-01", "2024-02-01"]),
            "death": [np.nan, np.nan],
            "death_date": pd.to_datetime([None, None]),
        }
    )
    empty = pd.DataFrame(columns=["cycle_id", "instrument", "timepoint", "scale", "score", "completed_date"])
    data = ConditionData(cond, None, cycles, empty, pd.DataFrame(columns=["cycle_id", "cost"]), pd.Timestamp(AS_OF))
    assert compute_indicators(data, "hospital", indicators=["survival_1y"]).table.empty


def test_imported_vital_status_reaches_the_indicator_table(tmp_path):
    """The demo's vital status file imports as clinical outcomes (no new table), the registry gives survival
    indicators its date, and the data's end date is the vital status check date."""
    from vbhc.indicators import load_condition_data
    from vbhc.ingest import import_files
    from vbhc.store import get_engine

    result = generate_demo(tmp_path / "files", cycles=800)
    engine = get_engine(f"sqlite:///{tmp_path / 'registry.db'}")
    import_files([*result.files, result.follow_up], engine, imported_by="test")
    data = load_condition_data("colorectal_cancer", engine=engine)
    follow = pd.read_csv(result.follow_up, dtype={"cycle_id": str}).set_index("cycle_id")
    cycles = data.cycles.set_index(data.cycles["cycle_id"].astype(str))
    assert (cycles["death"] == follow.loc[cycles.index, "value"]).all()
    assert (cycles["death_date"] == pd.to_datetime(follow.loc[cycles.index, "date"])).all()
    assert data.as_of == pd.Timestamp(AS_OF)
    result = compute_indicators(data, "hospital", indicators=["survival_2y"])
    table = result.table
    assert len(table) == cycles["hospital"].nunique() and table["n"].sum() == len(cycles)
    assert table["observed"].sum() == pytest.approx(table["expected"].sum(), abs=1e-6)
    engine.dispose()

    # the depth view: the unit's curve and the benchmark population's end at the table's crude value and benchmark
    row = table.iloc[0]
    curves = survival_curves(result, "survival_2y", row["unit"])
    last = curves.curves.sort_values("time").groupby("unit")["survival"].last()
    assert last[SurvivalCurves.OWN] == pytest.approx(row["crude_value"], abs=1e-12)
    assert last[SurvivalCurves.BENCHMARK] == pytest.approx(row["target"], abs=1e-12)
    start = curves.at_risk[curves.at_risk["years"] == 0].set_index("unit")["at_risk"]
    assert start[SurvivalCurves.OWN] == row["n"] and start[SurvivalCurves.BENCHMARK] == table["n"].sum()
    assert list(curves.at_risk["years"].unique()) == [0.0, 0.5, 1.0, 1.5, 2.0]
    # no quarterly trend and no change by period (the latest patients are followed for weeks only)
    assert indicator_over_time(result, "survival_2y", row["unit"]).empty
    changed = meeting.changes(result, row["unit"], data.as_of)
    mine = changed[changed["indicator"] == "survival_2y"]
    assert len(mine) == 1 and mine[["previous", "current", "p_value"]].isna().all(axis=None)
    assert mine["assessment"].iloc[0] == ""


def test_number_at_risk_counts_those_still_followed_and_reads_the_curve():
    frame = pd.DataFrame({"unit": "A", "time": HAND_TIME * DAYS_PER_YEAR, "event": HAND_EVENT})
    out = survival.number_at_risk(frame, [0.0, 2.5, 4.0])
    assert list(out["at_risk"]) == [6, 4, 3]  # followed at least 0, 2.5 and 4 years
    np.testing.assert_allclose(out["survival"], [1.0, HAND_KM[2.5], HAND_KM[4.0]], atol=1e-12)
    np.testing.assert_allclose(survival.at_risk_times(1), [0, 0.25, 0.5, 0.75, 1])
    np.testing.assert_allclose(survival.at_risk_times(5), [0, 1, 2, 3, 4, 5])


def test_kaplan_meier_chart_per_unit_with_bands():
    from vbhc import charts

    frame = pd.DataFrame(
        {
            "unit": ["A"] * 6 + ["B"] * 6,
            "time": np.concatenate([HAND_TIME * 365.25, HAND_TIME * 200.0]),
            "event": np.concatenate([HAND_EVENT, 1 - HAND_EVENT]),
        }
    )
    curves = survival.km_curves(frame)
    a = curves[curves["unit"] == "A"].set_index("time")
    assert a.loc[3 * 365.25, "survival"] == pytest.approx(HAND_KM[3.0], abs=1e-12)
    assert a.loc[3 * 365.25, "at_risk"] == 4
    assert (curves["lower"] <= curves["survival"]).all() and (curves["survival"] <= curves["upper"]).all()
    spec = charts.survival_chart(curves, lang="nl", highlight="A").to_dict()
    charts.validate_spec(spec)
    rows = next(r for r in spec["datasets"].values() if r and "years" in r[0])
    assert {r["unit"] for r in rows} == {"A", "B"} and max(r["years"] for r in rows) == pytest.approx(6.0)
    layers = spec["layer"]
    assert [v["mark"]["type"] for v in layers] == ["area", "line"]
    assert all(v["mark"]["interpolate"] == "step-after" for v in layers)
    assert layers[1]["encoding"]["y"]["title"] == "Overleving"
    assert {p["name"] for p in spec["params"]} >= {charts.PHONE_PARAM, charts.HIGHLIGHT_PARAM}
    assert "Geen gegevens" in str(charts.survival_chart(curves.iloc[:0], lang="nl").to_dict())


@pytest.mark.parametrize(
    ("at", "value", "lower", "upper"),
    [
        (0.0, 0.9, 0.47300927136205084, 0.985281393367343),
        (1.0, 0.6428571428571428, 0.2446569617883708, 0.8705258014649645),
        (2.5, 0.3857142857142858, 0.09077089038842377, 0.6850653132229326),
        (5.0, 0.0, 0.0, 0.0),
    ],
)
def test_kaplan_meier_with_censoring_and_a_death_at_time_zero_and_ties_equals_lifelines(at, value, lower, upper):
    """Ten patients: two censored and one dead on day 0, two deaths tied on day 1, two deaths and a censoring tied on
    day 2, the last patient dead on day 5. Reference: lifelines 0.30.3 KaplanMeierFitter (survival_function_ and its
    log(-log) confidence_interval_), values copied here."""
    time = np.array([0, 0, 0, 1, 1, 2, 2, 2, 3, 5.0])
    event = np.array([0, 1, 0, 1, 1, 0, 1, 1, 0, 1.0])
    got = survival.kaplan_meier(time, event, at)
    np.testing.assert_allclose(got, (value, lower, upper), rtol=1e-9, atol=1e-12)


def test_kaplan_meier_when_all_are_censored_is_one_with_no_spread():
    """No death: survival 1 throughout with the interval (1, 1), as lifelines 0.30.3 gives (also at a time after
    the last follow-up, where it carries the last value)."""
    assert survival.kaplan_meier(np.array([0.0, 0.0, 3.0, 7.0]), np.zeros(4), 365.0) == (1.0, 1.0, 1.0)


def test_the_cox_fit_leaves_rows_out_without_a_copy_of_the_design(monkeypatch):
    """survival's fit of the cycles in the model hands fit_cox the design and which rows are in it (`rows`) instead of
    a copy of the design with the other rows set to NaN: the same model, one copy of the design fewer (at 10,000,000
    care cycles ~160 MB a copy, at the Cox fits' peak). A constant column of the fitted rows is still dropped."""
    time, event, x = _cox_case(seed=5, n=120)
    x = x.assign(flat=np.where(np.arange(120) < 100, 1.0, 2.0))  # constant over the rows in the model
    in_model = np.arange(120) < 100
    nan_copy = x.copy()
    nan_copy.loc[~in_model] = np.nan
    want = survival.fit_cox(time, event, nan_copy)
    got = survival.fit_cox(time, event, x, rows=in_model)
    assert list(got.coefficients.index) == ["age", "asa"] and got.n == 100 and got.n_excluded == 20
    pd.testing.assert_series_equal(got.coefficients, want.coefficients, check_exact=True)
    pd.testing.assert_series_equal(got.means, want.means, check_exact=True)
    np.testing.assert_array_equal(got.baseline_cumhaz, want.baseline_cumhaz)
    pd.testing.assert_frame_equal(got.ph_test, want.ph_test, check_exact=True)
    assert got.concordance == want.concordance

    copies = []
    copy = pd.DataFrame.copy
    monkeypatch.setattr(pd.DataFrame, "copy", lambda self, *a, **k: copies.append(self.shape) or copy(self, *a, **k))
    fu = pd.DataFrame({"time": time, "event": event})
    fitted = survival._fit_on(fu, x, in_model)
    monkeypatch.undo()
    assert x.shape not in copies  # the design itself is not copied
    pd.testing.assert_series_equal(fitted.coefficients, want.coefficients, check_exact=True)
    np.testing.assert_array_equal(fitted.baseline_cumhaz, want.baseline_cumhaz)
