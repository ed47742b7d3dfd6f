"""Altair chart builders for the dashboard and the reports.

Every builder takes tables that vbhc has already computed (the indicator table, a funnel curve, an SPC frame,
a CUSUM/VLAD frame, a cost breakdown, the value view) and only draws them: no statistic is computed here.
The only data work is selecting columns, translating labels, and thinning long per-cycle series so that a
chart never carries more than a few thousand rows (Streamlit ships a chart's whole data to the browser and
Altair refuses more than 5,000 rows).

Made for a big screen in a meeting: large fonts, one clear title, no frame around the plot, and the
colour-blind-safe Okabe–Ito palette. Colour means the same everywhere: blue = better than the benchmark,
vermillion = worse, grey = as expected, light grey = too few cycles to judge; the own unit is outlined in
black and its label is bold. Units are coloured by their assessment at the 99.8% limits (`assessment_998`)
unless a builder is told otherwise, so one unit has one colour on every page.

Language: every builder takes ``lang`` ("en" or "nl"). Titles and axis labels come from the small label
dictionary below (the assessment names match the tables' wording in vbhc/i18n); an indicator's own name
comes from the table's ``label_en``/``label_nl`` columns. Numbers are formatted with d3-format strings
(proportions as %, means with 1 decimal (2 for values below 2, such as an EQ-5D index), O/E with 2, cost in
EUR) and every chart carries a Vega-Lite number locale in its own spec (``config.locale``, supported since
Vega 5.12 / Vega-Lite 5): for "nl" a decimal comma, a dot between thousands, "€ 1.234", and Dutch month
names on time axes. Vega applies it per view, to axis labels and to the ``format()`` of tooltips and text,
so no global (process or browser) locale is touched. The few numbers formatted in Python (the CUSUM limit
label) use the same convention.

Every builder returns a finished, configured top-level chart. A configured chart cannot be layered or
concatenated again, so pages put charts side by side with Streamlit columns. Streamlit's default chart theme
may restyle fonts; ``st.altair_chart(chart, theme=None)`` shows the chart exactly as built here.
"""

from __future__ import annotations

import functools
import re
import textwrap
from collections.abc import Sequence
from typing import Any

import altair as alt
import numpy as np
import pandas as pd

from vbhc import altair_speedups

# --------------------------------------------------------------------------------------------- constants

#: Altair's default MaxRowsError limit; every dataset of a chart stays below it.
MAX_ROWS = 5000
#: Long per-cycle series (CUSUM, VLAD) are thinned to about this many rows.
MAX_SERIES_POINTS = 2000

LANGS = ("en", "nl")
PROPORTION_KINDS = ("proportion", "prom_mic", "response_rate")

BETTER, WORSE, AS_EXPECTED, TOO_FEW, NO_DATA = "better", "worse", "as expected", "too few cycles", "no data"
ASSESSMENTS = (BETTER, WORSE, AS_EXPECTED, TOO_FEW, NO_DATA)

#: Okabe–Ito based colours per assessment (direction-aware: "better" is better for patients).
PALETTE: dict[str, str] = {
    BETTER: "#0072B2",  # blue
    WORSE: "#D55E00",  # vermillion
    AS_EXPECTED: "#999999",  # grey
    TOO_FEW: "#DDDDDD",  # light grey
    NO_DATA: "#F5F5F5",  # almost white
}
HIGHLIGHT_COLOUR = "#000000"  # outline and label of the own unit
SIGNAL_COLOUR = "#CC79A7"  # reddish purple: an SPC/CUSUM signal that has no direction of its own
LINE_COLOUR = "#555555"  # limits, benchmark lines
#: Okabe–Ito categorical colours (without black and yellow, which do not read as lines on white).
CATEGORICAL = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#999999", "#000000", "#F0E442"]

QUADRANTS = (
    "better outcome, lower cost",
    "better outcome, higher cost",
    "worse outcome, lower cost",
    "worse outcome, higher cost",
    "no clear difference",
)
QUADRANT_COLOURS: dict[str, str] = {
    "better outcome, lower cost": "#0072B2",
    "better outcome, higher cost": "#56B4E9",
    "worse outcome, lower cost": "#E69F00",
    "worse outcome, higher cost": "#D55E00",
    "no clear difference": "#999999",
}

FONT_SIZES = {"title": 24, "subtitle": 16, "axis_label": 15, "axis_title": 16, "legend": 15, "text": 15}

# d3 number locales (https://github.com/d3/d3-format/tree/main/locale), euro as currency in both languages.
NUMBER_LOCALES: dict[str, dict[str, Any]] = {
    "en": {"decimal": ".", "thousands": ",", "grouping": [3], "currency": ["€", ""]},
    "nl": {"decimal": ",", "thousands": ".", "grouping": [3], "currency": ["€ ", ""]},
}
TIME_LOCALE_NL: dict[str, Any] = {
    "dateTime": "%a %e %B %Y %X",
    "date": "%d-%m-%Y",
    "time": "%H:%M:%S",
    "periods": ["AM", "PM"],
    "days": ["zondag", "maandag", "dinsdag", "woensdag", "donderdag", "vrijdag", "zaterdag"],
    "shortDays": ["zo", "ma", "di", "wo", "do", "vr", "za"],
    "months": [
        "januari",
        "februari",
        "maart",
        "april",
        "mei",
        "juni",
        "juli",
        "augustus",
        "september",
        "oktober",
        "november",
        "december",
    ],
    "shortMonths": ["jan", "feb", "mrt", "apr", "mei", "jun", "jul", "aug", "sep", "okt", "nov", "dec"],
}

# ------------------------------------------------------------------------------------------------ labels

LABELS: dict[str, dict[str, str]] = {
    "en": {
        "unit": "Unit",
        "n": "Care cycles (n)",
        "n_axis": "Number of care cycles (n)",
        "observed": "Observed",
        "expected": "Expected",
        "adjusted": "Adjusted value",
        "crude": "Crude value",
        "crude_and_adjusted": "Value (crude and adjusted)",
        "ci_lower": "95% CI lower",
        "ci_upper": "95% CI upper",
        "oe": "O/E",
        "oe_axis": "Observed / expected (O/E)",
        "target": "Benchmark",
        "assessment": "Assessment",
        "limits": "Control limits",
        "limit_95": "95% limits",
        "limit_998": "99.8% limits",
        "funnel_sub": "Funnel plot: case-mix adjusted value by number of care cycles; line = benchmark",
        "caterpillar_sub": "Case-mix adjusted value with 95% confidence interval; line = benchmark",
        "oe_sub": "Observed / expected with 95% confidence interval; line at 1 = as expected",
        "dumbbell_sub": "Open circle = crude, filled circle = adjusted for case-mix; line = benchmark",
        "small_multiples": "Indicators per unit",
        "small_multiples_sub": "Adjusted value with 95% confidence interval; line = benchmark",
        "response": "PROM response rate",
        "response_sub": "Share of eligible care cycles with a completed questionnaire, with 95% CI",
        "response_axis": "Response rate",
        "prom": "PROM results",
        "prom_sub": "Case-mix adjusted score or change with 95% CI; line = benchmark",
        "period": "Period",
        "trend": "Over time",
        "p_chart": "SPC p chart",
        "xmr_chart": "SPC XmR chart",
        "value_per_period": "Value per period",
        "rate_per_period": "Observed rate per period",
        "centre": "Centre line",
        "lower_limit": "Lower control limit",
        "upper_limit": "Upper control limit",
        "expected_rate": "Expected (case-mix)",
        "series": "Line",
        "signal": "Signal",
        "no_signal": "No signal",
        "beyond_limits": "outside the control limits",
        "shift": "shift (run on one side)",
        "trend_rule": "trend (steady rise or fall)",
        "two_of_three": "two of three beyond 2 sigma",
        "anhoej_run": "unusually long run (Anhøj)",
        "cusum": "Risk-adjusted CUSUM",
        "cusum_sub": "Above 0: watching for more events than expected; below 0: fewer. Alarm at the dashed lines",
        "cusum_axis": "CUSUM",
        "cusum_up": "CUSUM up",
        "cusum_down": "CUSUM down",
        "alarm_up": "Alarm: more events",
        "alarm_down": "Alarm: fewer events",
        "alarm_limit": "alarm limit",
        "vlad": "VLAD: expected minus observed events",
        "vlad_sub": "A rising line means fewer events than the case-mix predicts",
        "vlad_axis": "Cumulative expected − observed",
        "cycle_number": "Care cycle (in time order)",
        "date": "Date",
        "score": "Score",
        "count": "Number of patients",
        "timepoint": "Timepoint",
        "bin": "Score range",
        "distribution": "Distribution of PROM scores",
        "cost_breakdown": "Cost per care cycle by activity",
        "cost_axis": "Cost per care cycle (EUR)",
        "activity": "Activity",
        "cycles": "Care cycles with activity",
        "quantity": "Quantity",
        "total_cost": "Total cost",
        "share": "Share of cost",
        "value": "Value: outcome and cost per care cycle",
        "value_sub": "Both adjusted for case-mix, with 95% CI; lines = benchmark",
        "quadrant": "Value",
        "outcome": "Outcome",
        "cost": "Cost per care cycle",
        "no_data_text": "No data",
    },
    "nl": {
        "unit": "Eenheid",
        "n": "Zorgtrajecten (n)",
        "n_axis": "Aantal zorgtrajecten (n)",
        "observed": "Waargenomen",
        "expected": "Verwacht",
        "adjusted": "Gecorrigeerde waarde",
        "crude": "Ongecorrigeerde waarde",
        "crude_and_adjusted": "Waarde (ongecorrigeerd en gecorrigeerd)",
        "ci_lower": "95%-BI ondergrens",
        "ci_upper": "95%-BI bovengrens",
        "oe": "O/E",
        "oe_axis": "Waargenomen / verwacht (O/E)",
        "target": "Benchmark",
        "assessment": "Beoordeling",
        "limits": "Controlegrenzen",
        "limit_95": "95%-grenzen",
        "limit_998": "99,8%-grenzen",
        "funnel_sub": "Funnelplot: voor casemix gecorrigeerde waarde naar aantal zorgtrajecten; lijn = benchmark",
        "caterpillar_sub": "Voor casemix gecorrigeerde waarde met 95%-betrouwbaarheidsinterval; lijn = benchmark",
        "oe_sub": "Waargenomen / verwacht met 95%-betrouwbaarheidsinterval; lijn bij 1 = zoals verwacht",
        "dumbbell_sub": "Open cirkel = ongecorrigeerd, dichte cirkel = gecorrigeerd voor casemix; lijn = benchmark",
        "small_multiples": "Indicatoren per eenheid",
        "small_multiples_sub": "Gecorrigeerde waarde met 95%-betrouwbaarheidsinterval; lijn = benchmark",
        "response": "PROM-respons",
        "response_sub": "Aandeel van de zorgtrajecten met een ingevulde vragenlijst, met 95%-BI",
        "response_axis": "Responspercentage",
        "prom": "PROM-uitkomsten",
        "prom_sub": "Voor casemix gecorrigeerde score of verandering met 95%-BI; lijn = benchmark",
        "period": "Periode",
        "trend": "Verloop in de tijd",
        "p_chart": "SPC p-kaart",
        "xmr_chart": "SPC XmR-kaart",
        "value_per_period": "Waarde per periode",
        "rate_per_period": "Waargenomen percentage per periode",
        "centre": "Centrale lijn",
        "lower_limit": "Onderste regelgrens",
        "upper_limit": "Bovenste regelgrens",
        "expected_rate": "Verwacht (casemix)",
        "series": "Lijn",
        "signal": "Signaal",
        "no_signal": "Geen signaal",
        "beyond_limits": "buiten de regelgrenzen",
        "shift": "verschuiving (reeks aan één kant)",
        "trend_rule": "trend (gestaag stijgend of dalend)",
        "two_of_three": "twee van drie voorbij 2 sigma",
        "anhoej_run": "ongewoon lange reeks (Anhøj)",
        "cusum": "Voor casemix gecorrigeerde CUSUM",
        "cusum_sub": "Boven 0: let op meer gebeurtenissen dan verwacht; onder 0: minder. Alarm bij de stippellijnen",
        "cusum_axis": "CUSUM",
        "cusum_up": "CUSUM omhoog",
        "cusum_down": "CUSUM omlaag",
        "alarm_up": "Alarm: meer gebeurtenissen",
        "alarm_down": "Alarm: minder gebeurtenissen",
        "alarm_limit": "alarmgrens",
        "vlad": "VLAD: verwachte min waargenomen gebeurtenissen",
        "vlad_sub": "Een stijgende lijn betekent minder gebeurtenissen dan de casemix voorspelt",
        "vlad_axis": "Cumulatief verwacht − waargenomen",
        "cycle_number": "Zorgtraject (op volgorde in de tijd)",
        "date": "Datum",
        "score": "Score",
        "count": "Aantal patiënten",
        "timepoint": "Meetmoment",
        "bin": "Scorebereik",
        "distribution": "Verdeling van PROM-scores",
        "cost_breakdown": "Kosten per zorgtraject per activiteit",
        "cost_axis": "Kosten per zorgtraject (EUR)",
        "activity": "Activiteit",
        "cycles": "Zorgtrajecten met activiteit",
        "quantity": "Hoeveelheid",
        "total_cost": "Totale kosten",
        "share": "Aandeel in kosten",
        "value": "Waarde: uitkomst en kosten per zorgtraject",
        "value_sub": "Beide gecorrigeerd voor casemix, met 95%-BI; lijnen = benchmark",
        "quadrant": "Waarde",
        "outcome": "Uitkomst",
        "cost": "Kosten per zorgtraject",
        "no_data_text": "Geen gegevens",
    },
}

