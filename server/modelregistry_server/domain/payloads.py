"""Use cases for the files of versions: verified resumable uploads, downloads, sealing, GC.

Upload protocol (see ``payload.proto``): a header naming the target file and a client-chosen
``upload_id``, then chunks at increasing offsets, then optionally a finish carrying the sha256
the client computed while sending (so it reads its file once). Bytes go to the blob store in
*pieces*; after each piece is durable the session's ``committed_size`` advances in the metadata
store, so a client can resume from it after a dropped connection, a server restart or on
another replica. The sha256/crc32c state cannot be saved, so a resumed session re-reads its
committed prefix to rebuild it. At the end the size and every declared sha256 (header,
finish) are checked, the bytes become the content-addressed blob ``sha256/<hex>`` (stored once
however many files share it) and the file row is inserted: only then is the file visible.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Protocol

from . import deadlines, names
from .access import Action
from .blob_names import blob_key, staging_id, storage_id
from .checksums import BlockHasher
from .entities import (
    FileRecord,
    IntegrityState,
    ModelVersion,
    UploadSession,
    UploadState,
    VersionState,
    VersionStatus,
)
from .errors import (
    Aborted,
    AlreadyExists,
    Cancelled,
    DataLoss,
    DomainError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    OutOfRange,
    Reason,
    Unavailable,
)
from .events import change
from .filter_parser import parse_filter
from .gc import GarbageCollector, GcReport
from .identity import Caller
from .integrity import CheckedRead, Integrity
from .listing import (
    FILE_SCHEMA,
    UPLOAD_DEFAULT_ORDER,
    UPLOAD_SCHEMA,
    PageTokens,
    parse_order_by,
    typed_cursor,
)
from .paging import Pager, read_all
from .ports import (
    BlobIntegrity,
    BlobReferences,
    BlobStore,
    EventLog,
    FileCatalog,
    ListQuery,
    Transactions,
    UploadSessions,
    VersionCatalog,
)
from .registry import Registry, check_etag, utc_now
from .upload_leases import (
    DEFAULT_LEASE,
    LeaseKeeper,
    busy,
    held_by_other,
    lease_lost,
    process_holder,
)
from .validation import check_text

log = logging.getLogger(__name__)

SHA256_RE = re.compile(r"[0-9a-f]{64}")
# How many unfinished uploads an UPLOADS_IN_PROGRESS error names.
MAX_NAMED_UPLOADS = 10
_ACTIVE_UPLOADS = parse_filter("state = ACTIVE", UPLOAD_SCHEMA)
MAX_CHUNK_BYTES = 2 * 1024 * 1024
DEFAULT_PIECE_BYTES = 64 * 1024 * 1024
DEFAULT_GC_GRACE = timedelta(hours=24)
DEFAULT_CONTENT_TYPE = "application/octet-stream"
# How long an upload of undeclared size waits, at its end, for a cancellation in flight.
CANCEL_GRACE_S = 0.2


@dataclass(frozen=True)
class UploadFinish:
    """The last message of an upload stream: the sha256 the client computed while sending."""

    sha256: str


# What an upload stream carries after its header: chunks as ``(offset, data)``, then
# optionally an UploadFinish (nothing may follow it).
UploadItem = tuple[int, bytes] | UploadFinish


@dataclass(frozen=True)
class UploadRequest:
    """The header of an upload stream, as the domain sees it."""

    target: names.FileRef
    upload_id: str
    write_offset: int
    size: int | None
    sha256: str
    content_type: str


class PayloadStore(
    Transactions,
    VersionCatalog,
    FileCatalog,
    UploadSessions,
    BlobReferences,
    BlobIntegrity,
    EventLog,
    Protocol,
):
    """The metadata ports the payload use cases need."""


def manifest_digest(files: list[FileRecord]) -> str:
    """``sha256:<hex>`` over the sorted ``(file id, size, sha256)`` lines of a version."""
    h = hashlib.sha256()
    for f in sorted(files, key=lambda f: f.file_id):
        h.update(f"{f.file_id}\t{f.size}\t{f.sha256}\n".encode())
    return f"sha256:{h.hexdigest()}"


class _Digests:
    """sha256, and crc32c per block and of the whole content, computed together."""

    def __init__(self, blocks: BlockHasher) -> None:
        self.sha = hashlib.sha256()
        self.blocks = blocks

    def update(self, data: bytes) -> None:
        self.sha.update(data)
        self.blocks.update(data)


_TAKEOVER_ATTEMPTS = 3


class _Takeover(Exception):
    """Raised inside the session transaction: the committed bytes are in another writer's
    staging and must be copied before the lease can be taken (see ``Payloads._acquire``)."""

    def __init__(self, session: UploadSession) -> None:
        super().__init__(session.upload_id)
        self.session = session
        self.digests: _Digests | None = None

    def matches(self, session: UploadSession) -> bool:
        """Whether the copy was made from the session's current writer and committed size."""
        return (session.lease_token, session.committed_size, session.lease_holder) == (
            self.session.lease_token,
            self.session.committed_size,
            self.session.lease_holder,
        )


