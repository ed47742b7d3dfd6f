"""Charts that hold: every chart rendered with vl-convert to SVG at the widths the pages give it, in both
languages, with 3 and with 30 units; every text (titles, legends, axis titles and labels, unit labels) must lie
on the canvas, no two unit labels may overlap, and every spec must be valid Vega-Lite. A phone draws the page's
spec (built for the full width) stretched to its container: that too must hold, with a plot of a usable width.

Text extents are estimated from the SVG (vl-convert writes each text with its transform, font size and anchor):
width = font size × characters × 0.6, height = the font size; the canvas is the root svg's width × height."""

from __future__ import annotations

import collections
import functools
import hashlib
import itertools
import json
import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace

import jsonschema
import numpy as np
import pandas as pd
import pytest

from ui.layout import MAIN_WIDTH
from vbhc import charts, survival
from vbhc.catalog import DAYS_PER_YEAR, Timepoint, default_catalog
from vbhc.drawing import vl_convert
from vbhc.i18n import t
from vbhc.indicators import funnel_curve as funnel_limits

pytest.importorskip("vl_convert")
# one worker draws every chart of the module: its drawings and compiled specs are kept per process (svg_of,
# drawing, scatter), and split over two workers about a sixth of the module's CPU went on drawing again what the
# other worker had drawn (121.7 s against 102.1 s of CPU for the same 118 tests)
pytestmark = pytest.mark.same_worker
vlc = vl_convert()  # with the fonts every drawing of vbhc uses (vbhc.drawing)

SVG = "{http://www.w3.org/2000/svg}"
#: The widths the pages give a chart: the content width at 1440 px (layout="wide", ui/layout.py), one of two
#: columns there (the condition-team page), and a phone at 390 px.
WIDE, COLUMN, PHONE = MAIN_WIDTH, 540, 360
#: The timepoints of scores_frame as the catalog names them.
TIMEPOINTS = (
    Timepoint("baseline", 0, "Baseline", "Voormeting"),
    Timepoint("3m", 91, "3 months", "3 maanden"),
    Timepoint("12m", 365, "12 months", "12 maanden"),
)
SLACK = 2.0  # px: the estimate is rough; a text may touch the edge


def unit_names(count: int) -> list[str]:
    # codes as hospitals write them (letters, digits, _ and -), some long
    names = [f"H{i:02d}" for i in range(1, count + 1)]
    names[0] = "ZGT_ALMELO" if count > 3 else names[0]
    if count > 10:
        names[5] = "AMC-CHIRURGIE"
    return names


#: The demo's own hospital: the longest unit name a page draws (its label ran off a phone's canvas, issue 12).
OWN_LONG = "Universitair Medisch Centrum Veenmeer"


def indicator_rows(units: list[str], indicator: str = "mortality_30d", kind: str = "proportion") -> pd.DataFrame:
    rng = np.random.default_rng(len(units) + len(indicator))
    k = len(units)
    n = rng.integers(12, 400, k).astype(float)
    target = {"proportion": 0.10, "response_rate": 0.7, "prom_change": 8.0, "mean": 6.0}.get(kind, 0.1)
    spread = 0.5 * target
    value = np.clip(target + rng.normal(0, spread / 2, k), 0.001, 0.999 if kind in charts.PROPORTION_KINDS else None)
    assessment = rng.choice(["better", "worse", "as expected", "too few cycles"], k)
    labels = {
        "mortality_30d": ("30-day mortality", "Sterfte binnen 30 dagen"),
        "complication": (
            "Severe complication (Clavien-Dindo III or higher)",
            "Ernstige complicatie (Clavien-Dindo III+)",
        ),
        "resp": ("PROM response at 12 months", "PROM-respons na 12 maanden"),
        "chg": ("EQ-5D VAS change from baseline to 12 months", "Verandering EQ-5D VAS van start tot 12 maanden"),
        "los": ("Length of stay (days)", "Opnameduur (dagen)"),
    }[indicator]
    return pd.DataFrame(
        {
            "indicator": indicator,
            "label_en": labels[0],
            "label_nl": labels[1],
            "kind": kind,
            "direction": "higher" if kind in ("response_rate", "prom_change") else "lower",
            "unit": units,
            "n": n,
            "observed": np.round(value * n),
            "expected": target * n,
            "oe": value / target,
            "oe_lower": value / target * 0.6,
            "oe_upper": value / target * 1.5,
            "crude_value": value * 1.1,
            "crude_lower": value * 0.7,
            "crude_upper": value * 1.5,
            "adjusted_value": value,
            "adjusted_lower": value - spread,
            "adjusted_upper": value + spread,
            "target": target,
            "precision": n,
            "assessment_95": assessment,
            "assessment_998": assessment,
            "key": True,
        }
    )


def funnel_curve(target: float = 0.10) -> pd.DataFrame:
    grid = np.geomspace(5, 420, 80)
    se = np.sqrt(target * (1 - target) / grid)
    return pd.concat(
        [
            pd.DataFrame(
                {"precision": grid, "level": lv, "lower": np.clip(target - z * se, 0, 1), "upper": target + z * se}
            )
            for lv, z in ((0.95, 1.96), (0.998, 3.09))
        ],
        ignore_index=True,
    )


def spc_frame() -> pd.DataFrame:
    p = np.array([0.10, 0.12, 0.09, 0.11, 0.30, 0.10, 0.08, 0.11, 0.12, 0.09, 0.1, 0.13])
    return pd.DataFrame(
        {
            "period": pd.date_range("2022-01-01", periods=len(p), freq="QS"),
            "n": 50.0,
            "p": p,
            "centre": 0.11,
            "lower": 0.0,
            "upper": 0.24,
            "beyond_limits": p > 0.24,
            "shift": False,
            "trend": False,
            "signal": p > 0.24,
            "expected_rate": 0.105,
        }
    )


#: A team goal and an external norm with a long source (vbhc.improvement targets, as the charts read them).
TARGETS = (
    SimpleNamespace(kind="team_goal", value=0.08, direction="at_most", source=""),
    SimpleNamespace(
        kind="external_norm", value=0.12, direction="at_most", source="Dutch ColoRectal Audit (DICA), norm 2025"
    ),
)


def actions(dates: pd.Series) -> list[SimpleNamespace]:
    """Improvement actions over a chart's time axis: two close together with long titles early on (their titles
    stack), and one just before the last date (its title must turn left to stay on the plot)."""
    first, last = pd.Timestamp(dates.min()), pd.Timestamp(dates.max())
    span = last - first
    return [
        SimpleNamespace(
            title="Enhanced recovery after surgery (ERAS) protocol for every elective resection, with a daily check",
            start=(first + span * 0.2).date(),
            status="in_progress",
        ),
        SimpleNamespace(title="Leak test in theatre", start=(first + span * 0.25).date(), status="done"),
        SimpleNamespace(title="Stoma nurse on call", start=(last - span * 0.02).date(), status="planned"),
    ]


def series_frame(units: list[str], per: int = 600) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    cycle = np.tile(np.arange(1, per + 1), len(units))
    up = np.abs(np.sin(cycle / 90.0)) * 5.5
    down = -np.abs(np.cos(cycle / 70.0)) * 5.5
    return pd.DataFrame(
        {
            "unit": np.repeat(units, per),
            "date": np.tile(pd.date_range("2021-01-04", periods=per, freq="1D"), len(units)),
            "cycle_number": cycle,
            "cusum_up": up,
            "cusum_down": down,
            "alarm_up": up >= 4.5,
            "alarm_down": down <= -4.5,
            "vlad": np.cumsum(rng.normal(0, 0.3, per * len(units))),
        }
    )


def scores_frame(units: list[str]) -> pd.DataFrame:
    rng = np.random.default_rng(2)
    groups = [units[0], "other units"]  # the proms page: own unit against the rest
    return pd.DataFrame(
        {
            "group": rng.choice(groups, 900, p=[0.1, 0.9]),
            "timepoint": rng.choice(["baseline", "3m", "12m"], 900),
            "score": rng.uniform(0, 100, 900),
        }
    )


@dataclass(frozen=True)
class Scale:
    label_en: str = "EQ-5D VAS"
    label_nl: str = "EQ-5D VAS"
    min: float = 0
    max: float = 100
    higher_is_better: bool = True

    def label(self, lang: str) -> str:
        return {"en": self.label_en, "nl": self.label_nl}[lang]


def breakdown_frame(units: list[str]) -> pd.DataFrame:
    rows = []
    for i, unit in enumerate(units):
        costs = {"operating theatre": 4000.0 + 40 * i, "ward": 3000.0, "intensive care": 1500.0, "outpatient": 300.0}
        total = sum(costs.values())
        for activity, cost in costs.items():
            rows.append((unit, activity, 40, 120.0, cost * 40, cost, cost / total))
    return pd.DataFrame(
        rows, columns=["unit", "activity", "cycles", "quantity", "total_cost", "cost_per_cycle", "share"]
    )


def value_frame(units: list[str]) -> pd.DataFrame:
    rng = np.random.default_rng(len(units))
    k = len(units)
    outcome = rng.uniform(0.05, 0.16, k)
    cost = rng.uniform(8000, 12500, k)
    return pd.DataFrame(
        {
            "unit": units,
            "adjusted_value_outcome": outcome,
            "adjusted_lower_outcome": outcome - 0.02,
            "adjusted_upper_outcome": outcome + 0.02,
            "adjusted_value_cost": cost,
            "adjusted_lower_cost": cost - 500,
            "adjusted_upper_cost": cost + 500,
            "quadrant": rng.choice(list(charts.QUADRANTS), k),
        }
    )


def km_frame(units: list[str]) -> pd.DataFrame:
    """Kaplan-Meier curves with bands (vbhc.survival.km_curves) of 60 followed patients per unit over 5 years: a
    copy of the curves computed once per process for these units.

    Why once: the survival charts' tests build their chart for every language and width, and each build computed
    the same curves again (28 km_curves in the page-width tests, ~4 s of CPU)."""
    return _km_curves(tuple(units)).copy()


@functools.cache
def _km_curves(units: tuple[str, ...]) -> pd.DataFrame:
    """km_frame's curves (kept: handed out only as copies)."""
    rng = np.random.default_rng(len(units))
    horizon = 5 * DAYS_PER_YEAR
    parts = []
    for unit in units:
        time = np.minimum(np.round(rng.exponential(1500, 60)), horizon)
        event = (rng.random(60) < 0.7) & (time < horizon)
        parts.append(pd.DataFrame({"unit": unit, "time": time, "event": event.astype(float)}))
    return survival.km_curves(pd.concat(parts, ignore_index=True))


def _survival_page(lang: str = "en", **kw) -> charts.Spec:
    """The team page's survival chart: the own unit (the longest name) against the benchmark population."""
    curves = km_frame([OWN_LONG, t("survival.benchmark_population", lang)])
    return charts.survival_chart(curves, highlight=OWN_LONG, lang=lang, **kw)


@functools.cache
def builders(count: int) -> dict[str, Callable[..., charts.Spec]]:
    """Each chart's builder over `count` units (keyword arguments: the chart's lang, width): made once per count.

    Why once: every test of a chart called builders(count) for its one chart, and each call made the frames of all
    fifteen (the PROM histogram, five indicators' rows: 62 calls, ~3 s of CPU in the page-width tests); the
    builders only read them (as the charts sharing `rows` here always did)."""
    units = unit_names(count)
    rows = indicator_rows(units)
    several = pd.concat(
        [
            rows,
            indicator_rows(units, "complication"),
            indicator_rows(units, "los", "mean"),
            indicator_rows(units, "resp", "response_rate"),
        ],
        ignore_index=True,
    )
    binned = charts.histogram(scores_frame(units), "score", ["group", "timepoint"], bins=20, range_=(0, 100))
    own = units[1]
    return {
        # the improvement cycle's targets and actions drawn too (issue 14): the longest texts those charts carry
        "funnel": lambda **kw: charts.funnel_chart(rows, funnel_curve(), highlight=own, targets=TARGETS, **kw),
        "caterpillar": lambda **kw: charts.caterpillar_chart(rows, highlight=own, targets=TARGETS, **kw),
        "caterpillar_oe": lambda **kw: charts.caterpillar_chart(rows, highlight=own, value="oe", targets=TARGETS, **kw),
        "crude_vs_adjusted": lambda **kw: charts.crude_vs_adjusted_chart(rows, highlight=own, **kw),
        "small_multiples": lambda **kw: charts.small_multiples_chart(several, highlight=own, **kw),
        "prom_response": lambda **kw: charts.prom_response_chart(
            pd.concat([indicator_rows(units, "resp", "response_rate")] * 1), highlight=own, **kw
        ),
        "prom_change": lambda **kw: charts.prom_change_chart(
            pd.concat([indicator_rows(units, "chg", "prom_change"), indicator_rows(units, "resp", "prom_change")]),
            highlight=own,
            scale=Scale(),
            **kw,
        ),
        "trend": lambda **kw: charts.trend_chart(
            spc_frame(), kind="proportion", targets=TARGETS, actions=actions(spc_frame()["period"]), **kw
        ),
        "cusum": lambda **kw: charts.cusum_chart(
            series_frame(units[:1]), direction="lower", actions=actions(series_frame(units[:1])["date"]), **kw
        ),
        "vlad": lambda **kw: charts.vlad_chart(
            series_frame(units[:3]), highlight=own, actions=actions(series_frame(units[:3])["date"]), **kw
        ),
        "distribution": lambda **kw: charts.score_distribution_chart(
            binned, scale=Scale(), timepoints=TIMEPOINTS, **kw
        ),
        "cost": lambda **kw: charts.cost_breakdown_chart(breakdown_frame(units), highlight=own, **kw),
        "survival": lambda **kw: charts.survival_chart(km_frame(units), highlight=own, **kw),
        "survival_page": _survival_page,
        "value": lambda **kw: charts.value_chart(
            value_frame(units), outcome_label="30-day mortality", outcome_kind="proportion", highlight=own, **kw
        ),
    }


