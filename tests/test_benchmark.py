"""Tests of vbhc.benchmark against independent computations (statsmodels, scipy, brute force, by hand)."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import stats
from statsmodels.stats.meta_analysis import combine_effects
from statsmodels.stats.proportion import proportion_confint
from statsmodels.stats.rates import confint_poisson

from vbhc import benchmark as bm

Z95 = stats.norm.ppf(0.975)
Z998 = stats.norm.ppf(0.999)
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# ------------------------------------------------------------------------------------------------ CIs
@pytest.mark.parametrize("level", [0.9, 0.95, 0.998])
def test_wilson_matches_statsmodels(level):
    x = np.array([0, 1, 3, 10, 50, 99, 100, 7, 0, 1])
    n = np.array([1, 1, 10, 20, 100, 100, 100, 1000, 50, 3])
    lo, up = bm.wilson_ci(x, n, level)
    ref_lo, ref_up = proportion_confint(x, n, alpha=1 - level, method="wilson")
    np.testing.assert_allclose(lo, ref_lo, atol=1e-12)
    np.testing.assert_allclose(up, ref_up, atol=1e-12)


def test_wilson_n_zero_is_nan():
    lo, up = bm.wilson_ci([0], [0])
    assert np.isnan(lo[0]) and np.isnan(up[0])


def test_poisson_ci_known_table_value_and_statsmodels():
    lo, up = bm.poisson_ci([10])
    assert lo[0] == pytest.approx(4.795, abs=5e-4)
    assert up[0] == pytest.approx(18.39, abs=5e-3)
    counts = np.arange(0, 60)
    lo, up = bm.poisson_ci(counts, 0.95)
    for o, a, b in zip(counts, lo, up, strict=True):
        ref = confint_poisson(int(o), 1, method="exact-c", alpha=0.05)
        assert a == pytest.approx(ref[0] if o > 0 else 0.0, abs=1e-9)
        assert b == pytest.approx(ref[1], rel=1e-9)


def test_poisson_ci_formula_and_zero():
    lo, up = bm.poisson_ci([0, 1, 5], 0.998)
    assert lo[0] == 0.0
    assert up[0] == pytest.approx(-math.log(0.001))  # P(X = 0 | mu) = 0.001
    assert lo[1] == pytest.approx(stats.chi2.ppf(0.001, 2) / 2)
    assert up[2] == pytest.approx(stats.chi2.ppf(0.999, 12) / 2)
    # the limits are where the Poisson tail probabilities equal a/2
    assert stats.poisson.sf(4, lo[2]) == pytest.approx(0.001, rel=1e-6)
    assert stats.poisson.cdf(5, up[2]) == pytest.approx(0.001, rel=1e-6)


def test_oe_ratio_divides_exact_ci_by_expected_and_keeps_index():
    o = pd.Series([10, 0, 3], index=["a", "b", "c"])
    e = pd.Series([10.0, 4.0, 0.0], index=["a", "b", "c"])
    res = bm.oe_ratio(o, e)
    assert list(res.index) == ["a", "b", "c"]
    assert res.loc["a", "oe"] == 1.0
    assert res.loc["a", "oe_lower"] == pytest.approx(0.4795, abs=1e-4)
    assert res.loc["a", "oe_upper"] == pytest.approx(1.839, abs=1e-3)
    assert res.loc["b", "oe_lower"] == 0.0
    assert res.loc["b", "oe_upper"] == pytest.approx(-math.log(0.025) / 4)
    assert res.loc["c", ["oe", "oe_lower", "oe_upper"]].isna().all()


def test_adjusted_rate_is_oe_times_overall_rate():
    oe = bm.oe_ratio([12, 4], [10.0, 8.0])
    adj = bm.adjusted_rate(oe, 0.05)
    np.testing.assert_allclose(adj["adjusted_rate"], [0.06, 0.025])
    np.testing.assert_allclose(adj["adjusted_lower"], oe["oe_lower"] * 0.05)
    np.testing.assert_allclose(adj["adjusted_upper"], oe["oe_upper"] * 0.05)


def test_mean_ci_uses_t_quantiles():
    lo, up = bm.mean_ci([10.0, 5.0], [2.0, 1.0], [5, 1])
    ref = stats.t.interval(0.95, 4, loc=10, scale=2 / math.sqrt(5))
    assert (lo[0], up[0]) == pytest.approx(ref)
    assert np.isnan(lo[1]) and np.isnan(up[1])


def test_mean_sd_from_sums_matches_raw_data():
    rng = np.random.default_rng(3)
    groups = [rng.normal(50, 10, k) for k in (2, 7, 300)]
    n = [len(g) for g in groups]
    mean, sd = bm.mean_sd_from_sums(n, [g.sum() for g in groups], [(g**2).sum() for g in groups])
    np.testing.assert_allclose(mean, [g.mean() for g in groups])
    np.testing.assert_allclose(sd, [g.std(ddof=1) for g in groups])
    mean, sd = bm.mean_sd_from_sums([1, 0], [4.0, 0.0], [16.0, 0.0])
    assert mean[0] == 4.0 and np.isnan(sd[0]) and np.isnan(mean[1])


# ----------------------------------------------------------------------------------- funnel limits
def test_level_suffix():
    assert [bm.level_suffix(x) for x in (0.95, 0.998, 0.9, 0.999, 0.975)] == ["95", "998", "90", "999", "975"]
    with pytest.raises(ValueError):
        bm.level_suffix(95)


def _brute_interpolated(cdf, q):
    """Spiegelhalter's appendix by brute force: walk r up until F(r) >= q, then interpolate."""
    r = 0
    while cdf(r) < q:
        r += 1
    alpha = (cdf(r) - q) / (cdf(r) - cdf(r - 1))
    return r, r - alpha


