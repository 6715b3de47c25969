"""Uploads and downloads of the client against an in-process fake PayloadService.

The fake is a real gRPC server on an ephemeral port whose servicer keeps files in memory and
can drop streams after a number of bytes, lose the tail of what it received, or corrupt bytes.
"""

from __future__ import annotations

import hashlib
import io
import os
import threading
import tracemalloc
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import google_crc32c
import grpc
import pytest
from google.protobuf import empty_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from modelregistry.client import (
    FailedPreconditionError,
    IntegrityError,
    NotFoundError,
    RegistryClient,
    UnavailableError,
)
from modelregistry.v1 import payload_pb2 as pl
from modelregistry.v1 import payload_pb2_grpc as pl_grpc
from modelregistry.v1 import resources_pb2 as res

KiB = 1024
MiB = 1024 * KiB
CHUNK = 64 * KiB
NAME = "models/fraud/versions/1/files/payload"


def abort(context: grpc.ServicerContext, code: grpc.StatusCode, message: str, reason: str) -> None:
    """Abort like the registry does: google.rpc.Status with an ErrorInfo."""
    status = status_pb2.Status(code=code.value[0], message=message)
    status.details.add().Pack(error_details_pb2.ErrorInfo(reason=reason, domain="modelregistry.v1"))
    context.abort_with_status(rpc_status.to_status(status))


def describe(name: str, data: bytes) -> res.File:
    return res.File(
        name=name,
        size_bytes=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        crc32c=google_crc32c.value(data),
        content_type="application/octet-stream",
    )


@dataclass
class Upload:
    header: pl.UploadHeader
    data: bytearray = field(default_factory=bytearray)
    size: int = 0
    digest: Any = field(default_factory=hashlib.sha256)
    file: res.File | None = None


