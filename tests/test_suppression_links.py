"""A withheld count links the same unit's other cells only within one population (vbhc.disclosure.populations):
a reader knows that a unit's volume and its 30-day mortality count the same care cycles, or its 12-month response
count and its 12-month PROM change the same responders, but not that its deaths within a year happen to equal its
responders to a PROM change."""

from __future__ import annotations

import numpy as np
import pandas as pd

from vbhc.disclosure import complementary_suppression, populations
from vbhc.reports.privacy import COUNT_KINDS

UNITS = [f"H{i:02d}" for i in range(1, 7)]


def _table(response_count_of_h02: float) -> pd.DataFrame:
    """Six hospitals; H01's 12-month PROM change has 7 responders (small), H02's 10 (its partner, withheld as the
    smallest other); H02 had 10 deaths within a year (a chance equality), and `response_count_of_h02` responders."""
    rows = []
    for i, unit in enumerate(UNITS):
        volume = 40 + 7 * i
        change_n = 7 if unit == "H01" else 10 if unit == "H02" else 20 + i
        deaths = 10 if unit == "H02" else 3 + i
        responders = response_count_of_h02 if unit == "H02" else 25 + i
        rows += [
            ("summary_change_12m", "prom_change", unit, change_n, 2.5),
            ("survival_1y", "survival", unit, volume, deaths),
            ("mortality_30d", "proportion", unit, volume, 1 + i),
            ("volume", "volume", unit, volume, volume),
            ("prom_response_12m", "response_rate", unit, volume - 2, responders),
        ]
    frame = pd.DataFrame(rows, columns=["indicator", "kind", "unit", "n", "observed"])
    return frame.assign(condition="colorectal_cancer")


def _withheld(frame: pd.DataFrame) -> set[tuple[str, str]]:
    hit = complementary_suppression(
        frame,
        frame["n"].to_numpy() < 10,
        threshold=10,
        group=["condition", "indicator"],
        observed_is_count=frame["kind"].isin(COUNT_KINDS).to_numpy(),
        totals_shown=(frame["kind"] != "volume").to_numpy(),
    )
    return set(zip(frame.loc[hit, "unit"], frame.loc[hit, "indicator"], strict=True))


def test_a_chance_equality_across_populations_links_nothing():
    withheld = _withheld(_table(response_count_of_h02=30))
    assert {("H01", "summary_change_12m"), ("H02", "summary_change_12m")} <= withheld
    # H02's 10 deaths within a year equal its 10 responders to the PROM change by chance: no link, no cascade
    assert ("H02", "survival_1y") not in withheld
    assert not any(indicator in ("volume", "mortality_30d") for _, indicator in withheld), withheld


def test_a_count_of_the_same_population_still_links():
    withheld = _withheld(_table(response_count_of_h02=10))
    # H02's 12-month response count is its 10 responders: showing it would give the withheld partner's n back
    assert ("H02", "prom_response_12m") in withheld


def test_the_populations_of_n_and_of_the_count():
    frame = _table(30)
    n_family, o_family = populations(frame)
    by = dict(zip(frame["indicator"], zip(n_family, o_family, strict=True), strict=False))
    change = by["summary_change_12m"]
    assert change[0].startswith("prom:") and change[0] == change[1]
    assert by["prom_response_12m"][0] == "cycles" and by["prom_response_12m"][1] == by["summary_change_12m"][0]
    assert by["survival_1y"] == by["volume"] == ("cycles", "cycles")
    assert populations(frame.drop(columns="indicator")) is None
    assert np.all(n_family[frame["unit"] == "H01"] == n_family[frame["unit"] == "H02"])


def _grid_with_a_deathless_small_hospital() -> dict[str, pd.DataFrame]:
    """Five hospitals over all dates and two years; H1 treated 8 (small) and 12 patients, none died: its all-dates
    mortality cell is withheld for its deaths only (0 of 20 would give both years' 0 deaths back), not its n."""
    years = {"2024": [12, 30, 35, 40, 45], "2023": [8, 25, 30, 35, 50]}
    deaths = {"2024": [0, 2, 3, 1, 4], "2023": [0, 1, 2, 3, 2]}
    units = [f"H{i}" for i in range(1, 6)]
    tables = {}
    for period in ("", "2024", "2023"):
        n = np.add(*years.values()) if period == "" else np.array(years[period])
        d = np.add(*deaths.values()) if period == "" else np.array(deaths[period])
        mortality = pd.DataFrame(
            {"unit": units, "indicator": "mortality_30d", "kind": "proportion", "n": n, "observed": d * 1.0}
        )
        volume = pd.DataFrame({"unit": units, "indicator": "volume", "kind": "volume", "n": n, "observed": n * 1.0})
        tables[period] = pd.concat([mortality.assign(target=0.05), volume.assign(target=np.nan)], ignore_index=True)
    return tables


def test_a_cell_withheld_for_its_events_only_links_no_other_cell_by_its_n():
    """A cell withheld only so that its events cannot be read back (a line of years whose deaths are all 0) keeps
    its n for the reader: the unit's volume of all dates repeats it and stays shown (main withheld every cell of
    all dates, the volumes through n shared across indicators), and the LP attacker still pins nothing."""
    from tests.disclosure_attack import attack
    from vbhc.reports.privacy import GridMasks, SuppressionRule, grid_suppression_masks

    tables = _grid_with_a_deathless_small_hospital()
    masks = grid_suppression_masks(tables, SuppressionRule(10))
    whole = tables[""].assign(withheld=masks[""])
    withheld = whole.set_index(["indicator", "unit"])["withheld"]
    assert withheld[("mortality_30d", "H1")]  # its deaths would give the years' 0 deaths back
    assert not withheld[("volume", "H1")]
    assert attack(GridMasks(tables, masks, {}, {}), 10) == []


def test_a_benchmark_of_no_events_withholds_no_more_than_the_small_cell_needs():
    """Six hospitals, none with a death: every unit's 0 deaths follow from the benchmark's 0 whatever is withheld
    (the LP attacker counts no such pin), so the small cell takes one partner for its n, not every other cell (as
    it did while each partner's 0 deaths stayed pinned)."""
    table = pd.DataFrame(
        {
            "unit": [f"H{i}" for i in range(6)],
            "indicator": "mortality_30d",
            "n": [5, 20, 30, 40, 50, 60],
            "observed": [0.0] * 6,
        }
    )
    small = table["n"].to_numpy() < 10
    hit = complementary_suppression(table, small, threshold=10, group=["indicator"], observed_is_count=np.ones(6, bool))
    assert hit.tolist() == [True, True, False, False, False, False]
