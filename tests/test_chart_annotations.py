"""Issue 14 on the charts: targets and norms as lines, improvement actions at their start, and the SPC chart
rebased at an action's start (before and after phases, each with its own centre line and limits).

The phases are checked against limits computed by hand; the annotation layers on tiny hand-made frames (the
layout of every chart with annotations drawn is checked in tests/test_chart_layout.py)."""

from __future__ import annotations

import datetime as dt
import json
import math
from functools import partial
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import func, select

from tests.apptest import run_on_page
from tests.registry_copy import copy_registry
from tests.registry_files import store_units
from vbhc import annotations, charts, improvement, models, spc
from vbhc.access import AccessDenied, Role, Scope, Viewer
from vbhc.improvement import TargetKind
from vbhc.store import get_engine

QUARTERS = pd.date_range("2023-01-01", periods=8, freq="QS")


# --------------------------------------------------------------------------------------------- SPC phases
def test_p_chart_rebased_at_an_action_has_before_and_after_limits_as_computed_by_hand():
    events, n = [2, 3, 1, 4, 1, 0, 1, 2], [20] * 8
    # the action started mid-quarter: the quarter it started in (from 2023-10-01) still holds care from before it
    chart = spc.p_chart(events, n, periods=QUARTERS, rebase=[dt.date(2023, 11, 15)])
    assert chart["segment"].tolist() == [0, 0, 0, 0, 1, 1, 1, 1]
    before_sigma = math.sqrt(0.125 * 0.875 / 20)  # p = 10/80
    after_sigma = math.sqrt(0.05 * 0.95 / 20)  # p = 4/80
    assert chart["centre"].tolist() == pytest.approx([0.125] * 4 + [0.05] * 4)
    assert chart["upper"].iloc[0] == pytest.approx(0.125 + 3 * before_sigma)  # 0.34685
    assert chart["upper"].iloc[-1] == pytest.approx(0.05 + 3 * after_sigma)  # 0.19620
    assert chart["lower"].tolist() == [0.0] * 8  # below zero: clipped

    summary = spc.phases(chart)
    assert summary["phase"].tolist() == [0, 1]
    assert summary["first"].tolist() == [QUARTERS[0], QUARTERS[4]]
    assert summary["last"].tolist() == [QUARTERS[3], QUARTERS[7]]
    assert summary["points"].tolist() == [4, 4]
    assert summary["events"].tolist() == [10, 4] and summary["n"].tolist() == [80, 80]
    assert summary["upper"].tolist() == pytest.approx([0.125 + 3 * before_sigma, 0.05 + 3 * after_sigma])
    assert summary["change"].iloc[1] == pytest.approx(-0.075) and np.isnan(summary["change"].iloc[0])
    assert summary["provisional"].all()  # 4 quarters each: trial limits only


def test_a_rebase_on_the_first_day_of_a_period_puts_that_period_after_it():
    chart = spc.p_chart([2, 3, 1, 4, 1, 0, 1, 2], [20] * 8, periods=QUARTERS, rebase=[QUARTERS[4]])
    assert chart["segment"].tolist() == [0, 0, 0, 0, 1, 1, 1, 1]
    later = spc.p_chart(
        [2, 3, 1, 4, 1, 0, 1, 2], [20] * 8, periods=QUARTERS, rebase=[QUARTERS[4] + pd.Timedelta(days=1)]
    )
    assert later["segment"].tolist() == [0, 0, 0, 0, 0, 1, 1, 1]


