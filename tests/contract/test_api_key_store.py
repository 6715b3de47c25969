"""The ``ApiKeyBook`` port over every metadata backend: keys are stored with their hash only,
found by key id, listed per tenant with keyset paging, revoked once, touched conditionally."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from modelregistry_server.domain.entities import ApiKey
from modelregistry_server.storage.metadata import PeeweeMetadataStore

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def _key(key_id: str, tenant: str = "acme", *, at: datetime = T0, **changes: object) -> ApiKey:
    values: dict[str, object] = {
        "tenant": tenant,
        "key_id": key_id,
        "name": f"ci {key_id}",
        "scopes": frozenset({"registry.read", "registry.create"}),
        "created_by": "user:alice",
        "create_time": at,
        "secret_hash": "ab" * 32,
        **changes,
    }
    return ApiKey(**values)  # type: ignore[arg-type]


def test_a_key_reads_back_as_written(metadata_store: PeeweeMetadataStore) -> None:
    key = _key("k1", expire_time=T0 + timedelta(days=30))
    metadata_store.insert_api_key(key)
    assert metadata_store.get_api_key("k1") == key
    assert metadata_store.get_tenant_api_key("acme", "k1") == key
    assert metadata_store.get_api_key("nope") is None


def test_another_tenant_does_not_see_the_key(metadata_store: PeeweeMetadataStore) -> None:
    metadata_store.insert_api_key(_key("k1", "acme"))
    assert metadata_store.get_tenant_api_key("other", "k1") is None
    assert metadata_store.list_api_keys("other", None, 10).items == []
    assert metadata_store.revoke_api_key("other", "k1", T0) is None
    assert metadata_store.get_api_key("k1").revoke_time is None  # type: ignore[union-attr]


def test_listing_pages_in_creation_order_without_skipping(
    metadata_store: PeeweeMetadataStore,
) -> None:
    # Two keys share a create time: the row id breaks the tie.
    times = [T0, T0 + timedelta(seconds=1), T0 + timedelta(seconds=1), T0 + timedelta(seconds=2)]
    for n, at in enumerate(times):
        metadata_store.insert_api_key(_key(f"k{n}", at=at))
    metadata_store.insert_api_key(_key("x", "other"))
    seen: list[str] = []
    cursor = None
    for _ in range(5):
        page = metadata_store.list_api_keys("acme", cursor, 3 if cursor is None else 1)
        seen.extend(k.key_id for k in page.items)
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == ["k0", "k1", "k2", "k3"]


def test_revoking_sets_the_time_once(metadata_store: PeeweeMetadataStore) -> None:
    metadata_store.insert_api_key(_key("k1"))
    first = metadata_store.revoke_api_key("acme", "k1", T0 + timedelta(hours=1))
    again = metadata_store.revoke_api_key("acme", "k1", T0 + timedelta(hours=2))
    assert first is not None and again is not None
    assert first.revoke_time == again.revoke_time == T0 + timedelta(hours=1)
    assert metadata_store.revoke_api_key("acme", "missing", T0) is None


def test_touch_writes_only_a_stale_last_use(metadata_store: PeeweeMetadataStore) -> None:
    metadata_store.insert_api_key(_key("k1"))
    minute = timedelta(minutes=1)
    t1 = T0 + timedelta(hours=1)
    assert metadata_store.touch_api_key("k1", t1, t1 - minute)  # never used: written
    t2 = t1 + timedelta(seconds=30)
    assert not metadata_store.touch_api_key("k1", t2, t2 - minute)  # used 30 s ago: kept
    assert metadata_store.get_api_key("k1").last_used_time == t1  # type: ignore[union-attr]
    t3 = t1 + timedelta(seconds=90)
    assert metadata_store.touch_api_key("k1", t3, t3 - minute)
    assert metadata_store.get_api_key("k1").last_used_time == t3  # type: ignore[union-attr]
    assert not metadata_store.touch_api_key("missing", t3, t3 - minute)
