"""The Data page's upload in a real browser: two files with the same name never overwrite each other."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.test_browser import RUN_TIMEOUT_MS, assert_no_exception, open_app, screenshot, wait_for_run
from tests.e2e.test_pages import upload_and_click
from vbhc.i18n import t
from vbhc.ingest import Rule

pytestmark = pytest.mark.browser

COSTS = "cycle_id,activity,quantity,unit_cost\n{cycle},outpatient_visit,1,{cost}\n"


def test_two_uploads_with_the_same_name_are_refused_not_overwritten(page: Page, app_url: str, artifacts: Path) -> None:
    """Before, the second file overwrote the first in the temporary folder and the page reported success. In Dutch:
    the refusal, its problem table's headers and the rule itself are Dutch (the rules were English there)."""
    files = [
        {"name": "costs.csv", "mimeType": "text/csv", "buffer": COSTS.format(cycle="X1", cost="1").encode()},
        {"name": "costs.csv", "mimeType": "text/csv", "buffer": COSTS.format(cycle="X2", cost="2").encode()},
    ]
    open_app(page, f"{app_url}/data?lang=nl", t("data.title", "nl"))
    uploader = page.locator(".st-key-upload_files").locator("input[type=file]")
    button = page.get_by_role("button", name=t("data.import_button", "nl"), exact=True)
    upload_and_click(page, uploader, files, button, "import")
    error = page.get_by_test_id("stAlertContentError")
    expect(error).to_contain_text("Niet geïmporteerd:", timeout=RUN_TIMEOUT_MS)
    wait_for_run(page)
    assert_no_exception(page)
    expect(page.get_by_test_id("stAlertContentSuccess")).to_have_count(0)
    rule = Rule("read.duplicate_name", count=2)
    problems = page.locator(".vbhc-table td", has_text=rule.in_language("nl"))  # ui.render.static_table
    expect(problems.first).to_be_attached()
    assert rule.in_language("nl") != str(rule)
    screenshot(page, artifacts / "data_import_refused-nl.png")


def test_a_file_of_another_type_is_refused_in_the_readers_language(page: Page, app_url: str) -> None:
    """Before, the uploader's type= let Streamlit's browser code refuse a PDF itself, in English on a Dutch page
    ("application/pdf files are not allowed."), and the import button never showed. Now the importer refuses
    it, naming the file, in the catalog's Dutch."""
    pdf = {"name": "verslag.pdf", "mimeType": "application/pdf", "buffer": b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n"}
    open_app(page, f"{app_url}/data?lang=nl", t("data.title", "nl"))
    uploader = page.locator(".st-key-upload_files").locator("input[type=file]")
    button = page.get_by_role("button", name=t("data.import_button", "nl"), exact=True)
    upload_and_click(page, uploader, [pdf], button, "import")
    expect(page.get_by_test_id("stAlertContentError")).to_contain_text("verslag.pdf", timeout=RUN_TIMEOUT_MS)
    wait_for_run(page)
    assert_no_exception(page)
    rule = Rule("read.unsupported_type").in_language("nl")
    expect(page.locator(".vbhc-table td", has_text=rule).first).to_be_attached()
    expect(page.get_by_text("not allowed")).to_have_count(0)
