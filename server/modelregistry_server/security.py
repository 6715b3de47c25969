"""Which authenticators a server runs, from its configuration, and whether it may start with
them (see the README's *Security*).

No authenticator configured: authentication is off and every caller is ``anonymous`` with
every scope (the zero-configuration loopback server of ``make run``). A server asked to listen
on a non-loopback address without an authenticator refuses to start unless ``--auth none``
says that is meant. A configuration that cannot work (an unreadable or malformed key file, a
missing issuer) is a ValueError here too, so the server does not start.

API keys are accepted whenever authentication is on (any authenticator configured) or
``--api-keys`` is given. Their authenticator runs first: it claims only ``mrk_`` tokens, so
the others never see an API key.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

from .api.api_key_authenticator import ApiKeyAuthenticator
from .api.authentication import Authentication, Authenticator
from .api.certificates import CertificateAuthenticator
from .api.jwt_authenticator import JwtAuthenticator
from .api.jwt_keys import key_source
from .api.tls import TlsFiles
from .config import Config


class StartRefused(ValueError):
    """The configuration would expose the registry without authentication, or contradicts
    itself; the message says what to change."""


def build_authentication(
    config: Config, api_keys: ApiKeyAuthenticator | None = None
) -> Authentication:
    """The server's :class:`Authentication` for ``config``; ``api_keys`` verifies API keys
    once the database is reached (see :class:`ApiKeyAuthenticator`). Token authenticators
    come first; the certificate one defers to any call carrying a token anyway."""
    authenticators: list[Authenticator] = []
    jwt = jwt_authenticator(config)
    if jwt is not None:
        authenticators.append(jwt)
    if config.tls_identities_file:
        authenticators.append(CertificateAuthenticator(Path(config.tls_identities_file)))
    # Keep this after every other authenticator is added: any of them turns API keys on.
    if api_keys is not None and (authenticators or config.api_keys):
        authenticators.insert(0, api_keys)
    if config.auth == "none" and (authenticators or config.api_keys):
        raise StartRefused("--auth none contradicts the configured authenticators; drop one")
    return Authentication(authenticators)


def jwt_authenticator(config: Config) -> JwtAuthenticator | None:
    """The JWT authenticator ``config`` asks for, or None without keys or secret."""
    if config.jwt_public_keys and config.jwt_hs256_secret_file:
        raise ValueError("--jwt-public-keys and --jwt-hs256-secret-file exclude each other")
    if not (config.jwt_public_keys or config.jwt_hs256_secret_file):
        if config.jwt_issuer or config.jwt_audience or config.jwt_jwks_ca_file:
            raise ValueError(
                "--jwt-issuer, --jwt-audience and --jwt-jwks-ca-file need --jwt-public-keys "
                "or --jwt-hs256-secret-file"
            )
        return None
    secret = None
    if config.jwt_hs256_secret_file:
        try:
            secret = Path(config.jwt_hs256_secret_file).read_bytes().strip()
        except OSError as exc:
            raise ValueError(
                f"cannot read --jwt-hs256-secret-file {config.jwt_hs256_secret_file}: "
                f"{exc.strerror}"
            ) from None
    return JwtAuthenticator(
        keys=(
            key_source(config.jwt_public_keys, ca_file=config.jwt_jwks_ca_file)
            if config.jwt_public_keys
            else None
        ),
        hs256_secret=secret,
        issuer=config.jwt_issuer,
        audience=config.jwt_audience,
        tenant_claim=config.jwt_tenant_claim,
        default_tenant=config.jwt_default_tenant,
        scope_claim=config.jwt_scope_claim,
        leeway_seconds=config.jwt_leeway_seconds,
    )


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
    """StartRefused if ``config`` listens beyond loopback (gRPC or the web interface) with
    authentication off and without an explicit ``--auth none``."""
    if authentication.enabled or config.auth == "none":
        return
    for listen in (config.listen, config.http_listen):
        if listen and listen != "none" and not is_loopback(listen):
            break
    else:
        return
    raise StartRefused(
        f"refusing to serve {listen} without authentication: configure an "
        "authenticator (--jwt-public-keys, --api-keys, --tls-identities-file) or pass "
        "--auth none to let every caller in as anonymous with every scope"
    )
