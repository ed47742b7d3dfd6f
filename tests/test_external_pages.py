"""External benchmark figures where people read them: the charts and verdicts name the benchmark population, what
summary figures cannot carry is said in both languages, `vbhc report` names the population when it compares with
stored figures, and the team page (AppTest, small registry) offers the comparison with the population named."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import sqlite3

import numpy as np
import pandas as pd
import pytest
from openpyxl import load_workbook
from pypdf import PdfReader
from sqlalchemy import select

from tests.apptest import run_on_page
from tests.pdf_charts import blank_pdf_charts
from tests.test_dutch_walk import _report, findings
from vbhc import charts, external
from vbhc.access import Role, Scope, Viewer
from vbhc.catalog import default_catalog
from vbhc.external import combine, own_summary, write_figures
from vbhc.i18n import t
from vbhc.indicators import compute_indicators, funnel_curve, load_condition_data, restrict
from vbhc.models import AuditEvent

CONDITION = "colorectal_cancer"
QUALITY = Viewer("quality@example.org", "Quality", (Scope(Role.QUALITY),))
POPULATION = "national registry 2024, 6 hospitals"


def _subtitle(spec: dict) -> str:
    return charts.title_lines(spec["title"], "subtitle")


def _figures(indicator: str, units: dict[str, tuple[int, int]]) -> pd.DataFrame:
    """Summary figures of one yes/no indicator: unit -> (n, observed)."""
    return pd.DataFrame(
        [
            {
                "condition": CONDITION,
                "indicator": indicator,
                "definition_version": "1",
                "unit": u,
                "n": n,
                "observed": o,
            }
            for u, (n, o) in units.items()
        ]
    )


def test_funnel_and_caterpillar_name_the_benchmark_population():
    own = _figures("mortality_30d", {"H01": (140, 12)})
    others = _figures("mortality_30d", {f"X0{i}": (100 + 20 * i, 3 + i) for i in range(1, 6)})
    rows = combine(own, others, CONDITION, population=POPULATION).table
    for lang in ("en", "nl"):
        named = t("external.benchmark_named", lang, population=POPULATION)
        funnel = charts.funnel_chart(rows, funnel_curve(rows), highlight="H01", lang=lang, population=POPULATION)
        caterpillar = charts.caterpillar_chart(rows, highlight="H01", lang=lang, population=POPULATION)
        for spec in (funnel, caterpillar):
            charts.validate_spec(spec)
            assert named in _subtitle(spec), _subtitle(spec)
    plain = charts.funnel_chart(rows, funnel_curve(rows), highlight="H01")  # the registry's own units: no name
    assert "Benchmark:" not in _subtitle(plain) and POPULATION not in json.dumps(plain["title"])


def test_what_summary_figures_cannot_carry_is_said_in_both_languages():
    own = _figures("mortality_30d", {"H01": (140, 12)}).assign(expected=11.0)
    others = _figures("mortality_30d", {"X01": (100, 5), "X02": (90, 6)})  # no expected: compared on crude rates
    means = pd.DataFrame(
        [
            {"condition": CONDITION, "indicator": "length_of_stay", "definition_version": "1", "unit": u, "n": 50}
            | {"mean": m, "sd": 2.0}
            for u, m in (("H01", 6.1), ("X01", 5.4))
        ]
    )
    got = combine(pd.concat([own, means.iloc[:1]]), pd.concat([others, means.iloc[1:]]), CONDITION, population="p")
    reasons = {r for rs in got.not_carried.values() for r in rs}
    assert reasons == {external.MIXED_EXPECTED_REASON, external.CONTINUOUS_REASON, external.PATIENT_ROWS_REASON}
    reasons.add(external.EXPECTED_REASON)  # own_summary's, without the benchmark's model
    for reason in reasons:
        english, dutch = external.reason_text(reason, "en"), external.reason_text(reason, "nl")
        assert english != reason and dutch not in (english, reason), reason  # a message of its own in each language
    assert external.population_of(got.table) == "p" and external.population_of(own) is None


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    """A small generated registry (600 colorectal care cycles, ten hospitals; one condition keeps the pages fast)
    with national-registry-style feedback of the nine other hospitals stored (their own summaries, no expected
    counts: compared on crude rates)."""
    from vbhc.demo import generate_demo
    from vbhc.ingest import import_files
    from vbhc.registry import units
    from vbhc.store import get_engine

    folder = tmp_path_factory.mktemp("external_pages")
    catalog = default_catalog()
    one = dataclasses.replace(catalog, conditions={CONDITION: catalog.condition(CONDITION)})
    files = generate_demo(folder / "files", cycles=600, catalog=one).files
    engine = get_engine(f"sqlite:///{folder / 'registry.db'}")
    import_files(files, engine, imported_by="test")
    frame = units(engine)
    own = str(frame.loc[frame["own_hospital"], "hospital"].iloc[0])
    data = load_condition_data(CONDITION, engine=engine)
    others = sorted(set(frame["hospital"].astype(str)) - {own})
    summary = own_summary(compute_indicators(restrict(data, hospitals=others), "hospital"))
    feedback = write_figures(
        summary.frame, source="landelijke registratie", published=dt.date(2025, 3, 1), period="2024"
    )
    assert external.stamp(engine, CONDITION) == ""
    external.import_figures(engine, QUALITY, feedback, file_name="feedback.csv")
    yield engine, own, folder / "registry.db"
    engine.dispose()
    get_engine.cache_clear()


def test_a_report_names_the_benchmark_population_when_it_compares_with_stored_figures(registry, tmp_path, monkeypatch):
    from vbhc.reports import make_report

    engine, _, _ = registry
    assert external.stamp(engine, CONDITION) and external.stamp(engine, "breast_cancer") == ""
    population = external.benchmark_population("landelijke registratie 2024", 10, "nl")
    named = make_report(tmp_path / "r.xlsx", fmt="xlsx", conditions=[CONDITION], engine=engine, actor="tester")
    book = load_workbook(named, read_only=True)  # read once, values only (it was read whole three times)
    cover = [[c for c in row if c] for row in book.worksheets[0].iter_rows(values_only=True)]
    assert [t("column.benchmark", "nl") + ": " + default_catalog().condition(CONDITION).label("nl"), population] in [
        r[:2] for r in cover
    ]
    sheet_texts = {str(c) for ws in book.worksheets for row in ws.iter_rows(values_only=True) for c in row}
    assert t("external.benchmark_named", "nl", population=population) in " ".join(sheet_texts)
    # the summary sheet of key indicators names it too (the O/E chart's title: tests/test_reports_excel.py)
    summary = book[t("report.sheet_summary", "nl")]
    assert any(population in str(c) for row in summary.iter_rows(max_row=3, values_only=True) for c in row if c)
    book.close()
    from vbhc.cli import main
    from vbhc.store import get_engine

    monkeypatch.setenv("VBHC_DATABASE_URL", engine.url.render_as_string(hide_password=False))
    get_engine.cache_clear()
    try:  # vbhc report --no-external: the registry's units, as external=False
        assert main(["report", "--condition", CONDITION, "--out", str(tmp_path / "p.xlsx"), "--no-external"]) == 0
    finally:
        get_engine.cache_clear()
    plain = tmp_path / "p.xlsx"
    plain_book = load_workbook(plain, read_only=True)
    texts = " ".join(str(c) for ws in plain_book.worksheets for row in ws.iter_rows(values_only=True) for c in row)
    plain_book.close()
    assert "landelijke registratie" not in texts
    blank_pdf_charts(monkeypatch)  # the PDF's text is read here, not its pictures (tests/pdf_charts.py)
    pdf = make_report(tmp_path / "r.pdf", fmt="pdf", conditions=[CONDITION], engine=engine, actor="tester")
    pages = [" ".join(p.extract_text().split()) for p in PdfReader(pdf).pages]
    named = t("external.benchmark_named", "nl", population=population)
    assert population in pages[0] and named in pages[1], pages[:2]  # title page and key indicators
    # the PROM and cost tables judge against the external figures too: named under each
    for heading in (t("report.proms_summary", "nl"), t("report.cost_summary", "nl")):
        page = next(p for p in pages if heading in p)
        assert named in page.split(heading, 1)[1], page
    with engine.connect() as conn:
        details = [json.loads(d) for d in conn.scalars(select(AuditEvent.detail).where(AuditEvent.action == "export"))]
    assert [d["benchmark_population"] for d in details[-3:]] == [[population], [], [population]]


@pytest.mark.usefixtures("local_mode")  # tests/conftest.py: the single-user mode, every role
def test_the_team_page_compares_the_own_hospital_with_the_external_benchmark(registry, tmp_path, monkeypatch):
    """The page offers the comparison, and the funnel, caterpillar and verdict name the benchmark population."""
    from streamlit.testing.v1 import AppTest

    from tests.test_app import DEPTH_TAB
    from vbhc.settings import PROJECT_ROOT
    from vbhc.store import get_engine

    _, _, path = registry
    copy = tmp_path / "team.db"
    with contextlib.closing(sqlite3.connect(path)) as source, contextlib.closing(sqlite3.connect(copy)) as target:
        source.backup(target)
    monkeypatch.setenv("VBHC_DATABASE_URL", f"sqlite:///{copy}")
    get_engine.cache_clear()
    try:
        at = AppTest.from_file(str(PROJECT_ROOT / "streamlit_app.py"), default_timeout=180)
        at.query_params["lang"] = "nl"
        at.session_state["condition"] = CONDITION
        at.session_state["team_tab"] = DEPTH_TAB["nl"]
        at.session_state["indicator"] = "mortality_30d"
        run_on_page(at, "views/condition_team.py")
        assert not at.exception, [e.value for e in at.exception]
    finally:
        get_engine.cache_clear()
    population = external.benchmark_population("landelijke registratie 2024", 10, "nl")
    named = t("external.benchmark_named", "nl", population=population)
    assert at.radio(key="benchmark").value == "external"
    specs = [json.loads(e.proto.spec) for e in at.get("vega_lite_chart")]
    assert len(specs) >= 2 and all(named in _subtitle(s) for s in specs[:2])  # funnel and caterpillar
    verdicts = [m.value.replace("\\", "") for m in at.markdown if t("verdict.column", "nl") in m.value]
    assert verdicts and named in verdicts[0], verdicts  # the verdict names the benchmark population
    assert named in [c.value for c in at.caption]
    assert t("external.not_carried", "nl") in [e.label for e in at.expander]
    found = findings(at, "team")
    assert not found, _report(found)  # the comparison's texts are Dutch throughout


def test_a_published_model_scores_the_own_patients_and_feeds_the_own_summary(registry):
    """O/E against the national model: the model's expected values are what the own summary exports and what
    the combined table compares with."""
    from tests.test_external_models import MODEL, _csv
    from vbhc.external_models import calibration, coverage, model_cycles, observed_expected, read_model

    engine, own, _ = registry
    model = read_model(_csv(*MODEL), file_name="model.csv")
    result = compute_indicators(load_condition_data(CONDITION, engine=engine), "hospital", indicators=["mortality_30d"])
    cycles = model_cycles(model, result, units=[own])
    unscored = cycles["expected"].isna()
    # the demo's codes are the model's: only cycles with a missing value go unscored
    assert (unscored == cycles[list(model.variables)].isna().any(axis=1)).all() and unscored.mean() < 0.5
    summary = own_summary(result, models={"mortality_30d": model}, hospitals=[own]).frame.set_index("unit")
    oe = observed_expected(cycles).set_index("unit")
    assert np.isclose(summary.loc[own, "expected"], oe.loc[own, "expected"], rtol=1e-12)
    assert summary.loc[own, "observed_adjusted"] == oe.loc[own, "observed"]
    assert summary.loc[own, "n_adjusted"] == oe.loc[own, "n_scored"] == (~unscored).sum()
    covered = coverage(model, cycles).set_index("variable")
    assert covered["in_data"].all() and covered["unknown_code"].sum() == 0
    assert covered["missing"].to_dict() == cycles[list(covered.index)].isna().sum().to_dict()
    got = calibration(model, cycles)
    assert got.n == (~unscored).sum() and np.isfinite([got.in_the_large, got.slope]).all()


@pytest.mark.usefixtures("local_mode")
def test_the_team_page_applies_a_published_model_to_the_units_patients(registry, tmp_path, monkeypatch):
    """The case-mix tab takes a published model: O/E against it and its calibration on own data, or one line
    naming the row of a bad file."""
    from streamlit.testing.v1 import AppTest

    from tests.test_external_models import MODEL, _csv
    from vbhc.settings import PROJECT_ROOT
    from vbhc.store import get_engine

    _, _, path = registry
    copy = tmp_path / "model.db"
    with contextlib.closing(sqlite3.connect(path)) as source, contextlib.closing(sqlite3.connect(copy)) as target:
        source.backup(target)
    monkeypatch.setenv("VBHC_DATABASE_URL", f"sqlite:///{copy}")
    get_engine.cache_clear()
    try:
        at = AppTest.from_file(str(PROJECT_ROOT / "streamlit_app.py"), default_timeout=180)
        at.query_params["lang"] = "nl"
        at.session_state["condition"] = CONDITION
        at.session_state["team_tab"] = t("pages.tab_casemix", "nl")
        at.session_state["indicator"] = "mortality_30d"
        run_on_page(at, "views/condition_team.py")
        bad = _csv(*MODEL[:1], MODEL[1].replace("0.04", "abc"), *MODEL[2:])
        at.file_uploader(key="published_model").set_value(("landelijk.csv", bad, "text/csv"))
        at.run()
        errors = [e.value.replace("\\", "") for e in at.error]
        assert len(errors) == 1 and "landelijk.csv rij 3 kolom 'coefficient': waarde 'abc': geen getal" in errors[0], (
            errors
        )
        good = _csv(*MODEL).replace(b"national registry", b"landelijke registratie")
        at.file_uploader(key="published_model").set_value(("landelijk.csv", good, "text/csv"))
        at.run()
        assert not at.exception, [e.value for e in at.exception]
    finally:
        get_engine.cache_clear()
    shown = " ".join(m.value.replace("\\", "") for m in at.markdown)
    assert "Tegenover landelijke registratie 2024: O/E" in shown, shown
    assert any(c.value.startswith("Kalibratie van het model op eigen gegevens") for c in at.caption)
    assert t("external.coverage_outside", "nl") in at.dataframe[-1].value.columns
    found = findings(at, "team")
    assert not found, _report(found)


@pytest.mark.usefixtures("local_mode")
def test_a_stored_model_is_imported_on_the_data_page_and_used_by_the_team_page_without_upload(
    registry, tmp_path, monkeypatch
):
    """The Data page imports a published model once (a bad file: one line, nothing stored); the team page's
    case-mix tab then shows O/E against it, its calibration and coverage, naming the stored model, no upload."""
    from streamlit.testing.v1 import AppTest

    from tests.test_external_models import MODEL, _csv
    from vbhc.external_models import model_history
    from vbhc.settings import PROJECT_ROOT
    from vbhc.store import get_engine

    _, _, path = registry
    copy = tmp_path / "stored.db"
    with contextlib.closing(sqlite3.connect(path)) as source, contextlib.closing(sqlite3.connect(copy)) as target:
        source.backup(target)
    monkeypatch.setenv("VBHC_DATABASE_URL", f"sqlite:///{copy}")
    get_engine.cache_clear()
    try:
        at = AppTest.from_file(str(PROJECT_ROOT / "streamlit_app.py"), default_timeout=180)
        at.query_params["lang"] = "nl"
        at.session_state["condition"] = CONDITION
        run_on_page(at, "views/data.py")
        bad = _csv(*MODEL, MODEL[0].split(",intercept")[0] + ",stage,V,0.2,,,,")
        at.file_uploader(key="model_upload").set_value(("landelijk.csv", bad, "text/csv"))
        at.run()
        at.button(key="model_import").click()
        at.run()
        errors = [e.value.replace("\\", "") for e in at.error]
        assert len(errors) == 1 and "landelijk.csv rij 7 kolom 'code': waarde 'V': geen code van stage" in errors[0], (
            errors
        )
        assert model_history(get_engine(), QUALITY).empty  # nothing stored
        good = _csv(*MODEL).replace(b"national registry", b"landelijke registratie")
        at.file_uploader(key="model_upload").set_value(("landelijk.csv", good, "text/csv"))
        at.run()
        at.button(key="model_import").click()
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        assert any("opgeslagen als versie 1" in s.value for s in at.success), [s.value for s in at.success]
        listed = at.dataframe[-1].value  # the stored models, last on the page
        assert list(listed[t("data.models_current", "nl")]) == ["ja"]
        found = findings(at, "data")
        assert not found, _report(found)
        # the team page: the stored model, no upload
        at.session_state["team_tab"] = t("pages.tab_casemix", "nl")
        at.session_state["indicator"] = "mortality_30d"
        at.switch_page("views/condition_team.py")
        at.run()
        assert not at.exception, [e.value for e in at.exception]
    finally:
        get_engine.cache_clear()
    assert any(c.value.startswith("Opgeslagen model: landelijke registratie 2024") for c in at.caption)
    shown = " ".join(m.value.replace("\\", "") for m in at.markdown)
    assert "Tegenover landelijke registratie 2024: O/E" in shown, shown
    assert any(c.value.startswith("Kalibratie van het model op eigen gegevens") for c in at.caption)
    assert t("external.coverage_outside", "nl") in at.dataframe[-1].value.columns
    found = findings(at, "team")
    assert not found, _report(found)
