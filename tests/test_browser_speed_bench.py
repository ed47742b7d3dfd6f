"""benchmarks/browser_speed.py's concurrent viewers run their browsers at the lowest CPU priority, so the server's
time per script run is the server's, not the browsers' CPU (2 cores shared by the server and ten Chromiums)."""

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _browser_speed():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        spec = importlib.util.spec_from_file_location("browser_speed", ROOT / "benchmarks" / "browser_speed.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    return module


@pytest.mark.skipif(
    not Path("/proc/self/autogroup").exists() or shutil.which("setsid") is None,
    reason="needs the kernel's autogroups (Linux, CONFIG_SCHED_AUTOGROUP) and setsid",
)
def test_niced_chromium_lowers_its_own_sessions_autogroup(monkeypatch):
    """Playwright starts the browser in a session of its own (setsid): with autogroups on, that session's group
    gets as much CPU as the server's whatever its processes' nice values (and Chromium as root sets some of its
    threads back to nice -8), so the wrapper lowers the new session's autogroup itself. `cat` stands in for
    Chromium and shows the autogroup it was started in."""
    enabled = Path("/proc/sys/kernel/sched_autogroup_enabled")
    if enabled.exists() and enabled.read_text().strip() != "1":
        pytest.skip("autogroups are switched off on this kernel")
    # a container may not let a process set its group's nice: then the wrapper cannot either (it goes on regardless)
    allowed = subprocess.run(
        ["setsid", "-w", "sh", "-c", "echo 19 > /proc/self/autogroup"], capture_output=True, check=False
    )
    if allowed.returncode != 0:
        pytest.skip("this host does not let a session set its autogroup's nice")
    browser_speed = _browser_speed()
    monkeypatch.setattr(browser_speed, "CHROMIUM", "/bin/cat")
    wrapper = browser_speed._niced_chromium()
    try:
        shown = subprocess.run(
            ["setsid", "-w", str(wrapper), "/proc/self/autogroup"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    finally:
        shutil.rmtree(wrapper.parent, ignore_errors=True)
    assert shown.strip().endswith("nice 19"), shown
    # this process's own group (the server's, in the benchmark) is left as it was
    assert not Path("/proc/self/autogroup").read_text().strip().endswith("nice 19")


@pytest.mark.usefixtures("local_mode")  # tests/conftest.py
@pytest.mark.skipif(not Path("/proc/thread-self/schedstat").exists(), reason="needs Linux's per-thread schedstat")
def test_the_run_timing_log_tells_waiting_for_a_cpu_apart(tmp_path, monkeypatch):
    """A run's wall under ten viewers is its CPU, the wait for a free CPU (other processes, the browsers) and the
    wait for the interpreter lock or a lock: the opt-in timing log (VBHC_RUN_TIMING_LOG) gives the second, so the
    benchmark tells the machine's load from the server's own threads."""
    from streamlit.testing.v1 import AppTest

    from tests.apptest import run_on_page

    log = tmp_path / "runs.jsonl"
    monkeypatch.setenv("VBHC_DATABASE_URL", f"sqlite:///{tmp_path / 'empty.db'}")
    monkeypatch.setenv("VBHC_RUN_TIMING_LOG", str(log))
    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=180)
    at.query_params["lang"] = "en"
    run_on_page(at, "views/methods.py")
    assert not at.exception
    lines = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]
    assert lines and all(0 <= line["cpu_wait"] <= line["wall"] for line in lines), lines
