"""The libraries a restarted server loads in the background before the first page asks for them (ui.serve), and
the wait that keeps a page's own imports from overlapping with that: two threads importing one package graph at
once can each be handed a half-initialised module, and the page would show an import error."""

from __future__ import annotations

import contextlib
import importlib
import threading

#: Heaviest first: what the first script run would otherwise import before drawing anything (issue 13, item 2).
#: Of SciPy only scipy.special (~0.2 s of CPU): "since the last meeting" takes its p-values from it. Not its
#: statistics: a first page reads stored results and calls none of them (vbhc.lazy); loading them here made the
#: preload twice as long, and on a 2-core host took that CPU from the browser loading the page. The background
#: preparation (ui.data.start_warm_up) loads them after the first page.
#: vbhc.models last: its table classes (SQLModel, pydantic) take ~0.3 s of CPU to build, which every first run
#: (ui.auth -> vbhc.access -> vbhc.audit) spent before drawing anything.
PRELOAD = ("pandas", "sqlalchemy", "sqlmodel", "pyarrow", "scipy.special", "babel.numbers", "jinja2", "vbhc.models")
#: Longest a page waits for the preload (it then imports what it needs itself)
WAIT_SECONDS = 60.0

_started = threading.Event()
_done = threading.Event()


def started() -> None:
    """Mark that a preload is coming (ui.serve calls this before Streamlit starts, so no page can run earlier)."""
    _started.set()


def run() -> None:
    """Import PRELOAD; a library that fails to load is left to the page that imports it (which shows the error)."""
    try:
        for name in PRELOAD:
            with contextlib.suppress(Exception):
                importlib.import_module(name)
    finally:
        _done.set()


def wait() -> None:
    """Called by every script run before its imports: returns at once unless a preload is still loading."""
    if _started.is_set():
        _done.wait(WAIT_SECONDS)
