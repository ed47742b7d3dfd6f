"""The libraries a restarted server loads in the background before the first page asks for them (ui.serve), and
the wait that keeps a page's own imports from overlapping with that: two threads importing one package graph at
once can each be handed a half-initialised module, and the page would show an import error."""

from __future__ import annotations

import contextlib
import gc
import importlib
import sys
import threading
from collections.abc import Iterator

#: Heaviest first: what the first script run would otherwise import before drawing anything (issue 13, item 2).
#: Of SciPy only scipy.special (~0.2 s of CPU): "since the last meeting" takes its p-values from it. Not its
#: statistics: a first page reads stored results and calls none of them (vbhc.lazy); loading them here made the
#: preload twice as long, and on a 2-core host took that CPU from the browser loading the page. The background
#: preparation (ui.data.start_warm_up) loads them after the first page.
#: vbhc.models: its table classes (SQLModel, pydantic) take ~0.3 s of CPU to build, which every first run
#: (ui.auth -> vbhc.access -> vbhc.audit) spent before drawing anything.
#: Then the dashboard's own modules that the entry point (streamlit_app.py) and the overview and team pages
#: import (~0.4 s of CPU: their data classes, chart and table code), which the first script run imported
#: before drawing its first element, while the browser, which had already waited for Streamlit's page, waited again.
PRELOAD = (
    "pandas",
    "sqlalchemy",
    "sqlmodel",
    "pyarrow",
    "scipy.special",
    "babel.numbers",
    "jinja2",
    "vbhc.models",
    "ui.auth",
    "ui.data",
    "ui.filters",
    "ui.guard",
    "ui.render",
    "ui.layout",
    "ui.benchmark",
    "ui.prems",
    "ui.run_timing",
    "vbhc.annotations",
    "vbhc.agenda",
)
#: Longest a page waits for the preload (it then imports what it needs itself)
WAIT_SECONDS = 60.0
#: The interpreter's thread switch interval while the preload runs (Python's default: 5 ms). Meanwhile Streamlit's
#: event loop answers the browser's ~60 requests for Streamlit's page, scripts and fonts, each handed between the
#: loop and its file threads several times, and each time the loop waited up to 5 ms for the preload to let go of
#: the interpreter lock: the page's files arrived in 0.7 s instead of 0.9 s (median of 5, 2 cores, load ~6).
SWITCH_SECONDS = 0.001

_started = threading.Event()
_done = threading.Event()


def started() -> None:
    """Mark that a preload is coming (ui.serve calls this before Streamlit starts, so no page can run earlier)."""
    _started.set()


def run() -> None:
    """Import PRELOAD, then do what a process does once on its first page (first_use); a library that fails to
    load, or a first use that fails, is left to the page that needs it (which shows the error)."""
    try:
        with loading():
            for name in PRELOAD:
                with contextlib.suppress(Exception):
                    importlib.import_module(name)
            first_use()
    finally:
        _done.set()


@contextlib.contextmanager
def loading() -> Iterator[None]:
    """While the preload runs: no garbage collection, and a short thread switch interval (SWITCH_SECONDS); after
    it, what it loaded is kept out of every later collection (`gc.freeze`), the collector is on and the interval is
    Python's again.

    Why: loading ~1,500 modules creates millions of objects, each lasting as long as the process, and Python's
    collector went through them again and again (358 collections), with the interpreter lock held: the preload took
    3.15 s of CPU, 2.37 s without them (medians of 5, load ~6); and then a full collection in the first page's run
    (0.2-0.5 s of its wall on a busy 2-core host), both while the viewer waited. Frozen, a collection goes through
    only what was made since. The cost: the cyclic garbage of the objects frozen is never collected; those are the
    loaded modules and their caches, which live as long as the process anyway, and the session of a browser that
    connected before the preload was done (one session's state, once per process).
    """
    interval = sys.getswitchinterval()
    sys.setswitchinterval(SWITCH_SECONDS)
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        gc.enable()
        sys.setswitchinterval(interval)


def first_use() -> None:
    """What every process's first script run did before drawing anything, done here while the browser loads the page:

    - the indicator catalog and both languages' message catalogs and counting messages (each language's file is
      read and parsed twice, once per process, ~0.15 s),
      Babel's number and date data of both languages, the newest schema revision (read from the migration scripts)
      and the database's SQL dialect (the driver module; nothing connects: a database that cannot be reached is
      the page's to report, not a preload that makes it wait);
    - Python's map of loaded modules to their files. Streamlit's first element in a process checks whether it runs
      in a REPL (`inspect.stack()`), and the first `inspect.stack()` of a process maps every loaded module to its
      file (~0.12 s of CPU with the dashboard's ~1,500 modules, 0.5-1 s of the first run's wall on a busy host);
      mapped here, the page's check only looks up the few modules loaded since.
    """
    import datetime as dt
    import inspect

    def catalogs() -> None:
        from vbhc.catalog import default_catalog
        from vbhc.i18n import SUPPORTED, fmt_date, fmt_number, fmt_percent, plural_keys, t

        default_catalog()
        for lang in SUPPORTED:
            t("app.title", lang), plural_keys(lang)
            fmt_number(1234.5, lang), fmt_percent(0.5, lang), fmt_date(dt.date(2026, 1, 1), lang)

    def database() -> None:
        from sqlalchemy import make_url

        from vbhc.settings import database_url
        from vbhc.store import head_revision

        head_revision()
        make_url(database_url()).get_dialect().import_dbapi()

    for step in (catalogs, database, inspect.stack):  # the module map last: it then holds the most modules
        with contextlib.suppress(Exception):
            step()


def wait() -> None:
    """Called by every script run before its imports: returns at once unless a preload is still loading."""
    if _started.is_set():
        _done.wait(WAIT_SECONDS)
