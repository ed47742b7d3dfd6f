"""The team page's depth tab with the shrunken (random-effects) estimates switched on, in English and Dutch: the own
unit's shrunken estimate, interval and expected rank are the indicator table's shrinkage columns (vbhc.shrinkage),
a small unit's estimate is pulled from its own adjusted value towards the benchmark, the option is kept in the URL,
and an indicator without shrinkage says so in one line instead of showing empty numbers."""

from __future__ import annotations

import pytest

from tests.test_app import DEPTH_TAB, _app, _name, _run
from tests.test_dutch_walk import _report, findings
from vbhc.i18n import fmt_ci, fmt_int, fmt_number, format_value, t
from vbhc.indicators import indicator_table

pytestmark = pytest.mark.usefixtures("local_mode")

TEAM = "views/condition_team.py"
#: a yes/no indicator whose units differ more than chance in the small demo (tau^2 > 0: the estimates move)
INDICATOR = "severe_complication"


def _rows(engine, indicator: str = INDICATOR):
    table = indicator_table("colorectal_cancer", "hospital", engine=engine).table
    return table[table["indicator"] == indicator]


def _switched_on(lang: str, indicator: str = INDICATOR):
    at = _app({"lang": lang, "condition": "colorectal_cancer", "indicator": indicator, "team_tab": DEPTH_TAB[lang]})
    _run(at, TEAM)
    assert not [d for d in at.dataframe if t("team.shrunken_column", lang) in d.value.columns]  # off by default
    at.toggle(key="shrunken").set_value(True)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _shown(at, lang: str):
    tables = [d.value for d in at.dataframe if t("team.shrunken_column", lang) in d.value.columns]
    assert len(tables) == 1
    return tables[0].set_index(t("column.unit", lang))


@pytest.mark.parametrize("lang", ["en", "nl"])
def test_the_option_shows_the_tables_shrunken_estimates_and_expected_rank(small_demo_db, lang):
    rows = _rows(small_demo_db[0])
    assert rows["shrinkage_tau2"].iloc[0] > 0  # otherwise every unit sits on the mean and nothing is tested
    at = _switched_on(lang)
    assert at.query_params["shrunken"] == "1"  # kept in the URL, so a shared link opens with it
    shown = _shown(at, lang)
    assert len(shown) == rows["shrunken_value"].notna().sum()

    own = rows[rows["unit"] == "H01"].iloc[0]
    line = shown.loc[_name(small_demo_db[0], "H01")]
    value = format_value(own["shrunken_value"], "proportion", lang)
    interval = fmt_ci(own["shrunken_lower"], own["shrunken_upper"], "proportion", lang)
    assert line[t("team.shrunken_column", lang)] == f"{value} ({interval})"
    assert line[t("column.adjusted", lang)] == format_value(own["adjusted_value"], "proportion", lang)
    rank = fmt_number(own["expected_rank"], lang, 1)
    bounds = f"{fmt_int(own['expected_rank_lower'], lang)}–{fmt_int(own['expected_rank_upper'], lang)}"
    assert line[t("team.expected_rank_column", lang)] == f"{rank} ({bounds})"
    # the own unit's sentence: its rank among the ranked units (a counting message), and the plain-words caption
    said = " ".join(m.value for m in at.markdown)
    ranked = t(
        "team.shrinkage_rank",
        lang,
        count=int(own["ranked_units"]),
        rank=rank,
        lower=fmt_int(own["expected_rank_lower"], lang),
        upper=fmt_int(own["expected_rank_upper"], lang),
    )
    assert ranked in said
    assert int(own["ranked_units"]) == len(shown)
    captions = " ".join(c.value for c in at.caption)
    assert t("team.shrinkage_explained", lang) in captions
    rankability = fmt_number(own["shrinkage_rankability"], lang, 2)
    assert t("team.shrinkage_rankability", lang, rankability=rankability) in captions

    # the smallest unit: its shrunken estimate lies strictly between its own adjusted value and the benchmark
    small = rows.sort_values("n").iloc[0]
    low, high = sorted((small["adjusted_value"], small["target"]))
    assert low < small["shrunken_value"] < high
    small_line = shown.loc[_name(small_demo_db[0], small["unit"])]
    assert small_line[t("team.shrunken_column", lang)].startswith(
        format_value(small["shrunken_value"], "proportion", lang)
    )
    assert small_line[t("column.care_cycles", lang)] == fmt_int(small["n"], lang)
    if lang == "nl":
        found = findings(at, TEAM)
        assert not found, _report(found)


@pytest.mark.parametrize("lang", ["en", "nl"])
def test_an_indicator_without_shrinkage_says_so_in_one_line(small_demo_db, lang):
    assert _rows(small_demo_db[0], "survival_5y")["shrunken_value"].isna().all()
    at = _switched_on(lang, "survival_5y")
    assert t("team.shrinkage_none", lang) in [c.value for c in at.caption]
    assert not [d for d in at.dataframe if t("team.shrunken_column", lang) in d.value.columns]
