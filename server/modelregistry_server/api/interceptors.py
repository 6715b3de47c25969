"""One server interceptor that turns every failure into a proper status.

Domain errors become their mapped status with details; anything else is logged with its
traceback and becomes INTERNAL "internal error". Server-streaming handlers are wrapped around
their iteration too, so an error raised mid-stream is mapped as well (never UNKNOWN).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Any

import grpc

from ..domain.errors import DomainError
from .errors import internal_status, to_status

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    Handler = grpc.RpcMethodHandler[Any, Any]
    _Interceptor = grpc.ServerInterceptor[Any, Any]
else:
    Handler = grpc.RpcMethodHandler
    _Interceptor = grpc.ServerInterceptor


def _fail(context: grpc.ServicerContext, method: str, exc: BaseException) -> None:
    if isinstance(exc, DomainError):
        context.abort_with_status(to_status(exc))
    log.error("unexpected error in %s", method, exc_info=exc)
    context.abort_with_status(internal_status())


def _is_abort(context: grpc.ServicerContext) -> bool:
    # context.abort* raises after recording the status; let that propagate untouched.
    return context.code() is not None  # type: ignore[attr-defined]  # present on the sync context


Scope = Callable[[], AbstractContextManager[None]]


def _wrap_unary_response(
    method: str, behavior: Callable[..., Any], scope: Scope = nullcontext
) -> Callable[..., Any]:
    def wrapped(request: Any, context: grpc.ServicerContext) -> Any:
        try:
            with scope():
                return behavior(request, context)
        except Exception as exc:
            if _is_abort(context):
                raise
            _fail(context, method, exc)
            raise  # unreachable: _fail always aborts

    return wrapped


def _wrap_stream_response(method: str, behavior: Callable[..., Any]) -> Callable[..., Any]:
    def wrapped(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        try:
            yield from behavior(request, context)
        except Exception as exc:
            if _is_abort(context):
                raise
            _fail(context, method, exc)
            raise

    return wrapped


class ErrorMappingInterceptor(_Interceptor):
    """Maps exceptions of every handler kind to statuses (see module docstring).

    ``unary_scope`` wraps each unary call (e.g. one database connection per request); streaming
    calls, which may last minutes, take resources only while they need them.
    """

    def __init__(self, unary_scope: Scope = nullcontext) -> None:
        self._unary_scope = unary_scope

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Handler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(
                _wrap_unary_response(method, handler.unary_unary, self._unary_scope),
                handler.request_deserializer,
                handler.response_serializer,
            )
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(
                _wrap_stream_response(method, handler.unary_stream),
                handler.request_deserializer,
                handler.response_serializer,
            )
        if handler.stream_unary:
            return grpc.stream_unary_rpc_method_handler(
                _wrap_unary_response(method, handler.stream_unary),
                handler.request_deserializer,
                handler.response_serializer,
            )
        if handler.stream_stream:
            return grpc.stream_stream_rpc_method_handler(
                _wrap_stream_response(method, handler.stream_stream),
                handler.request_deserializer,
                handler.response_serializer,
            )
        return handler
