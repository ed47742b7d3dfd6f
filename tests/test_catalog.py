"""The condition catalog loads, covers the hospital's first VBHC teams, and malformed files fail loudly."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from vbhc.catalog import BASELINE_WINDOW_DAYS, CatalogError, default_catalog, load_catalog
from vbhc.settings import catalog_dir


def test_catalog_has_the_conditions_the_hospital_starts_with():
    catalog = load_catalog()
    assert len(catalog.conditions) >= 6
    assert {"oesophageal_cancer", "thyroid_cancer"} <= set(catalog.conditions)
    for cond in catalog.conditions.values():
        assert cond.label_nl and cond.label_en
        assert any(i.kind == "proportion" for i in cond.indicators)
        assert any(i.kind in ("prom_score", "prom_change") for i in cond.indicators)
        assert any(i.kind == "cost" for i in cond.indicators)
        assert {p.instrument for p in cond.proms} >= {"eq5d5l"}
        assert len(cond.proms) >= 2, "EQ-5D-5L plus one condition-specific instrument"
        tiers = {i.tier for i in cond.indicators if i.tier}
        assert tiers <= {1, 2, 3} and 1 in tiers
        assert "age" in cond.casemix_names


def test_indicator_directions_match_their_meaning():
    catalog = load_catalog()
    for cond in catalog.conditions.values():
        for ind in cond.indicators:
            if re.search(r"mortality|complication|leak|revision|readmission|recurrence|infection|cost", ind.id):
                assert ind.direction == "lower", (cond.id, ind.id)
            if ind.kind in ("prom_score", "prom_change", "prom_mic") and ind.scale:
                scale = catalog.instruments[ind.instrument].scale(ind.scale)
                assert ind.higher_is_better == scale.higher_is_better, (cond.id, ind.id)


@pytest.fixture
def catalog_copy(tmp_path) -> Path:
    target = tmp_path / "catalog"
    shutil.copytree(catalog_dir(), target)
    return target


@pytest.mark.parametrize(
    ("file", "old", "new", "message"),
    [
        (
            "thyroid_cancer.toml",
            'direction = "lower", min_n = 20, tier = 3',
            'direction = "down", min_n = 20, tier = 3',
            "key 'indicators[1].direction': must be one of higher, lower; got 'down'",
        ),
        (
            "thyroid_cancer.toml",
            "min_n = 20, tier = 3, key = true",
            'min_n = "twenty", tier = 3, key = true',
            "key 'indicators[1].min_n': expected an integer, got 'twenty'",
        ),
        (
            "thyroid_cancer.toml",
            'outcome = "reoperation_30d"',
            'outcome = "reoperation_60d"',
            "key 'indicators[3].outcome': unknown outcome 'reoperation_60d'",
        ),
        (
            "thyroid_cancer.toml",
            '{ name = "asa", type = "integer"',
            '{ name = "asa", typo = 1, type = "integer"',
            "key 'casemix[2].typo': unknown key",
        ),
        (
            "thyroid_cancer.toml",
            '{ name = "charlson"',
            '{ name = "frailty"',
            "key 'casemix[3].name': 'frailty' is not a stored case-mix variable",
        ),
        (
            "thyroid_cancer.toml",
            'scale = "FA"',
            'scale = "XX"',
            "key 'indicators[7].scale': instrument 'qlq_c30' has no scale 'XX'",
        ),
        ("thyroid_cancer.toml", 'id = "thyroid_cancer"', 'id = "thyroid"', "key 'id': must equal the file name"),
        ("colorectal_cancer.toml", "years = 1,", "years = 0,", "key 'indicators[12].years': must be more than 0"),
        (
            "colorectal_cancer.toml",
            'outcome = "death", years = 1, ',
            'outcome = "death", ',
            "key 'indicators[12].years': is required",
        ),
        (
            "colorectal_cancer.toml",
            'outcome = "death", years = 1',
            'outcome = "length_of_stay", years = 1',
            "a survival indicator needs a binary outcome, 'length_of_stay' is not",
        ),
        (
            "colorectal_cancer.toml",
            'kind = "cost", direction',
            'kind = "cost", years = 2, direction',
            "key 'indicators[11].years': only a survival indicator has a horizon",
        ),
        (
            "hip_osteoarthritis.toml",
            '{ id = "12m", days = 365,',
            '{ id = "12m", days = 365, before_days = 30,',
            "key 'timepoints[1].before_days': only a baseline (days = 0) may be completed before the index date",
        ),
        (
            "hip_osteoarthritis.toml",
            '{ id = "baseline", days = 0,',
            '{ id = "baseline", days = 0, before_days = -1,',
            "key 'timepoints[0].before_days': must be 0 or more, got -1",
        ),
        ("instruments.toml", "mic = 8,", "mic = -8,", "key 'oxford_hip.scales[0].mic': must be positive"),
        ("thyroid_cancer.toml", "standard_set = ", "standard_set == ", "not valid TOML"),
    ],
)
def test_malformed_catalog_names_file_and_key(catalog_copy, file, old, new, message):
    path = catalog_copy / file
    text = path.read_text(encoding="utf-8")
    assert old in text, "test fixture out of date with the catalog"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    with pytest.raises(CatalogError) as info:
        load_catalog(catalog_copy)
    assert str(path) in str(info.value)
    assert message in str(info.value)


def test_missing_catalog_directory(tmp_path):
    with pytest.raises(CatalogError, match="catalog directory not found"):
        load_catalog(tmp_path / "nowhere")


def test_every_catalog_object_answers_label_in_both_languages():
    """One message source: conditions, indicators, outcomes, case-mix variables and codes, timepoints,
    treatments, instruments, scales and cost activities all label themselves from the catalog files."""
    cat = default_catalog()
    for cond in cat.conditions.values():
        objects = [cond, *cond.indicators, *cond.outcomes, *cond.casemix, *cond.timepoints]
        objects += [cond.treatment(t) for t in cond.treatments]
        for obj in objects:
            for lang in ("nl", "en"):
                assert obj.label(lang).strip(), (cond.id, obj)
            assert obj.label("nl") != obj.id or obj.id.isupper(), f"{cond.id}: {obj.id} has no Dutch label"
        assert cond.standard_set_label("nl") and cond.standard_set_label("en") == cond.standard_set
        for use in cond.proms:
            assert set(use.timepoints) <= {tp.id for tp in cond.timepoints}
    for inst in cat.instruments.values():
        assert inst.label("nl")
        for scale in inst.scales:
            assert scale.label("nl") and scale.source("nl") and scale.source("en") == scale.mic_source
    for act in cat.cost_activities.values():
        assert act.label("nl") and act.label("nl") != act.id


def test_dutch_labels_of_timepoints_casemix_and_codes():
    cond = default_catalog().condition("colorectal_cancer")
    assert cond.timepoint("baseline").label("nl") == "Voormeting"
    assert cond.timepoint("12m").label("nl") == "12 maanden"
    assert cond.casemix_variable("age").label("nl") == "Leeftijd"
    assert cond.casemix_variable("asa").label("nl") == "ASA-klasse"
    sex = cond.casemix_variable("sex")
    assert [sex.code_label(c, "nl") for c in ("F", "M")] == ["Vrouw", "Man"]
    assert sex.code_label("F", "en") == "Female"
    assert cond.casemix_variable("stage").code_label("III", "nl") == "III"  # no label: the code as it is
    assert cond.treatment("colectomy").label("nl") == "Colectomie"
    with pytest.raises(ValueError, match="unsupported language"):
        cond.label("de")


def test_casemix_labels_file_must_cover_every_stored_variable(catalog_copy):
    tmp_path = catalog_copy
    (tmp_path / "casemix.toml").write_text('[age]\nlabel_en = "Age"\nlabel_nl = "Leeftijd"\n', encoding="utf-8")
    with pytest.raises(CatalogError, match="no labels for case-mix variable"):
        load_catalog(tmp_path)
    (tmp_path / "casemix.toml").write_text('[length]\nlabel_en = "L"\nlabel_nl = "L"\n', encoding="utf-8")
    with pytest.raises(CatalogError, match="not a stored case-mix variable"):
        load_catalog(tmp_path)


def test_a_baseline_window_is_a_year_unless_the_timepoint_sets_its_own(catalog_copy):
    """A baseline may precede the index date by BASELINE_WINDOW_DAYS (the importer refuses one completed earlier),
    a follow-up not at all; a condition's baseline timepoint may set its own window (before_days)."""
    hip = load_catalog(catalog_copy).conditions["hip_osteoarthritis"]
    assert {t.id: t.before_days for t in hip.timepoints} == {"baseline": BASELINE_WINDOW_DAYS, "12m": 0}
    assert BASELINE_WINDOW_DAYS == 365
    path = catalog_copy / "hip_osteoarthritis.toml"
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace('{ id = "baseline", days = 0,', '{ id = "baseline", days = 0, before_days = 90,'))
    hip = load_catalog(catalog_copy).conditions["hip_osteoarthritis"]
    assert hip.timepoints[0].before_days == 90
