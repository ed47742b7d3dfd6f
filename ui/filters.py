"""Global filters in the sidebar, mirrored in the URL query string so a link reproduces the view.

The URL carries ids (condition=colorectal_cancer, unit_hospital=H03, lang=nl), never the translated labels a
widget shows, so a link made in Dutch works in English. Streamlit's own ``bind="query-params"`` writes the
displayed label, hence the small sync here: a widget is seeded from the URL when the session starts (or the
URL names a valid value the widget does not have yet), and its value is written back after every run.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pandas as pd
import streamlit as st

from ui import data
from vbhc import access
from vbhc.access import Viewer
from vbhc.catalog import default_catalog
from vbhc.i18n import DATE_INPUT_FORMAT, SUPPORTED, choose_language, t, unit_label
from vbhc.meeting import COMPARISON_MONTHS, default_meeting_date
from vbhc.registry import UNIT_LEVELS, hospital_of, unit_labels
from vbhc.safety import md_escape
from vbhc.settings import database_url


@dataclass(frozen=True)
class Filters:
    lang: str
    condition: str
    level: str
    unit: str | None
    period: str  # "" = all dates
    peers: tuple[str, ...]  # hospitals of the comparison group; () = all
    meeting: dt.date | None = None  # the last meeting (default: first day of this month)
    comparison: str = "quarter"  # length of the periods compared "since the last meeting"


def _seed(key: str, options: Sequence[str], *, many: bool = False, label: str = "") -> None:
    """Take the widget's value from the URL on the first run of a session (a shared link). A value the viewer is
    not offered (another condition, another hospital's unit, a level or period that does not exist) is not taken:
    the widget keeps what the viewer may see, and the refusal is said and audited (`_refuse_link`)."""
    seeded = st.session_state.setdefault("_seeded_from_url", set())
    if key in seeded:
        return
    seeded.add(key)
    raw = st.query_params.get(key)
    if raw is None:
        return
    if many:
        asked = [v for v in raw.split(",") if v]
        values = [v for v in asked if v in options]
        st.session_state[key] = values
        if len(values) != len(asked):
            _refuse_link(key, label, raw)
    elif raw in options:
        st.session_state[key] = raw
    else:
        _refuse_link(key, label, raw)


#: Session-state key of the filters a link asked for and the viewer was not offered: URL parameter -> {"label":
#: the filter's name, "run": the run that said so, "filters": the filters shown since} (see `_link_notices`).
LINK_REFUSED = "_link_refused"
#: Session-state key of the number of this session's sidebar runs (which run said a refusal already).
RUN_NUMBER = "_filters_run"


def _refuse_link(key: str, label: str, asked: str) -> None:
    """A link's filter value the viewer is not offered: said at once where the filter is (at the top of the page
    for the sidebar's filters, which are drawn before the page), kept to be said again on the next runs while the
    filters stay as the fallback set them (`_link_notices`), and audited as "denied" (vbhc.access)."""
    refused = st.session_state.setdefault(LINK_REFUSED, {})
    refused[key] = {"label": label, "run": st.session_state.get(RUN_NUMBER), "filters": None}
    viewer = st.session_state.get("_viewer")
    if viewer is not None:
        access.record_refused_link(viewer, key, asked, engine=data.current_engine())
    st.warning(t("auth.link_refused", language(), filter=label), icon=":material/link_off:")


def _link_notices(chosen: Filters) -> None:
    """Say again, on the runs after the one that refused it, what a link asked for and did not get, while the
    sidebar's filters are still those of the fallback; dropped once the viewer picks other filters. (A shared link
    opens with a run that may not be the last before the viewer reads the page.)"""
    refused = st.session_state.get(LINK_REFUSED)
    if not refused:
        return
    run = st.session_state.get(RUN_NUMBER)
    for key, entry in list(refused.items()):
        if entry["filters"] is None:
            entry["filters"] = chosen
        elif entry["filters"] != chosen:
            del refused[key]
            continue
        if entry["run"] != run:
            st.warning(t("auth.link_refused", chosen.lang, filter=entry["label"]), icon=":material/link_off:")


def _publish(key: str, value: object, default: object = None) -> None:
    """Write the widget's id value into the URL (and drop it when it is the default)."""
    text = ",".join(value) if isinstance(value, list | tuple) else ("" if value is None else str(value))
    if value == default or text == "":
        if key in st.query_params:
            del st.query_params[key]
    elif st.query_params.get(key) != text:
        st.query_params[key] = text


