"""End-to-end tests in a real browser: navigation, URL-bound filters, shared links and the validated upload.

How the tests read Streamlit's page:
- A script run is finished when `[data-testid="stApp"]` has `data-test-script-state="notRunning"`. The tests first
  wait for a text that only the new run can produce (e.g. the new page title), then for that state, so they never
  mistake the previous run's "notRunning" for the new one. Waiting uses `Locator.wait_for` (checked on every
  animation frame) rather than `expect`, whose retries back off to once a second and would add up to a second
  per step; `expect` then checks the settled page, so failures still show expected and actual values.
- The pages' small tables (the import problems, verdicts) are static HTML tables (ui.render.static_table, class
  `vbhc-table`): `table_rows` reads them by their header and body cells. Dataframes are drawn on a canvas
  (glide-data-grid); the tests find those by their test id and use their toolbar.
- Streamlit scrolls inside `<main data-testid="stMain">`, not the document, so Playwright's `full_page=True` would
  capture only the viewport. `screenshot` grows the viewport to the main area's height first.
"""

from __future__ import annotations

import contextlib
import re
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import Locator, Page, expect
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

pytestmark = pytest.mark.browser

RUN_TIMEOUT_MS = 60_000  # a first run may fit the case-mix models of every condition
SETTLED_MS = 5_000  # for checks on a page whose script run has finished
#: a run whose start was seen and whose page has been idle this long has ended (its end frame was missed)
IDLE_GRACE_MS = 5_000
IDLE_POLL_MS = 250  # how often the page's idleness is read while a run's end is awaited
#: the longest wait for the page's next sent frame before the request it should carry is looked for again
ASKED_POLL_MS = 100
IDLE = '[data-testid="stApp"][data-test-script-state="notRunning"]'

# page url path -> (navigation label, title) in English; titles from vbhc/i18n/en.toml
PAGES = {
    "overview": ("Overview", "Value-based healthcare outcomes"),
    "condition_team": ("Condition team", "Breast cancer · Universitair Medisch Centrum Veenmeer"),
    "meeting": ("Meeting", "Improvement meeting"),
    "board": ("Board review", "Board review"),
    "proms": ("PROMs", "Patient-reported outcomes"),
    "compare": ("Compare departments", "Compare departments"),
    "cost_value": ("Cost and value", "Cost and value"),
    "data": ("Data", "Data"),
    "audit": ("Audit log", "Audit log"),
    "methods": ("Methods", "Methods"),
}
BAD_CARE_CYCLES = (
    "cycle_id,patient_id,condition,hospital,department,index_date,treatment,age,sex,asa,charlson,bmi,stage,nyha,lvef,smoking\n"
    "E2E0000001,PE2E00000001,colorectal_cancer,H01,SUR,2024-03-01,colectomy,abc,F,2,1,25.0,II,,,\n"
)


def title(page: Page) -> Locator:
    return page.get_by_test_id("stMain").locator("h1").first


def _exactly(text: str | re.Pattern[str]) -> re.Pattern[str]:
    if isinstance(text, re.Pattern):
        return re.compile(text.pattern.removeprefix("^").removesuffix("$").join([r"^\s*", r"\s*$"]))
    return re.compile(rf"^\s*{re.escape(text)}\s*$")


#: Installed in every document before the app's scripts: counts the frames the page sends on Streamlit's
#: websocket, so a test can tell how many the socket watcher below should have seen by now.
COUNT_SENT_FRAMES = """(() => {
    const send = WebSocket.prototype.send;
    WebSocket.prototype.send = function (data) {
        if (String(this.url).includes('/_stcore/stream')) {
            if (window.__vbhcSocket !== this) { window.__vbhcSocket = this; window.__vbhcSent = 0; }
            window.__vbhcSent += 1;
        }
        return send.call(this, data);
    };
})()"""
#: Resolves once the work an input queued has run (its handlers, React's render, effects and the next frames),
#: with the number of frames the page has sent on its Streamlit socket so far.
SENT_FRAMES_AFTER_INPUT = """() => new Promise(resolve => setTimeout(() => requestAnimationFrame(() =>
    requestAnimationFrame(() => setTimeout(() => resolve(window.__vbhcSent || 0), 0))), 0))"""


