"""Integrity on read through the API, on SQLite and PostgreSQL: bytes damaged on disk are never
served (whole or ranged, by the shipped client or a raw stub), VerifyFile and the scrub report
what they find and the file shows it, re-uploading repairs, blobs stored before block sums
still serve, and GC reconciles the blob store against the metadata."""

from __future__ import annotations

import dataclasses
import io
import logging
import threading
import time
from collections.abc import Iterator

import grpc
import pytest

from modelregistry.client import (
    DataLossError,
    InvalidArgumentError,
    NotFoundError,
    RegistryClient,
    from_rpc_error,
)
from modelregistry.v1 import payload_pb2 as pl
from modelregistry.v1 import resources_pb2 as res
from modelregistry_server.app import RegistryServer
from modelregistry_server.config import Config
from modelregistry_server.domain.blob_names import storage_id, upload_of_staging
from tests.support.blob_fixtures import BlobBackdoor, backdoor_for
from tests.support.payload_helpers import (
    PIECE,
    WAIT_S,
    KiB,
    MiB,
    PausingRequests,
    data_of,
    file_name,
    header,
    raw_stub,
    sha256_hex,
    wait_committed,
)
from tests.support.servers import serving

SIZE = 3 * MiB + 100 * KiB  # four 1 MiB blocks, the last one partial
BAD = 1  # a middle block
DATA = data_of(SIZE, seed=11)
KEY = f"sha256/{sha256_hex(DATA)}"
VERIFIED = res.INTEGRITY_STATE_VERIFIED
UNVERIFIED = res.INTEGRITY_STATE_UNVERIFIED
CORRUPTED = res.INTEGRITY_STATE_CORRUPTED
MISSING = res.INTEGRITY_STATE_MISSING


@pytest.fixture
def backdoor(server: RegistryServer, request: pytest.FixtureRequest) -> BlobBackdoor:
    return backdoor_for(server.config.blob_url, request)


@pytest.fixture
def v1(client: RegistryClient) -> int:
    """Model ``m``, version 1 holding DATA as ``payload`` and as ``copy`` (one blob)."""
    client.create_model("m")
    number = int(client.create_version("m").version_number)
    client.upload_file("m", number, io.BytesIO(DATA))
    client.upload_file("m", number, io.BytesIO(DATA), file_id="copy")
    return number


def raw_download(address: str, name: str, offset: int = 0, limit: int = 0) -> tuple[bytes, str]:
    """What a client without verification of its own (grpcurl, another language) receives:
    the bytes, and the reason the stream ended with ("" if OK)."""
    got = bytearray()
    with raw_stub(address) as stub:
        request = pl.DownloadFileRequest(name=name, offset=offset, limit=limit)
        try:
            for message in stub.DownloadFile(request, timeout=WAIT_S):
                assert message.offset == offset + len(got)
                got += message.data
        except grpc.RpcError as e:
            err = from_rpc_error(e)
            assert err.code is grpc.StatusCode.DATA_LOSS, err
            return bytes(got), str(err.reason)
    return bytes(got), ""


def download(client: RegistryClient, file_id: str = "payload", **kwargs: int) -> bytes:
    return b"".join(client.iter_file("m", 1, file_id=file_id, **kwargs))


def blob_sql(server: RegistryServer, sql: str) -> None:
    """Change the server's blob rows behind its back (as an older release left them)."""
    with server.store.transaction():
        server.store.backend.database.execute_sql(sql)


