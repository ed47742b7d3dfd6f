"""Overview: one scorecard row per condition team of the own hospital, with click-through to the team page."""

import pandas as pd
import streamlit as st

from ui import auth, benchmark, data, filters, render
from ui import prems as ui_prems
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

viewer = auth.current()
# the key indicators' tables: one small table per condition, the verdict right after the indicator (a phone
# shows both)
verdict_column, indicator_column = t("verdict.column", lang), t("column.indicator", lang)
KEY_COLUMNS = [indicator_column, verdict_column, t("spc.variation", lang), t("spc.assurance", lang)]
shown_conditions = [
    c for c in catalog.conditions if c in set(volumes["condition"]) and access.may_view_condition(viewer, c)
]
# every visit is checked and audited per condition (vbhc.access, through data.result_for); what the page shows
# of them is computed once per view, language and viewer scope (render.cached) and read on later visits
results = {c: data.result_for(viewer, c, "hospital", chosen.period, chosen.peers) for c in shown_conditions}


def scorecard_parts() -> tuple:
    """The scorecard's rows and colours, the key indicators' verdict tables, the meeting's changes, the own
    care cycles shown and the benchmark populations, of the conditions the viewer may see."""
    rows, colours, keyed, since, volumes_shown = [], [], [], [], []
    populations: dict[str, list[str]] = {}  # benchmark population -> the conditions judged against it
    for condition, result in results.items():
        # where external figures of the condition are stored, the own hospital is judged among them (as the team
        # page does by default): a registry of the own patients alone would benchmark the hospital against itself
        compared = benchmark.external_comparison(
            condition, "hospital", chosen.period, chosen.peers, own_hospital or "", lang
        )
        if compared.result is not None:
            populations.setdefault(str(compared.population), []).append(catalog.conditions[condition].label(lang))
        table = (compared.result or result).table
        mine = table[table["unit"] == own_hospital] if own_hospital else table.iloc[0:0]
        if mine.empty:
            continue
        row = {t("column.condition", lang): catalog.conditions[condition].label(lang)}
        colour = {}
        volume = mine[mine["kind"] == "volume"]
        row[t("column.care_cycles", lang)] = fmt_int(volume["n"].iloc[0] if len(volume) else None, lang)
        if len(volume) and pd.notna(volume["n"].iloc[0]):
            volumes_shown.append(int(volume["n"].iloc[0]))
        for number, ind in enumerate(mine[mine["key"].astype(bool) & (mine["kind"] != "cost")].itertuples(), start=1):
            name = t("overview.key_indicator", lang, number=number)
            label = render.indicator_label(condition, ind.indicator, lang)
            judged = verdict.verdict(ind._asdict())  # the same verdict as everywhere else
            # the value is adjusted where the verdict compares observed with expected: say so, as the verdict
            # table below shows the observed value ("7.4% against 8.9% expected" beside "7.6% (benchmark 9.2%)")
            if judged.against == "withheld":  # the benchmark withheld from this viewer: the crude value, and why
                row[name] = t("overview.key_value_withheld", lang, indicator=label, value=judged.value_text(lang))
            elif pd.isna(ind.adjusted_value):  # no value to show: the verdict says why ("Too few care cycles")
                row[name] = t("overview.key_value_missing", lang, indicator=label, verdict=judged.label(lang))
            else:
                row[name] = t(
                    "overview.key_value" if judged.against == "benchmark" else "overview.key_value_adjusted",
                    lang,
                    indicator=label,
                    value=format_value(ind.adjusted_value, ind.kind, lang),
                    benchmark=format_value(ind.target, ind.kind, lang),
                )
            colour[name] = judged.assessment
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
        own_charts = data.unit_charts_for(viewer, condition, "hospital", chosen.period, chosen.peers, str(own_hospital))
        spc_charts = render.charts_by_row(key_rows, own_charts, own_hospital)
        if len(key_rows):
            shown = render.indicator_display(key_rows, lang, charts=spc_charts)[KEY_COLUMNS]
            paint = pd.DataFrame({verdict_column: render.verdict_assessments(key_rows, spc_charts)}, index=shown.index)
            keyed.append((catalog.conditions[condition].label(lang), shown, paint))
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
    return rows, colours, keyed, since, volumes_shown, populations


