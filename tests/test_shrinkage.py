"""Shrinkage estimates against independent fits: statsmodels MixedLM (continuous), a marginal likelihood
integrated with scipy's adaptive quadrature (yes/no) and statsmodels' BinomialBayesMixedGLM (the conditional
modes); and the properties a reader relies on: small units move further towards the average."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf
from scipy import integrate, optimize, stats
from scipy.special import expit, logit
from statsmodels.genmod.bayes_mixed_glm import BinomialBayesMixedGLM

from vbhc import benchmark, shrinkage


def _binary_case(seed: int = 1, units: int = 8, tau: float = 0.5):
    rng = np.random.default_rng(seed)
    sizes = rng.integers(5, 60, units)
    unit = np.repeat(np.arange(units), sizes)
    expected = expit(rng.normal(-1.5, 0.8, unit.size))
    effect = rng.normal(0, tau, units)
    y = (rng.random(unit.size) < expit(logit(expected) + effect[unit])).astype(float)
    return unit, y, expected


def _quadrature_reference(unit, y, expected):
    """Maximum marginal likelihood of logit p = logit(e) + alpha + u_j, u_j ~ N(0, tau^2), each unit's
    integral by scipy.integrate.quad over the exact per-cycle likelihood; then each unit's conditional mode
    and the curvature there by bounded scalar optimisation and finite differences."""
    groups = [(logit(expected[unit == j]), y[unit == j]) for j in np.unique(unit)]

    def unit_loglik(a, tau, o, yy):
        def density(v):
            eta = o + a + v
            return np.exp(np.sum(yy * eta - np.logaddexp(0, eta)) - v * v / (2 * tau * tau)) / (
                np.sqrt(2 * np.pi) * tau
            )

        return np.log(integrate.quad(density, -12 * tau, 12 * tau, epsabs=0, epsrel=1e-12, limit=200)[0])

    fit = optimize.minimize(
        lambda th: -sum(unit_loglik(th[0], np.exp(th[1]), o, yy) for o, yy in groups),
        [0.0, np.log(0.3)],
        method="Nelder-Mead",
        options={"xatol": 1e-9, "fatol": 1e-12, "maxiter": 2000},
    )
    alpha, tau = fit.x[0], float(np.exp(fit.x[1]))
    modes, sds = [], []
    for o, yy in groups:

        def neg(v, o=o, yy=yy):
            eta = o + alpha + v
            return -(np.sum(yy * eta - np.logaddexp(0, eta)) - v * v / (2 * tau * tau))

        mode = optimize.minimize_scalar(neg, bounds=(-5, 5), method="bounded", options={"xatol": 1e-12}).x
        h = 1e-4
        curvature = (neg(mode + h) - 2 * neg(mode) + neg(mode - h)) / h**2
        modes.append(mode)
        sds.append(1 / np.sqrt(curvature))
    return alpha, tau**2, np.array(modes), np.array(sds)


def test_binary_agrees_with_a_marginal_likelihood_integrated_by_quadrature():
    unit, y, expected = _binary_case()
    fit = shrinkage.shrink_binary(unit, y, expected)
    alpha, tau2, modes, sds = _quadrature_reference(unit, y, expected)
    assert tau2 > 0.05  # a case with real between-unit variance, not the boundary
    # reached: ~1e-7 on tau^2 and alpha, ~3e-8 on the modes (both optimisers stop at ~1e-9 in the parameters)
    assert fit.tau2 == pytest.approx(tau2, abs=1e-6)
    assert fit.centre == pytest.approx(alpha, abs=1e-6)
    np.testing.assert_allclose(fit.effect, modes, atol=1e-6)
    np.testing.assert_allclose(fit.effect_sd, sds, atol=1e-5)  # finite-difference curvature: ~1e-7
    # the risk-standardised rate: predicted / expected events (at the average unit) x the overall rate
    overall = y.mean()
    within = np.array(
        [1 / (expit(o) * (1 - expit(o))).sum() for o in (logit(expected[unit == j]) + alpha for j in range(8))]
    )
    lam = tau2 / (tau2 + within)
    var_alpha = 1 / (1 / (within + tau2)).sum()
    for j in range(len(modes)):
        o = logit(expected[unit == j])
        ratio = expit(o + alpha + modes[j]).sum() / expit(o + alpha).sum()
        assert fit.value[j] == pytest.approx(ratio * overall, rel=1e-5)
        spread = np.sqrt(sds[j] ** 2 + (1 - lam[j]) ** 2 * var_alpha)
        lo = expit(o + alpha + modes[j] - 1.959964 * spread).sum() / expit(o + alpha).sum()
        assert fit.lower[j] == pytest.approx(lo * overall, rel=1e-4)


@pytest.mark.parametrize(("seed", "tau"), [(1, 0.5), (3, 0.05), (7, 1.2)])
def test_the_fits_gradient_is_the_derivative_of_its_log_likelihood(seed, tau):
    """The quasi-Newton fit trusts _marginal_loglik's gradient (posterior means on the quadrature nodes): it must
    be the derivative of the log-likelihood it returns, here by central differences (Richardson-extrapolated)
    in alpha and log tau, at the optimum's neighbourhood and away from it."""
    unit, y, expected = _binary_case(seed=seed, tau=tau)
    sums = shrinkage._UnitSums(logit(expected), unit, 8)
    events = np.bincount(unit, weights=y, minlength=8)

    def loglik(alpha, log_tau):
        return shrinkage._marginal_loglik(sums, events, alpha, float(np.exp(log_tau)), np.zeros(8))[0]

    for alpha, log_tau in [(0.1, np.log(0.4)), (-0.6, np.log(1.5)), (0.3, np.log(0.08))]:
        gradient = shrinkage._marginal_loglik(sums, events, alpha, float(np.exp(log_tau)), np.zeros(8))[2]
        numeric = []
        for da, dl in [(1, 0), (0, 1)]:
            central = [
                (loglik(alpha + da * h, log_tau + dl * h) - loglik(alpha - da * h, log_tau - dl * h)) / (2 * h)
                for h in (1e-3, 2e-3)
            ]
            numeric.append((4 * central[0] - central[1]) / 3)
        # equal to ~1e-6 relative: the integral and its derivatives are each integrated on the nodes (and shifts past
        # +/-6 are clipped), so the two differ by the quadrature's own error, far below what moves the optimum
        np.testing.assert_allclose(gradient, numeric, rtol=1e-5, atol=1e-6)


