"""Page tokens are signed with a server secret: forged or edited tokens are INVALID_PAGE_TOKEN,
and every replica on the same database (or with the same secret file) accepts the others'."""

from __future__ import annotations

import base64
import dataclasses
import io
import json
from pathlib import Path

import pytest

from modelregistry.client import InvalidArgumentError, RegistryClient
from modelregistry.v1 import model_registry_pb2 as mr
from modelregistry.v1 import payload_pb2 as pl
from modelregistry_server.app import RegistryServer, build_server
from modelregistry_server.config import Config
from modelregistry_server.domain.identity import DEFAULT_TENANT
from modelregistry_server.domain.listing import MODEL_DEFAULT_ORDER, PageTokens, query_fingerprint
from tests.api.registry_helpers import call, expect_error
from tests.support.servers import serving


def _unsigned(cursor: list[object], fingerprint: str) -> str:
    """A token as anyone could have made one before tokens were signed."""
    doc = json.dumps({"c": cursor, "f": fingerprint}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(doc).decode().rstrip("=")


def _three_models(client: RegistryClient) -> str:
    for m in ("a", "b", "c"):
        client.create_model(m)
    token = client.list_models_page(page_size=1).next_page_token
    assert token
    return token


def test_forged_tokens_are_rejected(client: RegistryClient) -> None:
    _three_models(client)
    fingerprint = query_fingerprint(DEFAULT_TENANT, "models", "", MODEL_DEFAULT_ORDER, False)
    for token in (_unsigned(["a", 1], fingerprint), _unsigned(["a"], fingerprint) + ".AAAA"):
        with expect_error(InvalidArgumentError, "INVALID_PAGE_TOKEN", field="page_token"):
            client.list_models_page(page_size=1, page_token=token)


def test_edited_token_is_rejected(client: RegistryClient) -> None:
    token = _three_models(client)
    payload, mac = token.split(".")
    doc = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    doc["c"][0] = "zzz"
    edited = base64.urlsafe_b64encode(json.dumps(doc).encode()).decode().rstrip("=")
    with expect_error(InvalidArgumentError, "INVALID_PAGE_TOKEN", field="page_token"):
        client.list_models_page(page_size=1, page_token=f"{edited}.{mac}")


def _upload(client: RegistryClient) -> None:
    client.create_model("m")
    client.create_version("m")
    client.upload_file("m", 1, io.BytesIO(b"x"), file_id="f")


@pytest.mark.parametrize(
    ("method", "cursor"),
    [
        ("ListStageTransitions", 2**64),
        ("ListStageTransitions", -(2**63) - 1),
        ("ListFiles", "a\x00b"),
    ],
)
def test_signed_cursors_the_store_cannot_hold(
    server: RegistryServer, client: RegistryClient, method: str, cursor: object
) -> None:
    """Even a validly signed token (a bug, a leaked secret) cannot reach the database with a
    value it cannot hold: NUL breaks PostgreSQL text, 2**64 overflows BIGINT and SQLite."""
    _upload(client)
    tokens = PageTokens(server.store.page_token_secret())
    if method == "ListFiles":
        token = tokens.encode((cursor,), query_fingerprint(DEFAULT_TENANT, "files", "m", 1))
        request = pl.ListFilesRequest(parent="models/m/versions/1", page_token=token)
        with expect_error(InvalidArgumentError, "INVALID_PAGE_TOKEN", field="page_token"):
            client.list_files_page("m", 1, page_token=request.page_token)
        return
    token = tokens.encode((cursor,), query_fingerprint(DEFAULT_TENANT, "transitions", "m", 1))
    request = mr.ListStageTransitionsRequest(parent="models/m/versions/1", page_token=token)
    with expect_error(InvalidArgumentError, "INVALID_PAGE_TOKEN", field="page_token"):
        call(client, "ListStageTransitions", request)


def test_tokens_work_across_replicas_and_restarts(server_config: Config) -> None:
    """The default secret lives in the database: another server on it accepts the token."""
    with serving(server_config) as first, RegistryClient(first.address) as c:
        token = _three_models(c)
    with serving(server_config) as second, RegistryClient(second.address) as c:
        page = c.list_models_page(page_size=1, page_token=token)
        assert [m.name for m in page.models] == ["models/b"]


def test_secret_file(server_config: Config, tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    one.write_bytes(b"a shared secret of enough bytes\n")
    two.write_bytes(b"another secret, just as long\n")
    with_one = dataclasses.replace(server_config, page_token_secret_file=str(one))
    with_two = dataclasses.replace(server_config, page_token_secret_file=str(two))
    with serving(with_one) as first, RegistryClient(first.address) as c:
        token = _three_models(c)
        assert [m.name for m in c.list_models_page(page_size=1, page_token=token).models] == [
            "models/b"
        ]
    with (
        serving(with_two) as other,
        RegistryClient(other.address) as c,
        expect_error(InvalidArgumentError, "INVALID_PAGE_TOKEN"),
    ):
        c.list_models_page(page_size=1, page_token=token)
    short = tmp_path / "short"
    short.write_bytes(b"tiny")
    with pytest.raises(ValueError, match="at least 16 bytes"):
        build_server(dataclasses.replace(server_config, page_token_secret_file=str(short)))
