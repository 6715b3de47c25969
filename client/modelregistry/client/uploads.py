"""Uploads: declared size and sha256, chunked streams resumed from the committed size after a
drop, unfinished uploads of the same bytes found and continued, and a final cross-check of
what the server stored."""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import threading
from collections.abc import Iterator
from typing import IO, Final, cast

import grpc

from modelregistry.client.calls import Invoker, new_request_id
from modelregistry.client.errors import IntegrityError, RegistryError
from modelregistry.client.messages import filter_string
from modelregistry.client.transfers import BinaryReader, ProgressCallback, resumable
from modelregistry.v1 import payload_pb2 as pl
from modelregistry.v1 import payload_pb2_grpc as pl_grpc
from modelregistry.v1 import resources_pb2 as res

__all__ = ["Uploader"]

_READ_SIZE: Final = 1 << 20


def _seekable(stream: BinaryReader) -> bool:
    try:
        if not cast(IO[bytes], stream).seekable():
            return False
        cast(IO[bytes], stream).tell()
    except (AttributeError, OSError, ValueError):
        return False
    return True


class _UploadSource:
    """The bytes to upload, read chunk by chunk; seekable sources can restart at any offset.

    gRPC pulls request messages on its own thread, so reads are serialised with a lock, and
    :meth:`stop` makes a previous attempt's iterator stop before the source is repositioned.
    """

    def __init__(self, stream: BinaryReader, chunk_size: int) -> None:
        self._reader = stream
        self._stream = cast(IO[bytes], stream)  # seek/tell used only when seekable
        self._chunk_size = chunk_size
        self._lock = threading.Lock()
        self._epoch = 0
        self.seekable = _seekable(stream)
        self.consumed = 0
        # A non-seekable source is read exactly once: hash it on the way to check the result.
        self.digest = None if self.seekable else hashlib.sha256()
        self.start = 0
        self.size: int | None = None
        if self.seekable:
            self.start = self._stream.tell()
            end = self._stream.seek(0, io.SEEK_END)
            self._stream.seek(self.start)
            self.size = max(end - self.start, 0)

    def _read(self, n: int) -> bytes:
        data = self._reader.read(n)
        if data is None:
            raise ValueError("the upload source is non-blocking and has no data ready")
        return data

    def sha256(self) -> str:
        """Hex SHA-256 of the bytes to upload (seekable sources; one read pass)."""
        digest = hashlib.sha256()
        with self._lock:
            self._stream.seek(self.start)
            remaining = self.size
            while remaining is None or remaining > 0:
                data = self._read(_READ_SIZE if remaining is None else min(_READ_SIZE, remaining))
                if not data:
                    break
                digest.update(data)
                if remaining is not None:
                    remaining -= len(data)
            self._stream.seek(self.start)
        return digest.hexdigest()

    def chunks(self, offset: int) -> Iterator[bytes]:
        """Chunks from ``offset`` (relative to the start) until the end of the source."""
        with self._lock:
            self._epoch += 1
            epoch = self._epoch
            if self.seekable:
                self._stream.seek(self.start + offset)
            elif offset != self.consumed:
                raise ValueError("a non-seekable source cannot be repositioned")
        position = offset
        while True:
            with self._lock:
                if epoch != self._epoch:
                    return
                want = self._chunk_size
                if self.size is not None:
                    want = min(want, self.size - position)
                pieces: list[bytes] = []
                got = 0
                while got < want:
                    piece = self._read(want - got)
                    if not piece:
                        break
                    pieces.append(piece)
                    got += len(piece)
                data = pieces[0] if len(pieces) == 1 else b"".join(pieces)
                position += len(data)
                if self.digest is not None:
                    self.consumed += len(data)
                    self.digest.update(data)
            if not data:
                return
            yield data

    def stop(self) -> None:
        """Make every iterator from :meth:`chunks` stop before its next read."""
        with self._lock:
            self._epoch += 1


