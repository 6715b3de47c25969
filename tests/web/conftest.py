"""The web interface served by an in-process registry (gRPC on port 0, --http-listen on
port 0), on SQLite and PostgreSQL, driven over HTTP with httpx.

- ``web_server``: the started registry; ``registry``: the shipped gRPC client to seed it.
- ``web``: a :class:`WebClient` (one browser: its own cookies) with authentication off.
- ``signed_in(token)`` / ``as_person``: authentication on (tokens are the names in
  :data:`PEOPLE`), a browser per person, signed in through the sign-in page.
- ``browser`` (tests/web/browser.py): headless Chromium through Playwright.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from modelregistry.client import RegistryClient
from modelregistry_server.api.authentication import Authentication, Credentials
from modelregistry_server.app import RegistryServer
from modelregistry_server.config import Config
from modelregistry_server.domain.errors import Reason, Unauthenticated
from modelregistry_server.domain.identity import AuthMethod, Caller, Permission
from tests.support.servers import serving
from tests.web.browser import browser, page  # noqa: F401  (fixtures for the browser tests)

WORK = frozenset({Permission.READ, Permission.CREATE, Permission.UPDATE, Permission.DELETE})
READ = frozenset({Permission.READ})
# Bearer <name> is the caller named so (authentication on, see ``people_server``).
PEOPLE = {
    "alice": Caller("default", "alice", WORK, method=AuthMethod.JWT),
    "vera": Caller("default", "vera", READ, method=AuthMethod.JWT),  # read scope only
    "bob": Caller("default", "bob", WORK, method=AuthMethod.JWT),
    "nobody": Caller("default", "nobody", frozenset(), method=AuthMethod.JWT),  # no scope
    "root": Caller("default", "root", frozenset({Permission.ADMIN}), method=AuthMethod.JWT),
    "other": Caller("other-tenant", "olga", WORK, method=AuthMethod.JWT),
}
_CSRF = re.compile(r'<meta name="csrf-token" content="([^"]*)">')


class PeopleTokens:
    """Bearer ``<name>`` is the caller named so in :data:`PEOPLE`; anything else fails."""

    def authenticate(self, credentials: Credentials) -> Caller | None:
        if credentials.bearer is None:
            return None
        caller = PEOPLE.get(credentials.bearer)
        if caller is None:
            raise Unauthenticated("no such token", reason=Reason.CREDENTIALS_INVALID)
        return caller


class WebClient:
    """One browser over HTTP: keeps its cookies, sends the session's CSRF token on POST."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.http = httpx.Client(base_url=base_url, follow_redirects=False, timeout=30)

    def close(self) -> None:
        self.http.close()

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.http.get(path, **kwargs)

    def csrf(self) -> str:
        """The CSRF token of this browser's session (from a page's meta tag)."""
        answer = self.http.get("/sign-in", follow_redirects=True)
        found = _CSRF.search(answer.text)
        assert found is not None and found.group(1), answer.text
        return found.group(1)

    def post(
        self, path: str, data: dict[str, str] | None = None, *, csrf: str | None = "auto"
    ) -> httpx.Response:
        """POST a form; ``csrf="auto"`` adds the session's token, None sends none."""
        form = dict(data or {})
        if csrf == "auto":
            form["csrf_token"] = self.csrf()
        elif csrf is not None:
            form["csrf_token"] = csrf
        return self.http.post(path, data=form)

    def sign_in(self, token: str) -> httpx.Response:
        return self.post("/sign-in", {"token": token, "next": "/"})


@pytest.fixture
def web_config(metadata_url: str, tmp_path: Path) -> Config:
    return Config(
        listen="127.0.0.1:0",
        http_listen="127.0.0.1:0",
        database_url=metadata_url,
        blob_url=f"file://{tmp_path / 'blobs'}",
        maintenance_interval_seconds=0,
        shutdown_grace_seconds=0,
    )


@pytest.fixture
def web_server(web_config: Config) -> Iterator[RegistryServer]:
    with serving(web_config) as service:
        yield service


@pytest.fixture
def web_url(web_server: RegistryServer) -> str:
    assert web_server.http_address is not None
    return f"http://{web_server.http_address}"


@pytest.fixture
def registry(web_server: RegistryServer) -> Iterator[RegistryClient]:
    """The shipped gRPC client, to seed what the pages show (authentication still off)."""
    with RegistryClient(web_server.address, timeout=30) as client:
        yield client


@pytest.fixture
def web(web_url: str) -> Iterator[WebClient]:
    client = WebClient(web_url)
    yield client
    client.close()


@pytest.fixture
def people(web_server: RegistryServer, web_url: str) -> Iterator[Callable[[str], WebClient]]:
    """``people(name)`` is a browser signed in as that person (any other name: signed out).
    The first call switches authentication on, so a test seeds through ``registry`` first."""
    opened: list[WebClient] = []

    def person(name: str) -> WebClient:
        web_server.interceptor.use_authentication(Authentication([PeopleTokens()]))
        client = WebClient(web_url)
        opened.append(client)
        if name in PEOPLE:
            answer = client.sign_in(name)
            assert answer.status_code == 303, answer.text
        return client

    yield person
    for client in opened:
        client.close()


def as_grpc(server: RegistryServer, token: str) -> RegistryClient:
    """The shipped client as ``token`` (authentication on)."""
    return RegistryClient(
        server.address, metadata=[("authorization", f"Bearer {token}")], timeout=10, retries=0
    )
