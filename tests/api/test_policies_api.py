"""Per-model roles, protected aliases and PRODUCTION, list filtering and upload-session
ownership, through the shipped client with authentication on, on SQLite and PostgreSQL.

Every refusal is checked to change nothing; a caller without a role is told the model does
not exist, everywhere (reads, writes, lists, lineage)."""

from __future__ import annotations

import io
from collections.abc import Iterator

import grpc
import pytest

from modelregistry.client import (
    AbortedError,
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
    RegistryClient,
)
from modelregistry_server.api.authentication import Authentication, Credentials
from modelregistry_server.app import RegistryServer
from modelregistry_server.domain.errors import Reason, Unauthenticated
from modelregistry_server.domain.identity import AuthMethod, Caller, Permission
from tests.api.registry_helpers import expect_error
from tests.support.payload_helpers import PIECE, chunk, data_of, file_name, header, raw_stub

WORK = frozenset({Permission.READ, Permission.CREATE, Permission.UPDATE, Permission.DELETE})
CALLERS = {
    "alice": Caller("default", "alice", WORK, method=AuthMethod.JWT),  # owner
    "eddie": Caller("default", "eddie", WORK, frozenset({"ml"}), method=AuthMethod.JWT),
    "vera": Caller("default", "vera", WORK, method=AuthMethod.JWT),  # viewer
    "bob": Caller("default", "bob", WORK, method=AuthMethod.JWT),  # no role
    "ci": Caller("default", "ci", WORK, api_key_id="k1", method=AuthMethod.API_KEY),
    "root": Caller("default", "root", frozenset({Permission.ADMIN}), method=AuthMethod.JWT),
}
POLICY = {
    "owner": ["user:alice"],
    "editor": ["group:ml", "apikey:k1"],
    "viewer": ["user:vera"],
}


class _Tokens:
    """Bearer ``<name>`` is the caller named so in :data:`CALLERS`."""

    def authenticate(self, credentials: Credentials) -> Caller | None:
        if credentials.bearer is None:
            return None
        caller = CALLERS.get(credentials.bearer)
        if caller is None:
            raise Unauthenticated("no such token", reason=Reason.CREDENTIALS_INVALID)
        return caller


@pytest.fixture
def guarded(server: RegistryServer, client: RegistryClient) -> Iterator[RegistryServer]:
    """Model ``m``: READY versions 1 and 2 (a file each), alias ``production`` -> 1 and
    ``staging`` -> 1; a DRAFT version 3. Then authentication is switched on and alice sets
    the first policy (:data:`POLICY`, ``production`` protected)."""
    client.create_model("m", description="before")
    for number in (1, 2):
        client.create_version("m")
        client.upload_file("m", number, io.BytesIO(b"weights %d" % number))
        client.seal_version("m", number)
    client.create_version("m")
    client.set_alias("m", "production", 1)
    client.set_alias("m", "staging", 1)
    server.interceptor.use_authentication(Authentication([_Tokens()]))
    with _as(server, "alice") as alice:
        alice.set_model_policy("m", POLICY, protected_aliases=["production"])
    yield server


@pytest.fixture
def sessions(guarded: RegistryServer) -> Iterator[dict[str, RegistryClient]]:
    clients = {name: _as(guarded, name) for name in CALLERS}
    yield clients
    for each in clients.values():
        each.close()


def _as(server: RegistryServer, token: str) -> RegistryClient:
    metadata = [("authorization", f"Bearer {token}")]
    return RegistryClient(server.address, metadata=metadata, timeout=10, retries=0)


def _alias_target(c: RegistryClient, alias: str) -> str:
    return c.get_alias("m", alias).version


