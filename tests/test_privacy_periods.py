"""Differencing over periods: a viewer who gets small cells withheld opens the same view for all dates and for
every year (the period filter's choices) and subtracts. A unit's years add up to its all-dates cell, so all dates
minus the shown years gives a lone withheld year back (and a withheld all-dates cell is the sum of its shown
years). Per role, which paths leak:

- a care team limited to some hospitals sees other hospitals' exact cells with the small ones withheld: the
  all-dates/years path leaked (test_a_limited_care_teams_periods_cannot_be_differenced); quarters and meeting
  windows are shown only for its own hospitals' units (focus_units), whose cells it sees anyway;
- a manager sees other units without an exact count in any period (n in bands, no observed): nothing to subtract;
- quality and a care team without a hospital limit see every cell: nothing is withheld from them on a page;
- files (the workbook) withhold every small cell: all dates minus a year's file leaked the same way, and
  `vbhc report --period` with a quarter or a range of dates differenced two windows a day apart.
"""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace
from typing import NamedTuple

import numpy as np
import pandas as pd
import pytest

from tests.pdf_charts import blank_pdf_charts
from vbhc.access import Role, Scope, Viewer, focus_units
from vbhc.disclosure import feasible_interval, signed_interval
from vbhc.reports.privacy import SuppressionRule

CONDITION = "colorectal_cancer"
COUNT_KINDS = ("proportion", "prom_mic", "response_rate")
THRESHOLD = 10
MARKER = SuppressionRule(THRESHOLD).marker("en")


def _viewer(role: str) -> Viewer:
    scopes = {
        "care_team_H01": Scope(Role.CARE_TEAM, frozenset({CONDITION}), frozenset({"H01"})),
        "care_team": Scope(Role.CARE_TEAM, frozenset({CONDITION})),
        "quality": Scope(Role.QUALITY),
        "manager": Scope(Role.MANAGER, hospitals=frozenset({"H01"})),
    }
    return Viewer(f"{role}@example.org", "", (scopes[role],))


def _bounds(true_n: float, shown_volume: float) -> tuple[float, float]:
    """What the attacker knows of a withheld count: below the threshold or not (conservative: as if told), and
    at most the unit's volume when that is shown."""
    lo, hi = (0.0, THRESHOLD - 1.0) if true_n < THRESHOLD else (float(THRESHOLD), math.inf)
    return lo, min(hi, shown_volume)


def period_attack(views: dict[str, pd.DataFrame], truth: dict[str, pd.DataFrame]) -> list[str]:
    """Cells pinned to one value by differencing a unit's all-dates cell ("") and its years. `views` are what the
    viewer got per period (n NaN where withheld), `truth` the full tables."""
    found = []

    def frame(tables):
        return pd.concat([t.assign(period=p) for p, t in tables.items()], ignore_index=True)

    seen, real = frame(views), frame(truth)
    real = real.set_index(["period", "unit", "indicator"])
    assert real.index.is_unique
    # a dictionary per column: one cell read through the MultiIndex (.loc) took ~1 ms, and there are thousands
    real_n, real_o = real["n"].to_dict(), real["observed"].to_dict()
    volumes = seen[seen["kind"] == "volume"].set_index(["period", "unit"])["n"].to_dict()
    # each line's rows as positions into the columns read (a boolean selection of the wide table per line and
    # period was most of this check)
    periods, kinds = seen["period"].to_numpy(object), seen["kind"].to_numpy(object)
    withheld = seen["n"].isna().to_numpy()
    for (unit, indicator), rows in seen.groupby(["unit", "indicator"], observed=True).indices.items():
        kind = str(kinds[rows[0]])
        is_whole = periods[rows] == ""
        whole, years = rows[is_whole], rows[~is_whole]
        if not len(whole) or not len(years):
            continue
        cells = periods[years[withheld[years]]].tolist()
        coef = [1.0] * len(cells)
        whole_hidden = bool(withheld[whole[0]])
        if whole_hidden:
            cells.append("")
            coef.append(-1.0)
        if not cells:
            continue
        if whole_hidden and len(cells) == 1:
            found.append(f"all dates of {unit}/{indicator} = sum of its years")
            continue
        true_n = np.array([float(real_n[(p, unit, indicator)]) for p in cells])
        true_o = np.array([float(real_o[(p, unit, indicator)]) for p in cells])
        bounds = [
            _bounds(n, math.inf if kind == "volume" else float(volumes.get((p, unit), math.inf)))
            for n, p in zip(true_n, cells, strict=True)
        ]
        lows, highs = np.array([b[0] for b in bounds]), np.array([b[1] for b in bounds])
        highs = np.where(np.isnan(highs), math.inf, highs)
        coef_ = np.array(coef)
        total_n = float((coef_ * true_n).sum())  # = the shown part: whole minus shown years (or its negative)
        known_o = kind in COUNT_KINDS and np.isfinite(true_o).all()
        total_o = float((coef_ * true_o).sum()) if known_o else math.nan
        # n between its bounds; observed (a count) between 0 and the same upper bounds
        counts = [("n", total_n, lows)] + ([("observed", total_o, np.zeros(len(cells)))] if known_o else [])
        for i, period in enumerate(cells):
            for what, total, floor in counts:
                if whole_hidden:
                    low, high = signed_interval(total, coef_, floor, highs, i)
                else:
                    low, high = feasible_interval(total, floor, highs, i)
                if high - low < 1:
                    found.append(f"{what} of {unit}/{indicator}/{period or 'all'} = {low:g}")
    return found


@pytest.fixture
def pages(small_demo_db, monkeypatch):
    """The pages' data layer (ui.data.result_for) on the small demo with the default threshold."""
    from ui import data

    monkeypatch.setenv("VBHC_SUPPRESS_BELOW", str(THRESHOLD))
    data._visible.clear()
    data._masks.clear()
    yield data
    data._visible.clear()
    data._masks.clear()


class Report(NamedTuple):
    """`vbhc report` of one period of the grid, as the tests read it: the workbook and the full result."""

    workbook: bytes
    result: object  # vbhc.indicators.IndicatorResult: every cell, none withheld


@pytest.fixture(scope="module")
def reports(small_demo_registry, tmp_path_factory) -> dict[str, Report]:
    """`vbhc report` (workbook, CONDITION, English, threshold THRESHOLD) of all dates ("") and every year of the
    grid, with each period's full result (compute_results): made once for the module and only read by its tests.

    Why: every report computes the masks of the whole grid; the five tests that difference these files made the
    same seven files again each (31 reports, ~40 s of the module's CPU)."""
    from ui import data
    from vbhc.reports import compute_results, make_report
    from vbhc.store import get_engine

    engine, _ = small_demo_registry
    folder = tmp_path_factory.mktemp("period_reports")
    made = {}
    with pytest.MonkeyPatch.context() as env:
        env.setenv("VBHC_DATABASE_URL", engine.url.render_as_string(hide_password=False))
        env.setenv("VBHC_SUPPRESS_BELOW", str(THRESHOLD))
        get_engine.cache_clear()
        try:
            for period in data.grid_periods(CONDITION):
                out = folder / f"r{period or 'all'}.xlsx"
                make_report(out, fmt="xlsx", conditions=[CONDITION], period=period or None, lang="en", engine=engine)
                result = compute_results([CONDITION], period or None, "hospital", engine=engine)[0]
                made[period] = Report(out.read_bytes(), result)
        finally:
            get_engine.cache_clear()
    return made


