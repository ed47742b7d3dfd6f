"""Statistical disclosure control shared by the pages (vbhc.access) and the exports (vbhc.reports.privacy).

Withholding a small cell is not enough when the same view shows the other units and an exact benchmark: the
benchmark's totals minus the shown units give the withheld cell back (one unknown, one equation). So every
suppression here is *complementary*: per table of cells that share a total (one indicator, one PROM timepoint,
one unit's cost breakdown) either no cell or at least two cells are withheld, and more are added until an
attacker who knows the exact totals, the small-number threshold, which cells are small and every shown cell
still cannot pin any withheld count down to one value. Cells of the same unit in other tables that show the
same count as a withheld cell ("n shared across indicators") are withheld too, as they would give it away.

Periods: a view is shown for all dates and for each calendar year, and a unit's years add up to its all-dates
cell, so withholding each period's cells on its own let a reader subtract (all dates minus the shown years gives a
lone withheld year back). `period_suppression` protects the grid of all dates and every year at once: each
period's units as above, and each unit's years as a line whose total is its all-dates cell (at least two years
withheld while that is shown, else the all-dates cell withheld; a withheld all-dates cell needs a withheld year),
repeated until stable. Finer or shifted windows (a quarter, a month, a range of dates) are not on the grid:
files with small numbers withheld are made for grid periods only, and pages show finer windows only for units
whose small cells the viewer may see (vbhc.access.focus_units).

Other units in a manager's view carry no exact count at all: only a band (`n_band`), so rows cannot be linked
across indicators by their n, nor the units' totals be differenced.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import threading
from collections.abc import Callable, Hashable, Iterator, Sequence
from typing import Any, TypeVar

import numpy as np
import pandas as pd
from scipy import sparse

__all__ = [
    "MIN_OTHER_UNITS",
    "N_BANDS",
    "comparison_group_withheld",
    "complementary_suppression",
    "feasible_interval",
    "n_band",
    "n_band_bounds",
    "once",
    "period_suppression",
    "reusing",
    "signed_interval",
    "tighten_bounds",
]

#: A manager's comparison group must hold at least this many other units, else one unit could be isolated.
MIN_OTHER_UNITS = 5
#: Lower edges of the bands in which other units' numbers of care cycles are shown (above the threshold).
N_BANDS = (10, 50, 100, 250, 500, 1000)

_T = TypeVar("_T")
_reuse = threading.local()


@contextlib.contextmanager
def reusing() -> Iterator[None]:
    """Within the block (in this thread), what `once` derives from the same objects is derived once. Why: a
    grid's joint suppression (vbhc.reports.privacy.joint_grid_masks) runs these suppressions dozens of times over
    the same tables, only the withheld cells changing, and every pass rebuilt the stacked frames, their text keys,
    groups and ranks from scratch (most of a grid's time). The objects must not change inside the block; what
    `once` returns is shared, so callers only read it. Nested blocks share the outermost one's memory."""
    outer = getattr(_reuse, "memo", None)
    if outer is None:
        _reuse.memo = {}
    try:
        yield
    finally:
        if outer is None:
            _reuse.memo = None


def once(name: str, objects: tuple[object, ...], params: Hashable, compute: Callable[[], _T]) -> _T:
    """compute(), or inside a `reusing` block the value computed before from the same `objects` (by identity:
    frames and arrays, held until the block ends so that no other object takes their id) and `params` (by
    value). Outside a block: compute() every time."""
    memo: dict[tuple, tuple[tuple[object, ...], Any]] | None = getattr(_reuse, "memo", None)
    if memo is None:
        return compute()
    key = (name, tuple(id(o) for o in objects), params)
    kept = memo.get(key)
    if kept is None:
        kept = memo[key] = (objects, compute())
    return kept[1]


def _frozen(*arrays: np.ndarray) -> None:
    """Shared arrays (`once`) read only: a caller that wrote into one would change every later pass."""
    for array in arrays:
        if isinstance(array, np.ndarray):
            array.flags.writeable = False


def n_band(n: object, threshold: int = 10) -> str:
    """The band of a count, e.g. 37 -> "10-49", 4 -> "<10": close enough to judge precision, too coarse to
    link a unit's rows across indicators or to difference totals."""
    try:
        value = float(n)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return ""
    if not math.isfinite(value):
        return ""
    edges = [threshold, *(b for b in N_BANDS if b > threshold)] if threshold > 0 else list(N_BANDS)
    if value < edges[0]:
        return f"<{edges[0]}"
    for lo, hi in itertools.pairwise(edges):
        if value < hi:
            return f"{lo}-{hi - 1}"
    return f"≥{edges[-1]}"


def n_band_bounds(band: str) -> tuple[float, float]:
    """The counts a band allows (inclusive), e.g. "10-49" -> (10, 49), "<10" -> (0, 9), "≥1000" -> (1000, inf)."""
    band = band.strip()
    if band.startswith("<"):
        return 0.0, float(band[1:]) - 1
    if band.startswith("≥"):
        return float(band[1:]), math.inf
    lo, hi = band.split("-")
    return float(lo), float(hi)


def feasible_interval(total: float, lows: np.ndarray, highs: np.ndarray, i: int) -> tuple[float, float]:
    """Smallest and largest value cell `i` can take when the cells sum to `total` and each lies within
    [lows, highs]: what an attacker who knows the total can say about one withheld cell."""
    others_lo = float(np.delete(lows, i).sum())
    others_hi = float(np.delete(highs, i).sum())
    low = max(float(lows[i]), total - others_hi) if math.isfinite(others_hi) else float(lows[i])
    high = min(float(highs[i]), total - others_lo)
    return low, high


def _safe(
    sel: np.ndarray, n: np.ndarray, o: np.ndarray, counted: np.ndarray, upper: np.ndarray, threshold: int
) -> bool:
    """True when no withheld cell among `sel` is determined by the group's totals (see module docstring)."""
    if len(sel) == 0:
        return True
    if len(sel) == 1:
        return False
    small = n[sel] < threshold
    lows = np.where(small, 0.0, float(threshold))
    highs = np.minimum(np.where(small, float(threshold - 1), math.inf), upper[sel])
    if _pinned(float(n[sel].sum()), lows, highs):
        return False
    obs = o[sel]
    return not (counted[sel].all() and np.isfinite(obs).all() and _pinned(float(obs.sum()), np.zeros(len(sel)), highs))


def _pinned(total: float, lows: np.ndarray, highs: np.ndarray) -> bool:
    """Whether any cell's feasible_interval (cells summing to `total`) is narrower than one: for every cell at
    once (the grid's suppression checks thousands of lines)."""
    others_lo = lows.sum() - lows
    finite = np.isfinite(highs)
    infinite = int((~finite).sum())
    finite_sum = float(highs[finite].sum())
    # the other cells' largest sum: infinite when any other cell is unbounded
    others_hi = np.where(infinite - (~finite).astype(int) > 0, math.inf, finite_sum - np.where(finite, highs, 0.0))
    low = np.maximum(lows, np.where(np.isfinite(others_hi), total - others_hi, lows))
    high = np.minimum(highs, total - others_lo)
    return bool((high - low < 1).any())


def complementary_suppression(
    frame: pd.DataFrame,
    primary: np.ndarray,
    *,
    threshold: int,
    group: Sequence[str],
    count: str = "n",
    observed: str | None = "observed",
    observed_is_count: np.ndarray | None = None,
    upper: np.ndarray | None = None,
    keep: np.ndarray | None = None,
    unit: str | None = "unit",
    totals_shown: np.ndarray | None = None,
    known: bool = False,
) -> np.ndarray:
    """The cells to withhold: `primary` plus the fewest further cells (smallest count first, never a `keep`
    cell while another will do) so that no withheld count or event count can be worked out of the group's
    totals, and so that no shown cell of the same `unit` in another group repeats a withheld count.

    `group` names the columns of cells that share a total (e.g. condition and indicator); `observed_is_count`
    marks rows whose observed value is a count (events, responders); `upper` is what an attacker knows as an
    upper bound of each count from elsewhere (e.g. the unit's volume), inf where nothing. `totals_shown` marks
    rows whose group total can be derived from the view (a benchmark); groups without it (the volume, which has
    no benchmark) need no secondary cells: there is nothing to take the shown cells from. Default: every group.
    `known`: the reader knows the `keep` cells (a care team limited to some hospitals reads its own hospitals'
    patient rows), so they are never withheld: withholding them would protect nothing and hide the reader's own
    figures; secondary cells come from the other cells only.
    """
    size = len(frame)
    hit = np.asarray(primary, dtype=bool).copy()
    if size == 0 or threshold <= 0:
        return hit

    def structure() -> tuple:
        """What depends on the frame and the shown totals only (the same in every pass of a grid: `once`)."""
        n, o = _counts(frame, count, observed)
        names = frame[unit].astype(str).to_numpy() if unit and unit in frame else np.arange(size).astype(str)
        keys = _keys(frame, group) if group else np.zeros(size, str)
        families = populations(frame)
        groups = [np.flatnonzero(keys == k) for k in dict.fromkeys(keys)]
        if totals_shown is not None:
            shown = np.asarray(totals_shown, bool)
            groups = [idx for idx in groups if shown[idx].any()]
        order = np.lexsort((names, o if np.isfinite(o).all() else np.zeros(size), n))
        rank = np.empty(size, int)
        rank[order] = np.arange(size)
        _frozen(names, keys, rank, *groups, *(families or ()))
        return n, o, names, keys, families, groups, rank

    params = (count, observed, unit, tuple(group))
    n, o, names, keys, families, groups, rank = once("complementary", (frame, totals_shown), params, structure)
    counted, upper, keep = _marks(size, observed_is_count, upper, keep)

    for _ in range(size + 1):  # every pass withholds at least one more cell, or stops
        changed = False
        for idx in groups:
            while not _safe(idx[hit[idx]], n, o, counted, upper, threshold):
                free = idx[~hit[idx]]
                preferred = free[~keep[free]]
                pool = preferred if len(preferred) or known else free
                if len(pool) == 0:
                    break
                candidates = pool[np.argsort(rank[pool])]
                chosen = next(
                    (c for c in candidates if _safe(np.append(idx[hit[idx]], c), n, o, counted, upper, threshold)),
                    candidates[0],
                )
                hit[chosen] = True
                changed = True
        if unit:
            linked = _linked(hit, n, o, counted, names, keys, threshold, families)
            if known:
                linked &= ~keep
            if linked.any():
                hit |= linked
                changed = True
        if not changed:
            break
    return hit


def _counts(frame: pd.DataFrame, count: str, observed: str | None) -> tuple[np.ndarray, np.ndarray]:
    """The cells' counts (a missing one 0) and observed values (NaN where none), as both suppressions read them."""
    n = pd.to_numeric(frame[count], errors="coerce").fillna(0).to_numpy(float)
    o = (
        pd.to_numeric(frame[observed], errors="coerce").to_numpy(float)
        if observed and observed in frame
        else np.full(len(frame), np.nan)
    )
    return n, o


def _marks(
    size: int, observed_is_count: np.ndarray | None, upper: np.ndarray | None, keep: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Whether each observed value is a count, upper bounds (inf where none) and keep marks as arrays."""
    counted = np.zeros(size, bool) if observed_is_count is None else np.asarray(observed_is_count, bool)
    bound = np.full(size, math.inf) if upper is None else np.asarray(upper, float)
    bound = np.where(np.isfinite(bound), bound, math.inf)
    kept = np.zeros(size, bool) if keep is None else np.asarray(keep, bool)
    return counted, bound, kept


def _keys(frame: pd.DataFrame, columns: Sequence[str]) -> np.ndarray:
    """One text per row joining `columns` (column-wise: a row-wise join cost most of a grid's suppression)."""
    parts = [frame[c].astype(str).to_numpy(dtype=object) for c in columns]
    out = parts[0]
    for part in parts[1:]:
        out = out + "\x1f" + part
    return out.astype(str)


def _linked(
    hit: np.ndarray,
    n: np.ndarray,
    o: np.ndarray,
    counted: np.ndarray,
    names: np.ndarray,
    keys: np.ndarray,
    threshold: int,
    families: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """Shown cells of a unit whose count (n, or events/responders) equals a withheld count of the same unit in
    another group, both counts of one population (`families`: per row the population of n and of the observed
    count, see populations): showing them would tell the withheld one. Only counts at or above the threshold link
    (a small count such as 0 or 3 repeats by chance everywhere), and only within a population: a reader knows
    that a unit's 30-day mortality and its volume count the same care cycles, or its 12-month response count and
    its 12-month PROM score the same responders, but not that its deaths within a year happen to equal its
    responders to a PROM change; such a chance equality linked, on the 4,000-cycle demo, every cell of a
    condition's sheet (120 of 150 withheld for 3 small cells)."""
    out = np.zeros(len(hit), bool)
    none = np.zeros(len(hit), str)
    n_family, o_family = families if families is not None else (none, none)

    def counts(i: int) -> set[tuple[str, float]]:
        own = {(n_family[i], n[i])}
        return own | ({(o_family[i], o[i])} if counted[i] and np.isfinite(o[i]) else set())

    withheld: dict[str, set[tuple[str, tuple[str, float]]]] = {}
    for p in np.flatnonzero(hit):
        withheld.setdefault(names[p], set()).update((keys[p], c) for c in counts(p) if c[1] >= threshold)
    if not withheld:
        return out
    for q in np.flatnonzero(~hit):
        secret = withheld.get(names[q])
        if not secret:
            continue
        shown = counts(q)
        if any(c in shown and key != keys[q] for key, c in secret):
            out[q] = True
    return out


def populations(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray] | None:
    """Per row the population its n and its observed count are of, as a reader of the catalog knows them: a PROM
    score, change or MIC counts the responders at its timepoint ("prom:<timepoint>", n and count); the response
    rate the care cycles due (n, "cycles") and those responders (count); a PREM indicator the respondents
    ("prem"); every other indicator the condition's care cycles ("cycles"). Counts of different populations that
    happen to be equal are no link. None for a frame without condition and indicator columns (a PROM response
    or cost table: one population); indicators the catalog does not know (a PREM questionnaire's) are one
    population, "other", as every row was before."""
    if "indicator" not in frame or "condition" not in frame or frame.empty:
        return None
    from vbhc.catalog import PREM_KINDS, PROM_KINDS, default_catalog

    catalog = default_catalog()
    known: dict[tuple[str, str], tuple[str, str]] = {}
    pairs = list(zip(frame["condition"].astype(str), frame["indicator"].astype(str), strict=True))
    for condition, indicator in dict.fromkeys(pairs):
        try:
            definition = catalog.condition(condition).indicator(indicator)
        except KeyError:
            known[(condition, indicator)] = ("other", "other")
            continue
        if definition.kind == "response_rate":
            known[(condition, indicator)] = ("cycles", f"prom:{definition.timepoint}")
        elif definition.kind in PROM_KINDS:
            known[(condition, indicator)] = (f"prom:{definition.timepoint}",) * 2
        elif definition.kind in PREM_KINDS:
            known[(condition, indicator)] = ("prem", "prem")
        else:
            known[(condition, indicator)] = ("cycles", "cycles")
    n_family = np.array([known[pair][0] for pair in pairs], dtype=object).astype(str)
    o_family = np.array([known[pair][1] for pair in pairs], dtype=object).astype(str)
    return n_family, o_family


def signed_interval(total: float, coef: np.ndarray, lows: np.ndarray, highs: np.ndarray, i: int) -> tuple[float, float]:
    """Smallest and largest value cell `i` can take when sum(coef * cells) equals `total` (coef +1 or -1) and
    each cell lies within [lows, highs]: feasible_interval for a line whose total is itself a withheld cell (a
    unit's all-dates cell minus its withheld years equals its shown years)."""
    rest = np.delete(np.arange(len(coef)), i)
    a, lo, hi = coef[rest], lows[rest], highs[rest]
    with np.errstate(invalid="ignore"):
        low_terms, high_terms = np.minimum(a * lo, a * hi), np.maximum(a * lo, a * hi)
    rest_lo, rest_hi = float(np.nansum(low_terms)), float(np.nansum(high_terms))
    if np.isinf(low_terms).any():
        rest_lo = -math.inf
    if np.isinf(high_terms).any():
        rest_hi = math.inf
    own_lo, own_hi = total - rest_hi, total - rest_lo  # the range of coef[i] * cell i
    if coef[i] < 0:
        own_lo, own_hi = -own_hi, -own_lo
    return max(float(lows[i]), own_lo), min(float(highs[i]), own_hi)


def _line_safe(
    parts: np.ndarray,
    whole: int | None,
    hit: np.ndarray,
    n: np.ndarray,
    o: np.ndarray,
    counted: np.ndarray,
    upper: np.ndarray,
    threshold: int,
) -> bool:
    """True when no withheld cell of a line (a unit's periods `parts`, whose counts add up to the `whole`
    cell: its all-dates cell) is determined by the line's shown cells."""
    withheld = parts[hit[parts]]
    if whole is None or not hit[whole]:  # the whole is shown (or none): a total like the benchmark's
        return _safe(withheld, n, o, counted, upper, threshold)
    if len(withheld) == 0:
        return False  # the whole is the sum of the shown parts
    cells = np.append(withheld, whole)
    coef = np.append(np.ones(len(withheld)), -1.0)
    small = n[cells] < threshold
    lows = np.where(small, 0.0, float(threshold))
    highs = np.minimum(np.where(small, float(threshold - 1), math.inf), upper[cells])
    if _signed_pinned(float((coef * n[cells]).sum()), coef, lows, highs):
        return False
    if counted[cells].all() and np.isfinite(o[cells]).all():
        return not _signed_pinned(float((coef * o[cells]).sum()), coef, np.zeros(len(cells)), highs)
    return True


def _signed_pinned(total: float, coef: np.ndarray, lows: np.ndarray, highs: np.ndarray) -> bool:
    """Whether any cell's signed_interval is narrower than one: for every cell at once, as _pinned for
    feasible_interval (a grid's suppression checks its lines' cells some 100,000 times; one call per cell cost
    most of a report's suppression)."""
    with np.errstate(invalid="ignore"):
        low_terms, high_terms = np.minimum(coef * lows, coef * highs), np.maximum(coef * lows, coef * highs)
    # the other cells' sums (NaN terms count as 0, as nansum): infinite when any other cell's term is
    low_inf, high_inf = np.isinf(low_terms), np.isinf(high_terms)
    low_fin = np.where(low_inf | np.isnan(low_terms), 0.0, low_terms)
    high_fin = np.where(high_inf | np.isnan(high_terms), 0.0, high_terms)
    rest_lo = np.where(low_inf.sum() - low_inf > 0, -math.inf, low_fin.sum() - low_fin)
    rest_hi = np.where(high_inf.sum() - high_inf > 0, math.inf, high_fin.sum() - high_fin)
    own_lo, own_hi = total - rest_hi, total - rest_lo  # the range of coef[i] * cell i
    negative = coef < 0
    own_lo, own_hi = np.where(negative, -own_hi, own_lo), np.where(negative, -own_lo, own_hi)
    # fmax/fmin: a NaN bound leaves the cell's own, as max() and min() do in signed_interval
    return bool((np.fmin(highs, own_hi) - np.fmax(lows, own_lo) < 1).any())


def period_suppression(
    frame: pd.DataFrame,
    primary: np.ndarray,
    *,
    threshold: int,
    group: Sequence[str],
    period: str = "period",
    whole: str = "",
    count: str = "n",
    observed: str | None = "observed",
    observed_is_count: np.ndarray | None = None,
    upper: np.ndarray | None = None,
    keep: np.ndarray | None = None,
    unit: str = "unit",
    totals_shown: np.ndarray | None = None,
    bounded_by: np.ndarray | None = None,
    known: bool = False,
    link: bool = True,
) -> np.ndarray:
    """complementary_suppression over a grid of periods: `frame` stacks the tables of every period of the grid
    (column `period`: `whole` for all dates, each year otherwise), whose cells of one unit add up over the years
    to its all-dates cell. Each period's table is protected along the units (as complementary_suppression does)
    and each unit × `group` line along the periods: either no year is withheld or, while its all-dates cell is
    shown, at least two, the next smallest years added (or the all-dates cell withheld when no year is left)
    until no withheld count of the line is pinned down; a withheld all-dates cell needs a withheld year beside
    it. Both are repeated until neither adds a cell, so every view of the same data withholds the same cells.
    `bounded_by`: per row the position of the row whose count bounds it (the unit's volume in that period), -1
    where none; a bound counts only while that row is shown (`upper` is then ignored). `known`: the `keep` cells
    are never withheld (see complementary_suppression). `link`: withhold a shown cell of the unit in another
    group of the same period that repeats a withheld count (off where a period's table is one unit's rows, e.g.
    its cost per activity, and `unit` names the rows within it: the same activity of another unit is no link).
    """
    size = len(frame)
    hit = np.asarray(primary, dtype=bool).copy()
    if size == 0 or threshold <= 0:
        return hit

    def structure() -> tuple:
        """What depends on the frame only (the same in every pass of a grid: `once`)."""
        periods = frame[period].astype(str).to_numpy()
        n, o = _counts(frame, count, observed)
        names = frame[unit].astype(str).to_numpy()
        # the units' tables per period: a unit's cells link (n shared across indicators) within its period only
        within = frame.assign(_unit_in_period=[f"{u}\x1f{p}" for u, p in zip(names, periods, strict=True)])
        line_keys = _keys(frame, [*group, unit])
        lines = []
        for key in dict.fromkeys(line_keys):
            idx = np.flatnonzero(line_keys == key)
            wholes = idx[periods[idx] == whole]
            lines.append((idx[periods[idx] != whole], int(wholes[0]) if len(wholes) else None))
        order = np.lexsort((names, periods, n))  # smallest first; ties by period and unit: deterministic
        rank = np.empty(size, int)
        rank[order] = np.arange(size)
        _frozen(periods, names, rank, *(parts for parts, _ in lines))
        return n, o, within, lines, rank

    params = (period, whole, count, observed, unit, tuple(group))
    n, o, within, lines, rank = once("period", (frame,), params, structure)
    counted, upper_, keep_ = _marks(size, observed_is_count, upper, keep)
    by = None if bounded_by is None else np.asarray(bounded_by, int)
    options = {
        "threshold": threshold,
        "group": [*group, period],
        "count": count,
        "observed": observed,
        "observed_is_count": counted,
        "upper": upper_,
        "keep": keep_,
        "unit": "_unit_in_period" if link else None,
        "totals_shown": totals_shown,
        "known": known,
    }

    for _ in range(size + 1):  # every pass withholds at least one more cell, or stops
        before = int(hit.sum())
        if by is not None:  # a withheld volume bounds nothing: the reader does not know it
            upper_ = _bounds(by, hit, n)
            options["upper"] = upper_
        hit = complementary_suppression(within, hit, **options)
        if by is not None:  # a volume it withheld just now (n shared across indicators) bounds no line either
            upper_ = _bounds(by, hit, n)
        for parts, total in lines:
            while not _line_safe(parts, total, hit, n, o, counted, upper_, threshold):
                free = parts[~hit[parts]]
                if known:
                    free = free[~keep_[free]]
                if len(free) == 0:
                    if total is None or hit[total] or (known and keep_[total]):
                        break
                    hit[total] = True  # no year left to add: the all-dates cell is withheld
                    continue
                preferred = free[~keep_[free]]
                pool = preferred if len(preferred) else free
                candidates = pool[np.argsort(rank[pool])]
                chosen = next(
                    (
                        c
                        for c in candidates
                        if _line_safe(parts, total, _with(hit, c), n, o, counted, upper_, threshold)
                    ),
                    candidates[0],
                )
                hit[chosen] = True
        if int(hit.sum()) == before:
            break
    return hit


def _bounds(by: np.ndarray, hit: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Per row the count of the row bounding it (`by`, -1 where none) while that row is shown, else inf."""
    upper = np.full(len(by), math.inf)
    bounded = by >= 0
    upper[bounded] = np.where(hit[by[bounded]], math.inf, n[by[bounded]])
    return upper


def _with(hit: np.ndarray, cell: int) -> np.ndarray:
    out = hit.copy()
    out[cell] = True
    return out


def comparison_group_withheld(
    cells: pd.DataFrame,
    own: str | None,
    period: str,
    *,
    threshold: int,
    min_units: int = MIN_OTHER_UNITS,
    hospitals: Sequence[str] = (),
    offered: Sequence[Sequence[str]] = (),
) -> set[str]:
    """The timepoints whose comparison group ("all units" but the own one, e.g. the PROM score histogram's) is
    withheld in the view of `period` ("" all dates, or a year). `cells`: one row per patient score of the whole
    registry over all dates (columns unit, hospital, timepoint, year). The group's bins are counts of its patients,
    so a group of fewer than `threshold` patients or `min_units` units (or units of fewer hospitals) is one unit's
    small counts (a condition or
    year with few responses at 12 months: two other hospitals, four patients, one a bin).

    Differencing is closed as for the indicator tables: all dates minus the shown years gives the withheld years'
    group back, so shown years are withheld with them (smallest first) until that remainder passes the rule too;
    and a comparison group of some `hospitals` is withheld where the registry's group minus it (the units outside
    the group) would not pass. `offered`: the hospitals of every group offered to a viewer who sees other units
    only in groups (a manager, vbhc.access.offered_groups): two offered groups' panels differ by an "atom" (the
    units with the same membership in each, the own unit's hospital a member of all), so a timepoint where an atom
    fails the rule in all dates or any year is withheld in every period and group view: of groups that held five
    hospitals each, one hospital's patients at 12 months could be the only ones of an atom."""
    if threshold <= 0:
        return set()
    others = cells[cells["unit"].astype(str) != str(own)] if own is not None else cells
    chosen = others[others["hospital"].astype(str).isin(list(hospitals))] if hospitals else others
    rest = others[~others["hospital"].astype(str).isin(list(hospitals))] if hospitals else others.iloc[:0]

    def fails(part: pd.DataFrame) -> bool:
        # units of as many hospitals: at department level five departments of one other hospital made a panel of
        # that hospital's patients
        return len(part) < threshold or part["unit"].nunique() < min_units or part["hospital"].nunique() < min_units

    withheld: set[str] = set()
    if hospitals and offered:
        withheld |= _thin_atoms(cells, others, own, offered, fails)
    for timepoint, part in chosen.groupby(chosen["timepoint"].astype(str)):
        outside = rest[rest["timepoint"].astype(str) == timepoint]
        if len(outside) and fails(outside):  # the registry's group minus this one would be the units outside it
            withheld.add(str(timepoint))
            continue
        years = {str(y): p for y, p in part.groupby(part["year"].astype(str))}
        hidden = {y for y, p in years.items() if fails(p)}
        whole_hidden = fails(part)
        if not whole_hidden and hidden:
            shown = sorted((len(years[y]), y) for y in years if y not in hidden)
            while fails(pd.concat([years[y] for y in hidden])) and shown:
                hidden.add(shown.pop(0)[1])
        if (period == "" and whole_hidden) or period in hidden:
            withheld.add(str(timepoint))
    return withheld


def tighten_bounds(
    a: sparse.spmatrix,
    b: np.ndarray,
    at_most: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    *,
    rounds: int = 500,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """What a reader who combines every equation at once knows of each count: the integer intervals [lo, hi]
    tightened through `a @ x == b` (coefficients +-1: each cell is the row's total minus the others' bounds) and
    the pairs `at_most` (i, j: cell i <= cell j) until nothing changes. The per-equation checks above look at one
    equation each; a chain of them (a unit's years, then a year's benchmark) pins cells none of them pins alone.

    Returns (lo, hi, row, by): per cell the rows of `a` that last raised its lower and lowered its upper bound
    (columns 0 and 1, -1 where none) and the cells that did through `at_most` (-1 where none), so that a caller
    can withhold a shown cell of the equations that pinned one."""
    a = sparse.csr_matrix(a)
    size = len(lo)
    lo, hi = np.asarray(lo, float).copy(), np.asarray(hi, float).copy()
    row_of = np.repeat(np.arange(a.shape[0]), np.diff(a.indptr))
    cols, coef = a.indices, a.data.astype(float)
    rhs = np.asarray(b, float)[row_of]
    positive = coef > 0
    pairs = np.asarray(at_most, int).reshape(-1, 2)
    row = -np.ones((size, 2), int)
    by = -np.ones((size, 2), int)
    m = a.shape[0]
    for _ in range(rounds):
        changed = False
        if len(cols):
            with np.errstate(invalid="ignore"):
                t_lo = np.where(positive, coef * lo[cols], coef * hi[cols])
                t_hi = np.where(positive, coef * hi[cols], coef * lo[cols])
            inf_lo, inf_hi = np.isinf(t_lo), np.isinf(t_hi)
            fin_lo, fin_hi = np.where(inf_lo, 0.0, t_lo), np.where(inf_hi, 0.0, t_hi)
            sum_lo = np.bincount(row_of, fin_lo, minlength=m)[row_of]
            sum_hi = np.bincount(row_of, fin_hi, minlength=m)[row_of]
            n_lo = np.bincount(row_of, inf_lo, minlength=m)[row_of]
            n_hi = np.bincount(row_of, inf_hi, minlength=m)[row_of]
            rest_lo = np.where(n_lo - inf_lo > 0, -math.inf, sum_lo - fin_lo)  # the other cells' smallest sum
            rest_hi = np.where(n_hi - inf_hi > 0, math.inf, sum_hi - fin_hi)
            own_lo, own_hi = rhs - rest_hi, rhs - rest_lo  # the range of coef * this cell
            new_lo = np.ceil(np.where(positive, own_lo / coef, own_hi / coef) - 1e-6)  # counts are integers
            new_hi = np.floor(np.where(positive, own_hi / coef, own_lo / coef) + 1e-6)
            best_lo = np.full(size, -math.inf)
            best_hi = np.full(size, math.inf)
            np.maximum.at(best_lo, cols, new_lo)
            np.minimum.at(best_hi, cols, new_hi)
            up = best_lo > lo + 1e-9
            down = best_hi < hi - 1e-9
            if up.any() or down.any():
                changed = True
                k = np.flatnonzero(up[cols] & (new_lo == best_lo[cols]))
                row[cols[k], 0], by[cols[k], 0] = row_of[k], -1
                k = np.flatnonzero(down[cols] & (new_hi == best_hi[cols]))
                row[cols[k], 1], by[cols[k], 1] = row_of[k], -1
                lo = np.where(up, best_lo, lo)
                hi = np.where(down, best_hi, hi)
        if len(pairs):
            small, large = pairs[:, 0], pairs[:, 1]
            down = hi[large] < hi[small] - 1e-9  # cell i <= cell j: i's upper bound is j's
            if down.any():
                changed = True
                hi[small[down]] = hi[
                    large[down]
                ]  # several pairs of one cell: a later one may loosen, a next round fixes
                by[small[down], 1], row[small[down], 1] = large[down], -1
            up = lo[small] > lo[large] + 1e-9
            if up.any():
                changed = True
                lo[large[up]] = lo[small[up]]
                by[large[up], 0], row[large[up], 0] = small[up], -1
        if not changed:
            break
    return lo, hi, row, by


def _thin_atoms(cells: pd.DataFrame, others: pd.DataFrame, own: str | None, offered, fails) -> set[str]:
    """The timepoints where an atom of the `offered` groups' hospitals (`others`' rows with the same membership in
    each; the own unit's hospital counts as a member of every group) fails the rule over all dates or in a year."""
    mine = cells.loc[cells["unit"].astype(str) == str(own), "hospital"].astype(str) if own is not None else []
    own_hospitals = set(mine)
    hospital = others["hospital"].astype(str)
    member = [hospital.isin(set(map(str, g)) | own_hospitals).to_numpy() for g in offered]
    key = pd.Series(["".join("1" if m[i] else "0" for m in member) for i in range(len(others))], index=others.index)
    thin: set[str] = set()
    for (timepoint, _), atom in others.groupby([others["timepoint"].astype(str), key]):
        parts = [atom, *(p for _, p in atom.groupby(atom["year"].astype(str)))]
        if any(fails(p) for p in parts):
            thin.add(str(timepoint))
    return thin
