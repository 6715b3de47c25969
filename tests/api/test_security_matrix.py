"""The security matrix: every RPC of every served service, taken from the descriptors, called
with every kind of credential that must be refused, gets the status that fits — and leaves
the database and the blob store exactly as they were.

A registry in tenant ``acme`` is seeded by its admin through a recording channel, so that one
valid request of every RPC exists (a new RPC that the seed does not call fails
:func:`test_the_seed_calls_every_rpc`). Each refusal case then replays those requests:

- no credentials, a malformed bearer, a JWT with a bad signature, an expired one, one for
  another audience or issuer, a revoked API key: UNAUTHENTICATED;
- a valid JWT of ``acme`` missing the scope the method needs: PERMISSION_DENIED;
- the admin of another tenant: NOT_FOUND for anything naming acme's resources (creates and
  lists succeed in its own tenant and show nothing of acme);
- a member of acme with no role on the model, whose policy lists others: NOT_FOUND;
- a viewer doing a write: PERMISSION_DENIED;
- an editor moving or deleting the protected alias: PERMISSION_DENIED.
"""

from __future__ import annotations

import contextlib
import io
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor
from google.protobuf.message import Message

from modelregistry.client import RegistryClient, RegistryError
from modelregistry_server.api.permissions import METHOD_REQUIREMENTS, Open
from modelregistry_server.app import SERVICES, RegistryServer
from modelregistry_server.config import Config
from modelregistry_server.domain.identity import Permission
from tests.support.jwt_tokens import jwt_config, mint, rsa_key
from tests.support.metadata_fixtures import BACKENDS, sqlite_url
from tests.support.postgres import PostgresCluster
from tests.support.recording import Recorder
from tests.support.servers import serving

ACME = "acme"
ADMIN_SCOPES = "registry.read registry.create registry.update registry.delete registry.admin"
CALL_TIMEOUT_S = 20.0
Code = grpc.StatusCode


def _methods() -> list[tuple[ServiceDescriptor, MethodDescriptor]]:
    return [(s, m) for s in SERVICES for m in s.methods]


def _path(service: ServiceDescriptor, method: MethodDescriptor) -> str:
    return f"/{service.full_name}/{method.name}"


def _token(sub: str, scope: str = ADMIN_SCOPES, tenant: str = ACME, **claims: Any) -> str:
    return mint(rsa_key(), sub=sub, scope=scope, tenant=tenant, **claims)


def _client(server: RegistryServer, token: str) -> RegistryClient:
    return RegistryClient(server.address, token=token, timeout=30, retries=0)


# -- the seeded registry -----------------------------------------------------------------------
@dataclass
class World:
    """The seeded server, one recorded request list per RPC, and what the cases send."""

    server: RegistryServer
    blob_dir: Path
    requests: dict[str, list[Message]]
    revoked_key: str
    admin: RegistryClient


def _seed(server: RegistryServer) -> tuple[dict[str, list[Message]], str]:
    """Fill tenant acme through a recording channel as its admin; every RPC is called."""
    recorder = Recorder()
    admin_token = _token("root")
    channel = grpc.intercept_channel(
        grpc.secure_channel(
            server.address,
            grpc.composite_channel_credentials(
                grpc.local_channel_credentials(),
                grpc.access_token_call_credentials(admin_token),
            ),
        ),
        recorder,
    )
    with channel:
        c = RegistryClient(channel=channel, retries=0, timeout=30)
        c.get_caller()
        c.create_model("m1", labels={"team": "risk"})
        c.create_model("m2")
        c.create_version("m1", metrics={"auc": 0.9})
        c.upload_file("m1", 1, io.BytesIO(b"weights of m1"), upload_id="up-done")
        c.get_upload_status("up-done")
        c.list_uploads_page("m1", 1, page_size=5)
        with contextlib.suppress(RegistryError):
            c.cancel_upload("up-done")  # committed: refused, but the request is recorded
        c.seal_version("m1", 1)
        c.set_alias("m1", "prod", 1)
        c.delete_alias("m1", "prod")
        c.set_alias("m1", "prod", 1)
        c.get_alias("m1", "prod")
        c.list_aliases("m1")
        c.transition_stage("m1", 1, "STAGING", comment="matrix")
        list(c.list_stage_transitions("m1", 1))
        c.create_version("m1")
        c.upload_file("m1", 2, io.BytesIO(b"draft bytes"), file_id="draft.bin")
        list(c.list_files("m1", 2))
        c.get_file("m1", 1)
        c.verify_file("m1", 1)
        b"".join(c.iter_file("m1", 1))
        c.get_lineage("m1", 1)
        model = c.get_model("m1")
        model.description = "seeded"
        c.update_model(model, update_mask=["description"])
        version = c.get_version("m1", 2)
        version.description = "draft"
        c.update_version(version, update_mask=["description"])
        list(c.list_models())
        list(c.list_versions("m1"))
        # Deletes and undeletes on m1 too: the policy below governs every recorded request.
        c.create_version("m1")
        c.delete_version("m1", 3)
        c.undelete_version("m1", 3)
        c.delete_model("m1", force=True)
        c.undelete_model("m1")
        c.set_model_policy(
            "m1",
            {"owner": ["user:root"], "editor": ["user:ed"], "viewer": ["user:vic"]},
            protected_aliases=["prod"],
        )
        c.get_model_policy("m1")
        spare = c.create_api_key("spare", scopes=["registry.read"])
        list(c.list_api_keys())
        c.revoke_api_key(spare.api_key.name)
        revoked = c.create_api_key("revoked", scopes=["registry.read"])
        c.revoke_api_key(revoked.api_key.name)
        _seed_more(c)
    return recorder.by_method(), revoked.secret


