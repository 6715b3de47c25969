"""Models and their version counters (the ``ModelCatalog`` port)."""

from __future__ import annotations

from ...domain.entities import Model, Page
from ...domain.errors import AlreadyExists, Reason
from ...domain.ports import ListQuery
from . import rows, statements
from .core import StoreCore, first
from .database import Backend
from .pages import fetch_page
from .policies import visible_condition


class ModelRows(StoreCore):
    """``models`` and ``model_labels``."""

    def __init__(self, backend: Backend) -> None:
        super().__init__(backend)
        m, p = self._t.models, self._db.param
        counter, tenant, model_id, deleted = (
            statements.column(m, n)
            for n in ("latest_version_number", "tenant", "model_id", "delete_time")
        )
        self._allocate = (
            f"UPDATE {statements.quoted(m)} SET {counter} = {counter} + 1"
            f" WHERE {tenant} = {p} AND {model_id} = {p} AND {deleted} IS NULL"
            f" RETURNING {counter}"
        )

    def insert_model(self, model: Model) -> None:
        """Insert a new model; raises AlreadyExists(MODEL_ALREADY_EXISTS) if the id is taken."""
        m = self._t.models
        with self._write():
            pk = self._insert_new(
                m,
                m.insert(
                    **rows.model_columns(model), latest_version_number=model.latest_version_number
                ),
                [m.tenant, m.model_id],
                lambda: AlreadyExists(
                    f"model {model.model_id!r} already exists", reason=Reason.MODEL_ALREADY_EXISTS
                ),
            )
            self._insert_pairs(self._t.model_labels, model.tenant, pk, model.labels)

    def get_model(self, tenant: str, model_id: str, *, for_update: bool = False) -> Model | None:
        """The model (soft-deleted included), locked for the transaction if ``for_update``."""
        m = self._t.models
        scope = self._write() if for_update else self._read(snapshot=True)
        with scope:
            query = m.select().where(m.tenant == tenant, m.model_id == model_id)
            if for_update and self._backend.supports_for_update:
                query = query.for_update()
            row = first(query)
            if row is None:
                return None
            labels = self._pairs(self._t.model_labels, tenant, [row["id"]])
            return rows.model_entity(row, labels[row["id"]])

    def save_model(self, model: Model) -> None:
        """Write every mutable field (labels included) of an existing model."""
        m = self._t.models
        with self._write():
            pk = self._require_model_pk(model.tenant, model.model_id)
            self._update_row(m, pk, rows.model_mutable_columns(model))
            self._replace_pairs(self._t.model_labels, model.tenant, pk, model.labels)

    def list_models(self, tenant: str, query: ListQuery) -> Page[Model]:
        """One page of models matching the query (soft-deleted only if ``show_deleted``)."""
        m = self._t.models
        scope = []
        if query.visible_to is not None:
            scope.append(visible_condition(self._t, tenant, m.id, query.visible_to))
        with self._read(snapshot=True):
            found, cursor = fetch_page(self._models_listing, tenant, query, now_us=0, scope=scope)
            labels = self._pairs(self._t.model_labels, tenant, [r["id"] for r in found])
            items = [rows.model_entity(r, labels[r["id"]]) for r in found]
        return Page(items=items, next_cursor=cursor)

    def allocate_version_number(self, tenant: str, model_id: str) -> int | None:
        """Atomically increment and return the version counter of a live model, or None."""
        with self._write():
            # The UPDATE holds the row (PostgreSQL) or database (SQLite) lock until commit,
            # so the value it returns is ours alone.
            found = self._fetch(self._allocate, [tenant, model_id])
            return int(found[0][0]) if found else None
