"""Secrets made by the migrations (the ``ServerSecrets`` port)."""

from __future__ import annotations

from typing import Any

from .core import StoreCore
from .errors import StoreError


class SecretRows(StoreCore):
    """``server_secrets``: one row per named secret (hex)."""

    def page_token_secret(self) -> bytes:
        """The random secret this database was created with, for signing page tokens."""
        db: Any = self._db
        with self._read():
            row = db.execute_sql(
                f"SELECT value FROM server_secrets WHERE name = {db.param}", ("page_token",)
            ).fetchone()
        if row is None:
            raise StoreError("the page token secret is missing from server_secrets")
        return bytes.fromhex(row[0])
