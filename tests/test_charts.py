"""Chart builders: the Vega-Lite spec and the data inside it, from small hand-made frames (no browser)."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Iterator

import numpy as np
import pandas as pd
import pytest

from vbhc import charts
from vbhc.charts import PALETTE
from vbhc.drawing import vl_convert

UNITS = [f"H{i:02d}" for i in range(1, 9)]


# ------------------------------------------------------------------------------------------------ frames


def indicator_rows(
    indicator: str = "mortality_30d",
    kind: str = "proportion",
    direction: str = "lower",
    target: float = 0.10,
    scale: float = 1.0,
) -> pd.DataFrame:
    n = np.array([15, 60, 120, 200, 80, 300, 45, 150], dtype=float)
    value = np.array([0.09, 0.16, 0.08, 0.11, 0.10, 0.05, 0.12, 0.10]) * scale
    assessment = [
        "too few cycles",
        "worse",
        "as expected",
        "as expected",
        "as expected",
        "better",
        "as expected",
        "no data",
    ]
    return pd.DataFrame(
        {
            "condition": "colorectal_cancer",
            "indicator": indicator,
            "label_en": {"mortality_30d": "30-day mortality"}.get(indicator, indicator.replace("_", " ")),
            "label_nl": {"mortality_30d": "Sterfte binnen 30 dagen"}.get(indicator, "NL " + indicator),
            "kind": kind,
            "tier": 1,
            "direction": direction,
            "unit": UNITS,
            "n": n,
            "observed": np.round(value * n),
            "expected": target * n,
            "oe": value / target,
            "oe_lower": value / target * 0.6,
            "oe_upper": value / target * 1.5,
            "crude_value": value * 1.2,
            "crude_lower": value * 0.7,
            "crude_upper": value * 1.6,
            "adjusted_value": value,
            "adjusted_lower": value * 0.6,
            "adjusted_upper": value * 1.5,
            "target": target * scale,
            "precision": n,
            "assessment_95": assessment,
            "assessment_998": assessment,
            "too_few_cycles": [True] + [False] * 7,
        }
    )


def funnel_curve_frame(target: float = 0.10) -> pd.DataFrame:
    grid = np.geomspace(5, 330, 120)
    se = np.sqrt(target * (1 - target) / grid)
    parts = [
        pd.DataFrame(
            {"precision": grid, "level": level, "lower": np.clip(target - z * se, 0, 1), "upper": target + z * se}
        )
        for level, z in ((0.95, 1.96), (0.998, 3.09))
    ]
    return pd.concat(parts, ignore_index=True)


def spc_p_frame() -> pd.DataFrame:
    periods = pd.date_range("2023-01-01", periods=8, freq="QS")
    p = np.array([0.10, 0.12, 0.09, 0.11, 0.30, 0.10, 0.08, 0.11])
    return pd.DataFrame(
        {
            "period": periods,
            "events": p * 50,
            "n": 50.0,
            "p": p,
            "centre": 0.11,
            "sigma": 0.04,
            "sigma_z": 1.0,
            "z": 0.0,
            "lower": 0.0,
            "upper": 0.24,
            "beyond_limits": p > 0.24,
            "shift": False,
            "trend": False,
            "signal": p > 0.24,
            "expected_rate": 0.105,
        }
    )


def spc_xmr_frame() -> pd.DataFrame:
    v = np.array([6.1, 5.9, 6.3, 6.0, 5.8, 6.2, 6.1, 5.7, 8.9])
    return pd.DataFrame(
        {
            "period": pd.date_range("2023-01-01", periods=len(v), freq="MS"),
            "value": v,
            "moving_range": np.r_[np.nan, np.abs(np.diff(v))],
            "centre": 6.3,
            "lower": 5.0,
            "upper": 7.6,
            "mr_upper": 1.5,
            "beyond_limits": v > 7.6,
            "shift": False,
            "trend": False,
            "signal": v > 7.6,
            "n": 20,
        }
    )


def cusum_frame(rows: int, units: int = 2) -> pd.DataFrame:
    rng = np.random.default_rng(7)
    per = rows // units
    cycle = np.tile(np.arange(1, per + 1), units)
    up = np.abs(np.sin(cycle / 500.0)) * 5.0
    up[per // 3] = 9.0  # one tall peak that thinning must keep
    down = -np.abs(np.cos(cycle / 400.0)) * 5.0
    return pd.DataFrame(
        {
            "unit": np.repeat(UNITS[:units], per),
            "date": np.tile(pd.date_range("2019-01-01", periods=per, freq="3h"), units),
            "cycle_number": cycle,
            "outcome": rng.integers(0, 2, per * units),
            "expected": 0.1,
            "cusum_up": up,
            "cusum_down": down,
            "alarm_up": up >= 4.5,
            "alarm_down": down <= -4.5,
            "alarm": (up >= 4.5) | (down <= -4.5),
            "vlad": np.cumsum(rng.normal(0, 0.3, per * units)),
        }
    )


def breakdown_frame() -> pd.DataFrame:
    rows = []
    for i, unit in enumerate(UNITS[:4]):
        costs = {"operating theatre": 4000.0 + 100 * i, "ward": 3000.0, "ICU": 1500.0 - 200 * i, "outpatient": 300.0}
        total = sum(costs.values())
        for activity, cost in costs.items():
            rows.append((unit, activity, 40, 120.0, cost * 40, cost, cost / total))
    return pd.DataFrame(
        rows, columns=["unit", "activity", "cycles", "quantity", "total_cost", "cost_per_cycle", "share"]
    )


def value_view_frame() -> pd.DataFrame:
    quadrants = [
        "better outcome, lower cost",
        "worse outcome, higher cost",
        "better outcome, higher cost",
        "worse outcome, lower cost",
        "no clear difference",
    ]
    k = len(quadrants)
    outcome = np.array([0.05, 0.16, 0.06, 0.15, 0.10])
    cost = np.array([8000.0, 12000.0, 12500.0, 8200.0, 10000.0])
    return pd.DataFrame(
        {
            "unit": UNITS[:k],
            "adjusted_value_outcome": outcome,
            "adjusted_lower_outcome": outcome - 0.02,
            "adjusted_upper_outcome": outcome + 0.02,
            "adjusted_value_cost": cost,
            "adjusted_lower_cost": cost - 500,
            "adjusted_upper_cost": cost + 500,
            "outcome_assessment": "as expected",
            "cost_assessment": "as expected",
            "quadrant": quadrants,
        }
    )


def scores_frame() -> pd.DataFrame:
    rng = np.random.default_rng(3)
    return pd.DataFrame(
        {
            "unit": rng.choice(UNITS[:3], 600),
            "timepoint": rng.choice(["12m", "baseline"], 600),
            "score": rng.uniform(0, 48, 600),
        }
    )


# -------------------------------------------------------------------------------------------- spec helpers


def spec(chart: charts.Spec) -> dict:
    return chart.to_dict()


def views(node: dict) -> Iterator[dict]:
    """Every unit view (a dict with 'mark') in a spec, through layers, concats and facets."""
    if "mark" in node:
        yield node
    for key in ("layer", "concat", "vconcat", "hconcat"):
        for child in node.get(key, []):
            yield from views(child)
    if "spec" in node:
        yield from views(node["spec"])


def view_data(d: dict, view: dict) -> list[dict]:
    """The rows a unit view draws (its own named dataset)."""
    return d["datasets"][view["data"]["name"]]


def mark_type(view: dict) -> str:
    mark = view["mark"]
    return mark if isinstance(mark, str) else mark["type"]


def marks(d: dict) -> list[str]:
    return [mark_type(v) for v in views(d)]


def encodings(d: dict, channel: str) -> list[dict]:
    return [v["encoding"][channel] for v in views(d) if channel in v.get("encoding", {})]


def tooltip_fields(d: dict) -> set[str]:
    fields = set()
    for tips in encodings(d, "tooltip"):
        for tip in tips if isinstance(tips, list) else [tips]:
            fields.add(tip["field"])
    return fields


def tooltip_formats(d: dict) -> dict[str, str]:
    out = {}
    for tips in encodings(d, "tooltip"):
        for tip in tips if isinstance(tips, list) else [tips]:
            if "format" in tip:
                out.setdefault(tip["field"], tip["format"])
    return out


def highlighted(d: dict) -> str | None:
    """The own unit a finished chart highlights (its highlight parameter)."""
    values = [p["value"] for p in d.get("params", []) if p["name"] == charts.HIGHLIGHT_PARAM]
    assert len(values) == 1, d.get("params")
    return values[0]


def passes_filters(view: dict, row: dict, d: dict) -> bool:
    """Evaluate the view's highlight filters (the only filter expressions the builders use) for one row."""
    for step in view.get("transform", []):
        expr = step.get("filter")
        if expr is None:
            continue
        hit = row["unit"] == highlighted(d)
        if expr == charts.IS_HIGHLIGHT:
            ok = hit
        elif expr == f"!({charts.IS_HIGHLIGHT})":
            ok = not hit
        elif expr == f"{charts.IS_HIGHLIGHT} && datum.text !== ''":  # the own name, where a spot was free for it
            ok = hit and (row.get("text") or row.get("wide_text") or "") != ""  # "text" is the container's pick
        elif m := re.fullmatch(r"datum\.(\w+) (<=|>) (\S+)", expr):  # the funnel's label side
            value, bound = float(row[m.group(1)]), float(m.group(3))
            ok = value <= bound if m.group(2) == "<=" else value > bound
        else:
            raise AssertionError(f"unexpected filter {expr!r}")
        if not ok:
            return False
    return True


