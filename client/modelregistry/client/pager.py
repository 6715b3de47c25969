"""One pager for every ``List*`` method: a page at a time becomes one lazy iterator."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Generic, Protocol, Self, TypeVar

__all__ = ["PagedRequest", "PagedResponse", "Pager", "pager"]

T = TypeVar("T")


class PagedRequest(Protocol):
    """A ``List*`` request: it carries the token of the page it asks for."""

    page_token: str

    def CopyFrom(self, other_msg: Self, /) -> None: ...


class PagedResponse(Protocol):
    """A ``List*`` response: it carries the token of the page after it."""

    @property
    def next_page_token(self) -> str: ...


_Req = TypeVar("_Req", bound=PagedRequest)
_Resp = TypeVar("_Resp", bound=PagedResponse)


class Pager(Iterator[T], Generic[T]):
    """The items of every page, fetching each page only when the previous one is used up.

    ``fetch(token)`` returns one page's items and the next page's token ("" after the last).
    :attr:`next_page_token` resumes the listing later (pass it as ``page_token``).
    """

    def __init__(
        self, fetch: Callable[[str], tuple[Sequence[T], str]], page_token: str = ""
    ) -> None:
        self._fetch = fetch
        self._token = page_token
        self._items: Iterator[T] = iter(())
        self._done = False

    @property
    def next_page_token(self) -> str:
        """The token of the first page not fetched yet ("" once the last page was fetched)."""
        return self._token

    def __iter__(self) -> Self:
        return self

    def __next__(self) -> T:
        while True:
            for item in self._items:
                return item
            if self._done:
                raise StopIteration
            items, self._token = self._fetch(self._token)
            self._done = not self._token
            self._items = iter(items)


def pager(
    call: Callable[[_Req], _Resp],
    request: _Req,
    items: Callable[[_Resp], Sequence[T]],
) -> Pager[T]:
    """A :class:`Pager` over ``call``: each page is ``request`` with that page's token."""

    def fetch(token: str) -> tuple[Sequence[T], str]:
        page_request = type(request)()
        page_request.CopyFrom(request)
        page_request.page_token = token
        response = call(page_request)
        return items(response), response.next_page_token

    return Pager(fetch, request.page_token)