def _views(data, viewer: Viewer, level: str = "hospital") -> tuple[dict, dict]:
    periods = data.grid_periods(CONDITION)
    assert len(periods) > 2  # all dates and at least two years
    views = {p: data.result_for(viewer, CONDITION, level, p).table for p in periods}
    truth = {p: data.result(CONDITION, level, p).table for p in periods}
    return views, truth


def test_without_the_grid_a_limited_care_team_differences_periods(pages, monkeypatch):
    """The defect as it was: each period's cells withheld on their own; all dates minus the shown years gives
    withheld years back."""
    monkeypatch.setattr(pages, "_period_mask", lambda *args: None)
    views, truth = _views(pages, _viewer("care_team_H01"))
    found = period_attack(views, truth)
    assert found, "expected the per-period suppression to leak"


@pytest.mark.parametrize("level", ["hospital", "department"])
def test_a_limited_care_teams_periods_cannot_be_differenced(pages, level):
    from tests.test_privacy import _attack

    views, truth = _views(pages, _viewer("care_team_H01"), level)
    assert any(v["suppressed"].any() for v in views.values())
    assert not period_attack(views, truth)
    for period, view in views.items():  # and each period's units on their own, as before
        assert not _attack(truth[period], view, THRESHOLD), period


def test_every_view_withholds_the_same_cells(pages):
    """Deterministic: the mask of a period does not depend on which period was opened first (computed again:
    nothing kept in memory or in the results store)."""
    from vbhc.reports import privacy

    viewer = _viewer("care_team_H01")
    first, _ = _views(pages, viewer)
    pages._visible.clear()
    pages._masks.clear()
    privacy._kept_masks.clear()
    for stored in pages._store(pages.database_url()).folder.glob("*/masks-*.pkl"):
        stored.unlink()
    periods = list(reversed(pages.grid_periods(CONDITION)))
    again = {p: pages.result_for(viewer, CONDITION, "hospital", p).table for p in periods}
    for period in first:
        assert (first[period]["suppressed"].to_numpy() == again[period]["suppressed"].to_numpy()).all()


@pytest.mark.parametrize("role", ["quality", "care_team"])
def test_roles_that_see_every_cell_have_nothing_to_difference(pages, role):
    views, _ = _views(pages, _viewer(role))
    for view in views.values():
        assert not view.get("suppressed", pd.Series(False, index=view.index)).astype(bool).any()
        assert view["n"].notna().all()


def test_a_managers_other_units_carry_no_count_in_any_period(pages):
    views, _ = _views(pages, _viewer("manager"))
    for period, view in views.items():
        others = view[view["anonymised"].astype(bool)]
        assert len(others)
        assert others["n"].isna().all() and others["observed"].isna().all(), period
        assert (view.loc[~view["anonymised"].astype(bool), "n"].to_numpy() >= 0).all()  # own units: exact


def test_quarters_and_meeting_windows_only_of_units_whose_cells_the_viewer_sees(pages):
    """The trend by quarter and the windows since the last meeting are drawn for the page's unit only: for a care
    team limited to H01 (and a manager of H01) that is one of H01's units, never another hospital's."""
    units = pages.units(pages.database_url(), pages.version())
    for role in ("care_team_H01", "manager"):
        for level in ("hospital", "department"):
            focus = focus_units(_viewer(role), units, level, CONDITION)
            assert focus and all(u.startswith("H01") for u in focus), (role, level)


def _workbook_cells(content: bytes, condition_sheet: str) -> pd.DataFrame:
    import io

    from openpyxl import load_workbook

    from vbhc.reports.excel import HEADER_ROW

    # read_only: the one sheet's values, parsed as they are read (the same values a full load gives, without
    # building every sheet's cells and styles first: two thirds of a read, ~50 reads in this module)
    book = load_workbook(io.BytesIO(content), read_only=True)
    try:
        values = book[condition_sheet].iter_rows(min_row=HEADER_ROW, values_only=True)
        header = next(values)
        col: dict = {}
        for i, h in enumerate(header):
            col.setdefault(h, i)  # the unit's id (its name follows at the end)
        rows = []
        for cells in values:
            if cells[0] is None:
                break
            value = cells[col["Care cycles"]]
            rows.append({"unit": cells[col["Unit"]], "label": cells[col["Indicator"]], "n": value})
    finally:
        book.close()
    return pd.DataFrame(rows)


def test_workbooks_of_all_dates_and_each_year_cannot_be_differenced(reports):
    """`vbhc report` for all dates and for every year: the files withhold every small cell, against each other."""
    assert len(reports) > 2  # all dates and at least two years
    views, truth = {}, {}
    for period, report in reports.items():
        table = report.result.table
        cells = _workbook_cells(report.workbook, "Colorectal cancer")
        labels = table.drop_duplicates("indicator").set_index("label_en")["indicator"]
        cells["indicator"] = cells["label"].map(labels)
        cells["n"] = pd.to_numeric(cells["n"].where(cells["n"] != MARKER), errors="coerce")
        merged = table.drop(columns=["n"]).merge(cells[["unit", "indicator", "n"]], on=["unit", "indicator"])
        assert len(merged) == len(table)
        views[period], truth[period] = merged, table
    assert any(v["n"].isna().any() for v in views.values())
    assert not period_attack(views, truth)


@pytest.mark.parametrize("period", ["2024Q2", "2024-03", "2023-2024", "2024-01-01..2024-06-30"])
def test_a_report_off_the_grid_is_refused_while_small_numbers_are_withheld(small_demo_db, tmp_path, period):
    from vbhc.reports import ReportError, make_report

    engine, _ = small_demo_db
    out = tmp_path / "r.xlsx"
    with pytest.raises(ReportError) as refused:
        make_report(out, fmt="xlsx", conditions=[CONDITION], period=period, engine=engine)
    assert f"period '{period}' refused" in str(refused.value)
    assert "\n" not in str(refused.value)
    assert "geweigerd" in refused.value.in_language("nl")
    assert not out.exists()
    # without suppression (threshold 0) nothing is withheld, so any window may be reported
    make_report(out, fmt="xlsx", conditions=[CONDITION], period=period, engine=engine, suppress_below=0)
    assert out.exists()


def _page_workbooks(data, monkeypatch, without_grid: bool = False) -> tuple[dict, dict]:
    """The workbooks the pages' Excel button gives for all dates and every year (ui.render.report_workbook), read
    back as cells, with the full tables they were made from."""
    from ui import render

    if without_grid:
        monkeypatch.setattr(data, "report_grids", lambda *args: None)
    views, truth = {}, {}
    for period in data.grid_periods(CONDITION):
        result = data.result(CONDITION, "hospital", period)
        content = render.report_workbook(_viewer("quality"), [result], "en")
        views[period], truth[period] = _as_table(content, result.table), result.table
    return views, truth


def _as_table(content: bytes, table: pd.DataFrame) -> pd.DataFrame:
    """A workbook's condition sheet as the indicator table, n missing where withheld."""
    cells = _workbook_cells(content, "Colorectal cancer")
    labels = table.drop_duplicates("indicator").set_index("label_en")["indicator"]
    cells["indicator"] = cells["label"].map(labels)
    cells["n"] = pd.to_numeric(cells["n"].where(cells["n"] != MARKER), errors="coerce")
    merged = table.drop(columns=["n"]).merge(cells[["unit", "indicator", "n"]], on=["unit", "indicator"])
    assert len(merged) == len(table)
    return merged


def test_the_pages_workbooks_of_all_dates_and_each_year_cannot_be_differenced(pages, monkeypatch):
    """The Excel button of the pages (overview, team page) withholds the grid's cells as `vbhc report` does: its
    file of all dates minus its files of each year gives no withheld cell back. Before, each file was protected
    on its own and the difference gave cells back."""
    views, truth = _page_workbooks(pages, monkeypatch)
    assert any(v["n"].isna().any() for v in views.values())
    assert not period_attack(views, truth)
    leaky, _ = _page_workbooks(pages, monkeypatch, without_grid=True)
    assert period_attack(leaky, truth), "expected files protected one by one to leak"


