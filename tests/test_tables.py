"""The pages' small tables (verdicts, the meeting's changes, scorecard, cost, compare): light tints with readable
text, every line of every cell shown (a static table, not a grid of fixed row height), data text escaped, and
the meeting's change in one pair of parentheses, in both languages."""

from __future__ import annotations

import datetime as dt
import re
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from tests.apptest import run_on_page
from tests.shown import parse_table
from tests.shown import tables as shown_tables
from vbhc import charts
from vbhc.catalog import default_catalog
from vbhc.charts import ASSESSMENT_LABELS, ASSESSMENTS, LANGS, PALETTE
from vbhc.i18n import MISSING, fmt_date, format_value, t, t_value
from vbhc.settings import PROJECT_ROOT
from vbhc.unit_charts import unit_charts

pytestmark = pytest.mark.usefixtures("local_mode")  # tests/conftest.py


# ------------------------------------------------------------------------------------------------ colours


@pytest.mark.parametrize("assessment", [*ASSESSMENTS, *(n for lang in LANGS for n in ASSESSMENT_LABELS[lang].values())])
def test_a_table_cell_tint_keeps_its_text_readable(assessment):
    """WCAG AA (4.5:1) for the text on every tint; the solid palette colour (black on #999999 grey, white on
    vermillion: 3.9:1) is for charts only."""
    tint = charts.scorecard_tint(assessment)
    assert charts.contrast_ratio(charts.TINT_TEXT_COLOUR, tint) >= 4.5
    assert tint != charts.scorecard_colour(assessment) or tint.upper() in ("#FFFFFF", "#FDFDFD")


def test_tints_come_from_the_palette_and_keep_better_and_worse_apart():
    tints = {a: charts.scorecard_tint(a) for a in ASSESSMENTS}
    assert len(set(tints.values())) == len(tints)
    # the tint is the palette colour over white: every channel between the colour and white
    for code, tint in tints.items():
        colour = PALETTE[code]
        for i in (1, 3, 5):
            assert int(colour[i : i + 2], 16) <= int(tint[i : i + 2], 16) <= 255
    # blue and vermillion stay apart: the tints differ most in the red and blue channels
    better, worse = tints["better"], tints["worse"]
    assert int(better[5:7], 16) - int(worse[5:7], 16) > 20 and int(worse[1:3], 16) - int(better[1:3], 16) > 20
    assert charts.scorecard_tint("Slechter dan verwacht") == worse


def test_a_coloured_cell_is_a_tint_with_the_palette_colour_as_a_marker():
    from ui import render

    style = render.cell_style("as expected")
    assert "background-color: #999999" not in style
    assert f"background-color: {charts.scorecard_tint('as expected')}" in style
    assert f"color: {charts.TINT_TEXT_COLOUR}" in style
    assert PALETTE["worse"] in render.cell_style("Slechter dan verwacht")  # a marker in the full colour
    assert render.cell_style("") == "" and render.cell_style(np.nan) == ""


# ------------------------------------------------------------------------------------------------ the table


def _hostile_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "Unit": ["<script>alert(1)</script>", "[H67](https://evil.example) **b**"],
            "Verdict": ["As expected: 2.7% against 2.2% expected; within the 95% limits", "Worse than expected"],
        }
    )


def test_the_table_html_escapes_every_cell_and_tints_by_assessment():
    from ui import render

    frame = _hostile_frame()
    frame.columns = ["Unit <b>", "Verdict"]
    colours = pd.DataFrame({"Verdict": ["as expected", "worse"]})
    html = render.table_html(frame, colours, {"Verdict": 300})
    assert "<script>" not in html and "<b>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "Unit &lt;b&gt;" in html
    assert "[H67](https://evil.example) **b**" in html  # HTML is not Markdown: read as typed, no link
    assert charts.scorecard_tint("worse") in html and charts.scorecard_tint("as expected") in html
    assert "max-width:300px" in html
    # a line break in data does not start a new row of text, a quote does not end an attribute
    odd = pd.DataFrame({"Unit": ['a"b\nc', pd.NA], "Verdict": [None, float("nan")]}, dtype=object)
    shown = parse_table(render.table_html(odd)).value
    assert shown.iloc[0].tolist() == ['a"b c', MISSING] and shown.iloc[1].tolist() == [MISSING, MISSING]


