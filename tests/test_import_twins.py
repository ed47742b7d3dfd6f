"""Care cycle ids that read as one id and are two keys: c0000001 beside C0000001, 007 beside 7.

A reader (and Excel's lookups) takes upper and lower case for the same letter, and Excel opens a CSV showing 007
as 7; the database holds two care cycles, and the outcomes, PROMs and costs of the one the sender meant go to
either. Before, such a cycle was stored as a second care cycle without a word. Now it is refused naming the row,
the column, the value and the other spelling, whether that one is stored, in an earlier row or in an earlier file
of the batch, and nothing is written (vbhc.ingest.validate.BatchState.cycle_twins).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.db_snapshot import snapshot
from tests.registry_files import CYCLE_COLUMNS, cycles, write_csv, write_units
from vbhc.ingest import ImportRefused, import_files, shown_value
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
@given(pair=twins(), where=st.sampled_from(WHERE))
def test_a_cycle_id_that_reads_as_another_is_refused_naming_it(template, tmp_path_factory, pair, where):
    original, twin = pair
    folder = tmp_path_factory.mktemp("twin")
    shutil.copyfile(template, folder / "vbhc.db")
    engine = get_engine(f"sqlite:///{folder / 'vbhc.db'}")
    try:
        if where == "stored":
            import_files([write_csv(folder / "care_cycles_first.csv", _rows(original), CYCLE_COLUMNS)], engine)
            paths, row = [write_csv(folder / "care_cycles.csv", _rows("Z1", twin), CYCLE_COLUMNS)], 3
        elif where == "earlier row":
            paths, row = [write_csv(folder / "care_cycles.csv", _rows(original, "Z1", twin), CYCLE_COLUMNS)], 4
        else:
            paths = [
                write_csv(folder / "care_cycles_a.csv", _rows(original), CYCLE_COLUMNS),
                write_csv(folder / "care_cycles_b.csv", [_rows("Z1", "Z2", twin)[2]], CYCLE_COLUMNS),
            ]
            row = 2
        before = snapshot(engine, skip=("audit_events",))
        with pytest.raises(ImportRefused) as refused:
            import_files(paths, engine)
        assert snapshot(engine, skip=("audit_events",)) == before
        problems = refused.value.report.problems
        expected = (paths[-1].name, row, "cycle_id", shown_value("cycle_id", twin))
        assert [(p.file, p.row, p.column, p.value) for p in problems] == [expected]
        rule = problems[0].rule
        case = twin.casefold() == original.casefold()
        assert rule.code == ("validate.cycle_case" if case else "validate.cycle_zeros")
        for lang in ("en", "nl"):
            # "write it as C0000001, or ..." / "schrijf het als ...": an id that looks like a BSN stays hidden
            assert f"{shown_value('cycle_id', original)}," in rule.in_language(lang)
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
