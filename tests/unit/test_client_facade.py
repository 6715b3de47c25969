"""The client's model/version/alias facade against an in-process fake ModelRegistry.

The fake records every request and answers with canned messages: these tests check what the
client sends (names, request ids, masks, conversions, deadline, metadata) and how it pages and
reports errors, not the registry's behaviour.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from concurrent import futures
from datetime import UTC, datetime
from typing import Any

import grpc
import pytest
from google.protobuf import empty_pb2, struct_pb2
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from modelregistry.client import (
    AbortedError,
    InvalidArgumentError,
    RegistryClient,
    channel_options,
    service_config,
)
from modelregistry.v1 import model_registry_pb2 as mr
from modelregistry.v1 import model_registry_pb2_grpc as mr_grpc
from modelregistry.v1 import resources_pb2 as res


class FakeRegistry(mr_grpc.ModelRegistryServicer):
    """Records requests; serves a fixed list of models in pages."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests: dict[str, list[Any]] = {}
        self.metadata: list[dict[str, str]] = []
        self.deadlines: list[float | None] = []
        self.models = [res.Model(name=f"models/m{i}") for i in range(5)]
        self.fail_creates = 0
        self.error: status_pb2.Status | None = None

    def _record(self, method: str, request: Message, context: grpc.ServicerContext) -> None:
        with self.lock:
            self.requests.setdefault(method, []).append(request)
            self.metadata.append({k: str(v) for k, v in context.invocation_metadata()})
            self.deadlines.append(context.time_remaining())
        if self.error is not None:
            context.abort_with_status(rpc_status.to_status(self.error))

    def CreateModel(
        self, request: mr.CreateModelRequest, context: grpc.ServicerContext
    ) -> res.Model:
        self._record("CreateModel", request, context)
        with self.lock:
            fail = self.fail_creates > 0
            self.fail_creates -= 1
        if fail:
            context.abort(grpc.StatusCode.UNAVAILABLE, "database restarting")
        model = res.Model()
        model.CopyFrom(request.model)
        model.name = f"models/{request.model_id}"
        return model

    def GetModel(self, request: mr.GetModelRequest, context: grpc.ServicerContext) -> res.Model:
        self._record("GetModel", request, context)
        return res.Model(name=request.name)

    def ListModels(
        self, request: mr.ListModelsRequest, context: grpc.ServicerContext
    ) -> mr.ListModelsResponse:
        self._record("ListModels", request, context)
        start = int(request.page_token or 0)
        end = start + (request.page_size or 50)
        token = str(end) if end < len(self.models) else ""
        return mr.ListModelsResponse(models=self.models[start:end], next_page_token=token)

    def UpdateModel(
        self, request: mr.UpdateModelRequest, context: grpc.ServicerContext
    ) -> res.Model:
        self._record("UpdateModel", request, context)
        return request.model

    def DeleteModel(
        self, request: mr.DeleteModelRequest, context: grpc.ServicerContext
    ) -> res.Model:
        self._record("DeleteModel", request, context)
        return res.Model(name=request.name)

    def UndeleteModel(
        self, request: mr.UndeleteModelRequest, context: grpc.ServicerContext
    ) -> res.Model:
        self._record("UndeleteModel", request, context)
        return res.Model(name=request.name)

    def CreateModelVersion(
        self, request: mr.CreateModelVersionRequest, context: grpc.ServicerContext
    ) -> res.ModelVersion:
        self._record("CreateModelVersion", request, context)
        version = res.ModelVersion()
        version.CopyFrom(request.model_version)
        version.name = f"{request.parent}/versions/1"
        return version

    def GetModelVersion(
        self, request: mr.GetModelVersionRequest, context: grpc.ServicerContext
    ) -> res.ModelVersion:
        self._record("GetModelVersion", request, context)
        return res.ModelVersion(name=request.name)

    def ListModelVersions(
        self, request: mr.ListModelVersionsRequest, context: grpc.ServicerContext
    ) -> mr.ListModelVersionsResponse:
        self._record("ListModelVersions", request, context)
        return mr.ListModelVersionsResponse(
            model_versions=[res.ModelVersion(name=f"{request.parent}/versions/1")]
        )

    def UpdateModelVersion(
        self, request: mr.UpdateModelVersionRequest, context: grpc.ServicerContext
    ) -> res.ModelVersion:
        self._record("UpdateModelVersion", request, context)
        return request.model_version

    def DeleteModelVersion(
        self, request: mr.DeleteModelVersionRequest, context: grpc.ServicerContext
    ) -> res.ModelVersion:
        self._record("DeleteModelVersion", request, context)
        return res.ModelVersion(name=request.name)

    def UndeleteModelVersion(
        self, request: mr.UndeleteModelVersionRequest, context: grpc.ServicerContext
    ) -> res.ModelVersion:
        self._record("UndeleteModelVersion", request, context)
        return res.ModelVersion(name=request.name)

    def SealModelVersion(
        self, request: mr.SealModelVersionRequest, context: grpc.ServicerContext
    ) -> res.ModelVersion:
        self._record("SealModelVersion", request, context)
        return res.ModelVersion(name=request.name, state=res.VERSION_STATE_READY)

    def TransitionModelVersionStage(
        self, request: mr.TransitionModelVersionStageRequest, context: grpc.ServicerContext
    ) -> res.ModelVersion:
        self._record("TransitionModelVersionStage", request, context)
        return res.ModelVersion(name=request.name, stage=request.stage)

    def ListStageTransitions(
        self, request: mr.ListStageTransitionsRequest, context: grpc.ServicerContext
    ) -> mr.ListStageTransitionsResponse:
        self._record("ListStageTransitions", request, context)
        if not request.page_token:
            return mr.ListStageTransitionsResponse(
                stage_transitions=[res.StageTransition(comment="first")], next_page_token="p2"
            )
        return mr.ListStageTransitionsResponse(
            stage_transitions=[res.StageTransition(comment="second")]
        )

    def SetAlias(self, request: mr.SetAliasRequest, context: grpc.ServicerContext) -> res.Alias:
        self._record("SetAlias", request, context)
        return request.alias

    def GetAlias(self, request: mr.GetAliasRequest, context: grpc.ServicerContext) -> res.Alias:
        self._record("GetAlias", request, context)
        return res.Alias(name=request.name)

    def ListAliases(
        self, request: mr.ListAliasesRequest, context: grpc.ServicerContext
    ) -> mr.ListAliasesResponse:
        self._record("ListAliases", request, context)
        return mr.ListAliasesResponse(
            aliases=[res.Alias(name=f"{request.parent}/aliases/{a}") for a in ("a", "b")]
        )

    def DeleteAlias(
        self, request: mr.DeleteAliasRequest, context: grpc.ServicerContext
    ) -> empty_pb2.Empty:
        self._record("DeleteAlias", request, context)
        return empty_pb2.Empty()

    def last(self, method: str) -> Any:
        return self.requests[method][-1]


