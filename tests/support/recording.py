"""A client interceptor that records every request a client sends, by method name: valid
requests of every RPC, for tests that replay them (the fuzz test, the security matrix)."""

from __future__ import annotations

import grpc
from google.protobuf import descriptor_pool, message_factory
from google.protobuf.message import Message

import modelregistry.v1.payload_pb2  # noqa: F401  (registers the request types looked up below)


def _as_message(path: str, request: object) -> Message:
    """A request as its message: the client sends some already serialised (upload chunks)."""
    if isinstance(request, Message):
        return request
    assert isinstance(request, bytes), type(request)
    full = path.strip("/").replace("/", ".")
    method = descriptor_pool.Default().FindMethodByName(full)
    message: Message = message_factory.GetMessageClass(method.input_type).FromString(request)
    return message


class Recorder(
    grpc.UnaryUnaryClientInterceptor,  # type: ignore[type-arg]
    grpc.UnaryStreamClientInterceptor,  # type: ignore[type-arg]
    grpc.StreamUnaryClientInterceptor,  # type: ignore[type-arg]
):
    """Keeps every request the seeding client sends, by method: the corpus to perturb."""

    def __init__(self) -> None:
        self.corpus: dict[str, list[list[Message]]] = {}

    def _keep(self, details: grpc.ClientCallDetails, requests: list[Message]) -> None:
        self.corpus.setdefault(details.method.rsplit("/", 1)[-1], []).append(requests)

    def intercept_unary_unary(self, continuation, details, request):  # type: ignore[no-untyped-def]
        self._keep(details, [request])
        return continuation(details, request)

    def intercept_unary_stream(self, continuation, details, request):  # type: ignore[no-untyped-def]
        self._keep(details, [request])
        return continuation(details, request)

    def intercept_stream_unary(self, continuation, details, requests):  # type: ignore[no-untyped-def]
        kept = list(requests)
        self._keep(details, [_as_message(details.method, r) for r in kept])
        return continuation(details, iter(kept))

    def by_method(self) -> dict[str, list[Message]]:
        """The first request list recorded for each method."""
        return {method: calls[0] for method, calls in self.corpus.items()}
