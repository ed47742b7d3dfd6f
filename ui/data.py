"""Cached access to the registry and the indicator engine, keyed by small plain arguments.

Keys always include the database URL and the dataset version, so a new import is visible at once and a
cached result never outlives the data it was computed from. Indicator results are shared objects
(cache_resource): pages only read them. Below this in-memory cache sits the results store on disk
(vbhc.results): a view is read from there, or computed once and written there, so a restart or a second server
process reads it instead of computing it; the background warm-up fills it after a start or an import.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import functools
import gc
import importlib
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FuturesTimeout
from typing import TYPE_CHECKING

import pandas as pd
import streamlit as st
from sqlalchemy import Engine

from ui.kept import Kept
from vbhc import access, registry, results
from vbhc.access import Viewer
from vbhc.catalog import default_catalog
from vbhc.i18n import fmt_int
from vbhc.indicators import IndicatorResult
from vbhc.meeting import as_of_label, default_meeting_date
from vbhc.settings import comparison_groups_file, database_url, report_charts_at_import, suppress_below
from vbhc.store import get_engine, upgrade_schema

if TYPE_CHECKING:
    from vbhc.prems import PremData

log = logging.getLogger(__name__)


@st.cache_resource
def engine(url: str) -> Engine:
    eng = get_engine(url)
    upgrade_schema(eng)
    return eng


def current_engine() -> Engine:
    url = database_url()
    return per_run(("engine", url), lambda: engine(url))


_this_run = threading.local()
#: When a script run last asked for data, began or ended (time.monotonic()).
_page_activity = [0.0]
#: Script runs drawing a page now: their thread -> when the run began (time.monotonic()). A run that stops early
#: (st.stop, st.rerun, an error) never reaches end_run; it counts until its thread ends (Streamlit runs a script
#: in a thread that ends with the run) or for MAX_YIELD_SECONDS at most.
_runs: dict[threading.Thread, float] = {}
_runs_lock = threading.Lock()


def begin_run() -> None:
    """Start of a script run: from here on the dataset version is read from the database once per run (pages
    ask for it a dozen times, for every cache key), and the background preparation waits until the run ends."""
    _this_run.versions = {}
    _this_run.memo = {}
    _this_run.draws_pages = True  # this thread runs scripts: background waits never apply to it (_pause_for_pages)
    _this_run.waits = None  # hold_wait_place
    now = time.monotonic()
    _page_activity[0] = now
    with _runs_lock:
        _runs[threading.current_thread()] = now


def hold_wait_place() -> None:
    """The place at the top of the page where this run shows what it waits for (a view or tables computed in the
    run: wait_box), held in every run, waiting or not. Why: Streamlit's browser side tells elements without a key
    apart by their place in their block; a progress bar drawn where a view was asked for stayed an (empty) element,
    so the next run, which found the view ready and drew none, moved every element below it, and the browser mounted
    them all anew: on the overview of a year not prepared, the click after its views were computed remounted 31 of
    its 36 elements (every table parsed and laid out again, every chart embedded again)."""
    _this_run.waits = st.empty()


def wait_box():
    """Where a page shows what it waits for: the run's held place (hold_wait_place), else a new element here (a
    run that holds none, e.g. a page run on its own in a test)."""
    box = getattr(_this_run, "waits", None)
    return box if box is not None else st.empty()


def end_run() -> None:
    """End of a script run that drew its page: the background preparation may go on once pages are quiet."""
    with _runs_lock:
        _runs.pop(threading.current_thread(), None)
    _page_activity[0] = time.monotonic()


@contextlib.contextmanager
def one_snapshot() -> Iterator[None]:
    """A file built on a download click reads the dataset version and the per-run values once, as a script run
    does. Streamlit builds such a file in a worker thread outside any script run, where every ask read them again:
    the workbook of every condition read the dataset version from the database ~200 times (~0.9 s of one build)."""
    if getattr(_this_run, "versions", None) is not None:  # inside a script run (or a snapshot) already
        yield
        return
    _this_run.versions, _this_run.memo = {}, {}
    try:
        yield
    finally:  # the worker thread serves other downloads later: they take their own snapshot
        _this_run.versions = _this_run.memo = None


def per_run(key: tuple, compute: Callable[[], object]):
    """`compute()` once per script run (outside a run: every call): what a run asks for a dozen times and may read
    once, as one consistent snapshot (the engine, the published groups' file). Each ask cost a cached-function
    lookup or a file's stat, and ten viewers' runs at once wait for each other's CPU under one interpreter lock."""
    memo = getattr(_this_run, "memo", None)
    if memo is None:
        return compute()
    if key not in memo:
        memo[key] = compute()
    return memo[key]


def pages_busy() -> bool:
    """Whether a script run is drawing a page, or one asked for data less than QUIET_SECONDS ago."""
    now = time.monotonic()
    with _runs_lock:
        for thread, began in list(_runs.items()):
            if not thread.is_alive() or now - began > MAX_YIELD_SECONDS:
                del _runs[thread]
        drawing = bool(_runs)
    return drawing or now - _page_activity[0] < QUIET_SECONDS


def version(*, fresh: bool = False) -> str:
    """The dataset version (changes with every import). `fresh` reads it again, e.g. right after an import."""
    url = database_url()
    versions = getattr(_this_run, "versions", None)
    if versions is None:  # outside a script run (tests, warm-up): always read
        return registry.dataset_version(current_engine())
    _page_activity[0] = time.monotonic()  # a page is drawing: the background preparation waits (see _yield_to_pages)
    if fresh or url not in versions:
        versions[url] = registry.dataset_version(current_engine())
    return versions[url]


@st.cache_data(ttl=3600, max_entries=64, show_spinner=False)
def _stored_registry_table(url: str, data_version: str, name: str, condition: str = "") -> pd.DataFrame:
    return _store(url).registry_table(name, _store_version(url, data_version), condition)


def _registry_table(url: str, data_version: str, name: str, condition: str = "") -> pd.DataFrame:
    """A small registry table every page reads (vbhc.results.REGISTRY_TABLES), from the results store where `vbhc
    import` or another server process stored it (over 1,000,000 care cycles the volumes alone are ~1.3 s of SQL
    on a restarted server's first page), through Streamlit's data cache, once per script run: that cache hands
    out a new unpickled copy on every call, and a team page's run asked for the units a dozen times. Callers
    only read it (the run shares the one copy)."""
    key = ("registry_table", url, data_version, name, condition)
    return per_run(key, lambda: _stored_registry_table(url, data_version, name, condition))


def units(url: str, data_version: str) -> pd.DataFrame:
    """The units table (hospital, department, division, own hospital)."""
    return _registry_table(url, data_version, "units")


@st.cache_data(ttl=3600, max_entries=64, show_spinner=False)
def _unit_names(url: str, data_version: str, level: str, condition: str | None, lang: str) -> dict[str, str]:
    from vbhc.catalog import default_catalog

    label = default_catalog().conditions[condition].label(lang) if condition else ""
    return registry.unit_names(units(url, data_version), level, condition, label)


def unit_names(url: str, data_version: str, level: str, condition: str | None, lang: str) -> dict[str, str]:
    """Unit id -> display name (hospital and department names from the registry, the condition's label), once
    per script run: filters.unit_name asks for it per unit shown, and each ask unpickled the whole mapping from
    Streamlit's cache. Callers only read it."""
    key = ("unit_names", url, data_version, level, condition, lang)
    return per_run(key, lambda: _unit_names(url, data_version, level, condition, lang))


def volumes(url: str, data_version: str) -> pd.DataFrame:
    """The care cycles per condition."""
    return _registry_table(url, data_version, "condition_volumes")


def condition_units(url: str, data_version: str, condition: str) -> pd.DataFrame:
    """vbhc.registry.condition_units."""
    return _registry_table(url, data_version, "condition_units", condition)


def condition_units_now(condition: str) -> pd.DataFrame:
    """condition_units of the current database and dataset version: what vbhc.prems asks for a care team's units
    (prems.UnitsOf), read from the cache instead of a GROUP BY over the care cycles on every visit."""
    return condition_units(database_url(), version(), condition)


def condition_unit_years(url: str, data_version: str, condition: str) -> pd.DataFrame:
    """vbhc.registry.condition_unit_years: a condition's units per year, which the comparison group rules check
    (vbhc.access.offered_groups: a group's atoms must hold enough units in every year the pages show)."""
    return _registry_table(url, data_version, "condition_unit_years", condition)


@st.cache_data(ttl=3600, max_entries=8, show_spinner=False)
def batches(url: str, data_version: str) -> pd.DataFrame:
    return registry.import_batches(engine=engine(url))


@st.cache_data(ttl=3600, max_entries=8, show_spinner=False)
def batch_reach(url: str, data_version: str) -> pd.DataFrame:
    """vbhc.registry.batch_reach once per dataset version: which conditions and hospitals each batch wrote."""
    return registry.batch_reach(engine=engine(url))


def batches_for(viewer: access.Viewer, conditions: Sequence[str]) -> pd.DataFrame:
    """The import batches a file of `conditions` made for `viewer` lists (vbhc.access.provenance_for): not
    other hospitals' or conditions' file names and importers for a care team."""
    url, data_version = database_url(), version()
    return access.provenance_for(viewer, conditions, batches(url, data_version), batch_reach(url, data_version))


def completeness(url: str, data_version: str, condition: str) -> pd.DataFrame:
    """vbhc.registry.completeness once per dataset version, from the results store (vbhc import prepares it): it
    reads every care cycle of the condition (1.7 s of CPU at 1,000,000 cycles)."""
    return _registry_table(url, data_version, "completeness", condition)


@st.cache_resource(show_spinner=False)
def _store(url: str) -> results.ResultStore:
    """The persisted results of this database (vbhc.results), shared by every server process and the CLI. A
    comparison group's files are written in the background once pages are drawn (_write_later)."""
    return results.ResultStore(engine(url), memo=0, later=_write_later)


def _store_version(url: str, data_version: str) -> str | None:
    """The store's version folder for `data_version`; None (store bypassed) when an import came in between."""
    store = _store(url)
    return store.version(expected=data_version) if store.enabled else None


@st.cache_resource(ttl=6 * 3600, max_entries=96, show_spinner=False)
def _condition_data(url: str, data_version: str, condition: str, period: str, peers: tuple[str, ...]):
    """All of a condition's data is read once (from the results store, else the registry); a period or comparison
    group is cut from it in memory (or read from the store). A comparison group is cut from the same period's
    data, which it keeps as the registry its expected values are recalibrated from (vbhc.results)."""
    key = results.ViewKey(condition, "", period, peers)
    fuller = (period, ()) if peers else ("", ())

    def full():
        return _condition_data(url, data_version, condition, *fuller)

    return _store(url).condition_data(key, _store_version(url, data_version), full=full if period or peers else None)


@st.cache_resource(ttl=6 * 3600, max_entries=96, show_spinner=False)
def _result(
    url: str, data_version: str, condition: str, level: str, period: str, peers: tuple[str, ...]
) -> IndicatorResult:
    """The view from the results store, else computed and stored there: a restart, a second server process and
    `vbhc report` never compute it again."""
    data = _condition_data(url, data_version, condition, period, peers)
    key = results.ViewKey(condition, level, period, peers)
    stored = _store_version(url, data_version)
    if peers and (stored is None or not _store(url).has(key, stored)):
        # the registry's view of the same period (in memory, else read or computed once) holds the models the
        # group's expected values are recalibrated from
        _result(url, data_version, condition, level, period, ())
    out = _store(url).result(key, stored, data=data)
    _ready.add((url, data_version, condition, level, period, peers))
    return out


#: Views this process has in memory (or has had: they are then on disk), so a page knows it will not wait.
_ready: set[tuple] = set()


@dataclasses.dataclass
class WarmUp:
    """What the background preparation of one dataset version has done: pages that must wait show it."""

    total: int = 0
    done: int = 0
    current: tuple[str, str, str] | None = None  # condition, level, period being prepared
    finished: bool = False


_warm_ups: dict[tuple[str, str], WarmUp] = {}


def warm_up_state(url: str, data_version: str) -> WarmUp | None:
    return _warm_ups.get((url, data_version))


@st.cache_resource(show_spinner=False)
def start_warm_up(url: str, data_version: str) -> threading.Thread:
    """Prepare the default views of every condition in the background once per server and dataset version: read
    from the results store (a restart, another server process or `vbhc import` computed them), else computed
    and stored, so the first visitor of a page does not wait for the case-mix models to be fitted."""
    state = _warm_ups.setdefault((url, data_version), WarmUp())

    def prepare(key: results.ViewKey) -> None:
        state.current = (key.condition, key.level, key.period)
        with contextlib.suppress(Exception):  # a failing view shows its error when a page asks for it
            _result(url, data_version, key.condition, key.level, key.period, key.peers)
        state.done += 1

    def prepare_signals(key: results.ViewKey) -> None:
        """The signals of every unit of a whole-period view, now and as it was at each since date."""
        from vbhc.minutes import recorded_since_dates

        when = default_meeting_date()
        with contextlib.suppress(Exception):  # a page asking for them shows the error
            _signals(url, data_version, key.condition, key.level, key.period, None)
            _every_unit_charts(url, data_version, key.condition, key.level, key.period)
            for name in results.DERIVED_TABLES:  # the PROM and cost pages' tables
                _derived(url, data_version, key.condition, key.level, key.period, (), name)
            current = _result(url, data_version, key.condition, key.level, key.period, ())
            recorded = recorded_since_dates(engine(url), key.condition)
            # the meeting page's, the team page's and the recorded meetings' dates
            for until in results.as_of_dates(current, when, recorded):
                label = as_of_label(current, until)
                if label is not None and label != key.period:  # the same view: its signals are the ones above
                    _signals(url, data_version, key.condition, key.level, label, until)

    def work() -> None:
        try:
            # the page that started the server's first run draws first: it reads its own view (from the store,
            # or computes it while showing what it waits for), and the preparation must not slow it down
            _yield_to_pages()
            store = _store(url)
            version = _store_version(url, data_version)
            views = results.default_views(engine(url))
            state.total = len(views)
            # first what the first pages show, into memory; the rest only needs to be on disk
            first = [v for v in views if v.level == "hospital" and not v.period]
            rest = [v for v in views if v not in first]
            for key in first:
                _yield_to_pages()
                prepare(key)
            # the chart and report code's own start-up (imports, Altair's tables) before a page needs it
            _yield_to_pages()
            importlib.import_module("scipy.stats")  # what the depth tab, the meeting and fits call (vbhc.lazy)
            importlib.import_module("vbhc.reports.excel")
            importlib.import_module("vbhc.reports.pdf")
            importlib.import_module("vbhc.charts").prepare()
            # "since the last meeting": the signals of every hospital now and at the default meeting
            for key in first:
                _yield_to_pages()
                prepare_signals(key)
            # patient experience beside the outcomes (team page, overview)
            for prem in results.prem_keys(views):
                if prem.period:
                    _yield_to_pages()
                with contextlib.suppress(Exception):  # a page asking for it shows the error
                    prem_result(url, data_version, prem.questionnaire, prem.level, prem.period)
            for key in rest:
                if version is None or not store.has(key, version):
                    _yield_to_pages()
                    prepare(key)
                else:
                    state.done += 1
            for key in rest:
                if key.level != "hospital" and not key.period:
                    _yield_to_pages()
                    prepare_signals(key)
            # the Data page's completeness grid of each condition (it reads every care cycle: 1.7 s at 1M cycles)
            for condition in dict.fromkeys(v.condition for v in views):
                _yield_to_pages()
                with contextlib.suppress(Exception):  # the Data page asking for it shows the error
                    completeness(url, data_version, condition)
            # a registry too large for default_views' years: every year after all else, so a period filter reads
            # and does not compute (~14 s at 1M cycles); on disk only, in a child process at the lowest priority
            # (~20 minutes of CPU at 1M cycles, which in this process held the interpreter lock beside every page)
            planned = set(views)
            years = (
                [v for v in results.year_views(engine(url)) if v not in planned]
                if results.years_in_background()
                else []
            )
            # and what the pages read beside every year (results.prepare_year_pages: its signals, unit charts, tables
            # and the year as it was at the team page's "since" date), in the same child: a period click read the
            # year's view but computed the rest (~1.5-2 s of CPU on the 50k demo, the first time after an import)
            pages = results.years_in_background() and version is not None and results.year_pages_pending(engine(url))
            if (years or pages) and version is not None:
                _writer.submit(lambda: None).result()  # the years computed above are on disk before the child reads
                done = state.done
                state.total += len(years)

                def counted(finished: int, _total: int) -> None:
                    state.done = done + min(finished, len(years))

                _yield_to_pages()
                results.precompute_years_apart(url, progress=counted)
                state.done = done + len(years)  # a view that failed is computed when a page asks for it
            if version is not None:
                store.prune(version)  # the results of older imports
            # what is in memory now stays for the server's life: out of the cyclic garbage collector's full passes,
            # which otherwise walk all of it while holding the interpreter lock (1.3 s under 10 viewers at once)
            gc.collect()
            gc.freeze()
            state.current, state.finished = None, True
            if version is not None and report_charts_at_import():
                # last, on disk only: the charts of `vbhc report --all --format pdf`, in a child process at the
                # lowest priority (vl-convert holds the interpreter lock while it draws, which pages would wait for)
                _yield_to_pages()
                with contextlib.suppress(Exception):  # the report renders what is missing
                    importlib.import_module("vbhc.reports.run").prepare_report_charts_apart(url)
        finally:
            state.current, state.finished = None, True

    thread = threading.Thread(target=work, name="vbhc-warm-up", daemon=True)
    thread.start()
    return thread


#: The background preparation starts its next view once no script run is drawing a page and pages have not asked
#: for data for this long, or after waiting MAX_YIELD_SECONDS (so it finishes under steady use too): Python
#: threads share one interpreter lock, and a view computed in the background makes a page drawn at the same time
#: slower (after a restart, the first page took several seconds longer while every condition's view was read).
QUIET_SECONDS = 1.5
MAX_YIELD_SECONDS = 20.0


def _yield_to_pages() -> None:
    """Wait while pages are drawn (at most MAX_YIELD_SECONDS), and for as long as a page waits for a view it
    computes (_wait_for): the first page after a server start or an import computes its own view, and the
    preparation computing others beside it made that page wait twice as long (2 cores, one interpreter lock)."""
    deadline = time.monotonic() + MAX_YIELD_SECONDS
    while (pages_busy() and time.monotonic() < deadline) or _views_awaited[0] > 0:
        time.sleep(0.25)


def _pause_for_pages() -> None:
    """`pause` of the every-unit signals and charts, between units: computed in the background (a view not
    prepared ahead, e.g. a year), they wait while pages are drawn, so a viewer's click (a comparison group computed
    for that page) does not share the interpreter lock with them. In a page's own run (a cache miss) a no-op: a
    page never waits for itself or for other pages."""
    if not getattr(_this_run, "draws_pages", False):
        _yield_to_pages()


_writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vbhc-store-write")


def _write_later(write: Callable[[], None]) -> None:
    """Run a results-store write (a view's data and result, a comparison group's or the registry's, a PREM result
    computed for a page: vbhc.results.ResultStore.later) in the background once pages are drawn: writing a group's
    data and view was 0.2-0.25 s of the ~0.7-1 s of CPU a group's click computed at 50,000 care cycles, a year's
    department view ~0.8 s of a unit-level click at 1,000,000, and the page that asked for the result has it in
    memory already."""
    if not background_work:
        write()
        return

    def run() -> None:
        _yield_to_pages()
        try:
            write()
        except Exception:  # the group is computed again by the next process that asks for it
            log.exception("results store: a write in the background failed")

    _writer.submit(run)


#: How many pages are waiting for a view they compute now (_wait_for); guarded by _runs_lock.
_views_awaited = [0]


_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="vbhc-view")


