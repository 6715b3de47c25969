"""Slow payload tests against the server as a subprocess: resume after SIGKILL and restart
(SQLite and PostgreSQL), a 384 MiB round trip, and server memory that does not grow with the
payload (256 MiB vs 1 GiB, sampled with psutil). Payloads are generated block by block."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import psutil
import pytest

from modelregistry.client import RegistryClient
from modelregistry.client.errors import AbortedError
from modelregistry.v1 import payload_pb2 as pl
from modelregistry.v1 import resources_pb2 as res
from tests.support.metadata_fixtures import sqlite_url
from tests.support.payload_helpers import (
    WAIT_S,
    GeneratedStream,
    HashingSink,
    MiB,
    chunk,
    file_name,
    header,
    raw_stub,
    raw_upload,
    wait_committed,
)
from tests.support.postgres import PostgresCluster
from tests.support.server_process import ServerProcess

pytestmark = pytest.mark.slow

GiB = 1024 * MiB
CHUNK = 1 * MiB


def _chunks(stream: GeneratedStream, start: int, stop: int) -> Iterator[pl.UploadFileRequest]:
    """UploadChunk messages for bytes [start, stop) of a generated stream (1 MiB blocks)."""
    offset = start
    while offset < stop:
        index, within = divmod(offset, stream.BLOCK)
        data = stream.block(index)[within : within + min(CHUNK, stop - offset)]
        yield chunk(offset, data)
        offset += len(data)


# -- resume after a crash -----------------------------------------------------------------------
@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return sqlite_url(tmp_path)
    cluster: PostgresCluster = request.getfixturevalue("postgres_server")
    return cluster.create_database()


def test_upload_resumes_after_server_sigkill_and_restart(tmp_path: Path, database_url: str) -> None:
    size, piece, kill_after = 24 * MiB, 1 * MiB, 12 * MiB + MiB // 2
    blob_url = (tmp_path / "blobs").as_uri()
    log = tmp_path / "server.log"
    data = GeneratedStream(size, seed=7)
    digest = data.sha256()
    name = file_name("m", 1)
    head = header(name, "crash-1", size=size, sha256=digest)

    paused, release = threading.Event(), threading.Event()

    def first_half() -> Iterator[pl.UploadFileRequest]:
        yield head
        yield from _chunks(data, 0, kill_after)  # 12 pieces and half of the 13th
        paused.set()
        release.wait(WAIT_S * 4)

    # A short lease: the restarted server (another holder) takes the upload over once the
    # killed one's lease expired, copying its committed pieces into its own staging.
    lease = ["--upload-lease-seconds", "2"]
    first = ServerProcess(database_url, blob_url, log, piece_bytes=piece, extra_args=lease).start()
    try:
        with RegistryClient(first.address, timeout=WAIT_S) as client:
            client.create_model("m")
            client.create_version("m")
            with raw_stub(first.address) as stub:
                future = stub.UploadFile.future(first_half(), timeout=WAIT_S * 4)
                assert paused.wait(WAIT_S)
                wait_committed(client, "crash-1", 12 * MiB)
                first.kill()
                release.set()
                with pytest.raises(grpc.RpcError):
                    future.result(timeout=WAIT_S)
    finally:
        first.kill()

    with (
        ServerProcess(database_url, blob_url, log, piece_bytes=piece, extra_args=lease) as second,
        RegistryClient(second.address, timeout=WAIT_S) as client,
    ):
        status = client.get_upload_status("crash-1")
        assert status.state == pl.UPLOAD_STATE_ACTIVE
        committed = status.committed_size_bytes
        assert committed == 12 * MiB  # the half-written 13th piece did not count
        assert client.get_version("m", 1).file_count == 0
        resumed = header(name, "crash-1", size=size, sha256=digest, write_offset=committed)
        with raw_stub(second.address) as stub:
            file = _upload_once_not_busy(stub, [resumed, *_chunks(data, committed, size)])
        assert (file.size_bytes, file.sha256) == (size, digest)
        sink = HashingSink()
        client.download_file("m", 1, sink)
        assert (sink.size, sink.hexdigest()) == (size, digest)
    assert not list((tmp_path / "blobs" / "uploads").iterdir())


def _upload_once_not_busy(stub: Any, messages: list[pl.UploadFileRequest]) -> res.File:
    """``raw_upload``, retried (bounded) while the killed server's lease has not expired."""
    deadline = time.monotonic() + WAIT_S
    while True:
        try:
            return raw_upload(stub, messages)
        except AbortedError as exc:
            if "UPLOAD_BUSY" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.2)


# -- big payloads and memory --------------------------------------------------------------------
def _require_free_space(path: Path, needed: int) -> None:
    free = shutil.disk_usage(path).free
    if free < needed:
        pytest.skip(f"needs {needed / GiB:.0f} GiB free in {path}, has {free / GiB:.1f} GiB")


@dataclass
class Transfer:
    size: int
    upload_s: float
    download_s: float
    peak_rss_growth: int | None = None

    def report(self) -> str:
        mb = self.size / MiB
        text = f"{mb:.0f} MiB: upload {mb / self.upload_s:.0f} MiB/s, "
        text += f"download {mb / self.download_s:.0f} MiB/s"
        if self.peak_rss_growth is not None:
            text += f", server peak RSS growth {self.peak_rss_growth / MiB:.1f} MiB"
        return text