def test_xmr_phases_take_their_moving_ranges_within_the_phase():
    values = [10, 12, 11, 13, 6, 8, 7, 5]
    chart = spc.xmr_chart(values, periods=QUARTERS, rebase=[QUARTERS[4]])
    sigma = (5 / 3) / spc.D2  # moving ranges 2, 1, 2 in each phase; the jump 13 -> 6 between phases is not one
    summary = spc.phases(chart)
    assert summary["centre"].tolist() == pytest.approx([11.5, 6.5])
    assert summary["lower"].tolist() == pytest.approx([11.5 - 3 * sigma, 6.5 - 3 * sigma])
    assert summary["upper"].tolist() == pytest.approx([11.5 + 3 * sigma, 6.5 + 3 * sigma])
    assert summary["upper"].iloc[0] == pytest.approx(15.93262, abs=1e-5)
    assert np.isnan(chart["moving_range"].iloc[4])
    # without the rebase the limits come from all eight points, and the after phase looks like a signal
    whole = spc.phases(spc.xmr_chart(values, periods=QUARTERS))
    assert len(whole) == 1 and whole["centre"].iloc[0] == pytest.approx(9.0)


def test_phases_of_a_chart_with_enough_points_are_not_provisional():
    periods = pd.date_range("2020-01-01", periods=30, freq="MS")
    chart = spc.xmr_chart(np.arange(30) % 5, periods=periods, rebase=[periods[12]])
    assert spc.phases(chart)["provisional"].tolist() == [False, False]
    assert spc.phases(spc.xmr_chart(np.arange(30) % 5, periods=periods, rebase=[periods[20]]))[
        "provisional"
    ].tolist() == [False, True]


# --------------------------------------------------------------------------------------------- which items a chart gets
CONDITION, INDICATOR = "colorectal_cancer", "anastomotic_leak"
CARE = Viewer("care@example.org", "Care", (Scope(Role.CARE_TEAM, frozenset({CONDITION})),))
QUALITY = Viewer("quality@example.org", "Quality", (Scope(Role.QUALITY),))
MANAGER = Viewer("manager@example.org", "Manager", (Scope(Role.MANAGER, hospitals=frozenset({"H01"})),))
CARE_OTHER = Viewer("breast@example.org", "Breast", (Scope(Role.CARE_TEAM, frozenset({"breast_cancer"})),))
TODAY = dt.date(2025, 6, 1)


def test_chart_targets_are_the_closest_team_goal_and_norm_in_force(engine):
    store_units(engine)
    goal = partial(improvement.set_target, engine, CARE, CONDITION, INDICATOR)
    everyone = goal(0.10, valid_from=dt.date(2024, 1, 1))
    own = goal(0.07, unit="H01", valid_from=dt.date(2024, 6, 1))
    goal(0.05, unit="H01", valid_from=dt.date(2026, 1, 1))  # not in force yet
    department = goal(0.04, unit="H01/SUR", valid_from=dt.date(2024, 1, 1))
    retired = goal(0.03, unit="H02", valid_from=dt.date(2024, 1, 1))
    improvement.retire_target(engine, CARE, retired.item_id, retired.version)
    norm = improvement.set_target(
        engine,
        QUALITY,
        CONDITION,
        INDICATOR,
        0.12,
        kind=TargetKind.EXTERNAL_NORM,
        source="DICA 2024",
        valid_from=dt.date(2024, 1, 1),
    )
    improvement.set_target(engine, CARE, CONDITION, "mortality_30d", 0.01, valid_from=dt.date(2024, 1, 1))

    def shown(viewer: Viewer, unit: str) -> list[tuple[str, float]]:
        found = annotations.chart_targets(engine, viewer, CONDITION, INDICATOR, unit, on=TODAY)
        return [(t.item_id, t.value) for t in found]

    assert shown(CARE, "H01") == [(own.item_id, 0.07), (norm.item_id, 0.12)]  # team goal first
    assert shown(CARE, "H02") == [(everyone.item_id, 0.10), (norm.item_id, 0.12)]  # retired: the all-units goal
    assert shown(CARE, "H01/SUR") == [(department.item_id, 0.04), (norm.item_id, 0.12)]
    assert shown(CARE, "H01/ORT") == [(own.item_id, 0.07), (norm.item_id, 0.12)]  # the hospital's goal
    assert shown(CARE, f"{CONDITION}@H01") == [(own.item_id, 0.07), (norm.item_id, 0.12)]  # a condition team
    assert shown(MANAGER, "H01")[0] == (own.item_id, 0.07)


