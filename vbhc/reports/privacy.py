"""Small-number and privacy rules shared by every export (Excel, PDF).

Reports leave the hospital (care teams, the board, external parties), so a figure about very few patients
must not be in them: one event among five care cycles can identify a patient. The rule here is the one the
quality directorate applies: a unit × indicator based on fewer care cycles than the threshold (default 10,
VBHC_SUPPRESS_BELOW) is withheld: its number of care cycles, observed and expected values and everything
derived from them (O/E, rates, means, confidence intervals, the control limits at its n and its position).
Such cells show a neutral marker ("withheld", "afgeschermd") explained by a footnote, and every file states the
rules applied.

A withheld cell must not be recoverable from what the same file shows: the benchmark is computed on every unit,
so its totals minus the shown units would give a lone withheld cell back. Hence secondary (complementary)
suppression (vbhc.disclosure): per indicator, PROM timepoint and unit cost breakdown either no cell or at least
two are withheld, more until no withheld count is determined by the totals, and a unit's cells elsewhere that
repeat a withheld count are withheld too. Secondary cells show the same marker (the reader cannot tell which
of the withheld cells is the small one, and "<10" would be false for them); the footnote says so.

Periods: a file of all dates and files of each year show the same units, and a unit's years add up to its
all-dates cell, so the cells are withheld over that grid at once (grid_suppression_masks, vbhc.disclosure.
period_suppression): all dates minus the shown years gives no withheld cell back. A file with small numbers
withheld covers all dates or one calendar year (on_grid; `vbhc report` refuses a quarter, a month, a range of
years or of dates unless it holds every care cycle): a finer or shifted window is the difference of grid cells,
or differs from another by one day's patients.

Patient-level rows are never part of an export unless the caller asks for them explicitly; then they are
pseudonymised care cycles (cycle id, unit, dates, outcome values) and never carry the patient id.
"""

from __future__ import annotations

import functools
import hashlib
import sys
import threading
from collections import OrderedDict
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from vbhc.catalog import PROPORTION_KINDS
from vbhc.disclosure import complementary_suppression, once, period_suppression, reusing
from vbhc.i18n import t
from vbhc.indicators import IndicatorResult
from vbhc.registry import hospital_of, unit_labels
from vbhc.settings import suppress_below

__all__ = [
    "WITHHELD_COLUMNS",
    "GridMasks",
    "PeriodGrid",
    "SuppressionRule",
    "chart_file_datasets",
    "chart_is_patient_level",
    "cost_breakdown_forced",
    "cost_breakdown_grid_masks",
    "cost_breakdown_mask",
    "grid_frame_masks",
    "grid_frames",
    "grid_label",
    "grid_mask",
    "grid_masks",
    "grid_suppression_masks",
    "joint_frames",
    "joint_grid_masks",
    "on_grid",
    "page_grid_masks",
    "patient_rows",
    "prom_response_forced",
    "prom_response_grid_masks",
    "prom_response_mask",
    "suppress_cost_breakdown",
    "suppress_counts",
    "suppress_prom_response",
    "suppress_table",
    "suppressed_cells",
    "table_forced",
    "trend_mask",
    "withheld_years",
]

#: Indicator kinds whose `observed` is a count of care cycles (events, responders).
COUNT_KINDS = PROPORTION_KINDS

#: Indicator-table columns withheld for a suppressed unit × indicator (limit and position columns by prefix).
WITHHELD_COLUMNS = (
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
    "precision",
    "detectable_difference",
    "shrunken_value",
    "shrunken_lower",
    "shrunken_upper",
    "expected_rank",
    "expected_rank_lower",
    "expected_rank_upper",
)
_WITHHELD_PREFIXES = ("lower_", "upper_", "position_", "assessment_")


@dataclass(frozen=True)
class SuppressionRule:
    """Counts below `threshold` are withheld; 0 switches suppression off."""

    threshold: int = 10

    def __post_init__(self) -> None:
        if self.threshold < 0:
            raise ValueError(f"suppression threshold must be 0 or more, got {self.threshold}")

    @classmethod
    def from_settings(cls, threshold: int | None = None) -> SuppressionRule:
        """The rule for `threshold`, or the configured one (VBHC_SUPPRESS_BELOW) when None."""
        return cls(suppress_below() if threshold is None else int(threshold))

    @property
    def active(self) -> bool:
        return self.threshold > 0

    def marker(self, lang: str) -> str:
        """What a withheld cell shows: one neutral word for every withheld cell ("withheld", "afgeschermd").
        "<10" was false for a secondary cell (79 care cycles withheld to protect another unit) and for a value
        that is no count (an expected number, a rate); a marker per reason would tell a reader which withheld
        cells are small, so both reasons share the marker and the footnote states both."""
        return t("report.withheld_marker", lang)

    def applies(self, counts: pd.Series | np.ndarray) -> np.ndarray:
        """True where a count is below the threshold (a missing count counts as 0)."""
        values = pd.to_numeric(pd.Series(np.asarray(counts)), errors="coerce").fillna(0).to_numpy(float)
        if not self.active:
            return np.zeros(len(values), dtype=bool)
        return values < self.threshold

    def footnote(self, lang: str) -> str:
        """The footnote under a table with withheld cells."""
        return t("report.suppressed_footnote", lang, marker=self.marker(lang), count=self.threshold)

    def statements(self, lang: str, *, patient_rows: bool = False, spreadsheet: bool = True) -> list[str]:
        """The rules applied, one sentence each, for the cover page / methods section of a file. `spreadsheet`:
        the file opens in a spreadsheet, so it says how formula-like text is stored; a PDF holds no formulas
        and its reader would wonder which spreadsheet is meant."""
        if self.active:
            lines = [
                t("report.rule_suppression", lang, marker=self.marker(lang), count=self.threshold),
                t("report.rule_secondary", lang, marker=self.marker(lang)),
            ]
        else:
            lines = [t("report.rule_no_suppression", lang)]
        lines.append(t("report.rule_patient_rows_yes" if patient_rows else "report.rule_patient_rows_no", lang))
        if spreadsheet:
            lines.append(t("report.rule_formulas", lang))
        return lines


def _withheld(columns: pd.Index) -> list[str]:
    return [c for c in columns if c in WITHHELD_COLUMNS or str(c).startswith(_WITHHELD_PREFIXES)]


def _withhold(out: pd.DataFrame, hit: np.ndarray, columns: list[str]) -> None:
    for col in columns:
        if pd.api.types.is_numeric_dtype(out[col]) and not pd.api.types.is_bool_dtype(out[col]):
            out[col] = out[col].astype(float)
            out.loc[hit, col] = np.nan
        else:
            out[col] = out[col].astype(object)
            out.loc[hit, col] = None


def volume_bound(table: pd.DataFrame) -> np.ndarray:
    """Per row, the unit's number of care cycles from the volume indicator (an upper bound of every count of
    that unit a reader can see elsewhere); inf for the volume rows themselves and where there is none."""
    if not {"kind", "unit", "n"} <= set(table.columns):
        return np.full(len(table), np.inf)
    keys = [c for c in ("condition", "unit") if c in table]
    volume = table[table["kind"] == "volume"].drop_duplicates(keys).set_index(keys)["n"]
    bound = pd.Series(
        volume.reindex(pd.MultiIndex.from_frame(table[keys]) if len(keys) > 1 else table[keys[0]]).to_numpy(float)
    )
    bound[(table["kind"] == "volume").to_numpy()] = np.inf
    return bound.fillna(np.inf).to_numpy(float)


def own_rows(table: pd.DataFrame, own_hospitals: Sequence[str]) -> np.ndarray:
    """Rows of units of `own_hospitals` (the viewer's or the report's own hospital)."""
    if not own_hospitals or "unit" not in table:
        return np.zeros(len(table), bool)
    units = table["unit"].astype(str)
    hospital = table["hospital"].astype(str) if "hospital" in table else pd.Series("", index=table.index)
    of_unit = units.map(hospital_of)
    return (
        (hospital.where(hospital.ne("") & hospital.ne("nan") & hospital.ne("None"), of_unit))
        .isin(list(own_hospitals))
        .to_numpy()
    )


