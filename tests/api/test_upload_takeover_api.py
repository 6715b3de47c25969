"""Upload takeover through the shipped client: two servers on one PostgreSQL database and one
blob directory (two replicas). While the first writes an upload the second refuses it
(ABORTED UPLOAD_BUSY, with the lease's time left); once the first's lease expired (its stream
stalled: its replica hangs or lost its client) the client resumes on the second from the last
committed piece, and the first, when its stream moves again, is fenced (UPLOAD_LEASE_LOST)."""

from __future__ import annotations

import dataclasses
import io
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelregistry.client import AbortedError, RegistryClient
from modelregistry_server.app import RegistryServer
from modelregistry_server.config import Config
from tests.support.payload_helpers import data_of, sha256_hex, wait_committed
from tests.support.postgres import PostgresCluster
from tests.support.servers import serving

KiB = 1024
PIECE = 64 * KiB
# Long enough that the refusal below reaches the second server within the first's lease on a
# loaded CI machine (the lease's last extension is the second piece's commit), short enough
# that waiting it out stays cheap.
LEASE_S = 3.0

pytestmark = pytest.mark.postgres


@pytest.fixture
def two_replicas(
    postgres_server: PostgresCluster, tmp_path: Path
) -> Iterator[tuple[RegistryServer, RegistryServer]]:
    config = Config(
        listen="127.0.0.1:0",
        database_url=postgres_server.create_database(),
        blob_url=f"file://{tmp_path / 'blobs'}",  # one directory, as on a shared volume
        upload_piece_bytes=PIECE,
        upload_lease_seconds=LEASE_S,
        maintenance_interval_seconds=0,
        shutdown_grace_seconds=0,
        webhook_workers=0,
    )
    with serving(config) as first, serving(dataclasses.replace(config)) as second:
        yield first, second


class StallingSource(io.BytesIO):
    """A seekable source whose reads stop at ``stall_at`` until :meth:`release`."""

    def __init__(self, data: bytes, stall_at: int) -> None:
        super().__init__(data)
        self.stall_at = stall_at
        self.stalled = threading.Event()
        self._go = threading.Event()

    def release(self) -> None:
        self._go.set()

    def read(self, size: int | None = -1, /) -> bytes:
        if self.tell() >= self.stall_at and not self._go.is_set():
            self.stalled.set()
            assert self._go.wait(30)
        return super().read(size)


def test_an_upload_moves_to_another_replica_only_after_the_lease_expired(
    two_replicas: tuple[RegistryServer, RegistryServer],
) -> None:
    first, second = two_replicas
    data = data_of(4 * PIECE, seed=7)
    with (
        RegistryClient(first.address, timeout=30, chunk_size=16 * KiB) as on_first,
        RegistryClient(second.address, timeout=30, chunk_size=16 * KiB) as on_second,
    ):
        on_first.create_model("m")
        on_first.create_version("m")
        source = StallingSource(data, stall_at=2 * PIECE)
        outcome: list[object] = []

        def write_on_first() -> None:
            try:
                outcome.append(on_first.upload_file("m", 1, source, upload_id="u1", max_resumes=0))
            except AbortedError as exc:
                outcome.append(exc)

        writer = threading.Thread(target=write_on_first, daemon=True)
        writer.start()
        assert source.stalled.wait(30)
        wait_committed(on_first, "u1", 2 * PIECE)

        # While the first replica holds the lease, the second refuses a second writer.
        with pytest.raises(AbortedError) as busy:
            on_second.upload_file("m", 1, io.BytesIO(data), upload_id="u1", max_resumes=0)
        assert busy.value.reason == "UPLOAD_BUSY"
        assert 1 <= int(busy.value.metadata["retry_after_seconds"]) <= LEASE_S
        assert "lease expires in" in busy.value.message

        # The client waits the time left, then resumes on the second from what was committed.
        sent: list[int] = []
        began = time.monotonic()
        file = on_second.upload_file(
            "m",
            1,
            io.BytesIO(data),
            upload_id="u1",
            max_resumes=3,
            progress=lambda done, total: sent.append(done),
        )
        assert time.monotonic() - began < LEASE_S + 5
        assert file.sha256 == sha256_hex(data) and file.size_bytes == len(data)
        assert min(sent) >= 2 * PIECE  # only what was missing was sent again

        # The first writer's stream moves again: fenced, it neither commits nor publishes.
        source.release()
        writer.join(30)
        (stale,) = outcome
        assert isinstance(stale, AbortedError) and stale.reason == "UPLOAD_LEASE_LOST", stale
        out = io.BytesIO()
        on_first.download_file("m", 1, out)
        assert out.getvalue() == data
        assert len(list(on_first.list_files("m", 1))) == 1
