"""Metadata store fixtures, run over every backend (loaded as a plugin by ``tests/conftest.py``).

- ``postgres_server`` (session): one throwaway PostgreSQL cluster for the whole run.
- ``metadata_url``: a fresh, empty database URL per test, parametrized ``sqlite``/``postgres``
  (SQLite on a temp file). Suites that need their own store or server reuse this.
- ``metadata_store``: an opened (migrated) store on ``metadata_url``, closed after the test.

Tests on the ``postgres`` parameter carry ``pytest.mark.postgres``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from modelregistry_server.storage.metadata import PeeweeMetadataStore, open_metadata_store
from tests.support.postgres import PostgresCluster, running_cluster

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
]


def sqlite_url(directory: Path) -> str:
    """A URL for a new SQLite database file in ``directory``."""
    return f"sqlite:///{directory.resolve() / 'metadata.db'}"


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresCluster]:
    """A PostgreSQL cluster shared by the session (skipped if the binaries are missing)."""
    with running_cluster() as cluster:
        yield cluster


@pytest.fixture(params=BACKENDS)
def metadata_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty metadata database URL on each backend (a PostgreSQL database is dropped
    after the test, once everything that used it is torn down)."""
    if request.param == "sqlite":
        yield sqlite_url(tmp_path)
        return
    cluster: PostgresCluster = request.getfixturevalue("postgres_server")
    url = cluster.create_database()
    yield url
    cluster.drop_database(url)


@pytest.fixture
def metadata_store(metadata_url: str) -> Iterator[PeeweeMetadataStore]:
    """A migrated store on a fresh database of each backend."""
    store = open_metadata_store(metadata_url)
    try:
        yield store
    finally:
        store.close()
