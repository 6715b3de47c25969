"""The values of webhooks: the registered endpoint, its deliveries and their attempts."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from .entities import make_etag


class DeliveryState(StrEnum):
    """Where one delivery stands."""

    PENDING = "PENDING"  # waiting for its (next) attempt
    DELIVERED = "DELIVERED"  # the receiver answered 2xx
    FAILED = "FAILED"  # every attempt of its budget failed


@dataclass
class Webhook:
    """An endpoint of a tenant that receives the events its filter matches.

    ``sealed_secret`` is the signing secret encrypted with the server's webhook key (see
    :mod:`.webhook_signing`); it never leaves the server. ``cursor`` is the sequence of the
    last event the webhook has considered (delivered, queued or filtered out).
    """

    tenant: str
    webhook_id: str
    uid: str
    url: str
    filter: str
    description: str
    enabled: bool
    cursor: int
    created_by: str
    create_time: datetime
    update_time: datetime
    secret_time: datetime
    sealed_secret: str
    revision: int = 1

    @property
    def etag(self) -> str:
        """Changes with every update and rotation."""
        return make_etag(self.uid, self.revision)


@dataclass(frozen=True)
class WebhookAttempt:
    """One POST of a delivery: HTTP status (0: none), error class ('' if 2xx), duration."""

    number: int
    time: datetime
    status_code: int
    error: str
    duration_ms: int


@dataclass
class WebhookDelivery:
    """The delivery of one event to one webhook.

    ``budget_start`` is the attempt count when the delivery was (re)queued: a resend gives a
    fresh budget of attempts while the count goes on.
    """

    tenant: str
    webhook_id: str
    delivery_id: str
    event_sequence: int
    state: DeliveryState
    attempt_count: int
    budget_start: int
    next_attempt_time: datetime
    create_time: datetime
    update_time: datetime
    attempts: list[WebhookAttempt] = field(default_factory=list)


@dataclass(frozen=True)
class ClaimedDelivery:
    """A delivery this dispatcher holds the lease of (``token`` fences what it writes)."""

    delivery: WebhookDelivery
    webhook: Webhook
    token: str


@dataclass(frozen=True)
class SendResult:
    """What one POST ended in: the status code (0 if no response) and the error class."""

    status_code: int
    error: str
    duration_ms: int

    @property
    def delivered(self) -> bool:
        """A 2xx answer."""
        return 200 <= self.status_code < 300 and not self.error
