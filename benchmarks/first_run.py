"""Fresh clone -> first usable page: `bash scripts/dashboard` as a new user runs it, in a real browser.

    python benchmarks/first_run.py                  # clone this checkout's HEAD into a temporary folder
    python benchmarks/first_run.py --keep           # keep the clone (its path is printed)
    python benchmarks/first_run.py --runs 2
    python benchmarks/first_run.py --runs 2 --installer uv,pip   # uv and pip in turn (scripts/_venv.sh)

Each run clones the committed HEAD of this checkout (what a user gets from the repository: no .venv, no data) into
a temporary folder and starts `bash scripts/dashboard --headless --port P` there, exactly as the README says. That
creates the project's virtual environment and installs the package from the package registry with uv, else pip
(`--installer`: VBHC_INSTALLER of scripts/_venv.sh; the installers' own caches on this host count as they would
on a user's: the first line says what they held), generates the
demo registry into the empty database, imports it, and starts the server. Timed from the start of the script:
the virtual environment ready, the demo imported, the server answering its health check, and the condition-team
page usable in Chromium (its title, the verdict table on screen, Streamlit's script run finished). The server's
background preparation of the views goes on after that. Target (issue 13, item 2): < 90 s on 2 cores. The load
average is printed beside each figure: the host is shared.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import ROOT
from restart_speed import CHROMIUM_ARGS, IDLE, VERDICT_TABLE, _free_port, _healthy

#: lines of `scripts/dashboard` and `vbhc serve` that mark the end of a phase (first match wins)
PHASES = {
    "installed": re.compile(r"^(The database is empty|Starting the dashboard)"),
    "demo imported": re.compile(r"^Starting the dashboard"),
}


#: the installers scripts/_venv.sh knows (VBHC_INSTALLER): uv falls back to pip when it cannot be had
INSTALLERS = ("uv", "pip")


def _cache(variable: str, name: str) -> str:
    folder = Path(os.environ.get(variable, Path.home() / ".cache" / name))
    if not folder.is_dir():
        return "empty"
    size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
    return f"{size / 2**20:,.0f} MB at {folder}"


def one_run(
    browser, keep: bool, timeout_s: float, installer: str = "uv", compile_all: bool = False
) -> dict[str, float]:
    """One fresh clone started with scripts/dashboard; {} when the page was not usable in time."""
    from playwright.sync_api import Error as PlaywrightError

    folder = Path(tempfile.mkdtemp(prefix="vbhc-first-run-"))
    clone = folder / "vbhc"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VBHC_", "VIRTUAL_ENV", "PYTHONPATH"))}
    env["VBHC_INSTALLER"] = installer
    if compile_all:
        env["VBHC_COMPILE_BYTECODE"] = "1"
    marks: dict[str, float] = {}
    started = time.perf_counter()
    server = subprocess.Popen(
        ["bash", "scripts/dashboard", "--headless", "--port", str(port), "--address", "127.0.0.1"],
        cwd=clone,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    lines: list[str] = []

    def read() -> None:  # the phases, from the script's own lines as they come
        for line in server.stdout:
            lines.append(line.rstrip())
            for phase, pattern in PHASES.items():
                if phase not in marks and pattern.search(line):
                    marks[phase] = time.perf_counter() - started

    threading.Thread(target=read, daemon=True).start()
    try:
        while not _healthy(port):
            if server.poll() is not None or time.perf_counter() - started > timeout_s:
                print("the server did not start; its last lines:\n" + "\n".join(lines[-15:]), flush=True)
                return {}
            time.sleep(0.2)
        marks["healthy"] = time.perf_counter() - started
        page = browser.new_page(viewport={"width": 1440, "height": 900}, locale="en-US")
        left_ms = lambda: max(1.0, timeout_s - (time.perf_counter() - started)) * 1000  # noqa: E731
        try:
            page.goto(f"http://127.0.0.1:{port}/condition_team?lang=en", timeout=left_ms())
            page.get_by_test_id("stMain").locator("h1").first.wait_for(timeout=left_ms())
            page.locator(VERDICT_TABLE).first.wait_for(timeout=left_ms())
            page.locator(IDLE).wait_for(timeout=left_ms())
        except PlaywrightError as error:
            shown = page.get_by_test_id("stMain").inner_text(timeout=2000)[:200] if not page.is_closed() else ""
            print(f"not usable within {timeout_s:.0f} s ({str(error).splitlines()[0]}); page: {shown!r}", flush=True)
            return {}
        marks["team page"] = time.perf_counter() - started
        page.close()
        return {**marks, "load": os.getloadavg()[0]}
    finally:
        os.killpg(server.pid, 15)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, 9)
        if keep:
            print(f"clone kept at {clone}")
        else:
            shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    from playwright.sync_api import sync_playwright

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="keep each clone (and its virtual environment)")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds until a run counts as failed")
    parser.add_argument(
        "--installer", default="uv", help="uv, pip, or both in turn (uv,pip): scripts/_venv.sh's VBHC_INSTALLER"
    )
    parser.add_argument(
        "--compile-bytecode", action="store_true", help="VBHC_COMPILE_BYTECODE=1: all bytecode compiled at install"
    )
    args = parser.parse_args()
    installers = [i.strip() for i in args.installer.split(",") if i.strip()]
    if not installers or any(i not in INSTALLERS for i in installers):
        parser.error(f"--installer: one or more of {', '.join(INSTALLERS)} (comma-separated), got {args.installer!r}")
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    print(
        f"first run of scripts/dashboard on a fresh clone of {head.stdout.strip()}; "
        f"pip cache: {_cache('PIP_CACHE_DIR', 'pip')}; uv cache: {_cache('UV_CACHE_DIR', 'uv')}"
    )
    figures: dict[str, list[dict[str, float]]] = {i: [] for i in installers}
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=os.environ.get("VBHC_CHROMIUM", "/usr/bin/chromium"), args=CHROMIUM_ARGS
        )
        for _ in range(args.runs):
            for installer in installers:  # in turn, so each installer sees the same load
                load_before = os.getloadavg()[0]
                run = one_run(browser, args.keep, args.timeout, installer, args.compile_bytecode)
                if not run:
                    continue
                figures[installer].append(run)
                phases = ", ".join(f"{k} {v:5.1f} s" for k, v in run.items() if k != "load")
                load = f"load average {load_before:.2f} before, {run['load']:.2f} after"
                print(f"{installer}: {phases} ({load})", flush=True)
        browser.close()
    if not any(figures.values()):
        raise SystemExit("no run reached a usable page")
    for installer, runs in figures.items():
        if not runs:
            print(f"{installer}: no run reached a usable page")
            continue
        phases = [k for k in runs[0] if k != "load" and all(k in r for r in runs)]
        medians = ", ".join(f"{k} {statistics.median(r[k] for r in runs):.1f} s" for k in phases)
        print(f"{installer}: median over {len(runs)} runs: {medians} (fresh clone -> usable team page: the last)")


if __name__ == "__main__":
    main()
