"""WriteBehind: chunks reach the file in order, at most ``limit`` bytes wait, a failed write
is raised to the caller, and a caller that fails stops the writes before it undoes them."""

from __future__ import annotations

import errno
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelregistry_server.storage.blobs import write_behind
from modelregistry_server.storage.blobs.write_behind import WriteBehind

WAIT_S = 10.0


@pytest.fixture
def fd(tmp_path: Path) -> Iterator[int]:
    descriptor = os.open(tmp_path / "upload", os.O_RDWR | os.O_CREAT, 0o600)
    yield descriptor
    os.close(descriptor)


def _contents(fd: int) -> bytes:
    return os.pread(fd, os.fstat(fd).st_size + 1, 0)


def _writer_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "test-writes"]


def test_chunks_arrive_in_order_after_the_offset(fd: int) -> None:
    os.pwrite(fd, b"kept", 0)
    chunks = [bytes([i]) * (1 + i * 37) for i in range(200)]
    with WriteBehind(fd, 4, limit=1_000, name="test-writes") as writes:
        for chunk in chunks:
            writes.put(chunk)
        end = writes.finish()
    assert end == writes.position == 4 + sum(map(len, chunks))
    assert _contents(fd) == b"kept" + b"".join(chunks)
    assert _writer_threads() == []


def test_one_chunk_starts_no_thread(fd: int, monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[threading.Thread] = []
    real_start = threading.Thread.start

    def recording_start(self: threading.Thread) -> None:
        started.append(self)
        real_start(self)

    monkeypatch.setattr(threading.Thread, "start", recording_start)
    with WriteBehind(fd, 0) as writes:
        writes.put(b"small")
        writes.put(b"")
    assert writes.position == 5
    assert started == []


def test_at_most_limit_bytes_wait(fd: int, monkeypatch: pytest.MonkeyPatch) -> None:
    release = threading.Event()
    real_write_all = write_behind.write_all

    def slow_write_all(descriptor: int, data: bytes | memoryview, position: int) -> None:
        if threading.current_thread().name == "test-writes":
            assert release.wait(WAIT_S)
        real_write_all(descriptor, data, position)

    monkeypatch.setattr(write_behind, "write_all", slow_write_all)
    put = 0

    def produce(writes: WriteBehind) -> None:
        nonlocal put
        for _ in range(20):
            writes.put(b"x" * 100)
            put += 1

    with WriteBehind(fd, 0, limit=300, name="test-writes") as writes:
        producer = threading.Thread(target=produce, args=(writes,))
        producer.start()
        producer.join(0.5)  # the writer is held: the producer must be waiting
        assert producer.is_alive()
        assert put == 1 + 3  # the inline first chunk, then 300 bytes held
        release.set()
        producer.join(WAIT_S)
    assert put == 20
    assert _contents(fd) == b"x" * 2_000


def test_a_failed_write_is_raised_and_ends_the_writer(
    fd: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = 0
    real_pwrite = os.pwrite

    def full_disk(descriptor: int, data: bytes | memoryview, position: int) -> int:
        nonlocal calls
        calls += 1
        if calls >= 3:
            raise OSError(errno.ENOSPC, "no space left on device")
        return real_pwrite(descriptor, data, position)

    monkeypatch.setattr(os, "pwrite", full_disk)
    with (
        pytest.raises(OSError) as raised,
        WriteBehind(fd, 0, limit=10, name="test-writes") as writes,
    ):
        for _ in range(1_000):
            writes.put(b"y" * 10)
        writes.finish()
    assert raised.value.errno == errno.ENOSPC
    assert writes.position == 20  # the two writes that succeeded
    assert _writer_threads() == []


def test_a_failing_caller_drops_what_waits_and_stops_the_writer(
    fd: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    writing = threading.Event()
    release = threading.Event()
    real_write_all = write_behind.write_all

    def held_write_all(descriptor: int, data: bytes | memoryview, position: int) -> None:
        if threading.current_thread().name == "test-writes":
            writing.set()
            assert release.wait(WAIT_S)
        real_write_all(descriptor, data, position)

    monkeypatch.setattr(write_behind, "write_all", held_write_all)
    threading.Timer(0.2, release.set).start()
    with (
        pytest.raises(RuntimeError, match="client went away"),
        WriteBehind(fd, 0, limit=1_000, name="test-writes") as writes,
    ):
        writes.put(b"a" * 10)  # inline
        writes.put(b"b" * 10)  # being written when the caller fails
        assert writing.wait(WAIT_S)
        writes.put(b"c" * 10)  # queued: dropped
        raise RuntimeError("client went away")
    # The write in progress finished before the block was left; nothing comes after it.
    assert _writer_threads() == []
    assert _contents(fd) == b"a" * 10 + b"b" * 10
    assert writes.position == 20


def test_limit_must_be_positive(fd: int) -> None:
    with pytest.raises(ValueError, match="limit"):
        WriteBehind(fd, 0, limit=0)
