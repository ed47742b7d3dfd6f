"""Every page, button, tab and filter in a real browser, for every role and in both languages, plus screenshots of
every page at the meeting screen's size (1440x900) and a phone's (390x844) in tests/artifacts/ (git-ignored).

A page fails on any Streamlit exception box or the word "Traceback" in it. Each role (care team, quality,
manager, admin, and local mode) walks every page of its navigation in English and in Dutch; the signed-in roles use
every control on it in place (local mode opens, checks and photographs every page; its pages' controls are the
quality directorate's and the care team's): every tab and the tabs inside, expander, toggle, checkbox, selectbox,
number and date (the SPC options of the trend too), every download button and every chart's PNG and CSV (file type
and content checked, and the audit log must hold each file's SHA-256 as an export); then each sidebar filter in turn
and the language. The screenshots are taken in the local-mode walk (Shots).
Time matters (2 cores, one shared server per mode): after an action the tests wait for exactly the script runs
it asked for (tests.e2e.test_browser.Runs), never for a fixed time; the long walks that need every condition
(every overview button, every filter with its expected effect, screenshots) run in local mode.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
from pathlib import Path
from typing import ClassVar
from urllib.parse import parse_qs, urlparse

import pytest
from playwright.sync_api import Locator, Page, expect
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from tests.e2e.conftest import DESKTOP, PHONE, StreamlitServer
from tests.e2e.test_browser import (
    RUN_TIMEOUT_MS,
    SETTLED_MS,
    query,
    runs,
    screenshot,
    title,
    wait_for_charts,
    wait_for_run,
    wait_for_title,
)
from tests.e2e.test_sign_in import SIGNED_IN, sign_in
from vbhc.catalog import default_catalog
from vbhc.i18n import catalog as i18n_catalog
from vbhc.i18n import t

pytestmark = pytest.mark.browser

CATALOG = default_catalog()
OWN = "Universitair Medisch Centrum Veenmeer"  # the demo's own hospital (H01)
#: url path of every page -> message key of its title (the team page's title is the condition and unit)
PAGES = {
    "": "app.title",
    "condition_team": None,
    "meeting": "agenda.title",
    "board": "board.title",
    "proms": "proms.title",
    "compare": "compare.title",
    "cost_value": "cost.title",
    "data": "data.title",
    "audit": "audit.title",
    "methods": "methods.title",
}
NAV = {
    "": "nav.overview",
    "condition_team": "nav.condition_team",
    "meeting": "nav.meeting",
    "board": "nav.board",
    "proms": "nav.proms",
    "compare": "nav.compare_departments",
    "cost_value": "nav.cost_value",
    "data": "nav.data",
    "audit": "nav.audit",
    "methods": "nav.methods",
}
#: pages each role's navigation lists (local mode: every page)
ROLE_PAGES = {
    "local": list(PAGES),
    "care": ["", "condition_team", "meeting", "board", "proms", "compare", "cost_value", "methods"],
    "quality": list(PAGES),
    "manager": ["", "condition_team", "meeting", "board", "proms", "compare", "cost_value", "methods"],
    "admin": ["data", "methods"],
}
TEAM_TABS = ("verdicts", "depth", "casemix", "cases")
RAW_ID = re.compile(r"\bH\d\d(/[A-Z]{3})?\b|\b[a-z]+_[a-z_]+@H\d\d\b")  # H01, H03/ORT, colorectal_cancer@H01


def assert_clean(page: Page) -> None:
    """No Streamlit exception box and no traceback anywhere on the page."""
    boxes = page.get_by_test_id("stException")
    assert boxes.count() == 0, "Streamlit exception on the page:\n" + "\n---\n".join(boxes.all_inner_texts())
    text = page.get_by_test_id("stApp").inner_text()
    assert "Traceback" not in text, text[:2000]


def settle(page: Page, *, asks_for_a_run: bool = False) -> bool:
    """After an action: wait for the script runs it asked for to finish (none asked for: return as soon as the page
    has handled the action, tests.e2e.test_browser.Runs.settle). An action that always asks for a run (a new
    option picked, the language switched) waits up to RUN_ASKED_MS for its request to reach the socket: on a loaded
    machine the browser may take seconds to send it. Returns whether a run was asked for: False after an action
    that must ask for one means its click was lost, and the caller makes it again (click_for_a_run, pick)."""
    return runs(page).settle(page, asked_within_ms=RUN_ASKED_MS if asks_for_a_run else None)


#: how long an action that always asks for a script run may take to ask (a loaded 2-core CI machine)
RUN_ASKED_MS = 15_000
#: how long a file the server was asked for may take to build once the first wait ran out (a loaded machine)
DOWNLOAD_BUILT_MS = 2 * RUN_TIMEOUT_MS
#: how often a click that must ask for a script run is made before the test fails
CLICK_TRIES = 3


def click_for_a_run(page: Page, target: Locator, where: str) -> None:
    """Click `target`, which must ask for a script run (a form's submit button, a page's link, the language), and
    wait for that run. A click the page lost on a loaded machine asks for none and sends nothing, so nothing was
    written: it is made again, as a person would (CI once saw a goal form's submit ask for no run in 15 s, and the
    goal was never saved)."""
    for _ in range(CLICK_TRIES):
        target.click()
        if settle(page, asks_for_a_run=True):
            return
    raise AssertionError(f"{where}: {CLICK_TRIES} clicks on {target} asked for no script run")


def upload_and_click(page: Page, uploader: Locator, files: Path | list, button: Locator, where: str) -> None:
    """Give a file uploader its files, wait for the run the upload asks for, then click `button` (an import) until
    its click asks for a run: clicked while the upload's run still drew the page, the click could be lost, and the
    test waited a minute for a message that never came."""
    runs(page).mark = runs(page).now()
    uploader.set_input_files(files)
    settle(page, asks_for_a_run=True)
    click_for_a_run(page, button, where)


def main(page: Page) -> Locator:
    return page.get_by_test_id("stMain")


def nav_link(page: Page, slug: str, lang: str) -> Locator:
    return page.get_by_test_id("stSidebarNav").get_by_role("link", name=t(NAV[slug], lang), exact=True)


def combobox(page: Page, key: str, lang: str) -> Locator:
    return page.get_by_role("combobox", name=t(key, lang), exact=True)


def choose(page: Page, key: str, lang: str, option: str) -> None:
    pick(page, combobox(page, key, lang), option)


def in_form(control: Locator) -> bool:
    """Whether a control sits in an st.form: changing it asks for no run until the form is submitted."""
    return control.locator("xpath=ancestor::*[@data-testid='stForm']").count() > 0


def pick(page: Page, box: Locator, option: str) -> None:
    """Open `box` and pick `option`, then wait for the run the pick asks for (none in a form: its submit button
    asks). A rerun may replace the list under the pointer (the option is then detached): open the box again and
    pick again. A pick that asked for no run (its click lost) is made again, unless the box already shows it."""
    asks = not in_form(box)
    close_lists(page)  # another box's list, still open or closing, may hold an option of the same name
    box.focus()  # a first click on a box without focus often focused it without opening its list (see _pick_other)
    for _ in range(CLICK_TRIES):
        for attempt in range(3):
            box.click()
            try:
                open_list(page).get_by_role("option", name=option, exact=True).first.click(timeout=SETTLED_MS)
                break
            except PlaywrightTimeoutError:
                if attempt == 2:
                    raise
                page.keyboard.press("Escape")
        if _picked(page, box, option, asks=asks):
            return
    raise AssertionError(f"{CLICK_TRIES} picks of {option!r} in {box} asked for no script run")


def _picked(page: Page, box: Locator, option: str, *, asks: bool) -> bool:
    """After a click on `option` in `box`'s list: wait for the run the pick asked for (`asks`: the box is not in a
    form, whose submit button asks instead). False: the click was lost (no run asked, and the box does not show
    the option), and the caller picks again."""
    if not asks:
        settle(page)
        return True
    if settle(page, asks_for_a_run=True):
        return True
    # the option's click was lost: its list may still be open, and while it is the boxes around it are hidden
    # from the accessibility tree (a box found by its place among them is then not found: CI waited 30 s on one)
    close_lists(page)
    try:
        return box.input_value(timeout=SETTLED_MS) == option
    except PlaywrightTimeoutError:  # not found even so: pick again (its click waits for the box)
        return False


def team_title(condition: str, unit: str, lang: str) -> str:
    return f"{CATALOG.conditions[condition].label(lang)} · {unit}"


def indicator_labels(condition: str, lang: str) -> set[str]:
    return {i.label(lang) for i in CATALOG.conditions[condition].indicators if i.kind != "volume"}


def visible(locator: Locator) -> list[Locator]:
    return locator.filter(visible=True).all()


class Exports:
    """The files a walk downloaded, checked as they arrive (type and content) and against the audit log at the end
    (every file recorded with its SHA-256 as an export, charts as `chart_png` / `chart_data`)."""

    MAGIC: ClassVar[dict[str, bytes | None]] = {
        ".png": b"\x89PNG\r\n\x1a\n",
        ".xlsx": b"PK",
        ".pdf": b"%PDF",
        ".csv": None,
    }

    def __init__(self, database_url: str, tmp: Path) -> None:
        self.database_url, self.tmp = database_url, tmp
        self.files: list[tuple[str, str, str, str | None]] = []  # (where, file name, sha256, audited as)

    def take(self, page: Page, button: Locator, where: str, what: str | None = None) -> str:
        """Click a download button and check its file. A click that asked the server for no file (lost while the
        browser was busy) is made again; a file asked for is awaited, not asked for again: a second click built it a
        second time beside the first (the quality directorate's all-conditions workbook, over 20 s on a loaded
        machine, was built three times and the walk failed)."""
        label = button.inner_text().strip()
        watcher = runs(page)
        for attempt in range(3):
            asked = watcher.files_asked
            try:
                with page.expect_download(timeout=RUN_TIMEOUT_MS // 3) as info:
                    if attempt == 0:
                        button.click(timeout=SETTLED_MS * 2)
                    else:  # a popover laid out while the page moved can leave its button past the viewport's edge
                        button.dispatch_event("click")
                download = info.value
                break
            except PlaywrightTimeoutError as error:
                watcher.read_every_sent_frame(page)
                if watcher.files_asked > asked:  # being built: wait for it
                    try:
                        download = page.wait_for_event("download", timeout=DOWNLOAD_BUILT_MS)
                        break
                    except PlaywrightTimeoutError as late:
                        raise AssertionError(f"{where}: {label!r} gave no file in {DOWNLOAD_BUILT_MS} ms") from late
                if attempt == 2:
                    raise AssertionError(f"{where}: {label!r} asked for no file") from error
        name = download.suggested_filename
        suffix = Path(name).suffix
        assert suffix in self.MAGIC, f"{where}: unexpected file {name!r}"
        path = self.tmp / f"{len(self.files)}{suffix}"
        download.save_as(path)
        content = path.read_bytes()
        assert content, f"{where}: {name} is empty"
        if self.MAGIC[suffix]:
            assert content.startswith(self.MAGIC[suffix]), f"{where}: {name} is not a {suffix} file: {content[:16]!r}"
        else:  # CSV: text with a header and at least one row
            lines = content.decode("utf-8-sig").splitlines()
            assert len(lines) >= 2 and ("," in lines[0] or ";" in lines[0]), f"{where}: {name}: {lines[:2]}"
        self.files.append((where, name, hashlib.sha256(content).hexdigest(), what))
        return name

    def assert_audited(self) -> None:
        from tests.e2e.test_sign_in import audit_events

        events = audit_events(self.database_url)
        exports = events[events["action"] == "export"]
        details = zip(exports["sha256"], exports["detail"], strict=True)
        audited = {sha: json.loads(detail or "{}").get("what") for sha, detail in details}
        missing = [(where, name) for where, name, digest, _ in self.files if digest not in audited]
        assert not missing, f"downloads not in the audit log: {missing}"
        wrong = [(where, name, audited[d]) for where, name, d, what in self.files if what and audited[d] != what]
        assert not wrong, f"downloads audited as something else: {wrong}"


def _pick_other(page: Page, box: Locator, where: str) -> str | None:
    """Open a selectbox and pick an option other than the one shown; returns it (None: nothing else to pick)."""
    current = box.input_value()
    close_lists(page)  # another box's list, still open or closing, may hold an option of the same name (pick)
    asks = not in_form(box)
    # focused first: a first click on a box without focus often only focused it, and the list's wait then ran out
    # (9 of 17 boxes of a walk, 2.5 s each); after focus() the click opens it
    box.focus()
    for attempt in range(3):  # a click during a rerun can land on the box the rerun replaces: open it again
        box.click()
        options = open_list(page).get_by_role("option")
        try:
            options.first.wait_for(timeout=SETTLED_MS // 2)
            break
        except PlaywrightTimeoutError as error:
            if attempt == 2:
                raise AssertionError(f"{where}: a selectbox's list does not open: {box}") from error
            page.keyboard.press("Escape")
    texts = [o.strip() for o in options.all_inner_texts()]
    others = [o for o in texts if o and o != current]
    if not others:
        page.keyboard.press("Escape")
        return None
    other = others[-1]
    # picked in the list just read, still open (closing it and opening it again for `pick` cost a box's click, the
    # list's wait and a closing list's Escape each time: ~35 boxes a role's two walks); a click the rerun's list
    # took from under the pointer, or that asked for no run, is made again by `pick`
    try:
        open_list(page).get_by_role("option", name=other, exact=True).first.click(timeout=SETTLED_MS)
    except PlaywrightTimeoutError:
        page.keyboard.press("Escape")
        clicked = False
    else:
        clicked = True
    if not (clicked and _picked(page, box, other, asks=asks)):
        pick(page, box, other)
    close_lists(page)
    assert_clean(page)
    return other


def open_list(page: Page) -> Locator:
    """The list a box just opened: the last one shown. Options are looked for in it alone: the unit box of a
    condition team lists hospitals by name, as the comparison group does, and while the unit's list was still closing
    a pick in the group clicked the unit's own name there (the same unit: no run asked for, three times in CI)."""
    return page.get_by_role("listbox").filter(visible=True).last


