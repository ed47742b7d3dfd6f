"""Cost and value: cost per care cycle by activity, adjusted cost per unit, outcome against cost."""

import pandas as pd
import streamlit as st

from ui import auth, data, filters, layout, render
from vbhc import charts
from vbhc.catalog import VALUE_OUTCOME_KINDS, default_catalog
from vbhc.i18n import format_value, t, t_md, t_value, unit_label
from vbhc.indicators import cost_by_activity, value_table

chosen, lang = render.page_start("cost.title")

catalog = default_catalog()
condition = catalog.condition(chosen.condition)
result = data.result_for(auth.current(), chosen.condition, chosen.level, chosen.period, chosen.peers)
table = result.table
cost_rows = table[table["kind"] == "cost"]
if cost_rows.empty or cost_rows["n"].sum() == 0:
    st.info(t_md("empty.no_costs", lang, condition=condition.label(lang)))
    st.stop()

# computed once per view and kept in the results store (the reports read the same table)
breakdown = data.derived(chosen.condition, chosen.level, chosen.period, chosen.peers, cost_by_activity)
breakdown = data.only_visible(
    result, breakdown, "cost_breakdown", viewer=auth.current(), period=chosen.period, peers=chosen.peers
)
activity_label = {a: catalog.cost_activity(a).label(lang) for a in catalog.cost_activities}
breakdown = breakdown.assign(activity=breakdown["activity"].map(activity_label).fillna(breakdown["activity"]))
breakdown = filters.with_unit_names(breakdown)
own = filters.unit_name(chosen.unit)
st.subheader(t("cost.by_activity", lang))
render.cached_chart(
    ("cost_breakdown",),
    lambda: charts.cost_breakdown_chart(breakdown, lang=lang, highlight=own),
    highlight=own,
)

st.subheader(t("column.cost_per_cycle", lang))
cost_display = render.indicator_display(filters.with_unit_names(cost_rows), lang, by="unit")
hidden = {t("column.crude", lang), t("column.ci95", lang)}  # the verdict says them; all fit 1440 px this way
cost_display = cost_display[[c for c in cost_display.columns if c not in hidden]]
verdict_column = t("verdict.column", lang)
render.static_table(
    cost_display,
    colours=pd.DataFrame({verdict_column: render.verdict_assessments(cost_rows)}, index=cost_display.index),
    # the verdict, the last column, takes the width the others leave (it wrapped at 300 px beside ~90 px of empty
    # cell, rows five lines high on a 1440 px screen) and never less than 300 px (a phone scrolls sideways)
    widths={c: w for c, w in layout.indicator_widths(lang, cost_display.columns).items() if c != verdict_column},
    min_widths={verdict_column: 300},
    headers=layout.indicator_headers(lang, cost_display.columns),
)
st.caption(layout.indicator_key(lang, cost_display.columns))

outcomes = [i for i in condition.indicators if i.kind in VALUE_OUTCOME_KINDS]
filters.keep_valid("value_outcome", [i.id for i in outcomes])  # the outcomes of the previous condition are gone
outcome_id = st.selectbox(
    t("cost.outcome", lang),
    [i.id for i in outcomes],
    format_func=lambda i: condition.indicator(i).label(lang),
    key="value_outcome",
)
view = filters.with_unit_names(value_table(result, outcome_id))
st.subheader(t("cost.outcome_vs_cost", lang))
render.cached_chart(
    ("value", outcome_id),
    lambda: charts.value_chart(
        view,
        outcome_label=condition.indicator(outcome_id).label(lang),
        lang=lang,
        outcome_kind=condition.indicator(outcome_id).kind,
        outcome_target=float(table.loc[table["indicator"] == outcome_id, "target"].iloc[0]),
        cost_target=float(cost_rows["target"].iloc[0]),
        highlight=own,
    ),
    highlight=own,
)
kind = condition.indicator(outcome_id).kind
outcome_label = condition.indicator(outcome_id).label(lang)
render.static_table(
    pd.DataFrame(
        {
            t("column.unit", lang): [unit_label(u, lang) for u in view["unit"]],
            outcome_label: [format_value(v, kind, lang) for v in view["adjusted_value_outcome"]],
            t("column.cost_per_cycle", lang): [format_value(v, "cost", lang) for v in view["adjusted_value_cost"]],
            t("cost.quadrant", lang): [t_value("quadrant", q, lang) for q in view["quadrant"]],
        }
    ),
    widths={t("column.unit", lang): 280, outcome_label: 200, t("column.cost_per_cycle", lang): 140},
)
