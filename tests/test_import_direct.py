"""The direct path (a first import of a table writes its rows straight into the table, vbhc.ingest.run; on SQLite
and on PostgreSQL, there by COPY inside a savepoint) against the staged path: the same stored rows, ids, batch rows,
counts and audit details, the same problems for a refused file, and a refusal changes no row, also when the direct
path had already written chunks of it."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from tests import registry_source
from tests.db_snapshot import snapshot
from vbhc import models
from vbhc.demo import generate_demo
from vbhc.ingest import ImportRefused, import_files
from vbhc.ingest import run as ingest_run
from vbhc.ingest import stage as staging
from vbhc.store import get_engine, upgrade_schema

#: The demo's registry files in import order (PREMs have their own, staged, path).
FILES = ("units.xlsx", "care_cycles.csv", "clinical_outcomes.csv", "prom_responses.csv", "costs.csv")
#: Small chunks, so that a file spans many and a refusal can come after chunks were written.
CHUNK = 97


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    """A small demo registry; some PROM questionnaires without a completion date (stored as NULL on both paths)."""
    folder = tmp_path_factory.mktemp("demo")
    generate_demo(folder, cycles=40, seed=7)
    proms = folder / "prom_responses.csv"
    lines = proms.read_text(encoding="utf-8").splitlines()
    undated = {tuple(lines[i].split(",")[:3]) for i in range(5, len(lines), 37)}
    for i in range(1, len(lines)):
        if tuple(lines[i].split(",")[:3]) in undated:  # every row of the questionnaire: it has one date
            lines[i] = lines[i].rsplit(",", 1)[0] + ","
    proms.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


@pytest.fixture
def engines(tmp_path, _sqlite_schema) -> Iterator[tuple[Engine, Engine]]:
    """Two empty SQLite registries: one for the direct path, one for the staged path. Each a copy of the worker's
    migrated empty schema (tests/conftest.py `_sqlite_schema`): running every migration for both databases of
    each of ~30 tests was a tenth of this module's CPU."""
    pair = []
    for name in ("direct", "staged"):
        shutil.copyfile(_sqlite_schema, tmp_path / f"{name}.db")
        engine = get_engine(f"sqlite:///{tmp_path / name}.db")
        upgrade_schema(engine)  # at the newest revision already: recognised without Alembic
        pair.append(engine)
    yield pair[0], pair[1]
    for engine in pair:
        engine.dispose()
    get_engine.cache_clear()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine_pair(request, tmp_path) -> Iterator[tuple[Engine, Engine]]:
    """Two empty registries of one kind, SQLite or PostgreSQL: one for the direct path, one for the staged path."""
    if request.param == "sqlite":
        yield request.getfixturevalue("engines")
        return
    from tests.conftest import _postgres_engine

    server, schema = request.getfixturevalue("postgres_server"), request.getfixturevalue("_postgres_schema")
    gens = [_postgres_engine(server, template=schema) for _ in range(2)]
    pair = [next(gen) for gen in gens]
    try:
        yield pair[0], pair[1]
    finally:
        for gen in gens:
            next(gen, None)


def _staged_sources(call: Callable[[], registry_source.Source]) -> registry_source.Source:
    """`call()` with the direct path and PROM packing switched off (as `_staged`), outside a test."""
    with pytest.MonkeyPatch.context() as m:
        m.setattr(ingest_run, "DIRECT_TABLES", frozenset())
        m.setattr(ingest_run, "PACKED_TABLES", frozenset())
        return call()


