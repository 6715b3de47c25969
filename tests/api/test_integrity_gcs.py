"""Integrity on read with the GCS blob store (gcp-storage-emulator): objects damaged in the
bucket are never served, VerifyFile reports them, GC removes objects no row accounts for."""

from __future__ import annotations

import dataclasses
import io
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelregistry.client import DataLossError, RegistryClient
from modelregistry.v1 import resources_pb2 as res
from modelregistry_server.app import RegistryServer
from modelregistry_server.config import Config
from tests.api.test_integrity_api import raw_download
from tests.support.blob_fixtures import GcsBackdoor, GcsEmulator
from tests.support.metadata_fixtures import sqlite_url
from tests.support.payload_helpers import PIECE, KiB, MiB, data_of, file_name, sha256_hex
from tests.support.servers import serving

pytestmark = pytest.mark.gcs

SIZE = 2 * MiB + 10 * KiB  # three blocks; the middle one gets damaged
DATA = data_of(SIZE, seed=21)
KEY = f"sha256/{sha256_hex(DATA)}"


@pytest.fixture
def prefix(gcs_emulator: GcsEmulator) -> Iterator[str]:
    name = f"integrity-{uuid.uuid4().hex}"
    yield name
    gcs_emulator.wipe(name + "/")


@pytest.fixture
def config(tmp_path: Path, gcs_emulator: GcsEmulator, prefix: str) -> Config:
    return Config(
        listen="127.0.0.1:0",
        database_url=sqlite_url(tmp_path),
        blob_url=f"gs://{gcs_emulator.bucket}/{prefix}",
        upload_piece_bytes=PIECE,
        download_chunk_bytes=64 * KiB,
        maintenance_interval_seconds=0,
        shutdown_grace_seconds=0,
        gc_grace_hours=0,
    )


@pytest.fixture
def server(config: Config) -> Iterator[RegistryServer]:
    with serving(config) as service:
        yield service


@pytest.fixture
def client(server: RegistryServer) -> Iterator[RegistryClient]:
    with RegistryClient(server.address, timeout=30, chunk_size=256 * KiB) as c:
        c.create_model("m")
        c.create_version("m")
        c.upload_file("m", 1, io.BytesIO(DATA))
        yield c


def test_a_corrupted_object_is_never_served(
    server: RegistryServer, client: RegistryClient, gcs_emulator: GcsEmulator, prefix: str
) -> None:
    backdoor = GcsBackdoor(gcs_emulator, prefix)
    assert client.verify_file("m", 1).integrity == res.INTEGRITY_STATE_VERIFIED
    backdoor.flip(KEY, MiB + 77)
    name = file_name("m", 1)
    assert raw_download(server.address, name) == (DATA[:MiB], "BLOB_CORRUPTED")
    assert raw_download(server.address, name, MiB + 1, 1) == (b"", "BLOB_CORRUPTED")
    assert raw_download(server.address, name, 2 * MiB, 0) == (DATA[2 * MiB :], "")
    assert raw_download(server.address, name, 3, MiB - 3) == (DATA[3:MiB], "")
    with pytest.raises(DataLossError) as caught:
        b"".join(client.iter_file("m", 1))
    assert caught.value.reason == "BLOB_CORRUPTED"
    assert client.get_file("m", 1).integrity == res.INTEGRITY_STATE_CORRUPTED

    backdoor.write(KEY, DATA[: MiB + 1])
    assert client.verify_file("m", 1).integrity == res.INTEGRITY_STATE_MISSING
    assert raw_download(server.address, name) == (DATA[:MiB], "BLOB_MISSING")
    backdoor.remove(KEY)
    assert raw_download(server.address, name, 0, 1) == (b"", "BLOB_MISSING")


def test_gc_removes_objects_no_row_accounts_for(
    server: RegistryServer, client: RegistryClient, gcs_emulator: GcsEmulator, prefix: str
) -> None:
    backdoor = GcsBackdoor(gcs_emulator, prefix)
    orphan = data_of(300, seed=22)
    backdoor.write(f"sha256/{sha256_hex(orphan)}", orphan)
    backdoor.write_upload("c" * 40, b"parts nobody owns")
    report = server.run_maintenance()
    assert (report.gc.orphan_blobs, report.gc.orphan_uploads, report.gc.blobs) == (1, 1, 1)
    assert backdoor.blob_keys() == {KEY}
    assert backdoor.upload_ids() == set()
    assert b"".join(client.iter_file("m", 1)) == DATA


def test_objects_younger_than_grace_are_kept(
    config: Config, gcs_emulator: GcsEmulator, prefix: str
) -> None:
    with serving(dataclasses.replace(config, gc_grace_hours=24)) as service:
        backdoor = GcsBackdoor(gcs_emulator, prefix)
        backdoor.write(f"sha256/{'d' * 64}", b"young orphan")
        backdoor.write_upload("e" * 40, b"young parts")
        report = service.run_maintenance()
        assert (report.gc.orphan_blobs, report.gc.orphan_uploads) == (0, 0)
        assert backdoor.blob_keys() == {f"sha256/{'d' * 64}"}
        assert backdoor.upload_ids() == {"e" * 40}


def test_uploading_the_same_content_again_replaces_a_bad_object(
    client: RegistryClient, gcs_emulator: GcsEmulator, prefix: str
) -> None:
    """Repair by re-upload on a bucket: the bad object is deleted and the verified upload is
    committed in its place (create-only), for every file sharing the content."""
    backdoor = GcsBackdoor(gcs_emulator, prefix)
    backdoor.flip(KEY, MiB + 5)
    assert client.verify_file("m", 1).integrity == res.INTEGRITY_STATE_CORRUPTED
    v2 = client.create_version("m").version_number
    client.upload_file("m", v2, io.BytesIO(DATA))
    assert backdoor.read(KEY) == DATA
    assert backdoor.upload_ids() == set()
    assert b"".join(client.iter_file("m", 1)) == DATA
    assert client.get_file("m", 1).integrity == res.INTEGRITY_STATE_UNVERIFIED

    backdoor.remove(KEY)  # a lost object is re-created the same way
    assert client.verify_file("m", 1).integrity == res.INTEGRITY_STATE_MISSING
    v3 = client.create_version("m").version_number
    client.upload_file("m", v3, io.BytesIO(DATA))
    assert backdoor.read(KEY) == DATA
    assert client.verify_file("m", v2).integrity == res.INTEGRITY_STATE_VERIFIED
