"""Use cases of API keys: create (the secret is returned once), list, revoke, and the
verification of a presented key that turns it into the :class:`Caller` of a call.

Keys belong to the creator's tenant; nothing the creator sends chooses another. Creating,
listing and revoking need ``registry.admin`` (the permission table checks it at the edge, and
these use cases again, since the bootstrap CLI reaches them without the edge).

Verification reads the key's row; a verified key is remembered for :data:`CACHE_SECONDS` so a
busy client does not cost a query per call. A revoke through this process drops its entry at
once; a revoke through another replica sharing the database takes effect here within
:data:`CACHE_SECONDS`. Expiry is checked on every call. ``last_used_time`` is written at most
once per :data:`TOUCH_INTERVAL` per key (a conditional update, so replicas agree too).
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Protocol

from . import api_key_tokens as tokens
from .entities import ApiKey
from .errors import (
    DomainError,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Reason,
    Unauthenticated,
)
from .events import change
from .identity import AuthMethod, Caller, Permission
from .listing import PageTokens, typed_cursor
from .paging import Pager
from .ports import EventLog, Transactions
from .ports.api_keys import ApiKeyBook
from .validation import check_text

log = logging.getLogger(__name__)

CACHE_SECONDS = 5.0
CACHE_ENTRIES = 10_000
TOUCH_INTERVAL = timedelta(minutes=1)
MAX_NAME = 200
INVALID_MESSAGE = "the credentials do not verify"
_NAME_RE = re.compile(r"apiKeys/([^/]+)")


def api_key_name(key_id: str) -> str:
    """The resource name of a key: ``apiKeys/{key_id}``."""
    return f"apiKeys/{key_id}"


def parse_api_key_name(name: str, field: str = "name") -> str:
    """The key id in ``apiKeys/{key_id}`` (a bare key id is accepted too)."""
    match = _NAME_RE.fullmatch(name)
    key_id = match.group(1) if match else name
    if not tokens.is_key_id(key_id):
        raise InvalidArgument.field(field, "must be apiKeys/{key_id} with a 16-character key id")
    return key_id


class ApiKeyStore(Transactions, ApiKeyBook, EventLog, Protocol):
    """The ports the API key use cases need (creating and revoking are recorded events)."""


@dataclass(frozen=True)
class CreatedApiKey:
    """A new key and its credential (``mrk_<key_id>_<secret>``), which is never shown again."""

    key: ApiKey
    credential: str


@dataclass
class _Verified:
    key: ApiKey
    at: float  # time.monotonic() of the read


class ApiKeys:
    """Create, list and revoke API keys, and verify presented ones (module docstring)."""

    def __init__(
        self,
        store: ApiKeyStore,
        *,
        clock: Callable[[], datetime],
        page_tokens: PageTokens | None = None,
        cache_seconds: float = CACHE_SECONDS,
        touch_interval: timedelta = TOUCH_INTERVAL,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._clock = clock
        self._tokens = page_tokens or PageTokens.random()
        self._cache_seconds = cache_seconds
        self._touch_interval = touch_interval
        self._monotonic = monotonic
        self._verified: dict[str, _Verified] = {}
        self._epoch = 0  # counts revokes, so a read that raced one is not cached
        self._lock = threading.Lock()

    # -- management ----------------------------------------------------------------------------
    def create(
        self,
        caller: Caller,
        name: str,
        scopes: Iterable[str],
        expire_time: datetime | None = None,
    ) -> CreatedApiKey:
        """A new key of the caller's tenant granting ``scopes``."""
        _require_admin(caller)
        now = self._clock()
        key_id, secret = tokens.new_key_id(), tokens.new_secret()
        key = ApiKey(
            tenant=caller.tenant,
            key_id=key_id,
            name=_check_name(name),
            scopes=_check_scopes(scopes),
            created_by=caller.actor,
            create_time=now,
            expire_time=_check_expiry(expire_time, now),
            secret_hash=tokens.secret_hash(key_id, secret),
        )
        summary = {
            "name": key.name,
            "scopes": sorted(key.scopes),
            "expire_time": None if key.expire_time is None else key.expire_time.isoformat(),
        }
        with self._store.transaction():
            self._store.insert_api_key(key)
            self._store.append_event(
                change(caller, "CreateApiKey", api_key_name(key_id), now, summary=summary)
            )
        return CreatedApiKey(key, tokens.credential(key_id, secret))

    def list_keys(
        self, caller: Caller, *, page_size: int = 0, page_token: str = ""
    ) -> tuple[list[ApiKey], str]:
        """The caller's tenant's keys (revoked and expired ones too), oldest first."""
        _require_admin(caller)
        pager = Pager(page_size, page_token, self._tokens, tenant=caller.tenant)
        cursor = typed_cursor(pager.cursor("api_keys"), int, int)
        after = None if cursor is None else (int(cursor[0]), int(cursor[1]))
        return pager.reply(self._store.list_api_keys(caller.tenant, after, pager.size))

    def revoke(self, caller: Caller, key_id: str) -> ApiKey:
        """Revoke a key of the caller's tenant; revoking a revoked key changes nothing and
        returns it as it is (its first ``revoke_time``)."""
        _require_admin(caller)
        now = self._clock()
        with self._store.transaction():
            was = self._store.get_tenant_api_key(caller.tenant, key_id)
            key = self._store.revoke_api_key(caller.tenant, key_id, now)
            # This call revoked it: it was not revoked, and the time set is this call's (a
            # concurrent revoke that won leaves its own).
            newly = was is not None and was.revoke_time is None
            if newly and key is not None and key.revoke_time == now:
                self._store.append_event(change(caller, "RevokeApiKey", api_key_name(key_id), now))
        self._forget(key_id)
        if key is None:
            raise NotFound(f"API key {key_id!r} does not exist", reason=Reason.API_KEY_NOT_FOUND)
        return key

    # -- verification --------------------------------------------------------------------------
    def authenticate(self, bearer: str) -> Caller:
        """The caller an ``mrk_`` credential proves; UNAUTHENTICATED ``CREDENTIALS_INVALID``
        (one message whatever failed) if it is malformed, unknown, wrong, revoked or expired."""
        parsed = tokens.parse_credential(bearer)
        if parsed is None:
            raise _invalid()
        key_id, secret = parsed
        key, epoch = self._lookup(key_id)
        stored = key.secret_hash if key is not None else tokens.secret_hash("", "")
        matches = tokens.secret_matches(stored, key_id, secret)  # compared even for no key
        now = self._clock()
        if key is None or not matches or not key.usable(now):
            with self._lock:
                self._verified.pop(key_id, None)
            raise _invalid()
        self._remember(key, epoch)
        self._touch(key, now)
        return Caller(
            tenant=key.tenant,
            subject=key.name,
            scopes=frozenset(Permission(s) for s in key.scopes if s in _KNOWN_SCOPES),
            api_key_id=key.key_id,
            method=AuthMethod.API_KEY,
        )

    def _lookup(self, key_id: str) -> tuple[ApiKey | None, int]:
        """The key (cached if verified recently) and the revocation epoch it was read in."""
        with self._lock:
            epoch = self._epoch
            cached = self._verified.get(key_id)
        if cached is not None and self._monotonic() - cached.at < self._cache_seconds:
            return cached.key, epoch
        return self._store.get_api_key(key_id), epoch

    def _remember(self, key: ApiKey, epoch: int) -> None:
        with self._lock:
            if epoch != self._epoch:
                return  # a revoke ran meanwhile: this read may predate it
            cached = self._verified.get(key.key_id)
            if cached is not None and cached.key is key:
                return  # still the entry read earlier: its age stays
            if len(self._verified) >= CACHE_ENTRIES:
                self._verified.clear()
            self._verified[key.key_id] = _Verified(key, self._monotonic())

    def _forget(self, key_id: str) -> None:
        """Drop a revoked key; calls already past their lookup do not cache it again."""
        with self._lock:
            self._epoch += 1
            self._verified.pop(key_id, None)

    def _touch(self, key: ApiKey, now: datetime) -> None:
        last = key.last_used_time
        if last is not None and now - last < self._touch_interval:
            return
        try:
            self._store.touch_api_key(key.key_id, now, now - self._touch_interval)
        except DomainError as exc:  # the call is authenticated; the bookkeeping can wait
            log.warning("could not record the use of API key %s: %s", key.key_id, exc)
            return
        with self._lock:
            cached = self._verified.get(key.key_id)
            if cached is not None and cached.key is key:
                cached.key = replace(key, last_used_time=now)