@pytest.mark.parametrize("p0", [0.01, 0.1, 0.37, 0.9])
def test_exact_binomial_limits_match_brute_force(p0):
    ns = np.array([1, 2, 5, 13, 40, 100, 257, 1000])
    lim = bm.funnel_limits_proportion(p0, ns, levels=(0.95, 0.998), exact=True)
    for level in (0.95, 0.998):
        sfx, a = bm.level_suffix(level), 1 - level
        for i, n in enumerate(ns):
            cdf = lambda r, n=n: stats.binom.cdf(r, n, p0)  # noqa: E731
            _, lo = _brute_interpolated(cdf, a / 2)
            r_up, up = _brute_interpolated(cdf, 1 - a / 2)
            up = n if r_up == n else up  # documented boundary rule: 100% is flagged only if improbable
            assert lim[f"lower_{sfx}"].iloc[i] == pytest.approx(max(lo, 0) / n, abs=1e-12)
            assert lim[f"upper_{sfx}"].iloc[i] == pytest.approx(min(max(up, 0), n) / n, abs=1e-12)


def test_exact_poisson_limits_match_brute_force():
    es = np.array([0.05, 0.5, 1.0, 3.3, 10.0, 47.5, 300.0])
    lim = bm.funnel_limits_ratio(es, exact=True)
    for level in (0.95, 0.998):
        sfx, a = bm.level_suffix(level), 1 - level
        for i, e in enumerate(es):
            cdf = lambda r, e=e: stats.poisson.cdf(r, e)  # noqa: E731
            lo = _brute_interpolated(cdf, a / 2)[1]
            up = _brute_interpolated(cdf, 1 - a / 2)[1]
            assert lim[f"lower_{sfx}"].iloc[i] == pytest.approx(max(lo, 0) / e, abs=1e-12)
            assert lim[f"upper_{sfx}"].iloc[i] == pytest.approx(max(up, 0) / e, abs=1e-12)


def test_exact_limits_approach_normal_limits_for_large_volume():
    ex = bm.funnel_limits_proportion(0.2, [200_000])
    nm = bm.funnel_limits_proportion(0.2, [200_000], exact=False)
    np.testing.assert_allclose(ex.to_numpy(), nm.to_numpy(), atol=2e-4)
    ex = bm.funnel_limits_ratio([50_000.0])
    nm = bm.funnel_limits_ratio([50_000.0], exact=False)
    np.testing.assert_allclose(ex.to_numpy(), nm.to_numpy(), atol=2e-3)


def test_exact_upper_limit_reaches_one_when_all_cycles_are_events_is_not_improbable():
    lim = bm.funnel_limits_proportion(0.95, [20])
    assert lim["upper_95"].iloc[0] == 1.0  # P(20/20 | p0 = 0.95) = 0.36
    pos = bm.classify_position([1.0], lim[["lower_95"]], lim[["upper_95"]], higher_is_better=True)
    assert pos["position_95"].iloc[0] == "within"


def test_normal_limits_hand_computed():
    lim = bm.funnel_limits_proportion(0.1, [100], exact=False)
    assert lim["lower_95"].iloc[0] == pytest.approx(0.1 - 1.959964 * 0.03, abs=1e-7)
    assert lim["upper_95"].iloc[0] == pytest.approx(0.1 + 1.959964 * 0.03, abs=1e-7)
    assert lim["upper_95"].iloc[0] == pytest.approx(0.1588, abs=1e-4)
    assert lim["upper_998"].iloc[0] == pytest.approx(0.1 + 3.090232 * 0.03, abs=1e-7)
    rat = bm.funnel_limits_ratio([25.0], exact=False)
    assert rat["lower_95"].iloc[0] == pytest.approx(1 - Z95 / 5)
    assert rat["upper_998"].iloc[0] == pytest.approx(1 + Z998 / 5)
    mean = bm.funnel_limits_mean(50.0, 10.0, [4, 100], levels=(0.95,))
    np.testing.assert_allclose(mean["lower_95"], [50 - Z95 * 5, 50 - Z95])
    np.testing.assert_allclose(mean["upper_95"], [50 + Z95 * 5, 50 + Z95])
    assert list(mean.columns) == ["lower_95", "upper_95"]


def test_limits_nan_for_empty_units():
    assert bm.funnel_limits_proportion(0.1, [0]).isna().all().all()
    assert bm.funnel_limits_ratio([0.0]).isna().all().all()


@FAST
@given(
    p0=st.floats(0.02, 0.98),
    n=st.integers(1, 5000),
    factor=st.integers(2, 10),
)
def test_normal_limits_narrow_as_volume_grows(p0, n, factor):
    for exact in (False,):
        a = bm.funnel_limits_proportion(p0, [n, n * factor], exact=exact)
        assert (a.iloc[1, 1::2].to_numpy() <= a.iloc[0, 1::2].to_numpy() + 1e-12).all()
        assert (a.iloc[1, 0::2].to_numpy() >= a.iloc[0, 0::2].to_numpy() - 1e-12).all()
    r = bm.funnel_limits_ratio([n / 10, n * factor / 10], exact=False)
    assert (np.diff(r.to_numpy(), axis=0)[:, 1::2] <= 1e-12).all()
    m = bm.funnel_limits_mean(3.0, 2.0, [n, n * factor])
    assert (np.diff(m.to_numpy(), axis=0)[:, 1::2] < 0).all()
    for method in ("multiplicative", "additive"):
        d = bm.dispersed_limits("proportion", p0, [n, n * factor], method=method, phi=2.0, tau2=0.001)
        widths = (d.filter(like="upper").to_numpy() - d.filter(like="lower").to_numpy()).T
        assert (widths[:, 1] <= widths[:, 0] + 1e-12).all()


@FAST
@given(p0=st.floats(0.05, 0.95), n=st.integers(30, 3000))
def test_exact_limits_narrow_when_volume_quadruples(p0, n):
    # interpolated exact limits wiggle a little between neighbouring n, but the funnel still narrows
    a = bm.funnel_limits_proportion(p0, [n, 4 * n])
    width = a.filter(like="upper").to_numpy() - a.filter(like="lower").to_numpy()
    assert (width[1] < width[0]).all()


