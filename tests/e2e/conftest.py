"""Browser tests: a real Streamlit server on a small demo registry, driven by Playwright in Debian's Chromium.

Never run `playwright install` for these tests: they use the system Chromium (/usr/bin/chromium, from apt).
Without it the tests fail, unless VBHC_TEST_SKIP_BROWSER=1 switches them off explicitly.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = PROJECT_ROOT / "tests" / "artifacts"
CHROMIUM = Path(os.environ.get("VBHC_TEST_CHROMIUM", "/usr/bin/chromium"))
#: the port of the proxy that refuses every request leaving the machine (CHROMIUM_ARGS)
OFF_THE_MACHINE_PROXY_PORT = 9
CHROMIUM_ARGS = [
    "--no-sandbox",  # CI runs as root
    "--disable-gpu",
    "--disable-quic",
    "--disable-dev-shm-usage",
    "--disable-background-networking",  # these three keep Chromium from calling Google on a closed network
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    # every request that would leave the machine goes to a proxy that is not there (the discard port: only root may
    # listen on it, and nothing does) and fails; Chromium never sends localhost's and 127.0.0.1's to a proxy, so
    # the app and the sign-in provider are reached directly. Before, a Playwright route aborted the requests to
    # other hosts, but a route sends every request of the page through the test process and switches off the
    # browser's cache: each page load fetched and compiled Streamlit's scripts anew, ~2.5 s of CPU a load
    # instead of ~1.3 s (test_browser.test_requests_off_the_machine_are_refused checks the block)
    f"--proxy-server=http://127.0.0.1:{OFF_THE_MACHINE_PROXY_PORT}",
]
DESKTOP = {"width": 1440, "height": 900}  # the meeting room's screen
PHONE = {"width": 390, "height": 844}
DEMO_CYCLES = 4_000
DEMO_SEED = 20240601
SERVER_START_TIMEOUT = 60.0


def pytest_configure(config: pytest.Config) -> None:
    # pytest-playwright 0.10 defines its session fixture `base_url` as a method, which pytest 9 deprecates;
    # the warning is about the plugin, not about these tests.
    config.addinivalue_line(
        "filterwarnings", "ignore:Session-scoped fixtures defined as instance methods:pytest.PytestRemovedIn10Warning"
    )


@pytest.fixture(scope="session")
def chromium_path() -> str:
    """The system Chromium; a missing browser is a failure, not a skip (unless switched off explicitly)."""
    if os.environ.get("VBHC_TEST_SKIP_BROWSER") == "1":
        pytest.skip("VBHC_TEST_SKIP_BROWSER=1: browser tests explicitly switched off")
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} not found: the browser tests need Debian's Chromium "
            "(apt-get install -y chromium; do not run `playwright install`). "
            "Set VBHC_TEST_SKIP_BROWSER=1 to skip the browser tests instead.",
            pytrace=False,
        )
    return str(CHROMIUM)


@pytest.fixture(autouse=True)
def _require_browser(chromium_path: str) -> None:
    """Check for the browser before anything else (the demo registry and server are not started in vain)."""


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict, chromium_path: str) -> dict:
    """pytest-playwright's launch arguments, pointed at the system Chromium."""
    return {**browser_type_launch_args, "executable_path": chromium_path, "args": CHROMIUM_ARGS}


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args: dict) -> dict:
    """An English browser with the meeting screen's viewport (1440x900), so texts and screenshots do not depend on
    the host, that asks for reduced motion (as a reader may in the system's settings): the transitions that honour
    it (a list's or popover's entrance, the selected tab's marker) are then not drawn frame by frame while a click
    waits for its element to stand still (the GPU process's CPU over 20 page switches: 0.7 s instead of 1.0-1.3 s).
    Nothing checked depends on motion: each check reads the settled page."""
    return {**browser_context_args, "locale": "en-US", "viewport": DESKTOP, "reduced_motion": "reduce"}


@pytest.fixture(autouse=True)
def _watch_runs(page) -> None:
    """Every page gets a watcher of its script runs (tests.e2e.test_browser.Runs), attached before it opens."""
    from tests.e2e.test_browser import Runs

    watcher = Runs()
    watcher.attach(page)
    page._vbhc_runs = watcher


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def demo_files(database_url: str) -> list[Path]:
    """The generator's five main files behind the browser tests' demo registry (`_servers`): units.xlsx, then the
    care cycles, outcomes, PROMs and costs as CSV (a test that imports them again in parts reads them; the registry
    also holds the vital status and the PREM answers written beside them)."""
    from vbhc.demo import TABLES

    folder = Path(database_url.removeprefix("sqlite:///")).parent / "files"
    return [folder / "units.xlsx", *(folder / f"{table}.csv" for table in TABLES[1:])]


