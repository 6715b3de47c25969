"""Filter trees, ``order_by`` and keyset cursors compiled to peewee expressions.

Semantics, the same on every backend:

- Logic is two-valued: a comparison on a column that may be NULL (``delete_time``,
  ``expire_time``) is false when the column is NULL, so ``NOT`` is a true complement.
- ``labels.k`` / ``metrics.k`` compile to ``EXISTS`` on the side table with ``key = k``. ``=``
  and the ordering operators mean "the key is present and its value compares"; ``!=`` means
  "the key is present with another value" (``NOT labels.k = v`` also matches rows without k).
- ``HAS`` with no value (``labels.k:*``) means "the key is present"; on a plain field it means
  "set": non-empty string, non-zero number, non-NULL time. ``HAS`` with a value on a string
  means "contains"; on other kinds it means ``=``.
- A repeated field (``datasets.uri``) compiles to ``id IN (SELECT owner FROM <side table>
  WHERE tenant = t AND <element condition>)``, so an index on the side table's value finds the
  rows: a comparison holds if any element satisfies it (``!=`` means "has an element with
  another value"; ``NOT datasets.uri = v`` means "no element is v"), ``:`` with a value means
  "has an element equal to it" and ``:*`` "has any element".
- ``prefix`` (``name = "abc*"``) is ``LIKE 'abc%'`` with LIKE's wildcards escaped; strings
  compare case-sensitively in byte order.
- ``expired`` is ``expire_time IS NOT NULL AND expire_time <= now``.
- Order: the query's keys, then the primary key ascending. A key that can be missing (a NULL
  column, a map key the row lacks) sorts after every row that has it, in both directions.
- Cursor: the sort-key values of a row (times as int microseconds) followed by its primary key.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from math import isfinite
from typing import Any

import peewee

from ...domain.errors import InvalidArgument, Reason
from ...domain.filtering import (
    And,
    Comparison,
    Expr,
    FieldKind,
    FieldSpec,
    FilterSchema,
    Not,
    Op,
    Or,
    split_field,
)
from ...domain.ports import OrderKey
from .rows import to_micros

Sql = peewee.ColumnBase

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_TRUE = peewee.SQL("1 = 1")
_FALSE = peewee.SQL("1 = 0")
_LIKE_ESCAPE = "\\"


@dataclass(frozen=True)
class Column:
    """A stored column behind a schema field."""

    column: Any  # a peewee Field of the listed row class
    nullable: bool = False
    # The value a NULL stands for (a left-joined row that is absent): a comparison then also
    # holds for NULL when it holds for this value, and stays sargable otherwise.
    absent: str | None = None


@dataclass(frozen=True)
class Collection:
    """How one listed table maps its :class:`FilterSchema` fields to SQL.

    ``maps`` gives the side table (``tenant``, ``owner``, ``key``, ``value``) of each map
    prefix; ``computed`` builds boolean fields from ``now`` (microseconds); ``repeated`` gives
    the value column of a side table (``tenant``, ``owner``, value) of each repeated field.
    """

    schema: FilterSchema
    row: Any  # the listed row class: has ``id`` and ``tenant``
    columns: Mapping[str, Column]
    maps: Mapping[str, Any]
    computed: Mapping[str, Callable[[int], Sql]]
    repeated: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SortKey:
    """One term of the total order: what to sort by and how to read it back from a row."""

    expr: Any  # a peewee column expression
    kind: FieldKind
    nullable: bool
    descending: bool
    label: str  # key of the value in a ``.dicts()`` row


def _bad_filter(description: str) -> InvalidArgument:
    return InvalidArgument.field("filter", description, reason=Reason.INVALID_FILTER)


def _bad_order(description: str) -> InvalidArgument:
    return InvalidArgument.field("order_by", description, reason=Reason.INVALID_ORDER_BY)


def _bad_cursor(description: str) -> InvalidArgument:
    return InvalidArgument.field("page_token", description, reason=Reason.INVALID_PAGE_TOKEN)


# -- filters -----------------------------------------------------------------------------------


def compile_filter(expr: Expr, coll: Collection, tenant: str, now_us: int) -> Sql:
    """The WHERE condition for a filter tree."""
    if isinstance(expr, And):
        return _combine(
            [compile_filter(e, coll, tenant, now_us) for e in expr.operands], "AND", _TRUE
        )
    if isinstance(expr, Or):
        return _combine(
            [compile_filter(e, coll, tenant, now_us) for e in expr.operands], "OR", _FALSE
        )
    if isinstance(expr, Not):
        return peewee.NodeList(
            (peewee.SQL("NOT"), compile_filter(expr.operand, coll, tenant, now_us)), parens=True
        )
    return _comparison(expr, coll, tenant, now_us)


def _combine(parts: Sequence[Sql], glue: str, empty: Sql) -> Sql:
    if not parts:
        return empty
    if len(parts) == 1:
        return parts[0]
    return peewee.NodeList(parts, glue=f" {glue} ", parens=True)


def _comparison(cmp: Comparison, coll: Collection, tenant: str, now_us: int) -> Sql:
    spec = coll.schema.fields.get(cmp.field)
    if spec is not None:
        if cmp.field in coll.repeated:
            return _repeated(cmp, coll, coll.repeated[cmp.field], spec, tenant)
        if cmp.field in coll.computed:
            return _computed(cmp, coll.computed[cmp.field](now_us))
        column = coll.columns.get(cmp.field)
        if column is not None and column.absent is not None:
            return _with_absent(cmp, column.column, spec, column.absent)
        if column is not None:
            return _scalar(cmp, column.column, spec, nullable=column.nullable)
    head, key = split_field(cmp.field)
    side = coll.maps.get(head)
    spec = coll.schema.maps.get(head)
    if key is None or side is None or spec is None or not key:
        raise _bad_filter(f"unknown field {cmp.field!r}")
    conditions = [side.owner == coll.row.id, side.tenant == tenant, side.key == key]
    if not (cmp.op is Op.HAS and cmp.value is None):
        conditions.append(_scalar(cmp, side.value, spec, nullable=False))
    subquery = side.select(peewee.SQL("1")).where(*conditions)
    return peewee.fn.EXISTS(subquery)


def _repeated(cmp: Comparison, coll: Collection, value: Any, spec: FieldSpec, tenant: str) -> Sql:
    """Rows with an element satisfying ``cmp``, found through the side table's value index."""
    side = value.model
    conditions = [side.tenant == tenant]
    if cmp.op is Op.HAS and cmp.value is not None:
        conditions.append(_scalar(replace(cmp, op=Op.EQ), value, spec, nullable=False))
    elif cmp.op is not Op.HAS:
        conditions.append(_scalar(cmp, value, spec, nullable=False))
    in_side: Sql = coll.row.id.in_(side.select(side.owner).where(*conditions))
    return in_side


