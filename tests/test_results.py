"""vbhc.results: persisted indicator results equal freshly computed ones, an import invalidates them, two
processes share them, and a damaged or foreign file is never trusted."""

from __future__ import annotations

import csv
import datetime as dt
import gc
import json
import os
import re
import textwrap
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pandas.testing as pdt
import pytest
from sqlalchemy import Engine

from tests import registry_source
from tests.fresh_process import run_json
from tests.registry_copy import copy_results
from vbhc import indicators, results
from vbhc.catalog import default_catalog
from vbhc.indicators import (
    casemix_explanation,
    compute_indicators,
    cusum_vlad,
    indicator_over_time,
    load_condition_data,
    restrict,
)
from vbhc.ingest import import_files
from vbhc.meeting import as_of_period, default_meeting_date, result_as_of
from vbhc.results import ResultStore, ViewKey
from vbhc.store import get_engine

CONDITION = "hip_osteoarthritis"


#: compute_counts with nothing computed (every kind the store counts)
NOTHING_COMPUTED = dict.fromkeys(results.compute_counts, 0)


@pytest.fixture(scope="module")
def demo_files(tmp_path_factory) -> list[Path]:
    """A small demo registry (every condition); each test imports it into its own database."""
    from vbhc.demo import generate_demo

    return generate_demo(tmp_path_factory.mktemp("results_demo") / "files", cycles=900).files


@pytest.fixture(scope="module")
def two_condition_files(tmp_path_factory) -> list[Path]:
    """A small demo registry of two conditions (a PROM condition and colorectal cancer): the server's warm-up
    prepares every condition's views of every year, and what it does per condition two show as well as seven (the
    seven took two minutes of a CI worker)."""
    from vbhc.catalog import default_catalog
    from vbhc.demo import generate_demo

    catalog = default_catalog()
    two = replace(catalog, conditions={c: catalog.condition(c) for c in (CONDITION, "colorectal_cancer")})
    return generate_demo(tmp_path_factory.mktemp("results_two") / "files", cycles=900, catalog=two).files


def _hospital_view(engine: Engine) -> list[ViewKey]:
    return [ViewKey(CONDITION, "hospital")]


@pytest.fixture(scope="module")
def sqlite_source(demo_files, _sqlite_schema, tmp_path_factory) -> registry_source.Source:
    """The demo imported once into a SQLite registry of the current schema, with CONDITION's hospital view stored:
    what `registry` copies for every test (tests/registry_source.py says why)."""
    import shutil

    folder = tmp_path_factory.mktemp("results_source")
    shutil.copyfile(_sqlite_schema, folder / "vbhc.db")
    engine = get_engine(f"sqlite:///{folder / 'vbhc.db'}")
    return registry_source.build(engine, demo_files, folder / "results", _hospital_view)


@pytest.fixture(scope="module")
def postgres_source(
    demo_files, postgres_server, _postgres_schema, tmp_path_factory
) -> Iterator[registry_source.Source]:
    """As sqlite_source, on the suite's PostgreSQL server (the template of every test's copy)."""
    with registry_source.postgres_database(postgres_server, _postgres_schema) as engine:
        yield registry_source.build(engine, demo_files, tmp_path_factory.mktemp("results_source"), _hospital_view)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request) -> str:
    """The database a test's `registry` is on: SQLite and PostgreSQL, as the `engine` fixture's."""
    return request.param


#: run a test that uses `registry` on SQLite only (tests/backends.py says when)
sqlite_only = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


@pytest.fixture
def registry(backend: str, request, tmp_path, monkeypatch) -> Iterator[Engine]:
    """A registry (SQLite and PostgreSQL) with the demo imported, its results store in tmp_path and empty: this
    test's own copy of the module's imported registry (the same rows, import batches and dataset version)."""
    monkeypatch.setenv("VBHC_RESULTS_DIR", str(tmp_path / "results"))
    yield from registry_source.copy_for_test(request, backend, tmp_path)


@pytest.fixture
def hospital_view_stored(registry: Engine, backend: str, request) -> None:
    """CONDITION's whole-period hospital view already in `registry`'s store (as `vbhc import` leaves it), copied
    from the module's source, where it was computed once: for the tests that read that view before what they check
    (a damaged file, signals, charts, comparison groups) and check nothing of how it was computed and stored."""
    source = request.getfixturevalue(f"{backend}_source")
    store = ResultStore(registry)
    copy_results(source.store, store)
    assert store.has(ViewKey(CONDITION, "hospital"), store.version())


def _counts() -> dict[str, int]:
    return dict(results.compute_counts)


def _computed_since(before: dict[str, int]) -> dict[str, int]:
    return {k: results.compute_counts[k] - before[k] for k in before}


def _plain(diagnostics) -> str:
    """NaN == NaN here, unlike in ==; the time the fit took is not part of the result."""
    return json.dumps({**diagnostics.as_dict(), "fit_seconds": 0}, sort_keys=True, default=str)


def assert_results_equal(stored: indicators.IndicatorResult, fresh: indicators.IndicatorResult) -> None:
    """Every column of every table, the models and what pages derive from them."""
    pdt.assert_frame_equal(stored.table, fresh.table)
    pdt.assert_frame_equal(stored.cycle_values, fresh.cycle_values)
    for name in ("cycles", "scores", "cost", "cost_lines"):
        pdt.assert_frame_equal(getattr(stored.data, name), getattr(fresh.data, name))
    assert stored.data.as_of == fresh.data.as_of and stored.data.period == fresh.data.period
    assert stored.data.condition is fresh.data.condition  # the catalog's own object, not a pickled copy
    assert stored.models.keys() == fresh.models.keys() and stored.models
    for name, model in fresh.models.items():
        mine = stored.models[name]
        np.testing.assert_array_equal(mine.params, model.params)
        pdt.assert_series_equal(mine.expected, model.expected)
        pdt.assert_frame_equal(mine.coefficients, model.coefficients)
        assert _plain(mine.diagnostics) == _plain(model.diagnostics)
    binary = [i for i in fresh.models if fresh.data.condition.indicator(i).kind == "proportion"]
    unit = str(fresh.table["unit"].iloc[0])
    for indicator in binary[:2] + list(fresh.models)[-1:]:
        pdt.assert_frame_equal(
            indicator_over_time(stored, indicator, unit), indicator_over_time(fresh, indicator, unit)
        )
        pdt.assert_frame_equal(casemix_explanation(stored, indicator), casemix_explanation(fresh, indicator))
    pdt.assert_frame_equal(cusum_vlad(stored, binary[0]), cusum_vlad(fresh, binary[0]))


def test_a_stored_result_equals_a_freshly_computed_one(registry):
    store = ResultStore(registry)
    version = store.version()
    views = [ViewKey(CONDITION, "hospital"), ViewKey(CONDITION, "department"), ViewKey(CONDITION, "hospital", "2024")]
    computed, stored = results.precompute(registry, views)
    assert (computed, stored) == (3, 0)

    before = _counts()
    reader = ResultStore(registry)  # another process's view of the same folder: nothing in memory
    got = {key: reader.get(key, version) for key in views}
    assert _computed_since(before) == NOTHING_COMPUTED
    full = load_condition_data(CONDITION, engine=registry)
    assert_results_equal(got[views[0]], compute_indicators(full, "hospital"))
    assert_results_equal(got[views[1]], compute_indicators(full, "department"))
    assert_results_equal(got[views[2]], compute_indicators(restrict(full, "2024"), "hospital"))
    assert results.precompute(registry, views) == (0, 3)  # nothing computed twice


def _write_changed_outcomes(demo_files: list[Path], folder: Path) -> Path:
    """The demo's clinical outcomes with the first 60 yes/no values of the condition's outcomes flipped."""
    source = next(p for p in demo_files if p.name == "clinical_outcomes.csv")
    cycles = next(p for p in demo_files if p.name == "care_cycles.csv")
    with cycles.open(encoding="utf-8") as fh:
        mine = {row["cycle_id"] for row in csv.DictReader(fh) if row["condition"] == CONDITION}
    with source.open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    flipped = 0
    for row in rows:
        if row["cycle_id"] in mine and row["value"] in ("0", "1") and flipped < 60:
            row["value"] = "1" if row["value"] == "0" else "0"
            flipped += 1
    assert flipped == 60
    folder.mkdir()
    target = folder / "clinical_outcomes.csv"
    with target.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return target