# -- roles ------------------------------------------------------------------------------------
def test_viewer_reads_but_cannot_write(sessions: dict[str, RegistryClient]) -> None:
    vera, alice = sessions["vera"], sessions["alice"]
    model = vera.get_model("m")
    assert vera.get_version("m", 1).version_number == 1
    assert [a.name for a in vera.list_aliases("m")] == ["models/m/aliases/production",
                                                        "models/m/aliases/staging"]  # fmt: skip
    sink = io.BytesIO()
    vera.download_file("m", 1, sink)
    assert sink.getvalue() == b"weights 1"
    assert [b.role for b in vera.get_model_policy("m").bindings] == ["viewer", "editor", "owner"]

    model.description = "vera was here"
    with expect_error(PermissionDeniedError, "ROLE_MISSING"):
        vera.update_model(model, update_mask=["description"])
    with expect_error(PermissionDeniedError, "ROLE_MISSING"):
        vera.set_alias("m", "staging", 2)
    with expect_error(PermissionDeniedError, "ROLE_MISSING"):
        vera.create_version("m")
    with expect_error(PermissionDeniedError, "ROLE_MISSING"):
        vera.upload_file("m", 3, io.BytesIO(b"x"), file_id="f", resume_unfinished=False)
    with expect_error(PermissionDeniedError, "ROLE_MISSING"):
        vera.transition_stage("m", 2, "STAGING")
    with expect_error(PermissionDeniedError, "ROLE_MISSING"):
        vera.delete_version("m", 2)
    with expect_error(PermissionDeniedError, "ROLE_MISSING"):
        vera.set_model_policy("m", {"owner": ["user:vera"]})

    after = alice.get_model("m")
    assert (after.description, after.etag) == ("before", model.etag)  # nothing changed
    assert _alias_target(alice, "staging") == "models/m/versions/1"
    assert alice.get_model("m").latest_version_number == 3
    assert alice.get_version("m", 2).stage == alice.get_version("m", 1).stage
    assert [f.name for f in alice.list_files("m", 3)] == []
    assert len(alice.get_model_policy("m").bindings) == 3


def test_editor_moves_unprotected_aliases_only(sessions: dict[str, RegistryClient]) -> None:
    eddie, ci, alice = sessions["eddie"], sessions["ci"], sessions["alice"]
    eddie.set_alias("m", "staging", 2)  # eddie is an editor through group:ml
    assert _alias_target(alice, "staging") == "models/m/versions/2"
    ci.set_alias("m", "canary", 2)  # ci is an editor through apikey:k1
    with expect_error(PermissionDeniedError, "ALIAS_PROTECTED"):
        eddie.set_alias("m", "production", 2)
    with expect_error(PermissionDeniedError, "ALIAS_PROTECTED"):
        ci.delete_alias("m", "production")
    assert _alias_target(alice, "production") == "models/m/versions/1"

    alice.set_alias("m", "production", 2)  # the owner moves it
    assert _alias_target(eddie, "production") == "models/m/versions/2"
    eddie.delete_alias("m", "canary")


def test_only_owners_touch_production(sessions: dict[str, RegistryClient]) -> None:
    eddie, alice = sessions["eddie"], sessions["alice"]
    eddie.transition_stage("m", 1, "STAGING")
    with expect_error(PermissionDeniedError, "STAGE_PROTECTED"):
        eddie.transition_stage("m", 1, "PRODUCTION")
    assert alice.get_version("m", 1).stage == eddie.get_version("m", 1).stage
    assert len(list(alice.list_stage_transitions("m", 1))) == 1  # the refusal left no record

    alice.transition_stage("m", 1, "PRODUCTION")
    with expect_error(PermissionDeniedError, "STAGE_PROTECTED"):
        eddie.transition_stage("m", 1, "ARCHIVED")  # leaving PRODUCTION touches it too
    eddie.transition_stage("m", 2, "STAGING")
    with expect_error(PermissionDeniedError, "STAGE_PROTECTED"):
        eddie.transition_stage("m", 2, "PRODUCTION", archive_existing=True)
    assert alice.get_version("m", 1).stage == 3  # STAGE_PRODUCTION, not archived

    alice.set_model_policy(
        "m", POLICY, protected_aliases=["production"], production_open_to_editors=True
    )
    eddie.transition_stage("m", 2, "PRODUCTION", archive_existing=True)
    assert alice.get_version("m", 1).stage == 4  # STAGE_ARCHIVED


