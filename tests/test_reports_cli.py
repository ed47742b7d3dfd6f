"""`vbhc report`: both formats from the command line, clear errors (exit 2) and never a partial file."""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pandas as pd
import pytest
from openpyxl import load_workbook
from pypdf import PdfReader

from vbhc.catalog import default_catalog
from vbhc.cli import main
from vbhc.reports import ReportError, write_report


class ImportedDemo(NamedTuple):
    url: str
    #: a copy of the store folder of its default views, as the import stored them before any report was made
    views: Path | None


#: the small registry's conditions: a PROM condition (hip), heart failure (a department other than surgery: CAR) and
#: a cancer with survival (colorectal); `vbhc report --all` of every condition of the catalog is
#: test_report_all_after_an_import_reads_what_the_import_prepared's, on a registry of every condition
CONDITIONS = ("hip_osteoarthritis", "heart_failure", "colorectal_cancer")


def _import_demo(folder: Path, cycles: int, conditions: tuple[str, ...] | None = None) -> ImportedDemo:
    """A demo registry (`conditions` of the catalog, default every one) imported as `vbhc import` imports it: its
    default views (every condition's whole period at both unit levels) computed first and stored beside the
    database, and a copy of them (`views`) as the import stored them before any report was made."""
    import shutil
    from dataclasses import replace

    from vbhc.demo import generate_demo
    from vbhc.ingest import import_files
    from vbhc.results import ResultStore, default_views, precompute
    from vbhc.store import get_engine

    catalog = default_catalog()
    if conditions is not None:
        catalog = replace(catalog, conditions={c: catalog.condition(c) for c in conditions})
    url = f"sqlite:///{folder / 'demo.db'}"
    result = generate_demo(folder / "files", cycles=cycles, catalog=catalog)
    engine = get_engine(url)
    import_files(result.import_order(), engine, imported_by="test")
    with pytest.MonkeyPatch.context() as env:
        env.delenv("VBHC_RESULTS_DIR", raising=False)  # the store beside the database, which the tests read
        precompute(engine, default_views(engine, years=False))
        stored = ResultStore(engine).folder
    views = None
    if stored is not None and stored.is_dir():
        views = folder / "imported-views"
        shutil.copytree(stored, views)
    engine.dispose()
    return ImportedDemo(url, views)


@pytest.fixture(scope="module")
def imported_demo(tmp_path_factory) -> ImportedDemo:
    """A small demo registry of three conditions (CONDITIONS; 750 cycles, about as many per condition as the
    1,500 of all seven) for the command line, its default views stored beside the database, where the tests'
    reports read them.

    Why: the reports of nearly every test here need some of those views, and what these tests check of a
    condition's report three conditions show as well as seven (set up in ~3.2 s against ~5 s for seven)."""
    return _import_demo(tmp_path_factory.mktemp("cli_demo"), 750, CONDITIONS)


@pytest.fixture(scope="module")
def every_condition(small_demo_registry, tmp_path_factory) -> ImportedDemo:
    """A registry of every condition of the catalog for the one test of `vbhc report --all` that must cover every
    condition: a copy of the suite's small demo registry (tests/conftest.py, 4,000 cycles, built once per run),
    its stored views (every condition's whole period at both levels, as `vbhc import` stores them, and every year
    at hospital level) the copy's `views`.

    Why: a demo of every condition generated, imported and its views computed for this test alone (1,500 cycles)
    cost ~14 s of CPU of a registry the run has already built."""
    from tests.registry_copy import copy_registry
    from vbhc.results import ResultStore
    from vbhc.store import get_engine

    engine, _ = small_demo_registry
    folder = tmp_path_factory.mktemp("cli_every_condition")
    with pytest.MonkeyPatch.context() as env:
        env.delenv("VBHC_RESULTS_DIR", raising=False)  # the store beside the database, as _import_demo's
        copy = copy_registry(engine, folder / "demo.db")
        views = ResultStore(copy).folder
    url = copy.url.render_as_string(hide_password=False)
    copy.dispose()
    get_engine.cache_clear()
    return ImportedDemo(url, views if views is not None and views.is_dir() else None)


