"""An action's before/after view (vbhc.action_effect): the statistics against statsmodels/scipy and published
worked examples, the windows and verdicts on hand-made cycles, and the demo's planted improvement found (and the
other action's absence of one)."""

from __future__ import annotations

import datetime as dt
import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from statsmodels.stats.proportion import confint_proportions_2indep, proportion_confint
from statsmodels.stats.weightstats import CompareMeans, DescrStatsW

from vbhc import action_effect
from vbhc.action_effect import Outcome, exact_rate_ratio, newcombe_difference, welch_difference
from vbhc.catalog import default_catalog
from vbhc.indicators import IndicatorResult

START = dt.date(2024, 10, 1)


# --------------------------------------------------------------------------------------------- statistics
@pytest.mark.parametrize(
    ("after", "before", "published"),
    [
        ((56, 70), (48, 80), (0.0524, 0.3339)),  # Newcombe 1998, Stat Med 17:873, table II example (a), method 10
        ((9, 10), (3, 10), (0.1705, 0.8090)),  # example (c)
    ],
)
def test_newcombe_matches_the_published_worked_examples(after, before, published):
    diff, lower, upper = newcombe_difference(*after, *before)
    assert diff == pytest.approx(after[0] / after[1] - before[0] / before[1])
    assert (round(lower, 4), round(upper, 4)) == published


@pytest.mark.parametrize(
    "counts",
    [(0, 40, 5, 40), (3, 120, 15, 110), (30, 300, 30, 300), (440, 443, 380, 385), (7, 9, 0, 12), (50, 50, 49, 50)],
)
def test_newcombe_equals_statsmodels(counts):
    _, lower, upper = newcombe_difference(*counts)
    low, high = confint_proportions_2indep(*counts, method="newcomb", compare="diff")
    assert (lower, upper) == pytest.approx((low, high), abs=1e-12)


def test_newcombe_refuses_impossible_counts():
    with pytest.raises(ValueError, match="events <= n"):
        newcombe_difference(5, 4, 1, 10)
    with pytest.raises(ValueError, match="n > 0"):
        newcombe_difference(0, 0, 1, 10)


def test_welch_by_hand_and_against_scipy_and_statsmodels():
    after, before = np.array([1.0, 2, 3, 4]), np.array([2.0, 4, 6, 8, 10])
    diff, lower, upper = welch_difference(after, before)
    # by hand: variances 5/3 and 10, se^2 = 5/12 + 2, df = se^4 / ((5/12)^2 / 3 + 2^2 / 4) = 5.521
    se2 = 5 / 12 + 2
    df = se2**2 / ((5 / 12) ** 2 / 3 + 1)
    assert df == pytest.approx(5.5208, abs=1e-4)
    half = stats.t.ppf(0.975, df) * math.sqrt(se2)
    assert (diff, lower, upper) == pytest.approx((-3.5, -3.5 - half, -3.5 + half))
    scipy_ci = stats.ttest_ind(after, before, equal_var=False).confidence_interval(0.95)
    assert (lower, upper) == pytest.approx((scipy_ci.low, scipy_ci.high))
    rng = np.random.default_rng(7)
    a, b = rng.normal(5.2, 1.0, 40), rng.normal(6.0, 2.5, 90)
    _, lower, upper = welch_difference(a, b)
    expected = CompareMeans(DescrStatsW(a), DescrStatsW(b)).tconfint_diff(usevar="unequal")
    assert (lower, upper) == pytest.approx(expected)
    with pytest.raises(ValueError, match="at least 2"):
        welch_difference([1.0], [1.0, 2.0])


