"""Condition team: the page a care team puts on the big screen in its monthly outcome meeting.

Four tabs, each one screen (1440x900): the verdicts (indicator tables by outcome tier), one indicator in depth
(funnel, caterpillar, trend, VLAD/CUSUM), case-mix and data quality, and the cases to discuss."""

import pandas as pd
import streamlit as st

from ui import auth, data, filters, layout, render
from vbhc import access, charts, registry
from vbhc.catalog import default_catalog
from vbhc.i18n import fmt_int, fmt_number, fmt_percent, fmt_ratio, format_value, t, t_md, t_value
from vbhc.indicators import casemix_explanation, cusum_vlad, funnel_curve, indicator_over_time
from vbhc.safety import md_escape

chosen = filters.current()
lang = chosen.lang if chosen else filters.language()
if chosen is None:
    st.title(t("team.title", lang))
    render.empty_state(lang)
    st.stop()

condition = default_catalog().condition(chosen.condition)
viewer = auth.current()
result = data.result_for(viewer, chosen.condition, chosen.level, chosen.period, chosen.peers)
table = result.table
unit = chosen.unit
unit_name = filters.unit_name(unit)
if chosen.level == "condition_team":  # a condition team's name already says the condition
    st.title(md_escape(unit_name))
else:
    st.title(f"{md_escape(condition.label(lang))} · {md_escape(unit_name)}")
mine = table[table["unit"] == unit]
if unit is None or mine.empty:
    st.info(t("empty.no_match", lang))
    st.stop()

# the indicator is a filter of this page (shown in the sidebar, so every tab can read it and a link carries it)
choices = [i.id for i in condition.indicators if i.kind != "volume"]
indicator_id = filters.synced(
    st.sidebar.selectbox,
    t("filter.indicator", lang),
    choices,
    key="indicator",
    format_func=lambda i: condition.indicator(i).label(lang),
)
ind = condition.indicator(indicator_id)
rows = table[table["indicator"] == indicator_id]
row = rows[rows["unit"] == unit].iloc[0]
named = filters.with_unit_names(rows)  # the charts show names; unit_id keeps the id
highlight = unit_name
has_benchmark = not pd.isna(row["target"])

# one screen per tab; only the open tab's content runs (its charts are built when someone looks at them)
TABS = ("verdicts", "depth", "casemix", "cases")
filters.keep_tab("team_tab", [f"pages.tab_{tab}" for tab in TABS])
verdicts, depth, casemix, cases = st.tabs(
    [t(f"pages.tab_{tab}", lang) for tab in TABS], key="team_tab", on_change="rerun"
)

# --- the team's indicators, grouped by outcome tier ----------------------------------------------------
if verdicts.open:
    with verdicts:
        for tier, tier_rows in mine.groupby(mine["tier"].fillna(0).astype(int), sort=True):
            st.markdown(f"##### {t(f'tier.{tier}', lang) if tier else t('team.other_indicators', lang)}")
            shown = tier_rows[tier_rows["kind"] != "volume"] if tier == 0 else tier_rows
            display = render.cached(
                ("team_table", unit, tier), lambda shown=shown: render.indicator_display(shown, lang)
            )
            st.dataframe(
                render.colour_assessments(
                    display.style,
                    [t("column.assessment", lang), t("position.title_95", lang)],
                    pd.DataFrame(
                        {
                            t("column.assessment", lang): shown["assessment_998"].to_numpy(),
                            t("position.title_95", lang): shown["assessment_95"].to_numpy(),
                        },
                        index=display.index,
                    ),
                ),
                hide_index=True,
                width="stretch",
                column_config=layout.indicator_columns(lang, display.columns),
            )
        # reports of this view (Excel workbook, PDF meeting report)
        st.markdown(f"##### {t('download.reports', lang)}")
        render.report_downloads(
            [data.result(chosen.condition, chosen.level, chosen.period, chosen.peers)], unit, lang, key="team_report"
        )

