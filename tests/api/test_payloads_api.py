"""PayloadService happy paths over SQLite and PostgreSQL: verified round trips at every size
boundary, ranged downloads, ``latest``/alias resolution, GetFile/ListFiles, dedup and sealing."""

from __future__ import annotations

import hashlib
import io
import threading

import grpc
import pytest

from modelregistry.client import (
    AbortedError,
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    OutOfRangeError,
    RegistryClient,
)
from modelregistry.v1 import payload_pb2 as pl
from modelregistry.v1 import resources_pb2 as res
from modelregistry_server.app import RegistryServer
from tests.support.payload_helpers import (
    MAX_CHUNK,
    PIECE,
    WAIT_S,
    GeneratedStream,
    HashingSink,
    KiB,
    MiB,
    blob_root,
    chunk,
    chunks_of,
    crc32c_of,
    data_of,
    file_name,
    full_upload,
    header,
    raw_stub,
    raw_upload,
    sha256_hex,
    stored_blobs,
    stored_uploads,
)

CHUNK = 64 * KiB  # the client fixture's chunk size
DOWNLOAD_CHUNK = 64 * KiB  # server_config.download_chunk_bytes


def draft(client: RegistryClient, model: str = "m") -> int:
    """A new DRAFT version of ``model`` (created on first use)."""
    if not any(m.name == f"models/{model}" for m in client.list_models()):
        client.create_model(model)
    return int(client.create_version(model).version_number)


def download(client: RegistryClient, model: str, version: int | str, file_id: str) -> bytes:
    out = io.BytesIO()
    client.download_file(model, version, out, file_id=file_id)
    return out.getvalue()


def assert_describes(file: res.File, name: str, data: bytes, content_type: str) -> None:
    assert file.name == name
    assert file.size_bytes == len(data)
    assert file.sha256 == sha256_hex(data)
    assert file.crc32c == crc32c_of(data)
    assert file.content_type == content_type
    assert file.create_time.seconds > 0


# -- round trips --------------------------------------------------------------------------------
SIZES = [
    0,
    1,
    CHUNK - 1,
    CHUNK,
    CHUNK + 1,
    PIECE - 1,
    PIECE,
    PIECE + 1,
    3 * PIECE + 12_345,
]


def test_round_trip_at_every_size_boundary(client: RegistryClient) -> None:
    n = draft(client)
    for i, size in enumerate(SIZES):
        data = data_of(size, seed=size)
        file_id = f"sizes/{size}.bin"
        uploaded = client.upload_file("m", n, io.BytesIO(data), file_id=file_id)
        name = file_name("m", n, file_id)
        assert_describes(uploaded, name, data, "application/octet-stream")
        assert client.get_file("m", n, file_id) == uploaded
        back = download(client, "m", n, file_id)
        assert len(back) == size and sha256_hex(back) == sha256_hex(data), f"size {size}"
        streamed = b"".join(client.iter_file("m", n, file_id=file_id))
        assert sha256_hex(streamed) == sha256_hex(data), f"size {size}"
        v = client.get_version("m", n)
        assert v.file_count == i + 1
    assert v.total_size_bytes == sum(SIZES)


@pytest.mark.parametrize(
    ("size", "chunk_size"),
    [
        (5 * MiB + 3, MAX_CHUNK),  # chunks at the limit, larger than a piece
        (PIECE * 2 + 7, 100_000),  # chunks that straddle piece boundaries
        (PIECE + 1, 1),  # single-byte tail chunk after the piece
    ],
    ids=["max-chunks", "unaligned-chunks", "tiny-tail"],
)
def test_raw_round_trip_with_other_chunkings(
    server: RegistryServer, client: RegistryClient, size: int, chunk_size: int
) -> None:
    n = draft(client)
    data = data_of(size, seed=chunk_size)
    name = file_name("m", n)
    with raw_stub(server.address) as stub:
        if chunk_size == 1:
            # Everything in 64 KiB chunks except one final 1-byte chunk.
            head = header(name, "tiny-tail", size=size, sha256=sha256_hex(data))
            body = [*chunks_of(data[: size - 1], CHUNK), chunk(size - 1, data[-1:])]
            file = raw_upload(stub, [head, *body])
        else:
            file = full_upload(stub, name, f"u{chunk_size}", data, chunk_size=chunk_size)
    assert_describes(file, name, data, "application/octet-stream")
    assert sha256_hex(download(client, "m", n, "payload")) == sha256_hex(data)


