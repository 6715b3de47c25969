"""Values the wire accepts but the registry cannot store or return: each one is
INVALID_ARGUMENT naming the field (or NOT_FOUND), never INTERNAL, and changes nothing."""

from __future__ import annotations

import math

import grpc
import pytest

from modelregistry.client import InvalidArgumentError, NotFoundError, RegistryClient, from_rpc_error
from modelregistry.v1 import model_registry_pb2 as mr
from modelregistry.v1 import payload_pb2 as pl
from modelregistry.v1 import resources_pb2 as res
from modelregistry_server.app import RegistryServer
from tests.api.registry_helpers import call, expect_error, unchanged
from tests.api.test_fuzz import all_methods

NON_FINITE = [math.nan, math.inf, -math.inf]


def _raw_call(server: RegistryServer, path: str, stream: bool, responses: bool, data: list[bytes]):
    with grpc.insecure_channel(server.address) as channel:
        if stream:
            result = channel.stream_unary(path)(iter(data), timeout=30)
        elif responses:
            result = list(channel.unary_stream(path)(data[0], timeout=30))
        else:
            result = channel.unary_unary(path)(data[0], timeout=30)
    return result


@pytest.mark.parametrize(("service", "method"), all_methods(), ids=lambda x: x.name)
def test_undecodable_request_is_invalid_argument(
    server: RegistryServer, client: RegistryClient, service, method
) -> None:
    """Bytes that are not the request message (a truncated varint) are MALFORMED_REQUEST."""
    client.create_model("m1")
    path = f"/{service.full_name}/{method.name}"
    with unchanged(client), expect_error(InvalidArgumentError, "MALFORMED_REQUEST"):
        try:
            _raw_call(server, path, method.client_streaming, method.server_streaming, [b"\x08"])
        except grpc.RpcError as err:
            raise from_rpc_error(err) from err


def test_undecodable_message_mid_stream_is_invalid_argument(
    server: RegistryServer, client: RegistryClient
) -> None:
    client.create_model("m1")
    client.create_version("m1")
    header = pl.UploadFileRequest(
        header=pl.UploadHeader(name="models/m1/versions/1/files/payload", upload_id="u1")
    )
    chunk = pl.UploadFileRequest(chunk=pl.UploadChunk(offset=0, data=b"abc"))
    data = [header.SerializeToString(), chunk.SerializeToString(), b"\x12\xff"]
    with expect_error(InvalidArgumentError, "MALFORMED_REQUEST"):
        try:
            _raw_call(server, "/modelregistry.v1.PayloadService/UploadFile", True, False, data)
        except grpc.RpcError as err:
            raise from_rpc_error(err) from err
    assert client.list_files_page("m1", 1).files == []


def _version_with(path: str, value: float) -> res.ModelVersion:
    version = res.ModelVersion()
    if path == "parameters.x":
        version.parameters["x"] = value
    elif path == "parameters.deep.list[1]":
        version.parameters["deep"] = {"list": [1.0, value]}
    else:  # inputs[0].value
        version.inputs.add(name="x").value.number_value = value
    return version


@pytest.mark.parametrize("value", NON_FINITE, ids=["nan", "inf", "-inf"])
@pytest.mark.parametrize("path", ["parameters.x", "parameters.deep.list[1]", "inputs[0].value"])
def test_non_finite_numbers_in_struct_values(
    client: RegistryClient, path: str, value: float
) -> None:
    client.create_model("m1")
    draft = client.create_version("m1")
    request = mr.CreateModelVersionRequest(
        parent="models/m1", model_version=_version_with(path, value)
    )
    with (
        unchanged(client),
        expect_error(InvalidArgumentError, "INVALID_ARGUMENT", field=f"model_version.{path}"),
    ):
        call(client, "CreateModelVersion", request)
    update = _version_with(path, value)
    update.name = draft.name
    mask = path.split(".")[0].split("[")[0]
    with (
        unchanged(client),
        expect_error(InvalidArgumentError, "INVALID_ARGUMENT", field=f"model_version.{path}"),
    ):
        call(
            client,
            "UpdateModelVersion",
            mr.UpdateModelVersionRequest(model_version=update, update_mask={"paths": [mask]}),
        )


@pytest.mark.parametrize("number", ["9223372036854775808", "18446744073709551616", "9" * 40])
def test_version_numbers_beyond_64_bits(client: RegistryClient, number: str) -> None:
    client.create_model("m1")
    name = f"models/m1/versions/{number}"
    for method, request in [
        ("GetModelVersion", mr.GetModelVersionRequest(name=name)),
        ("DeleteModelVersion", mr.DeleteModelVersionRequest(name=name)),
        ("ListStageTransitions", mr.ListStageTransitionsRequest(parent=name)),
    ]:
        with expect_error(InvalidArgumentError, "INVALID_ARGUMENT", case=method):
            call(client, method, request)
    with expect_error(InvalidArgumentError, "INVALID_ARGUMENT", field="name"):
        client.get_file("m1", int(number))


def test_largest_version_number_is_not_found(client: RegistryClient) -> None:
    client.create_model("m1")
    with expect_error(NotFoundError, "VERSION_NOT_FOUND"):
        client.get_version("m1", 2**63 - 1)
