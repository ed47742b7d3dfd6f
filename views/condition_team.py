"""Condition team: the page a care team puts on the big screen in its monthly outcome meeting."""

import pandas as pd
import streamlit as st

from ui import auth, data, filters, render
from vbhc import access, charts, verdict
from vbhc.catalog import default_catalog
from vbhc.i18n import fmt_date, fmt_int, fmt_number, fmt_percent, fmt_ratio, format_value, t, t_md, unit_label
from vbhc.indicators import casemix_explanation, cusum_vlad, funnel_curve, indicator_over_time
from vbhc.safety import md_escape

chosen = filters.current()
lang = chosen.lang if chosen else filters.language()
if chosen is None:
    st.title(t("team.title", lang))
    render.empty_state(lang)
    st.stop()

condition = default_catalog().condition(chosen.condition)
result = data.result_for(auth.current(), chosen.condition, chosen.level, chosen.period, chosen.peers)
table = result.table
unit = chosen.unit
st.title(f"{md_escape(condition.label(lang))} · {md_escape(unit_label(unit, lang))}")
mine = table[table["unit"] == unit]
if unit is None or mine.empty:
    st.info(t("empty.no_match", lang))
    st.stop()

# --- the team's indicators, grouped by outcome tier: one verdict each, with the SPC icons ----------------
spc_charts = render.cached(("team_spc", unit), lambda: render.unit_charts(result, mine, unit))
for tier, rows in mine.groupby(mine["tier"].fillna(0).astype(int), sort=True):
    st.subheader(t(f"tier.{tier}", lang) if tier else t("team.other_indicators", lang))
    shown = rows[rows["kind"] != "volume"] if tier == 0 else rows
    display = render.cached(
        ("team_table", unit, tier), lambda shown=shown: render.indicator_display(shown, lang, charts=spc_charts)
    )
    verdict_column = t("verdict.column", lang)
    st.dataframe(
        render.colour_assessments(
            display.style,
            [verdict_column],
            pd.DataFrame({verdict_column: render.verdict_assessments(shown, spc_charts)}, index=display.index),
        ),
        hide_index=True,
        width="stretch",
    )

# --- since the last meeting ----------------------------------------------------------------------------
render.show_since_last_meeting([render.since_last_meeting(result, unit, lang)], lang)

# --- one indicator in depth ----------------------------------------------------------------------------
choices = [i.id for i in condition.indicators if i.kind != "volume"]
indicator_id = filters.synced(
    st.selectbox,
    t("filter.indicator", lang),
    choices,
    key="indicator",
    format_func=lambda i: condition.indicator(i).label(lang),
)
ind = condition.indicator(indicator_id)
rows = table[table["indicator"] == indicator_id]
row = rows[rows["unit"] == unit].iloc[0]

judged = verdict.verdict(row, spc_charts.get(row.name))  # rankability is part of the verdict's wording
if row["too_few_cycles"]:
    st.warning(t_md("warning.too_few_cycles", lang, unit=unit_label(unit, lang), min_n=ind.min_n))
if row["dispersion_method"] not in ("none", None) and pd.notna(row["phi"]):
    st.info(t("warning.overdispersion", lang, phi=fmt_number(row["phi"], lang, 2)))

metric_cols = st.columns(4)
metric_cols[0].metric(t("column.care_cycles", lang), fmt_int(row["n"], lang))
metric_cols[1].metric(t("column.crude", lang), format_value(row["crude_value"], ind.kind, lang))
metric_cols[2].metric(t("column.adjusted", lang), format_value(row["adjusted_value"], ind.kind, lang))
metric_cols[3].metric(t("column.benchmark", lang), format_value(row["target"], ind.kind, lang))
st.markdown(f"**{t('verdict.column', lang)}:** {md_escape(judged.sentence(lang, with_ci=True))}")

if pd.isna(row["target"]):  # vbhc.access withheld the benchmark: too few other units to compare with
    st.info(t("comparison.no_benchmark", lang, min=access.MIN_OTHER_UNITS))
    st.stop()

left, right = st.columns(2)
with left:
    st.markdown(f"#### {t('team.funnel', lang)}")
    render.cached_chart(
        ("funnel", indicator_id),
        lambda: charts.funnel_chart(rows, funnel_curve(rows), highlight=unit, lang=lang),
        highlight=unit,
    )
with right:
    st.markdown(f"#### {t('team.caterpillar', lang)}")
    value = "oe" if ind.kind in ("proportion", "prom_mic") else "adjusted"
    render.cached_chart(
        ("caterpillar", indicator_id),
        lambda: charts.caterpillar_chart(rows, highlight=unit, lang=lang, value=value),
        highlight=unit,
    )


def _trend_options() -> dict:
    """Limits of the trend chart (vbhc.spc): MR screening, a frozen baseline, a rebase date."""
    with st.expander(t("spc.limits", lang)):
        screen = st.toggle(t("spc.screen_mr", lang), value=True, key="spc_screen")
        baseline = st.number_input(t("spc.baseline", lang), min_value=0, max_value=40, value=0, key="spc_baseline")
        rebase = st.date_input(t("spc.rebase", lang), value=None, key="spc_rebase", format="YYYY-MM-DD")
    return {"screen_mr": screen, "baseline": int(baseline) or None, "rebase": (rebase,) if rebase else None}


def _trend_data(options: dict):
    if ind.kind == "response_rate":
        return None
    key = ("trend_data", indicator_id, unit, *sorted((k, str(v)) for k, v in options.items()))
    return render.cached(key, lambda: indicator_over_time(result, indicator_id, unit, freq="QS", **options))