def synced(widget: Callable, label: str, options: Sequence[str], *, key: str, default=None, many=False, **kwargs):
    """A selectbox/radio/multiselect whose value (an id) is seeded from and written back to the URL.

    The widget is drawn with its current value as its index (default, for a multiselect) on every run, not only
    on the first: the browser falls back to that when it holds no value of its own for the widget (drawn again
    after a run that did not draw it) and sends it with the next click, so a filter can never fall back to its
    first option behind the viewer's back (see `LANGUAGE_WIDGET`)."""
    options = list(options)
    _seed(key, options, many=many, label=label)
    keep_valid(key, options, default, many=many)
    current = st.session_state.get(key, default)
    if many:
        kwargs["default"] = [v for v in (current or []) if v in options]
    elif current in options:
        kwargs["index"] = options.index(current)
    value = widget(label, options, key=key, **kwargs)
    _publish(key, value, default if default is not None else ([] if many else options[0] if options else None))
    return value


def synced_toggle(label: str, *, key: str, **kwargs) -> bool:
    """A page toggle kept in the URL (key=1 when on; off is the default and leaves the URL clean), so a shared
    link opens with the same option. Its value is remembered between tabs: Streamlit forgets a widget's state in
    runs that do not draw it."""
    seeded = st.session_state.setdefault("_seeded_from_url", set())
    if key not in seeded:
        seeded.add(key)
        if st.query_params.get(key) in ("0", "1"):
            st.session_state[key] = st.query_params.get(key) == "1"
    remembered = f"_{key}"
    if key not in st.session_state and remembered in st.session_state:
        st.session_state[key] = st.session_state[remembered]
    value = bool(st.toggle(label, key=key, **kwargs))
    st.session_state[remembered] = value
    _publish(key, "1" if value else "0", "0")
    return value


def keep_valid(key: str, options: Sequence, default=None, *, many: bool = False) -> None:
    """Before a widget whose options depend on another filter is drawn: a value that is no longer an option
    (the indicator or unit of the previous condition, a comparison hospital outside the new list) is replaced
    by the default (else the first option). Replaced, not deleted: Streamlit keeps a keyed widget's front-end
    state when only its options change, so without a new value the box would go on showing the old label while
    the page shows the new default."""
    if key not in st.session_state:
        return
    options = list(options)
    current = st.session_state[key]
    if many:
        kept = [v for v in (current or []) if v in options]
        if kept != list(current or []):
            st.session_state[key] = kept
    elif current not in options:
        if options:
            st.session_state[key] = default if default in options else options[0]
        else:
            del st.session_state[key]


#: Session-state keys of the global filters (the unit's key depends on the level: unit_hospital, ...). Not the
#: language: it carries over under `CHOSEN_LANGUAGE`, and its radio's state is never written (`LANGUAGE_WIDGET`).
FILTER_KEYS = ("condition", "level", *(f"unit_{level}" for level in UNIT_LEVELS), "period", "peers", "peer_group")


def carry_over(**changes: object) -> None:
    """A button callback before st.switch_page: sets the filters in `changes` and carries the others over.

    st.switch_page starts the next run without the widgets' states (and clears the URL), so the sidebar would
    fall back to its defaults: values written by a callback are kept, so every filter is written again here.
    Callbacks run before the sidebar's widgets are drawn, so this never touches an instantiated widget."""
    for key in FILTER_KEYS:
        if key in changes:
            st.session_state[key] = changes[key]
        elif key in st.session_state:
            st.session_state[key] = st.session_state[key]


