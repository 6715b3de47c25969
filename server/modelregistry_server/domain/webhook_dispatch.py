"""The webhook dispatcher: turns committed events into signed POSTs, in order per webhook.

Deliveries follow the event log and nothing else. Each webhook has a cursor (the last event it
has considered); a dispatcher reads the events after it that match the webhook's filter,
queues one delivery per event and moves the cursor, in one transaction that fails if another
dispatcher moved it first. It then leases the oldest pending delivery of a webhook that is
due (``claim_delivery``: a conditional UPDATE in the database, so several dispatchers, in one
process or on several servers sharing the database, never hold one delivery), POSTs it and
records the attempt. A webhook's later events wait while its oldest pending one is retried,
so they arrive in commit order.

Retries: attempt ``n`` of a budget that failed waits ``backoff * 2**(n-1)`` seconds (at most
``max_backoff``), with jitter (a random point in its upper half); after ``max_attempts``
the delivery is FAILED and the webhook goes on with its next event. ``ResendWebhookDelivery``
queues a delivery again with a fresh budget. A dispatcher that dies mid-attempt leaves its
lease to expire (``timeout`` + :data:`LEASE_MARGIN_S`), after which the delivery is attempted
again: delivery is at least once, and receivers dedupe by the delivery id.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from .errors import InvalidArgument
from .events import Event
from .filter_parser import parse_filter
from .filtering import And, Comparison, Expr, Op
from .listing import EVENT_DEFAULT_ORDER, EVENT_SCHEMA
from .ports import ALL_EVENTS, EventLog, EventWakeups, ListQuery
from .ports.webhooks import WebhookBook
from .webhook_signing import SecretBox, binding, signature
from .webhook_types import (
    ClaimedDelivery,
    DeliveryState,
    SendResult,
    Webhook,
    WebhookAttempt,
    WebhookDelivery,
)
from .webhooks import new_delivery_id, webhook_name

log = logging.getLogger(__name__)

ADVANCE_BATCH = 100  # matching events queued per webhook per step
WEBHOOKS_PER_STEP = 100
LEASE_MARGIN_S = 30.0
STOP_CHECK_S = 0.05
USER_AGENT = "modelregistry-webhooks/1"

EventEncoder = Callable[[Event], dict[str, Any]]


class WebhookSender(Protocol):
    """Sends one POST (the adapter: ``outbound/http_sender.py``)."""

    def post(self, url: str, body: bytes, headers: Mapping[str, str], timeout: float) -> SendResult:
        """POST ``body``; never raises: failures are a :class:`SendResult` with an error."""
        ...


class DispatchStore(WebhookBook, EventLog, Protocol):
    """The ports the dispatcher needs."""


@dataclass(frozen=True)
class DispatchSettings:
    """Retry and timing settings (README *Webhooks*)."""

    max_attempts: int = 8
    backoff_s: float = 1.0
    max_backoff_s: float = 600.0
    timeout_s: float = 10.0
    poll_s: float = 1.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("webhook_max_attempts must be at least 1")
        if min(self.backoff_s, self.max_backoff_s) < 0 or min(self.timeout_s, self.poll_s) <= 0:
            raise ValueError("webhook delays must not be negative, timeout and poll positive")

    def delay(self, failed: int, rand: Callable[[], float] = random.random) -> float:
        """Seconds before the next attempt after ``failed`` failed attempts of a budget."""
        ceiling = min(self.backoff_s * 2.0 ** max(failed - 1, 0), self.max_backoff_s)
        return float(ceiling / 2 + rand() * ceiling / 2)


class Dispatcher:
    """One dispatcher: :meth:`run` on a thread of its own (module docstring)."""

    def __init__(
        self,
        store: DispatchStore,
        sender: WebhookSender,
        encode: EventEncoder,
        box: SecretBox,
        *,
        clock: Callable[[], datetime],
        settings: DispatchSettings | None = None,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self._store = store
        self._sender = sender
        self._encode = encode
        self._box = box
        self._clock = clock
        self.settings = settings or DispatchSettings()
        self._rand = rand
        self._filters: dict[str, Expr | None] = {}

    def run(self, stopping: threading.Event) -> None:
        """Dispatch until ``stopping`` is set; waits for new events or the poll interval when
        there is nothing to do. Errors are logged and retried after the poll interval."""
        wakeups = self._store.event_wakeups()
        while not stopping.is_set():
            generation = wakeups.generation()
            try:
                worked = self.step()
            except Exception:
                log.exception("webhook dispatch failed; retrying")
                stopping.wait(self.settings.poll_s)
                continue
            if not worked:
                self._idle(wakeups, generation, stopping)

    def _idle(self, wakeups: EventWakeups, generation: int, stopping: threading.Event) -> None:
        """Wait up to the poll interval for an event wake-up, looking at
        ``stopping`` every :data:`STOP_CHECK_S` so a server stops promptly."""
        deadline = time.monotonic() + self.settings.poll_s
        while not stopping.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            timeout = min(remaining, STOP_CHECK_S)
            if wakeups.wait(generation, timeout) != generation:
                return

    def step(self) -> bool:
        """Queue what the cursors are behind on, then make one due attempt; whether anything
        was done. Without an enabled webhook this is one cheap statement: every committed
        change wakes the dispatchers, and most registries have no webhook."""
        if not self._store.any_enabled_webhook():
            return False
        advanced = self.advance()
        now = self._clock()
        lease = timedelta(seconds=self.settings.timeout_s + LEASE_MARGIN_S)
        claim = self._store.claim_delivery(now, now + lease, new_delivery_id())
        if claim is not None:
            self.attempt(claim)
        return advanced or claim is not None

    def advance(self) -> bool:
        """Queue deliveries for the events after each enabled webhook's cursor."""
        moved = False
        for hook, head in self._store.webhooks_behind(WEBHOOKS_PER_STEP):
            try:
                moved |= self._advance_one(hook, head)
            except InvalidArgument:  # a stored filter this release no longer parses
                log.warning(
                    "webhook %s/%s: its filter does not parse", hook.tenant, hook.webhook_id
                )
        return moved

    def _advance_one(self, hook: Webhook, head: int) -> bool:
        window = And(
            tuple(
                e
                for e in (
                    Comparison("sequence", Op.GT, hook.cursor),
                    Comparison("sequence", Op.LE, head),
                    self._filter(hook.filter),
                )
                if e is not None
            )
        )
        query = ListQuery(window, EVENT_DEFAULT_ORDER, True, ADVANCE_BATCH, None)
        page = self._store.list_events(hook.tenant, query, ALL_EVENTS)
        # Every event up to the head has committed; a full page ends at its last event.
        new_cursor = page.items[-1].sequence if page.next_cursor is not None else head
        now = self._clock()
        deliveries = [
            WebhookDelivery(
                tenant=hook.tenant,
                webhook_id=hook.webhook_id,
                delivery_id=new_delivery_id(),
                event_sequence=event.sequence,
                state=DeliveryState.PENDING,
                attempt_count=0,
                budget_start=0,
                next_attempt_time=now,
                create_time=now,
                update_time=now,
            )
            for event in page.items
        ]
        return self._store.advance_webhook(hook, new_cursor, deliveries)

    def _filter(self, text: str) -> Expr | None:
        if text not in self._filters:
            if len(self._filters) > 1000:
                self._filters.clear()
            self._filters[text] = parse_filter(text, EVENT_SCHEMA)
        return self._filters[text]

    def attempt(self, claim: ClaimedDelivery) -> None:
        """POST the claimed delivery once and record the attempt."""
        hook, delivery = claim.webhook, claim.delivery
        started = self._clock()
        number = delivery.attempt_count + 1
        failed_in_budget = number - delivery.budget_start
        found = self._store.read_events(hook.tenant, delivery.event_sequence - 1, 1)
        secret = self._box.open(hook.sealed_secret, binding(hook.tenant, hook.webhook_id))
        if not found or found[0].sequence != delivery.event_sequence:
            result, final = SendResult(0, "event removed by retention", 0), True
        elif secret is None:
            log.warning("webhook %s/%s: its secret does not open", hook.tenant, hook.webhook_id)
            result, final = SendResult(0, "secret unavailable", 0), True
        else:
            result, final = self._post(hook, delivery, found[0], secret), False
        if result.delivered:
            state, due = DeliveryState.DELIVERED, started
        elif final or failed_in_budget >= self.settings.max_attempts:
            state, due = DeliveryState.FAILED, started
        else:
            wait = self.settings.delay(failed_in_budget, self._rand)
            state, due = DeliveryState.PENDING, self._clock() + timedelta(seconds=wait)
        attempt = WebhookAttempt(
            number, started, result.status_code, result.error, result.duration_ms
        )
        if not self._store.finish_attempt(claim, attempt, state, due):
            log.warning(
                "webhook %s/%s: the lease of delivery %s expired during its attempt",
                hook.tenant,
                hook.webhook_id,
                delivery.delivery_id,
            )

    def _post(
        self, hook: Webhook, delivery: WebhookDelivery, event: Event, secret: str
    ) -> SendResult:
        body = delivery_body(hook, delivery, event, self._encode)
        timestamp = int(self._clock().timestamp())
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "X-Registry-Webhook": webhook_name(hook.webhook_id),
            "X-Registry-Delivery": delivery.delivery_id,
            "X-Registry-Event": event.name,
            "X-Registry-Signature": signature(secret, timestamp, body),
        }
        return self._sender.post(hook.url, body, headers, self.settings.timeout_s)


def delivery_body(
    hook: Webhook, delivery: WebhookDelivery, event: Event, encode: EventEncoder
) -> bytes:
    """The JSON POSTed: the webhook, the delivery id, the cursor and the event (its fields as
    ListEvents returns them in JSON)."""
    document = {
        "webhook": webhook_name(hook.webhook_id),
        "delivery": delivery.delivery_id,
        "cursor": event.name,
        "event": encode(event),
    }
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()
