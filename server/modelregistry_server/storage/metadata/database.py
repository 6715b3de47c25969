"""Database URLs to configured peewee databases, and the few places the dialects differ."""

from __future__ import annotations

import logging
import select
import sqlite3
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qsl, quote, unquote, urlsplit

import peewee
from playhouse.pool import PooledPostgresqlDatabase, PooledSqliteDatabase

from ...domain import deadlines
from ...domain.errors import Unavailable
from .writers import FairLock, ProcessLock

log = logging.getLogger(__name__)

Dialect = Literal["sqlite", "postgresql"]

# Writers wait this long for SQLite's single write lock before giving up.
SQLITE_BUSY_TIMEOUT_S = 15
# How long start-up waits for a SQLite file another process holds before refusing it.
SQLITE_HELD_WAIT_S = 1.0
# Pooled connections older than this are closed instead of reused.
STALE_TIMEOUT_S = 300
# How long a request waits for a free pooled connection.
POOL_WAIT_TIMEOUT_S = 30
# How long a new PostgreSQL connection may take before the server counts as unreachable.
PG_CONNECT_TIMEOUT_S = 5
# A pooled PostgreSQL connection idle longer than this is pinged (``SELECT 1``) before reuse.
PG_PING_AFTER_IDLE_S = 0.5


class DatabaseInUseError(RuntimeError):
    """Another process holds the SQLite database (``unix-excl`` serves one process)."""


# The SQLite VFS of a file only this process opens, and of one the workers of a supervisor share.
EXCLUSIVE_VFS = "unix-excl"
SHARED_VFS = "unix"


@dataclass(frozen=True)
class Backend:
    """A configured database and its dialect."""

    database: peewee.Database
    dialect: Dialect
    # SQLite writers of this process queue here, in order, before BEGIN IMMEDIATE.
    writers: FairLock = field(default_factory=FairLock, compare=False)
    # With a SQLite file shared by several processes, the head of each queue takes this too.
    process_writers: ProcessLock | None = field(default=None, compare=False)

    @property
    def supports_for_update(self) -> bool:
        """True if ``SELECT ... FOR UPDATE`` exists (SQLite's write lock covers it)."""
        return self.dialect == "postgresql"

    @contextmanager
    def write_transaction(self) -> Iterator[None]:
        """A write transaction. On SQLite the writers of this process take turns in arrival
        order (:class:`FairLock`), each then ``BEGIN IMMEDIATE`` (set on the database); a
        writer waits at most the busy timeout, or until its call's deadline."""
        if self.dialect != "sqlite":
            with self.database.transaction():
                yield
            return
        wait = float(SQLITE_BUSY_TIMEOUT_S)
        left = deadlines.remaining()
        if left is not None:
            wait = min(wait, left)
        if not self.writers.acquire(wait):
            deadlines.check()
            raise Unavailable("the metadata database is busy; retry later")
        try:
            with self._process_turn():
                deadlines.check()  # the call may have run out while the other process wrote
                with self.database.transaction():
                    yield
        finally:
            self.writers.release()

    @contextmanager
    def _process_turn(self) -> Iterator[None]:
        """The other processes' writers stay out (a shared SQLite file; see ``writers``)."""
        lock = self.process_writers
        if lock is None:
            yield
            return
        try:
            lock.acquire()
        except OSError:
            log.exception("cannot take the SQLite writers' lock %s", lock.path)
            raise Unavailable("the metadata database cannot be written; retry later") from None
        try:
            yield
        finally:
            lock.release()

    def read_transaction(self) -> AbstractContextManager[Any]:
        """Begin a read-only transaction that sees one snapshot for all its statements."""
        if self.dialect == "sqlite":
            return self.database.transaction(lock_type="DEFERRED")
        return self.database.transaction(isolation_level="REPEATABLE READ READ ONLY")

    def close(self) -> None:
        """Close every pooled connection, idle or in use."""
        pool: Any = self.database
        pool.close_all()
        if self.process_writers is not None:
            self.process_writers.close()


def open_database(url: str, *, max_connections: int, shared: bool = False) -> Backend:
    """Parse a database URL into a pooled peewee database (not yet connected; a SQLite file
    that another process holds raises :class:`DatabaseInUseError`).

    ``shared``: SQLite is opened through the default ``unix`` VFS (the WAL index in the
    ``-shm`` file), so the workers of one supervisor share the file; the supervisor checked
    that no other process holds it, so there is no such check here. Ignored for PostgreSQL.

    ``sqlite:///relative/path.db``, ``sqlite:////absolute/path.db``,
    ``postgresql://user:pass@host:port/dbname`` (``postgres://`` too; query parameters are
    passed to the driver, e.g. ``?sslmode=require``).
    """
    scheme, sep, _ = url.partition("://")
    if not sep:
        raise ValueError(f"database URL {url!r} has no scheme (sqlite:/// or postgresql://)")
    if scheme == "sqlite":
        database = _sqlite(url, max_connections, shared=shared)
        writers = ProcessLock(Path(f"{sqlite_path(url)}-writers")) if shared else None
        return Backend(database, "sqlite", process_writers=writers)
    if scheme in ("postgresql", "postgres"):
        return Backend(_postgresql(url, max_connections), "postgresql")
    raise ValueError(
        f"unsupported database URL scheme {scheme!r}: use sqlite:///path or postgresql://"
    )


def sqlite_path(url: str) -> str:
    """The file a ``sqlite:///`` URL names (``ValueError`` if it names none)."""
    prefix = "sqlite:///"
    if not url.startswith(prefix):
        raise ValueError(f"SQLite URL {url!r} must look like sqlite:///relative/path.db")
    path = url[len(prefix) :]
    if not path or path == ":memory:" or path.endswith("/"):
        raise ValueError(f"SQLite URL {url!r} must name a database file")
    return path


