"""Webhook secrets: made, sealed at rest, and used to sign deliveries.

A delivery carries ``X-Registry-Signature: t=<unix seconds>,v1=<hex>`` where ``<hex>`` is
HMAC-SHA256 with the webhook's secret (its UTF-8 bytes, ``whsec_`` prefix included) over
``f"{t}.{body}"``, the body being the exact bytes POSTed. A receiver recomputes it, compares
in constant time, and refuses ``t`` more than :data:`REPLAY_WINDOW_S` from its clock.

Secrets are stored sealed: AES-256-GCM with the server's webhook key (a random key made once
per database, ``ServerSecrets.webhook_secret_key``), bound to the webhook's tenant and id so
a sealed secret copied onto another row does not open.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

SECRET_PREFIX = "whsec_"
REPLAY_WINDOW_S = 300
_NONCE = 12


def new_secret() -> str:
    """A fresh signing secret: ``whsec_`` and 43 url-safe characters (256 random bits)."""
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The ``X-Registry-Signature`` value for ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def verify(secret: str, header: str, body: bytes, now: float) -> bool:
    """Whether ``header`` signs ``body`` with ``secret`` within the replay window (what a
    receiver does; the README shows the same in plain Python)."""
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    try:
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs(now - timestamp) > REPLAY_WINDOW_S:
        return False
    expected = signature(secret, timestamp, body).split("v1=", 1)[1]
    return hmac.compare_digest(expected, parts.get("v1", ""))


class SecretBox:
    """Seals and opens webhook secrets with the server's key (AES-256-GCM)."""

    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise ValueError("the webhook key must be 32 bytes")
        self._aead = AESGCM(key)

    def seal(self, secret: str, binding: str) -> str:
        """``secret`` encrypted and bound to ``binding`` (tenant and webhook), as hex."""
        nonce = os.urandom(_NONCE)
        return (nonce + self._aead.encrypt(nonce, secret.encode(), binding.encode())).hex()

    def open(self, sealed: str, binding: str) -> str | None:
        """The secret, or None if ``sealed`` does not open for ``binding`` (edited or moved)."""
        try:
            raw = bytes.fromhex(sealed)
            plain = self._aead.decrypt(raw[:_NONCE], raw[_NONCE:], binding.encode())
        except (ValueError, InvalidTag):
            return None
        return plain.decode()


def binding(tenant: str, webhook_id: str) -> str:
    """What a sealed secret is bound to."""
    return f"{tenant}/webhooks/{webhook_id}"
