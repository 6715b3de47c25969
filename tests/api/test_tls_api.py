"""TLS and mutual TLS on the gRPC port, with certificates the tests make: the client verifies
the server, mutual TLS refuses clients without a certificate of the configured CA at the
handshake, and a rotated certificate is served to new connections without a restart (a
rotation that does not load keeps the old one)."""

from __future__ import annotations

import dataclasses
import socket
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509

from modelregistry.client import RegistryClient, UnavailableError
from modelregistry_server.app import RegistryServer
from modelregistry_server.config import Config
from tests.support.certificates import Authority, write_atomically
from tests.support.metadata_fixtures import sqlite_url
from tests.support.servers import serving


@pytest.fixture
def metadata_url(tmp_path: Path) -> str:
    """Transport security does not depend on the store: SQLite is enough."""
    return sqlite_url(tmp_path)


@dataclass(frozen=True)
class Pki:
    ca: Authority
    ca_file: Path
    cert: Path
    key: Path
    directory: Path


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    ca = Authority("Registry CA")
    directory = tmp_path / "tls"
    cert, key = ca.server().write(directory, "server")
    return Pki(ca, ca.write(directory / "ca.crt"), cert, key, directory)


def _tls(config: Config, pki: Pki, client_ca: Path | None = None) -> Config:
    return dataclasses.replace(
        config,
        tls_cert=str(pki.cert),
        tls_key=str(pki.key),
        tls_client_ca="" if client_ca is None else str(client_ca),
    )


@pytest.fixture
def tls_server(server_config: Config, pki: Pki) -> Iterator[RegistryServer]:
    with serving(_tls(server_config, pki)) as service:
        yield service


def served_serial(address: str) -> int:
    """The serial number of the certificate a new TLS connection to ``address`` gets."""
    host, port = address.rsplit(":", 1)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # only looking at what is served
    context.set_alpn_protocols(["h2"])
    with (
        socket.create_connection((host, int(port)), timeout=5) as raw,
        context.wrap_socket(raw) as connection,
    ):
        der = connection.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number


def _works(client: RegistryClient, model_id: str) -> None:
    client.create_model(model_id)
    assert client.get_model(model_id).name == f"models/{model_id}"


def test_client_verifies_the_server_and_talks_tls(tls_server: RegistryServer, pki: Pki) -> None:
    with RegistryClient(tls_server.address, root_certificates=pki.ca_file, timeout=10) as client:
        _works(client, "over-tls")
    with RegistryClient(tls_server.address, root_certificates=pki.ca.pem, timeout=10) as client:
        assert client.get_model("over-tls").name == "models/over-tls"


def test_a_client_that_does_not_trust_the_ca_fails(tls_server: RegistryServer) -> None:
    stranger = Authority("Someone else's CA")
    with (
        RegistryClient(tls_server.address, root_certificates=stranger.pem, timeout=5) as client,
        pytest.raises(UnavailableError),
    ):
        client.get_model("anything")
    with (
        RegistryClient(tls_server.address, timeout=5, retries=0) as plaintext,
        pytest.raises(UnavailableError),
    ):
        plaintext.get_model("anything")


def test_mutual_tls_refuses_clients_without_a_certificate_of_the_ca_at_the_handshake(
    server_config: Config, pki: Pki, tmp_path: Path
) -> None:
    member = pki.ca.client("ci", dns=("ci.example.org",)).write(tmp_path / "member", "client")
    outsider_ca = Authority("Outsider CA")
    outsider = outsider_ca.client("ci", dns=("ci.example.org",)).write(tmp_path / "out", "client")
    with serving(_tls(server_config, pki, client_ca=pki.ca_file)) as service:
        with RegistryClient(
            service.address,
            root_certificates=pki.ca_file,
            client_certificate=member[0],
            client_key=member[1],
            timeout=10,
        ) as client:
            _works(client, "mutual")
        for certificate in (None, outsider):
            with (
                RegistryClient(
                    service.address,
                    root_certificates=pki.ca_file,
                    client_certificate=None if certificate is None else certificate[0],
                    client_key=None if certificate is None else certificate[1],
                    timeout=5,
                    retries=0,
                ) as refused,
                pytest.raises(UnavailableError),
            ):
                refused.get_model("mutual")


def _rotate(pki: Pki, ca: Authority) -> int:
    issued = ca.server("registry-rotated")
    issued.write(pki.directory, "server")
    return issued.serial


def _served_eventually(address: str, serial: int) -> bool:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if served_serial(address) == serial:
            return True
        time.sleep(0.05)
    return False


def test_a_rotated_certificate_is_served_to_new_connections_without_a_restart(
    tls_server: RegistryServer, pki: Pki
) -> None:
    first = served_serial(tls_server.address)
    assert tls_server.tls is not None and tls_server.tls.current.serial == first
    with RegistryClient(tls_server.address, root_certificates=pki.ca_file, timeout=10) as old:
        _works(old, "before")
        # A certificate from a new CA: only a client trusting it can tell the rotation worked.
        new_ca = Authority("Rotated CA")
        second = _rotate(pki, new_ca)
        assert second != first
        assert _served_eventually(tls_server.address, second)
        with RegistryClient(tls_server.address, root_certificates=new_ca.pem, timeout=10) as new:
            assert new.get_model("before").name == "models/before"
        with (
            RegistryClient(
                tls_server.address, root_certificates=pki.ca_file, timeout=5, retries=0
            ) as stale,
            pytest.raises(UnavailableError),
        ):
            stale.get_model("before")
        # The open connection keeps the certificate it was established with.
        assert old.get_model("before").name == "models/before"


def test_a_rotation_that_does_not_load_keeps_the_old_certificate(
    tls_server: RegistryServer, pki: Pki, caplog: pytest.LogCaptureFixture
) -> None:
    serving_serial = served_serial(tls_server.address)
    # Half-written: a new certificate has landed, its key not yet.
    write_atomically(pki.cert, pki.ca.server("half").cert_pem)
    for _ in range(3):
        assert served_serial(tls_server.address) == serving_serial
    write_atomically(pki.key, b"-----BEGIN PRIVATE KEY-----\ntruncated")
    assert served_serial(tls_server.address) == serving_serial
    warnings = [r for r in caplog.records if "do not load" in r.getMessage()]
    assert len(warnings) == 2, "one warning per change, not per handshake"
    with RegistryClient(tls_server.address, root_certificates=pki.ca_file, timeout=10) as client:
        _works(client, "still-serving")
    # The rotation completes: the next handshake gets the new certificate.
    complete = _rotate(pki, pki.ca)
    assert _served_eventually(tls_server.address, complete)
