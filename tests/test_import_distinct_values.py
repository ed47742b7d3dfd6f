"""A text column that repeats its values is checked once per distinct value (vbhc.ingest.validate.Checker._distinct,
issue 13 item 4: the PROM file's CPU), and a PROM file's keys leave validation as codes of those values, so that
the duplicate keys' hashes and the packing into questionnaires hash no row's text again. The checks must name the
same rows, values and messages as row by row: the property compares the two ways on any column of repeated texts;
the count holds the work (rows of text hashed), never a time."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from vbhc import models
from vbhc.demo import generate_demo
from vbhc.ingest import import_files
from vbhc.ingest import validate as validation
from vbhc.ingest.problems import ImportReport
from vbhc.ingest.read import Chunk, Source
from vbhc.ingest.validate import Checker, DecimalMarks
from vbhc.store import get_engine

#: texts each check looks for, and clean ones; repeated over a chunk's rows by the property below
_TEXTS = st.one_of(
    st.sampled_from(["eq5d5l", " eq5d5l ", "MO", "", "  ", "C0000001", "=SUM(A1)", "+1(2)", "#N/A", "#n/a"]),
    st.sampled_from(["C0000001\u200b", "C00\x7f01", "C0\t001", "1,23457E+11", "Ϲ0001", "é", "e\u0301", "2024-02-30"]),
    st.sampled_from(["2021-03-04", " 2021-03-04", "2099-01-01", "1899-12-31", "２０２１-03-04", "x" * 70]),
    st.sampled_from(["3", " 4", "+5", "-0", "007", "1" * 16, "9" * 400, "2,5", "1.250", "1e3", "n.v.t."]),
)


def _checked(texts: list[str], rows: int, few_from: int, monkeypatch) -> tuple[list, dict[str, list]]:
    """The problems and returned values of text(), identifier(), date() and number() over a column of `rows` rows
    cycling through `texts`, with the distinct-value path taken from chunks of `few_from` rows."""
    monkeypatch.setattr(validation, "_FEW_DISTINCT_FROM", few_from)
    column = [texts[i % len(texts)] for i in range(rows)]
    frame = pd.DataFrame({n: column for n in ("instrument", "cycle_id", "completed_date", "value")}, dtype=str)
    source = Source(Path("prom_responses.csv"), None, "prom_responses", "0" * 64, 0)
    report = ImportReport()
    ck = Checker(source, Chunk(frame, np.arange(2, rows + 2, dtype=np.int64), 0), report, DecimalMarks(source))
    out = {
        "text": ck.text("instrument", max_len=40).tolist(),
        "identifier": ck.identifier("cycle_id").tolist(),
        "date": ck.date("completed_date", required=False).tolist(),
        "number": [repr(x) for x in ck.number("value")],  # NaN as text: it equals no NaN
        "marks": ck.marks.verdict(),
        "coded": [ck.coded("cycle_id")[0].tolist(), list(ck.coded("cycle_id")[1])],
    }
    ck.finish()
    return [(p.row, p.column, p.value, p.rule.code, p.rule.values) for p in report.problems], out


@settings(max_examples=60, deadline=None)
@given(
    st.one_of(st.lists(_TEXTS, min_size=1, max_size=6), st.lists(st.sampled_from(["1", "2", " 3", "+4"]), min_size=1))
)
def test_checks_per_distinct_value_name_the_rows_as_row_by_row(texts: list[str]) -> None:
    with pytest.MonkeyPatch.context() as monkeypatch:
        distinct = _checked(texts, 1200, 1_000, monkeypatch)
        by_row = _checked(texts, 1200, 10**9, monkeypatch)
    assert distinct == by_row
    out = distinct[1]
    codes, values = out["coded"]
    assert [values[c] for c in codes] == out["identifier"]  # coded(): pd.factorize of the checked column
    assert list(values) == list(dict.fromkeys(out["identifier"]))  # in the order values first appear


def test_a_prom_files_key_texts_are_hashed_once(tmp_path, monkeypatch):
    """Before: pandas hashed 14 text columns of every PROM chunk (the cycle ids' look-up, the instruments' and
    timepoints' codes, the dates, the item ranges' two columns, the duplicate keys' four, the packing's four).
    Now each text column is encoded once by Arrow, and pandas hashes a text column no longer than its distinct
    values: the rows of text pandas factorizes or hashes stay below the file's rows."""
    files = tmp_path / "files"
    counts = generate_demo(files, cycles=300, seed=7).counts
    engine = get_engine(f"sqlite:///{tmp_path / 'registry.db'}")
    import_files([files / "units.xlsx", files / "care_cycles.csv"], engine)
    hashed: list[int] = []
    factorize = pd.arrays.ArrowExtensionArray.factorize
    hash_object = pd.util.hash_pandas_object

    def counted_factorize(self, *args, **kwargs):
        if pd.api.types.is_string_dtype(self.dtype):
            hashed.append(len(self))
        return factorize(self, *args, **kwargs)

    def counted_hash(obj, *args, **kwargs):
        frame = obj.to_frame() if isinstance(obj, pd.Series) else obj
        hashed.extend(len(frame) for c in frame.columns if pd.api.types.is_string_dtype(frame[c].dtype))
        return hash_object(obj, *args, **kwargs)

    monkeypatch.setattr(pd.arrays.ArrowExtensionArray, "factorize", counted_factorize)
    monkeypatch.setattr(pd.util, "hash_pandas_object", counted_hash)
    report = import_files([files / "prom_responses.csv"], engine)
    assert report.ok
    assert report.sources[0].rows_read == counts["prom_responses"] > 5_000
    assert sum(hashed) < counts["prom_responses"], f"{sum(hashed):,} rows of text hashed"


def test_a_cost_files_quantities_and_prices_are_read_once_per_distinct_value(tmp_path, monkeypatch):
    """A cost file's quantities and prices repeat a few hundred values over its rows: number() reads each distinct
    text once (its decimal mark too) and spreads the values, as text() does. Before, every row's price went through
    the regular expressions and the decimal-mark scan: ~0.3 s of CPU of the 100k demo's 521,000 cost lines. The
    count holds the work (prices scanned for their decimal mark), never a time; the stored values are the file's."""
    files = tmp_path / "files"
    generate_demo(files, cycles=1_000, seed=7)
    engine = get_engine(f"sqlite:///{tmp_path / 'registry.db'}")
    import_files([files / "units.xlsx", files / "care_cycles.csv"], engine)
    scanned: list[int] = []
    observe = DecimalMarks.observe

    def counted_observe(self, column, text, rows):
        scanned.append(len(text))
        return observe(self, column, text, rows)

    monkeypatch.setattr(DecimalMarks, "observe", counted_observe)
    report = import_files([files / "costs.csv"], engine)
    lines = report.sources[0].rows_read
    assert report.ok and lines > 4 * validation._FEW_DISTINCT_FROM
    assert 0 < sum(scanned) < lines / 4, f"{sum(scanned):,} of {lines:,} prices scanned"
    written = pd.read_csv(files / "costs.csv", dtype=str)
    line = models.CostLine
    with engine.connect() as conn:
        stored = conn.execute(select(line.cycle_id, line.activity, line.quantity, line.unit_cost)).all()
    assert {(c, a): (q, u) for c, a, q, u in stored} == {
        (c, a): (float(q), float(u))
        for c, a, q, u in written[["cycle_id", "activity", "quantity", "unit_cost"]].itertuples(index=False)
    }
