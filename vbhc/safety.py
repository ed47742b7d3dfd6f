"""Small guards shared by every export and every page: spreadsheet formula injection, markdown injection and
unsafe file names, HTML text. Pure functions (no Streamlit), so reports, the CLI and the pages use the same ones."""

from __future__ import annotations

import html
import re

import pandas as pd

# A cell starting with one of these is run as a formula by Excel/LibreOffice (=HYPERLINK(...), +cmd|..., @SUM).
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r", "\n", "\uff1d", "\uff0b", "\uff0d", "\uff20")


def neutralise_formula(value: object) -> object:
    """Prefix text that a spreadsheet would run as a formula with an apostrophe, so it is shown as text.

    Numbers pass unchanged (a negative number is a number, not a formula); only text is touched. Leading spaces
    do not hide a formula: some importers trim them before evaluating the cell.
    """
    if isinstance(value, str) and (value.startswith(FORMULA_TRIGGERS) or value.lstrip().startswith(FORMULA_TRIGGERS)):
        return "'" + value
    return value


def safe_csv(frame: pd.DataFrame, *, index: bool = False) -> bytes:
    """The frame as CSV (UTF-8 with BOM, so Excel reads accents) in which no cell, header or index value can run
    as a formula: the one CSV writer of everything the dashboard lets people download."""
    out = frame.copy()
    for col in out.columns:
        series = out[col]
        if not (
            pd.api.types.is_numeric_dtype(series)
            or pd.api.types.is_bool_dtype(series)
            or pd.api.types.is_datetime64_any_dtype(series)
        ):
            out[col] = series.astype(object).map(neutralise_formula)
    out.columns = [neutralise_formula(str(c)) for c in out.columns]
    if index:
        out.index = pd.Index([neutralise_formula(v) for v in out.index], name=neutralise_formula(out.index.name))
    # CRLF rows (RFC 4180): a cell holding a lone \r or \n is then quoted instead of splitting the row
    return out.to_csv(index=index, lineterminator="\r\n").encode("utf-8-sig")


# every ASCII punctuation character may be backslash-escaped in CommonMark and then stands for itself
_MARKDOWN_SPECIAL = re.compile(r"""([!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~])""")
_LINE_BREAKS = re.compile(r"[\r\n\t\f\v\u2028\u2029]+")


def md_escape(value: object) -> str:
    """Data-derived text (unit codes and names, file names, user names, ...) made literal for Streamlit markdown.

    Every ASCII punctuation character is backslash-escaped, so a unit called `[H67](https://x)`, `**b**`,
    `<img src=x onerror=...>`, backticks or `$x$` (LaTeX) shows as typed instead of becoming a link, bold text,
    HTML, code or a formula; `://` and `www.` are escaped too, so no bare URL turns into a link. Line breaks
    become spaces (a title or an alert stays one line).
    """
    text = "" if value is None else str(value)
    return _MARKDOWN_SPECIAL.sub(r"\\\1", _LINE_BREAKS.sub(" ", text))


def html_text(value: object) -> str:
    """Data-derived text made literal inside HTML (a table cell built by the pages): `<`, `>`, `&` and quotes
    become entities, so a unit called `<script>` or `<img onerror=...>` shows as typed; line breaks become
    spaces, as in md_escape. HTML is not Markdown: `[x](url)` and `**b**` already read as typed."""
    text = "" if value is None else str(value)
    return html.escape(_LINE_BREAKS.sub(" ", text), quote=True)


_UNSAFE_FILE_CHARS = re.compile(r"[^A-Za-z0-9._-]+")


def safe_file_name(name: str, default: str = "export") -> str:
    """A download's file name from data-derived parts (unit codes, periods): letters, digits, '.', '_' and '-'
    only, not starting with a dot or a formula trigger, so it is safe in a header, on disk and in a spreadsheet."""
    cleaned = _UNSAFE_FILE_CHARS.sub("_", name).strip("._-")
    return cleaned[:150] or default


def css_text(value: object) -> str:
    """`value` as a quoted CSS string (for `content:` in a style sheet): every character that is not a letter,
    digit, space or plain punctuation is written as a CSS escape, so no text can end the string or the rule."""
    out = []
    for ch in str(value):
        if ch.isalnum() or ch in " .,;:-()%":
            out.append(ch)
        else:
            out.append(f"\\{ord(ch):06x}")
    return '"' + "".join(out) + '"'
