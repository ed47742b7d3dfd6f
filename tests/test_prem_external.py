"""The yearly comparison with other academic hospitals comes in as external figures (vbhc.external): PREM
indicators are catalog indicators, so a bureau's (or the partners') summary figures are read, validated, stored
and combined with the own hospital's figures computed from its own respondents, and the combined table is the
one computed from every hospital's answers (yes/no exactly, O/E included; means on crude values)."""

from __future__ import annotations

import datetime as dt
import io

import numpy as np
import pandas as pd
import pytest

from tests.registry_files import write_csv, write_small_registry
from tests.test_prem_indicators import UNITS, _read
from vbhc import external
from vbhc.access import OTHER_UNIT, Role, Scope, Viewer
from vbhc.catalog import BINARY_KINDS, default_catalog
from vbhc.demo_prems import write_prem_responses
from vbhc.external import ExternalRefused, own_summary, read_figures, write_figures
from vbhc.prems import compute_prem_indicators, prem_data

QUALITY = Viewer("quality@example.org", "Quality", (Scope(Role.QUALITY),))
QUESTIONNAIRE = "prem_clinical"
ME = "H06"  # the hospital with the planted department


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    path, _, _ = write_prem_responses(
        tmp_path_factory.mktemp("prem_ext"), UNITS, 8_000, seed=9, first=dt.date(2024, 1, 1), last=dt.date(2024, 12, 31)
    )
    return path


@pytest.fixture(scope="module")
def pooled(generated):
    answers = _read(generated)
    answers = answers[answers["questionnaire"] == QUESTIONNAIRE].drop(columns="questionnaire")
    q = default_catalog().questionnaire(QUESTIONNAIRE)
    everyone = compute_prem_indicators(prem_data(answers, q), "hospital")
    local = {
        h: compute_prem_indicators(prem_data(answers[answers["hospital"] == h], q), "hospital")
        for h in sorted(answers["hospital"].unique())
    }
    return everyone, local


def _feedback(everyone, local) -> bytes:
    """The bureau's yearly file: every other hospital's figures, expected from the national (pooled) model."""
    others = [own_summary(local[h], models=everyone.models).frame for h in sorted(local) if h != ME]
    return write_figures(
        pd.concat(others, ignore_index=True),
        source="Vergelijking academische ziekenhuizen",
        published=dt.date(2025, 4, 1),
        period="2024",
    )


def test_external_prem_figures_benchmark_the_own_hospital_among_them(pooled, sqlite_engine):
    everyone, local = pooled
    read = read_figures(_feedback(everyone, local), file_name="cqi_2024.csv")
    assert set(read.frame["condition"]) == {QUESTIONNAIRE}
    external.import_figures(sqlite_engine, QUALITY, _feedback(everyone, local), file_name="cqi_2024.csv")
    got = external.external_benchmark(sqlite_engine, QUALITY, local[ME], models=everyone.models, lang="nl")
    assert got.population == "Vergelijking academische ziekenhuizen 2024, 6 ziekenhuizen"
    table = got.table
    assert set(table.loc[~table["external"], "unit"]) == {ME} and set(table["unit"]) == set(local)
    want = everyone.table.set_index(["indicator", "unit"])
    have = table.set_index(["indicator", "unit"]).reindex(want.index)
    kinds = want["kind"]
    binary = kinds.isin(BINARY_KINDS).to_numpy()
    for column in ("n", "observed", "expected", "oe", "adjusted_value", "lower_998", "upper_998"):
        np.testing.assert_allclose(
            have.loc[binary, column].to_numpy(float), want.loc[binary, column].to_numpy(float), rtol=1e-9
        )
    assert list(have.loc[binary, "position_998"]) == list(want.loc[binary, "position_998"])
    means = kinds.isin(["prem_rating", "prem_nps"]).to_numpy()
    for column in ("n", "crude_value"):
        np.testing.assert_allclose(
            have.loc[means, column].to_numpy(float), want.loc[means, column].to_numpy(float), rtol=1e-9
        )
    # the own hospital, with the planted department, is below the other academic hospitals on doctors' top box
    assert have.loc[("prem_topbox_doctors", ME), "adjusted_value"] < have.loc[("prem_topbox_doctors", ME), "target"]