@pytest.mark.filterwarnings("ignore::statsmodels.tools.sm_exceptions.ConvergenceWarning")  # gtol below its reach
def test_binary_conditional_modes_equal_binomial_bayes_mixed_glm():
    """BinomialBayesMixedGLM.fit_map maximises the joint posterior over (intercept, log tau, u); its tau is
    therefore not the marginal ML one (and its priors differ), so tau cannot be compared. What must agree is
    the shrinkage step: given its intercept and tau, our conditional modes equal its u (to its optimiser's
    gradient tolerance; ~1e-11 reached with gtol=1e-10). A constant expected risk makes its model ours."""
    rng = np.random.default_rng(5)
    sizes = rng.integers(20, 150, 10)
    unit = np.repeat(np.arange(10), sizes)
    y = (rng.random(unit.size) < expit(-1 + rng.normal(0, 1.2, 10)[unit])).astype(float)
    frame = pd.DataFrame({"y": y, "g": [f"u{j:02d}" for j in unit]})
    model = BinomialBayesMixedGLM.from_formula("y ~ 1", {"g": "0 + C(g)"}, frame)
    result = model.fit_map(minim_opts={"gtol": 1e-10})
    intercept, tau = float(result.fe_mean[0]), float(np.exp(result.vcp_mean[0]))
    assert tau > 0.3
    p0 = 0.25
    sums = shrinkage._UnitSums(np.full(unit.size, logit(p0)), unit, 10)
    events = np.bincount(unit, weights=y)
    modes = shrinkage._modes(sums, events, intercept - logit(p0), tau, np.zeros(10))
    np.testing.assert_allclose(modes, result.vc_mean, atol=1e-6)


