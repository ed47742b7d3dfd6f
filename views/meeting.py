"""Meeting: the condition team's monthly improvement meeting, generated from the stored improvement cycle (issue 14).

The agenda comes from vbhc.agenda (new signals since the previous meeting, open and overdue items, targets and
actions); the forms write through vbhc.improvement, which enforces the role rules. Forms submit through callbacks:
they run before the page is drawn again, with the versions the viewer saw, so a stale edit is refused
(EditConflict) and the page then shows the current state.
"""

import datetime as dt
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import TypeVar

import pandas as pd
import streamlit as st

from ui import auth, data, filters, guard, render
from vbhc import action_effect, charts, improvement, minutes
from vbhc import agenda as meeting_agenda
from vbhc.access import AccessDenied, may_edit_improvement
from vbhc.catalog import default_catalog
from vbhc.i18n import DATE_INPUT_FORMAT, MISSING, SUPPORTED, fmt_date, fmt_int, format_value, t, t_md
from vbhc.improvement import ALL_UNITS, ImprovementError
from vbhc.improvement_sheets import export_actions, export_targets
from vbhc.indicators import indicator_over_time
from vbhc.meeting import data_complete_until, default_meeting_date
from vbhc.reports.minutes import FORMATS as MINUTES_FORMATS
from vbhc.reports.minutes import MIME, describe_item, export_minutes, minutes_content, minutes_file_name
from vbhc.safety import md_escape, safe_file_name
from vbhc.settings import signal_explain_days

T = TypeVar("T")

chosen, lang = render.page_start("agenda.title")
viewer = auth.current()
engine = data.current_engine()
condition = default_catalog().condition(chosen.condition)
unit = chosen.unit
# a meeting date the viewer chose in the sidebar; else the last recorded meeting (vbhc.agenda), else the start of
# the latest comparison period with data (as the team page's "since the last meeting")
chosen_since = chosen.meeting if chosen.meeting not in (None, default_meeting_date()) else None
result = data.result_for(viewer, chosen.condition, chosen.level, chosen.period, chosen.peers)
agenda = meeting_agenda.meeting_agenda(
    engine,
    viewer,
    chosen.condition,
    chosen_since,
    unit=unit,
    values=meeting_agenda.unit_values(result.table, unit),
    until=data_complete_until(result.data) if result.data is not None else None,
    comparison=chosen.comparison,
)
since = agenda.since
recorded = minutes.meetings(engine, viewer, chosen.condition, unit=unit)
st.caption(
    t_md(
        "agenda.intro" if agenda.since_meeting else "agenda.intro_no_meeting",
        lang,
        condition=condition.label(lang),
        unit=filters.unit_name(unit) if unit else t("agenda.all_units", lang),
        date=fmt_date(since, lang),
    )
)

# what the last form did (set by its callback, which ran before this run)
flash = st.session_state.pop("_meeting_flash", None)
if flash:
    (st.success if flash[0] == "ok" else st.error)(flash[1])
# the versions shown now: the next form submit is based on them
st.session_state["_meeting_versions"] = agenda.versions
st.session_state["_meeting_records"] = minutes.versions_seen(recorded, unit or ALL_UNITS)


def indicator_label(indicator: str) -> str:
    return condition.indicator(indicator).label(lang)


def value_text(value: float | None, indicator: str) -> str:
    return MISSING if value is None else format_value(value, condition.indicator(indicator).kind, lang)


def unit_text(item_unit: str, level: str | None = None) -> str:
    return unit_text_for(item_unit, lang, level)


def unit_text_for(item_unit: str, reader: str, level: str | None = None) -> str:
    """An item's unit by name ("all units" for the whole condition); also for the forms' callbacks, which run
    before this run has set the page's language."""
    return t("agenda.all_units", reader) if item_unit == ALL_UNITS else filters.unit_name(item_unit, level)


def label(prefix: str, value: str | None) -> str:
    return t(f"improvement.{prefix}_{value}", lang) if value else MISSING


