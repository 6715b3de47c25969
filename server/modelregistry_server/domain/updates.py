"""Update masks (AIP-134) checked and applied through one table of updatable fields.

A :class:`FieldTable` lists, for one resource, every field an update may change as an
:class:`UpdatableField`: the mask path, the entity attribute it writes, the validator of its
value, the value that clears it, whether its entries are addressed one by one
(``labels.<key>``) and when it may change (:class:`Mutability`). Paths outside the table are
output only or unknown; both are INVALID_ARGUMENT.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from .errors import InvalidArgument, Reason

Check = Callable[[Any, str], Any]  # (value, field name for errors) -> the value to store


class Mutability(Enum):
    """When a field may change."""

    ALWAYS = "always"
    WHILE_DRAFT = "while draft"  # content metadata, frozen once a version is READY


@dataclass(frozen=True)
class UpdatableField:
    """One updatable field: mask path → entity attribute, validator, clearing value."""

    path: str
    attribute: str
    check: Check
    empty: Callable[[], Any]
    mutability: Mutability = Mutability.ALWAYS
    key_check: Callable[[str, str], str] | None = None  # set for maps: entries are `path.<key>`


@dataclass(frozen=True)
class Patch:
    """An update: the mask's paths and the request's values for every updatable field.

    ``values`` is keyed by mask path (``labels`` → dict, ``expire_time`` → datetime | None,
    …); a path ``labels.team`` takes ``values["labels"].get("team")`` (absent → remove).
    An empty ``paths`` means "every field the request populated" and must be expanded by the
    caller (the API layer knows which fields were set).
    """

    paths: tuple[str, ...]
    values: dict[str, Any] = field(default_factory=dict)


class FieldTable:
    """The updatable fields of one resource and the paths that are output only."""

    def __init__(
        self,
        resource: str,
        entity: type[Any],
        fields: Iterable[UpdatableField],
        output_only: Iterable[str],
    ) -> None:
        self.resource = resource
        self._fields = {f.path: f for f in fields}
        self._output_only = frozenset(output_only)
        attributes = {f.name for f in dataclasses.fields(entity)}
        for spec in self._fields.values():
            if spec.attribute not in attributes:
                raise AssertionError(f"{entity.__name__} has no attribute {spec.attribute!r}")
        if self._output_only & set(self._fields):
            raise AssertionError(f"{resource}: a field is both updatable and output only")

    @property
    def updatable(self) -> tuple[str, ...]:
        """Every updatable path, in table order."""
        return tuple(self._fields)

    def paths(self, mutability: Mutability) -> tuple[str, ...]:
        """The updatable paths of one mutability, in table order."""
        return tuple(p for p, f in self._fields.items() if f.mutability is mutability)

    def spec(self, path: str) -> UpdatableField:
        """The field a (checked) mask path addresses; ``labels.team`` → ``labels``."""
        return self._fields[path.partition(".")[0]]

    def values(self, values: Mapping[str, Any], only: set[str] | None = None) -> dict[str, Any]:
        """The validated values of the fields present in ``values`` (and in ``only``)."""
        return {
            path: spec.check(values[path], f"{self.resource}.{path}")
            for path, spec in self._fields.items()
            if path in values and (only is None or path in only)
        }

    def check_mask(self, paths: tuple[str, ...]) -> tuple[str, ...]:
        """Validate update-mask paths (deduplicated, in order); ``*`` is every updatable one."""
        if not paths:
            raise _bad_mask("names no field to update")
        if "*" in paths:
            if len(paths) > 1:
                raise _bad_mask("'*' cannot be combined with other paths")
            return self.updatable
        out: list[str] = []
        for path in paths:
            head, dot, key = path.partition(".")
            if head in self._output_only:
                raise _bad_mask(f"{self.resource}.{head} is output only")
            spec = self._fields.get(head)
            if spec is None or (dot and (spec.key_check is None or not key)):
                raise _bad_mask(f"{path!r} is not an updatable field of {self.resource}")
            if key and spec.key_check is not None:
                try:
                    spec.key_check(key, "update_mask")
                except InvalidArgument as exc:
                    raise _bad_mask(exc.field_violations[0].description) from None
            if path not in out:
                out.append(path)
        return tuple(out)

    def apply(self, entity: object, path: str, changes: Mapping[str, Any]) -> None:
        """Write one checked mask path: the new value, or the clearing value if the request
        left the field out; ``map.<key>`` sets or removes one entry of the map."""
        spec = self.spec(path)
        _, _, key = path.partition(".")
        if not key:
            value = changes[spec.path] if spec.path in changes else spec.empty()
            setattr(entity, spec.attribute, value)
            return
        current = dict(getattr(entity, spec.attribute))
        new_map: Mapping[str, Any] = changes.get(spec.path, {})
        if key in new_map:
            current[key] = new_map[key]
        else:
            current.pop(key, None)
        setattr(entity, spec.attribute, current)


def _bad_mask(description: str) -> InvalidArgument:
    return InvalidArgument.field("update_mask", description, reason=Reason.INVALID_UPDATE_MASK)