def datasets(d: dict) -> dict[str, list[dict]]:
    return d.get("datasets", {})


def dataset_with(d: dict, *fields: str) -> list[dict]:
    """The one dataset whose rows have all these fields (the largest if several)."""
    found = [rows for rows in datasets(d).values() if rows and all(f in rows[0] for f in fields)]
    assert found, f"no dataset with {fields}"
    return max(found, key=len)


def rows_with(d: dict, *fields: str) -> list[dict]:
    """All rows of all datasets whose rows have these fields."""
    return [row for rows in datasets(d).values() if rows and all(f in rows[0] for f in fields) for row in rows]


def lines(text: str | list[str]) -> str:
    return " ".join(text) if isinstance(text, list) else str(text)


def title_texts(d: dict) -> list[str]:
    out = []

    def walk(node):
        if isinstance(node, dict):
            title = node.get("title")
            if isinstance(title, dict):  # a wrapped title is a list of lines (or an expression that picks them)
                out.append(charts.title_lines(title))
                if title.get("subtitle"):  # lines, or an expression that picks them by the container
                    out.append(charts.title_lines(title, "subtitle"))
            elif isinstance(title, str):
                out.append(title)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(d)
    return out


def assert_small(d: dict) -> None:
    for name, rows in datasets(d).items():
        assert len(rows) < charts.MAX_ROWS, (name, len(rows))
        assert len(rows) <= 2_500, (name, len(rows))  # "hundreds to a few thousand rows"


def assessment_colour_scales(d: dict) -> list[dict]:
    return [enc["scale"] for enc in encodings(d, "color") if enc.get("field") == "assessment"]


# ------------------------------------------------------------------------------------------ palette


def test_scorecard_colour_uses_the_palette_for_every_assessment():
    assert charts.scorecard_colour("better") == "#0072B2"
    assert charts.scorecard_colour("worse") == "#D55E00"
    assert charts.scorecard_colour("as expected") == "#999999"
    assert charts.scorecard_colour("too few cycles") == PALETTE["too few cycles"]
    assert charts.scorecard_colour("Slechter dan verwacht") == "#D55E00"  # display names too
    assert charts.scorecard_colour("Better than expected") == "#0072B2"
    assert charts.scorecard_colour(None) == PALETTE["no data"]
    assert charts.scorecard_colour(float("nan")) == PALETTE["no data"]
    assert charts.scorecard_colour("something else") == PALETTE["no data"]
    assert charts.scorecard_text_colour("better") == "#FFFFFF"
    assert charts.scorecard_text_colour("as expected") == "#000000"
    assert len(set(PALETTE.values())) == len(PALETTE)


