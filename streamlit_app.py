"""Dashboard entry point: page setup, navigation, and the global filters (mirrored in the URL)."""

import streamlit as st

from ui import filters
from vbhc.i18n import t

st.set_page_config(page_title="VBHC", page_icon=":bar_chart:", layout="wide")

lang = filters.language()
pages = [
    st.Page("pages/overview.py", title=t("nav.overview", lang), icon=":material/dashboard:", default=True),
    st.Page("pages/condition_team.py", title=t("nav.condition_team", lang), icon=":material/groups:"),
    st.Page("pages/proms.py", title=t("nav.proms", lang), icon=":material/assignment:"),
    st.Page("pages/compare.py", title=t("nav.compare_departments", lang), icon=":material/compare_arrows:"),
    st.Page("pages/cost_value.py", title=t("nav.cost_value", lang), icon=":material/euro:"),
    st.Page("pages/data.py", title=t("nav.data", lang), icon=":material/database:"),
    st.Page("pages/methods.py", title=t("nav.methods", lang), icon=":material/menu_book:"),
]
page = st.navigation(pages)
# the filters live here, not in the pages, so they survive page switches; pages read filters.current()
st.session_state["_filters"] = filters.sidebar()
page.run()