#: Display names of the assessments (the same words as the tables, vbhc/i18n [assessment]).
ASSESSMENT_LABELS: dict[str, dict[str, str]] = {
    "en": {
        BETTER: "Better than expected",
        WORSE: "Worse than expected",
        AS_EXPECTED: "As expected",
        TOO_FEW: "Too few care cycles",
        NO_DATA: "No data",
    },
    "nl": {
        BETTER: "Beter dan verwacht",
        WORSE: "Slechter dan verwacht",
        AS_EXPECTED: "Zoals verwacht",
        TOO_FEW: "Te weinig zorgtrajecten",
        NO_DATA: "Geen gegevens",
    },
}
QUADRANT_LABELS: dict[str, dict[str, str]] = {
    "en": {q: q for q in QUADRANTS},
    "nl": {
        "better outcome, lower cost": "betere uitkomst, lagere kosten",
        "better outcome, higher cost": "betere uitkomst, hogere kosten",
        "worse outcome, lower cost": "slechtere uitkomst, lagere kosten",
        "worse outcome, higher cost": "slechtere uitkomst, hogere kosten",
        "no clear difference": "geen duidelijk verschil",
    },
}


def label(key: str, lang: str = "en") -> str:
    """A chart label in the given language."""
    return LABELS[_check_lang(lang)][key]


def _check_lang(lang: str) -> str:
    if lang not in LANGS:
        raise ValueError(f"lang must be one of {LANGS}, not {lang!r}")
    return lang


# ---------------------------------------------------------------------------------------------- palette


def scorecard_colour(assessment: object) -> str:
    """The palette colour of an assessment ("better", "worse", ... or its English/Dutch display name), for
    coloured table cells.

    Anything unknown or missing gets the "no data" colour.
    """
    if assessment is None or (isinstance(assessment, float) and np.isnan(assessment)):
        return PALETTE[NO_DATA]
    key = str(assessment).strip().lower()
    if key in PALETTE:
        return PALETTE[key]
    for names in ASSESSMENT_LABELS.values():
        for code, name in names.items():
            if key == name.lower():
                return PALETTE[code]
    return PALETTE[NO_DATA]


def scorecard_text_colour(assessment: object) -> str:
    """A readable text colour on top of scorecard_colour(assessment): white on blue/vermillion, else black."""
    return "#FFFFFF" if scorecard_colour(assessment) in (PALETTE[BETTER], PALETTE[WORSE]) else "#000000"


# ------------------------------------------------------------------------------------------ number formats


def value_format(kind: str, *, axis: bool = False, magnitude: float | None = None) -> str:
    """d3-format string for an indicator kind: proportions as %, means with 1 decimal, cost in EUR, O/E with 2.

    Means of small numbers (`magnitude`, the largest absolute value shown, below 2: an EQ-5D index or its
    change) get 2 decimals. Axis formats trim trailing zeros ("~") so ticks read 5%, 7.5%, 10%.
    """
    if kind in PROPORTION_KINDS:
        return ".1~%" if axis else ".1%"
    if kind == "cost":
        return "$,.0f"
    if kind in ("volume", "count"):
        return ",.0f"
    if kind == "oe":
        return ".2~f" if axis else ".2f"
    if axis:
        return ",~f"
    return ",.2f" if magnitude is not None and np.isfinite(magnitude) and magnitude < 2 else ",.1f"


def _magnitude(*arrays: Any) -> float:
    values = np.concatenate([np.asarray(a, dtype=float).ravel() for a in arrays]) if arrays else np.array([])
    values = values[np.isfinite(values)]
    return float(np.abs(values).max()) if values.size else float("nan")


def _format_number(x: float, lang: str, decimals: int = 1) -> str:
    """A number as text for a text mark or title (Vega formats everything else)."""
    text = f"{x:,.{decimals}f}"
    if lang == "nl":
        text = text.replace(",", "\0").replace(".", ",").replace("\0", ".")
    return text


# Altair's object layer is most of a filter change's time: vbhc.altair_speedups removes its repeated work
# without changing a byte of the specs (tests compare them)
altair_speedups.install()

# ------------------------------------------------------------------------------------------ finishing


def _locale(lang: str) -> alt.Locale:
    number = alt.NumberLocale(**NUMBER_LOCALES[lang])
    if lang == "nl":
        return alt.Locale(number=number, time=alt.TimeLocale(**TIME_LOCALE_NL))
    return alt.Locale(number=number)


@functools.lru_cache(maxsize=4)
def _config(lang: str) -> alt.Config:
    """Built once per language and shared (charts only read it)."""
    return alt.Config(
        locale=_locale(lang),
        title=alt.TitleConfig(
            fontSize=FONT_SIZES["title"],
            subtitleFontSize=FONT_SIZES["subtitle"],
            subtitleColor="#333333",
            anchor="start",
            offset=12,
        ),
        axis=alt.AxisConfig(
            labelFontSize=FONT_SIZES["axis_label"],
            titleFontSize=FONT_SIZES["axis_title"],
            titleFontWeight="normal",
            labelColor="#222222",
            titleColor="#222222",
            gridColor="#EEEEEE",
            domainColor="#888888",
            tickColor="#888888",
            labelLimit=260,
        ),
        axisQuantitative=alt.AxisConfig(tickCount=8, labelOverlap=True),
        legend=alt.LegendConfig(
            labelFontSize=FONT_SIZES["legend"],
            titleFontSize=FONT_SIZES["legend"],
            orient="bottom",
            direction="horizontal",
            symbolSize=180,
            labelLimit=320,
        ),
        header=alt.HeaderConfig(labelFontSize=FONT_SIZES["axis_title"], titleFontSize=FONT_SIZES["axis_title"]),
        text=alt.MarkConfig(fontSize=FONT_SIZES["text"]),
        view=alt.ViewConfig(stroke=None),
    )


