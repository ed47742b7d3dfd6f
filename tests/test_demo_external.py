"""`vbhc demo --mode own`: the own hospital's patient rows plus the other hospitals as external figures (issue 15,
item 6). What the own hospital then sees of the others must be what the shared registry of every hospital's
patient rows says of them (counts and events exactly), without a single other hospital's patient row stored."""

from __future__ import annotations

import csv
import json

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import create_engine, select

from vbhc import external, external_models, models, results
from vbhc.access import local_viewer
from vbhc.catalog import BINARY_KINDS, default_catalog
from vbhc.cli import main
from vbhc.demo import FOLLOW_UP_FILE, TABLES
from vbhc.demo_external import EXTERNAL_FILE, SOURCE
from vbhc.indicators import IndicatorResult, compute_indicators, load_condition_data
from vbhc.ingest import import_files
from vbhc.registry import hospital_of
from vbhc.store import get_engine, upgrade_schema

CYCLES = 3000


@pytest.fixture(scope="module")
def own_mode(tmp_path_factory):
    """The demo in own-hospital mode, and (to check it against) the shared registry of the same files."""
    tmp = tmp_path_factory.mktemp("own_mode")
    url = f"sqlite:///{tmp / 'own.db'}"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("VBHC_DATABASE_URL", url)
        mp.setenv("VBHC_RESULTS_DIR", "off")
        get_engine.cache_clear()
        code = main(["demo", "--cycles", str(CYCLES), "--out", str(tmp / "demo"), "--mode", "own"])
        get_engine.cache_clear()
    assert code == 0
    shared = create_engine(f"sqlite:///{tmp / 'shared.db'}")
    upgrade_schema(shared)
    files = [tmp / "demo" / ("units.xlsx" if name == "units" else f"{name}.csv") for name in TABLES]
    if (tmp / "demo" / FOLLOW_UP_FILE).exists():  # vital status, before clinical_outcomes.csv as `vbhc demo` does
        files.insert(files.index(tmp / "demo" / "clinical_outcomes.csv"), tmp / "demo" / FOLLOW_UP_FILE)
    import_files(files, shared, imported_by="test")
    own = create_engine(url)
    truth = json.loads((tmp / "demo" / "truth.json").read_text(encoding="utf-8"))
    yield {"own": own, "shared": shared, "dir": tmp / "demo", "hospital": truth["own_hospital"]}
    own.dispose()
    shared.dispose()


@pytest.fixture(scope="module")
def own_results(own_mode) -> dict[str, IndicatorResult]:
    """The own hospital's hospital-level result of every condition, computed once: the tests below compare the
    external figures and the published models with it and only read it (they computed each condition three times).

    Computed through the results store beside the own registry (vbhc.results.ResultStore.result: the same
    compute_indicators of the same load_condition_data, stored results equal fresh ones is tests/test_results.py's),
    as a page would: the pages' test below (which asks for this fixture) then reads these views instead of computing
    each condition's hospital view a second time (~3.3 s of its CPU: 7 views and their data no longer computed)."""
    store = results.ResultStore(own_mode["own"])
    version = store.version()
    return {c: store.result(results.ViewKey(c, "hospital"), version) for c in default_catalog().conditions}


def test_the_own_hospital_stores_only_its_own_patient_rows(own_mode):
    with own_mode["own"].connect() as conn:
        hospitals = set(conn.execute(select(models.CareCycle.__table__.c.hospital)).scalars())
        stored = conn.execute(select(models.CareCycle.__table__.c.cycle_id)).scalars().all()
    assert hospitals == {own_mode["hospital"]}
    with (own_mode["dir"] / "care_cycles.csv").open(encoding="utf-8", newline="") as f:
        mine = [r["cycle_id"] for r in csv.DictReader(f) if r["hospital"] == own_mode["hospital"]]
    assert sorted(stored) == sorted(mine) and 0 < len(mine) < CYCLES


