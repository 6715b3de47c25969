"""A server whose database is down at start-up listens with health NOT_SERVING, answers
UNAVAILABLE, keeps trying, and serves once the database is back (no restart, no traceback)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from modelregistry.client import RegistryClient, RegistryError
from tests.support.postgres import running_cluster
from tests.support.server_process import ServerProcess

WAIT_S = 60.0


def _health(address: str) -> int:
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        status: int = stub.Check(health_pb2.HealthCheckRequest(), timeout=10).status
        return status


@pytest.mark.postgres
def test_waits_for_an_unreachable_database(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    with running_cluster() as cluster:
        url = cluster.create_database()
        cluster.stop()
        with ServerProcess(url, (tmp_path / "blobs").as_uri(), log) as server:
            assert _health(server.address) == health_pb2.HealthCheckResponse.NOT_SERVING
            with RegistryClient(server.address, retries=0) as client:
                with pytest.raises(RegistryError) as caught:
                    client.get_model("m")
                assert caught.value.code == grpc.StatusCode.UNAVAILABLE
                assert caught.value.reason == "BACKEND_UNAVAILABLE"

                cluster.start()
                deadline = time.monotonic() + WAIT_S
                while _health(server.address) != health_pb2.HealthCheckResponse.SERVING:
                    assert time.monotonic() < deadline, log.read_text()[-3000:]
                    assert server.alive(), log.read_text()[-3000:]
                    time.sleep(0.2)
                client.create_model("m")
                assert client.get_model("m").name == "models/m"
    assert "Traceback" not in log.read_text()


def test_database_errors_that_are_not_outages_fail_start_up_clearly(tmp_path: Path) -> None:
    """A malformed URL is not waited for: the process exits at once with one clear line."""
    log = tmp_path / "server.log"
    server = ServerProcess("mysql://nowhere/db", (tmp_path / "blobs").as_uri(), log)
    with pytest.raises(RuntimeError, match="exited at start-up"):
        server.start()
    text = log.read_text()
    assert "Traceback" not in text
    assert "unsupported database URL scheme" in text


@pytest.mark.postgres
def test_api_keys_are_not_admitted_before_the_database_is_reached(tmp_path: Path) -> None:
    """With --api-keys and the database down, no call is admitted: no credential is
    UNAUTHENTICATED, an API key UNAVAILABLE (it cannot be checked yet); once the database is
    back the key works."""
    log = tmp_path / "server.log"
    with running_cluster() as cluster:
        url = cluster.create_database()
        made = subprocess.run(
            [
                sys.executable,
                "-m",
                "modelregistry_server",
                "api-keys",
                "create",
                "--database-url",
                url,
                "--name",
                "ci",
                "--scope",
                "registry.read",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        key = made.stdout.strip()
        cluster.stop()
        blobs = (tmp_path / "blobs").as_uri()
        with ServerProcess(url, blobs, log, extra_args=["--api-keys"]) as server:
            with RegistryClient(server.address, retries=0) as anonymous:
                with pytest.raises(RegistryError) as missing:
                    anonymous.get_caller()
                assert missing.value.reason == "CREDENTIALS_MISSING"
            bearer = [("authorization", f"Bearer {key}")]
            with RegistryClient(server.address, metadata=bearer, retries=0) as client:
                with pytest.raises(RegistryError) as waiting:
                    client.get_model("m")
                assert waiting.value.code == grpc.StatusCode.UNAVAILABLE
                cluster.start()
                deadline = time.monotonic() + WAIT_S
                while _health(server.address) != health_pb2.HealthCheckResponse.SERVING:
                    assert time.monotonic() < deadline, log.read_text()[-3000:]
                    time.sleep(0.2)
                assert client.get_caller().actor == f"apikey:{key.split('_')[1]}"
    assert "Traceback" not in log.read_text()
