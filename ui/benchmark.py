"""The team page's comparison with external benchmark figures (vbhc.external): the choice between the registry's
units and the own hospital among the external benchmark, the combined indicator table (computed once per view
and set of stored publications), and what summary figures cannot carry, said in the page's language."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import pandas as pd
import streamlit as st
from sqlalchemy.exc import SQLAlchemyError

from ui import auth, data, filters, guard, render
from vbhc import external
from vbhc.catalog import default_catalog
from vbhc.i18n import MISSING, fmt_date, fmt_datetime, fmt_int, fmt_number, fmt_ratio, t, t_md
from vbhc.indicators import IndicatorResult
from vbhc.registry import hospital_of
from vbhc.safety import md_escape

MODES = ("external", "registry")  # the external benchmark first: a hospital that imported figures wants them


@dataclass(frozen=True)
class Comparison:
    """What the page compares the own unit with: the combined table and the result whose table it is (for the
    report downloads), or None for the registry's own units; `refused` when figures are stored but none usable."""

    benchmark: external.ExternalBenchmark | None
    result: IndicatorResult | None
    stamp: str
    refused: bool = False

    @property
    def population(self) -> str | None:
        return self.benchmark.population if self.benchmark is not None else None

    @property
    def key(self) -> tuple:
        """What cached tables and charts of this comparison add to their key."""
        return ("external", self.stamp) if self.benchmark is not None else ()


def external_stamp(condition: str) -> str:
    """Which external publications hold figures of the condition ("" when none, or before migration 0004): part
    of the key of anything cached that shows them, since a new publication does not change the dataset version."""
    try:
        return external.stamp(data.current_engine(), condition)
    except SQLAlchemyError:  # a database from before migration 0004: no external figures
        return ""


def choose(condition: str, level: str, period: str, peers: tuple[str, ...], unit: str, lang: str) -> Comparison:
    """The comparison the viewer picked (kept in the URL as ?benchmark=registry), offered only when external
    figures of the condition are stored; the own units are those of the chosen unit's hospital."""
    stamp = external_stamp(condition)
    none = Comparison(None, None, stamp)
    if not stamp or level not in ("hospital", "department"):
        return none
    mode = filters.synced(
        st.radio,
        t("column.benchmark", lang),
        MODES,
        key="benchmark",
        format_func=lambda m: t(f"external.choice_{m}", lang),
        horizontal=True,
    )
    if mode != "external":
        return none
    return external_comparison(condition, level, period, peers, unit, lang, stamp)


def external_comparison(
    condition: str, level: str, period: str, peers: tuple[str, ...], unit: str, lang: str, stamp: str | None = None
) -> Comparison:
    """The own hospital's units (of `unit`'s hospital) among the stored external figures: what the team page
    shows by default and the overview always shows where figures are stored (no comparison when none are)."""
    stamp = external_stamp(condition) if stamp is None else stamp
    if not stamp or level not in ("hospital", "department"):
        return Comparison(None, None, stamp)
    viewer = auth.current()
    full = data.result(condition, level, period, peers)  # own_summary needs the patient rows behind it
    hospital = hospital_of(unit)

    def compute() -> external.ExternalBenchmark | None:
        try:
            return external.external_benchmark(data.current_engine(), viewer, full, hospitals=[hospital], lang=lang)
        except ValueError:  # every stored figure under another definition version: nothing to compare
            return None

    got = render.cached(("external_benchmark", condition, stamp, hospital, level, period, peers), compute)
    if got is None or not (got.table["unit"] == unit).any():
        return Comparison(None, None, stamp, refused=True)
    return Comparison(got, dataclasses.replace(full, table=got.table), stamp)


def verdict_text(sentence: str, comparison: Comparison, lang: str) -> str:
    """A verdict that names the benchmark population it was reached against (external figures only)."""
    if comparison.population is None:
        return sentence
    return f"{sentence}; {t('external.benchmark_named', lang, population=comparison.population)}"


def show_notes(comparison: Comparison, condition: str, lang: str) -> None:
    """Under the comparison: the benchmark population, what the figures cannot carry (per reason, the indicators
    it concerns unless it concerns all) and figures under another definition version, in plain words."""
    if comparison.refused:
        st.info(t("external.none_usable", lang))
        return
    got = comparison.benchmark
    if got is None:
        return
    cond = default_catalog().condition(condition)
    shown = set(got.table["indicator"].astype(str))
    by_reason: dict[str, list[str]] = {}
    for ind_id, reasons in got.not_carried.items():
        if ind_id not in shown:
            continue
        for reason in reasons:
            by_reason.setdefault(reason, []).append(ind_id)
    lines = []
    for reason, ids in by_reason.items():
        text = external.reason_text(reason, lang)
        if set(ids) != shown:
            text += " (" + ", ".join(cond.indicator(i).label(lang) for i in ids) + ")"
        lines.append(text)
    for ind_id, left_out in got.other_version.items():
        key = "external.version_left_out" if left_out else "external.version_compared"
        lines.append(t(key, lang, indicator=cond.indicator(ind_id).label(lang)))
    st.caption(t("external.benchmark_named", lang, population=got.population))
    if lines:
        with st.expander(t("external.not_carried", lang)):
            st.markdown("\n".join(f"- {md_escape(line)}" for line in lines))


