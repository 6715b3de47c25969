"""Contract of the ``EventLog`` port on every metadata backend: numbering and chaining per
tenant in commit order, atomicity with the surrounding transaction, listing, verification
of tampered rows, and pruning with a moving anchor."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from modelregistry_server.domain import names
from modelregistry_server.domain.audit import Audit
from modelregistry_server.domain.entities import Alias
from modelregistry_server.domain.errors import InvalidArgument
from modelregistry_server.domain.events import Event, EventKind, chain_hash
from modelregistry_server.domain.filter_parser import parse_filter
from modelregistry_server.domain.identity import Caller, Permission
from modelregistry_server.domain.listing import EVENT_DEFAULT_ORDER, EVENT_SCHEMA
from modelregistry_server.domain.ports import ALL_EVENTS, EventScope, ListQuery
from modelregistry_server.domain.registry import Registry
from modelregistry_server.domain.updates import Patch
from modelregistry_server.storage.metadata import PeeweeMetadataStore
from modelregistry_server.storage.metadata.database import open_database
from modelregistry_server.storage.metadata.migrations import LATEST_VERSION, migrate
from tests.contract.test_metadata_store import make_model

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def _event(tenant: str, n: int, **fields: Any) -> Event:
    values: dict[str, Any] = {
        "time": T0 + timedelta(seconds=n),
        "principal": "user:ann",
        "method": "UpdateModel",
        "resource": f"models/m{n % 3}",
        "summary": {"update_mask": ["description"], "n": n, "ratio": 0.5},
    }
    values.update(fields)
    return Event(tenant, **values)


def _append(store: PeeweeMetadataStore, event: Event) -> Event:
    with store.transaction():
        return store.append_event(event)


def _audit(store: PeeweeMetadataStore, now: datetime = T0, keep: timedelta | None = None) -> Audit:
    return Audit(store, clock=lambda: now, retention=keep)


def _sql(store: PeeweeMetadataStore, statement: str) -> None:
    db: Any = store.backend.database
    with db.connection_context():
        db.execute_sql(statement)


def test_events_are_numbered_and_chained_per_tenant(metadata_store: PeeweeMetadataStore) -> None:
    a = [_append(metadata_store, _event("a", n)) for n in range(1, 4)]
    b = _append(metadata_store, _event("b", 1))
    assert [e.sequence for e in a] == [1, 2, 3] and b.sequence == 1
    assert a[0].prev_hash == "" and b.prev_hash == ""
    assert [e.prev_hash for e in a[1:]] == [a[0].hash, a[1].hash]
    assert all(e.hash == chain_hash(e.prev_hash, e) for e in a)
    stored = metadata_store.read_events("a", 0, 10)
    assert [(e.sequence, e.hash, e.summary, e.time) for e in stored] == [
        (e.sequence, e.hash, e.summary, e.time) for e in a
    ]
    head = metadata_store.event_head("a")
    assert head is not None and (head.last_sequence, head.last_hash) == (3, a[-1].hash)
    assert metadata_store.event_tenants() == ["a", "b"]
    assert metadata_store.read_events("a", 2, 10) == stored[2:]
    assert _audit(metadata_store).verify_tenant("a").ok


def test_text_beyond_ascii_is_chained_as_the_domain_hashes_it(
    metadata_store: PeeweeMetadataStore,
) -> None:
    """PostgreSQL hashes the event in SQL: its bytes must be the domain's canonical ones."""
    fields: dict[str, Any] = {
        "principal": "user:zoë",
        "resource": "models/модель",
        "summary": {"é": ["ü", None, 2.5, '"\\'], "emoji": "\U0001f680", "n": 10**15},
        "etag_before": "ß",
    }
    events = [_append(metadata_store, _event("tenant-ü", n, **fields)) for n in range(1, 12)]
    assert [e.sequence for e in events] == list(range(1, 12))
    assert all(e.hash == chain_hash(e.prev_hash, e) for e in events)
    stored = metadata_store.read_events("tenant-ü", 0, 100)
    assert [(e.hash, e.summary, e.principal) for e in stored] == [
        (e.hash, e.summary, e.principal) for e in events
    ]
    assert _audit(metadata_store).verify_tenant("tenant-ü").ok


