"""Blob store on Google Cloud Storage.

Object names under ``<prefix>/``: blob ``sha256/<hex>`` is ``blobs/sha256/<hex>``; an upload (the
domain names one per writer of an upload) is a chain of part objects
``uploads/<id>/<offset:020d>``, one per :meth:`GcsBlobStore.write_upload` call, each starting
where the previous one ends. A part is finalised only once its whole piece has been sent, so a
failed piece leaves nothing. Committing composes the chain into the blob in
one create-only request (``ifGenerationMatch=0``): a blob is never half-visible or overwritten.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import urllib3
from google.api_core import exceptions as api_exceptions
from google.api_core.retry import Retry
from google.auth import exceptions as auth_exceptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage
from google.cloud.storage import exceptions as storage_exceptions
from google.cloud.storage.retry import DEFAULT_RETRY

from ...domain.errors import DataLoss, Reason, Unavailable
from ...domain.ports import StoredObject
from .keys import (
    BLOB_KEY_PREFIX,
    check_key,
    check_position,
    check_upload_id,
    is_hex_digest,
    is_upload_id,
)

log = logging.getLogger(__name__)

DEFAULT_READ_CHUNK_SIZE = 1 << 20
DEFAULT_UPLOAD_CHUNK_SIZE = 8 << 20
UPLOAD_CHUNK_UNIT = 256 << 10  # resumable upload chunks must be multiples of this
COMPOSE_LIMIT = 32  # sources per compose request
_CONTENT_TYPE = "application/octet-stream"
_PART_NAME = re.compile(r"[0-9]{20}")
_DEFAULT_PROJECT = "modelregistry"
UNAVAILABLE_MESSAGE = "the blob store is unavailable; retry later"

# Everything the client library raises when the service cannot be reached or refuses the
# request: HTTP error statuses and exhausted retries (GoogleAPIError), connection errors and
# timeouts (requests' errors are OSErrors), credential problems and bad resumable responses.
_BACKEND_ERRORS: tuple[type[BaseException], ...] = (
    api_exceptions.GoogleAPIError,
    OSError,
    urllib3.exceptions.HTTPError,
    auth_exceptions.GoogleAuthError,
    storage_exceptions.InvalidResponse,
    storage_exceptions.DataCorruption,
)


def _unavailable(what: str, exc: BaseException) -> Unavailable:
    """The client hears that the store is unavailable; bucket, object names, hosts and the
    library's text go to the log."""
    log.warning("gcs blob store: cannot %s: %s: %s", what, type(exc).__name__, exc)
    return Unavailable(UNAVAILABLE_MESSAGE)


@contextlib.contextmanager
def _translate(what: str) -> Iterator[None]:
    """Report client library failures as the store being unavailable."""
    try:
        yield
    except _BACKEND_ERRORS as exc:
        raise _unavailable(what, exc) from exc


def default_client() -> Any:
    """A client for the emulator (anonymous) if ``STORAGE_EMULATOR_HOST`` is set, else default
    credentials."""
    if os.environ.get("STORAGE_EMULATOR_HOST"):
        project = os.environ.get("GOOGLE_CLOUD_PROJECT", _DEFAULT_PROJECT)
        # google-auth leaves AnonymousCredentials.__init__ unannotated.
        anonymous = AnonymousCredentials()  # type: ignore[no-untyped-call]
        return storage.Client(project=project, credentials=anonymous)
    return storage.Client()


@dataclass(frozen=True)
class _Part:
    """One part object of an upload: the bytes ``[start, end)``."""

    start: int
    blob: Any

    @property
    def end(self) -> int:
        return self.start + int(self.blob.size)


class _ChunkReader:
    """A read-only binary stream over an iterator of chunks, for ``upload_from_file``.

    Holds at most one chunk beyond what was asked for. A failure of the iterator is kept in
    :attr:`failure` and re-raised, never turned into a short read (which would end the part).
    """

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)
        self._pending = memoryview(b"")
        self._position = 0
        self.failure: BaseException | None = None

    def prime(self) -> bool:
        """Fetch the first non-empty chunk; False if the iterator has none."""
        return self._fill()

    def _fill(self) -> bool:
        while not self._pending:
            try:
                chunk = next(self._chunks)
            except StopIteration:
                return False
            except BaseException as exc:
                self.failure = exc
                raise
            self._pending = memoryview(chunk).cast("B")
        return True

    def read(self, size: int = -1) -> bytes:
        """Up to ``size`` bytes (all if negative); fewer only at the end of the chunks."""
        out = bytearray()
        while (size < 0 or len(out) < size) and self._fill():
            take = len(self._pending) if size < 0 else size - len(out)
            out += self._pending[:take]
            self._pending = self._pending[take:]
        self._position += len(out)
        return bytes(out)

    def tell(self) -> int:
        """Bytes read so far."""
        return self._position


