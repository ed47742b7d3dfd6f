"""Audit log: who viewed, exported and imported what. For the quality directorate (checked in vbhc.access)."""

import datetime as dt

import streamlit as st

from ui import auth, data, filters
from vbhc import access, audit
from vbhc.i18n import fmt_int, t
from vbhc.safety import safe_file_name

lang = filters.language()
st.title(t("audit.title", lang))
st.caption(t("audit.intro", lang))
viewer = auth.current()
engine = data.current_engine()

today = dt.date.today()
left, middle, right, far = st.columns(4)
since = left.date_input(t("audit.since", lang), today - dt.timedelta(days=30), key="audit_since")
until = middle.date_input(t("audit.until", lang), today, key="audit_until")
action = right.selectbox(
    t("audit.action", lang), ["", *audit.ACTIONS], format_func=lambda a: a or t("audit.all", lang), key="audit_action"
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
st.caption(t("audit.rows", lang, count=fmt_int(len(events), lang)))
if events.empty:
    st.info(t("audit.empty", lang))
else:
    # an event without a condition or unit shows "–", not "None"
    st.dataframe(events.astype(object).where(events.notna(), "–"), hide_index=True, width="stretch")
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