def suppression_mask(
    table: pd.DataFrame,
    rule: SuppressionRule,
    *,
    own_hospitals: Sequence[str] = (),
    include_own: bool = True,
) -> np.ndarray:
    """Which rows of an indicator table to withhold: those below the threshold plus the secondary cells that
    stop them being worked out from the benchmark and the other units (see module docstring).

    In two steps, so that a care team's page (which shows its own units' small cells) and its files (which do
    not) never differ in a way that could be combined: first the other units' small cells with their secondary
    cells, never taken from `own_hospitals` (a care team limited to them reads their patient rows, so withholding
    their cells protects nothing from it and hides its own figures); then, with `include_own`, the own small
    cells on top (only adding cells, any cell where needed). The page uses the first step, the files both: a
    file withholds a superset.
    """
    small = rule.applies(table["n"])
    if not rule.active or not small.any() or "indicator" not in table:
        return small  # without the indicator column it is unknown which rows share a benchmark
    group = [c for c in ("condition", "indicator") if c in table]
    kinds = table["kind"].astype(str).to_numpy() if "kind" in table else np.full(len(table), "")
    own = own_rows(table, own_hospitals)
    options = {
        "threshold": rule.threshold,
        "group": group,
        "observed_is_count": np.isin(kinds, COUNT_KINDS),
        "upper": volume_bound(table),
        "keep": own,
        # a group needs secondary cells when its total can be derived: it has a benchmark (the volume has none)
        "totals_shown": np.isfinite(pd.to_numeric(table["target"], errors="coerce").to_numpy(float))
        if "target" in table
        else None,
    }
    # step one never takes an own cell: the page's reader knows its own units' cells (their patient rows)
    hit = complementary_suppression(table, small & ~own, known=True, **options)
    if include_own:  # also when step one could not protect a cell without an own one
        hit = complementary_suppression(table, hit | (small & own), **options)
    return hit


#: The period label of all dates in a grid of periods (grid_suppression_masks).
ALL_DATES = ""


def on_grid(period: object) -> bool:
    """Whether a period is one whose cells grid_suppression_masks protects against the others: all dates or one
    whole calendar year. Any finer or shifted window (a quarter, a month, a range of dates, several years) is
    the difference of grid cells, or differs from one by a few days' patients, so a file with small numbers
    withheld is made for grid periods only (see module docstring)."""
    from vbhc.registry import parse_period

    parsed = parse_period(period)  # type: ignore[arg-type]
    if parsed is None:
        return True
    return (
        parsed.start.year == parsed.end.year
        and (parsed.start.month, parsed.start.day) == (1, 1)
        and (parsed.end.month, parsed.end.day) == (12, 31)
    )


def grid_suppression_masks(
    tables: Mapping[str, pd.DataFrame],
    rule: SuppressionRule,
    *,
    own_hospitals: Sequence[str] = (),
    include_own: bool = True,
    forced: Mapping[str, np.ndarray] | None = None,
) -> dict[str, np.ndarray]:
    """suppression_mask for every period of a grid at once: `tables` maps ALL_DATES ("") and each whole year
    (the period filter's choices) to that period's indicator table of the same condition, level and comparison
    group. A unit's years add up to its all-dates cell, so a cell withheld in one period must not follow from
    the others (all dates minus the shown years): vbhc.disclosure.period_suppression protects both dimensions.
    The same two steps as suppression_mask (other hospitals' small cells, then with `include_own` the own ones
    on top), so a page never shows a cell its files withhold against another period. `forced`: per period rows
    withheld whatever their count (what a table beside it withholds of the same count: joint_grid_masks).
    Returns each period's mask in the order of its table's rows."""
    labels = [p for p in tables if len(tables[p])]
    if not labels or not rule.active:
        return {p: rule.applies(t["n"]) if "n" in t else np.zeros(len(t), bool) for p, t in tables.items()}
    frame = _stacked_frame(tables, labels)
    if "indicator" not in frame or "n" not in frame:
        return {p: rule.applies(t["n"]) if "n" in t else np.zeros(len(t), bool) for p, t in tables.items()}
    params = (rule.threshold, tuple(own_hospitals))
    small, own, options = once("grid", (frame,), params, lambda: _grid_options(frame, rule, own_hospitals))
    hit = _two_steps(frame, small | _stacked(forced, tables, labels), own, include_own, dict(options))
    return _split(hit, tables, labels)


def _stacked_frame(tables: Mapping[str, pd.DataFrame], labels: Sequence[str]) -> pd.DataFrame:
    """The `labels`' tables stacked with their period in `_period` (once per grid in a joint_grid_masks call)."""
    return once(
        "stacked",
        tuple(tables[p] for p in labels),
        tuple(labels),
        lambda: pd.concat([tables[p].assign(_period=p) for p in labels], ignore_index=True),
    )


def _grid_options(
    frame: pd.DataFrame, rule: SuppressionRule, own_hospitals: Sequence[str]
) -> tuple[np.ndarray, np.ndarray, dict]:
    """grid_suppression_masks' small cells, own rows and period_suppression options of a stacked grid: the same
    in every pass of joint_grid_masks (only the forced cells change), so computed once there."""
    small = rule.applies(frame["n"])
    kinds = frame["kind"].astype(str).to_numpy() if "kind" in frame else np.full(len(frame), "")
    own = own_rows(frame, own_hospitals)
    options = {
        "threshold": rule.threshold,
        "group": [c for c in ("condition", "indicator") if c in frame],
        "period": "_period",
        "whole": ALL_DATES,
        "observed_is_count": np.isin(kinds, COUNT_KINDS),
        "keep": own,
        "totals_shown": np.isfinite(pd.to_numeric(frame["target"], errors="coerce").to_numpy(float))
        if "target" in frame
        else None,
    }
    if {"kind", "unit"} <= set(frame.columns):  # each row's count is bounded by its unit's volume in the period
        keys = [c for c in ("condition", "unit", "_period") if c in frame]
        at = pd.MultiIndex.from_frame(frame[keys].astype(str))
        volume = pd.Series(np.arange(len(frame)), index=at)[(frame["kind"] == "volume").to_numpy()]
        volume = volume[~volume.index.duplicated()]
        bound = volume.reindex(at).fillna(-1).astype(int).to_numpy().copy()
        bound[(frame["kind"] == "volume").to_numpy()] = -1
        options["bounded_by"] = bound
    return small, own, options


def _two_steps(
    frame: pd.DataFrame, primary: np.ndarray, own: np.ndarray, include_own: bool, options: dict
) -> np.ndarray:
    """vbhc.disclosure.period_suppression in suppression_mask's two steps: other hospitals' cells (never an own
    cell: the page's reader knows them), then with `include_own` the own ones on top (only adding cells)."""
    hit = period_suppression(frame, primary & ~own, known=True, **options)
    if include_own:  # also when step one could not protect a cell without an own one
        hit = period_suppression(frame, hit | (primary & own), **options)
    return hit


def _stacked(
    forced: Mapping[str, np.ndarray] | None, tables: Mapping[str, pd.DataFrame], labels: Sequence[str]
) -> np.ndarray:
    """Per-period `forced` rows stacked as the grid's frame (the non-empty `labels` in order); none where a
    period has no forced rows or they do not match its table."""
    parts = []
    for p in labels:
        got = None if forced is None else forced.get(p)
        size = len(tables[p])
        parts.append(np.asarray(got, bool) if got is not None and len(got) == size else np.zeros(size, bool))
    return np.concatenate(parts) if parts else np.zeros(0, bool)


def _split(hit: np.ndarray, tables: Mapping[str, pd.DataFrame], labels: Sequence[str]) -> dict[str, np.ndarray]:
    """A stacked grid's mask (the non-empty `labels` in order) as each period's mask in its table's row order."""
    out, start = {}, 0
    for p in labels:
        out[p] = hit[start : start + len(tables[p])]
        start += len(tables[p])
    return out | {p: np.zeros(0, bool) for p, t in tables.items() if not len(t)}


def grid_frame_masks(
    frames: Mapping[str, pd.DataFrame],
    rule: SuppressionRule,
    *,
    count: str,
    group: Sequence[str],
    unit: str = "unit",
    observed: str | None = None,
    small: str | None = None,
    forced: Mapping[str, np.ndarray] | None = None,
    link: bool = True,
    own_hospitals: Sequence[str] = (),
    include_own: bool = True,
) -> dict[str, np.ndarray]:
    """grid_suppression_masks for a per-unit frame beside the indicator table (the PROM response per timepoint,
    the cost per activity): `frames` maps all dates ("") and each whole year to that period's frame. A unit's
    years add up to its all-dates row, so protecting each period on its own let all dates minus the shown years
    give a withheld row back; vbhc.disclosure.period_suppression protects the cells that share a total
    (`group` + the period) and each `unit` × `group` line over the periods at once. `count` is the additive
    count (its rows below the threshold withheld, or those of `small` when given), `observed` a count of events
    (responders) within it, `forced` per period rows withheld whatever their count (what the indicator table
    withholds). `link`: a shown cell of the same unit in another group repeating a withheld count is withheld
    too (off where the groups are the unit's own rows: the cost per activity). Own hospitals' rows as in
    grid_suppression_masks. Returns each period's mask in its frame's row order."""
    labels = [p for p in frames if len(frames[p])]
    if not labels or not rule.active:
        return {p: rule.applies(f[small or count]) if len(f) else np.zeros(0, bool) for p, f in frames.items()}
    frame = _stacked_frame(frames, labels)
    params = (rule.threshold, small or count, tuple(own_hospitals), observed is not None)
    below, own, counted = once(
        "frame grid",
        (frame,),
        params,
        lambda: (
            np.asarray(rule.applies(frame[small or count]), bool),
            own_rows(frame, own_hospitals),
            np.full(len(frame), observed is not None),
        ),
    )
    primary = below | _stacked(forced, frames, labels)
    options = {
        "threshold": rule.threshold,
        "group": list(group),
        "period": "_period",
        "whole": ALL_DATES,
        "count": count,
        "observed": observed,
        "observed_is_count": counted,
        "unit": unit,
        "link": link,
    }
    hit = _two_steps(frame, primary, own, include_own, options)
    return _split(hit, frames, labels)


