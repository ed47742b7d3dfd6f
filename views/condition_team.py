"""Condition team: the page a care team puts on the big screen in its monthly outcome meeting.

Four tabs, each one screen (1440x900): the verdicts (indicator tables by outcome tier), one indicator in depth
(funnel, caterpillar, trend, VLAD/CUSUM), case-mix and data quality, and the cases to discuss."""

import pandas as pd
import streamlit as st

from ui import auth, benchmark, data, filters, layout, render
from ui import prems as ui_prems
from vbhc import access, annotations, charts, imputation, prems, registry, shrinkage, spc, verdict
from vbhc.agenda import distinct_labels
from vbhc.casemix import shares_of_gap_read_as_shares
from vbhc.catalog import BINARY_KINDS, CONTINUOUS_KINDS, SURVIVAL_KINDS, default_catalog
from vbhc.i18n import (
    DATE_INPUT_FORMAT,
    KIND_FORMAT,
    MISSING,
    fmt_ci,
    fmt_date,
    fmt_difference,
    fmt_int,
    fmt_number,
    fmt_percent,
    fmt_ratio,
    format_value,
    t,
    t_md,
)
from vbhc.indicators import (
    SurvivalCurves,
    casemix_explanation,
    casemix_imputation,
    cusum_vlad,
    funnel_curve,
    indicator_over_time,
    survival_curves,
)
from vbhc.models import ImprovementAction
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
table = registry_table = result.table
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

# external benchmark figures stored for the condition (vbhc.external): the own hospital among them, if chosen
comparison = benchmark.choose(chosen.condition, chosen.level, chosen.period, chosen.peers, unit, lang)
benchmark.show_notes(comparison, chosen.condition, lang)
if comparison.benchmark is not None:
    table = comparison.benchmark.table
    mine = table[table["unit"] == unit]
population = comparison.population

# the indicators with a row for the unit in the table they are read from (survival: the registry's, see below);
# an indicator without one (no follow-up data, figures left out) has nothing to show in depth
in_registry = set(registry_table.loc[registry_table["unit"] == unit, "indicator"])
choices = [
    i.id
    for i in condition.indicators
    if i.kind != "volume" and i.id in (in_registry if i.kind in SURVIVAL_KINDS else set(mine["indicator"]))
]

# one screen per tab; only the open tab's content runs (its charts are built when someone looks at them). A shared
# link that names an indicator opens that indicator in depth.
TABS = ("verdicts", "depth", "casemix", "cases")
labels = [t(f"pages.tab_{tab}", lang) for tab in TABS]
filters.keep_tab("team_tab", [f"pages.tab_{tab}" for tab in TABS])
opened_by_link = "_team_tab_seeded" not in st.session_state and st.query_params.get("indicator") in choices
st.session_state["_team_tab_seeded"] = True
verdicts, depth, casemix, cases = st.tabs(
    labels, key="team_tab", on_change="rerun", default=labels[1] if opened_by_link else None
)


def pick_indicator() -> str:
    """The indicator box, in the tab that is open (one tab runs at a time, so the widget exists once). Its value
    is kept between tabs: Streamlit forgets a widget's state in runs that do not draw it."""
    remembered = st.session_state.get("_indicator")
    if "indicator" not in st.session_state and remembered in choices:
        st.session_state["indicator"] = remembered
    value = filters.synced(
        st.selectbox,
        t("filter.indicator", lang),
        choices,
        key="indicator",
        format_func=lambda i: condition.indicator(i).label(lang),
    )
    st.session_state["_indicator"] = value
    return value


def unit_spc() -> dict:
    """The SPC chart of each of the unit's indicators (by row index): the trend and icons of every verdict. The
    charts come from the full view (the same for every viewer, prepared for every unit ahead); the rows are the
    viewer's."""
    charts_of_unit = data.unit_charts_for(viewer, chosen.condition, chosen.level, chosen.period, chosen.peers, unit)
    return render.charts_by_row(mine, charts_of_unit, unit)


def indicator_rows(indicator_id: str, source: pd.DataFrame | None = None):
    """The indicator's rows of the compared table (`source`: another one, e.g. the registry's for the model)."""
    source = table if source is None else source
    rows = source[source["indicator"] == indicator_id]
    return rows, rows[rows["unit"] == unit].iloc[0]


def _verdict_tables(spc_charts: dict) -> tuple[list[tuple[str, str]], str]:
    """The unit's indicators as one static table per outcome tier (Porter), titled by its name, volume-less rest
    (PROM response, cost) last: (heading, HTML) pairs and the key to the columns' short headers, built once per
    view, unit, language and viewer scope (the HTML is plain text: a run only sends it)."""
    ordered = mine.assign(_tier=mine["tier"].fillna(9).astype(int)).sort_values("_tier", kind="stable")
    shown = ordered[ordered["kind"] != "volume"]
    display = render.indicator_display(shown, lang, charts=spc_charts)
    verdict_column, indicator_column = t("verdict.column", lang), t("column.indicator", lang)
    # crude value, observed, expected and interval are in the depth tab and the verdict's own words
    hidden = {t(k, lang) for k in ("column.crude", "column.observed", "column.expected", "column.ci95")}
    display = display[[c for c in display.columns if c not in hidden]]
    display = benchmark.named_verdicts(display, verdict_column, comparison, lang)
    # the verdict right after the indicator's name: on a phone the two fill the screen, numbers scroll in
    rest = [c for c in display.columns if c not in (indicator_column, verdict_column)]
    display = display[[indicator_column, verdict_column, *rest]]
    paint = pd.DataFrame({verdict_column: render.verdict_assessments(shown, spc_charts)}, index=display.index)
    widths = layout.indicator_widths(lang, display.columns) | {indicator_column: 170, verdict_column: 360}
    headers = layout.indicator_headers(lang, display.columns)
    tables = []
    for tier in sorted(shown["_tier"].unique()):
        part = shown.index[shown["_tier"] == tier]
        heading = f"###### {t(f'tier.{tier}', lang) if tier < 9 else t('pages.tier_other', lang)}"
        html = render.static_table_html(
            display.loc[part],
            colours=paint.loc[part],
            widths=widths,
            min_widths={verdict_column: 190},
            headers=headers,
            lang=lang,
        )
        tables.append((heading, html))
    return tables, layout.indicator_key(lang, display.columns)


