"""The Excel workbook for the quality directorate (openpyxl): cover, summary, one sheet per condition, PROMs,
costs, methods (and, only when asked for, pseudonymised care cycles).

Every figure is the indicator table's own value (not a rounded copy): the number format does the rounding, so
a reader who widens a column or recalculates gets the same number as the dashboard. Withheld cells (small-number
rule, see privacy.py) hold the marker text and are explained by a footnote under the table. Every text cell
goes through vbhc.safety.neutralise_formula, so a label such as "=HYPERLINK(...)" stays text.
"""

from __future__ import annotations

import datetime as dt
import io
import math
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
from openpyxl import Workbook
from openpyxl.chart import BarChart, Reference
from openpyxl.formatting.rule import CellIsRule, FormulaRule
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.worksheet import Worksheet

from vbhc.catalog import BINARY_KINDS, PROPORTION_KINDS, SURVIVAL_KINDS, default_catalog
from vbhc.charts import PALETTE
from vbhc.i18n import catalog, t, t_value
from vbhc.improvement import ALL_UNITS
from vbhc.indicators import IndicatorResult, cost_by_activity, prom_response_by_timepoint
from vbhc.reports.core import TableSource, check_lang, derived, now, period_label, shown_unit
from vbhc.reports.followup import FollowUp, action_lines, signal_lines, target_lines
from vbhc.reports.privacy import (
    GridMasks,
    SuppressionRule,
    cost_breakdown_mask,
    grid_label,
    grid_masks,
    patient_rows,
    prom_response_mask,
    suppress_cost_breakdown,
    suppress_prom_response,
    suppress_table,
)
from vbhc.safety import neutralise_formula
from vbhc.verdict import verdict as verdict_of

__all__ = ["HEADER_ROW", "NUMBER_FORMATS", "build_workbook", "explanation_key"]

#: Table sheets: title in row 1, a subtitle in row 2, the header in this row, data below it.
HEADER_ROW = 3
#: Number format per indicator kind (values, CIs, benchmark and limits); counts and ratios below.
NUMBER_FORMATS: dict[str, str] = {
    "proportion": "0.0%",
    "prom_mic": "0.0%",
    "composite": "0.0%",
    "response_rate": "0.0%",
    "survival": "0.0%",
    "mean": "0.0",
    "prom_score": "0.0",
    "prom_change": "0.0",
    "cost": "€ #,##0",
    "volume": "#,##0",
}
COUNT_FORMAT = "#,##0"
RATIO_FORMAT = "0.00"
EXPECTED_FORMAT = "0.0"
SMALL_MEAN_FORMAT = "0.00"  # means below 2, such as an EQ-5D index

HEADER_FILL = PatternFill("solid", fgColor="1F3A5F")
HEADER_FONT = Font(bold=True, color="FFFFFF")
TITLE_FONT = Font(bold=True, size=14)
SUPPRESSED_FONT = Font(italic=True, color="666666")
#: A withheld cell's marker, right-aligned as the numbers it stands for; one object for every such cell (a new
#: Alignment per cell was ~10,000 objects built and hashed per workbook of every condition).
SUPPRESSED_ALIGNMENT = Alignment(horizontal="right")
#: The improvement sheet's cells: text wrapped, numbers not; both at the top.
TOP_WRAPPED, TOP = Alignment(wrap_text=True, vertical="top"), Alignment(wrap_text=False, vertical="top")
#: Assessment -> (fill, font colour) for the conditional fill of position/assessment cells (the charts' palette).
ASSESSMENT_STYLE = {
    "better": (PALETTE["better"], "FFFFFF"),
    "worse": (PALETTE["worse"], "FFFFFF"),
    "as expected": ("E6E6E6", "000000"),
    "too few cycles": (PALETTE["too few cycles"], "444444"),
}


@dataclass
class Column:
    """One column of a table sheet: its header's catalog key, value per row, number format per row, width.

    The key names the header (t(key)) and its line on the explanation sheet (explanation_key(key)): one
    definition per column, so a column cannot be added without saying what it holds."""

    key: str
    value: Callable[[pd.Series], Any]
    fmt: Callable[[pd.Series], str | None] | str | None = None
    width: float = 12
    withheld: bool = False  # shows the marker when the row is suppressed
    header: str | None = None  # the header when it is not t(key) itself (an outcome's name)


def explanation_key(key: str) -> str:
    """The catalog key of the explanation of the column whose header is the message `key` ([explain] section)."""
    return "explain." + key.replace(".", "_")


def _text(value: Any) -> Any:
    """Cell value: NaN/None -> empty, numpy scalars -> Python, text neutralised against formula injection."""
    if value is None:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if hasattr(value, "item") and not isinstance(value, str | bytes):
        value = value.item()
        if isinstance(value, float) and math.isnan(value):
            return None
    if isinstance(value, pd.Timestamp):
        return None if pd.isna(value) else value.to_pydatetime()
    if isinstance(value, float) and math.isinf(value):
        return None
    return neutralise_formula(value)


def _value_format(row: pd.Series) -> str:
    kind = str(row.get("kind"))
    fmt = NUMBER_FORMATS.get(kind, "0.0")
    if fmt == "0.0":
        target = row.get("target")
        if target is not None and pd.notna(target) and abs(float(target)) < 2:
            return SMALL_MEAN_FORMAT
    return fmt


def _observed_format(row: pd.Series) -> str:
    return COUNT_FORMAT if row.get("kind") in (*PROPORTION_KINDS, "volume") else _value_format(row)


def _expected_format(row: pd.Series) -> str:
    return EXPECTED_FORMAT if row.get("kind") in (*BINARY_KINDS, *SURVIVAL_KINDS) else _value_format(row)