def test_exact_rate_ratio_is_clopper_pearson_of_the_split():
    ratio, lower, upper = exact_rate_ratio(12, 20.0, 30, 25.0)
    assert ratio == pytest.approx((12 / 20) / (30 / 25))
    p_low, p_high = proportion_confint(12, 42, alpha=0.05, method="beta")
    assert lower == pytest.approx(p_low / (1 - p_low) * 25 / 20)
    assert upper == pytest.approx(p_high / (1 - p_high) * 25 / 20)
    # no event after the start: the ratio is 0 and the lower limit too
    ratio, lower, upper = exact_rate_ratio(0, 10.0, 9, 10.0)
    assert (ratio, lower) == (0.0, 0.0) and upper == pytest.approx(
        (1 - 0.025 ** (1 / 9)) / 0.025 ** (1 / 9)  # Clopper-Pearson upper for 0 of 9: 1 - (a/2)^(1/9)
    )
    assert all(math.isnan(v) for v in exact_rate_ratio(0, 10.0, 0, 12.0))


# --------------------------------------------------------------------------------------------- windows and verdicts
def _cycles(rng, indicator: str, first: dt.date, days: int, n: int, rate: float | None, mean: float = 0.0):
    dates = [first + dt.timedelta(days=int(d)) for d in np.sort(rng.integers(0, days, n))]
    if rate is None:
        observed = rng.normal(mean, 2.0, n)
        expected = np.full(n, np.nan)
    else:
        observed = (np.arange(n) < round(rate * n)).astype(float)
        rng.shuffle(observed)
        expected = np.full(n, 0.15)
    return pd.DataFrame(
        {"indicator": indicator, "unit": "H01", "index_date": pd.to_datetime(dates), "observed": observed,
         "expected": expected}
    )  # fmt: skip


def _result(frames) -> IndicatorResult:
    values = pd.concat(frames, ignore_index=True)
    data = SimpleNamespace(condition=default_catalog().condition("colorectal_cancer"))
    return IndicatorResult("colorectal_cancer", "hospital", None, pd.DataFrame(), cycle_values=values, data=data)


def test_a_fall_in_a_lower_is_better_rate_is_an_improvement_with_newcombe_and_oe():
    rng = np.random.default_rng(1)
    # a year before the start at 20%, then 300 days after at 8%; another unit's cycles fix the data's last date
    before = _cycles(rng, "anastomotic_leak", START - dt.timedelta(days=365), 365, 200, 0.20)
    after = _cycles(rng, "anastomotic_leak", START, 300, 150, 0.08)
    other = _cycles(rng, "anastomotic_leak", START + dt.timedelta(days=299), 1, 5, 0.2).assign(unit="H02")
    result = _result([before, after, other])
    effect = action_effect.action_effect(result, "anastomotic_leak", "H01", START)
    assert effect.data_until == START + dt.timedelta(days=299)
    # equal windows: 300 days either side, so the before window leaves out the first 65 days of the year
    assert (effect.after.first, effect.after.last) == (START, START + dt.timedelta(days=299))
    assert (effect.before.first, effect.before.last) == (START - dt.timedelta(days=300), START - dt.timedelta(days=1))
    kept = before[before["index_date"] >= pd.Timestamp(START - dt.timedelta(days=300))]
    assert (effect.before.n, effect.before.events) == (len(kept), kept["observed"].sum())
    assert (effect.after.n, effect.after.events) == (150, 12)
    low, high = confint_proportions_2indep(12, 150, kept["observed"].sum(), len(kept), method="newcomb")
    assert (effect.lower, effect.upper) == pytest.approx((low, high))
    assert effect.difference == pytest.approx(12 / 150 - kept["observed"].mean())
    assert effect.outcome is Outcome.IMPROVED and effect.method == "newcombe"
    assert effect.after.oe == pytest.approx(12 / (150 * 0.15)) and effect.adjusted
    assert effect.oe_ratio == pytest.approx(effect.after.oe / effect.before.oe)
    sentence = effect.sentence("en")
    assert sentence.startswith("rate fell from ") and "to 8.0%; difference −" in sentence
    low_text, high_text = (f"{abs(v) * 100:.1f}" for v in (low, high))
    assert f" percentage points (95% CI −{low_text} to −{high_text}): " in sentence  # once, not on the bounds
    assert sentence.endswith("more than chance, an improvement")
    assert effect.sentence("nl").startswith("percentage daalde van ") and "procentpunt" in effect.sentence("nl")
    assert effect.adjusted_sentence("en").startswith("Adjusted for case mix: O/E ")