def test_undeclared_size_and_digest_are_computed(
    server: RegistryServer, client: RegistryClient
) -> None:
    n = draft(client)
    data = data_of(PIECE * 2 + 99, seed=5)
    with raw_stub(server.address) as stub:
        file = full_upload(stub, file_name("m", n), "undeclared", data, declare=False)
    assert_describes(file, file_name("m", n), data, "application/octet-stream")
    # A non-seekable source takes the same path through the client (no size, no digest).
    other = client.upload_file("m", n, _Pipe(data), file_id="streamed")
    assert (other.sha256, other.size_bytes) == (sha256_hex(data), len(data))


class _Pipe:
    """A non-seekable source: only ``read``."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def read(self, size: int = -1) -> bytes:
        return self._data.read(size)


class _CountingReader(io.BytesIO):
    """A seekable source that counts the bytes read from it."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.bytes_read = 0

    def read(self, size: int | None = -1, /) -> bytes:
        data = super().read(size)
        self.bytes_read += len(data)
        return data


def test_client_reads_a_file_once_and_the_server_checks_the_digest_at_the_end(
    client: RegistryClient,
) -> None:
    v = draft(client)
    data = data_of(3 * MiB + 17, seed=41)
    source = _CountingReader(data)
    file = client.upload_file("m", v, source)
    assert source.bytes_read == len(data)  # hashed while sending, not before
    assert file.sha256 == sha256_hex(data)
    assert download(client, "m", v, "payload") == data


def test_several_files_with_path_like_ids_and_content_types(client: RegistryClient) -> None:
    n = draft(client)
    files = {
        "payload": (data_of(1000, 1), ""),
        "tokenizer/vocab.json": (b'{"a": 1}', "application/json"),
        "tokenizer/merges.txt": (b"a b\n", "text/plain; charset=utf-8"),
        "weights/shard-00001-of-00002.safetensors": (data_of(PIECE + 5, 2), ""),
        "weights/shard-00002-of-00002.safetensors": (data_of(PIECE - 5, 3), ""),
        "d\u00e9j\u00e0/\u00fcber.bin": (b"unicode id", "application/x-custom"),
    }
    for file_id, (data, content_type) in files.items():
        client.upload_file("m", n, io.BytesIO(data), file_id=file_id, content_type=content_type)
    for file_id, (data, content_type) in files.items():
        got = client.get_file("m", n, file_id)
        assert_describes(
            got, file_name("m", n, file_id), data, content_type or "application/octet-stream"
        )
        assert download(client, "m", n, file_id) == data
    listed = list(client.list_files("m", n))
    assert [f.name for f in listed] == [file_name("m", n, i) for i in sorted(files)]
    v = client.get_version("m", n)
    assert v.file_count == len(files)
    assert v.total_size_bytes == sum(len(d) for d, _ in files.values())