# -- reads never serve damaged bytes ------------------------------------------------------------
def test_a_corrupted_middle_block_is_never_sent(
    server: RegistryServer, client: RegistryClient, backdoor: BlobBackdoor, v1: int
) -> None:
    backdoor.flip(KEY, BAD * MiB + 4321)
    name = file_name("m", v1)

    got, reason = raw_download(server.address, name)
    assert reason == "BLOB_CORRUPTED"
    assert got == DATA[: BAD * MiB]  # not one byte of the bad block
    got, reason = raw_download(server.address, name, offset=MiB - 10, limit=20)
    assert (got, reason) == (DATA[MiB - 10 : MiB], "BLOB_CORRUPTED")
    got, reason = raw_download(server.address, name, offset=BAD * MiB + 5000, limit=1)
    assert (got, reason) == (b"", "BLOB_CORRUPTED")
    for offset, limit in [(0, MiB), (2 * MiB, 0), (2 * MiB + 7, 1000), (10, MiB - 20)]:
        assert raw_download(server.address, name, offset, limit) == (
            DATA[offset : offset + limit if limit else SIZE],
            "",
        )

    with pytest.raises(DataLossError) as caught:
        download(client)
    assert caught.value.reason == "BLOB_CORRUPTED"
    with pytest.raises(DataLossError):
        download(client, file_id="copy")  # the same stored bytes
    assert download(client, offset=2 * MiB) == DATA[2 * MiB :]
    # The failure is recorded: both files show it.
    for file_id in ("payload", "copy"):
        assert client.get_file("m", v1, file_id).integrity == CORRUPTED
    assert {f.integrity for f in client.list_files("m", v1)} == {CORRUPTED}


def test_truncated_and_missing_blobs_are_blob_missing(
    server: RegistryServer, client: RegistryClient, backdoor: BlobBackdoor, v1: int
) -> None:
    name = file_name("m", v1)
    backdoor.write(KEY, DATA[: 2 * MiB + 1])
    got, reason = raw_download(server.address, name)
    assert (got, reason) == (DATA[: 2 * MiB], "BLOB_MISSING")
    assert raw_download(server.address, name, limit=MiB) == (DATA[:MiB], "")
    assert client.get_file("m", v1).integrity == MISSING

    backdoor.remove(KEY)
    assert raw_download(server.address, name, offset=5, limit=5) == (b"", "BLOB_MISSING")
    with pytest.raises(DataLossError) as caught:
        download(client)
    assert caught.value.reason == "BLOB_MISSING"


# -- VerifyFile, the scrub and the file's state -------------------------------------------------
def test_verify_file_reports_and_the_state_stays_queryable(
    server: RegistryServer, client: RegistryClient, backdoor: BlobBackdoor, v1: int
) -> None:
    before = client.get_file("m", v1)
    assert (before.integrity, before.HasField("last_verify_time")) == (UNVERIFIED, False)

    checked = client.verify_file("m", v1)
    assert checked.integrity == VERIFIED and checked.HasField("last_verify_time")
    assert client.get_file("m", v1, "copy").integrity == VERIFIED  # one blob, one state
    client.seal_version("m", v1)
    client.set_alias("m", "prod", v1)

    backdoor.flip(KEY, SIZE - 1)
    found = client.verify_file("m", "prod")
    assert found.integrity == CORRUPTED
    assert found.last_verify_time.ToDatetime() >= checked.last_verify_time.ToDatetime()
    assert client.get_file("m", "latest", "copy").integrity == CORRUPTED

    backdoor.remove(KEY)
    assert client.verify_file("m", v1, "copy").integrity == MISSING
    assert client.get_file("m", v1).integrity == MISSING


