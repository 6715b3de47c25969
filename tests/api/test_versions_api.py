"""ModelRegistry version RPCs through the client: create, get (number/latest/alias), update,
delete/undelete, seal, request ids and concurrent numbering.

Happy paths round-trip every field; every failure also checks that nothing changed.
"""

from __future__ import annotations

import hashlib
import io
import math
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from google.protobuf import struct_pb2, timestamp_pb2

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
from tests.api.registry_helpers import call, expect_error, ready_version, unchanged

EMPTY_MANIFEST = "sha256:" + hashlib.sha256(b"").hexdigest()
PAST = datetime(2020, 1, 1, tzinfo=UTC)
FUTURE = datetime(2100, 1, 1, 12, 30, 15, 123456, tzinfo=UTC)
VERSION_CONTENT_FIELDS = (
    "inputs", "outputs", "parameters", "dependencies", "produced_by", "source", "datasets"
)  # fmt: skip


def full_fields() -> dict[str, object]:
    """Every user-settable version field (produced_by refers to model `upstream`)."""
    return {
        "description": "gradient boosted trees",
        "type": "ONNX",
        "author": "ci",
        "inputs": [
            {"name": "amount", "type": "float32", "description": "EUR", "value": 0.5},
            {"name": "country", "type": "string", "value": "NL"},
            {"name": "flags", "type": "bool[3]", "value": [True, False, None]},
            {"name": "extra", "type": "struct", "value": {"k": {"nested": [1, "x"]}}},
            ("no_default", "int64", "has no default value"),
        ],
        "outputs": [{"name": "score", "type": "float32", "description": "0..1"}],
        "parameters": {
            "lr": 0.001,
            "layers": [64, 32],
            "name": "gbt",
            "enabled": True,
            "none": None,
            "nested": {"depth": 6, "list": [{"a": 1}]},
        },
        "dependencies": [
            ("torch", "2.3", "library"),
            {"name": "python", "version": "3.11", "kind": "RUNTIME"},
            ("upstream", "", "model"),
            ("thing", "", "other"),
            "bare-dependency",
        ],
        "produced_by": [
            "models/upstream/versions/latest",
            "models/upstream/versions/golden",
            ("upstream", 1),
        ],
        "metrics": {"accuracy": 0.93, "auc": 0.97, "Loss_v2": -1.5e-12, "big": 1e300},
        "source": ("https://git.example/fraud", "3f2a1c", "models/fraud"),
        "datasets": [
            ("gs://data/train", "sha256:abc", "training"),
            {"uri": "gs://data/val", "role": "VALIDATION"},
            ("gs://data/test", "", "test"),
            ("gs://data/other", "", "other"),
            "gs://data/default-role",
        ],
        "labels": {"team": "risk", "x.y_z-1": ""},
        "expire_time": FUTURE,
    }


@pytest.fixture
def upstream(client: RegistryClient) -> None:
    """Model `upstream` with READY v1, v2 (alias `golden` → 1) and a DRAFT v3."""
    client.create_model("upstream")
    ready_version(client, "upstream")
    ready_version(client, "upstream")
    client.create_version("upstream")
    client.set_alias("upstream", "golden", 1)


def check_full(v: res.ModelVersion) -> None:
    """``v`` carries exactly what :func:`full_fields` set."""
    assert v.description == "gradient boosted trees"
    assert v.type == "ONNX"
    assert v.author == "ci"
    assert [(i.name, i.type, i.description) for i in v.inputs] == [
        ("amount", "float32", "EUR"),
        ("country", "string", ""),
        ("flags", "bool[3]", ""),
        ("extra", "struct", ""),
        ("no_default", "int64", "has no default value"),
    ]
    assert v.inputs[0].value.number_value == 0.5
    assert v.inputs[1].value.string_value == "NL"
    flags = v.inputs[2].value.list_value.values
    assert [flags[0].bool_value, flags[1].bool_value] == [True, False]
    assert flags[2].WhichOneof("kind") == "null_value"
    assert v.inputs[3].value.struct_value["k"]["nested"][1] == "x"
    assert not v.inputs[4].HasField("value")
    assert [(o.name, o.type, o.description) for o in v.outputs] == [("score", "float32", "0..1")]
    assert not v.outputs[0].HasField("value")
    params = struct_pb2.Struct()
    params.update(full_fields()["parameters"])  # type: ignore[arg-type]
    assert v.parameters == params
    assert [(d.name, d.kind, d.version) for d in v.dependencies] == [
        ("torch", res.DEPENDENCY_KIND_LIBRARY, "2.3"),
        ("python", res.DEPENDENCY_KIND_RUNTIME, "3.11"),
        ("upstream", res.DEPENDENCY_KIND_MODEL, ""),
        ("thing", res.DEPENDENCY_KIND_OTHER, ""),
        ("bare-dependency", res.DEPENDENCY_KIND_LIBRARY, ""),  # UNSPECIFIED means LIBRARY
    ]
    # `latest` and aliases are resolved to numbered names when written.
    assert list(v.produced_by) == [
        "models/upstream/versions/2",
        "models/upstream/versions/1",
        "models/upstream/versions/1",
    ]
    assert dict(v.metrics) == {"accuracy": 0.93, "auc": 0.97, "Loss_v2": -1.5e-12, "big": 1e300}
    assert v.source == res.SourceCode(
        repository="https://git.example/fraud", commit="3f2a1c", path="models/fraud"
    )
    assert [(d.uri, d.digest, d.role) for d in v.datasets] == [
        ("gs://data/train", "sha256:abc", res.DATASET_ROLE_TRAINING),
        ("gs://data/val", "", res.DATASET_ROLE_VALIDATION),
        ("gs://data/test", "", res.DATASET_ROLE_TEST),
        ("gs://data/other", "", res.DATASET_ROLE_OTHER),
        ("gs://data/default-role", "", res.DATASET_ROLE_TRAINING),
    ]
    assert dict(v.labels) == {"team": "risk", "x.y_z-1": ""}
    assert v.expire_time.ToDatetime(tzinfo=UTC) == FUTURE
    assert not v.expired