class Runs:
    """The script runs of a page, read from Streamlit's websocket: a rerun request the browser sent (BackMsg
    `rerun_script`), a run the server started (ForwardMsg `new_session`) and a run it finished (`script_finished`).

    This is what the tests wait on after an action, instead of guessing with a timeout: an action that asked for
    a run is settled once every run started since has finished and the page shows "notRunning"; an action that
    asked for none (an expander, a tab without rerun, a download) is settled as soon as the page has handled it
    and every frame it sent has been read (the page counts them: COUNT_SENT_FRAMES), not after a fixed wait."""

    def __init__(self) -> None:
        self.requested = self.started = self.finished = 0
        self.files_asked = 0  # deferred downloads the page asked the server to build (BackMsg backend_operation)
        self.sent = 0  # frames the page sent on the current socket, as read here
        self.mark = (0, 0, 0)
        self.socket = None

    def attach(self, page: Page) -> None:
        page.add_init_script(COUNT_SENT_FRAMES)
        page.on("websocket", self._watch)

    def _watch(self, ws) -> None:
        if "/_stcore/stream" not in ws.url:
            return
        # a new page's connection: a run of the page left behind never reports its end, and a late frame of the
        # old connection must not count
        self.finished = self.started
        self.sent = 0
        self.socket = ws
        ws.on("framesent", lambda payload: ws is self.socket and self._sent(payload))
        ws.on("framereceived", lambda payload: ws is self.socket and self._received(payload))

    def _sent(self, payload: bytes | str) -> None:
        from streamlit.proto.BackMsg_pb2 import BackMsg

        self.sent += 1
        if isinstance(payload, bytes):
            msg = BackMsg()
            with contextlib.suppress(Exception):
                msg.ParseFromString(payload)
                kind = msg.WhichOneof("type")
                if kind == "rerun_script":
                    self.requested += 1
                elif kind == "backend_operation_request" and msg.backend_operation_request.HasField("deferred_file"):
                    self.files_asked += 1

    def _received(self, payload: bytes | str) -> None:
        from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

        if isinstance(payload, bytes):
            msg = ForwardMsg()
            with contextlib.suppress(Exception):
                msg.ParseFromString(payload)
                kind = msg.WhichOneof("type")
                if kind == "new_session":
                    self.started += 1
                elif kind == "script_finished":
                    self.finished += 1

    def now(self) -> tuple[int, int, int]:
        return (self.requested, self.started, self.finished)

    def settle(self, page: Page, *, asked_within_ms: int | None = None) -> bool:
        """Wait for the runs asked for since the last settle to finish; returns whether there were any.

        With `asked_within_ms` (an action that always asks for a run), look that long for its request: on a loaded
        machine the browser may be slow to send it; none by then, the page is asked as below, and False means the
        action's click was lost (the page sent nothing, so nothing was written: the caller clicks again,
        tests.e2e.test_pages.click_for_a_run). Without it (an action that may ask for none), ask the page once it has
        handled the action how many frames it has sent, and wait until this watcher has read as many: then a
        request not among them was not made."""
        requested, started, _ = self.mark
        if asked_within_ms is None:
            if not self._asked_on_the_socket(page, requested, started):
                return False
        else:
            until = time.monotonic() + asked_within_ms / 1000
            while self.requested == requested and self.started == started:
                if time.monotonic() >= until:
                    if not self._asked_on_the_socket(page, requested, started):
                        return False
                    break
                self._next_frame(page, "framesent", ASKED_POLL_MS, lambda: self.now()[:2] != (requested, started))
        while True:
            until = time.monotonic() + RUN_TIMEOUT_MS / 1000
            next_look = time.monotonic() + IDLE_POLL_MS / 1000
            idle_since = None  # since when the page has been idle although a run's start was read and not its end
            while self.started <= started or self.finished < self.started:
                if time.monotonic() >= until:
                    self._stuck(page)
                    break
                self._next_frame(
                    page,
                    "framereceived",
                    IDLE_POLL_MS,
                    lambda: self.started > started and self.finished >= self.started,
                )
                if self.started > started and self.finished < self.started and time.monotonic() >= next_look:
                    # the page is the judge of a started run's end: idle for IDLE_GRACE_MS, its end frame was missed
                    # here (waiting the whole RUN_TIMEOUT_MS for it cost a walk a minute per miss)
                    next_look = time.monotonic() + IDLE_POLL_MS / 1000
                    if not self._idle(page):
                        idle_since = None
                    elif idle_since is None:
                        idle_since = time.monotonic()
                    elif time.monotonic() - idle_since >= IDLE_GRACE_MS / 1000:
                        self._stuck(page, idle_grace=True)
                        break
            last = self.started
            page.locator(IDLE).wait_for(timeout=RUN_TIMEOUT_MS)
            if self.started == last:  # no run of the same chain (a callback's st.switch_page) began meanwhile
                break
        self.mark = self.now()
        return True

    def _next_frame(self, page: Page, event: str, timeout_ms: int, done: Callable[[], bool]) -> None:
        """Return once a frame the page's Streamlit socket sent (`event` "framesent") or received ("framereceived")
        makes `done()` true, or after `timeout_ms`: what the loops above wait for changes only with a frame (or a new
        socket, whose old one closes). The wait is the test process's own (Playwright's event waiter; the frames'
        handlers above run before its predicate), one per wait, not one per frame (a run of the team page sends
        dozens): before, the loops polled with page.wait_for_timeout(10), a round trip through Playwright's driver
        every 10 ms of every wait."""
        socket = self.socket
        if socket is None or socket.is_closed():  # no socket yet, or the page's new one not yet announced
            page.wait_for_timeout(10)
            return
        # a timeout, the socket closed (a new page's connection replaces it) or the page closed: the caller looks again
        with contextlib.suppress(PlaywrightError):
            socket.wait_for_event(event, lambda _: done(), timeout=timeout_ms)

    def _asked_on_the_socket(self, page: Page, requested: int, started: int) -> bool:
        """Whether a run was asked for (or started) since the mark, judged once the page has handled the last
        input and every frame it sent on the socket has reached this watcher."""
        if self.requested != requested or self.started != started:
            return True
        self.read_every_sent_frame(page)
        return self.requested != requested or self.started != started

    def read_every_sent_frame(self, page: Page) -> None:
        """Return once the page has handled the last input and this watcher has read every frame it sent."""
        sent = page.evaluate(SENT_FRAMES_AFTER_INPUT)
        until = time.monotonic() + RUN_TIMEOUT_MS / 1000
        while self.sent < sent:  # the frames' events come through the browser's protocol, a little later
            if time.monotonic() >= until:
                raise AssertionError(f"the page sent {sent} frames on its socket, the watcher read {self.sent}")
            self._next_frame(page, "framesent", ASKED_POLL_MS, lambda: self.sent >= sent)

    @staticmethod
    def _idle(page: Page) -> bool:
        """The page shows no script run: not running, not asked to rerun, no status widget."""
        return bool(page.locator(IDLE).count()) and not page.get_by_test_id("stStatusWidget").count()

    def _stuck(self, page: Page, *, idle_grace: bool = False) -> None:
        """A run asked for has not reported its end for RUN_TIMEOUT_MS (or, its start read, for IDLE_GRACE_MS of an
        idle page). If the page itself is idle, the socket count missed a frame: the browser is the judge, and the
        test goes on. Otherwise the test fails with where every server thread is, so a hang can be found, not only
        seen."""
        from tests.e2e.conftest import dump_servers

        if self._idle(page):
            # not silent: each such stall costs the test IDLE_GRACE_MS (RUN_TIMEOUT_MS if no start was read either),
            # and the summary should show how often
            waited = f"its page idle for {IDLE_GRACE_MS} ms" if idle_grace else f"within {RUN_TIMEOUT_MS} ms"
            warnings.warn(
                f"run watcher: no end of a script run seen, {waited} ({self.now()}, page {page.url}); going on",
                stacklevel=2,
            )
            self.finished = self.started
            return
        raise AssertionError(
            f"script run did not finish within {RUN_TIMEOUT_MS} ms: {self.now()}; page {page.url}\n" + dump_servers()
        )


