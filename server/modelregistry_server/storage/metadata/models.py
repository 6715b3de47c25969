"""Models and their version counters (the ``ModelCatalog`` port)."""

from __future__ import annotations

from ...domain.entities import Model, Page
from ...domain.errors import AlreadyExists, Reason
from ...domain.ports import ListQuery
from . import rows, statements
from .core import StoreCore
from .database import Backend
from .model_reads import ModelRead
from .pages import fetch_page
from .policies import visible_condition


class ModelRows(StoreCore):
    """``models`` and ``model_labels``."""

    def __init__(self, backend: Backend) -> None:
        super().__init__(backend)
        m, p = self._t.models, self._db.param
        counter, tenant, model_id, deleted, pk = (
            statements.column(m, n)
            for n in ("latest_version_number", "tenant", "model_id", "delete_time", "id")
        )
        self._allocate = (
            f"UPDATE {statements.quoted(m)} SET {counter} = {counter} + 1"
            f" WHERE {tenant} = {p} AND {model_id} = {p} AND {deleted} IS NULL"
            f" RETURNING {counter}, {pk}"
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
        """The model (soft-deleted included), locked for the transaction if ``for_update``
        (one statement, see :mod:`.model_reads`; locked: the row lock first on PostgreSQL)."""
        reads, params = self._model_reads, (tenant, model_id, tenant)
        if not for_update:
            with self._read():
                read = reads.found(self._fetch(reads.by_id, params, self._setup))
            return None if read is None else read.entity()
        with self._write():
            if reads.lock and not self._fetch(reads.lock, params[:2]):
                return None
            read = reads.found(self._fetch(reads.by_id, params, self._setup))
            if read is None:
                return None
            # save_model and the model's row id lookups use what this read found
            self._hold(("model", tenant, model_id), read)
            self._hold(("model_pk", tenant, model_id), read.row["id"])
            return read.entity()

    def save_model(self, model: Model) -> None:
        """Write every mutable field (labels included) of an existing model; after a locked
        read of it in this transaction, only the labels that changed."""
        with self._write():
            held: ModelRead | None = self._held_row(
                ("model", model.tenant, model.model_id), take=True
            )
            pk = held.row["id"] if held else self._require_model_pk(model.tenant, model.model_id)
            self._update_row(self._t.models, pk, rows.model_mutable_columns(model))
            labels = self._t.model_labels
            if held is None:
                self._replace_pairs(labels, model.tenant, pk, model.labels)
            else:
                self._sync_pairs(labels, model.tenant, pk, held.labels, model.labels)

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
            if not found:
                return None
            # The row is locked now: insert_version need not look its id up again.
            self._hold(("model_pk", tenant, model_id), found[0][1])
            return int(found[0][0])
