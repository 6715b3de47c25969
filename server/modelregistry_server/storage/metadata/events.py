"""The event log (the ``EventLog`` port): ``events`` rows chained under ``event_heads``.

Appending takes the tenant's head row (a row lock on PostgreSQL, the write lock SQLite's
``BEGIN IMMEDIATE`` already holds), so two transactions of one tenant append one after the
other and the later one commits later: sequence order is commit order, which a watcher
catching up by sequence relies on. Use cases append last in their transaction, so the head is
never held while another lock is awaited. On PostgreSQL the append is one statement (the
database numbers and hashes the event), on SQLite three.
"""

from __future__ import annotations

import json
import threading
from datetime import datetime
from typing import Any

import peewee

from ...domain.entities import Page
from ...domain.events import Event, EventHead, EventKind, canonical_around_sequence, chain_hash
from ...domain.listing import EVENT_SCHEMA
from ...domain.policies import Role
from ...domain.ports import ListQuery
from ...domain.ports.events import EventScope
from . import statements
from .core import StoreCore, check_limit, dicts, first, tuples
from .database import Backend
from .pages import fetch_page
from .rows import from_micros, to_micros
from .sql_filters import Collection, Column
from .statements import Statement
from .wakeups import CHANNEL, LocalWakeups, PostgresWakeups

# The columns of an event row that PostgreSQL's one-statement append fills in itself.
_CHAINED = ("sequence", "prev_hash", "hash")


def _same(value: Any) -> Any:
    return value


def event_collection(e: Any) -> Collection:
    """How ListEvents filters map to the columns of ``events``."""
    plain = ("sequence", "kind", "principal", "method", "resource", "model_id", "outcome")
    columns = {name: Column(getattr(e, name)) for name in plain}
    columns |= {"event_time": Column(e.event_time), "request_id": Column(e.request_id)}
    return Collection(EVENT_SCHEMA, e, columns, {}, {})


def _columns(event: Event) -> dict[str, Any]:
    return {
        "tenant": event.tenant,
        "sequence": event.sequence,
        "event_time": to_micros(event.time),
        "kind": event.kind.value,
        "principal": event.principal,
        "method": event.method,
        "resource": event.resource,
        "model_id": event.model_id,
        "outcome": event.outcome,
        "request_id": event.request_id,
        "etag_before": event.etag_before,
        "etag_after": event.etag_after,
        "summary": json.dumps(event.summary, sort_keys=True, separators=(",", ":")),
        "prev_hash": event.prev_hash,
        "hash": event.hash,
    }


def _entity(row: dict[str, Any]) -> Event:
    try:
        summary = json.loads(row["summary"])
    except ValueError:
        summary = {"unreadable": row["summary"]}  # a tampered row: verification says so
    try:
        kind = EventKind(row["kind"])
    except ValueError:
        kind = EventKind.ACCESS
    return Event(
        tenant=row["tenant"],
        time=from_micros(row["event_time"]),
        principal=row["principal"],
        method=row["method"],
        resource=row["resource"],
        kind=kind,
        summary=summary if isinstance(summary, dict) else {"value": summary},
        request_id=row["request_id"],
        etag_before=row["etag_before"],
        etag_after=row["etag_after"],
        outcome=row["outcome"],
        sequence=row["sequence"],
        prev_hash=row["prev_hash"],
        hash=row["hash"],
    )