def close_lists(page: Page) -> None:
    """Close a list left open (a multiselect's stays open after a pick): while it is open the page around it is
    hidden from the accessibility tree, so a link or button is not found by its role."""
    for _ in range(3):
        if not page.get_by_role("listbox").filter(visible=True).count():
            return
        page.keyboard.press("Escape")
        page.wait_for_timeout(100)
    page.get_by_test_id("stMain").locator("h1").first.click()  # a click outside closes it


def set_date(page: Page, widget: Locator, year: int, month: int, day: int) -> None:
    """Type a date into a date input's segments (day, month and year, in the order its format shows them) and
    leave the widget, which submits it (Enter does not)."""
    segments = widget.get_by_role("spinbutton")
    segments.first.wait_for(timeout=SETTLED_MS)
    segments.first.click()
    for segment in segments.all():  # each segment moves on to the next once full
        top = int(segment.get_attribute("aria-valuemax") or 0)
        page.keyboard.type(f"{day:02d}" if top == 31 else f"{month:02d}" if top == 12 else f"{year:04d}")
    for _ in range(6):  # past the clear and calendar buttons
        if not widget.evaluate("w => w.contains(document.activeElement)"):
            break
        page.keyboard.press("Tab")
    settle(page)


def use_controls(page: Page, scope: Locator, where: str, exports: Exports | None, *, boxes_only: bool = False) -> int:
    """Use every control shown now in `scope` (or only its selectboxes): open the expanders, flip the toggles and
    checkboxes, change each selectbox, set each number and date, click each download button and each chart's
    download menu (PNG and CSV: `exports` checks the files). Returns how many controls were used."""
    used = 0
    if boxes_only:
        return sum(_pick_other(page, box, where) is not None for box in visible(scope.get_by_role("combobox")))
    # the last first: an expander opening moves every element below it while it animates, and a click waits for its
    # element to stand still (Playwright's retries then wait 0.5 s: ~1 s per expander, 10 s of a walk, opened top down)
    for details in reversed(visible(scope.get_by_test_id("stExpander").locator("details"))):
        if details.get_attribute("open") is None:
            details.locator("summary").first.click()
            used += 1
    assert_clean(page)
    for toggle in visible(scope.get_by_test_id("stCheckbox")) + visible(scope.get_by_test_id("stToggle")):
        toggle.locator("label").first.click()
        settle(page)
        assert_clean(page)
        used += 1
    for number in visible(scope.get_by_test_id("stNumberInput").locator("input")):
        number.fill("8")
        number.press("Enter")
        settle(page)
        assert_clean(page)
        assert number.input_value() == "8", f"{where}: the number was not kept"
        used += 1
    for day in visible(scope.get_by_test_id("stDateInput")):
        set_date(page, day, 2024, 1, 1)
        assert_clean(page)
        used += 1
    for box in visible(scope.get_by_role("combobox")):
        if _pick_other(page, box, where) is not None:
            used += 1
    if exports is not None:
        for button in visible(scope.get_by_test_id("stDownloadButton").get_by_role("button")):
            exports.take(page, button, where)
            assert_clean(page)
            used += 1
        for menu in visible(scope.get_by_test_id("stPopover").get_by_role("button")):
            body = open_menu(page, menu)
            buttons = body.get_by_test_id("stDownloadButton").get_by_role("button")
            names = set()
            for button in buttons.all():
                label = button.inner_text()
                kind = "chart_png" if "PNG" in label else "chart_data"
                names.add(exports.take(page, button, where, kind))
            assert {Path(n).suffix for n in names} == {".png", ".csv"}, f"{where}: chart downloads {names}"
            page.keyboard.press("Escape")
            body.wait_for(state="hidden", timeout=SETTLED_MS)
            assert_clean(page)
            used += 1
    return used


