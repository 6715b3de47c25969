"""Where settings come from: flag > environment > profile > default, named profiles in the
config file, and the extra's install hint."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from modelregistry_server.app import RegistryServer
from tests.cli.conftest import SCRIPT, Cli, base_env

DEAD = "127.0.0.1:9"  # discard port: nothing listens there


def _write_config(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_precedence_is_flag_then_env_then_profile_then_default(home: Path) -> None:
    _write_config(
        home / ".config" / "modelregistry" / "config.toml",
        """
default_profile = "staging"

[profiles.staging]
address = "staging.internal:50051"
output = "yaml"
timeout = 7

[profiles.prod]
address = "prod.internal:443"
ca_file = "certs/ca.pem"
tls = true
""",
    )
    cli = Cli(base_env(home))

    def settings(*args: str, **env: str) -> dict[str, object]:
        result = cli("config", "show", "-o", "json", *args, env=env)
        assert result.status == 0, result.stderr
        data: dict[str, object] = result.json()
        return data

    default = settings()  # the file's default_profile
    assert default["profile"] == "staging"
    assert default["address"] == "staging.internal:50051"
    assert default["timeout"] == 7.0
    assert default["sources"] == {
        "address": "profile staging", "token": "default", "ca_file": "default",
        "cert_file": "default", "key_file": "default", "output": "flag",
        "timeout": "profile staging",
    }  # fmt: skip

    env = settings(MODELREGISTRY_ADDRESS="env.internal:1", MODELREGISTRY_PROFILE="prod")
    assert env["profile"] == "prod"
    assert env["address"] == "env.internal:1"  # env beats the profile
    assert env["ca_file"] == str(home / ".config" / "modelregistry" / "certs" / "ca.pem")
    assert env["tls"] is True
    assert env["timeout"] == 30.0  # prod has none: the default

    flag = settings(
        "--address", "flag.internal:2", "--profile", "prod", MODELREGISTRY_ADDRESS="env:1"
    )
    assert flag["address"] == "flag.internal:2"
    assert flag["sources"]["address"] == "flag"  # type: ignore[index]

    # The profile's output applies when no flag is given.
    shown = cli("config", "show")
    assert shown.stdout.startswith("address: staging.internal:50051")


def test_a_profile_drives_real_calls_and_its_token_file_is_used(
    server: RegistryServer, home: Path, tmp_path: Path
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("not-used-by-an-open-server\n")
    config = _write_config(
        tmp_path / "elsewhere.toml",
        f"""
[profiles.local]
address = "{server.address}"
token_file = "{token_file}"

[profiles.dead]
address = "{DEAD}"
timeout = 2
""",
    )
    cli = Cli({**base_env(home), "MODELREGISTRY_CONFIG": str(config)})
    assert cli("models", "create", "fraud", "--profile", "local").status == 0
    listed = cli("models", "list", "-o", "json", env={"MODELREGISTRY_PROFILE": "local"})
    assert [m["name"] for m in listed.json()["models"]] == ["models/fraud"]
    shown = cli("config", "show", "--profile", "local", "-o", "json").json()
    assert shown["token"] == "<set>"  # read from token_file, never printed
    assert "not-used" not in str(shown)
    # The dead profile fails; a flag (or the environment) overrides its address.
    assert cli("models", "list", "--profile", "dead").status == 5
    assert cli("models", "list", "--profile", "dead", "--address", server.address).status == 0
    overridden = cli("models", "list", "--profile", "dead", env={
        "MODELREGISTRY_ADDRESS": server.address})  # fmt: skip
    assert overridden.status == 0

    unknown = _write_config(tmp_path / "typo.toml", "[profiles.x]\nadress = 'a:1'\n")
    typo = cli("config", "show", "--profile", "x", env={"MODELREGISTRY_CONFIG": str(unknown)})
    assert typo.status == 2
    assert "unknown setting(s) adress" in typo.stderr


def test_without_the_cli_extra_the_script_prints_how_to_install_it(tmp_path: Path) -> None:
    # Hide click the way a plain `pip install modelregistry-client` would lack it.
    blocker = tmp_path / "blocked"
    blocker.mkdir()
    (blocker / "click.py").write_text("raise ModuleNotFoundError(name='click')\n")
    done = subprocess.run(
        [sys.executable, "-c", "import sys; sys.path.insert(0, sys.argv[1]); "
         "from modelregistry.cli import main; main()", str(blocker)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 1
    assert done.stderr.strip() == (
        "modelregistry: the command line needs its extra: pip install 'modelregistry-client[cli]'"
    )
    assert SCRIPT.exists()


def test_a_token_others_can_read_is_warned_about(home: Path, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("secret-token\n")
    token_file.chmod(0o644)
    config = _write_config(
        tmp_path / "c.toml",
        f'[profiles.a]\ntoken_file = "{token_file}"\n\n[profiles.b]\ntoken = "inline-secret"\n',
    )
    config.chmod(0o644)
    cli = Cli({**base_env(home), "MODELREGISTRY_CONFIG": str(config)})
    for profile, path in (("a", token_file), ("b", config)):
        shown = cli("config", "show", "--profile", profile)
        assert shown.status == 0
        assert f"warning: {path} holds a token and others can read it" in shown.stderr
        assert "secret" not in shown.stderr + shown.stdout
    token_file.chmod(0o600)
    config.chmod(0o600)
    for profile in ("a", "b"):
        assert "warning" not in cli("config", "show", "--profile", profile).stderr
