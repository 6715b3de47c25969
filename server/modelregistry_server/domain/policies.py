"""Model policies: who holds which role on a model, and which aliases are protected.

A policy binds roles (:class:`Role`) to members: ``user:<sub>``, ``group:<name>`` or
``apikey:<id>`` (what :attr:`.identity.Caller.members` yields). A model without a policy is
governed by scopes alone. What each role may do is decided by :mod:`.access`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from . import names
from .entities import make_etag
from .errors import InvalidArgument

MEMBER_KINDS = ("user", "group", "apikey")
# The part after the kind: printable, no whitespace, at most 256 characters.
MEMBER_VALUE_RE = re.compile(r"[^\s\x00-\x1f\x7f]{1,256}")
MAX_MEMBERS = 1000
MAX_PROTECTED_ALIASES = 100


class Role(StrEnum):
    """The roles a policy binds; each grants what the one before it does, and more."""

    VIEWER = "viewer"
    EDITOR = "editor"
    OWNER = "owner"


@dataclass(frozen=True)
class Binding:
    """One role and the members holding it."""

    role: Role
    members: tuple[str, ...]


@dataclass(frozen=True)
class ModelPolicy:
    """The access policy of one model.

    ``protected_aliases`` may be moved or deleted by owners only; promoting to or leaving
    PRODUCTION is owner-only unless ``production_open_to_editors``.
    """

    bindings: tuple[Binding, ...] = ()
    protected_aliases: tuple[str, ...] = ()
    production_open_to_editors: bool = False

    @property
    def is_empty(self) -> bool:
        """True for the policy meaning "no policy" (nothing bound, nothing protected)."""
        return not self.bindings and not self.protected_aliases

    def roles_of(self, members: frozenset[str]) -> frozenset[Role]:
        """The roles any of ``members`` holds."""
        return frozenset(b.role for b in self.bindings if members.intersection(b.members))

    def memberships(self) -> set[tuple[str, Role]]:
        """Every ``(member, role)`` pair the policy binds."""
        return {(member, b.role) for b in self.bindings for member in b.members}

    def to_json(self) -> str:
        """The stored form (a JSON document)."""
        return json.dumps(
            {
                "bindings": [
                    {"role": b.role.value, "members": list(b.members)} for b in self.bindings
                ],
                "protected_aliases": list(self.protected_aliases),
                "production_open_to_editors": self.production_open_to_editors,
            },
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str) -> ModelPolicy:
        """The policy of its stored form."""
        doc: dict[str, Any] = json.loads(text)
        return cls(
            bindings=tuple(
                Binding(Role(b["role"]), tuple(b["members"])) for b in doc.get("bindings", [])
            ),
            protected_aliases=tuple(doc.get("protected_aliases", [])),
            production_open_to_editors=bool(doc.get("production_open_to_editors", False)),
        )


@dataclass(frozen=True)
class StoredPolicy:
    """A model's policy as stored: None if it has none; ``revision`` counts its writes."""

    model_uid: str
    revision: int
    policy: ModelPolicy | None = field(default=None)

    @property
    def etag(self) -> str:
        """Changes on every SetModelPolicy of the model."""
        return make_etag(f"policy:{self.model_uid}", self.revision)


def check_member(member: str, field_name: str) -> str:
    """``user:<sub>``, ``group:<name>`` or ``apikey:<id>``; INVALID_ARGUMENT otherwise."""
    kind, sep, value = member.partition(":")
    if not sep or kind not in MEMBER_KINDS or not MEMBER_VALUE_RE.fullmatch(value):
        raise InvalidArgument.field(
            field_name,
            f"{member[:80]!r} must be user:<subject>, group:<name> or apikey:<id> "
            "(no whitespace, at most 256 characters after the colon)",
        )
    return member


def check_policy(
    bindings: list[tuple[str, list[str]]],
    protected_aliases: list[str],
    production_open_to_editors: bool,
) -> ModelPolicy:
    """A valid policy of request values (``(role, members)`` pairs); INVALID_ARGUMENT naming
    the field otherwise. Bindings of one role are merged; members are kept sorted."""
    by_role: dict[Role, set[str]] = {}
    count = 0
    for i, (role_text, members) in enumerate(bindings):
        try:
            role = Role(role_text)
        except ValueError:
            raise InvalidArgument.field(
                f"policy.bindings[{i}].role", "must be viewer, editor or owner"
            ) from None
        if not members:
            raise InvalidArgument.field(f"policy.bindings[{i}].members", "must not be empty")
        for j, member in enumerate(members):
            check_member(member, f"policy.bindings[{i}].members[{j}]")
        count += len(members)
        by_role.setdefault(role, set()).update(members)
    if count > MAX_MEMBERS:
        raise InvalidArgument.field("policy.bindings", f"binds more than {MAX_MEMBERS} members")
    if len(protected_aliases) > MAX_PROTECTED_ALIASES:
        raise InvalidArgument.field(
            "policy.protected_aliases", f"has more than {MAX_PROTECTED_ALIASES} aliases"
        )
    for i, alias in enumerate(protected_aliases):
        names.check_alias(alias, f"policy.protected_aliases[{i}]")
    policy = ModelPolicy(
        bindings=tuple(Binding(r, tuple(sorted(by_role[r]))) for r in Role if r in by_role),
        protected_aliases=tuple(sorted(set(protected_aliases))),
        production_open_to_editors=production_open_to_editors,
    )
    if not policy.is_empty and Role.OWNER not in by_role:
        # Nobody could change the policy again but a tenant admin.
        raise InvalidArgument.field(
            "policy.bindings", "must bind the owner role to at least one member"
        )
    return policy
