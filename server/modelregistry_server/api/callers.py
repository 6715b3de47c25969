"""Who is calling: the caller the serving edge admitted for this RPC."""

from __future__ import annotations

from typing import Any

from ..domain.identity import Caller
from .interceptors import SyncContext


def caller_of(context: Any) -> Caller:
    """The authenticated caller of the call served with ``context``."""
    if not isinstance(context, SyncContext):
        raise TypeError("servicers run behind the serving interceptor")
    return context.caller