@pytest.fixture
def every_condition_db(every_condition, monkeypatch) -> Iterator[ImportedDemo]:
    """The command line on `every_condition` for one test: VBHC_DATABASE_URL names it, and the engine cache is
    emptied before and after (get_engine() keeps the first default engine of the process), so neither this test
    nor the next reads the other registry."""
    from vbhc.store import get_engine

    monkeypatch.setenv("VBHC_DATABASE_URL", every_condition.url)
    get_engine.cache_clear()
    yield every_condition
    get_engine.cache_clear()


@pytest.fixture(autouse=True)
def _database(imported_demo, monkeypatch):
    monkeypatch.setenv("VBHC_DATABASE_URL", imported_demo.url)
    monkeypatch.delenv("VBHC_SUPPRESS_BELOW", raising=False)


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_xlsx_reads_survival_as_deaths_against_expected(tmp_path, monkeypatch):
    """Without suppression (internal use) the survival rows carry their verdict in words: the deaths against the
    Cox model's expected deaths and the SMR, in the report's language, no empty or NaN cells."""
    monkeypatch.setenv("VBHC_SUPPRESS_BELOW", "0")
    out = tmp_path / "survival.xlsx"
    args = ["report", "--condition", "colorectal_cancer", "--format", "xlsx", "--lang", "nl", "--out", str(out)]
    assert main(args) == 0
    wb = load_workbook(out, read_only=True)  # values only: not every sheet's cells and styles built first
    label = default_catalog().condition("colorectal_cancer").indicator("survival_5y").label("nl")
    rows = [r for r in wb["Darmkanker"].iter_rows(values_only=True) if label in r]
    wb.close()
    assert len(rows) == 10
    verdicts = [c for r in rows for c in r if isinstance(c, str) and " overleden tegenover " in c]
    assert verdicts and all("(SMR " in v for v in verdicts)
    assert not any(isinstance(c, str) and c.lower() in ("nan", "none") for r in rows for c in r)


def test_pdf_for_one_condition_team(tmp_path, capsys):
    out = tmp_path / "team.pdf"
    args = ["report", "--condition", "hip_osteoarthritis", "--format", "pdf", "--lang", "nl", "--out", str(out)]
    assert main(args) == 0
    reader = PdfReader(out)
    first = " ".join(reader.pages[0].extract_text().split())
    assert "Rapport uitkomstenoverleg" in first and "Heupartrose" in first  # the own hospital, by its name:
    assert "Universitair Medisch Centrum Veenmeer" in first and "H01" not in first
    assert len(reader.pages) >= 5


def test_pdf_for_a_chosen_unit_and_level(tmp_path):
    out = tmp_path / "dept.pdf"
    args = ["report", "--condition", "heart_failure", "--level", "department", "--unit", "H02/CAR"]
    assert main([*args, "--format", "pdf", "--lang", "en", "--out", str(out)]) == 0
    first = PdfReader(out).pages[0].extract_text()
    assert "Oosterhaven Ziekenhuis – Cardiologie" in first and "H02/CAR" not in first  # the unit by its name


def _pages(path: Path) -> tuple[list[str], list[bytes]]:
    """A PDF's page texts (times of day left out: the title page says when the file was made) and the pixels of
    every chart on its pages."""
    import re

    reader = PdfReader(path)
    # when it was made, as ISO or as the cover writes it ("5 Dec 2026, 04:30"): two reports a minute apart differ
    made = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}|\d{1,2} [^\W\d]{3,9}\.? \d{4}, \d{2}:\d{2}")
    texts = [made.sub("<time>", page.extract_text()) for page in reader.pages]
    images = [image.image.convert("RGB").tobytes() for page in reader.pages for image in page.images]
    return texts, images


