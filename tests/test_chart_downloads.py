"""Per-chart downloads (PNG and data as CSV) are offered only to roles that may export, through the audited
export (ui/render.py chart_downloads -> vbhc.access.export_file / export_table)."""

from __future__ import annotations

import inspect

from tests.test_app_roles import _app, signed_in_db  # noqa: F401  (the fixture)
from vbhc.i18n import t


def _chart_buttons(at) -> list[str]:
    labels = {t("download.chart_png", "en"), t("download.chart_csv", "en")}
    return [b.proto.label for b in at.get("download_button") if b.proto.label in labels]


def test_chart_downloads_follow_the_role(signed_in_db):  # noqa: F811
    depth = t("pages.tab_depth", "en")  # the team page's charts are in its "one indicator in depth" tab
    quality = _app("quality", "views/condition_team.py", condition="colorectal_cancer", team_tab=depth)
    shown = len(quality.get("vega_lite_chart"))
    buttons = _chart_buttons(quality)
    assert shown and len(buttons) == 2 * shown  # a PNG and a CSV under every chart
    manager = _app("manager", "views/condition_team.py", condition="colorectal_cancer", team_tab=depth)
    assert manager.get("vega_lite_chart") and not _chart_buttons(manager)  # may not export: not offered


def test_chart_downloads_go_through_the_audited_export():
    from ui import render

    source = inspect.getsource(render.chart_downloads)
    assert "access.may_export(" in source
    assert "access.export_file(" in source and "charts.chart_png(" in source
    assert "access.export_table(" in source and "charts.chart_table(" in source