_NO_HIGHLIGHT = object()


def _finish(chart: alt.TopLevelMixin, lang: str, *, highlight: object = _NO_HIGHLIGHT) -> alt.TopLevelMixin:
    """Big-screen styling and the language's number locale, set in one step (each configure_* call copies the
    whole chart); charts that mark the own unit get the highlight parameter."""
    finished = chart.copy(deep=False)
    finished.config = _config(lang)
    if highlight is not _NO_HIGHLIGHT:
        finished = _with_highlight_param(finished, highlight)  # type: ignore[arg-type]
    return finished


def _title(
    text: str, subtitle: str | None = None, *, size: int | None = None, wrap: int | None = None
) -> alt.TitleParams:
    """A title anchored left; with `wrap` (characters) a long title is broken over several lines."""
    lines = textwrap.wrap(text, wrap) if wrap and len(text) > wrap else []
    kwargs: dict[str, Any] = {"text": lines if len(lines) > 1 else text, "anchor": "start"}
    if subtitle:
        kwargs["subtitle"] = subtitle
    if size:
        kwargs["fontSize"] = size
    return alt.TitleParams(**kwargs)


def _guard(frame: pd.DataFrame, what: str) -> pd.DataFrame:
    if len(frame) > MAX_ROWS:
        raise ValueError(
            f"{what}: {len(frame)} rows is too many for a chart (limit {MAX_ROWS}); aggregate before charting"
        )
    return frame


def _empty_chart(title: str, lang: str) -> alt.TopLevelMixin:
    text = alt.Chart(pd.DataFrame({"text": [label("no_data_text", lang)]})).mark_text(fontSize=20, color="#666666")
    chart = text.encode(text="text:N").properties(width=400, height=120, title=_title(title))
    return _finish(chart, lang)


def prepare() -> None:
    """Build one small layered, concatenated chart per language and throw it away: Altair's one-time work (its
    schema class table, validators, the remembered channel definitions) is then done at server start-up, not
    in the first visitor's chart."""
    frame = pd.DataFrame({"unit": ["A", "B"], "value": [0.1, 0.2], "assessment": [BETTER, WORSE]})
    for lang in LANGS:
        frame["assessment"] = _assessment_labels(np.array([BETTER, WORSE], dtype=object), lang)
        base = alt.Chart(frame).encode(x=alt.X("unit:N", axis=alt.Axis(labelFontWeight=_highlight_weight())))
        panel = alt.layer(
            base.mark_rule().encode(y="value:Q", tooltip=_unit_tooltips("proportion", lang)[:1]),
            _target_rule(0.15, "proportion", lang, channel="y"),
            _points(base.encode(y="value:Q"), lang),
        ).properties(width=200, height=100, title=_title("A", "B"))
        chart = alt.concat(panel, panel, columns=2).resolve_scale(y="independent")
        _finish(chart, lang, highlight="A").to_dict(validate=False)


# ------------------------------------------------------------------------------------------ the unit frame


def _col(rows: pd.DataFrame, name: str) -> np.ndarray:
    if name in rows.columns:
        return pd.to_numeric(rows[name], errors="coerce").to_numpy(dtype=float)
    return np.full(len(rows), np.nan)


def _first(rows: pd.DataFrame, name: str, default: Any = None) -> Any:
    if name in rows.columns and len(rows):
        value = rows[name].dropna()
        if len(value):
            return value.iloc[0]
    return default


def _indicator_label(rows: pd.DataFrame, lang: str) -> str:
    return str(_first(rows, f"label_{lang}", _first(rows, "indicator", "")))


def _one_indicator(rows: pd.DataFrame, builder: str) -> None:
    if "indicator" in rows.columns and rows["indicator"].nunique(dropna=True) > 1:
        raise ValueError(f"{builder} draws one indicator; got {sorted(rows['indicator'].unique())}")


def _assessment_labels(values: pd.Series | np.ndarray, lang: str) -> np.ndarray:
    names = ASSESSMENT_LABELS[lang]
    raw = pd.Series(np.asarray(values, dtype=object), dtype=object)
    return raw.where(raw.isin(list(ASSESSMENTS)), NO_DATA).map(names).to_numpy(dtype=object)


def _assessment_scale(lang: str) -> alt.Scale:
    names = ASSESSMENT_LABELS[lang]
    return alt.Scale(domain=[names[a] for a in ASSESSMENTS], range=[PALETTE[a] for a in ASSESSMENTS])


def _unit_frame(rows: pd.DataFrame, *, lang: str, assessment: str, value: str = "adjusted") -> pd.DataFrame:
    """The per-unit columns a chart needs, under fixed names, as a new frame (the input is never touched).

    value "adjusted" uses adjusted_* and falls back to crude_* where there is no adjusted value (volume);
    "crude" uses crude_*; "oe" uses oe, oe_lower, oe_upper.
    """
    if value == "oe":
        v, lo, up = _col(rows, "oe"), _col(rows, "oe_lower"), _col(rows, "oe_upper")
    elif value == "crude":
        v, lo, up = _col(rows, "crude_value"), _col(rows, "crude_lower"), _col(rows, "crude_upper")
    elif value == "adjusted":
        v, lo, up = _col(rows, "adjusted_value"), _col(rows, "adjusted_lower"), _col(rows, "adjusted_upper")
        cv, clo, cup = _col(rows, "crude_value"), _col(rows, "crude_lower"), _col(rows, "crude_upper")
        missing = ~np.isfinite(v)
        v, lo, up = np.where(missing, cv, v), np.where(missing, clo, lo), np.where(missing, cup, up)
    else:
        raise ValueError(f"value must be 'adjusted', 'crude' or 'oe', not {value!r}")
    assess = rows[assessment].to_numpy(dtype=object) if assessment in rows.columns else np.full(len(rows), NO_DATA)
    unit = rows["unit"].astype(str).to_numpy(dtype=object)
    frame = pd.DataFrame(
        {
            "unit": unit,
            "n": _col(rows, "n"),
            "observed": _col(rows, "observed"),
            "expected": _col(rows, "expected"),
            "value": v,
            "lower": lo,
            "upper": up,
            "crude": _col(rows, "crude_value"),
            "oe": _col(rows, "oe"),
            "target": _col(rows, "target"),
            "precision": _col(rows, "precision"),
            "assessment": _assessment_labels(assess, lang),
        }
    )
    return frame


#: The own unit is a Vega-Lite parameter, not a data column, so one built chart serves every unit: a page
#: caches the spec and only swaps the parameter's value (with_highlight) when the viewer picks another unit.
HIGHLIGHT_PARAM = "highlight_unit"
IS_HIGHLIGHT = f"datum.unit === {HIGHLIGHT_PARAM}"


def _with_highlight_param(chart: alt.TopLevelMixin, highlight: str | None) -> alt.TopLevelMixin:
    """The parameter set on the top-level spec directly: add_params() would copy every panel and layer (it
    pushes the parameter into each subchart and lifts it back), most of a small-multiples chart's build time."""
    param = alt.VariableParameter(name=HIGHLIGHT_PARAM, value=None if highlight is None else str(highlight))
    out = chart.copy(deep=False)
    existing = [] if out.params is alt.Undefined else list(out.params)
    out.params = [*existing, param]
    return out


def with_highlight(spec: dict[str, Any], highlight: str | None) -> dict[str, Any]:
    """A finished chart's spec (``to_dict()``) with another own unit highlighted; the input is not changed."""
    value = None if highlight is None else str(highlight)
    params = [dict(p, value=value) if p.get("name") == HIGHLIGHT_PARAM else p for p in spec.get("params", [])]
    return {**spec, "params": params}


def _sort_units(frame: pd.DataFrame, direction: str | None) -> list[str]:
    """Units ordered best first (by value, in the indicator's direction); units without a value last."""
    ascending = direction == "lower"
    ordered = frame.sort_values(["value", "unit"], ascending=[ascending, True], na_position="last", kind="stable")
    return ordered["unit"].tolist()


def _unit_tooltips(
    kind: str, lang: str, *, value: str = "adjusted", crude: bool = False, magnitude: float | None = None
) -> list[alt.Tooltip]:
    """Unit, n, observed, expected, value and its 95% CI (and O/E), each in its kind's number format."""
    binary = kind in ("proportion", "prom_mic")
    own = value_format(kind, magnitude=magnitude)
    fmt = value_format("oe") if value == "oe" else own
    tips = [
        alt.Tooltip("unit:N", title=label("unit", lang)),
        alt.Tooltip("n:Q", title=label("n", lang), format=",.0f"),
        alt.Tooltip("observed:Q", title=label("observed", lang), format=",.0f" if binary else own),
    ]
    if kind != "response_rate":
        tips.append(alt.Tooltip("expected:Q", title=label("expected", lang), format=",.1f" if binary else own))
    if crude:
        tips.append(alt.Tooltip("crude:Q", title=label("crude", lang), format=own))
    tips += [
        alt.Tooltip("value:Q", title=label("oe" if value == "oe" else "adjusted", lang), format=fmt),
        alt.Tooltip("lower:Q", title=label("ci_lower", lang), format=fmt),
        alt.Tooltip("upper:Q", title=label("ci_upper", lang), format=fmt),
    ]
    if value != "oe" and binary:
        tips.append(alt.Tooltip("oe:Q", title=label("oe", lang), format=value_format("oe")))
    tips.append(alt.Tooltip("assessment:N", title=label("assessment", lang)))
    return tips


def _highlight_weight() -> Any:
    """Axis label weight: the own unit (the highlight parameter) in bold."""
    return alt.expr(f"datum.value === {HIGHLIGHT_PARAM} ? 'bold' : 'normal'")


