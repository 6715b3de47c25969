"""Block checksums: one pass gives every block's crc32c and the whole content's; checked
reads regroup any chunking into blocks and stop before a bad block's first byte."""

from __future__ import annotations

import random
from collections.abc import Iterator

import google_crc32c
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelregistry_server.domain.checksums import (
    BLOCK_BYTES,
    BlockHasher,
    block_count,
    checked_blocks,
    crc32c_combine,
)
from modelregistry_server.domain.entities import BlockSums
from modelregistry_server.domain.errors import DataLoss, Reason

BLOCK = 64


def crc(data: bytes) -> int:
    return int(google_crc32c.value(data))


def sums_of(data: bytes, block: int = BLOCK) -> BlockSums:
    hasher = BlockHasher(block)
    hasher.update(data)
    return hasher.sums()


def split(data: bytes, cuts: list[int]) -> Iterator[bytes]:
    """``data`` in pieces ending at the sorted ``cuts``."""
    start = 0
    for cut in [*sorted({c % (len(data) + 1) for c in cuts}), len(data)]:
        if cut > start:
            yield data[start:cut]
            start = cut


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=700), cuts=st.lists(st.integers(0, 700), max_size=12))
def test_block_and_whole_crcs_match_a_direct_computation(data: bytes, cuts: list[int]) -> None:
    hasher = BlockHasher(BLOCK)
    for piece in split(data, cuts):
        hasher.update(piece)
    assert hasher.crc32c() == crc(data)
    sums = hasher.sums()
    assert len(sums) == block_count(len(data), BLOCK)
    assert [sums.crc(i) for i in range(len(sums))] == [
        crc(data[i : i + BLOCK]) for i in range(0, len(data), BLOCK)
    ]


@pytest.mark.parametrize("size", [0, 1, BLOCK_BYTES - 1, BLOCK_BYTES, 3 * BLOCK_BYTES + 5])
def test_default_block_size_whole_crc(size: int) -> None:
    data = random.Random(size).randbytes(size)
    hasher = BlockHasher()
    for start in range(0, size, 300_000):
        hasher.update(data[start : start + 300_000])
    assert hasher.crc32c() == crc(data)
    assert len(hasher.sums()) == block_count(size, BLOCK_BYTES)


@settings(max_examples=100, deadline=None)
@given(a=st.binary(max_size=300), b=st.binary(max_size=300))
def test_combine(a: bytes, b: bytes) -> None:
    assert crc32c_combine(crc(a), crc(b), len(b)) == crc(a + b)


def test_combine_of_whole_blocks_uses_the_same_algebra() -> None:
    a, b = b"head", random.Random(1).randbytes(BLOCK_BYTES)
    assert crc32c_combine(crc(a), crc(b), BLOCK_BYTES) == crc(a + b)


@settings(max_examples=100, deadline=None)
@given(
    size=st.integers(1, 600),
    cuts=st.lists(st.integers(0, 600), max_size=10),
    first_fraction=st.floats(0, 1),
)
def test_checked_blocks_regroups_any_chunking(
    size: int, cuts: list[int], first_fraction: float
) -> None:
    data = random.Random(size).randbytes(size)
    sums = sums_of(data)
    first = int(first_fraction * (len(sums) - 1))
    tail = data[first * BLOCK :]
    blocks = list(checked_blocks(split(tail, cuts), sums, first, size, "blob x"))
    assert b"".join(blocks) == tail
    assert all(len(b) == BLOCK for b in blocks[:-1])


def test_a_bad_block_is_never_yielded() -> None:
    data = random.Random(2).randbytes(5 * BLOCK)
    sums = sums_of(data)
    bad = bytearray(data)
    bad[2 * BLOCK + 7] ^= 0x01
    got: list[bytes] = []
    with pytest.raises(DataLoss) as caught:
        for block in checked_blocks(split(bytes(bad), [10, 100, 170]), sums, 0, len(data), "b"):
            got.append(block)
    assert caught.value.reason is Reason.BLOB_CORRUPTED
    assert caught.value.metadata == {"block": "2", "offset": str(2 * BLOCK)}
    assert b"".join(got) == data[: 2 * BLOCK]


def test_bytes_stopping_short_are_missing() -> None:
    data = random.Random(3).randbytes(3 * BLOCK)
    sums = sums_of(data)
    got: list[bytes] = []
    with pytest.raises(DataLoss) as caught:
        for block in checked_blocks(iter([data[: 2 * BLOCK + 5]]), sums, 0, len(data), "b"):
            got.append(block)
    assert caught.value.reason is Reason.BLOB_MISSING
    assert b"".join(got) == data[: 2 * BLOCK]


def test_more_blocks_than_sums_are_corrupted() -> None:
    data = random.Random(4).randbytes(2 * BLOCK)
    short = sums_of(data[:BLOCK])
    with pytest.raises(DataLoss) as caught:
        list(checked_blocks(iter([data]), short, 0, len(data), "b"))
    assert caught.value.reason is Reason.BLOB_CORRUPTED


def test_without_sums_blocks_pass_unchecked() -> None:
    data = random.Random(5).randbytes(BLOCK_BYTES + 10)
    assert b"".join(checked_blocks(iter([data]), None, 0, len(data), "b")) == data
