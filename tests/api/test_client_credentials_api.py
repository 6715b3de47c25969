"""The Python client's credentials: a token (argument or ``MODELREGISTRY_TOKEN``) or a token
provider called before every call, sent as call credentials over TLS or to loopback only; root
certificates and a client certificate from arguments or the environment; ready channel
``credentials`` still work."""

from __future__ import annotations

import dataclasses
import io
import itertools
import threading
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from modelregistry.client import RegistryClient, UnauthenticatedError, UnavailableError
from modelregistry.client.credentials import is_local_target
from modelregistry_server.api.authentication import Authentication, Credentials
from modelregistry_server.app import RegistryServer
from modelregistry_server.config import Config
from modelregistry_server.domain.errors import Reason, Unauthenticated
from modelregistry_server.domain.identity import AuthMethod, Caller, Permission
from tests.api.registry_helpers import expect_error
from tests.support.certificates import Authority
from tests.support.metadata_fixtures import sqlite_url
from tests.support.servers import serving

SECRET = "tok-s3cret-value"
ENV = (
    "MODELREGISTRY_TOKEN",
    "MODELREGISTRY_CA_FILE",
    "MODELREGISTRY_CLIENT_CERT_FILE",
    "MODELREGISTRY_CLIENT_KEY_FILE",
)


@pytest.fixture
def metadata_url(tmp_path: Path) -> str:
    """Credentials do not depend on the store: SQLite is enough."""
    return sqlite_url(tmp_path)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV:
        monkeypatch.delenv(name, raising=False)


class _Recording:
    """Accepts any token starting with ``tok-`` and records every token it sees."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self._lock = threading.Lock()

    def authenticate(self, credentials: Credentials) -> Caller | None:
        if credentials.bearer is None:
            return None
        with self._lock:
            self.seen.append(credentials.bearer)
        if not credentials.bearer.startswith("tok-"):
            raise Unauthenticated("no such token", reason=Reason.CREDENTIALS_INVALID)
        return Caller("default", credentials.bearer, frozenset(Permission), method=AuthMethod.JWT)


@pytest.fixture
def tokens(server: RegistryServer) -> _Recording:
    recording = _Recording()
    server.interceptor.use_authentication(Authentication([recording]))
    return recording


def test_a_token_is_sent_with_every_call(server: RegistryServer, tokens: _Recording) -> None:
    with RegistryClient(server.address, token=SECRET, timeout=10) as client:
        client.create_model("m")
        client.create_version("m")
        client.upload_file("m", 1, io.BytesIO(b"weights"))
        sink = io.BytesIO()
        client.download_file("m", 1, sink)
        assert sink.getvalue() == b"weights"
        assert SECRET not in repr(client)
    assert tokens.seen and set(tokens.seen) == {SECRET}
    with (
        RegistryClient(server.address, timeout=10) as anonymous,
        expect_error(UnauthenticatedError, "CREDENTIALS_MISSING"),
    ):
        anonymous.get_model("m")


def test_the_token_provider_is_called_for_every_call_and_refreshes(
    server: RegistryServer, tokens: _Recording
) -> None:
    counter = itertools.count(1)
    issued: list[str] = []

    def provider() -> str:
        issued.append(f"tok-{next(counter)}")
        return issued[-1]

    with RegistryClient(server.address, token_provider=provider, timeout=10) as client:
        client.create_model("m")
        for _ in range(3):
            client.get_model("m")
    assert len(issued) == 4
    assert tokens.seen == issued, "each call carried the token fresh from the provider"


def test_a_failing_token_provider_fails_the_call_without_leaking(
    server: RegistryServer, tokens: _Recording
) -> None:
    def provider() -> str:
        raise RuntimeError(f"refresh failed for {SECRET}")

    with (
        RegistryClient(server.address, token_provider=provider, timeout=10, retries=0) as client,
        pytest.raises(UnavailableError) as caught,
    ):
        client.get_model("m")
    assert SECRET not in str(caught.value)
    assert tokens.seen == []


def test_the_token_comes_from_the_environment(
    server: RegistryServer, tokens: _Recording, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODELREGISTRY_TOKEN", SECRET)
    with RegistryClient(server.address, timeout=10) as client:
        client.create_model("from-env")
    assert tokens.seen == [SECRET]
    # Explicit metadata carrying a token wins over the environment (one authorization header).
    with RegistryClient(
        server.address, metadata=[("authorization", "Bearer tok-explicit")], timeout=10
    ) as client:
        client.get_model("from-env")
    assert tokens.seen == [SECRET, "tok-explicit"]


def test_no_token_in_clear_to_another_host() -> None:
    for target in ("registry.example.org:443", "10.0.0.5:50051", "dns:///registry:50051"):
        with pytest.raises(ValueError, match="in clear") as caught:
            RegistryClient(target, token=SECRET)
        assert SECRET not in str(caught.value)
    for local in ("127.0.0.1:1", "localhost:1", "[::1]:1", "ipv4:127.0.0.1:1", "unix:/tmp/s"):
        assert is_local_target(local)
        RegistryClient(local, token=SECRET).close()  # local credentials: no network yet
    with pytest.raises(ValueError, match="not both"):
        RegistryClient("127.0.0.1:1", token=SECRET, token_provider=lambda: SECRET)
    with pytest.raises(ValueError, match="go together"):
        RegistryClient("127.0.0.1:1", client_certificate=b"pem")


@pytest.fixture
def mutual_tls(server_config: Config, tmp_path: Path) -> Iterator[tuple[RegistryServer, Path]]:
    ca = Authority("Registry CA")
    tls = tmp_path / "tls"
    cert, key = ca.server().write(tls, "server")
    ca_file = ca.write(tls / "ca.crt")
    ca.client("ci", dns=("ci.example.org",)).write(tls, "client")
    config = dataclasses.replace(
        server_config, tls_cert=str(cert), tls_key=str(key), tls_client_ca=str(ca_file)
    )
    with serving(config) as service:
        yield service, tls


def test_tls_and_a_client_certificate_from_the_environment(
    mutual_tls: tuple[RegistryServer, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    server, tls = mutual_tls
    recording = _Recording()
    server.interceptor.use_authentication(Authentication([recording]))
    monkeypatch.setenv("MODELREGISTRY_CA_FILE", str(tls / "ca.crt"))
    monkeypatch.setenv("MODELREGISTRY_CLIENT_CERT_FILE", str(tls / "client.crt"))
    monkeypatch.setenv("MODELREGISTRY_CLIENT_KEY_FILE", str(tls / "client.key"))
    monkeypatch.setenv("MODELREGISTRY_TOKEN", SECRET)
    with RegistryClient(server.address, timeout=10) as client:
        client.create_model("over-mtls")
    assert recording.seen == [SECRET]
    # Ready channel credentials still work, and compose with a token.
    ready = grpc.ssl_channel_credentials(
        (tls / "ca.crt").read_bytes(),
        (tls / "client.key").read_bytes(),
        (tls / "client.crt").read_bytes(),
    )
    with RegistryClient(server.address, credentials=ready, token="tok-ready", timeout=10) as c:
        assert c.get_model("over-mtls").name == "models/over-mtls"
    assert recording.seen == [SECRET, "tok-ready"]
    # tls=False ignores the environment's certificates: plaintext to a TLS port fails.
    with (
        RegistryClient(server.address, tls=False, timeout=5, retries=0) as plaintext,
        pytest.raises(UnavailableError),
    ):
        plaintext.get_model("over-mtls")