# --- one indicator in depth ----------------------------------------------------------------------------
if depth.open:
    with depth:
        metric_cols = st.columns(4)
        metric_cols[0].metric(t("column.care_cycles", lang), fmt_int(row["n"], lang))
        metric_cols[1].metric(t("column.crude", lang), format_value(row["crude_value"], ind.kind, lang))
        metric_cols[2].metric(t("column.adjusted", lang), format_value(row["adjusted_value"], ind.kind, lang))
        metric_cols[3].metric(t("column.benchmark", lang), format_value(row["target"], ind.kind, lang))
        st.markdown(f"**{t('column.assessment', lang)}:** {t_value('assessment', row['assessment_998'], lang)}")
        if row["rankability_note"]:
            st.warning(t("warning.low_rankability", lang, rankability=fmt_number(row["rankability"], lang, 2)))
        if row["too_few_cycles"]:
            st.warning(t_md("warning.too_few_cycles", lang, unit=unit_name, min_n=ind.min_n))
        if row["dispersion_method"] not in ("none", None) and pd.notna(row["phi"]):
            st.info(t("warning.overdispersion", lang, phi=fmt_number(row["phi"], lang, 2)))

        if not has_benchmark:  # vbhc.access withheld the benchmark: too few other units to compare with
            st.info(t("comparison.no_benchmark", lang, min=access.MIN_OTHER_UNITS))
        else:
            yes_no = ind.kind in ("proportion", "prom_mic")
            views = [t("team.funnel", lang), t("team.trend", lang)]
            views.append(f"{t('chart.vlad', lang)} · CUSUM" if yes_no else t("team.crude_vs_adjusted", lang))
            position, over_time, cumulative = st.tabs(views)
            with position:
                left, right = st.columns(2)
                with left:
                    render.cached_chart(
                        ("funnel", indicator_id),
                        lambda: charts.funnel_chart(named, funnel_curve(rows), highlight=highlight, lang=lang),
                        highlight=highlight,
                    )
                with right:
                    value = "oe" if yes_no else "adjusted"
                    render.cached_chart(
                        ("caterpillar", indicator_id),
                        lambda: charts.caterpillar_chart(named, highlight=highlight, lang=lang, value=value),
                        highlight=highlight,
                    )

            def _trend():
                trend = (
                    indicator_over_time(result, indicator_id, unit, freq="QS") if ind.kind != "response_rate" else None
                )
                return charts.trend_chart(trend, kind=ind.kind, lang=lang) if trend is not None and len(trend) else None

            with over_time:
                if not render.cached_chart(("trend", indicator_id, unit), _trend):
                    st.caption(t("team.no_trend", lang))
            with cumulative:
                if yes_no:

                    def _series():  # both charts draw the same per-cycle series: computed once per view
                        return render.cached(
                            ("cusum_vlad", indicator_id, unit),
                            lambda: filters.with_unit_names(cusum_vlad(result, indicator_id, unit)),
                        )

                    left, right = st.columns(2)
                    with left:
                        render.cached_chart(
                            ("vlad", indicator_id, unit), lambda: charts.vlad_chart(_series(), lang=lang)
                        )
                    with right:
                        render.cached_chart(
                            ("cusum", indicator_id, unit), lambda: charts.cusum_chart(_series(), lang=lang)
                        )
                else:
                    render.cached_chart(
                        ("crude_vs_adjusted", indicator_id),
                        lambda: charts.crude_vs_adjusted_chart(named, lang=lang, highlight=highlight),
                        highlight=highlight,
                    )