def keep_tab(key: str, label_keys: Sequence[str]) -> None:
    """Stateful tabs remember the open tab by its label: after a language switch the same tab's label in the new
    language is put in place, so the open tab stays open."""
    value = st.session_state.get(key)
    if value is None:
        return
    lang = language()
    for label_key in label_keys:
        if value in {t(label_key, code) for code in SUPPORTED}:
            st.session_state[key] = t(label_key, lang)
            return
    del st.session_state[key]


#: The session's language outside the language widget's own key: Streamlit drops a widget's state after a run that
#: did not draw it (a page switch that stopped early), and the next run would then take the language from the URL,
#: which a page switch has just cleared, so a session could fall back to another language in the middle of a walk.
CHOSEN_LANGUAGE = "_chosen_lang"


def language() -> str:
    """The viewer's language: the one chosen in this session, else the URL's (?lang=), then the browser's locale,
    else Dutch. Read only: the language radio's state is never set from here (see `LANGUAGE_WIDGET`)."""
    chosen = st.session_state.get(LANGUAGE_WIDGET)
    if chosen not in SUPPORTED:
        chosen = st.session_state.get(CHOSEN_LANGUAGE)
    if chosen not in SUPPORTED:
        chosen = choose_language(st.query_params.get("lang"), getattr(st.context, "locale", None))
    st.session_state[CHOSEN_LANGUAGE] = chosen
    return chosen


#: The language radio's key. Its value is never written through Session State before the radio is drawn: a
#: radio whose value came from Session State has no value of its own in the browser, and after a fast run the
#: browser could send its first option (Nederlands) back with the next click. The radio gets the session's
#: language as its `index` on every run instead: the index is where the server starts a radio that has no state
#: (a session's first run, or after a run that did not draw it) and also what the browser falls back to when it
#: holds no value of its own for the radio (the radio drawn again after a run that did not draw it), so neither
#: side can fall back to the first option. The radio's identity is its key alone, so the index may change.
LANGUAGE_WIDGET = "lang"


def _language_radio(lang: str) -> str:
    """The language choice in the sidebar, always in the URL (a link's reader gets the sender's language)."""
    chosen = st.sidebar.radio(
        t("filter.language", lang),
        SUPPORTED,
        index=SUPPORTED.index(lang),
        key=LANGUAGE_WIDGET,
        format_func=lambda code: t(f"language.{code}", lang),
        horizontal=True,
    )
    _publish(LANGUAGE_WIDGET, chosen, "__always__")
    return chosen


