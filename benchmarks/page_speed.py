"""Page render times with AppTest (server-side work: queries, statistics, building elements and charts).

    python benchmarks/page_speed.py                    # the default demo (50,000 cycles), built on first run
    python benchmarks/page_speed.py --cycles 1000000   # the 1,000,000-cycle benchmark database
Each page is the start page of a fresh server process (VBHC_START_PAGE), and is timed: cold (nothing cached,
the start-up warm-up still running alongside), after the warm-up has finished (what a visitor sees once the
server has been up for a minute), again, and after a filter change (another unit; another period, which
loads the data again and refits the case-mix models).
Targets (issue 4, default demo): first render < 2 s, filter change < 0.5 s. Browser paint time is not included.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGES = ["overview", "condition_team", "proms", "compare", "cost_value", "data", "methods"]

SCRIPT = r"""
import sys, time, json
from streamlit.testing.v1 import AppTest
ROOT = {root!r}
page, mode = sys.argv[1], sys.argv[2]

def app(**state):
    at = AppTest.from_file(ROOT + "/streamlit_app.py", default_timeout=900)
    at.query_params["lang"] = "en"
    for k, v in state.items():
        at.session_state[k] = v
    return at

def render(at):
    t = time.perf_counter()
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return time.perf_counter() - t

state = dict(condition="colorectal_cancer")
if mode == "warm":
    from ui import data
    from vbhc.settings import database_url
    data.start_warm_up(database_url(), data.version()).join()
first = render(app(**state))
again = render(app(**state))
other_unit = render(app(**state, unit_hospital="H03"))
other_period = render(app(**state, period="2024"))
print(json.dumps(dict(first=first, again=again, other_unit=other_unit, other_period=other_period)))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cycles", type=int, default=50_000)
    args = parser.parse_args()
    db = ROOT / "data" / "bench" / f"demo_{args.cycles}" / "vbhc.db"
    env = {**os.environ, "VBHC_DATABASE_URL": f"sqlite:///{db}"}
    if not db.exists():
        db.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [sys.executable, "-m", "vbhc.cli", "demo", "--cycles", str(args.cycles), "--out", str(db.parent / "files")],
            check=True,
            env=env,
        )
    code = SCRIPT.format(root=str(ROOT))
    print(f"{args.cycles:,}-cycle demo; seconds per render (AppTest, server side)")
    print(f"{'page':16} {'cold first':>10} {'warm first':>10} {'repeat':>8} {'other unit':>10} {'other period':>12}")
    import json

    for page in PAGES:
        figures = {}
        for mode in ("cold", "warm"):
            out = subprocess.run(
                [sys.executable, "-c", code, page, mode],
                capture_output=True,
                text=True,
                env={**env, "VBHC_START_PAGE": page},
                cwd=ROOT,
                check=False,
            )
            if out.returncode:
                raise SystemExit(f"{page} {mode} failed:\n{out.stderr[-2000:]}")
            figures[mode] = json.loads(out.stdout.strip().splitlines()[-1])
        c, w = figures["cold"], figures["warm"]
        print(
            f"{page:16} {c['first']:10.2f} {w['first']:10.2f} {w['again']:8.2f} {w['other_unit']:10.2f} "
            f"{w['other_period']:12.2f}"
        )
    time.sleep(0)


if __name__ == "__main__":
    main()
