"""Transfer drivers: the registry's UploadFile/DownloadFile through the generated stubs, the
same bytes through the no-op server, and the disk write baseline.

Both gRPC sides use the same channel options, payload chunks and client code path, so the
ratio isolates what the registry server adds on top of moving the bytes.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc

from modelregistry.client import channel_options
from modelregistry.v1 import payload_pb2 as pl
from modelregistry.v1 import payload_pb2_grpc as pl_grpc

from . import rawserver
from .payload import Payload


@dataclass(frozen=True)
class Transfer:
    """One timed transfer."""

    nbytes: int
    seconds: float
    messages: int = 0

    @property
    def mb_per_s(self) -> float:
        """Throughput in MB/s (10^6 bytes per second)."""
        return self.nbytes / self.seconds / 1e6


def open_channel(address: str, *, own_connection: bool = False) -> grpc.Channel:
    """A channel configured as the registry client configures its own; ``own_connection``:
    not shared with other channels to ``address`` (gRPC's global subchannel pool otherwise
    gives every such channel the same TCP connection, so the same worker)."""
    options = channel_options()
    if own_connection:
        options = [*options, ("grpc.use_local_subchannel_pool", 1)]
    return grpc.insecure_channel(address, options=options)


def upload_registry(
    channel: grpc.Channel, file_name: str, payload: Payload, chunk: int
) -> Transfer:
    """UploadFile of ``payload`` to ``file_name`` (a DRAFT version's file), declaring size and
    sha256 so the server verifies the whole file; timed from first message to the reply."""
    stub = pl_grpc.PayloadServiceStub(channel)
    header = pl.UploadHeader(
        name=file_name, upload_id=uuid.uuid4().hex, size_bytes=payload.size, sha256=payload.sha256
    )
    count = 0

    def requests() -> Iterator[pl.UploadFileRequest]:
        nonlocal count
        yield pl.UploadFileRequest(header=header)
        offset = 0
        for data in payload.chunks(chunk):
            yield pl.UploadFileRequest(chunk=pl.UploadChunk(offset=offset, data=data))
            offset += len(data)
            count += 1

    start = time.perf_counter()
    stored = stub.UploadFile(requests())
    seconds = time.perf_counter() - start
    if stored.size_bytes != payload.size or stored.sha256 != payload.sha256:
        raise RuntimeError(f"upload stored {stored.size_bytes} bytes, sha256 {stored.sha256}")
    return Transfer(payload.size, seconds, count)


def download_registry(channel: grpc.Channel, file_name: str, expected: int) -> Transfer:
    """DownloadFile of a whole file; the client only counts the bytes."""
    stub = pl_grpc.PayloadServiceStub(channel)
    received = 0
    count = 0
    start = time.perf_counter()
    for message in stub.DownloadFile(pl.DownloadFileRequest(name=file_name)):
        received += len(message.data)
        count += 1
    seconds = time.perf_counter() - start
    if received != expected:
        raise RuntimeError(f"download got {received} bytes, expected {expected}")
    return Transfer(received, seconds, count)


def upload_raw(channel: grpc.Channel, payload: Payload, chunk: int) -> Transfer:
    """The same chunks as raw ``bytes`` messages into the no-op server's client stream."""
    call = channel.stream_unary(rawserver.UPLOAD, None, None)
    count = 0

    def requests() -> Iterator[bytes]:
        nonlocal count
        for data in payload.chunks(chunk):
            count += 1
            yield data

    start = time.perf_counter()
    answer = call(requests())
    seconds = time.perf_counter() - start
    if int(answer) != payload.size:
        raise RuntimeError(f"no-op server counted {answer!r} bytes, sent {payload.size}")
    return Transfer(payload.size, seconds, count)


def download_raw(channel: grpc.Channel, size: int, chunk: int) -> Transfer:
    """``size`` bytes in ``chunk``-sized messages from the no-op server's server stream."""
    call = channel.unary_stream(rawserver.DOWNLOAD, None, None)
    received = 0
    count = 0
    start = time.perf_counter()
    for message in call(f"{size} {chunk}".encode()):
        received += len(message)
        count += 1
    seconds = time.perf_counter() - start
    if received != size:
        raise RuntimeError(f"no-op download got {received} bytes, expected {size}")
    return Transfer(received, seconds, count)


def disk_write(directory: Path, payload: Payload, chunk: int, piece_bytes: int) -> Transfer:
    """Write the payload to a new file in ``directory`` (the blob store's filesystem) and
    fdatasync every ``piece_bytes`` and at the end — the durability the blob store provides."""
    path = directory / f"disk-baseline-{uuid.uuid4().hex}"
    count = 0
    start = time.perf_counter()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        unsynced = 0
        for data in payload.chunks(chunk):
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            count += 1
            unsynced += len(data)
            if unsynced >= piece_bytes:
                os.fdatasync(fd)
                unsynced = 0
        os.fdatasync(fd)
    finally:
        os.close(fd)
    seconds = time.perf_counter() - start
    path.unlink()
    return Transfer(payload.size, seconds, count)
