"""Backend text (hosts, ports, users, databases, buckets, paths, driver errors) stays in the
server log: the errors the client sees say only which backend failed."""

from __future__ import annotations

import logging
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from modelregistry_server.domain.errors import Unavailable
from modelregistry_server.storage.blobs.local import LocalBlobStore
from modelregistry_server.storage.metadata import PeeweeMetadataStore
from modelregistry_server.storage.metadata.database import open_database
from tests.support.blob_fixtures import free_port
from tests.support.postgres import PostgresCluster


def assert_clean(message: str, *secrets: str) -> None:
    for secret in secrets:
        assert secret not in message, f"{secret!r} leaked into {message!r}"


@pytest.mark.postgres
def test_database_errors_name_no_host_port_user_or_database(
    postgres_server: PostgresCluster, caplog: pytest.LogCaptureFixture
) -> None:
    real = urlsplit(postgres_server.create_database())
    url = f"postgresql://s3cr3t_user@{real.hostname}:{real.port}/s3cr3t_db"
    store = PeeweeMetadataStore(open_database(url, max_connections=2))
    try:
        with caplog.at_level(logging.WARNING), pytest.raises(Unavailable) as caught:
            store.get_model("default", "m")  # the role does not exist: the driver names it
    finally:
        store.close()
    assert_clean(caught.value.message, "s3cr3t", str(real.hostname), str(real.port))
    assert "s3cr3t_user" in caplog.text  # the operator still learns what failed


def test_local_blob_store_errors_name_no_path(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = tmp_path / "s3cr3t-volume"
    store = LocalBlobStore(root)
    (root / "uploads").rmdir()
    (root / "uploads").write_bytes(b"not a directory")
    with caplog.at_level(logging.WARNING), pytest.raises(Unavailable) as caught:
        store.write_upload("u1", 0, [b"data"])
    assert_clean(caught.value.message, "s3cr3t", str(tmp_path), "Errno")
    assert "s3cr3t-volume" in caplog.text


def test_gcs_blob_store_errors_name_no_bucket_or_endpoint(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    from modelregistry_server.storage.blobs.gcs import GcsBlobStore

    port = free_port()
    client = storage.Client(
        project="test",
        credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]  # unannotated
        client_options={"api_endpoint": f"http://127.0.0.1:{port}"},
    )
    store = GcsBlobStore(
        "s3cr3t-bucket", "s3cr3t-prefix", client=client, timeout=1, retry_deadline=1
    )
    for call in (
        lambda: store.read("sha256/" + "0" * 64),
        lambda: store.write_upload("u1", 0, [b"x"]),
        lambda: list(store.list_blobs()),
    ):
        with caplog.at_level(logging.WARNING), pytest.raises(Unavailable) as caught:
            call()
        assert_clean(caught.value.message, "s3cr3t", "127.0.0.1", str(port))
    assert "s3cr3t" in caplog.text
