"""Versions ordered by one metric, over SQLite and PostgreSQL: the index walk of
``storage/metadata/metric_pages.py`` lists exactly what the general sorted query lists, in the
same order, page by page; its plans walk the metric indexes without sorting the matches; pages
stay stable while versions are added; migration 10 files existing metrics under their model."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import peewee
import pytest

from modelregistry_server.domain.entities import Model, ModelVersion, Page
from modelregistry_server.domain.filter_parser import parse_filter
from modelregistry_server.domain.listing import VERSION_SCHEMA
from modelregistry_server.domain.policies import Binding, ModelPolicy, Role
from modelregistry_server.domain.ports import ListQuery, OrderKey
from modelregistry_server.storage.metadata import PeeweeMetadataStore, open_metadata_store, rows
from modelregistry_server.storage.metadata.database import open_database
from modelregistry_server.storage.metadata.migrations import LATEST_VERSION, migrate
from modelregistry_server.storage.metadata.pages import fetch_page
from tests.support.metadata_fixtures import sqlite_url
from tests.support.query_plans import plan, statements

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
NOW = T0 + timedelta(days=30)
Key = tuple[str, str, int]  # tenant, model, number


def _model(model_id: str, tenant: str = "a") -> Model:
    return Model(tenant=tenant, model_id=model_id, uid=f"uid-{tenant}-{model_id}",
                 create_time=T0, update_time=T0)  # fmt: skip


def _version(tenant: str, model_id: str, number: int, **fields: Any) -> ModelVersion:
    return ModelVersion(tenant=tenant, model_id=model_id, number=number,
                        uid=f"uid-{tenant}-{model_id}-{number}", create_time=T0,
                        update_time=T0, **fields)  # fmt: skip


def _add(store: PeeweeMetadataStore, model_id: str, tenant: str = "a", **fields: Any) -> int:
    with store.transaction():
        number = store.allocate_version_number(tenant, model_id)
        assert number is not None
        store.insert_version(_version(tenant, model_id, number, **fields))
    return number


def seed(store: PeeweeMetadataStore) -> None:
    """Four models of tenant ``a`` (one with a policy) and a same-named model in tenant ``b``;
    metric ``x`` with many ties (zero of both signs), missing on a quarter of the versions,
    soft-deleted versions, and versions whose metric changed after they were written."""
    rnd = random.Random(11)
    with store.transaction():
        for model_id in ("m0", "m1", "m2", "secret"):
            store.insert_model(_model(model_id))
        store.insert_model(_model("m0", tenant="b"))
        for i in range(120):
            model_id = ("m0", "m1", "m2", "secret")[i % 4]
            metrics: dict[str, float] = {"y": rnd.random()}
            if i % 4 != 3:
                metrics["x"] = rnd.choice([-1.5, -0.0, 0.0, 0.25, 0.5, 0.5, 0.75, 2.0]) + (
                    rnd.random() if i % 5 == 0 else 0.0
                )
            labels = {"team": "risk" if i % 3 else "growth"}
            number = store.allocate_version_number("a", model_id)
            assert number is not None
            store.insert_version(_version("a", model_id, number, metrics=metrics, labels=labels))
        for _ in range(20):
            number = store.allocate_version_number("b", "m0")
            assert number is not None
            store.insert_version(_version("b", "m0", number, metrics={"x": 0.5}))
    for number in (2, 7, 11):
        version = store.get_version("a", "m1", number)
        assert version is not None
        store.save_version(replace(version, delete_time=T0))
    for number in (3, 8):  # rewritten metrics move the version to its new place
        version = store.get_version("a", "m2", number)
        assert version is not None
        store.save_version(replace(version, metrics={"x": 0.5 + number}))
    alice = ModelPolicy(bindings=(Binding(Role.OWNER, ("user:alice",)),))
    assert store.set_policy("a", "secret", alice, 0) is not None


def keys(items: list[ModelVersion]) -> list[Key]:
    return [(v.tenant, v.model_id, v.number) for v in items]


def pages(
    store: PeeweeMetadataStore, model_id: str | None, query: ListQuery
) -> tuple[list[Key], int]:
    """Every page of ``query`` through ``list_versions``, and how many pages there were."""
    items: list[ModelVersion] = []
    after: tuple[Any, ...] | None = None
    for count in range(1, 10_000):
        page: Page[ModelVersion] = store.list_versions(
            "a", model_id, ListQuery(query.filter, query.order_by, query.show_deleted,
                                     query.page_size, after, query.visible_to), NOW
        )  # fmt: skip
        items.extend(page.items)
        if page.next_cursor is None:
            return keys(items), count
        assert len(page.items) == query.page_size
        after = page.next_cursor
    raise AssertionError("pagination did not end")


def sorted_reference(
    store: PeeweeMetadataStore, model_id: str | None, query: ListQuery
) -> list[Key]:
    """The same listing from the general query, which sorts every match: the order to keep."""
    t = store._t
    v = t.versions
    scope: list[Any] = [] if model_id is None else [v.model_id == model_id]
    if query.visible_to is not None:
        from modelregistry_server.storage.metadata.policies import visible_condition

        scope.append(visible_condition(t, "a", v.model_pk, query.visible_to))
    whole = ListQuery(query.filter, query.order_by, query.show_deleted, 10_000, None)
    with store.connection():
        found, cursor = fetch_page(
            store._versions_listing, "a", whole, now_us=rows.to_micros(NOW), scope=scope
        )
    assert cursor is None
    return [("a", r["model_id"], r["number"]) for r in found]


FILTERS = [
    "",
    'labels.team = "risk"',
    "metrics.x > 0.2",
    'metrics.x <= 0.5 AND labels.team = "risk"',
    "metrics.x >= -0 AND metrics.x < 1 AND metrics.y > 0.3",
    "metrics.x = 0.5",
    "metrics.x != 0.5",
    "metrics.x:*",
    "NOT metrics.x = 0.5",
    "NOT metrics.x:*",
    'metrics.x > 1 OR labels.team = "growth"',
    "metrics.y > 0.5",
]


@pytest.mark.parametrize("model_id", [None, "m1", "secret"])
def test_metric_pages_match_the_sorted_query(
    metadata_store: PeeweeMetadataStore, model_id: str | None
) -> None:
    store = metadata_store
    seed(store)
    for descending in (True, False):
        for text in FILTERS:
            for show_deleted, visible_to in ((False, None), (True, frozenset({"user:bob"}))):
                query = ListQuery(
                    parse_filter(text, VERSION_SCHEMA),
                    (OrderKey("metrics.x", descending),),
                    show_deleted,
                    1000,
                    None,
                    visible_to,
                )
                expected = sorted_reference(store, model_id, query)
                if model_id == "secret" and visible_to is not None:
                    assert expected == []
                case = (descending, text, show_deleted, visible_to)
                for size in (1, 7, 1000) if not text and not show_deleted else (7, 1000):
                    sized = ListQuery(query.filter, query.order_by, show_deleted, size, None,
                                      visible_to)  # fmt: skip
                    got, count = pages(store, model_id, sized)
                    assert got == expected, (case, size)
                    assert count == max(1, -(-len(expected) // size)), (case, size)


def test_ties_sort_by_version_and_missing_metrics_come_last(
    metadata_store: PeeweeMetadataStore,
) -> None:
    store = metadata_store
    store.insert_model(_model("m"))
    for x in (0.5, None, 0.5, 1.0, None, 0.5, -1.0):
        _add(store, "m", metrics={} if x is None else {"x": x})
    order: Callable[[bool], list[int]] = lambda descending: [  # noqa: E731
        number for _, _, number in pages(
            store, "m", ListQuery(order_by=(OrderKey("metrics.x", descending),), page_size=2)
        )[0]
    ]  # fmt: skip
    assert order(True) == [4, 1, 3, 6, 7, 2, 5]
    assert order(False) == [7, 1, 3, 6, 4, 2, 5]


def test_metric_pages_are_stable_while_versions_are_added(
    metadata_store: PeeweeMetadataStore,
) -> None:
    store = metadata_store
    store.insert_model(_model("m"))
    for i in range(20):
        _add(store, "m", metrics={"x": (i % 5) / 5})
    for descending in (True, False):
        order = (OrderKey("metrics.x", descending),)
        seen: list[int] = []
        originals = set(range(1, 21))
        added_after: list[int] = []
        after = None
        for _ in range(200):
            page = store.list_versions(
                "a", "m", ListQuery(order_by=order, page_size=3, after=after), NOW
            )
            seen.extend(v.number for v in page.items)
            if page.next_cursor is None:
                break
            after = page.next_cursor
            x = page.items[-1].metrics.get("x")
            if x is None:
                continue
            # One version before the cursor (passed already), one in the cursor's tie (it has
            # a higher number, so it comes after), one beyond it and one without the metric.
            step = -0.01 if descending else 0.01
            _add(store, "m", metrics={"x": x - step})
            added_after.append(_add(store, "m", metrics={"x": x}))
            added_after.append(_add(store, "m", metrics={"x": x + step}))
            added_after.append(_add(store, "m"))
        assert len(seen) == len(set(seen)), "a version was repeated"
        assert originals <= set(seen), "a version was skipped"
        assert set(added_after) <= set(seen), "a version added after the cursor was missed"


# -- the plans walk the metric indexes ---------------------------------------------------------

BULK = 3000


def bulk_seed(store: PeeweeMetadataStore) -> None:
    """``BULK`` versions of model ``bulk`` and a third as many of ``other``, every one with
    metric ``x`` (few ties), half of them labelled ``team = risk``: a registry where sorting
    the matches costs what walking an index saves."""
    t = store._t
    rnd = random.Random(3)
    with store.transaction():
        for model_id in ("bulk", "other"):
            store.insert_model(_model(model_id))
        model_pks = {m.model_id: m.id for m in t.models.select(t.models.id, t.models.model_id)}
        for model_id, count in (("bulk", BULK), ("other", BULK // 3)):
            versions = [
                {**rows.version_columns(_version("a", model_id, n)),
                 "model_pk": model_pks[model_id], "transition_seq": 0}
                for n in range(1, count + 1)
            ]  # fmt: skip
            t.versions.insert_many(versions).as_rowcount().execute()
        found = t.versions.select(t.versions.id, t.versions.model_pk).tuples()
        owners = list(found)
        t.version_metrics.insert_many(
            [{"tenant": "a", "owner": pk, "model_pk": model_pk, "key": "x",
              "value": round(rnd.random(), 3)} for pk, model_pk in owners]
        ).as_rowcount().execute()  # fmt: skip
        t.version_labels.insert_many(
            [{"tenant": "a", "owner": pk, "key": "team", "value": "risk" if pk % 2 else "growth"}
             for pk, _ in owners]
        ).as_rowcount().execute()  # fmt: skip


WALK_INDEXES = {
    # (one model, descending) -> the index the walk takes
    (True, True): "version_metrics_model_value_desc",
    (True, False): "version_metrics_model_value",
    (False, True): "version_metrics_key_value_desc",
    (False, False): "version_metrics_key_value",
}


def _sorts(plan_text: str) -> bool:
    """True if a plan sorts rows (SQLite: a temporary B-tree; PostgreSQL: a Sort node)."""
    return "TEMP B-TREE" in plan_text or "Sort" in plan_text


def _walk_plans(
    store: PeeweeMetadataStore, model_id: str | None, query: ListQuery
) -> list[tuple[bool, str]]:
    """The plans of the walk statements one page issues (they read the metric index as
    ``w``), each with whether it reads the rest of the cursor's tie (``value = c``)."""
    with statements() as log:
        store.list_versions("a", model_id, query, NOW)
    walks = [
        ('"w"."value" = ' in sql, plan(store, sql, params))
        for sql, params in log.seen
        if '"w"' in sql
    ]
    assert walks, "the page did not walk the metric index"
    return walks


