"""ListUploads and the client's automatic resume, through the shipped client, on SQLite and
PostgreSQL: a crashed client's upload is found without its id and continued from its committed
size; an upload of other bytes never continues someone else's session."""

from __future__ import annotations

import hashlib
import io
import subprocess
import sys
import textwrap
from collections.abc import Iterable
from pathlib import Path

import pytest

from modelregistry.client import (
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    RegistryClient,
)
from modelregistry.v1 import payload_pb2 as pl
from modelregistry_server.app import RegistryServer
from modelregistry_server.domain.identity import Caller
from modelregistry_server.domain.names import VersionRef
from tests.api.registry_helpers import expect_error
from tests.support.payload_helpers import (
    PIECE,
    WAIT_S,
    KiB,
    PausingRequests,
    data_of,
    file_name,
    full_upload,
    header,
    raw_stub,
    sha256_hex,
    upload_error,
    wait_committed,
    wait_for,
)


class ClientCrashed(Exception):
    """Stands for the death of the uploading process."""


@pytest.fixture
def v1(client: RegistryClient) -> int:
    """Model ``m`` with one DRAFT version (number 1)."""
    client.create_model("m")
    return int(client.create_version("m").version_number)


@pytest.fixture
def writes(server: RegistryServer, monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """``(offset, bytes)`` of every piece the server's blob store writes from now on."""
    recorded: list[tuple[int, int]] = []
    original = server.blobs.write_upload

    def recording(upload_id: str, offset: int, chunks: Iterable[bytes]) -> int:
        written = original(upload_id, offset, chunks)
        recorded.append((offset, written))
        return written

    monkeypatch.setattr(server.blobs, "write_upload", recording)
    return recorded


def unfinished(client: RegistryClient, file_id: str = "payload") -> list[pl.UploadStatus]:
    return list(client.list_uploads("m", 1, filter=f'state = ACTIVE AND file_id = "{file_id}"'))


def crash_mid_upload(
    server: RegistryServer,
    path: Path,
    *,
    file_id: str = "payload",
    pieces: int = 3,
    sha256: str | None = None,
) -> pl.UploadStatus:
    """Upload ``path`` with a client that dies once ``pieces`` pieces are committed (its
    stream is cut, the client dropped); returns the session it left, found by listing.
    With ``sha256`` the crashed upload declared its digest in the header."""
    observer = RegistryClient(server.address, timeout=WAIT_S)
    doomed = RegistryClient(server.address, timeout=WAIT_S, chunk_size=64 * KiB)

    def committed() -> pl.UploadStatus | None:
        found = unfinished(observer, file_id)
        return found[0] if found and found[0].committed_size_bytes >= pieces * PIECE else None

    def progress(sent: int, total: int | None) -> None:
        if sent > pieces * PIECE:  # this stream's sending thread waits here, then dies
            wait_for(committed, f"{pieces} pieces to be committed")
            raise ClientCrashed

    with pytest.raises(ClientCrashed):
        doomed.upload_file("m", 1, path, file_id=file_id, progress=progress, sha256=sha256)
    doomed.close()
    del doomed

    try:
        return settled(server, observer, committed())
    finally:
        observer.close()


def settled(
    server: RegistryServer, client: RegistryClient, left: pl.UploadStatus | None
) -> pl.UploadStatus:
    """The session ``left`` once the server has ended the stream that was writing it: until
    then it refuses a second stream (UPLOAD_CONFLICT); afterwards a probe at a wrong offset
    gets WRONG_OFFSET."""
    assert left is not None
    probe = header(left.name, left.upload_id, write_offset=left.committed_size_bytes + 1)

    def at_rest() -> pl.UploadStatus | None:
        with raw_stub(server.address) as stub:
            busy = upload_error(stub, [probe]).reason == "UPLOAD_CONFLICT"
        return None if busy else client.get_upload_status(left.upload_id)

    return wait_for(at_rest, "the server to end the cut stream")


# -- ListUploads ----------------------------------------------------------------------------------
def test_list_uploads_describes_each_session(
    server: RegistryServer, client: RegistryClient, v1: int
) -> None:
    data = data_of(3 * PIECE + 5, seed=1)
    name = file_name("m", v1, "weights/model.bin")
    with raw_stub(server.address) as stub:
        requests = PausingRequests(
            header(name, "cut", size=len(data), sha256=sha256_hex(data)), data, pause_at=PIECE + 9
        )
        future = stub.UploadFile.future(iter(requests), timeout=WAIT_S)
        assert requests.paused.wait(WAIT_S)
        wait_committed(client, "cut", PIECE)
        future.cancel()
        requests.release()
        done = full_upload(stub, file_name("m", v1, "config.json"), "done", b"{}")
        full_upload(stub, file_name("m", v1, "free"), "undeclared", b"xyz", declare=False)

    uploads = {u.upload_id: u for u in client.list_uploads("m", v1)}
    assert list(uploads) == ["cut", "done", "undeclared"]  # ordered by upload id
    cut = uploads["cut"]
    assert (cut.name, cut.file_id, cut.state) == (name, "weights/model.bin", pl.UPLOAD_STATE_ACTIVE)
    assert (cut.committed_size_bytes, cut.size_bytes, cut.sha256) == (
        PIECE,
        len(data),
        sha256_hex(data),
    )
    assert cut.HasField("size_bytes") and not cut.HasField("file")
    assert cut.create_time.ToDatetime() <= cut.update_time.ToDatetime()
    finished = uploads["done"]
    assert (finished.state, finished.committed_size_bytes) == (pl.UPLOAD_STATE_COMMITTED, 2)
    assert finished.sha256 == done.sha256
    free = uploads["undeclared"]
    assert not free.HasField("size_bytes") and free.sha256 == ""
    assert free.state == pl.UPLOAD_STATE_COMMITTED
    # GetUploadStatus carries the same description (and the file once committed).
    status = client.get_upload_status("cut")
    assert (status.file_id, status.sha256, status.create_time) == (
        cut.file_id,
        cut.sha256,
        cut.create_time,
    )
    assert client.get_upload_status("done").file.sha256 == done.sha256

    # Filters and orders.
    active = client.list_uploads("m", v1, filter="state = ACTIVE")
    assert [u.upload_id for u in active] == ["cut"]
    by_file = client.list_uploads("m", v1, filter='file_id = "weights/*"')
    assert [u.upload_id for u in by_file] == ["cut"]
    by_size = client.list_uploads("m", v1, order_by="committed_size_bytes desc")
    assert [u.upload_id for u in by_size] == ["cut", "undeclared", "done"]
    # The version may be named like any read: sealed, by alias or `latest`.
    client.cancel_upload("cut")
    client.seal_version("m", v1)
    client.set_alias("m", "champion", v1)
    for version in (v1, "latest", "champion"):
        assert [u.upload_id for u in client.list_uploads("m", version)] == ["done", "undeclared"]
    client.create_version("m")
    assert list(client.list_uploads("m", 2)) == []


def test_list_uploads_pages_and_errors(
    server: RegistryServer, client: RegistryClient, v1: int
) -> None:
    with raw_stub(server.address) as stub:
        for i in range(5):
            full_upload(stub, file_name("m", v1, f"f{i}"), f"u{i}", bytes([i]) * (i + 1))
    tokens: list[str] = []
    seen: list[str] = []
    page = client.list_uploads_page("m", v1, page_size=2)
    for _ in range(10):
        seen += [u.upload_id for u in page.uploads]
        if not page.next_page_token:
            break
        tokens.append(page.next_page_token)
        page = client.list_uploads_page("m", v1, page_size=2, page_token=page.next_page_token)
    assert seen == ["u0", "u1", "u2", "u3", "u4"] and len(tokens) == 2
    assert [u.upload_id for u in client.list_uploads("m", v1, page_size=1)] == seen

    with expect_error(InvalidArgumentError, "INVALID_PAGE_TOKEN", field="page_token"):
        client.list_uploads_page("m", v1, filter="state = ACTIVE", page_token=tokens[0])
    with expect_error(InvalidArgumentError, "INVALID_PAGE_TOKEN", field="page_token"):
        client.list_uploads_page("m", v1, page_token="not-a-token")
    with expect_error(InvalidArgumentError, "INVALID_FILTER", field="filter"):
        client.list_uploads_page("m", v1, filter="labels.x = y")
    with expect_error(InvalidArgumentError, "INVALID_FILTER", field="filter"):
        client.list_uploads_page("m", v1, filter="state = PAUSED")
    with expect_error(InvalidArgumentError, "INVALID_ORDER_BY", field="order_by"):
        client.list_uploads_page("m", v1, order_by="name")
    with expect_error(InvalidArgumentError, "INVALID_ARGUMENT", field="page_size"):
        client.list_uploads_page("m", v1, page_size=-1)
    with expect_error(InvalidArgumentError, "INVALID_ARGUMENT", field="parent"):
        client.list_uploads_page("m", "0")
    with expect_error(InvalidArgumentError, "INVALID_ARGUMENT", field="parent"):
        client.list_uploads_page("m", "models/m/files/x")
    with expect_error(NotFoundError, "VERSION_NOT_FOUND"):
        client.list_uploads_page("m", 9)
    with expect_error(NotFoundError, "MODEL_NOT_FOUND"):
        client.list_uploads_page("nope", 1)


def test_list_uploads_is_tenant_scoped(
    server: RegistryServer, client: RegistryClient, v1: int
) -> None:
    """Another tenant's identically named version never shows this tenant's sessions (the API
    is single-tenant until authentication lands, so the use case is called directly)."""
    with raw_stub(server.address) as stub:
        full_upload(stub, file_name("m", v1), "mine", b"data")
    other = Caller(tenant="other")
    server.registry.create_model(other, "m", {})
    server.registry.create_version(other, "m", {})
    ref = VersionRef("m", number=v1)
    assert server.payloads.list_uploads(other, ref) == ([], "")
    sessions, _ = server.payloads.list_uploads(Caller(), ref)
    assert [s.upload_id for s in sessions] == ["mine"]


def test_upload_errors_stay_those_of_the_upload(client: RegistryClient, v1: int) -> None:
    """The look-up of unfinished uploads never replaces the upload's own answer."""
    for version, file_id in ((v1, "../x"), ("latest", "payload"), ("0", "payload")):
        with expect_error(InvalidArgumentError, "INVALID_ARGUMENT", field="header.name"):
            client.upload_file("m", version, io.BytesIO(b"x"), file_id=file_id)
    with expect_error(NotFoundError, "VERSION_NOT_FOUND"):
        client.upload_file("m", 7, io.BytesIO(b"x"))
    client.seal_version("m", v1)
    with expect_error(FailedPreconditionError, "VERSION_SEALED"):
        client.upload_file("m", v1, io.BytesIO(b"x"))


# -- automatic resume -----------------------------------------------------------------------------
def test_fresh_client_resumes_a_crashed_clients_upload(
    server: RegistryServer,
    client: RegistryClient,
    v1: int,
    tmp_path: Path,
    writes: list[tuple[int, int]],
) -> None:
    data = data_of(5 * PIECE + 777, seed=2)
    path = tmp_path / "model.bin"
    path.write_bytes(data)
    left = crash_mid_upload(server, path)
    assert left.committed_size_bytes == 3 * PIECE
    assert list(client.list_files("m", v1)) == []
    writes.clear()

    progress: list[int] = []
    with RegistryClient(server.address, timeout=WAIT_S, chunk_size=64 * KiB) as fresh:
        file = fresh.upload_file("m", v1, path, progress=lambda sent, _: progress.append(sent))
        # Only the bytes after the committed size were sent, and stored.
        assert writes[0][0] == 3 * PIECE
        assert sum(n for _, n in writes) == len(data) - 3 * PIECE
        assert progress[0] == 3 * PIECE + 64 * KiB and progress[-1] == len(data)
        assert len(progress) == -(-(len(data) - 3 * PIECE) // (64 * KiB))
        # It continued the crashed client's session, which is now the file.
        status = fresh.get_upload_status(left.upload_id)
        assert status.state == pl.UPLOAD_STATE_COMMITTED
        assert status.file.name == file.name
        assert [u.upload_id for u in fresh.list_uploads("m", v1)] == [left.upload_id]
        # The file is whole and verified end to end.
        assert file.sha256 == hashlib.sha256(data).hexdigest()
        out = io.BytesIO()
        fresh.download_file("m", v1, out)
        assert out.getvalue() == data


def test_other_bytes_to_the_same_file_start_their_own_upload(
    server: RegistryServer,
    client: RegistryClient,
    v1: int,
    tmp_path: Path,
    writes: list[tuple[int, int]],
) -> None:
    first = tmp_path / "first.bin"
    first.write_bytes(data_of(4 * PIECE, seed=3))
    crash_mid_upload(server, first, pieces=2)
    # Same size, other bytes. The crashed client hashed while sending, so its session
    # declares no sha256 and is continued; the digest at the end refuses it (the session is
    # discarded, nothing of it published) and the client uploads its bytes anew.
    other = data_of(4 * PIECE, seed=4)
    writes.clear()
    file = client.upload_file("m", v1, io.BytesIO(other))
    anew = [offset for offset, _ in writes].index(0)
    assert writes[0][0] == 2 * PIECE and sum(n for _, n in writes[:anew]) == 2 * PIECE
    assert sum(n for _, n in writes[anew:]) == len(other)
    assert file.sha256 == sha256_hex(other)
    assert unfinished(client) == []
    out = io.BytesIO()
    client.download_file("m", v1, out)
    assert out.getvalue() == other


def test_other_bytes_leave_an_upload_that_declared_its_digest_alone(
    server: RegistryServer,
    client: RegistryClient,
    v1: int,
    tmp_path: Path,
    writes: list[tuple[int, int]],
) -> None:
    first = tmp_path / "first.bin"
    first.write_bytes(data_of(4 * PIECE, seed=3))
    left = crash_mid_upload(server, first, pieces=2, sha256=sha256_hex(first.read_bytes()))
    # Same size, other bytes: the sha256 differs, so the session is not continued.
    other = data_of(4 * PIECE, seed=4)
    writes.clear()
    file = client.upload_file("m", v1, io.BytesIO(other))
    assert writes[0][0] == 0 and sum(n for _, n in writes) == len(other)
    assert file.sha256 == sha256_hex(other)
    # The other session is untouched and still listed as unfinished.
    assert [(u.upload_id, u.committed_size_bytes) for u in unfinished(client)] == [
        (left.upload_id, 2 * PIECE)
    ]
    out = io.BytesIO()
    client.download_file("m", v1, out)
    assert out.getvalue() == other


def test_same_bytes_to_another_file_or_opted_out_start_over(
    server: RegistryServer,
    client: RegistryClient,
    v1: int,
    tmp_path: Path,
    writes: list[tuple[int, int]],
) -> None:
    data = data_of(3 * PIECE + 1, seed=5)
    path = tmp_path / "model.bin"
    path.write_bytes(data)
    left = crash_mid_upload(server, path, pieces=2)
    writes.clear()
    client.upload_file("m", v1, path, file_id="copy.bin")  # another target
    assert writes[0][0] == 0 and sum(n for _, n in writes) == len(data)
    writes.clear()
    client.upload_file("m", v1, path, resume_unfinished=False)  # asked not to
    assert writes[0][0] == 0 and sum(n for _, n in writes) == len(data)
    still = client.get_upload_status(left.upload_id)
    assert (still.state, still.committed_size_bytes) == (pl.UPLOAD_STATE_ACTIVE, 2 * PIECE)


def test_resume_picks_the_session_with_most_bytes_committed(
    server: RegistryServer,
    client: RegistryClient,
    v1: int,
    writes: list[tuple[int, int]],
) -> None:
    data = data_of(4 * PIECE, seed=6)
    name = file_name("m", v1)
    with raw_stub(server.address) as stub:
        for upload_id, at in (("less", PIECE), ("most", 3 * PIECE), ("some", 2 * PIECE)):
            requests = PausingRequests(
                header(name, upload_id, size=len(data), sha256=sha256_hex(data)),
                data,
                pause_at=at,
            )
            future = stub.UploadFile.future(iter(requests), timeout=WAIT_S)
            assert requests.paused.wait(WAIT_S)
            wait_committed(client, upload_id, at)
            future.cancel()
            requests.release()
    writes.clear()
    file = client.upload_file("m", v1, io.BytesIO(data))
    assert file.sha256 == sha256_hex(data)
    assert writes[0][0] == 3 * PIECE and sum(n for _, n in writes) == PIECE
    assert client.get_upload_status("most").state == pl.UPLOAD_STATE_COMMITTED
    assert {u.upload_id for u in unfinished(client)} == {"less", "some"}


# The uploading process: it stalls once more than three pieces were handed to gRPC, so the
# test can SIGKILL it with exactly three pieces committed.
_UPLOADER = textwrap.dedent(
    """
    import sys, threading
    from modelregistry.client import RegistryClient

    address, path, piece = sys.argv[1], sys.argv[2], int(sys.argv[3])

    def progress(sent, total):
        if sent > 3 * piece:
            threading.Event().wait(120)  # killed while waiting

    with RegistryClient(address, chunk_size=64 * 1024) as client:
        client.upload_file("m", 1, path, progress=progress)
    """
)


def test_upload_resumes_after_the_uploading_process_was_killed(
    server: RegistryServer,
    client: RegistryClient,
    v1: int,
    tmp_path: Path,
    writes: list[tuple[int, int]],
) -> None:
    data = data_of(4 * PIECE + 3, seed=7)
    path = tmp_path / "model.bin"
    path.write_bytes(data)
    child = subprocess.Popen(
        [sys.executable, "-c", _UPLOADER, server.address, str(path), str(PIECE)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:

        def three_pieces() -> pl.UploadStatus | None:
            if child.poll() is not None:
                pytest.fail(f"the uploader exited: {child.stderr.read() if child.stderr else ''}")
            found = unfinished(client)
            return found[0] if found and found[0].committed_size_bytes >= 3 * PIECE else None

        left = wait_for(three_pieces, "the uploading process to commit three pieces")
    finally:
        child.kill()
        child.wait(WAIT_S)
    left = settled(server, client, left)  # a dead stream's last partial piece is not kept
    assert left.committed_size_bytes == 3 * PIECE
    writes.clear()
    file = client.upload_file("m", v1, path)
    assert writes[0][0] == 3 * PIECE and sum(n for _, n in writes) == len(data) - 3 * PIECE
    assert client.get_upload_status(left.upload_id).state == pl.UPLOAD_STATE_COMMITTED
    assert file.sha256 == sha256_hex(data)
    out = io.BytesIO()
    client.download_file("m", v1, out)
    assert out.getvalue() == data