def test_broken_files_are_found_with_one_call(
    client: RegistryClient, backdoor: BlobBackdoor, v1: int
) -> None:
    """ListFiles with the wildcard parent and an integrity filter finds every broken file,
    whatever version or model holds it."""
    client.create_model("other")
    other = client.create_version("other").version_number
    client.upload_file("other", other, io.BytesIO(DATA), file_id="same/content")
    client.upload_file("other", other, io.BytesIO(b"fine"), file_id="fine")
    backdoor.flip(KEY, 5)
    assert client.verify_file("m", v1).integrity == CORRUPTED
    wanted = "integrity = CORRUPTED OR integrity = MISSING"

    def names(model: str, version: int | str, text: str, page_size: int = 0) -> list[str]:
        return [f.name for f in client.list_files(model, version, filter=text, page_size=page_size)]

    broken = names("-", "-", wanted, page_size=1)
    assert broken == [
        file_name("m", v1, "copy"), file_name("m", v1), file_name("other", other, "same/content"),
    ]  # fmt: skip
    assert names("other", "-", "integrity = UNVERIFIED") == [file_name("other", other, "fine")]
    assert names("m", v1, 'integrity = CORRUPTED AND file_id = "copy"') == [
        file_name("m", v1, "copy")
    ]
    assert names("-", "-", f'size_bytes = {SIZE} AND sha256 = "{sha256_hex(DATA)}"') == broken
    assert names("-", "-", "integrity = VERIFIED") == []

    page = client.list_files_page("-", "-", filter=wanted, page_size=1)
    with pytest.raises(InvalidArgumentError) as bad_token:
        client.list_files_page("m", "-", filter=wanted, page_token=page.next_page_token)
    assert bad_token.value.reason == "INVALID_PAGE_TOKEN"
    with pytest.raises(InvalidArgumentError) as bad_filter:
        client.list_files_page("-", "-", filter="integrity = BROKEN")
    assert bad_filter.value.reason == "INVALID_FILTER"
    with pytest.raises(InvalidArgumentError) as bad_parent:
        client.list_files_page("-", v1)
    assert "parent" in str(bad_parent.value)
    with pytest.raises(NotFoundError) as unknown:
        client.list_files_page("nope", "-")
    assert unknown.value.reason == "MODEL_NOT_FOUND"


def test_verify_file_of_an_unknown_file_is_not_found(client: RegistryClient, v1: int) -> None:
    with pytest.raises(NotFoundError) as caught:
        client.verify_file("m", v1, "nope")
    assert caught.value.reason == "FILE_NOT_FOUND"


def test_scrub_runs_in_maintenance_and_names_the_broken_files(
    server: RegistryServer,
    client: RegistryClient,
    backdoor: BlobBackdoor,
    v1: int,
    caplog: pytest.LogCaptureFixture,
) -> None:
    other = data_of(1000, seed=12)
    client.upload_file("m", v1, io.BytesIO(other), file_id="small")
    backdoor.flip(KEY, 10)

    with caplog.at_level(logging.ERROR, logger="modelregistry_server.domain.integrity"):
        report = server.run_maintenance()
    assert (report.scrub.blobs, report.scrub.bytes) == (2, SIZE + len(other))
    assert (report.scrub.corrupted, report.scrub.missing, report.scrub.broken_files) == (1, 0, 2)
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert KEY in logged and "CORRUPTED" in logged
    assert "default:models/m/versions/1/files/payload" in logged
    assert "default:models/m/versions/1/files/copy" in logged
    states = {f.name.rsplit("/", 1)[1]: f.integrity for f in client.list_files("m", v1)}
    assert states == {"payload": CORRUPTED, "copy": CORRUPTED, "small": VERIFIED}

    again = server.run_maintenance()  # checked lately: nothing is due
    assert again.scrub.blobs == 0


def test_the_scrub_can_be_disabled(server_config: Config) -> None:
    config = dataclasses.replace(server_config, scrub_bytes_per_run=0)
    with serving(config) as service, RegistryClient(service.address, timeout=30) as client:
        client.create_model("m")
        number = client.create_version("m").version_number
        client.upload_file("m", number, io.BytesIO(b"content"))
        assert service.run_maintenance().scrub.blobs == 0
        assert client.get_file("m", number).integrity == UNVERIFIED


def test_uploading_the_same_content_again_repairs_the_blob(
    server: RegistryServer, client: RegistryClient, backdoor: BlobBackdoor, v1: int
) -> None:
    backdoor.flip(KEY, BAD * MiB)
    assert client.verify_file("m", v1).integrity == CORRUPTED
    v2 = client.create_version("m").version_number
    client.upload_file("m", v2, io.BytesIO(DATA))  # verified bytes of the same content

    assert backdoor.read(KEY) == DATA
    assert download(client) == DATA
    assert client.get_file("m", v1, "copy").integrity == UNVERIFIED
    assert client.verify_file("m", v2).integrity == VERIFIED


