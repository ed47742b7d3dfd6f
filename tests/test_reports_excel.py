"""The Excel workbook: sheets, headers, number formats, frozen headers, autofilter, a native chart, conditional
fill, provenance, the small-number rule, and every figure equal to the indicator table."""

from __future__ import annotations

import io
import math

import pandas as pd
import pytest
from openpyxl import load_workbook
from openpyxl.utils import get_column_letter

from tests.registry_files import write_small_registry
from vbhc.catalog import default_catalog
from vbhc.i18n import t, t_value
from vbhc.ingest import import_files
from vbhc.registry import import_batches
from vbhc.reports import SuppressionRule, build_workbook, compute_results, suppress_table
from vbhc.reports.excel import HEADER_ROW

CONDITIONS = ["colorectal_cancer", "hip_osteoarthritis"]
SHEETS = {"colorectal_cancer": "Colorectal cancer", "hip_osteoarthritis": "Hip osteoarthritis"}

# header key -> indicator-table column, for the figures on a condition sheet
FIGURES = {
    "column.care_cycles": "n",
    "column.observed": "observed",
    "column.expected": "expected",
    "column.oe": "oe",
    "report.oe_lower": "oe_lower",
    "report.oe_upper": "oe_upper",
    "column.crude": "crude_value",
    "column.adjusted": "adjusted_value",
    "report.ci_lower": "adjusted_lower",
    "report.ci_upper": "adjusted_upper",
    "column.benchmark": "target",
    "report.lower_95": "lower_95",
    "report.upper_95": "upper_95",
    "report.lower_998": "lower_998",
    "report.upper_998": "upper_998",
}


@pytest.fixture(scope="module")
def results(small_demo_registry):
    engine, _ = small_demo_registry
    return compute_results(CONDITIONS, None, "hospital", engine=engine), import_batches(engine)


@pytest.fixture(scope="module")
def workbook(results):
    res, batches = results
    content = build_workbook(res, lang="en", suppress_below=10, batches=batches)
    return load_workbook(io.BytesIO(content))


def _rows(ws):
    header = [c.value for c in ws[HEADER_ROW]]
    out = []
    for cells in ws.iter_rows(min_row=HEADER_ROW + 1):
        if cells[0].value is None:
            break
        out.append({h: c for h, c in zip(header, cells, strict=False) if h is not None})
    return header, out


def test_sheets_and_headers(workbook):
    assert workbook.sheetnames == [
        "Cover",
        "Summary",
        "Colorectal cancer",
        "Hip osteoarthritis",
        "PROMs",
        "Costs",
        "Methods",
        "Explanation",
    ]  # no patient-level sheet unless asked for
    header, rows = _rows(workbook["Colorectal cancer"])
    for key in ("column.indicator", "column.unit", *FIGURES, "report.position_95", "verdict.column"):
        assert t(key, "en") in header
    assert len(rows) > 50
    summary_header, summary = _rows(workbook["Summary"])
    assert summary_header[:4] == ["Condition", "Unit", "Unit name", "Indicator"]
    assert len(summary) == len({(r["Condition"].value, r["Unit"].value, r["Indicator"].value) for r in summary})


def test_summary_has_one_row_per_team_and_key_indicator(workbook, results):
    res, _ = results
    _, summary = _rows(workbook["Summary"])
    assert len(summary) == sum(int(r.table["key"].astype(bool).sum()) for r in res)


@pytest.mark.parametrize("threshold", [10, None])
def test_every_figure_equals_the_indicator_table(results, threshold):
    res, batches = results
    if threshold is None:  # a threshold that withholds about a quarter of the rows of the demo
        threshold = int(pd.concat([r.table["n"] for r in res]).quantile(0.25)) + 1
    wb = load_workbook(io.BytesIO(build_workbook(res, lang="en", suppress_below=threshold, batches=batches)))
    rule = SuppressionRule(threshold)
    checked = suppressed = 0
    for result in res:
        table = suppress_table(result.table, rule).set_index(["label_en", "unit"])
        sheet = wb[SHEETS[result.condition]]
        _, rows = _rows(sheet)
        assert len(rows) == len(table)
        for row in rows:
            expected = table.loc[(row["Indicator"].value, row["Unit"].value)]
            for key, column in FIGURES.items():
                cell = row[t(key, "en")]
                if expected["suppressed"] and column != "target":
                    assert cell.value == rule.marker("en"), (key, row["Unit"].value)
                    suppressed += 1
                    continue
                value = expected[column]
                if value is None or (isinstance(value, float) and not math.isfinite(value)):
                    assert cell.value is None
                else:
                    assert cell.value == pytest.approx(float(value), rel=1e-12, abs=1e-12)
                    checked += 1
            position = row[t("report.position_95", "en")].value
            if expected["suppressed"]:
                assert position == rule.marker("en")
            elif isinstance(expected["position_95"], str):
                assert position == t_value("position", expected["position_95"], "en")
    assert checked > 500
    if threshold > 10:
        assert suppressed > 0
        marker = rule.marker("en")
        footnote = [c.value for c in wb["Colorectal cancer"]["A"] if isinstance(c.value, str) and marker in c.value]
        assert footnote and f"fewer than {threshold:,}" in footnote[0]