def _sheet_name(text: str, used: set[str]) -> str:
    name = re.sub(r"[\[\]:*?/\\']", " ", text).strip()[:31] or "Sheet"
    base, i = name, 2
    while name.lower() in used:
        suffix = f" ({i})"
        name, i = base[: 31 - len(suffix)] + suffix, i + 1
    used.add(name.lower())
    return name


class _Writer:
    """Builds the workbook sheet by sheet; keeps the language, rule and sheet names."""

    def __init__(self, lang: str, rule: SuppressionRule):
        self.lang, self.rule = lang, rule
        self.wb = Workbook()
        self.used: set[str] = set()
        self.catalog = default_catalog()
        self.unit_names: dict[str, str] = {}
        self.tables: TableSource | None = None
        #: per condition the grid of periods its cells are withheld over (None: per period), the grid's tables
        #: and masks (vbhc.reports.privacy.grid_masks), and the hospitals whose cells are taken last
        self.grids: dict[str, Mapping[str, pd.DataFrame] | None] = {}
        self.grid_masks: dict[str, GridMasks | None] = {}
        self.own_hospitals: tuple[str, ...] = ()
        #: (sheet, header as shown, header key) of every column written, in order: the explanation sheet's lines
        self.explained: dict[tuple[str, str], str] = {}

    def t(self, key: str, **values: Any) -> str:
        return t(key, self.lang, **values)

    def header(self, ws: Worksheet, row: int, col: int, key: str, text: str | None = None) -> Any:
        """A header cell of a table: t(key) (or `text`, a header made from the key's message), styled, and noted
        for the explanation sheet, which says what the column holds (explanation_key(key))."""
        shown = self.t(key) if text is None else text
        cell = ws.cell(row, col, _text(shown))
        cell.fill, cell.font = HEADER_FILL, HEADER_FONT
        cell.alignment = Alignment(wrap_text=True, vertical="top")
        self.explained.setdefault((ws.title, shown), key)
        return cell

    def sheet(self, key: str | None = None, title: str | None = None) -> Worksheet:
        name = _sheet_name(title or self.t(key), self.used)
        if len(self.used) == 1 and self.wb.active is not None and self.wb.active.title == "Sheet":
            ws = self.wb.active
            ws.title = name
        else:
            ws = self.wb.create_sheet(name)
        return ws

    # ---------------------------------------------------------------------------------- table sheets
    def table(
        self,
        ws: Worksheet,
        title: str,
        subtitle: str,
        frame: pd.DataFrame,
        columns: Sequence[Column],
        *,
        freeze_col: int = 1,
    ) -> tuple[int, int]:
        """Write a titled table with header, formats, frozen header, autofilter and footnote.

        Returns (first data row, last data row).
        """
        ws.cell(1, 1, _text(title)).font = TITLE_FONT
        ws.cell(2, 1, _text(subtitle)).font = Font(italic=True, color="444444")
        for j, col in enumerate(columns, start=1):
            self.header(ws, HEADER_ROW, j, col.key, col.header)
            ws.column_dimensions[get_column_letter(j)].width = col.width
        ws.row_dimensions[HEADER_ROW].height = 45
        first = HEADER_ROW + 1
        suppressed_any = False
        suppressed = frame["suppressed"].to_numpy() if "suppressed" in frame else [False] * len(frame)
        for i, row in enumerate(_rows(frame)):
            r = first + i
            hidden = bool(suppressed[i])
            for j, col in enumerate(columns, start=1):
                if hidden and col.withheld:
                    cell = ws.cell(r, j, self.rule.marker(self.lang))
                    cell.font = SUPPRESSED_FONT
                    cell.alignment = SUPPRESSED_ALIGNMENT
                    suppressed_any = True
                    continue
                cell = ws.cell(r, j, _text(col.value(row)))
                fmt = col.fmt(row) if callable(col.fmt) else col.fmt
                if fmt and cell.value is not None and not isinstance(cell.value, str):
                    cell.number_format = fmt
        last = first + len(frame) - 1
        ws.freeze_panes = ws.cell(first, freeze_col + 1)
        ws.auto_filter.ref = f"A{HEADER_ROW}:{get_column_letter(len(columns))}{max(last, HEADER_ROW)}"
        if suppressed_any:
            ws.cell(last + 2, 1, _text(self.rule.footnote(self.lang))).font = Font(italic=True)
        return first, last

    def assessment_fill(self, ws: Worksheet, target_cols: Sequence[int], source_col: int, first: int, last: int):
        """Conditional fill: cells in `target_cols` coloured by the assessment text in `source_col`."""
        if last < first:
            return
        src = get_column_letter(source_col)
        for value, (fill, font) in ASSESSMENT_STYLE.items():
            label = t_value("assessment", value, self.lang).replace('"', '""')
            colour = fill.lstrip("#").upper()
            style = {"fill": PatternFill("solid", start_color=colour, end_color=colour), "font": Font(color=font)}
            for col in target_cols:
                letter = get_column_letter(col)
                area = f"{letter}{first}:{letter}{last}"
                if col == source_col:
                    rule = CellIsRule(operator="equal", formula=[f'"{label}"'], **style)
                else:
                    rule = FormulaRule(formula=[f'${src}{first}="{label}"'], **style)
                ws.conditional_formatting.add(area, rule)

    # ---------------------------------------------------------------------------------- labels
    def kind(self, row: pd.Series) -> str:
        return self.t(f"kind.{row['kind']}")

    def indicator(self, row: pd.Series) -> str:
        """The indicator's name in the workbook's language: the table's copy of the catalog's label(lang)
        (vbhc.indicators), so the name is the one the table was computed under."""
        return row[f"label_{self.lang}"]

    def condition(self, condition: str) -> str:
        return self.catalog.condition(condition).label(self.lang)

    def tier(self, row: pd.Series) -> str | None:
        tier = row.get("tier")
        return self.t(f"tier.{int(tier)}") if tier is not None and pd.notna(tier) else None

    def verdict(self, row: pd.Series) -> str:
        """The verdict sentence (vbhc.verdict), the one assessment column of every table."""
        return verdict_of(row).sentence(self.lang)

    def verdict_fill(self, ws: Worksheet, col: int, frame: pd.DataFrame, first: int, last: int) -> int:
        """Colour the verdict column by the verdict's assessment, kept in a hidden helper column (returned)."""
        hidden = ws.max_column + 2
        ws.cell(HEADER_ROW, hidden, _text(self.t("column.assessment")))
        suppressed = frame["suppressed"].to_numpy() if "suppressed" in frame else [False] * len(frame)
        for i, row in enumerate(_rows(frame)):
            if not bool(suppressed[i]):
                ws.cell(first + i, hidden, _text(self.assessment(verdict_of(row).assessment or None)))
        ws.column_dimensions[get_column_letter(hidden)].hidden = True
        self.assessment_fill(ws, [col], hidden, first, last)
        return hidden

    def assessment(self, value: Any) -> str:
        return t_value("assessment", value, self.lang) if value is not None and pd.notna(value) else None

    def position(self, value: Any) -> str:
        return t_value("position", value, self.lang) if value is not None and pd.notna(value) else None

    def unit_name(self, row: pd.Series) -> str:
        """The unit's name beside its id: the id stays the key for filtering and joining, the name is what a
        reader knows the unit by (without it a sheet of H01..H10 cannot be read without the registry's list)."""
        return shown_unit(row.get("unit"), self.unit_names, self.lang)

    def unit_text(self, unit: str) -> str:
        """A unit in a sentence-like table (targets, signals, actions): its name; all units as such."""
        return self.t("agenda.all_units") if unit == ALL_UNITS else shown_unit(unit, self.unit_names, self.lang)

    def yes_no(self, value: Any) -> str:
        return self.t("report.yes" if bool(value) else "report.no")