def test_value_formats_per_kind():
    assert charts.value_format("proportion") == ".1%"
    assert charts.value_format("response_rate") == ".1%"
    assert charts.value_format("mean") == ",.1f"
    assert charts.value_format("prom_change", magnitude=0.2) == ",.2f"  # EQ-5D index scale
    assert charts.value_format("oe") == ".2f"
    assert charts.value_format("cost") == "$,.0f"


# ------------------------------------------------------------------------------------------ funnel


def test_funnel_chart_spec_and_data():
    rows = indicator_rows()
    d = spec(charts.funnel_chart(rows, funnel_curve_frame(), highlight="H03"))
    kinds = marks(d)
    assert {"point", "line", "rule", "text"} <= set(kinds)
    points = next(v for v in views(d) if mark_type(v) == "point")
    assert points["encoding"]["x"]["field"] == "precision"
    assert points["encoding"]["y"]["field"] == "value"
    assert points["encoding"]["y"]["axis"]["format"] == ".1~%"
    # direction-aware colours from the assessment column, with the palette
    scale = assessment_colour_scales(d)[0]
    assert scale["domain"] == [charts.ASSESSMENT_LABELS["en"][a] for a in charts.ASSESSMENTS]
    assert scale["domain"][:2] == ["Better than expected", "Worse than expected"]
    assert scale["range"] == [PALETTE[a] for a in charts.ASSESSMENTS]
    # tooltips: unit, n, observed, expected, adjusted value and its CI, O/E; formatted
    assert {"unit", "n", "observed", "expected", "value", "lower", "upper", "oe"} <= tooltip_fields(d)
    formats = tooltip_formats(d)
    assert formats["value"] == ".1%" and formats["lower"] == ".1%" and formats["oe"] == ".2f"
    # the data: one row per unit with the adjusted value; both limit levels as dashed and solid lines
    units = dataset_with(d, "unit", "value", "precision", "assessment")
    assert len(units) == len(rows)
    by_unit = {r["unit"]: r for r in units}
    for row in rows.itertuples():
        assert by_unit[row.unit]["value"] == pytest.approx(row.adjusted_value)
        assert by_unit[row.unit]["precision"] == pytest.approx(row.precision)
        assert by_unit[row.unit]["assessment"] == charts.ASSESSMENT_LABELS["en"][row.assessment_998]
    assert highlighted(d) == "H03"
    limits = dataset_with(d, "limit", "limit_name")
    assert {r["limit_name"] for r in limits} == {"95% limits", "99.8% limits"}
    assert len(limits) == 2 * 2 * 120
    dash = next(enc for enc in encodings(d, "strokeDash") if enc.get("field") == "limit_name")
    assert dash["scale"]["range"] == [[7, 5], [1, 0]]
    # the highlighted unit is labelled, the target drawn
    text = next(v for v in views(d) if mark_type(v) == "text")
    assert text["encoding"]["text"]["field"] == "text"  # the unit's name, placed and wrapped for a phone too
    assert [r["unit"] for r in view_data(d, text) if passes_filters(text, r, d)] == ["H03"]
    rows_ = view_data(d, text)
    assert all(r["wide_text"] == r["phone_text"].replace("\n", " ") == r["unit"] for r in rows_)
    # another unit: the same spec with only the parameter swapped (what the dashboard caches)
    other = charts.with_highlight(d, "H05")
    assert highlighted(other) == "H05" and highlighted(d) == "H03"
    assert [r["unit"] for r in view_data(other, text) if passes_filters(text, r, other)] == ["H05"]
    assert other == spec(charts.funnel_chart(rows, funnel_curve_frame(), highlight="H05"))
    assert any(r[0].get("target") == pytest.approx(0.10) for r in datasets(d).values() if r)
    assert_small(d)


def test_funnel_chart_in_dutch():
    d = spec(charts.funnel_chart(indicator_rows(), funnel_curve_frame(), lang="nl"))
    titles = title_texts(d)
    # the short chart title (the page's section heading names the indicator); the indicator on the value axis
    assert charts.label("funnel", "nl") in titles and "Sterfte binnen 30 dagen" not in titles
    y_titles = [e["title"] for e in encodings(d, "y") if e.get("title")]
    joined = [" ".join(t) if isinstance(t, list) else t for t in y_titles]
    assert joined == ["Sterfte binnen 30 dagen (gecorrigeerde waarde)"]
    assert "Aantal zorgtrajecten (n)" in [e.get("title") for e in encodings(d, "x")]
    # Dutch number locale: decimal comma, dot for thousands, euro
    number = d["config"]["locale"]["number"]
    assert number["decimal"] == "," and number["thousands"] == "."
    assert d["config"]["locale"]["time"]["shortMonths"][2] == "mrt"
    scale = assessment_colour_scales(d)[0]
    assert scale["domain"] == [
        "Beter dan verwacht",
        "Slechter dan verwacht",
        "Zoals verwacht",
        "Te weinig zorgtrajecten",
        "Geen gegevens",
    ]
    units = dataset_with(d, "unit", "value", "assessment")
    assert {r["assessment"] for r in units} >= {"Slechter dan verwacht", "Beter dan verwacht", "Zoals verwacht"}


def on_big_screen(value: object) -> object:
    """A configured size outside a phone's container (a chart built wide picks it by the container)."""
    if isinstance(value, dict):  # {"expr": "phone ? <phone's> : <big screen's>"}
        return json.loads(value["expr"].rsplit(":", 1)[1])
    return value


def test_english_charts_use_the_english_number_locale():
    d = spec(charts.caterpillar_chart(indicator_rows()))
    assert d["config"]["locale"]["number"]["decimal"] == "."
    assert on_big_screen(d["config"]["title"]["fontSize"]) >= 20  # readable on a big screen
    assert on_big_screen(d["config"]["axis"]["labelFontSize"]) >= 14
    assert d["config"]["view"]["stroke"] is None


def test_funnel_chart_rejects_several_indicators():
    rows = pd.concat([indicator_rows(), indicator_rows("leak")])
    with pytest.raises(ValueError, match="one indicator"):
        charts.funnel_chart(rows, funnel_curve_frame())


