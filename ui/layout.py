"""Column layouts of the pages' tables: short headers, fixed widths and help texts, so a whole indicator table
fits the main area of a 1440 px screen (and scrolls sideways as one grid on a phone, never cut off)."""

from __future__ import annotations

from collections.abc import Iterable

import streamlit as st

from vbhc.i18n import t

#: indicator_display column (message key) -> (short header key or None, width in px, help key)
_INDICATOR_COLUMNS = {
    "column.indicator": (None, 190, None),
    "column.unit": (None, 190, None),
    "column.care_cycles": ("pages.short_cycles", 52, "pages.help_cycles"),
    "column.observed": ("pages.short_observed", 58, "pages.help_observed"),
    "column.expected": ("pages.short_expected", 58, "pages.help_expected"),
    "column.oe": (None, 48, "pages.help_oe"),
    "column.crude": (None, 68, "pages.help_crude"),
    "column.adjusted": ("pages.short_adjusted", 68, "pages.help_adjusted"),
    "column.ci95": (None, 104, "pages.help_ci95"),
    "column.benchmark": ("pages.short_benchmark", 64, "pages.help_benchmark"),
    "verdict.column": (None, 280, None),
    "spc.variation": (None, 100, None),
    "spc.assurance": (None, 100, None),
}


def indicator_columns(lang: str, columns: Iterable[str] | None = None) -> dict:
    """column_config for render.indicator_display's table in `lang` (only the columns present, if given)."""
    present = set(columns) if columns is not None else None
    config = {}
    for key, (short, width, help_key) in _INDICATOR_COLUMNS.items():
        name = t(key, lang)
        if present is not None and name not in present:
            continue
        config[name] = st.column_config.TextColumn(
            t(short, lang) if short else name,
            width=width,
            help=t(help_key, lang) if help_key else None,
            pinned=True if key in ("column.indicator", "column.unit") else None,  # kept in view on a phone
        )
    return config


def indicator_widths(lang: str, columns: Iterable[str]) -> dict[str, int]:
    """Width in px of each render.indicator_display column present, for render.static_table (the same widths
    as the grid's, so a table keeps its proportions whichever way it is drawn)."""
    present = set(columns)
    widths = {t(key, lang): width for key, (_, width, _) in _INDICATOR_COLUMNS.items()}
    return {name: width for name, width in widths.items() if name in present}


def text_columns(widths: dict[str, int], helps: dict[str, str] | None = None) -> dict:
    """column_config giving plain text columns a fixed width (and a help text)."""
    helps = helps or {}
    return {name: st.column_config.TextColumn(name, width=w, help=helps.get(name)) for name, w in widths.items()}


#: Width in px that a table may fill in the main area of a 1440 px screen (the grid measures 978 there).
MAIN_WIDTH = 940
