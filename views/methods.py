"""Methods: plain-language explanation, generated from the catalog so it always matches the indicators."""

import pandas as pd
import streamlit as st

from ui import filters, render
from vbhc.catalog import default_catalog
from vbhc.i18n import MISSING, fmt_int, fmt_number, t
from vbhc.safety import md_escape

chosen = filters.current()
lang = chosen.lang if chosen else filters.language()
st.title(t("methods.title", lang))
st.caption(t("methods.intro", lang))
for section in (
    "casemix",
    "comparison_group",
    "missing",
    "oe",
    "funnel",
    "overdispersion",
    "small_numbers",
    "shrinkage",
    "cusum",
    "tiers",
    "textbook",
):
    st.subheader(t(f"methods.{section}_title", lang))
    st.write(t(f"methods.{section}_text", lang))

catalog = default_catalog()
st.subheader(t("methods.indicators_title", lang))
for condition in catalog.conditions.values():
    with st.expander(f"{md_escape(condition.label(lang))} — {md_escape(condition.standard_set_label(lang))}"):
        st.markdown(
            f"**{t('model.variables', lang)}:** " + ", ".join(md_escape(v.label(lang)) for v in condition.casemix)
        )
        # static tables, not st.dataframe grids: a reference of up to 15 rows read, never sorted or scrolled; 14
        # canvas grids (two per condition) cost the browser most of this page's drawing on every visit
        render.static_table(
            pd.DataFrame(
                {
                    t("column.indicator", lang): [i.label(lang) for i in condition.indicators],
                    t("column.kind", lang): [t(f"kind.{i.kind}", lang) for i in condition.indicators],
                    t("column.tier", lang): [
                        t(f"tier.{i.tier}", lang) if i.tier else MISSING for i in condition.indicators
                    ],
                    t("column.direction", lang): [t(f"direction.{i.direction}", lang) for i in condition.indicators],
                    t("methods.min_n", lang): [fmt_int(i.min_n, lang) for i in condition.indicators],
                }
            ),
            widths={t("column.indicator", lang): 360},
            min_widths={t("column.direction", lang): 110},  # "Higher is better" on one line
            lang=lang,
        )
        rows = []
        for use in condition.proms:
            instrument = catalog.instruments[use.instrument]
            for scale in instrument.scales:
                rows.append(
                    {
                        t("proms.instrument", lang): instrument.label(lang),
                        t("proms.scale", lang): scale.label(lang),
                        t("methods.mic", lang): fmt_number(scale.mic, lang, 2),
                        t("methods.source", lang): scale.source(lang),
                    }
                )
        if rows:
            render.static_table(
                pd.DataFrame(rows),
                widths={t("methods.source", lang): 420},
                min_widths={t("proms.instrument", lang): 110},  # "EORTC QLQ-C30" on one line
                lang=lang,
            )
