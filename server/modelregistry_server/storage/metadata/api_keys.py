"""API keys (the ``ApiKeyBook`` port)."""

from __future__ import annotations

from datetime import datetime

from ...domain.entities import ApiKey, Page
from . import rows
from .core import StoreCore, check_limit, dicts, first


class ApiKeyRows(StoreCore):
    """``api_keys``: one row per key; ``key_id`` is unique across tenants."""

    def insert_api_key(self, key: ApiKey) -> None:
        """Store a new key."""
        k = self._t.api_keys
        with self._write():
            k.insert(**rows.api_key_columns(key)).execute()

    def get_api_key(self, key_id: str) -> ApiKey | None:
        """The key with this id in any tenant, or None."""
        k = self._t.api_keys
        with self._read():
            row = first(k.select().where(k.key_id == key_id))
        return None if row is None else rows.api_key_entity(row)

    def get_tenant_api_key(self, tenant: str, key_id: str) -> ApiKey | None:
        """The key with this id if it belongs to ``tenant``."""
        k = self._t.api_keys
        with self._read():
            row = first(k.select().where(k.tenant == tenant, k.key_id == key_id))
        return None if row is None else rows.api_key_entity(row)

    def list_api_keys(self, tenant: str, after: tuple[int, int] | None, limit: int) -> Page[ApiKey]:
        """Keys of ``tenant`` by ``(create_time, id)`` (the index's order)."""
        check_limit(limit)
        k = self._t.api_keys
        with self._read():
            query = k.select().where(k.tenant == tenant)
            if after is not None:
                created, pk = after
                query = query.where(
                    (k.create_time > created) | ((k.create_time == created) & (k.id > pk))
                )
            found = dicts(query.order_by(k.create_time, k.id).limit(limit + 1))
        items = [rows.api_key_entity(r) for r in found[:limit]]
        last = found[limit - 1] if len(found) > limit else None
        cursor = None if last is None else (int(last["create_time"]), int(last["id"]))
        return Page(items=items, next_cursor=cursor)

    def revoke_api_key(self, tenant: str, key_id: str, when: datetime) -> ApiKey | None:
        """Set ``revoke_time`` unless set; the key afterwards, or None."""
        k = self._t.api_keys
        with self._write():
            k.update(revoke_time=rows.to_micros(when)).where(
                k.tenant == tenant, k.key_id == key_id, k.revoke_time.is_null()
            ).execute()
            row = first(k.select().where(k.tenant == tenant, k.key_id == key_id))
        return None if row is None else rows.api_key_entity(row)

    def touch_api_key(self, key_id: str, when: datetime, stale_before: datetime) -> bool:
        """Record a use unless one was recorded since ``stale_before``."""
        k = self._t.api_keys
        with self._write():
            changed: int = (
                k.update(last_used_time=rows.to_micros(when))
                .where(
                    k.key_id == key_id,
                    k.last_used_time.is_null() | (k.last_used_time < rows.to_micros(stale_before)),
                )
                .execute()
            )
        return changed > 0
