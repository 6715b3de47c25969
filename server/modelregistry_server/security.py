"""Which authenticators a server runs, from its configuration, and whether it may start with
them (see the README's *Security*).

No authenticator configured: authentication is off and every caller is ``anonymous`` with
every scope (the zero-configuration loopback server of ``make run``). A server asked to listen
on a non-loopback address without an authenticator refuses to start unless ``--auth none``
says that is meant.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

from .api.authentication import Authentication, Authenticator
from .api.certificates import CertificateAuthenticator
from .api.tls import TlsFiles
from .config import Config


class StartRefused(ValueError):
    """The configuration would expose the registry without authentication, or contradicts
    itself; the message says what to change."""


def build_authentication(config: Config) -> Authentication:
    """The server's :class:`Authentication` for ``config``. Token authenticators come first;
    the certificate one defers to any call carrying a token anyway."""
    authenticators: list[Authenticator] = []
    if config.tls_identities_file:
        authenticators.append(CertificateAuthenticator(Path(config.tls_identities_file)))
    if config.auth == "none" and authenticators:
        raise StartRefused("--auth none contradicts the configured authenticators; drop one")
    return Authentication(authenticators)


def tls_files(config: Config) -> TlsFiles | None:
    """The TLS files, or None for plaintext; StartRefused for an incomplete set."""
    if bool(config.tls_cert) != bool(config.tls_key):
        raise StartRefused("--tls-cert and --tls-key go together")
    if not config.tls_cert:
        if config.tls_client_ca:
            raise StartRefused("--tls-client-ca needs --tls-cert and --tls-key")
        if config.tls_identities_file:
            raise StartRefused("--tls-identities-file needs mutual TLS (--tls-client-ca)")
        return None
    if config.tls_identities_file and not config.tls_client_ca:
        raise StartRefused("--tls-identities-file needs mutual TLS (--tls-client-ca)")
    client_ca = Path(config.tls_client_ca) if config.tls_client_ca else None
    return TlsFiles(Path(config.tls_cert), Path(config.tls_key), client_ca)


def is_loopback(listen: str) -> bool:
    """Whether ``listen`` (host:port, or a unix: socket) is reachable only from this host."""
    if listen.startswith(("unix:", "unix-abstract:")):
        return True
    host = listen.rsplit(":", 1)[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name, or empty (every address)
        return False


def check_exposure(config: Config, authentication: Authentication) -> None:
    """StartRefused if ``config`` listens beyond loopback with authentication off and without
    an explicit ``--auth none``."""
    if authentication.enabled or config.auth == "none" or is_loopback(config.listen):
        return
    raise StartRefused(
        f"refusing to serve {config.listen} without authentication: configure an "
        "authenticator (e.g. --tls-identities-file) or pass --auth none to let every caller "
        "in as anonymous with every scope"
    )
