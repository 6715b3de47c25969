"""One-statement reads of a single version, with SQL text built once per store.

A version is its ``versions`` row plus its labels, metrics and alias names. Read through
peewee that is four selects in a snapshot (BEGIN, four statements, COMMIT), and peewee
compiles each select's SQL text on every call, which costs more than SQLite takes to run it.
Here the four parts are one ``UNION ALL`` over the matched row: one statement, so one snapshot
without a transaction, and its text is built here once and sent with parameters through the
database's ``execute_sql``. Each result row starts with its kind (the version row, a label,
a metric, an alias); the other parts leave the version's columns NULL.

On SQLite the driver keeps each connection's compiled statements (sqlite3's statement cache);
on PostgreSQL planning the union costs about 1 ms, more than running it, so each connection
``PREPARE``s the two statements once (:attr:`VersionReads.setup`) and a read is an
``EXECUTE`` of one of them.

The hot single-version reads use this (GetModelVersion by number and ``latest``), and so do
locked reads for writes: on SQLite inside the write transaction (``BEGIN IMMEDIATE`` holds
the lock already), on PostgreSQL after :attr:`VersionReads.lock`, a short ``SELECT … FOR
UPDATE`` of the row (then the read, a new statement, sees the row as locked). Listings stay
with peewee.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ...domain.entities import ModelVersion, VersionState
from . import rows
from .schema import Tables

_ROW, _LABEL, _METRIC, _ALIAS = 0, 1, 2, 3
# Typed in the first part: PostgreSQL resolves the types of a UNION's columns pairwise.
_NO_TEXT, _NO_REAL = "CAST(NULL AS TEXT)", "CAST(NULL AS DOUBLE PRECISION)"


@dataclass(frozen=True)
class VersionRead:
    """What a read found: the row (field name -> value), labels, metrics and alias names."""

    row: dict[str, Any]
    labels: dict[str, str]
    metrics: dict[str, float]
    aliases: list[str]

    def entity(self) -> ModelVersion:
        """The version (copies of the maps: the caller may change the entity's)."""
        return rows.version_entity(self.row, dict(self.labels), dict(self.metrics), self.aliases)


@dataclass(frozen=True)
class VersionReads:
    """The SQL text of the two reads and the version columns they return, in order."""

    by_number: str
    latest: str
    columns: tuple[str, ...]  # field names, as :func:`rows.version_entity` reads them
    setup: tuple[str, ...] = ()  # run once on each connection before the first read
    lock: str = ""  # locks the row by number (parameters as a read's first three); PostgreSQL
    ready: str = str(VersionState.READY)

    def number_params(self, tenant: str, model_id: str, number: int) -> tuple[Any, ...]:
        """The parameters of :attr:`by_number`."""
        return (tenant, model_id, number, tenant, tenant, tenant)

    def latest_params(self, tenant: str, model_id: str, now_us: int) -> tuple[Any, ...]:
        """The parameters of :attr:`latest` (the highest READY, live, unexpired number)."""
        return (tenant, model_id, self.ready, now_us, tenant, tenant, tenant)

    def entity(self, found: Sequence[Sequence[Any]]) -> ModelVersion | None:
        """The version from the statement's rows, or None if it matched no version."""
        read = self.found(found)
        return None if read is None else read.entity()

    def found(self, found: Sequence[Sequence[Any]]) -> VersionRead | None:
        """The parts of the version from the statement's rows, or None."""
        row: dict[str, Any] | None = None
        labels: dict[str, str] = {}
        metrics: dict[str, float] = {}
        aliases: list[str] = []
        for kind, *values, key, text, real in found:
            if kind == _ROW:
                row = dict(zip(self.columns, values, strict=True))
            elif kind == _LABEL:
                labels[key] = text
            elif kind == _METRIC:
                metrics[key] = real
            else:
                aliases.append(key)
        return None if row is None else VersionRead(row, labels, metrics, aliases)


def row_columns(table: Any, alias: str) -> tuple[tuple[str, ...], str, str]:
    """A table's field names, its columns selected from ``alias``, and as many NULLs (the
    other branches of a ``UNION ALL`` read)."""
    fields = table._meta.sorted_fields
    names = tuple(f.name for f in fields)
    selected = ", ".join(f'{alias}."{f.column_name}"' for f in fields)
    return names, selected, ", ".join("NULL" for _ in fields)


def version_reads(tables: Tables, dialect: str, param: str) -> VersionReads:
    """Build the statements for ``tables`` in ``dialect`` with the driver's placeholder
    ``param``."""
    names, selected, blanks = row_columns(tables.versions, "v")
    labels = tables.version_labels._meta.table_name
    metrics = tables.version_metrics._meta.table_name
    aliases = tables.aliases._meta.table_name
    alias = tables.aliases.alias_name.column_name
    versions = tables.versions._meta.table_name
    p = MARK

    def statement(match: str) -> str:
        return (
            f'WITH v AS (SELECT * FROM "{versions}" WHERE {match}) '
            f"SELECT {_ROW}, {selected}, {_NO_TEXT}, {_NO_TEXT}, {_NO_REAL} FROM v "
            f'UNION ALL SELECT {_LABEL}, {blanks}, l."key", l."value", NULL '
            f'FROM "{labels}" l JOIN v ON l."owner" = v."id" WHERE l."tenant" = {p} '
            f'UNION ALL SELECT {_METRIC}, {blanks}, m."key", NULL, m."value" '
            f'FROM "{metrics}" m JOIN v ON m."owner" = v."id" WHERE m."tenant" = {p} '
            f'UNION ALL SELECT {_ALIAS}, {blanks}, a."{alias}", NULL, NULL '
            f'FROM "{aliases}" a JOIN v ON a."model_pk" = v."model_pk" '
            f'AND a."version_number" = v."number" WHERE a."tenant" = {p}'
        )

    number = f'"tenant" = {p} AND "model_id" = {p} AND "number" = {p}'
    by_number = statement(number)
    latest = statement(
        f'"tenant" = {p} AND "model_id" = {p} AND "state" = {p} AND "delete_time" IS NULL '
        f'AND ("expire_time" IS NULL OR "expire_time" > {p}) ORDER BY "number" DESC LIMIT 1'
    )
    if dialect != "postgresql":
        return VersionReads(by_number.replace(MARK, param), latest.replace(MARK, param), names)
    setup = tuple(
        f"PREPARE {name} AS {numbered(text)}"
        for name, text in ((_BY_NUMBER, by_number), (_LATEST, latest))
    )
    lock = f'SELECT "id" FROM "{versions}" WHERE {number} FOR UPDATE'.replace(MARK, param)
    return VersionReads(
        execute_text(_BY_NUMBER, by_number.count(MARK), param),
        execute_text(_LATEST, latest.count(MARK), param),
        names,
        setup,
        lock,
    )


MARK = "\x00"  # a parameter, until the dialect's placeholders are known
_BY_NUMBER, _LATEST = "modelregistry_version_by_number", "modelregistry_latest_version"


def numbered(text: str) -> str:
    """``text`` with its parameters as ``$1``, ``$2``… (what PREPARE takes)."""
    parts = text.split(MARK)
    return parts[0] + "".join(f"${i}{part}" for i, part in enumerate(parts[1:], 1))


def execute_text(name: str, count: int, param: str) -> str:
    """``EXECUTE name`` with ``count`` parameters."""
    return f"EXECUTE {name} ({', '.join(param for _ in range(count))})"


SIDE_LABEL, SIDE_METRIC, SIDE_ALIAS = 1, 2, 3


def side_rows_text(tables: Tables, param: str, owners: int, models: int) -> str:
    """One statement for the labels, metrics and alias names of a page of versions.

    Parameters: the ``owners`` version row ids (twice), the tenant, then the ``models``
    model row ids. Each row is (kind, owner, key, text value, real value, version number,
    tenant): labels and metrics are found by owner alone (see ``StoreCore._pairs``) and carry
    their tenant for the caller to check; an alias row holds the model's row id as owner,
    its name as key and the version it points at.
    """
    labels = tables.version_labels._meta.table_name
    metrics = tables.version_metrics._meta.table_name
    aliases = tables.aliases._meta.table_name
    alias = tables.aliases.alias_name.column_name
    ids = ", ".join(param for _ in range(owners))
    pks = ", ".join(param for _ in range(models))
    return (
        f'SELECT {SIDE_LABEL}, l."owner", l."key", l."value", {_NO_REAL}, '
        f'CAST(NULL AS BIGINT), l."tenant" FROM "{labels}" l WHERE l."owner" IN ({ids}) '
        f'UNION ALL SELECT {SIDE_METRIC}, m."owner", m."key", NULL, m."value", NULL, m."tenant" '
        f'FROM "{metrics}" m WHERE m."owner" IN ({ids}) '
        f'UNION ALL SELECT {SIDE_ALIAS}, a."model_pk", a."{alias}", NULL, NULL, '
        f'a."version_number", a."tenant" FROM "{aliases}" a '
        f'WHERE a."tenant" = {param} AND a."model_pk" IN ({pks})'
    )