def _computed(cmp: Comparison, condition: Sql) -> Sql:
    if not isinstance(cmp.value, bool) or cmp.op not in (Op.EQ, Op.NE, Op.HAS):
        raise _bad_filter(f"{cmp.field} compares only with = true or = false")
    wanted = cmp.value if cmp.op is not Op.NE else not cmp.value
    if wanted:
        return condition
    return peewee.NodeList((peewee.SQL("NOT"), condition), parens=True)


def _scalar(cmp: Comparison, column: Sql, spec: FieldSpec, *, nullable: bool) -> Sql:
    condition = _scalar_condition(cmp, column, spec)
    if nullable:
        # Two-valued logic: a NULL column never satisfies a comparison.
        return peewee.NodeList((column.is_null(False), peewee.SQL("AND"), condition), parens=True)
    return condition


def _with_absent(cmp: Comparison, column: Sql, spec: FieldSpec, absent: str) -> Sql:
    """``cmp`` on a column whose NULL means ``absent`` (two-valued, like every comparison)."""
    condition = _scalar_condition(cmp, column, spec)
    if cmp.op is Op.HAS and cmp.value is None:
        holds = True
    elif cmp.op in (Op.EQ, Op.HAS):
        holds = cmp.value == absent
    else:  # an enum compares only with = and != (checked above)
        holds = cmp.value != absent
    glue, test = ("OR", column.is_null()) if holds else ("AND", column.is_null(False))
    return peewee.NodeList((test, peewee.SQL(glue), condition), parens=True)


