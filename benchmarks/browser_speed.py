"""What a person feels: click -> settled page in a real browser (Playwright on Debian's Chromium) against the real
server (`streamlit run streamlit_app.py`), plus a restart and concurrent viewers.

    python benchmarks/browser_speed.py                     # the default demo (50,000 cycles), built on first run
    python benchmarks/browser_speed.py --cycles 1000000    # the 1,000,000-cycle benchmark database
    python benchmarks/browser_speed.py --reps 5 --sessions 1 5 10 20 --session-timeout 180
    python benchmarks/browser_speed.py --skip concurrency restart    # one session's clicks only
    python benchmarks/browser_speed.py --attach http://127.0.0.1:8501 runs.jsonl PID  # a server started by hand
                                                                                       # with VBHC_RUN_TIMING_LOG

The server runs without a file watcher, as `vbhc serve` starts it (VBHC_BENCH_FILE_WATCHER=auto: Streamlit's
default). Repetitions replay the same filter values in a new session: the first repetition is a first visit of
each view, later ones read the caches, so compare first visits (the JSON keeps every repetition).

Uses /usr/bin/chromium (VBHC_TEST_CHROMIUM); never `playwright install`. The server runs from this checkout (cwd
and PYTHONPATH) on the benchmark database of benchmarks/_util.py, with VBHC_RUN_TIMING_LOG set, so every script
run writes its page, wall and thread CPU seconds (measured inside the server) to a log read here.

Settled = the script run that the click started has finished (the app is no longer "running", no stale element
is left) and every visible Vega chart has drawn its marks (a canvas or svg of non-zero size). Click -> settled is
read on the page's own clock: from the click event to the first animation frame that shows the settled page.
Playwright's locating and actionability checks before the click are not what a person waits for; "from call"
(JSON `seconds_from_call`) is the same action timed from Playwright's call, as this script measured before. Per
action: median and p95 of click -> settled over --reps repetitions, the server's script time of the runs in that
window, the websocket bytes the browser received and the time from the last message to settled (the browser's own
work), with the 1-minute load average beside each figure (the host is shared: compare ratios measured in one run).
Then: 1, 5, 10 and 20 browser sessions opening the team page at once (server time per script run, of it the wait
for a free CPU, server CPU seconds and RSS per session; the browsers run at the lowest priority, their session's
autogroup at nice 19 (VBHC_BENCH_BROWSER_NICE), so they take only the CPU the server leaves), first as new browsers,
then as returning ones whose cache holds Streamlit's static files (as a team's members who open the dashboard every
month); and server restart -> first usable page. Results: a markdown table on stdout and JSON under
benchmarks/results/ (git-ignored).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from playwright.sync_api import Error as PlaywrightError
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import ROOT, bench_database

CHROMIUM = os.environ.get("VBHC_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [  # as tests/e2e/conftest.py: no sandbox (root), no GPU, nothing that calls out
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
DESKTOP = {"width": 1440, "height": 900}
RESULTS = ROOT / "benchmarks" / "results"
SETTLE_TIMEOUT_MS = 90_000
FIRST_PAGE_TIMEOUT_MS = 600_000  # a cold server fits the case-mix models first
FRAGMENT_RUN = ForwardMsg.ScriptFinishedStatus.FINISHED_FRAGMENT_RUN_SUCCESSFULLY
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")

# counts finished script runs (the app's script state leaving "running"): the concurrent sessions' first page only.
# A click in a warm session is judged by the server's own `script_finished` message instead (Session below): a run
# that takes a few milliseconds can pass "running" and "notRunning" in one render, and that attribute never changes.
INIT_SCRIPT = """
window.__vbhcFinished = 0;
new MutationObserver((changes) => {
  for (const m of changes) {
    if (m.target.getAttribute('data-test-script-state') === 'notRunning' && m.oldValue !== 'notRunning') {
      window.__vbhcFinished += 1;
    }
  }
}).observe(document, {attributes: true, subtree: true, attributeOldValue: true,
                      attributeFilter: ['data-test-script-state']});