class FakePayload(pl_grpc.PayloadServiceServicer):
    """Enough of PayloadService to exercise the client's transfer logic."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.files: dict[str, bytes] = {}
        self.meta: dict[str, res.File] = {}
        self.aliases: dict[str, str] = {}
        self.uploads: dict[str, Upload] = {}
        self.headers: list[pl.UploadHeader] = []
        # The sha256 of every finish message received.
        self.finishes: list[str] = []
        self.chunks: list[tuple[int, int]] = []
        self.status_calls = 0
        self.download_requests: list[pl.DownloadFileRequest] = []
        self.get_file_calls = 0
        # Per stream, in order: drop the upload stream after this many bytes of the stream.
        self.upload_drops: list[int] = []
        # Status of dropped streams.
        self.drop_code = grpc.StatusCode.UNAVAILABLE
        # Report a wrong sha256 for stored uploads.
        self.tamper_sha = False
        # Bytes at the end of a dropped stream that were received but not durably stored.
        self.lost_tail = 0
        # Fail this many upload streams before the server records anything.
        self.refuse_uploads = 0
        # Commit the upload, then fail the call as if the response had been lost.
        self.lose_upload_response = False
        # Keep only size and digest of uploads (memory test).
        self.sink = False
        # Per stream, in order: drop the download stream after this many bytes of the stream.
        self.download_drops: list[int] = []
        # Flip one byte at this offset in downloads.
        self.corrupt_at: int | None = None
        # Fail the first GetFile calls with UNAVAILABLE.
        self.get_file_failures = 0
        # What ListUploads answers; None: UNIMPLEMENTED, as from a server without it.
        self.listing: list[pl.UploadStatus] | None = None
        self.list_requests: list[pl.ListUploadsRequest] = []

    def put(self, name: str, data: bytes, meta: res.File | None = None) -> res.File:
        self.files[name] = data
        self.meta[name] = meta or describe(name, data)
        return self.meta[name]

    # --- upload ---

    def UploadFile(
        self, request_iterator: Iterator[pl.UploadFileRequest], context: grpc.ServicerContext
    ) -> res.File:
        first = next(request_iterator)
        assert first.WhichOneof("kind") == "header"
        header = first.header
        with self.lock:
            self.headers.append(header)
            refuse = self.refuse_uploads > 0
            self.refuse_uploads -= 1
        if refuse:
            context.abort(grpc.StatusCode.UNAVAILABLE, "not ready")
        with self.lock:
            upload = self.uploads.setdefault(header.upload_id, Upload(header=header))
            drop = self.upload_drops.pop(0) if self.upload_drops else None
        if upload.file is not None:
            abort(context, grpc.StatusCode.ALREADY_EXISTS, "committed", "UPLOAD_ALREADY_COMMITTED")
        if header.write_offset != upload.size:
            abort(context, grpc.StatusCode.ABORTED, "wrong offset", "WRONG_OFFSET")
        in_stream = 0
        finish: pl.UploadFinish | None = None
        for request in request_iterator:
            assert finish is None, "a message after the finish"
            if request.WhichOneof("kind") == "finish":
                finish = request.finish
                with self.lock:
                    self.finishes.append(finish.sha256)
                continue
            assert request.WhichOneof("kind") == "chunk"
            chunk = request.chunk
            with self.lock:
                self.chunks.append((chunk.offset, len(chunk.data)))
            if chunk.offset != upload.size:
                abort(context, grpc.StatusCode.INVALID_ARGUMENT, "bad offset", "WRONG_OFFSET")
            if len(chunk.data) > 2 * MiB:
                abort(context, grpc.StatusCode.INVALID_ARGUMENT, "too large", "CHUNK_TOO_LARGE")
            if self.sink:
                upload.digest.update(chunk.data)
            else:
                upload.data += chunk.data
            upload.size += len(chunk.data)
            in_stream += len(chunk.data)
            if drop is not None and in_stream >= drop:
                lost = min(self.lost_tail, len(chunk.data))
                del upload.data[len(upload.data) - lost :]
                upload.size -= lost
                context.abort(self.drop_code, "connection dropped")
        if header.HasField("size_bytes") and upload.size != header.size_bytes:
            abort(context, grpc.StatusCode.INVALID_ARGUMENT, "size", "SIZE_MISMATCH")
        if self.sink:
            file = res.File(
                name=header.name, size_bytes=upload.size, sha256=upload.digest.hexdigest()
            )
        else:
            file = describe(header.name, bytes(upload.data))
            self.files[header.name] = bytes(upload.data)
        for declared in (header.sha256, "" if finish is None else finish.sha256):
            if declared and declared != file.sha256:
                abort(context, grpc.StatusCode.INVALID_ARGUMENT, "digest", "DIGEST_MISMATCH")
        if self.tamper_sha:
            file.sha256 = "0" * 64
        upload.file = file
        self.meta[header.name] = file
        if self.lose_upload_response:
            self.lose_upload_response = False
            context.abort(grpc.StatusCode.UNAVAILABLE, "response lost")
        return file

    def GetUploadStatus(
        self, request: pl.GetUploadStatusRequest, context: grpc.ServicerContext
    ) -> pl.UploadStatus:
        with self.lock:
            self.status_calls += 1
            upload = self.uploads.get(request.upload_id)
        if upload is None:
            abort(context, grpc.StatusCode.NOT_FOUND, "no such upload", "UPLOAD_NOT_FOUND")
            raise AssertionError("unreachable")
        status = pl.UploadStatus(
            upload_id=request.upload_id,
            name=upload.header.name,
            committed_size_bytes=upload.size,
            state=pl.UPLOAD_STATE_COMMITTED if upload.file else pl.UPLOAD_STATE_ACTIVE,
        )
        if upload.file is not None:
            status.file.CopyFrom(upload.file)
        return status

    def ListUploads(
        self, request: pl.ListUploadsRequest, context: grpc.ServicerContext
    ) -> pl.ListUploadsResponse:
        with self.lock:
            self.list_requests.append(request)
        if self.listing is None:
            context.abort(grpc.StatusCode.UNIMPLEMENTED, "Method not implemented!")
        return pl.ListUploadsResponse(uploads=self.listing)

    def CancelUpload(
        self, request: pl.CancelUploadRequest, context: grpc.ServicerContext
    ) -> empty_pb2.Empty:
        if self.uploads.pop(request.upload_id, None) is None:
            abort(context, grpc.StatusCode.NOT_FOUND, "no such upload", "UPLOAD_NOT_FOUND")
        return empty_pb2.Empty()

    def ListFiles(
        self, request: pl.ListFilesRequest, context: grpc.ServicerContext
    ) -> pl.ListFilesResponse:
        names = sorted(n for n in self.meta if n.startswith(request.parent + "/files/"))
        start = int(request.page_token or 0)
        end = start + (request.page_size or 50)
        return pl.ListFilesResponse(
            files=[self.meta[n] for n in names[start:end]],
            next_page_token=str(end) if end < len(names) else "",
        )

    # --- download ---

    def GetFile(self, request: pl.GetFileRequest, context: grpc.ServicerContext) -> res.File:
        with self.lock:
            self.get_file_calls += 1
            fail = self.get_file_failures > 0
            self.get_file_failures -= 1
        if fail:
            context.abort(grpc.StatusCode.UNAVAILABLE, "try again")
        if request.name not in self.meta:
            abort(context, grpc.StatusCode.NOT_FOUND, "no such file", "FILE_NOT_FOUND")
        return self.meta[request.name]

    def DownloadFile(
        self, request: pl.DownloadFileRequest, context: grpc.ServicerContext
    ) -> Iterator[pl.DownloadFileResponse]:
        with self.lock:
            self.download_requests.append(request)
            drop = self.download_drops.pop(0) if self.download_drops else None
        name = self.aliases.get(request.name, request.name)
        if name not in self.files:
            abort(context, grpc.StatusCode.NOT_FOUND, "no such file", "FILE_NOT_FOUND")
        data = self.files[name]
        if request.offset > len(data):
            abort(context, grpc.StatusCode.OUT_OF_RANGE, "offset", "RANGE_NOT_SATISFIABLE")
        end = min(len(data), request.offset + request.limit) if request.limit else len(data)
        yield pl.DownloadFileResponse(file=self.meta[name], offset=request.offset)
        position = request.offset
        sent = 0
        while position < end:
            piece = bytearray(data[position : min(position + CHUNK, end)])
            if self.corrupt_at is not None and position <= self.corrupt_at < position + len(piece):
                piece[self.corrupt_at - position] ^= 0xFF
            yield pl.DownloadFileResponse(offset=position, data=bytes(piece))
            position += len(piece)
            sent += len(piece)
            if drop is not None and sent >= drop and position < end:
                context.abort(grpc.StatusCode.UNAVAILABLE, "connection dropped")


@pytest.fixture
def fake() -> Iterator[tuple[FakePayload, int]]:
    servicer = FakePayload()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    pl_grpc.add_PayloadServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield servicer, port
    server.stop(None)


@pytest.fixture
def payload(fake: tuple[FakePayload, int]) -> FakePayload:
    return fake[0]


@pytest.fixture
def client(fake: tuple[FakePayload, int]) -> Iterator[RegistryClient]:
    with RegistryClient(
        f"127.0.0.1:{fake[1]}",
        chunk_size=CHUNK,
        timeout=10,
        transfer_timeout=20,
        retries=3,
        retry_backoff=0,
    ) as c:
        yield c


def blob(size: int) -> bytes:
    return os.urandom(size)


class GeneratedStream(io.RawIOBase):
    """A non-seekable stream producing ``total`` bytes on demand, never holding them all."""

    def __init__(self, total: int) -> None:
        self.remaining = total
        self.position = 0
        self.largest_read = 0
        self.digest = hashlib.sha256()
        self._pattern = bytes(range(256)) * 4096  # 1 MiB

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer)
        self.largest_read = max(self.largest_read, len(view))
        n = min(len(view), self.remaining, len(self._pattern))
        start = self.position % 256
        piece = self._pattern[start : start + n]
        if len(piece) < n:
            piece = (self._pattern[start:] + self._pattern)[:n]
        view[:n] = piece
        self.digest.update(piece)
        self.remaining -= n
        self.position += n
        return n


# --- uploads ---------------------------------------------------------------------------------


def test_upload_path_sends_header_then_chunks_with_offsets(
    client: RegistryClient, payload: FakePayload, tmp_path: Path
) -> None:
    data = blob(5 * CHUNK + 123)
    path = tmp_path / "model.bin"
    path.write_bytes(data)

    file = client.upload_file("fraud", 1, path, content_type="application/onnx", upload_id="u-1")

    assert len(payload.headers) == 1
    header = payload.headers[0]
    assert header.name == NAME
    assert header.upload_id == "u-1"
    assert header.write_offset == 0
    assert header.HasField("size_bytes") and header.size_bytes == len(data)
    assert header.sha256 == ""  # hashed while sending: declared at the end of the stream
    assert payload.finishes == [hashlib.sha256(data).hexdigest()]
    assert header.content_type == "application/onnx"
    assert payload.chunks == [(i * CHUNK, CHUNK) for i in range(5)] + [(5 * CHUNK, 123)]
    assert payload.files[NAME] == data
    assert file.sha256 == hashlib.sha256(data).hexdigest()
    assert file.size_bytes == len(data)


class CountingReader(io.BytesIO):
    """A seekable source that counts the bytes read from it."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.bytes_read = 0

    def read(self, size: int | None = -1, /) -> bytes:
        data = super().read(size)
        self.bytes_read += len(data)
        return data