def test_owner_deletes_editor_cannot(sessions: dict[str, RegistryClient]) -> None:
    eddie, alice = sessions["eddie"], sessions["alice"]
    with expect_error(PermissionDeniedError, "ROLE_MISSING"):
        eddie.delete_version("m", 2)
    with expect_error(PermissionDeniedError, "ROLE_MISSING"):
        eddie.delete_model("m", force=True)
    assert not alice.get_model("m").HasField("delete_time")
    alice.delete_version("m", 2)
    with expect_error(PermissionDeniedError, "ROLE_MISSING"):
        eddie.undelete_version("m", 2)
    alice.undelete_version("m", 2)


def test_editor_writes_content(sessions: dict[str, RegistryClient]) -> None:
    eddie, ci = sessions["eddie"], sessions["ci"]
    model = eddie.get_model("m")
    model.description = "tuned"
    assert eddie.update_model(model, update_mask=["description"]).description == "tuned"
    ci.upload_file("m", 3, io.BytesIO(b"more"), file_id="extra", resume_unfinished=False)
    assert ci.seal_version("m", 3).state == 2  # READY
    assert ci.create_version("m").version_number == 4


# -- no role: NOT_FOUND -----------------------------------------------------------------------
def test_non_member_is_told_the_model_does_not_exist(
    sessions: dict[str, RegistryClient],
) -> None:
    bob, alice = sessions["bob"], sessions["alice"]
    model = alice.get_model("m")
    calls = {
        "get_model": lambda: bob.get_model("m"),
        "get_version": lambda: bob.get_version("m", 1),
        "get_by_alias": lambda: bob.get_version("m", "production"),
        "get_alias": lambda: bob.get_alias("m", "production"),
        "list_aliases": lambda: bob.list_aliases("m"),
        "list_versions": lambda: list(bob.list_versions("m")),
        "list_files": lambda: list(bob.list_files("m", 1)),
        "get_file": lambda: bob.get_file("m", 1),
        "download": lambda: bob.download_file("m", 1, io.BytesIO()),
        "transitions": lambda: list(bob.list_stage_transitions("m", 1)),
        "lineage": lambda: bob.get_lineage("m", 1),
        "get_policy": lambda: bob.get_model_policy("m"),
        "set_policy": lambda: bob.set_model_policy("m", {"owner": ["user:bob"]}),
        "update": lambda: bob.update_model(model, update_mask=["description"]),
        "set_alias": lambda: bob.set_alias("m", "staging", 2),
        "delete_alias": lambda: bob.delete_alias("m", "staging"),
        "create_version": lambda: bob.create_version("m"),
        "transition": lambda: bob.transition_stage("m", 2, "STAGING"),
        "seal": lambda: bob.seal_version("m", 3),
        "delete": lambda: bob.delete_model("m", force=True),
        "upload": lambda: bob.upload_file(
            "m", 3, io.BytesIO(b"x"), file_id="f", resume_unfinished=False
        ),
    }
    for case, call in calls.items():
        with expect_error(NotFoundError, "MODEL_NOT_FOUND", message="model 'm'", case=case):
            call()
    assert alice.get_model("m").etag == model.etag
    assert [a.version for a in alice.list_aliases("m")] == ["models/m/versions/1"] * 2
    assert alice.get_model_policy("m").bindings[2].members == ["user:alice"]


