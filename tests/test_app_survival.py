"""The team page with a survival indicator, in English and Dutch: its verdict in the indicator table (deaths against
the Cox model's expected deaths, the SMR), and in depth the Kaplan-Meier curves of the own unit against the
benchmark population, the number at risk, the SMR with its exact interval and the proportional-hazards check,
each checked against the indicator table's own numbers (AppTest reads the chart's spec and datasets)."""

from __future__ import annotations

import pytest

from tests.shown import tables as shown_tables
from tests.test_app import DEPTH_TAB, _app, _name, _run
from tests.test_dutch_walk import _chart_of, _report, findings
from vbhc import charts
from vbhc.catalog import default_catalog
from vbhc.i18n import fmt_ci, fmt_int, fmt_number, fmt_percent, fmt_ratio, t
from vbhc.indicators import indicator_table

pytestmark = pytest.mark.usefixtures("local_mode")

TEAM = "views/condition_team.py"
INDICATOR = "survival_5y"


def _row(engine, unit: str = "H01"):
    table = indicator_table("colorectal_cancer", "hospital", engine=engine).table
    return table[(table["indicator"] == INDICATOR) & (table["unit"] == unit)].iloc[0]


@pytest.mark.parametrize("lang", ["en", "nl"])
def test_the_verdict_table_reads_a_survival_indicator_as_deaths_against_expected(small_demo_db, lang):
    engine, _ = small_demo_db
    row = _row(engine)
    at = _run(_app({"lang": lang, "condition": "colorectal_cancer"}), TEAM)
    verdicts = shown_tables(at)[0].value
    label = default_catalog().condition("colorectal_cancer").indicator(INDICATOR).label(lang)
    shown = verdicts[verdicts[t("column.indicator", lang)] == label]
    assert len(shown) == 1
    said = shown[t("verdict.column", lang)].iloc[0]
    words = t(
        "verdict.against_deaths",
        lang,
        observed=fmt_int(row["observed"], lang),
        expected=fmt_number(row["expected"], lang, 1),
        smr=fmt_ratio(row["observed"] / row["expected"], lang),
    )
    assert words in said
    # the survival row has no quarterly trend (recent patients are followed for weeks): no variation icon
    assert shown[t("spc.variation", lang)].iloc[0] == t("spc.none", lang)
    if lang == "nl":
        found = findings(at, TEAM)
        assert not found, _report(found)


@pytest.mark.parametrize("lang", ["en", "nl"])
def test_the_depth_tab_shows_kaplan_meier_curves_the_smr_and_the_ph_check(small_demo_db, lang):
    engine, _ = small_demo_db
    row = _row(engine)
    at = _app({"lang": lang, "condition": "colorectal_cancer", "indicator": INDICATOR, "team_tab": DEPTH_TAB[lang]})
    _run(at, TEAM)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics[t("survival.deaths", lang)] == fmt_int(row["observed"], lang)
    assert metrics[t("survival.expected_deaths", lang)] == fmt_number(row["expected"], lang, 1)
    smr = f"{fmt_ratio(row['oe'], lang)} ({fmt_ci(row['oe_lower'], row['oe_upper'], 'oe', lang)})"
    assert metrics[t("survival.smr", lang)] == smr
    assert row["oe"] == pytest.approx(row["observed"] / row["expected"], rel=1e-12)

    # the Kaplan-Meier chart: the own unit (by name) against the benchmark population, each with its band
    own, population = _name(engine, "H01"), t("survival.benchmark_population", lang)
    found = []
    for proto in at.get("vega_lite_chart"):
        spec, datasets = _chart_of(proto.proto)
        if charts.title_lines(spec.get("title", "")) == t("chart.label.survival", lang):
            found.append(next(d for d in datasets.values() if "survival" in d.columns))
    assert len(found) == 1
    curves = found[0]
    assert set(curves["unit"]) == {own, population}
    assert {"lower", "upper", "at_risk"} <= set(curves.columns)
    assert (curves["lower"] <= curves["survival"] + 1e-12).all() and (
        curves["survival"] <= curves["upper"] + 1e-12
    ).all()
    last = curves.sort_values("years").groupby("unit")["survival"].last()
    # the curve at the horizon is the table's crude value; the population's is the benchmark
    assert last[own] == pytest.approx(row["crude_value"], abs=1e-12)
    assert last[population] == pytest.approx(row["target"], abs=1e-12)
    assert curves["years"].max() <= 5 + 1e-9

    # the number at risk, with the survival in brackets: everyone at the start, the crude value at the horizon
    at_risk = next(d.value for d in at.dataframe if t("survival.group", lang) in d.value.columns)
    mine = at_risk.set_index(t("survival.group", lang)).loc[own]
    assert mine[t("survival.start", lang)] == f"{fmt_int(row['n'], lang)} ({fmt_percent(1.0, lang)})"
    assert mine.iloc[-1].endswith(f"({fmt_percent(row['crude_value'], lang)})")
    assert list(at_risk.columns)[-1] == t("survival.year", lang, n=fmt_int(5, lang))

    # the proportional-hazards check in words
    checks = [t(f"survival.ph_{k}", lang, p="", variable="").split(":")[0] for k in ("holds", "violated", "unknown")]
    assert any(c.value.startswith(tuple(checks)) for c in at.caption)
    if lang == "nl":
        found = findings(at, TEAM)
        assert not found, _report(found)
