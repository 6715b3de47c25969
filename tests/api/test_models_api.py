"""ModelRegistry model RPCs through the client: Create/Get/Update/Delete/UndeleteModel.

Happy paths round-trip every field; every failure also checks that nothing changed.
"""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

from modelregistry.client import (
    AbortedError,
    AlreadyExistsError,
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    RegistryClient,
)
from modelregistry.v1 import model_registry_pb2 as mr
from modelregistry.v1 import resources_pb2 as res
from modelregistry_server.app import RegistryServer
from tests.api.registry_helpers import call, expect_error, ready_version, snapshot, unchanged

FULL = {
    "display_name": "Fraud detector",
    "description": "Scores card transactions.\nSecond line, ünïcödé.",
    "type": "classifier",
    "author": "risk-ml",
    "labels": {"team": "risk", "tier": "1", "cost.center": "c-42", "a_b-c": ""},
}


def test_create_get_round_trip(client: RegistryClient) -> None:
    created = client.create_model("fraud", **FULL)
    assert created.name == "models/fraud"
    assert str(uuid.UUID(created.uid)) == created.uid
    assert created.display_name == FULL["display_name"]
    assert created.description == FULL["description"]
    assert created.type == "classifier"
    assert created.author == "risk-ml"
    assert dict(created.labels) == FULL["labels"]
    assert created.HasField("create_time")
    assert created.update_time == created.create_time
    assert not created.HasField("delete_time")
    assert not created.HasField("purge_time")
    assert created.etag
    assert created.latest_version_number == 0
    assert client.get_model("fraud") == created
    assert client.get_model("models/fraud") == created
    assert list(client.list_models()) == [created]


def test_create_minimal_and_output_only_fields_ignored(client: RegistryClient) -> None:
    stub_request = mr.CreateModelRequest(
        model_id="plain",
        model=res.Model(
            name="models/other",
            uid="not-a-uid",
            etag="forged",
            latest_version_number=7,
            create_time={"seconds": 1},
            delete_time={"seconds": 2},
        ),
    )
    model = call(client, "CreateModel", stub_request)
    assert model.name == "models/plain"
    assert model.uid != "not-a-uid"
    assert model.etag != "forged"
    assert model.latest_version_number == 0
    assert model.create_time.seconds > 1
    assert not model.HasField("delete_time")
    assert model.display_name == model.description == model.type == model.author == ""
    assert dict(model.labels) == {}


BAD_IDS = ["", "1abc", "Abc", "a_b", "a.b", "-ab", "a b", "a/b", "ab\u00e9", "a" * 64, "latest/x"]


def test_create_invalid_id(client: RegistryClient) -> None:
    client.create_model("fraud", **FULL)
    with unchanged(client):
        for model_id in BAD_IDS:
            with expect_error(
                InvalidArgumentError, "INVALID_ARGUMENT", field="model_id", case=model_id
            ):
                client.create_model(model_id, display_name="x")


def test_create_longest_id(client: RegistryClient) -> None:
    model_id = "a" + "b-9" * 20 + "cd"
    assert len(model_id) == 63
    assert client.create_model(model_id).name == f"models/{model_id}"


BAD_MODEL_FIELDS: list[tuple[dict[str, Any], str]] = [
    ({"display_name": "x" * 201}, "model.display_name"),
    ({"type": "x" * 201}, "model.type"),
    ({"author": "x" * 201}, "model.author"),
    ({"author": "a\x00b"}, "model.author"),
    ({"description": "x" * 10_001}, "model.description"),
    ({"labels": {"Team": "x"}}, "model.labels.Team"),
    ({"labels": {"1team": "x"}}, "model.labels.1team"),
    ({"labels": {"": "x"}}, "model.labels."),
    ({"labels": {"k" * 64: "x"}}, f"model.labels.{'k' * 64}"),
    ({"labels": {"team": "v" * 257}}, "model.labels.team"),
    ({"labels": {f"k{i}": "v" for i in range(65)}}, "model.labels"),
]


def test_create_invalid_fields(client: RegistryClient) -> None:
    client.create_model("existing", **FULL)
    with unchanged(client):
        for fields, field in BAD_MODEL_FIELDS:
            with expect_error(InvalidArgumentError, "INVALID_ARGUMENT", field=field, case=field):
                client.create_model("fraud", **fields)


def test_create_limits_accepted(client: RegistryClient) -> None:
    model = client.create_model(
        "fraud",
        display_name="x" * 200,
        description="d" * 10_000,
        labels={f"k{i}": "v" * 256 for i in range(64)},
    )
    assert client.get_model("fraud") == model
    assert len(model.labels) == 64