# --- the team's indicators, grouped by outcome tier ----------------------------------------------------
if verdicts.open:
    with verdicts:
        tables, column_key = render.cached(("team_tables", unit, *comparison.key), lambda: _verdict_tables(unit_spc()))
        for heading, html in tables:
            st.markdown(heading)
            st.html(html)
        st.caption(t("overview.legend", lang))
        st.caption(column_key)
        # patient experience of the unit (its departments, for a condition team) beside the outcomes
        prem_level, prem_units = prems.experience_units(
            chosen.level, unit, data.current_engine(), condition_units=data.condition_units_now
        )
        ui_prems.show(viewer, prem_level, prem_units, chosen.period, lang)
        render.show_unit_since_last_meeting(result, unit, lang)
        # reports of this view (Excel workbook, PDF meeting report)
        st.markdown(f"##### {t('download.reports', lang)}")
        reported = comparison.result or data.result(chosen.condition, chosen.level, chosen.period, chosen.peers)
        render.report_downloads([reported], unit, lang, key="team_report", peers=chosen.peers)


def _trend_options(notes: annotations.ChartNotes) -> tuple[dict, ImprovementAction | None]:
    """Limits of the trend chart (vbhc.spc): MR screening, a frozen baseline, a rebase date, and with actions linked
    to the indicator a rebase at an action's start (before and after, each phase its own limits). Returns the
    options and the action rebased at (or None)."""
    with st.expander(t("spc.limits", lang), expanded=bool(st.session_state.get("spc_action"))):
        at_action = None
        if notes.actions:
            # by title and start, never by item id; two actions of one title told apart by owner and due date
            names = dict(
                zip(
                    (a.item_id for a in notes.actions),
                    distinct_labels(
                        notes.actions,
                        lambda a: t("spc.action_option", lang, title=a.title, date=fmt_date(a.start, lang)),
                        [
                            lambda a: a.owner_role or MISSING,
                            lambda a: t("agenda.due_on", lang, date=fmt_date(a.due, lang)),
                        ],
                    ),
                    strict=True,
                )
            )
            picked = st.selectbox(
                t("spc.rebase_action", lang),
                [None, *names],
                key="spc_action",
                format_func=lambda i: t("spc.none", lang) if i is None else names[i],
            )
            at_action = notes.action(picked)
        screen = st.toggle(t("spc.screen_mr", lang), value=True, key="spc_screen")
        baseline = st.number_input(t("spc.baseline", lang), min_value=0, max_value=40, value=0, key="spc_baseline")
        rebase = st.date_input(t("spc.rebase", lang), value=None, key="spc_rebase", format=DATE_INPUT_FORMAT[lang])
    dates = tuple(d for d in (at_action.start if at_action else None, rebase) if d)
    return {"screen_mr": screen, "baseline": int(baseline) or None, "rebase": dates or None}, at_action


def _phases_note(trend: pd.DataFrame, action: ImprovementAction, kind: str) -> None:
    """Before and after the action the chart is rebased at: each phase's centre line, and whether its limits are
    provisional (too few periods)."""
    compared = annotations.compare_phases(trend, action.start)
    if compared is None:
        st.caption(t("spc.no_phases", lang, title=action.title))
        return
    before, after = compared.before, compared.after
    st.caption(
        t(
            "spc.phases",
            lang,
            title=action.title,
            before=format_value(before["centre"], kind, lang),
            before_points=t("spc.periods", lang, count=before["points"]),
            after=format_value(after["centre"], kind, lang),
            after_points=t("spc.periods", lang, count=after["points"]),
        )
    )
    if compared.provisional:
        st.caption(t("spc.provisional", lang, count=spc.MIN_PHASE_POINTS))


