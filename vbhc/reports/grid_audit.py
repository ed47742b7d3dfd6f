"""An audit of a grid's suppression against every equation its files publish at once.

vbhc.disclosure protects each equation on its own: an indicator's units against the benchmark, a unit's years
against its all-dates cell, a count repeated in another table of the same unit. A reader may combine them: the
all-dates events of a unit minus its shown years and a year whose benchmark is 0 events give its withheld events
of another year, and that year's benchmark minus them gives every other unit's small cell. So after the
per-equation rules the grid is audited as a whole: every count the files hold is a variable (exact where shown;
0..threshold-1 where withheld and small, threshold or more where withheld and not small; events within 0..n and
every count within the unit's volume), every published equation (benchmark totals per period, a unit's years
adding up to its all-dates cell, equal counts of a unit in one period) tightens the variables' intervals until
nothing changes (vbhc.disclosure.tighten_bounds), and a withheld small count left with one value is repaired:
a shown row of an equation that pinned it is withheld as well, the per-equation rules run again on top, and the
audit repeats. A count that every cell withheld would still give away (a benchmark of 0 events; on a page, with
the own hospitals' rows its reader knows) is no leak of the suppression and left alone: judged by a linear
programme, as strong as the LP attacker of the tests, since intervals miss sums over every unit and year.
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse

from vbhc.catalog import PROPORTION_KINDS
from vbhc.disclosure import tighten_bounds

__all__ = ["Cells", "carried", "grid_cells", "pinned_cells", "repairs"]

#: The tables a cell can belong to: the indicator table or one of the frames beside it.
TABLE = "table"


class Cells:
    """Every count of a grid's files as one variable each, with the equations between them (see module docstring).

    `where[i]`: (source, period, row) of cell i (source TABLE or a frame's name), `value`, `withheld`, `small`,
    `target` (a withheld small count the audit must not let be pinned), `eq` (sparse, coefficients +-1) with
    `rhs`, and `at_most` pairs (i, j): cell i <= cell j."""

    def __init__(self) -> None:
        self.where: list[tuple[str, str, int]] = []
        self.value: list[float] = []
        self.withheld: list[bool] = []
        self.small: list[bool] = []
        self.is_events: list[bool] = []
        self.rank: list[float] = []  # the row's count: the cheapest shown row to withhold is the smallest
        self.lines: dict[tuple, list[tuple[int, float]]] = defaultdict(list)
        self.at_most: list[tuple[int, int]] = []

    def add(self, where: tuple[str, str, int], value: float, withheld: bool, small: bool, events: bool, rank: float):
        """Append a cell; returns its index."""
        self.where.append(where)
        self.value.append(value)
        self.withheld.append(withheld)
        self.small.append(small)
        self.is_events.append(events)
        self.rank.append(rank)
        return len(self.value) - 1


def _number(value: object) -> float:
    number = float(pd.to_numeric(value, errors="coerce"))
    return 0.0 if math.isnan(number) else number


def grid_cells(
    tables: Mapping[str, pd.DataFrame],
    masks: Mapping[str, np.ndarray],
    frames: Mapping[str, Mapping[str, pd.DataFrame]],
    frame_masks: Mapping[str, Mapping[str, np.ndarray]],
    threshold: int,
) -> tuple[Cells, sparse.csr_matrix, np.ndarray]:
    """The cells of a grid (as GridMasks holds it) and its equations: (cells, A, b) with A @ true values == b."""
    cells = Cells()
    unit_period: dict[tuple[str, str], list[int]] = defaultdict(list)
    volume: dict[tuple[str, str], int] = {}
    totals: dict[tuple, list[int]] = defaultdict(list)
    line_of: dict[int, tuple] = {}

    def put(key: tuple[str, str, int], line: tuple, unit: str, n: float, o: float | None, hidden: bool, **kw):
        small = kw.get("small", n < threshold)
        i = cells.add(key, n, hidden, small, False, n)
        period = key[1]
        line_of[i] = (unit, *line, "n")
        unit_period[(unit, period)].append(i)
        if kw.get("total"):
            totals[(period, *line, "n")].append(i)
        if kw.get("volume"):
            volume[(unit, period)] = i
        if o is not None:
            j = cells.add(key, o, hidden, small, True, n)
            line_of[j] = (unit, *line, "o")
            unit_period[(unit, period)].append(j)
            if kw.get("total"):
                totals[(period, *line, "o")].append(j)
            cells.at_most.append((j, i))

    for period, table in tables.items():
        mask = np.asarray(masks.get(period, np.zeros(len(table), bool)), bool)
        if len(mask) != len(table) or not {"unit", "indicator", "n"} <= set(table.columns):
            continue
        targets = pd.to_numeric(table.get("target", pd.Series(np.nan, index=table.index)), errors="coerce")
        kinds = table["kind"].astype(str).to_numpy() if "kind" in table else np.full(len(table), "")
        observed = table["observed"] if "observed" in table else pd.Series(np.nan, index=table.index)
        for i, (unit, indicator, n, o, kind, target) in enumerate(
            zip(
                table["unit"].astype(str),
                table["indicator"].astype(str),
                table["n"],
                observed,
                kinds,
                targets,
                strict=True,
            )
        ):
            o_ = float(pd.to_numeric(o, errors="coerce"))
            counted = kind in PROPORTION_KINDS and math.isfinite(o_) and o_ == round(o_)
            put(
                (TABLE, period, i),
                ("t", indicator),
                unit,
                _number(n),
                o_ if counted else None,
                bool(mask[i]),
                total=bool(np.isfinite(target)),
                volume=kind == "volume",
            )
    for what, by_period in frames.items():
        for period, frame in by_period.items():
            mask = frame_masks.get(what, {}).get(period)
            if mask is None or not len(frame) or len(mask) != len(frame):
                continue
            mask = np.asarray(mask, bool)
            if what == "prom_response":
                rows = zip(
                    frame["unit"].astype(str), frame["instrument"], frame["timepoint"], frame["eligible"], strict=True
                )
                for i, ((unit, instrument, timepoint, eligible), responded) in enumerate(
                    zip(rows, frame["responded"], strict=True)
                ):
                    put(
                        (what, period, i),
                        ("r", str(instrument), str(timepoint)),
                        unit,
                        _number(eligible),
                        _number(responded),
                        bool(mask[i]),
                        total=True,
                    )
            elif what == "cost_breakdown":
                rows = zip(
                    frame["unit"].astype(str), frame["activity"], frame["cycles"], frame["costed_cycles"], strict=True
                )
                for i, (unit, activity, cycles, costed) in enumerate(rows):
                    n = _number(cycles)
                    put(
                        (what, period, i),
                        ("c", str(activity)),
                        unit,
                        n,
                        None,
                        bool(mask[i]),
                        small=min(n, _number(costed)) < threshold,
                    )

    value = np.asarray(cells.value, float)
    rows: list[list[tuple[int, float]]] = []
    rhs: list[float] = []
    equal: list[tuple[int, int]] = []
    combinable: list[int] = []  # the benchmarks' and lines' rows: a reader subtracts them from each other
    for members in totals.values():  # a benchmark's total per period
        combinable.append(len(rows))
        rows.append([(i, 1.0) for i in members])
        rhs.append(float(value[members].sum()))
    by_line: dict[tuple, list[int]] = defaultdict(list)
    for i, line in line_of.items():
        by_line[line].append(i)
    for members in by_line.values():  # a unit's years add up to its all-dates cell, where they do
        whole = [i for i in members if cells.where[i][1] == ""]
        years = [i for i in members if cells.where[i][1] != ""]
        if len(whole) == 1 and years and abs(value[years].sum() - value[whole[0]]) < 1e-9:
            combinable.append(len(rows))
            rows.append([(i, 1.0) for i in years] + [(whole[0], -1.0)])
            rhs.append(0.0)
    for (unit, period), members in unit_period.items():
        by_value: dict[float, list[int]] = defaultdict(list)
        for i in members:  # equal counts of a unit in one period (n shared across indicators)
            if value[i] >= threshold or (not cells.is_events[i] and cells.small[i]):
                by_value[float(value[i])].append(i)
        for same in by_value.values():
            for a, b in itertools.pairwise(same):
                equal.append((a, b))
                rows.append([(a, 1.0), (b, -1.0)])
                rhs.append(0.0)
        bound = volume.get((unit, period))
        if bound is not None:  # every count within the unit's volume, where it is
            cells.at_most.extend((i, bound) for i in members if i != bound and value[i] <= value[bound])
    withheld = np.asarray(cells.withheld, bool)
    for derived in _differences([rows[k] for k in combinable], value, withheld, equal):
        rows.append(derived)
        rhs.append(float(sum(coef * value[i] for i, coef in derived)))
    r = [k for k, row in enumerate(rows) for _ in row]
    c = [i for row in rows for i, _ in row]
    d = [coef for row in rows for _, coef in row]
    a = sparse.csr_matrix((d, (r, c)), shape=(len(rows), len(value)))
    return cells, a, np.asarray(rhs, float)


def _differences(
    rows: list[list[tuple[int, float]]], value: np.ndarray, withheld: np.ndarray, equal: list[tuple[int, int]]
) -> list[list[tuple[int, float]]]:
    """Pairwise differences of `rows` (one unit's lines over the years, or one period's benchmarks) that leave
    at most a few withheld cells once cells of equal count (`equal`: n shared across indicators) cancel: two
    lines whose years are the same counts but one give the difference of that year's cells (with the cells'
    bounds often one value). Each difference is a row over cells: one withheld cell per class of equal cells,
    the shown cells as they are."""
    parent = list(range(len(value)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for a, b in equal:
        parent[find(a)] = find(b)
    known = {find(int(i)): int(i) for i in np.flatnonzero(~withheld)}  # a class with a shown cell: that cell
    merged = []
    for row in rows:
        terms: dict[int, float] = defaultdict(float)
        cell_of: dict[int, int] = {}
        for i, coef in row:
            k = find(i)
            terms[k] += coef
            cell_of.setdefault(k, known.get(k, i))
        merged.append((terms, cell_of))
    # rows x (class, coefficient) of the withheld terms: a pair's shared terms cancel in its difference
    keys: dict[tuple[int, float], int] = {}
    r, c = [], []
    for x, (terms, _) in enumerate(merged):
        for k, coef in terms.items():
            if coef and k not in known:
                r.append(x)
                c.append(keys.setdefault((k, coef), len(keys)))
    if not keys:
        return []
    m = sparse.csr_matrix((np.ones(len(r)), (r, c)), shape=(len(merged), len(keys)))
    shared = sparse.triu(m @ m.T, k=1).tocoo()
    size = np.asarray(m.sum(axis=1)).ravel()
    left = size[shared.row] + size[shared.col] - 2 * shared.data  # withheld terms the difference keeps
    out = []
    for x, y in zip(shared.row[(left >= 1) & (left <= 3)], shared.col[(left >= 1) & (left <= 3)], strict=True):
        (tx, cx), (ty, cy) = merged[x], merged[y]
        row = []
        for k in set(tx) | set(ty):
            coef = tx.get(k, 0.0) - ty.get(k, 0.0)
            if coef:
                row.append((cx.get(k, cy.get(k)), coef))
        out.append(row)
    return out


def _bounds(cells: Cells, withheld: np.ndarray, threshold: int) -> tuple[np.ndarray, np.ndarray]:
    """What the reader knows of each cell before any equation: exact where shown, else the small band or more."""
    value = np.asarray(cells.value, float)
    small = np.asarray(cells.small, bool)
    events = np.asarray(cells.is_events, bool)
    lo = np.where(withheld, np.where(small | events, 0.0, float(threshold)), value)
    hi = np.where(withheld, np.where(small, float(threshold - 1), math.inf), value)
    return np.minimum(lo, value), np.maximum(hi, value)  # never tighter than the truth


def pinned_cells(
    cells: Cells,
    a: sparse.csr_matrix,
    b: np.ndarray,
    threshold: int,
    *,
    known: np.ndarray | None = None,
    judged: dict[tuple, Any] | None = None,
    certificates: dict[int, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The withheld small counts pinned to one value that withholding could have hidden, and per cell the rows
    of `a` and the cells whose bounds pinned it: (pinned, row, by). `known`: the cells the reader knows whatever
    is withheld (a page's own hospitals' rows). A count still pinned with every other cell withheld is no leak
    of the suppression (a benchmark of 0 events; a year without benchmark whose units' cycles the all-dates
    benchmark minus the years' benchmarks gives as 0): that is judged as the LP attacker judges it
    (_open_cells), since interval tightening alone misses such sums over every unit and year. `judged`: that
    judgement per cell ((source, period, row), events) kept across an audit's passes with the same `known` (it
    does not depend on what is withheld). `certificates`: filled with the shown cells each pin of the programme
    rests on (_certificate), for the repair."""
    withheld = np.asarray(cells.withheld, bool)
    target = withheld & np.asarray(cells.small, bool)
    if not target.any():
        empty = np.zeros(0, int)
        return empty, empty, empty
    pairs = np.asarray(cells.at_most, int).reshape(-1, 2)
    plain = _bounds(cells, withheld, threshold)
    lo, hi, row, by = tighten_bounds(a, b, pairs, *plain)
    hidden = np.ones(len(withheld), bool) if known is None else ~np.asarray(known, bool)
    floor, ceiling = _bounds(cells, hidden, threshold)
    everything: list[tuple[np.ndarray, np.ndarray]] = []  # the intervals with every cell withheld, once
    judged = {} if judged is None else judged

    def leaks(pinned: np.ndarray) -> np.ndarray:
        """Those of `pinned` that withholding could hide (see above)."""
        if not len(pinned):
            return pinned
        if not everything:
            everything.append(tighten_bounds(a, b, pairs, floor, ceiling)[:2])
        lo_all, hi_all = everything[0]
        pinned = pinned[hi_all[pinned] - lo_all[pinned] >= 1 - 1e-9]
        keys = [(cells.where[i], cells.is_events[i]) for i in pinned]
        new = np.array([key not in judged for key in keys], bool)
        if new.any():
            for key, is_open in zip(
                [k for k, n in zip(keys, new, strict=True) if n],
                _open_cells(a, b, pairs, floor, ceiling, pinned[new]),
                strict=True,
            ):
                judged[key] = bool(is_open)
        return pinned[np.array([judged[key] for key in keys], bool)] if len(pinned) else pinned

    pinned = leaks(np.flatnonzero(target & (hi - lo < 1 - 1e-9)))
    # what the intervals leave open, the linear programme judges (as the LP attacker): a sum over many equations
    # (twelve on the 20,000-cycle demo's hip grid; two indicators whose n differ by one per unit on thyroid's)
    # pins counts no single chain of intervals does. Its tightened intervals bound it: the same cells, fewer
    # solutions to look through. Only once the intervals pin nothing: a pass that withholds against them is
    # audited again anyway, and the programme costs most of an audit
    # Cells this programme opened in an earlier pass that withheld a part of what this one withholds are left out
    # (the audit's passes only add cells: each programme a relaxation of the one before, its open cells stay
    # open). The rest: a few programmes open most; of those they leave closed, the ones the programme with every
    # cell withheld closes too (kept in `judged`) are no leak either way (it is a relaxation of this one); only
    # the others are proven closed one by one, two programmes each (breast's 4,000-cycle grid: 39 of 41 cells
    # closed either way, some 80 programmes every pass)
    rest = np.flatnonzero(target & (hi - lo >= 1 - 1e-9)) if not len(pinned) else pinned[:0]
    before = judged.get(_OPENED)
    if before is not None and (len(before[0]) != len(withheld) or (before[0] & ~withheld).any()):
        before = None
    opened: set[tuple] = set() if before is None else before[1]
    keys = [(cells.where[i], cells.is_events[i]) for i in rest]
    rest = rest[np.array([key not in opened and judged.get(key, True) for key in keys], bool)]
    if any((cells.where[i], cells.is_events[i]) not in judged for i in rest):
        found = _open_cells(a, b, pairs, lo, hi, rest, each=False)
        opened = opened | {(cells.where[i], cells.is_events[i]) for i in rest[found]}
        rest = leaks(rest[~found])
    if len(rest):
        found = _open_cells(a, b, pairs, lo, hi, rest)
        opened = opened | {(cells.where[i], cells.is_events[i]) for i in rest[found]}
        pinned = rest[~found]
        if certificates is not None:
            certificates.update((int(cell), _certificate(a, b, pairs, *plain, int(cell))) for cell in pinned)
    judged[_OPENED] = (withheld.copy(), opened)
    return pinned, row, by