@pytest.fixture
def fake() -> Iterator[tuple[FakeRegistry, int]]:
    servicer = FakeRegistry()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    mr_grpc.add_ModelRegistryServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield servicer, port
    server.stop(None)


@pytest.fixture
def registry(fake: tuple[FakeRegistry, int]) -> FakeRegistry:
    return fake[0]


@pytest.fixture
def client(fake: tuple[FakeRegistry, int]) -> Iterator[RegistryClient]:
    with RegistryClient(f"127.0.0.1:{fake[1]}", timeout=7.5, metadata=[("x-team", "fraud")]) as c:
        yield c


def test_constructor_makes_no_call() -> None:
    # Nothing listens on port 1: construction and close still succeed.
    with RegistryClient("127.0.0.1:1") as c:
        assert repr(c) == "RegistryClient('127.0.0.1:1')"


def test_constructor_validates_settings() -> None:
    with pytest.raises(ValueError, match="chunk_size"):
        RegistryClient(chunk_size=3 * 1024 * 1024)
    with pytest.raises(ValueError, match="retries"):
        RegistryClient(retries=-1)
    with pytest.raises(ValueError, match="timeouts"):
        RegistryClient(timeout=0)


def test_caller_owned_channel_is_not_closed(fake: tuple[FakeRegistry, int]) -> None:
    channel = grpc.insecure_channel(f"127.0.0.1:{fake[1]}", options=channel_options())
    with RegistryClient(channel=channel) as c:
        c.get_model("m")
    # Still usable after the client closed.
    with RegistryClient(channel=channel) as c:
        assert c.get_model("m").name == "models/m"
    channel.close()