def _rows(frame: pd.DataFrame) -> Iterator[dict[str, Any]]:
    """The frame's rows as iterrows gives them (the same values, from the same frame.values), each as a dict.

    Why: the column getters only read a row by name (row[name], row.get(name)), and on a Series each read costs
    ~20 microseconds: the default demo's workbook of every condition (~30 columns x ~1,000 rows, ~85,000 reads)
    took 0.3-0.8 s of CPU more this way (vbhc.verdict.verdicts reads dicts for the same reason)."""
    columns = list(frame.columns)
    for values in frame.values:
        yield dict(zip(columns, values, strict=True))


def _num(name: str) -> Callable[[pd.Series], Any]:
    return lambda row: row.get(name)


def build_workbook(
    results: Sequence[IndicatorResult],
    *,
    lang: str = "en",
    suppress_below: int | None = None,
    batches: pd.DataFrame | None = None,
    generated_at: dt.datetime | None = None,
    include_patient_rows: bool = False,
    own_hospitals: Sequence[str] = (),
    follow_up: Mapping[str, FollowUp] | None = None,
    unit_names: Mapping[str, str] | None = None,
    tables: TableSource | None = None,
    grids: Mapping[str, Mapping[str, pd.DataFrame]] | None = None,
) -> bytes:
    """The formatted workbook for one or more conditions' indicator results, as .xlsx bytes.

    `suppress_below` is the small-number threshold (None: VBHC_SUPPRESS_BELOW, default 10); `batches` the
    import batches for the provenance table (vbhc.registry.import_batches). Patient-level rows are included
    only with include_patient_rows=True (the caller checks that the viewer may have them). `own_hospitals`:
    secondary cells are taken from other hospitals' units where possible (the same cells as the page withholds).
    `follow_up` (vbhc.reports.followup.read_follow_up, read with the viewer's role rules) adds the sheet of targets,
    signals with their explanation and decision, and improvement actions, judged against the suppressed tables.
    `unit_names` (vbhc.reports.core.unit_names_for) names the units in the O/E chart; the tables keep the unit
    ids in their key columns, for filtering and joining. `tables` keeps the PROM response and cost tables
    (vbhc.reports.core.TableSource; None: computed here). `grids`: per condition the indicator tables of all
    dates and every year (vbhc.reports.core.grid_tables): the cells withheld are then those of the grid, so files
    of different periods cannot be differenced (vbhc.reports.privacy.grid_suppression_masks).
    """
    lang = check_lang(lang)
    if not results:
        raise ValueError("no indicator results to report")
    rule = SuppressionRule.from_settings(suppress_below)
    w = _Writer(lang, rule)
    w.unit_names = dict(unit_names or {})
    w.tables = tables
    generated_at = generated_at or now()
    period = period_label(results[0].period, lang)
    level = t(f"level.{results[0].level}", lang)
    w.grids = {r.condition: (grids or {}).get(r.condition) for r in results}
    w.own_hospitals = tuple(own_hospitals)
    # per condition the grid's tables and masks (grid_masks): the indicator sheet's cells, and what the PROM
    # response and cost sheets are withheld against
    w.grid_masks = {
        r.condition: grid_masks(r.table, r.period, w.grids[r.condition], rule, own_hospitals=own_hospitals)
        for r in results
    }
    tables = {
        r.condition: suppress_table(
            r.table,
            rule,
            own_hospitals=own_hospitals,
            mask=None if w.grid_masks[r.condition] is None else w.grid_masks[r.condition].masks[grid_label(r.period)],
        )
        for r in results
    }

    _cover(w, results, period, level, generated_at, batches, include_patient_rows)
    _summary(w, results, tables, period, level)
    for result in results:
        _condition_sheet(w, result, tables[result.condition], period, level)
    if follow_up is not None:
        _improvement(w, results, tables, follow_up, period, level)
    _proms(w, results, tables, period, level)
    _costs(w, results, period, level)
    _methods(w, results, include_patient_rows)
    if include_patient_rows:
        _cycles(w, results, period)
    _explanation(w, results, period, generated_at, batches)
    w.wb.properties.title = t("report.title_workbook", lang)
    w.wb.properties.creator = "vbhc"
    buffer = io.BytesIO()
    w.wb.save(buffer)
    return buffer.getvalue()


