"""Contract of the ``EventWakeups`` port on every metadata backend: a commit that appended an
event moves the counter (a rollback of another process never does), a wait without one
times out unchanged; on PostgreSQL a commit through another store (another replica's
process) wakes this one through LISTEN/NOTIFY, also after the listener lost its connection."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import psycopg2
import pytest

from modelregistry_server.domain.events import Event
from modelregistry_server.storage.metadata import PeeweeMetadataStore, open_metadata_store
from modelregistry_server.storage.metadata.wakeups import PostgresWakeups
from tests.contract.test_event_log import T0

WAKE_S = 5.0  # a bound, not an expectation: wake-ups take milliseconds


def _event(n: int) -> Event:
    return Event("t", time=T0, principal="user:ann", method="CreateModel", resource=f"m/{n}")


def _append(store: PeeweeMetadataStore, n: int) -> None:
    with store.transaction():
        store.append_event(_event(n))


def _woken(store: PeeweeMetadataStore, generation: int, bound: float = WAKE_S) -> bool:
    return store.event_wakeups().wait(generation, bound) != generation


@pytest.fixture
def other(metadata_url: str) -> Iterator[PeeweeMetadataStore]:
    """A second store on the same PostgreSQL database: another replica's process."""
    if not metadata_url.startswith("postgresql"):
        pytest.skip("SQLite has no notifications: other processes' commits are polled")
    store = open_metadata_store(metadata_url, max_connections=2)
    try:
        yield store
    finally:
        store.close()


def _listening(store: PeeweeMetadataStore) -> PostgresWakeups:
    wakeups = store.event_wakeups()
    assert isinstance(wakeups, PostgresWakeups)
    assert wakeups.listening.wait(WAKE_S)
    return wakeups


def test_a_commit_of_this_process_wakes_a_waiter(metadata_store: PeeweeMetadataStore) -> None:
    wakeups = metadata_store.event_wakeups()
    if isinstance(wakeups, PostgresWakeups):
        _listening(metadata_store)
    generation = wakeups.generation()
    assert wakeups.wait(generation, 0.05) == generation  # nothing committed: a timeout
    _append(metadata_store, 1)
    assert wakeups.generation() != generation


def test_a_commit_through_another_store_wakes_this_one(
    metadata_store: PeeweeMetadataStore, other: PeeweeMetadataStore
) -> None:
    _listening(metadata_store)
    generation = metadata_store.event_wakeups().generation()
    started = time.monotonic()
    _append(other, 1)
    assert _woken(metadata_store, generation)
    assert time.monotonic() - started < 1.0


def test_a_rolled_back_append_of_another_store_wakes_nobody(
    metadata_store: PeeweeMetadataStore, other: PeeweeMetadataStore
) -> None:
    _listening(metadata_store)
    generation = metadata_store.event_wakeups().generation()
    with pytest.raises(RuntimeError), other.transaction():
        other.append_event(_event(1))
        raise RuntimeError("roll back")
    assert not _woken(metadata_store, generation, 0.3)  # NOTIFY is sent on commit only


class _SlowCatchUp(PostgresWakeups):
    """A listener whose first bump (the catch-up after connecting) is held until
    :attr:`release` or 0.5 s, as a busy machine's scheduling may hold it."""

    def __init__(self, connect: Any) -> None:
        self.release = threading.Event()
        self._held = False
        super().__init__(connect)

    def bump(self) -> None:
        if not self._held:
            self._held = True
            self.release.wait(0.5)
        super().bump()


def test_listening_means_the_catch_up_wake_up_was_given(
    metadata_store: PeeweeMetadataStore, other: PeeweeMetadataStore
) -> None:
    """Whoever waited for ``listening`` sees the counter move only for later commits (else a
    test or waiter reading the counter then would be woken by the connect itself)."""
    db: Any = metadata_store.backend.database
    wakeups = _SlowCatchUp(lambda: psycopg2.connect(database=db.database, **db.connect_params))
    try:
        assert wakeups.listening.wait(WAKE_S)
        generation = wakeups.generation()
        wakeups.release.set()
        assert wakeups.wait(generation, 0.2) == generation  # nothing committed since
    finally:
        wakeups.close()


def test_the_listener_reconnects_after_losing_its_connection(
    metadata_store: PeeweeMetadataStore, other: PeeweeMetadataStore
) -> None:
    wakeups = _listening(metadata_store)
    pid = wakeups.listener_pid
    db: Any = other.backend.database
    with db.connection_context():
        db.execute_sql("SELECT pg_terminate_backend(%s)", (pid,))
    deadline = time.monotonic() + WAKE_S
    while wakeups.connects < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert wakeups.connects == 2
    assert wakeups.listening.wait(WAKE_S) and wakeups.listener_pid != pid
    generation = wakeups.generation()
    _append(other, 1)
    assert _woken(metadata_store, generation)


def test_closing_the_store_stops_the_listener(metadata_url: str) -> None:
    store = open_metadata_store(metadata_url, max_connections=2)
    wakeups = store.event_wakeups()
    store.close()
    if isinstance(wakeups, PostgresWakeups):
        assert not wakeups._thread.is_alive()
    assert not isinstance(store.event_wakeups(), PostgresWakeups)  # no listener after close


def test_a_store_that_only_writes_opens_no_listener(metadata_store: PeeweeMetadataStore) -> None:
    _append(metadata_store, 1)
    assert metadata_store._wakeups is None  # wake-ups (and a LISTEN session) only on demand