#: whether an element lies wholly inside the window (a click cannot scroll a popover that does not into view)
IN_VIEW = """e => {
    const r = e.getBoundingClientRect();
    return r.top >= 0 && r.left >= 0 && r.bottom <= innerHeight && r.right <= innerWidth;
}"""


def open_menu(page: Page, menu: Locator) -> Locator:
    """Open a chart's download menu and return its popover. A menu opened while the page above it was still
    drawing stays where its button was: past the window's edge its buttons cannot be clicked (each click waited
    out its 10 s timeout, 20 s of a walk). Such a menu is closed, its button brought to the window's middle once
    the charts are drawn, and opened again, as a person would; a menu still past the edge after that is left to
    Exports.take's fallback."""
    body = page.get_by_test_id("stPopoverBody").filter(visible=True)
    for _ in range(2):
        menu.click()
        body.get_by_test_id("stDownloadButton").first.wait_for(timeout=SETTLED_MS)
        if body.evaluate(IN_VIEW):
            break
        page.keyboard.press("Escape")
        body.wait_for(state="hidden", timeout=SETTLED_MS)
        wait_for_charts(page)
        menu.evaluate("e => e.scrollIntoView({block: 'center'})")
    else:
        menu.click()
        body.get_by_test_id("stDownloadButton").first.wait_for(timeout=SETTLED_MS)
    return body