@pytest.mark.usefixtures("upstream")
def test_create_get_round_trip(client: RegistryClient) -> None:
    client.create_model("fraud")
    created = client.create_version("fraud", **full_fields())  # type: ignore[arg-type]
    check_full(created)
    assert created.name == "models/fraud/versions/1"
    assert created.version_number == 1
    assert created.uid
    assert created.stage == res.STAGE_DEVELOPMENT
    assert created.state == res.VERSION_STATE_DRAFT
    assert created.manifest_digest == ""
    assert list(created.aliases) == []
    assert created.HasField("create_time")
    assert created.update_time == created.create_time
    assert not created.HasField("delete_time")
    assert not created.HasField("purge_time")
    assert created.etag
    assert created.file_count == 0
    assert created.total_size_bytes == 0
    assert client.get_version("fraud", 1) == created
    assert client.get_version("models/fraud/versions/1") == created
    assert list(client.list_versions("fraud")) == [created]
    assert client.get_model("fraud").latest_version_number == 1

    sealed = client.seal_version("fraud", 1)
    check_full(sealed)
    assert sealed.state == res.VERSION_STATE_READY
    assert sealed.manifest_digest == EMPTY_MANIFEST
    client.set_alias("fraud", "prod", 1)
    for ref in (1, "latest", "prod"):
        got = client.get_version("fraud", ref)
        check_full(got)
        assert got.name == "models/fraud/versions/1"
        assert list(got.aliases) == ["prod"]


def test_create_minimal(client: RegistryClient) -> None:
    client.create_model("fraud")
    v = client.create_version("fraud")
    assert v.name == "models/fraud/versions/1"
    assert not v.HasField("source")
    assert not v.HasField("parameters") or len(v.parameters.fields) == 0
    assert not v.HasField("expire_time")
    assert not v.expired
    assert list(v.inputs) == list(v.outputs) == list(v.produced_by) == []


def test_create_empty_source_round_trips(client: RegistryClient) -> None:
    client.create_model("fraud")
    v = client.create_version("fraud", source=res.SourceCode())
    assert v.HasField("source")
    assert client.get_version("fraud", 1).HasField("source")


def test_output_only_fields_ignored_on_create(client: RegistryClient) -> None:
    client.create_model("fraud")
    request = mr.CreateModelVersionRequest(
        parent="models/fraud",
        model_version=res.ModelVersion(
            name="models/fraud/versions/9",
            version_number=9,
            uid="forged",
            stage=res.STAGE_PRODUCTION,
            state=res.VERSION_STATE_READY,
            manifest_digest="sha256:forged",
            aliases=["prod"],
            expired=True,
            etag="forged",
            file_count=5,
            total_size_bytes=5,
            delete_time={"seconds": 5},
        ),
    )
    v = call(client, "CreateModelVersion", request)
    assert v.name == "models/fraud/versions/1"
    assert (v.stage, v.state) == (res.STAGE_DEVELOPMENT, res.VERSION_STATE_DRAFT)
    assert v.uid != "forged" and v.etag != "forged"
    assert v.manifest_digest == "" and list(v.aliases) == [] and not v.expired
    assert (v.file_count, v.total_size_bytes) == (0, 0)
    assert not v.HasField("delete_time")


