"""File locks between processes (``flock``): released by the kernel when a holder dies, so a
pull killed with SIGKILL never leaves the cache locked."""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Final

__all__ = ["CacheBusyError", "file_lock"]

_POLL_S: Final = 0.05


class CacheBusyError(TimeoutError):
    """The lock stayed held by another process for longer than the wait allowed."""


@contextlib.contextmanager
def file_lock(path: Path, *, shared: bool = False, timeout: float | None = None) -> Iterator[None]:
    """Hold ``path``'s flock (shared or exclusive) for the block.

    ``timeout`` None waits as long as the holder needs; otherwise :class:`CacheBusyError` after
    that many seconds. Each call opens its own descriptor, so threads of one process exclude
    each other as processes do.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        mode = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
        if timeout is None:
            fcntl.flock(fd, mode)
        else:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    fcntl.flock(fd, mode | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise CacheBusyError(f"{path} is held by another process") from None
                    time.sleep(_POLL_S)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock
