"""WebhookService servicer: registering webhooks and reading their delivery log."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import grpc
from google.protobuf import empty_pb2, json_format, timestamp_pb2

from modelregistry.v1 import webhooks_pb2 as pb
from modelregistry.v1 import webhooks_pb2_grpc as pb_grpc

from ..domain.errors import InvalidArgument
from ..domain.events import Event
from ..domain.fields import WEBHOOK_FIELDS
from ..domain.updates import Patch
from ..domain.webhook_types import DeliveryState, Webhook, WebhookAttempt, WebhookDelivery
from ..domain.webhooks import (
    Webhooks,
    delivery_name,
    parse_delivery_name,
    parse_webhook_name,
    webhook_name,
)
from .callers import caller_of
from .converters import populated_paths
from .event_servicer import event_to_proto

Ctx = grpc.ServicerContext

_STATES = {
    DeliveryState.PENDING: pb.DELIVERY_STATE_PENDING,
    DeliveryState.DELIVERED: pb.DELIVERY_STATE_DELIVERED,
    DeliveryState.FAILED: pb.DELIVERY_STATE_FAILED,
}
_STATES_BACK = {v: k for k, v in _STATES.items()}


def event_json(event: Event) -> dict[str, Any]:
    """An event as ListEvents returns it, in its JSON form (what a webhook body carries)."""
    return json_format.MessageToDict(event_to_proto(event))


def _ts(value: datetime) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(value)
    return stamp


def webhook_to_proto(hook: Webhook) -> pb.Webhook:
    """The webhook as clients see it: never its secret."""
    return pb.Webhook(
        name=webhook_name(hook.webhook_id),
        url=hook.url,
        filter=hook.filter,
        description=hook.description,
        enabled=hook.enabled,
        cursor=f"events/{hook.cursor}",
        created_by=hook.created_by,
        create_time=_ts(hook.create_time),
        update_time=_ts(hook.update_time),
        secret_time=_ts(hook.secret_time),
        etag=hook.etag,
    )


def _attempt_to_proto(attempt: WebhookAttempt) -> pb.WebhookAttempt:
    return pb.WebhookAttempt(
        number=attempt.number,
        attempt_time=_ts(attempt.time),
        status_code=attempt.status_code,
        error=attempt.error,
        duration_ms=attempt.duration_ms,
    )


def delivery_to_proto(delivery: WebhookDelivery) -> pb.WebhookDelivery:
    """One delivery with its attempts."""
    pending = delivery.state is DeliveryState.PENDING
    return pb.WebhookDelivery(
        name=delivery_name(delivery.webhook_id, delivery.delivery_id),
        delivery_id=delivery.delivery_id,
        event=f"events/{delivery.event_sequence}",
        state=_STATES[delivery.state],
        attempt_count=delivery.attempt_count,
        next_attempt_time=_ts(delivery.next_attempt_time) if pending else None,
        create_time=_ts(delivery.create_time),
        update_time=_ts(delivery.update_time),
        attempts=[_attempt_to_proto(a) for a in delivery.attempts],
    )


def _values(msg: pb.Webhook) -> dict[str, Any]:
    """The request's values of the updatable fields (``enabled`` only if set)."""
    values: dict[str, Any] = {"url": msg.url, "filter": msg.filter, "description": msg.description}
    if msg.HasField("enabled"):
        values["enabled"] = msg.enabled
    return values


class WebhookServicer(pb_grpc.WebhookServiceServicer):
    """The WebhookService."""

    def __init__(self, webhooks: Webhooks) -> None:
        self._webhooks = webhooks

    def CreateWebhook(
        self, request: pb.CreateWebhookRequest, context: Ctx
    ) -> pb.CreateWebhookResponse:
        if not request.HasField("webhook"):
            raise InvalidArgument.field("webhook", "is required")
        values = _values(request.webhook)
        if not request.webhook.url:
            del values["url"]
        made = self._webhooks.create(caller_of(context), request.webhook_id, values)
        return pb.CreateWebhookResponse(webhook=webhook_to_proto(made.webhook), secret=made.secret)

    def GetWebhook(self, request: pb.GetWebhookRequest, context: Ctx) -> pb.Webhook:
        webhook_id = parse_webhook_name(request.name)
        return webhook_to_proto(self._webhooks.get(caller_of(context), webhook_id))

    def ListWebhooks(
        self, request: pb.ListWebhooksRequest, context: Ctx
    ) -> pb.ListWebhooksResponse:
        hooks, token = self._webhooks.list_webhooks(
            caller_of(context), page_size=request.page_size, page_token=request.page_token
        )
        return pb.ListWebhooksResponse(
            webhooks=[webhook_to_proto(h) for h in hooks], next_page_token=token
        )

    def UpdateWebhook(self, request: pb.UpdateWebhookRequest, context: Ctx) -> pb.Webhook:
        if not request.HasField("webhook"):
            raise InvalidArgument.field("webhook", "is required")
        msg = request.webhook
        webhook_id = parse_webhook_name(msg.name, "webhook.name")
        paths = tuple(request.update_mask.paths) or populated_paths(msg, WEBHOOK_FIELDS.updatable)
        patch = Patch(paths, _values(msg))
        hook = self._webhooks.update(caller_of(context), webhook_id, msg.etag, patch)
        return webhook_to_proto(hook)

    def DeleteWebhook(self, request: pb.DeleteWebhookRequest, context: Ctx) -> empty_pb2.Empty:
        webhook_id = parse_webhook_name(request.name)
        self._webhooks.delete(caller_of(context), webhook_id, request.etag)
        return empty_pb2.Empty()

    def RotateWebhookSecret(
        self, request: pb.RotateWebhookSecretRequest, context: Ctx
    ) -> pb.RotateWebhookSecretResponse:
        webhook_id = parse_webhook_name(request.name)
        made = self._webhooks.rotate(caller_of(context), webhook_id, request.etag)
        return pb.RotateWebhookSecretResponse(
            webhook=webhook_to_proto(made.webhook), secret=made.secret
        )

    def ListWebhookDeliveries(
        self, request: pb.ListWebhookDeliveriesRequest, context: Ctx
    ) -> pb.ListWebhookDeliveriesResponse:
        webhook_id = parse_webhook_name(request.parent, "parent")
        if request.state != pb.DELIVERY_STATE_UNSPECIFIED and request.state not in _STATES_BACK:
            raise InvalidArgument.field("state", "is not a delivery state")
        deliveries, token = self._webhooks.list_deliveries(
            caller_of(context),
            webhook_id,
            state=_STATES_BACK.get(request.state),
            page_size=request.page_size,
            page_token=request.page_token,
        )
        return pb.ListWebhookDeliveriesResponse(
            deliveries=[delivery_to_proto(d) for d in deliveries], next_page_token=token
        )

    def ResendWebhookDelivery(
        self, request: pb.ResendWebhookDeliveryRequest, context: Ctx
    ) -> pb.WebhookDelivery:
        webhook_id, delivery_id = parse_delivery_name(request.name)
        return delivery_to_proto(self._webhooks.resend(caller_of(context), webhook_id, delivery_id))