def test_create_duplicate(client: RegistryClient) -> None:
    client.create_model("fraud", display_name="first")
    with (
        unchanged(client),
        expect_error(AlreadyExistsError, "MODEL_ALREADY_EXISTS"),
    ):
        client.create_model("fraud", display_name="second", request_id="failed-rid")
    # The failed call recorded nothing under its request id.
    assert client.create_model("other", request_id="failed-rid").name == "models/other"


def test_soft_deleted_model_keeps_its_id(client: RegistryClient) -> None:
    client.create_model("fraud")
    client.delete_model("fraud")
    with unchanged(client), expect_error(AlreadyExistsError, "MODEL_ALREADY_EXISTS"):
        client.create_model("fraud")


def test_create_request_id_replay(client: RegistryClient) -> None:
    first = client.create_model("fraud", display_name="one", request_id="req-1")
    again = client.create_model("fraud", display_name="one", request_id="req-1")
    assert again == first
    # The same id with another request is refused (tests/api/test_request_ids_api.py).
    with unchanged(client), expect_error(InvalidArgumentError, "REQUEST_ID_REUSED"):
        client.create_model("fraud2", display_name="two", request_id="req-1")
    assert [m.name for m in client.list_models(show_deleted=True)] == ["models/fraud"]


def test_create_request_id_used_by_another_method(client: RegistryClient) -> None:
    client.create_model("fraud")
    client.create_version("fraud", request_id="shared-id")
    with (
        unchanged(client),
        expect_error(InvalidArgumentError, "REQUEST_ID_REUSED", field="request_id"),
    ):
        client.create_model("other", request_id="shared-id")


def test_create_invalid_request_id(client: RegistryClient) -> None:
    client.create_model("existing", request_id="ok-id")
    with unchanged(client):
        for request_id in ("has space", "x" * 129, "a/b", "\u00e9"):
            with expect_error(
                InvalidArgumentError, "INVALID_ARGUMENT", field="request_id", case=request_id
            ):
                client.create_model("fraud", request_id=request_id)


def test_get_unknown_model(client: RegistryClient) -> None:
    client.create_model("fraud")
    with unchanged(client), expect_error(NotFoundError, "MODEL_NOT_FOUND", message="nope"):
        client.get_model("nope")


def test_get_invalid_name(client: RegistryClient) -> None:
    client.create_model("fraud")
    with unchanged(client):
        for name in (
            "models/",
            "models/Bad",
            "model/fraud",
            "models/fraud/versions/1",
            "fraud",
            "",
        ):
            with expect_error(InvalidArgumentError, "INVALID_ARGUMENT", field="name", case=name):
                call(client, "GetModel", mr.GetModelRequest(name=name))


# -- update -----------------------------------------------------------------------------------


def test_update_every_field(client: RegistryClient) -> None:
    created = client.create_model("fraud", **FULL)
    patch = res.Model(
        name="models/fraud",
        display_name="New name",
        description="new description",
        type="ranking",
        author="someone",
        labels={"team": "growth", "new": "1"},
    )
    updated = client.update_model(
        patch, update_mask=["display_name", "description", "type", "author", "labels"]
    )
    assert updated.display_name == "New name"
    assert updated.description == "new description"
    assert updated.type == "ranking"
    assert updated.author == "someone"
    assert dict(updated.labels) == {"team": "growth", "new": "1"}
    assert updated.uid == created.uid
    assert updated.create_time == created.create_time
    assert updated.update_time.ToDatetime() >= created.update_time.ToDatetime()
    assert updated.etag != created.etag
    assert client.get_model("fraud") == updated


def test_update_only_masked_fields(client: RegistryClient) -> None:
    client.create_model("fraud", **FULL)
    patch = res.Model(name="models/fraud", display_name="changed", author="ignored")
    updated = client.update_model(patch, update_mask=["display_name"])
    assert updated.display_name == "changed"
    assert updated.author == FULL["author"]
    assert dict(updated.labels) == FULL["labels"]


def test_update_masked_field_absent_clears_it(client: RegistryClient) -> None:
    client.create_model("fraud", **FULL)
    updated = client.update_model(
        res.Model(name="models/fraud"), update_mask=["description", "labels"]
    )
    assert updated.description == ""
    assert dict(updated.labels) == {}
    assert updated.display_name == FULL["display_name"]


