"""Attempt every suppressed cell: an attacker who knows the exact totals of every indicator (the full-precision
benchmark gives them) reads what a file or page shows and tries to work each withheld n / observed back
(difference of totals, rate x n, n shared across indicators). No cell may be pinned to one value. And a
manager's view never isolates or links another unit."""

from __future__ import annotations

import io
import math

import numpy as np
import pandas as pd
import pytest
from openpyxl import load_workbook

from tests.pdf_charts import blank_pdf_charts
from vbhc.access import OTHER_UNIT, PublishedGroup, Role, Scope, Viewer, indicator_rows
from vbhc.disclosure import MIN_OTHER_UNITS, feasible_interval, n_band_bounds
from vbhc.reports import SuppressionRule, build_workbook, compute_results
from vbhc.reports.excel import HEADER_ROW

CONDITIONS = ["colorectal_cancer", "hip_osteoarthritis"]
SHEETS = {"colorectal_cancer": "Colorectal cancer", "hip_osteoarthritis": "Hip osteoarthritis"}
COUNT_KINDS = ("proportion", "prom_mic", "response_rate")


@pytest.fixture(scope="module")
def results(small_demo_registry):
    engine, _ = small_demo_registry
    return {
        level: compute_results(CONDITIONS, None, level, engine=engine) for level in ("hospital", "department")
    }, engine


@pytest.fixture(scope="module")
def threshold(results):
    """High enough to withhold about one cell in five of the demo, so the attack has work."""
    by_level, _ = results
    return int(pd.concat([r.table["n"] for r in by_level["hospital"]]).quantile(0.2)) + 1


def _attack(truth: pd.DataFrame, view: pd.DataFrame, threshold: int) -> list[str]:
    """Cells of `view` (unit, indicator, n, observed: NaN where withheld; n_band for a banded unit) that an
    attacker can determine uniquely. `truth` is the full table (the attacker gets its exact totals).

    Reads the few columns it uses as arrays, `truth` grouped once: a boolean selection of the wide tables per
    indicator, a row of them per withheld cell and a scan of every shown cell per withheld cell were most of the
    time of the privacy modules' attacks."""
    found = []
    shown_n = {}  # (unit, indicator) -> n shown exactly: for "n shared across indicators"
    for unit, indicator, n in zip(view["unit"], view["indicator"], view["n"], strict=True):
        if pd.notna(n):
            shown_n[(str(unit), indicator)] = float(n)
    shown_by_unit: dict[str, dict[object, float]] = {}  # unit -> indicator -> n shown exactly
    for (unit, indicator), n in shown_n.items():
        shown_by_unit.setdefault(unit, {})[indicator] = n
    used = [c for c in ("condition", "indicator", "unit", "n", "observed", "n_band", "crude_value") if c in view]
    columns = [c for c in ("condition", "indicator", "unit", "n", "observed", "target", "kind") if c in truth]
    fulls = dict(tuple(truth[columns].groupby(["condition", "indicator"], sort=False, observed=True)))
    for (condition, indicator), rows in view[used].groupby(["condition", "indicator"], sort=False, observed=True):
        full = fulls.get((condition, indicator))
        if full is None or full.empty or not np.isfinite(pd.to_numeric(full["target"], errors="coerce")).any():
            continue  # no benchmark in this group: no total to difference from
        kind = str(full["kind"].iloc[0])
        total_n = float(full["n"].sum())
        total_o = float(pd.to_numeric(full["observed"], errors="coerce").fillna(0).sum())
        withheld = rows["n"].isna().to_numpy()
        known = rows[~withheld]
        hidden = rows[withheld]
        if hidden.empty:
            continue
        lows, highs, labels, secret_n = [], [], [], []
        first_n: dict[str, object] = {}  # each unit's first row's n (a dictionary: a boolean mask per cell was slow)
        for unit, n in zip(full["unit"].astype(str), full["n"], strict=True):
            first_n.setdefault(unit, n)
        bands = hidden["n_band"].tolist() if "n_band" in hidden else [None] * len(hidden)
        for unit, band in zip(hidden["unit"].tolist(), bands, strict=True):
            unit = str(unit)
            true_n = float(first_n[unit]) if unit in first_n else math.nan
            if isinstance(band, str) and band:
                lo, hi = n_band_bounds(band)
            elif true_n < threshold:
                lo, hi = 0.0, threshold - 1.0
            else:
                lo, hi = float(threshold), math.inf
            # n shared across indicators: the same unit shows this very n elsewhere
            elsewhere = [v for i, v in shown_by_unit.get(unit, {}).items() if i != indicator]
            if np.isfinite(true_n) and true_n >= threshold and true_n in elsewhere:
                lo = hi = true_n
            lows.append(lo)
            highs.append(hi)
            labels.append(f"{condition}/{indicator}/{unit}")
            secret_n.append(true_n)
        lows, highs = np.array(lows), np.array(highs)
        rest_n = total_n - float(known["n"].sum())
        rest_o = total_o - float(pd.to_numeric(known["observed"], errors="coerce").fillna(0).sum())
        rates = hidden["crude_value"].tolist() if "crude_value" in hidden else [math.nan] * len(hidden)
        for i, label in enumerate(labels):
            low, high = feasible_interval(rest_n, lows, highs, i)
            if high - low < 1:
                found.append(f"n of {label} = {low:g}")
            if kind in COUNT_KINDS:
                o_low, o_high = feasible_interval(rest_o, np.zeros(len(labels)), highs, i)
                if o_high - o_low < 1:
                    found.append(f"observed of {label} = {o_low:g}")
            rate = rates[i]
            if kind in COUNT_KINDS and pd.notna(rate) and high - low < 1:
                found.append(f"observed of {label} = rate x n")  # rate shown, n known
    return found


