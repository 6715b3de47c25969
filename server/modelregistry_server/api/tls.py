"""TLS for the gRPC port: server credentials from PEM files, reloaded when the files change.

gRPC asks :class:`CertificateReloader` for the certificate configuration before every TLS
handshake (``grpc.dynamic_ssl_server_credentials``, which works with ``grpc.aio`` servers).
The reloader compares the files' identity (inode, size, modification time) with what it last
loaded; only when they changed does it read them, and only if they load (the key matches the
certificate, every PEM parses) does gRPC get the new configuration. Otherwise the previous
certificate stays in use and the failure is logged once per change (a half-written rotation
fixes itself when the last file lands). Open connections keep the certificate they were
established with; new handshakes use the new one.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import serialization

log = logging.getLogger(__name__)

Signature = tuple[tuple[int, int, int], ...]
_MISSING: Signature = ()


def file_signature(*paths: Path) -> Signature:
    """What identifies the current content of ``paths`` without reading them (OSError if one
    is missing): a renamed-in file (cert-manager, Kubernetes secret volumes) has a new inode,
    a rewritten one a new size or modification time."""
    signature = []
    for path in paths:
        st = os.stat(path)
        signature.append((st.st_ino, st.st_size, st.st_mtime_ns))
    return tuple(signature)


@dataclass(frozen=True)
class TlsFiles:
    """The PEM files of the server's TLS: certificate chain, key, and for mutual TLS the CA
    client certificates must chain to."""

    cert: Path
    key: Path
    client_ca: Path | None = None

    @property
    def paths(self) -> tuple[Path, ...]:
        extra = () if self.client_ca is None else (self.client_ca,)
        return (self.cert, self.key, *extra)


@dataclass(frozen=True)
class LoadedCertificate:
    """One loaded configuration and what the log says about it."""

    configuration: grpc.ServerCertificateConfiguration
    serial: int
    not_after: datetime


def load_certificate(files: TlsFiles) -> LoadedCertificate:
    """Read and check the files; ValueError (naming the file) if they do not make a usable
    configuration, OSError if one cannot be read."""
    cert_pem = files.cert.read_bytes()
    key_pem = files.key.read_bytes()
    try:
        chain = x509.load_pem_x509_certificates(cert_pem)
    except ValueError as exc:
        raise ValueError(f"{files.cert} holds no PEM certificate") from exc
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError) as exc:  # TypeError: the key is encrypted
        raise ValueError(f"{files.key} holds no unencrypted PEM private key") from exc
    leaf = chain[0]
    if _public_der(key.public_key()) != _public_der(leaf.public_key()):
        raise ValueError(f"the key in {files.key} does not belong to the certificate {files.cert}")
    client_ca = None
    if files.client_ca is not None:
        client_ca = files.client_ca.read_bytes()
        try:
            x509.load_pem_x509_certificates(client_ca)
        except ValueError as exc:
            raise ValueError(f"{files.client_ca} holds no PEM certificate") from exc
    configuration = grpc.ssl_server_certificate_configuration(
        [(key_pem, cert_pem)], root_certificates=client_ca
    )
    return LoadedCertificate(configuration, leaf.serial_number, leaf.not_valid_after_utc)


def _public_der(public_key: object) -> bytes:
    encode = getattr(public_key, "public_bytes", None)
    if encode is None:
        return b""
    der: bytes = encode(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return der


class CertificateReloader:
    """The certificate-configuration fetcher gRPC calls before each handshake (see the module
    docstring). Raises from the constructor if the files do not load at start-up."""

    def __init__(self, files: TlsFiles) -> None:
        self._files = files
        self._lock = threading.Lock()
        self._signature = file_signature(*files.paths)
        self._rejected: Signature | None = None
        self.current = load_certificate(files)
        _log_loaded("TLS certificate loaded", self.current)

    def __call__(self) -> grpc.ServerCertificateConfiguration | None:
        """The new configuration if the files changed and load, else None (keep the current)."""
        with self._lock:
            try:
                signature = file_signature(*self._files.paths)
            except OSError as exc:  # mid-rotation: a file is missing for a moment
                self._reject(_MISSING, exc)
                return None
            if signature in (self._signature, self._rejected):
                return None
            try:
                loaded = load_certificate(self._files)
            except (OSError, ValueError) as exc:
                self._reject(signature, exc)
                return None
            self._signature, self._rejected, self.current = signature, None, loaded
            _log_loaded("TLS certificate reloaded", loaded)
            return loaded.configuration

    def _reject(self, signature: Signature, exc: Exception) -> None:
        if signature != self._rejected:
            log.warning(
                "TLS files changed but do not load (%s); still serving certificate serial %x",
                exc,
                self.current.serial,
            )
        self._rejected = signature


def _log_loaded(what: str, loaded: LoadedCertificate) -> None:
    level = logging.WARNING if loaded.not_after <= datetime.now(UTC) else logging.INFO
    log.log(level, "%s: serial %x, valid until %s", what, loaded.serial, loaded.not_after)


def server_credentials(files: TlsFiles) -> tuple[grpc.ServerCredentials, CertificateReloader]:
    """TLS server credentials that reload ``files``; with a client CA, clients must present a
    certificate it signed or the handshake fails."""
    reloader = CertificateReloader(files)
    credentials = grpc.dynamic_ssl_server_credentials(
        reloader.current.configuration,
        reloader,  # type: ignore[arg-type]  # the stubs miss that None means "unchanged"
        require_client_authentication=files.client_ca is not None,
    )
    return credentials, reloader
