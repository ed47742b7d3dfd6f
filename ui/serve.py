"""The server process `vbhc serve` starts: Streamlit's own command line (`python -m ui.serve run streamlit_app.py
...` takes the same arguments as `streamlit run`), with the libraries every page needs loaded in the background
from the moment the process starts.

Why: Streamlit runs the app's script only when a browser has loaded Streamlit's page and opened its session, and
that first run then spent most of its time importing pandas, SciPy's statistics, SQLAlchemy and SQLModel (seconds
on a busy 2-core host), after the 1-3 s the browser took to load the page, during which the server was idle.
Loaded meanwhile, a restarted server draws its first page that much sooner. A script run waits for the preload
before its own imports (ui.preload.wait), so the two never import at the same time.
"""

from __future__ import annotations

import gc
import threading
import time

from ui import preload as ui_preload


def preload() -> None:
    """Once Streamlit's runtime exists (the server is about to listen: its own start is not slowed down), import
    the pages' libraries (ui.preload.PRELOAD); then collections start again (ui.preload.loading)."""
    try:
        from streamlit import runtime

        while not runtime.exists():
            time.sleep(0.02)
        ui_preload.run()
    finally:
        gc.enable()  # run() turns it on, freezing what was loaded; this is for a preload that failed before it


def main() -> None:
    # no garbage collection while Streamlit and then the preload load their modules (ui.preload.loading says why):
    # the preload turns it on again when it is done, with what Streamlit loaded frozen too
    gc.disable()
    ui_preload.started()  # before Streamlit starts: every script run waits for the preload (ui.preload.wait)
    threading.Thread(target=preload, name="vbhc-preload", daemon=True).start()
    from streamlit.web.cli import main as streamlit_main

    # as `python -m streamlit` calls it, so the server sees the same command line
    streamlit_main(prog_name="streamlit")


if __name__ == "__main__":
    main()
