"""The Data page's upload in a real browser: two files with the same name never overwrite each other."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.test_browser import RUN_TIMEOUT_MS, assert_no_exception, open_app, wait_for_run

pytestmark = pytest.mark.browser

COSTS = "cycle_id,activity,quantity,unit_cost\n{cycle},outpatient_visit,1,{cost}\n"


def test_two_uploads_with_the_same_name_are_refused_not_overwritten(page: Page, app_url: str) -> None:
    """Before, the second file overwrote the first in the temporary folder and the page reported success."""
    files = [
        {"name": "costs.csv", "mimeType": "text/csv", "buffer": COSTS.format(cycle="X1", cost="1").encode()},
        {"name": "costs.csv", "mimeType": "text/csv", "buffer": COSTS.format(cycle="X2", cost="2").encode()},
    ]
    open_app(page, f"{app_url}/data", "Data")
    page.locator(".st-key-upload_files").locator("input[type=file]").set_input_files(files)
    page.get_by_role("button", name="Import", exact=True).click()
    error = page.get_by_test_id("stAlertContentError")
    expect(error).to_contain_text("was not imported", timeout=RUN_TIMEOUT_MS)
    wait_for_run(page)
    assert_no_exception(page)
    expect(page.get_by_test_id("stAlertContentSuccess")).to_have_count(0)
    problems = page.locator("table[role=grid] td", has_text="2 files in this batch have this name")
    expect(problems.first).to_be_attached()
