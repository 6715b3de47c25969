"""The serving edge admits every kind of call the same way: unary calls, upload streams and
download streams are refused before they do anything without a credential that verifies and
carries the method's scope; health answers without credentials."""

from __future__ import annotations

import io
from collections.abc import Iterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from modelregistry.client import (
    PermissionDeniedError,
    RegistryClient,
    UnauthenticatedError,
)
from modelregistry_server.api.authentication import Authentication, Credentials
from modelregistry_server.app import RegistryServer
from modelregistry_server.domain.errors import Reason, Unauthenticated
from modelregistry_server.domain.identity import AuthMethod, Caller, Permission
from tests.api.registry_helpers import expect_error

TOKENS = {
    "reader": frozenset({Permission.READ}),
    "writer": frozenset({Permission.READ, Permission.CREATE, Permission.UPDATE}),
}


class _Tokens:
    def authenticate(self, credentials: Credentials) -> Caller | None:
        scopes = TOKENS.get(credentials.bearer or "")
        if scopes is None and credentials.bearer is not None:
            raise Unauthenticated("no such token", reason=Reason.CREDENTIALS_INVALID)
        if scopes is None:
            return None
        return Caller("default", str(credentials.bearer), scopes, method=AuthMethod.JWT)


@pytest.fixture
def guarded(server: RegistryServer, client: RegistryClient) -> Iterator[RegistryServer]:
    """A server with one READY version, then authentication switched on."""
    client.create_model("m")
    client.create_version("m")
    client.upload_file("m", 1, io.BytesIO(b"weights"))
    client.seal_version("m", 1)
    server.interceptor.use_authentication(Authentication([_Tokens()]))
    yield server


def _as(server: RegistryServer, token: str | None) -> RegistryClient:
    metadata = [] if token is None else [("authorization", f"Bearer {token}")]
    return RegistryClient(server.address, metadata=metadata, timeout=10, retries=0)


def test_every_kind_of_call_needs_credentials(guarded: RegistryServer) -> None:
    with _as(guarded, None) as anonymous:
        with expect_error(UnauthenticatedError, "CREDENTIALS_MISSING"):
            anonymous.get_model("m")
        with expect_error(UnauthenticatedError, "CREDENTIALS_MISSING"):
            anonymous.download_file("m", 1, io.BytesIO())
        with expect_error(UnauthenticatedError, "CREDENTIALS_MISSING"):
            anonymous.upload_file("m", 1, io.BytesIO(b"x"), file_id="f", resume_unfinished=False)
    with (
        _as(guarded, "forged") as forged,
        expect_error(UnauthenticatedError, "CREDENTIALS_INVALID"),
    ):
        forged.get_model("m")


def test_scopes_decide_per_method(guarded: RegistryServer) -> None:
    with _as(guarded, "reader") as reader:
        assert reader.get_model("m").name == "models/m"
        sink = io.BytesIO()
        reader.download_file("m", 1, sink)
        assert sink.getvalue() == b"weights"
        with expect_error(PermissionDeniedError, "SCOPE_MISSING"):
            reader.create_model("n")
        with expect_error(PermissionDeniedError, "SCOPE_MISSING"):
            reader.upload_file("m", 1, io.BytesIO(b"x"), file_id="f", resume_unfinished=False)
    with _as(guarded, "writer") as writer:
        writer.create_model("n")
        with expect_error(PermissionDeniedError, "SCOPE_MISSING"):
            writer.delete_model("n")


def test_health_needs_no_credentials(guarded: RegistryServer) -> None:
    with grpc.insecure_channel(guarded.address) as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=5
        )
    assert reply.status == health_pb2.HealthCheckResponse.SERVING