def use_every_tab(page: Page, where: str, exports: Exports | None) -> int:
    """Open every tab of the page in turn (the team page's tabs rerun the script and draw only the open tab), and
    in each the tabs inside it; use the controls of every tab. Returns how many controls and tabs were used."""
    names = [n.strip() for n in main(page).get_by_role("tablist").first.get_by_role("tab").all_inner_texts()]
    used = 0
    for name in names:
        main(page).get_by_role("tablist").first.get_by_role("tab", name=name, exact=True).click()
        settle(page)
        assert_clean(page)
        used += 1
        panel = main(page).get_by_role("tabpanel").filter(visible=True).first
        inner_names = [n.strip() for n in panel.get_by_role("tablist").get_by_role("tab").all_inner_texts()]
        for inner_name in inner_names:
            panel.get_by_role("tablist").get_by_role("tab", name=inner_name, exact=True).click()  # no rerun
            assert_clean(page)
            inner = panel.get_by_role("tabpanel").filter(visible=True).first
            used += 1 + use_controls(page, inner, f"{where}/{name}/{inner_name}", exports)
        # the tab's own controls (after its inner tabs: a new indicator may change them)
        used += use_controls(page, panel, f"{where}/{name}", exports, boxes_only=bool(inner_names))
    return used


def visible_text(page: Page) -> str:
    return main(page).inner_text() + "\n" + page.get_by_test_id("stSidebar").inner_text()


def assert_no_raw_ids(page: Page, where: str) -> None:
    """Units by name on screen: no H01, H03/ORT or colorectal_cancer@H01 in titles, captions, boxes or metrics
    (tables and charts are canvases and are checked through their data in the AppTests)."""
    text = visible_text(page)
    text = text.replace("H01/SUR", "")  # the unit picker's help text names an example code
    found = RAW_ID.search(text)
    assert found is None, f"{where}: raw unit id {found.group(0)!r} on screen"
    found = NOT_A_VALUE.search(text)
    assert found is None, f"{where}: {found.group(0)!r} on screen: {_around(text, found)}"
    keys = [key for key in CATALOG_KEYS if key in text and re.search(rf"(?<![\w.]){re.escape(key)}(?![\w.])", text)]
    assert not keys, f"{where}: message keys instead of their text on screen: {keys}"


#: what Python or pandas writes for a missing or boolean value, and vbhc.access's internal name of an anonymised
#: unit: never what a reader should see (a missing value is "–", a yes/no a word, another unit "Other unit 3")
NOT_A_VALUE = re.compile(r"\b(None|nan|NaN|NaT|<NA>|True|False)\b|\bother unit \d")
#: every message key of the catalog (plural keys without their form): a key on screen is a text not looked up
CATALOG_KEYS = sorted({re.sub(r"\.(one|other)$", "", key) for key in i18n_catalog("en")}, key=len, reverse=True)


def _around(text: str, found: re.Match[str]) -> str:
    return repr(text[max(0, found.start() - 80) : found.end() + 80])


# --- the overview's buttons ------------------------------------------------------------------------------------


@pytest.mark.parametrize("lang", ["en", "nl"])
def test_every_overview_button_opens_its_condition_team(page: Page, app_url: str, lang: str) -> None:
    period = "&period=2024" if lang == "nl" else ""  # the other filters survive the switch of page
    page.goto(f"{app_url}/?lang={lang}{period}")
    wait_for_title(page, t("app.title", lang))
    page.locator(f".st-key-open_{list(CATALOG.conditions)[-1]} button:visible").first.wait_for(timeout=RUN_TIMEOUT_MS)
    wait_for_run(page)  # the run that drew the title drew the buttons
    assert_clean(page)
    # the own hospital's care cycles, labelled so (not the whole registry's)
    expect(page.get_by_test_id("stMetricLabel").first).to_have_text(t("pages.own_care_cycles", lang, hospital=OWN))
    conditions = list(CATALOG.conditions)
    buttons = [page.locator(f".st-key-open_{c} button:visible") for c in conditions]
    assert [b.count() for b in buttons] == [1] * len(conditions), "one button per condition team"
    for condition in conditions:
        page.locator(f".st-key-open_{condition} button:visible").click()
        wait_for_title(page, team_title(condition, OWN, lang))
        assert_clean(page)
        assert urlparse(page.url).path == "/condition_team"
        assert query(page)["lang"] == [lang] and query(page).get("period", [""])[0] == period[8:], page.url
        expect(combobox(page, "filter.condition", lang)).to_have_value(CATALOG.conditions[condition].label(lang))
        # the page's indicator filter belongs to the condition just opened
        main(page).get_by_role("tab", name=t("pages.tab_depth", lang)).click()
        settle(page)
        shown = combobox(page, "filter.indicator", lang).input_value()
        assert shown in indicator_labels(condition, lang), (condition, shown)
        if condition == conditions[-1]:
            break  # every button clicked: no need to go back
        nav_link(page, "", lang).click()
        wait_for_title(page, t("app.title", lang))
        page.locator(f".st-key-open_{conditions[-1]} button:visible").first.wait_for(timeout=RUN_TIMEOUT_MS)
        wait_for_run(page)


@pytest.mark.parametrize("lang", ["en", "nl"])
def test_the_language_stays_from_page_to_page(page: Page, app_url: str, lang: str) -> None:
    """A session opened in one language keeps it from the overview through page after page, clicked as soon as
    each page has settled. A radio whose state was written before its first draw once lost this race: after a
    fast overview, the next click sent the radio's first option (Nederlands) and an English session turned Dutch."""
    for _ in range(2):  # the race depended on timing: two walks from a fresh start
        page.goto(f"{app_url}/?lang={lang}")
        wait_for_title(page, t("app.title", lang))
        for slug in ("methods", "proms", "condition_team", "methods", ""):
            click_for_a_run(page, nav_link(page, slug, lang), f"{lang}/{slug or 'overview'}")
            if PAGES[slug] is not None:
                wait_for_title(page, t(PAGES[slug], lang))
            expect(nav_link(page, "methods", lang)).to_be_visible(timeout=SETTLED_MS)
            sidebar = page.get_by_test_id("stSidebar")
            expect(sidebar.get_by_role("radio", name=t(f"language.{lang}", lang), exact=True)).to_be_checked()
            assert query(page)["lang"] == [lang], f"{slug or 'overview'}: {page.url}"
            assert_clean(page)


