"""Global filters in the sidebar, bound to the URL query string so a link reproduces the view."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import streamlit as st

from ui import data
from vbhc.catalog import default_catalog
from vbhc.i18n import SUPPORTED, choose_language, t
from vbhc.registry import UNIT_LEVELS, unit_labels
from vbhc.settings import database_url


@dataclass(frozen=True)
class Filters:
    lang: str
    condition: str
    level: str
    unit: str | None
    period: str  # "" = all dates
    peers: tuple[str, ...]  # hospitals of the comparison group; () = all


def language() -> str:
    """The viewer's language: URL (?lang=) first, then the browser's locale, else Dutch."""
    if "lang" not in st.session_state:
        st.session_state["lang"] = choose_language(st.query_params.get("lang"), getattr(st.context, "locale", None))
    return st.session_state["lang"]


def sidebar() -> Filters | None:
    """Draw the global filters; None when the registry holds no care cycles yet."""
    lang = language()
    st.sidebar.radio(
        t("filter.language", lang),
        SUPPORTED,
        key="lang",
        format_func=lambda code: t(f"language.{code}", lang),
        horizontal=True,
        bind="query-params",
    )
    lang = st.session_state["lang"]
    url, version = database_url(), data.version()
    volumes = data.volumes(url, version)
    if volumes.empty:
        return None
    catalog = default_catalog()
    conditions = [c for c in catalog.conditions if c in set(volumes["condition"])]
    condition = st.sidebar.selectbox(
        t("filter.condition", lang),
        conditions,
        key="condition",
        format_func=lambda c: catalog.conditions[c].label(lang),
        bind="query-params",
    )
    level = st.sidebar.selectbox(
        t("filter.unit_level", lang),
        UNIT_LEVELS,
        key="level",
        format_func=lambda v: t(f"level.{v}", lang),
        bind="query-params",
    )
    units = data.units(url, version)
    own = units.loc[units["own_hospital"], "hospital"]
    teams = data.condition_units(url, version, condition)
    options = sorted(set(unit_labels(teams.assign(condition=condition), level)))
    own_unit = [u for u in options if own.empty or u.split("/")[0].split("@")[-1] == own.iloc[0]]
    unit = st.sidebar.selectbox(
        t("filter.unit", lang),
        options,
        index=options.index(own_unit[0]) if own_unit else 0,
        key=f"unit_{level}",
        bind="query-params",
    )
    first, last = volumes["first_index_date"].min(), volumes["last_index_date"].max()
    years = [str(y) for y in range(int(last.year), int(first.year) - 1, -1)] if pd.notna(first) else []
    period = st.sidebar.selectbox(
        t("filter.period", lang),
        ["", *years],
        key="period",
        format_func=lambda p: t("filter.all", lang) if p == "" else p,
        bind="query-params",
    )
    hospitals = sorted(units["hospital"].unique())
    peers = st.sidebar.multiselect(
        t("filter.comparison_group", lang),
        hospitals,
        key="peers",
        format_func=lambda h: units.loc[units["hospital"] == h, "hospital_name"].iloc[0],
        placeholder=t("comparison.all_units", lang),
        bind="query-params",
    )
    chosen = tuple(sorted(peers))
    if chosen and unit is not None:
        unit_hospital = unit.split("/")[0].split("@")[-1]
        chosen = tuple(sorted({*chosen, unit_hospital}))
    return Filters(lang, condition, level, unit, period, chosen)


def current() -> Filters | None:
    return st.session_state.get("_filters")
