"""The files of a grid of periods against an independent attacker (tests/disclosure_attack.py): every equation the
workbook publishes at once (all periods, benchmarks' totals, a unit's years adding up to all dates, n shared
across indicators, PROM response and cost rows, volume bounds), solved by scipy's linprog, rather than the
per-table and per-line checks vbhc.disclosure makes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.disclosure_attack import attack
from vbhc.reports import compute_results
from vbhc.reports.core import grid_tables
from vbhc.reports.grid_audit import repairs
from vbhc.reports.privacy import GridMasks, SuppressionRule, grid_masks
from vbhc.reports.run import own_hospital


def _table(period: str, n: list[float], observed: list[float]) -> pd.DataFrame:
    units = [f"H{i:02d}" for i in range(1, len(n) + 1)]
    return pd.DataFrame(
        {"unit": units, "indicator": "mortality", "kind": "proportion", "n": n, "observed": observed, "target": 0.1}
    )


def test_the_attacker_pins_a_lone_withheld_cell_and_not_a_protected_pair():
    """The attacker can fail: one small cell withheld alone is the benchmark's total minus the shown units."""
    tables = {"": _table("", [5, 40, 60], [1, 4, 6])}
    lone = GridMasks(tables, {"": np.array([True, False, False])}, {}, {})
    assert attack(lone, 10) == [
        "n of ('t', 'mortality', 'n') H01 in all dates = 5",
        "o of ('t', 'mortality', 'o') H01 in all dates = 1",
    ]
    pair = GridMasks(tables, {"": np.array([True, True, False])}, {}, {})
    assert attack(pair, 10) == []
    # over the periods: all dates shown, one year's small cell withheld with its pair, the other year shown
    grid = {
        "": _table("", [25, 40, 60], [3, 4, 6]),
        "2024": _table("2024", [5, 20, 30], [1, 2, 3]),
        "2023": _table("2023", [20, 20, 30], [2, 2, 3]),
    }
    masks = {"": np.zeros(3, bool), "2024": np.array([True, True, False]), "2023": np.zeros(3, bool)}
    found = attack(GridMasks(grid, masks, {}, {}), 10)
    assert "n of ('t', 'mortality', 'n') H01 in 2024 = 5" in found  # all dates minus 2023


def test_the_grid_audit_repairs_what_the_attacker_pins():
    """vbhc.reports.grid_audit finds the cells the attacker pins (a lone withheld cell; a year that all dates
    minus the other, shown year gives back) and withholds further shown cells until the attacker finds none."""
    tables = {"": _table("", [5, 40, 60], [1, 4, 6])}
    more = repairs(tables, {"": np.array([True, False, False])}, {}, {}, 10)
    assert more is not None and more[0][""].tolist() == [True, True, False]  # the smallest other unit
    assert attack(GridMasks(tables, more[0], {}, {}), 10) == []
    assert repairs(tables, more[0], {}, {}, 10) is None
    grid = {
        "": _table("", [25, 40, 60], [3, 4, 6]),
        "2024": _table("2024", [5, 20, 30], [1, 2, 3]),
        "2023": _table("2023", [20, 20, 30], [2, 2, 3]),
    }
    masks = {"": np.zeros(3, bool), "2024": np.array([True, True, False]), "2023": np.zeros(3, bool)}
    assert attack(GridMasks(grid, masks, {}, {}), 10)
    for _ in range(9):
        more = repairs(grid, masks, {}, {}, 10)
        if more is None:
            break
        masks = more[0]
    assert attack(GridMasks(grid, masks, {}, {}), 10) == []
    assert not masks["2023"].all() and not masks[""].all()  # not everything withheld


@pytest.mark.parametrize("condition", ["colorectal_cancer", "hip_osteoarthritis", "knee_osteoarthritis"])
def test_no_withheld_small_count_of_the_workbooks_grid_can_be_worked_out(small_demo_registry, condition):
    """The per-equation checks alone left cells pinned on this demo (hip: H10's 2025 Oxford n, its all-dates n
    minus the shown years being the PROM response's line, whose 2025 responders are shown; knee: H04's 2025
    response n, one less than its revision n of at least 10); the grid audit (vbhc.reports.grid_audit) repairs
    them. Colorectal: the chain through a benchmark of 0 events found before."""
    engine, _ = small_demo_registry
    rule = SuppressionRule(10)
    results = compute_results([condition], None, "hospital", engine=engine)
    grids = grid_tables(results, engine=engine)
    own = own_hospital(engine)
    got = grid_masks(results[0].table, None, grids[condition], rule, own_hospitals=(own,) if own else ())
    assert got is not None and sum(int(m.sum()) for m in got.masks.values()) > 50  # the attacker has work
    found = attack(got, rule.threshold)
    assert not found, found[:10]


