"""The peewee adapter of the ``MetadataStore`` port (SQLite and PostgreSQL).

Scopes: :meth:`PeeweeMetadataStore.connection` holds one pooled connection per thread (nested
scopes reuse it); :meth:`PeeweeMetadataStore.transaction` is a write transaction (``BEGIN
IMMEDIATE`` on SQLite) that nested calls join. Every method also works outside any scope: it
opens what it needs. Reads of several statements run in one read-only snapshot.

Not written by the save methods: identity columns, ``Model.latest_version_number`` (owned by
:meth:`~PeeweeMetadataStore.allocate_version_number`) and ``ModelVersion.aliases`` (owned by
the alias methods). Blob digests are the ``sha256`` strings of file records.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime
from typing import Any, TypeVar

import peewee

from ...domain.entities import (
    Alias,
    FileRecord,
    Model,
    ModelVersion,
    Page,
    RequestRecord,
    StageTransition,
    UploadSession,
    VersionState,
)
from ...domain.errors import AlreadyExists, DomainError, InvalidArgument, NotFound, Reason
from ...domain.listing import MODEL_SCHEMA, VERSION_SCHEMA
from ...domain.ports import ListQuery, PurgeCounts
from . import rows
from .database import Backend
from .errors import is_unique_violation, translated
from .schema import Tables, bind_tables
from .sql_filters import Collection, Column, compile_filter, plan_order

T = TypeVar("T")
_CHUNK = 500  # ids per IN (...) list


def _chunks(items: Sequence[T]) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


def _tuples(query: Any) -> list[tuple[Any, ...]]:
    """Rows of a select as tuples (peewee's typing knows only model instances)."""
    return list(query.tuples())


def _dicts(query: Any) -> list[dict[str, Any]]:
    """Rows of a select as ``{field name: value}``."""
    return list(query.dicts())


def _first(query: Any) -> dict[str, Any] | None:
    """The first row of a select as ``{field name: value}``, or None."""
    row: dict[str, Any] | None = query.dicts().first()
    return row


def _check_limit(limit: int) -> None:
    if limit <= 0:
        raise InvalidArgument.field("page_size", "must be positive")


class PeeweeMetadataStore:
    """Registry rows in a SQL database through peewee (see the module docstring)."""

    def __init__(self, backend: Backend) -> None:
        self._backend = backend
        self._db = backend.database
        self._proxy = peewee.DatabaseProxy()
        self._proxy.initialize(self._db)
        self._t: Tables = bind_tables(self._proxy)
        self._models_listing = self._model_collection()
        self._versions_listing = self._version_collection()

    @property
    def backend(self) -> Backend:
        """The database this store runs on."""
        return self._backend

    # -- scopes ----------------------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """A write transaction; nested calls join the outer one. Rolls back on exception."""
        with translated(), self._db.connection_context():
            if self._db.in_transaction():
                yield
            else:
                with self._backend.write_transaction():
                    yield

    @contextmanager
    def connection(self) -> Iterator[None]:
        """A connection scope for one request; nested scopes reuse the outer connection."""
        with translated(), self._db.connection_context():
            yield

    def close(self) -> None:
        """Close every connection (pool included)."""
        with translated():
            self._backend.close()

    @contextmanager
    def _read(self, *, snapshot: bool = False) -> Iterator[None]:
        """A connection, and a read-only snapshot if several statements must agree."""
        with translated(), self._db.connection_context():
            if snapshot and not self._db.in_transaction():
                with self._backend.read_transaction():
                    yield
            else:
                yield

    def _write(self) -> AbstractContextManager[None]:
        return self.transaction()

    def _insert_unique(self, query: Any, conflict: Callable[[], DomainError]) -> Any:
        """Run an INSERT; a duplicate key raises ``conflict()``, the transaction stays usable."""
        try:
            with self._db.atomic():  # a savepoint inside the surrounding transaction
                return query.execute()
        except peewee.IntegrityError as exc:
            if is_unique_violation(exc):
                raise conflict() from None
            raise

    # -- lookups -----------------------------------------------------------------------------

    def _model_pk(self, tenant: str, model_id: str) -> int | None:
        m = self._t.models
        pk: int | None = m.select(m.id).where(m.tenant == tenant, m.model_id == model_id).scalar()
        return pk

    def _require_model_pk(self, tenant: str, model_id: str) -> int:
        pk = self._model_pk(tenant, model_id)
        if pk is None:
            raise NotFound(f"model {model_id!r} does not exist", reason=Reason.MODEL_NOT_FOUND)
        return pk

    def _version_pk(self, tenant: str, model_id: str, number: int) -> int | None:
        v = self._t.versions
        pk: int | None = (
            v.select(v.id)
            .where(v.tenant == tenant, v.model_id == model_id, v.number == number)
            .scalar()
        )
        return pk

    def _require_version_pk(self, tenant: str, model_id: str, number: int) -> int:
        pk = self._version_pk(tenant, model_id, number)
        if pk is None:
            raise NotFound(
                f"version {number} of model {model_id!r} does not exist",
                reason=Reason.VERSION_NOT_FOUND,
            )
        return pk

    def _pairs(self, table: Any, tenant: str, owners: Iterable[int]) -> dict[int, dict[str, Any]]:
        """Labels or metrics of several owners: ``{owner: {key: value}}``."""
        result: dict[int, dict[str, Any]] = {owner: {} for owner in owners}
        for chunk in _chunks(list(result)):
            query = table.select(table.owner, table.key, table.value).where(
                table.tenant == tenant, table.owner.in_(chunk)
            )
            for owner, key, value in _tuples(query):
                result[owner][key] = value
        return result

    def _replace_pairs(self, table: Any, tenant: str, owner: int, pairs: Mapping[str, Any]) -> None:
        table.delete().where(table.owner == owner).execute()
        if pairs:
            table.insert_many(
                [{"tenant": tenant, "owner": owner, "key": k, "value": v} for k, v in pairs.items()]
            ).as_rowcount().execute()

    # -- models ------------------------------------------------------------------------------

    def insert_model(self, model: Model) -> None:
        """Insert a new model; raises AlreadyExists(MODEL_ALREADY_EXISTS) if the id is taken."""
        m = self._t.models
        with self._write():
            pk = self._insert_unique(
                m.insert(
                    **rows.model_columns(model), latest_version_number=model.latest_version_number
                ),
                lambda: AlreadyExists(
                    f"model {model.model_id!r} already exists", reason=Reason.MODEL_ALREADY_EXISTS
                ),
            )
            self._replace_pairs(self._t.model_labels, model.tenant, pk, model.labels)

    def get_model(self, tenant: str, model_id: str, *, for_update: bool = False) -> Model | None:
        """The model (soft-deleted included), locked for the transaction if ``for_update``."""
        m = self._t.models
        scope = self._write() if for_update else self._read(snapshot=True)
        with scope:
            query = m.select().where(m.tenant == tenant, m.model_id == model_id)
            if for_update and self._backend.supports_for_update:
                query = query.for_update()
            row = _first(query)
            if row is None:
                return None
            labels = self._pairs(self._t.model_labels, tenant, [row["id"]])
            return rows.model_entity(row, labels[row["id"]])

    def save_model(self, model: Model) -> None:
        """Write every mutable field (labels included) of an existing model."""
        m = self._t.models
        with self._write():
            pk = self._require_model_pk(model.tenant, model.model_id)
            m.update(**rows.model_mutable_columns(model)).where(m.id == pk).execute()
            self._replace_pairs(self._t.model_labels, model.tenant, pk, model.labels)

    def list_models(self, tenant: str, query: ListQuery) -> Page[Model]:
        """One page of models matching the query (soft-deleted only if ``show_deleted``)."""
        with self._read(snapshot=True):
            found, cursor = self._page(self._models_listing, tenant, query, now_us=0, scope=[])
            labels = self._pairs(self._t.model_labels, tenant, [r["id"] for r in found])
            items = [rows.model_entity(r, labels[r["id"]]) for r in found]
        return Page(items=items, next_cursor=cursor)

    def allocate_version_number(self, tenant: str, model_id: str) -> int:
        """Atomically increment and return the model's version counter (call in a transaction)."""
        m = self._t.models
        with self._write():
            # The UPDATE holds the row (PostgreSQL) or database (SQLite) lock until commit,
            # so the value read back is ours alone.
            where = (m.tenant == tenant) & (m.model_id == model_id)
            changed = (
                m.update(latest_version_number=m.latest_version_number + 1).where(where).execute()
            )
            if not changed:
                raise NotFound(f"model {model_id!r} does not exist", reason=Reason.MODEL_NOT_FOUND)
            number: int = m.select(m.latest_version_number).where(where).scalar()
            return number

    # -- versions ----------------------------------------------------------------------------

    def insert_version(self, version: ModelVersion) -> None:
        """Insert a new version (its number comes from :meth:`allocate_version_number`)."""
        v = self._t.versions
        with self._write():
            model_pk = self._require_model_pk(version.tenant, version.model_id)
            pk = self._insert_unique(
                v.insert(**rows.version_columns(version), model_pk=model_pk, transition_seq=0),
                lambda: AlreadyExists(
                    f"version {version.number} of model {version.model_id!r} already exists",
                    reason=Reason.INVALID_ARGUMENT,
                ),
            )
            self._replace_pairs(self._t.version_labels, version.tenant, pk, version.labels)
            self._replace_pairs(self._t.version_metrics, version.tenant, pk, version.metrics)

    def get_version(
        self, tenant: str, model_id: str, number: int, *, for_update: bool = False
    ) -> ModelVersion | None:
        """The version with its aliases filled in (soft-deleted included)."""
        v = self._t.versions
        scope = self._write() if for_update else self._read(snapshot=True)
        with scope:
            query = v.select().where(v.tenant == tenant, v.model_id == model_id, v.number == number)
            if for_update and self._backend.supports_for_update:
                query = query.for_update()
            row = _first(query)
            return None if row is None else self._versions(tenant, [row])[0]

    def latest_version(self, tenant: str, model_id: str, now: datetime) -> ModelVersion | None:
        """The highest-numbered version that is READY, not deleted and not expired at ``now``."""
        v = self._t.versions
        now_us = rows.to_micros(now)
        with self._read(snapshot=True):
            row = _first(
                v.select()
                .where(
                    v.tenant == tenant,
                    v.model_id == model_id,
                    v.state == str(VersionState.READY),
                    v.delete_time.is_null(),
                    v.expire_time.is_null() | (v.expire_time > now_us),
                )
                .order_by(v.number.desc())
            )
            return None if row is None else self._versions(tenant, [row])[0]

    def save_version(self, version: ModelVersion) -> None:
        """Write every mutable field (labels, metrics included) of an existing version."""
        v = self._t.versions
        with self._write():
            pk = self._require_version_pk(version.tenant, version.model_id, version.number)
            v.update(**rows.version_mutable_columns(version)).where(v.id == pk).execute()
            self._replace_pairs(self._t.version_labels, version.tenant, pk, version.labels)
            self._replace_pairs(self._t.version_metrics, version.tenant, pk, version.metrics)

    def count_versions(self, tenant: str, model_id: str, *, include_deleted: bool) -> int:
        """How many versions the model has."""
        v = self._t.versions
        with self._read():
            query = v.select().where(v.tenant == tenant, v.model_id == model_id)
            if not include_deleted:
                query = query.where(v.delete_time.is_null())
            count: int = query.count()
            return count

    def list_versions(
        self, tenant: str, model_id: str | None, query: ListQuery, now: datetime
    ) -> Page[ModelVersion]:
        """One page of versions of one model, or of all models if ``model_id`` is None."""
        v = self._t.versions
        scope = [] if model_id is None else [v.model_id == model_id]
        with self._read(snapshot=True):
            found, cursor = self._page(
                self._versions_listing, tenant, query, now_us=rows.to_micros(now), scope=scope
            )
            items = self._versions(tenant, found)
        return Page(items=items, next_cursor=cursor)

    def _versions(self, tenant: str, found: Sequence[Mapping[str, Any]]) -> list[ModelVersion]:
        """Entities for version rows, with labels, metrics and aliases (three queries)."""
        ids = [r["id"] for r in found]
        labels = self._pairs(self._t.version_labels, tenant, ids)
        metrics = self._pairs(self._t.version_metrics, tenant, ids)
        aliases: dict[tuple[int, int], list[str]] = {
            (r["model_pk"], r["number"]): [] for r in found
        }
        a = self._t.aliases
        model_pks = sorted({r["model_pk"] for r in found})
        for chunk in _chunks(model_pks):
            query = a.select(a.model_pk, a.version_number, a.alias_name).where(
                a.tenant == tenant, a.model_pk.in_(chunk)
            )
            for model_pk, number, name in _tuples(query):
                names = aliases.get((model_pk, number))
                if names is not None:
                    names.append(name)
        return [
            rows.version_entity(
                r, labels[r["id"]], metrics[r["id"]], aliases[(r["model_pk"], r["number"])]
            )
            for r in found
        ]

    # -- listing -----------------------------------------------------------------------------

    def _page(
        self, coll: Collection, tenant: str, query: ListQuery, *, now_us: int, scope: list[Any]
    ) -> tuple[list[dict[str, Any]], tuple[Any, ...] | None]:
        """Rows of one keyset page and the cursor of the next one."""
        _check_limit(query.page_size)
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
        found = _dicts(select.limit(query.page_size + 1))
        if len(found) <= query.page_size:
            return found, None
        found = found[: query.page_size]
        return found, order.cursor(found[-1])

    def _model_collection(self) -> Collection:
        m = self._t.models
        plain = ("model_id", "display_name", "description", "type", "author")
        columns = {name: Column(getattr(m, name)) for name in plain}
        columns |= {
            "create_time": Column(m.create_time),
            "update_time": Column(m.update_time),
            "delete_time": Column(m.delete_time, nullable=True),
            "latest_version_number": Column(m.latest_version_number),
        }
        return _collection(MODEL_SCHEMA, m, columns, {"labels": self._t.model_labels}, {})

    def _version_collection(self) -> Collection:
        v = self._t.versions
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
        }

        def expired(now_us: int) -> Any:
            return v.expire_time.is_null(False) & (v.expire_time <= now_us)

        maps = {"labels": self._t.version_labels, "metrics": self._t.version_metrics}
        return _collection(VERSION_SCHEMA, v, columns, maps, {"expired": expired})

    # -- aliases -----------------------------------------------------------------------------

    def set_alias(self, alias: Alias) -> None:
        """Create or move an alias in one step."""
        a = self._t.aliases
        update_us = rows.to_micros(alias.update_time)
        with self._write():
            model_pk = self._require_model_pk(alias.tenant, alias.model_id)
            a.insert(
                tenant=alias.tenant,
                model_pk=model_pk,
                alias_name=alias.alias,
                version_number=alias.version_number,
                update_time=update_us,
            ).on_conflict(
                conflict_target=[a.model_pk, a.alias_name],
                update={a.version_number: alias.version_number, a.update_time: update_us},
            ).as_rowcount().execute()

    def get_alias(self, tenant: str, model_id: str, alias: str) -> Alias | None:
        """The alias, or None."""
        a, m = self._t.aliases, self._t.models
        with self._read():
            row = _first(
                a.select(a.alias_name, a.version_number, a.update_time)
                .join_from(a, m, on=(a.model_pk == m.id))
                .where(m.tenant == tenant, m.model_id == model_id, a.alias_name == alias)
            )
        return None if row is None else rows.alias_entity(row, tenant, model_id)

    def delete_alias(self, tenant: str, model_id: str, alias: str) -> bool:
        """Remove an alias; False if it did not exist."""
        a = self._t.aliases
        with self._write():
            model_pk = self._model_pk(tenant, model_id)
            if model_pk is None:
                return False
            deleted: int = a.delete().where(a.model_pk == model_pk, a.alias_name == alias).execute()
            return deleted > 0

    def list_aliases(self, tenant: str, model_id: str) -> list[Alias]:
        """All aliases of a model, ordered by name."""
        a, m = self._t.aliases, self._t.models
        with self._read():
            query = (
                a.select(a.alias_name, a.version_number, a.update_time)
                .join_from(a, m, on=(a.model_pk == m.id))
                .where(m.tenant == tenant, m.model_id == model_id)
                .order_by(a.alias_name)
            )
            return [rows.alias_entity(r, tenant, model_id) for r in _dicts(query)]

    # -- stage transitions -------------------------------------------------------------------

    def add_transition(
        self, tenant: str, model_id: str, number: int, transition: StageTransition
    ) -> None:
        """Append a transition to the version's history; sets ``transition.sequence``."""
        v, t = self._t.versions, self._t.transitions
        with self._write():
            version_pk = self._require_version_pk(tenant, model_id, number)
            v.update(transition_seq=v.transition_seq + 1).where(v.id == version_pk).execute()
            sequence: int = v.select(v.transition_seq).where(v.id == version_pk).scalar()
            t.insert(
                tenant=tenant,
                version_pk=version_pk,
                sequence=sequence,
                **rows.transition_columns(transition),
            ).execute()
            transition.sequence = sequence

    def list_transitions(
        self, tenant: str, model_id: str, number: int, after: int | None, limit: int
    ) -> Page[StageTransition]:
        """Transitions in order; the cursor is ``(sequence,)``."""
        _check_limit(limit)
        v, t = self._t.versions, self._t.transitions
        with self._read():
            query = (
                t.select(t)
                .join_from(t, v, on=(t.version_pk == v.id))
                .where(
                    v.tenant == tenant,
                    v.model_id == model_id,
                    v.number == number,
                    t.tenant == tenant,
                )
            )
            if after is not None:
                query = query.where(t.sequence > after)
            found = _dicts(query.order_by(t.sequence).limit(limit + 1))
        items = [rows.transition_entity(r) for r in found[:limit]]
        cursor = (items[-1].sequence,) if len(found) > limit else None
        return Page(items=items, next_cursor=cursor)

    # -- idempotent creates ------------------------------------------------------------------

    def find_request(self, tenant: str, request_id: str) -> RequestRecord | None:
        """The record of an earlier create with this request id."""
        r = self._t.requests
        with self._read():
            row = _first(r.select().where(r.tenant == tenant, r.request_id == request_id))
        return None if row is None else rows.request_entity(row)

    def record_request(self, record: RequestRecord) -> None:
        """Remember a create; raises AlreadyExists(REQUEST_ID_REUSED) if the id is recorded."""
        r = self._t.requests
        with self._write():
            self._insert_unique(
                r.insert(**rows.request_columns(record)),
                lambda: AlreadyExists(
                    f"request id {record.request_id!r} was already used",
                    reason=Reason.REQUEST_ID_REUSED,
                ),
            )

    # -- files -------------------------------------------------------------------------------

    def insert_file(self, record: FileRecord) -> None:
        """Make a file visible; raises AlreadyExists(FILE_ALREADY_EXISTS) if the id is taken."""
        f = self._t.files
        with self._write():
            version_pk = self._require_version_pk(
                record.tenant, record.model_id, record.version_number
            )
            self._insert_unique(
                f.insert(**rows.file_columns(record), version_pk=version_pk),
                lambda: AlreadyExists(
                    f"file {record.file_id!r} already exists", reason=Reason.FILE_ALREADY_EXISTS
                ),
            )

    def _files_of(self, tenant: str, model_id: str, number: int) -> Any:
        f, v = self._t.files, self._t.versions
        return (
            f.select(f)
            .join_from(f, v, on=(f.version_pk == v.id))
            .where(
                v.tenant == tenant, v.model_id == model_id, v.number == number, f.tenant == tenant
            )
        )

    def get_file(self, tenant: str, model_id: str, number: int, file_id: str) -> FileRecord | None:
        """The file, or None."""
        f = self._t.files
        with self._read():
            row = _first(self._files_of(tenant, model_id, number).where(f.file_id == file_id))
        return None if row is None else rows.file_entity(row, model_id, number)

    def list_files(
        self, tenant: str, model_id: str, number: int, after: str | None, limit: int
    ) -> Page[FileRecord]:
        """Files ordered by id; the cursor is ``(file_id,)``."""
        _check_limit(limit)
        f = self._t.files
        with self._read():
            query = self._files_of(tenant, model_id, number)
            if after is not None:
                query = query.where(f.file_id > after)
            found = _dicts(query.order_by(f.file_id).limit(limit + 1))
        items = [rows.file_entity(r, model_id, number) for r in found[:limit]]
        cursor = (items[-1].file_id,) if len(found) > limit else None
        return Page(items=items, next_cursor=cursor)

    # -- blobs -------------------------------------------------------------------------------

    def touch_blob(self, digest: str, size: int, now: datetime) -> None:
        """Record that blob ``digest`` is (about to be) used; upsert with ``touch_time=now``."""
        b = self._t.blobs
        now_us = rows.to_micros(now)
        with self._write():
            b.insert(digest=digest, size=size, touch_time=now_us).on_conflict(
                conflict_target=[b.digest], update={b.touch_time: now_us}
            ).as_rowcount().execute()

    def is_blob_known(self, digest: str) -> bool:
        """True if a blob row exists."""
        b = self._t.blobs
        with self._read():
            known: bool = b.select().where(b.digest == digest).exists()
            return known

    def _collectable(self, before: datetime) -> Any:
        b, f = self._t.blobs, self._t.files
        referenced = f.select(peewee.SQL("1")).where(f.sha256 == b.digest)
        return (b.touch_time < rows.to_micros(before)) & ~peewee.fn.EXISTS(referenced)

    def collectable_blobs(self, before: datetime, limit: int) -> list[str]:
        """Digests of blobs no file references and untouched since ``before``."""
        _check_limit(limit)
        b = self._t.blobs
        with self._read():
            query = (
                b.select(b.digest)
                .where(self._collectable(before))
                .order_by(b.touch_time, b.digest)
                .limit(limit)
            )
            return [digest for (digest,) in _tuples(query)]

    def forget_blob(self, digest: str, before: datetime) -> bool:
        """Delete the blob row if still unreferenced and untouched since ``before``."""
        b = self._t.blobs
        with self._write():
            if self._backend.supports_for_update:
                # Wait for a publish holding the row, then judge references in a new statement:
                # a DELETE that waited on the lock would re-check them against its old snapshot.
                _first(b.select(b.digest).where(b.digest == digest).for_update())
            deleted: int = b.delete().where(b.digest == digest, self._collectable(before)).execute()
            return deleted > 0

    # -- upload sessions ---------------------------------------------------------------------

    def insert_upload(self, session: UploadSession) -> None:
        """Create a session; raises AlreadyExists(UPLOAD_CONFLICT) if the id is taken."""
        u = self._t.uploads
        with self._write():
            self._insert_unique(
                u.insert(**rows.upload_columns(session)),
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
            row = _first(query)
        return None if row is None else rows.upload_entity(row)

    def save_upload(self, session: UploadSession) -> None:
        """Write ``committed_size``, ``state`` and ``update_time`` of a session."""
        u = self._t.uploads
        with self._write():
            changed = (
                u.update(**rows.upload_mutable_columns(session))
                .where(u.tenant == session.tenant, u.upload_id == session.upload_id)
                .execute()
            )
            if not changed:
                raise NotFound(
                    f"upload {session.upload_id!r} does not exist", reason=Reason.UPLOAD_NOT_FOUND
                )

    def delete_upload(self, tenant: str, upload_id: str) -> None:
        """Remove a session row."""
        u = self._t.uploads
        with self._write():
            u.delete().where(u.tenant == tenant, u.upload_id == upload_id).execute()

    def stale_uploads(self, before: datetime, limit: int) -> list[UploadSession]:
        """Sessions (any tenant) not updated since ``before``."""
        _check_limit(limit)
        u = self._t.uploads
        with self._read():
            query = (
                u.select()
                .where(u.update_time < rows.to_micros(before))
                .order_by(u.update_time, u.id)
                .limit(limit)
            )
            return [rows.upload_entity(r) for r in _dicts(query)]

    # -- maintenance -------------------------------------------------------------------------

    def purge(self, now: datetime) -> PurgeCounts:
        """Hard-delete soft-deleted models and versions whose ``purge_time`` has passed,
        with their labels, metrics, aliases, transitions and files (blobs are left to blob GC)."""
        m, v = self._t.models, self._t.versions
        now_us = rows.to_micros(now)
        with self._write():
            due = m.select(m.id).where(
                m.delete_time.is_null(False), m.purge_time.is_null(False), m.purge_time <= now_us
            )
            if self._backend.supports_for_update:
                due = due.for_update()
            model_pks = [pk for (pk,) in _tuples(due)]
            doomed: dict[int, tuple[int, int]] = {}  # version id -> (model_pk, number)
            for chunk in _chunks(model_pks):
                query = v.select(v.id, v.model_pk, v.number).where(v.model_pk.in_(chunk))
                for pk, model_pk, number in _tuples(query):
                    doomed[pk] = (model_pk, number)
            expired = v.select(v.id, v.model_pk, v.number).where(
                v.delete_time.is_null(False), v.purge_time.is_null(False), v.purge_time <= now_us
            )
            for pk, model_pk, number in _tuples(expired):
                doomed[pk] = (model_pk, number)
            self._delete_versions(doomed, set(model_pks))
            self._delete_models(model_pks)
        return PurgeCounts(models=len(model_pks), versions=len(doomed))

    def _delete_versions(self, doomed: Mapping[int, tuple[int, int]], models: set[int]) -> None:
        t = self._t
        by_model: dict[int, list[int]] = {}
        for model_pk, number in doomed.values():
            if model_pk not in models:  # aliases of purged models go with the model
                by_model.setdefault(model_pk, []).append(number)
        for model_pk, numbers in by_model.items():
            for chunk in _chunks(numbers):
                t.aliases.delete().where(
                    t.aliases.model_pk == model_pk, t.aliases.version_number.in_(chunk)
                ).execute()
        for chunk in _chunks(list(doomed)):
            t.version_labels.delete().where(t.version_labels.owner.in_(chunk)).execute()
            t.version_metrics.delete().where(t.version_metrics.owner.in_(chunk)).execute()
            t.transitions.delete().where(t.transitions.version_pk.in_(chunk)).execute()
            t.files.delete().where(t.files.version_pk.in_(chunk)).execute()
            t.versions.delete().where(t.versions.id.in_(chunk)).execute()

    def _delete_models(self, model_pks: Sequence[int]) -> None:
        t = self._t
        for chunk in _chunks(model_pks):
            t.aliases.delete().where(t.aliases.model_pk.in_(chunk)).execute()
            t.model_labels.delete().where(t.model_labels.owner.in_(chunk)).execute()
            t.models.delete().where(t.models.id.in_(chunk)).execute()


def _collection(
    schema: Any,
    row: Any,
    columns: dict[str, Column],
    maps: dict[str, Any],
    computed: dict[str, Callable[[int], Any]],
) -> Collection:
    """A listing collection, checked to cover exactly the schema's fields."""
    if set(schema.fields) != set(columns) | set(computed) or set(schema.maps) != set(maps):
        raise AssertionError(f"listing columns of {row._meta.table_name} drifted from the schema")
    return Collection(schema=schema, row=row, columns=columns, maps=maps, computed=computed)
