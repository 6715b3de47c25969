"""JWT bearer tokens: verified with PyJWT, their claims become the :class:`Caller`.

A bearer that looks like a JWT (three dot-separated base64url parts) is this authenticator's;
anything else (an ``mrk_`` API key) is left to the others. A JWT must carry a signature by one
of the configured keys (RS256/ES256 with public keys, or HS256 with a development secret, never
both and never ``alg: none``), ``exp`` and ``sub``, the configured issuer and audience, and a
tenant (its claim, or the configured default tenant). Expiry and not-before allow
``leeway`` seconds of clock skew. An expired token is ``CREDENTIALS_EXPIRED`` (get a new one);
any other failure is ``CREDENTIALS_INVALID`` with a message saying which check failed, never
the token, the keys or the library's text.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from typing import Any

import jwt

from ..domain.errors import Reason, Unauthenticated
from ..domain.identity import AuthMethod, Caller, Permission
from .authentication import Credentials
from .jwt_keys import KeySource, PublicKey

log = logging.getLogger(__name__)

_JWT_SHAPE = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
_TENANT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")
_MAX_SUBJECT = 256
_MIN_SECRET_BYTES = 32
API_KEY_PREFIX = "mrk_"
PUBLIC_KEY_ALGORITHMS = ("RS256", "ES256")
_SCOPES = {p.value: p for p in Permission}


def looks_like_jwt(bearer: str) -> bool:
    """Whether ``bearer`` has the shape of a compact JWS (and is not an API key)."""
    return not bearer.startswith(API_KEY_PREFIX) and _JWT_SHAPE.fullmatch(bearer) is not None


def _refused(why: str, reason: Reason = Reason.CREDENTIALS_INVALID) -> Unauthenticated:
    return Unauthenticated(f"the bearer token is not accepted: {why}", reason=reason)


class JwtAuthenticator:
    """Verifies JWT bearer tokens (see the module docstring)."""

    def __init__(
        self,
        *,
        keys: KeySource | None = None,
        hs256_secret: bytes | None = None,
        issuer: str = "",
        audience: str = "",
        tenant_claim: str = "tenant",
        default_tenant: str = "",
        scope_claim: str = "scope",
        leeway_seconds: float = 30,
    ) -> None:
        if (keys is None) == (hs256_secret is None):
            raise ValueError("JWT verification needs either public keys or an HS256 secret")
        if keys is not None and not (issuer and audience):
            raise ValueError("--jwt-public-keys needs --jwt-issuer and --jwt-audience")
        if hs256_secret is not None and len(hs256_secret) < _MIN_SECRET_BYTES:
            raise ValueError(f"the HS256 secret must have at least {_MIN_SECRET_BYTES} bytes")
        if default_tenant and not _TENANT.fullmatch(default_tenant):
            raise ValueError(f"--jwt-default-tenant {default_tenant!r} is not a tenant name")
        if not tenant_claim or not scope_claim:
            raise ValueError("--jwt-tenant-claim and --jwt-scope-claim must name a claim")
        if not 0 <= leeway_seconds <= 300:
            raise ValueError("--jwt-leeway-seconds must be between 0 and 300")
        self._keys = keys
        self._secret = hs256_secret
        self._issuer = issuer or None
        self._audience = audience or None
        self._tenant_claim = tenant_claim
        self._default_tenant = default_tenant
        self._scope_claim = scope_claim
        self._leeway = leeway_seconds
        self._required = ["exp", "sub"] + ["iss"] * bool(issuer) + ["aud"] * bool(audience)

    def authenticate(self, credentials: Credentials) -> Caller | None:
        """The caller a JWT proves; None for a bearer that is not a JWT, or no bearer."""
        token = credentials.bearer
        if token is None or not looks_like_jwt(token):
            return None
        return self._caller(self._verified_claims(token))

    def _candidates(self, header: Mapping[str, Any]) -> Sequence[tuple[str, bytes | PublicKey]]:
        """The (algorithm, key) pairs that may have signed a token with ``header``."""
        alg = header.get("alg")
        if self._secret is not None:
            if alg != "HS256":
                raise _refused(f"algorithm {str(alg)[:16]!r} is not accepted (only HS256)")
            return [("HS256", self._secret)]
        assert self._keys is not None
        if alg not in PUBLIC_KEY_ALGORITHMS:
            raise _refused(f"algorithm {str(alg)[:16]!r} is not accepted (RS256 or ES256)")
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise _refused("its kid header is not a string")
        keys = self._keys.keys_for(kid)
        named = [k for k in keys if k.algorithm == alg and kid is not None and k.kid == kid]
        unnamed = [k for k in keys if k.algorithm == alg and k.kid is None]
        candidates = named or unnamed
        if not candidates and kid is None:
            candidates = [k for k in keys if k.algorithm == alg]
        if not candidates:
            raise _refused("it is signed by a key this server does not know")
        return [(k.algorithm, k.key) for k in candidates]

    def _verified_claims(self, token: str) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            raise _refused("it is not a well-formed JWT") from None
        for algorithm, key in self._candidates(header):
            try:
                claims: dict[str, Any] = jwt.decode(
                    token,
                    key,
                    algorithms=[algorithm],
                    audience=self._audience,
                    issuer=self._issuer,
                    leeway=self._leeway,
                    # Without a configured audience, a token's aud is not checked.
                    options={
                        "require": self._required,
                        "verify_aud": bool(self._audience),
                        "verify_sub": False,  # checked with the other claims below
                    },
                )
                return claims
            except jwt.InvalidSignatureError:
                continue
            except jwt.InvalidTokenError as exc:
                log.debug("JWT refused: %s: %s", type(exc).__name__, exc)
                raise self._explain(exc) from None
        log.debug("JWT refused: no configured key verifies its signature")
        raise _refused("its signature does not verify")

    @staticmethod
    def _explain(exc: jwt.InvalidTokenError) -> Unauthenticated:
        """What the caller is told about a token whose signature verified but not its claims."""
        if isinstance(exc, jwt.ExpiredSignatureError):
            return _refused("it has expired; get a new one", Reason.CREDENTIALS_EXPIRED)
        if isinstance(exc, jwt.MissingRequiredClaimError):
            return _refused(f"it has no {exc.claim!r} claim")
        if isinstance(exc, jwt.InvalidAudienceError):
            return _refused("its audience is not this server")
        if isinstance(exc, jwt.InvalidIssuerError):
            return _refused("its issuer is not the one this server trusts")
        if isinstance(exc, jwt.ImmatureSignatureError):
            return _refused("it is not valid yet (nbf or iat in the future)")
        return _refused("its claims are malformed")

    def _caller(self, claims: Mapping[str, Any]) -> Caller:
        subject = claims.get("sub")
        if not isinstance(subject, str) or not 0 < len(subject) <= _MAX_SUBJECT:
            raise _refused(f"its 'sub' claim must be a string of 1 to {_MAX_SUBJECT} characters")
        tenant = claims.get(self._tenant_claim)
        if tenant is None and self._default_tenant:
            tenant = self._default_tenant
        if tenant is None:
            raise _refused(f"it has no {self._tenant_claim!r} claim naming the tenant")
        if not isinstance(tenant, str) or not _TENANT.fullmatch(tenant):
            raise _refused(
                f"its {self._tenant_claim!r} claim is not a tenant name "
                "(letters, digits, '.', '_', '-'; at most 63)"
            )
        return Caller(
            tenant=tenant,
            subject=subject,
            scopes=self._scopes(claims.get(self._scope_claim)),
            groups=self._groups(claims.get("groups")),
            method=AuthMethod.JWT,
        )

    def _scopes(self, value: object) -> frozenset[Permission]:
        """Known scopes of a space-separated string or a list of strings; others ignored."""
        if value is None:
            return frozenset()
        if isinstance(value, str):
            names = value.split()
        elif isinstance(value, list) and all(isinstance(v, str) for v in value):
            names = [name for v in value for name in v.split()]
        else:
            raise _refused(f"its {self._scope_claim!r} claim must be a string or strings")
        return frozenset(_SCOPES[n] for n in names if n in _SCOPES)

    @staticmethod
    def _groups(value: object) -> frozenset[str]:
        if value is None:
            return frozenset()
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise _refused("its 'groups' claim must be a list of non-empty strings")
        return frozenset(value)