# --------------------------------------------------------------------------------- over-dispersion
def test_z_scores_on_variance_stabilising_scales():
    z = bm.dispersion_z_scores("proportion", [0.2], [100], 0.1)
    expected = (math.asin(math.sqrt(0.2)) - math.asin(math.sqrt(0.1))) * 2 * 10
    assert z["z"].iloc[0] == pytest.approx(expected)
    assert z["s"].iloc[0] == pytest.approx(1 / 20)
    r = bm.dispersion_z_scores("ratio", [12 / 9], [9.0], 1.0)
    assert r["z"].iloc[0] == pytest.approx(2 * (math.sqrt(12) - math.sqrt(9)))
    lg = bm.dispersion_z_scores("ratio", [12 / 9, 0.0], [9.0, 4.0], 1.0, scale="log", observed=[12, 0])
    assert lg["z"].iloc[0] == pytest.approx(math.log(12 / 9) * 3)
    assert lg["z"].iloc[1] == pytest.approx(math.log(0.5 / 4) * 2)
    m = bm.dispersion_z_scores("mean", [52.0], [25], 50.0, sd=10.0)
    assert m["z"].iloc[0] == pytest.approx(1.0)
    with pytest.raises(ValueError):
        bm.dispersion_z_scores("proportion", [0.1], [10], 0.1, scale="log")


def _simulated_proportions(seed, units, spread):
    rng = np.random.default_rng(seed)
    n = rng.integers(200, 3000, units)
    logit = math.log(0.1 / 0.9) + rng.normal(0, spread, units)
    p = 1 / (1 + np.exp(-logit))
    o = rng.binomial(n, p)
    return n, o


def test_phi_near_one_without_overdispersion_and_above_one_with():
    n, o = _simulated_proportions(11, 3000, 0.0)
    z = bm.dispersion_z_scores("proportion", o / n, n, 0.1)
    raw = bm.estimate_overdispersion(z["z"], z["s"], winsor=None)
    assert raw.phi == pytest.approx(1.0, abs=0.08)
    assert raw.n_units == 3000
    # 10% winsorising shrinks phi under the null to E[min(max(Z, -c), c)^2], c = z_0.9 (about 0.68)
    c = stats.norm.ppf(0.9)
    theory = 0.8 - 2 * c * stats.norm.pdf(c) + 0.2 * c**2
    wins = bm.estimate_overdispersion(z["z"], z["s"], winsor=0.1)
    assert wins.phi == pytest.approx(theory, abs=0.05)
    assert not wins.significant and wins.tau2 == 0.0

    n, o = _simulated_proportions(12, 200, 0.3)
    z = bm.dispersion_z_scores("proportion", o / n, n, 0.1)
    over = bm.estimate_overdispersion(z["z"], z["s"])
    assert over.phi > 2 and over.significant and over.p_value < 1e-6 and over.tau2 > 0


def test_tau2_matches_direct_dersimonian_laird_computation():
    n, o = _simulated_proportions(5, 60, 0.25)
    p0 = 0.1
    z = bm.dispersion_z_scores("proportion", o / n, n, p0)
    res = bm.estimate_overdispersion(z["z"], z["s"], winsor=0.1)
    # by hand, following Spiegelhalter 2005 QSHC
    zz = z["z"].to_numpy()
    lo, hi = np.quantile(zz, [0.1, 0.9])
    zw = np.clip(zz, lo, hi)
    i = len(zz)
    phi = np.mean(zw**2)
    w = 1 / z["s"].to_numpy() ** 2
    tau2 = (i * phi - (i - 1)) / (w.sum() - (w**2).sum() / w.sum())
    assert res.phi == pytest.approx(phi)
    assert res.tau2 == pytest.approx(max(tau2, 0))
    assert res.p_value == pytest.approx(stats.chi2.sf(i * phi, i - 1))


def test_tau2_equals_statsmodels_dersimonian_laird_around_the_weighted_mean():
    n, o = _simulated_proportions(6, 40, 0.3)
    y = np.arcsin(np.sqrt(o / n))
    s2 = 1 / (4 * n)
    centre = np.sum(y / s2) / np.sum(1 / s2)  # DL's Q is taken around the inverse-variance mean
    z = bm.dispersion_z_scores("proportion", o / n, n, math.sin(centre) ** 2)
    ours = bm.estimate_overdispersion(z["z"], z["s"], winsor=None)
    ref = combine_effects(y, s2, method_re="dl")
    assert ours.tau2 == pytest.approx(ref.tau2, rel=1e-9)
    assert ours.tau2 > 0


def test_winsorising_tames_a_single_extreme_unit():
    rng = np.random.default_rng(8)
    z = rng.normal(size=50)
    z[0] = 40.0
    s = np.full(50, 0.05)
    assert bm.estimate_overdispersion(z, s, winsor=None).phi > 30
    assert bm.estimate_overdispersion(z, s, winsor=0.1).phi < 2


def test_tau2_truncated_at_zero_and_too_few_units():
    res = bm.estimate_overdispersion([0.1, -0.1, 0.05, 0.0], [0.1, 0.1, 0.2, 0.1], winsor=None)
    assert res.tau2 == 0.0 and not res.significant
    one = bm.estimate_overdispersion([3.0], [0.1])
    assert np.isnan(one.phi) and one.n_units == 1