def carried(judged: dict[tuple, Any]) -> dict[tuple, Any]:
    """The judgements of an audit (pinned_cells' `judged`) that hold for the audit of a grid withholding no less
    whose reader knows no more (a page's for its file's: the own hospitals' rows no longer known): what the
    programmes found open; a cell they closed is judged again."""
    return {key: value for key, value in judged.items() if value is not False}


#: The key of `judged` (pinned_cells) under which the audit keeps the cells its programme found open, with the
#: cells withheld then.
_OPENED = ("opened",)


def _open_cells(
    a: sparse.csr_matrix,
    b: np.ndarray,
    pairs: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    cells: np.ndarray,
    *,
    each: bool = True,
) -> np.ndarray:
    """Per cell of `cells`, whether it can take two values at least one apart under `a @ x == b`, the pairs
    (x_i <= x_j) and the bounds: a linear programme (every solution seen widens each cell's range; a sum of the
    cells first, then each cell still closed both ways). Relaxing integrality only widens what is feasible, so
    a cell found closed is closed for the LP attacker too. Without `each` no cell is proven closed on its own:
    False then means closed or not yet shown open (the cheap programmes that open most cells)."""
    size = a.shape[1]
    programme = _reduced(a, b, pairs, lo, hi)
    seen_lo = np.full(len(cells), math.inf)
    seen_hi = np.full(len(cells), -math.inf)
    done = np.zeros(len(cells), bool)  # closed for certain

    def solve(c: np.ndarray) -> np.ndarray | None:
        x = programme(c)
        if x is None:
            return None
        np.minimum(seen_lo, x[cells], out=seen_lo)
        np.maximum(seen_hi, x[cells], out=seen_hi)
        return x

    def opened() -> np.ndarray:
        return seen_hi - seen_lo >= 1 - 1e-6

    for sign in (1.0, -1.0):
        c = np.zeros(size)
        c[cells] = sign
        if solve(c) is None:
            return np.ones(len(cells), bool)  # no solution: judge every cell open (the audit stays as strict)
    rng = np.random.default_rng(0)  # a few random directions open most cells at once (seeded: deterministic)
    for _ in range(12):  # while they open a cell (the rest is closed, or opens one by one below)
        closed = ~opened()
        if closed.sum() < 4:
            break
        c = np.zeros(size)
        c[cells[closed]] = rng.normal(size=int(closed.sum()))
        solve(c)
        if not (closed & opened()).any():
            break
    # cells closed at their floor (ceiling) so far: when pushing them all up (down) at once moves their sum by
    # less than one, none of them can move by one (the others cannot go below their floor) - one programme; when
    # it moves more, the cells it moved leave the set and the rest are pushed again (a benchmark of 0 events
    # closes dozens of cells at 0: one programme, not two per cell)
    for sign, end in ((-1.0, lo), (1.0, hi)):
        for _ in range(20):
            at_end = ~opened() & ~done
            at_end &= (np.abs(seen_lo - end[cells]) < 1e-6) & (np.abs(seen_hi - end[cells]) < 1e-6)
            if not at_end.any():
                break
            c = np.zeros(size)
            c[cells[at_end]] = sign
            x = solve(c)
            if x is None:
                break
            if abs(float((x[cells[at_end]] - end[cells[at_end]]).sum())) < 1 - 1e-6:
                done[at_end] = True
                break
    for k, cell in enumerate(cells if each else ()):  # without `each`: closed or not proven open
        for sign in (1.0, -1.0):
            if opened()[k] or done[k]:
                break
            c = np.zeros(size)
            c[cell] = sign
            solve(c)
    return opened()


