"""Secrets made by the migrations (the ``ServerSecrets`` port)."""

from __future__ import annotations

from typing import Any

from .core import StoreCore
from .errors import StoreError


class SecretRows(StoreCore):
    """``server_secrets``: one row per named secret (hex)."""

    def page_token_secret(self) -> bytes:
        """The random secret this database was created with, for signing page tokens."""
        return self._secret("page_token")

    def webhook_secret_key(self) -> bytes:
        """The random key migration 11 made, which seals webhook secrets."""
        return self._secret("webhook_key")

    def _secret(self, name: str) -> bytes:
        db: Any = self._db
        with self._read():
            row = db.execute_sql(
                f"SELECT value FROM server_secrets WHERE name = {db.param}", (name,)
            ).fetchone()
        if row is None:
            raise StoreError(f"the secret {name} is missing from server_secrets")
        return bytes.fromhex(row[0])