def test_the_pages_workbook_reads_the_cells_a_click_before_stored(pages, monkeypatch):
    """The Excel button computed the grid's withheld cells again on every click (9 s of CPU for the workbook of
    every condition on the 4,000-cycle demo): they are stored beside the results (vbhc.results.MasksKey), so the
    next click, a restarted server or another server process reads them and withholds the same cells."""
    from ui import render
    from vbhc.reports import privacy

    computed = []
    compute = privacy._grid_masks
    monkeypatch.setattr(privacy, "_grid_masks", lambda *a, **k: computed.append(1) or compute(*a, **k))
    result = pages.result(CONDITION, "hospital", "")
    store = pages._store(pages.database_url())
    for stored in store.folder.glob("*/masks-*.pkl"):  # another test's clicks: computed here again
        stored.unlink()
    privacy._kept_masks.clear()
    first = _as_table(render.report_workbook(_viewer("quality"), [result], "en"), result.table)
    assert computed
    privacy._kept_masks.clear()  # as a restarted server
    computed.clear()
    second = _as_table(render.report_workbook(_viewer("quality"), [result], "en"), result.table)
    assert not computed
    assert first["n"].isna().any()
    assert second["n"].isna().tolist() == first["n"].isna().tolist()


@pytest.mark.parametrize("period", ["", "2024"])
def test_the_pages_files_withhold_the_cells_vbhc_report_withholds(
    pages, small_demo_db, reports, tmp_path, monkeypatch, period
):
    """Two files of the same period withholding different cells could be combined: the page's workbook and PDF
    of a period withhold the same cells as `vbhc report` for that period."""
    from ui import render
    from vbhc.reports import make_report

    engine, _ = small_demo_db
    assert period in pages.grid_periods(CONDITION)
    result = pages.result(CONDITION, "hospital", period)
    page = _as_table(render.report_workbook(_viewer("quality"), [result], "en"), result.table)
    command = _as_table(reports[period].workbook, result.table)
    assert page["n"].isna().any()
    assert page["n"].isna().tolist() == command["n"].isna().tolist()
    own = pages.own_hospital()
    drawn = blank_pdf_charts(monkeypatch)  # the PDFs' text is compared here, not their pictures
    page_pdf = render.report_pdf(_viewer("quality"), result, own, "en")
    pdf = tmp_path / "r.pdf"
    make_report(pdf, fmt="pdf", conditions=[CONDITION], period=period or None, lang="en", engine=engine, unit=own)
    assert drawn and _pdf_tables(page_pdf) == _pdf_tables(pdf.read_bytes())


def _pdf_tables(content: bytes) -> list[str]:
    """The PDF's pages of indicator tables and charts' captions (the title page and provenance left out: they say
    when and from which import batches the file was made)."""
    import io

    from pypdf import PdfReader

    pages = [page.extract_text() for page in PdfReader(io.BytesIO(content)).pages]
    return pages[1:-1]


def _quarter_attack(trend: pd.DataFrame, hidden: np.ndarray, years: dict[int, pd.Series | None]) -> list[str]:
    """Quarters of a unit's trend pinned to one value by a year's cell in the file of that year (`years`: its row,
    None where the file withholds it) minus the year's shown quarters."""
    found = []
    periods = pd.to_datetime(trend["period"]).dt.year.to_numpy()
    n = trend["n"].to_numpy(float)
    events = trend["events"].to_numpy(float) if "events" in trend else None
    for year, cell in years.items():
        at = np.flatnonzero(periods == year)
        gone = at[hidden[at]]
        if cell is None:  # the year's cell is withheld: all its quarters must be, else they add up to it
            if len(gone) < len(at):
                found.append(f"{year}: shown quarters of a withheld year")
            continue
        if not len(gone):
            continue
        lows = np.where(n[gone] < THRESHOLD, 0.0, float(THRESHOLD))
        highs = np.where(n[gone] < THRESHOLD, THRESHOLD - 1.0, math.inf)
        rest = float(cell["n"]) - n[at[~hidden[at]]].sum()
        totals = [("n", rest, lows)]
        if events is not None and np.isfinite(float(cell["observed"])):
            totals.append(("events", float(cell["observed"]) - events[at[~hidden[at]]].sum(), np.zeros(len(gone))))
        for what, total, low_bounds in totals:
            for i in range(len(gone)):
                low, high = feasible_interval(total, low_bounds, highs, i)
                if high - low < 1:
                    found.append(f"{what} of {year} quarter {i} = {low:g}")
    return found


def _trend(years: dict[int, list[int]], events: dict[int, list[int]]) -> pd.DataFrame:
    rows = [
        {"period": pd.Timestamp(year, 1 + 3 * q, 1), "n": float(n), "events": float(e)}
        for year, counts in years.items()
        for q, (n, e) in enumerate(zip(counts, events[year], strict=True))
    ]
    return pd.DataFrame(rows)


def test_a_lines_cells_are_pinned_as_signed_interval_says_for_each_cell():
    """The grid's suppression asks whether any withheld cell of a line (withheld years +1, the withheld all-dates
    cell -1) is pinned for all cells at once; the answer is signed_interval's for each cell (the attacker's model
    above): random lines of small and large counts, unbounded and bounded cells, one to nine cells."""
    from vbhc.disclosure import _signed_pinned

    rng = np.random.default_rng(7)
    answers = set()
    for _ in range(3000):
        size = int(rng.integers(1, 10))
        n = rng.integers(0, 40, size).astype(float)
        coef = np.ones(size)
        if rng.random() < 0.7:
            coef[-1] = -1.0
        small = n < THRESHOLD
        lows = np.where(small, 0.0, float(THRESHOLD))
        bound = np.where(rng.random(size) < 0.4, n + rng.integers(0, 3, size), math.inf)
        highs = np.minimum(np.where(small, THRESHOLD - 1.0, math.inf), bound)
        total = float((coef * n).sum())
        for floor in (lows, np.zeros(size)):
            want = any(np.subtract(*signed_interval(total, coef, floor, highs, i)[::-1]) < 1 for i in range(size))
            assert _signed_pinned(total, coef, floor, highs) == want, (total, coef, floor, highs)
            answers.add(want)
    assert answers == {True, False}


def test_a_years_cell_minus_its_shown_quarters_gives_no_quarter_back():
    """A trend by quarter of a unit whose year cell is in the year's file: leaving out the small quarter alone
    gave it back (41 - 12 - 11 - 13 = 5 care cycles, and its events); per year at least two quarters are left
    out, more until none is pinned down, and every quarter of a year the files withhold."""
    from vbhc.reports.privacy import SuppressionRule, trend_mask

    rule = SuppressionRule(THRESHOLD)
    trend = _trend({2023: [12, 11, 5, 13], 2024: [14, 15, 16, 17]}, {2023: [1, 2, 0, 3], 2024: [1, 1, 2, 2]})
    cells = {
        2023: pd.Series({"n": 41.0, "observed": 6.0}),
        2024: pd.Series({"n": 62.0, "observed": 6.0}),
    }
    small = np.asarray(rule.applies(trend["n"]), bool)
    assert _quarter_attack(trend, small, cells)  # the defect: the small quarter follows from its year
    hidden = trend_mask(trend, rule)
    assert hidden[:4].sum() >= 2 and not hidden[4:].any()  # a year without a small quarter keeps them all
    assert not _quarter_attack(trend, hidden, cells)
    withheld = trend_mask(trend, rule, years_withheld={2024})
    assert withheld[4:].all()
    assert not _quarter_attack(trend, withheld, {**cells, 2024: None})
    assert _quarter_attack(trend, hidden, {**cells, 2024: None})  # 2024's quarters would add up to it


