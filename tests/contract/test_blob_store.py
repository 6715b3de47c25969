"""Contract of the blob ports (BlobReader, UploadStaging, BlobInventory), run over every
adapter (``blob_store`` / ``blob_url``).

Adapter-specific checks (file layout, fsync, memory; GCS object names, preconditions, dead
endpoint) follow in their own classes.
"""

from __future__ import annotations

import errno
import hashlib
import os
import random
import time
import tracemalloc
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from modelregistry_server.domain.errors import DataLoss, InvalidArgument, Reason, Unavailable
from modelregistry_server.storage.blobs import open_blob_store
from modelregistry_server.storage.blobs.local import LocalBlobStore
from tests.support.blob_fixtures import TEST_CHUNK_SIZE, BlobAdapter, GcsEmulator, free_port

CHUNK = TEST_CHUNK_SIZE
MiB = 1 << 20


def payload(size: int, seed: int = 0) -> bytes:
    """Reproducible random bytes."""
    return random.Random(seed).randbytes(size)


def key_of(data: bytes) -> str:
    return "sha256/" + hashlib.sha256(data).hexdigest()


def pieces(data: bytes, size: int) -> Iterator[bytes]:
    """``data`` in chunks of ``size`` bytes (the last may be shorter)."""
    for start in range(0, len(data), size):
        yield data[start : start + size]


def joined(chunks: Iterable[bytes]) -> bytes:
    return b"".join(chunks)


def upload(store: BlobAdapter, upload_id: str, data: bytes, *, chunk: int = 10_007) -> str:
    """Write ``data`` as one piece and commit it; its key."""
    assert store.write_upload(upload_id, 0, pieces(data, chunk)) == len(data)
    key = key_of(data)
    assert store.commit_upload(upload_id, len(data), key) is True
    return key


def upload_ids(store: BlobAdapter) -> set[str]:
    return {obj.name for obj in store.list_uploads()}


class Untouched:
    """A chunk iterator that records whether anyone asked it for bytes."""

    def __init__(self) -> None:
        self.consumed = False

    def __iter__(self) -> Iterator[bytes]:
        self.consumed = True
        yield b"should never be stored"


class TestRoundTrip:
    @pytest.mark.parametrize(
        "size",
        [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * MiB + 17],
        ids=["0B", "1B", "chunk-1", "chunk", "chunk+1", "3MiB+17"],
    )
    def test_write_commit_read(self, blob_store: BlobAdapter, size: int) -> None:
        data = payload(size, seed=size)
        assert blob_store.write_upload("u1", 0, pieces(data, 100_003)) == size
        key = key_of(data)
        assert not blob_store.exists(key)

        assert blob_store.commit_upload("u1", size, key) is True

        chunks = list(blob_store.read(key))
        assert all(0 < len(chunk) <= CHUNK for chunk in chunks)
        assert hashlib.sha256(joined(chunks)).hexdigest() == hashlib.sha256(data).hexdigest()
        assert blob_store.exists(key)
        assert "u1" not in upload_ids(blob_store)

    def test_commit_of_upload_never_written_creates_empty_blob(
        self, blob_store: BlobAdapter
    ) -> None:
        key = key_of(b"")
        assert blob_store.commit_upload("never-written", 0, key) is True
        assert blob_store.exists(key)
        assert joined(blob_store.read(key)) == b""

    def test_several_pieces_then_commit(self, blob_store: BlobAdapter) -> None:
        parts = [payload(n, seed=n) for n in (70_001, CHUNK * 2 + 5, 1)]
        offset = 0
        for part in parts:
            assert blob_store.write_upload("u1", offset, pieces(part, 9_999)) == len(part)
            offset += len(part)
        data = joined(parts)
        assert joined(blob_store.read_upload("u1", len(data))) == data

        key = key_of(data)
        assert blob_store.commit_upload("u1", len(data), key) is True
        assert joined(blob_store.read(key)) == data

    def test_empty_chunks_are_skipped(self, blob_store: BlobAdapter) -> None:
        assert blob_store.write_upload("u1", 0, [b"", b"ab", b"", b"c", b""]) == 3
        assert blob_store.write_upload("u1", 3, [b""]) == 0
        assert joined(blob_store.read_upload("u1", 3)) == b"abc"

    def test_more_than_32_pieces(self, blob_store: BlobAdapter) -> None:
        parts = [payload(3_000 + 7 * i, seed=i) for i in range(40)]
        offset = 0
        for part in parts:
            assert blob_store.write_upload("many", offset, [part]) == len(part)
            offset += len(part)
        data = joined(parts)
        assert joined(blob_store.read_upload("many", len(data))) == data

        key = key_of(data)
        assert blob_store.commit_upload("many", len(data), key) is True
        assert joined(blob_store.read(key)) == data
        assert upload_ids(blob_store) == set()


