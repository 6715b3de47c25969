"""The client's gRPC channel: message limits and the service config that retries idempotent
calls.

Pass :func:`channel_options` to ``grpc.secure_channel`` when building a channel yourself for
``RegistryClient(channel=…)``.
"""

from __future__ import annotations

import json
from typing import Any, Final

import grpc
from google.protobuf.descriptor import FileDescriptor

from modelregistry.v1 import access_pb2 as ac
from modelregistry.v1 import events_pb2 as ev
from modelregistry.v1 import model_registry_pb2 as mr
from modelregistry.v1 import payload_pb2 as pl
from modelregistry.v1 import webhooks_pb2 as wh

__all__ = ["MAX_MESSAGE_SIZE", "channel_options", "open_channel", "service_config"]

#: Largest message the channel sends or receives.
MAX_MESSAGE_SIZE: Final = 16 << 20
# gRPC caps retry attempts (the first call included) at 5.
_MAX_GRPC_ATTEMPTS: Final = 5


def _idempotent_methods() -> list[dict[str, str]]:
    """Unary methods safe to retry: reads, and creates (they carry request ids)."""
    names: list[dict[str, str]] = []
    files: tuple[tuple[FileDescriptor, str], ...] = (
        (mr.DESCRIPTOR, "ModelRegistry"),
        (pl.DESCRIPTOR, "PayloadService"),
        (ac.DESCRIPTOR, "AccessService"),
        (ev.DESCRIPTOR, "EventService"),
        (wh.DESCRIPTOR, "WebhookService"),
    )
    for file, service_name in files:
        service = file.services_by_name[service_name]
        for method in service.methods:
            if method.client_streaming or method.server_streaming:
                continue
            if (
                method.name.startswith(("Get", "List", "Verify"))
                or "request_id" in method.input_type.fields_by_name
            ):
                names.append({"service": service.full_name, "method": method.name})
    return names


def service_config(retries: int = 5) -> dict[str, Any]:
    """The gRPC service config: retry UNAVAILABLE on idempotent unary methods.

    ``retries`` is the number of retries after the first attempt; gRPC allows at most 4.
    """
    method_config: dict[str, Any] = {"name": _idempotent_methods()}
    if retries > 0:
        method_config["retryPolicy"] = {
            "maxAttempts": min(retries + 1, _MAX_GRPC_ATTEMPTS),
            "initialBackoff": "0.1s",
            "maxBackoff": "5s",
            "backoffMultiplier": 2,
            "retryableStatusCodes": ["UNAVAILABLE"],
        }
    return {"methodConfig": [method_config]}


def channel_options(retries: int = 5) -> list[tuple[str, Any]]:
    """Channel options the client uses: service config with retries and 16 MiB messages.

    Pass them to ``grpc.secure_channel`` when building a channel for ``RegistryClient(channel=…)``.
    """
    return [
        ("grpc.service_config", json.dumps(service_config(retries))),
        ("grpc.enable_retries", 1 if retries > 0 else 0),
        ("grpc.max_receive_message_length", MAX_MESSAGE_SIZE),
        ("grpc.max_send_message_length", MAX_MESSAGE_SIZE),
    ]


def open_channel(
    target: str, credentials: grpc.ChannelCredentials | None, retries: int
) -> grpc.Channel:
    """A channel to ``target`` with :func:`channel_options`; TLS when ``credentials`` are given.

    Opening makes no network call: gRPC connects on the first RPC.
    """
    options = channel_options(retries)
    if credentials is None:
        return grpc.insecure_channel(target, options=options)
    return grpc.secure_channel(target, credentials, options=options)
