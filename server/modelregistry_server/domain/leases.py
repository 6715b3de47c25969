"""Holding a named lease (the :class:`~.ports.LeaseBook` port) for as long as a process lives.

:class:`LeaseKeeper` tries to take its lease every ``renew`` seconds and, once it holds it,
renews it on the same beat, so the lease outlives a renewal that fails once. If the holder dies
(or cannot reach the database), the lease expires ``ttl`` after its last renewal and the next
keeper to try takes it over. The holder counts itself the holder only until ``ttl`` after it
*sent* its last successful renewal (a monotonic clock), so it stops before anyone else may
start, as long as the processes' clocks agree to well within ``ttl``.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from .ports import LeaseBook

log = logging.getLogger(__name__)

MAINTENANCE_LEASE = "maintenance"


def holder_name() -> str:
    """This process's holder name: host, pid and a random suffix (pids are reused)."""
    return f"{socket.gethostname()}/{os.getpid()}/{secrets.token_hex(4)}"


class LeaseKeeper:
    """Keeps trying to hold lease ``name`` (see the module docstring)."""

    def __init__(
        self,
        book: LeaseBook,
        name: str,
        *,
        ttl: timedelta,
        clock: Callable[[], datetime],
        holder: str | None = None,
    ) -> None:
        if ttl <= timedelta(0):
            raise ValueError("a lease must last longer than zero")
        self.name = name
        self.holder = holder or holder_name()
        self._book = book
        self._ttl = ttl
        self._clock = clock
        self._valid_until = 0.0  # time.monotonic() up to which this process holds the lease

    @property
    def renew_interval(self) -> float:
        """Seconds between two attempts: a third of the lease, so two may fail in a row."""
        return self._ttl.total_seconds() / 3

    def held(self) -> bool:
        """True while this process holds the lease."""
        return time.monotonic() < self._valid_until

    def try_acquire(self) -> bool:
        """Take or renew the lease now; False if another holds it or the database failed."""
        sent = time.monotonic()
        now = self._clock()
        was = self.held()
        try:
            won = self._book.acquire_lease(self.name, self.holder, now, now + self._ttl)
        except Exception as exc:
            log.warning("lease %s: cannot renew (%s)", self.name, exc)
            return self.held()
        if won:
            self._valid_until = sent + self._ttl.total_seconds()
            if not was:
                log.info("lease %s: taken by this process (%s)", self.name, self.holder)
        else:
            if was:
                log.warning("lease %s: lost to another process", self.name)
            self._valid_until = 0.0
        return won

    def run(self, stopping: threading.Event) -> None:
        """Try every :attr:`renew_interval` until ``stopping``; then give the lease up."""
        self.try_acquire()
        while not stopping.wait(self.renew_interval):
            self.try_acquire()
        self.release()

    def release(self) -> None:
        """Give the lease up (if held), so another process takes over without waiting."""
        if not self.held():
            return
        self._valid_until = 0.0
        try:
            self._book.release_lease(self.name, self.holder)
        except Exception as exc:
            log.warning("lease %s: cannot release (%s); it expires by itself", self.name, exc)
