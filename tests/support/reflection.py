"""Server reflection clients for both versions: grpcio-reflection's descriptor database (which
speaks v1alpha) pointed at ``grpc.reflection.v1`` or ``v1alpha``, and a raw v1 stub whose
messages are built from the v1 descriptors the server registers."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import grpc
from google.protobuf import message_factory
from grpc_reflection.v1alpha import reflection_pb2
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

from modelregistry_server.api.reflection import V1, V1_SERVICE, V1ALPHA

VERSIONS = {"v1": V1, "v1alpha": V1ALPHA}
_V1_REQUEST = message_factory.GetMessageClass(V1_SERVICE.methods[0].input_type)
_V1_RESPONSE = message_factory.GetMessageClass(V1_SERVICE.methods[0].output_type)


class _Stub:
    """What the database calls, on the service of ``version``."""

    def __init__(self, channel: grpc.Channel, service: str) -> None:
        self.ServerReflectionInfo = channel.stream_stream(
            f"/{service}/ServerReflectionInfo",
            request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
            response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
        )


def descriptor_database(channel: grpc.Channel, version: str) -> ProtoReflectionDescriptorDatabase:
    """grpcio-reflection's database, asking the reflection service of ``version``."""
    database = ProtoReflectionDescriptorDatabase(channel)
    database._stub = _Stub(channel, VERSIONS[version])  # type: ignore[assignment]  # the same protocol
    return database


def v1_replies(
    channel: grpc.Channel, requests: Sequence[dict[str, Any]], metadata: Sequence[tuple[str, str]]
) -> Iterator[Any]:
    """Raw ``grpc.reflection.v1`` calls: v1 messages, not v1alpha ones."""
    call = channel.stream_stream(
        f"/{V1}/ServerReflectionInfo",
        request_serializer=_V1_REQUEST.SerializeToString,
        response_deserializer=_V1_RESPONSE.FromString,
    )
    return iter(call(iter([_V1_REQUEST(**r) for r in requests]), timeout=10, metadata=metadata))


def list_services(
    address: str, version: str, metadata: Sequence[tuple[str, str]] = ()
) -> list[str]:
    """The services the reflection service of ``version`` lists."""
    with grpc.insecure_channel(address) as channel:
        if version == "v1":
            replies = list(v1_replies(channel, [{"list_services": ""}], metadata))
        else:
            stub = _Stub(channel, V1ALPHA)
            request = reflection_pb2.ServerReflectionRequest(list_services="")
            replies = list(
                stub.ServerReflectionInfo(iter([request]), timeout=10, metadata=metadata)
            )
    return [s.name for reply in replies for s in reply.list_services_response.service]