def test_no_difference_is_no_change_and_a_higher_rate_is_a_deterioration():
    rng = np.random.default_rng(2)
    same = [
        _cycles(rng, "anastomotic_leak", START - dt.timedelta(days=365), 365, 300, 0.15),
        _cycles(rng, "anastomotic_leak", START, 365, 300, 0.15),
    ]
    effect = action_effect.action_effect(_result(same), "anastomotic_leak", "H01", START)
    assert effect.outcome is Outcome.NO_CHANGE and effect.lower < 0 < effect.upper
    assert "no change shown" in effect.sentence("en")
    worse = [
        _cycles(rng, "anastomotic_leak", START - dt.timedelta(days=365), 365, 300, 0.10),
        _cycles(rng, "anastomotic_leak", START, 365, 300, 0.25),
    ]
    assert action_effect.action_effect(_result(worse), "anastomotic_leak", "H01", START).outcome is Outcome.WORSENED


def test_a_continuous_indicator_uses_welch_and_has_no_oe():
    rng = np.random.default_rng(3)
    frames = [
        _cycles(rng, "length_of_stay", START - dt.timedelta(days=200), 200, 60, None, mean=8.0),
        _cycles(rng, "length_of_stay", START, 200, 50, None, mean=6.0),
    ]
    effect = action_effect.action_effect(_result(frames), "length_of_stay", "H01", START)
    kept = frames[0][frames[0]["index_date"] >= pd.Timestamp(effect.before.first)]
    before, after = kept["observed"], frames[1]["observed"]
    assert effect.before.n == len(kept) < 60  # the before window is as long as the after one
    ci = stats.ttest_ind(after, before, equal_var=False).confidence_interval(0.95)
    assert (effect.lower, effect.upper) == pytest.approx((ci.low, ci.high))
    assert effect.method == "welch" and effect.outcome is Outcome.IMPROVED and not effect.adjusted
    assert effect.sentence("en").startswith("mean fell from ") and effect.adjusted_sentence("en") == ""


def test_too_few_cycles_or_no_data_since_the_start_says_so():
    rng = np.random.default_rng(4)
    frames = [
        _cycles(rng, "anastomotic_leak", START - dt.timedelta(days=365), 365, 200, 0.2),
        _cycles(rng, "anastomotic_leak", START, 30, 8, 0.0),
    ]
    effect = action_effect.action_effect(_result(frames), "anastomotic_leak", "H01", START)
    assert effect.outcome is Outcome.TOO_FEW and effect.after.n == 8 and effect.min_n == 20
    assert effect.sentence("en").startswith("Too few patients since the start to tell: care cycles after the start 8,")
    late = action_effect.action_effect(_result(frames), "anastomotic_leak", "H01", START + dt.timedelta(days=400))
    assert late.outcome is Outcome.NOT_STARTED and late.before is None
    assert "too few patients since the start to tell" in late.sentence("en")
    with pytest.raises(ValueError, match="yes/no or continuous"):
        action_effect.action_effect(_result(frames), "volume", "H01", START)


