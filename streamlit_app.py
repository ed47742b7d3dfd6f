"""Dashboard entry point: navigation and page setup. Domain logic lives in vbhc/, pages stay thin."""

import streamlit as st

st.set_page_config(page_title="VBHC outcomes", page_icon=":bar_chart:", layout="wide")

navigation = st.navigation([st.Page("pages/overview.py", title="Overview", icon=":material/dashboard:", default=True)])
navigation.run()
