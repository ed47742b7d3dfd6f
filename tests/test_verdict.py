"""vbhc.verdict: one verdict per indicator that never contradicts itself, in both languages; and one verdict
column (no assessment_95/assessment_998 pair) in the displayed tables and reports."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vbhc import spc
from vbhc.i18n import MISSING, fmt_ratio, t
from vbhc.verdict import verdict

POSITIONS = ["above", "below", "within"]
CANNOT = {lang: t("verdict.rank_cannot", lang, rankability="").split("(")[0].strip() for lang in ("en", "nl")}


def _assess(position: str, higher: bool) -> str:
    if position == "above":
        return "better" if higher else "worse"
    if position == "below":
        return "worse" if higher else "better"
    return "as expected"


def _row(**kw) -> pd.Series:
    base = {
        "indicator": "anastomotic_leak",
        "kind": "proportion",
        "direction": "lower",
        "n": 150,
        "n_adjusted": 150,
        "observed": 33,
        "expected": 19.95,
        "oe": 33 / 19.95,
        "oe_lower": 1.14,
        "oe_upper": 2.32,
        "crude_value": 0.22,
        "crude_lower": 0.16,
        "crude_upper": 0.29,
        "adjusted_value": 0.22,
        "adjusted_lower": 0.15,
        "adjusted_upper": 0.31,
        "target": 0.133,
        "position_95": "above",
        "position_998": "above",
        "assessment_95": "worse",
        "assessment_998": "worse",
        "too_few_cycles": False,
        "min_n": 20,
        "rankability": 0.2,
        "rankability_note": "cannot tell units apart",
    }
    base.update(kw)
    return pd.Series(base)


def _rising_chart() -> pd.DataFrame:
    periods = pd.date_range("2023-01-01", periods=10, freq="QS")
    events = [13, 14, 12, 14, 13, 25, 26, 25, 27, 26]  # baseline p 13.2%, upper limit 23.4%: Q2 2024 on
    return spc.p_chart(events, [100] * 10, periods=periods, direction="lower", target=0.133, baseline=5)


def test_the_example_sentence():
    v = verdict(_row(), _rising_chart())
    assert v.category == "worse" and v.severity == "998" and v.decisive
    assert v.sentence("en").startswith(
        "Worse than expected: 22.0% against 13.3% expected for its patients; outside the 99.8% limits; "
    )
    assert v.sentence("en").endswith("; rising since Q2 2024")
    assert "larger than chance" in v.sentence("en")  # low rankability: said, but never "cannot tell apart"
    assert CANNOT["en"] not in v.sentence("en")
    nl = v.sentence("nl")
    assert nl.startswith("Slechter dan verwacht: 22,0% tegenover 13,3% verwacht voor de eigen patiënten; buiten de")
    assert nl.endswith("stijgend sinds K2 2024")
    assert v.variation == "concern" and v.concern and v.signal
    assert "(95% CI" in v.sentence("en", with_ci=True)


def test_common_cause_is_stable_and_95_only_is_possible():
    quiet = spc.p_chart([13, 14, 12, 13, 14, 13], [100] * 6, direction="lower")
    v = verdict(_row(position_998="within", assessment_998="as expected"), quiet)
    assert v.category == "worse" and v.severity == "95" and not v.decisive
    assert v.label("en") == "Possibly worse than expected"
    assert v.assessment == "as expected"  # not coloured: outcomes are judged at 99.8%
    assert "outside the 95% limits, within the 99.8% limits" in v.sentence("en")
    assert v.sentence("en").endswith("stable over time")
    assert not v.signal and not v.concern


def test_cost_is_judged_at_95_one_verdict_where_two_columns_disagreed():
    row = _row(
        kind="cost",
        direction="lower",
        observed=25000.0,
        expected=21000.0,
        adjusted_value=24500.0,
        adjusted_lower=23000.0,
        adjusted_upper=26000.0,
        target=20500.0,
        position_998="within",
        assessment_998="as expected",
        rankability=0.8,
        rankability_note="",
    )
    v = verdict(row)
    assert v.category == "worse" and v.decisive and v.assessment == "worse"
    assert v.sentence("en").startswith("Worse than expected: €25,000 against €21,000 expected for its patients")


@pytest.mark.parametrize(
    ("kw", "category"),
    [
        ({"too_few_cycles": True, "position_998": "too few cycles", "position_95": "too few cycles"}, "too_few"),
        ({"adjusted_value": np.nan, "observed": np.nan, "position_998": "no data"}, "no_data"),
        ({"target": np.nan, "position_998": None, "position_95": None}, "no_benchmark"),
        ({"position_998": "within", "position_95": "within"}, "as_expected"),
        ({"position_998": "below", "position_95": "below"}, "better"),
        ({"kind": "volume"}, "not_assessed"),
    ],
)
def test_categories(kw, category):
    assert verdict(_row(**kw)).category == category


def test_too_few_says_how_many():
    v = verdict(_row(n=12, too_few_cycles=True, position_998="too few cycles", position_95="too few cycles"))
    assert v.sentence("en") == "Too few care cycles: 12 care cycles, at least 20 needed for an assessment"
    assert v.sentence("nl") == "Te weinig zorgtrajecten: 12 zorgtrajecten, ten minste 20 nodig voor een oordeel"


def test_too_few_with_a_withheld_count_names_no_count():
    """Another unit's n withheld (a care team limited to some hospitals) or in a band (a manager) is NaN in its
    row: the cost page's table of every unit stopped with a TypeError (a plural form of NaN) for those viewers on
    a registry with small units; the sentence now says what is needed, no count."""
    too_few = {"too_few_cycles": True, "position_998": "too few cycles", "position_95": "too few cycles"}
    for kind in ("cost", "proportion", "prem_rating"):
        v = verdict(_row(n=np.nan, n_adjusted=np.nan, observed=np.nan, expected=np.nan, kind=kind, **too_few))
        assert v.sentence("en").endswith(": at least 20 needed for an assessment"), v.sentence("en")
        assert v.sentence("nl").endswith(": ten minste 20 nodig voor een oordeel")
        assert "nan" not in v.sentence("en").lower()


def test_too_few_with_complete_case_mix_says_that_count():
    """Slokdarmkanker's quality of life said "Te weinig zorgtrajecten: 27 zorgtrajecten, ten minste 20 nodig": the
    limits count the cycles with complete case-mix data (n_adjusted, here 18), not all 27."""
    too_few = {"too_few_cycles": True, "position_998": "too few cycles", "position_95": "too few cycles"}
    v = verdict(_row(n=27, n_adjusted=18, kind="mean", **too_few))
    assert v.sentence("en") == (
        "Too few care cycles: 18 care cycles with complete case-mix data (of 27), at least 20 needed for an assessment"
    )
    assert v.sentence("nl") == (
        "Te weinig zorgtrajecten: 18 zorgtrajecten met volledige casemixgegevens (van 27), ten minste 20 nodig "
        "voor een oordeel"
    )
    # fewer than min_n in all: the plain count, as before
    plain = verdict(_row(n=12, n_adjusted=10, **too_few))
    assert plain.sentence("nl") == "Te weinig zorgtrajecten: 12 zorgtrajecten, ten minste 20 nodig voor een oordeel"


def test_too_few_counts_respondents_or_answers_for_patient_experience():
    too_few = {"too_few_cycles": True, "position_998": "too few cycles", "position_95": "too few cycles"}
    rating = verdict(_row(n=12, kind="prem_rating", **too_few))
    assert rating.sentence("en") == "Too few respondents: 12 respondents, at least 20 needed for an assessment"
    assert rating.sentence("nl") == "Te weinig respondenten: 12 respondenten, ten minste 20 nodig voor een oordeel"
    topbox = verdict(_row(n=1, kind="prem_topbox", **too_few))
    assert topbox.sentence("en") == "Too few answers: 1 answer, at least 20 needed for an assessment"
    assert topbox.sentence("nl") == "Te weinig antwoorden: 1 antwoord, ten minste 20 nodig voor een oordeel"


def test_cannot_tell_apart_only_within_the_limits():
    within = verdict(_row(position_998="within", position_95="within"))
    assert CANNOT["en"] in within.sentence("en") and CANNOT["nl"] in within.sentence("nl")


@pytest.mark.parametrize("lang", ["en", "nl"])
def test_within_limits_wider_than_the_interval_says_why(lang):
    """A patient-experience row on the demo: 'as expected, within the 95% limits' beside a 95% CI of 27.1-40.3%
    that leaves out the expected 41.7%. Both hold: the funnel's limits allow for over-dispersion (answers of one
    respondent alike, units differing more than chance), the unit's interval does not. The sentence says so, and
    a row whose limits do not allow for it (dispersion none), or whose interval holds the expected value, says
    plainly 'within'; without over-dispersion the two disagree only at the limits' edge, which it then says."""
    within = {"position_998": "within", "position_95": "within", "rankability": 0.9, "rankability_note": ""}
    # O/E 0.80 (0.65-0.97) x an expected rate of 0.417: an interval of 27.1%-40.3% against 41.7%
    row = _row(**within, n=600, n_adjusted=600, observed=200, expected=250.2, oe_lower=0.65, oe_upper=0.967)
    row = pd.Series({**row, "target": 0.417, "adjusted_lower": 0.35, "adjusted_upper": 0.5})  # holds the benchmark
    wide = verdict(pd.Series({**row, "dispersion_method": "multiplicative"}))
    assert wide.category == "as_expected"
    assert t("verdict.within_overdispersed", lang) in wide.sentence(lang, with_ci=True)
    assert t("verdict.within_overdispersed", lang) in wide.sentence(lang)  # the interval may stand in its own column
    # the screenshot's row: the verdict's own interval (O/E 0.62-1.02 x 40.9% expected) holds the expected value,
    # the tables' CI column (the adjusted 33.4%: 27.1-40.3%) leaves the benchmark column's 41.7% out
    shown = {"oe_upper": 1.0235, "adjusted_value": 0.334, "adjusted_lower": 0.271, "adjusted_upper": 0.403}
    table = verdict(pd.Series({**row, **shown, "target": 0.417, "dispersion_method": "additive"}))
    assert t("verdict.within_overdispersed", lang) in table.sentence(lang)
    # limits without over-dispersion, around the benchmark, and the interval around the unit's value: two
    # computations that can disagree at the edge (5 rows of 2,064 on the demo); the sentence says it is the edge
    edge = verdict(pd.Series({**row, "dispersion_method": "none"}))
    assert t("verdict.within_edge", lang) in edge.sentence(lang)
    assert t("verdict.within_overdispersed", lang) not in edge.sentence(lang)
    plain = verdict(pd.Series({**row, "dispersion_method": "additive", "oe_upper": 1.1}))  # holds 1: no contradiction
    text = plain.sentence(lang, with_ci=True)
    assert t("verdict.within", lang) in text
    assert t("verdict.within_overdispersed", lang) not in text and t("verdict.within_edge", lang) not in text