def test_chart_actions_are_the_units_actions_linked_to_the_indicator(sqlite_engine):
    engine = store_units(sqlite_engine)

    def action(title: str, start: dt.date, unit: str = "", indicators=(INDICATOR,)):
        return improvement.create_action(
            engine,
            CARE,
            CONDITION,
            title,
            "verpleegkundig specialist",
            start,
            start + dt.timedelta(days=90),
            unit=unit,
            indicators=indicators,
            expected_effect="fewer leaks",
        )

    later = action("Leak test in theatre", dt.date(2024, 9, 1), unit="H01")
    first = action("ERAS protocol", dt.date(2024, 3, 1))
    department = action("Stapler training", dt.date(2024, 5, 1), unit="H01/SUR")
    other = action("Other hospital", dt.date(2024, 4, 1), unit="H02")
    action("Not about leaks", dt.date(2024, 4, 1), indicators=("mortality_30d",))

    def shown(viewer: Viewer, unit: str) -> list[str]:
        return [a.item_id for a in annotations.chart_actions(engine, viewer, CONDITION, INDICATOR, unit)]

    assert shown(CARE, "H01") == [first.item_id, department.item_id, later.item_id]  # by start date
    assert shown(CARE, "H01/SUR") == [first.item_id, department.item_id, later.item_id]
    assert shown(CARE, "H01/ORT") == [first.item_id, later.item_id]
    managed = annotations.chart_actions(engine, MANAGER, CONDITION, INDICATOR, "H01")
    assert [a.item_id for a in managed] == [first.item_id, department.item_id, later.item_id]
    assert all(a.expected_effect == "" for a in managed)  # a manager reads the status only
    assert shown(QUALITY, "H02") == [first.item_id, other.item_id]
    with pytest.raises(AccessDenied):
        annotations.chart_actions(engine, CARE_OTHER, CONDITION, INDICATOR, "H01")


# --------------------------------------------------------------------------------------------- the charts
GOAL = SimpleNamespace(kind="team_goal", value=0.08, direction="at_most", source="")
NORM = SimpleNamespace(kind="external_norm", value=0.12, direction="at_most", source="DICA 2024")
ACTIONS = [
    SimpleNamespace(title="ERAS protocol", start=dt.date(2023, 11, 15), status="in_progress"),
    SimpleNamespace(title="Before the chart", start=dt.date(2021, 1, 1), status="done"),
]


def notes(spec: dict) -> list[dict]:
    """Rows of the annotation datasets (target lines, action marks)."""
    return [r for name, rows in spec["datasets"].items() if name.startswith(charts.NOTE_PREFIX) for r in rows]


def layers_with(spec: dict, mark: str, field: str) -> list[dict]:
    return [
        layer
        for layer in spec["layer"]
        if layer["mark"]["type"] == mark
        and any(isinstance(e, dict) and e.get("field") == field for e in layer["encoding"].values())
    ]


def test_target_kinds_have_their_own_palette_colours():
    assert set(charts.TARGET_STYLES) == {str(k) for k in TargetKind}
    colours = {c for c, _ in charts.TARGET_STYLES.values()}
    assert len(colours) == 2 and colours <= set(charts.CATEGORICAL)
    assert not colours & {charts.PALETTE[charts.BETTER], charts.PALETTE[charts.WORSE], charts.SIGNAL_COLOUR}