def test_a_rolled_back_transaction_leaves_no_event(metadata_store: PeeweeMetadataStore) -> None:
    _append(metadata_store, _event("t", 1))
    with pytest.raises(RuntimeError), metadata_store.transaction():
        metadata_store.append_event(_event("t", 2))
        raise RuntimeError("the change fails")
    assert [e.sequence for e in metadata_store.read_events("t", 0, 10)] == [1]
    assert _append(metadata_store, _event("t", 3)).sequence == 2  # no gap either
    assert _audit(metadata_store).verify_tenant("t").ok


def test_a_change_whose_event_cannot_be_written_is_rolled_back(
    metadata_store: PeeweeMetadataStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = Registry(metadata_store, clock=lambda: T0)
    caller = Caller(tenant="t", subject="ann")
    registry.create_model(caller, "m", {"description": "before"})

    def broken(event: Event) -> Event:
        raise RuntimeError("the event log is unwritable")

    monkeypatch.setattr(metadata_store, "append_event", broken)
    with pytest.raises(RuntimeError):
        registry.update_model(caller, "m", "", Patch(("description",), {"description": "after"}))
    monkeypatch.undo()
    assert registry.get_model(caller, "m").description == "before"
    assert [e.method for e in metadata_store.read_events("t", 0, 10)] == ["CreateModel"]


def test_verification_during_appends_checks_up_to_the_head_it_read(
    metadata_store: PeeweeMetadataStore,
) -> None:
    _seeded(metadata_store, 3)
    audit = _audit(metadata_store)
    reads = metadata_store.read_events

    def appending(tenant: str, after: int, limit: int) -> list[Event]:
        found = reads(tenant, after, limit)
        if after == 0:  # another writer commits while the walk runs
            _append(metadata_store, _event("t", 99))
        return reads(tenant, after, limit) if after == 0 else found

    metadata_store.read_events = appending  # type: ignore[method-assign]
    result = audit.verify_tenant("t")
    assert (result.ok, result.checked, result.last_sequence) == (True, 3, 3)


def test_concurrent_appends_get_every_sequence_once(metadata_store: PeeweeMetadataStore) -> None:
    threads, each = 4, 15
    errors: list[BaseException] = []

    def work(k: int) -> None:
        try:
            for n in range(each):
                _append(metadata_store, _event("t", k * 100 + n))
        except BaseException as exc:  # reported below
            errors.append(exc)

    workers = [threading.Thread(target=work, args=(k,)) for k in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=120)
    assert errors == []
    stored = metadata_store.read_events("t", 0, 1000)
    assert [e.sequence for e in stored] == list(range(1, threads * each + 1))
    assert _audit(metadata_store).verify_tenant("t").ok


def _seeded(store: PeeweeMetadataStore, count: int = 5) -> list[Event]:
    return [_append(store, _event("t", n)) for n in range(1, count + 1)]


@pytest.mark.parametrize(
    ("statement", "failed", "reason"),
    [
        ("UPDATE events SET principal = 'user:eve' WHERE sequence = 3", 3, "hash"),
        ("UPDATE events SET summary = '{}' WHERE sequence = 2", 2, "hash"),
        ("UPDATE events SET event_time = event_time + 1 WHERE sequence = 4", 4, "hash"),
        ("UPDATE events SET kind = 'ACCESS' WHERE sequence = 1", 1, "hash"),
        ("UPDATE events SET prev_hash = 'x' WHERE sequence = 2", 2, "prev_hash"),
        ("DELETE FROM events WHERE sequence = 3", 3, "missing"),
        ("DELETE FROM events WHERE sequence = 5", 5, "missing"),
        ("DELETE FROM events WHERE sequence = 1", 1, "missing"),
        ("UPDATE event_heads SET last_hash = 'x'", 5, "head"),
        (
            "INSERT INTO events (tenant, sequence, event_time, kind, principal, method, resource, "
            "model_id, outcome, request_id, etag_before, etag_after, summary, prev_hash, hash) "
            "SELECT tenant, 6, event_time, kind, principal, method, resource, model_id, outcome, "
            "request_id, etag_before, etag_after, summary, hash, 'h' FROM events "
            "WHERE sequence = 5",
            6,
            "follows the chain head",
        ),
    ],
)
def test_verification_fails_at_the_tampered_row(
    metadata_store: PeeweeMetadataStore, statement: str, failed: int, reason: str
) -> None:
    _seeded(metadata_store)
    assert _audit(metadata_store).verify_tenant("t").ok
    _sql(metadata_store, statement)
    result = _audit(metadata_store).verify_tenant("t")
    assert (result.ok, result.failed_sequence) == (False, failed), result
    assert reason in result.reason


def test_a_rewritten_row_with_a_recomputed_hash_breaks_the_next_link(
    metadata_store: PeeweeMetadataStore,
) -> None:
    events = _seeded(metadata_store)
    forged = events[1]
    forged.principal = "user:eve"
    forged.hash = chain_hash(forged.prev_hash, forged)
    _sql(
        metadata_store,
        f"UPDATE events SET principal = 'user:eve', hash = '{forged.hash}' WHERE sequence = 2",
    )
    result = _audit(metadata_store).verify_tenant("t")
    assert (result.ok, result.failed_sequence) == (False, 3)


def test_listing_filters_pages_and_scopes(metadata_store: PeeweeMetadataStore) -> None:
    _seeded(metadata_store, 6)
    _append(metadata_store, _event("t", 7, kind=EventKind.ACCESS, outcome="PERMISSION_DENIED"))
    _append(metadata_store, _event("t", 8, resource="events"))
    _append(metadata_store, _event("other", 1))

    def page(text: str = "", scope: EventScope = ALL_EVENTS, **kw: Any) -> list[int]:
        expr = parse_filter(text, EVENT_SCHEMA) if text else None
        query = ListQuery(expr, EVENT_DEFAULT_ORDER, True, kw.get("size", 100), kw.get("after"))
        found = metadata_store.list_events("t", query, scope)
        return [e.sequence for e in found.items]

    assert page() == list(range(1, 9))
    assert page('resource = "models/m1"') == [1, 4, 7]
    assert page('resource = "models/m*"') == list(range(1, 8))
    assert page("kind = ACCESS") == [7]
    assert page('event_time >= "2026-12-01T12:00:05Z"') == [5, 6, 7, 8]
    assert page("sequence > 2 AND sequence <= 4") == [3, 4]
    expr = parse_filter('model_id = "m2"', EVENT_SCHEMA)
    first = metadata_store.list_events(
        "t", ListQuery(expr, EVENT_DEFAULT_ORDER, True, 1), ALL_EVENTS
    )
    assert [e.sequence for e in first.items] == [2] and first.next_cursor is not None
    rest = metadata_store.list_events(
        "t", ListQuery(expr, EVENT_DEFAULT_ORDER, True, 10, first.next_cursor), ALL_EVENTS
    )
    assert [e.sequence for e in rest.items] == [5] and rest.next_cursor is None
    with pytest.raises(InvalidArgument):
        metadata_store.read_events("t", 0, 0)


def test_non_admins_see_the_changes_of_models_they_own(
    metadata_store: PeeweeMetadataStore,
) -> None:
    """Models without a policy: everyone owns them; with one: its owners. Access events,
    events of other resources and of models gone from the catalog are for admins only."""
    for model_id in ("open", "owned", "viewed"):
        metadata_store.insert_model(make_model(model_id, tenant="t"))
    _sql(metadata_store, "UPDATE models SET policy = '{}' WHERE model_id IN ('owned', 'viewed')")
    for model_id, role in (("owned", "owner"), ("viewed", "viewer")):
        _sql(
            metadata_store,
            "INSERT INTO model_members (tenant, model_pk, member, role) SELECT 't', id, "
            f"'group:ml', '{role}' FROM models WHERE model_id = '{model_id}'",
        )
    resources = ["models/open", "models/owned/versions/1", "models/viewed", "models/gone", "events"]
    for n, resource in enumerate(resources, start=1):
        _append(metadata_store, _event("t", n, resource=resource))
    _append(metadata_store, _event("t", 9, resource="models/open", kind=EventKind.ACCESS))

    def seen(scope: EventScope) -> list[str]:
        query = ListQuery(None, EVENT_DEFAULT_ORDER, True, 100)
        return [e.resource for e in metadata_store.list_events("t", query, scope).items]

    assert seen(EventScope(frozenset({"user:ann", "group:ml"}))) == [
        "models/open",
        "models/owned/versions/1",
    ]
    assert seen(EventScope(frozenset({"user:bob"}))) == ["models/open"]
    assert len(seen(ALL_EVENTS)) == 6


def test_pruning_anchors_the_chain_at_the_oldest_kept_event(
    metadata_store: PeeweeMetadataStore,
) -> None:
    events = _seeded(metadata_store, 6)
    _append(metadata_store, _event("u", 1))  # another tenant, older than the cutoff too
    now = T0 + timedelta(days=10)
    cutoff_keeps = T0 + timedelta(seconds=4)  # events 4, 5, 6 are not older than this
    audit = _audit(metadata_store, now=now, keep=now - cutoff_keeps)
    assert audit.prune() == 3 + 1
    kept = metadata_store.read_events("t", 0, 100)
    assert [e.sequence for e in kept] == [4, 5, 6, 7]
    assert kept[-1].method == "PruneEvents" and kept[-1].principal == "system"
    assert kept[-1].summary["removed"] == 3
    head = metadata_store.event_head("t")
    assert head is not None and (head.anchor_sequence, head.anchor_hash) == (4, events[2].hash)
    assert audit.verify_tenant("t").ok and audit.verify_tenant("u").ok
    assert [e.method for e in metadata_store.read_events("u", 0, 10)] == ["PruneEvents"]
    _sql(metadata_store, "DELETE FROM events WHERE tenant = 't' AND sequence = 4")
    result = audit.verify_tenant("t")
    assert (result.ok, result.failed_sequence) == (False, 4)


def test_no_retention_keeps_everything(metadata_store: PeeweeMetadataStore) -> None:
    _seeded(metadata_store, 2)
    assert _audit(metadata_store, now=T0 + timedelta(days=1000)).prune() == 0
    assert len(metadata_store.read_events("t", 0, 10)) == 2


def test_events_outlive_the_models_they_describe(metadata_store: PeeweeMetadataStore) -> None:
    clock = [T0]
    registry = Registry(metadata_store, clock=lambda: clock[0], retention=timedelta(days=1))
    caller = Caller(tenant="t", subject="ann", scopes=frozenset({Permission.ADMIN}))
    registry.create_model(caller, "m", {})
    registry.create_version(caller, "m", {})
    registry.create_version(caller, "m", {})
    registry.create_model(caller, "keep", {})
    registry.create_version(caller, "keep", {})
    registry.delete_model(caller, "m", "", force=True)
    registry.delete_version(caller, names.VersionRef("keep", number=1), "")
    clock[0] = T0 + timedelta(days=2)
    assert registry.purge() == (1, 3)
    stored = metadata_store.read_events("t", 0, 100)
    assert [(e.principal, e.method, e.resource) for e in stored[-2:]] == [
        ("system", "PurgeModelVersion", "models/keep/versions/1"),
        ("system", "PurgeModel", "models/m"),
    ]
    assert [e.resource for e in stored[:3]] == [
        "models/m",
        "models/m/versions/1",
        "models/m/versions/2",
    ]
    assert _audit(metadata_store).verify_tenant("t").ok


def test_alias_history_starts_from_the_aliases_of_an_older_schema(metadata_url: str) -> None:
    """Migration 9 copies every existing alias into the history (principal unknown)."""
    backend = open_database(metadata_url, max_connections=2)
    try:
        assert migrate(backend, target=8) == 8
        old = PeeweeMetadataStore(backend)
        old.insert_model(make_model("m", tenant="t"))
        old.set_alias(Alias("t", "m", "prod", 3, T0))
        assert migrate(backend) == LATEST_VERSION
        store = PeeweeMetadataStore(backend)
        move = store.alias_at("t", "m", "prod", T0 + timedelta(seconds=1))
        assert move is not None
        assert (move.version_number, move.time, move.principal) == (3, T0, "")
        assert store.alias_at("t", "m", "prod", T0 - timedelta(seconds=1)) is None
    finally:
        backend.close()
