"""The client's one pager: lazy, every page once, the request kept apart from each page's."""

from __future__ import annotations

import subprocess
import sys

from modelregistry.client import Pager
from modelregistry.client.pager import pager
from modelregistry.v1 import model_registry_pb2 as mr
from modelregistry.v1 import resources_pb2 as res


def test_pager_fetches_lazily_and_follows_tokens() -> None:
    pages = {"": (["a", "b"], "t1"), "t1": ([], "t2"), "t2": (["c"], "")}
    asked: list[str] = []

    def fetch(token: str) -> tuple[list[str], str]:
        asked.append(token)
        return pages[token]

    items = Pager(fetch)
    assert asked == []  # nothing before the first next()
    assert next(items) == "a"
    assert (asked, items.next_page_token) == ([""], "t1")
    assert list(items) == ["b", "c"]  # an empty middle page is skipped, not the end
    assert asked == ["", "t1", "t2"]
    assert items.next_page_token == ""
    assert list(items) == []
    assert asked == ["", "t1", "t2"]  # exhausted: no further calls


def test_pager_starts_at_a_given_token() -> None:
    items = Pager(lambda token: ([token], ""), page_token="t5")
    assert list(items) == ["t5"]


def test_pager_over_requests_copies_the_request_per_page() -> None:
    seen: list[mr.ListModelsRequest] = []

    def call(request: mr.ListModelsRequest) -> mr.ListModelsResponse:
        seen.append(request)
        n = len(seen)
        return mr.ListModelsResponse(
            models=[res.Model(name=f"models/m{n}")], next_page_token="" if n == 3 else f"p{n}"
        )

    request = mr.ListModelsRequest(filter="type = x", page_size=1)
    names = [m.name for m in pager(call, request, lambda page: page.models)]
    assert names == ["models/m1", "models/m2", "models/m3"]
    assert [r.page_token for r in seen] == ["", "p1", "p2"]
    assert all(r.filter == "type = x" and r.page_size == 1 for r in seen)
    assert request.page_token == ""  # the caller's request is untouched


def test_client_package_imports_no_server_dependency() -> None:
    code = (
        "import sys, modelregistry.client\n"
        "heavy = [m for m in sys.modules if m.split('.')[0] in "
        "('modelregistry_server', 'peewee', 'psycopg', 'psycopg2', 'google.cloud')"
        " or m.startswith('google.cloud')]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
