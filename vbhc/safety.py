"""Small guards shared by every export: spreadsheet formula injection and the like."""

from __future__ import annotations

# A cell starting with one of these is run as a formula by Excel/LibreOffice (=HYPERLINK(...), +cmd|..., @SUM).
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r", "\n", "\uff1d", "\uff0b", "\uff0d", "\uff20")


def neutralise_formula(value: object) -> object:
    """Prefix text that a spreadsheet would run as a formula with an apostrophe, so it is shown as text.

    Numbers pass unchanged (a negative number is a number, not a formula); only text is touched.
    """
    if isinstance(value, str) and value.startswith(FORMULA_TRIGGERS):
        return "'" + value
    return value
