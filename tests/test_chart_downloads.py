"""Per-chart downloads (PNG and data as CSV) are offered only to roles that may export, through the audited
export (ui/render.py chart_downloads -> vbhc.access.export_file / export_table)."""

from __future__ import annotations

import inspect

from tests.test_app_roles import _app
from vbhc.i18n import t


def _chart_buttons(at) -> list[str]:
    labels = {t("download.chart_png", "en"), t("download.chart_csv", "en")}
    return [b.proto.label for b in at.get("download_button") if b.proto.label in labels]


def test_chart_downloads_follow_the_role(signed_in_db):
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


def test_a_chart_file_leaves_out_small_cells_for_every_role():
    """The chart's CSV and PNG are files: the file rule applies (README: small numbers "withheld in every file"),
    not the page's. A funnel's data held a unit with 1 care cycle, exact, in the CSV a quality or care team
    viewer downloaded; the unit's label point (its precision and value, no count) is left out with it."""
    from vbhc.reports.privacy import SuppressionRule, chart_file_datasets

    units = [("A", 1, 0), ("B", 40, 4), ("C", 55, 6), ("D", 60, 3), ("E", 80, 9)]
    spec = {
        "datasets": {
            "main": [{"unit": u, "n": n, "observed": o, "value": o / n, "target": 0.1} for u, n, o in units],
            "labels": [{"unit": u, "x": n**0.5, "y": o / n} for u, n, o in units],
            "benchmark": [{"target": 0.1, "name": "registry"}],
        }
    }
    out = chart_file_datasets(spec, SuppressionRule(10))
    kept = {row["unit"] for row in out["main"]}
    assert "A" not in kept and len(kept) <= 3  # the small unit and a secondary one: not worked out of the benchmark
    assert {row["unit"] for row in out["labels"]} == kept
    assert out["benchmark"] == spec["datasets"]["benchmark"]
    assert len(spec["datasets"]["main"]) == 5  # the page's own spec is untouched
    assert chart_file_datasets(spec, SuppressionRule(0))["main"] == spec["datasets"]["main"]
    # a chart whose every counted row is withheld gives no file (it would show nothing of the chart)
    quarters = {"datasets": {"trend": [{"period": f"2024-Q{q}", "n": 4, "value": 0.2} for q in (1, 2, 3, 4)]}}
    assert chart_file_datasets(quarters, SuppressionRule(10)) is None
    assert chart_file_datasets(quarters, SuppressionRule(4))["trend"] == quarters["datasets"]["trend"]


def test_a_chart_of_single_care_cycles_is_a_patient_level_download(signed_in_db):
    """VLAD and CUSUM draw one point per care cycle (its date and outcome): their CSV was offered to a care team,
    whose exports are aggregated only, and recorded as not patient-level. Now only a viewer who may export patient
    rows gets them, recorded as patient-level."""
    from vbhc.reports.privacy import chart_is_patient_level

    assert chart_is_patient_level({"datasets": {"d": [{"unit": "H01", "cycle_number": 1, "vlad": 0.1}]}})
    assert not chart_is_patient_level({"datasets": {"d": [{"unit": "H01", "n": 30}]}})
    depth = t("pages.tab_depth", "en")
    care = _app("care", "views/condition_team.py", condition="colorectal_cancer", team_tab=depth)
    shown = len(care.get("vega_lite_chart"))
    assert shown and 0 < len(_chart_buttons(care)) < 2 * shown  # not under the VLAD and CUSUM charts


def test_a_chart_whose_every_figure_is_withheld_offers_no_file_and_says_why(signed_in_db, monkeypatch):
    """A chart whose every point counts fewer care cycles than the threshold (a small unit's trend by quarter) gave
    a 'data' CSV of its period axis alone and an empty PNG: now no download is offered under it, and a line says
    why, in the reader's language."""
    monkeypatch.setenv("VBHC_SUPPRESS_BELOW", "100000")  # every figure of every chart below the threshold
    depth = t("pages.tab_depth", "nl")
    quality = _app(
        "quality", "views/condition_team.py", condition="colorectal_cancer", team_tab=depth, _chosen_lang="nl"
    )
    labels = {t("download.chart_png", "nl"), t("download.chart_csv", "nl")}
    offered = [b for b in quality.get("download_button") if b.proto.label in labels]
    withheld = t("download.chart_withheld", "nl", count=100_000)
    said = [c.value for c in quality.caption].count(withheld)
    # the funnel, the units' intervals and the trend say why; VLAD and CUSUM (one point per care cycle, no count)
    # are patient-level files, which the quality directorate may take whole
    assert withheld.startswith("Geen download") and said == 3
    assert len(offered) == 2 * (len(quality.get("vega_lite_chart")) - said) == 4


