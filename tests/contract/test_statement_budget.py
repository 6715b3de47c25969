"""SQL statement budgets of the hot write and read paths, on every metadata backend.

Every statement the store sends goes through the peewee database's ``execute_sql`` (BEGIN and
SAVEPOINT included; COMMIT goes through the driver and is not counted). The budgets are the
ones documented in docs/design.md ("Statement budgets"): a regression that rewrites rows it
does not change, or adds round trips, fails here.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from modelregistry_server.domain import names
from modelregistry_server.domain.identity import Caller
from modelregistry_server.domain.payloads import Payloads, UploadRequest
from modelregistry_server.domain.registry import Registry
from modelregistry_server.storage.blobs.local import LocalBlobStore
from modelregistry_server.storage.metadata import PeeweeMetadataStore

# Request-id lookup, counter UPDATE ... RETURNING, model row id, version INSERT, labels INSERT,
# metrics INSERT, request-id INSERT; the event: head UPDATE ... RETURNING, event INSERT, head
# hash UPDATE.
CREATE_VERSION_BUDGET = 10
# Open: version status, session, file id check, session INSERT; one piece: committed-size
# compare-and-set; publish: blob touch, then version status (locked), blob touch, version row
# id, file INSERT, counter UPDATE, session UPDATE; the event (3 statements, as above).
SMALL_UPLOAD_BUDGET = 15
# GetModelVersion by number or ``latest``: the version row, its labels, metrics and aliases in
# one statement (no BEGIN: one statement is one snapshot); by alias, the alias lookup first.
GET_VERSION_BUDGET = 1
GET_VERSION_BY_ALIAS_BUDGET = 2
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
