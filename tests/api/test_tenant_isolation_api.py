"""What one tenant does is invisible to another, through the shipped client with JWTs of two
tenants: upload sessions (status, cancel, listing, the client's automatic resume), file
listings with wildcards, lineage and request ids never cross the tenant boundary."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelregistry.client import NotFoundError, RegistryClient
from modelregistry_server.app import RegistryServer
from modelregistry_server.config import Config
from tests.api.registry_helpers import expect_error
from tests.support.jwt_tokens import EVERY_SCOPE, as_caller, jwt_config, mint, rsa_key
from tests.support.payload_helpers import KiB, wait_for
from tests.support.servers import serving

DATA = bytes(range(256)) * 4 * KiB  # 1 MiB: several chunks and pieces


class Interrupted(Exception):
    """Stands for an uploading process that died."""


def _token(tenant: str) -> str:
    return mint(rsa_key(), scope=EVERY_SCOPE, tenant=tenant)


@pytest.fixture
def jwt_server(server_config: Config, tmp_path: Path) -> Iterator[RegistryServer]:
    with serving(jwt_config(server_config, tmp_path)) as service:
        yield service


@pytest.fixture
def tenants(jwt_server: RegistryServer) -> Iterator[tuple[RegistryClient, RegistryClient]]:
    """Clients of tenants acme and globex, each with model ``m`` and a DRAFT version 1."""
    with (
        as_caller(jwt_server, _token("acme")) as acme,
        as_caller(jwt_server, _token("globex")) as globex,
    ):
        for client in (acme, globex):
            client.create_model("m")
            client.create_version("m")
        yield acme, globex


def _interrupted_upload(server: RegistryServer, client: RegistryClient, upload_id: str) -> None:
    """Start an upload and die once the server holds its session."""

    def session() -> bool:
        try:
            return bool(client.get_upload_status(upload_id).upload_id)
        except NotFoundError:
            return False

    def die(sent: int, total: int | None) -> None:
        if sent > 64 * KiB:
            wait_for(session, "the upload session")
            raise Interrupted

    uploader = RegistryClient(
        server.address, token=_token("acme"), timeout=10, retries=0, chunk_size=64 * KiB
    )
    with uploader, pytest.raises(Interrupted):
        uploader.upload_file(
            "m", 1, io.BytesIO(DATA), file_id="f", upload_id=upload_id, progress=die, max_resumes=0
        )


def test_upload_sessions_stay_in_their_tenant(
    jwt_server: RegistryServer, tenants: tuple[RegistryClient, RegistryClient]
) -> None:
    acme, globex = tenants
    _interrupted_upload(jwt_server, acme, "shared-id")
    assert acme.get_upload_status("shared-id").upload_id == "shared-id"

    with expect_error(NotFoundError, "UPLOAD_NOT_FOUND"):
        globex.get_upload_status("shared-id")
    with expect_error(NotFoundError, "UPLOAD_NOT_FOUND"):
        globex.cancel_upload("shared-id")
    assert list(globex.list_uploads("m", 1)) == []

    # The same bytes to the same file in the other tenant: its own upload, never acme's session.
    globex.upload_file("m", 1, io.BytesIO(DATA), file_id="f")
    sink = io.BytesIO()
    globex.download_file("m", 1, sink, file_id="f")
    assert sink.getvalue() == DATA
    left = acme.get_upload_status("shared-id")
    assert [u.upload_id for u in acme.list_uploads("m", 1)] == ["shared-id"]
    assert left.committed_size_bytes < len(DATA)
    assert list(acme.list_files("m", 1)) == []


def test_wildcard_file_listings_stay_in_their_tenant(
    tenants: tuple[RegistryClient, RegistryClient],
) -> None:
    acme, globex = tenants
    acme.upload_file("m", 1, io.BytesIO(DATA), file_id="secret")
    for model, version in (("-", "-"), ("m", "-"), ("m", 1)):
        assert list(globex.list_files(model, version)) == [], (model, version)
    assert [f.name for f in acme.list_files("-", "-")] == ["models/m/versions/1/files/secret"]


def test_lineage_stays_in_its_tenant(tenants: tuple[RegistryClient, RegistryClient]) -> None:
    acme, globex = tenants
    acme.create_version("m", datasets=["gs://acme/private"], produced_by=[("m", 1)])
    graph = globex.get_lineage(dataset_uri="gs://acme/private", direction="downstream")
    assert [n.model_version.name for n in graph.nodes if n.model_version.name] == []
    graph = globex.get_lineage("m", 1, direction="downstream")
    assert [n.model_version.name for n in graph.nodes if n.model_version.name] == [
        "models/m/versions/1"
    ]
    graph = acme.get_lineage(dataset_uri="gs://acme/private", direction="downstream")
    assert [n.model_version.name for n in graph.nodes if n.model_version.name] == [
        "models/m/versions/2"
    ]


def test_request_ids_stay_in_their_tenant(
    tenants: tuple[RegistryClient, RegistryClient],
) -> None:
    acme, globex = tenants
    made = acme.create_model("fraud", description="acme's", request_id="req-1")
    # The same request id and body in another tenant creates that tenant's own model.
    again = globex.create_model("fraud", description="acme's", request_id="req-1")
    assert again.name == made.name and again.uid != made.uid
    assert globex.get_model("fraud").uid == again.uid
