"""How every RPC of the client is made: one place for deadlines, metadata, error translation
and the back-off between transfer resumes."""

from __future__ import annotations

import contextlib
import random
import time
import uuid
from collections.abc import Iterator, Sequence
from typing import Final, Protocol, TypeVar

import grpc

from modelregistry.client.errors import from_rpc_error

__all__ = ["Invoker", "MultiCallable", "new_request_id"]

_MAX_BACKOFF: Final = 10.0
# The longest wait a server's retry_after_seconds can ask for (an upload's lease time left).
_MAX_RETRY_AFTER: Final = 300.0

_Req = TypeVar("_Req", contravariant=True)
_Resp = TypeVar("_Resp", covariant=True)


class MultiCallable(Protocol[_Req, _Resp]):
    """Any generated stub method: request (or request iterator) in, response (or stream) out."""

    def __call__(
        self,
        request: _Req,
        /,
        timeout: float | None = ...,
        metadata: grpc.Metadata | None = ...,
    ) -> _Resp: ...


def new_request_id() -> str:
    """A fresh request id (or upload id): 32 hex digits."""
    return uuid.uuid4().hex


class Invoker:
    """Invokes stub methods with the client's deadlines and metadata.

    ``timeout`` is the deadline of unary calls, ``transfer_timeout`` that of each upload or
    download stream (None: none). ``retries`` bounds the resumes of a transfer (unary retries
    are gRPC's, configured on the channel); ``retry_backoff`` is the first back-off delay in
    seconds (doubling, jittered, at most 10 s).
    """

    def __init__(
        self,
        *,
        timeout: float,
        transfer_timeout: float | None,
        metadata: Sequence[tuple[str, str]],
        retries: int,
        retry_backoff: float,
    ) -> None:
        if retries < 0:
            raise ValueError("retries must be >= 0")
        if timeout <= 0 or (transfer_timeout is not None and transfer_timeout <= 0):
            raise ValueError("timeouts must be positive")
        if retry_backoff < 0:
            raise ValueError("retry_backoff must be >= 0")
        self._timeout = timeout
        self._transfer_timeout = transfer_timeout
        self._metadata: tuple[tuple[str, str], ...] = tuple((k, v) for k, v in metadata)
        self.retries = retries
        self._retry_backoff = retry_backoff

    def __call__(
        self, method: MultiCallable[_Req, _Resp], request: _Req, *, transfer: bool = False
    ) -> _Resp:
        """Invoke ``method``; errors become :class:`~modelregistry.client.errors.RegistryError`.

        Streaming responses raise while being iterated: iterate them inside :meth:`translated`.
        """
        timeout = self._transfer_timeout if transfer else self._timeout
        with self.translated():
            return method(request, timeout=timeout, metadata=self._metadata)

    @staticmethod
    @contextlib.contextmanager
    def translated() -> Iterator[None]:
        """Turn ``grpc.RpcError`` raised inside the block into ``RegistryError``."""
        try:
            yield
        except grpc.RpcError as e:
            raise from_rpc_error(e) from e

    def backoff(self, attempt: int, at_least: float = 0.0) -> None:
        """Sleep before resume ``attempt`` (1, 2, …): exponential with jitter, and at least
        ``at_least`` seconds (what the server asked for, e.g. an upload's lease time left)."""
        delay = min(self._retry_backoff * (2 ** (attempt - 1)), _MAX_BACKOFF)
        wait = delay / 2 + random.uniform(0, delay / 2) if delay > 0 else 0.0
        if at_least > 0:
            wait = max(wait, min(at_least, _MAX_RETRY_AFTER) + random.uniform(0, 0.2))
        if wait > 0:
            time.sleep(wait)
