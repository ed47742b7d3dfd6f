"""The indicator table: one row per unit × indicator, built from registry data, case-mix models and benchmarks.

This is the single place where statistics are computed; pages and reports only show this table (and the
per-cycle values behind it), so a number means the same everywhere.

Per indicator kind:
- volume: care cycles per unit (no comparison).
- proportion (binary clinical outcome) and prom_mic (reached the minimal important change): logistic case-mix
  model on all units → O, E, O/E with exact Poisson CI, adjusted rate = O/E × overall rate, compared with
  exact binomial funnel limits around the overall rate at the unit's n (see _binary_benchmark).
- mean (numeric clinical outcome), prom_score (follow-up score), prom_change (follow-up − baseline) and cost
  (cost per care cycle): linear case-mix model → adjusted mean = overall mean + mean(observed − expected),
  limits overall ± z·residual sd/√n. PROM indicators use the baseline score as an extra covariate, so a
  cycle without a baseline score is excluded from adjustment (and counted as such).
- composite (textbook outcome): 1 when every component named in the catalog went as planned, handled as a
  proportion (case-mix adjusted, higher is better); a cycle missing a component is left out and counted
  (composite_values); composite_failures gives the share of each unit's cycles failing each component.
- response_rate: share of eligible cycles (timepoint passed) with a questionnaire; crude, compared with the
  overall response rate (response is an organisational, not a patient, outcome).
Cycles whose outcome is not (yet) recorded are not part of an indicator. Units below the indicator's min_n
are "too few cycles" and never flagged.

Every yes/no and continuous indicator also gets random-effects (shrinkage) estimates, between-unit variance,
rankability and expected rank per unit (vbhc.shrinkage; columns SHRINKAGE_COLUMNS).

A comparison group (restrict with hospitals: ConditionData.reference is the whole registry of the same period) is
benchmarked by indirect standardisation against the registry's models, with the group as the benchmark level: the
registry's case-mix model recalibrated in the large to the group (vbhc.casemix.recalibrate_in_the_large) and its
Cox model with the baseline hazard rescaled (vbhc.survival.recalibrate_cox); nothing is refitted on the group.
"""

from __future__ import annotations

import datetime as dt
import functools
import threading
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import Engine

from vbhc import benchmark, imputation, memory, proms, registry, shrinkage, spc, survival
from vbhc.casemix import (
    CaseMixModel,
    ColumnCache,
    DesignEncoding,
    casemix_contributions,
    fit_casemix_model,
    recalibrate_in_the_large,
)
from vbhc.catalog import (
    BINARY_KINDS,
    CONTINUOUS_KINDS,
    EVENT_DATE_SUFFIX,
    PREM_KINDS,
    SURVIVAL_KINDS,
    Catalog,
    Component,
    Condition,
    Indicator,
    default_catalog,
)
from vbhc.costs import cost_breakdown, cost_per_cycle, value_view
from vbhc.registry import Period, parse_period, unit_labels

DEFAULT_LEVELS = benchmark.DEFAULT_LEVELS

#: Random-effects (shrinkage) columns, last in the table: vbhc.shrinkage names them and says how they are made.
SHRINKAGE_COLUMNS = list(shrinkage.COLUMNS)

#: Columns of the indicator table, in order (limit/position columns follow the configured levels).
BASE_COLUMNS = [
    "condition",
    "indicator",
    "label_en",
    "label_nl",
    "kind",
    "tier",
    "direction",
    "key",
    "unit_level",
    "unit",
    "hospital",
    "n",
    "n_adjusted",
    "observed",
    "expected",
    "oe",
    "oe_lower",
    "oe_upper",
    "crude_value",
    "crude_lower",
    "crude_upper",
    "adjusted_value",
    "adjusted_lower",
    "adjusted_upper",
    "target",
    "precision",
]
TAIL_COLUMNS = [
    "too_few_cycles",
    "min_n",
    "dispersion_method",
    "phi",
    "tau2",
    "rankability",
    "rankability_note",
    "detectable_difference",
    "model_c_statistic",
    "model_calibration_slope",
    "model_r_squared",
    "model_n_excluded",
    *SHRINKAGE_COLUMNS,
]


@dataclass
class ConditionData:
    """Everything the indicators of one condition need, loaded once per condition and period."""

    condition: Condition
    period: Period | None
    cycles: pd.DataFrame  # care cycles with case-mix and one column per clinical outcome
    scores: pd.DataFrame  # PROM scores, long (cycle_id, instrument, timepoint, scale, score, completed_date)
    cost: pd.DataFrame  # cycle_id, cost (EUR) per care cycle
    as_of: pd.Timestamp  # data complete up to this date (for "has the timepoint passed")
    cost_lines: pd.DataFrame | None = None  # the TDABC lines behind `cost` (for the breakdown by activity)
    # case-mix models fitted on these data, per indicator: a model does not depend on the unit level, so
    # the hospital and department tables of the same data share one fit
    fitted: dict[str, CaseMixModel] = field(default_factory=dict, repr=False, compare=False)
    # the Cox models of the survival indicators, shared by the unit levels for the same reason
    cox: dict[str, survival.CoxModel] = field(default_factory=dict, repr=False, compare=False)
    # for a comparison group: the whole registry's data of the same condition and period, whose case-mix and
    # Cox models (its `fitted` and `cox`) this group's expected values come from, recalibrated to the group
    # (see reference_model); None for the whole registry, whose models are fitted on these data
    reference: ConditionData | None = field(default=None, repr=False, compare=False)
    # what is derived per care cycle from these data and does not depend on the unit level or comparison group (an
    # indicator's values, its PROM response), kept here so the comparison groups cut from these data take their
    # cycles' rows of it instead of deriving it again for every group (see _group_rows); and for a group, its rows
    derived: dict[object, object] = field(default_factory=dict, repr=False, compare=False)


@dataclass
class IndicatorResult:
    """The indicator table plus what is needed to explain it (models, per-cycle values)."""

    condition: str
    level: str
    period: Period | None
    table: pd.DataFrame
    models: dict[str, CaseMixModel] = field(default_factory=dict)
    cycle_values: pd.DataFrame = field(default_factory=pd.DataFrame)  # per indicator and cycle
    data: ConditionData | None = None

    def row(self, indicator: str, unit: str) -> pd.Series:
        rows = self.table[(self.table["indicator"] == indicator) & (self.table["unit"] == unit)]
        if rows.empty:
            raise KeyError(f"no row for indicator {indicator!r} and unit {unit!r}")
        return rows.iloc[0]


def load_condition_data(
    condition: str,
    period: str | Period | None = None,
    *,
    engine: Engine | None = None,
    as_of: dt.date | pd.Timestamp | None = None,
    catalog: Catalog | None = None,
    hospitals: Sequence[str] | None = None,
) -> ConditionData:
    """Read cycles, outcomes, PROM scores and costs for one condition and period from the registry.

    `hospitals` restricts the benchmark population (the comparison group); None means every unit.
    """
    catalog = catalog or default_catalog()
    cond = catalog.condition(condition)
    period = parse_period(period)
    # what the previous condition's tables freed, and below what the reads free, back to the system before the
    # next step's peak comes on top of it (vbhc.memory)
    memory.release_freed()
    cycles = registry.outcomes_wide(condition, period=period, engine=engine, hospitals=hospitals)
    # scored from questionnaires the database pivots: the same scores as from the item rows, without reading them
    scores = registry.prom_scores(condition, period=period, engine=engine, hospitals=hospitals, catalog=catalog)
    if not len(scores):
        scores = _empty_scores()
    lines = registry.cost_lines(condition, period=period, engine=engine, hospitals=hospitals)
    cost = cost_per_cycle(lines, cycles)
    if as_of is None:
        as_of = _data_complete_until(cycles, scores, cond)
    memory.release_freed()
    return ConditionData(cond, period, cycles, scores, cost, pd.Timestamp(as_of), lines)


def _empty_scores() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "cycle_id": pd.Series(dtype=str),
            "instrument": pd.Series(dtype=str),
            "timepoint": pd.Series(dtype=str),
            "scale": pd.Series(dtype=str),
            "score": pd.Series(dtype=float),
            "completed_date": pd.Series(dtype="datetime64[ns]"),
        }
    )


def _data_complete_until(cycles: pd.DataFrame, scores: pd.DataFrame, cond: Condition) -> pd.Timestamp:
    """The latest date the registry knows anything about: follow-up after it has not happened yet."""
    candidates = [cycles["index_date"].max()]
    # the vital status of survival indicators is checked up to a date (death or last known alive)
    for ident in {i.outcome for i in cond.indicators if i.kind in SURVIVAL_KINDS and i.outcome}:
        if ident + EVENT_DATE_SUFFIX in cycles:
            candidates.append(pd.Timestamp(cycles[ident + EVENT_DATE_SUFFIX].max()))
    if len(scores) and scores["completed_date"].notna().any():
        candidates.append(pd.Timestamp(scores["completed_date"].max()))
    valid = [c for c in candidates if pd.notna(c)]
    return max(valid) if valid else pd.Timestamp(dt.date.today())


