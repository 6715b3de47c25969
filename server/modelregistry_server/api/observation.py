"""What the serving edge tells observers about each call: the port metrics and the access log
plug into (neither the interceptor nor the domain knows Prometheus or the log format).

The interceptor builds one :class:`CallRecord` per call of our services, counts its messages
and bytes as they pass, sets its status code where it maps the outcome, and hands it to
:meth:`CallObserver.finished` once the call is over. Health and reflection are not observed.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import grpc

from ..domain.identity import Caller


@dataclass(frozen=True, slots=True)
class MethodInfo:
    """One RPC, named as go-grpc-prometheus names it."""

    full: str  # /modelregistry.v1.ModelRegistry/GetModel
    service: str  # modelregistry.v1.ModelRegistry
    name: str  # GetModel
    kind: str  # unary, client_stream, server_stream, bidi_stream

    @classmethod
    def of(cls, method: str, kind: str) -> MethodInfo:
        service, _, name = method.lstrip("/").partition("/")
        return cls(method, service, name, kind)


class CallRecord:
    """One call as the edge saw it; mutated only on the event loop."""

    __slots__ = (
        "caller",
        "code",
        "context",
        "method",
        "received_bytes",
        "received_messages",
        "request_id",
        "sent_bytes",
        "sent_messages",
        "started",
    )

    def __init__(self, method: MethodInfo, context: Any) -> None:
        self.method = method
        self.context = context  # the call's aio context: its peer is read only if needed
        self.started = time.perf_counter()
        self.code = grpc.StatusCode.OK
        self.caller: Caller | None = None  # once admitted
        self.request_id = ""
        self.received_messages = 0
        self.received_bytes = 0
        self.sent_messages = 0
        self.sent_bytes = 0

    def received(self, message: Any) -> None:
        self.received_messages += 1
        self.received_bytes += _size(message)

    def sent(self, message: Any) -> None:
        self.sent_messages += 1
        self.sent_bytes += _size(message)

    def peer(self) -> str:
        try:
            return str(self.context.peer())
        except Exception:  # the call is gone
            return ""


def _size(message: Any) -> int:
    if type(message) is bytes:
        return len(message)
    size = getattr(message, "ByteSize", None)
    return int(size()) if size is not None else 0


class CallObserver(Protocol):
    """Told about every call of our services."""

    def started(self, method: MethodInfo) -> None:
        """The call arrived (before admission)."""
        ...

    def finished(self, call: CallRecord, seconds: float) -> None:
        """The call is over, with its status code; ``seconds`` since it arrived."""
        ...

    def stream_opened(self, method: MethodInfo) -> None:
        """A stream took a slot (admitted, within the limits)."""
        ...

    def stream_closed(self, method: MethodInfo) -> None:
        """A stream gave its slot back."""
        ...


class Observers:
    """Several observers as one."""

    def __init__(self, observers: Sequence[CallObserver]) -> None:
        self._observers = tuple(observers)

    def started(self, method: MethodInfo) -> None:
        for observer in self._observers:
            observer.started(method)

    def finished(self, call: CallRecord, seconds: float) -> None:
        for observer in self._observers:
            observer.finished(call, seconds)

    def stream_opened(self, method: MethodInfo) -> None:
        for observer in self._observers:
            observer.stream_opened(method)

    def stream_closed(self, method: MethodInfo) -> None:
        for observer in self._observers:
            observer.stream_closed(method)
