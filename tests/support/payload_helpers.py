"""Helpers for the payload API suites: deterministic data, raw ``UploadFile`` streams that can
pause or stop mid-way, polling with deadlines, and "nothing became visible" checks."""

from __future__ import annotations

import hashlib
import io
import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import google_crc32c
import grpc
import pytest

from modelregistry.client import NotFoundError, RegistryClient, RegistryError, from_rpc_error
from modelregistry.v1 import payload_pb2 as pl
from modelregistry.v1 import payload_pb2_grpc as pl_grpc
from modelregistry.v1 import resources_pb2 as res

KiB = 1024
MiB = 1024 * KiB
# Must match ``upload_piece_bytes`` of tests/api/conftest.py's ``server_config``.
PIECE = 256 * KiB
MAX_CHUNK = 2 * MiB
WAIT_S = 30.0

T = TypeVar("T")


# -- data ---------------------------------------------------------------------------------------
def data_of(size: int, seed: int = 0) -> bytes:
    """``size`` deterministic pseudo-random bytes (for payloads of a few MiB at most)."""
    return random.Random(seed).randbytes(size)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def crc32c_of(data: bytes) -> int:
    return int(google_crc32c.value(data))


class GeneratedStream(io.RawIOBase):
    """A seekable, read-only stream of ``size`` deterministic bytes, generated block by block
    (never held whole): block ``i`` is a 1 MiB random base block rotated by a per-block amount,
    so every block differs and a misplaced block changes the digest."""

    BLOCK = MiB

    def __init__(self, size: int, seed: int = 0) -> None:
        super().__init__()
        self.size = size
        self._base = random.Random(seed).randbytes(self.BLOCK)
        self._position = 0

    def block(self, index: int) -> bytes:
        shift = (index * 7919 + 13) % self.BLOCK
        data = self._base[shift:] + self._base[:shift]
        end = min(self.BLOCK, self.size - index * self.BLOCK)
        return data if end == self.BLOCK else data[:end]

    def blocks(self) -> Iterator[bytes]:
        for index in range((self.size + self.BLOCK - 1) // self.BLOCK):
            yield self.block(index)

    def sha256(self) -> str:
        digest = hashlib.sha256()
        for block in self.blocks():
            digest.update(block)
        return digest.hexdigest()

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self.size}[whence]
        self._position = max(base + offset, 0)
        return self._position

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        if self._position >= self.size:
            return 0
        index, within = divmod(self._position, self.BLOCK)
        data = self.block(index)[within : within + len(buffer)]
        memoryview(buffer)[: len(data)] = data
        self._position += len(data)
        return len(data)


class HashingSink:
    """A ``BinaryWriter`` that only hashes and counts what it receives."""

    def __init__(self) -> None:
        self.digest = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        self.size += len(data)
        return len(data)

    def hexdigest(self) -> str:
        return self.digest.hexdigest()


# -- polling ------------------------------------------------------------------------------------
def wait_for(
    probe: Callable[[], T | None], what: str, timeout: float = WAIT_S, interval: float = 0.01
) -> T:
    """Poll ``probe`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")
        pause.wait(interval)


def wait_committed(client: RegistryClient, upload_id: str, size: int) -> pl.UploadStatus:
    """Poll GetUploadStatus until exactly ``size`` bytes are committed."""

    def probe() -> pl.UploadStatus | None:
        try:
            status = client.get_upload_status(upload_id)
        except NotFoundError:  # the server has not opened the session yet
            return None
        return status if status.committed_size_bytes == size else None

    return wait_for(probe, f"upload {upload_id} to commit {size} bytes")


# -- raw streams --------------------------------------------------------------------------------
@contextmanager
def raw_stub(address: str, *, small_window: bool = False) -> Iterator[pl_grpc.PayloadServiceStub]:
    """The generated PayloadService stub on a channel of its own (no client-side retries).

    ``small_window`` keeps the channel's HTTP/2 receive window at its initial 64 KiB (no BDP
    probing), so a server cannot push a whole small file to a client that stopped reading.
    """
    options = [("grpc.max_send_message_length", 64 * MiB), ("grpc.enable_retries", 0)]
    if small_window:
        options.append(("grpc.http2.bdp_probe", 0))
    with grpc.insecure_channel(address, options=options) as channel:
        yield pl_grpc.PayloadServiceStub(channel)


def header(
    name: str,
    upload_id: str,
    *,
    size: int | None = None,
    sha256: str = "",
    write_offset: int = 0,
    content_type: str = "",
) -> pl.UploadFileRequest:
    return pl.UploadFileRequest(
        header=pl.UploadHeader(
            name=name,
            upload_id=upload_id,
            size_bytes=size,
            sha256=sha256,
            write_offset=write_offset,
            content_type=content_type,
        )
    )


def chunk(offset: int, data: bytes) -> pl.UploadFileRequest:
    return pl.UploadFileRequest(chunk=pl.UploadChunk(offset=offset, data=data))


def chunks_of(data: bytes, chunk_size: int, start: int = 0) -> Iterator[pl.UploadFileRequest]:
    """Chunk messages for ``data[start:]`` with their offsets."""
    for offset in range(start, len(data), chunk_size):
        yield chunk(offset, data[offset : offset + chunk_size])


def raw_upload(
    stub: pl_grpc.PayloadServiceStub, requests: Iterable[pl.UploadFileRequest]
) -> res.File:
    """One UploadFile call; a failure is raised as the client's typed ``RegistryError``."""
    try:
        return stub.UploadFile(iter(requests), timeout=WAIT_S)
    except grpc.RpcError as e:
        raise from_rpc_error(e) from None