# ------------------------------------------------------------------------------------------- SVG geometry


def _matrix(transform: str | None) -> np.ndarray:
    out = np.eye(3)
    for name, args in re.findall(r"(translate|rotate|scale|matrix)\(([^)]*)\)", transform or ""):
        v = [float(a) for a in re.split(r"[ ,]+", args.strip()) if a]
        if name == "translate":
            m = np.array([[1, 0, v[0]], [0, 1, v[1] if len(v) > 1 else 0], [0, 0, 1]])
        elif name == "scale":
            m = np.array([[v[0], 0, 0], [0, v[1] if len(v) > 1 else v[0], 0], [0, 0, 1]])
        elif name == "rotate":
            a = math.radians(v[0])
            m = np.array([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]])
            if len(v) == 3:
                m = _matrix(f"translate({v[1]},{v[2]})") @ m @ _matrix(f"translate({-v[1]},{-v[2]})")
        else:
            m = np.array([[v[0], v[2], v[4]], [v[1], v[3], v[5]], [0, 0, 1]])
        out = out @ m
    return out


@functools.cache
def _transform(transform: str) -> np.ndarray:
    """_matrix(transform), read once per distinct transform attribute (read-only: shared by every drawing)."""
    m = _matrix(transform)
    m.flags.writeable = False
    return m


def _placed(matrix: np.ndarray, transform: str | None) -> np.ndarray:
    """`matrix` followed by a node's SVG transform attribute: `matrix` itself where the node has none.

    Why: most nodes of a drawing (paths, texts' groups) carry no transform, and each multiplied the page's
    matrix by a new identity; a drawing's walk (~8 ms) was a tenth of its cost beside vl-convert's drawing."""
    return matrix @ _transform(transform) if transform else matrix


NARROW_GLYPHS = set(" .,:;'|!iljtfr()[]-")
WIDE_GLYPHS = set("MWmw@%€")


def text_width(text: str, size: float) -> float:
    """Approximate rendered width: ~0.6 of the font size per glyph, less for narrow glyphs (dots, digits' commas,
    i, l), more for wide ones and capitals."""
    units = sum(
        0.32 if c in NARROW_GLYPHS else 0.85 if c in WIDE_GLYPHS else 0.68 if c.isupper() else 0.58 for c in text
    )
    return units * size


@dataclass
class Box:
    text: str
    x0: float
    y0: float
    x1: float
    y1: float
    axis_label: bool = False  # a label of an axis' ticks (Vega's role-axis-label group)

    def overlaps(self, other: Box, slack: float = 1.0) -> bool:
        return not (
            self.x1 - slack <= other.x0
            or other.x1 - slack <= self.x0
            or self.y1 - slack <= other.y0
            or other.y1 - slack <= self.y0
        )


def _halo(node: ET.Element) -> bool:
    """Whether an SVG text is a halo (charts._halo: the text outlined in the background's colour beneath it)."""
    return (node.get("stroke") or "").upper() == charts.BACKGROUND


def text_boxes(svg: str) -> tuple[float, float, list[Box]]:
    root = ET.fromstring(svg)
    width, height = float(root.get("width")), float(root.get("height"))
    boxes: list[Box] = []

    def walk(node: ET.Element, matrix: np.ndarray, axis_label: bool = False) -> None:
        here = _placed(matrix, node.get("transform"))
        axis_label = axis_label or "role-axis-label" in (node.get("class") or "")
        if node.tag == f"{SVG}text":
            if node.get("opacity") in ("0", "0.0") or node.get("fill-opacity") == "0" or _halo(node):
                return  # hidden (e.g. an overlapping axis label Vega left out), or a text's halo beneath it
            size = float((node.get("font-size") or "11").rstrip("px"))
            lines = [t.text or "" for t in node.findall(f"{SVG}tspan")] or [node.text or ""]
            anchor = node.get("text-anchor", "start")
            line_height = size + 2
            for i, line in enumerate(lines):
                if not line.strip():
                    continue
                w = text_width(line, size)
                left = {"start": 0.0, "middle": -w / 2, "end": -w}[anchor]
                top = i * line_height - 0.8 * size
                corners = np.array(
                    [[left, top, 1], [left + w, top, 1], [left, top + size, 1], [left + w, top + size, 1]]
                )
                pts = (here @ corners.T).T
                box = Box(line, pts[:, 0].min(), pts[:, 1].min(), pts[:, 0].max(), pts[:, 1].max(), axis_label)
                boxes.append(box)
            return
        for child in node:
            walk(child, here, axis_label)

    walk(root, np.eye(3))
    return width, height, boxes


def plot_width(svg: str) -> float:
    """The widest x axis' length (its domain line): the plot area's width (of the widest panel)."""
    root = ET.fromstring(svg)
    widths = [0.0]
    for group in root.iter(f"{SVG}g"):
        if "role-axis-domain" in (group.get("class") or ""):
            for line in group.iter(f"{SVG}line"):
                if float(line.get("y2", "0")) == 0:
                    widths.append(abs(float(line.get("x2", "0"))))
    return max(widths)


#: The plot keeps at least this share of the canvas' width (a plot squeezed by its axis titles, labels and
#: legends to a strip is not read).
MIN_PLOT_SHARE = 0.55


@dataclass(frozen=True)
class Drawing:
    """What the checks read of a spec's SVG: the canvas, the box of every text drawn, the plot's width."""

    width: float
    height: float
    boxes: tuple[Box, ...]
    plot: float


#: The own unit's value a chart is compiled with for every own unit at once (no unit's name holds this character).
ANY_OWN = "\u2063own unit\u2063"
#: The width a stretched chart (with_width) is compiled with for every width at once: a number no chart's data holds
#: in practice (where its digits appear anywhere else in the compiled Vega, the chart is compiled as it is).
ANY_WIDTH = 9_876_543
#: Vega specs (JSON text) compiled with ANY_OWN as the own unit and ANY_WIDTH as the width, by the Vega-Lite spec's
#: JSON text.
_COMPILED: dict[str, str] = {}


def svg_of(spec: dict) -> str:
    """The SVG vl-convert draws of a Vega-Lite spec, as vlc.vegalite_to_svg(spec) draws it.

    Why: the tests draw one chart with each unit as the own one in turn and stretched to several widths, and
    with_highlight changes only the value of the highlight param, which Vega-Lite copies into one Vega signal and
    nowhere else, with_width only the width, which Vega-Lite copies into the Vega spec's width and nowhere else.
    The compilation to Vega (an eighth of a drawing) is done once per chart with ANY_OWN and ANY_WIDTH, the own
    unit put into that signal and the width into the Vega spec's; where a placeholder lands anywhere else too,
    the spec is compiled as it is (test_a_chart_compiled_once_draws_every_own_unit checks the premise against
    vlc.vegalite_to_svg)."""
    own = next((p for p in spec.get("params") or [] if p.get("name") == charts.HIGHLIGHT_PARAM), None)
    own = own.get("value") if own is not None and isinstance(own.get("value"), str) else None
    width = spec.get("width") if "autosize" in spec and type(spec.get("width")) is int else None
    if own is None and width is None:
        return vlc.vegalite_to_svg(spec)
    general = charts.with_highlight(spec, ANY_OWN) if own is not None else spec
    general = charts.with_width(general, ANY_WIDTH) if width is not None else general
    key = hashlib.sha256(json.dumps(general).encode()).hexdigest()
    if key not in _COMPILED:
        _COMPILED[key] = json.dumps(vlc.vegalite_to_vega(general))
    vega, placeholder = _COMPILED[key], json.dumps(ANY_OWN)
    if own is not None:
        if vega.count(placeholder) != 1:
            return vlc.vegalite_to_svg(spec)
        vega = vega.replace(placeholder, json.dumps(own))
    drawn = json.loads(vega)
    if width is not None:
        if vega.count(str(ANY_WIDTH)) != 1 or drawn.get("width") != ANY_WIDTH:
            return vlc.vegalite_to_svg(spec)
        drawn["width"] = width
    return vlc.vega_to_svg(drawn)


#: The last few SVGs drawn (by the spec's key): what drawing() and scatter() both read of one spec.
_LAST_SVGS: collections.OrderedDict[str, str] = collections.OrderedDict()


def _svg(spec: dict, key: str) -> str:
    """svg_of(spec) (`key`: the spec's JSON text's hash), drawn once for drawing() and scatter() of the same spec.

    Why: drawing() and scatter() keep what they read, each by itself, and a check of a chart's texts followed by
    a check of its names (the value quadrant by hospital name) drew the very same spec twice; they come one
    right after the other, so the last few drawings suffice."""
    if key in _LAST_SVGS:
        _LAST_SVGS.move_to_end(key)
        return _LAST_SVGS[key]
    svg = _LAST_SVGS[key] = svg_of(spec)
    if len(_LAST_SVGS) > 8:
        _LAST_SVGS.popitem(last=False)
    return svg


_DRAWINGS: dict[str, Drawing] = {}


def drawing(spec: dict) -> Drawing:
    """The spec drawn to SVG by vl-convert once per test process, however many checks and tests look at it.

    Why: vl-convert draws the very same spec (the same JSON text) the same way, and half of this module's
    drawings were repeats: a test measured a chart's width and then checked it, and the page spec at the full
    width is checked by two tests (~0.1-1 s a drawing)."""
    key = hashlib.sha256(json.dumps(spec).encode()).hexdigest()
    if key not in _DRAWINGS:
        svg = _svg(spec, key)
        width, height, boxes = text_boxes(svg)
        _DRAWINGS[key] = Drawing(width, height, tuple(boxes), plot_width(svg))
    return _DRAWINGS[key]


@functools.cache
def _dataset_validator() -> jsonschema.protocols.Validator:
    """The Vega-Lite schema charts.validate_spec uses, rooted at its `Datasets` (an object of InlineDataset)."""
    schema = charts._validator().schema
    return jsonschema.validators.validator_for(schema)({**schema, "$ref": "#/definitions/Datasets"})


_VALID: set[str] = set()


def check_valid(spec: dict) -> None:
    """Raise as charts.validate_spec(spec) would when the spec is not valid Vega-Lite, validating the spec
    without its `datasets` and each dataset apart, each part once per test process.

    Why apart: jsonschema checks a whole spec's data again for every kind of top-level spec it tries (unit,
    facet, layer, ...) and every row against every kind of dataset, a third of this module's time. The answer
    is the same: every kind of top-level spec declares `datasets` alike (`Datasets`, optional) beside nothing
    that depends on which keys a spec has (test_a_spec_is_valid_exactly_when_its_parts_are), so a spec is valid
    exactly when it is valid without its datasets and each of its datasets is."""
    datasets = spec.get("datasets")
    if not isinstance(datasets, dict):
        charts.validate_spec(spec)
        return
    body = _any_width_and_own({key: value for key, value in spec.items() if key != "datasets"})
    parts = [("spec", body), *(("dataset", {name: rows}) for name, rows in datasets.items())]
    for kind, part in parts:
        text = json.dumps(part, allow_nan=False)  # NaN is not JSON: refused, as validate_spec refuses it
        key = hashlib.sha256(f"{kind} {text}".encode()).hexdigest()
        if key in _VALID:
            continue
        validator = charts._validator() if kind == "spec" else _dataset_validator()
        plain = json.loads(text)
        error = next(iter(validator.iter_errors(charts._schema_view(plain) if kind == "spec" else plain)), None)
        if error is not None:
            raise error
        _VALID.add(key)


def _any_width_and_own(body: dict) -> dict:
    """A spec's body with any number as its width and any own unit (with_width, with_highlight): valid exactly
    when the body is, so the checks of one chart at several widths and own units validate it once.

    Why: every kind of top-level spec takes any number as its width or no width at all, and the own unit is a
    variable parameter's value, which may be any value (test_a_spec_is_valid_exactly_when_its_parts_are); a
    third of the validations were such repeats."""
    width = body.get("width")
    if isinstance(width, int | float) and not isinstance(width, bool):
        body = {**body, "width": 0}
    own = [
        p for p in body.get("params") or [] if p.get("name") == charts.HIGHLIGHT_PARAM and set(p) == {"name", "value"}
    ]
    if own and (own[0]["value"] is None or isinstance(own[0]["value"], str)):
        body = charts.with_highlight(body, ANY_OWN)
    return body


