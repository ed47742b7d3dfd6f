"""Patient experience (PREMs) beside the outcomes: the team page and the overview show one table per
questionnaire of the units they are about, read through vbhc.prems (role rules and audit included)."""

from __future__ import annotations

import dataclasses

import pandas as pd
import streamlit as st

from ui import data, filters, render
from ui import kept as kept_store
from vbhc import external, prems, verdict
from vbhc.access import AccessDenied, Viewer
from vbhc.catalog import default_catalog
from vbhc.i18n import MISSING, fmt_ci, format_value, t
from vbhc.indicators import IndicatorResult
from vbhc.safety import md_escape
from vbhc.settings import database_url, suppress_below


def _result(url: str, data_version: str, questionnaire: str, level: str, period: str) -> IndicatorResult:
    """One questionnaire's indicator table; shared by every viewer (prems.prem_rows picks what each may see)."""
    return data.prem_result(url, data_version, questionnaire, level, period)


def _count(row, lang: str) -> str:
    if pd.isna(row.n):
        return MISSING
    key = "prem.answers" if row.kind in prems.ANSWER_LEVEL_KINDS else "prem.respondents"
    return t(key, lang, count=int(row.n))


def display(rows: pd.DataFrame, lang: str, level: str) -> pd.DataFrame:
    """The PREM rows as the reader sees them: unit, indicator, number, adjusted value with its interval,
    benchmark and the verdict (vbhc.verdict, as for outcomes)."""
    catalog = default_catalog()
    records = list(rows.itertuples())
    chosen = filters.current()
    names = filters.unit_names(level, chosen.condition if chosen else None, lang)  # one cached lookup, not per row
    out: dict[str, list[str]] = {}
    unit_names = [names.get(str(r.unit)) or filters.unit_name(r.unit, level, lang=lang) for r in records]
    out[t("column.unit", lang)] = unit_names
    out[t("column.indicator", lang)] = [
        catalog.questionnaire(r.condition).indicator(r.indicator).label(lang) for r in records
    ]
    out[t("prem.number", lang)] = [_count(r, lang) for r in records]
    out[t("column.adjusted", lang)] = [format_value(r.adjusted_value, r.kind, lang) for r in records]
    out[t("column.ci95", lang)] = [fmt_ci(r.adjusted_lower, r.adjusted_upper, r.kind, lang) for r in records]
    out[t("column.benchmark", lang)] = [format_value(r.target, r.kind, lang) for r in records]
    out[t("verdict.column", lang)] = [v.sentence(lang) for v in verdict.verdicts(rows)]
    return pd.DataFrame(out, index=rows.index, dtype=object)


def _compared(viewer: Viewer, result: IndicatorResult, level: str, lang: str) -> tuple[pd.DataFrame | None, str | None]:
    """The own units among the stored external figures of the questionnaire at this level (the yearly comparison
    with the other academic hospitals, vbhc.external), as the viewer may see them; (None, None) without any."""
    engine = data.current_engine()
    if external.stored_levels(engine, result.condition) != {level}:
        return None, None
    try:
        got = external.external_benchmark(engine, viewer, result, lang=lang)
    except (ValueError, AccessDenied):  # every figure left out, or no unit granted: the registry's own benchmark
        return None, None
    return (got.table, got.population) if got is not None else (None, None)


def show(viewer: Viewer, level: str, units: list[str], period: str, lang: str, *, key_only: bool = False) -> bool:
    """The patient-experience tables of `units` at `level` (hospital or department), one per questionnaire with
    answers; returns whether anything was shown. `key_only`: the key indicators only (the overview).

    Without external figures at this level the finished tables are kept per dataset version, viewer scope,
    units, period and language (a click on the team page sent them again in 20-40 ms of table building); the
    role check and the audit record of each questionnaire still run on every visit."""
    engine = data.current_engine()
    if not prems.may_view_prems(viewer, engine, condition_units=data.condition_units_now):
        return False
    questionnaires = list(default_catalog().prems.values())
    if any(external.stored_levels(engine, q.id) == {level} for q in questionnaires):
        return _show_sections(_sections(viewer, level, units, period, lang, key_only), lang)
    key = (database_url(), data.version(), viewer.cache_key, suppress_below(), level, tuple(units), period, lang)
    chosen = filters.current()  # display() names the units as the filters do
    key += (key_only, chosen.condition if chosen else None)
    # tables neither in memory nor stored (a year the background has not prepared yet): computed beside the page,
    # which says what it waits for and draws them when they are ready (a server); else, or when that failed, in
    # this run, saying what it waits for meanwhile
    ids = [q.id for q in questionnaires]
    what = t("wait.preparing_prems", lang, level=t(f"level.{level}", lang), period=period or t("wait.all_dates", lang))
    if data.background_work and data.prepare_prems(ids, level, period) == "pending":
        _follow(ids, level, period, f"{what} {t('wait.prems_follow', lang)}")
        return True
    waiting = None if data.prems_ready(ids, level, period) else data.wait_box()
    if waiting is not None:
        waiting.info(what)
    try:
        kept, built = _kept.get_or_build(  # a refusal is not kept: computed (and audited) again on the next visit
            key,
            lambda: _sections(viewer, level, units, period, lang, key_only),
            keep=lambda sections: not sections.denied,
        )
    finally:
        if waiting is not None:
            waiting.empty()
    if not built:
        for rows, result in kept.seen:  # every visit is audited, as prem_rows does
            prems.record_prem_view(viewer, rows, result, engine=engine)
    return _show_sections(kept, lang)