# --- every filter in turn --------------------------------------------------------------------------------------


@pytest.mark.parametrize("lang", ["en", "nl"])
def test_each_filter_in_turn_and_the_page_follows(page: Page, app_url: str, lang: str) -> None:
    page.goto(f"{app_url}/condition_team?condition=colorectal_cancer&indicator=anastomotic_leak&lang={lang}")
    wait_for_title(page, team_title("colorectal_cancer", OWN, lang))
    leak = CATALOG.condition("colorectal_cancer").indicator("anastomotic_leak").label(lang)
    expect(combobox(page, "filter.indicator", lang)).to_have_value(leak)

    # condition: the indicator box must show an indicator of the new condition, and the URL its id
    choose(page, "filter.condition", lang, CATALOG.conditions["hip_osteoarthritis"].label(lang))
    wait_for_title(page, team_title("hip_osteoarthritis", OWN, lang))
    shown = combobox(page, "filter.indicator", lang).input_value()
    assert shown in indicator_labels("hip_osteoarthritis", lang) and shown != leak, shown
    hip = CATALOG.condition("hip_osteoarthritis")
    # the URL holds the condition's id, so the link works in either language
    assert query(page)["condition"] == ["hip_osteoarthritis"], page.url
    # the URL names the indicator unless it is the default (the first of the condition)
    assert query(page).get("indicator", [hip.indicators[1].id])[0] in {i.id for i in hip.indicators}, page.url
    assert_clean(page)

    # indicator: the depth tab and the case-mix tab follow
    complications = hip.indicator("complication_90d").label(lang)
    choose(page, "filter.indicator", lang, hip.indicator("length_of_stay").label(lang))
    choose(page, "filter.indicator", lang, complications)
    assert query(page)["indicator"] == ["complication_90d"], page.url
    main(page).get_by_role("tab", name=t("pages.tab_casemix", lang)).click()
    settle(page)
    expect(combobox(page, "filter.indicator", lang)).to_have_value(complications)  # kept across the tabs
    main(page).get_by_role("tab", name=t("pages.tab_depth", lang)).click()
    settle(page)
    expect(main(page).get_by_test_id("stVegaLiteChart").first).to_be_visible(timeout=SETTLED_MS)
    assert_clean(page)

    # unit level: the unit box offers departments, by name
    choose(page, "filter.unit_level", lang, t("level.department", lang))
    unit = combobox(page, "filter.unit", lang).input_value()
    assert unit.startswith(f"{OWN} – "), unit
    wait_for_title(page, team_title("hip_osteoarthritis", unit, lang))
    assert query(page)["level"] == ["department"]
    assert_clean(page)

    # unit: another hospital's department
    combobox(page, "filter.unit", lang).click()
    other = next(o for o in page.get_by_role("option").all_inner_texts() if not o.strip().startswith(OWN)).strip()
    page.get_by_role("option", name=other, exact=True).click()
    settle(page)
    wait_for_title(page, team_title("hip_osteoarthritis", other, lang))
    assert re.fullmatch(r"H\d\d/[A-Z]+", query(page)["unit_department"][0]), page.url  # ids in the URL
    assert_clean(page)

    # period
    choose(page, "filter.period", lang, "2024")
    assert query(page)["period"] == ["2024"], page.url
    expect(title(page)).to_have_text(team_title("hip_osteoarthritis", other, lang))
    assert_clean(page)

    # comparison group: two hospitals picked by name, kept by id
    picker = page.get_by_role("combobox", name=t("filter.comparison_group", lang), exact=True)
    for name in ("Oosterhaven Ziekenhuis", "Heidekamp Medisch Centrum"):
        pick(page, picker, name)
        page.keyboard.press("Escape")  # the comparison group's list stays open after a pick
    peers = query(page)["peers"][0].split(",")
    assert {"H02", "H03"} <= set(peers), page.url
    assert_clean(page)

    # the other pages' own boxes follow the condition too (sort, outcome, scale)
    for slug in ("compare", "cost_value", "proms"):
        nav_link(page, slug, lang).click()
        wait_for_title(page, t(PAGES[slug], lang))
        assert_clean(page)
    choose(page, "filter.condition", lang, CATALOG.conditions["heart_failure"].label(lang))
    wait_for_title(page, t("proms.title", lang))
    assert_clean(page)
    for slug in ("cost_value", "compare"):
        nav_link(page, slug, lang).click()
        wait_for_title(page, t(PAGES[slug], lang))
        assert_clean(page)
    sort_by = combobox(page, "compare.sort_by", lang).input_value()
    assert sort_by in {i.label(lang) for i in CATALOG.conditions["heart_failure"].indicators}, sort_by


# --- every page, tab, expander and button, per role and language ----------------------------------------------