def _trend_section(indicator_id: str, ind, notes: annotations.ChartNotes) -> None:
    """The trend with its control limits, the Making Data Count icons and the rules that fired (as drawn), the
    targets in force and the linked actions."""
    options, at_action = _trend_options(notes)
    settings = tuple(sorted((k, str(v)) for k, v in options.items()))
    trend = None
    if ind.kind != "response_rate":
        trend = render.cached(
            ("trend_data", indicator_id, unit, *settings),
            lambda: indicator_over_time(result, indicator_id, unit, freq="QS", **options),
            by_language=False,
        )
    shown_chart = render.cached_chart(
        ("trend", indicator_id, unit, *settings, notes.key),
        lambda: (
            charts.trend_chart(trend, kind=ind.kind, lang=lang, targets=notes.targets, actions=notes.actions)
            if trend is not None and len(trend)
            else None
        ),
    )
    if not shown_chart:
        st.caption(t("team.no_trend", lang))
        return
    fired = sorted({r for r in trend["rules"] for r in str(r).split("; ") if r})
    icons = f"{t('spc.variation', lang)}: {render.spc_label(trend.attrs.get('variation'), lang)} · "
    icons += f"{t('spc.assurance', lang)}: {render.spc_label(trend.attrs.get('assurance'), lang)}"
    if fired:
        icons += f" · {t('spc.rules_fired', lang)}: " + "; ".join(t(f"spc.rule_{r}", lang) for r in fired)
    st.caption(icons)
    if trend.attrs.get("target") is not None:
        st.caption(t("spc.target_note", lang, target=format_value(trend.attrs["target"], ind.kind, lang)))
    if at_action is not None:
        _phases_note(trend, at_action, ind.kind)


def _ph_check(row: pd.Series) -> str:
    """The Cox model's proportional-hazards check (smallest Schoenfeld p over the case-mix) in plain words."""
    p = row.get("ph_p_value")
    if p is None or not pd.notna(p):
        return t("survival.ph_unknown", lang)
    shown = f"= {fmt_number(p, lang, 3)}" if p >= 0.001 else f"< {fmt_number(0.001, lang, 3)}"
    if p >= 0.05:
        return t("survival.ph_holds", lang, p=shown)
    # a design column: the variable, a category level ("stage[III]"), its square or its missing indicator
    variable = str(row.get("ph_variable") or "").split("[")[0].split("^")[0].split(":")[0]
    named = (
        render.variable_label(variable, chosen.condition, lang)
        if variable in condition.casemix_names
        else t("survival.the_casemix", lang)
    )
    return t("survival.ph_violated", lang, variable=named, p=shown)


def _at_risk_table(curves: SurvivalCurves, names: dict[str, str]) -> pd.DataFrame:
    """The number at risk at a few times per group, its Kaplan-Meier survival in brackets."""
    table = curves.at_risk
    columns = {}
    for years in pd.unique(table["years"]):
        if years == 0:
            head = t("survival.start", lang)
        elif curves.years >= 3:
            head = t("survival.year", lang, n=fmt_int(years, lang))
        else:
            head = t("survival.month", lang, n=fmt_int(round(years * 12), lang))
        at = table[table["years"] == years].set_index("unit")
        columns[head] = [
            f"{fmt_int(at.loc[g, 'at_risk'], lang)} ({fmt_percent(at.loc[g, 'survival'], lang)})"
            if g in at.index
            else MISSING
            for g in names
        ]
    return pd.DataFrame({t("survival.group", lang): list(names.values()), **columns})


def _survival_curves_section(indicator_id: str, row: pd.Series) -> None:
    """Kaplan-Meier curves of the unit against the benchmark population with their bands, the number at risk,
    and the Cox model's proportional-hazards check in words."""
    curves = render.cached(
        ("survival_curves", indicator_id, unit), lambda: survival_curves(result, indicator_id, unit), by_language=False
    )
    if curves.curves.empty:
        st.caption(t("survival.no_follow_up", lang))
        return
    names = {SurvivalCurves.OWN: unit_name, SurvivalCurves.BENCHMARK: t("survival.benchmark_population", lang)}
    render.cached_chart(
        ("survival", indicator_id, unit),
        lambda: charts.survival_chart(curves.curves.assign(unit=curves.curves["unit"].map(names)), lang=lang),
        highlight=unit_name,
    )
    at_risk = _at_risk_table(curves, names)
    render.data_grid(
        at_risk,
        hide_index=True,
        width="stretch",
        column_config=layout.text_columns({c: (230 if i == 0 else 110) for i, c in enumerate(at_risk.columns)}),
    )
    st.caption(t("survival.at_risk_caption", lang))
    st.caption(_ph_check(row))