def test_upload_reads_the_source_once_and_declares_its_digest_at_the_end(
    client: RegistryClient, payload: FakePayload
) -> None:
    data = blob(7 * CHUNK + 5)
    source = CountingReader(data)
    payload.listing = []  # no unfinished upload to continue
    file = client.upload_file("fraud", 1, source)
    assert source.bytes_read == len(data)  # hashing first would read it twice
    assert file.sha256 == hashlib.sha256(data).hexdigest()
    assert payload.headers[0].sha256 == ""
    assert payload.finishes == [file.sha256]


def test_upload_resumed_after_a_drop_declares_the_digest_of_the_whole_file(
    client: RegistryClient, payload: FakePayload
) -> None:
    data = blob(10 * CHUNK + 7)
    payload.upload_drops = [4 * CHUNK]
    payload.lost_tail = 1000
    client.upload_file("fraud", 1, io.BytesIO(data))
    # The bytes re-sent from the committed size are not hashed again: the resumed stream's
    # finish carries the digest of the file (the fake refuses any other).
    assert [h.write_offset for h in payload.headers] == [0, 4 * CHUNK - 1000]
    assert payload.finishes == [hashlib.sha256(data).hexdigest()]
    assert payload.files[NAME] == data


def test_upload_resumed_beyond_what_it_hashed_reads_the_gap_to_hash_it(
    client: RegistryClient, payload: FakePayload
) -> None:
    data = blob(6 * CHUNK)
    old = payload.uploads["earlier"] = Upload(header=pl.UploadHeader(name=NAME))
    old.data += data[: 4 * CHUNK]
    old.size = 4 * CHUNK
    file = client.upload_file("fraud", 1, io.BytesIO(data), upload_id="earlier")
    assert [h.write_offset for h in payload.headers] == [4 * CHUNK]
    assert payload.finishes == [hashlib.sha256(data).hexdigest()]
    assert file.sha256 == hashlib.sha256(data).hexdigest()


