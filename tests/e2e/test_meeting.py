"""A monthly improvement meeting played in a real browser, in Dutch, in local mode: the care team opens the meeting
page of its condition, explains a new signal, decides on it, starts an improvement action, reads the action's
before and after, records the meeting's decisions and downloads the minutes as PDF and DOCX, which must hold the
explanation and the decision. Then it is the next month: the month's registry files are imported with `vbhc
import`, as the data steward does, and the team page draws the started action on the indicator's trend chart,
and the meeting page lists it as under way.

The meeting writes to the database, so it runs on its own registry and its own server (local mode: every role, no
sign-in): the walks of tests/e2e/test_pages.py keep the registry they expect. That registry is the meeting's
condition of the browser tests' demo registry, imported from the same generator files without its last month
(NEXT_MONTH on), which the test imports after the meeting.
"""

from __future__ import annotations

import datetime as dt
import io
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from playwright.sync_api import Locator, Page, expect
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from tests.e2e.conftest import PROJECT_ROOT, StreamlitServer, demo_files
from tests.e2e.test_browser import RUN_TIMEOUT_MS, SETTLED_MS, wait_for_charts, wait_for_title
from tests.e2e.test_pages import (
    OWN,
    assert_clean,
    click_for_a_run,
    close_lists,
    main,
    set_date,
    settle,
    team_title,
)
from vbhc import action_effect, improvement, minutes
from vbhc.access import Role, Scope, Viewer
from vbhc.catalog import default_catalog
from vbhc.i18n import t
from vbhc.improvement import Flag, Rule
from vbhc.indicators import compute_indicators, load_condition_data
from vbhc.ingest import import_files
from vbhc.settings import catalog_dir
from vbhc.store import get_engine

pytestmark = pytest.mark.browser

LANG = "nl"
CONDITION = "colorectal_cancer"
INDICATOR = "anastomotic_leak"
EXPLANATION = "Naadlekkages sinds het nieuwe nietapparaat"
DECISION_NOTE = "Verbetertraject starten met de chirurgen"
ACTION_TITLE = "Terug naar het oude nietapparaat"
START = dt.date(2024, 1, 1)
READER = Viewer("e2e", "e2e", (Scope(Role.QUALITY),))
#: The first day of the demo's last month of care cycles (LAST_INDEX's month): imported after the meeting.
NEXT_MONTH = dt.date(2025, 12, 1)


def split_at_month(
    files: list[Path], first_day: dt.date, folder: Path, condition: str
) -> tuple[list[Path], list[Path]]:
    """The generator's registry files of `condition` as two deliveries: the care cycles with an index date before
    `first_day` (with their outcomes, PROMs and costs, and the units), and the month's from `first_day` on. Values
    are copied as text, unchanged."""
    cycles = pd.read_csv(files[1], dtype=str, keep_default_na=False)
    cycles = cycles[cycles["condition"] == condition]
    later = set(cycles.loc[pd.to_datetime(cycles["index_date"]).dt.date >= first_day, "cycle_id"])
    parts: tuple[list[Path], list[Path]] = ([files[0]], [])
    for file in files[1:]:
        rows = cycles if file == files[1] else pd.read_csv(file, dtype=str, keep_default_na=False)
        rows = rows[rows["cycle_id"].isin(set(cycles["cycle_id"]))]
        month = rows["cycle_id"].isin(later)
        for part, (name, kept) in zip(parts, (("before", rows[~month]), ("month", rows[month])), strict=True):
            (folder / name).mkdir(exist_ok=True)
            kept.to_csv(folder / name / file.name, index=False)
            part.append(folder / name / file.name)
    return parts


def one_condition_catalog(folder: Path) -> Path:
    """A copy of the shipped catalog with only the meeting's condition (and the shared instruments, case-mix
    labels and cost activities)."""
    conditions = set(default_catalog().conditions) - {CONDITION}
    target = folder / "catalog"
    target.mkdir()
    for file in catalog_dir().glob("*.toml"):
        if file.stem not in conditions:
            shutil.copy2(file, target / file.name)
    return target