@pytest.mark.filterwarnings("ignore::statsmodels.tools.sm_exceptions.ConvergenceWarning")  # gtol below its reach
def test_continuous_agrees_with_statsmodels_mixedlm():
    rng = np.random.default_rng(2)
    sizes = rng.integers(3, 80, 12)
    unit = np.repeat(np.arange(12), sizes)
    residual = rng.normal(0, 0.7, 12)[unit] + rng.normal(0, 2, unit.size)
    fit = shrinkage.shrink_continuous(unit, residual, overall=10.0)
    frame = pd.DataFrame({"r": residual, "g": unit})
    ref = smf.mixedlm("r ~ 1", frame, groups=frame["g"]).fit(reml=True, method="bfgs", gtol=1e-10)
    blups = np.array([ref.random_effects[j].iloc[0] for j in range(12)])
    # reached: ~4e-8 on tau^2, ~2e-8 on the BLUPs
    assert fit.tau2 == pytest.approx(ref.cov_re.iloc[0, 0], abs=1e-6)
    assert fit.sigma2 == pytest.approx(ref.scale, abs=1e-6)
    assert fit.centre == pytest.approx(ref.fe_params.iloc[0], abs=1e-6)
    np.testing.assert_allclose(fit.effect, blups, atol=1e-6)
    np.testing.assert_allclose(fit.value, 10.0 + ref.fe_params.iloc[0] + blups, atol=1e-6)


def test_continuous_by_hand_with_known_variances():
    """Two units by hand: lambda = tau^2 / (tau^2 + sigma^2/n), mu the precision-weighted mean."""
    residual = np.array([1.0, 3.0, -1.0, -1.0, 0.0, 0.0, 2.0])
    unit = np.array(["a", "a", "b", "b", "b", "b", "b"])
    fit = shrinkage.shrink_continuous(unit, residual, overall=0.0)
    tau2, sigma2 = fit.tau2, fit.sigma2
    mean = np.array([2.0, 0.0])
    n = np.array([2.0, 5.0])
    w = 1 / (tau2 + sigma2 / n)
    mu = (w * mean).sum() / w.sum()
    lam = tau2 / (tau2 + sigma2 / n)
    np.testing.assert_allclose(fit.value, mu + lam * (mean - mu), atol=1e-12)
    var = lam * sigma2 / n + (1 - lam) ** 2 / w.sum()
    np.testing.assert_allclose(fit.upper - fit.value, stats.norm.ppf(0.975) * np.sqrt(var), atol=1e-12)


def test_small_units_move_further_towards_the_average_than_large_ones():
    # yes/no: two units with the same observed (30%) and expected (15%) rate, 20 and 400 cycles
    rng = np.random.default_rng(11)
    units, ys, es = [], [], []
    for name, n, rate in [("small", 20, 0.3), ("large", 400, 0.3)] + [(f"o{k}", 200, 0.15) for k in range(8)]:
        events = round(n * rate)
        ys.append(rng.permutation(np.r_[np.ones(events), np.zeros(n - events)]))
        es.append(np.full(n, 0.15))
        units += [name] * n
    y, e = np.concatenate(ys), np.concatenate(es)
    fit = shrinkage.shrink_binary(units, y, e, overall=0.15)
    by = dict(zip(fit.units, fit.value, strict=True))
    adjusted = 0.3 / 0.15 * 0.15  # O/E x overall for both units
    assert 0.15 < by["small"] < by["large"] < adjusted
    pull = {k: (adjusted - by[k]) / (adjusted - 0.15) for k in ("small", "large")}
    assert pull["small"] > 2 * pull["large"]
    # continuous: the same mean residual (+3) with 5 and 200 cycles
    rng = np.random.default_rng(12)
    units = ["small"] * 5 + ["large"] * 200 + [f"o{k}" for k in range(8) for _ in range(50)]
    shift = np.r_[np.full(205, 3.0), np.repeat(rng.normal(0, 1, 8), 50)]
    noise = rng.normal(0, 4, len(units))
    noise[:5] -= noise[:5].mean()
    noise[5:205] -= noise[5:205].mean()
    fit = shrinkage.shrink_continuous(units, shift + noise, overall=0.0)
    by = dict(zip(fit.units, fit.value - fit.centre, strict=True))
    assert 0 < by["small"] < by["large"] < 3.0