def check_holds(spec: dict, units: list[str], where: str, *, plot_share: float = 0.0) -> None:
    check_valid(spec)
    drawn = drawing(spec)
    width, height, boxes = drawn.width, drawn.height, drawn.boxes
    if plot_share:
        plot = drawn.plot
        assert plot >= plot_share * width, f"{where}: the plot is {plot:.0f} px of the {width:.0f} px canvas"
    assert boxes, where
    outside = [b for b in boxes if b.x0 < -SLACK or b.y0 < -SLACK or b.x1 > width + SLACK or b.y1 > height + SLACK]
    assert not outside, f"{where}: text off the {width:.0f}×{height:.0f} canvas: {outside[:4]}"
    names = set(units)
    labels = [b for b in boxes if b.text in names]
    clashes = [(a, b) for i, a in enumerate(labels) for b in labels[i + 1 :] if a.overlaps(b)]
    assert not clashes, f"{where}: unit labels overlap: {clashes[:3]}"
    titles = [b for b in boxes if b.text.endswith(("...", "…"))]
    assert not titles, f"{where}: truncated text {titles[:3]}"


CASES = [(name, count) for count in (3, 30) for name in builders(3)]


@pytest.mark.parametrize(("name", "count"), CASES, ids=[f"{n}-{c}units" for n, c in CASES])
def test_chart_holds_at_page_widths_in_both_languages(name, count):
    build = builders(count)[name]
    units = unit_names(count)
    for lang in ("nl", "en"):
        wide = build(lang=lang)  # what the pages build (the default width)
        check_holds(wide, units, f"{name} {lang} {count} units at {WIDE}px")
        if "autosize" in wide:  # a fitted chart in one of two columns (Streamlit stretches it to the column)
            check_holds(charts.with_width(wide, COLUMN), units, f"{name} {lang} {count} units at {COLUMN}px")
        check_holds(build(lang=lang, width=PHONE), units, f"{name} {lang} {count} units at {PHONE}px")


@pytest.mark.parametrize(("name", "count"), CASES, ids=[f"{n}-{c}units" for n, c in CASES])
def test_the_page_spec_holds_on_a_phone(name, count):
    """What a phone draws (issue 12): the page's spec, built for the full width, stretched to a 360 px container
    (pages never know the viewport). Texts on the canvas, none cut, and the plot keeps a usable width."""
    build = builders(count)[name]
    units = unit_names(count)
    if "autosize" not in build(lang="en"):
        pytest.skip("a concatenation is not stretched: its panels are laid out for the width it is built for")
    for lang in ("nl", "en"):
        wide = build(lang=lang)
        phone = charts.with_width(wide, PHONE)
        check_holds(phone, units, f"{name} {lang} {count} units stretched to {PHONE}px", plot_share=MIN_PLOT_SHARE)
        check_holds(wide, units, f"{name} {lang} {count} units at {WIDE}px", plot_share=MIN_PLOT_SHARE)


@pytest.mark.parametrize("name", ["caterpillar", "crude_vs_adjusted", "prom_response", "cost"])
def test_long_unit_names_on_a_unit_axis_hold_from_a_phone_to_the_wide_screen(name):
    """Hospitals' names as the demo writes them down a unit axis: broken into lines rather than cut with "…", and
    on a phone without squeezing the plot."""
    units = unit_names(10)
    units[1], units[3] = OWN_LONG, "Brughaven Ziekenhuisgroep"
    rows = indicator_rows(units)
    build = {
        "caterpillar": lambda **kw: charts.caterpillar_chart(rows, **kw),
        "crude_vs_adjusted": lambda **kw: charts.crude_vs_adjusted_chart(rows, **kw),
        "prom_response": lambda **kw: charts.prom_response_chart(indicator_rows(units, "resp", "response_rate"), **kw),
        "cost": lambda **kw: charts.cost_breakdown_chart(breakdown_frame(units), **kw),
    }[name]
    for lang in ("nl", "en"):
        wide = build(lang=lang, highlight=OWN_LONG)
        for width in (PHONE, COLUMN, WIDE):
            share = MIN_PLOT_SHARE if width != COLUMN else 0.0
            check_holds(charts.with_width(wide, width), units, f"{name} {lang} at {width}px", plot_share=share)


@pytest.mark.parametrize("width", [PHONE, COLUMN, WIDE])
def test_a_long_own_unit_name_stays_on_the_funnel(width):
    """The own unit's name on the funnel (the demo's own hospital has the longest name) lies inside the canvas
    wherever its point is, from a phone to the wide screen."""
    units = [f"H{i:02d}" for i in range(1, 8)]
    rows = indicator_rows(units)
    for i in range(len(units)):  # the own unit at each place along the x axis in turn
        named = rows.assign(unit=[OWN_LONG if j == i else u for j, u in enumerate(units)])
        for lang in ("nl", "en"):
            spec = charts.with_width(charts.funnel_chart(named, funnel_curve(), highlight=OWN_LONG, lang=lang), width)
            check_holds(spec, [*units, OWN_LONG], f"funnel, own unit {i} {lang} at {width}px", plot_share=0.55)
            texts = " ".join(b.text for b in _texts(spec))
            assert all(word in texts for word in OWN_LONG.split()), texts


def _title_lines(svg_boxes: tuple[Box, ...], size: float) -> list[Box]:
    """The lines of a chart's title: the texts drawn at the title's font size (the chart's largest)."""
    return [b for b in svg_boxes if abs((b.y1 - b.y0) - size) < 0.5 and b.text.strip()]


@pytest.mark.parametrize("lang", ["nl", "en"])
def test_a_title_takes_the_width_it_is_drawn_at(lang):
    """The screenshots showed "Alle eenheden naar / aantal zorgtrajecten" broken in two at ~250 px over a 940 px
    funnel (and "Per periode, met / controlegrenzen" over the meeting's SPC chart): the title was wrapped once,
    for a phone, and a wide screen drew the phone's lines. Now a title that fits the chart's width is one line on
    the meeting screen, and still breaks to hold in a column and on a phone."""
    units = unit_names(7)
    for name, build in builders(7).items():
        spec = build(lang=lang)
        if "autosize" not in spec or not isinstance(spec.get("title"), dict):
            continue  # a concatenation is drawn at the width it is built for
        full = charts.title_lines(spec["title"])
        wide = _title_lines(drawing(charts.with_width(spec, WIDE)).boxes, charts.FONT_SIZES["title"])
        assert [b.text for b in wide] == [full], f"{name} {lang} at {WIDE}px: {[b.text for b in wide]}"
        for width, size in ((COLUMN, charts.FONT_SIZES["title"]), (PHONE, charts.FONT_SIZES_NARROW["title"])):
            narrowed = charts.with_width(spec, width)
            check_holds(narrowed, units, f"{name} {lang} at {width}px")
            lines = _title_lines(drawing(narrowed).boxes, size)
            assert " ".join(b.text for b in lines) == full, f"{name} {lang} at {width}px: {lines}"


def _subtitle_lines(boxes: tuple[Box, ...], full: str, size: float) -> list[Box]:
    """The lines of a chart's subtitle: texts at the subtitle's font size that are a part of it, top to bottom."""
    return sorted(
        (b for b in boxes if abs((b.y1 - b.y0) - size) < 0.5 and b.text.strip() and b.text.strip() in full),
        key=lambda b: b.y0,
    )


@pytest.mark.parametrize("lang", ["nl", "en"])
def test_a_subtitle_takes_the_width_it_is_drawn_at(lang):
    """The screenshots showed subtitles in short lines (wrapped for a phone's 340 px) over a 940 px chart on a
    1440 px screen, the subtitle twice as tall as it needed. Now a subtitle takes the lines of the width it is
    drawn at: no more than the built width needs, and it still breaks to hold in a column and on a phone."""
    units = unit_names(7)
    seen = 0
    for name, build in builders(7).items():
        spec = build(lang=lang)
        if "autosize" not in spec or not isinstance(spec.get("title"), dict) or not spec["title"].get("subtitle"):
            continue
        full = charts.title_lines(spec["title"], "subtitle")
        size = charts.FONT_SIZES["subtitle"]
        wide = _subtitle_lines(drawing(charts.with_width(spec, WIDE)).boxes, full, size)
        assert " ".join(b.text for b in wide) == full, f"{name} {lang} at {WIDE}px: {wide}"
        needed = math.ceil(text_width(full, size) / (WIDE - 40))
        assert len(wide) <= needed, f"{name} {lang} at {WIDE}px: {len(wide)} lines, {needed} needed: {wide}"
        seen += len(full) > 60  # a subtitle longer than a phone's line
        for width, size in ((COLUMN, charts.FONT_SIZES["subtitle"]), (PHONE, charts.FONT_SIZES_NARROW["subtitle"])):
            narrowed = charts.with_width(spec, width)
            check_holds(narrowed, units, f"{name} {lang} at {width}px")
            lines = _subtitle_lines(drawing(narrowed).boxes, full, size)
            assert " ".join(b.text for b in lines) == full, f"{name} {lang} at {width}px: {lines}"
    assert seen


def test_the_check_finds_a_clipped_title_and_overlapping_labels():
    """The geometry above is not vacuous: a title wider than its canvas and two labels on one spot fail it."""
    spec = dict(charts.caterpillar_chart(indicator_rows(unit_names(3)), width=PHONE))
    spec["title"] = {
        "text": "A title much too long to fit on the small canvas of a phone in one line",
        "anchor": "start",
    }
    with pytest.raises(AssertionError, match="off the"):
        check_holds(spec, unit_names(3), "clipped")
    text = {
        "$schema": charts.SCHEMA_URL,
        "data": {"values": [{"unit": "H01", "x": 1}, {"unit": "H02", "x": 1}]},
        "mark": {"type": "text", "fontSize": 14},
        "encoding": {"x": {"field": "x", "type": "quantitative"}, "text": {"field": "unit", "type": "nominal"}},
    }
    with pytest.raises(AssertionError, match="overlap"):
        check_holds(text, ["H01", "H02"], "overlap")


def test_a_spec_is_valid_exactly_when_its_parts_are():
    """check_valid's premise in the installed schema: every kind of top-level spec declares `datasets` as
    `Datasets` (an object of InlineDataset), optional, beside nothing that depends on which keys a spec has; and
    check_valid refuses what charts.validate_spec refuses (a bad dataset, a bad spec, NaN)."""
    schema = charts._validator().schema
    definitions = schema["definitions"]

    def resolved(node: dict) -> dict:
        return definitions[node["$ref"].removeprefix("#/definitions/")] if "$ref" in node else node

    assert schema["$ref"] == "#/definitions/TopLevelSpec"
    assert set(definitions["TopLevelSpec"]) == {"anyOf", "description"}
    tops = []
    for kind in map(resolved, definitions["TopLevelSpec"]["anyOf"]):
        if "anyOf" in kind:  # the repeat spec: two kinds
            assert set(kind) <= {"anyOf", "description"}
            tops += map(resolved, kind["anyOf"])
        else:
            tops.append(kind)
    assert len(tops) >= 7
    for top in tops:
        assert set(top) <= {"type", "properties", "required", "additionalProperties", "description"}, set(top)
        assert top["properties"]["datasets"]["$ref"] == "#/definitions/Datasets"
        assert "datasets" not in top["required"]
    # any number as the width, any value as the own unit (_any_width_and_own): a kind takes every number as its
    # width or no width at all, and the highlight param (a name and a value) can only be a variable parameter,
    # whose value is not constrained
    for top in tops:
        assert "width" not in top["properties"] or {"type": "number"} in top["properties"]["width"]["anyOf"]
        assert top["properties"]["params"]["items"] == {"$ref": "#/definitions/TopLevelParameter"}
    assert definitions["TopLevelParameter"]["anyOf"] == [
        {"$ref": "#/definitions/VariableParameter"},
        {"$ref": "#/definitions/TopLevelSelectionParameter"},
    ]
    assert "select" in definitions["TopLevelSelectionParameter"]["required"]
    assert set(definitions["VariableParameter"]["properties"]["value"]) == {"description"}
    assert definitions["Datasets"] == {"$ref": "#/definitions/Dict<InlineDataset>"}
    assert definitions["Dict<InlineDataset>"] == {
        "additionalProperties": {"$ref": "#/definitions/InlineDataset"},
        "type": "object",
    }

    good = charts.caterpillar_chart(indicator_rows(unit_names(3)))
    check_valid(good)
    name = next(iter(good["datasets"]))
    for bad, error in [
        ({**good, "datasets": {**good["datasets"], name: [{"unit": "H01"}, 2]}}, jsonschema.ValidationError),
        ({**good, "height": "tall"}, jsonschema.ValidationError),
        ({**good, "width": "wide"}, jsonschema.ValidationError),
        ({**good, "width": True}, jsonschema.ValidationError),
        (
            {**good, "params": [{"name": charts.HIGHLIGHT_PARAM, "value": "H01", "colour": "red"}]},
            jsonschema.ValidationError,
        ),
        ({**good, "datasets": {**good["datasets"], name: [{"unit": "H01", "n": math.nan}]}}, ValueError),
    ]:
        with pytest.raises(error):
            charts.validate_spec(bad)
        with pytest.raises(error):
            check_valid(bad)


