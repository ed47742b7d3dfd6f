"""Start a private, throw-away PostgreSQL server for the test suite (no system cluster is touched)."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy import Engine


#: How CREATE DATABASE ... TEMPLATE copies a test's database: file by file, not PostgreSQL 15's default of writing
#: every block of the copy to the write-ahead log (WAL_LOG), which is meant for a large template copied while the
#: server is busy. For the suite's small templates (an empty schema is ~8.5 MB) the server spent about a third less
#: CPU per database made and dropped in a loop (~60 against ~90 ms), and ~1 s less (12.0 against 10.9 s, two runs
#: each) on the 83 databases of tests/test_improvement.py; its checkpoint is cheap on a server without fsync.
COPY_STRATEGY = "STRATEGY FILE_COPY"


@dataclass
class PostgresServer:
    directory: Path
    port: int
    bindir: Path
    as_postgres: bool
    _dropper: _Dropper | None = field(default=None, repr=False, compare=False)
    _admin: Engine | None = field(default=None, repr=False, compare=False)

    @property
    def admin_url(self) -> str:
        return f"postgresql+psycopg://vbhc@/postgres?host={self.directory}&port={self.port}"

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://vbhc@/{database}?host={self.directory}&port={self.port}"

    def admin(self) -> Engine:
        """This process's AUTOCOMMIT engine on the `postgres` database, for CREATE DATABASE: one pooled connection
        instead of a new engine and server process per test database (~0.01 s of CPU and 0.02-0.09 s of wall
        each, in each of ~330 per run). Only the thread that makes the databases uses it."""
        if self._admin is None:
            from sqlalchemy import create_engine

            self._admin = create_engine(self.admin_url, isolation_level="AUTOCOMMIT", pool_size=1)
        return self._admin

    def drop_later(self, database: str) -> None:
        """Drop `database` in a background thread, so the test that used it does not wait for it.

        Why: PostgreSQL's DROP DATABASE forces a checkpoint and waits for it (~0.1 s of a test's ~0.3 s set-up
        and teardown of its own database, in each of ~300 PostgreSQL tests); the next test does not need that
        database gone, only a new one (a copy of a template nobody is connected to, which a drop never is)."""
        if self._dropper is None:
            self._dropper = _Dropper(self.admin_url)
        self._dropper.put(database)

    def stop(self) -> None:
        failures = self._dropper.close() if self._dropper is not None else []
        if self._admin is not None:
            self._admin.dispose()
        _run(self, [str(self.bindir / "pg_ctl"), "-D", str(self.directory / "data"), "-m", "immediate", "stop"])
        shutil.rmtree(self.directory, ignore_errors=True)
        if failures:  # a test's database that could not be dropped: a connection left open on it, say
            raise RuntimeError("databases not dropped: " + "; ".join(failures))

    def stop_keeping(self) -> None:
        """Shut a kept cluster down cleanly, its databases left for the next start."""
        _run(self, [str(self.bindir / "pg_ctl"), "-D", str(self.directory / "data"), "-m", "fast", "stop"])


class _Dropper:
    """One thread that drops the databases handed to it, in order, on its own AUTOCOMMIT connection to `postgres`
    (PostgresServer.drop_later). close() drops what is still queued and returns the drops that failed."""

    def __init__(self, admin_url: str) -> None:
        import queue

        self._admin_url = admin_url
        self._queue: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self.failures: list[str] = []
        self._thread = threading.Thread(target=self._run, name="vbhc-test-drop-database", daemon=True)
        self._thread.start()

    def put(self, database: str) -> None:
        self._queue.put(database)

    def close(self) -> list[str]:
        self._queue.put(None)
        self._thread.join()
        return self.failures

    def _run(self) -> None:
        from sqlalchemy import create_engine, text

        admin = create_engine(self._admin_url, isolation_level="AUTOCOMMIT")
        try:
            while (name := self._queue.get()) is not None:
                try:
                    with admin.connect() as conn:
                        conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                except Exception as exc:  # reported by close(), at the server's stop
                    self.failures.append(f"{name}: {exc}")
        finally:
            admin.dispose()


def find_bindir() -> Path | None:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name))
    for c in reversed(candidates):
        if (Path(c) / "initdb").exists():
            return Path(c)
    found = shutil.which("initdb")
    return Path(found).parent if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(server: PostgresServer, cmd: list[str]) -> None:
    if server.as_postgres:
        cmd = ["runuser", "-u", "postgres", "--", *cmd]
    subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=120)


#: The free space a RAM-backed /dev/shm must have for the suite's clusters to be made there (tests/conftest.py
#: `postgres_server`): a Docker container's default of 64 MB is not enough, and the folder falls back to /tmp.
SCRATCH_MIN_FREE = 4 * 1024**3


def scratch_parent(candidate: Path = Path("/dev/shm"), min_free: int = SCRATCH_MIN_FREE) -> Path:
    """Where the suite's throw-away clusters go: `candidate` (RAM: tmpfs) when it is a writable folder with
    `min_free` bytes free, else /tmp (the disk), where start_postgres puts a cluster without `parent` (not TMPDIR:
    the server's unix socket lies in the cluster's folder, and a socket's path may not be longer than 107 bytes).

    Why: every PostgreSQL test makes a database (CREATE DATABASE ... TEMPLATE: ~300 files created) and drops one
    (the files unlinked, a checkpoint), and each is a run of file-system metadata writes. On ext4 they waited on its
    journal: a test's CREATE DATABASE took 0.16-1.2 s (median of 12 per run, at load 6-9) where on tmpfs it took
    0.05 s, the same loop of a test's database made, written and dropped 20.6/12.0 s wall against 8.4/7.0 s. The
    PostgreSQL tests of test_import_trust, test_prem_import, test_prom_store, test_registry_read and test_ingest
    (103, one process, load 4.5-6.6, 3 runs each): the server's CPU 26.0/30.1/33.6 s on /tmp against 12.4/11.8 s
    here, the pytest process's 90.2/84.7/84.3 s against 73.7/79.3/71.1 s, wall 239/289/232 s against 160/172/175 s. A
    throw-away cluster (fsync off) loses nothing it needs by living in memory."""
    try:
        stats = os.statvfs(candidate)
    except OSError:
        return Path("/tmp")
    if stats.f_bavail * stats.f_frsize >= min_free and os.access(candidate, os.W_OK | os.X_OK):
        return candidate
    return Path("/tmp")


def start_postgres(directory: Path | None = None, *, parent: Path | None = None) -> PostgresServer:
    """initdb + pg_ctl start on a unix socket in a fresh temporary folder under `parent` (/tmp unless named; the
    suite names scratch_parent()); a few seconds.

    `directory` keeps the cluster instead (the benchmarks' data/bench/postgresql): created on first use and
    started as it is later; stop it with stop_keeping()."""
    bindir = find_bindir()
    if bindir is None:
        raise RuntimeError(
            "PostgreSQL server binaries not found (apt-get install -y postgresql); scripts/test does this"
        )
    kept = directory is not None
    if directory is None:
        directory = Path(tempfile.mkdtemp(prefix="vbhc-pg-", dir=str(parent or "/tmp")))
    directory.mkdir(parents=True, exist_ok=True)
    as_postgres = os.geteuid() == 0  # initdb refuses to run as root
    server = PostgresServer(directory, _free_port(), bindir, as_postgres)
    if as_postgres:
        shutil.chown(directory, "postgres", "postgres")
    try:
        if not (directory / "data" / "PG_VERSION").exists():
            _run(
                server,
                [
                    str(bindir / "initdb"),
                    "-D",
                    str(directory / "data"),
                    "-A",
                    "trust",
                    "-U",
                    "vbhc",
                    "-E",
                    "UTF8",
                    "--no-sync",
                    "--locale=C",
                ],
            )
        options = (
            f"-p {server.port} -k {directory} -c listen_addresses='' -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=50"
        )
        _run(
            server,
            [
                str(bindir / "pg_ctl"),
                "-D",
                str(directory / "data"),
                "-o",
                options,
                "-w",
                "-t",
                "60",
                "-l",
                str(directory / "server.log"),
                "start",
            ],
        )
    except subprocess.CalledProcessError as exc:
        if not kept:
            shutil.rmtree(directory, ignore_errors=True)
        raise RuntimeError(f"could not start PostgreSQL: {exc.stderr or exc.stdout}") from exc
    return server
