"""Running an iterator a few items ahead on a helper thread.

Checked reads spend most of their time in hashing and I/O, which release the GIL, while the
thread sending the stream spends its time in gRPC; running the reads ahead lets both cores
work. At most ``depth`` items wait in between, so memory stays bounded. The helper thread is
created when the first item is asked for, not before.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import Generic, TypeVar

T = TypeVar("T")

_POLL_S = 0.1  # how often a blocked producer looks whether the consumer went away


class _End:
    """The producer finished (``error`` None) or failed."""

    def __init__(self, error: BaseException | None) -> None:
        self.error = error


class ReadAhead(Iterator[T], Generic[T]):
    """``items`` produced on a helper thread up to ``depth`` items ahead (see
    :func:`read_ahead`). The helper starts with the first :func:`next`."""

    def __init__(self, items: Iterator[T], depth: int, name: str) -> None:
        self._items = items
        self._queue: queue.Queue[T | _End] = queue.Queue(maxsize=depth)
        self._stopped = threading.Event()
        self._name = name
        self._started = False
        self._ended = False

    def _put(self, item: T | _End) -> bool:
        while not self._stopped.is_set():
            try:
                self._queue.put(item, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def _produce(self) -> None:
        try:
            for item in self._items:
                if not self._put(item):
                    return
        except BaseException as exc:  # handed to the consumer, raised there
            self._put(_End(exc))
            return
        finally:
            close = getattr(self._items, "close", None)
            if close is not None:
                close()
        self._put(_End(None))

    def __next__(self) -> T:
        if self._ended:
            raise StopIteration
        if not self._started:
            self._started = True
            threading.Thread(target=self._produce, name=self._name, daemon=True).start()
        item = self._queue.get()
        if isinstance(item, _End):
            self.close()
            if item.error is not None:
                raise item.error
            raise StopIteration
        return item

    def ready(self) -> bool:
        """Whether :func:`next` returns without waiting (an item or the end is queued)."""
        return self._ended or not self._queue.empty()

    def close(self) -> None:
        """Stop the helper (it closes ``items``); no further items."""
        self._ended = True
        self._stopped.set()


def read_ahead(items: Iterator[T], depth: int = 2, name: str = "read-ahead") -> ReadAhead[T]:
    """``items`` in order, produced on a helper thread up to ``depth`` items ahead.

    An exception of ``items`` is raised where it occurred in the sequence (after the items
    before it). Closing the returned iterator stops the helper and closes ``items``.
    """
    if depth <= 0:
        raise ValueError(f"depth must be positive, got {depth}")
    return ReadAhead(items, depth, name)
