"""An independent attacker on what the files of a grid of periods publish (vbhc.reports.privacy.GridMasks): every
equation at once, solved as a linear programme (scipy.optimize.linprog), not the per-equation checks the
suppression itself makes.

The attacker knows every shown count of every period's indicator table, PROM response and cost sheet; each
benchmark's totals (n and events per indicator and period, eligible and responded per PROM timepoint and period);
that a unit's years add up to its all-dates cell (table, PROM response and cost rows); that a unit's counts in one
period are the same where their true values are the same and at least the threshold ("n shared across indicators",
between any two of its rows, also two withheld ones) or where two indicators share their denominator; that events
lie within 0..n and every count within the unit's volume; and, stronger than a reader, which withheld cells are
small (0..threshold-1) and which are not (threshold or more). Relaxing integrality only widens what it finds
feasible, so a cell it pins is pinned; a width below one means one value.
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict

import numpy as np
import pandas as pd
from scipy import sparse
from scipy.optimize import linprog

COUNT_KINDS = ("proportion", "prom_mic", "response_rate")


def _cells(got, threshold: int) -> pd.DataFrame:
    """One row per count the files hold: which sheet, period, unit, line key, group key, value, withheld."""
    rows: list[dict] = []
    for period, table in got.tables.items():
        mask = np.asarray(got.masks[period], bool)
        targets = pd.to_numeric(table.get("target", pd.Series(np.nan, index=table.index)), errors="coerce")
        for i, row in enumerate(table.itertuples(index=False)):
            unit, indicator = str(row.unit), str(row.indicator)
            n = float(pd.to_numeric(row.n, errors="coerce"))
            n = 0.0 if math.isnan(n) else n
            common = {"period": period, "unit": unit, "withheld": bool(mask[i]), "small": n < threshold}
            has_total = bool(np.isfinite(targets.iloc[i]))
            rows.append(
                common
                | {
                    "what": "n",
                    "line": ("t", indicator, "n"),
                    "group": ("t", indicator, "n") if has_total else None,
                    "value": n,
                    "of": None,
                    "volume": row.kind == "volume",
                }
            )
            if str(row.kind) in COUNT_KINDS:
                o = float(pd.to_numeric(row.observed, errors="coerce"))
                rows.append(
                    common
                    | {
                        "what": "o",
                        "line": ("t", indicator, "o"),
                        "group": ("t", indicator, "o") if has_total else None,
                        "value": 0.0 if math.isnan(o) else o,
                        "of": len(rows) - 1,
                        "volume": False,
                    }
                )
    for what, frames in got.frames.items():
        for period, frame in frames.items():
            mask = got.frame_masks.get(what, {}).get(period)
            if mask is None or not len(frame):
                continue
            mask = np.asarray(mask, bool)
            for i, row in enumerate(frame.to_dict("records")):
                unit = str(row["unit"])
                if what == "prom_response":
                    key = (str(row["instrument"]), str(row["timepoint"]))
                    n = float(row["eligible"])
                    small = n < threshold
                    common = {"period": period, "unit": unit, "withheld": bool(mask[i]), "small": small}
                    rows.append(
                        common
                        | {
                            "what": "n",
                            "line": ("r", *key, "n"),
                            "group": ("r", *key, "n"),
                            "value": n,
                            "of": None,
                            "volume": False,
                        }
                    )
                    rows.append(
                        common
                        | {
                            "what": "o",
                            "line": ("r", *key, "o"),
                            "group": ("r", *key, "o"),
                            "value": float(row["responded"]),
                            "of": len(rows) - 1,
                            "volume": False,
                        }
                    )
                else:  # cost: cycles with the activity add up over the years; no count total per activity is shown
                    n = float(row["cycles"])
                    small = min(n, float(row["costed_cycles"])) < threshold
                    rows.append(
                        {"period": period, "unit": unit, "withheld": bool(mask[i]), "small": small}
                        | {
                            "what": "n",
                            "line": ("c", str(row["activity"]), "n"),
                            "group": None,
                            "value": n,
                            "of": None,
                            "volume": False,
                        }
                    )
    return pd.DataFrame(rows)


def attack(got, threshold: int, *, shared_small: bool = True) -> list[str]:
    """The withheld small counts (and event counts of small cells) the attacker pins to one value and that
    withholding could have hidden: [] when none. A count the totals give away with every cell withheld (a
    benchmark of 0 events: every unit's events are 0) is no leak of the suppression and not listed.
    `shared_small`: also link equal small n of the same unit and period (indicators sharing a denominator)."""
    cells = _cells(got, threshold)
    if cells.empty or not cells["withheld"].any():
        return []
    found = _pinned(cells, cells["withheld"].to_numpy(bool), threshold, shared_small)
    if not found:
        return []
    inherent = _pinned(cells, np.ones(len(cells), bool), threshold, shared_small, only=list(found))
    return [label for cell, label in found.items() if cell not in inherent]


def _pinned(
    cells: pd.DataFrame, withheld: np.ndarray, threshold: int, shared_small: bool, only: list[int] | None = None
) -> dict[int, str]:
    """The small withheld cells (rows of `cells`, or those of `only`) pinned to one value, with a label each."""
    value = cells["value"].to_numpy(float)
    small = cells["small"].to_numpy(bool)
    var = -np.ones(len(cells), int)
    var[withheld] = np.arange(int(withheld.sum()))
    size = int(withheld.sum())
    lo = np.where(small, 0.0, float(threshold))[withheld]
    hi = np.where(small, float(threshold - 1), np.inf)[withheld]
    is_o = (cells["what"] == "o").to_numpy()
    lo[is_o[withheld]] = 0.0  # an event count lies in 0..n (below), whatever its n
    hi[is_o[withheld]] = np.where(small, float(threshold - 1), np.inf)[withheld][is_o[withheld]]
    eq_rows: list[dict[int, float]] = []
    eq_rhs: list[float] = []
    ub_rows: list[dict[int, float]] = []

    def add(members: list[tuple[int, float]], rows: list, rhs: list) -> None:
        """sum(coef * cell) == its true value, with shown cells moved to the right-hand side."""
        coefs: dict[int, float] = defaultdict(float)
        total = 0.0
        for cell, coef in members:
            total += coef * value[cell]
            if var[cell] >= 0:
                coefs[int(var[cell])] += coef
            else:
                total -= coef * value[cell]
        coefs = {k: v for k, v in coefs.items() if v}
        if coefs:
            rows.append(coefs)
            rhs.append(total)

    def at_most(cell: int, bound: int) -> None:
        """cell <= bound, as a row of A_ub (key -1: its right-hand side)."""
        coefs: dict[int, float] = defaultdict(float)
        rhs = 0.0
        for c, coef in ((cell, 1.0), (bound, -1.0)):
            if var[c] >= 0:
                coefs[int(var[c])] += coef
            else:
                rhs -= coef * value[c]
        if any(coefs.values()):
            ub_rows.append(dict(coefs) | {-1: rhs})

    # benchmark totals per period
    grouped = cells[cells["group"].notna()]
    for _, part in grouped.groupby([grouped["period"], grouped["group"].astype(str)]):
        add([(int(i), 1.0) for i in part.index], eq_rows, eq_rhs)
    # a unit's years add up to its all-dates cell (where they do on the truth)
    for _, part in cells.groupby([cells["unit"], cells["line"].astype(str)]):
        whole = part[part["period"] == ""]
        years = part[part["period"] != ""]
        if len(whole) == 1 and len(years) and abs(years["value"].sum() - whole["value"].iloc[0]) < 1e-9:
            add([(int(i), 1.0) for i in years.index] + [(int(whole.index[0]), -1.0)], eq_rows, eq_rhs)
    # n shared: equal counts of the same unit and period
    for _, part in cells.groupby(["period", "unit"]):
        by_value: dict[float, list[int]] = defaultdict(list)
        for i, v, what, sm in zip(part.index, part["value"], part["what"], part["small"], strict=True):
            if v >= threshold or (shared_small and what == "n" and sm):
                by_value[float(v)].append(int(i))
        for members in by_value.values():
            for a, b in itertools.pairwise(members):
                add([(a, 1.0), (b, -1.0)], eq_rows, eq_rhs)
        # events within their n, every count within the unit's volume (where it holds on the truth)
        volume = part.index[part["volume"].astype(bool)]
        for i, of in zip(part.index, part["of"], strict=True):
            if of is not None and not (isinstance(of, float) and math.isnan(of)):
                at_most(int(i), int(of))
            if len(volume) == 1 and i != volume[0] and value[i] <= value[volume[0]]:
                at_most(int(i), int(volume[0]))

    def matrix(rows: list[dict[int, float]]) -> sparse.csr_matrix:
        r, c, d = [], [], []
        for k, row in enumerate(rows):
            for j, coef in row.items():
                if j >= 0:
                    r.append(k)
                    c.append(j)
                    d.append(coef)
        return sparse.csr_matrix((d, (r, c)), shape=(len(rows), size))

    a_eq, b_eq = matrix(eq_rows), np.array(eq_rhs)
    a_ub = matrix(ub_rows) if ub_rows else None
    b_ub = np.array([row[-1] for row in ub_rows]) if ub_rows else None
    bounds = list(zip(lo, [None if not np.isfinite(h) else h for h in hi], strict=True))
    targets = np.flatnonzero(withheld & small) if only is None else np.array(only, int)
    columns = var[targets]

    def solve(c: np.ndarray) -> np.ndarray:
        res = linprog(c, A_ub=a_ub, b_ub=b_ub, A_eq=a_eq, b_eq=b_eq, bounds=bounds, method="highs")
        if res.status != 0:
            raise AssertionError(f"attacker's programme not solved ({res.message}): the equations are wrong")
        return res.x

    # every solution tells each cell two values it can take: a cell seen at values at least one apart is not
    # pinned; a few random objectives first, then each remaining cell's ends (whose solutions open others too)
    seen_lo = np.full(len(columns), np.inf)
    seen_hi = np.full(len(columns), -np.inf)

    def record(x: np.ndarray) -> None:
        np.minimum(seen_lo, x[columns], out=seen_lo)
        np.maximum(seen_hi, x[columns], out=seen_hi)

    def open_() -> np.ndarray:
        return seen_hi - seen_lo >= 1 - 1e-6

    rng = np.random.default_rng(0)
    for _ in range(4 if only is None else 0):
        closed = ~open_()
        if not closed.any():
            break
        c = np.zeros(size)
        c[columns[closed]] = rng.normal(size=int(closed.sum()))
        record(solve(c))
    for k, j in enumerate(columns):
        for sign in (1.0, -1.0):
            if open_()[k]:
                break
            c = np.zeros(size)
            c[j] = sign
            record(solve(c))
    found = {}
    for k, cell in enumerate(targets):
        if open_()[k]:
            continue
        row = cells.loc[cell]
        where = row["period"] or "all dates"
        found[int(cell)] = f"{row['what']} of {row['line']} {row['unit']} in {where} = {seen_lo[k]:g}"
    return found
