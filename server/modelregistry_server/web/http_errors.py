"""gRPC status code → HTTP status: the one mapping of the web adapter.

A domain error is named by the server's one error table (``api/errors.py``, handed in as
:attr:`Edge.code_of`); this maps that code to HTTP as ``google/rpc/code.proto`` documents.
Pages never show a traceback: anything else is logged and answered 500 "internal error".
"""

from __future__ import annotations

HTTP_STATUS_BY_CODE: dict[str, int] = {
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

TITLES: dict[int, str] = {
    400: "Bad request",
    401: "Sign-in needed",
    403: "Not allowed",
    404: "Not found",
    409: "Conflict",
    429: "Too many requests",
    499: "Cancelled",
    500: "Internal error",
    501: "Not implemented",
    503: "Unavailable",
    504: "Timed out",
}


def http_status(code: str) -> int:
    """The HTTP status of a gRPC code name (500 for a name it does not know)."""
    return HTTP_STATUS_BY_CODE.get(code, 500)


def title(status: int) -> str:
    """A short page title for an HTTP error status."""
    return TITLES.get(status, "Error")