def signal_rows(signals: list, *, explained: bool = True) -> pd.DataFrame:
    rows = []
    for s in signals:
        row = {
            t("column.indicator", lang): indicator_label(s.indicator),
            t("column.unit", lang): unit_text(s.unit, s.level),
            t("agenda.col_rule", lang): label("rule", s.rule),
            t("agenda.col_side", lang): label("side", s.side),
            t("agenda.col_value", lang): value_text(s.value, s.indicator),
            t("agenda.col_detected", lang): fmt_date(s.detected_at, lang),
            t("agenda.col_status", lang): label("status", s.status),
        }
        if explained:
            row[t("agenda.col_explanation", lang)] = label("explanation", s.explanation)
            if agenda.may_edit:  # the team's own words; a manager reads the status only
                row[t("agenda.field_explanation_text", lang)] = s.explanation_text or MISSING
            row[t("agenda.col_decision", lang)] = label("decision", s.decision)
        rows.append(row)
    return pd.DataFrame(rows)


def action_rows(actions: list) -> pd.DataFrame:
    rows = []
    for a in actions:
        row = {
            t("agenda.field_title", lang): a.title,
            t("column.unit", lang): unit_text(a.unit),
            t("agenda.col_owner", lang): a.owner_role,
            t("agenda.field_start", lang): fmt_date(a.start, lang),
            t("agenda.field_due", lang): fmt_date(a.due, lang),
            t("agenda.col_status", lang): label("action", a.status),
            t("agenda.col_linked", lang): ", ".join(indicator_label(i) for i in a.indicator_ids) or MISSING,
        }
        if agenda.may_edit:
            row[t("agenda.field_expected_effect", lang)] = a.expected_effect or MISSING
        rows.append(row)
    return pd.DataFrame(rows)


def target_rows() -> pd.DataFrame:
    met = {True: t("agenda.met_yes", lang), False: t("agenda.met_no", lang), None: MISSING}
    rows = []
    for r in agenda.targets:
        target = r.target
        rows.append(
            {
                t("column.indicator", lang): indicator_label(target.indicator),
                t("column.unit", lang): unit_text(target.unit),
                t("agenda.col_kind", lang): label("target", target.kind),
                t("agenda.col_direction", lang): label("direction", target.direction),
                t("agenda.col_target", lang): value_text(target.value, target.indicator),
                t("agenda.field_source", lang): target.source or MISSING,
                t("agenda.field_valid_from", lang): fmt_date(target.valid_from, lang),
                t("agenda.col_current", lang): value_text(r.value, target.indicator),
                t("agenda.col_met", lang): met[r.met],
            }
        )
    return pd.DataFrame(rows)


def pick_item(
    label_key: str,
    by_id: Mapping[str, T],
    key: str,
    describe: Callable[[T], str],
    qualifiers: Sequence[Callable[[T], str]] = (),
) -> T:
    """One of the items `by_id` (item id -> item), picked in a selectbox described in the viewer's words, never by
    its id: items described alike are told apart by `qualifiers` (meeting_agenda.distinct_labels). The choice
    is kept in session state under `key` and replaced by the first item when it left the list (another filter,
    a new version), so the box never holds an id it no longer offers."""
    filters.keep_valid(key, list(by_id))
    names = dict(zip(by_id, meeting_agenda.distinct_labels(list(by_id.values()), describe, qualifiers), strict=True))
    return by_id[st.selectbox(t(label_key, lang), list(by_id), key=key, format_func=names.__getitem__)]


def action_qualifiers() -> list[Callable]:
    """What tells two actions of the same title apart for a care team: unit, owner, due date, start date."""
    return [
        lambda a: unit_text(a.unit),
        lambda a: a.owner_role or MISSING,
        lambda a: t("agenda.due_on", lang, date=fmt_date(a.due, lang)),
        lambda a: t("agenda.start_on", lang, date=fmt_date(a.start, lang)),
    ]


def signal_name(s: object) -> str:
    return " · ".join((indicator_label(s.indicator), unit_text(s.unit, s.level)))


def signal_qualifiers() -> list[Callable]:
    """What tells two signals of one indicator and unit apart: the rule, the side, when it was found."""
    return [
        lambda s: label("rule", s.rule),
        lambda s: label("side", s.side),
        lambda s: fmt_date(s.detected_at, lang),
    ]


def show(frame: pd.DataFrame) -> None:
    if frame.empty:
        st.caption(t("agenda.nothing", lang))
        return
    widths = {t("column.indicator", lang): 190}
    render.static_table(frame, widths=widths)  # explanations are sentences: cells wrap, rows grow