def upload_error(
    stub: pl_grpc.PayloadServiceStub, requests: Iterable[pl.UploadFileRequest]
) -> RegistryError:
    """The error an UploadFile call must fail with."""
    with pytest.raises(RegistryError) as caught:
        raw_upload(stub, requests)
    return caught.value


def full_upload(
    stub: pl_grpc.PayloadServiceStub,
    name: str,
    upload_id: str,
    data: bytes,
    *,
    chunk_size: int = 64 * KiB,
    declare: bool = True,
    content_type: str = "",
) -> res.File:
    """Upload ``data`` whole in one raw stream (size and sha256 declared unless ``declare``)."""
    first = header(
        name,
        upload_id,
        size=len(data) if declare else None,
        sha256=sha256_hex(data) if declare else "",
        content_type=content_type,
    )
    return raw_upload(stub, [first, *chunks_of(data, chunk_size)])


def resume_upload(
    stub: pl_grpc.PayloadServiceStub,
    client: RegistryClient,
    name: str,
    upload_id: str,
    data: bytes,
    *,
    chunk_size: int = 64 * KiB,
) -> tuple[int, res.File]:
    """Resume from the committed size, as the README's protocol says (an upload the server never
    saw starts at 0); retried while the server still finishes the previous stream (ABORTED
    UPLOAD_CONFLICT). Returns (resumed at, file)."""
    deadline = time.monotonic() + WAIT_S
    pause = threading.Event()
    while True:
        try:
            committed = client.get_upload_status(upload_id).committed_size_bytes
        except NotFoundError:
            committed = 0
        first = header(
            name, upload_id, size=len(data), sha256=sha256_hex(data), write_offset=committed
        )
        try:
            return committed, raw_upload(stub, [first, *chunks_of(data, chunk_size, committed)])
        except RegistryError as err:
            busy = err.code is grpc.StatusCode.ABORTED and err.reason == "UPLOAD_CONFLICT"
            if not busy or time.monotonic() > deadline:
                raise
        pause.wait(0.02)


class PausingRequests:
    """A request iterator: the header, then chunks of ``data`` up to ``pause_at`` bytes, then
    it blocks until :meth:`release` — afterwards it stops (``finish=False``) or sends the rest.

    ``paused`` is set once the first ``pause_at`` bytes were handed to gRPC.
    """

    def __init__(
        self,
        first: pl.UploadFileRequest,
        data: bytes,
        pause_at: int,
        *,
        chunk_size: int = 64 * KiB,
        start: int = 0,
    ) -> None:
        self._first = first
        self._data = data
        self._pause_at = pause_at
        self._chunk = chunk_size
        self._start = start
        self.paused = threading.Event()
        self._released = threading.Event()
        self.finish = False

    def release(self, *, finish: bool = False) -> None:
        self.finish = finish
        self._released.set()

    def __iter__(self) -> Iterator[pl.UploadFileRequest]:
        yield self._first
        offset = self._start
        while offset < len(self._data):
            if offset >= self._pause_at and not self._released.is_set():
                self.paused.set()
                self._released.wait(WAIT_S * 4)
                if not self.finish:
                    return
            end = min(offset + self._chunk, len(self._data))
            if offset < self._pause_at < end:
                end = self._pause_at
            yield chunk(offset, self._data[offset:end])
            offset = end
        self.paused.set()


class SteppedRequests:
    """A request iterator: the header and ``data[:pause_at]``, then it blocks until ``go``; then
    one chunk of ``step`` bytes, and it blocks again until ``done``, then stops.

    It tells whether the server ends a call at the next message rather than at the next piece:
    with ``step`` smaller than a piece, only such a server ends the call while it blocks.
    """

    def __init__(self, first: pl.UploadFileRequest, data: bytes, pause_at: int, step: int) -> None:
        self._first = first
        self._data = data
        self._pause_at = pause_at
        self._step = step
        self.paused = threading.Event()
        self.go = threading.Event()
        self.done = threading.Event()

    def __iter__(self) -> Iterator[pl.UploadFileRequest]:
        yield self._first
        yield from chunks_of(self._data[: self._pause_at], 64 * KiB)
        self.paused.set()
        self.go.wait(WAIT_S * 4)
        end = self._pause_at + self._step
        yield chunk(self._pause_at, self._data[self._pause_at : end])
        self.done.wait(WAIT_S * 4)


# -- visibility ---------------------------------------------------------------------------------
def file_name(model: str, version: int | str, file_id: str = "payload") -> str:
    return f"models/{model}/versions/{version}/files/{file_id}"


def assert_nothing_visible(
    client: RegistryClient, model: str, version: int, *file_ids: str
) -> None:
    """No file of the version is visible by any read path, and its counters are zero."""
    for file_id in file_ids or ("payload",):
        with pytest.raises(NotFoundError) as caught:
            client.get_file(model, version, file_id)
        assert caught.value.reason == "FILE_NOT_FOUND"
        with pytest.raises(NotFoundError):
            b"".join(client.iter_file(model, version, file_id=file_id))
    assert list(client.list_files(model, version)) == []
    v = client.get_version(model, version)
    assert (v.file_count, v.total_size_bytes) == (0, 0)


def blob_root(blob_url: str) -> Path:
    """The directory of a ``file://`` blob store URL."""
    scheme, _, location = blob_url.partition("://")
    assert scheme == "file", blob_url
    return Path(location)


def stored_blobs(root: Path) -> list[Path]:
    """Blob files of a local store (``sha256/<xx>/<hex>``)."""
    return sorted(p for p in (root / "sha256").rglob("*") if p.is_file())


def stored_uploads(root: Path) -> list[Path]:
    """Upload files of a local store (``uploads/<id>``)."""
    return sorted(p for p in (root / "uploads").iterdir() if p.is_file())