def test_an_import_changes_the_version_and_old_results_are_not_served(registry, demo_files, tmp_path):
    store = ResultStore(registry)
    key = ViewKey(CONDITION, "hospital")
    old_version = store.version()
    old = store.result(key, old_version)
    assert store.has(key, old_version)

    import_files([_write_changed_outcomes(demo_files, tmp_path / "changed")], registry, imported_by="test")
    new_version = store.version()
    assert new_version != old_version
    assert store.get(key, new_version) is None  # the old files are for the old version only
    before = _counts()
    new = ResultStore(registry).result(key, new_version)
    assert _computed_since(before) == {**NOTHING_COMPUTED, "data": 1, "result": 1}
    fresh = compute_indicators(load_condition_data(CONDITION, engine=registry), "hospital")
    assert_results_equal(new, fresh)
    with pytest.raises(AssertionError):
        pdt.assert_frame_equal(new.table, old.table)

    results.precompute(registry, [key])  # after an import: the older version's folder is pruned
    assert store.versions() == [new_version]


@pytest.mark.usefixtures("hospital_view_stored")
def test_the_registry_tables_every_page_reads_are_stored_and_read_again_after_an_import(registry, demo_files, tmp_path):
    """The volumes per condition, a condition's units, the unit names and the data page's completeness
    (vbhc.results.REGISTRY_TABLES, every one of them): stored
    with the pages' other tables (vbhc import prepares them), read back by a second store (a restarted server)
    without asking the registry and equal to the registry's own answer; after an import (a hospital renamed)
    read from the registry again, with the new name."""
    import openpyxl

    from vbhc import registry as reg

    def fresh(name: str) -> pd.DataFrame:
        return results.REGISTRY_TABLES[name](registry, CONDITION if name in results.PER_CONDITION else "")

    def stored(version: str) -> dict[str, pd.DataFrame]:
        return {
            name: ResultStore(registry).registry_table(
                name, version, CONDITION if name in results.PER_CONDITION else ""
            )
            for name in results.REGISTRY_TABLES
        }

    version = ResultStore(registry).version()
    results.prepare_pages(registry, [ViewKey(CONDITION, "hospital")])
    before = _counts()
    for name, table in stored(version).items():
        pdt.assert_frame_equal(table, fresh(name))
    assert _computed_since(before) == NOTHING_COMPUTED

    units = next(p for p in demo_files if p.name == "units.xlsx")
    book = openpyxl.load_workbook(units)
    sheet = book.active
    assert sheet.cell(1, 3).value == "hospital_name"
    renamed = {row[0].value: "Renamed " + row[2].value for row in sheet.iter_rows(min_row=2) if row[0].value == "H01"}
    for row in sheet.iter_rows(min_row=2):
        if row[0].value in renamed:
            row[2].value = renamed[row[0].value]
    (tmp_path / "renamed").mkdir()
    book.save(tmp_path / "renamed" / "units.xlsx")
    import_files([tmp_path / "renamed" / "units.xlsx"], registry, imported_by="test")
    new_version = ResultStore(registry).version()
    assert new_version != version
    before = _counts()
    now = stored(new_version)
    assert _computed_since(before) == {**NOTHING_COMPUTED, "registry": len(results.REGISTRY_TABLES)}
    assert set(now["units"].loc[now["units"]["hospital"] == "H01", "hospital_name"]) == set(renamed.values())
    pdt.assert_frame_equal(now["units"], reg.units(engine=registry))
    before = _counts()
    stored(new_version)  # and kept for the next reader
    assert _computed_since(before) == NOTHING_COMPUTED


PROCESS = textwrap.dedent(
    """
    import hashlib, json
    from vbhc import indicators, results
    from ui import data
    result = data.result({condition!r}, "department", "")
    table = result.table.to_csv(index=False).encode()
    trend = indicators.indicator_over_time(result, next(iter(result.models)), str(result.table["unit"].iloc[0]))
    print(json.dumps({{
        "counts": results.compute_counts,
        "table": hashlib.sha256(table).hexdigest(),
        "trend": hashlib.sha256(trend.to_csv().encode()).hexdigest(),
        "rows": len(result.table),
    }}))
    """
)


def _server_process(url: str, store: Path) -> dict:
    """ui.data in a fresh process of its own (a server process started with nothing in memory): what PROCESS
    prints."""
    code = PROCESS.format(condition=CONDITION)
    return run_json(code, env={"VBHC_DATABASE_URL": url, "VBHC_RESULTS_DIR": str(store)}, timeout=600)


def test_two_server_processes_share_the_results(registry, tmp_path, monkeypatch):
    """ui.data in two separate processes: the first (a fresh process) computes and stores, the second (this test's
    process, which never opened this registry: nothing of it in memory) only reads.

    Why this process reads: a second fresh process paid ~3.3 s of CPU for its imports (pandas, streamlit, ui.data)
    before reading one file; what it proved, a file another process wrote read without computing, this process
    proves as well (the computing functions refused, the computed counts unchanged)."""
    import hashlib

    from ui import data

    url = registry.url.render_as_string(hide_password=False)
    first = _server_process(url, tmp_path / "results")
    assert first["counts"]["result"] == 1 and first["counts"]["data"] == 1

    def refuse(*args, **kwargs):
        raise AssertionError("computed in the reading process")

    for name in ("load_condition_data", "compute_indicators", "restrict"):
        monkeypatch.setattr(indicators, name, refuse)
    monkeypatch.setenv("VBHC_DATABASE_URL", url)
    monkeypatch.setenv("VBHC_RESULTS_DIR", str(tmp_path / "results"))
    get_engine.cache_clear()
    before = _counts()
    try:
        result = data.result(CONDITION, "department", "")
        trend = indicator_over_time(result, next(iter(result.models)), str(result.table["unit"].iloc[0]))
    finally:
        get_engine.cache_clear()
    assert _computed_since(before) == NOTHING_COMPUTED
    second = {
        "table": hashlib.sha256(result.table.to_csv(index=False).encode()).hexdigest(),
        "trend": hashlib.sha256(trend.to_csv().encode()).hexdigest(),
        "rows": len(result.table),
    }
    assert (second["table"], second["trend"], second["rows"]) == (first["table"], first["trend"], first["rows"])


def _stored_file(store: ResultStore, key: ViewKey, version: str) -> Path:
    path = store.folder / version / key.file_name()
    assert path.is_file()
    return path