def _scalar_condition(cmp: Comparison, column: Sql, spec: FieldSpec) -> Sql:
    kind, op, value = spec.kind, cmp.op, cmp.value
    if op is Op.HAS and value is None:
        return _is_set(column, kind)
    if cmp.prefix:
        if kind is not FieldKind.STRING or op not in (Op.EQ, Op.NE):
            raise _bad_filter(f"{cmp.field}: a trailing * works only with = or != on text")
        like = _like(column, _escape_like(_checked(cmp, spec)) + "%")
        return like if op is Op.EQ else peewee.NodeList((peewee.SQL("NOT"), like), parens=True)
    stored = _checked(cmp, spec)
    if op is Op.HAS:
        if kind is FieldKind.STRING:
            return _like(column, "%" + _escape_like(stored) + "%")
        op = Op.EQ
    if op in (Op.EQ, Op.NE):
        # Annotated: comparing with an Any value makes mypy infer Any.
        equality: Sql = column == stored if op is Op.EQ else column != stored
        return equality
    if kind in (FieldKind.ENUM, FieldKind.BOOL):
        raise _bad_filter(f"{cmp.field} compares only with = and !=")
    ordering: dict[Op, Callable[[Any, Any], Sql]] = {
        Op.LT: lambda c, v: c < v,
        Op.LE: lambda c, v: c <= v,
        Op.GT: lambda c, v: c > v,
        Op.GE: lambda c, v: c >= v,
    }
    return ordering[op](column, stored)


def _is_set(column: Sql, kind: FieldKind) -> Sql:
    if kind is FieldKind.STRING:
        return column != ""
    if kind in (FieldKind.INTEGER, FieldKind.NUMBER):
        return column != 0
    if kind is FieldKind.BOOL:
        raise _bad_filter("a boolean field has no presence test")
    return column.is_null(False)


def _checked(cmp: Comparison, spec: FieldSpec) -> Any:
    """The comparison's value as stored, or INVALID_FILTER if it has the wrong type."""
    value, kind = cmp.value, spec.kind
    if kind is FieldKind.STRING and isinstance(value, str) and "\x00" not in value:
        return value
    if kind is FieldKind.ENUM and isinstance(value, str) and value in spec.enum_values:
        return value
    if kind is FieldKind.BOOL and isinstance(value, bool):
        return value
    if kind is FieldKind.TIMESTAMP and isinstance(value, datetime):
        return to_micros(value)
    if kind is FieldKind.INTEGER and _is_int64(value):
        return value
    if kind is FieldKind.NUMBER and _is_finite(value):
        return float(value)  # type: ignore[arg-type]  # _is_finite checked the type
    raise _bad_filter(f"{cmp.field}: {value!r} is not a valid {kind.lower()} value")


def _is_int64(value: Any) -> bool:
    """A (non-bool) int every backend can bind as BIGINT."""
    return (
        isinstance(value, int) and not isinstance(value, bool) and _INT64_MIN <= value <= _INT64_MAX
    )


def _is_finite(value: Any) -> bool:
    """A (non-bool) finite int or float."""
    return isinstance(value, int | float) and not isinstance(value, bool) and isfinite(value)


def _escape_like(text: str) -> str:
    return (
        text.replace(_LIKE_ESCAPE, _LIKE_ESCAPE * 2)
        .replace("%", _LIKE_ESCAPE + "%")
        .replace("_", _LIKE_ESCAPE + "_")
    )


def _like(column: Sql, pattern: str) -> Sql:
    # The escape character is a literal: SQLite turns a prefix LIKE into an index range only
    # when ESCAPE is not a bound parameter.
    return peewee.NodeList(
        (column, peewee.SQL("LIKE"), peewee.Value(pattern), peewee.SQL(f"ESCAPE '{_LIKE_ESCAPE}'")),
        parens=True,
    )


def implied_bounds(
    expr: Expr | None, field: str, spec: FieldSpec, column: Sql
) -> tuple[list[Sql], bool]:
    """What a filter requires of one map field (``metrics.x``) in every matching row: the
    conditions on ``column`` (the side table's value) and whether the key must be present.

    Only comparisons the filter ANDs at its top level count. Each one requires the key (every
    comparison on a map key does, see the module docstring) and, unless it is a presence test
    (``:*``), holds a condition on the value. The filter itself still applies them; these let
    an index walk start and stop where the matches can be.
    """
    conjuncts: list[Expr] = [] if expr is None else [expr]
    bounds: list[Sql] = []
    present = False
    while conjuncts:
        item = conjuncts.pop()
        if isinstance(item, And):
            conjuncts.extend(item.operands)
            continue
        if not isinstance(item, Comparison) or item.field != field or item.prefix:
            continue
        present = True
        if not (item.op is Op.HAS and item.value is None):
            bounds.append(_scalar_condition(item, column, spec))
    return bounds, present


# -- order and keyset --------------------------------------------------------------------------