def test_the_pdfs_quarter_trend_leaves_out_what_trend_mask_says(small_demo_db, monkeypatch):
    """The PDF draws the unit's trend with trend_mask's quarters left out, against the years its files withhold
    (the small demo's quarters are all small, so the unit's quarters are made larger here)."""
    from ui import data
    from vbhc.reports import pdf
    from vbhc.reports.privacy import SuppressionRule, trend_mask

    monkeypatch.setenv("VBHC_SUPPRESS_BELOW", str(THRESHOLD))
    rule = SuppressionRule.from_settings()
    grid = data.grid_tables(CONDITION, "hospital")
    result = data.result(CONDITION, "hospital", "")
    real = pdf.indicator_over_time
    years = sorted({int(p) for p in grid if p})

    def larger(result, indicator, unit, freq="QS"):
        trend = real(result, indicator, unit, freq=freq).iloc[: 4 * len(years)].copy()
        trend["period"] = [pd.Timestamp(y, 1 + 3 * q, 1) for y in years for q in range(4)][: len(trend)]
        trend["n"] = [float(n) for _ in years for n in (12, 11, 5, 13)][: len(trend)]
        if "events" in trend:
            trend["events"] = [float(e) for _ in years for e in (1, 2, 0, 3)][: len(trend)]
            trend["p"] = trend["events"] / trend["n"]
        return trend

    monkeypatch.setattr(pdf, "indicator_over_time", larger)
    drawn: list[pd.DataFrame] = []
    draw = pdf.charts.trend_chart
    monkeypatch.setattr(pdf.charts, "trend_chart", lambda trend, **kw: drawn.append(trend) or draw(trend, **kw))
    section = pdf._Section(None, result, "H01", "en", rule, None, None, ("H01",), None, None, None, None, grid)
    assert section.years_withheld  # the small demo's years of H01 are withheld in the files
    checked = 0
    for indicator in section.key_indicators():
        plan = section.chart_plan(indicator)
        if plan.trend is None:
            continue
        trend = larger(result, indicator, "H01")
        hidden = drawn[-1]["n"].isna().to_numpy()
        expected = trend_mask(trend, rule, years_withheld=section.years_withheld.get(indicator, ()))
        assert (hidden == expected).all(), indicator
        assert hidden.sum() > rule.applies(trend["n"]).sum()  # more than the small quarters
        checked += 1
    assert checked


def test_a_limited_care_team_sees_every_cell_of_its_own_hospital(pages):
    """A care team limited to H01 reads H01's patient rows, so withholding H01's cells protects nothing from it;
    they were withheld as secondary cells all the same (on the 1,500-cycle demo 378 of H01's 1,056 cells over
    all dates and every year, e.g. hip osteoarthritis' all-dates volume of 52), hiding the team's own figures.
    Now secondary cells come from other hospitals only, and no period or unit is pinned by what it sees plus
    what it knows."""
    from tests.test_privacy import _attack

    # two of the conditions where own cells were withheld (on the 1,500-cycle demo: breast cancer 42 of 78, hip
    # osteoarthritis 34 of 66); every condition took 20 s of the suite
    conditions = ["breast_cancer", "hip_osteoarthritis"]
    viewer = Viewer("care-h01@example.org", "", (Scope(Role.CARE_TEAM, frozenset(conditions), frozenset({"H01"})),))
    for condition in conditions:
        periods = pages.grid_periods(condition)
        views = {p: pages.result_for(viewer, condition, "hospital", p).table for p in periods}
        truth = {p: pages.result(condition, "hospital", p).table for p in periods}
        for period, view in views.items():
            own = view["unit"].astype(str).eq("H01").to_numpy()
            assert own.any() and not view.loc[own, "suppressed"].any(), (condition, period)
        assert not period_attack(views, truth), condition
        for period, view in views.items():  # what it knows adds nothing: no withheld count is pinned by it
            known = view.assign(n=view["n"].where(~view["suppressed"], truth[period]["n"].where(view["unit"] == "H01")))
            assert set(_attack(truth[period], known, THRESHOLD)) == set(_attack(truth[period], view, THRESHOLD))


# --- the frames beside the indicator table: PROM response per timepoint, cost per activity -------------------------

#: per frame: the columns of a line over the periods, its additive count, the count of events within it
FRAMES = {
    "prom_response": (["unit", "instrument", "timepoint"], "eligible", "responded"),
    "cost_breakdown": (["unit", "activity"], "cycles", None),
}


def frame_attack(
    views: dict[str, pd.DataFrame], truth: dict[str, pd.DataFrame], keys: list[str], count: str, observed: str | None
) -> list[str]:
    """Rows of a per-unit frame pinned to one value by differencing a line's all-dates row ("") and its years (as
    period_attack does for the indicator table). `views`: what the reader got per period (`count` NaN where
    withheld), in the rows of `truth`."""
    found = []
    seen = pd.concat([v.assign(_p=p) for p, v in views.items()], ignore_index=True)
    real = pd.concat([t.assign(_p=p) for p, t in truth.items()], ignore_index=True)
    # a line's rows as positions (seen's and real's rows are the same, numbered from 0): a boolean selection of the
    # frames per line and a .loc per cell were most of this check
    periods, withheld = seen["_p"].to_numpy(object), seen[count].isna().to_numpy()
    real_periods = real["_p"].to_numpy(object)
    real_values = {what: real[what].to_numpy(float) for what in [count, *([observed] if observed else [])]}
    for line, rows in seen.groupby(keys, observed=True).indices.items():
        is_whole = periods[rows] == ""
        whole, years = rows[is_whole], rows[~is_whole]
        if not len(whole) or not len(years):
            continue
        hidden = years[withheld[years]].tolist()
        whole_hidden = bool(withheld[whole[0]])
        cells = hidden + ([int(whole[0])] if whole_hidden else [])
        if not cells:
            continue
        if whole_hidden and len(cells) == 1:
            found.append(f"all dates of {line} = sum of its years")
            continue
        coef = np.array([1.0] * len(hidden) + ([-1.0] if whole_hidden else []))
        for what in [count, *([observed] if observed else [])]:
            values = real_values[what][cells]
            small = real_values[count][cells] < THRESHOLD
            lows = np.where(small, 0.0, float(THRESHOLD)) if what == count else np.zeros(len(cells))
            highs = np.where(small, THRESHOLD - 1.0, math.inf)
            total = float((coef * values).sum())  # the shown part: whole minus shown years (or its negative)
            for i, cell in enumerate(cells):
                low, high = signed_interval(total, coef, lows, highs, i)
                if high - low < 1:
                    found.append(f"{what} of {line}/{real_periods[cell] or 'all'} = {low:g}")
    return found


def _page_frames(data, viewer: Viewer, what: str) -> tuple[dict, dict]:
    """The PROM response or cost breakdown the pages show the viewer per period of the grid (views/proms.py and
    views/cost_value.py: data.derived through data.only_visible), and the full frames."""
    from vbhc.indicators import cost_by_activity, prom_response_by_timepoint

    compute = prom_response_by_timepoint if what == "prom_response" else cost_by_activity
    views, truth = {}, {}
    for period in data.grid_periods(CONDITION):
        result = data.result_for(viewer, CONDITION, "hospital", period)
        full = data.derived(CONDITION, "hospital", period, (), compute)
        shown = data.only_visible(result, full, what, viewer=viewer, period=period)
        count = FRAMES[what][1]
        views[period] = full.assign(**{count: shown[count].to_numpy(float)})
        truth[period] = full
    return views, truth