def result(condition: str, level: str, period: str, peers: tuple[str, ...] = ()) -> IndicatorResult:
    """The indicator result for the filters (computed once per dataset version and filter combination, and kept
    in the results store). A view that is neither in memory nor stored is prepared while the page shows what it
    waits for. Pages use result_for, which applies the viewer's role."""
    url, data_version = database_url(), version()
    args = (url, data_version, condition, level, period, tuple(sorted(peers)))
    if args in _ready or _on_disk(url, data_version, condition, level, period, args[-1]):
        return _result(*args)
    return _wait_for(args)


def _on_disk(url: str, data_version: str, condition: str, level: str, period: str, peers: tuple[str, ...]) -> bool:
    store = _store(url)
    if not store.enabled:
        return False
    stored = _store_version(url, data_version)
    return stored is not None and store.has(results.ViewKey(condition, level, period, peers), stored)


def _wait_for(args: tuple) -> IndicatorResult:
    """Compute the view in a worker thread while the page shows a progress bar: which view it prepares and how
    many of the server's views are ready (its background preparation may be busy with others)."""
    from vbhc.i18n import t

    future = _pool.submit(_result, *args)
    lang = st.session_state.get("lang", "nl")
    url, data_version, condition, level, period, _ = args
    try:
        label = default_catalog().condition(condition).label(lang)
    except KeyError:
        label = condition
    what = t(
        "wait.preparing",
        lang,
        condition=label,
        level=t(f"level.{level}", lang),
        period=period or t("wait.all_dates", lang),
    )
    box = wait_box()
    with _runs_lock:
        _views_awaited[0] += 1
    try:
        while True:
            try:
                return future.result(timeout=0.25)
            except FuturesTimeout:
                state = warm_up_state(url, data_version)
                if state is not None and state.total and not state.finished:
                    text = what + " " + t("wait.views_ready", lang, done=fmt_int(state.done, lang), count=state.total)
                    box.progress(min(state.done / state.total, 1.0), text=text)
                else:
                    box.progress(0.0, text=what)
    finally:
        with _runs_lock:
            _views_awaited[0] -= 1
        box.empty()


