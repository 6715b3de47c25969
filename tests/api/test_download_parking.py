"""Downloads whose client stops reading cost little: after a second without progress the
server lets go of the blocks it read (the stream is parked) and reopens the blob where it
stopped once the client reads again. Every integrity guarantee holds across the pause: the
resumed bytes are identical and checked, a block damaged meanwhile is never sent, and a
whole-file read still ends with its sha256 check."""

from __future__ import annotations

import gc
import io
import threading
import time
import tracemalloc
from typing import Any

import grpc
import pytest

from modelregistry.client import RegistryClient, from_rpc_error
from modelregistry.v1 import payload_pb2 as pl
from modelregistry_server.api import heap
from modelregistry_server.app import RegistryServer
from modelregistry_server.domain.integrity import CheckedRead
from tests.api.test_serving_pressure import SMALL_WINDOW, AioClient
from tests.support.blob_fixtures import BlobBackdoor, backdoor_for
from tests.support.payload_helpers import (
    WAIT_S,
    KiB,
    MiB,
    data_of,
    file_name,
    raw_stub,
    sha256_hex,
)

SIZE = 5 * MiB + 300 * KiB  # six 1 MiB blocks, the last one partial
DATA = data_of(SIZE, seed=31)
KEY = f"sha256/{sha256_hex(DATA)}"
PAUSE_S = 2.5  # longer than the second after which a stalled download is parked


@pytest.fixture
def parks(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The position of every checked read the server parks."""
    seen: list[int] = []
    original = CheckedRead.park

    def park(self: CheckedRead) -> bool:
        seen.append(self.position)
        return original(self)

    monkeypatch.setattr(CheckedRead, "park", park)
    return seen


@pytest.fixture
def v1(client: RegistryClient) -> int:
    client.create_model("m")
    number = int(client.create_version("m").version_number)
    client.upload_file("m", number, io.BytesIO(DATA))
    return number


def _helpers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "checked-read"]


def paused_download(
    address: str, offset: int = 0, limit: int = 0, *, after: int, during: Any = None
) -> tuple[bytes, str]:
    """Read until more than ``after`` bytes arrived, stop reading for PAUSE_S (then call
    ``during``), read the rest: the bytes, and the reason the stream ended with ("" if OK)."""
    got = bytearray()
    with raw_stub(address, small_window=True) as stub:
        request = pl.DownloadFileRequest(name=file_name("m", 1), offset=offset, limit=limit)
        call = stub.DownloadFile(request, timeout=WAIT_S)
        paused = False
        try:
            for message in call:
                assert message.offset == offset + len(got)
                got += message.data
                if not paused and len(got) > after:
                    paused = True
                    time.sleep(PAUSE_S)
                    if during is not None:
                        during()
        except grpc.RpcError as e:
            err = from_rpc_error(e)
            assert err.code is grpc.StatusCode.DATA_LOSS, err
            return bytes(got), str(err.reason)
    return bytes(got), ""


def test_a_paused_download_is_parked_and_resumes_with_the_same_bytes(
    server: RegistryServer, v1: int, parks: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    trims: list[int] = []
    monkeypatch.setattr(heap, "trim_heap", lambda: trims.append(1))
    got, reason = paused_download(server.address, after=2 * MiB + 10 * KiB)
    assert (got, reason) == (DATA, "")
    assert parks and all(2 * MiB < p < SIZE for p in parks)  # parked mid-file, then resumed
    assert trims  # after the park, the freed blocks were handed back to the system

    parks.clear()
    offset, limit = MiB + 123, 3 * MiB + 7
    got, reason = paused_download(server.address, offset, limit, after=MiB + 5 * KiB)
    assert (got, reason) == (DATA[offset : offset + limit], "")
    assert parks


def test_a_block_damaged_while_parked_is_never_sent(
    server: RegistryServer, v1: int, parks: list[int], request: pytest.FixtureRequest
) -> None:
    backdoor: BlobBackdoor = backdoor_for(server.config.blob_url, request)
    got, reason = paused_download(
        server.address, after=MiB, during=lambda: backdoor.flip(KEY, 4 * MiB + 99)
    )
    assert parks
    assert reason == "BLOB_CORRUPTED"
    assert got == DATA[: 4 * MiB]  # not one byte of the damaged block


def test_a_parked_whole_read_keeps_its_sha256_check(
    server: RegistryServer, v1: int, parks: list[int], request: pytest.FixtureRequest
) -> None:
    """Without block sums only the running sha256 protects a whole read: it must survive
    the pause, neither failing a good file nor passing a damaged one."""

    def drop_sums() -> None:
        with server.store.transaction():
            server.store.backend.database.execute_sql(  # type: ignore[attr-defined]
                "UPDATE blobs SET block_size = NULL, block_crc32c = NULL"
            )

    drop_sums()
    assert paused_download(server.address, after=2 * MiB) == (DATA, "")
    assert parks

    parks.clear()
    drop_sums()
    backdoor: BlobBackdoor = backdoor_for(server.config.blob_url, request)
    got, reason = paused_download(
        server.address, after=MiB, during=lambda: backdoor.flip(KEY, 3 * MiB + 5)
    )
    assert parks
    assert reason == "BLOB_CORRUPTED"
    # Without block sums the damaged byte itself goes out; the last block is held back.
    assert len(got) == 5 * MiB and got[: 3 * MiB] == DATA[: 3 * MiB]


def _traced() -> int:
    gc.collect()
    return tracemalloc.get_traced_memory()[0]


# Larger than any window a client's transport takes for a stream its application does not
# read: a default connection's BDP probing grew it past a 5 MiB file under load, and that
# download finished instead of waiting.
UNREAD_SIZE = 48 * MiB


def test_downloads_nobody_reads_hold_little_memory(
    server: RegistryServer, client: RegistryClient, v1: int
) -> None:
    """20 downloads that read nothing, on default (BDP-probing) and 64 KiB-window
    connections: once parked, each holds its waiting message and call state, not blocks."""
    number = int(client.create_version("m").version_number)
    client.upload_file("m", number, io.BytesIO(data_of(UNREAD_SIZE, seed=32)))
    streams = 20
    holders = [AioClient(server.address, 2), AioClient(server.address, options=SMALL_WINDOW)]
    tracemalloc.start()
    try:
        before = _traced()

        async def never_read(holder: AioClient, i: int) -> Any:
            request = pl.DownloadFileRequest(name=file_name("m", number))
            call = holder.stub(i).DownloadFile(request)
            await call.initial_metadata()
            return call

        for i in range(streams // 2):
            for holder in holders:
                holder.run(never_read(holder, i))
        deadline = time.monotonic() + WAIT_S
        per_stream = float("inf")
        while time.monotonic() < deadline:
            time.sleep(0.5)
            per_stream = (_traced() - before) / streams
            if per_stream < 256 * KiB and not _helpers():
                break
        assert server.interceptor.open_streams == streams
        assert per_stream < 256 * KiB, f"{per_stream / KiB:.0f} KiB per unread download"
        assert not _helpers()
    finally:
        tracemalloc.stop()
        for holder in holders:
            holder.close()
