"""Blob store fixtures: one GCS emulator per session and a fresh store (or URL) per test.

``blob_store`` and ``blob_url`` are parametrized over the adapters (ids ``local`` and ``gcs``);
the ``gcs`` parameter is marked ``gcs`` and starts the emulator on first use.
"""

from __future__ import annotations

import collections
import contextlib
import http.client
import signal
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TypeAlias

import pytest

if TYPE_CHECKING:
    from modelregistry_server.storage.blobs.gcs import GcsBlobStore
    from modelregistry_server.storage.blobs.local import LocalBlobStore

# The adapters under test: the blob ports plus test-only helpers such as ``exists``.
BlobAdapter: TypeAlias = "LocalBlobStore | GcsBlobStore"

# Read and upload chunk size of the stores under test: small, so a few MiB span many chunks.
TEST_CHUNK_SIZE = 256 * 1024
EMULATOR_BUCKET = "modelregistry-test"
_READY_LINE = "All services started"
_START_TIMEOUT = 30.0

ADAPTERS = [
    pytest.param("local", id="local"),
    pytest.param("gcs", id="gcs", marks=pytest.mark.gcs),
]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (at the time of the call)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True)
class GcsEmulator:
    """A running ``gcp-storage-emulator`` with one bucket."""

    endpoint: str
    bucket: str

    def client(self) -> Any:
        """An anonymous client talking to the emulator."""
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        return storage.Client(
            project="test",
            credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]  # unannotated
            client_options={"api_endpoint": self.endpoint},
        )

    def wipe(self, prefix: str) -> None:
        """Delete every object under ``prefix`` (keeps the in-memory emulator small)."""
        client = self.client()
        for blob in client.list_blobs(self.bucket, prefix=prefix):
            blob.delete()


class _OutputWatcher(threading.Thread):
    """Drains the emulator's output (it logs every request), noting when it is ready."""

    def __init__(self, stream: IO[str]) -> None:
        super().__init__(name="gcs-emulator-output", daemon=True)
        self._stream = stream
        self.ready = threading.Event()
        self.finished = threading.Event()
        self.tail: collections.deque[str] = collections.deque(maxlen=40)

    def run(self) -> None:
        for line in self._stream:
            self.tail.append(line.rstrip())
            if _READY_LINE in line:
                self.ready.set()
        self.finished.set()
        self.ready.set()  # wake the waiter: the process ended


@contextlib.contextmanager
def emulator_process() -> Iterator[tuple[GcsEmulator, subprocess.Popen[str]]]:
    """Start an emulator (in memory, one bucket); stopped on exit. Yields it and its process
    (fault tests stop or kill it)."""
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "gcp_storage_emulator",
        "start",
        "--host=127.0.0.1",
        f"--port={port}",
        "--in-memory",
        f"--default-bucket={EMULATOR_BUCKET}",
    ]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
    )
    assert process.stdout is not None
    watcher = _OutputWatcher(process.stdout)
    watcher.start()
    try:
        endpoint = f"http://127.0.0.1:{port}"
        if not watcher.ready.wait(_START_TIMEOUT) or watcher.finished.is_set():
            output = "\n".join(watcher.tail)
            raise RuntimeError(f"gcs emulator did not start ({command}):\n{output}")
        health = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        try:
            health.request("GET", "/")
            assert health.getresponse().read() == b"OK", "not the storage emulator"
        finally:
            health.close()
        yield GcsEmulator(endpoint, EMULATOR_BUCKET), process
    finally:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGCONT)  # in case a test left it stopped
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        watcher.join(timeout=10)


@pytest.fixture(scope="session")
def gcs_emulator() -> Iterator[GcsEmulator]:
    """One emulator for the session, with ``STORAGE_EMULATOR_HOST`` pointing at it."""
    with emulator_process() as (emulator, _), pytest.MonkeyPatch.context() as patch:
        patch.setenv("STORAGE_EMULATOR_HOST", emulator.endpoint)
        yield emulator


def _unique_prefix() -> str:
    return f"test-{uuid.uuid4().hex}"


@pytest.fixture(params=ADAPTERS)
def blob_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BlobAdapter]:
    """A fresh, empty store: a temporary directory, or a unique prefix in the emulator."""
    if request.param == "local":
        from modelregistry_server.storage.blobs.local import LocalBlobStore

        yield LocalBlobStore(tmp_path / "blobs", read_chunk_size=TEST_CHUNK_SIZE)
        return
    from modelregistry_server.storage.blobs.gcs import GcsBlobStore

    emulator: GcsEmulator = request.getfixturevalue("gcs_emulator")
    prefix = _unique_prefix()
    yield GcsBlobStore(
        emulator.bucket,
        prefix,
        read_chunk_size=TEST_CHUNK_SIZE,
        upload_chunk_size=TEST_CHUNK_SIZE,
        timeout=30,
        retry_deadline=30,
    )
    emulator.wipe(prefix + "/")