class TestResume:
    @pytest.mark.parametrize("replacement_size", [3_000, 5_000, 8_000])
    def test_rewrite_at_committed_offset_replaces_unrecorded_piece(
        self, blob_store: BlobAdapter, replacement_size: int
    ) -> None:
        first = payload(CHUNK + 11, seed=1)
        # Two pieces written, but the domain never recorded them.
        stale = [payload(5_000, seed=2), payload(2_000, seed=5)]
        replacement = payload(replacement_size, seed=3)
        last = payload(4_321, seed=4)
        blob_store.write_upload("u1", 0, pieces(first, 4_096))
        blob_store.write_upload("u1", len(first), [stale[0]])
        blob_store.write_upload("u1", len(first) + 5_000, [stale[1]])

        assert blob_store.write_upload("u1", len(first), [replacement]) == replacement_size
        offset = len(first) + replacement_size
        with pytest.raises(DataLoss):  # nothing of the stale pieces is left
            blob_store.read_upload("u1", offset + 1)
        assert {obj.name: obj.size for obj in blob_store.list_uploads()} == {"u1": offset}
        blob_store.write_upload("u1", offset, [last])

        data = first + replacement + last
        assert joined(blob_store.read_upload("u1", len(data))) == data
        key = key_of(data)
        assert blob_store.commit_upload("u1", len(data), key) is True
        assert joined(blob_store.read(key)) == data

    @pytest.mark.parametrize("fail_after", [0, 3 * CHUNK + 5], ids=["at-once", "mid-piece"])
    def test_failing_iterator_leaves_nothing_past_offset(
        self, blob_store: BlobAdapter, fail_after: int
    ) -> None:
        first = payload(20_000, seed=1)
        blob_store.write_upload("u1", 0, [first])
        error = RuntimeError("client went away")

        def failing() -> Iterator[bytes]:
            yield from pieces(payload(fail_after, seed=9), 8_192)
            raise error

        with pytest.raises(RuntimeError) as raised:
            blob_store.write_upload("u1", len(first), failing())
        assert raised.value is error

        with pytest.raises(DataLoss) as lost:
            blob_store.read_upload("u1", len(first) + 1)
        assert lost.value.reason == Reason.UPLOAD_DATA_MISSING
        assert joined(blob_store.read_upload("u1", len(first))) == first

        second = payload(CHUNK + 3, seed=2)
        assert blob_store.write_upload("u1", len(first), pieces(second, 5_000)) == len(second)
        data = first + second
        key = key_of(data)
        assert blob_store.commit_upload("u1", len(data), key) is True
        assert joined(blob_store.read(key)) == data

    def test_failed_first_piece_leaves_no_upload(self, blob_store: BlobAdapter) -> None:
        def failing() -> Iterator[bytes]:
            yield b"x" * (CHUNK + 1)
            raise RuntimeError("client went away")

        with pytest.raises(RuntimeError):
            blob_store.write_upload("u1", 0, failing())
        assert list(blob_store.list_uploads()) == []
        with pytest.raises(DataLoss):
            blob_store.read_upload("u1", 1)

    def test_read_upload_of_a_prefix(self, blob_store: BlobAdapter) -> None:
        parts = [payload(n, seed=n) for n in (1_000, CHUNK + 1, 2_500)]
        offset = 0
        for part in parts:
            blob_store.write_upload("u1", offset, [part])
            offset += len(part)
        data = joined(parts)
        for size in (0, 1, 999, 1_000, 1_001, CHUNK + 1_001, len(data) - 1, len(data)):
            assert joined(blob_store.read_upload("u1", size)) == data[:size], size

        with pytest.raises(DataLoss) as lost:
            blob_store.read_upload("u1", len(data) + 1)
        assert lost.value.reason == Reason.UPLOAD_DATA_MISSING

    def test_sync_while_writing_the_next_piece(self, blob_store: BlobAdapter) -> None:
        first, second = payload(CHUNK + 7, seed=1), payload(3_000, seed=2)
        blob_store.write_upload("u1", 0, [first])

        def second_piece() -> Iterator[bytes]:
            yield second[:1_000]
            blob_store.sync_upload("u1")  # the previous piece, synced mid-write
            yield second[1_000:]

        blob_store.write_upload("u1", len(first), second_piece())
        blob_store.sync_upload("u1")
        data = first + second
        assert joined(blob_store.read_upload("u1", len(data))) == data
        assert blob_store.commit_upload("u1", len(data), key_of(data)) is True
        assert joined(blob_store.read(key_of(data))) == data

    def test_sync_rejects_bad_upload_ids(self, blob_store: BlobAdapter) -> None:
        with pytest.raises(InvalidArgument):
            blob_store.sync_upload("../escape")

    def test_read_upload_of_unknown_upload(self, blob_store: BlobAdapter) -> None:
        assert joined(blob_store.read_upload("nobody", 0)) == b""
        with pytest.raises(DataLoss) as lost:
            blob_store.read_upload("nobody", 1)
        assert lost.value.reason == Reason.UPLOAD_DATA_MISSING

    def test_write_past_stored_bytes_is_data_loss(self, blob_store: BlobAdapter) -> None:
        first = payload(1_000)
        blob_store.write_upload("u1", 0, [first])
        chunks = Untouched()

        with pytest.raises(DataLoss) as lost:
            blob_store.write_upload("u1", len(first) + 1, chunks)
        assert lost.value.reason == Reason.UPLOAD_DATA_MISSING
        assert not chunks.consumed
        assert joined(blob_store.read_upload("u1", len(first))) == first

        with pytest.raises(DataLoss) as lost:
            blob_store.write_upload("nobody", 5, Untouched())
        assert lost.value.reason == Reason.UPLOAD_DATA_MISSING

    def test_write_inside_an_earlier_piece_keeps_its_prefix(self, blob_store: BlobAdapter) -> None:
        first = payload(CHUNK + 100, seed=1)
        blob_store.write_upload("u1", 0, pieces(first, 7_000))
        assert blob_store.write_upload("u1", 60, [b"x" * 10]) == 10

        data = first[:60] + b"x" * 10
        with pytest.raises(DataLoss):
            blob_store.read_upload("u1", len(data) + 1)
        key = key_of(data)
        assert blob_store.commit_upload("u1", len(data), key) is True
        assert joined(blob_store.read(key)) == data

    def test_commit_of_fewer_bytes_than_stored(self, blob_store: BlobAdapter) -> None:
        data = payload(CHUNK + 100)
        blob_store.write_upload("u1", 0, [data[:5_000]])
        blob_store.write_upload("u1", 5_000, [data[5_000:]])
        for size in (CHUNK + 1, 4_000):  # inside the last piece, inside the first
            key = key_of(data[:size])
            assert blob_store.commit_upload("u1", size, key) is True
            assert joined(blob_store.read(key)) == data[:size]
            assert "u1" not in upload_ids(blob_store)
            blob_store.write_upload("u1", 0, [data[:5_000]])
            blob_store.write_upload("u1", 5_000, [data[5_000:]])

    def test_commit_of_more_bytes_than_stored_changes_nothing(
        self, blob_store: BlobAdapter
    ) -> None:
        data = payload(3_000)
        blob_store.write_upload("u1", 0, [data])
        key = key_of(data + b"?")

        with pytest.raises(DataLoss) as lost:
            blob_store.commit_upload("u1", len(data) + 1, key)
        assert lost.value.reason == Reason.UPLOAD_DATA_MISSING
        assert not blob_store.exists(key)
        assert joined(blob_store.read_upload("u1", len(data))) == data