def test_lists_show_only_visible_models_across_pages(
    sessions: dict[str, RegistryClient],
) -> None:
    alice, bob = sessions["alice"], sessions["bob"]
    # m is invisible to bob; so is every second model of these (alice's policy).
    for i in range(9):
        model_id = f"n{i}"
        alice.create_model(model_id)
        alice.create_version(model_id)
        alice.upload_file(model_id, 1, io.BytesIO(b"x"), resume_unfinished=False)
        if i % 2:
            alice.set_model_policy(model_id, {"owner": ["user:alice"]})
    visible = [f"models/n{i}" for i in range(9) if i % 2 == 0]

    page = bob.list_models_page(page_size=2)
    seen, sizes = [m.name for m in page.models], [len(page.models)]
    while page.next_page_token:
        page = bob.list_models_page(page_size=2, page_token=page.next_page_token)
        seen += [m.name for m in page.models]
        sizes.append(len(page.models))
    assert seen == visible
    assert sizes == [2, 2, 1]  # full pages of visible models, then the end
    assert [m.name for m in alice.list_models(page_size=2)] == ["models/m"] + [
        f"models/n{i}" for i in range(9)
    ]
    versions = [v.name for v in bob.list_versions("-", page_size=2)]
    assert versions == [f"{m}/versions/1" for m in visible]
    files = [f.name for f in bob.list_files("-", "-", page_size=2)]
    assert files == [f"{m}/versions/1/files/payload" for m in visible]
    root_sees = {m.name for m in sessions["root"].list_models()}
    assert root_sees == {"models/m"} | {f"models/n{i}" for i in range(9)}


def test_lineage_leaves_invisible_models_out(sessions: dict[str, RegistryClient]) -> None:
    alice, bob = sessions["alice"], sessions["bob"]
    bob.create_model("down")
    with expect_error(InvalidArgumentError, "INVALID_ARGUMENT"):
        bob.create_version("down", produced_by=[("m", 1)])  # bob cannot name it
    alice.create_version("down", produced_by=[("m", 1)])
    bob_graph = bob.get_lineage("down", 1, direction="UPSTREAM")
    assert {n.id for n in bob_graph.nodes} == {"models/down/versions/1", "models/down"}
    alice_graph = alice.get_lineage("down", 1, direction="UPSTREAM")
    assert "models/m/versions/1" in {n.id for n in alice_graph.nodes}
    downstream = alice.get_lineage("m", 1, direction="DOWNSTREAM")
    assert "models/down/versions/1" in {n.id for n in downstream.nodes}


# -- policies ---------------------------------------------------------------------------------
def test_set_policy_etag_lockout_and_syntax(sessions: dict[str, RegistryClient]) -> None:
    alice, eddie = sessions["alice"], sessions["eddie"]
    current = alice.get_model_policy("m")
    assert current.resource == "models/m" and current.protected_aliases == ["production"]
    updated = alice.set_model_policy(
        "m", {**POLICY, "viewer": ["user:vera", "user:bob"]}, etag=current.etag
    )
    assert updated.etag != current.etag
    with expect_error(AbortedError, "ETAG_MISMATCH"):
        alice.set_model_policy("m", POLICY, etag=current.etag)
    with expect_error(InvalidArgumentError, "INVALID_ARGUMENT", field="policy.bindings"):
        alice.set_model_policy("m", {"editor": ["user:alice"]})  # would leave no owner
    with expect_error(
        InvalidArgumentError, "INVALID_ARGUMENT", field="policy.bindings[0].members[1]"
    ):
        alice.set_model_policy("m", {"owner": ["user:alice", "alice"]})
    with expect_error(PermissionDeniedError, "ROLE_MISSING"):
        eddie.set_model_policy("m", {"owner": ["group:ml"]})
    assert alice.get_model_policy("m").etag == updated.etag  # the refusals changed nothing
    assert sessions["bob"].get_model("m").name == "models/m"  # bob is a viewer now

    assert alice.set_model_policy("m", {}).bindings == []  # removes the policy
    assert sessions["bob"].set_alias("m", "production", 2).name  # scopes alone again


