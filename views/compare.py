"""Compare departments: units side by side on volume, adjusted outcomes, PROMs and cost (for managers)."""

import pandas as pd
import streamlit as st

from ui import auth, data, filters, layout, render
from vbhc import charts
from vbhc.catalog import default_catalog
from vbhc.i18n import format_value, t, unit_label

chosen, lang = render.page_start("compare.title")
st.caption(t("compare.intro", lang))

condition = default_catalog().condition(chosen.condition)
level = chosen.level if chosen.level != "condition_team" else "department"
result = data.result_for(auth.current(), chosen.condition, level, chosen.period, chosen.peers)
table = result.table

wide = {}
for indicator_id, rows in table.groupby("indicator", sort=False):
    ind = condition.indicator(indicator_id)
    rows = rows.set_index("unit")
    value = rows["n"] if ind.kind == "volume" else rows["adjusted_value"]
    wide[ind.label(lang)] = value
numbers = pd.DataFrame(wide)
names = filters.unit_names(level, chosen.condition, lang)  # a manager's "other unit k" stays as it is
numbers.index = [names.get(str(u), str(u)) for u in numbers.index]
numbers.index.name = t("column.unit", lang)
columns = list(numbers.columns)
filters.keep_valid("compare_sort", columns)  # the indicators of the previous condition are gone
sort_by = st.selectbox(t("compare.sort_by", lang), columns, key="compare_sort")
ascending = st.toggle(t("compare.ascending", lang), value=False, key="compare_ascending")
numbers = numbers.sort_values(sort_by, ascending=ascending)

kinds = {condition.indicator(i).label(lang): condition.indicator(i).kind for i in table["indicator"].unique()}
judged = table.assign(verdict=render.verdict_assessments(table))  # the colour of the one verdict (vbhc.verdict)
assessments = judged.pivot(index="unit", columns="indicator", values="verdict")
assessments.columns = [condition.indicator(c).label(lang) for c in assessments.columns]
assessments.index = [names.get(str(u), str(u)) for u in assessments.index]
formatted = numbers.copy().astype(object)
bands = table[table["kind"] == "volume"].set_index("unit")["n_band"].fillna("") if "n_band" in table else pd.Series()
bands.index = [names.get(str(u), str(u)) for u in bands.index]
for col in formatted.columns:
    formatted[col] = [format_value(v, kinds[col], lang) for v in numbers[col]]
    if kinds[col] == "volume" and len(bands):  # other units' volume as vbhc.access gives it: a band
        formatted[col] = [bands.get(u) or f for u, f in zip(formatted.index, formatted[col], strict=True)]
unit_column = t("column.unit", lang)
# the unit as a column, not the index: st.table shows an index as Markdown without escaping it
shown = formatted.reset_index(drop=True)
shown.insert(0, unit_column, [unit_label(u, lang) for u in formatted.index])
colours = assessments.reindex(index=numbers.index, columns=formatted.columns).reset_index(drop=True)
# every indicator at least its longest header word wide (a header word is never cut), the indicators split
# over as many tables as it takes for each to fit the main area of the meeting screen beside the unit names
widths = {unit_column: 190} | {c: max(84, layout.word_px(c)) for c in formatted.columns}
for group in layout.column_groups(list(formatted.columns), widths, unit_column):
    render.static_table(
        shown[[unit_column, *group]],
        colours=colours[group],
        widths={c: widths[c] for c in (unit_column, *group)},
        min_widths={unit_column: 150},
    )
# the colours named (a list of the assessments alone told no one which colour is which)
st.caption(t("overview.legend", lang))

key_rows = filters.with_unit_names(
    table[table["key"].astype(bool) | table["kind"].isin(["response_rate"])], level=level
)
own = names.get(str(chosen.unit), chosen.unit) if chosen.unit else None
# one chart per indicator, two side by side in columns that a phone stacks, each built to fit a phone's screen
# (one grid of every indicator is not stretched: on a phone its right-hand panels were cut off)
st.subheader(charts.label("small_multiples", lang))
st.caption(charts.label("small_multiples_sub", lang))
# the panels' colours and the own unit's mark explained once, above them (each panel drew the same legend; its
# PNG download keeps its own)
render.assessment_legend(key_rows, lang)
indicators = list(dict.fromkeys(key_rows["indicator"]))
for start in range(0, len(indicators), 2):
    for column, indicator in zip(st.columns(2), indicators[start : start + 2], strict=False):
        with column:
            render.cached_chart(
                ("small_multiples", level, indicator),
                lambda indicator=indicator: charts.indicator_panel(
                    key_rows[key_rows["indicator"] == indicator], lang=lang, highlight=own
                ),
                highlight=own,
                legend=False,
            )