def _sqlite(url: str, max_connections: int, *, shared: bool = False) -> peewee.Database:
    path = sqlite_path(url)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    if not shared:
        _refuse_if_held(path)
    database: peewee.Database = PooledSqliteDatabase(
        sqlite_vfs_uri(path, SHARED_VFS if shared else EXCLUSIVE_VFS),
        max_connections=max_connections,
        stale_timeout=STALE_TIMEOUT_S,
        timeout=POOL_WAIT_TIMEOUT_S,
        pragmas={
            "journal_mode": "wal",
            "busy_timeout": SQLITE_BUSY_TIMEOUT_S * 1000,
            "foreign_keys": 1,
            "synchronous": "normal",
            # LIKE is ASCII case-insensitive by default; filters are case-sensitive.
            "case_sensitive_like": 1,
        },
        lock_type="IMMEDIATE",
        check_same_thread=False,
        autoconnect=False,
        uri=True,
    )
    return database


def sqlite_vfs_uri(path: str, vfs: str = EXCLUSIVE_VFS) -> str:
    """A ``file:`` URI opening ``path`` through SQLite's ``unix-excl`` VFS (or ``vfs``).

    In WAL mode SQLite normally keeps the WAL index in a ``-shm`` file mapped into memory; a
    page of that mapping that cannot be written (the file made immutable, the filesystem
    remounted read-only or out of space) kills the process with SIGBUS. ``unix-excl`` keeps the
    index in heap memory instead, so such faults become I/O errors (UNAVAILABLE). The price:
    the database file is locked by one server process at a time (its connections share it).
    The workers of ``--workers N`` give that up (``unix``, :data:`SHARED_VFS`) to share the
    file; a fault that raises SIGBUS then kills one worker, which its supervisor restarts.
    """
    return f"file:{quote(str(Path(path).resolve()))}?vfs={vfs}"


def _refuse_if_held(path: str) -> None:
    """Raise :class:`DatabaseInUseError` if another process holds the file: it would keep it
    for its whole life, so waiting (as for a database that is down) would never end."""
    try:
        probe = sqlite3.connect(sqlite_vfs_uri(path), uri=True, timeout=SQLITE_HELD_WAIT_S)
    except sqlite3.Error:
        return  # opening the store reports it
    try:
        probe.execute("SELECT count(*) FROM sqlite_master").fetchall()
    except sqlite3.Error as exc:
        if exc.sqlite_errorcode & 0xFF != sqlite3.SQLITE_BUSY:
            return  # not a lock: opening the store reports it
        raise DatabaseInUseError(
            f"another process holds the SQLite database at {Path(path).resolve()}; "
            "SQLite serves one process, use PostgreSQL for several"
        ) from None
    finally:
        probe.close()


def _postgresql(url: str, max_connections: int) -> peewee.Database:
    parts = urlsplit(url)
    dbname = unquote(parts.path.lstrip("/"))
    if not dbname:
        raise ValueError(f"PostgreSQL URL {url!r} must name a database: postgresql://.../dbname")
    params: dict[str, Any] = {"connect_timeout": PG_CONNECT_TIMEOUT_S}
    if parts.hostname:
        params["host"] = parts.hostname
    if parts.port:
        params["port"] = parts.port
    if parts.username:
        params["user"] = unquote(parts.username)
    if parts.password:
        params["password"] = unquote(parts.password)
    params.update(parse_qsl(parts.query))
    database: peewee.Database = _PostgresPool(
        dbname,
        max_connections=max_connections,
        stale_timeout=STALE_TIMEOUT_S,
        timeout=POOL_WAIT_TIMEOUT_S,
        autoconnect=False,
        **params,
    )
    return database


class _PostgresPool(PooledPostgresqlDatabase):  # type: ignore[misc]  # peewee is untyped
    """A pool that pings a connection before reuse only if it sat idle for a while.

    peewee's pool sends ``SELECT 1`` on every check-out: a round trip per call, on the
    server's hottest reads. A connection checked in less than :data:`PG_PING_AFTER_IDLE_S`
    ago is reused without one (HikariCP's "alive bypass window", 500 ms by default) unless
    its socket has something to read: an idle connection receives nothing, except the
    FATAL message and end of stream of a terminated backend or a server shutting down, so
    those are still found (by the ping, which then discards the connection).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._checked_in: dict[int, float] = {}  # id(connection) -> when it came back

    def _can_reuse(self, conn: Any) -> bool:
        reusable = bool(super()._can_reuse(conn))
        if reusable:
            self._checked_in[id(conn)] = time.monotonic()
        return reusable

    def _is_closed(self, conn: Any) -> bool:
        since = self._checked_in.pop(id(conn), None)
        if (
            since is not None
            and time.monotonic() - since < PG_PING_AFTER_IDLE_S
            and not conn.closed
            and self._adapter.txn_status(conn) == self._adapter.txn_idle
            and not _readable(conn)
        ):
            return False
        return bool(super()._is_closed(conn))

    def close_all(self) -> None:
        super().close_all()
        self._checked_in.clear()


def _readable(conn: Any) -> bool:
    """True if the connection's socket has data or an end of stream waiting (or is gone)."""
    try:
        poller = select.poll()
        poller.register(conn.fileno(), select.POLLIN | select.POLLERR | select.POLLHUP)
        return bool(poller.poll(0))
    except (OSError, ValueError):
        return True