def test_no_between_unit_variance_shrinks_everyone_to_the_average():
    rng = np.random.default_rng(4)
    unit = np.repeat(np.arange(6), 300)
    e = expit(rng.normal(-2, 0.5, unit.size))
    y = np.zeros(unit.size)
    for j in range(6):  # events exactly as expected per unit: no unit differs
        idx = np.flatnonzero(unit == j)
        y[idx[np.argsort(-e[idx])[: round(e[idx].sum())]]] = 1
    fit = shrinkage.shrink_binary(unit, y, e)
    assert fit.tau2 == 0.0
    assert fit.rankability() == 0.0
    np.testing.assert_allclose(fit.value, y.mean(), rtol=1e-9)
    assert (fit.lower < fit.value).all() and (fit.value < fit.upper).all()  # the overall rate's own uncertainty
    rank, lo, hi = shrinkage.expected_ranks(fit.effect, fit.effect_sd, lower_is_better=True)
    np.testing.assert_allclose(rank, 3.5)
    assert (lo == 1).all() and (hi == 6).all()


def test_rankability_is_the_benchmark_definition_with_the_models_variances():
    unit, y, expected = _binary_case(seed=3, units=10, tau=0.6)
    fit = shrinkage.shrink_binary(unit, y, expected)
    enters = fit.n >= 20
    assert fit.rankability(enters) == benchmark.rankability(fit.tau2, fit.within_variance[enters])
    # within-unit variance: the inverse information of the unit's effect at the average unit
    o = logit(expected[unit == 0])
    p = expit(o + fit.centre)
    assert fit.within_variance[0] == pytest.approx(1 / (p * (1 - p)).sum(), rel=1e-9)


def test_expected_rank_is_exact_and_its_interval_from_seeded_draws():
    effect = np.array([-0.5, 0.0, 0.1, 0.8])
    sd = np.array([0.1, 0.3, 0.3, 0.2])
    rank, lo, hi = shrinkage.expected_ranks(effect, sd, lower_is_better=True)
    draws = effect + sd * np.random.default_rng(0).standard_normal((200_000, 4))
    simulated = (draws.argsort(axis=1).argsort(axis=1) + 1).mean(axis=0)
    np.testing.assert_allclose(rank, simulated, atol=0.01)
    assert rank[0] < rank[1] < rank[2] < rank[3]
    assert (lo <= rank).all() and (rank <= hi).all() and lo[0] == 1 and hi[3] == 4
    again = shrinkage.expected_ranks(effect, sd, lower_is_better=True)
    np.testing.assert_array_equal(lo, again[1])
    higher = shrinkage.expected_ranks(effect, sd, lower_is_better=False)[0]
    np.testing.assert_allclose(higher, 5 - rank)


def test_per_unit_shrinkage_columns_are_withheld_where_exact_values_are():
    """A manager's anonymised other units and a report's suppressed cells must not carry the shrunken
    interval or the rank interval (their width is the unit's precision, which gives n back); an other unit's
    shrunken value is rounded and its expected rank shown as a whole number, a suppressed cell has neither."""
    from vbhc import access
    from vbhc.reports import privacy

    per_unit = {
        shrinkage.SHRUNKEN_VALUE,
        shrinkage.SHRUNKEN_LOWER,
        shrinkage.SHRUNKEN_UPPER,
        shrinkage.EXPECTED_RANK,
        shrinkage.EXPECTED_RANK_LOWER,
        shrinkage.EXPECTED_RANK_UPPER,
    }
    assert per_unit - {shrinkage.SHRUNKEN_VALUE, shrinkage.EXPECTED_RANK} <= set(access.EXACT_COLUMNS)
    assert shrinkage.SHRUNKEN_VALUE in access.ROUNDED_COLUMNS
    assert shrinkage.EXPECTED_RANK in access.WHOLE_COLUMNS
    assert per_unit <= set(privacy.WITHHELD_COLUMNS)
    indicator_level = set(shrinkage.COLUMNS) - per_unit
    assert indicator_level == {shrinkage.SHRINKAGE_TAU2, shrinkage.SHRINKAGE_RANKABILITY, shrinkage.RANKED_UNITS}


def test_without_between_unit_variance_alpha_calibrates_expected_to_observed_events():
    rng = np.random.default_rng(4)
    unit = np.repeat(np.arange(6), 300)
    e = expit(rng.normal(-2, 0.5, unit.size))
    y = np.zeros(unit.size)
    for j in range(6):
        idx = np.flatnonzero(unit == j)
        y[idx[np.argsort(-e[idx])[: round(e[idx].sum() * 1.2)]]] = 1  # 20% more events everywhere
    fit = shrinkage.shrink_binary(unit, y, e)
    assert fit.tau2 == 0.0
    assert expit(logit(e) + fit.centre).sum() == pytest.approx(y.sum(), rel=1e-10)


