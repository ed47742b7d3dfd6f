"""Patient experience (PREMs): indicators per unit from the item-level answers of the hospital's questionnaires.

Why it is built like this: a questionnaire is an indicator set like a condition (vbhc.catalog.PremQuestionnaire
.as_condition), so its indicators go through the same case-mix models, funnel limits, verdicts, shrinkage,
external figures and reports as the outcomes; only the rows they are computed on differ:

- the rating (mean 0-10 overall rating) and net promoter (NPS: +100 for 9-10, -100 for 0-6, 0 otherwise, so
  the mean is % promoters - % detractors) indicators are means per respondent: one row per returned
  questionnaire, a linear case-mix model, adjusted mean = overall mean + mean(observed - expected);
- a theme's top-box indicator is the share of the theme's answers in the best category: one row per answer,
  a logistic case-mix model, adjusted share = O/E x overall share. n counts answers; the answers of one
  respondent are alike, which the funnel's over-dispersion estimate (phi) widens the limits for.

The case-mix is the respondents' (age band, education, self-rated health), fitted on every respondent of the
benchmark population, as the national CQI methodology adjusts; a respondent with a case-mix value missing is
left out of the adjustment and counted (model_n_excluded). Where respondent rows are missing (the own hospital
alone), the yearly comparison with other academic hospitals comes in as external figures (vbhc.external).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sqlalchemy import Engine

from vbhc import audit, registry
from vbhc.access import (
    MIN_OTHER_UNITS,
    VIEW_DEDUPE_SECONDS,
    AccessDenied,
    Permission,
    Role,
    Viewer,
    _anonymised,
    _record_denied,
    _without_benchmark,
)
from vbhc.casemix import OUTCOME_NOT_RECORDED
from vbhc.catalog import (
    NPS_DETRACTOR_UPTO,
    NPS_PROMOTER_FROM,
    PREM_CASEMIX,
    Catalog,
    PremQuestionnaire,
    default_catalog,
)
from vbhc.indicators import BASE_COLUMNS, ConditionData, IndicatorResult, compute_indicators
from vbhc.registry import Period, parse_period

#: Indicators computed on the rows of the answers (the rest on one row per respondent).
ANSWER_LEVEL_KINDS = ("prem_topbox",)
#: The columns of a respondent row (vbhc.prems.respondent_rows), besides one column per indicator.
RESPONDENT_COLUMNS = ("cycle_id", "hospital", "department", "index_date", *PREM_CASEMIX)


def nps_points(answer: pd.Series | np.ndarray) -> np.ndarray:
    """A 0-10 recommend answer as net promoter points: +100 promoter, -100 detractor, 0 passive, NaN missing."""
    a = np.asarray(answer, dtype=float)
    points = np.where(a >= NPS_PROMOTER_FROM, 100.0, np.where(a <= NPS_DETRACTOR_UPTO, -100.0, 0.0))
    return np.where(np.isnan(a), np.nan, points)


def _casemix_frame(answers: pd.DataFrame) -> pd.DataFrame:
    """One row per response: unit, visit date and case-mix (the importer keeps them equal on every row)."""
    return _response_frame(answers.groupby("response_id", sort=True, observed=True).first())


def _response_frame(first: pd.DataFrame) -> pd.DataFrame:
    """_casemix_frame's columns of the responses `first` (indexed by response id, in order)."""
    out = pd.DataFrame(
        {
            "cycle_id": first.index.astype(str),
            "hospital": first["hospital"].astype(str).to_numpy(),
            "department": first["department"].astype(str).to_numpy(),
            "index_date": pd.to_datetime(first["visit_date"]).to_numpy(),
        }
    )
    for name in PREM_CASEMIX:
        out[name] = first[name].to_numpy(dtype=object)
    return out


@dataclass(frozen=True)
class _Answers:
    """One questionnaire's answers as the rows are built from them: the responses (_casemix_frame) and, per answer,
    its response's position among them, its item and its answer. Why: each answer row takes its unit, visit and
    case-mix from its response by position, not by looking its response id up among the responses' ids."""

    responses: pd.DataFrame
    at: np.ndarray
    item: pd.Series
    answer: np.ndarray


def _answers_of(answers: pd.DataFrame) -> _Answers:
    """_Answers of item-level answers in one frame, as a PREM file holds them (response_id, hospital, department,
    visit_date, item, answer and the case-mix on every row): for answers not read from the registry."""
    responses = _casemix_frame(answers)
    return _answers_in(responses, answers)