def _assessment_legend(legend: bool | Sequence[str], lang: str) -> alt.Legend | None:
    """The assessment legend listing only the assessments present (in palette order), or none."""
    if legend is False:
        return None
    if legend is True:
        return alt.Legend()
    present = set(legend)
    return alt.Legend(values=[ASSESSMENT_LABELS[lang][a] for a in ASSESSMENTS if ASSESSMENT_LABELS[lang][a] in present])


def _points(base: alt.Chart, lang: str, *, size: int = 170, legend: bool | Sequence[str] = True) -> alt.Chart:
    """Units as filled circles coloured by assessment; the own unit outlined in black."""
    colour = alt.Color(
        "assessment:N",
        title=label("assessment", lang),
        scale=_assessment_scale(lang),
        legend=_assessment_legend(legend, lang),
    )
    return base.mark_point(filled=True, size=size, opacity=1).encode(
        color=colour,
        stroke=alt.when(IS_HIGHLIGHT).then(alt.value(HIGHLIGHT_COLOUR)).otherwise(alt.value("#666666")),
        strokeWidth=alt.when(IS_HIGHLIGHT).then(alt.value(3.5)).otherwise(alt.value(0.8)),
    )


def _value_domain(*arrays: np.ndarray, kind: str, pad: float = 0.06) -> list[float] | None:
    values = np.concatenate([np.asarray(a, dtype=float).ravel() for a in arrays]) if arrays else np.array([])
    values = values[np.isfinite(values)]
    if not values.size:
        return None
    lo, hi = float(values.min()), float(values.max())
    span = hi - lo if hi > lo else max(abs(hi), 1.0) * 0.1
    lo, hi = lo - pad * span, hi + pad * span
    if kind in PROPORTION_KINDS:
        lo, hi = max(lo, 0.0), min(hi, 1.0)
    elif kind in ("cost", "volume") and lo < 0 <= float(values.min()):
        lo = 0.0
    return [lo, hi]


# ------------------------------------------------------------------------------------------------ funnel


def funnel_chart(
    rows: pd.DataFrame,
    curve: pd.DataFrame,
    *,
    highlight: str | None = None,
    lang: str = "en",
    assessment: str = "assessment_998",
) -> alt.TopLevelMixin:
    """Funnel plot of one indicator: units at (n, adjusted value), target line, 95% (dashed) and 99.8% (solid)
    control limits from `curve` (columns precision, level, lower, upper), the own unit labelled."""
    lang = _check_lang(lang)
    _one_indicator(rows, "funnel_chart")
    title = _indicator_label(rows, lang)
    kind = str(_first(rows, "kind", "proportion"))
    units = _guard(_unit_frame(rows, lang=lang, assessment=assessment), "funnel rows")
    units = units[np.isfinite(units["value"]) & np.isfinite(units["precision"])]
    if units.empty:
        return _empty_chart(title, lang)
    target = _first(rows, "target")

    limits = _funnel_limits(curve, lang)
    near = limits[limits["precision"] >= 0.8 * units["precision"].min()]
    domain = _value_domain(
        units["value"].to_numpy(),
        near["limit"].to_numpy(),
        np.array([target], dtype=float) if target is not None else np.array([]),
        kind=kind,
    )
    fmt_axis = value_format(kind, axis=True)
    x = alt.X("precision:Q", title=label("n_axis", lang), axis=alt.Axis(format=",.0f", tickCount=8))
    y_scale = alt.Scale(domain=domain, zero=False, nice=False) if domain else alt.Scale(zero=False)
    y_title = f"{title} ({label('adjusted', lang).lower()})"
    y = alt.Y("value:Q", title=y_title, scale=y_scale, axis=alt.Axis(format=fmt_axis))

    layers: list[alt.Chart] = []
    if len(limits):
        names = [label("limit_95", lang), label("limit_998", lang)]
        layers.append(
            alt.Chart(limits)
            .mark_line(color=LINE_COLOUR, strokeWidth=2, clip=True)
            .encode(
                x=alt.X("precision:Q"),
                y=alt.Y("limit:Q"),
                strokeDash=alt.StrokeDash(
                    "limit_name:N",
                    title=label("limits", lang),
                    scale=alt.Scale(domain=names, range=[[7, 5], [1, 0]]),
                ),
                detail="line:N",
            )
        )
    if target is not None and np.isfinite(float(target)):
        layers.append(_target_rule(float(target), kind, lang, channel="y", magnitude=_magnitude(units["value"])))
    base = alt.Chart(units).encode(x=x, y=y, tooltip=_unit_tooltips(kind, lang, magnitude=_magnitude(units["value"])))
    layers.append(_points(base, lang, legend=units["assessment"].tolist()))
    layers.append(
        alt.Chart(units)
        .transform_filter(IS_HIGHLIGHT)
        .mark_text(align="left", dx=12, dy=-12, fontSize=18, fontWeight="bold", color=HIGHLIGHT_COLOUR)
        .encode(x=alt.X("precision:Q"), y=alt.Y("value:Q"), text=alt.Text("unit:N"))
    )
    chart = alt.layer(*layers).properties(width=720, height=460, title=_title(title, label("funnel_sub", lang)))
    return _finish(chart, lang, highlight=highlight)


def _funnel_limits(curve: pd.DataFrame | None, lang: str) -> pd.DataFrame:
    """The curve in long form (precision, limit, line, limit_name), thinned to at most 1,000 rows per level."""
    columns = ["precision", "limit", "line", "limit_name"]
    if curve is None or curve.empty:
        return pd.DataFrame(columns=columns)
    parts = []
    for level, part in curve.groupby("level", sort=True):
        part = part.sort_values("precision")
        if len(part) > 1000:
            part = part.iloc[np.unique(np.linspace(0, len(part) - 1, 1000).round().astype(int))]
        name = label("limit_998", lang) if float(level) > 0.99 else label("limit_95", lang)
        if float(level) not in (0.95, 0.998):
            pct = f"{float(level) * 100:g}%"
            name = (pct.replace(".", ",") + "-grenzen") if lang == "nl" else f"{pct} limits"
        for bound in ("lower", "upper"):
            parts.append(
                pd.DataFrame(
                    {
                        "precision": part["precision"].to_numpy(dtype=float),
                        "limit": part[bound].to_numpy(dtype=float),
                        "line": f"{level}-{bound}",
                        "limit_name": name,
                    }
                )
            )
    out = pd.concat(parts, ignore_index=True)
    return _guard(out[np.isfinite(out["limit"])], "funnel curve")


def _target_rule(target: float, kind: str, lang: str, *, channel: str, magnitude: float | None = None) -> alt.Chart:
    frame = pd.DataFrame({"target": [target], "name": [label("target", lang)]})
    enc = alt.X("target:Q") if channel == "x" else alt.Y("target:Q")
    return (
        alt.Chart(frame)
        .mark_rule(color="#000000", strokeWidth=2, strokeDash=[2, 3])
        .encode(
            enc,
            tooltip=[
                alt.Tooltip("name:N", title=" "),
                alt.Tooltip("target:Q", title=label("target", lang), format=value_format(kind, magnitude=magnitude)),
            ],
        )
    )


# ------------------------------------------------------------------------------------------ caterpillar


def _interval_panel(
    units: pd.DataFrame,
    *,
    kind: str,
    lang: str,
    direction: str | None,
    highlight: str | None,
    value: str = "adjusted",
    target: float | None,
    bars: bool = False,
    width: int = 620,
    legend: bool | Sequence[str] = True,
    zero_rule: bool = False,
) -> alt.LayerChart:
    """Units down the y axis (best first), value with 95% CI across; benchmark rule."""
    order = _sort_units(units, direction)
    if legend is True:
        legend = units["assessment"].tolist()
    fmt_kind = "oe" if value == "oe" else kind
    values = [units["lower"].to_numpy(), units["upper"].to_numpy(), units["value"].to_numpy()]
    if target is not None:
        values.append(np.array([target]))
    if zero_rule:
        values.append(np.array([0.0]))
    domain = _value_domain(*values, kind=fmt_kind)
    if bars and domain:
        domain[0] = min(domain[0], 0.0)
    scale = alt.Scale(domain=domain, zero=bars, nice=False) if domain else alt.Scale(zero=bars)
    x_title = label("oe_axis", lang) if value == "oe" else label("adjusted", lang)
    if kind == "response_rate":
        x_title = label("response_axis", lang)
    x = alt.X("value:Q", title=x_title, scale=scale, axis=alt.Axis(format=value_format(fmt_kind, axis=True)))
    y = alt.Y("unit:N", title=None, sort=order, axis=alt.Axis(labelFontWeight=_highlight_weight()))
    base = alt.Chart(units).encode(
        y=y, tooltip=_unit_tooltips(kind, lang, value=value, magnitude=_magnitude(units["value"]))
    )
    layers: list[alt.Chart] = []
    if bars:
        layers.append(
            base.mark_bar(height={"band": 0.7}).encode(
                x=x,
                color=alt.Color(
                    "assessment:N",
                    title=label("assessment", lang),
                    scale=_assessment_scale(lang),
                    legend=_assessment_legend(legend, lang),
                ),
                stroke=alt.when(IS_HIGHLIGHT).then(alt.value(HIGHLIGHT_COLOUR)).otherwise(alt.value(None)),
                strokeWidth=alt.when(IS_HIGHLIGHT).then(alt.value(3)).otherwise(alt.value(0)),
            )
        )
    layers.append(
        base.mark_rule(color="#333333", strokeWidth=2.5).encode(
            x=alt.X("lower:Q", scale=scale, title=x_title), x2="upper:Q"
        )
    )
    if zero_rule:
        layers.append(alt.Chart(pd.DataFrame({"zero": [0.0]})).mark_rule(color="#BBBBBB").encode(x="zero:Q"))
    if target is not None and np.isfinite(target):
        layers.append(_target_rule(float(target), fmt_kind, lang, channel="x", magnitude=_magnitude(units["value"])))
    if not bars:
        layers.append(_points(base.encode(x=x), lang, legend=legend))
    height = max(160, 30 * len(order))
    return alt.layer(*layers).properties(width=width, height=height)


