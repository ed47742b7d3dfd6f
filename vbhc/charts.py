"""Vega-Lite chart specs for the dashboard and the reports, built as plain dicts.

Every builder takes tables that vbhc has already computed (the indicator table, a funnel curve, an SPC frame,
a CUSUM/VLAD frame, a cost breakdown, the value view) and only draws them: no statistic is computed here.
The only data work is selecting columns, translating labels, normalising histogram counts to shares and
thinning long per-cycle series so that a chart never carries more than a few thousand rows (Streamlit ships a
chart's whole data to the browser).

The specs are written directly as Vega-Lite JSON (no Altair objects: building them takes about a millisecond
per chart, and nothing in the process is patched). tests/test_charts.py validates every spec against the
Vega-Lite JSON schema that the installed Altair ships and renders every chart with vl-convert at the page's
widths to check that titles, legends and labels stay on the canvas.

Made for a big screen in a meeting: large fonts, short titles (the page's section heading names the
indicator), no frame around the plot, and the colour-blind-safe Okabe–Ito palette. Colour means the same
everywhere: blue = better than the benchmark, vermillion = worse, grey = as expected, light grey = too few
cycles to judge; the own unit is drawn as a diamond outlined in black and its label is bold. Units are coloured
by their assessment at the 99.8% limits (`assessment_998`), cost and PROM response at the 95% limits as the
verdict judges them (vbhc.verdict.DECIDE_AT_95), unless a builder is told otherwise.

Width: every builder takes ``width``, the pixels the chart may use (the page's content width: 940 px
on a 1440 px screen, about 360 px on a phone). Single views fit it exactly (``autosize: fit-x``, which
Streamlit's stretched charts use too); concatenated panels choose their number of columns from it; titles
are wrapped and legends broken into columns to stay inside it. The server never knows the viewport: pages
build for the full width and Streamlit stretches a fitted chart to its container, a phone's too. So one spec
holds from 360 to 940 px: it reads the container's width when Vega starts (the ``phone`` parameter) and takes
smaller fonts, fewer legend columns and shorter label room in a phone's; its title lines are wrapped to hold
at both sizes, and the own unit's name is kept inside the plot.

Language: every builder takes ``lang`` ("en" or "nl"). Every text comes from the message catalog
(vbhc/i18n/en.toml and nl.toml, ``[chart.label]``, ``[assessment]``, ``[quadrant]``); an indicator's own name
comes from the table's ``label_en``/``label_nl`` columns. Numbers are formatted with d3-format strings and
every chart carries its language's number and time locale (``config.locale``, from Babel's nl_NL and en_GB
data), applied by Vega per view to axes and to ``format()`` in tooltips and text.

Every builder returns a :class:`Spec` (a dict; ``to_dict()`` is kept for callers written for Altair charts).
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import textwrap
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from vbhc.catalog import BINARY_KINDS, DAYS_PER_YEAR, PROPORTION_KINDS, SURVIVAL_KINDS
from vbhc.i18n import BABEL_LOCALES, MINUS, fmt_date, fmt_number, fmt_percent, format_value, t
from vbhc.verdict import DECIDE_AT_95

if TYPE_CHECKING:  # the improvement cycle's items; this module draws them and needs no database
    from vbhc.models import ImprovementAction, ImprovementTarget

# --------------------------------------------------------------------------------------------- constants

#: Vega-Lite version the specs are written for (the one the installed Altair and vl-convert support).
SCHEMA_URL = "https://vega.github.io/schema/vega-lite/v6.4.1.json"
#: The dashboard's content width on a 1440 px screen (layout="wide", ui/layout.py MAIN_WIDTH), the default chart
#: width: charts of several panels (small multiples, facets) are not stretched, so wider would be cut at the right.
DEFAULT_WIDTH = 940
#: The narrowest container a chart gets on a desktop (half the content width: two charts side by side). Titles
#: are wrapped and legends broken into columns for at most this width, so a chart built for the full width
#: still holds when the page puts it in a column (Streamlit stretches it to the column).
COLUMN_WIDTH = 520
#: Below this width the fonts are smaller (a phone).
NARROW = 640
#: A container narrower than this is a phone's. Pages build every chart for the full content width and Streamlit
#: stretches it to its container (the spec's `width` becomes the container's), so the server never knows the
#: viewport: a fitted chart reads the container's width once when Vega starts (the parameter PHONE_PARAM) and takes
#: the phone's font sizes, legend columns and label room from it; its lines are wrapped to hold at both.
PHONE_WIDTH = 480
PHONE_PARAM = "phone"
#: A container narrower than the width a fitted chart was built for (a column of the page, or a phone's): read
#: once as PHONE_PARAM is, so a title keeps the built width's long lines where they fit and is broken into a
#: column's (or a phone's) shorter lines only where they would not.
NARROWED_PARAM = "narrowed"
#: The room a phone's 360 px container gives a chart's title lines, its plot (less the y axis) and a bottom legend.
PHONE_TEXT, PHONE_PLOT, PHONE_LEGEND = 340, 250, 250
#: A phone's container (a 360 px screen less Streamlit's margins is less, a 390 px one more: the width the
#: phone's room above is reckoned for).
PHONE_CONTAINER = 360
#: A chart that cannot be stretched (a grid of panels) and must read on a phone is built no wider than this.
PHONE_FIXED_WIDTH = 350
#: Every dataset of a chart stays below this many rows.
MAX_ROWS = 5000
#: Long per-cycle series (CUSUM, VLAD) are thinned to about this many rows.
MAX_SERIES_POINTS = 2000

LANGS = ("en", "nl")

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
#: Target lines (vbhc.improvement targets, by TargetKind value): the team's own goal and an external norm, told
#: apart by colour (Okabe–Ito bluish green and orange, free of the assessment colours) and by dash.
TARGET_STYLES: dict[str, tuple[str, list[int]]] = {
    "team_goal": ("#009E73", [10, 4]),
    "external_norm": ("#E69F00", [3, 3]),
}
ACTION_COLOUR = "#000000"  # an improvement action's start: a dotted rule with the action's title
ACTION_DASH = [2, 4]
BACKGROUND = "#FFFFFF"  # the charts' background (Vega's default, and the PNG export's)
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
#: On a phone (width below NARROW).
FONT_SIZES_NARROW = {"title": 18, "subtitle": 13, "axis_label": 12, "axis_title": 13, "legend": 12, "text": 12}
#: The least room (px) between two neighbouring labels of a quantitative axis: closer, Vega leaves every other
#: one out (axis labelSeparation with labelOverlap), so numbers never run together.
LABEL_GAP = 10
#: Average glyph width as a share of the font size, to estimate text widths (a little generous).
GLYPH = 0.6
#: Bold glyphs are about this much wider than normal ones: the own unit's name is bold, so the room a name may
#: take when its unit is the own one is estimated with it.
BOLD = 1.1


def _fonts(width: int) -> dict[str, int]:
    return FONT_SIZES_NARROW if width < NARROW else FONT_SIZES


def _on_phone(phone: Any, wide: Any) -> dict[str, str]:
    """A property's value (an ExprRef) that is `phone` in a phone's container and `wide` in any other."""
    return {"expr": f"{PHONE_PARAM} ? {json.dumps(phone)} : {json.dumps(wide)}"}


def _by_container_fields(**fields: str) -> list[dict[str, str]]:
    """Transforms that set each field (the keyword) to its row's layout for the container that draws the chart:
    a phone's (`phone_x`), a container narrower than the chart was built for (`wide_x`: placed for the narrowest
    such) or one at least as wide (`built_x`: placed for the built plot, as the PDF report and a screen as wide as
    the page draw it). Why the third: placed for the narrowest container alone, a long name found no spot there
    clear of the points and the lines, and lay across the benchmark line in the PDF's 940 px funnel, where
    there was room."""
    return [
        {
            "calculate": f"{PHONE_PARAM} ? datum.phone{suffix} : {NARROWED_PARAM} ? datum.wide{suffix}"
            f" : datum.built{suffix}",
            "as": field,
        }
        for field, suffix in fields.items()
    ]


def _on_phone_fields(**fields: str) -> list[dict[str, str]]:
    """Transforms that set each field (the keyword) to its row's phone value in a phone's container and to its
    wide value in any other: `text="_x"` reads the row's `phone_x` or `wide_x` (`""`: `phone` or `wide`)."""
    return [
        {"calculate": f"{PHONE_PARAM} ? datum.phone{suffix} : datum.wide{suffix}", "as": field}
        for field, suffix in fields.items()
    ]


def _responsive(key: str, narrow: bool) -> Any:
    """The font size FONT_SIZES[key]: the phone's in a chart built narrow, else chosen by the container."""
    return FONT_SIZES_NARROW[key] if narrow else _on_phone(FONT_SIZES_NARROW[key], FONT_SIZES[key])


def _text_px(text: str, size: float, *, bold: bool = False) -> float:
    return len(str(text)) * size * GLYPH * (BOLD if bold else 1.0)


# ------------------------------------------------------------------------------------------------ labels


def label(key: str, lang: str = "en") -> str:
    """A chart text in the given language, from the message catalog (``chart.label.<key>``)."""
    return t(f"chart.label.{key}", _check_lang(lang))


def _check_lang(lang: str) -> str:
    if lang not in LANGS:
        raise ValueError(f"lang must be one of {LANGS}, not {lang!r}")
    return lang


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


class _Catalogued(dict):
    """{lang: {code: display name}} read from the catalog section `section` on first use."""

    def __init__(self, section: str, codes: Sequence[str]) -> None:
        super().__init__()
        self._section, self._codes = section, tuple(codes)

    def __missing__(self, lang: str) -> dict[str, str]:
        names = {code: t(f"{self._section}.{_slug(code)}", _check_lang(lang)) for code in self._codes}
        self[lang] = names
        return names


#: Display names of the assessments (vbhc/i18n [assessment]), per language.
ASSESSMENT_LABELS: dict[str, dict[str, str]] = _Catalogued("assessment", ASSESSMENTS)
#: Display names of the value quadrants (vbhc/i18n [quadrant]), per language.
QUADRANT_LABELS: dict[str, dict[str, str]] = _Catalogued("quadrant", QUADRANTS)


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
    for names in (ASSESSMENT_LABELS[lang] for lang in LANGS):
        for code, name in names.items():
            if key == name.lower():
                return PALETTE[code]
    return PALETTE[NO_DATA]


def scorecard_text_colour(assessment: object) -> str:
    """A readable text colour on top of scorecard_colour(assessment): white on blue/vermillion, else black."""
    return "#FFFFFF" if scorecard_colour(assessment) in (PALETTE[BETTER], PALETTE[WORSE]) else "#000000"


#: Share of the palette colour in a table cell's background (the rest is white). A solid palette colour behind
#: a sentence is heavy and hard to read (black on #999999 is a grey block); a light tint keeps dark text at WCAG
#: AA contrast, and the cell's left edge carries the full colour, so the table still matches the charts.
TINT_SHARE = 0.2
#: Text on a tinted cell: near-black, at least 4.5:1 on every tint (tests/test_charts.py checks it).
TINT_TEXT_COLOUR = "#1A1A1A"


def _rgb(colour: str) -> tuple[int, int, int]:
    value = colour.lstrip("#")
    return int(value[0:2], 16), int(value[2:4], 16), int(value[4:6], 16)