# ------------------------------------------------------------------------------------------ caterpillar


def test_caterpillar_chart_sorts_best_first_with_ci_and_target():
    rows = indicator_rows()
    d = spec(charts.caterpillar_chart(rows, highlight="H02"))
    assert {"rule", "point"} <= set(marks(d))
    y = next(e for e in encodings(d, "y") if e.get("field") == "unit")
    # lower is better: lowest value first; the unit without a value would come last
    expected = rows.sort_values(["adjusted_value", "unit"])["unit"].tolist()
    assert y["sort"] == expected
    assert charts.HIGHLIGHT_PARAM in y["axis"]["labelFontWeight"]["expr"] and highlighted(d) == "H02"
    ci = next(v for v in views(d) if mark_type(v) == "rule" and v["encoding"].get("x2"))
    assert ci["encoding"]["x"]["field"] == "lower" and ci["encoding"]["x2"]["field"] == "upper"
    target_rows = [r for r in datasets(d).values() if r and "target" in r[0] and len(r) == 1]
    assert target_rows and target_rows[0][0]["target"] == pytest.approx(0.10)
    units = dataset_with(d, "unit", "value", "lower", "upper")
    for row in rows.itertuples():
        match = next(r for r in units if r["unit"] == row.unit)
        assert match["lower"] == pytest.approx(row.adjusted_lower)
        assert match["upper"] == pytest.approx(row.adjusted_upper)
    assert {"unit", "n", "observed", "expected", "value", "lower", "upper"} <= tooltip_fields(d)
    assert_small(d)


def test_caterpillar_chart_on_oe_has_its_rule_at_one():
    rows = indicator_rows()
    d = spec(charts.caterpillar_chart(rows, value="oe", lang="nl"))
    units = dataset_with(d, "unit", "value", "lower", "upper")
    by_unit = {r["unit"]: r for r in units}
    for row in rows.itertuples():
        assert by_unit[row.unit]["value"] == pytest.approx(row.oe)
        assert by_unit[row.unit]["upper"] == pytest.approx(row.oe_upper)
    target_rows = [r for r in datasets(d).values() if r and "target" in r[0] and len(r) == 1]
    assert target_rows[0][0]["target"] == 1.0
    assert tooltip_formats(d)["value"] == ".2f"
    assert any("Waargenomen / verwacht" in t for t in title_texts(d))


def test_higher_is_better_sorts_descending():
    rows = indicator_rows("resection", direction="higher")
    d = spec(charts.caterpillar_chart(rows))
    y = next(e for e in encodings(d, "y") if e.get("field") == "unit")
    assert y["sort"] == rows.sort_values("adjusted_value", ascending=False, kind="stable")["unit"].tolist()


def test_crude_vs_adjusted_chart_is_a_dumbbell():
    rows = indicator_rows("length_of_stay", kind="mean", scale=60.0)
    d = spec(charts.crude_vs_adjusted_chart(rows, lang="nl"))
    bar = next(v for v in views(d) if mark_type(v) == "rule" and v["encoding"].get("x2"))
    assert bar["encoding"]["x"]["field"] == "crude" and bar["encoding"]["x2"]["field"] == "value"
    units = dataset_with(d, "unit", "crude", "value")
    assert len(units) == len(rows)
    for row in rows.itertuples():
        match = next(r for r in units if r["unit"] == row.unit)
        assert match["crude"] == pytest.approx(row.crude_value)
        assert match["value"] == pytest.approx(row.adjusted_value)
    assert tooltip_formats(d)["value"] == ",.1f"  # a mean: one decimal
    assert {"crude", "value", "lower", "upper"} <= tooltip_fields(d)
    assert title_texts(d)[0] == charts.label("dumbbell", "nl")


# ------------------------------------------------------------------------------------------ many indicators


def test_small_multiples_one_panel_per_indicator_with_independent_scales():
    rows = pd.concat(
        [
            indicator_rows("volume", kind="volume").assign(adjusted_value=np.nan, crude_value=lambda f: f["n"]),
            indicator_rows(),
            indicator_rows("length_of_stay", kind="mean", scale=60.0),
            indicator_rows("cost_per_cycle", kind="cost", scale=100_000.0),
        ],
        ignore_index=True,
    )
    d = spec(charts.small_multiples_chart(rows, highlight="H04", lang="nl"))
    assert len(d["concat"]) == 4
    assert d["resolve"]["scale"]["y"] == "independent"
    assert d["config"]["locale"]["number"]["decimal"] == ","
    panel_titles = [p["title"]["text"] for p in d["concat"]]
    assert panel_titles == ["NL volume", "Sterfte binnen 30 dagen", "NL length_of_stay", "NL cost_per_cycle"]
    assert "bar" in marks(d["concat"][0])  # volume as bars
    y_formats = [e["axis"]["format"] for e in encodings(d, "y") if e.get("field") == "value" and "axis" in e]
    assert ".1~%" in y_formats and "$,.0f" in y_formats
    # same unit order in every panel
    orders = [e["sort"] for e in encodings(d, "x") if e.get("field") == "unit"]
    assert orders and all(o == sorted(UNITS) for o in orders)
    assert sum(len(r) for r in datasets(d).values()) < charts.MAX_ROWS
    assert_small(d)


def test_prom_response_chart_bars_with_ci_per_indicator():
    rows = pd.concat(
        [
            indicator_rows("response_3m", kind="response_rate", direction="higher", target=0.7, scale=7.0),
            indicator_rows("response_12m", kind="response_rate", direction="higher", target=0.6, scale=6.0),
        ],
        ignore_index=True,
    )
    d = spec(charts.prom_response_chart(rows, lang="nl"))
    assert len(d["vconcat"]) == 2
    assert {"bar", "rule"} <= set(marks(d))
    assert tooltip_formats(d)["value"] == ".1%"
    assert "expected" not in tooltip_fields(d)  # a response rate has no case-mix expectation
    assert "PROM-respons" in title_texts(d)
    bar = next(v for v in views(d) if mark_type(v) == "bar")
    assert bar["encoding"]["color"]["scale"]["range"] == [PALETTE[a] for a in charts.ASSESSMENTS]


