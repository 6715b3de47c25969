"""Hot write statements whose SQL text is built once per store.

peewee compiles a query's SQL text on every call, and for the few statements every write
sends (the version or model row UPDATE, the event INSERT and the chain head's UPDATEs, label
and metric rows) that costs more than the database takes to run them. A :class:`Statement`
holds the text, built here once from the table classes, and the ``db_value`` converter of
each parameter's field, so parameters reach the driver as peewee would send them. Callers run
it through the database's ``execute_sql`` like every other statement
(:meth:`.core.StoreCore._run`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

Convert = Callable[[Any], Any]


@dataclass(frozen=True)
class Statement:
    """SQL text with the driver's placeholders and one converter per placeholder."""

    sql: str
    converters: tuple[Convert, ...]

    def params(self, values: Sequence[Any]) -> list[Any]:
        """``values`` (one per placeholder, in order) as the driver takes them."""
        return [c(v) for c, v in zip(self.converters, values, strict=True)]


def column(table: Any, name: str) -> str:
    """The quoted column of field ``name``."""
    return f'"{table._meta.fields[name].column_name}"'


def converter(table: Any, name: str) -> Convert:
    """The converter peewee applies to a value of field ``name``."""
    convert: Convert = table._meta.fields[name].db_value
    return convert


def quoted(table: Any) -> str:
    """The quoted table name."""
    return f'"{table._meta.table_name}"'


def insert(table: Any, names: Sequence[str], param: str, suffix: str = "") -> Statement:
    """``INSERT INTO table (names) VALUES (...)`` and ``suffix``."""
    columns = ", ".join(column(table, n) for n in names)
    values = ", ".join(param for _ in names)
    return Statement(
        f"INSERT INTO {quoted(table)} ({columns}) VALUES ({values}){suffix}",
        tuple(converter(table, n) for n in names),
    )


def update(
    table: Any, names: Sequence[str], where: Sequence[str], param: str, suffix: str = ""
) -> Statement:
    """``UPDATE table SET name = ?, ... WHERE key = ? AND ...`` and ``suffix``; parameters:
    the ``names`` values, then the ``where`` values."""
    sets = ", ".join(f"{column(table, n)} = {param}" for n in names)
    match = " AND ".join(f"{column(table, n)} = {param}" for n in where)
    return Statement(
        f"UPDATE {quoted(table)} SET {sets} WHERE {match}{suffix}",
        tuple(converter(table, n) for n in (*names, *where)),
    )


@dataclass(frozen=True)
class PairWrites:
    """Upserts and deletes of one owner's label or metric rows (``extra``: columns every
    row repeats, such as a metric's ``model_pk``)."""

    head: str  # INSERT INTO ... VALUES
    row: str  # (?, ?, ?, ?)
    upsert: str  # ON CONFLICT (owner, key) DO UPDATE SET value = excluded.value
    delete: str  # DELETE FROM ... WHERE owner = ? AND key IN
    param: str
    names: tuple[str, ...]
    converters: tuple[Convert, ...]

    def insert_sql(self, count: int, *, replace: bool) -> str:
        """An INSERT of ``count`` rows; with ``replace``, a row whose key exists is updated."""
        text = self.head + ", ".join(self.row for _ in range(count))
        return text + self.upsert if replace else text

    def rows(self, common: Sequence[Any], pairs: Sequence[tuple[str, Any]]) -> list[Any]:
        """The parameters of :meth:`insert_sql` for ``pairs``: ``common`` is tenant, owner
        and the ``extra`` values."""
        converters, found = self.converters, list[Any]()
        for key, value in pairs:
            values = (*common[:2], key, value, *common[2:])
            found.extend(c(v) for c, v in zip(converters, values, strict=True))
        return found

    def delete_sql(self, count: int) -> str:
        """A DELETE of ``count`` keys of one owner (parameters: owner, then the keys)."""
        return f"{self.delete} ({', '.join(self.param for _ in range(count))})"


def pair_writes(table: Any, extra: Sequence[str], param: str) -> PairWrites:
    """The :class:`PairWrites` of a labels or metrics table."""
    names = ("tenant", "owner", "key", "value", *extra)
    columns = ", ".join(column(table, n) for n in names)
    value = column(table, "value")
    return PairWrites(
        head=f"INSERT INTO {quoted(table)} ({columns}) VALUES ",
        row=f"({', '.join(param for _ in names)})",
        upsert=(
            f" ON CONFLICT ({column(table, 'owner')}, {column(table, 'key')})"
            f" DO UPDATE SET {value} = excluded.{value}"
        ),
        delete=(
            f"DELETE FROM {quoted(table)} WHERE {column(table, 'owner')} = {param}"
            f" AND {column(table, 'key')} IN"
        ),
        param=param,
        names=names,
        converters=tuple(converter(table, n) for n in names),
    )
