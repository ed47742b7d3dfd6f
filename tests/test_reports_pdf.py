"""The PDF meeting report: read back with pypdf (titles, indicator values, page numbers and count), the
small-number rule, and one page rendered to PNG with pdftoppm for a reviewer (tests/artifacts/)."""

from __future__ import annotations

import datetime as dt
import io
import shutil
import subprocess
from pathlib import Path

import pytest
from pypdf import PdfReader

from tests.registry_files import write_small_registry
from vbhc.i18n import fmt_int, format_value
from vbhc.ingest import import_files
from vbhc.registry import import_batches
from vbhc.reports import build_pdf, compute_results
from vbhc.reports.core import unit_names_for

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
UNIT = "H01"


@pytest.fixture(scope="module")
def report(demo_registry):
    engine, _ = demo_registry
    result = compute_results(["colorectal_cancer"], "2021-2025", "hospital", engine=engine)[0]
    batches = import_batches(engine)
    content = build_pdf(result, UNIT, lang="en", batches=batches, unit_names=unit_names_for([result], "en", engine))
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "report_colorectal_cancer_H01.pdf").write_bytes(content)
    reader = PdfReader(io.BytesIO(content))
    return result, batches, content, reader, [page.extract_text() for page in reader.pages]


def _flat(text: str) -> str:
    return " ".join(text.split())


def test_title_page(report):
    _, batches, _, _, pages = report
    first = _flat(pages[0])
    assert "Outcome meeting report" in first
    assert "Colorectal cancer" in first
    assert "Universitair Medisch Centrum Veenmeer" in first and "2021-2025" in first  # the unit by its name
    assert UNIT not in first
    assert "fewer than 10 care cycles" in first  # the rules applied
    # ... the ones that concern a PDF: no sentence about spreadsheet formulas, on the cover nor in the methods
    assert not any("spreadsheet" in _flat(page) for page in pages)
    for sha in batches["sha256"]:
        assert sha[:24] in first.replace(" ", "")


def test_key_indicator_table_shows_the_indicator_values(report):
    result, _, _, _, pages = report
    text = _flat(pages[1])
    assert "Key indicators" in text
    mine = result.table[(result.table["unit"] == UNIT) & result.table["key"].astype(bool)]
    assert len(mine) >= 3
    for row in mine.itertuples():
        assert row.label_en.split(" (")[0][:20] in text
        assert format_value(row.adjusted_value, row.kind, "en") in text
        assert format_value(row.target, row.kind, "en") in text
        assert fmt_int(row.n, "en") in text


def test_funnel_and_trend_pages_and_page_count(report):
    result, _, _, reader, pages = report
    keyed = result.table[(result.table["unit"] == UNIT) & result.table["key"].astype(bool)]
    n_key = len(keyed)
    # title, key indicators, one page per key indicator (funnel + trend), PROM + cost, methods
    assert 2 + n_key + 1 <= len(pages) <= 2 + n_key + 2
    for i, row in enumerate(keyed.itertuples(), start=2):
        assert "funnel plot and trend" in _flat(pages[i])
        assert row.label_en.split(" (")[0][:20] in _flat(pages[i])
        images = list(reader.pages[i].images)
        assert len(images) == 2, f"page {i + 1}: funnel and trend expected"
    rest = _flat(" ".join(pages[2 + n_key :]))
    assert "PROM summary" in rest and "Cost summary" in rest and "Methods notes" in rest
    for number, text in enumerate(pages, start=1):
        assert f"Page {number} of {len(pages)}" in _flat(text)


def test_own_unit_below_the_threshold_is_withheld(report):
    result, _, _, _, _ = report
    n_own = int(result.table.loc[(result.table["unit"] == UNIT) & (result.table["kind"] == "volume"), "n"].iloc[0])
    content = build_pdf(result, UNIT, lang="en", suppress_below=n_own + 1)
    text = _flat(" ".join(p.extract_text() for p in PdfReader(io.BytesIO(content)).pages))
    assert "withheld" in text
    assert f"fewer than {n_own + 1:,} care cycles" in text
    mine = result.table[(result.table["unit"] == UNIT) & result.table["key"].astype(bool)]
    assert fmt_int(mine["n"].iloc[0], "en") not in text.split("Key indicators")[1].split("Benchmark:")[0]