// when the person clicked: the page's own clock at the click event (Playwright's locating and actionability
// checks before it are not what a person waits for)
window.__vbhcClick = null;
document.addEventListener('click', (e) => { window.__vbhcClick = performance.timeOrigin + e.timeStamp; }, true);
"""
SETTLED_JS = """
(target) => {
  const app = document.querySelector('[data-testid="stApp"]');
  if (!app || app.getAttribute('data-test-script-state') !== 'notRunning') return false;
  if (target !== null && (window.__vbhcFinished || 0) < target) return false;
  if (!document.querySelector('[data-testid="stMain"] h1')) return false;
  if (document.querySelector('[data-testid="stElementContainer"][data-stale="true"]')) return false;
  // a chart whose code is still loading shows a skeleton (the first chart of a session): not drawn yet
  for (const skeleton of document.querySelectorAll('[data-testid="stMain"] [data-testid="stSkeleton"]')) {
    const box = skeleton.getBoundingClientRect();
    if (box.width > 0 && box.height > 0) return false;
  }
  for (const chart of document.querySelectorAll('[data-testid="stVegaLiteChart"]')) {
    const box = chart.getBoundingClientRect();
    if (box.width === 0 || box.height === 0) continue;  // in a tab that is not open
    const marks = [...chart.querySelectorAll('canvas, svg.marks')];
    if (!marks.some((m) => { const r = m.getBoundingClientRect(); return r.width > 0 && r.height > 0; })) return false;
  }
  window.__vbhcSettledAt = performance.timeOrigin + performance.now();  // the first frame that shows it all
  return true;
}
"""
CLICK_CLOCK_JS = "() => [window.__vbhcClick, window.__vbhcSettledAt]"
CHART_POINTS_JS = """
() => [...document.querySelectorAll('[data-testid="stVegaLiteChart"]')].filter(
  (c) => c.getBoundingClientRect().width > 0).length
"""


# --- the server ---------------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`python -m streamlit run streamlit_app.py` from this checkout, as scripts/dashboard and `vbhc serve` do."""

    def __init__(self, database_url: str, timing_log: Path, log_path: Path, extra_env: dict[str, str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.timing_log = timing_log
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "VBHC_DATABASE_URL": database_url,
            "VBHC_RUN_TIMING_LOG": str(timing_log),
            **extra_env,
        }
        cmd = [sys.executable, "-m", "streamlit", "run", "streamlit_app.py", "--server.headless", "true"]
        cmd += ["--server.port", str(self.port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false"]
        cmd += ["--server.fileWatcherType", os.environ.get("VBHC_BENCH_FILE_WATCHER", "none")]  # as `vbhc serve`
        self.started = time.perf_counter()
        self.log = log_path.open("a", encoding="utf-8")
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT)

    def wait_healthy(self, timeout: float = 120) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=1) as response,
            ):
                if response.status == 200:
                    return time.perf_counter() - self.started
            if self.proc.poll() is not None:
                raise SystemExit(f"the server exited with code {self.proc.returncode}")
            time.sleep(0.05)
        raise SystemExit("the server did not become healthy")

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime, all threads

    def rss_mb(self) -> float:
        return int(Path(f"/proc/{self.proc.pid}/statm").read_text().split()[1]) * PAGE_SIZE / 2**20

    def runs_since(self, offset: int) -> tuple[list[dict], int]:
        """Script runs logged by the server after byte `offset` of the timing log, and the new offset."""
        if not self.timing_log.exists():
            return [], offset
        with self.timing_log.open("rb") as f:
            f.seek(offset)
            chunk = f.read()
        complete = chunk[: chunk.rfind(b"\n") + 1]
        return [json.loads(line) for line in complete.splitlines() if line.strip()], offset + len(complete)

    def log_size(self) -> int:
        return self.timing_log.stat().st_size if self.timing_log.exists() else 0

    def wait_idle(self, quiet_cpu: float = 0.25, window: float = 3.0, timeout: float = 600) -> float:
        """Wait until the server's background work (the warm-up) is done: < quiet_cpu CPU seconds in `window`."""
        started = time.perf_counter()
        while time.perf_counter() - started < timeout:
            before = self.cpu_seconds()
            time.sleep(window)
            if self.cpu_seconds() - before < quiet_cpu:
                break
        return time.perf_counter() - started

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self.log.close()


