"""Value types taken and returned by the metadata ports."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..filtering import Expr


@dataclass(frozen=True)
class OrderKey:
    """One ``order_by`` term: a field (``create_time``, ``metrics.accuracy``) and direction."""

    field: str
    descending: bool = False


@dataclass(frozen=True)
class ListQuery:
    """A validated listing request.

    ``order_by`` holds only allowed, orderable fields; the store appends its own unique
    tie-breaker so the order is total. Rows lacking a map key used in ``order_by``
    (``metrics.x``) sort after all rows that have it, in both directions.
    ``after`` is the cursor of the previous page (from :attr:`Page.next_cursor`), or None.
    ``visible_to``: only rows of models that have no policy or bind one of these members
    (None: every model of the tenant).
    """

    filter: Expr | None = None
    order_by: tuple[OrderKey, ...] = ()
    show_deleted: bool = False
    page_size: int = 50
    after: tuple[Any, ...] | None = None
    visible_to: frozenset[str] | None = None


@dataclass(frozen=True)
class PurgeCounts:
    """How many rows a purge removed, and what: ``(tenant, resource name)`` of each purged
    model and of each purged version whose model stays."""

    models: int
    versions: int
    purged: tuple[tuple[str, str], ...] = ()
