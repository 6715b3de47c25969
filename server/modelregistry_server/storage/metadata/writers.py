"""One in-process queue in front of SQLite's single write lock.

SQLite lets one writer in at a time; the others spin in its busy handler, sleeping and
retrying with growing pauses, so under contention a writer may wait long after the lock came
free (and a lucky newcomer overtakes writers that waited longer). Writers of this process
instead take turns in arrival order here and only then ``BEGIN IMMEDIATE``: the lock is
handed straight to the next writer in line, without sleeps.
"""

from __future__ import annotations

import threading
from collections import deque


class FairLock:
    """A first-come, first-served lock: :meth:`release` hands it to the longest waiter."""

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._waiters: deque[threading.Lock] = deque()
        self._held = False

    def acquire(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the lock; False if it did not come."""
        with self._mutex:
            if not self._held:
                self._held = True
                return True
            turn = threading.Lock()
            turn.acquire()
            self._waiters.append(turn)
        if turn.acquire(timeout=max(timeout, 0)):
            return True  # handed over by release()
        with self._mutex:
            try:
                self._waiters.remove(turn)
            except ValueError:
                return True  # handed over just as the wait timed out
            return False

    def release(self) -> None:
        """Hand the lock to the next waiter, or free it."""
        with self._mutex:
            if self._waiters:
                self._waiters.popleft().release()
            else:
                self._held = False
