"""Targets, explanations and actions in the reports (vbhc.reports.followup): the workbook's improvement sheet and
the PDF's section, judged against the report's own suppressed table (a withheld cell stays withheld), in the
report's language, read with the viewer's role rules, and through `make_report` as the command line makes it."""

from __future__ import annotations

import datetime as dt
import io
import re

import pytest
from openpyxl import load_workbook
from pypdf import PdfReader

from tests.pdf_charts import blank_pdf_charts
from tests.registry_files import write_small_registry
from vbhc import improvement
from vbhc.access import AccessDenied, Role, Scope, Viewer
from vbhc.catalog import default_catalog
from vbhc.i18n import t
from vbhc.improvement import Decision, Explanation, Flag, Rule
from vbhc.ingest import import_files
from vbhc.reports import build_pdf, build_workbook, compute_results, make_report
from vbhc.reports.core import unit_names_for
from vbhc.reports.followup import read_follow_up

HIP = "hip_osteoarthritis"
CARE = Viewer("care@example.org", "Care", (Scope(Role.CARE_TEAM, frozenset({HIP})),))
CARE_OTHER = Viewer("breast@example.org", "Breast", (Scope(Role.CARE_TEAM, frozenset({"breast_cancer"})),))
MANAGER = Viewer("manager@example.org", "Manager", (Scope(Role.MANAGER, hospitals=frozenset({"H01"})),))
START = dt.date(2026, 1, 5)


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    """The small hand-made registry (every unit below 10 care cycles) with a goal met, one not met, an explained
    and decided signal, a new one, and an action of each hospital."""
    from vbhc.store import get_engine, upgrade_schema

    folder = tmp_path_factory.mktemp("followup")
    engine = get_engine(f"sqlite:///{folder / 'small.db'}")
    upgrade_schema(engine)
    import_files(write_small_registry(folder / "files"), engine, imported_by="test")
    result = compute_results([HIP], None, "hospital", engine=engine)[0]
    flags = [Flag("H01", "revision_1y", Rule.FUNNEL_998, "worse", 0.2), Flag("H02", "eq5d_change_12m", "spc", "worse")]
    improvement.record_detection(engine, "import", HIP, "hospital", "1-1", flags)
    signal = improvement.signals(engine, CARE, HIP, unit="H01")[0]
    improvement.explain_signal(engine, CARE, signal.item_id, 1, Explanation.REAL, "New implant since March")
    improvement.decide_signal(engine, CARE, signal.item_id, 2, Decision.ACTION)
    improvement.set_target(engine, CARE, HIP, "revision_1y", 0.05, valid_from=START)
    improvement.set_target(engine, CARE, HIP, "cost_per_cycle", 3000, unit="H01", valid_from=START)
    improvement.create_action(
        engine,
        CARE,
        HIP,
        "=HYPERLINK(implant review)",
        "orthopaedic surgeon",
        START,
        dt.date(2026, 6, 30),
        unit="H01",
        indicators=["revision_1y"],
        signals=[signal.item_id],
        expected_effect="Fewer revisions within a year",
    )
    improvement.create_action(engine, CARE, HIP, "Elsewhere", "nurse", START, START, unit="H02")
    yield engine, result
    engine.dispose()
    get_engine.cache_clear()


def _sheet_rows(content: bytes, lang: str = "en") -> list[list]:
    wb = load_workbook(io.BytesIO(content))
    assert t("report.sheet_improvement", lang) in wb.sheetnames
    condition = default_catalog().condition(HIP).label(lang)
    assert wb.sheetnames.index(t("report.sheet_improvement", lang)) == wb.sheetnames.index(condition) + 1
    return [list(r) for r in wb[t("report.sheet_improvement", lang)].iter_rows(values_only=True)]


