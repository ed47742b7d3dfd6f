"""Small render helpers shared by the pages: formatted indicator tables and the empty state."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import html
import math
import re
import unicodedata
from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd
import streamlit as st

from ui import auth, data, filters, kept
from vbhc import access, charts, verdict
from vbhc.catalog import BINARY_KINDS, PROPORTION_KINDS, SURVIVAL_KINDS, default_catalog
from vbhc.i18n import (
    MISSING,
    fmt_ci,
    fmt_date,
    fmt_difference,
    fmt_int,
    fmt_number,
    fmt_ratio,
    format_value,
    t,
    unit_label,
)
from vbhc.indicators import IndicatorResult
from vbhc.safety import html_text, safe_file_name
from vbhc.settings import database_url, suppress_below
from vbhc.unit_charts import NO_CHART_KINDS


def empty_state(lang: str) -> None:
    st.info(t("empty.database_empty", lang), icon=":material/info:")


def spc_label(icon: object, lang: str) -> str:
    """A Making Data Count icon (vbhc.spc variation or assurance) in words; en dash when there is none."""
    return t(f"spc.{icon}", lang) if isinstance(icon, str) and icon else t("spc.none", lang)


def indicator_display(
    rows: pd.DataFrame, lang: str, *, by: str = "indicator", charts: dict | None = None
) -> pd.DataFrame:
    """The indicator table as the viewer reads it: labels in their language, numbers in their locale, and
    one verdict column (vbhc.verdict: position at 99.8% and 95%, rankability and, with `charts` -- the SPC
    chart per row index -- the trend, plus the variation and assurance icons). O/E only where a row has one:
    a mean (cost, a PROM score) has none, and the cost page's table was a column of dashes under a key that
    spoke of events."""
    out: dict[str, list[str]] = {}
    if by == "indicator":
        pairs = zip(rows["condition"], rows["indicator"], strict=True)
        out[t("column.indicator", lang)] = [indicator_label(c, i, lang) for c, i in pairs]
    else:
        out[t("column.unit", lang)] = [unit_label(u, lang) for u in rows["unit"]]
    records = list(rows.itertuples())  # one pass over the rows for all formatted columns
    out[t("column.care_cycles", lang)] = [count_text(r, lang) for r in records]
    out[t("column.observed", lang)] = [_observed(r, lang) for r in records]
    out[t("column.expected", lang)] = [_expected(r, lang) for r in records]
    if rows["oe"].notna().any():  # a table of means only (costs, PROM scores) has no O/E: no column of dashes
        out[t("column.oe", lang)] = [fmt_ratio(r.oe, lang) for r in records]
    out[t("column.crude", lang)] = [format_value(r.crude_value, r.kind, lang) for r in records]
    out[t("column.adjusted", lang)] = [format_value(r.adjusted_value, r.kind, lang) for r in records]
    out[t("column.ci95", lang)] = [fmt_ci(r.adjusted_lower, r.adjusted_upper, r.kind, lang) for r in records]
    out[t("column.benchmark", lang)] = [format_value(r.target, r.kind, lang) for r in records]
    judged = verdict.verdicts(rows, charts)
    out[t("verdict.column", lang)] = [v.sentence(lang) for v in judged]
    if charts is not None:
        out[t("spc.variation", lang)] = [spc_label(v.variation, lang) for v in judged]
        out[t("spc.assurance", lang)] = [spc_label(v.assurance, lang) for v in judged]
    # built as lists and made a frame once: a frame grown column by column converts each to Arrow text
    return pd.DataFrame(out, index=rows.index, dtype=object)


def verdict_assessments(rows: pd.DataFrame, charts: dict | None = None) -> list[str]:
    """The palette assessment of each row's verdict, for colouring its cell (see vbhc.verdict.Verdict)."""
    return [v.assessment for v in verdict.verdicts(rows, charts)]


def charts_by_row(rows: pd.DataFrame, charts: dict[str, pd.DataFrame], unit: str) -> dict:
    """The unit's SPC charts by indicator (ui.data.unit_charts, vbhc.unit_charts) by row index of `rows`, for the
    rows of the unit with a trend: what indicator_display and verdict_assessments take."""
    out = {}
    for idx, indicator, kind, row_unit in zip(rows.index, rows["indicator"], rows["kind"], rows["unit"], strict=True):
        if kind in NO_CHART_KINDS or row_unit != unit:
            continue
        chart = charts.get(str(indicator))
        if chart is not None:
            out[idx] = chart
    return out


def indicator_label(condition: str, indicator: str, lang: str) -> str:
    """An indicator of the table by its ids, labelled from the catalog."""
    return default_catalog().condition(condition).indicator(indicator).label(lang)


def exclusion_label(reason, condition: str, lang: str) -> str:
    """Why care cycles were left out of a case-mix model (vbhc.casemix.ExclusionReason), in the reader's language."""
    if reason.code == "missing":
        return t("model.reason_missing", lang, variable=variable_label(reason.variable, condition, lang))
    return t(f"model.reason_{reason.code}", lang)


def variable_label(name: str, condition: str, lang: str) -> str:
    """A case-mix variable (or the model's non-additive remainder) as the reader sees it."""
    from vbhc.casemix import REMAINDER

    if name == REMAINDER:
        return t("model.non_additive", lang)
    cond = default_catalog().condition(condition)
    return (cond.casemix_variable(name) if name in cond.casemix_names else default_catalog().variable(name)).label(lang)


def model_warning(diagnostics, lang: str) -> str | None:
    """The case-mix model's warning (vbhc.casemix.WARNINGS) in the reader's language, numbers in its locale."""
    code = diagnostics.warning_code
    if not code:
        return None
    values = dict(diagnostics.warning_values)
    if "cycles" in values:
        values["cycles"] = fmt_int(values["cycles"], lang)
    if "parameters" in values:  # the number the message counts: it chooses the singular or plural form
        values["count"] = int(values.pop("parameters"))
    if "events_per_parameter" in values:
        values["events_per_parameter"] = fmt_number(values["events_per_parameter"], lang, 1)
    return t(f"model.warning_{code}", lang, **{k: v for k, v in values.items() if k != "error"})


