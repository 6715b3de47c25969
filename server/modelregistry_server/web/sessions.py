"""The browser session: an encrypted, authenticated cookie holding the credential the person
signed in with and the session's CSRF token.

The cookie is AES-GCM sealed with a key derived (HKDF-SHA256) from the database's server
secret, so every replica on the same database reads it and nobody can read or forge it. It
is ``HttpOnly``, ``SameSite=Lax``, ``Secure`` when served over TLS, and expires with the
credential (a JWT's ``exp``) or after :data:`SESSION_SECONDS`, whichever comes first. The
credential is verified again on every request, so a revoked API key or an expired token ends
the session at once.

Every visitor gets a session, signed in or not: its CSRF token protects the sign-in form and,
with authentication off, every form (synchronizer token, compared in constant time).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import os
import secrets
import time
from dataclasses import dataclass, replace

import jwt
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

COOKIE = "mr_session"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
SESSION_SECONDS = 12 * 3600
ANONYMOUS_SESSION_SECONDS = 7 * 24 * 3600
# Browsers keep cookies up to 4096 bytes (name, value and attributes together).
MAX_COOKIE_CHARS = 3800
_INFO = b"modelregistry web session cookie v1"
_AAD = b"mr_session"
_NONCE_BYTES = 12


@dataclass(frozen=True)
class Session:
    """One browser's session."""

    csrf: str
    expires: float  # seconds since the epoch
    token: str | None = None  # the bearer credential (JWT or API key), None: not signed in
    who: str = ""  # the principal shown in the page header (``user:…``, ``apikey:…``)
    changed: bool = False  # the cookie must be (re)sent with the response

    @classmethod
    def anonymous(cls, now: float | None = None) -> Session:
        """A fresh session that is not signed in."""
        at = time.time() if now is None else now
        return cls(secrets.token_urlsafe(24), at + ANONYMOUS_SESSION_SECONDS, changed=True)

    @classmethod
    def signed_in(cls, token: str, who: str, now: float | None = None) -> Session:
        """A new session for ``token`` (a new CSRF token too: nothing carries over)."""
        at = time.time() if now is None else now
        return cls(
            secrets.token_urlsafe(24),
            min(at + SESSION_SECONDS, credential_expiry(token) or float("inf")),
            token,
            who,
            changed=True,
        )

    def csrf_matches(self, given: str | None) -> bool:
        """Whether a submitted CSRF token is this session's."""
        return given is not None and hmac.compare_digest(given.encode(), self.csrf.encode())

    def unchanged(self) -> Session:
        return replace(self, changed=False)


def credential_expiry(token: str) -> float | None:
    """A JWT's ``exp`` (the token was verified before; only its expiry is read here), or None
    for API keys and tokens without one."""
    if token.startswith("mrk_") or token.count(".") != 2:
        return None
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return None
    exp = claims.get("exp")
    return float(exp) if isinstance(exp, int | float) else None


class SessionCodec:
    """Seals and opens session cookies with a key derived from ``secret``."""

    def __init__(self, secret: bytes) -> None:
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(secret)
        self._aead = AESGCM(key)

    def seal(self, session: Session) -> str:
        body = json.dumps(
            {"c": session.csrf, "e": session.expires, "t": session.token, "w": session.who},
            separators=(",", ":"),
        ).encode()
        nonce = os.urandom(_NONCE_BYTES)
        sealed = nonce + self._aead.encrypt(nonce, body, _AAD)
        return base64.urlsafe_b64encode(sealed).decode().rstrip("=")

    def open(self, value: str, now: float | None = None) -> Session | None:
        """The session in ``value``; None if it was not sealed by us, was altered, or has
        expired."""
        try:
            raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
            body = json.loads(self._aead.decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], _AAD))
            session = Session(
                csrf=str(body["c"]),
                expires=float(body["e"]),
                token=body["t"] if isinstance(body["t"], str) else None,
                who=str(body["w"]),
            )
        except (ValueError, TypeError, KeyError, InvalidTag, binascii.Error):
            return None
        if session.expires <= (time.time() if now is None else now):
            return None
        return session