class TestCopyUpload:
    """A takeover copies the committed prefix of the previous writer's staging into its own."""

    def test_copy_holds_the_prefix_and_shares_nothing_with_the_source(
        self, blob_store: BlobAdapter
    ) -> None:
        first, second, extra = payload(3_000, seed=1), payload(2_000, seed=2), payload(500, 3)
        blob_store.write_upload("a", 0, [first])
        blob_store.write_upload("a", 3_000, [second])
        blob_store.write_upload("a", 5_000, [extra])  # a piece past the committed size
        blob_store.write_upload("b", 0, [payload(9_000, seed=4)])  # replaced by the copy
        blob_store.copy_upload("a", "b", 5_000)
        assert {obj.name: obj.size for obj in blob_store.list_uploads()} == {
            "a": 5_500,
            "b": 5_000,
        }
        # The source's writer goes on (or truncates): the copy does not change.
        blob_store.write_upload("a", 1_000, [b"x" * 10])
        assert joined(blob_store.read_upload("b", 5_000)) == first + second
        tail = payload(700, seed=5)
        blob_store.write_upload("b", 5_000, [tail])
        key = key_of(first + second + tail)
        assert blob_store.commit_upload("b", 5_700, key) is True
        blob_store.write_upload("a", 1_010, [b"y" * 10])
        assert joined(blob_store.read(key)) == first + second + tail
        assert joined(blob_store.read_upload("a", 1_020))[1_000:] == b"x" * 10 + b"y" * 10

    def test_copy_of_missing_bytes_is_data_loss(self, blob_store: BlobAdapter) -> None:
        blob_store.write_upload("a", 0, [b"abc"])
        with pytest.raises(DataLoss) as short:
            blob_store.copy_upload("a", "b", 4)
        assert short.value.reason is Reason.UPLOAD_DATA_MISSING
        with pytest.raises(DataLoss):
            blob_store.copy_upload("gone", "b", 1)
        assert upload_ids(blob_store) == {"a"}

    def test_copy_of_nothing(self, blob_store: BlobAdapter) -> None:
        blob_store.write_upload("a", 0, [b"abc"])
        blob_store.copy_upload("a", "b", 0)
        assert joined(blob_store.read_upload("b", 0)) == b""
        blob_store.write_upload("b", 0, [b"de"])
        assert joined(blob_store.read_upload("b", 2)) == b"de"