def _shrinkage_section(ind, rows: pd.DataFrame, row: pd.Series) -> None:
    """The random-effects (shrinkage) estimates next to the adjusted values, on request: an adjusted value takes a
    small unit's few care cycles at face value, the shrunken estimate weighs them against the other units (see
    vbhc.shrinkage), and the expected rank says how sure a place in a ranking is."""
    if not filters.synced_toggle(t("team.shrinkage_toggle", lang), key="shrunken"):
        return
    if shrinkage.SHRUNKEN_VALUE not in rows or pd.isna(row.get(shrinkage.SHRUNKEN_VALUE)):
        st.caption(t("team.shrinkage_none", lang))  # survival, response rate, or external figures: no patient rows
        return
    shrunken = pd.to_numeric(rows[shrinkage.SHRUNKEN_VALUE], errors="coerce")

    def _rank(r: pd.Series) -> str:
        if pd.isna(r[shrinkage.EXPECTED_RANK_LOWER]):  # a manager's other unit: the whole rank, no interval
            return fmt_int(r[shrinkage.EXPECTED_RANK], lang)
        lower, upper = fmt_int(r[shrinkage.EXPECTED_RANK_LOWER], lang), fmt_int(r[shrinkage.EXPECTED_RANK_UPPER], lang)
        return f"{fmt_number(r[shrinkage.EXPECTED_RANK], lang, 1)} ({lower}–{upper})"

    def _value(r: pd.Series) -> str:
        value = format_value(r[shrinkage.SHRUNKEN_VALUE], ind.kind, lang)
        if pd.isna(r[shrinkage.SHRUNKEN_LOWER]):  # a manager's other unit: rounded, without its interval
            return value
        return f"{value} ({fmt_ci(r[shrinkage.SHRUNKEN_LOWER], r[shrinkage.SHRUNKEN_UPPER], ind.kind, lang)})"

    ranked = int(row[shrinkage.RANKED_UNITS]) if pd.notna(row[shrinkage.RANKED_UNITS]) else 0
    st.markdown(
        t_md(
            "team.shrinkage_own",
            lang,
            unit=unit_name,
            value=format_value(row[shrinkage.SHRUNKEN_VALUE], ind.kind, lang),
            ci=fmt_ci(row[shrinkage.SHRUNKEN_LOWER], row[shrinkage.SHRUNKEN_UPPER], ind.kind, lang),
            adjusted=format_value(row["adjusted_value"], ind.kind, lang),
        )
        + " "
        + t(
            "team.shrinkage_rank",
            lang,
            count=ranked,
            rank=fmt_number(row[shrinkage.EXPECTED_RANK], lang, 1),
            lower=fmt_int(row[shrinkage.EXPECTED_RANK_LOWER], lang),
            upper=fmt_int(row[shrinkage.EXPECTED_RANK_UPPER], lang),
        )
    )
    shown = filters.with_unit_names(rows[shrunken.notna()]).sort_values(shrinkage.EXPECTED_RANK, kind="stable")
    heads = {
        "unit": t("column.unit", lang),
        "n": t("column.care_cycles", lang),
        "adjusted": t("column.adjusted", lang),
        "shrunken": t("team.shrunken_column", lang),
        "rank": t("team.expected_rank_column", lang),
    }
    render.data_grid(
        pd.DataFrame(
            {
                heads["unit"]: shown["unit"].astype(str).to_numpy(),
                heads["n"]: [render.count_text(r, lang) for _, r in shown.iterrows()],  # a band for an other unit
                heads["adjusted"]: [format_value(v, ind.kind, lang) for v in shown["adjusted_value"]],
                heads["shrunken"]: [_value(r) for _, r in shown.iterrows()],
                heads["rank"]: [_rank(r) for _, r in shown.iterrows()],
            }
        ),
        hide_index=True,
        width="stretch",
        height=min(36 + 35 * len(shown), 400),
        column_config={
            heads["unit"]: st.column_config.TextColumn(heads["unit"], width=230, pinned=True),
            **layout.text_columns({heads["n"]: 90, heads["adjusted"]: 100, heads["shrunken"]: 190, heads["rank"]: 150}),
        },
    )
    rankability = t(
        "team.shrinkage_rankability", lang, rankability=fmt_number(row[shrinkage.SHRINKAGE_RANKABILITY], lang, 2)
    )
    st.caption(f"{t('team.shrinkage_explained', lang)} {rankability}")


