"""The PDF meeting report per condition team (fpdf2 + vl-convert): title page, key indicators, funnel plot and
trend per key indicator (the dashboard's own Altair charts rendered to PNG), PROM and cost summaries, methods
notes, page numbers.

fpdf2 and vl-convert-python are pure wheels from PyPI (no browser, no system libraries such as WeasyPrint's
Pango/Cairo); the DejaVu Sans font ships in vbhc/reports/fonts, so "€", "–" and "≥" print on any machine.
The small-number rule is applied to tables and charts alike: a withheld unit is not drawn in the funnel plot,
and quarters with fewer care cycles than the threshold are left out of the trend.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from importlib.metadata import version as package_version
from typing import Any

import numpy as np
import pandas as pd
from fpdf import FPDF
from fpdf.fonts import FontFace
from PIL import Image

from vbhc import charts
from vbhc.catalog import PROM_KINDS, default_catalog
from vbhc.drawing import vl_convert
from vbhc.i18n import MISSING, catalog, fmt_ci, fmt_date, fmt_datetime, fmt_int, fmt_percent, format_value, t
from vbhc.improvement import ALL_UNITS
from vbhc.indicators import (
    IndicatorResult,
    cost_by_activity,
    funnel_curve,
    indicator_over_time,
    prom_response_by_timepoint,
)
from vbhc.reports.core import TableSource, check_lang, derived, first_unit_of, now, period_label, shown_unit
from vbhc.reports.followup import FollowUp, action_lines, signal_lines, target_lines
from vbhc.reports.privacy import (
    SuppressionRule,
    cost_breakdown_mask,
    grid_label,
    grid_masks,
    prom_response_mask,
    suppress_cost_breakdown,
    suppress_prom_response,
    suppress_table,
    trend_mask,
    withheld_years,
)
from vbhc.settings import package_data
from vbhc.verdict import verdict as verdict_of

__all__ = ["FONT_DIR", "ChartCache", "build_pdf", "chart_digest", "render_chart", "report_charts"]

FONT_DIR = package_data("reports", "fonts")
FONT = "DejaVu"
#: PNG scale for the charts: 160-210 dpi at the printed size (a funnel plot 1034 x 711 px in 112 mm, a trend
#: 1034 x 811 px in 100 mm), sharp in print. 1.4 drew 205-260 dpi: 1.6x the pixels, which cost ~0.1 s more per
#: chart to render and make opaque and 15 ms more to embed in every PDF.
CHART_SCALE = 1.1
HEADER_FILL = (31, 58, 95)
ASSESSMENT_FILL = {
    "better": (0, 114, 178),
    "worse": (213, 94, 0),
    "as expected": (230, 230, 230),
    "too few cycles": (221, 221, 221),
}


def render_chart(chart: Any, scale: float = CHART_SCALE) -> bytes:
    """One Altair chart as PNG bytes (vl-convert: no browser, no network as the data is inline).

    The spec is not validated again here: the chart builders' specs are validated in tests/test_charts.py, and
    validation is a third of the time of a chart.
    """
    return _opaque(vl_convert().vegalite_to_png(chart.to_dict(validate=False), scale=scale))


def _opaque(png: bytes) -> bytes:
    """The PNG as RGB when no pixel is transparent (a chart on its white background): the same pixels in a third
    of the bytes, and fpdf embeds it in two thirds of the time (no alpha channel to split off and test). A PNG
    with transparent pixels is kept as it is."""
    with Image.open(io.BytesIO(png)) as image:
        if image.mode != "RGBA" or image.getchannel("A").getextrema() != (255, 255):
            return png
        out = io.BytesIO()
        image.convert("RGB").save(out, format="PNG")
        return out.getvalue()


#: Where a report keeps its rendered charts: (chart_digest, render) -> PNG bytes, the stored image when there is
#: one, else render() (and stored). make_report passes the results store's (vbhc.results.ResultStore.chart).
ChartCache = Callable[[str, Callable[[], bytes]], bytes]


@cache
def _renderer() -> str:
    return f"vl-convert-python {package_version('vl-convert-python')}, opaque as RGB"  # see _opaque


def chart_digest(chart: Any, scale: float = CHART_SCALE) -> str:
    """What a chart's image depends on, as a SHA-256: its spec (the data is inline), the scale and the renderer's
    version; the same digest draws the same picture, so a stored image stands for the chart."""
    spec = chart.to_dict(validate=False)
    text = json.dumps([spec, scale, _renderer()], sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


class _Report(FPDF):
    def __init__(self, lang: str):
        super().__init__(format="A4", unit="mm")
        self.lang = lang
        self.running_title = ""
        self.set_margins(15, 15, 15)
        self.set_auto_page_break(True, margin=18)
        self.add_font(FONT, "", str(FONT_DIR / "DejaVuSans.ttf"))
        self.add_font(FONT, "B", str(FONT_DIR / "DejaVuSans-Bold.ttf"))
        self.set_font(FONT, size=10)
        self.title_page = False

    def header(self) -> None:
        if self.title_page or not self.running_title:
            return
        self.set_font(FONT, size=8)
        self.set_text_color(90)
        self.cell(0, 5, self.running_title, new_x="LMARGIN", new_y="NEXT")
        self.set_draw_color(180)
        self.line(self.l_margin, self.get_y(), self.w - self.r_margin, self.get_y())
        self.ln(3)
        self.set_text_color(0)
        self.set_font(FONT, size=10)

    def footer(self) -> None:
        self.set_y(-12)
        self.set_font(FONT, size=8)
        self.set_text_color(90)
        self.cell(0, 6, t("report.page", self.lang, page=self.page_no(), pages="{nb}"), align="C")
        self.set_text_color(0)

    # ------------------------------------------------------------------------------------------ helpers
    def whole_words(
        self, headers: Sequence[str], rows: Sequence[Sequence[str]], widths: Sequence[float], size: float
    ) -> list[float]:
        """Column widths in mm over the full text width, in the proportions of `widths` but each column at least as
        wide as its longest word (bold in the header) where the other columns have room to spare: the report
        broke "Benchmark" into "Benchmar / k" and "Patient-experience" into "Patient-experienc / e" in narrow
        columns. Where even the words do not fit side by side, every column gets its words' share of the width."""
        room, total = self.epw, float(sum(widths))
        want = [w / total * room for w in widths]
        need = []
        for j, header in enumerate(headers):
            self.set_font(FONT, "B", size)
            longest = max((self.get_string_width(w) for w in str(header).split()), default=0.0)
            self.set_font(FONT, size=size)
            for row in rows:
                longest = max([longest, *(self.get_string_width(w) for w in str(row[j]).split())])
            need.append(longest + 2 * self.c_margin + 0.3)  # a cell's text has c_margin on either side
        self.set_font(FONT, size=size)
        if sum(need) >= room:
            return [n / sum(need) * room for n in need]
        fixed: dict[int, float] = {}
        while True:  # widen the columns short of their words, taking the room from the others in proportion
            free = [j for j in range(len(want)) if j not in fixed]
            left = room - sum(fixed.values())
            share = sum(want[j] for j in free)
            short = {j: need[j] for j in free if want[j] / share * left < need[j]}
            if not short:
                return [fixed[j] if j in fixed else want[j] / share * left for j in range(len(want))]
            fixed.update(short)

    def heading(self, text: str, size: int = 14) -> None:
        self.set_font(FONT, "B", size)
        self.multi_cell(0, size * 0.5, text, new_x="LMARGIN", new_y="NEXT", align="L")  # a heading is not justified
        self.ln(2)
        self.set_font(FONT, size=10)

    def para(self, text: str, size: float = 10, height: float = 5) -> None:
        self.set_font(FONT, size=size)
        self.multi_cell(0, height, text, new_x="LMARGIN", new_y="NEXT")
        self.ln(1)

    def image_box(self, png: bytes, height: float) -> None:
        """The chart fitted inside the full text width × `height` mm, on a new page when it would not fit."""
        if self.get_y() + height > self.h - self.b_margin:
            self.add_page()
        self.image(io.BytesIO(png), x=self.l_margin, w=self.epw, h=height, keep_aspect_ratio=True)
        self.set_y(self.get_y() + 2)

    def grid(
        self,
        headers: Sequence[str],
        rows: Sequence[Sequence[str]],
        widths: Sequence[float],
        *,
        fills: Sequence[Sequence[tuple[int, int, int] | None]] | None = None,
        size: float = 8.5,
        align: Sequence[str] | None = None,
    ) -> None:
        """A table with a coloured header row; `fills` colours single cells (e.g. by assessment). `widths` are the
        columns' proportions; a column is widened to its longest word where the others can give up the room
        (whole_words), so a name or header is broken between words, never inside one."""
        widths = self.whole_words(headers, rows, widths, size)
        self.set_font(FONT, size=size)
        if align is None:
            align = ["LEFT"] + ["RIGHT"] * (len(headers) - 2) + ["LEFT"] if len(headers) > 2 else ["LEFT"] * 2
        heading = FontFace(emphasis="BOLD", color=255, fill_color=HEADER_FILL)
        with self.table(
            col_widths=tuple(widths),
            text_align=tuple(align),
            headings_style=heading,
            line_height=size * 0.55,
            width=self.epw,
            borders_layout="HORIZONTAL_LINES",
        ) as table:
            head = table.row()
            for h in headers:
                head.cell(h)
            for i, values in enumerate(rows):
                row = table.row()
                for j, value in enumerate(values):
                    fill = fills[i][j] if fills else None
                    if fill is not None:
                        dark = sum(fill) < 450
                        row.cell(value, style=FontFace(fill_color=fill, color=255 if dark else 0))
                    else:
                        row.cell(value)
        self.ln(3)
        self.set_font(FONT, size=10)


