"""Errors raised by the registry client.

Every failed call raises a :class:`RegistryError` subclass chosen by the gRPC status code. The
server's ``google.rpc.Status`` details are unpacked: ``google.rpc.ErrorInfo`` gives the stable
``reason`` (for example ``MODEL_NOT_FOUND`` or ``ETAG_MISMATCH``) and ``metadata``, and
``google.rpc.BadRequest`` gives the ``field_violations``. Reasons are plain strings: the client
does not depend on the server's enumeration.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import grpc
from google.protobuf.message import DecodeError
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

__all__ = [
    "CLIENT_DOMAIN",
    "DOMAIN",
    "AbortedError",
    "AlreadyExistsError",
    "CancelledError",
    "DataLossError",
    "DeadlineExceededError",
    "FailedPreconditionError",
    "IntegrityError",
    "InternalError",
    "InvalidArgumentError",
    "NotFoundError",
    "OutOfRangeError",
    "PermissionDeniedError",
    "RegistryError",
    "ResourceExhaustedError",
    "UnauthenticatedError",
    "UnavailableError",
    "UnimplementedError",
    "error_class",
    "from_rpc_error",
]

#: ``ErrorInfo.domain`` of the errors the registry reports.
DOMAIN = "modelregistry.v1"
#: ``domain`` of the errors the client detects itself (:class:`IntegrityError`).
CLIENT_DOMAIN = "modelregistry.client"

_DETAILS_KEY = "grpc-status-details-bin"
_ETAG_MISMATCH = "ETAG_MISMATCH"


class RegistryError(Exception):
    """A failed registry call: status code, message and the server's structured details."""

    default_code: ClassVar[grpc.StatusCode] = grpc.StatusCode.UNKNOWN

    def __init__(
        self,
        message: str,
        *,
        code: grpc.StatusCode | None = None,
        reason: str | None = None,
        domain: str | None = None,
        metadata: Mapping[str, str] | None = None,
        field_violations: Sequence[tuple[str, str]] = (),
        request_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.code: grpc.StatusCode = code if code is not None else self.default_code
        self.message = message
        self.reason = reason
        self.domain = domain
        self.metadata: dict[str, str] = dict(metadata or {})
        self.field_violations: list[tuple[str, str]] = list(field_violations)
        # The server's id of the failed call (its access log line names it), if it sent one.
        self.request_id = request_id

    @property
    def retryable(self) -> bool:
        """Whether repeating the same request unchanged may succeed.

        True for UNAVAILABLE, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED and ABORTED other than
        an etag mismatch (which needs a fresh read first). Whether a retry is *safe* depends on
        the method: creates carry request ids, other mutations may not be idempotent.
        """
        if self.code is grpc.StatusCode.ABORTED:
            return self.reason != _ETAG_MISMATCH
        return self.code in (
            grpc.StatusCode.UNAVAILABLE,
            grpc.StatusCode.DEADLINE_EXCEEDED,
            grpc.StatusCode.RESOURCE_EXHAUSTED,
        )

    def __str__(self) -> str:
        text = f"{self.code.name}: {self.message}"
        if self.reason:
            text += f" [{self.reason}]"
        if self.field_violations:
            text += " (" + "; ".join(f"{f}: {d}" for f, d in self.field_violations) + ")"
        return text

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(code={self.code.name}, message={self.message!r}, "
            f"reason={self.reason!r}, metadata={self.metadata!r}, "
            f"field_violations={self.field_violations!r})"
        )


class InvalidArgumentError(RegistryError):
    """The request is malformed (see ``field_violations``); nothing was changed."""

    default_code = grpc.StatusCode.INVALID_ARGUMENT


class NotFoundError(RegistryError):
    """The named resource does not exist."""

    default_code = grpc.StatusCode.NOT_FOUND


class AlreadyExistsError(RegistryError):
    """A resource with that name already exists."""

    default_code = grpc.StatusCode.ALREADY_EXISTS


class FailedPreconditionError(RegistryError):
    """The resource is not in a state that allows the request."""

    default_code = grpc.StatusCode.FAILED_PRECONDITION


class AbortedError(RegistryError):
    """A concurrency conflict, typically a stale etag (``ETAG_MISMATCH``): re-read and retry."""

    default_code = grpc.StatusCode.ABORTED


class OutOfRangeError(RegistryError):
    """An offset or range lies outside the data."""

    default_code = grpc.StatusCode.OUT_OF_RANGE


class UnavailableError(RegistryError):
    """The service or one of its backends cannot be reached; the call may be retried."""

    default_code = grpc.StatusCode.UNAVAILABLE


class DeadlineExceededError(RegistryError):
    """The deadline passed before the call finished."""

    default_code = grpc.StatusCode.DEADLINE_EXCEEDED


class CancelledError(RegistryError):
    """The call was cancelled."""

    default_code = grpc.StatusCode.CANCELLED


class DataLossError(RegistryError):
    """Stored or transferred bytes do not match their recorded digest, or are gone."""

    default_code = grpc.StatusCode.DATA_LOSS


class PermissionDeniedError(RegistryError):
    """The caller may not do this."""

    default_code = grpc.StatusCode.PERMISSION_DENIED


class UnauthenticatedError(RegistryError):
    """The caller's credentials are missing or invalid."""

    default_code = grpc.StatusCode.UNAUTHENTICATED


class ResourceExhaustedError(RegistryError):
    """A limit was hit (for example a message larger than the channel allows)."""

    default_code = grpc.StatusCode.RESOURCE_EXHAUSTED


class UnimplementedError(RegistryError):
    """The server does not implement the method."""

    default_code = grpc.StatusCode.UNIMPLEMENTED


class InternalError(RegistryError):
    """A server bug, or a transport failure such as a reset stream."""

    default_code = grpc.StatusCode.INTERNAL


class IntegrityError(DataLossError):
    """Raised by the client: downloaded bytes do not match the file's size, sha256 or crc32c.

    ``reason`` is ``SIZE_MISMATCH`` or ``DIGEST_MISMATCH``; ``metadata`` holds ``name``,
    ``check`` (``size``, ``sha256`` or ``crc32c``), ``expected`` and ``actual``.
    """

    def __init__(
        self,
        message: str,
        *,
        reason: str = "DIGEST_MISMATCH",
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(
            message,
            code=grpc.StatusCode.DATA_LOSS,
            reason=reason,
            domain=CLIENT_DOMAIN,
            metadata=metadata,
        )


_BY_CODE: dict[grpc.StatusCode, type[RegistryError]] = {
    cls.default_code: cls
    for cls in (
        InvalidArgumentError,
        NotFoundError,
        AlreadyExistsError,
        FailedPreconditionError,
        AbortedError,
        OutOfRangeError,
        UnavailableError,
        DeadlineExceededError,
        CancelledError,
        DataLossError,
        PermissionDeniedError,
        UnauthenticatedError,
        ResourceExhaustedError,
        UnimplementedError,
        InternalError,
    )
}


def error_class(code: grpc.StatusCode) -> type[RegistryError]:
    """The :class:`RegistryError` subclass raised for a status code."""
    return _BY_CODE.get(code, RegistryError)


def _rich_status(error: Any) -> status_pb2.Status | None:
    """The ``google.rpc.Status`` of a failed call, if the server sent one."""
    try:
        status: status_pb2.Status | None = rpc_status.from_call(error)
        return status
    except DecodeError:
        return None  # a malformed trailer must not hide the original error
    except ValueError:
        # Code or message differ from the call's own status (for example a proxy rewrote
        # them): the details themselves are still worth reading.
        pass
    for key, value in error.trailing_metadata() or ():
        if key == _DETAILS_KEY and isinstance(value, bytes):
            try:
                return status_pb2.Status.FromString(value)
            except DecodeError:
                return None
    return None


def _request_id(error: Any) -> str | None:
    """The ``x-request-id`` the server returned in the trailing metadata, if any."""
    for key, value in error.trailing_metadata() or ():
        if key == "x-request-id" and isinstance(value, str):
            return value
    return None


def from_rpc_error(e: grpc.RpcError) -> RegistryError:
    """Translate a failed gRPC call into the matching :class:`RegistryError` subclass."""
    code_fn = getattr(e, "code", None)
    code = code_fn() if callable(code_fn) else None
    if not isinstance(code, grpc.StatusCode):
        code = grpc.StatusCode.UNKNOWN
    details_fn = getattr(e, "details", None)
    message = (details_fn() if callable(details_fn) else None) or ""

    reason: str | None = None
    domain: str | None = None
    metadata: dict[str, str] = {}
    violations: list[tuple[str, str]] = []
    has_trailers = callable(getattr(e, "trailing_metadata", None))
    status = _rich_status(e) if has_trailers else None
    request_id = _request_id(e) if has_trailers else None
    if status is not None:
        message = status.message or message
        for detail in status.details:
            if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                info = error_details_pb2.ErrorInfo()
                detail.Unpack(info)
                reason = info.reason or None
                domain = info.domain or None
                metadata.update(info.metadata)
            elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                bad = error_details_pb2.BadRequest()
                detail.Unpack(bad)
                violations.extend((v.field, v.description) for v in bad.field_violations)
    return error_class(code)(
        message or code.name,
        code=code,
        reason=reason,
        domain=domain,
        metadata=metadata,
        field_violations=violations,
        request_id=request_id,
    )
