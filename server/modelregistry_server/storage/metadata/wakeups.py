"""Event wake-ups (the ``EventWakeups`` port), one adapter per database.

:class:`LocalWakeups` counts this process's commits of events (SQLite: the other processes on
the machine are found by the callers' poll). :class:`PostgresWakeups` adds a listener: the
transaction that appends an event also runs ``pg_notify(CHANNEL, tenant)``, which PostgreSQL
delivers only if and when that transaction commits, to every session that ran ``LISTEN`` on
the channel; one listener connection per process (per store) turns each notification into a
bump of the same counter. LISTEN needs a session of its own (not a pooled connection, and not
a transaction-mode pooler's). A lost connection is reopened with a bounded backoff; the counter
is bumped on every (re)connect and loss, so a waiter reads the table again instead of
trusting that nothing happened while nobody listened.
"""

from __future__ import annotations

import contextlib
import logging
import select
import socket
import threading
from collections.abc import Callable
from typing import Any

import psycopg2

log = logging.getLogger(__name__)

CHANNEL = "modelregistry_events"
RETRY_FIRST_S = 0.1
RETRY_MAX_S = 5.0
# An idle listener checks its connection this often (a peer that vanished without a FIN is
# found by this round trip rather than by TCP keepalive hours later).
IDLE_CHECK_S = 15.0
# The listener's session notices a black-holed peer within seconds, not after the kernel's
# retransmission timeout (minutes): TCP keepalives, and a bound on unacknowledged sends
# (libpq's tcp_user_timeout, ms). A URL's own settings win.
LISTENER_TCP = {
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
    "tcp_user_timeout": 20_000,
}


class LocalWakeups:
    """Commits of events by this process: a counter and a condition to wait on."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._generation = 0

    def bump(self) -> None:
        """Move the counter and wake every waiter."""
        with self._condition:
            self._generation += 1
            self._condition.notify_all()

    def generation(self) -> int:
        """The current counter value."""
        return self._generation

    def wait(self, generation: int, timeout: float) -> int:
        """Wait for the counter to move past ``generation``, at most ``timeout`` seconds."""
        with self._condition:
            self._condition.wait_for(lambda: self._generation != generation, timeout)
            return self._generation

    def close(self) -> None:
        """Nothing to release."""


class PostgresWakeups(LocalWakeups):
    """:class:`LocalWakeups` plus a LISTEN connection that bumps on other sessions' commits.

    ``connect`` opens a new psycopg2 connection (not from the pool). The listener thread
    starts on construction and ends on :meth:`close`.
    """

    def __init__(self, connect: Callable[[], Any]) -> None:
        super().__init__()
        self._connect = connect
        self._closing = threading.Event()
        self._stop_r, self._stop_w = socket.socketpair()
        self._lock = threading.Lock()
        self._conn: Any = None
        self.connects = 0  # successful LISTENs so far (tests watch reconnects with it)
        self.listening = threading.Event()
        self._thread = threading.Thread(target=self._run, name="event-listener", daemon=True)
        self._thread.start()

    @classmethod
    def for_database(cls, database: Any) -> PostgresWakeups:
        """A listener with the connection parameters of a peewee PostgreSQL ``database``."""
        params = {**LISTENER_TCP, **database.connect_params}
        return cls(lambda: psycopg2.connect(database=database.database, **params))

    @property
    def listener_pid(self) -> int | None:
        """The PostgreSQL backend pid of the listening session, while connected."""
        with self._lock:
            return None if self._conn is None else int(self._conn.get_backend_pid())

    def close(self) -> None:
        """Stop listening and close the connection (waits for the thread, bounded)."""
        self._closing.set()
        with contextlib.suppress(OSError):
            self._stop_w.send(b"x")
        self._thread.join(timeout=5)
        self._stop_r.close()
        self._stop_w.close()

    def _run(self) -> None:
        delay = RETRY_FIRST_S
        while not self._closing.is_set():
            conn = None
            try:
                conn = self._connect()
                conn.autocommit = True
                with conn.cursor() as cursor:
                    cursor.execute(f"LISTEN {CHANNEL}")
                with self._lock:
                    self._conn = conn
                self.connects += 1
                self.bump()  # commits while nobody listened: read the table again
                # Set after that bump: one who waited for ``listening`` sees the counter move
                # only for commits from now on.
                self.listening.set()
                delay = RETRY_FIRST_S
                self._listen(conn)
            except (psycopg2.Error, OSError) as error:
                if not self._closing.is_set():
                    log.warning(
                        "event listener: %s; reconnecting in %.1f s (watchers poll meanwhile)",
                        type(error).__name__,
                        delay,
                    )
            finally:
                self.listening.clear()
                with self._lock:
                    self._conn = None
                if conn is not None:
                    with contextlib.suppress(psycopg2.Error):
                        conn.close()
            if self._closing.is_set():
                return
            self.bump()  # a lost listener may have missed notifications
            self._closing.wait(delay)
            delay = min(delay * 2, RETRY_MAX_S)

    def _listen(self, conn: Any) -> None:
        """Turn notifications into bumps until the connection fails or we are closing."""
        while not self._closing.is_set():
            ready, _, _ = select.select([conn, self._stop_r], [], [], IDLE_CHECK_S)
            if self._closing.is_set():
                return
            if not ready:
                with conn.cursor() as cursor:
                    cursor.execute("SELECT 1")
                continue
            conn.poll()  # raises on a lost connection
            if conn.notifies:
                conn.notifies.clear()
                self.bump()