def test_the_grid_audit_counts_no_pin_that_withholding_cannot_hide():
    """A year without benchmark (a 2-year outcome in the last year) whose cells are all 0: the all-dates benchmark
    minus the years' benchmarks gives their sum as 0, whatever is withheld, so the attacker lists nothing; the
    audit's intervals could not see that sum and withheld shown cells against it (breast, 20,000-cycle demo: 32
    such pins on the page cost 197 shown cells). Nor is a count pinned through the rows the page's reader knows
    (the own hospital's) a leak to that reader."""
    from vbhc.reports.grid_audit import grid_cells, pinned_cells

    def table(n: list[float], target: float) -> pd.DataFrame:
        return _table("", n, [0.0] * len(n)).assign(target=target)

    grid = {"": table([40, 50, 60], 0.1), "2024": table([40, 50, 60], 0.1), "2025": table([0, 0, 0], np.nan)}
    masks = {"": np.zeros(3, bool), "2024": np.zeros(3, bool), "2025": np.ones(3, bool)}
    assert attack(GridMasks(grid, masks, {}, {}), 10) == []
    assert repairs(grid, masks, {}, {}, 10) is None
    # own H01 (12 cycles, known to the page's reader): the other two units' 0 cycles are its benchmark minus it
    grid = {"": table([12, 0, 0], 0.1)}
    masks = {"": np.array([False, True, True])}
    cells, a, b = grid_cells(grid, masks, {}, {}, 10)
    known = np.array([where[2] == 0 for where in cells.where])
    assert len(pinned_cells(cells, a, b, 10)[0])  # a leak to a reader who does not know H01's cells
    assert not len(pinned_cells(cells, a, b, 10, known=known)[0])


def test_the_grid_audit_withholds_one_row_that_breaks_several_pins(monkeypatch):
    """Rows ranked across all pins: two pins whose equations share a shown row get that one row withheld, not
    each pin's smallest row (two rows), even where the shared row holds the larger count."""
    import vbhc.reports.grid_audit as audit

    tables = {"": _table("", [5, 5, 40, 60, 70], [1, 1, 4, 6, 7])}
    masks = {"": np.array([True, True, False, False, False])}
    cells = audit.grid_cells(tables, masks, {}, {}, 10)[0]
    row_of = {where[2]: i for i, where in enumerate(cells.where) if not cells.is_events[i]}
    empty = np.zeros(0, int)
    monkeypatch.setattr(audit, "pinned_cells", lambda *args, **kw: (np.array([row_of[0], row_of[1]]), empty, empty))
    nearest = {row_of[0]: [row_of[2], row_of[4]], row_of[1]: [row_of[3], row_of[4]]}  # H05 (70) in both
    monkeypatch.setattr(audit, "_nearest", lambda cell, *args: nearest[int(cell)])
    more = audit.repairs(tables, masks, {}, {}, 10)
    assert more is not None and more[0][""].tolist() == [True, True, False, False, True]