def _walk(
    page: Page,
    role: str,
    lang: str,
    exports: Exports | None,
    shots: Shots | None = None,
    *,
    controls: bool = True,
    overview_button: bool = True,
) -> None:
    """Visit every page of the role's navigation through its link and use every control on it: every tab (and
    the tabs inside), expander, toggle, checkbox, selectbox, number and date, every download button and every
    chart's PNG and CSV (`exports`: None for a role that may not export, which must then be offered none); then
    one overview button (not with `overview_button` False). `shots`: each page (each tab of the team page)
    photographed as it opens, before its controls are used. Without `controls` the walk only opens and checks the
    pages."""
    nav = page.get_by_test_id("stSidebarNav")
    labels = [text.strip().splitlines()[-1].strip() for text in nav.get_by_role("link").all_inner_texts()]
    assert labels == [t(NAV[slug], lang) for slug in ROLE_PAGES[role]], labels
    for slug in ROLE_PAGES[role]:
        where = f"{role}/{lang}/{slug or 'overview'}"
        close_lists(page)
        if slug == "" and role != "admin" and _shows(page, slug, lang):
            pass  # the overview the walk starts on: its link is clicked at the walk's end (a click now drew it again)
        elif PAGES[slug]:
            nav_link(page, slug, lang).click()
            wait_for_title(page, t(PAGES[slug], lang))
        else:
            # the team page's title names the condition and unit; the previous page's h1 is still there until the
            # switch has drawn, so wait for the run the click asked for and for the team page's tabs
            click_for_a_run(page, nav_link(page, slug, lang), where)
            page.get_by_test_id("stMain").locator("h1").first.wait_for(timeout=RUN_TIMEOUT_MS)
            if slug == "condition_team":
                main(page).get_by_role("tablist").first.wait_for(timeout=RUN_TIMEOUT_MS)
        assert_clean(page)
        default = slug == ROLE_PAGES[role][0]  # the navigation's first page is served at /
        path = "/" if default else f"/{slug}"
        # the address follows the page's run: a loaded browser lags
        with contextlib.suppress(PlaywrightTimeoutError):
            page.wait_for_url(lambda url, path=path: urlparse(url).path == path, timeout=SETTLED_MS)
        assert urlparse(page.url).path == path, f"{where}: {page.url}"
        assert_no_raw_ids(page, where)
        if exports is None:  # nothing to download for this role: no download button and no chart menu
            assert main(page).get_by_test_id("stPopover").count() == 0, f"{where}: chart downloads offered"
        if shots is not None:
            shots.page(page, slug)
        if not controls:
            pass
        elif main(page).get_by_role("tablist").count():
            used = use_every_tab(page, where, exports)
        else:
            used = use_controls(page, main(page), where, exports)
        if slug == "condition_team" and controls:
            assert used >= 12, f"{where}: only {used} tabs and controls found"  # the walk must not find nothing
            assert_no_raw_ids(page, f"{where} after the tabs")
        if slug == "meeting" and role == "local":  # the demo's history: the own colorectal team's targets, actions
            for key in ("agenda.col_met", "agenda.field_expected_effect", "action_effect.pick"):
                expect(main(page).get_by_text(t(key, lang), exact=True).first).to_be_visible()
    if role != "admin" and overview_button:  # one (all: test_every_overview_button_opens_its_condition_team)
        nav_link(page, "", lang).click()
        page.locator("[class*='st-key-open_'] button:visible").last.wait_for(timeout=RUN_TIMEOUT_MS)
        settle(page)
        page.locator("[class*='st-key-open_'] button:visible").last.click()
        page.get_by_role("tab", name=t("pages.tab_verdicts", lang)).wait_for(timeout=RUN_TIMEOUT_MS)
        settle(page)
        assert urlparse(page.url).path == "/condition_team"
        assert_clean(page)
    if exports is not None:
        exports.assert_audited()


def _shows(page: Page, slug: str, lang: str) -> bool:
    """Whether the page shown, once the runs asked for have finished, is `slug` (a page with a title of its own)."""
    settle(page)
    heading = title(page)
    return (
        urlparse(page.url).path == ("/" if slug == "" else f"/{slug}")
        and heading.count() > 0
        and heading.inner_text().strip() == t(PAGES[slug], lang)
    )


def _sidebar_filters_in_turn(page: Page, role: str, lang: str) -> str:
    """Change each sidebar filter the role has once, on the page shown: every selectbox, the comparison group,
    the meeting date and last the language; each change must reach the URL (filters are shared links) and leave
    the page clean. Returns the language the page ends in."""
    sidebar = page.get_by_test_id("stSidebar")
    where = f"{role}/{lang}/sidebar"
    for i in range(sidebar.get_by_role("combobox").count()):
        box = sidebar.get_by_role("combobox").nth(i)
        before = query(page)
        # the comparison group's last option may be the unit's own hospital, which is in the group anyway: the URL
        # then stays as it was (test_each_filter_in_turn_and_the_page_follows checks the group reaching the URL)
        group = box.locator("xpath=ancestor::*[@data-testid='stMultiSelect']").count() > 0
        picked = _pick_other(page, box, f"{where}/{i}")
        page.keyboard.press("Escape")  # the comparison group's list stays open after a pick
        if picked is not None and not group:
            for _ in range(50):  # the URL follows within the run the pick asked for; allow a loaded browser time
                if query(page) != before:
                    break
                page.wait_for_timeout(200)
            assert query(page) != before, f"{where}: {picked!r} did not reach the URL {page.url}"
    if sidebar.get_by_test_id("stDateInput").count():  # the admin has no outcome filters, so no meeting date
        set_date(page, sidebar.get_by_test_id("stDateInput"), 2025, 1, 1)
        # the address follows the run the date asked for and may reach the test process a little after the run's
        # end, as the other filters' do (their loop above): read at once, it was the old address once (load 16)
        with contextlib.suppress(PlaywrightTimeoutError):
            page.wait_for_url(
                lambda url: parse_qs(urlparse(url).query).get("meeting") == ["2025-01-01"], timeout=SETTLED_MS
            )
        assert query(page).get("meeting") == ["2025-01-01"], page.url
        assert_clean(page)
    other = "nl" if lang == "en" else "en"
    has_filters = combobox(page, "filter.condition", lang).count() > 0  # the admin has none
    click_for_a_run(page, sidebar.get_by_text(t(f"language.{other}", lang), exact=True), f"{where}/language")
    expect(nav_link(page, "methods", other)).to_be_visible(timeout=SETTLED_MS)
    if has_filters:
        expect(combobox(page, "filter.condition", other)).to_be_visible()  # the filters speak the new language too
    assert query(page)["lang"] == [other], page.url
    assert_clean(page)
    return other