def test_numbers_are_sequential_per_model(client: RegistryClient) -> None:
    client.create_model("a")
    client.create_model("b")
    assert [client.create_version("a").version_number for _ in range(3)] == [1, 2, 3]
    assert client.create_version("b").version_number == 1
    assert client.get_model("a").latest_version_number == 3


def _ts(seconds: int, nanos: int) -> timestamp_pb2.Timestamp:
    return timestamp_pb2.Timestamp(seconds=seconds, nanos=nanos)


BAD_VERSION_FIELDS: list[tuple[dict[str, Any], str]] = [
    ({"metrics": {"acc": math.nan}}, "model_version.metrics.acc"),
    ({"metrics": {"acc": math.inf}}, "model_version.metrics.acc"),
    ({"metrics": {"acc": -math.inf}}, "model_version.metrics.acc"),
    ({"metrics": {"1acc": 0.5}}, "model_version.metrics.1acc"),
    ({"metrics": {"a b": 0.5}}, "model_version.metrics.a b"),
    ({"metrics": {f"m{i}": 1.0 for i in range(257)}}, "model_version.metrics"),
    ({"labels": {"Bad": "x"}}, "model_version.labels.Bad"),
    ({"labels": {"ok": "v" * 257}}, "model_version.labels.ok"),
    ({"description": "x" * 10_001}, "model_version.description"),
    ({"type": "x" * 201}, "model_version.type"),
    ({"author": "x\x00"}, "model_version.author"),
    ({"inputs": [{"type": "float"}]}, "model_version.inputs[0].name"),
    ({"inputs": ["ok", ("x" * 201,)]}, "model_version.inputs[1].name"),
    ({"outputs": [("y", "t", "d" * 10_001)]}, "model_version.outputs[0].description"),
    ({"dependencies": [{"version": "1"}]}, "model_version.dependencies[0].name"),
    ({"dependencies": [("torch", "v" * 201)]}, "model_version.dependencies[0].version"),
    ({"datasets": [{"digest": "sha256:x"}]}, "model_version.datasets[0].uri"),
    ({"datasets": [("u" * 2001,)]}, "model_version.datasets[0].uri"),
    ({"source": ("r" * 2001, "", "")}, "model_version.source.repository"),
    ({"source": ("", "c" * 201, "")}, "model_version.source.commit"),
    ({"parameters": {"blob": "x" * 300_000}}, "model_version.parameters"),
    ({"produced_by": ["models/nope/versions/1"]}, "model_version.produced_by[0]"),
    ({"produced_by": ["models/fraud/versions/99"]}, "model_version.produced_by[0]"),
    ({"produced_by": ["models/fraud/versions/latest"]}, "model_version.produced_by[0]"),
    ({"produced_by": ["models/fraud/versions/nope"]}, "model_version.produced_by[0]"),
    ({"produced_by": ["models/fraud"]}, "model_version.produced_by[0]"),
    ({"produced_by": ["models/fraud/versions/0"]}, "model_version.produced_by[0]"),
    ({"expire_time": _ts(0, 1_000_000_000)}, "model_version.expire_time"),
    ({"expire_time": _ts(253_402_300_800, 0)}, "model_version.expire_time"),
]


def test_create_invalid_fields(client: RegistryClient) -> None:
    client.create_model("fraud")
    client.create_version("fraud")  # a DRAFT: not `latest`, but exists
    with unchanged(client):
        for fields, field in BAD_VERSION_FIELDS:
            with expect_error(InvalidArgumentError, "INVALID_ARGUMENT", field=field, case=field):
                client.create_version("fraud", request_id="failed-rid", **fields)
    assert client.get_model("fraud").latest_version_number == 1
    # The failed calls recorded nothing under their request id.
    assert client.create_version("fraud", request_id="failed-rid").version_number == 2


def test_create_invalid_enums(client: RegistryClient) -> None:
    client.create_model("fraud")
    for version, field in [
        (
            res.ModelVersion(dependencies=[res.Dependency(name="x", kind=99)]),  # type: ignore[arg-type]
            "model_version.dependencies[0].kind",
        ),
        (
            res.ModelVersion(datasets=[res.DatasetReference(uri="x", role=42)]),  # type: ignore[arg-type]
            "model_version.datasets[0].role",
        ),
    ]:
        request = mr.CreateModelVersionRequest(parent="models/fraud", model_version=version)
        with (
            unchanged(client),
            expect_error(InvalidArgumentError, "INVALID_ARGUMENT", field=field),
        ):
            call(client, "CreateModelVersion", request)


def test_create_unknown_or_invalid_parent(client: RegistryClient) -> None:
    client.create_model("fraud")
    with unchanged(client):
        with expect_error(NotFoundError, "MODEL_NOT_FOUND"):
            client.create_version("nope")
        for parent in ("", "models/Bad", "models/-", "models/fraud/versions/1"):
            with expect_error(InvalidArgumentError, "INVALID_ARGUMENT", field="parent"):
                call(client, "CreateModelVersion", mr.CreateModelVersionRequest(parent=parent))