def _answers_in(responses: pd.DataFrame, answers: pd.DataFrame) -> _Answers:
    """_Answers of the responses (_casemix_frame) and the answers (response_id, item, answer) of each."""
    at = pd.Index(responses["cycle_id"]).get_indexer(answers["response_id"].astype(str))
    if (at < 0).any():
        raise ValueError("PREM answers of a response not among the responses read")
    item = answers["item"].astype(str).reset_index(drop=True)
    return _Answers(responses, at, item, answers["answer"].to_numpy(dtype=float))


def respondent_rows(answers: pd.DataFrame, q: PremQuestionnaire) -> pd.DataFrame:
    """One row per returned questionnaire, with a column per respondent-level indicator (NaN: not answered)."""
    return _respondent_rows(_answers_of(answers), q)


def _respondent_rows(a: _Answers, q: PremQuestionnaire) -> pd.DataFrame:
    out = a.responses.copy()
    for ind in q.indicators:
        if ind.kind in ("prem_rating", "prem_nps"):
            given = (a.item == ind.item).to_numpy(dtype=bool)
            value = np.full(len(out), np.nan)
            value[a.at[given]] = a.answer[given]
            out[ind.id] = nps_points(value) if ind.kind == "prem_nps" else value
    return out


def answer_rows(answers: pd.DataFrame, q: PremQuestionnaire) -> pd.DataFrame:
    """One row per answer to a themed item, with a 0/1 top-box column per top-box indicator of its theme."""
    return _answer_rows(_answers_of(answers), q, ids=True)


def _answer_rows(a: _Answers, q: PremQuestionnaire, *, ids: bool) -> pd.DataFrame:
    """answer_rows; without `ids` no response_id and item columns (prem_data drops them). The columns are taken
    from the responses' own (Arrow) columns by position and each item's top box set once per item: converting
    400,000 answers' strings to Python objects and back, and comparing them once per item, was most of the rows'
    CPU at 1,000,000 care cycles."""
    themes = {i.id: i.theme for i in q.items if i.theme is not None}
    themed = np.flatnonzero(a.item.isin(list(themes)).to_numpy(dtype=bool))
    item = a.item.iloc[themed].astype(str).reset_index(drop=True)
    at = a.at[themed]
    rid = a.responses["cycle_id"].take(at).reset_index(drop=True)
    out = pd.DataFrame({"cycle_id": rid + "|" + item})
    if ids:
        out["response_id"] = rid
        out["item"] = item
    for col in ("hospital", "department", "index_date", *PREM_CASEMIX):
        out[col] = a.responses[col].take(at).reset_index(drop=True)
    codes, names = pd.factorize(item)
    answer, top = a.answer[themed], np.zeros(len(themed))
    theme_ids = sorted(set(themes.values()))
    theme = np.full(len(themed), -1)
    for k, item_id in enumerate(names):
        here = codes == k
        top[here] = np.isin(answer[here], q.scales[q.item(item_id).scale].top_box)
        theme[here] = theme_ids.index(themes[item_id])
    for ind in q.indicators:
        if ind.kind == "prem_topbox":
            mine = theme_ids.index(ind.theme) if ind.theme in theme_ids else -2
            out[ind.id] = np.where(theme == mine, top, np.nan)
    return out


#: Column of the indicator engine's rows saying what a row is: a returned questionnaire or one answer.
ROW_KIND = "prem_row"


@dataclass
class PremData:
    """One questionnaire's rows for one period, as the indicator engine reads them: `rows` holds a row per
    respondent (rating, NPS) and a row per themed answer (top box), each indicator's value NaN on the other
    kind, so every indicator's model and funnel see exactly its own rows; `respondents` the respondent rows
    alone (the number of respondents)."""

    questionnaire: PremQuestionnaire
    rows: ConditionData
    respondents: ConditionData


def prem_data(
    answers: pd.DataFrame, q: PremQuestionnaire, period: Period | None = None, as_of: dt.date | None = None
) -> PremData:
    """Build the respondent and answer rows of one questionnaire from its item-level answers."""
    return _prem_data(_answers_of(answers), q, period, as_of)