def _workbook_view(content: bytes, truth: pd.DataFrame, marker: str) -> pd.DataFrame:
    """The indicator sheets read back with openpyxl: withheld cells (marker) become NaN."""
    # read_only: each sheet's values as they are parsed, the same values a full load gives without building every
    # cell's style first (two thirds of a read)
    wb = load_workbook(io.BytesIO(content), read_only=True)
    frames = []
    for condition, sheet in SHEETS.items():
        values = wb[sheet].iter_rows(min_row=HEADER_ROW, values_only=True)
        col = {h: i for i, h in enumerate(next(values))}
        labels = truth.drop_duplicates("label_en").set_index("label_en")["indicator"]
        for cells in values:
            if cells[0] is None:
                break

            def number(name, cells=cells, col=col):
                value = cells[col[name]]
                return math.nan if value in (None, marker) else float(value)

            frames.append(
                {
                    "condition": condition,
                    "indicator": labels[cells[col["Indicator"]]],
                    "unit": cells[col["Unit"]],
                    "n": number("Care cycles"),
                    "observed": number("Observed"),
                    "crude_value": number("Crude"),
                }
            )
    wb.close()
    return pd.DataFrame(frames)


def _truth(results_list) -> pd.DataFrame:
    return pd.concat([r.table for r in results_list], ignore_index=True)


def test_attempt_every_suppressed_cell_in_the_workbook(results, threshold, monkeypatch):
    by_level, _ = results
    for level in ("hospital", "department"):
        res = by_level[level]
        truth = _truth(res)
        content = build_workbook(res, lang="en", suppress_below=threshold)
        view = _workbook_view(content, truth, SuppressionRule(threshold).marker("en"))
        assert view["n"].isna().sum() > 20  # the attack has cells to try
        found = _attack(truth, view, threshold)
        assert not found, found[:10]


def test_attempt_every_suppressed_cell_in_the_pdf_tables(results, threshold, tmp_path, monkeypatch):
    """The PDF shows the team's own unit; what it is built from must be as safe as the workbook, and the
    same cells as the workbook (two files of the same data with different withheld cells could be combined).
    Both are made as `vbhc report` makes them (make_report, which the pages' buttons follow), over the grid of all
    dates and every year, in an installation whose own hospital is H01. The PDF took its secondary cells from
    other hospitals than its own while the workbook did not: the two withheld different cells (H01's hip cells
    of all dates, n=124, shown in the PDF and withheld in the workbook)."""
    from vbhc.reports import pdf
    from vbhc.reports.core import unit_names_for
    from vbhc.reports.run import make_report, own_hospital

    by_level, engine = results
    res = by_level["hospital"]
    assert own_hospital(engine) == "H01"
    truth = _truth(res)
    tables = []

    class Recorded(pdf._Section):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            tables.append(self.table)

    monkeypatch.setattr(pdf, "_Section", Recorded)
    drawn = blank_pdf_charts(monkeypatch)
    common = {"conditions": CONDITIONS, "lang": "en", "engine": engine, "suppress_below": threshold}
    make_report(tmp_path / "r.pdf", fmt="pdf", external=False, **common)
    assert drawn  # the PDF still places its charts (their pictures are not what this test reads)
    pdf_view = pd.concat(tables, ignore_index=True)
    found = _attack(truth, pdf_view, threshold)
    assert not found, found[:10]
    make_report(tmp_path / "r.xlsx", fmt="xlsx", external=False, **common)
    book = _workbook_view((tmp_path / "r.xlsx").read_bytes(), truth, SuppressionRule(threshold).marker("en"))
    names = unit_names_for(res, "en", engine)  # the workbook's sheets name the units
    pdf_view = pdf_view.assign(unit=pdf_view["unit"].map(lambda u: names.get(u, u)))
    merged = book.merge(
        pdf_view[["condition", "indicator", "unit", "n"]],
        on=["condition", "indicator", "unit"],
        suffixes=("_xlsx", "_pdf"),
    )
    assert len(merged) == len(book)
    differ = merged[merged["n_xlsx"].isna() != merged["n_pdf"].isna()]
    assert differ.empty, differ[["condition", "indicator", "unit", "n_xlsx", "n_pdf"]].head(10).to_string()