def test_a_wrapping_column_keeps_three_quarters_of_its_width_and_a_short_one_does_not():
    from ui import render

    frame = pd.DataFrame({"Long": ["word " * 40], "Short": ["ok"]})
    html = render.table_html(frame, widths={"Long": 200, "Short": 200}, min_widths={"Short": 50})
    assert "max-width:200px;min-width:150px" in html  # wraps: keeps 3/4 on a phone
    assert "max-width:200px;min-width:50px" in html  # the caller's floor, not 3/4 (it does not wrap)


#: The width a 390 px phone gives a table (the page's 16 px margins), and the main area of a 1440 px screen.
PHONE_ROOM, WIDE_ROOM = 358, 940


def _hint_below(html: str) -> int | None:
    """The container width below which the table's scroll hint is shown (None: the table has no hint)."""
    found = re.search(r"@container \(max-width:(\d+)px\)", html)
    return int(found.group(1)) + 1 if found else None


def test_a_table_wider_than_a_phone_says_so_and_a_narrow_one_does_not():
    """A phone showed the overview's scorecard and verdict tables cut at the screen's right edge, their other
    columns reachable only by a sideways swipe nothing hinted at. A table that needs more room than a phone gives
    now has a line above it saying so, shown only while its box is narrower than the table (a container query):
    on a phone, never on the meeting screen; a table that fits a phone never shows it."""
    from ui import layout, render

    lang = "nl"
    hint = t("pages.table_scrolls", lang)
    keys = ("indicator", "care_cycles", "oe", "adjusted", "benchmark")
    columns = [t(f"column.{k}", lang) for k in keys]
    columns[1:1] = [t("verdict.column", lang)]
    columns += [t("spc.variation", lang), t("spc.assurance", lang)]
    wide = pd.DataFrame(
        [["Mortaliteit binnen 30 dagen", "Zoals verwacht: 2,7% tegenover 2,2% verwacht voor de eigen patiënten",
          "78", "1,20", "2,9%", "2,4%", "Gewone variatie", "Doel wisselend gehaald"]], columns=columns,
    )  # fmt: skip
    widths = layout.indicator_widths(lang, columns)
    html = render.table_html(wide, widths=widths, min_widths={columns[1]: 190}, scroll_hint=hint)
    below = _hint_below(html)
    assert below is not None and PHONE_ROOM < below <= WIDE_ROOM, below
    assert f">{hint}</div>" in html and "container-type:inline-size" in html
    # shown by a rule of two classes: each later table's stylesheet hides hints again with one (Chromium showed
    # no hint on a phone while the rule was as specific as that)
    assert re.search(rf"\.{render.SCROLL_HINT_CLASS}\.{render.SCROLL_HINT_CLASS}-{below}\{{display:block\}}", html)
    assert parse_table(html).value.columns.tolist() == columns  # the hint is no part of the table
    narrow = pd.DataFrame({"Maat": ["c-statistiek", "Kalibratiehelling"], "Waarde": ["0,82", "1,00"]})
    assert _hint_below(render.table_html(narrow, scroll_hint=hint)) < PHONE_ROOM
    assert _hint_below(render.table_html(wide, widths=widths)) is None  # no text given: no hint


@pytest.mark.parametrize("lang", ["nl", "en"])
def test_a_table_that_fits_a_phone_does_not_say_it_scrolls(lang):
    """The cost page's value table (unit, outcome, cost, quadrant) fits a phone: Chromium drew it 356 px wide in
    the 358 px a 390 px phone gives, without scrolling, yet the line above it said it was wider than the screen
    (its words were measured at a flat 7 px a character, lowercase text a fifth too wide). Measured in the
    table's font, and broken where the browser breaks a word (after its hyphen), it says so no more; a table of
    long unbreakable words still does."""
    from ui import render

    hint = t("pages.table_scrolls", lang)
    units = ["Brughaven Ziekenhuisgroep", "Universitair Medisch Centrum Veenmeer", "Kruidenhof Medisch Centrum"]
    outcome = default_catalog().condition("colorectal_cancer").indicator("mortality_30d").label(lang)
    value = pd.DataFrame(
        {
            t("column.unit", lang): units,
            outcome: [format_value(v, "proportion", lang) for v in (0.029, 0.0, 0.054)],
            t("column.cost_per_cycle", lang): [format_value(v, "cost", lang) for v in (21983, 22935, 21555)],
            t("cost.quadrant", lang): [t_value("quadrant", "no_clear_difference", lang)] * 3,
        }
    )
    widths = {t("column.unit", lang): 280, outcome: 200, t("column.cost_per_cycle", lang): 140}
    assert _hint_below(render.table_html(value, widths=widths, scroll_hint=hint)) <= PHONE_ROOM
    hyphened = pd.DataFrame({"Casemixvariabele": ["Charlson-comorbiditeitsindex"], "Grens": ["99,8%-grenzen"]})
    assert render.table_min_px(hyphened) < render.table_min_px(hyphened.replace("-", "", regex=True))
    unbreakable = pd.DataFrame({c: ["Langstedurendeverpleegdagenregistratie"] for c in ("a", "b", "c")})
    assert _hint_below(render.table_html(unbreakable, scroll_hint=hint)) > PHONE_ROOM