def _programme(a: sparse.csr_matrix, b: np.ndarray, pairs: np.ndarray, lo: np.ndarray, hi: np.ndarray):
    """linprog of an objective under `a @ x == b`, the pairs (x_i <= x_j) and the bounds `lo`..`hi`."""
    from scipy.optimize import linprog

    size = a.shape[1]
    ub = None
    if len(pairs):
        k = np.arange(len(pairs))
        ub = sparse.csr_matrix(
            (np.r_[np.ones(len(pairs)), -np.ones(len(pairs))], (np.r_[k, k], np.r_[pairs[:, 0], pairs[:, 1]])),
            shape=(len(pairs), size),
        )
    bounds = [(low, high if math.isfinite(high) else None) for low, high in zip(lo.tolist(), hi.tolist(), strict=True)]
    b_ub = None if ub is None else np.zeros(ub.shape[0])
    return lambda c: linprog(c, A_ub=ub, b_ub=b_ub, A_eq=a, b_eq=b, bounds=bounds, method="highs")


def _reduced(a: sparse.csr_matrix, b: np.ndarray, pairs: np.ndarray, lo: np.ndarray, hi: np.ndarray):
    """_programme over the cells not fixed (`lo` == `hi`: shown, or pinned by the intervals) with their values
    moved to the right-hand side, a pair with one side fixed a bound of the other, and the equations left
    without a free cell dropped: the same solutions (a function of the objective giving every cell's value,
    None without a solution) from a programme a fraction of the size (on the 20,000-cycle demo most cells
    are shown)."""
    fixed = lo == hi
    free = np.flatnonzero(~fixed)
    x = np.where(fixed, lo, 0.0)
    if not len(free):
        return lambda c: x.copy()
    low, high = lo.copy(), hi.copy()
    pairs = np.asarray(pairs, int).reshape(-1, 2)
    first, second = pairs[:, 0], pairs[:, 1]
    bounded = ~fixed[first] & fixed[second]  # x_i <= a fixed x_j
    np.minimum.at(high, first[bounded], hi[second[bounded]])
    floored = fixed[first] & ~fixed[second]  # a fixed x_i <= x_j
    np.maximum.at(low, second[floored], lo[first[floored]])
    both = ~fixed[first] & ~fixed[second]
    position = np.full(len(lo), -1)
    position[free] = np.arange(len(free))
    a = sparse.csr_matrix(a)
    rhs = b - a @ x
    sub = a[:, free].tocsr()
    rows = np.flatnonzero(np.diff(sub.indptr) > 0)
    inner = _programme(sub[rows], rhs[rows], position[pairs[both]], low[free], high[free])

    def solve(c: np.ndarray) -> np.ndarray | None:
        res = inner(c[free])
        if res.status != 0:
            return None
        out = x.copy()
        out[free] = res.x
        return out

    return solve


