"""Uploads: declared size, the sha256 computed while sending and declared at the end of the
stream (the source is read once), chunked streams resumed from the committed size after a
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
from modelregistry.client.wire import TransferCalls, UploadRequests, upload_chunk
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

    With ``hash_bytes`` the source hashes sha256 while it is read: each byte once, in order,
    whatever the restarts (a stream resumed before what was hashed does not hash it again;
    one resumed beyond it first reads and hashes the gap, the only bytes read twice).
    gRPC pulls request messages on its own thread, so reads are serialised with a lock, and
    :meth:`stop` makes a previous attempt's iterator stop before the source is repositioned.
    """

    def __init__(self, stream: BinaryReader, chunk_size: int, *, hash_bytes: bool) -> None:
        self._reader = stream
        self._stream = cast(IO[bytes], stream)  # seek/tell used only when seekable
        self._chunk_size = chunk_size
        self._lock = threading.Lock()
        self._epoch = 0
        self.seekable = _seekable(stream)
        self.consumed = 0  # bytes read from a non-seekable source
        self.digest = hashlib.sha256() if hash_bytes else None
        self.hashed = 0  # bytes from the start that went into the digest
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
        """Hex SHA-256 of the bytes to upload, read in a pass of its own (seekable sources;
        only when the digest must be known before sending)."""
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

    def _hash(self, position: int, data: bytes) -> None:
        """Hash what of ``data`` (read at ``position``) is beyond the bytes hashed so far."""
        if self.digest is None or position + len(data) <= self.hashed:
            return
        skip = self.hashed - position
        self.digest.update(memoryview(data)[skip:] if skip > 0 else data)
        self.hashed = position + len(data)

    def _catch_up(self, offset: int) -> None:
        """Hash the bytes before ``offset`` not hashed yet (a resume beyond them; seekable
        sources, under the lock)."""
        if self.digest is None or self.hashed >= offset:
            return
        self._stream.seek(self.start + self.hashed)
        while self.hashed < offset:
            data = self._read(min(_READ_SIZE, offset - self.hashed))
            if not data:
                break
            self._hash(self.hashed, data)

    def restart_digest(self) -> None:
        """Hash from the first byte again (the upload starts over)."""
        if self.digest is not None:
            with self._lock:
                self.digest, self.hashed = hashlib.sha256(), 0

    def final_sha256(self) -> str | None:
        """The digest of every byte of the source (reading what was not hashed yet), or None
        without ``hash_bytes``."""
        if self.digest is None:
            return None
        if self.seekable and self.size is not None:
            with self._lock:
                self._catch_up(self.size)
        return self.digest.hexdigest()

    def chunks(self, offset: int) -> Iterator[bytes]:
        """Chunks from ``offset`` (relative to the start) until the end of the source."""
        with self._lock:
            self._epoch += 1
            epoch = self._epoch
            if self.seekable:
                self._catch_up(offset)
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
                self._hash(position, data)
                position += len(data)
                if not self.seekable:
                    self.consumed += len(data)
            if not data:
                return
            yield data

    def stop(self) -> None:
        """Make every iterator from :meth:`chunks` stop before its next read."""
        with self._lock:
            self._epoch += 1


