"""An in-process server on port 0 per test, driven through the shipped client."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from modelregistry.client import RegistryClient
from modelregistry_server.app import RegistryServer
from modelregistry_server.config import Config
from tests.support.servers import serving

KiB = 1024


@pytest.fixture
def server_config(metadata_url: str, tmp_path: Path) -> Config:
    """Small pieces and chunks so resume paths are exercised with small payloads."""
    return Config(
        listen="127.0.0.1:0",
        database_url=metadata_url,
        blob_url=f"file://{tmp_path / 'blobs'}",
        upload_piece_bytes=256 * KiB,
        download_chunk_bytes=64 * KiB,
        maintenance_interval_seconds=0,
        shutdown_grace_seconds=0,
    )


@pytest.fixture
def server(server_config: Config) -> Iterator[RegistryServer]:
    with serving(server_config) as service:
        yield service


@pytest.fixture
def client(server: RegistryServer) -> Iterator[RegistryClient]:
    with RegistryClient(server.address, timeout=30, chunk_size=64 * KiB) as c:
        yield c


@pytest.fixture
def replicas(server_config: Config) -> Iterator[list[RegistryServer]]:
    """The servers that competing calls go to. On PostgreSQL two replicas of one database and
    one blob store, each with its own use cases, pools and caches (what two processes have);
    on SQLite the one server a database file allows."""
    count = 2 if server_config.database_url.startswith("postgresql") else 1
    with ExitStack() as stack:
        yield [stack.enter_context(serving(server_config)) for _ in range(count)]


@pytest.fixture
def replica_clients(replicas: list[RegistryServer]) -> Iterator[list[RegistryClient]]:
    """One client per replica, without retries (a race must show its first outcome)."""
    with ExitStack() as stack:
        yield [
            stack.enter_context(RegistryClient(r.address, timeout=30, retries=0)) for r in replicas
        ]
