"""The access log: one line per call of our services on logger ``modelregistry.access``.

A line names the method, status code, duration, principal, tenant, request id, message bytes
received and sent, and the peer; never metadata, credentials, or request or response bodies.
The fields travel as the record's ``access`` attribute, which the JSON format writes as keys
of their own (``api/logs.py``); the text format writes them as ``key=value`` in the message.
"""

from __future__ import annotations

import logging

from .observation import CallRecord, MethodInfo

ACCESS_LOGGER = "modelregistry.access"
log = logging.getLogger(ACCESS_LOGGER)
# The order of the fields in a text line and of the keys in a JSON object.
FIELDS = (
    "method",
    "code",
    "duration_ms",
    "principal",
    "tenant",
    "request_id",
    "bytes_received",
    "bytes_sent",
    "peer",
)


class AccessLog:
    """The call observer that writes the access log (nothing if INFO is off for it)."""

    def started(self, method: MethodInfo) -> None:
        pass

    def finished(self, call: CallRecord, seconds: float) -> None:
        if not log.isEnabledFor(logging.INFO):
            return
        caller = call.caller
        fields = {
            "method": call.method.full,
            "code": call.code.name,
            "duration_ms": round(seconds * 1000, 3),
            "principal": "" if caller is None else caller.actor,
            "tenant": "" if caller is None else caller.tenant,
            "request_id": call.request_id,
            "bytes_received": call.received_bytes,
            "bytes_sent": call.sent_bytes,
            "peer": call.peer(),
        }
        # makeRecord + handle: what log.info does, without its walk up the stack to find
        # the caller's file and line (the largest part of a line's cost).
        record = log.makeRecord(
            ACCESS_LOGGER,
            logging.INFO,
            __file__,
            0,
            "%s %s %.1f ms principal=%s tenant=%s request_id=%s received=%d sent=%d peer=%s",
            (
                fields["method"],
                fields["code"],
                seconds * 1000,
                fields["principal"] or "-",
                fields["tenant"] or "-",
                fields["request_id"] or "-",
                fields["bytes_received"],
                fields["bytes_sent"],
                fields["peer"] or "-",
            ),
            None,
            extra={"access": fields},
        )
        log.handle(record)

    def stream_opened(self, method: MethodInfo) -> None:
        pass

    def stream_closed(self, method: MethodInfo) -> None:
        pass