@pytest.mark.parametrize("lang", ["en", "nl"])
def test_local_mode_every_page_photographed_and_its_filters(
    page: Page, _servers, lang: str, tmp_path: Path, artifacts: Path
) -> None:
    """Local mode (every role at once) walks every page, and photographs every page as it opens, then loads each
    at a phone's size and photographs it (Shots: the screenshots, with their layout checks).

    The walk opens and checks every page in both languages and photographs it; its sidebar filters are changed
    in English. It leaves the controls on the pages to the signed-in roles' walks, which use every control of the
    same pages in both languages (test_signed_in_role_every_page_and_control): the quality directorate's
    navigation is local mode's (every page, imports, the audit log, improvement items edited), the care team's (on
    colorectal cancer, this walk's condition, with its targets, actions and before/after chart) adds the patient
    rows, the admin's the Data page's import as the registry's administrator. Using them here too cost ~40 s of CPU
    per language (the Dutch walk left them first) for no control that those walks do not use."""
    app = _servers[0]
    # the condition whose team has the demo's improvement history (targets, actions, an action's before/after chart),
    # from the address, as a shared link gives it (the English walk changes the condition box with the other filters)
    page.goto(f"{app.url}/?lang={lang}&condition=colorectal_cancer")
    wait_for_title(page, t("app.title", lang))
    settle(page)
    expect(combobox(page, "filter.condition", lang)).to_have_value(CATALOG.conditions["colorectal_cancer"].label(lang))
    shots = Shots(artifacts, lang)
    # the English walk ends on a condition team through an overview button, where its sidebar filters are changed;
    # the Dutch walk changes none, and every overview button of local mode is clicked in Dutch by
    # test_every_overview_button_opens_its_condition_team: its one button here only drew two pages again
    exports = Exports(app.database_url, tmp_path)
    _walk(page, "local", lang, exports, shots, controls=False, overview_button=lang == "en")
    if lang == "en":
        _sidebar_filters_in_turn(page, "local", lang)
    shots.phone(page, app.url)
    shots.assert_all_taken()


@pytest.mark.parametrize("lang", ["en", "nl"])
@pytest.mark.parametrize("role", ["care", "quality", "manager", "admin"])
def test_signed_in_role_every_page_and_control(
    page: Page, signed_app: StreamlitServer, role: str, lang: str, tmp_path: Path
) -> None:
    # a role signed in before (its walk in the other language, another test): the cookies of that sign-in, and the
    # language's page is the one page load (tests.e2e.test_sign_in.SIGNED_IN)
    signed_in = SIGNED_IN.get((signed_app.url, role))
    if signed_in is None:
        sign_in(page, signed_app.url, role)
    else:
        page.context.add_cookies(signed_in)
    if lang != "en" or signed_in is not None:  # the sign-in round trip lands on the home page in English
        page.goto(f"{signed_app.url}/?lang={lang}")
        page.get_by_test_id("stSidebarNav").wait_for(timeout=RUN_TIMEOUT_MS)
        settle(page)
        # the navigation speaks the language once the run that read it from the URL is done
        expect(nav_link(page, ROLE_PAGES[role][-1], lang)).to_be_visible(timeout=RUN_TIMEOUT_MS)
    exports = Exports(signed_app.database_url, tmp_path) if role in ("care", "quality") else None
    _walk(page, role, lang, exports)
    if role == "care":  # a care team sees patient rows: the cases to discuss carry the record key
        page.get_by_role("tab", name=t("pages.tab_cases", lang)).click()
        settle(page)
        expect(main(page).get_by_text(t("auth.no_patient_rows", lang))).to_have_count(0)
    if role == "manager":
        page.get_by_role("tab", name=t("pages.tab_cases", lang)).click()
        settle(page)
        expect(main(page).get_by_text(t("auth.no_patient_rows", lang))).to_be_visible()
    ends_in = _sidebar_filters_in_turn(page, role, lang)
    page.get_by_test_id("stSidebar").get_by_role("button", name=t("app.sign_out", ends_in)).click()
    page.get_by_role("button", name="End session").click()  # the provider's sign-out page
    expect(
        page.get_by_role("button", name=re.compile(f"^({t('app.sign_in', 'en')}|{t('app.sign_in', lang)})$"))
    ).to_be_visible(timeout=RUN_TIMEOUT_MS)


# --- layout: tables fit, nothing clipped; screenshots ---------------------------------------------------------


def _grids_fit(page: Page, where: str) -> None:
    """Every table's columns fit its grid (no sideways scrolling at 1440 px) and no grid sticks out of the page."""
    width = page.viewport_size["width"]
    for grid in main(page).get_by_test_id("stDataFrame").all():
        if not grid.is_visible():
            continue
        box = grid.bounding_box()
        assert box is None or box["x"] + box["width"] <= width + 1, f"{where}: a table sticks out of the page"
        if width >= DESKTOP["width"]:
            scroller = grid.locator(".dvn-scroller").first
            for _ in range(20):  # the grid sizes its columns after it is drawn: judge the settled grid
                inner, outer = scroller.evaluate("e => [e.scrollWidth, e.clientWidth]")
                if inner <= outer + 2:
                    break
                page.wait_for_timeout(250)
            assert inner <= outer + 2, f"{where}: a table is cut off at {width} px ({inner} > {outer})"


#: Every cell of the static tables (ui.render.static_table), or the box its text wraps in, that shows less than its
#: text: a cut line or word.
CLIPPED_CELLS = """e => Array.from(e.querySelectorAll(
    '.vbhc-table :is(td, th), .vbhc-table :is(td, th) > div'
)).filter(c => c.scrollHeight > c.clientHeight + 1 || c.scrollWidth > c.clientWidth + 1).map(c => c.innerText)"""


#: Every static table whose line "this table is wider than the screen" shows while the table does not scroll
#: sideways, or does not show while it does (ui.render.table_html's container query, from an estimate of its width).
WRONG_SCROLL_HINTS = """e => Array.from(e.querySelectorAll('.vbhc-table-wrap')).map(wrap => {
    const hint = wrap.querySelector('.vbhc-table-hint'), box = wrap.querySelector('.vbhc-table-box');
    if (!hint || !box || !box.offsetParent) return null;
    const shown = getComputedStyle(hint).display !== 'none', scrolls = box.scrollWidth > box.clientWidth + 1;
    return shown === scrolls ? null : `${shown ? 'says it scrolls' : 'scrolls unsaid'} (${box.scrollWidth} px in `
        + `${box.clientWidth}): ${box.innerText.slice(0, 60)}`;
}).filter(wrong => wrong !== null)"""


