"""The API key authenticator: bearer tokens starting with ``mrk_`` are API keys.

Keys live in the metadata database, which may be unreachable when the server starts. The
authenticator exists (and is configured) from the start; until the use cases are installed
(:meth:`ApiKeyAuthenticator.install`, once the database is reached) a call with an API key
is UNAVAILABLE, never admitted unauthenticated.
"""

from __future__ import annotations

from ..domain.api_key_tokens import looks_like_api_key
from ..domain.api_keys import ApiKeys
from ..domain.errors import Unavailable
from ..domain.identity import Caller
from .authentication import Credentials


class ApiKeyAuthenticator:
    """Verifies ``mrk_`` bearer tokens with :class:`ApiKeys` (see the module docstring)."""

    def __init__(self) -> None:
        self._keys: ApiKeys | None = None

    def install(self, keys: ApiKeys) -> None:
        """Verify keys with ``keys`` from now on (the database has been reached)."""
        self._keys = keys

    def authenticate(self, credentials: Credentials) -> Caller | None:
        """The key's caller; None for other bearer tokens; UNAUTHENTICATED if the key does
        not verify (unknown, wrong secret, revoked, expired: one message for all)."""
        bearer = credentials.bearer
        if bearer is None or not looks_like_api_key(bearer):
            return None
        keys = self._keys
        if keys is None:
            raise Unavailable("the service is starting: its database cannot be reached yet")
        return keys.authenticate(bearer)