rows = st.builds(
    lambda p998, p95, higher, kind, rank, too_few, target, with_chart: (
        _row(
            position_998=p998,
            position_95=p998 if p998 != "within" else p95,  # outside 99.8% is outside 95% too
            assessment_998=_assess(p998, higher),
            assessment_95=_assess(p998 if p998 != "within" else p95, higher),
            direction="higher" if higher else "lower",
            kind=kind,
            rankability=rank,
            rankability_note="cannot tell units apart" if not rank >= 0.5 else "",
            too_few_cycles=too_few,
            target=target,
        ),
        with_chart,
    ),
    st.sampled_from(POSITIONS),
    st.sampled_from(POSITIONS),
    st.booleans(),
    st.sampled_from(["proportion", "prom_mic", "mean", "prom_score", "cost", "response_rate"]),
    st.one_of(st.floats(0, 1), st.just(float("nan"))),
    st.booleans(),
    st.one_of(st.floats(0.01, 0.99), st.just(float("nan"))),
    st.booleans(),
)


@settings(max_examples=300, deadline=None)
@given(rows)
def test_verdicts_never_contradict(case):
    row, with_chart = case
    v = verdict(row, _rising_chart() if with_chart else None)
    for lang in ("en", "nl"):
        text = v.sentence(lang)
        if row["too_few_cycles"]:
            assert v.category == "too_few" and v.assessment == "too few cycles"
            continue
        if row["position_998"] in ("above", "below"):
            # outside 99.8%: never "as expected", never "cannot tell units apart", and the right side
            assert v.category == row["assessment_998"] and v.severity == "998" and v.decisive
            assert not text.startswith(t("verdict.as_expected", lang))
            assert CANNOT[lang] not in text
            assert t(f"verdict.{v.category}", lang) == text.split(":")[0]
            assert t("verdict.outside_998", lang) in text
        elif row["position_95"] in ("above", "below"):
            assert v.category == row["assessment_95"] and v.severity == "95"
            assert CANNOT[lang] not in text
            assert v.decisive == (row["kind"] in ("cost", "response_rate"))
        else:
            assert v.category in ("as_expected", "no_benchmark")
            assert t("verdict.outside_998", lang) not in text and t("verdict.outside_95", lang) not in text
        # the colour never says more than the words
        if v.assessment in ("better", "worse"):
            assert v.category == v.assessment and v.decisive
        # the patient list speaks of "the signal" only when there is one
        assert v.concern <= v.signal