def group_indicators(
    condition: str, level: str, period: str, peers: tuple[str, ...], wanted: Sequence[str]
) -> IndicatorResult:
    """A comparison group's view with the rows of the `wanted` indicators alone (its other rows are not computed):
    the whole view when it is in memory or in the results store, else these indicators' rows computed once per
    dataset version and kept in memory, not stored as the view (no indicator: no rows). For "since the last
    meeting", which reads the group as it was at the meeting only for the indicators with a signal now
    (vbhc.meeting.signalled): the whole view at the meeting was computed on the click that picks a group (a
    second view beside the group's own, and the signals then of every indicator), over half of its CPU."""
    from vbhc.indicators import BASE_COLUMNS

    if not wanted:
        return IndicatorResult(condition, level, None, pd.DataFrame(columns=BASE_COLUMNS))
    url, data_version = database_url(), version()
    peers, wanted = tuple(sorted(peers)), tuple(sorted(set(wanted)))
    args = (url, data_version, condition, level, period, peers)
    if args in _ready or _on_disk(*args):
        full = _result(*args)
        return dataclasses.replace(full, table=full.table[full.table["indicator"].isin(wanted)])
    result(condition, level, period)  # the registry's view of the period: the models the group's are recalibrated from
    return _group_indicators(*args, wanted)


