"""Excel's separator line: a CSV whose first line is `sep=;` (or `sep=,`, `sep=<tab>`).

Excel reads that line as an instruction, not as a row: it splits the file on the named separator and shows the
header (the file's second line) in its row 1. Programs write it so that Excel in every locale opens the file
in columns. The import reads it as Excel does: the line sets the separator and is no row. Row numbers stay the
file's line numbers, as a text editor counts them (the separator line is line 1, the header line 2): a problem
names the line a person finds in the file, whichever program shows it.

A line that starts with `sep=` and names another separator than the import reads (`sep=|`) is refused naming
that line, instead of reading it as the header.
"""

from __future__ import annotations

import re

#: The separators the import reads (vbhc.ingest.read and vbhc.external split on these)
SEPARATORS = (",", ";", "\t")
_DIRECTIVE = re.compile(r"sep=", re.IGNORECASE)


def separator_directive(first_line: str) -> tuple[bool, str | None]:
    """(whether `first_line` is Excel's separator line, the separator it names when the import reads that one).

    `first_line` is the file's first line without its line break and without a UTF-8 BOM. (True, None) is a
    separator line naming a separator the import does not read: refuse it naming the line."""
    if not _DIRECTIVE.match(first_line):
        return False, None
    rest = first_line[4:]
    return True, rest if rest in SEPARATORS else None


def first_line_of(text: str) -> str:
    """The first line of `text` (a BOM left out), ended as the csv module ends a line: at LF, CRLF or a lone CR."""
    text = text.removeprefix("\ufeff")
    return re.split(r"\r\n|\r|\n", text, maxsplit=1)[0]
