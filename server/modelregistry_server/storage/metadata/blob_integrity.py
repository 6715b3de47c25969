"""Block sums of blobs and what checks of their stored bytes found (the ``BlobIntegrity``
port), on the ``blobs`` rows shared by every file with the same content."""

from __future__ import annotations

from datetime import datetime

import peewee

from ...domain.entities import BlobRecord, BlockSums, FileRecord, IntegrityState
from . import rows
from .core import StoreCore, check_limit, dicts, first
from .files import with_integrity


class BlobIntegrityRows(StoreCore):
    """``blobs.block_size``/``block_crc32c`` (the sums) and ``verify_state``/``verify_time``."""

    def get_blob(self, digest: str) -> BlobRecord | None:
        """The blob's row, or None."""
        b = self._t.blobs
        with self._read():
            row = first(b.select().where(b.digest == digest))
        return None if row is None else rows.blob_entity(row)

    def set_block_sums(self, digest: str, sums: BlockSums) -> bool:
        """Store block sums for a blob row that has none; False if nothing was stored."""
        b = self._t.blobs
        with self._write():
            changed: int = (
                b.update(**rows.blob_sums_columns(sums))
                .where(b.digest == digest, b.block_crc32c.is_null())
                .execute()
            )
        return changed > 0

    def record_verification(
        self, digest: str, state: IntegrityState, when: datetime | None
    ) -> bool:
        """Record what a check of the blob found (``when`` None: not re-read since stored);
        False if the blob has no row."""
        b = self._t.blobs
        when_us = 0 if when is None else rows.to_micros(when)
        with self._write():
            changed: int = (
                b.update(verify_state=str(state), verify_time=when_us)
                .where(b.digest == digest)
                .execute()
            )
        return changed > 0

    def blobs_to_verify(self, before: datetime, limit: int) -> list[BlobRecord]:
        """Blobs some file references that were not verified since ``before``, the least
        recently verified (never first) first."""
        check_limit(limit)
        b, f = self._t.blobs, self._t.files
        referenced = f.select(peewee.SQL("1")).where(f.sha256 == b.digest)
        with self._read():
            query = (
                b.select()
                .where(b.verify_time < rows.to_micros(before), peewee.fn.EXISTS(referenced))
                .order_by(b.verify_time, b.digest)
                .limit(limit)
            )
            return [rows.blob_entity(r) for r in dicts(query)]

    def files_with_blob(self, digest: str, limit: int) -> list[FileRecord]:
        """Files (any tenant) whose content is blob ``digest``."""
        check_limit(limit)
        f, v = self._t.files, self._t.versions
        with self._read():
            query = (
                with_integrity(
                    self._t,
                    f.select(f, v.model_id, v.number).join_from(f, v, on=(f.version_pk == v.id)),
                )
                .where(f.sha256 == digest)
                .order_by(f.tenant, v.model_id, v.number, f.file_id)
                .limit(limit)
            )
            return [rows.file_entity(r, r["model_id"], r["number"]) for r in dicts(query)]