@st.cache_resource(ttl=6 * 3600, max_entries=64, show_spinner=False)
def _group_indicators(
    url: str,
    data_version: str,
    condition: str,
    level: str,
    period: str,
    peers: tuple[str, ...],
    wanted: tuple[str, ...],
) -> IndicatorResult:
    from vbhc.indicators import compute_indicators

    data = _condition_data(url, data_version, condition, period, peers)
    return compute_indicators(data, level, indicators=wanted)


def result_as_of(current: IndicatorResult, when: dt.date) -> IndicatorResult | None:
    """The full view (no comparison group) as it was at `when` (the last meeting): a date-range view of the
    results store like any other period, prepared ahead for the default meeting date (vbhc.results.default_views),
    so neither a restart nor a new viewer refits it. None for an empty view (the caller computes in memory)."""
    label = as_of_label(current, when)
    return result(current.condition, current.level, label) if label is not None else None


@st.cache_resource(ttl=6 * 3600, max_entries=192, show_spinner=False)
def _signals(
    url: str, data_version: str, condition: str, level: str, period: str, until: dt.date | None
) -> dict[str, dict[str, set[str]]]:
    view = results.ViewKey(condition, level, period)
    computed = _result(url, data_version, condition, level, period, ())
    found = _store(url).signals(view, _store_version(url, data_version), computed, until, pause=_pause_for_pages)
    _signals_ready.add((url, data_version, condition, level, period, until))
    return found


@st.cache_resource(ttl=6 * 3600, max_entries=64, show_spinner=False)
def prem_result(url: str, data_version: str, questionnaire: str, level: str, period: str) -> IndicatorResult:
    """One PREM questionnaire's indicator table (vbhc.prems), shared by every viewer (prems.prem_rows picks what
    each may see): from the results store, else computed and stored, so a restart or a new view does not load
    and fit the answers again (seconds on the default demo)."""
    from vbhc import prems

    found = _store(url).prem(
        results.PremKey(questionnaire, level, period),
        _store_version(url, data_version),
        lambda: prems.compute_prem_indicators(_prem_data(url, data_version, questionnaire, period), level),
    )
    _prems_ready.add((url, data_version, questionnaire, level, period))
    return found


#: The answers of the questionnaires last computed (prems.PremData), by database, version, questionnaire and period:
#: both unit levels' tables of a period read them once (the hospital's, then the department's on a level change).
_prem_answers: Kept[PremData] = Kept(2)


def _prem_data(url: str, data_version: str, questionnaire: str, period: str) -> PremData:
    """One questionnaire's answers of a period for its tables at both levels (which share the rows and their case-mix
    fits, as a condition's views do): reading them was two thirds of a table's ~4.5 CPU s for a year at 1,000,000
    care cycles, and a period's tables not prepared yet are computed in the page's run."""
    from vbhc import prems

    return _prem_answers.get(
        (url, data_version, questionnaire, period),
        lambda: prems.load_prem_data(questionnaire, period or None, engine=engine(url)),
    )


#: PREM tables this process has in memory (or has had: they are then on disk), so a page knows it will not wait.
_prems_ready: set[tuple] = set()


def prems_ready(questionnaires: Sequence[str], level: str, period: str) -> bool:
    """Whether every one of these PREM tables is in memory or in the results store: else a page asking for them
    computes them in its own run (a year the background has not prepared yet reads every answer of the year from
    the registry: tens of seconds at 1,000,000 care cycles) and says what it waits for (ui.prems.show)."""
    url, data_version = database_url(), version()
    missing = [q for q in questionnaires if (url, data_version, q, level, period) not in _prems_ready]
    if not missing:
        return True
    store = _store(url)
    stored = _store_version(url, data_version) if store.enabled else None
    return stored is not None and all(store.has_prem(results.PremKey(q, level, period), stored) for q in missing)


#: PREM tables being computed for a page (prepare_prems), and those whose computation failed (a page computes those
#: in its own run, where the error is shown); both keyed as _prems_ready.
_prems_pending: set[tuple] = set()
_prems_failed: set[tuple] = set()
_prems_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vbhc-prems")