def test_first_policy_by_an_updater_then_owners_only(
    sessions: dict[str, RegistryClient],
) -> None:
    bob, eddie = sessions["bob"], sessions["eddie"]
    bob.create_model("shared")
    assert bob.get_model_policy("shared").bindings == []
    eddie.set_model_policy("shared", {"owner": ["group:ml"]})  # anyone may claim it first
    with expect_error(NotFoundError, "MODEL_NOT_FOUND"):
        bob.set_model_policy("shared", {"owner": ["user:bob"]})
    assert [m.name for m in bob.list_models()] == []


def test_admin_overrides_policies(sessions: dict[str, RegistryClient]) -> None:
    root = sessions["root"]
    root.set_alias("m", "production", 2)
    root.transition_stage("m", 2, "PRODUCTION")
    root.set_model_policy("m", {"owner": ["user:root"]})  # break-glass: take the model over
    with expect_error(NotFoundError, "MODEL_NOT_FOUND"):
        sessions["alice"].get_model("m")
    assert root.get_alias("m", "production").version == "models/m/versions/2"


# -- upload sessions --------------------------------------------------------------------------
def _unfinished_upload(server: RegistryServer, token: str, upload_id: str) -> None:
    """A session of ``token``'s caller on m/3 with one piece committed (the stream ends
    before the declared size)."""
    data = data_of(2 * PIECE, seed=3)
    requests = [
        header(file_name("m", 3), upload_id, size=len(data)),
        chunk(0, data[:PIECE]),
    ]
    with raw_stub(server.address) as stub, pytest.raises(grpc.RpcError):
        stub.UploadFile(iter(requests), timeout=10, metadata=[("authorization", f"Bearer {token}")])


def test_upload_sessions_belong_to_their_opener(
    guarded: RegistryServer, sessions: dict[str, RegistryClient]
) -> None:
    alice, ci, root = sessions["alice"], sessions["ci"], sessions["root"]
    _unfinished_upload(guarded, "alice", "alices")
    status = alice.get_upload_status("alices")
    assert status.committed_size_bytes == PIECE
    assert [u.upload_id for u in alice.list_uploads("m", 3)] == ["alices"]

    # ci may write into m (an editor) but not into alice's session.
    with expect_error(NotFoundError, "UPLOAD_NOT_FOUND"):
        ci.get_upload_status("alices")
    with expect_error(NotFoundError, "UPLOAD_NOT_FOUND"):
        ci.cancel_upload("alices")
    assert list(ci.list_uploads("m", 3)) == []
    with raw_stub(guarded.address) as stub:
        auth = [("authorization", "Bearer ci")]
        resume = [header(file_name("m", 3), "alices", size=2 * PIECE, write_offset=PIECE)]
        with pytest.raises(grpc.RpcError) as resumed:
            stub.UploadFile(iter(resume), timeout=10, metadata=auth)
        assert resumed.value.code() is grpc.StatusCode.NOT_FOUND
        fresh = [header(file_name("m", 3), "alices", size=1), chunk(0, b"x")]
        with pytest.raises(grpc.RpcError) as taken:
            stub.UploadFile(iter(fresh), timeout=10, metadata=auth)
        assert taken.value.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert alice.get_upload_status("alices").committed_size_bytes == PIECE  # untouched

    # An admin sees and can cancel it (break-glass), the opener finishes or cancels it.
    assert root.get_upload_status("alices").upload_id == "alices"
    assert [u.upload_id for u in root.list_uploads("m", 3)] == ["alices"]
    alice.cancel_upload("alices")
    with expect_error(NotFoundError, "UPLOAD_NOT_FOUND"):
        alice.get_upload_status("alices")


def test_sealing_is_an_editor_write(sessions: dict[str, RegistryClient]) -> None:
    with expect_error(PermissionDeniedError, "ROLE_MISSING"):
        sessions["vera"].seal_version("m", 3)
    assert sessions["alice"].get_version("m", 3).state == 1  # still DRAFT
    assert sessions["eddie"].seal_version("m", 3).state == 2  # READY
