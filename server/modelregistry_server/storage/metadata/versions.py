"""Versions of models (the ``VersionCatalog`` port)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from ...domain.entities import ModelVersion, Page, VersionStatus
from ...domain.errors import AlreadyExists, NotFound, Reason
from ...domain.ports import ListQuery
from . import rows, side_rows
from .core import CHUNK, StoreCore, chunks, first, tuples
from .metric_pages import fetch_metric_page, metric_order_key
from .pages import fetch_page
from .policies import visible_condition
from .version_reads import SIDE_ALIAS, SIDE_LABEL, VersionRead, side_rows_text


class VersionRows(StoreCore):
    """``versions``, ``version_labels`` and ``version_metrics`` (aliases read alongside)."""

    def insert_version(self, version: ModelVersion) -> None:
        """Insert a new version (its number comes from ``allocate_version_number``)."""
        v = self._t.versions
        columns = rows.version_columns(version)
        with self._write():
            model_pk = self._require_model_pk(version.tenant, version.model_id)
            pk = self._insert_row(
                v,
                {**columns, "model_pk": model_pk, "transition_seq": 0},
                returning="id",
                conflict=("model_pk", "number"),
            )
            if pk is None:
                raise AlreadyExists(
                    f"version {version.number} of model {version.model_id!r} already exists",
                    reason=Reason.INVALID_ARGUMENT,
                )
            side_rows.write_side_rows(self._t, version.tenant, pk, columns, before={})
            self._insert_pairs(self._t.version_labels, version.tenant, pk, version.labels)
            self._insert_pairs(
                self._t.version_metrics,
                version.tenant,
                pk,
                version.metrics,
                {"model_pk": model_pk},
            )

    def get_version(
        self, tenant: str, model_id: str, number: int, *, for_update: bool = False
    ) -> ModelVersion | None:
        """The version with its aliases filled in (soft-deleted included)."""
        reads = self._version_reads
        params = reads.number_params(tenant, model_id, number)
        if not for_update:  # one statement, its text built once (see .version_reads)
            with self._read():
                return reads.entity(self._fetch(reads.by_number, params, self._setup))
        with self._write():
            # SQLite: BEGIN IMMEDIATE holds the write lock already; PostgreSQL: lock the row
            # first, then read it (a new statement, so it sees the row as locked).
            if reads.lock and not self._fetch(reads.lock, params[:3]):
                return None
            read = reads.found(self._fetch(reads.by_number, params, self._setup))
            if read is None:
                return None
            # save_version compares with what is stored instead of reading it again
            self._hold(("version", tenant, model_id, number), read)
            return read.entity()

    def version_status(
        self, tenant: str, model_id: str, number: int, *, for_update: bool = False
    ) -> VersionStatus | None:
        """The version's state and deletion time alone (one row, no labels or metrics)."""
        v = self._t.versions
        scope = self._write() if for_update else self._read()
        with scope:
            query = v.select(v.state, v.delete_time).where(
                v.tenant == tenant, v.model_id == model_id, v.number == number
            )
            if for_update and self._backend.supports_for_update:
                query = query.for_update()
            row = first(query)
        return None if row is None else rows.version_status(row, model_id, number)

    def latest_version(self, tenant: str, model_id: str, now: datetime) -> ModelVersion | None:
        """The highest-numbered version that is READY, not deleted and not expired at ``now``
        (one statement, see :mod:`.version_reads`)."""
        reads = self._version_reads
        params = reads.latest_params(tenant, model_id, rows.to_micros(now))
        with self._read():
            return reads.entity(self._fetch(reads.latest, params, self._setup))

    def save_version(self, version: ModelVersion) -> None:
        """Write every mutable field (labels, metrics included) of an existing version.

        After a locked read of the version in this transaction (``get_version(...,
        for_update=True)``) the row is not read again, and only the labels, metrics and side
        rows that differ from what that read found are written."""
        v = self._t.versions
        columns = rows.version_mutable_columns(version)
        key = ("version", version.tenant, version.model_id, version.number)
        with self._write():
            held: VersionRead | None = self._held_row(key, take=True)
            if held is None:
                before = first(
                    v.select(
                        v.id, v.model_pk, *(getattr(v, c) for c in side_rows.source_columns())
                    ).where(
                        v.tenant == version.tenant,
                        v.model_id == version.model_id,
                        v.number == version.number,
                    )
                )
                if before is None:
                    raise NotFound(
                        f"version {version.number} of model {version.model_id!r} does not exist",
                        reason=Reason.VERSION_NOT_FOUND,
                    )
                pk, model_pk = before.pop("id"), before.pop("model_pk")
            else:
                pk, model_pk = held.row["id"], held.row["model_pk"]
                before = {c: held.row[c] for c in side_rows.source_columns()}
            self._update_row(v, pk, columns)
            side_rows.write_side_rows(self._t, version.tenant, pk, columns, before)
            labels, metrics = self._t.version_labels, self._t.version_metrics
            extra = {"model_pk": model_pk}
            if held is None:
                self._replace_pairs(labels, version.tenant, pk, version.labels)
                self._replace_pairs(metrics, version.tenant, pk, version.metrics, extra)
            else:
                self._sync_pairs(labels, version.tenant, pk, held.labels, version.labels)
                self._sync_pairs(metrics, version.tenant, pk, held.metrics, version.metrics, extra)

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
        if query.visible_to is not None:
            scope.append(visible_condition(self._t, tenant, v.model_pk, query.visible_to))
        listing, now_us = self._versions_listing, rows.to_micros(now)
        with self._read(snapshot=True):
            if metric_order_key(query, listing) is not None:
                found, cursor = fetch_metric_page(
                    listing, self._t.models, tenant, model_id, query, now_us=now_us, scope=scope
                )
            else:
                found, cursor = fetch_page(listing, tenant, query, now_us=now_us, scope=scope)
            items = self._versions(tenant, found)
        return Page(items=items, next_cursor=cursor)

    def _versions(self, tenant: str, found: Sequence[Mapping[str, Any]]) -> list[ModelVersion]:
        """Entities for version rows, with labels, metrics and aliases (one statement for a
        page, three queries for more rows than one ``IN (...)`` list takes)."""
        ids = [r["id"] for r in found]
        model_pks = sorted({r["model_pk"] for r in found})
        if not ids:
            return []
        if len(ids) <= CHUNK and len(model_pks) <= CHUNK:
            return self._versions_at_once(tenant, found, ids, model_pks)
        labels = self._pairs(self._t.version_labels, tenant, ids)
        metrics = self._pairs(self._t.version_metrics, tenant, ids)
        aliases: dict[tuple[int, int], list[str]] = {
            (r["model_pk"], r["number"]): [] for r in found
        }
        a = self._t.aliases
        for chunk in chunks(model_pks):
            query = a.select(a.model_pk, a.version_number, a.alias_name).where(
                a.tenant == tenant, a.model_pk.in_(chunk)
            )
            for model_pk, number, name in tuples(query):
                names = aliases.get((model_pk, number))
                if names is not None:
                    names.append(name)
        return [
            rows.version_entity(
                r, labels[r["id"]], metrics[r["id"]], aliases[(r["model_pk"], r["number"])]
            )
            for r in found
        ]

    def _versions_at_once(
        self,
        tenant: str,
        found: Sequence[Mapping[str, Any]],
        ids: Sequence[int],
        model_pks: Sequence[int],
    ) -> list[ModelVersion]:
        """:meth:`_versions` in one statement (see :func:`.version_reads.side_rows_text`)."""
        sql = side_rows_text(self._t, self._db.param, len(ids), len(model_pks))
        labels: dict[int, dict[str, str]] = {i: {} for i in ids}
        metrics: dict[int, dict[str, float]] = {i: {} for i in ids}
        aliases: dict[tuple[int, int], list[str]] = {
            (r["model_pk"], r["number"]): [] for r in found
        }
        for kind, owner, key, text, real, number, owner_tenant in self._fetch(
            sql, [*ids, *ids, tenant, *model_pks]
        ):
            if kind == SIDE_ALIAS:
                names = aliases.get((owner, number))
                if names is not None:
                    names.append(key)
            elif owner_tenant != tenant:  # by owner alone, as in _pairs; there is none
                continue
            elif kind == SIDE_LABEL:
                labels[owner][key] = text
            else:
                metrics[owner][key] = real
        return [
            rows.version_entity(
                r, labels[r["id"]], metrics[r["id"]], aliases[(r["model_pk"], r["number"])]
            )
            for r in found
        ]