@pytest.mark.parametrize("lang", ["en", "nl"])
def test_withheld_cells_claim_no_small_count(results, lang):
    """A secondary cell (withheld to protect another unit's small cell) stood as "<10" for 79 or 94 care cycles,
    and an expected value or a rate of a small cell as "<10" too: every withheld cell now shows one neutral marker
    (a marker per reason would tell a reader which withheld cells are small), and the footnote and the rules on
    the Explanation sheet give both reasons."""
    res, batches = results
    threshold = int(pd.concat([r.table["n"] for r in res]).quantile(0.25)) + 1
    rule = SuppressionRule(threshold)
    wb = load_workbook(io.BytesIO(build_workbook(res, lang=lang, suppress_below=threshold, batches=batches)))
    marker = rule.marker(lang)
    assert not marker.startswith("<") and str(threshold) not in marker
    secondary = 0
    for sheet, result in zip(wb.worksheets[2:], res, strict=False):  # cover, summary, then a sheet per condition
        table = suppress_table(result.table, rule)
        big = {
            (str(u), str(i))
            for u, i, n, s in zip(
                table["unit"], table["indicator"], result.table["n"], table["suppressed"], strict=True
            )
            if s and n >= threshold
        }
        secondary += len(big)
        texts = [c.value for row in sheet.iter_rows() for c in row if isinstance(c.value, str)]
        assert not [v for v in texts if v.startswith("<")], result.condition  # no cell claims a small count
        footnote = next(v for v in texts if v.startswith(f"{marker}:"))
        assert t("report.withheld_marker", lang) in footnote
        assert ("secondary" if lang == "en" else "secundaire") in footnote
        assert ("any number of care cycles" if lang == "en" else "elk aantal zorgtrajecten") in footnote
    assert secondary > 0  # the demo has cells withheld only to protect others
    explained = " ".join(str(c.value) for row in wb[wb.sheetnames[-1]].iter_rows() for c in row if c.value)
    assert marker in explained and ("secondary" if lang == "en" else "secundaire") in explained.lower()


def test_number_formats(workbook):
    _, rows = _rows(workbook["Colorectal cancer"])
    by_kind = {}
    for row in rows:
        by_kind.setdefault(row["Type"].value, row)
    adjusted = t("column.adjusted", "en")
    assert by_kind["Proportion"][adjusted].number_format == "0.0%"
    assert by_kind["Proportion"]["O/E"].number_format == "0.00"
    assert by_kind["Proportion"]["Care cycles"].number_format == "#,##0"
    assert by_kind["Cost per care cycle"][adjusted].number_format == "€ #,##0"
    assert by_kind["PROM response rate"][adjusted].number_format == "0.0%"
    _, costs = _rows(workbook["Costs"])
    assert costs[0]["Cost per care cycle"].number_format == "€ #,##0"
    _, proms = _rows(workbook["PROMs"])
    assert proms[0]["Response rate"].number_format == "0.0%"