@pytest.mark.parametrize("what", list(FRAMES))
def test_a_limited_care_teams_prom_response_and_costs_cannot_be_differenced(pages, monkeypatch, what):
    """The PROM page's response per timepoint and the cost page's breakdown per activity, for a care team limited
    to H01, over all dates and every year: withheld over the grid, so all dates minus the shown years gives no
    withheld row back; H01's own rows are never withheld. Per period alone (as before) they leaked."""
    keys, count, observed = FRAMES[what]
    viewer = _viewer("care_team_H01")
    views, truth = _page_frames(pages, viewer, what)
    assert any(v[count].isna().any() for v in views.values())
    assert not frame_attack(views, truth, keys, count, observed)
    for period, view in views.items():
        assert view.loc[view["unit"].astype(str) == "H01", count].notna().all(), period
    if what == "cost_breakdown":  # the small demo's PROM response did not leak per period (see the test below)
        pages._masks.clear()
        monkeypatch.setattr(pages, "_frame_mask", lambda *args: None)  # each period protected on its own
        leaky, _ = _page_frames(pages, viewer, what)
        assert frame_attack(leaky, truth, keys, count, observed), "expected the per-period suppression to leak"


def _sheet_rows(content: bytes, sheet: str, column: str) -> list[bool]:
    """Per data row of a workbook's table sheet, whether `column` shows the withheld marker."""
    import io

    from openpyxl import load_workbook

    from vbhc.reports.excel import HEADER_ROW

    book = load_workbook(io.BytesIO(content), read_only=True)  # the one sheet's values (see _workbook_cells)
    try:
        values = book[sheet].iter_rows(min_row=HEADER_ROW, values_only=True)
        at = list(next(values)).index(column)
        out = []
        for cells in values:
            if cells[0] is None:
                break
            out.append(cells[at] == MARKER)
    finally:
        book.close()
    return out


def _report_frames(reports: dict[str, Report], what: str) -> tuple[dict, dict]:
    """The PROMs or Costs sheet of `vbhc report` for all dates and every year (`reports`), as the frame with the
    count missing where withheld, and the full frames."""
    from vbhc.indicators import cost_by_activity, prom_response_by_timepoint

    compute = prom_response_by_timepoint if what == "prom_response" else cost_by_activity
    sheet, column = ("PROMs", "Eligible") if what == "prom_response" else ("Costs", "Care cycles with this activity")
    count = FRAMES[what][1]
    views, truth = {}, {}
    for period, report in reports.items():
        full = compute(report.result)
        hidden = _sheet_rows(report.workbook, sheet, column)
        assert len(hidden) == len(full)
        views[period] = full.assign(**{count: full[count].astype(float).where(~np.array(hidden))})
        truth[period] = full
    return views, truth


@pytest.mark.parametrize("what", list(FRAMES))
def test_the_reports_prom_response_and_costs_cannot_be_differenced(small_demo_db, reports, tmp_path, monkeypatch, what):
    """`vbhc report` for all dates and every year: its PROMs and Costs sheets withhold their rows over the grid as
    the indicator sheet does; per file alone (as before) all dates minus the years' files gave rows back."""
    from vbhc.reports import make_report, privacy

    engine, _ = small_demo_db
    monkeypatch.setenv("VBHC_SUPPRESS_BELOW", str(THRESHOLD))
    keys, count, observed = FRAMES[what]
    views, truth = _report_frames(reports, what)
    assert any(v[count].isna().any() for v in views.values())
    assert not frame_attack(views, truth, keys, count, observed)
    if what == "cost_breakdown":  # the small demo's PROM response did not leak per period (see the test below)
        monkeypatch.setattr(privacy, "grid_frames", lambda *args: None)  # each file protected on its own
        alone = {}
        for period, report in reports.items():
            out = tmp_path / f"r{period or 'all'}.xlsx"
            make_report(out, fmt="xlsx", conditions=[CONDITION], period=period or None, lang="en", engine=engine)
            alone[period] = report._replace(workbook=out.read_bytes())
        leaky, _ = _report_frames(alone, what)
        assert frame_attack(leaky, truth, keys, count, observed), "expected files protected one by one to leak"


def test_a_years_small_prom_response_is_not_all_dates_minus_the_other_years():
    """The PROM response of two units over all dates and two years: H02's 2023 baseline (5 eligible, 2 responded)
    is small; per year alone it was withheld with H03's 2023 row as its secondary cell, while all dates and 2024
    showed both units: 25 - 20 gave H02's 5 back (and its responders). Over the grid it is not pinned down."""
    from vbhc.reports.privacy import SuppressionRule, prom_response_grid_masks, suppress_prom_response

    rule = SuppressionRule(THRESHOLD)

    def frame(rows):
        return pd.DataFrame(
            [
                {"unit": u, "eligible": e, "responded": r, "instrument": "eq5d5l", "timepoint": "baseline"}
                for u, e, r in rows
            ]
        )

    truth = {
        "": frame([("H01", 60, 40), ("H02", 25, 12), ("H03", 44, 30)]),
        "2024": frame([("H01", 30, 20), ("H02", 20, 10), ("H03", 22, 15)]),
        "2023": frame([("H01", 30, 20), ("H02", 5, 2), ("H03", 22, 15)]),
    }
    no_table = pd.DataFrame({"unit": [], "indicator": [], "n": [], "observed": [], "kind": []})

    class Result:  # what suppress_prom_response reads of a result without an indicator table to follow
        table = no_table
        data = None

    keys, count, observed = FRAMES["prom_response"]
    alone = {
        p: f.assign(eligible=suppress_prom_response(f, no_table, Result, rule)["eligible"]) for p, f in truth.items()
    }
    assert frame_attack(alone, truth, keys, count, observed)  # the defect
    masks = prom_response_grid_masks(truth, {}, {}, None, rule)
    gridded = {p: f.assign(eligible=f["eligible"].astype(float).where(~masks[p])) for p, f in truth.items()}
    assert gridded["2023"]["eligible"].isna().any()
    assert not frame_attack(gridded, truth, keys, count, observed)


# --- `vbhc external export`: the own summary figures leave the hospital too ---------------------------------------


def _export(tmp_path, period: str | None, *extra: str) -> tuple[int, str, Path]:
    """Run `vbhc external export` of the condition's own summary (all dates when `period` is None)."""
    import contextlib
    import io

    from vbhc.cli import main

    out = tmp_path / f"summary-{period or 'all'}.csv"
    args = ["external", "export", "--condition", CONDITION, "--source", "UMC", "--published", "2025-03-01"]
    args += [*(["--period", period] if period else []), *extra, "--out", str(out)]
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(args)
    return code, err.getvalue(), out


@pytest.mark.parametrize("period", ["2024Q2", "2024-03", "2023-2024", "2024-01-01..2024-06-30"])
def test_an_export_off_the_grid_is_refused_while_small_numbers_are_withheld(small_demo_db, tmp_path, period):
    """A quarter's or a range's summary is the difference of grid cells (or of two windows a day apart): refused
    as `vbhc report` refuses it, one line, no file; without suppression any window may be exported."""
    code, err, out = _export(tmp_path, period)
    assert code == 2 and not out.exists()
    assert err.strip() == (
        f"vbhc external export: period '{period}' refused: with small numbers withheld (below {THRESHOLD}) an export"
        " of summary figures covers all dates or one calendar year (e.g. 2024), as finer or shifted windows would"
        " give withheld cells back by differencing"
    )
    code, _, out = _export(tmp_path, period, "--suppress-below", "0")
    assert code == 0 and out.exists()


