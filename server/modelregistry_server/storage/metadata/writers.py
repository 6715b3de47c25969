"""The queues in front of SQLite's single write lock.

SQLite lets one writer in at a time; the others spin in its busy handler, sleeping and
retrying with growing pauses, so under contention a writer may wait long after the lock came
free (and a lucky newcomer overtakes writers that waited longer). Writers of this process
instead take turns in arrival order here (:class:`FairLock`) and only then ``BEGIN
IMMEDIATE``: the lock is handed straight to the next writer in line, without sleeps. When
several processes share the file (``--workers N``), the writer at the head of each process's
line also takes a :class:`ProcessLock`, so the processes take turns in the kernel instead of
in the busy handler.
"""

from __future__ import annotations

import fcntl
import os
import threading
from collections import deque
from pathlib import Path


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


class ProcessLock:
    """An exclusive ``flock`` on a lock file, shared by the processes that open it.

    Only the holder of its process's :class:`FairLock` takes it, so one thread per process
    waits here at most. The wait blocks in the kernel (no polling, the GIL released) and
    lasts as long as another process's write transaction; the kernel drops the lock of a
    process that dies. Each process opens the file itself (a descriptor inherited across
    ``fork`` would share one lock), so the file is opened on first use in each process.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd = -1
        self._pid = 0

    def acquire(self) -> None:
        """Wait for the lock; ``OSError`` if the lock file cannot be opened."""
        if self._pid != os.getpid():
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            self._pid = os.getpid()
        fcntl.flock(self._fd, fcntl.LOCK_EX)

    def release(self) -> None:
        """Let the next process's writer in."""
        fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        """Close this process's descriptor (releasing the lock if held)."""
        if self._pid == os.getpid() and self._fd >= 0:
            os.close(self._fd)
        self._fd, self._pid = -1, 0