def test_the_workbook_shows_targets_met_signals_explained_and_actions(registry):
    engine, result = registry
    follow = read_follow_up(engine, CARE, [HIP])
    rows = _sheet_rows(build_workbook([result], lang="en", suppress_below=0, follow_up=follow))
    targets = {(r[1], r[3]): r for r in rows if r[0] == "Hip osteoarthritis" and r[4] == "Team goal"}
    revision = "Revision within 1 year"
    assert set(targets) == {(revision, "H01"), (revision, "H02"), ("Cost per care cycle", "H01")}
    assert targets[(revision, "H01")][2] == "All units" and targets[(revision, "H01")][10] == "Met"
    assert targets[("Cost per care cycle", "H01")][9:] == [pytest.approx(3882.5), "Not met"]
    signal = next(r for r in rows if "New implant since March" in r)
    assert signal[2:6] == ["H01", "Outside the 99.8% limits", "Worse", 0.2] and signal[10] == "Action"
    action = next(r for r in rows if r[3] == "orthopaedic surgeon")
    assert action[1] == "'=HYPERLINK(implant review)"  # formula-safe, like every text cell
    assert (
        action[2] == "H01"
        and action[4].date() == START
        and action[6:9]
        == [
            "Planned",
            revision,
            "Fewer revisions within a year",
        ]
    )


def test_the_small_number_rule_withholds_what_a_target_or_signal_would_give_back(registry):
    engine, result = registry
    rows = _sheet_rows(
        build_workbook([result], lang="en", suppress_below=10, follow_up=read_follow_up(engine, CARE, [HIP]))
    )
    targets = [r for r in rows if r[4] == "Team goal"]
    assert targets and all(r[9:11] == ["withheld", "withheld"] for r in targets)
    assert next(r for r in rows if "New implant since March" in r)[5] == "withheld"
    assert any(r[0] and "not shown, for one of two reasons" in str(r[0]) for r in rows)  # the footnote


def test_the_pdf_section_in_dutch_for_one_condition_team(registry, monkeypatch):
    from PIL import Image

    from vbhc.reports import pdf

    engine, result = registry
    blank = io.BytesIO()
    Image.new("RGB", (4, 3), "white").save(blank, format="PNG")
    # the charts are tested in tests/test_reports_pdf.py; rendering them is most of a report's time
    monkeypatch.setattr(pdf, "render_chart", lambda chart, scale=pdf.CHART_SCALE: blank.getvalue())
    content = build_pdf(result, "H01", lang="nl", suppress_below=0, follow_up=read_follow_up(engine, CARE, [HIP]))
    text = " ".join(" ".join(p.extract_text().split()) for p in PdfReader(io.BytesIO(content)).pages)
    for key in ("report.improvement_title", "report.improvement_signals", "agenda.targets", "agenda.actions"):
        assert t(key, "nl") in text
    assert "New implant since March" in text and "=HYPERLINK(implant review)" in text
    assert t("agenda.met_yes", "nl") in text and t("agenda.met_no", "nl") in text
    assert t("improvement.decision_action", "nl") in text and t("improvement.action_planned", "nl") in text
    assert "Elsewhere" not in text  # H02's action is not this team's


def test_the_pdfs_targets_name_the_reports_own_unit_in_a_few_words(registry, monkeypatch):
    """The targets table's narrow "Target for" column broke the own unit's full name into a line per word
    ("Universitair / Medisch / Centrum / Veenmeer"); the section's heading names the unit, so its targets say
    "this unit"."""
    from PIL import Image

    from vbhc.reports import pdf

    engine, result = registry
    blank = io.BytesIO()
    Image.new("RGB", (4, 3), "white").save(blank, format="PNG")
    monkeypatch.setattr(pdf, "render_chart", lambda chart, scale=pdf.CHART_SCALE: blank.getvalue())
    long_name = "Universitair Medisch Centrum Veenmeer"
    content = build_pdf(
        result,
        "H01",
        lang="nl",
        suppress_below=0,
        follow_up=read_follow_up(engine, CARE, [HIP]),
        unit_names={"H01": long_name},
    )
    lines = [line.strip() for p in PdfReader(io.BytesIO(content)).pages for line in p.extract_text().splitlines()]
    start = lines.index(t("agenda.targets", "nl"))
    table = lines[start : start + 12]
    assert not set(table) & set(long_name.split()), table  # no line holds one word of the name alone
    assert any(t("report.target_this_unit", "nl") in line for line in table), table