def test_the_others_arrive_as_figures_equal_to_the_shared_registry(own_mode, own_results):
    """Per condition: the own hospital among the external figures gives every hospital the n and the crude rate
    the shared registry computes from the patient rows (small cells withheld by the export rule may be missing)."""
    viewer = local_viewer("test")
    catalog = default_catalog()
    publications = external.publications(own_mode["own"], viewer)
    assert list(publications["source"]) == [SOURCE]
    compared = 0
    for condition in catalog.conditions:
        mine = own_results[condition]
        benchmark = external.external_benchmark(own_mode["own"], viewer, mine)
        assert benchmark is not None, condition
        assert "hospitals" in benchmark.population and SOURCE in benchmark.population
        # the shared registry's yes/no indicators, the ones compared (each indicator's rows are computed alone)
        binary = [ind for ind in catalog.condition(condition).indicators if ind.kind in BINARY_KINDS]
        shared = load_condition_data(condition, engine=own_mode["shared"])
        every = compute_indicators(shared, "hospital", indicators=[ind.id for ind in binary]).table
        got = benchmark.table
        assert {hospital_of(str(u)) for u in got["unit"]} - {own_mode["hospital"]}, condition  # others are there
        for ind in binary:
            left = got[got["indicator"] == ind.id].set_index("unit")
            right = every[every["indicator"] == ind.id].set_index("unit")
            assert set(left.index) <= set(right.index), (condition, ind.id)  # no unit the registry does not have
            units = left.index
            np.testing.assert_array_equal(left.loc[units, "n"].to_numpy(float), right.loc[units, "n"].to_numpy(float))
            # the crude rate (events among all n): the table's `observed` is O of O/E, among the case-mix scored
            np.testing.assert_allclose(
                left.loc[units, "crude_value"].to_numpy(float),
                right.loc[units, "crude_value"].to_numpy(float),
                rtol=1e-12,
                err_msg=f"{condition} {ind.id}",
            )
            compared += len(units)
    assert compared > 100


def test_the_external_file_is_the_registry_format_and_names_no_patient(own_mode):
    figures = pd.read_csv(own_mode["dir"] / EXTERNAL_FILE, dtype=str)
    assert set(figures["source"]) == {SOURCE} and figures["period"].nunique() == 1
    assert own_mode["hospital"] not in set(figures["unit"].map(hospital_of))  # the own hospital is computed locally
    assert len(set(figures["unit"].map(hospital_of))) == 9
    assert not {"cycle_id", "patient_id"} & set(figures.columns)


@pytest.mark.usefixtures("local_mode", "own_results")  # own_results: the hospital views stored, as after an import
@pytest.mark.parametrize("lang", ["nl", "en"])
def test_every_page_works_in_own_hospital_mode_and_the_team_page_names_the_population(own_mode, monkeypatch, lang):
    """The own hospital alone in its registry: no page breaks for want of peers, and the overview and the team
    page compare with the external figures (not with the hospital itself), the population named."""
    from streamlit.testing.v1 import AppTest

    from tests.test_app import PAGES
    from vbhc.settings import PROJECT_ROOT

    monkeypatch.setenv("VBHC_DATABASE_URL", str(own_mode["own"].url))
    get_engine.cache_clear()
    at = AppTest.from_file(str(PROJECT_ROOT / "streamlit_app.py"), default_timeout=180)
    at.query_params["lang"] = lang
    at.run()
    for page in PAGES:
        at.switch_page(page)
        at.run()
        assert not at.exception, (page, [e.value for e in at.exception])
        if page in ("views/condition_team.py", "views/overview.py"):  # judged among the external figures
            shown = " ".join(str(e.value) for e in [*at.caption, *at.markdown, *at.info]).replace("\\", "")
            assert SOURCE in shown, shown[:2000]
    get_engine.cache_clear()