def trend_mask(trend: pd.DataFrame, rule: SuppressionRule, *, years_withheld: Collection[int] = ()) -> np.ndarray:
    """The quarters (or months) of a unit's trend (vbhc.indicators.indicator_over_time: `period`, `n`, for
    proportions `events`) to leave out of a file. A year's quarters add up to its cell in the file of that year,
    so leaving out only the small quarters let a reader take the shown ones from the year's cell and get a
    withheld quarter back: per calendar year the quarters are protected as the units of a table whose total is
    shown (vbhc.disclosure.complementary_suppression: at least two left out, further ones until no left-out count
    or event count is pinned down). Every quarter of a year in `years_withheld` (the unit's cell withheld in
    that year's file, grid_suppression_masks) is left out: its shown quarters would give the year back."""
    if "n" not in trend or not len(trend):
        return np.zeros(len(trend), bool)
    n = pd.to_numeric(trend["n"], errors="coerce").fillna(0).to_numpy(float)
    small = rule.applies(pd.Series(n))
    if not rule.active or "period" not in trend:
        return small
    years = pd.to_datetime(trend["period"]).dt.year.to_numpy()
    primary = small | np.isin(years, list(years_withheld))
    counted = "events" in trend
    frame = pd.DataFrame(
        {
            "year": years,
            "n": n,
            "observed": pd.to_numeric(trend["events"], errors="coerce").to_numpy(float) if counted else np.nan,
        }
    )
    return complementary_suppression(
        frame,
        primary,
        threshold=rule.threshold,
        group=["year"],
        observed="observed" if counted else None,
        observed_is_count=np.full(len(frame), counted),
        unit=None,
        totals_shown=np.ones(len(frame), bool),
    )


def grid_label(period: object) -> str:
    """The grid's label of a period (see on_grid): "" for all dates (or None), "2024" for a whole year."""
    from vbhc.registry import parse_period

    parsed = parse_period(period)  # type: ignore[arg-type]
    return "" if parsed is None or not on_grid(parsed) else str(parsed.start.year)


def grid_masks(
    table: pd.DataFrame,
    period: object,
    grid: Mapping[str, pd.DataFrame] | None,
    rule: SuppressionRule,
    *,
    own_hospitals: Sequence[str] = (),
    include_own: bool = True,
) -> GridMasks | None:
    """The grid of `table` (the view of `period`) with it in its place, and joint_grid_masks of every period:
    what a file withholds in its own period (grid_mask) and in the others (the years a trend must not give back,
    trend_mask), and in the PROM response and cost frames where the grid derives them (a PeriodGrid). None
    without a grid.

    Computing them takes 1-5 s a condition and every report and download of the same data asks for the same
    ones, so they are kept by a digest of everything they are computed from (masks_digest): in this process,
    and where the grid has a `keep` (a PeriodGrid of vbhc.reports.core.grid_tables: the results store of its
    dataset version) on disk, so a second `vbhc report` reads them too."""
    if grid is None or not len(table) or not {"unit", "indicator"} <= set(table.columns):
        return None
    tables = dict(grid) | {grid_label(period): table}
    frames = joint_frames(grid, tables)
    digest = masks_digest(tables, frames, grid, rule, own_hospitals, include_own, _condition_of(table))

    def compute() -> dict:
        got = _grid_masks(table, period, grid, rule, own_hospitals=own_hospitals, include_own=include_own)
        return {"masks": got.masks, "frame_masks": got.frame_masks}

    return _kept(digest, compute, getattr(grid, "keep", None), tables, frames)


def page_grid_masks(
    grid: Mapping[str, pd.DataFrame],
    rule: SuppressionRule,
    *,
    condition: object = None,
    own_hospitals: Sequence[str] = (),
) -> GridMasks:
    """joint_grid_masks of a page's grid (the hospital level; every period's table, the frames the grid derives,
    the own hospitals' rows shown: `include_own` False), kept as grid_masks keeps a file's: by the digest of
    everything they are computed from, in this process and, where the grid has a `keep`, in the results store.

    Why: a page's grid masks cost 1-3 s a condition and view, and were computed again by every server process,
    after every restart and (in the test suite) in every test that opened a limited care team's page."""
    tables = dict(grid)
    frames = joint_frames(grid, list(grid))
    digest = masks_digest(tables, frames, tables, rule, own_hospitals, False, condition)

    def compute() -> dict:
        got = joint_grid_masks(
            tables, rule, frames=frames, condition=condition, own_hospitals=own_hospitals, include_own=False
        )
        return {"masks": got.masks, "frame_masks": got.frame_masks}

    return _kept(digest, compute, getattr(grid, "keep", None), tables, frames)


def _kept(
    digest: str,
    compute: Callable[[], dict],
    keep: Callable[[str, Callable[[], dict]], dict] | None,
    tables: Mapping[str, pd.DataFrame],
    frames: Mapping[str, Mapping[str, pd.DataFrame]] | None,
) -> GridMasks:
    """The masks kept under `digest` (this process' memory, else `keep`: the results store), else computed and
    kept; as a GridMasks of `tables` and `frames` with copies of the masks (a caller cannot change the kept ones)."""
    with _kept_lock:
        kept = _kept_masks.get(digest)
        if kept is not None:
            _kept_masks.move_to_end(digest)
    if kept is None:
        kept = keep(digest, compute) if keep is not None else compute()
        if not _fits(kept, tables, frames):  # a stored file of other rows (cannot be: the digest has them): again
            kept = compute()
        with _kept_lock:
            _kept_masks[digest] = kept
            while len(_kept_masks) > _KEPT_MASKS:
                _kept_masks.popitem(last=False)
    return GridMasks(
        dict(tables),
        {p: np.array(m, bool) for p, m in kept["masks"].items()},  # copies: a caller cannot change the kept ones
        {k: dict(v) for k, v in (frames or {}).items()},
        {what: {p: np.array(m, bool) for p, m in by.items()} for what, by in kept["frame_masks"].items()},
    )


#: grid_masks' results by masks_digest, least recently used dropped first (a few KB each).
_kept_masks: OrderedDict[str, dict] = OrderedDict()
_kept_lock = threading.Lock()
_KEPT_MASKS = 128


def _fits(
    kept: object, tables: Mapping[str, pd.DataFrame], frames: Mapping[str, Mapping[str, pd.DataFrame]] | None
) -> bool:
    """Whether kept masks have a mask of the right length for every period's table and frame."""
    if not isinstance(kept, dict) or not isinstance(kept.get("masks"), dict):
        return False
    masks, frame_masks = kept["masks"], kept.get("frame_masks")
    if not isinstance(frame_masks, dict) or set(masks) != set(tables):
        return False
    if any(len(masks[p]) != len(table) for p, table in tables.items()):
        return False
    for what, by_period in (frames or {}).items():
        mine = frame_masks.get(what)
        if mine is None or set(mine) != set(by_period):
            return False
        if any(len(mine[p]) != len(frame) for p, frame in by_period.items()):
            return False
    return True


def masks_digest(
    tables: Mapping[str, pd.DataFrame],
    frames: Mapping[str, Mapping[str, pd.DataFrame]] | None,
    grid: Mapping[str, pd.DataFrame],
    rule: SuppressionRule,
    own_hospitals: Sequence[str],
    include_own: bool,
    condition: object,
) -> str:
    """A digest of everything grid_masks computes its cells from: every period's indicator table and frames (each
    frame's columns, types, index and values), the hospital grid a department or team grid follows, the rule,
    the own hospitals, include_own, the catalog's condition and the source of the code that withholds. Equal
    digests mean equal inputs, so kept masks are never another view's, another scope's or another import's."""
    digest = hashlib.sha256(_code_digest().encode())
    digest.update(repr((rule.threshold, tuple(own_hospitals), bool(include_own), repr(condition))).encode())
    _digest_grid(digest, tables, frames)
    hospitals = getattr(grid, "hospitals", None)
    if hospitals:
        digest.update(b"hospitals")
        _digest_grid(digest, dict(hospitals), joint_frames(hospitals, dict(hospitals)))
    return digest.hexdigest()