CHARTS_DRAWN = """() => [...document.querySelectorAll('[data-testid=stVegaLiteChart]')]
    .filter(chart => chart.offsetParent !== null)
    .every(chart => chart.querySelector('canvas, svg'))"""


DRAWN = """() => document.querySelector('[data-testid=stApp][data-test-script-state=notRunning]') !== null
    && document.querySelectorAll('[data-testid=stSkeleton], [data-testid=stProgress]').length === 0"""


def wait_for_charts(page: Page) -> None:
    """Wait until every chart in view has been drawn (Vega-Embed puts its canvas or SVG in)."""
    page.wait_for_function(CHARTS_DRAWN, timeout=SETTLED_MS)


def runs(page: Page) -> Runs:
    """The page's run watcher (tests/e2e/conftest.py attaches one to every page)."""
    return page._vbhc_runs  # type: ignore[attr-defined]


def wait_for_run(page: Page) -> None:
    """Wait until the script run that produced the current page content has finished."""
    page.locator(IDLE).wait_for(timeout=RUN_TIMEOUT_MS)
    watcher = getattr(page, "_vbhc_runs", None)
    if watcher is not None:
        watcher.mark = watcher.now()


def wait_for_title(page: Page, text: str | re.Pattern[str]) -> None:
    """Wait until the page title reads `text` and the run that wrote it has finished, then check it."""
    with contextlib.suppress(PlaywrightTimeoutError):  # the expect below then reports what the title says
        page.get_by_test_id("stMain").locator("h1", has_text=_exactly(text)).first.wait_for(timeout=RUN_TIMEOUT_MS)
    wait_for_run(page)
    expect(title(page)).to_have_text(text, timeout=SETTLED_MS)