_KNOWN_SCOPES = frozenset(p.value for p in Permission)


def _invalid() -> Unauthenticated:
    return Unauthenticated(INVALID_MESSAGE, reason=Reason.CREDENTIALS_INVALID)


def _require_admin(caller: Caller) -> None:
    if not caller.is_admin:
        raise PermissionDenied(
            f"managing API keys needs the scope {Permission.ADMIN.value}",
            reason=Reason.SCOPE_MISSING,
            metadata={"scope": Permission.ADMIN.value},
        )


def _check_name(name: str) -> str:
    field = "api_key.display_name"
    if not name.strip():
        raise InvalidArgument.field(field, "is required")
    return check_text(name, field, MAX_NAME)


def _check_scopes(scopes: Iterable[str]) -> frozenset[str]:
    field = "api_key.scopes"
    chosen = frozenset(scopes)
    if not chosen:
        raise InvalidArgument.field(field, "must name at least one scope")
    unknown = sorted(chosen - _KNOWN_SCOPES)
    if unknown:
        known = ", ".join(sorted(_KNOWN_SCOPES))
        raise InvalidArgument.field(field, f"unknown scope {unknown[0]!r} (known: {known})")
    return chosen


def _check_expiry(expire_time: datetime | None, now: datetime) -> datetime | None:
    if expire_time is not None and expire_time <= now:
        raise InvalidArgument.field("api_key.expire_time", "must be in the future")
    return expire_time