def test_the_displayed_table_has_an_oe_column_only_where_a_row_has_an_oe():
    """A table of means only (the cost page's units) showed an O/E column of dashes; a table with one rate keeps
    it, with a dash for the means."""
    pytest.importorskip("streamlit")
    from ui.render import indicator_display

    mean = {"indicator": "cost_per_cycle", "kind": "mean", "observed": 21182.0, "expected": 21817.0, "oe": np.nan}
    costs = pd.DataFrame([_row(**mean, unit=u) for u in ("H01", "H02")]).assign(condition="colorectal_cancer")
    mixed = pd.concat([costs.iloc[:1], pd.DataFrame([_row(unit="H01")]).assign(condition="colorectal_cancer")])
    for lang in ("en", "nl"):
        assert t("column.oe", lang) not in indicator_display(costs, lang, by="unit").columns
        shown = indicator_display(mixed.reset_index(drop=True), lang)
        assert list(shown[t("column.oe", lang)]) == [MISSING, fmt_ratio(33 / 19.95, lang)]


def test_one_verdict_column_in_the_displayed_table():
    pytest.importorskip("streamlit")
    from ui.render import indicator_display

    table = pd.DataFrame([_row(label_en="Anastomotic leakage", label_nl="Naadlekkage", unit="H01")]).assign(
        condition="colorectal_cancer", indicator="anastomotic_leak"
    )
    for lang in ("en", "nl"):
        shown = indicator_display(table, lang)
        assert t("verdict.column", lang) in shown.columns
        for gone in ("column.assessment", "position.title_95", "position.title_998"):
            assert t(gone, lang) not in shown.columns
        assert shown[t("verdict.column", lang)].iloc[0].startswith(t("verdict.worse", lang) + ":")