def test_page_renders_to_png_for_review(report):
    _, _, content, _, _ = report
    if shutil.which("pdftoppm") is None:
        pytest.skip("pdftoppm (poppler-utils) is not installed and scripts/test could not install it (needs root)")
    ARTIFACTS.mkdir(exist_ok=True)
    pdf = ARTIFACTS / "report_colorectal_cancer_H01.pdf"
    pdf.write_bytes(content)
    for page in (1, 3):
        prefix = ARTIFACTS / f"report_page_{page}"
        subprocess.run(
            ["pdftoppm", "-png", "-r", "80", "-f", str(page), "-l", str(page), "-singlefile", str(pdf), str(prefix)],
            check=True,
            timeout=60,
        )
        png = prefix.with_suffix(".png")
        data = png.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
        assert abs(width - 661) <= 2 and abs(height - 935) <= 2  # A4 at 80 dpi
        assert len(data) > 20_000  # not a blank page: text, or the funnel plot and the trend chart


@pytest.fixture(scope="module")
def small_result(tmp_path_factory):
    from vbhc.store import get_engine, upgrade_schema

    folder = tmp_path_factory.mktemp("small_pdf")
    engine = get_engine(f"sqlite:///{folder / 'small.db'}")
    upgrade_schema(engine)
    import_files(write_small_registry(folder / "files"), engine, imported_by="test")
    yield compute_results(["hip_osteoarthritis"], None, "hospital", engine=engine)[0]
    engine.dispose()


def test_dutch_report_of_a_registry_below_the_threshold(small_result):
    content = build_pdf(small_result, None, lang="nl", own_hospital="H02")
    pages = [_flat(p.extract_text()) for p in PdfReader(io.BytesIO(content)).pages]
    assert "Rapport uitkomstenoverleg" in pages[0] and "Heupartrose" in pages[0] and "H02" in pages[0]
    text = " ".join(pages)
    assert "afgeschermd" in text and "minder dan 10 zorgtrajecten" in text
    assert f"Pagina 1 van {len(pages)}" in pages[0]


def test_unknown_unit_is_refused(small_result):
    with pytest.raises(KeyError, match="unit 'H99' not found"):
        build_pdf(small_result, "H99", lang="en")


def test_small_quarters_are_left_out_of_the_trend(report):
    result, _, _, _, _ = report
    key = result.table[(result.table["unit"] == UNIT) & result.table["key"].astype(bool)]
    per_quarter = int(key["n"].min()) // 20  # five years of quarters
    threshold = per_quarter + 5  # above a typical quarter of H01, far below its total
    content = build_pdf(result, UNIT, lang="en", suppress_below=threshold)
    text = _flat(" ".join(p.extract_text() for p in PdfReader(io.BytesIO(content)).pages))
    assert f"Quarters with fewer than {threshold} care cycles, and further quarters withheld" in text
    assert "withheld" not in text.split("Key indicators")[1].split("Benchmark:")[0]  # H01 itself is shown


def test_a_chart_without_transparency_is_kept_as_rgb_with_the_same_pixels():
    """The stored charts are RGB PNGs (a third of the bytes, embedded faster): the same pixels as vl-convert drew;
    a PNG with transparent pixels is kept as it is."""
    from PIL import Image

    from vbhc.reports.pdf import _opaque

    def png(image: Image.Image) -> bytes:
        out = io.BytesIO()
        image.save(out, format="PNG")
        return out.getvalue()

    drawn = Image.new("RGBA", (40, 20), (255, 255, 255, 255))
    drawn.paste((0, 114, 178, 255), (5, 5, 25, 15))
    kept = Image.open(io.BytesIO(_opaque(png(drawn))))
    assert kept.mode == "RGB" and kept.tobytes() == drawn.convert("RGB").tobytes()
    drawn.putpixel((0, 0), (0, 0, 0, 0))
    assert _opaque(png(drawn)) == png(drawn)