def _own_model_frames(own_mode, own_results) -> list[tuple[object, pd.DataFrame, dict]]:
    """Per published model of the demo: the model, the own hospital's cycles with its expected values, and the
    truth.json entry of the own hospital for that indicator."""
    from vbhc.demo_external import MODELS_DIR
    from vbhc.external_models import model_cycles, read_model

    truth = json.loads((own_mode["dir"] / "truth.json").read_text(encoding="utf-8"))
    entries = {
        (e["condition"], e["indicator"]): e
        for e in truth["outliers"] + truth["no_effect"]
        if e["hospital"] == own_mode["hospital"]
    }
    out = []
    for path in sorted((own_mode["dir"] / MODELS_DIR).glob("*.csv")):
        model = read_model(path)  # the reader the product uses: the demo's file passes its checks
        frame = model_cycles(model, own_results[model.condition])
        out.append((model, frame, entries[(model.condition, model.indicator)]))
    return out


def test_the_demo_publishes_an_external_case_mix_model_per_key_yes_no_indicator(own_mode, own_results):
    """One model file per key yes/no indicator of every condition, fitted on the nine other hospitals: applied
    to the own hospital's patients it gives the O/E of the planted truth (observed over the sum of the TRUE
    no-effect probabilities, truth.json), the planted outlier included, and calibration-in-the-large near 0."""
    catalog = default_catalog()
    fitted = _own_model_frames(own_mode, own_results)
    assert {m.condition for m, _, _ in fitted} == set(catalog.conditions)  # at least one per condition
    viewer = local_viewer("test")
    for model, frame, entry in fitted:
        # `vbhc demo --mode own` stored it, so the team page shows it at first start
        stored = external_models.stored_models(own_mode["own"], viewer, model.condition)
        assert stored[model.indicator].model.sha256 == model.sha256 and stored[model.indicator].version == 1
        ind = catalog.condition(model.condition).indicator(model.indicator)
        assert ind.key and ind.kind in BINARY_KINDS and model.source == SOURCE and model.link == "logit"
        assert frame["y"].sum() == entry["observed"] and len(frame) == entry["n"]  # truth counts = the data
        assert frame["expected"].notna().mean() > 0.8  # the own patients are scored, not left out
    # pooled over the indicators (a single small indicator is too noisy): expected per scored cycle
    scored = [(f[f["expected"].notna()], e) for _, f, e in fitted]
    model_e = sum(f["expected"].sum() * e["n"] / len(f) for f, e in scored)  # scaled to every cycle
    true_e = sum(e["expected"] for _, e in scored)
    assert abs(model_e / true_e - 1) < 0.15, (model_e, true_e)
    # the planted outlier of the own hospital (odds ratio 2): its O/E against the external model is the truth's;
    # a model fitted on the own patients would give exactly 1
    outlier = [(f, e) for m, f, e in fitted if e.get("effect_type") == "odds_ratio" and e["effect"] > 1]
    assert outlier, "the demo plants an outlier on a key yes/no indicator of the own hospital"
    for f, e in outlier:
        s = f[f["expected"].notna()]
        got, want = s["y"].sum() / s["expected"].sum(), e["observed"] / e["expected"]
        assert got > 1.3 and abs(got - want) < 0.25 * want, (got, want)
    # calibration-in-the-large on the own patients without a planted effect, all indicators together (the
    # intercept with the model's linear predictor as offset; statsmodels): near 0, within two standard errors
    import statsmodels.api as sm

    plain = [(m, f) for m, f, e in fitted if e.get("effect_type") is None]
    lp = np.concatenate([m.linear_predictor(f).to_numpy(float) for m, f in plain])
    y = np.concatenate([f["y"].to_numpy(float) for _, f in plain])
    ok = np.isfinite(lp)
    fit = sm.GLM(y[ok], np.ones((ok.sum(), 1)), family=sm.families.Binomial(), offset=lp[ok]).fit()
    assert abs(fit.params[0]) < 2 * fit.bse[0], (fit.params, fit.bse)