def test_a_static_table_says_it_scrolls_in_the_viewers_language():
    for lang in ("nl", "en"):
        at = AppTest.from_function(_table_app)
        at.query_params["lang"] = lang
        at.run()
        assert not at.exception
        (shown,) = shown_tables(at)
        assert t("pages.table_scrolls", lang) in shown.html, lang


def _table_app() -> None:
    import pandas as pd

    from ui import render

    frame = pd.DataFrame(
        {
            "Unit": ["<script>alert(1)</script>", "[H67](https://evil.example) **b**"],
            "Verdict": ["As expected: 2.7% against 2.2% expected; within the 95% limits", "Worse than expected"],
        }
    )
    render.static_table(frame, colours=pd.DataFrame({"Verdict": ["as expected", "worse"]}), widths={"Verdict": 300})


def test_a_static_table_shows_data_text_as_typed():
    """The page gets escaped HTML (st.html, sanitised again in the browser): what a reader sees is the text."""
    at = AppTest.from_function(_table_app).run()
    assert not at.exception
    assert not at.dataframe and not at.table and len(shown_tables(at)) == 1
    frame = _hostile_frame()
    shown = shown_tables(at)[0]
    pd.testing.assert_frame_equal(shown.value, frame.astype(object))
    assert "<script>" not in shown.html
    assert charts.scorecard_tint("worse") in shown.styles["Verdict"][1]
    assert shown.styles["Unit"].eq("").all()  # no colour given: no tint


# ------------------------------------------------------------------------------------------------ the meeting


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize(
    ("previous", "current", "p_value", "beyond"),
    [(0.027, 0.027, 1.0, False), (0.02, 0.05, 0.001, True), (0.02, 0.03, np.nan, False), (np.nan, 0.03, np.nan, False)],
)
def test_the_change_since_the_meeting_has_one_pair_of_parentheses(lang, previous, current, p_value, beyond):
    from ui import render

    row = SimpleNamespace(
        previous=previous,
        current=current,
        change=current - previous,
        kind="proportion",
        p_value=p_value,
        beyond_chance=beyond,
        arrow="→",
    )
    text = render._change_text(row, lang)
    assert "((" not in text and "))" not in text, text
    assert text.count("(") == text.count(")") <= 1, text
    assert not re.search(r"\([^)]*\(", text), text
    if np.isfinite(p_value):
        assert text.endswith(")") and re.search(r"p\s=\s", text)


# ------------------------------------------------------------------------------------------------ the pages


def _page(page: str, lang: str, **state: str) -> AppTest:
    at = AppTest.from_file(str(PROJECT_ROOT / "streamlit_app.py"), default_timeout=180)
    at.query_params["lang"] = lang
    for key, value in state.items():
        at.session_state[key] = value
    run_on_page(at, page)
    assert not at.exception, [e.value for e in at.exception]
    return at


def _table_with(at: AppTest, header: str) -> pd.DataFrame:
    found = [tab for tab in shown_tables(at) if header in tab.value.columns]
    assert found, f"no table with a column {header!r}"
    return found[0]