class TestDedup:
    def test_second_commit_of_a_key_returns_false_and_keeps_the_blob(
        self, blob_store: BlobAdapter
    ) -> None:
        original = payload(CHUNK + 7, seed=1)
        key = upload(blob_store, "first", original)
        # Different bytes under the same key prove the blob is never overwritten.
        impostor = payload(2_000, seed=2)
        blob_store.write_upload("second", 0, [impostor])

        assert blob_store.commit_upload("second", len(impostor), key) is False

        assert joined(blob_store.read(key)) == original
        assert upload_ids(blob_store) == set()
        with pytest.raises(DataLoss):
            blob_store.read_upload("second", 1)

    def test_same_bytes_twice(self, blob_store: BlobAdapter) -> None:
        data = payload(5_000)
        key = upload(blob_store, "first", data)
        blob_store.write_upload("second", 0, [data])
        assert blob_store.commit_upload("second", len(data), key) is False
        assert [obj.name for obj in blob_store.list_blobs()] == [key]


class TestRead:
    def test_offset_and_limit(self, blob_store: BlobAdapter) -> None:
        data = payload(2 * CHUNK + 3)
        key = upload(blob_store, "u1", data)
        size = len(data)
        cases: list[tuple[int, int | None]] = [
            (0, None),
            (5, None),
            (5, 10),
            (CHUNK - 1, 2),
            (CHUNK, CHUNK),
            (10, 2 * size),  # limit past the end
            (size - 1, None),
            (size, None),  # offset at the end: nothing
            (size, 5),
            (size + 10, None),
            (0, 0),
        ]
        for offset, limit in cases:
            end = None if limit is None else offset + limit
            chunks = list(blob_store.read(key, offset, limit))
            assert joined(chunks) == data[offset:end], (offset, limit)
            assert all(0 < len(chunk) <= CHUNK for chunk in chunks)

    def test_missing_blob_is_data_loss_before_streaming(self, blob_store: BlobAdapter) -> None:
        key = key_of(b"never stored")
        with pytest.raises(DataLoss) as lost:
            blob_store.read(key)
        assert lost.value.reason == Reason.BLOB_MISSING
        assert not blob_store.exists(key)


