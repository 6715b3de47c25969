"""What verifying an API key costs: a verified key is read once per cache period, its use is
written at most once a minute, a revoke through the same use cases takes effect at once, and
keys that fail are never cached."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from modelregistry_server.domain.api_keys import CACHE_SECONDS, ApiKeys
from modelregistry_server.domain.entities import ApiKey, Page
from modelregistry_server.domain.errors import PermissionDenied, Unauthenticated
from modelregistry_server.domain.events import Event
from modelregistry_server.domain.identity import ALL_SCOPES, AuthMethod, Caller, Permission


class _Book:
    """An in-memory ApiKeyBook that counts reads and use records (and keeps the events of
    creates and revokes)."""

    def __init__(self) -> None:
        self.keys: dict[str, ApiKey] = {}
        self.events: list[Event] = []
        self.reads = 0
        self.touches = 0
        self.while_reading: Callable[[], None] | None = None

    def transaction(self) -> AbstractContextManager[None]:
        return nullcontext()

    def append_event(self, event: Event) -> Event:
        self.events.append(event)
        return event

    def insert_api_key(self, key: ApiKey) -> None:
        self.keys[key.key_id] = key

    def get_api_key(self, key_id: str) -> ApiKey | None:
        self.reads += 1
        found = self.keys.get(key_id)
        if self.while_reading is not None:  # something happens after the row was read
            self.while_reading()
        return found

    def get_tenant_api_key(self, tenant: str, key_id: str) -> ApiKey | None:
        key = self.keys.get(key_id)
        return key if key is not None and key.tenant == tenant else None

    def list_api_keys(self, tenant: str, after: tuple[int, int] | None, limit: int) -> Page[ApiKey]:
        return Page([k for k in self.keys.values() if k.tenant == tenant], None)

    def revoke_api_key(self, tenant: str, key_id: str, when: datetime) -> ApiKey | None:
        key = self.get_tenant_api_key(tenant, key_id)
        if key is None:
            return None
        if key.revoke_time is None:
            key = self.keys[key_id] = replace(key, revoke_time=when)
        return key

    def touch_api_key(self, key_id: str, when: datetime, stale_before: datetime) -> bool:
        self.touches += 1
        key = self.keys[key_id]
        if key.last_used_time is not None and key.last_used_time >= stale_before:
            return False
        self.keys[key_id] = replace(key, last_used_time=when)
        return True


class _Clocks:
    def __init__(self) -> None:
        self.now = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
        self.mono = 1000.0

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)
        self.mono += seconds


@pytest.fixture
def clocks() -> _Clocks:
    return _Clocks()


@pytest.fixture
def book() -> _Book:
    return _Book()


@pytest.fixture
def keys(book: _Book, clocks: _Clocks) -> ApiKeys:
    return ApiKeys(book, clock=lambda: clocks.now, monotonic=lambda: clocks.mono)


ADMIN = Caller(tenant="acme", subject="boot", scopes=ALL_SCOPES)


def test_a_verified_key_is_read_once_per_cache_period(
    keys: ApiKeys, book: _Book, clocks: _Clocks
) -> None:
    secret = keys.create(ADMIN, "ci", ["registry.read"]).credential
    for _ in range(10):
        caller = keys.authenticate(secret)
    assert book.reads == 1
    assert caller.method is AuthMethod.API_KEY and caller.scopes == {Permission.READ}
    clocks.advance(CACHE_SECONDS + 0.1)
    keys.authenticate(secret)
    assert book.reads == 2


def test_use_is_recorded_at_most_once_a_minute(keys: ApiKeys, book: _Book, clocks: _Clocks) -> None:
    created = keys.create(ADMIN, "ci", ["registry.read"])
    for _ in range(20):
        keys.authenticate(created.credential)
        clocks.advance(1)  # the cache expires every few calls: still one write a minute
    assert book.touches == 1
    clocks.advance(60)
    keys.authenticate(created.credential)
    assert book.touches == 2
    assert book.keys[created.key.key_id].last_used_time == clocks.now


def test_a_revoke_here_takes_effect_at_once(keys: ApiKeys, book: _Book) -> None:
    created = keys.create(ADMIN, "ci", ["registry.read"])
    keys.authenticate(created.credential)
    keys.revoke(ADMIN, created.key.key_id)
    with pytest.raises(Unauthenticated):
        keys.authenticate(created.credential)


def test_a_read_that_raced_a_revoke_is_not_cached(keys: ApiKeys, book: _Book) -> None:
    created = keys.create(ADMIN, "ci", ["registry.read"])
    book.while_reading = lambda: keys.revoke(ADMIN, created.key.key_id)
    keys.authenticate(created.credential)  # read before the revoke: this call is admitted
    book.while_reading = None
    with pytest.raises(Unauthenticated):
        keys.authenticate(created.credential)  # but nothing after the revoke is


def test_failures_are_not_cached(keys: ApiKeys, book: _Book) -> None:
    created = keys.create(ADMIN, "ci", ["registry.read"])
    wrong = created.credential[:-1] + ("a" if created.credential[-1] != "a" else "b")
    for _ in range(3):
        with pytest.raises(Unauthenticated):
            keys.authenticate(wrong)
    assert book.reads == 3
    keys.authenticate(created.credential)  # the right secret still works


def test_an_expiry_passing_while_cached_is_seen(keys: ApiKeys, clocks: _Clocks) -> None:
    soon = clocks.now + timedelta(seconds=2)
    secret = keys.create(ADMIN, "short", ["registry.read"], soon).credential
    keys.authenticate(secret)
    clocks.now += timedelta(seconds=3)  # wall clock only: the cache entry is still fresh
    with pytest.raises(Unauthenticated):
        keys.authenticate(secret)


def test_the_use_cases_require_admin_themselves(keys: ApiKeys) -> None:
    reader = Caller(tenant="acme", subject="r", scopes=frozenset({Permission.READ}))
    with pytest.raises(PermissionDenied):
        keys.create(reader, "x", ["registry.read"])
    with pytest.raises(PermissionDenied):
        keys.list_keys(reader)


def test_creating_and_revoking_are_recorded_once(keys: ApiKeys, book: _Book) -> None:
    admin = Caller(tenant="t", subject="ann", scopes=ALL_SCOPES, method=AuthMethod.JWT)
    created = keys.create(admin, "ci", ["registry.read"])
    keys.revoke(admin, created.key.key_id)
    keys.revoke(admin, created.key.key_id)  # already revoked: nothing changes, nothing recorded
    name = f"apiKeys/{created.key.key_id}"
    assert [(e.method, e.resource, e.principal) for e in book.events] == [
        ("CreateApiKey", name, "user:ann"),
        ("RevokeApiKey", name, "user:ann"),
    ]
    assert book.events[0].summary == {
        "name": "ci",
        "scopes": ["registry.read"],
        "expire_time": None,
    }
