"""Integrity of stored bytes: verified reads, file verification and the scrub.

Every read of a file's bytes goes through :meth:`Integrity.read`. It asks the blob store for
whole blocks, checks each block's crc32c against the sums recorded at upload time before any
of its bytes are passed on, and for a whole-file read also checks the sha256 before the last
block leaves. A blob stored before block sums existed is still served: a whole-file read
computes its sums on the way and stores them once the sha256 matched; a ranged read first
verifies the whole blob by its sha256 and stores the sums (once per blob), then serves the
range checked against them. The scrub does the same ahead of time.

What a check finds is recorded on the blob's row (shared by every file with that content) and
logged with the files it breaks.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Protocol

from . import deadlines
from .blob_names import blob_key
from .checksums import BLOCK_BYTES, BlockHasher, block_count, checked_blocks
from .entities import BlobRecord, BlockSums, FileRecord, IntegrityState
from .errors import Cancelled, DataLoss, DomainError, Reason
from .names import file_name
from .ports import BlobIntegrity, BlobReader, BlobReferences
from .read_ahead import read_ahead

log = logging.getLogger(__name__)

# Files named in the log line of a bad blob (the rest are counted).
_FILES_LOGGED = 10
_SCRUB_BATCH = 100
# Blocks a download reads and checks ahead of the one being sent (on a helper thread).
_READ_AHEAD_BLOCKS = 2


class IntegrityStore(BlobReferences, BlobIntegrity, Protocol):
    """The metadata ports the integrity checks need."""


@dataclass(frozen=True)
class ScrubReport:
    """What one scrub run re-read and found."""

    blobs: int = 0
    bytes: int = 0
    corrupted: int = 0
    missing: int = 0
    broken_files: int = 0


def _state_of(error: DataLoss) -> IntegrityState:
    return (
        IntegrityState.MISSING if error.reason is Reason.BLOB_MISSING else IntegrityState.CORRUPTED
    )


class _Counted(Iterator[bytes]):
    """Counts the bytes pulled through an iterator."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self.count = 0

    def __next__(self) -> bytes:
        data = next(self._chunks)
        self.count += len(data)
        return data


