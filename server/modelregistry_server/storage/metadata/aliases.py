"""Aliases (the ``AliasBook`` port)."""

from __future__ import annotations

from ...domain.entities import Alias
from . import rows
from .core import StoreCore, dicts, first


class AliasRows(StoreCore):
    """``aliases``: one row per alias, keyed by model and name."""

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
            row = first(
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
            return [rows.alias_entity(r, tenant, model_id) for r in dicts(query)]