def test_prom_change_chart_one_panel_per_indicator():
    rows = pd.concat(
        [
            indicator_rows("eq5d_change", kind="prom_change", direction="higher", target=0.1),
            indicator_rows("ohs_12m", kind="prom_score", direction="higher", target=0.4, scale=100.0),
        ],
        ignore_index=True,
    )
    d = spec(charts.prom_change_chart(rows))
    assert len(d["vconcat"]) == 2
    formats = [t["format"] for tips in encodings(d, "tooltip") for t in tips if t["field"] == "value" and "format" in t]
    assert ",.2f" in formats and ",.1f" in formats  # EQ-5D change with 2 decimals, Oxford score with 1
    # the change panel shows the no-change line at 0
    assert any(r and r[0].get("zero") == 0.0 for r in datasets(d).values())


# ------------------------------------------------------------------------------------------ over time


def test_trend_chart_p_chart():
    spc = spc_p_frame()
    d = spec(charts.trend_chart(spc, kind="proportion", lang="en"))
    assert {"line", "point"} <= set(marks(d))
    lines = rows_with(d, "series", "y", "key")
    assert {r["key"] for r in lines} == {"value", "centre", "upper", "lower", "expected"}
    expected_line = [r for r in lines if r["key"] == "expected"]
    assert len(expected_line) == len(spc) and expected_line[0]["y"] == pytest.approx(0.105)
    points = dataset_with(d, "value", "signal", "signal_rules")
    flagged = [r for r in points if r["signal"] == "Signal"]
    assert len(flagged) == 1 and flagged[0]["value"] == pytest.approx(0.30)
    assert "outside the control limits" in flagged[0]["signal_rules"]
    fill = encodings(d, "fill")[0]
    assert fill["scale"]["range"] == ["#000000", charts.SIGNAL_COLOUR]
    x = next(e for e in encodings(d, "x") if e.get("field") == "period")
    assert x["type"] == "temporal"
    assert tooltip_formats(d)["value"] == ".1%"
    assert "SPC p chart" in title_texts(d)


def test_trend_chart_xmr_in_dutch():
    spc = spc_xmr_frame()
    d = spec(charts.trend_chart(spc, kind="mean", lang="nl", title="Opnameduur"))
    lines = rows_with(d, "series", "y", "key")
    assert {r["key"] for r in lines} == {"value", "centre", "upper", "lower"}
    assert {r["series"] for r in lines} >= {"Centrale lijn", "Controlegrenzen"}
    titles = title_texts(d)
    assert "Opnameduur" in titles and "SPC XmR-kaart" in titles
    assert tooltip_formats(d)["value"] == ",.1f"
    points = dataset_with(d, "value", "signal")
    assert sum(r["signal"] == "Signaal" for r in points) == 1


def test_cusum_chart_thins_fifty_thousand_cycles():
    frame = cusum_frame(50_000)
    d = spec(charts.cusum_chart(frame, h=4.5, direction="lower"))
    series = dataset_with(d, "cycle_number", "cusum_up", "cusum_down")
    assert len(series) <= charts.MAX_SERIES_POINTS
    assert_small(d)
    # thinning selects rows, it does not recompute: the tall peak, the ends and the alarms survive
    assert max(r["cusum_up"] for r in series) == pytest.approx(9.0)
    for unit in ("H01", "H02"):
        mine = [r for r in series if r["unit"] == unit]
        assert min(r["cycle_number"] for r in mine) == 1
        assert max(r["cycle_number"] for r in mine) == 25_000
    originals = frame.set_index(["unit", "cycle_number"])
    for r in series[::97]:
        assert originals.loc[(r["unit"], r["cycle_number"]), "cusum_up"] == pytest.approx(r["cusum_up"])
    assert any(r["alarm_up"] for r in series) and any(r["alarm_down"] for r in series)
    # alarm limits at +h and -h, alarms coloured by direction (more events = worse here)
    limit_rows = [r for r in datasets(d).values() if len(r) == 2 and "y" in r[0]]
    assert sorted(x["y"] for x in limit_rows[0]) == [-4.5, 4.5]
    # the two lines in two palette colours and the alarms as triangles, all four in the one legend
    colour = next(e for e in encodings(d, "color") if e.get("field") == "series")
    shape = next(e for e in encodings(d, "shape") if e.get("field") == "series")
    names = ["CUSUM up", "CUSUM down", "Alarm: more events", "Alarm: fewer events"]
    assert colour["scale"]["domain"] == names and shape["scale"]["domain"] == names
    styles = dict(zip(names, zip(colour["scale"]["range"], shape["scale"]["range"], strict=True), strict=True))
    assert styles["Alarm: more events"] == (PALETTE["worse"], "triangle-up")
    assert styles["Alarm: fewer events"] == (PALETTE["better"], "triangle-down")
    assert styles["CUSUM up"][0] != styles["CUSUM down"][0]
    assert set(colour["scale"]["range"][:2]) <= set(charts.CATEGORICAL)
    assert colour["legend"] is not None
    lines = [v for v in views(d) if mark_type(v) == "line"]
    assert {v["encoding"]["color"]["field"] for v in lines} == {"series"}
    # time on the x axis: the index date
    assert {v["encoding"]["x"]["field"] for v in lines} == {"date"}
    assert {v["encoding"]["x"]["type"] for v in lines} == {"temporal"}
    assert {"unit", "cycle_number", "date", "cusum_up", "cusum_down"} <= tooltip_fields(d)


def test_vlad_chart_thins_and_keeps_extremes():
    frame = cusum_frame(50_000, units=1)
    d = spec(charts.vlad_chart(frame, lang="nl"))
    series = dataset_with(d, "cycle_number", "vlad")
    assert len(series) <= charts.MAX_SERIES_POINTS
    assert_small(d)
    assert max(r["vlad"] for r in series) == pytest.approx(frame["vlad"].max())
    assert min(r["vlad"] for r in series) == pytest.approx(frame["vlad"].min())
    assert "Cumulatief verwacht − waargenomen" in [e.get("title") for e in encodings(d, "y")]


