"""Audit log: who viewed, exported and imported what. For the quality directorate (checked in vbhc.access)."""

import datetime as dt
from collections.abc import Callable

import streamlit as st

from ui import auth, data, filters, render
from vbhc import access, audit
from vbhc.catalog import default_catalog
from vbhc.i18n import DATE_INPUT_FORMAT, MISSING, catalog, fmt_datetime, t, unit_label
from vbhc.safety import safe_file_name

lang = filters.language()


def _readable(events):
    """The log as the reader reads it: actions, roles, conditions and units named, times in the locale; the CSV
    keeps the stored values."""
    messages, known = catalog(lang), default_catalog()
    conditions = {**known.conditions, **known.prems}  # a PREM questionnaire is named where a condition would be

    def roles(text: object) -> str:
        names = [messages.get(f"role.{r}", r) for r in str(text or "").split(",") if r]
        return ", ".join(names) or MISSING

    shown = events.copy()
    shown["at"] = [fmt_datetime(v, lang) for v in shown["at"]]
    shown["action"] = [messages.get(f"audit.action_{a}", a) for a in shown["action"]]
    shown["roles"] = [roles(r) for r in shown["roles"]]
    shown["condition"] = [conditions[c].label(lang) if c in conditions else c for c in shown["condition"]]
    names = {**filters.unit_names("hospital", None, lang), **filters.unit_names("department", None, lang)}
    shown["unit"] = [unit_label(u, lang, names) for u in shown["unit"]]  # by name, as on every other page

    def named(condition: object) -> Callable[[audit.Shown, str], str]:
        def name(kind: audit.Shown, value: str) -> str:
            if kind is audit.Shown.UNIT:
                return unit_label(value, lang, names)
            if kind is audit.Shown.CONDITION:
                return conditions[value].label(lang) if value in conditions else value
            try:  # an indicator of the event's condition (or questionnaire)
                return conditions[str(condition)].indicator(value).label(lang)
            except KeyError:
                return value

        return name

    # keys and codes in the reader's language, units, conditions and indicators named (the CSV keeps the JSON)
    pairs = zip(events["detail"], events["condition"], strict=True)
    shown["detail"] = [audit.describe(detail, lang, named(condition)) for detail, condition in pairs]
    shown = shown.astype(object).where(shown.notna() & (shown != ""), MISSING)
    shown.columns = [t(f"audit.col_{c}", lang) for c in shown.columns]
    return shown


st.title(t("audit.title", lang))
st.caption(t("audit.intro", lang))
viewer = auth.current()
engine = data.current_engine()

today = dt.date.today()
left, middle, right, far = st.columns(4)
since = left.date_input(
    t("audit.since", lang), today - dt.timedelta(days=30), key="audit_since", format=DATE_INPUT_FORMAT[lang]
)
until = middle.date_input(t("audit.until", lang), today, key="audit_until", format=DATE_INPUT_FORMAT[lang])
action = right.selectbox(
    t("audit.action", lang),
    ["", *audit.ACTIONS],
    format_func=lambda a: t(f"audit.action_{a}", lang) if a else t("audit.all", lang),
    key="audit_action",
)
user = far.text_input(t("audit.user", lang), key="audit_user").strip()

# through vbhc.access: refused (and recorded) for anyone but the quality directorate
events = access.read_audit(
    viewer,
    engine,
    since=dt.datetime.combine(since, dt.time()),
    until=dt.datetime.combine(until + dt.timedelta(days=1), dt.time()),
    action=action or None,
    user=user or None,
)
st.caption(t("audit.rows", lang, count=len(events)))
if events.empty:
    st.info(t("audit.empty", lang))
else:
    render.data_grid(_readable(events), hide_index=True, width="stretch")
    name = safe_file_name(f"vbhc-audit-{since}-{until}.csv")
    st.download_button(  # the grid's own CSV button is off (client.disableDataExport); this one is audited
        t("audit.download", lang),
        data=lambda: access.export_file(
            viewer, lambda: audit.to_csv(events), what="audit_log", file_name=name, engine=engine
        ),
        file_name=name,
        mime="text/csv",
        on_click="ignore",
        key="audit_csv",
        icon=":material/download:",
    )
