"""The address a page is asked for (st.context.url): the start page's own address and an address that names no
page are answered by the app in the reader's language, not by Streamlit's English "Page not found" box (the
browser side: tests/e2e/test_addresses.py)."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from tests.apptest import START_PAGE
from ui import auth
from vbhc.i18n import t
from vbhc.settings import PROJECT_ROOT


@pytest.mark.parametrize(
    ("url", "base", "name"),
    [
        ("http://localhost:8501/", "", ""),
        ("http://localhost:8501", "", ""),
        (None, "", ""),
        ("http://localhost:8501/data", "", "data"),
        ("http://localhost:8501/data/", "", "data"),
        ("https://vbhc.example.org/dashboard/data", "dashboard", "data"),
        ("https://vbhc.example.org/dashboard/", "/dashboard/", ""),
        ("http://localhost:8501/Data%20oud", "", "Data oud"),
        ("http://localhost:8501/a/b", "", "a/b"),
        ("http://localhost:8501/%20", "", ""),
    ],
)
def test_the_page_name_an_address_asks_for(url, base, name):
    assert auth.address_name(url, base) == name


def _at_address(monkeypatch, address: str, start: str, lang: str) -> AppTest:
    """The app's first run for a browser at `address` (st.context.url is the browser's, None in AppTest)."""
    from streamlit.runtime.context import ContextProxy

    monkeypatch.setattr(ContextProxy, "url", property(lambda self: f"http://localhost:8501{address}"))
    monkeypatch.setenv(START_PAGE, start)
    at = AppTest.from_file(str(PROJECT_ROOT / "streamlit_app.py"), default_timeout=120)
    at.query_params["lang"] = lang
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


@pytest.mark.parametrize("lang", ["en", "nl"])
def test_the_start_pages_own_address_draws_the_start_page(small_demo_db, local_mode, monkeypatch, lang):
    """At /methods with the methods page as the start page: the root's page (which is not the start page in
    such a run, so that the start page answers at its own address) goes on to the start page."""
    at = _at_address(monkeypatch, "/methods", "methods", lang)
    assert [h.value for h in at.title] == [t("methods.title", lang)]
    # what the browser's address is matched against (AppTest asks for pages by their hash, never by address):
    # the start page answers at its own address, where it answered only at "" (the English box at /methods)
    addresses = {info.get("url_pathname"): info.get("script_path") for info in at._registered_pages.values()}
    assert str(addresses.get("methods", "")).endswith("views/methods.py"), addresses
    # at the root, the start page as before
    root = _at_address(monkeypatch, "/", "methods", lang)
    assert [h.value for h in root.title] == [t("methods.title", lang)]
    assert str({i.get("url_pathname"): i.get("script_path") for i in root._registered_pages.values()}[""]).endswith(
        "views/methods.py"
    )


@pytest.mark.parametrize("lang", ["en", "nl"])
def test_an_address_that_names_no_page_gets_a_page(small_demo_db, local_mode, monkeypatch, lang):
    """At /typo a hidden page of that address answers (the browser shows it: tests/e2e/test_addresses.py), where
    no page matched and Streamlit's browser code said "Page not found" in English."""
    at = _at_address(monkeypatch, "/typo", "methods", lang)
    titles = {info.get("url_pathname"): info.get("page_name") for info in at._registered_pages.values()}
    assert titles.get("typo") == t("app.page_unknown_title", lang)
