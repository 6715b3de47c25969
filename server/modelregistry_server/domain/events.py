"""The record of change: one event per change, written in the change's own transaction.

Every mutating use case appends exactly one :class:`Event` (kind ``CHANGE``) inside the
transaction that makes its change, so a change without its event, or an event without its
change, cannot exist; a rolled-back change leaves none. Calls that were refused or failed are
recorded by the serving edge as ``ACCESS`` events in a transaction of their own (they changed
nothing). Maintenance records ``CHANGE`` events with the principal ``system``.

Events of a tenant are numbered 1, 2, 3 … under the tenant's head row (taken last in the
transaction and held until commit, so sequence order is commit order) and chained: each
event's ``hash`` is ``sha256(prev_hash + "\\n" + canonical(event))``, where ``prev_hash`` is
the hash of the event before it. :func:`verify_chain` walks a chain and names the first event
that does not match; editing or deleting any row breaks the chain at that row. Pruning old
events moves the chain's *anchor* (the first kept sequence and the hash it must follow).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from .identity import SYSTEM_PRINCIPAL, Caller

# Bumped if the canonical encoding ever changes (old events keep verifying by their version).
ENCODING_VERSION = 1
OK = "OK"


class EventKind(StrEnum):
    """A change (written with it) or an access that changed nothing (refused or failed)."""

    CHANGE = "CHANGE"
    ACCESS = "ACCESS"


@dataclass
class Event:
    """One recorded change or access; the store assigns ``sequence``, ``prev_hash`` and
    ``hash`` when it appends it."""

    tenant: str
    time: datetime
    principal: str
    method: str
    resource: str
    kind: EventKind = EventKind.CHANGE
    summary: dict[str, Any] = field(default_factory=dict)
    request_id: str = ""
    etag_before: str = ""
    etag_after: str = ""
    outcome: str = OK  # a status code name (and reason) for access events
    sequence: int = 0
    prev_hash: str = ""
    hash: str = ""

    @property
    def name(self) -> str:
        """The event's resource name, ``events/{sequence}``."""
        return f"events/{self.sequence}"

    @property
    def model_id(self) -> str:
        """The model the resource belongs to (``models/{m}/…``), or ``""``."""
        parts = self.resource.split("/")
        return parts[1] if len(parts) >= 2 and parts[0] == "models" else ""


def canonical(event: Event) -> bytes:
    """The bytes an event's hash covers: every stored field but the hash itself, as compact
    JSON with sorted keys (times as integer microseconds since the epoch)."""
    before, after = canonical_around_sequence(event)
    return before + str(event.sequence).encode() + after


def canonical_around_sequence(event: Event) -> tuple[bytes, bytes]:
    """:func:`canonical` cut where the sequence goes: a store that numbers an event in SQL
    can hash it in the same statement (``before + sequence + after``)."""
    first = [ENCODING_VERSION, event.tenant]
    rest = [
        _micros(event.time),
        event.kind.value,
        event.principal,
        event.method,
        event.resource,
        event.outcome,
        event.request_id,
        event.etag_before,
        event.etag_after,
        event.summary,
    ]
    # The JSON array [*first, sequence, *rest], written without the sequence.
    before, after = (_json(part) for part in (first, rest))
    return before[:-1] + b",", b"," + after[1:]


def _json(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def chain_hash(prev_hash: str, event: Event) -> str:
    """The hash of ``event`` following an event whose hash is ``prev_hash`` (``""`` first)."""
    return hashlib.sha256(prev_hash.encode() + b"\n" + canonical(event)).hexdigest()


def _micros(t: datetime) -> int:
    delta = t - datetime(1970, 1, 1, tzinfo=t.tzinfo)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def change(
    caller: Caller,
    method: str,
    resource: str,
    time: datetime,
    *,
    summary: dict[str, Any] | None = None,
    before: str = "",
    after: str = "",
) -> Event:
    """The event of a change ``caller`` made with ``method`` to ``resource``."""
    return Event(
        tenant=caller.tenant,
        time=time,
        principal=caller.actor,
        method=method,
        resource=resource,
        summary=summary or {},
        request_id=caller.request_id,
        etag_before=before,
        etag_after=after,
    )


def system_change(
    tenant: str, method: str, resource: str, time: datetime, summary: dict[str, Any]
) -> Event:
    """The event of a change made by maintenance (purge, retention)."""
    return Event(tenant, time, SYSTEM_PRINCIPAL, method, resource, summary=summary)


@dataclass(frozen=True)
class EventHead:
    """A tenant's chain: its last event, and the anchor the oldest kept event follows."""

    tenant: str
    last_sequence: int
    last_hash: str
    anchor_sequence: int = 1  # the first kept event (moves when old events are pruned)
    anchor_hash: str = ""  # the hash that event's prev_hash must be


@dataclass(frozen=True)
class Verification:
    """The result of walking one tenant's chain."""

    tenant: str
    checked: int  # events whose hash was verified
    last_sequence: int
    head_hash: str  # publish it elsewhere to detect a rewrite of the whole chain
    failed_sequence: int = 0  # 0: the chain verifies
    reason: str = ""

    @property
    def ok(self) -> bool:
        """Whether every event matched."""
        return self.failed_sequence == 0


def verify_chain(tenant: str, head: EventHead | None, events: Iterable[Event]) -> Verification:
    """Walk ``events`` (in sequence order) from the head's anchor to its last event and report
    the first that does not match: a missing sequence, a ``prev_hash`` that is not the
    previous event's hash, a ``hash`` that does not cover the event's content, or a head that
    records more (or another last hash) than the events hold."""
    if head is None:
        for event in events:
            return _failed(tenant, 0, event.sequence, "", "the tenant has events but no chain head")
        return Verification(tenant, 0, 0, "")
    expected, prev, checked = head.anchor_sequence, head.anchor_hash, 0

    def failed(sequence: int, reason: str) -> Verification:
        return _failed(tenant, checked, sequence, head.last_hash, reason, head.last_sequence)

    for event in events:
        if event.sequence < expected:
            return failed(event.sequence, "event precedes the chain's anchor")
        if event.sequence > expected:
            return failed(expected, f"event {expected} is missing")
        if event.prev_hash != prev:
            return failed(event.sequence, "prev_hash is not the previous event's hash")
        if chain_hash(prev, event) != event.hash:
            return failed(event.sequence, "hash does not match the event's content")
        prev, expected, checked = event.hash, expected + 1, checked + 1
    if expected - 1 < head.last_sequence:
        return failed(
            expected, f"event {expected} is missing (the head records {head.last_sequence})"
        )
    if expected - 1 > head.last_sequence or prev != head.last_hash:
        return failed(expected - 1, "the chain head does not match the last event")
    return Verification(tenant, checked, head.last_sequence, head.last_hash)


def _failed(
    tenant: str, checked: int, sequence: int, head_hash: str, reason: str, last: int = 0
) -> Verification:
    return Verification(tenant, checked, last, head_hash, sequence, reason)
