"""The queues of SQLite writers: in a process first come, first served with bounded waits;
across the processes sharing a file, turns taken in the kernel."""

from __future__ import annotations

import os
import select
import threading
import time
from pathlib import Path

from modelregistry_server.domain.events import Event
from modelregistry_server.domain.registry import utc_now
from modelregistry_server.storage.metadata import open_metadata_store
from modelregistry_server.storage.metadata.writers import FairLock, ProcessLock


def test_waiters_get_the_lock_in_arrival_order() -> None:
    lock = FairLock()
    assert lock.acquire(1)
    order: list[int] = []

    def writer(i: int) -> None:
        assert lock.acquire(10)
        order.append(i)
        lock.release()

    threads = []
    for i in range(8):
        t = threading.Thread(target=writer, args=(i,))
        t.start()
        threads.append(t)
        time.sleep(0.02)  # arrive one after another
    lock.release()
    for t in threads:
        t.join(10)
    assert order == list(range(8))


def test_a_wait_times_out_and_leaves_the_queue() -> None:
    lock = FairLock()
    assert lock.acquire(1)
    assert not lock.acquire(0.05)
    lock.release()
    assert lock.acquire(0)  # free again: the timed-out waiter is not in the way
    lock.release()


def test_process_locks_on_one_file_exclude_each_other(tmp_path: Path) -> None:
    """Two opens of the lock file (as two processes make) hold it in turn; the waiter blocks
    in the kernel until the holder lets go."""
    one, two = ProcessLock(tmp_path / "w"), ProcessLock(tmp_path / "w")
    one.acquire()
    got = threading.Event()

    def other() -> None:
        two.acquire()
        got.set()
        two.release()

    thread = threading.Thread(target=other)
    thread.start()
    assert not got.wait(0.3)
    one.release()
    assert got.wait(10)
    thread.join(10)
    one.close()
    two.close()


def test_a_forked_child_takes_its_own_turn(tmp_path: Path) -> None:
    """A descriptor inherited across fork would share the parent's lock; the child opens its
    own, so it waits while the parent holds the lock."""
    lock = ProcessLock(tmp_path / "w")
    lock.acquire()
    lock.release()
    lock.acquire()  # the parent's descriptor exists and holds the lock before the fork
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report when it has the lock
        try:
            lock.acquire()
            os.write(write, b"x")
            lock.release()
        finally:
            os._exit(0)
    os.close(write)
    try:
        ready, _, _ = select.select([read], [], [], 0.3)
        assert not ready, "the child got the lock the parent holds"
        lock.release()
        ready, _, _ = select.select([read], [], [], 10)
        assert ready and os.read(read, 1) == b"x"
    finally:
        os.waitpid(pid, 0)
        os.close(read)
        lock.close()


def test_writers_of_a_shared_sqlite_file_wait_for_another_processs_turn(tmp_path: Path) -> None:
    """A store opened for several processes takes the writers' lock file before BEGIN
    IMMEDIATE: while another process holds it, a write waits (in the kernel, not in SQLite's
    sleeping busy handler) and goes ahead as soon as it is released."""
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    store = open_metadata_store(url, max_connections=4, shared=True)
    other = ProcessLock(tmp_path / "registry.db-writers")  # another worker's open
    other.acquire()
    done = threading.Event()

    def write() -> None:
        store.append_event(Event("acme", utc_now(), "user:x", "CreateModel", "models/m"))
        done.set()

    thread = threading.Thread(target=write)
    try:
        thread.start()
        assert not done.wait(0.3), "the write did not wait for the other process's turn"
        other.release()
        assert done.wait(10)
    finally:
        other.release()
        thread.join(10)
        other.close()
        store.close()
