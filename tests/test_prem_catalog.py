"""PREM questionnaires in the catalog (prems.toml): themes, items with answer scales and top box, indicators,
the respondents' case-mix; a malformed file names the file and the key."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from vbhc.catalog import BINARY_KINDS, CONTINUOUS_KINDS, PREM_KINDS, CatalogError, load_catalog
from vbhc.settings import catalog_dir


def test_the_hospital_wide_questionnaires_are_there():
    catalog = load_catalog()
    assert {"prem_clinical", "prem_outpatient"} <= set(catalog.prems)
    clinical = catalog.questionnaire("prem_clinical")
    assert clinical.visit_type == "clinical"
    assert {t.id for t in clinical.themes} >= {"information", "doctors", "nurses", "discharge"}
    # a 0-10 overall rating, and department-specific items besides the hospital-wide themes
    assert clinical.item("overall").scale == "rating_0_10"
    assert any(i.departments for i in clinical.items) and any(not i.departments for i in clinical.items)
    kinds = {i.kind for i in clinical.indicators}
    assert {"prem_rating", "prem_nps", "prem_topbox"} <= kinds
    # the outpatient questionnaire asks no recommend question, so it has no net promoter score
    assert "prem_nps" not in {i.kind for i in catalog.questionnaire("prem_outpatient").indicators}
    assert [v.name for v in clinical.casemix] == ["age_band", "education", "self_rated_health"]
    assert clinical.scales["never_always"].top_box == (4,)
    assert clinical.scales["rating_0_10"].top_box == (9, 10)


def test_prem_kinds_go_through_the_binary_and_continuous_machinery():
    assert "prem_topbox" in BINARY_KINDS
    assert {"prem_rating", "prem_nps"} <= set(CONTINUOUS_KINDS)
    assert set(PREM_KINDS) == {"prem_rating", "prem_nps", "prem_topbox"}


def test_a_questionnaire_is_an_indicator_set_like_a_condition():
    catalog = load_catalog()
    as_condition = catalog.indicator_set("prem_clinical")
    assert as_condition.id == "prem_clinical"
    assert as_condition.indicator("prem_rating").item == "overall"
    assert as_condition.casemix_names == ("age_band", "education", "self_rated_health")
    assert catalog.indicator_set("hip_osteoarthritis") is catalog.condition("hip_osteoarthritis")
    for q in catalog.prems.values():
        assert q.label("nl") != q.label("en")
        for ind in q.indicators:
            assert ind.label("nl") and ind.label("en")


@pytest.fixture
def catalog_copy(tmp_path) -> Path:
    target = tmp_path / "catalog"
    shutil.copytree(catalog_dir(), target)
    return target


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("top_box = [4]", "top_box = [5]", "key 'scales.never_always.top_box[0]': 5 is not an answer of this scale"),
        (
            'theme = "information", scale = "never_always", label_en = "Explained',
            'theme = "informatoin", scale = "never_always", label_en = "Explained',
            "key 'questionnaires.prem_clinical.items[0].theme': unknown theme 'informatoin'",
        ),
        (
            'kind = "prem_nps", item = "recommend"',
            'kind = "prem_nps", item = "doc_listen"',
            "needs a 0-10 question, 'doc_listen' is not",
        ),
        (
            'kind = "prem_topbox", theme = "discharge"',
            'kind = "prem_topbox", theme = "parking"',
            "theme 'parking' has no items",
        ),
        ('visit_type = "outpatient"', 'visit_type = "day"', "visit_type': must be one of clinical, outpatient"),
    ],
)
def test_malformed_prem_catalog_names_file_and_key(catalog_copy, old, new, message):
    path = catalog_copy / "prems.toml"
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    with pytest.raises(CatalogError) as err:
        load_catalog(catalog_copy)
    assert "prems.toml" in str(err.value) and message in str(err.value)


def test_a_prem_kind_in_a_condition_file_is_refused(catalog_copy):
    path = catalog_copy / "thyroid_cancer.toml"
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace('kind = "cost"', 'kind = "prem_rating"', 1), encoding="utf-8")
    with pytest.raises(CatalogError, match=r"belongs to a questionnaire in prems\.toml"):
        load_catalog(catalog_copy)
