"""Every page opens with demo data and with an empty database, filters change what is shown, and the numbers
on screen are the indicator table's numbers (AppTest cannot see charts; chart builders are tested directly)."""

from __future__ import annotations

import re

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from tests.apptest import run_on_page
from tests.shown import tables as shown_tables
from vbhc.catalog import default_catalog
from vbhc.i18n import SUPPORTED, fmt_int, fmt_ratio, format_value, t, t_value
from vbhc.indicators import indicator_table
from vbhc.registry import unit_names, units
from vbhc.settings import PROJECT_ROOT
from vbhc.store import get_engine

PAGES = [
    "views/overview.py",
    "views/condition_team.py",
    "views/meeting.py",
    "views/board.py",
    "views/proms.py",
    "views/compare.py",
    "views/cost_value.py",
    "views/data.py",
    "views/audit.py",
    "views/methods.py",
]


pytestmark = pytest.mark.usefixtures("local_mode")  # tests/conftest.py; signed-in tests set VBHC_AUTH


def _app(query: dict[str, str] | None = None) -> AppTest:
    """The app with ?lang= and the sidebar filters preset (as a shared link would preset them).

    AppTest neither seeds URL-bound widgets from its query string nor lets a test change widgets that the
    main script of an st.navigation app creates after the first run (the browser test does both), so the
    filters are preset through Session State before the first run and page widgets are set on the page.
    """
    at = AppTest.from_file(str(PROJECT_ROOT / "streamlit_app.py"), default_timeout=180)
    query = dict(query or {})
    at.query_params["lang"] = query.get("lang", "en")
    for key, value in query.items():
        if key != "indicator":
            at.session_state[key] = value
    at._page_widgets = {k: v for k, v in query.items() if k == "indicator"}
    return at


def _run(at: AppTest, page: str | None = None) -> AppTest:
    if page:
        run_on_page(at, page)
    else:
        at.run()
    for key, value in getattr(at, "_page_widgets", {}).items():
        at.selectbox(key=key).set_value(value)
        at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


DEPTH_TAB = {"en": t("pages.tab_depth", "en"), "nl": t("pages.tab_depth", "nl")}


def _name(engine, unit: str, level: str = "hospital") -> str:
    """The display name the pages show for a unit id."""
    return unit_names(units(engine=engine), level)[unit]


