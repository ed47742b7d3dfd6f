"""The indicator table: right numbers (checked independently), and on the demo registry it finds exactly the
planted truth: the planted outliers at the 99.8% limit, and no outlier where only the case-mix differs."""

from __future__ import annotations

import gc
from typing import NamedTuple

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf

from vbhc import benchmark
from vbhc.indicators import (
    compute_indicators,
    cusum_vlad,
    indicator_over_time,
    indicators_from_summary,
    load_condition_data,
)


@pytest.fixture(scope="module")
def demo_tables(demo_registry):
    """Every planted condition's hospital table: compute_indicators' result as the results store keeps it (the
    shared registry computed these views once per run, as `vbhc import` does; a missing one is computed here)."""
    from vbhc.results import ResultStore, ViewKey

    engine, truth = demo_registry
    conditions = sorted({o["condition"] for o in truth["outliers"]} | {c["condition"] for c in truth["casemix_only"]})
    store = ResultStore(engine)
    tables = {condition: store.result(ViewKey.of(condition, "hospital")) for condition in conditions}
    return tables, truth


def test_planted_outliers_are_flagged_and_nothing_else(demo_tables):
    tables, truth = demo_tables
    planted = {(o["condition"], o["indicator"], o["hospital"]): o for o in truth["outliers"]}
    allowed_extra = {(s["condition"], s["indicator"], s["hospital"]) for s in truth.get("expected_false_signals", [])}
    missed, spurious = [], []
    for (condition, indicator), _rows in _planted_indicators(planted):
        table = tables[condition].table
        for row in table[table["indicator"] == indicator].itertuples():
            key = (condition, indicator, row.unit)
            flag = row.assessment_998
            if key in planted:
                want = planted[key]["direction"]
                if planted[key]["detectable"] and flag != want:
                    missed.append((key, want, flag, row.oe, row.adjusted_value, row.lower_998, row.upper_998))
                elif not planted[key]["detectable"] and flag not in (want, "as expected"):
                    spurious.append((key, flag))
            elif flag in ("better", "worse") and key not in allowed_extra:
                spurious.append((key, flag, row.adjusted_value, row.lower_998, row.upper_998))
    assert not missed, missed
    assert not spurious, spurious


def _planted_indicators(planted):
    seen = {}
    for condition, indicator, hospital in planted:
        seen.setdefault((condition, indicator), []).append(hospital)
    return seen.items()


def test_casemix_only_difference_is_not_an_outlier_after_adjustment(demo_tables):
    tables, truth = demo_tables
    checked = 0
    for case in truth["casemix_only"]:
        if not case["crude_signal_expected"]:
            continue
        row = tables[case["condition"]].row(case["indicator"], case["hospital"])
        assert row.assessment_998 == "as expected", row
        # the crude value is clearly worse than the benchmark: adjustment is what removes the signal
        assert row.crude_lower > row.target or row.crude_value > 1.2 * row.target, row
        checked += 1
    assert checked >= 3


def test_expected_counts_equal_an_independent_statsmodels_fit(demo_tables):
    tables, _ = demo_tables
    result = tables["colorectal_cancer"]
    data = result.data.cycles.dropna(subset=["anastomotic_leak", "age", "sex", "asa", "charlson", "bmi", "stage"])
    data = data.assign(
        y=data["anastomotic_leak"],
        age_c=data["age"].astype(float) - data["age"].astype(float).mean(),
        asa_c=data["asa"].astype(int).astype(str),
        sex_c=data["sex"].astype(str),
        stage_c=data["stage"].astype(str),
        charlson_f=data["charlson"].astype(float),
        bmi_f=data["bmi"].astype(float),
    )
    fit = smf.glm(
        "y ~ age_c + I((age_c / 10) ** 2) + C(sex_c) + C(asa_c) + charlson_f + bmi_f + C(stage_c)",
        data=data,
        family=__import__("statsmodels.api").api.families.Binomial(),
    ).fit()
    expected = fit.predict(data).groupby(data["hospital"].astype(str)).sum()
    observed = data.groupby(data["hospital"].astype(str))["y"].sum()
    table = result.table[result.table["indicator"] == "anastomotic_leak"].set_index("unit")
    # the engine may merge rare levels; with the demo's sizes every level is kept, so the fits agree
    np.testing.assert_allclose(table.loc[expected.index, "expected"], expected, rtol=1e-3)
    np.testing.assert_allclose(table.loc[observed.index, "observed"], observed)
    lo, up = benchmark.poisson_ci(observed.to_numpy())
    np.testing.assert_allclose(table.loc[observed.index, "oe_lower"], lo / table.loc[observed.index, "expected"])
    np.testing.assert_allclose(table.loc[observed.index, "oe_upper"], up / table.loc[observed.index, "expected"])


def test_summary_figures_give_the_same_benchmark(demo_tables):
    tables, _ = demo_tables
    table = tables["colorectal_cancer"].table
    rows = table[table["indicator"] == "anastomotic_leak"]
    summary = rows[["unit", "indicator", "n_adjusted", "observed", "expected"]].rename(columns={"n_adjusted": "n"})
    from_summary = indicators_from_summary(summary, "colorectal_cancer").set_index("unit")
    rows = rows.set_index("unit")
    for col in ("oe", "oe_lower", "adjusted_value", "lower_998", "upper_998", "assessment_998"):
        assert (from_summary[col] == rows[col]).all() or np.allclose(from_summary[col], rows[col]), col