@pytest.mark.parametrize("lang", LANGS)
def test_the_verdicts_are_shown_whole_on_the_condition_team_page(small_demo_db, lang):
    """Every verdict sentence is in a static table (rows grow with their text), whole and escaped; the meeting's
    table names its indicators in full."""
    from ui import render
    from vbhc.indicators import indicator_table

    at = _page("views/condition_team.py", lang, condition="colorectal_cancer")
    verdict_column = t("verdict.column", lang)
    # one table per outcome tier, each headed by the tier's name, the verdict next to the indicator's name
    tables = [tab for tab in shown_tables(at) if verdict_column in tab.value.columns]
    tables = [tab for tab in tables if t("prem.number", lang) not in tab.value.columns]  # not patient experience
    assert len(tables) > 1
    assert all(list(tab.value.columns[:2]) == [t("column.indicator", lang), verdict_column] for tab in tables)
    headings = [m.value for m in at.markdown]
    assert any(t("tier.1", lang) in h for h in headings) and any(t("tier.2", lang) in h for h in headings)
    result = indicator_table("colorectal_cancer", "hospital", engine=small_demo_db[0])
    unit = at.session_state["_filters"].unit
    mine = result.table[(result.table["unit"] == unit) & (result.table["kind"] != "volume")]
    charts = render.charts_by_row(mine, unit_charts(result, unit), unit)
    expected = render.indicator_display(mine, lang, charts=charts)[verdict_column]
    shown = pd.concat([tab.value[verdict_column] for tab in tables])
    assert sorted(shown) == sorted(expected)
    assert all(len(s) > 40 for s in shown)  # whole sentences, not cut
    assert all("<script" not in tab.html for tab in tables)
    meeting = _table_with(at, t("meeting.column_change", lang)).value
    assert not any("((" in s or "))" in s for s in meeting[t("meeting.column_change", lang)])
    assert not any(s.endswith("…") for s in meeting[t("column.indicator", lang)])


@pytest.mark.parametrize("lang", LANGS)
def test_a_periods_counts_stay_withheld_where_the_viewers_table_withholds_the_units_count(lang):
    """The counts beside a period's share (1/4) come from the unit's care cycles: where the viewer's table
    withholds the unit's count for the indicator (a withheld cell, or only its band), the period's share and
    counts are withheld as well; elsewhere both are shown."""
    from types import SimpleNamespace

    from ui import render

    table = pd.DataFrame(
        {
            "unit": ["H01", "H01", "H01", "H02"],
            "indicator": ["leak", "death", "stay", "leak"],
            "n": [np.nan, 40.0, np.nan, np.nan],
            "suppressed": [True, False, False, True],
            "n_band": ["", "", "10-49", ""],
        }
    )
    withheld = render._withheld_indicators(table, "H01")
    assert withheld == {"leak", "stay"}
    marker = t("report.withheld_marker", lang)
    leak = SimpleNamespace(indicator="leak", kind="proportion", current=0.25, n_current=4, events_current=1.0)
    death = SimpleNamespace(indicator="death", kind="proportion", current=0.25, n_current=4, events_current=1.0)
    stay = SimpleNamespace(indicator="stay", kind="mean", current=6.5, n_current=4, events_current=np.nan)
    assert render._period_text(leak, "current", withheld, lang) == marker
    assert render._period_text(stay, "current", withheld, lang) == marker
    shown = render._period_text(death, "current", withheld, lang)
    assert shown == f"{format_value(0.25, 'proportion', lang)} (1/4)"
    assert render._period_text(stay, "current", set(), lang).endswith("(n\u00a0=\u00a04)")


@pytest.mark.parametrize("lang", LANGS)
def test_the_meetings_periods_show_their_counts_and_say_what_they_compare(small_demo_db, lang):
    """The "since the last meeting" table showed each period's share of a few care cycles alone (25.0%), where the other
    tables show its counts; and compared with the first of this month, after the demo's data, so nothing was ever
    new until a meeting was recorded, without saying so. Now each period shows its counts (1/4, n = 4) and the page
    says what it compares: with no meeting recorded, the start of the latest period with data."""
    import re

    at = _page("views/condition_team.py", lang, condition="colorectal_cancer")
    frame = _table_with(at, t("meeting.column_change", lang)).value
    cells = [*frame[t("meeting.column_previous", lang)], *frame[t("meeting.column_current", lang)]]
    counted = [c for c in cells if c not in (MISSING, t("report.withheld_marker", lang))]
    assert counted
    shares = re.compile(r"%\s\(\d[\d.,]*/\d[\d.,]*\)$")
    means = re.compile(r"\(n\u00a0=\u00a0\d[\d.,]*\)$")
    assert all(shares.search(c) or means.search(c) for c in counted), counted
    assert any(shares.search(c) for c in counted)
    captions = [c.value for c in at.caption]
    said = t("meeting.since_data", lang, date="DATE").split("DATE")[0]
    assert any(c.startswith(said) for c in captions), captions


