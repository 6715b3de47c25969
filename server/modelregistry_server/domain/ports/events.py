"""The event log: the append-only, hash-chained record of change (see ``domain/events.py``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from ..entities import Page
from ..events import Event, EventHead
from .queries import ListQuery
from .wakeups import EventWakeups


@dataclass(frozen=True)
class EventScope:
    """Which events of a tenant a listing may return: all of them (``owners`` None, for
    registry.admin), or the changes of the models that have no policy or that bind one of
    ``owners`` as owner (and of what those models hold)."""

    owners: frozenset[str] | None = None

    @property
    def key(self) -> str:
        """A stable text form (page tokens are bound to it)."""
        return "all" if self.owners is None else "owned:" + ",".join(sorted(self.owners))


ALL_EVENTS = EventScope()


class EventLog(Protocol):
    """Events per tenant, numbered and chained in commit order."""

    def append_event(self, event: Event) -> Event:
        """Append ``event`` to its tenant's chain inside the current transaction (opening one
        if there is none) and return it with ``sequence``, ``prev_hash`` and ``hash`` set.

        It takes the tenant's head row and holds it until commit, so call it as the last
        statement of the transaction: then sequence order is commit order and no lock is
        taken after it.
        """
        ...

    def list_events(self, tenant: str, query: ListQuery, scope: EventScope) -> Page[Event]:
        """One keyset page of the tenant's events matching the query."""
        ...

    def read_events(self, tenant: str, after: int, limit: int) -> list[Event]:
        """Up to ``limit`` events with sequence greater than ``after``, in sequence order."""
        ...

    def event_head(self, tenant: str) -> EventHead | None:
        """The tenant's chain head, or None if it never had an event."""
        ...

    def event_tenants(self) -> list[str]:
        """Every tenant that has a chain head, sorted."""
        ...

    def event_wakeups(self) -> EventWakeups:
        """Wake-ups after events commit (this process's, and other replicas' where the
        database can tell); waiters read the table again when it moves."""
        ...

    def prune_events(self, before: datetime) -> dict[str, int]:
        """Delete every event older than ``before`` (in every tenant) and move each pruned
        chain's anchor to its oldest kept event, in one transaction; returns the number of
        events removed per tenant (tenants with none removed are left out)."""
        ...
