"""Textbook outcome (composite indicators): a small case counted by hand, missing components, catalog errors."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest

from vbhc.catalog import CatalogError, default_catalog, load_catalog
from vbhc.indicators import ConditionData, composite_failures, composite_values, compute_indicators
from vbhc.settings import catalog_dir

NAN = np.nan
# mortality_30d, severe_complication, anastomotic_leak, readmission_30d, length_of_stay (fails above 14 days)
CYCLES = {
    "A1": ("A", 0, 0, 0, 0, 5),  # textbook
    "A2": ("A", 0, 1, 0, 0, 10),  # severe complication
    "A3": ("A", 0, 0, 0, 0, 20),  # prolonged stay
    "A4": ("A", 0, 0, 0, NAN, 6),  # readmission not recorded: left out
    "A5": ("A", 1, 1, 1, 0, 30),  # death, complication, leak and prolonged stay
    "B1": ("B", 0, 0, 0, 0, 14),  # textbook: 14 days is not above 14
    "B2": ("B", 0, 0, NAN, 1, 3),  # leak not recorded: left out although the readmission failed
    "B3": ("B", 0, 0, 0, 1, 3),  # readmission
    "B4": ("B", 0, 0, 0, 0, 2),  # textbook
}
OUTCOMES = ["mortality_30d", "severe_complication", "anastomotic_leak", "readmission_30d", "length_of_stay"]


def _data() -> ConditionData:
    cond = default_catalog().condition("colorectal_cancer")
    rows = pd.DataFrame.from_dict(CYCLES, orient="index", columns=["hospital", *OUTCOMES])
    cycles = rows.rename_axis("cycle_id").reset_index()
    cycles = cycles.assign(
        index_date=pd.Timestamp("2025-01-01"),
        condition=cond.id,
        department="surgery",
        age=70,
        sex="F",
        asa=2,
        charlson=1,
        bmi=26.0,
        stage="II",
    )
    empty_scores = pd.DataFrame(columns=["cycle_id", "instrument", "timepoint", "scale", "score", "completed_date"])
    return ConditionData(
        cond, None, cycles, empty_scores, pd.DataFrame(columns=["cycle_id", "cost"]), pd.Timestamp("2026-01-01")
    )


def test_textbook_outcome_per_cycle_by_hand():
    data = _data()
    ind = data.condition.indicator("textbook_outcome")
    values = composite_values(ind, data.cycles).set_index(data.cycles["cycle_id"])
    want = {"A1": 1, "A2": 0, "A3": 0, "A4": NAN, "A5": 0, "B1": 1, "B2": NAN, "B3": 0, "B4": 1}
    np.testing.assert_array_equal(values["textbook"].to_numpy(), [want[c] for c in values.index])
    assert values.loc["A5", OUTCOMES].tolist() == [1, 1, 1, 0, 1]
    assert np.isnan(values.loc["B2", "anastomotic_leak"]) and values.loc["B2", "readmission_30d"] == 1


def test_textbook_outcome_in_the_table_and_the_failures_per_component_by_hand():
    data = _data()
    result = compute_indicators(data, "hospital", indicators=["textbook_outcome"])
    table = result.table.set_index("unit")
    # A: 4 complete cycles, 1 textbook; B: 3 complete, 2 textbook (a model on 7 cycles is the overall rate)
    assert table.loc["A", "n"] == 4 and table.loc["A", "observed"] == 1
    assert table.loc["B", "n"] == 3 and table.loc["B", "observed"] == 2
    assert table.loc["A", "crude_value"] == pytest.approx(0.25)
    assert table.loc["B", "crude_value"] == pytest.approx(2 / 3)
    assert (table["kind"] == "composite").all() and (table["direction"] == "higher").all()
    assert table["target"].iloc[0] == pytest.approx(3 / 7)
    assert table["expected"].sum() == pytest.approx(3.0)  # case-mix expected textbook outcomes, all cycles

    failures = composite_failures(result, "textbook_outcome").set_index(["unit", "component"])
    assert list(failures.loc["A"].index) == OUTCOMES  # catalog order
    assert failures.loc["A", "failed"].tolist() == [1, 2, 1, 0, 2]
    assert failures.loc["B", "failed"].tolist() == [0, 0, 0, 1, 0]
    assert failures.loc[("A", "severe_complication"), "share_failed"] == pytest.approx(2 / 4)
    assert failures.loc[("B", "readmission_30d"), "share_failed"] == pytest.approx(1 / 3)
    assert (failures.loc["A", "n"] == 4).all() and (failures.loc["B", "n"] == 3).all()
    assert (failures.loc["A", "n_incomplete"] == 1).all() and (failures.loc["B", "n_incomplete"] == 1).all()
    assert failures.loc["A", "n_missing"].tolist() == [0, 0, 0, 1, 0]
    assert failures.loc["B", "n_missing"].tolist() == [0, 0, 1, 0, 0]


def test_failures_only_for_a_composite():
    result = compute_indicators(_data(), "hospital", indicators=["mortality_30d"])
    with pytest.raises(ValueError, match="not a composite"):
        composite_failures(result, "mortality_30d")


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            '{ outcome = "anastomotic_leak" },',
            '{ outcome = "anastomotic_leakage" },',
            "key 'indicators[5].components[2].outcome': composite 'textbook_outcome' names unknown component "
            "'anastomotic_leakage'",
        ),
        (
            '{ outcome = "length_of_stay", fails_above = 14 },',
            '{ outcome = "length_of_stay" },',
            "key 'indicators[5].components[4].fails_above': is required but missing",
        ),
        (
            '{ outcome = "mortality_30d" },',
            '{ outcome = "mortality_30d", fails_if = 2 },',
            "key 'indicators[5].components[0].fails_if': must be 0 or 1",
        ),
        (
            'kind = "cost", direction = "lower", min_n = 20, key = true }',
            'kind = "cost", direction = "lower", min_n = 20, key = true, components = [] }',
            "only a composite indicator has components",
        ),
    ],
)
def test_a_composite_naming_an_unknown_component_is_refused(tmp_path, old, new, message):
    folder = tmp_path / "catalog"
    shutil.copytree(catalog_dir(), folder)
    path = folder / "colorectal_cancer.toml"
    text = path.read_text(encoding="utf-8")
    assert old in text, "test fixture out of date with the catalog"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    with pytest.raises(CatalogError) as info:
        load_catalog(folder)
    assert str(path) in str(info.value)
    assert message in str(info.value)