def _certificate(
    a: sparse.csr_matrix, b: np.ndarray, pairs: np.ndarray, lo: np.ndarray, hi: np.ndarray, cell: int
) -> np.ndarray:
    """The shown cells (`lo` == `hi`) whose values the programme's least and largest value of `cell` rest on:
    a nonzero reduced cost at either optimum. For a pin of the programme (no chain of intervals names the
    equations that pinned it): withholding one of these frees the bound, where a shown cell merely beside the
    pin in some equation (breast's 4,000-cycle grid: three cost rows, one pass each) changes nothing."""
    programme = _programme(a, b, pairs, lo, hi)
    out = np.zeros(a.shape[1], bool)
    for sign in (1.0, -1.0):
        c = np.zeros(a.shape[1])
        c[cell] = sign
        res = programme(c)
        if res.status != 0:
            continue
        cost = np.abs(np.asarray(res.lower.marginals)) + np.abs(np.asarray(res.upper.marginals))
        out |= cost > 1e-9
    return np.flatnonzero(out & (lo == hi))


def repairs(
    got_tables: Mapping[str, pd.DataFrame],
    masks: Mapping[str, np.ndarray],
    frames: Mapping[str, Mapping[str, pd.DataFrame]],
    frame_masks: Mapping[str, Mapping[str, np.ndarray]],
    threshold: int,
    *,
    keep: Mapping[tuple[str, str, int], bool] | None = None,
    judged: dict[tuple, Any] | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, dict[str, np.ndarray]]] | None:
    """The masks with further rows withheld so that no withheld small count the audit pins stays pinned: per
    pinned cell the smallest shown row of an equation that pinned it (following the chain through cells the
    equations pinned before), never a `keep` row (own hospitals' rows the reader knows). None when nothing is
    pinned or nothing can be withheld against it. `judged`: see pinned_cells (one dict per `keep`)."""
    cells, a, b = grid_cells(got_tables, masks, frames, frame_masks, threshold)
    known = np.array([bool((keep or {}).get(where, False)) for where in cells.where], bool)
    certificates: dict[int, np.ndarray] = {}
    pinned, reason, by = pinned_cells(cells, a, b, threshold, known=known, judged=judged, certificates=certificates)
    if not len(pinned):
        return None
    withheld = np.asarray(cells.withheld, bool)
    rank = np.asarray(cells.rank, float)
    csr = a.tocsr()
    # per pin the shown rows (not kept) nearest to it in the equations that pinned it; then rows ranked across
    # all pins: the one that breaks the most pins first, the smallest count among equals, until every pin that
    # has a row is broken (a pin per row withheld withheld far more cells than needed: several pins share rows)
    csc = a.tocsc()
    options = [
        [int(m) for m in certificates.get(int(cell), ()) if not withheld[m] and not (keep or {}).get(cells.where[m])]
        or _nearest(cell, csr, reason, by, withheld, cells.where, keep or {})
        or _around(cell, csr, csc, withheld, cells.where, keep or {})
        for cell in pinned
    ]
    rank_of: dict[tuple[str, str, int], float] = {}
    for cell_rows in options:
        for m in cell_rows:
            where = cells.where[m]
            rank_of[where] = min(rank_of.get(where, math.inf), float(rank[m]))
    # a shown cell that other shown cells equal (a count repeated: a unit's cost rows with all its cycles, its
    # PROM response of all dates) gives the count away until all of them are withheld: one choice, all its rows
    # (colorectal's 4,000-cycle grid: one cost row a pass, five passes a pin)
    equals = _equal_shown(a, b, withheld, known, cells.where)
    open_pins = [{equals.get(m, frozenset({cells.where[m]})) for m in cell_rows} for cell_rows in options if cell_rows]
    cost = {group: sum(rank_of.get(w, 0.0) for w in group) for rows_ in open_pins for group in rows_}
    chosen: set[tuple[str, str, int]] = set()
    while open_pins:
        hits: dict[frozenset, int] = defaultdict(int)
        for rows_ in open_pins:
            for group in rows_:
                hits[group] += 1
        best = min(hits, key=lambda group: (-hits[group], len(group), cost[group], sorted(group)))
        chosen |= best
        open_pins = [rows_ for rows_ in open_pins if best not in rows_]
    if not chosen:
        return None
    new_masks = {p: np.asarray(m, bool).copy() for p, m in masks.items()}
    new_frames = {w: {p: np.asarray(m, bool).copy() for p, m in per.items()} for w, per in frame_masks.items()}
    for source, period, i in chosen:
        if source == TABLE:
            new_masks[period][i] = True
        else:
            new_frames[source][period][i] = True
    return new_masks, new_frames


