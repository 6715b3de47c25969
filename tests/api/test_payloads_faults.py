"""PayloadService failure modes over SQLite and PostgreSQL: every rejected, broken, cancelled or
conflicting upload leaves nothing visible; interrupted uploads resume from a committed piece
boundary; GC removes only what nothing references, even while uploads run."""

from __future__ import annotations

import dataclasses
import functools
import io
import threading
from collections.abc import Callable, Iterable, Iterator

import grpc
import pytest

from modelregistry.client import (
    MAX_MESSAGE_SIZE,
    FailedPreconditionError,
    NotFoundError,
    RegistryClient,
    RegistryError,
    from_rpc_error,
)
from modelregistry.v1 import payload_pb2 as pl
from modelregistry.v1 import payload_pb2_grpc as pl_grpc
from modelregistry.v1 import resources_pb2 as res
from modelregistry_server.app import RegistryServer, receive_limit
from modelregistry_server.config import Config
from modelregistry_server.domain.errors import Unavailable
from tests.support.payload_helpers import (
    PIECE,
    WAIT_S,
    KiB,
    MiB,
    PausingRequests,
    assert_nothing_visible,
    blob_root,
    chunk,
    chunks_of,
    data_of,
    file_name,
    full_upload,
    header,
    raw_stub,
    raw_upload,
    resume_upload,
    sha256_hex,
    stored_blobs,
    stored_uploads,
    upload_error,
    wait_committed,
    wait_for,
)
from tests.support.servers import serving

NAME = file_name("m", 1)


@pytest.fixture
def v1(client: RegistryClient) -> int:
    """Model ``m`` with one DRAFT version (number 1)."""
    client.create_model("m")
    return int(client.create_version("m").version_number)


def download(
    client: RegistryClient, model: str, version: int | str, file_id: str = "payload"
) -> bytes:
    out = io.BytesIO()
    client.download_file(model, version, out, file_id=file_id)
    return out.getvalue()


def status_or_none(client: RegistryClient, upload_id: str) -> pl.UploadStatus | None:
    try:
        return client.get_upload_status(upload_id)
    except NotFoundError:
        return None


def committed_at_least(client: RegistryClient, upload_id: str, size: int) -> pl.UploadStatus:
    def probe() -> pl.UploadStatus | None:
        status = status_or_none(client, upload_id)
        return status if status is not None and status.committed_size_bytes >= size else None

    return wait_for(probe, f"{upload_id} to commit {size} bytes")


# -- size and digest ------------------------------------------------------------------------------
def test_short_stream_is_size_mismatch_and_stays_resumable(
    server: RegistryServer, client: RegistryClient, v1: int
) -> None:
    data = data_of(3 * PIECE + 500, seed=1)
    sent = len(data) - 1000
    head = header(NAME, "short", size=len(data), sha256=sha256_hex(data))
    with raw_stub(server.address) as stub:
        err = upload_error(stub, [head, *chunks_of(data[:sent], 64 * KiB)])
        assert (err.code, err.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "SIZE_MISMATCH")
        assert_nothing_visible(client, "m", v1)
        status = client.get_upload_status("short")
        assert status.state == pl.UPLOAD_STATE_ACTIVE
        assert status.committed_size_bytes == sent  # the stream's end made its tail durable
        assert status.size_bytes == len(data)
        assert status.name == NAME
        resumed_at, file = resume_upload(stub, client, NAME, "short", data)
    assert resumed_at == sent
    assert file.sha256 == sha256_hex(data)
    assert download(client, "m", v1) == data


def test_long_stream_is_size_mismatch(
    server: RegistryServer, client: RegistryClient, v1: int
) -> None:
    data = data_of(2 * PIECE + 10, seed=2)
    too_long = data + b"!"
    head = header(NAME, "long", size=len(data), sha256=sha256_hex(data))
    with raw_stub(server.address) as stub:
        err = upload_error(stub, [head, *chunks_of(too_long, 64 * KiB)])
        assert (err.code, err.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "SIZE_MISMATCH")
        assert_nothing_visible(client, "m", v1)
        status = client.get_upload_status("long")
        assert status.committed_size_bytes % PIECE == 0
        assert status.committed_size_bytes <= len(data)
        _, file = resume_upload(stub, client, NAME, "long", data)
    assert file.size_bytes == len(data)
    assert download(client, "m", v1) == data


def test_digest_mismatch_discards_the_session(
    server: RegistryServer, client: RegistryClient, v1: int
) -> None:
    root = blob_root(server.config.blob_url)
    data = data_of(2 * PIECE + 3, seed=3)
    wrong = sha256_hex(data + b"x")
    head = header(NAME, "digest", size=len(data), sha256=wrong)
    with raw_stub(server.address) as stub:
        err = upload_error(stub, [head, *chunks_of(data, 64 * KiB)])
        assert (err.code, err.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "DIGEST_MISMATCH")
        assert [f for f, _ in err.field_violations] == ["header.sha256"]
        assert_nothing_visible(client, "m", v1)
        with pytest.raises(NotFoundError) as gone:
            client.get_upload_status("digest")
        assert gone.value.reason == "UPLOAD_NOT_FOUND"
        assert stored_uploads(root) == []
        assert stored_blobs(root) == []
        # The id is free again: a correct upload under it succeeds.
        file = full_upload(stub, NAME, "digest", data)
    assert file.sha256 == sha256_hex(data)
    assert download(client, "m", v1) == data


