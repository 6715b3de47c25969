"""Blob reference bookkeeping for dedup and GC (the ``BlobReferences`` port)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import peewee

from ...domain.entities import BlockSums, IntegrityState
from . import rows
from .core import StoreCore, check_limit, chunks, first, tuples


class BlobRefRows(StoreCore):
    """``blobs``: one row per stored digest; files reference it by ``sha256``."""

    def touch_blob(
        self, digest: str, size: int, now: datetime, sums: BlockSums | None = None
    ) -> IntegrityState:
        """Record that blob ``digest`` is (about to be) used: upsert with ``touch_time=now``;
        ``sums`` are stored if the row has none yet. Returns the row's integrity state (one
        statement: ``INSERT … ON CONFLICT DO UPDATE … RETURNING``)."""
        b = self._t.blobs
        now_us = rows.to_micros(now)
        columns = rows.blob_sums_columns(sums)
        update: dict[Any, Any] = {b.touch_time: now_us}
        if sums is not None:
            update[b.block_size] = peewee.Case(
                None, [(b.block_crc32c.is_null(), columns["block_size"])], b.block_size
            )
            update[b.block_crc32c] = peewee.fn.COALESCE(b.block_crc32c, columns["block_crc32c"])
        with self._write():
            query = b.insert(
                digest=digest,
                size=size,
                touch_time=now_us,
                verify_state=str(IntegrityState.UNVERIFIED),
                verify_time=0,
                **columns,
            ).on_conflict(conflict_target=[b.digest], update=update)
            ((state,),) = tuples(query.returning(b.verify_state))
        return IntegrityState(state)

    def known_blobs(self, digests: Sequence[str]) -> set[str]:
        """The digests among ``digests`` that have a blob row."""
        b = self._t.blobs
        found: set[str] = set()
        with self._read():
            for chunk in chunks(list(digests)):
                query = b.select(b.digest).where(b.digest.in_(list(chunk)))
                found.update(digest for (digest,) in tuples(query))
        return found

    def adopt_blob(self, digest: str, size: int, touch_time: datetime) -> bool:
        """Insert a row for a stored blob that has none (touched at ``touch_time``, so GC
        judges it like any other); False if a row exists."""
        b = self._t.blobs
        with self._write():
            inserted: int = (
                b.insert(
                    digest=digest,
                    size=size,
                    touch_time=rows.to_micros(touch_time),
                    verify_state=str(IntegrityState.UNVERIFIED),
                    verify_time=0,
                )
                .on_conflict_ignore()
                .as_rowcount()
                .execute()
            )
        return inserted > 0

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
