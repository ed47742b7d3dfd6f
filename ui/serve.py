"""The server process `vbhc serve` starts: Streamlit's own command line (`python -m ui.serve run streamlit_app.py
...` takes the same arguments as `streamlit run`), with the libraries every page needs loaded in the background
from the moment the process starts.

Why: Streamlit runs the app's script only when a browser has loaded Streamlit's page and opened its session, and
that first run then spent most of its time importing pandas, SciPy's statistics, SQLAlchemy and SQLModel (seconds
on a busy 2-core host), after the 1-3 s the browser took to load the page, during which the server was idle.
Loaded meanwhile, a restarted server draws its first page that much sooner. Only third-party libraries are loaded
here, none of which imports the project's modules, so this thread and a page's script thread cannot wait for each
other's imports; a library that fails to load is left to the page that imports it (which shows the error).
"""

from __future__ import annotations

import contextlib
import importlib
import threading
import time

#: Heaviest first: what the script thread would otherwise import before drawing anything (issue 13, item 2)
PRELOAD = ("pandas", "scipy.stats", "sqlalchemy", "sqlmodel", "pyarrow", "babel.numbers", "jinja2")


def preload() -> None:
    """Once Streamlit's runtime exists (the server is about to listen: its own start is not slowed down), import
    PRELOAD."""
    from streamlit import runtime

    while not runtime.exists():
        time.sleep(0.02)
    for name in PRELOAD:
        with contextlib.suppress(Exception):
            importlib.import_module(name)


def main() -> None:
    threading.Thread(target=preload, name="vbhc-preload", daemon=True).start()
    from streamlit.web.cli import main as streamlit_main

    # as `python -m streamlit` calls it, so the server sees the same command line
    streamlit_main(prog_name="streamlit")


if __name__ == "__main__":
    main()
