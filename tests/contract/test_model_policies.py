"""Contract of ``ModelPolicies`` over every metadata backend: the policy document with its
revision (compare-and-set), the bindings lists filter by (keyset pages of visible models
only), and purging a model with a policy."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from modelregistry_server.domain.entities import FileRecord, Model, ModelVersion, Page
from modelregistry_server.domain.listing import MODEL_DEFAULT_ORDER, VERSION_DEFAULT_ORDER
from modelregistry_server.domain.policies import Binding, ModelPolicy, Role
from modelregistry_server.domain.ports import ListQuery, MetadataStore, OrderKey

T0 = datetime(2026, 1, 1, tzinfo=UTC)
ALICE = frozenset({"user:alice", "group:ml"})


def policy(*owners: str, viewers: tuple[str, ...] = ()) -> ModelPolicy:
    bindings = [Binding(Role.OWNER, owners)]
    if viewers:
        bindings.append(Binding(Role.VIEWER, viewers))
    return ModelPolicy(tuple(bindings), ("production",))


def add_model(store: MetadataStore, model_id: str, tenant: str = "t") -> None:
    store.insert_model(Model(tenant, model_id, f"uid-{model_id}", T0, T0))
    with store.transaction():
        number = store.allocate_version_number(tenant, model_id)
        assert number is not None
        store.insert_version(ModelVersion(tenant, model_id, number, f"v-{model_id}", T0, T0))
    store.add_file(FileRecord(tenant, model_id, 1, "f", 1, "a" * 64, 0, "x", T0))


def test_policy_round_trip_and_compare_and_set(metadata_store: MetadataStore) -> None:
    assert metadata_store.get_policy("t", "m") is None
    add_model(metadata_store, "m")
    fresh = metadata_store.get_policy("t", "m")
    assert fresh is not None and (fresh.revision, fresh.policy) == (0, None)

    with metadata_store.transaction():
        written = metadata_store.set_policy("t", "m", policy("user:alice"), 0)
    assert written is not None and written.revision == 1 and written.etag != fresh.etag
    assert metadata_store.get_policy("t", "m") == written
    assert metadata_store.get_policy("u", "m") is None  # tenants stay apart

    with metadata_store.transaction():
        stale = metadata_store.set_policy("t", "m", policy("user:bob"), 0)
    assert stale is None
    assert metadata_store.get_policy("t", "m") == written  # the stale write changed nothing

    with metadata_store.transaction():
        removed = metadata_store.set_policy("t", "m", None, 1)
    assert removed is not None and (removed.revision, removed.policy) == (2, None)
    assert metadata_store.visible_models("t", ["m"], frozenset({"user:x"})) == {"m"}


def test_visible_models_follow_bindings(metadata_store: MetadataStore) -> None:
    for model_id in ("open", "mine", "ours", "theirs"):
        add_model(metadata_store, model_id)
    with metadata_store.transaction():
        metadata_store.set_policy("t", "mine", policy("user:alice"), 0)
        metadata_store.set_policy("t", "ours", policy("user:bob", viewers=("group:ml",)), 0)
        metadata_store.set_policy("t", "theirs", policy("user:bob"), 0)
    everything = ["open", "mine", "ours", "theirs", "missing"]
    assert metadata_store.visible_models("t", everything, ALICE) == {"open", "mine", "ours"}
    assert metadata_store.visible_models("t", everything, frozenset({"user:bob"})) == {
        "open",
        "ours",
        "theirs",
    }
    assert metadata_store.visible_models("u", everything, ALICE) == set()


def test_lists_hold_only_visible_models_in_full_keyset_pages(
    metadata_store: MetadataStore,
) -> None:
    # m00..m11: every third model has alice's policy, every third bob's, the rest none.
    ids = [f"m{i:02d}" for i in range(12)]
    for i, model_id in enumerate(ids):
        add_model(metadata_store, model_id)
        if i % 3:
            owner = "user:alice" if i % 3 == 1 else "user:bob"
            with metadata_store.transaction():
                metadata_store.set_policy("t", model_id, policy(owner), 0)
    visible = [m for i, m in enumerate(ids) if i % 3 != 2]

    def pages(
        list_page: Callable[[ListQuery], Page[Any]], order: tuple[OrderKey, ...]
    ) -> list[list[str]]:
        seen: list[list[str]] = []
        query = ListQuery(order_by=order, page_size=3, visible_to=ALICE)
        while True:
            page = list_page(query)
            seen.append([item.model_id for item in page.items])
            if page.next_cursor is None:
                return seen
            query = replace(query, after=page.next_cursor)

    models = pages(lambda q: metadata_store.list_models("t", q), MODEL_DEFAULT_ORDER)
    assert [m for page in models for m in page] == visible
    assert [len(p) for p in models[:-1]] == [3] * (len(models) - 1)  # full pages until the end
    versions = pages(
        lambda q: metadata_store.list_versions("t", None, q, T0 + timedelta(days=1)),
        VERSION_DEFAULT_ORDER,
    )
    assert [m for page in versions for m in page] == visible
    files = pages(lambda q: metadata_store.find_files("t", None, None, q), ())
    assert [m for page in files for m in page] == visible
    everyone = metadata_store.list_models("t", ListQuery(order_by=MODEL_DEFAULT_ORDER))
    assert len(everyone.items) == 12  # visible_to None: no filter


def test_purge_removes_a_model_with_a_policy(metadata_store: MetadataStore) -> None:
    add_model(metadata_store, "m")
    with metadata_store.transaction():
        metadata_store.set_policy("t", "m", policy("user:alice"), 0)
    model = metadata_store.get_model("t", "m")
    assert model is not None
    model.delete_time, model.purge_time = T0, T0
    metadata_store.save_model(model)
    counts = metadata_store.purge(T0 + timedelta(seconds=1))
    assert counts.models == 1
    assert metadata_store.get_policy("t", "m") is None
    add_model(metadata_store, "m")  # the id is free again, without the old bindings
    assert metadata_store.visible_models("t", ["m"], frozenset({"user:x"})) == {"m"}