@pytest.fixture(scope="module")
def sqlite_bases(demo, _sqlite_schema, tmp_path_factory) -> tuple[registry_source.Source, registry_source.Source]:
    """The units and care cycles of `demo` imported once into two SQLite registries: through the direct path and
    through the staged path, the databases every SQLite `based_pair` is a copy of.

    Why: ~40 tests start from them and check only what a later file does; importing them into both databases of
    every test was a sixth of this module's CPU. A copy holds the same rows, ids, import batches and audit events
    (test_the_direct_path_stores_exactly_what_the_staged_path_stores imports them itself)."""
    base = [demo / n for n in FILES[:2]]
    direct = registry_source.sqlite_imported(_sqlite_schema, tmp_path_factory.mktemp("direct_base"), base)
    staged = _staged_sources(
        lambda: registry_source.sqlite_imported(_sqlite_schema, tmp_path_factory.mktemp("staged_base"), base)
    )
    return direct, staged


@pytest.fixture(scope="module")
def postgres_bases(demo, postgres_server, _postgres_schema) -> Iterator[tuple[registry_source.Source, ...]]:
    """As sqlite_bases, on the suite's PostgreSQL server (the templates of every PostgreSQL `based_pair`)."""
    base = [demo / n for n in FILES[:2]]
    with (
        registry_source.postgres_imported(postgres_server, _postgres_schema, base) as direct,
        registry_source.postgres_database(postgres_server, _postgres_schema) as empty,
    ):
        staged = _staged_sources(lambda: registry_source.imported(empty, base))
        yield direct, staged


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def based_pair(request, tmp_path) -> Iterator[tuple[Engine, Engine]]:
    """Two registries of one kind (SQLite or PostgreSQL) holding the demo's units and care cycles: the first
    imported through the direct path, the second through the staged path; copies of the module's `*_bases`."""
    if request.param == "sqlite":
        sources = request.getfixturevalue("sqlite_bases")
        pair = [
            registry_source.sqlite_copy(s, tmp_path / f"{n}.db")
            for s, n in zip(sources, ("direct", "staged"), strict=True)
        ]
        try:
            yield pair[0], pair[1]
        finally:
            for engine in pair:
                engine.dispose()
            get_engine.cache_clear()
        return
    server, sources = request.getfixturevalue("postgres_server"), request.getfixturevalue("postgres_bases")
    with (
        registry_source.postgres_copy(server, sources[0]) as direct,
        registry_source.postgres_copy(server, sources[1]) as staged,
    ):
        yield direct, staged


@pytest.fixture
def direct_writes(monkeypatch) -> list[str]:
    """The tables insert_directly wrote a chunk of (once per chunk)."""
    seen: list[str] = []
    real = staging.insert_directly

    def spy(conn, spec, frame, batch_id):
        seen.append(spec.name)
        return real(conn, spec, frame, batch_id)

    monkeypatch.setattr(staging, "insert_directly", spy)
    return seen


def _staged(monkeypatch, call):
    """`call()` with every file through the staging table (the direct path and PROM packing in memory switched
    off: PROM item rows are staged and packed into questionnaires in SQL)."""
    with monkeypatch.context() as m:
        m.setattr(ingest_run, "DIRECT_TABLES", frozenset())
        m.setattr(ingest_run, "PACKED_TABLES", frozenset())
        return call()


def _stored(engine: Engine) -> dict:
    """Every stored row (ids and batch ids included); batch rows without their time, audit events as
    (action, detail) without the batch's seconds."""
    out = snapshot(engine, skip=("audit_events",))
    for row in out["import_batches"]:
        row.pop("imported_at")
    with engine.connect() as conn:
        events = conn.execute(select(models.AuditEvent.action, models.AuditEvent.detail)).all()
    out["audit"] = [(action, json.loads(detail) if detail else None) for action, detail in events]
    return out


def _counts(report) -> list[tuple]:
    return [(s.file, s.table, s.rows_read, s.rows_inserted, s.rows_updated, s.rows_unchanged) for s in report.sources]


def _refused(files, engine) -> list[tuple]:
    with pytest.raises(ImportRefused) as info:
        import_files(files, engine, chunk_rows=CHUNK)
    report = info.value.report
    return [(p.file, p.row, p.column, p.value, p.rule) for p in report.problems] + [report.problem_count]


