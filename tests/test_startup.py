"""A server's first page loads only what it draws: the modules of the report files, spreadsheet reading and the
import machinery are loaded when someone asks for them, not at a (re)start (issue 13: restart -> first page < 5 s;
benchmarks/restart_speed.py measures it)."""

from __future__ import annotations

import ast
import os
import subprocess
import sys

import pytest

from tests.fresh_process import run_json
from vbhc.i18n import SUPPORTED
from vbhc.settings import PROJECT_ROOT

#: What the first page does not need, with why it is loaded elsewhere: report files (built on a click),
#: spreadsheets (read on an upload), the import (the data page, the CLI), statistical model fitting and SciPy's
#: statistics (precomputed views are read from the results store; vbhc.lazy imports SciPy where it is called)
NOT_AT_START = (
    "openpyxl",
    "fpdf",
    "vl_convert",
    "lifelines",
    "statsmodels.api",
    "scipy.stats",
    "scipy.optimize",
    "vbhc.reports.excel",
    "vbhc.reports.pdf",
    "vbhc.ingest.run",
    "vbhc.ingest.read",
    "alembic",
)


def _imports(path) -> list[str]:
    """The modules a script imports at its top level (`from a import b` gives a.b too, when b is a module)."""
    names = []
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.append(node.module)
            names += [f"{node.module}.{alias.name}" for alias in node.names]
    return names


def _import_each(modules: list[str]) -> str:
    """Code that imports each of `modules` (from _imports) as the script does: `from a import b` where b is a
    function imports a; a module not installed here is skipped."""
    return (
        f"for name in {modules!r}:\n"
        "    if importlib.util.find_spec(name.rpartition('.')[0] or name) is None:\n"
        "        continue\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "    except ModuleNotFoundError:\n"
        "        importlib.import_module(name.rpartition('.')[0])  # `from module import function`\n"
    )


def test_the_team_page_and_the_entry_point_import_nothing_a_first_page_does_not_need(sqlite_engine):
    """Importing what streamlit_app.py and the condition team page import, and opening the engine of a database
    at the newest schema (as every server start does), loads none of NOT_AT_START."""
    modules = _imports(PROJECT_ROOT / "streamlit_app.py") + _imports(PROJECT_ROOT / "views" / "condition_team.py")
    code = (
        "import importlib, importlib.util, json, sys\n" + _import_each(modules) + "from ui import data\n"
        "data.current_engine()\n"
        f"print(json.dumps([m for m in {list(NOT_AT_START)!r} if m in sys.modules]))\n"
    )
    url = sqlite_engine.url.render_as_string(hide_password=False)
    assert run_json(code, env={"VBHC_DATABASE_URL": url}) == []