def _equal_shown(
    a: sparse.csr_matrix, b: np.ndarray, withheld: np.ndarray, known: np.ndarray, where: list[tuple[str, str, int]]
) -> dict[int, frozenset]:
    """Per shown cell equal to other shown cells by the equations (x_i - x_j == 0: n shared across indicators, a
    line of one year) the rows of all of them, where none is known to the reader (else withholding them hides
    nothing, and the cell keeps its own row)."""
    from scipy.sparse.csgraph import connected_components

    csr = sparse.csr_matrix(a)
    two = np.flatnonzero((np.diff(csr.indptr) == 2) & (np.abs(b) < 1e-9))
    start = csr.indptr[two]
    first, second = csr.indices[start], csr.indices[start + 1]
    same = np.abs(csr.data[start] + csr.data[start + 1]) < 1e-9
    first, second = first[same], second[same]
    shown = ~withheld
    both = shown[first] & shown[second]
    if not both.any():
        return {}
    size = len(withheld)
    graph = sparse.coo_matrix((np.ones(int(both.sum())), (first[both], second[both])), shape=(size, size))
    _, label = connected_components(graph, directed=False)
    members: dict[int, list[int]] = defaultdict(list)
    for i in np.flatnonzero(shown):
        members[int(label[i])].append(int(i))
    out: dict[int, frozenset] = {}
    for cells_ in members.values():
        if len(cells_) > 1 and not known[cells_].any():
            rows_ = frozenset(where[i] for i in cells_)
            out.update((i, rows_) for i in cells_)
    return out


