"""Use cases of webhooks: register, read, change, delete, rotate the secret, list the
delivery log and resend (every one needs ``registry.admin`` of the tenant).

Each change records its event in its own transaction, like every mutation. The secret is made
here, returned once (create and rotate) and stored sealed (:mod:`.webhook_signing`); nothing
returns or logs it later. Deliveries are made by :mod:`.webhook_dispatch`.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from .errors import AlreadyExists, InvalidArgument, NotFound, PermissionDenied, Reason
from .events import change
from .fields import WEBHOOK_FIELDS
from .identity import Caller, Permission
from .listing import PageTokens, typed_cursor
from .names import MODEL_ID_RE
from .paging import Pager
from .ports import EventLog, Transactions
from .ports.webhooks import WebhookBook
from .registry import check_etag
from .updates import Patch
from .webhook_rules import shown_url
from .webhook_signing import SecretBox, binding, new_secret
from .webhook_types import DeliveryState, Webhook, WebhookDelivery

_DELIVERY_ID_RE = re.compile(r"[0-9a-f]{32}")


class WebhookStore(Transactions, WebhookBook, EventLog, Protocol):
    """The ports the webhook use cases need."""


@dataclass(frozen=True)
class WebhookWithSecret:
    """A webhook and its new signing secret (create and rotate only)."""

    webhook: Webhook
    secret: str


def webhook_name(webhook_id: str) -> str:
    """``webhooks/{webhook}``."""
    return f"webhooks/{webhook_id}"


def delivery_name(webhook_id: str, delivery_id: str) -> str:
    """``webhooks/{webhook}/deliveries/{delivery}``."""
    return f"webhooks/{webhook_id}/deliveries/{delivery_id}"


def check_webhook_id(webhook_id: str, field: str) -> str:
    """``[a-z][a-z0-9-]{0,62}``."""
    if not MODEL_ID_RE.fullmatch(webhook_id):
        raise InvalidArgument.field(
            field, f"{webhook_id[:80]!r} must match [a-z][a-z0-9-]{{0,62}} (lowercase letter first)"
        )
    return webhook_id


def parse_webhook_name(name: str, field: str = "name") -> str:
    """``webhooks/{w}`` -> ``w``."""
    prefix, _, webhook_id = name.partition("/")
    if prefix != "webhooks" or "/" in webhook_id:
        raise InvalidArgument.field(field, "must be webhooks/{webhook}")
    return check_webhook_id(webhook_id, field)


def parse_delivery_name(name: str, field: str = "name") -> tuple[str, str]:
    """``webhooks/{w}/deliveries/{d}`` -> ``(w, d)``."""
    parts = name.split("/")
    if len(parts) != 4 or parts[0] != "webhooks" or parts[2] != "deliveries":
        raise InvalidArgument.field(field, "must be webhooks/{webhook}/deliveries/{delivery}")
    if not _DELIVERY_ID_RE.fullmatch(parts[3]):
        raise InvalidArgument.field(field, "the delivery id must be 32 hex digits")
    return check_webhook_id(parts[1], field), parts[3]


def new_delivery_id() -> str:
    """A fresh delivery id: 32 hex digits."""
    return uuid.uuid4().hex


class Webhooks:
    """Webhook management (module docstring)."""

    def __init__(
        self,
        store: WebhookStore,
        box: SecretBox,
        *,
        clock: Callable[[], datetime],
        page_tokens: PageTokens | None = None,
    ) -> None:
        self._store = store
        self._box = box
        self._clock = clock
        self._tokens = page_tokens or PageTokens.random()

    def create(
        self,
        caller: Caller,
        webhook_id: str,
        values: dict[str, Any],
    ) -> WebhookWithSecret:
        """Register a webhook (``values``: url, filter, description, enabled) that receives
        the events committed from now on; its secret is returned only here."""
        _require_admin(caller)
        check_webhook_id(webhook_id, "webhook_id")
        if "url" not in values:
            raise InvalidArgument.field("webhook.url", "is required")
        checked = WEBHOOK_FIELDS.values(values)
        now = self._clock()
        secret = new_secret()
        hook = Webhook(
            tenant=caller.tenant,
            webhook_id=webhook_id,
            uid=str(uuid.uuid4()),
            url=checked["url"],
            filter=checked.get("filter", ""),
            description=checked.get("description", ""),
            enabled=checked.get("enabled", True),
            cursor=0,
            created_by=caller.actor,
            create_time=now,
            update_time=now,
            secret_time=now,
            sealed_secret=self._box.seal(secret, binding(caller.tenant, webhook_id)),
        )
        with self._store.transaction():
            hook.cursor = self._log_end(caller.tenant)
            self._store.insert_webhook(hook)
            self._store.append_event(
                change(
                    caller,
                    "CreateWebhook",
                    webhook_name(webhook_id),
                    now,
                    summary=_summary(hook),
                    after=hook.etag,
                )
            )
        return WebhookWithSecret(hook, secret)

    def get(self, caller: Caller, webhook_id: str) -> Webhook:
        """One webhook of the caller's tenant."""
        _require_admin(caller)
        return self._require(caller.tenant, webhook_id)

    def list_webhooks(
        self, caller: Caller, *, page_size: int = 0, page_token: str = ""
    ) -> tuple[list[Webhook], str]:
        """The tenant's webhooks, oldest first."""
        _require_admin(caller)
        pager = Pager(page_size, page_token, self._tokens, tenant=caller.tenant)
        cursor = typed_cursor(pager.cursor("webhooks"), int)
        after = None if cursor is None else int(cursor[0])
        page = self._store.list_webhooks(caller.tenant, after, pager.size)
        return pager.reply(page)

    def update(self, caller: Caller, webhook_id: str, etag: str, patch: Patch) -> Webhook:
        """Apply the masked fields; ABORTED if ``etag`` is set and stale. Enabling a disabled
        webhook moves its cursor to the log's end (it gets nothing of the time it was off)."""
        _require_admin(caller)
        paths = WEBHOOK_FIELDS.check_mask(patch.paths)
        changes = WEBHOOK_FIELDS.values(patch.values, only=set(paths))
        if "url" in paths and "url" not in changes:
            raise InvalidArgument.field("webhook.url", "is required")
        with self._store.transaction():
            hook = self._require(caller.tenant, webhook_id, for_update=True)
            check_etag(etag, hook.etag, "webhook.etag")
            before, was_enabled = hook.etag, hook.enabled
            for path in paths:
                WEBHOOK_FIELDS.apply(hook, path, changes)
            if hook.enabled and not was_enabled:
                hook.cursor = self._log_end(caller.tenant)
            hook.update_time = self._clock()
            hook.revision += 1
            self._store.save_webhook(hook)
            summary = {"update_mask": list(paths), **_summary(hook)}
            self._store.append_event(
                change(
                    caller,
                    "UpdateWebhook",
                    webhook_name(webhook_id),
                    hook.update_time,
                    summary=summary,
                    before=before,
                    after=hook.etag,
                )
            )
        return hook

    def delete(self, caller: Caller, webhook_id: str, etag: str) -> None:
        """Remove the webhook and its delivery log."""
        _require_admin(caller)
        with self._store.transaction():
            hook = self._require(caller.tenant, webhook_id, for_update=True)
            check_etag(etag, hook.etag, "etag")
            self._store.delete_webhook(caller.tenant, webhook_id)
            self._store.append_event(
                change(
                    caller,
                    "DeleteWebhook",
                    webhook_name(webhook_id),
                    self._clock(),
                    before=hook.etag,
                )
            )

    def rotate(self, caller: Caller, webhook_id: str, etag: str) -> WebhookWithSecret:
        """A new secret, returned only here; attempts from now on are signed with it."""
        _require_admin(caller)
        secret = new_secret()
        with self._store.transaction():
            hook = self._require(caller.tenant, webhook_id, for_update=True)
            check_etag(etag, hook.etag, "etag")
            before = hook.etag
            now = self._clock()
            hook.sealed_secret = self._box.seal(secret, binding(caller.tenant, webhook_id))
            hook.secret_time = hook.update_time = now
            hook.revision += 1
            self._store.save_webhook(hook)
            self._store.append_event(
                change(
                    caller,
                    "RotateWebhookSecret",
                    webhook_name(webhook_id),
                    now,
                    before=before,
                    after=hook.etag,
                )
            )
        return WebhookWithSecret(hook, secret)

    def list_deliveries(
        self,
        caller: Caller,
        webhook_id: str,
        *,
        state: DeliveryState | None = None,
        page_size: int = 0,
        page_token: str = "",
    ) -> tuple[list[WebhookDelivery], str]:
        """The webhook's deliveries, newest first, with their attempts."""
        _require_admin(caller)
        pager = Pager(page_size, page_token, self._tokens, tenant=caller.tenant)
        state_key = "" if state is None else state.value
        cursor = typed_cursor(pager.cursor("deliveries", webhook_id, state_key), int)
        after = None if cursor is None else int(cursor[0])
        self._require(caller.tenant, webhook_id)
        page = self._store.list_deliveries(caller.tenant, webhook_id, state, after, pager.size)
        return pager.reply(page)

    def resend(self, caller: Caller, webhook_id: str, delivery_id: str) -> WebhookDelivery:
        """Queue a delivery again, due now, with a fresh attempt budget."""
        _require_admin(caller)
        with self._store.transaction():
            self._require(caller.tenant, webhook_id)
            now = self._clock()
            delivery = self._store.requeue_delivery(caller.tenant, webhook_id, delivery_id, now)
            if delivery is None:
                raise NotFound(
                    f"webhook {webhook_id!r} has no delivery {delivery_id!r}",
                    reason=Reason.DELIVERY_NOT_FOUND,
                )
            self._store.append_event(
                change(
                    caller,
                    "ResendWebhookDelivery",
                    delivery_name(webhook_id, delivery_id),
                    now,
                    summary={"event": f"events/{delivery.event_sequence}"},
                )
            )
        return delivery

    def _require(self, tenant: str, webhook_id: str, *, for_update: bool = False) -> Webhook:
        hook = self._store.get_webhook(tenant, webhook_id, for_update=for_update)
        if hook is None:
            raise NotFound(
                f"webhook {webhook_id!r} does not exist", reason=Reason.WEBHOOK_NOT_FOUND
            )
        return hook

    def _log_end(self, tenant: str) -> int:
        head = self._store.event_head(tenant)
        return 0 if head is None else head.last_sequence


def already_exists(webhook_id: str) -> AlreadyExists:
    """The error of a create whose id is taken (raised by the store)."""
    return AlreadyExists(
        f"webhook {webhook_id!r} already exists", reason=Reason.WEBHOOK_ALREADY_EXISTS
    )


def _summary(hook: Webhook) -> dict[str, Any]:
    return {
        "url": shown_url(hook.url),
        "filter": hook.filter,
        "enabled": hook.enabled,
    }


def _require_admin(caller: Caller) -> None:
    if not caller.is_admin:
        raise PermissionDenied(
            f"managing webhooks needs the scope {Permission.ADMIN.value}",
            reason=Reason.SCOPE_MISSING,
            metadata={"scope": Permission.ADMIN.value},
        )