# --- one indicator in depth ----------------------------------------------------------------------------
if depth.open:
    with depth:
        picker, facts = st.columns([2, 3], vertical_alignment="bottom")
        with picker:
            indicator_id = pick_indicator()
        ind = condition.indicator(indicator_id)
        survival = ind.kind in SURVIVAL_KINDS
        compared, shown_population = comparison, population
        if survival and comparison.benchmark is not None:
            # external figures carry no survival (it needs each patient's follow-up): the registry's units instead
            rows, row = indicator_rows(indicator_id, registry_table)
            compared, shown_population = benchmark.Comparison(None, None, comparison.stamp), None
            st.caption(t("survival.registry_only", lang))
        else:
            rows, row = indicator_rows(indicator_id)
        named = filters.with_unit_names(rows)  # the charts show names; unit_id keeps the id
        highlight = unit_name
        with facts:
            metric_cols = st.columns(4)
            metric_cols[0].metric(t("column.care_cycles", lang), fmt_int(row["n"], lang))
            metric_cols[1].metric(t("column.crude", lang), format_value(row["crude_value"], ind.kind, lang))
            metric_cols[2].metric(t("column.adjusted", lang), format_value(row["adjusted_value"], ind.kind, lang))
            metric_cols[3].metric(t("column.benchmark", lang), format_value(row["target"], ind.kind, lang))
            if survival:  # the SMR behind the adjusted survival: deaths against the Cox model's expected deaths
                metric_cols = st.columns(4)
                metric_cols[0].metric(t("survival.deaths", lang), fmt_int(row["observed"], lang))
                metric_cols[1].metric(t("survival.expected_deaths", lang), fmt_number(row["expected"], lang, 1))
                metric_cols[2].metric(
                    t("survival.smr", lang),
                    f"{fmt_ratio(row['oe'], lang)} ({fmt_ci(row['oe_lower'], row['oe_upper'], 'oe', lang)})",
                    help=t("survival.smr_help", lang),
                )
        judged = verdict.verdict(row, unit_spc().get(row.name))  # rankability is part of the verdict's wording
        sentence = benchmark.verdict_text(judged.sentence(lang, with_ci=True), compared, lang)
        notes = [f"**{t('verdict.column', lang)}:** {md_escape(sentence)}"]
        if row["too_few_cycles"]:
            notes.append(t_md("warning.too_few_cycles", lang, unit=unit_name, count=ind.min_n))
        if row["dispersion_method"] not in ("none", None) and pd.notna(row["phi"]):
            notes.append(t("warning.overdispersion", lang, phi=fmt_number(row["phi"], lang, 2)))
        st.markdown(" · ".join(notes))
        if judged.against == "expected" and pd.notna(row["oe"]) and pd.notna(row.get("n_adjusted")):
            # crude (all cycles), the verdict's observed and expected (the scored cycles) and adjusted differ: say how
            st.caption(
                t(
                    "team.numbers_link",
                    lang,
                    count=int(row["n_adjusted"]),
                    observed=format_value(judged.value, ind.kind, lang),
                    expected=format_value(judged.expected, ind.kind, lang),
                    oe=fmt_ratio(row["oe"], lang),
                )
            )

        # the targets in force and the actions linked to the indicator, through vbhc.improvement's role rules
        on_charts = annotations.chart_notes(data.current_engine(), viewer, chosen.condition, indicator_id, unit)
        if pd.isna(row["target"]):  # vbhc.access withheld the benchmark: too few other units to compare with
            st.info(t("comparison.no_benchmark", lang, count=access.MIN_OTHER_UNITS))
        else:
            yes_no = ind.kind in BINARY_KINDS
            views = [t("team.funnel", lang), t("team.caterpillar", lang)]
            km = over_time = None
            if survival:  # the curves first; no trend per quarter (recent patients are followed for weeks only)
                views = [t("survival.curves_tab", lang), *views, t("team.crude_vs_adjusted", lang)]
                km, funnel, caterpillar, cumulative = st.tabs(views)
            else:
                views.append(t("team.trend", lang))
                views.append(t("pages.tab_vlad_cusum", lang) if yes_no else t("team.crude_vs_adjusted", lang))
                funnel, caterpillar, over_time, cumulative = st.tabs(views)
            if km is not None:
                with km:
                    _survival_curves_section(indicator_id, row)
            with funnel:
                render.cached_chart(
                    ("funnel", indicator_id, on_charts.key, *compared.key),
                    lambda: charts.funnel_chart(
                        named,
                        funnel_curve(rows),
                        highlight=highlight,
                        lang=lang,
                        targets=on_charts.targets,
                        population=shown_population,
                    ),
                    highlight=highlight,
                )
            with caterpillar:
                # O/E where every unit has expected figures; external figures without them are compared crude
                has_oe = pd.to_numeric(rows["oe"], errors="coerce").notna().any()
                value = "oe" if yes_no and has_oe else "adjusted"
                render.cached_chart(
                    ("caterpillar", indicator_id, on_charts.key, *compared.key),
                    lambda: charts.caterpillar_chart(
                        named,
                        highlight=highlight,
                        lang=lang,
                        value=value,
                        targets=on_charts.targets,
                        population=shown_population,
                    ),
                    highlight=highlight,
                )

            if over_time is not None:
                with over_time:
                    _trend_section(indicator_id, ind, on_charts)
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
                            ("vlad", indicator_id, unit, on_charts.key),
                            lambda: charts.vlad_chart(_series(), lang=lang, actions=on_charts.actions),
                        )
                    with right:
                        render.cached_chart(
                            ("cusum", indicator_id, unit, on_charts.key),
                            lambda: charts.cusum_chart(_series(), lang=lang, actions=on_charts.actions),
                        )
                else:
                    render.cached_chart(
                        ("crude_vs_adjusted", indicator_id, *compared.key),
                        lambda: charts.crude_vs_adjusted_chart(named, lang=lang, highlight=highlight),
                        highlight=highlight,
                    )
            _shrinkage_section(ind, rows, row)


# --- case-mix: what the model contributes, how good it is, how complete the data are ------------------------
def variable_label(name: str) -> str:
    return render.variable_label(name, chosen.condition, lang)


def reason_label(reason) -> str:
    return render.exclusion_label(reason, chosen.condition, lang)


def _term_label(term: str) -> str:
    """A Cox design column in words: the variable, a category level ("stage[III]") or its square ("age^2")."""
    if term.endswith("^2"):
        return t("survival.ph_term_squared", lang, variable=variable_label(term[:-2]))
    if "[" in term and term.endswith("]"):
        name, level = term[:-1].split("[", 1)
        if name in condition.casemix_names:
            return f"{variable_label(name)}: {condition.casemix_variable(name).code_label(level, lang)}"
        return f"{variable_label(name)}: {level}"
    return variable_label(term)


