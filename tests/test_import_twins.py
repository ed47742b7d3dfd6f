"""Care cycle and PREM response ids that read as one id and are two keys: c0000001 beside C0000001, 007 beside 7.

A reader (and Excel's lookups) takes upper and lower case for the same letter, and Excel opens a CSV showing 007
as 7; the database holds two care cycles, and the outcomes, PROMs and costs of the one the sender meant go to
either; a response's answers are split between two responses. Before, such an id was stored as a second care
cycle or response without a word. Now it is refused naming the row,
the column, the value and the other spelling, whether that one is stored, in an earlier row or in an earlier file
of the batch, and nothing is written (vbhc.ingest.validate.BatchState.cycle_twins, Spellings).
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from tests.db_snapshot import snapshot
from tests.prem_files import PREM_COLUMNS, prem_rows
from tests.registry_files import CYCLE_COLUMNS, cycles, write_csv, write_units
from vbhc.ingest import ImportRefused, import_files, shown_value
from vbhc.ingest.validate import is_bsn
from vbhc.store import get_engine, upgrade_schema

WHERE = ("stored", "earlier row", "earlier file")


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    """A registry with the small registry's units: each example imports into a copy of it."""
    folder = tmp_path_factory.mktemp("twins")
    engine = get_engine(f"sqlite:///{folder / 'template.db'}")
    upgrade_schema(engine)
    import_files([write_units(folder / "units.csv")], engine)
    engine.dispose()
    get_engine.cache_clear()
    return folder / "template.db"


def _rows(*ids: str) -> list[dict[str, str]]:
    """One valid care cycle per id (the small registry's first, under each id and a patient of its own)."""
    template = cycles()[0]
    return [{**template, "cycle_id": cycle_id, "patient_id": f"P{n:04d}y"} for n, cycle_id in enumerate(ids)]


def _responses(*ids: str) -> list[dict[str, str]]:
    """One valid PREM response of two rows per id (the small file's outpatient response R0007)."""
    template = [row for row in prem_rows() if row["response_id"] == "R0007"]
    return [{**row, "response_id": response_id} for response_id in ids for row in template]


#: table -> (its id column, rows for ids, its columns, rows per id)
TABLES = {
    "care_cycles": ("cycle_id", _rows, CYCLE_COLUMNS, 1),
    "prem_responses": ("response_id", _responses, PREM_COLUMNS, 2),
}


@st.composite
def twins(draw) -> tuple[str, str]:
    """An id and another spelling a reader takes for it: some letters' case changed, or leading zeros added to
    an id of digits only."""
    if draw(st.booleans()):
        number = draw(st.integers(0, 10**9))
        return str(number), "0" * draw(st.integers(1, 3)) + str(number)
    letters = draw(st.text("ABCDFGHKLMNPRSTXYZ", min_size=1, max_size=3))
    digits = draw(st.text("0123456789", min_size=1, max_size=7))
    original = draw(st.permutations(list(letters + digits)).map("".join))
    flips = draw(st.lists(st.booleans(), min_size=len(original), max_size=len(original)))
    twin = "".join(c.lower() if flip else c for c, flip in zip(original, flips, strict=True))
    if twin == original:
        twin = twin.replace(letters[0], letters[0].lower(), 1)
    return original, twin


@settings(max_examples=24, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pair=twins(), where=st.sampled_from(WHERE), table=st.sampled_from(sorted(TABLES)))
def test_an_id_that_reads_as_another_is_refused_naming_it(template, tmp_path_factory, pair, where, table):
    original, twin = pair
    # nine digits passing the 11-test (000328698 beside 328698) are refused as a citizen service number as well,
    # a second problem on the same rows (tests/test_import_trust.py); this property is about the twin alone
    assume(not is_bsn(pd.Series([original, twin])).any())
    column, rows_of, columns, per_id = TABLES[table]
    folder = tmp_path_factory.mktemp("twin")
    shutil.copyfile(template, folder / "vbhc.db")
    engine = get_engine(f"sqlite:///{folder / 'vbhc.db'}")
    try:
        if where == "stored":
            import_files([write_csv(folder / f"{table}_first.csv", rows_of(original), columns)], engine)
            paths, first = [write_csv(folder / f"{table}.csv", rows_of("Z1", twin), columns)], 2 + per_id
        elif where == "earlier row":
            paths, first = [write_csv(folder / f"{table}.csv", rows_of(original, "Z1", twin), columns)], 2 + 2 * per_id
        else:
            paths = [
                write_csv(folder / f"{table}_a.csv", rows_of(original), columns),
                write_csv(folder / f"{table}_b.csv", rows_of(twin), columns),
            ]
            first = 2
        before = snapshot(engine, skip=("audit_events",))
        with pytest.raises(ImportRefused) as refused:
            import_files(paths, engine)
        assert snapshot(engine, skip=("audit_events",)) == before
        problems = refused.value.report.problems
        shown = shown_value(column, twin)
        expected = [(paths[-1].name, first + n, column, shown) for n in range(per_id)]
        assert [(p.file, p.row, p.column, p.value) for p in problems] == expected
        what = column.removesuffix("_id")
        case = twin.casefold() == original.casefold()
        for problem in problems:
            rule = problem.rule
            assert rule.code == (f"validate.{what}_case" if case else f"validate.{what}_zeros")
            for lang in ("en", "nl"):
                # "write it as C0000001, or ..." / "schrijf het als ...": an id that looks like a BSN stays hidden
                assert f"{shown_value(column, original)}," in rule.in_language(lang)
            assert rule.in_language("nl") != rule.in_language("en")
    finally:
        engine.dispose()
        get_engine.cache_clear()