def named_verdicts(display: pd.DataFrame, column: str, comparison: Comparison, lang: str) -> pd.DataFrame:
    """The verdict column of the indicator table with the benchmark population named in every verdict."""
    if comparison.population is None or column not in display:
        return display
    return display.assign(**{column: [verdict_text(str(v), comparison, lang) for v in display[column]]})


def stored_model_of(condition: str, indicator_id: str):
    """The stored published model in use for the indicator (vbhc.external_models), or None."""
    from vbhc.external_models import stored_models

    try:
        return stored_models(data.current_engine(), auth.current(), condition).get(indicator_id)
    except SQLAlchemyError:  # a database that cannot be read: no stored model
        return None


def published_model(condition: str, indicator_id: str, unit: str, lang: str, *, key: str) -> None:
    """A published case-mix model (vbhc.external_models) applied to the unit's own patients: O/E against the
    national model, coverage of the own data and calibration on it. The model the quality directorate stored for
    the indicator is used without an upload; a file can still be checked here (not stored), e.g. a new model
    before it is imported. A refused file is one line naming file, row, column and value."""
    from vbhc.external_models import read_model

    stored = stored_model_of(condition, indicator_id)
    if stored is None:
        st.caption(t("external.model_none_stored", lang))
    else:
        model = stored.model
        row = model_history_row(stored.id)
        st.caption(
            t(
                "external.model_stored",
                lang,
                source=model.source,
                period=model.period,
                published=fmt_date(model.published, lang),
                version=fmt_int(stored.version, lang),
                at=fmt_datetime(row.get("imported_at"), lang) if row.get("imported_at") is not None else MISSING,
            )
        )
        _apply_model(model, condition, unit, lang)
    uploaded = st.file_uploader(
        t("external.model_check", lang) if stored is not None else t("external.model_upload", lang),
        key=key,
        help=t("external.model_upload", lang),
        max_upload_size=guard.upload_widget_mb(),
    )
    if uploaded is None:
        return
    try:
        checked = read_model(uploaded.getvalue(), file_name=uploaded.name)
    except external.ExternalRefused as refused:
        st.error(t_md("external.model_refused", lang, problem=refused.line(lang)))
        return
    cond = default_catalog().condition(condition)
    if (checked.condition, checked.indicator) != (condition, indicator_id):
        other = cond.indicator(checked.indicator).label(lang) if checked.condition == condition else checked.condition
        st.info(t_md("external.model_other", lang, indicator=other))
        return
    _apply_model(checked, condition, unit, lang)


def model_history_row(model_id: int) -> dict:
    """When a stored model was imported, and by whom (its row of vbhc.external_models.model_history)."""
    from vbhc.external_models import model_history

    chosen = filters.current()
    history = model_history(data.current_engine(), auth.current(), chosen.condition if chosen else None)
    match = history[history["id"] == model_id]
    return match.iloc[0].to_dict() if not match.empty else {}


def _apply_model(model, condition: str, unit: str, lang: str) -> None:
    """The unit's O/E against `model`, the model's calibration on the unit's patients and its coverage."""
    from vbhc.external_models import calibration, coverage, model_cycles, observed_expected

    full = data.result(*_view(condition))
    cycles = model_cycles(model, full, units=[unit])
    mine = observed_expected(cycles)
    if mine.empty or not mine["n_scored"].iloc[0]:
        st.info(t("empty.no_match", lang))
        return
    row = mine.iloc[0]
    # no events (or only events) among the scored cycles: the calibration's intercept runs off to infinity
    degenerate = model.link == "logit" and row["observed"] in (0, row["n_scored"])
    st.markdown(
        t_md(
            "external.model_oe",
            lang,
            source=f"{model.source} {model.period}",
            oe=fmt_ratio(row["oe"], lang),
            observed=fmt_number(row["observed"], lang),
            expected=fmt_number(row["expected"], lang),
            scored=fmt_int(row["n_scored"], lang),
            count=int(row["n"]),
        )
    )
    try:
        if degenerate:
            raise ValueError("no calibration without both outcomes")
        fit = calibration(model, cycles)
        st.caption(
            t(
                "external.model_calibration",
                lang,
                large=fmt_ratio(fit.in_the_large, lang),
                slope=fmt_ratio(fit.slope, lang),
            )
        )
    except ValueError:  # too few scored cycles, or every cycle the same prediction
        pass
    covered = coverage(model, cycles)
    names = {
        "variable": t("model.variables", lang),
        "missing": t("external.coverage_missing", lang),
        "unknown_code": t("external.coverage_unknown", lang),
        "outside_range": t("external.coverage_outside", lang),
    }
    shown = pd.DataFrame(
        {
            names["variable"]: [render.variable_label(v, condition, lang) for v in covered["variable"]],
            **{names[c]: [fmt_int(v, lang) for v in covered[c]] for c in ("missing", "unknown_code", "outside_range")},
        }
    )
    render.data_grid(shown, hide_index=True, width="stretch")


def _view(condition: str) -> tuple[str, str, str, tuple[str, ...]]:
    """The condition, unit level, period and comparison group of the filters (the result the unit is in)."""
    chosen = filters.current()
    return condition, chosen.level, chosen.period, chosen.peers