# -- downloads ----------------------------------------------------------------------------------
def test_ranged_downloads(server: RegistryServer, client: RegistryClient) -> None:
    n = draft(client)
    data = data_of(3 * PIECE + 777, seed=9)
    size = len(data)
    client.upload_file("m", n, io.BytesIO(data))
    ranges = [
        (0, 0),
        (1, 0),
        (size - 1, 0),
        (10, 100),
        (PIECE - 5, 10),  # across a piece boundary
        (DOWNLOAD_CHUNK - 1, DOWNLOAD_CHUNK + 2),  # across message boundaries
        (0, size + 100),  # limit past the end: to the end
        (123, size),
        (size, 0),  # offset == size: empty
        (size, 5),
    ]
    for offset, limit in ranges:
        end = size if limit == 0 else min(size, offset + limit)
        got = b"".join(client.iter_file("m", n, offset=offset, limit=limit))
        assert got == data[offset:end], (offset, limit)

    with raw_stub(server.address) as stub:
        name = file_name("m", n)
        messages = list(stub.DownloadFile(pl.DownloadFileRequest(name=name, offset=5, limit=0)))
        assert messages[0].HasField("file")
        assert messages[0].file.size_bytes == size and messages[0].file.sha256 == sha256_hex(data)
        assert not any(m.HasField("file") for m in messages[1:])
        position = 5
        for m in messages:
            assert m.offset == position
            assert len(m.data) <= DOWNLOAD_CHUNK
            position += len(m.data)
        assert position == size
        assert b"".join(m.data for m in messages) == data[5:]

        empty = list(stub.DownloadFile(pl.DownloadFileRequest(name=name, offset=size)))
        assert len(empty) == 1 and empty[0].HasField("file") and empty[0].data == b""
        assert empty[0].offset == size

        for offset, limit, code in [
            (size + 1, 0, grpc.StatusCode.OUT_OF_RANGE),
            (-1, 0, grpc.StatusCode.INVALID_ARGUMENT),
            (0, -1, grpc.StatusCode.INVALID_ARGUMENT),
        ]:
            with pytest.raises(grpc.RpcError) as caught:
                list(
                    stub.DownloadFile(pl.DownloadFileRequest(name=name, offset=offset, limit=limit))
                )
            assert caught.value.code() is code, (offset, limit)

    with pytest.raises(OutOfRangeError) as err:
        b"".join(client.iter_file("m", n, offset=size + 1))
    assert err.value.reason == "RANGE_NOT_SATISFIABLE"


def test_empty_file_download_carries_metadata(
    server: RegistryServer, client: RegistryClient
) -> None:
    n = draft(client)
    client.upload_file("m", n, io.BytesIO(b""), file_id="empty")
    with raw_stub(server.address) as stub:
        name = file_name("m", n, "empty")
        messages = list(stub.DownloadFile(pl.DownloadFileRequest(name=name)))
    assert len(messages) == 1
    assert messages[0].file.size_bytes == 0
    assert messages[0].file.sha256 == hashlib.sha256(b"").hexdigest()
    assert messages[0].file.crc32c == 0
    assert download(client, "m", n, "empty") == b""


def test_download_by_latest_and_alias(client: RegistryClient) -> None:
    one, two, three = data_of(1000, 1), data_of(2000, 2), data_of(3000, 3)
    v1 = draft(client)
    client.upload_file("m", v1, io.BytesIO(one))
    client.seal_version("m", v1)
    client.set_alias("m", "production", v1)
    v2 = draft(client)
    client.upload_file("m", v2, io.BytesIO(two))
    client.seal_version("m", v2)
    v3 = draft(client)  # a DRAFT is never `latest`
    client.upload_file("m", v3, io.BytesIO(three))

    assert download(client, "m", "latest", "payload") == two
    assert download(client, "m", "production", "payload") == one
    assert client.get_file("m", "latest").name == file_name("m", v2)
    assert client.get_file("m", "production").name == file_name("m", v1)
    assert [f.name for f in client.list_files("m", "latest")] == [file_name("m", v2)]
    ranged = b"".join(client.iter_file("m", "production", offset=100, limit=50))
    assert ranged == one[100:150]
    client.set_alias("m", "production", v2)
    assert download(client, "m", "production", "payload") == two


def test_get_file_errors(client: RegistryClient) -> None:
    n = draft(client)
    for version, file_id, reason in [
        (n, "missing", "FILE_NOT_FOUND"),
        (99, "payload", "VERSION_NOT_FOUND"),
        ("latest", "payload", "VERSION_NOT_FOUND"),  # no READY version yet
    ]:
        with pytest.raises(NotFoundError) as caught:
            client.get_file("m", version, file_id)
        assert caught.value.reason == reason, (version, file_id)
    with pytest.raises(NotFoundError) as missing_model:
        client.get_file("nope", 1)
    assert missing_model.value.reason == "MODEL_NOT_FOUND"
    with pytest.raises(InvalidArgumentError):
        client.get_file("m", n, "../etc/passwd")


