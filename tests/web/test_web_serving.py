"""How the web interface is served: beside gRPC on the same process, alone as a replica on
the same database and blob store (``--listen none``), refused on an exposed address without
authentication, 503 while the database is unreachable, drained with gRPC on SIGTERM."""

from __future__ import annotations

import io
import ssl
import time
import urllib.error
import urllib.request
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from modelregistry.client import RegistryClient
from modelregistry_server.app import build_server
from modelregistry_server.config import Config
from modelregistry_server.security import StartRefused
from tests.support.metadata_fixtures import sqlite_url
from tests.support.server_process import ServerProcess
from tests.support.servers import serving


def test_a_web_only_replica_serves_the_same_database_and_store(web_config: Config) -> None:
    with serving(web_config) as full, RegistryClient(full.address, timeout=30) as registry:
        registry.create_model("shared", labels={"from": "grpc"})
        registry.create_version("shared")
        registry.upload_file("shared", 1, io.BytesIO(b"bytes"))
        registry.seal_version("shared", 1)
    # SQLite serves one process at a time, so the replica starts once the first has stopped.
    replica_config = replace(web_config, listen="none")
    with serving(replica_config) as replica:
        assert replica.address == "none" and replica.server is None
        page = httpx.get(f"http://{replica.http_address}/models", timeout=30)
        assert page.status_code == 200
        assert 'href="/models/shared"' in page.text and "from=grpc" in page.text


def test_listen_none_needs_the_web_interface(tmp_path: Path) -> None:
    config = Config(listen="none", database_url=sqlite_url(tmp_path))
    with pytest.raises(StartRefused, match="--http-listen"):
        build_server(config)


def test_an_exposed_web_address_needs_authentication(tmp_path: Path) -> None:
    config = Config(
        listen="127.0.0.1:0", http_listen="0.0.0.0:0", database_url=sqlite_url(tmp_path)
    )
    with pytest.raises(StartRefused, match=r"0\.0\.0\.0:0"):
        build_server(config)


def test_a_web_port_in_use_is_refused_at_start_up(web_config: Config) -> None:
    with serving(web_config) as first:
        assert first.http_address is not None
        taken = replace(web_config, http_listen=first.http_address)
        with pytest.raises(OSError, match="in use"):
            build_server(taken)


@pytest.mark.postgres
def test_pages_are_503_while_the_database_is_unreachable(tmp_path: Path) -> None:
    from tests.support.postgres import running_cluster

    with running_cluster() as cluster:
        url = cluster.create_database()
        cluster.stop()
        config = Config(
            listen="127.0.0.1:0",
            http_listen="127.0.0.1:0",
            database_url=url,
            blob_url=(tmp_path / "blobs").as_uri(),
            maintenance_interval_seconds=0,
            shutdown_grace_seconds=0,
        )
        with serving(config) as server:
            page = httpx.get(f"http://{server.http_address}/models", timeout=30)
            assert page.status_code == 503
            assert "Unavailable" in page.text and "Traceback" not in page.text


@pytest.mark.slow
def test_sigterm_stops_grpc_and_web_together(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    process = ServerProcess(
        sqlite_url(tmp_path),
        (tmp_path / "blobs").as_uri(),
        log,
        extra_args=["--http-listen", "127.0.0.1:0", "--shutdown-grace-seconds", "5"],
    )
    with process:
        assert process.web_url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(f"{process.web_url}/models", timeout=10) as page:
            assert page.status == 200
        started = time.monotonic()
        process.stop()
        assert process.returncode == 0, log.read_text()[-3000:]
        assert time.monotonic() - started < 15
        with pytest.raises(urllib.error.URLError):
            urllib.request.urlopen(f"{process.web_url}/models", timeout=2)
    assert "Traceback" not in log.read_text()


def test_over_tls_the_web_interface_is_https_and_its_cookie_secure(
    web_config: Config, tmp_path: Path
) -> None:
    from tests.support.certificates import Authority

    ca = Authority("Registry CA")
    cert, key = ca.server().write(tmp_path / "tls", "server")
    ca_file = ca.write(tmp_path / "tls" / "ca.crt")
    config = replace(web_config, tls_cert=str(cert), tls_key=str(key))
    with serving(config) as server:
        assert server.http is not None and server.http.tls
        url = f"https://localhost:{server.http.port}/models"
        trust = ssl.create_default_context(cafile=str(ca_file))
        answer = httpx.get(url, verify=trust, timeout=30)
        assert answer.status_code == 200
        cookie = answer.headers["set-cookie"].lower()
        assert "; secure" in cookie and "httponly" in cookie and "samesite=lax" in cookie
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://localhost:{server.http.port}/models", timeout=5)