def count_text(row, lang: str) -> str:
    """Exact n, or what vbhc.access left of it: a band for another unit, the marker for a withheld cell (`row`:
    a table row as a named tuple or a Series)."""
    band = getattr(row, "n_band", None)
    if isinstance(band, str) and band:
        return band
    if bool(getattr(row, "suppressed", False)) is True and pd.isna(row.n):
        return t("report.withheld_marker", lang)  # the files' marker: "<10" was false for a secondary cell
    return fmt_int(row.n, lang)


def _observed(row, lang: str) -> str:
    if row.kind in PROPORTION_KINDS:
        return fmt_int(row.observed, lang)
    return format_value(row.observed, row.kind, lang)


def _expected(row, lang: str) -> str:
    if pd.isna(row.expected):
        return MISSING
    if row.kind in (*BINARY_KINDS, *SURVIVAL_KINDS):
        return fmt_number(row.expected, lang, 1)  # expected number of events (survival: deaths)
    return format_value(row.expected, row.kind, lang)


def cell_style(assessment: object) -> str:
    """CSS for a table cell coloured by its assessment: a light tint of the charts' palette colour under dark
    text (WCAG AA; a solid colour behind a sentence is heavy and hard to read), so a unit has one colour
    everywhere. Better and worse also get a bar of the full colour at the cell's left edge, which stands out
    from the grey ones whatever the reader's colour vision (st.dataframe draws only the tint)."""
    if not isinstance(assessment, str) or not assessment:
        return ""
    css = f"background-color: {charts.scorecard_tint(assessment)}; color: {charts.TINT_TEXT_COLOUR}"
    colour = charts.scorecard_colour(assessment)
    if colour in (charts.PALETTE[charts.BETTER], charts.PALETTE[charts.WORSE]):
        css += f"; box-shadow: inset 4px 0 0 {colour}; padding-left: 12px"
    return css


#: Average width in px of a character of table text (14 px Source Sans), to tell which columns wrap.
_CHAR_PX = 7
#: The look of the static tables (the class is the pages' own): a light grid in a rounded box that scrolls sideways
#: on a phone, headers in the faded text colour, text and borders taken from the theme's text colour so a dark
#: theme reads too, and rows reading from the top.
_TABLE_CSS = (
    "<style>"
    ".vbhc-table-wrap{container-type:inline-size}"
    ".vbhc-table-hint{display:none;font-size:.875rem;margin-bottom:.25rem;"
    "color:color-mix(in srgb,currentColor 60%,transparent)}"
    ".vbhc-table-box{overflow-x:auto;border:1px solid rgba(128,128,128,.25);border-radius:.5rem;margin-bottom:1rem}"
    ".vbhc-table{border-collapse:collapse;width:100%;font-size:.875rem;line-height:1.6;color:inherit}"
    ".vbhc-table th,.vbhc-table td{padding:.25rem .375rem;text-align:left;vertical-align:top;"
    "border-bottom:1px solid rgba(128,128,128,.25);border-right:1px solid rgba(128,128,128,.25)}"
    ".vbhc-table th{font-weight:400;vertical-align:bottom;color:color-mix(in srgb,currentColor 60%,transparent)}"
    ".vbhc-table th>div{min-width:min-content}"
    ".vbhc-table tr>:last-child{border-right:none}.vbhc-table tbody tr:last-child td{border-bottom:none}"
    "</style>"
)
#: The class that marks the pages' static tables in the page (tests and the browser checks find them by it).
TABLE_CLASS = "vbhc-table"
#: A cell's padding left and right together and its border, in px (the stylesheet's .375rem each side).
_CELL_EXTRA_PX = 13
#: The class of the line above a table that says it scrolls sideways: shown only while the table's box is
#: narrower than the table needs (a container query on the box), so a phone says so and a desktop never does.
SCROLL_HINT_CLASS = "vbhc-table-hint"


#: Where the browser may break a cell's text: at a space (not a no-break space: "€ 21.983" stays whole), and
#: after a hyphen inside a word ("95%-|grenzen").
_BREAKS = re.compile(r"[ \t\r\n\f]+|(?<=[^\s-]-)(?=[^\s-])")


def table_min_px(frame: pd.DataFrame, floors: dict[str, int] | None = None) -> int:
    """The narrowest the browser can draw `frame` as table_html does (px, an estimate): each column as wide as its
    longest unbreakable piece (header or cell; a cell breaks between words and after a word's hyphen), measured
    in the table's font (14 px Source Sans, grid_text_px), or its floor, plus padding and border. Why not a flat
    7 px per character: that measured lowercase text a fifth too wide, and the cost page's value table, which
    fits a phone (356 px), said it scrolled sideways."""
    floors = floors or {}
    total = 2  # the box's border
    for column in frame.columns:
        pieces = [w for v in (column, *frame[column].map(_cell_text)) for w in _BREAKS.split(html.unescape(str(v)))]
        longest = math.ceil(max((grid_text_px(w) for w in pieces if w), default=0))
        total += max(longest, floors.get(column, 0)) + _CELL_EXTRA_PX
    return total


def _scroll_hint(text: str, needed: int) -> str:
    """The line that says a table scrolls sideways, shown by a container query only while the table's box is
    narrower than the `needed` px the table takes (the box is the query's container)."""
    name = f"{SCROLL_HINT_CLASS}-{needed}"
    # two classes: every table's stylesheet hides the hint again, later in the page, with one
    return (
        f"<style>@container (max-width:{needed - 1}px){{.{SCROLL_HINT_CLASS}.{name}{{display:block}}}}</style>"
        f'<div class="{SCROLL_HINT_CLASS} {name}">{html_text(text)}</div>'
    )


def _cell_text(value: object) -> str:
    """A cell's text as typed, HTML-escaped; a missing value reads as the dash of every other table."""
    if value is None or (not isinstance(value, str) and pd.api.types.is_scalar(value) and pd.isna(value)):
        return MISSING  # None, NaN, pd.NA, NaT
    return html_text(value)