def test_items_are_read_with_the_viewers_role_rules_and_the_command_line_includes_them(registry, tmp_path):
    engine, _ = registry
    with pytest.raises(AccessDenied):
        read_follow_up(engine, CARE_OTHER, [HIP])
    status_only = read_follow_up(engine, MANAGER, [HIP])[HIP]
    assert [s.explanation_text for s in status_only.signals if s.unit == "H01"] == [""]
    assert {a.unit for a in status_only.actions} == {"H01"}  # not the other hospital's

    path = make_report(tmp_path / "hip.xlsx", fmt="xlsx", conditions=[HIP], lang="nl", engine=engine, actor="cli")
    rows = _sheet_rows(path.read_bytes(), "nl")
    assert any("New implant since March" in r for r in rows)
    assert any(t("agenda.met_yes", "nl") in r or "afgeschermd" in r for r in rows)


#: A unit id as the registry writes it: hospital "H01", department "H03/ORT", condition team "hip@H01".
RAW_UNIT_ID = re.compile(r"\bH\d{2}\b|\b[a-z_]+@\w+")


@pytest.mark.parametrize("level", ["hospital", "department"])
@pytest.mark.parametrize("lang", ["en", "nl"])
def test_the_pdf_names_every_unit_and_shows_no_unit_id(registry, tmp_path, monkeypatch, lang, level):
    """`vbhc report` as the command line makes it: the header, the title page, the headings, the improvement
    tables and the funnel's point labels name the units ("Testziekenhuis Noord"); an id ("H01", "H01/ORT") is
    for key columns of an export, never for a reader of the meeting report."""
    from vbhc.drawing import vl_convert

    vlc = vl_convert()

    engine, _ = registry
    # the charts are pictures in the PDF: their text is read from each placed chart's SVG (below), the PNG left
    # blank (nothing here reads the pictures)
    placed = blank_pdf_charts(monkeypatch)
    unit = "H01" if level == "hospital" else "H01/ORT"
    path = make_report(
        tmp_path / "r.pdf",
        fmt="pdf",
        conditions=[HIP],
        level=level,
        unit=unit,
        lang=lang,
        engine=engine,
        actor="cli",
        suppress_below=0,  # every chart drawn: the small registry is below any threshold
    )
    text = " ".join(page.extract_text() for page in PdfReader(io.BytesIO(path.read_bytes())).pages)
    assert "Testziekenhuis Noord" in text
    if level == "department":
        assert "Orthopedie" in text
    assert RAW_UNIT_ID.findall(text) == []
    drawn = [vlc.vegalite_to_svg(chart.to_dict(validate=False)) for chart in placed]
    assert drawn, "the report drew no chart"
    labels = [" ".join(re.findall(r">([^<>]+)</text>", svg)) for svg in drawn]
    assert [RAW_UNIT_ID.findall(label) for label in labels if RAW_UNIT_ID.search(label)] == []


@pytest.mark.parametrize("lang", ["en", "nl"])
def test_the_workbook_shows_unit_ids_only_in_its_key_columns(registry, tmp_path, lang):
    """The workbook keeps unit ids for filtering and joining, in the columns headed Unit and Target unit; no
    other cell (titles, cover, verdicts, improvement texts) and not the O/E chart's bars show an id."""
    engine, _ = registry
    path = make_report(
        tmp_path / "r.xlsx", fmt="xlsx", conditions=[HIP], lang=lang, engine=engine, actor="cli", suppress_below=0
    )
    book = load_workbook(io.BytesIO(path.read_bytes()))
    keys = {t("column.unit", lang), t("report.col_target_unit", lang)}
    found, keyed = [], 0
    for ws in book.worksheets:
        key_columns: set[int] = set()
        for row in ws.iter_rows():
            texts = {c.column: str(c.value) for c in row if c.value is not None}
            if keys & set(texts.values()) and len(texts) > 2:  # a table's header row
                key_columns = {col for col, text in texts.items() if text in keys}
                continue
            for col, text in texts.items():
                if RAW_UNIT_ID.search(text):
                    if col in key_columns and not ws.column_dimensions[row[0].column_letter].hidden:
                        keyed += 1
                    else:
                        found.append(f"{ws.title}!{row[0].row},{col}: {text}")
    assert keyed, "no unit id in a key column: the check would pass on anything"
    assert found == []
    # the improvement sheet's targets, signals and actions name their unit (a sentence-like table, no key)
    improvement = book[t("report.sheet_improvement", lang)]
    shown = [str(c.value) for row in improvement.iter_rows() for c in row if c.value is not None]
    assert "Testziekenhuis Noord" in shown
    assert not [text for text in shown if RAW_UNIT_ID.fullmatch(text)]