def open_app(page: Page, url: str, expected_title: str | re.Pattern[str] | None = None) -> None:
    """Open `url` and wait until its first run has finished (and, if given, the title reads `expected_title`)."""
    page.goto(url)
    if expected_title is None:
        title(page).wait_for(timeout=RUN_TIMEOUT_MS)
        wait_for_run(page)
    else:
        wait_for_title(page, expected_title)


def assert_no_exception(page: Page) -> None:
    boxes = page.get_by_test_id("stException")
    assert boxes.count() == 0, "Streamlit exception on the page:\n" + "\n---\n".join(boxes.all_inner_texts())


def query(page: Page) -> dict[str, list[str]]:
    """The page's address parameters as the browser holds them now (`location.href`). Why not `page.url`: that is
    Playwright's copy, updated by an event that reaches the test process after the browser's own replaceState, and
    a check right after a settled run read the old address in two runs (the meeting date at load 16)."""
    return parse_qs(urlparse(page.evaluate("() => location.href")).query)


def choose(page: Page, label: str, option: str) -> None:
    """Pick `option` in the selectbox labelled `label` (a react-aria combobox in Streamlit 1.67)."""
    page.get_by_role("combobox", name=label, exact=True).click()
    page.get_by_role("option", name=option, exact=True).click()