def table_html(
    frame: pd.DataFrame,
    colours: pd.DataFrame | None = None,
    widths: dict[str, int] | None = None,
    min_widths: dict[str, int] | None = None,
    scroll_hint: str | None = None,
) -> str:
    """The HTML that static_table shows: every cell and header escaped (vbhc.safety.html_text), cells tinted by
    the assessment in `colours` (same index and columns; empty or missing: not coloured), each column in `widths`
    wrapping at that many px (so the table fits the 940 px main area) and each in `min_widths` never narrower
    (the verdict keeps its room; the browser narrows the short columns first). A column whose text wraps keeps at
    least 3/4 of its width: on a phone the browser would otherwise squeeze it to its longest word, rows ten lines
    high, instead of letting the table scroll sideways. A header is never narrower than its longest word.
    `scroll_hint`: the text of a line above the table shown only while the page is too narrow for it (a phone),
    where the table scrolls sideways and its right-hand columns are out of sight with nothing else saying so."""
    widths, floors = widths or {}, dict(min_widths or {})
    for column, width in widths.items():  # a column of text that wraps keeps most of its width on a phone too
        longest = max((len(str(v)) for v in frame[column]), default=0) if column in frame else 0
        if longest * _CHAR_PX > width:
            floors.setdefault(column, round(width * 0.75))
    boxes = []  # per column: the style of the box its text wraps in ("" = no box)
    for column in frame.columns:
        props = [f"max-width:{widths[column]}px"] if column in widths else []
        props += [f"min-width:{floors[column]}px"] if column in floors else []
        boxes.append(";".join(props))
    paint = None
    if colours is not None:
        paint = colours.reindex(index=frame.index, columns=frame.columns).to_numpy(dtype=object)
    # a header wraps at its column's width but keeps its longest word whole (the stylesheet's min-content)
    head = "".join(
        f'<th scope="col"><div style="max-width:{widths[c]}px">{html_text(c)}</div></th>'
        if c in widths
        else f'<th scope="col"><div>{html_text(c)}</div></th>'
        for c in frame.columns
    )
    body = []
    for i, values in enumerate(frame.itertuples(index=False, name=None)):
        cells = []
        for j, value in enumerate(values):
            style = cell_style(paint[i, j]) if paint is not None else ""
            text = _cell_text(value)
            if boxes[j]:
                text = f'<div style="{boxes[j]}">{text}</div>'
            cells.append(f'<td style="{style}">{text}</td>' if style else f"<td>{text}</td>")
        body.append(f"<tr>{''.join(cells)}</tr>")
    hint = _scroll_hint(scroll_hint, table_min_px(frame, floors)) if scroll_hint else ""
    return (
        f'{_TABLE_CSS}<div class="vbhc-table-wrap">{hint}<div class="vbhc-table-box"><table class="{TABLE_CLASS}">'
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table></div></div>"
    )


def static_table(
    frame: pd.DataFrame,
    *,
    colours: pd.DataFrame | None = None,
    widths: dict[str, int] | None = None,
    min_widths: dict[str, int] | None = None,
    headers: dict[str, str] | None = None,
    lang: str | None = None,
) -> None:
    """A small table (up to a few dozen rows: verdicts, the meeting's changes, a scorecard) drawn as a static
    HTML table whose cells wrap and whose rows grow with their text.

    Why not st.dataframe: its canvas grid gives every row one fixed height, so a sentence longer than that
    height is cut off, and how long a verdict gets depends on the language, the column width and the screen.
    Why not st.table with a pandas Styler: Streamlit marshals a Styler cell by cell through pandas and Arrow,
    15-25 ms per table (py-spy: a third of the condition team page's script time, with 6-10 tables per page);
    the same table built here as text takes under a millisecond and reads the same. Every cell and header is
    HTML-escaped (vbhc.safety.html_text) and Streamlit sanitises the HTML again (st.html), so a unit called
    `<script>` or `[x](url)` reads as typed. `headers` renames columns for display (short headers,
    layout.indicator_headers); colours and widths are by the frame's names. On a screen too narrow for the table
    (a phone) a line above it says that it scrolls sideways, in `lang` (None: the viewer's)."""
    st.html(static_table_html(frame, colours=colours, widths=widths, min_widths=min_widths, headers=headers, lang=lang))


def static_table_html(
    frame: pd.DataFrame,
    *,
    colours: pd.DataFrame | None = None,
    widths: dict[str, int] | None = None,
    min_widths: dict[str, int] | None = None,
    headers: dict[str, str] | None = None,
    lang: str | None = None,
) -> str:
    """The HTML static_table shows (its arguments), for a page that keeps the finished table between runs."""
    if headers:
        frame = frame.rename(columns=headers)
        colours = colours.rename(columns=headers) if colours is not None else None
        widths = {headers.get(k, k): v for k, v in (widths or {}).items()}
        min_widths = {headers.get(k, k): v for k, v in (min_widths or {}).items()}
    hint = t("pages.table_scrolls", lang or filters.language())
    return table_html(frame, colours, widths, min_widths, scroll_hint=hint)


#: Streamlit's data grid (1.67): 14 px Source Sans, 9 px of space either side of a cell's text, and an automatic
#: column width (a column without one in column_config) of 50-500 px; the width of its named sizes ("small",
#: "medium", "large"). Measured on the 1440 px screenshots: a column is its longest text plus 18 px.
_GRID_FONT_PX, _GRID_CELL_PX, _GRID_AUTO_PX = 14, 18, (50, 500)
_GRID_SIZES = {"small": 75, "medium": 200, "large": 400}
#: Source Sans advance widths (thousandths of the font size), grouped: a flat 8 px per character (the old
#: estimate) made the data page's completeness grid 986 px where the grid drew 781, so a desktop grid that fit
#: said it scrolled; these give the screenshots' texts within a pixel ("Charlson comorbidity index" 160 px).
_GRID_GLYPHS = {
    " ": 200,
    "ijlI.,:;'!|": 250,
    'frt()[]-/"': 330,
    "cszxvyJ?*+=<>": 450,
    "aegkLY0123456789_#$€–—~^": 495,
    "bdhnopquAEFSTVXZ": 540,
    "BCDGKPR": 595,
    "HNOQU&@": 655,
    "wW": 720,
    "mM%": 790,
}
_GLYPH_EM = {char: width for chars, width in _GRID_GLYPHS.items() for char in chars}


