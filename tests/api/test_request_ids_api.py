"""Request ids are bound to the request they came with: a retry of the same request returns
the first result; the same id with a different body is INVALID_ARGUMENT REQUEST_ID_REUSED and
changes nothing. Covers every RPC with a ``request_id`` (CreateModel, CreateModelVersion)."""

from __future__ import annotations

from typing import Any

import pytest
from google.protobuf.message import Message

from modelregistry.client import InvalidArgumentError, RegistryClient
from modelregistry.v1 import model_registry_pb2 as mr
from modelregistry.v1 import resources_pb2 as res
from modelregistry_server.api.fingerprints import request_fingerprint
from tests.api.registry_helpers import call, expect_error, unchanged

RPCS_WITH_REQUEST_ID = {"CreateModel", "CreateModelVersion"}


def test_every_rpc_with_a_request_id_is_covered() -> None:
    service = mr.DESCRIPTOR.services_by_name["ModelRegistry"]
    found = {m.name for m in service.methods if "request_id" in m.input_type.fields_by_name}
    assert found == RPCS_WITH_REQUEST_ID


def _model(labels: dict[str, str], **fields: Any) -> mr.CreateModelRequest:
    request = mr.CreateModelRequest(model_id="fraud", request_id="rid-m", **fields)
    for key, value in labels.items():  # insertion order differs between callers
        request.model.labels[key] = value
    return request


def test_create_model_retry_and_reuse(client: RegistryClient) -> None:
    first = call(client, "CreateModel", _model({"a": "1", "b": "2"}))
    # The same request, its map entries added in another order: the first result.
    again = call(client, "CreateModel", _model({"b": "2", "a": "1"}))
    assert again == first
    changed = [
        _model({"a": "1", "b": "3"}),
        _model({"a": "1"}),
        mr.CreateModelRequest(model_id="other", request_id="rid-m"),
        _model(
            {"a": "1", "b": "2"}, model=res.Model(display_name="x", labels={"a": "1", "b": "2"})
        ),
    ]
    for i, request in enumerate(changed):
        with (
            unchanged(client),
            expect_error(InvalidArgumentError, "REQUEST_ID_REUSED", field="request_id", case=i),
        ):
            call(client, "CreateModel", request)
    # Still the first result after the model changed: the id names that creation.
    client.update_model(
        res.Model(name="models/fraud", display_name="renamed"), update_mask=["display_name"]
    )
    assert call(client, "CreateModel", _model({"a": "1", "b": "2"})).uid == first.uid


def _version(parent: str = "models/fraud", **fields: Any) -> mr.CreateModelVersionRequest:
    return mr.CreateModelVersionRequest(
        parent=parent, request_id="rid-v", model_version=res.ModelVersion(**fields)
    )


def test_create_version_retry_and_reuse(client: RegistryClient) -> None:
    client.create_model("fraud")
    client.create_model("other")
    metrics = {"auc": 0.9, "loss": 0.1}
    first = call(client, "CreateModelVersion", _version(description="v", metrics=metrics))
    again = call(
        client,
        "CreateModelVersion",
        _version(description="v", metrics=dict(reversed(metrics.items()))),
    )
    assert again == first
    for i, request in enumerate(
        [
            _version(description="w", metrics=metrics),
            _version(description="v", metrics={"auc": 0.91, "loss": 0.1}),
            _version("models/other", description="v", metrics=metrics),
        ]
    ):
        with (
            unchanged(client),
            expect_error(InvalidArgumentError, "REQUEST_ID_REUSED", field="request_id", case=i),
        ):
            call(client, "CreateModelVersion", request)
    assert [v.version_number for v in client.list_versions("-")] == [1]


def test_the_client_wrapper_replays_equal_calls(client: RegistryClient) -> None:
    """What the wrapper sends for equal arguments (and resends on a retry) replays."""
    model = client.create_model("fraud", labels={"x": "1", "y": "2"}, request_id="wrapped")
    assert client.create_model("fraud", labels={"y": "2", "x": "1"}, request_id="wrapped") == model
    params = {"lr": 0.1, "layers": [64, 32]}
    version = client.create_version("fraud", parameters=params, request_id="wrapped-v")
    again = client.create_version(
        "fraud", parameters=dict(reversed(params.items())), request_id="wrapped-v"
    )
    assert again == version
    with expect_error(InvalidArgumentError, "REQUEST_ID_REUSED"):
        client.create_version("fraud", parameters={"lr": 0.2}, request_id="wrapped-v")


@pytest.mark.parametrize(
    "request_message",
    [_model({"a": "1"}), _version(description="d")],
    ids=["CreateModel", "CreateModelVersion"],
)
def test_the_fingerprint_ignores_only_the_request_id(request_message: Message) -> None:
    other_id = type(request_message)()
    other_id.CopyFrom(request_message)
    other_id.request_id = "another"  # type: ignore[attr-defined]
    assert request_fingerprint(other_id) == request_fingerprint(request_message)
    assert request_fingerprint(request_message).startswith("sha256:")
