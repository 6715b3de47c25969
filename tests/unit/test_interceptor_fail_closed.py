"""The serving interceptor never serves a handler it cannot admit: a bidirectional stream of a
non-passthrough service (none exists today) is refused, not served without authentication."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import pytest

from modelregistry_server.api.interceptors import ErrorMappingInterceptor, ServingLimits


class _Details:
    method = "/modelregistry.v1.ModelRegistry/Chat"
    invocation_metadata = ()


class _Context:
    def __init__(self) -> None:
        self.aborted: tuple[Any, ...] | None = None

    async def abort(self, code: grpc.StatusCode, details: str, trailing: Any = ()) -> None:
        self.aborted = (code, details)
        raise RuntimeError("aborted")


def test_a_bidirectional_stream_is_refused_not_served() -> None:
    served: list[object] = []

    async def chat(requests: Any, context: Any) -> Any:
        served.append(requests)
        yield b"answer"

    async def continuation(_details: Any) -> Any:
        return grpc.stream_stream_rpc_method_handler(chat)

    async def call() -> _Context:
        with ThreadPoolExecutor(1) as pool:
            interceptor = ErrorMappingInterceptor(
                unary_pool=pool, stream_pool=pool, limits=ServingLimits()
            )
            details: Any = _Details()
            handler = await interceptor.intercept_service(continuation, details)
            assert handler.stream_stream is not chat
            context = _Context()
            behavior: Any = handler.stream_stream
            with pytest.raises(RuntimeError, match="aborted"):
                async for _ in behavior(iter(()), context):
                    pass
            return context

    context = asyncio.run(call())
    assert served == []
    assert context.aborted is not None and context.aborted[0] is grpc.StatusCode.UNIMPLEMENTED