def test_the_exports_of_all_dates_and_each_year_withhold_the_reports_cells(
    small_demo_db, reports, tmp_path, monkeypatch
):
    """`vbhc external export` for all dates and every year carries exactly the own hospital's cells the `vbhc
    report` workbook of the same period shows (the grid's cells), so neither all dates minus the years' exports
    nor an export beside a workbook gives a withheld cell back. Before, each export withheld its own cells."""
    from ui import data
    from vbhc.catalog import SURVIVAL_KINDS
    from vbhc.external import ExternalRefused, read_figures

    monkeypatch.setenv("VBHC_SUPPRESS_BELOW", str(THRESHOLD))
    own = data.own_hospital()
    views, truth, exported = {}, {}, {}
    assert list(reports) == data.grid_periods(CONDITION)
    for period, report in reports.items():
        code, err, out = _export(tmp_path, period or None)
        assert code == 0, err
        try:
            figures = read_figures(out).frame
        except ExternalRefused:  # a header without figures: every cell of the year withheld
            figures = pd.DataFrame({"unit": [], "indicator": []})
        exported[period] = set(zip(figures["unit"].astype(str), figures["indicator"].astype(str), strict=True))
        table = report.result.table
        table = table[(table["unit"].astype(str) == own) & ~table["kind"].isin(SURVIVAL_KINDS)].reset_index(drop=True)
        shown = _as_table(report.workbook, table)
        kept = shown[shown["n"].notna()]
        in_report = set(zip(kept["unit"].astype(str), kept["indicator"].astype(str), strict=True))
        assert exported[period] == in_report, period
        cells = list(zip(table["unit"].astype(str), table["indicator"].astype(str), strict=True))
        views[period] = table.assign(n=table["n"].where([c in exported[period] for c in cells]))
        truth[period] = table
    assert any(v["n"].isna().any() for v in views.values())
    assert not period_attack(views, truth)


# --- comparison groups: a chosen set of hospitals ---------------------------------------------------------------


def _group_views(data, viewer: Viewer, groups) -> dict:
    return {g: data.result_for(viewer, CONDITION, "hospital", "", g).table for g in groups}


def test_which_roles_reach_a_group_view_and_none_with_withheld_cells_can_combine_them(pages):
    """A group's view chooses its own secondary cells, and its benchmark is the group's total: for a care team
    limited to H01 the group {H01, H02} gave H02's withheld cells back (the group's total minus H01's own cells,
    e.g. H02's 30-day mortality n), and two groups (or a group and the registry) withheld different cells, so the
    one's shown cells pinned the other's (H08's PROM cell of 7 care cycles on the 4,000-cycle demo). Such a
    viewer now compares with the whole registry (called directly or through the pages), so its views of any two
    groups are the registry's. Quality and a care team without a hospital limit keep their groups (nothing is
    withheld from them); a manager's group needs five other hospitals and shows the own units with the group's
    benchmark only (the registry's view shows the others without an exact count, n in bands)."""
    from tests.test_privacy import _attack

    groups = [("H01", "H02"), ("H01", "H02", "H03"), ("H01", "H02", "H03", "H04", "H05", "H06")]
    limited = _viewer("care_team_H01")
    for group in groups:
        assert pages.comparison_group(limited, CONDITION, "hospital", group) == ((), True)
    views = _group_views(pages, limited, [(), *groups])
    registry = views[()]
    assert registry["suppressed"].any()
    for group, view in views.items():  # every "group" view is the registry's: nothing to combine
        assert view["n"].isna().tolist() == registry["n"].isna().tolist(), group
        assert not _attack(pages.result(CONDITION, "hospital", "").table, view, THRESHOLD)
    for role in ("quality", "care_team"):  # see every cell: their groups are kept
        viewer = _viewer(role)
        assert pages.comparison_group(viewer, CONDITION, "hospital", groups[0]) == (groups[0], False)
        view = _group_views(pages, viewer, [groups[0]])[groups[0]]
        assert set(view["unit"]) == set(groups[0]) and view["n"].notna().all()
    manager = _viewer("manager")
    assert pages.comparison_group(manager, CONDITION, "hospital", groups[1]) == ((), True)
    # a group with fewer than five hospitals outside it is refused too (the registry's benchmark minus the
    # group's gave them back: test_privacy.test_a_group_whose_complement_is_small_is_refused); every hospital is kept
    assert pages.comparison_group(manager, CONDITION, "hospital", groups[2]) == ((), True)
    big = tuple(sorted(pages.units(pages.database_url(), pages.version())["hospital"].astype(str).unique()))
    peers, refused = pages.comparison_group(manager, CONDITION, "hospital", big)
    assert peers == big and not refused
    view = _group_views(pages, manager, [big])[big]
    # the own units with the group's benchmark, no other unit: two groups differing by one hospital listed the
    # same anonymised rows but one, which was that hospital's (vbhc.access.other_units_shown)
    assert not view["anonymised"].astype(bool).any() and set(view["unit"]) == {"H01"}
    assert view["target"].notna().any()
    registry = _group_views(pages, manager, [()])[()]
    others = registry[registry["anonymised"].astype(bool)]
    assert len(others) and others["n"].isna().all() and others["observed"].isna().all()


def test_before_a_limited_care_teams_groups_gave_withheld_cells_back(pages, monkeypatch):
    """The defect, with the group check as it was (a viewer who sees every unit kept the chosen group)."""
    from tests.test_privacy import _attack
    from vbhc import access

    real = access.GroupChoice.resolved

    def as_before(choice):
        if access.sees_all_units(choice.viewer, choice.condition):
            return choice.peers, False
        return real(choice)

    monkeypatch.setattr(access.GroupChoice, "resolved", as_before)
    pair = ("H01", "H02")
    view = _group_views(pages, _viewer("care_team_H01"), [pair])[pair]
    truth = pages.result(CONDITION, "hospital", "", pair).table
    assert view["suppressed"].any()
    assert _attack(truth, view, THRESHOLD), "expected the group of two to give H02's withheld cells back"


def test_prem_tables_carry_no_exact_count_of_a_unit_whose_cells_a_viewer_may_not_see(pages):
    """PREM tables (vbhc.prems.prem_rows, the team page and overview through ui.prems) show a care team limited to
    H01 and a manager only their own units exactly: every other unit is anonymised (no n, no observed, n in bands)
    in all dates and every year, so no PREM cell can be differenced over periods; PREMs are in no report file."""
    from vbhc import prems
    from vbhc.catalog import default_catalog

    url, version = pages.database_url(), pages.version()
    for role in ("care_team_H01", "manager"):
        viewer = _viewer(role)
        for q in default_catalog().prems:
            for period in pages.grid_periods(CONDITION):
                result = pages.prem_result(url, version, q, "department", period)
                if result.table.empty:
                    continue
                rows = prems.prem_rows(viewer, result, record_view=False)
                others = rows[rows["anonymised"].astype(bool)]
                assert others["n"].isna().all() and others["observed"].isna().all(), (role, q, period)
                assert rows.loc[~rows["anonymised"].astype(bool), "unit"].astype(str).str.startswith("H01").all()


# --- two tables that show the same count withhold it together ------------------------------------------------------


