"""The metadata store reports its pool: connections checked out now and the pool's size
(the ``modelregistry_db_connections_*`` gauges)."""

from __future__ import annotations

import threading
import time
from typing import Any

import psycopg2
import pytest

from modelregistry_server.storage.metadata import PeeweeMetadataStore, open_metadata_store
from modelregistry_server.storage.metadata import database as database_module
from tests.support.postgres import PostgresCluster


def test_connections_in_use_follow_the_scopes(metadata_url: str) -> None:
    store = open_metadata_store(metadata_url, max_connections=4)
    try:
        assert store.connections_in_use() == (0, 4)
        held, release = threading.Event(), threading.Event()

        def hold() -> None:
            with store.connection():
                store.page_token_secret()
                held.set()
                release.wait(10)

        other = threading.Thread(target=hold)
        other.start()
        try:
            assert held.wait(10)
            with store.connection():
                store.page_token_secret()
                assert store.connections_in_use() == (2, 4)
            assert store.connections_in_use() == (1, 4)
        finally:
            release.set()
            other.join(10)
        assert store.connections_in_use() == (0, 4)
    finally:
        store.close()


def _backend_pid(store: PeeweeMetadataStore) -> int:
    database: Any = store.backend.database
    return int(database.execute_sql("SELECT pg_backend_pid()").fetchone()[0])


def _count_pings(store: PeeweeMetadataStore, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count peewee's liveness checks (``SELECT 1``) of the store's PostgreSQL pool."""
    adapter: Any = store.backend.database._adapter  # type: ignore[attr-defined]
    ping = adapter.is_connection_closed
    pings: list[int] = []

    def counted(conn: Any) -> bool:
        pings.append(1)
        return bool(ping(conn))

    monkeypatch.setattr(adapter, "is_connection_closed", counted)
    return pings


def test_postgres_reuses_a_recent_connection_without_a_ping(
    postgres_server: PostgresCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = open_metadata_store(postgres_server.create_database(), max_connections=2)
    try:
        pings = _count_pings(store, monkeypatch)
        with store.connection():
            first = _backend_pid(store)
        for _ in range(3):
            with store.connection():
                assert _backend_pid(store) == first
        assert pings == []  # each check-out came less than the idle limit after a check-in

        monkeypatch.setattr(database_module, "PG_PING_AFTER_IDLE_S", 0.0)
        with store.connection():
            assert _backend_pid(store) == first
        assert pings == [1]  # idle past the limit: pinged, alive, reused
    finally:
        store.close()


def test_postgres_replaces_a_terminated_connection_without_failing_a_call(
    postgres_server: PostgresCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = postgres_server.create_database()
    store = open_metadata_store(url, max_connections=1)
    monkeypatch.setattr(database_module, "PG_PING_AFTER_IDLE_S", 60.0)  # never idle enough
    admin = psycopg2.connect(url)
    admin.autocommit = True
    try:
        secret = store.page_token_secret()
        with store.connection():
            victim = _backend_pid(store)
        with admin.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", (victim,))
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", (victim,))
                if cursor.fetchone()[0] == 0:
                    break
                time.sleep(0.02)
            else:
                pytest.fail(f"backend {victim} did not end")
        # The pooled connection is dead but recent: its socket says so, and the call
        # gets a new connection instead of an error.
        with store.connection():
            assert _backend_pid(store) != victim
            assert store.page_token_secret() == secret
    finally:
        admin.close()
        store.close()