# -- blobs stored before block sums existed -----------------------------------------------------
def test_blobs_without_block_sums_are_still_served_and_get_them(
    server: RegistryServer, client: RegistryClient, backdoor: BlobBackdoor, v1: int
) -> None:
    blob_sql(server, "UPDATE blobs SET block_size = NULL, block_crc32c = NULL")
    assert download(client, offset=MiB + 1, limit=10) == DATA[MiB + 1 : MiB + 11]  # backfills
    blob = server.store.get_blob(sha256_hex(DATA))
    assert blob is not None and blob.sums is not None and len(blob.sums) == 4

    blob_sql(server, "UPDATE blobs SET block_size = NULL, block_crc32c = NULL")
    assert download(client) == DATA  # verified by its sha256, sums stored on the way
    assert server.store.get_blob(sha256_hex(DATA)).sums is not None  # type: ignore[union-attr]

    blob_sql(server, "UPDATE blobs SET block_size = NULL, block_crc32c = NULL")
    backdoor.flip(KEY, SIZE - 2)
    got, reason = raw_download(server.address, file_name("m", v1))
    assert (got, reason) == (DATA[: 3 * MiB], "BLOB_CORRUPTED")  # the last block held back


# -- GC against the blob store ------------------------------------------------------------------
@pytest.fixture
def gc_server(server_config: Config) -> Iterator[RegistryServer]:
    """A server whose GC acts at once (grace 0)."""
    with serving(dataclasses.replace(server_config, gc_grace_hours=0)) as service:
        yield service


def test_gc_removes_what_no_row_accounts_for_and_keeps_live_uploads(
    gc_server: RegistryServer, request: pytest.FixtureRequest
) -> None:
    backdoor = backdoor_for(gc_server.config.blob_url, request)
    with RegistryClient(gc_server.address, timeout=30, chunk_size=64 * KiB) as client:
        client.create_model("m")
        number = client.create_version("m").version_number
        kept = data_of(1000, seed=13)
        client.upload_file("m", number, io.BytesIO(kept), upload_id="done")
        orphan = data_of(500, seed=14)
        backdoor.write(f"sha256/{sha256_hex(orphan)}", orphan)
        backdoor.write_upload("a" * 40, b"parts of an upload nobody knows")
        backdoor.write_upload(storage_id("default", "done"), b"leftover of a finished upload")
        live = data_of(2 * PIECE, seed=15)
        requests = PausingRequests(
            header(file_name("m", number, "live"), "live", size=len(live)), live, pause_at=PIECE
        )
        with raw_stub(gc_server.address) as stub:
            call = stub.UploadFile.future(iter(requests), timeout=WAIT_S)
            assert requests.paused.wait(WAIT_S)
            wait_committed(client, "live", PIECE)

            report = gc_server.run_maintenance()
            # The finished session is stale at grace 0: removed with its leftover part.
            assert (report.gc.uploads, report.gc.orphan_uploads) == (1, 1)
            assert report.gc.orphan_blobs == 1
            assert report.gc.blobs == 1  # the orphan; the file's blob is referenced
            assert backdoor.blob_keys() == {f"sha256/{sha256_hex(kept)}"}
            # The live upload's staging (one per writer: its name starts with the upload's).
            staged = {upload_of_staging(name) for name in backdoor.upload_ids()}
            assert staged == {storage_id("default", "live")}

            requests.release(finish=True)
            assert call.result(timeout=WAIT_S).size_bytes == len(live)
        assert b"".join(client.iter_file("m", number, file_id="live")) == live
        assert b"".join(client.iter_file("m", number)) == kept


