"""A blob store that cannot be reached: calls fail UNAVAILABLE within the configured bound
(``blob_timeout_seconds``), a download already streaming fails just as promptly, metadata
calls keep working, and everything recovers without a restart.

GCS: a private emulator per test, frozen with SIGSTOP (a hung service: connections are
accepted, nothing answers) and then killed. The client deadline (``CLIENT_DEADLINE_S``) is
far below the client library's own defaults (60 s per request, 120 s of retries), so a server
that did not bound its blob calls would answer DEADLINE_EXCEEDED, not UNAVAILABLE.
"""

from __future__ import annotations

import io
import shutil
import signal
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from modelregistry.client import RegistryClient, RegistryError
from modelregistry.v1 import payload_pb2 as pl
from modelregistry.v1 import payload_pb2_grpc as pl_grpc
from modelregistry_server.app import RegistryServer, build_server
from modelregistry_server.config import Config
from tests.support.blob_fixtures import GcsEmulator, emulator_process
from tests.support.metadata_fixtures import sqlite_url

KiB = 1024
MiB = 1024 * KiB
BLOB_TIMEOUT_S = 2.0
CLIENT_DEADLINE_S = 40.0
PAYLOAD = bytes(range(256)) * (12 * 1024)  # 3 MiB: several ranged reads of 1 MiB
NAME = "models/m/versions/1/files/payload"


def _serve(config: Config) -> RegistryServer:
    server = build_server(config)
    server.start()
    return server


@pytest.fixture
def emulator(
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[tuple[GcsEmulator, subprocess.Popen[str]]]:
    with emulator_process() as (emu, process):
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", emu.endpoint)
        yield emu, process


def _config(tmp_path: Path, blob_url: str) -> Config:
    return Config(
        listen="127.0.0.1:0",
        database_url=sqlite_url(tmp_path),
        blob_url=blob_url,
        upload_piece_bytes=256 * KiB,
        download_chunk_bytes=64 * KiB,
        maintenance_interval_seconds=0,
        shutdown_grace_seconds=0,
        blob_timeout_seconds=BLOB_TIMEOUT_S,
    )


def _code(call: object) -> grpc.StatusCode:
    try:
        call()  # type: ignore[operator]
    except RegistryError as err:
        return err.code
    return grpc.StatusCode.OK


def _download_in_background(address: str) -> tuple[threading.Event, list[object]]:
    """Start a download, take its first message, then wait for ``go`` to read the rest.
    ``result`` gets the status code the stream ended with."""
    started, go = threading.Event(), threading.Event()
    result: list[object] = []

    def run() -> None:
        with grpc.insecure_channel(address) as channel:
            stream = pl_grpc.PayloadServiceStub(channel).DownloadFile(
                pl.DownloadFileRequest(name=NAME), timeout=CLIENT_DEADLINE_S
            )
            try:
                next(stream)
                started.set()
                go.wait(CLIENT_DEADLINE_S)
                for _ in stream:
                    pass
                result.append(grpc.StatusCode.OK)
            except grpc.RpcError as err:
                result.append(err.code())
            finally:
                started.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert started.wait(CLIENT_DEADLINE_S)
    result.append(thread)
    return go, result


@pytest.mark.gcs
def test_unreachable_gcs_fails_promptly_and_recovers(
    tmp_path: Path, emulator: tuple[GcsEmulator, subprocess.Popen[str]]
) -> None:
    emu, process = emulator
    server = _serve(_config(tmp_path, f"gs://{emu.bucket}/outage"))
    try:
        with RegistryClient(
            server.address, retries=0, timeout=CLIENT_DEADLINE_S, chunk_size=256 * KiB
        ) as client:
            client.create_model("m")
            client.create_version("m")
            client.upload_file("m", 1, io.BytesIO(PAYLOAD))

            go, result = _download_in_background(server.address)
            process.send_signal(signal.SIGSTOP)  # hung: accepts connections, never answers
            try:
                go.set()
                thread = result.pop()
                assert isinstance(thread, threading.Thread)
                # Metadata calls do not wait for the blob store.
                assert client.get_model("m").name == "models/m"
                assert client.get_file("m", 1).size_bytes == len(PAYLOAD)
                thread.join(CLIENT_DEADLINE_S + 5)
                assert result == [grpc.StatusCode.UNAVAILABLE]
                assert (
                    _code(lambda: client.upload_file("m", 1, io.BytesIO(b"x"), file_id="new"))
                    == grpc.StatusCode.UNAVAILABLE
                )
            finally:
                process.send_signal(signal.SIGCONT)

            assert b"".join(client.iter_file("m", 1)) == PAYLOAD  # recovered
            client.upload_file("m", 1, io.BytesIO(b"x"), file_id="new")

            go, result = _download_in_background(server.address)
            process.kill()  # gone: connections are refused
            process.wait()
            go.set()
            thread = result.pop()
            assert isinstance(thread, threading.Thread)
            thread.join(CLIENT_DEADLINE_S + 5)
            assert result == [grpc.StatusCode.UNAVAILABLE]
            assert client.get_version("m", 1).file_count == 2
    finally:
        server.stop(0)


def test_local_store_recreates_its_directories(tmp_path: Path) -> None:
    root = tmp_path / "blobs"
    server = _serve(_config(tmp_path, root.as_uri()))
    try:
        with RegistryClient(server.address, retries=0, timeout=CLIENT_DEADLINE_S) as client:
            client.create_model("m")
            client.create_version("m")
            client.upload_file("m", 1, io.BytesIO(b"first"), file_id="a")
            shutil.rmtree(root)  # the whole store vanished under the running server
            client.upload_file("m", 1, io.BytesIO(b"second" * 100_000), file_id="b")
            assert b"".join(client.iter_file("m", 1, file_id="b")) == b"second" * 100_000
            with pytest.raises(RegistryError) as caught:
                b"".join(client.iter_file("m", 1, file_id="a"))
            assert (caught.value.code, caught.value.reason) == (
                grpc.StatusCode.DATA_LOSS,
                "BLOB_MISSING",
            )
    finally:
        server.stop(0)
