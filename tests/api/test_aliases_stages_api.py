"""ModelRegistry aliases (Set/Get/List/DeleteAlias) and stages (TransitionModelVersionStage,
ListStageTransitions) through the client; every failure also checks that nothing changed."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import pytest
from google.protobuf import empty_pb2

from modelregistry.client import (
    AbortedError,
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    RegistryClient,
)
from modelregistry.v1 import model_registry_pb2 as mr
from modelregistry.v1 import resources_pb2 as res
from modelregistry_server.app import RegistryServer
from modelregistry_server.config import Config
from tests.api.registry_helpers import call, expect_error, ready_version, unchanged
from tests.support.jwt_tokens import EVERY_SCOPE, as_caller, jwt_config, mint, rsa_key
from tests.support.servers import serving


@pytest.fixture
def fraud(client: RegistryClient) -> RegistryClient:
    """Model `fraud`: READY v1, v2; DRAFT v3; deleted READY v4."""
    client.create_model("fraud")
    ready_version(client, "fraud")
    ready_version(client, "fraud")
    client.create_version("fraud")
    ready_version(client, "fraud")
    client.delete_version("fraud", 4)
    return client


# -- aliases ----------------------------------------------------------------------------------


def test_set_get_list_move_delete(fraud: RegistryClient) -> None:
    client = fraud
    before = datetime.now(UTC)
    prod = client.set_alias("fraud", "production", 1)
    assert prod.name == "models/fraud/aliases/production"
    assert prod.version == "models/fraud/versions/1"
    assert prod.update_time.ToDatetime(tzinfo=UTC) >= before.replace(microsecond=0)
    assert client.get_alias("fraud", "production") == prod
    assert client.get_alias("fraud", "models/fraud/aliases/production") == prod
    assert list(client.get_version("fraud", 1).aliases) == ["production"]
    assert client.get_version("fraud", "production").version_number == 1

    canary = client.set_alias("fraud", "canary", 2)
    client.set_alias("fraud", "a-first", 1)
    assert [a.name.rsplit("/", 1)[1] for a in client.list_aliases("fraud")] == [
        "a-first",
        "canary",
        "production",
    ]
    assert list(client.get_version("fraud", 1).aliases) == ["a-first", "production"]
    assert client.get_alias("fraud", "canary") == canary

    moved = client.set_alias("fraud", "production", 2)  # one atomic step
    assert moved.version == "models/fraud/versions/2"
    assert moved.update_time.ToDatetime() >= prod.update_time.ToDatetime()
    assert list(client.get_version("fraud", 1).aliases) == ["a-first"]
    assert list(client.get_version("fraud", 2).aliases) == ["canary", "production"]
    assert client.get_version("fraud", "production").version_number == 2

    assert call(client, "DeleteAlias", mr.DeleteAliasRequest(name=prod.name)) == empty_pb2.Empty()
    with expect_error(NotFoundError, "ALIAS_NOT_FOUND"):
        client.get_alias("fraud", "production")
    with expect_error(NotFoundError, "ALIAS_NOT_FOUND"):
        client.get_version("fraud", "production")
    assert list(client.get_version("fraud", 2).aliases) == ["canary"]
    assert len(client.list_aliases("fraud")) == 2


def test_set_alias_resolves_latest_and_other_aliases_once(fraud: RegistryClient) -> None:
    client = fraud
    assert client.set_alias("fraud", "newest", "latest").version == "models/fraud/versions/2"
    client.set_alias("fraud", "stable", 1)
    assert client.set_alias("fraud", "copy", "stable").version == "models/fraud/versions/1"
    # Resolved once: moving `stable` or a new `latest` does not move the copies.
    client.set_alias("fraud", "stable", 2)
    client.seal_version("fraud", 3)
    assert client.get_alias("fraud", "copy").version == "models/fraud/versions/1"
    assert client.get_alias("fraud", "newest").version == "models/fraud/versions/2"


def test_set_alias_errors(fraud: RegistryClient) -> None:
    client = fraud
    client.create_model("other")
    ready_version(client, "other")
    client.set_alias("fraud", "production", 1)
    with unchanged(client):
        with expect_error(FailedPreconditionError, "VERSION_NOT_READY"):
            client.set_alias("fraud", "draft", 3)
        with expect_error(FailedPreconditionError, "VERSION_NOT_READY"):
            client.set_alias("fraud", "production", 3)  # the alias does not move either
        with expect_error(FailedPreconditionError, "VERSION_DELETED"):
            client.set_alias("fraud", "gone", 4)
        with expect_error(NotFoundError, "VERSION_NOT_FOUND"):
            client.set_alias("fraud", "nowhere", 99)
        with expect_error(NotFoundError, "ALIAS_NOT_FOUND"):
            client.set_alias("fraud", "copy", "missing-alias")
        with expect_error(NotFoundError, "MODEL_NOT_FOUND"):
            client.set_alias("nope", "prod", 1)
        with expect_error(InvalidArgumentError, "INVALID_ARGUMENT", field="alias.version"):
            client.set_alias("fraud", "cross", "models/other/versions/1")
        with expect_error(InvalidArgumentError, "INVALID_ARGUMENT", field="alias.version"):
            client.set_alias("fraud", "bad", "models/fraud/versions/0")
        with expect_error(InvalidArgumentError, "INVALID_ARGUMENT", field="alias.version"):
            client.set_alias("fraud", "bad", "models/fraud")
        for alias in ("latest", "Prod", "1abc", "a_b", "x" * 64, ""):
            with expect_error(InvalidArgumentError, "INVALID_ARGUMENT", field="alias.name"):
                client.set_alias("fraud", f"models/fraud/aliases/{alias}", 1)
        for name in ("models/fraud/versions/1", "models/fraud/aliases", "aliases/x", ""):
            alias = res.Alias(name=name, version="models/fraud/versions/1")
            with expect_error(InvalidArgumentError, "INVALID_ARGUMENT", field="alias.name"):
                call(client, "SetAlias", mr.SetAliasRequest(alias=alias))
        with expect_error(InvalidArgumentError, "INVALID_ARGUMENT", field="alias.version"):
            call(
                client,
                "SetAlias",
                mr.SetAliasRequest(alias=res.Alias(name="models/fraud/aliases/x")),
            )


def test_concurrent_alias_moves_on_the_replicas_agree(
    replica_clients: list[RegistryClient],
) -> None:
    """SetAlias carries no etag: moves of one alias from the replicas serialise (last writer
    wins). Every call succeeds, every replica then reads the same target, which is the last
    of exactly as many recorded moves (history and events) as there were calls."""
    clients = replica_clients
    first = clients[0]
    first.create_model("fraud")
    for _ in range(4):
        ready_version(first, "fraud")
    moves = 8
    barrier = threading.Barrier(moves)

    def move(i: int) -> str:
        barrier.wait(timeout=30)
        return clients[i % len(clients)].set_alias("fraud", "production", i % 4 + 1).version

    with ThreadPoolExecutor(moves) as pool:
        targets = list(pool.map(move, range(moves)))
    history = list(first.list_alias_history("fraud", "production"))
    assert len(history) == moves
    assert sorted(h.version for h in history) == sorted(targets)
    now = {on.get_alias("fraud", "production").version for on in clients}
    assert now == {history[-1].version}
    events = list(first.list_events(filter='method = "SetAlias"'))
    assert len(events) == moves
    assert [e.sequence for e in events] == sorted(e.sequence for e in events)


def test_set_alias_on_deleted_model(client: RegistryClient) -> None:
    client.create_model("fraud")
    ready_version(client, "fraud")
    client.delete_model("fraud", force=True)
    with unchanged(client), expect_error(FailedPreconditionError, "MODEL_DELETED"):
        client.set_alias("fraud", "prod", 1)


def test_get_list_delete_alias_errors(fraud: RegistryClient) -> None:
    client = fraud
    client.set_alias("fraud", "production", 1)
    with unchanged(client):
        with expect_error(NotFoundError, "ALIAS_NOT_FOUND"):
            client.get_alias("fraud", "staging")
        with expect_error(NotFoundError, "MODEL_NOT_FOUND"):
            client.get_alias("nope", "production")
        with expect_error(NotFoundError, "ALIAS_NOT_FOUND"):
            client.delete_alias("fraud", "staging")
        with expect_error(NotFoundError, "MODEL_NOT_FOUND"):
            client.delete_alias("nope", "production")
        with expect_error(NotFoundError, "MODEL_NOT_FOUND"):
            client.list_aliases("nope")
        for bad in ("latest", "Bad", "models/fraud/versions/1"):
            name = bad if bad.startswith("models/") else f"models/fraud/aliases/{bad}"
            with expect_error(InvalidArgumentError, "INVALID_ARGUMENT", field="name"):
                client.get_alias("fraud", name)
            with expect_error(InvalidArgumentError, "INVALID_ARGUMENT", field="name"):
                client.delete_alias("fraud", name)
        for parent in ("models/Bad", "models/fraud/aliases", ""):
            with expect_error(InvalidArgumentError, "INVALID_ARGUMENT", field="parent"):
                call(client, "ListAliases", mr.ListAliasesRequest(parent=parent))


def test_deleting_a_version_removes_its_aliases(fraud: RegistryClient) -> None:
    client = fraud
    client.set_alias("fraud", "production", 1)
    client.set_alias("fraud", "canary", 2)
    client.delete_version("fraud", 1)
    assert [a.name for a in client.list_aliases("fraud")] == ["models/fraud/aliases/canary"]
    with expect_error(NotFoundError, "ALIAS_NOT_FOUND"):
        client.get_version("fraud", "production")


def test_aliases_of_a_soft_deleted_model_stay_readable(client: RegistryClient) -> None:
    client.create_model("fraud")
    client.delete_model("fraud")
    assert client.list_aliases("fraud") == []


# -- stages -----------------------------------------------------------------------------------


def test_transitions_are_recorded_with_actor(server: RegistryServer, fraud: RegistryClient) -> None:
    # Authentication is off: the actor is "anonymous" (with a JWT the principal is recorded
    # instead: test_transitions_record_the_token_subject_as_actor below).
    with RegistryClient(server.address) as alice:
        start = datetime.now(UTC).replace(microsecond=0)
        first = alice.transition_stage("fraud", 1, "STAGING", comment="looks good")
        assert first.stage == res.STAGE_STAGING
        assert first.update_time.ToDatetime(tzinfo=UTC) >= start
        second = fraud.transition_stage(
            "fraud", 1, res.STAGE_PRODUCTION, comment="ship it", etag=first.etag
        )
        assert second.stage == res.STAGE_PRODUCTION
        assert second.etag != first.etag
        third = alice.transition_stage("fraud", "latest", "archived")  # latest → 2
        assert third.version_number == 2 and third.stage == res.STAGE_ARCHIVED

    history = list(fraud.list_stage_transitions("fraud", 1))
    assert [(t.from_stage, t.to_stage, t.actor, t.comment) for t in history] == [
        (res.STAGE_DEVELOPMENT, res.STAGE_STAGING, "anonymous", "looks good"),
        (res.STAGE_STAGING, res.STAGE_PRODUCTION, "anonymous", "ship it"),
    ]
    times = [t.transition_time.ToDatetime(tzinfo=UTC) for t in history]
    assert start <= times[0] <= times[1]
    assert times[1] == second.update_time.ToDatetime(tzinfo=UTC)
    assert fraud.get_version("fraud", 1) == second
    [archived] = fraud.list_stage_transitions("fraud", 2)
    assert (archived.from_stage, archived.to_stage, archived.actor) == (
        res.STAGE_DEVELOPMENT,
        res.STAGE_ARCHIVED,
        "anonymous",
    )
    assert list(fraud.list_stage_transitions("fraud", 3)) == []


def test_transitions_record_the_token_subject_as_actor(
    server_config: Config, tmp_path: Path
) -> None:
    def as_user(sub: str) -> RegistryClient:
        return as_caller(jwt_server, mint(rsa_key(), sub=sub, scope=EVERY_SCOPE))

    with (
        serving(jwt_config(server_config, tmp_path)) as jwt_server,
        as_user("alice") as alice,
        as_user("bob") as bob,
    ):
        alice.create_model("fraud")
        ready_version(alice, "fraud")
        alice.transition_stage("fraud", 1, "STAGING", comment="looks good")
        bob.transition_stage("fraud", 1, "PRODUCTION")
        history = list(alice.list_stage_transitions("fraud", 1))
    assert [(t.to_stage, t.actor, t.comment) for t in history] == [
        (res.STAGE_STAGING, "user:alice", "looks good"),
        (res.STAGE_PRODUCTION, "user:bob", ""),
    ]


def test_transition_by_alias_and_history_by_alias(fraud: RegistryClient) -> None:
    client = fraud
    client.set_alias("fraud", "candidate", 2)
    assert client.transition_stage("fraud", "candidate", "STAGING").version_number == 2
    [t] = client.list_stage_transitions("fraud", "candidate")
    assert t.to_stage == res.STAGE_STAGING
    assert list(client.list_stage_transitions("fraud", "latest")) == [t]


def test_draft_may_be_archived_but_not_staged(fraud: RegistryClient) -> None:
    client = fraud
    with unchanged(client):
        for stage in ("STAGING", "PRODUCTION"):
            with expect_error(FailedPreconditionError, "VERSION_NOT_READY"):
                client.transition_stage("fraud", 3, stage)
    archived = client.transition_stage("fraud", 3, "ARCHIVED")
    assert archived.stage == res.STAGE_ARCHIVED and archived.state == res.VERSION_STATE_DRAFT
    assert client.transition_stage("fraud", 3, "DEVELOPMENT").stage == res.STAGE_DEVELOPMENT


def test_transition_errors(fraud: RegistryClient) -> None:
    client = fraud
    v1 = client.transition_stage("fraud", 1, "STAGING")
    with unchanged(client):
        with expect_error(FailedPreconditionError, "STAGE_UNCHANGED"):
            client.transition_stage("fraud", 1, "STAGING")
        with expect_error(AbortedError, "ETAG_MISMATCH") as info:
            client.transition_stage("fraud", 2, "STAGING", etag=v1.etag)
        assert info.value.metadata["current_etag"] == client.get_version("fraud", 2).etag
        with expect_error(FailedPreconditionError, "VERSION_DELETED"):
            client.transition_stage("fraud", 4, "ARCHIVED")
        with expect_error(NotFoundError, "VERSION_NOT_FOUND"):
            client.transition_stage("fraud", 99, "ARCHIVED")
        with expect_error(NotFoundError, "ALIAS_NOT_FOUND"):
            client.transition_stage("fraud", "nope", "ARCHIVED")
        with expect_error(NotFoundError, "MODEL_NOT_FOUND"):
            client.transition_stage("nope", 1, "ARCHIVED")
        with expect_error(InvalidArgumentError, "INVALID_ARGUMENT", field="comment"):
            client.transition_stage("fraud", 2, "ARCHIVED", comment="x" * 1001)
        for stage in (res.STAGE_UNSPECIFIED, 17):
            with expect_error(InvalidArgumentError, "INVALID_ARGUMENT", field="stage"):
                client.transition_stage("fraud", 2, stage)
        with expect_error(InvalidArgumentError, "INVALID_ARGUMENT", field="name"):
            client.transition_stage("fraud", "0", "ARCHIVED")
    assert client.transition_stage("fraud", 2, "ARCHIVED", comment="x" * 1000).stage == (
        res.STAGE_ARCHIVED
    )


def test_list_transitions_paging(fraud: RegistryClient) -> None:
    client = fraud
    stages = ["STAGING", "PRODUCTION", "ARCHIVED", "DEVELOPMENT", "STAGING"]
    for i, stage in enumerate(stages):
        client.transition_stage("fraud", 1, stage, comment=str(i))
    comments: list[str] = []
    token = ""
    pages = 0
    while True:
        page = call(
            client,
            "ListStageTransitions",
            mr.ListStageTransitionsRequest(
                parent="models/fraud/versions/1", page_size=2, page_token=token
            ),
        )
        pages += 1
        assert len(page.stage_transitions) <= 2
        comments += [t.comment for t in page.stage_transitions]
        token = page.next_page_token
        if not token:
            break
    assert comments == ["0", "1", "2", "3", "4"]
    assert pages == 3
    assert [t.comment for t in client.list_stage_transitions("fraud", 1, page_size=1)] == comments


def test_list_transitions_errors(fraud: RegistryClient) -> None:
    client = fraud
    client.transition_stage("fraud", 1, "STAGING")
    client.transition_stage("fraud", 1, "PRODUCTION")
    client.transition_stage("fraud", 2, "STAGING")
    client.transition_stage("fraud", 2, "PRODUCTION")

    def request(parent: str, token: str = "", size: int = 1) -> mr.ListStageTransitionsRequest:
        return mr.ListStageTransitionsRequest(parent=parent, page_size=size, page_token=token)

    token = call(client, "ListStageTransitions", request("models/fraud/versions/1")).next_page_token
    assert token
    with unchanged(client):
        with expect_error(InvalidArgumentError, "INVALID_PAGE_TOKEN", field="page_token"):
            call(client, "ListStageTransitions", request("models/fraud/versions/2", token))
        for bad in ("garbage!", "e30", token[:-2], "AAAA"):
            with expect_error(InvalidArgumentError, "INVALID_PAGE_TOKEN", field="page_token"):
                call(client, "ListStageTransitions", request("models/fraud/versions/1", bad))
        with expect_error(InvalidArgumentError, "INVALID_ARGUMENT", field="page_size"):
            call(client, "ListStageTransitions", request("models/fraud/versions/1", size=-1))
        with expect_error(NotFoundError, "VERSION_NOT_FOUND"):
            call(client, "ListStageTransitions", request("models/fraud/versions/9"))
        with expect_error(NotFoundError, "MODEL_NOT_FOUND"):
            call(client, "ListStageTransitions", request("models/nope/versions/1"))
        for parent in ("models/fraud", "models/fraud/versions/0", ""):
            with expect_error(InvalidArgumentError, "INVALID_ARGUMENT", field="parent"):
                call(client, "ListStageTransitions", request(parent))