@pytest.mark.usefixtures("hospital_view_stored")
@pytest.mark.parametrize("damage", ["truncated", "flipped", "empty", "other_key", "not_a_pickle"])
def test_a_damaged_file_is_ignored_and_computed_again(registry, damage):
    store = ResultStore(registry)
    version = store.version()
    key = ViewKey(CONDITION, "hospital")
    good = store.result(key, version)
    path = _stored_file(store, key, version)
    raw = path.read_bytes()
    if damage == "truncated":  # a writer that died half-way (without the temporary file and os.replace)
        path.write_bytes(raw[: len(raw) // 2])
    elif damage == "flipped":
        path.write_bytes(raw[:-100] + bytes([raw[-100] ^ 0xFF]) + raw[-99:])
    elif damage == "empty":
        path.write_bytes(b"")
    elif damage == "other_key":  # a file moved to another view's name
        other = ViewKey(CONDITION, "department")
        store.result(other, version)
        path.write_bytes(_stored_file(store, other, version).read_bytes())
    else:  # the right header and checksum around bytes that are no pickle
        import hashlib

        body = b"\x80\x05garbage"
        header = json.dumps({"key": key._plain(), "version": version}).encode()
        path.write_bytes(b"VBHCRES1" + len(header).to_bytes(4, "big") + header + hashlib.sha256(body).digest() + body)

    reader = ResultStore(registry)
    assert reader.get(key, version) is None
    before = _counts()
    again = reader.result(key, version)
    assert _computed_since(before)["result"] == 1
    pdt.assert_frame_equal(again.table, good.table)
    assert ResultStore(registry).get(key, version) is not None  # written again, whole


def test_files_are_only_read_from_a_folder_the_store_created(registry, tmp_path, monkeypatch):
    store = ResultStore(registry)
    version = store.version()
    key = ViewKey(CONDITION, "hospital")
    store.result(key, version)
    root = tmp_path / "results"
    assert (root / results.MARKER).is_file()
    assert all(oct(p.stat().st_mode & 0o777) == "0o700" for p in (root, store.folder, store.folder / version))

    os.chmod(store.folder / version, 0o777)  # someone else could have written a file here
    assert ResultStore(registry).get(key, version) is None
    os.chmod(store.folder / version, 0o700)
    assert ResultStore(registry).get(key, version) is not None

    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("not ours")
    monkeypatch.setenv("VBHC_RESULTS_DIR", str(foreign))
    elsewhere = ResultStore(registry)
    assert not elsewhere.enabled and elsewhere.get(key, version) is None
    before = _counts()
    elsewhere.result(key, version)  # still works: computed, not stored
    assert _computed_since(before)["result"] == 1 and sorted(p.name for p in foreign.iterdir()) == ["notes.txt"]

    monkeypatch.setenv("VBHC_RESULTS_DIR", "off")
    assert not ResultStore(registry).enabled


def test_the_store_is_beside_a_sqlite_database_and_per_database_on_postgres(monkeypatch, tmp_path):
    from vbhc.settings import results_dir

    monkeypatch.delenv("VBHC_RESULTS_DIR", raising=False)
    monkeypatch.setenv("VBHC_DATA_DIR", str(tmp_path))
    assert results_dir(f"sqlite:///{tmp_path / 'x' / 'vbhc.db'}") == tmp_path / "x" / "vbhc.db.results"
    assert results_dir("sqlite://") is None
    assert results_dir("postgresql+psycopg://u:secret@db.example/registry") == tmp_path / "results"
    from sqlalchemy import create_engine

    one = results.database_identity(create_engine("postgresql+psycopg://u:secret@db.example/registry"))
    other = results.database_identity(create_engine("postgresql+psycopg://u:changed@db.example/registry"))
    third = results.database_identity(create_engine("postgresql+psycopg://u@db.example/registry2"))
    assert one == other != third and "secret" not in one and one.startswith("registry-")


@sqlite_only
def test_reports_read_the_store(registry, tmp_path, monkeypatch):
    """`vbhc report` after a precompute computes nothing: the PDF and the workbook come from the store, the views
    of every year too (the files withhold their small cells against them, vbhc.reports.core.grid_tables).

    Two conditions, which between them have every kind of indicator (survival and composites: colorectal cancer;
    PROMs, means and costs: both): what a report reads per condition is the same for seven (the seven's precompute
    and reports took 26 s of CI). `vbhc report --all` after a precompute computing nothing is
    tests/test_reports_cli.py::test_the_first_pdf_after_an_import_reads_the_charts_the_import_rendered.

    SQLite only: what the reports read here comes from the store's files; the SQL they run beside it (the dataset
    version, the stored registry tables) is checked on PostgreSQL by test_an_import_changes_the_version_and_old_
    results_are_not_served and test_the_registry_tables_every_page_reads_are_stored_and_read_again_after_an_import
    (the PostgreSQL run took 22 s of CI for the same precompute and two reports)."""
    from vbhc.reports import make_report

    conditions = [CONDITION, "colorectal_cancer"]
    kinds = {i.kind for c in conditions for i in default_catalog().condition(c).indicators}
    assert kinds == {i.kind for c in default_catalog().conditions.values() for i in c.indicators}
    years = [key for key in results.year_views(registry) if key.level == "hospital" and key.condition in conditions]
    results.precompute(registry, [ViewKey(c, "hospital") for c in conditions] + years)

    def refuse(*args, **kwargs):
        raise AssertionError("the report computed instead of reading the store")

    monkeypatch.setattr(indicators, "compute_indicators", refuse)
    monkeypatch.setattr(indicators, "load_condition_data", refuse)
    for fmt in ("pdf", "xlsx"):
        path = make_report(
            tmp_path / f"two.{fmt}", fmt=fmt, conditions=conditions, engine=registry, lang="en", actor="test"
        )
        assert path.stat().st_size > 10_000


def _workbook_values(path: Path) -> dict[str, list]:
    """Every sheet's cell values, the time the file was made left out."""
    from openpyxl import load_workbook

    book = load_workbook(path)
    return {
        ws.title: [[v for v in row if not isinstance(v, dt.datetime)] for row in ws.iter_rows(values_only=True)]
        for ws in book.worksheets
    }


@sqlite_only
def test_a_reports_withheld_cells_are_stored_and_computed_again_after_an_import(registry, demo_files, tmp_path):
    """The cells a report withholds over its grid of periods (vbhc.reports.privacy.grid_masks) were most of a warm
    `vbhc report --all`'s time, computed again by every report: now stored beside the results (MasksKey), the next
    report (a new process: nothing kept in its memory) reads them and withholds the same cells, and after an
    import (a new dataset version) they are computed again."""
    from vbhc.reports import make_report, privacy

    def report(name: str) -> tuple[int, dict]:
        privacy._kept_masks.clear()  # as a new process
        before = _counts()
        path = make_report(tmp_path / name, fmt="xlsx", conditions=[CONDITION], engine=registry, lang="en", actor="t")
        return _computed_since(before)["masks"], _workbook_values(path)

    computed, first = report("first.xlsx")
    assert computed >= 1
    assert any(ResultStore(registry).folder.glob("*/masks-*.pkl"))
    again, second = report("second.xlsx")
    assert again == 0 and second == first
    import_files([_write_changed_outcomes(demo_files, tmp_path / "changed")], registry, imported_by="test")
    after, third = report("after.xlsx")
    assert after >= 1 and third != first


def _conditions(engine: Engine) -> list[str]:
    from vbhc.registry import condition_volumes

    return [str(c) for c in condition_volumes(engine=engine)["condition"]]


def test_cli_import_precomputes_the_default_views(two_condition_files, tmp_path, monkeypatch, capfd):
    """A progress line counts the views. Two conditions (a PROM condition and colorectal cancer: every kind of
    indicator between them): what the import prepares per condition two show as well as seven (the seven's import
    and precompute were 9 s of CI)."""
    from vbhc.cli import main
    from vbhc.store import get_engine

    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("VBHC_DATABASE_URL", url)
    monkeypatch.setenv("VBHC_RESULTS_DIR", str(tmp_path / "results"))
    monkeypatch.setenv("VBHC_WARM_UP_YEARS_UP_TO", "0")  # the whole period only: quick
    assert main(["init"]) == 0
    assert main(["import", *map(str, two_condition_files)]) == 0
    out = capfd.readouterr()
    # 2 conditions x 2 levels; the demo's last care cycle lies before the default meeting date, so the view as it
    # was at the meeting is the whole view (test_default_views_put_the_first_pages_first has a meeting within)
    assert "indicator views: 4/4 views" in out.err
    assert "Indicator views: 4 computed, 0 already stored" in out.out
    engine = get_engine(url)
    store = ResultStore(engine)
    assert all(store.has(key, store.version()) for key in results.default_views(engine))
    # and what the pages read beside them: a server started after the import computes nothing for its first pages
    prepared = re.search(
        r"Signals, unit charts, PROM-response, cost, PREM and registry tables: ([\d,]+) computed", out.out
    )
    assert prepared is not None and int(prepared.group(1).replace(",", "")) > 0
    version = store.version()
    for key in (v for v in results.default_views(engine) if not v.period):
        assert store.has_signals(results.SignalsKey(key, ""), version)
        assert store.has_signals(results.UnitChartsKey(key), version)

    def computed_again() -> pd.DataFrame:
        raise AssertionError("a derived table was not stored by the import")

    key = results.ViewKey(_conditions(engine)[0], "department")
    current = store.result(key, version)
    for name, derive in results.DERIVED_TABLES.items():  # the PROM and cost pages' tables, as fresh ones
        pdt.assert_frame_equal(store.table(results.TableKey(key, name), version, computed_again), derive(current))
    assert main(["precompute"]) == 0
    again = capfd.readouterr().out
    assert "0 computed, 4 already stored" in again
    assert "Signals, unit charts, PROM-response, cost, PREM and registry tables: 0 computed" in again


def test_default_views_put_the_first_pages_first(registry, monkeypatch):
    """The whole period of every condition, then (for a meeting after which care cycles started) the views as they
    were at the meeting, then the years; a meeting after the last care cycle needs no view of its own."""
    from vbhc.registry import condition_volumes

    monkeypatch.setenv("VBHC_WARM_UP_YEARS_UP_TO", "100000")
    last = pd.Timestamp(condition_volumes(engine=registry)["last_index_date"].max()).date()
    assert default_meeting_date() > last  # the demo's data end before today's meeting: the whole view is the same
    assert not [v for v in results.default_views(registry) if ".." in v.period]
    meeting_date = last - dt.timedelta(days=180)
    monkeypatch.setattr(results, "default_meeting_date", lambda: meeting_date)
    views = results.default_views(registry)
    conditions = _conditions(registry)
    assert views[: len(conditions)] == [ViewKey(c, "hospital") for c in conditions]
    # then each condition as it was at the default meeting date (the "since the last meeting" columns)
    as_of = [v for v in views if ".." in v.period]
    assert views[len(conditions) : 2 * len(conditions)] == [v for v in as_of if v.level == "hospital"]
    assert {(v.condition, v.level) for v in as_of} == {(c, lv) for c in conditions for lv in ("hospital", "department")}
    assert all(v.period.endswith(f"..{meeting_date.isoformat()}") for v in as_of)
    years = {v.period for v in views if v.period and v not in as_of}
    assert years and all(len(y) == 4 for y in years)
    assert len(views) == len(conditions) * 2 * (2 + len(years))
    assert len(results.default_views(registry, years=False)) == 4 * len(conditions)


@sqlite_only
def test_precompute_lets_go_of_a_conditions_data_before_the_next_conditions_views(registry, monkeypatch):
    """precompute keeps a condition's data in memory for its views (both levels, its periods), and lets go of it
    when the next condition's views start: before, the store's memo kept up to four views' data, so at 10,000,000
    care cycles the next condition's tables were computed beside the previous conditions' data (GBs each)."""
    import weakref

    from tests.gc_young import collections_of_new_objects

    first, second = _conditions(registry)[:2]
    loaded: dict[str, weakref.ref] = {}
    load = indicators.load_condition_data

    def tracked(condition: str, *args, **kwargs) -> indicators.ConditionData:
        data = load(condition, *args, **kwargs)
        loaded[condition] = weakref.ref(data)
        return data

    alive_then: list[tuple[str, bool]] = []  # (condition computed, the first condition's data still held)
    compute = indicators.compute_indicators

    def spied(data: indicators.ConditionData, *args, **kwargs) -> indicators.IndicatorResult:
        gc.collect()
        alive_then.append((data.condition.id, loaded[first]() is not None))
        return compute(data, *args, **kwargs)

    monkeypatch.setattr(indicators, "load_condition_data", tracked)
    monkeypatch.setattr(indicators, "compute_indicators", spied)
    views = [ViewKey(c, level) for c in (first, second) for level in ("hospital", "department")]
    with collections_of_new_objects():  # not over what the module's earlier tests left in this process
        assert results.precompute(registry, views, prune=False) == (4, 0)
    # the first condition's two levels share its data (read once); the second's are computed without it
    assert alive_then == [(first, True), (first, True), (second, False), (second, False)]


@sqlite_only
def test_the_years_are_prepared_year_by_year_newest_first_each_with_its_prem_tables(registry, monkeypatch):
    """A server's years (precompute_years, a registry too large for default_views' years): the newest year's PREM
    tables and then its views of every condition, before anything of an older year, so a period change to a recent
    year reads what its team page shows. Before, the years went condition by condition and every year's PREM tables
    came after the last view: at 1,000,000 care cycles a period change soon after a start computed both in the page
    (the PREM tables, ~9 CPU s a level, in the page's own run)."""
    monkeypatch.setenv("VBHC_WARM_UP_YEARS_UP_TO", "0")
    done: list[tuple[str, str]] = []  # (what, period) in the order prepared; nothing is computed here
    monkeypatch.setattr(ResultStore, "result", lambda self, key, *a, **k: done.append(("view", key.period)))
    monkeypatch.setattr(results, "_store_prem", lambda store, engine, key, *a: done.append(("prem", key.period)))
    progress: list[tuple[int, int]] = []
    results.precompute_years(registry, progress=lambda _stage, n, total: progress.append((n, total)))
    years = results.year_views(registry)
    newest_first = list(dict.fromkeys(v.period for v in years))
    assert len(newest_first) > 1 and newest_first == sorted(newest_first, reverse=True)
    expected = []
    for period in newest_first:
        expected += [("prem", period)] * sum(k.period == period for k in results.prem_keys(years))
        expected += [("view", period)] * sum(v.period == period for v in years)
    assert done == expected
    assert progress == [(n, len(years)) for n in range(1, len(years) + 1)]  # one count over every year's views


@pytest.mark.usefixtures("hospital_view_stored")
@sqlite_only
def test_the_table_as_it_was_at_the_meeting_is_a_stored_view_equal_to_the_refit(registry):
    """The "since the last meeting" comparison reads the stored date-range view; it equals refitting the models on
    the care cycles up to the meeting (vbhc.meeting.result_as_of), and a date after a viewed year is that year."""
    store = ResultStore(registry)
    version = store.version()
    current = store.result(ViewKey(CONDITION, "hospital"), version)
    when = dt.date(2024, 6, 30)
    first = pd.Timestamp(current.data.cycles["index_date"].min()).date()
    period = as_of_period(first, when)
    assert period.label == f"{first.isoformat()}..2024-06-30"
    stored = store.result(ViewKey(CONDITION, "hospital", period.label), version)
    assert_results_equal(stored, result_as_of(current, when))
    year = store.result(ViewKey(CONDITION, "hospital", "2023"), version)
    assert as_of_period(first, when, year.period) == year.period
    assert as_of_period(first, dt.date(2010, 1, 1)) is None


@pytest.mark.usefixtures("hospital_view_stored")
def test_the_signals_of_every_unit_are_stored_once_and_equal_each_units_own(registry):
    """ "Since the last meeting" reads the signals of every unit of a view from the store (now, and at the
    meeting): they equal vbhc.meeting.signals of each unit, computed once, and a second read computes nothing."""
    from vbhc.meeting import signals, since_last_meeting

    store = ResultStore(registry)
    version = store.version()
    key = ViewKey(CONDITION, "hospital")
    current = store.result(key, version)
    when = dt.date(2024, 6, 30)
    first = pd.Timestamp(current.data.cycles["index_date"].min()).date()
    before_key = ViewKey(CONDITION, "hospital", as_of_period(first, when).label)
    before = store.result(before_key, version)
    counted = _counts()
    paused: list[int] = []  # a server's background work waits for its pages between units
    now = store.signals(key, version, current, pause=lambda: paused.append(1))
    then = store.signals(before_key, version, before, when)
    assert _computed_since(counted)["signals"] == 2
    units = sorted(current.table["unit"].unique())
    assert sorted(now) == units and len(units) > 2
    assert len(paused) == len(units)
    assert any(found for per_unit in now.values() for found in per_unit.values())  # a test that can fail
    for unit in units:
        assert now[unit] == signals(current, unit)
        assert then.get(unit, {}) == (signals(before, unit, until=when) if unit in set(before.table["unit"]) else {})
        pdt.assert_frame_equal(
            since_last_meeting(current, unit, when, before=before, now=now, then=then),
            since_last_meeting(current, unit, when, before=before),
        )
    counted = _counts()
    again = ResultStore(registry)  # another process's store object: read from disk
    assert again.signals(key, version, current) == now
    assert again.signals(before_key, version, before, when) == then
    assert _computed_since(counted)["signals"] == 0


def _import_prem_answers(
    registry, tmp_path: Path, first: dt.date, *, departments: int = 12, respondents: int = 3_000, seed: int = 3
) -> None:
    """PREM answers from `first` to the end of 2024 for the first `departments` of the registry's own departments
    (the small demo has too few respondents per department), imported."""
    from vbhc.demo_prems import write_prem_responses
    from vbhc.registry import units

    (tmp_path / "prem").mkdir()
    chosen = units(registry)[["hospital", "department"]].astype(str).drop_duplicates().head(departments)
    answers, _rows, _truth = write_prem_responses(
        tmp_path / "prem",
        [(h, d, 1.0) for h, d in chosen.itertuples(index=False)],
        respondents=respondents,
        seed=seed,
        first=first,
        last=dt.date(2024, 12, 31),
    )
    import_files([answers], registry, imported_by="test")


def _assert_same_prem_result(got, fresh) -> None:
    """A PREM result equal to one computed on its own: its table, per-answer values, models and their diagnostics."""
    pdt.assert_frame_equal(got.table, fresh.table)
    pdt.assert_frame_equal(got.cycle_values, fresh.cycle_values)
    assert got.models.keys() == fresh.models.keys()
    for name, model in fresh.models.items():
        pdt.assert_series_equal(got.models[name].expected, model.expected)
        assert _plain(got.models[name].diagnostics) == _plain(model.diagnostics)


def test_a_stored_prem_table_equals_a_freshly_computed_one_and_is_read_not_computed(registry, tmp_path):
    """The patient-experience tables beside the outcomes are kept in the store like the views: equal to computing
    them (every column, the models' expected values), and a second store object reads them."""
    from vbhc.prems import prem_indicator_table
    from vbhc.results import PremKey

    _import_prem_answers(registry, tmp_path, dt.date(2024, 1, 1))
    store = ResultStore(registry)
    version = store.version()
    questionnaire, level = "prem_clinical", "department"
    fresh = prem_indicator_table(questionnaire, level, engine=registry)
    assert len(fresh.table) > 0  # a test of an empty table could not fail
    key = PremKey(questionnaire, level)
    counted = _counts()
    stored = store.prem(key, version, lambda: prem_indicator_table(questionnaire, level, engine=registry))
    assert _computed_since(counted)["prem"] == 1
    counted = _counts()
    again = ResultStore(registry).prem(key, version, lambda: pytest.fail("read, not computed"))
    assert _computed_since(counted)["prem"] == 0
    for got in (stored, again):
        pdt.assert_frame_equal(got.table, fresh.table)
        assert got.models.keys() == fresh.models.keys()
        for name, model in fresh.models.items():
            pdt.assert_series_equal(got.models[name].expected, model.expected)
    assert ResultStore(registry).has_prem(PremKey(questionnaire, level), version)
    assert not ResultStore(registry).has_prem(PremKey(questionnaire, level, "2023"), version)


@sqlite_only
def test_a_periods_prem_tables_at_both_levels_read_its_answers_once_and_equal_fresh_ones(
    registry, tmp_path, monkeypatch
):
    """The dashboard's PREM tables of a period not prepared (ui.data.prem_result): the hospital's and then the
    department's read the questionnaire's answers once (two thirds of a table's CPU for a year at 1,000,000 care
    cycles, computed in the page's run), and each equals the table computed on its own."""
    from ui import data
    from ui.kept import Kept
    from vbhc import registry as registry_module
    from vbhc.prems import prem_indicator_table

    _import_prem_answers(registry, tmp_path, dt.date(2023, 7, 1))
    url = registry.url.render_as_string(hide_password=False)
    data_version = data.registry.dataset_version(registry)
    monkeypatch.setattr(data, "_prem_answers", Kept(2), raising=False)
    reads: list[str] = []
    real = registry_module.prem_answer_parts
    monkeypatch.setattr(registry_module, "prem_answer_parts", lambda q, **k: reads.append(q) or real(q, **k))
    got = {
        level: data.prem_result(url, data_version, "prem_clinical", level, "2024")
        for level in ("hospital", "department")
    }
    assert reads == ["prem_clinical"]
    for level, result in got.items():
        fresh = prem_indicator_table("prem_clinical", level, "2024", engine=registry)
        assert len(fresh.table) > 0 and fresh.models  # a test of an empty table could not fail
        _assert_same_prem_result(result, fresh)


@sqlite_only
def test_the_years_prem_tables_of_both_levels_read_each_questionnaires_answers_once(registry, tmp_path, monkeypatch):
    """A server's years (precompute_years): a year's PREM tables of both levels read each questionnaire's answers of
    the year once (two thirds of a table's CPU at 1,000,000 care cycles), and each stored table equals the table
    computed on its own."""
    from vbhc import registry as registry_module
    from vbhc.prems import prem_indicator_table
    from vbhc.results import PremKey

    _import_prem_answers(registry, tmp_path, dt.date(2023, 7, 1))
    monkeypatch.setenv("VBHC_WARM_UP_YEARS_UP_TO", "0")
    monkeypatch.setattr(results, "precompute", lambda *a, **k: (0, 0))  # the views: not what this test is about
    reads: list[tuple[str, str]] = []
    real = registry_module.prem_answer_parts
    monkeypatch.setattr(
        registry_module, "prem_answer_parts", lambda q, **k: reads.append((q, k["period"].label)) or real(q, **k)
    )
    results.precompute_years(registry)
    keys = [k for k in results.prem_keys(results.year_views(registry)) if k.period]
    assert len(keys) == 2 * len({(k.questionnaire, k.period) for k in keys}) > 2  # both levels of each
    assert sorted(reads) == sorted({(k.questionnaire, k.period) for k in keys})  # each read once
    store = ResultStore(registry)
    version = store.version()
    assert all(store.has_prem(k, version) for k in keys)
    for level in ("hospital", "department"):
        fresh = prem_indicator_table("prem_clinical", level, "2024", engine=registry)
        stored = store.prem(PremKey("prem_clinical", level, "2024"), version, lambda: pytest.fail("stored"))
        assert len(fresh.table) > 0  # a test of an empty table could not fail
        _assert_same_prem_result(stored, fresh)


def _stored_answers(engine, questionnaire: str, start: dt.date, end: dt.date) -> pd.DataFrame:
    """The reference: each stored answer row of a questionnaire visited from start to end, with its response's unit,
    visit and case-mix as stored on that row (one plain query, independent of vbhc.registry's two-part read)."""
    from sqlalchemy import select

    from vbhc import models
    from vbhc.catalog import PREM_CASEMIX

    r = models.PremResponse
    columns = [r.response_id, r.hospital, r.department, r.visit_date, r.item, r.answer]
    columns += [getattr(r, name) for name in PREM_CASEMIX]
    query = (
        select(*columns)
        .where(r.questionnaire == questionnaire, r.visit_date.between(start, end))
        .order_by(r.response_id, r.item)
    )
    with engine.connect() as conn:
        df = pd.DataFrame(conn.execute(query).all(), columns=[c.key for c in columns])
    df["answer"] = pd.to_numeric(df["answer"]).astype(float)
    df["visit_date"] = pd.to_datetime(df["visit_date"])
    return df


def test_a_periods_prem_rows_read_each_responses_unit_and_case_mix_once_and_equal_those_of_its_answers(
    registry, tmp_path, monkeypatch
):
    """A year's PREM tables computed in a page's run (a year not prepared yet) read the year's answers: a response's
    unit, visit and case-mix are the same on each of its answers, and read once per response instead of once per
    answer (with each answer's response id and item, most of the year's tables at 1,000,000 care cycles); an answer
    is read as its item's number and its value only, its response given by the order of the answers and the number
    of answers of each response (a response id and an item string per answer were most of the rest of the read).
    The rows built from them equal those built from every stored answer row of the year read as it is
    (_stored_answers)."""
    from vbhc import registry as registry_module
    from vbhc.prems import load_prem_data, prem_data

    _import_prem_answers(registry, tmp_path, dt.date(2023, 7, 1))
    answers = _stored_answers(registry, "prem_clinical", dt.date(2024, 1, 1), dt.date(2024, 12, 31))
    responses = answers["response_id"].nunique()
    assert len(answers) > 5 * responses > 0  # several answers per response: a test that could not fail otherwise
    values_read: list[int] = []
    real = registry_module._read

    def counted(*args, **kwargs) -> pd.DataFrame:
        frame = real(*args, **kwargs)
        values_read.append(frame.size)
        return frame

    monkeypatch.setattr(registry_module, "_read", counted)
    got = load_prem_data("prem_clinical", "2024", engine=registry)
    # per answer its item's number and answer; per response its id, number of answers, unit (2), visit, case-mix (3)
    assert sum(values_read) == 2 * len(answers) + 8 * responses
    q = default_catalog().questionnaire("prem_clinical")
    unit = np.datetime_data(got.rows.cycles["index_date"].dtype)[0]  # as the backend's dates are read (s or us)
    expected = prem_data(answers.assign(visit_date=answers["visit_date"].dt.as_unit(unit)), q, got.rows.period)
    pdt.assert_frame_equal(got.rows.cycles, expected.rows.cycles)
    pdt.assert_frame_equal(got.respondents.cycles, expected.respondents.cycles)
    assert got.rows.as_of == expected.rows.as_of


def test_a_periods_prem_rows_read_while_an_import_lands_are_those_of_one_dataset_version(
    registry, tmp_path, monkeypatch
):
    """The responses and their answers are two reads: an import committed between them (here right after the
    responses' read) must not pair one version's responses with another's answers (an error in the page, or one
    version's case-mix beside another's answers); the rows are read again and equal a read after the import."""
    from vbhc import registry as registry_module
    from vbhc.prems import load_prem_data

    _import_prem_answers(registry, tmp_path, dt.date(2024, 1, 1), departments=6, respondents=1_000, seed=5)
    real, reads, landed = registry_module._read, [], []

    def import_between(*args, **kwargs) -> pd.DataFrame:
        frame = real(*args, **kwargs)
        reads.append(len(frame))
        if not landed:  # once, after the first read (the responses): other respondents' answers of the year
            landed.append(True)
            import_files([later], registry, imported_by="test")
        return frame

    from vbhc.demo_prems import write_prem_responses

    chosen = registry_module.units(registry)[["hospital", "department"]].astype(str).drop_duplicates().head(6)
    (tmp_path / "later").mkdir()
    later, _rows, _truth = write_prem_responses(
        tmp_path / "later",
        [(h, d, 1.0) for h, d in chosen.itertuples(index=False)],
        respondents=1_500,
        seed=11,
        first=dt.date(2024, 1, 1),
        last=dt.date(2024, 12, 31),
    )
    frame = pd.read_csv(later, dtype=str, keep_default_na=False)
    frame["response_id"] = "L" + frame["response_id"]  # new respondents, not the first file's again
    frame.to_csv(later, index=False)
    monkeypatch.setattr(registry_module, "_read", import_between)
    got = load_prem_data("prem_clinical", "2024", engine=registry)
    monkeypatch.setattr(registry_module, "_read", real)
    fresh = load_prem_data("prem_clinical", "2024", engine=registry)
    assert len(reads) == 4  # read twice: the import landed between the first two reads
    pdt.assert_frame_equal(got.rows.cycles, fresh.rows.cycles)
    pdt.assert_frame_equal(got.respondents.cycles, fresh.respondents.cycles)


def test_a_prem_result_computed_for_a_page_is_written_later_by_a_store_that_writes_later(registry, tmp_path):
    """A page that computes a year's PREM table (not prepared yet) has it in memory: a server's store (ui.data passes
    `later`) writes it once pages are drawn, as it writes a comparison group's, instead of in the page's run; the
    written result equals the one the page got."""
    from vbhc.prems import prem_indicator_table
    from vbhc.results import PremKey

    _import_prem_answers(registry, tmp_path, dt.date(2024, 1, 1), departments=6, respondents=1_000, seed=5)
    writes: list = []
    store = ResultStore(registry, later=writes.append)
    version = store.version()
    key = PremKey("prem_clinical", "hospital", "2024")
    got = store.prem(key, version, lambda: prem_indicator_table("prem_clinical", "hospital", "2024", engine=registry))
    assert len(got.table) > 0 and len(writes) == 1
    assert not store.has_prem(key, version)  # not written in the page's run
    writes.pop()()
    assert store.has_prem(key, version)
    stored = ResultStore(registry).prem(key, version, lambda: pytest.fail("stored"))
    pdt.assert_frame_equal(stored.table, got.table)
    pdt.assert_frame_equal(stored.cycle_values, got.cycle_values)


def test_a_stored_prem_result_reads_its_table_first_and_the_rest_when_asked(registry, tmp_path):
    """What a page shows of patient experience (the table) is read from a small file of its own; the models,
    per-answer values and answers come from the whole result on first use, the same objects as computed. A store
    written before the split gets its table file at the first read."""
    import dataclasses

    from vbhc.prems import prem_indicator_table
    from vbhc.results import PremKey, StoredPremResult

    _import_prem_answers(registry, tmp_path, dt.date(2024, 1, 1), departments=6, respondents=1_000, seed=5)
    store = ResultStore(registry)
    version = store.version()
    key = PremKey("prem_clinical", "hospital")
    fresh = store.prem(key, version, lambda: prem_indicator_table("prem_clinical", "hospital", engine=registry))
    assert len(fresh.table) > 0 and len(fresh.cycle_values) > 0
    folder = store.folder / version
    whole, table_only = folder / key.file_name(), folder / key.table_key.file_name()
    assert table_only.stat().st_size * 10 < whole.stat().st_size  # the point: a page reads far less
    counted = _counts()
    lazy = ResultStore(registry).prem(key, version, lambda: pytest.fail("read, not computed"))
    assert isinstance(lazy, StoredPremResult) and "models" not in lazy._parts  # nothing but the table read yet
    pdt.assert_frame_equal(lazy.table, fresh.table)
    assert (lazy.condition, lazy.level, lazy.period) == (fresh.condition, fresh.level, fresh.period)
    pdt.assert_frame_equal(lazy.cycle_values, fresh.cycle_values)  # read now, with the rest
    assert lazy.models.keys() == fresh.models.keys() and lazy.data is not None
    pdt.assert_frame_equal(lazy.data.cycles, fresh.data.cycles)
    assert _computed_since(counted)["prem"] == 0
    # dataclasses.replace (the external comparison swaps the table) keeps every part
    swapped = dataclasses.replace(lazy, table=lazy.table.head(1))
    assert len(swapped.table) == 1 and swapped.models.keys() == fresh.models.keys()
    pdt.assert_frame_equal(swapped.cycle_values, fresh.cycle_values)
    # a store from before the split: the whole result is read, and the table file written beside it
    table_only.unlink()
    older = ResultStore(registry).prem(key, version, lambda: pytest.fail("read, not computed"))
    assert not isinstance(older, StoredPremResult) and table_only.is_file()
    pdt.assert_frame_equal(older.table, fresh.table)
    # the whole result gone after the table was read: computed again on first use, and stored again
    lazy = ResultStore(registry).prem(
        key, version, lambda: prem_indicator_table("prem_clinical", "hospital", engine=registry)
    )
    whole.unlink()
    counted = _counts()
    pdt.assert_frame_equal(lazy.cycle_values, fresh.cycle_values)
    assert _computed_since(counted)["prem"] == 1 and whole.is_file()


@pytest.mark.usefixtures("hospital_view_stored")
def test_a_stored_view_keeps_its_comparison_group_apart(registry):
    store = ResultStore(registry)
    version = store.version()
    hospitals = sorted(pd.unique(load_condition_data(CONDITION, engine=registry).cycles["hospital"].astype(str)))
    peers = ViewKey.of(CONDITION, "hospital", None, hospitals[:3][::-1])
    assert peers.peers == tuple(hospitals[:3])
    mine = store.result(peers, version)
    assert set(mine.table["hospital"].astype(str)) == set(hospitals[:3])
    whole = store.result(ViewKey(CONDITION, "hospital"), version)
    assert set(whole.table["hospital"].astype(str)) == set(hospitals)
    assert set(ResultStore(registry).get(peers, version).table["hospital"].astype(str)) == set(hospitals[:3])


def test_a_comparison_groups_files_are_written_later_and_not_after_an_import(registry, tmp_path, monkeypatch):
    """A server writes a view's data and result once the page that asked for it is drawn (ResultStore.later): a
    comparison group's, and the registry's view its models come from, are returned before anything of them is on
    disk (the registry's was written in the click's run: a year's department view at 1,000,000 care cycles was
    ~0.8 s of CPU of a unit-level click); the writes then store what was computed, read by another store object;
    a write that finds another dataset version (an import in between) stores nothing."""
    pending: list = []
    store = ResultStore(registry, tmp_path / "results", later=pending.append)
    version = store.version()
    hospitals = sorted(pd.unique(load_condition_data(CONDITION, engine=registry).cycles["hospital"].astype(str)))
    group = ViewKey.of(CONDITION, "hospital", None, hospitals[:3])
    whole = ViewKey(CONDITION, "hospital")
    mine = store.result(group, version)
    assert len(pending) == 4  # the registry's data, the group's data, the registry's view, the group's view
    assert not store.has(whole, version) and store.get(whole, version) is None
    assert not store.has(group, version) and store.get(group, version) is None
    for write in pending:
        write()
    assert_results_equal(ResultStore(registry, tmp_path / "results").get(group, version), mine)
    fresh = ResultStore(registry, tmp_path / "fresh").result(whole, version)
    assert_results_equal(ResultStore(registry, tmp_path / "results").get(whole, version), fresh)

    pending.clear()
    other = ViewKey.of(CONDITION, "hospital", None, hospitals[1:4])
    store.result(other, version)
    assert len(pending) == 2
    with monkeypatch.context() as m:
        m.setattr(ResultStore, "version", lambda self, expected=None: "another-version")
        for write in pending:
            write()
    assert not store.has(other, version) and store.get(other, version) is None


def test_a_comparison_group_view_recalibrates_the_stored_registry_models_without_fitting(registry, monkeypatch):
    """A group's expected values come from the registry view of the same period as stored (its case-mix and Cox
    models), recalibrated to the group: another process computing a group view fits no model, and the group's
    pooled O/E is 1 for every adjusted indicator."""
    from vbhc import casemix, survival

    version = ResultStore(registry).version()
    hospitals = sorted(pd.unique(load_condition_data(CONDITION, engine=registry).cycles["hospital"].astype(str)))
    ResultStore(registry).result(ViewKey(CONDITION, "hospital", "2024"), version)  # the registry's view, stored

    def refuse(*args, **kwargs):
        raise AssertionError("a comparison group must not refit a model")

    for module, name in ((casemix, "fit_casemix_model"), (indicators, "fit_casemix_model"), (survival, "fit_cox")):
        monkeypatch.setattr(module, name, refuse)
    fresh = ResultStore(registry)  # another process: the registry's models only on disk
    group = fresh.result(ViewKey.of(CONDITION, "hospital", "2024", hospitals[:4]), version)
    assert group.data.reference is not None and group.data.reference.fitted
    adjusted = group.table[group.table["oe"].notna()]
    assert len(adjusted)
    pooled = adjusted.groupby("indicator")[["observed", "expected"]].sum()
    pooled = pooled[pooled["expected"] > 0]
    np.testing.assert_allclose(pooled["observed"] / pooled["expected"], 1.0, rtol=1e-7)
    assert all(m.recalibration is not None for m in group.models.values())
    # read back by a third process: the same table, without the registry's models
    again = ResultStore(registry).get(ViewKey.of(CONDITION, "hospital", "2024", hospitals[:4]), version)
    pdt.assert_frame_equal(again.table, group.table)


@pytest.mark.usefixtures("hospital_view_stored")
@sqlite_only
def test_comparison_group_views_are_capped_least_recently_used_first(registry, monkeypatch):
    """Viewers may pick any comparison group: those views are removed beyond the cap, least recently read first,
    while the default views stay; a removed view is computed again, equal to what it was."""
    store = ResultStore(registry)
    version = store.version()
    whole = ViewKey(CONDITION, "hospital")
    store.result(whole, version)
    hospitals = sorted(pd.unique(load_condition_data(CONDITION, engine=registry).cycles["hospital"].astype(str)))
    groups = [ViewKey.of(CONDITION, "hospital", None, hospitals[i : i + 3]) for i in range(3)]
    first = store.result(groups[0], version)
    folder = store.folder / version
    one = sum((folder / key.file_name()).stat().st_size for key in (groups[0], groups[0].data_key))
    # room for about two group views (result and data each): the third evicts the least recently read
    monkeypatch.setenv("VBHC_RESULTS_GROUP_MB", str(2.2 * one / 1024 / 1024))
    store.result(groups[1], version)
    os.utime(folder / groups[0].file_name(), (1, 1))  # the first group was read longest ago
    os.utime(folder / groups[0].data_key.file_name(), (1, 1))
    store.result(groups[2], version)
    assert not store.has(groups[0], version)
    assert store.has(groups[1], version) and store.has(groups[2], version)
    assert store.has(whole, version)  # the default views are never removed
    assert_results_equal(ResultStore(registry).result(groups[0], version), first)


@pytest.mark.warm_up
def test_the_server_warm_up_fills_the_store(sqlite_engine, two_condition_files, tmp_path, monkeypatch):
    """ui.data's background preparation stores every default view and counts them for a waiting page; the views
    of an older import are pruned."""
    from ui import data
    from vbhc import meeting

    monkeypatch.setenv("VBHC_RESULTS_DIR", str(tmp_path / "results"))
    monkeypatch.setenv("VBHC_WARM_UP_YEARS_UP_TO", "0")
    import_files(two_condition_files, sqlite_engine, imported_by="test")
    url = sqlite_engine.url.render_as_string(hide_password=False)
    store = ResultStore(sqlite_engine)
    assert store.enabled  # creates the store's root, with its marker
    store.folder.mkdir(mode=0o700)
    (store.folder / "1-1-oldversion").mkdir(mode=0o700)  # an older import's results
    data_version = data.registry.dataset_version(sqlite_engine)
    frozen = gc.get_freeze_count()
    apart: list[str] = []  # the report's charts, last, in a child process (tests/test_reports_cli.py renders them)
    monkeypatch.setattr("vbhc.reports.run.prepare_report_charts_apart", apart.append)
    graded, real_completeness = [], data.registry.completeness
    monkeypatch.setattr(data.registry, "completeness", lambda c, **k: graded.append(c) or real_completeness(c, **k))
    # the years' child at normal priority: on a busy test worker one at nice 19 waited minutes for a core
    monkeypatch.setattr(results, "YEARS_NICENESS", 0)
    before = _counts()
    data.start_warm_up(url, data_version).join(timeout=600)
    here = _computed_since(before)
    assert apart == [url]
    # the Data page's completeness grid of every condition is read once, ahead: the page reads it from memory
    conditions = sorted({v.condition for v in results.default_views(sqlite_engine)})
    assert sorted(graded) == conditions
    assert all(len(data.completeness(url, data_version, c)) for c in conditions) and len(graded) == len(conditions)
    state = data.warm_up_state(url, data_version)
    # what the warm-up loaded is out of the garbage collector's full passes (they held the interpreter lock 1.3 s)
    assert gc.get_freeze_count() > frozen
    gc.unfreeze()  # this test process goes on with other tests
    views = results.default_views(sqlite_engine)
    # 2 conditions x 2 levels (the demo's care cycles end before the default meeting date: no view as it was then)
    assert conditions == sorted([CONDITION, "colorectal_cancer"]) and len(views) == 4
    # then every year, which default_views leaves out of a registry this large (VBHC_WARM_UP_YEARS_UP_TO=0)
    years = results.year_views(sqlite_engine)
    assert len(years) > 4 and not set(years) & set(views)
    assert state is not None and state.finished and state.done == state.total == len(views) + len(years)
    version = store.version()
    assert all(store.has(key, version) for key in views + years)
    assert store.versions() == [version]
    before = _counts()
    assert all(ResultStore(sqlite_engine).get(key, version) is not None for key in views + years)
    assert _computed_since(before) == NOTHING_COMPUTED
    # the years were computed in a child process (at the lowest priority): this process, the server's, computed the
    # default views only (at 1,000,000 care cycles the years' ~20 minutes of CPU held its interpreter lock beside
    # every page drawn meanwhile), and what the child stored equals the views computed here
    # and each view as it was at the team page's "since" date (results.as_of_dates), which its first visit computed
    when = default_meeting_date()
    as_of = {
        (key.level, key.condition, label)
        for key in views
        for until in results.as_of_dates(store.get(key, version), when)
        if (label := meeting.as_of_label(store.get(key, version), until)) not in (None, key.period)
    }
    assert here["result"] == len(views) + len(as_of) and here["prem"] == len(results.prem_keys(views))
    assert all(store.has_prem(key, version) for key in results.prem_keys(years))
    # and, in the same child, what a period click reads beside each year: every unit's signals and SPC charts, and
    # the year as it was at the team page's "since" date (the click computed them, ~1.5-2 s of CPU at 50k)
    assert all(store.has_signals(results.SignalsKey(key, ""), version) for key in years)
    assert not results.year_pages_pending(sqlite_engine)
    for condition in conditions:
        newest = next(key for key in years if key.condition == condition)
        fresh = compute_indicators(
            restrict(load_condition_data(condition, engine=sqlite_engine), newest.period), "hospital"
        )
        assert_results_equal(ResultStore(sqlite_engine).get(newest, version), fresh)


@pytest.mark.warm_up
def test_a_server_told_so_leaves_the_years_to_the_pages(sqlite_engine, two_condition_files, tmp_path, monkeypatch):
    """VBHC_WARM_UP_YEARS_IN_BACKGROUND=0 (a server that shares its machine, as the browser tests' servers): the
    warm-up prepares the default views and no year; a page asking for a year computes it then. The browser tests'
    servers set VBHC_WARM_UP_YEARS_UP_TO=0 to prepare the default views only, and still spent ~40 s of CPU each on
    the years in the background."""
    from ui import data

    monkeypatch.setenv("VBHC_RESULTS_DIR", str(tmp_path / "results"))
    monkeypatch.setenv("VBHC_WARM_UP_YEARS_UP_TO", "0")
    monkeypatch.setenv("VBHC_WARM_UP_YEARS_IN_BACKGROUND", "0")
    monkeypatch.setattr("vbhc.reports.run.prepare_report_charts_apart", lambda url: None)
    import_files(two_condition_files, sqlite_engine, imported_by="test")
    url = sqlite_engine.url.render_as_string(hide_password=False)
    data.start_warm_up(url, data.registry.dataset_version(sqlite_engine)).join(timeout=600)
    gc.unfreeze()  # the warm-up froze what it loaded; this test process goes on with other tests
    store = ResultStore(sqlite_engine)
    version = store.version()
    views, years = results.default_views(sqlite_engine), results.year_views(sqlite_engine)
    assert views and years and all(store.has(key, version) for key in views)
    assert not any(store.has(key, version) for key in years)


@pytest.mark.usefixtures("hospital_view_stored")
def test_the_unit_charts_of_every_unit_are_stored_once_and_equal_each_units_own(registry):
    """The team page's verdicts read the quarterly SPC charts of every unit of a view from the store: equal to
    drawing each unit's charts (every column and the icons), computed once, read by a second store object without
    computing; and a manager's rows pick from them exactly the charts drawn on that manager's own table."""
    from ui.render import charts_by_row
    from vbhc.access import Role, Scope, Viewer, indicator_rows
    from vbhc.unit_charts import NO_CHART_KINDS

    store = ResultStore(registry)
    version = store.version()
    key = ViewKey(CONDITION, "hospital")
    current = store.result(key, version)
    counted = _counts()
    paused: list[int] = []  # a server's background work waits for its pages between units
    charts = store.unit_charts(key, version, current, pause=lambda: paused.append(1))
    assert _computed_since(counted)["unit_charts"] == 1
    units = sorted(current.table["unit"].astype(str).unique())
    assert sorted(charts) == units and len(units) > 2
    assert len(paused) == len(units)
    drawn = 0
    for unit in units:
        rows = current.table[(current.table["unit"] == unit) & ~current.table["kind"].isin(NO_CHART_KINDS)]
        for indicator in rows["indicator"]:
            fresh = indicators.indicator_over_time(current, indicator, unit, freq="QS")
            if not len(fresh):
                assert indicator not in charts[unit]
                continue
            pdt.assert_frame_equal(charts[unit][indicator], fresh)
            assert charts[unit][indicator].attrs == fresh.attrs
            drawn += 1
    assert drawn > len(units)  # a test that can fail: charts were compared
    counted = _counts()
    again = ResultStore(registry)  # another process's store object: read from disk
    read = again.unit_charts(key, version, current)
    assert _computed_since(counted)["unit_charts"] == 0
    for unit in units:
        assert sorted(read[unit]) == sorted(charts[unit])
    # a manager's table (own hospital by name, the others anonymised): the same charts as drawn on it
    manager = Viewer("m@example.org", "M", (Scope(Role.MANAGER, hospitals=frozenset({units[0]})),))
    table = indicator_rows(manager, current.table, engine=registry, record_view=False)
    seen = replace(current, table=table)
    mine = table[table["unit"] == units[0]]
    picked = charts_by_row(mine, read[units[0]], units[0])
    own = {  # drawn on the manager's own table, row by row
        idx: chart
        for idx, row in mine.iterrows()
        if row["kind"] not in NO_CHART_KINDS
        and len(chart := indicators.indicator_over_time(seen, row["indicator"], units[0], freq="QS"))
    }
    assert sorted(picked) == sorted(own) and own
    for idx in own:
        pdt.assert_frame_equal(picked[idx], own[idx])


@sqlite_only
@pytest.mark.parametrize("newest_year", [False, True], ids=["all_dates", "newest_year"])
def test_prepare_pages_stores_the_view_as_it_was_at_the_team_pages_since_date(registry, newest_year):
    """What the team page reads beside a view (its default "since the last meeting" date is the start of the
    view's latest quarter with data, vbhc.meeting.since_date, not the default meeting date), for all dates and for
    a year (the period filter's choices): the view as it was then with its signals then, and the signals of every
    unit now, all stored by prepare_pages, so a page, a restart or a period click computes none of them. (Once only
    the default meeting date's view was prepared and no year: the page computed the view at the since date, ~0.5 s
    of CPU on the 50k demo, and every year's signals on a period click.)"""
    from vbhc import meeting

    period = results.year_views(registry)[0].period if newest_year else ""
    key = ViewKey(CONDITION, "hospital", period)
    results.prepare_pages(registry, [key])
    store = ResultStore(registry)
    version = store.version()
    before = _counts()
    result = store.result(key, version)
    since, basis = meeting.since_date(None, None, meeting.data_complete_until(result.data))
    assert basis == meeting.SINCE_DATA
    label = meeting.as_of_label(result, since)
    assert label not in (None, period)  # the demo has care cycles after the start of its latest quarter
    then = ViewKey(CONDITION, "hospital", label)
    assert store.has(then, version)
    assert store.has_signals(results.SignalsKey(then, since.isoformat()), version)
    assert store.has_signals(results.SignalsKey(key, ""), version)
    then_result = store.result(then, version)
    store.signals(then, version, then_result, since)
    store.signals(key, version, result)
    store.unit_charts(key, version, result)
    assert _computed_since(before) == NOTHING_COMPUTED
    # the stored view is the one computed from the data up to then
    assert_results_equal(
        then_result,
        compute_indicators(restrict(load_condition_data(CONDITION, engine=registry), label), "hospital"),
    )


@sqlite_only
def test_prepare_pages_stores_the_view_as_it_was_at_a_recorded_meeting(registry):
    """A recorded meeting is the team page's "since the last meeting" date (vbhc.meeting.since_date, recorded):
    prepare_pages stores the view as it was then with its signals then (vbhc.minutes.recorded_since_dates), so the
    first team page after an import computes neither. Before, only the default meeting date and the start of the
    latest quarter were prepared: the page computed the view at the meeting (a case-mix fit) while it waited."""
    from vbhc import meeting, minutes
    from vbhc.access import local_viewer

    key = ViewKey(CONDITION, "hospital")
    store = ResultStore(registry)
    version = store.version()
    result = store.result(key, version)
    since, _ = meeting.since_date(None, None, meeting.data_complete_until(result.data))
    held = since - dt.timedelta(days=75)  # inside the previous quarter: a view of its own
    minutes.record_meeting(registry, local_viewer(), CONDITION, held, ["care_team"], [])
    results.prepare_pages(registry, [key])
    label = meeting.as_of_label(result, held)
    assert label not in (None, "", meeting.as_of_label(result, since))
    then = ViewKey(CONDITION, "hospital", label)
    assert store.has(then, version)
    assert store.has_signals(results.SignalsKey(then, held.isoformat()), version)
    before = _counts()
    store.signals(then, version, store.result(then, version), held)
    assert _computed_since(before) == NOTHING_COMPUTED