def _pick_unit(result: IndicatorResult, unit: str | None, own_hospital: str | None) -> str:
    if unit is None:
        return first_unit_of(result, own_hospital)
    units = sorted(result.table["unit"].dropna().astype(str).unique())
    if unit not in units:
        raise KeyError(f"unit {unit!r} not found for {result.condition}; units: {', '.join(units)}")
    return unit


def build_pdf(
    results: IndicatorResult | Sequence[IndicatorResult],
    unit: str | None = None,
    *,
    lang: str = "en",
    suppress_below: int | None = None,
    batches: pd.DataFrame | None = None,
    generated_at: dt.datetime | None = None,
    own_hospital: str | None = None,
    follow_up: Mapping[str, FollowUp] | None = None,
    unit_names: Mapping[str, str] | None = None,
    charts: ChartCache | None = None,
    tables: TableSource | None = None,
    grids: Mapping[str, Mapping[str, pd.DataFrame]] | None = None,
) -> bytes:
    """The meeting report of one condition team as PDF bytes (several results: one section per condition).

    `unit` is the team's unit (e.g. "H01"); None takes the first unit of `own_hospital`, else the first unit.
    `suppress_below` is the small-number threshold (None: VBHC_SUPPRESS_BELOW, default 10). `follow_up`
    (vbhc.reports.followup.read_follow_up, read with the viewer's role rules) adds the team's targets, signals with
    their explanation and decision, and improvement actions, judged against the suppressed table. `unit_names`
    (vbhc.reports.core.unit_names_for) names the units in headings, tables and charts: a reader knows the
    hospitals by name, not by id; a unit without one is shown as vbhc.i18n.unit_label gives it. `charts` keeps
    the rendered charts (ChartCache; None: every chart is rendered), `tables` the PROM response and cost tables
    (vbhc.reports.core.TableSource; None: computed here). `grids`: as build_workbook's (the same cells withheld).
    """
    lang = check_lang(lang)
    items = [results] if isinstance(results, IndicatorResult) else list(results)
    if not items:
        raise ValueError("no indicator results to report")
    rule = SuppressionRule.from_settings(suppress_below)
    generated_at = generated_at or now()
    pdf = _Report(lang)
    pdf.set_title(t("report.title_pdf", lang))
    pdf.set_creator("vbhc")
    for result in items:
        chosen = _pick_unit(result, unit if len(items) == 1 else _unit_or_none(result, unit), own_hospital)
        own = (own_hospital,) if own_hospital else ()
        follow = None if follow_up is None else follow_up.get(result.condition, FollowUp(result.condition))
        _Section(
            pdf,
            result,
            chosen,
            lang,
            rule,
            batches,
            generated_at,
            own,
            follow,
            unit_names,
            charts,
            tables,
            (grids or {}).get(result.condition),
        ).write()
    return bytes(pdf.output())