def test_pdf_from_stored_results_and_charts_equals_a_fresh_one(tmp_path, monkeypatch):
    """The second report reads the indicator results and the rendered charts from the results store (computes and
    draws nothing) and says the same as one computed and drawn without the store: every page's text, every chart's
    pixels. Heart failure: on this registry its team's report draws three charts, and rows of its PROM response
    and cost tables are withheld (withheld against the grid's other periods, all dates and every year, which the
    first report computes and stores too), so there are charts and withheld cells to compare."""
    from vbhc import results

    args = ["report", "--condition", "heart_failure", "--format", "pdf", "--lang", "en", "--out"]
    monkeypatch.setenv("VBHC_RESULTS_DIR", str(tmp_path / "store"))
    start = dict(results.compute_counts)
    assert main([*args, str(tmp_path / "first.pdf")]) == 0  # computes, draws and stores
    assert (
        results.compute_counts["chart"] >= start["chart"] + 2
        # the PROM response and cost tables of the view, and of every other period of the grid (all dates and
        # each year) that the file withholds its own against
        and results.compute_counts["table"] > start["table"] + 2
    )
    before = dict(results.compute_counts)
    assert main([*args, str(tmp_path / "stored.pdf")]) == 0
    assert {k: results.compute_counts[k] - before[k] for k in before} == dict.fromkeys(before, 0)
    monkeypatch.setenv("VBHC_RESULTS_DIR", "off")
    assert main([*args, str(tmp_path / "fresh.pdf")]) == 0
    stored_texts, stored_images = _pages(tmp_path / "stored.pdf")
    fresh_texts, fresh_images = _pages(tmp_path / "fresh.pdf")
    assert stored_texts == fresh_texts
    assert any("withheld withheld withheld" in text for text in fresh_texts)  # a row of withheld cells
    assert len(fresh_images) >= 2 and stored_images == fresh_images


def _cells(path: Path) -> dict[str, list[tuple]]:
    """Every sheet's cell values (the time the workbook was made left out)."""
    import datetime as dt

    book = load_workbook(path, read_only=True)  # the values as parsed, without building every cell's style first
    try:
        return {
            ws.title: [
                tuple(None if isinstance(v, dt.datetime) else v for v in row) for row in ws.iter_rows(values_only=True)
            ]
            for ws in book.worksheets
        }
    finally:
        book.close()