class Attached(Server):
    """A server started by hand (--attach URL TIMING_LOG PID), e.g. while working on this benchmark."""

    def __init__(self, url: str, timing_log: str, pid: str) -> None:
        self.url, self.timing_log = url, Path(timing_log)
        self.proc = argparse.Namespace(pid=int(pid))

    def stop(self) -> None:
        pass


def load1() -> float:
    return os.getloadavg()[0]


def summary(values: list[float]) -> dict:
    ordered = sorted(values)
    if not ordered:
        return {"n": 0}
    p95 = ordered[min(len(ordered) - 1, max(0, round(0.95 * len(ordered) + 0.5) - 1))]
    return {"n": len(ordered), "median": statistics.median(ordered), "p95": p95, "max": ordered[-1]}


# --- one session's clicks -----------------------------------------------------------------------------------
class Session:
    """One browser tab on the dashboard; `timed(name, action)` records click -> settled for an action."""

    def __init__(self, page, server: Server) -> None:
        self.page = page
        self.server = server
        self.frames: list[tuple[float, int]] = []  # (perf_counter, bytes) of websocket messages received
        self.runs_finished = 0  # `script_finished` messages on the page's current socket
        page.on("websocket", self._socket)
        page.add_init_script(INIT_SCRIPT)
        self.records: dict[str, list[dict]] = {}

    def _socket(self, ws) -> None:
        if "/_stcore/stream" in ws.url:
            self.runs_finished = 0  # a new page's connection counts its own runs
            ws.on("framereceived", lambda payload: self._frame(ws, payload))

    def _frame(self, ws, payload) -> None:
        self.frames.append((time.perf_counter(), len(payload)))
        if isinstance(payload, bytes):
            msg = ForwardMsg()
            with contextlib.suppress(Exception):
                msg.ParseFromString(payload)
                # a fragment's own run (a page looking whether what it waits for is ready) is not the click's
                if msg.WhichOneof("type") == "script_finished" and msg.script_finished != FRAGMENT_RUN:
                    self.runs_finished += 1

    def finished(self) -> int:
        return self.runs_finished

    def settle(self, target: int, timeout_ms: float = SETTLE_TIMEOUT_MS) -> None:
        """Wait for the server's `script_finished` of run number `target` on this socket, then for the page to
        show it: idle, no element of the previous run left, a title, every visible chart drawn."""
        deadline = time.perf_counter() + timeout_ms / 1000
        while self.runs_finished < target:
            if time.perf_counter() > deadline:
                raise PlaywrightError(f"run {target} did not finish within {timeout_ms / 1000:.0f} s")
            self.page.wait_for_timeout(5)
        left = max(1.0, (deadline - time.perf_counter()) * 1000)
        self.page.wait_for_function(SETTLED_JS, arg=None, timeout=left, polling="raf")

    def timed(
        self, name: str, action, *, record: bool = True, new_page: bool = False, timeout_ms: float = SETTLE_TIMEOUT_MS
    ) -> dict:
        target = 1 if new_page else self.finished() + 1
        offset = self.server.log_size()
        frames_before = len(self.frames)
        load = load1()
        process_cpu = self.server.cpu_seconds()
        if not new_page:
            self.page.evaluate("() => { window.__vbhcClick = null; window.__vbhcSettledAt = null; }")
        started = time.perf_counter()
        self.clock = None
        try:
            action()
            started = self.clock or started
            self.settle(target, timeout_ms)
        except PlaywrightError as error:
            print(f"    {name}: failed or not settled within {timeout_ms / 1000:.0f} s: {error}"[:300], flush=True)
            return {}
        from_call = time.perf_counter() - started
        process_cpu = self.server.cpu_seconds() - process_cpu
        clicked, settled_at = (None, None) if new_page else self.page.evaluate(CLICK_CLOCK_JS)
        # click -> settled on the page's own clock where the page saw the click; else from the Python call
        seconds = (settled_at - clicked) / 1000 if clicked and settled_at and settled_at > clicked else from_call
        runs, _ = self.server.runs_since(offset)
        frames = self.frames[frames_before:]
        figure = {
            "seconds": seconds,
            "seconds_from_call": from_call,  # this stop's earlier figures: from Playwright's call, its checks included
            "load1": load,
            "server_wall": sum(r["wall"] for r in runs),
            "server_cpu": sum(r["cpu"] for r in runs),
            # the whole server process's CPU from the click to settled: the run's thread's own CPU (server_cpu)
            # leaves out a view computed for the page in the worker pool (ui.data._wait_for), e.g. a new
            # comparison group, and the websocket's sending
            "server_process_cpu": process_cpu,
            "runs": len(runs),
            "ws_bytes": sum(size for _, size in frames),
            "ws_messages": len(frames),
            "after_last_message": (started + from_call - frames[-1][0]) if frames else None,
            "charts": self.page.evaluate(CHART_POINTS_JS),
        }
        if record:
            self.records.setdefault(name, []).append(figure)
        return figure

    # the sidebar's controls, found by their label in the session's language
    def combobox(self, label: str):
        return self.page.get_by_role("combobox", name=label, exact=True)

    def choose_next(self, label: str):
        """An action: open the select box `label` and pick the option after the current one (wrapping)."""

        def action() -> None:
            box = self.combobox(label)
            current = box.input_value()
            options = self.page.get_by_role("option")
            for attempt in range(3):  # a click while the last list was still closing can close the new one at once
                box.click()
                try:
                    options.first.wait_for(timeout=10_000)
                    break
                except PlaywrightError:
                    if attempt == 2:
                        raise
                    self.page.keyboard.press("Escape")
            names = [n.strip() for n in options.all_inner_texts()]
            index = names.index(current) if current in names else -1
            self.clock = time.perf_counter()  # the click that counts is the option's
            options.nth((index + 1) % len(names)).click()

        return action

    def nav(self, label: str):
        return self.page.get_by_test_id("stSidebarNav").get_by_role("link", name=label, exact=True).click