def _prem_data(a: _Answers, q: PremQuestionnaire, period: Period | None, as_of: dt.date | None) -> PremData:
    cond = q.as_condition()
    empty = pd.DataFrame({"cycle_id": pd.Series(dtype=str), "cost": pd.Series(dtype=float)})
    scores = pd.DataFrame(columns=["cycle_id", "instrument", "timepoint", "scale", "score", "completed_date"])
    last = a.responses["index_date"].max() if len(a.responses) else pd.NaT
    when = pd.Timestamp(as_of) if as_of is not None else (pd.Timestamp(last) if pd.notna(last) else pd.Timestamp.now())
    resp = _respondent_rows(a, q).assign(**{ROW_KIND: "respondent"})
    per_answer = _answer_rows(a, q, ids=False).assign(**{ROW_KIND: "answer"})
    rows = pd.concat([resp, per_answer], ignore_index=True)
    for ind in q.indicators:  # an indicator without rows of either kind still has its column (all NaN)
        if ind.kind != "volume" and ind.id not in rows:
            rows[ind.id] = np.nan
    return PremData(
        q,
        ConditionData(cond, period, rows, scores, empty, when),
        ConditionData(cond, period, resp, scores, empty, when),
    )


def _own_rows_only(table: pd.DataFrame, models: dict, rows: pd.DataFrame) -> None:
    """A model's diagnostics count the rows of its own kind only: the answer rows are not respondents whose
    rating is missing (and the other way round), so they are not "left out of the adjustment"."""
    for ind_id, model in models.items():
        diag = model.diagnostics
        given = int(rows[ind_id].notna().sum()) if ind_id in rows else diag.n_input
        other = diag.n_input - given
        if other <= 0:
            continue
        diag.n_input, diag.n_excluded = given, given - diag.n_used
        left = diag.excluded_by_reason.get(OUTCOME_NOT_RECORDED, 0) - other
        if left > 0:
            diag.excluded_by_reason[OUTCOME_NOT_RECORDED] = left
        else:
            diag.excluded_by_reason.pop(OUTCOME_NOT_RECORDED, None)
        table.loc[table["indicator"] == ind_id, "model_n_excluded"] = diag.n_excluded


def load_prem_data(
    questionnaire: str,
    period: str | Period | None = None,
    *,
    engine: Engine | None = None,
    hospitals: Sequence[str] | None = None,
    catalog: Catalog | None = None,
) -> PremData:
    """Read one questionnaire's answers (the benchmark population: `hospitals`, None = every hospital)."""
    catalog = catalog or default_catalog()
    q = catalog.questionnaire(questionnaire)
    period = parse_period(period)
    responses, answers = registry.prem_answer_parts(questionnaire, period=period, hospitals=hospitals, engine=engine)
    # the respondents in pandas' order of their ids (as _casemix_frame orders a file's), the answers in the
    # database's order of response_id: each answer's respondent by position, from the number of answers of each
    ordered = responses.sort_values("response_id", kind="stable")
    position = np.empty(len(responses), dtype=np.int64)
    position[ordered.index.to_numpy()] = np.arange(len(responses))
    at = position[np.repeat(np.arange(len(responses)), responses["answers"].to_numpy())]
    if len(at) != len(answers):
        raise ValueError("PREM answers read do not add up to their responses' numbers of answers")
    first = ordered.set_index("response_id")
    item = answers["item"].reset_index(drop=True)
    a = _Answers(_response_frame(first), at, item, answers["answer"].to_numpy(dtype=float))
    return _prem_data(a, q, period, None)


def compute_prem_indicators(data: PremData, level: str = "department", **options) -> IndicatorResult:
    """The indicator table of one questionnaire at `level` (hospital or department), like a condition's; its
    data are the respondent and answer rows (so vbhc.external.own_summary can sum them per unit). The case-mix
    models are fitted on the respondents' case-mix patterns (compute_indicators' grouped_fits): a year's 400,000
    answers at 1,000,000 care cycles have a few hundred, and the per-row fits were most of a year's tables' CPU."""
    q = data.questionnaire
    if level not in ("hospital", "department"):
        raise ValueError(f"PREM indicators are per hospital or department, not per {level!r}")
    volume = [i.id for i in q.indicators if i.kind == "volume"]
    others = [i.id for i in q.indicators if i.kind != "volume"]
    results = []
    options.setdefault("grouped_fits", True)
    if len(data.respondents.cycles):
        results.append(compute_indicators(data.respondents, level, indicators=volume, **options))
        results.append(compute_indicators(data.rows, level, indicators=others, **options))
    tables = [r.table for r in results if len(r.table)]
    table = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=BASE_COLUMNS)
    order = {ind.id: k for k, ind in enumerate(q.indicators)}
    table = table.sort_values(["indicator", "unit"], key=lambda s: s.map(order) if s.name == "indicator" else s)
    models = {k: v for r in results for k, v in r.models.items()}
    _own_rows_only(table, models, data.rows.cycles)
    values = [r.cycle_values for r in results if len(r.cycle_values)]
    return IndicatorResult(
        q.id,
        level,
        data.rows.period,
        table.reset_index(drop=True),
        models,
        pd.concat(values, ignore_index=True) if values else pd.DataFrame(),
        data.rows,
    )


