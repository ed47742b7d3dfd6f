"""The own hospital against a national registry's figures, in a real browser (issue 15): the quality directorate
imports the figures the demo generator writes in own-hospital mode on the Data page, the team page shows the own
hospital among them in the funnel plot with the source named, and the reports downloaded from the page name the
benchmark population too."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import StreamlitServer, signed_in_server
from tests.e2e.test_browser import RUN_TIMEOUT_MS, assert_no_exception, wait_for_run, wait_for_title
from tests.e2e.test_pages import upload_and_click
from tests.e2e.test_sign_in import sign_in

pytestmark = pytest.mark.browser

CYCLES = 1_000  # one condition: the own hospital has about 100 care cycles, each other hospital about as many
CONDITION, INDICATOR = "colorectal_cancer", "anastomotic_leak"  # the own hospital's planted outlier


def _own_hospital_registry(folder: Path, database_url: str) -> Path:
    """The demo as one hospital has it (as `vbhc demo --mode own` writes it, for one condition to keep the test
    short), without the external figures stored (the test imports them): the own hospital's patient rows imported
    and precomputed; returns the generator's external figures file."""
    import dataclasses
    import datetime as dt
    import json

    from vbhc.catalog import default_catalog
    from vbhc.demo import generate_demo
    from vbhc.demo_external import external_files, own_hospital_files
    from vbhc.ingest import import_files
    from vbhc.results import default_views, precompute
    from vbhc.store import get_engine, upgrade_schema

    catalog = default_catalog()
    one = dataclasses.replace(catalog, conditions={CONDITION: catalog.condition(CONDITION)})
    out = folder / "demo"
    result = generate_demo(out, cycles=CYCLES, catalog=one)
    own = json.loads(result.truth_path.read_text(encoding="utf-8"))["own_hospital"]
    files = own_hospital_files(result.import_order(), own, out / "own_hospital")
    every = get_engine(f"sqlite:///{folder / 'every_hospital.db'}")  # throw-away: every hospital's patient rows
    engine = get_engine(database_url)
    try:
        upgrade_schema(every)
        import_files(result.import_order(), every, imported_by="e2e")
        figures, _ = external_files(every, own, out, published=dt.date.today(), catalog=one)
        import_files(files, engine, imported_by="e2e")
        precompute(engine, default_views(engine, years=False))  # as `vbhc demo` does after its import
    finally:
        every.dispose()
        engine.dispose()
        get_engine.cache_clear()
    return figures


@pytest.fixture(scope="module")
def own_hospital_app(
    oidc_provider: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[StreamlitServer, Path]]:
    """The dashboard with OIDC sign-in on a registry of the own hospital's patient rows only, and the demo's
    external figures file."""
    folder = tmp_path_factory.mktemp("own-hospital")
    database_url = f"sqlite:///{folder / 'vbhc.db'}"
    server = signed_in_server(database_url, folder, oidc_provider)
    try:
        figures = _own_hospital_registry(folder, database_url)  # while the server boots
        server.wait_until_healthy()
        yield server, figures
    finally:
        server.stop()


def _no_traceback(page: Page) -> None:
    """No Streamlit exception box and no Python traceback anywhere on the page."""
    assert_no_exception(page)
    text = page.get_by_test_id("stMain").inner_text()
    assert "Traceback" not in text, text[:2000]


def _download(page: Page, button, path: Path) -> bytes:
    with page.expect_download(timeout=RUN_TIMEOUT_MS) as info:
        button.click()
    info.value.save_as(path)
    return path.read_bytes()


def test_quality_imports_national_figures_and_the_team_page_and_reports_name_the_source(
    page: Page, own_hospital_app: tuple[StreamlitServer, Path], artifacts: Path, tmp_path: Path
) -> None:
    import csv
    import json

    from openpyxl import load_workbook
    from pypdf import PdfReader

    from vbhc.demo_external import SOURCE

    server, figures = own_hospital_app
    truth = json.loads((figures.parent / "truth.json").read_text(encoding="utf-8"))
    own = next(h for h in truth["hospitals"] if h["own"])
    others = {h["name"] for h in truth["hospitals"] if not h["own"]}

    sign_in(page, server.url, "quality")
    # the Data page: the national registry's feedback, imported by the quality directorate (through its link: the
    # sign-in drew the start page, and loading /data again drew a page for nothing)
    page.get_by_test_id("stSidebarNav").get_by_role("link", name="Data").click()
    wait_for_title(page, "Data")
    uploader = page.locator(".st-key-external_upload").locator("input[type=file]")
    upload_and_click(page, uploader, figures, page.get_by_role("button", name="Import figures", exact=True), "import")
    expect(page.get_by_test_id("stAlertContentSuccess")).to_contain_text(figures.name, timeout=RUN_TIMEOUT_MS)
    wait_for_run(page)
    _no_traceback(page)
    expect(page.get_by_test_id("stMain")).to_contain_text(SOURCE)  # the stored publication, listed

    # the team page, one indicator in depth: the own hospital among the external figures, the source named
    page.goto(f"{server.url}/condition_team?condition={CONDITION}&indicator={INDICATOR}")
    wait_for_title(page, f"Colorectal cancer · {own['name']}")
    _no_traceback(page)
    main = page.get_by_test_id("stMain")
    expect(main.get_by_test_id("stCaptionContainer").filter(has_text=SOURCE).first).to_be_visible()
    funnel = main.get_by_role("tabpanel").filter(has=page.get_by_test_id("stVegaLiteChart")).first
    funnel.get_by_test_id("stVegaLiteChart").first.wait_for(timeout=RUN_TIMEOUT_MS)
    funnel.get_by_test_id("stPopover").first.get_by_role("button").click()
    body = page.get_by_test_id("stPopoverBody").filter(visible=True)
    data = _download(page, body.get_by_role("button", name="Chart data (CSV)"), tmp_path / "funnel.csv")
    page.keyboard.press("Escape")
    rows = list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))
    shown = {value for row in rows for value in row.values()}
    assert own["name"] in shown, rows[:3]  # the own hospital in the funnel ...
    assert len(others & shown) >= 5, rows[:3]  # ... among the other hospitals' figures
    page.screenshot(path=artifacts / "e2e-external-funnel.png")

    # the reports of this view, downloaded from the page, name the benchmark population
    page.get_by_role("tab", name="Verdicts").first.click()
    wait_for_run(page)
    excel = _download(page, page.get_by_role("button", name="Download Excel workbook"), tmp_path / "report.xlsx")
    workbook = load_workbook(io.BytesIO(excel), read_only=True)
    cells = [str(v) for ws in workbook.worksheets for row in ws.iter_rows(values_only=True) for v in row if v]
    assert any(SOURCE in c for c in cells), cells[:40]
    pdf = _download(page, page.get_by_role("button", name="Download PDF report"), tmp_path / "report.pdf")
    text = " ".join((p.extract_text() or "") for p in PdfReader(io.BytesIO(pdf)).pages)
    assert SOURCE in " ".join(text.split()), text[:2000]
    _no_traceback(page)