def test_service_config_retries_only_idempotent_methods() -> None:
    config = service_config(5)
    (method_config,) = config["methodConfig"]
    names = {(n["service"].rsplit(".", 1)[1], n["method"]) for n in method_config["name"]}
    assert ("ModelRegistry", "CreateModel") in names
    assert ("ModelRegistry", "CreateModelVersion") in names
    assert ("ModelRegistry", "GetModelVersion") in names
    assert ("ModelRegistry", "ListModels") in names
    assert ("PayloadService", "GetUploadStatus") in names
    for unsafe in ("UpdateModel", "DeleteModel", "SealModelVersion", "SetAlias", "DeleteAlias"):
        assert ("ModelRegistry", unsafe) not in names
    for streaming in ("UploadFile", "DownloadFile"):
        assert ("PayloadService", streaming) not in names
    policy = method_config["retryPolicy"]
    assert policy["retryableStatusCodes"] == ["UNAVAILABLE"]
    assert policy["maxAttempts"] == 5
    assert service_config(1)["methodConfig"][0]["retryPolicy"]["maxAttempts"] == 2
    assert "retryPolicy" not in service_config(0)["methodConfig"][0]
    options = dict(channel_options())
    assert json.loads(options["grpc.service_config"]) == config
    assert options["grpc.max_receive_message_length"] == 16 * 1024 * 1024
    assert options["grpc.max_send_message_length"] == 16 * 1024 * 1024


def test_deadline_and_metadata_are_applied(client: RegistryClient, registry: FakeRegistry) -> None:
    client.get_model("m")
    assert registry.metadata[-1]["x-team"] == "fraud"
    remaining = registry.deadlines[-1]
    # gRPC rounds the propagated timeout up a little.
    assert remaining is not None and 5 < remaining < 8


def test_create_model_sends_fields_and_a_generated_request_id(
    client: RegistryClient, registry: FakeRegistry
) -> None:
    model = client.create_model(
        "fraud",
        display_name="Fraud",
        description="d",
        type="classifier",
        author="ana",
        labels={"team": "risk"},
    )
    request = registry.last("CreateModel")
    assert request.model_id == "fraud"
    assert request.model.display_name == "Fraud"
    assert request.model.type == "classifier"
    assert dict(request.model.labels) == {"team": "risk"}
    assert 1 <= len(request.request_id) <= 128
    assert model.name == "models/fraud"

    client.create_model("other", request_id="my-id")
    assert registry.last("CreateModel").request_id == "my-id"
    client.create_model("third")
    ids = [r.request_id for r in registry.requests["CreateModel"]]
    assert len(set(ids)) == 3


def test_retried_create_reuses_its_request_id(
    client: RegistryClient, registry: FakeRegistry
) -> None:
    registry.fail_creates = 2
    client.create_model("fraud")
    ids = [r.request_id for r in registry.requests["CreateModel"]]
    assert len(ids) == 3
    assert len(set(ids)) == 1