def test_the_grid_audit_withholds_every_shown_cell_that_repeats_the_count_it_withholds(monkeypatch):
    """A shown row whose count other shown rows of the unit repeat (n shared across indicators: its cost rows with
    all its cycles) gives the count away until all of them are withheld: the repair withholds them together, in
    one pass (one a pass took five passes a pin on colorectal's 4,000-cycle grid)."""
    import vbhc.reports.grid_audit as audit

    first = _table("", [5, 20, 40, 60], [1, 2, 4, 6])
    second = first.assign(indicator="readmission", n=[5, 20, 45, 65], observed=[0, 3, 5, 7])
    tables = {"": pd.concat([first, second], ignore_index=True)}
    masks = {"": np.array([True, False, False, False, True, False, False, False])}
    cells = audit.grid_cells(tables, masks, {}, {}, 10)[0]
    row_of = {where[2]: i for i, where in enumerate(cells.where) if not cells.is_events[i]}
    empty = np.zeros(0, int)
    monkeypatch.setattr(audit, "pinned_cells", lambda *args, **kw: (np.array([row_of[0]]), empty, empty))
    monkeypatch.setattr(audit, "_nearest", lambda cell, *args: [row_of[1]])  # H02's 20 of the first indicator
    more = audit.repairs(tables, masks, {}, {}, 10)
    assert more is not None
    assert more[0][""].tolist() == [True, True, False, False, True, True, False, False]  # H02's 20 of both
    # a repeat the reader knows (the page's own H02) cannot be hidden: the row itself, as before
    keep = {("table", "", 5): True}
    more = audit.repairs(tables, masks, {}, {}, 10, keep=keep)
    assert more is not None and more[0][""].tolist() == [True, True, False, False, True, False, False, False]


def test_the_audit_judges_what_the_intervals_leave_open_by_a_linear_programme():
    """Two small withheld counts whose sum (a benchmark, 29 minus a shown 20) and difference (31 minus a shown 30)
    the files give: interval tightening leaves 5 in 1..9 and 4 in 0..8, the LP attacker solves both (the shape of
    the 20,000-cycle demo's leaks: hip's twelve equations, thyroid's two indicators with almost equal n). The
    audit's linear programme pins them, and its repair has shown cells of those equations to withhold."""
    from scipy import sparse

    from vbhc.reports.grid_audit import Cells, _around, pinned_cells

    cells = Cells()
    for where, value, withheld in ((("table", "", 0), 5, True), (("table", "", 1), 4, True)):
        cells.add(where, value, withheld, True, False, value)
    for where, value in ((("table", "", 2), 20), (("table", "", 3), 30)):
        cells.add(where, value, False, False, False, value)
    a = sparse.csr_matrix(np.array([[1.0, 1.0, 1.0, 0.0], [1.0, -1.0, 0.0, 1.0]]))
    b = a @ np.array([5.0, 4.0, 20.0, 30.0])
    pinned, _, _ = pinned_cells(cells, a, b, 10)
    assert pinned.tolist() == [0, 1]
    withheld = np.array(cells.withheld)
    assert _around(0, a.tocsr(), a.tocsc(), withheld, cells.where, {}) == [2, 3]


def test_a_pin_of_the_linear_programme_is_repaired_from_the_shown_cells_it_rests_on():
    """The same two pins, and a third equation that links a shown 50 to one of them through a withheld count of
    at least 10 (which takes any value): the 50 bounds neither, so the shown cells their bounds rest on (nonzero
    reduced cost at the programme's least and largest value) are the 20 and the 30 only, where the cells beside
    the pin in some equation (_around) hold the 50 too (breast's 4,000-cycle grid: cost rows withheld in vain)."""
    from scipy import sparse

    from vbhc.reports.grid_audit import Cells, _around, pinned_cells

    cells = Cells()
    for where, value, withheld, small in (
        (("table", "", 0), 5, True, True),
        (("table", "", 1), 4, True, True),
        (("table", "", 2), 20, False, False),
        (("table", "", 3), 30, False, False),
        (("table", "", 4), 50, False, False),
        (("table", "", 5), 54, True, False),
    ):
        cells.add(where, value, withheld, small, False, value)
    a = sparse.csr_matrix(
        np.array([[1.0, 1.0, 1.0, 0.0, 0.0, 0.0], [1.0, -1.0, 0.0, 1.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0, 1.0, -1.0]])
    )
    b = a @ np.array([5.0, 4.0, 20.0, 30.0, 50.0, 54.0])
    certificates: dict[int, np.ndarray] = {}
    pinned, _, _ = pinned_cells(cells, a, b, 10, certificates=certificates)
    assert pinned.tolist() == [0, 1]
    assert {cell: shown.tolist() for cell, shown in certificates.items()} == {0: [2, 3], 1: [2, 3]}
    assert _around(1, a.tocsr(), a.tocsc(), np.array(cells.withheld), cells.where, {}) == [2, 3, 4]