INVALID_KEYS = [
    "",
    "sha256/",
    "sha256/" + "a" * 63,
    "sha256/" + "a" * 65,
    "sha256/" + "A" * 64,
    "SHA256/" + "a" * 64,
    "md5/" + "a" * 32,
    "sha256/../../etc",
    "sha256/../../../etc/passwd",
    "sha256/" + "a" * 64 + "/",
    "sha256/" + "a" * 64 + "\n",
    "/sha256/" + "a" * 64,
    "a" * 64,
]
INVALID_UPLOAD_IDS = ["", ".", "..", "../x", "a/b", "a\\b", "x" * 129, "a b", "é", "u\n", "/etc"]


class TestNames:
    @pytest.mark.parametrize("key", INVALID_KEYS)
    def test_invalid_key(self, blob_store: BlobAdapter, key: str) -> None:
        for call in (
            lambda: blob_store.read(key),
            lambda: blob_store.exists(key),
            lambda: blob_store.delete(key),
            lambda: blob_store.commit_upload("u1", 0, key),
        ):
            with pytest.raises(InvalidArgument):
                call()
        assert list(blob_store.list_blobs()) == []
        assert list(blob_store.list_uploads()) == []

    @pytest.mark.parametrize("upload_id", INVALID_UPLOAD_IDS)
    def test_invalid_upload_id(self, blob_store: BlobAdapter, upload_id: str) -> None:
        chunks = Untouched()
        for call in (
            lambda: blob_store.write_upload(upload_id, 0, chunks),
            lambda: blob_store.read_upload(upload_id, 0),
            lambda: blob_store.commit_upload(upload_id, 0, key_of(b"")),
            lambda: blob_store.abort_upload(upload_id),
        ):
            with pytest.raises(InvalidArgument):
                call()
        assert not chunks.consumed
        assert list(blob_store.list_uploads()) == []
        assert not blob_store.exists(key_of(b""))

    def test_longest_upload_id_is_valid(self, blob_store: BlobAdapter) -> None:
        upload_id = "A-z_9" * 25 + "abc"
        assert len(upload_id) == 128
        assert blob_store.write_upload(upload_id, 0, [b"abc"]) == 3
        assert upload_ids(blob_store) == {upload_id}

    def test_negative_positions(self, blob_store: BlobAdapter) -> None:
        key = key_of(b"")
        for call in (
            lambda: blob_store.write_upload("u1", -1, [b"x"]),
            lambda: blob_store.read_upload("u1", -1),
            lambda: blob_store.commit_upload("u1", -1, key),
            lambda: blob_store.read(key, -1),
            lambda: blob_store.read(key, 0, -1),
        ):
            with pytest.raises(InvalidArgument):
                call()


class TestListing:
    def test_lists_blobs_and_uploads_with_sizes_and_times(self, blob_store: BlobAdapter) -> None:
        assert list(blob_store.list_blobs()) == []
        assert list(blob_store.list_uploads()) == []
        before = datetime.now(UTC) - timedelta(minutes=1)
        small, large = payload(10, seed=1), payload(CHUNK + 1, seed=2)
        keys = {upload(blob_store, "a", small): 10, upload(blob_store, "b", large): CHUNK + 1}
        blob_store.write_upload("open-1", 0, [b"x" * 100])
        blob_store.write_upload("open-1", 100, [b"y" * 50])
        blob_store.write_upload("open-2", 0, [b"z"])
        after = datetime.now(UTC) + timedelta(minutes=1)

        blobs = list(blob_store.list_blobs())
        uploads = list(blob_store.list_uploads())

        assert {obj.name: obj.size for obj in blobs} == keys
        assert {obj.name: obj.size for obj in uploads} == {"open-1": 150, "open-2": 1}
        for obj in blobs + uploads:
            assert obj.modified.utcoffset() == timedelta(0)
            assert before <= obj.modified <= after