def _digest_grid(digest: Any, tables: Mapping[str, pd.DataFrame], frames: Mapping | None) -> None:
    for label in sorted(tables):
        digest.update(f"table {label}".encode())
        _digest_frame(digest, tables[label])
    for what in sorted(frames or {}):
        for label in sorted(frames[what]):
            digest.update(f"{what} {label}".encode())
            _digest_frame(digest, frames[what][label])


def _digest_frame(digest: Any, frame: pd.DataFrame) -> None:
    """A frame's shape, column names and types, index and values, into `digest`: numbers by their bytes,
    categories by their codes and labels, anything else by its type and text (so that 1 and "1" differ)."""
    digest.update(repr((frame.shape, [str(c) for c in frame.columns], [str(d) for d in frame.dtypes])).encode())
    for values in [frame.index, *(column for _, column in frame.items())]:
        dtype = values.dtype
        if isinstance(dtype, pd.CategoricalDtype):
            digest.update(repr(list(dtype.categories)).encode())
            digest.update(np.asarray(values.cat.codes if isinstance(values, pd.Series) else values.codes).tobytes())
        elif isinstance(dtype, np.dtype) and dtype.kind in "biufcmM":
            digest.update(np.ascontiguousarray(values.to_numpy()).tobytes())
        else:
            digest.update(repr([(type(v).__name__, v) for v in values.tolist()]).encode())


@functools.cache
def _code_digest() -> str:
    """The source of the modules that decide which cells are withheld (a change makes stored masks unread)."""
    from vbhc import disclosure
    from vbhc.reports import grid_audit

    digest = hashlib.sha256()
    for module in (sys.modules[__name__], disclosure, grid_audit):
        digest.update(Path(str(module.__file__)).read_bytes())
    return digest.hexdigest()


def _grid_masks(
    table: pd.DataFrame,
    period: object,
    grid: Mapping[str, pd.DataFrame],
    rule: SuppressionRule,
    *,
    own_hospitals: Sequence[str] = (),
    include_own: bool = True,
) -> GridMasks:
    """grid_masks computed (a grid with a table of units and indicators)."""
    tables = dict(grid) | {grid_label(period): table}
    hospitals = getattr(grid, "hospitals", None)
    if hospitals:  # a department or team grid: its cells follow the hospital level's (masks_from_hospitals)
        label = grid_label(period)
        source = hospitals.get(label)
        got = grid_masks(
            source if source is not None else next(iter(hospitals.values())),
            period if source is not None else next(iter(hospitals)),
            hospitals,
            rule,
            own_hospitals=own_hospitals,
            include_own=include_own,
        )
        if got is not None:
            shown = () if include_own else own_hospitals  # a file withholds the own hospitals' cells as well
            return masks_from_hospitals(got, tables, joint_frames(grid, tables), rule, shown)
    return joint_grid_masks(
        tables,
        rule,
        frames=joint_frames(grid, tables),
        condition=_condition_of(table),
        own_hospitals=own_hospitals,
        include_own=include_own,
    )


def joint_frames(
    grid: Mapping[str, pd.DataFrame] | None, periods: Collection[str]
) -> dict[str, dict[str, pd.DataFrame]] | None:
    """Every period's PROM response and cost breakdown of a PeriodGrid (joint_grid_masks' `frames`); None for a
    plain mapping of tables (no frames to derive)."""
    from vbhc.indicators import cost_by_activity, prom_response_by_timepoint

    derive = getattr(grid, "derive", None)
    if derive is None:
        return None
    computes = {"prom_response": prom_response_by_timepoint, "cost_breakdown": cost_by_activity}
    return {what: {p: derive(p, compute) for p in periods} for what, compute in computes.items()}


def _condition_of(table: pd.DataFrame) -> object:
    """The catalog's condition of an indicator table (its response-rate indicators name their PROM), or None."""
    from vbhc.catalog import default_catalog

    names = table["condition"].dropna().astype(str).unique() if "condition" in table else []
    try:
        return default_catalog().condition(names[0]) if len(names) == 1 else None
    except KeyError:
        return None


class PeriodGrid(dict):
    """The grid of a view (period -> indicator table: all dates "" and every whole year, as grid_suppression_masks
    reads them) with `derive(period, compute)`, which gives compute(that period's result) (the PROM response per
    timepoint, the cost per activity, as the caller keeps them): the frames beside the indicator table are
    withheld over the same grid (grid_frame_masks). A plain mapping of tables has no frames: they are then
    protected per period. `hospitals`: for a grid of departments or condition teams, the same condition's grid at
    hospital level, which a file's cells follow (masks_from_hospitals), so a department file cannot be
    differenced against a hospital file. `keep(digest, compute)`: where grid_masks keeps the masks it computes
    over this grid beside the process's own memory (the results store of the grid's dataset version)."""

    def __init__(
        self,
        tables: Mapping[str, pd.DataFrame],
        derive: Callable[[str, Callable[[IndicatorResult], pd.DataFrame]], pd.DataFrame] | None = None,
        hospitals: PeriodGrid | None = None,
        keep: Callable[[str, Callable[[], dict]], dict] | None = None,
    ) -> None:
        super().__init__(tables)
        self.derive = derive
        self.hospitals = hospitals
        self.keep = keep


def grid_frames(
    grid: Mapping[str, pd.DataFrame] | None,
    period: object,
    frame: pd.DataFrame,
    compute: Callable[[IndicatorResult], pd.DataFrame],
) -> dict[str, pd.DataFrame] | None:
    """Every period's frame of `compute` over `grid` (a PeriodGrid), with `frame` (the view of `period`) in its
    place; None when the grid cannot derive frames or `period` is off the grid."""
    derive = getattr(grid, "derive", None)
    if grid is None or derive is None or not on_grid(period):
        return None
    label = grid_label(period)
    return {p: frame if p == label else derive(p, compute) for p in dict.fromkeys([*grid, label])}


def grid_mask(
    table: pd.DataFrame,
    period: object,
    grid: Mapping[str, pd.DataFrame] | None,
    rule: SuppressionRule,
    *,
    own_hospitals: Sequence[str] = (),
    include_own: bool = True,
) -> np.ndarray | None:
    """The rows of `table` (the view of `period`) to withhold when its grid of periods (all dates and every year of
    the same condition and level) is `grid`: grid_suppression_masks' cells, matched by unit and indicator. None
    without a grid (the table is then protected on its own)."""
    got = grid_masks(table, period, grid, rule, own_hospitals=own_hospitals, include_own=include_own)
    return None if got is None else np.asarray(got.masks[grid_label(period)], bool)


def withheld_years(tables: Mapping[str, pd.DataFrame], masks: Mapping[str, np.ndarray], unit: str) -> dict[str, set]:
    """Per indicator, the years whose cell of `unit` a grid's files withhold (grid_masks): trend_mask's
    `years_withheld`."""
    out: dict[str, set] = {}
    for label, table in tables.items():
        if not label or not len(table):
            continue
        rows = table[(table["unit"].astype(str) == unit) & np.asarray(masks[label], bool)]
        for indicator in rows["indicator"].astype(str):
            out.setdefault(indicator, set()).add(int(label))
    return out


def suppress_table(
    table: pd.DataFrame,
    rule: SuppressionRule,
    *,
    own_hospitals: Sequence[str] = (),
    include_own: bool = True,
    mask: np.ndarray | None = None,
) -> pd.DataFrame:
    """A copy of an indicator table with the rule applied: withheld values become missing, the boolean column
    `suppressed` says which rows were withheld (writers show the rule's marker there) and
    `suppressed_secondary` which of them only to protect a small cell (see suppression_mask). `mask`: the rows
    to withhold when the caller has them already (grid_suppression_masks' for this table's period)."""
    out = table.copy()
    if "n" not in out:
        out["suppressed"] = out["suppressed_secondary"] = False
        return out
    if mask is not None:
        hit = np.asarray(mask, bool).copy()
    else:
        hit = suppression_mask(out, rule, own_hospitals=own_hospitals, include_own=include_own)
    out["suppressed"] = hit
    out["suppressed_secondary"] = hit & ~rule.applies(out["n"])
    if hit.any():
        _withhold(out, hit, _withheld(out.columns))
    return out


def suppressed_cells(table: pd.DataFrame) -> set[tuple[str, str]]:
    """The (unit, indicator) cells a table from suppress_table withholds: what anything else the same file shows
    about those cells (a target met or not, a signal's value) must withhold as well."""
    if not {"suppressed", "unit", "indicator"} <= set(table.columns):
        return set()
    hit = table[table["suppressed"].astype(bool)]
    return set(zip(hit["unit"].astype(str), hit["indicator"].astype(str), strict=True))


