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
from typing import Any, Protocol

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
# Blocks a download reads and checks ahead of the one being sent (on a helper thread)...
_READ_AHEAD_BLOCKS = 2
# ...once this many blocks were handed out since the read was opened or resumed: a download
# whose client stalls early holds one block and no helper thread.
_LAZY_BLOCKS = 8


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
    def read(self, record: FileRecord, offset: int, end: int) -> CheckedRead:
        """The file's bytes ``[offset, end)``, each block checked before any of its bytes are
        handed out (see :class:`CheckedRead`).

        Raises (now, or while reading) DataLoss BLOB_CORRUPTED / BLOB_MISSING; nothing of a
        bad block is handed out, and a whole-file read ends with the error instead of its
        last block if the sha256 does not match.
        """
        blob = self._store.get_blob(record.sha256)
        sums = None if blob is None else blob.sums
        known = None if blob is None else blob.integrity
        whole = offset == 0 and end == record.size
        if sums is None and not whole and end > offset:
            sums = self._backfill(record, known)
        reader = CheckedRead(self, record, sums, offset, end, whole, known)
        reader.open()
        return reader

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


@dataclass(frozen=True)
class _Block:
    """A checked block, with what was hashed up to its end (to resume after it)."""

    start: int
    data: bytes
    sha: Any  # the sha256 state after this block (whole-file reads), else None
    hasher: BlockHasher | None  # the block sums computed so far (blobs stored without them)