#: What the store keeps and a reader must never see in a report: catalog ids and the stored values of choices.
RAW_VALUE = re.compile(
    r"\b(hip_osteoarthritis|revision_1y|cost_per_cycle|eq5d_change_12m|team_goal|external_norm|in_progress"
    r"|planned|funnel_998|case_mix|data_error|no_action|real|action|worse|spc)\b"
)


def _follow_up_words(lang: str) -> list[str]:
    """The words the improvement part of a report must show in `lang`: names and labels, never ids."""
    hip = default_catalog().condition(HIP)
    return [
        hip.indicator("revision_1y").label(lang),
        hip.indicator("cost_per_cycle").label(lang),
        t("improvement.target_team_goal", lang),
        t("agenda.met_yes", lang),
        t("agenda.met_no", lang),
        t("improvement.explanation_real", lang),
        t("improvement.decision_action", lang),
        t("improvement.action_planned", lang),
        t("improvement.rule_funnel_998", lang),
        t("improvement.side_worse", lang),
    ]


@pytest.mark.parametrize("lang", ["en", "nl"])
def test_both_reports_show_targets_explanations_and_actions_by_name_in_either_language(registry, monkeypatch, lang):
    """The workbook's improvement sheet and the PDF's section in English and Dutch: the targets (kind, met or not),
    the explanation and decision of the signal, the action with its status and linked indicator, all in the
    report's language and by name; no catalog id or stored value of a choice in any cell or line."""
    from PIL import Image

    from vbhc.reports import pdf

    engine, result = registry
    follow = read_follow_up(engine, CARE, [HIP])
    other = "nl" if lang == "en" else "en"
    words = _follow_up_words(lang)
    # the other language's labels that differ from this one's: they must not show
    foreign = [w for w, mine in zip(_follow_up_words(other), words, strict=True) if w != mine]
    assert len(foreign) >= 6  # the check below can fail: most labels differ between the languages

    rows = _sheet_rows(build_workbook([result], lang=lang, suppress_below=0, follow_up=follow), lang)
    cells = [str(c) for r in rows for c in r if c is not None]
    sheet = "\n".join(cells)
    for word in [*words, "New implant since March", "Fewer revisions within a year", "orthopaedic surgeon"]:
        assert word in cells or word in sheet, (word, sheet[:2000])
    assert not [c for c in cells if RAW_VALUE.search(c)], [c for c in cells if RAW_VALUE.search(c)]
    assert not [w for w in foreign if w in cells], foreign

    blank = io.BytesIO()
    Image.new("RGB", (4, 3), "white").save(blank, format="PNG")
    monkeypatch.setattr(pdf, "render_chart", lambda chart, scale=pdf.CHART_SCALE: blank.getvalue())
    names = unit_names_for([result], lang, engine)  # as make_report passes them
    content = build_pdf(result, "H01", lang=lang, suppress_below=0, follow_up=follow, unit_names=names)
    text = " ".join(" ".join(p.extract_text().split()) for p in PdfReader(io.BytesIO(content)).pages)
    section = text[text.index(t("report.improvement_title", lang)) :]
    section = section[: re.search(r"\b(Page|Pagina) \d+ (of|van) \d+", section).start()]  # to the page's end
    squeezed = section.replace(" ", "")  # a table cell wraps its text anywhere ("Benchmar k")
    for word in [*words, "New implant since March", "orthopaedic surgeon", "Testziekenhuis Noord"]:
        assert word.replace(" ", "") in squeezed, (word, section)
    assert RAW_VALUE.findall(section) == [] and RAW_UNIT_ID.findall(section) == [], section
    assert not [w for w in foreign if w.replace(" ", "") in squeezed], foreign