#: How often a page whose PREM tables are being computed beside it looks whether they are ready (seconds).
FOLLOW_SECONDS = 1.0


def _follow(questionnaires: list[str], level: str, period: str, what: str) -> None:
    """Say what the page waits for where the tables will be, and look again every FOLLOW_SECONDS (a fragment: only
    this message is drawn again); once nothing is being computed any more the whole page runs again and draws the
    tables (or, when computing them failed, computes them in its run and shows the error)."""

    @st.fragment(run_every=FOLLOW_SECONDS)
    def follow() -> None:
        if not data.prems_pending(questionnaires, level, period):
            st.rerun(scope="app")
        st.info(what)

    follow()


@dataclasses.dataclass(frozen=True)
class _Sections:
    """What show() draws: per questionnaire its label, benchmark population and table HTML; the rows each
    questionnaire's view recorded in the audit log (recorded again on later visits); whether a refusal cut it
    short."""

    tables: tuple[tuple[str, str | None, str], ...]
    seen: tuple[tuple[pd.DataFrame, IndicatorResult], ...]
    denied: bool = False


#: Finished sections of show() by view.
_kept: kept_store.Kept[_Sections] = kept_store.Kept(size=256)


def _show_sections(sections: _Sections, lang: str) -> bool:
    for i, (label, population, html) in enumerate(sections.tables):
        if i == 0:
            st.subheader(t("prem.title", lang))
            st.caption(t("prem.caption", lang))
        st.markdown(f"##### {label}")
        if population:
            st.caption(t("external.benchmark_named", lang, population=md_escape(population)))
        st.html(html)
    return bool(sections.tables)


def _sections(viewer: Viewer, level: str, units: list[str], period: str, lang: str, key_only: bool) -> _Sections:
    """The tables show() draws, read through vbhc.prems (role rules and audit included)."""
    url, version = database_url(), data.version()
    tables, seen = [], []
    for q in default_catalog().prems.values():
        result = _result(url, version, q.id, level, period)
        if result.table.empty:
            continue
        rows, population = _compared(viewer, result, level, lang)
        if rows is None:
            try:
                rows = prems.prem_rows(
                    viewer, result, engine=data.current_engine(), condition_units=data.condition_units_now
                )
            except AccessDenied:  # no grant covers a unit (recorded in the audit log): nothing of patient experience
                return _Sections(tuple(tables), tuple(seen), denied=True)
            seen.append((rows, result))
        mine = rows[rows["unit"].isin(units) & (rows["kind"] != "volume") & ~rows["anonymised"]]
        if key_only:
            mine = mine[mine["key"].astype(bool)]
        mine = mine[pd.to_numeric(mine["n"], errors="coerce").fillna(0) > 0]
        if mine.empty:
            continue
        mine = mine.sort_values("unit", kind="stable")
        frame = display(mine, lang, level)
        unit_column, indicator_column = t("column.unit", lang), t("column.indicator", lang)
        verdict_column = t("verdict.column", lang)
        # the verdict next to the indicator (a phone shows both); the unit first only when there are several
        lead = [unit_column] if mine["unit"].nunique() > 1 else []
        rest = [c for c in frame.columns if c not in (unit_column, indicator_column, verdict_column)]
        frame = frame[[*lead, indicator_column, verdict_column, *rest]]
        paint = pd.DataFrame({verdict_column: render.verdict_assessments(mine)}, index=frame.index)
        html = render.static_table_html(
            frame,
            colours=paint,
            widths={unit_column: 140, indicator_column: 170, verdict_column: 320},
            min_widths={verdict_column: 190},
            lang=lang,
        )
        tables.append((q.label(lang), population, html))
    return _Sections(tuple(tables), tuple(seen))