def prepare_prems(questionnaires: Sequence[str], level: str, period: str) -> str:
    """Start computing the PREM tables of a period that are neither in memory nor stored, outside the page's run:
    "ready" (nothing to wait for), "pending" (being computed: the page says so and looks again, ui.prems.show) or
    "failed" (the page computes them in its own run and shows the error).

    Why: at 1,000,000 care cycles a year the background had not prepared yet spent ~6 CPU s in the page's own run on
    these tables (every answer of the year read from the registry, the case-mix fits): the team page showed nothing
    new for 18-24 s at a load of 8. Now the outcomes are drawn at once and the tables follow when ready."""
    if prems_ready(questionnaires, level, period):
        return "ready"
    url, data_version = database_url(), version()
    keys = [(url, data_version, q, level, period) for q in questionnaires]
    if any(key in _prems_failed for key in keys):
        return "failed"
    with _runs_lock:
        todo = [key for key in keys if key not in _prems_pending and key not in _prems_ready]
        _prems_pending.update(todo)

    def compute(key: tuple) -> None:
        try:
            # after the page's run and any view a page waits for: computed at once they shared the interpreter lock
            # with the page's own view of the period, which then took as long as both (20 s at a load of 12)
            _yield_to_pages()
            prem_result(*key)
        except Exception:  # the page computes it in its own run and shows the error there
            log.exception("PREM table %s could not be prepared", key[2:])
            _prems_failed.add(key)
        finally:
            with _runs_lock:
                _prems_pending.discard(key)

    for key in todo:
        _prems_pool.submit(compute, key)
    return "pending"


def prems_pending(questionnaires: Sequence[str], level: str, period: str) -> bool:
    """Whether any of these PREM tables is still being computed by prepare_prems."""
    url, data_version = database_url(), version()
    with _runs_lock:
        return any((url, data_version, q, level, period) in _prems_pending for q in questionnaires)


#: Whether the signals of a view not prepared yet are computed for every unit in the background, and a comparison
#: group's files written there (_write_later), as a server does; the tests that run pages in-process switch it off
#: (tests/conftest.py), so no background work outlives a test.
background_work = True
#: Signal sets this process has in memory (or has had: they are then on disk), and those being computed.
_signals_ready: set[tuple] = set()
_signals_pending: set[tuple] = set()
_signals_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vbhc-signals")


def signals(
    condition: str, level: str, period: str, until: dt.date | None = None
) -> dict[str, dict[str, set[str]]] | None:
    """The signals of every unit of the full view (no comparison group; vbhc.meeting.unit_signals) with the data up
    to `until`, computed once for all units and kept in the results store, so a meeting that goes from unit to
    unit reads them. None while they are being prepared in the background (the server's warm-up prepares the
    default views'; another view's are started here): the caller then computes its own unit's. Callers only read
    the sets."""
    url, data_version = database_url(), version()
    args = (url, data_version, condition, level, period, until)
    if args in _signals_ready:
        return _signals(*args)
    store = _store(url)
    stored = _store_version(url, data_version) if store.enabled else None
    key = results.SignalsKey(results.ViewKey(condition, level, period), until.isoformat() if until else "")
    if stored is not None and store.has_signals(key, stored):
        return _signals(*args)
    if background_work and args not in _signals_pending:
        _signals_pending.add(args)
        _signals_pool.submit(_signals, *args).add_done_callback(lambda _: _signals_pending.discard(args))
    return None


def prepare_since(condition: str, level: str, when: dt.date, period: str = "") -> None:
    """In the background, the view of `condition` at `level` as it was at `when` (a meeting just recorded: the
    team page's new "since the last meeting" date) with every unit's signals then, for all dates and `period`.
    Why: the first team page after the recording computed them while its viewer waited (~0.5 s of CPU on the
    50k demo, a case-mix fit). Stored ones are read; a no-op without background work."""
    if not background_work:
        return
    try:
        url, data_version = database_url(), version()
    except Exception:  # the recording is stored; the page computes the view when asked, and shows any error then
        log.exception("preparing %s as it was at %s failed", condition, when)
        return

    def prepare() -> None:
        for shown in dict.fromkeys(["", period]):
            with contextlib.suppress(Exception):  # a page asking for it computes it and shows the error
                label = as_of_label(_result(url, data_version, condition, level, shown, ()), when)
                if label is not None and label != shown:  # (the same view: its signals are the view's own)
                    _signals(url, data_version, condition, level, label, when)

    _signals_pool.submit(prepare)


@st.cache_resource(ttl=6 * 3600, max_entries=96, show_spinner=False)
def _every_unit_charts(
    url: str, data_version: str, condition: str, level: str, period: str
) -> dict[str, dict[str, pd.DataFrame]]:
    view = results.ViewKey(condition, level, period)
    computed = _result(url, data_version, condition, level, period, ())
    found = _store(url).unit_charts(view, _store_version(url, data_version), computed, pause=_pause_for_pages)
    _charts_ready.add((url, data_version, condition, level, period))
    return found


#: Unit-chart sets (every unit of a full view) this process has in memory or on disk, and those being computed.
_charts_ready: set[tuple] = set()
_charts_pending: set[tuple] = set()
#: One unit's charts of a view whose every-unit set is not ready (or of a comparison group), shared by every
#: viewer: the charts come from the full view's care cycles, the same whoever looks (pages pick the rows their
#: viewer may see). Least recently used dropped first.
_one_unit_charts: OrderedDict[tuple, dict[str, pd.DataFrame]] = OrderedDict()
_one_unit_lock = threading.Lock()
_ONE_UNIT_SIZE = 256


def unit_charts(condition: str, level: str, period: str, peers: tuple[str, ...], unit: str) -> dict[str, pd.DataFrame]:
    """The quarterly SPC chart of each of the unit's indicators (vbhc.unit_charts), by indicator id: of a full view
    read from the set of every unit (kept in the results store; its computation is started in the background when
    it is not there), else computed for this unit once per dataset version and shared by every viewer. Callers
    only read the charts."""
    from vbhc.unit_charts import unit_charts as compute_unit_charts

    url, data_version = database_url(), version()
    peers = tuple(sorted(peers))
    if not peers:
        args = (url, data_version, condition, level, period)
        store = _store(url)
        stored = _store_version(url, data_version) if store.enabled else None
        ready = args in _charts_ready or (
            stored is not None
            and store.has_signals(results.UnitChartsKey(results.ViewKey(condition, level, period)), stored)
        )
        if ready:
            return _every_unit_charts(*args).get(str(unit), {})
        if background_work and args not in _charts_pending:
            _charts_pending.add(args)
            _signals_pool.submit(_every_unit_charts, *args).add_done_callback(lambda _: _charts_pending.discard(args))
    key = (url, data_version, condition, level, period, peers, str(unit))
    with _one_unit_lock:
        found = _one_unit_charts.get(key)
        if found is not None:
            _one_unit_charts.move_to_end(key)
            return found
    found = compute_unit_charts(_result(url, data_version, condition, level, period, peers), str(unit))
    with _one_unit_lock:
        _one_unit_charts[key] = found
        while len(_one_unit_charts) > _ONE_UNIT_SIZE:
            _one_unit_charts.popitem(last=False)
    return found


