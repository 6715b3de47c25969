"""The command's exit status, one per class of failure, so that scripts can branch on it.

| status | meaning |
|---|---|
| 0 | success |
| 1 | any other failure (internal error, data loss, cancelled, a local I/O error) |
| 2 | invalid argument: a bad command line or configuration, INVALID_ARGUMENT, OUT_OF_RANGE |
| 3 | not found (NOT_FOUND) |
| 4 | permission: PERMISSION_DENIED or UNAUTHENTICATED |
| 5 | unavailable: UNAVAILABLE, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED (retry later) |
| 6 | conflict with the current state: ALREADY_EXISTS, FAILED_PRECONDITION, ABORTED |
| 130 | interrupted (Ctrl-C) |
"""

from __future__ import annotations

from enum import IntEnum

import grpc

__all__ = ["ExitCode", "exit_code"]


class ExitCode(IntEnum):
    """Exit statuses (the README's table is this one)."""

    OK = 0
    FAILURE = 1
    INVALID_ARGUMENT = 2
    NOT_FOUND = 3
    PERMISSION = 4
    UNAVAILABLE = 5
    CONFLICT = 6
    INTERRUPTED = 130


_BY_CODE: dict[grpc.StatusCode, ExitCode] = {
    grpc.StatusCode.INVALID_ARGUMENT: ExitCode.INVALID_ARGUMENT,
    grpc.StatusCode.OUT_OF_RANGE: ExitCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND: ExitCode.NOT_FOUND,
    grpc.StatusCode.PERMISSION_DENIED: ExitCode.PERMISSION,
    grpc.StatusCode.UNAUTHENTICATED: ExitCode.PERMISSION,
    grpc.StatusCode.UNAVAILABLE: ExitCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED: ExitCode.UNAVAILABLE,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ExitCode.UNAVAILABLE,
    grpc.StatusCode.ALREADY_EXISTS: ExitCode.CONFLICT,
    grpc.StatusCode.FAILED_PRECONDITION: ExitCode.CONFLICT,
    grpc.StatusCode.ABORTED: ExitCode.CONFLICT,
}


def exit_code(code: grpc.StatusCode) -> ExitCode:
    """The exit status of a call that failed with ``code``."""
    return _BY_CODE.get(code, ExitCode.FAILURE)