# -- the digest at the end of the stream -----------------------------------------------------------
def finish(sha256: str) -> pl.UploadFileRequest:
    return pl.UploadFileRequest(finish=pl.UploadFinish(sha256=sha256))


def _changes(client: RegistryClient) -> list[str]:
    """The change events (a failed call is recorded too, as an access event)."""
    return [f"{e.method} {e.resource}" for e in client.list_events(filter="kind = CHANGE")]


def test_trailing_digest_mismatch_publishes_nothing(
    server: RegistryServer, client: RegistryClient, v1: int
) -> None:
    root = blob_root(server.config.blob_url)
    data = data_of(2 * PIECE + 5, seed=21)
    changes = _changes(client)
    head = header(NAME, "trailing", size=len(data))
    with raw_stub(server.address) as stub:
        err = upload_error(stub, [head, *chunks_of(data, 64 * KiB), finish(sha256_hex(b"other"))])
    assert (err.code, err.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "DIGEST_MISMATCH")
    assert [f for f, _ in err.field_violations] == ["finish.sha256"]
    assert_nothing_visible(client, "m", v1)
    # Discarded like a wrong header digest: no session, no stored bytes, no blob row, no change.
    with pytest.raises(NotFoundError):
        client.get_upload_status("trailing")
    assert stored_uploads(root) == []
    assert stored_blobs(root) == []
    assert server.store.get_blob(sha256_hex(data)) is None
    assert _changes(client) == changes


def test_trailing_digest_that_matches_publishes(
    server: RegistryServer, client: RegistryClient, v1: int
) -> None:
    data = data_of(PIECE + 7, seed=22)
    head = header(NAME, "trailing-ok", size=len(data))
    with raw_stub(server.address) as stub:
        file = raw_upload(stub, [head, *chunks_of(data, 64 * KiB), finish(sha256_hex(data))])
    assert (file.size_bytes, file.sha256) == (len(data), sha256_hex(data))
    assert download(client, "m", v1) == data
    assert server.store.get_blob(sha256_hex(data)) is not None


@pytest.mark.parametrize("correct", [True, False], ids=["matching", "wrong"])
def test_trailing_digest_of_a_resumed_upload_covers_every_byte(
    server: RegistryServer, client: RegistryClient, v1: int, correct: bool
) -> None:
    data = data_of(2 * PIECE + 11, seed=23)
    # The first stream stops after two pieces without a finish (as a dropped stream does).
    head = header(NAME, "resumed", size=len(data))
    with raw_stub(server.address) as stub:
        err = upload_error(stub, [head, *chunks_of(data[: 2 * PIECE], 64 * KiB)])
        assert err.reason == "SIZE_MISMATCH"
        committed = client.get_upload_status("resumed").committed_size_bytes
        assert committed == 2 * PIECE
        # The resumed stream carries only the tail; its finish declares the whole file's
        # digest, which the server checks against the committed prefix too.
        digest = sha256_hex(data if correct else data[committed:])
        rest = header(NAME, "resumed", size=len(data), write_offset=committed)
        requests = [rest, *chunks_of(data, 64 * KiB, committed), finish(digest)]
        if correct:
            file = raw_upload(stub, requests)
            assert file.sha256 == sha256_hex(data)
            assert download(client, "m", v1) == data
        else:
            err = upload_error(stub, requests)
            assert (err.code, err.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "DIGEST_MISMATCH")
            assert_nothing_visible(client, "m", v1)


def test_trailing_digest_of_an_empty_file(
    server: RegistryServer, client: RegistryClient, v1: int
) -> None:
    with raw_stub(server.address) as stub:
        file = raw_upload(stub, [header(NAME, "empty"), finish(sha256_hex(b""))])
    assert (file.size_bytes, file.sha256) == (0, sha256_hex(b""))


def test_malformed_trailing_digest_and_messages_after_it_are_refused(
    server: RegistryServer, client: RegistryClient, v1: int
) -> None:
    data = data_of(3000, seed=25)
    with raw_stub(server.address) as stub:
        bad = [header(NAME, "bad-finish"), chunk(0, data), finish("ABC")]
        err = upload_error(stub, bad)
        assert (err.code, [f for f, _ in err.field_violations]) == (
            grpc.StatusCode.INVALID_ARGUMENT,
            ["finish.sha256"],
        )
        late = [header(NAME, "late"), chunk(0, data), finish(sha256_hex(data)), chunk(3000, b"x")]
        err = upload_error(stub, late)
        assert (err.code, [f for f, _ in err.field_violations]) == (
            grpc.StatusCode.INVALID_ARGUMENT,
            ["finish"],
        )
    assert_nothing_visible(client, "m", v1)


