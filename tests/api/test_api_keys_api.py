"""API keys through the shipped client, with authentication switched on by ``api_keys=True``
(the ``--api-keys`` flag): an admin key manages keys of its own tenant, a key authenticates
as ``apikey:<id>`` with its scopes and tenant, and a revoked or expired key is refused at once.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from modelregistry.client import (
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
    RegistryClient,
    UnauthenticatedError,
)
from modelregistry_server.app import RegistryServer
from modelregistry_server.config import Config
from modelregistry_server.domain.identity import ALL_SCOPES, Caller
from tests.api.registry_helpers import expect_error
from tests.support.jwt_tokens import as_caller, jwt_config, mint, rsa_key
from tests.support.servers import serving

ADMIN = "registry.admin"
READ = "registry.read"


@pytest.fixture
def server(server_config: Config) -> Iterator[RegistryServer]:
    with serving(dataclasses.replace(server_config, api_keys=True)) as service:
        yield service


def _bootstrap(server: RegistryServer, tenant: str, *scopes: str) -> str:
    """A key made as the bootstrap CLI makes it (no RPC): its credential."""
    boot = Caller(tenant=tenant, subject="cli:test", scopes=ALL_SCOPES)
    return server.api_keys.create(boot, f"{tenant} boot", scopes or (ADMIN,)).credential


def _as(server: RegistryServer, secret: str | None) -> RegistryClient:
    metadata = [] if secret is None else [("authorization", f"Bearer {secret}")]
    return RegistryClient(server.address, metadata=metadata, timeout=10, retries=0)


@pytest.fixture
def admin(server: RegistryServer) -> Iterator[RegistryClient]:
    with _as(server, _bootstrap(server, "acme")) as client:
        yield client


def test_a_created_key_authenticates_as_itself(
    server: RegistryServer, admin: RegistryClient
) -> None:
    created = admin.create_api_key("ci-deploy", scopes=[READ, "registry.create"])
    key = created.api_key
    assert created.secret.startswith(f"mrk_{key.key_id}_")
    assert key.name == f"apiKeys/{key.key_id}" and key.tenant == "acme"
    assert key.created_by.startswith("apikey:") and key.display_name == "ci-deploy"
    with _as(server, created.secret) as ci:
        me = ci.get_caller()
        assert me.actor == f"apikey:{key.key_id}" and me.api_key_id == key.key_id
        assert me.tenant == "acme" and me.auth_method == "api_key"
        assert list(me.scopes) == ["registry.create", READ]
        ci.create_model("fraud")
        version = ci.create_version("fraud")
        assert ci.get_model("fraud").name == "models/fraud"
        with expect_error(PermissionDeniedError, "SCOPE_MISSING"):
            ci.delete_model("fraud")  # registry.delete was not granted
        with expect_error(PermissionDeniedError, "SCOPE_MISSING"):
            ci.list_api_keys_page()  # nor registry.admin
    assert version.version_number == 1


def test_a_key_sees_only_its_tenant(server: RegistryServer, admin: RegistryClient) -> None:
    admin.create_model("fraud")
    other_admin = _bootstrap(server, "other")
    with _as(server, other_admin) as other:
        assert other.get_caller().tenant == "other"
        with expect_error(NotFoundError, "MODEL_NOT_FOUND"):
            other.get_model("fraud")
        assert list(other.list_models()) == []
        assert [k.tenant for k in other.list_api_keys()] == ["other"]
        acme_key = admin.create_api_key("reader", scopes=[READ]).api_key
        with expect_error(NotFoundError, "API_KEY_NOT_FOUND"):
            other.revoke_api_key(acme_key.key_id)  # another tenant's key does not exist here
    assert not admin.list_api_keys_page().api_keys[-1].HasField("revoke_time")


def test_listing_pages_and_never_shows_a_secret(
    server: RegistryServer, admin: RegistryClient
) -> None:
    secrets = [admin.create_api_key(f"k{n}", scopes=[READ]).secret for n in range(5)]
    first = admin.list_api_keys_page(page_size=2)
    assert len(first.api_keys) == 2 and first.next_page_token
    keys = list(admin.list_api_keys(page_size=2))
    assert [k.display_name for k in keys] == ["acme boot", "k0", "k1", "k2", "k3", "k4"]
    wire = b"".join(k.SerializeToString() for k in keys)
    for secret in secrets:
        assert secret.encode() not in wire
        assert secret.rsplit("_", 1)[1].encode() not in wire
    with expect_error(InvalidArgumentError, "INVALID_PAGE_TOKEN", field="page_token"):
        admin.list_api_keys_page(page_token=first.next_page_token + "x")


def test_a_revoked_key_is_refused_at_once(server: RegistryServer, admin: RegistryClient) -> None:
    created = admin.create_api_key("ci", scopes=[READ])
    with _as(server, created.secret) as ci:
        assert ci.get_caller().api_key_id == created.api_key.key_id  # verified (and cached)
        revoked = admin.revoke_api_key(created.api_key.name)
        assert revoked.HasField("revoke_time")
        with expect_error(UnauthenticatedError, "CREDENTIALS_INVALID"):
            ci.get_caller()
        with expect_error(UnauthenticatedError, "CREDENTIALS_INVALID"):
            ci.list_models_page()
    again = admin.revoke_api_key(created.api_key.key_id)  # idempotent
    assert again.revoke_time == revoked.revoke_time


def test_an_expired_key_is_refused(server: RegistryServer, admin: RegistryClient) -> None:
    soon = datetime.now(UTC) + timedelta(seconds=1.5)
    created = admin.create_api_key("short", scopes=[READ], expire_time=soon)
    assert created.api_key.expire_time.ToDatetime(tzinfo=UTC) == soon
    with _as(server, created.secret) as short:
        short.get_caller()  # cached from here on: expiry is still checked on every call
        time.sleep(max(0.0, (soon - datetime.now(UTC)).total_seconds()) + 0.1)
        with expect_error(UnauthenticatedError, "CREDENTIALS_INVALID"):
            short.get_caller()


def test_every_bad_key_gets_the_same_answer(server: RegistryServer, admin: RegistryClient) -> None:
    real = admin.create_api_key("ci", scopes=[READ]).secret
    key_id = real.split("_")[1]
    admin.revoke_api_key(admin.create_api_key("gone", scopes=[READ]).api_key.key_id)
    candidates = [
        f"mrk_{key_id}_{'a' * 52}",  # wrong secret
        f"mrk_{'b' * 16}_{'a' * 52}",  # no such key
        "mrk_short",  # malformed
        real + "x",
    ]
    messages = set()
    for bearer in candidates:
        with (
            _as(server, bearer) as bad,
            expect_error(UnauthenticatedError, "CREDENTIALS_INVALID", case=bearer) as caught,
        ):
            bad.get_caller()
        messages.add(caught.value.message)
    assert len(messages) == 1
    with _as(server, None) as anonymous, expect_error(UnauthenticatedError, "CREDENTIALS_MISSING"):
        anonymous.get_caller()


def test_only_admins_manage_keys(server: RegistryServer, admin: RegistryClient) -> None:
    target = admin.create_api_key("target", scopes=[READ]).api_key
    writer = admin.create_api_key(
        "writer", scopes=[READ, "registry.create", "registry.update", "registry.delete"]
    )
    with _as(server, writer.secret) as non_admin:
        with expect_error(PermissionDeniedError, "SCOPE_MISSING"):
            non_admin.create_api_key("escalate", scopes=[ADMIN])
        with expect_error(PermissionDeniedError, "SCOPE_MISSING"):
            non_admin.list_api_keys_page()
        with expect_error(PermissionDeniedError, "SCOPE_MISSING"):
            non_admin.revoke_api_key(target.key_id)
    assert [k.display_name for k in admin.list_api_keys()] == ["acme boot", "target", "writer"]
    assert not list(admin.list_api_keys())[1].HasField("revoke_time")


def test_bad_requests_name_the_field(admin: RegistryClient) -> None:
    with expect_error(InvalidArgumentError, "INVALID_ARGUMENT", field="api_key.scopes"):
        admin.create_api_key("x", scopes=["registry.everything"])
    with expect_error(InvalidArgumentError, "INVALID_ARGUMENT", field="api_key.scopes"):
        admin.create_api_key("x", scopes=[])
    with expect_error(InvalidArgumentError, "INVALID_ARGUMENT", field="api_key.display_name"):
        admin.create_api_key(" ", scopes=[READ])
    past = datetime.now(UTC) - timedelta(minutes=1)
    with expect_error(InvalidArgumentError, "INVALID_ARGUMENT", field="api_key.expire_time"):
        admin.create_api_key("x", scopes=[READ], expire_time=past)
    with expect_error(InvalidArgumentError, "INVALID_ARGUMENT", field="name"):
        admin.revoke_api_key("apiKeys/NOT-A-KEY")
    with expect_error(NotFoundError, "API_KEY_NOT_FOUND"):
        admin.revoke_api_key("b" * 16)
    assert [k.display_name for k in admin.list_api_keys()] == ["acme boot"]  # nothing made


def test_last_use_is_recorded_at_most_once_a_minute(
    server: RegistryServer, admin: RegistryClient
) -> None:
    created = admin.create_api_key("ci", scopes=[READ])
    assert not created.api_key.HasField("last_use_time")

    def last_use() -> datetime:
        key = next(k for k in admin.list_api_keys() if k.key_id == created.api_key.key_id)
        assert key.HasField("last_use_time")
        return key.last_use_time.ToDatetime(tzinfo=UTC)

    before = datetime.now(UTC) - timedelta(seconds=1)
    with _as(server, created.secret) as ci:
        ci.get_caller()
        first = last_use()
        assert first >= before
        for _ in range(3):
            ci.get_caller()
        assert last_use() == first  # within the minute: not written again


def test_with_authentication_off_the_caller_is_anonymous(server_config: Config) -> None:
    with serving(server_config) as plain, RegistryClient(plain.address, timeout=10) as client:
        me = client.get_caller()
        assert (me.actor, me.tenant, me.auth_method) == ("anonymous", "default", "none")
        assert ADMIN in me.scopes
        created = client.create_api_key("first", scopes=[READ])
        assert created.api_key.created_by == "anonymous"
        # Without --api-keys (and no other authenticator) keys are not checked: a key is
        # not needed, and one that is sent is ignored.
        with _as(plain, created.secret) as holder:
            assert holder.get_caller().actor == "anonymous"


def test_keys_are_accepted_beside_jwts_without_the_flag(
    server_config: Config, tmp_path: Path
) -> None:
    """Any configured authenticator turns API keys on: a JWT admin makes a key in its own
    tenant, and the key authenticates next to JWTs."""
    jwt_admin = mint(rsa_key(), sub="alice", tenant="acme", scope=ADMIN)
    with serving(jwt_config(server_config, tmp_path)) as server:
        assert not server.config.api_keys
        with as_caller(server, jwt_admin) as alice:
            assert alice.get_caller().actor == "user:alice"
            made = alice.create_api_key("ci", scopes=[READ])
        assert made.api_key.tenant == "acme" and made.api_key.created_by == "user:alice"
        with as_caller(server, made.secret) as ci:
            assert ci.get_caller().actor == f"apikey:{made.api_key.key_id}"