def test_the_chart_validator_answers_as_the_stock_one_trying_the_likely_branch_first():
    """charts._validator's anyOf tries first the branches a value can match (_likely_first): a layer chart as a
    layer before as a unit spec, a concatenation as one. Its answers are the stock validator's: every error of
    valid and invalid charts (message, place, schema path, the branches' errors) the same, in the same order."""
    chart_validator = charts._validator()
    schema = chart_validator.schema
    stock = jsonschema.validators.validator_for(schema)(schema)

    def errors(validator: jsonschema.protocols.Validator, spec: dict) -> list[tuple]:
        return [
            (e.message, list(e.absolute_path), list(e.absolute_schema_path), [c.message for c in e.context])
            for e in validator.iter_errors(charts._schema_view(json.loads(json.dumps(spec))))
        ]

    built = {name: build(lang="nl") for name, build in builders(3).items()}
    layer, concat = built["funnel"], built["small_multiples"]
    assert "layer" in layer and "concat" in concat
    bad_layer = json.loads(json.dumps(layer))
    bad_layer["layer"][0]["mark"] = {"type": "circle", "size": "big"}
    bad_layer["layer"][-1]["encoding"]["x"]["type"] = "continuous"
    cases = [
        *built.values(),
        {**layer, "height": "tall"},
        {**layer, "colour": "red"},
        bad_layer,
        {**concat, "concat": [*concat["concat"], {"mark": "dot"}]},
        {"mark": "point", "data": {"values": [{"a": 1}]}, "encoding": {"x": {"field": "a", "type": "quantitative"}}},
    ]
    broken = 0
    for spec in cases:
        expected = errors(stock, spec)  # once a case: the stock validator's full search is most of the test's time
        assert errors(chart_validator, spec) == expected, spec.get("title")
        broken += bool(expected)
    assert broken == 4  # the four broken ones, and only those

    definitions = schema["definitions"]
    branches = definitions["TopLevelSpec"]["anyOf"]
    kinds = [branch["$ref"].rsplit("/", 1)[-1] for branch in branches]
    for spec, kind in ((layer, "TopLevelLayerSpec"), (concat, "TopLevelConcatSpec")):
        scores = [charts._likely_first(branch, spec, definitions) for branch in branches]
        first = kinds[min(range(len(kinds)), key=scores.__getitem__)]
        assert first == kind and scores[kinds.index("TopLevelUnitSpec")] > 0, (
            kind,
            dict(zip(kinds, scores, strict=True)),
        )


def test_a_chart_compiled_once_draws_every_own_unit():
    """svg_of's premise: a chart compiled to Vega once with ANY_OWN as the own unit and ANY_WIDTH as the width,
    each own unit then put into its signal and each width into the Vega spec's, draws what vl-convert draws of the
    chart with that own unit at that width (the value quadrant's and the funnel's names, shapes and legend all
    depend on the own unit; every layout on the width), from a phone's width to the page's; a chart without an own
    unit is compiled once for all its widths; without an own unit or a width, or with a placeholder elsewhere too,
    the spec is drawn as it is. (vl-convert numbers the clip paths of all its drawings in turn: the numbers are
    left out of the comparison.)"""

    def same(spec: dict) -> bool:
        return re.sub(r"clip\d+", "clip", svg_of(spec)) == re.sub(r"clip\d+", "clip", vlc.vegalite_to_svg(spec))

    units = [OWN_LONG, "Eikenrode Ziekenhuis", "Zilverberg Gasthuis", "H04"]
    value = charts.value_chart(value_frame(units), outcome_label="Sterfte", outcome_kind="proportion", lang="nl")
    funnel = charts.funnel_chart(indicator_rows(units), funnel_curve(), lang="en")
    for spec in (value, funnel):
        for width, own in zip((PHONE, WIDE, 390 - 32, COLUMN), units, strict=True):
            drawn = charts.with_highlight(charts.with_width(spec, width), own)
            assert same(drawn), (spec["title"], width, own)
    # described as no other test's chart is: compiled here, not found compiled by an earlier test of the process
    trend = {**builders(3)["trend"](lang="nl"), "description": "svg_of's premise"}
    value = {**value, "description": "svg_of's premise"}
    compiled = len(_COMPILED)
    for width in (PHONE, COLUMN, WIDE):
        assert same(charts.with_width(trend, width)), width
    assert len(_COMPILED) == compiled + 1  # one compilation for the three widths
    assert same(charts.with_highlight(value, None))
    named = charts.with_highlight({**value, "description": ANY_OWN}, units[1])
    assert same(named)
    numbered = charts.with_width({**value, "description": f"chart {ANY_WIDTH}"}, PHONE)
    assert same(numbered)
    assert len(_COMPILED) == compiled + 4  # specs naming a placeholder elsewhere: compiled, then drawn as is
    assert same({key: value for key, value in value.items() if key != "autosize"})  # no width of its own
    assert len(_COMPILED) == compiled + 4


def test_caterpillar_gives_each_unit_its_own_row():
    for count in (3, 10, 30):
        spec = charts.caterpillar_chart(indicator_rows(unit_names(count)))
        assert spec["height"] >= 26 * max(count, 3)
    three = charts.caterpillar_chart(indicator_rows(unit_names(3)))
    ten = charts.caterpillar_chart(indicator_rows(unit_names(10)))
    assert ten["height"] / 10 == three["height"] / 3


def test_small_multiples_fit_the_width():
    rows = pd.concat([indicator_rows(unit_names(8), ind) for ind in ("mortality_30d", "complication", "los")])
    for width in (WIDE, COLUMN, PHONE):
        spec = charts.small_multiples_chart(rows, width=width)
        total = spec["columns"] * (spec["concat"][0]["width"] + 56) + (spec["columns"] - 1) * spec["spacing"]
        assert total <= width, (width, spec["columns"])
    assert charts.small_multiples_chart(rows, width=WIDE)["columns"] > 1
    assert charts.small_multiples_chart(rows, width=PHONE)["columns"] == 1


def test_prom_histograms_show_shares_per_group_and_name_the_scale():
    units = unit_names(3)
    binned = charts.histogram(scores_frame(units), "score", ["group", "timepoint"], bins=10, range_=(0, 100))
    spec = charts.score_distribution_chart(binned, scale=Scale(), lang="nl")
    rows = next(iter(spec["datasets"].values()))
    totals: dict[tuple[str, str], float] = {}
    for r in rows:
        totals[(r["unit"], r["timepoint"])] = totals.get((r["unit"], r["timepoint"]), 0.0) + r["share"]
    assert all(v == pytest.approx(1.0) for v in totals.values())  # the small own unit reads like the rest
    enc = spec["spec"]["encoding"]
    assert enc["y"]["field"] == "share" and enc["y"]["axis"]["format"] == ".0%"
    x_title = enc["x"]["title"]
    x_title = " ".join(x_title) if isinstance(x_title, list) else x_title
    assert x_title == "EQ-5D VAS (0–100, hoger is beter)"


def test_every_chart_text_comes_from_the_catalog():
    from vbhc.i18n import catalog

    for lang in ("en", "nl"):
        texts = {k[len("chart.label.") :]: v for k, v in catalog(lang).items() if k.startswith("chart.label.")}
        plain = {k: v for k, v in texts.items() if "{" not in v}
        assert plain and all(charts.label(k, lang) == v for k, v in plain.items())
        # a text naming something (the own unit in the legend) is used through t() with its value
        named = {k: v for k, v in texts.items() if k not in plain}
        assert all(t(f"chart.label.{k}", lang, name="X") == v.format(name="X") for k, v in named.items())
    assert not hasattr(charts, "LABELS")


# ------------------------------------------------------------------------------------------ issue 12's last items


def _texts(spec: dict) -> list[Box]:
    return list(drawing(spec).boxes)


@pytest.mark.parametrize("lang", ["nl", "en"])
def test_prom_panels_are_headed_by_the_catalogs_timepoint_names(lang):
    """Every condition's PROM histograms: panels headed by the catalog's timepoint label(lang) in the order of
    their days, never by the raw id (`baseline`, `12m`); the value axis carries the scale's name."""
    catalog = default_catalog()
    for condition in catalog.conditions.values():
        for use in condition.proms:
            scale = catalog.instrument(use.instrument).scales[0]
            rng = np.random.default_rng(3)
            ids = list(reversed(use.timepoints))  # the data in any order: the catalog's days set the order
            scores = pd.DataFrame(
                {
                    "group": rng.choice(["Ziekenhuis Oost", t("proms.all_units", lang)], 400),
                    "timepoint": rng.choice(ids, 400),
                    "score": rng.uniform(scale.min, scale.max, 400),
                }
            )
            binned = charts.histogram(scores, "score", ["group", "timepoint"], bins=10, range_=(scale.min, scale.max))
            spec = charts.score_distribution_chart(binned, lang=lang, scale=scale, timepoints=condition.timepoints)
            check_holds(spec, [], f"{condition.id} {use.instrument} {lang}")
            boxes = _texts(spec)
            texts = [b.text for b in boxes]
            raw = [tp for tp in use.timepoints if tp in texts and condition.timepoint(tp).label(lang) != tp]
            assert not raw, f"{condition.id}: raw timepoint ids {raw} head the panels"
            names = [
                condition.timepoint(tp).label(lang)
                for tp in sorted(use.timepoints, key=lambda i: condition.timepoint(i).days)
            ]
            headers = {b.text: b.x0 for b in boxes if b.text in names}
            assert set(headers) == set(names), (condition.id, names, texts)
            assert sorted(headers, key=headers.get) == names, "panels not in the order of their days"
            joined = " ".join(texts)
            assert scale.label(lang).split()[0] in joined


@pytest.mark.parametrize("lang", ["nl", "en"])
def test_a_prom_histogram_per_timepoint_fits_a_phones_screen(lang):
    """The PROM page draws one histogram chart per timepoint (columns that a phone stacks), each built at
    charts.PHONE_FIXED_WIDTH: a grid of panels is not stretched, so it must fit a 390 px phone's 358 px content
    width as built; titled by its timepoint's name, one column of panels (own unit and all units)."""
    catalog = default_catalog()
    for condition in catalog.conditions.values():
        for use in condition.proms[:1]:
            scale = catalog.instrument(use.instrument).scales[0]
            rng = np.random.default_rng(5)
            scores = pd.DataFrame(
                {
                    "group": rng.choice([OWN_LONG, t("proms.all_units", lang)], 300),
                    "timepoint": rng.choice(list(use.timepoints), 300),
                    "score": rng.uniform(scale.min, scale.max, 300),
                }
            )
            binned = charts.histogram(scores, "score", ["group", "timepoint"], bins=20, range_=(scale.min, scale.max))
            for tp in use.timepoints:
                one = binned[binned["timepoint"].astype(str) == tp]
                spec = charts.score_distribution_chart(
                    one, lang=lang, scale=scale, timepoints=condition.timepoints, width=charts.PHONE_FIXED_WIDTH
                )
                where = f"{condition.id} {use.instrument} {tp} {lang}"
                assert "column" not in spec["facet"], where
                title = spec["title"]["text"]
                title = " ".join(title) if isinstance(title, list) else title
                assert title == f"{scale.label(lang)} · {condition.timepoint(tp).label(lang)}", where
                check_holds(spec, [], where)
                width = drawing(spec).width
                assert width <= 358, f"{where}: {width:.0f} px wide on a 358 px phone screen"


def test_prom_change_axis_names_the_scale():
    rows = indicator_rows(unit_names(3), "chg", "prom_change")
    for lang in ("nl", "en"):
        spec = charts.prom_change_chart(rows, lang=lang, scale=Scale())
        title = spec["layer"][0]["encoding"]["x"]["title"]
        title = " ".join(title) if isinstance(title, list) else title
        assert Scale().label(lang) in title and t("chart.change_axis", lang, scale=Scale().label(lang)) in title


def test_a_scale_whose_label_ends_in_its_range_gets_the_range_once():
    """The catalog names the Oxford scores "Oxford Hip Score (0-48)"; the axes add the range (or measure a change)
    themselves, so the label's own range is left out: never "(0-48) (0–48, higher is better)"."""
    ohs = Scale("Oxford Hip Score (0-48)", "Oxford Hip Score (0-48)", 0, 48)
    rows = indicator_rows(unit_names(3), "chg", "prom_change")
    for lang in ("nl", "en"):
        change = charts.prom_change_chart(rows, lang=lang, scale=ohs)["layer"][0]["encoding"]["x"]["title"]
        histogram = charts.score_distribution_chart(
            charts.histogram(scores_frame(unit_names(3)), "score", ["group", "timepoint"], bins=8, range_=(0, 48)),
            lang=lang,
            scale=ohs,
            timepoints=TIMEPOINTS,
        )
        for title in (change, *_axis_titles(histogram)):
            text = " ".join(title) if isinstance(title, list) else str(title)
            assert "0-48" not in text and ") (" not in text, text