def test_dispersed_limits_on_transformed_scale():
    n = np.array([100, 400])
    p0, phi, tau2 = 0.2, 2.5, 0.004
    t = math.asin(math.sqrt(p0))
    s = 1 / (2 * np.sqrt(n))
    mult = bm.dispersed_limits("proportion", p0, n, method="multiplicative", phi=phi)
    np.testing.assert_allclose(mult["upper_95"], np.sin(t + Z95 * math.sqrt(phi) * s) ** 2)
    np.testing.assert_allclose(mult["lower_998"], np.sin(t - Z998 * math.sqrt(phi) * s) ** 2)
    add = bm.dispersed_limits("proportion", p0, n, method="additive", tau2=tau2)
    np.testing.assert_allclose(add["upper_95"], np.sin(t + Z95 * np.sqrt(s**2 + tau2)) ** 2)
    rat = bm.dispersed_limits("ratio", 1.0, [16.0], method="additive", tau2=0.01)
    k = Z95 * math.sqrt(1 / 64 + 0.01)
    assert rat["lower_95"].iloc[0] == pytest.approx((1 - k) ** 2)
    assert rat["upper_95"].iloc[0] == pytest.approx((1 + k) ** 2)
    # phi <= 1 never narrows the limits
    narrow = bm.dispersed_limits("ratio", 1.0, [16.0], method="multiplicative", phi=0.5)
    plain = bm.dispersed_limits("ratio", 1.0, [16.0], method="multiplicative", phi=1.0)
    pd.testing.assert_frame_equal(narrow, plain)


# ----------------------------------------------------------------------------------- classification
def test_classify_position_direction_and_small_numbers():
    lower = pd.DataFrame({"lower_95": [0.1, 0.1, 0.1, 0.1, 0.1], "lower_998": [0.05] * 5})
    upper = pd.DataFrame({"upper_95": [0.3] * 5, "upper_998": [0.4] * 5})
    value = [0.35, 0.07, 0.3, 0.9, np.nan]
    n = [100, 100, 100, 5, 100]
    low_good = bm.classify_position(value, lower, upper, higher_is_better=False, n=n, min_n=10)
    assert list(low_good["position_95"]) == ["above", "below", "within", bm.TOO_FEW, bm.NO_DATA]
    assert list(low_good["assessment_95"]) == ["worse", "better", "as expected", bm.TOO_FEW, bm.NO_DATA]
    assert list(low_good["position_998"]) == ["within", "within", "within", bm.TOO_FEW, bm.NO_DATA]
    high_good = bm.classify_position(value, lower, upper, higher_is_better=True, n=n, min_n=10)
    assert list(high_good["assessment_95"][:2]) == ["better", "worse"]
    flat = bm.classify_position([1.0, 5.0], [0.0, 0.0], [2.0, 2.0], higher_is_better=True)
    assert list(flat.columns) == ["position", "assessment"]
    assert list(flat["assessment"]) == ["as expected", "better"]


# ------------------------------------------------------------------------------------ detectability
def test_rankability_and_detectable_difference():
    assert bm.rankability(0.01, [0.01, 0.02, 0.03]) == pytest.approx(0.01 / 0.03)
    assert bm.rankability(0.0, [0.01]) == 0.0
    assert np.isnan(bm.rankability(0.01, []))
    d = bm.detectable_difference("proportion", [100, 400], target=0.1)
    np.testing.assert_allclose(d, (3.090232 + 0.841621) * np.array([0.03, 0.015]), rtol=1e-6)
    d = bm.detectable_difference("ratio", [25.0], level=0.95, power=0.9)
    assert d[0] == pytest.approx((Z95 + stats.norm.ppf(0.9)) / 5)
    d = bm.detectable_difference("mean", [16], sd=8.0)
    assert d[0] == pytest.approx((Z998 + stats.norm.ppf(0.8)) * 2)


# --------------------------------------------------------------------------------------------- SPC
def test_p_chart_limits_hand_computed():
    chart = bm.spc_p_chart([5, 10, 15], [100, 100, 100])
    np.testing.assert_allclose(chart["centre"], 0.1)
    np.testing.assert_allclose(chart["lower"], 0.1 - 3 * 0.03)
    np.testing.assert_allclose(chart["upper"], 0.1 + 3 * 0.03)
    assert not chart["signal"].any()
    chart = bm.spc_p_chart([2, 30], [50, 200])
    p_bar = 32 / 250
    assert chart["upper"].iloc[0] == pytest.approx(p_bar + 3 * math.sqrt(p_bar * (1 - p_bar) / 50))
    assert chart["lower"].iloc[0] == pytest.approx(max(0.0, p_bar - 3 * math.sqrt(p_bar * (1 - p_bar) / 50)))


def test_laney_p_prime_hand_computed():
    chart = bm.spc_p_chart([10, 20, 35, 15], [100] * 4, laney=True)
    # p_bar 0.2, sigma_i 0.04, z = -2.5, 0, 3.75, -1.25, moving ranges 2.5, 3.75, 5 -> mean 3.75
    sigma_z = 3.75 / 1.128
    assert chart["sigma_z"].iloc[0] == pytest.approx(sigma_z)
    np.testing.assert_allclose(chart["z"], [-2.5, 0, 3.75, -1.25])
    assert chart["upper"].iloc[0] == pytest.approx(0.2 + 3 * 0.04 * sigma_z)
    assert chart["lower"].iloc[0] == 0.0
    plain = bm.spc_p_chart([10, 20, 35, 15], [100] * 4)
    assert plain["sigma_z"].iloc[0] == 1.0
    assert plain["beyond_limits"].iloc[2] and not chart["beyond_limits"].iloc[2]


def test_xmr_hand_computed():
    chart = bm.spc_xmr([1.0, 3.0, 2.0, 4.0], periods=["q1", "q2", "q3", "q4"])
    mr_bar = 5 / 3
    assert chart["centre"].iloc[0] == 2.5
    assert chart["upper"].iloc[0] == pytest.approx(2.5 + 2.66 * mr_bar)
    assert chart["lower"].iloc[0] == pytest.approx(2.5 - 2.66 * mr_bar)
    assert chart["mr_upper"].iloc[0] == pytest.approx(3.267 * mr_bar)
    assert list(chart["period"]) == ["q1", "q2", "q3", "q4"]
    assert np.isnan(chart["moving_range"].iloc[0])


