"""Following the event log: an iterator over ``WatchEvents`` that reconnects by itself.

The server sends every matching event after a cursor, in order, and progress messages that
move the cursor past events the filter leaves out. The iterator keeps the last cursor it
received and, when the stream breaks (a restart, a dropped connection, a deadline), opens a
new one from there, so the events it yields have no gaps and no duplicates.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Final

import grpc

from modelregistry.client.calls import Invoker
from modelregistry.client.errors import from_rpc_error
from modelregistry.v1 import events_pb2 as ev
from modelregistry.v1 import events_pb2_grpc as ev_grpc

__all__ = ["EventWatch"]

# Failures after which the stream is simply opened again from the last cursor.
_RESUMABLE: Final = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.CANCELLED,  # the server shut down its streams
        grpc.StatusCode.INTERNAL,  # a connection reset mid-stream
    }
)


class EventWatch(Iterator[ev.Event]):
    """Yields events for ever (until :meth:`close`); ``cursor`` is where it stands, to be
    stored by a consumer that wants to continue after its own restart.

    ``retries`` bounds consecutive failed attempts with no message received in between (each
    after a jittered, doubling back-off); any message resets the count.
    """

    def __init__(
        self,
        call: Invoker,
        stub: ev_grpc.EventServiceStub,
        *,
        filter: str,
        after_cursor: str,
        retries: int,
    ) -> None:
        self._call = call
        self._stub = stub
        self._filter = filter
        self.cursor = after_cursor
        self._retries = retries
        self._failures = 0
        self._stream: Any = None
        self._closed = False

    def __iter__(self) -> EventWatch:
        return self

    def __next__(self) -> ev.Event:
        while not self._closed:
            if self._stream is None:
                request = ev.WatchEventsRequest(filter=self._filter, after_cursor=self.cursor)
                self._stream = self._call(self._stub.WatchEvents, request, transfer=True)
            try:
                message: ev.WatchEventsResponse = next(self._stream)
            except StopIteration:
                self._stream = None  # the server ended the stream: continue from the cursor
                continue
            except grpc.RpcError as e:
                self._stream = None
                if self._closed:
                    break
                if e.code() not in _RESUMABLE or self._failures >= self._retries:
                    raise from_rpc_error(e) from e
                self._failures += 1
                self._call.backoff(self._failures)
                continue
            self._failures = 0
            self.cursor = message.cursor
            if message.HasField("event"):
                return message.event
        raise StopIteration

    def close(self) -> None:
        """Stop watching (cancels the open stream)."""
        self._closed = True
        if self._stream is not None:
            self._stream.cancel()
            self._stream = None