def test_permuting_cycles_changes_nothing(demo_tables):
    tables, _ = demo_tables
    result = tables["oesophageal_cancer"]
    data = result.data
    shuffled = type(data)(
        data.condition,
        data.period,
        data.cycles.sample(frac=1, random_state=7).reset_index(drop=True),
        data.scores.sample(frac=1, random_state=8).reset_index(drop=True),
        data.cost.sample(frac=1, random_state=9).reset_index(drop=True),
        data.as_of,
    )
    again = compute_indicators(shuffled, "hospital")
    cols = ["indicator", "unit", "n", "observed", "expected", "adjusted_value", "lower_998", "assessment_998"]
    a = result.table[cols].sort_values(["indicator", "unit"]).reset_index(drop=True)
    b = again.table[cols].sort_values(["indicator", "unit"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b, check_exact=False, rtol=1e-7)


def test_each_units_counts_sums_and_spread_equal_a_group_by_of_its_care_cycles(demo_tables):
    """A unit's figures (counted with np.bincount on the units' positions) against pandas' group-by of the result's
    own per-cycle values: n, the crude rate or mean and its interval, O and E; at the department level too, where
    some units hold no care cycle of an indicator (n 0, no crude value)."""
    from vbhc.catalog import BINARY_KINDS, CONTINUOUS_KINDS

    tables, _ = demo_tables
    whole = tables["oesophageal_cancer"]
    data = whole.data
    # one hospital without any recorded outcome of one yes/no indicator: its n is 0 there
    blanked = next(i for i in data.condition.indicators if i.kind == "proportion")
    cycles = data.cycles.copy()
    cycles.loc[cycles["hospital"] == cycles["hospital"].iloc[0], blanked.outcome] = np.nan
    thinned = type(data)(data.condition, data.period, cycles, data.scores, data.cost, data.as_of)
    checked = empty = 0
    for result in (whole, compute_indicators(thinned, "department")):
        table = result.table.set_index(["indicator", "unit"]).sort_index()
        for indicator, rows in result.cycle_values.groupby("indicator"):
            kind = table.loc[indicator, "kind"].iloc[0]
            if kind not in BINARY_KINDS + CONTINUOUS_KINDS:
                continue
            got = table.loc[indicator]
            crude = rows.groupby("unit")["observed"].agg(["size", "mean", "std"]).reindex(got.index)
            np.testing.assert_array_equal(got["n"].to_numpy(), crude["size"].fillna(0).to_numpy())
            np.testing.assert_allclose(got["crude_value"], crude["mean"], rtol=1e-12)
            adjusted = rows.dropna(subset=["expected"]).groupby("unit")
            o, e = adjusted["observed"], adjusted["expected"]
            if kind in BINARY_KINDS:
                lower, upper = benchmark.wilson_ci(
                    (crude["mean"] * crude["size"]).fillna(0).to_numpy(), crude["size"].fillna(0).to_numpy()
                )
                want = {"observed": o.sum(), "expected": e.sum()}
            else:
                lower, upper = benchmark.mean_ci(crude["mean"], crude["std"], crude["size"].fillna(0))
                want = {"observed": o.mean(), "expected": e.mean()}
            np.testing.assert_allclose(got["crude_lower"], lower, rtol=1e-9)
            np.testing.assert_allclose(got["crude_upper"], upper, rtol=1e-9)
            np.testing.assert_array_equal(got["n_adjusted"], o.size().reindex(got.index).fillna(0))
            for column, value in want.items():
                value = value.reindex(got.index)
                if kind in BINARY_KINDS:
                    value = value.fillna(0.0)
                np.testing.assert_allclose(got[column], value, rtol=1e-12)
            checked += 1
            empty += int((got["n"] == 0).sum())
    assert checked >= 10 and empty > 0  # both levels, and units without a cycle of an indicator


def test_small_units_are_never_flagged(demo_tables):
    tables, _ = demo_tables
    for result in tables.values():
        small = result.table[result.table["too_few_cycles"].astype(bool)]
        assert set(small["assessment_998"].dropna()) <= {"too few cycles"}


def test_trend_and_cusum_for_a_planted_outlier(demo_tables):
    tables, _ = demo_tables
    result = tables["colorectal_cancer"]
    trend = indicator_over_time(result, "anastomotic_leak", "H01", freq="QS")
    assert len(trend) == 20  # five years of quarters
    assert (trend["n"] > 0).all() and {"lower", "upper", "signal"} <= set(trend.columns)
    curve = cusum_vlad(result, "anastomotic_leak", "H01")
    assert curve["alarm_up"].any(), "a unit with twice the odds of leakage must raise a CUSUM alarm"
    assert curve["vlad"].iloc[-1] < 0, "more leaks than expected: VLAD (expected - observed) ends negative"
    calm = cusum_vlad(result, "anastomotic_leak", "H10")
    assert abs(calm["vlad"].iloc[-1]) < abs(curve["vlad"].iloc[-1])


def test_casemix_explains_the_crude_gap_of_the_older_sicker_unit(demo_tables):
    from vbhc.indicators import casemix_explanation

    tables, truth = demo_tables
    case = next(c for c in truth["casemix_only"] if c["indicator"] == "mortality_30d")
    contributions = casemix_explanation(tables[case["condition"]], "mortality_30d")
    unit = contributions[contributions["unit"] == case["hospital"]].set_index("variable")
    patient_factors = unit.loc[unit.index.isin(["age", "asa", "charlson"]), "contribution"].sum()
    assert patient_factors > 0, "older, sicker patients raise the unit's expected mortality"
    assert unit["gap"].iloc[0] > 0
    assert patient_factors / unit["gap"].iloc[0] > 0.6


def test_value_view_from_the_indicator_table(demo_tables):
    from vbhc.indicators import value_table

    tables, _ = demo_tables
    result = tables["colorectal_cancer"]
    view = value_table(result, "anastomotic_leak").set_index("unit")
    assert view.loc["H03", "cost_assessment"] == "higher"  # the planted cost outlier
    assert view.loc["H01", "outcome_assessment"] == "worse"  # the planted leak outlier
    assert len(view) == result.table["unit"].nunique()


def test_funnel_curve_agrees_with_each_units_limits(demo_tables):
    from vbhc.indicators import funnel_curve

    tables, _ = demo_tables
    table = tables["colorectal_cancer"].table
    for indicator in ("anastomotic_leak", "length_of_stay", "prom_response_12m"):
        rows = table[table["indicator"] == indicator]
        curve = funnel_curve(rows)
        assert set(curve["level"]) == {0.95, 0.998}
        # limits narrow as n grows
        c998 = curve[curve["level"] == 0.998]
        width = (c998["upper"] - c998["lower"]).to_numpy()
        assert (width[-1] < width[0]) and len(c998) <= 120
        # the curve evaluated at the units' own n gives exactly their limits
        at_units = funnel_curve(rows, grid=rows["precision"].to_numpy())
        at_units = at_units[at_units["level"] == 0.998]
        np.testing.assert_allclose(at_units["upper"], rows["upper_998"], rtol=1e-9)
        np.testing.assert_allclose(at_units["lower"], rows["lower_998"], rtol=1e-9)


def test_a_comparison_groups_rows_are_exactly_those_of_its_care_cycles(demo_tables):
    """restrict matches cycle ids by pyarrow's hash lookup (categorical ids on their categories): the rows kept
    are the rows pandas' own isin keeps, a missing id is never kept."""
    from dataclasses import replace

    from vbhc.indicators import restrict

    tables, _ = demo_tables
    full = tables["colorectal_cancer"].data
    scores = full.scores.copy()
    assert isinstance(scores["cycle_id"].dtype, pd.CategoricalDtype)
    scores.loc[scores.index[:3], "cycle_id"] = np.nan
    full = replace(full, scores=scores)
    group = restrict(full, None, ["H02", "H05"])
    ids = set(group.cycles["cycle_id"].astype(str))
    assert ids and set(group.cycles["hospital"].astype(str)) == {"H02", "H05"}
    for name in ("scores", "cost", "cost_lines"):
        frame = getattr(full, name)
        expected = frame[frame["cycle_id"].astype(str).isin(ids)].reset_index(drop=True)
        assert len(expected)
        pd.testing.assert_frame_equal(getattr(group, name), expected)
    assert group.scores["cycle_id"].notna().all()


def test_restricting_in_memory_equals_loading_the_period_from_the_database(demo_registry, demo_tables):
    from vbhc.indicators import restrict

    engine, _ = demo_registry
    tables, _ = demo_tables
    full = tables["colorectal_cancer"].data
    peers = ["H01", "H02", "H03", "H06", "H07"]
    from_memory = compute_indicators(restrict(full, "2024", peers), "hospital").table
    # a comparison group is benchmarked with the models of the registry of its period (its `reference`)
    group = load_condition_data("colorectal_cancer", "2024", engine=engine, hospitals=peers, as_of=full.as_of)
    group.reference = load_condition_data("colorectal_cancer", "2024", engine=engine, as_of=full.as_of)
    from_db = compute_indicators(group, "hospital").table
    cols = ["indicator", "unit", "n", "observed", "expected", "adjusted_value", "lower_998", "assessment_998"]
    a = from_memory[cols].sort_values(["indicator", "unit"]).reset_index(drop=True)
    b = from_db[cols].sort_values(["indicator", "unit"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b, check_exact=False, rtol=1e-9, check_dtype=False)
    assert set(a["unit"]) == set(peers)


def test_another_unit_level_reuses_the_fitted_models_and_gives_the_same_table(demo_registry, demo_tables):
    engine, _ = demo_registry
    tables, _ = demo_tables
    shared = tables["colorectal_cancer"].data  # its hospital table has already fitted every model
    fitted = dict(shared.fitted)
    assert fitted, "the hospital table should have left its models on the data"
    reused = compute_indicators(shared, "department")
    assert all(reused.models[i] is fitted[i] for i in reused.models)  # no refit
    fresh = compute_indicators(
        load_condition_data("colorectal_cancer", engine=engine, as_of=shared.as_of), "department"
    )
    pd.testing.assert_frame_equal(reused.table, fresh.table)
    assert set(reused.table["unit"]) != set(tables["colorectal_cancer"].table["unit"])  # department units


@pytest.mark.filterwarnings("ignore::statsmodels.tools.sm_exceptions.ConvergenceWarning")  # gtol below its reach
def test_shrinkage_columns_on_the_demo_agree_with_mixedlm_and_keep_the_planted_outlier(demo_tables):
    from vbhc import shrinkage
    from vbhc.indicators import SHRINKAGE_COLUMNS

    tables, _ = demo_tables
    result = tables["colorectal_cancer"]
    table = result.table
    assert list(table.columns[-len(SHRINKAGE_COLUMNS) :]) == SHRINKAGE_COLUMNS
    # continuous: statsmodels MixedLM (REML) on the case-mix residuals gives the same shrunken means
    values = result.cycle_values
    stay = values[(values["indicator"] == "length_of_stay") & values["expected"].notna()]
    frame = pd.DataFrame({"r": stay["observed"] - stay["expected"], "g": stay["unit"]})
    ref = smf.mixedlm("r ~ 1", frame, groups=frame["g"]).fit(reml=True, method="bfgs", gtol=1e-10)
    rows = table[table["indicator"] == "length_of_stay"].set_index("unit")
    blups = pd.Series({unit: effect.iloc[0] for unit, effect in ref.random_effects.items()})
    want = rows["target"].iloc[0] + ref.fe_params.iloc[0] + blups
    np.testing.assert_allclose(rows.loc[want.index, shrinkage.SHRUNKEN_VALUE], want, atol=1e-4)
    assert rows[shrinkage.SHRINKAGE_TAU2].iloc[0] == pytest.approx(ref.cov_re.iloc[0, 0], rel=1e-4)
    # yes/no: the planted leak outlier stays worse than the benchmark and ranks last
    leak = table[table["indicator"] == "anastomotic_leak"].set_index("unit")
    assert leak.loc["H01", shrinkage.SHRUNKEN_LOWER] > leak.loc["H01", "target"]
    assert leak[shrinkage.EXPECTED_RANK].idxmax() == "H01"
    # the interval holds whole ranks around the mean (H01: last in 99.99% of draws, mean 9.99997, interval 10-10)
    assert (leak[shrinkage.EXPECTED_RANK_LOWER] <= leak[shrinkage.EXPECTED_RANK] + 0.01).all()
    assert (leak[shrinkage.EXPECTED_RANK] <= leak[shrinkage.EXPECTED_RANK_UPPER] + 0.01).all()
    assert (leak[shrinkage.RANKED_UNITS] == len(leak)).all()
    assert 0 < leak[shrinkage.SHRINKAGE_RANKABILITY].iloc[0] < 1
    # shrinkage pulls towards the benchmark: the shrunken rates spread less than the adjusted ones
    for indicator in ("anastomotic_leak", "mortality_30d", "length_of_stay"):
        rows = table[table["indicator"] == indicator]
        assert rows[shrinkage.SHRUNKEN_VALUE].std() < rows["adjusted_value"].std()
    assert table.loc[table["kind"].isin(["volume", "response_rate"]), shrinkage.SHRUNKEN_VALUE].isna().all()


def test_textbook_outcome_on_the_demo(demo_tables):
    from vbhc.indicators import composite_failures, composite_values

    tables, _ = demo_tables
    result = tables["colorectal_cancer"]
    rows = result.table[result.table["indicator"] == "textbook_outcome"].set_index("unit")
    assert (rows["kind"] == "composite").all() and rows["oe"].notna().all()
    ind = result.data.condition.indicator("textbook_outcome")
    per_cycle = composite_values(ind, result.data.cycles)["textbook"]
    units = result.data.cycles["hospital"].astype(str)
    n = per_cycle.notna().groupby(units).sum()
    np.testing.assert_array_equal(rows.loc[n.index, "n"], n)
    np.testing.assert_allclose(rows.loc[n.index, "crude_value"], per_cycle.groupby(units).mean())
    failures = composite_failures(result, "textbook_outcome")
    leak = failures[failures["component"] == "anastomotic_leak"].set_index("unit")
    assert leak.loc["H01", "share_failed"] > leak["share_failed"].median()  # the planted leak outlier
    # a unit's cycles without textbook outcome failed at least one component
    for unit, part in failures.groupby("unit"):
        assert part["failed"].sum() >= rows.loc[unit, "n"] - rows.loc[unit, "crude_value"] * rows.loc[unit, "n"] - 1e-9


def test_a_unit_alone_in_its_benchmark_gets_no_benchmark_not_as_expected(demo_tables):
    """A registry of one hospital's patients (or a comparison group of one) would benchmark the unit against
    itself: O/E = 1 and always within its own limits. Its verdict must say there is no benchmark."""
    from vbhc.indicators import restrict
    from vbhc.verdict import verdict

    tables, truth = demo_tables
    full = tables["colorectal_cancer"].data
    alone = compute_indicators(restrict(full, None, [truth["own_hospital"]]), "hospital").table
    judged = alone[alone["kind"] != "volume"]
    assert len(judged) and set(judged["unit"]) == {truth["own_hospital"]}
    assert judged["target"].isna().all() and judged["lower_998"].isna().all()
    assert set(judged["position_998"]) == {benchmark.NO_BENCHMARK}
    assert {verdict(r).category for r in judged.to_dict("records")} == {"no_benchmark"}
    # two hospitals: a benchmark again
    pair = compute_indicators(restrict(full, None, [truth["own_hospital"], "H02"]), "hospital").table
    assert pair.loc[pair["kind"] != "volume", "target"].notna().any()
    assert benchmark.NO_BENCHMARK not in set(pair["position_998"])


@pytest.mark.parametrize("freq", ["MS", "QS", "YS", "W"])
@pytest.mark.parametrize("resolution", ["us", "ns"])
def test_a_charts_periods_are_pandas_periods(freq, resolution):
    """indicator_over_time puts each care cycle in its month or quarter in numpy (every unit's charts are drawn
    at once): the same periods, codes and resolution as pandas' to_period(...).start_time, also before 1970, at
    the quarters' edges and for a period alias it leaves to pandas."""
    from vbhc.indicators import _period_codes

    rng = np.random.default_rng(4)
    edges = pd.to_datetime(
        ["1969-12-31", "1970-01-01", "1968-03-31 23:59", "2024-04-01", "2024-06-30", "2025-12-31"], format="ISO8601"
    )
    days = pd.to_datetime(rng.integers(-4000, 25000, 300), unit="D")
    dates = pd.DatetimeIndex(edges.append(days)).as_unit(resolution).to_numpy()
    codes, periods = _period_codes(dates, freq)
    expected_codes, expected = pd.factorize(pd.Series(dates).dt.to_period(freq[0]).dt.start_time, sort=True)
    pd.testing.assert_index_equal(periods, pd.DatetimeIndex(expected))
    np.testing.assert_array_equal(codes, expected_codes)


def test_an_adjusted_rate_above_one_keeps_an_interval():
    """One hospital with nearly all the registry's events but a low expected count (25 leaks where the case mix
    predicts 1; the others none): O/E 25 x overall rate 25/120 gives an adjusted rate of 5.21, which has no
    Wilson interval (its p (1 - p) is negative: NaN). Reference: the exact Poisson (Garwood) interval of O,
    chi2(0.025, 50) / 2 and chi2(0.975, 52) / 2 (scipy.stats.chi2.ppf), over E, times the overall rate:
    3.3705587 to 7.6885274. The units with a rate below 1 keep their Wilson interval."""
    summary = pd.DataFrame(
        {
            "unit": ["H1", "H2", "H3", "H4"],
            "indicator": "anastomotic_leak",
            "n": 30,
            "observed": [25.0, 0.0, 0.0, 0.0],
            "expected": [1.0, 8.0, 8.0, 8.0],
        }
    )
    table = indicators_from_summary(summary, "colorectal_cancer").set_index("unit")
    h1 = table.loc["H1"]
    assert h1["adjusted_value"] == pytest.approx(25 * 25 / 120)
    assert h1["adjusted_lower"] == pytest.approx(3.3705587182977768, rel=1e-9)
    assert h1["adjusted_upper"] == pytest.approx(7.688527436985493, rel=1e-9)
    lower, upper = benchmark.wilson_ci(np.zeros(3), np.full(3, 30.0))
    np.testing.assert_allclose(table.loc[["H2", "H3", "H4"], "adjusted_lower"], lower)
    np.testing.assert_allclose(table.loc[["H2", "H3", "H4"], "adjusted_upper"], upper)


def test_the_expected_rate_per_period_is_that_of_the_cycles_the_model_scored(demo_tables):
    """A period's expected rate beside a unit's p chart: the mean case-mix expected value of its cycles that have one.
    Cycles without (a case-mix value missing) were counted in the denominator with an expected value of 0, so the
    expected line sank with missing case-mix: half the cycles unscored halved it. Reference: pandas' group-by mean
    of the per-cycle expected values per quarter (NaN skipped)."""
    import dataclasses

    result = demo_tables[0]["colorectal_cancer"]
    values = result.cycle_values.copy()
    rows = np.flatnonzero((values["indicator"] == "anastomotic_leak").to_numpy() & (values["unit"] == "H03").to_numpy())
    values.loc[values.index[rows[::2]], "expected"] = np.nan  # every other cycle of the unit unscored
    thinned = dataclasses.replace(result, cycle_values=values)
    chart = indicator_over_time(thinned, "anastomotic_leak", "H03", freq="QS")
    mine = values.iloc[rows]
    quarters = pd.to_datetime(mine["index_date"]).dt.to_period("Q").dt.start_time
    want = mine.groupby(quarters.to_numpy())["expected"].mean()
    got = pd.Series(chart["expected_rate"].to_numpy(), index=pd.DatetimeIndex(chart["period"]))
    assert len(want) > 4 and np.isfinite(want).all()
    np.testing.assert_allclose(got.reindex(want.index).to_numpy(), want.to_numpy(), rtol=1e-12)


def _scores_by_text_ids(result, instrument: str, scale: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """prom_scores_for and prom_score_cells as pandas reads them: every score's care cycle found by its id as
    text, one map per column (the reference the faster lookup must equal)."""
    from vbhc.registry import unit_labels

    cycles, s = result.data.cycles, result.data.scores
    ids = cycles["cycle_id"].astype(str)
    part = s[(s["instrument"] == instrument) & (s["scale"] == scale)].dropna(subset=["score"])
    cycle = part["cycle_id"].astype(str)
    units = cycle.map(pd.Series(unit_labels(cycles, result.level).to_numpy(), index=ids)).to_numpy()
    timepoints = part["timepoint"].astype(str).to_numpy()
    years = pd.Series(pd.to_datetime(cycles["index_date"]).dt.year.astype(str).to_numpy(), index=ids)
    hospitals = pd.Series(cycles["hospital"].astype(str).to_numpy(), index=ids)
    scores = pd.DataFrame({"unit": units, "timepoint": timepoints, "score": part["score"].to_numpy(float)})
    cells = pd.DataFrame(
        {
            "unit": units,
            "hospital": cycle.map(hospitals).to_numpy(),
            "timepoint": timepoints,
            "year": cycle.map(years).to_numpy(),
        }
    )
    return scores, cells


def test_the_prom_pages_score_tables_equal_a_lookup_by_text_id_without_mapping_text_ids(demo_tables, monkeypatch):
    """The PROM page's distributions read each score's unit, hospital and index year: equal to finding every
    score's care cycle by its id as text, at both unit levels, with categorical and plain ids, and for a score
    whose care cycle is not in the view (no unit, as before). They are taken by one hash lookup of the ids, not by
    pandas' map of text ids once per column: that was ~1 s of the PROM page's 1.2 s of CPU at 1,000,000 cycles."""
    from dataclasses import replace

    from vbhc.catalog import default_catalog
    from vbhc.indicators import prom_score_cells, prom_scores_for

    tables, _ = demo_tables
    catalog = default_catalog()
    cases = []
    for result in tables.values():
        if result.data.scores.empty:
            continue
        instrument = result.data.condition.proms[0].instrument
        scale = catalog.instruments[instrument].scales[0].id
        first = result.data.scores[
            (result.data.scores["instrument"] == instrument) & (result.data.scores["scale"] == scale)
        ].dropna(subset=["score"])
        orphan = first.iloc[:3].astype({"cycle_id": str}).assign(cycle_id="not-a-care-cycle-of-this-view")
        plain = pd.concat([result.data.scores.astype({"cycle_id": str}), orphan], ignore_index=True)
        for level in ("hospital", "department"):
            cases.append((replace(result, level=level), instrument, scale))
        cases.append((replace(result, data=replace(result.data, scores=plain)), instrument, scale))
    assert len(cases) >= 3 and isinstance(cases[0][0].data.scores["cycle_id"].dtype, pd.CategoricalDtype)
    expected = [_scores_by_text_ids(*case) for case in cases]
    assert expected[2][0]["unit"].isna().sum() == 3  # the orphans: no unit

    def no_text_map(*args, **kwargs):
        raise AssertionError("the PROM score tables map text ids through pandas")

    monkeypatch.setattr(pd.Series, "map", no_text_map)
    for (result, instrument, scale), (scores, cells) in zip(cases, expected, strict=True):
        pd.testing.assert_frame_equal(prom_scores_for(result, instrument, scale), scores)
        pd.testing.assert_frame_equal(prom_score_cells(result, instrument, scale), cells)


def _prom_values_by_text_ids(ind, data, base) -> tuple[np.ndarray, np.ndarray]:
    """A PROM indicator's value and baseline score per cycle of `base` as pandas' map of the text ids gives them
    (the reference the lookup by the scores' codes must equal): the last score of a cycle at a timepoint."""
    from vbhc import proms
    from vbhc.catalog import default_catalog

    ids = base["cycle_id"].astype(str)
    s = data.scores

    def at(timepoint: str) -> pd.Series:
        mask = (s["instrument"] == ind.instrument) & (s["scale"] == ind.scale) & (s["timepoint"] == timepoint)
        part = s.loc[mask, ["cycle_id", "score"]].dropna().drop_duplicates("cycle_id", keep="last")
        return pd.Series(part["score"].to_numpy(), index=part["cycle_id"].astype(str).to_numpy())

    if ind.kind == "prom_score":
        y = ids.map(at(ind.timepoint)).to_numpy(float)
    else:
        change = proms.prom_change(s, default_catalog().instruments[ind.instrument], ind.scale, ind.timepoint)
        column = change["change"] if ind.kind == "prom_change" else change["reached_mic"].astype(float)
        y = ids.map(pd.Series(column.to_numpy(), index=change["cycle_id"].astype(str).to_numpy())).to_numpy(float)
    return y, ids.map(at("baseline")).to_numpy(float)


def test_prom_indicator_values_equal_a_lookup_by_text_id_without_mapping_text_ids(demo_tables, monkeypatch):
    """Every PROM indicator's value and baseline score per care cycle (score, change, reached the MIC) equal those
    found by mapping the cycle ids as text: with the scores' categorical ids, with plain text ids, a second score of
    a cycle at the follow-up (the last one counts), a score of a cycle not in the view, and view cycles without
    scores. With categorical ids no text is mapped through pandas (Series.map): two or three maps per PROM
    indicator were about a tenth of the indicator tables' CPU at 1,000,000 care cycles."""
    from dataclasses import replace

    from vbhc.indicators import _outcome_column

    tables, _ = demo_tables
    cases = []
    for result in tables.values():
        data = result.data
        prom = [i for i in data.condition.indicators if i.kind in ("prom_score", "prom_change", "prom_mic")]
        if not prom or data.scores.empty:
            continue
        s = data.scores
        score = next(i for i in prom if i.kind == "prom_score")
        follow_up = s[
            (s["instrument"] == score.instrument) & (s["scale"] == score.scale) & (s["timepoint"] == score.timepoint)
        ].dropna(subset=["score"])
        again = follow_up.iloc[:5].assign(score=follow_up["score"].iloc[:5] + 1.5)  # a later, different score
        orphan = follow_up.iloc[5:8].astype({"cycle_id": str}).assign(cycle_id=["not-in-view-1", "-2", "-3"])
        twice = pd.concat([s, again], ignore_index=True)
        assert isinstance(twice["cycle_id"].dtype, pd.CategoricalDtype)
        plain = pd.concat([s.astype({"cycle_id": str}), orphan], ignore_index=True)
        base = data.cycles.assign(unit="")
        some = base.iloc[::3]  # a view of some cycles: others' scores are not in it
        for scores in (s, twice, plain):
            for ind in prom:
                if ind.kind != "prom_score" and scores is twice:
                    continue  # a change needs one score per cycle and timepoint (prom_change refuses two)
                for view in (base, some):
                    cases.append((ind, replace(data, scores=scores), view))
    assert len(cases) > 20
    expected = [_prom_values_by_text_ids(*case) for case in cases]
    assert any(np.isnan(y).any() and np.isfinite(y).any() for y, _ in expected)
    text_map = pd.Series.map

    def no_text_map(self, *args, **kwargs):
        if not plain_ids:
            raise AssertionError("the PROM indicators' values map text ids through pandas")
        return text_map(self, *args, **kwargs)

    monkeypatch.setattr(pd.Series, "map", no_text_map)
    for (ind, data, view), (y, baseline) in zip(cases, expected, strict=True):
        plain_ids = not isinstance(data.scores["cycle_id"].dtype, pd.CategoricalDtype)
        frame, extra = _outcome_column(ind, data, view)
        assert extra == ["baseline_score"]
        np.testing.assert_array_equal(frame["y"].to_numpy(float), y)
        np.testing.assert_array_equal(frame["baseline_score"].to_numpy(float), baseline)


class _Fresh(NamedTuple):
    """One table computed afresh, and what was seen while it was computed."""

    data: object  # the view's ConditionData (its fitted models, derived columns as the table left them)
    level: str
    table: pd.DataFrame  # the indicator table
    frame: pd.DataFrame  # the table's per-cycle values
    pieces: list  # what the per-cycle frame was joined from: [(indicator, {column: piece})]
    held_at_join: list[bool]  # at each join of the per-cycle frame: the kept design (ColumnCache) still on the data
    held_at_survival: list[bool]  # the same at each survival indicator's columns
    fits: int  # case-mix models fitted for the table


@pytest.fixture(scope="module")
def fresh_tables(demo_tables) -> list[_Fresh]:
    """Every view of the demo's tables computed afresh (no fitted model, no derived column) at hospital level, then
    at department level on the same data (reusing the hospital table's models, as a page does), with what the spied
    steps saw. Computed once for the module: the tests of the per-cycle join and of the kept design read the same
    computations (each computed them again, refitting both levels: ~half of this module's CPU after its set-up)."""
    from dataclasses import replace

    from vbhc import indicators, survival

    tables, _ = demo_tables
    out: list[_Fresh] = []
    seen: dict = {}
    join, columns, fit = indicators._cycle_values, survival.survival_columns, indicators.fit_casemix_model

    def spied_join(values):
        # the join takes the pieces out of `values`: a copy of each indicator's dict is kept
        seen["pieces"] = [(ind, dict(cols)) for ind, cols in values]
        seen["held_at_join"].append(indicators._CASEMIX_COLUMNS in seen["data"].derived)
        return join(values)

    def spied_columns(*args, **kwargs):
        seen["held_at_survival"].append(indicators._CASEMIX_COLUMNS in seen["data"].derived)
        return columns(*args, **kwargs)

    def spied_fit(*args, **kwargs):
        seen["fits"] += 1
        return fit(*args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(indicators, "_cycle_values", spied_join)
        patch.setattr(survival, "survival_columns", spied_columns)
        patch.setattr(indicators, "fit_casemix_model", spied_fit)
        for result in tables.values():
            data = replace(result.data, fitted={}, cox={}, derived={})
            for level in ("hospital", "department"):
                seen.update(data=data, held_at_join=[], held_at_survival=[], fits=0)
                got = compute_indicators(data, level)
                out.append(
                    _Fresh(
                        data,
                        level,
                        got.table,
                        got.cycle_values,
                        seen["pieces"],
                        seen["held_at_join"],
                        seen["held_at_survival"],
                        seen["fits"],
                    )
                )
    return out


def test_per_cycle_values_equal_those_joined_as_numpy_arrays_without_python_strings(fresh_tables):
    """The per-cycle values of every indicator (survival ones too) equal the frame of their pieces joined as NumPy
    arrays (how they were joined before: the same values and dtypes), at both unit levels; the cycle ids and units
    reach the join as pandas' text arrays, not as Python strings (those were made and turned back into Arrow text
    for millions of rows: a twentieth of the tables' CPU at 1,000,000 care cycles)."""
    from vbhc import indicators

    kinds = set()
    for fresh in fresh_tables:
        values = fresh.pieces
        names = list(values[0][1])
        pieces = [(ind, {n: indicators._materialized(p) for n, p in columns.items()}) for ind, columns in values]
        joined = {n: np.concatenate([np.asarray(columns[n]) for _, columns in pieces]) for n in names}
        sizes = [len(columns["cycle_id"]) for _, columns in pieces]
        joined["indicator"] = np.repeat(np.array([ind for ind, _ in pieces], dtype=object), sizes)
        pd.testing.assert_frame_equal(fresh.frame, pd.DataFrame(joined), check_exact=True)
        for ind, columns in pieces:
            kinds.add(fresh.data.condition.indicator(ind).kind)
            for name in ("cycle_id", "unit"):
                assert isinstance(columns[name], pd.api.extensions.ExtensionArray), (ind, name)
    assert {"survival", "proportion", "mean"} <= kinds
    assert {fresh.level for fresh in fresh_tables} == {"hospital", "department"}


def test_per_cycle_text_is_taken_once_from_the_views_columns(fresh_tables):
    """Every indicator's per-cycle cycle ids, units and dates (survival ones too) reach the join as positions of the
    view's own columns (one source per column for all indicators), taken there once: the per-cycle frame equals each
    indicator's cycles' values joined, at both unit levels. Why: each indicator's own copy of the cycle ids and units
    was held until the join and copied once more there (the peak of a condition's tables at 10,000,000 cycles)."""
    from vbhc import indicators

    kinds = set()
    for fresh in fresh_tables:
        values, got = fresh.pieces, fresh.frame
        for name in ("cycle_id", "unit", "index_date"):
            pieces = [columns[name] for _, columns in values]
            assert all(isinstance(p, indicators._Taken) for p in pieces), name
            assert len({id(p.source) for p in pieces}) == 1, name
            expected = np.concatenate([np.asarray(p.source)[p.positions] for p in pieces])
            np.testing.assert_array_equal(np.asarray(got[name]), expected)
        assert str(got["cycle_id"].dtype) == str(fresh.data.cycles["cycle_id"].astype(str).dtype)
        kinds |= {fresh.data.condition.indicator(ind).kind for ind, _ in values}
    assert {"survival", "proportion", "mean"} <= kinds


def test_a_table_lets_go_of_the_kept_design_after_its_last_case_mix_fit(fresh_tables):
    """The design and column conversions a table's fits keep (the view's ColumnCache) are let go of once the table's
    last indicator with a case-mix model is done: the survival indicators' Cox fits and the per-cycle frame, a
    condition's peaks at 10,000,000 care cycles, come without them (the kept design alone ~340 MB there). The view's
    other unit level fits nothing (it reuses the models) and converts nothing; its table is the same."""
    from dataclasses import replace

    from vbhc import indicators

    hospital = [f for f in fresh_tables if f.level == "hospital"]
    # whatever the last indicator, the per-cycle join (one per table) comes without them
    assert hospital and all(f.held_at_join == [False] for f in hospital)
    with_survival = [f for f in hospital if any(i.kind == "survival" for i in f.data.condition.indicators)]
    assert with_survival
    for fresh in with_survival:
        kinds = [ind.kind for ind in fresh.data.condition.indicators]
        fitting = [i for i, k in enumerate(kinds) if k not in indicators._NOT_FITTED]
        assert kinds.index("survival") > max(fitting)  # the Cox fits come after the last case-mix fit
        assert fresh.fits and fresh.held_at_survival == [False] * kinds.count("survival")
        [department] = [f for f in fresh_tables if f.data is fresh.data and f.level == "department"]
        # the models reused, nothing converted
        assert department.fits == 0 and department.held_at_join == [False] and not any(department.held_at_survival)
        assert indicators._CASEMIX_COLUMNS not in department.data.derived
        again = compute_indicators(replace(fresh.data, fitted={}, cox={}, derived={}), "department")
        pd.testing.assert_frame_equal(department.table, again.table, check_exact=True)


def test_the_per_cycle_join_lets_go_of_each_columns_pieces_and_does_not_copy_the_joined_arrays(monkeypatch):
    """The per-cycle join takes each column's pieces out of the indicators' values as it joins them, so an earlier
    column's pieces are gone while the next is joined, and the frame holds the joined arrays themselves, not a copy:
    at 10,000,000 care cycles every piece held to the end and pandas' copy of the floats, dates and indicator ids were
    the join's transient (the peak of breast cancer's table)."""
    import weakref

    from tests.gc_young import collections_of_new_objects
    from vbhc import indicators

    rng = np.random.default_rng(1)
    ids = pd.array([f"c{i}" for i in range(50)], dtype=str)
    dates = np.arange(50).astype("datetime64[D]").astype("datetime64[s]")

    def piece(at: np.ndarray) -> dict[str, object]:
        taken = indicators._Taken
        return {
            "cycle_id": taken(ids, at),
            "unit": taken(ids, at),
            "index_date": taken(dates, at),
            "observed": rng.random(len(at)),
            "expected": rng.random(len(at)),
        }

    values = [("a", piece(np.arange(0, 30))), ("b", piece(np.arange(10, 50)))]
    observed = [weakref.ref(columns["observed"]) for _, columns in values]
    alive, joined = [], {}
    join = indicators._joined_column

    def spied(pieces: list) -> object:
        gc.collect()
        alive.append(sum(ref() is not None for ref in observed))
        out = join(pieces)
        joined[len(alive)] = out
        return out

    monkeypatch.setattr(indicators, "_joined_column", spied)
    with collections_of_new_objects():  # not over the demo's tables the module's other tests left here
        frame = indicators._cycle_values(values)
    # the indicators' own arrays first, and each one's pieces gone once joined: observed's before expected is joined,
    # both before the columns taken from the view's (text) are made
    assert alive == [2, 0, 0, 0, 0]
    assert all(not columns for _, columns in values)
    assert np.shares_memory(frame["expected"].to_numpy(), joined[2])  # the joined array, not a copy
    assert np.shares_memory(frame["observed"].to_numpy(), joined[1])
    assert list(frame.columns) == ["cycle_id", "unit", "index_date", "observed", "expected", "indicator"]
    assert frame["indicator"].tolist() == ["a"] * 30 + ["b"] * 40
    pd.testing.assert_series_equal(
        frame["indicator"], pd.Series(np.repeat(np.array(["a", "b"], dtype=object), [30, 40]), name="indicator")
    )


def test_the_tables_make_no_per_cycle_text_of_python_strings(demo_tables, fresh_tables, monkeypatch):
    """compute_indicators keeps each cycle's unit as the labels' Arrow text and makes the per-cycle frame's indicator
    column in Arrow: no NumPy array of a Python string per care cycle (or per-cycle row) converted to text on the way.
    Why: at 10,000,000 care cycles the unit array was held to the end of breast cancer's tables (~100 MB) and the
    indicator ids' (8 bytes a row of 14,600,000, and the conversion's buffers) came on top of the per-cycle join, the
    peak of its tables. The frames are those of the arrays of Python strings."""
    from dataclasses import replace

    import pyarrow as pa

    from vbhc import indicators

    tables, _ = demo_tables
    result = max(tables.values(), key=lambda r: len(r.data.cycles))
    data = replace(result.data, fitted={}, cox={}, derived={})
    made = []
    to_arrow = pa.array

    def spied(values, *args, **kwargs):  # pyarrow's public constructor, which pandas' Arrow text is made through
        if isinstance(values, np.ndarray) and values.dtype == object:
            made.append(len(values))
        return to_arrow(values, *args, **kwargs)

    monkeypatch.setattr(pa, "array", spied)
    got = indicators.compute_indicators(data, "hospital")
    monkeypatch.undo()
    assert made and max(made) < len(data.cycles)  # (the units, the table's rows: not one per cycle)
    assert str(got.cycle_values["indicator"].dtype) == "str" and str(got.cycle_values["unit"].dtype) == "str"
    # the module's fresh computation of the same view (without the spy) gives the same table
    [fresh] = [f for f in fresh_tables if f.level == "hospital" and f.data.condition.id == result.data.condition.id]
    pd.testing.assert_frame_equal(got.table, fresh.table, check_exact=True)
    pd.testing.assert_frame_equal(got.cycle_values, result.cycle_values, check_exact=True)
