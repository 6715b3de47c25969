"""Contract of the metadata ports (``MetadataStore`` and its parts), run over every backend
(SQLite, PostgreSQL)."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from modelregistry_server.domain.entities import (
    Alias,
    DatasetRef,
    DatasetRole,
    Dependency,
    DependencyKind,
    FileRecord,
    Model,
    ModelVersion,
    Page,
    RequestRecord,
    SourceCode,
    Stage,
    StageTransition,
    UploadSession,
    UploadState,
    Variable,
    VersionState,
    VersionStatus,
)
from modelregistry_server.domain.errors import (
    AlreadyExists,
    DomainError,
    InvalidArgument,
    NotFound,
    Reason,
    Unavailable,
)
from modelregistry_server.domain.filter_parser import parse_filter
from modelregistry_server.domain.filtering import And, Comparison, Expr, Not, Op, Or
from modelregistry_server.domain.listing import VERSION_DEFAULT_ORDER, VERSION_SCHEMA
from modelregistry_server.domain.ports import ListQuery, MetadataStore, OrderKey, PurgeCounts
from modelregistry_server.storage.metadata import (
    PeeweeMetadataStore,
    SchemaTooNewError,
    open_metadata_store,
)
from modelregistry_server.storage.metadata.errors import StoreError, translated
from modelregistry_server.storage.metadata.migrations import LATEST_VERSION, schema_version
from tests.support.metadata_fixtures import sqlite_url
from tests.support.postgres import free_port, running_cluster

T0 = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)
NOW = T0 + timedelta(days=10)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def make_model(model_id: str, tenant: str = "a", **fields: Any) -> Model:
    values: dict[str, Any] = {"create_time": T0, "update_time": T0, "uid": f"uid-{model_id}"}
    values.update(fields)
    return Model(tenant=tenant, model_id=model_id, **values)


def make_version(model_id: str, number: int, tenant: str = "a", **fields: Any) -> ModelVersion:
    values: dict[str, Any] = {
        "create_time": T0,
        "update_time": T0,
        "uid": f"uid-{model_id}-{number}",
    }
    values.update(fields)
    return ModelVersion(tenant=tenant, model_id=model_id, number=number, **values)


def add_version(store: MetadataStore, model_id: str, tenant: str = "a", **fields: Any) -> int:
    with store.transaction():
        number = store.allocate_version_number(tenant, model_id)
        assert number is not None
        store.insert_version(make_version(model_id, number, tenant, **fields))
    return number


def collect(fetch: Callable[[ListQuery], Page[Any]], query: ListQuery) -> list[Any]:
    items: list[Any] = []
    after = None
    for _ in range(10_000):
        page = fetch(
            ListQuery(query.filter, query.order_by, query.show_deleted, query.page_size, after)
        )
        items.extend(page.items)
        if page.next_cursor is None:
            return items
        assert len(page.items) == query.page_size
        after = page.next_cursor
    raise AssertionError("pagination did not end")


def version_keys(page: list[ModelVersion]) -> list[tuple[str, int]]:
    return [(v.model_id, v.number) for v in page]


def assert_error(exc: DomainError, reason: Reason) -> None:
    assert exc.reason == reason, exc.message


# -- scopes ------------------------------------------------------------------------------------


def test_transaction_rolls_back_on_exception(metadata_store: PeeweeMetadataStore) -> None:
    with pytest.raises(RuntimeError, match="boom"), metadata_store.transaction():
        metadata_store.insert_model(make_model("m"))
        raise RuntimeError("boom")
    assert metadata_store.get_model("a", "m") is None


def test_nested_transaction_joins_the_outer_one(metadata_store: PeeweeMetadataStore) -> None:
    with pytest.raises(RuntimeError), metadata_store.transaction():
        with metadata_store.transaction():
            metadata_store.insert_model(make_model("inner"))
        metadata_store.insert_model(make_model("outer"))
        raise RuntimeError("outer fails")
    assert metadata_store.get_model("a", "inner") is None
    assert metadata_store.get_model("a", "outer") is None

    with metadata_store.transaction():
        with metadata_store.transaction():
            metadata_store.insert_model(make_model("inner"))
        assert metadata_store.get_model("a", "inner") is not None
    assert metadata_store.get_model("a", "inner") is not None


def test_nested_connection_scopes_share_one_connection(
    metadata_store: PeeweeMetadataStore,
) -> None:
    db = metadata_store.backend.database
    with metadata_store.connection():
        outer = db.connection()
        with metadata_store.connection():
            assert db.connection() is outer
            metadata_store.insert_model(make_model("m"))
        assert not db.is_closed()
        assert metadata_store.get_model("a", "m") is not None
    assert db.is_closed()


def test_duplicate_inside_a_transaction_leaves_it_usable(
    metadata_store: PeeweeMetadataStore,
) -> None:
    metadata_store.insert_model(make_model("m"))
    with metadata_store.transaction():
        with pytest.raises(AlreadyExists):
            metadata_store.insert_model(make_model("m"))
        metadata_store.insert_model(make_model("n"))
    assert metadata_store.get_model("a", "n") is not None


# -- models ------------------------------------------------------------------------------------


def test_model_round_trip(metadata_store: PeeweeMetadataStore) -> None:
    model = make_model(
        "resnet",
        display_name="ResNet ✓",
        description="an image classifier",
        type="pytorch",
        author="ann",
        labels={"team": "vision", "tier": "1"},
        revision=3,
    )
    metadata_store.insert_model(model)
    got = metadata_store.get_model("a", "resnet")
    assert got == model
    assert got.create_time.tzinfo is not None and got.create_time.utcoffset() == timedelta(0)
    assert got.create_time.microsecond == 123456


def test_missing_model_is_none(metadata_store: PeeweeMetadataStore) -> None:
    assert metadata_store.get_model("a", "nope") is None


def test_duplicate_model_is_already_exists(metadata_store: PeeweeMetadataStore) -> None:
    metadata_store.insert_model(make_model("m"))
    with pytest.raises(AlreadyExists) as caught:
        metadata_store.insert_model(make_model("m", display_name="again"))
    assert_error(caught.value, Reason.MODEL_ALREADY_EXISTS)
    metadata_store.insert_model(make_model("m", tenant="b"))  # another tenant may use the id


def test_save_model_writes_mutable_fields(metadata_store: PeeweeMetadataStore) -> None:
    metadata_store.insert_model(make_model("m", labels={"keep": "1", "drop": "2"}))
    add_version(metadata_store, "m")
    with metadata_store.transaction():
        model = metadata_store.get_model("a", "m", for_update=True)
        assert model is not None and model.latest_version_number == 1
        model.display_name = "new name"
        model.description = "d"
        model.labels = {"keep": "1", "add": "3"}
        model.update_time = at(5)
        model.delete_time = at(6)
        model.purge_time = at(7)
        model.revision = 2
        model.latest_version_number = 0  # owned by allocate_version_number, not written
        metadata_store.save_model(model)
    got = metadata_store.get_model("a", "m")
    assert got is not None
    assert (got.display_name, got.description, got.labels) == ("new name", "d", model.labels)
    assert (got.update_time, got.delete_time, got.purge_time) == (at(5), at(6), at(7))
    assert (got.revision, got.latest_version_number) == (2, 1)


def test_save_missing_model_is_not_found(metadata_store: PeeweeMetadataStore) -> None:
    with pytest.raises(NotFound):
        metadata_store.save_model(make_model("ghost"))


# -- versions ----------------------------------------------------------------------------------


def full_version(model_id: str, number: int) -> ModelVersion:
    return make_version(
        model_id,
        number,
        description="trained on ImageNet",
        type="onnx",
        author="bob",
        inputs=[Variable("image", "tensor", "RGB", value={"shape": [1, 3, 224, 224]})],
        outputs=[Variable("label", "string"), Variable("score", "float", value=0.5)],
        parameters={"lr": 0.01, "layers": [1, 2, {"x": None}], "flag": True, "name": "é"},
        dependencies=[
            Dependency("torch", DependencyKind.LIBRARY, "2.3"),
            Dependency("base", DependencyKind.MODEL),
        ],
        produced_by=["models/base/versions/1"],
        metrics={"accuracy": 0.93, "loss": -1.5e-3},
        source=SourceCode("https://git.example/repo", "abc123", "train.py"),
        datasets=[DatasetRef("s3://bucket/train", "sha256:ff", DatasetRole.VALIDATION)],
        labels={"env": "prod"},
        stage=Stage.STAGING,
        state=VersionState.READY,
        manifest_digest="sha256:00",
        expire_time=at(3600),
        revision=4,
        file_count=2,
        total_size=1 << 40,
    )


def test_version_round_trip(metadata_store: PeeweeMetadataStore) -> None:
    metadata_store.insert_model(make_model("m"))
    with metadata_store.transaction():
        number = metadata_store.allocate_version_number("a", "m")
        version = full_version("m", number)
        metadata_store.insert_version(version)
    got = metadata_store.get_version("a", "m", number)
    assert got == version
    assert metadata_store.get_version("a", "m", number + 1) is None
    assert metadata_store.get_version("a", "other", number) is None


def test_version_without_source(metadata_store: PeeweeMetadataStore) -> None:
    metadata_store.insert_model(make_model("m"))
    add_version(metadata_store, "m")
    got = metadata_store.get_version("a", "m", 1)
    assert got is not None and got.source is None and got.metrics == {} and got.aliases == []


def test_allocate_version_number_counts_up(metadata_store: PeeweeMetadataStore) -> None:
    metadata_store.insert_model(make_model("m"))
    metadata_store.insert_model(make_model("n"))
    assert [metadata_store.allocate_version_number("a", "m") for _ in range(3)] == [1, 2, 3]
    assert metadata_store.allocate_version_number("a", "n") == 1
    model = metadata_store.get_model("a", "m")
    assert model is not None and model.latest_version_number == 3
    assert metadata_store.allocate_version_number("a", "ghost") is None
    assert metadata_store.allocate_version_number("b", "m") is None


def test_allocate_version_number_needs_a_live_model(metadata_store: PeeweeMetadataStore) -> None:
    metadata_store.insert_model(make_model("m"))
    assert metadata_store.allocate_version_number("a", "m") == 1
    model = metadata_store.get_model("a", "m")
    assert model is not None
    model.delete_time = model.purge_time = T0
    metadata_store.save_model(model)
    assert metadata_store.allocate_version_number("a", "m") is None
    model.delete_time = model.purge_time = None
    metadata_store.save_model(model)
    assert metadata_store.allocate_version_number("a", "m") == 2  # the refusal counted nothing


def test_concurrent_allocation_is_gapless(metadata_store: PeeweeMetadataStore) -> None:
    metadata_store.insert_model(make_model("m"))
    threads, rounds = 32, 3
    barrier = threading.Barrier(threads)
    errors: list[BaseException] = []

    def work() -> None:
        try:
            barrier.wait()
            for _ in range(rounds):
                with metadata_store.transaction():
                    # Read, then write: the domain's pattern (needs BEGIN IMMEDIATE on SQLite).
                    assert metadata_store.get_model("a", "m", for_update=True) is not None
                    number = metadata_store.allocate_version_number("a", "m")
                    metadata_store.insert_version(make_version("m", number))
        except BaseException as exc:  # reported below
            errors.append(exc)

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert errors == []
    page = metadata_store.list_versions(
        "a", "m", ListQuery(order_by=VERSION_DEFAULT_ORDER, page_size=1000), NOW
    )
    assert [v.number for v in page.items] == list(range(1, threads * rounds + 1))


def test_duplicate_version_number_is_already_exists(metadata_store: PeeweeMetadataStore) -> None:
    metadata_store.insert_model(make_model("m"))
    add_version(metadata_store, "m")
    with pytest.raises(AlreadyExists):
        metadata_store.insert_version(make_version("m", 1))


def test_version_status(metadata_store: PeeweeMetadataStore) -> None:
    metadata_store.insert_model(make_model("m"))
    add_version(metadata_store, "m", state=VersionState.READY, delete_time=T0)
    add_version(metadata_store, "m")
    assert metadata_store.version_status("a", "m", 1) == VersionStatus(
        "m", 1, VersionState.READY, T0
    )
    with metadata_store.transaction():
        assert metadata_store.version_status("a", "m", 2, for_update=True) == VersionStatus(
            "m", 2, VersionState.DRAFT, None
        )
    assert metadata_store.version_status("a", "m", 3) is None
    assert metadata_store.version_status("b", "m", 1) is None


def test_version_of_missing_model_is_not_found(metadata_store: PeeweeMetadataStore) -> None:
    with pytest.raises(NotFound):
        metadata_store.insert_version(make_version("ghost", 1))


def test_save_version_writes_mutable_fields(metadata_store: PeeweeMetadataStore) -> None:
    metadata_store.insert_model(make_model("m"))
    add_version(metadata_store, "m", labels={"a": "1"}, metrics={"x": 1.0, "y": 2.0})
    metadata_store.set_alias(Alias("a", "m", "prod", 1, T0))
    with metadata_store.transaction():
        version = metadata_store.get_version("a", "m", 1, for_update=True)
        assert version is not None
        changed = full_version("m", 1)
        changed.uid, changed.create_time = version.uid, version.create_time
        changed.aliases = ["ignored"]
        metadata_store.save_version(changed)
    got = metadata_store.get_version("a", "m", 1)
    changed.aliases = ["prod"]
    assert got == changed


def test_save_missing_version_is_not_found(metadata_store: PeeweeMetadataStore) -> None:
    metadata_store.insert_model(make_model("m"))
    with pytest.raises(NotFound):
        metadata_store.save_version(make_version("m", 9))


def test_latest_version(metadata_store: PeeweeMetadataStore) -> None:
    metadata_store.insert_model(make_model("m"))
    assert metadata_store.latest_version("a", "m", NOW) is None
    ready = VersionState.READY
    add_version(metadata_store, "m", state=ready)  # 1
    add_version(metadata_store, "m", state=ready, expire_time=NOW + timedelta(seconds=1))  # 2
    add_version(metadata_store, "m", state=ready, expire_time=NOW)  # 3: expired at NOW
    add_version(metadata_store, "m", state=ready, delete_time=T0)  # 4
    add_version(metadata_store, "m")  # 5: draft
    latest = metadata_store.latest_version("a", "m", NOW)
    assert latest is not None and latest.number == 2
    later = metadata_store.latest_version("a", "m", NOW + timedelta(seconds=1))
    assert later is not None and later.number == 1
    assert metadata_store.latest_version("b", "m", NOW) is None


def test_count_versions(metadata_store: PeeweeMetadataStore) -> None:
    metadata_store.insert_model(make_model("m"))
    metadata_store.insert_model(make_model("n"))
    add_version(metadata_store, "m")
    add_version(metadata_store, "m", delete_time=T0)
    add_version(metadata_store, "n")
    assert metadata_store.count_versions("a", "m", include_deleted=True) == 2
    assert metadata_store.count_versions("a", "m", include_deleted=False) == 1
    assert metadata_store.count_versions("a", "ghost", include_deleted=True) == 0


# -- aliases -----------------------------------------------------------------------------------


def test_aliases(metadata_store: PeeweeMetadataStore) -> None:
    metadata_store.insert_model(make_model("m"))
    add_version(metadata_store, "m")
    add_version(metadata_store, "m")
    metadata_store.set_alias(Alias("a", "m", "prod", 1, at(1)))
    metadata_store.set_alias(Alias("a", "m", "canary", 1, at(2)))
    assert metadata_store.get_alias("a", "m", "prod") == Alias("a", "m", "prod", 1, at(1))
    v1 = metadata_store.get_version("a", "m", 1)
    assert v1 is not None and v1.aliases == ["canary", "prod"]

    metadata_store.set_alias(Alias("a", "m", "prod", 2, at(3)))  # move
    assert metadata_store.get_alias("a", "m", "prod") == Alias("a", "m", "prod", 2, at(3))
    assert [a.alias for a in metadata_store.list_aliases("a", "m")] == ["canary", "prod"]
    page = metadata_store.list_versions("a", "m", ListQuery(order_by=VERSION_DEFAULT_ORDER), NOW)
    assert [v.aliases for v in page.items] == [["canary"], ["prod"]]

    assert metadata_store.delete_alias("a", "m", "prod") is True
    assert metadata_store.delete_alias("a", "m", "prod") is False
    assert metadata_store.delete_alias("a", "ghost", "prod") is False
    assert metadata_store.get_alias("a", "m", "prod") is None
    assert metadata_store.list_aliases("a", "ghost") == []
    with pytest.raises(NotFound):
        metadata_store.set_alias(Alias("a", "ghost", "prod", 1, T0))


# -- stage transitions -------------------------------------------------------------------------


def test_transitions(metadata_store: PeeweeMetadataStore) -> None:
    metadata_store.insert_model(make_model("m"))
    add_version(metadata_store, "m")
    add_version(metadata_store, "m")
    stages = [Stage.DEVELOPMENT, Stage.STAGING, Stage.PRODUCTION, Stage.ARCHIVED]
    for i in range(5):
        step = StageTransition(stages[i % 3], stages[i % 3 + 1], "ann", f"step {i}", at(i))
        metadata_store.add_transition("a", "m", 1, step)
        assert step.sequence == i + 1
    metadata_store.add_transition(
        "a", "m", 2, StageTransition(Stage.DEVELOPMENT, Stage.STAGING, "bob", "", at(9))
    )

    first = metadata_store.list_transitions("a", "m", 1, None, 2)
    assert [t.comment for t in first.items] == ["step 0", "step 1"]
    assert first.next_cursor == (2,)
    rest = metadata_store.list_transitions("a", "m", 1, 2, 10)
    assert [t.sequence for t in rest.items] == [3, 4, 5] and rest.next_cursor is None
    assert rest.items[0] == StageTransition(
        Stage.PRODUCTION, Stage.ARCHIVED, "ann", "step 2", at(2), 3
    )
    other = metadata_store.list_transitions("a", "m", 2, None, 10)
    assert [(t.actor, t.sequence) for t in other.items] == [("bob", 1)]
    assert metadata_store.list_transitions("b", "m", 1, None, 10).items == []
    with pytest.raises(NotFound):
        metadata_store.add_transition("a", "m", 3, step)


# -- idempotent creates ------------------------------------------------------------------------


def test_requests(metadata_store: PeeweeMetadataStore) -> None:
    record = RequestRecord("a", "req-1", "CreateModel", "models/m", T0)
    assert metadata_store.find_request("a", "req-1") is None
    metadata_store.record_request(record)
    assert metadata_store.find_request("a", "req-1") == record
    with pytest.raises(AlreadyExists) as caught:
        metadata_store.record_request(RequestRecord("a", "req-1", "CreateModel", "models/x", T0))
    assert_error(caught.value, Reason.REQUEST_ID_REUSED)
    metadata_store.record_request(RequestRecord("b", "req-1", "CreateModel", "models/m", T0))
    assert metadata_store.find_request("c", "req-1") is None


# -- files -------------------------------------------------------------------------------------


def make_file(file_id: str, number: int = 1, tenant: str = "a", sha: str = "f" * 64) -> FileRecord:
    return FileRecord(tenant, "m", number, file_id, 10, sha, 0xFFFFFFFF, "text/plain", T0)


def test_files(metadata_store: PeeweeMetadataStore) -> None:
    metadata_store.insert_model(make_model("m"))
    add_version(metadata_store, "m", labels={"team": "risk"}, metrics={"auc": 0.9})
    add_version(metadata_store, "m")
    before = metadata_store.get_version("a", "m", 1)
    assert before is not None
    names = ["b.txt", "a/x.bin", "a.txt", "Z", "é"]
    for name in names:
        metadata_store.add_file(make_file(name))
    metadata_store.add_file(make_file("a.txt", number=2))  # same id, other version

    assert metadata_store.get_file("a", "m", 1, "a.txt") == make_file("a.txt")
    assert metadata_store.get_file("a", "m", 1, "nope") is None
    assert metadata_store.get_file("b", "m", 1, "a.txt") is None
    with pytest.raises(AlreadyExists) as caught:
        metadata_store.add_file(make_file("a.txt"))
    assert_error(caught.value, Reason.FILE_ALREADY_EXISTS)
    with pytest.raises(NotFound):
        metadata_store.add_file(make_file("a.txt", number=3))

    # Each file counted once in its own version (the refused one not at all); nothing else of
    # the version changed but its update time and revision.
    after = metadata_store.get_version("a", "m", 1)
    assert after is not None
    assert (after.file_count, after.total_size) == (len(names), 10 * len(names))
    assert (after.update_time, after.revision) == (T0, before.revision + len(names))
    after.file_count, after.total_size = before.file_count, before.total_size
    after.update_time, after.revision = before.update_time, before.revision
    assert after == before
    other = metadata_store.get_version("a", "m", 2)
    assert other is not None and (other.file_count, other.total_size) == (1, 10)

    listed: list[str] = []
    after = None
    while True:
        page = metadata_store.list_files("a", "m", 1, after, 2)
        listed.extend(f.file_id for f in page.items)
        if page.next_cursor is None:
            break
        (after,) = page.next_cursor
    assert listed == sorted(names)  # code-point order on every backend
    assert [f.file_id for f in metadata_store.list_files("a", "m", 2, None, 10).items] == ["a.txt"]


# -- blobs -------------------------------------------------------------------------------------


def test_blob_bookkeeping(metadata_store: PeeweeMetadataStore) -> None:
    metadata_store.insert_model(make_model("m"))
    add_version(metadata_store, "m")
    used, free, fresh = "1" * 64, "2" * 64, "3" * 64
    assert not metadata_store.is_blob_known(used)
    metadata_store.touch_blob(used, 10, at(0))
    metadata_store.touch_blob(free, 10, at(0))
    metadata_store.touch_blob(fresh, 10, at(0))
    metadata_store.touch_blob(fresh, 10, at(100))  # upsert: touched again later
    assert metadata_store.is_blob_known(used)
    metadata_store.add_file(make_file("f", sha=used))

    assert metadata_store.collectable_blobs(at(50), 10) == [free]
    assert sorted(metadata_store.collectable_blobs(at(101), 10)) == sorted([free, fresh])
    assert len(metadata_store.collectable_blobs(at(101), 1)) == 1

    assert metadata_store.forget_blob(used, at(101)) is False  # referenced
    assert metadata_store.forget_blob(fresh, at(50)) is False  # touched since
    metadata_store.touch_blob(free, 10, at(200))
    assert metadata_store.forget_blob(free, at(101)) is False  # re-touched before the delete
    assert metadata_store.forget_blob(free, at(201)) is True
    assert metadata_store.forget_blob(free, at(201)) is False
    assert not metadata_store.is_blob_known(free)
    assert metadata_store.is_blob_known(used)


# -- upload sessions ---------------------------------------------------------------------------


def make_upload(upload_id: str, tenant: str = "a", updated: float = 0) -> UploadSession:
    return UploadSession(
        tenant, upload_id, "m", 1, "f.bin", None, "", "application/octet-stream", 0,
        UploadState.ACTIVE, T0, at(updated),
    )  # fmt: skip


def test_upload_sessions(metadata_store: PeeweeMetadataStore) -> None:
    session = make_upload("u1")
    metadata_store.insert_upload(session)
    assert metadata_store.get_upload("a", "u1") == session
    assert metadata_store.get_upload("b", "u1") is None
    with pytest.raises(AlreadyExists) as caught:
        metadata_store.insert_upload(make_upload("u1"))
    assert_error(caught.value, Reason.UPLOAD_CONFLICT)
    sized = make_upload("u2", tenant="b", updated=5)
    sized.declared_size, sized.declared_sha256 = 1 << 33, "ab" * 32
    metadata_store.insert_upload(sized)
    assert metadata_store.get_upload("b", "u2") == sized

    with metadata_store.transaction():
        locked = metadata_store.get_upload("a", "u1", for_update=True)
        assert locked is not None
        locked.committed_size, locked.state, locked.update_time = 7, UploadState.COMMITTED, at(9)
        locked.file_id = "not written"
        metadata_store.save_upload(locked)
    got = metadata_store.get_upload("a", "u1")
    assert got is not None
    assert (got.committed_size, got.state, got.update_time, got.file_id) == (
        7, UploadState.COMMITTED, at(9), "f.bin",
    )  # fmt: skip

    assert metadata_store.advance_upload("b", "u2", 0, 100, at(6)) is True
    assert metadata_store.advance_upload("b", "u2", 0, 200, at(7)) is False  # moved on
    assert metadata_store.advance_upload("a", "u2", 100, 200, at(7)) is False  # other tenant
    assert metadata_store.advance_upload("a", "u1", 7, 8, at(7)) is False  # committed
    moved = metadata_store.get_upload("b", "u2")
    assert moved is not None and (moved.committed_size, moved.update_time) == (100, at(6))
    metadata_store.advance_upload("b", "u2", 100, 100, at(5))  # back to its old time

    assert [s.upload_id for s in metadata_store.stale_uploads(at(9.5), 10)] == ["u2", "u1"]
    assert [s.upload_id for s in metadata_store.stale_uploads(at(6), 10)] == ["u2"]
    assert len(metadata_store.stale_uploads(at(10), 1)) == 1
    metadata_store.delete_upload("a", "u1")
    metadata_store.delete_upload("a", "u1")  # absent: no error
    assert metadata_store.get_upload("a", "u1") is None
    with pytest.raises(NotFound):
        metadata_store.save_upload(session)


# -- purge -------------------------------------------------------------------------------------


def test_purge(metadata_store: PeeweeMetadataStore) -> None:
    store = metadata_store
    gone = {"delete_time": at(0), "purge_time": at(10)}
    store.insert_model(make_model("dead", labels={"x": "y"}))  # deleted below
    store.insert_model(make_model("later", delete_time=at(0), purge_time=at(1000)))
    store.insert_model(make_model("live"))
    for model_id in ("dead", "live"):
        add_version(store, model_id, labels={"l": "1"}, metrics={"m": 1.0})  # 1
        add_version(store, model_id, labels={"l": "2"}, metrics={"m": 2.0}, **gone)  # 2
        add_version(store, model_id, delete_time=at(0), purge_time=at(1000))  # 3
        for number in (1, 2, 3):
            store.set_alias(Alias("a", model_id, f"v{number}", number, T0))
            store.add_file(FileRecord("a", model_id, number, "f", 1, "9" * 64, 0, "x", T0))
            store.add_transition(
                "a", model_id, number,
                StageTransition(Stage.DEVELOPMENT, Stage.STAGING, "ann", "", T0),
            )  # fmt: skip
    store.touch_blob("9" * 64, 1, T0)
    dead = store.get_model("a", "dead")
    assert dead is not None
    dead.delete_time, dead.purge_time = at(0), at(10)
    store.save_model(dead)

    counts = store.purge(at(10))
    assert (counts.models, counts.versions) == (1, 4)  # "dead" with 3 versions, live/2
    assert store.get_model("a", "dead") is None
    assert store.get_version("a", "dead", 1) is None
    assert store.get_model("a", "later") is not None
    assert [v.number for v in store.list_versions(
        "a", "live", ListQuery(order_by=VERSION_DEFAULT_ORDER, show_deleted=True), NOW
    ).items] == [1, 3]  # fmt: skip
    assert [a.alias for a in store.list_aliases("a", "live")] == ["v1", "v3"]
    assert store.get_file("a", "live", 2, "f") is None
    assert store.get_file("a", "live", 1, "f") is not None
    assert store.is_blob_known("9" * 64)  # blobs are left to blob GC
    assert store.purge(at(10)) == PurgeCounts(0, 0)

    # Every dependent row is gone: the ids can be reused from scratch.
    store.insert_model(make_model("dead"))
    assert add_version(store, "dead") == 1
    version = store.get_version("a", "dead", 1)
    assert version is not None and version.labels == {} and version.aliases == []
    assert store.list_transitions("a", "dead", 1, None, 10).items == []
    assert store.list_files("a", "dead", 1, None, 10).items == []
    counts = store.purge(at(1000))
    assert (counts.models, counts.versions) == (1, 1)
    # What was purged, by name (the events of the purge name it): a purged model stands for
    # its versions; a version is named when its model stays.
    assert counts.purged == (("a", "models/later"), ("a", "models/live/versions/3"))


# -- tenant isolation --------------------------------------------------------------------------


def test_tenants_are_isolated(metadata_store: PeeweeMetadataStore) -> None:
    store = metadata_store
    store.insert_model(make_model("m", tenant="a", labels={"t": "a"}))
    add_version(store, "m", tenant="a", state=VersionState.READY, labels={"t": "a"})
    store.set_alias(Alias("a", "m", "prod", 1, T0))
    store.add_file(FileRecord("a", "m", 1, "f", 1, "0" * 64, 0, "x", T0))
    store.add_transition(
        "a", "m", 1, StageTransition(Stage.DEVELOPMENT, Stage.STAGING, "x", "", T0)
    )
    store.insert_upload(make_upload("u", tenant="a"))
    store.record_request(RequestRecord("a", "r", "CreateModel", "models/m", T0))

    b = "b"
    everything = ListQuery(show_deleted=True, page_size=1000)
    assert store.get_model(b, "m") is None
    assert store.list_models(b, everything).items == []
    labelled = ListQuery(filter=Comparison("labels.t", Op.HAS, None), show_deleted=True)
    assert store.list_models(b, labelled).items == []
    assert store.get_version(b, "m", 1) is None
    assert store.latest_version(b, "m", NOW) is None
    assert store.count_versions(b, "m", include_deleted=True) == 0
    assert store.list_versions(b, None, everything, NOW).items == []
    assert store.list_versions(b, "m", labelled, NOW).items == []
    assert store.get_alias(b, "m", "prod") is None
    assert store.list_aliases(b, "m") == []
    assert store.delete_alias(b, "m", "prod") is False
    assert store.get_file(b, "m", 1, "f") is None
    assert store.list_files(b, "m", 1, None, 10).items == []
    assert store.list_transitions(b, "m", 1, None, 10).items == []
    assert store.get_upload(b, "u") is None
    assert store.find_request(b, "r") is None
    assert store.allocate_version_number(b, "m") is None

    # Same names in tenant b do not collide with tenant a, and a's rows are unchanged.
    store.insert_model(make_model("m", tenant=b))
    assert add_version(store, "m", tenant=b) == 1
    store.delete_upload(b, "u")
    assert store.get_upload("a", "u") is not None
    assert [m.tenant for m in store.list_models(b, everything).items] == [b]
    assert [m.labels for m in store.list_models("a", labelled).items] == [{"t": "a"}]


# -- filters -----------------------------------------------------------------------------------


def seed_versions(store: MetadataStore) -> None:
    """A small, varied set of versions of models ``alpha`` and ``beta`` (tenant ``a``)."""
    store.insert_model(make_model("alpha"))
    store.insert_model(make_model("beta"))
    ready, draft = VersionState.READY, VersionState.DRAFT
    rows: list[tuple[str, dict[str, Any]]] = [
        ("alpha", dict(  # alpha/1
            description="first run", type="sklearn", author="ann", stage=Stage.DEVELOPMENT,
            state=ready, labels={"team": "vision", "env": "prod"},
            metrics={"acc": 0.9, "loss": 0.1}, file_count=2, total_size=100,
            create_time=at(1),
        )),
        ("alpha", dict(  # alpha/2
            description="second_run 100%", type="torch", author="bob", stage=Stage.STAGING,
            state=ready, labels={"team": "nlp"}, metrics={"acc": 0.7}, file_count=0,
            total_size=0, create_time=at(2), expire_time=NOW - timedelta(seconds=1),
        )),
        ("alpha", dict(  # alpha/3
            description="secondXrun", type="torch", author="Ann", stage=Stage.PRODUCTION,
            state=draft, labels={}, metrics={"loss": 0.3}, file_count=5, total_size=500,
            create_time=at(3), expire_time=NOW,
        )),
        ("beta", dict(  # beta/1
            description="First", type="xgboost", author="cid", stage=Stage.ARCHIVED,
            state=ready, labels={"team": "vis%"}, metrics={"acc": 0.8}, file_count=1,
            total_size=100, create_time=at(4), expire_time=NOW + timedelta(seconds=1),
        )),
        ("beta", dict(  # beta/2, soft-deleted
            description="gone", type="torch", author="ann", stage=Stage.DEVELOPMENT,
            state=ready, labels={"team": "vision"}, metrics={"acc": 0.95},
            create_time=at(5), delete_time=at(6),
        )),
    ]  # fmt: skip
    for model_id, fields in rows:
        add_version(store, model_id, **fields)


A1, A2, A3, B1, B2 = ("alpha", 1), ("alpha", 2), ("alpha", 3), ("beta", 1), ("beta", 2)


def c(field: str, op: Op, value: Any, prefix: bool = False) -> Comparison:
    return Comparison(field, op, value, prefix)


VERSION_FILTERS: list[tuple[str, Expr, list[tuple[str, int]]]] = [
    # strings: equality, case-sensitive prefix (wildcards escaped), contains, ordering
    ("string =", c("description", Op.EQ, "first run"), [A1]),
    ("string !=", c("author", Op.NE, "ann"), [A2, A3, B1]),
    ("prefix", c("description", Op.EQ, "fir", True), [A1]),
    ("prefix is case-sensitive", c("description", Op.EQ, "Fir", True), [B1]),
    ("prefix escapes _", c("description", Op.EQ, "second_", True), [A2]),
    ("not prefix", c("description", Op.NE, "second", True), [A1, B1]),
    ("contains", c("description", Op.HAS, "run"), [A1, A2, A3]),
    ("contains escapes %", c("description", Op.HAS, "100%"), [A2]),
    ("contains", c("description", Op.HAS, "irst"), [A1, B1]),
    ("contains is case-sensitive", c("description", Op.HAS, "Fir"), [B1]),
    ("string <", c("type", Op.LT, "t"), [A1]),
    ("model_id", c("model_id", Op.EQ, "beta"), [B1]),
    ("string set", c("description", Op.HAS, None), [A1, A2, A3, B1]),
    # numbers
    ("integer =", c("version_number", Op.EQ, 2), [A2]),
    ("integer >", c("file_count", Op.GT, 1), [A1, A3]),
    ("integer <=", c("total_size", Op.LE, 100), [A1, A2, B1]),
    # timestamps
    ("time >", c("create_time", Op.GT, at(2)), [A3, B1]),
    ("time <=", c("create_time", Op.LE, at(2)), [A1, A2]),
    ("nullable time <", c("expire_time", Op.LT, NOW), [A2]),
    ("not nullable time <", Not(c("expire_time", Op.LT, NOW)), [A1, A3, B1]),
    ("nullable time set", c("expire_time", Op.HAS, None), [A2, A3, B1]),
    # enums
    ("enum =", c("stage", Op.EQ, "PRODUCTION"), [A3]),
    ("enum !=", c("state", Op.NE, "READY"), [A3]),
    # computed bool
    ("expired", c("expired", Op.EQ, True), [A2, A3]),
    ("not expired", c("expired", Op.EQ, False), [A1, B1]),
    ("expired !=", c("expired", Op.NE, True), [A1, B1]),
    # labels
    ("label present", c("labels.team", Op.HAS, None), [A1, A2, B1]),
    ("label =", c("labels.team", Op.EQ, "vision"), [A1]),
    ("label != means present with another value", c("labels.team", Op.NE, "vision"), [A2, B1]),
    ("not label =", Not(c("labels.team", Op.EQ, "vision")), [A2, A3, B1]),
    ("label prefix", c("labels.team", Op.EQ, "vis", True), [A1, B1]),
    ("label prefix escapes %", c("labels.team", Op.EQ, "vis%", True), [B1]),
    ("label contains", c("labels.team", Op.HAS, "isi"), [A1]),
    ("label absent", Not(c("labels.env", Op.HAS, None)), [A2, A3, B1]),
    # metrics
    ("metric >", c("metrics.acc", Op.GT, 0.75), [A1, B1]),
    ("metric <=", c("metrics.loss", Op.LE, 0.1), [A1]),
    ("metric =", c("metrics.acc", Op.EQ, 0.7), [A2]),
    ("metric present", c("metrics.loss", Op.HAS, None), [A1, A3]),
    ("not metric >", Not(c("metrics.acc", Op.GT, 0.75)), [A2, A3]),
    ("metric != means present", c("metrics.acc", Op.NE, 0.9), [A2, B1]),
    # logic
    (
        "and/or/not",
        And((
            Or((c("labels.team", Op.EQ, "vision"), c("metrics.acc", Op.LT, 0.75))),
            Not(c("author", Op.EQ, "bob")),
        )),
        [A1],
    ),
    (
        "or of ands",
        Or((
            And((c("model_id", Op.EQ, "beta"), c("stage", Op.EQ, "ARCHIVED"))),
            And((c("model_id", Op.EQ, "alpha"), Not(c("expired", Op.EQ, False)))),
        )),
        [A2, A3, B1],
    ),
    ("double negation", Not(Not(c("type", Op.EQ, "torch"))), [A2, A3]),
]  # fmt: skip


def test_version_filters(metadata_store: PeeweeMetadataStore) -> None:
    seed_versions(metadata_store)
    for name, expr, expected in VERSION_FILTERS:
        query = ListQuery(filter=expr, order_by=VERSION_DEFAULT_ORDER, page_size=100)
        got = version_keys(metadata_store.list_versions("a", None, query, NOW).items)
        assert got == expected, name


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("labels.team:*", [A1, A2, B1]),
        ('metrics.acc > 0.75 AND NOT author = "bob"', [A1, B1]),
        ('description = "second_*"', [A2]),
        ('description:"100%"', [A2]),
        ('create_time > "2024-05-01T12:00:02.123456Z"', [A3, B1]),
        ("stage = PRODUCTION OR expired = true", [A2, A3]),
        ('version_number >= 2 labels.team != "vision"', [A2]),
    ],
)
def test_parsed_filters(
    metadata_store: PeeweeMetadataStore, text: str, expected: list[tuple[str, int]]
) -> None:
    seed_versions(metadata_store)
    query = ListQuery(filter=parse_filter(text, VERSION_SCHEMA), order_by=VERSION_DEFAULT_ORDER)
    assert version_keys(metadata_store.list_versions("a", None, query, NOW).items) == expected


def test_filters_scope_and_soft_deletes(metadata_store: PeeweeMetadataStore) -> None:
    seed_versions(metadata_store)
    store, order = metadata_store, VERSION_DEFAULT_ORDER
    team = c("labels.team", Op.EQ, "vision")
    visible = ListQuery(filter=team, order_by=order)
    all_rows = ListQuery(filter=team, order_by=order, show_deleted=True)
    assert version_keys(store.list_versions("a", None, visible, NOW).items) == [A1]
    assert version_keys(store.list_versions("a", None, all_rows, NOW).items) == [A1, B2]
    assert version_keys(store.list_versions("a", "beta", all_rows, NOW).items) == [B2]
    deleted = ListQuery(filter=c("delete_time", Op.GE, at(6)), show_deleted=True)
    assert version_keys(store.list_versions("a", None, deleted, NOW).items) == [B2]
    # "expired" follows the caller's clock
    expired = ListQuery(filter=c("expired", Op.EQ, True), order_by=order)
    later = NOW + timedelta(seconds=1)
    assert version_keys(store.list_versions("a", None, expired, later).items) == [A2, A3, B1]


@pytest.mark.parametrize(
    "expr",
    [
        c("nope", Op.EQ, "x"),
        c("metrics", Op.EQ, 1.0),
        c("version_number", Op.EQ, "one"),
        c("create_time", Op.GT, "yesterday"),
        c("stage", Op.LT, "PRODUCTION"),
        c("stage", Op.EQ, "NOT_A_STAGE"),
        c("expired", Op.EQ, "yes"),
        c("file_count", Op.EQ, 1, True),
        c("file_count", Op.GT, 2**63),
        c("metrics.acc", Op.GT, float("nan")),
        c("description", Op.EQ, "nul\x00"),
    ],
    ids=repr,
)
def test_invalid_filters_are_rejected(metadata_store: PeeweeMetadataStore, expr: Expr) -> None:
    with pytest.raises(InvalidArgument) as caught:
        metadata_store.list_versions("a", None, ListQuery(filter=expr), NOW)
    assert_error(caught.value, Reason.INVALID_FILTER)


def test_model_filters(metadata_store: PeeweeMetadataStore) -> None:
    store = metadata_store
    store.insert_model(make_model("cat", display_name="Cat net", labels={"team": "vision"}))
    store.insert_model(make_model("dog", display_name="Dog", author="bob", create_time=at(5)))
    store.insert_model(make_model("old", delete_time=at(1), labels={"team": "nlp"}))
    add_version(store, "dog")
    cases: list[tuple[Expr, list[str]]] = [
        (c("display_name", Op.EQ, "Cat", True), ["cat"]),
        (c("display_name", Op.HAS, "o"), ["dog"]),
        (c("author", Op.EQ, "bob"), ["dog"]),
        (c("latest_version_number", Op.GE, 1), ["dog"]),
        (c("create_time", Op.GT, T0), ["dog"]),
        (c("labels.team", Op.HAS, None), ["cat"]),
        (Not(c("labels.team", Op.EQ, "vision")), ["dog"]),
        (Or((c("model_id", Op.EQ, "cat"), c("model_id", Op.EQ, "dog"))), ["cat", "dog"]),
    ]
    for expr, expected in cases:
        page = store.list_models("a", ListQuery(filter=expr, order_by=(OrderKey("model_id"),)))
        assert [m.model_id for m in page.items] == expected, expr
    deleted = ListQuery(filter=c("delete_time", Op.LE, at(1)), show_deleted=True)
    assert [m.model_id for m in store.list_models("a", deleted).items] == ["old"]
    with pytest.raises(InvalidArgument):
        store.list_models("a", ListQuery(filter=c("metrics.acc", Op.GT, 1.0)))


# -- ordering ----------------------------------------------------------------------------------


def test_order_by_metric_puts_missing_last(metadata_store: PeeweeMetadataStore) -> None:
    seed_versions(metadata_store)
    for descending, expected in [(True, [A1, B1, A2, A3]), (False, [A2, B1, A1, A3])]:
        query = ListQuery(order_by=(OrderKey("metrics.acc", descending),), page_size=100)
        got = version_keys(metadata_store.list_versions("a", None, query, NOW).items)
        assert got == expected, descending
        paged = version_keys(collect(lambda q: metadata_store.list_versions(
            "a", None, q, NOW), ListQuery(order_by=query.order_by, page_size=1)))  # fmt: skip
        assert paged == expected, descending


def test_order_by_nullable_column_and_label(metadata_store: PeeweeMetadataStore) -> None:
    seed_versions(metadata_store)

    def order(*keys: OrderKey) -> list[tuple[str, int]]:
        query = ListQuery(order_by=keys, page_size=2)
        return version_keys(
            collect(lambda q: metadata_store.list_versions("a", None, q, NOW), query)
        )

    assert order(OrderKey("expire_time")) == [A2, A3, B1, A1]
    assert order(OrderKey("expire_time", True)) == [B1, A3, A2, A1]
    assert order(OrderKey("labels.team")) == [A2, B1, A1, A3]
    assert order(OrderKey("labels.team", True)) == [A1, B1, A2, A3]
    assert order(OrderKey("type", True), OrderKey("create_time")) == [B1, A2, A3, A1]
    assert order(OrderKey("stage"), OrderKey("version_number", True)) == [B1, A1, A3, A2]


def test_invalid_order_by_is_rejected(metadata_store: PeeweeMetadataStore) -> None:
    for key in ("nope", "expired", "metrics"):
        with pytest.raises(InvalidArgument) as caught:
            metadata_store.list_versions("a", None, ListQuery(order_by=(OrderKey(key),)), NOW)
        assert_error(caught.value, Reason.INVALID_ORDER_BY)


# -- pagination --------------------------------------------------------------------------------

PAGED_ORDERS: list[tuple[OrderKey, ...]] = [
    VERSION_DEFAULT_ORDER,
    (OrderKey("create_time", descending=True),),
    (OrderKey("metrics.acc", descending=True), OrderKey("create_time")),
    (OrderKey("labels.bucket"), OrderKey("version_number", descending=True)),
    (OrderKey("expire_time"), OrderKey("model_id", descending=True)),
]


def seed_many(store: MetadataStore, count: int = 250) -> None:
    """``count`` versions over 7 models with many ties and missing values."""
    with store.transaction():
        for m in range(7):
            store.insert_model(make_model(f"model-{m}"))
        for i in range(count):
            fields: dict[str, Any] = {"create_time": at(i % 13)}
            if i % 3:
                fields["metrics"] = {"acc": round((i % 17) / 17, 3)}
            if i % 4:
                fields["labels"] = {"bucket": f"b{i % 5}"}
            if i % 2:
                fields["expire_time"] = at(i % 11)
            add_version(store, f"model-{i % 7}", **fields)


def test_pages_cover_every_row_once(metadata_store: PeeweeMetadataStore) -> None:
    seed_many(metadata_store)

    def fetch(q: ListQuery) -> Page[ModelVersion]:
        return metadata_store.list_versions("a", None, q, NOW)

    for order in PAGED_ORDERS:
        whole = fetch(ListQuery(order_by=order, page_size=1000))
        assert whole.next_cursor is None and len(whole.items) == 250
        expected = version_keys(whole.items)
        assert len(set(expected)) == 250
        sizes = (1, 7, 100) if order in PAGED_ORDERS[:3] else (7, 100)
        for size in sizes:
            got = version_keys(collect(fetch, ListQuery(order_by=order, page_size=size)))
            assert got == expected, (order, size)


def test_default_order_pages_follow_model_and_number(
    metadata_store: PeeweeMetadataStore,
) -> None:
    seed_many(metadata_store, count=60)
    query = ListQuery(order_by=VERSION_DEFAULT_ORDER, page_size=7)
    got = version_keys(collect(lambda q: metadata_store.list_versions("a", None, q, NOW), query))
    assert got == sorted(got) and len(got) == 60


def test_model_pages(metadata_store: PeeweeMetadataStore) -> None:
    with metadata_store.transaction():
        for i in range(60):
            metadata_store.insert_model(make_model(
                f"m{i:03d}", create_time=at(i % 4), labels={"k": str(i % 3)} if i % 2 else {}
            ))  # fmt: skip

    def fetch(q: ListQuery) -> Page[Model]:
        return metadata_store.list_models("a", q)

    orders: list[tuple[OrderKey, ...]] = [
        (OrderKey("model_id"),),
        (OrderKey("create_time", True), OrderKey("model_id")),
        (OrderKey("labels.k", True),),
    ]
    for order in orders:
        expected = [m.model_id for m in fetch(ListQuery(order_by=order, page_size=1000)).items]
        assert len(expected) == 60
        for size in (1, 7, 100):
            got = [m.model_id for m in collect(fetch, ListQuery(order_by=order, page_size=size))]
            assert got == expected, (order, size)
    ids = [m.model_id for m in collect(fetch, ListQuery(order_by=orders[0], page_size=9))]
    assert ids == sorted(ids)


def test_pagination_is_stable_while_rows_are_inserted(
    metadata_store: PeeweeMetadataStore,
) -> None:
    store = metadata_store
    store.insert_model(make_model("m"))
    for i in range(20):
        add_version(store, "m", create_time=at(i * 10), metrics={"acc": i / 20})
    order = (OrderKey("metrics.acc", True), OrderKey("create_time"))
    seen: list[int] = []
    after = None
    inserted_after_cursor: list[int] = []
    for step in range(100):
        page = store.list_versions(
            "a", "m", ListQuery(order_by=order, page_size=3, after=after), NOW
        )
        seen.extend(v.number for v in page.items)
        if page.next_cursor is None:
            break
        after = page.next_cursor
        acc = page.items[-1].metrics.get("acc")
        if acc is None:
            continue  # among the rows without the metric: stop inserting
        # One row sorting before the cursor (already passed), one after it, one with no metric.
        add_version(store, "m", create_time=at(step), metrics={"acc": min(acc + 0.01, 1.5)})
        inserted_after_cursor.append(add_version(store, "m", metrics={"acc": acc - 0.001}))
        inserted_after_cursor.append(add_version(store, "m"))
    assert len(seen) == len(set(seen)), "a row was repeated"
    assert set(range(1, 21)) <= set(seen), "a row was skipped"
    assert set(inserted_after_cursor) <= set(seen)


@pytest.mark.parametrize(
    "cursor",
    [
        (),
        ("alpha",),
        ("alpha", 1, 2, 3),
        (1, 1, 1),
        ("alpha", "1", 1),
        ("alpha", 1, None),
        ("alpha", True, 1),
        ("alpha", 1.5, 1),
        ("alpha", 1, 2**63),
        ("al\x00pha", 1, 1),
    ],
    ids=repr,
)
def test_bad_cursor_is_invalid_page_token(
    metadata_store: PeeweeMetadataStore, cursor: tuple[Any, ...]
) -> None:
    query = ListQuery(order_by=VERSION_DEFAULT_ORDER, after=cursor)
    with pytest.raises(InvalidArgument) as caught:
        metadata_store.list_versions("a", None, query, NOW)
    assert_error(caught.value, Reason.INVALID_PAGE_TOKEN)
    assert [v.field for v in caught.value.field_violations] == ["page_token"]


def test_cursor_types_per_key(metadata_store: PeeweeMetadataStore) -> None:
    seed_versions(metadata_store)
    order = (OrderKey("metrics.acc", True), OrderKey("create_time"), OrderKey("labels.team"))
    page = metadata_store.list_versions("a", None, ListQuery(order_by=order, page_size=1), NOW)
    assert page.next_cursor is not None
    acc, created, team, pk = page.next_cursor
    assert (acc, created, team) == (0.9, (at(1) - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(
        microseconds=1), "vision")  # fmt: skip
    assert isinstance(pk, int)
    # A missing metric or label travels as None; an int is accepted for a number.
    for cursor in [(None, 0, None, 0), (1, 0, "x", 0)]:
        metadata_store.list_versions(
            "a", None, ListQuery(order_by=order, page_size=1, after=cursor), NOW
        )
    with pytest.raises(InvalidArgument):
        metadata_store.list_versions(
            "a", None, ListQuery(order_by=order, after=(0.5, None, None, 0)), NOW
        )


def test_page_size_must_be_positive(metadata_store: PeeweeMetadataStore) -> None:
    with pytest.raises(InvalidArgument):
        metadata_store.list_models("a", ListQuery(page_size=0))


# -- migrations and configuration --------------------------------------------------------------


def test_migrations_are_idempotent(metadata_url: str) -> None:
    first = open_metadata_store(metadata_url)
    try:
        first.insert_model(make_model("m"))
        assert schema_version(first.backend) == LATEST_VERSION
    finally:
        first.close()
    second = open_metadata_store(metadata_url)
    try:
        assert schema_version(second.backend) == LATEST_VERSION
        assert second.get_model("a", "m") is not None
        db = second.backend.database
        with second.connection():
            rows = db.execute_sql("SELECT COUNT(*) FROM schema_version").fetchone()
        assert rows[0] == LATEST_VERSION
    finally:
        second.close()


def test_newer_schema_is_refused(metadata_url: str) -> None:
    store = open_metadata_store(metadata_url)
    try:
        db = store.backend.database
        with store.transaction():
            db.execute_sql(
                "INSERT INTO schema_version (version, description) VALUES (999, 'future')"
            )
    finally:
        store.close()
    with pytest.raises(SchemaTooNewError, match="999"):
        open_metadata_store(metadata_url)


def test_row_classes_match_the_tables(metadata_store: PeeweeMetadataStore) -> None:
    db = metadata_store.backend.database
    with metadata_store.connection():
        for row in metadata_store._t.all():
            columns = {c.name for c in db.get_columns(row._meta.table_name)}
            assert columns == set(row._meta.columns), row._meta.table_name


def test_two_stores_coexist(tmp_path: Path) -> None:
    first = open_metadata_store(sqlite_url(tmp_path / "one"))
    second = open_metadata_store(sqlite_url(tmp_path / "two"))
    try:
        first.insert_model(make_model("only-in-first"))
        assert second.get_model("a", "only-in-first") is None
        assert first.get_model("a", "only-in-first") is not None
    finally:
        first.close()
        second.close()


def test_sqlite_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    store = open_metadata_store("sqlite:///nested/dir/registry.db")
    try:
        assert (tmp_path / "nested" / "dir" / "registry.db").exists()
        db = store.backend.database
        with store.connection():
            pragma = {
                name: db.execute_sql(f"PRAGMA {name}").fetchone()[0]
                for name in ("journal_mode", "foreign_keys", "busy_timeout")
            }
        assert pragma["journal_mode"] == "wal"
        assert pragma["foreign_keys"] == 1
        assert pragma["busy_timeout"] >= 10_000
    finally:
        store.close()


@pytest.mark.parametrize(
    "url",
    ["mysql://u@h/db", "sqlite:///", "sqlite://relative.db", "sqlite:///:memory:", "nope",
     "postgresql://127.0.0.1:5432/"],
)  # fmt: skip
def test_bad_urls_are_rejected(url: str) -> None:
    with pytest.raises(ValueError):
        open_metadata_store(url)


def test_sqlite_errors_are_translated(tmp_path: Path) -> None:
    path = tmp_path / "locked.db"
    holder = sqlite3.connect(path, isolation_level=None)
    other = sqlite3.connect(path, isolation_level=None, timeout=0)
    try:
        holder.execute("CREATE TABLE t (x INTEGER)")
        holder.execute("BEGIN EXCLUSIVE")
        with pytest.raises(Unavailable), translated():
            other.execute("INSERT INTO t VALUES (1)")  # SQLITE_BUSY
        holder.execute("ROLLBACK")
        with pytest.raises(StoreError), translated():
            other.execute("SELECT * FROM missing")  # a bug, not an outage
    finally:
        holder.close()
        other.close()


# -- outages -----------------------------------------------------------------------------------


@pytest.mark.postgres
def test_unreachable_postgres_is_unavailable() -> None:
    for scheme in ("postgresql", "postgres"):
        with pytest.raises(Unavailable) as caught:
            open_metadata_store(f"{scheme}://postgres@127.0.0.1:{free_port()}/registry")
        assert_error(caught.value, Reason.BACKEND_UNAVAILABLE)


@pytest.mark.postgres
def test_stopped_postgres_is_unavailable_then_recovers() -> None:
    with running_cluster() as cluster:
        store = open_metadata_store(cluster.create_database())
        try:
            store.insert_model(make_model("m"))
            cluster.stop()
            with pytest.raises(Unavailable):
                store.get_model("a", "m")
            with pytest.raises(Unavailable):
                store.insert_model(make_model("n"))
            with pytest.raises(Unavailable), store.transaction():
                store.allocate_version_number("a", "m")
            cluster.start()
            assert store.get_model("a", "m") is not None  # dead pooled connections are dropped
        finally:
            store.close()


@pytest.mark.postgres
def test_connections_killed_by_the_server_are_unavailable(postgres_server: Any) -> None:
    url = postgres_server.create_database()
    store = open_metadata_store(url)
    try:
        store.insert_model(make_model("m"))
        with store.connection():
            db = store.backend.database
            own_pid = db.execute_sql("SELECT pg_backend_pid()").fetchone()[0]
            killer = open_metadata_store(url)
            try:
                with killer.connection():
                    killer.backend.database.execute_sql(
                        "SELECT pg_terminate_backend(%s)", (own_pid,)
                    )
            finally:
                killer.close()
            with pytest.raises(Unavailable):
                store.get_model("a", "m")
        assert store.get_model("a", "m") is not None
    finally:
        store.close()