def test_get_model_accepts_id_or_name(client: RegistryClient, registry: FakeRegistry) -> None:
    client.get_model("fraud")
    assert registry.last("GetModel").name == "models/fraud"
    client.get_model("models/fraud")
    assert registry.last("GetModel").name == "models/fraud"


def test_list_models_pages_lazily(client: RegistryClient, registry: FakeRegistry) -> None:
    models = client.list_models(filter='type = "x"', order_by="model_id desc", page_size=2)
    assert "ListModels" not in registry.requests
    first = next(models)
    assert first.name == "models/m0"
    assert len(registry.requests["ListModels"]) == 1
    rest = list(models)
    assert [m.name for m in rest] == [f"models/m{i}" for i in range(1, 5)]
    requests = registry.requests["ListModels"]
    assert [r.page_token for r in requests] == ["", "2", "4"]
    assert all(r.filter == 'type = "x"' and r.order_by == "model_id desc" for r in requests)
    assert all(r.page_size == 2 for r in requests)


def test_list_models_page_returns_the_token(client: RegistryClient) -> None:
    page = client.list_models_page(page_size=3, show_deleted=True)
    assert len(page.models) == 3
    assert page.next_page_token == "3"
    page = client.list_models_page(page_size=3, page_token=page.next_page_token)
    assert len(page.models) == 2 and page.next_page_token == ""


def test_update_model_mask(client: RegistryClient, registry: FakeRegistry) -> None:
    model = res.Model(name="models/fraud", display_name="New", etag="e1")
    client.update_model(model, update_mask=["display_name", "labels.team"])
    request = registry.last("UpdateModel")
    assert list(request.update_mask.paths) == ["display_name", "labels.team"]
    assert request.model.etag == "e1"
    client.update_model(model, update_mask="display_name, description")
    assert list(registry.last("UpdateModel").update_mask.paths) == [
        "display_name",
        "description",
    ]


def test_delete_and_undelete_model(client: RegistryClient, registry: FakeRegistry) -> None:
    client.delete_model("fraud", etag="e", force=True)
    request = registry.last("DeleteModel")
    assert (request.name, request.etag, request.force) == ("models/fraud", "e", True)
    client.undelete_model("models/fraud", etag="e2")
    request = registry.last("UndeleteModel")
    assert (request.name, request.etag) == ("models/fraud", "e2")


def test_create_version_converts_simple_values(
    client: RegistryClient, registry: FakeRegistry
) -> None:
    expire = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    client.create_version(
        "fraud",
        description="v",
        type="ONNX",
        author="ana",
        inputs=[("image", "float32[1,224,224,3]"), {"name": "threshold", "value": 0.5}],
        outputs=["score"],
        parameters={"lr": 0.01, "layers": [64, 32], "opt": {"name": "adam"}},
        dependencies=[("torch", "2.3", "library"), {"name": "python", "kind": "RUNTIME"}],
        produced_by=["models/features/versions/3", ("embed", 2)],
        metrics={"auc": 0.91},
        source=("https://git.example/repo", "abc123", "train.py"),
        datasets=["s3://bucket/train", ("s3://bucket/test", "sha256:00", "test")],
        labels={"team": "risk"},
        expire_time=expire,
    )
    request = registry.last("CreateModelVersion")
    version = request.model_version
    assert request.parent == "models/fraud"
    assert request.request_id
    assert (version.description, version.type, version.author) == ("v", "ONNX", "ana")
    assert [(v.name, v.type) for v in version.inputs] == [
        ("image", "float32[1,224,224,3]"),
        ("threshold", ""),
    ]
    assert version.inputs[1].value.number_value == 0.5
    assert [v.name for v in version.outputs] == ["score"]
    assert version.parameters["lr"] == 0.01
    assert list(version.parameters["layers"]) == [64, 32]
    assert version.parameters["opt"]["name"] == "adam"
    assert [(d.name, d.version, d.kind) for d in version.dependencies] == [
        ("torch", "2.3", res.DEPENDENCY_KIND_LIBRARY),
        ("python", "", res.DEPENDENCY_KIND_RUNTIME),
    ]
    assert list(version.produced_by) == [
        "models/features/versions/3",
        "models/embed/versions/2",
    ]
    assert dict(version.metrics) == {"auc": 0.91}
    assert (version.source.repository, version.source.commit, version.source.path) == (
        "https://git.example/repo",
        "abc123",
        "train.py",
    )
    assert [(d.uri, d.digest, d.role) for d in version.datasets] == [
        ("s3://bucket/train", "", res.DATASET_ROLE_UNSPECIFIED),
        ("s3://bucket/test", "sha256:00", res.DATASET_ROLE_TEST),
    ]
    assert version.expire_time.ToDatetime(tzinfo=UTC) == expire
    assert dict(version.labels) == {"team": "risk"}