def test_create_on_deleted_model(client: RegistryClient) -> None:
    client.create_model("fraud")
    client.delete_model("fraud")
    with unchanged(client), expect_error(FailedPreconditionError, "MODEL_DELETED"):
        client.create_version("fraud")


# -- request ids ------------------------------------------------------------------------------


def test_create_request_id_replay(client: RegistryClient) -> None:
    client.create_model("fraud")
    first = client.create_version("fraud", description="one", request_id="rid-1")
    again = client.create_version("fraud", description="one", request_id="rid-1")
    assert again == first
    assert [v.version_number for v in client.list_versions("fraud")] == [1]
    assert client.get_model("fraud").latest_version_number == 1
    assert client.create_version("fraud", request_id="rid-2").version_number == 2


def test_create_request_id_used_by_another_method(client: RegistryClient) -> None:
    client.create_model("fraud", request_id="model-rid")
    with (
        unchanged(client),
        expect_error(InvalidArgumentError, "REQUEST_ID_REUSED", field="request_id"),
    ):
        client.create_version("fraud", request_id="model-rid")


def test_create_invalid_request_id(client: RegistryClient) -> None:
    client.create_model("fraud")
    with (
        unchanged(client),
        expect_error(InvalidArgumentError, "INVALID_ARGUMENT", field="request_id"),
    ):
        client.create_version("fraud", request_id="not valid!")


def test_concurrent_request_id_retries_create_one_version(
    replica_clients: list[RegistryClient],
) -> None:
    """Retries of one request id, spread over the replicas, create one version."""
    clients = replica_clients
    client = clients[0]
    client.create_model("fraud")
    client.create_version("fraud")
    barrier = threading.Barrier(12)

    def create(i: int) -> res.ModelVersion:
        on = clients[i % len(clients)]
        barrier.wait(timeout=30)
        return on.create_version("fraud", description="retry", request_id="same-id")

    with ThreadPoolExecutor(12) as pool:
        results = list(pool.map(create, range(12)))
    assert {v.name for v in results} == {"models/fraud/versions/2"}
    assert len({v.uid for v in results}) == 1
    assert [v.version_number for v in client.list_versions("fraud", show_deleted=True)] == [
        1,
        2,
    ]
    assert client.get_model("fraud").latest_version_number == 2
    assert client.create_version("fraud").version_number == 3


def test_concurrent_model_create_retries_create_one_model(server: RegistryServer) -> None:
    with RegistryClient(server.address, retries=0) as client:
        barrier = threading.Barrier(8)

        def create(_: int) -> res.Model:
            barrier.wait(timeout=30)
            return client.create_model("fraud", request_id="model-rid")

        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(create, range(8)))
        assert len({m.uid for m in results}) == 1
        assert [m.name for m in client.list_models(show_deleted=True)] == ["models/fraud"]


def test_concurrent_creates_number_gaplessly(replica_clients: list[RegistryClient]) -> None:
    """Creates spread over the replicas (two on PostgreSQL) get every number once, no gaps."""
    threads, per_thread = 32, 3
    clients = replica_clients
    client = clients[0]
    client.create_model("fraud")
    barrier = threading.Barrier(threads)

    def create(i: int) -> list[int]:
        on = clients[i % len(clients)]
        barrier.wait(timeout=30)
        return [
            on.create_version("fraud", labels={"thread": str(i)}).version_number
            for _ in range(per_thread)
        ]

    with ThreadPoolExecutor(threads) as pool:
        numbers = [n for batch in pool.map(create, range(threads)) for n in batch]
    total = threads * per_thread
    assert sorted(numbers) == list(range(1, total + 1))
    for on in clients:  # every replica lists the same gapless sequence
        listed = list(on.list_versions("fraud", page_size=1000))
        assert [v.version_number for v in listed] == list(range(1, total + 1))
        assert len({v.uid for v in listed}) == total
        assert on.get_model("fraud").latest_version_number == total
    per_label: dict[str, int] = {}
    for v in listed:
        per_label[v.labels["thread"]] = per_label.get(v.labels["thread"], 0) + 1
    assert per_label == {str(i): per_thread for i in range(threads)}


# -- get / latest -----------------------------------------------------------------------------