class Integrity:
    """Checked reads of blobs, and the checks that re-read them (VerifyFile, scrub)."""

    def __init__(
        self,
        store: IntegrityStore,
        blobs: BlobReader,
        *,
        clock: Callable[[], datetime],
        block_size: int = BLOCK_BYTES,
    ) -> None:
        self._store = store
        self._blobs = blobs
        self._clock = clock
        self._block_size = block_size

    def new_hasher(self) -> BlockHasher:
        """A hasher for the block sums of a new blob."""
        return BlockHasher(self._block_size)

    # -- reads -------------------------------------------------------------------------------
    def read(self, record: FileRecord, offset: int, end: int) -> Iterator[bytes]:
        """The file's bytes ``[offset, end)``, each block checked before it is yielded.

        Raises (now, or while iterating) DataLoss BLOB_CORRUPTED / BLOB_MISSING; nothing of a
        bad block is yielded, and a whole-file read ends with the error instead of its last
        block if the sha256 does not match. Blocks are read and checked on a helper thread a
        few blocks ahead of the consumer.
        """
        blob = self._store.get_blob(record.sha256)
        sums = None if blob is None else blob.sums
        known = None if blob is None else blob.integrity
        whole = offset == 0 and end == record.size
        if sums is None and not whole and end > offset:
            sums = self._backfill(record, known)
        block_size = self._block_size if sums is None else sums.block_size
        first = offset // block_size
        read_end = min(record.size, block_count(end, block_size) * block_size)
        if end <= offset and not whole:  # an empty range touches no block
            read_end = first * block_size
        start = first * block_size
        try:
            chunks = self._blobs.read(blob_key(record.sha256), start, read_end - start)
        except DataLoss as exc:
            self._report(record.sha256, _state_of(exc), str(exc), known)
            raise
        checked = self._checked(record, chunks, sums, first, offset, end, read_end, whole, known)
        return read_ahead(checked, _READ_AHEAD_BLOCKS, name="checked-read")

    def _checked(
        self,
        record: FileRecord,
        chunks: Iterator[bytes],
        sums: BlockSums | None,
        first: int,
        offset: int,
        end: int,
        read_end: int,
        whole: bool,
        known: IntegrityState | None,
    ) -> Iterator[bytes]:
        sha = hashlib.sha256() if whole else None
        # A whole read of a blob without sums computes them (ranged reads backfill first).
        hasher = self.new_hasher() if sums is None and whole else None
        block_size = self._block_size if sums is None else sums.block_size
        position = first * block_size
        what = f"blob {blob_key(record.sha256)}"
        try:
            for block in checked_blocks(chunks, sums, first, read_end, what, block_size):
                start, position = position, position + len(block)
                if hasher is not None:
                    hasher.update(block)
                if sha is not None:
                    sha.update(block)
                    if position >= read_end:  # the last block leaves only if the file matches
                        _check_sha(sha.hexdigest(), record.sha256, what)
                low, high = max(offset - start, 0), min(end - start, len(block))
                if low < high:
                    yield block if high - low == len(block) else block[low:high]
            if sha is not None and read_end == 0:
                _check_sha(sha.hexdigest(), record.sha256, what)
        except DataLoss as exc:
            self._report(record.sha256, _state_of(exc), str(exc), known)
            raise
        if hasher is not None:
            self._store_sums(record.sha256, hasher.sums(), verified=True)

    def _backfill(self, record: FileRecord, known: IntegrityState | None) -> BlockSums:
        """Verify a blob without block sums by its sha256 and store its sums."""
        state, sums, detail = self._check(record.sha256, record.size, None)
        if state is not IntegrityState.VERIFIED or sums is None:
            self._report(record.sha256, state, detail, known)
            missing = state is IntegrityState.MISSING
            raise DataLoss(detail, reason=Reason.BLOB_MISSING if missing else Reason.BLOB_CORRUPTED)
        self._store_sums(record.sha256, sums, verified=True)
        return sums

    def _store_sums(self, digest: str, sums: BlockSums, *, verified: bool) -> None:
        """Keep the sums of a blob that had none (computed from bytes whose sha256 matched)."""
        with contextlib.suppress(DomainError):  # if this fails, the next read computes them again
            if self._store.set_block_sums(digest, sums) and verified:
                self._store.record_verification(digest, IntegrityState.VERIFIED, self._clock())

    # -- checks ------------------------------------------------------------------------------
    def _check(
        self,
        digest: str,
        size: int,
        sums: BlockSums | None,
        cancelled: Callable[[], bool] = lambda: False,
    ) -> tuple[IntegrityState, BlockSums | None, str]:
        """Re-read a whole blob: its state, its block sums (as read, if it matched) and what
        was found. Only a backend outage raises, and between blocks DEADLINE_EXCEEDED once the
        call's deadline passed or Cancelled once ``cancelled()`` (nothing is recorded then)."""
        what = f"blob {blob_key(digest)}"
        block_size = self._block_size if sums is None else sums.block_size
        hasher = BlockHasher(block_size)
        sha = hashlib.sha256()
        try:
            counted = _Counted(self._blobs.read(blob_key(digest), 0, size + 1))
            for block in checked_blocks(counted, sums, 0, size, what, block_size):
                _still_wanted(cancelled)
                sha.update(block)
                hasher.update(block)
            for _ in counted:  # anything beyond the recorded size
                pass
            if counted.count > size:
                return IntegrityState.CORRUPTED, None, f"{what} is longer than {size} bytes"
            _check_sha(sha.hexdigest(), digest, what)
        except DataLoss as exc:
            return _state_of(exc), None, str(exc)
        return IntegrityState.VERIFIED, hasher.sums(), f"{what} matches"

    def verify(
        self, record: FileRecord, cancelled: Callable[[], bool] = lambda: False
    ) -> FileRecord:
        """Re-read the file's blob now, record and return what was found. Stops between
        blocks once the call's deadline passed (DEADLINE_EXCEEDED) or ``cancelled()``."""
        blob = self._store.get_blob(record.sha256)
        state = self._verify_blob(record.sha256, record.size, blob, cancelled)
        fresh = self._store.get_blob(record.sha256)
        when = self._clock() if fresh is None else fresh.verify_time
        return replace(record, integrity=state, verify_time=when)

    def _verify_blob(
        self,
        digest: str,
        size: int,
        blob: BlobRecord | None,
        cancelled: Callable[[], bool] = lambda: False,
    ) -> IntegrityState:
        state, sums, detail = self._check(
            digest, size, None if blob is None else blob.sums, cancelled
        )
        now = self._clock()
        if blob is None:  # a file without a blob row: give it one (GC keeps referenced rows)
            self._store.touch_blob(digest, size, now, sums)
        if state is IntegrityState.VERIFIED:
            if sums is not None and (blob is None or blob.sums is None):
                self._store.set_block_sums(digest, sums)
            self._store.record_verification(digest, state, now)
        else:
            self._report(digest, state, detail, None if blob is None else blob.integrity, now)
        return state

    def scrub(self, max_bytes: int, reverify_after: timedelta) -> ScrubReport:
        """Re-read referenced blobs not verified within ``reverify_after``, least recently
        verified first, until about ``max_bytes`` were read (at least one blob; 0 disables)."""
        if max_bytes <= 0:
            return ScrubReport()
        before = self._clock() - reverify_after
        report = ScrubReport()
        seen: set[str] = set()
        while report.bytes < max_bytes:
            batch = [
                b for b in self._store.blobs_to_verify(before, _SCRUB_BATCH) if b.digest not in seen
            ]
            if not batch:
                break
            for blob in batch:
                seen.add(blob.digest)
                state = self._verify_blob(blob.digest, blob.size, blob)
                report = replace(report, blobs=report.blobs + 1, bytes=report.bytes + blob.size)
                if state is not IntegrityState.VERIFIED:
                    broken = len(self._store.files_with_blob(blob.digest, 1000))
                    report = replace(
                        report,
                        corrupted=report.corrupted + (state is IntegrityState.CORRUPTED),
                        missing=report.missing + (state is IntegrityState.MISSING),
                        broken_files=report.broken_files + broken,
                    )
                if report.bytes >= max_bytes:
                    break
        return report

    # -- findings ----------------------------------------------------------------------------
    def _report(
        self,
        digest: str,
        state: IntegrityState,
        detail: str,
        known: IntegrityState | None,
        checked: datetime | None = None,
    ) -> None:
        """Record a bad blob on its row and log it with the files it breaks, once per change
        of state: a read of a blob already recorded in that state writes and logs nothing; a
        check (VerifyFile, the scrub: ``checked`` is its time) records its time again."""
        again = state is known
        try:
            if checked is not None or not again:
                self._store.record_verification(digest, state, checked or self._clock())
            if again:
                log.debug("integrity: blob %s is still %s (%s)", blob_key(digest), state, detail)
                return
            files = self._store.files_with_blob(digest, _FILES_LOGGED + 1)
        except DomainError:
            log.exception("integrity: could not record that blob %s is %s", digest, state)
            return
        names = [
            f"{f.tenant}:{file_name(f.model_id, f.version_number, f.file_id)}"
            for f in files[:_FILES_LOGGED]
        ]
        more = " and more" if len(files) > _FILES_LOGGED else ""
        log.error(
            "integrity: blob %s is %s (%s); it breaks %d file(s)%s: %s",
            blob_key(digest),
            state,
            detail,
            len(names),
            more,
            ", ".join(names) or "none",
        )


def _still_wanted(cancelled: Callable[[], bool]) -> None:
    """Stop a re-read nobody waits for any more."""
    deadlines.check()
    if cancelled():
        raise Cancelled("the caller cancelled the call; the check stopped")


def _check_sha(actual: str, expected: str, what: str) -> None:
    if actual != expected:
        raise DataLoss(f"{what} does not match its sha256", reason=Reason.BLOB_CORRUPTED)