def test_upload_generates_an_upload_id_and_uses_the_file_id(
    client: RegistryClient, payload: FakePayload
) -> None:
    client.upload_file("models/fraud", "1", io.BytesIO(b"abc"), file_id="tokenizer/vocab.json")
    header = payload.headers[0]
    assert header.name == "models/fraud/versions/1/files/tokenizer/vocab.json"
    assert len(header.upload_id) >= 16


def test_upload_seekable_stream_starts_at_its_position(
    client: RegistryClient, payload: FakePayload
) -> None:
    stream = io.BytesIO(b"HEADER" + b"x" * 1000)
    stream.seek(6)
    client.upload_file("fraud", 1, stream)
    assert payload.files[NAME] == b"x" * 1000
    assert payload.headers[0].size_bytes == 1000


def test_upload_empty_file(client: RegistryClient, payload: FakePayload) -> None:
    file = client.upload_file("fraud", 1, io.BytesIO(b""))
    assert file.size_bytes == 0
    assert payload.chunks == []
    assert payload.headers[0].size_bytes == 0


def test_upload_explicit_sha256_is_sent_and_verified_by_the_server(
    client: RegistryClient, payload: FakePayload
) -> None:
    with pytest.raises(Exception) as caught:
        client.upload_file("fraud", 1, io.BytesIO(b"data"), sha256="0" * 64)
    assert getattr(caught.value, "reason", None) == "DIGEST_MISMATCH"
    assert payload.headers[0].sha256 == "0" * 64
    assert isinstance(caught.value.__cause__, grpc.RpcError)


def test_upload_resumes_from_committed_size_after_a_drop(
    client: RegistryClient, payload: FakePayload, tmp_path: Path
) -> None:
    data = blob(10 * CHUNK + 7)
    path = tmp_path / "model.bin"
    path.write_bytes(data)
    payload.upload_drops = [4 * CHUNK]
    payload.lost_tail = 1000  # the server lost part of the last chunk it had received
    progress: list[tuple[int, int | None]] = []

    file = client.upload_file("fraud", 1, path, progress=lambda d, t: progress.append((d, t)))

    assert payload.files[NAME] == data
    assert file.sha256 == hashlib.sha256(data).hexdigest()
    assert payload.status_calls == 1
    assert [h.write_offset for h in payload.headers] == [0, 4 * CHUNK - 1000]
    assert len({h.upload_id for h in payload.headers}) == 1
    assert payload.chunks[:4] == [(i * CHUNK, CHUNK) for i in range(4)]
    assert payload.chunks[4] == (4 * CHUNK - 1000, CHUNK)  # re-sent from the committed size
    assert progress[-1] == (len(data), len(data))


@pytest.mark.parametrize(
    "code",
    [
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.ABORTED,
    ],
)
def test_upload_resumes_after_transport_failures(
    client: RegistryClient, payload: FakePayload, code: grpc.StatusCode
) -> None:
    data = blob(4 * CHUNK)
    payload.upload_drops = [CHUNK]
    payload.drop_code = code
    client.upload_file("fraud", 1, io.BytesIO(data))
    assert payload.files[NAME] == data
    assert len(payload.headers) == 2


def test_upload_does_not_resume_after_a_rejection(
    client: RegistryClient, payload: FakePayload
) -> None:
    payload.upload_drops = [CHUNK]
    payload.drop_code = grpc.StatusCode.FAILED_PRECONDITION
    with pytest.raises(FailedPreconditionError):
        client.upload_file("fraud", 1, io.BytesIO(blob(4 * CHUNK)))
    assert len(payload.headers) == 1
    assert payload.status_calls == 0