def _population(table: pd.DataFrame) -> str | None:
    """The benchmark population of external figures the table compares with (None: the registry's units)."""
    from vbhc.external import population_of  # vbhc.external reads vbhc.reports.privacy: imported when used

    return population_of(table)


# ------------------------------------------------------------------------------------------------ sheets
def _cover(w: _Writer, results, period, level, generated_at, batches, include_patient_rows) -> None:
    ws = w.sheet("report.sheet_cover")
    ws.cell(1, 1, w.t("report.title_workbook")).font = Font(bold=True, size=18)
    facts = [
        (w.t("report.conditions"), ", ".join(w.condition(r.condition) for r in results)),
        (w.t("report.period"), period),
        (w.t("report.unit_level"), level),
        (w.t("report.generated_at"), generated_at),
    ]
    # external benchmark figures (vbhc.external): the population each condition is compared with
    facts += [
        (f"{w.t('column.benchmark')}: {w.condition(r.condition)}", _population(r.table))
        for r in results
        if _population(r.table)
    ]
    row = 3
    for name, value in facts:
        ws.cell(row, 1, _text(name)).font = Font(bold=True)
        cell = ws.cell(row, 2, _text(value))
        if isinstance(value, dt.datetime):
            cell.number_format = "yyyy-mm-dd hh:mm"
            cell.alignment = Alignment(horizontal="left")
        row += 1
    row += 1
    ws.cell(row, 1, w.t("report.rules_title")).font = Font(bold=True, size=12)
    for line in w.rule.statements(w.lang, patient_rows=include_patient_rows):
        row += 1
        ws.cell(row, 1, _text("•"))
        ws.cell(row, 2, _text(line)).alignment = Alignment(wrap_text=True, vertical="top")
        ws.row_dimensions[row].height = 32
    row += 2
    ws.cell(row, 1, w.t("report.provenance_title")).font = Font(bold=True, size=12)
    row += 1
    columns = [
        ("id", "batch.id", 6, None),
        ("file_name", "batch.file", 60, None),
        ("table_name", "batch.table", 18, None),
        ("sha256", "batch.sha256", 70, None),
        ("rows_read", "batch.rows_read", 12, COUNT_FORMAT),
        ("rows_inserted", "batch.rows_inserted", 12, COUNT_FORMAT),
        ("rows_updated", "batch.rows_updated", 12, COUNT_FORMAT),
        ("rows_unchanged", "batch.rows_unchanged", 12, COUNT_FORMAT),
        ("imported_by", "batch.imported_by", 14, None),
        ("imported_at", "batch.imported_at", 18, "yyyy-mm-dd hh:mm"),
    ]
    for j, (_, key, _, _) in enumerate(columns, start=1):
        w.header(ws, row, j, key)
    frame = batches if batches is not None else pd.DataFrame()
    tables = catalog(w.lang)  # the table by its name, as the data page shows it
    for _, batch in frame.iterrows():
        row += 1
        for j, (name, _, _, fmt) in enumerate(columns, start=1):
            value = batch.get(name)
            if name == "table_name":
                value = tables.get(f"import_table.{value}", value)
            cell = ws.cell(row, j, _text(value))
            if fmt and cell.value is not None:
                cell.number_format = fmt
    ws.column_dimensions["A"].width = 24
    ws.column_dimensions["B"].width = 90
    for j, (_, _, width, _) in enumerate(columns[2:], start=3):
        ws.column_dimensions[get_column_letter(j)].width = width


def _summary(w: _Writer, results, tables, period, level) -> None:
    ws = w.sheet("report.sheet_summary")
    frames = []
    for result in results:
        table = tables[result.condition]
        frames.append(table[table["key"].astype(bool)])
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    columns = [
        Column("column.condition", lambda r: w.condition(r["condition"]), width=22),
        Column("column.unit", _num("unit"), width=14),
        Column("column.unit_name", w.unit_name, width=30),
        Column("column.indicator", w.indicator, width=34),
        Column("column.care_cycles", _num("n"), COUNT_FORMAT, 10, True),
        Column("column.crude", _num("crude_value"), _value_format, 11, True),
        Column("column.adjusted", _num("adjusted_value"), _value_format, 11, True),
        Column("report.ci_lower", _num("adjusted_lower"), _value_format, 11, True),
        Column("report.ci_upper", _num("adjusted_upper"), _value_format, 11, True),
        Column("column.benchmark", _num("target"), _value_format, 11),
        Column("column.oe", _num("oe"), RATIO_FORMAT, 8, True),
        Column("verdict.column", w.verdict, width=60, withheld=True),
    ]
    subtitle = f"{period} · {level}"
    # the conditions compared with external figures: each one's benchmark population (issue 15)
    named = [
        f"{w.condition(r.condition)}: {w.t('external.benchmark_named', population=population)}"
        for r in results
        if (population := _population(tables[r.condition]))
    ]
    if named:
        subtitle += " · " + "; ".join(named)
    first, last = w.table(ws, w.t("report.summary_title"), subtitle, frame, columns, freeze_col=4)
    w.verdict_fill(ws, 12, frame, first, last)


