"""Request messages from plain Python values: field masks, enums, structs, timestamps and
messages given as dicts or tuples."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, TypeAlias, TypeVar

from google.protobuf import field_mask_pb2, json_format, struct_pb2, timestamp_pb2
from google.protobuf.message import Message

from modelregistry.v1 import lineage_pb2 as lpb
from modelregistry.v1 import resources_pb2 as res

__all__ = [
    "MessageLike",
    "coerce",
    "coerce_all",
    "enum_name",
    "field_mask",
    "filter_string",
    "stage",
    "struct",
    "timestamp",
]

_M = TypeVar("_M", bound=Message)


def field_mask(paths: Sequence[str]) -> field_mask_pb2.FieldMask:
    """A FieldMask from paths; a single string may hold comma-separated paths."""
    if isinstance(paths, str):
        paths = [p.strip() for p in paths.split(",") if p.strip()]
    return field_mask_pb2.FieldMask(paths=list(paths))


def filter_string(value: str) -> str:
    """``value`` as a quoted AIP-160 filter string that matches exactly (``*`` escaped)."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("*", "\\*")
    return f'"{escaped}"'


def enum_name(value: str, prefix: str) -> str:
    """``"production"`` / ``"PRODUCTION"`` / ``"STAGE_PRODUCTION"`` → ``"STAGE_PRODUCTION"``."""
    key = value.strip().upper()
    return key if key.startswith(prefix) else prefix + key


def stage(value: res.Stage.ValueType | int | str) -> res.Stage.ValueType:
    """A Stage from its value or name (``"production"``, ``"STAGE_PRODUCTION"`` …)."""
    if isinstance(value, str):
        name = enum_name(value, "STAGE_")
        try:
            return res.Stage.Value(name)
        except ValueError:
            known = ", ".join(v.name.removeprefix("STAGE_") for v in res.Stage.DESCRIPTOR.values)
            raise ValueError(f"unknown stage {value!r}; expected one of {known}") from None
    return res.Stage.ValueType(value)


def lineage_direction(
    value: lpb.LineageDirection.ValueType | int | str,
) -> lpb.LineageDirection.ValueType:
    """A LineageDirection from its value or name (``"upstream"``, ``"DOWNSTREAM"`` …)."""
    if isinstance(value, str):
        name = enum_name(value, "LINEAGE_DIRECTION_")
        try:
            return lpb.LineageDirection.Value(name)
        except ValueError:
            known = ", ".join(
                v.name.removeprefix("LINEAGE_DIRECTION_")
                for v in lpb.LineageDirection.DESCRIPTOR.values
                if v.number
            )
            raise ValueError(f"unknown direction {value!r}; expected one of {known}") from None
    return lpb.LineageDirection.ValueType(value)


def struct(value: Mapping[str, Any] | struct_pb2.Struct) -> struct_pb2.Struct:
    """A Struct from a dict (JSON-like values)."""
    if isinstance(value, struct_pb2.Struct):
        return value
    result = struct_pb2.Struct()
    result.update(dict(value))
    return result


def timestamp(value: datetime | timestamp_pb2.Timestamp) -> timestamp_pb2.Timestamp:
    """A Timestamp; naive datetimes are taken as UTC (the protobuf convention)."""
    if isinstance(value, timestamp_pb2.Timestamp):
        return value
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(value)
    return ts


MessageLike: TypeAlias = "Message | Mapping[str, Any] | Sequence[Any] | str"


def coerce(
    cls: type[_M],
    item: MessageLike,
    positional: Sequence[str],
    enums: Mapping[str, str] | None = None,
) -> _M:
    """A message from itself, a dict of its fields, a tuple of ``positional`` fields or a str.

    Enum fields named in ``enums`` (field → value prefix) accept short names such as
    ``"library"`` for ``DEPENDENCY_KIND_LIBRARY``.
    """
    if isinstance(item, cls):
        return item
    if isinstance(item, Message):
        raise TypeError(f"expected {cls.DESCRIPTOR.name}, got {item.DESCRIPTOR.name}")
    if isinstance(item, str):
        item = (item,)
    if isinstance(item, Mapping):
        data = dict(item)
    elif isinstance(item, Sequence):
        if len(item) > len(positional):
            raise ValueError(
                f"{cls.DESCRIPTOR.name} tuple takes at most {len(positional)} items "
                f"({', '.join(positional)}), got {len(item)}"
            )
        data = dict(zip(positional, item, strict=False))
    else:
        raise TypeError(f"cannot make a {cls.DESCRIPTOR.name} from {type(item).__name__}")
    for field, prefix in (enums or {}).items():
        if isinstance(data.get(field), str):
            data[field] = enum_name(data[field], prefix)
    try:
        return json_format.ParseDict(data, cls())
    except json_format.ParseError as e:
        raise ValueError(f"invalid {cls.DESCRIPTOR.name}: {e}") from e


def coerce_all(
    cls: type[_M],
    items: Iterable[MessageLike] | None,
    positional: Sequence[str],
    enums: Mapping[str, str] | None = None,
) -> list[_M]:
    """:func:`coerce` every item (None: no items)."""
    return [coerce(cls, item, positional, enums) for item in items or ()]
