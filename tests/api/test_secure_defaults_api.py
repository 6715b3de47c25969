"""Secure by default: a server asked to listen beyond loopback without an authenticator
refuses to start (one line, exit status 2) unless ``--auth none`` says so; reflection is open,
authenticated or off as configured, and health never needs credentials."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from modelregistry.client import RegistryClient
from modelregistry_server.api.authentication import Authentication, Credentials
from modelregistry_server.app import RegistryServer
from modelregistry_server.config import Config
from modelregistry_server.domain.errors import Reason, Unauthenticated
from modelregistry_server.domain.identity import AuthMethod, Caller, Permission
from modelregistry_server.security import StartRefused, check_exposure, is_loopback
from tests.support.metadata_fixtures import sqlite_url
from tests.support.reflection import VERSIONS, list_services
from tests.support.server_process import ServerProcess
from tests.support.servers import serving

START_TIMEOUT_S = 60


@pytest.fixture
def metadata_url(tmp_path: Path) -> str:
    """Start-up and reflection do not depend on the store: SQLite is enough."""
    return sqlite_url(tmp_path)


def _server_command(tmp_path: Path, *args: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "modelregistry_server",
        "--database-url",
        sqlite_url(tmp_path),
        "--blob-url",
        (tmp_path / "blobs").as_uri(),
        "--maintenance-interval-seconds",
        "0",
        *args,
    ]


@pytest.mark.slow
@pytest.mark.parametrize("listen", ["0.0.0.0:0", "[::]:0", "registry.example.org:50051"])
def test_a_server_beyond_loopback_without_authentication_refuses_to_start(
    tmp_path: Path, listen: str
) -> None:
    done = subprocess.run(
        _server_command(tmp_path, "--listen", listen),
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT_S,
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("modelregistry: refusing to serve")
    assert "without authentication" in lines[0] and "--auth none" in lines[0]
    assert done.stdout == ""
    assert not (tmp_path / "blobs").exists(), "refused before anything was created"


@pytest.mark.slow
def test_auth_none_lets_it_serve_beyond_loopback(tmp_path: Path) -> None:
    process = ServerProcess(
        sqlite_url(tmp_path),
        (tmp_path / "blobs").as_uri(),
        tmp_path / "server.log",
        extra_args=("--listen", "0.0.0.0:0", "--auth", "none"),
    )
    with process:
        port = process.address.rsplit(":", 1)[1]
        with RegistryClient(f"127.0.0.1:{port}", timeout=10) as client:
            client.create_model("open-on-purpose")


def test_exposure_rule() -> None:
    off = Authentication()
    for local in ("127.0.0.1:50051", "127.1.2.3:0", "localhost:50051", "[::1]:50051", "unix:/s"):
        assert is_loopback(local)
        check_exposure(Config(listen=local), off)
    for exposed in ("0.0.0.0:50051", "[::]:50051", "10.0.0.5:50051", "host:50051", ":50051"):
        assert not is_loopback(exposed)
        with pytest.raises(StartRefused, match="--auth none"):
            check_exposure(Config(listen=exposed), off)
        check_exposure(Config(listen=exposed, auth="none"), off)
        check_exposure(Config(listen=exposed), Authentication([_Tokens()]))


# -- reflection -------------------------------------------------------------------------------


class _Tokens:
    def authenticate(self, credentials: Credentials) -> Caller | None:
        if credentials.bearer is None:
            return None
        if credentials.bearer != "valid":
            raise Unauthenticated("no such token", reason=Reason.CREDENTIALS_INVALID)
        return Caller("default", "someone", frozenset({Permission.READ}), method=AuthMethod.JWT)


@pytest.fixture(params=["open", "authenticated", "off"])
def reflection_server(
    request: pytest.FixtureRequest, server_config: Config
) -> Iterator[RegistryServer]:
    with serving(dataclasses.replace(server_config, reflection=request.param)) as service:
        service.interceptor.use_authentication(Authentication([_Tokens()]))
        yield service


def _list_services(address: str, token: str | None, version: str) -> list[str]:
    metadata = () if token is None else (("authorization", f"Bearer {token}"),)
    return list_services(address, version, metadata)


def _health(address: str) -> int:
    with grpc.insecure_channel(address) as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=5
        )
    return reply.status


def _code(address: str, token: str | None, version: str) -> grpc.StatusCode:
    try:
        _list_services(address, token, version)
    except grpc.RpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


def test_reflection_modes(reflection_server: RegistryServer) -> None:
    """Both reflection services (v1 and v1alpha) follow ``--reflection``."""
    mode = reflection_server.config.reflection
    address = reflection_server.address
    assert _health(address) == health_pb2.HealthCheckResponse.SERVING
    for version in VERSIONS:
        if mode == "off":
            assert _code(address, "valid", version) is grpc.StatusCode.UNIMPLEMENTED
            continue
        assert "modelregistry.v1.ModelRegistry" in _list_services(address, "valid", version)
        if mode == "open":
            assert "modelregistry.v1.ModelRegistry" in _list_services(address, None, version)
            continue
        assert _code(address, None, version) is grpc.StatusCode.UNAUTHENTICATED
        assert _code(address, "forged", version) is grpc.StatusCode.UNAUTHENTICATED