def test_a_chart_of_one_or_two_quarters_claims_no_trend_and_no_icon():
    """All care cycles in one quarter: the verdict said "stable over time" and the table "Common cause variation"
    from a single point. Now no trend clause, and the icon columns say "Too few periods" in the viewer's language."""
    from ui.render import spc_label

    one = spc.p_chart([13], [100], periods=pd.date_range("2024-01-01", periods=1, freq="QS"), direction="lower")
    v = verdict(_row(position_998="within", position_95="within", assessment_998="as expected"), one)
    assert v.trend == "" and v.variation == v.assurance == spc.TOO_FEW_PERIODS
    assert not v.sentence("en").endswith("stable over time") and "stabiel" not in v.sentence("nl")
    assert spc_label(v.variation, "en") == "Too few periods" and spc_label(v.assurance, "nl") == "Te weinig perioden"
    one.attrs.clear()  # a chart read back without its attrs: still judged by its points
    assert verdict(_row(), one).variation == spc.TOO_FEW_PERIODS


def test_no_event_in_any_unit_says_so_instead_of_no_data():
    """Every outcome an event: no unit ever reached a textbook outcome (0% everywhere, expected 0, no adjusted
    value). The team page said "No data" beside n = 64 and a benchmark of 0.0%; it now says why there is no
    verdict, in the viewer's language. A row without care cycles still says "No data"."""
    row = _row(
        indicator="textbook_outcome", direction="higher", n=64, n_adjusted=64, observed=0, expected=0.0,
        oe=np.nan, oe_lower=np.nan, oe_upper=np.nan, crude_value=0.0, adjusted_value=np.nan,
        adjusted_lower=np.nan, adjusted_upper=np.nan, target=0.0, position_95="no data", position_998="no data",
        rankability=np.nan, rankability_note="",
    )  # fmt: skip
    v = verdict(row)
    assert v.sentence("en") == (
        "Not assessed: 0.0% in this unit and in the benchmark; with no event in any unit there is no expected value "
        "to compare with"
    )
    assert v.sentence("nl").startswith("Niet beoordeeld: 0,0% in deze eenheid en in de benchmark;")
    assert v.assessment == "no data" and not v.signal
    assert verdict(_row(**{**row.to_dict(), "n": 0})).sentence("en") == "No data"


