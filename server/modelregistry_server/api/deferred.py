"""Services registered before their backends exist: UNAVAILABLE until they are installed.

A server whose database cannot be reached at start-up still listens (health NOT_SERVING) and
keeps trying; the services' handlers are installed into this gate once it connects. Until
then every call of a gated service is UNAVAILABLE ``BACKEND_UNAVAILABLE``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Any, cast

import grpc
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor

from ..domain.errors import Unavailable

if TYPE_CHECKING:
    GenericHandler = grpc.GenericRpcHandler[Any, Any]
    Handler = grpc.RpcMethodHandler[Any, Any]
else:
    GenericHandler = grpc.GenericRpcHandler
    Handler = grpc.RpcMethodHandler

Scope = Callable[[], AbstractContextManager[None]]


class _Collector:
    """Stands in for a server in the generated ``add_*_to_server`` functions."""

    def __init__(self) -> None:
        self.handlers: list[GenericHandler] = []

    def add_generic_rpc_handlers(self, handlers: Sequence[GenericHandler]) -> None:
        self.handlers.extend(handlers)

    def add_registered_method_handlers(self, _service: str, _handlers: object) -> None:
        """The generic handlers above cover every method."""


def _not_ready(method: MethodDescriptor) -> Handler:
    def refuse(_request: Any, _context: grpc.ServicerContext) -> Any:
        raise Unavailable("the service is starting: its database cannot be reached yet")

    if method.client_streaming and method.server_streaming:
        return grpc.stream_stream_rpc_method_handler(refuse)
    if method.client_streaming:
        return grpc.stream_unary_rpc_method_handler(refuse)
    if method.server_streaming:
        return grpc.unary_stream_rpc_method_handler(refuse)
    return grpc.unary_unary_rpc_method_handler(refuse)


class DeferredServices(GenericHandler):
    """Routes calls of ``services`` to handlers installed later (see module docstring)."""

    def __init__(self, services: Sequence[ServiceDescriptor]) -> None:
        self._waiting = {
            f"/{s.full_name}/{m.name}": _not_ready(m) for s in services for m in s.methods
        }
        self._handlers: list[GenericHandler] | None = None
        self._scope: Scope = nullcontext
        self._lock = threading.Lock()

    def install(self, add: Sequence[Callable[[grpc.Server], None]], scope: Scope) -> None:
        """Install the handlers each ``add(server)`` registers; ``scope`` wraps unary calls."""
        collector = _Collector()
        for register in add:
            # The generated add_*_to_server functions call only the collector's two methods.
            register(cast("grpc.Server", collector))
        with self._lock:
            self._scope = scope
            self._handlers = collector.handlers

    @property
    def ready(self) -> bool:
        """True once the handlers are installed."""
        return self._handlers is not None

    def scope(self) -> AbstractContextManager[None]:
        """The installed per-call scope (a database connection), or none yet."""
        return self._scope()

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> Handler | None:
        handlers = self._handlers
        if handlers is None:
            return self._waiting.get(handler_call_details.method)
        for handler in handlers:
            found = handler.service(handler_call_details)
            if found is not None:
                return found
        return None
