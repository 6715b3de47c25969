"""Lineage lookups (the ``LineageIndex`` port), served from the side tables of
:mod:`.side_rows`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import peewee

from ...domain.entities import ModelVersion
from .core import check_limit, chunks, dicts, tuples
from .side_rows import consumers_query, dataset_users_query, dependents_query
from .versions import VersionRows


class LineageRows(VersionRows):
    """Reads versions through ``version_upstreams`` and ``version_datasets``."""

    def versions_named(self, tenant: str, refs: Sequence[tuple[str, int]]) -> list[ModelVersion]:
        """The versions (soft-deleted included) among ``(model_id, number)`` pairs that exist."""
        v = self._t.versions
        key = peewee.EnclosedNodeList([v.model_id, v.number])
        found: list[dict[str, Any]] = []
        with self._read(snapshot=True):
            for chunk in chunks(sorted(set(refs))):
                pairs = peewee.EnclosedNodeList(
                    [peewee.EnclosedNodeList([peewee.Value(m), peewee.Value(n)]) for m, n in chunk]
                )
                query = v.select().where(v.tenant == tenant, peewee.Expression(key, "IN", pairs))
                found.extend(dicts(query.order_by(v.model_id, v.number)))
            return self._versions(tenant, found)

    def consumers(
        self, tenant: str, upstreams: Sequence[str], *, include_deleted: bool, limit: int
    ) -> list[tuple[str, ModelVersion]]:
        """``(upstream, version)`` for versions whose ``produced_by`` names an upstream, by
        upstream then creation, at most ``limit``."""
        check_limit(limit)
        found: list[dict[str, Any]] = []
        with self._read(snapshot=True):
            for chunk in chunks(sorted(set(upstreams))):
                query = consumers_query(self._t, tenant, chunk, not include_deleted)
                found.extend(dicts(query.limit(limit - len(found))))
                if len(found) >= limit:
                    break
            versions = self._versions(tenant, found)
        return [(row["_upstream"], version) for row, version in zip(found, versions, strict=True)]

    def dataset_users(
        self, tenant: str, uri: str, *, include_deleted: bool, limit: int
    ) -> list[ModelVersion]:
        """Versions with a dataset reference to ``uri``, oldest first, at most ``limit``."""
        check_limit(limit)
        with self._read(snapshot=True):
            query = dataset_users_query(self._t, tenant, uri, not include_deleted)
            return self._versions(tenant, dicts(query.limit(limit)))

    def dependents(
        self, tenant: str, model_id: str, number: int | None, limit: int
    ) -> list[tuple[str, int]]:
        """Live versions outside the target (version ``number`` of the model, or the whole
        model if None) whose ``produced_by`` names it, ordered, at most ``limit``."""
        check_limit(limit)
        with self._read():
            query = dependents_query(self._t, tenant, model_id, number)
            return [(m, n) for m, n in tuples(query.limit(limit))]