def suppress_counts(
    frame: pd.DataFrame,
    count: str,
    columns: list[str],
    rule: SuppressionRule,
    *,
    group: list[str] | None = None,
    observed: str | None = None,
    forced: np.ndarray | None = None,
    mask: np.ndarray | None = None,
) -> pd.DataFrame:
    """Withhold `columns` (and the count itself) of rows whose `count` is below the threshold; adds the column
    `suppressed`. For summary frames other than the indicator table (PROM response, cost by activity). With
    `group` (the columns of rows that share a total) secondary cells are withheld as well; `forced` rows are
    withheld whatever their count (e.g. cells withheld in the indicator table that this frame repeats). `mask`:
    the rows to withhold when the caller has them already (grid_frame_masks' for this frame's period)."""
    out = frame.copy()
    if mask is not None:
        hit = np.asarray(mask, bool).copy()
    else:
        hit = rule.applies(out[count])
        if forced is not None:
            hit = hit | np.asarray(forced, bool)
    if mask is None and group is not None and rule.active and hit.any():
        hit = complementary_suppression(
            out,
            hit,
            threshold=rule.threshold,
            group=group,
            count=count,
            observed=observed,
            observed_is_count=np.ones(len(out), bool) if observed else None,
            unit="unit" if "unit" in out and "unit" not in group else None,
        )
    out["suppressed"] = hit
    if hit.any():
        for col in {count, *columns}:
            out[col] = out[col].astype(float)
            out.loc[hit, col] = np.nan
    return out


def prom_response_forced(
    rates: pd.DataFrame, table: pd.DataFrame, original: pd.DataFrame, condition: object, rule: SuppressionRule
) -> np.ndarray:
    """The rows of a PROM response frame to withhold because of `table` (the suppressed indicator table of the
    same period; `original` the table before): a response-rate cell withheld there, and a row that repeats a
    withheld count of the same unit."""
    forced = np.zeros(len(rates), bool)
    if not len(rates) or "suppressed" not in table:
        return forced
    return _prom_response_forced(rates, table, table["suppressed"].astype(bool).to_numpy(), original, condition, rule)


def _prom_response_forced(
    rates: pd.DataFrame,
    table: pd.DataFrame,
    mask: np.ndarray,
    original: pd.DataFrame,
    condition: object,
    rule: SuppressionRule,
) -> np.ndarray:
    """prom_response_forced with the indicator table's withheld rows as `mask`: joint_grid_masks asks it of
    every period in every pass, where a copy of the table with the mask as a column cost more than the answer."""
    forced = np.zeros(len(rates), bool)
    rows = np.flatnonzero(mask)
    if not len(rows):
        return forced
    # column-wise, not row by row: the overview's workbook asks this of every period of every condition's grid,
    # each pass of joint_grid_masks (a row loop with a Series per value was a third of the workbook's masks)
    pairs = {
        ind.id: (ind.instrument, ind.timepoint)
        for ind in getattr(condition, "indicators", ())
        if ind.kind == "response_rate"
    }
    units = _text(rates, "unit")
    hidden_units = _text(table, "unit")[rows]
    paired = {
        (unit, *pairs[indicator])
        for unit, indicator in zip(hidden_units, _values(table, "indicator")[rows], strict=True)
        if indicator in pairs
    }
    if paired:  # a set of (unit, instrument, timepoint), not a MultiIndex: most of this function's time
        cells = zip(units, _values(rates, "instrument"), _values(rates, "timepoint"), strict=True)
        forced |= np.fromiter((cell in paired for cell in cells), bool, count=len(rates))
    counted = once("counted", (table,), (), lambda: table["kind"].isin(COUNT_KINDS).to_numpy())[rows]
    secret: dict[str, set[float]] = {}
    # the same rows of `original` by position when it is the table itself (joint_grid_masks): .loc by label
    # read a copy of each column every pass
    positional = original is table and table.index.is_unique
    for col in ("n", "observed"):
        if positional:
            values = _numbers(table, col)[rows]
        else:
            found = pd.to_numeric(original.loc[table.index[rows], col], errors="coerce")
            values = found.to_numpy(float, na_value=np.nan)
        keep = ~np.isnan(values) & (values >= rule.threshold) & (counted if col == "observed" else True)
        for unit, value in zip(hidden_units[keep], values[keep], strict=True):
            secret.setdefault(unit, set()).add(float(value))
    cells = zip(units, _values(rates, "eligible"), _values(rates, "responded"), strict=True)
    for i, (unit, eligible, responded) in enumerate(cells):
        if secret.get(unit, set()) & {float(eligible), float(responded)}:
            forced[i] = True
    return forced


def suppress_prom_response(
    rates: pd.DataFrame,
    table: pd.DataFrame,
    result: IndicatorResult,
    rule: SuppressionRule,
    *,
    mask: np.ndarray | None = None,
) -> pd.DataFrame:
    """PROM response per unit × instrument × timepoint with the rule applied consistently with `table` (the
    result's suppressed indicator table): a response-rate cell withheld there is withheld here, a cell that
    repeats a withheld count of the same unit too, and secondary cells per instrument × timepoint. `mask`: the
    rows to withhold over the grid of periods (prom_response_grid_masks), when the caller has it."""
    forced = None
    if mask is None and result.data is not None:
        forced = prom_response_forced(rates, table, result.table, result.data.condition, rule)
    columns = [c for c in ("responded", "response_rate", "ci_low", "ci_high") if c in rates]
    group = [c for c in ("condition", "instrument", "timepoint") if c in rates]
    return suppress_counts(
        rates, "eligible", columns, rule, group=group, observed="responded", forced=forced, mask=mask
    )


def prom_response_grid_masks(
    frames: Mapping[str, pd.DataFrame],
    tables: Mapping[str, pd.DataFrame],
    masks: Mapping[str, np.ndarray],
    condition: object,
    rule: SuppressionRule,
    *,
    own_hospitals: Sequence[str] = (),
    include_own: bool = True,
    forced: Mapping[str, np.ndarray] | None = None,
) -> dict[str, np.ndarray]:
    """The rows of each period's PROM response frame (`frames`: all dates and every year) to withhold, over the
    grid (grid_frame_masks): below the threshold, or forced by the same period's indicator table (`tables`, with
    `masks` from grid_suppression_masks: prom_response_forced) or by `forced` (per period), with secondary cells
    per instrument × timepoint and per unit over the periods."""
    extra = forced or {}
    forced = {
        p: (
            _prom_response_forced(frame, tables[p], np.asarray(masks[p], bool), tables[p], condition, rule)
            if len(frame) and p in tables and p in masks and len(masks[p]) == len(tables[p])
            else np.zeros(len(frame), bool)
        )
        | _stacked(extra, {p: frame}, [p])
        for p, frame in frames.items()
    }
    return grid_frame_masks(
        frames,
        rule,
        count="eligible",
        observed="responded",
        group=[c for c in ("condition", "instrument", "timepoint") if all(c in f for f in frames.values())],
        forced=forced,
        own_hospitals=own_hospitals,
        include_own=include_own,
    )


def _cost_count(breakdown: pd.DataFrame) -> pd.DataFrame:
    """The breakdown with `count`: the smaller of "cycles with this activity" and "cycles costed" (both count
    patients)."""
    return once(
        "cost count",
        (breakdown,),
        (),
        lambda: breakdown.assign(count=breakdown[["cycles", "costed_cycles"]].min(axis=1)),
    )


def _text(frame: pd.DataFrame, column: str) -> np.ndarray:
    """A column as text (astype(str)), once per frame in a joint_grid_masks call (callers only read it)."""
    return once("text", (frame,), column, lambda: frame[column].astype(str).to_numpy())


def _values(frame: pd.DataFrame, column: str) -> np.ndarray:
    """A column's values as they are (to_numpy), once per frame in a joint_grid_masks call (callers only read it)."""
    return once("values", (frame,), column, lambda: frame[column].to_numpy())


def _numbers(frame: pd.DataFrame, column: str) -> np.ndarray:
    """A column as numbers (NaN where none), once per frame in a joint_grid_masks call (callers only read it)."""
    return once(
        "numbers",
        (frame,),
        column,
        lambda: pd.to_numeric(frame[column], errors="coerce").to_numpy(float, na_value=np.nan),
    )


def suppress_cost_breakdown(
    breakdown: pd.DataFrame, rule: SuppressionRule, *, mask: np.ndarray | None = None
) -> pd.DataFrame:
    """Cost by activity per unit with the rule applied: the count is the smaller of "cycles with this activity"
    and "cycles costed" (both count patients); per unit a second activity is withheld with a small one, as the
    activities add up to the unit's cost per care cycle (shown in the indicator table). `mask`: the rows to
    withhold over the grid of periods (cost_breakdown_grid_masks), when the caller has it."""
    frame = _cost_count(breakdown)
    columns = [c for c in ("cycles", "quantity", "total_cost", "cost_per_cycle", "share") if c in frame]
    group = [c for c in ("condition", "unit") if c in frame]
    return suppress_counts(frame, "count", columns, rule, group=group, mask=mask)


