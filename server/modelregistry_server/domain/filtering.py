"""AIP-160 style filters: the typed syntax tree and the field schemas it is checked against.

``parse_filter(text, schema)`` turns a filter string into an :data:`Expr` whose comparisons
carry values already converted to the field's type; the metadata store compiles that tree to
SQL. See ``filter_parser.py`` for the grammar.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class FieldKind(StrEnum):
    """Value type of a filterable field."""

    STRING = "STRING"
    NUMBER = "NUMBER"  # compared as float
    INTEGER = "INTEGER"
    TIMESTAMP = "TIMESTAMP"  # RFC 3339 string in the filter -> aware UTC datetime
    ENUM = "ENUM"  # bare or quoted name from FieldSpec.enum_values
    BOOL = "BOOL"  # true / false


class Op(StrEnum):
    """Comparison operators."""

    EQ = "="
    NE = "!="
    LT = "<"
    LE = "<="
    GT = ">"
    GE = ">="
    HAS = ":"


@dataclass(frozen=True)
class FieldSpec:
    """How one field (or a map prefix like ``labels.``) may be filtered and ordered.

    A ``repeated`` field (``datasets.uri``) holds a list of values: a comparison holds when any
    element satisfies it, ``:`` with a value tests membership (an element equals it) and
    ``:*`` tests that the list is not empty. Repeated fields are not orderable.
    """

    kind: FieldKind
    enum_values: tuple[str, ...] = ()
    orderable: bool = True
    repeated: bool = False


@dataclass(frozen=True)
class FilterSchema:
    """The allow-list of fields for one resource collection.

    ``fields`` maps names (``stage``, or dotted paths into a message such as
    ``source.commit``) to specs; ``maps`` maps prefixes (``labels``, ``metrics``) to the spec
    of their values, so ``labels.team`` and ``metrics.accuracy`` are accepted with any key
    matching ``[A-Za-z_][A-Za-z0-9_.-]{0,62}``. A name in ``fields`` wins over a map prefix.
    """

    fields: dict[str, FieldSpec]
    maps: dict[str, FieldSpec]


Value = str | float | int | bool | datetime | None


@dataclass(frozen=True)
class Comparison:
    """``field op value``.

    ``field`` is a plain name (``stage``) or ``map.key`` (``labels.team``). ``value`` has the
    field's type (enum values as their name, timestamps as aware datetimes). For STRING fields
    with ``=``/``!=`` a trailing ``*`` in the filter text means prefix match: ``prefix`` is then
    True and ``value`` is the text before the ``*``. ``op`` HAS with value None means "the map
    key is present" (``labels.team:*``) or, on a repeated field, "the list is not empty"; HAS on
    a STRING with a value means "contains", on a repeated field "has an element equal to".
    """

    field: str
    op: Op
    value: Value
    prefix: bool = False


@dataclass(frozen=True)
class And:
    """All operands hold."""

    operands: tuple[Expr, ...]


@dataclass(frozen=True)
class Or:
    """At least one operand holds."""

    operands: tuple[Expr, ...]


@dataclass(frozen=True)
class Not:
    """The operand does not hold."""

    operand: Expr


Expr = Comparison | And | Or | Not


def split_field(name: str) -> tuple[str, str | None]:
    """``labels.team`` -> ``("labels", "team")``; ``stage`` -> ``("stage", None)``."""
    head, sep, tail = name.partition(".")
    return (head, tail) if sep else (name, None)
