"""joint_grid_masks derives what its passes share once (vbhc.disclosure.reusing): the same withheld cells, faster.

It repeats its suppressions until no pass adds a cell (dozens of passes on a small comparison group's grid), and
every pass stacked the grid's tables again, found the own hospitals' rows, keyed, grouped and ranked the cells
and read the same columns of every period's tables and frames: a care team's page of a group of two hospitals
spent 18 s of the test suite's CPU there. A withheld cell that comes back is a data leak, so the cells must be
exactly those computed without reuse, on a grid whose passes add cells one by one."""

from __future__ import annotations

import contextlib
import hashlib
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from vbhc import disclosure
from vbhc.reports import privacy
from vbhc.reports.privacy import SuppressionRule, joint_grid_masks

UNITS = [f"H{i:02d}" for i in range(1, 7)]
YEARS = ["2022", "2023", "2024"]
#: indicator -> kind (a volume, two proportions and the response rate of a PROM at 12 months)
INDICATORS = {"volume": "volume", "mortality": "proportion", "complications": "proportion", "response": "response_rate"}
CONDITION = SimpleNamespace(
    indicators=[SimpleNamespace(id="response", kind="response_rate", instrument="EQ5D", timepoint="12m")]
)


def _count(*seed: int, spread: int = 23) -> int:
    """A deterministic count from small integers (no random stream that could change with numpy)."""
    return (sum((k + 3) * s for k, s in enumerate(seed)) * 7) % spread + 2


def _grid() -> tuple[dict[str, pd.DataFrame], dict[str, dict[str, pd.DataFrame]]]:
    """Tables and frames of all dates ("", the sum of the years) and three years; small cells in every period."""
    rows, rates, costs = [], [], []
    for y, year in enumerate(YEARS):
        for u, unit in enumerate(UNITS):
            volume = _count(u, y, 1, spread=40) + 8
            for i, (indicator, kind) in enumerate(INDICATORS.items()):
                n = volume if kind == "volume" else min(volume, _count(u, y, i, spread=30) + 1)
                observed = np.nan if kind == "volume" else _count(u, y, i, 5) % (n + 1)
                rows.append((year, unit, indicator, kind, n, observed))
            eligible = min(volume, _count(u, y, 9, spread=30) + 1)
            rates.append((year, unit, "EQ5D", "12m", eligible, _count(u, y, 4) % (eligible + 1)))
            for a, activity in enumerate(("surgery", "ward", "outpatient")):
                cycles = min(volume, _count(u, y, a, 7, spread=35))
                costs.append((year, unit, activity, cycles, min(volume, cycles + a)))

    def by_period(records: list[tuple], columns: list[str], keys: list[str], extra: dict) -> dict[str, pd.DataFrame]:
        frame = pd.DataFrame(records, columns=["period", *columns])
        whole = frame.groupby(keys, sort=False, as_index=False)[[c for c in columns if c not in keys]].sum(min_count=1)
        out = {"": whole.assign(**extra)}
        out |= {
            year: part.drop(columns="period").reset_index(drop=True).assign(**extra)
            for year, part in frame.groupby("period")
        }
        return out

    tables = by_period(rows, ["unit", "indicator", "kind", "n", "observed"], ["unit", "indicator", "kind"], {})
    for table in tables.values():
        table["condition"] = "demo"
        table["target"] = np.where(table["kind"] == "volume", np.nan, 0.1)
    frames = {
        "prom_response": by_period(
            rates,
            ["unit", "instrument", "timepoint", "eligible", "responded"],
            ["unit", "instrument", "timepoint"],
            {"condition": "demo"},
        ),
        "cost_breakdown": by_period(
            costs, ["unit", "activity", "cycles", "costed_cycles"], ["unit", "activity"], {"condition": "demo"}
        ),
    }
    return tables, frames


CASES = {  # (own hospitals, include_own): a care team's page limited to H01, files with and without the own one
    "page H01": (("H01",), False),
    "file H01": (("H01",), True),
    "file": ((), True),
}


def _masks(case: str, threshold: int = 10) -> dict:
    tables, frames = _grid()
    own, include_own = CASES[case]
    got = joint_grid_masks(
        tables,
        SuppressionRule(threshold),
        frames=frames,
        condition=CONDITION,
        own_hospitals=own,
        include_own=include_own,
    )
    return {
        "table": {p: got.masks[p].tolist() for p in sorted(got.masks)},
        **{what: {p: by[p].tolist() for p in sorted(by)} for what, by in sorted(got.frame_masks.items())},
    }


def _digest(masks: dict) -> str:
    return hashlib.sha256(repr(masks).encode()).hexdigest()[:16]


#: The cells withheld before the passes reused anything (computed with the code of main at f659cbf).
PINNED = {"page H01": "e1893f4b46996933", "file H01": "19b63eee8dc68128", "file": "22aacc08dd3f3845"}


@pytest.mark.parametrize("case", list(CASES))
def test_reuse_withholds_the_cells_computed_without_it(case, monkeypatch):
    """The same cells with and without reuse (every derivation computed again in every pass, as before), and the
    cells computed before reuse existed (PINNED): a cell that changes here changes in every file and page."""
    reused = _masks(case)
    monkeypatch.setattr(privacy, "reusing", contextlib.nullcontext)  # once() then computes every time
    assert _masks(case) == reused
    assert any(any(m) for by in reused.values() for m in by.values())  # something withheld: the case is a test
    assert _digest(reused) == PINNED[case]


def test_a_grids_passes_key_and_rank_each_frame_once(monkeypatch):
    """Every pass keyed, grouped and ranked the same stacked frame again (populations: the catalog's population
    of each row, read for every row); now once per frame in a joint_grid_masks call, and not kept after it."""
    seen: list[str] = []
    real = disclosure.populations

    def counted(frame: pd.DataFrame):
        seen.append(hashlib.sha256(pd.util.hash_pandas_object(frame, index=True).to_numpy().tobytes()).hexdigest())
        return real(frame)

    monkeypatch.setattr(disclosure, "populations", counted)
    masks = _masks("file H01")
    assert len(seen) > 1
    assert len(seen) == len(set(seen)), f"{len(seen)} keyings of {len(set(seen))} frames"
    assert getattr(disclosure._reuse, "memo", None) is None  # nothing held after the call
    seen.clear()
    assert _masks("file H01") == masks and seen  # a second call derives them again (the frames could differ)