def test_short_series_are_not_thinned():
    frame = cusum_frame(600)
    d = spec(charts.cusum_chart(frame))
    assert len(dataset_with(d, "cycle_number", "cusum_up")) == 600


def test_thin_series_respects_its_budget_with_many_units():
    frame = cusum_frame(40_000, units=8)
    thinned = charts.thin_series(frame, extremes=("cusum_up", "cusum_down", "vlad"), flags=("alarm_up",))
    assert 500 < len(thinned) <= charts.MAX_SERIES_POINTS
    assert set(thinned["unit"]) == set(UNITS)


# ------------------------------------------------------------------------------------------ PROM distribution


def test_histogram_counts():
    scores = scores_frame()
    scores.loc[0, "score"] = 48.0  # the upper edge belongs to the last bin
    scores.loc[1, "score"] = np.nan
    scores.loc[2, "score"] = 60.0  # outside the range: left out
    out = charts.histogram(scores, "score", ["unit", "timepoint"], bins=12, range_=(0, 48))
    assert list(out.columns) == ["unit", "timepoint", "bin_start", "bin_end", "count"]
    groups = scores[["unit", "timepoint"]].drop_duplicates()
    assert len(out) == len(groups) * 12  # every bin listed, zeros included
    assert out["count"].sum() == len(scores) - 2
    assert out["bin_start"].min() == 0 and out["bin_end"].max() == 48
    assert np.allclose(out["bin_end"] - out["bin_start"], 4.0)
    edge = out[(out["unit"] == scores.loc[0, "unit"]) & (out["timepoint"] == scores.loc[0, "timepoint"])]
    manual = np.histogram(
        scores.loc[
            (scores["unit"] == scores.loc[0, "unit"]) & (scores["timepoint"] == scores.loc[0, "timepoint"]), "score"
        ].dropna(),
        bins=12,
        range=(0, 48),
    )[0]
    assert edge["count"].tolist() == manual.tolist()


def test_score_distribution_chart():
    binned = charts.histogram(scores_frame(), "score", ["unit", "timepoint"], bins=12, range_=(0, 48))
    d = spec(charts.score_distribution_chart(binned, lang="nl"))
    assert "facet" in d and marks(d) == ["bar"]
    assert d["facet"]["column"]["sort"] == ["baseline", "12m"]  # baseline first
    data = dataset_with(d, "bin_start", "bin_end", "count")
    assert len(data) == len(binned)
    assert sum(r["count"] for r in data) == binned["count"].sum()
    assert d["spec"]["encoding"]["x"]["bin"] == "binned"
    assert charts.label("distribution", "nl") in title_texts(d)


def test_score_distribution_chart_accepts_a_group_column():
    scores = scores_frame().rename(columns={"unit": "group"})
    binned = charts.histogram(scores, "score", ["group", "timepoint"], bins=8, range_=(0, 48))
    d = spec(charts.score_distribution_chart(binned))
    assert {r["unit"] for r in dataset_with(d, "unit", "count")} == set(scores["group"])


# ------------------------------------------------------------------------------------------ cost and value


def test_cost_breakdown_chart_stacks_activities():
    breakdown = breakdown_frame()
    d = spec(charts.cost_breakdown_chart(breakdown, lang="nl"))
    assert marks(d) == ["bar"]
    enc = d["encoding"]
    assert enc["x"]["field"] == "cost_per_cycle" and enc["x"]["stack"] == "zero"
    assert enc["y"]["sort"] == "-x"
    assert enc["color"]["field"] == "activity"
    assert set(enc["color"]["scale"]["range"]) <= set(charts.CATEGORICAL)
    assert enc["x"]["axis"]["format"] == "$,.0f"
    formats = tooltip_formats(d)
    assert formats["share"] == ".1%" and formats["cost_per_cycle"] == "$,.0f"
    data = dataset_with(d, "unit", "activity", "cost_per_cycle")
    assert len(data) == len(breakdown)
    assert sum(r["cost_per_cycle"] for r in data) == pytest.approx(breakdown["cost_per_cycle"].sum())
    assert d["config"]["locale"]["number"]["currency"] == ["€ ", ""]
    assert charts.label("cost_breakdown", "nl") in title_texts(d)


def test_value_chart_quadrants_and_crosshairs():
    view = value_view_frame()
    d = spec(
        charts.value_chart(
            view,
            outcome_label="30-day mortality",
            outcome_kind="proportion",
            outcome_target=0.10,
            cost_target=10_000,
            highlight="H02",
        )
    )
    colour = next(e for e in encodings(d, "color") if e.get("field") == "quadrant")
    assert colour["scale"]["domain"] == [charts.QUADRANT_LABELS["en"][q] for q in charts.QUADRANTS]
    assert colour["scale"]["domain"][0] == "Better outcome, lower cost"  # the catalog's [quadrant] wording
    assert colour["scale"]["range"] == [charts.QUADRANT_COLOURS[q] for q in charts.QUADRANTS]
    assert colour["scale"]["range"][0] == PALETTE["better"] and colour["scale"]["range"][3] == PALETTE["worse"]
    targets = sorted(r[0]["target"] for r in datasets(d).values() if len(r) == 1 and "target" in r[0])
    assert targets == [0.10, 10_000]
    data = dataset_with(d, "unit", "outcome", "cost", "quadrant")
    assert len(data) == len(view)
    names = charts.QUADRANT_LABELS["en"]
    expected = {u: names[q] for u, q in zip(view["unit"], view["quadrant"], strict=True)}
    assert {r["unit"]: r["quadrant"] for r in data} == expected
    formats = tooltip_formats(d)
    assert formats["outcome"] == ".1%" and formats["cost"] == "$,.0f"
    assert any(v["mark"].get("fontWeight") == "bold" for v in views(d) if mark_type(v) == "text")


def test_value_chart_in_dutch():
    d = spec(charts.value_chart(value_view_frame(), outcome_label="Sterfte", lang="nl"))
    colour = next(e for e in encodings(d, "color") if e.get("field") == "quadrant")
    assert "Betere uitkomst, lagere kosten" in colour["scale"]["domain"]
    assert charts.label("value", "nl") in title_texts(d)


