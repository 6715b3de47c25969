"""Contract of the metadata store's blob rows for integrity and GC reconciliation: block sums,
verification state (also seen on files), scrub order, adoption of stored blobs without a row,
and the ACTIVE upload listing. Runs on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

from modelregistry_server.domain.entities import BlockSums, FileRecord, IntegrityState, UploadState
from modelregistry_server.domain.filter_parser import parse_filter
from modelregistry_server.domain.listing import FILE_SCHEMA
from modelregistry_server.domain.ports import ListQuery
from modelregistry_server.storage.metadata import PeeweeMetadataStore, open_metadata_store
from modelregistry_server.storage.metadata.database import open_database
from modelregistry_server.storage.metadata.migrations import MIGRATIONS, migrate, schema_version
from tests.contract.test_metadata_store import (
    T0,
    add_version,
    at,
    collect,
    make_file,
    make_model,
    make_upload,
)

A, B, C = "a" * 64, "b" * 64, "c" * 64
SUMS = BlockSums(4, bytes(range(12)))
OTHER_SUMS = BlockSums(4, b"\xff" * 12)


def test_block_sums_are_kept_with_the_blob_row(metadata_store: PeeweeMetadataStore) -> None:
    store = metadata_store
    assert store.get_blob(A) is None
    store.touch_blob(A, 10, at(0), SUMS)
    blob = store.get_blob(A)
    assert blob is not None
    assert (blob.digest, blob.size, blob.sums) == (A, 10, SUMS)
    assert (blob.integrity, blob.verify_time) == (IntegrityState.UNVERIFIED, None)

    store.touch_blob(A, 10, at(5), OTHER_SUMS)  # a row's sums are never replaced
    store.touch_blob(A, 10, at(6))
    assert store.get_blob(A) == blob
    assert store.collectable_blobs(at(5.5), 10) == []  # the touches still count


def test_sums_are_added_to_a_row_without_them(metadata_store: PeeweeMetadataStore) -> None:
    store = metadata_store
    store.touch_blob(A, 10, at(0))
    assert store.get_blob(A).sums is None  # type: ignore[union-attr]
    store.touch_blob(A, 10, at(1), SUMS)  # a publish of the same content brings them
    assert store.get_blob(A).sums == SUMS  # type: ignore[union-attr]

    store.touch_blob(B, 10, at(0))
    assert store.set_block_sums(B, SUMS) is True
    assert store.set_block_sums(B, OTHER_SUMS) is False  # only where there are none
    assert store.get_blob(B).sums == SUMS  # type: ignore[union-attr]
    assert store.set_block_sums(C, SUMS) is False  # no row


def test_verification_state_is_recorded_and_shown_on_files(
    metadata_store: PeeweeMetadataStore,
) -> None:
    store = metadata_store
    store.insert_model(make_model("m"))
    add_version(store, "m")
    add_version(store, "m")
    store.touch_blob(A, 10, at(0), SUMS)
    store.add_file(make_file("x", sha=A))
    store.add_file(make_file("y", number=2, sha=A))  # the same content twice
    store.add_file(make_file("z", sha=B))  # no blob row at all

    assert store.record_verification(A, IntegrityState.CORRUPTED, at(7)) is True
    assert store.record_verification(C, IntegrityState.CORRUPTED, at(7)) is False
    assert store.touch_blob(A, 10, at(8)) is IntegrityState.CORRUPTED  # a publish sees it
    assert store.touch_blob(C, 10, at(8)) is IntegrityState.UNVERIFIED  # a new row
    blob = store.get_blob(A)
    assert blob is not None
    assert (blob.integrity, blob.verify_time, blob.sums) == (
        IntegrityState.CORRUPTED, at(7), SUMS,
    )  # fmt: skip
    for number, file_id in ((1, "x"), (2, "y")):
        got = store.get_file("a", "m", number, file_id)
        assert got is not None
        assert (got.integrity, got.verify_time) == (IntegrityState.CORRUPTED, at(7))
    listed = {f.file_id: f for f in store.list_files("a", "m", 1, None, 10).items}
    assert listed["x"].integrity is IntegrityState.CORRUPTED
    assert (listed["z"].integrity, listed["z"].verify_time) == (IntegrityState.UNVERIFIED, None)

    store.record_verification(A, IntegrityState.UNVERIFIED, None)  # replaced by a new upload
    got = store.get_file("a", "m", 2, "y")
    assert got is not None and (got.integrity, got.verify_time) == (IntegrityState.UNVERIFIED, None)


def test_files_with_blob_span_tenants(metadata_store: PeeweeMetadataStore) -> None:
    store = metadata_store
    for tenant in ("b", "a"):
        store.insert_model(make_model("m", tenant=tenant))
        add_version(store, "m", tenant=tenant)
        add_version(store, "m", tenant=tenant)
    store.add_file(make_file("2", number=2, tenant="a", sha=A))
    store.add_file(make_file("1", number=1, tenant="a", sha=A))
    store.add_file(make_file("1", number=1, tenant="b", sha=A))
    store.add_file(make_file("other", sha=B))
    found = store.files_with_blob(A, 10)
    assert [(f.tenant, f.model_id, f.version_number, f.file_id) for f in found] == [
        ("a", "m", 1, "1"), ("a", "m", 2, "2"), ("b", "m", 1, "1"),
    ]  # fmt: skip
    assert len(store.files_with_blob(A, 2)) == 2
    assert store.files_with_blob(C, 10) == []


def test_blobs_to_verify_least_recently_verified_first(
    metadata_store: PeeweeMetadataStore,
) -> None:
    store = metadata_store
    store.insert_model(make_model("m"))
    add_version(store, "m")
    d = [f"{i}" * 64 for i in range(1, 6)]
    for digest in d:
        store.touch_blob(digest, 10, at(0), SUMS)
    for digest in d[:4]:
        store.add_file(make_file(f"f{digest[0]}", sha=digest))  # d[4] is unreferenced
    store.record_verification(d[0], IntegrityState.VERIFIED, at(30))
    store.record_verification(d[1], IntegrityState.CORRUPTED, at(10))

    order = [b.digest for b in store.blobs_to_verify(at(100), 10)]
    assert order == [min(d[2], d[3]), max(d[2], d[3]), d[1], d[0]]  # never verified first
    assert [b.digest for b in store.blobs_to_verify(at(20), 10)] == [
        min(d[2], d[3]), max(d[2], d[3]), d[1],
    ]  # fmt: skip
    assert len(store.blobs_to_verify(at(100), 1)) == 1
    assert store.blobs_to_verify(at(100), 10)[-1].sums == SUMS


def test_stored_blobs_without_a_row_are_adopted(metadata_store: PeeweeMetadataStore) -> None:
    store = metadata_store
    store.touch_blob(A, 10, at(50))
    assert store.known_blobs([A, B, C]) == {A}
    assert store.known_blobs([]) == set()
    assert store.known_blobs([f"{i:064x}" for i in range(1200)] + [A]) == {A}  # chunked IN

    assert store.adopt_blob(A, 10, at(0)) is False  # a row exists: left as it is
    assert store.adopt_blob(B, 20, at(0)) is True
    assert store.adopt_blob(B, 20, at(0)) is False
    blob = store.get_blob(B)
    assert blob is not None and (blob.size, blob.sums, blob.integrity) == (
        20, None, IntegrityState.UNVERIFIED,
    )  # fmt: skip
    # Judged by GC like any other row: unreferenced and touched at the object's time.
    assert store.collectable_blobs(at(10), 10) == [B]
    assert store.forget_blob(B, at(10)) is True


def test_active_uploads_are_listed_in_pages(metadata_store: PeeweeMetadataStore) -> None:
    store = metadata_store
    keys = [("b", "u1"), ("a", "u2"), ("a", "u1"), ("a", "U0"), ("c", "x")]
    for tenant, upload_id in keys:
        store.insert_upload(make_upload(upload_id, tenant=tenant))
    done = make_upload("x", tenant="c")
    with store.transaction():
        done.state = UploadState.COMMITTED
        store.save_upload(done)

    listed: list[tuple[str, str]] = []
    after: tuple[str, str] | None = None
    for _ in range(10):
        page = store.active_uploads(after, 2)
        listed.extend(page)
        if len(page) < 2:
            break
        after = page[-1]
    assert listed == [("a", "U0"), ("a", "u1"), ("a", "u2"), ("b", "u1")]


# The schema step that added block sums, and the one before it.
BLOCK_SUMS_STEP = next(m.version for m in MIGRATIONS if "block checksums" in m.description)


def test_blob_rows_of_an_older_schema_read_as_without_sums(metadata_url: str) -> None:
    """A database from before block sums migrates; its blobs read as blobs without sums,
    UNVERIFIED, and take sums later."""
    backend = open_database(metadata_url, max_connections=1)
    try:
        assert migrate(backend, target=BLOCK_SUMS_STEP - 1) == BLOCK_SUMS_STEP - 1
        db = backend.database
        with db.connection_context(), backend.write_transaction():
            db.execute_sql(
                f"INSERT INTO blobs (digest, size, touch_time) VALUES ({db.param}, 10, 0)", (A,)
            )
    finally:
        backend.close()

    store = open_metadata_store(metadata_url)
    try:
        assert schema_version(store.backend) == MIGRATIONS[-1].version
        blob = store.get_blob(A)
        assert blob is not None
        assert (blob.size, blob.sums, blob.integrity, blob.verify_time) == (
            10, None, IntegrityState.UNVERIFIED, None,
        )  # fmt: skip
        assert store.set_block_sums(A, SUMS) is True
        assert store.get_blob(A).sums == SUMS  # type: ignore[union-attr]
        assert store.collectable_blobs(T0, 10) == [A]
    finally:
        store.close()


def test_files_are_found_by_integrity_across_versions_and_models(
    metadata_store: PeeweeMetadataStore,
) -> None:
    """``find_files``: one version, a model's live versions or every live version, filtered
    (a file whose blob has no row is UNVERIFIED), paged by (model, version, file id)."""
    store = metadata_store
    for model_id in ("m", "n", "gone"):
        store.insert_model(make_model(model_id))
    for model_id in ("m", "m", "m", "n", "gone"):
        add_version(store, model_id)
    add_version(store, "m", delete_time=T0)  # m/4: soft-deleted
    store.insert_model(make_model("m", tenant="b"))
    add_version(store, "m", tenant="b")
    for digest, state in ((A, "CORRUPTED"), (B, "VERIFIED"), (C, "MISSING")):
        store.touch_blob(digest, 10, at(0))
        store.record_verification(digest, IntegrityState(state), at(1))
    d = "d" * 64  # no blob row
    placed = [
        ("a", "m", 1, "x", A, 10), ("a", "m", 1, "y", B, 10), ("a", "m", 2, "x", C, 10),
        ("a", "m", 2, "z", d, 10), ("a", "m", 3, "w", B, 30), ("a", "m", 4, "x", A, 10),
        ("a", "n", 1, "q", A, 20), ("a", "gone", 1, "x", A, 10), ("b", "m", 1, "x", A, 10),
    ]  # fmt: skip
    for tenant, model_id, number, file_id, digest, size in placed:
        store.add_file(
            FileRecord(tenant, model_id, number, file_id, size, digest, 0, "text/plain", T0)
        )
    with store.transaction():
        gone = store.get_model("a", "gone", for_update=True)
        assert gone is not None
        gone.delete_time = T0
        store.save_model(gone)

    def found(model_id: str | None, number: int | None, text: str = "") -> list[Any]:
        query = ListQuery(parse_filter(text, FILE_SCHEMA), page_size=1)
        files = collect(lambda q: store.find_files("a", model_id, number, q), query)
        return [(f.model_id, f.version_number, f.file_id) for f in files]

    assert found(None, None, "integrity = CORRUPTED") == [("m", 1, "x"), ("n", 1, "q")]
    assert found(None, None, "integrity = CORRUPTED OR integrity = MISSING") == [
        ("m", 1, "x"), ("m", 2, "x"), ("n", 1, "q"),
    ]  # fmt: skip
    assert found("m", None, "integrity = UNVERIFIED") == [("m", 2, "z")]
    assert found("m", None, "integrity != CORRUPTED") == [
        ("m", 1, "y"), ("m", 2, "x"), ("m", 2, "z"), ("m", 3, "w"),
    ]  # fmt: skip
    assert found("m", None, "NOT integrity = VERIFIED") == [
        ("m", 1, "x"),
        ("m", 2, "x"),
        ("m", 2, "z"),
    ]
    assert found(None, None, "size_bytes > 15") == [("m", 3, "w"), ("n", 1, "q")]
    assert found("m", None, f'sha256 = "{B}" AND file_id = "y"') == [("m", 1, "y")]
    assert found("m", 2) == [("m", 2, "x"), ("m", 2, "z")]
    assert found("m", 4) == [("m", 4, "x")]  # a named version is listed even if deleted
    with_state = store.find_files("a", "m", 2, ListQuery(page_size=10)).items
    assert [f.integrity for f in with_state] == [IntegrityState.MISSING, IntegrityState.UNVERIFIED]


def test_blobs_are_indexed_by_integrity_state(metadata_store: PeeweeMetadataStore) -> None:
    database = metadata_store.backend.database
    if metadata_store.backend.dialect == "postgresql":
        sql = "SELECT indexname FROM pg_indexes WHERE tablename = 'blobs'"
    else:
        sql = "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'blobs'"
    with metadata_store.connection():
        names = {row[0] for row in database.execute_sql(sql).fetchall()}
    assert "blobs_verify_state" in names