def test_trend_draws_targets_actions_and_each_phase_apart():
    frame = spc.p_chart([2, 3, 1, 4, 1, 0, 1, 2], [20] * 8, periods=QUARTERS, rebase=[dt.date(2023, 11, 15)])
    spec = charts.trend_chart(frame, kind="proportion", lang="nl", targets=[GOAL, NORM], actions=ACTIONS)
    charts.validate_spec(spec)
    lines = [r for r in notes(spec) if "norm_value" in r]
    assert [(r["norm_value"], r["norm_name"]) for r in lines] == [
        (0.08, "Teamdoel ≤ 8,0%"),
        (0.12, "Externe norm ≤ 12,0%"),
    ]
    strokes = [layer["encoding"]["stroke"] for layer in layers_with(spec, "rule", "norm_value")]
    assert strokes[0]["scale"]["range"] == [
        charts.TARGET_STYLES["team_goal"][0],
        charts.TARGET_STYLES["external_norm"][0],
    ]
    assert [r["norm_source"] for r in lines] == ["", "DICA 2024"]  # in the norm's tooltip
    marks = [r for r in notes(spec) if "action" in r]
    assert [(r["action"], r["period"], r["action_status"]) for r in marks] == [
        ("ERAS protocol", "2023-11-15T00:00:00", "Bezig")
    ]  # the action before the chart's first period is left out
    assert layers_with(spec, "rule", "period") and layers_with(spec, "text", "text")
    # the action's title is drawn over a copy of itself outlined in the background's colour: a limit or the data's
    # line that crosses the title stops short of its letters
    halo, title = layers_with(spec, "text", "text")
    assert halo["mark"]["stroke"] == halo["mark"]["color"] == charts.BACKGROUND and halo["mark"]["strokeWidth"] > 0
    assert title["mark"]["color"] == charts.ACTION_COLOUR and "stroke" not in title["mark"]
    assert {k: v for k, v in title["encoding"].items() if k != "tooltip"} == halo["encoding"]
    assert spec["layer"].index(halo) + 1 == spec["layer"].index(title)
    # the limits and centre line of each phase are lines of their own
    lines = {r["line"] for rows in spec["datasets"].values() for r in rows if "line" in r}
    assert {"upper-0", "upper-1", "centre-0", "centre-1", "value"} <= lines
    # the chart's table (CSV download) is the series, not the annotations
    assert len(charts.chart_table(spec)) == 8


def test_caterpillar_draws_a_target_on_an_oe_axis_at_the_rate_over_the_benchmark():
    rows = pd.DataFrame(
        {
            "indicator": INDICATOR,
            "label_en": "Anastomotic leak",
            "label_nl": "Naadlekkage",
            "kind": "proportion",
            "direction": "lower",
            "unit": ["H01", "H02", "H03"],
            "n": 100.0,
            "adjusted_value": [0.08, 0.10, 0.12],
            "adjusted_lower": [0.05, 0.07, 0.09],
            "adjusted_upper": [0.11, 0.13, 0.15],
            "oe": [0.8, 1.0, 1.2],
            "oe_lower": [0.5, 0.7, 0.9],
            "oe_upper": [1.1, 1.3, 1.5],
            "target": 0.10,
            "assessment_998": "as expected",
        }
    )
    adjusted = charts.caterpillar_chart(rows, targets=[GOAL, NORM])
    oe = charts.caterpillar_chart(rows, value="oe", targets=[GOAL, NORM])
    for spec in (adjusted, oe):
        charts.validate_spec(spec)
    assert [r["norm_value"] for r in notes(adjusted)] == pytest.approx([0.08, 0.12])
    assert [r["norm_value"] for r in notes(oe)] == pytest.approx([0.8, 1.2])  # 8% / 10%: where O/E = 0.8 meets it
    assert [r["norm_name"] for r in notes(oe)] == ["Team goal ≤ 8.0%", "External norm ≤ 12.0%"]
    assert not notes(charts.caterpillar_chart(rows.assign(target=np.nan), value="oe", targets=[GOAL]))


