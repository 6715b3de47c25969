"""The deadline of the call being served, so long work stops once nobody waits for it.

The serving edge sets it for the thread that runs a call (:func:`call_deadline`); use cases
and adapters call :func:`check` before each database transaction and blob step. A call whose
deadline has passed does no further work: it fails with DEADLINE_EXCEEDED and what was
committed before stays.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from .errors import DeadlineExceeded, Reason

_DEADLINE: ContextVar[float | None] = ContextVar("call_deadline", default=None)


@contextmanager
def call_deadline(seconds_remaining: float | None) -> Iterator[None]:
    """Run the block under a deadline ``seconds_remaining`` from now (None: no deadline)."""
    at = None if seconds_remaining is None else time.monotonic() + seconds_remaining
    token = _DEADLINE.set(at)
    try:
        yield
    finally:
        _DEADLINE.reset(token)


def remaining() -> float | None:
    """Seconds left before the current call's deadline (None: no deadline)."""
    at = _DEADLINE.get()
    return None if at is None else at - time.monotonic()


def check() -> None:
    """DEADLINE_EXCEEDED if the current call's deadline has passed."""
    left = remaining()
    if left is not None and left <= 0:
        raise DeadlineExceeded(
            "the call's deadline passed; the server stopped its work",
            reason=Reason.DEADLINE_EXCEEDED,
        )