def cost_breakdown_grid_masks(
    frames: Mapping[str, pd.DataFrame],
    rule: SuppressionRule,
    *,
    own_hospitals: Sequence[str] = (),
    include_own: bool = True,
    forced: Mapping[str, np.ndarray] | None = None,
) -> dict[str, np.ndarray]:
    """The rows of each period's cost breakdown (`frames`: all dates and every year) to withhold, over the grid
    (grid_frame_masks): a unit's activities share its cost per care cycle (at least two withheld), and a unit ×
    activity's care cycles over the years add up to its all-dates row (the years' cycles with the activity are
    the additive count; a row is small when its count, as suppress_cost_breakdown reads it, is). `forced`: per
    period rows withheld whatever their count (what the indicator table withholds: cost_breakdown_forced)."""
    counted = {p: _cost_count(f) if len(f) else f.assign(count=[]) for p, f in frames.items()}
    return grid_frame_masks(
        counted,
        rule,
        count="cycles",
        small="count",
        group=[c for c in ("condition", "unit") if all(c in f for f in counted.values())],
        unit="activity",
        link=False,
        forced=forced,
        own_hospitals=own_hospitals,
        include_own=include_own,
    )


def _withheld_counts(table: pd.DataFrame, mask: np.ndarray, rule: SuppressionRule) -> dict[str, set[float]]:
    """Per unit the counts (n, and observed where it is a count) at or above the threshold of the indicator
    table's rows `mask` withholds: a row elsewhere repeating one of them would give it back."""
    out: dict[str, set[float]] = {}
    hidden = np.flatnonzero(np.asarray(mask, bool))
    if not len(hidden) or not {"unit", "n"} <= set(table.columns):
        return out
    # the columns' rows, not the table's (a copy of every column of the wide table each pass of joint_grid_masks)
    kinds = _text(table, "kind")[hidden] if "kind" in table else np.full(len(hidden), "")
    n = _numbers(table, "n")[hidden]
    o = _numbers(table, "observed")[hidden] if "observed" in table else n * np.nan
    for unit, count, observed, kind in zip(_text(table, "unit")[hidden], n, o, kinds, strict=True):
        values = {count} | ({observed} if kind in COUNT_KINDS else set())
        out.setdefault(unit, set()).update(float(v) for v in values if np.isfinite(v) and v >= rule.threshold)
    return out


def cost_breakdown_forced(
    breakdown: pd.DataFrame, table: pd.DataFrame, mask: np.ndarray, rule: SuppressionRule
) -> np.ndarray:
    """The rows of a cost breakdown to withhold because of the same period's indicator table (`table` as
    computed, `mask` its withheld rows): every activity of a unit whose cost per care cycle is withheld there
    (the activities add up to it, and any activity's total cost over its cost per care cycle is the unit's
    costed care cycles, that cell's n), and a row whose cycles repeat a withheld count of the same unit."""
    forced = np.zeros(len(breakdown), bool)
    mask = np.asarray(mask, bool)
    if not len(breakdown) or len(mask) != len(table) or not mask.any() or "unit" not in breakdown:
        return forced
    units = _text(breakdown, "unit")
    if "kind" in table:
        forced |= np.isin(units, _text(table, "unit")[(_text(table, "kind") == "cost") & mask])
    secret = _withheld_counts(table, mask, rule)
    cycles = _numbers(breakdown, "cycles")
    for i, (unit, count) in enumerate(zip(units, cycles, strict=True)):
        if count in secret.get(unit, ()):
            forced[i] = True
    return forced


def table_forced(
    table: pd.DataFrame, rates: pd.DataFrame, rates_mask: np.ndarray, condition: object, rule: SuppressionRule
) -> np.ndarray:
    """The rows of an indicator table to withhold because the same period's PROM response frame (`rates`, with
    `rates_mask` its withheld rows) withholds the same count: the response-rate cell of a withheld row (its n
    and observed are that row's eligible and responded), and a cell of the unit whose n (or observed count)
    repeats a withheld eligible or responded count. prom_response_forced the other way round: without it a
    row withheld only as a secondary cell of the response frame was shown in the indicator table."""
    forced = np.zeros(len(table), bool)
    rates_mask = np.asarray(rates_mask, bool)
    if not len(table) or len(rates_mask) != len(rates) or not rates_mask.any() or "unit" not in table:
        return forced
    units = _text(table, "unit")
    indicators = _text(table, "indicator")
    pairs = {
        (ind.instrument, ind.timepoint): ind.id
        for ind in getattr(condition, "indicators", ())
        if ind.kind == "response_rate"
    }
    secret: dict[str, set[float]] = {}
    # the withheld rows of the columns read, not of the whole frame (a copy each pass of joint_grid_masks)
    for unit, inst, tp, eligible, responded in zip(
        _text(rates, "unit")[rates_mask],
        _values(rates, "instrument")[rates_mask],
        _values(rates, "timepoint")[rates_mask],
        _values(rates, "eligible")[rates_mask],
        _values(rates, "responded")[rates_mask],
        strict=True,
    ):
        indicator = pairs.get((inst, tp))
        if indicator is not None:
            forced |= (units == unit) & (indicators == indicator)
        values = {float(v) for v in (eligible, responded) if pd.notna(v) and float(v) >= rule.threshold}
        secret.setdefault(unit, set()).update(values)
    n = _numbers(table, "n")
    o = _numbers(table, "observed") if "observed" in table else n * np.nan
    counted = np.isin(_text(table, "kind"), COUNT_KINDS) if "kind" in table else n < 0
    for i, unit in enumerate(units):
        values = secret.get(unit)
        if values and (n[i] in values or (counted[i] and o[i] in values)):
            forced[i] = True
    return forced


@dataclass(frozen=True)
class GridMasks:
    """What a view withholds over its grid of periods (joint_grid_masks): each period's indicator table
    (`tables`) with its withheld rows (`masks`), and per frame beside it ("prom_response", "cost_breakdown")
    each period's frame (`frames`) with its withheld rows (`frame_masks`)."""

    tables: dict[str, pd.DataFrame]
    masks: dict[str, np.ndarray]
    frames: dict[str, dict[str, pd.DataFrame]]
    frame_masks: dict[str, dict[str, np.ndarray]]

    def frame_mask(self, what: str, period: object, frame: pd.DataFrame) -> np.ndarray | None:
        """The rows of `frame` (the `what` frame of `period`, as the caller reads it) to withhold; None when this
        grid has no such frame or it is not the caller's (other rows)."""
        label = grid_label(period)
        mine, mask = self.frames.get(what, {}).get(label), self.frame_masks.get(what, {}).get(label)
        if mine is None or mask is None or len(mine) != len(frame) or len(mask) != len(frame):
            return None
        keys = [c for c in ("unit", "instrument", "timepoint", "activity") if c in mine and c in frame]
        for key in keys:
            if not np.array_equal(mine[key].astype(str).to_numpy(), frame[key].astype(str).to_numpy()):
                return None
        return np.asarray(mask, bool)


#: The frames beside the indicator table withheld jointly with it (joint_grid_masks), by name.
JOINT_FRAMES = ("prom_response", "cost_breakdown")


def joint_grid_masks(
    tables: Mapping[str, pd.DataFrame],
    rule: SuppressionRule,
    *,
    frames: Mapping[str, Mapping[str, pd.DataFrame]] | None = None,
    condition: object = None,
    own_hospitals: Sequence[str] = (),
    include_own: bool = True,
) -> GridMasks:
    """grid_suppression_masks of the indicator tables together with the frames beside them (`frames`:
    "prom_response" and "cost_breakdown", each period's frame), so that where two of them show the same count
    of the same unit and period a cell withheld in one is withheld in the other: the PROM response rows of a
    withheld response-rate cell and the cost breakdown of a withheld cost per care cycle (prom_response_forced,
    cost_breakdown_forced), and the other way round the response-rate cell of a PROM response row withheld as a
    secondary cell (table_forced; else its secondary protection was void: the cell read back from the
    indicator table, the primary then from the group's total). Repeated until neither adds a cell. With
    `include_own` the cells without the own hospitals' first (what their page withholds), then the own ones on
    top: a file withholds a superset of its page, so the two cannot be combined."""
    from vbhc.reports.grid_audit import carried

    # the passes below suppress the same tables and frames again and again, only the withheld cells changing:
    # what they derive from them (stacked frames, keys, ranks, columns) is derived once (vbhc.disclosure.reusing)
    with reusing():
        judged: dict[tuple, Any] = {}  # the page's audit; what it found open stays open for the file's (carried)
        page = _audited(_GridStep(tables, rule, frames or {}, condition, own_hospitals), judged)
        if not include_own:
            return page
        step = _GridStep(tables, rule, frames or {}, condition, own_hospitals, include_own=True, seed=page)
        return _audited(step, carried(judged))


