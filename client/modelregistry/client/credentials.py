"""The client's credentials: TLS (server verification, client certificates) and a bearer token
(a JWT or an API key) sent with every call.

A token travels as gRPC *call credentials*, which gRPC only sends over a secure channel: TLS,
or, to a loopback or Unix-socket target, gRPC's local credentials (plaintext on the wire, which
never leaves the host). A token to any other host over plaintext is refused when the client is
built rather than sent in clear. A ``token_provider`` is called before every call (so it can
refresh a token that is about to expire; it should cache the token it returns); the token is
never logged nor shown in a ``repr``.

Defaults from the environment, each used only where the argument is not given:
``MODELREGISTRY_TOKEN`` (the token), ``MODELREGISTRY_CA_FILE`` (root certificates, turns TLS
on), ``MODELREGISTRY_CLIENT_CERT_FILE`` and ``MODELREGISTRY_CLIENT_KEY_FILE`` (a client
certificate for mutual TLS).
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Final, TypeAlias

import grpc

__all__ = [
    "CA_FILE_ENV",
    "CLIENT_CERT_ENV",
    "CLIENT_KEY_ENV",
    "TOKEN_ENV",
    "Pem",
    "TokenProvider",
    "channel_credentials",
]

TOKEN_ENV: Final = "MODELREGISTRY_TOKEN"
CA_FILE_ENV: Final = "MODELREGISTRY_CA_FILE"
CLIENT_CERT_ENV: Final = "MODELREGISTRY_CLIENT_CERT_FILE"
CLIENT_KEY_ENV: Final = "MODELREGISTRY_CLIENT_KEY_FILE"

#: PEM data as bytes, or the path of a PEM file.
Pem: TypeAlias = "bytes | str | os.PathLike[str]"
#: Returns the bearer token for the next call.
TokenProvider: TypeAlias = Callable[[], str]


class _BearerToken(grpc.AuthMetadataPlugin):
    """Adds ``authorization: Bearer <token>`` to each call (gRPC calls it per call)."""

    def __init__(self, provider: TokenProvider) -> None:
        self._provider = provider

    def __call__(
        self, context: grpc.AuthMetadataContext, callback: grpc.AuthMetadataPluginCallback
    ) -> None:
        try:
            token = self._provider()
        except Exception as exc:  # the call fails UNAVAILABLE; say what, never the token
            callback((), RuntimeError(f"the token provider failed ({type(exc).__name__})"))
            return
        callback((("authorization", f"Bearer {token}"),), None)

    def __repr__(self) -> str:
        return "_BearerToken(<hidden>)"


def _read(pem: Pem | None) -> bytes | None:
    if pem is None or isinstance(pem, bytes):
        return pem
    return Path(pem).read_bytes()


def is_local_target(target: str) -> bool:
    """Whether ``target`` is a Unix socket or a loopback host (``localhost``, 127.0.0.0/8,
    ``::1``), where local credentials apply."""
    if target.startswith(("unix:", "unix-abstract:")):
        return True
    for scheme in ("dns:///", "ipv4:", "ipv6:"):
        target = target.removeprefix(scheme)
    host = target.rsplit(":", 1)[0].strip("[]") if ":" in target else target
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def channel_credentials(
    target: str,
    *,
    credentials: grpc.ChannelCredentials | None = None,
    token: str | None = None,
    token_provider: TokenProvider | None = None,
    root_certificates: Pem | None = None,
    client_certificate: Pem | None = None,
    client_key: Pem | None = None,
    tls: bool | None = None,
    environ: Mapping[str, str] | None = None,
) -> grpc.ChannelCredentials | None:
    """The channel credentials for ``target`` (None: a plaintext channel without a token).

    ``tls`` None turns TLS on when root certificates or a client certificate are given (or
    set in the environment); True with no roots verifies against the system's roots; False
    is plaintext. ``credentials`` (ready channel credentials) replace every TLS argument.
    """
    env = os.environ if environ is None else environ
    if token is not None and token_provider is not None:
        raise ValueError("pass token or token_provider, not both")
    if token is None and token_provider is None:
        token = env.get(TOKEN_ENV) or None
    provider = token_provider or (None if token is None else _constant(token))
    tls_args = (root_certificates, client_certificate, client_key)
    if credentials is not None:
        if any(a is not None for a in tls_args) or tls is False:
            raise ValueError("credentials replaces tls, root_certificates and client_*")
        transport = credentials
    else:
        if tls is not False:
            root_certificates = root_certificates or env.get(CA_FILE_ENV) or None
            client_certificate = client_certificate or env.get(CLIENT_CERT_ENV) or None
            client_key = client_key or env.get(CLIENT_KEY_ENV) or None
        elif any(a is not None for a in tls_args):
            raise ValueError("tls=False contradicts root_certificates and client_*")
        if (client_certificate is None) != (client_key is None):
            raise ValueError("client_certificate and client_key go together")
        use_tls = tls if tls is not None else (root_certificates or client_certificate) is not None
        if use_tls:
            transport = grpc.ssl_channel_credentials(
                _read(root_certificates), _read(client_key), _read(client_certificate)
            )
        elif provider is None:
            return None
        elif is_local_target(target):
            kind = (
                grpc.LocalConnectionType.UDS
                if target.startswith("unix")
                else grpc.LocalConnectionType.LOCAL_TCP
            )
            transport = grpc.local_channel_credentials(kind)
        else:
            raise ValueError(
                f"refusing to send a token in clear to {target}: use TLS (tls=True, "
                f"root_certificates=… or {CA_FILE_ENV})"
            )
    if provider is None:
        return transport
    return grpc.composite_channel_credentials(
        transport, grpc.metadata_call_credentials(_BearerToken(provider))
    )


def _constant(token: str) -> TokenProvider:
    return lambda: token
