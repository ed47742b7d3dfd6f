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


def test_a_managers_per_unit_frames_name_only_their_units_when_no_other_is_listed():
    """A manager's table holds their own units only where fewer than MIN_OTHER_UNITS others are in the view (a
    small condition, a year) or in a comparison group's view: only_visible let every unit's PROM response and cost
    rows through by name, as it cut the frame only when the table listed anonymised units."""
    from ui.data import only_visible
    from vbhc.access import Role, Scope, Viewer, indicator_rows, other_units_shown
    from vbhc.indicators import IndicatorResult
    from vbhc.store import get_engine

    boss = Viewer("m", "manager", (Scope(Role.MANAGER, hospitals=frozenset({"H01"})),))
    table = pd.DataFrame(
        {
            "condition": "colorectal_cancer",
            "indicator": "mortality_30d",
            "kind": "proportion",
            "unit_level": "hospital",
            "unit": ["H01", "H02", "H03"],
            "hospital": ["H01", "H02", "H03"],
            "n": [40, 30, 25],
            "observed": [2, 1, 3],
            "target": 0.05,
            "adjusted_value": [0.05, 0.03, 0.12],
        }
    )
    engine = get_engine("sqlite://")
    shown = indicator_rows(boss, table, engine=engine, record_view=False)
    assert shown["unit"].tolist() == ["H01"]  # two others: own rows only, no benchmark
    result = IndicatorResult("colorectal_cancer", "hospital", None, shown)
    rates = pd.DataFrame({"unit": ["H01", "H02", "H03"], "instrument": "eq5d5l", "responded": [30, 20, 2]})
    for what in ("", "prom_response"):
        assert only_visible(result, rates, what, viewer=boss)["unit"].tolist() == ["H01"], what
    assert only_visible(result, rates)["unit"].tolist() == ["H01"]  # without the viewer: the table says it
    # a comparison group's view: the other units hidden (two groups differing by one hospital named its row)
    assert other_units_shown(boss, "colorectal_cancer", ("H01", "H02", "H03", "H04", "H05", "H06")) == "hide"
    assert other_units_shown(boss, "colorectal_cancer", ()) == "anonymise"
    quality = Viewer("q", "quality", (Scope(Role.QUALITY),))
    assert other_units_shown(quality, "colorectal_cancer", ("H01", "H02")) == "anonymise"