def test_vbhc_serve_runs_streamlits_command_line_through_ui_serve():
    """`vbhc serve` starts ui.serve, which hands its arguments to Streamlit's own command line (as `python -m
    streamlit` does) after starting the background loading of the pages' libraries."""
    from vbhc.cli import serve_command

    command = serve_command(8501, "127.0.0.1", headless=True)
    assert command[1:4] == ["-m", "ui.serve", "run"] and command[4].endswith("streamlit_app.py")
    assert command[-2:] == ["--server.headless", "true"]
    out = subprocess.run(
        [sys.executable, "-m", "ui.serve", "version"],
        cwd=PROJECT_ROOT,
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert out.stdout.startswith("Streamlit, version ")


def test_the_background_preparation_waits_while_a_page_is_drawn(monkeypatch):
    """ui.data's warm-up yields to script runs: busy from begin_run to end_run, or until the run's thread ends
    (a run stopped by st.stop or st.rerun never reaches end_run), then quiet again."""
    import threading

    from ui import data

    monkeypatch.setattr(data, "QUIET_SECONDS", 0.0)
    monkeypatch.setattr(data, "_runs", {})
    assert not data.pages_busy()
    started, finish = threading.Event(), threading.Event()

    def run(ends_normally: bool) -> None:
        data.begin_run()
        started.set()
        finish.wait(timeout=30)
        if ends_normally:
            data.end_run()

    for ends_normally in (True, False):
        started.clear()
        finish.clear()
        thread = threading.Thread(target=run, args=(ends_normally,))
        thread.start()
        assert started.wait(timeout=30)
        assert data.pages_busy()
        finish.set()
        thread.join(timeout=30)
        assert not data.pages_busy()


def test_every_unit_work_in_the_background_waits_for_a_page_and_a_page_never_waits_for_itself(monkeypatch):
    """The signals and SPC charts of every unit of a view not prepared ahead (a year) are computed in the
    background when a page first asks; between units they wait while a page is drawn, so a viewer's click does
    not share the interpreter lock with them. The same computation in a page's own run (a cache miss) does not
    wait: not for itself, not for other pages."""
    import threading

    from ui import data

    monkeypatch.setattr(data, "QUIET_SECONDS", 0.0)
    monkeypatch.setattr(data, "_runs", {})
    started, finish, own_pause_returned = threading.Event(), threading.Event(), threading.Event()

    def page() -> None:
        data.begin_run()
        started.set()
        data._pause_for_pages()  # in the page's own run: at once
        own_pause_returned.set()
        finish.wait(timeout=30)
        data.end_run()

    thread = threading.Thread(target=page)
    thread.start()
    assert started.wait(timeout=30)
    assert own_pause_returned.wait(timeout=5)
    background_done = threading.Event()
    background = threading.Thread(target=lambda: (data._pause_for_pages(), background_done.set()))
    background.start()
    assert not background_done.wait(timeout=1.0)  # waits while the page is drawn
    finish.set()
    thread.join(timeout=30)
    assert background_done.wait(timeout=5)  # and goes on once it is drawn
    background.join(timeout=5)


def test_a_script_run_waits_for_a_started_preload_and_not_otherwise(monkeypatch, tmp_path):
    """Two threads importing one package graph at once can each get a half-initialised module: a page's run
    waits until ui.serve's background imports are done (and does not wait when no preload was started)."""
    import gc
    import importlib
    import threading

    from ui import preload

    preload = importlib.reload(preload)  # fresh events
    monkeypatch.setattr(preload, "first_use", lambda: None)
    waits = []

    class Done(threading.Event):
        def wait(self, timeout=None):
            waits.append(timeout)
            return super().wait(timeout)

    monkeypatch.setattr(preload, "_done", Done())
    preload.wait()
    assert waits == []  # no preload: no wait (counted, not timed)
    (tmp_path / "vbhc_slow_library.py").write_text("import time\ntime.sleep(0.5)\n", encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(preload, "PRELOAD", ("vbhc_slow_library",))
    preload.started()
    threading.Thread(target=preload.run).start()
    preload.wait()
    assert "vbhc_slow_library" in sys.modules  # loaded whole before the run went on
    assert waits == [preload.WAIT_SECONDS]
    gc.unfreeze()  # the preload froze this test process's objects (ui.preload.loading)
    importlib.reload(preload)


def test_the_preload_leaves_scipys_statistics_to_the_background_preparation():
    """A restarted server's preload (ui.serve) loads what a first page imports, not SciPy's statistics or fits: the
    first page calls none of them, and on a 2-core host their second of CPU was taken from the browser loading the
    page. scipy.special it does call ("since the last meeting")."""
    from ui import preload

    assert not {"scipy", "scipy.stats", "scipy.optimize", "scipy.linalg", "statsmodels.api"} & set(preload.PRELOAD)
    assert {"pandas", "sqlalchemy", "sqlmodel", "scipy.special", "vbhc.models"} <= set(preload.PRELOAD)


def test_a_lazy_module_is_imported_at_its_first_use():
    """vbhc.lazy: naming a module costs nothing; its first attribute read imports it and hands out the same
    objects as a plain import."""
    code = (
        "import sys, json\n"
        "from vbhc.lazy import LazyModule\n"
        "stats = LazyModule('scipy.stats')\n"
        "before = 'scipy.stats' in sys.modules or stats.loaded\n"
        "import scipy.special\n"
        "norm = stats.norm\n"
        "from scipy import stats as real\n"
        "print(json.dumps([before, norm is real.norm, stats.loaded]))\n"
    )
    assert run_json(code) == [False, True, True]


def test_streamlits_magic_is_off_and_no_page_relies_on_it():
    """Magic rewrites a page's syntax tree on its first run in a process (165 ms for the team page): it is off in
    `vbhc serve` and the shipped config alike, which loses nothing only while no page or module of the app has a
    bare expression that magic would have shown (a name, a table, an f-string on a line of its own)."""
    import ast
    import tomllib

    from vbhc.cli import serve_command

    command = serve_command(8501, "127.0.0.1", headless=True)
    assert command[command.index("--runner.magicEnabled") + 1] == "false"
    shipped = tomllib.loads((PROJECT_ROOT / ".streamlit" / "config.toml").read_text(encoding="utf-8"))
    assert shipped["runner"]["magicEnabled"] is False
    scripts = [PROJECT_ROOT / "streamlit_app.py", *sorted((PROJECT_ROOT / "views").glob("*.py"))]
    assert len(scripts) > 5
    shown = []
    for path in scripts:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Expr) or isinstance(node.value, ast.Call | ast.Await | ast.Yield):
                continue
            if isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
                continue  # a docstring: magic does not show those either (magic.displayRootDocString is off)
            shown.append(f"{path.name}:{node.lineno}")
    assert not shown


def test_the_statistics_use_one_blas_thread_unless_the_operator_says_otherwise():
    """Importing vbhc sets OPENBLAS_NUM_THREADS=1 before numpy loads (the command line and the server `vbhc serve`
    starts inherit it): OpenBLAS's extra threads only spun on the fits' small matrices, at twice the CPU. A value
    the operator set is kept."""
    import os
    import subprocess
    import sys

    code = "import vbhc, numpy, os; print(os.environ['OPENBLAS_NUM_THREADS'])"
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    default = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert default.stdout.strip() == "1"
    two = {**env, "OPENBLAS_NUM_THREADS": "2"}
    chosen = subprocess.run([sys.executable, "-c", code], env=two, capture_output=True, text=True, check=True)
    assert chosen.stdout.strip() == "2"


def test_after_the_preload_a_first_page_imports_nothing_and_reads_no_catalog_again(sqlite_engine):
    """ui.serve's preload (ui.preload.run) loads, while the browser loads Streamlit's page, every module the entry
    point (streamlit_app.py) and the overview and team pages import, the database's SQL dialect, and reads the
    indicator and message catalogs and the newest schema revision: the first script run of a restarted server then
    imports nothing before drawing its page, also when it opens the database (at the newest schema). The preload
    itself loads none of NOT_AT_START."""
    pages = ("streamlit_app.py", "views/overview.py", "views/condition_team.py")
    modules = [name for page in pages for name in _imports(PROJECT_ROOT / page)]
    code = (
        "import importlib, importlib.util, json, sys\n"
        "import streamlit\n"
        "from ui import preload\n"
        "preload.run()\n"
        "before = set(sys.modules)\n"
        f"not_needed = [m for m in {list(NOT_AT_START)!r} if m in sys.modules]\n"
        + _import_each(modules)
        + "from ui import data\n"
        "data.current_engine()\n"
        "from vbhc import catalog, i18n, store\n"
        "cached = (catalog.default_catalog, i18n._catalog, i18n._plurals, store.head_revision)\n"
        "read = [f.cache_info().currsize for f in cached]\n"
        "print(json.dumps({'imported_by_the_page': sorted(set(sys.modules) - before), 'read': read,\n"
        "    'preloaded_but_not_needed': not_needed}))\n"
    )
    url = sqlite_engine.url.render_as_string(hide_password=False)
    found = run_json(code, env={"VBHC_DATABASE_URL": url})
    assert found == {
        "imported_by_the_page": [],
        "read": [1, len(SUPPORTED), len(SUPPORTED), 1],
        "preloaded_but_not_needed": [],
    }


def test_the_preload_loads_without_collections_and_lets_the_server_thread_in_often_then_restores_both(
    monkeypatch, tmp_path
):
    """While the preload imports (ui.preload.loading): no garbage collection (it went through the millions of new,
    long-lived objects again and again: the preload's CPU 3.15 -> 2.37 s, and a full collection in the first page's
    run), and a 1 ms thread switch interval (Streamlit's event loop, answering the browser's requests for the page's
    files meanwhile, waited up to 5 ms for the interpreter lock at each step). After it, also when a module or the
    first use fails: the collector on, what was loaded frozen out of it, and the switch interval as it was."""
    import builtins
    import gc

    from ui import preload

    seen = []
    record = "import builtins, gc, sys\nbuiltins.VBHC_SEEN.append((gc.isenabled(), sys.getswitchinterval()))\n"
    (tmp_path / "vbhc_recording_library.py").write_text(record, encoding="utf-8")
    (tmp_path / "vbhc_broken_library.py").write_text("raise ImportError('broken')\n", encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(builtins, "VBHC_SEEN", seen, raising=False)
    monkeypatch.setattr(preload, "PRELOAD", ("vbhc_broken_library", "vbhc_recording_library"))
    monkeypatch.setattr(preload, "_done", type(preload._done)())

    def first_use():
        seen.append((gc.isenabled(), sys.getswitchinterval()))
        raise RuntimeError("a first use that fails")

    monkeypatch.setattr(preload, "first_use", first_use)
    interval = sys.getswitchinterval()
    assert gc.isenabled() and interval > preload.SWITCH_SECONDS  # Python's defaults (5 ms)
    try:
        with pytest.raises(RuntimeError):
            preload.run()
        assert seen == [(False, preload.SWITCH_SECONDS)] * 2  # the import and the first use
        assert gc.isenabled() and sys.getswitchinterval() == interval
        assert gc.get_freeze_count() > 0
        assert preload._done.is_set()
    finally:
        gc.unfreeze()
        gc.enable()
        sys.setswitchinterval(interval)
        sys.modules.pop("vbhc_recording_library", None)


def test_the_server_collects_no_garbage_until_its_preload_is_done(monkeypatch):
    """`vbhc serve` (ui.serve) turns the collector off before Streamlit loads its modules, and the preload's end
    turns it on again (ui.preload.loading), also when the preload fails before it gets there."""
    import gc
    import threading

    import streamlit.web.cli

    from ui import preload, serve

    seen = []
    real_preload = serve.preload
    monkeypatch.setattr(preload, "_started", threading.Event())  # no later page in this process waits
    monkeypatch.setattr(serve, "preload", lambda: None)
    monkeypatch.setattr(streamlit.web.cli, "main", lambda prog_name: seen.append(gc.isenabled()))
    try:
        serve.main()
        assert seen == [False]  # Streamlit starts with the collector off
    finally:
        gc.enable()

    def failing_run():
        raise RuntimeError("the preload failed")

    monkeypatch.setattr(preload, "run", failing_run)
    monkeypatch.setattr("streamlit.runtime.exists", lambda: True)
    gc.disable()
    try:
        with pytest.raises(RuntimeError):
            real_preload()
        assert gc.isenabled()
    finally:
        gc.enable()


def test_the_preload_maps_the_loaded_modules_as_streamlits_first_element_does(monkeypatch):
    """Streamlit's first element in a process checks whether it runs in a REPL with `inspect.stack()`, whose first
    call in a process maps every loaded module to its file (~0.12 s of CPU): ui.preload.first_use makes that call
    while the browser loads the page, so the first page's check only maps the modules loaded since."""
    import inspect

    from ui import preload

    calls = []
    monkeypatch.setattr(inspect, "stack", lambda context=1: calls.append(context) or [])
    preload.first_use()
    assert calls == [1]  # with source context, as Streamlit asks: that is what reads the modules' files