def test_get_errors(client: RegistryClient) -> None:
    client.create_model("fraud")
    client.create_version("fraud")
    with unchanged(client):
        with expect_error(NotFoundError, "VERSION_NOT_FOUND"):
            client.get_version("fraud", 2)
        with expect_error(NotFoundError, "MODEL_NOT_FOUND"):
            client.get_version("nope", 1)
        with expect_error(NotFoundError, "MODEL_NOT_FOUND"):
            client.get_version("nope", "latest")
        with expect_error(NotFoundError, "ALIAS_NOT_FOUND"):
            client.get_version("fraud", "prod")
        with expect_error(NotFoundError, "VERSION_NOT_FOUND"):  # only a DRAFT exists
            client.get_version("fraud", "latest")
        for segment in ("0", "01", "-1", "Latest", "a_b", "1.5", "", "1/files/x"):
            with expect_error(InvalidArgumentError, "INVALID_ARGUMENT", field="name", case=segment):
                client.get_version(f"models/fraud/versions/{segment}")
        for name in ("models/fraud", "models/Fraud/versions/1", "fraud/versions/1"):
            with expect_error(InvalidArgumentError, "INVALID_ARGUMENT", field="name"):
                call(client, "GetModelVersion", mr.GetModelVersionRequest(name=name))


def test_latest_skips_draft_deleted_and_expired(client: RegistryClient) -> None:
    client.create_model("fraud")
    ready_version(client, "fraud")  # 1
    v2 = ready_version(client, "fraud", expire_time=PAST)  # 2: expired
    ready_version(client, "fraud")  # 3: deleted below
    client.create_version("fraud")  # 4: DRAFT
    client.delete_version("fraud", 3)
    assert client.get_version("fraud", "latest").version_number == 1

    # Expired versions stay readable by number and are flagged.
    got = client.get_version("fraud", 2)
    assert got.expired
    assert got.expire_time.ToDatetime(tzinfo=UTC) == PAST

    # Clearing expire_time makes 2 the latest; undeleting 3 makes it the latest.
    cleared = client.update_version(
        res.ModelVersion(name=v2.name, etag=got.etag), update_mask=["expire_time"]
    )
    assert not cleared.HasField("expire_time") and not cleared.expired
    assert client.get_version("fraud", "latest").version_number == 2
    client.undelete_version("fraud", 3)
    assert client.get_version("fraud", "latest").version_number == 3
    client.seal_version("fraud", 4)
    assert client.get_version("fraud", "latest").version_number == 4


def test_expired_flag_follows_expire_time(client: RegistryClient) -> None:
    client.create_model("fraud")
    v = ready_version(client, "fraud", expire_time=FUTURE)
    assert not v.expired
    assert client.get_version("fraud", "latest").version_number == 1
    assert version_numbers(client, "expired = false") == [1]

    past = datetime.now(UTC) - timedelta(seconds=1)
    moved = client.update_version(
        res.ModelVersion(
            name=v.name, expire_time=timestamp_pb2.Timestamp(seconds=int(past.timestamp()))
        ),
        update_mask=["expire_time"],
    )
    assert moved.expired and client.get_version("fraud", 1).expired
    assert version_numbers(client, "expired = true") == [1]
    with expect_error(NotFoundError, "VERSION_NOT_FOUND"):
        client.get_version("fraud", "latest")


def test_version_expires_when_its_time_passes(client: RegistryClient) -> None:
    client.create_model("fraud")
    ready_version(client, "fraud", expire_time=datetime.now(UTC) + timedelta(seconds=1))
    deadline = time.monotonic() + 15
    while not client.get_version("fraud", 1).expired:
        assert time.monotonic() < deadline, "version 1 never expired"
        time.sleep(0.05)  # polling interval, not synchronisation
    assert version_numbers(client, "expired = true") == [1]
    with expect_error(NotFoundError, "VERSION_NOT_FOUND"):
        client.get_version("fraud", "latest")


def version_numbers(client: RegistryClient, filter: str) -> list[int]:
    """Numbers of the versions of `fraud` matching ``filter``."""
    return [v.version_number for v in client.list_versions("fraud", filter=filter)]


# -- update -----------------------------------------------------------------------------------


@pytest.mark.usefixtures("upstream")
def test_update_every_field_of_draft(client: RegistryClient) -> None:
    client.create_model("fraud")
    before = client.create_version("fraud")
    template = client.create_version("fraud", **full_fields())  # type: ignore[arg-type]
    patch = res.ModelVersion()
    patch.CopyFrom(template)
    patch.name = before.name
    patch.etag = before.etag
    patch.produced_by[:] = [
        "models/upstream/versions/latest",
        "models/upstream/versions/golden",
        "models/upstream/versions/1",
    ]
    mask = [
        "description",
        "type",
        "author",
        "inputs",
        "outputs",
        "parameters",
        "dependencies",
        "produced_by",
        "metrics",
        "source",
        "datasets",
        "labels",
        "expire_time",
    ]
    updated = client.update_version(patch, update_mask=mask)
    check_full(updated)
    assert updated.name == before.name
    assert updated.uid == before.uid
    assert updated.create_time == before.create_time
    assert updated.etag != before.etag
    assert updated.update_time.ToDatetime() >= before.update_time.ToDatetime()
    assert client.get_version("fraud", 1) == updated