def _axis_titles(spec: object) -> list[object]:
    """Every axis title in a spec (nested views included)."""
    found: list[object] = []
    if isinstance(spec, dict):
        for key, value in spec.items():
            if key in ("axis", "x", "y") and isinstance(value, dict) and "title" in value:
                found.append(value["title"])
            else:
                found.extend(_axis_titles(value))
    elif isinstance(spec, list):
        for item in spec:
            found.extend(_axis_titles(item))
    return found


#: The headings (or tabs) the pages put right above a chart (vbhc/i18n key) and the chart's own title.
HEADED_CHARTS = [
    ("cost.by_activity", "cost_breakdown"),  # views/cost_value.py
    ("cost.outcome_vs_cost", "value"),
    ("proms.distribution", "distribution"),  # views/proms.py (with a scale the chart is titled by the scale)
    ("team.funnel", "funnel"),  # views/condition_team.py, tabs of the indicator in depth
    ("team.caterpillar", "caterpillar"),
    ("team.caterpillar", "oe_title"),
    ("team.trend", "trend"),
    ("team.crude_vs_adjusted", "dumbbell"),
    ("pages.tab_vlad_cusum", "vlad"),
    ("pages.tab_vlad_cusum", "cusum"),
]


def _plain(text: str) -> str:
    return re.sub(r"[^\w%]+", " ", text.lower()).strip()


@pytest.mark.parametrize("lang", ["nl", "en"])
def test_chart_titles_do_not_repeat_the_heading_above_them(lang):
    """A chart's title says what the heading above it does not (and is never cut short with "...")."""
    for heading_key, chart_key in HEADED_CHARTS:
        heading, title = _plain(t(heading_key, lang)), _plain(charts.label(chart_key, lang))
        assert heading != title and heading not in title and title not in heading, (lang, heading, title)
    from vbhc.i18n import catalog

    cut = [k for k, v in catalog(lang).items() if k.startswith("chart.") and v.rstrip().endswith(("...", "…"))]
    assert not cut, cut


@pytest.mark.parametrize("count", [3, 30])
@pytest.mark.parametrize("indicators", [1, 2, 4, 6])
def test_compare_small_multiples_fit_the_page(count, indicators):
    """The compare page's small multiples, as the page builds them, lie within the page's 940 px at any number
    of panels and units (a concatenated chart is not stretched: anything wider is cut at the right)."""
    units = unit_names(count)
    kinds = [("mortality_30d", "proportion"), ("complication", "proportion"), ("los", "mean")] * 2
    rows = pd.concat(
        [
            indicator_rows(units, ind, kind).assign(indicator=f"{ind}{i}")
            for i, (ind, kind) in enumerate(kinds[:indicators])
        ]
    )
    for lang in ("nl", "en"):
        for spec in (
            charts.small_multiples_chart(rows, lang=lang, highlight=units[1]),
            charts.small_multiples_chart(rows, lang=lang, width=MAIN_WIDTH),
        ):
            width = drawing(spec).width
            assert width <= MAIN_WIDTH, f"{indicators} panels, {count} units, {lang}: {width:.0f} px wide"
            check_holds(spec, units, f"{indicators} panels {count} units {lang}")


@pytest.mark.parametrize("count", [3, 9, 30])
def test_compare_charts_per_indicator_fit_a_phones_screen(count):
    """The compare page draws one chart per indicator (columns a phone stacks) at charts.PHONE_FIXED_WIDTH: each
    fits a 390 px phone's 358 px as built, and the demo's long hospital names are whole, not cut with "…"."""
    units = unit_names(count)
    units[0] = OWN_LONG
    for ind, kind in [("mortality_30d", "proportion"), ("los", "mean")]:
        rows = indicator_rows(units, ind, kind)
        for lang in ("nl", "en"):
            for legend in (True, False):
                spec = charts.small_multiples_chart(
                    rows, lang=lang, highlight=OWN_LONG, width=charts.PHONE_FIXED_WIDTH, titled=False, legend=legend
                )
                where = f"{ind} {count} units {lang} legend={legend}"
                assert "title" not in spec, where
                width = drawing(spec).width
                assert width <= 358, f"{where}: {width:.0f} px wide on a 358 px phone screen"
                check_holds(spec, units, where)


@pytest.mark.parametrize("count", [3, 30])
def test_value_quadrant_names_stay_next_to_their_points(count):
    """The value quadrant's unit names: anchored to their own point by a few pixels (so they stay next to it at
    any width), all of them with a few units, only the own unit and the extremes with thirty; none overlap."""
    units = unit_names(count)
    frame = value_frame(units)
    for lang in ("nl", "en"):
        spec = charts.value_chart(
            frame, outcome_label="Sterfte", outcome_kind="proportion", highlight=units[1], lang=lang
        )
        names = [layer for layer in spec["layer"] if layer["mark"]["type"] == "text"]
        assert names
        for layer in names:
            assert (layer["encoding"]["x"]["field"], layer["encoding"]["y"]["field"]) == ("cost", "outcome")
            assert layer["mark"]["dx"] == {"expr": "datum.dx"} and layer["mark"]["dy"] == {"expr": "datum.dy"}
        # each layout's offsets (a phone's and a wider container's): the name's box within 30 px of its point
        offsets = next(rows for rows in spec["datasets"].values() if rows and "wide_dx" in rows[0])
        for row in offsets:
            for layout, size in (("wide", 15), ("phone", 12)):
                height = row[f"{layout}_text"].count("\n") * (size + 2) + size
                assert abs(row[f"{layout}_dx"]) <= 30, row
                assert max(row[f"{layout}_dy"], -(row[f"{layout}_dy"] + height), 0) <= 30, row
        for width in (MAIN_WIDTH, COLUMN):
            shown = [b.text for b in _texts(charts.with_width(spec, width)) if b.text in units]
            if count <= 10:
                assert sorted(shown) == sorted(units)
            else:
                assert units[1] in shown and 3 <= len(shown) <= 5, shown
            check_holds(charts.with_width(spec, width), units, f"value {count} units {lang} {width}px")


# ------------------------------------------------------------------------------------------- the demo's charts
#: Pages that draw charts (the team page once per tab: a stateful tab runs only when it is open).
CHART_PAGES = [
    "views/condition_team.py",
    "views/proms.py",
    "views/compare.py",
    "views/cost_value.py",
]
#: A unit id as the registry writes it: hospital "H01", department "H03/ORT", condition team "hip@H01".
UNIT_ID = re.compile(r"\bH\d{2}\b|@H\d{2}")


def _catalog_ids(lang: str) -> set[str]:
    """Every id of the catalog a chart could show instead of its label: conditions, indicators, outcomes,
    case-mix variables, timepoints, instruments and their scales, cost activities; less those that are also a
    word of the language's own texts (`index`, `total` in "EQ-5D-5L index", "highest total first")."""
    from tests.test_dutch_walk import WORD, _catalog_labels
    from vbhc.i18n import catalog

    cat = default_catalog()
    ids = set(cat.conditions) | set(cat.instruments) | set(cat.cost_activities)
    for instrument in cat.instruments.values():
        ids |= {s.id for s in instrument.scales}
    for c in cat.conditions.values():
        ids |= {i.id for i in c.indicators} | {o.id for o in c.outcomes} | set(c.casemix_names)
        ids |= {tp.id for tp in c.timepoints}
    words = set().union(*(set(WORD.findall(v)) for v in [*catalog(lang).values(), *_catalog_labels(lang)]))
    return {i for i in ids if i not in words}


def _demo_charts(at, pages: list[str]) -> list[tuple[str, dict]]:
    """(page, spec with its datasets inline) of every Vega-Lite chart the pages draw; each spec gets the text of
    the heading drawn last above it as "_heading" (removed before drawing)."""
    from tests.test_dutch_walk import _chart_of

    found = []
    heading = [""]

    def walk(node, page: str) -> None:
        proto = getattr(node, "proto", None)
        kind = getattr(node, "type", "")
        if kind in ("vega_lite_chart", "arrow_vega_lite_chart") and proto is not None:
            spec, datasets = _chart_of(proto)
            spec["datasets"] = {name: json.loads(frame.to_json(orient="records")) for name, frame in datasets.items()}
            found.append((page, {**spec, "_heading": heading[0]}))
        elif kind in ("markdown", "heading", "subheader", "header", "title") and proto is not None:
            body = getattr(proto, "body", "")
            if kind != "markdown" or body.lstrip().startswith("#"):
                heading[0] = body.lstrip("# ").strip()
        for child in getattr(node, "children", {}).values():
            walk(child, page)

    lang = at.query_params.get("lang", "nl")
    for page in pages:
        at.switch_page(page)
        tabs = ("verdicts", "depth", "casemix", "cases") if page.endswith("condition_team.py") else (None,)
        for tab in tabs:
            if tab:
                at.session_state["team_tab"] = t(f"pages.tab_{tab}", lang)
            at.run()
            assert not at.exception, (page, tab, [e.value for e in at.exception])
            walk(at._tree, f"{page} {tab or ''}".strip())
    return found


def _svg_texts(spec: dict) -> list[str]:
    """What a reader sees of a chart: every text Vega draws (titles, facet headers after labelExpr, legend and
    axis labels, text marks), read from its SVG (tooltips are not drawn)."""
    spec = {k: v for k, v in spec.items() if k != "_heading"}
    svg = vlc.vegalite_to_svg(charts.with_width(spec, MAIN_WIDTH) if spec.get("autosize") else spec)
    return [b.text for b in text_boxes(svg)[2]]


@pytest.mark.parametrize(("lang", "level"), [("en", "hospital"), ("nl", "department")])
def test_no_chart_of_the_demo_shows_a_raw_id(small_demo_registry, monkeypatch, local_mode, lang, level):
    """Every chart the pages draw for the demo, in both languages, drawn as Vega draws it: no title, facet
    header, legend, axis title or label and no text mark shows a catalog id (`baseline`, `12m`, `asa`,
    `ward_day`, `mortality_30d`, `colorectal_cancer`) or a unit id (`H01`, `H03/ORT`, `x@H01`): ids are for
    tooltips, addresses and the key columns of exports."""
    from streamlit.testing.v1 import AppTest

    from vbhc.settings import PROJECT_ROOT

    engine, _ = small_demo_registry
    monkeypatch.setenv("VBHC_DATABASE_URL", engine.url.render_as_string(hide_password=False))
    at = AppTest.from_file(str(PROJECT_ROOT / "streamlit_app.py"), default_timeout=180)
    at.query_params["lang"] = lang
    at.session_state["condition"] = "colorectal_cancer"
    at.session_state["level"] = level
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    drawn = _demo_charts(at, CHART_PAGES)
    assert {page.split()[0] for page, _ in drawn} == set(CHART_PAGES), "a page drew no chart"
    ids = _catalog_ids(lang)
    found = []
    titled: set[tuple[str, str]] = set()
    for page, spec in drawn:
        text = _plain(charts.title_lines(spec.get("title") or ""))
        above = _plain(spec["_heading"])
        if text and above and (text in above or above in text):
            found.append(f"{page}: the chart title {text!r} repeats the heading above it {above!r}")
        if text and (page, text) in titled:  # "PROM results" over each PROM: a title that names nothing
            found.append(f"{page}: two charts are titled {text!r}")
        titled.add((page, text))
        for text in _svg_texts(spec):
            tokens = set(re.findall(r"[\w@/-]+", text))
            raw = sorted(tokens & ids) + UNIT_ID.findall(text)
            if raw:
                found.append(f"{page}: {raw} in {text!r}")
    assert not found, "\n".join(sorted(set(found))[:40])


#: The demo's hospital names: the value quadrant names its units by these, far longer than an id.
DEMO_NAMES = [
    OWN_LONG,
    "Heidekamp Medisch Centrum",
    "Kruidenhof Medisch Centrum",
    "Oosterhaven Ziekenhuis",
    "Duinrand Medisch Centrum",
    "Eikenrode Ziekenhuis",
    "Zilverberg Gasthuis",
    "Ziekenhuis Polderwijk",
    "Waterweide Ziekenhuis",
    "Brughaven Ziekenhuisgroep",
]