def test_a_kept_chart_is_drawn_once_and_the_report_stays_the_same(small_result, sqlite_engine, tmp_path, monkeypatch):
    """build_pdf with a chart store (vbhc.results.ResultStore.chart): the first report draws and keeps each chart,
    the second draws none, and both say what a report drawn without the store says."""
    from vbhc.reports import pdf as pdf_module
    from vbhc.results import ChartKey, ResultStore

    drawn = []
    real = pdf_module.render_chart

    def counted(chart, *args, **kwargs):
        drawn.append(1)
        return real(chart, *args, **kwargs)

    monkeypatch.setattr(pdf_module, "render_chart", counted)
    store = ResultStore(sqlite_engine, root=tmp_path / "store")
    version = store.version()

    def charts(digest, render):
        return store.chart(ChartKey(digest), version, render)

    def pages(content: bytes) -> tuple[list[str], list[bytes]]:
        reader = PdfReader(io.BytesIO(content))
        images = [image.image.tobytes() for page in reader.pages for image in page.images]
        return [page.extract_text() for page in reader.pages], images

    when = dt.datetime(2026, 1, 5, 9, 30)
    options = {"lang": "nl", "own_hospital": "H02", "suppress_below": 0, "generated_at": when}
    fresh = pages(build_pdf(small_result, None, **options))
    n = len(drawn)
    assert n >= 2 and len(fresh[1]) == n
    first = pages(build_pdf(small_result, None, charts=charts, **options))
    kept = sorted(p.name for p in (store.folder / version).glob("chart-*"))
    assert 1 <= len(kept) == len(drawn) - n <= n  # drawn and kept (two charts alike are drawn once)
    second = pages(build_pdf(small_result, None, charts=charts, **options))
    assert len(drawn) == n + len(kept)  # every chart read back
    assert first == fresh and second == fresh


def test_a_dutch_report_reads_dutch_throughout(small_demo_registry):
    """The Dutch report names the case-mix variables, the imported tables and the dates as a Dutch reader reads
    them: its methods page listed `age, sex, asa, charlson, bmi, stage`, its cover the tables as `care_cycles`, and
    the creation and import times and the period's dates as 2026-01-05."""
    import re

    from vbhc.catalog import default_catalog
    from vbhc.i18n import catalog, fmt_date

    engine, _ = small_demo_registry
    result = compute_results(["colorectal_cancer"], "2024", "hospital", engine=engine)[0]
    batches = import_batches(engine)
    when = dt.datetime(2026, 1, 5, 9, 30)
    content = build_pdf(result, UNIT, lang="nl", batches=batches, generated_at=when)
    text = _flat(" ".join(page.extract_text() for page in PdfReader(io.BytesIO(content)).pages))
    condition = default_catalog().condition("colorectal_cancer")
    for name in batches["file_name"]:  # a file's name is data (care_cycles.csv), shown as imported
        text = text.replace(name, "")
    words = set(re.findall(r"[\w-]+", text))
    assert not {v.name for v in condition.casemix} & words, "case-mix variables by their ids"
    assert ", ".join(v.label("nl") for v in condition.casemix) in text
    assert not set(batches["table_name"]) & words, "imported tables by their ids"
    assert catalog("nl")["import_table.care_cycles"] in text
    assert not re.search(r"\d{4}-\d{2}-\d{2}", text), re.search(r".{40}\d{4}-\d{2}-\d{2}.{20}", text)
    assert fmt_date(when, "nl") in text and fmt_date(dt.date(2024, 12, 31), "nl") in text


def test_a_table_breaks_between_words_never_inside_one():
    """The report broke the header "Benchmark" into "Benchmar / k" (key indicators, PROM summary) and the import
    table "Patient-experience (PREM) answers" into "Patient-experienc / e" (title page): a column narrower than
    its longest word. Each column now gets at least its longest word where the others can spare the room."""
    from vbhc.reports.pdf import _Report

    pdf = _Report("en")
    pdf.add_page()
    headers = ["Indicator", "n", "Crude", "Adjusted", "95% CI", "Benchmark", "Assessment"]
    rows = [["Universitair Medisch Centrum Veenmeer", "1,097", "2.5%", "3.0%", "2.1-4.2%", "2.8%", "As expected"]]
    pdf.grid(headers, rows, (44, 17, 17, 17, 36, 19, 30), size=8)
    batches = [["prem_responses.csv", "Patient-experience (PREM) answers", "21aea0c1" * 8, "5 Dec 2026, 07:59"]]
    pdf.grid(["File", "Table", "SHA-256", "Imported at"], batches, (22, 16, 70, 18), size=6.5)
    text = PdfReader(io.BytesIO(bytes(pdf.output()))).pages[0].extract_text()
    words = {w for line in text.splitlines() for w in line.split()}
    for word in ("Benchmark", "Assessment", "Patient-experience", "Universitair", "Veenmeer", "21aea0c1" * 8):
        assert word in words, (word, text)
    widths = pdf.whole_words(headers, rows, (44, 17, 17, 17, 36, 19, 30), 8)
    assert abs(sum(widths) - pdf.epw) < 1e-6 and widths[0] > widths[1]  # the full width, in its proportions
