"""PREM indicators per unit: the rating and net promoter means and the top-box shares, case-mix adjusted as the
CQI methodology does, checked against statsmodels fitted here by hand (OLS, binomial GLM) and hand-worked
cases; the planted department is found; role rules (aggregates for managers, own units for care teams) hold
when vbhc is called directly."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
import statsmodels.formula.api as smf
from sqlalchemy import Engine

from tests import registry_source
from tests.registry_files import write_csv, write_small_registry
from vbhc import audit
from vbhc.access import OTHER_UNIT, AccessDenied, Role, Scope, Viewer
from vbhc.catalog import PREM_CASEMIX, default_catalog
from vbhc.demo_prems import PLANTED_EXPERIENCE, write_prem_responses
from vbhc.prems import (
    answer_rows,
    compute_prem_indicators,
    nps_points,
    prem_data,
    prem_indicator_table,
    prem_rows,
    respondent_answers,
    respondent_rows,
)

HOSPITALS = ("H01", "H02", "H03", "H04", "H05", "H06")
DEPARTMENTS = ("SUR", "ORT", "CAR")
UNITS = [(h, d, 1.0 + 0.2 * i) for i, h in enumerate(HOSPITALS) for d in DEPARTMENTS]
FORMULA = " + ".join(f"C({c})" for c in PREM_CASEMIX)


def _read(path) -> pd.DataFrame:
    """The generated CSV as vbhc.registry.prem_answers returns it (typed, empty case-mix as missing)."""
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    frame["answer"] = frame["answer"].astype(float)
    frame["visit_date"] = pd.to_datetime(frame["visit_date"])
    for name in PREM_CASEMIX:
        frame[name] = frame[name].replace("", None)
    return frame


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    folder = tmp_path_factory.mktemp("prem")
    path, _rows, truth = write_prem_responses(
        folder, UNITS, respondents=9_000, seed=5, first=dt.date(2023, 1, 1), last=dt.date(2024, 12, 31)
    )
    return path, truth, _read(path)


@pytest.fixture(scope="module")
def clinical(generated):
    _, _, answers = generated
    q = default_catalog().questionnaire("prem_clinical")
    answers = answers[answers["questionnaire"] == q.id].drop(columns="questionnaire")
    result = compute_prem_indicators(prem_data(answers, q), "department")
    return q, answers, result


def test_nps_points_by_hand():
    got = nps_points(np.array([10, 9, 8, 7, 6, 0, np.nan]))
    np.testing.assert_array_equal(got, [100, 100, 0, 0, -100, -100, np.nan])


def test_hand_worked_unit():
    """Four respondents of one unit: rating mean 7.75, NPS (2 promoters - 1 detractor) / 4 = 25, top box of the
    doctors theme 4 of 7 answers; no case-mix model (too few), so adjusted = crude."""
    q = default_catalog().questionnaire("prem_clinical")
    rows = []
    for rid, rating, recommend, doctors in (
        ("A", 9, 10, (4, 4)),
        ("B", 8, 9, (4, 3)),
        ("C", 6, 5, (2, None)),
        ("D", 8, 8, (1, 4)),
    ):
        base = {"response_id": rid, "hospital": "H01", "department": "SUR", "visit_date": pd.Timestamp("2024-03-01")}
        base |= {"age_band": "65-74", "education": "middle", "self_rated_health": "good"}
        rows += [base | {"item": "overall", "answer": rating}, base | {"item": "recommend", "answer": recommend}]
        pairs = zip(("doc_listen", "doc_explain"), doctors, strict=True)
        rows += [base | {"item": it, "answer": a} for it, a in pairs if a]
    answers = pd.DataFrame(rows).astype({"answer": float})
    table = compute_prem_indicators(prem_data(answers, q), "department").table.set_index("indicator")
    assert table.loc["prem_respondents", "n"] == 4
    assert table.loc["prem_rating", "crude_value"] == pytest.approx(7.75)
    assert table.loc["prem_nps", "crude_value"] == pytest.approx(25.0)
    assert table.loc["prem_topbox_doctors", "n"] == 7
    assert table.loc["prem_topbox_doctors", "crude_value"] == pytest.approx(4 / 7)
    assert table.loc["prem_topbox_discharge", "n"] == 0  # no answers to that theme
    assert np.isnan(table.loc["prem_topbox_discharge", "crude_value"])


def test_rating_adjustment_matches_statsmodels_ols(clinical):
    q, answers, result = clinical
    resp = respondent_rows(answers, q).assign(unit=lambda f: f["hospital"] + "/" + f["department"])
    table = result.table.set_index(["indicator", "unit"])
    for indicator in ("prem_rating", "prem_nps"):
        data = resp.dropna(subset=[indicator, *PREM_CASEMIX])
        fit = smf.ols(f"{indicator} ~ {FORMULA}", data=data).fit()
        overall = data[indicator].mean()
        adjusted = (data[indicator] - fit.fittedvalues).groupby(data["unit"]).mean() + overall
        crude = resp.dropna(subset=[indicator]).groupby("unit")[indicator].mean()
        for unit, value in adjusted.items():
            row = table.loc[(indicator, unit)]
            assert row["adjusted_value"] == pytest.approx(value, abs=1e-9), (indicator, unit)
            assert row["crude_value"] == pytest.approx(crude[unit], abs=1e-12)
            assert row["target"] == pytest.approx(overall, abs=1e-9)
        # left out of the adjustment: respondents who answered the question but miss a case-mix value
        missing_casemix = int(resp[indicator].notna().sum()) - len(data)
        assert missing_casemix > 0 and (table.loc[indicator, "model_n_excluded"] == missing_casemix).all()


def test_top_box_adjustment_matches_statsmodels_glm(clinical):
    q, answers, result = clinical
    rows = answer_rows(answers, q).assign(unit=lambda f: f["hospital"] + "/" + f["department"])
    table = result.table.set_index(["indicator", "unit"])
    for theme in ("doctors", "discharge"):
        indicator = f"prem_topbox_{theme}"
        # by hand: the theme's answers, top box when the answer is the scale's best category
        items = [i for i in q.items if i.theme == theme]
        best = {i.id: q.scales[i.scale].top_box for i in items}
        mine = answers[answers["item"].isin(best)].copy()
        mine["top"] = [float(a in best[i]) for a, i in zip(mine["answer"], mine["item"], strict=True)]
        mine["unit"] = mine["hospital"] + "/" + mine["department"]
        np.testing.assert_allclose(
            mine.groupby("unit")["top"].mean().sort_index(),
            rows.dropna(subset=[indicator]).groupby("unit")[indicator].mean().sort_index(),
        )
        data = mine.dropna(subset=list(PREM_CASEMIX))
        fit = smf.glm(f"top ~ {FORMULA}", data=data, family=sm.families.Binomial()).fit()
        overall = data["top"].mean()
        per_unit = data.assign(e=fit.fittedvalues).groupby("unit").agg(o=("top", "sum"), e=("e", "sum"))
        for unit, r in per_unit.iterrows():
            row = table.loc[(indicator, unit)]
            assert row["observed"] == r["o"] and row["expected"] == pytest.approx(r["e"], rel=1e-6)
            assert row["adjusted_value"] == pytest.approx(r["o"] / r["e"] * overall, rel=1e-6), (indicator, unit)


def test_the_planted_department_is_found_and_the_casemix_only_one_is_not(clinical, generated):
    _, truth, _ = generated
    _, _, result = clinical
    planted = {f"{p.hospital}/{p.department}" for p in PLANTED_EXPERIENCE}
    assert truth["planted"][0]["unit"] in planted
    table = result.table[result.table["kind"] != "volume"]
    for indicator in ("prem_rating", "prem_topbox_doctors"):
        rows = table[table["indicator"] == indicator].set_index("unit")
        below = set(rows.index[rows["position_998"] == "below"])
        assert below == planted, indicator
    # H02's respondents are older, less educated, healthier: crude better, adjusted back near the target
    rating = table[table["indicator"] == "prem_rating"].set_index("unit")
    h02 = rating.loc[[u for u in rating.index if u.startswith("H02/")]]
    assert (h02["crude_value"] > h02["adjusted_value"]).all()


# --- from the database, with the role rules -----------------------------------------------------------------


@pytest.fixture(scope="module")
def stored_files(tmp_path_factory, generated) -> tuple[list[Path], list[Path]]:
    """The two imports of `stored`: the small registry with every unit the PREM answers name, then the answers."""
    folder = tmp_path_factory.mktemp("prem_registry") / "files"
    files = write_small_registry(folder)  # H01/H02 SUR and ORT, hip cycles in ORT
    extra = [
        {"hospital": h, "department": d, "hospital_name": f"Ziekenhuis {h}", "department_name": d, "division": "X"}
        for h in HOSPITALS
        for d in DEPARTMENTS
        if not (h in ("H01", "H02") and d in ("SUR", "ORT"))
    ]
    units = write_csv(folder / "units_more.csv", extra)
    return [*files[:2], units], [generated[0]]


@pytest.fixture(scope="module")
def sqlite_source(stored_files, _sqlite_schema, tmp_path_factory) -> registry_source.Source:
    """stored_files imported once into a SQLite registry of the current schema: what `stored` copies for a test
    (importing the 9,000 respondents' answers for each test was half of this module's time)."""
    return registry_source.sqlite_imported(_sqlite_schema, tmp_path_factory.mktemp("prem_source"), *stored_files)


@pytest.fixture(scope="module")
def postgres_source(stored_files, postgres_server, _postgres_schema) -> Iterator[registry_source.Source]:
    """As sqlite_source, on the suite's PostgreSQL server (the template of every test's copy)."""
    with registry_source.postgres_imported(postgres_server, _postgres_schema, *stored_files) as source:
        yield source


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def stored(request, tmp_path) -> Iterator[Engine]:
    """A registry (SQLite and PostgreSQL, as the `engine` fixture's) with stored_files imported: this test's own
    copy of the module's imported registry (the same rows, import batches and audit events)."""
    yield from registry_source.copy_for_test(request, request.param, tmp_path)


def test_from_the_database_equals_from_the_file(stored, clinical):
    _, _, from_file = clinical
    from_db = prem_indicator_table("prem_clinical", "department", engine=stored)
    cols = ["indicator", "unit", "n", "crude_value", "adjusted_value", "position_998"]
    pd.testing.assert_frame_equal(from_db.table[cols], from_file.table[cols])
    hospital = prem_indicator_table("prem_clinical", "hospital", "2024", engine=stored).table
    assert set(hospital["unit"]) == set(HOSPITALS)


def _viewer(role: Role, **scope) -> Viewer:
    return Viewer(f"{role}@test", scopes=(Scope(role, **{k: frozenset(v) for k, v in scope.items()}),))


def test_a_manager_sees_aggregates_of_own_units_only(stored):
    result = prem_indicator_table("prem_clinical", "department", engine=stored)
    manager = _viewer(Role.MANAGER, hospitals={"H03"})
    rows = prem_rows(manager, result, engine=stored)
    named = set(rows.loc[~rows["anonymised"], "unit"])
    assert named == {"H03/SUR", "H03/ORT", "H03/CAR"}
    others = rows[rows["anonymised"]]
    assert others["unit"].str.startswith(OTHER_UNIT).all() and others["hospital"].eq("").all()
    assert others["observed"].isna().all() and others["n"].isna().all()
    with pytest.raises(AccessDenied):
        respondent_answers(manager, result, "H03/CAR", engine=stored)
    assert "denied" in set(audit.read(stored)["action"])


def test_a_care_team_sees_its_own_units_and_their_respondents(stored):
    result = prem_indicator_table("prem_clinical", "department", engine=stored)
    team = _viewer(Role.CARE_TEAM, conditions={"hip_osteoarthritis"}, hospitals={"H01"})
    rows = prem_rows(team, result, engine=stored)
    assert set(rows.loc[~rows["anonymised"], "unit"]) == {"H01/ORT"}  # where its hip cycles are treated
    respondents = respondent_answers(team, result, "H01/ORT", engine=stored)
    assert len(respondents) == result.table.set_index(["indicator", "unit"]).loc[("prem_respondents", "H01/ORT"), "n"]
    assert set(respondents["hospital"]) == {"H01"} and set(respondents["department"]) == {"ORT"}
    with pytest.raises(AccessDenied):
        respondent_answers(team, result, "H01/SUR", engine=stored)
    quality = _viewer(Role.QUALITY)
    assert not prem_rows(quality, result, engine=stored)["anonymised"].any()
    nobody = Viewer("nobody@test")
    with pytest.raises(AccessDenied):
        prem_rows(nobody, result, engine=stored)


def test_no_answers_give_an_empty_table(sqlite_engine):
    for level, period in (("department", None), ("hospital", "2024")):
        result = prem_indicator_table("prem_outpatient", level, period, engine=sqlite_engine)
        assert result.table.empty