# --- the agenda -------------------------------------------------------------------------------------------------
if not agenda.may_edit:
    st.info(t("agenda.status_only", lang), icon=":material/visibility:")
st.subheader(t("agenda.new_signals", lang, date=fmt_date(since, lang)))
show(signal_rows(agenda.new_signals, explained=False))
st.subheader(t("agenda.open_signals", lang))
show(signal_rows(agenda.open_signals))
st.subheader(t("agenda.overdue", lang))
st.markdown(f"##### {t('agenda.overdue_signals', lang, count=signal_explain_days())}")
show(signal_rows(agenda.overdue.signals, explained=False))
st.markdown(f"##### {t('agenda.overdue_actions', lang)}")
show(action_rows(agenda.overdue.actions))
st.subheader(t("agenda.targets", lang))
show(target_rows())
st.subheader(t("agenda.actions", lang))
show(action_rows(agenda.actions))


# --- an action's before and after --------------------------------------------------------------------------------
def _visible(table: pd.DataFrame, where: str) -> bool:
    """Whether the viewer's result table names the unit with its figures (not anonymised, not withheld)."""
    rows = table[table["unit"].astype(str) == where]
    for column in ("anonymised", "suppressed"):
        if column in rows:
            rows = rows[~rows[column].fillna(False).astype(bool)]
    return not rows.empty


def effect_section() -> None:
    """Per action linked to an indicator: the indicator of the action's unit (or the chosen unit, for an action
    of every unit) in equal windows before and after its start, the difference with its 95% CI and the verdict
    (vbhc.action_effect), and the trend with SPC phases split at the start. Counts and rates only."""
    st.subheader(t("action_effect.title", lang))
    linked = {a.item_id: a for a in agenda.actions if a.indicator_ids}
    if not linked:
        st.caption(t("action_effect.none", lang))
        return
    st.caption(t("action_effect.intro", lang))
    picked = pick_item(
        "action_effect.pick",
        linked,
        "mt_effect_action",
        lambda a: t("action_effect.pick_value", lang, title=a.title, date=fmt_date(a.start, lang)),
        action_qualifiers(),
    )
    where = picked.unit if picked.unit != ALL_UNITS else unit
    if not where:
        st.caption(t("action_effect.no_unit", lang))
        return
    level = action_effect.unit_level(where)
    full = data.result_for(viewer, chosen.condition, level, "", ())  # all dates: windows either side of the start
    place = unit_text(where, level)
    # windows and quarters of the unit: only of a unit the viewer may take in focus (vbhc.access.focus_units)
    in_focus = data.in_focus(viewer, chosen.condition, level, where)
    for indicator in picked.indicator_ids:
        name, kind = indicator_label(indicator), condition.indicator(indicator).kind
        if not in_focus or not _visible(full.table, where):
            st.caption(t("action_effect.not_visible", lang, indicator=name, unit=place))
            continue
        try:
            effect = render.cached(
                ("action_effect", picked.item_id, picked.version, indicator, where),
                lambda indicator=indicator: action_effect.action_effect(full, indicator, where, picked.start),
                by_language=False,
            )
        except ValueError:  # a kind of indicator without a before and after (a response rate)
            st.caption(t("action_effect.not_assessable", lang, indicator=name))
            continue
        # the names are data (escaped); the verdict is the catalog's words and numbers
        st.markdown(f"**{md_escape(name)} · {md_escape(place)}**: {effect.sentence(lang)}")
        if effect.before is not None and effect.after is not None:
            st.caption(
                t(
                    "action_effect.windows",
                    lang,
                    before_first=fmt_date(effect.before.first, lang),
                    before_last=fmt_date(effect.before.last, lang),
                    before_n=fmt_int(effect.before.n, lang),
                    after_first=fmt_date(effect.after.first, lang),
                    after_last=fmt_date(effect.after.last, lang),
                    after_n=fmt_int(effect.after.n, lang),
                )
            )
        adjusted = effect.adjusted_sentence(lang)
        if adjusted:
            st.caption(adjusted)
        if effect.method:
            st.caption(t(f"action_effect.method_{effect.method}", lang))
        trend = render.cached(
            ("action_effect_trend", picked.item_id, picked.version, indicator, where),
            lambda indicator=indicator: indicator_over_time(full, indicator, where, freq="QS", rebase=[picked.start]),
            by_language=False,
        )
        if trend is not None and len(trend):
            render.cached_chart(
                ("action_effect_chart", picked.item_id, picked.version, indicator, where),
                lambda trend=trend, kind=kind: charts.trend_chart(trend, kind=kind, lang=lang, actions=[picked]),
            )
            st.caption(t("action_effect.chart", lang))


