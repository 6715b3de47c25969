"""Checksums of stored bytes: crc32c per fixed-size block, computed while the bytes stream.

A blob's block sums (:class:`~.entities.BlockSums`) are computed at upload time from the bytes
the client sent and kept in the blob's metadata row. Reads regroup what the blob store returns
into whole blocks and check each one before any of its bytes are passed on
(:func:`checked_blocks`), so a flipped byte never leaves the server.

The whole file's crc32c is derived from the block crcs (:func:`crc32c_combine`, the algebra of
zlib's ``crc32_combine``), so hashing an upload costs one crc32c pass, not two.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator

import google_crc32c

from .entities import BlockSums
from .errors import DataLoss, Reason

BLOCK_BYTES = 1 << 20
_MASK = 0xFFFFFFFF


def _shift(register: int, zeros: int) -> int:
    """The raw crc32c register ``register`` after ``zeros`` zero bytes (no conditioning)."""
    return int(google_crc32c.extend(register ^ _MASK, bytes(zeros))) ^ _MASK


@functools.lru_cache(maxsize=4)
def _shift_columns(zeros: int) -> tuple[int, ...]:
    """The 32 columns of the linear map "append ``zeros`` zero bytes" on the raw register."""
    return tuple(_shift(1 << bit, zeros) for bit in range(32))


def crc32c_combine(crc_a: int, crc_b: int, len_b: int) -> int:
    """crc32c of ``a + b`` from ``crc32c(a)``, ``crc32c(b)`` and ``len(b)``.

    crc(a + b) = Z(crc(a)) ^ crc(b), where Z appends ``len(b)`` zero bytes to the raw register
    (the pre- and post-conditioning cancel out). For whole blocks Z is a cached 32x32 bit
    matrix; any other length costs one crc32c pass over that many zero bytes.
    """
    if len_b == BLOCK_BYTES:
        shifted = 0
        columns = _shift_columns(len_b)
        bit = 0
        while crc_a:
            if crc_a & 1:
                shifted ^= columns[bit]
            crc_a >>= 1
            bit += 1
    else:
        shifted = _shift(crc_a, len_b)
    return shifted ^ crc_b


class BlockHasher:
    """crc32c of every block of a byte stream and of the whole stream, in one pass."""

    def __init__(self, block_size: int = BLOCK_BYTES) -> None:
        if block_size <= 0:
            raise ValueError(f"block_size must be positive, got {block_size}")
        self._block_size = block_size
        self._packed = bytearray()
        self._whole = 0  # crc32c of the completed blocks
        self._crc = 0  # crc32c of the current, incomplete block
        self._filled = 0

    def update(self, data: bytes) -> None:
        """Add the next bytes of the stream."""
        position, size = 0, len(data)
        while position < size:
            take = min(self._block_size - self._filled, size - position)
            piece = data if take == size else data[position : position + take]
            self._crc = google_crc32c.extend(self._crc, piece)
            self._filled += take
            position += take
            if self._filled == self._block_size:
                self._close_block()

    def _close_block(self) -> None:
        self._packed += self._crc.to_bytes(4, "big")
        self._whole = crc32c_combine(self._whole, self._crc, self._filled)
        self._crc = 0
        self._filled = 0

    def copy(self) -> BlockHasher:
        """An independent hasher in the same state."""
        twin = BlockHasher(self._block_size)
        twin._packed = bytearray(self._packed)
        twin._whole, twin._crc, twin._filled = self._whole, self._crc, self._filled
        return twin

    def sums(self) -> BlockSums:
        """The block sums of everything added so far (the last block may be partial)."""
        packed = bytes(self._packed)
        if self._filled:
            packed += self._crc.to_bytes(4, "big")
        return BlockSums(self._block_size, packed)

    def crc32c(self) -> int:
        """The crc32c of everything added so far."""
        if not self._filled:
            return self._whole
        return crc32c_combine(self._whole, self._crc, self._filled)


def block_count(size: int, block_size: int) -> int:
    """How many blocks ``size`` bytes span."""
    return -(-size // block_size)


def checked_blocks(
    chunks: Iterator[bytes],
    sums: BlockSums | None,
    first: int,
    end: int,
    what: str,
    block_size: int = BLOCK_BYTES,
) -> Iterator[bytes]:
    """Regroup ``chunks`` (the store's bytes from the start of block ``first`` up to ``end``)
    into whole blocks and yield each after checking it against ``sums``.

    ``sums`` None yields ``block_size`` blocks unchecked (for blobs stored before block sums
    existed); otherwise the blocks are the sums' blocks. Raises DataLoss(BLOB_CORRUPTED) naming
    the block when one does not match, before any of its bytes are yielded, and
    DataLoss(BLOB_MISSING) if the bytes stop short of ``end``.
    """
    if sums is not None:
        block_size = sums.block_size
    index = first
    position = first * block_size
    pending: list[bytes] = []
    filled = 0
    source = iter(chunks)
    while position < end:
        want = min(block_size, end - position)
        while filled < want:
            data = next(source, None)
            if data is None:
                raise DataLoss(
                    f"{what} ends at byte {position + filled}, {end} expected (truncated)",
                    reason=Reason.BLOB_MISSING,
                )
            pending.append(data)
            filled += len(data)
        joined = pending[0] if len(pending) == 1 else b"".join(pending)
        block, rest = (joined, b"") if filled == want else (joined[:want], joined[want:])
        pending = [rest] if rest else []
        filled = len(rest)
        if sums is not None and (
            index >= len(sums) or google_crc32c.value(block) != sums.crc(index)
        ):
            raise DataLoss(
                f"{what}: block {index} (bytes {position}-{position + want - 1}) does not match "
                "its recorded crc32c",
                reason=Reason.BLOB_CORRUPTED,
                metadata={"block": str(index), "offset": str(position)},
            )
        yield block
        index += 1
        position += want