def test_vlad_and_cusum_mark_actions_on_their_dates_only():
    dates = pd.date_range("2023-06-01", periods=200, freq="D")
    frame = pd.DataFrame(
        {
            "unit": "H01",
            "date": dates,
            "cycle_number": np.arange(1, 201),
            "cusum_up": 0.0,
            "cusum_down": 0.0,
            "alarm_up": False,
            "alarm_down": False,
            "vlad": np.linspace(0, 3, 200),
        }
    )
    for build in (charts.vlad_chart, charts.cusum_chart):
        spec = build(frame, actions=ACTIONS)
        charts.validate_spec(spec)
        assert [r["action"] for r in notes(spec)] == ["ERAS protocol"]
        assert [r["action"] for r in notes(build(frame.drop(columns="date"), actions=ACTIONS))] == []
        assert len(charts.chart_table(spec)) == 200


# --------------------------------------------------------------------------------------------- the team page
@pytest.fixture
def team_db(small_demo_registry, tmp_path, monkeypatch):
    """A copy of the small demo registry (the test writes to it) with a team goal and an action on the own
    hospital's anastomotic leaks, started in the middle of the registry's dates."""
    engine, truth = small_demo_registry
    get_engine.cache_clear()
    own = copy_registry(engine, tmp_path / "team.db")  # with its stored views: not computed again
    url = own.url.render_as_string(hide_password=False)
    with own.connect() as conn:
        first, last = conn.execute(
            select(func.min(models.CareCycle.index_date), func.max(models.CareCycle.index_date))
        ).one()
    start = (pd.Timestamp(first) + (pd.Timestamp(last) - pd.Timestamp(first)) / 2).date()
    improvement.set_target(own, CARE, CONDITION, INDICATOR, 0.06, valid_from=dt.date(2020, 1, 1))
    action = improvement.create_action(
        own,
        CARE,
        CONDITION,
        "ERAS protocol",
        "chirurg",
        start,
        start + dt.timedelta(days=60),
        unit=truth["own_hospital"],
        indicators=[INDICATOR],
    )
    monkeypatch.setenv("VBHC_DATABASE_URL", url)
    yield truth["own_hospital"], action
    get_engine.cache_clear()


def shipped(proto) -> str:
    """A chart as Streamlit sends it: its spec and its datasets (Arrow), as text to search."""
    import pyarrow as pa

    rows = [pa.ipc.open_stream(d.data.data).read_all().to_pylist() for d in proto.datasets]
    return proto.spec + json.dumps(rows, ensure_ascii=False, default=str)


@pytest.mark.usefixtures("local_mode")
def test_the_team_page_draws_the_goal_and_the_action_and_rebases_at_it(team_db):
    from streamlit.testing.v1 import AppTest

    from vbhc.i18n import t
    from vbhc.settings import PROJECT_ROOT

    hospital, action = team_db
    at = AppTest.from_file(str(PROJECT_ROOT / "streamlit_app.py"), default_timeout=180)
    at.query_params["lang"] = "nl"
    at.session_state["condition"] = CONDITION
    at.session_state["unit_hospital"] = hospital
    at.session_state["team_tab"] = t("pages.tab_depth", "nl")
    at.session_state["indicator"] = INDICATOR
    run_on_page(at, "views/condition_team.py")
    assert not at.exception, [e.value for e in at.exception]
    assert at.selectbox(key="indicator").value == INDICATOR
    drawn = [shipped(e.proto) for e in at.get("vega_lite_chart")]
    # funnel, caterpillar and trend: the team goal; trend, VLAD and CUSUM: the action
    assert sum("Teamdoel ≤ 6,0%" in d for d in drawn) == 3
    assert sum("ERAS protocol" in d for d in drawn) == 3

    at.selectbox(key="spc_action").set_value(action.item_id).run()
    assert not at.exception, [e.value for e in at.exception]
    captions = " ".join(c.value for c in at.caption)
    assert "Herberekend bij ERAS protocol: ervoor centrale lijn" in captions
    trend = next(shipped(e.proto) for e in at.get("vega_lite_chart") if "p-kaart" in e.proto.spec)
    assert '"upper-1"' in trend  # the phase after the action has limits of its own (its line's name)