@pytest.fixture(scope="module")
def meeting_app(
    _servers, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[StreamlitServer, object, str, list[Path], Path]]:
    """Its own server on the demo registry of the meeting's condition without its last month, with one new signal
    of the own hospital (as an import's detection would record it). Yields (server, engine, the signal's item id,
    the month's files, the catalog folder).

    One condition (a catalog of it alone, VBHC_CATALOG_DIR): a new import makes every indicator view of the data
    stale, and the server computes them again; for seven conditions that took about 40 s of a 2-core machine."""
    folder = tmp_path_factory.mktemp("e2e-meeting")
    before, month = split_at_month(demo_files(_servers[0].database_url), NEXT_MONTH, folder, CONDITION)
    database_url = f"sqlite:///{folder / 'meeting.db'}"
    catalog = one_condition_catalog(folder)
    server = StreamlitServer(  # boots while the registry is imported
        database_url, folder / "streamlit.log", env={"VBHC_CATALOG_DIR": str(catalog)}
    )
    engine = get_engine(database_url)
    try:
        import_files(before, engine, imported_by="e2e")
        flag = Flag("H01", INDICATOR, Rule.FUNNEL_998, "worse", 0.21)
        improvement.record_detection(engine, "import", CONDITION, "hospital", "e2e", [flag])
        [signal] = improvement.signals(engine, READER, CONDITION, unit="H01", status=[improvement.SignalStatus.NEW])
        server.wait_until_healthy()
        yield server, engine, signal.item_id, month, catalog
    finally:
        server.stop()
        engine.dispose()


def _form(page: Page, key: str) -> Locator:
    """A form's expander on the meeting page, opened, with its form drawn. A page still running (the run a page
    load or sign-in asked for, on a loaded machine) can draw the expander again closed after the click: it is
    opened again, as a person would, until its form shows (CI once waited 30 s for the goal form's first box)."""
    expander = main(page).get_by_test_id("stExpander").filter(has_text=t(key, LANG)).first
    details = expander.locator("details").first
    settle(page)
    for attempt in range(3):
        if details.get_attribute("open") is None:
            expander.locator("summary").first.click()
        try:
            expander.get_by_test_id("stForm").first.wait_for(timeout=SETTLED_MS)
            break
        except PlaywrightTimeoutError:
            if attempt == 2:
                raise
    return expander


def _choose_in_form(page: Page, box: Locator, option: str) -> None:
    """Pick an option of a selectbox inside a form (no script run until the form is submitted)."""
    _click_in_list(page, box, page.get_by_role("option", name=option, exact=True).first)


def _click_in_list(page: Page, box: Locator, option: Locator) -> None:
    """Open a box's list and click `option` in it. A run still drawing the page (a loaded machine) can replace the
    list under the pointer (the option is then detached and the click times out): open it again, at most three
    times, as tests.e2e.test_pages.pick does."""
    box.focus()
    for attempt in range(3):
        box.click()
        try:
            option.click(timeout=SETTLED_MS)
            return
        except PlaywrightTimeoutError:
            if attempt == 2:
                raise
            page.keyboard.press("Escape")


def _submit(page: Page, scope: Locator, key: str) -> None:
    """Submit a form: its button clicked until the click asks for a script run (a lost click wrote nothing)."""
    click_for_a_run(page, scope.get_by_role("button", name=t(key, LANG), exact=True), key)
    assert_clean(page)


def _saved(page: Page) -> None:
    """The form's write succeeded: a success message, no error line."""
    expect(main(page).get_by_test_id("stAlertContentSuccess").first).to_be_visible(timeout=SETTLED_MS)
    assert main(page).get_by_test_id("stAlertContentError").count() == 0, main(page).inner_text()[:2000]


