"""grid_masks keeps what it computes (vbhc.reports.privacy): the cells a file withholds over a grid of periods cost
1-5 s a condition and every report and download of the same data asks for the same ones. Kept masks must be
those a fresh computation gives for the same inputs: another own hospital (a viewer's scope), another value in any
period's table, another threshold, another grid all compute them again."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from vbhc.reports import privacy
from vbhc.reports.privacy import PeriodGrid, SuppressionRule, grid_masks, masks_digest


def _table(n: list[float], observed: list[float]) -> pd.DataFrame:
    units = [f"H{i:02d}" for i in range(1, len(n) + 1)]
    return pd.DataFrame(
        {"unit": units, "indicator": "mortality", "kind": "proportion", "n": n, "observed": observed, "target": 0.1}
    )


def _grid() -> dict[str, pd.DataFrame]:
    """All dates and two years; H01 small in 2024 (its pair: another hospital's cell)."""
    return {
        "": _table([25, 40, 60, 70], [3, 4, 6, 7]),
        "2024": _table([5, 20, 30, 35], [1, 2, 3, 3]),
        "2023": _table([20, 20, 30, 35], [2, 2, 3, 4]),
    }


def _fresh(grid, period, rule, own=()):
    got = privacy._grid_masks(grid[period], period, grid, rule, own_hospitals=own)
    return {p: m.tolist() for p, m in got.masks.items()}


def _kept(grid, period, rule, own=()):
    got = grid_masks(grid[period], period, grid, rule, own_hospitals=own)
    return {p: m.tolist() for p, m in got.masks.items()}


@pytest.fixture(autouse=True)
def _nothing_kept():
    privacy._kept_masks.clear()
    yield
    privacy._kept_masks.clear()


def test_two_scopes_get_each_their_own_masks():
    """The own hospital's cells are taken last: with H02 as the own hospital the pair of H01's small 2024 cell is
    another unit's than without; each scope gets what a fresh computation gives it, in either order."""
    grid, rule = _grid(), SuppressionRule(10)
    none, own = _kept(grid, "2024", rule), _kept(grid, "2024", rule, ("H02",))
    assert none != own
    assert none == _fresh(grid, "2024", rule) and own == _fresh(grid, "2024", rule, ("H02",))
    assert _kept(grid, "2024", rule) == none and _kept(grid, "2024", rule, ("H02",)) == own  # both kept now
    assert len(privacy._kept_masks) == 2


def test_another_value_threshold_or_type_computes_them_again():
    grid, rule = _grid(), SuppressionRule(10)
    before = _kept(grid, "", rule)
    changed = dict(grid)
    changed["2024"] = _table([15, 20, 30, 35], [1, 2, 3, 3])  # H01 not small in 2024: nothing withheld
    changed[""] = _table([35, 40, 60, 70], [3, 4, 6, 7])
    assert _kept(changed, "", rule) == _fresh(changed, "", rule) != before
    assert not any(any(m) for m in _kept(changed, "", rule).values())
    assert _kept(grid, "", SuppressionRule(5)) == _fresh(grid, "", SuppressionRule(5)) != before  # H01 (5) shown
    # equal numbers of another type, equal text of another type: other inputs, other digests
    digest = masks_digest(grid, None, grid, rule, (), True, None)
    as_text = {p: t.assign(n=t["n"].astype(str)) for p, t in grid.items()}
    as_float = {p: t.assign(n=t["n"].astype(float)) for p, t in grid.items()}
    as_object = {p: t.assign(n=t["n"].astype(int).astype(object)) for p, t in grid.items()}
    digests = {masks_digest(g, None, g, rule, (), True, None) for g in (grid, as_text, as_float, as_object)}
    assert len(digests) == 4 and digest in digests
    assert masks_digest(grid, None, grid, rule, (), False, None) != digest  # a page's masks, not a file's


def test_a_department_grid_follows_its_hospital_grid_in_the_digest():
    """A department grid's cells follow the hospital grid's (masks_from_hospitals): another hospital grid gives
    another digest."""
    grid, rule = _grid(), SuppressionRule(10)
    one = PeriodGrid(grid, hospitals=PeriodGrid(_grid()))
    other_hospitals = _grid()
    other_hospitals["2024"] = _table([6, 20, 30, 35], [1, 2, 3, 3])
    two = PeriodGrid(grid, hospitals=PeriodGrid(other_hospitals))
    assert masks_digest(grid, None, one, rule, (), True, None) != masks_digest(grid, None, two, rule, (), True, None)


def test_a_caller_cannot_change_the_kept_masks():
    grid, rule = _grid(), SuppressionRule(10)
    got = grid_masks(grid["2024"], "2024", grid, rule)
    expected = {p: m.copy() for p, m in got.masks.items()}
    for mask in got.masks.values():
        mask[:] = False
    again = grid_masks(grid["2024"], "2024", grid, rule)
    assert all(np.array_equal(again.masks[p], expected[p]) for p in expected)
    assert any(m.any() for m in again.masks.values())


def test_a_grid_with_a_keep_stores_them_and_reads_them_back():
    """A PeriodGrid of vbhc.reports.core.grid_tables keeps its masks in the results store (`keep`): a second process
    (here: this one with nothing in memory) reads them; a stored entry of other rows is not used."""
    stored: dict[str, dict] = {}
    calls: list[str] = []

    def keep(digest, compute):
        calls.append(digest)
        if digest not in stored:
            stored[digest] = compute()
        return stored[digest]

    tables, rule = _grid(), SuppressionRule(10)
    grid = PeriodGrid(tables, keep=keep)
    first = _kept(grid, "2024", rule)
    privacy._kept_masks.clear()
    (digest,) = stored
    stored[digest] = {"masks": {p: np.zeros(len(t) + 1, bool) for p, t in tables.items()}, "frame_masks": {}}
    assert _kept(grid, "2024", rule) == first == _fresh(grid, "2024", rule)  # a damaged entry: computed again
    assert calls == [digest, digest]


def test_a_pages_grid_masks_are_kept_and_read_back_by_a_restarted_process():
    """A page's masks over its grid (vbhc.access.period_grid_masks for a care team limited to its hospital) cost
    1-3 s a condition and view and were computed again by every server process and after every restart: they are
    kept like a file's, in memory and through the grid's `keep` (the results store). A second process reads them
    back without computing; they equal a fresh computation; another own hospital (another scope) gets its own."""
    from vbhc.access import Role, Scope, Viewer, period_grid_masks

    stored: dict[str, dict] = {}
    computed: list[str] = []

    def keep(digest, compute):
        if digest not in stored:
            computed.append(digest)
            stored[digest] = compute()
        return stored[digest]

    def team(hospital: str) -> Viewer:
        scope = Scope(Role.CARE_TEAM, conditions=frozenset({"colorectal_cancer"}), hospitals=frozenset({hospital}))
        return Viewer("t", "team", (scope,))

    tables = _grid()
    grid = PeriodGrid(tables, keep=keep)
    first = period_grid_masks(team("H02"), "colorectal_cancer", grid)
    assert len(computed) == 1 and any(m.any() for m in first.masks.values())
    fresh = privacy.joint_grid_masks(tables, SuppressionRule.from_settings(), own_hospitals=["H02"], include_own=False)
    assert {p: m.tolist() for p, m in first.masks.items()} == {p: m.tolist() for p, m in fresh.masks.items()}
    privacy._kept_masks.clear()  # as a restarted server process: read from the store, not computed
    again = period_grid_masks(team("H02"), "colorectal_cancer", grid)
    assert len(computed) == 1
    assert {p: m.tolist() for p, m in again.masks.items()} == {p: m.tolist() for p, m in first.masks.items()}
    period_grid_masks(team("H01"), "colorectal_cancer", grid)  # another scope: its own masks
    assert len(computed) == 2