def test_frozen_header_autofilter_widths_chart_and_fill(workbook):
    for name in ("Summary", "Colorectal cancer", "PROMs", "Costs"):
        ws = workbook[name]
        assert ws.freeze_panes is not None and ws.freeze_panes.endswith(str(HEADER_ROW + 1))
        assert ws.auto_filter.ref.startswith(f"A{HEADER_ROW}:")
        assert ws.column_dimensions["A"].width >= 14
    ws = workbook["Colorectal cancer"]
    assert ws.freeze_panes == "G4"  # indicator, key, type, tier, unit and its name stay in view
    assert len(ws._charts) == 1  # native Excel bar chart: O/E per unit
    chart = ws._charts[0]
    assert "O/E per unit" in "".join(r.t for p in chart.title.tx.rich.p for r in (p.r or []))
    rules = [rule for cf in ws.conditional_formatting for rule in cf.rules]
    # the verdict and position columns coloured by the assessment kept in hidden helper columns
    assert any(r.type == "expression" and '"Worse than expected"' in r.formula[0] for r in rules)


def test_one_verdict_column_as_on_the_dashboard(workbook, results):
    from vbhc.verdict import verdict

    res, _ = results
    header, rows = _rows(workbook["Summary"])
    assert t("verdict.column", "en") in header
    assert t("report.position_95", "en") not in header and t("report.position_998", "en") not in header
    table = pd.concat([suppress_table(r.table, SuppressionRule(10)) for r in res], ignore_index=True)
    table = table[table["key"].astype(bool)].set_index(["label_en", "unit"])
    checked = 0
    for row in rows:
        expected = table.loc[(row["Indicator"].value, row["Unit"].value)]
        if isinstance(expected, pd.DataFrame):  # the same indicator label in two conditions
            continue
        if not expected["suppressed"]:
            assert row[t("verdict.column", "en")].value == verdict(expected).sentence("en")
            checked += 1
    assert checked > 10


def test_cover_states_provenance_and_rules(workbook, results):
    _, batches = results
    text = "\n".join(str(c.value) for row in workbook["Cover"].iter_rows() for c in row if c.value is not None)
    for sha in batches["sha256"]:
        assert sha in text
    assert "fewer than 10 care cycles" in text
    assert "Patient-level data: not included" in text
    assert "Colorectal cancer, Hip osteoarthritis" in text
    methods = "\n".join(str(c.value) for row in workbook["Methods"].iter_rows() for c in row if c.value is not None)
    assert "Case-mix variables" in methods and "ASA class" in methods  # by its label, not its id (asa)


def test_dutch_labels(results):
    res, _ = results
    wb = load_workbook(io.BytesIO(build_workbook(res[:1], lang="nl")))
    assert wb.sheetnames[:3] == ["Voorblad", "Samenvatting", "Darmkanker"]
    header = [c.value for c in wb["Darmkanker"][HEADER_ROW]]
    assert "Gecorrigeerd" in header and "Zorgtrajecten" in header


def test_patient_rows_only_on_request_and_never_patient_id(results):
    res, _ = results
    wb = load_workbook(io.BytesIO(build_workbook(res[:1], lang="en", include_patient_rows=True)), read_only=True)
    assert "Care cycles" in wb.sheetnames
    ws = wb["Care cycles"]
    header = [c.value for c in next(ws.iter_rows(min_row=HEADER_ROW, max_row=HEADER_ROW))]
    assert "Care cycle (pseudonym)" in header
    assert not any("patient" in str(h).lower() for h in header)
    ids = {str(r[1]) for r in ws.iter_rows(min_row=HEADER_ROW + 1, max_row=HEADER_ROW + 50, values_only=True)}
    patient_ids = set(res[0].data.cycles["patient_id"].astype(str))
    assert not ids & patient_ids


# --- a small hand-made registry: everything below the threshold, and formula injection -------------------
@pytest.fixture(scope="module")
def small_result(tmp_path_factory):
    from vbhc.store import get_engine, upgrade_schema

    folder = tmp_path_factory.mktemp("small")
    engine = get_engine(f"sqlite:///{folder / 'small.db'}")
    upgrade_schema(engine)
    import_files(write_small_registry(folder / "files"), engine, imported_by="test")
    result = compute_results(["hip_osteoarthritis"], None, "hospital", engine=engine)[0]
    yield result, import_batches(engine)
    engine.dispose()


def test_small_registry_withholds_every_count(small_result):
    result, batches = small_result
    assert (result.table["n"] < 10).all()
    wb = load_workbook(io.BytesIO(build_workbook([result], lang="en", batches=batches)))
    _, rows = _rows(wb["Hip osteoarthritis"])
    assert rows
    for row in rows:
        for key in ("column.care_cycles", "column.observed", "column.adjusted", "report.ci_lower", "column.oe"):
            assert row[t(key, "en")].value == "withheld"
    _, summary = _rows(wb["Summary"])
    assert all(r["Care cycles"].value == "withheld" for r in summary)
    # no count of the small registry survives anywhere in the numbers of the PROM and cost sheets
    for name in ("PROMs", "Costs"):
        _, rows = _rows(wb[name])
        numbers = [c.value for r in rows for c in r.values() if isinstance(c.value, int | float)]
        assert numbers == []