def test_upload_resumes_several_times(client: RegistryClient, payload: FakePayload) -> None:
    data = blob(8 * CHUNK)
    payload.upload_drops = [CHUNK, 2 * CHUNK, CHUNK]
    client.upload_file("fraud", 1, io.BytesIO(data))
    assert payload.files[NAME] == data
    assert [h.write_offset for h in payload.headers] == [0, CHUNK, 3 * CHUNK, 4 * CHUNK]


def test_upload_starts_over_when_the_server_never_saw_it(
    client: RegistryClient, payload: FakePayload
) -> None:
    data = blob(3 * CHUNK)
    payload.refuse_uploads = 1
    client.upload_file("fraud", 1, io.BytesIO(data))
    assert payload.files[NAME] == data
    assert payload.status_calls == 1  # UPLOAD_NOT_FOUND: start again from 0
    assert [h.write_offset for h in payload.headers] == [0, 0]


def test_upload_gives_up_after_max_resumes(client: RegistryClient, payload: FakePayload) -> None:
    payload.upload_drops = [CHUNK] * 10
    with pytest.raises(UnavailableError) as caught:
        client.upload_file("fraud", 1, io.BytesIO(blob(8 * CHUNK)), max_resumes=2)
    assert len(payload.headers) == 3
    assert isinstance(caught.value.__cause__, grpc.RpcError)


def test_upload_returns_the_committed_file_when_the_response_was_lost(
    client: RegistryClient, payload: FakePayload
) -> None:
    data = blob(3 * CHUNK)
    payload.lose_upload_response = True
    file = client.upload_file("fraud", 1, io.BytesIO(data))
    assert file.sha256 == hashlib.sha256(data).hexdigest()
    assert len(payload.headers) == 1
    assert payload.status_calls == 1


def test_upload_from_a_non_seekable_stream_streams_in_bounded_memory(
    client: RegistryClient, payload: FakePayload
) -> None:
    total = 24 * MiB
    payload.sink = True
    source = GeneratedStream(total)
    tracemalloc.start()
    try:
        file = client.upload_file("fraud", 1, source)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert file.size_bytes == total
    assert file.sha256 == source.digest.hexdigest()
    header = payload.headers[0]
    assert not header.HasField("size_bytes")
    assert header.sha256 == ""
    assert source.largest_read <= CHUNK
    assert peak < 2 * MiB, f"peak traced memory {peak} bytes for a {total}-byte upload"


def test_upload_non_seekable_stream_is_checked_against_the_stored_digest(
    client: RegistryClient, payload: FakePayload
) -> None:
    payload.tamper_sha = True
    with pytest.raises(IntegrityError) as caught:
        client.upload_file("fraud", 1, GeneratedStream(3 * CHUNK))
    assert caught.value.metadata["check"] == "sha256"


def test_upload_non_seekable_stream_cannot_resume(
    client: RegistryClient, payload: FakePayload
) -> None:
    payload.upload_drops = [2 * CHUNK]
    with pytest.raises(UnavailableError):
        client.upload_file("fraud", 1, GeneratedStream(8 * CHUNK))
    assert len(payload.headers) == 1
    assert payload.status_calls == 0


def test_upload_progress_reports_each_chunk(client: RegistryClient, payload: FakePayload) -> None:
    data = blob(3 * CHUNK + 5)
    calls: list[tuple[int, int | None]] = []
    client.upload_file("fraud", 1, io.BytesIO(data), progress=lambda d, t: calls.append((d, t)))
    assert calls == [(n, len(data)) for n in (CHUNK, 2 * CHUNK, 3 * CHUNK, len(data))]


def test_upload_progress_failure_propagates_without_resuming(
    client: RegistryClient, payload: FakePayload
) -> None:
    def explode(done: int, total: int | None) -> None:
        raise KeyError("progress failed")

    with pytest.raises(KeyError, match="progress failed"):
        client.upload_file("fraud", 1, io.BytesIO(blob(4 * CHUNK)), progress=explode)
    assert len(payload.headers) <= 1  # cancelled, perhaps before the server saw the header
    assert payload.status_calls == 0