def result_for(viewer: Viewer, condition: str, level: str, period: str, peers: tuple[str, ...] = ()) -> IndicatorResult:
    """The indicator result as this viewer may see it: vbhc.access filters the table (a manager gets other units
    anonymised), refuses a condition outside the viewer's roles, and records the view in the audit log. A
    comparison group too small for the viewer falls back to the whole registry (see comparison_group)."""
    peers = comparison_group(viewer, condition, level, peers)[0]
    full = result(condition, level, period, peers)
    url, data_version = database_url(), version()
    eng = engine(url)
    # what a viewer may see depends on their scopes only: the filtered rows are shared by viewers with the same
    # scopes (Viewer.cache_key), while the permission check and the audit record run on every visit
    access.require(viewer, access.Permission.VIEW_CONDITION, engine=eng, condition=condition, level=level)
    key = (url, data_version, viewer.cache_key, suppress_below(), condition, level, period, peers, published_groups())
    with _visible_lock:
        table = _visible.get(key)
        if table is not None:
            _visible.move_to_end(key)
    if table is None:
        withheld = _period_mask(viewer, condition, level, period, peers)
        table = access.indicator_rows(
            viewer,
            full.table,
            units=units(url, data_version),
            engine=eng,
            record_view=False,
            withheld=withheld,
            others=access.other_units_shown(viewer, condition, peers),
            thin=registry_thin(viewer, condition, level),
        )
        table = _registry_benchmark_where_thin(viewer, condition, level, period, peers, table)
        with _visible_lock:
            _visible[key] = table
            while len(_visible) > _VISIBLE_SIZE:
                _visible.popitem(last=False)
    access.record_indicator_view(viewer, table, condition=condition, level=level, engine=eng)
    return dataclasses.replace(full, table=table)


def _registry_benchmark_where_thin(
    viewer: Viewer, condition: str, level: str, period: str, peers: tuple[str, ...], table: pd.DataFrame
) -> pd.DataFrame:
    """A manager's group view with the registry's rows (its benchmark) for the indicators whose group benchmark
    vbhc.access.group_indicators_withheld withholds: an indicator counted in too few units of some atom of the
    offered groups, in some period of the grid."""
    thin = _thin_indicators(viewer, condition, level, peers)
    if not thin or "indicator" not in table:
        return table
    url, data_version = database_url(), version()
    registry_rows = access.indicator_rows(
        viewer,
        result(condition, level, period, ()).table,
        units=units(url, data_version),
        engine=engine(url),
        record_view=False,
        others="hide",
        thin=registry_thin(viewer, condition, level),
    )
    keep = ~table["indicator"].astype(str).isin(thin)
    instead = registry_rows[registry_rows["indicator"].astype(str).isin(thin)]
    order = {ind: i for i, ind in enumerate(dict.fromkeys(table["indicator"].astype(str)))}
    out = pd.concat([table[keep], instead], ignore_index=True)
    position = out["indicator"].astype(str).map(order).fillna(len(order))
    return out.iloc[position.argsort(kind="stable")].reset_index(drop=True)


#: registry_thin's answers per database version, scope of viewers, condition and level.
_registry_thin: OrderedDict[tuple, frozenset[str]] = OrderedDict()
_registry_thin_lock = threading.Lock()


def registry_thin(viewer: Viewer, condition: str, level: str) -> frozenset[str]:
    """vbhc.access.registry_indicators_withheld over the registry's grid of periods: the indicators whose
    benchmark (and own figures computed from every unit) a manager's views show in no period, as too few other
    units are counted in some period. None for a viewer who sees every unit."""
    if access.sees_all_units(viewer, condition) or not access.may_view_condition(viewer, condition):
        return frozenset()
    url, data_version = database_url(), version()
    key = (url, data_version, viewer.cache_key, condition, level)
    with _registry_thin_lock:
        found = _registry_thin.get(key)
    if found is not None:
        return found
    grid = [result(condition, level, p, ()).table for p in grid_periods(condition)]
    found = access.registry_indicators_withheld(viewer, condition, level, grid, units(url, data_version), engine(url))
    with _registry_thin_lock:
        _registry_thin[key] = found
        while len(_registry_thin) > _VISIBLE_SIZE:
            _registry_thin.popitem(last=False)
    return found


def _thin_indicators(viewer: Viewer, condition: str, level: str, peers: tuple[str, ...]) -> frozenset[str]:
    """vbhc.access.group_indicators_withheld over the registry's grid of periods: the indicators of which no group
    view of this manager shows the group's figures (none without a group or for a viewer who sees every unit)."""
    if not peers or access.sees_all_units(viewer, condition):
        return frozenset()
    url, data_version = database_url(), version()
    grid = [result(condition, level, p, ()).table for p in grid_periods(condition)]
    return access.group_indicators_withheld(
        viewer,
        condition,
        level,
        condition_unit_years(url, data_version, condition),
        units(url, data_version),
        grid,
        published_groups(),
    )


def unit_charts_for(
    viewer: Viewer, condition: str, level: str, period: str, peers: tuple[str, ...], unit: str
) -> dict[str, pd.DataFrame]:
    """unit_charts of the comparison group the viewer may use (comparison_group), with the registry's chart for an
    indicator whose group figures the viewer's group views withhold (_thin_indicators): the own unit's expected
    values are recalibrated to the group, so its chart carried the group's level of that indicator."""
    peers = comparison_group(viewer, condition, level, peers)[0]
    charts = unit_charts(condition, level, period, peers, unit)
    # an indicator counted in too few other units anywhere: the own unit's expected values are the other units'
    # rate (the table withholds its benchmark and model figures, vbhc.access.registry_indicators_withheld)
    alone = registry_thin(viewer, condition, level)
    charts = {k: v for k, v in charts.items() if k not in alone}
    thin = _thin_indicators(viewer, condition, level, peers) - alone
    if not thin:
        return charts
    registry_charts = unit_charts(condition, level, period, (), unit)
    out = {k: v for k, v in charts.items() if k not in thin}
    out.update({k: v for k, v in registry_charts.items() if k in thin})
    return out


def grid_periods(condition: str) -> list[str]:
    """The periods of the grid whose small cells are protected against each other (vbhc.reports.privacy): all
    dates ("") and every year of the condition's care cycles, the period filter's choices."""
    frame = volumes(database_url(), version())
    row = frame[frame["condition"].astype(str) == condition]
    if row.empty or pd.isna(row["first_index_date"].iloc[0]):
        return [""]
    first, last = pd.Timestamp(row["first_index_date"].iloc[0]), pd.Timestamp(row["last_index_date"].iloc[0])
    return ["", *(str(y) for y in range(int(last.year), int(first.year) - 1, -1))]


