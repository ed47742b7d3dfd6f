"""Shared fixtures: a database engine on SQLite and on a real PostgreSQL server, and small registries."""

from __future__ import annotations

import contextlib
import fcntl
import functools
import itertools
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text

from tests.pg_server import COPY_STRATEGY, scratch_parent, start_postgres
from tests.registry_copy import copy_registry
from tests.registry_source import template_of
from vbhc.results import default_views, precompute, year_views
from vbhc.store import get_engine, upgrade_schema

# A server's background warm-up prepares only every condition's whole period (as the browser tests' servers do),
# not every year as well: the tests share 2 cores, and a test that wants a year computes it when it asks.
os.environ.setdefault("VBHC_WARM_UP_YEARS_UP_TO", "0")

_counter = itertools.count()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[object]:
    """A private PostgreSQL server for the whole session, its files in memory when /dev/shm has room for them
    (tests/pg_server.py scratch_parent: a test's database made and dropped without waiting on the disk's journal)."""
    if os.environ.get("VBHC_TEST_SKIP_POSTGRES") == "1":
        pytest.skip("VBHC_TEST_SKIP_POSTGRES=1: PostgreSQL tests explicitly switched off")
    server = start_postgres(parent=scratch_parent())
    yield server
    server.stop()


def _postgres_engine(server, template: str | None = None) -> Iterator[Engine]:
    """A new database on `server` (a copy of the database `template`, if named), dropped afterwards."""
    name = f"vbhc_test_{os.getpid()}_{next(_counter)}"
    with server.admin().connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name}" + (f" TEMPLATE {template} {COPY_STRATEGY}" if template else "")))
    engine = get_engine(server.url(name))
    try:
        yield engine
    finally:
        engine.dispose()
        get_engine.cache_clear()
        server.drop_later(name)  # in the background: the next test does not wait for DROP DATABASE's checkpoint


def _sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    engine = get_engine(f"sqlite:///{tmp_path / 'vbhc.db'}")
    try:
        yield engine
    finally:
        engine.dispose()
        get_engine.cache_clear()


@pytest.fixture(scope="session")
def _sqlite_schema(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty SQLite registry migrated to the current schema once per worker: a test's `engine` or
    `sqlite_engine` is a copy of it (running the migrations cost every one of ~300 tests a tenth of a second)."""
    path = tmp_path_factory.mktemp("schema") / "vbhc.db"
    engine = get_engine(f"sqlite:///{path}")  # with the registry's SQLite settings (WAL is kept in the file)
    upgrade_schema(engine)
    engine.dispose()  # closes the last connection: the write-ahead log is folded into the file
    return path


@pytest.fixture(scope="session")
def _postgres_schema(postgres_server) -> str:
    """The name of an empty PostgreSQL database migrated to the current schema once per worker, the template of
    every test's PostgreSQL `engine` (CREATE DATABASE ... TEMPLATE copies it)."""
    name = f"vbhc_schema_{os.getpid()}"
    admin = create_engine(postgres_server.admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name}"))
    admin.dispose()
    engine = get_engine(postgres_server.url(name))
    upgrade_schema(engine)
    engine.dispose()  # no connection may stay open on a template
    return name


def _copy_of(schema: Path, tmp_path: Path) -> Path:
    shutil.copyfile(schema, tmp_path / "vbhc.db")
    return tmp_path


@pytest.fixture
def postgres_template(request, _postgres_schema) -> str:
    """The database a test's PostgreSQL `engine` is made a copy of: the empty migrated schema, or for a test that
    starts from a registry its module imported once (the module's POSTGRES_SOURCES: per-test fixture -> the
    source's fixture) that registry's database, so such a test's database is made once (not made empty, dropped
    and made again from the registry: two of the four statements of every such PostgreSQL test's set-up and
    teardown)."""
    return template_of(request, _postgres_schema, **getattr(request.module, "POSTGRES_SOURCES", {}))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request, tmp_path) -> Iterator[Engine]:
    """An empty registry database with the current schema, on SQLite and on PostgreSQL (there a copy of
    `postgres_template`, which a module may make a registry it imported)."""
    if request.param == "sqlite":
        gen = _sqlite_engine(_copy_of(request.getfixturevalue("_sqlite_schema"), tmp_path))
    else:
        gen = _postgres_engine(
            request.getfixturevalue("postgres_server"), template=request.getfixturevalue("postgres_template")
        )
    eng = next(gen)
    try:
        upgrade_schema(eng)
        yield eng
    finally:
        next(gen, None)


@pytest.fixture
def sqlite_engine(_sqlite_schema, tmp_path) -> Iterator[Engine]:
    gen = _sqlite_engine(_copy_of(_sqlite_schema, tmp_path))
    eng = next(gen)
    try:
        upgrade_schema(eng)
        yield eng
    finally:
        next(gen, None)