def compute_indicators(
    data: ConditionData,
    level: str = "hospital",
    *,
    levels: Sequence[float] = DEFAULT_LEVELS,
    dispersion: str = "auto",
    indicators: Sequence[str] | None = None,
    grouped_fits: bool = False,
) -> IndicatorResult:
    """The indicator table for every indicator of the condition (or the ids given), all units at `level`.
    `grouped_fits`: the case-mix models are fitted on the case-mix patterns where these are few
    (vbhc.casemix.fit_casemix_model's `grouped`: the PREMs' answers, whose case-mix is three categories)."""
    cond = data.condition
    cycles = data.cycles
    # each cycle's unit as the labels' own (Arrow) text, not a NumPy array of a Python string per care cycle: that
    # array was held to the end of the tables, the per-cycle join included (~100 MB of breast cancer's at 10,000,000)
    unit = unit_labels(cycles, level).array
    base = cycles.assign(unit=unit)
    # the units sorted and each cycle's position among them in one hashing pass (a look-up of every cycle's label
    # among the sorted units was a second: ~50 ms of each of a year's PREM tables at 1,000,000 care cycles)
    codes, sorted_units = pd.factorize(unit, sort=True)
    units = pd.Index(np.asarray(sorted_units, dtype=object), name="unit")
    rows = _UnitRows(units, codes.astype(np.intp, copy=False))
    hospital_of = _hospital_of(units, rows.codes, cycles["hospital"])
    tables, models, values = [], {}, []
    chosen = [ind for ind in cond.indicators if indicators is None or ind.id in indicators]
    last_fit = max((i for i, ind in enumerate(chosen) if ind.kind not in _NOT_FITTED), default=-1)
    for i, ind in enumerate(chosen):
        if i > last_fit:  # no case-mix fit after this: let go of the fits' kept design and column conversions
            data.derived.pop(_CASEMIX_COLUMNS, None)
        columns, model, per_cycle = _one_indicator(ind, data, base, rows, levels, dispersion, grouped_fits)
        if columns is None:
            continue
        tables.append(columns)
        if model is not None:
            models[ind.id] = model
        if per_cycle is not None:
            values.append((ind.id, per_cycle))
    data.derived.pop(_CASEMIX_COLUMNS, None)  # a table whose last indicator fits: let go of them before the join
    # what the indicators freed back to the system before the per-cycle join, the peak of a condition's tables, comes
    # on top of it (vbhc.memory; a few milliseconds)
    memory.release_freed()
    table = _joined_table([{"unit_level": level} | columns for columns in tables], BASE_COLUMNS)
    table = _without_self_benchmark(table)
    table["hospital"] = table["unit"].map(hospital_of)
    table["condition"] = cond.id
    cols = BASE_COLUMNS + [c for c in table.columns if c not in BASE_COLUMNS and c not in TAIL_COLUMNS]
    cols += [c for c in TAIL_COLUMNS if c in table.columns]
    table = table.reindex(columns=cols)
    return IndicatorResult(cond.id, level, data.period, table, models, _cycle_values(values), data)


#: The indicator kinds without a case-mix model of their own (_one_indicator): after the last indicator of a table that
#: has one, the conversions and design its fits kept (_column_cache) are let go of before the survival indicators'
#: Cox fits and the per-cycle frame, the peaks of a condition's table (at 10,000,000 care cycles the kept design alone
#: is ~340 MB). The view's other unit level reuses the fitted models (ConditionData.fitted), so nothing is fitted
#: again; a table that does fit again (other indicators asked for) converts the columns again, to the same numbers.
_NOT_FITTED = frozenset({"volume", "response_rate", *SURVIVAL_KINDS})


def _hospital_of(units: pd.Index, codes: np.ndarray, hospital: pd.Series) -> dict[str, str]:
    """Each unit's hospital: that of its last cycle (as a dict of every cycle's unit and hospital gives it), looked up
    once per unit. Why: iterating over every cycle's hospital was a tenth of a year's PREM tables (440,000 rows)."""
    # every unit has a cycle (units are those of the cycles): its last one, counted from the end
    _, at = np.unique(codes[::-1], return_index=True)
    return dict(zip(units, hospital.iloc[len(codes) - 1 - at].astype(str), strict=True))


def _joined_table(parts: list[dict[str, object]], empty: list[str]) -> pd.DataFrame:
    """The indicators' rows (each indicator's columns: arrays of its units' values, or one value for all) as the frame
    pd.concat of a frame per indicator gives (columns in order of appearance, a column an indicator lacks missing
    there), joined column by column with that concat's types: a whole-number column missing somewhere, or holding
    fractions somewhere, becomes a float column with NaN; a yes/no column missing somewhere an object column; a text
    column stays text. Why: a frame per indicator and their concat were a sixth of a comparison group's view. A
    column of any other kind (e.g. None) is left to pandas: the frames are built and concatenated as before."""
    if not parts:
        return pd.DataFrame(columns=empty)
    sizes = [len(part["unit"]) for part in parts]
    if min(sizes) == 0:  # a frame without rows has its own types in a concat (text read as object)
        return _concat_frames(parts)
    names = list(dict.fromkeys(name for part in parts for name in part))
    joined: dict[str, np.ndarray] = {}
    for name in names:
        pieces, kinds = [], set()
        for part, size in zip(parts, sizes, strict=True):
            if name not in part:
                pieces.append(None)
                continue
            kind, values = _typed(part[name], size)
            if kind is None:
                return _concat_frames(parts)
            kinds.add(kind)
            pieces.append(values)
        missing = any(piece is None for piece in pieces)
        if kinds <= {"int", "float"}:
            dtype = np.int64 if kinds == {"int"} and not missing else np.float64
            fill = [np.full(size, np.nan) for size in sizes]
            joined[name] = np.concatenate(
                [fill[i] if piece is None else piece.astype(dtype, copy=False) for i, piece in enumerate(pieces)]
            )
        elif "none" in kinds or kinds == {"text"} or (kinds == {"bool"} and missing):
            # text (missing: NaN, read as text); None beside anything, or yes/no with a gap: an object column (NaN in a
            # gap, numbers as Python numbers, as pandas casts them)
            column = np.empty(sum(sizes), dtype=object)
            start = 0
            for piece, size in zip(pieces, sizes, strict=True):
                column[start : start + size] = np.nan if piece is None else piece.astype(object)
                start += size
            joined[name] = column if kinds == {"text"} else pd.Series(column, dtype=object)
        elif kinds == {"bool"}:
            joined[name] = np.concatenate(pieces)
        else:
            return _concat_frames(parts)
    return pd.DataFrame(joined)


def _concat_frames(parts: list[dict[str, object]]) -> pd.DataFrame:
    """The indicators' rows as a frame per indicator concatenated by pandas (the types any column gets there)."""
    return pd.concat([pd.DataFrame(part) for part in parts], ignore_index=True)


def _typed(value: object, size: int) -> tuple[str | None, np.ndarray | None]:
    """One indicator's column as (kind, array of `size` values): kind int, float, bool, text (all str) or none (None),
    None for anything else. A single value stands for every row, as the frame constructor takes it."""
    if isinstance(value, pd.Index | pd.Series):
        value = value.to_numpy()
    if isinstance(value, np.ndarray):
        if value.dtype == np.float64:
            return "float", value
        if value.dtype == np.int64:
            return "int", value
        if value.dtype == np.bool_:
            return "bool", value
        if value.dtype == object and all(isinstance(v, str) for v in value):
            return "text", value
        return None, None
    if isinstance(value, bool | np.bool_):
        return "bool", np.full(size, bool(value))
    if isinstance(value, int | np.integer):
        return "int", np.full(size, value, dtype=np.int64)
    if isinstance(value, float | np.floating):
        return "float", np.full(size, value, dtype=np.float64)
    if isinstance(value, str):
        return "text", np.full(size, value, dtype=object)
    if value is None:
        return "none", np.full(size, None, dtype=object)
    return None, None


@dataclass(frozen=True)
class _Taken:
    """An indicator's per-cycle piece of a column of the view's cycles, kept as the positions of its cycles (shared
    by the indicator's cycle id, unit and date) until the indicators' pieces are joined (_joined_column): taken
    then, once for all indicators. Why: each indicator's own copy of the cycle ids and units (text) was held until
    the join and copied once more there: at 10,000,000 care cycles the peak of a condition's tables."""

    source: np.ndarray | pd.api.extensions.ExtensionArray
    positions: np.ndarray

    def __len__(self) -> int:
        return len(self.positions)

    def values(self) -> np.ndarray | pd.api.extensions.ExtensionArray:
        """The piece itself: the source's values at the positions (as the source's mask of them gives)."""
        return self.source.take(self.positions)


def _materialized(piece: object) -> object:
    return piece.values() if isinstance(piece, _Taken) else piece


def _cycle_values(values: list[tuple[str, dict[str, np.ndarray]]]) -> pd.DataFrame:
    """The indicators' per-cycle values (each indicator's columns as arrays, or _Taken) as one frame with their
    indicator: the arrays joined, not a frame per indicator concatenated (its text columns converted once instead of
    twice). With an indicator without cycles the frames are concatenated, as before, for the dtypes pandas gives
    such a concat. Takes the pieces: the indicators' dicts in `values` are emptied as their columns are joined."""
    if not values:
        return pd.DataFrame()
    if any(len(columns["cycle_id"]) == 0 for _, columns in values):
        frames = [
            pd.DataFrame({name: _materialized(piece) for name, piece in columns.items()}).assign(indicator=ind)
            for ind, columns in values
        ]
        return pd.concat(frames, ignore_index=True)
    names = list(values[0][1])
    sizes = [len(columns["cycle_id"]) for _, columns in values]
    # each column's pieces handed over (taken out of `values`) as it is joined, so they go as soon as it is: at
    # 10,000,000 care cycles the per-cycle frame of a condition is tens of millions of rows, and every indicator's
    # pieces held to the end of the join, beside the joined columns, were the condition's peak. The indicators' own
    # arrays (observed, expected) first: their pieces are gone before the columns taken from the view's are made
    own = sorted(names, key=lambda name: any(isinstance(columns[name], _Taken) for _, columns in values))
    joined = {name: _joined_column([columns.pop(name) for _, columns in values]) for name in own}
    joined = {name: joined[name] for name in names}
    joined["indicator"] = _repeated_text([ind for ind, _ in values], sizes)
    # the joined arrays are this frame's own (new arrays, nobody else holds them): not copied once more by pandas
    return pd.DataFrame(joined, copy=False)


def _repeated_text(texts: list[str], sizes: list[int]) -> pd.Series:
    """Each of `texts` repeated its size's times, as the text Series pandas makes of those Python strings (its 'str'
    type), made in Arrow from the few texts and a small code per row. Why: the NumPy array of a Python string per row
    pandas converted was made last in the per-cycle join, on top of its peak (at 10,000,000 care cycles 8 bytes per
    row of breast cancer's 14,600,000, and the conversion's own buffers)."""
    codes = np.repeat(np.arange(len(texts), dtype=np.int32), sizes)
    text = pd.array(texts, dtype="str")
    return pd.Series(text.take(codes), copy=False)