def test_threshold_edge_exactly_ten_is_shown(small_result):
    result, _ = small_result
    table = result.table.copy()
    table.loc[table.index[0], "n"] = 10
    table.loc[table.index[1], "n"] = 9
    edited = type(result)(result.condition, result.level, result.period, table, data=result.data)
    wb = load_workbook(io.BytesIO(build_workbook([edited], lang="en")))
    _, rows = _rows(wb["Hip osteoarthritis"])
    assert rows[0]["Care cycles"].value == 10
    assert rows[1]["Care cycles"].value == "withheld"


def test_formula_in_a_label_comes_out_as_text(small_result):
    result, _ = small_result
    evil = '=HYPERLINK("http://example.invalid/x","click")'
    table = result.table.copy()
    table["unit"] = table["unit"].where(table["unit"] != "H01", evil)
    table["label_en"] = table["label_en"].where(table.index != table.index[0], "+cmd|' /C calc'!A0")
    edited = type(result)(result.condition, result.level, result.period, table, data=result.data)
    content = build_workbook([edited], lang="en", suppress_below=0)
    wb = load_workbook(io.BytesIO(content))
    cells = [c for ws in wb.worksheets for row in ws.iter_rows() for c in row]
    assert not any(c.data_type == "f" for c in cells)
    texts = {c.value for c in cells if isinstance(c.value, str)}
    assert "'" + evil in texts
    assert evil not in texts
    assert "'+cmd|' /C calc'!A0" in texts
    assert b"<f>" not in content


def test_no_suppression_is_stated(small_result):
    result, _ = small_result
    wb = load_workbook(io.BytesIO(build_workbook([result], lang="en", suppress_below=0)))
    text = " ".join(str(c.value) for row in wb["Cover"].iter_rows() for c in row if c.value)
    assert "no suppression applied" in text
    _, rows = _rows(wb["Hip osteoarthritis"])
    assert any(isinstance(r["Care cycles"].value, int) for r in rows)


def test_empty_results_are_refused():
    with pytest.raises(ValueError, match="no indicator results"):
        build_workbook([], lang="en")


def test_unknown_language_is_refused(small_result):
    from vbhc.reports import ReportError

    with pytest.raises(ReportError, match="unknown language 'de'"):
        build_workbook([small_result[0]], lang="de")


def test_suppress_table_keeps_benchmark_and_marks_rows():
    table = pd.DataFrame(
        {
            "n": [5, 10, 50],
            "observed": [1.0, 2.0, 5.0],
            "adjusted_value": [0.2, 0.2, 0.1],
            "target": [0.15, 0.15, 0.15],
            "lower_95": [0.0, 0.01, 0.05],
            "position_95": ["within", "within", "within"],
        }
    )
    out = suppress_table(table, SuppressionRule(10))
    assert out["suppressed"].tolist() == [True, False, False]
    assert math.isnan(out.loc[0, "observed"]) and math.isnan(out.loc[0, "n"]) and math.isnan(out.loc[0, "lower_95"])
    assert out.loc[0, "position_95"] is None
    assert out["target"].tolist() == [0.15, 0.15, 0.15]
    assert table.loc[0, "n"] == 5  # the input is not changed


def test_the_oe_chart_names_its_bars_by_the_units_names(results, small_demo_registry):
    """The O/E chart's bars are labelled from a hidden column of the units' names; the id stays in the Unit
    column for filtering (an id on a chart is for no reader)."""
    from vbhc.reports.core import unit_names_for

    engine, _ = small_demo_registry
    res, batches = results
    for lang in ("en", "nl"):
        names = unit_names_for(res, lang, engine)
        book = load_workbook(io.BytesIO(build_workbook(res, lang=lang, batches=batches, unit_names=names)))
        ws = book[default_catalog().condition(CONDITIONS[0]).label(lang)]
        (chart,) = ws._charts
        ref = chart.series[0].cat.strRef.f if chart.series[0].cat.strRef else chart.series[0].cat.numRef.f
        bars = [c.value for row in ws[ref.rsplit("!", 1)[1].replace("$", "")] for c in row]
        assert bars and set(bars) <= set(names.values()), bars[:3]
        assert "Universitair Medisch Centrum Veenmeer" in bars