@pytest.mark.parametrize("count", [3, 10, 30])
@pytest.mark.parametrize("seed", range(4))
def test_value_quadrant_names_by_hospital_name_never_overlap(count, seed):
    """With names as long as the demo's, close together (costs within a few hundred euros), whichever unit is
    the own one: no two names overlap and none leaves the canvas, on the meeting screen and in a column. A name
    without a free spot is not drawn, unless its unit is the own one: then the names it would cover step aside;
    no name lies over a point, so with none free of the points the own unit's is left off and the legend names
    it."""
    units = [*DEMO_NAMES, *(f"Ziekenhuis {i:02d} Regio Midden" for i in range(count))][:count]
    rng = np.random.default_rng(seed)
    frame = value_frame(units).assign(cost=rng.normal(20_000, 600, count), outcome=rng.normal(0.1, 0.01, count))
    spec = charts.value_chart(frame, outcome_label="Sterfte", outcome_kind="proportion", lang="nl")
    for own in {units[0], units[int(frame["cost"].idxmax())], units[int(frame["outcome"].idxmin())]}:
        for width in (MAIN_WIDTH, COLUMN):
            drawn = charts.with_highlight(charts.with_width(spec, width), own)
            check_holds(drawn, units, f"value {count} names seed {seed} own {own!r} {width}px")
            names = scatter(drawn)
            assert own in [text for text, _ in names.names] or own_named_in_legend(names, own, "nl"), (
                f"the own unit {own!r} is not named"
            )
            for text, boxes in names.names:
                assert not (covered := covered_points(text, boxes, names.points)), f"{text!r} covers {covered}"


#: The least room (px, by the estimate) between two neighbouring labels of a horizontal axis: closer, numbers
#: such as "€ 11.000 € 12.000" read as one.
MIN_LABEL_GAP = 4.0
#: An axis label that is a number: 5, 7,5%, € 16.000, €16,000, -0.2 (dates are slanted, their boxes estimated
#: upright would overlap)
NUMBER = re.compile(r"^[€$]?\s?[-−]?[\d.,]+\s?%?$")


def label_gaps(spec: dict) -> list[tuple[float, str, str]]:
    """The room between each two neighbouring number labels of every horizontal axis drawn (those on one line)."""
    lines: dict[int, list[Box]] = {}
    for box in drawing(spec).boxes:
        if box.axis_label and NUMBER.match(box.text.strip()):
            lines.setdefault(round(box.y0), []).append(box)
    gaps = []
    for boxes in lines.values():
        boxes.sort(key=lambda b: b.x0)
        gaps += [(round(b.x0 - a.x1, 1), a.text, b.text) for a, b in itertools.pairwise(boxes)]
    return gaps


def _five_digit_costs(count: int) -> dict[str, Callable[..., charts.Spec]]:
    """The cost charts with costs per care cycle of the demo's size (EUR 11,000-16,000; 25,000 stacked): the
    longest axis numbers, "€ 16.000"."""
    units = unit_names(count)
    value = value_frame(units)
    for column in ("adjusted_value_cost", "adjusted_lower_cost", "adjusted_upper_cost"):
        value[column] += 3500
    breakdown = breakdown_frame(units)
    breakdown["cost_per_cycle"] *= 2.5
    return {
        "cost_5_digits": lambda **kw: charts.cost_breakdown_chart(breakdown, highlight=units[1], **kw),
        "value_5_digits": lambda **kw: charts.value_chart(
            value, outcome_label="30-day mortality", outcome_kind="proportion", highlight=units[1], **kw
        ),
    }


@pytest.mark.parametrize("lang", ["nl", "en"])
def test_axis_labels_keep_room_between_them_on_a_phone(lang):
    """The costs page on a 390 px phone in Dutch drew "€ 11.000 € 12.000 € 13.000 ..." with the labels touching:
    every chart's axis labels keep room between them (Vega leaves every other one out when they would not: the
    config's labelSeparation), for the page's spec stretched to a phone and a chart built for one."""
    cases = {**builders(3), **_five_digit_costs(9)}
    close = []
    for name, build in cases.items():
        wide = build(lang=lang)
        config = wide["config"]["axisQuantitative"]
        assert config["labelOverlap"] and config["labelSeparation"] >= 8, name
        for spec, where in ((charts.with_width(wide, PHONE), "stretched"), (build(lang=lang, width=PHONE), "built")):
            close += [(name, where, gap) for gap in label_gaps(spec) if gap[0] < MIN_LABEL_GAP]
    assert not close, close


# ----------------------------------------------------------------------- the value quadrant's names on a phone


@dataclass(frozen=True)
class Scatter:
    """What a reader sees of a scatter's names: each name drawn (its lines' boxes, in bold wider), the points'
    centres, the dashed benchmark lines, the solid rules (the value quadrant's confidence intervals) and the plot's
    box, all in canvas pixels."""

    names: tuple[tuple[str, tuple[Box, ...]], ...]
    points: tuple[tuple[str, float, float], ...]  # unit, x, y
    rules: tuple[Box, ...]
    plot: Box
    curves: tuple[tuple[float, float, float, float], ...] = ()  # line marks' segments: x0, y0, x1, y1
    intervals: tuple[Box, ...] = ()  # solid rule marks: each 1 px either side of the line
    legend: tuple[str, ...] = ()  # the legends' labels, each label's lines joined by a space

    def across_intervals(self, boxes: tuple[Box, ...]) -> int:
        """How many solid rules (confidence intervals) run through the boxes."""
        return sum(any(b.overlaps(rule) for b in boxes) for rule in self.intervals)

    def crossing(self, boxes: tuple[Box, ...]) -> bool:
        """Whether a line mark runs through any of the boxes inside the plot (each segment looked at every px).

        Why numpy, all segments at once: the same points and answers as a loop over them (2,408 boxes on 8 funnel
        drawings agreed), ~70 times faster (under cProfile the loop took 38.6 s of a module run, this 0.5 s)."""
        if not self.curves or not boxes:
            return False
        x, y = self._curve_points
        inside = (self.plot.x0 <= x) & (x <= self.plot.x1) & (self.plot.y0 <= y) & (y <= self.plot.y1)
        x, y = x[inside], y[inside]
        return any(
            bool(np.any((b.x0 + 0.5 < x) & (x < b.x1 - 0.5) & (b.y0 + 0.5 < y) & (y < b.y1 - 0.5))) for b in boxes
        )

    @functools.cached_property
    def _curve_points(self) -> tuple[np.ndarray, np.ndarray]:
        """The points crossing() looks at: each segment's, every px from its start to its end (made once)."""
        xs, ys = [], []
        for x0, y0, x1, y1 in self.curves:
            f = np.linspace(0, 1, max(2, int(max(abs(x1 - x0), abs(y1 - y0))) + 1))
            xs.append(x0 + f * (x1 - x0))
            ys.append(y0 + f * (y1 - y0))
        return np.concatenate(xs), np.concatenate(ys)


#: scatter's readings by the spec's JSON text (see scatter)
_SCATTERS: dict[str, Scatter] = {}


def scatter(spec: dict) -> Scatter:
    """The spec drawn to SVG by vl-convert once per test process and read as a Scatter, however many tests look
    at it.

    Why: vl-convert draws the very same spec (the same JSON text) the same way, and about one in eight of this
    module's scatter drawings were repeats: a unit's highlight stretched to a width is the same spec as the
    stretched chart highlighted (the benchmark-line test draws only what the crowded-quadrant test drew), and a
    small chart stretched to a phone's width can be the chart built for it (~0.1-0.3 s a drawing)."""
    key = hashlib.sha256(json.dumps(spec).encode()).hexdigest()
    if key not in _SCATTERS:
        _SCATTERS[key] = _scatter(_svg(spec, key))
    return _SCATTERS[key]


def _scatter(svg: str) -> Scatter:
    names, points, rules, domains, curves, intervals, legend = [], [], [], [], [], [], []

    def walk(node: ET.Element, matrix: np.ndarray, role: str) -> None:
        here = _placed(matrix, node.get("transform"))
        role = (node.get("class") or role) if node.tag == f"{SVG}g" else role
        if node.tag == f"{SVG}text" and role.startswith("mark-text role-mark") and not _halo(node):
            size = float((node.get("font-size") or "11").rstrip("px"))
            bold = 1.1 if node.get("font-weight") == "bold" else 1.0  # bold glyphs are wider
            lines = [t.text or "" for t in node.findall(f"{SVG}tspan")] or [node.text or ""]
            anchor = node.get("text-anchor", "start")
            boxes = []
            for i, line in enumerate(lines):
                w = text_width(line, size) * bold
                left = {"start": 0.0, "middle": -w / 2, "end": -w}[anchor]
                x, y = (here @ np.array([left, i * (size + 2) - 0.8 * size, 1]))[:2]
                boxes.append(Box(line, x, y, x + w, y + size))
            names.append((" ".join(lines), tuple(boxes)))
        elif node.tag == f"{SVG}text" and "role-legend-label" in role:
            legend.append(" ".join(t.text or "" for t in node.findall(f"{SVG}tspan")) or node.text or "")
        elif node.tag == f"{SVG}path" and role.startswith("mark-symbol role-mark"):
            # the unit from its tooltip's description (Vega-Lite draws the points by size, not in data order)
            unit = re.search(r"(?:Eenheid|Unit): ([^;]*)", node.get("aria-label") or "")
            points.append((unit.group(1) if unit else "", *(here @ np.array([0, 0, 1]))[:2]))
        elif node.tag == f"{SVG}path" and role.startswith("mark-line role-mark") and node.get("d"):
            # a line mark's path (M x,y L x,y ...): each of its segments, in the page's coordinates
            numbers = [float(v) for v in re.findall(r"-?\d+(?:\.\d+)?(?:e-?\d+)?", node.get("d"))]
            at = [(here @ np.array([x, y, 1]))[:2] for x, y in zip(numbers[::2], numbers[1::2], strict=False)]
            curves.extend((a[0], a[1], b[0], b[1]) for a, b in itertools.pairwise(at))
        elif node.tag == f"{SVG}line" and (role.startswith("mark-rule role-mark") or "axis-domain" in role):
            (x0, y0), (x1, y1) = (
                (here @ np.array([0, 0, 1]))[:2],
                (here @ np.array([float(node.get("x2", 0)), float(node.get("y2", 0)), 1]))[:2],
            )
            box = Box("", min(x0, x1) - 1, min(y0, y1) - 1, max(x0, x1) + 1, max(y0, y1) + 1)
            if "axis-domain" in role:
                domains.append(box)
            elif node.get("stroke-dasharray"):
                rules.append(box)
            else:
                intervals.append(box)
        for child in node:
            walk(child, here, role)

    walk(ET.fromstring(svg), np.eye(3), "")
    xs = [c for b in domains for c in (b.x0, b.x1)]
    ys = [c for b in domains for c in (b.y0, b.y1)]
    plot = Box("plot", min(xs), min(ys), max(xs), max(ys))
    return Scatter(tuple(names), tuple(points), tuple(rules), plot, tuple(curves), tuple(intervals), tuple(legend))


#: A name's halo (charts._halo: an outline 3 px wide) reaches this far beyond its letters, and a point's circle
#: (size 220, the value quadrant's other units) this far from its centre: a name over the circle hides the point.
HALO, POINT_RADIUS = 1.5, 8.0


def covered_points(name: str, boxes: tuple[Box, ...], points: tuple[tuple[str, float, float], ...]) -> set:
    """The other units' points a name's lines (with their halo) lie over."""
    r = HALO + POINT_RADIUS
    return {
        (unit, round(x), round(y))
        for unit, x, y in points
        for b in boxes
        if unit != name and b.overlaps(Box("", x - r, y - r, x + r, y + r), slack=0.0)
    }


def own_named_in_legend(drawn: Scatter, own: str, lang: str) -> bool:
    """Whether the legend's own-unit entry names the unit ("Own unit: ..."), as it must where its name is off."""
    return t("chart.label.own_unit_named", lang, name=own) in drawn.legend


#: Hospital names longer than a phone's plot is wide (in bold), and the demo's.
LONG_NAMES = [
    OWN_LONG,
    "Stichting Samenwerkende Ziekenhuizen Rijn en Vecht, locatie Zuid",
    "Eikenrode Ziekenhuis",
    *DEMO_NAMES[1:],
]


@pytest.mark.parametrize(("count", "seed"), [(3, 0), (6, 1), (10, 2), (10, 3)])  # each case draws count x 6 charts
def test_value_quadrant_names_hold_on_a_phone_and_a_desktop(count, seed):
    """The costs page on a 390 px phone in Dutch drew the own unit's bold "Universitair Medisch Centrum Veenmeer"
    over "Eikenrode Ziekenhuis" and the benchmark line: the names were placed for a 400 px plot, at the wide
    font, and a name wider than the phone's plot had no free spot. Now, with points close together and the
    benchmark through them, whichever unit is the own one, from a phone to the meeting screen: every name drawn
    is whole (broken into lines where it must, never cut), lies inside the plot and overlaps no other name; no
    name but the own unit's covers another unit's point (the own unit's only where the points crowd it)."""
    units = LONG_NAMES[:count]
    rng = np.random.default_rng(seed)
    cost, outcome = rng.normal(20_000, 500, count), rng.normal(0.06, 0.01, count)
    check_value_names(units, cost, outcome, f"{count} units seed {seed}", langs=("nl", "en"))