def sidebar(viewer: Viewer) -> Filters | None:
    """Draw the global filters (only the conditions and units the viewer may see); None when the registry holds
    no care cycles yet, or none the viewer may see."""
    st.session_state[RUN_NUMBER] = st.session_state.get(RUN_NUMBER, 0) + 1
    asked = st.query_params.get(LANGUAGE_WIDGET)  # before the radio writes the language it shows into the URL
    lang = _language_radio(language())
    st.session_state[CHOSEN_LANGUAGE] = lang
    seeded = st.session_state.setdefault("_seeded_from_url", set())
    if LANGUAGE_WIDGET not in seeded:  # a link's language that is not offered: the page's own, said and audited
        seeded.add(LANGUAGE_WIDGET)
        if asked and asked not in SUPPORTED:
            _refuse_link("language", t("filter.language", lang), asked)
    url, version = database_url(), data.version()
    volumes = data.volumes(url, version)
    if volumes.empty:
        return None
    catalog = default_catalog()
    conditions = [
        c for c in catalog.conditions if c in set(volumes["condition"]) and access.may_view_condition(viewer, c)
    ]
    if not conditions:
        return None
    condition = synced(
        st.sidebar.selectbox,
        t("filter.condition", lang),
        conditions,
        key="condition",
        format_func=lambda c: catalog.conditions[c].label(lang),
    )
    level = synced(
        st.sidebar.selectbox,
        t("filter.unit_level", lang),
        UNIT_LEVELS,
        key="level",
        format_func=lambda v: t(f"level.{v}", lang),
    )
    units = data.units(url, version)
    own = units.loc[units["own_hospital"], "hospital"]
    teams = data.condition_units(url, version, condition)
    options = sorted(set(unit_labels(teams.assign(condition=condition), level)))
    # a manager picks among their own units only, a care team limited to some hospitals among theirs: a unit in
    # focus is shown by care cycle, quarter and meeting window (vbhc.access.focus_units)
    focus = access.focus_units(viewer, units, level, condition)
    if focus is not None:
        options = [u for u in options if u in set(focus)]
    own_units = [u for u in options if not own.empty and hospital_of(u) == own.iloc[0]]
    names = unit_names(level, condition, lang)
    unit = synced(
        st.sidebar.selectbox,
        t("filter.unit", lang),
        options,
        key=f"unit_{level}",
        default=own_units[0] if own_units else (options[0] if options else None),
        format_func=lambda u: names.get(u) or unit_label(u, lang),
        help=t("pages.unit_help", lang),
    )
    first, last = volumes["first_index_date"].min(), volumes["last_index_date"].max()
    years = [str(y) for y in range(int(last.year), int(first.year) - 1, -1)] if pd.notna(first) else []
    period = synced(
        st.sidebar.selectbox,
        t("filter.period", lang),
        ["", *years],
        key="period",
        format_func=lambda p: t("filter.all", lang) if p == "" else p,
    )
    problem = access.published_groups_problem(viewer, data.published_groups_error(), lang)
    if problem:  # the published groups' file is wrong: no group until it is mended (the mistake to its keepers)
        st.sidebar.error(md_escape(problem))
    if not data.comparison_groups_offered(viewer, condition, level):
        # a group would give other hospitals' withheld cells back, or no group can leave enough other hospitals
        # inside and outside it (vbhc.access.comparison_group refuses any): not offered, and said why; a shared
        # link's group is dropped from the URL
        why = (
            t("comparison.not_with_withheld", lang)
            if access.withholds_across_periods(viewer, condition)
            else t("comparison.no_group_possible", lang, count=access.MIN_OTHER_UNITS)
        )
        st.sidebar.caption(f"**{t('filter.comparison_group', lang)}**: {why}")
        seeded = st.session_state.setdefault("_seeded_from_url", set())
        if "peers" not in seeded:
            seeded.add("peers")
            if st.query_params.get("peers"):  # a link's group: refused like any value the viewer is not offered
                _refuse_link("peers", t("filter.comparison_group", lang), st.query_params.get("peers"))
        _publish("peers", [], [])
        peers: list[str] = []
    elif not access.sees_all_units(viewer, condition):
        # a manager picks a published group (vbhc.access.offered_groups), never a free set of hospitals: two free
        # sets differing by one hospital gave that hospital's figures; a link's free group is refused and dropped
        groups = {g.name: g for g in data.offered_groups(viewer, condition, level)}
        seeded = st.session_state.setdefault("_seeded_from_url", set())
        if "peers" not in seeded:
            seeded.add("peers")
            if st.query_params.get("peers"):
                _refuse_link("peers", t("filter.comparison_group", lang), st.query_params.get("peers"))
        _publish("peers", [], [])
        name = synced(
            st.sidebar.selectbox,
            t("filter.comparison_group", lang),
            ["", *groups],
            key="peer_group",
            format_func=lambda g: g or t("comparison.all_units", lang),
        )
        peers = sorted(groups[name].hospitals) if name in groups else []
    else:
        hospitals = sorted(units["hospital"].unique())
        hospital_names = unit_names("hospital", condition, lang)
        peers = synced(
            st.sidebar.multiselect,
            t("filter.comparison_group", lang),
            hospitals,
            key="peers",
            many=True,
            format_func=lambda h: hospital_names.get(h, h),
            placeholder=t("comparison.all_units", lang),
        )
    chosen = tuple(sorted(peers))
    if chosen and unit is not None:
        chosen = tuple(sorted({*chosen, hospital_of(unit)}))
    chosen, refused, reason = data.group_answer(viewer, condition, level, chosen)
    if refused:  # too few other units, in the group or outside it: one could be singled out; all units instead
        st.sidebar.warning(t(reason or access.GROUP_TOO_SMALL, lang, count=access.MIN_OTHER_UNITS))
    meeting = _meeting_date(t("meeting.date", lang), lang)
    comparison = synced(
        st.sidebar.selectbox,
        t("meeting.comparison", lang),
        list(COMPARISON_MONTHS),
        key="comparison",
        default="quarter",
        format_func=lambda c: t(f"meeting.{c}", lang),
    )
    shown = Filters(lang, condition, level, unit, period, chosen, meeting, comparison)
    _link_notices(shown)
    return shown


