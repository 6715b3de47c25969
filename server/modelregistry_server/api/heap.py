"""Memory that parked downloads let go of, handed back to the operating system.

A parked download frees the 1 MiB blocks it read, but glibc keeps freed memory inside its
heap, between the small live objects of other streams, so the process's RSS does not
shrink: 1,000 unread downloads kept about 420 KiB each. ``malloc_trim(0)`` returns the free
pages (then about 170 KiB each: gRPC's own state per call, its copy of the waiting message
and ours). A trim walks the whole heap, so the parks that come together share one, a moment
after the first, and trims are at least ``TRIM_GAP_S`` apart however many streams park.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import time
from collections.abc import Callable
from concurrent.futures import Executor

log = logging.getLogger(__name__)
TRIM_DELAY_S = 0.5
TRIM_GAP_S = 2.0


def _libc_trim() -> Callable[[int], int] | None:
    try:
        trim = ctypes.CDLL(None).malloc_trim  # glibc; absent on other C libraries
    except (OSError, AttributeError, TypeError):  # TypeError: no CDLL(None) on Windows
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


_MALLOC_TRIM = _libc_trim()


def trim_heap() -> None:
    """Give the heap's free pages back to the operating system (a no-op without glibc)."""
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


class HeapTrimmer:
    """Runs :func:`trim_heap` on ``pool`` ``delay`` seconds after :meth:`soon` is first
    called, and not sooner than ``gap`` seconds after the previous trim started; the calls
    made until then share that trim. Used from the event loop."""

    def __init__(
        self,
        pool: Executor,
        delay: float = TRIM_DELAY_S,
        trim: Callable[[], None] | None = None,
        gap: float = TRIM_GAP_S,
    ) -> None:
        self._pool = pool
        self._delay = delay
        self._gap = gap
        self._trim = trim
        self._scheduled = False
        self._last: float | None = None  # time.monotonic() of the last trim's start

    def soon(self) -> None:
        """Ask for a trim (memory was just freed)."""
        if self._scheduled:
            return
        self._scheduled = True
        wait = self._delay
        if self._last is not None:
            wait = max(wait, self._last + self._gap - time.monotonic())
        loop = asyncio.get_running_loop()
        loop.call_later(wait, self._start, loop)

    def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._scheduled = False  # memory freed from now on asks for the next trim
        self._last = time.monotonic()
        try:
            run = loop.run_in_executor(self._pool, self._trim or trim_heap)
        except RuntimeError:  # the server is stopping: its pool takes no more work
            return
        run.add_done_callback(_report)


def _report(run: asyncio.Future[None]) -> None:
    if not run.cancelled() and run.exception() is not None:
        log.warning("heap trim failed", exc_info=run.exception())