@dataclass(frozen=True)
class _GridStep:
    """One step of joint_grid_masks, as _audited and _joint read it: every period's indicator table (`tables`),
    the rule, the frames beside them, the condition, the own hospitals, whether their rows are withheld too
    (`include_own`: a file's step; a page's keeps them shown) and the cells withheld already (`seed`: the page's
    step, or a repair's). The two functions took these seven one by one and passed them on to each other."""

    tables: Mapping[str, pd.DataFrame]
    rule: SuppressionRule
    frames: Mapping[str, Mapping[str, pd.DataFrame]]
    condition: object
    own_hospitals: Sequence[str]
    include_own: bool = False
    seed: GridMasks | None = None


def _audited(step: _GridStep, judged: dict[tuple, Any] | None = None) -> GridMasks:
    """_joint, then the audit of every equation at once (vbhc.reports.grid_audit): a withheld small count that a
    chain of equations pins (a unit's years, then a year's benchmark) gets a further shown row of those
    equations withheld, the per-equation rules run again on top, until the audit pins nothing. On a page (without
    `include_own`) the own hospitals' rows stay shown: its reader knows them. `judged`: the audit's judgements
    (grid_audit.pinned_cells), kept across the passes and filled for the caller."""
    from vbhc.reports.grid_audit import repairs

    got = _joint(step)
    if not step.rule.active:
        return got
    keep: dict[tuple[str, str, int], bool] = {}
    if not step.include_own and step.own_hospitals:
        for p, table in step.tables.items():
            keep |= {("table", p, int(i)): True for i in np.flatnonzero(own_rows(table, step.own_hospitals))}
        for what, by_period in step.frames.items():
            for p, frame in by_period.items():
                keep |= {(what, p, int(i)): True for i in np.flatnonzero(own_rows(frame, step.own_hospitals))}
    judged = {} if judged is None else judged  # which pins withholding could hide, kept across the passes
    for _ in range(sum(len(table) for table in step.tables.values()) + 1):  # every pass withholds another row, or stops
        more = repairs(
            got.tables, got.masks, got.frames, got.frame_masks, step.rule.threshold, keep=keep, judged=judged
        )
        if more is None:
            break
        got = _joint(replace(step, seed=GridMasks(got.tables, more[0], got.frames, more[1])))
    return got


def _joint(step: _GridStep) -> GridMasks:
    """joint_grid_masks' fixed point for one of its steps; `step.seed`: cells withheld already (the page's step)."""
    tables, rule, frames, condition, seed = step.tables, step.rule, step.frames, step.condition, step.seed
    options = {"own_hospitals": step.own_hospitals, "include_own": step.include_own}
    forced = None if seed is None else seed.masks
    rates, costs = frames.get("prom_response"), frames.get("cost_breakdown")
    for _ in range(sum(len(table) for table in tables.values()) + 1):  # every pass withholds another cell, or stops
        masks = grid_suppression_masks(tables, rule, forced=forced, **options)
        out: dict[str, dict[str, np.ndarray]] = {}
        if rates is not None:
            before = None if seed is None else seed.frame_masks.get("prom_response")
            out["prom_response"] = prom_response_grid_masks(
                rates, tables, masks, condition, rule, forced=before, **options
            )
        if costs is not None:
            before = {} if seed is None else seed.frame_masks.get("cost_breakdown", {})
            pushed = {
                p: cost_breakdown_forced(frame, tables[p], masks[p], rule) | _stacked(before, {p: frame}, [p])
                if p in tables and p in masks
                else _stacked(before, {p: frame}, [p])
                for p, frame in costs.items()
            }
            out["cost_breakdown"] = cost_breakdown_grid_masks(costs, rule, forced=pushed, **options)
        back = {
            p: table_forced(tables[p], rates[p], out["prom_response"][p], condition, rule)
            if rates is not None and p in rates
            else np.zeros(len(tables[p]), bool)
            for p in tables
        }
        grown = {p: np.asarray(masks[p], bool) | back[p] for p in tables}
        if all(np.array_equal(grown[p], masks[p]) for p in tables):
            break
        forced = grown
    return GridMasks(dict(tables), masks, {k: dict(v) for k, v in frames.items()}, out)


def masks_from_hospitals(
    hospital: GridMasks,
    tables: Mapping[str, pd.DataFrame],
    frames: Mapping[str, Mapping[str, pd.DataFrame]] | None,
    rule: SuppressionRule,
    own_hospitals: Sequence[str],
) -> GridMasks:
    """A department's or condition team's grid (`tables` and `frames` of every period) withheld as the hospital
    level withholds (`hospital`, joint_grid_masks of the same condition's hospital grid), for a viewer whose pages
    withhold other hospitals' small cells: the levels are views of the same care cycles, so a cell withheld at one
    must not be read back from another.

    Before, each level was withheld on its own: a hospital's total (hospital level) minus its visible department
    gave the withheld department's count and events back, and where the levels' secondary cells differed, a cell
    withheld at one level was shown at the other. Now another hospital with one unit at this level (the unit is
    the hospital: the same count) is withheld exactly where the hospital level withholds it. One with several units
    here has an indicator's units withheld together in every period when any of them is small in any period or
    the hospital's cell is withheld in any (only their sum is then known: the hospital's row, or nothing), and its
    frames (PROM response, cost by activity) withheld; the own hospitals' units are shown. This grid shows no more
    than the hospital level's safe masks do, plus the split of cells that are not small anywhere, so it is safe
    against the benchmark, the other periods and the frames too."""
    own = set(own_hospitals)
    units_of: dict[str, set[str]] = {}
    for table in tables.values():
        if "unit" in table:
            for unit in table["unit"].astype(str).unique():
                units_of.setdefault(hospital_of(unit), set()).add(unit)
    several = {h for h, units in units_of.items() if len(units) > 1 and h not in own}
    together: set[tuple[str, str]] = set()  # (hospital, indicator) of a several-unit hospital withheld whole
    for p, table in tables.items():
        if not several or not {"unit", "indicator", "n"} <= set(table.columns):
            continue
        hospitals = table["unit"].astype(str).map(hospital_of)
        small = rule.applies(table["n"]) | pd.to_numeric(table["n"], errors="coerce").isna().to_numpy()
        together |= {(h, str(i)) for h, i, s in zip(hospitals, table["indicator"], small, strict=True) if s}
        source, mask = hospital.tables.get(p), hospital.masks.get(p)
        if source is not None and mask is not None and {"unit", "indicator"} <= set(source.columns):
            cells = zip(source["unit"].astype(str).map(hospital_of), source["indicator"].astype(str), mask, strict=True)
            together |= {(h, i) for h, i, m in cells if m}
    together = {(h, i) for h, i in together if h in several}

    def derived(frame: pd.DataFrame, source: pd.DataFrame | None, mask: np.ndarray | None, keys: list[str], *, table):
        hospitals = frame["unit"].astype(str).map(hospital_of) if "unit" in frame else pd.Series("", index=frame.index)
        withheld: dict[tuple, bool] = {}
        if source is not None and mask is not None and len(source) == len(mask) and "unit" in source:
            cells = zip(source["unit"].astype(str), *(source[k].astype(str) for k in keys), mask, strict=True)
            for unit, *rest in cells:
                withheld[(hospital_of(unit), *rest[:-1])] = bool(rest[-1])

        def one(h: str, rest: list[str]) -> bool:
            if h in own:
                return False
            if h in several:  # an indicator's units together; a frame's rows always
                return not table or (h, rest[0]) in together
            return withheld.get((h, *rest), True)

        rows = zip(hospitals, *(frame[k].astype(str) for k in keys), strict=True)
        return np.array([one(h, rest) for h, *rest in rows], dtype=bool)

    masks = {
        p: derived(table, hospital.tables.get(p), hospital.masks.get(p), ["indicator"], table=True)
        for p, table in tables.items()
    }
    frame_masks: dict[str, dict[str, np.ndarray]] = {}
    for what, by_period in (frames or {}).items():
        frame_masks[what] = {}
        for p, frame in by_period.items():
            source = hospital.frames.get(what, {}).get(p)
            shared = set(frame.columns) & set(source.columns if source is not None else ())
            keys = [k for k in ("instrument", "timepoint", "activity") if k in shared]
            mask = hospital.frame_masks.get(what, {}).get(p)
            frame_masks[what][p] = derived(frame, source, mask, keys, table=False)
    return GridMasks(dict(tables), masks, {k: dict(v) for k, v in (frames or {}).items()}, frame_masks)


