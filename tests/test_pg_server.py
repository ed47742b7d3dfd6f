"""The test suite's own PostgreSQL server (tests/pg_server.py): its files in memory when /dev/shm has room
(scratch_parent), a test's database is dropped in the background (PostgresServer.drop_later), and a drop that
fails is reported, not lost."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from tests.pg_server import _Dropper, scratch_parent

pytestmark = pytest.mark.postgres


def _databases(server) -> set[str]:
    admin = create_engine(server.admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            return set(conn.execute(text("SELECT datname FROM pg_database")).scalars())
    finally:
        admin.dispose()


def test_a_database_handed_over_is_dropped_in_the_background(postgres_server) -> None:
    name = f"vbhc_drop_later_{time.monotonic_ns()}"
    admin = create_engine(postgres_server.admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f"CREATE DATABASE {name}"))
        assert name in _databases(postgres_server)
        postgres_server.drop_later(name)
        deadline = time.monotonic() + 60
        while name in _databases(postgres_server) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert name not in _databases(postgres_server)
    finally:
        admin.dispose()


def test_a_drop_that_fails_is_reported_when_the_dropper_closes(postgres_server) -> None:
    name = f"vbhc_kept_{time.monotonic_ns()}"
    admin = create_engine(postgres_server.admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f"CREATE DATABASE {name}"))
        dropper = _Dropper(postgres_server.admin_url)  # its own, not the server's: the failure stays here
        dropper.put("not a database name")  # a syntax error: nothing is dropped
        dropper.put(name)  # the queue goes on after a failure
        failures = dropper.close()
        assert len(failures) == 1 and failures[0].startswith("not a database name: "), failures
        assert name not in _databases(postgres_server)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()


def test_the_clusters_folder_is_in_memory_when_it_has_room_else_on_disk(tmp_path) -> None:
    assert scratch_parent(tmp_path, min_free=0) == tmp_path
    assert scratch_parent(tmp_path, min_free=2**62) == Path("/tmp")  # no room: the disk
    assert scratch_parent(tmp_path / "missing", min_free=0) == Path("/tmp")


def test_the_suites_server_keeps_its_files_where_scratch_parent_says(postgres_server) -> None:
    """On a machine whose /dev/shm has room (this one's: 24 GB) that is memory: a test's CREATE and DROP DATABASE
    do not wait on the disk's journal."""
    assert postgres_server.directory.parent == scratch_parent()
