"""Translation of failed gRPC calls into the client's RegistryError hierarchy."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from google.rpc import code_pb2, error_details_pb2, status_pb2

from modelregistry.client import errors
from modelregistry.client.errors import (
    AbortedError,
    DataLossError,
    IntegrityError,
    InvalidArgumentError,
    NotFoundError,
    RegistryError,
    from_rpc_error,
)

DETAILS_KEY = "grpc-status-details-bin"


class FakeRpcError(grpc.RpcError):
    """What a failed call raises: an RpcError that is also a Call (code, details, trailers)."""

    def __init__(
        self,
        code: grpc.StatusCode,
        details: str,
        trailing: tuple[tuple[str, str | bytes], ...] | None = (),
    ) -> None:
        super().__init__(details)
        self._code = code
        self._details = details
        self._trailing = trailing

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details

    def trailing_metadata(self) -> Any:
        return self._trailing


def rich_error(
    code: grpc.StatusCode,
    message: str,
    *,
    reason: str | None = None,
    metadata: dict[str, str] | None = None,
    violations: list[tuple[str, str]] | None = None,
    status_code: int | None = None,
) -> FakeRpcError:
    status = status_pb2.Status(
        code=code.value[0] if status_code is None else status_code, message=message
    )
    if reason is not None:
        info = error_details_pb2.ErrorInfo(
            reason=reason, domain=errors.DOMAIN, metadata=metadata or {}
        )
        status.details.add().Pack(info)
    if violations:
        bad = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(field=f, description=d)
                for f, d in violations
            ]
        )
        status.details.add().Pack(bad)
    trailing = (("x-other", "1"), (DETAILS_KEY, status.SerializeToString()))
    return FakeRpcError(code, message, trailing)


def test_not_found_with_error_info() -> None:
    err = from_rpc_error(
        rich_error(
            grpc.StatusCode.NOT_FOUND,
            "model models/fraud not found",
            reason="MODEL_NOT_FOUND",
            metadata={"model": "models/fraud"},
        )
    )
    assert type(err) is NotFoundError
    assert err.code is grpc.StatusCode.NOT_FOUND
    assert err.message == "model models/fraud not found"
    assert err.reason == "MODEL_NOT_FOUND"
    assert err.domain == "modelregistry.v1"
    assert err.metadata == {"model": "models/fraud"}
    assert err.field_violations == []
    assert not err.retryable
    assert "MODEL_NOT_FOUND" in str(err) and "NOT_FOUND" in str(err)


def test_invalid_argument_with_field_violations() -> None:
    err = from_rpc_error(
        rich_error(
            grpc.StatusCode.INVALID_ARGUMENT,
            "bad request",
            reason="INVALID_ARGUMENT",
            violations=[("model_id", "must match [a-z]…"), ("model.labels", "too many")],
        )
    )
    assert isinstance(err, InvalidArgumentError)
    assert err.reason == "INVALID_ARGUMENT"
    assert err.field_violations == [("model_id", "must match [a-z]…"), ("model.labels", "too many")]
    assert "model.labels: too many" in str(err)


def test_bad_request_without_error_info() -> None:
    err = from_rpc_error(
        rich_error(grpc.StatusCode.INVALID_ARGUMENT, "bad", violations=[("name", "required")])
    )
    assert isinstance(err, InvalidArgumentError)
    assert err.reason is None
    assert err.field_violations == [("name", "required")]


def test_etag_mismatch_is_aborted_and_not_blindly_retryable() -> None:
    err = from_rpc_error(rich_error(grpc.StatusCode.ABORTED, "stale etag", reason="ETAG_MISMATCH"))
    assert isinstance(err, AbortedError)
    assert err.reason == "ETAG_MISMATCH"
    assert not err.retryable
    other = from_rpc_error(rich_error(grpc.StatusCode.ABORTED, "conflict", reason="OTHER"))
    assert other.retryable


@pytest.mark.parametrize(
    ("code", "cls"),
    [
        (grpc.StatusCode.INVALID_ARGUMENT, errors.InvalidArgumentError),
        (grpc.StatusCode.NOT_FOUND, errors.NotFoundError),
        (grpc.StatusCode.ALREADY_EXISTS, errors.AlreadyExistsError),
        (grpc.StatusCode.FAILED_PRECONDITION, errors.FailedPreconditionError),
        (grpc.StatusCode.ABORTED, errors.AbortedError),
        (grpc.StatusCode.OUT_OF_RANGE, errors.OutOfRangeError),
        (grpc.StatusCode.UNAVAILABLE, errors.UnavailableError),
        (grpc.StatusCode.DEADLINE_EXCEEDED, errors.DeadlineExceededError),
        (grpc.StatusCode.CANCELLED, errors.CancelledError),
        (grpc.StatusCode.DATA_LOSS, errors.DataLossError),
        (grpc.StatusCode.PERMISSION_DENIED, errors.PermissionDeniedError),
        (grpc.StatusCode.UNAUTHENTICATED, errors.UnauthenticatedError),
        (grpc.StatusCode.INTERNAL, errors.InternalError),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, errors.ResourceExhaustedError),
        (grpc.StatusCode.UNIMPLEMENTED, errors.UnimplementedError),
        (grpc.StatusCode.UNKNOWN, errors.RegistryError),
    ],
)
def test_subclass_by_status_code(code: grpc.StatusCode, cls: type[RegistryError]) -> None:
    err = from_rpc_error(FakeRpcError(code, "boom"))
    assert type(err) is cls
    assert err.code is code
    assert err.message == "boom"
    assert err.reason is None and err.metadata == {} and err.field_violations == []


@pytest.mark.parametrize(
    ("code", "retryable"),
    [
        (grpc.StatusCode.UNAVAILABLE, True),
        (grpc.StatusCode.DEADLINE_EXCEEDED, True),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, True),
        (grpc.StatusCode.NOT_FOUND, False),
        (grpc.StatusCode.INVALID_ARGUMENT, False),
        (grpc.StatusCode.INTERNAL, False),
        (grpc.StatusCode.DATA_LOSS, False),
    ],
)
def test_retryable(code: grpc.StatusCode, retryable: bool) -> None:
    assert from_rpc_error(FakeRpcError(code, "x")).retryable is retryable


def test_no_trailers_and_empty_message() -> None:
    err = from_rpc_error(FakeRpcError(grpc.StatusCode.UNAVAILABLE, "", None))
    assert isinstance(err, errors.UnavailableError)
    assert err.message == "UNAVAILABLE"


def test_details_read_even_when_status_code_disagrees() -> None:
    # grpc_status.from_call rejects a Status whose code differs from the call's; the details
    # are still unpacked.
    err = from_rpc_error(
        rich_error(
            grpc.StatusCode.NOT_FOUND,
            "gone",
            reason="FILE_NOT_FOUND",
            status_code=code_pb2.INTERNAL,
        )
    )
    assert isinstance(err, NotFoundError)
    assert err.reason == "FILE_NOT_FOUND"


def test_malformed_details_trailer_keeps_the_error() -> None:
    err = from_rpc_error(
        FakeRpcError(grpc.StatusCode.NOT_FOUND, "gone", ((DETAILS_KEY, b"\xff\xff\xff"),))
    )
    assert isinstance(err, NotFoundError)
    assert err.message == "gone"
    assert err.reason is None


def test_plain_rpc_error_without_call_interface() -> None:
    err = from_rpc_error(grpc.RpcError("opaque"))
    assert type(err) is RegistryError
    assert err.code is grpc.StatusCode.UNKNOWN


def test_integrity_error_is_data_loss_from_the_client() -> None:
    err = IntegrityError(
        "bad", reason="DIGEST_MISMATCH", metadata={"check": "sha256", "expected": "a"}
    )
    assert isinstance(err, DataLossError)
    assert isinstance(err, RegistryError)
    assert err.code is grpc.StatusCode.DATA_LOSS
    assert err.reason == "DIGEST_MISMATCH"
    assert err.domain == errors.CLIENT_DOMAIN
    assert err.metadata["check"] == "sha256"
    assert not err.retryable


def test_error_class_lookup_and_repr() -> None:
    assert errors.error_class(grpc.StatusCode.NOT_FOUND) is NotFoundError
    assert errors.error_class(grpc.StatusCode.OK) is RegistryError
    err = NotFoundError("x", reason="MODEL_NOT_FOUND")
    assert err.code is grpc.StatusCode.NOT_FOUND
    assert "NotFoundError(code=NOT_FOUND" in repr(err)