def walk_one_session(browser, server: Server, reps: int) -> dict:
    """Every page switch and filter change, `reps` times, in one browser session (English, then Dutch and back)."""
    from vbhc.i18n import t

    context = browser.new_context(locale="en-US", viewport=DESKTOP)
    page = context.new_page()
    s = Session(page, server)
    page.goto(f"{server.url}/?lang=en")
    s.settle(1)
    nav = ["condition_team", "proms", "compare_departments", "cost_value", "data", "audit", "methods", "overview"]
    for rep in range(reps):
        print(f"  repetition {rep + 1}/{reps}", flush=True)
        for key in nav:
            s.timed(f"page -> {key}", s.nav(t(f"nav.{key}", "en")))
        s.timed("page -> condition_team", s.nav(t("nav.condition_team", "en")), record=False)
        # the team page, verdicts tab: each global filter
        for key in ("condition", "unit", "period", "unit_level"):
            s.timed(f"filter {key}", s.choose_next(t(f"filter.{key}", "en")))
        # language: to Dutch and back
        s.timed("filter language", page.get_by_test_id("stSidebar").get_by_text(t("language.nl", "en")).click)
        s.timed("filter language", page.get_by_test_id("stSidebar").get_by_text(t("language.en", "nl")).click)
        # one indicator in depth
        s.timed("tab depth", page.get_by_role("tab", name=t("pages.tab_depth", "en"), exact=True).click)
        s.timed("filter indicator", s.choose_next(t("filter.indicator", "en")))
        s.timed("tab verdicts", page.get_by_role("tab", name=t("pages.tab_verdicts", "en"), exact=True).click)

        # comparison group: one hospital more than all units (then a new session, back to all units)
        def add_hospital(rep: int = rep) -> None:
            page.get_by_test_id("stMultiSelect").get_by_role("button", name="Open").click()
            option = page.get_by_role("option").nth(1 + rep)
            option.wait_for(timeout=30_000)
            s.clock = time.perf_counter()
            option.click()

        s.timed("filter comparison_group", add_hospital)
        page.keyboard.press("Escape")
        s.timed("reload", lambda: page.goto(f"{server.url}/?lang=en"), record=False, new_page=True)
    context.close()
    return s.records