def test_create_version_accepts_messages(client: RegistryClient, registry: FakeRegistry) -> None:
    params = struct_pb2.Struct()
    params.update({"k": "v"})
    client.create_version(
        "fraud",
        inputs=[res.Variable(name="x")],
        dependencies=[res.Dependency(name="numpy")],
        source=res.SourceCode(repository="r"),
        datasets=[res.DatasetReference(uri="u")],
        parameters=params,
    )
    version = registry.last("CreateModelVersion").model_version
    assert version.inputs[0].name == "x"
    assert version.dependencies[0].name == "numpy"
    assert version.source.repository == "r"
    assert version.datasets[0].uri == "u"
    assert version.parameters["k"] == "v"
    assert not version.HasField("expire_time")


def test_create_version_rejects_unusable_values(client: RegistryClient) -> None:
    with pytest.raises(ValueError):
        client.create_version("fraud", inputs=[("a", "b", "c", 1, "extra")])
    with pytest.raises(ValueError):
        client.create_version("fraud", dependencies=[{"name": "x", "kind": "nonsense"}])
    with pytest.raises(TypeError):
        client.create_version("fraud", inputs=[res.Dependency(name="x")])  # type: ignore[list-item]  # wrong message on purpose


def test_version_names(client: RegistryClient, registry: FakeRegistry) -> None:
    client.get_version("fraud")
    assert registry.last("GetModelVersion").name == "models/fraud/versions/latest"
    client.get_version("fraud", 3)
    assert registry.last("GetModelVersion").name == "models/fraud/versions/3"
    client.get_version("fraud", "champion")
    assert registry.last("GetModelVersion").name == "models/fraud/versions/champion"
    client.get_version("models/fraud/versions/7")
    assert registry.last("GetModelVersion").name == "models/fraud/versions/7"
    client.seal_version("fraud", 2, etag="e")
    assert registry.last("SealModelVersion").name == "models/fraud/versions/2"
    assert registry.last("SealModelVersion").etag == "e"
    client.delete_version("fraud", 2)
    assert registry.last("DeleteModelVersion").name == "models/fraud/versions/2"
    client.undelete_version("models/fraud", 2, etag="x")
    assert registry.last("UndeleteModelVersion").name == "models/fraud/versions/2"
    with pytest.raises(TypeError):
        client.get_version("fraud", 1.5)  # type: ignore[arg-type]  # wrong type on purpose


def test_list_versions(client: RegistryClient, registry: FakeRegistry) -> None:
    versions = list(client.list_versions(filter="stage = PRODUCTION", show_deleted=True))
    request = registry.last("ListModelVersions")
    assert request.parent == "models/-"
    assert request.filter == "stage = PRODUCTION" and request.show_deleted
    assert [v.name for v in versions] == ["models/-/versions/1"]
    page = client.list_versions_page("fraud", page_size=10, order_by="metrics.auc desc")
    assert registry.last("ListModelVersions").parent == "models/fraud"
    assert page.next_page_token == ""


