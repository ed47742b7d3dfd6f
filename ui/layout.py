"""Column layouts of the pages' tables: short headers, fixed widths and help texts, so a whole indicator table
fits the main area of a 1440 px screen (and scrolls sideways as one grid on a phone, never cut off)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

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


def indicator_headers(lang: str, columns: Iterable[str]) -> dict[str, str]:
    """Short headers for render.indicator_display's columns present (e.g. "Adjusted" -> "Adj."), to rename the
    table with before it is drawn: the columns stay narrow, and indicator_key explains each short header."""
    present = set(columns)
    return {
        t(key, lang): t(short, lang)
        for key, (short, _, _) in _INDICATOR_COLUMNS.items()
        if short and t(key, lang) in present
    }


def indicator_key(lang: str, columns: Iterable[str]) -> str:
    """One line under a table that says what each shown number column means ("n: care cycles in the indicator's
    denominator · O/E: ..."): a static table has no header tooltips."""
    present = set(columns)
    parts = []
    for key, (short, _, help_key) in _INDICATOR_COLUMNS.items():
        name = t(key, lang)
        if help_key and name in present:
            parts.append(f"{t(short, lang) if short else name}: {t(help_key, lang)}")
    return " · ".join(parts)


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
#: A static table cell's padding left and right together, and the width of a character of its text (14 px
#: Source Sans, a wide letter: an estimate that errs on the wide side, so a planned table never comes out wider).
CELL_PADDING_PX, CHAR_PX = 16, 8
#: The width of a character in st.dataframe's grid (13-14 px Source Sans, an average letter): a column given
#: this per character of its longest text shows it whole.
GRID_CHAR_PX = 7


def word_px(text: str) -> int:
    """The width the longest word of `text` takes: a wrapping column is never narrower (a word is not cut)."""
    return max((len(word) for word in str(text).split()), default=0) * CHAR_PX


def column_groups(
    columns: Sequence[str], widths: dict[str, int], first: str, *, room: int = MAIN_WIDTH
) -> list[list[str]]:
    """`columns` in consecutive groups that each fit `room` px beside the `first` column (repeated in every
    group), each column at least as wide as its longest word: a table of many indicators becomes a few tables
    one above the other, whole on the meeting screen, instead of one that runs off the page to the right."""
    used = widths.get(first, 0) + CELL_PADDING_PX
    need = [max(widths.get(c, 0), word_px(c)) + CELL_PADDING_PX for c in columns]
    count = 1
    while count < len(columns):  # the fewest tables of an even size (no table of one lone indicator)
        size = -(-len(columns) // count)
        if all(used + sum(need[i : i + size]) <= room for i in range(0, len(columns), size)):
            break
        count += 1
    size = -(-len(columns) // count) if columns else 1
    return [list(columns[i : i + size]) for i in range(0, len(columns), size)]