def test_a_manager_sees_the_other_hospitals_anonymised(pooled, sqlite_engine):
    everyone, local = pooled
    external.import_figures(sqlite_engine, QUALITY, _feedback(everyone, local), file_name="cqi_2024.csv")
    manager = Viewer("m@x", "M", (Scope(Role.MANAGER, hospitals=frozenset({ME})),))
    shown = external.external_benchmark(sqlite_engine, manager, local[ME], models=everyone.models).table
    others = shown[shown["anonymised"]]
    assert len(others) and others["unit"].str.startswith(OTHER_UNIT).all()
    assert set(shown.loc[~shown["anonymised"], "unit"]) == {ME}


@pytest.mark.parametrize(
    ("column", "value", "rule"),
    [
        ("condition", "prem_dental", "unknown condition or PREM questionnaire"),
        ("indicator", "prem_parking", "unknown indicator of prem_clinical"),
    ],
)
def test_a_bad_prem_figure_refuses_the_file(pooled, column, value, rule):
    everyone, local = pooled
    frame = pd.read_csv(io.BytesIO(_feedback(everyone, local)), dtype=str, keep_default_na=False)
    frame.loc[3, column] = value
    with pytest.raises(ExternalRefused) as info:
        read_figures(frame.to_csv(index=False).encode(), file_name="cqi_2024.csv")
    assert f"cqi_2024.csv row 5 column '{column}'" in str(info.value) and rule in str(info.value)
    assert repr(value) in str(info.value)


# --- on the team page ---------------------------------------------------------------------------------------


@pytest.mark.usefixtures("local_mode")
def test_the_team_page_shows_the_own_hospital_among_the_external_figures(pooled, generated, tmp_path, monkeypatch):
    from tests.test_app import _app, _run
    from tests.test_app_prems import _prem_tables
    from vbhc.i18n import format_value, t
    from vbhc.ingest import import_files
    from vbhc.safety import md_escape
    from vbhc.store import get_engine

    everyone, local = pooled
    me = "H01"  # the own hospital of tests/registry_files.py
    engine = get_engine(f"sqlite:///{tmp_path / 'own.db'}")
    files = write_small_registry(tmp_path / "files")
    more = [
        {"hospital": h, "department": d, "hospital_name": f"Ziekenhuis {h}", "department_name": d, "division": "X"}
        for h, d, _ in UNITS
        if not (h in ("H01", "H02") and d in ("SUR", "ORT"))
    ]
    import_files([*files[:2], write_csv(tmp_path / "files" / "units_more.csv", more)], engine)
    rows = pd.read_csv(generated, dtype=str, keep_default_na=False)
    import_files([write_csv(tmp_path / "prem_responses.csv", rows[rows["hospital"] == me].to_dict("records"))], engine)
    others = [own_summary(local[h], models=everyone.models).frame for h in sorted(local) if h != me]
    feedback = write_figures(
        pd.concat(others, ignore_index=True),
        source="Vergelijking academische ziekenhuizen",
        published=dt.date(2025, 4, 1),
        period="2024",
    )
    external.import_figures(engine, QUALITY, feedback, file_name="cqi_2024.csv")
    monkeypatch.setenv("VBHC_DATABASE_URL", engine.url.render_as_string(hide_password=False))
    query = {"lang": "nl", "condition": "hip_osteoarthritis", "level": "hospital", "unit_hospital": me}
    at = _run(_app(query), "views/condition_team.py")
    population = "Vergelijking academische ziekenhuizen 2024, 6 ziekenhuizen"
    named = t("external.benchmark_named", "nl", population=md_escape(population))
    assert named in [c.value for c in at.caption]
    shown = _prem_tables(at, "nl")[0]
    from vbhc.prems import prem_indicator_table

    want = external.external_benchmark(
        engine, QUALITY, prem_indicator_table(QUESTIONNAIRE, "hospital", engine=engine), lang="nl"
    ).table
    row = want[(want["indicator"] == "prem_topbox_doctors") & (want["unit"] == me)].iloc[0]
    label = default_catalog().questionnaire(QUESTIONNAIRE).indicator("prem_topbox_doctors").label("nl")
    line = shown[shown[t("column.indicator", "nl")] == label]
    assert line[t("column.adjusted", "nl")].tolist() == [format_value(row["adjusted_value"], "prem_topbox", "nl")]
    assert line[t("column.benchmark", "nl")].tolist() == [format_value(row["target"], "prem_topbox", "nl")]
    engine.dispose()