def _build_demo_database(folder: Path, database_url: str) -> None:
    """Build the demo registry in `folder` exactly as a user's `vbhc demo` does (its files: demo_files): the files
    written and imported (with the vital status and the PREM answers), the views stored, the signals detected and
    the demo's improvement history written (targets, explained signals, actions), so the walks meet the targets and
    actions of the meeting and board pages, the action's before/after chart and the survival and PREM tables that a
    user's demo has (before, the walks' registry had none of these)."""
    from vbhc import cli
    from vbhc.store import get_engine

    command = ["demo", "--cycles", f"{DEMO_CYCLES}", "--seed", f"{DEMO_SEED}", "--out", f"{folder}/files"]
    get_engine.cache_clear()
    with pytest.MonkeyPatch.context() as env:
        env.setenv("VBHC_DATABASE_URL", database_url)
        try:
            code = cli.main(command)
        finally:
            get_engine().dispose()
            get_engine.cache_clear()
    assert code == 0, f"vbhc demo exited with {code}"
    assert all(path.is_file() for path in demo_files(database_url))


#: `streamlit` as its command line starts it, with every thread's stack written to the log on SIGUSR1: a test whose
#: script run does not finish shows where the server is (tests.e2e.test_browser.Runs.settle asks for it).
DUMPABLE_STREAMLIT = (
    "import faulthandler, signal, sys; faulthandler.register(signal.SIGUSR1, all_threads=True); "
    "from streamlit.web.cli import main; sys.argv[0] = 'streamlit'; main()"
)
#: The servers started and not yet stopped in this process.
RUNNING: list[StreamlitServer] = []


def dump_servers(lines: int = 120) -> str:
    """Every running server's thread stacks and the end of its log, for a test that found one stuck."""
    out = []
    for server in RUNNING:
        with contextlib.suppress(OSError):
            size = server.log_path.stat().st_size
            server.proc.send_signal(signal.SIGUSR1)
            time.sleep(1.0)
            text = server.log_path.read_text(encoding="utf-8", errors="replace")
            before, dump = text[:size], text[size:]
            tail = "\n".join(before.splitlines()[-lines:])
            out.append(f"--- {server.url} log (last {lines} lines) ---\n{tail}\n--- thread stacks ---\n{dump}")
    return "\n".join(out)


class StreamlitServer:
    """`streamlit run streamlit_app.py` on a free port of 127.0.0.1, output in a log file."""

    def __init__(
        self,
        database_url: str,
        log_path: Path,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        extra_args: tuple[str, ...] = (),
        env: dict[str, str] | None = None,
    ) -> None:
        self.port = port or free_port()
        self.url = f"http://{host}:{self.port}"
        self.log_path = log_path
        self.database_url = database_url
        cmd = [
            sys.executable,
            "-c",
            DUMPABLE_STREAMLIT,
            "run",
            "streamlit_app.py",
            "--server.headless",
            "true",
            "--server.port",
            str(self.port),
            "--server.address",
            host,
            "--browser.gatherUsageStats",
            "false",
            "--server.fileWatcherType",  # no watching of the sources: nothing edits them during a test run
            "none",
            *extra_args,
        ]
        # only the default views are computed ahead (not every year: none among the first views, none in the
        # background, ~40 s of CPU per server and data version; no PDF report charts: a test that downloads a PDF
        # has them drawn then): the tests share 2 cores with the server
        env = {
            **os.environ,
            "VBHC_DATABASE_URL": database_url,
            "VBHC_WARM_UP_YEARS_UP_TO": "0",
            "VBHC_WARM_UP_YEARS_IN_BACKGROUND": "0",
            "VBHC_REPORT_CHARTS": "0",
            **(env or {}),
        }
        with log_path.open("w", encoding="utf-8") as log:
            self.proc = subprocess.Popen(cmd, cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        RUNNING.append(self)

    def wait_until_healthy(self, timeout: float = SERVER_START_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=1) as response:
                    if response.status == 200:
                        return
            except OSError:  # URLError, connection refused, timeouts
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                reason = f"exited with code {self.proc.returncode}" if self.proc.poll() is not None else "timed out"
                pytest.fail(
                    f"Streamlit server did not become healthy within {timeout:.0f} s ({reason}); its output:\n"
                    + self.log_path.read_text(encoding="utf-8", errors="replace"),
                    pytrace=False,
                )
            time.sleep(0.2)

    def stop(self) -> None:
        with contextlib.suppress(ValueError):
            RUNNING.remove(self)
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


@pytest.fixture(scope="package")  # stopped once the browser tests are done
def _servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[StreamlitServer, StreamlitServer]]:
    """Two headless Streamlit servers running the dashboard on one small demo registry (SQLite).

    The first is shared by the tests; the second is kept unvisited for the one test of a server's first request.
    Both boot while the demo registry is generated and imported, which hides their start-up time: nothing
    touches the database before a page is requested, and that only happens after this fixture returns.
    """
    folder = tmp_path_factory.mktemp("e2e-demo")
    database_url = f"sqlite:///{folder / 'vbhc.db'}"
    servers: list[StreamlitServer] = []
    try:
        servers.append(StreamlitServer(database_url, folder / "streamlit.log"))
        servers.append(StreamlitServer(database_url, folder / "streamlit-unvisited.log"))
        _build_demo_database(folder, database_url)
        for server in servers:
            server.wait_until_healthy()
        yield servers[0], servers[1]
    finally:
        for server in servers:
            server.stop()


