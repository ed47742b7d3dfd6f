"""vbhc.spc against values worked out by hand from the published rules (Anhøj & Olesen 2014; NHS England
Making Data Count / NHSRplotthedots; Montgomery for XmR and p charts): every rule on a series where it fires
and on one where it must not, the thresholds at n = 10, 20, 30, MR screening, frozen baseline, rebase, and the
variation and assurance icons for higher-is-better and lower-is-better indicators."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from vbhc import spc


# ------------------------------------------------------------------------------------------ Anhøj
@pytest.mark.parametrize(
    ("n", "run_limit", "crossings_limit"),
    # round(log2 n + 3): log2 10 = 3.32 -> 6, log2 20 = 4.32 -> 7, log2 30 = 4.91 -> 8.
    # qbinom(0.05, n - 1, 0.5): n = 10: P(X<=1) = 10/512 = .0195, P(X<=2) = 46/512 = .0898 -> 2;
    # n = 20: P(X<=5) = 16664/2^19 = .0318, P(X<=6) = 43796/2^19 = .0835 -> 6; n = 30 -> 10 (Anhøj's table).
    [(10, 6, 2), (20, 7, 6), (30, 8, 10)],
)
def test_anhoej_thresholds(n, run_limit, crossings_limit):
    assert spc.anhoej_run_limit(n) == run_limit
    assert spc.anhoej_crossings_limit(n) == crossings_limit


def test_crossings_limit_is_the_binomial_5th_percentile():
    def cdf(x: int, n: int) -> float:
        return sum(math.comb(n - 1, i) for i in range(x + 1)) / 2 ** (n - 1)

    for n in range(2, 60):
        k = spc.anhoej_crossings_limit(n)
        assert cdf(k, n) >= 0.05 and (k == 0 or cdf(k - 1, n) < 0.05), n


def test_crossings_limit_is_scipys_binomial_quantile():
    """The whole-number limit equals the scipy.stats.binom.cdf version it replaced (so no chart changes) for every
    series length up to 1,500 points (charts need no scipy.stats for it, vbhc.lazy)."""
    from scipy import stats

    for n in range(2, 1501):
        cdf = stats.binom.cdf(np.arange(n), n - 1, 0.5)
        assert spc.anhoej_crossings_limit(n) == int(np.argmax(cdf >= 0.05 - 1e-12)), n


def _series(signs: list[int]) -> np.ndarray:
    """Values 1 above / -1 below a centre of 0 (0 = on the centre line)."""
    return np.asarray(signs, dtype=float)


@pytest.mark.parametrize("n", [10, 20, 30])
def test_anhoej_runs_fire_just_above_the_limit(n):
    limit = spc.anhoej_run_limit(n)
    alternate = [1 if i % 2 else -1 for i in range(n)]
    at_limit = [1] * limit + alternate[limit:]  # a run of exactly `limit`: no signal
    if at_limit[limit] == 1:
        at_limit[limit] = -1
    above = [1] * (limit + 1) + alternate[limit + 1 :]
    if above[limit + 1] == 1:
        above[limit + 1] = -1
    a = spc.anhoej(_series(at_limit), 0.0)
    assert a["longest_run"] == limit and not a["runs_signal"] and not a["run_points"].any()
    b = spc.anhoej(_series(above), 0.0)
    assert b["longest_run"] == limit + 1 and b["runs_signal"]
    assert b["run_points"].tolist() == [True] * (limit + 1) + [False] * (n - limit - 1)


@pytest.mark.parametrize("n", [10, 20, 30])
def test_anhoej_crossings_fire_below_the_limit(n):
    limit = spc.anhoej_crossings_limit(n)

    def with_crossings(k: int) -> list[int]:
        # k crossings: k + 1 runs of (nearly) equal length
        bounds = np.linspace(0, n, k + 2).round().astype(int)
        out = []
        for j in range(k + 1):
            out += [1 if j % 2 == 0 else -1] * (bounds[j + 1] - bounds[j])
        return out

    ok = spc.anhoej(_series(with_crossings(limit)), 0.0)
    assert ok["crossings"] == limit and not ok["crossings_signal"]
    few = spc.anhoej(_series(with_crossings(limit - 1)), 0.0)
    assert few["crossings"] == limit - 1 and few["crossings_signal"]


def test_points_on_the_centre_line_are_not_useful():
    a = spc.anhoej(_series([1, 0, 1, 0, -1, -1, 0, 1, 1, 1]), 0.0)
    assert a["n_useful"] == 7
    assert a["crossings"] == 2  # + + | - - | + + +
    assert a["longest_run"] == 3


# ------------------------------------------------------------------------------------------ rules
def _rules(values, centre=0.0, sigma=1.0, **kw):
    return spc.point_rules(np.asarray(values, dtype=float), centre, sigma, **kw)


def test_beyond_three_sigma():
    r = _rules([0.5, -0.5, 3.01, -0.5, 0.5, -3.2, 3.0, 0.2])
    assert r["beyond_limits"].tolist() == [False, False, True, False, False, True, False, False]  # 3.0 is on it
    assert r["rule"].iloc[2] == "beyond_limits"


def test_two_of_three_beyond_two_sigma_same_side():
    # 2.5 and 2.2 within three points, both above: fire (the middle point is not flagged)
    r = _rules([0.1, -0.2, 2.5, 0.3, 2.2, -0.4, 0.3, -0.1])
    assert r["two_of_three"].tolist() == [False, False, True, False, True, False, False, False]
    assert r["rule"].tolist()[2] == "two_of_three"
    # mixed sides: one above and one below 2 sigma never fire
    mixed = _rules([0.1, -0.2, 2.5, -2.4, 0.3, -0.1, 0.2, -0.3])
    assert not mixed["two_of_three"].any()
    # same side but four points apart: no
    apart = _rules([2.5, 0.1, -0.1, 2.6, 0.2, -0.2])
    assert not apart["two_of_three"].any()
    # exactly 2 sigma is not beyond
    edge = _rules([2.0, 2.0, 0.1, -0.1])
    assert not edge["two_of_three"].any()


def test_shift_of_seven_not_six():
    six = _rules([0.5] * 6 + [-0.5, 0.5, -0.5])
    assert not six["shift"].any()
    seven = _rules([-0.5, 0.5, 0.4, 0.3, 0.2, 0.6, 0.7, 0.1, -0.3])
    assert seven["shift"].tolist() == [False] + [True] * 7 + [False]
    broken = _rules([0.5, 0.5, 0.5, 0.0, 0.5, 0.5, 0.5, 0.5])  # a point on the centre line breaks the run
    assert not broken["shift"].any()


def test_trend_of_six_not_five():
    five = _rules([0.0, -1.0, -0.5, 0.0, 0.5, 1.0, 0.2, 0.1])  # -1, -0.5, 0, 0.5, 1: five rising points
    assert not five["trend"].any()
    six = _rules([0.3, -1.0, -0.5, -0.2, 0.0, 0.5, 1.0, 0.2])
    assert six["trend"].tolist() == [False, True, True, True, True, True, True, False]
    tie = _rules([-1.0, -0.5, -0.5, 0.0, 0.5, 1.0, 1.5])  # a tie breaks it
    assert not tie["trend"].any()


def test_no_rule_fires_on_a_quiet_series():
    r = _rules([0.5, -0.5, 1.0, -1.0, 0.2, -0.3, 1.5, -1.5, 0.4, -0.4, 0.3, -0.2])
    assert not r["signal"].any() and set(r["rule"]) == {""} and set(r["point_type"]) == {"common_cause"}


def test_rules_run_within_segments_only():
    values = [0.5] * 4 + [0.5] * 4  # eight above the centre, but cut in two segments of four
    assert _rules(values)["shift"].all()
    assert not _rules(values, segments=[0] * 4 + [1] * 4)["shift"].any()


def test_point_type_follows_the_direction():
    values = [0.1, -0.2, 3.5, 0.1, -3.5, 0.2]
    up = _rules(values, direction="higher")
    down = _rules(values, direction="lower")
    none = _rules(values)
    assert up["point_type"].tolist()[2::2] == ["improvement", "concern"]
    assert down["point_type"].tolist()[2::2] == ["concern", "improvement"]
    assert none["point_type"].tolist()[2] == "neutral"
    # a trend alone takes the trend's direction, even where its points cross the centre
    falling = _rules([0.2, 1.0, 0.6, 0.2, -0.2, -0.6, -1.0, 0.0], direction="lower")
    assert falling["trend"].iloc[1:7].all()
    assert set(falling["point_type"].iloc[1:7]) == {"improvement"}
    # a falling trend that is also a shift above the centre: the trend's direction wins (NHSRplotthedots order)
    above = _rules([3.0, 2.5, 2.0, 1.5, 1.0, 0.5, 0.6], sigma=10.0, direction="lower")
    assert above["shift"].all() and above["trend"].tolist() == [True] * 6 + [False]
    # 7 useful points: Anhøj's limit round(log2 7 + 3) = 6, so the run of 7 fires too
    assert above["rule"].iloc[0] == "trend" and above["rules"].iloc[0] == "trend; shift; anhoej_run"
    assert above["point_type"].iloc[0] == "improvement" and above["point_type"].iloc[6] == "concern"


# ------------------------------------------------------------------------------------------ charts
def test_xmr_limits_with_and_without_mr_screening():
    values = [10, 12, 11, 13, 12, 30, 12, 11, 13, 12]
    # moving ranges 2,1,2,1,18,18,1,2,1: mean 46/9 = 5.111; 3.267 x 5.111 = 16.70 -> the two 18s go;
    # screened mean = 10/7 = 1.4286
    raw = spc.xmr_chart(values, screen_mr=False)
    screened = spc.xmr_chart(values)
    mean = sum(values) / 10
    assert raw["centre"].iloc[0] == pytest.approx(mean)
    assert raw["upper"].iloc[0] == pytest.approx(mean + 3 * (46 / 9) / 1.128)
    assert screened["upper"].iloc[0] == pytest.approx(mean + 3 * (10 / 7) / 1.128)
    assert screened["lower_2s"].iloc[0] == pytest.approx(mean - 2 * (10 / 7) / 1.128)
    assert raw["mr_upper"].iloc[0] == pytest.approx(3.267 * 46 / 9)
    assert spc.mean_moving_range(values) == pytest.approx(10 / 7)
    # 20 points alternating 10/11, with 15 at index 2 and a spike of 20 at index 10. Moving ranges: 4, 4
    # around the 15, 9, 9 around the spike, 15 of 1: mean 41/19 = 2.158, screening limit 7.05 drops the 9s:
    # 23/17 = 1.353. Mean 225/20 = 11.25: upper limit 16.99 unscreened, 14.85 screened, so 15 is a
    # special cause only with screening.
    series = [10, 11] * 5 + [20] + [11, 10] * 4 + [11]
    series[2] = 15
    assert sum(series) == 225
    raw, screened = spc.xmr_chart(series, screen_mr=False), spc.xmr_chart(series)
    assert raw["upper"].iloc[0] == pytest.approx(11.25 + 3 * (41 / 19) / 1.128)
    assert screened["upper"].iloc[0] == pytest.approx(11.25 + 3 * (23 / 17) / 1.128)
    assert screened["beyond_limits"].iloc[2] and not raw["beyond_limits"].iloc[2]
    assert screened["beyond_limits"].iloc[10] and raw["beyond_limits"].iloc[10]


def test_frozen_baseline():
    values = [10, 11, 10, 11, 10, 11, 20, 21, 20, 21]
    frozen = spc.xmr_chart(values, baseline=6)
    assert frozen["baseline"].tolist() == [True] * 6 + [False] * 4
    assert frozen["centre"].iloc[-1] == pytest.approx(10.5)
    assert frozen["upper"].iloc[-1] == pytest.approx(10.5 + 3 * 1 / 1.128)
    assert frozen["beyond_limits"].iloc[6:].all()
    everything = spc.xmr_chart(values)
    assert everything["centre"].iloc[-1] == pytest.approx(np.mean(values))


def test_rebase_recomputes_the_limits_from_the_date():
    periods = pd.date_range("2024-01-01", periods=10, freq="MS")
    values = [10, 11, 10, 11, 10, 20, 21, 20, 21, 20]
    chart = spc.xmr_chart(values, periods=periods, rebase=["2024-06-01"])
    assert chart["segment"].tolist() == [0] * 5 + [1] * 5
    assert chart["centre"].iloc[0] == pytest.approx(10.4)
    assert chart["centre"].iloc[-1] == pytest.approx(20.4)
    assert chart["upper"].iloc[-1] == pytest.approx(20.4 + 3 * 1 / 1.128)  # MRs within segment 2: 1,1,1,1
    assert not chart["signal"].any()  # each level judged against its own limits
    assert spc.xmr_chart(values, periods=periods)["signal"].any()


def test_p_chart_limits_baseline_and_rebase():
    events, n = [10, 12, 8, 10, 30, 28], [100, 100, 100, 100, 100, 100]
    chart = spc.p_chart(events, n, baseline=4)
    pbar = 40 / 400
    sigma = math.sqrt(pbar * (1 - pbar) / 100)
    assert chart["centre"].iloc[-1] == pytest.approx(pbar)
    assert chart["upper"].iloc[0] == pytest.approx(pbar + 3 * sigma)
    assert chart["beyond_limits"].tolist() == [False] * 4 + [True, True]
    periods = pd.date_range("2024-01-01", periods=6, freq="QS")
    rebased = spc.p_chart(events, n, periods=periods, rebase=[periods[4]])
    assert rebased["centre"].iloc[-1] == pytest.approx(58 / 200)
    laney = spc.p_chart(events, n, laney=True)
    assert laney["sigma_z"].iloc[0] > 1  # over-dispersed: Laney widens the limits


@pytest.mark.parametrize("events", [[0, 0, 0, 0], [5, 5, 4, 6]])
def test_laney_chart_of_no_events_or_only_events_has_no_limits_and_warns_nothing(events):
    """A unit with no deaths in any quarter (or only deaths) has no spread: Laney's sigma_z is undefined, so no
    limits, and no RuntimeWarning on the terminal of `vbhc demo` (it printed one per such chart)."""
    import warnings

    n = [5, 5, 4, 6]  # the second case: every cycle an event
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        chart = spc.p_chart(events, n, laney=True)
    assert chart["centre"].iloc[0] in (0.0, 1.0)
    assert chart["sigma_z"].isna().all()
    assert chart["beyond_limits"].eq(False).all()


# ------------------------------------------------------------------------------------------ icons
def test_variation_icon_is_the_last_point():
    rising = [10, 11, 10, 11, 10, 11, 10, 11, 10, 25]
    assert spc.xmr_chart(rising, direction="higher").attrs["variation"] == "improvement"
    assert spc.xmr_chart(rising, direction="lower").attrs["variation"] == "concern"
    assert spc.xmr_chart(rising).attrs["variation"] == "neutral"
    quiet = [10, 11, 10, 11, 10, 11, 10, 11, 10, 11]
    assert spc.xmr_chart(quiet, direction="higher").attrs["variation"] == "common_cause"
    # a special cause earlier in the series, but not at the last point: common cause now
    earlier = [10, 11, 10, 25, 10, 11, 10, 11, 10, 11]
    assert spc.xmr_chart(earlier, direction="higher").attrs["variation"] == "common_cause"


def test_assurance_icon_from_the_process_limits():
    quiet = [10, 11, 10, 11, 10, 11, 10, 11, 10, 11]  # centre 10.5, limits 10.5 +/- 2.66 = 7.84 .. 13.16
    for target, higher, lower in [(5, "pass", "fail"), (20, "fail", "pass"), (12, "inconsistent", "inconsistent")]:
        assert spc.xmr_chart(quiet, direction="higher", target=target).attrs["assurance"] == higher
        assert spc.xmr_chart(quiet, direction="lower", target=target).attrs["assurance"] == lower
    assert spc.xmr_chart(quiet, direction="higher").attrs["assurance"] == ""
    # after a rebase only the last segment's limits count
    periods = pd.date_range("2024-01-01", periods=10, freq="MS")
    moved = [10, 11, 10, 11, 10, 30, 31, 30, 31, 30]
    chart = spc.xmr_chart(moved, periods=periods, rebase=[periods[5]], direction="higher", target=20)
    assert chart.attrs["assurance"] == "pass"


def test_run_chart_uses_the_median():
    chart = spc.run_chart([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11])
    assert chart["centre"].iloc[0] == 6
    assert chart["anhoej_run"].sum() == 0  # runs of 5 below and 5 above: limit round(log2 10 + 3) = 6
    assert chart["anhoej_crossings"].all()  # 1 crossing < 2


def test_one_or_two_periods_give_no_icon_but_say_why():
    """A registry whose care cycles all fall in one quarter drew a one-point chart, and the team page said
    "Common cause variation" and "Target met inconsistently" from it: a point is its own centre line. One or two
    periods with data now give the TOO_FEW_PERIODS icon (the page: "Too few periods"), three the usual ones."""
    for points in (1, 2):
        events, n = [1] * points, [1] * points
        for chart in (spc.p_chart(events, n, direction="lower", target=0.5), spc.xmr_chart([5.0] * points)):
            assert chart.attrs["variation"] == chart.attrs["assurance"] == spc.TOO_FEW_PERIODS
    assert spc.p_chart([0, 0, 0], [5, 5, 5], direction="lower", target=0.5).attrs["variation"] == "common_cause"
    assert spc.xmr_chart([np.nan, 5.0, 6.0]).attrs["variation"] == spc.TOO_FEW_PERIODS  # periods with data count
    assert spc.xmr_chart([]).attrs["variation"] == ""


def test_limits_of_zero_width_on_the_target_meet_it():
    """No events anywhere: every period 0%, limits 0..0, the expected rate 0: the target is met every time,
    not "met inconsistently" (the assurance a registry without events showed)."""
    none = spc.p_chart([0] * 6, [20] * 6, direction="lower", target=0.0)
    assert none.attrs["assurance"] == "pass"
    every = spc.p_chart([20] * 6, [20] * 6, direction="higher", target=1.0)
    assert every.attrs["assurance"] == "pass"
    assert spc.p_chart([20] * 6, [20] * 6, direction="lower", target=0.5).attrs["assurance"] == "fail"


def test_a_constant_series_but_for_one_point_keeps_its_limits():
    """PROM answers all equal: the change score was 0 in every quarter but one, the screening dropped the two
    non-zero moving ranges, sigma became 0 and every quarter at 0 was "beyond the limits" (the team page: special
    cause, concern). The unscreened mean moving range is kept when screening leaves none above 0."""
    values = [0.0] * 8 + [0.64] + [0.0] * 8
    chart = spc.xmr_chart(values, direction="higher")
    assert chart["sigma"].iloc[0] > 0
    assert not chart["beyond_limits"].drop(index=8).any()  # the quarters at 0 are within the limits
    assert spc.mean_moving_range([5.0] * 10) == 0.0  # truly constant: no variation, nothing beyond the limits
    assert not spc.xmr_chart([5.0] * 10)["beyond_limits"].any()