@pytest.fixture(params=ADAPTERS)
def blob_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL for ``open_blob_store`` naming a fresh, empty store of each adapter."""
    if request.param == "local":
        yield (tmp_path / "blobs").as_uri()
        return
    emulator: GcsEmulator = request.getfixturevalue("gcs_emulator")
    prefix = _unique_prefix()
    yield f"gs://{emulator.bucket}/{prefix}"
    emulator.wipe(prefix + "/")


class BlobBackdoor:
    """What a blob store holds, reached around the store: to damage it the way a disk or a
    bucket could, or to leave objects that no row accounts for."""

    def read(self, key: str) -> bytes:
        """The stored bytes of blob ``key``."""
        raise NotImplementedError

    def write(self, key: str, data: bytes) -> None:
        """Replace (or create) blob ``key`` with ``data``."""
        raise NotImplementedError

    def remove(self, key: str) -> None:
        """Delete blob ``key``."""
        raise NotImplementedError

    def write_upload(self, upload_id: str, data: bytes) -> None:
        """Leave ``data`` as the stored bytes of upload ``upload_id``."""
        raise NotImplementedError

    def blob_keys(self) -> set[str]:
        """Keys of the stored blobs."""
        raise NotImplementedError

    def upload_ids(self) -> set[str]:
        """Ids of the uploads with stored bytes."""
        raise NotImplementedError

    def flip(self, key: str, offset: int) -> None:
        """Invert one bit of byte ``offset`` of blob ``key``."""
        data = bytearray(self.read(key))
        data[offset] ^= 0x10
        self.write(key, bytes(data))


class LocalBackdoor(BlobBackdoor):
    """The files of a ``LocalBlobStore`` at ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, key: str) -> Path:
        digest = key.removeprefix("sha256/")
        return self.root / "sha256" / digest[:2] / digest

    def read(self, key: str) -> bytes:
        return self.path(key).read_bytes()

    def write(self, key: str, data: bytes) -> None:
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "r+b" if path.exists() else "wb") as out:  # in place, like a bad disk
            out.write(data)
            out.truncate()

    def remove(self, key: str) -> None:
        self.path(key).unlink()

    def write_upload(self, upload_id: str, data: bytes) -> None:
        (self.root / "uploads" / upload_id).write_bytes(data)

    def blob_keys(self) -> set[str]:
        return {f"sha256/{p.name}" for p in (self.root / "sha256").rglob("*") if p.is_file()}

    def upload_ids(self) -> set[str]:
        return {p.name for p in (self.root / "uploads").iterdir() if p.is_file()}


class GcsBackdoor(BlobBackdoor):
    """The objects of a ``GcsBlobStore`` under ``prefix`` in the emulator."""

    def __init__(self, emulator: GcsEmulator, prefix: str) -> None:
        self._client = emulator.client()
        self._bucket = self._client.bucket(emulator.bucket)
        self._prefix = prefix

    def _blob(self, key: str) -> Any:
        return self._bucket.blob(f"{self._prefix}/blobs/{key}")

    def read(self, key: str) -> bytes:
        data: bytes = self._blob(key).download_as_bytes()
        return data

    def write(self, key: str, data: bytes) -> None:
        self._blob(key).upload_from_string(data)

    def remove(self, key: str) -> None:
        self._blob(key).delete()

    def write_upload(self, upload_id: str, data: bytes) -> None:
        self._bucket.blob(f"{self._prefix}/uploads/{upload_id}/{0:020d}").upload_from_string(data)

    def _names(self, kind: str) -> list[str]:
        start = f"{self._prefix}/{kind}/"
        return [b.name[len(start) :] for b in self._client.list_blobs(self._bucket, prefix=start)]

    def blob_keys(self) -> set[str]:
        return set(self._names("blobs"))

    def upload_ids(self) -> set[str]:
        return {name.partition("/")[0] for name in self._names("uploads")}


def backdoor_for(url: str, request: pytest.FixtureRequest) -> BlobBackdoor:
    """A backdoor into the store at ``url`` (``file://dir`` or ``gs://bucket/prefix``)."""
    scheme, _, location = url.partition("://")
    if scheme == "file":
        return LocalBackdoor(Path(location))
    emulator: GcsEmulator = request.getfixturevalue("gcs_emulator")
    return GcsBackdoor(emulator, location.partition("/")[2])


@pytest.fixture(params=ADAPTERS)
def store_and_backdoor(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[BlobAdapter, BlobBackdoor]]:
    """A fresh store of each adapter and a backdoor into it (small read chunks)."""
    if request.param == "local":
        from modelregistry_server.storage.blobs.local import LocalBlobStore

        root = tmp_path / "blobs"
        yield LocalBlobStore(root, read_chunk_size=TEST_CHUNK_SIZE), LocalBackdoor(root)
        return
    from modelregistry_server.storage.blobs.gcs import GcsBlobStore

    emulator: GcsEmulator = request.getfixturevalue("gcs_emulator")
    prefix = _unique_prefix()
    store = GcsBlobStore(
        emulator.bucket,
        prefix,
        read_chunk_size=TEST_CHUNK_SIZE,
        upload_chunk_size=TEST_CHUNK_SIZE,
        timeout=30,
        retry_deadline=30,
    )
    yield store, GcsBackdoor(emulator, prefix)
    emulator.wipe(prefix + "/")
