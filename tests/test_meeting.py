"""vbhc.meeting on a small hand-made registry: change arrows, beyond-chance tests, new signals since the last
meeting, and the data-complete date."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from vbhc import meeting
from vbhc.catalog import BINARY_KINDS, SURVIVAL_KINDS, default_catalog
from vbhc.indicators import ConditionData, compute_indicators

HOSPITALS = ["H01", "H02", "H03", "H04", "H05", "H06"]
QUARTERS = pd.date_range("2023-10-01", "2025-07-01", freq="QS")  # 8 quarters, the last 2025 Q3
PER_QUARTER = 60
LEAK = {q: 0.10 for q in QUARTERS}


def _registry() -> ConditionData:
    """60 cycles per hospital and quarter, identical case mix everywhere. Leakage 10% (6 of 60) in every
    quarter for every hospital, except H01 in the last quarter: 36 of 60. Mortality 5% (3 of 60) everywhere,
    except H01 in the last quarter: 4 of 60 (a change well within chance)."""
    rng = np.random.default_rng(7)
    rows = []
    for h in HOSPITALS:
        for q in QUARTERS:
            last = q == QUARTERS[-1]
            leaks = 36 if (h == "H01" and last) else 6
            deaths = 4 if (h == "H01" and last) else 3
            for i in range(PER_QUARTER):
                rows.append(
                    {
                        "cycle_id": f"{h}-{q.date()}-{i}",
                        "patient_id": f"P{h}{q.date()}{i}",
                        "condition": "colorectal_cancer",
                        "hospital": h,
                        "department": "SUR",
                        "index_date": q + pd.Timedelta(days=int(i * 1.5)),
                        "treatment": "colectomy",
                        "age": int(50 + (i % 30)),
                        "sex": "F" if i % 2 else "M",
                        "asa": 1 + i % 3,
                        "charlson": i % 4,
                        "bmi": 22.0 + (i % 10),
                        "stage": ["I", "II", "III", "IV"][i % 4],
                        "anastomotic_leak": float(i < leaks),
                        "mortality_30d": float(i < deaths),
                        "severe_complication": float(rng.random() < 0.15),
                        "readmission_30d": float(rng.random() < 0.1),
                        "length_of_stay": 6.0 + (i % 5),
                    }
                )
    cycles = pd.DataFrame(rows)
    empty_scores = pd.DataFrame(
        {
            c: pd.Series(dtype=float if c == "score" else str)
            for c in ("cycle_id", "instrument", "timepoint", "scale", "score")
        }
    ).assign(completed_date=pd.Series(dtype="datetime64[ns]"))
    cond = default_catalog().condition("colorectal_cancer")
    return ConditionData(
        cond, None, cycles, empty_scores, pd.DataFrame({"cycle_id": [], "cost": []}), cycles["index_date"].max()
    )


@pytest.fixture(scope="module")
def result():
    return compute_indicators(
        _registry(), "hospital", indicators=["anastomotic_leak", "mortality_30d", "length_of_stay"]
    )


def test_default_meeting_date_is_the_first_of_the_month():
    assert meeting.default_meeting_date(dt.date(2026, 12, 17)) == dt.date(2026, 12, 1)


def test_data_complete_until_is_the_latest_date_every_table_reached(result):
    last = pd.Timestamp("2025-07-01") + pd.Timedelta(days=int(59 * 1.5))
    assert meeting.data_complete_until(result.data) == last
    scores = pd.DataFrame({"completed_date": [pd.Timestamp("2025-08-01")]})
    behind = ConditionData(result.data.condition, None, result.data.cycles, scores, result.data.cost, last)
    assert meeting.data_complete_until(behind) == pd.Timestamp("2025-08-01")  # PROMs lag: they set the date


def test_windows_are_adjacent_periods_ending_at_the_complete_date():
    previous, latest = meeting.windows(pd.Timestamp("2025-09-30"), "quarter")
    assert (latest.start, latest.end) == (dt.date(2025, 7, 1), dt.date(2025, 9, 30))
    assert (previous.start, previous.end) == (dt.date(2025, 4, 1), dt.date(2025, 6, 30))
    previous, latest = meeting.windows(pd.Timestamp("2025-09-30"), "month")
    assert (latest.start, previous.start) == (dt.date(2025, 9, 1), dt.date(2025, 8, 1))


def test_change_arrows_and_beyond_chance(result):
    table = meeting.changes(result, "H01", pd.Timestamp("2025-09-30"), "quarter").set_index("indicator")
    leak = table.loc["anastomotic_leak"]
    assert leak["previous"] == pytest.approx(0.10) and leak["current"] == pytest.approx(0.60)
    assert leak["arrow"] == "↑" and leak["beyond_chance"] and leak["assessment"] == "worse"
    # pooled two-proportion z-test by hand: 6/60 vs 36/60
    pooled = 42 / 120
    z = 0.5 / np.sqrt(pooled * (1 - pooled) * (2 / 60))
    assert leak["p_value"] == pytest.approx(2 * stats.norm.sf(z))
    death = table.loc["mortality_30d"]
    assert death["arrow"] == "↑" and not death["beyond_chance"] and death["assessment"] == "no change"
    stay = table.loc["length_of_stay"]
    assert stay["arrow"] == "→" and stay["assessment"] == "no change"
    # another hospital: nothing changed
    other = meeting.changes(result, "H02", pd.Timestamp("2025-09-30"), "quarter").set_index("indicator")
    assert (other["arrow"] == "→").all()


def test_the_colour_follows_the_indicator_direction():
    """The same fall (50% -> 10%) is worse for a higher-is-better indicator and better for lower-is-better."""
    from types import SimpleNamespace

    dates = [pd.Timestamp("2025-05-01")] * 40 + [pd.Timestamp("2025-08-01")] * 40
    observed = [1.0] * 20 + [0.0] * 20 + [1.0] * 4 + [0.0] * 36
    values = pd.concat(
        [
            pd.DataFrame({"indicator": name, "unit": "H01", "index_date": dates, "observed": observed})
            for name in ("up", "down")
        ]
    )
    inds = [
        SimpleNamespace(id=name, kind="proportion", direction=d, label_en=name, label_nl=name)
        for name, d in (("up", "higher"), ("down", "lower"))
    ]
    fake = SimpleNamespace(cycle_values=values, data=SimpleNamespace(condition=SimpleNamespace(indicators=inds)))
    table = meeting.changes(fake, "H01", pd.Timestamp("2025-09-30"), "quarter").set_index("indicator")
    assert table.loc["up", "arrow"] == table.loc["down", "arrow"] == "↓"
    assert table.loc["up", "assessment"] == "worse" and table.loc["down", "assessment"] == "better"


def test_new_signals_since_the_last_meeting(result):
    before = meeting.result_as_of(result, dt.date(2025, 7, 1))
    assert pd.to_datetime(before.cycle_values["index_date"]).max() <= pd.Timestamp("2025-07-01")
    table = meeting.since_last_meeting(result, "H01", dt.date(2025, 7, 1), "quarter", before=before)
    new = dict(zip(table["indicator"], table["new_signals"], strict=True))
    assert "worse" in new["anastomotic_leak"] and "concern" in new["anastomotic_leak"]
    assert new["mortality_30d"] == [] and new["length_of_stay"] == []
    # a meeting after the change: the signal is no longer new
    later = meeting.since_last_meeting(result, "H01", dt.date(2025, 10, 1), "quarter")
    assert dict(zip(later["indicator"], later["new_signals"], strict=True))["anastomotic_leak"] == []
    # H02 has nothing new
    other = meeting.since_last_meeting(result, "H02", dt.date(2025, 7, 1), "quarter", before=before)
    assert all(s == [] for s in other["new_signals"])


def test_signals_from_the_charts_a_page_drew_equal_the_signals_drawn_anew(result, monkeypatch):
    from vbhc.unit_charts import unit_charts

    for unit in HOSPITALS:
        charts = unit_charts(result, unit)
        drawn = meeting.signals(result, unit)
        monkeypatch.setattr(meeting.indicators, "indicator_over_time", lambda *a, **k: pytest.fail("drawn again"))
        assert meeting.signals(result, unit, charts=charts) == drawn
        monkeypatch.undo()
    assert meeting.signals(result, "H01")["anastomotic_leak"] == {"worse", "concern"}
    with pytest.raises(ValueError):
        meeting.signals(result, "H01", until=dt.date(2025, 7, 1), charts=charts)


def test_a_meeting_after_the_last_care_cycle_reads_the_view_itself(result, monkeypatch):
    """No care cycle started after the meeting: the table as it was then is the view's own table, equal to
    refitting on the care cycles up to that date, and nothing is computed. For a comparison group only when the
    registry its models come from had no later care cycle either."""
    import vbhc.indicators as indicators

    when = dt.date(2025, 10, 1)
    assert meeting.unchanged_since(result.data.cycles["index_date"], when)
    first = pd.Timestamp(result.data.cycles["index_date"].min()).date()
    refit = compute_indicators(
        indicators.restrict(result.data, meeting.as_of_period(first, when)),
        "hospital",
        indicators=["anastomotic_leak", "mortality_30d", "length_of_stay"],
    )
    calls = []
    real = indicators.compute_indicators
    monkeypatch.setattr(indicators, "compute_indicators", lambda *a, **k: calls.append(1) or real(*a, **k))
    kept = meeting.result_as_of(result, when)
    assert calls == []
    pd.testing.assert_frame_equal(kept.table, refit.table)
    assert meeting.result_as_of(result, when, only=["mortality_30d"]).table["indicator"].unique().tolist() == [
        "mortality_30d"
    ]
    assert meeting.as_of_label(result, when) == ""  # the whole view's own key in the results store
    for unit in HOSPITALS[:2]:  # the signals then are the signals now
        pd.testing.assert_frame_equal(
            meeting.since_last_meeting(result, unit, when, before=result, unchanged=True),
            meeting.since_last_meeting(result, unit, when, before=refit),
        )
    # a date within the data: computed on the care cycles up to it
    assert not meeting.unchanged_since(result.data.cycles["index_date"], dt.date(2025, 7, 1))
    meeting.result_as_of(result, dt.date(2025, 7, 1))
    assert len(calls) == 1
    # a comparison group whose own care cycles end before the date while the registry's go on: the registry's
    # models at the date differ from today's, so the group's table is computed
    group = indicators.restrict(result.data, "2023-10-01..2025-03-31", hospitals=["H01", "H02"])
    group.reference = result.data
    group_result = real(group, "hospital", indicators=["anastomotic_leak"])
    meeting.result_as_of(group_result, dt.date(2025, 5, 1), reference=result.data)
    assert len(calls) == 2
    later = indicators.restrict(result.data, hospitals=["H01", "H02"])
    meeting.result_as_of(real(later, "hospital", indicators=["anastomotic_leak"]), when, reference=result.data)
    assert len(calls) == 2


def test_the_trend_exposes_the_rule_per_point_and_the_icons(result):
    from vbhc.indicators import indicator_over_time

    chart = indicator_over_time(result, "anastomotic_leak", "H01", freq="QS")
    assert {"rule", "rules", "point_type", "signal"} <= set(chart.columns)
    assert chart["rule"].iloc[-1] == "beyond_limits" and chart["point_type"].iloc[-1] == "concern"
    # the spike pulls the centre line up, so the seven quarters at 10% are a shift below it
    assert (chart["rule"].iloc[:-1] == "shift").all()
    assert chart.attrs["variation"] == "concern"
    # limits frozen on the first seven quarters (all 10%: on the centre line) leave only the spike
    frozen = indicator_over_time(result, "anastomotic_leak", "H01", freq="QS", baseline=7)
    assert frozen["baseline"].sum() == 7 and frozen["centre"].iloc[-1] == pytest.approx(0.10)
    assert frozen["rule"].tolist() == [""] * 7 + ["beyond_limits"]
    assert indicator_over_time(result, "anastomotic_leak", "H01", until="2025-06-30")["signal"].sum() == 0


def _changes_row_by_row(result, unit: str, until: pd.Timestamp, comparison: str) -> pd.DataFrame:
    """changes() as it was before it was vectorised: one boolean mask per indicator over the unit's rows, and
    scipy.stats for the p-values. The reference the one-pass version must match exactly."""
    previous, latest = meeting.windows(until, comparison)
    values = result.cycle_values
    part = values[values["unit"] == unit]
    dates = pd.to_datetime(part["index_date"])
    in_prev = (dates >= pd.Timestamp(previous.start)) & (dates <= pd.Timestamp(previous.end))
    in_latest = (dates >= pd.Timestamp(latest.start)) & (dates <= pd.Timestamp(latest.end))
    rows = []
    for ind in result.data.condition.indicators:
        mine = part["indicator"] == ind.id
        if not mine.any():
            continue
        a = part.loc[mine & in_prev, "observed"].dropna().to_numpy(float)
        b = part.loc[mine & in_latest, "observed"].dropna().to_numpy(float)
        prev_v = float(a.mean()) if a.size else np.nan
        cur_v = float(b.mean()) if b.size else np.nan
        if len(a) < 2 or len(b) < 2:
            p = float("nan")
        elif ind.kind in BINARY_KINDS:
            x1, n1, x2, n2 = a.sum(), len(a), b.sum(), len(b)
            pooled = (x1 + x2) / (n1 + n2)
            se = np.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
            p = 1.0 if se == 0 else float(2 * stats.norm.sf(abs(x2 / n2 - x1 / n1) / se))
        elif np.std(a) == 0 and np.std(b) == 0:
            p = 1.0 if a.mean() == b.mean() else 0.0
        else:
            p = float(stats.ttest_ind(b, a, equal_var=False).pvalue)
        if ind.kind in SURVIVAL_KINDS:
            prev_v = cur_v = p = np.nan
        change = cur_v - prev_v
        sign = int(np.sign(change)) if np.isfinite(change) else 0
        if not np.isfinite(p):
            assessment = ""
        elif p < meeting.ALPHA and sign != 0:
            assessment = "better" if (sign > 0) == (ind.direction == "higher") else "worse"
        else:
            assessment = "no change"
        rows.append(
            {
                "indicator": ind.id,
                "kind": ind.kind,
                "direction": ind.direction,
                "label_en": ind.label_en,
                "label_nl": ind.label_nl,
                "n_previous": a.size,
                "n_current": b.size,
                "events_previous": float(a.sum()) if ind.kind in BINARY_KINDS else np.nan,
                "events_current": float(b.sum()) if ind.kind in BINARY_KINDS else np.nan,
                "previous": prev_v,
                "current": cur_v,
                "change": change,
                "arrow": meeting.ARROWS[sign],
                "p_value": p,
                "beyond_chance": bool(np.isfinite(p) and p < meeting.ALPHA),
                "assessment": assessment,
            }
        )
    return pd.DataFrame(rows)


def test_changes_in_one_pass_equal_the_row_by_row_result_on_the_demo_registry(small_demo_registry):
    """Every unit of two conditions (yes/no, continuous and survival indicators), at both unit levels and for
    every comparison length: the same rows, values and p-values to the last bit as the row-by-row version."""
    from vbhc.results import ResultStore, ViewKey

    engine, _ = small_demo_registry
    store = ResultStore(engine)
    compared = tested = 0
    for condition in ("colorectal_cancer", "hip_osteoarthritis"):
        for level in ("hospital", "department"):
            result = store.result(ViewKey.of(condition, level))
            until = meeting.data_complete_until(result.data)
            for unit in result.table["unit"].unique():
                for comparison in meeting.COMPARISON_MONTHS:
                    got = meeting.changes(result, str(unit), until, comparison)
                    expected = _changes_row_by_row(result, str(unit), until, comparison)
                    pd.testing.assert_frame_equal(got, expected, check_exact=True)
                    compared += 1
                    tested += int(got["p_value"].notna().sum())
    assert compared > 20 and tested > 100  # the p-values were computed, not all left out


def test_welchs_p_value_is_scipys_exactly():
    """meeting._welch_p (scipy.special only, so a page need not import scipy.stats) is ttest_ind(b, a,
    equal_var=False).pvalue to the last bit, for unequal sizes, spreads and tiny samples."""
    rng = np.random.default_rng(7)
    for n1, n2, scale in [(2, 2, 1.0), (3, 40, 0.1), (25, 30, 5.0), (500, 80, 20.0), (7, 7, 1e-3), (60, 2, 3.0)]:
        for _ in range(20):
            a = rng.normal(10, scale, n1).round(2)
            b = rng.normal(10.5, scale * rng.uniform(0.5, 2), n2).round(2)
            assert meeting._welch_p(a, b) == float(stats.ttest_ind(b, a, equal_var=False).pvalue)
    binary = rng.integers(0, 2, 90).astype(float)
    assert meeting._welch_p(binary[:40], binary[40:]) == float(
        stats.ttest_ind(binary[40:], binary[:40], equal_var=False).pvalue
    )


def test_with_no_meeting_chosen_or_recorded_new_signals_count_from_the_latest_period_with_data(result):
    """The default "last meeting" was the first of this month, after a registry's last import more often than
    not (the demo's), so nothing was ever new since it until a meeting was recorded. Now: the date chosen in the
    sidebar, else the last recorded meeting, else the start of the latest comparison period with data, which
    gives H01's leakage rise as new."""
    today = dt.date(2026, 12, 5)
    until = meeting.data_complete_until(result.data)
    assert until < pd.Timestamp(meeting.default_meeting_date(today))
    when, basis = meeting.since_date(None, None, until, "quarter", today=today)
    assert (when, basis) == (meeting.windows(until, "quarter")[1].start, meeting.SINCE_DATA)
    assert when <= until.date()
    new = meeting.since_last_meeting(result, "H01", when, "quarter").set_index("indicator")["new_signals"]
    assert "worse" in new["anastomotic_leak"]
    old = meeting.since_last_meeting(result, "H01", meeting.default_meeting_date(today), "quarter")
    assert all(s == [] for s in old["new_signals"])  # what the page showed
    # the sidebar's untouched date is no choice; a recorded meeting comes before the data, a chosen date first
    assert meeting.since_date(dt.date(2026, 12, 1), None, until, today=today)[1] == meeting.SINCE_DATA
    recorded = dt.date(2025, 5, 12)
    assert meeting.since_date(None, recorded, until, today=today) == (recorded, meeting.SINCE_RECORDED)
    chosen = dt.date(2025, 8, 1)
    assert meeting.since_date(chosen, recorded, until, today=today) == (chosen, meeting.SINCE_CHOSEN)
    assert meeting.since_date(None, None, pd.NaT, today=today) == (dt.date(2026, 12, 1), meeting.SINCE_MONTH)


def test_the_periods_compared_carry_the_counts_their_shares_are_made_of(result):
    """A share of a period is shown with its events and cycles (36/60), as the other tables show them."""
    table = meeting.changes(result, "H01", meeting.data_complete_until(result.data)).set_index("indicator")
    leak = table.loc["anastomotic_leak"]
    assert leak["events_current"] / leak["n_current"] == pytest.approx(leak["current"])
    assert leak["events_previous"] / leak["n_previous"] == pytest.approx(leak["previous"])
    assert leak["events_current"] == round(leak["events_current"]) and leak["n_current"] > 0
    assert np.isnan(table.loc["length_of_stay", "events_current"]) and table.loc["length_of_stay", "n_current"] > 0
