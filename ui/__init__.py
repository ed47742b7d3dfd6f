"""Streamlit glue shared by the pages: global filters, cached loaders and small render helpers.

Kept out of vbhc/ (which never imports Streamlit); pages stay thin: read filters -> call vbhc -> render.
"""