def test_update_implied_mask_and_map_entries(client: RegistryClient) -> None:
    client.create_model("fraud")
    client.create_version(
        "fraud", description="d", metrics={"acc": 0.5, "auc": 0.6}, labels={"a": "1", "b": "2"}
    )
    implied = client.update_version(
        res.ModelVersion(name="models/fraud/versions/1", type="PYTORCH"), update_mask=[]
    )
    assert implied.type == "PYTORCH" and implied.description == "d"
    assert dict(implied.metrics) == {"acc": 0.5, "auc": 0.6}
    entries = client.update_version(
        res.ModelVersion(
            name="models/fraud/versions/1", metrics={"acc": 0.9, "f1": 0.7}, labels={"c": "3"}
        ),
        update_mask=["metrics.acc", "metrics.f1", "metrics.auc", "labels.c", "labels.a"],
    )
    assert dict(entries.metrics) == {"acc": 0.9, "f1": 0.7}
    assert dict(entries.labels) == {"b": "2", "c": "3"}


def test_map_entries_cannot_exceed_the_limits(client: RegistryClient) -> None:
    client.create_model("fraud")
    v = ready_version(
        client,
        "fraud",
        metrics={f"m{i}": float(i) for i in range(256)},
        labels={f"k{i}": "v" for i in range(64)},
    )
    patch = res.ModelVersion(name=v.name, metrics={"extra": 1.0}, labels={"extra": "x"})
    with unchanged(client):
        with expect_error(InvalidArgumentError, "INVALID_ARGUMENT", field="model_version.metrics"):
            client.update_version(patch, update_mask=["metrics.extra"])
        with expect_error(InvalidArgumentError, "INVALID_ARGUMENT", field="model_version.labels"):
            client.update_version(patch, update_mask=["labels.extra"])
    swapped = client.update_version(
        patch, update_mask=["metrics.m0", "metrics.extra", "labels.k0", "labels.extra"]
    )
    assert len(swapped.metrics) == 256 and swapped.metrics["extra"] == 1.0
    assert len(swapped.labels) == 64 and "k0" not in swapped.labels


def test_ready_version_keeps_editable_fields_editable(client: RegistryClient) -> None:
    client.create_model("fraud")
    v = ready_version(client, "fraud", description="old", inputs=["x"], metrics={"acc": 0.1})
    updated = client.update_version(
        res.ModelVersion(
            name=v.name,
            etag=v.etag,
            description="new",
            type="ONNX",
            author="me",
            labels={"k": "v"},
            metrics={"acc": 0.2},
            expire_time=timestamp_pb2.Timestamp(seconds=4_102_444_800),
        ),
        update_mask="description,type,author,labels,metrics,expire_time",
    )
    assert (updated.description, updated.type, updated.author) == ("new", "ONNX", "me")
    assert dict(updated.labels) == {"k": "v"} and dict(updated.metrics) == {"acc": 0.2}
    assert updated.expire_time.seconds == 4_102_444_800
    assert [i.name for i in updated.inputs] == ["x"]
    assert updated.state == res.VERSION_STATE_READY


def test_star_mask_on_ready_version_updates_editable_fields_only(client: RegistryClient) -> None:
    client.create_model("fraud")
    v = ready_version(client, "fraud", inputs=["x"], description="old", labels={"k": "v"})
    updated = client.update_version(
        res.ModelVersion(name=v.name, description="new", inputs=[res.Variable(name="y")]),
        update_mask=["*"],
    )
    assert updated.description == "new"
    assert dict(updated.labels) == {}
    assert [i.name for i in updated.inputs] == ["x"]  # content is sealed, `*` leaves it


def test_star_mask_on_draft_replaces_everything(client: RegistryClient) -> None:
    client.create_model("fraud")
    v = client.create_version("fraud", inputs=["x"], description="old", source=("r", "c", "p"))
    updated = client.update_version(
        res.ModelVersion(name=v.name, outputs=[res.Variable(name="y")]), update_mask=["*"]
    )
    assert [o.name for o in updated.outputs] == ["y"]
    assert list(updated.inputs) == [] and updated.description == ""
    assert not updated.HasField("source")


def test_sealed_content_is_immutable(client: RegistryClient) -> None:
    client.create_model("fraud")
    v = ready_version(client, "fraud")
    with unchanged(client):
        for field in VERSION_CONTENT_FIELDS:
            with expect_error(FailedPreconditionError, "VERSION_SEALED", case=field):
                client.update_version(
                    res.ModelVersion(name=v.name), update_mask=[field, "description"]
                )