def _cox_quality(indicator_id: str, row: pd.Series) -> None:
    """The survival indicator's Cox model: concordance, deaths and care cycles used, the cycles left out for a
    missing case-mix value, and the proportional-hazards (Schoenfeld) check per case-mix term."""
    model = result.data.cox.get(indicator_id) if result.data is not None else None
    if model is None:
        return
    st.markdown(f"##### {t('survival.cox_title', lang)}")
    quality = {
        t("survival.concordance", lang): fmt_ratio(model.concordance, lang),
        t("survival.deaths", lang): fmt_int(model.events, lang),
        t("model.cycles_used", lang): fmt_int(model.n, lang),
        t("model.cycles_excluded", lang): fmt_int(row.get("model_n_excluded"), lang),
    }
    scale = getattr(model, "baseline_scale", None)  # a comparison group's: the registry's model, rescaled
    if scale is not None:
        quality[t("survival.baseline_scale", lang)] = fmt_ratio(scale, lang)
    measure, value = t("pages.measure", lang), t("pages.value", lang)
    render.data_grid(
        pd.DataFrame({measure: list(quality), value: list(quality.values())}),
        hide_index=True,
        width="stretch",
        column_config=layout.text_columns({measure: 230, value: 90}),
    )
    if model.fit_note in ("ridge", "unadjusted"):
        st.warning(t(f"survival.cox_{model.fit_note}", lang))
    ph = model.ph_test
    if len(ph) and "p" in ph.columns:
        heads = [t("survival.ph_term", lang), t("survival.ph_p", lang), t("survival.ph_assumption", lang)]
        st.markdown(f"###### {t('survival.ph_title', lang)}")
        # a static table: its cells wrap in the half-width column (a data grid of 490 px scrolled sideways there)
        render.static_table(
            pd.DataFrame(
                {
                    heads[0]: [_term_label(str(v)) for v in ph["variable"]],
                    heads[1]: [
                        fmt_number(p, lang, 3) if p >= 0.001 else f"< {fmt_number(0.001, lang, 3)}" for p in ph["p"]
                    ],
                    heads[2]: [
                        t("survival.ph_term_holds" if p >= 0.05 else "survival.ph_term_violated", lang) for p in ph["p"]
                    ],
                }
            ),
            widths={heads[1]: 90},
        )
    else:
        st.caption(t("survival.ph_unknown", lang))
    if scale is not None:
        st.caption(t("survival.cox_recalibrated", lang))
    st.caption(t("survival.cox_caption", lang))


def _imputation_section(ind, indicator_id: str, rows: pd.DataFrame) -> None:
    """Complete care cycles against multiple imputation of missing case-mix values (vbhc.imputation), on request:
    per unit the care cycles complete-case analysis leaves out, and E and O/E (O - E) under both. Only the units
    the viewer sees by name (a manager's other units are anonymised in the table: they are not listed here)."""
    st.markdown(f"##### {t('team.imputation_title', lang)}")
    if not filters.synced_toggle(t("team.imputation_toggle", lang), key="imputed"):
        return
    # says what it waits for: the first time for an indicator takes seconds
    with st.spinner(t("team.imputation_wait", lang, m=imputation.M)):
        found = render.cached(
            ("imputation", indicator_id), lambda: casemix_imputation(result, indicator_id), by_language=False
        )
    if found.failed:
        st.warning(t("team.imputation_failed", lang))
        return
    named = rows
    if "anonymised" in named:
        named = named[~named["anonymised"].fillna(False).astype(bool)]
    if "suppressed" in named:
        named = named[~named["suppressed"].fillna(False).astype(bool)]
    per_unit = found.per_unit[found.per_unit[imputation.UNIT].isin(set(named["unit"]))]
    ratio = found.kind == "binary"

    def _expected(v: float) -> str:
        return fmt_number(v, lang, 1) if ratio else format_value(v, ind.kind, lang)

    def _estimate(v: float, lo: float, hi: float) -> str:
        if ratio:
            return f"{fmt_ratio(v, lang)} ({fmt_ci(lo, hi, 'oe', lang)})"
        return f"{format_value(v, ind.kind, lang)} ({fmt_ci(lo, hi, ind.kind, lang)})"

    own = per_unit[per_unit[imputation.UNIT] == unit]
    if len(own):
        r = own.iloc[0]
        values = {
            "unit": unit_name,
            "expected_cc": _expected(r[imputation.EXPECTED_CC]),
            "expected_mi": _expected(r[imputation.EXPECTED_MI]),
        }
        if ratio:
            values |= {
                "oe_cc": fmt_ratio(r[imputation.ESTIMATE_CC], lang),
                "oe_mi": fmt_ratio(r[imputation.ESTIMATE_MI], lang),
            }
            values |= {
                "ci_cc": fmt_ci(r[imputation.LOWER_CC], r[imputation.UPPER_CC], "oe", lang),
                "ci_mi": fmt_ci(r[imputation.LOWER_MI], r[imputation.UPPER_MI], "oe", lang),
            }
        else:
            values |= {
                "diff_cc": format_value(r[imputation.ESTIMATE_CC], ind.kind, lang),
                "diff_mi": format_value(r[imputation.ESTIMATE_MI], ind.kind, lang),
                "ci_cc": fmt_ci(r[imputation.LOWER_CC], r[imputation.UPPER_CC], ind.kind, lang),
                "ci_mi": fmt_ci(r[imputation.LOWER_MI], r[imputation.UPPER_MI], ind.kind, lang),
            }
        key = "team.imputation_own_ratio" if ratio else "team.imputation_own_difference"
        st.markdown(t_md(key, lang, count=int(r[imputation.N_EXCLUDED]), **values))
    shown = filters.with_unit_names(per_unit)
    kind = "ratio" if ratio else "difference"
    heads = {
        "unit": t("team.imputation_unit", lang),
        "n": t("team.imputation_cycles", lang),
        "excluded": t("team.imputation_excluded", lang),
        "e_cc": t("team.imputation_expected_cc", lang),
        "est_cc": t(f"team.imputation_{kind}_cc", lang),
        "e_mi": t("team.imputation_expected_mi", lang),
        "est_mi": t(f"team.imputation_{kind}_mi", lang),
    }
    render.data_grid(
        pd.DataFrame(
            {
                heads["unit"]: shown[imputation.UNIT].astype(str).to_numpy(),
                heads["n"]: [fmt_int(v, lang) for v in shown[imputation.N]],
                heads["excluded"]: [fmt_int(v, lang) for v in shown[imputation.N_EXCLUDED]],
                heads["e_cc"]: [_expected(v) for v in shown[imputation.EXPECTED_CC]],
                heads["est_cc"]: [
                    _estimate(r[imputation.ESTIMATE_CC], r[imputation.LOWER_CC], r[imputation.UPPER_CC])
                    for _, r in shown.iterrows()
                ],
                heads["e_mi"]: [_expected(v) for v in shown[imputation.EXPECTED_MI]],
                heads["est_mi"]: [
                    _estimate(r[imputation.ESTIMATE_MI], r[imputation.LOWER_MI], r[imputation.UPPER_MI])
                    for _, r in shown.iterrows()
                ],
            }
        ),
        hide_index=True,
        width="stretch",
        height=min(36 + 35 * len(shown), 400),
        column_config={
            heads["unit"]: st.column_config.TextColumn(heads["unit"], width=200, pinned=True),
            **layout.text_columns(
                {
                    heads["n"]: 90,
                    heads["excluded"]: 120,
                    heads["e_cc"]: 110,
                    heads["est_cc"]: 170,
                    heads["e_mi"]: 110,
                    heads["est_mi"]: 170,
                }
            ),
        },
    )
    st.caption(f"{t('team.imputation_datasets', lang, count=found.m)} {t('team.imputation_explained', lang)}")