def test_nothing_to_estimate_gives_no_estimate_and_no_warning():
    with np.errstate(all="raise"):
        constant = shrinkage.shrink_continuous(["a", "a", "b", "b"], [1.0, 1.0, 2.0, 2.0], overall=0.0)
        assert np.isnan(constant.value).all() and np.isnan(constant.tau2)
        one_unit = shrinkage.shrink_binary(["a"] * 5, [0, 1, 0, 0, 1], [0.3] * 5)
        assert np.isnan(one_unit.value).all() and list(one_unit.n) == [5]
        no_events = shrinkage.shrink_binary(["a", "a", "b"], [0, 0, 0], [0.1, 0.2, 0.1])
        assert np.isnan(no_events.value).all()


def test_all_events_in_one_unit_gives_no_estimate_rather_than_rates_above_one():
    """Five units of 20 cycles at an expected risk of 10%: 10 events in one unit, none in the other four. By direct
    integration of the marginal likelihood (trapezoid rule over u on [-80, 80], scipy Nelder-Mead) its maximum lies
    at alpha = -5.713, tau = 5.415, outside the search (|alpha| <= 3, tau <= 5), where log L is -18.3823 against
    -18.6763 at the corner the fit stopped in. The estimates there were the bounds': the unit with 50% events read a
    shrunken rate of 876% and the others' upper limits 862%. No estimate is the honest answer, as without events."""
    units = np.repeat(np.arange(5), 20)
    outcome = np.zeros(100)
    outcome[:10] = 1.0
    expected = np.full(100, 0.1)

    def loglik(alpha: float, tau: float) -> float:
        v = np.linspace(-80, 80, 200001)
        s = logit(0.1) + alpha + v
        weight = stats.norm.logpdf(v, 0, tau)
        return sum(
            float(np.log(np.trapezoid(np.exp(k * s - 20 * np.logaddexp(0, s) + weight), v))) for k in (10, 0, 0, 0, 0)
        )

    assert loglik(-5.713, 5.415) == pytest.approx(-18.3823, abs=1e-4)
    assert loglik(-3.0, 5.0) == pytest.approx(-18.6763, abs=1e-4)
    fit = shrinkage.shrink_binary(units, outcome, expected)
    assert np.isnan(fit.value).all() and np.isnan(fit.lower).all() and np.isnan(fit.upper).all()
    assert np.isnan(fit.tau2)
    np.testing.assert_array_equal(fit.n, np.full(5, 20.0))


def _direct_node_sums(offset, codes, n_units):
    """The per-unit sums at the Chebyshev nodes as first written: one np.logaddexp per cycle and node."""
    k = np.arange(shrinkage._TERMS)
    nodes = shrinkage._HALF_WIDTH * np.cos(np.pi * (k + 0.5) / shrinkage._TERMS)
    bins = (np.asarray(codes, dtype=np.intp)[:, None] * shrinkage._TERMS + k).ravel()
    weights = np.logaddexp(0.0, np.asarray(offset, dtype=float)[:, None] + nodes).ravel()
    return np.bincount(bins, weights=weights, minlength=n_units * shrinkage._TERMS).reshape(n_units, -1)


def _offsets_with_ties_and_extremes(rng, size):
    """Offsets as a case-mix model gives them: continuous ones, many ties (categorical case mix), the clipped
    logit(1e-12) values and far beyond (where e^offset over- or underflows)."""
    continuous = rng.normal(-1.5, 2.0, size)
    tied = rng.choice(rng.normal(-1.0, 1.5, 7), size)
    extreme = rng.choice([logit(1e-12), logit(1 - 1e-12), -40.0, 45.0, -650.0, 700.0, 800.0, -900.0], size)
    which = rng.integers(0, 3, size)
    return np.choose(which, [continuous, tied, extreme])


