"""The client's content cache without a server: what enters it, what a use checks, records."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from modelregistry.client import Cache, IntegrityError, ManifestFile
from modelregistry.client.cache import manifest_digest
from modelregistry.client.pulls import materialise

DATA = bytes(range(256)) * 1000
SHA = hashlib.sha256(DATA).hexdigest()


def _source(data: bytes, calls: list[int], chunk: int = 10_000) -> Callable[[int], Iterator[bytes]]:
    def fetch(offset: int) -> Iterator[bytes]:
        calls.append(offset)
        for i in range(offset, len(data), chunk):
            yield data[i : i + chunk]

    return fetch


def test_wrong_bytes_never_enter_the_cache(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    bad = bytearray(DATA)
    bad[5000] ^= 1
    with pytest.raises(IntegrityError):
        cache.ensure(SHA, len(DATA), _source(bytes(bad), []))
    assert not cache.blob_path(SHA).exists() and cache.partial_size(SHA) == 0
    with pytest.raises(IntegrityError, match="size"):
        cache.ensure(SHA, len(DATA), _source(DATA + b"x", []))
    assert not cache.has(SHA, len(DATA))


def test_a_partial_download_is_continued_and_a_wrong_prefix_discarded(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    part = tmp_path / "partial" / f"{SHA}.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(DATA[:12_345])
    calls: list[int] = []
    assert cache.ensure(SHA, len(DATA), _source(DATA, calls)) == (len(DATA) - 12_345, 12_345)
    assert calls == [12_345] and cache.has(SHA, len(DATA))
    assert not cache.blob_path(SHA).stat().st_mode & 0o222  # read-only

    other = bytes(reversed(DATA))
    other_sha = hashlib.sha256(other).hexdigest()
    (tmp_path / "partial" / f"{other_sha}.part").write_bytes(b"garbage" * 100)
    calls = []
    assert cache.ensure(other_sha, len(other), _source(other, calls)) == (len(other), 0)
    assert calls == [700, 0]  # the wrong prefix was tried, discarded, fetched from zero


def test_the_cheap_check_catches_writes_truncation_and_a_missing_stamp(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    cache.ensure(SHA, len(DATA), _source(DATA, []))
    blob = cache.blob_path(SHA)
    blob.chmod(0o644)
    time.sleep(0.01)
    with open(blob, "r+b") as f:
        f.write(b"\0")
    assert not cache.has(SHA, len(DATA))
    calls: list[int] = []
    cache.ensure(SHA, len(DATA), _source(DATA, calls))
    assert calls == [0] and cache.has(SHA, len(DATA))
    blob.chmod(0o644)
    with open(blob, "r+b") as f:
        f.truncate(10)
    assert not cache.has(SHA, len(DATA))
    cache.ensure(SHA, len(DATA), _source(DATA, []))
    # Installed but not stamped (a crash in between): re-hashed locally, not fetched.
    blob.with_name(SHA + ".stamp").unlink()
    calls = []
    assert cache.ensure(SHA, len(DATA), _source(DATA, calls)) == (0, 0) and calls == []


def test_concurrent_ensures_fetch_once(tmp_path: Path) -> None:
    calls: list[int] = []
    results: list[tuple[int, int]] = []

    def slow(offset: int) -> Iterator[bytes]:
        calls.append(offset)
        for i in range(offset, len(DATA), 50_000):
            time.sleep(0.01)
            yield DATA[i : i + 50_000]

    def one() -> None:
        results.append(Cache(tmp_path).ensure(SHA, len(DATA), slow))

    threads = [threading.Thread(target=one) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert calls == [0] and sorted(results) == [(0, 0), (0, 0), (len(DATA), 0)]


def test_records_are_checked_against_their_digest(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    files = [ManifestFile("a/b.bin", len(DATA), SHA)]
    digest = manifest_digest(files)
    with pytest.raises(IntegrityError):
        cache.record_version("reg", "models/m/versions/1", "sha256:" + "0" * 64, files)
    cache.ensure(SHA, len(DATA), _source(DATA, []))
    cache.record_version("reg", "models/m/versions/1", digest, files)
    found = cache.find_version("reg", "models/m/versions/1")
    assert found is not None and found.complete and found.files == tuple(files)
    assert cache.find_version("other", "models/m/versions/1") is None
    record = next((tmp_path / "manifests").rglob("*.json"))
    record.write_text(record.read_text().replace(SHA, "f" * 64))
    assert cache.find_version("reg", "models/m/versions/1") is None
    assert cache.verify().bad_manifests == (str(record),)


def test_materialise_links_and_refuses_paths_outside(tmp_path: Path) -> None:
    cache = Cache(tmp_path / "c")
    cache.ensure(SHA, len(DATA), _source(DATA, []))
    out = materialise(cache, [ManifestFile("x/y.bin", len(DATA), SHA)], tmp_path / "d", copy=False)
    assert out[0].path.read_bytes() == DATA and out[0].path.stat().st_nlink == 2
    with pytest.raises(IntegrityError):
        materialise(cache, [ManifestFile("../evil", len(DATA), SHA)], tmp_path / "d", copy=False)
    assert not (tmp_path / "evil").exists()


def test_large_contents_are_hashed_and_written_on_a_thread_and_resume(tmp_path: Path) -> None:
    big = bytes(range(251)) * (6 * 1024 * 1024 // 251)
    sha = hashlib.sha256(big).hexdigest()
    cache = Cache(tmp_path)

    def broken(offset: int) -> Iterator[bytes]:
        for i in range(offset, 3 * 1024 * 1024, 64 * 1024):
            yield big[i : i + 64 * 1024]
        raise ConnectionError("dropped")

    with pytest.raises(ConnectionError):
        cache.ensure(sha, len(big), broken)
    assert cache.partial_size(sha) == 3 * 1024 * 1024  # every byte handed over was written
    calls: list[int] = []
    assert cache.ensure(sha, len(big), _source(big, calls, 1 << 20)) == (
        len(big) - 3 * 1024 * 1024,
        3 * 1024 * 1024,
    )
    assert calls == [3 * 1024 * 1024] and cache.blob_path(sha).read_bytes() == big
