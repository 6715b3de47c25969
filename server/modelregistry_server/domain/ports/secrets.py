"""Secrets the server keeps in its metadata database."""

from __future__ import annotations

from typing import Protocol


class ServerSecrets(Protocol):
    """Random secrets made once per database, so every replica and restart agrees on them."""

    def page_token_secret(self) -> bytes:
        """The secret that signs page tokens."""
        ...

    def webhook_secret_key(self) -> bytes:
        """The 32-byte key that seals webhook signing secrets at rest."""
        ...
