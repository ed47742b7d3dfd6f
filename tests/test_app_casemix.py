"""The team page's case-mix tab, in English and Dutch: multiple imputation of missing case-mix values on request
(per unit the care cycles complete-case analysis leaves out, E and O/E under both: the complete-case figures are
the indicator table's, the imputed ones vbhc.indicators.casemix_imputation's), kept in the URL; the quality of a
survival indicator's Cox model (concordance, deaths and care cycles used, the proportional-hazards check per
case-mix term); and a manager's shrinkage table, whose other units show their banded n and a whole rank."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from streamlit.testing.v1 import AppTest

from tests.apptest import run_on_page
from tests.roles import MAPPING, USERS
from tests.shown import tables as shown_tables
from tests.test_app import _app, _name, _run
from tests.test_dutch_walk import _report, findings
from vbhc import imputation
from vbhc.casemix import shares_of_gap_read_as_shares
from vbhc.catalog import default_catalog
from vbhc.i18n import MISSING, fmt_ci, fmt_int, fmt_number, fmt_ratio, format_value, t
from vbhc.indicators import (
    casemix_explanation,
    casemix_imputation,
    compute_indicators,
    indicator_table,
    load_condition_data,
    restrict,
)
from vbhc.results import ResultStore, ViewKey
from vbhc.settings import PROJECT_ROOT
from vbhc.store import get_engine

pytestmark = pytest.mark.usefixtures("local_mode")

TEAM = "views/condition_team.py"
CONDITION = "colorectal_cancer"
CASEMIX_TAB = {lang: t("pages.tab_casemix", lang) for lang in ("en", "nl")}


def _casemix_tab(lang: str, indicator: str):
    at = _app({"lang": lang, "condition": CONDITION, "indicator": indicator, "team_tab": CASEMIX_TAB[lang]})
    return _run(at, TEAM)


def _table_with(at: AppTest, header: str):
    found = [d.value for d in at.dataframe if header in d.value.columns]
    assert len(found) == 1, [list(d.value.columns) for d in at.dataframe]
    return found[0]


@pytest.mark.parametrize(
    ("lang", "indicator"), [("en", "mortality_30d"), ("nl", "mortality_30d"), ("en", "length_of_stay")]
)
def test_multiple_imputation_on_request_shows_both_analyses_per_unit(small_demo_db, lang, indicator):
    engine, _ = small_demo_db
    result = indicator_table(CONDITION, "hospital", engine=engine)
    table = result.table[result.table["indicator"] == indicator].set_index("unit")
    mi = casemix_imputation(result, indicator).per_unit.set_index(imputation.UNIT)
    assert mi[imputation.N_EXCLUDED].sum() > 0  # the demo misses ~1% of each case-mix value: something to show
    at = _casemix_tab(lang, indicator)
    off = [d for d in at.dataframe if t("team.imputation_excluded", lang) in d.value.columns]
    assert not off  # off by default: the page does not impute unasked
    at.toggle(key="imputed").set_value(True)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.query_params["imputed"] == "1"  # kept in the URL, so a shared link opens with it
    shown = _table_with(at, t("team.imputation_excluded", lang)).set_index(t("team.imputation_unit", lang))
    assert len(shown) == len(mi)
    binary = indicator == "mortality_30d"
    kind = "ratio" if binary else "difference"
    ind_kind = default_catalog().condition(CONDITION).indicator(indicator).kind

    def interval(value: float, lower: float, upper: float) -> str:
        if binary:
            return f"{fmt_ratio(value, lang)} ({fmt_ci(lower, upper, 'oe', lang)})"
        return f"{format_value(value, ind_kind, lang)} ({fmt_ci(lower, upper, ind_kind, lang)})"

    for unit, row in mi.iterrows():
        line = shown.loc[_name(engine, unit)]
        own = table.loc[unit]
        assert line[t("team.imputation_cycles", lang)] == fmt_int(own["n"], lang)
        assert line[t("team.imputation_excluded", lang)] == fmt_int(row[imputation.N_EXCLUDED], lang)
        # complete case = the indicator table's own model: its n, expected and O/E with its interval
        assert row[imputation.N] - row[imputation.N_EXCLUDED] == own["n_adjusted"]
        assert row[imputation.EXPECTED_CC] == pytest.approx(own["expected"], rel=1e-9)
        if binary:
            cc = interval(own["oe"], own["oe_lower"], own["oe_upper"])
            assert line[t("team.imputation_expected_mi", lang)] == fmt_number(row[imputation.EXPECTED_MI], lang, 1)
        else:
            adjusted_minus_benchmark = own["adjusted_value"] - own["target"]
            assert row[imputation.ESTIMATE_CC] == pytest.approx(adjusted_minus_benchmark, abs=1e-9)
            cc = interval(row[imputation.ESTIMATE_CC], row[imputation.LOWER_CC], row[imputation.UPPER_CC])
        mi_text = interval(row[imputation.ESTIMATE_MI], row[imputation.LOWER_MI], row[imputation.UPPER_MI])
        assert line[t(f"team.imputation_{kind}_cc", lang)] == cc
        assert line[t(f"team.imputation_{kind}_mi", lang)] == mi_text
    # the own unit in words: the cycles left out (a counting message) and E and O/E under both
    said = " ".join(m.value for m in at.markdown)
    assert fmt_int(mi.loc["H01", imputation.N_EXCLUDED], lang) in said and _name(engine, "H01") in said
    captions = " ".join(c.value for c in at.caption)
    assert t("team.imputation_explained", lang) in captions
    assert t("team.imputation_datasets", lang, count=imputation.M) in captions
    if lang == "nl":
        found = findings(at, TEAM)
        assert not found, _report(found)


@pytest.mark.parametrize(
    ("lang", "indicator"), [("en", "mortality_30d"), ("nl", "anastomotic_leak"), ("nl", "length_of_stay")]
)
def test_the_casemix_tab_shows_shares_only_where_they_read_as_shares_and_only_its_models_measures(
    small_demo_db, lang, indicator
):
    """A variable's contribution signed with "−" and, for a rate, in percentage points. Shares of the gap only
    where the variables pull the gap's way (vbhc.casemix.shares_of_gap_read_as_shares;
    the own hospital's colorectal mortality showed 440% and -330%), else a caption that says why; the model's
    quality without the measure its kind has not (a logistic model's R², a linear model's c-statistic): no row
    of dashes."""
    engine, _ = small_demo_db
    result = ResultStore(engine).result(ViewKey.of(CONDITION, "hospital"))  # the view the page reads
    explained = casemix_explanation(result, indicator)
    own = explained[explained["unit"] == "H01"]
    expect_shares = shares_of_gap_read_as_shares(own["contribution"].to_numpy(), float(own["gap"].iloc[0]))
    at = _casemix_tab(lang, indicator)
    assert not at.exception, [e.value for e in at.exception]
    table = _table_with(at, t("model.variables", lang))
    share = t("pages.short_share", lang)
    captions = [c.value for c in at.caption]
    assert (share in table.columns) == expect_shares, (list(table.columns), own)
    assert (t("team.shares_not_shown", lang) in captions) != expect_shares
    if expect_shares:  # every share shown is one: between -5% and 105%
        values = [float(v.rstrip("%").replace(",", ".")) for v in table[share] if v != MISSING]
        assert values and all(-5 <= v <= 105 for v in values), values
    # a contribution is a difference of two expected values: of two rates in percentage points ("−0,2 procentpunt",
    # was "-0,2%", read as a relative change), signed with the minus sign every other number on the pages uses
    contributions = [v for v in table[t("pages.short_contribution", lang)] if v != MISSING]
    assert contributions and not any(v.startswith("-") for v in contributions), contributions
    points = t("format.points", lang, value="").strip()
    assert all(v.endswith(points) for v in contributions) == (indicator != "length_of_stay"), contributions
    assert any(v.startswith(("\u2212", "+")) for v in contributions), contributions
    quality = _table_with(at, t("pages.measure", lang)).set_index(t("pages.measure", lang))[t("pages.value", lang)]
    assert MISSING not in set(quality), quality
    binary = indicator != "length_of_stay"
    assert (t("model.c_statistic", lang) in quality.index) == binary
    assert (t("model.r_squared", lang) in quality.index) != binary


@pytest.mark.parametrize("lang", ["en", "nl"])
def test_a_survival_indicator_shows_its_cox_models_quality(small_demo_db, lang):
    engine, _ = small_demo_db
    result = indicator_table(CONDITION, "hospital", engine=engine)
    model = result.data.cox["survival_5y"]
    row = result.table[(result.table["indicator"] == "survival_5y") & (result.table["unit"] == "H01")].iloc[0]
    at = _casemix_tab(lang, "survival_5y")
    assert not at.exception, [e.value for e in at.exception]
    assert t("survival.cox_title", lang) in [m.value.lstrip("# ") for m in at.markdown]
    quality = _table_with(at, t("pages.measure", lang)).set_index(t("pages.measure", lang))[t("pages.value", lang)]
    assert quality[t("survival.concordance", lang)] == fmt_ratio(row["model_c_statistic"], lang)
    assert quality[t("survival.concordance", lang)] == fmt_ratio(model.concordance, lang)
    deaths = int((result.cycle_values.query("indicator == 'survival_5y'")["expected"].notna()
                  & (result.cycle_values.query("indicator == 'survival_5y'")["observed"] == 1)).sum())  # fmt: skip
    assert model.events == deaths > 0
    assert quality[t("survival.deaths", lang)] == fmt_int(deaths, lang)
    assert quality[t("model.cycles_used", lang)] == fmt_int(model.n, lang)
    assert model.n == int(result.table.loc[result.table["indicator"] == "survival_5y", "n_adjusted"].sum())
    assert quality[t("model.cycles_excluded", lang)] == fmt_int(row["model_n_excluded"], lang)
    # one proportional-hazards line per case-mix term of the model, the smallest p as the depth tab reports it
    # a static table (its cells wrap in the half-width column; a data grid scrolled sideways there)
    [ph] = [tab.value for tab in shown_tables(at) if t("survival.ph_term", lang) in tab.value.columns]
    assert len(ph) == len(model.ph_test) > 0
    p_shown = ph[t("survival.ph_p", lang)].tolist()
    expected = [fmt_number(p, lang, 3) if p >= 0.001 else f"< {fmt_number(0.001, lang, 3)}" for p in model.ph_test["p"]]
    assert p_shown == expected
    verdicts = {t("survival.ph_term_holds", lang), t("survival.ph_term_violated", lang)}
    assert set(ph[t("survival.ph_assumption", lang)]) <= verdicts
    assert (ph[t("survival.ph_assumption", lang)] == t("survival.ph_term_violated", lang)).sum() == int(
        (model.ph_test["p"] < 0.05).sum()
    )
    assert model.ph_test["p"].min() == pytest.approx(row["ph_p_value"])
    terms = ph[t("survival.ph_term", lang)].tolist()
    age = default_catalog().condition(CONDITION).casemix_variable("age").label(lang)
    assert age in terms and t("survival.ph_term_squared", lang, variable=age) in terms
    assert not any("[" in term or "^" in term for term in terms)  # no design-column ids
    # no imputation option for a survival indicator (its model is the Cox model)
    assert not [w for w in at.toggle if w.key == "imputed"]
    if lang == "nl":
        found = findings(at, TEAM)
        assert not found, _report(found)


@pytest.mark.parametrize("lang", ["en", "nl"])
def test_a_comparison_groups_casemix_tab_shows_the_registry_model_and_its_shift(small_demo_db, lang):
    """A comparison group's case-mix model is the registry's, recalibrated to the group: the tab shows the
    registry model's quality and fit size, the shift and the group's cycles; the Cox model its baseline factor."""
    engine, _ = small_demo_db
    peers = ["H01", "H02", "H03", "H04"]
    whole = load_condition_data(CONDITION, engine=engine)
    compute_indicators(whole, "hospital")  # the registry's models
    group = compute_indicators(restrict(whole, None, peers), "hospital")
    model, registry = group.models["mortality_30d"], whole.fitted["mortality_30d"]
    query = {"lang": lang, "condition": CONDITION, "team_tab": CASEMIX_TAB[lang], "peers": peers}
    at = _run(_app({**query, "indicator": "mortality_30d"}), TEAM)
    assert not at.exception, [e.value for e in at.exception]
    quality = _table_with(at, t("pages.measure", lang)).set_index(t("pages.measure", lang))[t("pages.value", lang)]
    assert quality[t("model.c_statistic", lang)] == fmt_ratio(registry.diagnostics.c_statistic, lang)
    assert quality[t("model.registry_cycles", lang)] == fmt_int(registry.diagnostics.n_used, lang)
    assert quality[t("model.recalibration_shift", lang)] == fmt_number(model.recalibration.shift, lang, 3)
    assert quality[t("model.cycles_used", lang)] == fmt_int(model.diagnostics.n_used, lang)
    assert model.diagnostics.n_used < registry.diagnostics.n_used
    scale = t("model.scale_logit", lang)
    assert t("model.recalibrated_caption", lang, scale=scale) in [c.value for c in at.caption]
    at = _run(_app({**query, "indicator": "survival_5y"}), TEAM)
    assert not at.exception, [e.value for e in at.exception]
    quality = _table_with(at, t("pages.measure", lang)).set_index(t("pages.measure", lang))[t("pages.value", lang)]
    scaled = group.data.cox["survival_5y"].baseline_scale
    assert quality[t("survival.baseline_scale", lang)] == fmt_ratio(scaled, lang)
    assert quality[t("survival.concordance", lang)] == fmt_ratio(whole.cox["survival_5y"].concordance, lang)
    assert t("survival.cox_recalibrated", lang) in [c.value for c in at.caption]


def test_a_comparison_groups_since_table_computes_the_group_at_the_meeting_for_its_signals_only(small_demo_db):
    """ "Since the last meeting" for a comparison group reads the group as it was at the meeting only for the
    indicators with a signal now (vbhc.meeting.signalled): those rows are computed (cut from the registry's view at
    the meeting, with the models the group's are recalibrated from), not the whole view, which is neither computed
    nor stored; the table shown is the one the whole view at the meeting gives (tests/test_group_since_meeting.py:
    to the bit), and the group's own view is computed and stored once."""
    from vbhc import meeting, results

    engine, _ = small_demo_db
    peers = ("H01", "H02", "H03")
    when = dt.date(2025, 7, 1)
    store = results.ResultStore(engine)
    version = store.version()
    registry = store.result(results.ViewKey(CONDITION, "hospital"), version)
    label = meeting.as_of_label(registry, when)
    assert label is not None and label.endswith("..2025-07-01")
    then = results.ViewKey(CONDITION, "hospital", label, peers)
    assert not store.has(then, version)
    at = _run(_app({"lang": "en", "condition": CONDITION, "peers": list(peers), "meeting": when}), TEAM)
    assert not at.exception, [e.value for e in at.exception]
    assert store.has(results.ViewKey(CONDITION, "hospital", "", peers), version)  # the group's own view
    assert not store.has(then, version)  # the group at the meeting: not a whole view
    since = [s.value for s in shown_tables(at) if t("meeting.column_new_signal", "en") in s.value.columns]
    assert len(since) == 1 and len(since[0])  # the table is shown


@pytest.fixture
def manager_db(small_demo_db, monkeypatch, tmp_path):
    mapping = tmp_path / "access.toml"
    mapping.write_text(MAPPING, encoding="utf-8")
    monkeypatch.setenv("VBHC_ACCESS_FILE", str(mapping))
    monkeypatch.setenv("VBHC_AUTH", "oidc")
    get_engine.cache_clear()
    return small_demo_db[0]


def test_a_managers_shrinkage_table_shows_banded_n_and_whole_ranks_for_other_units(manager_db):
    """The manager of H01 sees the other hospitals anonymised (vbhc.access): n as a band (vbhc.disclosure), the
    rounded shrunken value without interval and the expected rank as a whole number; the own unit exactly."""
    lang = "en"
    at = AppTest.from_file(str(PROJECT_ROOT / "streamlit_app.py"), default_timeout=180)
    at.secrets["auth"] = {"client_id": "x", "client_secret": "x", "server_metadata_url": "http://localhost/x"}
    at.user = {"is_logged_in": True, **USERS["manager"]}
    at.query_params["lang"] = lang
    at.session_state["condition"] = CONDITION
    at.session_state["team_tab"] = t("pages.tab_depth", lang)
    run_on_page(at, TEAM)
    at.selectbox(key="indicator").set_value("severe_complication")
    at.run()
    at.toggle(key="shrunken").set_value(True)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    shown = _table_with(at, t("team.shrunken_column", lang))
    units = shown[t("column.unit", lang)]
    others = shown[units.str.startswith(t("comparison.other_unit", lang, number="").strip())]
    assert len(others) >= 5 and len(shown) - len(others) == 1
    band = re.compile(r"^(<\d+|\d+-\d+|≥\d+)$")
    assert others[t("column.care_cycles", lang)].str.match(band).all(), others
    assert others[t("team.expected_rank_column", lang)].str.fullmatch(r"\d+").all(), others
    assert not (others[t("team.shrunken_column", lang)] == MISSING).any()
    assert not others[t("team.shrunken_column", lang)].str.contains(r"\(").any()  # no interval: precision gives n
    own = shown[~units.isin(others[t("column.unit", lang)])].iloc[0]
    assert re.fullmatch(r"[\d,]+", own[t("column.care_cycles", lang)])
    assert "(" in own[t("team.expected_rank_column", lang)]
