"""Client certificates as credentials: with mutual TLS, a certificate whose subject alternative
name (a DNS name, or a URI such as a SPIFFE id) is listed in the identities file authenticates
as the subject, tenant, scopes and groups listed for it.

The identities file is TOML, one ``[[identity]]`` table per certificate identity::

    [[identity]]
    san = "spiffe://example.org/ns/ml/sa/trainer"   # required, unique
    subject = "trainer"                             # required: the caller is user:trainer
    tenant = "ml"                                   # default "default"
    scopes = ["registry.read", "registry.create"]   # required (may be empty)
    groups = ["trainers"]                           # optional

A call carrying a bearer token is left to the token authenticators: a token takes precedence
over the certificate. A verified certificate none of whose SANs is listed proves nothing (the
call then needs a token); one whose SANs name two different identities is refused. The file is
re-read when it changes; a change that does not load keeps the previous identities (logged).
Only verified peers count: gRPC fills the auth context's ``x509_*`` properties from a client
certificate only when the server requires one, and then only after it verified the chain.
"""

from __future__ import annotations

import logging
import threading
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..domain.errors import Reason, Unauthenticated
from ..domain.identity import DEFAULT_TENANT, AuthMethod, Caller, Permission
from .authentication import Credentials
from .tls import Signature, file_signature

log = logging.getLogger(__name__)

# gRPC auth context properties (grpc.aio ServicerContext.auth_context()).
SECURITY_TYPE = "transport_security_type"
SANS = "x509_subject_alternative_name"

_KEYS = {"san", "subject", "tenant", "scopes", "groups"}


@dataclass(frozen=True)
class CertificateIdentity:
    """Who a certificate is, as the identities file says."""

    subject: str
    tenant: str
    scopes: frozenset[Permission]
    groups: frozenset[str]

    def caller(self) -> Caller:
        return Caller(
            tenant=self.tenant,
            subject=self.subject,
            scopes=self.scopes,
            groups=self.groups,
            method=AuthMethod.CERTIFICATE,
        )


def load_identities(path: Path) -> dict[str, CertificateIdentity]:
    """SAN -> identity from the file at ``path``; ValueError naming the entry if malformed."""
    try:
        document = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path} is not valid TOML: {exc}") from exc
    unknown = set(document) - {"identity"}
    if unknown:
        raise ValueError(f"{path}: unknown top-level keys {sorted(unknown)}; expected [[identity]]")
    entries = document.get("identity", [])
    if not isinstance(entries, list):
        raise ValueError(f"{path}: 'identity' must be an array of tables ([[identity]])")
    identities: dict[str, CertificateIdentity] = {}
    for number, entry in enumerate(entries, start=1):
        where = f"{path}: identity #{number}"
        if not isinstance(entry, dict):
            raise ValueError(f"{where} is not a table")
        san, identity = _identity(entry, where)
        if san in identities:
            raise ValueError(f"{where}: san {san!r} is listed twice")
        identities[san] = identity
    return identities


def _identity(entry: Mapping[str, Any], where: str) -> tuple[str, CertificateIdentity]:
    unknown = set(entry) - _KEYS
    if unknown:
        raise ValueError(f"{where}: unknown keys {sorted(unknown)}")
    san = _text(entry, "san", where)
    subject = _text(entry, "subject", where)
    tenant = _text(entry, "tenant", where, DEFAULT_TENANT)
    if "scopes" not in entry:
        raise ValueError(f"{where}: 'scopes' is required (a list, e.g. [\"registry.read\"])")
    known = {p.value for p in Permission}
    scopes = _texts(entry, "scopes", where)
    bad = sorted(set(scopes) - known)
    if bad:
        raise ValueError(f"{where}: unknown scopes {bad}; known: {sorted(known)}")
    groups = _texts(entry, "groups", where)
    identity = CertificateIdentity(
        subject, tenant, frozenset(Permission(s) for s in scopes), frozenset(groups)
    )
    return san, identity


def _text(entry: Mapping[str, Any], key: str, where: str, default: str | None = None) -> str:
    value = entry.get(key, default)
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{where}: '{key}' must be a non-empty string")
    return value.strip()


def _texts(entry: Mapping[str, Any], key: str, where: str) -> list[str]:
    value = entry.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ValueError(f"{where}: '{key}' must be a list of non-empty strings")
    return value


class CertificateAuthenticator:
    """Authenticates verified client certificates listed in the identities file (see the
    module docstring); an :class:`~.authentication.Authenticator`."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock = threading.Lock()
        self._signature = file_signature(path)
        self._rejected: Signature | None = None
        self._identities = load_identities(path)
        log.info("certificate identities: %d loaded from %s", len(self._identities), path)

    def identities(self) -> Mapping[str, CertificateIdentity]:
        """The current SAN -> identity table, re-read first if the file changed."""
        with self._lock:
            error: Exception | None = None
            try:
                signature = file_signature(self._path)
            except OSError as exc:  # mid-rotation: the file is missing for a moment
                signature, error = (), exc
            if signature in (self._signature, self._rejected):
                return self._identities
            if error is None:
                try:
                    loaded = load_identities(self._path)
                except (OSError, ValueError) as exc:
                    error = exc
            if error is not None:
                self._rejected = signature
                log.warning(
                    "%s; keeping the %d identities loaded before", error, len(self._identities)
                )
                return self._identities
            self._identities, self._signature, self._rejected = loaded, signature, None
            log.info("certificate identities reloaded: %d", len(self._identities))
            return self._identities

    def authenticate(self, credentials: Credentials) -> Caller | None:
        """The listed identity of the call's verified certificate; None when the call carries a
        token, has no certificate, or its certificate is not listed."""
        if credentials.bearer is not None:
            return None
        peer = credentials.peer
        if b"ssl" not in peer.get(SECURITY_TYPE, ()):
            return None
        identities = self.identities()
        sans = [raw.decode("utf-8", "replace") for raw in peer.get(SANS, ())]
        matched = {identities[san] for san in sans if san in identities}
        if len(matched) > 1:
            log.warning("client certificate SANs %s name several identities; refused", sans)
            raise Unauthenticated(
                "the client certificate matches several identities",
                reason=Reason.CREDENTIALS_INVALID,
            )
        return matched.pop().caller() if matched else None