def test_the_direct_path_stores_exactly_what_the_staged_path_stores(demo, engine_pair, direct_writes, monkeypatch):
    direct, staged = engine_pair
    files = [demo / n for n in FILES]
    ours = import_files(files, direct, chunk_rows=CHUNK)
    # PROM item rows are always staged: packed into questionnaires from the staging table
    assert sorted(set(direct_writes)) == ["care_cycles", "clinical_outcomes", "costs"]
    assert direct_writes.count("costs") > 2  # many chunks
    direct_writes.clear()
    theirs = _staged(monkeypatch, lambda: import_files(files, staged, chunk_rows=CHUNK))
    assert not direct_writes
    assert _counts(ours) == _counts(theirs)
    assert all(s.rows_inserted == s.rows_read > 0 for s in ours.sources[1:])
    stored = _stored(direct)
    assert stored == _stored(staged)
    assert sum(r["completed_date"] is None for r in stored["prom_responses"]) > 10


def test_a_chunk_read_in_many_arrow_blocks_stores_what_one_block_stores(demo, engines, monkeypatch):
    """A large file's chunk spans several of Arrow's read blocks (16 MB each: the 1,000,000-cycle demo's files),
    so every column the validators see is a chunked Arrow array: the import once failed on it (AttributeError in
    the decimal-mark check) where files of up to 16 MB passed. Tiny blocks make every chunk span many."""
    from vbhc.ingest import read as reader

    many, one = engines
    files = [demo / n for n in FILES]
    with monkeypatch.context() as m:
        m.setattr(reader, "_ARROW_BLOCK_BYTES", 512)  # a few rows per block, ~20 blocks per chunk
        ours = import_files(files, many, chunk_rows=CHUNK * 20)
    theirs = import_files(files, one, chunk_rows=CHUNK * 20)
    assert _counts(ours) == _counts(theirs)
    assert all(s.rows_inserted == s.rows_read > 0 for s in ours.sources[1:])
    assert _stored(many) == _stored(one)


def test_a_second_import_into_a_filled_table_upserts(demo, engine_pair, direct_writes, tmp_path):
    direct, _ = engine_pair
    files = [demo / n for n in FILES]
    import_files(files, direct, chunk_rows=CHUNK)
    before = {(r["cycle_id"], r["instrument"], r["timepoint"], r["item"]): r for r in _stored(direct)["prom_responses"]}
    lines = (demo / "prom_responses.csv").read_text(encoding="utf-8").splitlines()
    cells = lines[3].split(",")
    cells[4] = "1" if cells[4] != "1" else "2"  # an EQ-5D-5L item: 1 to 5
    lines[3] = ",".join(cells)
    changed = tmp_path / "prom_responses.csv"
    changed.write_text("\n".join(lines) + "\n", encoding="utf-8")
    direct_writes.clear()
    report = import_files([changed], direct, chunk_rows=CHUNK)
    assert not direct_writes  # the table holds rows: staged and upserted
    [s] = report.sources
    assert (s.rows_inserted, s.rows_updated, s.rows_unchanged) == (0, 1, len(lines) - 2)
    after = _stored(direct)["prom_responses"]
    assert len(after) == len(before)
    key = tuple(cells[:4])
    row = next(r for r in after if (r["cycle_id"], r["instrument"], r["timepoint"], r["item"]) == key)
    assert row["value"] == float(cells[4]) != before[key]["value"]


def _bad_value(lines: list[str]) -> None:
    cells = lines[-40].split(",")
    cells[4] = "lots"
    lines[-40] = ",".join(cells)


def _late_duplicate(lines: list[str]) -> None:
    lines.append(lines[-300])  # a key given again several chunks later


def _early_duplicate(lines: list[str]) -> None:
    lines.insert(3, lines[2])  # in the first chunk


def _duplicate_and_bad_value(lines: list[str]) -> None:
    _bad_value(lines)
    _late_duplicate(lines)