def test_run_rules_on_crafted_series():
    eight_up = bm.run_rules([1.0] * 8 + [-1.0], 0.0, -10, 10)
    assert list(eight_up["shift"]) == [True] * 8 + [False]
    seven = bm.run_rules([1.0] * 7 + [-1.0] * 2, 0.0, -10, 10)
    assert not seven["shift"].any()
    assert bm.run_rules([1.0] * 7, 0.0, -10, 10, shift_run=7)["shift"].all()
    on_line = bm.run_rules([1.0] * 4 + [0.0] + [1.0] * 4, 0.0, -10, 10)
    assert not on_line["shift"].any()  # a point on the centre line breaks the run
    rising = bm.run_rules([3, 1, 2, 3, 4, 5, 6, 2], 3.0, -10, 10)
    assert list(rising["trend"]) == [False] + [True] * 6 + [False]
    falling_five = bm.run_rules([5, 4, 3, 2, 1, 1], 3.0, -10, 10)
    assert not falling_five["trend"].any()  # ties break a trend
    falling_six = bm.run_rules([6, 5, 4, 3, 2, 1], 3.0, -10, 10)
    assert falling_six["trend"].all()
    beyond = bm.run_rules([0.0, 11.0, -12.0], 0.0, -10, 10)
    assert list(beyond["beyond_limits"]) == [False, True, True]
    assert list(beyond["signal"]) == [False, True, True]


def test_spc_chart_shift_signal():
    events = [10] * 4 + [16] * 8
    chart = bm.spc_p_chart(events, [100] * 12)
    assert chart["shift"].iloc[4:].all() and not chart["shift"].iloc[:4].any()


# --------------------------------------------------------------------------------------- CUSUM/VLAD
Y5 = [1, 0, 1, 1, 0]
P5 = [0.2, 0.1, 0.5, 0.3, 0.4]


def test_cusum_hand_computed_with_reset():
    c, alarm = bm.risk_adjusted_cusum(Y5, P5, odds_ratio=2.0, h=1.0)
    # W = y ln 2 - ln(1 + p): 0.510826, -0.095310, 0.287682, 0.430783, -0.336472
    np.testing.assert_allclose(c, [0.510826, 0.415515, 0.703198, 1.133980, 0.0], atol=1e-6)
    assert list(alarm) == [False, False, False, True, False]
    c, alarm = bm.risk_adjusted_cusum(Y5, P5, odds_ratio=2.0, h=4.5)
    assert c[-1] == pytest.approx(0.797508, abs=1e-6) and not alarm.any()
    down, _ = bm.risk_adjusted_cusum(Y5, P5, odds_ratio=0.5, h=4.5)
    # W = y ln 0.5 - ln(1 - p/2): -0.587787, 0.051293, -0.405465, -0.530628, 0.223144
    np.testing.assert_allclose(down, [0.0, 0.051293, 0.0, 0.0, 0.223144], atol=1e-6)


def test_vlad_sums():
    v = bm.vlad(Y5, P5)
    np.testing.assert_allclose(v, [-0.8, -0.7, -1.2, -1.9, -1.5])
    g = ["a", "b", "a", "b", "a"]
    v = bm.vlad(Y5, P5, groups=g)
    np.testing.assert_allclose(v, [-0.8, 0.1, -1.3, -0.6, -0.9])


def _reference_cusum(y, p, r, h, groups):
    w = np.asarray(y) * math.log(r) - np.log(1 - np.asarray(p) + r * np.asarray(p))
    out, alarm, state = np.empty(len(w)), np.zeros(len(w), bool), {}
    for i, g in enumerate(groups):
        c = state.get(g, 0.0)
        c = max(0.0, (c if c < h else 0.0) + w[i])
        out[i], alarm[i], state[g] = c, c >= h, c
    return out, alarm


@FAST
@given(
    data=st.lists(st.tuples(st.integers(0, 4), st.booleans(), st.floats(0.01, 0.9)), min_size=1, max_size=300),
    h=st.sampled_from([0.3, 1.0, 2.0, 4.5]),
    r=st.sampled_from([0.5, 1.5, 2.0, 3.0]),
)
def test_vectorised_cusum_equals_the_recursion(data, h, r):
    groups = [d[0] for d in data]
    y = [float(d[1]) for d in data]
    p = [d[2] for d in data]
    c, a = bm.risk_adjusted_cusum(y, p, r, h, groups=groups)
    rc, ra = _reference_cusum(y, p, r, h, groups)
    np.testing.assert_allclose(c, rc, atol=1e-9)
    assert (a == ra).all()


def test_cusum_fallback_path_for_frequent_alarms(monkeypatch):
    monkeypatch.setattr(bm, "_MAX_ROUNDS", 3)
    rng = np.random.default_rng(4)
    g = rng.integers(0, 3, 2000)
    p = rng.uniform(0.05, 0.5, 2000)
    y = (rng.random(2000) < 0.6).astype(float)
    c, a = bm.risk_adjusted_cusum(y, p, 2.0, 0.8, groups=g)
    rc, ra = _reference_cusum(y, p, 2.0, 0.8, g)
    np.testing.assert_allclose(c, rc, atol=1e-9)
    assert (a == ra).all() and a.sum() > 100


def test_cusum_rejects_bad_probabilities():
    with pytest.raises(ValueError):
        bm.risk_adjusted_cusum([1, 0], [0.2, 1.5])
    with pytest.raises(ValueError):
        bm.risk_adjusted_cusum([1, np.nan], [0.2, 0.5])


def _cycles(seed=0, units=4, per_unit=50):
    rng = np.random.default_rng(seed)
    n = units * per_unit
    return pd.DataFrame(
        {
            "unit": rng.choice([f"h{i}" for i in range(units)], n),
            "date": pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 365, n), unit="D"),
            "outcome": (rng.random(n) < 0.15).astype(int),
            "expected": rng.uniform(0.02, 0.4, n),
        }
    )