def _viewers():
    return {
        "care_team": Viewer("zorg@example.org", "", (Scope(Role.CARE_TEAM, frozenset(CONDITIONS)),)),
        "care_team_H01": Viewer(
            "zorg@example.org", "", (Scope(Role.CARE_TEAM, frozenset(CONDITIONS), frozenset({"H01"})),)
        ),
        "quality": Viewer("q@example.org", "", (Scope(Role.QUALITY),)),
        "manager": Viewer("m@example.org", "", (Scope(Role.MANAGER, hospitals=frozenset({"H01"})),)),
    }


def test_attempt_every_suppressed_cell_on_the_pages(results, threshold, monkeypatch):
    """What vbhc.access.indicator_rows gives each role (the pages show nothing else)."""
    monkeypatch.setenv("VBHC_SUPPRESS_BELOW", str(threshold))
    by_level, engine = results
    for level in ("hospital", "department"):
        truth = _truth(by_level[level])
        for role, viewer in _viewers().items():
            shown = pd.concat(
                [indicator_rows(viewer, r.table, engine=engine, record_view=False) for r in by_level[level]],
                ignore_index=True,
            )
            if role == "care_team_H01":
                assert shown["suppressed"].any()  # other hospitals' small cells are withheld
            found = _attack(truth, shown, threshold)
            assert not found, (role, level, found[:10])


def test_a_managers_other_units_are_never_isolated_or_linked(results, monkeypatch):
    monkeypatch.setenv("VBHC_SUPPRESS_BELOW", "10")
    from vbhc.indicators import compute_indicators, load_condition_data, restrict

    by_level, engine = results
    boss = _viewers()["manager"]
    result = by_level["hospital"][0]
    shown = indicator_rows(boss, result.table, engine=engine, record_view=False)
    others = shown[shown["anonymised"]]
    assert len(others) and set(others["hospital"]) == {""}
    # no exact count, nothing that gives it back; n in bands
    for col in ("n", "observed", "expected", "crude_value", "precision", "adjusted_lower", "lower_95"):
        assert others[col].isna().all(), col
    assert others["n_band"].str.len().gt(0).all()
    # numbered per indicator by value: the same number is not the same unit in two indicators
    truth = result.table
    same = 0
    for indicator, rows in others.groupby("indicator"):
        mine = truth[(truth["indicator"] == indicator) & (truth["hospital"] != "H01")]
        assert len(rows) == len(mine) and not rows["unit"].duplicated().any()
        same += 1
    assert same > 3
    ranks = {
        ind: list(rows.sort_values("unit", key=lambda s: s.str.split().str[-1].astype(int))["adjusted_value"])
        for ind, rows in others.groupby("indicator")
    }
    for values in ranks.values():
        finite = [v for v in values if pd.notna(v)]
        assert finite == sorted(finite)  # the number is the rank of the value, nothing else
    # a comparison group of one other hospital is refused
    data = restrict(load_condition_data(result.condition, engine=engine), None, ["H01", "H05"])
    small = compute_indicators(data, "hospital").table
    seen = indicator_rows(boss, small, engine=engine, record_view=False)
    assert not seen["anonymised"].any() and seen["target"].isna().all()
    assert not any(str(u).startswith(OTHER_UNIT) for u in seen["unit"])


def test_comparison_group_too_small_falls_back(results):
    from vbhc.access import comparison_group
    from vbhc.registry import condition_units, units

    _, engine = results
    boss = _viewers()["manager"]
    teams = condition_units("colorectal_cancer", engine=engine)
    all_units = units(engine=engine)
    assert comparison_group(boss, "colorectal_cancer", "hospital", ["H01", "H05"], teams, all_units) == ((), True)
    # every hospital: nothing outside the group (a group with fewer than MIN_OTHER_UNITS hospitals outside it is
    # refused: test_a_group_whose_complement_is_small_is_refused)
    hospitals = sorted(set(teams["hospital"]))
    assert comparison_group(boss, "colorectal_cancer", "hospital", hospitals, teams, all_units) == (
        tuple(hospitals),
        False,
    )
    quality = _viewers()["quality"]
    assert comparison_group(quality, "colorectal_cancer", "hospital", ["H05"], teams, all_units) == (("H05",), False)