def test_metric_order_walks_its_index_without_sorting(
    metadata_store: PeeweeMetadataStore,
) -> None:
    """First and deep pages, both directions, one model and every model, with a filter that
    matches about half: each walk statement starts from its metric index (a deep page at the
    cursor's value) and nothing sorts the matches. SQLite is checked without planner
    statistics (a new database) and with them; PostgreSQL with them (autovacuum keeps them;
    a table it has never analyzed gets absurd plans for every query)."""
    store = metadata_store
    bulk_seed(store)
    sqlite = store.backend.dialect == "sqlite"
    expr = parse_filter('labels.team = "risk" AND metrics.x > 0.05', VERSION_SCHEMA)
    for analyzed in (False, True) if sqlite else (True,):
        if analyzed:
            store.refresh_statistics()
        for (one_model, descending), index in WALK_INDEXES.items():
            model_id = "bulk" if one_model else None
            order = (OrderKey("metrics.x", descending),)
            first = ListQuery(expr, order, page_size=100)
            page = store.list_versions("a", model_id, first, NOW)
            assert page.next_cursor is not None
            deep = ListQuery(expr, order, page_size=100, after=page.next_cursor)
            for query in (first, deep):
                case = (analyzed, model_id, descending, query.after)
                walks = _walk_plans(store, model_id, query)
                plans = [p for _, p in walks]
                shown = (case, "\n".join(plans))
                # The walk beyond the cursor takes the index of its direction; the rest of a
                # tie (value = c AND owner > id) is in owner order in any metric index.
                assert all(index in p for tie, p in walks if not tie), shown
                assert all("version_metrics_" in p for p in plans), shown
                assert not any(_sorts(p) for p in plans), shown
                if query.after is not None:
                    # A deep page seeks to the cursor's value instead of walking from the top.
                    seek = "value<" if descending else "value>"
                    flat = [p.replace(" ", "").replace('"', "") for p in plans]
                    assert any(seek in p for p in flat), shown


