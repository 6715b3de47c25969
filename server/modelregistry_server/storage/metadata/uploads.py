"""Upload sessions (the ``UploadSessions`` port)."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any

import peewee
from peewee import fn

from ...domain.entities import Page, UploadSession, UploadState
from ...domain.errors import AlreadyExists, NotFound, Reason
from ...domain.ports import ListQuery
from ...domain.upload_leases import lease_lost
from . import rows
from .core import StoreCore, check_limit, dicts, first, tuples
from .pages import fetch_page


class UploadRows(StoreCore):
    """``uploads``: one row per resumable upload session."""

    def insert_upload(self, session: UploadSession) -> None:
        """Create a session; raises AlreadyExists(UPLOAD_CONFLICT) if the id is taken."""
        u = self._t.uploads
        with self._write():
            self._insert_new(
                u,
                u.insert(**rows.upload_columns(session)),
                [u.tenant, u.upload_id],
                lambda: AlreadyExists(
                    f"upload {session.upload_id!r} already exists", reason=Reason.UPLOAD_CONFLICT
                ),
            )

    def get_upload(
        self, tenant: str, upload_id: str, *, for_update: bool = False
    ) -> UploadSession | None:
        """The session, or None."""
        u = self._t.uploads
        scope = self._write() if for_update else self._read()
        with scope:
            query = u.select().where(u.tenant == tenant, u.upload_id == upload_id)
            if for_update and self._backend.supports_for_update:
                query = query.for_update()
            row = first(query)
        return None if row is None else rows.upload_entity(row)

    def save_upload(self, session: UploadSession, *, lease_token: int | None = None) -> None:
        """Write ``committed_size``, ``state``, ``update_time`` and the lease of a session;
        with ``lease_token``, only while the row still carries that token (one UPDATE)."""
        u = self._t.uploads
        with self._write():
            where = [u.tenant == session.tenant, u.upload_id == session.upload_id]
            if lease_token is not None:
                where.append(fn.COALESCE(u.lease_token, 0) == lease_token)
            changed = u.update(**rows.upload_mutable_columns(session)).where(*where).execute()
            if changed:
                return
            if lease_token is not None and self.get_upload(session.tenant, session.upload_id):
                raise lease_lost(session.upload_id)
            raise NotFound(
                f"upload {session.upload_id!r} does not exist", reason=Reason.UPLOAD_NOT_FOUND
            )

    def advance_upload(
        self,
        tenant: str,
        upload_id: str,
        expected: int,
        new_size: int,
        now: datetime,
        *,
        lease_token: int | None = None,
        lease_expire: datetime | None = None,
    ) -> bool:
        """Compare-and-set the committed size of an ACTIVE session (one UPDATE); with
        ``lease_token``, only while the row carries it, extending the lease to
        ``lease_expire``."""
        u = self._t.uploads
        values: dict[Any, Any] = {
            u.committed_size: new_size,
            u.update_time: rows.to_micros(now),
        }
        where = [
            u.tenant == tenant,
            u.upload_id == upload_id,
            u.committed_size == expected,
            u.state == str(UploadState.ACTIVE),
        ]
        if lease_token is not None:
            where.append(fn.COALESCE(u.lease_token, 0) == lease_token)
            if lease_expire is not None:
                values[u.lease_expire] = rows.to_micros(lease_expire)
        with self._write():
            changed: int = u.update(values).where(*where).execute()
            return changed > 0

    def extend_upload_lease(
        self, tenant: str, upload_id: str, lease_token: int, expire: datetime
    ) -> bool:
        """Move the lease expiry of an ACTIVE session that still carries ``lease_token``
        (renewal, or release with an expiry of now); False if another writer took it."""
        u = self._t.uploads
        with self._write():
            changed: int = (
                u.update(lease_expire=rows.to_micros(expire))
                .where(
                    u.tenant == tenant,
                    u.upload_id == upload_id,
                    u.state == str(UploadState.ACTIVE),
                    fn.COALESCE(u.lease_token, 0) == lease_token,
                )
                .execute()
            )
            return changed > 0

    def delete_upload(self, tenant: str, upload_id: str) -> None:
        """Remove a session row."""
        u = self._t.uploads
        with self._write():
            u.delete().where(u.tenant == tenant, u.upload_id == upload_id).execute()

    def stale_uploads(self, before: datetime, limit: int) -> list[UploadSession]:
        """Sessions (any tenant) not updated since ``before``."""
        check_limit(limit)
        u = self._t.uploads
        with self._read():
            query = (
                u.select()
                .where(u.update_time < rows.to_micros(before))
                .order_by(u.update_time, u.id)
                .limit(limit)
            )
            return [rows.upload_entity(r) for r in dicts(query)]

    def list_uploads(
        self, tenant: str, model_id: str, number: int, query: ListQuery, owner: str | None = None
    ) -> Page[UploadSession]:
        """One page of the sessions targeting a version (``show_deleted`` does not apply:
        sessions are never soft-deleted); with ``owner``, only its own and ownerless ones."""
        u = self._t.uploads
        scope = [u.model_id == model_id, u.version_number == number]
        if owner is not None:
            scope.append(u.owner.in_(["", owner]))
        with self._read(snapshot=True):
            found, cursor = fetch_page(
                self._uploads_listing,
                tenant,
                dataclasses.replace(query, show_deleted=True),
                now_us=0,
                scope=scope,
            )
        return Page(items=[rows.upload_entity(r) for r in found], next_cursor=cursor)

    def active_uploads(self, after: tuple[str, str] | None, limit: int) -> list[tuple[str, str]]:
        """``(tenant, upload_id)`` of ACTIVE sessions (any tenant) in that order, after the
        cursor ``after``."""
        check_limit(limit)
        u = self._t.uploads
        with self._read():
            query = u.select(u.tenant, u.upload_id).where(u.state == str(UploadState.ACTIVE))
            if after is not None:
                query = query.where(peewee.Tuple(u.tenant, u.upload_id) > peewee.Tuple(*after))
            query = query.order_by(u.tenant, u.upload_id).limit(limit)
            return [(tenant, upload_id) for tenant, upload_id in tuples(query)]
