"""Use cases of the event log: list, verify, record refused calls, prune (see :mod:`.events`)."""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, Protocol

from .entities import Page
from .errors import InvalidArgument, OutOfRange, Reason
from .events import Event, EventHead, EventKind, Verification, system_change, verify_chain
from .filter_parser import parse_filter
from .filtering import And, Comparison, Expr, Op
from .identity import Caller
from .listing import EVENT_DEFAULT_ORDER, EVENT_SCHEMA, PageTokens, parse_order_by
from .paging import Pager
from .ports import ListQuery, Transactions
from .ports.events import ALL_EVENTS, EventLog, EventScope

log = logging.getLogger(__name__)

VERIFY_BATCH = 1000
WATCH_BATCH = 100  # events a watch holds in memory at once
DEFAULT_WATCH_POLL_S = 1.0
# Access events per principal: a burst of this many, then one per ACCESS_REFILL_S seconds;
# beyond that they are counted and the count rides on the principal's next recorded one.
ACCESS_BURST = 60
ACCESS_REFILL_S = 1.0
_MAX_TRACKED = 10_000  # principals whose budget is remembered (oldest forgotten first)


class EventStore(Transactions, EventLog, Protocol):
    """The ports the event-log use cases need."""


class AccessBudget:
    """A token bucket per principal, so refused calls cannot turn into unbounded writes."""

    def __init__(
        self,
        burst: int = ACCESS_BURST,
        refill_s: float = ACCESS_REFILL_S,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._burst, self._refill, self._now = burst, refill_s, monotonic
        self._lock = threading.Lock()
        # principal -> (tokens, at, suppressed)
        self._buckets: OrderedDict[tuple[str, str], tuple[float, float, int]] = OrderedDict()

    def take(self, tenant: str, principal: str) -> int | None:
        """None if this access is over budget (it is counted); else how many were suppressed
        since the last recorded one."""
        key, now = (tenant, principal), self._now()
        with self._lock:
            tokens, at, suppressed = self._buckets.pop(key, (float(self._burst), now, 0))
            tokens = min(float(self._burst), tokens + (now - at) / self._refill)
            if tokens < 1:
                self._buckets[key] = (tokens, now, suppressed + 1)
                result = None
            else:
                self._buckets[key] = (tokens - 1, now, 0)
                result = suppressed
            while len(self._buckets) > _MAX_TRACKED:
                self._buckets.popitem(last=False)
        return result


class Audit:
    """Reading, verifying and pruning the event log; recording refused and failed calls."""

    def __init__(
        self,
        store: EventStore,
        *,
        page_tokens: PageTokens | None = None,
        clock: Callable[[], datetime],
        retention: timedelta | None = None,
        budget: AccessBudget | None = None,
        watch_poll_s: float = DEFAULT_WATCH_POLL_S,
    ) -> None:
        self._store = store
        self._poll = watch_poll_s
        self._tokens = page_tokens or PageTokens.random()
        self._clock = clock
        self._retention = retention  # None: keep events forever
        self._budget = budget or AccessBudget()

    def list_events(
        self,
        caller: Caller,
        *,
        page_size: int = 0,
        page_token: str = "",
        filter_text: str = "",
        order_by: str = "",
    ) -> tuple[list[Event], str]:
        """One page of the tenant's events (registry.admin) or of its models' changes."""
        pager = Pager(page_size, page_token, self._tokens, tenant=caller.tenant)
        expr = parse_filter(filter_text, EVENT_SCHEMA)
        order = parse_order_by(order_by, EVENT_SCHEMA, EVENT_DEFAULT_ORDER)
        scope = self.scope_of(caller)
        cursor = pager.cursor("events", filter_text, order, scope.key)
        query = ListQuery(expr, order, True, pager.size, cursor)
        page: Page[Event] = self._store.list_events(caller.tenant, query, scope)
        return pager.reply(page)

    @staticmethod
    def scope_of(caller: Caller) -> EventScope:
        """What of the tenant's log ``caller`` may read: all of it with registry.admin, else
        the changes of the models it owns (a model without a policy: everyone does)."""
        return ALL_EVENTS if caller.is_admin else EventScope(caller.members)

    def verify(self, caller: Caller) -> Verification:
        """Walk the caller's tenant's chain (the caller holds registry.admin)."""
        return self.verify_tenant(caller.tenant)

    def verify_tenant(self, tenant: str) -> Verification:
        """Walk one tenant's chain from its anchor to the head read first (events appended
        meanwhile are left for the next walk). A walk that pruning overtook (the anchor
        moved) is repeated once."""
        head = self._store.event_head(tenant)
        result = self._walk(tenant, head)
        if not result.ok and head is not None:
            again = self._store.event_head(tenant)
            if again is not None and again.anchor_sequence != head.anchor_sequence:
                result = self._walk(tenant, again)
        return result

    def _walk(self, tenant: str, head: EventHead | None) -> Verification:
        upto = None if head is None else head.last_sequence
        result = verify_chain(tenant, head, self._all_events(tenant, upto))
        if result.ok and upto is not None:
            result = self._nothing_beyond(tenant, result, upto)
        return result

    def verify_all(self) -> list[Verification]:
        """Walk every tenant's chain."""
        return [self.verify_tenant(t) for t in self._store.event_tenants()]

    def _nothing_beyond(self, tenant: str, result: Verification, upto: int) -> Verification:
        """Fail if a row follows the head that no append made: an event committed after the
        walk began has moved the head (read after the row) past it."""
        beyond = self._store.read_events(tenant, upto, 1)
        if not beyond:
            return result
        head = self._store.event_head(tenant)
        sequence = beyond[0].sequence
        if head is not None and head.last_sequence >= sequence:
            return result
        return replace(result, failed_sequence=sequence, reason="event follows the chain head")

    def _all_events(self, tenant: str, upto: int | None) -> Iterator[Event]:
        """The tenant's events in sequence order, up to ``upto`` (None: every one)."""
        after = 0
        while True:
            batch = self._store.read_events(tenant, after, VERIFY_BATCH)
            for event in batch:
                if upto is not None and event.sequence > upto:
                    return
                yield event
            if len(batch) < VERIFY_BATCH:
                return
            after = batch[-1].sequence

    def watch(
        self,
        caller: Caller,
        filter_text: str,
        after_cursor: str,
        cancelled: Callable[[], bool] = lambda: False,
    ) -> Iterator[tuple[Event | None, str]]:
        """The events after ``after_cursor`` that match the filter, in sequence order, then
        new ones as they commit, as ``(event, cursor)``; ``(None, cursor)`` reports progress
        without an event (first at the start, then whenever non-matching events were
        passed), so a client resuming from the last cursor it got neither misses nor repeats
        anything. ``""`` starts at the current end of the log, ``events/0`` at its start.

        At most :data:`WATCH_BATCH` events are held at a time: a slow reader is served from
        the table at its own pace. Ends when ``cancelled()``; waits on the store's event
        wake-ups (this process's commits, and other replicas' where the database notifies)
        and polls every ``watch_poll_s`` for what no wake-up announced.
        """
        expr = parse_filter(filter_text, EVENT_SCHEMA)
        scope = self.scope_of(caller)
        tenant = caller.tenant
        head = self._store.event_head(tenant)
        last = 0 if head is None else head.last_sequence
        position = last if not after_cursor else _cursor_sequence(after_cursor)
        if position > last:
            raise InvalidArgument.field("after_cursor", f"names an event after the last ({last})")
        if head is not None and position + 1 < head.anchor_sequence:
            raise OutOfRange(
                f"events up to {head.anchor_sequence - 1} were removed by retention; resume "
                f"from events/{head.anchor_sequence - 1}",
                reason=Reason.EVENTS_PRUNED,
                metadata={"oldest_cursor": f"events/{head.anchor_sequence - 1}"},
            )
        yield None, f"events/{position}"
        wakeups = self._store.event_wakeups()
        while not cancelled():
            generation = wakeups.generation()
            head = self._store.event_head(tenant)
            end = 0 if head is None else head.last_sequence
            if end <= position:
                wakeups.wait(generation, self._poll)
                continue
            # Every event up to the head's sequence has committed (the head row is written in
            # the same transaction as its event, after all earlier ones committed).
            for event in self._between(tenant, expr, scope, position, end):
                position = event.sequence
                yield event, event.name
            if position < end:  # passed events the filter or scope left out
                position = end
                yield None, f"events/{position}"

    def _between(
        self, tenant: str, expr: Expr | None, scope: EventScope, after: int, upto: int
    ) -> Iterator[Event]:
        window = And(
            tuple(
                e
                for e in (
                    Comparison("sequence", Op.GT, after),
                    Comparison("sequence", Op.LE, upto),
                    expr,
                )
                if e is not None
            )
        )
        cursor: tuple[object, ...] | None = None
        while True:
            query = ListQuery(window, EVENT_DEFAULT_ORDER, True, WATCH_BATCH, cursor)
            page = self._store.list_events(tenant, query, scope)
            yield from page.items
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def record_access(
        self, caller: Caller, method: str, resource: str, outcome: str, summary: dict[str, Any]
    ) -> None:
        """Record a refused or failed call in a transaction of its own, within the caller's
        budget (:class:`AccessBudget`). Never raises: the call's own error is what counts."""
        suppressed = self._budget.take(caller.tenant, caller.actor)
        if suppressed is None:
            return
        if suppressed:
            summary = {**summary, "suppressed_before": suppressed}
        event = Event(
            tenant=caller.tenant,
            time=self._clock(),
            principal=caller.actor,
            method=method,
            resource=resource,
            kind=EventKind.ACCESS,
            summary=summary,
            request_id=caller.request_id,
            outcome=outcome,
        )
        try:
            with self._store.transaction():
                self._store.append_event(event)
        except Exception:
            log.warning("could not record the access event of %s by %s", method, caller.actor)

    def prune(self) -> int:
        """Remove events older than the retention period; each tenant that lost some records
        a system event saying how many and from when (so pruning is on the record too)."""
        if self._retention is None:
            return 0
        now = self._clock()
        cutoff = now - self._retention
        with self._store.transaction():
            removed = self._store.prune_events(cutoff)
            for tenant, count in sorted(removed.items()):
                summary = {"removed": count, "before": cutoff.isoformat()}
                self._store.append_event(
                    system_change(tenant, "PruneEvents", "events", now, summary)
                )
        return sum(removed.values())


def _cursor_sequence(cursor: str) -> int:
    prefix, _, number = cursor.partition("/")
    if prefix != "events" or not number.isdigit() or len(number) > 18:
        raise InvalidArgument.field("after_cursor", "must be an event name like events/42")
    return int(number)