class EventRows(StoreCore):
    """``events`` and ``event_heads``."""

    def __init__(self, backend: Backend) -> None:
        super().__init__(backend)
        self._pending = threading.local()  # this thread's transaction appended
        self._wakeups_lock = threading.Lock()
        self._wakeups: LocalWakeups | None = None  # made on first use (a listener connection)
        self._closed = False
        h, param = self._t.event_heads, self._db.param
        head, tenant = statements.quoted(h), statements.column(h, "tenant")
        last_sequence, last_hash = (statements.column(h, n) for n in ("last_sequence", "last_hash"))
        self._bump_head = (
            f"UPDATE {head} SET {last_sequence} = {last_sequence} + 1 WHERE {tenant} = {param}"
            f" RETURNING {last_sequence}, {last_hash}"
        )
        self._chain_head = f"UPDATE {head} SET {last_hash} = {param} WHERE {tenant} = {param}"
        self._append_in_one = backend.dialect == "postgresql"

    def _transaction_ended(self) -> None:
        super()._transaction_ended()
        if getattr(self._pending, "appended", False):
            self._pending.appended = False
            # A rolled-back transaction also wakes this process's watchers: they read, find
            # nothing new and wait again (cheaper than telling commit from rollback here).
            # Before anything asked for the wake-ups nobody waits, so none are made here: a
            # store that never serves a watch or a dispatcher opens no listening session.
            wakeups = self._wakeups
            if wakeups is not None:
                wakeups.bump()

    def event_wakeups(self) -> LocalWakeups:
        """This store's wake-ups: local on SQLite, local plus LISTEN on PostgreSQL."""
        with self._wakeups_lock:
            if self._wakeups is None:
                if self._backend.dialect == "postgresql" and not self._closed:
                    self._wakeups = PostgresWakeups.for_database(self._db)
                else:
                    self._wakeups = LocalWakeups()
            return self._wakeups

    def close(self) -> None:
        """Stop the listener, then close the connections."""
        with self._wakeups_lock:
            wakeups, self._wakeups = self._wakeups, None
            self._closed = True  # later callers get local wake-ups: no listener nobody closes
        if wakeups is not None:
            wakeups.close()
        super().close()

    def append_event(self, event: Event) -> Event:
        """Number, chain and insert ``event`` in the current transaction (see the module)."""
        with self._write():
            append = self._append_chained if self._append_in_one else self._append_in_three
            if not append(event):  # the tenant's first event
                h = self._t.event_heads
                h.insert(
                    tenant=event.tenant,
                    last_sequence=0,
                    last_hash="",
                    anchor_sequence=1,
                    anchor_hash="",
                ).on_conflict(action="NOTHING", conflict_target=[h.tenant]).execute()
                append(event)
            self._pending.appended = True
        return event

    def _append_in_three(self, event: Event) -> bool:
        """Bump the head, insert the event row, move the head to its hash; False if the
        tenant has no head yet."""
        found = self._fetch(self._bump_head, [event.tenant])
        if not found:
            return False
        event.sequence, event.prev_hash = int(found[0][0]), str(found[0][1])
        event.hash = chain_hash(event.prev_hash, event)
        self._insert_row(self._t.events, _columns(event))
        self._run(self._chain_head, [event.hash, event.tenant])
        return True

    def _append_chained(self, event: Event) -> bool:
        """The same in one PostgreSQL statement, which numbers the event and computes its
        hash (``sha256`` of :func:`canonical_around_sequence`'s parts around the number): the
        head's row lock, taken here, is held until commit, and every writer of the tenant
        queues for it, so nothing but the commit follows. The head's update also notifies
        every LISTEN session when (and only if) the transaction commits. The hash is checked
        against the domain's before the transaction goes on. False if the tenant has no head
        yet."""
        columns = _columns(event)
        for chained in _CHAINED:
            del columns[chained]
        statement = self._chained_statement(tuple(columns))
        before, after = canonical_around_sequence(event)
        values = [event.tenant, before, after, *columns.values(), event.tenant, CHANNEL]
        found = self._fetch(statement.sql, statement.params(values))
        if not found:
            return False
        event.sequence, event.prev_hash, event.hash = int(found[0][0]), *map(str, found[0][1:])
        if event.hash != chain_hash(event.prev_hash, event):
            raise RuntimeError(f"the database hashed event {event.sequence} differently")
        return True

    def _chained_statement(self, names: tuple[str, ...]) -> Statement:
        key = ("append-chained", *names)
        statement = self._statements.get(key)
        if statement is not None:
            return statement
        e, h, param = self._t.events, self._t.event_heads, self._db.param
        head, tenant = statements.quoted(h), statements.column(h, "tenant")
        last_sequence, last_hash = (statements.column(h, n) for n in ("last_sequence", "last_hash"))
        chain_columns = ", ".join(statements.column(e, n) for n in _CHAINED)
        columns = ", ".join(statements.column(e, n) for n in names)
        values = ", ".join(param for _ in names)
        digest = (
            f"encode(sha256(convert_to(prev, 'UTF8') || decode('0a', 'hex') || {param}::bytea"
            f" || convert_to(seq::text, 'UTF8') || {param}::bytea), 'hex')"
        )
        statement = Statement(
            f"WITH taken AS (SELECT {last_sequence} + 1 AS seq, {last_hash} AS prev"
            f" FROM {head} WHERE {tenant} = {param} FOR UPDATE),"
            f" chained AS (SELECT seq, prev, {digest} AS hash FROM taken),"
            f" appended AS (INSERT INTO {statements.quoted(e)} ({columns}, {chain_columns})"
            f" SELECT {values}, seq, prev, hash FROM chained),"
            f" moved AS (UPDATE {head} SET {last_sequence} = chained.seq,"
            f" {last_hash} = chained.hash FROM chained WHERE {head}.{tenant} = {param}"
            f" RETURNING pg_notify({param}, {head}.{tenant}))"
            f" SELECT seq, prev, hash FROM chained, moved",
            (
                _same,
                _same,
                _same,
                *(statements.converter(e, n) for n in names),
                _same,
                _same,
            ),
        )
        self._statements[key] = statement
        return statement

    def list_events(self, tenant: str, query: ListQuery, scope: EventScope) -> Page[Event]:
        """One keyset page of the tenant's events matching the query."""
        e, m, mm = self._t.events, self._t.models, self._t.model_members
        conditions: list[Any] = []
        if scope.owners is not None:
            owning = mm.select(mm.model_pk).where(
                mm.tenant == tenant,
                mm.member.in_(sorted(scope.owners)),
                mm.role == Role.OWNER.value,
            )
            owned = m.select(m.model_id).where(
                m.tenant == tenant, m.policy.is_null() | m.id.in_(owning)
            )
            conditions = [e.kind == EventKind.CHANGE.value, e.model_id.in_(owned)]
        with self._read():
            found, cursor = fetch_page(
                event_collection(e), tenant, query, now_us=0, scope=conditions
            )
        return Page(items=[_entity(r) for r in found], next_cursor=cursor)

    def read_events(self, tenant: str, after: int, limit: int) -> list[Event]:
        """Up to ``limit`` events after sequence ``after``, in sequence order."""
        check_limit(limit)
        e = self._t.events
        with self._read():
            found = dicts(
                e.select()
                .where(e.tenant == tenant, e.sequence > after)
                .order_by(e.sequence)
                .limit(limit)
            )
        return [_entity(r) for r in found]

    def event_head(self, tenant: str) -> EventHead | None:
        """The tenant's chain head, or None."""
        h = self._t.event_heads
        with self._read():
            row = first(h.select().where(h.tenant == tenant))
        if row is None:
            return None
        return EventHead(
            tenant,
            row["last_sequence"],
            row["last_hash"],
            row["anchor_sequence"],
            row["anchor_hash"],
        )

    def event_tenants(self) -> list[str]:
        """Every tenant with a chain head, sorted."""
        h = self._t.event_heads
        with self._read():
            return [str(t) for (t,) in tuples(h.select(h.tenant).order_by(h.tenant))]

    def prune_events(self, before: datetime) -> dict[str, int]:
        """Delete each tenant's events up to the newest one older than ``before`` and anchor
        its chain at the oldest kept one (by sequence, so no gap can open even where clock
        and commit order disagree)."""
        e, h = self._t.events, self._t.event_heads
        cutoff = to_micros(before)
        removed: dict[str, int] = {}
        with self._write():
            ends = tuples(
                e.select(e.tenant, peewee.fn.MAX(e.sequence))
                .where(e.event_time < cutoff)
                .group_by(e.tenant)
                .order_by(e.tenant)
            )
            for tenant, last in ends:
                boundary = e.select(e.hash).where(e.tenant == tenant, e.sequence == last).scalar()
                h.update(anchor_sequence=int(last) + 1, anchor_hash=boundary).where(
                    h.tenant == tenant
                ).execute()
                count = e.delete().where(e.tenant == tenant, e.sequence <= int(last)).execute()
                removed[str(tenant)] = int(count)
        return removed
