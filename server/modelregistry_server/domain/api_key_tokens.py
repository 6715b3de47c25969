"""The API key credential: ``mrk_<key_id>_<secret>``, and the hash that is stored of it.

``key_id`` (16 characters) is public: it names the key (``apiKeys/{key_id}``, the actor
``apikey:<key_id>``) and finds its row. ``secret`` is 32 random bytes (52 characters); both
are lowercase base32, so the whole credential is one word a terminal selects with a double
click and the ``mrk_`` prefix lets secret scanners recognise it. Only a SHA-256 of the
secret (bound to its key id) is stored: the secret carries 256 random bits, so a fast hash
is as safe as a slow one here (there is nothing to guess), and it keeps verification cheap.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets

PREFIX = "mrk_"
KEY_ID_BYTES = 10
SECRET_BYTES = 32
_HASH_CONTEXT = b"modelregistry.v1 api key\x00"
_KEY_ID_RE = re.compile(r"[a-z2-7]{16}")
_TOKEN_RE = re.compile(r"mrk_([a-z2-7]{16})_([a-z2-7]{52})")


def _b32(data: bytes) -> str:
    return base64.b32encode(data).decode().rstrip("=").lower()


def new_key_id() -> str:
    """A fresh random key id (80 bits)."""
    return _b32(secrets.token_bytes(KEY_ID_BYTES))


def new_secret() -> str:
    """A fresh random secret (256 bits)."""
    return _b32(secrets.token_bytes(SECRET_BYTES))


def credential(key_id: str, secret: str) -> str:
    """What the key's holder sends as its bearer token."""
    return f"{PREFIX}{key_id}_{secret}"


def looks_like_api_key(bearer: str) -> bool:
    """Whether a bearer token is meant as an API key (by its prefix alone)."""
    return bearer.startswith(PREFIX)


def parse_credential(bearer: str) -> tuple[str, str] | None:
    """``(key_id, secret)`` of a well-formed credential, else None."""
    match = _TOKEN_RE.fullmatch(bearer)
    return None if match is None else (match.group(1), match.group(2))


def is_key_id(text: str) -> bool:
    """Whether ``text`` has the form of a key id."""
    return _KEY_ID_RE.fullmatch(text) is not None


def secret_hash(key_id: str, secret: str) -> str:
    """The stored form of a secret: hex SHA-256 over a context, the key id and the secret."""
    return hashlib.sha256(_HASH_CONTEXT + key_id.encode() + b"\x00" + secret.encode()).hexdigest()


def secret_matches(stored_hash: str, key_id: str, secret: str) -> bool:
    """Whether ``secret`` is the key's secret (constant-time comparison)."""
    return hmac.compare_digest(stored_hash.encode(), secret_hash(key_id, secret).encode())
