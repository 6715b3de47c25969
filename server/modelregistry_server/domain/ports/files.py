"""Rows behind payloads: files of versions, upload sessions, blob reference bookkeeping."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from ..entities import FileRecord, Page, UploadSession
from .queries import ListQuery


class FileCatalog(Protocol):
    """The visible files of versions."""

    def add_file(self, record: FileRecord) -> None:
        """Make a file visible and count it in its version: ``file_count`` + 1, ``total_size``
        + size, ``update_time`` = the file's ``create_time``, a new revision (nothing else of
        the version is written). Raises AlreadyExists(FILE_ALREADY_EXISTS) if the id is taken
        and NotFound(VERSION_NOT_FOUND) without the version; either way nothing changes."""
        ...

    def get_file(self, tenant: str, model_id: str, number: int, file_id: str) -> FileRecord | None:
        """The file, or None."""
        ...

    def list_files(
        self, tenant: str, model_id: str, number: int, after: str | None, limit: int
    ) -> Page[FileRecord]:
        """Files ordered by id; the cursor is ``(file_id,)``."""
        ...


class UploadSessions(Protocol):
    """Resumable upload sessions and their committed sizes."""

    def insert_upload(self, session: UploadSession) -> None:
        """Create a session; raises AlreadyExists(UPLOAD_CONFLICT) if the id is taken."""
        ...

    def get_upload(
        self, tenant: str, upload_id: str, *, for_update: bool = False
    ) -> UploadSession | None:
        """The session, or None."""
        ...

    def save_upload(self, session: UploadSession) -> None:
        """Write ``committed_size``, ``state`` and ``update_time`` of a session."""
        ...

    def advance_upload(
        self, tenant: str, upload_id: str, expected: int, new_size: int, now: datetime
    ) -> bool:
        """Compare-and-set: move an ACTIVE session's ``committed_size`` from ``expected`` to
        ``new_size`` (and ``update_time`` to ``now``); False, changing nothing, otherwise."""
        ...

    def delete_upload(self, tenant: str, upload_id: str) -> None:
        """Remove a session row."""
        ...

    def stale_uploads(self, before: datetime, limit: int) -> list[UploadSession]:
        """Sessions (any tenant) not updated since ``before``."""
        ...

    def list_uploads(
        self, tenant: str, model_id: str, number: int, query: ListQuery
    ) -> Page[UploadSession]:
        """One page of the sessions targeting a version (``show_deleted`` does not apply:
        sessions are never soft-deleted)."""
        ...


class BlobReferences(Protocol):
    """Which blobs are in use, for dedup and garbage collection (digests are sha256 hex)."""

    def touch_blob(self, digest: str, size: int, now: datetime) -> None:
        """Record that blob ``digest`` is (about to be) used; upsert with ``touch_time=now``."""
        ...

    def collectable_blobs(self, before: datetime, limit: int) -> list[str]:
        """Digests of blobs no file references and untouched since ``before``."""
        ...

    def forget_blob(self, digest: str, before: datetime) -> bool:
        """Delete the blob row if still unreferenced and untouched since ``before``."""
        ...
