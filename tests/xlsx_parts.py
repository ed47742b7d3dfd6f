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