def test_the_outcome_against_cost_chart_carries_its_counts_so_a_file_withholds_a_small_unit():
    """The value chart's data had no count: a unit with 3 care cycles kept its exact cost and outcome in the chart's
    CSV and PNG. Its points now carry the fewest care cycles behind them, and the file rule leaves the unit out (of
    the points and of the placed names)."""
    import pandas as pd

    from vbhc import charts
    from vbhc.costs import value_view
    from vbhc.reports.privacy import SuppressionRule, chart_file_datasets

    def rows(values, n):
        return pd.DataFrame(
            {
                "unit": [f"H{i:02d}" for i in range(1, 7)],
                "adjusted_value": values,
                "adjusted_lower": [v * 0.9 for v in values],
                "adjusted_upper": [v * 1.1 for v in values],
                "n": n,
            }
        )

    outcome = rows([0.10, 0.12, 0.08, 0.11, 0.09, 0.13], [3, 40, 55, 60, 80, 45])
    cost = rows([9000, 9500, 8800, 10100, 9900, 9300], [3, 40, 55, 60, 80, 45])
    view = value_view(outcome, cost, outcome_higher_is_better=False, outcome_target=0.1, cost_target=9500)
    spec = charts.value_chart(view, outcome_label="Complications", outcome_kind="proportion")
    file = chart_file_datasets(spec, SuppressionRule(10))
    drawn = {str(r.get("unit")) for rows in spec["datasets"].values() for r in rows if isinstance(r, dict)}
    kept = {str(r.get("unit")) for rows in file.values() for r in rows if isinstance(r, dict)}
    assert "H01" in drawn and "H01" not in kept and len(kept - {"None"}) >= 4


def test_a_trend_file_gives_no_left_out_quarter_back_from_its_year():
    """A unit's trend by quarter (the team page's SPC chart): a year's cell is in the file of that year, so leaving
    out only the small quarter gave it back (41 - 12 - 11 - 13 = 5 care cycles); per year at least two quarters are
    left out (vbhc.reports.privacy.trend_mask), and the left-out quarters' drawn rate and limits with them (the
    PNG drew a small quarter's rate, and a p chart's limits follow from its n)."""
    import pandas as pd

    from vbhc import charts
    from vbhc.reports.privacy import SuppressionRule, chart_file_datasets

    spc = pd.DataFrame(
        {
            "period": pd.date_range("2023-01-01", periods=8, freq="QS"),
            "n": [12.0, 11, 5, 13, 14, 15, 16, 17],
            "p": [0.1, 0.1, 0.4, 0.1, 0.1, 0.1, 0.1, 0.1],
            "centre": 0.1,
            "lower": [0.0] * 8,
            "upper": [0.3, 0.31, 0.5, 0.29, 0.28, 0.27, 0.26, 0.25],
        }
    )
    spec = charts.trend_chart(spc, kind="proportion", lang="en").to_dict()
    out = chart_file_datasets(spec, SuppressionRule(10))
    shown = {name: {row["period"][:7] for row in rows} for name, rows in out.items()}
    for name, periods in shown.items():
        assert "2023-07" not in periods, name  # the small quarter, in every dataset (its rate and limits too)
        assert len({p for p in periods if p.startswith("2023")}) <= 2, name  # and a second one of its year
        assert {"2024-01", "2024-04", "2024-07", "2024-10"} <= periods, name  # a year without a small quarter
    assert charts.chart_table({**spec, "datasets": out})["Period"].str[:4].value_counts()["2023"] == 2