def screenshot(page: Page, path: Path) -> None:
    """A screenshot of the whole page, including what is scrolled out of view in Streamlit's main area."""
    size = page.viewport_size or {"width": 1440, "height": 900}
    main = page.get_by_test_id("stMain")
    try:
        # the viewport grown to the main area's height, measured again until it holds: measured once, the page
        # could still grow after it (elements laid out late), and the screenshot then ended half-way down the page
        # (the Dutch cost page at 1,017 of its 3,747 px, the Dutch overview on a phone at 2,535 of 10,095)
        height = None
        for _ in range(6):
            # a page still drawing (skeletons of elements not yet sent, a progress bar of a view being prepared)
            # is not what a reader sees once it is done
            page.wait_for_function(DRAWN, timeout=RUN_TIMEOUT_MS)
            wait_for_charts(page)
            grown = min(max(main.evaluate("e => e.scrollHeight"), size["height"]), 12_000)
            if grown == height:
                break
            height = grown
            page.set_viewport_size({"width": size["width"], "height": height})
            page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")  # laid out
        # the viewport now holds the whole page: a screenshot of it is the full page's, byte for byte, without
        # Playwright's own full-page round trip (the window resized to the document's size and back): Chromium's
        # CPU a shot 0.49 s instead of 0.60 s (medians of 12 interleaved shots of three pages, load 27), ~60 shots
        # in the local-mode walks. Only a document taller than the window (nothing so far) still needs it.
        taller = page.evaluate("() => document.documentElement.scrollHeight > innerHeight")
        page.screenshot(path=path, full_page=taller)
    finally:
        page.set_viewport_size(size)


def table_rows(table: Locator) -> list[dict[str, str]]:
    """The rows of a static table (ui.render.static_table) as {header: text}."""
    headers = [h.strip() for h in table.locator("thead th").all_inner_texts()]
    return [
        dict(zip(headers, (c.strip() for c in tr.locator("td").all_inner_texts()), strict=False))
        for tr in table.locator("tbody tr").all()
    ]


@pytest.mark.parametrize("url", ["http://example.org/", "http://192.0.2.1/", "https://fonts.googleapis.com/css"])
def test_requests_off_the_machine_are_refused(page: Page, url: str) -> None:
    """No request of the browser leaves the machine, by name or by address: each goes to the proxy that is not
    there (tests.e2e.conftest.CHROMIUM_ARGS) and fails at once (without it, the address would time out, and the
    names would be looked up and fetched)."""
    with pytest.raises(PlaywrightError, match="ERR_PROXY_CONNECTION_FAILED"):
        page.goto(url, timeout=SETTLED_MS)


def test_shared_url_reproduces_the_view(page: Page, app_url: str) -> None:
    open_app(
        page,
        f"{app_url}/condition_team?condition=colorectal_cancer&unit_hospital=H03&indicator=length_of_stay&lang=en",
    )
    assert_no_exception(page)
    expect(title(page)).to_have_text("Colorectal cancer · Heidekamp Medisch Centrum", timeout=SETTLED_MS)
    expect(page.get_by_role("combobox", name="Condition", exact=True)).to_have_value("Colorectal cancer")
    expect(page.get_by_role("combobox", name="Unit", exact=True)).to_have_value("Heidekamp Medisch Centrum")
    expect(page.get_by_role("combobox", name="Indicator", exact=True)).to_have_value("Length of stay (days)")


def test_deep_link_as_first_request_after_server_start(page: Page, fresh_app_url: str) -> None:
    """The first visitor after a (re)start may arrive through a shared link instead of the home page."""
    open_app(page, f"{fresh_app_url}/methods?lang=en", "Methods")
    nav = page.get_by_test_id("stSidebarNav")
    # each link's text is its icon name followed by the label, e.g. "dashboardOverview"
    labels = [re.compile(rf"{re.escape(label)}$") for label, _ in PAGES.values()]
    expect(nav.get_by_role("link")).to_have_text(labels, timeout=SETTLED_MS)
    expect(page.get_by_role("combobox", name="Condition", exact=True)).to_be_visible(timeout=SETTLED_MS)
    assert_no_exception(page)