stamps = tuple(benchmark.external_stamp(c) for c in shown_conditions)  # external figures imported since
rows, colours, keyed, since, volumes_shown, populations = render.cached(
    ("overview_scorecard", own_hospital, stamps), scorecard_parts
)

if not rows:
    st.info(t("empty.no_match", lang))
    st.stop()
# the own hospital's care cycles in the scorecard (the conditions this viewer may see), not the whole registry
own_name = filters.unit_name(own_hospital, "hospital") if own_hospital else None
st.metric(
    t("pages.own_care_cycles", lang, hospital=own_name) if own_name else t("pages.visible_care_cycles", lang),
    fmt_int(sum(volumes_shown), lang),
)
scorecard = pd.DataFrame(rows)
conditions = scorecard.pop("_condition")
painted = pd.DataFrame(colours).reindex(columns=scorecard.columns)
st.subheader(t("overview.scorecard", lang))
st.caption(f"{t('overview.legend', lang)} {t('overview.adjusted_note', lang)}")
if populations:  # one line per benchmark population, naming the condition teams judged against it
    st.caption(
        "  \n".join(
            f"{t('external.benchmark_named', lang, population=md_escape(p))}: {md_escape(', '.join(c))}"
            for p, c in populations.items()
        )
    )
# key indicators differ per condition, so their cells say which indicator they are: they wrap, so the whole
# scorecard, response and cost included, fits the main area of a 1440 px screen
widths = {t("column.condition", lang): 112, t("column.care_cycles", lang): 80}
widths |= {c: 170 for c in scorecard.columns if c not in widths}
widths[t("column.response_rate", lang)] = 80
widths[t("column.cost_per_cycle", lang)] = 100
render.static_table(scorecard, colours=painted, widths=widths)

st.subheader(t("overview.open_team", lang))
PER_ROW = 4
for start in range(0, len(conditions), PER_ROW):
    cols = st.columns(PER_ROW)
    for col, condition in zip(cols, list(conditions)[start : start + PER_ROW], strict=False):
        label = catalog.conditions[condition].label(lang)
        if col.button(
            md_escape(label),
            key=f"open_{condition}",
            on_click=filters.carry_over,  # sets the condition before its box is drawn; keeps the other filters
            kwargs={"condition": condition},
            help=t("pages.open_team_help", lang, condition=label),
            width="stretch",
            icon=":material/groups:",
        ):
            st.switch_page("views/condition_team.py")

# --- key indicators: one verdict each, with the Making Data Count icons -----------------------------------
# one small table per condition under its name: the verdict right after the indicator, so a phone shows both
widths = {indicator_column: 170, verdict_column: 400, t("spc.variation", lang): 100, t("spc.assurance", lang): 100}
if keyed:
    st.subheader(t("overview.key_verdicts", lang))
for label, shown, paint in keyed:
    st.markdown(f"###### {md_escape(label)}")
    render.static_table(shown, colours=paint, widths=widths, min_widths={verdict_column: 190})

# --- patient experience of the own hospital's departments, beside the outcomes -------------------------------
if own_hospital:
    departments = units.loc[units["hospital"] == own_hospital, "department"].astype(str)
    own_departments = [f"{own_hospital}/{d}" for d in departments]
    ui_prems.show(viewer, "department", own_departments, chosen.period, lang, key_only=True)

# --- since the last meeting ------------------------------------------------------------------------------
render.show_since_last_meeting(since, lang)

st.subheader(t("download.reports", lang))
render.report_downloads(
    [data.result(c, "hospital", chosen.period, chosen.peers) for c in conditions],
    own_hospital,
    lang,
    key="overview",
    peers=chosen.peers,
)