class Uploader:
    """Writes files through ``PayloadService.UploadFile`` in ``chunk_size`` chunks."""

    def __init__(
        self,
        invoke: Invoker,
        stub: pl_grpc.PayloadServiceStub,
        transfers: TransferCalls,
        chunk_size: int,
    ) -> None:
        self._invoke = invoke
        self._stub = stub
        self._upload = transfers.upload
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
            declared = (sha256 or "").lower()
            src = _UploadSource(stream, self._chunk_size, hash_bytes=not declared)
            header = pl.UploadHeader(
                name=f"{version}/files/{file_id}",
                upload_id=upload_id or new_request_id(),
                size_bytes=src.size,
                sha256=declared,
                content_type=content_type,
            )
            offset = 0
            failures = 0
            check_status = resuming and src.seekable
            # Continuing an unfinished upload found by listing that declared no sha256: only
            # the digest at the end proves its committed bytes are these.
            unproven = False
            if resume_unfinished and not resuming and src.size is not None:
                found = self._unfinished(version, file_id, src.size, header.sha256 or None)
                if found is not None and not header.sha256 and found.sha256:
                    # It declared its digest: hash these bytes first to tell if they are its.
                    header.sha256 = src.sha256()
                    src.digest = None
                    found = self._unfinished(version, file_id, src.size, header.sha256)
                if found is not None:
                    header.upload_id = found.upload_id
                    offset = found.committed_size_bytes
                    unproven = not header.sha256
            while True:
                try:
                    if check_status:
                        status = self._resume_point(header.upload_id)
                        if status is not None and status.state == pl.UPLOAD_STATE_COMMITTED:
                            if progress is not None:
                                progress(status.file.size_bytes, src.size)
                            return _check_uploaded(status.file, header, src.final_sha256())
                        offset = 0 if status is None else status.committed_size_bytes
                    header.write_offset = offset
                    file = self._stream_once(header, src, offset, progress)
                    return _check_uploaded(file, header, src.final_sha256())
                except RegistryError as err:
                    if unproven and _other_bytes(err):
                        # The upload it continued held other bytes: send these as a new one.
                        unproven = check_status = False
                        header.upload_id, offset = new_request_id(), 0
                        src.restart_digest()
                        continue
                    if not resumable(err) or failures >= resumes:
                        raise
                    if not src.seekable and src.consumed > 0:
                        raise
                    failures += 1
                    check_status = src.seekable
                    # UPLOAD_BUSY: another server writes it until its lease expires; wait
                    # that long, then resume from what it committed.
                    self._invoke.backoff(failures, at_least=_retry_after(err))

    def _unfinished(
        self, version: str, file_id: str, size: int, sha256: str | None
    ) -> pl.UploadStatus | None:
        """The unfinished upload to this file of this declared size (and ``sha256``, if given)
        with the most bytes committed, or None (also when ListUploads fails)."""
        query = f"state = ACTIVE AND file_id = {filter_string(file_id)} AND size_bytes = {size}"
        if sha256 is not None:
            query += f" AND sha256 = {filter_string(sha256)}"
        request = pl.ListUploadsRequest(
            parent=version,
            filter=query,
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
        """One UploadFile stream: the header, chunks from ``offset``, and, when the source
        hashed what it read, the finish with the digest of the whole file."""
        failure: list[BaseException] = []

        def requests() -> UploadRequests:
            try:
                yield pl.UploadFileRequest(header=header)
                position = offset
                for data in src.chunks(offset):
                    yield upload_chunk(position, data)
                    position += len(data)
                    if progress is not None:
                        progress(position, src.size)
                if src.digest is not None and src.hashed == position:
                    finish = pl.UploadFinish(sha256=src.digest.hexdigest())
                    yield pl.UploadFileRequest(finish=finish)
            except GeneratorExit:
                raise
            except BaseException as e:
                # gRPC cancels the call when the request iterator raises; keep the cause so
                # the caller sees it rather than the cancellation (never resume on it).
                failure.append(e)
                raise RuntimeError("upload source failed") from e

        try:
            file: res.File = self._invoke(self._upload, requests(), transfer=True)
            return file
        except RegistryError as e:
            if failure:
                raise failure[0] from e
            raise
        finally:
            src.stop()


def _other_bytes(err: RegistryError) -> bool:
    """Whether an upload failed because its stored bytes are not the source's: the server's
    digest check, or the stored file's digest checked here."""
    if isinstance(err, IntegrityError):
        return err.metadata.get("check") == "sha256"
    return err.reason == "DIGEST_MISMATCH"


def _check_uploaded(file: res.File, header: pl.UploadHeader, sha256: str | None) -> res.File:
    """Cross-check the stored file against what the client declared or hashed."""
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
    expected = header.sha256 or sha256
    if expected and file.sha256.lower() != expected:
        raise IntegrityError(
            f"{file.name}: server stored sha256 {file.sha256}, sent {expected}",
            metadata={
                "name": file.name,
                "check": "sha256",
                "expected": expected,
                "actual": file.sha256,
            },
        )
    return file


def _retry_after(err: RegistryError) -> float:
    """The ``retry_after_seconds`` an error's metadata asks for (0 if none or malformed)."""
    try:
        return max(0.0, float(err.metadata.get("retry_after_seconds", "0")))
    except ValueError:
        return 0.0
