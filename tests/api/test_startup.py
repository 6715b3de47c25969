"""Starting the service: a port already in use is refused with one clear line, and `make run`
takes its address and settings from ADDR and the MODELREGISTRY_* environment."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from modelregistry.client import RegistryClient
from modelregistry_server.app import ListenError, RegistryServer, build_server
from modelregistry_server.config import Config
from tests.support.metadata_fixtures import sqlite_url
from tests.support.server_process import ServerProcess

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 60


@pytest.fixture
def metadata_url(tmp_path: Path) -> str:
    """Start-up is about the process, not the store: SQLite is enough."""
    return sqlite_url(tmp_path)


def _still_serves(address: str, model_id: str) -> None:
    with RegistryClient(address, timeout=10) as client:
        client.create_model(model_id)
        assert client.get_model(model_id).name == f"models/{model_id}"


def test_build_server_refuses_a_port_in_use(server: RegistryServer, tmp_path: Path) -> None:
    second = Config(
        listen=server.address,
        database_url=sqlite_url(tmp_path / "second"),
        blob_url=(tmp_path / "second-blobs").as_uri(),
        maintenance_interval_seconds=0,
    )
    with pytest.raises(ListenError, match="in use"):
        build_server(second)
    _still_serves(server.address, "only-the-first")


@pytest.mark.parametrize("database", ["own", "same"])
def test_second_process_on_a_port_in_use_exits_with_one_clear_line(
    tmp_path: Path, database: str
) -> None:
    """Also when it is the same command again (the same SQLite file, held by the first): the
    port is refused before anything waits on the database, and no database line misleads."""
    log = tmp_path / "first.log"
    with ServerProcess(sqlite_url(tmp_path / "a"), (tmp_path / "a-blobs").as_uri(), log) as first:
        second = subprocess.run(
            [
                sys.executable,
                "-m",
                "modelregistry_server",
                "--listen",
                first.address,
                "--database-url",
                sqlite_url(tmp_path / ("a" if database == "same" else "b")),
                "--blob-url",
                (tmp_path / "b-blobs").as_uri(),
            ],
            capture_output=True,
            text=True,
            timeout=START_TIMEOUT_S,
        )
        assert second.returncode == 1
        assert "Traceback" not in second.stderr
        ours = [line for line in second.stderr.splitlines() if line.startswith("modelregistry:")]
        assert ours == [
            f"modelregistry: cannot listen on {first.address}: "
            "the address is in use or not available"
        ]
        assert "listening" not in second.stdout
        assert "database" not in second.stderr
        _still_serves(first.address, "first-still-serves")


def test_second_process_on_a_held_sqlite_file_exits_with_one_clear_line(tmp_path: Path) -> None:
    """SQLite serves one process: a second one on the same file (another port) is refused at
    once instead of waiting NOT_SERVING for a lock the first holds for its whole life."""
    database = sqlite_url(tmp_path / "shared")
    blobs = (tmp_path / "blobs").as_uri()
    with ServerProcess(database, blobs, tmp_path / "first.log") as first:
        second = ServerProcess(database, blobs, tmp_path / "second.log")
        try:
            with pytest.raises(RuntimeError, match="exited at start-up"):
                second.start()
        finally:
            second.kill()
        assert second.returncode == 2
        text = (tmp_path / "second.log").read_text()
        assert "Traceback" not in text
        refused = [line for line in text.splitlines() if "cannot start" in line]
        held = (tmp_path / "shared" / "metadata.db").resolve()
        assert len(refused) == 1, text
        assert refused[0].endswith(
            f"cannot start: another process holds the SQLite database at {held}; "
            "SQLite serves one process, use PostgreSQL for several"
        ), text
        assert "unreachable" not in text
        _still_serves(first.address, "first-still-serves")


def _make_run(tmp_path: Path, env: dict[str, str], *make_args: str) -> ServerProcess:
    make = shutil.which("make")
    if make is None:
        pytest.skip("make is not installed")
    # -o: never rebuild the virtualenv here; PY: the interpreter running the tests.
    command = [make, "-s", "-C", str(REPO), "-o", ".venv/.installed", "run"]
    command += [f"PY={sys.executable}", *make_args]
    base = {k: v for k, v in os.environ.items() if k != "ADDR" and not k.startswith("MODELREG")}
    return ServerProcess("", "", tmp_path / "make.log", command=command, env={**base, **env})


def test_make_run_honours_addr_and_modelregistry_variables(tmp_path: Path) -> None:
    env = {
        "MODELREGISTRY_DATABASE_URL": sqlite_url(tmp_path / "db"),
        "MODELREGISTRY_BLOB_URL": (tmp_path / "blobs").as_uri(),
        "MODELREGISTRY_LISTEN": "127.0.0.1:1",  # ADDR wins over it
        "MODELREGISTRY_MAINTENANCE_INTERVAL_SECONDS": "0",
    }
    with _make_run(tmp_path, env, "ADDR=127.0.0.1:0", "HTTP_ADDR=127.0.0.1:0") as served:
        host, port = served.address.rsplit(":", 1)
        assert (host, port != "1", port != "0") == ("127.0.0.1", True, True)
        assert served.web_url.startswith("http://127.0.0.1:"), "make run serves the web too"
        with urllib.request.urlopen(f"{served.web_url}/models", timeout=10) as page:
            assert page.status == 200
        with RegistryClient(served.address, timeout=10) as client:
            client.create_model("via-make")
            client.create_version("via-make")
            client.upload_file("via-make", 1, _payload(tmp_path))
    assert (tmp_path / "db" / "metadata.db").is_file()
    assert any(p.is_file() for p in (tmp_path / "blobs").rglob("*"))


def test_make_run_listens_on_modelregistry_listen_without_addr(tmp_path: Path) -> None:
    env = {
        "MODELREGISTRY_LISTEN": "127.0.0.1:0",
        "MODELREGISTRY_HTTP_LISTEN": "127.0.0.1:0",
        "MODELREGISTRY_DATABASE_URL": sqlite_url(tmp_path / "db"),
        "MODELREGISTRY_BLOB_URL": (tmp_path / "blobs").as_uri(),
        "MODELREGISTRY_MAINTENANCE_INTERVAL_SECONDS": "0",
    }
    with _make_run(tmp_path, env) as served:
        assert not served.address.endswith(":50051")
        _still_serves(served.address, "env-listen")
    assert (tmp_path / "db" / "metadata.db").is_file()


def _payload(tmp_path: Path) -> Path:
    path = tmp_path / "model.bin"
    path.write_bytes(b"weights" * 100)
    return path
