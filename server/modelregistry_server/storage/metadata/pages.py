"""Keyset pages of models and versions: the listing collections and one page query."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import peewee

from ...domain.entities import IntegrityState
from ...domain.errors import InvalidArgument
from ...domain.listing import FILE_SCHEMA, MODEL_SCHEMA, UPLOAD_SCHEMA, VERSION_SCHEMA
from ...domain.ports import ListQuery
from .schema import Tables
from .sql_filters import Collection, Column, compile_filter, plan_order


def fetch_page(
    coll: Collection, tenant: str, query: ListQuery, *, now_us: int, scope: list[Any]
) -> tuple[list[dict[str, Any]], tuple[Any, ...] | None]:
    """Rows of one keyset page and the cursor of the next one."""
    if query.page_size <= 0:
        raise InvalidArgument.field("page_size", "must be positive")
    order = plan_order(query.order_by, coll, tenant)
    row = coll.row
    select = row.select(row, *order.selected())
    for joined, on in order.joins:
        select = select.join_from(row, joined, peewee.JOIN.LEFT_OUTER, on=on)
    conditions = [row.tenant == tenant, *scope]
    if not query.show_deleted:
        conditions.append(row.delete_time.is_null())
    if query.filter is not None:
        conditions.append(compile_filter(query.filter, coll, tenant, now_us))
    if query.after is not None:
        conditions.append(order.after(tuple(query.after)))
    select = select.where(*conditions).order_by(*order.order_by())
    found = _rows(row, select.limit(query.page_size + 1))
    if len(found) <= query.page_size:
        return found, None
    found = found[: query.page_size]
    return found, order.cursor(found[-1])


def _rows(row: Any, select: Any) -> list[dict[str, Any]]:
    """The rows of ``select`` as ``{field name: value}``, like ``.dicts()``: compiled by
    peewee, then read from the cursor as stored (the columns are integers, text and reals,
    which the drivers return as peewee would; its per-value conversion cost more than the
    statement). Selected columns that are not fields of ``row`` keep their alias."""
    sql, params = select.sql()
    fields = {f.column_name: f.name for f in row._meta.sorted_fields}
    cursor = row._meta.database.execute_sql(sql, params)
    try:
        names = [fields.get(d[0], d[0]) for d in cursor.description]
        return [dict(zip(names, values, strict=True)) for values in cursor.fetchall()]
    finally:
        cursor.close()


def model_collection(t: Tables) -> Collection:
    """The listing collection of models."""
    m = t.models
    plain = ("model_id", "display_name", "description", "type", "author")
    columns = {name: Column(getattr(m, name)) for name in plain}
    columns |= {
        "create_time": Column(m.create_time),
        "update_time": Column(m.update_time),
        "delete_time": Column(m.delete_time, nullable=True),
        "latest_version_number": Column(m.latest_version_number),
    }
    return _collection(MODEL_SCHEMA, m, columns, {"labels": t.model_labels}, {})


def version_collection(t: Tables) -> Collection:
    """The listing collection of versions."""
    v = t.versions
    plain = ("model_id", "description", "type", "author", "stage", "state")
    columns = {name: Column(getattr(v, name)) for name in plain}
    columns |= {
        "version_number": Column(v.number),
        "create_time": Column(v.create_time),
        "update_time": Column(v.update_time),
        "delete_time": Column(v.delete_time, nullable=True),
        "expire_time": Column(v.expire_time, nullable=True),
        "file_count": Column(v.file_count),
        "total_size": Column(v.total_size),
        "source.repository": Column(v.source_repository),
        "source.commit": Column(v.source_commit),
    }
    repeated = {
        "produced_by": t.version_upstreams.upstream,
        "datasets.uri": t.version_datasets.uri,
        "datasets.digest": t.version_datasets.digest,
        "dependencies.name": t.version_dependencies.name,
    }

    def expired(now_us: int) -> Any:
        return v.expire_time.is_null(False) & (v.expire_time <= now_us)

    maps = {"labels": t.version_labels, "metrics": t.version_metrics}
    return _collection(VERSION_SCHEMA, v, columns, maps, {"expired": expired}, repeated)


def upload_collection(t: Tables) -> Collection:
    """The listing collection of upload sessions."""
    u = t.uploads
    plain = ("upload_id", "file_id", "state", "create_time", "update_time")
    columns = {name: Column(getattr(u, name)) for name in plain}
    columns |= {
        "sha256": Column(u.declared_sha256),
        "size_bytes": Column(u.declared_size, nullable=True),
        "committed_size_bytes": Column(u.committed_size),
    }
    return _collection(UPLOAD_SCHEMA, u, columns, {}, {})


def file_collection(t: Tables) -> Collection:
    """How ListFiles filters map to columns (``integrity`` is the joined blob's state)."""
    f, b = t.files, t.blobs
    columns = {
        "file_id": Column(f.file_id),
        "size_bytes": Column(f.size),
        "sha256": Column(f.sha256),
        "content_type": Column(f.content_type),
        "create_time": Column(f.create_time),
        "integrity": Column(b.verify_state, absent=str(IntegrityState.UNVERIFIED)),
    }
    return _collection(FILE_SCHEMA, f, columns, {}, {})


def _collection(
    schema: Any,
    row: Any,
    columns: dict[str, Column],
    maps: dict[str, Any],
    computed: dict[str, Callable[[int], Any]],
    repeated: dict[str, Any] | None = None,
) -> Collection:
    """A listing collection, checked to cover exactly the schema's fields."""
    repeated = repeated or {}
    plain = set(columns) | set(computed) | set(repeated)
    if set(schema.fields) != plain or set(schema.maps) != set(maps):
        raise AssertionError(f"listing columns of {row._meta.table_name} drifted from the schema")
    return Collection(schema, row, columns, maps, computed, repeated)
