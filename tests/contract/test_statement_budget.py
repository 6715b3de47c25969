"""SQL statement budgets of the hot write and read paths, on every metadata backend.

Every statement the store sends goes through the peewee database's ``execute_sql`` (BEGIN and
SAVEPOINT included; COMMIT goes through the driver and is not counted). The budgets are the
ones documented in docs/design.md ("Statement budgets"): a regression that rewrites rows it
does not change, or adds round trips, fails here.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from modelregistry_server.domain import names
from modelregistry_server.domain.identity import Caller
from modelregistry_server.domain.payloads import Payloads, UploadRequest
from modelregistry_server.domain.registry import Registry
from modelregistry_server.domain.updates import Patch
from modelregistry_server.storage.blobs.local import LocalBlobStore
from modelregistry_server.storage.metadata import PeeweeMetadataStore

# Request-id lookup, counter UPDATE ... RETURNING (it returns the model's row id too), version
# INSERT, labels INSERT, metrics INSERT, request-id INSERT; the event: head UPDATE ...
# RETURNING, event INSERT, head hash UPDATE (on PostgreSQL one statement: the budgets are
# SQLite's).
CREATE_VERSION_BUDGET = 9
# Open: version status, session, file id check, session INSERT; one piece: committed-size
# compare-and-set; publish: blob touch, then version status (locked), blob touch, version row
# id, file INSERT, counter UPDATE, session UPDATE; the event (3 statements, as above).
SMALL_UPLOAD_BUDGET = 15
# GetModelVersion by number or ``latest``: the version row, its labels, metrics and aliases in
# one statement (no BEGIN: one statement is one snapshot); by alias, the alias lookup first.
GET_VERSION_BUDGET = 1
GET_VERSION_BY_ALIAS_BUDGET = 2
# UpdateModelVersion of one label: the locked read (on PostgreSQL a row lock first), the
# version UPDATE, one label upsert, the event (3). The row is not read again and unchanged
# labels and metrics are not rewritten.
UPDATE_VERSION_BUDGET = 7
# UpdateModel of the description: the locked read (PostgreSQL: lock first), the model UPDATE,
# the event (3); its labels are not touched.
UPDATE_MODEL_BUDGET = 6
# SetAlias: the model's locked read (PostgreSQL: lock first), the version read, the alias
# upsert, the history INSERT, the event (3).
SET_ALIAS_BUDGET = 8
# GetModel: the row and its labels in one statement.
GET_MODEL_BUDGET = 1
# ListModelVersions of one model: the model read, the page's rows, then their labels, metrics
# and aliases in one statement.
LIST_VERSIONS_BUDGET = 3
CALLER = Caller(tenant="default", subject="test")


@contextmanager
def counted(store: PeeweeMetadataStore) -> Iterator[list[str]]:
    """Record the SQL text of every statement the store sends while the block runs."""
    db: Any = store.backend.database
    original = db.execute_sql
    seen: list[str] = []

    def execute_sql(sql: str, params: Any = None, *args: Any, **kwargs: Any) -> Any:
        seen.append(sql)
        return original(sql, params, *args, **kwargs)

    db.execute_sql = execute_sql
    try:
        yield seen
    finally:
        del db.execute_sql


@pytest.fixture
def use_cases(
    metadata_store: PeeweeMetadataStore, tmp_path: Path
) -> Iterator[tuple[Registry, Payloads]]:
    registry = Registry(metadata_store)
    payloads = Payloads(metadata_store, LocalBlobStore(tmp_path / "blobs"), registry)
    registry.create_model(
        CALLER, "m", {"labels": {"team": "risk", "tier": "1"}, "description": "a model"}
    )
    yield registry, payloads
    payloads.close()


def version_values() -> dict[str, Any]:
    return {
        "type": "ONNX",
        "author": "ci",
        "labels": {"team": "risk", "run": "42"},
        "metrics": {"accuracy": 0.93, "auc": 0.97, "f1": 0.9},
        "parameters": {"lr": 0.001},
    }


def test_create_model_version_budget(
    use_cases: tuple[Registry, Payloads], metadata_store: PeeweeMetadataStore
) -> None:
    registry, _ = use_cases
    with counted(metadata_store) as seen:
        registry.create_version(CALLER, "m", version_values(), request_id="req-1")
    assert len(seen) <= CREATE_VERSION_BUDGET, "\n".join(seen)
    assert not [sql for sql in seen if sql.startswith("DELETE")], "a new row has nothing to replace"


def test_small_upload_budget(
    use_cases: tuple[Registry, Payloads], metadata_store: PeeweeMetadataStore
) -> None:
    registry, payloads = use_cases
    version = registry.create_version(CALLER, "m", version_values())
    data = b"weights" * 100
    request = UploadRequest(
        target=names.FileRef(names.VersionRef("m", number=version.number), "payload"),
        upload_id="u1",
        write_offset=0,
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        content_type="",
    )
    with counted(metadata_store) as seen:
        record = payloads.upload(CALLER, request, iter([(0, data)]))
    assert record.size == len(data)
    after = registry.get_version(CALLER, names.VersionRef("m", number=version.number))
    assert (after.file_count, after.total_size) == (1, len(data))
    assert after.labels == version.labels and after.metrics == version.metrics
    assert len(seen) <= SMALL_UPLOAD_BUDGET, "\n".join(seen)
    rewrites = [sql for sql in seen if "version_labels" in sql or "version_metrics" in sql]
    assert not rewrites, "adding a file must not touch the version's labels or metrics"
    version_writes = [sql for sql in seen if sql.startswith('UPDATE "versions"')]
    assert len(version_writes) == 1 and '"labels"' not in version_writes[0]


def test_get_model_version_budget(
    use_cases: tuple[Registry, Payloads], metadata_store: PeeweeMetadataStore
) -> None:
    registry, payloads = use_cases
    values = version_values()
    values["metrics"]["precise"] = 0.1 + 0.2  # needs all 17 digits to round-trip
    values["labels"]["emoji"] = "\N{ROCKET} ünïcode"
    first = registry.create_version(CALLER, "m", values)
    second = registry.create_version(CALLER, "m", {})
    for version in (first, second):
        payloads.seal(CALLER, names.VersionRef("m", number=version.number), version.etag)
    for alias in ("prod", "canary"):
        registry.set_alias(CALLER, "m", alias, names.VersionRef("m", number=first.number))
    reads = {
        "number": (names.VersionRef("m", number=first.number), GET_VERSION_BUDGET),
        "latest": (names.parse_version_name("models/m/versions/latest"), GET_VERSION_BUDGET),
        "alias": (names.VersionRef("m", alias="prod"), GET_VERSION_BY_ALIAS_BUDGET),
    }
    for how, (ref, budget) in reads.items():
        registry.get_version(CALLER, ref)  # a connection PREPAREs the reads once (PostgreSQL)
        with counted(metadata_store) as seen:
            got = registry.get_version(CALLER, ref)
        assert len(seen) <= budget, f"{how}:\n" + "\n".join(seen)
        expected = second if how == "latest" else first
        assert got.number == expected.number
    got = registry.get_version(CALLER, names.VersionRef("m", number=first.number))
    assert got.labels == values["labels"]
    assert got.metrics == values["metrics"]
    assert got.metrics["precise"] == 0.1 + 0.2
    assert got.aliases == ["canary", "prod"]
    assert got.parameters == values["parameters"]
    bare = registry.get_version(CALLER, names.VersionRef("m", number=second.number))
    assert (bare.labels, bare.metrics, bare.aliases) == ({}, {}, [])


def test_update_model_version_budget(
    use_cases: tuple[Registry, Payloads], metadata_store: PeeweeMetadataStore
) -> None:
    registry, payloads = use_cases
    created = registry.create_version(CALLER, "m", version_values())
    ref = names.VersionRef("m", number=created.number)
    payloads.seal(CALLER, ref, created.etag)
    registry.get_version(CALLER, ref)  # a connection PREPAREs the reads once (PostgreSQL)
    patch = Patch(("labels.run",), {"labels": {"run": "43"}})
    with counted(metadata_store) as seen:
        updated = registry.update_version(CALLER, ref, "", patch)
    assert len(seen) <= UPDATE_VERSION_BUDGET, "\n".join(seen)
    writes = [sql for sql in seen if sql.startswith(("INSERT", "UPDATE", "DELETE"))]
    assert not [sql for sql in writes if "version_metrics" in sql], "metrics did not change"
    assert not [sql for sql in writes if sql.startswith("DELETE")], "no label was removed"
    reads = [sql for sql in seen if '"versions"' in sql and not sql.startswith("UPDATE")]
    assert len(reads) <= 2, "one locked read (and its row lock): the row is not read again"
    got = registry.get_version(CALLER, ref)
    assert got == updated
    assert got.labels == {"team": "risk", "run": "43"}
    assert got.metrics == version_values()["metrics"]


def test_update_model_budget(
    use_cases: tuple[Registry, Payloads], metadata_store: PeeweeMetadataStore
) -> None:
    registry, _ = use_cases
    registry.get_model(CALLER, "m")  # a connection PREPAREs the reads once (PostgreSQL)
    with counted(metadata_store) as seen:
        updated = registry.update_model(
            CALLER, "m", "", Patch(("description",), {"description": "after"})
        )
    assert len(seen) <= UPDATE_MODEL_BUDGET, "\n".join(seen)
    writes = [sql for sql in seen if sql.startswith(("INSERT", "UPDATE", "DELETE"))]
    assert not [sql for sql in writes if "model_labels" in sql], "labels did not change"
    with counted(metadata_store) as seen:
        got = registry.get_model(CALLER, "m")
    assert len(seen) <= GET_MODEL_BUDGET, "\n".join(seen)
    assert got == updated
    assert (got.description, got.labels) == ("after", {"team": "risk", "tier": "1"})


def test_set_alias_budget(
    use_cases: tuple[Registry, Payloads], metadata_store: PeeweeMetadataStore
) -> None:
    registry, payloads = use_cases
    versions = [registry.create_version(CALLER, "m", {}) for _ in range(2)]
    refs = [names.VersionRef("m", number=v.number) for v in versions]
    for ref, version in zip(refs, versions, strict=True):
        payloads.seal(CALLER, ref, version.etag)
    registry.set_alias(CALLER, "m", "prod", refs[0])
    with counted(metadata_store) as seen:
        registry.set_alias(CALLER, "m", "prod", refs[1])
    assert len(seen) <= SET_ALIAS_BUDGET, "\n".join(seen)
    assert registry.get_alias(CALLER, "m", "prod").version_number == versions[1].number
    assert registry.get_version(CALLER, refs[1]).aliases == ["prod"]
    assert registry.get_version(CALLER, refs[0]).aliases == []


def test_saves_after_a_locked_read_write_only_what_changed(
    metadata_store: PeeweeMetadataStore,
) -> None:
    registry = Registry(metadata_store)
    registry.create_model(CALLER, "m", {"labels": {"keep": "1", "drop": "2", "edit": "3"}})
    values = {"labels": {"keep": "1", "drop": "2"}, "metrics": {"zero": 0.0, "same": 1.0}}
    number = registry.create_version(CALLER, "m", values).number
    store = metadata_store
    with store.transaction():
        model = store.get_model(CALLER.tenant, "m", for_update=True)
        assert model is not None
        model.labels = {"keep": "1", "edit": "4", "new": "5"}
        store.save_model(model)
        model.labels["again"] = "6"  # a second save in the transaction: nothing held now
        store.save_model(model)
    got_model = store.get_model(CALLER.tenant, "m")
    assert got_model is not None
    assert got_model.labels == {"keep": "1", "edit": "4", "new": "5", "again": "6"}
    with store.transaction():
        version = store.get_version(CALLER.tenant, "m", number, for_update=True)
        assert version is not None
        version.labels = {"keep": "1", "added": "x"}
        version.metrics = {"zero": -0.0, "same": 1.0, "int": 2}  # -0.0 == 0.0, yet differs
        with counted(store) as seen:
            store.save_version(version)
    assert not [sql for sql in seen if sql.startswith("SELECT")], "the locked read is reused"
    metric_writes = [sql for sql in seen if sql.startswith("INSERT") and "version_metrics" in sql]
    # -0.0 and 2 (not 2.0) are written like any change, as one upsert; "same" is not.
    assert len(metric_writes) == 1 and metric_writes[0].count("), (") == 1, metric_writes  # 2 rows
    got = store.get_version(CALLER.tenant, "m", number)
    assert got is not None
    assert got.labels == {"keep": "1", "added": "x"}
    assert got.metrics == {"zero": 0.0, "same": 1.0, "int": 2.0}
    assert isinstance(got.metrics["int"], float)
    # Outside the transaction nothing is held: the next save reads the row again.
    got.labels = {}
    with counted(store) as seen:
        store.save_version(got)
    assert [sql for sql in seen if sql.startswith("SELECT")]
    again = store.get_version(CALLER.tenant, "m", number)
    assert again is not None and again.labels == {}


def test_concurrent_updates_of_one_version_lose_none(
    metadata_store: PeeweeMetadataStore,
) -> None:
    """Each update reads the version locked and writes it back: none may overwrite another's
    revision (or labels) with what it read before the other committed."""
    registry = Registry(metadata_store)
    registry.create_model(CALLER, "m", {})
    ref = names.VersionRef("m", number=registry.create_version(CALLER, "m", {}).number)
    threads = 8
    barrier = threading.Barrier(threads)
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            barrier.wait()
            for j in range(3):
                key = f"k{i}-{j}"
                registry.update_version(
                    CALLER, ref, "", Patch((f"labels.{key}",), {"labels": {key: "v"}})
                )
                registry.update_model(
                    CALLER, "m", "", Patch((f"labels.{key}",), {"labels": {key: "v"}})
                )
        except BaseException as exc:  # reported below
            errors.append(exc)

    workers = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert errors == []
    keys = {f"k{i}-{j}" for i in range(threads) for j in range(3)}
    version = registry.get_version(CALLER, ref)
    model = registry.get_model(CALLER, "m")
    assert set(version.labels) == keys and version.revision == 1 + len(keys)
    assert set(model.labels) == keys and model.revision == 1 + len(keys)


def test_list_model_versions_budget(
    use_cases: tuple[Registry, Payloads], metadata_store: PeeweeMetadataStore
) -> None:
    registry, payloads = use_cases
    created = [registry.create_version(CALLER, "m", version_values()) for _ in range(3)]
    created.append(registry.create_version(CALLER, "m", {}))
    for version in created[:2]:
        ref = names.VersionRef("m", number=version.number)
        payloads.seal(CALLER, ref, version.etag)
        registry.set_alias(CALLER, "m", f"a{version.number}", ref)
    registry.create_model(CALLER, "other", {})
    registry.create_version(CALLER, "other", version_values())
    registry.get_model(CALLER, "m")  # a connection PREPAREs the reads once (PostgreSQL)
    with counted(metadata_store) as seen:
        page, _ = registry.list_versions(CALLER, "m", page_size=20)
    assert len(seen) <= LIST_VERSIONS_BUDGET, "\n".join(seen)
    assert [v.number for v in page] == [v.number for v in created]
    for listed in page:
        alone = registry.get_version(CALLER, names.VersionRef("m", number=listed.number))
        assert listed == alone
    assert [v.aliases for v in page] == [[f"a{v.number}"] for v in created[:2]] + [[], []]
    assert page[3].labels == {} and page[3].metrics == {}


def test_event_holds_its_tenant_head_only_until_commit(
    use_cases: tuple[Registry, Payloads], metadata_store: PeeweeMetadataStore
) -> None:
    """Taking the tenant's head (every writer of the tenant queues behind it on PostgreSQL)
    holds it until commit: on PostgreSQL the statement that takes it also inserts the event
    and moves the head, and nothing follows it; on SQLite (one writer anyway) two follow."""
    registry, _ = use_cases
    with counted(metadata_store) as seen:
        registry.update_model(CALLER, "m", "", Patch(("description",), {"description": "x"}))
    bumps = [i for i, sql in enumerate(seen) if '"last_sequence" + 1' in sql]
    assert len(bumps) == 1, "\n".join(seen)
    held = seen[bumps[0] :]
    assert any('INSERT INTO "events"' in sql for sql in held), "\n".join(seen)
    assert any('"last_hash" = ' in sql for sql in held), "\n".join(seen)
    postgresql = metadata_store.backend.dialect == "postgresql"
    assert len(held) == (1 if postgresql else 3), "\n".join(held)
