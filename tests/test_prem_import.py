"""Importing PREM responses (item level) through the registry import: an accepted file stores exactly what it
says; a refused one changes no row and names file, row, column and value; random damage never half-writes."""

from __future__ import annotations

import contextlib
import csv
import io
import itertools
import re
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, select

from tests import registry_source
from tests.backends import sqlite_only
from tests.prem_files import PREM_COLUMNS, prem_rows, write_prems
from tests.registry_files import write_small_registry
from vbhc import models
from vbhc.ingest import ImportRefused, import_files
from vbhc.store import get_engine, row_counts, upgrade_schema


@pytest.fixture(scope="module")
def sqlite_units(_sqlite_schema, tmp_path_factory) -> registry_source.Source:
    """The small registry's units imported once into a SQLite registry of the current schema: what every SQLite
    `units` is a copy of."""
    folder = tmp_path_factory.mktemp("units_source")
    files = write_small_registry(folder / "files")
    return registry_source.sqlite_imported(_sqlite_schema, folder, files[:1])


@pytest.fixture(scope="module")
def postgres_units(postgres_server, _postgres_schema, tmp_path_factory) -> Iterator[registry_source.Source]:
    """As sqlite_units, on the suite's PostgreSQL server (the template of every PostgreSQL `units`)."""
    files = write_small_registry(tmp_path_factory.mktemp("units_source") / "files")
    with registry_source.postgres_imported(postgres_server, _postgres_schema, files[:1]) as source:
        yield source


#: A test that uses one of these fixtures gets a PostgreSQL `engine` made straight from the module's imported
#: registry, its source (tests/conftest.py `postgres_template`)
POSTGRES_SOURCES = {"units": "postgres_units"}


@pytest.fixture
def units(engine, request):
    """A registry with the small registry's units imported: the test's `engine` (SQLite or PostgreSQL) made a copy
    of the module's (the same rows, import batch and audit event as importing units.csv into it)."""
    registry_source.overwrite_from(engine, request, "units")
    return engine


def _stored(engine) -> pd.DataFrame:
    t = models.PremResponse.__table__
    with engine.connect() as conn:
        frame = pd.read_sql(select(*[t.c[c] for c in PREM_COLUMNS]), conn)
    return frame.sort_values(["response_id", "item"]).reset_index(drop=True)


