"""Webhooks, their deliveries and attempts, and the leases that let several dispatchers
share them (see ``domain/webhook_dispatch.py``)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from ..entities import Page
from ..webhook_types import (
    ClaimedDelivery,
    DeliveryState,
    Webhook,
    WebhookAttempt,
    WebhookDelivery,
)


class WebhookBook(Protocol):
    """The ``webhooks``, ``webhook_deliveries`` and ``webhook_attempts`` rows."""

    def insert_webhook(self, webhook: Webhook) -> None:
        """Store a new webhook; ALREADY_EXISTS ``WEBHOOK_ALREADY_EXISTS`` if its id is taken in
        its tenant (nothing is written then)."""
        ...

    def get_webhook(
        self, tenant: str, webhook_id: str, *, for_update: bool = False
    ) -> Webhook | None:
        """The webhook, locked for the transaction if ``for_update``; None if absent."""
        ...

    def list_webhooks(self, tenant: str, after: int | None, limit: int) -> Page[Webhook]:
        """The tenant's webhooks, oldest first; the cursor is the row id."""
        ...

    def save_webhook(self, webhook: Webhook) -> None:
        """Write every mutable field of an existing webhook."""
        ...

    def delete_webhook(self, tenant: str, webhook_id: str) -> None:
        """Remove the webhook with its deliveries and their attempts."""
        ...

    def any_enabled_webhook(self) -> bool:
        """Whether any tenant has an enabled webhook: one cheap statement, the dispatcher's
        first question on every wake-up."""
        ...

    def webhooks_behind(self, limit: int) -> list[tuple[Webhook, int]]:
        """Enabled webhooks (any tenant) whose cursor is behind their tenant's last event,
        with that last sequence; at most ``limit``, the most behind first."""
        ...

    def advance_webhook(
        self,
        webhook: Webhook,
        new_cursor: int,
        deliveries: Sequence[WebhookDelivery],
    ) -> bool:
        """In one transaction: queue ``deliveries`` (a delivery of an event already queued
        for the webhook is skipped) and move the cursor from ``webhook.cursor`` to
        ``new_cursor``; False (nothing written) if the cursor moved meanwhile."""
        ...

    def claim_delivery(
        self, now: datetime, lease_until: datetime, token: str
    ) -> ClaimedDelivery | None:
        """Lease one due delivery: PENDING, due by ``now``, of an enabled webhook, not leased
        (or its lease expired), and the oldest pending one of its webhook (so a webhook's
        events go out in order). One ``UPDATE … WHERE lease expired … RETURNING``: two
        dispatchers never hold one delivery."""
        ...

    def finish_attempt(
        self,
        claim: ClaimedDelivery,
        attempt: WebhookAttempt,
        state: DeliveryState,
        next_attempt_time: datetime,
    ) -> bool:
        """Record the attempt and the delivery's new state, and release the lease; False
        (nothing written) if the lease was lost to another dispatcher."""
        ...

    def list_deliveries(
        self,
        tenant: str,
        webhook_id: str,
        state: DeliveryState | None,
        after: int | None,
        limit: int,
    ) -> Page[WebhookDelivery]:
        """The webhook's deliveries, newest first, with their last 50 attempts; the cursor is
        the row id."""
        ...

    def get_delivery(
        self, tenant: str, webhook_id: str, delivery_id: str
    ) -> WebhookDelivery | None:
        """One delivery with its attempts, or None."""
        ...

    def requeue_delivery(
        self, tenant: str, webhook_id: str, delivery_id: str, now: datetime
    ) -> WebhookDelivery | None:
        """PENDING again, due ``now``, with a fresh attempt budget and no lease; None if the
        webhook has no such delivery."""
        ...