effect_section()


# --- recording what the meeting decided (care team of the condition, quality directorate) -----------------------
def _flash(ok: bool, text: str) -> None:
    st.session_state["_meeting_flash"] = ("ok" if ok else "error", text)


def _log_unexpected(exc: Exception) -> None:
    """A failure that is not a refusal (a bug, a lost database) goes to the server log with its traceback: the page
    shows one line, the operator needs the rest."""
    if not isinstance(exc, ImprovementError | AccessDenied):
        logging.getLogger("vbhc.meeting").error("meeting page write failed", exc_info=exc)


def _refusal(exc: Exception, lang: str) -> str:
    """A refused or failed write as one line in the viewer's language: who changed the item and when for a stale
    edit, the translated reason for a refused value, never a traceback."""
    try:
        if isinstance(exc, improvement.EditConflict):  # an item's or a meeting record's (minutes.MeetingConflict)
            return f"{meeting_agenda.error_text(exc, lang)} {t('agenda.now_current', lang)}"
        if isinstance(exc, ImprovementError):
            return meeting_agenda.error_text(exc, lang)
        if isinstance(exc, AccessDenied):
            return t("agenda.not_allowed", lang)
    except Exception:  # a message that cannot be built still says that nothing was saved
        pass
    return t("agenda.write_failed", lang, error=type(exc).__name__)


def _save(what: str, lang: str) -> None:
    """A form's callback: write with the version the viewer saw; every refusal becomes one translated line."""
    state = st.session_state
    seen = state.get("_meeting_versions", {})
    viewer, engine, chosen = auth.current(), data.current_engine(), filters.current()
    try:
        if what == "explain":
            sid = state["mt_explain_signal"]
            item = improvement.explain_signal(
                engine, viewer, sid, seen.get(sid, 0), state["mt_explain_kind"], state["mt_explain_text"]
            )
        elif what == "decide":
            sid = state["mt_decide_signal"]
            item = improvement.decide_signal(engine, viewer, sid, seen.get(sid, 0), state["mt_decide_choice"])
        elif what == "action":
            indicator, signal = state["mt_action_indicator"], state["mt_action_signal"]
            item = improvement.create_action(
                engine,
                viewer,
                chosen.condition,
                state["mt_action_title"],
                state["mt_action_owner"],
                state["mt_action_start"],
                state["mt_action_due"],
                unit=chosen.unit or ALL_UNITS,
                indicators=[indicator] if indicator else [],
                signals=[signal] if signal else [],
                expected_effect=state["mt_action_effect"],
                status=state.get("mt_action_status") or improvement.ActionStatus.PLANNED,
            )
        else:  # a team goal or an external norm
            prefix = f"mt_{what}"
            indicator, value = state[f"{prefix}_indicator"], state[f"{prefix}_value"]
            if value is None:
                raise ImprovementError("empty", field="value")
            kind = default_catalog().condition(chosen.condition).indicator(indicator).kind
            # a goal of the whole condition; a care team limited to some hospitals sets its unit's goal instead
            whole = may_edit_improvement(viewer, chosen.condition, ALL_UNITS)
            item = improvement.set_target(
                engine,
                viewer,
                chosen.condition,
                indicator,
                meeting_agenda.from_shown(float(value), kind),
                kind=improvement.TargetKind.EXTERNAL_NORM if what == "norm" else improvement.TargetKind.TEAM_GOAL,
                source=state.get(f"{prefix}_source", ""),
                valid_from=state[f"{prefix}_valid_from"],
                unit=ALL_UNITS if whole else chosen.unit or ALL_UNITS,
            )
    except Exception as exc:  # never a traceback on the page; the write was one transaction and rolled back
        _log_unexpected(exc)
        _flash(False, _refusal(exc, lang))
    else:
        # what was saved in the reader's words (a goal's item id appears in no table on the page)
        named = describe_item(item, lang, lambda u: unit_text_for(u, lang))
        _flash(True, t("agenda.saved", lang, item=named, version=item.version))


