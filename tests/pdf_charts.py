"""A PDF report's charts drawn as a blank picture, for the tests that read a PDF's text and tables, not its pictures."""

from __future__ import annotations

import io

import pytest


def blank_pdf_charts(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Every chart of a PDF report made in this test is a blank picture; returns the list of the charts placed.

    Why: drawing a report's charts with vl-convert was a sixth of the time of a test that reads only the PDF's
    tables or text. A chart's box on the page has a fixed height whatever the picture (vbhc.reports.pdf
    image_box), so the pages, their text and tables are those of the real charts. The section's `draw` is
    replaced (not render_chart), so no blank picture is kept in the results store under a real chart's digest for
    a later test to read. The pictures themselves are tested in tests/test_reports_pdf.py, test_kept_charts.py
    and test_reports_cli.py."""
    from PIL import Image

    from vbhc.reports import pdf

    out = io.BytesIO()
    Image.new("RGB", (8, 6), "white").save(out, format="PNG")
    blank, drawn = out.getvalue(), []

    def draw(section: object, chart: object) -> bytes:
        drawn.append(chart)
        return blank

    # the class that defines draw (a test may have put a subclass of it in pdf._Section)
    owner = next(cls for cls in pdf._Section.__mro__ if "draw" in vars(cls))
    monkeypatch.setattr(owner, "draw", draw)
    return drawn
