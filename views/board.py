"""Board review: per condition team, how its improvement cycle stands (issue 14, item 5), for the board's monthly
review with each division. Counts from vbhc.board (which applies the role rules); the items themselves are on the
Meeting page."""

import datetime as dt

import pandas as pd
import streamlit as st

from ui import auth, data, filters, render
from vbhc.board import board_hospitals, board_review
from vbhc.catalog import default_catalog
from vbhc.charts import WORSE
from vbhc.i18n import fmt_date, fmt_int, t
from vbhc.settings import database_url, signal_explain_days

chosen, lang = render.page_start("board.title")
viewer = auth.current()
engine = data.current_engine()
units = data.units(database_url(), data.version())
today = dt.date.today()
rows = board_review(
    engine,
    viewer,
    hospitals=board_hospitals(viewer, units),
    units=units,
    today=today,
    # targets are judged on the values this viewer sees on the other pages (same filters, same role rules)
    result_of=lambda condition, level: data.result_for(viewer, condition, level, chosen.period, chosen.peers),
)
shown = sorted({r.hospital for r in rows})
names = ", ".join(filters.unit_name(h, "hospital") for h in shown)
st.caption(t("board.intro", lang, hospitals=names or "–", date=fmt_date(today, lang)))
if not rows:
    st.info(t("board.nothing", lang))
    st.stop()

catalog = default_catalog()
counts = {
    "board.col_open_signals": "open_signals",
    "board.col_overdue_signals": "overdue_signals",
    "board.col_open_actions": "open_actions",
    "board.col_overdue_actions": "overdue_actions",
    "board.col_targets_met": "targets_met",
    "board.col_targets_not_met": "targets_not_met",
    "board.col_targets_no_data": "targets_no_data",
}
if any(r.targets_withheld for r in rows):  # another hospital's small cells withheld for this viewer: not judged
    counts["board.col_targets_withheld"] = "targets_withheld"
#: counts the board asks about when they are not zero: tinted as "worse"
alarming = ("overdue_signals", "overdue_actions", "targets_not_met")
table = pd.DataFrame(
    [
        {
            t("board.col_division", lang): r.division or "–",
            t("column.condition", lang): catalog.condition(r.condition).label(lang),
            t("column.hospital", lang): filters.unit_name(r.hospital, "hospital"),
            **{t(key, lang): fmt_int(getattr(r, name), lang) for key, name in counts.items()},
        }
        for r in rows
    ]
)
colours = pd.DataFrame(
    [
        {t(key, lang): WORSE if name in alarming and getattr(r, name) else "" for key, name in counts.items()}
        for r in rows
    ]
)
if len(shown) == 1:  # one hospital, named in the caption above: its name in every row only pushed the counts off
    table = table.drop(columns=t("column.hospital", lang))
render.static_table(table, colours=colours, widths={t("column.condition", lang): 180})
st.caption(t("board.legend", lang, count=signal_explain_days()))
