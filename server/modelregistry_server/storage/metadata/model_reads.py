"""A one-statement read of a single model, with SQL text built once per store.

The same shape as :mod:`.version_reads`: the ``models`` row and its labels are one
``UNION ALL`` over the matched row (one statement, so one snapshot without a transaction),
each result row starting with its kind; on PostgreSQL each connection ``PREPARE``s it once.
:attr:`ModelReads.lock` is the short ``SELECT … FOR UPDATE`` that locks the row before a
write reads it this way (PostgreSQL; SQLite's write transaction holds the lock already).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ...domain.entities import Model
from . import rows
from .schema import Tables
from .version_reads import MARK, execute_text, numbered, row_columns

_ROW, _LABEL = 0, 1
_NO_TEXT = "CAST(NULL AS TEXT)"
_BY_ID = "modelregistry_model_by_id"


@dataclass(frozen=True)
class ModelRead:
    """What the read found: the row (field name -> value) and the labels."""

    row: dict[str, Any]
    labels: dict[str, str]

    def entity(self) -> Model:
        """The model (a copy of the labels: the caller may change the entity's)."""
        return rows.model_entity(self.row, dict(self.labels))


@dataclass(frozen=True)
class ModelReads:
    """The SQL text of the read (parameters: tenant, model id, tenant) and of the lock."""

    by_id: str
    lock: str  # empty: no row lock statement (SQLite)
    columns: tuple[str, ...]
    setup: tuple[str, ...] = ()

    def found(self, result: Sequence[Sequence[Any]]) -> ModelRead | None:
        """The row and labels from the statement's rows, or None if it matched none."""
        row: dict[str, Any] | None = None
        labels: dict[str, str] = {}
        for kind, *values, key, text in result:
            if kind == _ROW:
                row = dict(zip(self.columns, values, strict=True))
            else:
                labels[key] = text
        return None if row is None else ModelRead(row, labels)


def model_reads(tables: Tables, dialect: str, param: str) -> ModelReads:
    """Build the statements for ``tables`` in ``dialect`` with the placeholder ``param``."""
    names, selected, blanks = row_columns(tables.models, "m")
    models = tables.models._meta.table_name
    labels = tables.model_labels._meta.table_name
    p = MARK
    match = f'"tenant" = {p} AND "model_id" = {p}'
    text = (
        f'WITH m AS (SELECT * FROM "{models}" WHERE {match}) '
        f"SELECT {_ROW}, {selected}, {_NO_TEXT}, {_NO_TEXT} FROM m "
        f'UNION ALL SELECT {_LABEL}, {blanks}, l."key", l."value" '
        f'FROM "{labels}" l JOIN m ON l."owner" = m."id" WHERE l."tenant" = {p}'
    )
    if dialect != "postgresql":
        return ModelReads(text.replace(MARK, param), "", names)
    lock = f'SELECT "id" FROM "{models}" WHERE {match} FOR UPDATE'.replace(MARK, param)
    return ModelReads(
        execute_text(_BY_ID, text.count(MARK), param),
        lock,
        names,
        (f"PREPARE {_BY_ID} AS {numbered(text)}",),
    )