def prem_indicator_table(
    questionnaire: str,
    level: str = "department",
    period: str | Period | None = None,
    *,
    engine: Engine | None = None,
    hospitals: Sequence[str] | None = None,
) -> IndicatorResult:
    """Load one questionnaire's answers and compute its indicator table."""
    return compute_prem_indicators(load_prem_data(questionnaire, period, engine=engine, hospitals=hospitals), level)


#: A condition's units (vbhc.registry.condition_units' columns), by condition id: the dashboard passes its cached
#: copy (ui.data.condition_units), as every visit of a page asks, and without it each ask was a GROUP BY over the
#: care cycles of the condition.
UnitsOf = Callable[[str], pd.DataFrame]


def _units_of(engine: Engine | None, condition_units: UnitsOf | None) -> UnitsOf:
    if condition_units is not None:
        return condition_units
    return lambda condition: registry.condition_units(condition, engine=engine)


def experience_units(
    level: str, unit: str, engine: Engine | None = None, *, condition_units: UnitsOf | None = None
) -> tuple[str, list[str]]:
    """The PREM level and units that show a unit's patient experience: a hospital or department as it is; a
    condition team (condition@hospital) by the departments of its hospital that treat the condition."""
    if level in ("hospital", "department"):
        return level, [unit]
    condition, hospital = registry.condition_of(unit), registry.hospital_of(unit)
    if condition is None:
        raise ValueError(f"not a condition team's unit id: {unit!r}")
    treated = _units_of(engine, condition_units)(condition)
    treated = treated[treated["hospital"].astype(str) == hospital]
    return "department", sorted(f"{hospital}/{d}" for d in treated["department"].astype(str))


# --- who sees what ---------------------------------------------------------------------------------------


def team_units(
    viewer: Viewer, engine: Engine | None = None, *, condition_units: UnitsOf | None = None
) -> frozenset[tuple[str, str]]:
    """(hospital, department) of the viewer's care teams: where their conditions' care cycles are treated,
    within the hospitals their grants name."""
    units: set[tuple[str, str]] = set()
    units_of = _units_of(engine, condition_units)
    for scope in viewer.scopes_for(Role.CARE_TEAM):
        for condition in scope.conditions:
            treated = units_of(condition)
            for h, d in zip(treated["hospital"].astype(str), treated["department"].astype(str), strict=True):
                if not scope.hospitals or h in scope.hospitals:
                    units.add((h, d))
    return frozenset(units)


def _own(viewer: Viewer, level: str, unit: str, team: frozenset[tuple[str, str]], divisions: dict) -> bool:
    hospital, department = registry.unit_parts(unit)
    if level == "department" and department is not None:
        if (hospital, department) in team:
            return True
        division = divisions.get((hospital, department))
        return any(s.covers_unit(hospital, department, division) for s in viewer.scopes_for(Role.MANAGER))
    if any(h == hospital for h, _ in team):
        return True
    return any(s.covers_unit(hospital) for s in viewer.scopes_for(Role.MANAGER))


def may_view_prems(viewer: Viewer, engine: Engine | None = None, *, condition_units: UnitsOf | None = None) -> bool:
    """Whether prem_rows shows this viewer anything: quality, a manager, or a care team whose conditions are
    treated somewhere (pages ask first, so a page never records a refusal the viewer did not ask for)."""
    return (
        sees_all_prem_units(viewer)
        or viewer.has(Role.MANAGER)
        or bool(team_units(viewer, engine, condition_units=condition_units))
    )


def sees_all_prem_units(viewer: Viewer) -> bool:
    """The quality directorate (and the local single-user demo) sees every unit's patient experience."""
    return viewer.has(Role.QUALITY)