def test_the_same_cycle_sent_again_and_ids_that_differ_otherwise_are_no_twins(template, tmp_path):
    """What stays accepted: a stored cycle sent again (an update), and ids a reader tells apart (C0000001 and
    C00000010, 70 and 7, C007 and C7: only an id of digits only loses its zeros in Excel)."""
    shutil.copyfile(template, tmp_path / "vbhc.db")
    engine = get_engine(f"sqlite:///{tmp_path / 'vbhc.db'}")
    try:
        ids = ["C0000001", "C00000010", "7", "70", "C007", "C7", "0"]
        import_files([write_csv(tmp_path / "care_cycles.csv", _rows(*ids), CYCLE_COLUMNS)], engine)
        import_files([write_csv(tmp_path / "care_cycles_again.csv", _rows(*ids), CYCLE_COLUMNS)], engine)
        stored = {r["cycle_id"] for r in snapshot(engine)["care_cycles"]}
        assert stored == set(ids)
    finally:
        engine.dispose()
        get_engine.cache_clear()


def _patients(*patient_ids: str) -> list[dict[str, str]]:
    """One valid care cycle per patient id, each cycle an id of its own."""
    template = cycles()[0]
    return [{**template, "cycle_id": f"Q{n:04d}", "patient_id": p} for n, p in enumerate(patient_ids)]


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pair=twins(), where=st.sampled_from(WHERE))
def test_a_patient_id_that_reads_as_another_is_refused_without_showing_either(template, tmp_path_factory, pair, where):
    """P0001x beside p0001X, 0042 beside 42: one patient to a reader and to Excel's lookups, two patients to the
    database (a second care cycle counted as another patient's first). Refused naming row and column and, where
    the other spelling is in the same file, its row; neither id is shown, in either language."""
    original, twin = pair
    assume(not is_bsn(pd.Series([original, twin])).any())
    folder = tmp_path_factory.mktemp("patient")
    shutil.copyfile(template, folder / "vbhc.db")
    engine = get_engine(f"sqlite:///{folder / 'vbhc.db'}")
    try:
        if where == "stored":
            import_files([write_csv(folder / "care_cycles_first.csv", _patients(original), CYCLE_COLUMNS)], engine)
            rows = _patients("Z1", twin)
            rows[1]["cycle_id"] = "Q9999"
            paths, row, other = [write_csv(folder / "care_cycles.csv", rows, CYCLE_COLUMNS)], 3, None
        elif where == "earlier row":
            paths = [write_csv(folder / "care_cycles.csv", _patients(original, "Z1", twin), CYCLE_COLUMNS)]
            row, other = 4, 2
        else:
            rows = _patients(twin)
            rows[0]["cycle_id"] = "Q9999"
            paths = [
                write_csv(folder / "care_cycles_a.csv", _patients(original), CYCLE_COLUMNS),
                write_csv(folder / "care_cycles_b.csv", rows, CYCLE_COLUMNS),
            ]
            row, other = 2, None
        before = snapshot(engine, skip=("audit_events",))
        with pytest.raises(ImportRefused) as refused:
            import_files(paths, engine)
        assert snapshot(engine, skip=("audit_events",)) == before
        problems = refused.value.report.problems
        assert [(p.file, p.row, p.column, p.value) for p in problems] == [
            (paths[-1].name, row, "patient_id", shown_value("patient_id", twin))
        ]
        how = "case" if twin.casefold() == original.casefold() else "zeros"
        assert problems[0].rule.code == f"validate.patient_{how}" + ("_row" if other else "")
        for lang in ("en", "nl"):
            text = problems[0].rule.in_language(lang)
            assert (f" {other} " in text) if other else re.search(r"\b(row|rij)\b", text) is None
            assert original not in text.split() and twin not in text.split(), text
        assert problems[0].rule.in_language("nl") != problems[0].rule.in_language("en")
    finally:
        engine.dispose()
        get_engine.cache_clear()


def test_one_patients_care_cycles_and_patient_ids_that_differ_otherwise_are_no_twins(template, tmp_path):
    """What stays accepted: a patient with several care cycles (in one file, and again later), and patient ids a
    reader tells apart (P1 and P10, 70 and 7, P007 and P7)."""
    shutil.copyfile(template, tmp_path / "vbhc.db")
    engine = get_engine(f"sqlite:///{tmp_path / 'vbhc.db'}")
    try:
        ids = ["P1", "P1", "P10", "7", "70", "P007", "P7", "0"]
        import_files([write_csv(tmp_path / "care_cycles.csv", _patients(*ids), CYCLE_COLUMNS)], engine)
        again = _patients("P1", "70")
        for n, row in enumerate(again):
            row["cycle_id"] = f"R{n}"
        import_files([write_csv(tmp_path / "care_cycles_again.csv", again, CYCLE_COLUMNS)], engine)
        stored = [r["patient_id"] for r in snapshot(engine)["care_cycles"]]
        assert sorted(stored) == sorted([*ids, "P1", "70"])
    finally:
        engine.dispose()
        get_engine.cache_clear()