def _tables_whole(page: Page, where: str, *, fit: bool) -> None:
    """Every line of every cell of the static tables shows (their rows grow with the text); with `fit`, at
    1440 px each table also fits the main area without scrolling sideways (on a phone it scrolls in its box).
    A table says it scrolls sideways exactly when it does (the cost page's value table said so on a phone while it
    fit)."""
    clipped = main(page).evaluate(CLIPPED_CELLS)
    assert not clipped, f"{where}: table cells cut off: {clipped[:3]}"
    wrong = main(page).evaluate(WRONG_SCROLL_HINTS)
    assert not wrong, f"{where}: scroll hints wrong: {wrong}"
    if fit and page.viewport_size["width"] >= DESKTOP["width"]:
        for table in main(page).locator(".vbhc-table-box").all():
            if table.is_visible():
                inner, outer = table.evaluate("e => [e.querySelector('table').scrollWidth, e.clientWidth]")
                assert inner <= outer + 2, f"{where}: a table is cut off at 1440 px ({inner} > {outer})"


def _no_horizontal_overflow(page: Page, where: str) -> None:
    width = page.viewport_size["width"]
    over = main(page).evaluate("e => e.scrollWidth - e.clientWidth")
    assert over <= 1, f"{where}: the page is {over} px wider than a {width} px screen"


#: Every drawn chart that runs past its box or the main area (Vega draws a concatenated or faceted chart at its own
#: width: what does not fit is cut).
CUT_CHARTS = """e => Array.from(e.querySelectorAll('[data-testid=stVegaLiteChart]')).map(box => {
    const drawn = box.querySelector('canvas, svg');
    const edge = Math.min(box.getBoundingClientRect().right, e.getBoundingClientRect().right);
    return drawn && drawn.getBoundingClientRect().right > edge + 1
        ? Math.round(drawn.getBoundingClientRect().right - edge) : null;
}).filter(cut => cut !== null)"""


def _charts_fit(page: Page, where: str) -> None:
    """On the meeting screen no chart runs past its box or the main area (the compare page's third panel was cut
    at 1440 px). Not yet on a phone: the PROM histograms (a faceted chart, never stretched) are cut there."""
    if page.viewport_size["width"] < DESKTOP["width"]:
        return
    cut = main(page).evaluate(CUT_CHARTS)
    assert not cut, f"{where}: charts cut off by {cut} px"


class Shots:
    """The screenshots of a local-mode walk in tests/artifacts: every page (each tab of the team page, and the
    meeting's minutes form open) at the meeting screen's size (1440x900) and a phone's (390x844), each after its
    layout checks: tables fit or show whole, nothing wider than the screen, on the meeting screen no chart past its
    box. The walk's condition is colorectal cancer and its unit the own hospital, as in the pictures' addresses.

    The meeting screen's are taken in the walk's own page views, as each page opens and before any of its controls
    is used (a test of their own loaded all 10 pages again for them: ~30 s of a 2-core machine's CPU per language).
    The phone's are taken on pages opened at the phone's size (`phone`): a page resized in place keeps charts laid
    out for the wider screen (Vega-Lite's label wrapping and widths are not redone), which no phone shows."""

    SIZES = ("1440x900", "390x844")  # DESKTOP, PHONE

    def __init__(self, artifacts: Path, lang: str) -> None:
        self.artifacts, self.lang = artifacts, lang
        self.taken: set[str] = set()

    def page(self, page: Page, slug: str) -> None:
        """The page as it opened (its title read); on the team page each of its tabs in turn (all before the walk
        uses a control: an indicator picked on one tab would show on the next), on the meeting page also its
        minutes form, as the secretary fills it in."""
        lang = self.lang
        size_name = self.SIZES[0] if page.viewport_size == DESKTOP else self.SIZES[1]
        name = slug or "overview"
        where = f"{name} {lang} {size_name}"
        page.mouse.move(page.viewport_size["width"] // 2, 1)  # no hover effect of the walk's last click
        if slug == "condition_team":
            expect(title(page)).to_have_text(team_title("colorectal_cancer", OWN, lang))
            for tab in TEAM_TABS:
                main(page).get_by_role("tab", name=t(f"pages.tab_{tab}", lang)).click()
                settle(page)
                wait_for_charts(page)
                assert_clean(page)
                _grids_fit(page, f"{where} {tab}")
                _tables_whole(page, f"{where} {tab}", fit=True)
                _no_horizontal_overflow(page, f"{where} {tab}")
                self._shoot(page, f"{name}-{tab}-{lang}-{size_name}.png")
            return
        wait_for_charts(page)
        if slug in ("", "cost_value"):
            _grids_fit(page, where)
        _tables_whole(page, where, fit=slug in ("", "cost_value", "compare", "board"))
        _no_horizontal_overflow(page, where)
        _charts_fit(page, where)
        self._shoot(page, f"{name}-{lang}-{size_name}.png")
        if slug == "meeting":
            main(page).get_by_test_id("stExpander").filter(has_text=t("minutes.form", lang)).click()
            settle(page)
            assert_clean(page)
            _no_horizontal_overflow(page, f"{where} minutes")
            self._shoot(page, f"meeting-minutes-{lang}-{size_name}.png")

    def phone(self, page: Page, app_url: str) -> None:
        """Every page opened at the phone's size and photographed (the page then goes back to the meeting screen).
        One load, then each page through its link, as a phone's reader goes: its elements are drawn anew at the
        phone's width, as on a load of their own (the pictures were the same), without loading the app again for
        each (31 s of CPU for the 10 pages, 13 s so). The link is clicked in the folded sidebar, as a script would:
        opening and folding it for each page would only add its animation."""
        page.set_viewport_size(PHONE)
        try:
            page.goto(f"{app_url}/?lang={self.lang}&condition=colorectal_cancer")
            for slug in PAGES:
                if slug:
                    nav_link(page, slug, self.lang).dispatch_event("click")
                if PAGES[slug]:
                    wait_for_title(page, t(PAGES[slug], self.lang))
                else:
                    wait_for_title(page, team_title("colorectal_cancer", OWN, self.lang))
                assert_clean(page)
                self.page(page, slug)
        finally:
            page.set_viewport_size(DESKTOP)

    def _shoot(self, page: Page, file: str) -> None:
        screenshot(page, self.artifacts / file)
        self.taken.add(file)

    def assert_all_taken(self) -> None:
        """Every page of PAGES, each tab of the team page and the minutes form, at both sizes."""
        names = [slug or "overview" for slug in PAGES if slug != "condition_team"]
        names += [f"condition_team-{tab}" for tab in TEAM_TABS] + ["meeting-minutes"]
        expected = {f"{name}-{self.lang}-{size}.png" for name in names for size in self.SIZES}
        assert self.taken == expected, f"screenshots missing: {sorted(expected - self.taken)}"