def grid_text_px(text: str) -> float:
    """The width (px) st.dataframe's grid draws `text` in: a character by its group in Source Sans, an accented
    letter as its letter, any other as a wide lowercase one (errs wide: the hint rather shows once too often)."""
    total = 0
    for char in str(text):
        width = _GLYPH_EM.get(char)
        if width is None:
            base = unicodedata.normalize("NFKD", char)[:1]
            width = _GLYPH_EM.get(base, 560)
        total += width
    return total * _GRID_FONT_PX / 1000


def _grid_cell_text(value: object) -> str:
    """A grid cell's text as the grid shows it (unescaped: the grid draws text, not HTML); missing: empty."""
    if value is None or (not isinstance(value, str) and pd.api.types.is_scalar(value) and pd.isna(value)):
        return ""
    return str(value)


def grid_min_px(frame: pd.DataFrame, column_config: dict[str, Any] | None = None, *, index: bool = False) -> int:
    """The width (px) st.dataframe draws `frame` at before it stretches it to the page: each column as wide as
    its column_config says, else as the grid sizes it (glide-data-grid's measureColumn): its longest text
    (header or a sampled cell: a grid cell never wraps) plus the cell's padding, within 50-500 px; and the
    index's column when it is shown."""
    config = column_config or {}
    total = 2  # the grid's border
    columns = [*([frame.index.to_series()] if index else []), *(frame[c] for c in frame.columns)]
    for series in columns:
        width = (config.get(series.name) or {}).get("width") if isinstance(config.get(series.name), dict) else None
        if isinstance(width, str):
            width = _GRID_SIZES.get(width)
        if width is None:
            sample = [grid_text_px(_grid_cell_text(v)) + _GRID_CELL_PX for v in _grid_sample(series)]
            if len(sample) > 5:  # the grid ignores a cell twice as wide as the sample's mean (it cuts that text)
                mean = sum(sample) / len(sample)
                sample = [w for w in sample if w < 2 * mean]
            longest = max([grid_text_px(_grid_cell_text(series.name)) + _GRID_CELL_PX, *sample])
            width = min(max(longest, _GRID_AUTO_PX[0]), _GRID_AUTO_PX[1])
        total += width
    return math.ceil(total)


def _grid_sample(series: pd.Series) -> list[object]:
    """The cells the grid sizes a column by: its first 10 rows and its last (not every row)."""
    values = list(series)
    return values[:10] + values[-1:] if len(values) > 10 else values


def data_grid(frame: pd.DataFrame, *, lang: str | None = None, **kwargs: Any) -> Any:
    """st.dataframe of `frame` (its keyword arguments) with, above it, the line that says it scrolls sideways,
    shown only while the page is narrower than the grid (a phone). Why: a phone showed the team page's data grids
    cut at the screen's right edge with nothing saying that the other columns are a swipe away, as the static
    tables had shown before they got the same line."""
    needed = grid_min_px(frame, kwargs.get("column_config"), index=not kwargs.get("hide_index", False))
    hint = _scroll_hint(t("pages.table_scrolls", lang or filters.language()), needed)
    st.html(f'{_TABLE_CSS}<div class="vbhc-table-wrap">{hint}</div>')
    return st.dataframe(frame, **kwargs)


def _show(spec: dict[str, Any]) -> None:
    """Send a finished spec (vbhc.charts builds plain Vega-Lite dicts, validated against the schema in the
    tests). Stretched to the container: the fitted charts (autosize fit-x) take its width exactly."""
    st.vega_lite_chart(spec, width="stretch", theme=None)


def _with_arrow_datasets(spec: dict[str, Any]) -> dict[str, Any]:
    """The spec with its datasets already in Arrow IPC bytes, the form Streamlit sends them in: converted once
    per cached spec instead of on every render (Streamlit passes bytes through as they are)."""
    try:
        from streamlit.dataframe_util import convert_anything_to_arrow_bytes
    except ImportError:  # a Streamlit without it converts the values itself on every render
        return spec
    datasets = spec.get("datasets")
    if not datasets:
        return spec
    return {**spec, "datasets": {name: convert_anything_to_arrow_bytes(values) for name, values in datasets.items()}}


@dataclasses.dataclass(frozen=True)
class _Cached:
    """A built chart: the spec sent to the browser (datasets as Arrow bytes) and the plain one for downloads."""

    shown: dict[str, Any]
    plain: dict[str, Any]


@st.cache_resource(show_spinner=False)
def _spec_cache() -> kept.Kept[dict[str, Any] | None]:
    """Finished chart specs (and a few summaries). Building a chart costs 0.05-0.2 s in Altair, most of a filter
    change; a spec is a plain dict that pages only read."""
    return kept.Kept(size=512)


_NOT_HIGHLIGHTED = object()


def _view_key(key: tuple, *, by_language: bool = True) -> tuple:
    """Dataset version, viewer's scope (with the small-number threshold: what it hides differs) and filters
    except the unit (and the language, unless `by_language`), plus the caller's key."""
    chosen = filters.current()
    view = None
    if chosen is not None:
        view = dataclasses.replace(chosen, unit=None, **({} if by_language else {"lang": ""}))
    # the published comparison groups decide what a manager's group views withhold (vbhc.access.offered_groups)
    groups = data.published_groups()
    return (database_url(), data.version(), auth.current().cache_key, suppress_below(), groups, view, *key)


def cached(key: tuple, compute: Callable[[], Any], *, by_language: bool = True) -> Any:
    """A per-unit summary (e.g. the case-mix contributions) computed once per view and `key`; callers only read
    it. For summaries that read every care cycle, which takes a noticeable part of a second on large registries.
    by_language=False for numbers that hold no text (SPC charts, the meeting's changes): a language switch then
    reuses them instead of computing them again."""
    return _spec_cache().get(("value", *_view_key(key, by_language=by_language)), compute)