@pytest.mark.parametrize(("seed", "units"), [(1, 12), (2, 12), (3, 70_000)])  # 70,000: codes beyond 16 bits
def test_per_unit_node_sums_equal_the_direct_sum_over_cycles(seed, units):
    rng = np.random.default_rng(seed)
    size = 30_000
    offset = _offsets_with_ties_and_extremes(rng, size)
    codes = rng.integers(0, units, size)
    codes[codes == 5] = 4  # unit 5 without cycles; the last two neither
    offset[codes == 7] = rng.choice([-3.0, 0.5], int((codes == 7).sum()))  # a unit with only two offset values
    offset[codes == 9] = 2.0  # a unit with one
    got = shrinkage._node_sums(offset, codes, units + 2)
    want = _direct_node_sums(offset, codes, units + 2)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=0)
    assert (got[[5, units, units + 1]] == 0).all()


def test_shrinkage_fit_is_unchanged_by_how_the_per_unit_sums_are_computed(monkeypatch):
    """alpha, tau and every unit's effect, sd and shrunken value and interval as with the direct sums, to 2e-8: the
    fit's own precision. The marginal likelihood is flat at its maximum, so a change of its last digit (~1e-13 of
    1076) moves the maximum by ~sqrt(1e-13 / curvature): on an AMD EPYC the two sums (the same terms in another
    order) gave effects 1.7e-9 apart and tau 1.6e-9 relative (1e-10 held on the Intel machines only by luck); a
    wrong sum (one node's term missing or doubled in one unit) moves them by 1e-5 (the outermost node) to 1.5."""
    rng = np.random.default_rng(7)
    units = 25
    unit = np.repeat(np.arange(units), rng.integers(20, 400, units))
    case_mix = rng.choice(logit(np.array([0.02, 0.05, 0.1, 0.2, 0.3])), unit.size)  # many shared expected values
    continuous = rng.normal(-1.5, 0.8, unit.size)
    offset = np.where(rng.random(unit.size) < 0.5, case_mix, continuous)
    y = (rng.random(unit.size) < expit(offset + rng.normal(0, 0.4, units)[unit])).astype(float)
    expected = expit(offset)
    fit = shrinkage.shrink_binary(unit, y, expected)
    monkeypatch.setattr(shrinkage, "_node_sums", _direct_node_sums)
    direct = shrinkage.shrink_binary(unit, y, expected)
    assert direct.tau2 > 0.01
    for name in ("effect", "effect_sd", "value", "lower", "upper", "within_variance"):
        np.testing.assert_allclose(getattr(fit, name), getattr(direct, name), rtol=2e-8, atol=2e-8, err_msg=name)
    assert np.sqrt(fit.tau2) == pytest.approx(np.sqrt(direct.tau2), rel=2e-8)
    assert fit.centre == pytest.approx(direct.centre, rel=2e-8, abs=1e-12)


def test_per_unit_sums_need_no_temporary_of_cycles_by_nodes():
    """At 1M cycles an n x 64 temporary is 512 MB (the direct form held three): the sums' peak memory stays a small
    multiple of the cycles' own arrays."""
    import tracemalloc

    rng = np.random.default_rng(3)
    size = 200_000
    offset = rng.normal(-1.5, 1.0, size)  # all distinct: no saving from ties
    codes = rng.integers(0, 40, size)
    tracemalloc.start()
    try:
        shrinkage._UnitSums(offset, codes, 40)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 160 * size + 16_000_000  # ~12 numbers per cycle and a few 4 MB blocks; the direct form 1.5 kB


def test_the_fit_does_not_depend_on_the_order_of_the_cycles():
    """The per-unit sums take the cycles by unit and offset, so the same cycles in another order give the same fit to
    the bit (summed in the cycles' order, tau^2 moved by up to 1e-7 on a 1M-cycle demo when the rows came in another
    order)."""
    unit, y, expected = _binary_case(seed=4, units=20, tau=0.8)
    order = np.random.default_rng(5).permutation(unit.size)
    fit = shrinkage.shrink_binary(unit, y, expected)
    shuffled = shrinkage.shrink_binary(unit[order], y[order], expected[order])
    assert fit.tau2 > 0 and shuffled.tau2 == fit.tau2 and shuffled.centre == fit.centre
    for name in ("effect", "effect_sd", "value", "lower", "upper"):
        assert np.array_equal(getattr(shuffled, name), getattr(fit, name)), name