class _ChunkFeed:
    """Checks each chunk (offset continuity, size, declared total), hashes it and hands
    the data on in pieces of about ``piece_bytes``."""

    def __init__(
        self,
        chunks: Iterator[UploadItem],
        offset: int,
        declared_size: int | None,
        digests: _Digests,
        max_chunk: int,
        check: Callable[[], None],
    ) -> None:
        self._chunks = chunks
        self._check = check
        self.offset = offset
        self._declared = declared_size
        self._digests = digests
        self._max_chunk = max_chunk
        self.exhausted = False
        # The sha256 of the stream's finish message, once it arrived (it proves the stream
        # complete, as a declared size does).
        self.finish_sha256: str | None = None
        self._pending: bytes | None = None

    def has_more(self) -> bool:
        """Pull the next chunk (if any) so an empty tail does not cost a piece."""
        if self._pending is None and not self.exhausted:
            self._pending = self._next()
        return self._pending is not None

    def piece(self, limit: int) -> Iterator[bytes]:
        """Yield checked chunks until about ``limit`` bytes or the end of the stream."""
        sent = 0
        while sent < limit and self.has_more():
            data = self._pending
            assert data is not None
            self._pending = None
            sent += len(data)
            yield data

    def _next(self) -> bytes | None:
        while True:
            try:
                item = next(self._chunks)
            except StopIteration:
                self.exhausted = True
                return None
            self._check()
            if isinstance(item, UploadFinish):
                if not SHA256_RE.fullmatch(item.sha256):
                    raise InvalidArgument.field(
                        "finish.sha256", "must be 64 lowercase hex characters"
                    )
                self.finish_sha256 = item.sha256
                continue
            offset, data = item
            if offset != self.offset:
                raise OutOfRange(
                    f"chunk offset {offset} does not follow the {self.offset} bytes received",
                    reason=Reason.WRONG_OFFSET,
                    metadata={"expected_offset": str(self.offset)},
                )
            if len(data) > self._max_chunk:
                raise InvalidArgument.field(
                    "chunk.data",
                    f"chunk of {len(data)} bytes exceeds the {self._max_chunk}-byte limit",
                    reason=Reason.CHUNK_TOO_LARGE,
                )
            if self._declared is not None and offset + len(data) > self._declared:
                raise InvalidArgument.field(
                    "chunk.data",
                    f"data runs past the declared size of {self._declared} bytes",
                    reason=Reason.SIZE_MISMATCH,
                )
            if not data:
                continue
            self._digests.update(data)
            self.offset += len(data)
            return data


