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