def prom_response_mask(
    rates: pd.DataFrame,
    result: IndicatorResult,
    grid: Mapping[str, pd.DataFrame] | None,
    got: GridMasks | None,
    rule: SuppressionRule,
    *,
    own_hospitals: Sequence[str] = (),
    include_own: bool = True,
) -> np.ndarray | None:
    """The rows of `rates` (the PROM response of `result`'s view) to withhold over its grid of periods
    (`got`: grid_masks of the view's indicator table, jointly with it; else prom_response_grid_masks); None
    without a PeriodGrid or off the grid (the frame is then protected on its own)."""
    from vbhc.indicators import prom_response_by_timepoint

    frames = grid_frames(grid, result.period, rates, prom_response_by_timepoint)
    if frames is None or got is None or result.data is None:
        return None
    joint = got.frame_mask("prom_response", result.period, rates)
    if joint is not None:
        return joint
    masks = prom_response_grid_masks(
        frames,
        got.tables,
        got.masks,
        result.data.condition,
        rule,
        own_hospitals=own_hospitals,
        include_own=include_own,
    )
    return masks[grid_label(result.period)]


def cost_breakdown_mask(
    breakdown: pd.DataFrame,
    result: IndicatorResult,
    grid: Mapping[str, pd.DataFrame] | None,
    rule: SuppressionRule,
    *,
    own_hospitals: Sequence[str] = (),
    include_own: bool = True,
    got: GridMasks | None = None,
) -> np.ndarray | None:
    """The rows of `breakdown` (the cost per activity of `result`'s view, every unit) to withhold over its grid of
    periods (`got`: grid_masks of the view's indicator table, jointly with it; else cost_breakdown_grid_masks);
    None without a PeriodGrid or off the grid."""
    from vbhc.indicators import cost_by_activity

    frames = grid_frames(grid, result.period, breakdown, cost_by_activity)
    if frames is None:
        return None
    joint = None if got is None else got.frame_mask("cost_breakdown", result.period, breakdown)
    if joint is not None:
        return joint
    masks = cost_breakdown_grid_masks(frames, rule, own_hospitals=own_hospitals, include_own=include_own)
    return masks[grid_label(result.period)]


#: Columns of a chart's dataset holding the number of care cycles or patients behind a row (the first one found).
CHART_COUNT_COLUMNS = ("n", "patients", "cycles")
#: Columns that make a chart's dataset one row per care cycle (VLAD, CUSUM): its data is patient-level.
CHART_CYCLE_COLUMNS = ("cycle_number", "cycle_id")


def _datasets(spec: Mapping[str, Any]) -> dict[str, list]:
    sets = spec.get("datasets") or {}
    return {str(k): v for k, v in sets.items() if isinstance(v, list)}


def chart_is_patient_level(spec: Mapping[str, Any]) -> bool:
    """Whether a chart draws one point per care cycle (a VLAD or CUSUM chart): its image and data are then a
    patient-level export, which only the quality directorate may take (a care team exports aggregates only)."""
    return any(
        rows and isinstance(rows[0], Mapping) and any(c in rows[0] for c in CHART_CYCLE_COLUMNS)
        for rows in _datasets(spec).values()
    )


def chart_file_datasets(spec: Mapping[str, Any], rule: SuppressionRule) -> dict[str, Any] | None:
    """The datasets a chart's downloaded file (its PNG or data CSV) may show: rows about fewer care cycles or
    patients than the threshold are left out of every dataset, as the PDF leaves a withheld unit out of its
    funnel plot and a small quarter out of its trend. Where a dataset draws a benchmark (a finite `target`) or
    its rows share a total (an indicator, timepoint), secondary rows are left out too (vbhc.disclosure), so a
    left-out row cannot be worked out from the rest. The page shows a viewer what their role allows; a file
    leaves the hospital, so the file rule applies to everyone (README: "withheld in every file").

    None when the rule leaves none of the chart's counted rows: such a file would show nothing of the chart."""
    sets = spec.get("datasets") or {}
    if not rule.active:
        return dict(sets)
    datasets: dict[str, Any] = {}
    withheld: set[str] = set()  # units left out: also out of the datasets that place or label them (no count)
    periods: set[str] = set()  # quarters left out of a trend: also out of its drawn lines (rate, limits)
    counted = left = 0
    for name, rows in sets.items():
        first = rows[0] if isinstance(rows, list) and rows else None
        count = next((c for c in CHART_COUNT_COLUMNS if isinstance(first, Mapping) and c in first), None)
        if count is None:
            datasets[name] = rows
            continue
        frame = pd.DataFrame(rows)
        small = rule.applies(frame[count])
        if small.any():
            target = pd.to_numeric(frame["target"], errors="coerce") if "target" in frame else None
            shown = np.isfinite(target.to_numpy(float)) if target is not None else np.zeros(len(frame), bool)
            small = complementary_suppression(
                frame,
                small,
                threshold=rule.threshold,
                group=[c for c in ("condition", "indicator", "instrument", "timepoint") if c in frame],
                count=count,
                observed="observed" if "observed" in frame else None,
                unit="unit" if "unit" in frame else None,
                totals_shown=shown,
            )
        over_time = _trend_frame(frame, count)
        if over_time is not None:  # a trend by quarter or month: its years' cells are in the files of each year
            small = np.asarray(small, bool) | trend_mask(over_time, rule)
            periods |= set(frame.loc[small, "period"].astype(str))
        datasets[name] = [row for row, hit in zip(rows, small, strict=True) if not hit]
        counted, left = counted + len(rows), left + len(datasets[name])
        per_unit = not {"period", "date", "timepoint", "activity", "bin_start"} & set(frame)  # one row a unit
        if "unit" in frame and per_unit:
            withheld |= set(frame.loc[small, "unit"].astype(str))
    if counted and not left:
        return None
    for name, rows in datasets.items():
        first = rows[0] if isinstance(rows, list) and rows and isinstance(rows[0], Mapping) else None
        if first is None:
            continue
        if withheld and "unit" in first:
            datasets[name] = rows = [row for row in rows if str(row.get("unit")) not in withheld]
        uncounted = not any(c in first for c in CHART_COUNT_COLUMNS)
        if periods and uncounted and "period" in first:  # the drawn lines (rate, limits) of a left-out period
            datasets[name] = [row for row in rows if str(row.get("period")) not in periods]
    return datasets


def _trend_frame(frame: pd.DataFrame, count: str) -> pd.DataFrame | None:
    """A chart dataset as trend_mask reads it when it is a trend of one unit by date (`period` all dates, one row
    each), else None. Its event counts are taken as rate × n where the value is a rate (0..1): for any other
    value that only leaves out more."""
    if "period" not in frame or count != "n" or frame["period"].duplicated().any():
        return None
    if "unit" in frame and frame["unit"].nunique() > 1:
        return None
    when = _period_starts(frame["period"])
    if when.isna().any():
        return None
    out = pd.DataFrame({"period": when, "n": pd.to_numeric(frame["n"], errors="coerce")})
    value = pd.to_numeric(frame["value"], errors="coerce") if "value" in frame else None
    if value is not None and value.dropna().between(0, 1).all():
        out["events"] = (value * out["n"]).round()
    return out


def _period_starts(values: pd.Series) -> pd.Series:
    """A trend's periods as dates: ISO dates, or quarters written 2024Q1 / 2024-Q1 (their first day); NaT else."""
    text = values.astype(str).str.strip()
    quarter = text.str.fullmatch(r"[0-9]{4}-?Q[1-4]").to_numpy(dtype=bool)
    out = pd.to_datetime(text.where(~quarter), errors="coerce", format="ISO8601")
    if quarter.any():
        starts = pd.PeriodIndex(text[quarter].str.replace("-", "", regex=False), freq="Q").to_timestamp()
        out[quarter] = starts
    return out


def patient_rows(result: IndicatorResult) -> pd.DataFrame:
    """Pseudonymised care cycles behind a result: cycle id, unit, dates, treatment and outcome values.

    Never the patient id (or case-mix details): a cycle id is enough to look the cycle up in the team's own
    records, and nothing here identifies a person outside the hospital.
    """
    data = result.data
    if data is None or data.cycles.empty:
        return pd.DataFrame(columns=["condition", "cycle_id", "unit", "index_date", "treatment"])
    cycles = data.cycles
    outcomes = [o.id for o in data.condition.outcomes if o.id in cycles.columns]
    out = pd.DataFrame(
        {
            "condition": result.condition,
            "cycle_id": cycles["cycle_id"].astype(str).to_numpy(),
            "unit": unit_labels(cycles, result.level).to_numpy(),
            "index_date": pd.to_datetime(cycles["index_date"]).to_numpy(),
            "treatment": cycles["treatment"].astype(str).to_numpy(),
        }
    )
    for name in outcomes:
        out[name] = pd.to_numeric(cycles[name], errors="coerce").to_numpy(float)
    return out