@dataclass(frozen=True)
class Ordering:
    """The total order of a listing: its keys (primary key last) and the joins they need."""

    keys: tuple[SortKey, ...]
    joins: tuple[tuple[Any, Sql], ...]  # (side-table alias, ON condition), LEFT OUTER

    def order_by(self) -> list[Any]:
        """ORDER BY terms; missing values last in both directions."""
        terms = []
        for k in self.keys:
            nulls = "LAST" if k.nullable else None
            terms.append(k.expr.desc(nulls=nulls) if k.descending else k.expr.asc(nulls=nulls))
        return terms

    def selected(self) -> list[Any]:
        """Extra selected columns holding the joined sort values."""
        return [k.expr.alias(k.label) for k in self.keys if k.label.startswith("_k")]

    def cursor(self, row: Mapping[str, Any]) -> tuple[Any, ...]:
        """The cursor of a ``.dicts()`` row: its sort values, then its primary key."""
        return tuple(row[k.label] for k in self.keys)

    def after(self, cursor: tuple[Any, ...]) -> Sql:
        """The condition selecting rows strictly after ``cursor`` in this order."""
        check_cursor(self.keys, cursor)
        keys = self.keys
        if all(not k.nullable for k in keys) and len({k.descending for k in keys}) == 1:
            # Row-value comparison: one index range scan on both backends.
            lhs = peewee.EnclosedNodeList([k.expr for k in keys])
            rhs = peewee.EnclosedNodeList([peewee.Value(v) for v in cursor])
            return lhs < rhs if keys[0].descending else lhs > rhs
        disjuncts: list[Sql] = []
        equal: list[Sql] = []
        for key, value in zip(keys, cursor, strict=True):
            strictly = _strictly_after(key, value)
            if strictly is not None:
                disjuncts.append(_combine([*equal, strictly], "AND", _TRUE))
            equal.append(key.expr.is_null() if value is None else key.expr == value)
        condition = _combine(disjuncts, "OR", _FALSE)
        first, start = keys[0], cursor[0]
        if not first.nullable:
            # Redundant bound on the leading key so the scan can start at the cursor.
            bound = first.expr <= start if first.descending else first.expr >= start
            condition = peewee.NodeList((bound, peewee.SQL("AND"), condition), parens=True)
        return condition


def _strictly_after(key: SortKey, value: Any) -> Sql | None:
    if value is None:
        return None  # missing values sort last: nothing of this key comes after
    expr: Sql = key.expr
    beyond: Sql = expr < value if key.descending else expr > value
    if key.nullable:
        return peewee.NodeList((key.expr.is_null(), peewee.SQL("OR"), beyond), parens=True)
    return beyond


def plan_order(order_by: Sequence[OrderKey], coll: Collection, tenant: str) -> Ordering:
    """Sort keys for ``order_by`` plus the primary-key tie-breaker, and their joins."""
    keys: list[SortKey] = []
    joins: list[tuple[Any, Sql]] = []
    for index, term in enumerate(order_by):
        head, key = split_field(term.field)
        if key is not None and term.field not in coll.columns:
            side, spec = coll.maps.get(head), coll.schema.maps.get(head)
            if side is None or spec is None or not spec.orderable or not key:
                raise _bad_order(f"cannot order by {term.field!r}")
            joined = side.alias(f"o{index}")
            on = (joined.owner == coll.row.id) & (joined.tenant == tenant) & (joined.key == key)
            joins.append((joined, on))
            keys.append(SortKey(joined.value, spec.kind, True, term.descending, f"_k{index}"))
            continue
        column, spec = coll.columns.get(term.field), coll.schema.fields.get(term.field)
        if column is None or spec is None or not spec.orderable:
            raise _bad_order(f"cannot order by {term.field!r}")
        keys.append(
            SortKey(column.column, spec.kind, column.nullable, term.descending, column.column.name)
        )
    keys.append(SortKey(coll.row.id, FieldKind.INTEGER, False, False, "id"))
    return Ordering(tuple(keys), tuple(joins))


def check_cursor(keys: Sequence[SortKey], cursor: tuple[Any, ...]) -> None:
    """INVALID_PAGE_TOKEN unless ``cursor`` has one value of the right type per sort key."""
    if len(cursor) != len(keys):
        raise _bad_cursor("does not match the requested order")
    for key, value in zip(keys, cursor, strict=True):
        if value is None and key.nullable:
            continue
        if not _cursor_value_ok(key.kind, value):
            raise _bad_cursor("does not match the requested order")


def _cursor_value_ok(kind: FieldKind, value: Any) -> bool:
    if kind in (FieldKind.STRING, FieldKind.ENUM):
        return isinstance(value, str) and "\x00" not in value  # PostgreSQL rejects NUL
    if kind in (FieldKind.INTEGER, FieldKind.TIMESTAMP):
        return _is_int64(value)
    if kind is FieldKind.NUMBER:
        return _is_finite(value)
    return False