def _headers(ws) -> set[str]:
    """The header cells of every table of a sheet (the workbook's header fill), of the columns a reader sees."""
    from vbhc.reports.excel import HEADER_FILL

    return {
        str(cell.value)
        for row in ws.iter_rows()
        for cell in row
        if cell.value is not None
        and cell.fill.fgColor.rgb == HEADER_FILL.fgColor.rgb
        and not ws.column_dimensions[cell.column_letter].hidden
    }


@pytest.mark.parametrize("lang", ["en", "nl"])
def test_the_explanation_sheet_says_what_every_column_of_every_sheet_holds(registry, lang):
    """Before: the workbook had no sheet saying what its columns mean (observed, expected, O/E, an interval, n,
    '<10', the verdict...); a quality officer forwarding it had to explain each by hand. Now its last sheet lists per
    sheet every column's header as it appears with what it holds and its unit, after the period, the data's date,
    the source and how withheld cells are written and why; every sheet, in both languages."""
    from vbhc.registry import import_batches
    from vbhc.reports import SuppressionRule

    engine, result = registry
    follow = read_follow_up(engine, CARE, [HIP])
    content = build_workbook(
        [result],
        lang=lang,
        suppress_below=10,
        follow_up=follow,
        include_patient_rows=True,
        batches=import_batches(engine),
    )
    wb = load_workbook(io.BytesIO(content))
    name = t("explain.page_sheet", lang)
    assert wb.sheetnames[-1] == name
    ws = wb[name]
    rows = [list(r) for r in ws.iter_rows(values_only=True)]
    start = next(
        i
        for i, r in enumerate(rows)
        if r[:3] == [t(f"explain.page_col_{k}", lang) for k in ("sheet", "header", "text")]
    )
    explained = {(r[0], r[1]): r[2] for r in rows[start + 1 :] if r[0]}
    assert len(wb.sheetnames) == 9  # cover, summary, condition, improvement, PROMs, costs, methods, cycles, this
    for sheet in wb.sheetnames[:-1]:
        headers = _headers(wb[sheet])
        assert headers, sheet
        missing = [h for h in headers if not (explained.get((sheet, h)) or "").strip()]
        assert missing == [], (lang, sheet, missing)
    # no line for a column no sheet has, and each line a sentence of its own (not the header again)
    assert set(explained) == {(s, h) for s in wb.sheetnames[:-1] for h in _headers(wb[s])}
    assert all(text != header and text.endswith(".") for (_, header), text in explained.items())
    facts = {r[0]: r[1] for r in rows[3:start] if r[0]}
    rule = SuppressionRule.from_settings(10)
    assert rule.marker(lang) in facts[t("explain.page_withheld", lang)]
    assert facts[t("explain.page_withheld", lang)].startswith(rule.statements(lang)[0])
    assert facts[t("explain.page_period", lang)] and facts[t("explain.page_data_date", lang)] is not None
    assert t("report.sheet_cover", lang) in facts[t("explain.page_source", lang)]
    # readable: the columns are wide enough and the explanations wrap
    assert [ws.column_dimensions[c].width for c in "ABC"] == [24, 34, 100]
    cells = [ws.cell(start + 1 + i, 3) for i in range(len(explained))]
    assert all(c.alignment.wrap_text for c in cells)
    assert all((ws.row_dimensions[c.row].height or 15) >= 15 * (len(c.value) // 110 + 1) for c in cells)
    assert any((ws.row_dimensions[c.row].height or 15) > 15 for c in cells)  # a long line is given its lines


def test_a_column_without_an_explanation_is_not_written(registry, monkeypatch):
    """One definition per column: a header whose key has no [explain] line stops the workbook (so a column added
    later without saying what it holds fails every workbook test), rather than a sheet of unexplained columns."""
    from vbhc.reports import excel

    _, result = registry
    real = excel.explanation_key
    monkeypatch.setattr(excel, "explanation_key", lambda key: real(key) + "_new" if key == "cost.share" else real(key))
    with pytest.raises(KeyError, match=r"explain\.cost_share_new"):
        build_workbook([result], lang="en", suppress_below=10)