def wait_for_warm_up(browser, server: Server, timeout: float = 900) -> float:
    """Open the methods page (light) every few seconds until the server's timing log says the warm-up is over."""
    started = time.perf_counter()
    context = browser.new_context(locale="en-US", viewport=DESKTOP)
    page = context.new_page()
    s = Session(page, server)
    while time.perf_counter() - started < timeout:
        offset = server.log_size()
        s.timed("methods", lambda: page.goto(f"{server.url}/methods?lang=en"), record=False, new_page=True)
        runs, _ = server.runs_since(offset)
        if runs and not runs[-1].get("warming_up", False):
            break
        time.sleep(5)
    context.close()
    return time.perf_counter() - started


def first_page(browser, server: Server, path: str) -> dict:
    """A fresh session opening `path`: seconds from the request to a settled page."""
    context = browser.new_context(locale="en-US", viewport=DESKTOP)
    page = context.new_page()
    s = Session(page, server)
    figure = s.timed(
        "first",
        lambda: page.goto(f"{server.url}{path}", timeout=FIRST_PAGE_TIMEOUT_MS),
        new_page=True,
        timeout_ms=FIRST_PAGE_TIMEOUT_MS,
    )
    context.close()
    return figure


# --- concurrent sessions ------------------------------------------------------------------------------------
def _niced_chromium() -> Path:
    """A wrapper that starts Chromium at the lowest CPU priority (Playwright starts whatever executable it is given).

    `nice -n 19` alone did not do it: Playwright starts the browser in a session of its own (setsid), and with the
    kernel's autogroups (/proc/sys/kernel/sched_autogroup_enabled, on in Debian's kernels) each session is one
    group that gets as much CPU as the server's whole group whatever its processes' nice values; Chromium, run as
    root, also sets some of its threads back to nice -8 and 0. The session's own autogroup is set to nice 19, so
    all of Chromium's processes together take only the CPU the server leaves. On a host other people load as well
    they then get almost none (load 20: ten new browsers did not open the page in 3 minutes, at 19 and at 10):
    VBHC_BENCH_BROWSER_NICE=0 runs them as any other process (as this wrapper did before), so they compete with
    the server for the CPU and its time per script run includes that wait (the log's cpu_wait)."""
    wrapper = Path(tempfile.mkdtemp(prefix="vbhc-chromium-")) / "chromium"
    nice = int(os.environ.get("VBHC_BENCH_BROWSER_NICE", "19"))
    lowest = f"{{ echo {nice} > /proc/self/autogroup; }} 2>/dev/null || true"  # no autogroups (or not allowed)
    wrapper.write_text(f'#!/bin/sh\n{lowest}\nexec nice -n 19 {CHROMIUM} "$@"\n', encoding="utf-8")
    wrapper.chmod(0o755)
    return wrapper


