"""Every address of the dashboard answers in the reader's language: the start page's own address (/data for the
admin, whose start page is served at "/") shows that page, and an address that names no page says so, where
Streamlit's browser code showed its English "Page not found" box over the start page."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.e2e.conftest import StreamlitServer
from tests.e2e.test_browser import RUN_TIMEOUT_MS, assert_no_exception, wait_for_run, wait_for_title
from tests.e2e.test_sign_in import sign_in
from vbhc.i18n import t


def _no_streamlit_box(page: Page) -> None:
    assert_no_exception(page)
    assert page.get_by_role("dialog").count() == 0  # Streamlit's English "Page not found"


def test_the_start_pages_own_address_shows_that_page(page: Page, signed_app: StreamlitServer) -> None:
    """The admin's start page (Data) is served at "/"; its own address, /data (a colleague's link), shows it too,
    in the reader's language, and a later run (another language) stays on it."""
    sign_in(page, signed_app.url, "admin")
    for lang in ("nl", "en"):
        page.goto(f"{signed_app.url}/data?lang={lang}")
        wait_for_title(page, t("data.title", lang))
        _no_streamlit_box(page)
        expect(page.get_by_text(t("app.page_unknown", lang))).to_have_count(0)
        expect(page.get_by_text(t("app.page_not_listed", lang))).to_have_count(0)
    page.goto(signed_app.url)  # the root still serves the start page
    wait_for_title(page, t("data.title", "en"))
    _no_streamlit_box(page)


def test_an_address_that_names_no_page_says_so_in_the_readers_language(page: Page, signed_app: StreamlitServer) -> None:
    sign_in(page, signed_app.url, "quality")
    for lang, path in (("nl", "overzicht"), ("en", "no-such-page"), ("nl", "Data%20oud")):
        page.goto(f"{signed_app.url}/{path}?lang={lang}")
        wait_for_title(page, t("app.page_unknown_title", lang))
        expect(page.get_by_text(t("app.page_unknown", lang))).to_be_visible()
        _no_streamlit_box(page)
        assert page.get_by_test_id("stDataFrame").count() == 0
    # its link leads to the start page
    page.get_by_role("link", name=t("app.to_start_page", "nl", page=t("nav.overview", "nl"))).click()
    wait_for_title(page, t("app.title", "nl"))
    _no_streamlit_box(page)


def test_local_mode_addresses(page: Page, app_url: str) -> None:
    """The single-user demo: its start page's own address (/overview) and an unknown one."""
    page.goto(f"{app_url}/overview")
    page.get_by_test_id("stSidebarNav").wait_for(timeout=RUN_TIMEOUT_MS)
    wait_for_run(page)
    wait_for_title(page, t("app.title", "en"))
    _no_streamlit_box(page)
    page.goto(f"{app_url}/typo?lang=nl")
    wait_for_title(page, t("app.page_unknown_title", "nl"))
    _no_streamlit_box(page)
