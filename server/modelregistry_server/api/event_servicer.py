"""EventService servicer: the event log through gRPC (list, verify, watch)."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
from google.protobuf import json_format, struct_pb2, timestamp_pb2

from modelregistry.v1 import events_pb2 as rpc
from modelregistry.v1 import events_pb2_grpc as rpc_grpc

from ..domain.audit import Audit
from ..domain.events import Event, EventKind, Verification
from .callers import caller_of

Ctx = grpc.ServicerContext

_KINDS = {EventKind.CHANGE: rpc.EVENT_KIND_CHANGE, EventKind.ACCESS: rpc.EVENT_KIND_ACCESS}


def event_to_proto(event: Event) -> rpc.Event:
    """The wire form of a stored event."""
    when = timestamp_pb2.Timestamp()
    when.FromDatetime(event.time)
    summary = json_format.ParseDict(event.summary, struct_pb2.Struct())
    return rpc.Event(
        name=event.name,
        sequence=event.sequence,
        event_time=when,
        kind=_KINDS[event.kind],
        principal=event.principal,
        method=event.method,
        resource=event.resource,
        summary=summary,
        request_id=event.request_id,
        etag_before=event.etag_before,
        etag_after=event.etag_after,
        outcome=event.outcome,
        prev_hash=event.prev_hash,
        hash=event.hash,
    )


def verification_to_proto(result: Verification) -> rpc.VerifyEventsResponse:
    """The wire form of a chain walk."""
    return rpc.VerifyEventsResponse(
        ok=result.ok,
        checked_events=result.checked,
        last_sequence=result.last_sequence,
        head_hash=result.head_hash,
        failed_sequence=result.failed_sequence,
        reason=result.reason,
    )


class EventServicer(rpc_grpc.EventServiceServicer):
    """The EventService."""

    def __init__(self, audit: Audit) -> None:
        self._audit = audit

    def ListEvents(self, request: rpc.ListEventsRequest, context: Ctx) -> rpc.ListEventsResponse:
        events, token = self._audit.list_events(
            caller_of(context),
            page_size=request.page_size,
            page_token=request.page_token,
            filter_text=request.filter,
            order_by=request.order_by,
        )
        return rpc.ListEventsResponse(
            events=[event_to_proto(e) for e in events], next_page_token=token
        )

    def WatchEvents(
        self, request: rpc.WatchEventsRequest, context: Ctx
    ) -> Iterator[rpc.WatchEventsResponse]:
        stream = self._audit.watch(
            caller_of(context),
            request.filter,
            request.after_cursor,
            cancelled=lambda: not context.is_active(),
        )
        for event, cursor in stream:
            if event is None:
                yield rpc.WatchEventsResponse(cursor=cursor)
            else:
                yield rpc.WatchEventsResponse(event=event_to_proto(event), cursor=cursor)

    def VerifyEvents(
        self, request: rpc.VerifyEventsRequest, context: Ctx
    ) -> rpc.VerifyEventsResponse:
        return verification_to_proto(self._audit.verify(caller_of(context)))
