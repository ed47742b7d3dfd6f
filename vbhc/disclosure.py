"""Statistical disclosure control shared by the pages (vbhc.access) and the exports (vbhc.reports.privacy).

Withholding a small cell is not enough when the same view shows the other units and an exact benchmark: the
benchmark's totals minus the shown units give the withheld cell back (one unknown, one equation). So every
suppression here is *complementary*: per table of cells that share a total (one indicator, one PROM timepoint,
one unit's cost breakdown) either no cell or at least two cells are withheld, and more are added until an
attacker who knows the exact totals, the small-number threshold, which cells are small and every shown cell
still cannot pin any withheld count down to one value. Cells of the same unit in other tables that show the
same count as a withheld cell ("n shared across indicators") are withheld too, as they would give it away.

Other units in a manager's view carry no exact count at all: only a band (`n_band`), so rows cannot be linked
across indicators by their n, nor the units' totals be differenced.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

__all__ = [
    "MIN_OTHER_UNITS",
    "N_BANDS",
    "complementary_suppression",
    "feasible_interval",
    "n_band",
    "n_band_bounds",
]

#: A manager's comparison group must hold at least this many other units, else one unit could be isolated.
MIN_OTHER_UNITS = 5
#: Lower edges of the bands in which other units' numbers of care cycles are shown (above the threshold).
N_BANDS = (10, 50, 100, 250, 500, 1000)


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
    total = float(n[sel].sum())
    for i in range(len(sel)):
        low, high = feasible_interval(total, lows, highs, i)
        if high - low < 1:
            return False
    obs = o[sel]
    if counted[sel].all() and np.isfinite(obs).all():
        total_o = float(obs.sum())
        for i in range(len(sel)):
            low, high = feasible_interval(total_o, np.zeros(len(sel)), highs, i)
            if high - low < 1:
                return False
    return True


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
) -> np.ndarray:
    """The cells to withhold: `primary` plus the fewest further cells (smallest count first, never a `keep`
    cell while another will do) so that no withheld count or event count can be worked out of the group's
    totals, and so that no shown cell of the same `unit` in another group repeats a withheld count.

    `group` names the columns of cells that share a total (e.g. condition and indicator); `observed_is_count`
    marks rows whose observed value is a count (events, responders); `upper` is what an attacker knows as an
    upper bound of each count from elsewhere (e.g. the unit's volume), inf where nothing. `totals_shown` marks
    rows whose group total can be derived from the view (a benchmark); groups without it (the volume, which has
    no benchmark) need no secondary cells: there is nothing to take the shown cells from. Default: every group.
    """
    size = len(frame)
    hit = np.asarray(primary, dtype=bool).copy()
    if size == 0 or threshold <= 0:
        return hit
    n = pd.to_numeric(frame[count], errors="coerce").fillna(0).to_numpy(float)
    o = (
        pd.to_numeric(frame[observed], errors="coerce").to_numpy(float)
        if observed and observed in frame
        else np.full(size, np.nan)
    )
    counted = np.zeros(size, bool) if observed_is_count is None else np.asarray(observed_is_count, bool)
    upper = np.full(size, math.inf) if upper is None else np.asarray(upper, float)
    upper = np.where(np.isfinite(upper), upper, math.inf)
    keep = np.zeros(size, bool) if keep is None else np.asarray(keep, bool)
    names = frame[unit].astype(str).to_numpy() if unit and unit in frame else np.arange(size).astype(str)
    keys = frame[list(group)].astype(str).agg("\x1f".join, axis=1).to_numpy() if group else np.zeros(size, str)
    groups = [np.flatnonzero(keys == k) for k in dict.fromkeys(keys)]
    if totals_shown is not None:
        shown = np.asarray(totals_shown, bool)
        groups = [idx for idx in groups if shown[idx].any()]
    order = np.lexsort((names, o if np.isfinite(o).all() else np.zeros(size), n))
    rank = np.empty(size, int)
    rank[order] = np.arange(size)

    for _ in range(size + 1):  # every pass withholds at least one more cell, or stops
        changed = False
        for idx in groups:
            while not _safe(idx[hit[idx]], n, o, counted, upper, threshold):
                free = idx[~hit[idx]]
                if len(free) == 0:
                    break
                preferred = free[~keep[free]]
                pool = preferred if len(preferred) else free
                candidates = pool[np.argsort(rank[pool])]
                chosen = next(
                    (c for c in candidates if _safe(np.append(idx[hit[idx]], c), n, o, counted, upper, threshold)),
                    candidates[0],
                )
                hit[chosen] = True
                changed = True
        if unit:
            linked = _linked(hit, n, o, counted, names, keys, threshold)
            if linked.any():
                hit |= linked
                changed = True
        if not changed:
            break
    return hit


def _linked(
    hit: np.ndarray,
    n: np.ndarray,
    o: np.ndarray,
    counted: np.ndarray,
    names: np.ndarray,
    keys: np.ndarray,
    threshold: int,
) -> np.ndarray:
    """Shown cells of a unit whose count (n, or events/responders) equals a withheld count of the same unit in
    another group: showing them would tell the withheld one. Only counts at or above the threshold link (a
    small count such as 0 or 3 repeats by chance everywhere)."""
    out = np.zeros(len(hit), bool)
    withheld: dict[str, set[tuple[str, float]]] = {}
    for p in np.flatnonzero(hit):
        values = {n[p]} | ({o[p]} if counted[p] and np.isfinite(o[p]) else set())
        withheld.setdefault(names[p], set()).update((keys[p], v) for v in values if v >= threshold)
    if not withheld:
        return out
    for q in np.flatnonzero(~hit):
        secret = withheld.get(names[q])
        if not secret:
            continue
        values = {n[q]} | ({o[q]} if counted[q] and np.isfinite(o[q]) else set())
        if any(v in values and key != keys[q] for key, v in secret):
            out[q] = True
    return out