class GcsBlobStore:
    """:class:`~modelregistry_server.domain.ports.BlobStore` on a GCS bucket.

    ``timeout`` bounds each HTTP request and ``retry_deadline`` all retries of one request.
    """

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        client: Any | None = None,
        read_chunk_size: int = DEFAULT_READ_CHUNK_SIZE,
        upload_chunk_size: int = DEFAULT_UPLOAD_CHUNK_SIZE,
        timeout: float = 60,
        retry_deadline: float = 120,
    ) -> None:
        if not bucket:
            raise ValueError("bucket must not be empty")
        if read_chunk_size <= 0:
            raise ValueError(f"read_chunk_size must be positive, got {read_chunk_size}")
        if upload_chunk_size <= 0 or upload_chunk_size % UPLOAD_CHUNK_UNIT:
            raise ValueError(
                f"upload_chunk_size must be a positive multiple of {UPLOAD_CHUNK_UNIT}, "
                f"got {upload_chunk_size}"
            )
        if client is None:
            with _translate("create a client"):
                client = default_client()
        self._client = client
        self._bucket = client.bucket(bucket)
        prefix = prefix.strip("/")
        self._root = f"{prefix}/" if prefix else ""
        self._read_chunk_size = read_chunk_size
        self._upload_chunk_size = upload_chunk_size
        self._timeout = timeout
        self._retry: Retry = DEFAULT_RETRY.with_timeout(retry_deadline)

    def __repr__(self) -> str:
        return f"GcsBlobStore('gs://{self._bucket.name}/{self._root}')"

    # -- names -------------------------------------------------------------------------------
    def _blob_name(self, key: str) -> str:
        check_key(key)
        return f"{self._root}blobs/{key}"

    def _upload_prefix(self, upload_id: str) -> str:
        check_upload_id(upload_id)
        return f"{self._root}uploads/{upload_id}/"

    # -- uploads -----------------------------------------------------------------------------
    def write_upload(self, upload_id: str, offset: int, chunks: Iterable[bytes]) -> int:
        """Write ``chunks`` as a new part at ``offset`` after dropping anything stored past it."""
        prefix = self._upload_prefix(upload_id)
        check_position("offset", offset)
        parts, _ = self._list_upload(upload_id)
        self._cut(upload_id, parts, offset)
        written, _ = self._write_part(f"{prefix}{offset:020d}", chunks)
        return written

    def sync_upload(self, upload_id: str) -> None:
        """Nothing to do: a part is durable once its upload request has finished."""
        check_upload_id(upload_id)

    def read_upload(self, upload_id: str, size: int) -> Iterator[bytes]:
        """The first ``size`` bytes of the part chain."""
        check_upload_id(upload_id)
        check_position("size", size)
        parts, _ = self._list_upload(upload_id)
        chain = self._chain(upload_id, parts, size)
        return self._read_chain(chain, size)

    def _read_chain(self, chain: list[_Part], size: int) -> Iterator[bytes]:
        for part in chain:
            end = min(part.end, size) - part.start
            yield from self._read_range(part.blob, 0, end, Reason.UPLOAD_DATA_MISSING)

    def commit_upload(self, upload_id: str, size: int, key: str) -> bool:
        """Compose the first ``size`` bytes into blob ``key`` (create-only), then drop the parts."""
        check_upload_id(upload_id)
        destination = self._bucket.blob(self._blob_name(key))
        check_position("size", size)
        parts, _ = self._list_upload(upload_id)
        self._chain(upload_id, parts, size)  # report missing bytes before changing anything
        with _translate(f"look up blob {key}"):
            exists = destination.exists(timeout=self._timeout, retry=self._retry)
        created = False
        if not exists:
            chain = self._cut(upload_id, parts, size)
            created = self._publish(upload_id, chain, destination)
        try:
            self.abort_upload(upload_id)
        except Unavailable as exc:
            # The blob is in place; leftover parts are listed and collected as an upload.
            log.warning("blob %s committed but upload %s not cleaned up: %s", key, upload_id, exc)
        return created

    def abort_upload(self, upload_id: str) -> None:
        """Delete every object of the upload (parts and compose temporaries)."""
        parts, others = self._list_upload(upload_id)
        for blob in [part.blob for part in parts] + others:
            self._delete_object(blob)

    def copy_upload(self, source_id: str, target_id: str, size: int) -> None:
        """Copy the source's part chain up to ``size`` into new part objects of the target, each
        by a server-side compose of one source (no bytes pass through this server)."""
        check_upload_id(source_id)
        target = self._upload_prefix(target_id)
        check_position("size", size)
        parts, _ = self._list_upload(source_id)
        chain = self._chain(source_id, parts, size)
        self.abort_upload(target_id)
        copies: list[_Part] = []
        for part in chain:
            copy = self._bucket.blob(f"{target}{part.start:020d}")
            copy.content_type = _CONTENT_TYPE
            with _translate(f"copy {part.blob.name}"):
                copy.compose([part.blob], timeout=self._timeout, retry=self._retry)
            copies.append(_Part(part.start, copy))
        self._cut(target_id, copies, size)  # a last part reaching past ``size``

    def _list_upload(self, upload_id: str) -> tuple[list[_Part], list[Any]]:
        """The upload's parts ordered by start, and its other objects."""
        prefix = self._upload_prefix(upload_id)
        parts: list[_Part] = []
        others: list[Any] = []
        with _translate(f"list upload {upload_id}"):
            for blob in self._client.list_blobs(
                self._bucket, prefix=prefix, timeout=self._timeout, retry=self._retry
            ):
                leaf = blob.name[len(prefix) :]
                if _PART_NAME.fullmatch(leaf):
                    parts.append(_Part(int(leaf), blob))
                else:
                    others.append(blob)
        parts.sort(key=lambda part: part.start)
        return parts, others

    @staticmethod
    def _chain(upload_id: str, parts: list[_Part], size: int) -> list[_Part]:
        """The consecutive parts from 0 that hold byte ``size - 1`` (the last may reach past it).

        Raises DataLoss(UPLOAD_DATA_MISSING) if they stop short of ``size``.
        """
        chain: list[_Part] = []
        position = 0
        for part in parts:
            if position >= size or part.start > position:
                break
            if part.start == position:  # a part starting inside the chain is a leftover
                chain.append(part)
                position = part.end
        if position < size:
            raise DataLoss(
                f"upload {upload_id} has {position} consecutive bytes stored, {size} needed",
                reason=Reason.UPLOAD_DATA_MISSING,
            )
        return chain

    def _cut(self, upload_id: str, parts: list[_Part], size: int) -> list[_Part]:
        """Make the upload hold exactly its first ``size`` bytes and return its chain.

        Parts outside the chain are deleted; a last part reaching past ``size`` is rewritten
        with only its first bytes.
        """
        chain = self._chain(upload_id, parts, size)
        kept = {part.start for part in chain}
        for part in parts:
            if part.start not in kept:
                self._delete_object(part.blob)
        if chain and chain[-1].end > size:
            last = chain[-1]
            length = size - last.start
            written, rewritten = self._write_part(
                last.blob.name,
                self._read_range(last.blob, 0, length, Reason.UPLOAD_DATA_MISSING),
            )
            if written != length:
                log.warning("gcs blob store: part %s was not rewritten", last.blob.name)
                raise DataLoss(
                    f"upload {upload_id}: its last stored part could not be shortened",
                    reason=Reason.UPLOAD_DATA_MISSING,
                )
            chain[-1] = _Part(last.start, rewritten)
        return chain

    def _write_part(self, name: str, chunks: Iterable[bytes]) -> tuple[int, Any]:
        """Stream ``chunks`` into a new object ``name``: bytes written and the object (None,
        and no object, if there are no bytes)."""
        source = _ChunkReader(chunks)
        if not source.prime():
            return 0, None
        blob = self._bucket.blob(name, chunk_size=self._upload_chunk_size)
        try:
            blob.upload_from_file(
                source, content_type=_CONTENT_TYPE, timeout=self._timeout, retry=self._retry
            )
        except BaseException as exc:
            if exc is source.failure or not isinstance(exc, _BACKEND_ERRORS):
                raise
            raise _unavailable(f"write {name}", exc) from exc
        return source.tell(), blob

    def _publish(self, upload_id: str, chain: list[_Part], destination: Any) -> bool:
        """Create ``destination`` from the chain unless it exists; True if this call did."""
        destination.content_type = _CONTENT_TYPE
        with _translate(f"create {destination.name}"):
            try:
                if not chain:
                    destination.upload_from_string(
                        b"",
                        content_type=_CONTENT_TYPE,
                        if_generation_match=0,
                        timeout=self._timeout,
                        retry=self._retry,
                    )
                else:
                    sources = self._compose_rounds(upload_id, [part.blob for part in chain])
                    destination.compose(
                        sources, if_generation_match=0, timeout=self._timeout, retry=self._retry
                    )
            except api_exceptions.PreconditionFailed:
                return False
        return True

    def _compose_rounds(self, upload_id: str, sources: list[Any]) -> list[Any]:
        """Compose groups of sources into temporaries until one request can take them all."""
        prefix = self._upload_prefix(upload_id)
        level = 0
        while len(sources) > COMPOSE_LIMIT:
            merged = []
            for index in range(0, len(sources), COMPOSE_LIMIT):
                group = sources[index : index + COMPOSE_LIMIT]
                if len(group) == 1:
                    merged.append(group[0])
                    continue
                temporary = self._bucket.blob(f"{prefix}compose-{level}-{index // COMPOSE_LIMIT}")
                temporary.content_type = _CONTENT_TYPE
                temporary.compose(group, timeout=self._timeout, retry=self._retry)
                merged.append(temporary)
            sources = merged
            level += 1
        return sources

    # -- blobs -------------------------------------------------------------------------------
    def read(self, key: str, offset: int = 0, limit: int | None = None) -> Iterator[bytes]:
        """Stream ``limit`` bytes (all if None) of the blob from ``offset`` by ranged requests."""
        name = self._blob_name(key)
        check_position("offset", offset)
        check_position("limit", limit)
        with _translate(f"look up blob {key}"):
            blob = self._bucket.get_blob(name, timeout=self._timeout, retry=self._retry)
        if blob is None:
            raise DataLoss(f"blob {key} is missing", reason=Reason.BLOB_MISSING)
        size = int(blob.size)
        end = size if limit is None else min(size, offset + limit)
        return self._read_range(blob, offset, end, Reason.BLOB_MISSING)

    def _read_range(self, blob: Any, start: int, end: int, missing: Reason) -> Iterator[bytes]:
        """Bytes ``[start, end)`` of the object's generation, one request per chunk.

        DataLoss with reason ``missing`` if the object disappears meanwhile.
        """
        position = start
        while position < end:
            stop = min(end, position + self._read_chunk_size)
            with _translate(f"read {blob.name}"):
                try:
                    data = blob.download_as_bytes(
                        start=position,
                        end=stop - 1,
                        raw_download=True,
                        checksum=None,
                        timeout=self._timeout,
                        retry=self._retry,
                    )
                except api_exceptions.NotFound:
                    log.warning("gcs blob store: %s disappeared while being read", blob.name)
                    raise DataLoss(
                        "stored bytes disappeared while being read", reason=missing
                    ) from None
            if len(data) != stop - position:
                log.warning("gcs blob store: short read of %s at %d", blob.name, position)
                raise DataLoss(
                    f"got {len(data)} stored bytes at {position}, expected {stop - position}",
                    reason=missing,
                )
            position = stop
            yield data

    def exists(self, key: str) -> bool:
        """True if the blob object exists."""
        name = self._blob_name(key)
        with _translate(f"look up blob {key}"):
            return bool(self._bucket.blob(name).exists(timeout=self._timeout, retry=self._retry))

    def delete(self, key: str) -> None:
        """Delete the blob object if there is one."""
        self._delete_object(self._bucket.blob(self._blob_name(key)))

    def _delete_object(self, blob: Any) -> None:
        with _translate(f"delete {blob.name}"), contextlib.suppress(api_exceptions.NotFound):
            blob.delete(timeout=self._timeout, retry=self._retry)

    def list_blobs(self, after: str = "") -> Iterator[StoredObject]:
        """Every blob object under ``blobs/sha256/`` whose key sorts after ``after``."""
        prefix = f"{self._root}blobs/{BLOB_KEY_PREFIX}"
        start = after.removeprefix(BLOB_KEY_PREFIX)
        for blob in self._list(prefix, prefix + start):
            leaf = blob.name[len(prefix) :]
            if is_hex_digest(leaf) and leaf > start:
                yield StoredObject(BLOB_KEY_PREFIX + leaf, int(blob.size), blob.updated)

    def list_uploads(self, after: str = "") -> Iterator[StoredObject]:
        """Every upload with objects whose id sorts after ``after``: its part bytes and its
        newest object's time (an upload's objects are listed one after another)."""
        prefix = f"{self._root}uploads/"
        current: StoredObject | None = None
        for blob in self._list(prefix, prefix + after):
            upload_id, _, leaf = blob.name[len(prefix) :].partition("/")
            if not is_upload_id(upload_id) or upload_id + "/" <= after + "/":
                continue
            size = int(blob.size) if _PART_NAME.fullmatch(leaf) else 0
            if current is not None and current.name == upload_id:
                size += current.size
                modified = max(current.modified, blob.updated)
            else:
                if current is not None:
                    yield current
                modified = blob.updated
            current = StoredObject(upload_id, size, modified)
        if current is not None:
            yield current

    def _list(self, prefix: str, start: str = "") -> Iterator[Any]:
        with _translate(f"list {prefix}"):
            yield from self._client.list_blobs(
                self._bucket,
                prefix=prefix,
                start_offset=start or None,
                timeout=self._timeout,
                retry=self._retry,
            )