def test_gc_keeps_stored_objects_younger_than_grace(
    server: RegistryServer, backdoor: BlobBackdoor
) -> None:
    orphan = data_of(500, seed=16)
    backdoor.write(f"sha256/{sha256_hex(orphan)}", orphan)
    backdoor.write_upload("b" * 40, b"parts")
    report = server.run_maintenance()  # default grace: 24 h
    assert (report.gc.orphan_blobs, report.gc.orphan_uploads, report.gc.blobs) == (0, 0, 0)
    assert len(backdoor.blob_keys()) == 1 and backdoor.upload_ids() == {"b" * 40}


def test_gc_gives_a_referenced_blob_without_a_row_one_and_keeps_it(
    gc_server: RegistryServer, request: pytest.FixtureRequest
) -> None:
    backdoor = backdoor_for(gc_server.config.blob_url, request)
    with RegistryClient(gc_server.address, timeout=30) as client:
        client.create_model("m")
        number = client.create_version("m").version_number
        data = data_of(2000, seed=17)
        client.upload_file("m", number, io.BytesIO(data))
        blob_sql(gc_server, "DELETE FROM blobs")
        report = gc_server.run_maintenance()
        assert (report.gc.orphan_blobs, report.gc.blobs) == (1, 0)
        assert backdoor.blob_keys() == {f"sha256/{sha256_hex(data)}"}
        assert gc_server.store.get_blob(sha256_hex(data)) is not None
        assert b"".join(client.iter_file("m", number)) == data


def test_a_cancelled_download_stops_reading_ahead(
    server: RegistryServer, client: RegistryClient, v1: int
) -> None:
    def helpers() -> list[threading.Thread]:
        return [t for t in threading.enumerate() if t.name == "checked-read"]

    # The helper starts after the first 8 blocks; the file is larger than those, the
    # read-ahead and what a 64 KiB window admits, so only the cancellation can stop it.
    big = data_of(16 * MiB, seed=23)
    client.upload_file("m", v1, io.BytesIO(big), file_id="big")
    with raw_stub(server.address, small_window=True) as stub:
        request = pl.DownloadFileRequest(name=file_name("m", v1, "big"))
        call = stub.DownloadFile(request, timeout=WAIT_S)
        got = bytearray()
        while len(got) <= 9 * MiB:
            got += next(call).data
        assert got == big[: len(got)]
        assert helpers()
        call.cancel()
    deadline = time.monotonic() + WAIT_S
    while helpers() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert helpers() == []


def test_verify_file_stops_reading_when_the_call_ends(
    server: RegistryServer, monkeypatch: pytest.MonkeyPatch, v1: int
) -> None:
    """Past its deadline, or once the client cancelled, VerifyFile reads no further block."""
    original = server.blobs.read
    total = len(list(original(KEY, 0, SIZE + 1)))
    reads: list[int] = []

    def slow_read(key: str, offset: int = 0, limit: int | None = None) -> Iterator[bytes]:
        for chunk in original(key, offset, limit):
            reads.append(len(chunk))
            time.sleep(0.25)
            yield chunk

    monkeypatch.setattr(server.blobs, "read", slow_read)
    request = pl.VerifyFileRequest(name=file_name("m", v1))

    def settled() -> int:
        """The number of chunks read once reading stopped."""
        seen, stop = -1, time.monotonic() + WAIT_S
        while seen != len(reads) and time.monotonic() < stop:
            seen = len(reads)
            time.sleep(0.6)
        return seen

    with raw_stub(server.address) as stub:
        with pytest.raises(grpc.RpcError) as late:
            stub.VerifyFile(request, timeout=0.4)
        assert late.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
        assert settled() < total

        reads.clear()
        call = stub.VerifyFile.future(request, timeout=WAIT_S)
        stop = time.monotonic() + WAIT_S
        while not reads and time.monotonic() < stop:
            time.sleep(0.01)
        call.cancel()
        assert settled() < total
    blob = server.store.get_blob(sha256_hex(DATA))
    assert blob is not None and (blob.integrity, blob.verify_time) == ("UNVERIFIED", None)
