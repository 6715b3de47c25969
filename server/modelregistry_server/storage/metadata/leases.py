"""Named leases (the ``LeaseBook`` port): ``leases``, one row per name (migration 13).

Taking a lease is one upsert whose update applies only if the row is the caller's or has
expired, so two processes racing for a free or expired lease cannot both win: the database
serialises the statements (SQLite's write lock, PostgreSQL's row lock on the conflict).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from .core import StoreCore
from .rows import to_micros


class LeaseRows(StoreCore):
    """``leases``: name, holder, expire_time (microseconds since the epoch)."""

    def acquire_lease(self, name: str, holder: str, now: datetime, expire: datetime) -> bool:
        """Take or renew ``name`` for ``holder`` (see the port); True if it holds it now."""
        db: Any = self._db
        p = db.param
        with self._write():
            won = db.execute_sql(
                f"INSERT INTO leases (name, holder, expire_time) VALUES ({p}, {p}, {p})"
                " ON CONFLICT (name) DO UPDATE"
                " SET holder = excluded.holder, expire_time = excluded.expire_time"
                f" WHERE leases.holder = excluded.holder OR leases.expire_time <= {p}"
                " RETURNING holder",
                (name, holder, to_micros(expire), to_micros(now)),
            ).fetchall()
        return bool(won)

    def release_lease(self, name: str, holder: str) -> None:
        """Delete ``name``'s row if ``holder`` holds it."""
        db: Any = self._db
        p = db.param
        with self._write():
            db.execute_sql(f"DELETE FROM leases WHERE name = {p} AND holder = {p}", (name, holder))

    def lease_holder(self, name: str, now: datetime) -> str | None:
        """The holder of an unexpired ``name``, else None."""
        db: Any = self._db
        p = db.param
        with self._read():
            row = db.execute_sql(
                f"SELECT holder FROM leases WHERE name = {p} AND expire_time > {p}",
                (name, to_micros(now)),
            ).fetchone()
        return None if row is None else str(row[0])