def _condition_sheet(w: _Writer, result: IndicatorResult, table: pd.DataFrame, period: str, level: str) -> None:
    name = w.condition(result.condition)
    ws = w.sheet(title=name)
    columns = [
        Column("column.indicator", w.indicator, width=34),
        Column("report.key", lambda r: w.yes_no(r["key"]), width=8),
        Column("column.kind", w.kind, width=18),
        Column("column.tier", w.tier, width=18),
        Column("column.unit", _num("unit"), width=14),
        Column("column.unit_name", w.unit_name, width=30),
        Column("column.care_cycles", _num("n"), COUNT_FORMAT, 10, True),
        Column("column.observed", _num("observed"), _observed_format, 10, True),
        Column("column.expected", _num("expected"), _expected_format, 10, True),
        Column("column.oe", _num("oe"), RATIO_FORMAT, 8, True),
        Column("report.oe_lower", _num("oe_lower"), RATIO_FORMAT, 9, True),
        Column("report.oe_upper", _num("oe_upper"), RATIO_FORMAT, 9, True),
        Column("column.crude", _num("crude_value"), _value_format, 10, True),
        Column("column.adjusted", _num("adjusted_value"), _value_format, 10, True),
        Column("report.ci_lower", _num("adjusted_lower"), _value_format, 10, True),
        Column("report.ci_upper", _num("adjusted_upper"), _value_format, 10, True),
        Column("column.benchmark", _num("target"), _value_format, 10),
        Column("report.lower_95", _num("lower_95"), _value_format, 10, True),
        Column("report.upper_95", _num("upper_95"), _value_format, 10, True),
        Column("report.lower_998", _num("lower_998"), _value_format, 10, True),
        Column("report.upper_998", _num("upper_998"), _value_format, 10, True),
        Column("report.position_95", lambda r: w.position(r.get("position_95")), width=20, withheld=True),
        Column("report.position_998", lambda r: w.position(r.get("position_998")), width=20, withheld=True),
        Column("verdict.column", w.verdict, width=60, withheld=True),
    ]
    subtitle = f"{period} · {level}"
    if population := _population(table):
        subtitle += f" · {w.t('external.benchmark_named', population=population)}"
    first, last = w.table(ws, w.t("report.condition_title", condition=name), subtitle, table, columns, freeze_col=6)
    # positions coloured by the (direction-aware) assessment at the same limits, the verdict by its own
    hidden = w.verdict_fill(ws, 24, table, first, last)
    for col, source, header in (
        (22, "assessment_95", "report.position_95"),
        (23, "assessment_998", "report.position_998"),
    ):
        hidden += 1  # a helper column with the assessment at these limits, for the position's colour
        ws.cell(HEADER_ROW, hidden, _text(f"{w.t('column.assessment')}: {w.t(header)}"))
        for i, value in enumerate(table.get(source, pd.Series([None] * len(table))).to_numpy()):
            if not bool(table["suppressed"].iloc[i]):
                ws.cell(first + i, hidden, _text(w.assessment(value)))
        ws.column_dimensions[get_column_letter(hidden)].hidden = True
        w.assessment_fill(ws, [col], hidden, first, last)
    # the units' names in one more hidden helper column: the chart's categories (a reader knows them by name)
    hidden += 1
    ws.cell(HEADER_ROW, hidden, _text(w.t("column.unit")))
    for i, unit in enumerate(table["unit"].astype(str).to_numpy()):
        ws.cell(first + i, hidden, _text(shown_unit(unit, w.unit_names, w.lang)))
    ws.column_dimensions[get_column_letter(hidden)].hidden = True
    _oe_chart(w, ws, result, table, first, anchor_col=hidden + 1, names_col=hidden)


