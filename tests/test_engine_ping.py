"""PostgreSQL connections of a busy server are used without a ping; one left idle is pinged, and a dead one is
replaced (vbhc.store.get_engine). Counted, not timed: each ping was a round trip on every checkout, a dozen per
script run (issue 13 item 2)."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, select, text

from vbhc import store

on_postgres = pytest.mark.parametrize("engine", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)


def _pings(engine, monkeypatch) -> list[int]:
    """Counts the dialect's pings (what pool_pre_ping and the idle check both call)."""
    pinged: list[int] = []
    ping = engine.dialect.do_ping
    monkeypatch.setattr(engine.dialect, "do_ping", lambda conn: pinged.append(1) or ping(conn))
    return pinged


@on_postgres
def test_connections_in_use_a_moment_ago_are_not_pinged_an_idle_one_is_and_a_dead_one_is_replaced(
    engine, monkeypatch, postgres_server
):
    pinged = _pings(engine, monkeypatch)
    for _ in range(5):  # a script run's checkouts, back to back
        with engine.connect() as conn:
            backend = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
    assert pinged == []

    monkeypatch.setattr(store, "PING_AFTER_IDLE_SECONDS", 0.0)  # every pooled connection counts as idle now
    admin = create_engine(postgres_server.admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:  # the server ended it (a restart, a firewall): the pool does not know
            assert conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": backend}).scalar_one()
    finally:
        admin.dispose()
    with engine.connect() as conn:  # the ping finds it dead: a new connection, no error for the run
        assert conn.execute(text("SELECT pg_backend_pid()")).scalar_one() != backend
    assert len(pinged) == 1
    with engine.connect() as conn:  # alive and idle: pinged, then used
        assert conn.execute(select(1)).scalar_one() == 1
    assert len(pinged) == 2
