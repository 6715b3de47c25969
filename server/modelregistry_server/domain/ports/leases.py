"""Named leases in the metadata database: one holder at a time across processes and replicas."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol


class LeaseBook(Protocol):
    """A table of named leases, each with a holder and an expiry.

    A lease belongs to one holder until its expiry; the holder extends it by acquiring it
    again before then; once it has expired anyone may take it over. Times are the caller's
    clock (every process sharing the database must keep roughly the same time; the lease
    length should dwarf their skew)."""

    def acquire_lease(self, name: str, holder: str, now: datetime, expire: datetime) -> bool:
        """Take ``name`` for ``holder`` until ``expire`` if it is free, expired at ``now`` or
        held by ``holder`` already (a renewal); True if ``holder`` now holds it."""
        ...

    def release_lease(self, name: str, holder: str) -> None:
        """Give ``name`` up if ``holder`` holds it (a no-op otherwise)."""
        ...

    def lease_holder(self, name: str, now: datetime) -> str | None:
        """Who holds ``name`` at ``now`` (None if nobody does or the lease expired)."""
        ...