def prem_rows(
    viewer: Viewer,
    result: IndicatorResult,
    *,
    engine: Engine | None = None,
    record_view: bool = True,
    condition_units: UnitsOf | None = None,
) -> pd.DataFrame:
    """The rows of a PREM indicator table the viewer may see, as vbhc.access.indicator_rows does for outcomes:
    quality every unit; a care team the units that treat its conditions and a manager the units of their grants
    by name, every other unit anonymised (no name, n in bands, rounded values), or no benchmark when fewer than
    MIN_OTHER_UNITS others are left. A viewer with neither gets AccessDenied (audited). record_view=False: the
    caller records the view itself (record_prem_view), e.g. on every visit of rows it keeps between visits."""
    from vbhc.store import get_engine

    engine = engine or get_engine()
    table = result.table
    if sees_all_prem_units(viewer):
        out = table.copy()
        out["anonymised"] = False
    else:
        team = team_units(viewer, engine, condition_units=condition_units)
        if not team and not viewer.has(Role.MANAGER):
            _deny(viewer, engine, Permission.VIEW_CONDITION, result, "no care team or manager grant covers a unit")
        units = registry.units(engine)
        divisions = {
            (h, d): v
            for h, d, v in zip(units["hospital"], units["department"], units["division"].astype(str), strict=True)
        }
        own = np.array([_own(viewer, result.level, str(u), team, divisions) for u in table["unit"]], dtype=bool)
        mine = table[own].copy()
        mine["anonymised"] = False
        rest = table[~own]
        if rest["unit"].nunique() < MIN_OTHER_UNITS:
            out = _without_benchmark(mine)
        else:
            out = pd.concat([mine, _anonymised(rest)], ignore_index=True)
    out = out.reset_index(drop=True)
    if record_view:
        record_prem_view(viewer, out, result, engine=engine)
    return out


def record_prem_view(
    viewer: Viewer, rows: pd.DataFrame, result: IndicatorResult, *, engine: Engine | None = None
) -> None:
    """Audit that the viewer saw `rows` of the questionnaire's table (what prem_rows gave them): the units seen by
    name. Identical views within VIEW_DEDUPE_SECONDS are written once."""
    from vbhc.store import get_engine

    shown = sorted(set(rows.loc[~rows["anonymised"], "unit"].astype(str)))
    audit.record(
        engine or get_engine(),
        viewer,
        "view",
        condition=result.condition,
        unit=shown[0] if len(shown) == 1 else None,
        detail={"what": "prem_indicators", "level": result.level, "units": shown[:50], "unit_count": len(shown)},
        dedupe_seconds=VIEW_DEDUPE_SECONDS,
    )


def respondent_answers(
    viewer: Viewer, result: IndicatorResult, unit: str, *, engine: Engine | None = None
) -> pd.DataFrame:
    """The pseudonymised respondent rows (response id, visit date, case-mix, answers as indicator values) of one
    unit: quality, and a care team for a unit that treats its conditions. Managers see aggregates only."""
    from vbhc.store import get_engine

    engine = engine or get_engine()
    hospital, department = registry.unit_parts(unit)
    allowed = sees_all_prem_units(viewer)
    if not allowed:
        team = team_units(viewer, engine)
        allowed = (hospital, department) in team if department else any(h == hospital for h, _ in team)
    if not allowed:
        _deny(viewer, engine, Permission.PATIENT_ROWS, result, "respondent rows are for the unit's own care team")
    rows = result.data.cycles if result.data is not None else pd.DataFrame(columns=[*RESPONDENT_COLUMNS, ROW_KIND])
    rows = rows[rows[ROW_KIND] == "respondent"]
    labels = registry.unit_labels(rows, result.level) if len(rows) else pd.Series(dtype=str)
    out = rows[(labels == unit).to_numpy()].reset_index(drop=True) if len(rows) else rows
    audit.record(
        engine,
        viewer,
        "view",
        condition=result.condition,
        unit=unit,
        detail={"what": "prem_respondents", "level": result.level, "shown": len(out)},
        dedupe_seconds=VIEW_DEDUPE_SECONDS,
    )
    return out


def _deny(viewer: Viewer, engine: Engine, permission: Permission, result: IndicatorResult, reason: str) -> None:
    """Record the refusal in the audit log (as vbhc.access.require does) and raise AccessDenied."""
    context = {"condition": result.condition, "what": "prem", "level": result.level}
    _record_denied(viewer, permission, context, engine)
    raise AccessDenied(viewer.user_id, permission, reason, {"questionnaire": result.condition})
