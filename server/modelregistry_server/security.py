"""Which authenticators a server runs, from its configuration (see the README's *Security*).

No authenticator configured: authentication is off and every caller is ``anonymous`` with
every scope (the zero-configuration loopback server of ``make run``).
"""

from __future__ import annotations

from .api.authentication import Authentication, Authenticator
from .config import Config


def build_authentication(config: Config) -> Authentication:
    """The server's :class:`Authentication` for ``config``."""
    authenticators: list[Authenticator] = []
    return Authentication(authenticators)