# -- chunk framing --------------------------------------------------------------------------------
def test_chunk_at_wrong_offset(server: RegistryServer, client: RegistryClient, v1: int) -> None:
    data = data_of(PIECE + 100, seed=4)
    head = header(NAME, "gap", size=len(data), sha256=sha256_hex(data))
    with raw_stub(server.address) as stub:
        skipped = [head, chunk(0, data[:1000]), chunk(2000, data[2000:3000])]
        err = upload_error(stub, skipped)
        assert (err.code, err.reason) == (grpc.StatusCode.OUT_OF_RANGE, "WRONG_OFFSET")
        assert err.metadata["expected_offset"] == "1000"
        repeated = [head, chunk(0, data[:1000]), chunk(0, data[:1000])]
        err = upload_error(stub, [header(NAME, "repeat"), *repeated[1:]])
        assert (err.code, err.reason) == (grpc.StatusCode.OUT_OF_RANGE, "WRONG_OFFSET")
        err = upload_error(stub, [header(NAME, "late-start"), chunk(5, data[5:10])])
        assert err.reason == "WRONG_OFFSET"
        assert_nothing_visible(client, "m", v1)

        # A resume must start exactly at the committed size.
        err = upload_error(stub, [head, *chunks_of(data[: PIECE + 50], 64 * KiB)])
        assert err.reason == "SIZE_MISMATCH"
        committed = client.get_upload_status("gap").committed_size_bytes
        assert committed == PIECE + 50
        for write_offset in (0, committed - 1, committed + 1):
            bad = header(
                NAME, "gap", size=len(data), sha256=sha256_hex(data), write_offset=write_offset
            )
            err = upload_error(stub, [bad, chunk(write_offset, data[write_offset:])])
            assert (err.code, err.reason) == (grpc.StatusCode.OUT_OF_RANGE, "WRONG_OFFSET")
            assert err.metadata["committed_size"] == str(committed)
        assert_nothing_visible(client, "m", v1)

        # An offset into an upload the server never saw.
        err = upload_error(stub, [header(NAME, "never-seen", write_offset=10)])
        assert (err.code, err.reason) == (grpc.StatusCode.NOT_FOUND, "UPLOAD_NOT_FOUND")
        _, file = resume_upload(stub, client, NAME, "gap", data)
    assert file.sha256 == sha256_hex(data)


def test_chunk_over_the_limit(server: RegistryServer, client: RegistryClient, v1: int) -> None:
    big = data_of(2 * MiB + 1, seed=5)
    with raw_stub(server.address) as stub:
        err = upload_error(stub, [header(NAME, "big"), chunk(0, big)])
        assert (err.code, err.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "CHUNK_TOO_LARGE")
        assert err.field_violations[0][0] == "chunk.data"
        err = upload_error(stub, [header(NAME, "big2"), chunk(0, big[:100]), chunk(100, big)])
        assert err.reason == "CHUNK_TOO_LARGE"
    assert_nothing_visible(client, "m", v1)


@pytest.mark.parametrize("size", [8 * MiB, MAX_MESSAGE_SIZE - 64], ids=["8MiB", "client-max"])
def test_much_larger_chunk_is_chunk_too_large_not_resource_exhausted(
    server: RegistryServer, client: RegistryClient, v1: int, size: int
) -> None:
    """Every chunk the Python client's channel can send reaches the registry's own check."""
    payload = bytes(size)
    stub = pl_grpc.PayloadServiceStub(client.channel)
    requests = iter([header(NAME, "huge"), chunk(0, payload)])
    with pytest.raises(grpc.RpcError) as caught:
        stub.UploadFile(requests, timeout=60)
    err = from_rpc_error(caught.value)
    assert (err.code, err.reason) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "CHUNK_TOO_LARGE",
    )
    assert_nothing_visible(client, "m", v1)
    assert client.get_upload_status("huge").committed_size_bytes == 0


def test_message_beyond_the_receive_limit_is_resource_exhausted(
    server: RegistryServer, client: RegistryClient, v1: int
) -> None:
    """Past the transport's limit gRPC itself refuses the message (documented in the README)."""
    limit = receive_limit(server.config.max_upload_chunk_bytes)
    with raw_stub(server.address) as stub:
        err = upload_error(stub, [header(NAME, "beyond"), chunk(0, bytes(limit + 1))])
    assert err.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert_nothing_visible(client, "m", v1)


def test_stream_framing_errors(server: RegistryServer, client: RegistryClient, v1: int) -> None:
    data = b"0123456789"
    with raw_stub(server.address) as stub:
        cases: dict[str, list[pl.UploadFileRequest]] = {
            "empty stream": [],
            "chunk before header": [chunk(0, data), header(NAME, "f1")],
            "chunk only": [chunk(0, data)],
            "two headers": [header(NAME, "f2"), header(NAME, "f2")],
            "header after chunk": [header(NAME, "f3"), chunk(0, data), header(NAME, "f3")],
            "unset message": [header(NAME, "f4"), pl.UploadFileRequest()],
        }
        for what, requests in cases.items():
            err = upload_error(stub, requests)
            assert err.code is grpc.StatusCode.INVALID_ARGUMENT, what
    assert_nothing_visible(client, "m", v1)


@pytest.mark.parametrize(
    "file_id",
    [
        "../x",
        "a/../x",
        "/abs",
        "a//b",
        "a/./b",
        "./a",
        "a/",
        "a/.",
        "new\nline",
        "tab\there",
        "nul\x00",
        "del\x7f",
        "back\\slash",
        "x" * 513,
    ],
    ids=lambda s: repr(s)[:20],
)
def test_invalid_file_ids(
    server: RegistryServer, client: RegistryClient, v1: int, file_id: str
) -> None:
    with raw_stub(server.address) as stub:
        err = upload_error(stub, [header(file_name("m", v1, file_id), "bad-id"), chunk(0, b"x")])
    assert err.code is grpc.StatusCode.INVALID_ARGUMENT
    assert [f for f, _ in err.field_violations] == ["header.name"]
    with pytest.raises(NotFoundError):
        client.get_upload_status("bad-id")
    assert list(client.list_files("m", v1)) == []
    assert client.get_version("m", v1).file_count == 0


