"""Messages as plain data for ``--output json|yaml``: every field of the message, always (so a
document has the same keys whatever is set), in the order of the ``.proto``.

Deliberate departures from protobuf's JSON mapping, for scripts: 64-bit integers are numbers
(not strings), enum values lose their type prefix (``PRODUCTION``, not ``STAGE_PRODUCTION``),
unset timestamps are ``null`` (an unset message has its empty fields), map entries are
sorted by key, and whole numbers in parameters (``google.protobuf.Struct`` holds doubles) are
integers.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import json_format
from google.protobuf.descriptor import EnumDescriptor, FieldDescriptor
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

__all__ = ["enum_name", "to_data"]

_WELL_KNOWN_JSON = frozenset(
    {"google.protobuf.Struct", "google.protobuf.Value", "google.protobuf.ListValue"}
)


def enum_name(enum: EnumDescriptor, number: int) -> str:
    """An enum value's name without its type prefix (``STAGE_PRODUCTION`` → ``PRODUCTION``)."""
    value = enum.values_by_number.get(number)
    if value is None:
        return str(number)
    prefix = "".join(f"_{c}" if c.isupper() and i else c for i, c in enumerate(enum.name)).upper()
    return value.name.removeprefix(prefix + "_")


def _scalar(field: Any, value: Any) -> Any:
    if field.enum_type is not None:
        return enum_name(field.enum_type, value)
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        return to_data(value)
    if field.type == FieldDescriptor.TYPE_BYTES:
        return value.hex()
    return value


def _integral(value: Any) -> Any:
    """Struct numbers are doubles: ``64.0`` is shown as the ``64`` it was written as."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    if isinstance(value, list):
        return [_integral(v) for v in value]
    if isinstance(value, dict):
        return {k: _integral(v) for k, v in value.items()}
    return value


def _timestamp(ts: Timestamp) -> str | None:
    if not ts.seconds and not ts.nanos:
        return None
    return ts.ToJsonString()


def to_data(message: Message) -> Any:
    """``message`` as JSON-able data (dicts, lists, str, int, float, bool, None)."""
    descriptor = message.DESCRIPTOR
    if descriptor.full_name == "google.protobuf.Timestamp":
        assert isinstance(message, Timestamp)
        return _timestamp(message)
    if descriptor.full_name in _WELL_KNOWN_JSON:
        return _integral(json_format.MessageToDict(message))
    out: dict[str, Any] = {}
    for field in descriptor.fields:
        value = getattr(message, field.name)
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            value_field = field.message_type.fields_by_name["value"]
            out[field.name] = {k: _scalar(value_field, value[k]) for k in sorted(value)}
        elif field.is_repeated:
            out[field.name] = [_scalar(field, v) for v in value]
        else:
            out[field.name] = _scalar(field, value)
    return out