def _as_given(rows: list[dict[str, str]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=PREM_COLUMNS)
    frame["answer"] = frame["answer"].astype(float)
    frame["visit_date"] = pd.to_datetime(frame["visit_date"]).dt.date
    for c in ("age_band", "education", "self_rated_health"):
        frame[c] = frame[c].replace("", None)
    return frame.sort_values(["response_id", "item"]).reset_index(drop=True)


def test_an_accepted_file_stores_exactly_what_it_says(units, tmp_path):
    rows = prem_rows()
    report = import_files([write_prems(tmp_path / "prem_responses.csv", rows)], units)
    assert report.sources[0].table == "prem_responses"
    assert report.sources[0].rows_inserted == len(rows)
    stored = _stored(units)
    stored["visit_date"] = pd.to_datetime(stored["visit_date"]).dt.date
    pd.testing.assert_frame_equal(stored, _as_given(rows), check_dtype=False)
    # the same file again adds nothing; a changed answer updates one row
    rows[0]["answer"] = "4" if rows[0]["answer"] != "4" else "3"
    again = import_files([write_prems(tmp_path / "prem_responses_2.csv", rows)], units)
    assert (again.sources[0].rows_inserted, again.sources[0].rows_updated) == (0, 1)
    assert len(_stored(units)) == len(rows)


def _refused(engine, path: Path) -> str:
    before = row_counts(engine)
    with pytest.raises(ImportRefused) as info:
        import_files([path], engine)
    assert row_counts(engine) == before
    return str(info.value)


#: a bad value, where it is (row of prem_rows()) and the rule it breaks
BAD_VALUES = [
    (0, {"questionnaire": "prem_dental"}, "questionnaire", "unknown PREM questionnaire"),
    (0, {"department": "CAR"}, "department", "unknown hospital/department"),
    # one unit to a reader: named with the stored spelling, not as an unknown unit
    (0, {"department": "sur"}, "department", "write it as H01/SUR"),
    (0, {"hospital": "h01"}, "hospital", "write it as H01"),
    (0, {"item": "doc_smile"}, "item", "not an item of prem_clinical"),
    (0, {"answer": "5"}, "answer", "doc_listen is answered with one of 1, 2, 3, 4"),
    (2, {"answer": "11"}, "answer", "overall is answered with one of 0, 1, 2"),
    (1, {"answer": "3,5"}, "answer", "answered with one of"),
    (0, {"item": "car_lifestyle"}, "item", "car_lifestyle is asked only of the patients of CAR"),
    (0, {"visit_type": "outpatient"}, "visit_type", "prem_clinical is asked after a clinical visit"),
    (0, {"education": "phd"}, "education", "unknown code for education"),
    (0, {"visit_date": "2024-13-01"}, "visit_date", "not a date in the form YYYY-MM-DD"),
    (1, {"age_band": "16-34"}, "age_band", "differs between rows of one response"),
    (0, {"response_id": "111222333"}, "response_id", "looks like a BSN"),
    # an id wholly in Cyrillic (САТ) reads as the Latin CAT: refused naming the letter, as on every id path
    (0, {"response_id": "\u0421\u0410\u0422"}, "response_id", "U+0421 CYRILLIC CAPITAL LETTER ES"),
    (0, {"answer": "=1+2"}, "answer", "not a number"),
    (0, {"item": "=HYPERLINK(1)"}, "item", "looks like a spreadsheet formula"),
]
#: the rules checked against the stored registry (the known units read with SQL); the others are checked on the
#: file's values alone, before any SQL, on SQLite only (tests/backends.py; their 12 PostgreSQL runs were ~4.5 s)
AGAINST_STORED_ROWS = ("department", "hospital")


@pytest.mark.parametrize(("row", "change", "column", "rule"), [c for c in BAD_VALUES if c[2] in AGAINST_STORED_ROWS])
def test_a_value_unknown_to_the_registry_refuses_the_file_naming_file_row_column_value(
    units, tmp_path, row, change, column, rule
):
    _check_refused(units, tmp_path, row, change, column, rule)


@sqlite_only
@pytest.mark.parametrize(
    ("row", "change", "column", "rule"), [c for c in BAD_VALUES if c[2] not in AGAINST_STORED_ROWS]
)
def test_a_bad_value_refuses_the_file_naming_file_row_column_value(units, tmp_path, row, change, column, rule):
    _check_refused(units, tmp_path, row, change, column, rule)


def _check_refused(units, tmp_path, row, change, column, rule) -> None:
    rows = prem_rows()
    rows[row].update(change)
    message = _refused(units, write_prems(tmp_path / "prem_responses.csv", rows))
    assert "prem_responses.csv" in message
    assert f"row {row + 2}" in message and f"column '{column}'" in message and rule in message
    if column != "response_id":
        assert repr(next(iter(change.values()))) in message


def test_a_response_that_contradicts_its_stored_rows_is_refused(units, tmp_path):
    import_files([write_prems(tmp_path / "prem_responses.csv")], units)
    before = _stored(units)
    extra = prem_rows()[0] | {"item": "nurse_time", "answer": "2", "hospital": "H02"}
    message = _refused(units, write_prems(tmp_path / "prem_responses_more.csv", [extra]))
    assert "column 'hospital'" in message and "differs from its stored rows (H01)" in message
    pd.testing.assert_frame_equal(_stored(units), before)


def test_the_rows_of_one_response_must_agree_across_chunks(units, tmp_path):
    rows = prem_rows()
    rows[4]["visit_date"] = "2024-01-12"  # R0001's last row (file row 6): the second chunk of four rows
    before = row_counts(units)
    with pytest.raises(ImportRefused) as info:
        import_files([write_prems(tmp_path / "prem_responses.csv", rows)], units, chunk_rows=4)
    assert row_counts(units) == before
    message = str(info.value)
    assert "row 6 column 'visit_date': value '2024-01-12': differs from another row of this response" in message
    assert "differs between rows of one response" not in message  # no chunk saw the contradiction itself


# --- random damage (bounded), as tests/test_import_fuzz.py does for the registry tables --------------------


@pytest.fixture(scope="module")
def fuzz_db(tmp_path_factory, _sqlite_schema):
    """A registry with units and no PREM rows (the database every example starts from), the good file, a folder."""
    folder = tmp_path_factory.mktemp("prem_fuzz")
    files = write_small_registry(folder / "files")
    shutil.copyfile(_sqlite_schema, folder / "fuzz.db")  # the migrated empty schema, not the migrations run again
    engine = get_engine(f"sqlite:///{folder / 'fuzz.db'}")
    upgrade_schema(engine)
    import_files(files[:1], engine)
    good = write_prems(folder / "prem_responses.csv")
    yield engine, good, folder
    engine.dispose()


_examples = itertools.count()


@contextlib.contextmanager
def _fresh_copy(engine, folder: Path) -> Iterator[Engine]:
    """A copy of `engine`'s database for one example: an example that was accepted must not change what the next
    one (or Hypothesis's replay of a failing one) starts from, or a failure is not reproducible."""
    path = folder / f"example-{next(_examples)}.db"
    with (
        contextlib.closing(sqlite3.connect(engine.url.database)) as source,
        contextlib.closing(sqlite3.connect(path)) as copy,
    ):
        source.backup(copy)
    example = get_engine(f"sqlite:///{path}")
    try:
        yield example
    finally:
        example.dispose()
        path.unlink(missing_ok=True)


def _header_as_read(name: str) -> str:
    """A column name as a person reads it, the rule the import documents: case, spaces and punctuation around and
    between the words do not matter ("Response ID", "@response_id" and "response_id" name one column)."""
    return re.sub(r"[^0-9a-z]+", "_", name.strip().lstrip("\ufeff").lower()).strip("_")


def _rows_as_read(path: Path) -> set[tuple[str, str]]:
    """The (response, item) pairs a person reads in a (damaged) PREM file."""
    with path.open(newline="", encoding="utf-8", errors="replace") as fh:
        reader = csv.reader(fh)
        # blank lines before the header are not the header (the import skips them too)
        header = [_header_as_read(name) for name in next((r for r in reader if any(f.strip() for f in r)), [])]
        rows = [dict(zip(header, row, strict=False)) for row in reader]
    return {(r.get("response_id", "").strip(), r.get("item", "").strip()) for r in rows}


def _try_import(engine, path: Path) -> None:
    before, stored = row_counts(engine), _stored(engine)
    try:
        report = import_files([path], engine, force=True)
    except ImportRefused as exc:
        assert row_counts(engine) == before
        pd.testing.assert_frame_equal(_stored(engine), stored)
        assert exc.report.problems and all(p.rule and p.file for p in exc.report.problems)
        return
    # accepted: every stored row is one the file holds (a file may be cut short or gain a row, never half-written)
    given_rows = _rows_as_read(path)
    assert report.ok
    written = _stored(engine)
    assert len(written) >= len(stored)
    changed = written.merge(stored, how="left", indicator=True)
    for _, r in changed[changed["_merge"] == "left_only"].iterrows():
        assert (r["response_id"], r["item"]) in given_rows


mutation = st.one_of(
    st.tuples(st.just("truncate"), st.floats(0, 1), st.binary(max_size=0)),
    st.tuples(st.just("insert"), st.floats(0, 1), st.binary(min_size=1, max_size=40)),
    st.tuples(st.just("overwrite"), st.floats(0, 1), st.binary(min_size=1, max_size=40)),
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(mutations=st.lists(mutation, min_size=1, max_size=3))
@example(mutations=[("insert", 0.0, b"@")])  # "@response_id": the column a person reads as response_id (CI, once)
def test_mutated_prem_file_never_crashes_and_never_half_writes(fuzz_db, mutations):
    engine, good, folder = fuzz_db
    data = good.read_bytes()
    for kind, where, extra in mutations:
        at = int(where * len(data))
        skip = len(extra) if kind == "overwrite" else 0
        data = data[:at] if kind == "truncate" else data[:at] + extra + data[at + skip :]
    path = folder / "prem_responses_fuzz.csv"
    path.write_bytes(data)
    with _fresh_copy(engine, folder) as example:
        _try_import(example, path)


cell_text = st.one_of(
    st.sampled_from(["=1+1", "+SUM(A1)", "@cmd", "-2+3"]),
    st.text(max_size=30),
    st.sampled_from(["0", "4", "10", "11", "-1", "3.0", "nan", "inf", "75+", "poor", "prem_outpatient", "ORT"]),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(column=st.sampled_from(PREM_COLUMNS), row=st.integers(0, 33), text=cell_text)
def test_any_cell_is_refused_or_stored_as_given(fuzz_db, column, row, text):
    engine, _good, folder = fuzz_db
    rows = prem_rows()
    rows[row][column] = text
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=PREM_COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
    path = folder / "prem_responses_cell.csv"
    path.write_text(buffer.getvalue(), encoding="utf-8")
    with _fresh_copy(engine, folder) as example:
        _try_import(example, path)