def test_bad_upload_is_refused_with_a_problem_table(page: Page, app_url: str, artifacts: Path, tmp_path: Path) -> None:
    bad = tmp_path / "care_cycles.csv"
    bad.write_text(BAD_CARE_CYCLES, encoding="utf-8")
    from tests.e2e.test_pages import upload_and_click  # test_pages reads this module

    open_app(page, f"{app_url}/data", "Data")
    uploader = page.locator(".st-key-upload_files").locator("input[type=file]")
    upload_and_click(page, uploader, bad, page.get_by_role("button", name="Import", exact=True), "import")

    error = page.get_by_test_id("stAlertContentError")
    expect(error).to_contain_text(
        re.compile(r"^Not imported: \d+ problems? found in care_cycles\.csv\."), timeout=RUN_TIMEOUT_MS
    )
    expect(error).to_contain_text("Nothing was written to the database")
    wait_for_run(page)
    assert_no_exception(page)

    # a static table (its rule wraps; ui.render.static_table), not a grid that cut the rule at its edge
    problems = page.locator(".vbhc-table").filter(has=page.locator("th", has_text="Rule"))
    expect(problems).to_have_count(1)
    rows = table_rows(problems)
    assert list(rows[0]) == ["File", "Sheet", "Row", "Column", "Value", "Rule"], rows
    assert {"File": "care_cycles.csv", "Column": "age", "Value": "abc", "Rule": "not a number"}.items() <= rows[
        0
    ].items(), rows
    screenshot(page, artifacts / "data_import_refused.png")


def test_tables_offer_only_the_audited_download(page: Page, app_url: str, tmp_path: Path) -> None:
    """The grid's own "Download as CSV" (unaudited, not formula-safe) is switched off; the Data page offers the
    import batches through the audited, formula-safe CSV download instead."""
    open_app(page, f"{app_url}/data", "Data")
    grid = page.get_by_test_id("stDataFrame").first
    grid.hover()
    toolbar = page.get_by_test_id("stElementToolbar").first
    expect(toolbar.get_by_role("button", name="Search")).to_have_count(1, timeout=SETTLED_MS)  # the toolbar is up
    expect(page.get_by_role("button", name="Download as CSV")).to_have_count(0)
    with page.expect_download(timeout=RUN_TIMEOUT_MS) as download:
        page.get_by_test_id("stDownloadButton").get_by_role("button", name="Download table (CSV)").first.click()
    saved = tmp_path / "batches.csv"
    download.value.save_as(saved)
    assert download.value.suggested_filename == "vbhc-import-batches.csv"
    assert runs(page).files_asked == 1  # the run watcher reads the page's request for the file (Exports.take)
    content = saved.read_bytes()
    assert content.startswith(b"\xef\xbb\xbffile_name,") and b"care_cycles.csv" in content
    assert_no_exception(page)


def test_the_run_watcher_tells_at_once_whether_an_action_asked_for_a_run(page: Page, app_url: str) -> None:
    """Runs.settle judges an action that may ask for no run by the frames the page says it sent: the page must
    count them, an expander (no rerun) must settle without a run and a new condition with one."""
    open_app(page, f"{app_url}/methods?lang=en", "Methods")
    watcher = runs(page)
    watcher.mark = watcher.now()
    assert watcher.settle(page) is False, watcher.now()  # nothing asked since the first run
    counted = page.evaluate("() => window.__vbhcSent || 0")  # the page counts its frames (rerun requests among them)
    assert counted >= watcher.requested > 0, (counted, watcher.now())
    page.get_by_test_id("stExpander").locator("summary").first.click()
    assert watcher.settle(page) is False, watcher.now()
    choose(page, "Condition", "Heart failure")
    assert watcher.settle(page) is True, watcher.now()
    expect(page.get_by_role("combobox", name="Condition", exact=True)).to_have_value("Heart failure")
    assert_no_exception(page)


