"""Server restart -> first usable condition-team page, in a real browser (Playwright, Debian's Chromium).

    python benchmarks/restart_speed.py                     # the default demo database (data/vbhc.db)
    python benchmarks/restart_speed.py --cycles 50000      # the benchmark database under data/bench/
    python benchmarks/restart_speed.py --runs 3 --empty-store

Each run starts `streamlit run streamlit_app.py` afresh and times, from the moment the process is started: the
server answering its health check, and the team page settled (its title drawn, the verdict table on screen and
Streamlit's script run finished), with the CPU time the server spent until then (all its threads, including the
background preparation of views). `--empty-store` removes the persisted indicator results first (what a server
without vbhc.results, or the first start after an import without precomputing, has to do). Target (issue 13,
item 2): < 5 s on the 50k demo. The load average is printed beside each figure: the host is shared.
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

IDLE = '[data-testid="stApp"][data-test-script-state="notRunning"]'
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


def one_run(url: str, browser, timeout_s: float) -> dict[str, float]:
    port = _free_port()
    env = {**os.environ, "VBHC_DATABASE_URL": url, "PYTHONPATH": str(ROOT)}
    started = time.perf_counter()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            str(ROOT / "streamlit_app.py"),
            "--server.port",
            str(port),
            "--server.address",
            "127.0.0.1",
            "--server.headless",
            "true",
            "--browser.gatherUsageStats",
            "false",
        ],
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
        page = browser.new_page(viewport={"width": 1440, "height": 900}, locale="en-US")
        page.goto(f"http://127.0.0.1:{port}/condition_team?lang=en")
        main = page.get_by_test_id("stMain")
        main.locator("h1").first.wait_for(timeout=timeout_s * 1000)
        main.get_by_test_id("stDataFrame").first.wait_for(timeout=timeout_s * 1000)
        page.locator(IDLE).wait_for(timeout=timeout_s * 1000)
        settled = time.perf_counter() - started
        cpu = _cpu_seconds(server.pid)
        page.close()
        return {"health": health, "team_page": settled, "cpu": cpu, "load": os.getloadavg()[0]}
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
    parser.add_argument("--timeout", type=float, default=600.0)
    args = parser.parse_args()
    db = args.database or (bench_database(args.cycles) if args.cycles else ROOT / "data" / "vbhc.db")
    if not db.exists():
        raise SystemExit(f"{db} not found: build it with `vbhc demo` first")
    url = f"sqlite:///{db}"
    figures = []
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=os.environ.get("VBHC_CHROMIUM", "/usr/bin/chromium"), args=CHROMIUM_ARGS
        )
        for _ in range(args.runs):
            if args.empty_store:
                shutil.rmtree(Path(f"{db}.results"), ignore_errors=True)
            run = one_run(url, browser, args.timeout)
            figures.append(run)
            print(
                f"server up {run['health']:5.1f} s, team page settled {run['team_page']:5.1f} s, server CPU by then "
                f"{run['cpu']:5.1f} s (load average {run['load']:.2f})",
                flush=True,
            )
        browser.close()
    print(f"median team page: {statistics.median(f['team_page'] for f in figures):.1f} s over {len(figures)} runs")


if __name__ == "__main__":
    main()