def grid_tables(condition: str, level: str, peers: tuple[str, ...] = ()) -> dict[str, pd.DataFrame]:
    """The full indicator tables of every period of the grid (grid_periods) of one view, as the pages read them:
    what the pages' masks and report downloads withhold their small cells against (vbhc.reports.privacy). A
    PeriodGrid: each period's PROM response and cost tables are read as the pages read them (derived)."""
    from vbhc.reports.privacy import PeriodGrid

    def derive(period: str, compute: Callable[[IndicatorResult], pd.DataFrame]) -> pd.DataFrame:
        return derived(condition, level, period, peers, compute)

    url, data_version = database_url(), version()

    def keep(digest: str, compute: Callable[[], dict]) -> dict:
        """The cells a download withholds over this grid, from the results store (a restart, another server
        process or `vbhc report` computed them), else computed and stored (vbhc.reports.privacy.grid_masks)."""
        return _store(url).masks(results.MasksKey(digest), _store_version(url, data_version), compute)

    # a department or team grid carries the hospital grid its files follow (vbhc.reports.privacy.grid_masks)
    hospitals = grid_tables(condition, "hospital", peers) if level != "hospital" else None
    tables = {p: result(condition, level, p, peers).table for p in grid_periods(condition)}
    return PeriodGrid(tables, derive, hospitals, keep)


def report_grids(results: Sequence[IndicatorResult], peers: tuple[str, ...] = ()) -> dict[str, dict] | None:
    """Per result's condition its grid_tables, for the report downloads (vbhc.reports build_workbook/build_pdf
    `grids`): the files of the pages withhold the same cells as `vbhc report` (vbhc.reports.core.grid_tables), so
    a page's file of all dates minus its files of each year gives no withheld cell back. None when small numbers
    are not withheld; a result off the grid (not one of the period filter's choices) gets no grid."""
    from vbhc.reports.privacy import on_grid

    if suppress_below() <= 0:
        return None
    return {r.condition: grid_tables(r.condition, r.level, peers) for r in results if on_grid(r.period)}


def own_hospital() -> str | None:
    """The hospital flagged as own in the units table, as `vbhc report` reads it (vbhc.reports.run.own_hospital)."""
    frame = units(database_url(), version())
    own = frame.loc[frame["own_hospital"].astype(bool), "hospital"] if "own_hospital" in frame else frame.iloc[:0]
    return str(own.iloc[0]) if len(own) else None


def _period_mask(viewer: Viewer, condition: str, level: str, period: str, peers: tuple[str, ...]):
    """The rows of the view's table to withhold for a viewer with withheld cells (vbhc.access.period_masks over
    every period of the grid: all dates and each year, read as the pages read them), computed once per scope of
    viewers and view; None for viewers who see every cell or when the period is not on the grid."""
    periods = grid_periods(condition)
    if period not in periods or not access.withholds_across_periods(viewer, condition):
        return None
    return _table_masks(viewer, condition, level, peers).get(period)


def _table_masks(viewer: Viewer, condition: str, level: str, peers: tuple[str, ...]) -> dict:
    """vbhc.access.period_masks of every period of the view's grid, kept per scope of viewers and view."""
    got = _grid_masks(viewer, condition, level, peers)
    return {} if got is None else got.masks


def _grid_masks(viewer: Viewer, condition: str, level: str, peers: tuple[str, ...]):
    """vbhc.access.period_grid_masks of the view's grid (the indicator tables with the PROM response and cost
    frames beside them, withheld jointly), kept per scope of viewers and view."""
    url, data_version = database_url(), version()
    key = (url, data_version, viewer.cache_key, suppress_below(), condition, level, tuple(sorted(peers)))
    with _visible_lock:
        got = _masks.get(key)
    if got is None:
        # a department or team grid follows the hospital level's (the same care cycles): no level differenced
        # against another (vbhc.reports.privacy.masks_from_hospitals)
        hospitals = _grid_masks(viewer, condition, "hospital", peers) if level != "hospital" else None
        grid = grid_tables(condition, level, peers)
        got = access.period_grid_masks(viewer, condition, grid, hospitals) or False
        with _visible_lock:
            _masks[key] = got
            while len(_masks) > _VISIBLE_SIZE:
                _masks.popitem(last=False)
    return got or None


#: Per scope of viewers and view (without its period), the rows to withhold in each period (_grid_masks).
_masks: OrderedDict[tuple, object] = OrderedDict()


#: The rows each scope of viewers may see, per view (result_for), least recently used dropped first.
_visible: OrderedDict[tuple, pd.DataFrame] = OrderedDict()
_visible_lock = threading.Lock()
_VISIBLE_SIZE = 256


def in_focus(viewer: Viewer, condition: str, level: str, unit: str) -> bool:
    """vbhc.access.may_focus_unit on the cached units table: whether the unit's figures by care cycle, quarter or
    window (below its cells in the comparison tables) may be shown to the viewer."""
    url, data_version = database_url(), version()
    return access.may_focus_unit(viewer, units(url, data_version), level, condition, unit)


#: group_answer's answers per database version, scope of viewers, view and chosen group (least recent dropped first).
_group_answers: OrderedDict[tuple, tuple[tuple[str, ...], bool, str | None]] = OrderedDict()


def group_answer(
    viewer: Viewer, condition: str, level: str, peers: tuple[str, ...]
) -> tuple[tuple[str, ...], bool, str | None]:
    """group_choice's answers (resolved(): the peers to use and whether the choice was refused; refusal(): why),
    decided once per dataset version, scope of viewers (Viewer.cache_key), view, chosen group and published groups
    and shared: they depend on nothing else (vbhc.access.GroupChoice), and every run asked them two or three times,
    each reading the registry tables from Streamlit's cache (a copy each time) and checking the group's atoms."""
    url, data_version = database_url(), version()
    chosen = tuple(sorted(set(peers)))
    key = (url, data_version, viewer.cache_key, condition, level, chosen, published_groups())
    with _visible_lock:
        found = _group_answers.get(key)
        if found is not None:
            _group_answers.move_to_end(key)
            return found
    choice = group_choice(viewer, condition, level, chosen)
    found = (*choice.resolved(), choice.refusal())
    with _visible_lock:
        _group_answers[key] = found
        while len(_group_answers) > _VISIBLE_SIZE:
            _group_answers.popitem(last=False)
    return found


def group_choice(viewer: Viewer, condition: str, level: str, peers: tuple[str, ...]) -> access.GroupChoice:
    """The viewer's chosen comparison group with the cached registry tables and the published groups, as one value
    (vbhc.access.GroupChoice): the sidebar asks it why a group was refused and which group to use."""
    url, data_version = database_url(), version()
    teams = condition_unit_years(url, data_version, condition)
    return access.GroupChoice.of(viewer, condition, level, peers, teams, units(url, data_version), published_groups())


def comparison_group(
    viewer: Viewer, condition: str, level: str, peers: tuple[str, ...]
) -> tuple[tuple[str, ...], bool]:
    """vbhc.access.comparison_group on the cached registry tables: (peers to use, whether the choice was refused)."""
    peers_used, refused, _ = group_answer(viewer, condition, level, peers)
    return peers_used, refused


def comparison_groups_offered(viewer: Viewer, condition: str, level: str) -> bool:
    """vbhc.access.comparison_groups_offered on the cached registry tables: whether the sidebar offers a group."""
    url, data_version = database_url(), version()
    teams = condition_unit_years(url, data_version, condition)
    return access.comparison_groups_offered(
        viewer, condition, level, teams, units(url, data_version), published_groups()
    )