def _improvement(
    w: _Writer, results, tables: dict[str, pd.DataFrame], follow_up: Mapping[str, FollowUp], period, level
) -> None:
    """One sheet with three tables: targets in force judged per unit, signals with the team's explanation and
    decision, and improvement actions; every condition of the workbook, withheld cells as on the other sheets."""
    ws = w.sheet("report.sheet_improvement")
    ws.cell(1, 1, w.t("report.improvement_title")).font = TITLE_FONT
    ws.cell(2, 1, _text(f"{period} · {level}")).font = Font(italic=True, color="444444")
    row, withheld_any = 4, False

    def label(prefix: str, value: str | None) -> str | None:
        return w.t(f"improvement.{prefix}_{value}") if value else None

    def indicator(condition: str, indicator_id: str) -> tuple[str, str]:
        ind = w.catalog.condition(condition).indicator(indicator_id)
        return ind.label(w.lang), NUMBER_FORMATS.get(ind.kind, "0.0")

    def section(title: str, headers: list[tuple[str, float]], lines: list[list[tuple[Any, str | None]]]) -> None:
        nonlocal row, withheld_any
        ws.cell(row, 1, _text(title)).font = Font(bold=True, size=12)
        row += 1
        for j, (key, width) in enumerate(headers, start=1):
            w.header(ws, row, j, key)
            letter = get_column_letter(j)
            ws.column_dimensions[letter].width = max(ws.column_dimensions[letter].width or 0, width)
        if not lines:
            row += 1
            ws.cell(row, 1, w.t("report.improvement_none")).font = Font(italic=True)
        for values in lines:
            row += 1
            for j, (value, fmt) in enumerate(values, start=1):
                if fmt == "withheld":
                    cell = ws.cell(row, j, w.rule.marker(w.lang))
                    cell.font, cell.alignment = SUPPRESSED_FONT, SUPPRESSED_ALIGNMENT
                    withheld_any = True
                    continue
                cell = ws.cell(row, j, _text(value))
                cell.alignment = TOP_WRAPPED if isinstance(value, str) else TOP
                if fmt and cell.value is not None and not isinstance(cell.value, str):
                    cell.number_format = fmt
        row += 2

    targets, signals, actions = [], [], []
    met_text = {True: w.t("agenda.met_yes"), False: w.t("agenda.met_no"), None: None}
    for result in results:
        follow = follow_up.get(result.condition)
        if follow is None:
            continue
        name, table = w.condition(result.condition), tables[result.condition]
        for line in target_lines(follow, table):
            target = line.target
            ind_name, fmt = indicator(result.condition, target.indicator)
            hidden = "withheld" if line.withheld else fmt
            targets.append(
                [
                    (name, None),
                    (ind_name, None),
                    (w.unit_text(target.unit), None),
                    (w.unit_text(line.unit), None),
                    (label("target", target.kind), None),
                    (label("direction", target.direction), None),
                    (target.value, fmt),
                    (target.source or None, None),
                    (target.valid_from, "yyyy-mm-dd"),
                    (line.value, hidden),
                    (met_text[line.met], "withheld" if line.withheld else None),
                ]
            )
        for line in signal_lines(follow, table):
            s = line.signal
            ind_name, fmt = indicator(result.condition, s.indicator)
            signals.append(
                [
                    (name, None),
                    (ind_name, None),
                    (w.unit_text(s.unit), None),
                    (label("rule", s.rule), None),
                    (label("side", s.side), None),
                    (line.value, "withheld" if line.withheld else fmt),
                    (s.detected_at.date(), "yyyy-mm-dd"),
                    (label("status", s.status), None),
                    (label("explanation", s.explanation), None),
                    (s.explanation_text or None, None),
                    (label("decision", s.decision), None),
                ]
            )
        for a in action_lines(follow):
            linked = ", ".join(indicator(result.condition, i)[0] for i in a.indicator_ids)
            actions.append(
                [
                    (name, None),
                    (a.title, None),
                    (w.unit_text(a.unit), None),
                    (a.owner_role, None),
                    (a.start, "yyyy-mm-dd"),
                    (a.due, "yyyy-mm-dd"),
                    (label("action", a.status), None),
                    (linked or None, None),
                    (a.expected_effect or None, None),
                ]
            )
    condition, unit = ("column.condition", 22), ("column.unit", 28)
    section(
        w.t("agenda.targets"),
        [
            condition,
            ("column.indicator", 34),
            ("report.col_target_unit", 28),
            unit,
            ("agenda.col_kind", 16),
            ("agenda.col_direction", 12),
            ("agenda.col_target", 10),
            ("agenda.field_source", 22),
            ("agenda.field_valid_from", 12),
            ("agenda.col_current", 12),
            ("agenda.col_met", 12),
        ],
        targets,
    )
    section(
        w.t("report.improvement_signals"),
        [
            condition,
            ("column.indicator", 34),
            unit,
            ("agenda.col_rule", 16),
            ("agenda.col_side", 12),
            ("agenda.col_value", 10),
            ("agenda.col_detected", 12),
            ("agenda.col_status", 12),
            ("agenda.col_explanation", 22),
            ("agenda.field_explanation_text", 40),
            ("agenda.col_decision", 16),
        ],
        signals,
    )
    section(
        w.t("agenda.actions"),
        [
            condition,
            ("agenda.field_title", 34),
            unit,
            ("agenda.col_owner", 16),
            ("agenda.field_start", 12),
            ("agenda.field_due", 10),
            ("agenda.col_status", 12),
            ("agenda.col_linked", 22),
            ("agenda.field_expected_effect", 40),
        ],
        actions,
    )
    if withheld_any:
        ws.cell(row, 1, _text(w.rule.footnote(w.lang))).font = Font(italic=True)


def _oe_chart(
    w: _Writer, ws: Worksheet, result: IndicatorResult, table: pd.DataFrame, first: int, anchor_col: int, names_col: int
):
    """A native bar chart of O/E per unit for the condition's first key yes/no indicator (else any yes/no), its
    bars named by the units' names in `names_col`."""
    binary = table[table["kind"].isin(BINARY_KINDS) & table["oe"].notna()]
    if binary.empty:
        return
    keyed = binary[binary["key"].astype(bool)]
    indicator = (keyed if len(keyed) else binary)["indicator"].iloc[0]
    positions = [i for i, ind in enumerate(table["indicator"].to_numpy()) if ind == indicator]
    lo, hi = first + positions[0], first + positions[-1]
    chart = BarChart()
    chart.type = "bar"
    chart.style = 10
    label = table.loc[table["indicator"] == indicator].iloc[0]
    title = w.t("report.chart_oe", indicator=w.indicator(label))
    if population := _population(table):  # the units beside the own ones are external figures: name them
        title += f" · {w.t('external.benchmark_named', population=population)}"
    chart.title = title
    chart.y_axis.title = w.t("column.oe")
    chart.x_axis.title = w.t("column.unit")
    chart.y_axis.numFmt = RATIO_FORMAT
    chart.legend = None
    data = Reference(ws, min_col=10, min_row=lo, max_row=hi)  # O/E
    cats = Reference(ws, min_col=names_col, min_row=lo, max_row=hi)
    chart.add_data(data, titles_from_data=False)
    chart.set_categories(cats)
    chart.height = max(7.5, 0.6 * (hi - lo + 1) + 3)
    chart.width = 16
    ws.add_chart(chart, f"{get_column_letter(anchor_col)}{HEADER_ROW}")