# ------------------------------------------------------------------------------ data grids on a phone


def _grid_app() -> None:
    import pandas as pd

    from ui import layout, render

    frame = pd.DataFrame(
        {
            "Eenheid": ["Universitair Medisch Centrum Veenmeer", "Eikenrode Ziekenhuis"],
            "Zorgtrajecten": ["78", "46"],
            "Gecorrigeerd": ["2,9%", "2,0%"],
            "Gekrompen": ["2,6%", "2,2%"],
            "Verwachte rangorde": ["4 (2–7)", "3 (1–8)"],
        }
    )
    render.data_grid(frame, hide_index=True, column_config=layout.text_columns({"Eenheid": 230}))
    render.data_grid(pd.DataFrame({"Maat": ["c-statistiek"], "Waarde": ["0,82"]}), hide_index=True)


def test_a_data_grid_wider_than_a_phone_says_so_in_the_viewers_language():
    """The last screenshots, 390 px phone: the team page's data grids (shrunken estimates, imputation, at-risk
    numbers, case-mix model) and those of the data, methods and audit pages ran off the screen's right edge with
    nothing saying their other columns are a swipe away; the static tables said so. Every grid now has the same
    line above it, shown only while the page is narrower than the grid: a wide one on a phone, never on the
    meeting screen; a narrow one never."""
    for lang in ("nl", "en"):
        at = AppTest.from_function(_grid_app)
        at.query_params["lang"] = lang
        at.run()
        assert not at.exception
        assert len(at.dataframe) == 2
        hints = [h.proto.body for h in at.get("html") if t("pages.table_scrolls", lang) in h.proto.body]
        assert len(hints) == 2, lang
        wide, narrow = (_hint_below(h) for h in hints)
        assert PHONE_ROOM < wide <= WIDE_ROOM and narrow < PHONE_ROOM, (wide, narrow)


def test_every_data_grid_of_the_pages_goes_through_the_one_that_says_it_scrolls():
    """A grid drawn by st.dataframe itself has no such line: the pages draw theirs by render.data_grid."""
    direct = [
        f"{path.relative_to(PROJECT_ROOT)}:{number}"
        for folder in ("views", "ui")
        for path in sorted((PROJECT_ROOT / folder).glob("*.py"))
        for number, line in enumerate(path.read_text("utf-8").splitlines(), 1)
        if re.search(r"\bst\.dataframe\(", line) and not (path.name == "render.py" and "return st.dataframe(" in line)
    ]
    assert not direct, direct


@pytest.mark.parametrize(("lang", "expected"), [("nl", "↓ 25,0\u00a0procentpunt"), ("en", "↓ 25.0 percentage points")])
def test_a_rates_change_since_the_meeting_is_in_percentage_points(lang, expected):
    """The last screenshots: readmission 25,0% in the previous quarter, 0,0% in the last, change "↓ 25,0%",
    which reads as a relative fall of a quarter. A change between two rates is in percentage points; a mean's
    and a cost's keep their unit."""
    from ui import render

    rate = SimpleNamespace(previous=0.25, current=0.0, change=-0.25, kind="proportion", p_value=0.439,
                           beyond_chance=False, arrow="↓")  # fmt: skip
    assert render._change_text(rate, lang).startswith(f"{expected} (")
    cost = SimpleNamespace(**{**vars(rate), "previous": 21_523.0, "current": 12_252.0, "change": -9_271.0})
    assert render._change_text(SimpleNamespace(**{**vars(cost), "kind": "cost"}), lang).startswith("↓ €")


