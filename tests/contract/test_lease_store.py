"""The ``LeaseBook`` port over every metadata backend: one holder per named lease until it
expires, renewal by the holder, takeover after expiry, release, and one winner of a race
between processes (two stores on one database) and threads; plus :class:`LeaseKeeper` on it."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from modelregistry_server.domain.leases import LeaseKeeper
from modelregistry_server.storage.metadata import PeeweeMetadataStore, open_metadata_store

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
TTL = timedelta(seconds=30)


def test_one_holder_until_expiry_then_takeover(metadata_store: PeeweeMetadataStore) -> None:
    book = metadata_store
    assert book.lease_holder("maintenance", T0) is None
    assert book.acquire_lease("maintenance", "a", T0, T0 + TTL)
    assert not book.acquire_lease("maintenance", "b", T0 + TTL / 2, T0 + TTL * 2)
    assert book.lease_holder("maintenance", T0 + TTL / 2) == "a"
    # The holder renews before expiry: the lease moves on with it.
    assert book.acquire_lease("maintenance", "a", T0 + TTL / 2, T0 + TTL * 3 / 2)
    assert not book.acquire_lease("maintenance", "b", T0 + TTL, T0 + TTL * 2)
    # Expired: taken over, and the old holder cannot renew it back.
    later = T0 + TTL * 2
    assert book.lease_holder("maintenance", later) is None
    assert book.acquire_lease("maintenance", "b", later, later + TTL)
    assert not book.acquire_lease("maintenance", "a", later, later + TTL)
    assert book.lease_holder("maintenance", later) == "b"
    # Leases are independent by name.
    assert book.acquire_lease("upload/1", "a", later, later + TTL)


def test_release_frees_the_lease_only_for_its_holder(metadata_store: PeeweeMetadataStore) -> None:
    book = metadata_store
    assert book.acquire_lease("maintenance", "a", T0, T0 + TTL)
    book.release_lease("maintenance", "b")  # not b's: nothing happens
    assert book.lease_holder("maintenance", T0) == "a"
    book.release_lease("maintenance", "a")
    assert book.lease_holder("maintenance", T0) is None
    assert book.acquire_lease("maintenance", "b", T0, T0 + TTL)


def test_racing_processes_and_threads_elect_one(metadata_url: str) -> None:
    stores = [open_metadata_store(metadata_url, max_connections=8) for _ in range(2)]
    wins: list[str] = []
    start = threading.Barrier(8)

    def contend(n: int) -> None:
        start.wait()
        holder = f"h{n}"
        if stores[n % 2].acquire_lease("maintenance", holder, T0, T0 + TTL):
            wins.append(holder)

    try:
        threads = [threading.Thread(target=contend, args=(n,)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert len(wins) == 1, wins
        assert stores[1].lease_holder("maintenance", T0) == wins[0]
    finally:
        for store in stores:
            store.close()


def test_keeper_holds_renews_yields_and_releases(metadata_store: PeeweeMetadataStore) -> None:
    now = [T0]
    a = LeaseKeeper(metadata_store, "maintenance", ttl=TTL, clock=lambda: now[0], holder="a")
    b = LeaseKeeper(metadata_store, "maintenance", ttl=TTL, clock=lambda: now[0], holder="b")
    assert a.try_acquire() and a.held()
    assert not b.try_acquire() and not b.held()
    assert a.renew_interval == TTL.total_seconds() / 3
    now[0] += TTL * 2  # a stopped renewing (it died, or lost the database): b takes over
    assert b.try_acquire() and b.held()
    assert not a.try_acquire() and not a.held()
    b.release()
    assert not b.held()
    assert metadata_store.lease_holder("maintenance", now[0]) is None
    stopping = threading.Event()
    stopping.set()
    a.run(stopping)  # one attempt, then it gives the lease up as it stops
    assert metadata_store.lease_holder("maintenance", now[0]) is None