def _proms(w: _Writer, results, tables, period, level) -> None:
    ws = w.sheet("report.sheet_proms")
    frames = []
    for result in results:
        rates = derived(result, prom_response_by_timepoint, w.tables)
        if len(rates):
            rates = rates.assign(condition=result.condition)
            if "ci_low" not in rates:
                rates["ci_low"] = rates["ci_high"] = float("nan")
            # consistent with the indicator sheet: what is withheld there is withheld here, over the same grid
            mask = prom_response_mask(
                rates,
                result,
                w.grids.get(result.condition),
                w.grid_masks.get(result.condition),
                w.rule,
                own_hospitals=w.own_hospitals,
            )
            frames.append(suppress_prom_response(rates, tables[result.condition], result, w.rule, mask=mask))
    frame = (
        pd.concat(frames, ignore_index=True)
        if frames
        else pd.DataFrame(
            columns=["condition", "unit", "instrument", "timepoint", "eligible", "responded", "response_rate"]
        )
    )
    if "ci_low" not in frame:
        frame["ci_low"] = frame["ci_high"] = float("nan")
    if "suppressed" not in frame:
        frame["suppressed"] = False
    instruments = w.catalog.instruments
    columns = [
        Column("column.condition", lambda r: w.condition(r["condition"]), width=22),
        Column("column.unit", _num("unit"), width=14),
        Column("column.unit_name", w.unit_name, width=30),
        Column(
            "proms.instrument",
            lambda r: instruments[r["instrument"]].label(w.lang) if r["instrument"] in instruments else r["instrument"],
            width=26,
        ),
        Column("proms.timepoint", lambda r: _timepoint_label(w, r["condition"], r["timepoint"]), width=12),
        Column("report.eligible", _num("eligible"), COUNT_FORMAT, 11, True),
        Column("report.responded", _num("responded"), COUNT_FORMAT, 11, True),
        Column("column.response_rate", _num("response_rate"), "0.0%", 11, True),
        Column("report.ci_lower", _num("ci_low"), "0.0%", 11, True),
        Column("report.ci_upper", _num("ci_high"), "0.0%", 11, True),
    ]
    w.table(ws, w.t("report.proms_title"), f"{period} · {level}", frame, columns, freeze_col=3)


def _costs(w: _Writer, results, period, level) -> None:
    ws = w.sheet("report.sheet_costs")
    frames = []
    for result in results:
        costs = derived(result, cost_by_activity, w.tables)
        if len(costs):
            # over the grid of periods where the file has one (the years' cycles add up to all dates'); the
            # smaller of "cycles with this activity" and "cycles costed" decides: both are counts of patients
            mask = cost_breakdown_mask(
                costs,
                result,
                w.grids.get(result.condition),
                w.rule,
                own_hospitals=w.own_hospitals,
                got=w.grid_masks.get(result.condition),
            )
            costs = costs.assign(condition=result.condition, activity=costs["activity"].astype(str))
            frames.append(suppress_cost_breakdown(costs.assign(unit=costs["unit"].astype(str)), w.rule, mask=mask))
    cols = ["condition", "unit", "activity", "cycles", "quantity", "total_cost", "costed_cycles", "cost_per_cycle"]
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=[*cols, "share", "suppressed"])
    activities = w.catalog.cost_activities

    def activity(row: pd.Series) -> str:
        a = activities.get(row["activity"])
        return a.label(w.lang) if a else row["activity"]

    columns = [
        Column("column.condition", lambda r: w.condition(r["condition"]), width=22),
        Column("column.unit", _num("unit"), width=14),
        Column("column.unit_name", w.unit_name, width=30),
        Column("cost.activity", activity, width=28),
        Column("report.cycles_with_activity", _num("cycles"), COUNT_FORMAT, 13, True),
        Column("cost.quantity", _num("quantity"), "#,##0.0", 11, True),
        Column("report.total_cost", _num("total_cost"), "€ #,##0", 14, True),
        Column("column.cost_per_cycle", _num("cost_per_cycle"), "€ #,##0", 13, True),
        Column("cost.share", _num("share"), "0.0%", 10, True),
    ]
    w.table(ws, w.t("report.costs_title"), f"{period} · {level}", frame, columns, freeze_col=4)