def check_value_names(units: list[str], cost: np.ndarray, outcome: np.ndarray, case: str, *,
                      targets: tuple[float, float] | None = None, cost_ci: float | np.ndarray = 900,
                      outcome_ci: tuple[float | np.ndarray, float | np.ndarray] = (0.03, 0.03),
                      clear_of_intervals: bool = False, langs: tuple[str, ...] = ("nl",)) -> list[str]:  # fmt: skip
    """Check the value quadrant of `units` at (cost, outcome) as described above, each unit the own one in turn,
    with the benchmark at `targets` (cost, outcome; else the means), in each of `langs`. No name, the own unit's
    included, lies with its halo over another unit's point (the demo's costs page on a phone hid Eikenrode's
    point under the own unit's bold name): a name is drawn only where it is free of them, the own unit's left
    off where no spot is, and then the legend's own-unit entry names it. `clear_of_intervals`: no name crosses a
    confidence interval's rule either (of its own unit or another). `cost_ci`, `outcome_ci`: a number or one per
    unit. Returns the drawings where the own unit's name is left off."""
    frame = value_frame(units).assign(
        adjusted_value_cost=cost,
        adjusted_lower_cost=cost - cost_ci,
        adjusted_upper_cost=cost + cost_ci,
        adjusted_value_outcome=outcome,
        adjusted_lower_outcome=np.maximum(outcome - outcome_ci[0], 0),
        adjusted_upper_outcome=outcome + outcome_ci[1],
    )
    cost_target, outcome_target = targets or (float(np.mean(cost)), float(np.mean(outcome)))
    target = dict(outcome_target=outcome_target, cost_target=cost_target)
    left_off, across = [], []
    drawings = []
    for lang in langs:
        built = charts.value_chart(frame, outcome_label="Mortaliteit binnen 30 dagen", outcome_kind="proportion",
                                   lang=lang, **target)  # fmt: skip
        phone_built = charts.value_chart(frame, outcome_label="Sterfte", outcome_kind="proportion", lang=lang,
                                         width=PHONE, **target)  # fmt: skip
        drawings += [
            *((f"{lang} stretched to {w}px", charts.with_width(built, w))
              for w in (PHONE, 390 - 32, 480, COLUMN, WIDE)),
            (f"{lang} built for {PHONE}px", phone_built),
        ]  # fmt: skip
    for own in units:
        for where, spec in drawings:
            drawn = scatter(charts.with_highlight(spec, own))
            at = f"{case} own {own!r} {where}"
            texts = [text for text, _ in drawn.names]
            lang = where.split()[0]
            if own not in texts:
                assert own_named_in_legend(drawn, own, lang), f"{at}: the own unit's name is left off and the legend "
                f"does not name it: {drawn.legend}"
                left_off.append(at)
            assert all(text in units for text in texts), f"{at}: a name cut short or broken: {texts}"
            plot = drawn.plot
            for _, boxes in drawn.names:
                for box in boxes:
                    inside = plot.x0 - SLACK <= box.x0 and box.x1 <= plot.x1 + SLACK
                    assert inside and plot.y0 - SLACK <= box.y0 and box.y1 <= plot.y1 + SLACK, f"{at}: {box} off {plot}"
            lines = [(text, box) for text, boxes in drawn.names for box in boxes]
            clashes = [
                (a, b) for i, (s, a) in enumerate(lines) for t_, b in lines[i + 1 :] if s != t_ and a.overlaps(b)
            ]
            assert not clashes, f"{at}: names overlap: {clashes[:2]}"
            for text, boxes in drawn.names:
                covered = covered_points(text, boxes, drawn.points)
                assert not covered, f"{at}: {text!r} covers the points {covered}"
                if clear_of_intervals and (crossed := drawn.across_intervals(boxes)):
                    across.append(f"{at}: {text!r} crosses {crossed} interval rule(s)")
    assert not across, f"names across confidence intervals: {across[:4]} ({len(across)} in all)"
    return left_off


@pytest.mark.parametrize(("count", "seed"), [(3, 2), (4, 0), (4, 7)])
def test_value_quadrant_names_keep_clear_of_the_confidence_intervals(count, seed):
    """The costs page (the 4,000-cycle demo, 940 px and a phone) drew unit names across the grey rules of the
    confidence intervals, their own unit's and their neighbours': the placement kept the names clear of the
    points and the benchmark lines but was never given the intervals. Where the points leave room (a few units
    spread over the plot, intervals of ±€1,500 and -2/+5 points), whichever unit is the own one, from a phone to
    the meeting screen, in both languages: no name crosses an interval's rule."""
    names = ["Zilverberg Gasthuis", "Eikenrode Ziekenhuis", "Waterweide Ziekenhuis", "Heidekamp Medisch Centrum"]
    rng = np.random.default_rng(seed)
    cost, outcome = rng.uniform(18_000, 26_000, count), rng.uniform(0.02, 0.14, count)
    check_value_names(
        names[:count], cost, outcome, f"{count} units seed {seed}", targets=(16_000, 0.0), cost_ci=1_500,
        outcome_ci=(0.02, 0.05), clear_of_intervals=True, langs=("nl", "en"),
    )  # fmt: skip


def _text_layers(node: object) -> list[list[dict]]:
    """The `layer` lists of a spec (nested ones too) that hold a text mark."""
    found = []
    if isinstance(node, dict):
        layers = node.get("layer")
        if isinstance(layers, list) and any((lr.get("mark") or {}).get("type") == "text" for lr in layers):
            found.append(layers)
        for value in node.values():
            found += _text_layers(value)
    elif isinstance(node, list):
        for value in node:
            found += _text_layers(value)
    return found


@pytest.mark.parametrize("name", ["value", "funnel", "cusum", "trend"])
def test_a_name_on_a_chart_stops_the_lines_it_crosses(name):
    """Where no spot near its point keeps a name clear of every line (the demo's value quadrant: intervals of
    ±€4,000 make a grid of grey rules no name fits between; CUSUM's alarm limit text where the statistic runs
    through it), the line stops short of its letters: every text mark over the plot (unit names, the alarm
    limit's name, action titles) has its halo, the same text outlined in the background's colour, right beneath
    it."""
    spec = builders(10)[name](lang="nl")
    groups = _text_layers(spec)
    assert groups, f"{name}: no text marks"
    for layers in groups:
        for i, layer in enumerate(layers):
            mark = layer.get("mark") or {}
            if mark.get("type") != "text" or mark.get("stroke") == charts.BACKGROUND:
                continue
            halo = layers[i - 1] if i else {}
            assert (halo.get("mark") or {}).get("stroke") == charts.BACKGROUND, (
                f"{name}: {layer['encoding']} has no halo"
            )
            assert halo["mark"]["color"] == charts.BACKGROUND and halo["mark"]["strokeWidth"] >= 3
            assert halo["encoding"] == {k: v for k, v in layer["encoding"].items() if k != "tooltip"}
            assert halo.get("transform") == layer.get("transform") and halo["data"] == layer["data"]


#: The costs page's value chart in the 4,000-cycle demo (colorectal cancer, 30-day mortality; Dutch, local
#: mode): each hospital's case-mix adjusted cost per care cycle and mortality, and the benchmark's.
DEMO_VALUES = {
    OWN_LONG: (20_004, 0.040),
    "Oosterhaven Ziekenhuis": (20_670, 0.0),
    "Heidekamp Medisch Centrum": (25_348, 0.067),
    "Zilverberg Gasthuis": (22_176, 0.112),
    "Ziekenhuis Polderwijk": (20_166, 0.094),
    "Eikenrode Ziekenhuis": (21_299, 0.058),
    "Duinrand Medisch Centrum": (20_066, 0.034),
    "Brughaven Ziekenhuisgroep": (20_616, 0.0),
    "Waterweide Ziekenhuis": (22_514, 0.024),
    "Kruidenhof Medisch Centrum": (22_671, 0.041),
}


def test_the_demos_value_quadrant_holds_on_a_phone():
    """The defect as a phone showed it: at 390 px the own unit's bold name lay over "Eikenrode Ziekenhuis" and
    the dotted benchmark line. Every name whole, inside the plot, over no other name or point, and the own unit's
    name (whichever unit it is) clear of the points on the page (its spec stretched)."""
    units = list(DEMO_VALUES)
    cost, outcome = (np.array(column, dtype=float) for column in zip(*DEMO_VALUES.values(), strict=True))
    check_value_names(units, cost, outcome, "demo", targets=(21_400, 0.045))


#: The costs page's value chart of the 4,000-cycle demo (colorectal cancer, 30-day mortality) as a phone drew it
#: (after-value-mortality_30d-en-phone-built.png): each hospital's adjusted cost with its 95% interval and
#: mortality with its interval; benchmark €21,510 and 4.68%.
DEMO_COSTS_PAGE = {
    OWN_LONG: (20_004, 18_160, 21_848, 0.0400, 0.0155, 0.0991),
    "Oosterhaven Ziekenhuis": (20_670, 18_286, 23_054, 0.0, 0.0, 0.0513),
    "Heidekamp Medisch Centrum": (25_348, 22_135, 28_562, 0.0667, 0.0232, 0.1770),
    "Zilverberg Gasthuis": (22_176, 18_645, 25_707, 0.1123, 0.0473, 0.2437),
    "Ziekenhuis Polderwijk": (20_166, 16_577, 23_755, 0.0942, 0.0346, 0.2321),
    "Eikenrode Ziekenhuis": (21_299, 17_574, 25_024, 0.0579, 0.0164, 0.1847),
    "Duinrand Medisch Centrum": (20_066, 17_814, 22_319, 0.0344, 0.0086, 0.1279),
    "Brughaven Ziekenhuisgroep": (20_616, 16_300, 24_932, 0.0, 0.0, 0.1431),
    "Waterweide Ziekenhuis": (22_514, 18_544, 26_483, 0.0240, 0.0036, 0.1437),
    "Kruidenhof Medisch Centrum": (22_671, 20_596, 24_746, 0.0410, 0.0163, 0.0994),
}


def test_no_name_on_the_demos_costs_page_hides_a_point():
    """A 358 px phone, the 4,000-cycle demo's costs page: "Universitair Medisch Centrum Veenmeer" in bold, with
    its white halo, lay over Eikenrode Ziekenhuis' point and hid it entirely: with no spot next to its point free
    of the others, the placement took the one over the fewest points. Now a name never lies over a point: the
    own unit's is left off where no spot is free, and the legend's entry then reads "Own unit: <name>". Whichever
    unit is the own one, from a phone to the meeting screen, in both languages."""
    units = list(DEMO_COSTS_PAGE)
    cost, low, high, outcome, lower, upper = (
        np.array(c, dtype=float) for c in zip(*DEMO_COSTS_PAGE.values(), strict=True)
    )
    left_off = check_value_names(
        units, cost, outcome, "costs page", targets=(21_510, 0.0468), cost_ci=(high - low) / 2,
        outcome_ci=(outcome - lower, upper - outcome), langs=("en", "nl"),
    )  # fmt: skip
    assert any(f"own {OWN_LONG!r}" in at and "358px" in at for at in left_off), left_off


#: The costs page's value chart as the last screenshots showed it (the demo after its generator changed): each
#: hospital's adjusted cost and mortality, with intervals as wide as the demo's (±€4,000; mortality up to +14
#: points), which spread the cost axis over €18,000-€28,000 and put the points close together.
DEMO_VALUES_WIDE = {
    OWN_LONG: (21_983, 0.029),
    "Oosterhaven Ziekenhuis": (21_850, 0.026),
    "Heidekamp Medisch Centrum": (24_997, 0.038),
    "Zilverberg Gasthuis": (22_431, 0.0),
    "Ziekenhuis Polderwijk": (23_559, 0.0),
    "Eikenrode Ziekenhuis": (23_859, 0.020),
    "Duinrand Medisch Centrum": (22_387, 0.054),
    "Brughaven Ziekenhuisgroep": (22_935, 0.0),
    "Waterweide Ziekenhuis": (22_333, 0.041),
    "Kruidenhof Medisch Centrum": (21_555, 0.017),
}


def test_the_own_units_name_on_a_crowded_value_quadrant_covers_no_point_on_a_phone():
    """The last screenshots, 390 px phone, Dutch: "Universitair Medisch Centrum Veenmeer" lay over Eikenrode's
    point. Its names were placed for a 250 px plot, 50 px narrower than the phone's own, where every spot next to
    the own point covered another point. Placed for the plot of a 360 px phone, no name covers a point there or
    on any wider screen, whichever unit is the own one."""
    units = list(DEMO_VALUES_WIDE)
    cost, outcome = (np.array(column, dtype=float) for column in zip(*DEMO_VALUES_WIDE.values(), strict=True))
    check_value_names(units, cost, outcome, "demo", targets=(22_618, 0.024), cost_ci=4_000, outcome_ci=(0.03, 0.14))