def cached_chart(
    key: tuple, build: Callable[[], Any], *, highlight: Any = _NOT_HIGHLIGHTED, legend: bool = True
) -> bool:
    """Show a vbhc.charts chart built once per dataset version, filters (except the unit), language and `key`
    (chart name and whatever else it depends on; a chart of one unit's data puts the unit in its key). A chart
    marking the own unit among all units is built once: pass `highlight` and only the spec's highlight
    parameter is swapped, so picking another unit rebuilds nothing. `build` may return None (nothing to draw):
    returns whether a chart was shown. `legend=False`: the page shows the chart without its legends (the page
    explains them once, assessment_legend); its PNG download keeps them."""
    full_key = _view_key(key)

    def spec_of() -> _Cached | None:
        built = build()
        if built is None:
            return None
        plain = built.to_dict(validate=False)
        return _Cached(shown=_with_arrow_datasets(plain), plain=plain)

    cached_spec = _spec_cache().get(full_key, spec_of)
    if cached_spec is None:
        return False
    own = (
        (lambda spec: spec) if highlight is _NOT_HIGHLIGHTED else (lambda spec: charts.with_highlight(spec, highlight))
    )
    _show(own(cached_spec.shown if legend else charts.without_legends(cached_spec.shown)))
    chart_downloads(own(cached_spec.plain), key=("chart", *key))
    return True


def assessment_legend_html(items: Sequence[tuple[str, str]], lang: str) -> str:
    """The HTML of assessment_legend: the charts' legend title, a circle in each assessment's colour with its
    name, then the own unit's diamond and the other units' circle, as the charts draw them; texts escaped."""
    circle = "display:inline-block;width:11px;height:11px;border-radius:50%;margin:0 5px 0 0;vertical-align:-1px"
    diamond = "display:inline-block;width:9px;height:9px;transform:rotate(45deg);margin:0 7px 0 2px;background:#000"
    entry = "display:inline-block;margin:0 16px 2px 0;white-space:nowrap"
    parts = [
        f'<span style="{entry}"><span style="{circle};background:{colour};border:1px solid #666"></span>'
        f"{html_text(name)}</span>"
        for name, colour in items
    ]
    parts.append(
        f'<span style="{entry}"><span style="{diamond}"></span>{html_text(charts.label("own_unit", lang))}</span>'
    )
    parts.append(
        f'<span style="{entry}"><span style="{circle};background:#000"></span>'
        f"{html_text(charts.label('other_units', lang))}</span>"
    )
    title = f'<span style="{entry};font-weight:600">{html_text(charts.label("assessment", lang))}</span>'
    return f'<div class="{LEGEND_CLASS}" style="font-size:14px;line-height:1.7">{title}{"".join(parts)}</div>'


#: the class of the one legend a page draws for several charts (assessment_legend)
LEGEND_CLASS = "vbhc-chart-legend"


def assessment_legend(rows: pd.DataFrame, lang: str) -> None:
    """One legend for a page's charts of `rows` (the compare page's panels, drawn with cached_chart(...,
    legend=False)): every assessment any of them colours a unit by, and the own unit's mark. Why: each panel drew
    the same legend under it, five times on the page, while its entries can be read once; the legend wraps on
    a phone's screen, where a panel's took a third of the panel's height."""
    st.html(assessment_legend_html(charts.assessment_legend_items(rows, lang), lang))


def chart_downloads(spec: dict[str, Any], *, key: tuple) -> bool:
    """A small download menu under a chart: the chart as PNG (vl-convert) and its data as CSV (formula-safe,
    vbhc.safety.safe_csv), each built on click through vbhc.access.export_file: role checked again there and
    recorded in the audit log with the file's SHA-256. Offered only to a viewer whose role may export the
    condition's results. The files follow the file rule, not the page's (vbhc.reports.privacy.chart_file_datasets: rows
    about fewer care cycles than the threshold left out, for every role), and a chart of single care cycles (VLAD,
    CUSUM) is a patient-level export, offered to those who may export patient rows only. The PNG is drawn once per
    dataset version and chart (data.kept_chart, by the digest of its spec and file data); every click is audited.
    Returns whether it was offered."""
    from vbhc.reports.privacy import SuppressionRule, chart_file_datasets, chart_is_patient_level

    chosen = filters.current()
    viewer = auth.current()
    condition = chosen.condition if chosen is not None else None
    patient_level = chart_is_patient_level(spec)
    if chosen is None or not access.may_export(viewer, condition, patient_level=patient_level):
        return False
    lang, unit = chosen.lang, chosen.unit
    rule = SuppressionRule.from_settings()
    # once per chart's data, not on every run: the datasets are named after a hash of their rows (vbhc.charts)
    names = tuple(sorted(spec.get("datasets") or {}))
    datasets = _spec_cache().get(("chart_file", rule.threshold, *names), lambda: chart_file_datasets(spec, rule))
    if datasets is None:  # every figure of the chart is withheld from files: nothing to download
        st.caption(t("download.chart_withheld", lang, count=rule.threshold))
        return False
    spec = {**spec, "datasets": datasets}
    name = str(key[1]) if len(key) > 1 else "chart"
    stem = safe_file_name(f"vbhc-{condition}-{name}" + (f"-{unit}" if unit else ""))
    engine = data.current_engine()
    widget = "chart_" + hashlib.sha1(repr(key).encode(), usedforsecurity=False).hexdigest()[:12]
    with st.popover(t("download.chart", lang), icon=":material/download:"):
        st.download_button(
            t("download.chart_png", lang),
            data=lambda: access.export_file(
                viewer,
                lambda: data.kept_chart(charts.chart_png_digest(spec), lambda: charts.chart_png(spec)),
                what="chart_png",
                file_name=f"{stem}.png",
                condition=condition,
                unit=unit,
                patient_level=patient_level,
                engine=engine,
            ),
            file_name=f"{stem}.png",
            mime="image/png",
            on_click="ignore",
            key=f"{widget}_png",
            icon=":material/image:",
        )
        st.download_button(
            t("download.chart_csv", lang),
            data=lambda: access.export_table(
                viewer,
                charts.chart_table(spec),
                what="chart_data",
                file_name=f"{stem}.csv",
                condition=condition,
                unit=unit,
                patient_level=patient_level,
                engine=engine,
            ),
            file_name=f"{stem}.csv",
            mime="text/csv",
            on_click="ignore",
            key=f"{widget}_csv",
            icon=":material/table:",
        )
    return True


