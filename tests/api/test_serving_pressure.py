"""Serving under pressure: idle, slow and stuck streams, limits, and deadlines.

Every test is bounded in count and time and asserts outcomes, not speed (the latency and
memory figures are measured by ``make bench``, scenario P8).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import threading
import time
import uuid
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import grpc
import grpc.aio
import pytest
from google.rpc import error_details_pb2, status_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

from modelregistry.client import RegistryClient, RegistryError, channel_options
from modelregistry.v1 import payload_pb2 as pl
from modelregistry.v1 import payload_pb2_grpc as pl_grpc
from modelregistry_server.api.authentication import Authentication, Credentials
from modelregistry_server.app import RegistryServer, build_server
from modelregistry_server.config import Config
from modelregistry_server.domain.identity import Caller, Permission
from tests.support.metadata_fixtures import sqlite_url

KiB = 1024
MiB = 1024 * KiB
T = TypeVar("T")
# A 64 KiB HTTP/2 window (no BDP growth), so a client that stops reading stalls the server soon.
SMALL_WINDOW = [("grpc.http2.bdp_probe", 0), ("grpc.use_local_subchannel_pool", 1)]


def reason_of(error: Any) -> str:
    """The ErrorInfo reason of a failed call (sync or aio)."""
    for key, value in error.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            status = status_pb2.Status.FromString(value)
            info = error_details_pb2.ErrorInfo()
            for detail in status.details:
                if detail.Unpack(info):
                    return str(info.reason)
    return ""


class AioClient:
    """grpc.aio channels on an event loop of their own thread, for holding many streams."""

    def __init__(self, target: str, connections: int = 1, options: Any = ()) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        opts = [*channel_options(retries=0), ("grpc.use_local_subchannel_pool", 1), *options]

        async def channels() -> list[grpc.aio.Channel]:
            return [grpc.aio.insecure_channel(target, options=opts) for _ in range(connections)]

        self.channels = self.run(channels())

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 60) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stub(self, i: int = 0) -> pl_grpc.PayloadServiceStub:
        return pl_grpc.PayloadServiceStub(self.channels[i % len(self.channels)])

    def close(self) -> None:
        async def close() -> None:
            for channel in self.channels:
                await channel.close(grace=None)

        self.run(close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


def header(
    name: str, upload_id: str | None = None, size: int = MiB, sha256: str = ""
) -> pl.UploadFileRequest:
    return pl.UploadFileRequest(
        header=pl.UploadHeader(
            name=name, upload_id=upload_id or uuid.uuid4().hex, size_bytes=size, sha256=sha256
        )
    )


def wait_until(condition: Callable[[], bool], timeout: float = 20) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator[Callable[..., RegistryServer]]:
    started: list[RegistryServer] = []

    def make(**overrides: Any) -> RegistryServer:
        config = Config(
            listen="127.0.0.1:0",
            database_url=sqlite_url(tmp_path),
            blob_url=f"file://{tmp_path / 'blobs'}",
            upload_piece_bytes=256 * KiB,
            download_chunk_bytes=64 * KiB,
            maintenance_interval_seconds=0,
            shutdown_grace_seconds=0,
        )
        service = build_server(replace(config, **overrides))
        service.start()
        started.append(service)
        return service

    yield make
    for service in started:
        service.stop(0)


def _version_with_file(client: RegistryClient, size: int) -> tuple[str, str]:
    """(a sealed version's file name, a DRAFT version's name) of model ``m``."""
    client.create_model("m")
    sealed = client.create_version("m")
    client.upload_file("m", sealed.version_number, io.BytesIO(b"\x07" * size))
    client.seal_version("m", sealed.version_number)
    draft = client.create_version("m")
    return f"{sealed.name}/files/payload", draft.name


def test_a_thousand_idle_streams_leave_unary_calls_and_health_answering(
    make_server: Callable[..., RegistryServer],
) -> None:
    server = make_server(max_streams=1100, max_download_streams=600)
    with RegistryClient(server.address, timeout=30) as client:
        download, draft = _version_with_file(client, 2 * MiB)
        holder = AioClient(server.address, connections=10, options=SMALL_WINDOW)
        try:

            async def open_all() -> list[Any]:
                async def upload(i: int) -> Any:
                    call = holder.stub(i).UploadFile()
                    await call.write(header(f"{draft}/files/idle-{i}"))
                    return call

                async def unread_download(i: int) -> Any:
                    call = holder.stub(i).DownloadFile(pl.DownloadFileRequest(name=download))
                    await call.initial_metadata()
                    return call

                opened = await asyncio.gather(*(upload(i) for i in range(500)))
                opened += await asyncio.gather(*(unread_download(i) for i in range(500)))
                return list(opened)

            calls = holder.run(open_all(), timeout=120)
            assert wait_until(lambda: server.interceptor.open_streams == 1000)
            channel = grpc.insecure_channel(server.address)
            health = health_pb2_grpc.HealthStub(channel)
            for _ in range(20):
                assert client.get_model("m").name == "models/m"
                answer = health.Check(health_pb2.HealthCheckRequest(), timeout=10)
                assert answer.status == health_pb2.HealthCheckResponse.SERVING
            assert not any(call.done() for call in calls)  # all still open
            channel.close()

            async def cancel_all() -> None:
                for call in calls:
                    call.cancel()

            holder.run(cancel_all())
            assert wait_until(lambda: server.interceptor.open_streams == 0)
        finally:
            holder.close()


def test_a_stalled_upload_is_ended_and_stays_resumable(
    make_server: Callable[..., RegistryServer],
) -> None:
    server = make_server(stream_idle_timeout_seconds=0.5)
    data = bytes(range(256)) * 4 * KiB  # 1 MiB: four 256 KiB pieces
    with RegistryClient(server.address, timeout=30) as client:
        client.create_model("m")
        version = client.create_version("m")
        name = f"{version.name}/files/payload"
        channel = grpc.insecure_channel(server.address)
        stub = pl_grpc.PayloadServiceStub(channel)
        stalled = threading.Event()

        def slowloris() -> Iterator[pl.UploadFileRequest]:
            yield header(name, "slow-1", len(data), hashlib.sha256(data).hexdigest())
            yield pl.UploadFileRequest(chunk=pl.UploadChunk(offset=0, data=data[: 512 * KiB]))
            stalled.wait(30)  # then nothing, until the server gives up

        with pytest.raises(grpc.RpcError) as info:
            stub.UploadFile(slowloris(), timeout=30)
        stalled.set()
        channel.close()
        assert info.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
        assert reason_of(info.value) == "STREAM_IDLE_TIMEOUT"
        assert wait_until(lambda: server.interceptor.open_streams == 0)
        status = client.get_upload_status("slow-1")
        assert status.committed_size_bytes == 512 * KiB  # the whole pieces received stay
        done = client.upload_file("m", version.version_number, io.BytesIO(data), upload_id="slow-1")
        assert done.size_bytes == len(data)
        assert b"".join(client.iter_file("m", version.version_number)) == data


def test_a_download_that_stops_reading_is_ended(
    make_server: Callable[..., RegistryServer],
) -> None:
    server = make_server(stream_idle_timeout_seconds=0.5)
    with RegistryClient(server.address, timeout=30) as client:
        download, _ = _version_with_file(client, 4 * MiB)
    reader = AioClient(server.address, options=SMALL_WINDOW)
    try:

        async def read_one_then_stall() -> tuple[int, Any]:
            call = reader.stub().DownloadFile(pl.DownloadFileRequest(name=download))
            first = await call.read()
            await asyncio.sleep(2.0)  # stop reading; the window fills, the server stalls
            received = len(first.data)
            try:
                while (message := await call.read()) is not grpc.aio.EOF:
                    received += len(message.data)
            except grpc.aio.AioRpcError as exc:
                return received, exc
            return received, None

        received, error = reader.run(read_one_then_stall())
        assert error is not None, "the whole file arrived: the stream was never ended"
        assert error.code() is grpc.StatusCode.DEADLINE_EXCEEDED
        assert reason_of(error) == "STREAM_IDLE_TIMEOUT"
        assert received < 4 * MiB
        assert wait_until(lambda: server.interceptor.open_streams == 0)
    finally:
        reader.close()


def test_a_client_that_never_reads_a_download_is_ended(
    make_server: Callable[..., RegistryServer],
) -> None:
    server = make_server(stream_idle_timeout_seconds=0.5)
    with RegistryClient(server.address, timeout=30) as client:
        download, _ = _version_with_file(client, 4 * MiB)
        reader = AioClient(server.address, options=SMALL_WINDOW)
        try:

            async def never_read() -> Any:
                call = reader.stub().DownloadFile(pl.DownloadFileRequest(name=download))
                await call.initial_metadata()
                return call

            call = reader.run(never_read())
            assert wait_until(lambda: server.interceptor.open_streams == 1)
            assert wait_until(lambda: server.interceptor.open_streams == 0)  # ended, not held
            assert client.get_model("m").name == "models/m"
            reader.run(asyncio.sleep(0))
            call.cancel()
        finally:
            reader.close()


def test_streams_beyond_the_limit_are_refused_and_accepted_again_after(
    make_server: Callable[..., RegistryServer],
) -> None:
    server = make_server(max_streams=3)
    with RegistryClient(server.address, timeout=30) as client:
        client.create_model("m")
        draft = client.create_version("m").name
        holder = AioClient(server.address)
        try:

            async def open_upload(i: int) -> Any:
                call = holder.stub().UploadFile()
                await call.write(header(f"{draft}/files/f{i}"))
                return call

            calls = [holder.run(open_upload(i)) for i in range(3)]
            assert wait_until(lambda: server.interceptor.open_streams == 3)

            async def refused_upload() -> Any:
                call = holder.stub().UploadFile()
                with contextlib.suppress(grpc.aio.AioRpcError):  # the server may end it first
                    await call.write(header(f"{draft}/files/f3"))
                return await call

            with pytest.raises(grpc.aio.AioRpcError) as info:
                holder.run(refused_upload())
            assert info.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
            assert reason_of(info.value) == "TOO_MANY_STREAMS"
            with pytest.raises(RegistryError) as refused:  # downloads count too
                b"".join(RegistryClient(server.address, retries=0).iter_file("m", 1))
            assert refused.value.code is grpc.StatusCode.RESOURCE_EXHAUSTED
            assert refused.value.reason == "TOO_MANY_STREAMS"
            assert client.get_model("m").name == "models/m"  # unary calls are not streams

            async def cancel(call: Any) -> None:
                call.cancel()

            holder.run(cancel(calls[0]))
            assert wait_until(lambda: server.interceptor.open_streams == 2)
            fresh = client.upload_file("m", 1, io.BytesIO(b"after"), file_id="after")
            assert fresh.size_bytes == 5
        finally:
            holder.close()


def test_downloads_beyond_their_own_limit_are_refused(
    make_server: Callable[..., RegistryServer],
) -> None:
    server = make_server(max_download_streams=1)
    with RegistryClient(server.address, timeout=30, retries=0) as client:
        download, _ = _version_with_file(client, 4 * MiB)
        reader = AioClient(server.address, options=SMALL_WINDOW)
        try:

            async def never_read() -> Any:
                call = reader.stub().DownloadFile(pl.DownloadFileRequest(name=download))
                await call.initial_metadata()
                return call

            held = reader.run(never_read())
            assert wait_until(lambda: server.interceptor.open_streams == 1)
            with pytest.raises(RegistryError) as refused:
                b"".join(client.iter_file("m", 1))
            assert refused.value.code is grpc.StatusCode.RESOURCE_EXHAUSTED
            assert refused.value.reason == "TOO_MANY_STREAMS"
            assert client.upload_file("m", 2, io.BytesIO(b"up"), file_id="up").size_bytes == 2

            async def cancel() -> None:
                held.cancel()

            reader.run(cancel())
            assert wait_until(lambda: server.interceptor.open_streams == 0)
            assert len(b"".join(client.iter_file("m", 1))) == 4 * MiB  # accepted again
        finally:
            reader.close()


def test_a_call_past_its_deadline_does_no_more_database_work(
    make_server: Callable[..., RegistryServer],
) -> None:
    server = make_server()
    writers = server.store.backend.writers  # type: ignore[attr-defined]
    with RegistryClient(server.address, timeout=30) as client:
        client.create_model("m")
        assert writers.acquire(5)  # another writer holds SQLite's write lock
        try:
            with pytest.raises(RegistryError) as info:
                RegistryClient(server.address, timeout=0.3, retries=0).create_version("m")
            assert info.value.code is grpc.StatusCode.DEADLINE_EXCEEDED
            time.sleep(0.5)  # the queued write would have started by now
        finally:
            writers.release()
        time.sleep(0.3)
        assert [v.version_number for v in client.list_versions("m")] == []


def test_an_upload_past_its_deadline_writes_no_further_piece(
    make_server: Callable[..., RegistryServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    server = make_server()
    writes: list[int] = []
    original = server.blobs.write_upload

    def slow_write(upload_id: str, offset: int, chunks: Any) -> int:
        writes.append(offset)
        n = original(upload_id, offset, chunks)
        time.sleep(0.3)
        return n

    monkeypatch.setattr(server.blobs, "write_upload", slow_write)
    data = b"\x05" * (2 * MiB)  # eight 256 KiB pieces: about 2.4 s of piece writes
    with RegistryClient(server.address, timeout=30) as client:
        client.create_model("m")
        version = client.create_version("m")
        channel = grpc.insecure_channel(server.address)
        stub = pl_grpc.PayloadServiceStub(channel)

        def requests() -> Iterator[pl.UploadFileRequest]:
            yield header(f"{version.name}/files/payload", "late-1", len(data))
            for offset in range(0, len(data), 256 * KiB):
                yield pl.UploadFileRequest(
                    chunk=pl.UploadChunk(offset=offset, data=data[offset : offset + 256 * KiB])
                )

        with pytest.raises(grpc.RpcError) as info:
            stub.UploadFile(requests(), timeout=0.8)
        channel.close()
        assert info.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
        assert wait_until(lambda: server.interceptor.open_streams == 0)
        written = len(writes)
        time.sleep(1.0)
        assert len(writes) == written < 8  # stopped at the deadline, nothing after
        status = client.get_upload_status("late-1")
        assert status.committed_size_bytes <= written * 256 * KiB  # resumable from there


def test_a_client_pinging_too_often_loses_its_connection_and_others_carry_on(
    make_server: Callable[..., RegistryServer],
) -> None:
    server = make_server()
    pinger = AioClient(
        server.address,
        options=[
            ("grpc.keepalive_time_ms", 100),
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.http2.max_pings_without_data", 0),
        ],
    )
    try:
        with RegistryClient(server.address, timeout=30) as client:
            client.create_model("m")
            draft = client.create_version("m").name

            async def idle_upload_outcome() -> grpc.StatusCode:
                call = pinger.stub().UploadFile()
                await call.write(header(f"{draft}/files/pinged"))
                try:
                    await asyncio.wait_for(call, 20)
                except grpc.aio.AioRpcError as exc:
                    return exc.code()
                return grpc.StatusCode.OK

            # Pings every 100 ms while no data flows: the server closes the connection
            # (GOAWAY ENHANCE_YOUR_CALM) long before the stream's idle timeout.
            assert pinger.run(idle_upload_outcome()) is grpc.StatusCode.UNAVAILABLE
            assert client.get_model("m").name == "models/m"
    finally:
        pinger.close()


class _TwoPeople:
    """A fake authenticator: the bearer tokens ``alice`` and ``bob`` are two readers."""

    def authenticate(self, credentials: Credentials) -> Caller | None:
        if credentials.bearer not in ("alice", "bob"):
            return None
        return Caller("default", credentials.bearer, frozenset({Permission.READ}))


def _bearer(token: str) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {token}")]


def test_streams_per_principal_are_limited_and_free_again_after(
    make_server: Callable[..., RegistryServer],
) -> None:
    server = make_server(max_streams_per_principal=2)
    with RegistryClient(server.address, timeout=30) as client:
        download, _ = _version_with_file(client, 4 * MiB)
    holder = AioClient(server.address, options=SMALL_WINDOW)
    try:

        async def never_read(token: str | None) -> Any:
            metadata = None if token is None else _bearer(token)
            call = holder.stub().DownloadFile(
                pl.DownloadFileRequest(name=download), metadata=metadata
            )
            await call.initial_metadata()
            return call

        async def cancel(calls: list[Any]) -> None:
            for call in calls:
                call.cancel()

        # Authentication off: every caller is anonymous, and only the server's limits count.
        anonymous = [holder.run(never_read(None)) for _ in range(3)]
        assert wait_until(lambda: server.interceptor.open_streams == 3)
        holder.run(cancel(anonymous))
        assert wait_until(lambda: server.interceptor.open_streams == 0)

        server.interceptor.use_authentication(Authentication([_TwoPeople()]))
        alices = [holder.run(never_read("alice")) for _ in range(2)]
        assert wait_until(lambda: server.interceptor.open_streams == 2)
        alice = RegistryClient(server.address, metadata=_bearer("alice"), retries=0)
        bob = RegistryClient(server.address, metadata=_bearer("bob"), retries=0)
        with pytest.raises(RegistryError) as refused:
            b"".join(alice.iter_file("m", 1))
        assert refused.value.code is grpc.StatusCode.RESOURCE_EXHAUSTED
        assert refused.value.reason == "TOO_MANY_STREAMS"
        assert refused.value.metadata == {"limit": "2", "kind": "streams per principal"}
        assert len(b"".join(bob.iter_file("m", 1))) == 4 * MiB  # others are not affected
        assert alice.get_model("m").name == "models/m"  # unary calls are not streams

        holder.run(cancel(alices[:1]))
        assert wait_until(lambda: server.interceptor.open_streams == 1)
        assert len(b"".join(alice.iter_file("m", 1))) == 4 * MiB  # accepted again
        alice.close()
        bob.close()
    finally:
        holder.close()
