"""The in-process queue of SQLite writers: first come, first served, bounded waits."""

from __future__ import annotations

import threading
import time

from modelregistry_server.storage.metadata.writers import FairLock


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