def contrast_ratio(foreground: str, background: str) -> float:
    """WCAG 2 contrast ratio of two ``#RRGGBB`` colours (1 to 21; AA asks 4.5 for body text)."""

    def luminance(colour: str) -> float:
        channels = [c / 255 for c in _rgb(colour)]
        r, g, b = (c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels)
        return 0.2126 * r + 0.7152 * g + 0.0722 * b

    light, dark = sorted((luminance(foreground), luminance(background)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def scorecard_tint(assessment: object) -> str:
    """The cell background of an assessment in a table: its palette colour at TINT_SHARE over white.

    Derived from PALETTE (one source of colour): blue and vermillion stay apart for colour-blind readers, and
    the text on top stays readable (TINT_TEXT_COLOUR)."""
    mixed = (round(255 - TINT_SHARE * (255 - c)) for c in _rgb(scorecard_colour(assessment)))
    return "#" + "".join(f"{c:02X}" for c in mixed)


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


def _axis(number_format: str, **extra: Any) -> dict[str, Any]:
    """An axis of numbers in `number_format`; one that rounds to whole numbers (counts, euros, whole percents)
    takes ticks at least one such step apart. Why: a narrow domain (a funnel of one unit, as a file with the
    other units withheld draws it: n from 74.6 to 75.4) got ticks 0.1 apart, each labelled "75"."""
    step = 1 if number_format.endswith(".0f") else 0.01 if number_format.endswith(".0%") else None
    if step is None:
        return {"format": number_format, **extra}
    # tickMinStep lowers the tick count only: d3 may still step by less (a span of 2 in 3 ticks: 0.5 apart), so a
    # tick between two whole steps is left unlabelled, never labelled as the step it rounds to
    whole = f"abs(datum.value / {step} - round(datum.value / {step})) < 1e-6"
    return {"format": number_format, "tickMinStep": step, "labelExpr": f"{whole} ? datum.label : ''", **extra}


def _magnitude(*arrays: Any) -> float:
    values = np.concatenate([np.asarray(a, dtype=float).ravel() for a in arrays]) if arrays else np.array([])
    values = values[np.isfinite(values)]
    return float(np.abs(values).max()) if values.size else float("nan")


def _format_number(x: float, lang: str, decimals: int = 1) -> str:
    """A number as text for a text mark or title (Vega formats everything else), in the language's locale, with
    the minus sign "−" Vega's axis labels have (the EQ-5D axis read "(-0,4–1, hoger is beter)" under ticks
    "−0,4")."""
    text = fmt_number(x, _check_lang(lang), decimals)
    return MINUS + text[1:] if text.startswith("-") else text


# ------------------------------------------------------------------------------------------ finishing


def _d3_date(pattern: str) -> str:
    """A Babel (CLDR) date pattern as a d3 time format: "dd-MM-y" -> "%d-%m-%Y"."""
    fields = {"dd": "%d", "d": "%e", "MM": "%m", "M": "%m", "yyyy": "%Y", "yy": "%y", "y": "%Y"}
    return re.sub(r"dd?|MM?|y+", lambda m: fields.get(m.group(), "%Y"), pattern)


@functools.cache
def locale(lang: str) -> dict[str, Any]:
    """Vega's number and time format locale of a language, from Babel's data for nl_NL / en_GB (euro as the
    currency in both)."""
    from babel import Locale
    from babel.dates import get_day_names, get_month_names, get_period_names
    from babel.numbers import get_decimal_symbol, get_group_symbol

    loc = Locale.parse(BABEL_LOCALES[_check_lang(lang)])
    pattern = loc.currency_formats["standard"].pattern.split(";")[0]
    prefix = re.match(r"[^#0,.]*", pattern).group().replace("¤", "€").replace("\xa0", " ")
    number = {
        "decimal": get_decimal_symbol(loc),
        "thousands": get_group_symbol(loc),
        "grouping": [3],
        "currency": [prefix, ""],
    }

    def plain(names: Any, order: Sequence[int]) -> list[str]:
        return [str(names[i]).rstrip(".") for i in order]

    sunday_first = [6, 0, 1, 2, 3, 4, 5]  # Babel counts from Monday, d3 from Sunday
    periods = get_period_names("abbreviated", locale=loc)
    time = {
        "dateTime": "%a %e %B %Y %X",
        "date": _d3_date(loc.date_formats["short"].pattern),
        "time": "%H:%M:%S",
        "periods": [str(periods.get("am", "AM")), str(periods.get("pm", "PM"))],
        "days": plain(get_day_names("wide", locale=loc), sunday_first),
        "shortDays": plain(get_day_names("abbreviated", locale=loc), sunday_first),
        "months": plain(get_month_names("wide", locale=loc), range(1, 13)),
        "shortMonths": plain(get_month_names("abbreviated", locale=loc), range(1, 13)),
    }
    return {"number": number, "time": time}


@functools.cache
def _config(lang: str, narrow: bool) -> dict[str, Any]:
    """Built once per language and size and shared (specs are only read). A chart built wide takes the phone's
    sizes in a phone's container (_on_phone)."""

    def f(key: str) -> Any:
        return _responsive(key, narrow)

    def pick(phone: Any, wide: Any) -> Any:
        return phone if narrow else _on_phone(phone, wide)

    return {
        "locale": locale(lang),
        "font": "sans-serif",
        "title": {
            "fontSize": f("title"),
            "subtitleFontSize": f("subtitle"),
            "subtitleColor": "#333333",
            "anchor": "start",
            "offset": 12,
        },
        "axis": {
            "labelFontSize": f("axis_label"),
            "titleFontSize": f("axis_title"),
            "titleFontWeight": "normal",
            "labelColor": "#222222",
            "titleColor": "#222222",
            "gridColor": "#EEEEEE",
            "domainColor": "#888888",
            "tickColor": "#888888",
            "labelLimit": pick(180, 260),
        },
        # the first and last labels inside the axis' extent, never past the canvas edge; labels closer than
        # LABEL_GAP px count as overlapping, so Vega drops every other one (parity) rather than let them touch
        # (a phone's cost axis: "€ 11.000 € 12.000 ..." read as one number)
        "axisQuantitative": {
            "tickCount": pick(5, 8),
            "labelOverlap": True,
            "labelSeparation": LABEL_GAP,
            "labelFlush": True,
        },
        "axisTemporal": {"labelOverlap": True},
        "legend": {
            "labelFontSize": f("legend"),
            "titleFontSize": f("legend"),
            "orient": "bottom",
            "direction": "horizontal",
            "symbolSize": pick(120, 180),
            "labelLimit": pick(280, 320),
            # several legends (e.g. limits and assessment) one below the other, never side by side off the canvas
            "layout": {"expr": "{'bottom': {'direction': 'vertical', 'anchor': 'start', 'margin': 10}}"},
        },
        "header": {"labelFontSize": f("axis_title"), "titleFontSize": f("axis_title")},
        "text": {"fontSize": f("text")},
        "view": {"stroke": None},
    }


class Spec(dict):
    """A finished Vega-Lite spec: a plain dict. ``to_dict()`` gives the spec itself (as Altair charts did), and
    with ``validate=True`` checks it against the Vega-Lite JSON schema first."""

    def to_dict(self, validate: bool = False) -> dict[str, Any]:
        if validate:
            validate_spec(self)
        return dict(self)


@functools.cache
def _validator() -> Any:
    """A JSON-schema validator for the Vega-Lite schema that the installed Altair ships (tests and to_dict), whose
    `anyOf` tries first the branches an instance can match (_likely_first).

    Why: the stock `anyOf` descends every branch in the schema's order until one holds, collecting all of a
    failing branch's errors first: a layer chart was checked in full as a unit spec before it was checked as a
    layer, and each of its layers as a layer spec before as a unit spec (four validations of a chart in ten went
    on such branches, ~50 ms a chart, the chart tests' largest cost after drawing). `anyOf` is an "or": a value
    is valid exactly when some branch holds whichever is tried first, and where none holds every branch is
    descended and the errors are given in the schema's order, so the answer and the error are the stock ones."""
    from importlib import resources

    import jsonschema

    text = resources.files("altair.vegalite.v6.schema").joinpath("vega-lite-schema.json").read_text("utf-8")
    schema = json.loads(text)
    stock = jsonschema.validators.validator_for(schema)
    definitions = schema.get("definitions", {})

    def any_of(validator: Any, branches: list, instance: Any, _schema: dict) -> Iterable[Any]:
        errors: dict[int, list[Any]] = {}
        for index in sorted(range(len(branches)), key=lambda i: _likely_first(branches[i], instance, definitions)):
            found = list(validator.descend(instance, branches[index], schema_path=index))
            if not found:
                return
            errors[index] = found
        yield jsonschema.ValidationError(
            f"{instance!r} is not valid under any of the given schemas",
            context=[e for index in range(len(branches)) for e in errors[index]],
        )

    return jsonschema.validators.extend(stock, {"anyOf": any_of})(schema)


def _likely_first(branch: Any, instance: Any, definitions: dict[str, Any]) -> int:
    """0 where an object `instance` may match the schema `branch` (its definition followed through "$ref"), 1 where
    it lacks a required key or has a key the branch does not allow, 2 where the branch is not an object's (a bare
    anyOf: its best branch's); 0 for any other instance (the schema's order kept). Only the order in which
    _validator's anyOf tries the branches depends on it."""
    for _ in range(32):  # a chain of references, followed as far as it goes (no cycle in the schema's refs)
        if not (isinstance(branch, dict) and isinstance(branch.get("$ref"), str)):
            break
        branch = definitions.get(branch["$ref"].removeprefix("#/definitions/"), {})
    if not isinstance(instance, dict) or not isinstance(branch, dict):
        return 0
    if isinstance(branch.get("anyOf"), list) and not {"type", "required", "properties"} & set(branch):
        return min((_likely_first(b, instance, definitions) for b in branch["anyOf"]), default=0)  # its best
    kind = branch.get("type")
    if kind is not None and kind != "object" and not (isinstance(kind, list) and "object" in kind):
        return 2
    if any(key not in instance for key in branch.get("required", ())):
        return 1
    allowed = branch.get("properties")
    if branch.get("additionalProperties") is False and isinstance(allowed, dict):
        return 1 if any(key not in allowed for key in instance) else 0
    return 0


def _schema_view(node: Any) -> Any:
    """`node` with each title's subtitle expression (see _title) replaced by the lines it picks at the built
    width: the schema types a subtitle as text though Vega-Lite compiles an expression there."""
    if isinstance(node, list):
        return [_schema_view(v) for v in node]
    if not isinstance(node, dict):
        return node
    out = {k: _schema_view(v) for k, v in node.items()}
    title = out.get("title")
    if isinstance(title, dict) and isinstance(title.get("subtitle"), dict) and "expr" in title["subtitle"]:
        out["title"] = {**title, "subtitle": _built_lines(title["subtitle"])}
    return out


def validate_spec(spec: dict[str, Any]) -> None:
    """Raise jsonschema.ValidationError when `spec` is not valid Vega-Lite (the schema Altair ships)."""
    plain = _schema_view(json.loads(json.dumps(spec, allow_nan=False)))
    error = next(iter(_validator().iter_errors(plain)), None)
    if error is not None:
        raise error


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as JSON-ready dicts: NaN/NaT/inf as null, dates as ISO text, numpy scalars as Python values."""
    columns: dict[str, list[Any]] = {}
    for name in frame.columns:
        col = frame[name]
        if pd.api.types.is_datetime64_any_dtype(col):
            text = col.dt.strftime("%Y-%m-%dT%H:%M:%S")
            values = [None if v is None or v != v else v for v in text.tolist()]
        elif pd.api.types.is_bool_dtype(col) and col.dtype != object:
            values = col.tolist()
        elif pd.api.types.is_numeric_dtype(col) and col.dtype != object:
            arr = col.to_numpy(dtype=float, na_value=np.nan)
            ok = np.isfinite(arr)
            if pd.api.types.is_integer_dtype(col):
                values = [int(v) if k else None for v, k in zip(arr.tolist(), ok.tolist(), strict=True)]
            else:
                values = [v if k else None for v, k in zip(arr.tolist(), ok.tolist(), strict=True)]
        else:
            values = [_plain(v) for v in col.tolist()]
        columns[str(name)] = values
    keys = list(columns)
    return [dict(zip(keys, row, strict=True)) for row in zip(*columns.values(), strict=True)]


def _plain(value: Any) -> Any:
    if value is None or value is pd.NaT or value is pd.NA:
        return None
    if isinstance(value, float):
        return value if np.isfinite(value) else None
    if isinstance(value, np.generic):
        return _plain(value.item())
    if isinstance(value, pd.Timestamp):
        return value.strftime("%Y-%m-%dT%H:%M:%S")
    return value


class _Data:
    """The datasets of one spec, each named after a hash of its rows (equal data is stored once)."""

    def __init__(self) -> None:
        self.sets: dict[str, list[dict[str, Any]]] = {}

    def __call__(self, frame: pd.DataFrame | list[dict[str, Any]], *, prefix: str = "data") -> dict[str, str]:
        rows = frame if isinstance(frame, list) else _records(frame)
        digest = hashlib.sha1(json.dumps(rows, sort_keys=True, default=str).encode(), usedforsecurity=False)
        name = f"{prefix}-{digest.hexdigest()[:16]}"
        self.sets[name] = rows
        return {"name": name}


def _wrap(text: str, size: float, width: float, phone: float | None = None, phone_size: float = 0) -> str | list[str]:
    """Text broken into lines that fit `width` px at `size` px (one string when it fits on one line), and with
    `phone` also `phone` px at `phone_size` px: one set of lines for a chart a phone draws stretched to its
    container at the phone's fonts (titles cannot be chosen by an expression: a subtitle takes no ExprRef)."""
    per_line = max(8, int(width / (size * GLYPH)))
    if phone is not None:
        per_line = min(per_line, max(8, int(phone / (phone_size * GLYPH))))
    if len(text) <= per_line:
        return text
    return textwrap.wrap(text, per_line, break_long_words=True)


def _stretched(width: int) -> bool:
    """A chart built this wide takes a phone's fonts in a phone's container (see PHONE_WIDTH)."""
    return width >= NARROW


def _fitting(text: str, key: str, width: int, room: float, phone_room: float) -> str | list[str]:
    """`text` in the font of FONT_SIZES[key] wrapped to `room` px and, for a chart that a phone may draw
    stretched, to `phone_room` px at the phone's font too."""
    size = _fonts(width)[key]
    if not _stretched(width):
        return _wrap(text, size, room)
    return _wrap(text, size, room, phone_room, FONT_SIZES_NARROW[key])


def _title_text(text: str, width: int, key: str = "title") -> str | list[str] | dict[str, str]:
    """A chart title's (or with `key="subtitle"` its subtitle's) lines: for a chart that may be stretched, the lines
    of the width it is built for, of a column (COLUMN_WIDTH) and of a phone, each picked by the container it is drawn
    in. Why: one set of lines for all three broke a meeting screen's title at ~250 px ("Alle eenheden naar / aantal
    zorgtrajecten" over a 940 px chart), and its subtitle, wrapped for a phone's 340 px, stood in short lines over
    a 940 px chart on a 1440 px screen."""
    size = _fonts(width)[key]
    if not _stretched(width):
        return _wrap(text, size, min(width, COLUMN_WIDTH) - 10)
    wide, column = _wrap(text, size, width - 10), _wrap(text, size, COLUMN_WIDTH - 10)
    phone = _wrap(text, FONT_SIZES_NARROW[key], PHONE_TEXT)
    if wide == column == phone:
        return wide
    return {
        "expr": f"{PHONE_PARAM} ? {json.dumps(phone)} : {NARROWED_PARAM} ? {json.dumps(column)} : {json.dumps(wide)}"
    }


def _built_lines(text: Any) -> str | list[str]:
    """The lines of a title's text or subtitle that a reader of the built width sees: the last choice of an
    expression that picks them by the container ({"expr": "phone ? <json> : narrowed ? <json> : <json>"})."""
    if isinstance(text, dict):
        expr, decoder, at = text["expr"], json.JSONDecoder(), 0
        for prefix in (f"{PHONE_PARAM} ? ", f" : {NARROWED_PARAM} ? ", " : "):
            text, at = decoder.raw_decode(expr, at + len(prefix))
    return text


def title_lines(title: Any, key: str = "text") -> str:
    """A spec's title text (`key="subtitle"`: its subtitle) as a reader of the built width sees it, in one line
    (the last choice of an expression that picks the lines by the container): for tests and texts that name a
    chart."""
    text = title.get(key, "") if isinstance(title, dict) else title if key == "text" else ""
    text = _built_lines(text)
    return " ".join(text) if isinstance(text, list) else str(text or "")


def _title(text: str | None, subtitle: str | None, width: int, *, size: int | None = None) -> dict[str, Any]:
    """A title anchored left, wrapped so that nothing is cut or truncated: the title and the subtitle to the
    container they are drawn in (_title_text). A title of its own `size` (a panel's) keeps it and is wrapped to
    `width` (at most COLUMN_WIDTH) only.

    The subtitle's expression: Vega-Lite's JSON schema types a subtitle as text only, but its compiler turns an
    ExprRef there into a Vega signal as it does the title's text (Vega's title takes a signal for either);
    validate_spec checks such a spec with the built width's lines in place of the expression."""
    room = min(width, COLUMN_WIDTH) - 10
    if size:
        out: dict[str, Any] = {"text": _wrap(text, size, room) if text else "", "anchor": "start", "fontSize": size}
    else:
        out = {"text": _title_text(text, width) if text else "", "anchor": "start"}
    if subtitle:
        out["subtitle"] = _title_text(subtitle, width, "subtitle") if not size else _wrap(subtitle, size, room)
    return out


def _legend_fit(names: Sequence[str], size: float, room: float) -> tuple[int, int]:
    """Columns and label limit of a bottom legend of `names` at `size` px in `room` px right of its start."""
    longest = max((_text_px(n, size) for n in names), default=60)
    columns = int(max(1, min(len(names) or 1, (room - 30) // (longest + 40))))
    # a label as long as it needs while it fits the whole width (labels cut with "…" are not read)
    return columns, int(max(80, min(longest + 10, room + 70)))


def _legend(names: Sequence[str], width: int, **extra: Any) -> dict[str, Any]:
    """A bottom legend with as many columns as fit `width` (one row of items would run off a narrow canvas), and
    as fit a phone's container in one."""
    # a bottom legend starts at the plot's left edge, right of the y axis' labels and title
    columns, limit = _legend_fit(names, _fonts(width)["legend"], min(width, COLUMN_WIDTH) - 130)
    if not _stretched(width):
        return {"columns": columns, "labelLimit": limit, **extra}
    phone_columns, phone_limit = _legend_fit(names, FONT_SIZES_NARROW["legend"], PHONE_LEGEND)
    return {"columns": _on_phone(phone_columns, columns), "labelLimit": _on_phone(phone_limit, limit), **extra}


def _axis_title(text: str, width: int) -> str | list[str]:
    """An x-axis title wrapped to the plot's width (the chart's width less the y axis' labels), and a phone's."""
    return _fitting(text, "axis_title", width, min(width, COLUMN_WIDTH) - 140, PHONE_PLOT)


def _guard(frame: pd.DataFrame, what: str) -> pd.DataFrame:
    if len(frame) > MAX_ROWS:
        raise ValueError(
            f"{what}: {len(frame)} rows is too many for a chart (limit {MAX_ROWS}); aggregate before charting"
        )
    return frame


#: The own unit is a Vega-Lite parameter, not a data column, so one built chart serves every unit: a page
#: caches the spec and only swaps the parameter's value (with_highlight) when the viewer picks another unit.
HIGHLIGHT_PARAM = "highlight_unit"
IS_HIGHLIGHT = f"datum.unit === {HIGHLIGHT_PARAM}"
_NO_HIGHLIGHT = object()


def _finish(
    body: dict[str, Any],
    data: _Data,
    lang: str,
    width: int,
    *,
    highlight: object = _NO_HIGHLIGHT,
    fit: bool = True,
) -> Spec:
    """The top-level spec: schema, datasets, the language's locale and big-screen styling, fitted to `width`
    (single and layered views; concatenations size their panels themselves), and for charts that mark the own
    unit the highlight parameter."""
    spec = Spec({"$schema": SCHEMA_URL})
    if fit:
        spec["autosize"] = {"type": "fit-x", "contains": "padding"}
        spec["width"] = int(width)
    spec.update(body)
    # a phone's container: read from the stretched spec's width once, before Vega fits the plot to it (react:
    # false, so the fonts it picks never feed back into the plot's width); a concatenation keeps the built width
    phone = {"expr": f"width < {PHONE_WIDTH}", "react": False} if fit else {"value": width < PHONE_WIDTH}
    narrowed = {"expr": f"width < {int(width)}", "react": False} if fit else {"value": False}
    spec["params"] = [*spec.get("params", []), {"name": PHONE_PARAM, **phone}, {"name": NARROWED_PARAM, **narrowed}]
    if highlight is not _NO_HIGHLIGHT:
        value = None if highlight is None else str(highlight)
        spec["params"] = [*spec["params"], {"name": HIGHLIGHT_PARAM, "value": value}]
    spec["config"] = _config(lang, width < NARROW)
    spec["datasets"] = data.sets
    return spec


def with_width(spec: dict[str, Any], width: int) -> dict[str, Any]:
    """A fitted chart's spec drawn `width` px wide (what a stretched chart in a container of that width does)."""
    return {**spec, "width": int(width)} if "autosize" in spec else dict(spec)


def _empty_chart(title: str, lang: str, width: int = DEFAULT_WIDTH) -> Spec:
    data = _Data()
    body = {
        "title": _title(title, None, width),
        "height": 120,
        "data": data([{"text": label("no_data_text", lang)}]),
        "mark": {"type": "text", "fontSize": 20, "color": "#666666"},
        "encoding": {"text": {"field": "text", "type": "nominal"}},
    }
    return _finish(body, data, lang, width)


def prepare() -> None:
    """Warm-up at server start: the language catalogs, the locales and the configurations are read once."""
    for lang in LANGS:
        for narrow in (False, True):
            _config(lang, narrow)
        ASSESSMENT_LABELS[lang]
        QUADRANT_LABELS[lang]


def with_highlight(spec: dict[str, Any], highlight: str | None) -> dict[str, Any]:
    """A finished chart's spec with another own unit highlighted; the input is not changed."""
    value = None if highlight is None else str(highlight)
    params = [dict(p, value=value) if p.get("name") == HIGHLIGHT_PARAM else p for p in spec.get("params", [])]
    return {**spec, "params": params}


def chart_table(spec: dict[str, Any]) -> pd.DataFrame:
    """The data a chart draws, as a table for a CSV download: its main dataset (the one with the most columns:
    the units, the series or the histogram, not a benchmark line nor a target or action drawn over it), columns
    named as in the chart's tooltips
    (so in the viewer's language); columns the chart only uses internally are left out."""
    sets = [
        rows
        for name, rows in (spec.get("datasets") or {}).items()
        if isinstance(rows, list) and rows and not str(name).startswith((f"{NOTE_PREFIX}-", f"{NAMES_PREFIX}-"))
    ]
    if not sets:
        return pd.DataFrame()
    rows = max(sets, key=lambda r: (len(r[0]), len(r)))
    frame = pd.DataFrame(rows)
    titles: dict[str, str] = {}

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            tips = node.get("tooltip")
            for tip in tips if isinstance(tips, list) else []:
                if isinstance(tip, dict) and tip.get("field") and str(tip.get("title", "")).strip():
                    titles.setdefault(tip["field"], str(tip["title"]).strip())
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(spec)
    keep = [c for c in frame.columns if c in titles] or list(frame.columns)
    out = frame[keep]
    return out.rename(columns={c: titles[c] for c in keep if c in titles})


def chart_png(spec: dict[str, Any], *, scale: float = 2.0) -> bytes:
    """The chart as a PNG image (vl-convert: no browser, no network; the data is inside the spec)."""
    from vbhc.drawing import vl_convert

    return vl_convert().vegalite_to_png(spec, scale=scale)


@functools.cache
def _png_renderer() -> str:
    from importlib.metadata import version

    return f"vl-convert-python {version('vl-convert-python')}, chart_png"


def chart_png_digest(spec: dict[str, Any], *, scale: float = 2.0) -> str:
    """What chart_png's picture depends on, as a SHA-256: the spec (its data is inline, so whatever a viewer may see
    is in it), the scale and the drawer's version. Equal digests draw the same PNG, so a kept PNG stands for a new
    drawing (ui.data.kept_chart); any other data, language or highlighted unit is another digest. Tagged apart from
    a report's chart (vbhc.reports.pdf.chart_digest: drawn at another scale and stored as RGB)."""
    text = json.dumps([spec, scale, _png_renderer()], sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


# ------------------------------------------------------------------------------------------ encodings

_DEFAULT: Any = object()  # a title not given: Vega-Lite's own (the field name); None is no title


def _q(field: str, title: Any = _DEFAULT, **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"field": field, "type": "quantitative"}
    if title is not _DEFAULT:
        out["title"] = title  # None: no title
    out.update(extra)
    return out


def _n(field: str, title: Any = _DEFAULT, **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"field": field, "type": "nominal"}
    if title is not _DEFAULT:
        out["title"] = title  # None: no title
    out.update(extra)
    return out


def _tip(field: str, type_: str, title: str, fmt: str | None = None) -> dict[str, Any]:
    out = {"field": field, "type": type_, "title": title}
    if fmt:
        out["format"] = fmt
    return out


def _scale(domain: list[float] | None, *, zero: bool) -> dict[str, Any]:
    return {"domain": domain, "zero": zero, "nice": False} if domain else {"zero": zero}


def _when_highlight(then: Any, otherwise: Any) -> dict[str, Any]:
    return {"condition": {"test": IS_HIGHLIGHT, "value": then}, "value": otherwise}


def _highlight_weight() -> dict[str, str]:
    """Axis label weight: the own unit (the highlight parameter) in bold."""
    return {"expr": f"datum.value === {HIGHLIGHT_PARAM} ? 'bold' : 'normal'"}


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


def _judged(rows: pd.DataFrame, assessment: str) -> np.ndarray:
    """Each row's assessment for its colour, decided as the verdict decides it (vbhc.verdict): the default
    "assessment_998" takes "assessment_95" for the kinds judged at the 95% limits (cost, PROM response), so a
    cost the scorecard colours "worse" is not drawn "as expected" in the chart beside it."""
    if assessment not in rows.columns:
        return np.full(len(rows), NO_DATA, dtype=object)
    values = rows[assessment].to_numpy(dtype=object)
    if assessment == "assessment_998" and "assessment_95" in rows.columns and "kind" in rows.columns:
        at_95 = rows["kind"].isin(DECIDE_AT_95).to_numpy()
        values = np.where(at_95, rows["assessment_95"].to_numpy(dtype=object), values)
    return values


def _assessment_labels(values: pd.Series | np.ndarray, lang: str) -> np.ndarray:
    names = ASSESSMENT_LABELS[lang]
    raw = pd.Series(np.asarray(values, dtype=object), dtype=object)
    return raw.where(raw.isin(list(ASSESSMENTS)), NO_DATA).map(names).to_numpy(dtype=object)


def _assessment_scale(lang: str) -> dict[str, Any]:
    names = ASSESSMENT_LABELS[lang]
    return {"domain": [names[a] for a in ASSESSMENTS], "range": [PALETTE[a] for a in ASSESSMENTS]}


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
    assess = _judged(rows, assessment)
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


def _sort_units(frame: pd.DataFrame, direction: str | None) -> list[str]:
    """Units ordered best first (by value, in the indicator's direction); units without a value last."""
    ascending = direction == "lower"
    ordered = frame.sort_values(["value", "unit"], ascending=[ascending, True], na_position="last", kind="stable")
    return ordered["unit"].tolist()


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


def _indicator_groups(rows: pd.DataFrame) -> list[pd.DataFrame]:
    if "indicator" not in rows.columns:
        return [rows]
    codes, _ = pd.factorize(rows["indicator"])  # in order of appearance
    positions = np.argsort(codes, kind="stable")
    positions = positions[codes[positions] >= 0]  # rows without an indicator are not drawn
    bounds = np.flatnonzero(np.diff(codes[positions])) + 1
    return [rows.iloc[part] for part in np.split(positions, bounds) if len(part)]


def _unit_tooltips(
    kind: str, lang: str, *, value: str = "adjusted", crude: bool = False, magnitude: float | None = None
) -> list[dict[str, Any]]:
    """Unit, n, observed, expected, value and its 95% CI (and O/E), each in its kind's number format (events
    and expected events as counts for yes/no indicators; deaths and expected deaths, and the SMR, for survival)."""
    binary = kind in BINARY_KINDS or kind in SURVIVAL_KINDS
    own = value_format(kind, magnitude=magnitude)
    fmt = value_format("oe") if value == "oe" else own
    tips = [
        _tip("unit", "nominal", label("unit", lang)),
        _tip("n", "quantitative", label("n", lang), ",.0f"),
        _tip("observed", "quantitative", label("observed", lang), ",.0f" if binary else own),
    ]
    if kind != "response_rate":
        tips.append(_tip("expected", "quantitative", label("expected", lang), ",.1f" if binary else own))
    if crude:
        tips.append(_tip("crude", "quantitative", label("crude", lang), own))
    tips += [
        _tip("value", "quantitative", label("oe" if value == "oe" else "adjusted", lang), fmt),
        _tip("lower", "quantitative", label("ci_lower", lang), fmt),
        _tip("upper", "quantitative", label("ci_upper", lang), fmt),
    ]
    if value != "oe" and binary:
        tips.append(_tip("oe", "quantitative", label("oe", lang), value_format("oe")))
    tips.append(_tip("assessment", "nominal", label("assessment", lang)))
    return tips


def _assessment_colour(lang: str, legend: bool | Sequence[str], width: int) -> dict[str, Any]:
    """Colour by assessment; the legend lists only the assessments present (in palette order), or is left out."""
    names = ASSESSMENT_LABELS[lang]
    out = _n("assessment", label("assessment", lang), scale=_assessment_scale(lang))
    if legend is False:
        out["legend"] = None
    else:
        present = set(legend) if legend is not True else set(names.values())
        shown = [names[a] for a in ASSESSMENTS if names[a] in present]
        out["legend"] = _legend(shown, width, values=shown)
    return out


def _points(
    data: dict[str, str],
    encoding: dict[str, Any],
    lang: str,
    width: int,
    *,
    size: int = 170,
    legend: bool | Sequence[str] = True,
) -> dict[str, Any]:
    """Units as filled circles coloured by assessment; the own unit a larger diamond outlined in black."""
    return {
        "data": data,
        "transform": [_who(lang)],
        "mark": {"type": "point", "filled": True, "opacity": 1},
        "encoding": {
            **encoding,
            "color": _assessment_colour(lang, legend, width),
            "shape": _who_shape(lang, width, legend is not False),
            "size": _when_highlight(int(size * 1.8), size),
            "stroke": _when_highlight(HIGHLIGHT_COLOUR, "#666666"),
            "strokeWidth": _when_highlight(3, 0.8),
        },
    }


def _who(lang: str) -> dict[str, str]:
    """A calculated field naming the own unit (the highlight parameter) and the others, for the shape legend."""
    own, other = json.dumps(label("own_unit", lang)), json.dumps(label("other_units", lang))
    return {"calculate": f"{IS_HIGHLIGHT} ? {own} : {other}", "as": "who"}


def _who_shape(lang: str, width: int, legend: bool = True) -> dict[str, Any]:
    """The own unit a diamond, the others circles, with a legend entry for each."""
    names = [label("own_unit", lang), label("other_units", lang)]
    return _n(
        "who",
        None,
        scale={"domain": names, "range": ["diamond", "circle"]},
        legend=_legend(names, width, symbolStrokeColor=HIGHLIGHT_COLOUR) if legend else None,
    )


def _own_unit_legend(shape: dict[str, Any], layouts: dict[str, pd.DataFrame], lang: str, width: int) -> dict[str, Any]:
    """The shape encoding of _who_shape whose "Own unit" entry names the own unit ("Own unit: <name>", wrapped
    to the legend's room) where the placed names of `layouts` (_place_labels: phone, wide, built; text "" for a
    name left off) leave its name off the plot in the container that draws the chart. Why: a name is never
    drawn over a point; with no spot clear of them it is left off, and the diamond alone no longer told a
    reader which unit is theirs (the other units are listed in the table under the chart)."""
    off = {name: [str(u) for u, text in zip(layout["unit"], layout["text"], strict=True) if not text] for name, layout
           in layouts.items()}  # fmt: skip
    units = sorted({u for names in off.values() for u in names})
    legend = shape.get("legend")
    if not units or not legend:
        return shape
    wide_size, wide_room = _fonts(width)["legend"], min(width, COLUMN_WIDTH) - 160
    phone_size, phone_room = FONT_SIZES_NARROW["legend"], PHONE_LEGEND - 30

    def named(size: float, room: float) -> str:
        chars = max(8, int(room / (size * GLYPH)))
        return json.dumps({u: textwrap.wrap(t("chart.label.own_unit_named", lang, name=u), chars) for u in units})

    def listed(name: str) -> str:
        return json.dumps("|" + "|".join(off.get(name, [])) + "|")

    layout = f"{PHONE_PARAM} ? {listed('phone')} : {NARROWED_PARAM} ? {listed('wide')} : {listed('built')}"
    is_off = f"indexof({layout}, '|' + {HIGHLIGHT_PARAM} + '|') >= 0"
    lines = f"({PHONE_PARAM} ? {named(phone_size, phone_room)} : {named(wide_size, wide_room)})[{HIGHLIGHT_PARAM}]"
    if not _stretched(width):
        lines = f"({named(wide_size, wide_room)})[{HIGHLIGHT_PARAM}]"
    own = json.dumps(label("own_unit", lang))
    limit = _on_phone(phone_room, wide_room) if _stretched(width) else wide_room
    expr = f"datum.label === {own} && {is_off} ? {lines} : datum.label"
    return shape | {"legend": legend | {"labelExpr": expr, "labelLimit": limit}}


def _target_rule(
    data: _Data, target: float, kind: str, lang: str, *, channel: str, magnitude: float | None = None
) -> dict[str, Any]:
    return {
        "data": data([{"target": float(target), "name": label("target", lang)}]),
        "mark": {"type": "rule", "color": "#000000", "strokeWidth": 2, "strokeDash": [2, 3]},
        "encoding": {
            channel: _q("target"),
            "tooltip": [
                _tip("name", "nominal", " "),
                _tip("target", "quantitative", label("target", lang), value_format(kind, magnitude=magnitude)),
            ],
        },
    }


# ------------------------------------------------------------------------------- targets and actions (issue 14)

#: Datasets of annotations (target lines, action marks) are named with this prefix: chart_table leaves them out.
NOTE_PREFIX = "note"
#: Datasets of placed unit names (a layout per container: _place_labels) are named with this prefix: the CSV
#: download (chart_table) leaves them out, as it leaves out the notes.
NAMES_PREFIX = "names"
#: Lines an action's title takes at the top of the plot; a longer title is shortened at a word, with "…" (its
#: tooltip has the whole title). Three lines of the plot's width hold about 110 characters on a phone.
ACTION_LINES = 3


def target_name(target: ImprovementTarget, kind: str, lang: str) -> str:
    """A target line's legend text: whose target and when it is met, e.g. "Team goal ≤ 5.0%" or "External norm
    ≥ 80%". An external norm's source is in the line's tooltip (a registry's name would not fit a phone's legend)."""
    sign = "≤" if str(target.direction) == "at_most" else "≥"
    return f"{t(f'improvement.target_{target.kind}', lang)} {sign} {format_value(float(target.value), kind, lang)}"


def _source(target: ImprovementTarget) -> str:
    return " ".join(str(getattr(target, "source", "") or "").split())


def _usable_targets(targets: Sequence[ImprovementTarget] | None) -> list[ImprovementTarget]:
    return [
        tg
        for tg in targets or ()
        if str(tg.kind) in TARGET_STYLES and tg.value is not None and np.isfinite(float(tg.value))
    ]


def _target_lines(
    data: _Data,
    targets: Sequence[ImprovementTarget] | None,
    kind: str,
    lang: str,
    width: int,
    *,
    channel: str,
    magnitude: float | None = None,
    per: float = 1.0,
) -> list[dict[str, Any]]:
    """Layers of the targets in force: one rule per target across the plot (`channel` "y" for a horizontal line,
    "x" for a vertical one), coloured and dashed by kind (TARGET_STYLES), named in a legend of their own. `per`:
    the value axis is the indicator divided by it (an O/E axis: the benchmark rate); the legend keeps the rate."""
    shown = _usable_targets(targets)
    if not shown:
        return []
    names = [target_name(tg, kind, lang) for tg in shown]
    scale = {"domain": names, "range": [TARGET_STYLES[str(tg.kind)][0] for tg in shown]}
    legend = _legend(names, width, symbolType="stroke", symbolStrokeWidth=3, title=None)
    fmt = value_format(kind, magnitude=magnitude) if per == 1.0 else value_format("oe")
    layers = []
    for i, (tg, name) in enumerate(zip(shown, names, strict=True)):
        layers.append(
            {
                "data": data(
                    [{"norm_value": float(tg.value) / per, "norm_name": name, "norm_source": _source(tg)}],
                    prefix=NOTE_PREFIX,
                ),
                "mark": {"type": "rule", "strokeWidth": 2.5, "strokeDash": TARGET_STYLES[str(tg.kind)][1]},
                "encoding": {
                    channel: _q("norm_value"),
                    # one legend for all target lines (the first layer's; the scale is shared)
                    "stroke": _n("norm_name", None, scale=scale, legend=legend if i == 0 else None),
                    "tooltip": [
                        _tip("norm_name", "nominal", label("target_line", lang)),
                        _tip("norm_value", "quantitative", label("target_value", lang), fmt),
                        *([_tip("norm_source", "nominal", label("target_source", lang))] if _source(tg) else []),
                    ],
                },
            }
        )
    return layers


def _target_values(targets: Sequence[ImprovementTarget] | None) -> np.ndarray:
    """The target values a value axis must include."""
    return np.array([float(tg.value) for tg in _usable_targets(targets)], dtype=float)


def _title_lines(title: str, size: float, room: float) -> list[str]:
    """An action's title in at most ACTION_LINES lines of `room` px, shortened at a word when longer."""
    per_line = max(8, int(room / (size * GLYPH)))
    lines = textwrap.wrap(" ".join(str(title).split()), per_line) or [""]
    if len(lines) > ACTION_LINES:
        lines = [
            *lines[: ACTION_LINES - 1],
            textwrap.shorten(" ".join(lines[ACTION_LINES - 1 :]), per_line, placeholder=" …"),
        ]
    return lines


def _action_marks(
    data: _Data,
    actions: Sequence[ImprovementAction] | None,
    x: dict[str, Any],
    lang: str,
    width: int,
    *,
    first: Any,
    last: Any,
) -> list[dict[str, Any]]:
    """Layers of the improvement actions whose start lies within the chart's time axis (`x`, a temporal encoding;
    `first` and `last` its data's range): a dotted rule at the start date and the action's title beside it at the
    top of the plot, each next title below the previous one so they do not overlap. A title is kept inside the
    plot (moved left of its rule near the right edge); in a phone's container it is smaller and wrapped narrower."""
    if not actions or x.get("type") != "temporal" or first is None or pd.isna(first) or pd.isna(last):
        return []
    lo, hi = pd.Timestamp(first).normalize(), pd.Timestamp(last)
    shown = sorted(
        (a for a in actions if lo <= pd.Timestamp(a.start) <= hi), key=lambda a: (pd.Timestamp(a.start), a.title)
    )
    if not shown:
        return []
    field = x["field"]
    wide_size = _fonts(width)["text"] - 2
    phone_size = FONT_SIZES_NARROW["text"] - 1
    wide_room, phone_room = min(width, COLUMN_WIDTH) - 140, PHONE_PLOT
    rows, wide_y, phone_y = [], 4.0, 4.0
    for action in shown:
        wide, phone = (
            _title_lines(action.title, wide_size, wide_room),
            _title_lines(action.title, phone_size, phone_room),
        )
        status = str(getattr(action, "status", "") or "")
        rows.append(
            {
                field: pd.Timestamp(action.start).strftime("%Y-%m-%dT00:00:00"),
                "action": " ".join(str(action.title).split()),
                "action_start": fmt_date(action.start, lang),
                "action_status": t(f"improvement.action_{status}", lang) if status else "",
                "wide": "\n".join(wide),
                "phone": "\n".join(phone),
                "wide_px": max(_text_px(s, wide_size) for s in wide) + 4,
                "phone_px": max(_text_px(s, phone_size) for s in phone) + 4,
                "wide_y": wide_y,
                "phone_y": phone_y,
            }
        )
        wide_y += len(wide) * (wide_size + 3) + 4
        phone_y += len(phone) * (phone_size + 3) + 4
    marks = data(rows, prefix=NOTE_PREFIX)
    tips = [
        _tip("action", "nominal", label("action", lang)),
        _tip("action_start", "nominal", label("action_start", lang)),
        _tip("action_status", "nominal", label("action_status", lang)),
    ]
    title = {
        "data": marks,
        "transform": _on_phone_fields(text="", px="_px", top="_y"),
        "mark": {
            "type": "text",
            "align": "left",
            "baseline": "top",
            "lineBreak": "\n",
            "fontSize": _on_phone(phone_size, wide_size) if _stretched(width) else wide_size,
            "color": ACTION_COLOUR,
        },
        "encoding": {
            # right of the rule, or left of it where the title would pass the plot's right edge
            "x": {
                "value": {
                    "expr": f"scale('x', toDate(datum[{_js(field)}])) + 4 + datum.px > width"
                    f" ? max(scale('x', toDate(datum[{_js(field)}])) - 4 - datum.px, 0)"
                    f" : scale('x', toDate(datum[{_js(field)}])) + 4"
                }
            },
            "y": {"value": {"expr": "datum.top"}},
            "text": _n("text"),
            "tooltip": tips,
        },
    }
    # where a title crosses a control limit or the data's line (it sits at the top of the plot, where an upper
    # limit at 100% runs), the line stops short of the letters (_halo)
    return [
        {
            "data": marks,
            "mark": {"type": "rule", "color": ACTION_COLOUR, "strokeWidth": 2, "strokeDash": ACTION_DASH},
            "encoding": {"x": x, "tooltip": tips},
        },
        _halo(title),
        title,
    ]


def _halo(layer: dict[str, Any]) -> dict[str, Any]:
    """A text layer's copy outlined in the background's colour, drawn beneath it: where the text must cross a line
    (a control limit, a confidence interval's rule that no spot near its point avoids), the line stops short of
    the letters and the text stays readable. Its tooltip is the text's own."""
    return layer | {
        "mark": layer["mark"] | {"color": BACKGROUND, "stroke": BACKGROUND, "strokeWidth": 3, "strokeJoin": "round"},
        "encoding": {k: v for k, v in layer["encoding"].items() if k != "tooltip"},
    }


def _unit_label_px(units: Sequence[str], width: int) -> float:
    """Room the unit names take on a y axis (_unit_axis: a chart built narrower than NARROW breaks long names into
    two lines, so its longest line counts)."""
    size = _fonts(width)["axis_label"]
    lines = [line for u in map(str, units) for line in (_unit_lines(u, PHONE_UNIT_CHARS) if width < NARROW else [u])]
    return max((_text_px(line, size) for line in lines), default=20) + 14


def _unit_lines(name: str, chars: int) -> list[str]:
    """A unit name longer than `chars` broken into two lines of about equal length (one line otherwise)."""
    return textwrap.wrap(name, max(chars, (len(name) + 1) // 2 + 2)) if len(name) > chars else [name]


#: Unit names longer than this many characters are broken into two lines on a unit axis in a phone's container
#: (a long hospital name on one line would squeeze the plot; cut with "…" it is not read).
PHONE_UNIT_CHARS = 16


def _unit_axis(units: Sequence[str], width: int) -> dict[str, Any]:
    """A unit axis: the own unit's label in bold, a name longer than its label room broken into two lines (in a
    phone's container at PHONE_UNIT_CHARS; elsewhere when it would pass the configured label limit)."""

    def two_lines(chars: int) -> dict[str, list[str]]:
        return {u: _unit_lines(u, chars) for u in map(str, units) if len(u) > chars}

    def pick(lines: dict[str, list[str]]) -> str:
        return f"({json.dumps(lines, ensure_ascii=False)}[datum.value] || datum.label)" if lines else "datum.label"

    phone = two_lines(PHONE_UNIT_CHARS)
    wide = two_lines(_WIDE_UNIT_CHARS) if _stretched(width) else phone
    axis: dict[str, Any] = {"labelFontWeight": _highlight_weight()}
    if phone or wide:
        axis["labelExpr"] = f"{PHONE_PARAM} ? {pick(phone)} : {pick(wide)}"
    return axis


#: A unit's name up to this many characters stays on one line on a unit axis of a wide chart (the axis' label limit,
#: 260 px at its font); a longer one is broken into two (_unit_axis).
_WIDE_UNIT_CHARS = int(260 / (FONT_SIZES["axis_label"] * GLYPH))


def _step(width: int, units: Iterable[object] = ()) -> int:
    """Pixels per unit on a unit axis: room for the label and the point, at 3 as at 30 units; on a wide chart with a
    name broken into two lines, room for both (at one line's step the second line of "Universitair Medisch Centrum
    Veenmeer" hung beside the next unit's bar, and read as its name)."""
    if width < NARROW:
        return 26
    return 42 if any(len(str(u)) > _WIDE_UNIT_CHARS for u in units) else 32


def _direction_text(direction: object, lang: str) -> str | None:
    if direction == "higher":
        return label("higher_better", lang)
    if direction == "lower":
        return label("lower_better", lang)
    return None


# ------------------------------------------------------------------------------------------------ funnel


def funnel_chart(
    rows: pd.DataFrame,
    curve: pd.DataFrame,
    *,
    highlight: str | None = None,
    lang: str = "en",
    assessment: str = "assessment_998",
    width: int = DEFAULT_WIDTH,
    targets: Sequence[ImprovementTarget] | None = None,
    population: str | None = None,
) -> Spec:
    """Funnel plot of one indicator: units at (n, adjusted value), target line, 95% (dashed) and 99.8% (solid)
    control limits from `curve` (columns precision, level, lower, upper), the own unit labelled. `targets` are
    the team goal and external norm in force (vbhc.annotations.chart_targets), drawn as lines of their own;
    `population` names a benchmark from outside the registry (vbhc.external) in the subtitle."""
    lang = _check_lang(lang)
    _one_indicator(rows, "funnel_chart")
    name = _indicator_label(rows, lang)
    title = label("funnel", lang)
    kind = str(_first(rows, "kind", "proportion"))
    units = _guard(_unit_frame(rows, lang=lang, assessment=assessment), "funnel rows")
    units = units[np.isfinite(units["value"]) & np.isfinite(units["precision"])]
    if units.empty:
        return _empty_chart(title, lang, width)
    target = _first(rows, "target")
    data = _Data()
    f = _fonts(width)

    limits = _funnel_limits(curve, lang)
    near = limits[limits["precision"] >= 0.8 * units["precision"].min()]
    domain = _value_domain(
        units["value"].to_numpy(),
        near["limit"].to_numpy(),
        np.array([target], dtype=float) if target is not None else np.array([]),
        _target_values(targets),
        kind=kind,
    )
    # survival: the precision is the expected number of deaths (the SMR's Poisson limits), not the care cycles
    survival = kind in SURVIVAL_KINDS
    x_title = label("deaths_axis" if survival else "n_axis", lang)
    subtitle = "funnel_sub_survival" if survival else "funnel_sub"
    # the x axis spans the units (the limits are clipped to it): a domain of its own, so the own unit's name can
    # be placed clear of the other units' points (_placed_own_name), as on the value quadrant
    x_dom = _value_domain(units["precision"].to_numpy(), kind="volume")
    x = _q("precision", _axis_title(x_title, width), scale=_scale(x_dom, zero=False), axis=_axis(",.0f"))
    height = 460 if width >= NARROW else 320
    y_title = _wrap(f"{name} ({label('adjusted', lang).lower()})", f["axis_title"], height - 20)
    y = _q("value", y_title, scale=_scale(domain, zero=False), axis=_axis(value_format(kind, axis=True)))
    magnitude = _magnitude(units["value"])

    layers: list[dict[str, Any]] = []
    if len(limits):
        names = [label("limit_95", lang), label("limit_998", lang)]
        layers.append(
            {
                "data": data(limits),
                "mark": {"type": "line", "color": LINE_COLOUR, "strokeWidth": 2, "clip": True},
                "encoding": {
                    "x": _q("precision"),
                    "y": _q("limit"),
                    "strokeDash": _n(
                        "limit_name",
                        label("limits", lang),
                        scale={"domain": names, "range": [[7, 5], [1, 0]]},
                        legend=_legend(names, width),
                    ),
                    "detail": _n("line"),
                },
            }
        )
    if target is not None and np.isfinite(float(target)):
        layers.append(_target_rule(data, float(target), kind, lang, channel="y", magnitude=magnitude))
    layers += _target_lines(data, targets, kind, lang, width, channel="y", magnitude=magnitude)
    unit_data = data(units)
    tips = _unit_tooltips(kind, lang, magnitude=magnitude)
    layers.append(_points(unit_data, {"x": x, "y": y, "tooltip": tips}, lang, width, legend=units["assessment"]))
    if highlight is not None and set(units["unit"].astype(str)) == {str(highlight)}:
        # the own unit alone (a file withholds the others): no "Other units" entry in the legend for none drawn
        shape = layers[-1]["encoding"]["shape"]
        shape["scale"] = {"domain": [label("own_unit", lang)], "range": ["diamond"]}
    if x_dom and domain:
        y_target = float(target) if target is not None and np.isfinite(float(target)) else None
        lines = [(g["precision"].to_numpy(float), g["limit"].to_numpy(float)) for _, g in limits.groupby("line")]
        # the team goal's and external norm's lines too: a name across them hid where the goal lies
        lines += [(np.array(x_dom, dtype=float), np.full(2, v)) for v in _target_values(targets)]
        names, layouts = _placed_own_name(data, units, (x_dom, domain), height, width, y_target=y_target, curves=lines)
        points = layers[-1]["encoding"]
        points["shape"] = _own_unit_legend(points["shape"], layouts, lang, width)
        layers += names
    else:
        layers.append(_own_unit_name(data, units, width, x="precision", y="value"))
    body = {
        "title": _title(title, _with_population(label(subtitle, lang), population, lang), width),
        "height": height,
        "layer": layers,
    }
    return _finish(body, data, lang, width, highlight=highlight)


def _with_population(subtitle: str, population: str | None, lang: str) -> str:
    """A subtitle that names the benchmark population when it comes from outside the registry."""
    return f"{subtitle} · {t('external.benchmark_named', lang, population=population)}" if population else subtitle


def _own_unit_name(data: _Data, units: pd.DataFrame, width: int, *, x: str, y: str) -> dict[str, Any]:
    """The own unit's name in bold above its point (fields `x`, `y`), centred on it but no nearer the plot's edge
    than half the name's width and never above the plot, so a long hospital name is never cut at the chart's edge
    wherever its point lies; in a phone's container it is smaller and wrapped to the phone's plot."""
    wide, phone = _fonts(width)["text"] + 3, FONT_SIZES_NARROW["text"] + 3

    def lines(name: str, size: float, room: float) -> list[str]:
        return textwrap.wrap(name, max(8, int(room / (size * GLYPH * BOLD)))) or [name]

    rows = []
    for name, px, py in zip(units["unit"], units[x], units[y], strict=True):
        on_wide, on_phone = lines(name, wide, min(width, COLUMN_WIDTH) - 100), lines(name, phone, PHONE_PLOT)
        rows.append(
            {
                "unit": name,
                "x": float(px),
                "y": float(py),
                "wide": "\n".join(on_wide),
                "phone": "\n".join(on_phone),
                "wide_half": max(_text_px(s, wide, bold=True) for s in on_wide) / 2,
                "phone_half": max(_text_px(s, phone, bold=True) for s in on_phone) / 2,
                "wide_height": len(on_wide) * (wide + 2),
                "phone_height": len(on_phone) * (phone + 2),
            }
        )
    return {
        "data": data(rows),
        "transform": [{"filter": IS_HIGHLIGHT}, *_on_phone_fields(name="", half="_half", height="_height")],
        "mark": {
            "type": "text",
            "align": "center",
            "baseline": "top",
            "lineBreak": "\n",
            "fontSize": _on_phone(phone, wide) if _stretched(width) else wide,
            "fontWeight": "bold",
            "color": HIGHLIGHT_COLOUR,
        },
        "encoding": {
            "x": {"value": {"expr": "clamp(scale('x', datum.x), datum.half, width - datum.half)"}},
            "y": {"value": {"expr": "max(scale('y', datum.y) - 12 - datum.height, 0)"}},
            "text": _n("name"),
        },
    }


def _scatter_plots(width: int) -> tuple[float, float, float]:
    """The plots (px) a scatter's names are placed for: the narrowest of any container narrower than the chart's
    `width` but wider than a phone's (from PHONE_WIDTH at the built fonts), a phone's (from PHONE_CONTAINER at
    the phone's fonts) and the built width's (any container at least as wide: the PDF report, the page's), each
    the container less a y axis of seven-character labels and its title. Why not PHONE_PLOT for a phone: 50 px
    narrower than a 360 px phone's plot, its points were so close that the own unit's name found no spot clear
    of them (the demo's costs page)."""
    f = _fonts(width)
    wide_axis = _text_px("0000000", f["axis_label"]) + f["axis_title"] + 20
    phone_axis = _text_px("0000000", FONT_SIZES_NARROW["axis_label"]) + FONT_SIZES_NARROW["axis_title"] + 20
    wide = PHONE_WIDTH - 20 - wide_axis
    return wide, PHONE_CONTAINER - phone_axis, max(wide, width - 20 - wide_axis)


def _placed_own_name(
    data: _Data,
    units: pd.DataFrame,
    domains: tuple[list[float], list[float]],
    height: int,
    width: int,
    *,
    y_target: float | None = None,
    curves: Sequence[tuple[np.ndarray, np.ndarray]] = (),
) -> tuple[list[dict[str, Any]], dict[str, pd.DataFrame]]:
    """The own unit's name in bold next to its point (fields precision, value; scales of `domains` x and y) at a
    spot clear of the other units' points, the plot's edges, the benchmark line at `y_target` where there is
    one and the control limits' `curves` (x, y) where it can (_place_labels, placed per unit for when it is the
    own one, for a phone's plot, a narrower container's and the built width's: _by_container_fields). Why:
    centred above its point, the name covered a neighbour's dot on a phone and in the PDF report; placed clear
    of those, it lay across the 95% limit. With no spot clear of the points the name is left off (the legend
    names the unit: _own_unit_legend). Returns the name's layers and the layouts."""
    points = pd.DataFrame(
        {"unit": units["unit"].astype(str).to_numpy(), "cost": units["precision"].to_numpy(dtype=float)}
    ).assign(outcome=units["value"].to_numpy(dtype=float))
    x_dom, y_dom = domains
    (wide_plot, phone_plot, built_plot), targets = _scatter_plots(width), (None, y_target)
    size, phone_size = _fonts(width)["text"], FONT_SIZES_NARROW["text"]
    layouts = {
        "wide": _place_labels(points, x_dom, y_dom, wide_plot, height, size, set(), targets, curves),
        "phone": _place_labels(points, x_dom, y_dom, phone_plot, height, phone_size, set(), targets, curves),
        "built": _place_labels(points, x_dom, y_dom, built_plot, height, size, set(), targets, curves),
    }
    placed = points.rename(columns={"cost": "precision", "outcome": "value"})
    for name, layout in layouts.items():
        for column in ("text", "align", "dx", "dy"):
            placed[f"{name}_{column}"] = layout[column].to_numpy()
    name = {
        "data": data(placed, prefix=NAMES_PREFIX),
        "transform": [
            *_by_container_fields(text="_text", align="_align", dx="_dx", dy="_dy"),
            {"filter": f"{IS_HIGHLIGHT} && datum.text !== ''"},
        ],
        "mark": _placed_name_mark(width, "bold", HIGHLIGHT_COLOUR),
        "encoding": {
            "x": _q("precision", scale=_scale(x_dom, zero=False)),
            "y": _q("value", scale=_scale(y_dom, zero=False)),
            "text": _n("text"),
        },
    }
    return [_halo(name), name], layouts


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
            decimals = len(f"{float(level) * 100:g}".partition(".")[2])
            name = t("chart.limit_level", lang, level=fmt_percent(float(level), lang, decimals))
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


# ------------------------------------------------------------------------------------------ caterpillar


def _interval_panel(
    units: pd.DataFrame,
    data: _Data,
    *,
    kind: str,
    lang: str,
    width: int,
    direction: str | None,
    value: str = "adjusted",
    target: float | None,
    bars: bool = False,
    legend: bool | Sequence[str] = True,
    zero_rule: bool = False,
    x_title: str | None = None,
    targets: Sequence[ImprovementTarget] | None = None,
    benchmark: float | None = None,
) -> dict[str, Any]:
    """Units down the y axis (best first, a fixed height per unit), value with 95% CI across; benchmark rule and
    the lines of `targets`. On an O/E axis a target rate T lies at T / `benchmark` (the adjusted rate is O/E x
    the benchmark rate, vbhc.indicators), so the line crosses the units exactly where their adjusted rate meets
    it; without a benchmark rate no target is drawn there."""
    order = _sort_units(units, direction)
    if legend is True:
        legend = units["assessment"].tolist()
    fmt_kind = "oe" if value == "oe" else kind
    values = [units["lower"].to_numpy(), units["upper"].to_numpy(), units["value"].to_numpy()]
    if target is not None:
        values.append(np.array([target]))
    if zero_rule:
        values.append(np.array([0.0]))
    per = 1.0
    if value == "oe":
        ok = benchmark is not None and np.isfinite(float(benchmark)) and float(benchmark) > 0
        targets, per = (targets, float(benchmark)) if ok else (None, 1.0)
    values.append(_target_values(targets) / per)
    domain = _value_domain(*values, kind=fmt_kind)
    if bars and domain:
        domain[0] = min(domain[0], 0.0)
    scale = _scale(domain, zero=bars)
    if x_title is None:
        x_title = label("oe_axis", lang) if value == "oe" else label("adjusted", lang)
        if kind == "response_rate":
            x_title = label("response_axis", lang)
        x_title = _axis_title(x_title, width)
    x = _q("value", x_title, scale=scale, axis=_axis(value_format(fmt_kind, axis=True)))
    y = _n("unit", None, sort=order, axis=_unit_axis(order, width))
    magnitude = _magnitude(units["value"])
    tips = _unit_tooltips(kind, lang, value=value, magnitude=magnitude)
    unit_data = data(units)
    layers: list[dict[str, Any]] = []
    if bars:
        layers.append(
            {
                "data": unit_data,
                "mark": {"type": "bar", "height": {"band": 0.7}},
                "encoding": {
                    "y": y,
                    "x": x,
                    "tooltip": tips,
                    "color": _assessment_colour(lang, legend, width),
                    "stroke": _when_highlight(HIGHLIGHT_COLOUR, None),
                    "strokeWidth": _when_highlight(3, 0),
                },
            }
        )
    layers.append(
        {
            "data": unit_data,
            # clipped: an interval past a proportion's 100% would widen the chart's bounds and squeeze the fitted plot
            "mark": {"type": "rule", "color": "#333333", "strokeWidth": 2.5, "clip": True},
            "encoding": {"y": y, "x": _q("lower", x_title, scale=scale), "x2": {"field": "upper"}, "tooltip": tips},
        }
    )
    if zero_rule:
        layers.append(
            {"data": data([{"zero": 0.0}]), "mark": {"type": "rule", "color": "#BBBBBB"}, "encoding": {"x": _q("zero")}}
        )
    if target is not None and np.isfinite(target):
        layers.append(_target_rule(data, float(target), fmt_kind, lang, channel="x", magnitude=magnitude))
    layers += _target_lines(data, targets, kind, lang, width, channel="x", magnitude=magnitude, per=per)
    if not bars:
        layers.append(_points(unit_data, {"y": y, "x": x, "tooltip": tips}, lang, width, legend=legend))
    return {"height": _step(width, order) * max(len(order), 3), "layer": layers}


def caterpillar_chart(
    rows: pd.DataFrame,
    *,
    highlight: str | None = None,
    lang: str = "en",
    value: str = "adjusted",
    assessment: str = "assessment_998",
    width: int = DEFAULT_WIDTH,
    targets: Sequence[ImprovementTarget] | None = None,
    population: str | None = None,
) -> Spec:
    """One indicator's units sorted best first with their 95% CI and the benchmark rule, one row per unit.
    `population` names a benchmark from outside the registry (vbhc.external) in the subtitle.

    value="adjusted" (default) draws adjusted_value [adjusted_lower, adjusted_upper] against the target;
    value="oe" draws O/E [oe_lower, oe_upper] against 1. `targets` (team goal, external norm in force) are drawn
    as lines of their own, on an O/E axis at the target rate / the benchmark rate.
    """
    lang = _check_lang(lang)
    _one_indicator(rows, "caterpillar_chart")
    title = label("oe_title" if value == "oe" else "caterpillar", lang)
    kind = str(_first(rows, "kind", "mean"))
    units = _guard(_unit_frame(rows, lang=lang, assessment=assessment, value=value), "rows")
    if not np.isfinite(units["value"]).any():
        return _empty_chart(title, lang, width)
    target = 1.0 if value == "oe" else _first(rows, "target")
    data = _Data()
    panel = _interval_panel(
        units,
        data,
        kind=kind,
        lang=lang,
        width=width,
        direction=_first(rows, "direction"),
        value=value,
        target=None if target is None else float(target),
        targets=targets,
        benchmark=_first(rows, "target") if value == "oe" else None,
    )
    subtitle = _with_population(label("oe_sub" if value == "oe" else "caterpillar_sub", lang), population, lang)
    return _finish({"title": _title(title, subtitle, width), **panel}, data, lang, width, highlight=highlight)


def crude_vs_adjusted_chart(
    rows: pd.DataFrame,
    *,
    lang: str = "en",
    highlight: str | None = None,
    assessment: str = "assessment_998",
    width: int = DEFAULT_WIDTH,
) -> Spec:
    """Dumbbell per unit: from the crude value (open circle) to the case-mix adjusted value (filled)."""
    lang = _check_lang(lang)
    _one_indicator(rows, "crude_vs_adjusted_chart")
    title = label("dumbbell", lang)
    kind = str(_first(rows, "kind", "mean"))
    units = _guard(_unit_frame(rows, lang=lang, assessment=assessment), "rows")
    units = units[np.isfinite(units["value"]) | np.isfinite(units["crude"])]
    if units.empty:
        return _empty_chart(title, lang, width)
    order = _sort_units(units, _first(rows, "direction"))
    target = _first(rows, "target")
    domain = _value_domain(
        units["value"].to_numpy(),
        units["crude"].to_numpy(),
        np.array([target if target is not None else np.nan]),
        kind=kind,
    )
    scale = _scale(domain, zero=False)
    x = _q(
        "value",
        _axis_title(label("crude_and_adjusted", lang), width),
        scale=scale,
        axis=_axis(value_format(kind, axis=True)),
    )
    y = _n("unit", None, sort=order, axis=_unit_axis(order, width))
    magnitude = _magnitude(units["value"])
    tips = _unit_tooltips(kind, lang, crude=True, magnitude=magnitude)
    data = _Data()
    unit_data = data(units)
    layers = [
        {
            "data": unit_data,
            "mark": {"type": "rule", "color": "#AAAAAA", "strokeWidth": 4},
            "encoding": {"y": y, "x": _q("crude", scale=scale), "x2": {"field": "value"}, "tooltip": tips},
        },
        {
            "data": unit_data,
            "mark": {"type": "point", "filled": False, "size": 150, "color": "#333333", "strokeWidth": 2},
            "encoding": {"y": y, "x": _q("crude", scale=scale), "tooltip": tips},
        },
    ]
    if target is not None and np.isfinite(float(target)):
        layers.append(_target_rule(data, float(target), kind, lang, channel="x", magnitude=magnitude))
    layers.append(_points(unit_data, {"y": y, "x": x, "tooltip": tips}, lang, width, legend=units["assessment"]))
    body = {
        "title": _title(title, label("dumbbell_sub", lang), width),
        "height": _step(width, order) * max(len(order), 3),
        "layer": layers,
    }
    return _finish(body, data, lang, width, highlight=highlight)


# ---------------------------------------------------------------------------------- several indicators


def small_multiples_chart(
    rows: pd.DataFrame,
    *,
    lang: str = "en",
    highlight: str | None = None,
    columns: int | None = None,
    assessment: str = "assessment_998",
    width: int = DEFAULT_WIDTH,
    titled: bool = True,
    legend: bool = True,
) -> Spec:
    """One small panel per indicator (own value scale), units in the same order in every panel, adjusted value
    with 95% CI and the benchmark; volume as bars. For comparing departments.

    The panels fill `width`: as many columns as fit (`columns` caps them). Units stand side by side while a
    panel has room for them; otherwise (many units, narrow screen) they go down the panel, one row each.
    `titled=False` leaves out the chart's own title (a page that draws one chart per indicator heads them once,
    see indicator_panel) and `legend=False` the legend."""
    lang = _check_lang(lang)
    _guard(rows, "indicator rows")
    if rows.empty:
        return _empty_chart(label("small_multiples", lang), lang, width)
    f = _fonts(width)
    unit_order = sorted(pd.unique(rows["unit"].astype(str)))
    groups = _indicator_groups(rows)
    spacing, axis_px = 24, 70 if width >= NARROW else 56
    label_px = _unit_label_px(unit_order, width)
    usable = width - 10
    across = max(200, 26 * len(unit_order))  # units side by side: room per unit for a slanted label
    fit = max(0, (usable + spacing) // (across + axis_px + spacing))
    if columns is not None:
        fit = min(fit, columns)
    units_down = fit == 0
    if units_down:
        per_row = max(1, min(len(groups), (usable + spacing) // (340 + spacing), columns or len(groups)))
        panel_w = (usable - (per_row - 1) * spacing) // per_row - label_px
        panel_h = _step(width, unit_order) * max(len(unit_order), 3)
    else:
        per_row = max(1, min(fit, len(groups)))
        panel_w = (usable - (per_row - 1) * spacing) // per_row - axis_px
        panel_h = 200
    judged = rows[rows["kind"] != "volume"] if "kind" in rows.columns else rows
    present = _assessment_labels(_judged(judged, assessment), lang).tolist()
    data = _Data()
    panels = []
    # names down a panel: long ones in two lines (as _unit_label_px counted them), never cut with "…"
    unit_axis = _unit_axis(unit_order, width) if units_down else {"labelFontWeight": _highlight_weight()}
    if not units_down:  # slanted names below the panel: as long as they are (cut with "…" they are not read)
        unit_axis["labelAngle"] = -90
        unit_axis["labelLimit"] = int(max((_text_px(u, f["axis_label"]) for u in unit_order), default=20) + 14)
    for part in groups:
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
        scale = _scale(domain, zero=bars)
        u_ch, v_ch = ("y", "x") if units_down else ("x", "y")
        u_enc = _n("unit", None, sort=unit_order, scale={"domain": unit_order}, axis=unit_axis)
        v_enc = _q("value", None, scale=scale, axis=_axis(value_format(kind, axis=True), tickCount=4))
        magnitude = _magnitude(units["value"])
        tips = _unit_tooltips(kind, lang, magnitude=magnitude)
        unit_data = data(units)
        layers: list[dict[str, Any]] = []
        if bars:
            layers.append(
                {
                    "data": unit_data,
                    "mark": {"type": "bar", "color": "#999999"},
                    "encoding": {u_ch: u_enc, v_ch: v_enc, "tooltip": tips},
                }
            )
        else:
            layers.append(
                {
                    "data": unit_data,
                    "mark": {"type": "rule", "color": "#333333", "strokeWidth": 2.5},
                    "encoding": {
                        u_ch: u_enc,
                        v_ch: _q("lower", None, scale=scale),
                        f"{v_ch}2": {"field": "upper"},
                        "tooltip": tips,
                    },
                }
            )
            if target is not None:
                layers.append(_target_rule(data, target, kind, lang, channel=v_ch, magnitude=magnitude))
            layers.append(
                _points(
                    unit_data,
                    {u_ch: u_enc, v_ch: v_enc, "tooltip": tips},
                    lang,
                    # the legend lies under the first panel: on a narrow chart, fitted to that panel's width
                    width if width >= NARROW else int(panel_w + axis_px),
                    size=120,
                    legend=present if legend else False,
                )
            )
        panels.append(
            {
                "width": int(panel_w),
                "height": int(panel_h),
                "title": _title(_indicator_label(part, lang), None, panel_w + axis_px, size=f["axis_title"] + 2),
                "layer": layers,
            }
        )
    heading = _title(label("small_multiples", lang), label("small_multiples_sub", lang), width)
    body = {
        **({"title": heading} if titled else {}),
        "concat": panels,
        "columns": int(per_row),
        "spacing": spacing,
        "resolve": {"scale": {"x": "independent", "y": "independent", "color": "shared"}},
    }
    return _finish(body, data, lang, width, highlight=highlight, fit=False)


def indicator_panel(rows: pd.DataFrame, *, lang: str = "en", highlight: str | None = None) -> Spec:
    """One indicator's panel as the compare page draws it (one chart per indicator in columns a phone stacks,
    built to fit a phone's screen), with its own legend of the assessments it shows and the own unit's mark. Why
    each its own: the page showed the legend under the first panel only, listing that panel's assessments, so a
    reader at the fifth panel could not tell what its colours meant, and a colour absent from the first panel
    (e.g. "worse") was explained nowhere."""
    return small_multiples_chart(
        rows, lang=lang, highlight=highlight, width=PHONE_FIXED_WIDTH, titled=False, legend=True
    )


def assessment_legend_items(
    rows: pd.DataFrame, lang: str = "en", *, assessment: str = "assessment_998"
) -> list[tuple[str, str]]:
    """(name, colour) of every assessment the panels of `rows` draw (all indicators together, palette order),
    as their legends list them: for a page that explains its panels' colours once (ui.render.assessment_legend)
    instead of under each panel."""
    judged = rows[rows["kind"] != "volume"] if "kind" in rows.columns else rows
    present = set(_assessment_labels(_judged(judged, assessment), lang))
    names = ASSESSMENT_LABELS[_check_lang(lang)]
    return [(names[a], PALETTE[a]) for a in ASSESSMENTS if names[a] in present]


def without_legends(spec: dict[str, Any]) -> dict[str, Any]:
    """The spec with every legend left out (`legend: null` on each encoding that had one), its datasets shared
    with `spec`, not copied. For a page that draws one legend for several charts: the charts' files (PNG
    downloads) keep theirs, so a file read on its own still says what its colours and shapes mean."""

    def strip(node: Any, key: str | None = None) -> Any:
        if key == "datasets":
            return node
        if isinstance(node, dict):
            out = {k: strip(v, k) for k, v in node.items()}
            if key == "encoding":
                for channel, value in out.items():
                    if isinstance(value, dict) and value.get("legend") is not None:
                        out[channel] = {**value, "legend": None}
            return out
        if isinstance(node, list):
            return [strip(v) for v in node]
        return node

    return strip(spec)


def _stacked_panels(
    rows: pd.DataFrame,
    *,
    lang: str,
    highlight: str | None,
    title: str,
    subtitle: str,
    bars: bool,
    assessment: str,
    width: int,
    scale: Any = None,
) -> Spec:
    _guard(rows, "indicator rows")
    present = _assessment_labels(_judged(rows, assessment), lang).tolist()
    data = _Data()
    f = _fonts(width)
    unit_px = _unit_label_px(rows["unit"].astype(str).unique() if "unit" in rows.columns else [], width)
    panel_w = int(max(120, width - 20 - unit_px))
    panels = []
    for part in _indicator_groups(rows):
        kind = str(_first(part, "kind", "mean"))
        units = _unit_frame(part, lang=lang, assessment=assessment)
        if not np.isfinite(units["value"]).any():
            continue
        target = _first(part, "target")
        name = _indicator_label(part, lang)
        direction = _first(part, "direction")
        x_title = None
        if kind != "response_rate":  # the scale's name and which way is better
            how = _direction_text(direction, lang)
            axis_name = _scale_axis_name(scale, kind, lang) or name
            # wrapped for the panel and for a phone's plot (the scale's name ran off a phone's screen)
            x_title = _fitting(f"{axis_name} ({how})" if how else axis_name, "axis_title", width, panel_w, PHONE_PLOT)
        panel = _interval_panel(
            units,
            data,
            kind=kind,
            lang=lang,
            width=width,
            direction=direction,
            target=None if target is None else float(target),
            bars=bars,
            legend=present if not panels else False,
            zero_rule=kind == "prom_change",
            x_title=x_title,
        )
        panel_title = _title(name, None, width - 10, size=f["axis_title"] + 2)
        panels.append({"title": panel_title, "width": panel_w, **panel})
    if not panels:
        return _empty_chart(title, lang, width)
    if len(panels) == 1:
        body = {**panels[0], "title": _title(title, subtitle, width)}
        del body["width"]
        return _finish(body, data, lang, width, highlight=highlight)
    body = {
        "title": _title(title, subtitle, width),
        "vconcat": panels,
        "resolve": {"scale": {"x": "independent", "color": "shared"}},
    }
    return _finish(body, data, lang, width, highlight=highlight, fit=False)


_RANGE_SUFFIX = re.compile(r"\s*\(\s*-?\d+(?:[.,]\d+)?\s*[-–]\s*-?\d+(?:[.,]\d+)?\s*\)\s*$")


def _scale_name(scale: Any, lang: str) -> str:
    """The scale's name without the range its catalog label may end in ("Oxford Hip Score (0-48)"): the axes
    say the range themselves, or measure a change, whose range is another."""
    return _RANGE_SUFFIX.sub("", scale.label(lang)) or scale.label(lang)


def _scale_axis_name(scale: Any, kind: str, lang: str) -> str | None:
    """A PROM value axis named after its scale (vbhc.catalog Scale): the score with its range, the change in it,
    or the share reaching its minimal important change; None without a scale."""
    if scale is None:
        return None
    name = _scale_name(scale, lang)
    if kind == "prom_change":
        return t("chart.change_axis", lang, scale=name)
    if kind == "prom_mic":
        return t("chart.mic_axis", lang, scale=name)
    low, high = (_format_number(v, lang, 0 if float(v) == int(v) else 1) for v in (scale.min, scale.max))
    return t("chart.score_axis", lang, scale=name, low=low, high=high)


def prom_response_chart(
    rows: pd.DataFrame,
    *,
    lang: str = "en",
    highlight: str | None = None,
    assessment: str = "assessment_998",
    width: int = DEFAULT_WIDTH,
    title: str | None = None,
) -> Spec:
    """PROM response rate per unit (bars, with 95% CI and the overall rate); one panel per response
    indicator (e.g. per timepoint). `title`: the indicator's name when the chart shows one (the page then needs
    no heading of its own above it, and a downloaded picture still says what it shows)."""
    lang = _check_lang(lang)
    return _stacked_panels(
        rows,
        lang=lang,
        highlight=highlight,
        title=title or label("response", lang),
        subtitle=label("response_sub", lang),
        bars=True,
        assessment=assessment,
        width=width,
    )


def prom_change_chart(
    rows: pd.DataFrame,
    *,
    lang: str = "en",
    highlight: str | None = None,
    assessment: str = "assessment_998",
    width: int = DEFAULT_WIDTH,
    title: str | None = None,
    scale: Any = None,
) -> Spec:
    """Case-mix adjusted PROM score, change or MIC share per unit with 95% CI; one panel per indicator, its
    value axis named after the scale (`scale`, a vbhc.catalog Scale; else the indicator) with the direction that
    is better. `title` as for prom_response_chart."""
    lang = _check_lang(lang)
    return _stacked_panels(
        rows,
        lang=lang,
        highlight=highlight,
        title=title or label("prom", lang),
        subtitle=label("prom_sub", lang),
        bars=False,
        assessment=assessment,
        width=width,
        scale=scale,
    )


# ------------------------------------------------------------------------------------------- over time


def trend_chart(
    spc: pd.DataFrame,
    *,
    kind: str,
    lang: str = "en",
    title: str | None = None,
    width: int = DEFAULT_WIDTH,
    targets: Sequence[ImprovementTarget] | None = None,
    actions: Sequence[ImprovementAction] | None = None,
) -> Spec:
    """SPC chart of one unit's indicator per period: the value (p for a p chart, else value), centre line,
    control limits, points with a run-rule signal highlighted, and for p charts the case-mix expected rate.
    A chart rebased into phases (vbhc.spc, column `segment`) draws each phase's centre line and limits apart, so
    before and after an action are not joined. `targets` (team goal, external norm) are drawn as lines, `actions`
    as a dotted rule at their start with their title (those starting within the chart's periods).

    `kind` is the indicator kind (it sets the number format); "p" and "xmr" are accepted too.
    """
    lang = _check_lang(lang)
    kind = {"p": "proportion", "xmr": "mean"}.get(kind, kind)
    p_chart = "p" in spc.columns
    chart_name = label("p_chart" if p_chart else "xmr_chart", lang)
    title = title or label("trend", lang)
    if spc.empty:
        return _empty_chart(title, lang, width)
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
    phase = spc["segment"].to_numpy() if "segment" in spc.columns else np.zeros(len(spc), int)
    long = pd.concat(
        [
            pd.DataFrame(
                {
                    "period": wide["period"],
                    "y": wide[col],
                    "series": name,
                    "key": col,
                    # one line per phase: a rebased chart's limits and centre are not joined across the rebase
                    "line": [f"{col}-{p}" if col != "value" else col for p in phase],
                }
            )
            for col, name, _, _ in series
        ],
        ignore_index=True,
    )
    long = long[np.isfinite(long["y"])]
    styles = {name: (colour, dash) for _, name, colour, dash in series}
    names = list(styles)
    x_type = "temporal" if temporal else ("quantitative" if pd.api.types.is_numeric_dtype(period) else "ordinal")
    x_axis = {"format": "%b %Y", "labelAngle": -30} if temporal else {}
    x = {"field": "period", "type": x_type, "title": _axis_title(label("period", lang), width), "axis": x_axis}
    fmt = value_format(kind, magnitude=_magnitude(wide["value"], wide["centre"]))
    y_title = label("rate_per_period" if p_chart else "value_per_period", lang)
    line_enc = {
        "x": x,
        "y": _q("y", y_title, scale={"zero": p_chart}, axis=_axis(value_format(kind, axis=True))),
        "color": _n(
            "series",
            None,
            scale={"domain": names, "range": [styles[n][0] for n in names]},
            legend=_legend(names, width, symbolType="stroke", symbolStrokeWidth=3),
        ),
        "strokeDash": _n("series", None, scale={"domain": names, "range": [styles[n][1] for n in names]}),
        "detail": _n("line"),
    }
    is_limit = long["key"].isin(["upper", "lower"])
    data = _Data()
    period_tip = (
        _tip("period", "temporal", label("period", lang), "%b %Y")
        if temporal
        else _tip("period", x_type, label("period", lang))
    )
    tooltips = [
        period_tip,
        _tip("n", "quantitative", label("n", lang), ",.0f"),
        _tip("value", "quantitative", label("observed", lang), fmt),
        _tip("centre", "quantitative", label("centre", lang), fmt),
        _tip("lower", "quantitative", label("lower_limit", lang), fmt),
        _tip("upper", "quantitative", label("upper_limit", lang), fmt),
    ]
    if p_chart:
        tooltips.append(_tip("expected", "quantitative", label("expected_rate", lang), fmt))
    tooltips.append(_tip("signal_rules", "nominal", label("signal", lang)))
    sig_names = [label("no_signal", lang), label("signal", lang)]
    layers = [
        # limits can change from period to period (p chart with varying n): steps centred on each period
        {
            "data": data(long[is_limit]),
            "mark": {"type": "line", "interpolate": "step", "strokeWidth": 2},
            "encoding": line_enc,
        },
        {"data": data(long[~is_limit]), "mark": {"type": "line", "strokeWidth": 2.5}, "encoding": line_enc},
        {
            "data": data(wide[np.isfinite(wide["value"])]),
            "mark": {"type": "point", "filled": True, "opacity": 1},
            "encoding": {
                "x": x,
                "y": _q("value"),
                "fill": _n(
                    "signal",
                    None,
                    scale={"domain": sig_names, "range": ["#000000", SIGNAL_COLOUR]},
                    legend=_legend(sig_names, width),
                ),
                "size": _n("signal", None, scale={"domain": sig_names, "range": [60, 320]}),
                "stroke": {"value": "#000000"},
                "tooltip": tooltips,
            },
        },
    ]
    layers += _target_lines(data, targets, kind, lang, width, channel="y", magnitude=_magnitude(wide["value"]))
    if temporal and len(wide):
        layers += _action_marks(data, actions, x, lang, width, first=wide["period"].min(), last=wide["period"].max())
    body = {"title": _title(title, chart_name, width), "height": 400 if width >= NARROW else 300, "layer": layers}
    return _finish(body, data, lang, width)


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


def _series_x(data: pd.DataFrame, lang: str, width: int) -> dict[str, Any]:
    """The time axis of a per-cycle series: the index date when the series has one, else the cycle number."""
    if "date" in data.columns and data["date"].notna().any():
        return {
            "field": "date",
            "type": "temporal",
            "title": _axis_title(label("index_date", lang), width),
            "axis": {"format": "%b %Y", "labelAngle": -30},
        }
    return _q("cycle_number", _axis_title(label("cycle_number", lang), width), axis=_axis(",.0f"))


def _series_tooltips(lang: str, columns: Sequence[str]) -> list[dict[str, Any]]:
    tips = [
        _tip("unit", "nominal", label("unit", lang)),
        _tip("cycle_number", "quantitative", label("cycle_number", lang), ",.0f"),
    ]
    if "date" in columns:
        tips.append(_tip("date", "temporal", label("index_date", lang), "%x"))  # the locale's date
    for col, key, fmt in (("cusum_up", "cusum_up", ".2f"), ("cusum_down", "cusum_down", ".2f"), ("vlad", "", ".1f")):
        if col in columns:
            tips.append(_tip(col, "quantitative", label(key, lang) if key else "VLAD", fmt))
    return tips


def _series_actions(
    data: _Data,
    actions: Sequence[ImprovementAction] | None,
    x: dict[str, Any],
    series: pd.DataFrame,
    lang: str,
    width: int,
) -> list[dict[str, Any]]:
    """The action marks of a per-cycle series over its index dates."""
    if not actions or "date" not in series.columns or not series["date"].notna().any():
        return []
    return _action_marks(data, actions, x, lang, width, first=series["date"].min(), last=series["date"].max())


def _js(text: str) -> str:
    """A Vega expression string literal."""
    return json.dumps(text, ensure_ascii=False)


def cusum_chart(
    frame: pd.DataFrame,
    *,
    h: float = 4.5,
    lang: str = "en",
    direction: str | None = None,
    max_points: int = MAX_SERIES_POINTS,
    width: int = DEFAULT_WIDTH,
    actions: Sequence[ImprovementAction] | None = None,
) -> Spec:
    """Risk-adjusted CUSUM over the index date: the upward chart above 0 and the downward chart below 0 in two
    colours of the palette, alarm limits at ±h and alarms marked with triangles; all of them in the legend.
    `direction` ("lower"/"higher" is better for the outcome) colours the alarms as worse or better; without it
    they get the neutral signal colour. Long series are thinned to ~max_points rows. `actions` are marked at
    their start date (a series without dates has no time axis to mark them on)."""
    lang = _check_lang(lang)
    title = label("cusum", lang)
    if frame.empty:
        return _empty_chart(title, lang, width)
    cols = ["unit", "date", "cycle_number", "cusum_up", "cusum_down", "alarm_up", "alarm_down", "vlad"]
    series = thin_series(
        _series_frame(frame, cols),
        extremes=("cusum_up", "cusum_down"),
        flags=[c for c in ("alarm_up", "alarm_down") if c in frame.columns],
        max_points=max_points,
    )
    series = _guard(series, "CUSUM series")
    x = _series_x(series, lang, width)
    tips = _series_tooltips(lang, series.columns)
    up_name, down_name = label("cusum_up", lang), label("cusum_down", lang)
    alarm_up, alarm_down = label("alarm_up", lang), label("alarm_down", lang)
    up_alarm_colour, down_alarm_colour = SIGNAL_COLOUR, SIGNAL_COLOUR
    if direction == "lower":
        up_alarm_colour, down_alarm_colour = PALETTE[WORSE], PALETTE[BETTER]
    elif direction == "higher":
        up_alarm_colour, down_alarm_colour = PALETTE[BETTER], PALETTE[WORSE]
    names = [up_name, down_name]
    colours = [CATEGORICAL[3], CATEGORICAL[0]]  # vermillion up, blue down
    shapes = ["stroke", "stroke"]
    alarms = []
    for col, y_col, name, colour, shape in (
        ("alarm_up", "cusum_up", alarm_up, up_alarm_colour, "triangle-up"),
        ("alarm_down", "cusum_down", alarm_down, down_alarm_colour, "triangle-down"),
    ):
        if col in series.columns:
            names.append(name)
            colours.append(colour)
            shapes.append(shape)
            alarms.append((col, y_col, name))
    colour = _n(
        "series",
        None,
        scale={"domain": names, "range": colours},
        legend=_legend(names, width, symbolStrokeWidth=3),
    )
    shape = _n("series", None, scale={"domain": names, "range": shapes})
    data = _Data()
    series_data = data(series)
    h_text = _format_number(h, lang)
    limits = [{"y": h, "text": f"{label('alarm_limit', lang)} h = {h_text}"}, {"y": -h, "text": f"−{h_text}"}]
    f = _fonts(width)
    layers: list[dict[str, Any]] = [
        {
            "data": data(limits),
            "mark": {"type": "rule", "color": LINE_COLOUR, "strokeDash": [7, 5], "strokeWidth": 2},
            "encoding": {"y": _q("y")},
        },
        {"data": data([{"y": 0.0}]), "mark": {"type": "rule", "color": "#BBBBBB"}, "encoding": {"y": _q("y")}},
    ]
    alarm = {  # from the left edge: stays inside a stretched chart
        "data": data(limits[:1]),
        "mark": {
            "type": "text",
            "align": "left",
            "baseline": "bottom",
            "dy": -4,
            "color": LINE_COLOUR,
            "fontSize": f["text"],
        },
        "encoding": {"x": {"value": 4}, "y": _q("y"), "text": _n("text")},
    }
    layers += [_halo(alarm), alarm]  # the statistics' lines may run through it: they stop short of its letters
    for col, name in (("cusum_up", up_name), ("cusum_down", down_name)):
        layers.append(
            {
                "data": series_data,
                "transform": [{"calculate": _js(name), "as": "series"}],
                "mark": {"type": "line", "strokeWidth": 2},
                "encoding": {
                    "x": x,
                    "y": _q(col, label("cusum_axis", lang)),
                    "color": colour,
                    "detail": _n("unit"),
                    "tooltip": tips,
                },
            }
        )
    for col, y_col, name in alarms:
        layers.append(
            {
                "data": series_data,
                "transform": [{"filter": f"datum.{col}"}, {"calculate": _js(name), "as": "series"}],
                "mark": {"type": "point", "filled": True, "size": 260, "opacity": 1},
                "encoding": {"x": x, "y": _q(y_col), "color": colour, "shape": shape, "tooltip": tips},
            }
        )
    layers += _series_actions(data, actions, x, series, lang, width)
    body = {
        "title": _title(title, label("cusum_sub", lang), width),
        "height": 420 if width >= NARROW else 300,
        "layer": layers,
    }
    return _finish(body, data, lang, width)


def vlad_chart(
    frame: pd.DataFrame,
    *,
    lang: str = "en",
    max_points: int = MAX_SERIES_POINTS,
    highlight: str | None = None,
    width: int = DEFAULT_WIDTH,
    actions: Sequence[ImprovementAction] | None = None,
) -> Spec:
    """Variable life-adjusted display: cumulative expected minus observed events over the index date, per unit
    (a legend when there are several). Long series are thinned to ~max_points rows (peaks and troughs kept).
    `actions` are marked at their start date, as on the CUSUM chart."""
    lang = _check_lang(lang)
    title = label("vlad", lang)
    if frame.empty:
        return _empty_chart(title, lang, width)
    series = thin_series(
        _series_frame(frame, ["unit", "date", "cycle_number", "vlad"]), extremes=("vlad",), max_points=max_points
    )
    series = _guard(series, "VLAD series")
    units = list(pd.unique(series["unit"]))
    encoding: dict[str, Any] = {
        "x": _series_x(series, lang, width),
        "y": _q("vlad", label("vlad_axis", lang), axis={"format": ",.1~f"}),
        "tooltip": _series_tooltips(lang, series.columns),
    }
    if len(units) > 1:
        colours = (CATEGORICAL * (len(units) // len(CATEGORICAL) + 1))[: len(units)]
        encoding["color"] = _n(
            "unit", label("unit", lang), scale={"domain": units, "range": colours}, legend=_legend(units, width)
        )
        encoding["strokeWidth"] = _when_highlight(4.5, 1.5)
    else:
        encoding["color"] = {"value": "#000000"}
    data = _Data()
    layers = [
        {"data": data([{"y": 0.0}]), "mark": {"type": "rule", "color": "#BBBBBB"}, "encoding": {"y": _q("y")}},
        {"data": data(series), "mark": {"type": "line", "strokeWidth": 2.5}, "encoding": encoding},
        *_series_actions(data, actions, encoding["x"], series, lang, width),
    ]
    body = {
        "title": _title(title, label("vlad_sub", lang), width),
        "height": 400 if width >= NARROW else 300,
        "layer": layers,
    }
    return _finish(body, data, lang, width, highlight=highlight)


def survival_chart(
    curves: pd.DataFrame,
    *,
    lang: str = "en",
    highlight: str | None = None,
    width: int = DEFAULT_WIDTH,
) -> Spec:
    """Kaplan-Meier curves per unit with their confidence bands (vbhc.survival.km_curves: unit, time in days,
    survival, lower, upper, at_risk), over years since the index date: a step line per unit and its band
    shaded in the unit's colour, so a reader sees both the curve and how sure it is."""
    lang = _check_lang(lang)
    title = label("survival", lang)
    if curves.empty:
        return _empty_chart(title, lang, width)
    frame = curves.assign(years=curves["time"].to_numpy(float) / DAYS_PER_YEAR)[
        ["unit", "years", "survival", "lower", "upper", "at_risk"]
    ]
    frame = _guard(frame.assign(unit=frame["unit"].astype(str)), "survival curves")
    units = list(pd.unique(frame["unit"]))
    colours = (CATEGORICAL * (len(units) // len(CATEGORICAL) + 1))[: len(units)]
    colour = _n("unit", label("unit", lang), scale={"domain": units, "range": colours}, legend=_legend(units, width))
    x = _q("years", _axis_title(label("years_axis", lang), width), axis={"format": ",.1~f"})
    y_axis = {"format": ".0%"}
    tips = [
        _tip("unit", "nominal", label("unit", lang)),
        _tip("years", "quantitative", label("years_axis", lang), ",.2f"),
        _tip("survival", "quantitative", label("survival_axis", lang), ".1%"),
        _tip("lower", "quantitative", label("ci_lower", lang), ".1%"),
        _tip("upper", "quantitative", label("ci_upper", lang), ".1%"),
        _tip("at_risk", "quantitative", label("at_risk", lang), ",.0f"),
    ]
    data = _Data()
    rows = data(frame)
    band = {
        "data": rows,
        "mark": {"type": "area", "interpolate": "step-after", "opacity": 0.15},
        "encoding": {"x": x, "y": _q("lower", label("survival_axis", lang), axis=y_axis), "y2": {"field": "upper"},
                     "color": colour},
    }  # fmt: skip
    line = {
        "data": rows,
        "mark": {"type": "line", "interpolate": "step-after", "strokeWidth": 2.5},
        "encoding": {"x": x, "y": _q("survival", label("survival_axis", lang), axis=y_axis), "color": colour,
                     "strokeWidth": _when_highlight(4.5, 2.0), "tooltip": tips},
    }  # fmt: skip
    body = {
        "title": _title(title, label("survival_sub", lang), width),
        "height": 400 if width >= NARROW else 300,
        "layer": [band, line],
    }
    return _finish(body, data, lang, width, highlight=highlight)


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


#: Steps between the share axis' ticks, the finest first.
SHARE_STEPS = (0.05, 0.1, 0.2, 0.25, 0.5)


def _share_ticks(top: float, height: int) -> tuple[float, list[float]]:
    """The top of a share axis `height` px tall and its ticks: the finest step whose labels lie at least a label
    (the largest font, either screen) plus LABEL_GAP and a margin apart, the top a whole step above the highest
    bar. Why: 3 ticks left to Vega gave 0%, 10%, 20% and 30% 22 px apart in a 90 px panel, and a browser dropped
    every other label as overlapping (a 12-month histogram read "0%" and "30%" only)."""
    need = max(FONT_SIZES["axis_label"], FONT_SIZES_NARROW["axis_label"]) + LABEL_GAP + 8
    top = min(max(top, 0.0), 1.0) if np.isfinite(top) else 1.0
    for step in SHARE_STEPS:
        steps = max(1, int(np.ceil(top / step - 1e-9)))
        if height / steps >= need or step == SHARE_STEPS[-1]:
            break
    return steps * step, [round(i * step, 6) for i in range(steps + 1)]


def _timepoint_order(timepoints: Sequence[str]) -> list[str]:
    """Timepoint ids the catalog does not know, in a likely order: baseline first, then follow-up by length
    ("6w" < "3m" < "12m" < "2y"), others last."""
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


def _timepoint_names(present: Sequence[str], timepoints: Sequence[Any] | None, lang: str) -> dict[str, str]:
    """Timepoint id -> the name a panel is headed by, in panel order. Catalog timepoints (vbhc.catalog.Timepoint:
    id, days, label(lang)) are ordered by their days and named by label(lang), so a reader sees "Voormeting" and
    "12 maanden", never `baseline` or `12m`; an id the catalog does not know keeps its place by _timepoint_order."""
    known = {str(tp.id): tp for tp in timepoints or () if hasattr(tp, "label")}
    ordered = sorted((tp for tp in known.values() if tp.id in present), key=lambda tp: tp.days)
    names = {str(tp.id): tp.label(lang) for tp in ordered}
    listed = [str(tp) for tp in timepoints or () if not hasattr(tp, "label")]
    rest = [tp for tp in present if tp not in names and tp not in listed]
    for tp in [*(x for x in listed if x in present), *_timepoint_order(rest)]:
        names[tp] = tp
    return names


def score_distribution_chart(
    scores_summary: pd.DataFrame,
    *,
    lang: str = "en",
    title: str | None = None,
    timepoints: Sequence[Any] | None = None,
    scale: Any = None,
    width: int = DEFAULT_WIDTH,
) -> Spec:
    """Histograms of PROM scores from a pre-binned frame (unit, timepoint, bin_start, bin_end, count; a column
    "group" may stand in for unit) as the share of each unit's (group's) patients at that timepoint, so a small
    own unit and a large comparison group read alike: one row of panels per unit, one column per timepoint.

    `scale` (a vbhc.catalog Scale: label(lang), min, max, higher_is_better) names the score axis with its range
    and the direction that is better; without it the axis gives the range of the bins. `timepoints` (the
    condition's vbhc.catalog Timepoints) order the panels by their days and head them by label(lang).

    A frame of one timepoint gives one column of panels titled by the timepoint's name: pages draw one chart per
    timepoint, side by side in columns that a phone stacks (a grid of panels cannot be stretched or shrunk to a
    phone's screen, and its right-hand panels were cut off there)."""
    lang = _check_lang(lang)
    present = list(pd.unique(scores_summary["timepoint"].astype(str))) if "timepoint" in scores_summary else []
    single = len(present) == 1
    # the page's heading says "distribution"; the chart names the scale it draws (and its one timepoint)
    if not title:
        title = scale.label(lang) if scale is not None else label("distribution", lang)
        if single:
            title = f"{title} · {_timepoint_names(present, timepoints, lang)[present[0]]}"
    if scores_summary.empty:
        return _empty_chart(title, lang, width)
    group = "unit" if "unit" in scores_summary.columns else "group"
    cols = [c for c in (group, "timepoint", "bin_start", "bin_end", "count") if c in scores_summary.columns]
    frame = _guard(scores_summary[cols].rename(columns={group: "unit"}), "score histogram")
    for col in ("unit", "timepoint"):
        frame[col] = frame[col].astype(str) if col in frame.columns else ""
    counts = pd.to_numeric(frame["count"], errors="coerce").fillna(0).to_numpy(dtype=float)
    totals = frame.assign(_c=counts).groupby(["unit", "timepoint"])["_c"].transform("sum").to_numpy(dtype=float)
    frame["share"] = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)
    frame["patients"] = totals
    named = _timepoint_names(list(pd.unique(frame["timepoint"])), timepoints, lang)
    frame["timepoint"] = frame["timepoint"].map(named)
    timepoints = list(named.values())
    units = list(pd.unique(frame["unit"]))
    f = _fonts(width)
    lo, hi = float(frame["bin_start"].min()), float(frame["bin_end"].max())
    if scale is not None:
        name = _scale_name(scale, lang)
        how = label("higher_better" if scale.higher_is_better else "lower_better", lang)
        lo, hi = float(scale.min), float(scale.max)
    else:
        name, how = label("score", lang), None
    low, high = _format_number(lo, lang, 0 if lo == int(lo) else 1), _format_number(hi, lang, 0 if hi == int(hi) else 1)
    x_title = f"{name} ({low}–{high}, {how})" if how else f"{name} ({low}–{high})"
    # the unit names head their row from above (left of the rows they took a phone's whole width, leaving the bars
    # off-screen); room for the share axis of each panel
    spacing, axis_px = 12, 48
    panel_w = int(max(60, (width - 10 - len(timepoints) * (axis_px + spacing)) / max(len(timepoints), 1)))
    data = _Data()
    pct = label("share_patients", lang)
    panel_h = 120 if width >= NARROW else 90
    share_top, share_ticks = _share_ticks(float(frame["share"].max()), panel_h)
    spec = {
        "width": panel_w,
        "height": panel_h,
        "mark": {"type": "bar", "color": "#56B4E9", "stroke": "#FFFFFF", "strokeWidth": 0.5},
        "encoding": {
            "x": _q(
                "bin_start",
                _wrap(x_title, f["axis_title"], max(panel_w, 60)),
                bin="binned",
                scale={"domain": [lo, hi]},
                axis={"format": ",.4~f", "tickCount": 4},
            ),
            "x2": {"field": "bin_end"},
            "y": _q(
                "share",
                _wrap(pct, f["axis_title"], panel_h - 10),
                scale={"domain": [0, share_top], "nice": False},
                axis=_axis(".0%", values=share_ticks),
            ),
            "tooltip": [
                _tip("unit", "nominal", label("unit", lang)),
                _tip("timepoint", "nominal", label("timepoint", lang)),
                _tip("bin_start", "quantitative", f"{label('bin', lang)} ≥", ",.4~f"),
                _tip("bin_end", "quantitative", f"{label('bin', lang)} <", ",.4~f"),
                _tip("share", "quantitative", pct, ".1%"),
                _tip("count", "quantitative", label("count", lang), ",.0f"),
            ],
        },
    }
    body = {
        "title": _title(title, label("distribution_sub_one" if single else "distribution_sub", lang), width),
        "data": data(frame),
        "facet": {
            "row": _n(
                "unit",
                None,
                sort=units,
                header={
                    "labelAngle": 0,
                    "labelOrient": "top",
                    "labelAnchor": "start",
                    "labelAlign": "left",
                    "labelFontWeight": "bold",
                    "labelLimit": int(width - 10),
                },
            ),
            **({} if single else {"column": _n("timepoint", label("timepoint", lang), sort=timepoints)}),
        },
        "spacing": spacing,
        "spec": spec,
    }
    return _finish(body, data, lang, width, fit=False)


# -------------------------------------------------------------------------------------------------- cost


def cost_breakdown_chart(
    breakdown: pd.DataFrame, *, lang: str = "en", highlight: str | None = None, width: int = DEFAULT_WIDTH
) -> Spec:
    """Stacked bars per unit: cost per care cycle by activity (the activities add up to the unit's mean cost
    per care cycle); units sorted by total, highest first, one row per unit."""
    lang = _check_lang(lang)
    title = label("cost_breakdown", lang)
    if breakdown.empty:
        return _empty_chart(title, lang, width)
    cols = ["unit", "activity", "cycles", "quantity", "total_cost", "cost_per_cycle", "share"]
    frame = _guard(breakdown[[c for c in cols if c in breakdown.columns]].copy(), "cost breakdown")
    frame["unit"] = frame["unit"].astype(str)
    frame["activity"] = frame["activity"].astype(str)
    activities = sorted(pd.unique(frame["activity"]))
    colours = (CATEGORICAL * (len(activities) // len(CATEGORICAL) + 1))[: len(activities)]
    units = frame["unit"].nunique()
    tips = [
        _tip("unit", "nominal", label("unit", lang)),
        _tip("activity", "nominal", label("activity", lang)),
        _tip("cycles", "quantitative", label("cycles", lang), ",.0f"),
        _tip("quantity", "quantitative", label("quantity", lang), ",.1~f"),
        _tip("total_cost", "quantitative", label("total_cost", lang), value_format("cost")),
        _tip("cost_per_cycle", "quantitative", label("cost", lang), value_format("cost")),
        _tip("share", "quantitative", label("share", lang), ".1%"),
    ]
    data = _Data()
    body = {
        "title": _title(title, None, width),
        "height": _step(width, frame["unit"].unique()) * max(units, 3),
        "data": data(frame),
        "mark": {"type": "bar", "height": {"band": 0.75}},
        "encoding": {
            "x": _q(
                "cost_per_cycle",
                _axis_title(label("cost_axis", lang), width),
                stack="zero",
                axis=_axis(value_format("cost", axis=True)),
            ),
            "y": _n("unit", None, sort="-x", axis=_unit_axis(frame["unit"].unique(), width)),
            "color": _n(
                "activity",
                label("activity", lang),
                scale={"domain": activities, "range": colours},
                legend=_legend(activities, width),
            ),
            "order": {"field": "activity", "type": "nominal", "sort": "ascending"},
            "tooltip": [tip for tip in tips if tip["field"] in frame.columns],
        },
    }
    return _finish(body, data, lang, width, highlight=highlight)


#: Up to this many units every unit of the value quadrant is named; with more, the own unit and the extremes
#: (best and worst outcome, lowest and highest cost), the others in the tooltip (thirty names are not read).
NAME_ALL_UNITS = 10
#: Spots around a point for a unit's name, in order of preference: (align, dx, a, b): the text is aligned
#: `align` at `dx` px right of the point's centre and the top of its box of height h (all its lines) lies
#: a + b * h px below the centre (b = -1: the box ends a px below it, above the point; 0: it starts there).
_LABEL_SPOTS: list[tuple[str, int, float, float]] = [
    ("left", 11, -4, -1), ("left", 11, 2, 0), ("right", -11, -4, -1), ("right", -11, 2, 0),
    ("center", 0, -12, -1), ("center", 0, 13, 0), ("left", 14, 0, -0.5), ("right", -14, 0, -0.5),
    # a step further, for a crowded spot (the own unit's name is always drawn)
    ("left", 11, -20, -1), ("right", -11, -20, -1), ("left", 11, 16, 0), ("right", -11, 16, 0),
    ("center", 0, -28, -1), ("center", 0, 29, 0),
]  # fmt: skip
#: The first this many of _LABEL_SPOTS are next to the point: a name takes more lines there before it goes further.
_NEAR_SPOTS = 8
#: A unit's name on the value quadrant takes at most this many lines (a longer name than that many lines of the
#: plot's width is broken within its words, never cut).
NAME_LINES = 4


def _name_lines(name: str, size: float, room: float) -> list[list[str]]:
    """The ways to write a unit's name in lines no wider, in bold, than `room` px at `size` px: whole, then broken
    at spaces into two, three ... lines (at most NAME_LINES), fewest lines and then the narrowest first. A word
    wider than the room is broken within itself: a name is never cut short (a name too long for a phone's plot
    was drawn across other names and the benchmark line)."""
    fits = max(1, int(room / (size * GLYPH * BOLD)))
    found: list[list[str]] = []
    for chars in range(min(len(name), fits), 0, -1):
        lines = textwrap.wrap(name, chars, break_long_words=False) or [name]
        if len(lines) > NAME_LINES:
            break
        if max(map(len, lines)) <= fits and lines not in found:
            found.append(lines)
    if not found:
        found.append(textwrap.wrap(name, fits, break_long_words=True) or [name])
    return sorted(found, key=lambda lines: (len(lines), max(map(len, lines))))


def _named_units(frame: pd.DataFrame) -> set[str]:
    """The units named on the value quadrant besides the own unit: all of a few, else the extremes."""
    if len(frame) <= NAME_ALL_UNITS:
        return set(frame["unit"])
    picks = {frame.loc[frame[col].idxmin(), "unit"] for col in ("outcome", "cost")}
    picks |= {frame.loc[frame[col].idxmax(), "unit"] for col in ("outcome", "cost")}
    return picks


def _placed_name_mark(width: int, weight: str, colour: str) -> dict[str, Any]:
    """The text mark of a unit name that _place_labels placed: its lines, alignment and offsets from the point
    are the datum's (the layout of the container that draws it, _by_container_fields)."""
    return {
        "type": "text",
        "align": {"expr": "datum.align"},
        "baseline": "top",
        "lineBreak": "\n",
        "dx": {"expr": "datum.dx"},
        "dy": {"expr": "datum.dy"},
        "fontSize": _responsive("text", width < NARROW),
        "fontWeight": weight,
        "color": colour,
    }


def _place_labels(
    points: pd.DataFrame,
    x_dom: list[float],
    y_dom: list[float],
    plot_w: float,
    plot_h: float,
    size: float,
    named: set[str],
    targets: tuple[float | None, float | None] = (None, None),
    curves: Sequence[tuple[np.ndarray, np.ndarray]] = (),
    intervals: Sequence[tuple[float, float, float, float]] = (),
) -> pd.DataFrame:
    """Collision-free spots for the unit names of a scatter drawn with a plot `plot_w` × `plot_h` px and names of
    `size` px. The `named` units are placed first, each at the first spot (of _LABEL_SPOTS, its name in the
    fewest lines of _name_lines) inside the plot where it overlaps no other name and no point, and where it can
    none of the benchmark lines at `targets` (cost, outcome) and the `curves` (x and y values of each line,
    a funnel's limits) either, and then crosses the fewest of the `intervals` (x0, y0, x1, y1: each unit's
    horizontal and vertical confidence-interval rules, in data values; a name was drawn across the grey rules of
    its own and its neighbours' intervals, which no placement looked at); then every other unit gets such a spot free
    of those, for when it is the own unit (one own unit at a time). Every box is measured in bold (any unit may be
    the own one). A unit with no free spot still gets one for when it is the own unit, inside the plot and clear
    of the points: the names it covers there step aside while it is the own unit. A name never covers a point:
    with no spot clear of them, its text is empty (left off; the legend names the own unit, _own_unit_legend).

    Returns unit, text (the name's lines joined by a newline; "" where it is left off), align, dx and dy (px
    from the point to the text's anchor and its top), placed (False: no free spot; for a named unit, none clear
    of the lines too), yields_to ("|H02|H07|": the own units whose name covers this one's), cost and outcome
    (the point's position). The chart keeps them in a dataset of its own (NAMES_PREFIX), which the CSV
    download leaves out.

    Offsets are in pixels, so a name stays next to its point however wide the chart is stretched; placed for the
    narrowest plot of the fonts `size` belongs to, where points are closest: wider, points and benchmark lines
    only move apart while each name keeps its offset, so boxes apart above one another or side by side in the
    order of their points stay apart (boxes side by side in the other order are not counted apart)."""
    (x0, x1), (y0, y1) = x_dom, y_dom

    def to_x(value: Any) -> Any:
        return (np.asarray(value, dtype=float) - x0) / ((x1 - x0) or 1) * plot_w

    def to_y(value: Any) -> Any:
        return plot_h - (np.asarray(value, dtype=float) - y0) / ((y1 - y0) or 1) * plot_h

    # a box: left, top, right, bottom and the x its position follows (its point's, a benchmark line's)
    Box = tuple[float, float, float, float, float]
    px, py = to_x(points["cost"]), to_y(points["outcome"])
    # a point's circle (size 220: 8.4 px) and the 1.5 px of a name's halo: a name's outline left 1 px of a point
    radius = 10.0
    dots: list[Box] = [(x - radius, y - radius, x + radius, y + radius, x) for x, y in zip(px, py, strict=True)]
    rules: list[Box] = []
    cost_target, outcome_target = targets
    if cost_target is not None and np.isfinite(float(cost_target)) and 0 <= (tx := float(to_x(cost_target))) <= plot_w:
        rules.append((tx - 2, 0.0, tx + 2, plot_h, tx))
    if outcome_target is not None and np.isfinite(float(outcome_target)) and 0 <= to_y(outcome_target) <= plot_h:
        rules.append((0.0, float(to_y(outcome_target)) - 2, plot_w, float(to_y(outcome_target)) + 2, 0.0))
    units = [str(u) for u in points["unit"]]
    line_h = size + 2  # Vega's line height: the font size and 2 px
    # the curves' segments as boxes (left, top, right, bottom; 1 px beside the stroke), resampled every ~8 px: a
    # name is kept clear of them as of the benchmark lines, where it can be
    segments = []
    for cx, cy in curves:
        cx, cy = np.asarray(cx, dtype=float), np.asarray(cy, dtype=float)
        keep = np.isfinite(cx) & np.isfinite(cy)
        if keep.sum() < 2:
            continue
        order = np.argsort(cx[keep])
        sx, sy = to_x(cx[keep][order]), to_y(cy[keep][order])
        grid = np.linspace(max(sx[0], 0.0), min(sx[-1], plot_w), max(2, int(plot_w // 8)))
        gy = np.interp(grid, sx, sy)
        segments.append(
            np.column_stack([grid[:-1], np.minimum(gy[:-1], gy[1:]) - 2, grid[1:], np.maximum(gy[:-1], gy[1:]) + 2])
        )
    curve_boxes = np.concatenate(segments) if segments else np.empty((0, 4))

    curve_of = np.repeat(np.arange(len(segments)), [len(s) for s in segments]) if segments else np.empty(0, int)
    # the intervals' rules (1.5 px wide) as boxes 1.5 px beside their middle: a vertical one keeps its width and
    # follows its x as the plot widens (a point's box); a horizontal one stretches with the plot (both its ends
    # move), so a name is apart from it only above or below it or wholly beyond an end that its own point is too
    stems: list[Box] = []
    spans: list[Box] = []
    for ix0, iy0, ix1, iy1 in intervals:
        if not all(np.isfinite([ix0, iy0, ix1, iy1])):
            continue
        (left, right), (top, bottom) = sorted(map(float, to_x([ix0, ix1]))), sorted(map(float, to_y([iy0, iy1])))
        if left == right:
            stems.append((left - 1.5, top, right + 1.5, bottom, left))
        else:
            spans.append((left, top - 1.5, right, bottom + 1.5, left))

    def across_spans(box: Box) -> int:
        """How many horizontal interval rules the box touches at this width or a wider one."""
        return sum(
            not (
                box[3] <= s[1]
                or s[3] <= box[1]
                or (box[2] <= s[0] and box[4] <= s[0])
                or (s[2] <= box[0] and s[2] <= box[4])
            )
            for s in spans
        )

    def on_intervals(box: Box) -> int:
        """How many interval rules (vertical and horizontal) the box touches."""
        return hits(box, stems) + across_spans(box)

    def on_curve(box: Box) -> int:
        """How many of the curves' segments the box overlaps."""
        c = curve_boxes
        return int(((c[:, 0] < box[2]) & (box[0] < c[:, 2]) & (c[:, 1] < box[3]) & (box[1] < c[:, 3])).sum())

    def crossings(box: Box) -> tuple[int, int, int]:
        """How many lines (benchmark lines and curves) the box touches, then how many interval rules, then how
        many curve segments."""
        c = curve_boxes
        touched = (c[:, 0] < box[2]) & (box[0] < c[:, 2]) & (c[:, 1] < box[3]) & (box[1] < c[:, 3])
        return hits(box, rules) + len(set(curve_of[touched].tolist())), on_intervals(box), int(touched.sum())

    def box_at(i: int, lines: list[str], spot: tuple[str, int, float, float]) -> Box:
        align, dx, a, b = spot
        w = max(_text_px(line, size, bold=True) for line in lines)
        h = len(lines) * line_h - 2
        left = px[i] + dx - (w if align == "right" else w / 2 if align == "center" else 0)
        top = py[i] + a + b * h
        return (left, top, left + w, top + h, float(px[i]))

    def apart(a: Box, b: Box) -> bool:
        """Apart at this width and at any wider one: side by side only in the order of the x they follow (wider,
        those move apart; a name left of a point right of its own would come to overlap it)."""
        return a[3] <= b[1] or b[3] <= a[1] or (a[2] <= b[0] and a[4] <= b[4]) or (b[2] <= a[0] and b[4] <= a[4])

    def hits(box: Box, others: Iterable[Box]) -> int:
        return sum(not apart(box, other) for other in others)

    def overflow(box: Box) -> float:
        return max(0.0, -box[0]) + max(0.0, box[2] - plot_w) + max(0.0, -box[1]) + max(0.0, box[3] - plot_h)

    Choice = tuple[list[str], tuple[str, int, float, float], Box]
    options = {u: _name_lines(u, size, plot_w) for u in set(units)}

    def free_spot(i: int, names: list[Box], *, clear: bool = False) -> Choice | None:
        """The first spot free of names and points inside the plot; one clear of the benchmark lines first, else
        the one across the fewest lines (the first such spot took the first free of points: on the demo's
        colorectal funnel the own unit's name lay on the 95% limit with a spot across fewer lines further on).
        `clear`: only a spot clear of every line (None: there is none)."""
        others = [d for j, d in enumerate(dots) if j != i] + names
        best: tuple[tuple[int, int, int], Choice] | None = None
        for spots in (_LABEL_SPOTS[:_NEAR_SPOTS], _LABEL_SPOTS[_NEAR_SPOTS:]):
            for lines in options[units[i]]:
                for spot in spots:
                    box = box_at(i, lines, spot)
                    if overflow(box) == 0 and all(apart(box, other) for other in others):
                        crossed = crossings(box)
                        if crossed == (0, 0, 0):
                            return lines, spot, box
                        if (not clear or crossed[0] == 0) and (best is None or crossed < best[0]):
                            best = (crossed, (lines, spot, box))
        return best[1] if best else None

    chosen: dict[int, tuple[Choice, bool]] = {}
    named_boxes: dict[int, Box] = {}
    for i, unit in enumerate(units):
        # another unit's name is drawn only where it crosses no line (the demo's costs page on a phone drew
        # "Eikenrode Ziekenhuis" across the dotted benchmark line); else it is left to the tooltip
        if unit in named and (choice := free_spot(i, list(named_boxes.values()), clear=True)) is not None:
            chosen[i] = (choice, True)
            named_boxes[i] = choice[2]
    hides: dict[int, set[str]] = {i: set() for i in range(len(units))}
    for i in range(len(units)):
        if i in chosen:
            continue
        # for when unit i is the own unit (whose name is always drawn): free of the named units' names if it can
        names = [b for j, b in named_boxes.items() if j != i]
        choice = free_spot(i, names)
        if choice is not None:
            chosen[i] = (choice, unit not in named or crossings(choice[2])[0] == 0)
            continue
        # no spot free of names: one free of the points (and inside the plot) still, where the names it covers
        # step aside; none free of the points either: the name is left off (text ""), and the legend's "Own
        # unit" entry names the unit instead (_own_unit_legend). Why: the fallback took the spot over the
        # fewest points, and a name with its halo hid a neighbour's point entirely (the demo's costs page on a
        # phone: "Universitair Medisch Centrum Veenmeer" over Eikenrode's point), so a reader lost a unit
        others = [d for j, d in enumerate(dots) if j != i]
        candidates = [
            (lines, spot, box)
            for lines in options[units[i]]
            for spot in _LABEL_SPOTS
            if overflow(box := box_at(i, lines, spot)) == 0 and hits(box, others) == 0
        ]
        if not candidates:
            chosen[i] = (([], _LABEL_SPOTS[0], (0.0, 0.0, 0.0, 0.0, 0.0)), False)
            continue
        choice = min(
            candidates,
            key=lambda c: (hits(c[2], rules) + on_curve(c[2]), hits(c[2], names), on_intervals(c[2])),
        )
        chosen[i] = (choice, False)
        for j, other in named_boxes.items():
            if j != i and not apart(choice[2], other):
                hides[j].add(units[i])
    rows = []
    for i, unit in enumerate(units):
        (lines, (align, dx, _, _), box), placed = chosen[i]
        rows.append(
            {
                "unit": unit,
                "text": "\n".join(lines),
                "align": align,
                "dx": dx,
                "dy": round(box[1] - float(py[i]), 1) if lines else 0.0,
                "placed": placed,
                "yields_to": "|" + "|".join(sorted(hides[i])) + "|",
            }
        )
    out = pd.DataFrame(rows, columns=["unit", "text", "align", "dx", "dy", "placed", "yields_to"])
    return out.assign(cost=points["cost"].to_numpy(dtype=float), outcome=points["outcome"].to_numpy(dtype=float))


def value_chart(
    view: pd.DataFrame,
    *,
    outcome_label: str,
    lang: str = "en",
    outcome_kind: str | None = None,
    outcome_target: float | None = None,
    cost_target: float | None = None,
    highlight: str | None = None,
    width: int = DEFAULT_WIDTH,
) -> Spec:
    """Outcome against cost per care cycle (both case-mix adjusted, with 95% CI), benchmark cross-hairs and
    units coloured by their value quadrant (from value_table). The cross-hairs are drawn at outcome_target and
    cost_target (or the view's columns target_outcome/target_cost); `outcome_kind` sets the outcome format.
    Unit labels are placed where they collide with no other label or point; those without room are left out
    (the own unit is always labelled, in bold)."""
    lang = _check_lang(lang)
    title = label("value", lang)
    if view.empty:
        return _empty_chart(title, lang, width)
    kind = outcome_kind or str(_first(view, "kind_outcome", "mean"))
    outcome_target = outcome_target if outcome_target is not None else _first(view, "target_outcome")
    cost_target = cost_target if cost_target is not None else _first(view, "target_cost")
    frame = _guard(
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
    if {"n_outcome", "n_cost"} <= set(view.columns):  # the fewest care cycles behind a point: what a file withholds
        frame["n"] = np.fmin(_col(view, "n_outcome"), _col(view, "n_cost"))  # below the threshold (reports.privacy)
    quadrant = view["quadrant"] if "quadrant" in view.columns else pd.Series(["no clear difference"] * len(view))
    quadrant = quadrant.where(quadrant.isin(list(QUADRANTS)), "no clear difference")
    frame["quadrant"] = quadrant.map(QUADRANT_LABELS[lang]).to_numpy(dtype=object)
    frame = frame[np.isfinite(frame["outcome"]) & np.isfinite(frame["cost"])]
    if frame.empty:
        return _empty_chart(title, lang, width)
    x_dom = _value_domain(
        frame["cost_lower"], frame["cost_upper"], frame["cost"], np.array([cost_target or np.nan]), kind="cost"
    )
    y_dom = _value_domain(
        frame["outcome_lower"],
        frame["outcome_upper"],
        frame["outcome"],
        np.array([outcome_target or np.nan]),
        kind=kind,
    )
    x_scale, y_scale = _scale(x_dom, zero=False), _scale(y_dom, zero=False)
    fmt = value_format(kind, magnitude=_magnitude(frame["outcome"]))
    tips = [
        _tip("unit", "nominal", label("unit", lang)),
        _tip("outcome", "quantitative", outcome_label, fmt),
        _tip("outcome_lower", "quantitative", label("ci_lower", lang), fmt),
        _tip("outcome_upper", "quantitative", label("ci_upper", lang), fmt),
        _tip("cost", "quantitative", label("cost", lang), value_format("cost")),
        _tip("cost_lower", "quantitative", label("ci_lower", lang) + " ", value_format("cost")),
        _tip("cost_upper", "quantitative", label("ci_upper", lang) + " ", value_format("cost")),
        _tip("quadrant", "nominal", label("quadrant", lang)),
    ]
    f = _fonts(width)
    x = _q(
        "cost",
        _axis_title(label("cost_axis", lang), width),
        scale=x_scale,
        axis=_axis(value_format("cost", axis=True)),
    )
    y = _q("outcome", outcome_label, scale=y_scale, axis=_axis(value_format(kind, axis=True)))
    names = QUADRANT_LABELS[lang]
    data = _Data()
    unit_data = data(frame)
    layers: list[dict[str, Any]] = [
        {
            "data": unit_data,
            "mark": {"type": "rule", "color": "#BBBBBB", "strokeWidth": 1.5},
            "encoding": {"x": _q("cost_lower", scale=x_scale), "x2": {"field": "cost_upper"}, "y": y, "tooltip": tips},
        },
        {
            "data": unit_data,
            "mark": {"type": "rule", "color": "#BBBBBB", "strokeWidth": 1.5},
            "encoding": {
                "y": _q("outcome_lower", scale=y_scale),
                "y2": {"field": "outcome_upper"},
                "x": x,
                "tooltip": tips,
            },
        },
    ]
    if cost_target is not None and np.isfinite(float(cost_target)):
        layers.append(_target_rule(data, float(cost_target), "cost", lang, channel="x"))
    if outcome_target is not None and np.isfinite(float(outcome_target)):
        magnitude = _magnitude(frame["outcome"])
        layers.append(_target_rule(data, float(outcome_target), kind, lang, channel="y", magnitude=magnitude))
    quadrant_names = [names[q] for q in QUADRANTS]
    layers.append(
        {
            "data": unit_data,
            "transform": [_who(lang)],
            "mark": {"type": "point", "filled": True, "opacity": 1},
            "encoding": {
                "x": x,
                "y": y,
                "tooltip": tips,
                "color": _n(
                    "quadrant",
                    label("quadrant", lang),
                    scale={"domain": quadrant_names, "range": [QUADRANT_COLOURS[q] for q in QUADRANTS]},
                    legend=_legend(quadrant_names, width),
                ),
                "shape": _who_shape(lang, width),  # naming the own unit where its name is left off: below
                "size": _when_highlight(380, 220),
                "stroke": _when_highlight(HIGHLIGHT_COLOUR, "#666666"),
                "strokeWidth": _when_highlight(3, 0.8),
            },
        }
    )
    height = 480 if width >= NARROW else 340
    if x_dom and y_dom:
        # three layouts of the names, each placed for the narrowest container that draws it, where points are
        # closest (wider, the points only move apart while each name keeps its pixel offset from its point): a
        # phone's (from PHONE_CONTAINER at the phone's fonts), a container's narrower than built (from PHONE_WIDTH
        # at the built fonts) and one at least as wide as built; a fitted chart picks one by its container
        # (_by_container_fields), as it picks its fonts
        named = _named_units(frame)
        targets = (cost_target, outcome_target)
        wide_plot, phone_plot, built_plot = _scatter_plots(width)
        # each unit's two interval rules: its cost's (horizontal) and its outcome's (vertical), as drawn above
        rows = frame[["cost_lower", "outcome", "cost_upper", "cost", "outcome_lower", "outcome_upper"]]
        intervals = [(r[0], r[1], r[2], r[1]) for r in rows.itertuples(index=False)]
        intervals += [(r[3], r[4], r[3], r[5]) for r in rows.itertuples(index=False)]
        layouts = {
            name: _place_labels(frame, x_dom, y_dom, plot, height, size, named, targets, intervals=intervals)
            for name, plot, size in (
                ("wide", wide_plot, f["text"]),
                ("phone", phone_plot, FONT_SIZES_NARROW["text"]),
                ("built", built_plot, f["text"]),
            )
        }
        points = layers[-1]["encoding"]
        points["shape"] = _own_unit_legend(points["shape"], layouts, lang, width)
        placed = layouts["wide"][["unit", "cost", "outcome"]].assign(named=layouts["wide"]["unit"].isin(named))
        for name, layout in layouts.items():
            for column in ("text", "align", "dx", "dy", "placed", "yields_to"):
                placed[f"{name}_{column}"] = layout[column].to_numpy()
        label_data = data(placed, prefix=NAMES_PREFIX)
        chosen = _by_container_fields(text="_text", align="_align", dx="_dx", dy="_dy", placed="_placed")
        chosen += _by_container_fields(yields_to="_yields_to")
        for predicate, weight in (
            (
                f"datum.named && datum.placed && !({IS_HIGHLIGHT})"
                f" && indexof(datum.yields_to, '|' + {HIGHLIGHT_PARAM} + '|') < 0",
                "normal",
            ),
            (f"{IS_HIGHLIGHT} && datum.text !== ''", "bold"),
        ):
            name = {
                "data": label_data,
                "transform": [*chosen, {"filter": predicate}],
                "mark": _placed_name_mark(width, weight, "#222222"),
                "encoding": {
                    "x": _q("cost", scale=x_scale),
                    "y": _q("outcome", scale=y_scale),
                    "text": _n("text"),
                },
            }
            # a name no spot near its point keeps clear of every interval's rule: the rule stops short of it
            layers += [_halo(name), name]
    subtitle = label("value_sub", lang)
    if len(frame) > NAME_ALL_UNITS:
        subtitle = f"{subtitle}. {label('value_names', lang)}"
    body = {"title": _title(title, subtitle, width), "height": height, "layer": layers}
    return _finish(body, data, lang, width, highlight=highlight)


__all__ = [
    "ASSESSMENTS",
    "ASSESSMENT_LABELS",
    "DEFAULT_WIDTH",
    "MAX_ROWS",
    "MAX_SERIES_POINTS",
    "PALETTE",
    "QUADRANT_COLOURS",
    "Spec",
    "caterpillar_chart",
    "chart_png",
    "chart_table",
    "contrast_ratio",
    "cost_breakdown_chart",
    "crude_vs_adjusted_chart",
    "cusum_chart",
    "funnel_chart",
    "histogram",
    "label",
    "locale",
    "prom_change_chart",
    "prom_response_chart",
    "score_distribution_chart",
    "scorecard_colour",
    "scorecard_text_colour",
    "scorecard_tint",
    "small_multiples_chart",
    "thin_series",
    "trend_chart",
    "validate_spec",
    "value_chart",
    "value_format",
    "with_highlight",
    "with_width",
]