def test_file_id_length_limit_is_inclusive(
    server: RegistryServer, client: RegistryClient, v1: int
) -> None:
    longest = "d/" * 100 + "x" * 312
    assert len(longest) == 512
    with raw_stub(server.address) as stub:
        file = full_upload(stub, file_name("m", v1, longest), "longest", b"ok")
    assert file.name == file_name("m", v1, longest)


@pytest.mark.parametrize(
    "upload_id", ["", "has space", "a/b", "x" * 129, "\u00fc", "dot.ted"], ids=repr
)
def test_invalid_upload_ids(
    server: RegistryServer, client: RegistryClient, v1: int, upload_id: str
) -> None:
    with raw_stub(server.address) as stub:
        err = upload_error(stub, [header(NAME, upload_id), chunk(0, b"x")])
        assert err.code is grpc.StatusCode.INVALID_ARGUMENT
        assert [f for f, _ in err.field_violations] == ["header.upload_id"]
        for call, request in [
            (stub.GetUploadStatus, pl.GetUploadStatusRequest(upload_id=upload_id)),
            (stub.CancelUpload, pl.CancelUploadRequest(upload_id=upload_id)),
        ]:
            with pytest.raises(grpc.RpcError) as caught:
                call(request)
            assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert_nothing_visible(client, "m", v1)


def test_invalid_header_fields(server: RegistryServer, client: RegistryClient, v1: int) -> None:
    with raw_stub(server.address) as stub:
        for head, field in [
            (header(NAME, "h1", sha256="A" * 64), "header.sha256"),
            (header(NAME, "h2", sha256="abc"), "header.sha256"),
            (header(NAME, "h3", size=-1), "header.size_bytes"),
            (header(NAME, "h4", write_offset=-1), "header.write_offset"),
            (header(file_name("m", "latest"), "h5"), "header.name"),
            (header("models/m/versions/1", "h6"), "header.name"),
        ]:
            err = upload_error(stub, [head, chunk(0, b"x")])
            assert err.code is grpc.StatusCode.INVALID_ARGUMENT, field
            assert [f for f, _ in err.field_violations] == [field]
    assert_nothing_visible(client, "m", v1)


# -- targets --------------------------------------------------------------------------------------
def test_upload_to_sealed_deleted_or_missing_version(
    server: RegistryServer, client: RegistryClient, v1: int
) -> None:
    client.seal_version("m", v1)
    deleted = int(client.create_version("m").version_number)
    client.delete_version("m", deleted)
    with raw_stub(server.address) as stub:
        err = upload_error(stub, [header(NAME, "s"), chunk(0, b"data")])
        assert (err.code, err.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "VERSION_SEALED")
        err = upload_error(stub, [header(file_name("m", deleted), "d"), chunk(0, b"data")])
        assert (err.code, err.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "VERSION_DELETED")
        err = upload_error(stub, [header(file_name("m", 99), "n"), chunk(0, b"data")])
        assert (err.code, err.reason) == (grpc.StatusCode.NOT_FOUND, "VERSION_NOT_FOUND")
        err = upload_error(stub, [header(file_name("zz", 1), "z"), chunk(0, b"data")])
        assert (err.code, err.reason) == (grpc.StatusCode.NOT_FOUND, "MODEL_NOT_FOUND")
    assert_nothing_visible(client, "m", v1)
    client.undelete_version("m", deleted)
    assert_nothing_visible(client, "m", deleted)


def test_existing_file_id_is_never_overwritten(
    server: RegistryServer, client: RegistryClient, v1: int
) -> None:
    original = data_of(PIECE + 1, seed=6)
    client.upload_file("m", v1, io.BytesIO(original))
    with raw_stub(server.address) as stub:
        err = upload_error(stub, [header(NAME, "again"), chunk(0, b"replacement")])
    assert (err.code, err.reason) == (grpc.StatusCode.ALREADY_EXISTS, "FILE_ALREADY_EXISTS")
    with pytest.raises(RegistryError) as caught:
        client.upload_file("m", v1, io.BytesIO(b"replacement"))
    assert caught.value.reason == "FILE_ALREADY_EXISTS"
    assert download(client, "m", v1) == original
    v = client.get_version("m", v1)
    assert (v.file_count, v.total_size_bytes) == (1, len(original))


def test_upload_id_bound_to_its_target(
    server: RegistryServer, client: RegistryClient, v1: int
) -> None:
    data = data_of(PIECE + 7, seed=7)
    other = file_name("m", v1, "other")
    with raw_stub(server.address) as stub:
        # An unfinished session: another file, size or digest under the same id is refused.
        first = header(NAME, "bound", size=len(data), sha256=sha256_hex(data))
        err = upload_error(stub, [first, *chunks_of(data[:1000], 500)])
        assert err.reason == "SIZE_MISMATCH"
        for head in [
            header(other, "bound", write_offset=1000),
            header(NAME, "bound", size=len(data) + 1, write_offset=1000),
            header(NAME, "bound", size=len(data), sha256="0" * 64, write_offset=1000),
        ]:
            err = upload_error(stub, [head])
            assert (err.code, err.reason) == (
                grpc.StatusCode.FAILED_PRECONDITION,
                "UPLOAD_CONFLICT",
            )
        _, file = resume_upload(stub, client, NAME, "bound", data)
        assert file.sha256 == sha256_hex(data)

        # A committed session: re-sending it returns the same file; another target is refused.
        again = full_upload(stub, NAME, "bound", data)
        assert again == file
        status = client.get_upload_status("bound")
        assert status.state == pl.UPLOAD_STATE_COMMITTED
        assert status.file == file
        err = upload_error(stub, [header(other, "bound"), chunk(0, b"x")])
        assert (err.code, err.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "UPLOAD_CONFLICT")
    assert [f.name for f in client.list_files("m", v1)] == [NAME]
    assert client.get_version("m", v1).file_count == 1


