"""Rows behind payloads: files of versions, upload sessions, blob reference bookkeeping,
block sums and integrity state of blobs."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from ..entities import BlobRecord, BlockSums, FileRecord, IntegrityState, Page, UploadSession
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

    def find_files(
        self,
        tenant: str,
        model_id: str | None,
        number: int | None,
        query: ListQuery,
    ) -> Page[FileRecord]:
        """Files of one version, of every live version of a model (``number`` None) or of
        every model (both None; then versions and models that are soft-deleted are left out),
        matching ``query.filter`` (fields of ``FILE_SCHEMA``), ordered by model id, version
        number and file id; the cursor is ``(model_id, version_number, file_id)``."""
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

    def save_upload(self, session: UploadSession, *, lease_token: int | None = None) -> None:
        """Write ``committed_size``, ``state``, ``update_time`` and the lease of a session.
        With ``lease_token``, only while the row carries that token: otherwise raise
        Aborted(UPLOAD_LEASE_LOST) (NotFound(UPLOAD_NOT_FOUND) if the row is gone)."""
        ...

    def advance_upload(
        self,
        tenant: str,
        upload_id: str,
        expected: int,
        new_size: int,
        now: datetime,
        *,
        lease_token: int | None = None,
        lease_expire: datetime | None = None,
    ) -> bool:
        """Compare-and-set: move an ACTIVE session's ``committed_size`` from ``expected`` to
        ``new_size`` (and ``update_time`` to ``now``); False, changing nothing, otherwise.
        With ``lease_token``, also only while the row carries that token (a writer whose
        lease was taken over is fenced), and the lease expiry becomes ``lease_expire``."""
        ...

    def extend_upload_lease(
        self, tenant: str, upload_id: str, lease_token: int, expire: datetime
    ) -> bool:
        """Set the lease expiry of an ACTIVE session that carries ``lease_token`` (renewal;
        release with ``expire`` = now); False, changing nothing, if it carries another."""
        ...

    def delete_upload(self, tenant: str, upload_id: str) -> None:
        """Remove a session row."""
        ...

    def stale_uploads(self, before: datetime, limit: int) -> list[UploadSession]:
        """Sessions (any tenant) not updated since ``before``."""
        ...

    def list_uploads(
        self, tenant: str, model_id: str, number: int, query: ListQuery, owner: str | None = None
    ) -> Page[UploadSession]:
        """One page of the sessions targeting a version (``show_deleted`` does not apply:
        sessions are never soft-deleted); with ``owner``, only those it opened and those
        without an owner."""
        ...

    def active_uploads(self, after: tuple[str, str] | None, limit: int) -> list[tuple[str, str]]:
        """``(tenant, upload_id)`` of ACTIVE sessions of any tenant, in that order, after the
        cursor ``after`` (None: from the start)."""
        ...


class BlobReferences(Protocol):
    """Which blobs are in use, for dedup and garbage collection (digests are sha256 hex)."""

    def touch_blob(
        self, digest: str, size: int, now: datetime, sums: BlockSums | None = None
    ) -> IntegrityState:
        """Record that blob ``digest`` is (about to be) used: upsert with ``touch_time=now``;
        ``sums`` are stored if the row has none yet. Returns the row's integrity state (a new
        row is UNVERIFIED)."""
        ...

    def known_blobs(self, digests: Sequence[str]) -> set[str]:
        """The digests among ``digests`` that have a blob row."""
        ...

    def adopt_blob(self, digest: str, size: int, touch_time: datetime) -> bool:
        """Insert a row for a stored blob that has none, touched at ``touch_time``; False if
        a row exists (nothing is changed then)."""
        ...

    def collectable_blobs(self, before: datetime, limit: int) -> list[str]:
        """Digests of blobs no file references and untouched since ``before``."""
        ...

    def forget_blob(self, digest: str, before: datetime) -> bool:
        """Delete the blob row if still unreferenced and untouched since ``before``."""
        ...


class BlobIntegrity(Protocol):
    """Block sums of blobs and what checks of their stored bytes found."""

    def get_blob(self, digest: str) -> BlobRecord | None:
        """The blob's row, or None."""
        ...

    def set_block_sums(self, digest: str, sums: BlockSums) -> bool:
        """Store block sums for a blob row that has none; False if nothing was stored."""
        ...

    def record_verification(
        self, digest: str, state: IntegrityState, when: datetime | None
    ) -> bool:
        """Record what a check of the blob found (``when`` None: not re-read since stored);
        False if the blob has no row."""
        ...

    def blobs_to_verify(self, before: datetime, limit: int) -> list[BlobRecord]:
        """Blobs some file references that were not verified since ``before``, the least
        recently verified (never verified first) first."""
        ...

    def files_with_blob(self, digest: str, limit: int) -> list[FileRecord]:
        """Files of any tenant whose content is blob ``digest``, ordered by tenant and name."""
        ...