def _shared_attack(table: pd.DataFrame, rates: pd.DataFrame, truth: pd.DataFrame, real: pd.DataFrame, pairs) -> list:
    """PROM response rows pinned to one value: a withheld row's eligible (responded) is read back from the
    indicator table's response-rate cell of the same unit, instrument and timepoint (`pairs`: (instrument,
    timepoint) -> indicator) or from any shown count of the unit that equals it (n shared); then each instrument
    × timepoint's total (known) minus its shown and read-back rows pins a lone remaining withheld row. `table` and
    `rates` are what the reader got (counts NaN where withheld), `truth` and `real` the full table and frame."""
    found = []
    cells = table.set_index(["unit", "indicator"])
    for what, column in (("eligible", "n"), ("responded", "observed")):
        shown = {}  # unit -> counts of the unit the reader sees anywhere
        for row in table.itertuples():
            if pd.notna(row.n):
                shown.setdefault(str(row.unit), set()).update({float(row.n), float(row.observed)})
        for row in rates.itertuples():
            if pd.notna(row.eligible):
                shown.setdefault(str(row.unit), set()).update({float(row.eligible), float(row.responded)})
        for (inst, tp), rows in real.groupby(["instrument", "timepoint"]):
            hidden = rows[rates.loc[rows.index, "eligible"].isna()]
            if hidden.empty:
                continue
            total = float(rows[what].sum()) - float(rows.loc[rates.loc[rows.index, "eligible"].notna(), what].sum())
            lows, highs, names = [], [], []
            for _, row in hidden.iterrows():
                value, small = float(row[what]), float(row["eligible"]) < THRESHOLD
                indicator = pairs.get((inst, tp))
                key = (str(row["unit"]), indicator)
                read = indicator is not None and key in cells.index and pd.notna(cells.loc[key, column])
                if read or (value >= THRESHOLD and value in shown.get(str(row["unit"]), ())):
                    total -= value  # read back: no longer unknown
                    continue
                lows.append(0.0 if small or what == "responded" else float(THRESHOLD))
                highs.append(THRESHOLD - 1.0 if small else math.inf)
                names.append(f"{what} of {row['unit']}/{inst}/{tp}")
            for j, name in enumerate(names):
                low, high = feasible_interval(total, np.array(lows), np.array(highs), j)
                if high - low < 1:
                    found.append(f"{name} = {low:g}")
    return found


def test_a_prom_response_row_follows_the_withheld_cells_of_its_indicator_table():
    """prom_response_forced: the response row of a withheld response-rate cell (its unit, instrument and
    timepoint) and every row of the same unit that repeats a withheld cell's care cycles or, for a count
    indicator, its events; not another unit's row with the same number, not a shown cell's, not a mean's
    observed value, and a missing count (a nullable column's NA) withholds nothing."""
    from vbhc.reports.privacy import SuppressionRule, prom_response_forced

    rule = SuppressionRule(THRESHOLD)
    original = pd.DataFrame(
        [
            {"indicator": "resp_a", "kind": "response_rate", "unit": "H01", "n": 8, "observed": 6},
            {"indicator": "leak", "kind": "proportion", "unit": "H02", "n": 25, "observed": 18},
            {"indicator": "los", "kind": "mean", "unit": "H02", "n": 10, "observed": 31.0},
            {"indicator": "leak", "kind": "proportion", "unit": "H03", "n": 44, "observed": 12},
            {"indicator": "leak", "kind": "proportion", "unit": "H04", "n": None, "observed": None},
        ],
        index=[10, 11, 12, 13, 14],  # the indicator table's own index, as a filtered table keeps it
    ).astype({"n": "Int64"})
    table = original.assign(suppressed=[True, True, True, False, True])
    condition = SimpleNamespace(
        indicators=[
            SimpleNamespace(id="resp_a", kind="response_rate", instrument="A", timepoint="baseline"),
            SimpleNamespace(id="leak", kind="proportion", instrument=None, timepoint=None),
        ]
    )
    rows = [
        ("H01", "A", "baseline", 8, 6),  # the withheld response-rate cell itself (too small to be repeated)
        ("H01", "A", "12m", 33, 22),  # another timepoint
        ("H01", "B", "baseline", 70, 50),  # another instrument
        ("H02", "B", "baseline", 25, 11),  # repeats H02's withheld n (25)
        ("H02", "B", "12m", 60, 18),  # repeats H02's withheld events (18)
        ("H02", "A", "baseline", 31, 29),  # 31 is the mean's observed value, not a count
        ("H02", "C", "baseline", 10, 4),  # repeats the mean's care cycles (10: at the threshold, not below)
        ("H03", "A", "baseline", 25, 12),  # H02's numbers, another unit; H03's own cell is shown
        ("H04", "A", "baseline", 50, 40),  # H04's withheld cell has no count
    ]
    rates = pd.DataFrame(rows, columns=["unit", "instrument", "timepoint", "eligible", "responded"])
    forced = prom_response_forced(rates, table, original, condition, rule)
    assert forced.tolist() == [True, False, False, True, True, False, True, False, False]
    assert not prom_response_forced(rates, table.assign(suppressed=False), original, condition, rule).any()


def test_a_prom_response_row_withheld_as_a_secondary_cell_is_withheld_in_the_indicator_table_too():
    """H02's baseline response to instrument B is small (5 eligible): withheld with H03's (12) as its secondary
    cell, and H03's row of instrument A, which repeats that 12, with it. The indicator table has a response-rate
    indicator for A only and nothing small: it showed H03's cell (n 12), so the secondary cell was read back and
    B's total minus the shown rows gave H02's 5. Withheld jointly (joint_grid_masks) the indicator table
    withholds the response-rate cells of the rows the response table withholds."""
    from types import SimpleNamespace

    from vbhc.reports.privacy import (
        SuppressionRule,
        grid_suppression_masks,
        joint_grid_masks,
        prom_response_grid_masks,
    )

    rule = SuppressionRule(THRESHOLD)
    units = ["H01", "H02", "H03", "H04", "H05"]
    volume = [80, 60, 50, 70, 90]
    a = [(40, 30), (20, 15), (12, 9), (35, 25), (45, 33)]
    b = [(40, 28), (5, 3), (12, 8), (35, 20), (45, 30)]
    table = pd.DataFrame(
        [
            {"condition": "c", "indicator": "volume", "kind": "volume", "unit": u, "n": v, "observed": v}
            | {"target": math.nan}
            for u, v in zip(units, volume, strict=True)
        ]
        + [
            {"condition": "c", "indicator": "resp_a", "kind": "response_rate", "unit": u, "n": e, "observed": r}
            | {"target": 0.7}
            for u, (e, r) in zip(units, a, strict=True)
        ]
    )
    rates = pd.DataFrame(
        [
            {"unit": u, "instrument": inst, "timepoint": "baseline", "eligible": e, "responded": r}
            for inst, counts in (("A", a), ("B", b))
            for u, (e, r) in zip(units, counts, strict=True)
        ]
    )
    condition = SimpleNamespace(
        indicators=[SimpleNamespace(id="resp_a", kind="response_rate", instrument="A", timepoint="baseline")]
    )
    pairs = {("A", "baseline"): "resp_a"}

    def seen(table_mask, rates_mask):
        return (
            table.assign(n=table["n"].where(~table_mask), observed=table["observed"].where(~table_mask)),
            rates.assign(
                eligible=rates["eligible"].where(~rates_mask), responded=rates["responded"].where(~rates_mask)
            ),
        )

    # before: the indicator table withheld on its own, the response table following it one way only
    alone = grid_suppression_masks({"": table}, rule)
    one_way = prom_response_grid_masks({"": rates}, {"": table}, alone, condition, rule)
    assert not alone[""].any() and one_way[""].sum() == 4
    assert _shared_attack(*seen(alone[""], one_way[""]), table, rates, pairs) == ["eligible of H02/B/baseline = 5"]

    got = joint_grid_masks({"": table}, rule, frames={"prom_response": {"": rates}}, condition=condition)
    hidden_table, hidden_rates = got.masks[""], got.frame_masks["prom_response"][""]
    withheld_a = set(rates.loc[hidden_rates & (rates["instrument"] == "A").to_numpy(), "unit"])
    assert withheld_a == set(table.loc[hidden_table & (table["indicator"] == "resp_a").to_numpy(), "unit"])
    assert withheld_a == {"H02", "H03"}
    assert not _shared_attack(*seen(hidden_table, hidden_rates), table, rates, pairs)


