"""Patient experience beside the outcomes: the team page and the overview show the PREM indicators of their
units in Dutch and English, with the engine's numbers, no exception, and no raw ids, None or NaN."""

from __future__ import annotations

import re

import pytest

from tests.shown import tables as shown_tables
from tests.test_app import _app, _run
from vbhc import audit
from vbhc.catalog import default_catalog
from vbhc.i18n import format_value, t
from vbhc.prems import prem_indicator_table
from vbhc.registry import unit_names, units

pytestmark = pytest.mark.usefixtures("local_mode")


@pytest.fixture
def demo_db(small_demo_registry, monkeypatch):
    engine, truth = small_demo_registry
    monkeypatch.setenv("VBHC_DATABASE_URL", engine.url.render_as_string(hide_password=False))
    return engine, truth


def _prem_tables(at, lang: str) -> list:
    return [tbl.value for tbl in shown_tables(at) if t("prem.number", lang) in tbl.value.columns]


def _no_raw_values(tables, lang: str) -> None:
    text = " ".join(str(v) for frame in tables for v in frame.to_numpy().ravel())
    assert not re.search(r"\b(None|nan|NaN|prem_[a-z_]+)\b", text), text[:400]
    assert not re.search(r"\bH\d\d/[A-Z]{3}\b", text), "a raw unit id"
    if lang == "nl":
        assert not re.search(r"\b(respondents|answers|within|below|above)\b", text)


@pytest.mark.parametrize("lang", ["en", "nl"])
def test_overview_shows_the_own_departments_patient_experience(demo_db, lang):
    engine, truth = demo_db
    own = truth["own_hospital"]
    at = _run(_app({"lang": lang}))
    assert t("prem.title", lang) in [s.value for s in at.subheader]
    tables = _prem_tables(at, lang)
    assert tables
    _no_raw_values(tables, lang)
    table = prem_indicator_table("prem_clinical", "department", engine=engine).table
    names = unit_names(units(engine=engine), "department")
    rating = table[(table["indicator"] == "prem_rating") & table["unit"].str.startswith(f"{own}/")]
    shown = tables[0]
    label = default_catalog().questionnaire("prem_clinical").indicator("prem_rating").label(lang)
    for row in rating.itertuples():
        line = shown[(shown[t("column.unit", lang)] == names[row.unit]) & (shown[t("column.indicator", lang)] == label)]
        assert len(line) == 1, row.unit
        assert line[t("column.adjusted", lang)].iloc[0] == format_value(row.adjusted_value, "prem_rating", lang)


@pytest.mark.parametrize(("lang", "level"), [("en", "hospital"), ("nl", "condition_team")])
def test_team_page_shows_its_patient_experience(demo_db, lang, level):
    engine, truth = demo_db
    own = truth["own_hospital"]
    query = {"lang": lang, "condition": "hip_osteoarthritis", "level": level}
    query[f"unit_{level}"] = own if level == "hospital" else f"hip_osteoarthritis@{own}"
    at = _run(_app(query), "views/condition_team.py")
    tables = _prem_tables(at, lang)
    assert tables, [s.value for s in at.subheader]
    _no_raw_values(tables, lang)
    prem_level = "hospital" if level == "hospital" else "department"
    table = prem_indicator_table("prem_clinical", prem_level, engine=engine).table
    unit = own if level == "hospital" else f"{own}/ORT"  # the demo treats hip osteoarthritis in orthopaedics
    nps = table[(table["indicator"] == "prem_nps") & (table["unit"] == unit)].iloc[0]
    shown = tables[0]
    label = default_catalog().questionnaire("prem_clinical").indicator("prem_nps").label(lang)
    line = shown[shown[t("column.indicator", lang)] == label]
    assert line[t("column.adjusted", lang)].tolist() == [format_value(nps["adjusted_value"], "prem_nps", lang)]
    assert line[t("prem.number", lang)].tolist() == [t("prem.respondents", lang, count=int(nps["n"]))]


# --- roles (signed in, as tests/test_app_roles.py) ------------------------------------------------------------
from tests.test_app_roles import _app as _signed_in_app  # noqa: E402


def test_a_manager_sees_patient_experience_of_own_units_only(signed_in_db):
    names = unit_names(units(engine=signed_in_db), "department")
    at = _signed_in_app("manager", "views/overview.py")
    tables = _prem_tables(at, "en")
    assert tables
    shown = {u for frame in tables for u in frame[t("column.unit", "en")]}
    assert shown and shown <= {names[u] for u in names if u.startswith("H01/")}
    at = _signed_in_app("manager", "views/condition_team.py", condition="colorectal_cancer")
    for frame in _prem_tables(at, "en"):  # one unit: no unit column (the page names it), several: named per row
        if t("column.unit", "en") not in frame.columns:
            continue
        assert set(frame[t("column.unit", "en")]) <= {names[u] for u in names if u.startswith("H01")} | {
            unit_names(units(engine=signed_in_db), "hospital")["H01"]
        }
    events = audit.read(signed_in_db, user="manager@example.org")
    assert not (events["action"] == "denied").any()


def test_admin_without_a_unit_grant_sees_no_patient_experience_and_no_refusal(signed_in_db):
    at = _signed_in_app("admin", "views/data.py")
    assert not _prem_tables(at, "en")
    assert not (audit.read(signed_in_db, user="admin@example.org")["action"] == "denied").any()


def test_team_page_keeps_its_patient_experience_tables_and_audits_every_visit(demo_db, monkeypatch):
    """The PREM tables are built once per view, scope and language and sent again on the next visit: the same
    tables as built afresh, and every visit is still recorded in the audit log (once per questionnaire)."""
    from ui import prems as ui_prems
    from vbhc import prems

    _engine, truth = demo_db
    recorded = []
    record = prems.record_prem_view
    monkeypatch.setattr(prems, "record_prem_view", lambda *a, **k: recorded.append(a[2].condition) or record(*a, **k))
    query = {"lang": "en", "condition": "hip_osteoarthritis", "level": "hospital"}
    query["unit_hospital"] = truth["own_hospital"]
    ui_prems._kept.clear()
    first = _run(_app(query), "views/condition_team.py")
    built, audited = _prem_tables(first, "en"), list(recorded)
    assert built and audited
    again = _run(_app(query), "views/condition_team.py")  # kept: not built again, audited again
    assert recorded == audited * 2
    ui_prems._kept.clear()
    fresh = _run(_app(query), "views/condition_team.py")
    for tables in (_prem_tables(again, "en"), _prem_tables(fresh, "en")):
        assert len(tables) == len(built)
        for shown, expected in zip(tables, built, strict=True):
            assert shown.equals(expected)