def _import(lang: str) -> None:
    """The upload's callback: all rows or none; a refused file is its one-line problem."""
    upload = st.session_state.get("mt_upload")
    if upload is None:
        return
    viewer, engine = auth.current(), data.current_engine()
    try:
        _, done = meeting_agenda.import_workbook(engine, viewer, upload.getvalue(), upload.name)
    except Exception as exc:  # never a traceback; nothing was written
        _log_unexpected(exc)
        _flash(False, _refusal(exc, lang))
    else:
        counts = {k: fmt_int(len(v), lang) for k, v in (("created", done.created), ("updated", done.updated))}
        said = t("agenda.imported", lang, file=done.file, unchanged=fmt_int(done.unchanged, lang), **counts)
        if done.not_read:  # a notes sheet beside the rows: said, so no one wonders whether it was read
            names = ", ".join(repr(name) for name in done.not_read)
            said += " " + t("agenda.imported_not_read", lang, count=len(done.not_read), sheets=names)
        _flash(True, said)


def _record(lang: str) -> None:
    """The meeting record form's callback: the decisions taken (an item with only a note was discussed, nothing
    changed), based on the version of that date's record the viewer saw; every refusal one translated line."""
    state = st.session_state
    viewer, engine, chosen = auth.current(), data.current_engine(), filters.current()
    held = state.get("mt_min_date") or dt.date.today()
    roles = [*state.get("mt_min_roles", []), *str(state.get("mt_min_other_roles") or "").split(",")]
    decided = []
    for section, item_id in state.get("_meeting_items", []):
        choice, note = state.get(f"mt_min_dec_{item_id}") or "", state.get(f"mt_min_note_{item_id}") or ""
        if choice or note.strip():
            decided.append(minutes.Decided(item_id, choice or minutes.ItemDecision.NOTED, note, section))
    try:
        done = minutes.record_meeting(
            engine,
            viewer,
            chosen.condition,
            held,
            roles,
            decided,
            unit=chosen.unit or ALL_UNITS,
            based_on=state.get("_meeting_records", {}).get(held.isoformat(), 0),
        )
    except Exception as exc:  # never a traceback on the page; nothing was written
        _log_unexpected(exc)
        _flash(False, _refusal(exc, lang))
    else:
        state["mt_min_pick"] = done.meeting_id  # the list below opens the meeting just recorded
        data.prepare_since(chosen.condition, chosen.level, held, chosen.period)  # the team page's new since date
        counts = {"version": fmt_int(done.version, lang), "count": len(done.decisions)}
        _flash(True, t("minutes.saved", lang, date=fmt_date(done.held_on, lang), **counts))


def signal_picker(key: str, signals: list) -> None:
    pick_item(
        "agenda.field_signal",
        {s.item_id: s for s in signals},
        key,
        signal_name,
        signal_qualifiers(),
    )


def choice(key: str, prefix: str, values: type) -> None:
    st.radio(
        t(f"agenda.field_{prefix}", lang),
        [v.value for v in values],
        key=key,
        format_func=lambda v: label(prefix, v),
        horizontal=True,
    )


indicators = [i.id for i in condition.indicators if i.kind != "volume"]


def target_form(what: str, icon: str) -> None:
    """The team goal's and the external norm's form (a norm also names its source)."""
    with st.expander(t(f"agenda.form_{what}", lang), icon=icon), st.form(f"mt_{what}_form", enter_to_submit=False):
        st.selectbox(
            t("agenda.field_target_indicator", lang),
            indicators,
            key=f"mt_{what}_indicator",
            format_func=indicator_label,
        )
        st.number_input(t("agenda.field_value", lang), value=None, min_value=0.0, format="%g", key=f"mt_{what}_value")
        if what == "norm":
            st.text_input(t("agenda.field_source", lang), key=f"mt_{what}_source", max_chars=300)
        st.date_input(
            t("agenda.field_valid_from", lang),
            value=dt.date.today(),
            key=f"mt_{what}_valid_from",
            format=DATE_INPUT_FORMAT[lang],
        )
        st.form_submit_button(t(f"agenda.submit_{what}", lang), on_click=_save, args=(what, lang))