def test_update_single_label_entries(client: RegistryClient) -> None:
    client.create_model("fraud", labels={"team": "risk", "tier": "1", "keep": "yes"})
    patch = res.Model(name="models/fraud", labels={"team": "growth", "added": "new"})
    updated = client.update_model(patch, update_mask=["labels.team", "labels.tier", "labels.added"])
    assert dict(updated.labels) == {"team": "growth", "added": "new", "keep": "yes"}
    dotted = client.update_model(
        res.Model(name="models/fraud", labels={"cost.center": "c1"}),
        update_mask=["labels.cost.center"],
    )
    assert dotted.labels["cost.center"] == "c1" and len(dotted.labels) == 4


def test_update_label_entries_cannot_exceed_the_limit(client: RegistryClient) -> None:
    client.create_model("fraud", labels={f"k{i}": "v" for i in range(64)})
    patch = res.Model(name="models/fraud", labels={"extra": "x", "k0": "changed"})
    with (
        unchanged(client),
        expect_error(InvalidArgumentError, "INVALID_ARGUMENT", field="model.labels"),
    ):
        client.update_model(patch, update_mask=["labels.extra"])
    replaced = client.update_model(patch, update_mask=["labels.k0", "labels.k1"])
    assert len(replaced.labels) == 63 and replaced.labels["k0"] == "changed"
    assert len(client.update_model(patch, update_mask=["labels.extra"]).labels) == 64


def test_update_implied_mask(client: RegistryClient) -> None:
    client.create_model("fraud", **FULL)
    updated = client.update_model(
        res.Model(name="models/fraud", type="llm", labels={"only": "this"}), update_mask=[]
    )
    assert updated.type == "llm"
    assert dict(updated.labels) == {"only": "this"}
    assert updated.display_name == FULL["display_name"]
    assert updated.description == FULL["description"]


def test_update_star_replaces_every_updatable_field(client: RegistryClient) -> None:
    created = client.create_model("fraud", **FULL)
    updated = client.update_model(res.Model(name="models/fraud", type="llm"), update_mask=["*"])
    assert updated.type == "llm"
    assert updated.display_name == updated.description == updated.author == ""
    assert dict(updated.labels) == {}
    assert updated.uid == created.uid
    assert updated.create_time == created.create_time


def test_update_with_current_etag(client: RegistryClient) -> None:
    created = client.create_model("fraud")
    patch = res.Model(name="models/fraud", etag=created.etag, display_name="ok")
    assert client.update_model(patch, update_mask=["display_name"]).display_name == "ok"


def test_update_stale_etag(client: RegistryClient) -> None:
    created = client.create_model("fraud")
    current = client.update_model(
        res.Model(name="models/fraud", display_name="v2"), update_mask=["display_name"]
    )
    stale = res.Model(name="models/fraud", etag=created.etag, display_name="lost update")
    with unchanged(client), expect_error(AbortedError, "ETAG_MISMATCH") as info:
        client.update_model(stale, update_mask=["display_name"])
    assert info.value.metadata["current_etag"] == current.etag


BAD_MODEL_MASKS = [
    ["name"],
    ["uid"],
    ["etag"],
    ["create_time"],
    ["update_time"],
    ["delete_time"],
    ["purge_time"],
    ["latest_version_number"],
    ["display_name", "create_time"],
    ["unknown_field"],
    ["metrics"],
    ["display_name.x"],
    ["labels.Bad"],
    ["labels."],
    ["*", "labels"],
    ["*", "*"],
    [""],
]


def test_update_bad_mask(client: RegistryClient) -> None:
    client.create_model("fraud", **FULL)
    patch = res.Model(name="models/fraud", display_name="never")
    with unchanged(client):
        for mask in BAD_MODEL_MASKS:
            with expect_error(
                InvalidArgumentError, "INVALID_UPDATE_MASK", field="update_mask", case=mask
            ):
                client.update_model(patch, update_mask=mask)


def test_update_nothing_to_update(client: RegistryClient) -> None:
    client.create_model("fraud", **FULL)
    with (
        unchanged(client),
        expect_error(InvalidArgumentError, "INVALID_UPDATE_MASK", field="update_mask"),
    ):
        client.update_model(res.Model(name="models/fraud"), update_mask=[])