def test_cusum_vlad_by_unit_columns_order_and_totals():
    df = _cycles()
    out = bm.cusum_vlad_by_unit(df, h=2.0)
    for col in ("cusum_up", "cusum_down", "alarm_up", "alarm_down", "alarm", "vlad", "cycle_number"):
        assert col in out.columns
    assert (out["cusum_up"] >= 0).all() and (out["cusum_down"] <= 0).all()
    assert (out["alarm"] == (out["alarm_up"] | out["alarm_down"])).all()
    assert sorted(out.index) == sorted(df.index)
    for unit, grp in out.groupby("unit"):
        assert grp["date"].is_monotonic_increasing
        assert list(grp["cycle_number"]) == list(range(1, len(grp) + 1))
        src = df[df["unit"] == unit]
        assert grp["vlad"].iloc[-1] == pytest.approx(src["expected"].sum() - src["outcome"].sum())
        rc, ra = _reference_cusum(grp["outcome"], grp["expected"], 2.0, 2.0, [0] * len(grp))
        np.testing.assert_allclose(grp["cusum_up"], rc, atol=1e-9)
        assert (grp["alarm_up"].to_numpy() == ra).all()


def test_cusum_vlad_by_unit_ignores_input_row_order():
    df = _cycles(seed=2).drop_duplicates(["unit", "date"])
    a = bm.cusum_vlad_by_unit(df).sort_index()
    b = bm.cusum_vlad_by_unit(df.sample(frac=1, random_state=3)).sort_index()
    pd.testing.assert_frame_equal(a, b)


def test_cusum_vlad_by_unit_empty():
    out = bm.cusum_vlad_by_unit(_cycles().iloc[:0])
    assert len(out) == 0 and "cusum_up" in out.columns


# ---------------------------------------------------------------------------------- benchmark_units
def _units(seed=1, k=40, spread=0.0, with_expected=True):
    rng = np.random.default_rng(seed)
    n = rng.integers(20, 1500, k)
    risk = rng.uniform(0.05, 0.2, k)  # case-mix: each unit's expected risk
    logit = np.log(risk / (1 - risk)) + rng.normal(0, spread, k)
    o = rng.binomial(n, 1 / (1 + np.exp(-logit)))
    df = pd.DataFrame({"unit": [f"u{i:02d}" for i in range(k)], "n": n, "observed": o})
    if with_expected:
        df["expected"] = n * risk
    return df


def test_benchmark_units_proportion_with_case_mix():
    df = _units()
    res = bm.benchmark_units(df, "proportion", direction="lower", min_n=50)
    assert list(res["unit"]) == list(df["unit"])
    assert (res["compared_on"] == "oe").all()
    np.testing.assert_allclose(res["oe"], df["observed"] / df["expected"])
    overall = df["observed"].sum() / df["n"].sum()
    np.testing.assert_allclose(res["adjusted_rate"], res["oe"] * overall)
    np.testing.assert_allclose(res["value"], res["oe"])
    lo, up = proportion_confint(df["observed"], df["n"], method="wilson")
    np.testing.assert_allclose(res["rate_lower"], lo)
    np.testing.assert_allclose(res["rate_upper"], up)
    for col in ("lower_95", "upper_95", "lower_998", "upper_998", "position_95", "assessment_998"):
        assert col in res.columns
    assert res["dispersion_method"].iloc[0] == "none"  # simulated without over-dispersion
    lim = bm.funnel_limits_ratio(df["expected"])
    np.testing.assert_allclose(res["upper_998"], lim["upper_998"])
    assert (res.loc[df["n"] < 50, "position_95"] == bm.TOO_FEW).all()


def test_benchmark_units_crude_proportion_uses_binomial_limits():
    df = _units(with_expected=False)
    res = bm.benchmark_units(df, "proportion", direction="higher", target=0.12, dispersion="none")
    assert (res["compared_on"] == "rate").all()
    np.testing.assert_allclose(res["value"], df["observed"] / df["n"])
    lim = bm.funnel_limits_proportion(0.12, df["n"])
    np.testing.assert_allclose(res["lower_95"], lim["lower_95"])
    np.testing.assert_allclose(res["expected"], df["n"] * 0.12)
    np.testing.assert_allclose(
        res["detectable_difference"], bm.detectable_difference("proportion", df["n"], target=0.12)
    )


def test_benchmark_units_dispersion_choices():
    df = _units(seed=3, k=80, spread=0.5)
    auto = bm.benchmark_units(df, "proportion", direction="lower")
    assert auto["dispersion_method"].iloc[0] == "additive"
    assert auto["phi"].iloc[0] > 1 and auto["phi_p_value"].iloc[0] < 0.05 and auto["tau2"].iloc[0] > 0
    mult = bm.benchmark_units(df, "proportion", direction="lower", dispersion="multiplicative")
    assert mult["dispersion_method"].iloc[0] == "multiplicative"
    none = bm.benchmark_units(df, "proportion", direction="lower", dispersion="none")
    assert none["dispersion_method"].iloc[0] == "none"
    width = lambda r: (r["upper_998"] - r["lower_998"]).to_numpy()  # noqa: E731
    assert (width(auto) > width(none)).mean() > 0.9
    assert (auto["position_998"] != "within").sum() <= (none["position_998"] != "within").sum()
    exp = bm.dispersed_limits("ratio", 1.0, df["expected"], method="additive", tau2=auto["tau2"].iloc[0])
    np.testing.assert_allclose(auto["upper_95"], exp["upper_95"])
    calm = _units(seed=4, k=80, spread=0.0)
    forced = bm.benchmark_units(calm, "proportion", direction="lower", dispersion="multiplicative", winsor=0.1)
    assert forced["phi"].iloc[0] < 1 and forced["dispersion_method"].iloc[0] == "none"


def test_benchmark_units_rankability_flag():
    calm = bm.benchmark_units(_units(seed=4, k=60), "proportion", direction="lower")
    assert calm["rankability"].iloc[0] < 0.5
    assert calm["rankability_note"].iloc[0] == "cannot tell units apart"
    wide = bm.benchmark_units(_units(seed=5, k=60, spread=1.0), "proportion", direction="lower")
    assert wide["rankability"].iloc[0] > 0.5 and wide["rankability_note"].iloc[0] == ""
    z = wide["z"].to_numpy()
    s2 = (1 / (2 * np.sqrt(wide["expected"].to_numpy()))) ** 2
    assert wide["rankability"].iloc[0] == pytest.approx(wide["tau2"].iloc[0] / (wide["tau2"].iloc[0] + np.median(s2)))
    assert np.isfinite(z).all()