def page_start(title_key: str):
    """Title of a page that needs data, and the filters; shows the empty state and stops when there is none.

    Returns (filters, lang)."""
    chosen = filters.current()
    lang = chosen.lang if chosen else filters.language()
    st.title(t(title_key, lang))
    if chosen is None:
        empty_state(lang)
        st.stop()
    return chosen, lang


XLSX_MIME = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@data.one_snapshot()  # built on a download click, outside a script run
def report_workbook(
    viewer: access.Viewer,
    results: Sequence[IndicatorResult],
    lang: str,
    *,
    peers: tuple[str, ...] = (),
    include_patient_rows: bool = False,
) -> bytes:
    """The Excel workbook of a page's view, as `vbhc report` makes it for the same period: the small cells
    withheld against the other periods of the grid (data.report_grids), so the page's files of all dates and of
    each year cannot be differenced, nor a page's file against the command's."""
    from vbhc.reports import build_workbook
    from vbhc.reports.core import unit_names_for
    from vbhc.reports.followup import read_follow_up

    url, version = database_url(), data.version()
    own = data.own_hospital()
    return build_workbook(
        results,
        lang=lang,
        own_hospitals=(own,) if own else (),  # the same cells as the PDF and `vbhc report` withhold
        batches=data.batches_for(viewer, [r.condition for r in results]),  # the viewer's data's files only
        include_patient_rows=include_patient_rows,
        follow_up=read_follow_up(data.current_engine(), viewer, [r.condition for r in results]),
        unit_names=unit_names_for(results, lang, units=data.units(url, version)),
        grids=data.report_grids(results, peers),
    )


@data.one_snapshot()
def report_pdf(
    viewer: access.Viewer, result: IndicatorResult, unit: str, lang: str, *, peers: tuple[str, ...] = ()
) -> bytes:
    """The PDF meeting report of a page's unit, as `vbhc report --format pdf` makes it for the same period (the
    grid's cells withheld, secondary cells preferably of other hospitals than the own): see report_workbook."""
    from vbhc.reports import build_pdf
    from vbhc.reports.core import unit_names_for
    from vbhc.reports.followup import read_follow_up

    url, version = database_url(), data.version()
    return build_pdf(
        result,
        unit,
        lang=lang,
        batches=data.batches_for(viewer, [result.condition]),  # the viewer's data's files only
        own_hospital=data.own_hospital(),
        follow_up=read_follow_up(data.current_engine(), viewer, [result.condition]),
        unit_names=unit_names_for([result], lang, units=data.units(url, version)),
        grids=data.report_grids([result], peers),
        charts=data.kept_chart,  # drawn once per dataset version, as `vbhc report` keeps them (and reads its own)
    )


def report_downloads(results: list, unit: str | None, lang: str, *, key: str, peers: tuple[str, ...] = ()) -> None:
    """Excel workbook and PDF meeting report of the current filters, for those allowed to export. The files are
    built when clicked, through vbhc.access.export_file: checked again there and recorded in the audit log with
    the file's SHA-256. Small-number rules apply in vbhc.reports, imported when a file is asked for (openpyxl, fpdf
    and vl-convert take seconds to load, and most runs draw the buttons without a click). `peers`: the comparison
    group of the results (the grid of periods the files withhold against is read with it)."""
    viewer = auth.current()
    exportable = [r for r in results if access.may_export(viewer, r.condition)]
    if not exportable:
        st.caption(t("auth.no_export", lang))
        return
    single = exportable[0].condition if len(exportable) == 1 else None
    with_rows = False
    if single and access.may_export(viewer, single, patient_level=True):
        with_rows = st.checkbox(t("download.with_patient_rows", lang), key=f"{key}_patient_rows")
    engine = data.current_engine()
    chosen = filters.current()
    stem = f"vbhc-{single or 'all'}-{exportable[0].level}-{chosen.period or 'all'}"
    xlsx_name = safe_file_name(f"{stem}.xlsx")
    pdf_name = safe_file_name(f"{stem}-{unit}.pdf")

    def workbook() -> bytes:
        return report_workbook(viewer, exportable, lang, peers=peers, include_patient_rows=with_rows)

    def pdf() -> bytes:
        return report_pdf(viewer, exportable[0], str(unit), lang, peers=peers)

    left, right = st.columns(2)
    left.download_button(
        t("download.excel", lang),
        data=lambda: access.export_file(
            viewer,
            workbook,
            what="excel_report",
            file_name=xlsx_name,
            condition=single,
            patient_level=with_rows,
            engine=engine,
        ),
        file_name=xlsx_name,
        mime=XLSX_MIME,
        on_click="ignore",
        key=f"{key}_xlsx",
        icon=":material/table:",
    )
    if single and unit:
        right.download_button(
            t("download.pdf", lang),
            data=lambda: access.export_file(
                viewer,
                pdf,
                what="pdf_report",
                file_name=pdf_name,
                condition=single,
                unit=unit,
                engine=engine,
            ),
            file_name=pdf_name,
            mime="application/pdf",
            on_click="ignore",
            key=f"{key}_pdf",
            icon=":material/picture_as_pdf:",
        )


def csv_download(
    frame: pd.DataFrame,
    lang: str,
    *,
    what: str,
    file_name: str,
    key: str,
    condition: str | None = None,
    unit: str | None = None,
    patient_level: bool = False,
    index: bool = False,
    label_key: str = "download.csv",
) -> bool:
    """The audited CSV download of a table shown on the page, for a viewer whose role may export it (the
    dataframe's own CSV button is switched off: client.disableDataExport). The file is built on click through
    vbhc.access.export_table: role checked again, formulas neutralised, recorded with its SHA-256.
    Returns whether a button was offered."""
    viewer = auth.current()
    if not access.may_export(viewer, condition, patient_level=patient_level):
        return False
    name = safe_file_name(file_name)
    engine = data.current_engine()
    st.download_button(
        t(label_key, lang),
        data=lambda: access.export_table(
            viewer,
            frame,
            what=what,
            file_name=name,
            condition=condition,
            unit=unit,
            patient_level=patient_level,
            index=index,
            engine=engine,
        ),
        file_name=name,
        mime="text/csv",
        on_click="ignore",
        key=key,
        icon=":material/download:",
    )
    return True