def test_update_version(client: RegistryClient, registry: FakeRegistry) -> None:
    version = res.ModelVersion(name="models/fraud/versions/1", description="d")
    client.update_version(version, update_mask=["description"])
    request = registry.last("UpdateModelVersion")
    assert request.model_version.description == "d"
    assert list(request.update_mask.paths) == ["description"]


@pytest.mark.parametrize(
    "stage", ["PRODUCTION", "production", "STAGE_PRODUCTION", res.STAGE_PRODUCTION, 3]
)
def test_transition_stage_accepts_names_and_enums(
    client: RegistryClient, registry: FakeRegistry, stage: Any
) -> None:
    version = client.transition_stage("fraud", 1, stage, comment="ship it", etag="e")
    request = registry.last("TransitionModelVersionStage")
    assert request.stage == res.STAGE_PRODUCTION
    assert (request.name, request.comment, request.etag) == (
        "models/fraud/versions/1",
        "ship it",
        "e",
    )
    assert version.stage == res.STAGE_PRODUCTION


def test_transition_stage_rejects_unknown_names(client: RegistryClient) -> None:
    with pytest.raises(ValueError, match="PRODUCTION"):
        client.transition_stage("fraud", 1, "prod")


def test_list_stage_transitions_pages(client: RegistryClient, registry: FakeRegistry) -> None:
    transitions = list(client.list_stage_transitions("fraud", 1))
    assert [t.comment for t in transitions] == ["first", "second"]
    requests = registry.requests["ListStageTransitions"]
    assert [(r.parent, r.page_token) for r in requests] == [
        ("models/fraud/versions/1", ""),
        ("models/fraud/versions/1", "p2"),
    ]


def test_aliases(client: RegistryClient, registry: FakeRegistry) -> None:
    alias = client.set_alias("fraud", "champion", 3)
    assert alias.name == "models/fraud/aliases/champion"
    assert alias.version == "models/fraud/versions/3"
    client.set_alias("fraud", "prev", "latest")
    assert registry.last("SetAlias").alias.version == "models/fraud/versions/latest"
    client.get_alias("fraud", "champion")
    assert registry.last("GetAlias").name == "models/fraud/aliases/champion"
    aliases = client.list_aliases("fraud")
    assert isinstance(aliases, list)
    assert [a.name for a in aliases] == ["models/fraud/aliases/a", "models/fraud/aliases/b"]
    client.delete_alias("fraud", "champion")
    assert registry.last("DeleteAlias").name == "models/fraud/aliases/champion"


def test_server_errors_are_translated(client: RegistryClient, registry: FakeRegistry) -> None:
    status = status_pb2.Status(code=grpc.StatusCode.ABORTED.value[0], message="etag is stale")
    status.details.add().Pack(
        error_details_pb2.ErrorInfo(
            reason="ETAG_MISMATCH", domain="modelregistry.v1", metadata={"etag": "e9"}
        )
    )
    registry.error = status
    with pytest.raises(AbortedError) as caught:
        client.update_model(res.Model(name="models/fraud", etag="e1"), update_mask=["*"])
    err = caught.value
    assert err.reason == "ETAG_MISMATCH"
    assert err.metadata == {"etag": "e9"}
    assert err.message == "etag is stale"
    assert isinstance(err.__cause__, grpc.RpcError)


def test_field_violations_are_translated(client: RegistryClient, registry: FakeRegistry) -> None:
    status = status_pb2.Status(code=grpc.StatusCode.INVALID_ARGUMENT.value[0], message="bad")
    status.details.add().Pack(
        error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(
                    field="model_id", description="must match [a-z][a-z0-9-]{0,62}"
                )
            ]
        )
    )
    registry.error = status
    with pytest.raises(InvalidArgumentError) as caught:
        client.create_model("Bad_Id")
    assert caught.value.field_violations == [("model_id", "must match [a-z][a-z0-9-]{0,62}")]
