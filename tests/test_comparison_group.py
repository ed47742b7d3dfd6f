"""A comparison group is benchmarked with the whole registry's case-mix and Cox models, recalibrated in the large to
the group (indirect standardisation with the group as the benchmark level), never with models refitted on the
group. Checked on a small synthetic registry against independent computations (statsmodels fitted on every
hospital, predicted on the group, the shift solved with scipy's brentq), and that the whole-registry view does not
change."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy.optimize import brentq
from scipy.special import expit

from vbhc import casemix, survival
from vbhc.casemix import intercept_shift, recalibrate_in_the_large
from vbhc.catalog import CaseMixVariable, default_catalog
from vbhc.indicators import ConditionData, compute_indicators, restrict

AS_OF = pd.Timestamp("2025-12-31")
GROUP = ["H1", "H2", "H3"]


def _condition():
    """Colorectal cancer with two case-mix variables and one indicator of each adjusted kind."""
    cond = default_catalog().condition("colorectal_cancer")
    keep = {"volume", "mortality_30d", "length_of_stay", "survival_1y"}
    return dataclasses.replace(
        cond,
        casemix=(CaseMixVariable("age", "number"), CaseMixVariable("sex", "category", codes=("F", "M"))),
        indicators=tuple(i for i in cond.indicators if i.id in keep),
    )


def _registry(seed: int = 7) -> ConditionData:
    """Six hospitals with different patients and different levels of care (the group's level is not the
    registry's), a yes/no outcome, a length of stay and a follow-up for death."""
    rng = np.random.default_rng(seed)
    hospitals = np.repeat([f"H{i}" for i in range(1, 7)], 250)
    n = len(hospitals)
    effect = pd.Series([0.5, 0.3, 0.4, -0.3, -0.2, 0.0], index=[f"H{i}" for i in range(1, 7)])[hospitals].to_numpy()
    age = rng.normal(68, 9, n) + np.where(np.isin(hospitals, GROUP), 4, 0)
    sex = rng.choice(["F", "M"], n)
    male = (sex == "M").astype(float)
    died = rng.random(n) < expit(-3.0 + 0.06 * (age - 68) + 0.4 * male + effect)
    stay = 6 + 0.1 * (age - 68) + 1.0 * male + 2 * effect + rng.normal(0, 2, n)
    index = pd.Timestamp("2023-01-01") + pd.to_timedelta(rng.integers(0, 900, n), unit="D")
    hazard = 0.0004 * np.exp(0.05 * (age - 68) + 0.3 * male + effect)
    death_after = rng.exponential(1 / hazard)
    check = (AS_OF - index).days.to_numpy()
    dead = death_after < check
    death_date = index + pd.to_timedelta(np.where(dead, death_after, check).astype(int), unit="D")
    age[::97] = np.nan  # some cycles without a case-mix value: no expected value, counted
    cycles = pd.DataFrame(
        {
            "cycle_id": [f"c{i:05d}" for i in range(n)],
            "hospital": hospitals,
            "department": "SUR",
            "index_date": index,
            "age": age,
            "sex": pd.Categorical(sex, categories=["F", "M"]),
            "mortality_30d": died.astype(float),
            "length_of_stay": stay,
            "death": dead.astype(float),
            "death_date": death_date,
        }
    )
    empty = pd.DataFrame(columns=["cycle_id", "instrument", "timepoint", "scale", "score", "completed_date"])
    return ConditionData(_condition(), None, cycles, empty, pd.DataFrame(columns=["cycle_id", "cost"]), AS_OF)


def _design(frame: pd.DataFrame, centre: float) -> np.ndarray:
    """The case-mix model's design, written out: intercept, centred age, its square per decade, male."""
    age = frame["age"].to_numpy(float) - centre
    return np.column_stack([np.ones(len(frame)), age, (age / 10) ** 2, (frame["sex"] == "M").to_numpy(float)])


@pytest.fixture(scope="module")
def registry():
    whole = _registry()
    full = compute_indicators(whole, "hospital")  # the registry's view: fits and keeps its models
    return whole, full


def _rows(table: pd.DataFrame, indicator: str) -> pd.DataFrame:
    return table[table["indicator"] == indicator].set_index("unit")


def test_a_yes_no_indicator_of_a_group_is_the_registry_model_shifted_to_the_groups_level(registry):
    whole, _ = registry
    group = compute_indicators(restrict(whole, None, GROUP), "hospital")
    # independently: statsmodels on every hospital, predicted on the group, the shift solved by brentq
    cycles = whole.cycles.dropna(subset=["age"])
    centre = float(cycles["age"].mean())
    fit = sm.Logit(cycles["mortality_30d"].to_numpy(), _design(cycles, centre)).fit(disp=0)
    mine = cycles[cycles["hospital"].isin(GROUP)]
    lp = _design(mine, centre) @ fit.params
    observed = mine["mortality_30d"].to_numpy()
    d = brentq(lambda s: expit(lp + s).sum() - observed.sum(), -10, 10, xtol=1e-14)
    expected = pd.Series(expit(lp + d), index=mine.index).groupby(mine["hospital"]).sum()
    rows = _rows(group.table, "mortality_30d")
    np.testing.assert_allclose(rows.loc[GROUP, "expected"], expected.loc[GROUP], rtol=1e-6)
    np.testing.assert_allclose(rows.loc[GROUP, "oe"], mine.groupby("hospital")["mortality_30d"].sum() / expected)
    # the group's pooled O/E is 1 and the benchmark line is the group's own observed rate
    assert rows["observed"].sum() / rows["expected"].sum() == pytest.approx(1, abs=1e-9)
    np.testing.assert_allclose(rows["target"], observed.mean(), rtol=1e-12)
    np.testing.assert_allclose(rows["adjusted_value"], rows["oe"] * observed.mean(), rtol=1e-12)
    model = group.models["mortality_30d"]
    assert model.recalibration.shift == pytest.approx(d, abs=1e-6)
    # its quality is the registry model's, its cycle counts the group's
    registry_model = whole.fitted["mortality_30d"]
    assert model.diagnostics.c_statistic == registry_model.diagnostics.c_statistic
    assert model.recalibration.reference_n == registry_model.diagnostics.n_used == len(cycles)
    assert model.diagnostics.n_used == len(mine)
    assert int(rows["model_n_excluded"].iloc[0]) == int(whole.cycles["hospital"].isin(GROUP).sum()) - len(mine)


def test_a_continuous_indicator_of_a_group_is_the_registry_prediction_plus_the_groups_mean_residual(registry):
    whole, _ = registry
    group = compute_indicators(restrict(whole, None, GROUP), "hospital")
    cycles = whole.cycles.dropna(subset=["age"])
    centre = float(cycles["age"].mean())
    fit = sm.OLS(cycles["length_of_stay"].to_numpy(), _design(cycles, centre)).fit()
    mine = cycles[cycles["hospital"].isin(GROUP)]
    prediction = _design(mine, centre) @ fit.params
    y = mine["length_of_stay"].to_numpy()
    expected = prediction + (y - prediction).mean()
    rows = _rows(group.table, "length_of_stay")
    by_unit = pd.Series(expected, index=mine.index).groupby(mine["hospital"]).mean()
    np.testing.assert_allclose(rows.loc[GROUP, "expected"], by_unit.loc[GROUP], rtol=1e-9)
    np.testing.assert_allclose(rows["target"], y.mean(), rtol=1e-12)
    adjusted = y.mean() + pd.Series(y - expected, index=mine.index).groupby(mine["hospital"]).mean()
    np.testing.assert_allclose(rows.loc[GROUP, "adjusted_value"], adjusted.loc[GROUP], rtol=1e-9)
    # the limits use the registry model's residual sd (the spread of patients around their expected value)
    np.testing.assert_allclose(rows["limit_sd"], np.sqrt(fit.scale), rtol=1e-9)


def test_a_survival_indicator_of_a_group_rescales_the_registry_baseline_hazard(registry):
    whole, _ = registry
    group = compute_indicators(restrict(whole, None, GROUP), "hospital")
    rows = _rows(group.table, "survival_1y")
    # the group's deaths are its expected deaths (SMR 1 pooled), each unit's E the registry's times one factor
    assert rows["observed"].sum() == pytest.approx(rows["expected"].sum(), rel=1e-9)
    unscaled = _rows(compute_indicators(whole, "hospital").table, "survival_1y")
    registry_cox, group_cox = whole.cox["survival_1y"], group.data.cox["survival_1y"]
    factor = rows["observed"].sum() / unscaled.loc[GROUP, "expected"].sum()
    np.testing.assert_allclose(rows.loc[GROUP, "expected"], unscaled.loc[GROUP, "expected"] * factor, rtol=1e-9)
    assert group_cox.baseline_scale == pytest.approx(factor, rel=1e-9)
    pd.testing.assert_series_equal(group_cox.coefficients, registry_cox.coefficients)
    assert group_cox.concordance == registry_cox.concordance
    np.testing.assert_allclose(group_cox.baseline_cumhaz, registry_cox.baseline_cumhaz * factor)


def test_a_group_view_fits_no_model(registry, monkeypatch):
    whole, _ = registry

    def refuse(*args, **kwargs):
        raise AssertionError("a comparison group must not refit a model")

    monkeypatch.setattr(casemix, "fit_casemix_model", refuse)
    monkeypatch.setattr("vbhc.indicators.fit_casemix_model", refuse)
    monkeypatch.setattr(survival, "fit_cox", refuse)
    for peers in (GROUP, ["H4"], ["H2", "H5"]):
        table = compute_indicators(restrict(whole, None, peers), "department").table
        assert set(table["hospital"]) == set(peers)


def test_without_the_registry_models_at_hand_they_are_fitted_on_the_registry_once(registry):
    whole, _ = registry
    fresh = restrict(_registry(), None, None)  # the same registry, no models fitted yet
    assert not fresh.fitted and not fresh.cox
    group = compute_indicators(restrict(fresh, None, GROUP), "hospital")
    assert set(fresh.fitted) == {"mortality_30d", "length_of_stay"} and set(fresh.cox) == {"survival_1y"}
    known = compute_indicators(restrict(whole, None, GROUP), "hospital")
    pd.testing.assert_frame_equal(group.table, known.table)


def test_the_registry_view_is_unchanged_by_groups(registry):
    whole, full = registry
    for peers in (GROUP, ["H4", "H5"]):
        compute_indicators(restrict(whole, None, peers), "hospital")
    again = compute_indicators(_registry(), "hospital")
    pd.testing.assert_frame_equal(full.table, again.table)
    assert all(m.recalibration is None for m in full.models.values())


def test_a_period_of_a_group_is_benchmarked_against_the_registry_of_that_period(registry):
    whole, _ = registry
    period = restrict(whole, "2024")
    group = restrict(whole, "2024", GROUP)
    assert group.reference.period == period.period and len(group.reference.cycles) == len(period.cycles)
    # restricting a group to its own period keeps the registry of that period (and the models it holds)
    assert restrict(restrict(period, None, GROUP), None).reference is period
    rows = _rows(compute_indicators(group, "hospital").table, "mortality_30d")
    assert rows["observed"].sum() == pytest.approx(rows["expected"].sum(), rel=1e-9)


def test_intercept_shift_matches_brentq_and_its_edge_cases():
    rng = np.random.default_rng(1)
    lp = rng.normal(-1, 1.5, 400)
    y = (rng.random(400) < 0.5).astype(float)
    d = intercept_shift(lp, y)
    assert d == pytest.approx(brentq(lambda s: expit(lp + s).sum() - y.sum(), -20, 20, xtol=1e-14), abs=1e-9)
    assert intercept_shift(lp, np.zeros(400)) == -np.inf
    assert intercept_shift(lp, np.ones(400)) == np.inf
    assert np.isnan(intercept_shift(lp[:0], y[:0]))
    # a very rare event far from the model's level still converges
    rare = np.zeros(400)
    rare[3] = 1
    d = intercept_shift(lp + 8, rare)
    assert expit(lp + 8 + d).sum() == pytest.approx(1, rel=1e-9)


def test_a_group_without_events_gets_expected_zero_and_no_oe(registry):
    whole, _ = registry
    frame = whole.cycles.assign(y=0.0)[whole.cycles["hospital"].isin(GROUP)]
    model = recalibrate_in_the_large(whole.fitted["mortality_30d"], frame, "y")
    scored = model.expected.dropna()
    assert len(scored) and (scored == 0).all() and model.overall == 0
    assert model.recalibration.shift == -np.inf and model.constant == 0


def test_a_groups_casemix_contributions_explain_the_gap_to_the_groups_level(registry):
    from vbhc.indicators import casemix_explanation

    whole, _ = registry
    group = compute_indicators(restrict(whole, None, GROUP), "hospital")
    explained = casemix_explanation(group, "length_of_stay")
    # linear model: the contributions add up to each unit's gap to the group's mean, exactly
    sums = explained.groupby("unit")["contribution"].sum()
    gaps = explained.groupby("unit")["gap"].first()
    np.testing.assert_allclose(sums, gaps, atol=1e-9)
    np.testing.assert_allclose(explained["overall"], group.models["length_of_stay"].overall)
