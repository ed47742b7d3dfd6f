"""The pandas layer returns tidy, typed frames with filters applied in SQL (SQLite and PostgreSQL)."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from tests.registry_files import write_small_registry
from vbhc import registry
from vbhc.ingest import import_files
from vbhc.registry import Period, parse_period


@pytest.fixture
def loaded(engine, tmp_path):
    import_files(write_small_registry(tmp_path / "files"), engine)
    return engine


def test_care_cycles_types_and_condition_columns(loaded):
    df = registry.care_cycles("oesophageal_cancer", engine=loaded)
    assert len(df) == 6
    assert isinstance(df["hospital"].dtype, pd.CategoricalDtype)
    assert list(df["stage"].cat.categories) == ["I", "II", "III", "IV"]
    assert pd.api.types.is_datetime64_any_dtype(df["index_date"])
    assert str(df["age"].dtype) == "Int64"
    assert df["bmi"].dtype == "float64"
    assert "smoking" not in df and "nyha" not in df  # not case-mix of this condition
    assert df.loc[df.cycle_id == "C0003", "age"].item() == 58


def test_filters_are_applied(loaded):
    h1 = registry.care_cycles("oesophageal_cancer", hospitals=["H01"], engine=loaded)
    assert set(h1["hospital"]) == {"H01"} and len(h1) == 3
    y2024 = registry.care_cycles("oesophageal_cancer", period="2024", engine=loaded)
    assert set(y2024["index_date"].dt.year) == {2024}
    assert len(registry.care_cycles("oesophageal_cancer", period="2019", engine=loaded)) == 0
    ort = registry.care_cycles(departments=["ORT"], engine=loaded)
    assert set(ort["condition"]) == {"hip_osteoarthritis"}


def test_child_tables(loaded):
    outcomes = registry.clinical_outcomes("oesophageal_cancer", engine=loaded)
    assert set(outcomes["outcome"]) == {"mortality_30d", "length_of_stay"}
    wide = registry.outcomes_wide("oesophageal_cancer", engine=loaded)
    assert len(wide) == 6 and wide["length_of_stay"].eq(12).all()
    assert wide["anastomotic_leak"].isna().all()  # in the catalog, not recorded
    proms = registry.prom_responses("hip_osteoarthritis", timepoints=["12m"], engine=loaded)
    assert len(proms) == 6 * 6 and set(proms["timepoint"]) == {"12m"}
    assert pd.api.types.is_datetime64_any_dtype(proms["completed_date"])
    costs = registry.cost_lines("hip_osteoarthritis", hospitals=["H02"], engine=loaded)
    assert len(costs) == 3 * 2
    assert costs["cost"].sum() == pytest.approx(3 * (3 * 160 + 5 * 680.5))


def test_units_volumes_and_batches(loaded):
    units = registry.units(engine=loaded)
    assert len(units) == 4
    assert units.loc[units.hospital == "H01", "own_hospital"].all()
    vols = registry.condition_volumes(engine=loaded).set_index("condition")
    assert vols.loc["oesophageal_cancer", "care_cycles"] == 6
    assert vols.loc["hip_osteoarthritis", "hospitals"] == 2
    assert len(registry.import_batches(engine=loaded)) == 5


def test_unknown_condition_is_an_error_not_an_empty_frame(loaded):
    with pytest.raises(KeyError, match="unknown condition 'gout'"):
        registry.care_cycles("gout", engine=loaded)


@pytest.mark.parametrize(
    ("text", "start", "end"),
    [
        ("2024", dt.date(2024, 1, 1), dt.date(2024, 12, 31)),
        ("2024Q2", dt.date(2024, 4, 1), dt.date(2024, 6, 30)),
        ("2024-q4", dt.date(2024, 10, 1), dt.date(2024, 12, 31)),
        ("2024-02", dt.date(2024, 2, 1), dt.date(2024, 2, 29)),
        ("2022-2024", dt.date(2022, 1, 1), dt.date(2024, 12, 31)),
        ("2024-01-15..2024-03-01", dt.date(2024, 1, 15), dt.date(2024, 3, 1)),
    ],
)
def test_parse_period(text, start, end):
    p = parse_period(text)
    assert (p.start, p.end) == (start, end)


@pytest.mark.parametrize("text", ["24", "2024Q5", "2024-13", "2025-2023", "yesterday"])
def test_parse_period_errors(text):
    with pytest.raises(ValueError, match="period"):
        parse_period(text)


def test_unit_labels():
    df = pd.DataFrame({"condition": ["hip_osteoarthritis"], "hospital": ["H01"], "department": ["ORT"]})
    assert registry.unit_labels(df, "hospital").item() == "H01"
    assert registry.unit_labels(df, "department").item() == "H01/ORT"
    assert registry.unit_labels(df, "condition_team").item() == "hip_osteoarthritis@H01"
    with pytest.raises(ValueError):
        registry.unit_labels(df, "ward")
    assert parse_period(None) is None and isinstance(parse_period("2023"), Period)


@pytest.mark.parametrize("rows", [slice(0, 0), slice(0, 1), slice(2, 9), slice(None)])
@pytest.mark.parametrize("level", ["hospital", "department", "condition_team"])
def test_unit_labels_of_categorical_columns_are_the_text_of_their_values(rows, level):
    """The registry reads the care cycles' units as categorical columns; unit_labels makes their text from the
    categories (not one Python string per care cycle): the same series as the text of each row's values, with a
    missing value, an unused category and an index of its own."""
    hospital = ["H02", "H01", "H02", "H10", "H01", "H02", "H01", "H10", "H02", "H01"]
    department = ["SUR", "ORT", "ORT", "SUR", "SUR", None, "ORT", "SUR", "ORT", "SUR"]
    condition = ["hip", "hip", "knee", "hip", "knee", "knee", "hip", "hip", "knee", "hip"]
    plain = pd.DataFrame({"hospital": hospital, "department": department, "condition": condition})
    plain.index = plain.index * 3 + 7
    categorical = plain.assign(
        hospital=pd.Categorical(hospital, categories=["H10", "H01", "H02", "H99"]),
        department=pd.Categorical(department),
        condition=pd.Categorical(condition),
    )
    for frame in (plain.iloc[rows], categorical.iloc[rows], categorical.dropna().iloc[rows]):
        text = frame.astype({c: str for c in frame.columns if c != "department"})
        if level == "hospital":
            expected = text["hospital"]
        elif level == "department":
            expected = text["hospital"] + "/" + frame["department"].astype(str)
        else:
            expected = text["condition"] + "@" + text["hospital"]
        pd.testing.assert_series_equal(registry.unit_labels(frame, level), expected, check_exact=True)


@pytest.mark.parametrize(
    ("unit", "parts"),
    [
        ("H01", ("H01", None)),
        ("H01/SUR", ("H01", "SUR")),
        ("colorectal_cancer@H01", ("H01", None)),
        ("H-2/ORT/X", ("H-2", "ORT/X")),
    ],
)
def test_unit_parts_reads_every_unit_id_unit_labels_writes(unit, parts):
    assert registry.unit_parts(unit) == parts
    assert registry.hospital_of(unit) == parts[0]


def test_unit_ids_are_parsed_in_one_place():
    """One parser of unit ids (registry.unit_parts): a page or module that splits them itself drifts from it."""
    import re

    from vbhc.settings import PROJECT_ROOT

    splitting = re.compile(r"""\.(split|partition|rsplit)\(\s*["'][@/]["']""")
    found = []
    for folder in ("vbhc", "ui", "views"):
        for path in sorted((PROJECT_ROOT / folder).rglob("*.py")):
            if path.name == "registry.py":
                continue
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if splitting.search(line.split("#")[0]):
                    found.append(f"{path.relative_to(PROJECT_ROOT)}:{number}: {line.strip()}")
    assert not found, "unit ids split outside vbhc.registry:\n" + "\n".join(found)
