"""What the wiring (``app.py``) hands the web adapter: how a caller is admitted, how a domain
error is named, the use cases, and the bounded pool blocking work runs in.

The web adapter never imports ``api/``: admission is the server's own
``Authentication.admit`` with the requirement of the RPC a page names (``api/permissions.py``
METHOD_REQUIREMENTS), and error codes come from the ``api/errors.py`` table, both passed in as
plain callables. So there is one permission table and one error table.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Callable
from concurrent.futures import Executor
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, TypeVar

from ..domain import deadlines
from ..domain.audit import Audit
from ..domain.errors import DomainError, Unavailable
from ..domain.identity import Caller
from ..domain.lineage import Lineage
from ..domain.payloads import Payloads
from ..domain.registry import Registry

T = TypeVar("T")

# A page's use cases get this long before they stop with DEADLINE_EXCEEDED.
CALL_DEADLINE_S = 30.0


@dataclass(frozen=True)
class Edge:
    """Admission and error naming, shared with the gRPC edge."""

    # Authenticate ``bearer`` (None: no credential) and check the scope the RPC
    # ``/package.Service/Method`` needs; raises Unauthenticated or PermissionDenied.
    admit: Callable[[str | None, str], Caller]
    # Whether credentials are required (False: every caller is anonymous, no sign-in).
    auth_enabled: Callable[[], bool]
    # The gRPC status code name (``NOT_FOUND`` …) of a domain error.
    code_of: Callable[[DomainError], str]
    # Every RPC of the permission table: a page naming another is refused at start-up.
    rpcs: frozenset[str]
    # Whether an admitted caller's scopes cover what the RPC needs (the permission table):
    # pages show a write control only when its RPC would pass the edge.
    permits: Callable[[Caller, str], bool] = lambda _caller, _rpc: False


@dataclass(frozen=True)
class Services:
    """The use cases the pages call, once the database is reachable."""

    registry: Registry
    payloads: Payloads
    lineage: Lineage
    audit: Audit
    # One database connection for the duration of a page's blocking work.
    connection: Callable[[], AbstractContextManager[None]]
    # Bytes the session cookie key is derived from (the database's server secret).
    secret: bytes
    # Records a refusal or failure as gRPC calls' are (caller, rpc, resource, error): an
    # access event if the error is one the event log keeps (denials, failed mutations).
    record_refusal: Callable[[Caller, str, str, BaseException], None] = (
        lambda _caller, _rpc, _resource, _error: None
    )


class ServicesSlot:
    """The services, installed once the database is reached; UNAVAILABLE until then."""

    def __init__(self) -> None:
        self._services: Services | None = None
        self._lock = threading.Lock()

    def install(self, services: Services) -> None:
        with self._lock:
            self._services = services

    def get(self) -> Services:
        services = self._services
        if services is None:
            raise Unavailable("the registry is starting: its database cannot be reached yet")
        return services


def _scoped(services: Services, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
    with deadlines.call_deadline(CALL_DEADLINE_S), services.connection():
        return fn(*args)


def _deadlined(fn: Callable[..., T], args: tuple[Any, ...]) -> T:
    with deadlines.call_deadline(CALL_DEADLINE_S):
        return fn(*args)


async def run_blocking(
    pool: Executor, services: Services | None, fn: Callable[..., T], *args: Any
) -> T:
    """Run ``fn(*args)`` in ``pool`` (the server's unary pool) under a deadline and, given
    ``services``, with a database connection, so the event loop never blocks."""
    if services is None:
        call = functools.partial(_deadlined, fn, args)
    else:
        call = functools.partial(_scoped, services, fn, args)
    return await asyncio.get_running_loop().run_in_executor(pool, call)
