"""One server interceptor that turns every failure into a proper status.

Domain errors become their mapped status with details; anything else is logged with its
traceback and becomes INTERNAL "internal error". Server-streaming handlers are wrapped around
their iteration too, so an error raised mid-stream is mapped as well (never UNKNOWN).

Requests are decoded here, not by gRPC: gRPC answers bytes that do not parse as the request
message with INTERNAL "Exception deserializing request!", so handlers are re-registered with
an identity deserializer and each message (every one of a request stream too) is parsed inside
the mapping, where a failure is INVALID_ARGUMENT ``MALFORMED_REQUEST``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Any

import grpc
from google.protobuf.message import DecodeError

from ..domain.errors import DomainError, InvalidArgument, Reason
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
Decoder = Callable[[bytes], Any]


def _decoded(decode: Decoder | None, data: Any) -> Any:
    if decode is None or not isinstance(data, bytes):
        return data
    try:
        return decode(data)
    except DecodeError as exc:
        raise InvalidArgument(
            "the request does not decode as the method's request message",
            reason=Reason.MALFORMED_REQUEST,
        ) from exc


def _decoded_stream(decode: Decoder | None, requests: Iterator[Any]) -> Iterator[Any]:
    for data in requests:
        yield _decoded(decode, data)


def _request(decode: Decoder | None, streaming: bool, request: Any) -> Any:
    return _decoded_stream(decode, request) if streaming else _decoded(decode, request)


def _wrap_unary_response(
    method: str,
    behavior: Callable[..., Any],
    decode: Decoder | None,
    streaming: bool,
    scope: Scope = nullcontext,
) -> Callable[..., Any]:
    def wrapped(request: Any, context: grpc.ServicerContext) -> Any:
        try:
            with scope():
                return behavior(_request(decode, streaming, request), context)
        except Exception as exc:
            if _is_abort(context):
                raise
            _fail(context, method, exc)
            raise  # unreachable: _fail always aborts

    return wrapped


def _wrap_stream_response(
    method: str, behavior: Callable[..., Any], decode: Decoder | None, streaming: bool
) -> Callable[..., Any]:
    def wrapped(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        try:
            yield from behavior(_request(decode, streaming, request), context)
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
        decode = handler.request_deserializer
        out = handler.response_serializer
        # Every handler is re-registered with no request deserializer: bytes reach the wrapper.
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(
                _wrap_unary_response(method, handler.unary_unary, decode, False, self._unary_scope),
                None,
                out,
            )
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(
                _wrap_stream_response(method, handler.unary_stream, decode, False), None, out
            )
        if handler.stream_unary:
            return grpc.stream_unary_rpc_method_handler(
                _wrap_unary_response(method, handler.stream_unary, decode, True), None, out
            )
        if handler.stream_stream:
            return grpc.stream_stream_rpc_method_handler(
                _wrap_stream_response(method, handler.stream_stream, decode, True), None, out
            )
        return handler