def _cost_read_back(table: pd.DataFrame, breakdown: pd.DataFrame) -> list[str]:
    """Withheld cost-per-care-cycle cells of `table` read back from the cost breakdown the reader got (`breakdown`,
    NaN where withheld): a shown activity's total cost over its cost per care cycle is the unit's costed care
    cycles, the cell's n."""
    found = []
    hidden = table[(table["kind"] == "cost").to_numpy() & table["n"].isna().to_numpy()]
    for unit in hidden["unit"].astype(str):
        rows = breakdown[(breakdown["unit"].astype(str) == unit) & breakdown["cost_per_cycle"].notna()]
        for row in rows.itertuples():
            found.append(f"n of {unit}/cost = {row.total_cost / row.cost_per_cycle:.0f} ({row.activity})")
    return found


def _response_mismatch(condition: str, table: pd.DataFrame, rates: pd.DataFrame) -> list[str]:
    """Response-rate cells of `table` and PROM response rows of `rates` that show the same counts (unit,
    instrument, timepoint) where one is withheld (n, eligible NaN) and the other shown."""
    from vbhc.catalog import default_catalog

    pairs = {i.id: (i.instrument, i.timepoint) for i in default_catalog().condition(condition).indicators}
    out = []
    for row in table[table["kind"] == "response_rate"].itertuples():
        inst, tp = pairs[row.indicator]
        match = rates[(rates["unit"].astype(str) == str(row.unit)) & (rates["instrument"] == inst)]
        match = match[match["timepoint"] == tp]
        if len(match) and match["eligible"].isna().iloc[0] != pd.isna(row.n):
            out.append(f"{row.unit}/{row.indicator}")
    return out


def test_a_limited_care_teams_frames_withhold_what_its_indicator_table_withholds_and_back(pages):
    """The care team limited to H01, every period of the grid: a unit whose cost per care cycle the indicator
    table withholds (most as secondary cells: n at or above the threshold) showed its activities on the cost
    page, and each activity's total cost over its cost per care cycle gave that n back. Withheld jointly
    (vbhc.reports.privacy.joint_grid_masks): no withheld cost cell is read back, and a PROM response row and its
    response-rate cell are withheld together, either way."""
    from vbhc.indicators import cost_by_activity, prom_response_by_timepoint

    viewer = _viewer("care_team_H01")
    withheld = 0
    for period in pages.grid_periods(CONDITION):
        result = pages.result_for(viewer, CONDITION, "hospital", period)
        table = result.table
        withheld += int(((table["kind"] == "cost").to_numpy() & table["suppressed"].to_numpy()).sum())
        costs = pages.derived(CONDITION, "hospital", period, (), cost_by_activity)
        costs = pages.only_visible(result, costs, "cost_breakdown", viewer=viewer, period=period)
        assert not _cost_read_back(table, costs), period
        rates = pages.derived(CONDITION, "hospital", period, (), prom_response_by_timepoint)
        rates = pages.only_visible(result, rates, "prom_response", viewer=viewer, period=period)
        assert not _response_mismatch(CONDITION, table, rates), period
    assert withheld  # the demo withholds cost cells: the check had work


def test_the_reports_cost_sheet_shows_no_count_its_indicator_sheet_withholds(reports):
    """`vbhc report` of all dates: its Costs sheet showed the activities of units whose cost per care cycle the
    condition sheet withholds (total cost over cost per care cycle gave the n back); its PROMs sheet and the
    response-rate cells withhold the same rows."""
    from vbhc.indicators import cost_by_activity, prom_response_by_timepoint

    result, content = reports[""].result, reports[""].workbook
    table = _as_table(content, result.table)
    costs = cost_by_activity(result)
    hidden = np.array(_sheet_rows(content, "Costs", "Care cycles with this activity"))
    costs = costs.assign(cost_per_cycle=costs["cost_per_cycle"].where(~hidden))
    assert table["n"].isna().any() and hidden.any()
    assert not _cost_read_back(table, costs)
    rates = prom_response_by_timepoint(result)
    hidden = np.array(_sheet_rows(content, "PROMs", "Eligible"))
    assert not _response_mismatch(CONDITION, table, rates.assign(eligible=rates["eligible"].where(~hidden)))


def test_a_volume_withheld_in_the_same_pass_bounds_no_line():
    """A's cells of indicator X are withheld in both years as secondary cells of B's small ones, and A's volume
    with them (the same n: n shared across indicators). The reader then knows no bound on A's years but their
    sum (24): each lies anywhere in 10..14, so A's all-dates cell (24 care cycles) and volume give nothing back.
    Before, the lines were checked against the volumes as they stood before that pass (12 and 12: both years
    pinned) and A's all-dates cells were withheld, and through them the other units' (the reviewer's workbook:
    hospitals of 78 care cycles shown as "<10")."""
    from vbhc.reports.privacy import SuppressionRule, grid_suppression_masks

    def table(a: int, b: int, c: int, events: tuple[int, int, int]) -> pd.DataFrame:
        rows = []
        for unit, n, o in zip(("A", "B", "C"), (a, b, c), events, strict=True):
            rows.append({"condition": "k", "indicator": "volume", "kind": "volume", "unit": unit, "n": n})
            rows.append({"condition": "k", "indicator": "x", "kind": "proportion", "unit": unit, "n": n, "observed": o})
        return pd.DataFrame(rows).assign(target=lambda f: np.where(f["kind"] == "volume", np.nan, 0.1))

    tables = {
        "": table(24, 10, 60, (5, 2, 12)),
        "2025": table(12, 5, 30, (2, 1, 6)),
        "2024": table(12, 5, 30, (3, 1, 6)),
    }
    masks = grid_suppression_masks(tables, SuppressionRule(10))
    years = {p: dict(zip(tables[p]["unit"] + "/" + tables[p]["indicator"], masks[p], strict=True)) for p in tables}
    assert years["2025"]["B/x"] and years["2025"]["A/x"] and years["2025"]["A/volume"]  # the protection stands
    assert not years[""]["A/x"] and not years[""]["A/volume"], years[""]
    assert not any(years[""].values()), years[""]  # all dates: no small cell, nothing to withhold


@pytest.mark.parametrize("lang", ["en", "nl"])
def test_a_page_writes_a_withheld_count_as_the_files_do(lang):
    """A page wrote every withheld care-cycle count as "<10", also a secondary cell's (withheld to protect
    another unit, 79 care cycles): false, and a marker the files no longer use. A page shows the files' neutral
    marker; a manager's band for another unit ("<10" for a count that is below 10) stays as it is."""
    from ui.render import count_text

    secondary = SimpleNamespace(n=float("nan"), suppressed=True)
    assert count_text(secondary, lang) == SuppressionRule(THRESHOLD).marker(lang)
    assert not count_text(secondary, lang).startswith("<")
    band = SimpleNamespace(n=float("nan"), suppressed=True, n_band="<10")
    assert count_text(band, lang) == "<10"
