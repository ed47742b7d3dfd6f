"""Overview: one scorecard row per condition team of the own hospital, with click-through to the team page."""

import pandas as pd
import streamlit as st

from ui import auth, data, filters, render
from vbhc import access, verdict
from vbhc.catalog import default_catalog
from vbhc.i18n import fmt_int, format_value, t
from vbhc.safety import md_escape
from vbhc.settings import database_url

chosen = filters.current()
lang = chosen.lang if chosen else filters.language()
st.title(t("app.title", lang))
if chosen is None:
    render.empty_state(lang)
    st.stop()

catalog = default_catalog()
url, version = database_url(), data.version()
units = data.units(url, version)
own = units.loc[units["own_hospital"], "hospital"]
own_hospital = own.iloc[0] if not own.empty else None
volumes = data.volumes(url, version)
st.caption(t("app.subtitle", lang))
st.metric(t("column.care_cycles", lang), fmt_int(int(volumes["care_cycles"].sum()), lang))

rows, colours, keyed, since = [], [], [], []
viewer = auth.current()
for condition in [c for c in catalog.conditions if c in set(volumes["condition"])]:
    if not access.may_view_condition(viewer, condition):
        continue
    result = data.result_for(viewer, condition, "hospital", chosen.period, chosen.peers)
    table = result.table
    mine = table[table["unit"] == own_hospital] if own_hospital else table.iloc[0:0]
    if mine.empty:
        continue
    row = {t("column.condition", lang): catalog.conditions[condition].label(lang)}
    colour = {}
    volume = mine[mine["kind"] == "volume"]
    row[t("column.care_cycles", lang)] = fmt_int(volume["n"].iloc[0] if len(volume) else None, lang)
    for number, ind in enumerate(mine[mine["key"].astype(bool) & (mine["kind"] != "cost")].itertuples(), start=1):
        name = t("overview.key_indicator", lang, number=number)
        label = render.indicator_label(condition, ind.indicator, lang)
        row[name] = f"{label}: {format_value(ind.adjusted_value, ind.kind, lang)}"
        row[name] += f" ({t('column.benchmark', lang).lower()} {format_value(ind.target, ind.kind, lang)})"
        colour[name] = verdict.verdict(ind._asdict()).assessment  # the same verdict as everywhere else
    response = mine[mine["kind"] == "response_rate"]
    if len(response):
        r = response.iloc[0]
        row[t("column.response_rate", lang)] = format_value(r.adjusted_value, "response_rate", lang)
        colour[t("column.response_rate", lang)] = verdict.verdict(r).assessment
    cost = mine[mine["kind"] == "cost"]
    if len(cost):
        c = cost.iloc[0]
        row[t("column.cost_per_cycle", lang)] = format_value(c.adjusted_value, "cost", lang)
        colour[t("column.cost_per_cycle", lang)] = verdict.verdict(c).assessment
    key_rows = mine[mine["key"].astype(bool) & (mine["kind"] != "volume")]
    spc_charts = render.cached(
        ("overview_spc", condition), lambda r=result, k=key_rows: render.unit_charts(r, k, own_hospital)
    )
    keyed.append((catalog.conditions[condition].label(lang), key_rows, spc_charts))
    since.append(
        render.since_last_meeting(
            result,
            own_hospital,
            lang,
            indicators=list(key_rows["indicator"]),
            label=catalog.conditions[condition].label(lang),
        )
    )
    row["_condition"] = condition
    rows.append(row)
    colours.append(colour)

if not rows:
    st.info(t("empty.no_match", lang))
    st.stop()
scorecard = pd.DataFrame(rows)
conditions = scorecard.pop("_condition")
painted = pd.DataFrame(colours).reindex(columns=scorecard.columns)
styled = scorecard.style.apply(
    lambda col: [render.cell_style(v) for v in painted[col.name]],
    axis=0,
)
st.subheader(t("overview.scorecard", lang))
st.caption(t("overview.legend", lang))
st.dataframe(styled, hide_index=True, width="stretch")

# --- key indicators: one verdict each, with the Making Data Count icons -----------------------------------
verdict_column = t("verdict.column", lang)
parts, paints = [], []
for label, key_rows, spc_charts in keyed:
    shown = render.indicator_display(key_rows, lang, charts=spc_charts)
    shown.insert(0, t("column.condition", lang), label)
    parts.append(shown)
    paints.append(pd.Series(render.verdict_assessments(key_rows, spc_charts), index=shown.index))
if parts:
    keys = pd.concat(parts, ignore_index=True)
    paint = pd.concat(paints, ignore_index=True)
    keys = keys[
        [
            t("column.condition", lang),
            t("column.indicator", lang),
            verdict_column,
            t("spc.variation", lang),
            t("spc.assurance", lang),
        ]
    ]
    st.subheader(t("overview.key_verdicts", lang))
    st.dataframe(
        keys.style.apply(lambda col: [render.cell_style(v) for v in paint], subset=[verdict_column], axis=0),
        hide_index=True,
        width="stretch",
    )

# --- since the last meeting ------------------------------------------------------------------------------
render.show_since_last_meeting(since, lang)

st.subheader(t("download.reports", lang))
render.report_downloads(
    [data.result(c, "hospital", chosen.period, chosen.peers) for c in conditions], own_hospital, lang, key="overview"
)

st.subheader(t("overview.open_team", lang))
cols = st.columns(min(len(conditions), 4))
for i, condition in enumerate(conditions):
    if cols[i % len(cols)].button(md_escape(catalog.conditions[condition].label(lang)), key=f"open_{condition}"):
        st.session_state["condition"] = condition
        st.switch_page("views/condition_team.py")