class Payloads:
    """Files of versions: upload, download, list, seal and garbage collection."""

    def __init__(
        self,
        store: PayloadStore,
        blobs: BlobStore,
        registry: Registry,
        *,
        page_tokens: PageTokens | None = None,
        clock: Callable[[], datetime] = utc_now,
        piece_bytes: int = DEFAULT_PIECE_BYTES,
        max_chunk_bytes: int = MAX_CHUNK_BYTES,
        gc_grace: timedelta = DEFAULT_GC_GRACE,
        sync_workers: int = 64,
        integrity: Integrity | None = None,
        lease_holder: str | None = None,
        upload_lease: timedelta = DEFAULT_LEASE,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        # This server process, as the holder of the uploads it writes (upload_leases.py).
        self.lease_holder = lease_holder or process_holder()
        self._lease_ttl = upload_lease
        self._mono = monotonic
        self._blobs = blobs
        self._registry = registry
        self._auth = registry.authorizer
        # Without a shared secret, tokens are valid only for this object (tests, tools).
        self._tokens = page_tokens or PageTokens.random()
        self._clock = clock
        self._piece_bytes = piece_bytes
        self._max_chunk = max_chunk_bytes
        self._integrity = integrity or Integrity(store, blobs, clock=clock)
        self._active: set[tuple[str, str]] = set()
        # Streams on this server whose session was ended under them, and why.
        self._revoked: dict[tuple[str, str], DomainError] = {}
        self._active_lock = threading.Lock()
        self._gc = GarbageCollector(
            store, blobs, clock=clock, grace=gc_grace, claim=self._claim_upload
        )
        # Syncs pieces while their upload receives the next one (one pending sync per upload).
        self._syncer = ThreadPoolExecutor(max_workers=sync_workers, thread_name_prefix="sync")

    def close(self) -> None:
        """Stop the piece-sync pool once its pending syncs finish; uploads then fail."""
        self._syncer.shutdown(wait=True)

    # -- upload ------------------------------------------------------------------------------
    def upload(
        self,
        caller: Caller,
        request: UploadRequest,
        chunks: Iterator[UploadItem],
        cancelled: Callable[[float], bool] = lambda grace: False,
    ) -> FileRecord:
        """Receive one upload stream; returns the visible file once it is whole and verified.

        ``cancelled(grace)`` tells whether the caller went away, waiting up to ``grace``
        seconds for a cancellation still being delivered. The end of ``chunks`` alone does not
        prove the stream is complete (a transport may end it when the call is cancelled), so
        it is asked again once the last bytes are durable, before they count or become visible.
        """
        _check_upload_request(request)
        key = (caller.tenant, request.upload_id)
        with self._active_lock:
            if key in self._active:
                raise Aborted(
                    f"upload {request.upload_id!r} is already receiving data; retry later",
                    reason=Reason.UPLOAD_CONFLICT,
                )
            self._active.add(key)
        try:
            return self._upload(caller, request, chunks, cancelled)
        finally:
            with self._active_lock:
                self._active.discard(key)
                self._revoked.pop(key, None)

    def _upload(
        self,
        caller: Caller,
        request: UploadRequest,
        chunks: Iterator[UploadItem],
        cancelled: Callable[[float], bool],
    ) -> FileRecord:
        acquired_at = self._mono()
        session, digests = self._acquire(caller, request)
        if session.state is UploadState.COMMITTED:
            return self._committed_file(caller, session)
        sid = staging_id(caller.tenant, session.upload_id, self.lease_holder)
        lease = LeaseKeeper(
            self._store,
            session,
            self._lease_ttl,
            self._clock,
            acquired_at=acquired_at,
            monotonic=self._mono,
        )
        published = False
        try:
            record = self._receive_and_publish(
                caller, session, sid, chunks, cancelled, lease, digests
            )
            published = True
            return record
        except DomainError as exc:
            if exc.reason is Reason.DIGEST_MISMATCH:  # discarded on purpose
                raise
            if exc.reason is Reason.UPLOAD_DATA_MISSING and self._taken_over(caller, lease):
                # Its staging was removed by the writer that took the upload over.
                raise lease_lost(session.upload_id) from None
            ended = self._ended_under_us(caller, session)
            if ended is None:
                raise
            # The session was cancelled (or its version sealed with cancel_uploads) while
            # this stream ran: what it stored after that is dropped too.
            with contextlib.suppress(DomainError):
                self._blobs.abort_upload(sid)
            raise ended from None
        finally:
            if not published:  # another server may resume it at once
                with contextlib.suppress(Exception):
                    lease.release()

    def _taken_over(self, caller: Caller, lease: LeaseKeeper) -> bool:
        """Whether another writer holds the upload now (a new token)."""
        try:
            current = self._store.get_upload(caller.tenant, lease.upload_id)
        except DomainError:
            return False
        return current is not None and current.lease_token != lease.token

    def _ended_under_us(self, caller: Caller, session: UploadSession) -> DomainError | None:
        """Why the session of a failing stream no longer exists, or None if it does."""
        with self._active_lock:
            revoked = self._revoked.get((caller.tenant, session.upload_id))
        if revoked is not None:
            return revoked
        try:
            if self._store.get_upload(caller.tenant, session.upload_id) is not None:
                return None
            status = self._store.version_status(
                caller.tenant, session.model_id, session.version_number
            )
        except DomainError:
            return None  # the original error says more
        if status is not None and status.state is VersionState.READY:
            return _sealed_under_upload(session.version_number)
        return NotFound(
            f"upload {session.upload_id!r} was cancelled", reason=Reason.UPLOAD_NOT_FOUND
        )

    def _stop_if_revoked(self, caller: Caller, upload_id: str) -> None:
        with self._active_lock:
            revoked = self._revoked.get((caller.tenant, upload_id))
        if revoked is not None:
            raise revoked

    def _receive_and_publish(
        self,
        caller: Caller,
        session: UploadSession,
        sid: str,
        chunks: Iterator[UploadItem],
        cancelled: Callable[[float], bool],
        lease: LeaseKeeper,
        copied: _Digests | None,
    ) -> FileRecord:
        digests = copied or _Digests(self._integrity.new_hasher())
        if session.committed_size and copied is None:
            self._rehash(caller, session, sid, digests)

        def check() -> None:
            self._stop_if_revoked(caller, session.upload_id)
            lease.check()

        feed = _ChunkFeed(
            chunks,
            session.committed_size,
            session.declared_size,
            digests,
            self._max_chunk,
            check,
        )
        committed = self._receive(caller, session, sid, feed, cancelled, lease)
        if session.declared_size is not None and committed != session.declared_size:
            raise InvalidArgument.field(
                "header.size_bytes",
                f"stream ended after {committed} of {session.declared_size} declared bytes; "
                "resume from the committed size",
                reason=Reason.SIZE_MISMATCH,
            )
        sha = digests.sha.hexdigest()
        declared = (
            ("header.sha256", session.declared_sha256),
            ("finish.sha256", feed.finish_sha256),
        )
        for field, expected in declared:
            if expected and sha != expected:
                self._discard(caller, session.upload_id, sid)
                raise InvalidArgument.field(
                    field,
                    f"content has sha256 {sha}, not the declared {expected}; "
                    "the upload was discarded",
                    reason=Reason.DIGEST_MISMATCH,
                )
        return self._publish(caller, session, sid, committed, sha, digests.blocks, lease)

    def _acquire(
        self, caller: Caller, request: UploadRequest
    ) -> tuple[UploadSession, _Digests | None]:
        """Open the session and take its lease. A takeover first copies the committed prefix
        from the previous writer's staging into this writer's own (so a stale previous writer
        can never change bytes this one continues or publishes); then the digests rebuilt from
        that copy are returned too (None: nothing copied, rebuild from the own staging)."""
        prepared: _Takeover | None = None
        for _ in range(_TAKEOVER_ATTEMPTS):
            try:
                session = self._open_session(caller, request, prepared)
            except _Takeover as takeover:
                prepared = takeover
                takeover.digests = self._copy_staging(caller, takeover.session)
                continue
            except BaseException:
                if prepared is not None:
                    self._drop_staging(caller.tenant, request.upload_id, self.lease_holder)
                raise
            if prepared is not None and session.state is UploadState.COMMITTED:
                self._drop_staging(caller.tenant, request.upload_id, self.lease_holder)
            return session, None if prepared is None else prepared.digests
        if prepared is not None:
            self._drop_staging(caller.tenant, request.upload_id, self.lease_holder)
        raise Aborted(
            f"upload {request.upload_id!r} is being taken over by another stream; retry later",
            reason=Reason.UPLOAD_CONFLICT,
        )

    def _copy_staging(self, caller: Caller, previous: UploadSession) -> _Digests | None:
        """Copy the committed prefix of the previous writer's staging into this writer's and
        rebuild the digests from the source, verifying the copy against them; None if the
        source is missing (the stream then restarts the upload as for any missing prefix)."""
        tenant, upload_id, size = previous.tenant, previous.upload_id, previous.committed_size
        source = staging_id(tenant, upload_id, previous.lease_holder)
        target = staging_id(tenant, upload_id, self.lease_holder)
        digests = _Digests(self._integrity.new_hasher())
        try:
            self._blobs.copy_upload(source, target, size)
            for data in self._blobs.read_upload(source, size):
                digests.update(data)
            check = hashlib.sha256()
            for data in self._blobs.read_upload(target, size):
                check.update(data)
        except DataLoss:
            self._drop_staging(tenant, upload_id, self.lease_holder)
            return None
        if check.hexdigest() != digests.sha.hexdigest():
            self._drop_staging(tenant, upload_id, self.lease_holder)
            log.warning("upload %s: the copy of its committed bytes does not verify", target)
            raise Unavailable("the blob store returned inconsistent data; retry later")
        return digests

    def _drop_staging(self, tenant: str, upload_id: str, holder: str) -> None:
        """Remove one writer's staging of an upload (what stays is found by GC)."""
        with contextlib.suppress(DomainError):
            self._blobs.abort_upload(staging_id(tenant, upload_id, holder))

    def _open_session(
        self, caller: Caller, request: UploadRequest, prepared: _Takeover | None = None
    ) -> UploadSession:
        target = request.target
        with self._store.transaction():
            self._auth.require(caller, target.version.model_id, Action.CREATE)
            version = self._draft_status(caller, target.version, for_update=False)
            session = self._store.get_upload(caller.tenant, request.upload_id, for_update=True)
            if session is not None and not session.usable_by(caller.actor):
                # Another principal's session: only its opener writes into it (admins too).
                if request.write_offset == 0:
                    raise FailedPrecondition(
                        f"upload id {request.upload_id!r} is taken; choose another id",
                        reason=Reason.UPLOAD_CONFLICT,
                    )
                raise _upload_not_found(request.upload_id)
            if session is None:
                existing = self._store.get_file(
                    caller.tenant, version.model_id, version.number, target.file_id
                )
                if existing is not None:
                    raise AlreadyExists(
                        f"file {target.file_id!r} already exists in version {version.number}",
                        reason=Reason.FILE_ALREADY_EXISTS,
                    )
                if request.write_offset != 0:
                    raise NotFound(
                        f"upload {request.upload_id!r} not found; start again at offset 0",
                        reason=Reason.UPLOAD_NOT_FOUND,
                    )
                now = self._clock()
                session = UploadSession(
                    tenant=caller.tenant,
                    upload_id=request.upload_id,
                    model_id=version.model_id,
                    version_number=version.number,
                    file_id=target.file_id,
                    declared_size=request.size,
                    declared_sha256=request.sha256,
                    content_type=request.content_type or DEFAULT_CONTENT_TYPE,
                    committed_size=0,
                    state=UploadState.ACTIVE,
                    create_time=now,
                    update_time=now,
                    owner=caller.actor,
                    lease_holder=self.lease_holder,
                    lease_token=1,
                    lease_expire=now + self._lease_ttl,
                )
                self._store.insert_upload(session)
                return session
            same_target = (session.model_id, session.version_number, session.file_id) == (
                version.model_id,
                version.number,
                target.file_id,
            )
            if not same_target or (
                (request.size is not None and request.size != session.declared_size)
                or (request.sha256 and request.sha256 != session.declared_sha256)
            ):
                raise FailedPrecondition(
                    f"upload {request.upload_id!r} was started for another file, size or sha256",
                    reason=Reason.UPLOAD_CONFLICT,
                )
            if session.state is UploadState.COMMITTED:
                return session
            now = self._clock()
            if held_by_other(session, self.lease_holder, now):
                raise busy(session, now)  # its writer is alive (or not yet known dead)
            if request.write_offset != session.committed_size:
                raise OutOfRange(
                    f"write_offset {request.write_offset} does not match the committed size "
                    f"{session.committed_size}",
                    reason=Reason.WRONG_OFFSET,
                    metadata={"committed_size": str(session.committed_size)},
                )
            previous = session
            # Another writer's staging holds the committed bytes: copy them first (outside
            # this transaction), then take the lease only if nothing moved meanwhile.
            if (
                previous.lease_holder != self.lease_holder
                and previous.committed_size
                and (prepared is None or not prepared.matches(previous))
            ):
                raise _Takeover(previous)
            # Acquire (or take over after expiry): a new token fences the previous writer.
            session = replace(
                session,
                lease_holder=self.lease_holder,
                lease_token=session.lease_token + 1,
                lease_expire=now + self._lease_ttl,
            )
            self._store.save_upload(session)
        if previous.lease_holder != self.lease_holder:
            # The previous writer may still write into its staging (its open file, on a local
            # store, is then unlinked): harmless, and nothing reads it any more.
            self._drop_staging(caller.tenant, request.upload_id, previous.lease_holder)
        return session

    def _rehash(self, caller: Caller, session: UploadSession, sid: str, digests: _Digests) -> None:
        try:
            for data in self._blobs.read_upload(sid, session.committed_size):
                digests.update(data)
        except DataLoss:
            # The stored prefix is gone (e.g. cleaned up): restart the upload from zero.
            with self._store.transaction():
                fresh = self._store.get_upload(caller.tenant, session.upload_id, for_update=True)
                if fresh is not None:
                    fresh.committed_size = 0
                    fresh.update_time = self._clock()
                    # Fenced: a writer that lost its lease meanwhile resets nothing and
                    # leaves the new writer's bytes (UPLOAD_LEASE_LOST).
                    self._store.save_upload(fresh, lease_token=session.lease_token)
            self._blobs.abort_upload(sid)
            raise Aborted(
                "the upload's stored bytes are missing; resume from offset 0",
                reason=Reason.UPLOAD_DATA_MISSING,
                metadata={"committed_size": "0"},
            ) from None

    def _receive(
        self,
        caller: Caller,
        session: UploadSession,
        sid: str,
        feed: _ChunkFeed,
        cancelled: Callable[[float], bool],
        lease: LeaseKeeper,
    ) -> int:
        """Store the stream piece by piece; returns the committed (durable, recorded) size.

        Making piece k durable (fsync) and recording it runs on a helper thread while piece
        k+1 is received, so the network and the disk work at the same time; at most one piece
        is waiting to be synced, and pieces are recorded in order.
        """
        stored = committed = session.committed_size
        pending: Future[int] | None = None
        checked = False
        try:
            while feed.has_more():
                deadlines.check()  # the next piece is blob work: not past the deadline
                start = stored
                stored += self._blobs.write_upload(sid, start, feed.piece(self._piece_bytes))
                if feed.exhausted:  # the tail is neither counted nor published if the call died
                    _check_not_cancelled(cancelled, self._complete(session, feed, stored))
                    checked = True
                if pending is not None:
                    committed = pending.result()
                pending = self._syncer.submit(
                    self._sync_and_advance, caller, session.upload_id, sid, start, stored, lease
                )
            if pending is not None:
                committed, pending = pending.result(), None
        finally:
            if pending is not None:  # failing: still record the piece already received whole
                with contextlib.suppress(Exception):
                    pending.result()
        if not checked:
            _check_not_cancelled(cancelled, self._complete(session, feed, committed))
        return committed

    @staticmethod
    def _complete(session: UploadSession, feed: _ChunkFeed, received: int) -> bool:
        """Whether the stream proved itself whole: its declared size arrived, or its finish."""
        return session.declared_size == received or feed.finish_sha256 is not None

    def _sync_and_advance(
        self,
        caller: Caller,
        upload_id: str,
        sid: str,
        expected: int,
        new_size: int,
        lease: LeaseKeeper,
    ) -> int:
        self._blobs.sync_upload(sid)
        return self._advance(caller, upload_id, expected, new_size, lease)

    def _advance(
        self, caller: Caller, upload_id: str, expected: int, new_size: int, lease: LeaseKeeper
    ) -> int:
        """Record a durable piece and extend the lease, both only while the lease is ours."""
        started = lease.now()
        with self._store.transaction():
            advanced = self._store.advance_upload(
                caller.tenant,
                upload_id,
                expected,
                new_size,
                self._clock(),
                lease_token=lease.token,
                lease_expire=lease.expiry(),
            )
        if advanced:
            lease.extended(started)
            return new_size
        current = self._store.get_upload(caller.tenant, upload_id)
        if current is not None and current.lease_token != lease.token:
            raise lease_lost(upload_id)
        raise Aborted(
            f"upload {upload_id!r} was changed by another stream", reason=Reason.UPLOAD_CONFLICT
        )

    def _publish(
        self,
        caller: Caller,
        session: UploadSession,
        sid: str,
        size: int,
        sha: str,
        blocks: BlockHasher,
        lease: LeaseKeeper,
    ) -> FileRecord:
        now = self._clock()
        sums = blocks.sums()
        crc = blocks.crc32c()
        with self._store.transaction():
            # A row first, so GC can collect the blob even if publishing fails below.
            self._store.touch_blob(sha, size, now, sums)
        record = FileRecord(
            tenant=caller.tenant,
            model_id=session.model_id,
            version_number=session.version_number,
            file_id=session.file_id,
            size=size,
            sha256=sha,
            crc32c=crc,
            content_type=session.content_type,
            create_time=now,
        )
        with self._store.transaction():
            ref = names.VersionRef(session.model_id, number=session.version_number)
            # Locks the version, then the session (the order sealing uses): a seal that won
            # left the version READY, a cancel left no session row, and nothing is published.
            self._draft_status(caller, ref, for_update=True)
            self._stop_if_revoked(caller, session.upload_id)
            done = replace(
                session, state=UploadState.COMMITTED, committed_size=size, update_time=now
            )
            try:
                # Fenced: a writer whose lease was taken over publishes nothing.
                self._store.save_upload(done, lease_token=lease.token)
            except NotFound:
                raise NotFound(
                    f"upload {session.upload_id!r} was cancelled", reason=Reason.UPLOAD_NOT_FOUND
                ) from None
            # GC deletes a blob only while holding its row and only if no file references it.
            # Holding the row from before the blob is committed until the file referencing it
            # is, GC either finishes first (and the commit re-creates the blob) or sees the file.
            stored = self._store.touch_blob(sha, size, now, sums)
            if stored in (IntegrityState.CORRUPTED, IntegrityState.MISSING):
                self._replace_bad_copy(sha, stored)
            self._blobs.commit_upload(sid, size, blob_key(sha))
            self._store.add_file(record)  # one row, and the version's counters
            summary = {"upload_id": session.upload_id, "size_bytes": size, "sha256": sha}
            self._store.append_event(
                change(caller, "UploadFile", _file_name(record), now, summary=summary)
            )
        return record

    def _replace_bad_copy(self, sha: str, found: IntegrityState) -> None:
        """Drop a stored copy of this content that a check found bad, so the verified bytes
        being published replace it for every file that shares it (call holding the row)."""
        self._blobs.delete(blob_key(sha))
        self._store.record_verification(sha, IntegrityState.UNVERIFIED, None)
        log.warning("integrity: blob %s was %s; replaced by a new upload", blob_key(sha), found)

    def _discard(self, caller: Caller, upload_id: str, sid: str) -> None:
        self._blobs.abort_upload(sid)
        with self._store.transaction():
            self._store.delete_upload(caller.tenant, upload_id)

    def _committed_file(self, caller: Caller, session: UploadSession) -> FileRecord:
        record = self._store.get_file(
            caller.tenant, session.model_id, session.version_number, session.file_id
        )
        if record is None:  # the version was purged since
            raise NotFound("the uploaded file no longer exists", reason=Reason.FILE_NOT_FOUND)
        return record

    def upload_status(
        self, caller: Caller, upload_id: str
    ) -> tuple[UploadSession, FileRecord | None]:
        """The session and, once committed, its file."""
        session = self._session(caller, upload_id)
        self._auth.require(caller, session.model_id, Action.READ)
        if session.state is UploadState.COMMITTED:
            return session, self._store.get_file(
                caller.tenant, session.model_id, session.version_number, session.file_id
            )
        return session, None

    def cancel_upload(self, caller: Caller, upload_id: str) -> None:
        """Abandon an unfinished upload and free its bytes."""
        first = self._session(caller, upload_id)
        self._auth.require(caller, first.model_id, Action.CREATE)
        with self._store.transaction():
            session = self._store.get_upload(caller.tenant, upload_id, for_update=True)
            if session is None or not self._may_use(caller, session):
                raise _upload_not_found(upload_id)
            if session.state is UploadState.COMMITTED:
                raise FailedPrecondition(
                    f"upload {upload_id!r} is already committed",
                    reason=Reason.UPLOAD_ALREADY_COMMITTED,
                )
            self._store.delete_upload(caller.tenant, upload_id)
            target = names.file_name(session.model_id, session.version_number, session.file_id)
            summary = {"upload_id": upload_id, "committed_size_bytes": session.committed_size}
            self._store.append_event(
                change(caller, "CancelUpload", target, self._clock(), summary=summary)
            )
        cancelled = NotFound(f"upload {upload_id!r} was cancelled", reason=Reason.UPLOAD_NOT_FOUND)
        self._revoke(caller, upload_id, cancelled)

    def list_uploads(
        self,
        caller: Caller,
        ref: names.VersionRef,
        *,
        page_size: int = 0,
        page_token: str = "",
        filter_text: str = "",
        order_by: str = "",
    ) -> tuple[list[UploadSession], str]:
        """The upload sessions targeting a version (unfinished and committed; by default
        ordered by upload id), so an upload whose id was lost can be found and resumed."""
        pager = Pager(page_size, page_token, self._tokens, tenant=caller.tenant)
        expr = parse_filter(filter_text, UPLOAD_SCHEMA)
        order = parse_order_by(order_by, UPLOAD_SCHEMA, UPLOAD_DEFAULT_ORDER)
        version = self._registry.resolve(caller, ref)
        cursor = pager.cursor("uploads", version.model_id, version.number, filter_text, order)
        query = ListQuery(expr, order, page_size=pager.size, after=cursor)
        owner = None if caller.is_admin else caller.actor
        return pager.reply(
            self._store.list_uploads(caller.tenant, version.model_id, version.number, query, owner)
        )

    def _session(self, caller: Caller, upload_id: str) -> UploadSession:
        """The session, if the caller may see it (see :meth:`_may_use`); NOT_FOUND otherwise,
        so upload ids of others are not confirmed."""
        if not names.UPLOAD_ID_RE.fullmatch(upload_id):
            raise InvalidArgument.field("upload_id", "must be 1-128 characters of [A-Za-z0-9_-]")
        session = self._store.get_upload(caller.tenant, upload_id)
        if session is None or not self._may_use(caller, session):
            raise _upload_not_found(upload_id)
        return session

    @staticmethod
    def _may_use(caller: Caller, session: UploadSession) -> bool:
        """Its opener (anyone for sessions from before identity) sees, lists and cancels a
        session; so does a tenant admin (break-glass). Writing needs the opener."""
        return session.usable_by(caller.actor) or caller.is_admin

    # -- files -------------------------------------------------------------------------------
    def get_file(self, caller: Caller, ref: names.FileRef) -> FileRecord:
        """A file's metadata (the version may be named by number, ``latest`` or alias)."""
        version = self._registry.resolve(caller, ref.version)
        record = self._store.get_file(caller.tenant, version.model_id, version.number, ref.file_id)
        if record is None:
            raise NotFound(
                f"file {ref.file_id!r} not found in version {version.number} of "
                f"model {version.model_id!r}",
                reason=Reason.FILE_NOT_FOUND,
            )
        return record

    def list_files(
        self,
        caller: Caller,
        parent: names.FilesParent,
        *,
        page_size: int = 0,
        page_token: str = "",
        filter_text: str = "",
    ) -> tuple[list[FileRecord], str]:
        """The files of a version, of every live version of a model or of every model
        (``parent``), matching the filter (fields of ``FILE_SCHEMA``, e.g.
        ``integrity = CORRUPTED``), ordered by model id, version number and file id."""
        pager = Pager(page_size, page_token, self._tokens, tenant=caller.tenant)
        expr = parse_filter(filter_text, FILE_SCHEMA)
        model_id, number = parent.model_id, None
        if parent.version is not None:
            version = self._registry.resolve(caller, parent.version)
            model_id, number = version.model_id, version.number
        elif model_id is not None:
            self._registry.get_model(caller, model_id)  # NOT_FOUND for an unknown model
        cursor = _file_cursor(pager.cursor("files", model_id, number, filter_text))
        query = ListQuery(
            expr, page_size=pager.size, after=cursor, visible_to=self._auth.visible_to(caller)
        )
        return pager.reply(self._store.find_files(caller.tenant, model_id, number, query))

    def open_download(
        self, caller: Caller, ref: names.FileRef, offset: int, limit: int
    ) -> tuple[FileRecord, CheckedRead]:
        """The file's metadata and a checked reader of its bytes from ``offset`` (``limit``
        0 = all); the reader checks the call's deadline before each block."""
        if offset < 0:
            raise InvalidArgument.field("offset", "must not be negative")
        if limit < 0:
            raise InvalidArgument.field("limit", "must not be negative")
        record = self.get_file(caller, ref)
        if offset > record.size:
            raise OutOfRange(
                f"offset {offset} is beyond the file's {record.size} bytes",
                reason=Reason.RANGE_NOT_SATISFIABLE,
            )
        end = record.size if limit == 0 else min(record.size, offset + limit)
        return record, self._integrity.read(record, offset, end)

    def verify_file(
        self, caller: Caller, ref: names.FileRef, cancelled: Callable[[], bool] = lambda: False
    ) -> FileRecord:
        """Re-read the file's stored bytes now; the file with what the check found. Stops
        once the call's deadline passed or ``cancelled()`` (the client went away)."""
        return self._integrity.verify(self.get_file(caller, ref), cancelled)

    # -- sealing -----------------------------------------------------------------------------
    def seal(
        self, caller: Caller, ref: names.VersionRef, etag: str, *, cancel_uploads: bool = False
    ) -> ModelVersion:
        """DRAFT → READY: files become immutable and the manifest digest is recorded.

        Unfinished uploads into the version refuse the seal (UPLOADS_IN_PROGRESS, naming
        them) unless ``cancel_uploads``: then their sessions end in the same transaction,
        their stored bytes are removed, and a stream still sending to this server stops.
        An upload that commits first is sealed with the version; one that would commit after
        finds the version READY (publishing re-checks it under the version's lock).
        """
        cancelled: list[UploadSession] = []
        with self._store.transaction():
            self._auth.require(caller, ref.model_id, Action.UPDATE)
            version = self._draft_version(caller, ref, for_update=True)
            check_etag(etag, version.etag, "etag")
            before = version.etag
            pending = self._unfinished(caller, version, MAX_NAMED_UPLOADS + 1)
            if pending and not cancel_uploads:
                raise _uploads_in_progress(version, pending)
            while pending:
                for session in pending:
                    self._store.delete_upload(caller.tenant, session.upload_id)
                cancelled.extend(pending)
                pending = self._unfinished(caller, version, 1000)
            files = read_all(
                lambda cursor: self._store.list_files(
                    caller.tenant, version.model_id, version.number, _file_after(cursor), 1000
                )
            )
            version.manifest_digest = manifest_digest(files)
            version.state = VersionState.READY
            version.update_time = self._clock()
            version.revision += 1
            self._store.save_version(version)
            summary = {
                "manifest_digest": version.manifest_digest,
                "cancelled_uploads": [u.upload_id for u in cancelled],
            }
            name = names.version_name(version.model_id, version.number)
            self._store.append_event(
                change(
                    caller,
                    "SealModelVersion",
                    name,
                    version.update_time,
                    summary=summary,
                    before=before,
                    after=version.etag,
                )
            )
        sealed = _sealed_under_upload(version.number)
        for session in cancelled:
            self._revoke(caller, session.upload_id, sealed)
        return version

    def _draft_status(
        self, caller: Caller, ref: names.VersionRef, *, for_update: bool
    ) -> VersionStatus:
        """The status of a live DRAFT version named by number (one row read)."""
        if ref.number is None:
            raise InvalidArgument.field("name", "must name the version by number here")
        status = self._store.version_status(
            caller.tenant, ref.model_id, ref.number, for_update=for_update
        )
        if status is None:
            self._registry.resolve(caller, ref)  # NOT_FOUND naming the model or the version
            raise NotFound(
                f"version {ref.number} of model {ref.model_id!r} not found",
                reason=Reason.VERSION_NOT_FOUND,
            )
        self._registry.require_live(status)
        _require_draft(status)
        return status

    def _unfinished(self, caller: Caller, version: ModelVersion, limit: int) -> list[UploadSession]:
        """Up to ``limit`` ACTIVE sessions targeting the version, by upload id."""
        query = ListQuery(_ACTIVE_UPLOADS, UPLOAD_DEFAULT_ORDER, page_size=limit)
        page = self._store.list_uploads(caller.tenant, version.model_id, version.number, query)
        return page.items

    def _revoke(self, caller: Caller, upload_id: str, reason: DomainError) -> None:
        """After a session row is gone: stop a stream of it on this server, drop its bytes."""
        key = (caller.tenant, upload_id)
        with self._active_lock:
            if key in self._active:
                self._revoked[key] = reason
        with contextlib.suppress(DomainError):  # what stays (other writers' stagings): GC
            self._blobs.abort_upload(staging_id(caller.tenant, upload_id, self.lease_holder))
            self._blobs.abort_upload(storage_id(caller.tenant, upload_id))

    def _draft_version(
        self, caller: Caller, ref: names.VersionRef, *, for_update: bool
    ) -> ModelVersion:
        if ref.number is None:
            raise InvalidArgument.field("name", "must name the version by number here")
        version = self._registry.resolve(caller, ref)
        if for_update:
            locked = self._store.get_version(
                caller.tenant, ref.model_id, ref.number, for_update=True
            )
            assert locked is not None
            version = locked
        self._registry.require_live(version)
        _require_draft(version)
        return version

    # -- garbage collection ------------------------------------------------------------------
    def collect_garbage(self) -> GcReport:
        """Remove abandoned uploads and unreferenced blobs older than the grace period, and
        stored objects no row accounts for (see :mod:`.gc`)."""
        return self._gc.collect()

    @contextlib.contextmanager
    def _claim_upload(self, tenant: str, upload_id: str) -> Iterator[bool]:
        """Hold an upload for GC unless a stream is receiving it; streams for it wait
        (UPLOAD_CONFLICT) while it is held."""
        key = (tenant, upload_id)
        with self._active_lock:
            claimed = key not in self._active
            if claimed:
                self._active.add(key)
        try:
            yield claimed
        finally:
            if claimed:
                with self._active_lock:
                    self._active.discard(key)


def _file_cursor(cursor: tuple[object, ...] | None) -> tuple[str, int, str] | None:
    """``(model_id, version_number, file_id)`` of a ListFiles page token."""
    values = typed_cursor(cursor, str, int, str)
    return None if values is None else (str(values[0]), int(values[1]), str(values[2]))


def _file_after(cursor: tuple[object, ...] | None) -> str | None:
    return None if cursor is None else str(cursor[0])


def _upload_not_found(upload_id: str) -> NotFound:
    return NotFound(f"upload {upload_id!r} not found", reason=Reason.UPLOAD_NOT_FOUND)


def _require_draft(version: ModelVersion | VersionStatus) -> None:
    if version.state is not VersionState.DRAFT:
        raise FailedPrecondition(
            f"version {version.number} is sealed (READY); create a new version",
            reason=Reason.VERSION_SEALED,
        )


def _sealed_under_upload(number: int) -> FailedPrecondition:
    return FailedPrecondition(
        f"version {number} was sealed while this upload was in progress; the upload was cancelled",
        reason=Reason.VERSION_SEALED,
    )


def _uploads_in_progress(version: ModelVersion, pending: list[UploadSession]) -> FailedPrecondition:
    named = [s.upload_id for s in pending[:MAX_NAMED_UPLOADS]]
    more = len(pending) > MAX_NAMED_UPLOADS
    listed = ", ".join(named) + (", …" if more else "")
    return FailedPrecondition(
        f"version {version.number} has unfinished uploads ({listed}); finish or cancel them, "
        "or seal with cancel_uploads",
        reason=Reason.UPLOADS_IN_PROGRESS,
        metadata={"upload_ids": ",".join(named), "more_uploads": str(more).lower()},
    )


def _check_not_cancelled(cancelled: Callable[[float], bool], complete: bool) -> None:
    """At the end of the stream: raise Cancelled if the caller went away. Unless the stream
    proved itself whole (``complete``: its declared size or its finish arrived), wait a
    moment for a cancellation in flight: otherwise the end of the stream is the only sign of
    completeness."""
    if cancelled(0 if complete else CANCEL_GRACE_S):
        raise Cancelled("the client cancelled the upload or the connection dropped")


def _check_upload_request(request: UploadRequest) -> None:
    if not names.UPLOAD_ID_RE.fullmatch(request.upload_id):
        raise InvalidArgument.field("header.upload_id", "must be 1-128 characters of [A-Za-z0-9_-]")
    if request.write_offset < 0:
        raise InvalidArgument.field("header.write_offset", "must not be negative")
    if request.size is not None and request.size < 0:
        raise InvalidArgument.field("header.size_bytes", "must not be negative")
    if request.sha256 and not SHA256_RE.fullmatch(request.sha256):
        raise InvalidArgument.field("header.sha256", "must be 64 lowercase hex characters")
    check_text(request.content_type, "header.content_type")


def _file_name(record: FileRecord) -> str:
    return names.file_name(record.model_id, record.version_number, record.file_id)
