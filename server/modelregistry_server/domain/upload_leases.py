"""Leases on uploads: one writer per upload across replicas, taken over once it expires.

The server process writing an upload holds its lease: a holder id (one per process), a
fencing token raised at every acquisition and an expiry. Opening a stream acquires it under
the session row's lock; a live lease of another holder refuses the stream with ABORTED
``UPLOAD_BUSY`` (metadata ``retry_after_seconds``). Each committed piece extends it (in the
same UPDATE that advances ``committed_size``, fenced by the token), and so does a stream
still receiving a long piece, at most every third of the lease. When a stream ends without
publishing, its lease is released (expiry now), so a client resuming elsewhere at once is
not kept waiting. A writer whose replica died leaves its lease to expire; then any replica
takes the upload over from its last committed piece. A holder that is known to be dead (a
process of this host and pid namespace that no longer runs: a restarted server, a worker the
supervisor replaced) does not make anyone wait for its expiry.

Fencing: the token guards every metadata write of a writer (advance, renewal, publish), so a
writer that lost its lease changes nothing in the database. Blob-store bytes cannot carry the
token; instead, before each chunk and piece, a writer whose lease was last extended a third of
a lease ago or more renews it in the database first, and stops if that is refused. A takeover
needs a whole lease without extension, so a writer waking from a pause (its monotonic clock
ran on) always asks the database before it writes another byte (see docs/design.md "Uploads
that survive their replica").
"""

from __future__ import annotations

import math
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Protocol

from .entities import UploadSession
from .errors import Aborted, Reason
from .ports import Transactions

DEFAULT_LEASE = timedelta(seconds=30)
# A stream still receiving renews its lease once this fraction of it passed without an
# extension (and before writing more bytes after that).
RENEW_FRACTION = 1 / 3


class LeaseStore(Transactions, Protocol):
    """What the lease keeper writes."""

    def extend_upload_lease(
        self, tenant: str, upload_id: str, lease_token: int, expire: datetime
    ) -> bool: ...


def process_holder() -> str:
    """A holder id for one server of this process: ``host/pid namespace/pid/start time/random``
    (the start time tells a reused pid apart; the random part servers in one process), or
    ``host/pid/random`` where ``/proc`` cannot say."""
    pid, tag = os.getpid(), secrets.token_hex(4)
    namespace, started = _pid_namespace(), _start_time(pid)
    if namespace is None or started is None:
        return f"{socket.gethostname()}/{pid}/{tag}"
    return f"{socket.gethostname()}/{namespace}/{pid}/{started}/{tag}"


def holder_known_dead(holder: str) -> bool:
    """Whether ``holder`` is a process of this host and pid namespace that no longer runs (its
    pid is gone or now belongs to a process started at another time). Anything this process
    cannot see (another host or container, a holder id without a start time) is not known."""
    parts = holder.split("/")
    if len(parts) != 5 or parts[0] != socket.gethostname() or parts[1] != _pid_namespace():
        return False
    try:
        pid = int(parts[2])
    except ValueError:
        return False
    return _start_time(pid) != parts[3]


def _pid_namespace() -> str | None:
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return None


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (``/proc/<pid>/stat`` field 22)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            fields = stat.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return fields[19].decode() if len(fields) > 19 else None


def busy(session: UploadSession, now: datetime) -> Aborted:
    """ABORTED UPLOAD_BUSY for a session another live writer holds."""
    assert session.lease_expire is not None
    left = max(0.0, (session.lease_expire - now).total_seconds())
    return Aborted(
        f"upload {session.upload_id!r} is being written by another server; its lease expires "
        f"in {left:.1f} s, resume after that",
        reason=Reason.UPLOAD_BUSY,
        metadata={"retry_after_seconds": str(max(1, math.ceil(left)))},
    )


def lease_lost(upload_id: str) -> Aborted:
    """ABORTED UPLOAD_LEASE_LOST: this writer's lease expired and was (or may be) taken."""
    return Aborted(
        f"upload {upload_id!r}: this server's lease on it expired (another server may have "
        "taken it over); resume it",
        reason=Reason.UPLOAD_LEASE_LOST,
    )


def held_by_other(session: UploadSession, holder: str, now: datetime) -> bool:
    """Whether another holder's lease on the session is still live at ``now`` (a holder known
    to be dead holds nothing)."""
    return (
        bool(session.lease_holder)
        and session.lease_holder != holder
        and session.lease_expire is not None
        and session.lease_expire > now
        and not holder_known_dead(session.lease_holder)
    )


class LeaseKeeper:
    """The lease of one stream: renews it while data arrives (checking it is still ours
    before more bytes are written) and releases it at the end."""

    def __init__(
        self,
        store: LeaseStore,
        session: UploadSession,
        ttl: timedelta,
        clock: Callable[[], datetime],
        *,
        acquired_at: float,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._tenant = session.tenant
        self.upload_id = session.upload_id
        self.token = session.lease_token
        self._ttl = ttl.total_seconds()
        self._clock = clock
        self._mono = monotonic
        self._lock = threading.Lock()
        self._renew_at = 0.0
        self._extended(acquired_at)

    def expiry(self) -> datetime:
        """The expiry to write now (by the shared clock)."""
        return self._clock() + timedelta(seconds=self._ttl)

    def _extended(self, started: float) -> None:
        """The lease was extended by a write that started at monotonic time ``started``."""
        with self._lock:
            self._renew_at = max(self._renew_at, started + self._ttl * RENEW_FRACTION)

    def now(self) -> float:
        """Monotonic time, to pass to :meth:`extended` after a write that extends the lease."""
        return self._mono()

    def extended(self, started: float) -> None:
        """A piece's advance (which extends the lease) succeeded; it started at ``started``."""
        self._extended(started)

    def check(self) -> None:
        """Before writing more bytes: if a third of the lease passed since it was last
        extended, renew it; raise UPLOAD_LEASE_LOST if another writer holds it now."""
        now = self._mono()
        with self._lock:
            renew = self._renew_at
        if now >= renew:
            with self._store.transaction():
                ok = self._store.extend_upload_lease(
                    self._tenant, self.upload_id, self.token, self.expiry()
                )
            if not ok:
                raise lease_lost(self.upload_id)
            self._extended(now)

    def release(self) -> None:
        """Let another server take the upload at once (expiry now), if still ours."""
        with self._store.transaction():
            self._store.extend_upload_lease(self._tenant, self.upload_id, self.token, self._clock())
