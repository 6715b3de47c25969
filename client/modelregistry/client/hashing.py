"""SHA-256 of a download computed on a helper thread, beside the thread that receives it.

Hashing (about 0.6 ms per MiB here) and gRPC's receiving both release the GIL for most of
their time, so hashing each block on a helper thread while the next one is received lets a
download use two cores instead of doing both in turn. At most
``depth`` blocks wait for the hasher (the caller blocks beyond that), so memory stays a few
blocks whatever the size. The blocks are ``bytes`` (immutable) or views of them, so hashing
them while the caller hands them on is safe.
"""

from __future__ import annotations

import hashlib
import queue
import threading

__all__ = ["BackgroundSha256"]

_END = None


class BackgroundSha256:
    """``hashlib.sha256`` fed from a bounded queue by one helper thread (started with the
    first block). :meth:`hexdigest` waits for every block given before it."""

    def __init__(self, depth: int = 2) -> None:
        self._queue: queue.Queue[bytes | memoryview | None] = queue.Queue(maxsize=depth)
        self._sha = hashlib.sha256()
        self._thread: threading.Thread | None = None
        self._digest: str | None = None

    def update(self, data: bytes | memoryview) -> None:
        """Add the next block (waits while ``depth`` blocks are still to be hashed)."""
        if self._digest is not None:
            raise ValueError("the digest was already taken")
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="sha256", daemon=True)
            self._thread.start()
        self._queue.put(data)

    def _run(self) -> None:
        while (data := self._queue.get()) is not _END:
            self._sha.update(data)

    def hexdigest(self) -> str:
        """The digest of every block added (no more may be added afterwards)."""
        if self._digest is None:
            if self._thread is not None:
                self._queue.put(_END)
                self._thread.join()
            self._digest = self._sha.hexdigest()
        return self._digest

    def close(self) -> None:
        """Stop the helper without waiting for a digest (an abandoned transfer)."""
        if self._thread is not None and self._digest is None:
            self._digest = ""
            self._queue.put(_END)