class TestDeleteAndAbort:
    def test_delete(self, blob_store: BlobAdapter) -> None:
        keep = upload(blob_store, "a", b"keep")
        gone = upload(blob_store, "b", b"gone")

        blob_store.delete(gone)

        assert not blob_store.exists(gone)
        with pytest.raises(DataLoss):
            blob_store.read(gone)
        assert [obj.name for obj in blob_store.list_blobs()] == [keep]
        blob_store.delete(gone)  # again: no error
        assert joined(blob_store.read(keep)) == b"keep"

    def test_abort(self, blob_store: BlobAdapter) -> None:
        data = payload(CHUNK + 1)
        blob_store.write_upload("u1", 0, [data[:1_000]])
        blob_store.write_upload("u1", 1_000, [data[1_000:]])
        blob_store.write_upload("other", 0, [b"other"])

        blob_store.abort_upload("u1")

        assert upload_ids(blob_store) == {"other"}
        with pytest.raises(DataLoss):
            blob_store.read_upload("u1", 1)
        with pytest.raises(DataLoss):
            blob_store.commit_upload("u1", len(data), key_of(data))
        assert not blob_store.exists(key_of(data))
        blob_store.abort_upload("u1")  # again: no error
        blob_store.abort_upload("never-existed")
        assert joined(blob_store.read_upload("other", 5)) == b"other"


