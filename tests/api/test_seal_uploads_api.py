"""Sealing a version while uploads into it are unfinished: refused (UPLOADS_IN_PROGRESS, naming
them) unless ``cancel_uploads``, which ends them and removes their bytes at once; a stream
still connected ends; seal and a committing upload race to one consistent outcome."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest

from modelregistry.client import (
    FailedPreconditionError,
    NotFoundError,
    RegistryClient,
    RegistryError,
    from_rpc_error,
)
from modelregistry.v1 import payload_pb2_grpc as pl_grpc
from modelregistry.v1 import resources_pb2 as res
from modelregistry_server.app import RegistryServer, build_server
from modelregistry_server.config import Config
from tests.api.registry_helpers import expect_error, unchanged
from tests.support.payload_helpers import (
    PIECE,
    WAIT_S,
    KiB,
    PausingRequests,
    SteppedRequests,
    assert_nothing_visible,
    blob_root,
    chunks_of,
    data_of,
    file_name,
    full_upload,
    header,
    raw_stub,
    raw_upload,
    sha256_hex,
    stored_uploads,
    upload_error,
    wait_committed,
)

RACE_ROUNDS = 8


@pytest.fixture
def v1(client: RegistryClient) -> int:
    """Model ``m`` with one DRAFT version (number 1)."""
    client.create_model("m")
    return int(client.create_version("m").version_number)


def _partial(
    stub: pl_grpc.PayloadServiceStub, upload_id: str, data: bytes, sent: int, file_id: str
) -> None:
    """Leave an unfinished upload of ``data`` with ``sent`` bytes received (SIZE_MISMATCH)."""
    name = file_name("m", 1, file_id)
    head = header(name, upload_id, size=len(data), sha256=sha256_hex(data))
    err = upload_error(stub, [head, *chunks_of(data[:sent], 64 * KiB)])
    assert err.reason == "SIZE_MISMATCH"


def test_seal_refuses_unfinished_uploads_and_names_them(
    server: RegistryServer, client: RegistryClient, v1: int
) -> None:
    data = data_of(2 * PIECE, seed=1)
    with raw_stub(server.address) as stub:
        full_upload(stub, file_name("m", v1, "done"), "finished", data[:1000])
        _partial(stub, "half-a", data, PIECE, "a")
        _partial(stub, "half-b", data, 10, "b")
    with unchanged(client), expect_error(FailedPreconditionError, "UPLOADS_IN_PROGRESS") as err:
        client.seal_version("m", v1)
    assert err.value.metadata == {"upload_ids": "half-a,half-b", "more_uploads": "false"}
    assert "half-a" in err.value.message and "cancel_uploads" in err.value.message
    # Nothing was cancelled: the uploads still resume and finish, and then the seal passes.
    with raw_stub(server.address) as stub:
        for upload_id, file_id in (("half-a", "a"), ("half-b", "b")):
            committed = client.get_upload_status(upload_id).committed_size_bytes
            head = header(
                file_name("m", v1, file_id),
                upload_id,
                size=len(data),
                sha256=sha256_hex(data),
                write_offset=committed,
            )
            raw_upload(stub, [head, *chunks_of(data, 64 * KiB, committed)])
    sealed = client.seal_version("m", v1)
    assert sealed.state == res.VERSION_STATE_READY and sealed.file_count == 3


def test_the_error_names_a_bounded_number_of_uploads(
    server: RegistryServer, client: RegistryClient, v1: int
) -> None:
    with raw_stub(server.address) as stub:
        for i in range(12):
            _partial(stub, f"u{i:02d}", b"x" * 100, 10, f"f{i}")
    with expect_error(FailedPreconditionError, "UPLOADS_IN_PROGRESS") as err:
        client.seal_version("m", v1)
    assert err.value.metadata["upload_ids"] == ",".join(f"u{i:02d}" for i in range(10))
    assert err.value.metadata["more_uploads"] == "true"
    sealed = client.seal_version("m", v1, cancel_uploads=True)
    assert sealed.state == res.VERSION_STATE_READY and sealed.file_count == 0
    for i in range(12):
        with expect_error(NotFoundError, "UPLOAD_NOT_FOUND"):
            client.get_upload_status(f"u{i:02d}")


def test_cancel_uploads_ends_them_and_removes_their_bytes(
    server: RegistryServer, client: RegistryClient, v1: int
) -> None:
    root = blob_root(server.config.blob_url)
    data = data_of(3 * PIECE, seed=2)
    with raw_stub(server.address) as stub:
        full_upload(stub, file_name("m", v1, "kept"), "finished", data[:500])
        _partial(stub, "half", data, 2 * PIECE, "half")
    assert len(stored_uploads(root)) == 1
    sealed = client.seal_version("m", v1, cancel_uploads=True)
    assert (sealed.state, sealed.file_count) == (res.VERSION_STATE_READY, 1)
    assert [f.name for f in client.list_files("m", v1)] == [file_name("m", v1, "kept")]
    assert stored_uploads(root) == []
    with expect_error(NotFoundError, "UPLOAD_NOT_FOUND"):
        client.get_upload_status("half")
    # Resuming it now is refused: the version is sealed.
    with raw_stub(server.address) as stub:
        head = header(file_name("m", v1, "half"), "half", size=len(data), write_offset=2 * PIECE)
        err = upload_error(stub, [head])
    assert (err.code, err.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "VERSION_SEALED")
    # Without unfinished uploads the flag changes nothing.
    client.create_version("m")
    assert client.seal_version("m", 2, cancel_uploads=True).state == res.VERSION_STATE_READY


def test_a_connected_stream_ends_when_its_version_is_sealed(
    server: RegistryServer, client: RegistryClient, v1: int
) -> None:
    """The stream ends at its next message, well inside a piece, with the sender blocked."""
    root = blob_root(server.config.blob_url)
    data = data_of(4 * PIECE, seed=3)
    head = header(file_name("m", v1), "live", size=len(data), sha256=sha256_hex(data))
    requests = SteppedRequests(head, data, pause_at=2 * PIECE + 5 * KiB, step=10 * KiB)
    try:
        with raw_stub(server.address) as stub:
            future = stub.UploadFile.future(iter(requests), timeout=WAIT_S)
            assert requests.paused.wait(WAIT_S)
            wait_committed(client, "live", 2 * PIECE)
            with expect_error(FailedPreconditionError, "UPLOADS_IN_PROGRESS"):
                client.seal_version("m", v1)
            sealed = client.seal_version("m", v1, cancel_uploads=True)
            requests.go.set()  # one chunk that completes no piece; then the sender blocks
            # Ends before ``done``: a server that stopped only at a piece would wait for more
            # data and the call would end DEADLINE_EXCEEDED.
            with pytest.raises(grpc.RpcError) as caught:
                future.result(timeout=WAIT_S)
    finally:
        requests.done.set()
    err = from_rpc_error(caught.value)
    assert (err.code, err.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "VERSION_SEALED")
    assert (sealed.state, sealed.file_count) == (res.VERSION_STATE_READY, 0)
    assert_nothing_visible(client, "m", v1)
    assert client.get_version("m", v1).manifest_digest == sealed.manifest_digest
    assert stored_uploads(root) == []


def test_a_stream_on_another_replica_ends_when_its_version_is_sealed(
    server: RegistryServer, server_config: Config, client: RegistryClient, v1: int
) -> None:
    """Two servers on one database and blob store: the seal on one ends the stream on the
    other at its next piece, with the same error, and leaves no bytes behind."""
    root = blob_root(server.config.blob_url)
    other = build_server(server_config)
    other.start()
    data = data_of(4 * PIECE, seed=6)
    head = header(file_name("m", v1), "remote", size=len(data), sha256=sha256_hex(data))
    requests = PausingRequests(head, data, pause_at=2 * PIECE)
    try:
        with raw_stub(server.address) as stub, RegistryClient(other.address) as elsewhere:
            future = stub.UploadFile.future(iter(requests), timeout=WAIT_S)
            assert requests.paused.wait(WAIT_S)
            wait_committed(client, "remote", 2 * PIECE)
            sealed = elsewhere.seal_version("m", v1, cancel_uploads=True)
            requests.release(finish=True)
            with pytest.raises(grpc.RpcError) as caught:
                future.result(timeout=WAIT_S)
    finally:
        other.stop(0)
    err = from_rpc_error(caught.value)
    assert (err.code, err.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "VERSION_SEALED")
    assert (sealed.state, sealed.file_count) == (res.VERSION_STATE_READY, 0)
    assert_nothing_visible(client, "m", v1)
    assert stored_uploads(root) == []


def test_cancel_upload_ends_a_connected_stream(
    server: RegistryServer, client: RegistryClient, v1: int
) -> None:
    """The stream ends at its next message, well inside a piece, with the sender blocked."""
    root = blob_root(server.config.blob_url)
    data = data_of(4 * PIECE, seed=4)
    head = header(file_name("m", v1), "doomed", size=len(data), sha256=sha256_hex(data))
    requests = SteppedRequests(head, data, pause_at=PIECE + 5 * KiB, step=10 * KiB)
    try:
        with raw_stub(server.address) as stub:
            future = stub.UploadFile.future(iter(requests), timeout=WAIT_S)
            assert requests.paused.wait(WAIT_S)
            wait_committed(client, "doomed", PIECE)
            client.cancel_upload("doomed")
            requests.go.set()
            with pytest.raises(grpc.RpcError) as caught:
                future.result(timeout=WAIT_S)
    finally:
        requests.done.set()
    err = from_rpc_error(caught.value)
    assert (err.code, err.reason) == (grpc.StatusCode.NOT_FOUND, "UPLOAD_NOT_FOUND")
    assert_nothing_visible(client, "m", v1)
    assert stored_uploads(root) == []
    assert client.get_version("m", v1).state == res.VERSION_STATE_DRAFT


@pytest.mark.parametrize("cancel", [False, True], ids=["refuse", "cancel"])
def test_seal_and_a_committing_upload_race_to_one_outcome(
    server: RegistryServer, client: RegistryClient, cancel: bool
) -> None:
    """The upload's last message and the seal arrive together: either the file is published
    and sealed with the version, or (with cancel_uploads) it is gone without a trace."""
    root = blob_root(server.config.blob_url)
    client.create_model("m")
    data = data_of(PIECE + 7 * KiB, seed=5)
    with raw_stub(server.address) as stub, ThreadPoolExecutor(2) as pool:
        for round_ in range(RACE_ROUNDS):
            number = int(client.create_version("m").version_number)
            upload_id = f"race-{round_}"
            head = header(
                file_name("m", number), upload_id, size=len(data), sha256=sha256_hex(data)
            )
            requests = PausingRequests(head, data, pause_at=len(data) - 1)
            uploaded = pool.submit(raw_upload, stub, iter(requests))
            assert requests.paused.wait(WAIT_S)
            wait_committed(client, upload_id, PIECE)  # the session is open, the rest waits
            go = threading.Barrier(2, timeout=WAIT_S)

            def seal(
                number: int = number, go: threading.Barrier = go
            ) -> res.ModelVersion | RegistryError:
                go.wait()
                try:
                    return client.seal_version("m", number, cancel_uploads=cancel)
                except RegistryError as exc:
                    return exc

            sealing = pool.submit(seal)
            go.wait()
            requests.release(finish=True)
            try:
                uploaded.result(timeout=WAIT_S)
                upload_won = True
            except RegistryError as exc:
                assert cancel, exc
                assert exc.reason in ("VERSION_SEALED", "UPLOAD_NOT_FOUND"), exc
                upload_won = False
            sealed = sealing.result(timeout=WAIT_S)
            if isinstance(sealed, RegistryError):
                # Refused while the upload was unfinished: the upload went on and won.
                assert not cancel and sealed.reason == "UPLOADS_IN_PROGRESS", sealed
                assert upload_won
                sealed = client.seal_version("m", number)
            version = client.get_version("m", number)
            files = list(client.list_files("m", number))
            assert version.state == res.VERSION_STATE_READY
            assert version.file_count == len(files) == int(upload_won)
            assert version.manifest_digest == sealed.manifest_digest
            if not upload_won:
                with pytest.raises(NotFoundError):
                    client.get_upload_status(upload_id)
            assert stored_uploads(root) == []