if agenda.may_edit:
    st.subheader(t("agenda.forms", lang))
    with st.expander(t("agenda.form_explain", lang), icon=":material/edit_note:"):
        if not agenda.explainable:
            st.caption(t("agenda.nothing_to_explain", lang))
        else:
            with st.form("mt_explain_form", enter_to_submit=False):
                signal_picker("mt_explain_signal", agenda.explainable)
                choice("mt_explain_kind", "explanation", improvement.Explanation)
                st.text_area(t("agenda.field_explanation_text", lang), key="mt_explain_text", max_chars=4000)
                st.form_submit_button(t("agenda.submit_explain", lang), on_click=_save, args=("explain", lang))
    with st.expander(t("agenda.form_decide", lang), icon=":material/gavel:"):
        if not agenda.decidable:
            st.caption(t("agenda.nothing_to_decide", lang))
        else:
            with st.form("mt_decide_form", enter_to_submit=False):
                signal_picker("mt_decide_signal", agenda.decidable)
                choice("mt_decide_choice", "decision", improvement.Decision)
                st.form_submit_button(t("agenda.submit_decide", lang), on_click=_save, args=("decide", lang))
    with (
        st.expander(t("agenda.form_action", lang), icon=":material/playlist_add:"),
        st.form("mt_action_form", enter_to_submit=False),
    ):
        st.text_input(t("agenda.field_title", lang), key="mt_action_title", max_chars=300)
        st.text_input(t("agenda.field_owner_role", lang), key="mt_action_owner", max_chars=100)
        left, right = st.columns(2)
        left.date_input(
            t("agenda.field_start", lang), value=dt.date.today(), key="mt_action_start", format=DATE_INPUT_FORMAT[lang]
        )
        right.date_input(
            t("agenda.field_due", lang),
            value=dt.date.today() + dt.timedelta(days=91),
            key="mt_action_due",
            format=DATE_INPUT_FORMAT[lang],
        )
        st.radio(  # started at the meeting (under way) or planned for later
            t("agenda.field_status", lang),
            [improvement.ActionStatus.PLANNED.value, improvement.ActionStatus.IN_PROGRESS.value],
            key="mt_action_status",
            format_func=lambda v: label("action", v),
            horizontal=True,
        )
        st.selectbox(
            t("agenda.field_indicator", lang),
            ["", *indicators],
            key="mt_action_indicator",
            format_func=lambda i: indicator_label(i) if i else t("agenda.not_linked", lang),
        )
        linkable = {s.item_id: s for s in agenda.open_signals}
        signal_names = meeting_agenda.distinct_labels(list(linkable.values()), signal_name, signal_qualifiers())
        signal_named = dict(zip(linkable, signal_names, strict=True))
        filters.keep_valid("mt_action_signal", ["", *linkable])
        st.selectbox(
            t("agenda.field_signal", lang),
            ["", *linkable],
            key="mt_action_signal",
            format_func=lambda sid: signal_named[sid] if sid else t("agenda.not_linked", lang),
        )
        st.text_area(t("agenda.field_expected_effect", lang), key="mt_action_effect", max_chars=4000)
        st.form_submit_button(t("agenda.submit_action", lang), on_click=_save, args=("action", lang))
    target_form("goal", ":material/flag:")
    if agenda.may_set_norms:
        target_form("norm", ":material/verified:")