@pytest.mark.parametrize("lang", ["en", "nl"])
def test_a_rankability_that_could_not_be_estimated_is_said_in_words(lang):
    """The overview (English) read "cannot reliably tell units apart (rankability –)" for thyroid cancer's quality
    of life: a rankability that could not be estimated is said in words, never as a dash in parentheses."""
    within = {"position_95": "within", "position_998": "within", "assessment_95": "as expected"}
    worse = verdict(_row(rankability=np.nan), None).sentence(lang)
    expected = verdict(_row(rankability=np.nan, **within, assessment_998="as expected"), None).sentence(lang)
    for sentence in (worse, expected):
        assert MISSING not in sentence, sentence
    assert t("verdict.rank_real_unknown", lang) in worse, worse
    assert t("verdict.rank_cannot_unknown", lang) in expected, expected


def test_negative_numbers_in_the_displayed_table_have_the_minus_sign_and_the_csv_keeps_the_hyphen():
    """A PROM change of -4.4 points (CI -6.1 to -2.7) read "-4,4" and "-6,1 – -2,7" in the grids and the PDF
    table, with a hyphen, while the charts and the texts wrote "−4,4": one sign for people, in both languages. A
    CSV download is for machines: its cells are the numbers and keep the hyphen."""
    pytest.importorskip("streamlit")
    from ui.render import indicator_display
    from vbhc.safety import safe_csv

    change = {"indicator": "eq5d_change", "kind": "prom_change", "observed": np.nan, "expected": np.nan}
    values = {"crude_value": -4.2, "adjusted_value": -4.44, "adjusted_lower": -6.1, "adjusted_upper": -2.7}
    table = pd.DataFrame([_row(**change, **values, oe=np.nan, target=-1.5, unit="H01")])
    table = table.assign(condition="hip_knee")
    for lang in ("en", "nl"):
        shown = indicator_display(table, lang, by="unit")
        cells = [shown[t(column, lang)].iloc[0] for column in ("column.crude", "column.adjusted", "column.ci95")]
        cells.append(shown[t("column.benchmark", lang)].iloc[0])
        for cell in cells:
            assert "\u2212" in cell and "-" not in cell, (lang, cell)
    assert b"-4.44" in safe_csv(table[["unit", "adjusted_value"]]) and "\u2212".encode() not in safe_csv(table)


@pytest.mark.parametrize("lang", ["en", "nl"])
@pytest.mark.parametrize("kind", ["proportion", "prem_rating", "prem_topbox"])
def test_a_withheld_benchmark_is_said_beside_the_crude_value_not_no_data(lang: str, kind: str) -> None:
    """A viewer whose benchmark is withheld (vbhc.access._without_benchmark: too few other units) keeps the own
    count and crude value: the verdict names that value and why there is no more, not "No data" beside a count
    (the team page's patient experience said "No data" beside "106 respondents" for a colorectal care team)."""
    from vbhc.access import _without_benchmark
    from vbhc.i18n import format_value

    crude = 7.8 if kind == "prem_rating" else 0.22
    row = _without_benchmark(pd.DataFrame([_row(kind=kind, crude_value=crude)])).iloc[0]
    v = verdict(row)
    assert v.category == "no_benchmark"
    sentence = v.sentence(lang)
    assert t("verdict.no_data", lang) not in sentence
    assert sentence.startswith(t("verdict.no_benchmark", lang) + ": " + format_value(crude, kind, lang))
    assert verdict(_row(kind=kind, crude_value=crude)).category != "no_benchmark"  # a benchmark given: judged