def _only(result, indicators: tuple[str, ...] | None):
    """The result with only these indicators' rows (all when None)."""
    if indicators is None:
        return result
    return dataclasses.replace(result, table=result.table[result.table["indicator"].isin(indicators)])


def since_last_meeting(result, unit: str, lang: str, *, indicators: list[str] | None = None, label: str | None = None):
    """The "since the last meeting" table of one unit (vbhc.meeting): latest and previous period, the change
    with its arrow (coloured better/worse only when beyond chance), and the signals new since the meeting.
    Returns (table, colours, captions) for the caller to show; computed once per view."""
    from vbhc import meeting

    chosen = filters.current()
    comparison = chosen.comparison
    when, basis = _since_date(result, unit, chosen.meeting, comparison)

    only = tuple(indicators) if indicators is not None else None

    def compute():
        # the indicators as they were at the meeting are the same for every unit of the view, so picking another
        # unit does not compute them again: a view of the results store (prepared ahead, kept over restarts),
        # and so are the signals of every unit now and then; the view itself when no care cycle started since
        peers = data.comparison_group(auth.current(), result.condition, result.level, chosen.peers)[0]
        if peers:
            # a comparison group as it was at the meeting: the group cut from the registry's view at the meeting
            # (stored, with the models the group's are recalibrated from), itself a stored view
            registry = data.result(result.condition, result.level, chosen.period)
            then = data.as_of_label(registry, when)
            # the unit's signals now from the SPC charts the team page draws (shared, drawn once): an indicator the
            # viewer's group views withhold has the registry's chart, not one recalibrated to the group's level
            charts = data.unit_charts_for(
                auth.current(), result.condition, result.level, chosen.period, chosen.peers, unit
            )
            now = {unit: meeting.signals(result, unit, charts=charts)}
            if then == chosen.period:  # no care cycle since the meeting: the group then is the group now
                before = _only(result, only)
                return meeting.since_last_meeting(
                    result, unit, when, comparison, before=before, now=now, unchanged=True
                )
            if then is None:  # the registry had no care cycles yet
                before = _only(meeting.result_as_of(result, when, only=indicators), only)
            else:
                # of the group then, only the indicators with a signal now are read (vbhc.meeting.signalled): their
                # rows alone are computed, none when the unit has no signal now
                wanted = meeting.signalled(now[unit], only)
                before = data.group_indicators(result.condition, result.level, then, peers, wanted)
            return meeting.since_last_meeting(result, unit, when, comparison, before=before, now=now)
        as_of = data.as_of_label(result, when)
        if as_of is None:
            before = meeting.result_as_of(result, when, only=indicators)
            return meeting.since_last_meeting(result, unit, when, comparison, before=before)
        now = data.signals(result.condition, result.level, chosen.period)
        if now is None:
            # every unit's signals are still being prepared (a year at 1,000,000 cycles): the unit's own from the
            # SPC charts of the full view that the verdicts read (data.unit_charts, drawn once and shared), the
            # same charts the stored signals are judged on, instead of drawing each chart a second time
            charts = data.unit_charts(result.condition, result.level, chosen.period, (), unit)
            now = {unit: meeting.signals(result, unit, charts=charts)}
        if as_of == chosen.period:  # no care cycle since the meeting: the view then is the view now
            before = _only(result, only)
            return meeting.since_last_meeting(result, unit, when, comparison, before=before, now=now, unchanged=True)
        before = _only(data.result(result.condition, result.level, as_of), only)
        then = data.signals(result.condition, result.level, as_of, until=when)
        return meeting.since_last_meeting(result, unit, when, comparison, before=before, now=now, then=then)

    frame = cached(("since_meeting", result.condition, unit, str(when), comparison, only), compute, by_language=False)
    if indicators is not None and len(frame):
        frame = frame[frame["indicator"].isin(indicators)]
    shown = pd.DataFrame(index=frame.index)
    if label is not None:
        shown[t("column.condition", lang)] = label
    shown[t("column.indicator", lang)] = [
        indicator_label(result.condition, i, lang) for i in frame.get("indicator", [])
    ]
    rows = list(frame.itertuples()) if len(frame) else []
    withheld = _withheld_indicators(result.table, unit)
    shown[t("meeting.column_previous", lang)] = [_period_text(r, "previous", withheld, lang) for r in rows]
    shown[t("meeting.column_current", lang)] = [_period_text(r, "current", withheld, lang) for r in rows]
    shown[t("meeting.column_change", lang)] = [_change_text(r, lang) for r in rows]
    shown[t("meeting.column_new_signal", lang)] = [
        ", ".join(t(f"meeting.new_{s}", lang) for s in r.new_signals) or t("meeting.none_new", lang) for r in rows
    ]
    colours = pd.DataFrame(index=shown.index, columns=shown.columns, dtype=object)
    colours[t("meeting.column_change", lang)] = [
        r.assessment if r.assessment in ("better", "worse") else "" for r in rows
    ]
    colours[t("meeting.column_new_signal", lang)] = [
        "worse" if {"worse", "concern"} & set(r.new_signals) else "better" if r.new_signals else "" for r in rows
    ]
    captions = [] if label is not None else [t(f"meeting.since_{basis}", lang, date=fmt_date(when, lang))]
    if label is not None:  # several conditions in one table: each has its own complete-until date
        until = frame.attrs.get("complete_until")
        shown[t("meeting.column_complete", lang)] = fmt_date(until, lang)
        captions = [t("meeting.complete_definition", lang), t("meeting.method", lang)]
    elif "previous" in frame.attrs:
        until = frame.attrs.get("complete_until")
        captions.append(t("meeting.complete_until", lang, date=fmt_date(until, lang)))
        prev, latest = frame.attrs["previous"], frame.attrs["latest"]
        captions.append(
            t(
                "meeting.windows",
                lang,
                current=f"{fmt_date(latest.start, lang)} – {fmt_date(latest.end, lang)}",
                previous=f"{fmt_date(prev.start, lang)} – {fmt_date(prev.end, lang)}",
            )
        )
    return shown, colours, captions, when