def report_charts(
    results: IndicatorResult | Sequence[IndicatorResult],
    unit: str | None = None,
    *,
    lang: str = "en",
    suppress_below: int | None = None,
    own_hospital: str | None = None,
    unit_names: Mapping[str, str] | None = None,
    grids: Mapping[str, Mapping[str, pd.DataFrame]] | None = None,
) -> list[Any]:
    """Every chart build_pdf draws for the same arguments, in its order, without laying out a page: what an import
    renders into the results store ahead of the first report (vbhc.reports.run.prepare_report_charts), so the
    report finds each image under the same chart_digest."""
    lang = check_lang(lang)
    items = [results] if isinstance(results, IndicatorResult) else list(results)
    rule = SuppressionRule.from_settings(suppress_below)
    out: list[Any] = []
    for result in items:
        chosen = _pick_unit(result, unit if len(items) == 1 else _unit_or_none(result, unit), own_hospital)
        own = (own_hospital,) if own_hospital else ()
        grid = (grids or {}).get(result.condition)
        section = _Section(None, result, chosen, lang, rule, None, None, own, None, unit_names, None, None, grid)
        for indicator in section.key_indicators():
            plan = section.chart_plan(indicator)
            out += [chart for chart in (plan.funnel, plan.trend) if chart is not None]
    return out


