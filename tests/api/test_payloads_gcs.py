"""PayloadService on the GCS blob store (gcp-storage-emulator): multi-piece uploads composed
into blobs, ranged downloads, dedup, sealing, and a cancelled upload resumed from its parts."""

from __future__ import annotations

import hashlib
import io
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from modelregistry.client import RegistryClient
from modelregistry.v1 import resources_pb2 as res
from modelregistry_server.app import RegistryServer
from modelregistry_server.config import Config
from tests.support.blob_fixtures import GcsEmulator
from tests.support.metadata_fixtures import sqlite_url
from tests.support.payload_helpers import (
    PIECE,
    WAIT_S,
    KiB,
    PausingRequests,
    assert_nothing_visible,
    chunks_of,
    crc32c_of,
    data_of,
    file_name,
    header,
    raw_stub,
    resume_upload,
    sha256_hex,
    upload_error,
    wait_committed,
)
from tests.support.servers import serving

pytestmark = pytest.mark.gcs


@pytest.fixture
def prefix(gcs_emulator: GcsEmulator) -> Iterator[str]:
    name = f"payloads-{uuid.uuid4().hex}"
    yield name
    gcs_emulator.wipe(name + "/")


@pytest.fixture
def server(tmp_path: Path, gcs_emulator: GcsEmulator, prefix: str) -> Iterator[RegistryServer]:
    """An in-process server on SQLite and a ``gs://`` blob store in the emulator."""
    config = Config(
        listen="127.0.0.1:0",
        database_url=sqlite_url(tmp_path),
        blob_url=f"gs://{gcs_emulator.bucket}/{prefix}",
        upload_piece_bytes=PIECE,
        download_chunk_bytes=64 * KiB,
        maintenance_interval_seconds=0,
        shutdown_grace_seconds=0,
    )
    with serving(config) as service:
        yield service


def objects(emulator: GcsEmulator, prefix: str, kind: str) -> list[str]:
    """Object names under ``<prefix>/<kind>/`` (``blobs`` or ``uploads``)."""
    client = emulator.client()
    return sorted(b.name for b in client.list_blobs(emulator.bucket, prefix=f"{prefix}/{kind}/"))


def download(client: RegistryClient, version: int | str, file_id: str = "payload") -> bytes:
    out = io.BytesIO()
    client.download_file("m", version, out, file_id=file_id)
    return out.getvalue()


def test_round_trip_dedup_and_seal(
    server: RegistryServer, client: RegistryClient, gcs_emulator: GcsEmulator, prefix: str
) -> None:
    client.create_model("m")
    v1 = client.create_version("m").version_number
    files = {
        "empty": b"",
        "one": b"x",
        "under-a-piece": data_of(PIECE - 1, 1),
        "tokenizer/vocab.json": b'{"a": 1}',
        "weights.bin": data_of(3 * PIECE + 4321, 2),  # four part objects composed into one
    }
    for file_id, data in files.items():
        uploaded = client.upload_file("m", v1, io.BytesIO(data), file_id=file_id)
        assert (uploaded.size_bytes, uploaded.sha256) == (len(data), sha256_hex(data))
        assert uploaded.crc32c == crc32c_of(data)
    for file_id, data in files.items():
        assert download(client, v1, file_id) == data
    weights = files["weights.bin"]
    ranged = b"".join(client.iter_file("m", v1, file_id="weights.bin", offset=PIECE - 3, limit=9))
    assert ranged == weights[PIECE - 3 : PIECE + 6]
    tail = b"".join(client.iter_file("m", v1, file_id="weights.bin", offset=len(weights)))
    assert tail == b""

    # The same bytes in another version are not stored again.
    v2 = client.create_version("m").version_number
    client.upload_file("m", v2, io.BytesIO(weights), file_id="copy")
    assert download(client, v2, "copy") == weights
    digests = {sha256_hex(d) for d in files.values()}
    assert objects(gcs_emulator, prefix, "blobs") == sorted(
        f"{prefix}/blobs/sha256/{d}" for d in digests
    )
    assert objects(gcs_emulator, prefix, "uploads") == []

    sealed = client.seal_version("m", v1)
    lines = "".join(f"{f}\t{len(d)}\t{sha256_hex(d)}\n" for f, d in sorted(files.items()))
    assert sealed.manifest_digest == "sha256:" + hashlib.sha256(lines.encode()).hexdigest()
    client.set_alias("m", "production", v1)
    assert download(client, "production", "weights.bin") == weights


def test_cancelled_upload_resumes_from_its_parts(
    server: RegistryServer, client: RegistryClient, gcs_emulator: GcsEmulator, prefix: str
) -> None:
    client.create_model("m")
    n = client.create_version("m").version_number
    name = file_name("m", n)
    data = data_of(4 * PIECE + 77, seed=3)
    head = header(name, "gcs-drop", size=len(data), sha256=sha256_hex(data))
    requests = PausingRequests(head, data, pause_at=2 * PIECE + 5 * KiB)
    with raw_stub(server.address) as stub:
        future = stub.UploadFile.future(iter(requests), timeout=WAIT_S)
        assert requests.paused.wait(WAIT_S)
        wait_committed(client, "gcs-drop", 2 * PIECE)
        future.cancel()
        requests.release()
        assert_nothing_visible(client, "m", n)
        assert objects(gcs_emulator, prefix, "uploads")  # the committed parts are kept
        resumed_at, file = resume_upload(stub, client, name, "gcs-drop", data)
        assert resumed_at == 2 * PIECE
        assert file.sha256 == sha256_hex(data)

        # A digest mismatch discards every part of the upload.
        wrong = header(name + "2", "gcs-bad", size=len(data), sha256="0" * 64)
        err = upload_error(stub, [wrong, *chunks_of(data, 64 * KiB)])
        assert (err.code, err.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "DIGEST_MISMATCH")
    assert download(client, n) == data
    assert objects(gcs_emulator, prefix, "uploads") == []
    assert objects(gcs_emulator, prefix, "blobs") == [f"{prefix}/blobs/sha256/{sha256_hex(data)}"]


def test_seal_with_cancel_uploads_removes_their_parts_at_once(
    server: RegistryServer, client: RegistryClient, gcs_emulator: GcsEmulator, prefix: str
) -> None:
    client.create_model("m")
    n = client.create_version("m").version_number
    data = data_of(3 * PIECE, seed=4)
    with raw_stub(server.address) as stub:
        client.upload_file("m", n, io.BytesIO(b"kept"), file_id="kept")
        head = header(file_name("m", n), "gcs-half", size=len(data), sha256=sha256_hex(data))
        err = upload_error(stub, [head, *chunks_of(data[: 2 * PIECE], 64 * KiB)])
        assert err.reason == "SIZE_MISMATCH"
    assert objects(gcs_emulator, prefix, "uploads")  # its two committed parts
    sealed = client.seal_version("m", n, cancel_uploads=True)
    assert (sealed.state, sealed.file_count) == (res.VERSION_STATE_READY, 1)
    assert objects(gcs_emulator, prefix, "uploads") == []
    assert objects(gcs_emulator, prefix, "blobs") == [
        f"{prefix}/blobs/sha256/{sha256_hex(b'kept')}"
    ]