# --------------------------------------------------------------------------------------------- the demo
@pytest.mark.slow  # a demo registry generated, imported and computed (tests/conftest.py: _start_order)
def test_the_demo_plants_two_improvements_that_its_history_s_actions_find(demo_registry, tmp_path):
    """The default demo: two planted improvements in different condition teams of the own hospital (leaks after a
    colorectal resection, readmissions after a hip replacement). The demo history's actions under way start when
    they do, and vbhc.action_effect finds both (the 95% interval excludes no change, crude and adjusted for case
    mix); the earlier, done action's year after its start shows no change."""
    from tests.registry_copy import copy_registry
    from vbhc import demo_history, improvement
    from vbhc.improvement import ActionStatus
    from vbhc.results import ResultStore, ViewKey

    engine, truth = demo_registry
    own = truth["own_hospital"]
    planted = {(i["condition"], i["indicator"]): i for i in truth["improvements"]}
    assert set(planted) == {("colorectal_cancer", "anastomotic_leak"), ("hip_osteoarthritis", "readmission_30d")}
    assert {i["hospital"] for i in planted.values()} == {own}
    assert all(i["odds_ratio_before"] >= 2 and i["odds_ratio_after"] < 1 for i in planted.values())

    # the history as `vbhc demo` writes it, on a copy (the shared registry stays without one)
    copy = copy_registry(engine, tmp_path / "history.db")
    try:
        benchmarks = demo_history.benchmarks_from_store(copy, sorted({c for c, _ in planted}))
        demo_history.write_history(copy, truth, benchmarks)
        acts = improvement.actions(copy, demo_history.DEMO_VIEWER)
    finally:
        copy.dispose()
    assert sorted((a.condition, a.status) for a in acts) == [
        ("colorectal_cancer", ActionStatus.DONE),
        ("colorectal_cancer", ActionStatus.IN_PROGRESS),
        ("hip_osteoarthritis", ActionStatus.IN_PROGRESS),
    ]
    results = {}
    store = ResultStore(engine)
    for action in acts:
        [indicator] = action.indicator_ids
        assert action.unit == own
        if action.condition not in results:  # the hospital table the shared registry's store keeps
            results[action.condition] = store.result(ViewKey.of(action.condition, "hospital"))
        effect = action_effect.action_effect(results[action.condition], indicator, own, action.start)
        if action.status == ActionStatus.IN_PROGRESS:
            assert action.start.isoformat() == planted[(action.condition, indicator)]["start"]
            assert effect.outcome is Outcome.IMPROVED, effect.sentence("en")
            assert effect.upper < -0.02 and effect.after.n >= 200 and effect.before.n >= 200, effect
            assert effect.after.oe < effect.before.oe and effect.oe_ratio_upper < 1, effect.adjusted_sentence("en")
        else:  # the earlier action on the same outlier: the excess was still there a year later
            assert effect.outcome is Outcome.NO_CHANGE, effect.sentence("en")
            assert effect.lower < 0 < effect.upper
    # an indicator of the same unit without a planted change shows none at the same start
    leak_start = dt.date.fromisoformat(planted[("colorectal_cancer", "anastomotic_leak")]["start"])
    mortality = action_effect.action_effect(results["colorectal_cancer"], "mortality_30d", own, leak_start)
    assert mortality.outcome is Outcome.NO_CHANGE, mortality.sentence("en")


def test_oe_counts_only_the_cycles_the_case_mix_model_could_judge():
    """A cycle without an expected value (a case-mix value missing) stays in the crude rate, not in O/E."""
    rng = np.random.default_rng(5)
    before = _cycles(rng, "anastomotic_leak", START - dt.timedelta(days=365), 365, 100, 0.20)
    after = _cycles(rng, "anastomotic_leak", START, 365, 100, 0.10)
    after.loc[after.index[:10], "expected"] = np.nan
    effect = action_effect.action_effect(_result([before, after]), "anastomotic_leak", "H01", START)
    modelled = after.iloc[10:]
    assert (effect.after.n, effect.after.events) == (100, 10)
    assert (effect.after.observed, effect.after.expected) == pytest.approx((modelled["observed"].sum(), 0.15 * 90))
    assert effect.after.oe == pytest.approx(modelled["observed"].sum() / (0.15 * 90))


def test_the_sentence_signs_the_difference_but_not_a_rounded_zero():
    window = action_effect.Window(START, START, 100, 0.15)
    effect = action_effect.Effect(
        "anastomotic_leak", "H01", "proportion", "lower", START, window, window, Outcome.NO_CHANGE,
        difference=-0.0001, lower=-0.031, upper=0.0309,
    )  # fmt: skip
    assert effect.sentence("en") == (
        "rate stayed at 15.0%; difference 0.0 percentage points (95% CI −3.1 to +3.1): "
        "no change shown, the difference is within what chance gives"
    )
    assert "verschil 0,0\u00a0procentpunt (95%-BI −3,1 tot +3,1)" in effect.sentence("nl")
