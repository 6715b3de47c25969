"""The metadata store reports its pool: connections checked out now and the pool's size
(the ``modelregistry_db_connections_*`` gauges)."""

from __future__ import annotations

import threading

from modelregistry_server.storage.metadata import open_metadata_store


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
