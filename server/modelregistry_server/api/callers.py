"""Who is calling: built once per request from the call's metadata."""

from __future__ import annotations

import grpc

from ..domain.entities import DEFAULT_TENANT, Caller
from ..domain.validation import check_text

ACTOR_HEADER = "x-modelregistry-actor"


def caller_of(context: grpc.ServicerContext) -> Caller:
    """The caller of this RPC. Every request is in tenant ``default`` until authentication
    exists; the actor recorded in stage history comes from the ``x-modelregistry-actor``
    header."""
    actor = "anonymous"
    for key, value in context.invocation_metadata() or ():
        if key == ACTOR_HEADER and isinstance(value, str) and value:
            actor = check_text(value, ACTOR_HEADER)
    return Caller(tenant=DEFAULT_TENANT, actor=actor)
