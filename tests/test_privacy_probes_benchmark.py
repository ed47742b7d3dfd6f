"""Probes of a manager's registry view (no comparison group): the pooled benchmark and everything computed from
every unit's care cycles (the case-mix model's expected value, O/E, the adjusted and shrunken values, the ranks,
the model's excluded cycles) minus the manager's own exact row is the other units' figure. A view needs
MIN_OTHER_UNITS other units from as many hospitals counted (n > 0) per indicator, in every period of the grid,
else that indicator's benchmark and model figures are withheld and its other units are not shown.

Synthetic registries of tests.test_privacy_groups (one indicator, 30-day mortality, no case-mix)."""

from __future__ import annotations

import dataclasses
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import create_engine

from tests.test_privacy_groups import CONDITION, INDICATOR, MANAGER, QUALITY, _registry
from vbhc import access
from vbhc.access import REGISTRY_DERIVED_COLUMNS, Role, Scope, Viewer
from vbhc.indicators import compute_indicators, restrict


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    from vbhc.store import upgrade_schema

    eng = create_engine(f"sqlite:///{tmp_path_factory.mktemp('probes') / 'audit.db'}")
    upgrade_schema(eng)
    return eng


def _recorded_only_in(data, hospitals):
    cycles = data.cycles.copy()
    cycles.loc[~cycles["hospital"].isin(hospitals), INDICATOR] = np.nan
    return dataclasses.replace(data, cycles=cycles)


def _others_from(own: pd.Series, total_cycles: int) -> set[tuple[int, int]]:
    """Every (events, n) of the other units an attacker reads from the own row's figures computed on every unit:
    the benchmark (a pooled rate) and, with no case-mix, expected / n, the shrunken value of a unit shrunk to
    the mean, and adjusted value / O/E."""
    rates = []
    for col in ("target", "shrunken_value"):
        if col in own and pd.notna(own[col]):
            rates.append(float(own[col]))
    if "expected" in own and pd.notna(own["expected"]):
        rates.append(float(own["expected"]) / float(own["n"]))
    ratio = own.get("adjusted_value"), own.get("oe")
    if all(v is not None and pd.notna(v) for v in ratio) and float(ratio[1]):
        rates.append(float(ratio[0]) / float(ratio[1]))
    found = set()
    for rate in rates:
        pooled = Fraction(rate).limit_denominator(total_cycles)
        found.add((pooled.numerator - int(own["observed"]), pooled.denominator - int(own["n"])))
    return found


def test_an_indicator_one_other_hospital_records_gives_nothing_of_it_to_a_manager(engine):
    """Seven hospitals treat the condition, but only H01 (the manager's) and H02 record 30-day mortality (as a
    PROM or a treatment only some hospitals have): six other units in the table, one counted. The benchmark, the
    model's expected value and the shrunken value (tau2 0: the pooled rate) of H01's row minus H01's events and n
    were H02's 7 of 40, by name; and the one other row with a count in a band was H02's."""
    data = _recorded_only_in(_registry(7, seed=3), ["H01", "H02"])
    table = compute_indicators(data, "hospital").table
    rows = access.indicator_rows(MANAGER, table, engine=engine, record_view=False)
    own = rows[rows["unit"] == "H01"].iloc[0]
    h02 = data.cycles[data.cycles["hospital"] == "H02"]
    truth = (int(h02[INDICATOR].sum()), len(h02))
    assert truth not in _others_from(own, len(data.cycles))
    assert bool(own["benchmark_withheld"])
    for col in ("target", *REGISTRY_DERIVED_COLUMNS, "model_n_excluded"):
        if col in own:
            assert pd.isna(own[col]), col
    assert rows["anonymised"].astype(bool).sum() == 0  # H02's row, alone with a count among five empty ones
    assert int(own["n"]) == int((data.cycles["hospital"] == "H01").sum())  # the own figures stay
    whole = access.indicator_rows(QUALITY, table, engine=engine, record_view=False)
    assert truth in _others_from(whole[whole["unit"] == "H01"].iloc[0], len(data.cycles))  # the attack works


def test_five_departments_of_one_other_hospital_are_one_hospital(engine):
    """A manager of H01 at department level beside one other hospital with five departments: five other units,
    one hospital; its figure was the benchmark minus the own row."""
    data = _registry(2, seed=5)
    cycles = data.cycles.copy()
    other = cycles["hospital"] == "H02"
    cycles.loc[other, "department"] = np.resize(["SUR", "GAS", "ONC", "INT", "RAD"], int(other.sum()))
    data = dataclasses.replace(data, cycles=cycles)
    table = compute_indicators(data, "department").table
    assert table["unit"].nunique() == 6
    rows = access.indicator_rows(MANAGER, table, engine=engine, record_view=False)
    own = rows[rows["unit"] == "H01/SUR"].iloc[0]
    h02 = data.cycles[other]
    assert (int(h02[INDICATOR].sum()), len(h02)) not in _others_from(own, len(data.cycles))
    assert pd.isna(own["target"]) and not rows["anonymised"].astype(bool).any()