async def _concurrent(server: Server, sessions: int, path: str, timeout: float, returning: bool = False) -> dict:
    """`sessions` browsers opening `path` at once. returning=True: each browser has opened the dashboard before
    (untimed, one after the other), so its cache holds Streamlit's hashed bundles (served with a long max-age) and
    the timed visit asks the server for the page and a new session only, as a team's members do who open the
    dashboard every month; otherwise every browser is new and also fetches Streamlit's ~40 static files."""
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        # the browsers run at the lowest CPU priority: on one 2-core machine they would otherwise take the server's
        # CPU, and the figure that counts here is the server's (as if the viewers sat at their own computers)
        browser = await pw.chromium.launch(executable_path=str(_niced_chromium()), args=CHROMIUM_ARGS)
        contexts = [await browser.new_context(locale="en-US", viewport=DESKTOP) for _ in range(sessions)]
        pages = []
        for context in contexts:
            page = await context.new_page()
            await page.add_init_script(INIT_SCRIPT)
            if returning:  # an earlier visit: its session ends when the page navigates again
                await page.goto(f"{server.url}{path}", timeout=timeout * 1000)
                await page.wait_for_function(SETTLED_JS, arg=1, timeout=timeout * 1000, polling=100)
            pages.append(page)
        if returning:
            server.wait_idle(window=2.0, timeout=60)
        offset, cpu, rss, load = server.log_size(), server.cpu_seconds(), server.rss_mb(), load1()

        async def one(page) -> float | None:
            started = time.perf_counter()
            try:
                await page.goto(f"{server.url}{path}", timeout=timeout * 1000)
                await page.wait_for_function(SETTLED_JS, arg=1, timeout=timeout * 1000, polling=100)
            except Exception:  # over the cap: counted as not settled
                return None
            return time.perf_counter() - started

        started = time.perf_counter()
        seconds = await asyncio.gather(*(one(p) for p in pages))
        elapsed = time.perf_counter() - started
        cpu_used, rss_after = server.cpu_seconds() - cpu, server.rss_mb()
        runs, _ = server.runs_since(offset)
        await browser.close()
    done = [s for s in seconds if s is not None]
    return {
        "sessions": sessions,
        "returning": returning,
        "load1": load,
        "load1_after": load1(),
        "settled": len(done),
        "click_to_settled": summary(done),
        "elapsed": elapsed,
        "server_run_wall": summary([r["wall"] for r in runs]),
        "server_run_cpu": summary([r["cpu"] for r in runs]),
        # the run's thread waiting for a free CPU (Linux): what of the wall is neither this nor the CPU is the wait
        # for the interpreter lock (the server's other threads), a lock or I/O
        "server_run_cpu_wait": summary([r["cpu_wait"] for r in runs if "cpu_wait" in r]),
        "runs": len(runs),
        "server_cpu_per_session": cpu_used / sessions,
        "rss_before_mb": rss,
        "rss_after_mb": rss_after,
        "rss_per_session_mb": (rss_after - rss) / sessions,
    }


