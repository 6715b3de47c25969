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
    MALFORMED_REQUEST = "MALFORMED_REQUEST"
    MODEL_NOT_FOUND = "MODEL_NOT_FOUND"
    MODEL_ALREADY_EXISTS = "MODEL_ALREADY_EXISTS"
    MODEL_HAS_VERSIONS = "MODEL_HAS_VERSIONS"
    MODEL_HAS_DEPENDENTS = "MODEL_HAS_DEPENDENTS"
    MODEL_DELETED = "MODEL_DELETED"
    MODEL_NOT_DELETED = "MODEL_NOT_DELETED"
    VERSION_NOT_FOUND = "VERSION_NOT_FOUND"
    VERSION_HAS_DEPENDENTS = "VERSION_HAS_DEPENDENTS"
    VERSION_DELETED = "VERSION_DELETED"
    VERSION_NOT_DELETED = "VERSION_NOT_DELETED"
    VERSION_NOT_READY = "VERSION_NOT_READY"
    VERSION_SEALED = "VERSION_SEALED"
    VERSION_EXPIRED = "VERSION_EXPIRED"
    ALIAS_NOT_FOUND = "ALIAS_NOT_FOUND"
    STAGE_UNCHANGED = "STAGE_UNCHANGED"
    STAGE_TRANSITION_NOT_ALLOWED = "STAGE_TRANSITION_NOT_ALLOWED"
    ETAG_MISMATCH = "ETAG_MISMATCH"
    REQUEST_ID_REUSED = "REQUEST_ID_REUSED"
    FILE_NOT_FOUND = "FILE_NOT_FOUND"
    FILE_ALREADY_EXISTS = "FILE_ALREADY_EXISTS"
    UPLOAD_NOT_FOUND = "UPLOAD_NOT_FOUND"
    UPLOAD_CONFLICT = "UPLOAD_CONFLICT"
    UPLOAD_BUSY = "UPLOAD_BUSY"
    UPLOAD_LEASE_LOST = "UPLOAD_LEASE_LOST"
    UPLOAD_ALREADY_COMMITTED = "UPLOAD_ALREADY_COMMITTED"
    UPLOAD_DATA_MISSING = "UPLOAD_DATA_MISSING"
    UPLOADS_IN_PROGRESS = "UPLOADS_IN_PROGRESS"
    WRONG_OFFSET = "WRONG_OFFSET"
    SIZE_MISMATCH = "SIZE_MISMATCH"
    DIGEST_MISMATCH = "DIGEST_MISMATCH"
    CHUNK_TOO_LARGE = "CHUNK_TOO_LARGE"
    RANGE_NOT_SATISFIABLE = "RANGE_NOT_SATISFIABLE"
    BLOB_CORRUPTED = "BLOB_CORRUPTED"
    BLOB_MISSING = "BLOB_MISSING"
    CANCELLED = "CANCELLED"
    BACKEND_UNAVAILABLE = "BACKEND_UNAVAILABLE"
    DEADLINE_EXCEEDED = "DEADLINE_EXCEEDED"
    STREAM_IDLE_TIMEOUT = "STREAM_IDLE_TIMEOUT"
    TOO_MANY_STREAMS = "TOO_MANY_STREAMS"
    CREDENTIALS_MISSING = "CREDENTIALS_MISSING"
    CREDENTIALS_INVALID = "CREDENTIALS_INVALID"
    CREDENTIALS_EXPIRED = "CREDENTIALS_EXPIRED"  # get a fresh token and retry
    SCOPE_MISSING = "SCOPE_MISSING"
    API_KEY_NOT_FOUND = "API_KEY_NOT_FOUND"
    ROLE_MISSING = "ROLE_MISSING"
    ALIAS_PROTECTED = "ALIAS_PROTECTED"
    STAGE_PROTECTED = "STAGE_PROTECTED"
    EVENTS_PRUNED = "EVENTS_PRUNED"
    WEBHOOK_NOT_FOUND = "WEBHOOK_NOT_FOUND"
    WEBHOOK_ALREADY_EXISTS = "WEBHOOK_ALREADY_EXISTS"
    DELIVERY_NOT_FOUND = "DELIVERY_NOT_FOUND"


@dataclass(frozen=True)
class FieldViolation:
    """One bad field of a request: its path (``model.labels``) and what is wrong with it."""

    field: str
    description: str


class DomainError(Exception):
    """Base of every error the registry reports on purpose."""

    # The reason of an error raised without one; only generic reasons qualify (None: every
    # raise must name its reason).
    default_reason: Reason | None = None

    def __init__(
        self,
        message: str,
        *,
        reason: Reason | None = None,
        field_violations: tuple[FieldViolation, ...] = (),
        metadata: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        chosen = reason or self.default_reason
        if chosen is None:
            raise TypeError(f"{type(self).__name__} needs an explicit reason")
        self.message = message
        self.reason: Reason = chosen
        self.field_violations = field_violations
        self.metadata = dict(metadata or {})


class _ExplicitReason(DomainError):
    """An error class whose reasons all name what happened: the reason is required."""

    def __init__(
        self,
        message: str,
        *,
        reason: Reason,
        field_violations: tuple[FieldViolation, ...] = (),
        metadata: dict[str, str] | None = None,
    ) -> None:
        super().__init__(
            message, reason=reason, field_violations=field_violations, metadata=metadata
        )


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


class NotFound(_ExplicitReason):
    """The named resource does not exist (or is not visible to the caller)."""


class Hidden(NotFound):
    """NOT_FOUND for a resource that exists but the caller may not see: to the client exactly
    a missing resource, to the event log a denial (an access event)."""


class AlreadyExists(_ExplicitReason):
    """A resource with that name already exists."""


class FailedPrecondition(_ExplicitReason):
    """The request is valid but the resource is not in a state that allows it."""


class Aborted(_ExplicitReason):
    """A concurrency conflict (stale etag); re-read and retry."""


class OutOfRange(_ExplicitReason):
    """An offset or range lies outside the data."""


class Cancelled(DomainError):
    """The caller went away before the operation finished."""

    default_reason = Reason.CANCELLED


class DataLoss(_ExplicitReason):
    """Stored bytes no longer match their recorded digest, or are gone."""


class Unavailable(DomainError):
    """A backend (database, blob store) cannot be reached; the call may be retried."""

    default_reason = Reason.BACKEND_UNAVAILABLE


class DeadlineExceeded(_ExplicitReason):
    """The call's deadline passed (or its stream made no progress for too long); the work
    stopped there and what was committed before stays (an upload stays resumable)."""


class ResourceExhausted(_ExplicitReason):
    """A server limit is reached (e.g. concurrent streams); retry later."""


class Unauthenticated(_ExplicitReason):
    """The call carries no credential, or one that does not verify (bad, expired, revoked).
    The message never says which check failed beyond what the caller can fix."""


class PermissionDenied(_ExplicitReason):
    """The caller is known but its scopes or its role on the resource do not allow the call."""