if casemix.open:
    with casemix:
        picker, _ = st.columns([2, 3])
        with picker:
            indicator_id = pick_indicator()
        ind = condition.indicator(indicator_id)
        rows, row = indicator_rows(indicator_id, registry_table)  # the own case-mix model's view of the registry
        left, right = st.columns([3, 2])
        with left:
            # per case-mix variable: what it contributes to the gap between crude and adjusted, and how complete it is
            st.markdown(f"##### {t('team.casemix_contribution', lang)}")
            variables = list(condition.casemix_names)
            frame = pd.DataFrame({"variable": variables})
            if indicator_id in result.models:
                explained = render.cached(
                    ("casemix", indicator_id), lambda: casemix_explanation(result, indicator_id), by_language=False
                )
                explained = explained[explained["unit"] == unit]
                frame = frame.merge(explained[["variable", "contribution", "share_of_gap"]], on="variable", how="outer")
                st.caption(
                    t(
                        "team.gap_explained",
                        lang,
                        crude=format_value(row["crude_value"], ind.kind, lang),
                        adjusted=format_value(row["adjusted_value"], ind.kind, lang),
                    )
                )
                gap = float(explained["gap"].iloc[0]) if len(explained) else float("nan")
                if not shares_of_gap_read_as_shares(explained["contribution"].to_numpy(), gap):
                    frame = frame.drop(columns="share_of_gap")
                    st.caption(t("team.shares_not_shown", lang))
            hospital = str(row["hospital"]) if pd.notna(row.get("hospital")) else None
            if hospital and access.may_see_unit(viewer, chosen.condition, hospital=hospital):
                complete = render.cached(
                    ("completeness", chosen.condition),
                    lambda: registry.completeness(chosen.condition, engine=data.current_engine()),
                    by_language=False,
                )
                weighted = complete.assign(cycles_filled=complete["filled"] * complete["care_cycles"])
                totals = weighted.groupby("variable", observed=True)[["cycles_filled", "care_cycles"]].sum()
                overall = totals["cycles_filled"] / totals["care_cycles"].clip(lower=1)
                own = complete[complete["hospital"] == hospital].set_index("variable")["filled"]
                frame = frame.assign(
                    complete_unit=frame["variable"].map(own), complete_all=frame["variable"].map(overall)
                )
            columns = {
                "variable": (t("model.variables", lang), 190, t("model.help_variables", lang), variable_label),
                "contribution": (  # a difference of two expected values: percentage points for a rate
                    t("pages.short_contribution", lang),
                    150 if KIND_FORMAT[ind.kind] == "percent" else 100,
                    t("pages.help_contribution", lang),
                    lambda v: fmt_difference(v, ind.kind, lang),
                ),
                "share_of_gap": (
                    t("pages.short_share", lang),
                    100,
                    t("pages.help_share", lang),
                    lambda v: fmt_percent(v, lang, 0),
                ),
                "complete_unit": (
                    t("pages.complete_unit", lang),
                    90,
                    t("pages.help_complete_unit", lang),
                    lambda v: fmt_percent(v, lang, 1),
                ),
                "complete_all": (
                    t("pages.complete_all", lang),
                    90,
                    t("pages.help_complete_all", lang),
                    lambda v: fmt_percent(v, lang, 1),
                ),
            }
            present = [c for c in columns if c in frame]
            render.data_grid(
                pd.DataFrame({columns[c][0]: [columns[c][3](v) for v in frame[c]] for c in present}),
                hide_index=True,
                width="stretch",
                column_config={
                    columns[c][0]: st.column_config.TextColumn(columns[c][0], width=columns[c][1], help=columns[c][2])
                    for c in present
                },
            )
        with right:
            if indicator_id in result.models:
                st.markdown(f"##### {t('model.title', lang)}")
                model = result.models[indicator_id]
                diag = model.diagnostics
                measures = {  # only those of the model's kind: a logistic model has no R², a linear one no c
                    "model.c_statistic": diag.c_statistic,
                    "model.calibration_slope": diag.calibration_slope,
                    "model.calibration_intercept": diag.calibration_intercept,
                    "model.r_squared": diag.r_squared,
                }
                quality = {t(key, lang): fmt_ratio(value, lang) for key, value in measures.items() if pd.notna(value)}
                quality |= {
                    t("model.cycles_used", lang): fmt_int(diag.n_used, lang),
                    t("model.cycles_excluded", lang): fmt_int(diag.n_excluded, lang),
                }
                quality |= {
                    f"· {reason_label(r)}": fmt_int(v, lang) for r, v in (diag.excluded_by_reason or {}).items()
                }
                recalibration = getattr(model, "recalibration", None)  # a comparison group's (vbhc.casemix)
                if recalibration is not None:
                    quality[t("model.registry_cycles", lang)] = fmt_int(recalibration.reference_n, lang)
                    quality[t("model.recalibration_shift", lang)] = fmt_number(recalibration.shift, lang, 3)
                render.data_grid(
                    pd.DataFrame(
                        {t("pages.measure", lang): list(quality), t("pages.value", lang): list(quality.values())}
                    ),
                    hide_index=True,
                    width="stretch",
                    column_config=layout.text_columns({t("pages.measure", lang): 230, t("pages.value", lang): 90}),
                )
                if recalibration is not None:
                    scale = t("model.scale_logit" if model.kind == "binary" else "model.scale_outcome", lang)
                    st.caption(t("model.recalibrated_caption", lang, scale=scale))
                if diag.warning_code:
                    st.warning(render.model_warning(diag, lang))
            elif ind.kind in SURVIVAL_KINDS:
                _cox_quality(indicator_id, row)
            # a published (national) model on the unit's own patients: O/E against it, coverage, calibration
            if ind.kind in BINARY_KINDS or ind.kind in CONTINUOUS_KINDS:
                # open when the quality directorate stored the national model of this indicator
                has_model = benchmark.stored_model_of(chosen.condition, indicator_id) is not None
                with st.expander(t("external.model_title", lang), expanded=has_model):
                    benchmark.published_model(chosen.condition, indicator_id, unit, lang, key="published_model")
        if indicator_id in result.models and result.data is not None:
            _imputation_section(ind, indicator_id, rows)


