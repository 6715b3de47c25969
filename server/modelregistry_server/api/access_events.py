"""Access events: what the serving edge records about calls that were refused or failed.

Recorded (each in a transaction of its own, within the principal's budget, see
``domain/audit.AccessBudget``): every PERMISSION_DENIED of an authenticated caller, every
NOT_FOUND a model policy answered (``domain/errors.Hidden``), and every failure of a mutating
RPC (``api/permissions.MUTATING``). Not recorded: UNAUTHENTICATED (the
credentials prove no tenant to record it in, and an unauthenticated flood must not become
writes; such calls are counted in the log only), and failed reads other than denials.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

import grpc
from google.protobuf.message import Message

from ..domain.audit import Audit
from ..domain.errors import DomainError, Hidden, PermissionDenied
from ..domain.identity import Caller
from ..domain.names import REQUEST_ID_RE
from .errors import status_code_for
from .permissions import is_mutating

log = logging.getLogger(__name__)

REQUEST_ID_HEADER = "x-request-id"
_MAX_RESOURCE = 512
_MAX_MESSAGE = 500


def request_id_of(metadata: Any) -> str:
    """The call's ``x-request-id`` if it is 1-128 characters of ``[A-Za-z0-9_-]``, else a
    fresh uuid4."""
    for key, value in metadata or ():
        if key == REQUEST_ID_HEADER and isinstance(value, str) and REQUEST_ID_RE.fullmatch(value):
            return value
    return str(uuid.uuid4())


def resource_of(message: Any) -> str:
    """The resource a request names (its ``name``/``parent``, the name of the resource it
    carries, ``models/{model_id}`` or ``webhooks/{webhook_id}`` of a create, ``uploads/{id}``),
    or ``""``."""
    if not isinstance(message, Message):
        return ""
    for field in ("name", "parent"):
        value = getattr(message, field, None)
        if isinstance(value, str) and value:
            return value[:_MAX_RESOURCE]
    for field in ("header", "model", "model_version", "alias", "webhook"):
        try:
            if message.HasField(field):
                found = resource_of(getattr(message, field))
                if found:
                    return found
        except ValueError:
            continue
    model_id = getattr(message, "model_id", None)
    if isinstance(model_id, str) and model_id:
        return f"models/{model_id}"[:_MAX_RESOURCE]
    webhook_id = getattr(message, "webhook_id", None)
    if isinstance(webhook_id, str) and webhook_id:
        return f"webhooks/{webhook_id}"[:_MAX_RESOURCE]
    upload_id = getattr(message, "upload_id", None)
    if isinstance(upload_id, str) and upload_id:
        return f"uploads/{upload_id}"[:_MAX_RESOURCE]
    return ""


def worth_recording(method: str, exc: BaseException) -> bool:
    """Denials of any call (PERMISSION_DENIED, and NOT_FOUND by policy), and failures of
    mutating ones."""
    return isinstance(exc, (PermissionDenied, Hidden)) or is_mutating(method)


def _outcome(exc: BaseException) -> tuple[str, dict[str, Any]]:
    if isinstance(exc, DomainError):
        name = status_code_for(exc).name
        summary = {"reason": exc.reason.value, "message": exc.message[:_MAX_MESSAGE]}
        return f"{name} {exc.reason.value}", summary
    code = getattr(getattr(exc, "status", None), "code", None)
    if isinstance(code, grpc.StatusCode):  # a servicer's context.abort
        return code.name, {}
    return "INTERNAL", {}


class AccessRecorder:
    """Turns a refused or failed call into an access event (call on a worker thread)."""

    def __init__(self, audit: Audit) -> None:
        self._audit = audit

    def __call__(self, caller: Caller, method: str, request: Any, exc: BaseException) -> None:
        self.record(caller, method, resource_of(request), exc)

    def record(self, caller: Caller, method: str, resource: str, exc: BaseException) -> None:
        """Record ``exc`` of ``method`` on ``resource`` if it is worth recording (the web
        adapter names the resource from its URL, which mirrors the resource name)."""
        if not worth_recording(method, exc):
            return
        try:
            outcome, summary = _outcome(exc)
            short = method.rsplit("/", 1)[-1]
            self._audit.record_access(caller, short, resource[:_MAX_RESOURCE], outcome, summary)
        except Exception:  # the call's own error is what the client must get
            log.exception("could not record an access event of %s", method)