@pytest.mark.parametrize("mutate", [_bad_value, _late_duplicate, _early_duplicate, _duplicate_and_bad_value])
def test_a_refused_first_import_changes_no_row_and_says_what_the_staged_path_says(
    demo, based_pair, direct_writes, monkeypatch, tmp_path, mutate
):
    direct, staged = based_pair
    before = _stored(direct)
    folder = tmp_path / "batch"
    folder.mkdir()
    shutil.copy(demo / "clinical_outcomes.csv", folder)
    lines = (demo / "prom_responses.csv").read_text(encoding="utf-8").splitlines()
    mutate(lines)
    (folder / "prom_responses.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    batch = [folder / "clinical_outcomes.csv", folder / "prom_responses.csv"]
    direct_writes.clear()
    ours = _refused(batch, direct)
    assert direct_writes.count("clinical_outcomes") > 0  # chunks were written before the refusal
    theirs = _staged(monkeypatch, lambda: _refused(batch, staged))
    assert ours == theirs
    after = _stored(direct)
    assert after.pop("audit")[-1][0] == "import_refused"
    before.pop("audit")
    assert after == before


def _listed_apart(lines: list[str]) -> None:
    """The first questionnaire's last item row moved to the file's end: the questionnaire is listed apart."""
    key = lines[1].split(",")[:3]
    last = max(i for i in range(1, len(lines)) if lines[i].split(",")[:3] == key)
    lines.append(lines.pop(last))


def _two_dates_over_a_border(lines: list[str]) -> None:
    """A dated questionnaire that runs over a chunk's end gives a day later in the next chunk."""
    import datetime as dt

    border = next(
        b
        for b in range(CHUNK, len(lines) - 1, CHUNK)
        if lines[b].split(",")[:3] == lines[b + 1].split(",")[:3] and lines[b + 1].split(",")[5]
    )
    cells = lines[border + 1].split(",")
    cells[5] = (dt.date.fromisoformat(cells[5]) + dt.timedelta(days=1)).isoformat()
    lines[border + 1] = ",".join(cells)


@pytest.fixture
def upserts(monkeypatch) -> list[str]:
    """Each call of prom_store.upsert (the packed questionnaires' upsert), by the import's paths."""
    from vbhc.ingest import prom_store

    seen: list[str] = []
    real = prom_store.upsert

    def spy(*args, **options):
        seen.append("upsert")
        return real(*args, **options)

    monkeypatch.setattr(prom_store, "upsert", spy)
    return seen


@pytest.mark.parametrize("mutate", [None, _listed_apart, _two_dates_over_a_border])
def test_a_first_prom_import_writes_questionnaires_directly_as_the_staged_path_stores_them(
    demo, based_pair, monkeypatch, tmp_path, upserts, mutate
):
    """A first PROM import writes each packed questionnaire straight into prom_questionnaires (no upsert),
    a questionnaire over a chunk's end joined; one listed apart, or with two dates, is redone through the staged
    path: the same rows, ids, counts and problems as the staged path either way."""
    direct, staged = based_pair
    lines = (demo / "prom_responses.csv").read_text(encoding="utf-8").splitlines()
    if mutate is not None:
        mutate(lines)
    proms = tmp_path / "prom_responses.csv"
    proms.write_text("\n".join(lines) + "\n", encoding="utf-8")
    if mutate is _two_dates_over_a_border:
        ours = _refused([proms], direct)
        upserts.clear()
        assert ours == _staged(monkeypatch, lambda: _refused([proms], staged))
        assert len(ours) == 2 and "a questionnaire has one completed date" in ours[0][-1]
        return
    ours = import_files([proms], direct, chunk_rows=CHUNK)
    assert upserts == ([] if mutate is None else ["upsert"])  # listed apart: the staged path's upsert
    upserts.clear()
    theirs = _staged(monkeypatch, lambda: import_files([proms], staged, chunk_rows=CHUNK))
    assert upserts == ["upsert"]
    assert _counts(ours) == _counts(theirs)
    assert ours.sources[0].rows_inserted == len(lines) - 1
    stored, theirs_stored = _stored(direct), _stored(staged)
    if mutate is not None and direct.dialect.name == "postgresql":
        # PostgreSQL's sequences keep the values the direct write took before the savepoint's rollback: the same
        # rows in the same order, ids further on (a sequence has gaps anyway: an upsert takes one per row)
        stored, theirs_stored = _dense_ids(stored), _dense_ids(theirs_stored)
    assert stored == theirs_stored
    assert len(stored["prom_responses"]) == len(lines) - 1


def _dense_ids(stored: dict) -> dict:
    """The snapshot with each table's ids numbered 1, 2, ... in their order, batch ids following their batch."""
    out = {}
    batches = {r["id"]: n for n, r in enumerate(sorted(stored["import_batches"], key=lambda r: r["id"]), start=1)}
    for name, rows in stored.items():
        if not rows or not isinstance(rows[0], dict):
            out[name] = rows
            continue
        ids = {v: n for n, v in enumerate(sorted(r["id"] for r in rows if "id" in r), start=1)}
        out[name] = [
            r
            | ({"id": ids[r["id"]]} if "id" in r else {})
            | ({"batch_id": batches[r["batch_id"]]} if r.get("batch_id") is not None else {})
            for r in rows
        ]
    return out


def _duplicate_outcome(lines: list[str]) -> None:
    lines.append(lines[5])  # an outcome's key of the first chunk given again in the last: the unique key refuses it


def _unknown_cycle(lines: list[str]) -> None:
    cells = lines[-5].split(",")
    cells[0] = "nobody"  # validation names the row: nothing of the file is kept
    lines[-5] = ",".join(cells)


@pytest.mark.parametrize("mutate", [_duplicate_outcome, _unknown_cycle])
def test_a_refused_direct_write_is_taken_back_and_redone_through_staging(
    demo, based_pair, direct_writes, monkeypatch, tmp_path, mutate
):
    """A row the table's unique key refuses after chunks were written (PostgreSQL: a COPY in the worker thread,
    in a savepoint): the file's rows and batch row are taken back, the staged path names the rows as it would
    alone, and the stored rows, ids and batch rows are what they were."""
    direct, staged = based_pair
    before = _stored(direct)
    lines = (demo / "clinical_outcomes.csv").read_text(encoding="utf-8").splitlines()
    mutate(lines)
    outcomes = tmp_path / "clinical_outcomes.csv"
    outcomes.write_text("\n".join(lines) + "\n", encoding="utf-8")
    direct_writes.clear()
    ours = _refused([outcomes], direct)
    assert direct_writes.count("clinical_outcomes") >= 2  # a chunk was written before the refused one
    assert ours == _staged(monkeypatch, lambda: _refused([outcomes], staged))
    after = _stored(direct)
    assert after.pop("audit")[-1][0] == "import_refused"
    before.pop("audit")
    assert after == before
    # the batch's connection still writes: the next import stores the file as the staged path does
    lines = (demo / "clinical_outcomes.csv").read_text(encoding="utf-8").splitlines()
    good = import_files([demo / "clinical_outcomes.csv"], direct, chunk_rows=CHUNK)
    assert good.sources[0].rows_inserted == len(lines) - 1


def test_the_batch_connection_gets_its_foreign_key_check_back(demo, engines, monkeypatch, tmp_path):
    """SQLite's per-row foreign-key check is off during a batch (the batch checks set-based): on again after a
    commit, a refusal and a failure, so no other write through the pooled connection goes unchecked."""
    direct, _ = engines

    def checked() -> int:
        with direct.connect() as conn:
            return conn.exec_driver_sql("PRAGMA foreign_keys").scalar_one()

    import_files([demo / n for n in FILES[:2]], direct)
    assert checked() == 1
    bad = tmp_path / "clinical_outcomes.csv"
    bad.write_text("cycle_id,outcome,value\nnobody,x,1\n", encoding="utf-8")
    with pytest.raises(ImportRefused):
        import_files([bad], direct)
    assert checked() == 1

    def explode(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(staging, "insert_directly", explode)
    with pytest.raises(RuntimeError):
        import_files([demo / "clinical_outcomes.csv"], direct)
    assert checked() == 1


def test_the_batch_connection_writes_with_a_small_page_cache_and_gets_its_own_back(
    demo, engines, monkeypatch, tmp_path
):
    """SQLite: the import's connection writes with a 20 MB page cache (the 200 MB every connection has for the
    pages' reads, filled with the pages an import writes, took a 30-million-row PROM file's peak RSS past 1.5 GB);
    after a commit, a refusal and a failure the pooled connection has its 200 MB again."""
    direct, _ = engines
    during: list[int] = []
    real = staging.insert_directly

    def spy(conn, spec, frame, batch_id):
        during.append(conn.exec_driver_sql("PRAGMA cache_size").scalar_one())
        return real(conn, spec, frame, batch_id)

    def cache_size() -> int:
        with direct.connect() as conn:
            return conn.exec_driver_sql("PRAGMA cache_size").scalar_one()

    read_cache = cache_size()
    assert read_cache == -200_000
    monkeypatch.setattr(staging, "insert_directly", spy)
    import_files([demo / n for n in FILES[:2]], direct, chunk_rows=CHUNK)
    assert during and set(during) == {-20_000}
    assert cache_size() == read_cache
    bad = tmp_path / "clinical_outcomes.csv"
    bad.write_text("cycle_id,outcome,value\nnobody,x,1\n", encoding="utf-8")
    with pytest.raises(ImportRefused):
        import_files([bad], direct)
    assert cache_size() == read_cache

    def explode(conn, *args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(staging, "insert_directly", explode)
    with pytest.raises(RuntimeError):
        import_files([demo / "clinical_outcomes.csv"], direct)
    assert cache_size() == read_cache


def _questionnaire_rows(lines: list[str]) -> list[list[int]]:
    """The line numbers of each questionnaire's item rows, in the order of the file."""
    out: list[list[int]] = []
    for i in range(1, len(lines)):
        if out and lines[out[-1][-1]].split(",")[:3] == lines[i].split(",")[:3]:
            out[-1].append(i)
        else:
            out.append([i])
    return out


def _item_again_in_its_questionnaire(lines: list[str]) -> None:
    """A questionnaire's first item row given again right after its last one (in the same chunk)."""
    rows = _questionnaire_rows(lines)[3]
    lines.insert(rows[-1] + 1, lines[rows[0]])


def _item_again_over_a_border(lines: list[str]) -> None:
    """A questionnaire that runs over a chunk's end gives, after the end, an item it gave before it."""
    rows = next(r for r in _questionnaire_rows(lines) if r[0] <= CHUNK * 2 < r[-1])
    lines[rows[-1]] = lines[rows[0]]


def _item_again_listed_apart(lines: list[str]) -> None:
    """A questionnaire's item row given again at the file's end (the questionnaire listed apart)."""
    lines.append(lines[_questionnaire_rows(lines)[1][0]])


def _item_again_and_its_first_row_refused(lines: list[str]) -> None:
    """A duplicate item whose first row is refused for its value (not staged): both are named in one refusal."""
    rows = _questionnaire_rows(lines)[-4]
    cells = lines[rows[0]].split(",")
    lines.append(lines[rows[0]])
    cells[4] = "lots"
    lines[rows[0]] = ",".join(cells)


def _two_items_in_one_questionnaire_listed_apart(lines: list[str]) -> None:
    """A questionnaire listed apart whose pieces give different items (no duplicate: stored whole)."""
    rows = _questionnaire_rows(lines)[2]
    lines.append(lines.pop(rows[-1]))


@pytest.mark.parametrize(
    "mutate",
    [
        _item_again_in_its_questionnaire,
        _item_again_over_a_border,
        _item_again_listed_apart,
        _item_again_and_its_first_row_refused,
        _two_items_in_one_questionnaire_listed_apart,
    ],
)
@pytest.mark.parametrize("stored_before", [False, True], ids=["first import", "later import"])
def test_a_packed_prom_file_names_a_duplicate_item_as_the_staged_path_does(
    demo, based_pair, monkeypatch, tmp_path, mutate, stored_before
):
    """A PROM file alone of its table is packed in memory (vbhc.ingest.prom_store.Packer), which finds a duplicate
    item itself (in a chunk, over a chunk's end, in a questionnaire listed apart): the same problems, or the same
    stored rows, as the staged path, on a first import (written directly) and on a later one (upserted)."""
    direct, staged = based_pair
    lines = (demo / "prom_responses.csv").read_text(encoding="utf-8").splitlines()
    if stored_before:
        earlier = tmp_path / "earlier.csv"
        earlier.write_text("\n".join([lines[0], *lines[-3:]]) + "\n", encoding="utf-8")
        import_files([earlier], direct)
        _staged(monkeypatch, lambda: import_files([earlier], staged))
    mutate(lines)
    proms = tmp_path / "prom_responses.csv"
    proms.write_text("\n".join(lines) + "\n", encoding="utf-8")
    if mutate is _two_items_in_one_questionnaire_listed_apart:
        ours = import_files([proms], direct, chunk_rows=CHUNK)
        theirs = _staged(monkeypatch, lambda: import_files([proms], staged, chunk_rows=CHUNK))
        assert _counts(ours) == _counts(theirs)
        stored, theirs_stored = _stored(direct), _stored(staged)
        if direct.dialect.name == "postgresql" and not stored_before:
            stored, theirs_stored = _dense_ids(stored), _dense_ids(theirs_stored)  # as in the test above
        assert stored == theirs_stored
        return
    before = _stored(direct)
    ours = _refused([proms], direct)
    assert ours == _staged(monkeypatch, lambda: _refused([proms], staged))
    assert any(p[-1].code == "read.duplicate_key" for p in ours[:-1])
    after = _stored(direct)
    assert after.pop("audit")[-1][0] == "import_refused"
    before.pop("audit")
    assert after == before


def test_a_packed_prom_file_keeps_no_key_per_item_row(demo, engines, monkeypatch, tmp_path):
    """The packed path keeps nothing per item row for the whole file: RefusedKeys held a 64-bit hash of every
    valid row's key until the file's end (240 MB for the 30 million item rows of 1,000,000 care cycles, 2.4 GB at
    10,000,000); the packer finds a duplicate item per chunk and over its end instead."""
    engine, _ = engines
    import_files([demo / n for n in FILES[:2]], engine)
    kept: list[int] = []
    real = ingest_run.RefusedKeys._keep

    def spy(self, hashes, *args, **options):
        kept.append(len(hashes))
        return real(self, hashes, *args, **options)

    monkeypatch.setattr(ingest_run.RefusedKeys, "_keep", spy)
    lines = (demo / "prom_responses.csv").read_text(encoding="utf-8").splitlines()
    assert len(lines) > CHUNK * 10  # many chunks
    report = import_files([demo / "prom_responses.csv"], engine, chunk_rows=CHUNK)
    assert report.sources[0].rows_inserted == len(lines) - 1
    assert sum(kept) == 0  # no chunk's keys kept
    again = tmp_path / "prom_responses.csv"  # a later import (upserted): the same
    again.write_text("\n".join(lines[:1] + [lines[i] for i in range(1, len(lines), 2)]) + "\n", encoding="utf-8")
    report = import_files([again], engine, chunk_rows=CHUNK)
    assert report.sources[0].rows_read == len(lines) // 2
    assert sum(kept) == 0
