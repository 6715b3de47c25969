"""Writing an upload's chunks to its file on a helper thread, behind the thread receiving them.

The thread that runs an upload receives each chunk from gRPC and hashes it; copying it into
the page cache (``pwrite``) took half of that thread's time on the bench machine. ``pwrite``
releases the GIL, so handing it to a helper lets receiving, hashing and writing run at once.
At most ``limit`` bytes are queued or being written, so memory stays bounded; the first chunk
is written by the caller itself, so a one-chunk upload starts no thread.
"""

from __future__ import annotations

import collections
import os
import threading
from types import TracebackType

DEFAULT_LIMIT_BYTES = 4 << 20


def write_all(fd: int, data: bytes | memoryview, position: int) -> None:
    """``pwrite`` all of ``data`` at ``position`` (a short write continues where it stopped)."""
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, position)
        view = view[written:]
        position += written


class WriteBehind:
    """Writes the chunks given to :meth:`put` to ``fd`` from ``position`` on, in order.

    Used as a context manager: leaving the block normally waits for every write and raises
    the first ``OSError`` a write met; leaving it with an exception drops the chunks not yet
    written and waits for the write in progress, so the caller may then undo what reached the
    file. :attr:`position` is where the written bytes end.
    """

    def __init__(
        self, fd: int, position: int, limit: int = DEFAULT_LIMIT_BYTES, name: str = "write-behind"
    ) -> None:
        if limit <= 0:
            raise ValueError(f"limit must be positive, got {limit}")
        self._fd = fd
        self.position = position
        self._limit = limit
        self._name = name
        self._changed = threading.Condition()
        self._queue: collections.deque[bytes] = collections.deque()
        self._held = 0  # bytes queued or being written
        self._error: OSError | None = None
        self._closing = False
        self._thread: threading.Thread | None = None
        self._wrote_inline = False

    def __enter__(self) -> WriteBehind:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.finish()
        else:
            self._stop(drop=True)

    def put(self, chunk: bytes) -> None:
        """Queue ``chunk`` (waits while ``limit`` bytes are held); raises the ``OSError`` of
        an earlier write."""
        if not chunk:
            return
        if not self._wrote_inline:  # one-chunk uploads: no thread
            self._wrote_inline = True
            write_all(self._fd, chunk, self.position)
            self.position += len(chunk)
            return
        if self._thread is None:
            self._thread = threading.Thread(target=self._write, name=self._name, daemon=True)
            self._thread.start()
        with self._changed:
            while self._held and self._held + len(chunk) > self._limit and self._error is None:
                self._changed.wait()
            if self._error is not None:
                raise self._error
            self._queue.append(chunk)
            self._held += len(chunk)
            self._changed.notify_all()

    def finish(self) -> int:
        """Wait until every queued chunk is written; the end position. Raises the first
        ``OSError`` a write met."""
        self._stop(drop=False)
        if self._error is not None:
            raise self._error
        return self.position

    def _stop(self, *, drop: bool) -> None:
        with self._changed:
            if drop:
                self._held -= sum(len(chunk) for chunk in self._queue)
                self._queue.clear()
            self._closing = True
            self._changed.notify_all()
        if self._thread is not None:
            self._thread.join()

    def _write(self) -> None:
        while True:
            with self._changed:
                while not self._queue and not self._closing:
                    self._changed.wait()
                if not self._queue:
                    return
                chunk = self._queue.popleft()
            try:
                write_all(self._fd, chunk, self.position)
            except OSError as exc:
                with self._changed:
                    self._error = exc
                    self._queue.clear()
                    self._held = 0
                    self._changed.notify_all()
                return
            with self._changed:
                self.position += len(chunk)
                self._held -= len(chunk)
                self._changed.notify_all()