# --- case-mix: what the model contributes, how good it is, how complete the data are ------------------------
if casemix.open:
    with casemix:
        st.caption(md_escape(ind.label(lang)))
        left, right = st.columns(2)
        if indicator_id in result.models:
            with left:
                st.markdown(f"##### {t('team.casemix_contribution', lang)}")
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
                            t("model.variables", lang): explained["variable"],
                            t("team.contribution", lang): [
                                format_value(v, ind.kind, lang) for v in explained["contribution"]
                            ],
                            t("team.share_of_gap", lang): [fmt_percent(v, lang, 0) for v in explained["share_of_gap"]],
                        }
                    ),
                    hide_index=True,
                    width="stretch",
                )
            with right:
                st.markdown(f"##### {t('model.title', lang)}")
                diag = result.models[indicator_id].diagnostics
                quality = {
                    t("model.c_statistic", lang): fmt_ratio(diag.c_statistic, lang),
                    t("model.calibration_slope", lang): fmt_ratio(diag.calibration_slope, lang),
                    t("model.calibration_intercept", lang): fmt_ratio(diag.calibration_intercept, lang),
                    t("model.r_squared", lang): fmt_ratio(diag.r_squared, lang),
                    t("model.cycles_used", lang): fmt_int(diag.n_used, lang),
                    t("model.cycles_excluded", lang): fmt_int(diag.n_excluded, lang),
                }
                st.dataframe(
                    pd.DataFrame({t("model.title", lang): list(quality), "": list(quality.values())}),
                    hide_index=True,
                    width="stretch",
                )
                if diag.excluded_by_reason:
                    st.dataframe(
                        pd.DataFrame(
                            {
                                t("model.excluded_reason", lang): list(diag.excluded_by_reason),
                                t("model.cycles_excluded", lang): [
                                    fmt_int(v, lang) for v in diag.excluded_by_reason.values()
                                ],
                            }
                        ),
                        hide_index=True,
                        width="stretch",
                    )
                if diag.warning:
                    st.warning(md_escape(diag.warning))
        hospital = str(row["hospital"]) if pd.notna(row.get("hospital")) else None
        if hospital and access.may_see_unit(viewer, chosen.condition, hospital=hospital):
            complete = render.cached(
                ("completeness", chosen.condition),
                lambda: registry.completeness(chosen.condition, engine=data.current_engine()),
            )
            part = complete[complete["hospital"] == hospital]
            if not part.empty:
                overall = complete.groupby("variable", observed=True).apply(
                    lambda g: (g["filled"] * g["care_cycles"]).sum() / max(g["care_cycles"].sum(), 1),
                    include_groups=False,
                )
                hospital_name = filters.unit_name(hospital, "hospital")
                st.markdown(f"##### {t_md('pages.completeness', lang, unit=hospital_name)}")
                st.dataframe(
                    pd.DataFrame(
                        {
                            t("model.variables", lang): part["variable"].to_numpy(),
                            hospital_name: [fmt_percent(v, lang, 1) for v in part["filled"]],
                            t("proms.all_units", lang): [
                                fmt_percent(overall.get(v), lang, 1) for v in part["variable"]
                            ],
                        }
                    ),
                    hide_index=True,
                    width="stretch",
                )

# --- the care cycles behind a signal (pseudonymised) -----------------------------------------------------
if cases.open:
    with cases:
        yes_no_indicators = [i for i in condition.indicators if i.kind in ("proportion", "prom_mic")]
        hospital = str(row["hospital"]) if pd.notna(row.get("hospital")) else None
        if not yes_no_indicators:
            st.caption(t("team.no_events", lang))
        elif not access.may_see_patient_rows(viewer, result.condition, hospital):
            st.caption(t("auth.no_patient_rows", lang))
        else:
            st.caption(t_md("pages.cases_intro", lang, unit=unit_name))
            frames = []
            for item in yes_no_indicators:
                # through vbhc.access: checked again there, and recorded in the audit log
                found = access.patient_rows(viewer, result, item.id, unit, last_days=92, engine=data.current_engine())
                if found.empty:
                    continue
                verdict = mine.loc[mine["indicator"] == item.id, "assessment_998"]
                signal = bool(len(verdict)) and verdict.iloc[0] == "worse"
                frames.append(found.assign(indicator=item.label(lang), signal=signal))
            if not frames:
                st.caption(t("pages.no_cases", lang))
            else:
                listed = pd.concat(frames, ignore_index=True).sort_values(
                    ["signal", "expected", "cycle_id"], ascending=[False, True, True]
                )

                def _why(signal: bool, expected: float) -> str:
                    risk = fmt_percent(expected, lang)
                    if signal:
                        return t("pages.why_signal", lang, risk=risk)
                    return t("pages.why_unexpected" if expected < 0.1 else "pages.why_event", lang, risk=risk)

                record, when, outcome, why = (
                    t("pages.record_key", lang),
                    t("chart.date", lang),
                    t("pages.outcome", lang),
                    t("pages.why", lang),
                )
                st.dataframe(
                    pd.DataFrame(
                        {
                            record: listed["cycle_id"].astype(str).to_numpy(),
                            when: listed["index_date"].dt.date.to_numpy(),
                            outcome: listed["indicator"].to_numpy(),
                            why: [_why(s, e) for s, e in zip(listed["signal"], listed["expected"], strict=True)],
                        }
                    ),
                    hide_index=True,
                    width="stretch",
                    height=min(36 + 35 * len(listed), 560),
                    column_config={
                        record: st.column_config.TextColumn(record, width=130, help=t("pages.record_key_help", lang)),
                        when: st.column_config.DateColumn(when, width=100),
                        outcome: st.column_config.TextColumn(outcome, width=260),
                        why: st.column_config.TextColumn(why, width="large"),
                    },
                )
