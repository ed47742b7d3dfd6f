"""Differencing across unit levels for a care team limited to its hospital: the hospital level and the department
(or condition team) level are views of the same care cycles, so a cell withheld at one may not be read back from
the other (vbhc.reports.privacy.masks_from_hospitals, through vbhc.access.period_grid_masks)."""

from __future__ import annotations

import pandas as pd
import pytest

from vbhc import access
from vbhc.access import Role, Scope, Viewer

CONDITION = "colorectal_cancer"
TEAM = Viewer("t", "team", (Scope(Role.CARE_TEAM, conditions=frozenset({CONDITION}), hospitals=frozenset({"H01"})),))


def _table(level: str, rows: list[tuple[str, int, int]]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "condition": CONDITION,
                "indicator": "mortality_30d",
                "kind": "proportion",
                "unit_level": level,
                "unit": unit,
                "hospital": unit.split("/")[0],
                "n": n,
                "observed": events,
                "expected": float(events),
                "target": 0.05,
                "adjusted_value": events / n,
            }
            for unit, n, events in rows
        ]
    )


HOSPITALS = _table(
    "hospital", [("H01", 40, 2), ("H02", 45, 3), ("H03", 12, 1), ("H04", 35, 2), ("H05", 28, 1), ("H06", 55, 3)]
)
# H02 has two departments for the condition: 40 + 5 care cycles; H06 two without a small one: 30 + 25
DEPARTMENTS = _table(
    "department",
    [
        ("H01/SUR", 40, 2),
        ("H02/SUR", 40, 2),
        ("H02/ORT", 5, 1),
        ("H03/SUR", 12, 1),
        ("H04/SUR", 35, 2),
        ("H05/SUR", 28, 1),
        ("H06/SUR", 30, 2),
        ("H06/ORT", 25, 1),
    ],
)


def _shown(table: pd.DataFrame, masks) -> pd.DataFrame:
    return access.indicator_rows(TEAM, table, withheld=masks.masks[""], record_view=False, engine=_engine())


def _engine():
    from vbhc.store import get_engine

    return get_engine("sqlite://")


def test_a_departments_withheld_cell_is_not_the_hospital_total_minus_its_other_department():
    """H02/ORT (5 care cycles) was withheld at the department level with H03/SUR as its secondary cell, while H02's
    total (45) was shown at the hospital level and H02/SUR (40) at the department level: 45 - 40 = 5, and its
    events 3 - 2 = 1."""
    hospital = access.period_grid_masks(TEAM, CONDITION, {"": HOSPITALS})
    departments = access.period_grid_masks(TEAM, CONDITION, {"": DEPARTMENTS}, hospital)
    seen_h = _shown(HOSPITALS, hospital).set_index("unit")
    seen_d = _shown(DEPARTMENTS, departments).set_index("unit")
    assert pd.isna(seen_d.loc["H02/ORT", "n"])
    visible = seen_d.loc[["H02/SUR", "H02/ORT"], "n"].dropna()
    if pd.notna(seen_h.loc["H02", "n"]):  # the hospital's total shown: no department of it alone
        assert visible.empty, visible
    # a hospital with one department is withheld at both levels alike (the same care cycles, the same count)
    for hospital_id in ("H03", "H04", "H05"):
        assert pd.isna(seen_h.loc[hospital_id, "n"]) == pd.isna(seen_d.loc[f"{hospital_id}/SUR", "n"]), hospital_id
    assert seen_d.loc["H01/SUR", "n"] == 40  # the own hospital's cells are the team's to see
    # a hospital whose departments are not small anywhere keeps them (only the split of cells nobody withholds)
    assert pd.notna(seen_h.loc["H06", "n"])
    assert list(seen_d.loc[["H06/SUR", "H06/ORT"], "n"]) == [30, 25]


def test_without_the_hospital_grid_a_department_grid_is_refused():
    """period_masks and period_grid_masks withheld a department grid on its own when no hospital grid was passed
    (H02/ORT's 5 care cycles were H02's 45 minus H02/SUR's 40): any caller now gets the hospital level's masks or
    an error, never the department table protected by itself."""
    for fn in (access.period_masks, access.period_grid_masks):
        with pytest.raises(ValueError, match="hospital_grid"):
            fn(TEAM, CONDITION, {"": DEPARTMENTS})
        with pytest.raises(ValueError, match="hospital_grid"):
            fn(TEAM, CONDITION, {"": DEPARTMENTS.drop(columns="unit_level")})
    hospital = access.period_grid_masks(TEAM, CONDITION, {"": HOSPITALS})
    masks = access.period_masks(TEAM, CONDITION, {"": DEPARTMENTS}, hospital)
    shown = access.indicator_rows(TEAM, DEPARTMENTS, withheld=masks[""], record_view=False, engine=_engine())
    assert pd.isna(shown.set_index("unit").loc["H02/ORT", "n"])
    assert access.period_masks(TEAM, CONDITION, {"": HOSPITALS}) is not None  # the hospital grid needs none


def test_a_department_file_cannot_be_differenced_against_a_hospital_file():
    """The files (the page's workbook and PDF, `vbhc report`, `vbhc external export`) withhold small cells for every
    role: a hospital-level file showed H02's 45 care cycles, the department-level file H02/SUR's 40 and withheld
    H02/ORT's 5 with another hospital's department as its secondary cell."""
    from vbhc.reports.privacy import PeriodGrid, SuppressionRule, grid_masks

    rule = SuppressionRule(10)
    hospitals = PeriodGrid({"": HOSPITALS})
    hospital_file = grid_masks(HOSPITALS, None, hospitals, rule, own_hospitals=("H01",)).masks[""]
    department_file = grid_masks(
        DEPARTMENTS, None, PeriodGrid({"": DEPARTMENTS}, None, hospitals), rule, own_hospitals=("H01",)
    ).masks[""]
    shown_h = HOSPITALS.loc[~hospital_file, "unit"].tolist()
    shown_d = DEPARTMENTS.loc[~department_file, "unit"].tolist()
    assert "H02/ORT" not in shown_d
    assert "H02" not in shown_h or "H02/SUR" not in shown_d, (shown_h, shown_d)
    for hospital_id in ("H01", "H03", "H04", "H05"):  # one department each: withheld alike, own hospital too
        assert (hospital_id in shown_h) == (f"{hospital_id}/SUR" in shown_d), hospital_id
    # without the hospital grid (a plain mapping of tables) the department file is withheld on its own, as before
    alone = grid_masks(DEPARTMENTS, None, {"": DEPARTMENTS}, rule, own_hospitals=("H01",)).masks[""]
    assert alone[DEPARTMENTS["unit"].eq("H02/ORT").to_numpy()].all()
