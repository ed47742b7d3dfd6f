"""The dashboard's drawn charts are kept by digest per dataset version (ui.data.kept_chart): a page's PDF report and a
chart's PNG download are drawn once, not on every click; the kept file equals a fresh drawing, an import draws
them again, and a chart of other figures (another viewer's, another language's) is drawn for itself."""

from __future__ import annotations

import io

import pytest

from tests.registry_copy import copy_registry
from vbhc import audit
from vbhc.access import Role, Scope, Viewer
from vbhc.store import get_engine

CONDITION = "colorectal_cancer"


@pytest.fixture
def own_copy(small_demo_registry, tmp_path, monkeypatch):
    """A copy of the small registry (with its results store, without any chart kept) that the pages read: this
    test's kept charts and imports touch no other test's store."""
    from vbhc.results import ResultStore

    engine, _ = small_demo_registry
    copy = copy_registry(engine, tmp_path / "kept.db")
    store = ResultStore(copy)
    for kept in (store.folder / store.version()).glob("chart-*"):  # drawn by an earlier test of the worker's registry
        kept.unlink()
    monkeypatch.setenv("VBHC_DATABASE_URL", copy.url.render_as_string(hide_password=False))
    get_engine.cache_clear()
    yield copy
    copy.dispose()
    get_engine.cache_clear()


def _quality() -> Viewer:
    return Viewer("quality@example.org", "", (Scope(Role.QUALITY),))


def _pdf_images(content: bytes) -> list[bytes]:
    from pypdf import PdfReader

    return [image.image.tobytes() for page in PdfReader(io.BytesIO(content)).pages for image in page.images]


def _counted(monkeypatch, module, name: str) -> list[bytes]:
    """Every drawing made through module.name, recorded (its picture)."""
    drawn: list[bytes] = []
    real = getattr(module, name)

    def counted(*args, **kwargs):
        picture = real(*args, **kwargs)
        drawn.append(picture)
        return picture

    monkeypatch.setattr(module, name, counted)
    return drawn


def test_the_pages_pdf_draws_its_charts_once_and_a_kept_one_is_the_fresh_drawing(own_copy, monkeypatch):
    """Two clicks on a page's PDF report (the team page's and the overview's, or two readers'): the second drew
    every chart again (~0.3-0.6 s each). Now it reads the first's, and its pictures are those drawn fresh."""
    from ui import data, render
    from vbhc.reports import pdf as pdf_module

    result = data.result(CONDITION, "hospital", "")
    own = data.own_hospital()
    drawn = _counted(monkeypatch, pdf_module, "render_chart")
    first = render.report_pdf(_quality(), result, own, "en")
    n = len(drawn)
    assert n >= 2  # a report without charts could not tell
    second = render.report_pdf(_quality(), result, own, "en")
    assert len(drawn) == n  # every chart read back
    assert _pdf_images(second) == _pdf_images(first)
    with monkeypatch.context() as off:  # the same report with nothing kept: every chart drawn here
        off.setattr(data, "kept_chart", lambda digest, draw: draw())
        fresh = render.report_pdf(_quality(), result, own, "en")
    assert len(drawn) == 2 * n
    assert _pdf_images(fresh) == _pdf_images(first)


def test_the_pages_dutch_pdf_reads_the_charts_an_import_prepared(own_copy, monkeypatch):
    """`vbhc import` and a server's warm-up draw the charts of `vbhc report --all --format pdf` (Dutch, hospital level,
    the own hospital's teams) ahead of the first report (vbhc.reports.run.prepare_report_charts). The page's PDF of
    the own hospital's team drew them all again; now it finds each under the same digest and draws none."""
    from ui import data, render
    from vbhc.reports import pdf as pdf_module
    from vbhc.reports.run import prepare_report_charts

    assert prepare_report_charts(own_copy, lang="nl") > 0
    drawn = _counted(monkeypatch, pdf_module, "render_chart")
    content = render.report_pdf(_quality(), data.result(CONDITION, "hospital", ""), data.own_hospital(), "nl")
    assert _pdf_images(content) and not drawn


