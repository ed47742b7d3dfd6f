"""A PDF report's charts drawn as a blank picture, for the tests that read a PDF's text and tables, not its pictures."""

from __future__ import annotations

import io

import pytest


def blank_pdf_charts(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """vbhc.reports.pdf.render_chart draws a blank picture for this test; returns the list of the charts asked for.

    Why: drawing a report's charts with vl-convert (~0.15 s of CPU a chart) was a sixth of the time of a test that
    reads only the PDF's tables or text. A chart's box on the page has a fixed height whatever the picture
    (vbhc.reports.pdf image_box), so the pages, their text and tables are those of the real charts. The pictures
    themselves are tested in tests/test_reports_pdf.py, test_kept_charts.py and test_reports_cli.py."""
    from PIL import Image

    from vbhc.reports import pdf

    out = io.BytesIO()
    Image.new("RGB", (8, 6), "white").save(out, format="PNG")
    blank, drawn = out.getvalue(), []

    def render(chart: object, scale: float = pdf.CHART_SCALE) -> bytes:
        drawn.append(chart)
        return blank

    monkeypatch.setattr(pdf, "render_chart", render)
    return drawn