def test_update_invalid_values(client: RegistryClient) -> None:
    client.create_model("fraud", **FULL)
    cases = [
        (res.Model(display_name="x"), ["display_name"], "model.name"),
        (res.Model(name="models/Bad", display_name="x"), ["display_name"], "model.name"),
        (res.Model(name="models/fraud", labels={"Bad": "x"}), ["labels"], "model.labels.Bad"),
        (res.Model(name="models/fraud", labels={"Bad": "x"}), [], "model.labels.Bad"),
        (res.Model(name="models/fraud", display_name="x" * 201), ["*"], "model.display_name"),
        (
            res.Model(name="models/fraud", description="x" * 10_001),
            ["description"],
            "model.description",
        ),
    ]
    with unchanged(client):
        for patch, mask, field in cases:
            with expect_error(InvalidArgumentError, "INVALID_ARGUMENT", field=field, case=field):
                client.update_model(patch, update_mask=mask)


def test_update_missing_model(client: RegistryClient) -> None:
    client.create_model("fraud", **FULL)
    with unchanged(client), expect_error(InvalidArgumentError, "INVALID_ARGUMENT", field="model"):
        call(client, "UpdateModel", mr.UpdateModelRequest())


def test_update_unknown_and_deleted_model(client: RegistryClient) -> None:
    client.create_model("fraud")
    client.delete_model("fraud")
    with unchanged(client):
        with expect_error(NotFoundError, "MODEL_NOT_FOUND"):
            client.update_model(res.Model(name="models/nope", type="x"), update_mask=["type"])
        with expect_error(FailedPreconditionError, "MODEL_DELETED"):
            client.update_model(res.Model(name="models/fraud", type="x"), update_mask=["type"])


# -- delete / undelete ------------------------------------------------------------------------


def test_delete_and_undelete(client: RegistryClient, server: RegistryServer) -> None:
    created = client.create_model("fraud", **FULL)
    client.create_model("other")
    deleted = client.delete_model("fraud", etag=created.etag)
    assert deleted.HasField("delete_time")
    retention = timedelta(hours=server.config.retention_hours)
    assert deleted.purge_time.ToDatetime() - deleted.delete_time.ToDatetime() == retention
    assert deleted.etag != created.etag
    assert client.get_model("fraud") == deleted
    assert [m.name for m in client.list_models()] == ["models/other"]
    assert [m.name for m in client.list_models(show_deleted=True)] == [
        "models/fraud",
        "models/other",
    ]

    restored = client.undelete_model("fraud", etag=deleted.etag)
    assert not restored.HasField("delete_time")
    assert not restored.HasField("purge_time")
    assert restored.etag not in (created.etag, deleted.etag)
    for field in ("uid", "display_name", "description", "type", "author", "labels"):
        assert getattr(restored, field) == getattr(created, field)
    assert client.get_model("fraud") == restored
    assert [m.name for m in client.list_models()] == ["models/fraud", "models/other"]


def test_delete_twice_and_undelete_live(client: RegistryClient) -> None:
    client.create_model("fraud")
    with unchanged(client), expect_error(FailedPreconditionError, "MODEL_NOT_DELETED"):
        client.undelete_model("fraud")
    client.delete_model("fraud")
    with unchanged(client), expect_error(FailedPreconditionError, "MODEL_DELETED"):
        client.delete_model("fraud")


def test_delete_undelete_stale_etag(client: RegistryClient) -> None:
    created = client.create_model("fraud")
    client.update_model(res.Model(name="models/fraud", type="x"), update_mask=["type"])
    with unchanged(client), expect_error(AbortedError, "ETAG_MISMATCH"):
        client.delete_model("fraud", etag=created.etag)
    deleted = client.delete_model("fraud")
    with unchanged(client), expect_error(AbortedError, "ETAG_MISMATCH") as info:
        client.undelete_model("fraud", etag=created.etag)
    assert info.value.metadata["current_etag"] == deleted.etag


def test_delete_unknown_and_invalid(client: RegistryClient) -> None:
    client.create_model("fraud")
    with unchanged(client):
        with expect_error(NotFoundError, "MODEL_NOT_FOUND"):
            client.delete_model("nope")
        with expect_error(NotFoundError, "MODEL_NOT_FOUND"):
            client.undelete_model("nope")
        with expect_error(InvalidArgumentError, "INVALID_ARGUMENT", field="name"):
            client.delete_model("models/Nope")
        with expect_error(InvalidArgumentError, "INVALID_ARGUMENT", field="name"):
            client.undelete_model("models/fraud/versions/1")


def test_delete_with_live_versions_needs_force(client: RegistryClient) -> None:
    client.create_model("fraud")
    ready_version(client, "fraud")
    client.create_version("fraud")
    with unchanged(client), expect_error(FailedPreconditionError, "MODEL_HAS_VERSIONS"):
        client.delete_model("fraud")