def _spec(value: float, lang: str = "en") -> dict:
    return {
        "$schema": "https://vega.github.io/schema/vega-lite/v6.json",
        "data": {"values": [{"unit": "A", "value": 0.2}, {"unit": "B", "value": value}]},
        "mark": "bar",
        "encoding": {
            "x": {"field": "unit", "type": "nominal", "title": "Unit" if lang == "en" else "Eenheid"},
            "y": {"field": "value", "type": "quantitative"},
        },
    }


def test_a_kept_png_is_drawn_again_after_an_import_and_other_figures_get_their_own(own_copy, tmp_path, monkeypatch):
    """A chart's PNG is kept by the digest of its spec (its data inline) in the dataset version's folder: read back
    while the data stay, drawn again after an import, and a chart with any other figure or text (what another
    viewer or language sees) is another digest, drawn for itself, never the kept picture of another."""
    from ui import data
    from vbhc import charts
    from vbhc.ingest import import_files
    from vbhc.registry import units
    from vbhc.results import ResultStore

    drawn = _counted(monkeypatch, charts, "chart_png")

    def png(spec: dict) -> bytes:
        return data.kept_chart(charts.chart_png_digest(spec), lambda: charts.chart_png(spec))

    spec = _spec(0.4)
    first = png(spec)
    assert first.startswith(b"\x89PNG") and len(drawn) == 1
    assert png(_spec(0.4)) == first and len(drawn) == 1  # the same chart: read back
    assert first == charts.chart_png(spec)  # as drawn fresh
    drawn.clear()
    for other in (_spec(0.41), _spec(0.4, "nl")):  # another figure, another language: drawn, not the kept one
        assert charts.chart_png_digest(other) != charts.chart_png_digest(spec)
        assert png(other) == drawn[-1] != first
    assert len(drawn) == 2
    # an import makes a new dataset version (a hospital renamed): nothing kept of the previous one is read
    columns = ["hospital", "department", "hospital_name", "department_name", "division", "own_hospital"]
    table = units(own_copy)[columns].copy()
    table.loc[table["hospital"] == table["hospital"].iloc[0], "hospital_name"] = "Renamed hospital"
    table["own_hospital"] = table["own_hospital"].map(lambda own: "true" if own else "false")
    table.to_csv(tmp_path / "units.csv", index=False)
    before = ResultStore(own_copy).version()
    import_files([tmp_path / "units.csv"], own_copy, imported_by="test")
    assert ResultStore(own_copy).version() != before
    drawn.clear()
    assert png(spec) == first and len(drawn) == 1


def test_each_click_on_a_chart_png_is_audited_and_the_chart_drawn_once(own_copy, tmp_path, monkeypatch):
    """The team page's chart PNG downloads (ui.render.chart_downloads), clicked twice each: each click is recorded
    in the audit log with the file's SHA-256, the second click's file is the first's and is not drawn again."""
    import streamlit

    from tests.roles import sign_in_with_roles
    from tests.test_app_roles import _app
    from vbhc import charts
    from vbhc.i18n import t

    sign_in_with_roles(monkeypatch, tmp_path, own_copy)
    get_engine.cache_clear()
    offered: list = []
    real = streamlit.download_button

    def download_button(label, *args, **kwargs):
        if label == t("download.chart_png", "en"):
            offered.append(kwargs["data"])
        return real(label, *args, **kwargs)

    monkeypatch.setattr(streamlit, "download_button", download_button)
    _app("quality", "views/condition_team.py", condition=CONDITION, team_tab=t("pages.tab_depth", "en"))
    assert len(offered) >= 2
    drawn = _counted(monkeypatch, charts, "chart_png")
    seen = audit.read(own_copy)
    last = int(seen["id"].max()) if len(seen) else 0
    files = [click() for click in offered]
    n = len(drawn)
    assert 1 <= n <= len(offered)  # charts alike are drawn once
    again = [click() for click in offered]
    assert again == files and len(drawn) == n
    events = audit.read(own_copy)
    events = events[(events["id"] > last) & (events["action"] == "export")]
    assert len(events) == 2 * len(offered)
    assert sorted(events["sha256"]) == sorted(audit.sha256_of(f) for f in files + again)
