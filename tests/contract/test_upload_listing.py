"""Contract of ``UploadSessions.list_uploads`` over every metadata backend: the sessions of one
version of one tenant, filtered and ordered like every listing, in keyset pages."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from modelregistry_server.domain.entities import UploadSession, UploadState
from modelregistry_server.domain.errors import InvalidArgument, Reason
from modelregistry_server.domain.filter_parser import parse_filter
from modelregistry_server.domain.listing import (
    UPLOAD_DEFAULT_ORDER,
    UPLOAD_SCHEMA,
    parse_order_by,
)
from modelregistry_server.domain.ports import ListQuery, UploadSessions

T0 = datetime(2026, 1, 1, tzinfo=UTC)
SHA = "a" * 64


def session(
    upload_id: str,
    *,
    tenant: str = "t",
    model_id: str = "m",
    number: int = 1,
    file_id: str = "payload",
    size: int | None = 100,
    sha256: str = SHA,
    committed: int = 0,
    state: UploadState = UploadState.ACTIVE,
    at: float = 0,
) -> UploadSession:
    time = T0 + timedelta(seconds=at)
    return UploadSession(
        tenant, upload_id, model_id, number, file_id, size, sha256,
        "application/octet-stream", committed, state, time, time,
    )  # fmt: skip


def query(filter_text: str = "", order_by: str = "", page_size: int = 50) -> ListQuery:
    return ListQuery(
        parse_filter(filter_text, UPLOAD_SCHEMA),
        parse_order_by(order_by, UPLOAD_SCHEMA, UPLOAD_DEFAULT_ORDER),
        page_size=page_size,
    )


def ids(store: UploadSessions, q: ListQuery, *, tenant: str = "t", number: int = 1) -> list[str]:
    """Every upload id of the listing, following cursors page by page."""
    found: list[str] = []
    for _ in range(100):
        page = store.list_uploads(tenant, "m", number, q)
        found += [s.upload_id for s in page.items]
        if page.next_cursor is None:
            return found
        q = replace(q, after=page.next_cursor)
    raise AssertionError("the listing did not end")


@pytest.fixture
def store(metadata_store: UploadSessions) -> UploadSessions:
    """Sessions of version m/1 in tenant t, plus look-alikes elsewhere."""
    for s in [
        session("u3", file_id="a/b.bin", size=None, sha256="", at=3),
        session("u1", committed=40, at=1),
        session("u2", committed=70, at=2),
        session("u5", state=UploadState.COMMITTED, committed=100, at=5),
        session("u4", sha256="b" * 64, at=4),
        session("x-other-version", number=2),
        session("x-other-model", model_id="n"),
        session("x-other-tenant", tenant="u"),
    ]:
        metadata_store.insert_upload(s)
    return metadata_store


def test_lists_the_sessions_of_one_version_of_one_tenant(store: UploadSessions) -> None:
    assert ids(store, query()) == ["u1", "u2", "u3", "u4", "u5"]
    assert ids(store, query(), number=2) == ["x-other-version"]
    assert ids(store, query(), tenant="u") == ["x-other-tenant"]
    assert ids(store, query(), tenant="nobody") == []
    page = store.list_uploads("t", "m", 1, query())
    assert page.items[0] == session("u1", committed=40, at=1)  # every field round-trips
    assert page.items[2].declared_size is None


def test_pages_cover_every_session_once(store: UploadSessions) -> None:
    for size in (1, 2, 4, 5, 6):
        assert ids(store, query(page_size=size)) == ["u1", "u2", "u3", "u4", "u5"]
        assert ids(store, query("", "create_time desc", size)) == ["u5", "u4", "u3", "u2", "u1"]


def test_new_sessions_do_not_shift_pages(store: UploadSessions) -> None:
    first = store.list_uploads("t", "m", 1, query(page_size=2))
    store.insert_upload(session("u0"))
    store.insert_upload(session("u9"))
    rest = ids(store, replace(query(page_size=2), after=first.next_cursor))
    assert [s.upload_id for s in first.items] + rest == ["u1", "u2", "u3", "u4", "u5", "u9"]


@pytest.mark.parametrize(
    ("filter_text", "expected"),
    [
        ("state = ACTIVE", ["u1", "u2", "u3", "u4"]),
        ("state = COMMITTED", ["u5"]),
        ('file_id = "a/b.bin"', ["u3"]),
        ('file_id = "a/*"', ["u3"]),
        (f"sha256 = {SHA}", ["u1", "u2", "u5"]),
        ("size_bytes = 100", ["u1", "u2", "u4", "u5"]),
        ("size_bytes >= 0", ["u1", "u2", "u4", "u5"]),  # a declared size
        ("committed_size_bytes >= 40 AND state = ACTIVE", ["u1", "u2"]),
        ('create_time > "2026-01-01T00:00:02Z"', ["u3", "u4", "u5"]),
        ('update_time <= "2026-01-01T00:00:01Z"', ["u1"]),
        ("upload_id = u4 OR upload_id = u2", ["u2", "u4"]),
        (f"state = ACTIVE AND file_id = payload AND size_bytes = 100 AND sha256 = {SHA}",
         ["u1", "u2"]),
    ],
)  # fmt: skip
def test_filters(store: UploadSessions, filter_text: str, expected: list[str]) -> None:
    assert ids(store, query(filter_text)) == expected
    assert ids(store, query(filter_text, page_size=1)) == expected


def test_order_by(store: UploadSessions) -> None:
    assert ids(store, query("state = ACTIVE", "committed_size_bytes desc, update_time desc")) == [
        "u2", "u1", "u4", "u3",
    ]  # fmt: skip
    # Sessions without a declared size sort last in both directions.
    assert ids(store, query("", "size_bytes desc"))[-1] == "u3"
    assert ids(store, query("", "size_bytes"))[-1] == "u3"


def test_bad_cursor_is_invalid_page_token(store: UploadSessions) -> None:
    with pytest.raises(InvalidArgument) as caught:
        store.list_uploads("t", "m", 1, replace(query(), after=("u1",)))  # the pk is missing
    assert caught.value.reason is Reason.INVALID_PAGE_TOKEN


def test_owner_sees_its_own_and_ownerless_sessions(store: UploadSessions) -> None:
    store.insert_upload(replace(session("alice-1"), owner="user:alice"))
    store.insert_upload(replace(session("bob-1"), owner="user:bob"))
    assert store.get_upload("t", "alice-1") == replace(session("alice-1"), owner="user:alice")

    def owned(owner: str | None) -> list[str]:
        return [s.upload_id for s in store.list_uploads("t", "m", 1, query(), owner).items]

    legacy = ["u1", "u2", "u3", "u4", "u5"]  # opened before identity: owner ''
    assert owned("user:alice") == ["alice-1", *legacy]
    assert owned("user:bob") == ["bob-1", *legacy]
    assert owned(None) == ["alice-1", "bob-1", *legacy]