# --- the meeting's record and its minutes -------------------------------------------------------------------------
def record_form() -> None:
    """One form: the date, the roles present and a decision with a note per agenda item."""
    items = minutes.agenda_items(agenda)
    st.session_state["_meeting_items"] = [(i.section, i.item_id) for i in items]
    today = dt.date.today()
    with (
        st.expander(t("minutes.form", lang), icon=":material/description:"),
        st.form("mt_minutes_form", enter_to_submit=False),
    ):
        st.date_input(
            t("minutes.field_held_on", lang),
            value=today,
            max_value=today,
            key="mt_min_date",
            format=DATE_INPUT_FORMAT[lang],
            help=t("minutes.field_held_on_help", lang),
        )
        left, right = st.columns(2)
        left.multiselect(
            t("minutes.field_roles", lang),
            list(minutes.STANDARD_ROLES),
            key="mt_min_roles",
            format_func=lambda r: minutes.role_label(r, lang),
            placeholder="",
        )
        right.text_input(t("minutes.field_other_roles", lang), key="mt_min_other_roles", max_chars=500)
        if not items:
            st.caption(t("minutes.nothing_on_agenda", lang))
        decisions = ["", *(d.value for d in minutes.ItemDecision)]
        for item in items:
            described = describe_item(item.item, lang, unit_text)
            st.markdown(f"**{t(f'minutes.section_{item.section}', lang)}** · {md_escape(described)}")
            left, right = st.columns([1, 2])
            left.selectbox(
                t("minutes.col_decision", lang),
                decisions,
                key=f"mt_min_dec_{item.item_id}",
                format_func=lambda d: minutes.decision_label(d, lang) if d else t("minutes.not_discussed", lang),
            )
            right.text_input(t("minutes.field_note", lang), key=f"mt_min_note_{item.item_id}", max_chars=4000)
        st.form_submit_button(t("minutes.submit", lang), on_click=_record, args=(lang,), type="primary")


def earlier_meetings() -> None:
    """The recorded meetings, newest first: one opened with its decisions, and its minutes to download."""
    st.subheader(t("minutes.earlier", lang))
    if not recorded:
        st.caption(t("minutes.none_recorded", lang))
        return
    picked = pick_item(
        "minutes.pick",
        {m.meeting_id: m for m in recorded},
        "mt_min_pick",
        lambda m: t(
            "minutes.pick_value",
            lang,
            date=fmt_date(m.held_on, lang),
            unit=unit_text(m.record.unit),
            count=len(m.decisions),
        ),
    )
    content = minutes_content(engine, viewer, picked.meeting_id, lang, version=picked.version, unit_name=unit_text)
    st.caption(" · ".join(f"{name}: {value}" for name, value in content.facts[2:]))
    rows = [
        dict(zip([t("minutes.section", lang), *content.decision_headers], [heading, *row], strict=True))
        for heading, section_rows in content.decisions
        for row in section_rows
    ]
    show(pd.DataFrame(rows))
    if not agenda.may_export:
        return
    chosen_lang = st.radio(
        t("minutes.language", lang),
        list(SUPPORTED),
        index=list(SUPPORTED).index(lang),
        key="mt_min_lang",
        format_func=lambda code: t(f"language.{code}", lang),
        horizontal=True,
    )
    for column, fmt in zip(st.columns(len(MINUTES_FORMATS)), MINUTES_FORMATS, strict=True):
        column.download_button(
            t(f"minutes.download_{fmt}", lang),
            # built on click; vbhc.access.export_file checks the role again and audits the file's SHA-256
            data=lambda fmt=fmt: export_minutes(
                engine, viewer, picked.meeting_id, fmt, chosen_lang, version=picked.version
            ),
            file_name=minutes_file_name(picked, fmt),
            mime=MIME[fmt],
            on_click="ignore",
            key=f"mt_min_download_{fmt}",
            icon=":material/download:",
        )


if agenda.may_edit:
    record_form()
earlier_meetings()

# --- the spreadsheet round trip -----------------------------------------------------------------------------------
if agenda.may_export:
    st.subheader(t("agenda.workbooks", lang))
    left, right = st.columns(2)
    for column, what, export in ((left, "targets", export_targets), (right, "actions", export_actions)):
        name = safe_file_name(f"vbhc-{chosen.condition}-{what}.xlsx")
        column.download_button(
            t(f"agenda.download_{what}", lang),
            # built on click; vbhc.access.export_file checks the role again and audits the file's SHA-256
            data=lambda export=export, name=name: export(engine, viewer, chosen.condition, file_name=name),
            file_name=name,
            mime=render.XLSX_MIME,
            on_click="ignore",
            key=f"mt_download_{what}",
            icon=":material/table:",
        )
    st.file_uploader(
        t("agenda.upload", lang),
        key="mt_upload",
        help=t("agenda.upload_help", lang),
        max_upload_size=guard.upload_widget_mb(),
    )
    if st.session_state.get("mt_upload") is not None:
        st.button(t("agenda.import_button", lang), on_click=_import, args=(lang,), type="primary")
