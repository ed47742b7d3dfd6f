"""Small render helpers shared by the pages: formatted indicator tables and the empty state."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from ui import filters
from vbhc import charts
from vbhc.i18n import fmt_ci, fmt_int, fmt_number, fmt_ratio, format_value, t, t_value


def empty_state(lang: str) -> None:
    st.info(t("empty.database_empty", lang), icon=":material/info:")


def assessment_label(value: object, lang: str) -> str:
    return t_value("assessment", value, lang)


def indicator_display(rows: pd.DataFrame, lang: str, *, by: str = "indicator") -> pd.DataFrame:
    """The indicator table as the viewer reads it: labels in their language, numbers in their locale."""
    label = "label_nl" if lang == "nl" else "label_en"
    out = pd.DataFrame(index=rows.index)
    if by == "indicator":
        out[t("column.indicator", lang)] = rows[label]
    else:
        out[t("column.unit", lang)] = rows["unit"]
    out[t("column.care_cycles", lang)] = [fmt_int(v, lang) for v in rows["n"]]
    out[t("column.observed", lang)] = [_observed(r, lang) for r in rows.itertuples()]
    out[t("column.expected", lang)] = [_expected(r, lang) for r in rows.itertuples()]
    out[t("column.oe", lang)] = [fmt_ratio(v, lang) if pd.notna(v) else "–" for v in rows["oe"]]
    out[t("column.crude", lang)] = [format_value(r.crude_value, r.kind, lang) for r in rows.itertuples()]
    out[t("column.adjusted", lang)] = [format_value(r.adjusted_value, r.kind, lang) for r in rows.itertuples()]
    out[t("column.ci95", lang)] = [fmt_ci(r.adjusted_lower, r.adjusted_upper, r.kind, lang) for r in rows.itertuples()]
    out[t("column.benchmark", lang)] = [format_value(r.target, r.kind, lang) for r in rows.itertuples()]
    out[t("column.assessment", lang)] = [assessment_label(v, lang) for v in rows["assessment_998"]]
    out[t("position.title_95", lang)] = [assessment_label(v, lang) for v in rows["assessment_95"]]
    return out


def _observed(row, lang: str) -> str:
    if row.kind in ("proportion", "prom_mic", "response_rate"):
        return fmt_int(row.observed, lang)
    return format_value(row.observed, row.kind, lang)


def _expected(row, lang: str) -> str:
    if pd.isna(row.expected):
        return "–"
    if row.kind in ("proportion", "prom_mic"):
        return fmt_number(row.expected, lang, 1)  # expected number of events
    return format_value(row.expected, row.kind, lang)


def cell_style(assessment: object) -> str:
    """CSS for a table cell coloured by its assessment: the charts' palette, so a unit has one colour everywhere."""
    if not isinstance(assessment, str) or not assessment:
        return ""
    return f"background-color: {charts.scorecard_colour(assessment)}; color: {charts.scorecard_text_colour(assessment)}"


def colour_assessments(styler, columns: list[str], values: pd.DataFrame):
    """Background colour per cell from the underlying assessment (direction-aware, colour-blind safe)."""

    def paint(column: pd.Series) -> list[str]:
        raw = values[column.name] if column.name in values else pd.Series("", index=column.index)
        return [cell_style(v) for v in raw]

    return styler.apply(paint, subset=columns)


def chart(chart_obj) -> None:
    """Show an Altair chart built by vbhc.charts. The builders are tested against the Vega-Lite schema, so
    the page skips Altair's per-render schema validation (about 0.1 s a chart) and sends the finished spec."""
    st.vega_lite_chart(chart_obj.to_dict(validate=False), width="stretch", theme=None)


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