# --- the care cycles behind a signal (pseudonymised) -----------------------------------------------------
if cases.open:
    with cases:
        yes_no_indicators = [i for i in condition.indicators if i.kind in BINARY_KINDS]
        first = mine.iloc[0]
        hospital = str(first["hospital"]) if pd.notna(first.get("hospital")) else None
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
                own = mine[mine["indicator"] == item.id]
                # "part of a signal" only where the verdict says there is one (worse, or a special cause of concern)
                signal = bool(len(own)) and verdict.verdict(own.iloc[0], unit_spc().get(own.index[0])).concern
                outcome = (
                    item.label(lang)
                    if item.direction == "lower"
                    else t("pages.not_reached", lang, label=item.label(lang))
                )
                frames.append(found.assign(indicator=outcome, signal=signal))
            if not frames:
                st.caption(t("pages.no_cases", lang))
            else:
                listed = pd.concat(frames, ignore_index=True).sort_values(
                    ["signal", "expected", "cycle_id"], ascending=[False, True, True]
                )

                def _why(signal: bool, expected: float) -> str:
                    if signal:
                        return t("pages.why_signal", lang)
                    return t("pages.why_low_risk" if expected < 0.1 else "pages.why_event", lang)

                record, when, outcome, risk, why = (
                    t("pages.record_key", lang),
                    t("chart.date", lang),
                    t("pages.outcome", lang),
                    t("pages.expected_risk", lang),
                    t("pages.why", lang),
                )
                render.data_grid(
                    pd.DataFrame(
                        {
                            record: listed["cycle_id"].astype(str).to_numpy(),
                            when: [fmt_date(d, lang) for d in listed["index_date"]],
                            outcome: listed["indicator"].to_numpy(),
                            risk: [fmt_percent(e, lang) for e in listed["expected"]],
                            why: [_why(s, e) for s, e in zip(listed["signal"], listed["expected"], strict=True)],
                        }
                    ),
                    hide_index=True,
                    width="stretch",
                    height=min(36 + 35 * len(listed), 560),
                    column_config={
                        record: st.column_config.TextColumn(
                            record, width=115, help=t("pages.record_key_help", lang), pinned=True
                        ),
                        # the date as every other text of the language writes it ("5 Sep 2025", "5 sep 2025"):
                        # a DateColumn's format (momentJS, English month names only) wrote 05/09/2025
                        when: st.column_config.TextColumn(when, width=100),
                        # the texts without a width: the grid sizes each to its longest text (up to 500 px). A
                        # fixed width cut them: the outcome ("niet bereikt: Patiënten met relevante verbetering
                        # EQ-5D-index na 12 maanden") at 260 px and at 400 px, and the reason's risk mid-number
                        # ("verwacht risico 19,"); the risk has a column of its own, so the reason stays short
                        outcome: st.column_config.TextColumn(outcome),
                        risk: st.column_config.TextColumn(risk),
                        why: st.column_config.TextColumn(why),
                    },
                )
