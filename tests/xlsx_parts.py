"""A saved workbook's first sheet changed in its XML, as a writer other than openpyxl (or a hostile sender) may
write it: tests of what the readers make of a sheet part openpyxl would not write itself."""

from __future__ import annotations

import io
import re
import zipfile

SHEET_PART = "xl/worksheets/sheet1.xml"


def patch_sheet(data: bytes, change) -> bytes:
    """The workbook `data` with its first sheet's XML replaced by change(xml)."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as zin, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            part = zin.read(info.filename)
            zout.writestr(info, change(part) if info.filename == SHEET_PART else part)
    return out.getvalue()


def state_dimension(ref: str):
    """A change stating the sheet's size as `ref` (A1, A1:C3) in its dimension tag, whatever it holds."""
    return lambda xml: re.sub(rb'<dimension ref="[^"]*"/>', f'<dimension ref="{ref}"/>'.encode(), xml)


def row_again_at_end(row: int):
    """A change writing row `row` once more after the sheet's last row (a row out of order and written twice)."""

    def change(xml: bytes) -> bytes:
        found = re.search(rb'<row r="%d"[ >].*?</row>' % row, xml, re.S)
        assert found is not None, f"no row {row}"
        return xml.replace(b"</sheetData>", found.group(0) + b"</sheetData>")

    return change


def row_moved_to_end(row: int):
    """A change moving row `row` after the sheet's last row (out of order, written once)."""

    def change(xml: bytes) -> bytes:
        found = re.search(rb'<row r="%d"[ >].*?</row>' % row, xml, re.S)
        assert found is not None, f"no row {row}"
        return xml.replace(found.group(0), b"").replace(b"</sheetData>", found.group(0) + b"</sheetData>")

    return change


def cell_moved_to_row_start(ref: str):
    """A change moving cell `ref` (F2) before the first cell of its row (cells out of order within the row)."""

    def change(xml: bytes) -> bytes:
        row = re.search(rb"[0-9]+", ref.encode()).group(0)
        found = re.search(rb'<c r="%s"[^>]*?(?:/>|>.*?</c>)' % ref.encode(), xml, re.S)
        assert found is not None, f"no cell {ref}"
        xml = xml.replace(found.group(0), b"", 1)
        start = re.search(rb'<row r="%s"[^>]*>' % row, xml)
        assert start is not None, f"no row {row.decode()}"
        return xml[: start.end()] + found.group(0) + xml[start.end() :]

    return change


_INLINE = re.compile(rb'(<c\b[^>]*?) t="inlineStr"([^>]*)><is>(.*?)</is></c>', re.S)
_MAIN = b"http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_SHARED_TYPE = b"http://schemas.openxmlformats.org/officeDocument/2006/relationships/sharedStrings"
_SHARED_CONTENT = b"application/vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"


def shared_strings(data: bytes, extra: tuple[bytes, ...] = ()) -> bytes:
    """The workbook `data` (openpyxl writes every text as an inline string) with its sheets' texts in a shared
    strings table instead, as Excel, LibreOffice and most other writers save them; each text keeps the XML it was
    written with (an `_xHHHH_` code in it stays a code), a text written twice is one entry. `extra`: entries (the
    XML inside <si>) the table holds besides, which no cell uses."""
    table: dict[bytes, int] = {}

    def share(match: re.Match) -> bytes:
        index = table.setdefault(match.group(3), len(table))
        return match.group(1) + b' t="s"' + match.group(2) + b"><v>%d</v></c>" % index

    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as zin, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            part = zin.read(info.filename)
            if info.filename.startswith("xl/worksheets/sheet"):
                part = _INLINE.sub(share, part)
            elif info.filename == "xl/_rels/workbook.xml.rels":
                part = part.replace(
                    b"</Relationships>",
                    b'<Relationship Id="rIdShared" Type="%s" Target="sharedStrings.xml"/></Relationships>'
                    % _SHARED_TYPE,
                )
            elif info.filename == "[Content_Types].xml":
                part = part.replace(
                    b"</Types>",
                    b'<Override PartName="/xl/sharedStrings.xml" ContentType="%s"/></Types>' % _SHARED_CONTENT,
                )
            zout.writestr(info, part)
        for text in extra:
            table.setdefault(text, len(table))
        items = b"".join(b"<si>%s</si>" % text for text in table)
        zout.writestr(
            "xl/sharedStrings.xml",
            b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<sst xmlns="%s" count="%d" uniqueCount="%d">'
            b"%s</sst>" % (_MAIN, len(table), len(table), items),
        )
    return out.getvalue()


def sheet_renamed(data: bytes, old: str, new: str) -> bytes:
    """The workbook `data` with its sheet `old` named `new` in the workbook's XML, as written (`new` may hold
    Excel's _xHHHH_ codes, or repeat another sheet's name in other case, which openpyxl would not write)."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as zin, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            part = zin.read(info.filename)
            if info.filename == "xl/workbook.xml":
                assert b'name="%s"' % old.encode() in part, f"no sheet {old}"
                part = part.replace(b'name="%s"' % old.encode(), b'name="%s"' % new.encode())
            zout.writestr(info, part)
    return out.getvalue()


def number_written(ref: str, written: bytes, cell_type: bytes = b""):
    """A change writing cell `ref`'s value as `written` (6_1, infinity), as a number cell (or of `cell_type`): a
    hand-edited sheet or a faulty exporter's; the cell keeps its other attributes."""

    def change(xml: bytes) -> bytes:
        found = re.search(rb'<c r="%s"[^>]*?(?:/>|>.*?</c>)' % ref.encode(), xml, re.S)
        assert found is not None, f"no cell {ref}"
        attrs = re.sub(rb'\s(?:r|t)="[^"]*"', b"", re.match(rb"<c([^>]*?)/?>", found.group(0)).group(1))
        kind = b' t="%s"' % cell_type if cell_type else b""
        cell = b'<c r="%s"%s%s><v>%s</v></c>' % (ref.encode(), attrs, kind, written)
        return xml.replace(found.group(0), cell, 1)

    return change