def _seed_more(client: RegistryClient) -> None:
    """RPCs of services that land later call here (kept apart so the seed reads in order)."""
    list(client.list_events(filter='resource = "models/m1*"', page_size=5))
    client.verify_events()
    list(client.list_alias_history("m1", "prod"))
    watch = client.watch_events(after_cursor="events/0")
    next(watch)
    watch.close()
    # Webhooks (the server dispatches nothing here: webhook_workers=0 keeps the tables still).
    made = client.create_webhook("hook", "https://hooks.example/registry", filter="kind = CHANGE")
    client.get_webhook("hook")
    list(client.list_webhooks())
    hook = client.get_webhook("hook")
    hook.description = "matrix"
    client.update_webhook(hook, update_mask=["description"])
    client.rotate_webhook_secret("hook", etag=client.get_webhook("hook").etag)
    list(client.list_webhook_deliveries("hook"))
    with contextlib.suppress(RegistryError):  # none exists: refused, but recorded
        client.resend_webhook_delivery("webhooks/hook/deliveries/" + "0" * 32)
    client.create_webhook("spare-hook", "https://hooks.example/spare")
    client.delete_webhook("spare-hook")
    assert made.webhook.name == "webhooks/hook"


@pytest.fixture(scope="module", params=BACKENDS)
def metadata_url_module(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> str:
    """One database per backend for the whole module: the seed is shared by every test."""
    if request.param == "sqlite":
        return sqlite_url(tmp_path_factory.mktemp("matrix-db"))
    cluster: PostgresCluster = request.getfixturevalue("postgres_server")
    return cluster.create_database()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, metadata_url_module: str) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("matrix")
    config = jwt_config(
        Config(
            listen="127.0.0.1:0",
            database_url=metadata_url_module,
            blob_url=f"file://{tmp / 'blobs'}",
            maintenance_interval_seconds=0,
            shutdown_grace_seconds=0,
            webhook_workers=0,
        ),
        tmp,
    )
    with serving(config) as server:
        requests, revoked = _seed(server)
        with _client(server, _token("root")) as admin:
            yield World(server, tmp / "blobs", requests, revoked, admin)


# -- what "unchanged" means --------------------------------------------------------------------
# Refused calls may be recorded as access events; nothing else may move.
_VOLATILE_TABLES = frozenset({"events", "event_heads"})


def _state(world: World) -> tuple[dict[str, list[tuple[Any, ...]]], list[tuple[str, int]]]:
    """Every row of every table, and every stored object with its size."""
    db: Any = world.server.store.backend.database  # type: ignore[attr-defined]
    rows: dict[str, list[tuple[Any, ...]]] = {}
    with db.connection_context():
        for table in sorted(set(db.get_tables()) - _VOLATILE_TABLES):
            cursor = db.execute_sql(f"SELECT * FROM {table}")
            rows[table] = sorted((tuple(r) for r in cursor.fetchall()), key=repr)
    objects = sorted(
        (str(p.relative_to(world.blob_dir)), p.stat().st_size)
        for p in world.blob_dir.rglob("*")
        if p.is_file()
    )
    return rows, objects


