"""Webhooks and their delivery log, through ``modelregistry.v1.WebhookService``."""

from __future__ import annotations

from collections.abc import Sequence

from google.protobuf import field_mask_pb2

from modelregistry.client.calls import Invoker
from modelregistry.client.pager import Pager, pager
from modelregistry.v1 import webhooks_pb2 as wh
from modelregistry.v1 import webhooks_pb2_grpc as wh_grpc

__all__ = ["Webhooks", "delivery_state", "webhook_name"]


def webhook_name(webhook_id_or_name: str) -> str:
    """``webhooks/{webhook}`` for an id (a name is returned as it is)."""
    if webhook_id_or_name.startswith("webhooks/"):
        return webhook_id_or_name
    return f"webhooks/{webhook_id_or_name}"


def delivery_state(state: str | int | None) -> int:
    """``"FAILED"``, ``"failed"`` or ``wh.DELIVERY_STATE_FAILED`` → the enum value (None: all)."""
    if state is None:
        return wh.DELIVERY_STATE_UNSPECIFIED
    if isinstance(state, int):
        return state
    word = state.upper()
    return wh.DeliveryState.Value(
        word if word.startswith("DELIVERY_STATE_") else f"DELIVERY_STATE_{word}"
    )


class Webhooks:
    """The WebhookService calls of :class:`~modelregistry.client.RegistryClient`."""

    def __init__(self, call: Invoker, stub: wh_grpc.WebhookServiceStub) -> None:
        self._call = call
        self._stub = stub

    def create(
        self,
        webhook_id: str,
        url: str,
        *,
        filter: str = "",
        description: str = "",
        enabled: bool = True,
    ) -> wh.CreateWebhookResponse:
        """A new webhook (``.webhook``) and its signing secret (``.secret``), shown only now."""
        hook = wh.Webhook(url=url, filter=filter, description=description, enabled=enabled)
        request = wh.CreateWebhookRequest(webhook_id=webhook_id, webhook=hook)
        return self._call(self._stub.CreateWebhook, request)

    def get(self, webhook_id: str) -> wh.Webhook:
        """One webhook (never its secret)."""
        return self._call(
            self._stub.GetWebhook, wh.GetWebhookRequest(name=webhook_name(webhook_id))
        )

    def list_page(self, *, page_size: int = 0, page_token: str = "") -> wh.ListWebhooksResponse:
        """One page of the tenant's webhooks."""
        request = wh.ListWebhooksRequest(page_size=page_size, page_token=page_token)
        return self._call(self._stub.ListWebhooks, request)

    def list(self, *, page_size: int = 0) -> Pager[wh.Webhook]:
        """Every webhook of the tenant, oldest first, fetching pages lazily."""
        return pager(
            lambda request: self._call(self._stub.ListWebhooks, request),
            wh.ListWebhooksRequest(page_size=page_size),
            lambda page: page.webhooks,
        )

    def update(self, webhook: wh.Webhook, update_mask: Sequence[str] = ()) -> wh.Webhook:
        """Write the fields named in ``update_mask`` (empty: the fields ``webhook`` sets)."""
        request = wh.UpdateWebhookRequest(
            webhook=webhook, update_mask=field_mask_pb2.FieldMask(paths=list(update_mask))
        )
        return self._call(self._stub.UpdateWebhook, request)

    def delete(self, webhook_id: str, *, etag: str = "") -> None:
        """Delete a webhook and its delivery log."""
        request = wh.DeleteWebhookRequest(name=webhook_name(webhook_id), etag=etag)
        self._call(self._stub.DeleteWebhook, request)

    def rotate_secret(self, webhook_id: str, *, etag: str = "") -> wh.RotateWebhookSecretResponse:
        """A new signing secret (``.secret``), shown only now."""
        request = wh.RotateWebhookSecretRequest(name=webhook_name(webhook_id), etag=etag)
        return self._call(self._stub.RotateWebhookSecret, request)

    def deliveries_page(
        self,
        webhook_id: str,
        *,
        state: str | int | None = None,
        page_size: int = 0,
        page_token: str = "",
    ) -> wh.ListWebhookDeliveriesResponse:
        """One page of the webhook's deliveries, newest first."""
        request = wh.ListWebhookDeliveriesRequest(
            parent=webhook_name(webhook_id),
            state=delivery_state(state),  # type: ignore[arg-type]  # an enum value
            page_size=page_size,
            page_token=page_token,
        )
        return self._call(self._stub.ListWebhookDeliveries, request)

    def deliveries(
        self, webhook_id: str, *, state: str | int | None = None, page_size: int = 0
    ) -> Pager[wh.WebhookDelivery]:
        """Every delivery of the webhook, newest first, with its attempts."""
        request = wh.ListWebhookDeliveriesRequest(
            parent=webhook_name(webhook_id),
            state=delivery_state(state),  # type: ignore[arg-type]  # an enum value
            page_size=page_size,
        )
        return pager(
            lambda r: self._call(self._stub.ListWebhookDeliveries, r),
            request,
            lambda page: page.deliveries,
        )

    def resend(self, delivery_name: str) -> wh.WebhookDelivery:
        """Queue a delivery (``webhooks/{w}/deliveries/{d}``) again, due now."""
        request = wh.ResendWebhookDeliveryRequest(name=delivery_name)
        return self._call(self._stub.ResendWebhookDelivery, request)
