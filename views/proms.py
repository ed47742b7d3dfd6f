"""PROMs: response per timepoint, score distributions, change from baseline and share reaching the MIC."""

import functools

import pandas as pd
import streamlit as st

from ui import auth, data, filters, render
from vbhc import charts
from vbhc.catalog import default_catalog
from vbhc.disclosure import comparison_group_withheld
from vbhc.i18n import fmt_int, fmt_percent, t, t_md
from vbhc.indicators import prom_response_by_timepoint, prom_score_cells, prom_scores_for
from vbhc.settings import suppress_below

chosen, lang = render.page_start("proms.title")

catalog = default_catalog()
condition = catalog.condition(chosen.condition)
result = data.result_for(auth.current(), chosen.condition, chosen.level, chosen.period, chosen.peers)
if result.data.scores.empty:
    st.info(t_md("empty.no_proms", lang, condition=condition.label(lang)))
    st.stop()

# response per instrument and timepoint
st.subheader(t("column.response_rate", lang))
# reads every PROM invitation: once per view, kept in the results store (the reports read the same table)
rates = data.derived(chosen.condition, chosen.level, chosen.period, chosen.peers, prom_response_by_timepoint)
rates = data.only_visible(
    result, rates, "prom_response", viewer=auth.current(), period=chosen.period, peers=chosen.peers
)
mine = rates[rates["unit"] == chosen.unit]
# a few rows: a static table, not the interactive grid (whose ~1.3 MB of JavaScript a new browser would load first)
render.static_table(
    pd.DataFrame(
        {
            t("proms.instrument", lang): [catalog.instrument(i).label(lang) for i in mine["instrument"]],
            t("proms.timepoint", lang): [condition.timepoint(tp).label(lang) for tp in mine["timepoint"]],
            t("proms.eligible", lang): [fmt_int(v, lang) for v in mine["eligible"]],
            t("proms.responders", lang): [fmt_int(v, lang) for v in mine["responded"]],
            t("column.response_rate", lang): [fmt_percent(v, lang) for v in mine["response_rate"]],
            t("proms.all_units", lang): [
                fmt_percent(
                    rates.loc[(rates.instrument == i) & (rates.timepoint == tp), "responded"].sum()
                    / max(rates.loc[(rates.instrument == i) & (rates.timepoint == tp), "eligible"].sum(), 1),
                    lang,
                )
                for i, tp in zip(mine["instrument"], mine["timepoint"], strict=True)
            ],
        }
    )
)

# PROM indicators per unit (adjusted)
table = result.table
prom_rows = table[table["kind"].isin(["prom_score", "prom_change", "prom_mic", "response_rate"])]
own = filters.unit_name(chosen.unit)
st.subheader(t("proms.per_unit", lang))  # each chart is titled by its indicator
for indicator_id, rows in filters.with_unit_names(prom_rows).groupby("indicator", sort=False):
    ind = condition.indicator(indicator_id)
    name = ind.label(lang)  # the chart's title (a heading above it would say the same again)
    if ind.kind == "response_rate":
        build = charts.prom_response_chart
    else:  # the value axis carries the scale's name
        build = functools.partial(charts.prom_change_chart, scale=catalog.instrument(ind.instrument).scale(ind.scale))
    render.cached_chart(
        ("prom", indicator_id),
        lambda build=build, rows=rows, name=name: build(rows, lang=lang, highlight=own, title=name),
        highlight=own,
    )

# distributions at baseline and follow-up
st.subheader(t("proms.distribution", lang))
scales = [(p.instrument, s.id) for p in condition.proms for s in catalog.instruments[p.instrument].scales]


def _scale_label(pair: tuple[str, str]) -> str:
    return catalog.instrument(pair[0]).scale(pair[1]).label(lang)


filters.keep_valid("prom_scale", scales)  # the scales of the previous condition are gone
instrument, scale = st.selectbox(t("proms.scale", lang), scales, format_func=_scale_label, key="prom_scale")
spec = catalog.instruments[instrument].scale(scale)


def _binned() -> pd.DataFrame:
    scores = prom_scores_for(result, instrument, scale)
    # the comparison group's bins are counts of its patients: at a timepoint where it holds few patients or units
    # (over the grid of periods, and against the registry's group where a comparison group is chosen) it is left
    # out, else a year's 12-month panel drew two other hospitals' four patients (vbhc.disclosure)
    registry = data.result(chosen.condition, chosen.level, "", ())
    withheld = comparison_group_withheld(
        prom_score_cells(registry, instrument, scale),
        chosen.unit,
        chosen.period,
        threshold=suppress_below(),
        hospitals=chosen.peers,
        offered=data.offered_hospitals(auth.current(), chosen.condition, chosen.level),
    )
    mine = scores["unit"] == chosen.unit
    scores = scores[mine | ~scores["timepoint"].astype(str).isin(withheld)]
    scores = scores.assign(
        group=scores["unit"]
        .astype(str)
        .where(scores["unit"] == chosen.unit, t("proms.all_units", lang))
        .replace({str(chosen.unit): own})
    )
    return charts.histogram(scores, "score", ["group", "timepoint"], bins=20, range_=(spec.min, spec.max))


# one chart per timepoint, side by side in columns that a phone stacks: each is built no wider than a phone's
# screen (a grid of panels is not stretched, and one grid of every timepoint ran off a phone's screen)
binned = render.cached(("distribution_bins", instrument, scale, chosen.unit), _binned)
present = {str(tp) for tp in binned["timepoint"].unique()} if not binned.empty else set()
ordered = [tp.id for tp in sorted(condition.timepoints, key=lambda tp: tp.days) if tp.id in present]
ordered += sorted(present - set(ordered))
width = min(charts.PHONE_FIXED_WIDTH, (charts.DEFAULT_WIDTH - 24 * (len(ordered) - 1)) // max(len(ordered), 1))
for column, timepoint in zip(st.columns(max(len(ordered), 1)), ordered or [None], strict=True):
    with column:
        render.cached_chart(
            ("distribution", instrument, scale, chosen.unit, timepoint),
            lambda timepoint=timepoint: charts.score_distribution_chart(
                binned[binned["timepoint"].astype(str) == timepoint] if timepoint else binned,
                lang=lang,
                scale=spec,
                timepoints=condition.timepoints,
                width=width,
            ),
        )