#: Text widths (px, the ink) and columns (px, text and padding) measured on the 1440 px screenshots of the data
#: and team pages: the grid's 14 px Source Sans.
_GRID_INK = {
    "Charlson comorbidity index": 160,
    "Universitair Medisch Centrum Veenmeer": 233,
    "clinical_outcomes_follow_up.csv": 193,
    "Readmission within 30 days": 159,
    "unwanted outcome; expected risk 19.8%": 235,
    "5 Dec 2026, 11:38": 99,
    "100.0%": 42,
}
_GRID_COLUMNS = {  # the import batches grid (wider than the page: drawn at its own width, not stretched)
    "File": (["clinical_outcomes_follow_up.csv", "costs.csv"], 211),
    "Imported by": (["demo"], 88),
    "Rows read": (["120,805", "4,000"], 77),
    "New": (["120,805", "36"], 62),
    "Updated": (["0"], 67),
    "Unchanged": (["0"], 83),
    "Sheet": (["–", "units"], 50),
}


def test_a_data_grid_is_estimated_as_wide_as_the_grid_draws_it():
    """The last screenshots, 1440 px: the data page's completeness grid (781 px wide before the grid stretched it
    to the page's 978) said it was wider than the screen, as did the team page's cases grid: the estimate took 8
    px and 24 more per column for a character the grid draws in about 6.3 and pads with 18. The estimate now
    takes Source Sans's widths and the grid's own sizing rules (50-500 px), within a few px of the screenshots."""
    from ui import render

    for text, ink in _GRID_INK.items():
        assert -1 <= render.grid_text_px(text) - ink <= 5, (text, render.grid_text_px(text), ink)  # ink: less
    for name, (cells, width) in _GRID_COLUMNS.items():
        drawn = render.grid_min_px(pd.DataFrame({name: cells})) - 2  # the grid's border
        assert -2 <= drawn - width <= 4, (name, drawn, width)  # errs wide: a hint once too often
    assert render.grid_min_px(pd.DataFrame({"x": ["a" * 200]})) == 502  # the grid's widest automatic column
    names = ["Universitair Medisch Centrum Veenmeer", "Oosterhaven Ziekenhuis", "Heidekamp Medisch Centrum"] * 3
    complete = pd.DataFrame(
        {c: ["100.0%", "97.4%", "98.9%"] * 3 for c in ["Age", "ASA class", "BMI", "Charlson comorbidity index",
                                                      "Sex", "Tumour stage"]},
        index=pd.Index(names, name="Hospital"),
    )  # fmt: skip
    assert abs(render.grid_min_px(complete, index=True) - 781) <= 10


def test_the_cases_grid_says_it_scrolls_on_a_phone_and_not_on_the_meeting_screen():
    """The team page's cases to discuss (record key 115 px, date 100 px, the longest outcome, risk, reason):
    about 940 px in either language, under the 978 px a 1440 px screen gives a grid, over a phone's 358."""
    from ui import render

    for lang, outcome in [
        ("en", "Not reached: Patients with important improvement in EQ-5D index at 12 months"),
        ("nl", "Niet bereikt: Patiënten met relevante verbetering EQ-5D-index na 12 maanden"),
    ]:
        record, when = t("pages.record_key", lang), t("chart.date", lang)
        frame = pd.DataFrame(
            {
                record: ["C0003728"],
                when: [fmt_date(dt.date(2025, 9, 5), lang)],
                t("pages.outcome", lang): [outcome],
                t("pages.expected_risk", lang): ["95,1%"],
                t("pages.why", lang): [t("pages.why_low_risk", lang)],
            }
        )
        config = {record: {"width": 115}, when: {"width": 100}}
        assert PHONE_ROOM < render.grid_min_px(frame, config) < 978, lang


def test_every_date_a_grid_shows_is_written_as_the_languages_dates():
    """The team page's cases grid wrote its dates 05/09/2025 (a DateColumn's format) where every other date of
    the English pages reads "5 Sep 2025" and of the Dutch "5 sep 2025" (vbhc.i18n.fmt_date). A grid's momentJS
    format knows English month names only, so the pages write a grid's dates as text by fmt_date/fmt_datetime."""
    found = [
        f"{path.relative_to(PROJECT_ROOT)}:{number}"
        for folder in ("views", "ui")
        for path in sorted((PROJECT_ROOT / folder).glob("*.py"))
        for number, line in enumerate(path.read_text("utf-8").splitlines(), 1)
        if re.search(r"column_config\.(Date|Datetime|Time)Column\(", line)
    ]
    assert not found, found
