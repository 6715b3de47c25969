"""The exit status of every gRPC status code, as the README's "Exit codes" table and the
command's help state it: a script branching on 4 or 5 must never see 1 instead."""

from __future__ import annotations

import grpc
import pytest

from modelregistry.cli.exits import ExitCode, exit_code

EXPECTED = {
    grpc.StatusCode.INVALID_ARGUMENT: 2,
    grpc.StatusCode.OUT_OF_RANGE: 2,
    grpc.StatusCode.NOT_FOUND: 3,
    grpc.StatusCode.PERMISSION_DENIED: 4,
    grpc.StatusCode.UNAUTHENTICATED: 4,
    grpc.StatusCode.UNAVAILABLE: 5,
    grpc.StatusCode.DEADLINE_EXCEEDED: 5,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 5,
    grpc.StatusCode.ALREADY_EXISTS: 6,
    grpc.StatusCode.FAILED_PRECONDITION: 6,
    grpc.StatusCode.ABORTED: 6,
}


@pytest.mark.parametrize("code", list(grpc.StatusCode), ids=lambda c: c.name)
def test_every_status_code_has_its_documented_exit_status(code: grpc.StatusCode) -> None:
    if code is grpc.StatusCode.OK:
        return
    assert exit_code(code) == EXPECTED.get(code, ExitCode.FAILURE)