def test_workbook_from_stored_results_and_tables_equals_a_fresh_one(tmp_path, monkeypatch, imported_demo):
    """The second workbook reads the indicator results and the PROM response and cost tables from the results
    store and holds the same cells as one computed without the store. A PROM condition and a cancer (survival
    rows); the store starts with the views the import stored (a report storing its own views is
    test_pdf_from_stored_results_and_charts_equals_a_fresh_one's), so the first workbook computes the tables."""
    from tests.registry_copy import copy_results
    from vbhc import results
    from vbhc.store import get_engine

    args = ["report", "--condition", "hip_osteoarthritis", "--condition", "colorectal_cancer", "--out"]
    monkeypatch.setenv("VBHC_RESULTS_DIR", str(tmp_path / "store"))
    copy_results(imported_demo.views, results.ResultStore(get_engine(imported_demo.url)))
    start = dict(results.compute_counts)
    assert main([*args, str(tmp_path / "first.xlsx")]) == 0  # reads the views, computes and stores the tables
    # PROM response and costs of both conditions, for the view and the grid's other periods
    assert results.compute_counts["table"] > start["table"] + 4
    before = dict(results.compute_counts)
    assert main([*args, str(tmp_path / "stored.xlsx")]) == 0
    assert {k: results.compute_counts[k] - before[k] for k in before} == dict.fromkeys(before, 0)
    monkeypatch.setenv("VBHC_RESULTS_DIR", "off")
    assert main([*args, str(tmp_path / "fresh.xlsx")]) == 0
    assert _cells(tmp_path / "stored.xlsx") == _cells(tmp_path / "fresh.xlsx")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--condition", "gout"], "unknown condition 'gout'; choose from: breast_cancer, colorectal_cancer"),
        (["--all", "--period", "2024Q5"], "period '2024Q5' not understood"),
        (["--all", "--level", "ward"], "unknown unit level 'ward'; choose from: hospital, department, condition_team"),
        (["--all", "--format", "docx"], "unknown format 'docx'; choose from: xlsx, pdf"),
        (["--all", "--lang", "de"], "unknown language 'de'; choose from: nl, en"),
        (["--all", "--period", "1999"], "no care cycles in period '1999"),
        (["--condition", "hip_osteoarthritis", "--period", "1999"], "no care cycles for condition 'hip_osteo"),
        (["--condition", "hip_osteoarthritis", "--format", "pdf", "--unit", "H99"], "unknown unit 'H99'"),
        ([], "give --condition C (may repeat) or --all"),
    ],
)
def test_clear_errors_and_no_file(tmp_path, capsys, args, message):
    out = tmp_path / "report.out"
    assert main(["report", *args, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert len(err.strip().splitlines()) == 1  # one line, no traceback
    assert _files(tmp_path) == []


def test_unwritable_paths(tmp_path, capsys):
    missing = tmp_path / "no" / "such" / "folder" / "r.xlsx"
    assert main(["report", "--all", "--out", str(missing)]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["report", "--all", "--out", str(tmp_path)]) == 2
    assert "it is a folder" in capsys.readouterr().err


def test_failure_while_building_leaves_the_old_file_and_no_partial_file(tmp_path, monkeypatch, capsys):
    out = tmp_path / "r.xlsx"
    out.write_bytes(b"last month's report")

    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr("vbhc.reports.excel.build_workbook", broken)  # imported when used
    # one line for the user, never a traceback; the details with VBHC_DEBUG=1
    assert main(["report", "--condition", "heart_failure", "--out", str(out)]) == 1
    assert "unexpected error (RuntimeError)" in capsys.readouterr().err
    monkeypatch.setenv("VBHC_DEBUG", "1")
    with pytest.raises(RuntimeError, match="disk on fire"):
        main(["report", "--condition", "heart_failure", "--out", str(out)])
    assert out.read_bytes() == b"last month's report"
    assert _files(tmp_path) == ["r.xlsx"]


def test_write_report_is_atomic_and_cleans_up(tmp_path, monkeypatch):
    out = tmp_path / "r.pdf"
    write_report(out, b"%PDF first")
    assert out.read_bytes() == b"%PDF first"

    def fail(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(ReportError, match="No space left on device"):
        write_report(out, b"%PDF second")
    assert out.read_bytes() == b"%PDF first"
    assert _files(tmp_path) == ["r.pdf"]


def test_suppression_threshold_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("VBHC_SUPPRESS_BELOW", "1000000")
    out = tmp_path / "r.xlsx"
    assert main(["report", "--condition", "heart_failure", "--lang", "en", "--out", str(out)]) == 0
    wb = load_workbook(io.BytesIO(out.read_bytes()))
    cover = " ".join(str(c.value) for row in wb["Cover"].iter_rows() for c in row if c.value)
    assert "fewer than 1,000,000 care cycles" in cover
    numbers = [c.value for row in wb["Summary"].iter_rows(min_row=4) for c in row[4:9] if c.value is not None]
    assert numbers and set(numbers) == {"withheld"}  # the one neutral marker (vbhc.reports.privacy)


def _events(action: str):
    import json

    from vbhc import audit
    from vbhc.store import get_engine

    events = audit.read(get_engine(os.environ["VBHC_DATABASE_URL"]), action=action)
    return events.assign(detail=[json.loads(d) for d in events["detail"]])


def test_every_written_report_is_in_the_audit_log(tmp_path, monkeypatch):
    """As the dashboard's downloads: who, file name, sha256, conditions and format, for every file written."""
    from vbhc import audit

    monkeypatch.setenv("VBHC_USER", "os-gebruiker")
    before = len(_events("export"))
    out = tmp_path / "team.xlsx"
    args = ["report", "--condition", "heart_failure", "--lang", "en", "--period", "2021-2025", "--out", str(out)]
    assert main([*args, "--as", "kwaliteit@example.org"]) == 0
    # a report of several conditions records them all and no single one (two, not --all: --all's PDF drew ~20
    # charts for nothing this test reads; test_report_all_after_an_import_... makes --all)
    pdf = tmp_path / "two.pdf"
    two = ["--condition", "hip_osteoarthritis", "--condition", "heart_failure"]
    assert main(["report", *two, "--format", "pdf", "--out", str(pdf)]) == 0
    events = _events("export").iloc[before:]
    assert len(events) == 2
    first, second = events.iloc[0], events.iloc[1]
    assert first["user_id"] == "kwaliteit@example.org" and first["condition"] == "heart_failure"
    assert first["sha256"] == audit.sha256_of(out.read_bytes())
    assert {
        "what": "excel_report",
        "file": "team.xlsx",
        "format": "xlsx",
        "conditions": ["heart_failure"],
        "period": "2021-2025",
        "via": "cli",
        "os_user": "os-gebruiker",
    }.items() <= first["detail"].items()
    assert second["user_id"] == "os-gebruiker" and second["sha256"] == audit.sha256_of(pdf.read_bytes())
    assert second["detail"]["format"] == "pdf"
    assert second["detail"]["conditions"] == ["hip_osteoarthritis", "heart_failure"]
    assert second["detail"]["file"] == "two.pdf" and pd.isna(second["condition"])


@pytest.mark.parametrize(
    ("args", "reason", "reden"),
    [
        (["--condition", "gout"], "unknown condition 'gout'", "onbekende aandoening 'gout'; kies uit: "),
        (["--all", "--format", "docx"], "unknown format 'docx'", "onbekend formaat 'docx'; kies uit: xlsx, pdf"),
        (["--all", "--period", "2024Q5"], "period '2024Q5' not understood", "periode '2024Q5' niet begrepen"),
        ([], "give --condition C (may repeat) or --all", "geef --condition C (mag vaker) of --all"),
    ],
)
def test_refused_reports_are_in_the_audit_log(tmp_path, monkeypatch, args, reason, reden):
    """A refused report is recorded with its reason, which the audit log reads in its reader's language (the
    command line says it in English)."""
    from vbhc import audit
    from vbhc.store import get_engine

    monkeypatch.setenv("VBHC_USER", "os-gebruiker")
    before = len(_events("export_refused"))
    assert main(["report", *args, "--out", str(tmp_path / "r.xlsx"), "--as", "iemand"]) == 2
    refused = _events("export_refused").iloc[before:]
    assert len(refused) == 1
    event = refused.iloc[0]
    assert event["user_id"] == "iemand" and pd.isna(event["sha256"])
    assert event["detail"]["file"] == "r.xlsx" and event["detail"]["os_user"] == "os-gebruiker"
    stored = audit.read(get_engine(os.environ["VBHC_DATABASE_URL"]), action="export_refused").iloc[-1]["detail"]
    assert f"Reason: {reason}" in audit.describe(stored, "en")
    assert f"Reden: {reden}" in audit.describe(stored, "nl")
    assert _files(tmp_path) == []


def test_a_reason_this_version_cannot_read_is_shown_as_stored():
    """An older event's reason (English text) and a kept message this version does not name, or whose values it
    does not take, are shown as stored, never dropped or raised."""
    from vbhc import audit

    older = '{"what": "report", "reason": "unknown format \'docx\'"}'
    assert audit.describe(older, "nl").endswith("Reden: unknown format 'docx'")
    for kept in (
        {"message": "report_error.from_a_newer_version", "values": {}},
        {"message": "report_error.unknown_format", "values": {"colour": "red"}},
        {"message": "nav.overview", "values": {}},  # only a refusal's messages are read from the catalog
    ):
        shown = audit.describe(json.dumps({"reason": kept}), "nl")
        assert shown == "Reden: " + json.dumps(kept, ensure_ascii=False, sort_keys=True)


@pytest.mark.report_charts
def test_report_all_after_an_import_reads_what_the_import_prepared(tmp_path, monkeypatch, capsys, every_condition_db):
    """`vbhc report --all`, both formats, on a registry of every condition of the catalog. `vbhc import` (its
    precompute, as `vbhc precompute`) renders and stores the charts of `vbhc report --all --format pdf` under the
    digests the report asks for: the first PDF then computes and draws nothing. The preparation makes no report,
    so it writes no audit record; a second preparation renders nothing again. The workbook of every condition
    has a sheet per condition and the survival rows of every unit, no temporary file left."""
    import re

    from tests.registry_copy import copy_results
    from vbhc import audit, results
    from vbhc.store import get_engine

    monkeypatch.setenv("VBHC_RESULTS_DIR", str(tmp_path / "store"))
    monkeypatch.setenv("VBHC_WARM_UP_YEARS_UP_TO", "0")  # the whole period only, as `vbhc import` does
    engine = get_engine(os.environ["VBHC_DATABASE_URL"])
    # a store of its own with the views the import stored before its charts (computed once for the module):
    # `vbhc precompute` reads them, draws the report's charts in a child process and prepares the pages
    copy_results(every_condition_db.views, results.ResultStore(engine))
    events = len(audit.read(engine))
    start = dict(results.compute_counts)
    with monkeypatch.context() as pages:
        # no page preparation beside the child (signals, SPC charts, PROM-response, cost, PREM and registry
        # tables: ~9 s of CPU, a fifth of this test), which no report reads: a report that did would compute it
        # below and fail. `vbhc import` preparing the pages is
        # tests/test_results.py::test_cli_import_precomputes_the_default_views
        pages.setattr(results, "prepare_pages", lambda *args, **kwargs: 0)
        assert main(["precompute"]) == 0  # the charts in a child process
    rendered = re.search(r"Report charts \(vbhc report --all --format pdf\): (\d+) rendered", capsys.readouterr().out)
    conditions = len(default_catalog().conditions)
    assert rendered and int(rendered.group(1)) > 2 * conditions and results.compute_counts["chart"] == start["chart"]
    assert len(audit.read(engine)) == events  # no report was made
    before = dict(results.compute_counts)
    assert main(["precompute", "--charts-only"]) == 0
    assert results.compute_counts == before
    assert ": 0 rendered" in capsys.readouterr().out
    assert main(["report", "--all", "--format", "pdf", "--out", str(tmp_path / "first.pdf")]) == 0
    assert {k: results.compute_counts[k] - before[k] for k in before} == dict.fromkeys(before, 0)
    # a funnel plot and trend per key indicator (counted: no need to decode them)
    assert sum(len(page.images) for page in PdfReader(tmp_path / "first.pdf").pages) > 2 * conditions
    assert len(audit.read(engine)) == events + 1  # the report itself
    capsys.readouterr()

    out = tmp_path / "all.xlsx"
    before = dict(results.compute_counts)
    assert main(["report", "--all", "--format", "xlsx", "--lang", "en", "--out", str(out)]) == 0
    assert {k: results.compute_counts[k] - before[k] for k in before} == dict.fromkeys(before, 0)
    assert "Report written to" in capsys.readouterr().out
    wb = load_workbook(out, read_only=True)  # values only: not every sheet's cells and styles built first
    assert wb.sheetnames[:2] == ["Cover", "Summary"]
    every = {c.label("en") for c in default_catalog().conditions.values()}
    assert every | {"PROMs", "Costs", "Methods"} <= set(wb.sheetnames)
    # survival rows (the demo's vital status is imported), one per unit, withheld like the others at this size
    survival = [r for r in wb["Colorectal cancer"].iter_rows(values_only=True) if "Overall survival at 5 years" in r]
    wb.close()
    assert len(survival) == 10
    assert not any(isinstance(c, str) and c.lower() in ("nan", "none") for r in survival for c in r)
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == ["all.xlsx", "first.pdf"]  # no temporary file
    assert len(audit.read(engine)) == events + 2
