"""Running the app in-process (AppTest) on the page a test is about."""

from __future__ import annotations

import os
from pathlib import Path

from streamlit.testing.v1 import AppTest

#: read by streamlit_app.py: the navigation's default page, the one a first run draws
START_PAGE = "VBHC_START_PAGE"


def run_on_page(at: AppTest, page: str) -> AppTest:
    """The app's first run, drawing `page` (e.g. "views/data.py") instead of the overview; later runs ask for it.

    Why: a test about one page used to run the overview first (st.navigation registers the pages on a first run,
    AppTest.switch_page needs that) and then the page, so every such test paid for the overview as well; the
    overview is tested on its own. The start page is chosen as benchmarks/page_speed.py chooses it
    (VBHC_START_PAGE), for this first run only; then switch_page names the page for the later runs, as before, and
    fails (ValueError) for a page the viewer's navigation does not list (the first run then drew another one)."""
    previous = os.environ.get(START_PAGE)
    os.environ[START_PAGE] = Path(page).stem
    try:
        at.run()
    finally:
        if previous is None:
            os.environ.pop(START_PAGE, None)
        else:
            os.environ[START_PAGE] = previous
    return at.switch_page(page)