def _download(page: Page, key: str, path: Path) -> bytes:
    button = main(page).get_by_role("button", name=t(key, LANG), exact=True)
    with page.expect_download(timeout=RUN_TIMEOUT_MS) as info:
        button.click()
    info.value.save_as(path)
    return path.read_bytes()


def _docx_text(data: bytes) -> str:
    from docx import Document

    doc = Document(io.BytesIO(data))
    cells = [c.text for table in doc.tables for row in table.rows for c in row.cells]
    return "\n".join([p.text for p in doc.paragraphs] + cells)


def _pdf_text(data: bytes) -> str:
    """The PDF's text in the order it was written (cell by cell, as tests/test_minutes.py reads it), with the
    table cells' line breaks undone."""
    from pypdf import PdfReader

    return " ".join(" ".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages).split())


def test_a_monthly_meeting_in_dutch(page: Page, meeting_app, tmp_path: Path) -> None:
    server, engine, signal_id, next_month, catalog = meeting_app
    condition = default_catalog().condition(CONDITION)
    leak = condition.indicator(INDICATOR).label(LANG)
    page.goto(f"{server.url}/meeting?lang={LANG}&condition={CONDITION}")
    wait_for_title(page, t("agenda.title", LANG))
    assert_clean(page)
    # the new signal is on the agenda, named by its indicator and unit, never by its item id (the browser fetches a
    # table's code when a page first shows one, from a server that may be busy preparing the views of the new data
    # in the background: wait for it)
    agenda_table = main(page).locator("table").filter(has_text=leak).filter(has_text=OWN).first
    expect(agenda_table).to_be_visible(timeout=RUN_TIMEOUT_MS)
    expect(main(page).get_by_text(signal_id)).to_have_count(0)

    # explain the new signal: a real difference, in the team's words
    form = _form(page, "agenda.form_explain")
    _choose_in_form(page, form.get_by_role("combobox").first, f"{leak} · {OWN}")
    form.get_by_text(t("improvement.explanation_real", LANG), exact=True).click()
    form.get_by_label(t("agenda.field_explanation_text", LANG)).fill(EXPLANATION)
    _submit(page, form, "agenda.submit_explain")
    _saved(page)
    assert improvement.signals(engine, READER, CONDITION, unit="H01")[0].explanation_text == EXPLANATION

    # decide on it: an improvement action
    form = _form(page, "agenda.form_decide")
    form.get_by_text(t("improvement.decision_action", LANG), exact=True).click()
    _submit(page, form, "agenda.submit_decide")
    _saved(page)

    # the action, linked to the indicator, started (under way) at the beginning of 2024
    form = _form(page, "agenda.form_action")
    form.get_by_label(t("agenda.field_title", LANG)).fill(ACTION_TITLE)
    form.get_by_label(t("agenda.field_owner_role", LANG)).fill("chirurg")
    start = form.get_by_test_id("stDateInput").filter(has_text=t("agenda.field_start", LANG)).first
    set_date(page, start, START.year, START.month, START.day)
    form.get_by_text(t("improvement.action_in_progress", LANG), exact=True).click()
    _choose_in_form(page, form.get_by_role("combobox", name=t("agenda.field_indicator", LANG)), leak)
    _submit(page, form, "agenda.submit_action")
    _saved(page)
    [action] = [a for a in improvement.actions(engine, READER, CONDITION) if a.title == ACTION_TITLE]
    assert (action.start, action.indicator_ids, action.status) == (START, [INDICATOR], "in_progress")

    # its before and after: the same verdict as vbhc.action_effect on the registry, with the trend split at the start
    where = action.unit or "H01"
    data = load_condition_data(CONDITION, engine=engine)
    result = compute_indicators(data, level="hospital", indicators=[INDICATOR])
    expected = action_effect.action_effect(result, INDICATOR, where, START).sentence(LANG)
    section = main(page)
    expect(section.get_by_text(t("action_effect.title", LANG), exact=True)).to_be_visible(timeout=SETTLED_MS)
    expect(section.get_by_text(expected)).to_be_visible(timeout=SETTLED_MS)
    expect(section.get_by_text(t("action_effect.chart", LANG), exact=True)).to_be_visible(timeout=SETTLED_MS)

    # record the meeting: who was there, and the decision on the signal with its note
    form = _form(page, "minutes.form")
    chosen = form.locator(".st-key-mt_min_roles [data-tag]")  # a role picked shows as a tag in the box
    for attempt in range(3):  # a pick that a run drawing the page swallowed (CI, once) leaves the box empty: again
        _click_in_list(
            page, form.get_by_role("combobox", name=t("minutes.field_roles", LANG)), page.get_by_role("option").first
        )
        close_lists(page)
        try:
            expect(chosen.first).to_be_visible(timeout=SETTLED_MS // 2)
            break
        except AssertionError:
            if attempt == 2:
                raise
    decision = minutes.decision_label(minutes.ItemDecision.ACTION, LANG)
    _choose_in_form(page, form.locator(f".st-key-mt_min_dec_{signal_id}").get_by_role("combobox"), decision)
    form.locator(f".st-key-mt_min_note_{signal_id}").locator("input").fill(DECISION_NOTE)
    _submit(page, form, "minutes.submit")
    _saved(page)

    # the minutes as PDF and DOCX hold the explanation and the decision
    pdf = _download(page, "minutes.download_pdf", tmp_path / "verslag.pdf")
    assert pdf.startswith(b"%PDF")
    docx = _download(page, "minutes.download_docx", tmp_path / "verslag.docx")
    assert docx.startswith(b"PK")
    for text in (_pdf_text(pdf), _docx_text(docx)):
        assert EXPLANATION in text and DECISION_NOTE in text and decision in text, text[:3000]
    assert_clean(page)

    # the next month: the data steward imports the month's registry files (`vbhc import`; the server prepares the
    # views its pages ask for), and the team looks at the indicator again
    run = subprocess.run(
        [sys.executable, "-m", "vbhc.cli", "import", "--no-precompute", *map(str, next_month)],
        cwd=PROJECT_ROOT,
        env={**os.environ, "VBHC_DATABASE_URL": server.database_url, "VBHC_CATALOG_DIR": str(catalog)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    data = load_condition_data(CONDITION, engine=engine)
    assert pd.to_datetime(data.cycles["index_date"]).max().date() >= NEXT_MONTH  # the month is in the registry

    # the team page: the action the meeting started is drawn on the indicator's trend, a rule at its start with its
    # title, status and start date (Vega's SVG marks carry them as their accessible label)
    page.goto(f"{server.url}/condition_team?lang={LANG}&condition={CONDITION}&indicator={INDICATOR}")
    wait_for_title(page, team_title(CONDITION, OWN, LANG))
    main(page).get_by_role("tab", name=t("team.trend", LANG), exact=True).click()
    settle(page)
    wait_for_charts(page)
    marks = main(page).locator(f'svg [aria-label*="{ACTION_TITLE}"]')
    expect(marks.first).to_be_attached(timeout=SETTLED_MS)
    label = marks.first.get_attribute("aria-label")
    assert t("improvement.action_in_progress", LANG) in label, label
    assert_clean(page)

    # the meeting page lists the action as under way, linked to the indicator
    page.goto(f"{server.url}/meeting?lang={LANG}&condition={CONDITION}")
    wait_for_title(page, t("agenda.title", LANG))
    settle(page)
    row = main(page).locator("table tr").filter(has_text=ACTION_TITLE).first  # by its title: no item id is shown
    expect(row).to_contain_text(t("improvement.action_in_progress", LANG), timeout=RUN_TIMEOUT_MS)
    expect(row).to_contain_text(leak)
    assert_clean(page)
