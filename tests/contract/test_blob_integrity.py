"""Checked reads, verification and GC reconciliation over every blob store (local directory and
GCS emulator), with the bytes damaged around the store the way a disk or a bucket could.

Blocks are 16 KiB here so a few blocks make a small object; the stores read 256 KiB chunks,
so blocks are cut out of larger reads.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import google_crc32c
import pytest

from modelregistry_server.domain import deadlines
from modelregistry_server.domain.blob_names import blob_key, storage_id
from modelregistry_server.domain.checksums import BlockHasher
from modelregistry_server.domain.entities import FileRecord, IntegrityState, UploadState
from modelregistry_server.domain.errors import Cancelled, DataLoss, DeadlineExceeded, Reason
from modelregistry_server.domain.gc import GarbageCollector
from modelregistry_server.domain.integrity import Integrity
from modelregistry_server.domain.ports import BlobStore
from modelregistry_server.storage.metadata import PeeweeMetadataStore, open_metadata_store
from tests.contract.test_metadata_store import add_version, make_model, make_upload
from tests.support.blob_fixtures import TEST_CHUNK_SIZE, BlobBackdoor
from tests.support.metadata_fixtures import sqlite_url

KiB = 1024
BLOCK = 16 * KiB
SIZE = 4 * BLOCK + 5 * KiB  # five blocks, the last one partial
BAD = 2  # the middle block
NOW = datetime(2026, 12, 1, tzinfo=UTC)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[PeeweeMetadataStore]:
    metadata = open_metadata_store(sqlite_url(tmp_path))
    metadata.insert_model(make_model("m", tenant="t"))
    add_version(metadata, "m", tenant="t")
    try:
        yield metadata
    finally:
        metadata.close()


@pytest.fixture
def stores(
    store_and_backdoor: tuple[BlobStore, BlobBackdoor], store: PeeweeMetadataStore
) -> tuple[BlobStore, BlobBackdoor, PeeweeMetadataStore, Integrity]:
    blobs, backdoor = store_and_backdoor
    return blobs, backdoor, store, Integrity(store, blobs, clock=lambda: NOW, block_size=BLOCK)


def put(
    blobs: BlobStore, store: PeeweeMetadataStore, data: bytes, *, sums: bool = True
) -> FileRecord:
    """Store ``data`` as the blob of a new file of ``models/m/versions/1`` the way a publish
    does (``sums`` False: as it was stored before block sums existed)."""
    sha = hashlib.sha256(data).hexdigest()
    upload = f"u-{sha[:12]}"
    blobs.write_upload(upload, 0, [data])
    blobs.sync_upload(upload)
    blobs.commit_upload(upload, len(data), blob_key(sha))
    hasher = BlockHasher(BLOCK)
    hasher.update(data)
    store.touch_blob(sha, len(data), NOW, hasher.sums() if sums else None)
    crc = int(google_crc32c.value(data))
    record = FileRecord("t", "m", 1, f"f-{sha[:8]}", len(data), sha, crc, "text/plain", NOW)
    store.add_file(record)
    return record


def drain(stream: Iterator[bytes]) -> tuple[bytes, DataLoss | None]:
    """Everything a read yields, and the DataLoss it ended with (None if it ended well)."""
    got = bytearray()
    try:
        for data in stream:
            got += data
    except DataLoss as exc:
        return bytes(got), exc
    return bytes(got), None


def read(integrity: Integrity, record: FileRecord, offset: int, end: int) -> tuple[bytes, Any]:
    try:
        stream = integrity.read(record, offset, end)
    except DataLoss as exc:
        return b"", exc
    return drain(stream)


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


def data_of(size: int = SIZE, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(size)


# -- checked reads ------------------------------------------------------------------------------
def test_intact_blobs_read_whole_and_in_any_range(stores: tuple[Any, ...]) -> None:
    blobs, _, store, integrity = stores
    data = data_of()
    record = put(blobs, store, data)
    for offset, end in [(0, SIZE), (0, 1), (5, BLOCK + 3), (BLOCK, 2 * BLOCK), (SIZE - 1, SIZE),
                        (SIZE, SIZE), (3, 3)]:  # fmt: skip
        assert read(integrity, record, offset, end) == (data[offset:end], None), (offset, end)


def test_a_corrupted_block_is_never_sent(stores: tuple[Any, ...]) -> None:
    blobs, backdoor, store, integrity = stores
    data = data_of()
    record = put(blobs, store, data)
    backdoor.flip(blob_key(record.sha256), BAD * BLOCK + 1234)

    got, error = read(integrity, record, 0, SIZE)
    assert error is not None and error.reason is Reason.BLOB_CORRUPTED
    assert error.metadata["block"] == str(BAD)
    assert got == data[: BAD * BLOCK]  # everything before the bad block, nothing of it

    # Ranges that touch the bad block fail before its first byte; the others are served.
    got, error = read(integrity, record, BLOCK + 100, BAD * BLOCK + 1)
    assert error is not None and error.reason is Reason.BLOB_CORRUPTED
    assert got == data[BLOCK + 100 : BAD * BLOCK]
    got, error = read(integrity, record, BAD * BLOCK + 2000, BAD * BLOCK + 2001)
    assert (got, error is not None) == (b"", True)
    for offset, end in [(0, BAD * BLOCK), (BAD * BLOCK + BLOCK, SIZE), (7, BLOCK - 7)]:
        assert read(integrity, record, offset, end) == (data[offset:end], None)

    blob = store.get_blob(record.sha256)
    assert blob is not None and (blob.integrity, blob.verify_time) == (
        IntegrityState.CORRUPTED,
        NOW,
    )


def test_a_truncated_blob_is_missing(stores: tuple[Any, ...]) -> None:
    blobs, backdoor, store, integrity = stores
    data = data_of()
    record = put(blobs, store, data)
    backdoor.write(blob_key(record.sha256), data[: BAD * BLOCK + 10])

    got, error = read(integrity, record, 0, SIZE)
    assert error is not None and error.reason is Reason.BLOB_MISSING
    assert got == data[: BAD * BLOCK]
    assert read(integrity, record, 0, BLOCK) == (data[:BLOCK], None)
    assert store.get_blob(record.sha256).integrity is IntegrityState.MISSING  # type: ignore[union-attr]


def test_a_missing_blob_fails_before_anything_is_read(stores: tuple[Any, ...]) -> None:
    blobs, backdoor, store, integrity = stores
    record = put(blobs, store, data_of())
    backdoor.remove(blob_key(record.sha256))
    with pytest.raises(DataLoss) as caught:
        integrity.read(record, BLOCK, 2 * BLOCK)
    assert caught.value.reason is Reason.BLOB_MISSING
    assert store.get_blob(record.sha256).integrity is IntegrityState.MISSING  # type: ignore[union-attr]


def test_empty_files(stores: tuple[Any, ...]) -> None:
    blobs, backdoor, store, integrity = stores
    record = put(blobs, store, b"")
    assert read(integrity, record, 0, 0) == (b"", None)
    backdoor.remove(blob_key(record.sha256))
    _got, error = read(integrity, record, 0, 0)
    assert error is not None and error.reason is Reason.BLOB_MISSING


# -- blobs stored before block sums existed ----------------------------------------------------
def test_without_sums_a_whole_read_holds_the_last_block_until_the_sha256_matched(
    stores: tuple[Any, ...],
) -> None:
    blobs, backdoor, store, integrity = stores
    data = data_of()
    record = put(blobs, store, data, sums=False)
    backdoor.flip(blob_key(record.sha256), SIZE - 3)
    got, error = read(integrity, record, 0, SIZE)
    assert error is not None and error.reason is Reason.BLOB_CORRUPTED
    assert got == data[: 4 * BLOCK]  # the last block never left


def test_without_sums_a_bad_early_block_still_ends_in_data_loss(stores: tuple[Any, ...]) -> None:
    blobs, backdoor, store, integrity = stores
    data = data_of()
    record = put(blobs, store, data, sums=False)
    backdoor.flip(blob_key(record.sha256), 10)
    got, error = read(integrity, record, 0, SIZE)
    assert error is not None and error.reason is Reason.BLOB_CORRUPTED
    assert len(got) == 4 * BLOCK  # unchecked blocks went out, but the stream never ended OK
    assert store.get_blob(record.sha256).sums is None  # type: ignore[union-attr]


def test_without_sums_a_whole_read_stores_them(stores: tuple[Any, ...]) -> None:
    blobs, backdoor, store, integrity = stores
    data = data_of()
    record = put(blobs, store, data, sums=False)
    assert read(integrity, record, 0, SIZE) == (data, None)
    blob = store.get_blob(record.sha256)
    assert blob is not None and blob.sums is not None and len(blob.sums) == 5
    assert (blob.integrity, blob.verify_time) == (IntegrityState.VERIFIED, NOW)
    backdoor.flip(blob_key(record.sha256), BAD * BLOCK)  # from now on blocks are checked
    got, error = read(integrity, record, 0, SIZE)
    assert error is not None and got == data[: BAD * BLOCK]


def test_without_sums_a_ranged_read_verifies_the_whole_blob_first(
    stores: tuple[Any, ...],
) -> None:
    blobs, backdoor, store, integrity = stores
    data = data_of()
    record = put(blobs, store, data, sums=False)
    assert read(integrity, record, BLOCK + 1, 3 * BLOCK) == (data[BLOCK + 1 : 3 * BLOCK], None)
    assert store.get_blob(record.sha256).sums is not None  # type: ignore[union-attr]

    other = put(blobs, store, data_of(seed=1), sums=False)
    backdoor.flip(blob_key(other.sha256), SIZE - 1)
    got, error = read(integrity, other, 0, BLOCK)  # far from the damage, but unprovable
    assert (got, error is not None and error.reason) == (b"", Reason.BLOB_CORRUPTED)
    assert store.get_blob(other.sha256).integrity is IntegrityState.CORRUPTED  # type: ignore[union-attr]


# -- verification -------------------------------------------------------------------------------
def test_verify_reports_what_it_finds(stores: tuple[Any, ...]) -> None:
    blobs, backdoor, store, integrity = stores
    good = put(blobs, store, data_of(seed=1))
    flipped = put(blobs, store, data_of(seed=2))
    short = put(blobs, store, data_of(seed=3))
    gone = put(blobs, store, data_of(seed=4))
    longer = put(blobs, store, data_of(seed=5))
    old = put(blobs, store, data_of(seed=6), sums=False)
    backdoor.flip(blob_key(flipped.sha256), 4 * BLOCK + 1)
    backdoor.write(blob_key(short.sha256), data_of(seed=3)[:-1])
    backdoor.remove(blob_key(gone.sha256))
    backdoor.write(blob_key(longer.sha256), data_of(seed=5) + b"!")

    expected = [
        (good, IntegrityState.VERIFIED),
        (flipped, IntegrityState.CORRUPTED),
        (short, IntegrityState.MISSING),
        (gone, IntegrityState.MISSING),
        (longer, IntegrityState.CORRUPTED),
        (old, IntegrityState.VERIFIED),
    ]
    for record, state in expected:
        checked = integrity.verify(record)
        assert (checked.integrity, checked.verify_time) == (state, NOW), record.sha256
        blob = store.get_blob(record.sha256)
        assert blob is not None and (blob.integrity, blob.verify_time) == (state, NOW)
    assert store.get_blob(old.sha256).sums is not None  # type: ignore[union-attr]


def test_scrub_verifies_within_its_budget(stores: tuple[Any, ...]) -> None:
    blobs, backdoor, store, _ = stores
    clock = Clock()
    integrity = Integrity(store, blobs, clock=clock, block_size=BLOCK)
    records = [put(blobs, store, data_of(seed=i)) for i in range(3)]
    backdoor.flip(blob_key(records[1].sha256), 1)
    backdoor.remove(blob_key(records[2].sha256))
    assert integrity.scrub(0, timedelta(0)).blobs == 0  # disabled

    first = integrity.scrub(1, timedelta(hours=1))  # at least one blob per run
    assert (first.blobs, first.bytes) == (1, SIZE)
    rest = integrity.scrub(10 * SIZE, timedelta(hours=1))
    assert (rest.blobs, rest.bytes) == (2, 2 * SIZE)
    found = [(r.corrupted, r.missing, r.broken_files) for r in (first, rest)]
    assert tuple(map(sum, zip(*found, strict=True))) == (1, 1, 2)
    assert integrity.scrub(10 * SIZE, timedelta(hours=1)).blobs == 0  # all checked lately
    states = {r.sha256: store.get_blob(r.sha256).integrity for r in records}  # type: ignore[union-attr]
    assert states == {
        records[0].sha256: IntegrityState.VERIFIED,
        records[1].sha256: IntegrityState.CORRUPTED,
        records[2].sha256: IntegrityState.MISSING,
    }
    clock.now += timedelta(hours=2)
    assert integrity.scrub(10 * SIZE, timedelta(hours=1)).blobs == 3  # due again


# -- GC against the blob store ------------------------------------------------------------------
def collector(blobs: BlobStore, store: PeeweeMetadataStore, clock: Clock) -> GarbageCollector:
    return GarbageCollector(
        store,
        blobs,
        clock=clock,
        grace=timedelta(hours=1),
        claim=lambda tenant, upload_id: contextlib.nullcontext(True),
    )


def test_gc_removes_stored_objects_no_row_accounts_for_once_older_than_grace(
    stores: tuple[Any, ...],
) -> None:
    blobs, backdoor, store, _ = stores
    clock = Clock()
    gc = collector(blobs, store, clock)
    orphan = data_of(100, seed=7)
    orphan_key = blob_key(hashlib.sha256(orphan).hexdigest())
    backdoor.write(orphan_key, orphan)  # a blob without a row
    backdoor.write_upload("unknown-upload", b"parts")  # bytes of an upload nobody knows
    live = make_upload("live", tenant="t")
    live.update_time = clock.now + timedelta(hours=2)  # receiving until the GC runs
    store.insert_upload(live)
    blobs.write_upload(storage_id("t", "live"), 0, [b"live bytes"])
    done = make_upload("done", tenant="t")
    done.update_time = live.update_time
    store.insert_upload(done)
    with store.transaction():
        done.state = UploadState.COMMITTED
        store.save_upload(done)
    backdoor.write_upload(storage_id("t", "done"), b"leftover part of a finished upload")

    report = gc.collect()  # everything is younger than the grace period
    assert (report.orphan_blobs, report.orphan_uploads, report.blobs) == (0, 0, 0)
    assert orphan_key in backdoor.blob_keys()
    assert len(backdoor.upload_ids()) == 3

    clock.now += timedelta(hours=2)
    report = gc.collect()
    assert (report.orphan_blobs, report.orphan_uploads, report.blobs) == (1, 2, 1)
    assert backdoor.blob_keys() == set()
    assert backdoor.upload_ids() == {storage_id("t", "live")}
    assert store.get_blob(orphan_key.removeprefix("sha256/")) is None
    assert list(blobs.read_upload(storage_id("t", "live"), 10)) == [b"live bytes"]


def test_a_blob_that_shrinks_while_being_read_is_missing(
    store_and_backdoor: tuple[BlobStore, BlobBackdoor],
) -> None:
    blobs, backdoor = store_and_backdoor
    data = data_of(4 * TEST_CHUNK_SIZE, seed=9)
    key = blob_key(hashlib.sha256(data).hexdigest())
    blobs.write_upload("shrinking", 0, [data])
    blobs.commit_upload("shrinking", len(data), key)
    stream = blobs.read(key)
    assert next(stream) == data[:TEST_CHUNK_SIZE]
    backdoor.write(key, data[: TEST_CHUNK_SIZE + 10])
    with pytest.raises(DataLoss) as caught:
        list(stream)
    assert caught.value.reason is Reason.BLOB_MISSING


def test_empty_ranges_touch_no_block(stores: tuple[Any, ...]) -> None:
    blobs, backdoor, store, integrity = stores
    data = data_of()
    record = put(blobs, store, data)
    backdoor.flip(blob_key(record.sha256), SIZE - 1)  # the last block
    assert read(integrity, record, SIZE, SIZE) == (b"", None)
    assert read(integrity, record, SIZE - 2, SIZE - 2) == (b"", None)
    legacy = put(blobs, store, data_of(seed=8), sums=False)
    assert read(integrity, legacy, 5, 5) == (b"", None)
    assert store.get_blob(legacy.sha256).sums is None  # type: ignore[union-attr]  # no backfill


def test_a_whole_read_checks_the_sha256_even_when_every_block_matches_its_sum(
    stores: tuple[Any, ...],
) -> None:
    """Block sums recorded from bytes that were already damaged: each block passes its crc32c,
    only the sha256 shows the damage, so the last block of a whole read is withheld."""
    blobs, backdoor, store, integrity = stores
    data = data_of()
    record = put(blobs, store, data, sums=False)
    damaged = bytearray(data)
    damaged[BAD * BLOCK + 99] ^= 0x01
    backdoor.write(blob_key(record.sha256), bytes(damaged))
    hasher = BlockHasher(BLOCK)
    hasher.update(bytes(damaged))
    assert store.set_block_sums(record.sha256, hasher.sums())

    got, error = read(integrity, record, 0, SIZE)
    assert error is not None and error.reason is Reason.BLOB_CORRUPTED
    assert got == bytes(damaged[: 4 * BLOCK])  # the last block never left
    assert store.get_blob(record.sha256).integrity is IntegrityState.CORRUPTED  # type: ignore[union-attr]
    for offset, end in [(0, BLOCK), (BAD * BLOCK, BAD * BLOCK + 200), (5, SIZE - 1)]:
        assert read(integrity, record, offset, end) == (bytes(damaged[offset:end]), None)


def test_verify_gives_a_file_without_a_blob_row_one(stores: tuple[Any, ...]) -> None:
    blobs, backdoor, store, integrity = stores
    good = put(blobs, store, data_of(seed=1))
    bad = put(blobs, store, data_of(seed=2))
    backdoor.flip(blob_key(bad.sha256), 3)
    with store.transaction():
        store.backend.database.execute_sql("DELETE FROM blobs")

    for record, state in [(good, IntegrityState.VERIFIED), (bad, IntegrityState.CORRUPTED)]:
        checked = integrity.verify(record)
        assert (checked.integrity, checked.verify_time) == (state, NOW)
        blob = store.get_blob(record.sha256)
        assert blob is not None and (blob.size, blob.integrity, blob.verify_time) == (
            SIZE,
            state,
            NOW,
        )
    assert store.get_blob(good.sha256).sums is not None  # type: ignore[union-attr]
    assert store.get_blob(bad.sha256).sums is None  # type: ignore[union-attr]


def test_a_bad_blob_is_logged_and_recorded_once_per_change_of_state(
    stores: tuple[Any, ...], caplog: pytest.LogCaptureFixture
) -> None:
    blobs, backdoor, store, _ = stores
    clock = Clock()
    integrity = Integrity(store, blobs, clock=clock, block_size=BLOCK)
    record = put(blobs, store, data_of())
    backdoor.flip(blob_key(record.sha256), 7)

    def errors() -> int:
        return sum(r.levelno == logging.ERROR for r in caplog.records)

    def state() -> tuple[IntegrityState, datetime | None]:
        blob = store.get_blob(record.sha256)
        assert blob is not None
        return blob.integrity, blob.verify_time

    with caplog.at_level(logging.DEBUG, logger="modelregistry_server.domain.integrity"):
        found = clock.now
        for offset, end in [(0, SIZE), (0, SIZE), (0, 10), (1, 2)]:
            assert read(integrity, record, offset, end)[1] is not None
            assert (errors(), state()) == (1, (IntegrityState.CORRUPTED, found))
            clock.now += timedelta(minutes=1)
        assert integrity.verify(record).integrity is IntegrityState.CORRUPTED  # a check: dated
        assert (errors(), state()) == (1, (IntegrityState.CORRUPTED, clock.now))

        backdoor.remove(blob_key(record.sha256))  # a new state is news
        clock.now += timedelta(minutes=1)
        assert read(integrity, record, 0, SIZE)[1] is not None
        assert read(integrity, record, 0, SIZE)[1] is not None
        assert (errors(), state()) == (2, (IntegrityState.MISSING, clock.now))


def test_gc_looks_at_a_bounded_number_of_stored_objects_per_pass_and_reaches_them_all(
    stores: tuple[Any, ...],
) -> None:
    """With a limit of 2, old uploads owned by active sessions that list first do not keep
    the orphan uploads behind them from being removed, and orphan blobs are adopted two per
    pass: the listing resumes where the previous pass stopped."""
    blobs, backdoor, store, _ = stores
    clock = Clock()
    gc = GarbageCollector(
        store,
        blobs,
        clock=clock,
        grace=timedelta(hours=1),
        claim=lambda tenant, upload_id: contextlib.nullcontext(True),
        limit=2,
    )
    live = [u for u in (f"live-{i}" for i in range(40)) if storage_id("t", u) < "e"][:3]
    for upload_id in live:
        session = make_upload(upload_id, tenant="t")
        session.update_time = clock.now + timedelta(hours=3)  # receiving until the GC runs
        store.insert_upload(session)
        blobs.write_upload(storage_id("t", upload_id), 0, [b"live bytes"])
    orphans = ["e" * 40, "f" * 40]  # listed after every live upload
    for name in orphans:
        backdoor.write_upload(name, b"parts nobody owns")
    orphan_keys = set()
    for seed in range(5):
        data = data_of(50, seed=100 + seed)
        orphan_keys.add(blob_key(hashlib.sha256(data).hexdigest()))
        backdoor.write(blob_key(hashlib.sha256(data).hexdigest()), data)
    clock.now += timedelta(hours=2)

    reports = [gc.collect() for _ in range(4)]
    assert [r.orphan_blobs for r in reports] == [2, 2, 1, 0]
    assert sum(r.orphan_uploads for r in reports) == 2
    assert backdoor.upload_ids() == {storage_id("t", u) for u in live}
    assert backdoor.blob_keys() == set()
    assert all(store.get_blob(k.removeprefix("sha256/")) is None for k in orphan_keys)


def test_listings_resume_after_a_name(stores: tuple[Any, ...]) -> None:
    blobs, backdoor, _, _ = stores
    for upload_id in ["ab", "ab-c", "b"]:
        for offset in (0, 5):  # two writes: on GCS two part objects of one upload
            blobs.write_upload(upload_id, offset, [b"12345"])
    keys = sorted(blob_key(hashlib.sha256(bytes([i])).hexdigest()) for i in range(4))
    for key in keys:
        backdoor.write(key, b"x")

    def uploads(after: str) -> list[tuple[str, int]]:
        return [(o.name, o.size) for o in blobs.list_uploads(after)]

    assert uploads("") == [("ab-c", 10), ("ab", 10), ("b", 10)]  # in object-name order
    assert uploads("ab-c") == [("ab", 10), ("b", 10)]
    assert uploads("ab") == [("b", 10)]
    assert [o.name for o in blobs.list_blobs()] == keys
    assert [o.name for o in blobs.list_blobs(keys[1])] == keys[2:]
    assert [o.name for o in blobs.list_blobs(keys[3])] == []


def test_verify_stops_between_blocks_once_nobody_waits(stores: tuple[Any, ...]) -> None:
    blobs, _, store, integrity = stores
    record = put(blobs, store, data_of())
    asked: list[int] = []

    def cancelled() -> bool:
        asked.append(1)
        return len(asked) >= 2

    with pytest.raises(Cancelled):
        integrity.verify(record, cancelled)
    assert len(asked) == 2  # stopped at the second of five blocks
    with deadlines.call_deadline(0), pytest.raises(DeadlineExceeded):
        integrity.verify(record)
    blob = store.get_blob(record.sha256)
    assert blob is not None and (blob.integrity, blob.verify_time) == (
        IntegrityState.UNVERIFIED,
        None,
    )  # a check that stopped records nothing
    assert integrity.verify(record, lambda: False).integrity is IntegrityState.VERIFIED