class TestOpenBlobStore:
    def test_round_trip_through_url(self, blob_url: str) -> None:
        store = open_blob_store(blob_url, read_chunk_size=1_000)
        data = payload(5_555)
        key = upload(store, "u1", data)
        chunks = list(open_blob_store(blob_url).read(key))
        assert joined(chunks) == data
        assert max(len(chunk) for chunk in store.read(key)) == 1_000

    def test_relative_file_url(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.chdir(tmp_path)
        store = open_blob_store("file://var/blobs")
        key = upload(store, "u1", b"relative")
        digest = key.removeprefix("sha256/")
        assert (tmp_path / "var" / "blobs" / "sha256" / digest[:2] / digest).is_file()

    @pytest.mark.parametrize("url", ["s3://bucket/x", "/plain/path", "", "file:/x", "gcs://b"])
    def test_unsupported_url(self, url: str) -> None:
        with pytest.raises(ValueError, match=r"file://, gs://"):
            open_blob_store(url)

    @pytest.mark.parametrize("url", ["gs://", "gs:///prefix", "file://"])
    def test_url_without_location(self, url: str) -> None:
        with pytest.raises(ValueError):
            open_blob_store(url)


class TestLocalBlobStore:
    """The local adapter: layout, visibility, durability and memory."""

    @staticmethod
    def paths(root: Path, key: str) -> Path:
        digest = key.removeprefix("sha256/")
        return root / "sha256" / digest[:2] / digest

    def test_blob_is_invisible_until_published(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        store = LocalBlobStore(tmp_path)
        data = payload(50_000)
        key = key_of(data)
        final = self.paths(tmp_path, key)
        store.write_upload("u1", 0, pieces(data, 4_096))
        assert not final.exists()
        assert not store.exists(key)

        def broken_link(*args: Any, **kwargs: Any) -> None:
            raise OSError(errno.EIO, "simulated failure")

        with monkeypatch.context() as patch:
            patch.setattr(os, "link", broken_link)
            with pytest.raises(Unavailable):
                store.commit_upload("u1", len(data), key)
        assert not final.exists()
        assert joined(store.read_upload("u1", len(data))) == data

        assert store.commit_upload("u1", len(data), key) is True
        assert final.read_bytes() == data
        assert list((tmp_path / "uploads").iterdir()) == []

    def test_pieces_and_commits_are_fsynced(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        store = LocalBlobStore(tmp_path)
        synced: list[tuple[int, int]] = []
        real_fsync = os.fsync

        def recording_fsync(fd: int) -> None:
            st = os.fstat(fd)
            synced.append((st.st_dev, st.st_ino))
            real_fsync(fd)

        def inode(path: Path) -> tuple[int, int]:
            st = path.stat()
            return st.st_dev, st.st_ino

        monkeypatch.setattr(os, "fsync", recording_fsync)
        uploads = tmp_path / "uploads"
        data = payload(10 * 4_096)

        store.write_upload("u1", 0, pieces(data[:20_000], 1_000))
        upload_file = inode(uploads / "u1")
        assert synced.count(upload_file) == 0  # writing alone does not sync
        store.sync_upload("u1")
        assert synced.count(upload_file) == 1  # once per piece, not per chunk
        assert synced.count(inode(uploads)) == 1  # the new file's directory entry

        store.write_upload("u1", 20_000, pieces(data[20_000:], 1_000))
        store.sync_upload("u1")
        assert synced.count(upload_file) == 2

        synced.clear()
        key = key_of(data)
        assert store.commit_upload("u1", len(data), key) is True
        final = self.paths(tmp_path, key)
        assert inode(final) == upload_file
        assert upload_file in synced
        assert inode(final.parent) in synced  # the blob's directory entry
        assert inode(tmp_path / "sha256") in synced  # the new shard directory

    def test_commit_after_an_interrupted_commit(self, tmp_path: Path) -> None:
        store = LocalBlobStore(tmp_path)
        data = payload(30_000)
        key = key_of(data)
        store.write_upload("u1", 0, [data])
        final = self.paths(tmp_path, key)
        final.parent.mkdir(parents=True)
        os.link(tmp_path / "uploads" / "u1", final)  # published, then the process died

        assert store.commit_upload("u1", len(data), key) is False
        assert final.read_bytes() == data
        assert not (tmp_path / "uploads" / "u1").exists()

    def test_writing_after_an_interrupted_commit_leaves_the_blob_alone(
        self, tmp_path: Path
    ) -> None:
        store = LocalBlobStore(tmp_path)
        data = payload(30_000)
        key = key_of(data)
        store.write_upload("u1", 0, [data])
        final = self.paths(tmp_path, key)
        final.parent.mkdir(parents=True)
        os.link(tmp_path / "uploads" / "u1", final)

        assert store.write_upload("u1", 10_000, [b"new bytes"]) == 9
        assert final.read_bytes() == data
        assert joined(store.read_upload("u1", 10_009)) == data[:10_000] + b"new bytes"
        assert joined(store.read(key)) == data

    @pytest.mark.slow
    def test_memory_stays_small_for_a_large_upload(self, tmp_path: Path) -> None:
        store = LocalBlobStore(tmp_path)
        total = 256 * MiB
        digest = hashlib.sha256()

        def generated() -> Iterator[bytes]:
            for i in range(total // MiB):
                chunk = bytes([i % 251]) * MiB  # a new object each time
                digest.update(chunk)
                yield chunk

        tracemalloc.start()
        try:
            assert store.write_upload("big", 0, generated()) == total
            _, write_peak = tracemalloc.get_traced_memory()
            key = "sha256/" + digest.hexdigest()
            assert store.commit_upload("big", total, key) is True
            tracemalloc.reset_peak()
            read_back = hashlib.sha256()
            for chunk in store.read(key):
                read_back.update(chunk)
            _, read_peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert write_peak < 8 * MiB
        assert read_peak < 8 * MiB
        assert read_back.hexdigest() == digest.hexdigest()


@pytest.mark.gcs
class TestGcsBlobStore:
    """The GCS adapter: object names, create-only preconditions."""

    @pytest.fixture
    def store(self, gcs_emulator: GcsEmulator) -> Iterator[Any]:
        from modelregistry_server.storage.blobs.gcs import GcsBlobStore

        yield GcsBlobStore(
            gcs_emulator.bucket,
            "layout-test/",
            client=gcs_emulator.client(),
            read_chunk_size=CHUNK,
            upload_chunk_size=CHUNK,
            timeout=10,
        )
        gcs_emulator.wipe("layout-test/")

    @staticmethod
    def names(emulator: GcsEmulator) -> list[str]:
        client = emulator.client()
        return sorted(blob.name for blob in client.list_blobs(emulator.bucket, prefix="layout-"))

    def test_object_names(self, store: Any, gcs_emulator: GcsEmulator) -> None:
        store.write_upload("u1", 0, [b"a" * 10])
        store.write_upload("u1", 10, [b"b" * 5])

        def failing() -> Iterator[bytes]:
            yield b"c" * 7
            raise RuntimeError("client went away")

        with pytest.raises(RuntimeError):
            store.write_upload("u1", 15, failing())
        assert self.names(gcs_emulator) == [
            "layout-test/uploads/u1/00000000000000000000",
            "layout-test/uploads/u1/00000000000000000010",
        ]

        key = key_of(b"a" * 10 + b"b" * 5)
        assert store.commit_upload("u1", 15, key) is True
        assert self.names(gcs_emulator) == [f"layout-test/blobs/{key}"]

    @pytest.mark.parametrize("limit", [None, 4], ids=["real-limit", "limit-4"])
    def test_compose_rounds_respect_the_source_limit(
        self, store: Any, gcs_emulator: GcsEmulator, monkeypatch: pytest.MonkeyPatch, limit: int
    ) -> None:
        """The emulator accepts any number of sources, so the requests are checked here."""
        from google.cloud.storage import Blob

        from modelregistry_server.storage.blobs import gcs

        if limit is not None:
            monkeypatch.setattr(gcs, "COMPOSE_LIMIT", limit)
        real_compose = Blob.compose
        source_counts: list[int] = []

        def counting_compose(self: Any, sources: list[Any], *args: Any, **kwargs: Any) -> Any:
            source_counts.append(len(sources))
            return real_compose(self, sources, *args, **kwargs)

        monkeypatch.setattr(Blob, "compose", counting_compose)
        parts = [payload(100 + i, seed=i) for i in range(37)]
        offset = 0
        for part in parts:
            store.write_upload("u1", offset, [part])
            offset += len(part)
        data = joined(parts)
        key = key_of(data)

        assert store.commit_upload("u1", len(data), key) is True

        assert joined(store.read(key)) == data
        assert max(source_counts) <= gcs.COMPOSE_LIMIT
        # Sources per round: 37 -> 2 -> 1 (2 + 1 requests); 37 -> 10 -> 3 -> 1 (9 + 3 + 1).
        assert len(source_counts) == (3 if limit is None else 13)
        assert self.names(gcs_emulator) == [f"layout-test/blobs/{key}"]

    @pytest.mark.parametrize("size", [0, 3])
    def test_publishing_is_create_only(
        self, store: Any, gcs_emulator: GcsEmulator, monkeypatch: pytest.MonkeyPatch, size: int
    ) -> None:
        """The emulator ignores ifGenerationMatch, so a concurrent creator is simulated."""
        from google.api_core.exceptions import PreconditionFailed
        from google.cloud.storage import Blob

        preconditions: list[object] = []

        def creator_won(self: Any, *args: Any, **kwargs: Any) -> None:
            preconditions.append(kwargs.get("if_generation_match"))
            message = "another commit created the blob first"
            raise PreconditionFailed(message)  # type: ignore[no-untyped-call]  # unannotated

        monkeypatch.setattr(Blob, "compose", creator_won)
        monkeypatch.setattr(Blob, "upload_from_string", creator_won)
        store.write_upload("u1", 0, [b"abc"[:size]])

        assert store.commit_upload("u1", size, key_of(b"abc"[:size])) is False
        assert preconditions == [0]
        assert self.names(gcs_emulator) == []

    @pytest.mark.slow
    def test_memory_stays_small_for_a_large_piece(self, store: Any) -> None:
        total = 16 * MiB
        digest = hashlib.sha256()

        def generated() -> Iterator[bytes]:
            for i in range(total // 65_536):
                chunk = bytes([i % 251]) * 65_536  # a new object each time
                digest.update(chunk)
                yield chunk

        tracemalloc.start()
        try:
            assert store.write_upload("big", 0, generated()) == total
            _, write_peak = tracemalloc.get_traced_memory()
            key = "sha256/" + digest.hexdigest()
            assert store.commit_upload("big", total, key) is True
            tracemalloc.reset_peak()
            read_back = hashlib.sha256()
            for chunk in store.read(key):
                read_back.update(chunk)
            _, read_peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert write_peak < 16 * CHUNK < total
        assert read_peak < 16 * CHUNK
        assert read_back.hexdigest() == digest.hexdigest()


class TestGcsUnavailable:
    def test_closed_port_fails_fast_with_unavailable(self) -> None:
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        from modelregistry_server.storage.blobs.gcs import GcsBlobStore

        client = storage.Client(
            project="test",
            credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]  # unannotated
            client_options={"api_endpoint": f"http://127.0.0.1:{free_port()}"},
        )
        store = GcsBlobStore("bucket", client=client, timeout=1, retry_deadline=1)
        key = key_of(b"x")
        for call in (
            lambda: store.exists(key),
            lambda: store.read(key),
            lambda: store.write_upload("u1", 0, [b"x"]),
            lambda: store.commit_upload("u1", 0, key),
            lambda: list(store.list_blobs()),
        ):
            started = time.monotonic()
            with pytest.raises(Unavailable):
                call()
            assert time.monotonic() - started < 5