def test_upload_looks_for_an_unfinished_upload_of_the_same_bytes(
    client: RegistryClient, payload: FakePayload
) -> None:
    payload.listing = []
    data = blob(3 * CHUNK)
    digest = hashlib.sha256(data).hexdigest()
    file_id = 'odd "name"*/x'
    source = CountingReader(data)
    client.upload_file("fraud", 1, source, file_id=file_id)
    # An unfinished upload to the same file of the same size is looked for; as there is
    # none, the file is sent without hashing it first.
    (request,) = payload.list_requests
    assert request.parent == "models/fraud/versions/1"
    prefix = f'state = ACTIVE AND file_id = "odd \\"name\\"\\*/x" AND size_bytes = {len(data)}'
    assert request.filter == prefix
    assert request.order_by == "committed_size_bytes desc, update_time desc"
    assert request.page_size == 1
    assert payload.headers[0].write_offset == 0  # nothing found: a new upload
    assert source.bytes_read == len(data)
    # With the digest given, the upload of exactly these bytes is looked for.
    client.upload_file("fraud", 1, io.BytesIO(data), file_id=file_id, sha256=digest)
    assert payload.list_requests[1].filter == prefix + f' AND sha256 = "{digest}"'


@pytest.mark.parametrize("declared", [False, True], ids=["digest-at-end", "digest-declared"])
def test_upload_continues_the_unfinished_upload_it_finds(
    client: RegistryClient, payload: FakePayload, declared: bool
) -> None:
    data = blob(5 * CHUNK + 7)
    digest = hashlib.sha256(data).hexdigest()
    old = payload.uploads["crashed"] = Upload(header=pl.UploadHeader(name=NAME))
    old.data += data[: 2 * CHUNK]
    old.size = 2 * CHUNK
    payload.listing = [
        pl.UploadStatus(
            upload_id="crashed",
            name=NAME,
            committed_size_bytes=2 * CHUNK,
            sha256=digest if declared else "",
        )
    ]
    sent: list[int] = []
    source = CountingReader(data)
    file = client.upload_file("fraud", 1, source, progress=lambda n, _: sent.append(n))
    filters = [r.filter.rsplit(" AND ", 1)[1] for r in payload.list_requests]
    if declared:
        # The upload found declared its sha256: the file is hashed first to match it.
        assert filters == [f"size_bytes = {len(data)}", f'sha256 = "{digest}"']
        assert source.bytes_read == 2 * len(data) - 2 * CHUNK
    else:
        # It declared none (it hashed while sending): continued, its committed prefix read
        # (to hash it) but not sent, the digest of the whole file declared at the end.
        assert filters == [f"size_bytes = {len(data)}"]
        assert source.bytes_read == len(data)
        assert payload.finishes == [digest]
    (header,) = payload.headers
    assert (header.upload_id, header.write_offset) == ("crashed", 2 * CHUNK)
    assert payload.chunks[0] == (2 * CHUNK, CHUNK)
    assert sum(n for _, n in payload.chunks) == len(data) - 2 * CHUNK
    assert sent[0] == 3 * CHUNK and sent[-1] == len(data)
    assert file.sha256 == digest
    assert payload.files[NAME] == data


def test_upload_that_continued_other_bytes_starts_its_own(
    client: RegistryClient, payload: FakePayload
) -> None:
    data = blob(4 * CHUNK)
    old = payload.uploads["other"] = Upload(header=pl.UploadHeader(name=NAME))
    old.data += blob(2 * CHUNK)  # same file and size, other bytes, no digest declared
    old.size = 2 * CHUNK
    payload.listing = [pl.UploadStatus(upload_id="other", name=NAME, committed_size_bytes=old.size)]
    file = client.upload_file("fraud", 1, io.BytesIO(data))
    # Continued, refused by the digest at its end, then sent whole as a new upload.
    assert [(h.upload_id == "other", h.write_offset) for h in payload.headers] == [
        (True, 2 * CHUNK),
        (False, 0),
    ]
    assert payload.finishes == [hashlib.sha256(data).hexdigest()] * 2
    assert file.sha256 == hashlib.sha256(data).hexdigest()
    assert payload.files[NAME] == data


def test_upload_without_list_uploads_on_the_server_starts_a_new_upload(
    client: RegistryClient, payload: FakePayload
) -> None:
    data = blob(CHUNK + 1)
    client.upload_file("fraud", 1, io.BytesIO(data))
    assert len(payload.list_requests) == 1  # answered UNIMPLEMENTED
    assert payload.headers[0].write_offset == 0
    assert payload.files[NAME] == data


def test_upload_does_not_look_for_unfinished_uploads_when_it_cannot_or_must_not(
    client: RegistryClient, payload: FakePayload
) -> None:
    payload.listing = []
    client.upload_file("fraud", 1, io.BytesIO(b"abc"), upload_id="chosen")
    client.upload_file("fraud", 1, io.BytesIO(b"abc"), file_id="b", resume_unfinished=False)
    client.upload_file("fraud", 1, GeneratedStream(3), file_id="c")  # size and digest unknown
    assert payload.list_requests == []
    assert len(payload.headers) == 3