def test_list_files_paging(client: RegistryClient) -> None:
    n = draft(client)
    ids = [
        "z",
        "a/b",
        "a-b",
        "a.b",
        "A",
        "_x",
        "a/b/c",
        "tokenizer/vocab.json",
        "\u00e9",
        "a",
    ]
    for i, file_id in enumerate(ids):
        client.upload_file("m", n, io.BytesIO(data_of(10 + i, i)), file_id=file_id)
    expected = [file_name("m", n, i) for i in sorted(ids)]  # code-point order
    seen: list[str] = []
    token = ""
    pages = 0
    while True:
        page = client.list_files_page("m", n, page_size=3, page_token=token)
        assert len(page.files) <= 3
        seen.extend(f.name for f in page.files)
        pages += 1
        token = page.next_page_token
        if not token:
            break
    assert seen == expected
    assert pages == 4
    assert [f.name for f in client.list_files("m", n, page_size=1000)] == expected
    one = client.list_files_page("m", n, page_size=len(ids))
    assert one.next_page_token == ""

    with pytest.raises(InvalidArgumentError) as bad:
        client.list_files_page("m", n, page_token="not-a-token")
    assert bad.value.reason == "INVALID_PAGE_TOKEN"
    token = client.list_files_page("m", n, page_size=2).next_page_token
    other = draft(client)
    with pytest.raises(InvalidArgumentError) as foreign:
        client.list_files_page("m", other, page_token=token)
    assert foreign.value.reason == "INVALID_PAGE_TOKEN"
    with pytest.raises(InvalidArgumentError):
        client.list_files_page("m", n, page_size=-1)
    assert list(client.list_files("m", other)) == []


# -- dedup --------------------------------------------------------------------------------------
def test_identical_bytes_are_stored_once(server: RegistryServer, client: RegistryClient) -> None:
    root = blob_root(server.config.blob_url)
    data = data_of(PIECE * 2 + 1, seed=42)
    v1, v2 = draft(client), draft(client)
    client.upload_file("m", v1, io.BytesIO(data), file_id="payload")
    client.upload_file("m", v2, io.BytesIO(data), file_id="weights/copy.bin")
    client.upload_file("m", v2, io.BytesIO(data), file_id="payload")
    client.upload_file("m", v2, io.BytesIO(b"other"), file_id="other")

    blobs = stored_blobs(root)
    assert [p.name for p in blobs] == sorted([sha256_hex(data), sha256_hex(b"other")])
    assert stored_uploads(root) == []
    for version, file_id in [(v1, "payload"), (v2, "weights/copy.bin"), (v2, "payload")]:
        assert download(client, "m", version, file_id) == data

    # Deleting (and purging) one version keeps the bytes of the other.
    client.delete_version("m", v1)
    server.run_maintenance()  # default retention: nothing purged yet
    assert download(client, "m", v2, "payload") == data
    assert sha256_hex(data) in [p.name for p in stored_blobs(root)]


# -- sealing ------------------------------------------------------------------------------------
def manifest_of(files: dict[str, bytes]) -> str:
    """The manifest digest computed independently of the server's code."""
    lines = "".join(f"{fid}\t{len(d)}\t{sha256_hex(d)}\n" for fid, d in sorted(files.items()))
    return "sha256:" + hashlib.sha256(lines.encode()).hexdigest()


def test_seal_records_manifest_and_freezes_files(client: RegistryClient) -> None:
    n = draft(client)
    files = {
        "payload": data_of(PIECE + 3, 1),
        "tokenizer/vocab.json": b'{"hello": 0}',
        "a-b": b"dash sorts before slash",
        "a/b": b"slash",
        "empty": b"",
    }
    for file_id, data in files.items():
        client.upload_file("m", n, io.BytesIO(data), file_id=file_id)
    before = client.get_version("m", n)
    assert before.state == res.VERSION_STATE_DRAFT and before.manifest_digest == ""

    sealed = client.seal_version("m", n, etag=before.etag)
    assert sealed.state == res.VERSION_STATE_READY
    assert sealed.manifest_digest == manifest_of(files)
    assert sealed.etag != before.etag
    assert client.get_version("m", n).manifest_digest == manifest_of(files)

    with pytest.raises(FailedPreconditionError) as again:
        client.seal_version("m", n)
    assert again.value.reason == "VERSION_SEALED"
    with pytest.raises(FailedPreconditionError) as late:
        client.upload_file("m", n, io.BytesIO(b"late"), file_id="late")
    assert late.value.reason == "VERSION_SEALED"
    assert client.get_version("m", n).file_count == len(files)
    for file_id, data in files.items():
        assert download(client, "m", n, file_id) == data