# --- report ---------------------------------------------------------------------------------------------------
def table_of_actions(records: dict[str, list[dict]]) -> list[str]:
    lines = [
        "| action | n | median s | p95 s | from call median / p95 s | load1 (median) | server s (median) "
        "| server CPU s (run's thread / process) | runs | ws KB (median) | after last message s | charts |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, figures in records.items():
        secs = summary([f["seconds"] for f in figures])
        call = summary([f.get("seconds_from_call", f["seconds"]) for f in figures])
        after = [f["after_last_message"] for f in figures if f["after_last_message"] is not None]
        lines.append(
            f"| {name} | {secs['n']} | {secs['median']:.2f} | {secs['p95']:.2f} "
            f"| {call['median']:.2f} / {call['p95']:.2f} "
            f"| {statistics.median(f['load1'] for f in figures):.2f} "
            f"| {statistics.median(f['server_wall'] for f in figures):.2f} "
            f"| {statistics.median(f['server_cpu'] for f in figures):.2f} / "
            f"{statistics.median(f.get('server_process_cpu', float('nan')) for f in figures):.2f} "
            f"| {statistics.median(f['runs'] for f in figures):.0f} "
            f"| {statistics.median(f['ws_bytes'] for f in figures) / 1024:.0f} "
            f"| {statistics.median(after) if after else float('nan'):.2f} "
            f"| {max(f['charts'] for f in figures)} |"
        )
    return lines


def forget_groups(db: Path) -> int:
    """Remove the comparison-group views a previous run stored beside the benchmark database (vbhc.results keeps
    them like any view), so the walk's group filter computes its group as a first viewer would."""
    from vbhc.results import GROUP_MARK

    removed = 0
    for path in Path(f"{db}.results").glob(f"*/*/*{GROUP_MARK}-*.pkl"):
        path.unlink()
        removed += 1
    return removed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cycles", type=int, default=50_000)
    parser.add_argument("--reps", type=int, default=3, help="repetitions of the page switches and filter changes")
    parser.add_argument("--sessions", type=int, nargs="+", default=[1, 5, 10, 20])
    parser.add_argument("--session-timeout", type=float, default=180, help="cap per concurrent session, seconds")
    parser.add_argument("--skip", nargs="*", default=[], choices=["clicks", "concurrency", "restart"])
    parser.add_argument("--attach", nargs=3, metavar=("URL", "TIMING_LOG", "PID"), help="use a running server")
    parser.add_argument("--label", default="", help="a name for the JSON file (e.g. baseline, after)")
    parser.add_argument(
        "--database", type=Path, help="a SQLite registry to run on instead of data/bench's (e.g. a private copy)"
    )
    parser.add_argument(
        "--warm-up-timeout",
        type=float,
        default=900,
        help="seconds to wait for the warm-up before the clicks (less: the clicks run beside the years' preparation)",
    )
    args = parser.parse_args()
    if not Path(CHROMIUM).exists():
        raise SystemExit(f"{CHROMIUM} not found: apt-get install -y chromium (never `playwright install`)")
    from playwright.sync_api import sync_playwright

    db = args.database.resolve() if args.database else bench_database(args.cycles)
    database_url = f"sqlite:///{db}"
    # a comparison group is measured as a viewer who picks one nobody has viewed: none of them is stored yet
    forgotten = forget_groups(db)
    work = Path(tempfile.mkdtemp(prefix="vbhc-browser-speed-"))
    timing_log, server_log = work / "runs.jsonl", work / "streamlit.log"
    out: dict = {
        "cycles": args.cycles,
        "started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "cpus": os.cpu_count(),
        "git": subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip(),
    }
    print(f"{args.cycles:,}-cycle demo ({db}); server log {server_log}", flush=True)
    print(f"stored comparison-group views removed: {forgotten}", flush=True)
    server = Attached(*args.attach) if args.attach else Server(database_url, timing_log, server_log, {})
    try:
        out["healthy_s"] = 0.0 if args.attach else server.wait_healthy()
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            out["cold_first_page"] = first_page(browser, server, "/?lang=en")
            print(f"cold start -> first page {out['cold_first_page']['seconds']:.1f} s; waiting for the warm-up")
            out["warm_up_wait_s"] = wait_for_warm_up(browser, server, args.warm_up_timeout)
            out["rss_warm_mb"] = server.rss_mb()
            print(f"warm-up done after {out['warm_up_wait_s']:.0f} s more; RSS {out['rss_warm_mb']:.0f} MB", flush=True)
            if "clicks" not in args.skip:
                out["actions"] = walk_one_session(browser, server, args.reps)
            browser.close()
        if "concurrency" not in args.skip:
            out["concurrency"] = []
            if load1() > 2 * (os.cpu_count() or 1) and os.environ.get("VBHC_BENCH_BROWSER_NICE", "19") != "0":
                print(
                    f"  load {load1():.0f}: browsers at the lowest priority may get almost no CPU on a host this busy "
                    "(VBHC_BENCH_BROWSER_NICE=0 runs them as other processes)",
                    flush=True,
                )
            for returning in (False, True):
                for n in args.sessions:
                    server.wait_idle(window=2.0, timeout=60)
                    who = "returning" if returning else "new"
                    print(f"  {n} concurrent sessions ({who} browsers) opening the team page", flush=True)
                    out["concurrency"].append(
                        asyncio.run(_concurrent(server, n, "/condition_team?lang=en", args.session_timeout, returning))
                    )
        if "restart" not in args.skip:
            server.stop()
            server = Server(database_url, timing_log, server_log, {})
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                healthy = server.wait_healthy()
                figure = first_page(browser, server, "/condition_team?lang=en")
                out["restart"] = {
                    "healthy_s": healthy,
                    "first_usable_team_page_s": time.perf_counter() - server.started,
                    "page_s": figure["seconds"],
                    "load1": figure["load1"],
                }
                browser.close()
    finally:
        server.stop()

    lines = [f"### browser_speed: {args.cycles:,} cycles, {out['cpus']} CPUs, commit {out['git']}", ""]
    cold = out["cold_first_page"]
    lines.append(
        f"- server start -> healthy {out['healthy_s']:.1f} s; first page (overview, cold) {cold['seconds']:.1f} s "
        f"(load1 {cold['load1']:.2f}); warm-up finished {out['warm_up_wait_s']:.0f} s later; RSS warm "
        f"{out['rss_warm_mb']:.0f} MB"
    )
    if "restart" in out:
        r = out["restart"]
        lines.append(
            f"- restart -> first usable team page {r['first_usable_team_page_s']:.1f} s (healthy after "
            f"{r['healthy_s']:.1f} s, page {r['page_s']:.1f} s; load1 {r['load1']:.2f})"
        )
    if "actions" in out:
        lines += ["", "One session, click -> settled (seconds):", "", *table_of_actions(out["actions"])]
    if "concurrency" in out:
        lines += [
            "",
            "Concurrent sessions opening the team page:",
            "",
            "New browsers fetch Streamlit's static files too; returning ones have them cached (an untimed visit "
            "before).",
            "",
            "| browsers | sessions | settled | click->settled median / max s | server s per run median / p95 | "
            "server CPU s per run median | waiting for a CPU s per run median / p95 | server CPU s per session "
            "| RSS MB before -> after | MB per session | load1 before / after |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for c in out["concurrency"]:
            cs, rw, rc = c["click_to_settled"], c["server_run_wall"], c["server_run_cpu"]
            wait = c.get("server_run_cpu_wait", {})
            lines.append(
                f"| {'returning' if c.get('returning') else 'new'} "
                f"| {c['sessions']} | {c['settled']} | {cs.get('median', float('nan')):.1f} / "
                f"{cs.get('max', float('nan')):.1f} | {rw.get('median', float('nan')):.2f} / "
                f"{rw.get('p95', float('nan')):.2f} | {rc.get('median', float('nan')):.2f} "
                f"| {wait.get('median', float('nan')):.2f} / {wait.get('p95', float('nan')):.2f} "
                f"| {c['server_cpu_per_session']:.2f} | {c['rss_before_mb']:.0f} -> {c['rss_after_mb']:.0f} "
                f"| {c['rss_per_session_mb']:.1f} | {c['load1']:.2f} / {c['load1_after']:.2f} |"
            )
    report = "\n".join(lines)
    print("\n" + report)
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
    path = RESULTS / f"browser_speed-{args.cycles}-{args.label or 'run'}-{stamp}.json"
    path.write_text(json.dumps({**out, "report": report}, indent=1), encoding="utf-8")
    print(f"\n(written to {path.relative_to(ROOT)})")


if __name__ == "__main__":
    main()
