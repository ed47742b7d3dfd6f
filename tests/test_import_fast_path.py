"""The fast CSV path (Arrow's reader, for files where one line is one row) reads exactly what the csv-module
path reads: the same header, rows, row numbers, chunks and problems, on files built to be awkward."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vbhc.ingest import read as reader
from vbhc.ingest.problems import ImportReport
from vbhc.ingest.read import Chunk, Header, discover

COLUMNS = ["cycle_id", "outcome", "value", "date"]
_cell = st.text(alphabet="ab1,;. \t-é", max_size=6).map(lambda s: s.replace(",", "").replace(";", ""))


@st.composite
def plain_files(draw) -> tuple[str, str]:
    """A quote-free CSV: the header (maybe with unnamed trailing columns, blank lines above), then rows that may
    be blank, all-separator, too short, too long, or carry values under no header; LF or CRLF line ends."""
    sep = draw(st.sampled_from([",", ";", "\t"]))
    trailing = draw(st.integers(0, 2))
    header = sep.join(COLUMNS + [""] * trailing)
    width = len(COLUMNS) + trailing
    lines = [""] * draw(st.integers(0, 2)) + [header]
    for _ in range(draw(st.integers(0, 40))):
        kind = draw(st.sampled_from(["row"] * 6 + ["blank", "separators", "short", "long", "extra", "spaces"]))
        cells = [draw(_cell) for _ in range(len(COLUMNS))]
        if kind == "row":
            lines.append(sep.join(cells + [""] * trailing))
        elif kind == "blank":
            lines.append("")
        elif kind == "separators":
            lines.append(sep * (width - 1))
        elif kind == "short":
            lines.append(sep.join(cells[: draw(st.integers(1, len(COLUMNS) - 1))]))
        elif kind == "long":
            lines.append(sep.join(cells + [""] * trailing + ["x"]))
        elif kind == "extra":
            lines.append(sep.join(cells + ["v"] * max(trailing, 1)))
        else:
            lines.append("  ")
    end = draw(st.sampled_from(["\n", "\r\n"]))
    text = end.join(lines) + draw(st.sampled_from(["", end]))
    return text, sep


def _read(path: Path, chunk_rows: int, slow: bool) -> tuple[list, list]:
    report = ImportReport()
    sources = discover([path], report, (1e9, "limit"))
    assert len(sources) == 1, report.problems
    source = sources[0]
    if slow:
        source = dataclasses.replace(source, plain_lines=False)
    parts = []
    for part in reader.read(source, report, chunk_rows):
        if isinstance(part, Header):
            parts.append(("header", part.names, part.width, part.row))
        else:
            assert isinstance(part, Chunk)
            parts.append(("chunk", part.frame, part.rows.tolist()))
    return parts, [(p.row, p.column, p.value, p.rule) for p in report.problems]


@settings(
    max_examples=int(os.environ.get("VBHC_FUZZ_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(spec=plain_files(), chunk_rows=st.integers(1, 7), block=st.sampled_from([64, 256, 1 << 20]))
def test_the_fast_path_reads_what_the_csv_module_reads(spec, chunk_rows, block, tmp_path, monkeypatch):
    text, _sep = spec
    path = tmp_path / "clinical_outcomes.csv"
    path.write_bytes(text.encode())
    monkeypatch.setattr(reader, "_ARROW_BLOCK_BYTES", block)
    report = ImportReport()
    sources = discover([path], report, (1e9, "limit"))
    if not sources:
        return  # refused before reading (e.g. no header line to take the separator from): no path to compare
    assert sources[0].plain_lines, "a file without quotes or lone CRs takes the fast path"
    fast, fast_problems = _read(path, chunk_rows, slow=False)
    slow, slow_problems = _read(path, chunk_rows, slow=True)
    assert sorted(fast_problems, key=repr) == sorted(slow_problems, key=repr)
    assert len(fast) == len(slow)
    for a, b in zip(fast, slow, strict=True):
        assert a[0] == b[0]
        if a[0] == "header":
            assert a == b
        else:
            pd.testing.assert_frame_equal(a[1], b[1])
            assert a[2] == b[2]


@pytest.mark.parametrize(
    "content, plain",
    [
        (b"a,b\n1,2\n", True),
        (b"a,b\r\n1,2\r\n", True),
        (b'a,b\n"1",2\n', False),  # quotes: a quoted field may hold a separator or a line break
        (b"a,b\r1,2\r", False),  # old Mac line ends: the csv module's rules, not Arrow's
        (b"a,b\n1,2\r", False),
    ],
)
def test_only_files_where_one_line_is_one_row_take_the_fast_path(content, plain, tmp_path):
    path = tmp_path / "clinical_outcomes.csv"
    path.write_bytes(content)
    assert reader._scan_text(path)[2] is plain


def test_a_crlf_split_across_scan_blocks_is_still_a_line_end(tmp_path):
    path = tmp_path / "clinical_outcomes.csv"
    head = b"a,b\r\n"
    filler = b"1,2\r\n" * ((1 << 20) // 5)
    body = head + filler
    body = body[: (1 << 20) - 1] + b"\r\n" + b"3,4\r\n"  # the CR is the block's last byte, the LF the next one's
    assert body[(1 << 20) - 1 : (1 << 20) + 1] == b"\r\n"
    path.write_bytes(body)
    assert reader._scan_text(path)[2] is True