def _since_date(result, unit: str, chosen: dt.date | None, comparison: str) -> tuple[dt.date, str]:
    """The date "since the last meeting" compares with and what it is (vbhc.meeting.since_date): the sidebar's
    date when chosen, else the unit's last recorded meeting, else the start of the latest period with data."""
    from vbhc import meeting, minutes

    if chosen is not None and chosen != meeting.default_meeting_date():
        return chosen, meeting.SINCE_CHOSEN
    try:
        recorded = minutes.last_meeting_date(
            data.current_engine(), auth.current(), result.condition, unit=unit, on_or_before=dt.date.today()
        )
    except access.AccessDenied:  # minutes the viewer may not read: the data decide
        recorded = None
    # the latest date of the view's data, the same for every unit and run: read once per view, not on every run
    # (a pass over every care cycle and PROM score of the view, a few ms of each click's CPU)
    complete = cached(
        ("complete_until", result.condition, result.level, result.period),
        lambda: meeting.data_complete_until(result.data),
        by_language=False,
    )
    return meeting.since_date(None, recorded, complete, comparison)


def _withheld_indicators(table: pd.DataFrame, unit: str) -> set[str]:
    """The unit's indicators whose count the viewer's table withholds (a withheld cell, or only a band of it): their
    periods' counts stay withheld, and so do the shares made of them."""
    if table is None or not len(table) or "indicator" not in table:
        return set()
    mine = table[table["unit"].astype(str) == str(unit)]
    hidden = pd.Series(False, index=mine.index)
    if "suppressed" in mine:
        counted = mine["n"].notna() if "n" in mine else pd.Series(False, index=mine.index)
        hidden |= mine["suppressed"].fillna(False).astype(bool) & ~counted
    if "n_band" in mine:
        hidden |= mine["n_band"].fillna("").astype(str) != ""
    return set(mine.loc[hidden, "indicator"].astype(str))


def _period_text(row, which: str, withheld: set[str], lang: str) -> str:
    """A period's value with the counts it rests on, as the other tables show them: a share with its events and
    cycles ("25.0% (1/4)"), any other value with its n ("42.0 (n = 7)"); withheld where the unit's count is."""
    value = getattr(row, which)
    if pd.isna(value):
        return format_value(value, row.kind, lang)
    if str(row.indicator) in withheld:
        return t("report.withheld_marker", lang)
    n = getattr(row, f"n_{which}", None)
    events = getattr(row, f"events_{which}", None)
    if n is None or pd.isna(n):
        return format_value(value, row.kind, lang)
    if events is not None and pd.notna(events):
        counts = t("meeting.events_of", lang, events=fmt_int(events, lang), n=fmt_int(n, lang))
    else:
        counts = t("meeting.n_of", lang, n=fmt_int(n, lang))
    return f"{format_value(value, row.kind, lang)} ({counts})"


def _change_amount(value: float, kind: str, lang: str) -> str:
    """A change between two rates in percentage points ("25,0 procentpunt"), any other in the indicator's unit.
    Why: "↓ 25,0%" from 25,0% to 0,0% reads as a relative fall of a quarter (a care team read it so)."""
    return fmt_difference(value, kind, lang, plus=False)


def _change_text(row, lang: str) -> str:
    """The change with its arrow and its test in one pair of parentheses: "↑ 2.1 percentage points (beyond chance,
    p = 0.012)"."""
    if not (pd.notna(row.previous) and pd.notna(row.current)):
        return f"{row.arrow} {t('meeting.no_test', lang)}"
    change = _change_amount(abs(row.change), row.kind, lang)
    if not pd.notna(row.p_value):
        return f"{row.arrow} {change} ({t('meeting.no_test', lang)})"
    p = fmt_number(row.p_value, lang, 3)
    key = "meeting.beyond_chance" if row.beyond_chance else "meeting.within_chance"
    return f"{row.arrow} {change} ({t(key, lang, p=p)})"


def show_since_last_meeting(tables: list, lang: str) -> None:
    """Show one or more since_last_meeting() results as one coloured table with its captions."""
    _show_since_parts(_since_parts(tables, lang))


def _since_parts(tables: list, lang: str) -> tuple[str, str | None, tuple[str, ...]]:
    """What show_since_last_meeting draws: the heading, the table's HTML (None: no changes) and the captions."""
    frames = [x for x in tables if len(x[0])]
    when = tables[0][3] if tables else None
    title = t("meeting.title", lang, date=fmt_date(when, lang))
    if not frames:
        return title, None, (t("meeting.no_changes", lang),)
    shown = pd.concat([f[0] for f in frames], ignore_index=True)
    colours = pd.concat([f[1] for f in frames], ignore_index=True).reindex(columns=shown.columns)
    widths = {t("column.condition", lang): 130, t("column.indicator", lang): 190}
    widths |= {t("meeting.column_previous", lang): 90, t("meeting.column_current", lang): 90}
    widths |= {t("meeting.column_change", lang): 200, t("meeting.column_new_signal", lang): 170}
    widths[t("meeting.column_complete", lang)] = 100
    return title, static_table_html(shown, colours=colours, widths=widths, lang=lang), tuple(frames[0][2])


def _show_since_parts(parts: tuple[str, str | None, tuple[str, ...]]) -> None:
    title, table, captions = parts
    st.subheader(title)
    if table is not None:
        st.html(table)
    for caption in captions:
        st.caption(caption)


def show_unit_since_last_meeting(result, unit: str, lang: str) -> None:
    """The team page's "since the last meeting" of one unit (since_last_meeting shown as show_since_last_meeting
    shows it), its table finished once per view, unit, meeting date and language and kept: a click redrew it from
    the meeting's changes (formatting every cell, the table's HTML), a third of the page's CPU per run, while ten
    viewers opening the page at once each waited for the others' runs. The date it compares with is read on every
    run (a meeting recorded since moves it), and so is everything the viewer's scope decides (the view key)."""
    chosen = filters.current()
    when, basis = _since_date(result, unit, chosen.meeting, chosen.comparison)
    parts = cached(
        ("since_meeting_shown", result.condition, result.level, result.period, unit, str(when), basis),
        lambda: _since_parts([since_last_meeting(result, unit, lang)], lang),
    )
    _show_since_parts(parts)