def test_upload_status_and_cancel(client: RegistryClient, payload: FakePayload) -> None:
    payload.upload_drops = [CHUNK]
    with pytest.raises(UnavailableError):
        client.upload_file("fraud", 1, io.BytesIO(blob(4 * CHUNK)), upload_id="u", max_resumes=0)
    status = client.get_upload_status("u")
    assert status.state == pl.UPLOAD_STATE_ACTIVE
    assert status.committed_size_bytes == CHUNK
    client.cancel_upload("u")
    with pytest.raises(NotFoundError) as caught:
        client.get_upload_status("u")
    assert caught.value.reason == "UPLOAD_NOT_FOUND"


# --- downloads -------------------------------------------------------------------------------


def test_download_to_path_verifies_and_renames(
    client: RegistryClient, payload: FakePayload, tmp_path: Path
) -> None:
    data = blob(5 * CHUNK + 9)
    meta = payload.put(NAME, data)
    dest = tmp_path / "out.bin"
    progress: list[tuple[int, int | None]] = []

    file = client.download_file("fraud", 1, dest, progress=lambda d, t: progress.append((d, t)))

    assert dest.read_bytes() == data
    assert not (tmp_path / "out.bin.part").exists()
    assert file == meta
    assert progress[0] == (CHUNK, len(data))
    assert progress[-1] == (len(data), len(data))
    assert [r.offset for r in payload.download_requests] == [0]


def test_download_corrupted_byte_raises_integrity_error_and_leaves_no_file(
    client: RegistryClient, payload: FakePayload, tmp_path: Path
) -> None:
    payload.put(NAME, blob(3 * CHUNK))
    payload.corrupt_at = CHUNK + 17
    dest = tmp_path / "out.bin"
    with pytest.raises(IntegrityError) as caught:
        client.download_file("fraud", 1, dest)
    assert caught.value.reason == "DIGEST_MISMATCH"
    assert caught.value.metadata["check"] == "sha256"
    assert not dest.exists()
    assert list(tmp_path.iterdir()) == []


def test_download_crc32c_mismatch(client: RegistryClient, payload: FakePayload) -> None:
    data = blob(1000)
    meta = describe(NAME, data)
    meta.crc32c ^= 1
    payload.put(NAME, data, meta)
    with pytest.raises(IntegrityError) as caught:
        client.download_file("fraud", 1, io.BytesIO())
    assert caught.value.metadata["check"] == "crc32c"


def test_download_size_mismatch(client: RegistryClient, payload: FakePayload) -> None:
    data = blob(1000)
    meta = describe(NAME, data)
    meta.size_bytes = 1001
    payload.put(NAME, data, meta)
    with pytest.raises(IntegrityError) as caught:
        client.download_file("fraud", 1, io.BytesIO())
    assert caught.value.reason == "SIZE_MISMATCH"


def test_download_without_verification_accepts_corruption(
    client: RegistryClient, payload: FakePayload
) -> None:
    payload.put(NAME, b"a" * 100)
    payload.corrupt_at = 3
    out = io.BytesIO()
    client.download_file("fraud", 1, out, verify=False)
    assert out.getvalue()[3] != ord("a")


def test_download_resumes_from_received_bytes_and_pins_the_resolved_name(
    client: RegistryClient, payload: FakePayload, tmp_path: Path
) -> None:
    data = blob(10 * CHUNK + 3)
    payload.put(NAME, data)
    payload.aliases["models/fraud/versions/latest/files/payload"] = NAME
    payload.download_drops = [3 * CHUNK, 2 * CHUNK]
    dest = tmp_path / "out.bin"

    client.download_file("fraud", "latest", dest)

    assert dest.read_bytes() == data
    requests = [(r.name, r.offset, r.limit) for r in payload.download_requests]
    assert requests == [
        ("models/fraud/versions/latest/files/payload", 0, 0),
        (NAME, 3 * CHUNK, 0),
        (NAME, 5 * CHUNK, 0),
    ]


def test_download_gives_up_after_retries(
    client: RegistryClient, payload: FakePayload, tmp_path: Path
) -> None:
    payload.put(NAME, blob(10 * CHUNK))
    payload.download_drops = [CHUNK] * 10
    dest = tmp_path / "out.bin"
    with pytest.raises(UnavailableError):
        client.download_file("fraud", 1, dest)
    assert len(payload.download_requests) == 4  # the first attempt and 3 resumes
    assert list(tmp_path.iterdir()) == []


