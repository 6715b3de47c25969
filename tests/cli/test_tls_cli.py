"""The TLS options reach the client: --ca-file verifies the server, --cert-file/--key-file
present a client certificate under mutual TLS; the same from the environment and a profile."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelregistry_server.app import RegistryServer
from modelregistry_server.config import Config
from tests.cli.conftest import Cli, base_env
from tests.support.certificates import Authority
from tests.support.servers import serving


@dataclasses.dataclass(frozen=True)
class Mtls:
    server: RegistryServer
    ca_file: Path
    cert: Path
    key: Path


@pytest.fixture
def mtls(cli_config: Config, tmp_path: Path) -> Iterator[Mtls]:
    ca = Authority("Registry CA")
    directory = tmp_path / "tls"
    cert, key = ca.server().write(directory, "server")
    ca_file = ca.write(directory / "ca.crt")
    client_cert, client_key = ca.client("ci", dns=("ci.example.org",)).write(
        tmp_path / "client", "client"
    )
    config = dataclasses.replace(
        cli_config, tls_cert=str(cert), tls_key=str(key), tls_client_ca=str(ca_file)
    )
    with serving(config) as service:
        yield Mtls(service, ca_file, client_cert, client_key)


def test_mutual_tls_from_flags_environment_and_profile(mtls: Mtls, home: Path) -> None:
    cli = Cli({**base_env(home), "MODELREGISTRY_ADDRESS": mtls.server.address})
    flags = ("--ca-file", str(mtls.ca_file), "--cert-file", str(mtls.cert),
             "--key-file", str(mtls.key))  # fmt: skip
    created = cli("models", "create", "over-mtls", *flags)
    assert created.status == 0, created.stderr

    env = {
        "MODELREGISTRY_CA_FILE": str(mtls.ca_file),
        "MODELREGISTRY_CLIENT_CERT_FILE": str(mtls.cert),
        "MODELREGISTRY_CLIENT_KEY_FILE": str(mtls.key),
    }
    listed = cli("models", "list", "-o", "json", env=env)
    assert listed.status == 0, listed.stderr
    assert [m["name"] for m in listed.json()["models"]] == ["models/over-mtls"]

    config = home / "mtls.toml"
    config.write_text(
        f'[profiles.secure]\naddress = "{mtls.server.address}"\nca_file = "{mtls.ca_file}"\n'
        f'cert_file = "{mtls.cert}"\nkey_file = "{mtls.key}"\n'
    )
    profiled = cli("models", "show", "over-mtls", "--profile", "secure",
                   env={"MODELREGISTRY_CONFIG": str(config)})  # fmt: skip
    assert profiled.status == 0, profiled.stderr

    # Without a client certificate the handshake is refused; without TLS, too.
    no_cert = cli("models", "list", "--ca-file", str(mtls.ca_file), "--timeout", "5")
    assert no_cert.status == 5, no_cert.stderr
    plaintext = cli("models", "list", "--timeout", "5")
    assert plaintext.status == 5
    # --no-tls beats certificates from the environment.
    assert cli("models", "list", "--no-tls", "--timeout", "5", env=env).status == 5
    half = cli("models", "list", "--ca-file", str(mtls.ca_file), "--cert-file", str(mtls.cert))
    assert half.status == 2
    assert "go together" in half.stderr
