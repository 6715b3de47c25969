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

Only the hot single-version reads use this (GetModelVersion by number and ``latest``); locked
reads for writes and listings stay with peewee.
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
class VersionReads:
    """The SQL text of the two reads and the version columns they return, in order."""

    by_number: str
    latest: str
    columns: tuple[str, ...]  # field names, as :func:`rows.version_entity` reads them
    setup: tuple[str, ...] = ()  # run once on each connection before the first read
    ready: str = str(VersionState.READY)

    def number_params(self, tenant: str, model_id: str, number: int) -> tuple[Any, ...]:
        """The parameters of :attr:`by_number`."""
        return (tenant, model_id, number, tenant, tenant, tenant)

    def latest_params(self, tenant: str, model_id: str, now_us: int) -> tuple[Any, ...]:
        """The parameters of :attr:`latest` (the highest READY, live, unexpired number)."""
        return (tenant, model_id, self.ready, now_us, tenant, tenant, tenant)

    def entity(self, found: Sequence[Sequence[Any]]) -> ModelVersion | None:
        """The version from the statement's rows, or None if it matched no version."""
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
        return None if row is None else rows.version_entity(row, labels, metrics, aliases)


def version_reads(tables: Tables, dialect: str, param: str) -> VersionReads:
    """Build the statements for ``tables`` in ``dialect`` with the driver's placeholder
    ``param``."""
    fields = tables.versions._meta.sorted_fields
    names = tuple(f.name for f in fields)
    selected = ", ".join(f'v."{f.column_name}"' for f in fields)
    blanks = ", ".join("NULL" for _ in fields)
    labels = tables.version_labels._meta.table_name
    metrics = tables.version_metrics._meta.table_name
    aliases = tables.aliases._meta.table_name
    alias = tables.aliases.alias_name.column_name
    versions = tables.versions._meta.table_name
    p = _MARK

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

    by_number = statement(f'"tenant" = {p} AND "model_id" = {p} AND "number" = {p}')
    latest = statement(
        f'"tenant" = {p} AND "model_id" = {p} AND "state" = {p} AND "delete_time" IS NULL '
        f'AND ("expire_time" IS NULL OR "expire_time" > {p}) ORDER BY "number" DESC LIMIT 1'
    )
    if dialect != "postgresql":
        return VersionReads(by_number.replace(_MARK, param), latest.replace(_MARK, param), names)
    setup = tuple(
        f"PREPARE {name} AS {_numbered(text)}"
        for name, text in ((_BY_NUMBER, by_number), (_LATEST, latest))
    )
    return VersionReads(
        _execute(_BY_NUMBER, by_number.count(_MARK), param),
        _execute(_LATEST, latest.count(_MARK), param),
        names,
        setup,
    )


_MARK = "\x00"  # a parameter, until the dialect's placeholders are known
_BY_NUMBER, _LATEST = "modelregistry_version_by_number", "modelregistry_latest_version"


def _numbered(text: str) -> str:
    """``text`` with its parameters as ``$1``, ``$2``… (what PREPARE takes)."""
    parts = text.split(_MARK)
    return parts[0] + "".join(f"${i}{part}" for i, part in enumerate(parts[1:], 1))


def _execute(name: str, count: int, param: str) -> str:
    return f"EXECUTE {name} ({', '.join(param for _ in range(count))})"
