"""PROM instrument scoring: item responses -> scale scores, change from baseline, MIC, response rates.

Item responses arrive long (one row per answered item). Scoring pivots them once to a wide numpy matrix per
instrument (rows = cycle x timepoint, columns = the catalog's items) and computes every scale with array
arithmetic, because the benchmark scores tens of millions of item rows and a per-row or per-group Python loop
would take minutes.

Scoring rules (sources in vbhc/data/reference/README.md and the docstrings below):
- EQ-5D-5L index: Dutch value set (Versteegh 2016), computed in integer thousandths from the published
  3-decimal coefficients, so it is exact to 3 decimals; missing when any of the 5 dimensions is missing.
- EORTC QLQ-C30: scoring manual 3rd ed. with the half-items rule; summary score (Giesinger 2016) only
  when all 13 component scales are available.
- Oxford Hip/Knee Score: 0-48; 1-2 missing items imputed with the patient's mean item (kept unrounded);
  more than 2 missing -> missing.
- PROMIS-10 (v1.2): GPH/GMH raw sums -> T-score table; missing when any of the 4 items is missing.

An item value outside the catalog range (or a non-integer value for an ordinal item) is treated as missing,
never clipped: the importer rejects such values, so this only guards the scores against bad data.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from functools import cache
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from vbhc.catalog import Catalog, Instrument, default_catalog
from vbhc.settings import reference_dir

REFERENCE_DIR = reference_dir()

RESPONSE_COLUMNS = ("cycle_id", "instrument", "timepoint", "item", "value", "completed_date")
SCORE_COLUMNS = ("cycle_id", "instrument", "timepoint", "scale", "score", "completed_date")

EQ5D_DIMENSIONS = ("MO", "SC", "UA", "PD", "AD")

#: EORTC QLQ-C30 v3.0 scales: (type, item numbers). Scoring Manual 3rd ed. (Fayers et al. 2001).
QLQ_C30_SCALES: dict[str, tuple[str, tuple[int, ...]]] = {
    "QL2": ("global", (29, 30)),
    "PF2": ("functional", (1, 2, 3, 4, 5)),
    "RF2": ("functional", (6, 7)),
    "EF": ("functional", (21, 22, 23, 24)),
    "CF": ("functional", (20, 25)),
    "SF": ("functional", (26, 27)),
    "FA": ("symptom", (10, 12, 18)),
    "NV": ("symptom", (14, 15)),
    "PA": ("symptom", (9, 19)),
    "DY": ("symptom", (8,)),
    "SL": ("symptom", (11,)),
    "AP": ("symptom", (13,)),
    "CO": ("symptom", (16,)),
    "DI": ("symptom", (17,)),
    "FI": ("symptom", (28,)),
}
#: Components of the C30 summary score (Giesinger et al. 2016); symptom scales enter as 100 - score.
C30_SUMMARY_FUNCTIONAL = ("PF2", "RF2", "EF", "CF", "SF")
C30_SUMMARY_SYMPTOM = ("FA", "NV", "PA", "DY", "SL", "AP", "CO", "DI")

#: PROMIS Global Health v1.2 summary scores (Hays et al. 2009); Global07 is recoded before summing.
PROMIS10_SUMMARIES: dict[str, tuple[str, ...]] = {
    "GPH": ("Global03", "Global06", "Global07", "Global08r"),
    "GMH": ("Global02", "Global04", "Global05", "Global10r"),
}
#: Global07 pain 0-10 -> 1-5 (0 -> 5, 1-3 -> 4, 4-6 -> 3, 7-9 -> 2, 10 -> 1), indexed by the raw value.
PROMIS10_GLOBAL07_RECODE = np.array([5, 4, 4, 4, 3, 3, 3, 2, 2, 2, 1], dtype=np.float64)

#: Oxford scores: more missing items than this -> no total (Murray 2007; OKS scoring guide 2018).
OXFORD_MAX_MISSING = 2

#: Items that are not ordinal codes and may hold non-integer values.
_CONTINUOUS_ITEMS = {("eq5d5l_nl", "VAS")}


# --- reference tables ---------------------------------------------------------------------------------


@cache
def eq5d5l_value_set_thousandths() -> tuple[int, np.ndarray]:
    """(constant, decrements[5 dims, 6 levels]) of the Dutch EQ-5D-5L value set in integer thousandths.

    Integers, because the published coefficients have 3 decimals: summing them exactly gives an index that is
    exactly a 3-decimal number, with no floating-point rounding to argue about.
    """
    path = REFERENCE_DIR / "eq5d5l_nl_value_set.csv"
    table = pd.read_csv(path, dtype={"term": str, "coefficient": float})
    coef = dict(zip(table["term"], np.rint(table["coefficient"].to_numpy() * 1000).astype(np.int64), strict=True))
    if coef.get("full_health") != 1000:
        raise ValueError(f"{path}: expected full_health = 1")
    levels = np.zeros((len(EQ5D_DIMENSIONS), 6), dtype=np.int64)  # column 0 unused (levels are 1-5)
    for d, dim in enumerate(EQ5D_DIMENSIONS):
        for level in range(1, 6):
            term = f"{dim}{level}"
            if term not in coef:
                raise ValueError(f"{path}: term {term!r} missing")
            levels[d, level] = coef[term]
    return int(coef["constant"]), levels


@cache
def promis10_tscores() -> pd.DataFrame:
    """PROMIS Global Health raw score (4-20) -> T-score/SE table, indexed by raw score."""
    table = pd.read_csv(REFERENCE_DIR / "promis10_global_health_tscores.csv").set_index("raw_score")
    if list(table.index) != list(range(4, 21)):
        raise ValueError("promis10_global_health_tscores.csv must list raw scores 4-20 in order")
    return table


# --- EQ-5D-5L -----------------------------------------------------------------------------------------


def _eq5d5l_from_levels(levels: np.ndarray) -> np.ndarray:
    """Index per row of an (n, 5) array of levels; NaN where any level is missing or not an integer 1-5."""
    levels = np.asarray(levels, dtype=np.float64)
    if levels.ndim != 2 or levels.shape[1] != 5:
        raise ValueError(f"expected an (n, 5) array of levels in the order MO SC UA PD AD, got {levels.shape}")
    valid = np.all((levels >= 1) & (levels <= 5) & (levels == np.floor(levels)), axis=1)
    lv = np.where(valid[:, None], levels, 1).astype(np.intp)
    constant, table = eq5d5l_value_set_thousandths()
    total = 1000 + table[np.arange(5), lv].sum(axis=1) + constant * (lv > 1).any(axis=1)
    return np.where(valid, total / 1000.0, np.nan)


def eq5d5l_index(states: str | int | Sequence[str | int] | np.ndarray | pd.Series) -> Any:
    """EQ-5D-5L index (Dutch value set) for 5-digit states ("23242", order MO SC UA PD AD) or an (n, 5) array.

    Returns a float for a single state, else a float array. Anything that is not a valid state gives NaN
    rather than an error, so a dashboard column with a bad code shows a gap instead of failing.
    """
    if isinstance(states, str | int | np.integer):
        return float(eq5d5l_index([states])[0])
    arr = np.asarray(states)
    if arr.ndim == 2:
        return _eq5d5l_from_levels(arr)
    text = np.asarray(pd.Series(arr, dtype=object).astype(str).to_numpy(), dtype=str)
    if text.size == 0:
        return np.array([], dtype=np.float64)
    ok_len = np.char.str_len(text) == 5
    chars = text.astype("<U5").view(np.uint32).reshape(-1, 5).astype(np.float64) - ord("0")
    chars[~ok_len] = np.nan
    return _eq5d5l_from_levels(chars)


def _score_eq5d5l(matrix: np.ndarray, col: dict[str, int]) -> dict[str, np.ndarray]:
    index = _eq5d5l_from_levels(matrix[:, [col[d] for d in EQ5D_DIMENSIONS]])
    return {"index": index, "vas": matrix[:, col["VAS"]].copy()}


# --- EORTC QLQ-C30 ------------------------------------------------------------------------------------


def _score_qlq_c30(matrix: np.ndarray, col: dict[str, int]) -> dict[str, np.ndarray]:
    """Scoring manual: mean of answered items if at least half answered, then linear transform to 0-100."""
    out: dict[str, np.ndarray] = {}
    for scale, (kind, items) in QLQ_C30_SCALES.items():
        sub = matrix[:, [col[f"q{i}"] for i in items]]
        answered = np.count_nonzero(~np.isnan(sub), axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            raw = np.nansum(sub, axis=1) / answered
        raw[2 * answered < len(items)] = np.nan
        item_range = 6.0 if kind == "global" else 3.0
        scaled = (raw - 1.0) / item_range * 100.0
        out[scale] = 100.0 - scaled if kind == "functional" else scaled
    parts = [out[s] for s in C30_SUMMARY_FUNCTIONAL] + [100.0 - out[s] for s in C30_SUMMARY_SYMPTOM]
    out["C30_SUMMARY"] = np.mean(np.column_stack(parts), axis=1)  # NaN unless all 13 are present
    return out


# --- Oxford Hip / Knee --------------------------------------------------------------------------------


def _score_oxford(matrix: np.ndarray, col: dict[str, int]) -> dict[str, np.ndarray]:
    """0-48 total; 1-2 missing items take the patient's mean item (unrounded); more missing -> NaN."""
    n_items = matrix.shape[1]
    answered = np.count_nonzero(~np.isnan(matrix), axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        total = np.nansum(matrix, axis=1) * n_items / answered
    total[answered < n_items - OXFORD_MAX_MISSING] = np.nan
    return {"total": total}


# --- PROMIS-10 ----------------------------------------------------------------------------------------


def _score_promis10(matrix: np.ndarray, col: dict[str, int]) -> dict[str, np.ndarray]:
    """Raw sum of 4 items (Global07 recoded) -> T-score table; any missing item -> NaN (no pro-rating)."""
    table = promis10_tscores()
    pain = matrix[:, col["Global07"]]
    pain_ok = ~np.isnan(pain)
    recoded = np.full(pain.shape, np.nan)
    recoded[pain_ok] = PROMIS10_GLOBAL07_RECODE[pain[pain_ok].astype(np.intp)]
    out: dict[str, np.ndarray] = {}
    for scale, items in PROMIS10_SUMMARIES.items():
        values = [recoded if item == "Global07" else matrix[:, col[item]] for item in items]
        raw = np.sum(np.column_stack(values), axis=1)
        ok = ~np.isnan(raw)
        lookup = table[f"{scale.lower()}_tscore"].to_numpy(dtype=np.float64)
        tscore = np.full(raw.shape, np.nan)
        tscore[ok] = lookup[raw[ok].astype(np.intp) - 4]
        out[scale] = tscore
    return out


_SCORERS = {
    "eq5d5l_nl": _score_eq5d5l,
    "qlq_c30": _score_qlq_c30,
    "oxford": _score_oxford,
    "promis10": _score_promis10,
}


# --- pivot long -> wide -------------------------------------------------------------------------------


def _check_columns(frame: pd.DataFrame, required: Iterable[str], what: str) -> None:
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise ValueError(f"{what} is missing column(s) {', '.join(missing)}")


def _codes(values: pd.Series, what: str, sort: bool = True) -> tuple[np.ndarray, pd.Index]:
    """Integer codes (sorted uniques by default, so output order never depends on input row order)."""
    codes, uniques = pd.factorize(values, sort=sort)
    if len(codes) and codes.min() < 0:
        raise ValueError(f"responses have missing {what}")
    return codes.astype(np.int64, copy=False), pd.Index(uniques)


def _as_datetime(values: pd.Series) -> pd.Series:
    if isinstance(values.dtype, pd.DatetimeTZDtype) or np.issubdtype(values.dtype, np.datetime64):
        return values.reset_index(drop=True)
    return pd.to_datetime(values).reset_index(drop=True)


def _datetimes_from_i8(stamps: np.ndarray, dtype: Any) -> pd.DatetimeIndex:
    """Rebuild datetimes of `dtype` (naive or tz-aware, any unit) from their int64 epoch values."""
    if isinstance(dtype, pd.DatetimeTZDtype):
        naive = pd.DatetimeIndex(stamps.view(f"M8[{dtype.unit}]"))
        return naive.tz_localize("UTC").tz_convert(dtype.tz)
    return pd.DatetimeIndex(stamps.view(dtype))


class _Long:
    """Long item responses encoded once as integer codes, so several instruments can share the work."""

    def __init__(self, responses: pd.DataFrame):
        self.cyc, self.cyc_uniques = _codes(responses["cycle_id"], "cycle_id")
        self.tp, self.tp_uniques = _codes(responses["timepoint"], "timepoint")
        self.item, item_uniques = _codes(responses["item"], "item", sort=False)
        self.item_names = pd.Index(np.asarray(item_uniques, dtype=object)).astype(str)
        value = pd.to_numeric(responses["value"], errors="coerce")
        self.value = value.to_numpy(dtype=np.float64, na_value=np.nan)
        dates = _as_datetime(responses["completed_date"])
        self.date_dtype = dates.dtype
        self.stamp = dates.array.asi8 if len(dates) else np.empty(0, np.int64)  # NaT is the int64 minimum


def _pivot(data: _Long, instrument: Instrument, rows: np.ndarray | None = None) -> tuple[pd.DataFrame, np.ndarray]:
    """Long item responses -> (keys: cycle_id, timepoint, completed_date; matrix[questionnaire, item]).

    `rows` selects this instrument's response rows (all rows when None). Unanswered items are NaN.
    Duplicate answers to one item in one questionnaire (which the importer should prevent) are resolved
    deterministically: the latest completed_date wins, then the highest value.
    """

    def pick(a: np.ndarray) -> np.ndarray:
        return a if rows is None else a[rows]

    item_ids = [i.id for i in instrument.items]
    n_items = len(item_ids)
    n_tp = max(len(data.tp_uniques), 1)
    grp, grp_uniques = pd.factorize(pick(data.cyc) * n_tp + pick(data.tp), sort=True)
    n_rows = len(grp_uniques)

    mapping = np.append(pd.Index(item_ids).get_indexer(data.item_names), -1)
    col = mapping[pick(data.item)]
    if (col < 0).any():
        unknown = sorted(set(data.item_names[np.unique(pick(data.item)[col < 0])]))
        raise ValueError(f"items not in instrument {instrument.id!r}: {', '.join(unknown)}")

    value, stamp = pick(data.value), pick(data.stamp)
    answered = ~np.isnan(value)
    lin = grp[answered].astype(np.int64) * n_items + col[answered]
    val = value[answered]
    matrix = np.full(n_rows * n_items, np.nan)
    matrix[lin] = val
    if np.count_nonzero(~np.isnan(matrix)) != len(lin):  # some item answered twice in one questionnaire
        dup = pd.Series(lin).duplicated(keep=False).to_numpy()
        d_lin, d_stamp, d_val = lin[dup], stamp[answered][dup], val[dup]
        order = np.lexsort((d_val, d_stamp, d_lin))
        d_lin, d_val = d_lin[order], d_val[order]
        last = np.append(d_lin[1:] != d_lin[:-1], True)
        matrix[d_lin[last]] = d_val[last]
    matrix = _drop_invalid(matrix.reshape(n_rows, n_items), instrument)

    latest = np.full(n_rows, np.iinfo(np.int64).min)  # NaT unless some item of the questionnaire has a date
    np.maximum.at(latest, grp, stamp)
    keys = pd.DataFrame(
        {
            "cycle_id": data.cyc_uniques.take(grp_uniques // n_tp),
            "timepoint": data.tp_uniques.take(grp_uniques % n_tp),
            "completed_date": _datetimes_from_i8(latest, data.date_dtype),
        }
    )
    return keys, matrix


def _drop_invalid(matrix: np.ndarray, instrument: Instrument) -> np.ndarray:
    """Out-of-range or non-integer codes count as unanswered (in place; columns in the catalog's item order)."""
    for j, item in enumerate(instrument.items):
        column = matrix[:, j]
        bad = (column < item.min) | (column > item.max)
        if (instrument.scoring, item.id) not in _CONTINUOUS_ITEMS:
            bad |= column != np.floor(column)
        column[bad & ~np.isnan(column)] = np.nan
    return matrix


# --- public API ---------------------------------------------------------------------------------------


def score_instrument(responses: pd.DataFrame, instrument: Instrument) -> pd.DataFrame:
    """Score one instrument's long item responses: one row per (cycle_id, timepoint) with any response.

    Columns: cycle_id, timepoint, completed_date (latest item date), then one float column per catalog scale.
    A score is NaN where the instrument's missing-data rule says it cannot be computed. Rows are sorted by
    cycle_id and timepoint, so the result does not depend on the order of the input rows.
    """
    _check_columns(responses, ("cycle_id", "timepoint", "item", "value", "completed_date"), "responses")
    if "instrument" in responses.columns:
        found = {str(i) for i in pd.unique(responses["instrument"])}
        if found - {instrument.id}:
            others = ", ".join(sorted(found - {instrument.id}))
            raise ValueError(f"score_instrument({instrument.id!r}) got responses for {others}")
    return _score_instrument(_Long(responses), instrument)


def _score_instrument(data: _Long, instrument: Instrument, rows: np.ndarray | None = None) -> pd.DataFrame:
    scorer = _scorer(instrument)
    keys, matrix = _pivot(data, instrument, rows)
    return _score_matrix(keys, matrix, instrument, scorer)


def _scorer(instrument: Instrument):
    scorer = _SCORERS.get(instrument.scoring)
    if scorer is None:
        raise ValueError(f"no scoring rules for {instrument.scoring!r} (instrument {instrument.id!r})")
    return scorer


def _score_matrix(keys: pd.DataFrame, matrix: np.ndarray, instrument: Instrument, scorer) -> pd.DataFrame:
    """The scales of one questionnaire per row of `keys` from its (cleaned) item matrix."""
    col = {item.id: j for j, item in enumerate(instrument.items)}
    scores = scorer(matrix, col)
    for scale in instrument.scales:
        if scale.id not in scores:
            raise ValueError(f"scoring {instrument.scoring!r} does not define scale {scale.id!r}")
        keys[scale.id] = scores[scale.id].astype(np.float64, copy=False)
    return keys


def score_responses(responses: pd.DataFrame, catalog: Catalog | None = None) -> pd.DataFrame:
    """Score any mix of instruments into long scores.

    Columns: cycle_id, instrument, timepoint, scale, score, completed_date.
    Every questionnaire with at least one item row yields one row per scale of its instrument, even when the
    score is NaN: "responded but not scorable" must stay visible (response rates count it, score indicators
    drop it). instrument and scale are categoricals (memory: tens of millions of rows). Rows are ordered by
    instrument, cycle_id, timepoint and the catalog's scale order.
    """
    _check_columns(responses, RESPONSE_COLUMNS, "responses")
    catalog = catalog or default_catalog()
    inst_codes, inst_objs = _codes(responses["instrument"], "instrument")
    inst_uniques = [str(i) for i in inst_objs]
    unknown = [i for i in inst_uniques if i not in catalog.instruments]
    if unknown:
        raise ValueError(f"unknown instrument(s): {', '.join(map(str, unknown))}")
    data = _Long(responses)
    wides = []
    for code, inst_id in enumerate(inst_uniques):
        rows = None if len(inst_uniques) == 1 else np.flatnonzero(inst_codes == code)
        wides.append(_score_instrument(data, catalog.instruments[inst_id], rows))
    if not wides:
        return pd.DataFrame(
            {
                "cycle_id": responses["cycle_id"].iloc[:0],
                "instrument": pd.Categorical([]),
                "timepoint": responses["timepoint"].iloc[:0],
                "scale": pd.Categorical([]),
                "score": np.array([], dtype=np.float64),
                "completed_date": _as_datetime(responses["completed_date"]).iloc[:0],
            }
        ).reset_index(drop=True)
    return _long_scores([catalog.instruments[i] for i in inst_uniques], wides)


def _long_scores(instruments: Sequence[Instrument], wides: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """One row per questionnaire and scale, from each instrument's wide scores (instruments in sorted order)."""
    inst_uniques = [i.id for i in instruments]
    scale_ids: list[str] = []
    for instrument in instruments:
        scale_ids += [s.id for s in instrument.scales if s.id not in scale_ids]
    parts: list[pd.DataFrame] = []
    for code, (instrument, wide) in enumerate(zip(instruments, wides, strict=True)):
        k, n = len(instrument.scales), len(wide)
        take = np.repeat(np.arange(n), k)
        scale_code = np.tile([scale_ids.index(s.id) for s in instrument.scales], n)
        parts.append(
            pd.DataFrame(
                {
                    "cycle_id": wide["cycle_id"].take(take).reset_index(drop=True),
                    "instrument": pd.Categorical.from_codes(np.full(n * k, code), categories=inst_uniques),
                    "timepoint": wide["timepoint"].take(take).reset_index(drop=True),
                    "scale": pd.Categorical.from_codes(scale_code, categories=scale_ids),
                    "score": wide[[s.id for s in instrument.scales]].to_numpy(dtype=np.float64).ravel(),
                    "completed_date": wide["completed_date"].take(take).reset_index(drop=True),
                }
            )
        )
    return pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]


def score_questionnaires(questionnaires: Mapping[str, pd.DataFrame], catalog: Catalog | None = None) -> pd.DataFrame:
    """score_responses for questionnaires already pivoted (by the database: vbhc.registry.prom_questionnaires).

    `questionnaires` maps an instrument id to one row per questionnaire: cycle_id, timepoint, completed_date
    (latest item date) and one column per catalog item of the instrument (NaN = not answered). The result is
    the same frame score_responses gives for the same questionnaires' item rows; an instrument without rows
    is absent, as it is from item rows. Exact because a questionnaire holds each item once (the registry's
    unique key) and the same cleaning and scoring run on the same matrix.
    """
    catalog = catalog or default_catalog()
    unknown = sorted(set(questionnaires) - set(catalog.instruments))
    if unknown:
        raise ValueError(f"unknown instrument(s): {', '.join(unknown)}")
    instruments, wides = [], []
    for inst_id in sorted(i for i, frame in questionnaires.items() if len(frame)):
        instrument = catalog.instruments[inst_id]
        frame = questionnaires[inst_id]
        item_ids = [i.id for i in instrument.items]
        _check_columns(frame, ("cycle_id", "timepoint", "completed_date", *item_ids), f"{inst_id} questionnaires")
        frame = frame.sort_values(["cycle_id", "timepoint"], ignore_index=True)
        matrix = _drop_invalid(frame[item_ids].to_numpy(dtype=np.float64, na_value=np.nan, copy=True), instrument)
        keys = frame[["cycle_id", "timepoint", "completed_date"]]
        instruments.append(instrument)
        wides.append(_score_matrix(keys.copy(), matrix, instrument, _scorer(instrument)))
    if not wides:
        return pd.DataFrame(
            {
                "cycle_id": pd.Series(dtype=object),
                "instrument": pd.Categorical([]),
                "timepoint": pd.Series(dtype=object),
                "scale": pd.Categorical([]),
                "score": np.array([], dtype=np.float64),
                "completed_date": pd.Series(dtype="datetime64[ns]"),
            }
        )
    return _long_scores(instruments, wides)


def prom_change(
    scores_long: pd.DataFrame, instrument: Instrument, scale: str, timepoint: str, baseline: str = "baseline"
) -> pd.DataFrame:
    """Per cycle with both scores: baseline_score, followup_score, change (follow-up - baseline), reached_mic.

    reached_mic compares the improvement with the scale's MIC: improvement = change when higher is better,
    -change when lower is better (e.g. QLQ-C30 symptom scales). A tolerance of 1e-9 keeps a change of exactly
    the MIC (0.788 - 0.708 = 0.08 for the EQ-5D index) from failing on floating-point noise.
    completed_date is the follow-up questionnaire's date.
    """
    _check_columns(scores_long, ("cycle_id", "instrument", "timepoint", "scale", "score"), "scores_long")
    spec = instrument.scale(scale)
    mask = (scores_long["instrument"] == instrument.id) & (scores_long["scale"] == scale)
    cols = ["cycle_id", "score"] + (["completed_date"] if "completed_date" in scores_long.columns else [])
    frames = []
    for tp, name in ((baseline, "baseline_score"), (timepoint, "followup_score")):
        part = scores_long.loc[mask & (scores_long["timepoint"] == tp), cols].dropna(subset=["score"])
        if part["cycle_id"].duplicated().any():
            raise ValueError(f"more than one {instrument.id}/{scale} score per cycle at timepoint {tp!r}")
        frames.append(part.rename(columns={"score": name}))
    base = frames[0].drop(columns="completed_date", errors="ignore")
    out = base.merge(frames[1], on="cycle_id", how="inner").sort_values("cycle_id", ignore_index=True)
    out["change"] = out["followup_score"] - out["baseline_score"]
    improvement = out["change"] if spec.higher_is_better else -out["change"]
    out["reached_mic"] = (improvement >= spec.mic - 1e-9 * max(1.0, spec.mic)).astype(bool)
    order = ["cycle_id", "baseline_score", "followup_score", "change", "reached_mic"]
    return out[order + [c for c in out.columns if c not in order]]


def of_cycles(cycle_ids: pd.Series, ids: pa.Array) -> np.ndarray:
    """Which rows belong to the care cycles `ids` (text), by pyarrow's hash lookup: pandas' isin on text turns millions
    of ids into Python strings (1 s for a comparison group at 1,000,000 cycles). A categorical column is matched
    on its categories, then its codes."""

    def member(values: pd.Series | pd.Index) -> np.ndarray:
        found = pc.is_in(pa.array(values.astype(str), type=pa.string()), value_set=ids)
        return found.to_numpy(zero_copy_only=False).astype(bool)

    if isinstance(cycle_ids.dtype, pd.CategoricalDtype):
        known = member(cycle_ids.cat.categories)
        return np.append(known, False)[cycle_ids.cat.codes.to_numpy()]  # code -1 (no id) takes the appended False
    return member(cycle_ids)


def response_rate(
    cycles: pd.DataFrame,
    responses_or_scores: pd.DataFrame,
    instrument: str,
    timepoint: str,
    timepoint_days: int,
    as_of: pd.Timestamp,
    by: str | list[str],
) -> pd.DataFrame:
    """Share of eligible cycles with a questionnaire at a timepoint, per unit, with a Wilson 95% CI.

    Eligible: index_date + timepoint_days <= as_of (the timepoint has passed; a missing index_date is never
    eligible). Responded: eligible and at least one item (or score) row for the instrument and timepoint,
    completed on or before as_of when a completed_date is given (so a report "as of" a past date is
    reproducible). Every unit with a cycle appears; response_rate and the CI are NaN with 0 eligible.
    """
    keys = [by] if isinstance(by, str) else list(by)
    _check_columns(cycles, ("cycle_id", "index_date", *keys), "cycles")
    eligible, responded = response_flags(cycles, responses_or_scores, instrument, timepoint, timepoint_days, as_of)
    counts = (
        pd.DataFrame({"eligible": eligible.astype(np.int64), "responded": responded.astype(np.int64)})
        .groupby([cycles[k].reset_index(drop=True) for k in keys], dropna=False, observed=True, sort=True)
        .sum()
        .reset_index()
    )
    rate, low, high = response_ci(
        counts["eligible"].to_numpy(dtype=np.float64), counts["responded"].to_numpy(np.float64)
    )
    counts["response_rate"] = rate
    counts["ci_low"] = low
    counts["ci_high"] = high
    return counts


def response_flags(
    cycles: pd.DataFrame,
    responses_or_scores: pd.DataFrame,
    instrument: str,
    timepoint: str,
    timepoint_days: int,
    as_of: pd.Timestamp,
) -> tuple[np.ndarray, np.ndarray]:
    """Per cycle: whether it is eligible and whether it responded, as response_rate counts them (one cycle's flags
    depend on that cycle alone, so a comparison group takes its cycles' flags of the registry's)."""
    _check_columns(cycles, ("cycle_id", "index_date"), "cycles")
    _check_columns(responses_or_scores, ("cycle_id", "instrument", "timepoint"), "responses_or_scores")
    as_of = pd.Timestamp(as_of)
    index_date = _as_datetime(cycles["index_date"])
    eligible = ((index_date + pd.Timedelta(days=int(timepoint_days))) <= as_of).to_numpy(dtype=bool)

    r = responses_or_scores
    hit = (r["instrument"] == instrument) & (r["timepoint"] == timepoint)
    if "completed_date" in r.columns:
        hit &= ~(_as_datetime(r["completed_date"]) > as_of).to_numpy()
    answered_ids = _distinct_ids(r.loc[hit.to_numpy(dtype=bool), "cycle_id"])
    responded = eligible & of_cycles(cycles["cycle_id"], answered_ids)
    return eligible, responded


def _distinct_ids(ids: pd.Series) -> pa.Array:
    """The distinct cycle ids of `ids` as text (a missing one as a null), for a membership test (of_cycles): a
    categorical column's (the PROM scores') from the categories its rows use, without making text of every row.
    Why: the text of a condition's answered questionnaires' ids (1.3M rows at 1,000,000 care cycles) was the largest
    step of the response rate's memory (+150 MB there)."""
    if not isinstance(ids.dtype, pd.CategoricalDtype):
        return pa.array(pd.unique(ids.astype(str)), type=pa.string())
    codes = ids.cat.codes.to_numpy()
    found = pa.array(ids.cat.categories[np.unique(codes[codes >= 0])].astype(str), type=pa.string())
    return pa.concat_arrays([found, pa.nulls(1, pa.string())]) if (codes < 0).any() else found


def response_ci(n: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Response rate x / n with its Wilson 95% CI per unit (NaN with 0 eligible), as response_rate gives them."""
    n, x = np.asarray(n, dtype=np.float64), np.asarray(x, dtype=np.float64)
    has = n > 0
    rate = np.full(len(n), np.nan)
    low = np.full(len(n), np.nan)
    high = np.full(len(n), np.nan)
    rate[has] = x[has] / n[has]
    if has.any():
        from statsmodels.stats.proportion import proportion_confint  # seconds to import: only when needed

        low[has], high[has] = proportion_confint(x[has], n[has], alpha=0.05, method="wilson")
    return rate, low, high