def _meeting_date(label: str, lang: str) -> dt.date:
    """The last meeting's date, seeded from and written back to the URL (?meeting=2026-11-01) like the other
    filters; the default (first day of this month) is left out of the URL. Shown in the language's date order
    (the URL keeps the ISO date)."""
    key, default = "meeting", default_meeting_date()
    seeded = st.session_state.setdefault("_seeded_from_url", set())
    if key not in seeded:
        seeded.add(key)
        asked = st.query_params.get(key)
        try:
            st.session_state[key] = dt.date.fromisoformat(str(asked or ""))
        except ValueError:
            if asked:  # not a date: the default, said and audited like any refused link value
                _refuse_link(key, label, asked)
    kwargs = {} if key in st.session_state else {"value": default}
    value = st.sidebar.date_input(label, key=key, format=DATE_INPUT_FORMAT[lang], **kwargs)
    value = value if isinstance(value, dt.date) else default
    _publish(key, value.isoformat(), default.isoformat())
    return value


def current() -> Filters | None:
    return st.session_state.get("_filters")


def unit_names(level: str, condition: str | None, lang: str) -> dict[str, str]:
    """Unit id -> display name at `level` (vbhc.registry.unit_names on the cached units table)."""
    return data.unit_names(database_url(), data.version(), level, condition, lang)


def unit_name(unit: object, level: str | None = None, condition: str | None = None, lang: str | None = None) -> str:
    """The display name of a unit id under the current filters (or the given ones). Anything that is not a
    unit id of the registry, such as a manager's "other unit 3" from vbhc.access, is shown in the reader's words
    (i18n.unit_label: "Andere eenheid 3")."""
    if unit is None or (isinstance(unit, float) and pd.isna(unit)):
        return "–"
    chosen = current()
    level = level or (chosen.level if chosen else "hospital")
    condition = condition or (chosen.condition if chosen else None)
    lang = lang or (chosen.lang if chosen else language())
    return unit_names(level, condition, lang).get(str(unit)) or unit_label(unit, lang)


def with_unit_names(frame: pd.DataFrame, column: str = "unit", *, level: str | None = None) -> pd.DataFrame:
    """A copy of `frame` for a chart or table: `column` holds the units' display names, `unit_label` too (the
    name charts may plot), `unit_id` keeps the id (for tooltips and exports)."""
    if column not in frame:
        return frame
    chosen = current()
    lang = chosen.lang if chosen else language()
    names = unit_names(level or (chosen.level if chosen else "hospital"), chosen.condition if chosen else None, lang)
    ids = frame[column].astype(str)
    shown = ids.map(lambda u: names.get(u) or unit_label(u, lang))  # "other unit 3" in the reader's words
    return frame.assign(**{"unit_id": ids, column: shown, "unit_label": shown})