def _methods(w: _Writer, results, include_patient_rows: bool) -> None:
    ws = w.sheet("report.sheet_methods")
    ws.column_dimensions["A"].width = 34
    ws.column_dimensions["B"].width = 110
    for col in "CDEFG":
        ws.column_dimensions[col].width = 18
    ws.cell(1, 1, w.t("methods.title")).font = TITLE_FONT
    ws.cell(2, 1, w.t("methods.intro")).font = Font(italic=True)
    row = 4
    for section in ("casemix", "oe", "funnel", "overdispersion", "small_numbers", "tiers"):
        ws.cell(row, 1, _text(w.t(f"methods.{section}_title"))).font = Font(bold=True)
        cell = ws.cell(row, 2, _text(w.t(f"methods.{section}_text")))
        cell.alignment = Alignment(wrap_text=True, vertical="top")
        ws.row_dimensions[row].height = 15 * (len(cell.value) // 100 + 1)
        row += 1
    row += 1
    ws.cell(row, 1, w.t("report.rules_title")).font = Font(bold=True, size=12)
    for line in w.rule.statements(w.lang, patient_rows=include_patient_rows):
        row += 1
        ws.cell(row, 2, _text(line)).alignment = Alignment(wrap_text=True, vertical="top")
        ws.row_dimensions[row].height = 30
    headers = ["column.indicator", "column.kind", "column.tier", "column.direction", "report.min_n", "report.key"]
    for result in results:
        cond = w.catalog.condition(result.condition)
        row += 2
        ws.cell(row, 1, _text(f"{cond.label(w.lang)} — {cond.standard_set_label(w.lang)}")).font = Font(
            bold=True, size=12
        )
        row += 1
        ws.cell(row, 1, w.t("report.casemix_variables")).font = Font(bold=True)
        ws.cell(row, 2, _text(", ".join(v.label(w.lang) for v in cond.casemix)))
        row += 1
        for j, key in enumerate(headers, start=1):
            w.header(ws, row, j, key)
        for ind in cond.indicators:
            row += 1
            values = [
                ind.label(w.lang),
                w.t(f"kind.{ind.kind}"),
                w.t(f"tier.{ind.tier}") if ind.tier else None,
                w.t(f"direction.{ind.direction}"),
                ind.min_n,
                w.yes_no(ind.key),
            ]
            for j, value in enumerate(values, start=1):
                ws.cell(row, j, _text(value))


def _timepoint_label(w: _Writer, condition: str, timepoint: str) -> str:
    try:
        return w.catalog.condition(condition).timepoint(timepoint).label(w.lang)
    except KeyError:
        return timepoint


def _outcome_label(w: _Writer, outcome: str) -> str:
    for cond in w.catalog.conditions.values():
        for o in cond.outcomes:
            if o.id == outcome:
                return w.t("report.outcome", outcome=o.label(w.lang))
    return outcome


def _cycles(w: _Writer, results, period) -> None:
    ws = w.sheet("report.sheet_cycles")
    frames = [patient_rows(r) for r in results]
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    outcome_cols = [c for c in frame.columns if c not in ("condition", "cycle_id", "unit", "index_date", "treatment")]
    columns = [
        Column("column.condition", lambda r: w.condition(r["condition"]), width=22),
        Column("report.cycle_id", _num("cycle_id"), width=16),
        Column("column.unit", _num("unit"), width=14),
        Column("report.index_date", _num("index_date"), "yyyy-mm-dd", 12),
        Column("report.treatment", _num("treatment"), width=16),
    ] + [Column("report.outcome", _num(name), "0.##", 14, header=_outcome_label(w, name)) for name in outcome_cols]
    w.table(ws, w.t("report.cycles_title"), period, frame, columns, freeze_col=2)


#: The explanation sheet's columns: sheet, column header, what it holds (wrapped)
_EXPLANATION_WIDTHS = (24, 34, 100)
#: Characters of Calibri 11 a column of width 1 holds about (Excel's width unit is one '0'): for the rows' heights
_CHARS_PER_WIDTH = 1.1


def _explanation(w: _Writer, results, period: str, generated_at: dt.datetime, batches: pd.DataFrame | None) -> None:
    """The last sheet: per sheet every column's header as it appears and what it holds with its unit (the
    [explain] line of the header's key: every header written through _Writer.header has one, or the workbook is
    not made), after the facts a reader forwarding the file needs: period, when the data was imported, the source,
    and how withheld cells are written and why (the rule's own statements)."""
    ws = w.sheet("explain.page_sheet")
    for j, width in enumerate(_EXPLANATION_WIDTHS, start=1):
        ws.column_dimensions[get_column_letter(j)].width = width
    text_chars = int((_EXPLANATION_WIDTHS[1] + _EXPLANATION_WIDTHS[2]) * _CHARS_PER_WIDTH)

    def wrapped(row: int, col: int, value: Any, chars: int) -> None:
        cell = ws.cell(row, col, _text(value))
        cell.alignment = Alignment(wrap_text=True, vertical="top")
        lines = max(1, math.ceil(len(str(value or "")) / max(chars, 1)))
        ws.row_dimensions[row].height = max(ws.row_dimensions[row].height or 15, 15 * lines)

    ws.cell(1, 1, w.t("explain.page_title")).font = TITLE_FONT
    ws.merge_cells(start_row=2, start_column=1, end_row=2, end_column=3)
    wrapped(2, 1, w.t("explain.page_intro"), int(sum(_EXPLANATION_WIDTHS) * _CHARS_PER_WIDTH))
    ws.cell(2, 1).font = Font(italic=True, color="444444")
    imported = None  # the latest import of the batches listed on the cover (a cell holds no time zone)
    if batches is not None and len(batches) and "imported_at" in batches:
        latest = pd.to_datetime(batches["imported_at"], errors="coerce").max()
        imported = None if pd.isna(latest) else latest.tz_localize(None) if latest.tzinfo else latest
    statements = w.rule.statements(w.lang)  # how withheld cells are written and why: the cover's own sentences
    withheld = " ".join(statements[:2] if w.rule.active else statements[:1])
    facts: list[tuple[str, Any]] = [
        (w.t("explain.page_period"), period),
        (w.t("explain.page_generated"), generated_at),
        (w.t("explain.page_data_date"), imported if imported is not None else w.t("explain.page_data_none")),
        (w.t("explain.page_source"), w.t("explain.page_source_text", sheet=w.t("report.sheet_cover"))),
    ]
    facts += [
        (w.t("explain.page_benchmark", condition=w.condition(r.condition)), population)
        for r in results
        if (population := _population(r.table))
    ]
    facts.append((w.t("explain.page_withheld"), withheld))
    row = 4
    for name, value in facts:
        ws.cell(row, 1, _text(name)).font = Font(bold=True)
        ws.cell(row, 1).alignment = Alignment(wrap_text=True, vertical="top")
        ws.merge_cells(start_row=row, start_column=2, end_row=row, end_column=3)
        if isinstance(value, dt.datetime):
            cell = ws.cell(row, 2, _text(value.replace(tzinfo=None)))
            cell.number_format = "yyyy-mm-dd hh:mm"
            cell.alignment = Alignment(horizontal="left", vertical="top")
        else:
            wrapped(row, 2, value, text_chars)
        row += 1
    row += 1
    for j, key in enumerate(("explain.page_col_sheet", "explain.page_col_header", "explain.page_col_text"), start=1):
        cell = ws.cell(row, j, w.t(key))
        cell.fill, cell.font = HEADER_FILL, HEADER_FONT
        cell.alignment = Alignment(wrap_text=True, vertical="top")
    header_row = row
    for (sheet, header), key in list(w.explained.items()):
        if sheet == ws.title:
            continue
        row += 1
        ws.cell(row, 1, _text(sheet)).alignment = Alignment(wrap_text=True, vertical="top")
        ws.cell(row, 2, _text(header)).alignment = Alignment(wrap_text=True, vertical="top")
        wrapped(row, 3, w.t(explanation_key(key)), int(_EXPLANATION_WIDTHS[2] * _CHARS_PER_WIDTH))
    ws.freeze_panes = ws.cell(header_row + 1, 1)
    ws.auto_filter.ref = f"A{header_row}:C{max(row, header_row)}"
