"""Blob reference bookkeeping for dedup and GC (the ``BlobReferences`` port)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import peewee

from . import rows
from .core import StoreCore, check_limit, first, tuples


class BlobRefRows(StoreCore):
    """``blobs``: one row per stored digest; files reference it by ``sha256``."""

    def touch_blob(self, digest: str, size: int, now: datetime) -> None:
        """Record that blob ``digest`` is (about to be) used; upsert with ``touch_time=now``."""
        b = self._t.blobs
        now_us = rows.to_micros(now)
        with self._write():
            b.insert(digest=digest, size=size, touch_time=now_us).on_conflict(
                conflict_target=[b.digest], update={b.touch_time: now_us}
            ).as_rowcount().execute()

    def is_blob_known(self, digest: str) -> bool:
        """True if a blob row exists (for tests and diagnostics; not part of the port)."""
        b = self._t.blobs
        with self._read():
            known: bool = b.select().where(b.digest == digest).exists()
            return known

    def _collectable(self, before: datetime) -> Any:
        b, f = self._t.blobs, self._t.files
        referenced = f.select(peewee.SQL("1")).where(f.sha256 == b.digest)
        return (b.touch_time < rows.to_micros(before)) & ~peewee.fn.EXISTS(referenced)

    def collectable_blobs(self, before: datetime, limit: int) -> list[str]:
        """Digests of blobs no file references and untouched since ``before``."""
        check_limit(limit)
        b = self._t.blobs
        with self._read():
            query = (
                b.select(b.digest)
                .where(self._collectable(before))
                .order_by(b.touch_time, b.digest)
                .limit(limit)
            )
            return [digest for (digest,) in tuples(query)]

    def forget_blob(self, digest: str, before: datetime) -> bool:
        """Delete the blob row if still unreferenced and untouched since ``before``."""
        b = self._t.blobs
        with self._write():
            if self._backend.supports_for_update:
                # Wait for a publish holding the row, then judge references in a new statement:
                # a DELETE that waited on the lock would re-check them against its old snapshot.
                first(b.select(b.digest).where(b.digest == digest).for_update())
            deleted: int = b.delete().where(b.digest == digest, self._collectable(before)).execute()
            return deleted > 0
