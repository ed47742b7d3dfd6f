"""Page render times with AppTest (server-side work: queries, statistics, building elements and charts).

    python benchmarks/page_speed.py                    # the default demo (50,000 cycles), built on first run
    python benchmarks/page_speed.py --sessions 3       # median of 3 sessions per page (this host is noisy)
    python benchmarks/page_speed.py --cycles 1000000   # the 1,000,000-cycle benchmark database
Each page is the start page of a fresh server process (VBHC_START_PAGE), and is timed: cold (nothing cached,
the start-up warm-up still running alongside), and in one session as a user works once the warm-up has
finished (what a visitor sees once the server has been up for a minute): the first render, a reload, then
another unit, indicator (condition-team page), period, condition and unit level, one change at a time.
Targets (issue 4, default demo): first render < 2 s, filter change < 0.5 s. Browser paint time is not included.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import ROOT, bench_database

PAGES = ["overview", "condition_team", "proms", "compare", "cost_value", "data", "methods"]

SCRIPT = r"""
import sys, time, json
from streamlit import config
from streamlit.testing.v1 import AppTest
ROOT = {root!r}
config.set_option("server.address", "localhost")  # the local single-user mode (no sign-in) runs on localhost only
page, mode = sys.argv[1], sys.argv[2]

def render(at):
    t = time.perf_counter()
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return dict(wall=time.perf_counter() - t, server=at.session_state["_run_seconds"])

if mode == "warm":
    from ui import data
    from vbhc.settings import database_url
    data.start_warm_up(database_url(), data.version()).join()
# one session, as in a browser: open the page, reload it, then change one filter at a time
at = AppTest.from_file(ROOT + "/streamlit_app.py", default_timeout=900)
at.query_params["lang"] = "en"
at.session_state["condition"] = "colorectal_cancer"
figures = dict(first=render(at), again=render(at))
if mode == "warm":
    at.selectbox(key="unit_hospital").set_value("H03")
    figures["other_unit"] = render(at)
    if page == "condition_team":
        at.selectbox(key="indicator").set_value("severe_complication")
        figures["other_indicator"] = render(at)
    at.selectbox(key="period").set_value("2024")
    figures["other_period"] = render(at)
    at.selectbox(key="condition").set_value("hip_osteoarthritis")
    figures["other_condition"] = render(at)
    at.selectbox(key="level").set_value("department")
    figures["other_level"] = render(at)
print(json.dumps(figures))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cycles", type=int, default=50_000)
    parser.add_argument("--pages", nargs="+", choices=PAGES, default=PAGES)
    parser.add_argument(
        "--sessions",
        type=int,
        default=1,
        help="warm sessions per page (fresh processes); prints the median of each step and, with 2 or more, "
        "the slowest session's figure in brackets instead of the wall time",
    )
    args = parser.parse_args()
    db = bench_database(args.cycles)
    env = {**os.environ, "VBHC_DATABASE_URL": f"sqlite:///{db}"}
    code = SCRIPT.format(root=str(ROOT))
    if args.sessions > 1:
        print(
            f"{args.cycles:,}-cycle demo; seconds per render: server-side script time, median of {args.sessions} "
            "sessions (the slowest in brackets; cold: one session, AppTest wall time in brackets)"
        )
    else:
        print(
            f"{args.cycles:,}-cycle demo; seconds per render: server-side script time (AppTest wall time in brackets)"
        )
    steps = ["first", "again", "other_unit", "other_indicator", "other_period", "other_condition", "other_level"]
    print(f"{'page':15} {'cold first':>15}" + "".join(f" {s:>15}" for s in steps))

    def cell(figures: dict, step: str) -> str:
        if step not in figures:
            return f" {'':>15}"
        f = figures[step]
        return f" {f['server']:6.2f} ({f['wall']:5.2f})"

    def run(page: str, mode: str) -> dict:
        out = subprocess.run(
            [sys.executable, "-c", code, page, mode],
            capture_output=True,
            text=True,
            env={**env, "VBHC_START_PAGE": page},
            cwd=ROOT,
            check=False,
        )
        if out.returncode:
            err = out.stderr
            start = max(err.find("Fatal Python error"), err.find("Traceback"), 0)
            raise SystemExit(f"{page} {mode} failed:\n{err[start : start + 3000]}")
        return json.loads(out.stdout.strip().splitlines()[-1])

    for page in args.pages:
        cold = run(page, "cold")
        sessions = [run(page, "warm") for _ in range(max(args.sessions, 1))]
        warm = {}
        for step in sessions[0]:
            servers = [s[step]["server"] for s in sessions]
            # one session: its wall time in brackets; several: the median and, in brackets, the slowest
            other = sessions[0][step]["wall"] if len(sessions) == 1 else max(servers)
            warm[step] = {"server": statistics.median(servers), "wall": other}
        print(f"{page:15}" + cell(cold, "first") + "".join(cell(warm, s) for s in steps), flush=True)


if __name__ == "__main__":
    main()