# -- migration 10 ------------------------------------------------------------------------------


def test_metrics_written_before_migration_10_are_filed_under_their_model(
    metadata_url: str,
) -> None:
    backend = open_database(metadata_url, max_connections=2)
    try:
        assert migrate(backend, target=9) == 9
        old = PeeweeMetadataStore(backend)
        for model_id in ("m", "n"):
            old.insert_model(_model(model_id))
            for number in (1, 2, 3):
                old.insert_version(_version("a", model_id, number))  # no metrics: no model_pk
        db: Any = backend.database
        p = db.param
        with db.connection_context(), backend.write_transaction():
            for model_id, number, x in [("m", 1, 0.5), ("m", 2, 0.9), ("n", 1, 0.7), ("n", 3, 0.1)]:
                db.execute_sql(
                    "INSERT INTO version_metrics (tenant, owner, key, value) SELECT 'a', id,"
                    f" 'x', {p} FROM versions WHERE model_id = {p} AND number = {p}",
                    (x, model_id, number),
                )
        assert migrate(backend) == LATEST_VERSION
        store = PeeweeMetadataStore(backend)

        def listed(model_id: str | None) -> list[Key]:
            query = ListQuery(order_by=(OrderKey("metrics.x", True),), page_size=2)
            return pages(store, model_id, query)[0]

        assert listed("m") == [("a", "m", 2), ("a", "m", 1), ("a", "m", 3)]
        assert listed("n") == [("a", "n", 1), ("a", "n", 3), ("a", "n", 2)]
        assert listed(None) == [
            ("a", "m", 2), ("a", "n", 1), ("a", "m", 1), ("a", "n", 3), ("a", "m", 3), ("a", "n", 2)
        ]  # fmt: skip
        version = store.get_version("a", "n", 3)
        assert version is not None and version.metrics == {"x": 0.1}
        # The column is required: a metric row without its model is refused.
        refused = pytest.raises(peewee.IntegrityError)
        with refused, db.connection_context(), backend.write_transaction():
            db.execute_sql(
                "INSERT INTO version_metrics (tenant, owner, key, value) SELECT 'a', id, 'y', 1"
                " FROM versions WHERE model_id = 'm' AND number = 1"
            )
    finally:
        backend.close()


def test_labels_and_metrics_of_a_page_are_read_by_owner(tmp_path: Path) -> None:
    """On SQLite without planner statistics (every new database until the first maintenance
    ANALYZE), the labels and metrics of a page's versions are looked up through the primary
    key (owner, key), not through a tenant-leading index holding the tenant's every row (what
    SQLite picked for ``tenant = ? AND owner IN (...)``). PostgreSQL weighs the IN list by
    its statistics and reads a table this small in full."""
    store = open_metadata_store(sqlite_url(tmp_path))
    try:
        bulk_seed(store)
        query = ListQuery(order_by=(OrderKey("create_time"),), page_size=100)
        with statements() as log:
            store.list_versions("a", "bulk", query, NOW)
        for table in ("version_labels", "version_metrics"):
            reads = [plan(store, sql, p) for sql, p in log.seen if f'FROM "{table}"' in sql]
            assert len(reads) == 1, (table, reads)
            assert f"sqlite_autoindex_{table}_1 (owner=?)" in reads[0], (table, reads[0])
    finally:
        store.close()