def offered_groups(viewer: Viewer, condition: str, level: str) -> tuple[access.PublishedGroup, ...]:
    """vbhc.access.offered_groups on the cached registry tables: the published groups a manager may pick."""
    url, data_version = database_url(), version()
    teams = condition_unit_years(url, data_version, condition)
    return access.offered_groups(viewer, condition, level, teams, units(url, data_version), published_groups())


def offered_hospitals(viewer: Viewer | None, condition: str, level: str) -> list[list[str]]:
    """The hospitals of each group offered to a viewer who sees other units only through groups (a manager), for
    the PROM histogram's atoms (vbhc.disclosure.comparison_group_withheld); none for any other viewer."""
    if viewer is None or access.sees_all_units(viewer, condition):
        return []
    return [sorted(g.hospitals) for g in offered_groups(viewer, condition, level)]


def published_groups() -> tuple[access.PublishedGroup, ...]:
    """The published comparison groups (vbhc.access.load_comparison_groups), read again when the file changes;
    none when it is missing or wrong (the sidebar says what is wrong: published_groups_error)."""
    return _published_groups()[0]


def published_groups_error() -> str | None:
    """The one-line mistake in the published groups' file, None when it is fine or missing."""
    return _published_groups()[1]


def _published_groups() -> tuple[tuple[access.PublishedGroup, ...], str | None]:
    return per_run(("published_groups",), _published_groups_now)


def _published_groups_now() -> tuple[tuple[access.PublishedGroup, ...], str | None]:
    path = comparison_groups_file()
    try:
        stamp = path.stat().st_mtime
    except OSError:
        return (), None
    return _read_published(str(path), stamp)


@functools.lru_cache(maxsize=4)
def _read_published(path: str, stamp: float) -> tuple[tuple[access.PublishedGroup, ...], str | None]:
    try:
        return access.load_comparison_groups(path), None
    except access.AccessConfigError as exc:
        return (), str(exc)


@st.cache_resource(ttl=6 * 3600, max_entries=192, show_spinner=False)
def _derived(
    url: str, data_version: str, condition: str, level: str, period: str, peers: tuple[str, ...], name: str
) -> pd.DataFrame:
    full = _result(url, data_version, condition, level, period, peers)
    key = results.TableKey(results.ViewKey(condition, level, period, peers), name)
    return _store(url).table(key, _store_version(url, data_version), lambda: results.DERIVED_TABLES[name](full))


def kept_chart(digest: str, draw: Callable[[], bytes]) -> bytes:
    """A drawn chart by the digest of everything that draws it (a report's chart: vbhc.reports.pdf.chart_digest; a
    chart's PNG download: vbhc.charts.chart_png_digest), from the results store, else drawn (`draw`) and stored in
    the current dataset version's folder, which an import replaces. Why: drawing is 0.1-0.6 s of vl-convert per
    chart, the PDF report has several, and a page's PDF and PNG files were drawn again on every click, by every
    viewer; the digest holds the chart's data, so a viewer who may see other figures has another digest."""
    url = database_url()
    return _store(url).chart(results.ChartKey(digest), _store_version(url, version()), draw)


def derived(
    condition: str, level: str, period: str, peers: tuple[str, ...], compute: Callable[[IndicatorResult], pd.DataFrame]
) -> pd.DataFrame:
    """A table derived from the view's full result for every unit (vbhc.results.DERIVED_TABLES: the PROM response
    per timepoint, the cost per activity), kept in the results store beside the result, as the reports keep it:
    computed once per dataset version (by `vbhc import` for the default views), not on a viewer's first visit
    (1-2 s each at 1,000,000 cycles). Pages pass it through only_visible. Callers only read it."""
    return _derived(database_url(), version(), condition, level, period, tuple(sorted(peers)), compute.__name__)


def only_visible(
    result: IndicatorResult,
    frame: pd.DataFrame,
    what: str = "",
    *,
    viewer: Viewer | None = None,
    period: str = "",
    peers: tuple[str, ...] = (),
) -> pd.DataFrame:
    """Rows of a per-unit frame computed from the full data (cost by activity, PROM response) limited to the
    units the viewer's table names: a manager's other units never reach the page. Where vbhc.access withholds
    small cells (a care team limited to some hospitals), `what` ("prom_response", "cost_breakdown") applies the
    same rule to the frame: with `viewer` and the view's `period` and `peers` over the grid of periods (all dates
    and each year, as the indicator table: _frame_mask), so all dates minus the shown years gives no withheld
    row back; its own hospitals' rows are never withheld (it reads their patient rows)."""
    table = result.table
    mask = _frame_mask(viewer, result, frame, what, period, peers) if viewer is not None and what else None
    if mask is not None:
        from vbhc.reports.privacy import SuppressionRule, suppress_cost_breakdown, suppress_prom_response

        rule = SuppressionRule.from_settings()
        if what == "prom_response":
            frame = suppress_prom_response(frame, table, result, rule, mask=mask)
        else:
            frame = suppress_cost_breakdown(frame, rule, mask=mask)
    elif "suppressed" in table and table["suppressed"].astype(bool).any() and what:
        from vbhc.reports.privacy import SuppressionRule, suppress_cost_breakdown, suppress_prom_response

        rule = SuppressionRule.from_settings()
        if what == "prom_response":
            frame = suppress_prom_response(frame, table, result, rule)
        elif what == "cost_breakdown":
            frame = suppress_cost_breakdown(frame, rule)
    # cut to the units the table names for every viewer who does not see all units, not only when it lists
    # anonymised ones: a manager's table of own units only (fewer than MIN_OTHER_UNITS others, or a comparison
    # group's view) let every unit's PROM response and cost rows through by name
    restricted = (viewer is not None and not access.sees_all_units(viewer, result.condition)) or (
        "benchmark_withheld" in table or ("anonymised" in table and table["anonymised"].astype(bool).any())
    )
    if not restricted or "unit" not in frame:
        return frame
    shown = table.loc[~table["anonymised"].astype(bool)] if "anonymised" in table else table
    named = set(shown["unit"].astype(str)) if "unit" in shown else set()
    return frame[frame["unit"].astype(str).isin(named)]


def _frame_mask(
    viewer: Viewer, result: IndicatorResult, frame: pd.DataFrame, what: str, period: str, peers: tuple[str, ...]
):
    """The rows of `frame` (the view's PROM response or cost breakdown, every unit) to withhold for a viewer with
    withheld cells, over the grid of periods and jointly with the indicator tables (vbhc.access.period_grid_masks,
    other hospitals' small cells), computed once per scope of viewers and view; None for viewers who see every
    cell or off the grid."""
    condition, level = result.condition, result.level
    if what not in ("prom_response", "cost_breakdown") or period not in grid_periods(condition):
        return None
    if not access.withholds_across_periods(viewer, condition):
        return None
    got = _grid_masks(viewer, condition, level, peers)
    return None if got is None else got.frame_mask(what, period, frame)
