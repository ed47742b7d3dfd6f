"""What the pages' static tables show (ui.render.static_table: escaped HTML through st.html), read back from an
AppTest run as the browser would read it: the header and cell texts, and each cell's style."""

from __future__ import annotations

import dataclasses
from html.parser import HTMLParser

import pandas as pd

from ui.render import TABLE_CLASS


@dataclasses.dataclass
class ShownTable:
    """One static table: `value` the texts (columns = headers), `styles` each cell's style attribute, `html`,
    and `tags` the names of every HTML element in it (only the table's own: no data-made tag)."""

    value: pd.DataFrame
    styles: pd.DataFrame
    html: str
    tags: set[str]


class _TableParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.headers: list[str] = []
        self.rows: list[list[str]] = []
        self.styles: list[list[str]] = []
        self._cell: list[str] | None = None
        self._in_head = False
        self.tags: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        if tag == "thead":
            self._in_head = True
        elif tag == "tr" and not self._in_head:
            self.rows.append([])
            self.styles.append([])
        elif tag in ("th", "td"):
            self._cell = []
            if tag == "td":
                self.styles[-1].append(dict(attrs).get("style") or "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "thead":
            self._in_head = False
        elif tag in ("th", "td") and self._cell is not None:
            text = "".join(self._cell)
            (self.headers if tag == "th" else self.rows[-1]).append(text)
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def parse_table(body: str) -> ShownTable:
    """The table in `body` (the HTML of ui.render.table_html)."""
    parser = _TableParser()
    parser.feed(body)
    parser.close()
    return ShownTable(
        value=pd.DataFrame(parser.rows, columns=parser.headers, dtype=object),
        styles=pd.DataFrame(parser.styles, columns=parser.headers, dtype=object),
        html=body,
        tags=parser.tags,
    )


def tables(at) -> list[ShownTable]:
    """Every static table of an AppTest run, in page order."""
    return [parse_table(h.value) for h in at.get("html") if f'class="{TABLE_CLASS}"' in h.value]
