"""Bytes: content-addressed blobs (``sha256/<hex>``) and the resumable uploads that become them.

Blobs are created only by committing an upload and are never overwritten.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True)
class StoredObject:
    """A blob or upload as listed by a blob store (for GC)."""

    name: str  # blob key (``sha256/<hex>``) or upload id
    size: int
    modified: datetime


class BlobReader(Protocol):
    """Reading blobs."""

    def read(self, key: str, offset: int = 0, limit: int | None = None) -> Iterator[bytes]:
        """Stream ``limit`` bytes (all if None) of blob ``key`` from ``offset``.

        Raises DataLoss(BLOB_MISSING) if the blob does not exist.
        """
        ...


class UploadStaging(Protocol):
    """Resumable uploads, staged piece by piece and committed into blobs."""

    def write_upload(self, upload_id: str, offset: int, chunks: Iterable[bytes]) -> int:
        """Store ``chunks`` at ``offset`` of the upload and return the bytes written.

        ``offset`` is the end of what earlier writes stored (0 for a new upload); anything an
        earlier unfinished write left beyond it is discarded. The bytes are durable once
        :meth:`sync_upload` returns. If ``chunks`` raises, the exception propagates and nothing
        past ``offset`` counts as written.
        """
        ...

    def sync_upload(self, upload_id: str) -> None:
        """Make every byte written to the upload so far durable.

        May run on another thread while the next :meth:`write_upload` of the same upload is
        in progress (it then may or may not include some of those newer bytes).
        """
        ...

    def read_upload(self, upload_id: str, size: int) -> Iterator[bytes]:
        """The first ``size`` bytes of an upload (to rebuild hash state when resuming).

        Raises DataLoss(UPLOAD_DATA_MISSING) if fewer bytes are stored.
        """
        ...

    def commit_upload(self, upload_id: str, size: int, key: str) -> bool:
        """Turn the first ``size`` bytes of the upload into blob ``key``, then drop the upload.

        Create-only: if ``key`` already exists the upload is dropped and False is returned
        (the bytes are already stored: dedup). True if this call created the blob.
        """
        ...

    def abort_upload(self, upload_id: str) -> None:
        """Drop an upload's stored bytes; no error if there are none."""
        ...

    def copy_upload(self, source_id: str, target_id: str, size: int) -> None:
        """Make upload ``target_id`` a durable copy of the first ``size`` bytes of ``source_id``
        (replacing whatever ``target_id`` held), sharing no storage a later write to
        ``source_id`` could change; ``source_id`` is left as it was.

        Raises DataLoss(UPLOAD_DATA_MISSING) if ``source_id`` holds fewer bytes.
        """
        ...


class BlobInventory(Protocol):
    """What is stored, and deleting it: for garbage collection and reconciliation."""

    def list_blobs(self, after: str = "") -> Iterator[StoredObject]:
        """Every blob whose key sorts after ``after``, in key order."""
        ...

    def list_uploads(self, after: str = "") -> Iterator[StoredObject]:
        """Every upload with stored bytes whose id sorts after ``after``, ordered by
        ``id + "/"`` (the order of their object names in a bucket)."""
        ...

    def delete(self, key: str) -> None:
        """Delete blob ``key``; no error if absent."""
        ...


class BlobStore(BlobReader, UploadStaging, BlobInventory, Protocol):
    """Every blob port in one: what a blob adapter provides and the wiring holds."""