def test_delete_with_only_deleted_versions_needs_no_force(client: RegistryClient) -> None:
    client.create_model("fraud")
    client.create_version("fraud")
    client.delete_version("fraud", 1)
    assert client.delete_model("fraud").HasField("delete_time")


def test_forced_delete_cascades_and_undelete_restores(client: RegistryClient) -> None:
    client.create_model("fraud")
    v1 = ready_version(client, "fraud")
    v2 = client.create_version("fraud")
    v3 = client.create_version("fraud")
    gone_before = client.delete_version("fraud", v3.version_number)
    client.set_alias("fraud", "production", v1.version_number)

    deleted = client.delete_model("fraud", force=True)
    versions = {v.version_number: v for v in client.list_versions("fraud", show_deleted=True)}
    for number in (1, 2):
        assert versions[number].delete_time == deleted.delete_time
        assert versions[number].purge_time == deleted.purge_time
    assert versions[3] == gone_before  # deleted earlier: untouched
    assert list(client.list_versions("fraud")) == []
    assert client.list_aliases("fraud") == []  # deleting a version removes its aliases
    with expect_error(FailedPreconditionError, "MODEL_DELETED"):
        client.create_version("fraud")

    client.undelete_model("fraud")
    live = list(client.list_versions("fraud"))
    assert [v.version_number for v in live] == [1, 2]
    assert all(not v.HasField("delete_time") for v in live)
    assert live[0].state == v1.state and live[1].uid == v2.uid
    assert client.get_version("fraud", 3).HasField("delete_time")
    assert client.get_version("fraud", "latest").version_number == 1
    assert client.list_aliases("fraud") == []


def test_concurrent_updates_with_one_etag_have_one_winner(
    replica_clients: list[RegistryClient],
) -> None:
    """Eight updates with one etag, spread over the replicas: one wins, the rest are ABORTED,
    and every replica then reads the winner's value and etag."""
    clients = replica_clients
    etag = clients[0].create_model("fraud").etag
    barrier = threading.Barrier(8)

    def update(i: int) -> str:
        patch = res.Model(name="models/fraud", etag=etag, display_name=f"writer {i}")
        barrier.wait(timeout=30)
        try:
            on = clients[i % len(clients)]
            return on.update_model(patch, update_mask=["display_name"]).display_name
        except AbortedError as err:
            assert err.reason == "ETAG_MISMATCH"
            return ""

    with ThreadPoolExecutor(8) as pool:
        winners = [name for name in pool.map(update, range(8)) if name]
    assert len(winners) == 1
    seen = {(m.display_name, m.etag) for m in (on.get_model("fraud") for on in clients)}
    assert len(seen) == 1 and next(iter(seen))[0] == winners[0]
    assert next(iter(seen))[1] != etag


def test_concurrent_creates_of_one_id_have_one_winner(server: RegistryServer) -> None:
    with RegistryClient(server.address, retries=0) as client:
        barrier = threading.Barrier(8)

        def create(i: int) -> str:
            barrier.wait(timeout=30)
            try:
                return client.create_model("fraud", author=f"writer {i}").uid
            except AlreadyExistsError as err:
                assert err.reason == "MODEL_ALREADY_EXISTS"
                return ""

        with ThreadPoolExecutor(8) as pool:
            winners = [uid for uid in pool.map(create, range(8)) if uid]
        assert len(winners) == 1
        assert client.get_model("fraud").uid == winners[0]


def test_latest_version_number_tracks_creates(client: RegistryClient) -> None:
    client.create_model("fraud")
    for _ in range(3):
        client.create_version("fraud")
    client.delete_version("fraud", 3)
    assert client.get_model("fraud").latest_version_number == 3
    assert client.create_version("fraud").version_number == 4  # numbers are never reused
    assert client.get_model("fraud").latest_version_number == 4


def test_snapshot_helper_sees_everything(client: RegistryClient) -> None:
    client.create_model("fraud")
    ready_version(client, "fraud")
    client.set_alias("fraud", "prod", 1)
    client.transition_stage("fraud", 1, "STAGING")
    state = snapshot(client)
    assert [m.name for m in state.models] == ["models/fraud"]
    assert [a.name for a in state.aliases["models/fraud"]] == ["models/fraud/aliases/prod"]
    assert len(state.transitions["models/fraud/versions/1"]) == 1
