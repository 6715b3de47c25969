"""The ``modelregistry`` command run as a user runs it: the venv's script in a subprocess,
against an in-process server on port 0, with an environment and config directory of its own."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from modelregistry.client import RegistryClient
from modelregistry_server.app import RegistryServer
from modelregistry_server.config import Config
from tests.support.metadata_fixtures import sqlite_url
from tests.support.servers import serving

SCRIPT = Path(sys.executable).with_name("modelregistry")
KiB = 1024


@dataclass
class Result:
    """A finished run: exit status, stdout and stderr (text)."""

    status: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        import json

        return json.loads(self.stdout)


@dataclass
class Cli:
    """Runs the script with ``env`` (no MODELREGISTRY_* of the test process leaks in)."""

    env: dict[str, str] = field(default_factory=dict)

    def __call__(
        self,
        *args: str,
        env: Mapping[str, str] | None = None,
        input: str | None = None,
        timeout: float = 60,
        cwd: Path | None = None,
    ) -> Result:
        done = subprocess.run(
            [str(SCRIPT), *args],
            env={**self.env, **(env or {})},
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=cwd,
        )
        return Result(done.returncode, done.stdout, done.stderr)


def base_env(home: Path) -> dict[str, str]:
    """The test process's environment without MODELREGISTRY_*, with ``home`` as HOME and
    XDG_CONFIG_HOME (so no real config file is read)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELREGISTRY_")}
    env.update(HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"), COLUMNS="200")
    return env


@pytest.fixture
def cli_config(tmp_path: Path) -> Config:
    return Config(
        listen="127.0.0.1:0",
        database_url=sqlite_url(tmp_path),
        blob_url=f"file://{tmp_path / 'blobs'}",
        upload_piece_bytes=256 * KiB,
        download_chunk_bytes=64 * KiB,
        maintenance_interval_seconds=0,
        shutdown_grace_seconds=0,
    )


@pytest.fixture
def server(cli_config: Config) -> Iterator[RegistryServer]:
    with serving(cli_config) as service:
        yield service


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    path.mkdir()
    return path


@pytest.fixture
def cli(server: RegistryServer, home: Path) -> Cli:
    """The command pointed at ``server`` through MODELREGISTRY_ADDRESS."""
    return Cli({**base_env(home), "MODELREGISTRY_ADDRESS": server.address})


@pytest.fixture
def client(server: RegistryServer) -> Iterator[RegistryClient]:
    with RegistryClient(server.address, timeout=30) as c:
        yield c


Seed = Callable[..., int]


def ready_version(client: RegistryClient, model: str, **fields: Any) -> int:
    """A sealed version of ``model`` (created if missing) with ``fields``; its number."""
    try:
        client.get_model(model)
    except Exception:
        client.create_model(model)
    v = client.create_version(model, **fields)
    client.upload_file(model, v.version_number, _payload(b"bytes of " + model.encode()))
    client.seal_version(model, v.version_number)
    return v.version_number


def _payload(data: bytes) -> Any:
    import io

    return io.BytesIO(data)
