"""Driver exceptions to domain errors: outages become ``Unavailable``, the rest ``StoreError``.

Nothing from peewee, sqlite3 or psycopg leaves the adapter: an unreachable or overloaded
database is :class:`~modelregistry_server.domain.errors.Unavailable` (retryable), anything
else unexpected is :class:`StoreError` (a bug, reported as an internal error).
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

import peewee
from playhouse.pool import MaxConnectionsExceeded

from ...domain.errors import DomainError, Unavailable

log = logging.getLogger(__name__)
UNAVAILABLE_MESSAGE = "the metadata database is unavailable; retry later"

# Primary SQLite result codes that mean "busy, out of resources or storage failing".
_SQLITE_OUTAGE_CODES = frozenset(
    {
        5,  # SQLITE_BUSY
        6,  # SQLITE_LOCKED
        7,  # SQLITE_NOMEM
        8,  # SQLITE_READONLY (the file or its directory became unwritable)
        10,  # SQLITE_IOERR
        13,  # SQLITE_FULL
        14,  # SQLITE_CANTOPEN
        15,  # SQLITE_PROTOCOL
    }
)


class StoreError(RuntimeError):
    """An unexpected database error that is not an outage (a bug in the adapter or schema)."""


def driver_error(exc: BaseException) -> BaseException:
    """The driver's exception behind a peewee exception (peewee keeps it as ``orig``)."""
    orig = getattr(exc, "orig", None)
    return orig if isinstance(orig, BaseException) else exc


def _from_psycopg(exc: BaseException) -> bool:
    return type(exc).__module__.split(".")[0] in ("psycopg2", "psycopg")


def is_outage(exc: BaseException) -> bool:
    """True if ``exc`` means the database cannot serve the request now (retry later)."""
    if isinstance(exc, MaxConnectionsExceeded):
        return True
    orig = driver_error(exc)
    if _from_psycopg(orig):
        # OperationalError covers lost connections, shutdowns, deadlocks, serialization
        # failures and cancelled statements; InterfaceError a connection already closed.
        names = {cls.__name__ for cls in type(orig).__mro__}
        return bool(names & {"OperationalError", "InterfaceError"})
    if isinstance(orig, sqlite3.Error):
        code = getattr(orig, "sqlite_errorcode", None)
        return code is not None and code & 0xFF in _SQLITE_OUTAGE_CODES
    return False


@contextmanager
def translated() -> Iterator[None]:
    """Re-raise driver exceptions of the block as ``Unavailable`` or :class:`StoreError`."""
    try:
        yield
    except DomainError:
        raise
    except (peewee.PeeweeException, MaxConnectionsExceeded, sqlite3.Error) as exc:
        raise _translate(exc) from exc
    except Exception as exc:
        if not _from_psycopg(exc):
            raise
        raise _translate(exc) from exc


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and the exceptions it was raised while handling (a failed rollback after a
    failed write must not hide the write's error)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _translate(exc: BaseException) -> Exception:
    outage = next((e for e in _causes(exc) if is_outage(e)), None)
    if outage is not None:
        orig = driver_error(outage)
        # Driver text names hosts, ports, users and databases: it goes to the log only.
        log.warning("metadata database unavailable: %s: %s", type(orig).__name__, orig)
        return Unavailable(UNAVAILABLE_MESSAGE)
    orig = driver_error(exc)
    return StoreError(f"unexpected metadata database error: {type(orig).__name__}: {orig}")