def test_cancel_upload(server: RegistryServer, client: RegistryClient, v1: int) -> None:
    root = blob_root(server.config.blob_url)
    data = data_of(2 * PIECE, seed=8)
    with raw_stub(server.address) as stub:
        err = upload_error(
            stub, [header(NAME, "doomed", size=len(data)), *chunks_of(data[:PIECE], 4096)]
        )
        assert err.reason == "SIZE_MISMATCH"
        assert len(stored_uploads(root)) == 1
        client.cancel_upload("doomed")
        assert stored_uploads(root) == []
        with pytest.raises(NotFoundError):
            client.get_upload_status("doomed")
        with pytest.raises(NotFoundError):
            client.cancel_upload("doomed")
        assert_nothing_visible(client, "m", v1)
        full_upload(stub, NAME, "done", data)
    with pytest.raises(FailedPreconditionError) as caught:
        client.cancel_upload("done")
    assert caught.value.reason == "UPLOAD_ALREADY_COMMITTED"
    assert download(client, "m", v1) == data


# -- interrupted streams and resume ---------------------------------------------------------------
def _fail_after(
    first: pl.UploadFileRequest, data: bytes, sent: int, before_failing: Callable[[], object]
) -> Iterator[pl.UploadFileRequest]:
    """The header and ``sent`` bytes, then the request generator itself fails."""
    yield first
    yield from chunks_of(data[:sent], 64 * KiB)
    before_failing()
    raise RuntimeError("client-side failure while producing the stream")


@pytest.mark.parametrize("how", ["cancel", "client-error", "deadline"])
def test_interrupted_upload_leaves_nothing_and_resumes(
    server: RegistryServer, client: RegistryClient, v1: int, how: str
) -> None:
    data = data_of(6 * PIECE + 1234, seed=9)
    sent = 4 * PIECE + 10 * KiB
    head = header(NAME, "drop", size=len(data), sha256=sha256_hex(data))
    requests = PausingRequests(head, data, pause_at=sent)
    with raw_stub(server.address) as stub:
        if how == "cancel":
            future = stub.UploadFile.future(iter(requests), timeout=WAIT_S)
            assert requests.paused.wait(WAIT_S)
            wait_committed(client, "drop", 4 * PIECE)  # the 5th piece is half-received
            future.cancel()
            requests.release()
            assert future.cancelled() or future.code() is grpc.StatusCode.CANCELLED
        elif how == "client-error":
            committed = functools.partial(wait_committed, client, "drop", 4 * PIECE)
            with pytest.raises(grpc.RpcError):
                stub.UploadFile(_fail_after(head, data, sent, committed), timeout=WAIT_S)
        else:
            with pytest.raises(grpc.RpcError) as caught:
                stub.UploadFile(iter(requests), timeout=3)
            requests.release()
            assert caught.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
        assert_nothing_visible(client, "m", v1)
        status = status_or_none(client, "drop")  # a deadline may strike before the header
        if how != "deadline" or status is not None:
            assert status is not None and status.state == pl.UPLOAD_STATE_ACTIVE
            assert status.committed_size_bytes % PIECE == 0
            assert status.committed_size_bytes <= sent
        resumed_at, file = resume_upload(stub, client, NAME, "drop", data)
    assert resumed_at % PIECE == 0
    if how != "deadline":
        assert resumed_at == 4 * PIECE
    assert file.sha256 == sha256_hex(data)
    assert download(client, "m", v1) == data
    assert client.get_version("m", v1).file_count == 1


@pytest.mark.parametrize("at", [2 * PIECE, 2 * PIECE + 40 * KiB], ids=["boundary", "mid-piece"])
def test_cancelled_upload_of_undeclared_size_never_becomes_visible(
    server: RegistryServer, client: RegistryClient, v1: int, at: int
) -> None:
    """Without a declared size only the end of the stream says the file is whole, and
    grpc-python can end a cancelled stream as if it had finished (grpc/grpc#33038): repeat
    the cancellation so that race is met, and nothing truncated may ever be published."""
    data = data_of(3 * PIECE, seed=16)
    with raw_stub(server.address) as stub:
        for i in range(20):
            name = file_name("m", v1, f"f{i}")
            requests = PausingRequests(header(name, f"undeclared-{i}"), data, pause_at=at)
            future = stub.UploadFile.future(iter(requests), timeout=WAIT_S)
            assert requests.paused.wait(WAIT_S)
            committed_at_least(client, f"undeclared-{i}", 2 * PIECE)
            future.cancel()
            requests.release()
            status = wait_for(
                lambda i=i: _settled(stub, client, f"undeclared-{i}"),
                "the server to end the stream",
            )
            assert status.state == pl.UPLOAD_STATE_ACTIVE, f"iteration {i}"
            assert status.committed_size_bytes == 2 * PIECE, f"iteration {i}"
    assert list(client.list_files("m", v1)) == []
    assert client.get_version("m", v1).file_count == 0