BAD_VERSION_MASKS = [
    ["name"],
    ["uid"],
    ["version_number"],
    ["aliases"],
    ["stage"],
    ["state"],
    ["manifest_digest"],
    ["expired"],
    ["create_time"],
    ["update_time"],
    ["delete_time"],
    ["purge_time"],
    ["etag"],
    ["file_count"],
    ["total_size_bytes"],
    ["description", "stage"],
    ["nope"],
    ["display_name"],
    ["inputs.name"],
    ["metrics."],
    ["metrics.1x"],
    ["labels.Bad"],
    ["*", "description"],
]


def test_update_bad_mask(client: RegistryClient) -> None:
    client.create_model("fraud")
    v = client.create_version("fraud", description="keep", metrics={"acc": 1.0})
    patch = res.ModelVersion(name=v.name, description="never", stage=res.STAGE_PRODUCTION)
    with unchanged(client):
        for mask in BAD_VERSION_MASKS:
            with expect_error(
                InvalidArgumentError, "INVALID_UPDATE_MASK", field="update_mask", case=mask
            ):
                client.update_version(patch, update_mask=mask)


def test_update_errors_change_nothing(client: RegistryClient) -> None:
    client.create_model("fraud")
    v1 = ready_version(client, "fraud")
    client.set_alias("fraud", "prod", 1)
    v2 = client.create_version("fraud")
    client.delete_version("fraud", 2)
    named = res.ModelVersion
    with unchanged(client):
        with expect_error(AbortedError, "ETAG_MISMATCH") as info:
            client.update_version(
                named(name=v1.name, etag=v2.etag, description="x"), update_mask=["description"]
            )
        assert info.value.metadata["current_etag"] == client.get_version("fraud", 1).etag
        for name in ("models/fraud/versions/latest", "models/fraud/versions/prod", "", "x"):
            with expect_error(InvalidArgumentError, "INVALID_ARGUMENT", field="model_version.name"):
                client.update_version(
                    named(name=name, description="x"), update_mask=["description"]
                )
        with expect_error(NotFoundError, "VERSION_NOT_FOUND"):
            client.update_version(
                named(name="models/fraud/versions/3", type="x"), update_mask=["type"]
            )
        with expect_error(NotFoundError, "MODEL_NOT_FOUND"):
            client.update_version(
                named(name="models/no/versions/1", type="x"), update_mask=["type"]
            )
        with expect_error(FailedPreconditionError, "VERSION_DELETED"):
            client.update_version(named(name=v2.name, type="x"), update_mask=["type"])
        with expect_error(InvalidArgumentError, "INVALID_UPDATE_MASK", field="update_mask"):
            client.update_version(named(name=v1.name), update_mask=[])
        with expect_error(
            InvalidArgumentError, "INVALID_ARGUMENT", field="model_version.metrics.a"
        ):
            client.update_version(
                named(name=v1.name, metrics={"a": math.nan}), update_mask=["metrics"]
            )
        with expect_error(InvalidArgumentError, "INVALID_ARGUMENT", field="model_version"):
            call(client, "UpdateModelVersion", mr.UpdateModelVersionRequest())


def test_update_produced_by_resolves_and_validates(client: RegistryClient) -> None:
    client.create_model("up")
    ready_version(client, "up")
    client.create_model("fraud")
    v = client.create_version("fraud")
    updated = client.update_version(
        res.ModelVersion(name=v.name, produced_by=["models/up/versions/latest"]),
        update_mask=["produced_by"],
    )
    assert list(updated.produced_by) == ["models/up/versions/1"]
    with (
        unchanged(client),
        expect_error(
            InvalidArgumentError, "INVALID_ARGUMENT", field="model_version.produced_by[1]"
        ),
    ):
        client.update_version(
            res.ModelVersion(
                name=v.name, produced_by=["models/up/versions/1", "models/up/versions/2"]
            ),
            update_mask=["produced_by"],
        )


# -- delete / undelete ------------------------------------------------------------------------


def test_delete_and_undelete(client: RegistryClient, server: RegistryServer) -> None:
    client.create_model("fraud")
    v = ready_version(client, "fraud")
    client.set_alias("fraud", "prod", 1)
    client.set_alias("fraud", "canary", 1)
    deleted = client.delete_version("fraud", 1, etag=client.get_version("fraud", 1).etag)
    assert deleted.HasField("delete_time")
    retention = timedelta(hours=server.config.retention_hours)
    assert deleted.purge_time.ToDatetime() - deleted.delete_time.ToDatetime() == retention
    assert list(deleted.aliases) == []
    assert client.list_aliases("fraud") == []
    assert client.get_version("fraud", 1) == deleted
    assert list(client.list_versions("fraud")) == []
    assert [x.name for x in client.list_versions("fraud", show_deleted=True)] == [v.name]
    with expect_error(NotFoundError, "VERSION_NOT_FOUND"):
        client.get_version("fraud", "latest")

    restored = client.undelete_version("fraud", 1, etag=deleted.etag)
    assert not restored.HasField("delete_time") and not restored.HasField("purge_time")
    assert restored.state == res.VERSION_STATE_READY
    assert list(restored.aliases) == []  # aliases are not restored
    assert client.get_version("fraud", "latest") == restored


