"""Garbage collection: the metadata against itself, and the blob store against the metadata.

One pass removes, once older than the grace period:
1. upload sessions not updated since (their rows and stored bytes; not those receiving data
   on this server right now, nor those whose lease a server holds);
2. stored uploads that no ACTIVE session owns: parts of finished, cancelled or unknown uploads;
3. blobs that no file references. Stored blobs without a row are first given one, dated by
   the object's own time, so they are judged (and removed) by the same race-free step as every
   other blob: a row is deleted, and then its object, only while the row is held and only if
   no file references it and nothing touched it since the cutoff (see ``docs/design.md``).

Steps 2 and 3 each look at no more than ``limit`` listed objects per pass, resuming the listing
where the previous pass stopped (from the start again once it reached the end), so every stored
object is looked at within a bounded number of passes however many are in the way.

Stored uploads are listed *before* the sessions are read: a session's row is written before
any of its bytes, so the bytes of a session created after that read are newer than the listing
and are never candidates.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from .blob_names import blob_key, digest_of_key, staging_id, storage_id, upload_of_staging
from .entities import UploadSession, UploadState
from .ports import (
    BlobInventory,
    BlobReferences,
    StoredObject,
    Transactions,
    UploadSessions,
    UploadStaging,
)

_BATCH = 500

# Claims an upload for GC: True (and held for the ``with`` block) unless a stream is
# receiving it on this server.
UploadClaim = Callable[[str, str], AbstractContextManager[bool]]


class GcStore(Transactions, UploadSessions, BlobReferences, Protocol):
    """The metadata ports GC needs."""


class GcBlobs(BlobInventory, UploadStaging, Protocol):
    """The blob ports GC needs: the inventory, and dropping an upload's bytes."""


@dataclass(frozen=True)
class GcReport:
    """What one garbage collection removed."""

    uploads: int  # stale upload sessions, with their stored bytes
    blobs: int  # blobs no file referenced (orphans included)
    orphan_uploads: int = 0  # stored uploads no ACTIVE session owned
    orphan_blobs: int = 0  # stored blobs found without a row (then judged like any blob)


class GarbageCollector:
    """Removes what nothing references any more (see the module docstring)."""

    def __init__(
        self,
        store: GcStore,
        blobs: GcBlobs,
        *,
        clock: Callable[[], datetime],
        grace: timedelta,
        claim: UploadClaim,
        limit: int = 1000,
    ) -> None:
        self._store = store
        self._blobs = blobs
        self._clock = clock
        self._grace = grace
        self._claim = claim
        self._limit = limit
        # Where the next pass resumes listing stored uploads and blobs ("": from the start).
        self._uploads_after = ""
        self._blobs_after = ""

    def collect(self) -> GcReport:
        """One pass; each step removes at most ``limit`` things (the rest wait for the next)."""
        cutoff = self._clock() - self._grace
        uploads = self._stale_sessions(cutoff)
        orphan_uploads = self._orphan_uploads(cutoff)
        orphan_blobs = self._adopt_orphan_blobs(cutoff)
        blobs = self._unreferenced_blobs(cutoff)
        return GcReport(uploads, blobs, orphan_uploads, orphan_blobs)

    def _stale_sessions(self, cutoff: datetime) -> int:
        removed = 0
        now = self._clock()
        for listed in self._store.stale_uploads(cutoff, self._limit):
            if not _abandoned(listed, cutoff, now):
                continue
            tenant, upload_id = listed.tenant, listed.upload_id
            with self._claim(tenant, upload_id) as claimed:
                if not claimed:
                    continue  # a stream is receiving it right now: not abandoned
                with self._store.transaction():
                    # Judged again under the row's lock: another server may have resumed it
                    # (taken its lease) since the listing; it then keeps row and bytes.
                    session = self._store.get_upload(tenant, upload_id, for_update=True)
                    if session is None or not _abandoned(session, cutoff, now):
                        continue
                    # A committed session can still have leftover parts (a failed clean-up).
                    # Its current writer's staging and the name of uploads staged before
                    # per-writer staging; earlier writers' are orphans from here on.
                    for holder in {session.lease_holder, ""}:
                        self._blobs.abort_upload(staging_id(tenant, upload_id, holder))
                    self._store.delete_upload(tenant, upload_id)
            removed += 1
        return removed

    def _orphan_uploads(self, cutoff: datetime) -> int:
        listed = list(itertools.islice(self._blobs.list_uploads(self._uploads_after), self._limit))
        self._uploads_after = _resume_after(listed, self._limit)
        candidates = [o.name for o in listed if o.modified < cutoff]
        if not candidates:
            return 0
        owned = self._active_storage_ids()
        removed = 0
        for name in candidates:
            if upload_of_staging(name) not in owned:
                self._blobs.abort_upload(name)
                removed += 1
        return removed

    def _active_storage_ids(self) -> set[str]:
        owned: set[str] = set()
        after: tuple[str, str] | None = None
        while True:
            page = self._store.active_uploads(after, self._limit)
            owned.update(storage_id(tenant, upload_id) for tenant, upload_id in page)
            if len(page) < self._limit:
                return owned
            after = page[-1]

    def _adopt_orphan_blobs(self, cutoff: datetime) -> int:
        adopted = 0
        listed = list(itertools.islice(self._blobs.list_blobs(self._blobs_after), self._limit))
        self._blobs_after = _resume_after(listed, self._limit)
        old = (o for o in listed if o.modified < cutoff)
        for batch in _batches(old, _BATCH):
            known = self._store.known_blobs([digest_of_key(o.name) for o in batch])
            for obj in batch:
                digest = digest_of_key(obj.name)
                if digest not in known and self._store.adopt_blob(digest, obj.size, obj.modified):
                    adopted += 1
        return adopted

    def _unreferenced_blobs(self, cutoff: datetime) -> int:
        removed = 0
        for digest in self._store.collectable_blobs(cutoff, self._limit):
            # The row delete and the object delete happen under the row's lock, so an upload
            # that touches the same digest concurrently waits and then re-creates the blob.
            with self._store.transaction():
                if self._store.forget_blob(digest, cutoff):
                    self._blobs.delete(blob_key(digest))
                    removed += 1
        return removed


def _resume_after(listed: list[StoredObject], limit: int) -> str:
    """Where the next pass resumes: after the last object listed, or from the start again
    once the listing ended."""
    return listed[-1].name if len(listed) == limit else ""


def _batches(objects: Iterable[StoredObject], size: int) -> Iterable[list[StoredObject]]:
    iterator = iter(objects)
    while batch := list(itertools.islice(iterator, size)):
        yield batch


def _abandoned(session: UploadSession, cutoff: datetime, now: datetime) -> bool:
    """Not updated since ``cutoff``, and (if ACTIVE) no server holds its lease at ``now``."""
    leased = session.lease_expire is not None and session.lease_expire > now
    return session.update_time < cutoff and not (leased and session.state is UploadState.ACTIVE)