def test_download_range_resumes_within_the_limit(
    client: RegistryClient, payload: FakePayload
) -> None:
    data = blob(10 * CHUNK)
    payload.put(NAME, data)
    payload.download_drops = [CHUNK]
    out = io.BytesIO()
    file = client.download_file("fraud", 1, out, offset=100, limit=4 * CHUNK)
    assert out.getvalue() == data[100 : 100 + 4 * CHUNK]
    assert file.size_bytes == len(data)
    requests = [(r.offset, r.limit) for r in payload.download_requests]
    assert requests == [(100, 4 * CHUNK), (100 + CHUNK, 3 * CHUNK)]


def test_download_missing_file_raises_not_found_and_leaves_nothing(
    client: RegistryClient, tmp_path: Path
) -> None:
    dest = tmp_path / "out.bin"
    with pytest.raises(NotFoundError) as caught:
        client.download_file("fraud", 1, dest)
    assert caught.value.reason == "FILE_NOT_FOUND"
    assert isinstance(caught.value.__cause__, grpc.RpcError)
    assert list(tmp_path.iterdir()) == []


def test_iter_file_streams_and_verifies_at_the_end(
    client: RegistryClient, payload: FakePayload
) -> None:
    data = blob(4 * CHUNK)
    payload.put(NAME, data)
    pieces = list(client.iter_file("fraud", 1))
    assert b"".join(pieces) == data
    assert max(len(p) for p in pieces) <= CHUNK

    payload.corrupt_at = len(data) - 1
    received: list[bytes] = []
    with pytest.raises(IntegrityError):
        for piece in client.iter_file("fraud", 1):
            received.append(piece)
    assert len(b"".join(received)) == len(data)  # every byte was yielded before the check


def test_iter_file_is_lazy_and_closing_it_cancels_the_stream(
    client: RegistryClient, payload: FakePayload
) -> None:
    payload.put(NAME, blob(10 * CHUNK))
    chunks = client.iter_file("fraud", 1)
    assert payload.download_requests == []
    first = next(chunks)
    assert len(first) == CHUNK
    chunks.close()


def test_download_to_stream_in_bounded_memory(client: RegistryClient, payload: FakePayload) -> None:
    data = blob(16 * MiB)
    payload.put(NAME, data)

    class Sink(io.RawIOBase):
        def __init__(self) -> None:
            self.size = 0
            self.digest = hashlib.sha256()

        def writable(self) -> bool:
            return True

        def write(self, b: Any) -> int:
            self.size += len(b)
            self.digest.update(b)
            return len(b)

    sink = Sink()
    tracemalloc.start()
    try:
        client.download_file("fraud", 1, sink)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert sink.size == len(data)
    assert sink.digest.hexdigest() == hashlib.sha256(data).hexdigest()
    assert peak < 2 * MiB, f"peak traced memory {peak} bytes for a {len(data)}-byte download"


def test_get_and_list_files(client: RegistryClient, payload: FakePayload) -> None:
    parent = "models/fraud/versions/2"
    for i in range(5):
        payload.put(f"{parent}/files/f{i}", b"x" * i)
    assert client.get_file("fraud", 2, "f3").size_bytes == 3
    files = client.list_files("fraud", 2, page_size=2)
    assert [f.name.rsplit("/", 1)[1] for f in files] == [f"f{i}" for i in range(5)]
    page = client.list_files_page("fraud", 2, page_size=4)
    assert len(page.files) == 4 and page.next_page_token == "4"


# --- channel configuration -------------------------------------------------------------------


def test_idempotent_calls_are_retried_by_the_channel(
    client: RegistryClient, payload: FakePayload
) -> None:
    meta = payload.put(NAME, b"abc")
    payload.get_file_failures = 2
    assert client.get_file("fraud", 1) == meta
    assert payload.get_file_calls == 3


def test_no_channel_retries_when_disabled(fake: tuple[FakePayload, int]) -> None:
    payload, port = fake
    payload.put(NAME, b"abc")
    payload.get_file_failures = 1
    with RegistryClient(f"127.0.0.1:{port}", retries=0) as c, pytest.raises(UnavailableError):
        c.get_file("fraud", 1)
    assert payload.get_file_calls == 1


def test_a_download_left_early_or_failing_stops_its_hashing_thread(
    client: RegistryClient, payload: FakePayload
) -> None:
    payload.put(NAME, blob(6 * CHUNK))
    before = sum(t.name == "sha256" for t in threading.enumerate())
    chunks = client.iter_file("fraud", 1)
    next(chunks)
    next(chunks)
    chunks.close()
    payload.corrupt_at = CHUNK
    with pytest.raises(IntegrityError):
        b"".join(client.iter_file("fraud", 1))
    deadline = threading.Event()
    for _ in range(500):
        if sum(t.name == "sha256" for t in threading.enumerate()) == before:
            break
        deadline.wait(0.01)
    assert sum(t.name == "sha256" for t in threading.enumerate()) == before