@pytest.fixture(scope="package")
def app_url(_servers: tuple[StreamlitServer, StreamlitServer]) -> str:
    """Base URL of the shared server, e.g. http://127.0.0.1:PORT (pages at /condition_team etc.)."""
    return _servers[0].url


@pytest.fixture
def fresh_app_url(_servers: tuple[StreamlitServer, StreamlitServer]) -> Iterator[str]:
    """Base URL of a server no browser has visited yet; only for one test of what the first request does. The
    server is stopped after that test: visited, it is no longer fresh, and its warm-up (every view's signals and
    charts prepared in the background, ~60 s of CPU) would only compete with the other browser tests for 2 cores."""
    yield _servers[1].url
    _servers[1].stop()


@pytest.fixture(scope="package")
def oidc_provider() -> Iterator[str]:
    """A real OpenID Connect provider on localhost with the users of tests/roles.py (one button per user)."""
    from oidc_provider_mock import User, run_server_in_thread

    from tests.roles import USERS

    users = [User(sub=sub, claims=claims) for sub, claims in USERS.items() if sub != "nobody"]
    with run_server_in_thread(user_claims=users) as server:
        yield f"http://localhost:{server.server_port}"


def signed_in_server(
    database_url: str, folder: Path, oidc_provider: str, env: dict[str, str] | None = None
) -> StreamlitServer:
    """A dashboard server (not yet waited for) in production mode on `database_url`: OIDC sign-in through the test
    provider, tests/roles.py's mapping, its files written into `folder`; `env` adds to its environment."""
    from tests.roles import MAPPING

    port = free_port()
    secrets = folder / "secrets.toml"
    secrets.write_text(
        "[auth]\n"
        f'redirect_uri = "http://localhost:{port}/oauth2callback"\n'
        'cookie_secret = "e2e-only-cookie-secret-0123456789"\n'
        'client_id = "vbhc-e2e"\n'
        'client_secret = "vbhc-e2e-secret"\n'
        f'server_metadata_url = "{oidc_provider}/.well-known/openid-configuration"\n',
        encoding="utf-8",
    )
    mapping = folder / "access.toml"
    mapping.write_text(MAPPING, encoding="utf-8")
    return StreamlitServer(
        database_url,
        folder / "streamlit.log",
        host="localhost",  # the browser must use the redirect_uri's host, or the login cookie lands elsewhere
        port=port,
        extra_args=("--secrets.files", str(secrets)),
        env={"VBHC_ACCESS_FILE": str(mapping), "VBHC_AUTH": "oidc", **(env or {})},
    )


@pytest.fixture(scope="package")
def signed_app(oidc_provider: str, _servers, tmp_path_factory: pytest.TempPathFactory) -> Iterator[StreamlitServer]:
    """The dashboard in production mode (OIDC sign-in, roles mapping) on the browser tests' demo registry."""
    folder = tmp_path_factory.mktemp("sign-in")
    server = signed_in_server(_servers[0].database_url, folder, oidc_provider)
    try:
        server.wait_until_healthy()
        yield server
    finally:
        server.stop()