def test_delete_undelete_errors(client: RegistryClient) -> None:
    client.create_model("fraud")
    v1 = ready_version(client, "fraud")
    client.set_alias("fraud", "prod", 1)
    client.create_version("fraud")
    client.delete_version("fraud", 2)
    with unchanged(client):
        with expect_error(FailedPreconditionError, "VERSION_DELETED"):
            client.delete_version("fraud", 2)
        with expect_error(FailedPreconditionError, "VERSION_NOT_DELETED"):
            client.undelete_version("fraud", 1)
        with expect_error(AbortedError, "ETAG_MISMATCH"):
            client.delete_version("fraud", 1, etag=v1.etag + "x")
        with expect_error(AbortedError, "ETAG_MISMATCH"):
            client.undelete_version("fraud", 2, etag=v1.etag)
        with expect_error(NotFoundError, "VERSION_NOT_FOUND"):
            client.delete_version("fraud", 9)
        with expect_error(NotFoundError, "VERSION_NOT_FOUND"):
            client.undelete_version("fraud", 9)
        with expect_error(NotFoundError, "MODEL_NOT_FOUND"):
            client.delete_version("nope", 1)
        for ref in ("latest", "prod", "0"):
            with expect_error(InvalidArgumentError, "INVALID_ARGUMENT", field="name"):
                client.delete_version("fraud", ref)
            with expect_error(InvalidArgumentError, "INVALID_ARGUMENT", field="name"):
                client.undelete_version("fraud", ref)


def test_undelete_version_of_deleted_model(client: RegistryClient) -> None:
    client.create_model("fraud")
    client.create_version("fraud")
    client.delete_model("fraud", force=True)
    with unchanged(client), expect_error(FailedPreconditionError, "MODEL_DELETED"):
        client.undelete_version("fraud", 1)


# -- seal -------------------------------------------------------------------------------------


def test_seal(client: RegistryClient) -> None:
    client.create_model("fraud")
    draft = client.create_version("fraud", inputs=["x"])
    data = b"weights" * 1000
    f = client.upload_file("fraud", 1, io.BytesIO(data))
    client.upload_file("fraud", 1, io.BytesIO(b"{}"), file_id="tokenizer/vocab.json")
    sealed = client.seal_version("fraud", 1, etag=client.get_version("fraud", 1).etag)
    assert sealed.state == res.VERSION_STATE_READY
    lines = (
        f"payload\t{len(data)}\t{f.sha256}\n"
        f"tokenizer/vocab.json\t2\t{hashlib.sha256(b'{}').hexdigest()}\n"
    )
    assert sealed.manifest_digest == "sha256:" + hashlib.sha256(lines.encode()).hexdigest()
    assert (sealed.file_count, sealed.total_size_bytes) == (2, len(data) + 2)
    assert sealed.etag != draft.etag
    assert sealed.stage == res.STAGE_DEVELOPMENT
    assert client.get_version("fraud", 1) == sealed
    assert client.get_version("fraud", "latest") == sealed


def test_seal_errors(client: RegistryClient) -> None:
    client.create_model("fraud")
    ready_version(client, "fraud")
    v2 = client.create_version("fraud")
    client.create_version("fraud")
    client.delete_version("fraud", 3)
    client.update_version(res.ModelVersion(name=v2.name, type="x"), update_mask=["type"])
    with unchanged(client):
        with expect_error(FailedPreconditionError, "VERSION_SEALED"):
            client.seal_version("fraud", 1)
        with expect_error(AbortedError, "ETAG_MISMATCH"):
            client.seal_version("fraud", 2, etag=v2.etag)
        with expect_error(FailedPreconditionError, "VERSION_DELETED"):
            client.seal_version("fraud", 3)
        with expect_error(NotFoundError, "VERSION_NOT_FOUND"):
            client.seal_version("fraud", 4)
        with expect_error(NotFoundError, "MODEL_NOT_FOUND"):
            client.seal_version("nope", 1)
        for ref in ("latest", "prod", "x_y"):
            with expect_error(InvalidArgumentError, "INVALID_ARGUMENT", field="name"):
                client.seal_version("fraud", ref)