def _joined_column(pieces: list) -> np.ndarray | pd.Series:
    """The indicators' pieces of one per-cycle column joined: pieces that are all pandas arrays of one type (the
    view's text columns, vbhc.indicators._UnitRows.column) as one Series of that type, which is the type pandas gives
    the same values as Python strings; anything else as one NumPy array, as before. Why: the per-cycle values of a
    condition are millions of rows, and making their cycle ids and units Python strings and then Arrow strings
    again was a twentieth of the indicator tables' CPU at 1,000,000 care cycles. Pieces that are all _Taken of one
    source are taken from it at once (the same values and type as their masks joined)."""
    first = pieces[0]
    if isinstance(first, _Taken) and all(isinstance(p, _Taken) and p.source is first.source for p in pieces):
        taken = first.source.take(np.concatenate([p.positions for p in pieces]))
        return pd.Series(taken, copy=False) if isinstance(taken, pd.api.extensions.ExtensionArray) else taken
    pieces = [_materialized(piece) for piece in pieces]
    first = pieces[0]
    if isinstance(first, pd.api.extensions.ExtensionArray) and all(
        isinstance(piece, pd.api.extensions.ExtensionArray) and piece.dtype == first.dtype for piece in pieces
    ):
        return pd.concat([pd.Series(piece, copy=False) for piece in pieces], ignore_index=True)
    return np.concatenate([np.asarray(piece) for piece in pieces])


def _without_self_benchmark(table: pd.DataFrame) -> pd.DataFrame:
    """An indicator with one unit holding data has no benchmark: its "benchmark" would be the unit itself (a
    registry of the own hospital's patients alone), always within limits it set itself. Its target and limits are
    withheld and its positions say so, and every verdict says "no benchmark" instead of "as expected"."""
    if table.empty or "n" not in table:
        return table
    has_data = pd.to_numeric(table["n"], errors="coerce").fillna(0) > 0
    alone = table.loc[has_data].groupby("indicator")["unit"].nunique()
    alone = alone[alone == 1].index
    rows = table["indicator"].isin(alone) & (table["kind"] != "volume")
    if not rows.any():
        return table
    table = table.copy()
    limits = [c for c in table.columns if c == "target" or c.startswith(("lower_", "upper_"))]
    table.loc[rows, limits] = np.nan
    marks = [c for c in table.columns if c.startswith(("position", "assessment"))]
    table.loc[rows, marks] = benchmark.NO_BENCHMARK
    return table


def indicator_table(
    condition: str,
    level: str = "hospital",
    period: str | Period | None = None,
    *,
    engine: Engine | None = None,
    levels: Sequence[float] = DEFAULT_LEVELS,
    dispersion: str = "auto",
    as_of: dt.date | None = None,
) -> IndicatorResult:
    """Load one condition's registry data and compute its indicator table."""
    data = load_condition_data(condition, period, engine=engine, as_of=as_of)
    return compute_indicators(data, level, levels=levels, dispersion=dispersion)


# --- per indicator -------------------------------------------------------------------------------------


def _describe(ind: Indicator) -> dict[str, object]:
    return {
        "indicator": ind.id,
        "label_en": ind.label_en,
        "label_nl": ind.label_nl,
        "kind": ind.kind,
        "tier": ind.tier,
        "direction": ind.direction,
        "key": ind.key,
        "min_n": ind.min_n,
    }


