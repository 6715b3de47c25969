"""Every gRPC code has the HTTP status google/rpc/code.proto documents for it, so an error
page's status says what the API's code says (a missing model is 404, not 500)."""

from __future__ import annotations

import grpc
import pytest

from modelregistry_server.web.http_errors import http_status, title

# google/rpc/code.proto, "HTTP Mapping" of each code.
CODE_PROTO = {
    "CANCELLED": 499,
    "UNKNOWN": 500,
    "INVALID_ARGUMENT": 400,
    "DEADLINE_EXCEEDED": 504,
    "NOT_FOUND": 404,
    "ALREADY_EXISTS": 409,
    "PERMISSION_DENIED": 403,
    "UNAUTHENTICATED": 401,
    "RESOURCE_EXHAUSTED": 429,
    "FAILED_PRECONDITION": 400,
    "ABORTED": 409,
    "OUT_OF_RANGE": 400,
    "UNIMPLEMENTED": 501,
    "INTERNAL": 500,
    "UNAVAILABLE": 503,
    "DATA_LOSS": 500,
}


@pytest.mark.parametrize("code", [c.name for c in grpc.StatusCode if c.name != "OK"])
def test_every_code_has_its_documented_http_status_and_a_title(code: str) -> None:
    assert http_status(code) == CODE_PROTO[code]
    assert title(http_status(code)) != "Error"
