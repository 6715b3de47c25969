"""Request ids of creates (the ``RequestLog`` port)."""

from __future__ import annotations

from ...domain.entities import RequestRecord
from ...domain.errors import AlreadyExists, Reason
from . import rows
from .core import StoreCore, first


class RequestRows(StoreCore):
    """``requests``: one row per request id of a create."""

    def find_request(self, tenant: str, request_id: str) -> RequestRecord | None:
        """The record of an earlier create with this request id."""
        r = self._t.requests
        with self._read():
            row = first(r.select().where(r.tenant == tenant, r.request_id == request_id))
        return None if row is None else rows.request_entity(row)

    def record_request(self, record: RequestRecord) -> None:
        """Remember a create; raises AlreadyExists(REQUEST_ID_REUSED) if the id is recorded."""
        r = self._t.requests
        with self._write():
            self._insert_new(
                r,
                r.insert(**rows.request_columns(record)),
                [r.tenant, r.request_id],
                lambda: AlreadyExists(
                    f"request id {record.request_id!r} was already used",
                    reason=Reason.REQUEST_ID_REUSED,
                ),
            )