def _outcome_column(ind: Indicator, data: ConditionData, base: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """The cycles of this indicator with its outcome in column 'y' (and extra covariates), NaN = not part."""
    extra: list[str] = []
    if ind.kind in ("proportion", "mean"):
        frame = base.assign(y=base[ind.outcome].astype(float))
    elif ind.kind in PREM_KINDS:  # vbhc.prems puts each PREM indicator's value in a column named after it
        frame = base.assign(y=base[ind.id].astype(float))
    elif ind.kind == "composite":
        frame = base.assign(y=composite_values(ind, base)["textbook"].to_numpy())
    elif ind.kind == "cost":
        cost = data.cost.set_index("cycle_id")["cost"]
        frame = base.assign(y=base["cycle_id"].astype(str).map(cost).astype(float))
    else:
        by_cycle = _ByCycle(base["cycle_id"], data.scores["cycle_id"])
        baseline = by_cycle.values(_scores_at(data.scores, ind.instrument, ind.scale, "baseline"))
        if ind.kind == "prom_score":
            y = by_cycle.values(_scores_at(data.scores, ind.instrument, ind.scale, ind.timepoint))
        else:
            instrument = default_catalog().instruments[ind.instrument]
            change = proms.prom_change(data.scores, instrument, ind.scale, ind.timepoint)
            column = change["change"] if ind.kind == "prom_change" else change["reached_mic"].astype(float)
            y = by_cycle.values(pd.Series(column.to_numpy(), index=change["cycle_id"]))
        frame = base.assign(y=y, baseline_score=baseline)
        extra = ["baseline_score"]
    return frame, extra


def _scores_at(scores: pd.DataFrame, instrument: str, scale: str, timepoint: str) -> pd.Series:
    """The scale's score per care cycle at the timepoint (the last of a cycle's scores), indexed by the cycle id as
    the scores hold it (a categorical id stays one: _ByCycle looks it up by its code)."""
    mask = (scores["instrument"] == instrument) & (scores["scale"] == scale) & (scores["timepoint"] == timepoint)
    part = scores.loc[mask, ["cycle_id", "score"]].dropna()
    part = part.drop_duplicates("cycle_id", keep="last")
    return pd.Series(part["score"].to_numpy(), index=part["cycle_id"])


class _ByCycle:
    """The view's cycles' values of a per-cycle Series keyed by cycle id (NaN where a cycle has none), as mapping
    the cycle ids as text gives them. When the keys are the PROM scores' categorical cycle ids (vbhc.registry.
    prom_scores), the view's cycles are found among the categories once (pyarrow's hash lookup, as _scale_scores),
    and each Series is taken by its codes: pandas' map of the text ids, two or three per PROM indicator, was about a
    tenth of the indicator tables' CPU at 1,000,000 care cycles."""

    def __init__(self, cycle_ids: pd.Series, keys: pd.Series) -> None:
        self.cycle_ids = cycle_ids
        self.dtype = keys.dtype if isinstance(keys.dtype, pd.CategoricalDtype) else None
        self.rows: np.ndarray | None = None

    def values(self, by_cycle: pd.Series) -> np.ndarray:
        index = by_cycle.index
        if self.dtype is None or not isinstance(index, pd.CategoricalIndex) or index.dtype != self.dtype:
            keyed = pd.Series(by_cycle.to_numpy(), index=index.astype(str))
            return self.cycle_ids.astype(str).map(keyed).to_numpy(float)
        categories = self.dtype.categories
        if self.rows is None:  # each view cycle's code among the categories (len(categories) where it is not one)
            found = pc.index_in(
                pa.array(self.cycle_ids.astype(str), type=pa.string()),
                value_set=pa.array(categories.astype(str), type=pa.string()),
            )
            self.rows = found.fill_null(len(categories)).to_numpy(zero_copy_only=False).astype(np.intp)
        codes = index.codes
        if (codes < 0).any() or len(np.unique(codes)) != len(codes):  # a missing or repeated key: as map() would
            keyed = pd.Series(by_cycle.to_numpy(), index=index.astype(str))
            return self.cycle_ids.astype(str).map(keyed).to_numpy(float)
        at_code = np.full(len(categories) + 1, np.nan)
        at_code[codes] = by_cycle.to_numpy(float)
        return at_code[self.rows]


@dataclass(frozen=True)
class _UnitRows:
    """The view's units (sorted) and, per care cycle of the view, its unit's position among them: every indicator's
    per-unit sums are counted from these (np.bincount) instead of a pandas group-by per indicator, which was most
    of the cost of a small view such as a comparison group's."""

    units: pd.Index
    codes: np.ndarray
    arrays: dict[str, np.ndarray] = field(default_factory=dict, compare=False)

    def column(self, base: pd.DataFrame, name: str) -> np.ndarray | pd.api.extensions.ExtensionArray:
        """A column of the view's cycles (`base`) as an array (the cycle id as text), converted once per view for the
        per-cycle values of every indicator. Text stays in pandas' own (Arrow) array, not Python strings: the
        per-cycle frame (_cycle_values) takes it as it is."""
        if name not in self.arrays:
            column = base[name]
            column = column.astype(str) if name == "cycle_id" else column
            text = isinstance(column.dtype, pd.StringDtype)
            self.arrays[name] = column.array if text else column.to_numpy()
        return self.arrays[name]

    def sums(self, keep: np.ndarray, *values: np.ndarray) -> tuple[np.ndarray, ...]:
        """Per unit, the number of kept cycles (a whole number) and the sum of each of `values` over them (0 for a unit
        without)."""
        codes, k = self.codes[keep], len(self.units)
        return (
            np.bincount(codes, minlength=k),
            *(np.bincount(codes, weights=v[keep], minlength=k) for v in values),
        )

    def spread(self, keep: np.ndarray, values: np.ndarray, n: np.ndarray, mean: np.ndarray) -> np.ndarray:
        """Per unit, the standard deviation (n - 1) of `values` over the kept cycles (two passes: the deviations
        from the unit's own mean, not sums of squares, which lose digits for large values such as costs)."""
        codes = self.codes[keep]
        squares = np.bincount(codes, weights=(values[keep] - mean[codes]) ** 2, minlength=len(self.units))
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(n > 1, np.sqrt(squares / (n - 1)), np.nan)


def _one_indicator(
    ind: Indicator,
    data: ConditionData,
    base: pd.DataFrame,
    rows: _UnitRows,
    levels: Sequence[float],
    dispersion: str,
    grouped: bool = False,
) -> tuple[dict[str, object] | None, CaseMixModel | None, dict[str, np.ndarray] | None]:
    """One indicator's rows (its columns: an array per column, or one value for every unit), its case-mix model and
    its per-cycle values (columns as arrays)."""
    units = rows.units
    if ind.kind == "volume":
        n = np.bincount(rows.codes, minlength=len(units)).astype(np.int64)
        columns = {"unit": units.to_numpy(), "n": n, "crude_value": n.astype(float), "too_few_cycles": n < ind.min_n}
        return columns | _describe(ind), None, None
    if ind.kind == "response_rate":
        return _response_rate(ind, data, base, rows, levels), None, None
    if ind.kind in SURVIVAL_KINDS:
        return _survival(ind, data, base, rows, levels, dispersion)

    frame, extra = _indicator_frame(ind, data, base)
    binary = ind.kind in BINARY_KINDS
    model = data.fitted.get(ind.id)
    if model is None or not model.expected.index.equals(frame.index):
        if data.reference is not None:  # a comparison group: the registry's model, recalibrated to the group
            model = recalibrate_in_the_large(reference_model(ind, data.reference), frame, "y", _column_cache(data))
        else:
            model = fit_casemix_model(
                frame,
                "y",
                data.condition.casemix,
                "binary" if binary else "continuous",
                extra_covariates=extra,
                grouped=grouped,
                cache=_column_cache(data),
            )
        data.fitted[ind.id] = model
    y = frame["y"].to_numpy(float)
    in_part = ~np.isnan(y)
    e = model.expected.reindex(frame.index).to_numpy(float)
    in_adjusted = in_part & ~np.isnan(e)
    at = np.flatnonzero(in_part)
    per_cycle = {
        "cycle_id": _Taken(rows.column(base, "cycle_id"), at),
        "unit": _Taken(rows.column(base, "unit"), at),
        "index_date": _Taken(rows.column(base, "index_date"), at),
        "observed": y[in_part],
        "expected": e[in_part],
    }
    # per unit: the crude figures over every cycle of the indicator, the adjusted ones over those with an expected
    size, total = rows.sums(in_part, y)
    with np.errstate(divide="ignore", invalid="ignore"):
        crude_mean = np.where(size > 0, total / size, np.nan)
    adjusted = (rows.codes[in_adjusted], y[in_adjusted], e[in_adjusted])
    if binary:
        n_adj, observed, expected_sum = rows.sums(in_adjusted, y, e)
        agg = {"unit": units.to_numpy(), "n": n_adj, "observed": observed, "expected": expected_sum}
        target = model.overall if np.isfinite(model.overall) else None
        columns, out = _binary_columns(agg, ind, target, levels, dispersion)
        result = {"unit": columns.pop("unit"), "n": size} | columns
        lo, up = benchmark.wilson_ci(total, size)
        added = {"crude_value": crude_mean, "crude_lower": lo, "crude_upper": up}
        added |= _shrinkage_columns(len(units), ind, *adjusted, model.overall, binary=True)
    else:
        n_adj, y_sum, y_sq, e_sum = rows.sums(in_adjusted, y, y**2, e)
        with np.errstate(divide="ignore", invalid="ignore"):  # a unit without adjusted cycles has no sums (NaN)
            empty = np.where(n_adj > 0, 0.0, np.nan)
            agg = {
                "unit": units.to_numpy(),
                "n": n_adj,
                "sum": y_sum + empty,
                "sum_sq": y_sq + empty,
                "expected": e_sum / n_adj + empty,
            }
        residual_sd = model.diagnostics.residual_sd
        if not (np.isfinite(residual_sd) and residual_sd > 0):  # no model: limits use the outcome's own spread
            residual_sd = float(np.nanstd(y, ddof=1)) if in_part.sum() > 1 else float("nan")
        out = benchmark.benchmark_columns(
            agg,
            "mean",
            direction=ind.direction,
            target=model.overall if np.isfinite(model.overall) else None,
            levels=levels,
            dispersion=dispersion,
            min_n=ind.min_n,
            sd=residual_sd if np.isfinite(residual_sd) and residual_sd > 0 else None,
        )
        has_adj = "adjusted_mean" in out
        sd_unit = rows.spread(in_part, y, size, crude_mean)
        c_lo, c_up = benchmark.mean_ci(crude_mean, sd_unit, size)
        result = {
            "unit": units.to_numpy(),
            "n": size,
            "n_adjusted": n_adj,
            "observed": out["mean"],
            "expected": agg["expected"],
            "crude_value": crude_mean,
            "crude_lower": c_lo,
            "crude_upper": c_up,
            "adjusted_value": out["adjusted_mean" if has_adj else "mean"],
            "adjusted_lower": out["adjusted_lower" if has_adj else "mean_lower"],
            "adjusted_upper": out["adjusted_upper" if has_adj else "mean_upper"],
            "target": out["target"],
            "precision": n_adj,
        }
        added = _limit_columns(out, levels) | {"limit_sd": residual_sd}
        added |= _shrinkage_columns(len(units), ind, *adjusted, model.overall, binary=False)
    diag = model.diagnostics
    added |= {
        "model_c_statistic": diag.c_statistic,
        "model_calibration_slope": diag.calibration_slope,
        "model_r_squared": diag.r_squared,
        "model_n_excluded": diag.n_excluded,
    }
    # the columns in their order (the result's, then the added ones: no name in both)
    return result | added | _describe(ind), model, per_cycle


def _group_rows(data: ConditionData) -> np.ndarray | None:
    """The positions of a comparison group's care cycles among those of its reference (the registry of the same
    period), matched once per group on the cycle ids (pyarrow's hash lookup); None for the registry itself, or when
    a cycle id is missing there or not unique (the group then derives everything from its own rows, as before)."""
    reference = data.reference
    if reference is None or data.as_of != reference.as_of:
        return None
    found = data.derived.get(_ROWS)
    if found is None:
        ids = reference.derived.get(_IDS)
        if ids is None:
            ids = pa.array(reference.cycles["cycle_id"].astype(str), type=pa.string())
            if ids.null_count or pc.count_distinct(ids).as_py() != len(ids):
                ids = False
            reference.derived[_IDS] = ids
        found = False
        if ids is not False:
            at = pc.index_in(pa.array(data.cycles["cycle_id"].astype(str), type=pa.string()), value_set=ids)
            if not at.null_count:
                found = at.to_numpy(zero_copy_only=False).astype(np.intp)
        data.derived[_ROWS] = found
    return None if found is False else found


_ROWS, _IDS = "group rows", "cycle ids"


def _column_cache(data: ConditionData) -> ColumnCache:
    """The conversions of the view's case-mix columns, kept with its data for its indicators' case-mix models (the
    indicators' frames share these columns; an extra covariate such as a PROM's baseline score is not kept)."""
    cache = data.derived.get(_CASEMIX_COLUMNS)
    if cache is None:
        names = frozenset(v.name for v in data.condition.casemix) - {"y", "unit", "baseline_score"}
        cache = data.derived.setdefault(_CASEMIX_COLUMNS, ColumnCache(names))
    return cache


#: ConditionData.derived's key of the view's ColumnCache (_column_cache)
_CASEMIX_COLUMNS = "case-mix columns"


#: ConditionData.derived's key of an indicator's value (and extra covariates) of every care cycle: (it, id)
CYCLE_VALUES = "values"


def _indicator_frame(ind: Indicator, data: ConditionData, base: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """_outcome_column of the view's cycles. A comparison group takes its cycles' values from those of its reference
    (derived once there: they depend on the cycle alone), and the registry's view keeps its own for its groups."""
    rows = _group_rows(data)
    if rows is not None:
        values = _reference_values(ind, data.reference)
        if values is not None:
            y, extra = values
            return base.assign(y=y[rows], **{name: column[rows] for name, column in extra.items()}), list(extra)
    elif data.reference is None:  # the registry's other unit level: its values, derived by the first level's table
        values = data.derived.get((CYCLE_VALUES, ind.id))
        if values and len(values[0]) == len(base):
            y, extra = values
            return base.assign(y=y, **extra), list(extra)
    frame, extra = _outcome_column(ind, data, base)
    if data.reference is None:
        data.derived.setdefault((CYCLE_VALUES, ind.id), _values_of(frame, extra))
    return frame, extra


def _values_of(frame: pd.DataFrame, extra: list[str]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    return frame["y"].to_numpy(float), {name: frame[name].to_numpy(float) for name in extra}


def _reference_values(ind: Indicator, reference: ConditionData) -> tuple[np.ndarray, dict[str, np.ndarray]] | None:
    """The indicator's value (and extra covariates) of every cycle of the reference, derived once and kept there;
    None when they cannot be derived on the whole registry (a PROM score twice for one cycle of another hospital,
    which the group itself may not hold: the group then derives its own)."""
    key = (CYCLE_VALUES, ind.id)
    values = reference.derived.get(key)
    if values is None:
        try:
            values = _values_of(*_outcome_column(ind, reference, reference.cycles))
        except ValueError:
            values = False
        reference.derived[key] = values
    return None if values is False else values


def reference_model(ind: Indicator, reference: ConditionData) -> CaseMixModel:
    """The whole registry's case-mix model of a (non-survival) indicator: the one its view already holds
    (`reference.fitted`, filled when its result was computed or read from the results store), else fitted on
    the registry's cycles now and kept there for the next comparison group."""
    model = reference.fitted.get(ind.id)
    if model is not None and len(model.expected) == len(reference.cycles):
        return model
    frame, extra = _outcome_column(ind, reference, reference.cycles.assign(unit=""))
    kind = "binary" if ind.kind in BINARY_KINDS else "continuous"
    model = fit_casemix_model(frame, "y", reference.condition.casemix, kind, extra_covariates=extra)
    reference.fitted[ind.id] = model
    return model


def _reference_cox(ind: Indicator, reference: ConditionData) -> survival.CoxModel | None:
    """The whole registry's Cox model of a survival indicator (`reference.cox`, else fitted now and kept there);
    None when the registry has no follow-up for it."""
    model = reference.cox.get(ind.id)
    if model is None:
        model = survival.cox_model(
            reference.cycles,
            outcome=ind.outcome,
            casemix=reference.condition.casemix,
            as_of=reference.as_of,
            horizon_years=float(ind.years or 1),
        )
        if model is not None:
            reference.cox[ind.id] = model
    return model


#: ConditionData.derived's key of the registry's case-mix encoding of a survival indicator: (it, id, as_of)
COX_ENCODING = "cox encoding"


def registry_cox_encoding(ind: Indicator, reference: ConditionData, as_of: pd.Timestamp) -> DesignEncoding:
    """The case-mix encoding the registry's (`reference`'s) Cox model of a survival indicator was fitted with
    (vbhc.survival.registry_encoding), derived once and kept with the registry's data: every comparison group cut
    from it encodes its cycles with it. It depends on the registry's data alone, so vbhc.results stores it with the
    registry's view; before, each group's first table derived it again (~3 % of a new group's click)."""
    key = (COX_ENCODING, ind.id, as_of)
    encoding = reference.derived.get(key)
    if encoding is None:
        encoding = survival.registry_encoding(
            reference.cycles, ind.outcome, reference.condition.casemix, as_of, float(ind.years or 1)
        )
        reference.derived[key] = encoding
    return encoding


def _survival(
    ind: Indicator, data: ConditionData, base: pd.DataFrame, rows: _UnitRows, levels: Sequence[float], dispersion: str
) -> tuple[dict[str, object] | None, None, dict[str, np.ndarray] | None]:
    """Kaplan-Meier survival at the horizon and the Cox-adjusted SMR per unit (vbhc.survival); no rows where
    the registry has no follow-up dates for the outcome (the binary indicator is the one to use there). For a
    comparison group the registry's Cox model, its baseline hazard rescaled to the group."""
    if ind.outcome is None or ind.outcome + EVENT_DATE_SUFFIX not in base:
        return None, None, None
    model, reference = data.cox.get(ind.id), None
    if data.reference is not None:
        reference = data.reference.cycles
        if model is None:
            model = _reference_cox(ind, data.reference)
            if model is None:
                return None, None, None
    encoding = None
    if reference is not None:  # the registry's encoding of the case-mix, decided once and kept with its data
        encoding = registry_cox_encoding(ind, data.reference, data.as_of)
    out = survival.survival_columns(
        base,
        (rows.units, rows.codes),
        outcome=ind.outcome,
        casemix=data.condition.casemix,
        as_of=data.as_of,
        horizon_years=float(ind.years or 1),
        direction=ind.direction,
        levels=levels,
        dispersion=dispersion,
        min_n=ind.min_n,
        model=model,
        reference=reference,
        encoding=encoding,
        kept=data.derived.setdefault(("survival", ind.id, data.as_of), {}),
    )
    if out is None:
        return None, None, None
    result, added, per_cycle, data.cox[ind.id] = out
    # the followed cycles' ids, units and dates as _Taken of the view's columns, as the other indicators' are: the
    # same values (survival_columns takes them from the same cycles), one copy for the per-cycle frame
    kept = data.derived[("survival", ind.id, data.as_of)]
    at = np.flatnonzero(kept["known"])
    for name in ("cycle_id", "unit", "index_date"):
        source = rows.column(base, name)
        piece = per_cycle[name]
        if type(piece) is type(source) and piece.dtype == source.dtype and len(piece) == len(at):
            per_cycle[name] = _Taken(source, at)
    return result | added | dict.fromkeys(SHRINKAGE_COLUMNS, np.nan) | _describe(ind), None, per_cycle


def _shrinkage_columns(
    size: int,
    ind: Indicator,
    unit: np.ndarray,
    observed: np.ndarray,
    expected: np.ndarray,
    overall: float,
    binary: bool,
) -> dict[str, object]:
    """The random-effects columns (vbhc.shrinkage) for the view's `size` units, from the case-mix adjusted cycles
    (their unit's position among the view's units, observed outcome and expected value). The fits take the units'
    positions for their names (sorted as the names are): the same fit, without turning names into text again.

    Every unit with data enters the fit and the ranking (shrinkage is what makes small units comparable);
    rankability uses the units with at least min_n cycles, as the funnel's rankability does.
    """
    columns = dict.fromkeys(SHRINKAGE_COLUMNS, np.nan)
    if len(unit) and np.isfinite(overall):
        if binary:
            fit = shrinkage.shrink_binary(unit, observed, expected, overall)
        else:
            fit = shrinkage.shrink_continuous(unit, observed - expected, overall)
        rank, rank_lo, rank_hi = shrinkage.expected_ranks(
            fit.effect, fit.effect_sd, lower_is_better=ind.direction == "lower"
        )
        per_unit = {
            shrinkage.SHRUNKEN_VALUE: fit.value,
            shrinkage.SHRUNKEN_LOWER: fit.lower,
            shrinkage.SHRUNKEN_UPPER: fit.upper,
            shrinkage.EXPECTED_RANK: rank,
            shrinkage.EXPECTED_RANK_LOWER: rank_lo,
            shrinkage.EXPECTED_RANK_UPPER: rank_hi,
        }
        at = np.asarray(fit.units, dtype=np.intp)  # the fitted units' positions; a unit without cycles gets NaN
        for name, values in per_unit.items():
            column = np.full(size, np.nan)
            column[at] = values
            columns[name] = column
        columns[shrinkage.SHRINKAGE_TAU2] = fit.tau2
        columns[shrinkage.SHRINKAGE_RANKABILITY] = fit.rankability(fit.n >= ind.min_n)
        columns[shrinkage.RANKED_UNITS] = float(np.isfinite(rank).sum()) if np.isfinite(rank).any() else np.nan
    return columns


def _binary_columns(
    agg: pd.DataFrame | dict[str, np.ndarray],
    ind: Indicator,
    target: float | None,
    levels: Sequence[float],
    dispersion: str,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Risk-adjusted yes/no indicator from per-unit n, O and E.

    O/E gets its exact Poisson CI, but the funnel compares the adjusted rate (O/E × overall rate) with
    binomial limits around the overall rate at the unit's n (Spiegelhalter 2005, indirectly standardised
    proportions): Poisson limits on O/E are only right for rare events and are far too wide for common ones
    such as a radical-resection rate of 85%.
    """
    n, o, e = (np.asarray(agg[name], dtype=float) for name in ("n", "observed", "expected"))
    unit = np.asarray(agg["unit"])
    # no recorded outcome yet (e.g. 2-year mortality for last year's cycles): no benchmark rather than 0/0
    overall = float(target) if target is not None else (float(o.sum() / n.sum()) if n.sum() > 0 else float("nan"))
    oe = benchmark.oe_columns(o, e)
    adjusted_rate = oe["oe"] * overall
    standardised = {"unit": unit, "n": n, "observed": np.nan_to_num(adjusted_rate) * n}
    out = benchmark.benchmark_columns(
        standardised,
        "proportion",
        direction=ind.direction,
        target=overall,
        levels=levels,
        dispersion=dispersion,
        min_n=ind.min_n,
        adjusted=False,
    )
    adjusted_lower = np.where(np.isfinite(adjusted_rate), out["rate_lower"], np.nan)
    adjusted_upper = np.where(np.isfinite(adjusted_rate), out["rate_upper"], np.nan)
    # an adjusted rate above 1 (far more events than a low expected count: O/E above 1 / overall rate) has no
    # Wilson interval (p (1 - p) < 0 gave NaN, a value without an interval): there the exact Poisson interval of
    # O/E times the overall rate, as vbhc.benchmark.adjusted_rate, which is not clipped at 1 either
    with np.errstate(invalid="ignore"):
        above_one = adjusted_rate > 1
    result = {
        "unit": unit,
        "n_adjusted": n,
        "observed": o,
        "expected": e,
        "oe": oe["oe"],
        "oe_lower": oe["oe_lower"],
        "oe_upper": oe["oe_upper"],
        "adjusted_value": adjusted_rate,
        "adjusted_lower": np.where(above_one, oe["oe_lower"] * overall, adjusted_lower),
        "adjusted_upper": np.where(above_one, oe["oe_upper"] * overall, adjusted_upper),
        "target": np.full(len(n), overall),
        "precision": n,
    }
    return result | _limit_columns(out, levels), out


def _binary_benchmark(
    agg: pd.DataFrame, ind: Indicator, target: float | None, levels: Sequence[float], dispersion: str
) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """_binary_columns as a frame."""
    columns, out = _binary_columns(agg, ind, target, levels, dispersion)
    return pd.DataFrame(columns), out


def _limit_columns(out: pd.DataFrame | dict[str, np.ndarray], levels: Sequence[float]) -> dict[str, np.ndarray]:
    """The funnel limits, positions and dispersion columns of benchmark_units' (or benchmark_columns') output, in
    table order."""
    columns: dict[str, np.ndarray] = {}
    for level in levels:
        sfx = benchmark.level_suffix(level)
        columns[f"lower_{sfx}"] = np.asarray(out[f"lower_{sfx}"])
        columns[f"upper_{sfx}"] = np.asarray(out[f"upper_{sfx}"])
    for level in levels:
        sfx = benchmark.level_suffix(level)
        columns[f"position_{sfx}"] = np.asarray(out[f"position_{sfx}"])
        columns[f"assessment_{sfx}"] = np.asarray(out[f"assessment_{sfx}"])
    for col in ("too_few_cycles", "dispersion_method", "phi", "tau2", "rankability", "rankability_note"):
        columns[col] = np.asarray(out[col])
    columns["detectable_difference"] = np.asarray(out["detectable_difference"])
    return columns


def _response_rate(
    ind: Indicator, data: ConditionData, base: pd.DataFrame, rows: _UnitRows, levels: Sequence[float]
) -> dict[str, object]:
    """The PROM response rate per unit (proms.response_rate, counted on the units' positions), compared with the
    overall rate. A comparison group takes its cycles' eligible and responded flags of the registry's."""
    days = data.condition.timepoint(ind.timepoint).days
    key = ("response", ind.id, data.as_of)
    group = _group_rows(data)
    source = data.reference if group is not None else data
    # the registry's flags are kept with its data: for its comparison groups and its other unit levels
    kept = group is not None or data.reference is None
    flags = source.derived.get(key) if kept else None
    if flags is None:
        flags = proms.response_flags(source.cycles, source.scores, ind.instrument, ind.timepoint, days, data.as_of)
        if kept:
            source.derived[key] = flags
    eligible, responded = flags if group is None else (flags[0][group], flags[1][group])
    units, k = rows.units, len(rows.units)
    n = np.bincount(rows.codes[eligible], minlength=k)
    observed = np.bincount(rows.codes[responded], minlength=k)
    rate, low, high = proms.response_ci(n, observed)
    out = benchmark.benchmark_columns(
        {"unit": units.to_numpy(), "n": n, "observed": observed},
        "proportion",
        direction=ind.direction,
        levels=levels,
        min_n=ind.min_n,
        adjusted=False,
    )
    result = {
        "unit": units.to_numpy(),
        "n": n,
        "observed": observed,
        "crude_value": rate,
        "crude_lower": low,
        "crude_upper": high,
        "adjusted_value": rate,
        "adjusted_lower": low,
        "adjusted_upper": high,
        "target": out["target"],
        "precision": n,
    }
    return result | _limit_columns(out, levels) | _describe(ind)


# --- composite (textbook outcome) indicators ---------------------------------------------------------------


def component_failed(component: Component, values: pd.Series) -> np.ndarray:
    """1.0 where the component failed, 0.0 where it went as planned, NaN where its value is not recorded."""
    v = pd.to_numeric(values, errors="coerce").to_numpy(float)
    bad = v > component.fails_above if component.fails_above is not None else v == component.fails_if
    return np.where(np.isnan(v), np.nan, bad.astype(float))


def composite_values(ind: Indicator, cycles: pd.DataFrame) -> pd.DataFrame:
    """Per cycle: whether each component failed (one column per component id, NaN = not recorded) and
    'textbook': 1 when every component went as planned, 0 when one failed, NaN when one is not recorded.

    A cycle missing any component is left out of the indicator (and counted by composite_failures), as a
    cycle without a recorded outcome is for any other indicator, even when another component already
    failed: keeping those would keep the failures of incompletely registered cycles but not their successes,
    and make the share of textbook outcomes look worse the more a unit leaves unregistered.
    """
    failed = pd.DataFrame({c.id: component_failed(c, cycles[c.outcome]) for c in ind.components}, index=cycles.index)
    complete = failed.notna().all(axis=1)
    textbook = np.where(complete, (failed.fillna(0.0).sum(axis=1) == 0).astype(float), np.nan)
    return failed.assign(textbook=textbook)


def composite_failures(result: IndicatorResult, indicator: str) -> pd.DataFrame:
    """Per unit and component: of the unit's cycles in the composite, how many failed that component.

    Columns: unit, component, n (cycles with every component recorded, the composite's denominator),
    failed, share_failed, n_incomplete (cycles left out because a component is not recorded) and n_missing
    (of those, how many miss this component). A cycle can fail several components, so the shares add up to
    at least 1 - textbook share.
    """
    data = result.data
    ind = data.condition.indicator(indicator)
    if ind.kind != "composite":
        raise ValueError(f"{indicator!r} is not a composite indicator ({ind.kind})")
    values = composite_values(ind, data.cycles)
    units = pd.Series(unit_labels(data.cycles, result.level).to_numpy(), index=data.cycles.index, name="unit")
    complete = values["textbook"].notna()
    n = complete.groupby(units).sum()
    incomplete = (~complete).groupby(units).sum()
    rows = []
    for c in ind.components:
        failed = values.loc[complete, c.id].groupby(units[complete]).sum().reindex(n.index, fill_value=0.0)
        missing = values[c.id].isna().groupby(units).sum()
        share = (failed / n.replace(0, np.nan)).to_numpy(float)
        rows.append(
            pd.DataFrame(
                {
                    "unit": n.index.to_numpy(),
                    "component": c.id,
                    "n": n.to_numpy(int),
                    "failed": failed.to_numpy(int),
                    "share_failed": share,
                    "n_incomplete": incomplete.to_numpy(int),
                    "n_missing": missing.reindex(n.index, fill_value=0).to_numpy(int),
                }
            )
        )
    return pd.concat(rows, ignore_index=True).sort_values("unit", kind="stable").reset_index(drop=True)


# --- explaining and following an indicator --------------------------------------------------------------


def casemix_explanation(result: IndicatorResult, indicator: str) -> pd.DataFrame:
    """Per unit and case-mix variable: how much of the gap between crude and adjusted it explains."""
    model = result.models[indicator]
    data = result.data
    ind = data.condition.indicator(indicator)
    base = data.cycles.assign(unit=unit_labels(data.cycles, result.level).to_numpy())
    frame, _ = _outcome_column(ind, data, base)
    frame = frame[frame["y"].notna()]
    return casemix_contributions(model, frame, frame["unit"])


def casemix_imputation(result: IndicatorResult, indicator: str, **options) -> imputation.MultipleImputation:
    """Complete-case against multiply imputed case-mix adjustment of one indicator, per unit (vbhc.imputation):
    the cycles complete-case analysis leaves out for a missing case-mix value, and E and O/E (O - E for a
    continuous indicator) under both. The complete-case figures are the table's own model's. `options` go to
    vbhc.imputation.multiple_imputation (m, seed, n_burnin, n_skip)."""
    model = result.models[indicator]
    data = result.data
    ind = data.condition.indicator(indicator)
    base = data.cycles.assign(unit=unit_labels(data.cycles, result.level).to_numpy())
    frame, extra = _outcome_column(ind, data, base)
    frame = frame[frame["y"].notna()]
    return imputation.multiple_imputation(
        frame,
        "y",
        data.condition.casemix,
        model.kind,
        frame["unit"],
        extra_covariates=extra,
        complete_case=model,
        **options,
    )


def indicator_over_time(
    result: IndicatorResult,
    indicator: str,
    unit: str,
    freq: str = "QS",
    laney: bool | None = None,
    *,
    baseline: int | None = None,
    rebase: Sequence | None = None,
    screen_mr: bool = True,
    until: dt.date | pd.Timestamp | None = None,
) -> pd.DataFrame:
    """A unit's indicator per month ('MS') or quarter ('QS') with SPC limits and every rule per point.

    Proportions: p chart of the observed rate with the unit's expected rate alongside (Laney p′ when the
    indicator is over-dispersed, unless `laney` says otherwise); continuous indicators: XmR chart of the
    period means (moving ranges screened unless screen_mr=False). `baseline` freezes the limits at the first
    N periods, `rebase` recomputes them from each date given, `until` keeps only care cycles up to that date
    (the data as they were at an earlier meeting). Rules, the rule that fired per point and the Making Data
    Count icons: see vbhc.spc; attrs["variation"] and attrs["assurance"] hold the icons, the assurance
    against the case-mix expected value of the unit's own patients (attrs["target"]).

    Survival indicators have no chart (an empty frame): the care cycles of the latest quarters have been
    followed for weeks, not years, so their share of deaths falls for that reason alone; the Kaplan-Meier
    curves (survival_curves) show how survival develops.
    """
    ind = result.data.condition.indicator(indicator)
    if ind.kind in SURVIVAL_KINDS:
        return pd.DataFrame()
    values = result.cycle_values
    if values.empty:
        return pd.DataFrame()
    # the unit's rows as arrays (the columns are not cut out of the frame: every unit's charts are drawn at once)
    rows = _unit_positions(values, indicator, unit)
    dates = values["index_date"]
    dates = (dates if pd.api.types.is_datetime64_dtype(dates) else pd.to_datetime(dates)).to_numpy()[rows]
    observed = values["observed"].to_numpy(float)[rows]
    expected = values["expected"].to_numpy(float)[rows]
    if until is not None:
        kept = dates <= pd.Timestamp(until).to_datetime64()
        dates, observed, expected = dates[kept], observed[kept], expected[kept]
    if not dates.size:
        return pd.DataFrame()
    # per period: cycles, sum of observed and of expected, mean observed (missing values left out, as pandas' sum
    # and mean do); with numpy, as this runs for every indicator of every unit a meeting looks at
    codes, periods = _period_codes(dates, freq)
    size = len(periods)
    n = np.bincount(codes, minlength=size)
    observed_sum = np.bincount(codes, np.nan_to_num(observed), minlength=size)
    expected_sum = np.bincount(codes, np.nan_to_num(expected), minlength=size)
    known = ~np.isnan(expected)
    target = float(expected[known].mean()) if known.any() else None
    options = {"baseline": baseline, "rebase": rebase, "direction": ind.direction, "target": target}
    if ind.kind in BINARY_KINDS:
        if laney is None:
            laney = indicator in overdispersed(result.table)
        chart = spc.p_chart(
            pd.Series(observed_sum, index=periods), pd.Series(n, index=periods), laney=laney, periods=periods, **options
        )
        # over the period's cycles that have an expected value (a cycle missing a case-mix value has none): over all
        # of them the unscored counted as 0 and the line sank with the share of missing case-mix
        scored = np.bincount(codes, known, minlength=size)
        with np.errstate(invalid="ignore", divide="ignore"):
            chart["expected_rate"] = np.where(scored > 0, expected_sum / scored, np.nan)
    else:
        counted = np.bincount(codes, ~np.isnan(observed), minlength=size)
        with np.errstate(invalid="ignore", divide="ignore"):
            means = observed_sum / counted
        chart = spc.xmr_chart(means, periods=periods, screen_mr=screen_mr, **options)
        chart["n"] = n
    chart.attrs["target"] = target
    return chart


#: Per cycle_values frame (by id, dropped with the frame): the row positions of each (indicator, unit), so a page
#: that follows many indicators of a unit does not scan every indicator's rows of every unit each time.
_cycle_positions: dict[int, dict[tuple[str, str], np.ndarray]] = {}
_positions_lock = threading.Lock()


def overdispersed(table: pd.DataFrame) -> set[str]:
    """The indicators of an indicator table whose benchmark allowed for over-dispersion (a dispersion method other
    than "none" in any row): their p charts are Laney p' charts."""
    if table.empty:
        return set()
    return {str(i) for i in table.loc[table["dispersion_method"] != "none", "indicator"].unique()}


def _period_codes(dates: np.ndarray, freq: str) -> tuple[np.ndarray, pd.DatetimeIndex]:
    """Each date's period (the alias's first letter: M month, Q quarter, else as pandas' to_period) as codes into
    the sorted period starts; months and quarters in numpy (every unit's charts are drawn at once)."""
    alias = freq[0]
    if alias in ("M", "Q"):
        months = dates.astype("datetime64[M]")
        if alias == "Q":
            number = months.astype(np.int64)
            months = (number - number % 3).astype("datetime64[M]")
        starts, codes = np.unique(months, return_inverse=True)
        return codes.ravel(), pd.DatetimeIndex(starts.astype(_start_dtype(alias, dates.dtype)))
    codes, periods = pd.factorize(pd.Series(dates).dt.to_period(alias).dt.start_time, sort=True)
    return codes, pd.DatetimeIndex(periods)


@functools.cache
def _start_dtype(alias: str, dtype: np.dtype) -> np.dtype:
    """The resolution pandas gives a period's start_time for dates of `dtype` (it has changed between versions)."""
    return pd.Series(np.zeros(1, dtype)).dt.to_period(alias).dt.start_time.dtype


def _unit_positions(values: pd.DataFrame, indicator: str, unit: str) -> np.ndarray:
    """The row positions in a cycle_values frame of one indicator and unit."""
    with _positions_lock:
        positions = _cycle_positions.get(id(values))
        if positions is None:
            keys = [values["indicator"].astype(str), values["unit"].astype(str)]
            positions = {k: np.asarray(v) for k, v in values.groupby(keys, sort=False).indices.items()}
            _cycle_positions[id(values)] = positions
            weakref.finalize(values, _cycle_positions.pop, id(values), None)
    return positions.get((indicator, unit), np.empty(0, dtype=np.intp))


def unit_cycle_values(result: IndicatorResult, indicator: str, unit: str) -> pd.DataFrame:
    """The per-cycle values (result.cycle_values) of one indicator and unit."""
    values = result.cycle_values
    if values.empty:
        return values
    return values.iloc[_unit_positions(values, indicator, unit)]


@dataclass(frozen=True)
class SurvivalCurves:
    """A survival indicator of one unit against its benchmark population, for the depth view: Kaplan-Meier
    curves with their bands (vbhc.survival.km_curves; `unit` is OWN or BENCHMARK) and the number at risk at a
    few times (vbhc.survival.number_at_risk). The proportional-hazards check is in the indicator row
    (ph_p_value, ph_variable), which the results store keeps; the Cox model itself is not stored."""

    curves: pd.DataFrame
    at_risk: pd.DataFrame
    years: float

    OWN = "own"
    BENCHMARK = "benchmark"


def survival_curves(result: IndicatorResult, indicator: str, unit: str) -> SurvivalCurves:
    """The unit's Kaplan-Meier curve up to the indicator's horizon against that of the benchmark population
    (every unit of the result, the unit included: the population the benchmark value is the survival of), so
    the team sees when its patients died, not only the figure at the horizon."""
    data = result.data
    ind = data.condition.indicator(indicator)
    if ind.kind not in SURVIVAL_KINDS or ind.outcome is None:
        raise ValueError(f"{indicator!r} is not a survival indicator ({ind.kind})")
    years = float(ind.years or 1)
    empty = pd.DataFrame(columns=["unit", "time", "event"])
    if ind.outcome + EVENT_DATE_SUFFIX not in data.cycles:
        followed = empty
    else:
        fu = survival.follow_up(data.cycles, ind.outcome, data.as_of, years * survival.DAYS_PER_YEAR)
        own = unit_labels(data.cycles, result.level).to_numpy() == unit
        followed = fu.dropna()
        followed = pd.concat(
            [
                followed[own[fu["time"].notna().to_numpy()]].assign(unit=SurvivalCurves.OWN),
                followed.assign(unit=SurvivalCurves.BENCHMARK),
            ],
            ignore_index=True,
        )
    return SurvivalCurves(
        curves=survival.km_curves(followed),
        at_risk=survival.number_at_risk(followed, survival.at_risk_times(years)),
        years=years,
    )


def cusum_vlad(result: IndicatorResult, indicator: str, unit: str | None = None) -> pd.DataFrame:
    """Risk-adjusted CUSUM and VLAD per cycle (binary indicators), for one unit or all."""
    ind = result.data.condition.indicator(indicator)
    if ind.kind not in BINARY_KINDS:
        raise ValueError(f"CUSUM/VLAD needs a yes/no indicator; {indicator!r} is {ind.kind}")
    values = result.cycle_values
    part = values[(values["indicator"] == indicator) & values["expected"].notna()]
    if unit is not None:
        part = part[part["unit"] == unit]
    return benchmark.cusum_vlad_by_unit(
        part.rename(columns={"index_date": "date", "observed": "outcome"}), unit="unit", date="date"
    )


# --- benchmarking from summary figures ------------------------------------------------------------------


def indicators_from_summary(
    summary: pd.DataFrame,
    condition: str,
    *,
    levels: Sequence[float] = DEFAULT_LEVELS,
    dispersion: str = "auto",
    catalog: Catalog | None = None,
) -> pd.DataFrame:
    """The indicator table from aggregated figures (e.g. a national registry's feedback).

    `summary` has one row per unit and indicator: unit, indicator, n and, for yes/no indicators, observed
    and expected (expected optional: without it, or missing for any unit, units are compared on crude rates);
    n_adjusted and observed_adjusted when the case-mix model could not score every cycle (the cycles behind
    expected; default n and observed), so the crude and the adjusted figures are both those of the patient
    rows. For continuous indicators sum and sum_sq (or mean and sd) and optionally expected (the unit's mean
    expected value); volume rows need n only.
    """
    catalog = catalog or default_catalog()
    cond = catalog.indicator_set(condition)  # a condition, or a PREM questionnaire (vbhc.prems)
    tables = []
    for ind_id, rows in summary.groupby("indicator", sort=False):
        ind = cond.indicator(str(ind_id))
        rows = rows.reset_index(drop=True)
        n = rows["n"].to_numpy(float)
        if ind.kind == "volume":
            result = pd.DataFrame({"unit": rows["unit"], "n": n, "crude_value": n})
            result["too_few_cycles"] = n < ind.min_n
        elif ind.kind in BINARY_KINDS and "expected" in rows and rows["expected"].notna().all():
            agg = pd.DataFrame(
                {
                    "unit": rows["unit"],
                    "n": _given(rows, "n_adjusted", "n"),
                    "observed": _given(rows, "observed_adjusted", "observed"),
                    "expected": rows["expected"].to_numpy(float),
                }
            )
            result, out = _binary_benchmark(agg, ind, None, levels, dispersion)
            result.insert(1, "n", n)
            o = rows["observed"].to_numpy(float)
            lo, up = benchmark.wilson_ci(o, n)
            with np.errstate(divide="ignore", invalid="ignore"):
                result["crude_value"] = np.where(n > 0, o / n, np.nan)
            result["crude_lower"], result["crude_upper"] = lo, up
        elif ind.kind in BINARY_KINDS or ind.kind == "response_rate":
            out = benchmark.benchmark_units(
                rows.drop(columns=["expected"], errors="ignore"),
                "proportion",
                direction=ind.direction,
                levels=levels,
                dispersion=dispersion,
                min_n=ind.min_n,
                adjusted=False,
            )
            result = pd.DataFrame(
                {
                    "unit": rows["unit"],
                    "n": rows["n"],
                    "observed": rows["observed"],
                    "crude_value": out["rate"],
                    "crude_lower": out["rate_lower"],
                    "crude_upper": out["rate_upper"],
                    "adjusted_value": out["rate"],
                    "adjusted_lower": out["rate_lower"],
                    "adjusted_upper": out["rate_upper"],
                    "target": out["overall_rate"],
                    "precision": rows["n"],
                }
            )
            result = benchmark.with_columns(result, _limit_columns(out, levels))
        elif ind.kind in CONTINUOUS_KINDS:
            out = benchmark.benchmark_units(
                rows, "mean", direction=ind.direction, levels=levels, dispersion=dispersion, min_n=ind.min_n
            )
            # the sd the limits were drawn with (the population's, pooled from the figures), for funnel_curve
            limit_sd = _pooled_sd(out)
            has_adj = "adjusted_mean" in out
            result = pd.DataFrame(
                {
                    "unit": rows["unit"],
                    "n": rows["n"],
                    "observed": out["mean"],
                    "expected": rows.get("expected", np.nan),
                    "crude_value": out["mean"],
                    "crude_lower": out["mean_lower"],
                    "crude_upper": out["mean_upper"],
                    "adjusted_value": out["adjusted_mean" if has_adj else "mean"],
                    "adjusted_lower": out["adjusted_lower" if has_adj else "mean_lower"],
                    "adjusted_upper": out["adjusted_upper" if has_adj else "mean_upper"],
                    "target": out["target"],
                    "precision": rows["n"],
                }
            )
            result = benchmark.with_columns(result, _limit_columns(out, levels) | {"limit_sd": limit_sd})
        else:
            raise ValueError(f"indicator {ind.id!r} ({ind.kind}) cannot be benchmarked from summary figures")
        tables.append(result.assign(**_describe(ind)))
    table = pd.concat(tables, ignore_index=True)
    table["condition"] = cond.id
    table["unit_level"] = "summary"
    return table


def _pooled_sd(out: pd.DataFrame) -> float:
    """The population sd benchmark_units pooled from per-unit n, mean and sd (its limits' sd)."""
    n, mean, sd = (out[c].to_numpy(float) for c in ("n", "mean", "sd"))
    ok = np.isfinite(mean) & (n > 0)
    big_n = n[ok].sum()
    if big_n < 2:
        return float("nan")
    total = (n * mean)[ok].sum()
    total_sq = (np.where(n > 1, (n - 1) * np.nan_to_num(sd) ** 2, 0.0) + n * mean**2)[ok].sum()
    return float(np.sqrt(max((total_sq - total**2 / big_n) / (big_n - 1), 0.0)))


def _given(rows: pd.DataFrame, column: str, default: str) -> np.ndarray:
    """`column` where the summary gives it, else `default` (the adjusted figures are the crude ones)."""
    base = rows[default].to_numpy(float)
    if column not in rows:
        return base
    values = rows[column].to_numpy(float)
    return np.where(np.isnan(values), base, values)


def indicator_cycles(ind: Indicator, data: ConditionData, level: str = "hospital") -> pd.DataFrame:
    """The condition's care cycles with this indicator's value in column 'y' (NaN = not part of it), the
    unit at `level` in 'unit' and the extra covariates its case-mix model uses (a PROM's baseline score):
    what a case-mix model, also one fitted elsewhere, predicts expected values from. Not for survival
    indicators (their value is a follow-up time with censoring: vbhc.survival.follow_up)."""
    if ind.kind in SURVIVAL_KINDS:
        raise ValueError(f"{ind.id!r} is a survival indicator: its cycles are followed with vbhc.survival.follow_up")
    base = data.cycles.assign(unit=unit_labels(data.cycles, level).to_numpy())
    frame, _ = _outcome_column(ind, data, base)
    return frame


def value_table(
    result: IndicatorResult, outcome_indicator: str, cost_indicator: str = "cost_per_cycle"
) -> pd.DataFrame:
    """Each unit's adjusted outcome next to its adjusted cost per care cycle, with its value quadrant."""
    table = result.table
    outcome = table[table["indicator"] == outcome_indicator]
    cost = table[table["indicator"] == cost_indicator]
    if outcome.empty or cost.empty:
        raise KeyError(f"indicator table has no {outcome_indicator!r} or {cost_indicator!r} rows")
    ind = result.data.condition.indicator(outcome_indicator)
    return value_view(
        outcome,
        cost,
        outcome_higher_is_better=ind.higher_is_better,
        outcome_target=float(outcome["target"].iloc[0]),
        cost_target=float(cost["target"].iloc[0]),
    )


def funnel_curve(
    rows: pd.DataFrame, levels: Sequence[float] = DEFAULT_LEVELS, points: int = 120, grid: Sequence[float] | None = None
) -> pd.DataFrame:
    """The funnel's control limits along a grid of precision (n), for drawing; the same method (and
    over-dispersion widening) as the units' own limits in the table, so points and lines always agree."""
    if rows.empty or rows["kind"].iloc[0] == "volume":
        return pd.DataFrame(columns=["precision", "level", "lower", "upper"])
    kind = rows["kind"].iloc[0]
    target = float(rows["target"].iloc[0])
    method = str(rows["dispersion_method"].iloc[0])
    top = max(float(np.nanmax(rows["precision"])) * 1.1, 10.0)
    if grid is None:
        grid = np.unique(np.round(np.geomspace(max(float(np.nanmin(rows["precision"])) * 0.8, 5.0), top, points)))
    grid = np.asarray(grid, dtype=float)
    mean_like = kind in CONTINUOUS_KINDS
    sd = float(rows["limit_sd"].iloc[0]) if mean_like else None
    sub_kind = "mean" if mean_like else "proportion"
    if kind in SURVIVAL_KINDS:  # precision is the expected number of deaths; limits on the survival scale
        limits = survival.survival_funnel(
            target,
            grid,
            levels,
            method=method,
            phi=float(rows["phi"].iloc[0]),
            tau2=float(rows["tau2"].iloc[0]),
        )
    elif method in ("multiplicative", "additive"):
        limits = benchmark.dispersed_limits(
            sub_kind,
            target,
            grid,
            levels,
            method=method,
            phi=float(rows["phi"].iloc[0]),
            tau2=float(rows["tau2"].iloc[0]),
            sd=sd,
        )
    elif mean_like:
        limits = benchmark.funnel_limits_mean(target, sd, grid, levels)
    else:
        limits = benchmark.funnel_limits_proportion(target, grid, levels)
    frames = []
    for level in levels:
        sfx = benchmark.level_suffix(level)
        frames.append(
            pd.DataFrame(
                {
                    "precision": grid,
                    "level": level,
                    "lower": limits[f"lower_{sfx}"].to_numpy(),
                    "upper": limits[f"upper_{sfx}"].to_numpy(),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def signal_cycles(result: IndicatorResult, indicator: str, unit: str, last_days: int = 92) -> pd.DataFrame:
    """The unit's care cycles with the unwanted outcome in the last `last_days` of data, for discussion.

    Unwanted = the event for lower-is-better indicators (e.g. a complication), its absence for
    higher-is-better ones (e.g. no radical resection). Sorted with the least expected first: an event in a
    low-risk patient is the one a team learns most from. Pseudonymous cycle ids only.
    """
    ind = result.data.condition.indicator(indicator)
    part = unit_cycle_values(result, indicator, unit)
    if part.empty:
        return part.assign(expected=pd.Series(dtype=float))
    since = pd.Timestamp(part["index_date"].max()) - pd.Timedelta(days=last_days)
    unwanted = 1.0 if ind.direction == "lower" else 0.0
    risk = part["expected"] if ind.direction == "lower" else 1 - part["expected"]
    hits = part[(pd.to_datetime(part["index_date"]) > since) & (part["observed"] == unwanted)]
    out = hits.assign(expected=risk.loc[hits.index])
    return out.sort_values(["expected", "cycle_id"])[["cycle_id", "index_date", "observed", "expected"]].reset_index(
        drop=True
    )


def cost_by_activity(result: IndicatorResult) -> pd.DataFrame:
    """Cost per care cycle by TDABC activity for every unit at the result's level."""
    data = result.data
    if data.cost_lines is None or data.cost_lines.empty:
        return pd.DataFrame(columns=["unit", "activity", "cycles", "quantity", "total_cost", "cost_per_cycle", "share"])
    return cost_breakdown(data.cost_lines, data.cycles, unit_labels(data.cycles, result.level))


def prom_response_by_timepoint(result: IndicatorResult) -> pd.DataFrame:
    """Response rate per unit, instrument and timepoint (eligible = the timepoint has passed)."""
    data = result.data
    base = data.cycles.assign(unit=unit_labels(data.cycles, result.level).to_numpy())
    frames = []
    for use in data.condition.proms:
        for tp in use.timepoints:
            days = data.condition.timepoint(tp).days
            rates = proms.response_rate(base, data.scores, use.instrument, tp, days, data.as_of, "unit")
            frames.append(rates.assign(instrument=use.instrument, timepoint=tp))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _scale_scores(result: IndicatorResult, instrument: str, scale: str) -> tuple[pd.DataFrame, np.ndarray]:
    """The scores of one PROM scale and the row of each one's care cycle in result.data.cycles (-1: none).

    One hash lookup (pyarrow, as proms.of_cycles) for every column taken from the cycles: mapping text ids through
    pandas, once per column, was ~1 s of the PROM page's 1.2 s of CPU at 1,000,000 care cycles."""
    data = result.data
    s = data.scores
    part = s[(s["instrument"] == instrument) & (s["scale"] == scale)].dropna(subset=["score"])
    ids = pa.array(data.cycles["cycle_id"].astype(str), type=pa.string())

    def rows_of(values: pd.Series | pd.Index) -> np.ndarray:
        found = pc.index_in(pa.array(values.astype(str), type=pa.string()), value_set=ids)
        return found.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)

    cycle_ids = part["cycle_id"]
    if isinstance(cycle_ids.dtype, pd.CategoricalDtype):  # the categories once, then each row by its code
        rows = np.append(rows_of(cycle_ids.cat.categories), -1)[cycle_ids.cat.codes.to_numpy()]
    else:
        rows = rows_of(cycle_ids)
    return part, rows


def _taken(values: pd.Series, rows: np.ndarray) -> np.ndarray:
    """values (one per care cycle) at `rows`, NaN where a row is -1 (as Series.map leaves an unknown id)."""
    known = np.append(np.asarray(values.to_numpy(), dtype=object), np.nan)  # row -1 takes the appended NaN
    return known[rows]


def _text(values: pd.Series) -> np.ndarray:
    """values.astype(str).to_numpy(); a categorical's categories are made text once, not each of its rows."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        return _taken(values.cat.categories.astype(str).to_series(), values.cat.codes.to_numpy())
    return values.astype(str).to_numpy()


def prom_scores_for(result: IndicatorResult, instrument: str, scale: str) -> pd.DataFrame:
    """Scores of one PROM scale per cycle and timepoint, with the cycle's unit (for distributions)."""
    part, rows = _scale_scores(result, instrument, scale)
    return pd.DataFrame(
        {
            "unit": _taken(unit_labels(result.data.cycles, result.level), rows),
            "timepoint": _text(part["timepoint"]),
            "score": part["score"].to_numpy(float),
        }
    )


def prom_score_cells(result: IndicatorResult, instrument: str, scale: str) -> pd.DataFrame:
    """prom_scores_for with each score's hospital and index year (columns unit, hospital, timepoint, year): what
    vbhc.disclosure.comparison_group_withheld judges a comparison group's histogram by over the grid of periods."""
    cycles = result.data.cycles
    part, rows = _scale_scores(result, instrument, scale)
    # the index year as text through the few distinct years (not one string made per care cycle)
    year = pd.to_datetime(cycles["index_date"]).dt.year
    codes, distinct = pd.factorize(year, use_na_sentinel=False)
    text = np.asarray(pd.Series(distinct, dtype=year.dtype).astype(str), dtype=object)[codes]
    return pd.DataFrame(
        {
            "unit": _taken(unit_labels(cycles, result.level), rows),
            "hospital": _taken(cycles["hospital"].astype(str), rows),
            "timepoint": _text(part["timepoint"]),
            "year": _taken(pd.Series(text), rows),
        }
    )


def restrict(
    data: ConditionData, period: str | Period | None = None, hospitals: Sequence[str] | None = None
) -> ConditionData:
    """The same data narrowed to a period and/or comparison group, without going back to the database.

    Gives the rows load_condition_data(condition, period, hospitals=...) reads. A comparison group (`hospitals`,
    or `data` already one) carries the whole registry's data of the same period as its `reference`: its
    expected values come from the registry's models recalibrated to the group, not from models refitted on the
    group. Narrowing `data` to its own period keeps `data` itself as the reference, with the models it holds.
    """
    p = parse_period(period)
    cycles = data.cycles
    keep = pd.Series(True, index=cycles.index)
    if p is not None:
        dates = pd.to_datetime(cycles["index_date"])
        keep &= (dates >= pd.Timestamp(p.start)) & (dates <= pd.Timestamp(p.end))
    if hospitals:
        keep &= cycles["hospital"].astype(str).isin(list(hospitals))
    cycles = cycles[keep].reset_index(drop=True)
    ids = pa.array(cycles["cycle_id"].astype(str), type=pa.string())

    def only(frame: pd.DataFrame | None) -> pd.DataFrame | None:
        if frame is None:
            return None
        return frame[proms.of_cycles(frame["cycle_id"], ids)].reset_index(drop=True)

    reference = data.reference
    if reference is None and hospitals:
        reference = data
    if reference is not None and p is not None and p != reference.period:
        reference = restrict(reference, p)
    return ConditionData(
        data.condition,
        p,
        cycles,
        only(data.scores),
        only(data.cost),
        data.as_of,
        only(data.cost_lines),
        reference=reference,
    )