def _around(
    cell: int,
    csr: sparse.csr_matrix,
    csc: sparse.csc_matrix,
    withheld: np.ndarray,
    where: list[tuple[str, str, int]],
    keep: Mapping[tuple[str, str, int], bool],
) -> list[int]:
    """The shown cells (of rows not kept) nearest to `cell` through the equations of `a`, withheld cells
    leading on: for a pin the linear programme finds (no interval names the equations that pinned it)."""

    def neighbours(c: int) -> Iterator[int]:
        for row in csc.indices[csc.indptr[c] : csc.indptr[c + 1]]:
            yield from csr.indices[csr.indptr[row] : csr.indptr[row + 1]].tolist()

    return _nearest_shown(cell, neighbours, withheld, where, keep)


def _nearest(
    cell: int,
    csr: sparse.csr_matrix,
    reason: np.ndarray,
    by: np.ndarray,
    withheld: np.ndarray,
    where: list[tuple[str, str, int]],
    keep: Mapping[tuple[str, str, int], bool],
) -> list[int]:
    """The shown cells (of rows not kept) in the equations that pinned `cell`, the nearest ones (a breadth-first
    walk back through the cells whose bounds those equations used); [] when there are none."""

    def neighbours(c: int) -> Iterator[int]:
        for side in (0, 1):
            row, other = reason[c, side], by[c, side]
            if row >= 0:
                yield from csr.indices[csr.indptr[row] : csr.indptr[row + 1]].tolist()
            elif other >= 0:
                yield int(other)

    return _nearest_shown(cell, neighbours, withheld, where, keep)


def _nearest_shown(
    cell: int,
    neighbours: Callable[[int], Iterable[int]],
    withheld: np.ndarray,
    where: list[tuple[str, str, int]],
    keep: Mapping[tuple[str, str, int], bool],
) -> list[int]:
    """A breadth-first walk from `cell` over `neighbours`, on through withheld cells: the shown cells (of rows not
    kept) of the first level that has any, sorted; [] when the walk ends without one."""
    seen = {cell}
    level = [cell]
    while level:
        candidates: set[int] = set()
        following: list[int] = []
        for c in level:
            for m in neighbours(c):
                if m in seen:
                    continue
                seen.add(m)
                if withheld[m]:
                    following.append(m)
                elif not keep.get(where[m], False):
                    candidates.add(m)
        if candidates:
            return sorted(candidates)
        level = following
    return []