def test_benchmark_units_means_from_aggregates_or_mean_sd():
    rng = np.random.default_rng(7)
    raw = {f"u{i}": rng.normal(5 + 0.1 * i, 2, rng.integers(5, 200)) for i in range(12)}
    sums = pd.DataFrame(
        {
            "unit": list(raw),
            "n": [len(v) for v in raw.values()],
            "sum": [v.sum() for v in raw.values()],
            "sum_sq": [(v**2).sum() for v in raw.values()],
        }
    )
    msd = pd.DataFrame(
        {
            "unit": list(raw),
            "n": [len(v) for v in raw.values()],
            "mean": [v.mean() for v in raw.values()],
            "sd": [v.std(ddof=1) for v in raw.values()],
        }
    )
    a = bm.benchmark_units(sums, "mean", direction="lower", min_n=10, dispersion="none")
    b = bm.benchmark_units(msd, "mean", direction="lower", min_n=10, dispersion="none")
    pd.testing.assert_frame_equal(a, b, check_exact=False, rtol=1e-9)
    pooled = np.concatenate(list(raw.values()))
    assert a["overall_mean"].iloc[0] == pytest.approx(pooled.mean())
    lim = bm.funnel_limits_mean(pooled.mean(), pooled.std(ddof=1), sums["n"])
    np.testing.assert_allclose(a["upper_95"], lim["upper_95"])
    np.testing.assert_allclose(a["mean"], msd["mean"])
    adj = bm.benchmark_units(msd.assign(expected=msd["mean"] - 1.0), "mean", direction="higher", target=5.0, sd=2.0)
    np.testing.assert_allclose(adj["adjusted_mean"], 6.0)
    assert (adj["compared_on"] == "adjusted_mean").all()


def test_benchmark_units_ratio_and_national_figures():
    hosp = pd.DataFrame({"unit": ["our hospital"], "n": [800], "observed": [60], "expected": [40.0]})
    national = bm.Dispersion(phi=1.8, p_value=0.001, significant=True, tau2=0.002, n_units=70)
    res = bm.benchmark_units(hosp, "ratio", direction="lower", target=0.06, dispersion_estimate=national)
    row = res.iloc[0]
    assert row["oe"] == 1.5 and row["adjusted_rate"] == pytest.approx(0.09)
    assert row["dispersion_method"] == "additive" and row["tau2"] == 0.002
    k = Z95 * math.sqrt(1 / 160 + 0.002)
    assert row["upper_95"] == pytest.approx((1 + k) ** 2)
    assert row["position_95"] == "above" and row["assessment_95"] == "worse"
    alone = bm.benchmark_units(hosp.drop(columns="n"), "ratio", direction="lower")
    assert np.isnan(alone["phi"].iloc[0]) and alone["dispersion_method"].iloc[0] == "none"
    assert np.isnan(alone["adjusted_rate"].iloc[0])


def test_benchmark_units_input_errors():
    df = _units()
    with pytest.raises(ValueError):
        bm.benchmark_units(df, "proportion", direction="up")
    with pytest.raises(ValueError):
        bm.benchmark_units(df.drop(columns="observed"), "proportion", direction="lower")
    with pytest.raises(ValueError):
        bm.benchmark_units(df, "mean", direction="lower")
    with pytest.raises(ValueError):
        bm.benchmark_units(df, "proportion", direction="lower", dispersion="sometimes")
    with pytest.raises(TypeError):
        bm.benchmark_units(df, "proportion")  # the direction must be stated


unit_tables = st.lists(
    st.tuples(st.integers(1, 400), st.floats(0.0, 1.0), st.floats(0.02, 0.5)), min_size=2, max_size=25
).map(
    lambda rows: pd.DataFrame(
        {
            "unit": [f"u{i}" for i in range(len(rows))],
            "n": [r[0] for r in rows],
            "observed": [round(r[0] * r[1]) for r in rows],
            "expected": [r[0] * r[2] for r in rows],
        }
    )
)


@FAST
@given(
    table=unit_tables,
    e=st.integers(1, 200),
    extra=st.integers(0, 200),
    kind=st.sampled_from(["proportion", "ratio"]),
    dispersion=st.sampled_from(["auto", "none", "multiplicative", "additive"]),
    exact=st.booleans(),
)
def test_unit_whose_outcomes_equal_predictions_is_within(table, e, extra, kind, dispersion, exact):
    # the unit's predicted probabilities sum to its observed count: O = E
    me = pd.DataFrame({"unit": ["me"], "n": [e + extra], "observed": [e], "expected": [float(e)]})
    res = bm.benchmark_units(
        pd.concat([table, me], ignore_index=True), kind, direction="lower", dispersion=dispersion, exact=exact
    )
    row = res.set_index("unit").loc["me"]
    assert row["oe"] == 1.0
    assert row["position_95"] == "within" and row["position_998"] == "within"
    assert row["assessment_998"] == "as expected"


@FAST
@given(table=unit_tables, exact=st.booleans())
def test_crude_rate_equal_to_target_is_within(table, exact):
    table = table.drop(columns="expected")
    row = table.iloc[0]
    target = row["observed"] / row["n"]
    res = bm.benchmark_units(table, "proportion", direction="higher", target=target, exact=exact)
    assert res["position_95"].iloc[0] == "within" and res["position_998"].iloc[0] == "within"


