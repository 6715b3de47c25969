"""Authentication at the edge: a call's credentials become the :class:`Caller` of its use
cases. Nothing below this module reads metadata or certificates.

Each :class:`Authenticator` recognises one kind of credential (a JWT, an API key, a client
certificate) and either returns the caller it proves, returns ``None`` when the credential is
not its kind, or raises :class:`Unauthenticated` when it is its kind and does not verify.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..domain.errors import PermissionDenied, Reason, Unauthenticated
from ..domain.identity import Caller, Permission
from .permissions import Open, Requirement

AUTHORIZATION = "authorization"
_BEARER = "bearer "


@dataclass(frozen=True)
class Credentials:
    """What a call presents: the bearer token (JWT or API key) and the TLS peer's identity
    (gRPC's auth context: ``x509_subject_alternative_name`` and friends)."""

    bearer: str | None = None
    peer: Mapping[str, Iterable[bytes]] = field(default_factory=dict)

    @classmethod
    def of(cls, metadata: Any, auth_context: Mapping[str, Iterable[bytes]] | None) -> Credentials:
        """The credentials of a call from its invocation metadata and auth context."""
        bearer = None
        for key, value in metadata or ():
            if key == AUTHORIZATION:
                text = value if isinstance(value, str) else ""
                if not text.lower().startswith(_BEARER) or not text[len(_BEARER) :].strip():
                    raise Unauthenticated(
                        "the authorization header must be 'Bearer <token>'",
                        reason=Reason.CREDENTIALS_INVALID,
                    )
                bearer = text[len(_BEARER) :].strip()
        return cls(bearer, dict(auth_context or {}))


class Authenticator(Protocol):
    """Verifies one kind of credential (see the module docstring)."""

    def authenticate(self, credentials: Credentials) -> Caller | None:
        """The caller ``credentials`` prove, or None if they are not this authenticator's."""
        ...


ANONYMOUS = Caller()


class Authentication:
    """The configured authenticators; with none, every call is :data:`ANONYMOUS`."""

    def __init__(self, authenticators: Sequence[Authenticator] = ()) -> None:
        self._authenticators = tuple(authenticators)

    @property
    def enabled(self) -> bool:
        """Whether calls must carry credentials."""
        return bool(self._authenticators)

    def authenticate(self, credentials: Credentials) -> Caller:
        """The caller; UNAUTHENTICATED when authentication is on and nothing verifies."""
        if not self._authenticators:
            return ANONYMOUS
        for authenticator in self._authenticators:
            caller = authenticator.authenticate(credentials)
            if caller is not None:
                return caller
        if credentials.bearer is None:
            raise Unauthenticated(
                "this call needs credentials: send 'authorization: Bearer <token or API key>'",
                reason=Reason.CREDENTIALS_MISSING,
            )
        raise Unauthenticated("the credentials do not verify", reason=Reason.CREDENTIALS_INVALID)

    def admit(self, credentials: Credentials, need: Requirement) -> Caller:
        """Authenticate, then check the scope the RPC needs (PERMISSION_DENIED without it);
        :attr:`Open.AUTHENTICATED` needs a credential that verifies and no scope."""
        if need is Open.HEALTH:
            return ANONYMOUS
        caller = self.authenticate(credentials)
        if isinstance(need, Permission) and not caller.has(need):
            raise PermissionDenied(
                f"this call needs the scope {need.value}",
                reason=Reason.SCOPE_MISSING,
                metadata={"scope": need.value},
            )
        return caller