def test_a_comparison_group_of_one_other_hospitals_departments_is_refused():
    """A manager of H01 at department level picked peers=H02, a hospital treating the condition in five
    departments: five other units, so the group was accepted, and its benchmark was H02's own figure plus the
    manager's (H02 singled out by name). A group needs its other units from MIN_OTHER_UNITS hospitals, at every
    level; a quality viewer, who sees every unit, keeps any group."""
    from vbhc.access import comparison_group

    departments = ["SUR", "GAS", "ONC", "INT", "RAD"]
    rows = [("H01", "SUR")] + [("H02", d) for d in departments]
    # five more hospitals outside every group below: its complement passes the rule too
    rows += [(f"H{i:02d}", "SUR") for i in range(3, 3 + 2 * MIN_OTHER_UNITS)]
    teams = pd.DataFrame(rows, columns=["hospital", "department"])
    boss = _viewers()["manager"]
    for level in ("department", "condition_team", "hospital"):
        assert comparison_group(boss, "colorectal_cancer", level, ["H01", "H02"], teams, None) == ((), True)
    others = [f"H{i:02d}" for i in range(2, 2 + MIN_OTHER_UNITS)]
    group = tuple(sorted(["H01", *others]))
    published = (PublishedGroup("five", frozenset(group)),)  # a manager picks published groups only
    assert comparison_group(boss, "colorectal_cancer", "department", list(group), teams, None, published) == (
        group,
        False,
    )
    quality = _viewers()["quality"]
    assert comparison_group(quality, "colorectal_cancer", "department", ["H02"], teams, None) == (("H02",), False)


def test_a_group_whose_complement_is_small_is_refused(results):
    """A manager sees a group's benchmark exactly (the pooled rate, whose denominator is the group's n) and the
    registry's: the registry's minus the group's is the units outside the group. On the 2,000-cycle demo a manager
    of H01 read colorectal 12-month EQ-5D improvement of 17/53 in H01-H06 and 19/61 in H01-H07, so H07's 2 of 8
    patients by name; a group of every hospital but one gave that one's cells. Such a group is refused (the
    registry instead), as the PROM histogram's panel is withheld (vbhc.disclosure.comparison_group_withheld);
    a group with at least MIN_OTHER_UNITS units from as many hospitals outside it is kept, at every level."""
    from vbhc.access import GROUP_COMPLEMENT, GROUP_TOO_SMALL, comparison_group, comparison_group_refusal
    from vbhc.registry import condition_units, units

    _, engine = results
    boss = _viewers()["manager"]
    teams = condition_units("colorectal_cancer", engine=engine)
    all_units = units(engine=engine)
    hospitals = sorted(set(teams["hospital"]))
    for group in (hospitals[:6], hospitals[:7], hospitals[:-1]):  # H01-H06, H01-H07, all but one: allowed before
        for level in ("hospital", "department"):
            assert comparison_group(boss, "colorectal_cancer", level, group, teams, all_units) == ((), True)
            refusal = comparison_group_refusal(boss, "colorectal_cancer", level, group, teams, all_units)
            assert refusal == GROUP_COMPLEMENT
    assert comparison_group_refusal(boss, "colorectal_cancer", "hospital", ["H01", "H02"], teams, all_units) == (
        GROUP_TOO_SMALL
    )
    # quality sees every unit: keeps any group
    quality = _viewers()["quality"]
    assert comparison_group(quality, "colorectal_cancer", "hospital", hospitals[:-1], teams, all_units)[1] is False
    # twelve hospitals: seven in the group leave five outside (kept when published), eight leave four (refused)
    rows = [(f"H{i:02d}", "SUR") for i in range(1, 13)]
    twelve = pd.DataFrame(rows, columns=["hospital", "department"])
    group = [f"H{i:02d}" for i in range(1, 8)]
    published = (PublishedGroup("seven", frozenset(group)), PublishedGroup("eight", frozenset([*group, "H08"])))
    for level in ("hospital", "department", "condition_team"):
        got = comparison_group(boss, "colorectal_cancer", level, group, twelve, None, published)
        assert got == (tuple(group), False)
        assert comparison_group(boss, "colorectal_cancer", level, [*group, "H08"], twelve, None, published) == (
            (),
            True,
        )
