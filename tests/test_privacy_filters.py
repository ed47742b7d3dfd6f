"""Differencing across filters: a comparison group ("all units" but the own one) drawn beside the own unit, such as
the PROM page's score histogram, whose bins are counts of the group's patients (vbhc.disclosure
.comparison_group_withheld): never a few patients of one or two other units, not in a year, not as all dates minus
the shown years, nor as the registry's group minus a chosen comparison group."""

from __future__ import annotations

import pandas as pd

from vbhc.disclosure import MIN_OTHER_UNITS, comparison_group_withheld

THRESHOLD = 10


def _cells(counts: dict[tuple[str, str, str], int]) -> pd.DataFrame:
    """One row per patient score: (unit, timepoint, year) -> patients."""
    rows = [
        {"unit": unit, "hospital": unit.split("/")[0], "timepoint": tp, "year": year}
        for (unit, tp, year), n in counts.items()
        for _ in range(n)
    ]
    return pd.DataFrame(rows, columns=["unit", "hospital", "timepoint", "year"])


# baseline: many patients of six other hospitals each year; at 12 months in 2021 only H02 (3) and H06 (1), as in
# the demo's oesophageal cancer (EQ-5D index): the histogram of 2021 drew those four patients
HOSPITALS = [f"H0{i}" for i in range(1, 8)]
COUNTS = {(h, "baseline", y): 12 for h in HOSPITALS for y in ("2021", "2022", "2023")}
COUNTS |= {(h, "12m", y): 6 for h in HOSPITALS for y in ("2022", "2023")}
COUNTS |= {("H01", "12m", "2021"): 5, ("H02", "12m", "2021"): 3, ("H06", "12m", "2021"): 1}
CELLS = _cells(COUNTS)


def test_a_years_group_of_a_few_patients_of_two_units_is_withheld():
    assert comparison_group_withheld(CELLS, "H01", "2021", threshold=THRESHOLD) == {"12m"}
    assert comparison_group_withheld(CELLS, "H01", "2023", threshold=THRESHOLD) == set()  # a year of 36 patients


def test_all_dates_minus_the_shown_years_gives_no_withheld_year_back():
    """2021's group withheld alone: all dates minus 2022 and 2023 was its four patients. A shown year goes with it."""
    hidden = [
        p
        for p in ("", "2021", "2022", "2023")
        if "12m" in comparison_group_withheld(CELLS, "H01", p, threshold=THRESHOLD)
    ]
    assert "2021" in hidden and "" not in hidden
    assert len(hidden) >= 2  # the remainder (all dates minus the shown years) holds enough patients and units
    shown = [p for p in ("2022", "2023") if p not in hidden]
    remainder = CELLS[(CELLS["unit"] != "H01") & (CELLS["timepoint"] == "12m") & ~CELLS["year"].isin(shown)]
    assert len(remainder) >= THRESHOLD and remainder["unit"].nunique() >= MIN_OTHER_UNITS


def test_a_comparison_group_that_leaves_out_one_unit_is_withheld():
    """The registry's group minus a group of all hospitals but H07 was H07's own scores."""
    peers = [h for h in HOSPITALS if h != "H07"]
    assert comparison_group_withheld(CELLS, "H01", "", threshold=THRESHOLD, hospitals=peers) == {"baseline", "12m"}
    assert comparison_group_withheld(CELLS, "H01", "", threshold=THRESHOLD) == set()


def test_no_threshold_withholds_nothing():
    assert comparison_group_withheld(CELLS, "H01", "2021", threshold=0) == set()