@pytest.fixture
def empty_db(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    monkeypatch.setenv("VBHC_DATABASE_URL", url)
    yield url


@pytest.fixture
def demo_db(small_demo_registry, monkeypatch):
    """The pages against the engine's own numbers: the small demo registry (the size does not matter)."""
    engine, truth = small_demo_registry
    monkeypatch.setenv("VBHC_DATABASE_URL", engine.url.render_as_string(hide_password=False))
    return engine, truth


@pytest.mark.parametrize("page", PAGES)
def test_every_page_has_a_clear_empty_state(empty_db, page):
    at = _run(_app({"lang": "en"}), page)
    texts = " ".join(i.value for i in at.info)
    if page == "views/methods.py":
        assert any("Case-mix adjustment" in s.value for s in at.subheader)
    elif page == "views/audit.py":
        assert t("audit.empty", "en") in texts
    else:
        assert "vbhc demo" in texts, page


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_with_demo_data(small_demo_db, page):
    at = _run(_app({"lang": "en", "condition": "colorectal_cancer"}), page)
    assert at.title, page
    assert at.session_state["_filters"].condition == "colorectal_cancer"
    assert not any("vbhc demo" in i.value for i in at.info), page


def test_overview_scorecard_shows_the_indicator_table(demo_db):
    engine, truth = demo_db
    at = _run(_app({"lang": "en"}))
    own = truth["own_hospital"]
    scorecard = shown_tables(at)[0].value  # a static table: every line of its cells shows
    catalog = default_catalog()
    row = scorecard[scorecard[t("column.condition", "en")] == catalog.condition("colorectal_cancer").label("en")]
    assert len(row) == 1
    table = indicator_table("colorectal_cancer", "hospital", engine=engine).table
    mine = table[table["unit"] == own]
    volume = mine[mine["kind"] == "volume"]["n"].iloc[0]
    assert row[t("column.care_cycles", "en")].iloc[0] == fmt_int(volume, "en")
    cost = mine[mine["kind"] == "cost"].iloc[0]
    assert row[t("column.cost_per_cycle", "en")].iloc[0] == format_value(cost["adjusted_value"], "cost", "en")
    leak = mine[mine["indicator"] == "anastomotic_leak"].iloc[0]
    shown = " ".join(str(v) for v in row.iloc[0].to_numpy())
    assert format_value(leak["adjusted_value"], "proportion", "en") in shown
    # the scorecard's value is adjusted, the verdict table's is observed against expected: the cell says so
    adjusted = t(
        "overview.key_value_adjusted",
        "en",
        indicator=catalog.condition("colorectal_cancer").indicator("anastomotic_leak").label("en"),
        value=format_value(leak["adjusted_value"], "proportion", "en"),
        benchmark=format_value(leak["target"], "proportion", "en"),
    )
    assert adjusted in row.iloc[0].to_numpy().tolist() and "adjusted for case mix" in adjusted
    assert any(t("overview.adjusted_note", "en") in c.value for c in at.caption)
    # the key indicators: one table per condition under its name, the verdict next to the indicator
    verdict_column = t("verdict.column", "en")
    keyed = [tab.value for tab in shown_tables(at) if verdict_column in tab.value.columns]
    keyed = [k for k in keyed if t("prem.number", "en") not in k.columns]  # not the patient-experience tables
    assert keyed and all(list(k.columns[:2]) == [t("column.indicator", "en"), verdict_column] for k in keyed)
    headings = [m.value for m in at.markdown]
    colorectal = catalog.condition("colorectal_cancer").label("en")
    assert any(h.endswith(colorectal) for h in headings)
    key_leak = catalog.condition("colorectal_cancer").indicator("anastomotic_leak").label("en")
    assert any(key_leak in k[t("column.indicator", "en")].tolist() for k in keyed)


@pytest.fixture
def outlier_db(demo_registry, monkeypatch):
    """The default demo registry: its planted outlier is found at this size."""
    engine, truth = demo_registry
    monkeypatch.setenv("VBHC_DATABASE_URL", engine.url.render_as_string(hide_password=False))
    return engine, truth


def test_team_page_metrics_follow_indicator_and_unit(outlier_db):
    engine, _ = outlier_db
    at = _app(
        {"lang": "en", "condition": "colorectal_cancer", "indicator": "anastomotic_leak", "team_tab": DEPTH_TAB["en"]}
    )
    _run(at, "views/condition_team.py")
    assert at.title[0].value == f"Colorectal cancer · {_name(engine, 'H01')}"
    table = indicator_table("colorectal_cancer", "hospital", engine=engine).table
    row = table[(table["indicator"] == "anastomotic_leak") & (table["unit"] == "H01")].iloc[0]
    metrics = {m.label: m.value for m in at.metric}
    assert metrics[t("column.care_cycles", "en")] == fmt_int(row["n"], "en")
    assert metrics[t("column.adjusted", "en")] == format_value(row["adjusted_value"], "proportion", "en")
    assert metrics[t("column.benchmark", "en")] == format_value(row["target"], "proportion", "en")
    assert any(t("assessment.worse", "en") in m.value for m in at.markdown)  # the planted outlier
    # one sentence links the crude value (all cycles), the verdict's observed and expected (the scored cycles)
    link = t(
        "team.numbers_link",
        "en",
        count=int(row["n_adjusted"]),
        observed=format_value(row["observed"] / row["n_adjusted"], "proportion", "en"),
        expected=format_value(row["expected"] / row["n_adjusted"], "proportion", "en"),
        oe=fmt_ratio(row["oe"], "en"),
    )
    assert link in [c.value for c in at.caption]

    at.selectbox(key="indicator").set_value("length_of_stay").run()
    row = table[(table["indicator"] == "length_of_stay") & (table["unit"] == "H01")].iloc[0]
    metrics = {m.label: m.value for m in at.metric}
    assert metrics[t("column.adjusted", "en")] == format_value(row["adjusted_value"], "mean", "en")

    at = _app(
        {
            "lang": "en",
            "condition": "colorectal_cancer",
            "unit_hospital": "H06",
            "indicator": "length_of_stay",
            "team_tab": DEPTH_TAB["en"],
        }
    )
    _run(at, "views/condition_team.py")
    row = table[(table["indicator"] == "length_of_stay") & (table["unit"] == "H06")].iloc[0]
    metrics = {m.label: m.value for m in at.metric}
    assert metrics[t("column.crude", "en")] == format_value(row["crude_value"], "mean", "en")


def test_period_filter_changes_the_numbers(demo_db):
    engine, _ = demo_db
    at = _app(
        {
            "lang": "en",
            "condition": "colorectal_cancer",
            "indicator": "anastomotic_leak",
            "period": "2024",
            "team_tab": DEPTH_TAB["en"],
        }
    )
    _run(at, "views/condition_team.py")
    table = indicator_table("colorectal_cancer", "hospital", "2024", engine=engine).table
    row = table[(table["indicator"] == "anastomotic_leak") & (table["unit"] == "H01")].iloc[0]
    metrics = {m.label: m.value for m in at.metric}
    assert metrics[t("column.care_cycles", "en")] == fmt_int(row["n"], "en")


def test_dutch_labels_and_decimal_comma(demo_db):
    at = _app(
        {"lang": "nl", "condition": "colorectal_cancer", "indicator": "length_of_stay", "team_tab": DEPTH_TAB["nl"]}
    )
    _run(at, "views/condition_team.py")
    metrics = {m.label: m.value for m in at.metric}
    assert t("column.adjusted", "nl") in metrics
    assert "," in metrics[t("column.adjusted", "nl")]
    assert at.title[0].value.startswith(default_catalog().condition("colorectal_cancer").label("nl"))


@pytest.mark.parametrize("lang", ["en", "nl"])
def test_the_language_radio_offers_the_sessions_language_on_every_run(empty_db, lang):
    """The browser falls back to a radio's index when it holds no value of its own for it (the radio drawn again
    after a run that did not draw it), and sends that value with the next click. An index of the first option
    (Nederlands) on later runs once turned an English session Dutch in the middle of a walk."""
    at = AppTest.from_file(str(PROJECT_ROOT / "streamlit_app.py"), default_timeout=180)
    at.query_params["lang"] = lang  # the language from the URL only, as a browser opens a link
    for _ in range(3):
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        radio = at.radio(key="lang")
        assert radio.value == lang
        assert radio.proto.default == SUPPORTED.index(lang), radio.proto.default


@pytest.mark.parametrize("lang", SUPPORTED)
def test_methods_page_lists_every_catalog_indicator(empty_db, lang):
    """Each condition's indicators (with their minimum number of care cycles) and PROM scales (with their MIC), as
    static tables: a reference read, never sorted; as canvas grids (14 of them) they cost the browser most of the
    page's drawing on every visit, and their text was out of reach of the browser's own text checks."""
    at = _run(_app({"lang": lang}), "views/methods.py")
    assert not at.dataframe, "the methods page draws its reference tables as static tables"
    catalog = default_catalog()
    shown = shown_tables(at)
    assert len(shown) == 2 * len(catalog.conditions), len(shown)
    for condition, indicators, scales in zip(catalog.conditions.values(), shown[::2], shown[1::2], strict=True):
        rows = indicators.value.set_index(t("column.indicator", lang))
        assert list(rows.index) == [i.label(lang) for i in condition.indicators], condition.id
        assert list(rows[t("methods.min_n", lang)]) == [fmt_int(i.min_n, lang) for i in condition.indicators]
        expected = [s.label(lang) for use in condition.proms for s in catalog.instruments[use.instrument].scales]
        assert list(scales.value[t("proms.scale", lang)]) == expected, condition.id


def test_data_page_lists_import_batches(demo_db):
    at = _run(_app({"lang": "en"}), "views/data.py")
    batches = at.dataframe[0].value
    assert set(batches[t("batch.file", "en")]) >= {"care_cycles.csv", "prom_responses.csv"}
    # which file, when, by whom and how many rows in view at 1440 px; the 64-character SHA-256 last
    first = ["file", "table", "imported_at", "imported_by", "rows_read"]
    assert list(batches.columns[: len(first)]) == [t(f"batch.{key}", "en") for key in first]
    assert batches.columns[-1] == t("batch.sha256", "en")
    # the table column as wide as its longest name: the grid had cut "Patient-experience (PREM) answers"
    import json

    table = t("batch.table", "en")
    width = json.loads(at.dataframe[0].proto.columns)[table]["width"]
    assert width >= max(len(str(v)) for v in batches[table]) * 7 + 16, width


@pytest.fixture(autouse=True)
def _fresh_engine_cache():
    get_engine.cache_clear()
    yield
    get_engine.cache_clear()


def test_a_shared_link_reproduces_the_view_and_the_url_carries_ids(demo_db):
    at = AppTest.from_file(str(PROJECT_ROOT / "streamlit_app.py"), default_timeout=180)
    for key, value in {
        "lang": "nl",
        "condition": "colorectal_cancer",
        "unit_hospital": "H03",
        "indicator": "length_of_stay",
    }.items():
        at.query_params[key] = value
    _run(at, "views/condition_team.py")
    assert at.title[0].value == f"Darmkanker · {_name(demo_db[0], 'H03')}"
    assert at.selectbox(key="indicator").value == "length_of_stay"
    # the URL keeps ids, not the Dutch labels on screen, so the link also works for an English reader
    assert at.query_params["condition"] == ["colorectal_cancer"] or at.query_params["condition"] == "colorectal_cancer"
    assert "Darmkanker" not in str(dict(at.query_params))


def _legends(spec) -> list:
    """Every legend a chart spec draws (an encoding's legend that is not null)."""
    if isinstance(spec, dict):
        found = [
            (channel, enc["legend"])
            for channel, enc in (spec.get("encoding") or {}).items()
            if isinstance(enc, dict) and enc.get("legend") is not None
        ]
        return found + [f for k, v in spec.items() if k != "datasets" for f in _legends(v)]
    if isinstance(spec, list):
        return [f for v in spec for f in _legends(v)]
    return []


@pytest.mark.parametrize("lang", ["nl", "en"])
def test_compare_page_explains_its_panels_colours_once(demo_db, lang):
    """The compare page drew the same legend (assessments, own unit, other units) under each of its five
    panels: five times on the meeting screen, and on a phone a third of every panel. Now no panel on the page
    draws one and a single legend above them names every assessment any panel colours a unit by, and the own
    unit's mark (a panel's PNG download keeps its legend: test_every_compare_panel_explains_its_own_colours)."""
    import json

    import pyarrow as pa

    from vbhc.charts import label

    at = _run(_app({"lang": lang, "condition": "colorectal_cancer"}), "views/compare.py")
    charts_shown = list(at.get("vega_lite_chart"))
    assert len(charts_shown) >= 4
    drawn: set[str] = set()
    for chart in charts_shown:
        assert _legends(json.loads(chart.proto.spec)) == [], "a panel draws its own legend"
        for dataset in chart.proto.datasets:
            rows = pa.ipc.open_stream(dataset.data.data).read_all()
            if "assessment" in rows.column_names:
                drawn |= {str(a) for a in rows.column("assessment").to_pylist() if a}
    assert drawn, "the panels colour no unit"
    from ui.render import LEGEND_CLASS

    legends = [h.value for h in at.get("html") if LEGEND_CLASS in h.value]
    assert len(legends) == 1, f"{len(legends)} legends for the panels"
    for name in (*drawn, label("assessment", lang), label("own_unit", lang), label("other_units", lang)):
        assert f">{name}<" in legends[0], (name, legends[0])


def test_compare_and_proms_pages_show_the_engine_numbers(demo_db):
    from vbhc.indicators import prom_response_by_timepoint

    engine, _ = demo_db
    result = indicator_table("colorectal_cancer", "hospital", engine=engine)
    at = _run(_app({"lang": "en", "condition": "colorectal_cancer"}), "views/compare.py")
    shown = shown_tables(at)[0].value.set_index(t("column.unit", "en"))
    leak = result.table[(result.table["indicator"] == "anastomotic_leak") & (result.table["unit"] == "H03")].iloc[0]
    label = default_catalog().condition("colorectal_cancer").indicator("anastomotic_leak").label("en")
    assert shown.loc[_name(engine, "H03"), label] == format_value(leak["adjusted_value"], "proportion", "en")
    # the colours of the table are named under it (it listed "Better than expected · Worse than expected · ...")
    assert t("overview.legend", "en") in [c.value for c in at.caption]

    at = _run(_app({"lang": "en", "condition": "colorectal_cancer"}), "views/proms.py")
    rates = prom_response_by_timepoint(result)
    mine = rates[(rates["unit"] == "H01") & (rates["timepoint"] == "12m") & (rates["instrument"] == "qlq_c30")].iloc[0]
    table = shown_tables(at)[0].value  # a static table
    twelve = default_catalog().condition("colorectal_cancer").timepoint("12m").label("en")  # "12 months"
    row = table[(table[t("proms.timepoint", "en")] == twelve) & (table[t("proms.instrument", "en")] == "EORTC QLQ-C30")]
    assert row[t("proms.eligible", "en")].iloc[0] == fmt_int(mine["eligible"], "en")
    assert row[t("proms.responders", "en")].iloc[0] == fmt_int(mine["responded"], "en")


def test_cost_page_shows_the_adjusted_cost_and_value_quadrant(demo_db):
    from vbhc.indicators import value_table

    engine, _ = demo_db
    result = indicator_table("colorectal_cancer", "hospital", engine=engine)
    at = _run(_app({"lang": "en", "condition": "colorectal_cancer"}), "views/cost_value.py")
    cost = shown_tables(at)[0].value.set_index(t("column.unit", "en"))
    row = result.table[(result.table["indicator"] == "cost_per_cycle") & (result.table["unit"] == "H03")].iloc[0]
    # the table's short header ("Adj."), explained in the line under the table
    assert cost.loc[_name(engine, "H03"), t("pages.short_adjusted", "en")] == format_value(
        row["adjusted_value"], "cost", "en"
    )
    key = f"{t('pages.short_adjusted', 'en')}: {t('pages.help_adjusted', 'en')}"
    assert any(key in c.value for c in at.caption)
    # the verdict, the last column, takes the room the others leave (it wrapped at 300 px beside an empty cell,
    # rows five lines high at 1440 px) and keeps 300 px on a phone: no max-width of its own, a min-width
    verdicts = shown_tables(at)[0].html.split('<th scope="col">')[-1]
    assert t("verdict.column", "en") in verdicts and "max-width" not in verdicts.split("</th>", 1)[0]
    assert "min-width:300px" in verdicts
    first_outcome = at.selectbox(key="value_outcome").value
    view = value_table(result, first_outcome).set_index("unit")
    shown = shown_tables(at)[1].value.set_index(t("column.unit", "en"))
    assert shown.loc[_name(engine, "H03"), t("cost.quadrant", "en")] == t_value(
        "quadrant", view.loc["H03", "quadrant"], "en"
    )


def test_dataset_version_is_one_snapshot_per_run_and_fresh_after_an_import(tmp_path, monkeypatch):
    """Pages read the dataset version (every cache key) once per run; the data page reads it again after its
    own import, and the next run always sees another session's import."""
    from tests.registry_files import write_small_registry
    from ui import data
    from vbhc.ingest import import_files

    url = f"sqlite:///{tmp_path / 'version.db'}"
    monkeypatch.setenv("VBHC_DATABASE_URL", url)
    data.begin_run()
    try:
        before = data.version()
        import_files(write_small_registry(tmp_path / "files"), data.current_engine())
        assert data.version() == before  # the same run keeps its snapshot
        after = data.version(fresh=True)
        assert after != before and data.version() == after
        data.begin_run()  # the next run
        assert data.version() == after
    finally:
        data._this_run.versions = None
    assert data.version() == after  # outside a run: always read


def test_team_page_charts_ship_their_data_and_the_unit_on_reload(demo_db):
    """Cached chart specs carry their datasets as Arrow bytes (converted once): every dataset a view names
    arrives with its rows, also when the page is drawn again from the cache with another unit."""
    import json

    import pyarrow as pa

    engine, _ = demo_db
    table = indicator_table("colorectal_cancer", "hospital", engine=engine).table
    units_shown = table.loc[table["indicator"] == "anastomotic_leak", "unit"].nunique()

    def charts_of(at: AppTest) -> list:
        return [e.proto for e in at.get("vega_lite_chart")]

    def check(at: AppTest, unit: str) -> None:
        protos = charts_of(at)
        assert len(protos) >= 4  # funnel, caterpillar, trend, VLAD/CUSUM
        highlighted: list = []
        for proto in protos:
            spec = json.loads(proto.spec)
            named = {n.group(1) for n in re.finditer(r'"name": "(data-[0-9a-f]+)"', proto.spec)}
            shipped = {d.name: pa.ipc.open_stream(d.data.data).read_all() for d in proto.datasets}
            assert named and named <= set(shipped), "a dataset the spec names was not sent"
            assert all(tab.num_rows > 0 for tab in shipped.values())
            params = {p["name"]: p.get("value") for p in spec.get("params", [])}
            highlighted.append(params.get("highlight_unit"))
        # funnel and caterpillar mark the own unit (the single-unit series charts have nothing to mark)
        assert highlighted[:2] == [unit, unit] and set(highlighted) <= {unit, None}
        rows = max(pa.ipc.open_stream(d.data.data).read_all().num_rows for d in protos[1].datasets)
        assert rows == units_shown  # the caterpillar: one row per unit

    at = _app(
        {"lang": "en", "condition": "colorectal_cancer", "indicator": "anastomotic_leak", "team_tab": DEPTH_TAB["en"]}
    )
    _run(at, "views/condition_team.py")
    check(at, _name(engine, "H01"))  # the charts show names, and mark the own unit by its name
    at.selectbox(key="unit_hospital").set_value("H03").run()  # drawn again from the cached specs
    check(at, _name(engine, "H03"))


def test_a_views_since_last_meeting_judges_the_signals_on_the_charts_its_verdicts_drew(small_demo_db, monkeypatch):
    """A view whose every-unit signals are not prepared yet (a year of a large registry: a server prepares them in
    the background) shows "since the last meeting" with the unit's signals judged on the SPC charts the verdicts
    drew (ui.data.unit_charts), not on each chart drawn a second time; the table is the one the prepared signals
    give."""
    from ui import data, render
    from vbhc import indicators, meeting

    query = {"lang": "en", "condition": "colorectal_cancer", "period": "2024"}
    prepared: dict[tuple, dict] = {}

    def signals(condition, level, period, until=None):
        key = (condition, level, period, until)
        if key not in prepared:
            prepared[key] = meeting.unit_signals(data.result(condition, level, period), until)
        return prepared[key]

    monkeypatch.setattr(data, "signals", signals)
    expected = [s.value for s in shown_tables(_run(_app(query), "views/condition_team.py"))]
    # the signals now are being prepared (the page judges its unit); those as of the last meeting are stored
    monkeypatch.setattr(data, "signals", lambda *key, until=None: None if until is None else prepared[(*key, until)])
    render._spec_cache.clear()  # the table of the run above is kept per view: drawn again here
    drawn: list[tuple] = []
    draw = indicators.indicator_over_time
    monkeypatch.setattr(
        indicators, "indicator_over_time", lambda *args, **kwargs: drawn.append(args[1:3]) or draw(*args, **kwargs)
    )
    at = _run(_app(query), "views/condition_team.py")
    assert drawn == []
    shown = [s.value for s in shown_tables(at)]
    assert len(shown) == len(expected) > 1
    for got, want in zip(shown, expected, strict=True):
        pd.testing.assert_frame_equal(got, want)
