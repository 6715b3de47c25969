"""API keys kept in the metadata database (only hashes of their secrets)."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from ..entities import ApiKey, Page


class ApiKeyBook(Protocol):
    """The ``api_keys`` rows. Keys are found by their globally unique ``key_id`` when a call
    is authenticated, and within their tenant for everything else."""

    def insert_api_key(self, key: ApiKey) -> None:
        """Store a new key (its ``secret_hash``, never the secret)."""
        ...

    def get_api_key(self, key_id: str) -> ApiKey | None:
        """The key with this id, in any tenant (authentication), or None."""
        ...

    def get_tenant_api_key(self, tenant: str, key_id: str) -> ApiKey | None:
        """The key with this id if it belongs to ``tenant``, else None."""
        ...

    def list_api_keys(self, tenant: str, after: tuple[int, int] | None, limit: int) -> Page[ApiKey]:
        """Keys of ``tenant``, oldest first; the cursor is ``(create_time µs, row id)``."""
        ...

    def revoke_api_key(self, tenant: str, key_id: str, when: datetime) -> ApiKey | None:
        """Set ``revoke_time`` to ``when`` unless already set; the key afterwards, or None if
        ``tenant`` has no such key."""
        ...

    def touch_api_key(self, key_id: str, when: datetime, stale_before: datetime) -> bool:
        """Set ``last_used_time`` to ``when`` if it is unset or older than ``stale_before``
        (so concurrent replicas write it at most once per interval); whether it was written."""
        ...
