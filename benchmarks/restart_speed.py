"""Server restart -> first usable condition-team page, in a real browser (Playwright, Debian's Chromium).

    python benchmarks/restart_speed.py                     # the default demo database (data/vbhc.db)
    python benchmarks/restart_speed.py --cycles 50000      # the benchmark database under data/bench/
    python benchmarks/restart_speed.py --runs 3 --empty-store

Each run starts `streamlit run streamlit_app.py` afresh and times, from the moment the process is started: the
server answering its health check, and the team page settled (its title drawn, the verdict table on screen and
Streamlit's script run finished), with the CPU time the server spent until then (all its threads, including the
background preparation of views). `--empty-store` removes the persisted indicator results first (what a server
without vbhc.results, or the first start after an import without precomputing, has to do). Target (issue 13,
item 2): < 5 s on the 50k demo. Each run is measured twice: with a new browser (an empty cache) and with a
returning one whose cache holds Streamlit's static files (a viewer who reloads the dashboard after the restart).
The load average is printed beside each figure: the host is shared.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import ROOT, bench_database

sys.path.insert(0, str(ROOT))  # this checkout's vbhc (and so its streamlit_app.py), whatever is installed
from ui.render import TABLE_CLASS
from vbhc.cli import serve_command

IDLE = '[data-testid="stApp"][data-test-script-state="notRunning"]'
#: The verdict table: ui.render.static_table draws it as an HTML table of its own class (it was an st.dataframe,
#: then an st.table; waiting for an old test id made every run wait out its timeout without printing anything)
VERDICT_TABLE = f'[data-testid="stMain"] .{TABLE_CLASS}'
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=1) as reply:
            return reply.status == 200
    except OSError:
        return False


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, all its threads (Linux /proc): the server's own work, which the load
    of a shared host does not inflate as much as the wall time."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


PAGE_OPTIONS = {"viewport": {"width": 1440, "height": 900}, "locale": "en-US"}


def returning(browser) -> bool:
    """Whether `browser` is a context kept from run to run (its cache holds Streamlit's static files)."""
    return hasattr(browser, "browser")  # a BrowserContext knows its Browser; a Browser does not


def one_run(url: str, browser, timeout_s: float) -> dict[str, float]:
    """One server start; {} (and a line saying what the page showed) when the page did not settle in time.
    `browser`: a Browser (each run a new context: an empty cache, as a first visit) or a BrowserContext whose cache
    holds Streamlit's static files (a viewer who had the dashboard open before the restart and reloads it)."""
    from playwright.sync_api import Error as PlaywrightError

    port = _free_port()
    env = {**os.environ, "VBHC_DATABASE_URL": url, "PYTHONPATH": str(ROOT)}
    started = time.perf_counter()
    # started as `vbhc serve` starts it (no file watcher, no full garbage collection after each run)
    server = subprocess.Popen(
        serve_command(port, "127.0.0.1", headless=True),
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        while not _healthy(port):
            if server.poll() is not None or time.perf_counter() - started > timeout_s:
                raise SystemExit("the server did not start")
            time.sleep(0.05)
        health = time.perf_counter() - started
        page = browser.new_page(**({} if returning(browser) else PAGE_OPTIONS))
        # the browser opens the session's websocket once it has loaded Streamlit's page: the script run starts then
        marks: dict[str, float] = {}
        page.on("websocket", lambda _: marks.setdefault("socket", time.perf_counter() - started))
        left_ms = lambda: max(1.0, timeout_s - (time.perf_counter() - started)) * 1000  # noqa: E731
        try:
            page.goto(f"http://127.0.0.1:{port}/condition_team?lang=en", timeout=left_ms())
            main = page.get_by_test_id("stMain")
            main.locator("h1").first.wait_for(timeout=left_ms())
            title = time.perf_counter() - started
            page.locator(VERDICT_TABLE).first.wait_for(timeout=left_ms())
            page.locator(IDLE).wait_for(timeout=left_ms())
        except PlaywrightError as error:  # say what the page showed instead of waiting silently
            shown = page.get_by_test_id("stMain").inner_text(timeout=2000)[:200] if not page.is_closed() else ""
            print(f"not settled within {timeout_s:.0f} s ({str(error).splitlines()[0]}); page: {shown!r}", flush=True)
            return {}
        settled = time.perf_counter() - started
        cpu = _cpu_seconds(server.pid)
        page.close()
        load = os.getloadavg()[0]
        socket = marks.get("socket", float("nan"))
        return {"health": health, "socket": socket, "title": title, "team_page": settled, "cpu": cpu, "load": load}
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()


def main() -> None:
    from playwright.sync_api import sync_playwright

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cycles", type=int, help="use the benchmark database of this size (default: data/vbhc.db)")
    parser.add_argument("--database", type=Path, help="a SQLite database file (default: data/vbhc.db)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--empty-store", action="store_true", help="remove the persisted results before each run")
    parser.add_argument(
        "--timeout", type=float, default=120.0, help="seconds from the server start until a run counts as failed"
    )
    args = parser.parse_args()
    db = args.database or (bench_database(args.cycles) if args.cycles else ROOT / "data" / "vbhc.db")
    if not db.exists():
        raise SystemExit(f"{db} not found: build it with `vbhc demo` first")
    url = f"sqlite:///{db}"
    if not args.empty_store:
        stored = sum(1 for _ in Path(f"{db}.results").glob("*/*/*.pkl"))
        print(f"{stored} stored results beside {db} (none or another code version: the first page waits for them)")
    figures: dict[str, list[dict[str, float]]] = {"new browser": [], "returning browser": []}
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=os.environ.get("VBHC_CHROMIUM", "/usr/bin/chromium"), args=CHROMIUM_ARGS
        )
        # a viewer's browser that has loaded the dashboard before (its cache holds Streamlit's static files): the
        # first run only fills the cache and is not counted
        kept = browser.new_context(**PAGE_OPTIONS)
        one_run(url, kept, args.timeout)
        for _ in range(args.runs):
            for who, client in (("new browser", browser), ("returning browser", kept)):
                if args.empty_store:
                    shutil.rmtree(Path(f"{db}.results"), ignore_errors=True)
                load_before = os.getloadavg()[0]
                run = one_run(url, client, args.timeout)
                if not run:
                    continue
                figures[who].append(run)
                print(
                    f"{who:17}: server up {run['health']:5.1f} s, session {run['socket']:5.1f} s, title "
                    f"{run['title']:5.1f} s, team page settled {run['team_page']:5.1f} s, server CPU by then "
                    f"{run['cpu']:5.1f} s (load average {load_before:.2f} before, {run['load']:.2f} after)",
                    flush=True,
                )
        kept.close()
        browser.close()
    if not any(figures.values()):
        raise SystemExit("no run settled")
    for who, runs in figures.items():
        if not runs:
            continue
        median = {k: statistics.median(f[k] for f in runs) for k in ("health", "team_page", "cpu", "load")}
        print(
            f"{who}, median over {len(runs)} runs: server up {median['health']:.1f} s, team page settled "
            f"{median['team_page']:.1f} s, server CPU {median['cpu']:.1f} s (load average {median['load']:.2f})"
        )


if __name__ == "__main__":
    main()
