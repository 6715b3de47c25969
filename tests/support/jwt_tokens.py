"""JWT test material made on the spot: signing keys, PEM and JWKS documents, tokens, a server
configuration that verifies them, and an https JWKS server on loopback with a certificate
authority generated for it."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from modelregistry.client import RegistryClient
from modelregistry_server.app import RegistryServer
from modelregistry_server.config import Config

ISSUER = "https://idp.example.test"
AUDIENCE = "modelregistry"
EVERY_SCOPE = "registry.read registry.create registry.update registry.delete"
PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


def rsa_key(n: int = 0) -> rsa.RSAPrivateKey:
    """The ``n``-th 2048-bit RSA test key (generated once per test run)."""
    return _rsa_key(n)


def ec_key(n: int = 0) -> ec.EllipticCurvePrivateKey:
    """The ``n``-th P-256 test key."""
    return _ec_key(n)


@cache
def _rsa_key(n: int) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@cache
def _ec_key(n: int) -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def public_pem(key: PrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def private_pem(key: PrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def jwk(key: PrivateKey, kid: str | None = None, **extra: Any) -> dict[str, Any]:
    """The public JWK of ``key``."""
    public = key.public_key()
    if isinstance(public, rsa.RSAPublicKey):
        entry = RSAAlgorithm.to_jwk(public, as_dict=True)
    else:
        entry = ECAlgorithm.to_jwk(public, as_dict=True)
    if kid is not None:
        entry["kid"] = kid
    return {**entry, **extra}


def jwks(*entries: dict[str, Any]) -> dict[str, Any]:
    return {"keys": list(entries)}


def claims(**overrides: Any) -> dict[str, Any]:
    """Claims that verify against ISSUER/AUDIENCE for five minutes; ``None`` drops a claim."""
    now = int(time.time())
    base: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "alice",
        "tenant": "acme",
        "scope": "registry.read registry.create",
        "iat": now,
        "exp": now + 300,
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def mint(
    key: PrivateKey | bytes, *, kid: str | None = None, algorithm: str = "", **overrides: Any
) -> str:
    """A token of ``claims(**overrides)`` signed by ``key`` (RS256, ES256 or HS256 by kind)."""
    if not algorithm:
        algorithm = (
            "HS256"
            if isinstance(key, bytes)
            else "RS256"
            if isinstance(key, rsa.RSAPrivateKey)
            else "ES256"
        )
    headers = {"kid": kid} if kid is not None else None
    return jwt.encode(claims(**overrides), key, algorithm=algorithm, headers=headers)


def jwt_config(config: Config, directory: Path) -> Config:
    """``config`` verifying RS256 (``rsa_key()``) and ES256 (``ec_key()``) tokens of ISSUER
    for AUDIENCE, from a PEM file written to ``directory``."""
    keys = write(directory / "jwt-keys.pem", public_pem(rsa_key()) + public_pem(ec_key()))
    return replace(config, jwt_public_keys=str(keys), jwt_issuer=ISSUER, jwt_audience=AUDIENCE)


def as_caller(server: RegistryServer, token: str | None) -> RegistryClient:
    """A client of ``server`` sending ``token`` as its bearer (None: no authorization)."""
    return RegistryClient(server.address, token=token, timeout=10, retries=0)


def write(path: Path, text: str) -> Path:
    """Replace ``path`` with ``text`` at once (as a key rotation tool would)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)
    return path


# -- an https JWKS endpoint ------------------------------------------------------------------


@dataclass
class CertificateAuthority:
    """A CA and a loopback server certificate it signed, as PEM files in ``directory``."""

    directory: Path
    ca_file: Path = field(init=False)
    cert_file: Path = field(init=False)
    key_file: Path = field(init=False)

    def __post_init__(self) -> None:
        now = dt.datetime.now(dt.UTC)
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test JWKS CA")])
        ca = (
            x509.CertificateBuilder()
            .subject_name(ca_name)
            .issuer_name(ca_name)
            .public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True, key_cert_sign=True, crl_sign=True,
                    content_commitment=False, key_encipherment=False, data_encipherment=False,
                    key_agreement=False, encipher_only=False, decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
            )
            .sign(ca_key, hashes.SHA256())
        )  # fmt: skip
        server_key = ec.generate_private_key(ec.SECP256R1())
        server = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_name)
            .public_key(server_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False,
            )
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                critical=False,
            )
            .sign(ca_key, hashes.SHA256())
        )
        self.ca_file = self.directory / "jwks-ca.pem"
        self.cert_file = self.directory / "jwks-server.pem"
        self.key_file = self.directory / "jwks-server.key"
        self.ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
        self.cert_file.write_bytes(server.public_bytes(serialization.Encoding.PEM))
        self.key_file.write_text(private_pem(server_key))


class JwksServer:
    """Serves ``document`` (replace it to rotate keys) at ``url``; counts the requests."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        self.requests = 0
        self.url = ""


@contextmanager
def serving_jwks(authority: CertificateAuthority, document: dict[str, Any]) -> Iterator[JwksServer]:
    """An https server on 127.0.0.1 (a free port) answering every GET with the JWKS."""
    state = JwksServer(document)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.requests += 1
            body = json.dumps(state.document).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(authority.cert_file, authority.key_file)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    state.url = f"https://127.0.0.1:{httpd.server_address[1]}/.well-known/jwks.json"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)
