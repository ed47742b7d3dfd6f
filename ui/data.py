"""Cached access to the registry and the indicator engine, keyed by small plain arguments.

Keys always include the database URL and the dataset version, so a new import is visible at once and a
cached result never outlives the data it was computed from. Indicator results are shared objects
(cache_resource): pages only read them.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import threading

import pandas as pd
import streamlit as st
from sqlalchemy import Engine

from vbhc import access, registry
from vbhc.access import Viewer
from vbhc.indicators import IndicatorResult, compute_indicators, load_condition_data, restrict
from vbhc.settings import database_url
from vbhc.store import get_engine, upgrade_schema


@st.cache_resource
def engine(url: str) -> Engine:
    eng = get_engine(url)
    upgrade_schema(eng)
    return eng


def current_engine() -> Engine:
    return engine(database_url())


_this_run = threading.local()


def begin_run() -> None:
    """Start of a script run: from here on the dataset version is read from the database once per run (pages
    ask for it a dozen times, for every cache key)."""
    _this_run.versions = {}


def version(*, fresh: bool = False) -> str:
    """The dataset version (changes with every import). `fresh` reads it again, e.g. right after an import."""
    url = database_url()
    versions = getattr(_this_run, "versions", None)
    if versions is None:  # outside a script run (tests, warm-up): always read
        return registry.dataset_version(current_engine())
    if fresh or url not in versions:
        versions[url] = registry.dataset_version(current_engine())
    return versions[url]


@st.cache_data(ttl=3600, max_entries=8, show_spinner=False)
def units(url: str, data_version: str) -> pd.DataFrame:
    return registry.units(engine=engine(url))


@st.cache_data(ttl=3600, max_entries=64, show_spinner=False)
def unit_names(url: str, data_version: str, level: str, condition: str | None, lang: str) -> dict[str, str]:
    """Unit id -> display name (hospital and department names from the registry, the condition's label)."""
    from vbhc.catalog import default_catalog

    label = default_catalog().conditions[condition].label(lang) if condition else ""
    return registry.unit_names(units(url, data_version), level, condition, label)


@st.cache_data(ttl=3600, max_entries=8, show_spinner=False)
def volumes(url: str, data_version: str) -> pd.DataFrame:
    return registry.condition_volumes(engine=engine(url))


@st.cache_data(ttl=3600, max_entries=32, show_spinner=False)
def condition_units(url: str, data_version: str, condition: str) -> pd.DataFrame:
    return registry.condition_units(condition, engine=engine(url))


@st.cache_data(ttl=3600, max_entries=8, show_spinner=False)
def batches(url: str, data_version: str) -> pd.DataFrame:
    return registry.import_batches(engine=engine(url))


@st.cache_resource(ttl=6 * 3600, max_entries=96, show_spinner=False)
def _condition_data(url: str, data_version: str, condition: str, period: str, peers: tuple[str, ...]):
    """All of a condition's data is read once; a period or comparison group is cut from it in memory."""
    if period or peers:
        return restrict(_condition_data(url, data_version, condition, "", ()), period or None, list(peers) or None)
    return load_condition_data(condition, engine=engine(url))


@st.cache_resource(ttl=6 * 3600, max_entries=96, show_spinner=False)
def _result(
    url: str, data_version: str, condition: str, level: str, period: str, peers: tuple[str, ...]
) -> IndicatorResult:
    data = _condition_data(url, data_version, condition, period, peers)
    return compute_indicators(data, level)


#: Registries up to this many care cycles also get every year precomputed at start-up
#: (VBHC_WARM_UP_YEARS_UP_TO=0: only the default views, e.g. for the browser tests on 2 cores).
WARM_UP_YEARS_UP_TO = int(os.environ.get("VBHC_WARM_UP_YEARS_UP_TO", "200000"))


@st.cache_resource(show_spinner=False)
def start_warm_up(url: str, data_version: str) -> threading.Thread:
    """Compute the default view of every condition in the background once per server and dataset version,
    so the first visitor of a page does not wait for the case-mix models to be fitted."""

    def work() -> None:
        # the chart and report code's own start-up (imports, Altair's tables) before the first page needs it
        importlib.import_module("vbhc.reports")
        importlib.import_module("vbhc.charts").prepare()
        volumes = registry.condition_volumes(engine=engine(url))
        if volumes.empty:
            return
        conditions = [str(c) for c in volumes["condition"]]
        # the default view, then the department level (the managers' comparison) of the whole period
        views = [(c, "hospital", "") for c in conditions] + [(c, "department", "") for c in conditions]
        if volumes["care_cycles"].sum() <= WARM_UP_YEARS_UP_TO:
            # small registries: also every year, so a period change in a meeting is instant
            first, last = volumes["first_index_date"].min(), volumes["last_index_date"].max()
            years = [str(y) for y in range(last.year, first.year - 1, -1)]
            views += [(c, "hospital", year) for year in years for c in conditions]
            # and the department level of every year: cheap, as it reuses the year's case-mix models
            views += [(c, "department", year) for year in years for c in conditions]
        for condition, level, period in views:
            try:
                _result(url, data_version, condition, level, period, ())
            except Exception:
                continue  # a failing view shows its error when a page asks for it

    thread = threading.Thread(target=work, name="vbhc-warm-up", daemon=True)
    thread.start()
    return thread


def result(condition: str, level: str, period: str, peers: tuple[str, ...] = ()) -> IndicatorResult:
    """The indicator result for the filters (computed once per dataset version and filter combination).
    Pages use result_for, which applies the viewer's role."""
    return _result(database_url(), version(), condition, level, period, tuple(sorted(peers)))


def result_for(viewer: Viewer, condition: str, level: str, period: str, peers: tuple[str, ...] = ()) -> IndicatorResult:
    """The indicator result as this viewer may see it: vbhc.access filters the table (a manager gets other units
    anonymised), refuses a condition outside the viewer's roles, and records the view in the audit log. A
    comparison group too small for the viewer falls back to the whole registry (see comparison_group)."""
    peers = comparison_group(viewer, condition, level, peers)[0]
    full = result(condition, level, period, peers)
    url = database_url()
    table = access.indicator_rows(viewer, full.table, units=units(url, version()), engine=engine(url))
    return dataclasses.replace(full, table=table)


def comparison_group(
    viewer: Viewer, condition: str, level: str, peers: tuple[str, ...]
) -> tuple[tuple[str, ...], bool]:
    """vbhc.access.comparison_group on the cached registry tables: (peers to use, whether the choice was refused)."""
    url, data_version = database_url(), version()
    teams = condition_units(url, data_version, condition)
    return access.comparison_group(viewer, condition, level, peers, teams, units(url, data_version))


def only_visible(result: IndicatorResult, frame: pd.DataFrame, what: str = "") -> pd.DataFrame:
    """Rows of a per-unit frame computed from the full data (cost by activity, PROM response) limited to the
    units the viewer's table names: a manager's other units never reach the page. Where vbhc.access withheld
    small cells (a care team limited to some hospitals), `what` ("prom_response", "cost_breakdown") applies the
    same rule to the frame."""
    table = result.table
    if "suppressed" in table and table["suppressed"].astype(bool).any() and what:
        from vbhc.reports.privacy import SuppressionRule, suppress_cost_breakdown, suppress_prom_response

        rule = SuppressionRule.from_settings()
        if what == "prom_response":
            frame = suppress_prom_response(frame, table, result, rule)
        elif what == "cost_breakdown":
            frame = suppress_cost_breakdown(frame, rule)
    if "anonymised" not in table or not table["anonymised"].any() or "unit" not in frame:
        return frame
    named = set(table.loc[~table["anonymised"].astype(bool), "unit"].astype(str))
    return frame[frame["unit"].astype(str).isin(named)]