def _settled(
    stub: pl_grpc.PayloadServiceStub, client: RegistryClient, upload_id: str
) -> pl.UploadStatus | None:
    """The upload's status once no stream holds it any more, else None."""
    status = client.get_upload_status(upload_id)
    if status.state == pl.UPLOAD_STATE_COMMITTED:
        return status
    # Always refused: UPLOAD_CONFLICT while a stream still holds the upload, else WRONG_OFFSET.
    probe = header(status.name, upload_id, write_offset=status.committed_size_bytes + 1)
    if upload_error(stub, [probe]).reason == "UPLOAD_CONFLICT":
        return None
    return client.get_upload_status(upload_id)


def _record_writes(
    server: RegistryServer, monkeypatch: pytest.MonkeyPatch
) -> list[tuple[int, int]]:
    """Record ``(offset, bytes)`` of every successful blob-store piece write."""
    writes: list[tuple[int, int]] = []
    original = server.blobs.write_upload

    def recording(upload_id: str, offset: int, chunks: Iterable[bytes]) -> int:
        written = original(upload_id, offset, chunks)
        writes.append((offset, written))
        return written

    monkeypatch.setattr(server.blobs, "write_upload", recording)
    return writes


def test_client_resumes_an_upload_started_elsewhere(
    server: RegistryServer, client: RegistryClient, v1: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = data_of(5 * PIECE + 99, seed=10)
    head = header(NAME, "handover", size=len(data), sha256=sha256_hex(data))
    requests = PausingRequests(head, data, pause_at=3 * PIECE + 1000)
    with raw_stub(server.address) as stub:
        future = stub.UploadFile.future(iter(requests), timeout=WAIT_S)
        assert requests.paused.wait(WAIT_S)
        wait_committed(client, "handover", 3 * PIECE)
        future.cancel()
        requests.release()
    writes = _record_writes(server, monkeypatch)
    progress: list[int] = []

    file = client.upload_file(
        "m",
        v1,
        io.BytesIO(data),
        upload_id="handover",
        progress=lambda done, _: progress.append(done),
    )
    assert file.sha256 == sha256_hex(data)
    assert download(client, "m", v1) == data
    # The committed prefix was not sent again.
    assert writes[0][0] == 3 * PIECE
    assert sum(n for _, n in writes) == len(data) - 3 * PIECE
    assert progress[-1] == len(data)


def test_client_resumes_after_a_backend_failure_mid_piece(
    server: RegistryServer, client: RegistryClient, v1: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = data_of(5 * PIECE + 5, seed=11)
    calls: list[int] = []
    writes = _record_writes(server, monkeypatch)
    recording = server.blobs.write_upload

    def flaky(upload_id: str, offset: int, chunks: Iterable[bytes]) -> int:
        calls.append(offset)
        if len(calls) == 3:
            next(iter(chunks))  # part of the piece arrives, then the store fails
            raise Unavailable("injected blob store failure")
        return recording(upload_id, offset, chunks)

    monkeypatch.setattr(server.blobs, "write_upload", flaky)
    file = client.upload_file("m", v1, io.BytesIO(data))
    assert file.sha256 == sha256_hex(data)
    assert download(client, "m", v1) == data
    assert calls[2] == 2 * PIECE and calls[3] == 2 * PIECE  # resumed at the committed size
    assert sum(n for _, n in writes) == len(data)


def test_second_stream_for_a_receiving_upload_is_refused(
    server: RegistryServer, client: RegistryClient, v1: int
) -> None:
    data = data_of(3 * PIECE, seed=12)
    head = header(NAME, "busy", size=len(data), sha256=sha256_hex(data))
    requests = PausingRequests(head, data, pause_at=PIECE + 5)
    with raw_stub(server.address) as stub:
        future = stub.UploadFile.future(iter(requests), timeout=WAIT_S)
        assert requests.paused.wait(WAIT_S)
        wait_committed(client, "busy", PIECE)
        second = header(NAME, "busy", size=len(data), sha256=sha256_hex(data), write_offset=PIECE)
        err = upload_error(stub, [second, *chunks_of(data, 64 * KiB, PIECE)])
        assert (err.code, err.reason) == (grpc.StatusCode.ABORTED, "UPLOAD_CONFLICT")
        requests.release(finish=True)
        file = future.result(timeout=WAIT_S)
    assert file.sha256 == sha256_hex(data)
    assert download(client, "m", v1) == data


@pytest.mark.parametrize("change", ["seal", "delete"])
def test_version_sealed_or_deleted_during_upload(
    server: RegistryServer, client: RegistryClient, v1: int, change: str
) -> None:
    data = data_of(2 * PIECE + 1, seed=13)
    head = header(NAME, "racing", size=len(data), sha256=sha256_hex(data))
    requests = PausingRequests(head, data, pause_at=PIECE + 1)
    with raw_stub(server.address) as stub:
        future = stub.UploadFile.future(iter(requests), timeout=WAIT_S)
        assert requests.paused.wait(WAIT_S)
        wait_committed(client, "racing", PIECE)
        if change == "seal":
            sealed = client.seal_version("m", v1, cancel_uploads=True)  # else refused
        else:
            client.delete_version("m", v1)
        requests.release(finish=True)
        with pytest.raises(grpc.RpcError) as caught:
            future.result(timeout=WAIT_S)
    err = from_rpc_error(caught.value)
    assert err.code is grpc.StatusCode.FAILED_PRECONDITION
    assert err.reason == ("VERSION_SEALED" if change == "seal" else "VERSION_DELETED")
    if change == "delete":
        client.undelete_version("m", v1)
    assert_nothing_visible(client, "m", v1)
    if change == "seal":
        assert client.get_version("m", v1).manifest_digest == sealed.manifest_digest


def test_concurrent_uploads_to_one_file_id_one_wins(
    server: RegistryServer, client: RegistryClient, v1: int
) -> None:
    first, second = data_of(PIECE + 10, seed=14), data_of(PIECE + 20, seed=15)
    streams = [
        PausingRequests(header(NAME, uid, size=len(d), sha256=sha256_hex(d)), d, pause_at=PIECE)
        for uid, d in [("one", first), ("two", second)]
    ]
    with raw_stub(server.address) as stub:
        futures = [stub.UploadFile.future(iter(s), timeout=WAIT_S) for s in streams]
        for s, uid in zip(streams, ["one", "two"], strict=True):
            assert s.paused.wait(WAIT_S)
            wait_committed(client, uid, PIECE)
        streams[0].release(finish=True)
        winner = futures[0].result(timeout=WAIT_S)
        streams[1].release(finish=True)
        with pytest.raises(grpc.RpcError) as caught:
            futures[1].result(timeout=WAIT_S)
    err = from_rpc_error(caught.value)
    assert (err.code, err.reason) == (grpc.StatusCode.ALREADY_EXISTS, "FILE_ALREADY_EXISTS")
    assert winner.sha256 == sha256_hex(first)
    assert download(client, "m", v1) == first
    v = client.get_version("m", v1)
    assert (v.file_count, v.total_size_bytes) == (1, len(first))


# -- garbage collection ---------------------------------------------------------------------------
@pytest.fixture
def gc_server(server_config: Config) -> Iterator[RegistryServer]:
    """A server whose GC and purge act at once (grace and retention 0)."""
    config = dataclasses.replace(server_config, gc_grace_hours=0, retention_hours=0)
    with serving(config) as service:
        yield service


@pytest.fixture
def gc_client(gc_server: RegistryServer) -> Iterator[RegistryClient]:
    with RegistryClient(gc_server.address, timeout=30, chunk_size=64 * KiB) as c:
        yield c


@pytest.fixture
def gc_replica(gc_server: RegistryServer) -> Iterator[RegistryServer]:
    """Where GC runs in the race below: on PostgreSQL another replica of ``gc_server``'s
    database and blob store (its own use cases and pools); on SQLite ``gc_server`` itself."""
    if not gc_server.config.database_url.startswith("postgresql"):
        yield gc_server
        return
    with serving(gc_server.config) as service:
        yield service


def test_gc_removes_purged_blobs_and_keeps_referenced_ones(
    gc_server: RegistryServer, gc_client: RegistryClient
) -> None:
    client = gc_client
    root = blob_root(gc_server.config.blob_url)
    only_v1, shared, only_v2 = data_of(1000, 1), data_of(PIECE + 1, 2), data_of(3000, 3)
    client.create_model("m")
    v1 = client.create_version("m").version_number
    v2 = client.create_version("m").version_number
    client.upload_file("m", v1, io.BytesIO(only_v1), file_id="own")
    client.upload_file("m", v1, io.BytesIO(shared), file_id="shared")
    client.upload_file("m", v2, io.BytesIO(shared), file_id="payload")
    client.upload_file("m", v2, io.BytesIO(only_v2), file_id="own")
    digests = {sha256_hex(d) for d in (only_v1, shared, only_v2)}
    assert {p.name for p in stored_blobs(root)} == digests

    gc_server.run_maintenance()  # nothing is unreferenced yet
    assert {p.name for p in stored_blobs(root)} == digests

    client.delete_version("m", v1)
    gc_server.run_maintenance()  # retention 0: purged, then its own blob collected
    with pytest.raises(NotFoundError):
        client.get_version("m", v1)
    assert {p.name for p in stored_blobs(root)} == {sha256_hex(shared), sha256_hex(only_v2)}
    assert download(client, "m", v2) == shared
    assert download(client, "m", v2, "own") == only_v2


def test_abandoned_upload_survives_maintenance_within_grace(
    server: RegistryServer, client: RegistryClient, v1: int
) -> None:
    data = data_of(2 * PIECE, seed=4)
    with raw_stub(server.address) as stub:
        upload_error(stub, [header(NAME, "left", size=len(data)), *chunks_of(data[:PIECE], 8192)])
    server.run_maintenance()  # default grace: 24 h
    assert client.get_upload_status("left").committed_size_bytes == PIECE
    assert len(stored_uploads(blob_root(server.config.blob_url))) == 1


def test_gc_removes_abandoned_uploads_after_grace(
    gc_server: RegistryServer, gc_client: RegistryClient
) -> None:
    root = blob_root(gc_server.config.blob_url)
    data = data_of(2 * PIECE, seed=4)
    gc_client.create_model("m")
    n = gc_client.create_version("m").version_number
    with raw_stub(gc_server.address) as stub:
        name = file_name("m", n)
        upload_error(stub, [header(name, "left", size=len(data)), *chunks_of(data[:PIECE], 8192)])
    assert len(stored_uploads(root)) == 1
    gc_server.run_maintenance()
    assert stored_uploads(root) == []
    with pytest.raises(NotFoundError):
        gc_client.get_upload_status("left")
    assert_nothing_visible(gc_client, "m", n)
    assert stored_blobs(root) == []


ROUNDS = 20


def test_gc_concurrent_with_uploads_of_the_same_content(
    gc_server: RegistryServer, gc_client: RegistryClient, gc_replica: RegistryServer
) -> None:
    """Maintenance runs in a loop while each round deletes the only version holding some bytes
    (making its blob due for collection) and at once uploads the same bytes into new versions;
    every file that was published must stay readable and keep its blob. On PostgreSQL the
    maintenance runs on another replica than the uploads (GC there sees the uploads' leases, not
    their streams)."""
    client = gc_client
    root = blob_root(gc_server.config.blob_url)
    client.create_model("m")
    stop = threading.Event()
    runs: list[int] = []
    failures: list[BaseException] = []

    def maintain() -> None:
        while not stop.is_set():
            try:
                gc_replica.run_maintenance()
                runs.append(1)
            except BaseException as e:  # recorded, asserted below
                failures.append(e)

    thread = threading.Thread(target=maintain, name="gc-loop")
    thread.start()
    kept: list[tuple[int, bytes]] = []
    upload_errors: list[RegistryError] = []
    try:
        for round_ in range(ROUNDS):
            start = len(runs)
            data = data_of(24 * KiB + round_ % 3, seed=round_ % 3)
            doomed = client.create_version("m").version_number
            client.upload_file("m", doomed, io.BytesIO(data))
            client.delete_version("m", doomed)
            for _ in range(2):
                n = client.create_version("m").version_number
                try:
                    client.upload_file("m", n, io.BytesIO(data))
                except RegistryError as err:  # a clean failure is allowed, a lost byte is not
                    upload_errors.append(err)
                    assert_nothing_visible(client, "m", n)
                    continue
                if round_ % 2:  # odd rounds drop their copies too: the blob comes and goes
                    client.delete_version("m", n)
                else:
                    kept.append((n, data))
            # At least one whole maintenance run within every round (usually many).
            wait_for(lambda start=start: len(runs) > start + 1, "maintenance runs")
    finally:
        stop.set()
        thread.join(WAIT_S)
    assert not failures, failures
    assert len(kept) >= ROUNDS - 2, [(e.code, e.reason, e.message) for e in upload_errors]
    for n, data in kept:
        assert download(client, "m", n) == data, f"version {n}"
    assert {p.name for p in stored_blobs(root)} == {sha256_hex(d) for _, d in kept}
    assert stored_uploads(root) == []


def test_gc_running_while_a_file_is_published(
    gc_server: RegistryServer,
    gc_client: RegistryClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The worst moment for GC: the content's only other file was just deleted (so the blob
    is unreferenced and due) and a new file with the same bytes has its blob committed but is
    not yet inserted. Maintenance runs to completion at exactly that point, on another thread;
    the join is bounded because a correct server may make GC wait for the publish."""
    client = gc_client
    root = blob_root(gc_server.config.blob_url)
    data = data_of(PIECE + 3, seed=30)
    client.create_model("m")
    doomed = client.create_version("m").version_number
    client.upload_file("m", doomed, io.BytesIO(data))
    client.delete_version("m", doomed)  # purged by the next maintenance run (retention 0)
    kept = client.create_version("m").version_number

    original = gc_server.blobs.commit_upload
    gc_failures: list[BaseException] = []

    def maintain() -> None:
        try:
            gc_server.run_maintenance()
        except BaseException as e:
            gc_failures.append(e)

    def commit_then_collect(upload_id: str, size: int, key: str) -> bool:
        created = original(upload_id, size, key)
        gc = threading.Thread(target=maintain, name="gc-at-the-worst-moment")
        gc.start()
        gc.join(2.0)
        return created

    monkeypatch.setattr(gc_server.blobs, "commit_upload", commit_then_collect)
    client.upload_file("m", kept, io.BytesIO(data))
    monkeypatch.undo()
    for thread in threading.enumerate():
        if thread.name == "gc-at-the-worst-moment":
            thread.join(WAIT_S)
    assert not gc_failures, gc_failures
    with pytest.raises(NotFoundError):
        client.get_version("m", doomed)  # the purge did run
    gc_server.run_maintenance()
    assert [p.name for p in stored_blobs(root)] == [sha256_hex(data)]
    assert download(client, "m", kept) == data


def test_abandoned_upload_state_after_gc_is_clean_for_resume(
    gc_server: RegistryServer, gc_client: RegistryClient
) -> None:
    """A client resuming an upload that GC removed starts over (NOT_FOUND → offset 0)."""
    gc_client.create_model("m")
    n = gc_client.create_version("m").version_number
    data = data_of(2 * PIECE + 9, seed=21)
    with raw_stub(gc_server.address) as stub:
        head = header(file_name("m", n), "revived", size=len(data))
        upload_error(stub, [head, *chunks_of(data[:PIECE], 8192)])
    gc_server.run_maintenance()
    file = gc_client.upload_file("m", n, io.BytesIO(data), upload_id="revived")
    assert file.sha256 == sha256_hex(data)
    assert download(gc_client, "m", n) == data
    assert gc_client.get_version("m", n).state == res.VERSION_STATE_DRAFT