def _round_trip(client: RegistryClient, version: int, size: int, seed: int) -> Transfer:
    """Upload ``size`` generated bytes through the client wrapper, download and verify them."""
    source = GeneratedStream(size, seed=seed)
    digest = source.sha256()
    started = time.monotonic()
    file = client.upload_file("m", version, source, sha256=digest)
    uploaded = time.monotonic()
    assert (file.size_bytes, file.sha256) == (size, digest)
    sink = HashingSink()
    client.download_file("m", version, sink)  # also verifies sha256 and crc32c itself
    downloaded = time.monotonic()
    assert (sink.size, sink.hexdigest()) == (size, digest)
    return Transfer(size, uploaded - started, downloaded - uploaded)


class _RssSampler(threading.Thread):
    """Samples a process's RSS until stopped; ``peak`` is the largest sample."""

    def __init__(self, pid: int) -> None:
        super().__init__(name="rss-sampler", daemon=True)
        self._process = psutil.Process(pid)
        self._done = threading.Event()
        self.peak = self._process.memory_info().rss

    def run(self) -> None:
        while not self._done.wait(0.005):  # sampling period, not synchronisation
            self.peak = max(self.peak, self._process.memory_info().rss)

    def stop(self) -> int:
        self._done.set()
        self.join(WAIT_S)
        return self.peak


def test_384_mib_round_trip(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _require_free_space(tmp_path, 2 * GiB)
    blobs = tmp_path / "blobs"
    with (
        ServerProcess(sqlite_url(tmp_path), blobs.as_uri(), tmp_path / "server.log") as server,
        RegistryClient(server.address, timeout=WAIT_S, chunk_size=2 * MiB) as client,
    ):
        client.create_model("m")
        version = client.create_version("m").version_number
        transfer = _round_trip(client, version, 384 * MiB, seed=384)
        client.seal_version("m", version)
    assert [p.stat().st_size for p in (blobs / "sha256").rglob("*") if p.is_file()] == [384 * MiB]
    with capsys.disabled():
        print(f"\n[payloads] {transfer.report()}")


def test_server_memory_does_not_grow_with_payload_size(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Default 64 MiB pieces: the server streams, so its peak RSS growth while moving 1 GiB is
    about what it is for 256 MiB, and both stay under a fixed bound. (Measured after the warm-up:
    5-43 MiB and 13-66 MiB; a bound of one piece would flake.) Each size is moved twice and the
    lower peak counts: a growth with size shows in both, while one transfer in a CI run peaked
    at 137 MiB for 1 GiB (45 MiB for 256 MiB) without anything in our code holding it (gRPC's
    flow-control buffers and the allocator's per-thread arenas come and go). With both cores
    busy the longer transfer's peaks ran higher locally: 100-106 MiB against 18-36 MiB for
    256 MiB. So the spread is 128 MiB: holding the payload, or anything per piece sent, grows
    the 1 GiB peak by hundreds of MiB more than the 256 MiB one."""
    _require_free_space(tmp_path, 4 * GiB)
    bound, spread = 200 * MiB, 128 * MiB
    with (
        ServerProcess(sqlite_url(tmp_path), (tmp_path / "blobs").as_uri(), tmp_path / "log") as s,
        RegistryClient(s.address, timeout=WAIT_S, chunk_size=2 * MiB) as client,
    ):
        client.create_model("m")
        warm = client.create_version("m").version_number
        # Imports, pools, buffers and the allocator's arenas warmed up: the first large round
        # trip leaves ~20 MiB retained by the allocator (measured: 93 MiB idle after 8 MiB,
        # 115 MiB after 256 MiB, then flat at 115-117 MiB after 1 and 2 GiB), which is a step
        # once, not growth with size. Measured from there, the peaks are flat across sizes.
        _round_trip(client, warm, 256 * MiB, seed=1)
        idle = psutil.Process(s.pid).memory_info().rss
        transfers: list[list[Transfer]] = []
        for size in (256 * MiB, 1 * GiB):
            tries = []
            for attempt in range(2):
                version = client.create_version("m").version_number
                sampler = _RssSampler(s.pid)
                sampler.start()
                try:
                    transfer = _round_trip(client, version, size, seed=size // MiB + attempt)
                finally:
                    peak = sampler.stop()
                transfer.peak_rss_growth = peak - idle
                tries.append(transfer)
            transfers.append(tries)
    small, large = (min(tries, key=lambda t: t.peak_rss_growth or 0) for tries in transfers)
    with capsys.disabled():
        print(f"\n[payloads] server idle RSS {idle / MiB:.1f} MiB")
        for t in (t for tries in transfers for t in tries):
            print(f"[payloads] {t.report()}")
    assert small.peak_rss_growth is not None and large.peak_rss_growth is not None
    assert small.peak_rss_growth < bound
    assert large.peak_rss_growth < bound
    assert large.peak_rss_growth <= small.peak_rss_growth + spread