def caterpillar_chart(
    rows: pd.DataFrame,
    *,
    highlight: str | None = None,
    lang: str = "en",
    value: str = "adjusted",
    assessment: str = "assessment_998",
) -> alt.TopLevelMixin:
    """One indicator's units sorted best first with their 95% CI and the benchmark rule.

    value="adjusted" (default) draws adjusted_value [adjusted_lower, adjusted_upper] against the target;
    value="oe" draws O/E [oe_lower, oe_upper] against 1.
    """
    lang = _check_lang(lang)
    _one_indicator(rows, "caterpillar_chart")
    title = _indicator_label(rows, lang)
    kind = str(_first(rows, "kind", "mean"))
    units = _guard(_unit_frame(rows, lang=lang, assessment=assessment, value=value), "rows")
    if not np.isfinite(units["value"]).any():
        return _empty_chart(title, lang)
    target = 1.0 if value == "oe" else _first(rows, "target")
    panel = _interval_panel(
        units,
        kind=kind,
        lang=lang,
        direction=_first(rows, "direction"),
        highlight=highlight,
        value=value,
        target=None if target is None else float(target),
    )
    subtitle = label("oe_sub" if value == "oe" else "caterpillar_sub", lang)
    return _finish(panel.properties(title=_title(title, subtitle)), lang, highlight=highlight)


def crude_vs_adjusted_chart(
    rows: pd.DataFrame, *, lang: str = "en", highlight: str | None = None, assessment: str = "assessment_998"
) -> alt.TopLevelMixin:
    """Dumbbell per unit: from the crude value (open circle) to the case-mix adjusted value (filled)."""
    lang = _check_lang(lang)
    _one_indicator(rows, "crude_vs_adjusted_chart")
    title = _indicator_label(rows, lang)
    kind = str(_first(rows, "kind", "mean"))
    units = _guard(_unit_frame(rows, lang=lang, assessment=assessment), "rows")
    units = units[np.isfinite(units["value"]) | np.isfinite(units["crude"])]
    if units.empty:
        return _empty_chart(title, lang)
    order = _sort_units(units, _first(rows, "direction"))
    target = _first(rows, "target")
    domain = _value_domain(
        units["value"].to_numpy(),
        units["crude"].to_numpy(),
        np.array([target if target is not None else np.nan]),
        kind=kind,
    )
    scale = alt.Scale(domain=domain, zero=False, nice=False) if domain else alt.Scale(zero=False)
    x = alt.X(
        "value:Q",
        title=label("crude_and_adjusted", lang),
        scale=scale,
        axis=alt.Axis(format=value_format(kind, axis=True)),
    )
    y = alt.Y("unit:N", title=None, sort=order, axis=alt.Axis(labelFontWeight=_highlight_weight()))
    base = alt.Chart(units).encode(
        y=y, tooltip=_unit_tooltips(kind, lang, crude=True, magnitude=_magnitude(units["value"]))
    )
    layers = [
        base.mark_rule(color="#AAAAAA", strokeWidth=4).encode(x=alt.X("crude:Q", scale=scale), x2="value:Q"),
        base.mark_point(filled=False, size=150, color="#333333", strokeWidth=2).encode(x=alt.X("crude:Q", scale=scale)),
    ]
    if target is not None and np.isfinite(float(target)):
        layers.append(_target_rule(float(target), kind, lang, channel="x", magnitude=_magnitude(units["value"])))
    layers.append(_points(base.encode(x=x), lang, legend=units["assessment"].tolist()))
    chart = alt.layer(*layers).properties(
        width=620, height=max(160, 30 * len(order)), title=_title(title, label("dumbbell_sub", lang))
    )
    return _finish(chart, lang, highlight=highlight)


# ---------------------------------------------------------------------------------- several indicators


def _indicator_groups(rows: pd.DataFrame) -> list[pd.DataFrame]:
    if "indicator" not in rows.columns:
        return [rows]
    order = pd.unique(rows["indicator"])
    return [rows[rows["indicator"] == ind] for ind in order]


