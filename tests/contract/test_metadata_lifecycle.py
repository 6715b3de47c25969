"""Contract of request fingerprints in the ``RequestLog`` port over SQLite and PostgreSQL, and
the upgrade from schema 1 (request ids recorded without a fingerprint)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from modelregistry_server.domain.entities import (
    Model,
    RequestRecord,
)
from modelregistry_server.domain.identity import Caller
from modelregistry_server.domain.registry import Registry
from modelregistry_server.storage.metadata import PeeweeMetadataStore, open_metadata_store
from modelregistry_server.storage.metadata.database import open_database
from modelregistry_server.storage.metadata.migrations import LATEST_VERSION, MIGRATIONS

T0 = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)


def test_requests_keep_their_fingerprint(metadata_store: PeeweeMetadataStore) -> None:
    record = RequestRecord("a", "r1", "CreateModel", "models/m", T0, "sha256:" + "1" * 64)
    metadata_store.record_request(record)
    assert metadata_store.find_request("a", "r1") == record
    legacy = RequestRecord("a", "r2", "CreateModel", "models/n", T0)
    metadata_store.record_request(legacy)
    found = metadata_store.find_request("a", "r2")
    assert found is not None and found.fingerprint == ""


def test_upgrade_from_schema_1_keeps_request_ids(metadata_url: str) -> None:
    """A database created by schema 1 migrates; its request ids (without fingerprints) still
    replay, whatever body the retry carries."""
    backend = open_database(metadata_url, max_connections=2)
    db = backend.database
    p = db.param
    try:
        with db.connection_context(), backend.write_transaction():
            db.execute_sql(
                "CREATE TABLE schema_version "
                "(version INTEGER NOT NULL PRIMARY KEY, description TEXT NOT NULL)"
            )
            for statement in MIGRATIONS[0].statements(backend.dialect):
                db.execute_sql(statement)
            db.execute_sql(f"INSERT INTO schema_version VALUES ({p}, {p})", (1, "v1"))
            micros = int(T0.timestamp() * 1_000_000)
            db.execute_sql(
                "INSERT INTO models (tenant, model_id, uid, display_name, description, type,"
                " author, create_time, update_time, revision, latest_version_number)"
                f" VALUES ({p}, {p}, {p}, '', '', '', '', {p}, {p}, 1, 0)",
                ("default", "old", "uid-old", micros, micros),
            )
            db.execute_sql(
                "INSERT INTO requests (tenant, request_id, method, resource_name, create_time)"
                f" VALUES ({p}, {p}, {p}, {p}, {p})",
                ("default", "old-rid", "CreateModel", "models/old", micros),
            )
    finally:
        backend.close()

    store = open_metadata_store(metadata_url)
    try:
        with store.connection():
            row = db_version(store)
        assert row == LATEST_VERSION
        found = store.find_request("default", "old-rid")
        assert found is not None and found.fingerprint == ""
        registry = Registry(store, clock=lambda: T0 + timedelta(seconds=1))
        again = registry.create_model(Caller(), "old", {}, "old-rid", "sha256:" + "2" * 64)
        assert isinstance(again, Model) and again.uid == "uid-old"
    finally:
        store.close()


def db_version(store: PeeweeMetadataStore) -> int:
    row = store.backend.database.execute_sql("SELECT MAX(version) FROM schema_version").fetchone()
    return int(row[0])
