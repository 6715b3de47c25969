"""Aliases and their history (the ``AliasBook`` and ``AliasHistory`` ports)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ...domain.entities import Alias, AliasMove, Page
from . import rows, statements
from .core import StoreCore, check_limit, dicts, first
from .database import Backend


def _move(row: dict[str, Any]) -> AliasMove:
    return AliasMove(
        tenant=row["tenant"],
        model_id=row["model_id"],
        alias=row["alias_name"],
        version_number=row["version_number"],
        time=rows.from_micros(row["move_time"]),
        principal=row["principal"],
        method=row["method"],
        sequence=row["id"],
    )


class AliasRows(StoreCore):
    """``aliases``: one row per alias, keyed by model and name."""

    def __init__(self, backend: Backend) -> None:
        super().__init__(backend)
        a = self._t.aliases
        number, time = (statements.column(a, n) for n in ("version_number", "update_time"))
        target = ", ".join(statements.column(a, n) for n in ("model_pk", "alias_name"))
        self._upsert_alias = statements.insert(
            a,
            ("tenant", "model_pk", "alias_name", "version_number", "update_time"),
            self._db.param,
            f" ON CONFLICT ({target}) DO UPDATE SET {number} = excluded.{number},"
            f" {time} = excluded.{time}",
        )

    def set_alias(self, alias: Alias) -> None:
        """Create or move an alias in one step."""
        update_us = rows.to_micros(alias.update_time)
        with self._write():
            model_pk = self._require_model_pk(alias.tenant, alias.model_id)
            upsert = self._upsert_alias
            values = [alias.tenant, model_pk, alias.alias, alias.version_number, update_us]
            self._run(upsert.sql, upsert.params(values))

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

    # -- history -------------------------------------------------------------------------------

    def record_alias_move(self, move: AliasMove) -> None:
        """Append a move (in the caller's transaction)."""
        h = self._t.alias_history
        with self._write():
            self._insert_row(
                h,
                {
                    "tenant": move.tenant,
                    "model_id": move.model_id,
                    "alias_name": move.alias,
                    "version_number": move.version_number,
                    "move_time": rows.to_micros(move.time),
                    "principal": move.principal,
                    "method": move.method,
                },
            )

    def alias_at(self, tenant: str, model_id: str, alias: str, at: datetime) -> AliasMove | None:
        """The last move of the alias at or before ``at``."""
        h = self._t.alias_history
        with self._read():
            row = first(
                h.select()
                .where(
                    h.tenant == tenant,
                    h.model_id == model_id,
                    h.alias_name == alias,
                    h.move_time <= rows.to_micros(at),
                )
                .order_by(h.move_time.desc(), h.id.desc())
            )
        return None if row is None else _move(row)

    def list_alias_moves(
        self, tenant: str, model_id: str, alias: str | None, after: int | None, limit: int
    ) -> Page[AliasMove]:
        """Moves oldest first; the cursor is ``(sequence,)``."""
        check_limit(limit)
        h = self._t.alias_history
        query = h.select().where(h.tenant == tenant, h.model_id == model_id)
        if alias is not None:
            query = query.where(h.alias_name == alias)
        if after is not None:
            query = query.where(h.id > after)
        with self._read():
            found = dicts(query.order_by(h.id).limit(limit + 1))
        items = [_move(r) for r in found[:limit]]
        return Page(items=items, next_cursor=(items[-1].sequence,) if len(found) > limit else None)