def small_multiples_chart(
    rows: pd.DataFrame,
    *,
    lang: str = "en",
    highlight: str | None = None,
    columns: int = 3,
    assessment: str = "assessment_998",
) -> alt.TopLevelMixin:
    """One small panel per indicator (own value scale), units side by side in the same order in every
    panel, adjusted value with 95% CI and the benchmark; volume as bars. For comparing departments."""
    lang = _check_lang(lang)
    _guard(rows, "indicator rows")
    if rows.empty:
        return _empty_chart(label("small_multiples", lang), lang)
    unit_order = sorted(pd.unique(rows["unit"].astype(str)))
    width = max(220, 34 * len(unit_order))
    judged = rows[rows["kind"] != "volume"] if "kind" in rows.columns else rows
    present = _assessment_labels(judged[assessment] if assessment in judged.columns else [], lang).tolist()
    panels = []
    for part in _indicator_groups(rows):
        kind = str(_first(part, "kind", "mean"))
        units = _unit_frame(part, lang=lang, assessment=assessment)
        target = _first(part, "target")
        target = None if target is None or not np.isfinite(float(target)) else float(target)
        arrays = [units["value"].to_numpy(), units["lower"].to_numpy(), units["upper"].to_numpy()]
        if target is not None:
            arrays.append(np.array([target]))
        domain = _value_domain(*arrays, kind=kind)
        bars = kind == "volume"
        if bars and domain:
            domain[0] = 0.0
        scale = alt.Scale(domain=domain, zero=bars, nice=False) if domain else alt.Scale(zero=bars)
        x = alt.X(
            "unit:N",
            title=None,
            sort=unit_order,
            scale=alt.Scale(domain=unit_order),
            axis=alt.Axis(labelAngle=-40, labelFontWeight=_highlight_weight()),
        )
        y = alt.Y("value:Q", title=None, scale=scale, axis=alt.Axis(format=value_format(kind, axis=True)))
        base = alt.Chart(units).encode(x=x, tooltip=_unit_tooltips(kind, lang, magnitude=_magnitude(units["value"])))
        layers: list[alt.Chart] = []
        if bars:
            layers.append(base.mark_bar(color="#999999").encode(y=y))
        else:
            layers.append(
                base.mark_rule(color="#333333", strokeWidth=2.5).encode(y=alt.Y("lower:Q", scale=scale), y2="upper:Q")
            )
            if target is not None:
                layers.append(_target_rule(target, kind, lang, channel="y", magnitude=_magnitude(units["value"])))
            layers.append(_points(base.encode(y=y), lang, size=120, legend=present))
        panels.append(
            alt.layer(*layers).properties(
                width=width,
                height=200,
                title=_title(_indicator_label(part, lang), size=FONT_SIZES["axis_title"] + 2, wrap=width // 10),
            )
        )
    chart = (
        alt.concat(*panels, columns=columns)
        .resolve_scale(x="independent", y="independent", color="shared")
        .properties(title=_title(label("small_multiples", lang), label("small_multiples_sub", lang)))
    )
    return _finish(chart, lang, highlight=highlight)


def _stacked_panels(
    rows: pd.DataFrame,
    *,
    lang: str,
    highlight: str | None,
    title: str,
    subtitle: str,
    bars: bool,
    assessment: str,
) -> alt.TopLevelMixin:
    _guard(rows, "indicator rows")
    present = _assessment_labels(rows[assessment] if assessment in rows.columns else [], lang).tolist()
    panels = []
    for i, part in enumerate(_indicator_groups(rows)):
        kind = str(_first(part, "kind", "mean"))
        units = _unit_frame(part, lang=lang, assessment=assessment)
        if not np.isfinite(units["value"]).any():
            continue
        target = _first(part, "target")
        panel = _interval_panel(
            units,
            kind=kind,
            lang=lang,
            direction=_first(part, "direction"),
            highlight=highlight,
            target=None if target is None else float(target),
            bars=bars,
            legend=present if i == 0 else False,
            zero_rule=kind == "prom_change",
        )
        panels.append(panel.properties(title=_title(_indicator_label(part, lang), size=FONT_SIZES["axis_title"] + 2)))
    if not panels:
        return _empty_chart(title, lang)
    chart = panels[0] if len(panels) == 1 else alt.vconcat(*panels).resolve_scale(x="independent", color="shared")
    return _finish(chart.properties(title=_title(title, subtitle)), lang, highlight=highlight)


def prom_response_chart(
    rows: pd.DataFrame, *, lang: str = "en", highlight: str | None = None, assessment: str = "assessment_998"
) -> alt.TopLevelMixin:
    """PROM response rate per unit (bars, with 95% CI and the overall rate); one panel per response
    indicator (e.g. per timepoint)."""
    lang = _check_lang(lang)
    return _stacked_panels(
        rows,
        lang=lang,
        highlight=highlight,
        title=label("response", lang),
        subtitle=label("response_sub", lang),
        bars=True,
        assessment=assessment,
    )


def prom_change_chart(
    rows: pd.DataFrame, *, lang: str = "en", highlight: str | None = None, assessment: str = "assessment_998"
) -> alt.TopLevelMixin:
    """Case-mix adjusted PROM score, change or MIC share per unit with 95% CI; one panel per indicator."""
    lang = _check_lang(lang)
    return _stacked_panels(
        rows,
        lang=lang,
        highlight=highlight,
        title=label("prom", lang),
        subtitle=label("prom_sub", lang),
        bars=False,
        assessment=assessment,
    )


# ------------------------------------------------------------------------------------------- over time


def trend_chart(spc: pd.DataFrame, *, kind: str, lang: str = "en", title: str | None = None) -> alt.TopLevelMixin:
    """SPC chart of one unit's indicator per period: the value (p for a p chart, else value), centre line,
    control limits, points with a run-rule signal highlighted, and for p charts the case-mix expected rate.

    `kind` is the indicator kind (it sets the number format); "p" and "xmr" are accepted too.
    """
    lang = _check_lang(lang)
    kind = {"p": "proportion", "xmr": "mean"}.get(kind, kind)
    p_chart = "p" in spc.columns
    chart_name = label("p_chart" if p_chart else "xmr_chart", lang)
    title = title or label("trend", lang)
    if spc.empty:
        return _empty_chart(title, lang)
    _guard(spc, "SPC frame")
    value_col = "p" if p_chart else "value"
    period = spc["period"]
    temporal = pd.api.types.is_datetime64_any_dtype(period)
    wide = pd.DataFrame(
        {
            "period": pd.to_datetime(period).to_numpy() if temporal else period.to_numpy(),
            "value": pd.to_numeric(spc[value_col], errors="coerce").to_numpy(dtype=float),
            "n": _col(spc, "n"),
            "centre": _col(spc, "centre"),
            "lower": _col(spc, "lower"),
            "upper": _col(spc, "upper"),
            "expected": _col(spc, "expected_rate"),
        }
    )
    flags = {
        "beyond_limits": "beyond_limits",
        "shift": "shift",
        "trend": "trend_rule",
        "two_of_three": "two_of_three",  # vbhc.spc
        "anhoej_run": "anhoej_run",
    }
    texts = np.full(len(spc), "", dtype=object)
    for col, key in flags.items():
        if col in spc.columns:
            hit = spc[col].fillna(False).astype(bool).to_numpy()
            texts = np.where(hit, np.where(texts == "", label(key, lang), texts + "; " + label(key, lang)), texts)
    signal = spc["signal"].fillna(False).astype(bool).to_numpy() if "signal" in spc.columns else texts != ""
    wide["signal"] = np.where(signal, label("signal", lang), label("no_signal", lang))
    wide["signal_rules"] = texts

    limits_name = label("limits", lang)
    series = [
        ("value", label("rate_per_period" if p_chart else "value_per_period", lang), "#000000", [1, 0]),
        ("centre", label("centre", lang), LINE_COLOUR, [1, 0]),
        ("upper", limits_name, LINE_COLOUR, [7, 5]),
        ("lower", limits_name, LINE_COLOUR, [7, 5]),
    ]
    if p_chart and np.isfinite(wide["expected"]).any():
        series.append(("expected", label("expected_rate", lang), "#56B4E9", [3, 3]))
    long = pd.concat(
        [
            pd.DataFrame({"period": wide["period"], "y": wide[col], "series": name, "key": col})
            for col, name, _, _ in series
        ],
        ignore_index=True,
    )
    long = long[np.isfinite(long["y"])]
    styles = {name: (colour, dash) for _, name, colour, dash in series}
    names = list(styles)
    x_type = "T" if temporal else ("Q" if pd.api.types.is_numeric_dtype(period) else "O")
    x_axis = alt.Axis(format="%b %Y", labelAngle=-30) if temporal else alt.Axis()
    x = alt.X(f"period:{x_type}", title=label("period", lang), axis=x_axis)
    fmt = value_format(kind, magnitude=_magnitude(wide["value"], wide["centre"]))
    line_enc = {
        "x": x,
        "y": alt.Y(
            "y:Q",
            title=label("rate_per_period" if p_chart else "value_per_period", lang),
            scale=alt.Scale(zero=p_chart),
        ),
        "color": alt.Color(
            "series:N",
            title=None,
            scale=alt.Scale(domain=names, range=[styles[n][0] for n in names]),
            legend=alt.Legend(orient="bottom", columns=2, symbolType="stroke", symbolStrokeWidth=3),
        ),
        "strokeDash": alt.StrokeDash(
            "series:N", title=None, scale=alt.Scale(domain=names, range=[styles[n][1] for n in names])
        ),
        "detail": "key:N",
    }
    is_limit = long["key"].isin(["upper", "lower"])
    # limits can change from period to period (p chart with varying n): steps centred on each period
    lines = alt.layer(
        alt.Chart(long[is_limit]).mark_line(interpolate="step", strokeWidth=2).encode(**line_enc),
        alt.Chart(long[~is_limit]).mark_line(strokeWidth=2.5).encode(**line_enc),
    )
    period_tip = (
        alt.Tooltip("period:T", title=label("period", lang), format="%b %Y")
        if temporal
        else alt.Tooltip(f"period:{x_type}", title=label("period", lang))
    )
    tooltips = [
        period_tip,
        alt.Tooltip("n:Q", title=label("n", lang), format=",.0f"),
        alt.Tooltip("value:Q", title=label("observed", lang), format=fmt),
        alt.Tooltip("centre:Q", title=label("centre", lang), format=fmt),
        alt.Tooltip("lower:Q", title=label("lower_limit", lang), format=fmt),
        alt.Tooltip("upper:Q", title=label("upper_limit", lang), format=fmt),
    ]
    if p_chart:
        tooltips.append(alt.Tooltip("expected:Q", title=label("expected_rate", lang), format=fmt))
    tooltips.append(alt.Tooltip("signal_rules:N", title=label("signal", lang)))
    sig_names = [label("no_signal", lang), label("signal", lang)]
    points = (
        alt.Chart(wide[np.isfinite(wide["value"])])
        .mark_point(filled=True, opacity=1)
        .encode(
            x=x,
            y=alt.Y("value:Q", axis=alt.Axis(format=value_format(kind, axis=True))),
            fill=alt.Fill("signal:N", title=None, scale=alt.Scale(domain=sig_names, range=["#000000", SIGNAL_COLOUR])),
            size=alt.Size("signal:N", title=None, scale=alt.Scale(domain=sig_names, range=[60, 320])),
            stroke=alt.value("#000000"),
            tooltip=tooltips,
        )
    )
    chart = alt.layer(lines, points).properties(width=760, height=400, title=_title(title, chart_name))
    return _finish(chart, lang)


def thin_series(
    frame: pd.DataFrame,
    *,
    group: str = "unit",
    order: str = "cycle_number",
    extremes: Sequence[str] = (),
    flags: Sequence[str] = (),
    max_points: int = MAX_SERIES_POINTS,
) -> pd.DataFrame:
    """At most about `max_points` rows of a long per-cycle series, selected (never recomputed).

    Each group's rows (in `order`) are cut into equal buckets; from each bucket the first row, the rows with
    the highest and lowest value of every column in `extremes` and the first row with each flag (e.g. an
    alarm) set are kept, plus each group's last row. So peaks and alarms survive and x positions stay true.
    """
    df = frame.sort_values([group, order], kind="stable").reset_index(drop=True)
    if len(df) <= max_points:
        return df
    codes = pd.factorize(df[group])[0]
    pos = df.groupby(codes).cumcount().to_numpy()
    size = np.bincount(codes)[codes]
    units = int(codes.max()) + 1
    buckets = max(max_points // (2 * units), 1)
    while True:
        keep = _thin_mask(df, codes, pos, size, buckets, extremes, flags)
        if keep.sum() <= max_points or buckets == 1:
            break
        buckets = max(buckets * 2 // 3, 1)
    return df[keep].reset_index(drop=True)


def _thin_mask(
    df: pd.DataFrame,
    codes: np.ndarray,
    pos: np.ndarray,
    size: np.ndarray,
    buckets: int,
    extremes: Sequence[str],
    flags: Sequence[str],
) -> np.ndarray:
    key = codes.astype(np.int64) * buckets + (pos * buckets // size)
    keep = np.zeros(len(df), dtype=bool)
    keep[np.flatnonzero(np.r_[True, key[1:] != key[:-1]])] = True  # first row of each bucket
    keep[np.flatnonzero(np.r_[codes[1:] != codes[:-1], True])] = True  # last row of each group
    index = pd.Series(np.arange(len(df)))
    for col in extremes:
        values = pd.to_numeric(df[col], errors="coerce").to_numpy(dtype=float)
        keep[pd.Series(np.nan_to_num(values, nan=-np.inf)).groupby(key).idxmax().to_numpy()] = True
        keep[pd.Series(np.nan_to_num(values, nan=np.inf)).groupby(key).idxmin().to_numpy()] = True
    for col in flags:
        hit = df[col].fillna(False).astype(bool).to_numpy()
        if hit.any():
            keep[index[hit].groupby(key[hit]).first().to_numpy()] = True
    return keep


def _series_frame(frame: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    present = [c for c in columns if c in frame.columns]
    out = frame[present].copy()
    if "unit" not in out.columns:
        out["unit"] = ""
    out["unit"] = out["unit"].astype(str)
    if "date" in out.columns:
        out["date"] = pd.to_datetime(out["date"], errors="coerce")
    return out


def _unit_colour(units: Sequence[str]) -> alt.Color | alt.ColorValue:
    if len(units) <= 1:
        return alt.value("#000000")
    colours = (CATEGORICAL * (len(units) // len(CATEGORICAL) + 1))[: len(units)]
    return alt.Color("unit:N", title=None, scale=alt.Scale(domain=list(units), range=colours))


def _series_tooltips(lang: str, columns: Sequence[str]) -> list[alt.Tooltip]:
    tips = [
        alt.Tooltip("unit:N", title=label("unit", lang)),
        alt.Tooltip("cycle_number:Q", title=label("cycle_number", lang), format=",.0f"),
    ]
    if "date" in columns:
        tips.append(alt.Tooltip("date:T", title=label("date", lang), format="%d-%m-%Y"))
    for col, key, fmt in (
        ("cusum_up", "cusum_up", ".2f"),
        ("cusum_down", "cusum_down", ".2f"),
        ("vlad", "vlad", ".1f"),
    ):
        if col in columns:
            tips.append(alt.Tooltip(f"{col}:Q", title=label(key, lang) if col != "vlad" else "VLAD", format=fmt))
    return tips


def cusum_chart(
    frame: pd.DataFrame,
    *,
    h: float = 4.5,
    lang: str = "en",
    direction: str | None = None,
    max_points: int = MAX_SERIES_POINTS,
) -> alt.TopLevelMixin:
    """Risk-adjusted CUSUM per care cycle: upward chart above 0, downward below 0, alarm limits at ±h and
    alarms marked. `direction` ("lower"/"higher" is better for the outcome) colours the alarms as worse or
    better; without it they get the neutral signal colour. Long series are thinned to ~max_points rows."""
    lang = _check_lang(lang)
    title = label("cusum", lang)
    if frame.empty:
        return _empty_chart(title, lang)
    cols = ["unit", "date", "cycle_number", "cusum_up", "cusum_down", "alarm_up", "alarm_down", "vlad"]
    data = thin_series(
        _series_frame(frame, cols),
        extremes=("cusum_up", "cusum_down"),
        flags=[c for c in ("alarm_up", "alarm_down") if c in frame.columns],
        max_points=max_points,
    )
    data = _guard(data, "CUSUM series")
    units = list(pd.unique(data["unit"]))
    x = alt.X("cycle_number:Q", title=label("cycle_number", lang), axis=alt.Axis(format=",.0f"))
    tips = _series_tooltips(lang, data.columns)
    base = alt.Chart(data).encode(x=x, tooltip=tips)
    colour = _unit_colour(units)
    up = base.mark_line(strokeWidth=2).encode(y=alt.Y("cusum_up:Q", title=label("cusum_axis", lang)), color=colour)
    down = base.mark_line(strokeWidth=2).encode(y="cusum_down:Q", color=colour)
    width = 760
    h_text = _format_number(h, lang)
    limits = pd.DataFrame({"y": [h, -h, 0.0], "text": [f"{label('alarm_limit', lang)} h = {h_text}", f"−{h_text}", ""]})
    rules = [
        alt.Chart(limits.iloc[:2]).mark_rule(color=LINE_COLOUR, strokeDash=[7, 5], strokeWidth=2).encode(y="y:Q"),
        alt.Chart(limits.iloc[2:]).mark_rule(color="#BBBBBB").encode(y="y:Q"),
        alt.Chart(limits.iloc[:1])
        .mark_text(align="left", baseline="bottom", dy=-4, color=LINE_COLOUR, fontSize=FONT_SIZES["text"])
        .encode(x=alt.value(4), y="y:Q", text="text:N"),  # from the left edge: stays inside a stretched chart
    ]
    up_colour, down_colour = SIGNAL_COLOUR, SIGNAL_COLOUR
    if direction == "lower":
        up_colour, down_colour = PALETTE[WORSE], PALETTE[BETTER]
    elif direction == "higher":
        up_colour, down_colour = PALETTE[BETTER], PALETTE[WORSE]
    alarms = []
    if "alarm_up" in data.columns:
        alarms.append(
            base.transform_filter(alt.datum.alarm_up)
            .mark_point(shape="triangle-up", filled=True, size=260, color=up_colour, opacity=1)
            .encode(y="cusum_up:Q")
        )
    if "alarm_down" in data.columns:
        alarms.append(
            base.transform_filter(alt.datum.alarm_down)
            .mark_point(shape="triangle-down", filled=True, size=260, color=down_colour, opacity=1)
            .encode(y="cusum_down:Q")
        )
    chart = alt.layer(*rules, up, down, *alarms).properties(
        width=width, height=420, title=_title(title, label("cusum_sub", lang))
    )
    return _finish(chart, lang)


def vlad_chart(
    frame: pd.DataFrame, *, lang: str = "en", max_points: int = MAX_SERIES_POINTS, highlight: str | None = None
) -> alt.TopLevelMixin:
    """Variable life-adjusted display: cumulative expected minus observed events per care cycle, per unit.
    Long series are thinned to ~max_points rows (peaks and troughs kept)."""
    lang = _check_lang(lang)
    title = label("vlad", lang)
    if frame.empty:
        return _empty_chart(title, lang)
    data = thin_series(
        _series_frame(frame, ["unit", "date", "cycle_number", "vlad"]), extremes=("vlad",), max_points=max_points
    )
    data = _guard(data, "VLAD series")
    units = list(pd.unique(data["unit"]))
    base = alt.Chart(data).encode(
        x=alt.X("cycle_number:Q", title=label("cycle_number", lang), axis=alt.Axis(format=",.0f")),
        tooltip=_series_tooltips(lang, data.columns),
    )
    line = base.mark_line(strokeWidth=2.5).encode(
        y=alt.Y("vlad:Q", title=label("vlad_axis", lang), axis=alt.Axis(format=",.1~f")), color=_unit_colour(units)
    )
    if len(units) > 1:
        line = line.encode(strokeWidth=alt.when(IS_HIGHLIGHT).then(alt.value(4.5)).otherwise(alt.value(1.5)))
    zero = alt.Chart(pd.DataFrame({"y": [0.0]})).mark_rule(color="#BBBBBB").encode(y="y:Q")
    chart = alt.layer(zero, line).properties(width=760, height=400, title=_title(title, label("vlad_sub", lang)))
    return _finish(chart, lang, highlight=highlight)


# ------------------------------------------------------------------------------------------------- PROMs


def histogram(
    values: pd.DataFrame, value_col: str, by: Sequence[str], bins: int, range_: tuple[float, float]
) -> pd.DataFrame:
    """Counts of `value_col` in `bins` equal bins over `range_` per group of `by` (every bin listed, zeros
    included): columns by..., bin_start, bin_end, count. The last bin includes its upper edge; missing
    values and values outside the range are left out. Aggregation for score_distribution_chart."""
    lo, hi = float(range_[0]), float(range_[1])
    if not bins >= 1 or not hi > lo:
        raise ValueError("histogram needs bins >= 1 and range_[1] > range_[0]")
    by = list(by)
    edges = np.linspace(lo, hi, bins + 1)
    v = pd.to_numeric(values[value_col], errors="coerce").to_numpy(dtype=float)
    inside = np.isfinite(v) & (v >= lo) & (v <= hi)
    idx = np.minimum(np.floor((v[inside] - lo) / (hi - lo) * bins), bins - 1).astype(int)
    part = values.loc[inside, by].reset_index(drop=True).assign(bin=idx)
    counts = part.groupby([*by, "bin"], dropna=False, sort=True).size().rename("count")
    groups = values.loc[:, by].drop_duplicates().sort_values(by).reset_index(drop=True) if by else pd.DataFrame([{}])
    full = groups.merge(pd.DataFrame({"bin": np.arange(bins)}), how="cross")
    out = (
        full.merge(counts.reset_index(), on=[*by, "bin"], how="left")
        if by
        else full.merge(counts.reset_index(), on="bin", how="left")
    )
    out["count"] = out["count"].fillna(0).astype(int)
    out["bin_start"] = edges[out["bin"].to_numpy()]
    out["bin_end"] = edges[out["bin"].to_numpy() + 1]
    return out[[*by, "bin_start", "bin_end", "count"]]


def _timepoint_order(timepoints: Sequence[str]) -> list[str]:
    """Baseline first, then follow-up timepoints by their length ("6w" < "3m" < "12m" < "2y"), others last."""
    days = {"d": 1, "w": 7, "m": 30.4, "y": 365.25}

    def key(item: tuple[int, str]) -> tuple[int, float, int]:
        i, name = item
        low = name.lower()
        if low.startswith(("baseline", "pre", "intake", "t0")):
            return (0, 0.0, i)
        match = re.search(r"(\d+(?:\.\d+)?)\s*([dwmy])", low)
        if match:
            return (1, float(match.group(1)) * days[match.group(2)], i)
        return (2, 0.0, i)

    return [name for _, name in sorted(enumerate(map(str, timepoints)), key=key)]


def score_distribution_chart(
    scores_summary: pd.DataFrame,
    *,
    lang: str = "en",
    title: str | None = None,
    timepoints: Sequence[str] | None = None,
) -> alt.TopLevelMixin:
    """Histograms of PROM scores from a pre-binned frame (unit, timepoint, bin_start, bin_end, count; a column
    "group" may stand in for unit): one row of panels per unit, one column per timepoint (in the order they
    appear)."""
    lang = _check_lang(lang)
    title = title or label("distribution", lang)
    if scores_summary.empty:
        return _empty_chart(title, lang)
    group = "unit" if "unit" in scores_summary.columns else "group"
    cols = [c for c in (group, "timepoint", "bin_start", "bin_end", "count") if c in scores_summary.columns]
    data = _guard(scores_summary[cols].rename(columns={group: "unit"}), "score histogram")
    for col in ("unit", "timepoint"):
        data[col] = data[col].astype(str) if col in data.columns else ""
    timepoints = list(timepoints) if timepoints is not None else _timepoint_order(pd.unique(data["timepoint"]))
    units = list(pd.unique(data["unit"]))
    bars = (
        alt.Chart(data)
        .mark_bar(color="#56B4E9", stroke="#FFFFFF", strokeWidth=0.5)
        .encode(
            x=alt.X("bin_start:Q", bin="binned", title=label("score", lang), axis=alt.Axis(format=",.4~f")),
            x2="bin_end:Q",
            y=alt.Y("count:Q", title=label("count", lang), axis=alt.Axis(format=",.0f", tickMinStep=1)),
            tooltip=[
                alt.Tooltip("unit:N", title=label("unit", lang)),
                alt.Tooltip("timepoint:N", title=label("timepoint", lang)),
                alt.Tooltip("bin_start:Q", title=f"{label('bin', lang)} ≥", format=",.4~f"),
                alt.Tooltip("bin_end:Q", title=f"{label('bin', lang)} <", format=",.4~f"),
                alt.Tooltip("count:Q", title=label("count", lang), format=",.0f"),
            ],
        )
        .properties(width=260, height=140)
    )
    chart = bars.facet(
        row=alt.Row("unit:N", title=None, sort=units, header=alt.Header(labelAngle=0, labelAlign="left")),
        column=alt.Column("timepoint:N", title=label("timepoint", lang), sort=timepoints),
    ).properties(title=_title(title))
    return _finish(chart, lang)


# -------------------------------------------------------------------------------------------------- cost


def cost_breakdown_chart(
    breakdown: pd.DataFrame, *, lang: str = "en", highlight: str | None = None
) -> alt.TopLevelMixin:
    """Stacked bars per unit: cost per care cycle by activity (the activities add up to the unit's mean cost
    per care cycle); units sorted by total, highest first."""
    lang = _check_lang(lang)
    title = label("cost_breakdown", lang)
    if breakdown.empty:
        return _empty_chart(title, lang)
    cols = ["unit", "activity", "cycles", "quantity", "total_cost", "cost_per_cycle", "share"]
    data = _guard(breakdown[[c for c in cols if c in breakdown.columns]].copy(), "cost breakdown")
    data["unit"] = data["unit"].astype(str)
    data["activity"] = data["activity"].astype(str)
    activities = sorted(pd.unique(data["activity"]))
    colours = (CATEGORICAL * (len(activities) // len(CATEGORICAL) + 1))[: len(activities)]
    units = data["unit"].nunique()
    tips = [
        alt.Tooltip("unit:N", title=label("unit", lang)),
        alt.Tooltip("activity:N", title=label("activity", lang)),
        alt.Tooltip("cycles:Q", title=label("cycles", lang), format=",.0f"),
        alt.Tooltip("quantity:Q", title=label("quantity", lang), format=",.1~f"),
        alt.Tooltip("total_cost:Q", title=label("total_cost", lang), format="$,.0f"),
        alt.Tooltip("cost_per_cycle:Q", title=label("cost", lang), format="$,.0f"),
        alt.Tooltip("share:Q", title=label("share", lang), format=".1%"),
    ]
    chart = (
        alt.Chart(data)
        .mark_bar(height={"band": 0.75})
        .encode(
            x=alt.X("cost_per_cycle:Q", title=label("cost_axis", lang), stack="zero", axis=alt.Axis(format="$,.0f")),
            y=alt.Y("unit:N", title=None, sort="-x", axis=alt.Axis(labelFontWeight=_highlight_weight())),
            color=alt.Color(
                "activity:N",
                title=label("activity", lang),
                scale=alt.Scale(domain=activities, range=colours),
                legend=alt.Legend(columns=3),
            ),
            order=alt.Order("activity:N", sort="ascending"),
            tooltip=[t for t in tips if t.to_dict()["field"] in data.columns],
        )
        .properties(width=720, height=max(160, 34 * units), title=_title(title))
    )
    return _finish(chart, lang, highlight=highlight)


def value_chart(
    view: pd.DataFrame,
    *,
    outcome_label: str,
    lang: str = "en",
    outcome_kind: str | None = None,
    outcome_target: float | None = None,
    cost_target: float | None = None,
    highlight: str | None = None,
) -> alt.TopLevelMixin:
    """Outcome against cost per care cycle (both case-mix adjusted, with 95% CI), benchmark cross-hairs and
    units coloured by their value quadrant (from value_table). The cross-hairs are drawn at outcome_target and
    cost_target (or the view's columns target_outcome/target_cost); `outcome_kind` sets the outcome format."""
    lang = _check_lang(lang)
    title = label("value", lang)
    if view.empty:
        return _empty_chart(title, lang)
    kind = outcome_kind or str(_first(view, "kind_outcome", "mean"))
    outcome_target = outcome_target if outcome_target is not None else _first(view, "target_outcome")
    cost_target = cost_target if cost_target is not None else _first(view, "target_cost")
    data = _guard(
        pd.DataFrame(
            {
                "unit": view["unit"].astype(str).to_numpy(dtype=object),
                "outcome": _col(view, "adjusted_value_outcome"),
                "outcome_lower": _col(view, "adjusted_lower_outcome"),
                "outcome_upper": _col(view, "adjusted_upper_outcome"),
                "cost": _col(view, "adjusted_value_cost"),
                "cost_lower": _col(view, "adjusted_lower_cost"),
                "cost_upper": _col(view, "adjusted_upper_cost"),
            }
        ),
        "value view",
    )
    quadrant = view["quadrant"] if "quadrant" in view.columns else pd.Series(["no clear difference"] * len(view))
    quadrant = quadrant.where(quadrant.isin(list(QUADRANTS)), "no clear difference")
    data["quadrant"] = quadrant.map(QUADRANT_LABELS[lang]).to_numpy(dtype=object)
    data = data[np.isfinite(data["outcome"]) & np.isfinite(data["cost"])]
    if data.empty:
        return _empty_chart(title, lang)
    x_dom = _value_domain(
        data["cost_lower"], data["cost_upper"], data["cost"], np.array([cost_target or np.nan]), kind="cost"
    )
    y_dom = _value_domain(
        data["outcome_lower"], data["outcome_upper"], data["outcome"], np.array([outcome_target or np.nan]), kind=kind
    )
    x_scale = alt.Scale(domain=x_dom, zero=False, nice=False) if x_dom else alt.Scale(zero=False)
    y_scale = alt.Scale(domain=y_dom, zero=False, nice=False) if y_dom else alt.Scale(zero=False)
    fmt = value_format(kind, magnitude=_magnitude(data["outcome"]))
    tips = [
        alt.Tooltip("unit:N", title=label("unit", lang)),
        alt.Tooltip("outcome:Q", title=outcome_label, format=fmt),
        alt.Tooltip("outcome_lower:Q", title=label("ci_lower", lang), format=fmt),
        alt.Tooltip("outcome_upper:Q", title=label("ci_upper", lang), format=fmt),
        alt.Tooltip("cost:Q", title=label("cost", lang), format="$,.0f"),
        alt.Tooltip("cost_lower:Q", title=label("ci_lower", lang) + " ", format="$,.0f"),
        alt.Tooltip("cost_upper:Q", title=label("ci_upper", lang) + " ", format="$,.0f"),
        alt.Tooltip("quadrant:N", title=label("quadrant", lang)),
    ]
    x = alt.X("cost:Q", title=label("cost_axis", lang), scale=x_scale, axis=alt.Axis(format="$,.0f"))
    y = alt.Y("outcome:Q", title=outcome_label, scale=y_scale, axis=alt.Axis(format=value_format(kind, axis=True)))
    base = alt.Chart(data).encode(tooltip=tips)
    names = QUADRANT_LABELS[lang]
    layers: list[alt.Chart] = [
        base.mark_rule(color="#BBBBBB", strokeWidth=1.5).encode(
            x=alt.X("cost_lower:Q", scale=x_scale), x2="cost_upper:Q", y=y
        ),
        base.mark_rule(color="#BBBBBB", strokeWidth=1.5).encode(
            y=alt.Y("outcome_lower:Q", scale=y_scale), y2="outcome_upper:Q", x=x
        ),
    ]
    if cost_target is not None and np.isfinite(float(cost_target)):
        layers.append(_target_rule(float(cost_target), "cost", lang, channel="x"))
    if outcome_target is not None and np.isfinite(float(outcome_target)):
        layers.append(
            _target_rule(float(outcome_target), kind, lang, channel="y", magnitude=_magnitude(data["outcome"]))
        )
    layers.append(
        base.mark_point(filled=True, size=220, opacity=1).encode(
            x=x,
            y=y,
            color=alt.Color(
                "quadrant:N",
                title=label("quadrant", lang),
                scale=alt.Scale(domain=[names[q] for q in QUADRANTS], range=[QUADRANT_COLOURS[q] for q in QUADRANTS]),
                legend=alt.Legend(columns=2),
            ),
            stroke=alt.when(IS_HIGHLIGHT).then(alt.value(HIGHLIGHT_COLOUR)).otherwise(alt.value("#666666")),
            strokeWidth=alt.when(IS_HIGHLIGHT).then(alt.value(3.5)).otherwise(alt.value(0.8)),
        )
    )
    # every unit is labelled when there are few; the own unit always, in bold
    shown = [(f"!({IS_HIGHLIGHT})", "normal")] if len(data) <= 25 else []
    for predicate, weight in [*shown, (IS_HIGHLIGHT, "bold")]:
        layers.append(
            alt.Chart(data[["unit", "cost", "outcome"]])
            .transform_filter(predicate)
            .mark_text(align="left", dx=11, dy=-10, fontSize=FONT_SIZES["text"], fontWeight=weight, color="#222222")
            .encode(x=alt.X("cost:Q", scale=x_scale), y=alt.Y("outcome:Q", scale=y_scale), text=alt.Text("unit:N"))
        )
    chart = alt.layer(*layers).properties(width=720, height=480, title=_title(title, label("value_sub", lang)))
    return _finish(chart, lang, highlight=highlight)


__all__ = [
    "ASSESSMENTS",
    "LABELS",
    "MAX_ROWS",
    "MAX_SERIES_POINTS",
    "PALETTE",
    "QUADRANT_COLOURS",
    "caterpillar_chart",
    "cost_breakdown_chart",
    "crude_vs_adjusted_chart",
    "cusum_chart",
    "funnel_chart",
    "histogram",
    "label",
    "prom_change_chart",
    "prom_response_chart",
    "score_distribution_chart",
    "scorecard_colour",
    "scorecard_text_colour",
    "small_multiples_chart",
    "thin_series",
    "trend_chart",
    "value_chart",
    "value_format",
]