def test_a_year_with_one_other_hospital_counted_withholds_the_benchmark_in_every_period(engine):
    """Seven hospitals record 30-day mortality in 2024, only H01 and H02 in 2025: the year 2025 alone withholds its
    benchmark, but all dates minus 2024 was 2025, H02's 2025 events and n. The indicator's benchmark is withheld
    in every period (registry_indicators_withheld, the pages' `thin`)."""
    data = _registry(7, seed=3)
    cycles = data.cycles.copy()
    late = pd.to_datetime(cycles["index_date"]).dt.year == 2025
    cycles.loc[late & ~cycles["hospital"].isin(["H01", "H02"]), INDICATOR] = np.nan
    data = dataclasses.replace(data, cycles=cycles)
    grid = {p: compute_indicators(restrict(data, p or None), "hospital").table for p in ("", "2024", "2025")}
    thin = access.registry_indicators_withheld(MANAGER, CONDITION, "hospital", grid.values(), engine=engine)
    assert thin == {INDICATOR}
    shown = {p: access.indicator_rows(MANAGER, t, engine=engine, record_view=False, thin=thin) for p, t in grid.items()}
    for rows in shown.values():
        assert rows.loc[rows["unit"] == "H01", "target"].isna().all()
    # what the attack read before: all dates minus 2024 (both benchmarks shown) gave H02's 2025 cells
    before = {p: access.indicator_rows(MANAGER, t, engine=engine, record_view=False) for p, t in grid.items()}
    assert before["2025"]["target"].isna().all()
    assert before[""]["target"].notna().any() and before["2024"]["target"].notna().any()
    assert (
        access.registry_indicators_withheld(QUALITY, CONDITION, "hospital", grid.values(), engine=engine) == frozenset()
    )
    care = Viewer("c@example.org", "", (Scope(Role.CARE_TEAM, frozenset({CONDITION})),))
    assert access.registry_indicators_withheld(care, CONDITION, "hospital", grid.values(), engine=engine) == frozenset()
    other = Viewer("o@example.org", "", (Scope(Role.MANAGER, frozenset({"hip_osteoarthritis"}), frozenset({"H01"})),))
    assert (
        access.registry_indicators_withheld(other, CONDITION, "hospital", grid.values(), engine=engine) == frozenset()
    )


def test_an_indicator_every_hospital_records_keeps_its_benchmark(engine):
    """The rule withholds nothing where five other hospitals are counted, nor where no other unit is (a year before
    a 12-month PROM is due gives no one's figure): the manager's benchmark stays."""
    data = _registry(7, seed=3)
    table = compute_indicators(data, "hospital").table
    assert access.registry_indicators_withheld(MANAGER, CONDITION, "hospital", [table], engine=engine) == frozenset()
    alone = compute_indicators(_recorded_only_in(data, ["H01"]), "hospital").table
    assert (
        access.registry_indicators_withheld(MANAGER, CONDITION, "hospital", [table, alone], engine=engine)
        == frozenset()
    )
    rows = access.indicator_rows(MANAGER, table, engine=engine, record_view=False)
    own = rows[rows["unit"] == "H01"].iloc[0]
    assert pd.notna(own["target"]) and pd.notna(own["expected"]) and rows["anonymised"].astype(bool).sum() == 6


def test_the_prom_histograms_group_of_one_other_hospitals_departments_is_withheld():
    """The PROM histogram's "all units" panel at department level: five departments of one other hospital (and
    the own department) passed the rule of five units, so the panel was that hospital's patients' scores."""
    from vbhc.disclosure import comparison_group_withheld

    rows = [("H01/SUR", "H01")] * 12 + [(f"H02/{d}", "H02") for d in ("SUR", "GAS", "ONC", "INT", "RAD")] * 4
    cells = pd.DataFrame(rows, columns=["unit", "hospital"]).assign(timepoint="12m", year="2025")
    assert comparison_group_withheld(cells, "H01/SUR", "", threshold=10) == {"12m"}
    five = [(f"H0{i}/SUR", f"H0{i}") for i in range(2, 7)] * 4
    cells = pd.DataFrame(rows[:12] + five, columns=["unit", "hospital"]).assign(timepoint="12m", year="2025")
    assert comparison_group_withheld(cells, "H01/SUR", "", threshold=10) == set()
