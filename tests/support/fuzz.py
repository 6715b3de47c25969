"""A seeded request generator driven by protobuf descriptors (for the fuzz tests).

Given any message descriptor it builds random messages: every field kind, nested messages
(``Struct``/``Value`` included), maps, repeated fields and oneofs, with values drawn from edge
cases (NaN, ±Infinity, integer limits, NUL characters, names just past 64 bits) and from a pool
of strings the caller supplies (names of resources that exist, so requests reach past name
parsing). It also mutates serialised messages and makes plain random bytes. Nothing here knows
the registry's methods: new RPCs and fields are covered as soon as they are in a descriptor.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator, Sequence

from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

_INT64 = (0, 1, -1, 2, 7, 2**31 - 1, -(2**31), 2**32, 2**53 + 1, 2**63 - 1, -(2**63))
_UINT64 = (0, 1, 2, 2**32 - 1, 2**32, 2**63, 2**64 - 1)
_INT32 = (0, 1, -1, 2, 50, 1000, 1001, 2**31 - 1, -(2**31))
_UINT32 = (0, 1, 2, 2**31, 2**32 - 1)
_DOUBLES = (0.0, -0.0, 1.0, -1.5, math.nan, math.inf, -math.inf, 1e308, -1e308, 5e-324, 0.93)
_NASTY_STRINGS = (
    "",
    "\x00",
    "a\x00b",
    "models/m\x00",
    "é",
    "\U0001f4a5" * 3,
    "x" * 5000,
    "models/",
    "models/-",
    "models/m1/versions/18446744073709551616",
    "models/m1/versions/99999999999999999999999999",
    "models/m1/versions/0",
    "models/m1/versions/-1",
    "models/m1/versions/latest",
    "models/m1/versions/1/files/../../etc/passwd",
    "models/m1/versions/1/files/a\x00b",
    "*",
    "labels.team",
    "metrics.auc",
    "metrics.auc > 1e999",
    "metrics.auc > NaN",
    "version_number > 99999999999999999999999",
    "version_number = -9223372036854775809",
    'create_time > "9999-12-31T23:59:59Z"',
    'labels.a = "\x00"',
    "model_id desc, version_number",
    "((((((((((((((((((((a))))))))))))))))))))",
)
_FIELD_INT = {
    FieldDescriptor.TYPE_INT64: _INT64,
    FieldDescriptor.TYPE_SINT64: _INT64,
    FieldDescriptor.TYPE_SFIXED64: _INT64,
    FieldDescriptor.TYPE_UINT64: _UINT64,
    FieldDescriptor.TYPE_FIXED64: _UINT64,
    FieldDescriptor.TYPE_INT32: _INT32,
    FieldDescriptor.TYPE_SINT32: _INT32,
    FieldDescriptor.TYPE_SFIXED32: _INT32,
    FieldDescriptor.TYPE_UINT32: _UINT32,
    FieldDescriptor.TYPE_FIXED32: _UINT32,
}
_RANGES = {
    FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1),
    FieldDescriptor.TYPE_FIXED64: (0, 2**64 - 1),
    FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_FIXED32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_INT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SINT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
}


def _scalar_slots(msg: Message) -> Iterator[tuple[Message, FieldDescriptor]]:
    """Every scalar field (and scalar-valued map) of ``msg`` and of the messages inside it."""
    for fd in msg.DESCRIPTOR.fields:
        if fd.message_type is None:
            yield msg, fd
        elif fd.message_type.GetOptions().map_entry:
            value_fd = fd.message_type.fields_by_name["value"]
            if value_fd.message_type is None:
                yield msg, fd
            else:
                for child in getattr(msg, fd.name).values():
                    yield from _scalar_slots(child)
        elif fd.is_repeated:
            for child in getattr(msg, fd.name):
                yield from _scalar_slots(child)
        elif msg.HasField(fd.name):
            yield from _scalar_slots(getattr(msg, fd.name))


def message_class(descriptor: Descriptor) -> type[Message]:
    """The generated class of ``descriptor``."""
    return message_factory.GetMessageClass(descriptor)


class MessageFuzzer:
    """Random messages, mutations and bytes from one seeded ``random.Random``."""

    def __init__(self, rng: random.Random, strings: Sequence[str], *, max_depth: int = 5) -> None:
        self._rng = rng
        self._names = tuple(x for x in strings if "/" in x)
        self._words = (*tuple(x for x in strings if "/" not in x), "", "a", "team")
        self._strings = tuple(strings) + _NASTY_STRINGS
        self._max_depth = max_depth
        self._nasty = 1.0

    def message(self, descriptor: Descriptor, fill: float = 0.6, nasty: float = 1.0) -> Message:
        """A message of ``descriptor`` with each field set with probability ``fill``; each
        scalar is an edge case with probability ``nasty`` (else a plausible value)."""
        msg = message_class(descriptor)()
        self._nasty = nasty
        self._fill(msg, descriptor, depth=0, fill=fill)
        return msg

    def _fill(self, msg: Message, descriptor: Descriptor, depth: int, fill: float) -> None:
        # At most one member of each oneof, chosen at random.
        chosen = {o.name: self._rng.choice(o.fields) for o in descriptor.oneofs}
        for fd in descriptor.fields:
            oneof = fd.containing_oneof
            if oneof is not None and chosen[oneof.name] is not fd:
                continue
            if self._rng.random() >= fill:
                continue
            if fd.message_type is not None and fd.message_type.GetOptions().map_entry:
                self._fill_map(msg, fd, depth)
            elif fd.is_repeated:
                for _ in range(self._rng.randint(0, 3)):
                    self._add(msg, fd, depth)
            elif fd.message_type is not None:
                if depth < self._max_depth:
                    child = getattr(msg, fd.name)
                    child.SetInParent()
                    self._fill(child, fd.message_type, depth + 1, fill)
            else:
                setattr(msg, fd.name, self.scalar(fd))

    def _fill_map(self, msg: Message, fd: FieldDescriptor, depth: int) -> None:
        key_fd = fd.message_type.fields_by_name["key"]
        value_fd = fd.message_type.fields_by_name["value"]
        target = getattr(msg, fd.name)
        for _ in range(self._rng.randint(0, 3)):
            key = self.scalar(key_fd)
            if value_fd.message_type is not None:
                if depth < self._max_depth:
                    self._fill(target[key], value_fd.message_type, depth + 1, 0.6)
            else:
                target[key] = self.scalar(value_fd)

    def _add(self, msg: Message, fd: FieldDescriptor, depth: int) -> None:
        container = getattr(msg, fd.name)
        if fd.message_type is not None:
            if depth < self._max_depth:
                self._fill(container.add(), fd.message_type, depth + 1, 0.6)
        else:
            container.append(self.scalar(fd))

    def scalar(self, fd: FieldDescriptor) -> object:
        """A random value for a scalar field: mostly edge cases, sometimes anything."""
        rng = self._rng
        kind = fd.type
        if rng.random() >= self._nasty:
            return self._plausible(fd)
        if kind == FieldDescriptor.TYPE_STRING:
            if rng.random() < 0.8:
                return rng.choice(self._strings)
            return "".join(
                chr(rng.choice((rng.randint(0, 0x7F), rng.randint(0, 0xD7FF))))
                for _ in range(rng.randint(0, 12))
            )
        if kind == FieldDescriptor.TYPE_BYTES:
            return rng.randbytes(rng.choice((0, 1, 7, 64, 300)))
        if kind == FieldDescriptor.TYPE_BOOL:
            return rng.random() < 0.5
        if kind in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
            return rng.choice(_DOUBLES) if rng.random() < 0.8 else rng.uniform(-1e6, 1e6)
        if kind == FieldDescriptor.TYPE_ENUM:
            numbers = [v.number for v in fd.enum_type.values]
            return rng.choice(numbers) if rng.random() < 0.85 else rng.randint(-5, 1000)
        edges = _FIELD_INT[kind]
        if rng.random() < 0.7:
            return rng.choice(edges)
        low, high = _RANGES.get(kind, (-(2**63), 2**63 - 1))
        return rng.randint(max(low, -1000), min(high, 10**6))

    def one_edge_case(self, descriptor: Descriptor) -> Message:
        """A plausible message with exactly one scalar, anywhere in it, set to an edge case."""
        return self.perturb(self.message(descriptor, fill=0.5, nasty=0.0))

    def perturb(self, msg: Message) -> Message:
        """A copy of ``msg`` with one scalar, anywhere in it, set to an edge case."""
        out = type(msg)()
        out.CopyFrom(msg)
        slots = list(_scalar_slots(out))
        if not slots:
            return out
        parent, fd = self._rng.choice(slots)
        self._nasty = 1.0
        target = getattr(parent, fd.name)
        if fd.message_type is not None:  # a scalar-valued map: an odd key or an odd value
            key_fd = fd.message_type.fields_by_name["key"]
            value_fd = fd.message_type.fields_by_name["value"]
            keys = list(target)
            if keys and self._rng.random() < 0.5:
                target[self._rng.choice(keys)] = self.scalar(value_fd)
            else:
                target[self.scalar(key_fd)] = self._plausible(value_fd)
        elif fd.is_repeated:
            if len(target) and self._rng.random() < 0.5:
                target[self._rng.randrange(len(target))] = self.scalar(fd)
            else:
                target.append(self.scalar(fd))
        else:
            setattr(parent, fd.name, self.scalar(fd))
        return out

    def _plausible(self, fd: FieldDescriptor) -> object:
        rng = self._rng
        kind = fd.type
        if kind == FieldDescriptor.TYPE_STRING:
            # AIP-122: fields called name/parent (or a reference like version) hold names.
            is_name = fd.name in ("name", "parent", "version") or fd.name.endswith("_name")
            return rng.choice(self._names if is_name and self._names else self._words)
        if kind == FieldDescriptor.TYPE_BYTES:
            return rng.randbytes(rng.choice((0, 5, 16)))
        if kind == FieldDescriptor.TYPE_BOOL:
            return rng.random() < 0.5
        if kind in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
            return rng.choice((0.5, 1.0, 2.0))
        if kind == FieldDescriptor.TYPE_ENUM:
            return rng.choice([v.number for v in fd.enum_type.values])
        return rng.choice((0, 1, 2, 10))

    def mutate(self, data: bytes) -> bytes:
        """``data`` with bytes flipped, cut, duplicated or inserted."""
        rng = self._rng
        buf = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            choice = rng.randrange(5)
            if choice == 0 and buf:
                buf[rng.randrange(len(buf))] ^= 1 << rng.randrange(8)
            elif choice == 1 and buf:
                del buf[rng.randrange(len(buf)) :]
            elif choice == 2:
                buf[rng.randint(0, len(buf)) : 0] = rng.randbytes(rng.randint(1, 8))
            elif choice == 3 and buf:
                start = rng.randrange(len(buf))
                buf[start:start] = buf[start : start + rng.randint(1, 16)]
            elif buf:
                buf[rng.randrange(len(buf))] = rng.choice((0x00, 0x7F, 0x80, 0xFF))
        return bytes(buf)

    def raw(self) -> bytes:
        """Random bytes, sometimes shaped like a protobuf field header."""
        rng = self._rng
        body = rng.randbytes(rng.randint(0, 40))
        if rng.random() < 0.5:
            return bytes([rng.randint(1, 15) << 3 | rng.choice((0, 1, 2, 5))]) + body
        return body
