"""Hard deletion of expired soft-deletes (the ``Purger`` port)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from ...domain import names
from ...domain.ports import PurgeCounts
from . import rows, side_rows
from .core import StoreCore, chunks, tuples


class PurgeRows(StoreCore):
    """Removes models and versions with everything hanging off them."""

    def purge(self, now: datetime) -> PurgeCounts:
        """Hard-delete soft-deleted models and versions whose ``purge_time`` has passed,
        with their labels, metrics, policy bindings, aliases, transitions and files (blobs are
        left to blob GC)."""
        m, v = self._t.models, self._t.versions
        now_us = rows.to_micros(now)
        with self._write():
            due = m.select(m.id, m.tenant, m.model_id).where(
                m.delete_time.is_null(False), m.purge_time.is_null(False), m.purge_time <= now_us
            )
            if self._backend.supports_for_update:
                due = due.for_update()
            due_models = tuples(due)
            model_pks = [pk for (pk, _, _) in due_models]
            purged = [(tenant, names.model_name(model_id)) for (_, tenant, model_id) in due_models]
            doomed: dict[int, tuple[int, int]] = {}  # version id -> (model_pk, number)
            for chunk in chunks(model_pks):
                query = v.select(v.id, v.model_pk, v.number).where(v.model_pk.in_(chunk))
                for pk, model_pk, number in tuples(query):
                    doomed[pk] = (model_pk, number)
            expired = v.select(v.id, v.model_pk, v.number, v.tenant, v.model_id).where(
                v.delete_time.is_null(False), v.purge_time.is_null(False), v.purge_time <= now_us
            )
            gone = set(model_pks)
            for pk, model_pk, number, tenant, model_id in tuples(expired):
                doomed[pk] = (model_pk, number)
                if model_pk not in gone:
                    purged.append((tenant, names.version_name(model_id, number)))
            self._delete_versions(doomed, gone)
            self._delete_models(model_pks)
        return PurgeCounts(models=len(model_pks), versions=len(doomed), purged=tuple(purged))

    def _delete_versions(self, doomed: Mapping[int, tuple[int, int]], models: set[int]) -> None:
        t = self._t
        by_model: dict[int, list[int]] = {}
        for model_pk, number in doomed.values():
            if model_pk not in models:  # aliases of purged models go with the model
                by_model.setdefault(model_pk, []).append(number)
        for model_pk, numbers in by_model.items():
            for chunk in chunks(numbers):
                t.aliases.delete().where(
                    t.aliases.model_pk == model_pk, t.aliases.version_number.in_(chunk)
                ).execute()
        for chunk in chunks(list(doomed)):
            t.version_labels.delete().where(t.version_labels.owner.in_(chunk)).execute()
            t.version_metrics.delete().where(t.version_metrics.owner.in_(chunk)).execute()
            side_rows.delete_side_rows(t, chunk)
            t.transitions.delete().where(t.transitions.version_pk.in_(chunk)).execute()
            t.files.delete().where(t.files.version_pk.in_(chunk)).execute()
            t.versions.delete().where(t.versions.id.in_(chunk)).execute()

    def _delete_models(self, model_pks: Sequence[int]) -> None:
        t = self._t
        for chunk in chunks(model_pks):
            t.aliases.delete().where(t.aliases.model_pk.in_(chunk)).execute()
            t.model_labels.delete().where(t.model_labels.owner.in_(chunk)).execute()
            t.model_members.delete().where(t.model_members.model_pk.in_(chunk)).execute()
            t.models.delete().where(t.models.id.in_(chunk)).execute()