def test_no_other_units_name_on_the_value_quadrant_lies_across_a_benchmark_line():
    """The costs page on a 390 px phone, Dutch (cost_value-nl-390x844.png): "Eikenrode Ziekenhuis" lay across the
    dotted benchmark line. Where no spot clear of the points was clear of the lines too, another unit's name took
    the spot across the fewest lines; now it is left to the tooltip (the own unit's name is always drawn).
    Whichever unit is the own one, on a phone, in a column and on the page, no other unit's name crosses a line."""
    units = list(DEMO_VALUES_WIDE)
    cost, outcome = (np.array(column, dtype=float) for column in zip(*DEMO_VALUES_WIDE.values(), strict=True))
    frame = value_frame(units).assign(
        adjusted_value_cost=cost,
        adjusted_lower_cost=cost - 4_000,
        adjusted_upper_cost=cost + 4_000,
        adjusted_value_outcome=outcome,
        adjusted_lower_outcome=np.maximum(outcome - 0.03, 0),
        adjusted_upper_outcome=outcome + 0.14,
    )
    built = charts.value_chart(
        frame, outcome_label="Mortaliteit binnen 30 dagen", outcome_kind="proportion", lang="nl",
        outcome_target=0.024, cost_target=22_618,
    )  # fmt: skip
    across = []
    for own in units:
        for width in (PHONE, 390 - 32, COLUMN, WIDE):
            drawn = scatter(charts.with_width(charts.with_highlight(built, own), width))
            across += [
                (own, width, name)
                for name, boxes in drawn.names
                if name != own and any(b.overlaps(rule) for b in boxes for rule in drawn.rules)
            ]
    assert not across, f"another unit's name lies across a benchmark line: {across}"


#: The funnel of the 4,000-cycle demo's colorectal cancer 30-day mortality as the screenshots showed it (hospital:
#: care cycles, case-mix adjusted mortality; benchmark 2.4%).
DEMO_FUNNEL = {
    "Kruidenhof Medisch Centrum": (94, 0.017),
    "Oosterhaven Ziekenhuis": (79, 0.026),
    OWN_LONG: (78, 0.029),
    "Heidekamp Medisch Centrum": (55, 0.038),
    "Duinrand Medisch Centrum": (50, 0.054),
    "Eikenrode Ziekenhuis": (46, 0.020),
    "Zilverberg Gasthuis": (42, 0.0),
    "Ziekenhuis Polderwijk": (37, 0.0),
    "Waterweide Ziekenhuis": (29, 0.041),
    "Brughaven Ziekenhuisgroep": (19, 0.0),
}


@pytest.mark.parametrize("lang", ["nl", "en"])
def test_the_own_units_name_on_the_funnel_covers_no_other_units_point(lang):
    """A phone (and the PDF report) drew "Universitair Medisch Centrum Veenmeer" centred above its point, over
    Heidekamp's dot beside it: the name was placed without looking at the other points. Now, whichever unit is the
    own one, on a phone, in a column and on the meeting screen, its name is whole, inside the plot, over no
    other unit's point and not across a control limit (Duinrand's lay across the 95% limit)."""
    units = list(DEMO_FUNNEL)
    n, value = (np.array(column, dtype=float) for column in zip(*DEMO_FUNNEL.values(), strict=True))
    rows = indicator_rows(units).assign(n=n, precision=n, adjusted_value=value, target=0.024)
    built = charts.funnel_chart(rows, funnel_curve(0.024), lang=lang)
    for own in units:
        for width in (PHONE, COLUMN, WIDE):
            drawn = scatter(charts.with_width(charts.with_highlight(built, own), width))
            at = f"own {own!r} at {width}px"
            assert [text for text, _ in drawn.names] == [own], f"{at}: {drawn.names}"
            (_, boxes), plot = drawn.names[0], drawn.plot
            for box in boxes:
                assert plot.x0 - SLACK <= box.x0 and box.x1 <= plot.x1 + SLACK, f"{at}: {box} off {plot}"
                assert plot.y0 - SLACK <= box.y0 and box.y1 <= plot.y1 + SLACK, f"{at}: {box} off {plot}"
            covered = [
                (unit, round(x), round(y))
                for unit, x, y in drawn.points
                if unit != own and any(b.overlaps(Box("", x - 5, y - 5, x + 5, y + 5)) for b in boxes)
            ]
            assert not covered, f"{at}: the name covers {covered}"
            # nor across a control limit (the PDF's and the team page's name lay across the 95% limit)
            assert not drawn.crossing(boxes), f"{at}: the name lies across a control limit"


#: The same funnel as the last screenshots drew it (1440 px, Dutch): the own unit at 75 care cycles, a neighbour
#: just right of it, the team goal at 2.5% just above the 2.4% benchmark.
SHOT_FUNNEL = {
    "Kruidenhof Medisch Centrum": (86, 0.017),
    "Oosterhaven Ziekenhuis": (76, 0.026),
    OWN_LONG: (75, 0.029),
    "Heidekamp Medisch Centrum": (54, 0.038),
    "Duinrand Medisch Centrum": (47, 0.055),
    "Eikenrode Ziekenhuis": (44, 0.020),
    "Zilverberg Gasthuis": (39, 0.0),
    "Ziekenhuis Polderwijk": (37, 0.0),
    "Waterweide Ziekenhuis": (29, 0.041),
    "Brughaven Ziekenhuisgroep": (18, 0.0),
}


def test_the_own_units_name_on_the_funnel_keeps_clear_of_the_team_goal_and_the_limits():
    """The last screenshots: with the team goal drawn at 2.5%, "Universitair Medisch Centrum Veenmeer" lay
    across a line (the goal's line was not one the name kept clear of, and where no spot was clear of every
    line the first spot free of points was taken, however many lines it crossed). Now, whichever unit is the
    own one, at a phone's, a column's and the page's width, its name crosses no control limit, no benchmark
    line and no team-goal line."""
    from vbhc.models import ImprovementTarget

    units = list(SHOT_FUNNEL)
    n, value = (np.array(column, dtype=float) for column in zip(*SHOT_FUNNEL.values(), strict=True))
    rows = indicator_rows(units).assign(n=n, precision=n, adjusted_value=value, target=0.024)
    goal = ImprovementTarget(
        condition="colorectal_cancer", indicator="mortality_30d", kind="team_goal", value=0.025,
        direction="at_most", valid_from=pd.Timestamp("2024-01-01").date(),
    )  # fmt: skip
    built = charts.funnel_chart(rows, funnel_curve(0.024), lang="nl", targets=[goal])
    across = []
    for own in units:
        for width in (PHONE, COLUMN, WIDE):
            drawn = scatter(charts.with_width(charts.with_highlight(built, own), width))
            (_, boxes) = drawn.names[0]
            on_rule = any(b.overlaps(rule) for b in boxes for rule in drawn.rules if rule.y1 - rule.y0 < 4)
            if on_rule or drawn.crossing(boxes):
                across.append((own, width))
    assert not across, f"the own unit's name lies across a line: {across}"


#: The PDF report's funnel of the default (50,000-cycle) demo's colorectal cancer 30-day mortality (hospital: care
#: cycles in the model, case-mix adjusted mortality; benchmark 2.79%), the own hospital at 1,027 care cycles.
PDF_FUNNEL = {
    OWN_LONG: (1027, 0.029973),
    "Oosterhaven Ziekenhuis": (892, 0.035824),
    "Heidekamp Medisch Centrum": (691, 0.033914),
    "Zilverberg Gasthuis": (513, 0.027664),
    "Ziekenhuis Polderwijk": (386, 0.017955),
    "Eikenrode Ziekenhuis": (547, 0.029219),
    "Duinrand Medisch Centrum": (660, 0.027034),
    "Brughaven Ziekenhuisgroep": (312, 0.025602),
    "Waterweide Ziekenhuis": (460, 0.021492),
    "Kruidenhof Medisch Centrum": (1179, 0.021925),
}


def test_the_pdf_reports_funnel_places_the_own_name_for_the_width_it_is_drawn():
    """The PDF report (report_page_3.png) drew "Universitair Medisch Centrum Veenmeer" across the dotted
    benchmark line of its 940 px funnel, with room to spare beside it: the names were placed only for the
    narrowest container narrower than built (a 361 px plot), where no spot was clear of the points and lines.
    A chart drawn as wide as built (the PDF, the page at 1440 px) takes names placed for its own plot: whichever
    unit is the own one, its name crosses no line and covers no other unit's point there."""
    units = list(PDF_FUNNEL)
    n, value = (np.array(column, dtype=float) for column in zip(*PDF_FUNNEL.values(), strict=True))
    rows = indicator_rows(units).assign(
        n=n, precision=n, adjusted_value=value, target=0.027899, dispersion_method="none", phi=0.63, tau2=0.0,
        limit_sd=np.nan,
    )  # fmt: skip
    built = charts.funnel_chart(rows, funnel_limits(rows), lang="en")  # as the PDF builds it: DEFAULT_WIDTH
    assert built["width"] == charts.DEFAULT_WIDTH
    across = []
    for own in units:
        drawn = scatter(charts.with_highlight(built, own))
        (_, boxes) = drawn.names[0]
        on_rule = any(b.overlaps(rule) for b in boxes for rule in drawn.rules if rule.y1 - rule.y0 < 4)
        covered = [
            unit
            for unit, x, y in drawn.points
            if unit != own and any(b.overlaps(Box("", x - 5, y - 5, x + 5, y + 5)) for b in boxes)
        ]
        if on_rule or drawn.crossing(boxes) or covered:
            across.append((own, on_rule, covered))
    assert not across, f"the own unit's name lies across a line or a point: {across}"


def _legend_values(spec: dict, channel: str) -> list[list[str]]:
    """The values each legend of `channel` (color, shape) lists in a chart's layers."""
    found = []

    def walk(node):
        if isinstance(node, dict):
            enc = node.get("encoding") or {}
            legend = enc.get(channel, {}).get("legend") if isinstance(enc.get(channel), dict) else None
            if legend:
                found.append(list(legend.get("values") or enc[channel].get("scale", {}).get("domain") or []))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(spec)
    return found


@pytest.mark.parametrize("lang", ["nl", "en"])
def test_every_compare_panel_explains_its_own_colours(lang):
    """The compare page's panels (one chart per indicator): the legend lay under the first panel only and listed
    that panel's assessments, so a reader at the fifth panel could not tell what its colours meant and a colour
    absent from the first ("worse") was explained nowhere. Now each panel is readable on its own: its legend
    lists the assessments it draws, and the own unit's mark. The page shows the panels without theirs, under one
    legend of them all (test_app.test_compare_page_explains_its_panels_colours_once); a panel's PNG keeps it."""
    from vbhc.charts import ASSESSMENT_LABELS
    from vbhc.settings import PROJECT_ROOT

    units = unit_names(7)
    first = indicator_rows(units, "mortality_30d").assign(assessment_998="as expected")
    first.loc[0, "assessment_998"] = "better"
    fifth = indicator_rows(units, "los", "mean").assign(assessment_998="worse")
    fifth.loc[1, "assessment_998"] = "as expected"
    for rows in (first, fifth):
        spec = charts.indicator_panel(rows, lang=lang, highlight=units[0])
        present = {ASSESSMENT_LABELS[lang][a] for a in rows["assessment_998"]}
        colours = _legend_values(spec, "color")
        assert len(colours) == 1 and set(colours[0]) == present, (colours, present)
        shapes = _legend_values(spec, "shape")
        assert shapes == [[charts.label("own_unit", lang), charts.label("other_units", lang)]], shapes
        check_holds(spec, units, f"panel {lang}")
    page = (PROJECT_ROOT / "views" / "compare.py").read_text("utf-8")
    assert "charts.indicator_panel(" in page and "small_multiples_chart(" not in page


def _axis_labels(spec: dict) -> list[str]:
    """The tick labels Vega draws on a chart's axes (hidden ones left out), read from its SVG."""
    return [b.text for b in text_boxes(vlc.vegalite_to_svg(spec))[2] if b.axis_label]


@pytest.mark.parametrize("lang", ["nl", "en"])
@pytest.mark.parametrize("counts", [[75], [74, 76]])
def test_a_count_axis_never_repeats_a_tick_label(lang, counts):
    """The PDF's funnel plot, drawn with the own unit alone (the file rule withheld the others), had an x axis
    of nine ticks each labelled "75": its domain ran from 74.6 to 75.4, ticks 0.1 apart, and the care cycles are
    written without decimals. An axis of whole numbers now takes ticks at least 1 apart, so no tick label of a
    chart repeats another on its axis; the same for whole euros and whole percents."""
    units = unit_names(len(counts))
    n = np.array(counts, dtype=float)
    rows = indicator_rows(units).assign(n=n, precision=n, adjusted_value=0.029, target=0.024)
    funnel = charts.funnel_chart(rows, funnel_curve(0.024), lang=lang, highlight=units[0])
    labels = _axis_labels(charts.with_width(funnel, MAIN_WIDTH))
    counted = [text for text in labels if "%" not in text]
    assert counted and len(counted) == len(set(counted)), counted
    cost = indicator_rows(units, "los", "mean").assign(kind="cost", adjusted_value=21983.0 + np.arange(len(units)))
    cost = cost.assign(adjusted_lower=cost["adjusted_value"] - 0.4, adjusted_upper=cost["adjusted_value"] + 0.4)
    cost = cost.assign(target=21983.2)
    for spec in (charts.indicator_panel(cost, lang=lang),):
        euros = [text for text in _axis_labels(spec) if "€" in text]
        assert euros and len(euros) == len(set(euros)), euros