left, right = st.columns(2)
with left:
    st.markdown(f"#### {t('team.trend', lang)}")
    options = _trend_options()
    trend = _trend_data(options)
    shown_chart = render.cached_chart(
        ("trend", indicator_id, unit, *sorted((k, str(v)) for k, v in options.items())),
        lambda: charts.trend_chart(trend, kind=ind.kind, lang=lang) if trend is not None and len(trend) else None,
    )
    if not shown_chart:
        st.caption(t("team.no_trend", lang))
    else:  # the Making Data Count icons and the rules that fired, of the chart as drawn
        fired = sorted({r for r in trend["rules"] for r in str(r).split("; ") if r})
        icons = f"{t('spc.variation', lang)}: {render.spc_label(trend.attrs.get('variation'), lang)} · "
        icons += f"{t('spc.assurance', lang)}: {render.spc_label(trend.attrs.get('assurance'), lang)}"
        if fired:
            icons += f" · {t('spc.rules_fired', lang)}: " + "; ".join(t(f"spc.rule_{r}", lang) for r in fired)
        st.caption(icons)
        if trend.attrs.get("target") is not None:
            st.caption(t("spc.target_note", lang, target=format_value(trend.attrs["target"], ind.kind, lang)))
with right:
    if ind.kind in ("proportion", "prom_mic"):
        st.markdown(f"#### {t('chart.vlad', lang)}")

        def _series():  # both charts draw the same per-cycle series: computed once per view
            return render.cached(("cusum_vlad", indicator_id, unit), lambda: cusum_vlad(result, indicator_id, unit))

        render.cached_chart(("vlad", indicator_id, unit), lambda: charts.vlad_chart(_series(), lang=lang))
        render.cached_chart(("cusum", indicator_id, unit), lambda: charts.cusum_chart(_series(), lang=lang))
    else:
        st.markdown(f"#### {t('team.crude_vs_adjusted', lang)}")
        render.cached_chart(
            ("crude_vs_adjusted", indicator_id),
            lambda: charts.crude_vs_adjusted_chart(rows, lang=lang, highlight=unit),
            highlight=unit,
        )

# --- what the case-mix model contributes ---------------------------------------------------------------
if indicator_id in result.models:
    with st.expander(t("team.casemix_contribution", lang)):
        explained = render.cached(("casemix", indicator_id), lambda: casemix_explanation(result, indicator_id))
        explained = explained[explained["unit"] == unit]
        st.caption(
            t(
                "team.gap_explained",
                lang,
                crude=format_value(row["crude_value"], ind.kind, lang),
                adjusted=format_value(row["adjusted_value"], ind.kind, lang),
            )
        )
        st.dataframe(
            pd.DataFrame(
                {
                    t("model.variables", lang): [
                        render.variable_label(v, chosen.condition, lang) for v in explained["variable"]
                    ],
                    t("team.contribution", lang): [format_value(v, ind.kind, lang) for v in explained["contribution"]],
                    t("team.share_of_gap", lang): [fmt_percent(v, lang, 0) for v in explained["share_of_gap"]],
                }
            ),
            hide_index=True,
            width="stretch",
        )
    with st.expander(t("model.title", lang)):
        diag = result.models[indicator_id].diagnostics
        quality = {
            t("model.c_statistic", lang): fmt_ratio(diag.c_statistic, lang),
            t("model.calibration_slope", lang): fmt_ratio(diag.calibration_slope, lang),
            t("model.calibration_intercept", lang): fmt_ratio(diag.calibration_intercept, lang),
            t("model.r_squared", lang): fmt_ratio(diag.r_squared, lang),
            t("model.cycles_used", lang): fmt_int(diag.n_used, lang),
            t("model.cycles_excluded", lang): fmt_int(diag.n_excluded, lang),
        }
        st.dataframe(pd.Series(quality, name=t("model.quality_value", lang)).to_frame(), width="stretch")
        if diag.excluded_by_reason:
            st.dataframe(
                pd.DataFrame(
                    {
                        t("model.excluded_reason", lang): [
                            render.exclusion_label(r, chosen.condition, lang) for r in diag.excluded_by_reason
                        ],
                        t("model.cycles_excluded", lang): [fmt_int(v, lang) for v in diag.excluded_by_reason.values()],
                    }
                ),
                hide_index=True,
            )
        if diag.warning_code:
            st.warning(render.model_warning(diag, lang))

# --- the care cycles behind a signal (pseudonymised) -----------------------------------------------------
if ind.kind in ("proportion", "prom_mic"):
    heading = "verdict.contributors_signal" if judged.concern else "verdict.contributors_plain"
    st.markdown(f"#### {t(heading, lang)}")
    viewer = auth.current()
    hospital = str(row["hospital"]) if pd.notna(row.get("hospital")) else None
    if not access.may_see_patient_rows(viewer, result.condition, hospital):
        st.caption(t("auth.no_patient_rows", lang))
        cycles = None
    else:  # through vbhc.access: checked again there, and recorded in the audit log
        cycles = access.patient_rows(viewer, result, indicator_id, unit, last_days=92, engine=data.current_engine())
    if cycles is None:
        pass
    elif cycles.empty:
        st.caption(t("team.no_events", lang))
    else:
        st.dataframe(
            pd.DataFrame(
                {
                    t("team.cycle", lang): cycles["cycle_id"],
                    t("chart.date", lang): [fmt_date(d, lang) for d in cycles["index_date"]],
                    t("column.expected", lang): [fmt_percent(v, lang) for v in cycles["expected"]],
                }
            ),
            hide_index=True,
            width="stretch",
        )

# --- reports of this view (Excel workbook, PDF meeting report) ---------------------------------------------
st.subheader(t("download.reports", lang))
render.report_downloads(
    [data.result(chosen.condition, chosen.level, chosen.period, chosen.peers)], unit, lang, key="team_report"
)
