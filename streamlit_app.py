"""Dashboard entry point: page setup, navigation, and the global filters (mirrored in the URL)."""

import os
import time

import streamlit as st

from ui import data, filters
from vbhc.i18n import t
from vbhc.settings import database_url

_started = time.perf_counter()
st.set_page_config(page_title="VBHC", page_icon=":bar_chart:", layout="wide")
data.start_warm_up(database_url(), data.version())

lang = filters.language()
# VBHC_START_PAGE lets benchmarks/page_speed.py time a page on its own (default: the overview)
start = os.environ.get("VBHC_START_PAGE", "overview")
PAGES = [
    ("overview", "nav.overview", ":material/dashboard:"),
    ("condition_team", "nav.condition_team", ":material/groups:"),
    ("proms", "nav.proms", ":material/assignment:"),
    ("compare", "nav.compare_departments", ":material/compare_arrows:"),
    ("cost_value", "nav.cost_value", ":material/euro:"),
    ("data", "nav.data", ":material/database:"),
    ("methods", "nav.methods", ":material/menu_book:"),
]
pages = [st.Page(f"views/{name}.py", title=t(key, lang), icon=icon, default=name == start) for name, key, icon in PAGES]
page = st.navigation(pages)
# the filters live here, not in the pages, so they survive page switches; pages read filters.current()
st.session_state["_filters"] = filters.sidebar()
page.run()
# server-side time of this run, read by benchmarks/page_speed.py
st.session_state["_run_seconds"] = time.perf_counter() - _started