# -- the cases ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Case:
    """A credential and what a call with it must end in (None: the case does not apply)."""

    bearer: Callable[[World, Permission | Open], str | None]
    expect: Callable[[str, Permission | Open], frozenset[Code] | None]


UNAUTHENTICATED = frozenset({Code.UNAUTHENTICATED})
DENIED = frozenset({Code.PERMISSION_DENIED})
HIDDEN = frozenset({Code.NOT_FOUND})


def _all_but(need: Permission | Open) -> str:
    if not isinstance(need, Permission):
        return ""
    return " ".join(p.value for p in Permission if p not in (need, Permission.ADMIN))


def _authenticated_only(method: str, need: Permission | Open) -> frozenset[Code] | None:
    return None if need is Open.HEALTH or need is Open.REFLECTION else UNAUTHENTICATED


# Methods that name no resource of acme: another tenant's admin may call them and gets its own
# tenant's (empty) answer. Checked separately: the answers show nothing of acme.
TENANT_WIDE = frozenset(
    {
        "CreateModel",
        "ListModels",
        "CreateApiKey",
        "ListApiKeys",
        "GetCaller",
        "ListEvents",  # the caller's own tenant's log
        "VerifyEvents",
        "WatchEvents",
        "CreateWebhook",  # in the caller's own tenant
        "ListWebhooks",
    }
)
# Methods on a model that a viewer may call (reads), by requirement.
_READ_NEEDS = (
    (Permission.READ, Open.AUTHENTICATED) if hasattr(Open, "AUTHENTICATED") else (Permission.READ,)
)
# Upload-session calls on another principal's session: hidden or refused, both are safe.
SESSION_METHODS = frozenset({"GetUploadStatus", "CancelUpload", "ListUploads"})
PROTECTED_ALIAS_METHODS = frozenset({"SetAlias", "DeleteAlias"})
MODEL_FREE = TENANT_WIDE | frozenset({"RevokeApiKey"})


def _other_tenant(method: str, need: Permission | Open) -> frozenset[Code] | None:
    if need is Open.HEALTH or need is Open.REFLECTION or method in TENANT_WIDE:
        return None
    return HIDDEN


def _outsider(method: str, need: Permission | Open) -> frozenset[Code] | None:
    if method in MODEL_FREE or not isinstance(need, Permission) or need is Permission.ADMIN:
        return None
    return HIDDEN | DENIED if method in SESSION_METHODS else HIDDEN


def _viewer(method: str, need: Permission | Open) -> frozenset[Code] | None:
    if method in MODEL_FREE or need in _READ_NEEDS or not isinstance(need, Permission):
        return None
    if method == "ListUploads":
        return None  # lists the caller's own sessions: a viewer's are none (checked below)
    if need is Permission.ADMIN:
        return DENIED  # scope
    return HIDDEN | DENIED if method in SESSION_METHODS else DENIED


def _editor(method: str, need: Permission | Open) -> frozenset[Code] | None:
    return DENIED if method in PROTECTED_ALIAS_METHODS else None


def _fixed(token: Callable[[], str | None]) -> Callable[[World, Permission | Open], str | None]:
    return lambda _world, _need: token()


CASES: dict[str, Case] = {
    "no credentials": Case(_fixed(lambda: None), _authenticated_only),
    "malformed token": Case(_fixed(lambda: "not.a-jwt"), _authenticated_only),
    "bad signature": Case(
        _fixed(lambda: mint(rsa_key(7), sub="root", scope=ADMIN_SCOPES, tenant=ACME)),
        _authenticated_only,
    ),
    "expired": Case(
        _fixed(lambda: _token("root", exp=int(time.time()) - 600)), _authenticated_only
    ),
    "wrong audience": Case(_fixed(lambda: _token("root", aud="elsewhere")), _authenticated_only),
    "wrong issuer": Case(
        _fixed(lambda: _token("root", iss="https://evil.example")), _authenticated_only
    ),
    "revoked API key": Case(lambda world, _need: world.revoked_key, _authenticated_only),
    "missing scope": Case(
        lambda _world, need: _token("root", scope=_all_but(need)),
        lambda _method, need: DENIED if isinstance(need, Permission) else None,
    ),
    "other tenant": Case(_fixed(lambda: _token("root", tenant="globex")), _other_tenant),
    "no role on the model": Case(
        _fixed(lambda: _token("mallory", scope=" ".join(p for p in _non_admin()))), _outsider
    ),
    "viewer writing": Case(
        _fixed(lambda: _token("vic", scope=" ".join(p for p in _non_admin()))), _viewer
    ),
    "editor moving a protected alias": Case(
        _fixed(lambda: _token("ed", scope=" ".join(p for p in _non_admin()))), _editor
    ),
}


