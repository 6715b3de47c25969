"""deploy/healthcheck.py (``modelregistry-healthcheck`` in the image): 0 only when the server
answers SERVING, over plaintext and over TLS with the flags the production overlay passes."""

from __future__ import annotations

import importlib.util
from functools import cache
from pathlib import Path
from types import ModuleType

import pytest

from modelregistry_server.config import Config
from tests.deploy.settings import DEPLOY
from tests.support.certificates import Authority
from tests.support.servers import serving


@cache
def healthcheck_module() -> ModuleType:
    """deploy/healthcheck.py, imported from its path (it is a script, not a package module)."""
    spec = importlib.util.spec_from_file_location("healthcheck", DEPLOY / "healthcheck.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _config(tmp_path: Path, **settings: object) -> Config:
    return Config(
        listen="127.0.0.1:0",
        database_url=f"sqlite:///{tmp_path / 'registry.db'}",
        blob_url=(tmp_path / "blobs").as_uri(),
        maintenance_interval_seconds=0,
        webhook_workers=0,
        **settings,  # type: ignore[arg-type]
    )


def test_serving_is_healthy_and_a_closed_port_is_not(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    check = healthcheck_module().main
    with serving(_config(tmp_path)) as server:
        assert check(["--address", server.address]) == 0
        address = server.address
    assert check(["--address", address, "--timeout", "1"]) == 1
    assert "UNAVAILABLE" in capsys.readouterr().err


def test_not_serving_is_unhealthy(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A server whose database is unreachable at start listens with health NOT_SERVING."""
    config = _config(tmp_path)
    unreachable = Config(**{**vars(config), "database_url": "postgresql://r@127.0.0.1:1/r"})
    with serving(unreachable) as server:
        assert healthcheck_module().main(["--address", server.address]) == 1
    assert "NOT_SERVING" in capsys.readouterr().err


def test_tls_with_the_ca_and_server_name(tmp_path: Path) -> None:
    authority = Authority()
    cert, key = authority.server().write(tmp_path / "tls", "tls")
    ca = authority.write(tmp_path / "tls" / "ca.crt")
    check = healthcheck_module().main
    with serving(_config(tmp_path, tls_cert=str(cert), tls_key=str(key))) as server:
        port = server.address.rsplit(":", 1)[1]
        flags = ["--address", f"127.0.0.1:{port}", f"--tls-ca={ca}"]
        assert check([*flags, "--tls-server-name=localhost"]) == 0
        assert check(flags) == 0  # 127.0.0.1 is in the certificate too
        assert check([*flags, "--tls-server-name=elsewhere.example", "--timeout", "1"]) == 1
        assert check(["--address", f"127.0.0.1:{port}", "--timeout", "1"]) == 1  # plaintext


def test_default_address_is_the_listen_port_on_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELREGISTRY_LISTEN", "0.0.0.0:6123")
    assert healthcheck_module().parser().parse_args([]).address == "127.0.0.1:6123"