# ------------------------------------------------------------------------------------------ every builder


def _builders() -> list[tuple[str, Callable[..., tuple[charts.Spec, list[pd.DataFrame]]]]]:
    def make(fn, *frames, **kwargs):
        def build(lang="en"):
            return fn(*frames, lang=lang, **kwargs), list(frames)

        return build

    rows = indicator_rows()
    binned = charts.histogram(scores_frame(), "score", ["unit", "timepoint"], bins=12, range_=(0, 48))
    return [
        ("funnel", make(charts.funnel_chart, rows, funnel_curve_frame(), highlight="H01")),
        ("caterpillar", make(charts.caterpillar_chart, rows, highlight="H01")),
        ("caterpillar_oe", make(charts.caterpillar_chart, rows, value="oe")),
        ("crude_vs_adjusted", make(charts.crude_vs_adjusted_chart, rows)),
        ("small_multiples", make(charts.small_multiples_chart, pd.concat([rows, indicator_rows("leak")]))),
        ("prom_response", make(charts.prom_response_chart, indicator_rows("resp", kind="response_rate"))),
        ("prom_change", make(charts.prom_change_chart, indicator_rows("chg", kind="prom_change"))),
        ("trend_p", make(charts.trend_chart, spc_p_frame(), kind="proportion")),
        ("trend_xmr", make(charts.trend_chart, spc_xmr_frame(), kind="mean")),
        ("cusum", make(charts.cusum_chart, cusum_frame(12_000))),
        ("vlad", make(charts.vlad_chart, cusum_frame(12_000))),
        ("distribution", make(charts.score_distribution_chart, binned)),
        ("cost", make(charts.cost_breakdown_chart, breakdown_frame())),
        ("value", make(charts.value_chart, value_view_frame(), outcome_label="x")),
    ]


@pytest.mark.parametrize(("name", "build"), _builders(), ids=[name for name, _ in _builders()])
def test_builders_do_not_mutate_their_input_and_stay_small(name, build):
    _, frames = build()
    before = [copy.deepcopy(f) for f in frames]
    for lang in ("en", "nl"):
        chart, _ = build(lang)
        d = chart.to_dict(validate=True)  # against the Vega-Lite JSON schema that Altair ships
        assert_small(d)
        assert d["config"]["locale"]["number"]["decimal"] == ("," if lang == "nl" else ".")
    for original, frame in zip(before, frames, strict=True):
        pd.testing.assert_frame_equal(original, frame)


@pytest.mark.parametrize(("name", "build"), _builders(), ids=[name for name, _ in _builders()])
def test_builders_have_dutch_titles(name, build):
    english = title_texts(build("en")[0].to_dict())
    dutch = title_texts(build("nl")[0].to_dict())
    assert dutch and dutch != english


def test_charts_module_does_not_import_streamlit():
    import inspect

    source = inspect.getsource(charts)
    assert "import streamlit" not in source and "from streamlit" not in source


def test_unknown_language_is_refused():
    with pytest.raises(ValueError, match="lang"):
        charts.caterpillar_chart(indicator_rows(), lang="de")


def test_too_many_rows_are_refused_not_shipped():
    big = pd.concat([indicator_rows()] * 700, ignore_index=True)  # 5,600 rows
    with pytest.raises(ValueError, match="aggregate"):
        charts.caterpillar_chart(big)


def test_empty_input_gives_a_no_data_chart():
    d = spec(charts.caterpillar_chart(indicator_rows().iloc[:0], lang="nl"))
    assert marks(d) == ["text"]
    assert dataset_with(d, "text")[0]["text"] == "Geen gegevens"
    assert spec(charts.cusum_chart(cusum_frame(10).iloc[:0]))["mark"]["type"] == "text"


def test_dutch_numbers_render_with_a_decimal_comma():
    pytest.importorskip("vl_convert")
    vlc = vl_convert()
    svg = vlc.vegalite_to_svg(spec(charts.caterpillar_chart(indicator_rows(), lang="nl")))
    assert "12,5%" in svg or "7,5%" in svg or "2,5%" in svg
    svg_en = vlc.vegalite_to_svg(spec(charts.caterpillar_chart(indicator_rows(), lang="en")))
    assert "12.5%" in svg_en or "7.5%" in svg_en or "2.5%" in svg_en
    svg_cost = vlc.vegalite_to_svg(spec(charts.cost_breakdown_chart(breakdown_frame(), lang="nl")))
    assert "€ 2.000" in svg_cost
    # format() in expressions (tooltips, text) uses the chart's locale too, not only the axes
    text = {
        "data": {"values": [{"v": 0.1234}]},
        "mark": "text",
        "encoding": {"text": {"field": "v", "type": "quantitative", "format": ".1%"}},
        "config": {"locale": charts.locale("nl")},
    }
    assert "12,3%" in vlc.vegalite_to_svg(text)


def test_prepare_builds_and_changes_no_later_chart():
    before = charts.caterpillar_chart(indicator_rows(), highlight="H02", lang="nl").to_dict()
    charts.prepare()
    assert charts.caterpillar_chart(indicator_rows(), highlight="H02", lang="nl").to_dict() == before


# ------------------------------------------------------------------------------------------ downloads


def test_chart_table_is_the_drawn_units_with_the_tooltips_names():
    d = spec(charts.funnel_chart(indicator_rows(), funnel_curve_frame(), lang="nl", highlight="H02"))
    table = charts.chart_table(d)
    assert len(table) == len(UNITS)  # the units, not the funnel's limit lines
    assert {"Eenheid", "Zorgtrajecten (n)", "Gecorrigeerde waarde", "Beoordeling"} <= set(table.columns)
    assert table["Eenheid"].tolist() == UNITS
    series = charts.chart_table(spec(charts.cusum_chart(cusum_frame(400, units=1))))
    assert {"CUSUM up", "CUSUM down", "Index date"} <= set(series.columns)
    assert charts.chart_table({"datasets": {}}).empty


