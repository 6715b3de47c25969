"""Lineage on the metadata adapter, over SQLite and PostgreSQL: the lineage filters of
ListModelVersions, the ``LineageIndex`` port, the side tables following writes and purges, the
backfill of rows written before the lineage schema step, and the indexes the queries use."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from modelregistry_server.domain.entities import (
    DatasetRef,
    DatasetRole,
    Dependency,
    DependencyKind,
    Model,
    ModelVersion,
    SourceCode,
)
from modelregistry_server.domain.errors import InvalidArgument, Reason
from modelregistry_server.domain.filter_parser import parse_filter
from modelregistry_server.domain.listing import VERSION_DEFAULT_ORDER, VERSION_SCHEMA
from modelregistry_server.domain.ports import LineageIndex, ListQuery, MetadataStore, OrderKey
from modelregistry_server.storage.metadata import PeeweeMetadataStore, open_metadata_store, rows
from modelregistry_server.storage.metadata.database import open_database
from modelregistry_server.storage.metadata.migrations import LATEST_VERSION, migrate, schema_version
from tests.support.query_plans import plan, statements

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
NOW = T0 + timedelta(days=1)
UP1, UP2 = "models/up/versions/1", "models/up/versions/2"


def _model(model_id: str, tenant: str = "a") -> Model:
    return Model(tenant=tenant, model_id=model_id, uid=f"uid-{model_id}", create_time=T0,
                 update_time=T0)  # fmt: skip


def _add(store: MetadataStore, model_id: str, tenant: str = "a", **fields: Any) -> int:
    with store.transaction():
        if store.get_model(tenant, model_id) is None:
            store.insert_model(_model(model_id, tenant))
        number = store.allocate_version_number(tenant, model_id)
        store.insert_version(
            ModelVersion(
                tenant=tenant,
                model_id=model_id,
                number=number,
                uid=f"uid-{tenant}-{model_id}-{number}",
                create_time=T0,
                update_time=T0,
                **fields,
            )
        )
    return number


def seed(store: MetadataStore) -> None:
    """up/1, up/2 (no lineage); then::

    m/1  produced_by up/1          datasets d/train (sha256:aa), d/eval (sha256:bb)
         source git/fraud @ 3f2a1c  dependencies torch, numpy
    m/2  produced_by up/1, up/2    datasets d/train (sha256:cc)   source git/fraud @ 9e8d
    m/3  nothing
    n/1  produced_by m/1           datasets d/other               source git/other @ 3f2a1c
         dependencies torch
    """
    _add(store, "up")
    _add(store, "up")
    _add(
        store,
        "m",
        produced_by=[UP1],
        datasets=[
            DatasetRef("gs://d/train", "sha256:aa"),
            DatasetRef("gs://d/eval", "sha256:bb", DatasetRole.VALIDATION),
        ],
        source=SourceCode("https://git/fraud", "3f2a1c", "train.py"),
        dependencies=[Dependency("torch", DependencyKind.LIBRARY, "2.3"), Dependency("numpy")],
    )
    _add(
        store,
        "m",
        produced_by=[UP1, UP2],
        datasets=[DatasetRef("gs://d/train", "sha256:cc")],
        source=SourceCode("https://git/fraud", "9e8d"),
    )
    _add(store, "m")
    _add(
        store,
        "n",
        produced_by=["models/m/versions/1"],
        datasets=[DatasetRef("gs://d/other")],
        source=SourceCode("https://git/other", "3f2a1c"),
        dependencies=[Dependency("torch")],
    )


def listed(store: MetadataStore, text: str, tenant: str = "a", **query: Any) -> list[str]:
    expr = parse_filter(text, VERSION_SCHEMA)
    order = query.pop("order_by", VERSION_DEFAULT_ORDER)
    page = store.list_versions(tenant, None, ListQuery(expr, order, page_size=100, **query), NOW)
    return [f"{v.model_id}/{v.number}" for v in page.items]


LINEAGE_FILTERS = [
    (f'produced_by = "{UP1}"', ["m/1", "m/2"]),
    (f'produced_by = "{UP2}"', ["m/2"]),
    (f'produced_by : "{UP2}"', ["m/2"]),  # ':' with a value: has an element equal to it
    ('produced_by = "models/up/*"', ["m/1", "m/2"]),
    ("produced_by:*", ["m/1", "m/2", "n/1"]),
    ("NOT produced_by:*", ["m/3", "up/1", "up/2"]),
    (f'NOT produced_by = "{UP1}"', ["m/3", "n/1", "up/1", "up/2"]),
    (f'produced_by != "{UP1}"', ["m/2", "n/1"]),  # has an element with another value
    ('produced_by = "models/up/versions/3"', []),
    ('datasets.uri = "gs://d/train"', ["m/1", "m/2"]),
    ('datasets.uri : "gs://d/eval"', ["m/1"]),
    ('datasets.uri = "gs://d/*"', ["m/1", "m/2", "n/1"]),
    ('datasets.uri = "gs://d/e*"', ["m/1"]),
    ('datasets.digest = "sha256:cc"', ["m/2"]),
    ('datasets.digest = ""', ["n/1"]),
    ('datasets.uri = "gs://d/train" AND datasets.digest = "sha256:bb"', ["m/1"]),  # any element
    ('dependencies.name = "torch"', ["m/1", "n/1"]),
    ("dependencies.name:*", ["m/1", "n/1"]),
    ('dependencies.name = numpy OR dependencies.name = "scipy"', ["m/1"]),
    ('source.repository = "https://git/fraud"', ["m/1", "m/2"]),
    ('source.repository = "https://git/*"', ["m/1", "m/2", "n/1"]),
    ('source.commit = "3f2a1c"', ["m/1", "n/1"]),
    ('source.commit : "8"', ["m/2"]),  # ':' on a plain text field: contains
    ('source.commit = ""', ["m/3", "up/1", "up/2"]),
    ('source.commit = "3f2a1c" AND datasets.uri = "gs://d/other"', ["n/1"]),
    ('model_id = m AND produced_by = "models/up/versions/*" AND NOT datasets.digest = "sha256:aa"',
     ["m/2"]),
]  # fmt: skip


@pytest.mark.parametrize(("text", "expected"), LINEAGE_FILTERS)
def test_lineage_filters(
    metadata_store: PeeweeMetadataStore, text: str, expected: list[str]
) -> None:
    seed(metadata_store)
    assert listed(metadata_store, text) == expected


def test_lineage_filters_are_tenant_scoped_and_skip_deleted(
    metadata_store: PeeweeMetadataStore,
) -> None:
    store = metadata_store
    seed(store)
    _add(store, "m", tenant="b", produced_by=[UP1], datasets=[DatasetRef("gs://d/train")])
    assert listed(store, f'produced_by = "{UP1}"', tenant="b") == ["m/1"]
    assert listed(store, 'datasets.uri = "gs://d/train"', tenant="b") == ["m/1"]
    gone = store.get_version("a", "m", 2)
    assert gone is not None
    gone.delete_time = NOW
    store.save_version(gone)
    assert listed(store, 'datasets.uri = "gs://d/train"') == ["m/1"]
    assert listed(store, 'datasets.uri = "gs://d/train"', show_deleted=True) == ["m/1", "m/2"]


def test_source_fields_are_orderable(metadata_store: PeeweeMetadataStore) -> None:
    seed(metadata_store)
    order = (OrderKey("source.commit", descending=True), OrderKey("model_id"))
    assert listed(metadata_store, 'NOT source.commit = ""', order_by=order) == ["m/2", "m/1", "n/1"]


@pytest.mark.parametrize(
    "text",
    ["produced_by.model = x", "datasets.uri = a AND datasets.role = TRAINING", "source.path = x"],
)
def test_unknown_lineage_fields_are_invalid_filter(text: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        parse_filter(text, VERSION_SCHEMA)
    assert info.value.reason is Reason.INVALID_FILTER


def test_side_rows_follow_updates(metadata_store: PeeweeMetadataStore) -> None:
    store = metadata_store
    seed(store)
    version = store.get_version("a", "m", 1)
    assert version is not None
    version.datasets = [DatasetRef("gs://d/new", "sha256:dd")]
    version.produced_by = [UP2]
    version.dependencies = []
    version.source = None
    version.revision += 1
    store.save_version(version)
    assert listed(store, 'datasets.uri = "gs://d/eval"') == []
    assert listed(store, 'datasets.uri = "gs://d/new"') == ["m/1"]
    assert listed(store, 'datasets.digest = "sha256:dd"') == ["m/1"]
    assert listed(store, f'produced_by = "{UP1}"') == ["m/2"]
    assert listed(store, f'produced_by = "{UP2}"') == ["m/1", "m/2"]
    assert listed(store, 'dependencies.name = "torch"') == ["n/1"]
    assert listed(store, 'source.repository = "https://git/fraud"') == ["m/2"]
    assert store.get_version("a", "m", 1) == version
    # A save that leaves the lineage alone keeps it.
    version.description = "only this changed"
    store.save_version(version)
    assert listed(store, 'datasets.uri = "gs://d/new"') == ["m/1"]
    assert listed(store, f'produced_by = "{UP2}"') == ["m/1", "m/2"]


def test_duplicate_entries_are_stored_once_per_owner(metadata_store: PeeweeMetadataStore) -> None:
    store = metadata_store
    _add(store, "up")
    _add(store, "m", produced_by=[UP1, UP1], datasets=[DatasetRef("gs://x"), DatasetRef("gs://x")])
    assert listed(store, f'produced_by = "{UP1}"') == ["m/1"]
    assert listed(store, 'datasets.uri = "gs://x"') == ["m/1"]
    version = store.get_version("a", "m", 1)
    assert version is not None
    assert version.produced_by == [UP1, UP1]  # the record keeps what was written


def test_purge_removes_side_rows(metadata_store: PeeweeMetadataStore) -> None:
    store = metadata_store
    seed(store)
    for model_id, number in (("m", 1), ("n", 1)):
        version = store.get_version("a", model_id, number)
        assert version is not None
        version.delete_time = T0
        version.purge_time = T0
        store.save_version(version)
    assert store.purge(NOW).versions == 2
    db = store.backend.database
    with store.connection():
        for table in ("version_upstreams", "version_datasets", "version_dependencies"):
            owners = {r[0] for r in db.execute_sql(f"SELECT owner FROM {table}").fetchall()}
            ids = {r[0] for r in db.execute_sql("SELECT id FROM versions").fetchall()}
            assert owners <= ids, table
    assert listed(store, 'dependencies.name = "torch"', show_deleted=True) == []


# -- the LineageIndex port ---------------------------------------------------------------------


def _names(versions: list[ModelVersion]) -> list[str]:
    return [f"{v.model_id}/{v.number}" for v in versions]


def test_versions_named(metadata_store: PeeweeMetadataStore) -> None:
    index: LineageIndex = metadata_store
    seed(metadata_store)
    got = index.versions_named("a", [("m", 2), ("up", 1), ("m", 9), ("nope", 1), ("m", 2)])
    assert _names(got) == ["m/2", "up/1"]
    assert got[0] == metadata_store.get_version("a", "m", 2)
    assert index.versions_named("b", [("m", 2)]) == []
    assert index.versions_named("a", []) == []
    many = [("m", n) for n in range(1, 1200)]  # more than one IN list
    assert _names(index.versions_named("a", many)) == ["m/1", "m/2", "m/3"]


def test_consumers(metadata_store: PeeweeMetadataStore) -> None:
    index: LineageIndex = metadata_store
    seed(metadata_store)
    pairs = index.consumers("a", [UP2, UP1], include_deleted=False, limit=10)
    assert [(up, f"{v.model_id}/{v.number}") for up, v in pairs] == [
        (UP1, "m/1"),
        (UP1, "m/2"),
        (UP2, "m/2"),
    ]
    assert pairs[1][1] == metadata_store.get_version("a", "m", 2)
    assert len(index.consumers("a", [UP1, UP2], include_deleted=False, limit=2)) == 2
    assert index.consumers("b", [UP1], include_deleted=True, limit=10) == []
    version = metadata_store.get_version("a", "m", 1)
    assert version is not None
    version.delete_time = NOW
    metadata_store.save_version(version)
    live = index.consumers("a", [UP1], include_deleted=False, limit=10)
    assert [f"{v.model_id}/{v.number}" for _, v in live] == ["m/2"]
    every = index.consumers("a", [UP1], include_deleted=True, limit=10)
    assert [f"{v.model_id}/{v.number}" for _, v in every] == ["m/1", "m/2"]


def test_dataset_users(metadata_store: PeeweeMetadataStore) -> None:
    index: LineageIndex = metadata_store
    seed(metadata_store)
    assert _names(index.dataset_users("a", "gs://d/train", include_deleted=False, limit=10)) == [
        "m/1",
        "m/2",
    ]
    assert _names(index.dataset_users("a", "gs://d/train", include_deleted=False, limit=1)) == [
        "m/1"
    ]
    assert index.dataset_users("a", "gs://d/*", include_deleted=False, limit=10) == []
    assert index.dataset_users("b", "gs://d/train", include_deleted=True, limit=10) == []


def test_dependents(metadata_store: PeeweeMetadataStore) -> None:
    index: LineageIndex = metadata_store
    seed(metadata_store)
    _add(metadata_store, "up", produced_by=[UP1])  # up/3: inside the model
    _add(metadata_store, "m", produced_by=["models/m/versions/4"])  # m/4 names itself
    assert index.dependents("a", "up", 1, 10) == [("m", 1), ("m", 2), ("up", 3)]
    assert index.dependents("a", "up", 1, 2) == [("m", 1), ("m", 2)]
    assert index.dependents("a", "up", None, 10) == [("m", 1), ("m", 2)]  # outside the model
    assert index.dependents("a", "m", 4, 10) == []
    assert index.dependents("a", "m", None, 10) == [("n", 1)]
    assert index.dependents("a", "u", None, 10) == []  # a prefix of another model's id
    assert index.dependents("b", "up", 1, 10) == []
    consumer = metadata_store.get_version("a", "n", 1)
    assert consumer is not None
    consumer.delete_time = NOW
    metadata_store.save_version(consumer)
    assert index.dependents("a", "m", None, 10) == []  # only live versions count


# -- migration from the schema before lineage --------------------------------------------------

BEFORE_LINEAGE = 3  # the last schema version without the lineage side tables

_OLD_MODEL = (
    "INSERT INTO models (tenant, model_id, uid, display_name, description, type, author,"
    " create_time, update_time, revision, latest_version_number)"
    " VALUES ({p}, {p}, {p}, '', '', '', '', 0, 0, 1, {p})"
)
_OLD_VERSION = (
    "INSERT INTO versions (tenant, model_pk, model_id, number, uid, create_time, update_time,"
    " description, type, author, inputs, outputs, parameters, dependencies, produced_by, source,"
    " datasets, stage, state, manifest_digest, revision, file_count, total_size, transition_seq)"
    " VALUES ({p}, (SELECT id FROM models WHERE tenant = {p} AND model_id = {p}), {p}, {p}, {p},"
    " 0, 0, '', '', '', '[]', '[]', '{{}}', {p}, {p}, {p}, {p}, 'DEVELOPMENT', 'DRAFT', '',"
    " 1, 0, 0, 0)"
)


def test_rows_written_before_lineage_are_backfilled(metadata_url: str) -> None:
    backend = open_database(metadata_url, max_connections=2)
    try:
        assert migrate(backend, target=BEFORE_LINEAGE) == BEFORE_LINEAGE
        db: Any = backend.database
        p = db.param
        deps = '[{"kind":"LIBRARY","name":"torch","version":"2.3"}]'
        datasets = (
            '[{"digest":"sha256:aa","role":"TRAINING","uri":"gs://d/train"},'
            '{"digest":"","role":"TEST","uri":"gs://d/test"}]'
        )
        source = '{"commit":"3f2a1c","path":"","repository":"https://git/fraud"}'
        rows = [
            ("a", "up", 1, "[]", None, "[]", "[]"),
            ("a", "m", 1, deps, source, f'["{UP1}"]', datasets),
            ("b", "m", 1, "[]", None, f'["{UP1}", "{UP1}"]', "[]"),
        ]
        with db.connection_context(), backend.write_transaction():
            for tenant, model_id in {(r[0], r[1]) for r in rows}:
                db.execute_sql(
                    _OLD_MODEL.format(p=p), (tenant, model_id, f"u-{tenant}-{model_id}", 1)
                )
            for tenant, model_id, number, dep, src, produced, data in rows:
                db.execute_sql(
                    _OLD_VERSION.format(p=p),
                    (
                        tenant,
                        tenant,
                        model_id,
                        model_id,
                        number,
                        f"u-{tenant}-{model_id}-{number}",
                        dep,
                        produced,
                        src,
                        data,
                    ),
                )
    finally:
        backend.close()

    store = open_metadata_store(metadata_url)
    try:
        assert schema_version(store.backend) == LATEST_VERSION
        assert listed(store, f'produced_by = "{UP1}"') == ["m/1"]
        assert listed(store, f'produced_by = "{UP1}"', tenant="b") == ["m/1"]
        assert listed(store, 'datasets.uri = "gs://d/test"') == ["m/1"]
        assert listed(store, 'datasets.digest = "sha256:aa"') == ["m/1"]
        assert listed(store, 'datasets.digest = ""') == ["m/1"]
        assert listed(store, 'dependencies.name = "torch"') == ["m/1"]
        assert listed(store, 'source.repository = "https://git/fraud"') == ["m/1"]
        assert listed(store, 'source.commit = "3f2a1c"') == ["m/1"]
        assert listed(store, 'source.commit = ""') == ["up/1"]
        assert store.dependents("a", "up", 1, 10) == [("m", 1)]
        version = store.get_version("a", "m", 1)
        assert version is not None
        assert version.source == SourceCode("https://git/fraud", "3f2a1c", "")
        assert [d.uri for d in version.datasets] == ["gs://d/train", "gs://d/test"]
        # Rows written after the migration are indexed on write, next to the backfilled ones.
        _add(store, "m", datasets=[DatasetRef("gs://d/test")])
        assert listed(store, 'datasets.uri = "gs://d/test"') == ["m/1", "m/2"]
    finally:
        store.close()


# -- the queries use the indexes ---------------------------------------------------------------


BULK = 3000


def bulk_seed(store: PeeweeMetadataStore) -> None:
    """:func:`seed`, then ``BULK`` versions of model ``bulk`` whose lineage values repeat
    rarely (each commit once, each dataset in 1/300 of them), and fresh planner statistics:
    what a registry that has been running looks like to the planner."""
    seed(store)
    t = store._t
    with store.transaction():
        store.insert_model(_model("bulk"))
        model_pk = t.models.get(t.models.model_id == "bulk").id
        versions = []
        for i in range(1, BULK + 1):
            version = ModelVersion(
                tenant="a", model_id="bulk", number=i, uid=f"bulk-{i}", create_time=T0,
                update_time=T0, source=SourceCode(f"https://git/r{i % 30}", f"c{i}"),
            )  # fmt: skip
            versions.append({**rows.version_columns(version), "model_pk": model_pk,
                             "transition_seq": 0})  # fmt: skip
        t.versions.insert_many(versions).as_rowcount().execute()
        ids = [r.id for r in t.versions.select(t.versions.id).where(t.versions.model_id == "bulk")]
        t.version_upstreams.insert_many(
            [
                {"tenant": "a", "owner": pk, "upstream": f"models/x/versions/{pk % 300}"}
                for pk in ids
            ]
        ).as_rowcount().execute()
        t.version_datasets.insert_many(
            [{"tenant": "a", "owner": pk, "position": 0, "uri": f"gs://bulk/{pk % 300}",
              "digest": f"sha256:{pk % 300}"} for pk in ids]
        ).as_rowcount().execute()  # fmt: skip
        t.version_dependencies.insert_many(
            [{"tenant": "a", "owner": pk, "position": 0, "name": f"lib{pk % 300}"} for pk in ids]
        ).as_rowcount().execute()
    store.refresh_statistics()


def plans_of(store: PeeweeMetadataStore, run: Callable[[], object], table: str) -> list[str]:
    """The plans of the statements ``run`` issues that read ``table``."""
    with statements() as log:
        run()
    found = [plan(store, sql, params) for sql, params in log.seen if table in sql]
    assert found, f"no statement read {table}"
    return found


FILTER_INDEXES = [
    (f'produced_by = "{UP1}"', "version_upstreams", "version_upstreams_upstream"),
    ('produced_by = "models/up/*"', "version_upstreams", "version_upstreams_upstream"),
    ('datasets.uri = "gs://d/train"', "version_datasets", "version_datasets_uri"),
    ('datasets.uri = "gs://d/*"', "version_datasets", "version_datasets_uri"),
    ('datasets.digest = "sha256:aa"', "version_datasets", "version_datasets_digest"),
    ('dependencies.name = "torch"', "version_dependencies", "version_dependencies_name"),
    ('source.repository = "https://git/fraud"', "versions", "versions_tenant_source_repository"),
    ('source.commit = "3f2a1c"', "versions", "versions_tenant_source_commit"),
]
LOOKUP_INDEXES: list[tuple[str, Callable[[PeeweeMetadataStore], object], str]] = [
    ("consumers", lambda s: s.consumers("a", [UP1], include_deleted=False, limit=5),
     "version_upstreams_upstream"),
    ("dependents of a version", lambda s: s.dependents("a", "up", 1, 5),
     "version_upstreams_upstream"),
    ("dependents of a model", lambda s: s.dependents("a", "up", None, 5),
     "version_upstreams_upstream"),
    ("dataset users", lambda s: s.dataset_users("a", "gs://d/train", include_deleted=False,
                                                limit=5), "version_datasets_uri"),
]  # fmt: skip


def test_lineage_queries_use_their_indexes(metadata_store: PeeweeMetadataStore) -> None:
    """Each lineage filter and lookup starts from its index, never walking the versions."""
    store = metadata_store
    bulk_seed(store)
    cases: list[tuple[str, Callable[[], object], str]] = [
        (text, lambda text=text: listed(store, text), index)  # type: ignore[misc]
        for text, _, index in FILTER_INDEXES
    ] + [(name, lambda call=call: call(store), index) for name, call, index in LOOKUP_INDEXES]
    for name, run, index in cases:
        table = index.removeprefix("versions_tenant_").rsplit("_", 1)[0]
        plans = plans_of(store, run, "versions" if index.startswith("versions_") else table)
        assert any(index in p for p in plans), (name, plans)
        assert not any(_walks_versions(p) for p in plans), (name, plans)


def _walks_versions(plan_text: str) -> bool:
    """True if a plan reads the versions table in full or along its listing index."""
    return any(
        marker in plan_text
        for marker in ("SCAN t1", "Seq Scan on versions", "versions_tenant_model_id_number")
    )