def _shared_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder all xdist workers of this run share (the parent of the workers' own base folders), or this
    session's base folder without xdist."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _demo_registry(tmp_path_factory: pytest.TempPathFactory, cycles: int | None) -> Iterator[tuple[Engine, dict]]:
    """A demo registry generated and imported once per test run, and this worker's own copy of its database.

    Under pytest-xdist the first worker that needs it builds it in the run's shared folder (the others wait on a
    file lock); every worker then works on its own copy, so one worker's audit events never reach another's.
    """
    import json

    from vbhc.demo import generate_demo
    from vbhc.ingest import import_files

    name = f"demo-registry-{cycles or 'default'}"
    shared = _shared_dir(tmp_path_factory) / name
    built = shared / "demo.db"
    with _file_lock(shared.parent / f"{name}.lock"):
        if not (shared / "done").exists():
            shutil.rmtree(shared, ignore_errors=True)  # what a worker that failed half-way left behind
            shared.mkdir()
            kwargs = {"cycles": cycles} if cycles else {}
            result = generate_demo(shared / "files", **kwargs)
            builder = get_engine(f"sqlite:///{built}")
            import_files(result.import_order(), builder, imported_by="test")  # with the vital status, as `vbhc demo`
            # as `vbhc import` does: the default views computed once and stored beside the database, so a page or
            # a server's warm-up in any test reads them instead of computing them again in every worker
            views = default_views(builder, years=False)
            if cycles is None:  # the default registry's tests read the hospital tables (now and at the last
                # meeting) from here: the planted truth's (test_indicators, test_action_effect), the PDF report's and
                # the team page's; the department tables they need they compute
                views = [v for v in views if v.level == "hospital"]
            else:  # the small registry's pages: every year of every condition at hospital level too, which a
                # viewer who does not see every cell (a manager, a care team of one hospital) has withheld against
                # the other periods of the grid (ui.data.grid_tables): the first such page of every module's copy
                # computed them (a manager's overview: 13 of its 21 s of CPU, ~13 s here once per run)
                views += [v for v in year_views(builder) if v.level == "hospital"]
            precompute(builder, views, prune=False)
            builder.dispose()
            get_engine.cache_clear()
            shutil.copy2(result.truth_path, shared / "truth.json")
            shutil.rmtree(shared / "files", ignore_errors=True)
            (shared / "done").touch()
    folder = tmp_path_factory.mktemp("demo")
    engine = copy_registry(get_engine(f"sqlite:///{built}"), folder / "demo.db")
    truth = json.loads((shared / "truth.json").read_text(encoding="utf-8"))
    yield engine, truth
    engine.dispose()


@pytest.fixture(autouse=True)
def _no_report_charts_at_import(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """`vbhc import` and `vbhc precompute` render no PDF report charts ahead of a report (VBHC_REPORT_CHARTS=0): a
    child process drawing ~56 charts (~20 s of CPU) after every command-line import of the suite. Tested where it
    is the subject (`@pytest.mark.report_charts`: tests/test_reports_cli.py) and by the warm-up's test."""
    if not (request.node.get_closest_marker("report_charts") or request.node.get_closest_marker("warm_up")):
        monkeypatch.setenv("VBHC_REPORT_CHARTS", "0")


@pytest.fixture(autouse=True)
def _no_background_warm_up(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """A page run in-process (AppTest, in any test module) starts no background warm-up of the server's default
    views: a page computes (or reads from the results store) the views it shows itself, as on a server whose
    warm-up has not reached them.

    Why: the warm-up thread of every test's database went on fitting every condition's models in the worker long
    after its test had finished (about 40% of a worker's CPU in the measured suite), slowing the tests that came
    after. The warm-up itself is tested where it is the subject (`@pytest.mark.warm_up`: tests/test_results.py) and
    runs in every browser test's server (tests/e2e)."""
    if request.node.get_closest_marker("warm_up"):
        return
    import threading

    from ui import data

    def no_warm_up(url: str, data_version: str) -> threading.Thread:
        thread = threading.Thread(target=lambda: None, name="vbhc-warm-up-off")
        thread.start()
        thread.join()
        return thread

    monkeypatch.setattr(data, "start_warm_up", no_warm_up)
    monkeypatch.setattr(data, "background_work", False)  # a page computes its own unit's signals, writes at once


@pytest.fixture
def local_mode(monkeypatch) -> Iterator[None]:
    """The single-user mode (every role, no sign-in): it runs only when the server listens on localhost, and
    AppTest has no server, so the address is set here (and VBHC_AUTH cleared) for the test."""
    from streamlit import config

    monkeypatch.delenv("VBHC_AUTH", raising=False)
    previous = config.get_option("server.address")
    config.set_option("server.address", "localhost")
    yield
    config.set_option("server.address", previous)


@pytest.fixture(scope="session")
def demo_registry(tmp_path_factory):
    """The default demo registry (50,000 cycles, default seed): for the tests whose statistics must find the
    planted truth (an outlier, an effect size), and the figures a reviewer compares with the dashboard.

    Returns (engine, truth): the planted truth is what the statistics must find.
    """
    yield from _demo_registry(tmp_path_factory, None)


#: cycles of the small demo registry (the browser tests use the same size)
SMALL_DEMO_CYCLES = 4_000


@pytest.fixture(scope="session")
def small_demo_registry(tmp_path_factory):
    """A small demo registry (4,000 cycles, default seed) for tests where the size does not matter: every page,
    role and language renders, every label is translated. About a tenth of the default's time to build and to
    compute on. Its results store holds the default views and every year at hospital level. Returns (engine,
    truth) like demo_registry."""
    yield from _demo_registry(tmp_path_factory, SMALL_DEMO_CYCLES)


@pytest.fixture
def small_demo_db(small_demo_registry, monkeypatch) -> Iterator[tuple[Engine, dict]]:
    """The pages (AppTest) on the small demo registry: VBHC_DATABASE_URL names this worker's copy, and the engine
    cache is emptied before and after, so a page never reads another test's database. Returns (engine, truth)."""
    engine, truth = small_demo_registry
    monkeypatch.setenv("VBHC_DATABASE_URL", engine.url.render_as_string(hide_password=False))
    get_engine.cache_clear()
    yield engine, truth
    get_engine.cache_clear()


@pytest.fixture
def signed_in_db(small_demo_registry, monkeypatch, tmp_path) -> Iterator[Engine]:
    """The pages signed in (OpenID Connect) on the small demo registry, users and roles from tests/roles.py's
    access file: roles, scopes and navigation do not depend on the registry's size. Returns the engine."""
    from tests.roles import sign_in_with_roles

    engine, _ = small_demo_registry
    sign_in_with_roles(monkeypatch, tmp_path, engine)
    get_engine.cache_clear()
    yield engine
    get_engine.cache_clear()


# ------------------------------------------------------------------------------------------ pytest-xdist
_MODULE_SCOPED = re.compile(r"scope=[\"'](module|class|package)[\"']|pytest\.mark\.same_worker\b")


@functools.cache
def _shares_fixtures(path: str) -> bool:
    """Whether a test module declares a module-, class- or package-scoped fixture, or is marked `same_worker` (its
    tests share what they compute in the process: tests/test_chart_layout.py's drawings), read from its source."""
    try:
        return bool(_MODULE_SCOPED.search(Path(path).read_text(encoding="utf-8")))
    except OSError:
        return False


def xdist_group(nodeid: str, rootpath: Path) -> str:
    """The scheduling group of a test under `--dist loadgroup` (scripts/test runs the suite on every core with it).

    - every browser test (tests/e2e) in one group: one worker starts the Streamlit servers and the browser once
      (two groups on two workers, two browsers and four servers at once on 2 cores, made a walk flaky in CI);
    - the tests of a module that declares a module- or class-scoped fixture (a generated registry, a computed
      indicator table) or is marked `same_worker` in one group, so that fixture is built once, not once per worker;
    - every other test on its own, on whichever worker is free.
    Session fixtures (the PostgreSQL server, a demo registry's copy) are per worker; their ports, folders and database
    names are the worker's own (pg_server picks a free port and a fresh folder, database names carry the process id,
    the demo registries are built once per run under a file lock).
    """
    path = nodeid.split("::", 1)[0]
    if path.startswith("tests/e2e/"):
        return "e2e"
    if _shares_fixtures(str(rootpath / path)):
        return path
    return nodeid


class _GroupScheduling:
    """pytest-xdist's hook, registered only when xdist is installed (an unknown hook is an error otherwise).

    xdist's own loadgroup reads `xdist_group` marks and appends them to the test ids, which pytest 9 no longer
    allows (Node._nodeid is gone): the groups are made here, on the controller, from the test ids instead."""

    @pytest.hookimpl
    def pytest_xdist_make_scheduler(self, config: pytest.Config, log):
        if config.getoption("dist") != "loadgroup":
            return None
        from xdist.scheduler import LoadScopeScheduling

        rootpath = config.rootpath

        class GroupScheduling(LoadScopeScheduling):
            def _split_scope(self, nodeid: str) -> str:
                return xdist_group(nodeid, rootpath)

        # the order of the collection (pytest_collection_modifyitems), not the largest group first: the browser
        # tests start at once, on one worker, then the module groups and slow tests, then the single tests
        config.option.loadscopereorder = False
        return GroupScheduling(config, log)


def _start_order(item: pytest.Item) -> int:
    """When a test's group is handed out under xdist: the browser tests first (the longest group by far), then the
    groups that share a module's fixtures and the tests marked slow, then every other test in collection order.

    Why: a worker takes the next group in this order as it runs dry. In collection (alphabetical) order the heavy
    module groups of tests/test_reports_*.py, test_results.py and test_survival.py came last, so one worker ran
    one of them alone while the other had nothing left; started early, they run beside the browser tests, and the
    ~2,000 short single tests at the end even out when the two workers finish."""
    group = xdist_group(item.nodeid, item.config.rootpath)
    if group == "e2e":
        return 0
    if group != item.nodeid or item.get_closest_marker("slow"):
        return 1
    return 2


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("PYTEST_XDIST_WORKER"):  # every worker sorts its collection alike (xdist compares them)
        items.sort(key=_start_order)  # stable: a module's tests stay together and in their order


def pytest_configure(config: pytest.Config) -> None:
    if config.pluginmanager.hasplugin("xdist"):
        config.pluginmanager.register(_GroupScheduling(), "vbhc-xdist-groups")
