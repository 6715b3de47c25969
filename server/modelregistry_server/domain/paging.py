"""One pager for every List use case, and a reader of whole listings for internal use.

A :class:`Pager` holds one call's page size (checked first), page token, the signer of
tokens (:class:`~.listing.PageTokens`) and the caller's tenant; the use case names the query
the token must belong to once it knows it (:meth:`Pager.cursor`) and hands the store's page
back (:meth:`Pager.reply`) to get the items and the next token. The tenant is part of every
token's query, so a token issued in one tenant is refused in another.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from .entities import Page
from .listing import PageTokens, check_page_size, query_fingerprint

T = TypeVar("T")
Cursor = tuple[Any, ...]
MAX_PAGES = 1_000_000  # a store that never ends a listing is a bug, not a long listing


class Pager:
    """Paging of one List call."""

    def __init__(self, page_size: int, page_token: str, tokens: PageTokens, *, tenant: str) -> None:
        self.size = check_page_size(page_size)
        self._token = page_token
        self._tokens = tokens
        self._tenant = tenant
        self._fingerprint: str | None = None

    def cursor(self, *query: object) -> Cursor | None:
        """The cursor inside the token; INVALID_ARGUMENT unless it was issued for ``query``
        (everything that shapes the listing: collection, parent, filter, order, flags) in
        this pager's tenant."""
        self._fingerprint = query_fingerprint(self._tenant, *query)
        return self._tokens.decode(self._token, self._fingerprint)

    def reply(self, page: Page[T]) -> tuple[list[T], str]:
        """The page's items and the token of the next page ("" on the last one)."""
        if self._fingerprint is None:
            raise AssertionError("Pager.cursor() names the query before a reply")
        return page.items, self._tokens.encode(page.next_cursor, self._fingerprint)


def read_all(fetch: Callable[[Cursor | None], Page[T]]) -> list[T]:
    """Every item of a listing: ``fetch(cursor)`` page after page until the last one."""
    items: list[T] = []
    cursor: Cursor | None = None
    for _ in range(MAX_PAGES):
        page = fetch(cursor)
        items.extend(page.items)
        if page.next_cursor is None:
            return items
        cursor = page.next_cursor
    raise AssertionError("the listing did not end")