def _non_admin() -> list[str]:
    return [p.value for p in Permission if p is not Permission.ADMIN]


# -- calling -----------------------------------------------------------------------------------
def _call(
    channel: grpc.Channel,
    path: str,
    method: MethodDescriptor,
    requests: list[Message],
    bearer: str | None,
) -> tuple[Code, Any]:
    metadata = () if bearer is None else (("authorization", f"Bearer {bearer}"),)
    raw = [r.SerializeToString() for r in requests]
    try:
        if method.client_streaming:
            result: Any = channel.stream_unary(path)(
                iter(raw), timeout=CALL_TIMEOUT_S, metadata=metadata
            )
        elif method.server_streaming:
            result = list(
                channel.unary_stream(path)(raw[0], timeout=CALL_TIMEOUT_S, metadata=metadata)
            )
        else:
            result = channel.unary_unary(path)(raw[0], timeout=CALL_TIMEOUT_S, metadata=metadata)
    except grpc.RpcError as err:
        return err.code(), err.details()
    return Code.OK, result


def test_the_seed_calls_every_rpc(world: World) -> None:
    missing = {m.name for _, m in _methods()} - set(world.requests)
    assert missing == set(), "seed these RPCs in _seed so the matrix covers them"


@pytest.mark.parametrize(
    ("service", "method"), _methods(), ids=[f"{s.name}.{m.name}" for s, m in _methods()]
)
def test_refused_calls_get_their_status_and_change_nothing(
    world: World, service: ServiceDescriptor, method: MethodDescriptor
) -> None:
    path = _path(service, method)
    need = METHOD_REQUIREMENTS[path]
    requests = world.requests[method.name]
    before = _state(world)
    failures = []
    checked = 0
    with grpc.insecure_channel(world.server.address) as channel:
        for label, case in CASES.items():
            expected = case.expect(method.name, need)
            if expected is None:
                continue
            checked += 1
            code, details = _call(channel, path, method, requests, case.bearer(world, need))
            if code not in expected:
                failures.append(
                    f"{label}: {code.name} {details!r}, expected {sorted(c.name for c in expected)}"
                )
    after = _state(world)
    assert failures == []
    assert checked >= 7  # every method meets at least the authentication cases
    assert after[1] == before[1], "a refused call changed the blob store"
    changed = {t for t in before[0] if before[0][t] != after[0].get(t)}
    assert changed == set(), f"a refused call changed the tables {sorted(changed)}"


def test_a_viewer_lists_no_upload_of_others(world: World) -> None:
    with _client(world.server, _token("vic", scope=" ".join(_non_admin()))) as viewer:
        assert list(viewer.list_uploads_page("m1", 1).uploads) == []


def test_another_tenant_sees_nothing_of_acme(world: World) -> None:
    with _client(world.server, _token("root", tenant="globex")) as other:
        assert [m.name for m in other.list_models()] == []
        assert list(other.list_api_keys()) == []
        assert other.get_caller().tenant == "globex"
    assert {m.name for m in world.admin.list_models()} == {"models/m1", "models/m2"}


def test_the_state_sees_rows_and_objects(world: World) -> None:
    """The "changed nothing" check can fail: a write shows in the rows and the objects. (Last
    in the module: it changes the world the other tests share.)"""
    rows, objects = _state(world)
    world.admin.create_version("m2")
    world.admin.upload_file("m2", 1, io.BytesIO(b"new bytes for the state check"))
    rows_after, objects_after = _state(world)
    assert rows_after["versions"] != rows["versions"] and rows_after["files"] != rows["files"]
    assert objects_after != objects
