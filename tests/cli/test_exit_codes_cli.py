"""Every class of failure has its exit status (README "Exit codes"), and errors go to stderr
(as a JSON document with ``-o json``) so stdout stays parseable."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelregistry_server.app import RegistryServer
from modelregistry_server.config import Config
from tests.cli.conftest import Cli, base_env
from tests.support.jwt_tokens import EVERY_SCOPE, jwt_config, mint, rsa_key
from tests.support.servers import serving


def test_not_found_is_3_with_a_json_error_on_stderr(cli: Cli) -> None:
    result = cli("models", "show", "missing", "-o", "json")
    assert result.status == 3
    assert result.stdout == ""
    import json

    error = json.loads(result.stderr)["error"]
    assert error == {
        "code": "NOT_FOUND",
        "exit_code": 3,
        "message": error["message"],
        "reason": "MODEL_NOT_FOUND",
        "metadata": {},
        "field_violations": [],
    }


def test_invalid_argument_is_2_from_the_server_and_from_the_command_line(cli: Cli) -> None:
    bad_id = cli("models", "create", "Not_An_Id")
    assert bad_id.status == 2, bad_id.stderr
    assert "INVALID_ARGUMENT" in bad_id.stderr
    bad_filter = cli("models", "list", "--filter", "nosuchfield = 1")
    assert bad_filter.status == 2
    assert "INVALID_FILTER" in bad_filter.stderr
    usage = cli("models", "show")  # missing argument
    assert usage.status == 2
    unknown = cli("models", "frobnicate")
    assert unknown.status == 2


def test_already_exists_and_failed_precondition_are_6(cli: Cli) -> None:
    assert cli("models", "create", "fraud").status == 0
    again = cli("models", "create", "fraud")
    assert again.status == 6
    assert "MODEL_ALREADY_EXISTS" in again.stderr
    not_deleted = cli("models", "undelete", "fraud")
    assert not_deleted.status == 6
    assert "MODEL_NOT_DELETED" in not_deleted.stderr


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unavailable_is_5(home: Path) -> None:
    cli = Cli(base_env(home))
    result = cli("--address", f"127.0.0.1:{_closed_port()}", "--timeout", "3", "models", "list")
    assert result.status == 5, result.stderr
    assert "UNAVAILABLE" in result.stderr


def test_a_bad_configuration_is_2(cli: Cli, tmp_path: Path) -> None:
    assert cli("models", "list", "--profile", "nope").status == 2
    assert cli("models", "list", env={"MODELREGISTRY_OUTPUT": "xml"}).status == 2
    missing = cli("models", "list", env={"MODELREGISTRY_CONFIG": str(tmp_path / "none.toml")})
    assert missing.status == 2
    assert "does not exist" in missing.stderr
    # A token for a remote host without TLS is refused before anything is sent.
    clear = cli("--address", "registry.example.org:50051", "--token", "t", "models", "list")
    assert clear.status == 2
    assert "refusing to send a token in clear" in clear.stderr


@pytest.fixture
def jwt_server(cli_config: Config, tmp_path: Path) -> Iterator[RegistryServer]:
    with serving(jwt_config(cli_config, tmp_path)) as service:
        yield service


def test_permission_denied_and_unauthenticated_are_4(
    jwt_server: RegistryServer, home: Path
) -> None:
    cli = Cli({**base_env(home), "MODELREGISTRY_ADDRESS": jwt_server.address})
    reader = mint(rsa_key(), scope="registry.read")
    writer = mint(rsa_key(), scope=EVERY_SCOPE)

    assert cli("models", "create", "fraud", "--token", writer).status == 0
    denied = cli("models", "create", "other", env={"MODELREGISTRY_TOKEN": reader})
    assert denied.status == 4, denied.stderr
    assert "PERMISSION_DENIED" in denied.stderr and "SCOPE_MISSING" in denied.stderr
    # The same token may read.
    listed = cli("models", "list", "-o", "json", env={"MODELREGISTRY_TOKEN": reader})
    assert listed.status == 0, listed.stderr
    assert [m["name"] for m in listed.json()["models"]] == ["models/fraud"]

    anonymous = cli("models", "list")
    assert anonymous.status == 4
    assert "UNAUTHENTICATED" in anonymous.stderr
    forged = cli("models", "list", "--token", writer[:-4] + "AAAA")
    assert forged.status == 4
    assert "CREDENTIALS_INVALID" in forged.stderr
    assert writer not in forged.stderr + forged.stdout  # the token is never echoed


def test_a_usage_error_with_json_output_is_a_json_error_on_stderr(cli: Cli) -> None:
    import json

    for argv, env in (
        (("models", "show", "-o", "json"), {}),  # missing argument
        (("-o", "json", "models", "frobnicate"), {}),  # unknown command
        (("models", "list", "--timeout", "x"), {"MODELREGISTRY_OUTPUT": "json"}),
    ):
        result = cli(*argv, env=env)
        assert result.status == 2, (argv, result.stderr)
        assert result.stdout == ""
        error = json.loads(result.stderr)["error"]
        assert (error["code"], error["exit_code"]) == ("INVALID_ARGUMENT", 2), argv
        assert error["message"]
        assert set(error) == {  # the README's shape, as for a call's error
            "code", "exit_code", "message", "reason", "metadata", "field_violations"
        }  # fmt: skip