def test_the_run_watcher_goes_on_once_the_page_is_idle_after_a_missed_end_of_a_run(page: Page, app_url: str) -> None:
    """A run's end frame the watcher misses (it happened on a loaded machine) costs IDLE_GRACE_MS of an idle page, not
    RUN_TIMEOUT_MS: the end of the run the language switch asks for is dropped here, the watcher must go on with its
    warning naming the idle page (the 60 s fallback names the timeout) and the next action settle as before."""
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

    open_app(page, f"{app_url}/methods?lang=en", "Methods")
    watcher = runs(page)
    received, dropped = watcher._received, []

    def drop_one_end(payload: bytes | str) -> None:
        msg = ForwardMsg()
        if not dropped and isinstance(payload, bytes):
            with contextlib.suppress(Exception):
                msg.ParseFromString(payload)
            if msg.WhichOneof("type") == "script_finished":
                dropped.append(msg)
                return
        received(payload)

    watcher._received = drop_one_end  # type: ignore[method-assign]
    watcher.mark = watcher.now()
    page.get_by_test_id("stSidebar").get_by_text("Nederlands", exact=True).click()
    with pytest.warns(UserWarning, match=f"its page idle for {IDLE_GRACE_MS} ms"):
        assert watcher.settle(page, asked_within_ms=RUN_TIMEOUT_MS // 4) is True, watcher.now()
    assert dropped, "no end of a run was dropped"
    expect(title(page)).to_have_text("Methoden", timeout=SETTLED_MS)
    choose(page, "Aandoening", "Hartfalen")
    assert watcher.settle(page) is True, watcher.now()
    expect(page.get_by_role("combobox", name="Aandoening", exact=True)).to_have_value("Hartfalen")
    assert_no_exception(page)


def test_the_run_watcher_waits_for_the_socket_s_frames_not_on_a_timer(page: Page, app_url: str, monkeypatch) -> None:
    """Runs.settle waits for the run a new condition asks for by the socket's frames as they arrive (Runs._next_frame),
    not by polling Playwright's driver with page.wait_for_timeout every 10 ms: a round trip each, ~1.4 ms of the test
    process's CPU and some of the driver's, hundreds per run."""
    open_app(page, f"{app_url}/methods?lang=en", "Methods")
    watcher = runs(page)
    timers = []
    wait_for_timeout = page.wait_for_timeout
    monkeypatch.setattr(page, "wait_for_timeout", lambda ms: timers.append(ms) or wait_for_timeout(ms))
    choose(page, "Condition", "Heart failure")
    assert watcher.settle(page, asked_within_ms=RUN_TIMEOUT_MS // 4) is True, watcher.now()
    assert timers == [], f"{len(timers)} timed waits"
    expect(page.get_by_role("combobox", name="Condition", exact=True)).to_have_value("Heart failure")
    assert_no_exception(page)


#: Swallows the page's next click on anything (stopped before Streamlit's handlers see it, its default prevented), as
#: a loaded page once lost a form's submit; counts every click that reaches the document.
LOSE_THE_NEXT_CLICK = """() => {
    window.__vbhcClicks = 0;
    document.addEventListener('click', () => { window.__vbhcClicks += 1; }, {capture: true});
    document.addEventListener('click', e => { e.stopImmediatePropagation(); e.preventDefault(); },
        {capture: true, once: true});
}"""


def test_a_click_that_asked_for_no_run_is_made_again(page: Page, app_url: str, monkeypatch) -> None:
    """A click that must ask for a script run and asked for none (lost: nothing was sent, nothing written) is told
    apart by the run watcher (settle says no run was asked) and made again (test_pages.click_for_a_run): the
    language switch whose first click is swallowed still switches, after two clicks."""
    from tests.e2e import test_pages

    monkeypatch.setattr(test_pages, "RUN_ASKED_MS", 1_000)  # the lost click's wait, short here
    open_app(page, f"{app_url}/methods?lang=en", "Methods")
    runs(page).mark = runs(page).now()
    page.evaluate(LOSE_THE_NEXT_CLICK)
    switch = page.get_by_test_id("stSidebar").get_by_text("Nederlands", exact=True)
    test_pages.click_for_a_run(page, switch, "language")
    assert page.evaluate("() => window.__vbhcClicks") == 2
    expect(title(page)).to_have_text("Methoden", timeout=SETTLED_MS)
    assert parse_qs(urlparse(page.url).query)["lang"] == ["nl"], page.url
    assert_no_exception(page)
