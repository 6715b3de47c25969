"""Files of versions (the ``FileCatalog`` port), with what the last check of their blob found."""

from __future__ import annotations

from typing import Any

import peewee

from ...domain.entities import FileRecord, Page
from ...domain.errors import AlreadyExists, Reason
from ...domain.ports import ListQuery
from . import rows
from .core import StoreCore, check_limit, dicts, first
from .policies import visible_condition
from .schema import Tables
from .sql_filters import compile_filter


def with_integrity(t: Tables, query: Any) -> Any:
    """A select of files with their blob's ``verify_state`` and ``verify_time`` joined in
    (see :func:`.rows.file_entity`)."""
    f, b = t.files, t.blobs
    return query.select_extend(b.verify_state, b.verify_time).join_from(
        f, b, peewee.JOIN.LEFT_OUTER, on=(b.digest == f.sha256)
    )


class FileRows(StoreCore):
    """``files``: one row per visible file; ``sha256`` names its blob."""

    def add_file(self, record: FileRecord) -> None:
        """Insert the file row and count it in its version (no other version column, label or
        metric is written); a taken id or a missing version changes nothing."""
        f, v = self._t.files, self._t.versions
        with self._write():
            version_pk = self._require_version_pk(
                record.tenant, record.model_id, record.version_number
            )
            self._insert_new(
                f,
                f.insert(**rows.file_columns(record), version_pk=version_pk),
                [f.version_pk, f.file_id],
                lambda: AlreadyExists(
                    f"file {record.file_id!r} already exists", reason=Reason.FILE_ALREADY_EXISTS
                ),
            )
            v.update(
                file_count=v.file_count + 1,
                total_size=v.total_size + record.size,
                update_time=rows.to_micros(record.create_time),
                revision=v.revision + 1,
            ).where(v.id == version_pk).execute()

    def _files_of(self, tenant: str, model_id: str, number: int) -> Any:
        f, v = self._t.files, self._t.versions
        return with_integrity(
            self._t, f.select(f).join_from(f, v, on=(f.version_pk == v.id))
        ).where(v.tenant == tenant, v.model_id == model_id, v.number == number, f.tenant == tenant)

    def get_file(self, tenant: str, model_id: str, number: int, file_id: str) -> FileRecord | None:
        """The file, or None."""
        f = self._t.files
        with self._read():
            row = first(self._files_of(tenant, model_id, number).where(f.file_id == file_id))
        return None if row is None else rows.file_entity(row, model_id, number)

    def list_files(
        self, tenant: str, model_id: str, number: int, after: str | None, limit: int
    ) -> Page[FileRecord]:
        """Files ordered by id; the cursor is ``(file_id,)``."""
        check_limit(limit)
        f = self._t.files
        with self._read():
            query = self._files_of(tenant, model_id, number)
            if after is not None:
                query = query.where(f.file_id > after)
            found = dicts(query.order_by(f.file_id).limit(limit + 1))
        items = [rows.file_entity(r, model_id, number) for r in found[:limit]]
        cursor = (items[-1].file_id,) if len(found) > limit else None
        return Page(items=items, next_cursor=cursor)

    def find_files(
        self, tenant: str, model_id: str | None, number: int | None, query: ListQuery
    ) -> Page[FileRecord]:
        """Files of a version, of a model's live versions or of every live version, matching
        the filter, ordered by ``(model_id, version_number, file_id)`` (also the cursor)."""
        check_limit(query.page_size)
        f, v, m = self._t.files, self._t.versions, self._t.models
        select = f.select(f, v.model_id.alias("_model_id"), v.number.alias("_number"))
        select = with_integrity(self._t, select.join_from(f, v, on=(f.version_pk == v.id)))
        conditions: list[Any] = [f.tenant == tenant, v.tenant == tenant]
        if model_id is not None:
            conditions.append(v.model_id == model_id)
        if number is not None:
            conditions.append(v.number == number)
        else:
            select = select.join_from(v, m, on=(v.model_pk == m.id))
            conditions += [v.delete_time.is_null(), m.delete_time.is_null()]
        if query.visible_to is not None:
            conditions.append(visible_condition(self._t, tenant, v.model_pk, query.visible_to))
        if query.filter is not None:
            conditions.append(compile_filter(query.filter, self._files_listing, tenant, 0))
        if query.after is not None:
            after_model, after_number, after_file = query.after
            conditions.append(
                peewee.Tuple(v.model_id, v.number, f.file_id)
                > peewee.Tuple(after_model, after_number, after_file)
            )
        select = select.where(*conditions).order_by(v.model_id, v.number, f.file_id)
        with self._read():
            found = dicts(select.limit(query.page_size + 1))
        items = [
            rows.file_entity(r, r["_model_id"], r["_number"]) for r in found[: query.page_size]
        ]
        last = items[-1] if len(found) > query.page_size else None
        cursor = None if last is None else (last.model_id, last.version_number, last.file_id)
        return Page(items=items, next_cursor=cursor)