@FAST
@given(
    table=unit_tables,
    seed=st.integers(0, 10_000),
    kind=st.sampled_from(["proportion", "ratio"]),
    dispersion=st.sampled_from(["auto", "multiplicative", "additive"]),
    min_n=st.sampled_from([0, 50]),
)
def test_permuting_unit_order_changes_nothing(table, seed, kind, dispersion, min_n):
    kw = {"direction": "lower", "dispersion": dispersion, "min_n": min_n}
    a = bm.benchmark_units(table, kind, **kw).set_index("unit")
    shuffled = table.sample(frac=1, random_state=seed)
    b = bm.benchmark_units(shuffled, kind, **kw).set_index("unit").loc[a.index]
    pd.testing.assert_frame_equal(a, b, check_exact=False, rtol=1e-9, atol=1e-12)


@FAST
@given(
    table=unit_tables,
    min_n=st.integers(1, 300),
    kind=st.sampled_from(["proportion", "ratio"]),
    dispersion=st.sampled_from(["auto", "none", "multiplicative", "additive"]),
)
def test_too_few_cycles_are_never_flagged(table, min_n, kind, dispersion):
    # make the small units as extreme as possible
    small = table["n"] < min_n
    table.loc[small, "observed"] = table.loc[small, "n"]
    table.loc[small, "expected"] = 0.01
    res = bm.benchmark_units(table, kind, direction="lower", min_n=min_n, dispersion=dispersion)
    for col in ("position_95", "position_998", "assessment_95", "assessment_998"):
        assert (res.loc[small.to_numpy(), col] == bm.TOO_FEW).all()
    assert (res["too_few_cycles"] == small.to_numpy()).all()
    assert not res.loc[~small.to_numpy(), "position_95"].eq(bm.TOO_FEW).any()


@pytest.mark.parametrize(("n", "overall"), [([0, 0], None), ([1, 0], 5.0)])
def test_mean_indicator_without_values_has_no_overall_and_warns_nothing(n, overall):
    """No unit with a value (a small registry's new indicator) has no overall mean, and one care cycle no spread:
    numpy's "invalid value" warning reached the terminal of `vbhc report` and the tests' output."""
    units = pd.DataFrame({"unit": ["A", "B"], "n": n, "sum": [5.0 * k for k in n], "sum_sq": [25.0 * k for k in n]})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        table = bm.benchmark_units(units, "mean", direction="higher")
    assert np.isnan(table["overall_mean"]).all() if overall is None else (table["overall_mean"] == overall).all()


def test_funnel_limits_at_the_edges_by_hand():
    """Spiegelhalter's interpolated exact limits where they degenerate, worked by hand. Target 0: every count is 0,
    so both limits are 0 at any n. Target 1, n = 1: the lower 95% limit is r_p - alpha = 1 - (1 - 0.025) / 1 = 0.025
    and the upper is 1 (r_p = n). Target 0.5, n = 1: P(X = 0) = 0.5 >= 0.025, so r_p = 0 and the lower limit
    0 - (0.5 - 0.025) / 0.5 is clipped to 0; the upper quantile is n, so 1. O/E at E = 0.3: F(0) = 0.7408,
    F(1) = 0.9631, F(2) = 0.9964, so r_p = 2 and the upper 95% limit is (2 - (0.99640 - 0.975) / (0.99640 - 0.96306))
    / 0.3 = 4.5268."""
    zero = bm.funnel_limits_proportion(0.0, [1, 2, 10, 1000])
    assert (zero.to_numpy() == 0).all()
    one = bm.funnel_limits_proportion(1.0, [1])
    assert one["lower_95"].iloc[0] == pytest.approx(0.025)
    assert one["upper_95"].iloc[0] == 1.0
    half = bm.funnel_limits_proportion(0.5, [1])
    assert (half["lower_95"].iloc[0], half["upper_95"].iloc[0]) == (0.0, 1.0)
    f = stats.poisson.cdf([0, 1, 2], 0.3)
    assert f[1] < 0.975 <= f[2]
    ratio = bm.funnel_limits_ratio([0.3])
    assert ratio["upper_95"].iloc[0] == pytest.approx((2 - (f[2] - 0.975) / (f[2] - f[1])) / 0.3, rel=1e-12)
    assert ratio["upper_95"].iloc[0] == pytest.approx(4.5268, abs=1e-4)
    assert ratio["lower_95"].iloc[0] == 0.0


def test_overdispersed_limits_at_target_zero_and_n_one_by_hand():
    """Spiegelhalter 2005 QSHC on the arcsine scale, by hand. Target 0, n = 10, phi = 2: asin sqrt(0) + 1.96 x
    sqrt(2) / (2 sqrt(10)) = 0.43826, back-transformed sin^2 = 0.18009; additive tau^2 = 0.01: 1.96 x sqrt(1/40 +
    0.01) = 0.36668, sin^2 = 0.12853. Target 1, n = 1, phi = 2: pi/2 - 1.95996 x sqrt(2)/2 = 0.18489, sin^2 = 0.03380;
    the other limit stays at 1 (clipped at pi/2)."""
    z = 1.959963984540054
    mult = bm.dispersed_limits("proportion", 0.0, [10], method="multiplicative", phi=2.0)
    assert mult["upper_95"].iloc[0] == pytest.approx(np.sin(z * np.sqrt(2) / (2 * np.sqrt(10))) ** 2, rel=1e-12)
    assert mult["upper_95"].iloc[0] == pytest.approx(0.18009, abs=1e-5)
    assert mult["lower_95"].iloc[0] == 0.0
    add = bm.dispersed_limits("proportion", 0.0, [10], method="additive", tau2=0.01)
    assert add["upper_95"].iloc[0] == pytest.approx(0.12853, abs=1e-5)
    top = bm.dispersed_limits("proportion", 1.0, [1], method="multiplicative", phi=2.0)
    assert top["lower_95"].iloc[0] == pytest.approx(np.sin(np.pi / 2 - z * np.sqrt(2) / 2) ** 2, rel=1e-12)
    assert top["lower_95"].iloc[0] == pytest.approx(0.03380, abs=1e-5)
    assert top["upper_95"].iloc[0] == 1.0
