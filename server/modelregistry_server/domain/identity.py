"""Who is calling: the authenticated caller every use case receives, and what it may do.

Authentication happens at the edge (``api/authentication.py``); below it nothing reads
metadata or headers. A :class:`Caller` names its tenant (every query is scoped to it), its
subject, the scopes its credential grants, its groups and, for an API key, the key's id, and
the id of the request it is making (recorded with every event the call causes).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

DEFAULT_TENANT = "default"


class Permission(StrEnum):
    """The scopes a credential can grant; every RPC needs exactly one of them."""

    READ = "registry.read"
    CREATE = "registry.create"
    UPDATE = "registry.update"
    DELETE = "registry.delete"
    ADMIN = "registry.admin"  # implies every other scope


ALL_SCOPES = frozenset(Permission)
SYSTEM_PRINCIPAL = "system"  # maintenance (purge, event retention) as events name it


class AuthMethod(StrEnum):
    """How a caller proved who it is."""

    NONE = "none"  # authentication is off (``--auth none`` or loopback without authenticators)
    JWT = "jwt"
    API_KEY = "api_key"
    CERTIFICATE = "certificate"


@dataclass(frozen=True)
class Caller:
    """The caller of one request (see the module docstring).

    With authentication off every caller is ``anonymous`` in tenant ``default`` with every
    scope: the server behaves as a single-user registry.
    """

    tenant: str = DEFAULT_TENANT
    subject: str = "anonymous"
    scopes: frozenset[Permission] = ALL_SCOPES
    groups: frozenset[str] = field(default_factory=frozenset)
    api_key_id: str = ""
    method: AuthMethod = AuthMethod.NONE
    # The request this call serves (``x-request-id`` or made at the edge): events name it.
    request_id: str = ""

    @property
    def actor(self) -> str:
        """The principal as recorded in history and matched by policies: ``user:<sub>``,
        ``apikey:<id>`` or ``anonymous``."""
        if self.api_key_id:
            return f"apikey:{self.api_key_id}"
        if self.method is AuthMethod.NONE:
            return self.subject
        return f"user:{self.subject}"

    @property
    def members(self) -> frozenset[str]:
        """Every policy member this caller matches: itself and its groups."""
        return frozenset({self.actor, *(f"group:{g}" for g in self.groups)})

    def has(self, permission: Permission) -> bool:
        """Whether the credential grants ``permission`` (``registry.admin`` grants all)."""
        return permission in self.scopes or Permission.ADMIN in self.scopes

    @property
    def is_admin(self) -> bool:
        """Whether the credential grants ``registry.admin`` in its tenant."""
        return Permission.ADMIN in self.scopes