def test_chart_png_is_a_png_of_the_chart():
    pytest.importorskip("vl_convert")
    png = charts.chart_png(spec(charts.caterpillar_chart(indicator_rows(), lang="nl")), scale=1)
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 2_000


def test_charts_patch_nothing_in_altair():
    """vbhc.charts builds no Altair objects and changes nothing process-wide (the old altair_speedups did)."""
    import inspect

    import altair as alt

    source = inspect.getsource(charts)
    assert "import altair" not in source
    assert alt.data_transformers.active == "default"
    assert alt.utils.schemapi.DEBUG_MODE is True or not hasattr(alt.utils.schemapi, "DEBUG_MODE")


def test_cost_and_response_are_coloured_at_the_95_limits_as_the_verdict_judges_them():
    """The scorecard colours a cost outside its 95% limits "worse" (vbhc.verdict.DECIDE_AT_95); the funnel,
    caterpillar and small multiples beside it drew the same unit grey from its 99.8% assessment (a manager saw
    an orange € 24.997 in the table and a grey dot in the chart under it). Outcomes stay at 99.8%."""
    from vbhc import verdict

    assert set(verdict.DECIDE_AT_95) == {"cost", "response_rate"}
    for kind, indicator, scale in (("cost", "cost_per_cycle", 100_000.0), ("proportion", "mortality_30d", 1.0)):
        rows = indicator_rows(indicator, kind=kind, scale=scale)
        rows["assessment_95"] = rows["assessment_998"].replace({"as expected": "worse"})  # H04's 95% limits
        want = rows["assessment_95"] if kind == "cost" else rows["assessment_998"]
        expected = {u: charts.ASSESSMENT_LABELS["en"][a] for u, a in zip(rows["unit"], want, strict=True)}
        for chart in (
            charts.funnel_chart(rows, funnel_curve_frame(), highlight="H03"),
            charts.caterpillar_chart(rows, highlight="H03"),
            charts.small_multiples_chart(rows, highlight="H03"),
        ):
            drawn = {r["unit"]: r["assessment"] for r in dataset_with(spec(chart), "unit", "value", "assessment")}
            assert drawn == expected, (kind, chart)


def test_a_negative_number_in_a_charts_own_text_has_the_minus_sign_of_its_axis_labels():
    """The PROM page's EQ-5D histogram was titled "EQ-5D-5L index (Nederlandse tarieven) (-0,4–1, hoger is
    beter)" under axis labels with the minus sign: a number the chart writes itself has that sign too."""
    from vbhc.catalog import default_catalog

    scale = next(s for i in default_catalog().instruments.values() for s in i.scales if s.min < 0)
    scores = scores_frame()
    binned = charts.histogram(scores, "score", ["unit", "timepoint"], bins=12, range_=(scale.min, scale.max))
    for lang in ("nl", "en"):
        d = spec(charts.score_distribution_chart(binned, lang=lang, scale=scale))
        text = json.dumps(d, ensure_ascii=False)
        low = charts.fmt_number(abs(scale.min), lang, 0 if scale.min == int(scale.min) else 1)
        assert f"(\u2212{low}\u2013" in text and f"(-{low}" not in text, lang


@pytest.mark.parametrize("sd", [3, 5, 8, 12])
@pytest.mark.parametrize("width", [charts.PHONE_FIXED_WIDTH, charts.DEFAULT_WIDTH])
def test_every_tick_of_a_histograms_share_axis_is_labelled(sd, width):
    """A 12-month histogram (scores bunched near the top, 20 bins) labelled its share axis "0%" and "30%" only:
    three ticks left to Vega came 22 px apart in a 90 px panel and a browser dropped 10% and 20% as overlapping.
    The ticks are now chosen so that neighbouring labels lie a label and a gap apart in the largest font, and
    every tick is drawn with its label."""
    pytest.importorskip("vl_convert")
    vlc = vl_convert()
    rng = np.random.default_rng(sd)
    rows = [
        charts.histogram(
            pd.DataFrame({"unit": unit, "timepoint": "12m", "score": np.clip(rng.normal(40, sd, n), 0, 48)}),
            "score",
            ["unit", "timepoint"],
            20,
            (0, 48),
        )
        for unit, n in (("H01", 120), ("All units", 900))
    ]
    chart = charts.score_distribution_chart(pd.concat(rows), lang="nl", width=width)
    y = chart["spec"]["encoding"]["y"]
    ticks, top = y["axis"]["values"], y["scale"]["domain"][1]
    height = chart["spec"]["height"]
    biggest = max(charts.FONT_SIZES["axis_label"], charts.FONT_SIZES_NARROW["axis_label"])
    assert len(ticks) >= 3 and ticks[0] == 0 and ticks[-1] == pytest.approx(top)
    assert height * (ticks[1] - ticks[0]) / top >= biggest + charts.LABEL_GAP
    shares = pd.concat(rows).assign(total=lambda f: f.groupby("unit")["count"].transform("sum"))
    assert (shares["count"] / shares["total"]).max() <= top  # every bar inside the axis
    drawn = re.findall(r">(\d+)\s?%<", vlc.vegalite_to_svg(chart))
    assert sorted({int(d) for d in drawn}) == sorted({round(v * 100) for v in ticks})


@pytest.mark.parametrize("lang", ["en", "nl"])
def test_a_funnel_of_the_own_unit_alone_lists_no_other_units(lang):
    """A file's funnel plot with the other units withheld drew the own unit alone, and its legend still listed
    "Other units" beside it; with others drawn the legend lists both."""
    pytest.importorskip("vl_convert")
    vlc = vl_convert()
    rows = indicator_rows()
    others = charts.label("other_units", lang)
    alone = vlc.vegalite_to_svg(
        spec(charts.funnel_chart(rows[rows["unit"] == "H03"], funnel_curve_frame(), highlight="H03", lang=lang))
    )
    assert others not in alone and charts.label("own_unit", lang) in alone
    both = vlc.vegalite_to_svg(spec(charts.funnel_chart(rows, funnel_curve_frame(), highlight="H03", lang=lang)))
    assert others in both