def _unit_or_none(result: IndicatorResult, unit: str | None) -> str | None:
    """With several conditions a unit that a condition does not have falls back to the default."""
    return unit if unit is not None and unit in set(result.table["unit"].astype(str)) else None


@dataclass(frozen=True)
class _ChartPlan:
    """What one key indicator's chart page draws: the funnel plot and the trend (None: not drawn)."""

    unit_hidden: bool  # the team's own unit is withheld by the small-number rule
    funnel: Any | None = None
    trend: Any | None = None
    trend_partly_withheld: bool = False  # some quarters left out of the trend


class _Section:
    """One condition team's part of the report."""

    def __init__(
        self,
        pdf: _Report | None,  # None: the charts only (report_charts)
        result,
        unit,
        lang,
        rule: SuppressionRule,
        batches,
        generated_at,
        own_hospitals=(),
        follow: FollowUp | None = None,
        unit_names: Mapping[str, str] | None = None,
        charts: ChartCache | None = None,
        tables: TableSource | None = None,
        grid: Mapping[str, pd.DataFrame] | None = None,
    ):
        self.pdf, self.result, self.unit, self.lang, self.rule = pdf, result, unit, lang, rule
        self.chart_cache, self.tables = charts, tables
        self.names = dict(unit_names or {})
        #: the unit as the reader knows it (the id stays the key the tables are selected by)
        self.unit_name = self.shown(unit)
        self.follow = follow
        self.batches, self.generated_at = batches, generated_at
        self.catalog = default_catalog()
        self.condition = self.catalog.condition(result.condition)
        # the same cells as the workbook withholds (secondary cells from other hospitals than the own)
        got = grid_masks(result.table, result.period, grid, rule, own_hospitals=own_hospitals)
        # the PROM response and cost tables are withheld over the same grid (vbhc.reports.privacy)
        self.grid, self.grid_got, self.own_hospitals = grid, got, tuple(own_hospitals)
        mask = None if got is None else got.masks[grid_label(result.period)]
        self.table = suppress_table(result.table, rule, own_hospitals=own_hospitals, mask=mask)
        # per indicator the years whose cell of the unit the files withhold: their quarters stay out of the trend
        self.years_withheld = {} if got is None else withheld_years(got.tables, got.masks, unit)
        self.mine = self.table[self.table["unit"].astype(str) == unit]
        self.period = period_label(result.period, lang)
        self.used_marker = False
        from vbhc.external import population_of  # vbhc.external reads vbhc.reports.privacy: imported when used

        #: the benchmark population of external figures (vbhc.external), named on every page that compares
        self.population = population_of(result.table)

    def t(self, key: str, **values: Any) -> str:
        return t(key, self.lang, **values)

    def shown(self, unit: object) -> str:
        """A unit's name (an id only where no name is known)."""
        return shown_unit(unit, self.names, self.lang)

    def draw(self, chart: Any) -> bytes:
        """The chart's PNG: the kept image of the same chart, else rendered (render_chart)."""
        if self.chart_cache is None:
            return render_chart(chart)
        return self.chart_cache(chart_digest(chart), lambda: render_chart(chart))

    def write(self) -> None:
        pdf = self.pdf
        pdf.running_title = f"{self.condition.label(self.lang)} · {self.unit_name} · {self.period}"
        self.title_page()
        pdf.add_page()
        self.key_table()
        for indicator in self.key_indicators():
            self.charts(indicator)
        if self.follow is not None:
            pdf.add_page()
            self.improvement()
        pdf.add_page()
        self.proms()
        self.costs()
        self.methods()

    # -------------------------------------------------------------------------------------------- pages
    def title_page(self) -> None:
        pdf = self.pdf
        pdf.title_page = True
        pdf.add_page()
        pdf.set_y(60)
        pdf.set_font(FONT, "B", 26)
        pdf.multi_cell(0, 12, self.t("report.title_pdf"), new_x="LMARGIN", new_y="NEXT")
        pdf.set_font(FONT, "B", 18)
        pdf.multi_cell(0, 10, self.condition.label(self.lang), new_x="LMARGIN", new_y="NEXT")
        pdf.ln(6)
        facts = [
            (self.t("report.condition_team"), self.unit_name),
            (self.t("report.period"), self.period),
            (self.t("report.unit_level"), self.t(f"level.{self.result.level}")),
            (self.t("report.generated_at"), fmt_datetime(self.generated_at, self.lang)),
        ]
        if self.population:
            facts.append((self.t("column.benchmark"), self.population))
        for name, value in facts:
            pdf.set_font(FONT, "B", 11)
            pdf.cell(45, 7, name)
            pdf.set_font(FONT, size=11)
            pdf.multi_cell(0, 7, str(value), new_x="LMARGIN", new_y="NEXT")
        pdf.ln(8)
        pdf.set_font(FONT, "B", 11)
        pdf.cell(0, 7, self.t("report.rules_title"), new_x="LMARGIN", new_y="NEXT")
        for line in self.rule.statements(self.lang, spreadsheet=False):
            pdf.para(f"• {line}", size=9, height=4.5)
        pdf.ln(4)
        if self.batches is not None and len(self.batches):
            pdf.set_font(FONT, "B", 11)
            pdf.cell(0, 7, self.t("report.provenance_title"), new_x="LMARGIN", new_y="NEXT")
            rows, tables = [], catalog(self.lang)  # the table by its name, as the data page shows it
            for b in self.batches.itertuples():
                when = fmt_datetime(b.imported_at, self.lang) if pd.notna(b.imported_at) else ""
                table = tables.get(f"import_table.{b.table_name}", str(b.table_name))
                rows.append([str(b.file_name), table, str(b.sha256), when])
            headers = [self.t("batch.file"), self.t("batch.table"), self.t("batch.sha256"), self.t("batch.imported_at")]
            pdf.grid(headers, rows, (22, 16, 70, 18), size=6.5, align=["LEFT"] * 4)
        pdf.title_page = False

    def _target_unit(self, unit: str) -> str:
        """Whom a target is for: all units, this report's unit (named in the section's heading: its full name
        took four lines of the narrow column, "Universitair / Medisch / Centrum / Veenmeer"), or another unit."""
        if unit == ALL_UNITS:
            return self.t("agenda.all_units")
        return self.t("report.target_this_unit") if unit == self.unit else self.shown(unit)

    def _value(self, row: Any, column: str) -> str:
        if row.suppressed:
            self.used_marker = True
            return self.rule.marker(self.lang)
        return format_value(getattr(row, column), row.kind, self.lang)

    def _ci(self, row: Any) -> str:
        if row.suppressed:
            return self.rule.marker(self.lang)
        return fmt_ci(row.adjusted_lower, row.adjusted_upper, row.kind, self.lang)

    def _n(self, row: Any) -> str:
        return self.rule.marker(self.lang) if row.suppressed else fmt_int(row.n, self.lang)

    def _assessment(self, row: Any) -> tuple[str, tuple[int, int, int] | None]:
        if row.suppressed:
            return self.rule.marker(self.lang), None
        judged = verdict_of(row)  # the same verdict as the dashboard (vbhc.verdict); the headline fits the grid
        return judged.label(self.lang), ASSESSMENT_FILL.get(judged.assessment)

    def indicator_rows(self, rows: pd.DataFrame) -> None:
        """The standard indicator table: indicator, n, crude, adjusted (95% CI), benchmark, assessment."""
        headers = [
            self.t("column.indicator"),
            "n",
            self.t("column.crude"),
            self.t("column.adjusted"),
            self.t("column.ci95"),
            self.t("column.benchmark"),
            self.t("column.assessment"),
        ]
        body, fills = [], []
        for row in rows.itertuples():
            text, fill = self._assessment(row)
            body.append(
                [
                    getattr(row, f"label_{self.lang}"),  # the catalog's label(lang), as the table carries it
                    self._n(row),
                    self._value(row, "crude_value"),
                    self._value(row, "adjusted_value"),
                    self._ci(row),
                    format_value(row.target, row.kind, self.lang),
                    text,
                ]
            )
            fills.append([None] * 6 + [fill])
        self.pdf.grid(headers, body, (44, 17, 17, 17, 36, 19, 30), fills=fills, size=8)

    def population_note(self) -> None:
        """Under a table whose benchmark column and assessments come from external figures: their population."""
        if self.population:
            self.pdf.para(self.t("external.benchmark_named", population=self.population), size=8.5, height=4.2)

    def key_table(self) -> None:
        pdf = self.pdf
        pdf.heading(f"{self.t('report.key_indicators')}: {self.condition.label(self.lang)} · {self.unit_name}")
        keyed = self.mine[self.mine["key"].astype(bool)]
        self.indicator_rows(keyed)
        note = self.t("external.benchmark_named", population=self.population) if self.population else None
        pdf.para(note or self.t("report.benchmark_note"), size=8.5, height=4.2)
        if self.used_marker or keyed["suppressed"].any():
            pdf.para(self.rule.footnote(self.lang), size=8.5, height=4.2)

    def charts(self, indicator: str) -> None:
        pdf = self.pdf
        ind = self.condition.indicator(indicator)
        plan = self.chart_plan(indicator)
        pdf.add_page()
        pdf.heading(self.t("report.funnel_and_trend", indicator=ind.label(self.lang)), size=13)
        if plan.unit_hidden:
            pdf.para(self.t("report.unit_not_shown", unit=self.unit_name, count=self.rule.threshold))
        if plan.funnel is not None:
            pdf.image_box(self.draw(plan.funnel), 112)
        if plan.trend is None:
            pdf.para(self.t("report.no_trend"), size=9)
            return
        pdf.image_box(self.draw(plan.trend), 100)
        if plan.trend_partly_withheld:
            pdf.para(self.t("report.trend_suppressed", count=self.rule.threshold), size=8.5)

    def key_indicators(self) -> list[str]:
        """The team's key indicators, in the order their chart pages follow the key table."""
        return [str(i) for i in self.mine.loc[self.mine["key"].astype(bool), "indicator"]]

    def chart_plan(self, indicator: str) -> _ChartPlan:
        """The funnel plot and trend of one key indicator as its page draws them (None: not drawn), with the small-
        number rule applied; separate from the page so the import can render the same charts (report_charts)."""
        ind = self.condition.indicator(indicator)
        rows = self.table[self.table["indicator"] == indicator]
        mine = rows[rows["unit"].astype(str) == self.unit]
        visible = rows[~rows["suppressed"].astype(bool)]
        hidden = bool(len(mine) and bool(mine["suppressed"].iloc[0]))
        funnel = None
        if len(visible) and np.isfinite(pd.to_numeric(visible["precision"], errors="coerce")).any():
            curve = funnel_curve(visible)
            named = rows.assign(unit=[self.shown(u) for u in rows["unit"]])  # the funnel labels its points by name
            funnel = charts.funnel_chart(
                named, curve, highlight=self.unit_name, lang=self.lang, population=self.population
            )
        if ind.kind == "response_rate" or hidden:
            return _ChartPlan(hidden, funnel)
        trend = indicator_over_time(self.result, indicator, self.unit, freq="QS")
        if trend is None or trend.empty:
            return _ChartPlan(hidden, funnel)
        # the small quarters and those a year's cell would give back (the year minus its shown quarters)
        small = trend_mask(trend, self.rule, years_withheld=self.years_withheld.get(indicator, ()))
        if small.all():
            return _ChartPlan(hidden, funnel)
        if small.any():
            trend = trend.copy()
            for col in ("p", "value", "expected_rate", "n", "events", "lower", "upper"):  # limits would reveal n
                if col in trend:
                    trend[col] = trend[col].astype(float)
                    trend.loc[small, col] = np.nan
            for col in ("beyond_limits", "two_of_three", "shift", "trend", "anhoej_run", "signal"):
                if col in trend:
                    trend.loc[small, col] = False
            for col in ("rule", "rules"):
                if col in trend:
                    trend.loc[small, col] = ""
        chart = charts.trend_chart(trend, kind=ind.kind, lang=self.lang)
        return _ChartPlan(hidden, funnel, chart, bool(small.any()))

    def improvement(self) -> None:
        """The team's targets (met or not), signals with the team's explanation and decision, and actions."""
        pdf, follow = self.pdf, self.follow or FollowUp(self.result.condition)
        pdf.heading(f"{self.t('report.improvement_title')} · {self.unit_name}")
        used_marker = False

        def label(prefix: str, value: str | None) -> str:
            return self.t(f"improvement.{prefix}_{value}") if value else MISSING

        def value_text(value: float | None, indicator: str, withheld: bool) -> str:
            nonlocal used_marker
            if withheld:
                used_marker = True
                return self.rule.marker(self.lang)
            return (
                MISSING if value is None else format_value(value, self.condition.indicator(indicator).kind, self.lang)
            )

        def name(indicator: str) -> str:
            return self.condition.indicator(indicator).label(self.lang)

        def subheading(key: str) -> None:
            pdf.set_font(FONT, "B", 11)
            pdf.cell(0, 7, self.t(key), new_x="LMARGIN", new_y="NEXT")

        met = {True: self.t("agenda.met_yes"), False: self.t("agenda.met_no"), None: MISSING}
        subheading("agenda.targets")
        targets = target_lines(follow, self.table, self.unit)
        if targets:
            body = [
                [
                    name(line.target.indicator),
                    self._target_unit(line.target.unit),
                    label("target", line.target.kind),
                    label("direction", line.target.direction),
                    value_text(line.target.value, line.target.indicator, False),
                    value_text(line.value, line.target.indicator, line.withheld),
                    self.rule.marker(self.lang) if line.withheld else met[line.met],
                ]
                for line in targets
            ]
            headers = [
                self.t("column.indicator"),
                self.t("report.col_target_unit"),
                self.t("agenda.col_kind"),
                self.t("agenda.col_direction"),
                self.t("agenda.col_target"),
                self.t("agenda.col_current"),
                self.t("agenda.col_met"),
            ]
            pdf.grid(headers, body, (52, 22, 24, 18, 18, 22, 24), align=["LEFT"] * 4 + ["RIGHT"] * 2 + ["LEFT"])
        else:
            pdf.para(self.t("report.improvement_none"), size=9)
        subheading("report.improvement_signals")
        signals = signal_lines(follow, self.table, self.unit)
        if signals:
            body = [
                [
                    name(line.signal.indicator)
                    + ("" if line.signal.unit == self.unit else f" ({self.shown(line.signal.unit)})"),
                    label("rule", line.signal.rule),
                    label("side", line.signal.side),
                    value_text(line.value, line.signal.indicator, line.withheld),
                    fmt_date(line.signal.detected_at, self.lang),
                    label("status", line.signal.status),
                    label("explanation", line.signal.explanation),
                    line.signal.explanation_text or MISSING,
                    label("decision", line.signal.decision),
                ]
                for line in signals
            ]
            headers = [
                self.t("column.indicator"),
                self.t("agenda.col_rule"),
                self.t("agenda.col_side"),
                self.t("agenda.col_value"),
                self.t("agenda.col_detected"),
                self.t("agenda.col_status"),
                self.t("agenda.col_explanation"),
                self.t("agenda.field_explanation_text"),
                self.t("agenda.col_decision"),
            ]
            align = ["LEFT"] * 3 + ["RIGHT"] + ["LEFT"] * 5
            pdf.grid(headers, body, (28, 20, 17, 13, 17, 15, 20, 34, 16), size=7, align=align)
        else:
            pdf.para(self.t("report.improvement_none"), size=9)
        subheading("agenda.actions")
        actions = action_lines(follow, self.unit)
        if actions:
            body = [
                [
                    a.title,
                    a.owner_role,
                    fmt_date(a.start, self.lang),
                    fmt_date(a.due, self.lang),
                    label("action", a.status),
                    ", ".join(name(i) for i in a.indicator_ids) or MISSING,
                    a.expected_effect or MISSING,
                ]
                for a in actions
            ]
            headers = [
                self.t("agenda.field_title"),
                self.t("agenda.col_owner"),
                self.t("agenda.field_start"),
                self.t("agenda.field_due"),
                self.t("agenda.col_status"),
                self.t("agenda.col_linked"),
                self.t("agenda.field_expected_effect"),
            ]
            pdf.grid(headers, body, (40, 24, 18, 18, 18, 28, 34), size=7.5, align=["LEFT"] * 7)
        else:
            pdf.para(self.t("report.improvement_none"), size=9)
        if used_marker:
            pdf.para(self.rule.footnote(self.lang), size=8.5, height=4.2)

    def proms(self) -> None:
        pdf = self.pdf
        pdf.heading(self.t("report.proms_summary"))
        rows = self.mine[self.mine["kind"].isin(PROM_KINDS)]
        if rows.empty:
            pdf.para(self.t("report.no_prom_data"))
            return
        pdf.set_font(FONT, "B", 11)
        pdf.cell(0, 7, self.t("report.prom_indicators"), new_x="LMARGIN", new_y="NEXT")
        self.indicator_rows(rows)
        self.population_note()
        rates = derived(self.result, prom_response_by_timepoint, self.tables)
        if len(rates):
            mask = prom_response_mask(
                rates, self.result, self.grid, self.grid_got, self.rule, own_hospitals=self.own_hospitals
            )
            rates = suppress_prom_response(rates, self.table, self.result, self.rule, mask=mask)
            rates = rates[rates["unit"].astype(str) == self.unit]
            pdf.set_font(FONT, "B", 11)
            pdf.cell(0, 7, self.t("proms.responders"), new_x="LMARGIN", new_y="NEXT")
            body = []
            for r in rates.itertuples():
                instrument = self.catalog.instruments.get(r.instrument)
                hidden = bool(r.suppressed)
                body.append(
                    [
                        instrument.label(self.lang) if instrument else str(r.instrument),
                        self._timepoint(str(r.timepoint)),
                        self.rule.marker(self.lang) if hidden else fmt_int(r.eligible, self.lang),
                        self.rule.marker(self.lang) if hidden else fmt_int(r.responded, self.lang),
                        self.rule.marker(self.lang) if hidden else fmt_percent(r.response_rate, self.lang),
                    ]
                )
            headers = [
                self.t("proms.instrument"),
                self.t("proms.timepoint"),
                self.t("report.eligible"),
                self.t("report.responded"),
                self.t("column.response_rate"),
            ]
            pdf.grid(headers, body, (60, 25, 25, 25, 30), align=["LEFT", "LEFT", "RIGHT", "RIGHT", "RIGHT"])

    def _timepoint(self, timepoint: str) -> str:
        try:
            return self.catalog.condition(self.result.condition).timepoint(timepoint).label(self.lang)
        except KeyError:
            return timepoint

    def costs(self) -> None:
        pdf = self.pdf
        pdf.heading(self.t("report.cost_summary"))
        rows = self.mine[self.mine["kind"] == "cost"]
        if rows.empty:
            pdf.para(self.t("report.no_cost_data"))
            return
        self.indicator_rows(rows)
        self.population_note()
        breakdown = derived(self.result, cost_by_activity, self.tables)
        # over the grid of every unit (as the workbook withholds them), then the unit's rows
        mask = cost_breakdown_mask(
            breakdown, self.result, self.grid, self.rule, own_hospitals=self.own_hospitals, got=self.grid_got
        )
        if mask is not None:
            breakdown = suppress_cost_breakdown(breakdown, self.rule, mask=mask)
        breakdown = breakdown[breakdown["unit"].astype(str) == self.unit]
        if breakdown.empty:
            return
        if mask is None:
            breakdown = suppress_cost_breakdown(breakdown, self.rule)
        breakdown = breakdown.sort_values("cost_per_cycle", ascending=False, na_position="last")
        pdf.set_font(FONT, "B", 11)
        pdf.cell(0, 7, self.t("cost.by_activity"), new_x="LMARGIN", new_y="NEXT")
        body = []
        for r in breakdown.itertuples():
            activity = self.catalog.cost_activities.get(str(r.activity))
            name = activity.label(self.lang) if activity else str(r.activity)
            hidden = bool(r.suppressed)
            body.append(
                [
                    name,
                    self.rule.marker(self.lang) if hidden else fmt_int(r.cycles, self.lang),
                    self.rule.marker(self.lang) if hidden else format_value(r.cost_per_cycle, "cost", self.lang),
                    self.rule.marker(self.lang) if hidden else fmt_percent(r.share, self.lang),
                ]
            )
        headers = [
            self.t("cost.activity"),
            self.t("report.cycles_with_activity"),
            self.t("column.cost_per_cycle"),
            self.t("cost.share"),
        ]
        pdf.grid(headers, body, (60, 35, 30, 25), align=["LEFT", "RIGHT", "RIGHT", "RIGHT"])

    def methods(self) -> None:
        pdf = self.pdf
        if pdf.get_y() > pdf.h * 0.6:
            pdf.add_page()
        pdf.heading(self.t("report.methods_notes"))
        for section in ("casemix", "oe", "funnel", "small_numbers"):
            pdf.set_font(FONT, "B", 10)
            pdf.cell(0, 6, self.t(f"methods.{section}_title"), new_x="LMARGIN", new_y="NEXT")
            pdf.para(self.t(f"methods.{section}_text"), size=9, height=4.5)
        pdf.set_font(FONT, "B", 10)
        pdf.cell(0, 6, self.t("report.casemix_variables"), new_x="LMARGIN", new_y="NEXT")
        pdf.para(", ".join(v.label(self.lang) for v in self.condition.casemix), size=9, height=4.5)
        pdf.set_font(FONT, "B", 10)
        pdf.cell(0, 6, self.t("report.rules_title"), new_x="LMARGIN", new_y="NEXT")
        for line in self.rule.statements(self.lang, spreadsheet=False):
            pdf.para(f"• {line}", size=9, height=4.5)