class Uploader:
    """Writes files through ``PayloadService.UploadFile`` in ``chunk_size`` chunks."""

    def __init__(self, invoke: Invoker, stub: pl_grpc.PayloadServiceStub, chunk_size: int) -> None:
        self._invoke = invoke
        self._stub = stub
        self._chunk_size = chunk_size

    def upload(
        self,
        version: str,
        file_id: str,
        source: str | os.PathLike[str] | BinaryReader,
        *,
        content_type: str,
        sha256: str | None,
        upload_id: str | None,
        progress: ProgressCallback | None,
        max_resumes: int | None,
        resume_unfinished: bool,
    ) -> res.File:
        """Upload ``source`` to ``file_id`` of the version named ``version``; see
        :meth:`RegistryClient.upload_file`."""
        # A caller-chosen id may name an upload that already has committed bytes: ask first.
        resuming = upload_id is not None
        resumes = self._invoke.retries if max_resumes is None else max_resumes
        with contextlib.ExitStack() as stack:
            if isinstance(source, str | os.PathLike):
                stream: BinaryReader = stack.enter_context(open(source, "rb"))
            else:
                stream = source
            src = _UploadSource(stream, self._chunk_size)
            if sha256 is None and src.seekable:
                sha256 = src.sha256()
            header = pl.UploadHeader(
                name=f"{version}/files/{file_id}",
                upload_id=upload_id or new_request_id(),
                size_bytes=src.size,
                sha256=(sha256 or "").lower(),
                content_type=content_type,
            )
            offset = 0
            failures = 0
            check_status = resuming and src.seekable
            if resume_unfinished and not resuming and src.size is not None and header.sha256:
                unfinished = self._unfinished(version, file_id, src.size, header.sha256)
                if unfinished is not None:
                    header.upload_id = unfinished.upload_id
                    offset = unfinished.committed_size_bytes
            while True:
                try:
                    if check_status:
                        status = self._resume_point(header.upload_id)
                        if status is not None and status.state == pl.UPLOAD_STATE_COMMITTED:
                            if progress is not None:
                                progress(status.file.size_bytes, src.size)
                            return _check_uploaded(status.file, header)
                        offset = 0 if status is None else status.committed_size_bytes
                    header.write_offset = offset
                    file = self._stream_once(header, src, offset, progress)
                    if src.digest is not None:
                        header.sha256 = src.digest.hexdigest()  # compare what was streamed
                    return _check_uploaded(file, header)
                except RegistryError as err:
                    if not resumable(err) or failures >= resumes:
                        raise
                    if not src.seekable and src.consumed > 0:
                        raise
                    failures += 1
                    check_status = src.seekable
                    self._invoke.backoff(failures)

    def _unfinished(
        self, version: str, file_id: str, size: int, sha256: str
    ) -> pl.UploadStatus | None:
        """The unfinished upload of these bytes (same file id, declared size and sha256) with
        the most bytes committed, or None (also when ListUploads fails)."""
        request = pl.ListUploadsRequest(
            parent=version,
            filter=(
                f"state = ACTIVE AND file_id = {filter_string(file_id)}"
                f" AND size_bytes = {size} AND sha256 = {filter_string(sha256)}"
            ),
            order_by="committed_size_bytes desc, update_time desc",
            page_size=1,
        )
        try:
            page = self._invoke(self._stub.ListUploads, request)
        except RegistryError:
            # Only a shortcut: a bad target, a server without the method or an outage is
            # left to the upload itself, which reports it in its own terms.
            return None
        return page.uploads[0] if page.uploads else None

    def _resume_point(self, upload_id: str) -> pl.UploadStatus | None:
        """The upload's status, or None if the server never saw it (start over)."""
        try:
            return self._invoke(
                self._stub.GetUploadStatus, pl.GetUploadStatusRequest(upload_id=upload_id)
            )
        except RegistryError as err:
            if err.code is grpc.StatusCode.NOT_FOUND and err.reason in (None, "UPLOAD_NOT_FOUND"):
                return None
            raise

    def _stream_once(
        self,
        header: pl.UploadHeader,
        src: _UploadSource,
        offset: int,
        progress: ProgressCallback | None,
    ) -> res.File:
        """One UploadFile stream: the header, then chunks from ``offset``."""
        failure: list[BaseException] = []

        def requests() -> Iterator[pl.UploadFileRequest]:
            try:
                yield pl.UploadFileRequest(header=header)
                position = offset
                for data in src.chunks(offset):
                    yield pl.UploadFileRequest(chunk=pl.UploadChunk(offset=position, data=data))
                    position += len(data)
                    if progress is not None:
                        progress(position, src.size)
            except GeneratorExit:
                raise
            except BaseException as e:
                # gRPC cancels the call when the request iterator raises; keep the cause so
                # the caller sees it rather than the cancellation (never resume on it).
                failure.append(e)
                raise RuntimeError("upload source failed") from e

        try:
            return self._invoke(self._stub.UploadFile, requests(), transfer=True)
        except RegistryError as e:
            if failure:
                raise failure[0] from e
            raise
        finally:
            src.stop()


def _check_uploaded(file: res.File, header: pl.UploadHeader) -> res.File:
    """Cross-check the stored file against what the client declared."""
    if header.HasField("size_bytes") and file.size_bytes != header.size_bytes:
        raise IntegrityError(
            f"{file.name}: server stored {file.size_bytes} bytes, sent {header.size_bytes}",
            reason="SIZE_MISMATCH",
            metadata={
                "name": file.name,
                "check": "size",
                "expected": str(header.size_bytes),
                "actual": str(file.size_bytes),
            },
        )
    if header.sha256 and file.sha256.lower() != header.sha256:
        raise IntegrityError(
            f"{file.name}: server stored sha256 {file.sha256}, sent {header.sha256}",
            metadata={
                "name": file.name,
                "check": "sha256",
                "expected": header.sha256,
                "actual": file.sha256,
            },
        )
    return file
