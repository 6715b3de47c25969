"""Webhooks, deliveries, attempts and delivery leases (the ``WebhookBook`` port).

A delivery is claimed with one conditional ``UPDATE … WHERE lease expired … RETURNING``: on
PostgreSQL a second dispatcher racing for the same row waits for the first one's commit, sees
the lease taken and updates nothing; on SQLite writers are serialised anyway. Queueing
deliveries moves the webhook's cursor with a compare-and-set first (the row lock serialises
dispatchers), so two dispatchers never queue one event twice, and the unique index on
``(webhook_pk, event_sequence)`` backs that up.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from ...domain.entities import Page
from ...domain.webhook_types import (
    ClaimedDelivery,
    DeliveryState,
    Webhook,
    WebhookAttempt,
    WebhookDelivery,
)
from ...domain.webhooks import already_exists
from .core import StoreCore, check_limit, chunks, dicts, first, tuples
from .rows import from_micros, to_micros

MAX_ATTEMPTS_SHOWN = 50
_CANDIDATES = 5  # due deliveries tried per claim when others win the race


def _webhook_entity(row: dict[str, Any]) -> Webhook:
    return Webhook(
        tenant=row["tenant"],
        webhook_id=row["webhook_id"],
        uid=row["uid"],
        url=row["url"],
        filter=row["event_filter"],
        description=row["description"],
        enabled=bool(row["enabled"]),
        cursor=int(row["event_cursor"]),
        created_by=row["created_by"],
        create_time=from_micros(row["create_time"]),
        update_time=from_micros(row["update_time"]),
        secret_time=from_micros(row["secret_time"]),
        sealed_secret=row["sealed_secret"],
        revision=int(row["revision"]),
    )


def _webhook_columns(hook: Webhook) -> dict[str, Any]:
    return {
        "tenant": hook.tenant,
        "webhook_id": hook.webhook_id,
        "uid": hook.uid,
        "url": hook.url,
        "event_filter": hook.filter,
        "description": hook.description,
        "enabled": hook.enabled,
        "event_cursor": hook.cursor,
        "created_by": hook.created_by,
        "create_time": to_micros(hook.create_time),
        "update_time": to_micros(hook.update_time),
        "secret_time": to_micros(hook.secret_time),
        "sealed_secret": hook.sealed_secret,
        "revision": hook.revision,
    }


def _delivery_entity(
    row: dict[str, Any], webhook_id: str, attempts: list[WebhookAttempt]
) -> WebhookDelivery:
    return WebhookDelivery(
        tenant=row["tenant"],
        webhook_id=webhook_id,
        delivery_id=row["delivery_id"],
        event_sequence=int(row["event_sequence"]),
        state=DeliveryState(row["state"]),
        attempt_count=int(row["attempt_count"]),
        budget_start=int(row["budget_start"]),
        next_attempt_time=from_micros(row["next_attempt_time"]),
        create_time=from_micros(row["create_time"]),
        update_time=from_micros(row["update_time"]),
        attempts=attempts,
    )


class WebhookRows(StoreCore):
    """``webhooks``, ``webhook_deliveries`` and ``webhook_attempts``."""

    # -- webhooks ------------------------------------------------------------------------------
    def insert_webhook(self, webhook: Webhook) -> None:
        """Store a new webhook (ALREADY_EXISTS if the id is taken in its tenant)."""
        w = self._t.webhooks
        with self._write():
            self._insert_new(
                w,
                w.insert(**_webhook_columns(webhook)),
                [w.tenant, w.webhook_id],
                lambda: already_exists(webhook.webhook_id),
            )

    def get_webhook(
        self, tenant: str, webhook_id: str, *, for_update: bool = False
    ) -> Webhook | None:
        """The webhook, locked if ``for_update``."""
        w = self._t.webhooks
        scope = self._write() if for_update else self._read()
        with scope:
            query = w.select().where(w.tenant == tenant, w.webhook_id == webhook_id)
            if for_update and self._backend.supports_for_update:
                query = query.for_update()
            row = first(query)
        return None if row is None else _webhook_entity(row)

    def list_webhooks(self, tenant: str, after: int | None, limit: int) -> Page[Webhook]:
        """The tenant's webhooks by row id."""
        check_limit(limit)
        w = self._t.webhooks
        with self._read():
            query = w.select().where(w.tenant == tenant)
            if after is not None:
                query = query.where(w.id > after)
            found = dicts(query.order_by(w.id).limit(limit + 1))
        cursor = (int(found[limit - 1]["id"]),) if len(found) > limit else None
        return Page(items=[_webhook_entity(r) for r in found[:limit]], next_cursor=cursor)

    def save_webhook(self, webhook: Webhook) -> None:
        """Write the mutable fields of the webhook."""
        w = self._t.webhooks
        columns = _webhook_columns(webhook)
        for fixed in ("tenant", "webhook_id", "uid", "created_by", "create_time"):
            del columns[fixed]
        with self._write():
            w.update(**columns).where(
                w.tenant == webhook.tenant, w.webhook_id == webhook.webhook_id
            ).execute()

    def delete_webhook(self, tenant: str, webhook_id: str) -> None:
        """Remove the webhook, its deliveries and their attempts."""
        w, d, a = self._t.webhooks, self._t.webhook_deliveries, self._t.webhook_attempts
        with self._write():
            found = w.select(w.id).where(w.tenant == tenant, w.webhook_id == webhook_id)
            locking = self._backend.supports_for_update
            # Lock the webhook (a dispatcher queueing deliveries waits) and its deliveries (an
            # attempt being recorded commits first, so the delete below sees it; a later one
            # finds its delivery gone).
            pk = (found.for_update() if locking else found).scalar()
            if pk is None:
                return
            if locking:
                list(d.select(d.id).where(d.webhook_pk == pk).for_update().tuples())
            a.delete().where(a.delivery_pk.in_(d.select(d.id).where(d.webhook_pk == pk))).execute()
            d.delete().where(d.webhook_pk == pk).execute()
            w.delete().where(w.id == pk).execute()

    # -- dispatching ---------------------------------------------------------------------------
    def any_enabled_webhook(self) -> bool:
        """Whether any tenant has an enabled webhook (one statement, its text fixed)."""
        db: Any = self._db
        with self._read():
            found = db.execute_sql(
                f"SELECT 1 FROM webhooks WHERE enabled = {db.param} LIMIT 1", (True,)
            ).fetchone()
        return found is not None

    def webhooks_behind(self, limit: int) -> list[tuple[Webhook, int]]:
        """Enabled webhooks behind their tenant's head, the most behind first."""
        check_limit(limit)
        w, h = self._t.webhooks, self._t.event_heads
        with self._read():
            found = dicts(
                w.select(w, h.last_sequence.alias("head"))
                .join(h, on=(h.tenant == w.tenant))
                .where(w.enabled == True, w.event_cursor < h.last_sequence)  # noqa: E712
                .order_by((h.last_sequence - w.event_cursor).desc(), w.id)
                .limit(limit)
            )
        return [(_webhook_entity(r), int(r["head"])) for r in found]

    def advance_webhook(
        self, webhook: Webhook, new_cursor: int, deliveries: Sequence[WebhookDelivery]
    ) -> bool:
        """Move the cursor (compare-and-set) and queue the deliveries, in one transaction."""
        w, d = self._t.webhooks, self._t.webhook_deliveries
        with self._write():
            moved = (
                w.update(event_cursor=new_cursor)
                .where(
                    w.tenant == webhook.tenant,
                    w.webhook_id == webhook.webhook_id,
                    w.uid == webhook.uid,
                    w.event_cursor == webhook.cursor,
                )
                .execute()
            )
            if not moved:
                return False
            pk = w.select(w.id).where(w.uid == webhook.uid).scalar()
            rows = [
                {
                    "tenant": x.tenant,
                    "webhook_pk": pk,
                    "delivery_id": x.delivery_id,
                    "event_sequence": x.event_sequence,
                    "state": x.state.value,
                    "attempt_count": x.attempt_count,
                    "budget_start": x.budget_start,
                    "next_attempt_time": to_micros(x.next_attempt_time),
                    "create_time": to_micros(x.create_time),
                    "update_time": to_micros(x.update_time),
                    "lease_token": "",
                    "lease_expire": 0,
                }
                for x in deliveries
            ]
            for chunk in chunks(rows):
                d.insert_many(list(chunk)).on_conflict(
                    action="NOTHING", conflict_target=[d.webhook_pk, d.event_sequence]
                ).as_rowcount().execute()
        return True

    def claim_delivery(
        self, now: datetime, lease_until: datetime, token: str
    ) -> ClaimedDelivery | None:
        """Lease the oldest due delivery at the head of its webhook's queue."""
        db: Any = self._db
        p = db.param
        now_us = to_micros(now)
        # A delivery is at the head of its webhook's queue if no earlier event of the webhook
        # is pending (a webhook's events go out in order).
        head = (
            "NOT EXISTS (SELECT 1 FROM webhook_deliveries e"
            " WHERE e.webhook_pk = {d}.webhook_pk AND e.state = 'PENDING'"
            " AND e.event_sequence < {d}.event_sequence)"
        )
        with self._read():
            candidates = db.execute_sql(
                "SELECT d.id FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_pk"
                f" WHERE d.state = 'PENDING' AND d.next_attempt_time <= {p}"
                f" AND d.lease_expire < {p} AND w.enabled = {p} AND {head.format(d='d')}"
                f" ORDER BY d.next_attempt_time, d.id LIMIT {_CANDIDATES}",
                (now_us, now_us, True),
            ).fetchall()
        for (candidate,) in candidates:
            with self._write():
                won = db.execute_sql(
                    f"UPDATE webhook_deliveries SET lease_token = {p}, lease_expire = {p}"
                    f" WHERE id = {p} AND state = 'PENDING' AND lease_expire < {p}"
                    f" AND next_attempt_time <= {p}"
                    f" AND {head.format(d='webhook_deliveries')} RETURNING id",
                    (token, to_micros(lease_until), candidate, now_us, now_us),
                ).fetchall()
                if won:
                    return self._claimed(int(won[0][0]), token)
        return None

    def _claimed(self, pk: int, token: str) -> ClaimedDelivery:
        w, d = self._t.webhooks, self._t.webhook_deliveries
        row = first(d.select().where(d.id == pk))
        hook_row = first(w.select().where(w.id == row["webhook_pk"])) if row else None
        if row is None or hook_row is None:
            raise AssertionError("a claimed delivery has no row")
        hook = _webhook_entity(hook_row)
        return ClaimedDelivery(_delivery_entity(row, hook.webhook_id, []), hook, token)

    def finish_attempt(
        self,
        claim: ClaimedDelivery,
        attempt: WebhookAttempt,
        state: DeliveryState,
        next_attempt_time: datetime,
    ) -> bool:
        """Record the attempt and release the lease, unless the lease was lost."""
        d, a = self._t.webhook_deliveries, self._t.webhook_attempts
        delivery = claim.delivery
        with self._write():
            changed = (
                d.update(
                    state=state.value,
                    attempt_count=d.attempt_count + 1,
                    next_attempt_time=to_micros(next_attempt_time),
                    update_time=to_micros(attempt.time),
                    lease_token="",
                    lease_expire=0,
                )
                .where(d.delivery_id == delivery.delivery_id, d.lease_token == claim.token)
                .execute()
            )
            if not changed:
                return False
            pk = d.select(d.id).where(d.delivery_id == delivery.delivery_id).scalar()
            a.insert(
                tenant=delivery.tenant,
                delivery_pk=pk,
                number=attempt.number,
                attempt_time=to_micros(attempt.time),
                status_code=attempt.status_code,
                error=attempt.error,
                duration_ms=attempt.duration_ms,
            ).execute()
        return True

    # -- the delivery log ----------------------------------------------------------------------
    def list_deliveries(
        self,
        tenant: str,
        webhook_id: str,
        state: DeliveryState | None,
        after: int | None,
        limit: int,
    ) -> Page[WebhookDelivery]:
        """The webhook's deliveries by row id, newest first, with their last attempts."""
        check_limit(limit)
        w, d = self._t.webhooks, self._t.webhook_deliveries
        with self._read(snapshot=True):
            pk = w.select(w.id).where(w.tenant == tenant, w.webhook_id == webhook_id).scalar()
            if pk is None:
                return Page(items=[], next_cursor=None)
            query = d.select().where(d.webhook_pk == pk)
            if state is not None:
                query = query.where(d.state == state.value)
            if after is not None:
                query = query.where(d.id < after)
            found = dicts(query.order_by(d.id.desc()).limit(limit + 1))
            attempts = self._attempts([int(r["id"]) for r in found[:limit]])
        items = [_delivery_entity(r, webhook_id, attempts[int(r["id"])]) for r in found[:limit]]
        cursor = (int(found[limit - 1]["id"]),) if len(found) > limit else None
        return Page(items=items, next_cursor=cursor)

    def _attempts(self, pks: list[int]) -> dict[int, list[WebhookAttempt]]:
        a = self._t.webhook_attempts
        result: dict[int, list[WebhookAttempt]] = {pk: [] for pk in pks}
        for chunk in chunks(pks):
            query = (
                a.select(
                    a.delivery_pk, a.number, a.attempt_time, a.status_code, a.error, a.duration_ms
                )
                .where(a.delivery_pk.in_(list(chunk)))
                .order_by(a.delivery_pk, a.number)
            )
            for owner, number, at, status, error, duration in tuples(query):
                result[int(owner)].append(
                    WebhookAttempt(int(number), from_micros(at), int(status), error, int(duration))
                )
        return {pk: found[-MAX_ATTEMPTS_SHOWN:] for pk, found in result.items()}

    def get_delivery(
        self, tenant: str, webhook_id: str, delivery_id: str
    ) -> WebhookDelivery | None:
        """One delivery with its last attempts."""
        w, d = self._t.webhooks, self._t.webhook_deliveries
        with self._read(snapshot=True):
            row = first(
                d.select(d)
                .join(w, on=(w.id == d.webhook_pk))
                .where(w.tenant == tenant, w.webhook_id == webhook_id, d.delivery_id == delivery_id)
            )
            if row is None:
                return None
            attempts = self._attempts([int(row["id"])])
        return _delivery_entity(row, webhook_id, attempts[int(row["id"])])

    def requeue_delivery(
        self, tenant: str, webhook_id: str, delivery_id: str, now: datetime
    ) -> WebhookDelivery | None:
        """PENDING, due now, with a fresh budget (an attempt in flight keeps its lease)."""
        w, d = self._t.webhooks, self._t.webhook_deliveries
        with self._write():
            pk = w.select(w.id).where(w.tenant == tenant, w.webhook_id == webhook_id).scalar()
            if pk is None:
                return None
            d.update(
                state=DeliveryState.PENDING.value,
                next_attempt_time=to_micros(now),
                budget_start=d.attempt_count,
                update_time=to_micros(now),
            ).where(d.webhook_pk == pk, d.delivery_id == delivery_id).execute()
            return self.get_delivery(tenant, webhook_id, delivery_id)