def test_every_table_of_units_names_them_beside_their_id(results, small_demo_registry):
    """A sheet of H01..H10 cannot be read without the registry's list of units: every table with a Unit
    column (the id, kept for filtering and joining) has the unit's name beside it, visible, in the workbook's
    language; the hidden helper columns carry headers a reader can read when they unhide them (no raw keys)."""
    from vbhc.reports.core import unit_names_for

    engine, _ = small_demo_registry
    res, batches = results
    for lang in ("en", "nl"):
        names = unit_names_for(res, lang, engine)
        book = load_workbook(io.BytesIO(build_workbook(res, lang=lang, batches=batches, unit_names=names)))
        sheets = [t(f"report.sheet_{key}", lang) for key in ("summary", "proms", "costs")]
        sheets.append(default_catalog().condition(CONDITIONS[0]).label(lang))
        for name in sheets:
            ws = book[name]
            header = [c.value for c in ws[HEADER_ROW]]
            unit_col = header.index(t("column.unit", lang))
            assert header[unit_col + 1] == t("column.unit_name", lang), (name, header)
            assert not ws.column_dimensions[get_column_letter(unit_col + 2)].hidden
            pairs = [
                (r[unit_col].value, r[unit_col + 1].value)
                for r in ws.iter_rows(min_row=HEADER_ROW + 1)
                if r[unit_col].value is not None and r[0].value is not None
            ]
            assert pairs, name
            assert all(shown == names[str(unit)] for unit, shown in pairs), (name, pairs[:3])
            assert not [h for h in header if isinstance(h, str) and "_" in h], (name, header)


def test_with_external_figures_the_summary_and_the_oe_chart_name_the_benchmark_population(results):
    """A table compared with external figures (vbhc.external.combine names its population in the column
    `benchmark_population`): the summary sheet's subtitle and the condition's O/E chart name it, as the cover and
    the condition sheet do; the other condition, compared with the registry's units, names none."""
    import dataclasses

    res, batches = results
    population = "national registry 2024, 9 hospitals"
    first = res[0]
    external = dataclasses.replace(first, table=first.table.assign(benchmark_population=population))
    book = load_workbook(io.BytesIO(build_workbook([external, *res[1:]], lang="en", batches=batches)))
    named = f"Benchmark: {population}"
    summary = book["Summary"]
    subtitle = " ".join(str(c) for row in summary.iter_rows(max_row=HEADER_ROW - 1, values_only=True) for c in row if c)
    assert f"Colorectal cancer: {named}" in subtitle and "Hip osteoarthritis:" not in subtitle, subtitle
    (chart,) = book[SHEETS[CONDITIONS[0]]]._charts
    title = "".join(r.t for p in chart.title.tx.rich.p for r in (p.r or []))
    assert title.endswith(f" · {named}"), title
    (other,) = book[SHEETS[CONDITIONS[1]]]._charts
    assert "Benchmark" not in "".join(r.t for p in other.title.tx.rich.p for r in (p.r or []))


def test_a_dutch_workbook_names_the_casemix_the_standard_set_and_the_tables_in_dutch(results):
    """The methods sheet listed the case-mix variables by their ids (`age, sex, asa, ...`) under the standard set's
    English name, the cover the imported tables by theirs (`care_cycles`)."""
    from vbhc.catalog import default_catalog
    from vbhc.i18n import catalog

    res, batches = results
    wb = load_workbook(io.BytesIO(build_workbook(res[:1], lang="nl", batches=batches)))
    condition = default_catalog().condition(res[0].condition)
    methods = [str(c.value) for row in wb["Methoden"].iter_rows() for c in row if c.value is not None]
    assert ", ".join(v.label("nl") for v in condition.casemix) in methods
    assert f"{condition.label('nl')} — {condition.standard_set_label('nl')}" in methods
    assert condition.standard_set not in " ".join(methods)
    cover = {str(c.value) for row in wb["Voorblad"].iter_rows() for c in row if c.value is not None}
    assert not set(batches["table_name"]) & cover
    assert catalog("nl")["import_table.care_cycles"] in cover