def test_seal_of_empty_version_and_etag_check(client: RegistryClient) -> None:
    empty = draft(client)
    assert client.seal_version("m", empty).manifest_digest == manifest_of({})

    n = draft(client)
    stale = client.get_version("m", n).etag
    client.upload_file("m", n, io.BytesIO(b"bumps the etag"))
    current = client.get_version("m", n).etag
    assert current != stale
    with pytest.raises(AbortedError) as caught:
        client.seal_version("m", n, etag=stale)
    assert caught.value.reason == "ETAG_MISMATCH"
    assert caught.value.metadata.get("current_etag") == current
    assert client.get_version("m", n).state == res.VERSION_STATE_DRAFT
    sealed = client.seal_version("m", n, etag=current)
    assert sealed.manifest_digest == manifest_of({"payload": b"bumps the etag"})


# -- concurrency --------------------------------------------------------------------------------
class _GatedStream(GeneratedStream):
    """Generated bytes whose reads past ``gate_at`` wait until ``gate`` opens (or a deadline)."""

    def __init__(self, size: int, seed: int, gate_at: int, gate: threading.Event) -> None:
        super().__init__(size, seed)
        self._gate_at = gate_at
        self._gate = gate
        self.reading = threading.Event()

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        self.reading.set()
        if self.tell() >= self._gate_at:
            self._gate.wait(WAIT_S)
        return super().readinto(buffer)


def test_metadata_calls_are_not_starved_by_16_uploads(
    server: RegistryServer, client: RegistryClient
) -> None:
    """16 uploads of 8 MiB stream at once; each is held at 90% until 20 GetModelVersion calls
    (on another channel) completed while all of them were in flight, so the uploads cannot
    finish first and starving the metadata calls makes the test fail, not flake."""
    uploads, size, wanted = 16, 8 * MiB, 20
    n = draft(client)
    gate = threading.Event()
    streams = [_GatedStream(size, seed, size * 9 // 10, gate) for seed in range(uploads)]
    digests = [s.sha256() for s in streams]
    results: dict[int, res.File] = {}
    errors: list[BaseException] = []
    first_done = threading.Event()

    def upload(i: int) -> None:
        try:
            results[i] = client.upload_file(
                "m", n, streams[i], file_id=f"shard-{i:02d}", sha256=digests[i]
            )
        except BaseException as e:
            errors.append(e)
        finally:
            first_done.set()

    calls_during: list[res.ModelVersion] = []
    stop = threading.Event()

    def poll_metadata() -> None:
        with RegistryClient(server.address, timeout=WAIT_S) as other:
            while not stop.is_set():
                try:
                    version = other.get_version("m", n)
                except BaseException as e:
                    errors.append(e)
                    return
                in_flight = all(s.reading.is_set() for s in streams)
                if in_flight and not first_done.is_set():
                    calls_during.append(version)
                    if len(calls_during) >= wanted:
                        gate.set()

    poller = threading.Thread(target=poll_metadata, name="metadata")
    workers = [threading.Thread(target=upload, args=(i,), name=f"up-{i}") for i in range(uploads)]
    poller.start()
    for w in workers:
        w.start()
    for w in workers:
        w.join(WAIT_S * 4)
    stop.set()
    poller.join(WAIT_S)
    assert not errors, errors
    assert len(calls_during) >= wanted
    assert all(v.name == f"models/m/versions/{n}" for v in calls_during)
    assert sorted(results) == list(range(uploads))
    for i, file in results.items():
        assert (file.size_bytes, file.sha256) == (size, digests[i])
        sink = HashingSink()
        client.download_file("m", n, sink, file_id=f"shard-{i:02d}")
        assert sink.hexdigest() == digests[i]
    v = client.get_version("m", n)
    assert (v.file_count, v.total_size_bytes) == (uploads, uploads * size)