class CheckedRead:
    """The checked bytes ``[offset, end)`` of a file, handed out in pieces the caller sizes.

    The blob is read in whole blocks; each block is checked against its crc32c before any
    of its bytes are handed out, and a whole-file read checks the sha256 before its last
    block is. The first blocks are read on the caller's thread; after ``_LAZY_BLOCKS`` a
    helper thread reads and checks a few blocks ahead.

    :meth:`park` releases the blob reader, the helper and every block held, keeping only the
    position and the sha256 state of the bytes before the current block. The next
    :meth:`read` reopens the blob at the start of that block, reads and checks it again, and
    goes on, so a parked whole-file read still ends with its sha256 check. Not thread-safe:
    one caller at a time.
    """

    def __init__(
        self,
        integrity: Integrity,
        record: FileRecord,
        sums: BlockSums | None,
        offset: int,
        end: int,
        whole: bool,
        known: IntegrityState | None,
    ) -> None:
        self._integrity = integrity
        self._record = record
        self._sums = sums
        self._known = known
        self._block_size = integrity._block_size if sums is None else sums.block_size
        self._end = end
        read_end = min(record.size, block_count(end, self._block_size) * self._block_size)
        if end <= offset and not whole:  # an empty range touches no block
            read_end = offset // self._block_size * self._block_size
        self._read_end = read_end
        self.position = offset
        # Hashed up to the start of the current block (whole-file reads only).
        self._sha: Any = hashlib.sha256() if whole else None
        # A whole read of a blob without sums computes them (ranged reads backfill first).
        self._hasher = integrity.new_hasher() if sums is None and whole else None
        self._block: _Block | None = None
        self._blocks: Iterator[_Block] | None = None
        self._taken = 0  # blocks taken since the blob was (re)opened
        self._finished = False

    def open(self) -> None:
        """Open the blob at the start of the current block (DataLoss if it is missing)."""
        first = self.position // self._block_size
        start = first * self._block_size
        record = self._record
        try:
            chunks = self._integrity._blobs.read(
                blob_key(record.sha256), start, self._read_end - start
            )
        except DataLoss as exc:
            self._integrity._report(record.sha256, _state_of(exc), str(exc), self._known)
            raise
        sha = None if self._sha is None else self._sha.copy()
        hasher = None if self._hasher is None else self._hasher.copy()
        self._blocks = self._checked(chunks, first, sha, hasher)
        self._taken = 0

    def read(self, size: int) -> bytes:
        """Up to ``size`` further bytes (never across a block end); b"" at the end. Checks the
        call's deadline before each block it reads."""
        if size <= 0:
            raise ValueError(f"size must be positive, got {size}")
        while True:
            block = self._block
            if block is not None:
                low = self.position - block.start
                high = min(len(block.data), self._end - block.start, low + size)
                if high == len(block.data):  # handed out whole: resume after it
                    self._sha, self._hasher, self._block = block.sha, block.hasher, None
                if low < high:
                    self.position = block.start + high
                    whole = low == 0 and high == len(block.data)
                    return block.data if whole else block.data[low:high]
            if self.position >= self._end:
                self._finish()
                return b""
            self._block = self._next_block()

    def buffered(self) -> bool:
        """Whether the next :meth:`read` returns without I/O or waiting: it hands out bytes
        of the current block, or the next block is already read and checked (read ahead)."""
        block = self._block
        if block is not None and self.position < min(block.start + len(block.data), self._end):
            return True
        ready = getattr(self._blocks, "ready", None)
        return ready is not None and self.position < self._end and bool(ready())

    def _next_block(self) -> _Block:
        deadlines.check()
        if self._blocks is None:
            self.open()
        assert self._blocks is not None
        block = next(self._blocks, None)
        if block is None:  # checked_blocks raises BLOB_MISSING before this could happen
            raise RuntimeError("the checked blocks ended before the range")
        self._taken += 1
        if self._taken == _LAZY_BLOCKS:
            self._blocks = read_ahead(self._blocks, _READ_AHEAD_BLOCKS, name="checked-read")
        return block

    def _finish(self) -> None:
        """At the end of the range: let the blocks end (a whole read of an empty file checks
        its sha256 there), then release them."""
        if self._finished:
            return
        if self._blocks is not None:
            next(self._blocks, None)
        self._finished = True
        self.close()

    def park(self) -> bool:
        """Release the blob reader, the read-ahead helper and the blocks held; the next
        :meth:`read` reopens the blob where this one stopped. Whether anything was held."""
        held = self._block is not None or self._blocks is not None
        self._block = None
        self._release()
        return held

    def close(self) -> None:
        """Release everything; no further bytes are read."""
        self._block = None
        self._finished = True
        self._release()

    def _release(self) -> None:
        blocks, self._blocks = self._blocks, None
        close = getattr(blocks, "close", None)
        if close is not None:
            close()

    def __iter__(self) -> Iterator[bytes]:
        """The remaining bytes, a block (or what is left of one) at a time."""
        while data := self.read(self._block_size):
            yield data

    def _checked(
        self, chunks: Iterator[bytes], first: int, sha: Any, hasher: BlockHasher | None
    ) -> Iterator[_Block]:
        record, read_end = self._record, self._read_end
        position = first * self._block_size
        what = f"blob {blob_key(record.sha256)}"
        try:
            blocks = checked_blocks(chunks, self._sums, first, read_end, what, self._block_size)
            for data in blocks:
                start, position = position, position + len(data)
                if hasher is not None:
                    hasher.update(data)
                if sha is not None:
                    sha.update(data)
                    if position >= read_end:  # the last block leaves only if the file matches
                        _check_sha(sha.hexdigest(), record.sha256, what)
                        if hasher is not None:
                            self._integrity._store_sums(record.sha256, hasher.sums(), verified=True)
                yield _Block(
                    start,
                    data,
                    None if sha is None else sha.copy(),
                    None if hasher is None else hasher.copy(),
                )
            if sha is not None and read_end == 0:
                _check_sha(sha.hexdigest(), record.sha256, what)
                if hasher is not None:
                    self._integrity._store_sums(record.sha256, hasher.sums(), verified=True)
        except DataLoss as exc:
            self._integrity._report(record.sha256, _state_of(exc), str(exc), self._known)
            raise
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()
