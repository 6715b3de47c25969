"""Domain errors: what went wrong, in the registry's own words.

Every error carries a stable machine-readable ``reason`` (see :class:`Reason`), a message for
people, optional field violations (for bad input) and optional metadata. The API layer maps
each class to exactly one gRPC status code in one table (``api/errors.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Reason(StrEnum):
    """Stable error reasons, sent as ``google.rpc.ErrorInfo.reason``."""

    INVALID_ARGUMENT = "INVALID_ARGUMENT"
    INVALID_FILTER = "INVALID_FILTER"
    INVALID_ORDER_BY = "INVALID_ORDER_BY"
    INVALID_PAGE_TOKEN = "INVALID_PAGE_TOKEN"
    INVALID_UPDATE_MASK = "INVALID_UPDATE_MASK"
    MODEL_NOT_FOUND = "MODEL_NOT_FOUND"
    MODEL_ALREADY_EXISTS = "MODEL_ALREADY_EXISTS"
    MODEL_HAS_VERSIONS = "MODEL_HAS_VERSIONS"
    MODEL_DELETED = "MODEL_DELETED"
    MODEL_NOT_DELETED = "MODEL_NOT_DELETED"
    VERSION_NOT_FOUND = "VERSION_NOT_FOUND"
    VERSION_DELETED = "VERSION_DELETED"
    VERSION_NOT_DELETED = "VERSION_NOT_DELETED"
    VERSION_NOT_READY = "VERSION_NOT_READY"
    VERSION_SEALED = "VERSION_SEALED"
    ALIAS_NOT_FOUND = "ALIAS_NOT_FOUND"
    STAGE_UNCHANGED = "STAGE_UNCHANGED"
    ETAG_MISMATCH = "ETAG_MISMATCH"
    REQUEST_ID_REUSED = "REQUEST_ID_REUSED"
    FILE_NOT_FOUND = "FILE_NOT_FOUND"
    FILE_ALREADY_EXISTS = "FILE_ALREADY_EXISTS"
    UPLOAD_NOT_FOUND = "UPLOAD_NOT_FOUND"
    UPLOAD_CONFLICT = "UPLOAD_CONFLICT"
    UPLOAD_INCOMPLETE = "UPLOAD_INCOMPLETE"
    UPLOAD_ALREADY_COMMITTED = "UPLOAD_ALREADY_COMMITTED"
    UPLOAD_DATA_MISSING = "UPLOAD_DATA_MISSING"
    WRONG_OFFSET = "WRONG_OFFSET"
    SIZE_MISMATCH = "SIZE_MISMATCH"
    DIGEST_MISMATCH = "DIGEST_MISMATCH"
    CHUNK_TOO_LARGE = "CHUNK_TOO_LARGE"
    RANGE_NOT_SATISFIABLE = "RANGE_NOT_SATISFIABLE"
    BLOB_CORRUPTED = "BLOB_CORRUPTED"
    BLOB_MISSING = "BLOB_MISSING"
    CANCELLED = "CANCELLED"
    BACKEND_UNAVAILABLE = "BACKEND_UNAVAILABLE"


@dataclass(frozen=True)
class FieldViolation:
    """One bad field of a request: its path (``model.labels``) and what is wrong with it."""

    field: str
    description: str


class DomainError(Exception):
    """Base of every error the registry reports on purpose."""

    default_reason: Reason = Reason.INVALID_ARGUMENT

    def __init__(
        self,
        message: str,
        *,
        reason: Reason | None = None,
        field_violations: tuple[FieldViolation, ...] = (),
        metadata: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason or self.default_reason
        self.field_violations = field_violations
        self.metadata = dict(metadata or {})


class InvalidArgument(DomainError):
    """The request is malformed; nothing was changed."""

    default_reason = Reason.INVALID_ARGUMENT

    @classmethod
    def field(
        cls, field: str, description: str, *, reason: Reason | None = None
    ) -> InvalidArgument:
        """An error about one field, with the field named in the violation and the message."""
        return cls(
            f"{field}: {description}",
            reason=reason,
            field_violations=(FieldViolation(field, description),),
        )


class NotFound(DomainError):
    """The named resource does not exist (or is not visible to the caller)."""

    default_reason = Reason.MODEL_NOT_FOUND


class AlreadyExists(DomainError):
    """A resource with that name already exists."""

    default_reason = Reason.MODEL_ALREADY_EXISTS


class FailedPrecondition(DomainError):
    """The request is valid but the resource is not in a state that allows it."""

    default_reason = Reason.MODEL_HAS_VERSIONS


class Aborted(DomainError):
    """A concurrency conflict (stale etag); re-read and retry."""

    default_reason = Reason.ETAG_MISMATCH


class OutOfRange(DomainError):
    """An offset or range lies outside the data."""

    default_reason = Reason.RANGE_NOT_SATISFIABLE


class Cancelled(DomainError):
    """The caller went away before the operation finished."""

    default_reason = Reason.CANCELLED


class DataLoss(DomainError):
    """Stored bytes no longer match their recorded digest, or are gone."""

    default_reason = Reason.BLOB_CORRUPTED


class Unavailable(DomainError):
    """A backend (database, blob store) cannot be reached; the call may be retried."""

    default_reason = Reason.BACKEND_UNAVAILABLE
