"""``python -m modelregistry_server api-keys create|list|revoke`` through the real entry point:
the bootstrap key it prints authenticates against a server on the same database, ``list``
never shows a secret, and ``revoke`` ends the key."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import time

import pytest

from modelregistry.client import RegistryClient, UnauthenticatedError
from modelregistry_server.config import Config
from tests.api.registry_helpers import expect_error
from tests.support.servers import serving

pytestmark = pytest.mark.slow


def _cli(
    url: str, command: str, *args: str, check: bool = True
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "modelregistry_server",
            "api-keys",
            command,
            "--database-url",
            url,
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if check:
        assert done.returncode == 0, done.stderr
    return done


def _client(address: str, secret: str) -> RegistryClient:
    return RegistryClient(
        address, metadata=[("authorization", f"Bearer {secret}")], timeout=10, retries=0
    )


def test_the_cli_lifecycle(metadata_url: str, server_config: Config) -> None:
    config = dataclasses.replace(server_config, api_keys=True)
    made = _cli(
        metadata_url, "create", "--tenant", "acme", "--name", "boot", "--scope", "registry.admin"
    )
    secret = made.stdout.strip()
    assert secret.startswith("mrk_") and len(secret.splitlines()) == 1
    key_id = secret.split("_")[1]
    assert f"apiKeys/{key_id}" in made.stderr and "shown only now" in made.stderr
    reader = json.loads(
        _cli(
            metadata_url,
            "create",
            "--tenant",
            "acme",
            "--name",
            "ci",
            "--scope",
            "registry.read",
            "--expire-days",
            "30",
            "--json",
        ).stdout
    )
    assert reader["secret"].startswith(f"mrk_{reader['key_id']}_") and reader["expire_time"]

    with serving(config) as server, _client(server.address, secret) as admin:
        me = admin.get_caller()
        assert (me.actor, me.tenant) == (f"apikey:{key_id}", "acme")
        assert [k.display_name for k in admin.list_api_keys()] == ["boot", "ci"]
        assert admin.list_api_keys_page().api_keys[0].created_by.startswith("cli:")

    listed = _cli(metadata_url, "list", "--tenant", "acme", "--json").stdout
    keys = json.loads(listed)
    assert [k["display_name"] for k in keys] == ["boot", "ci"]
    assert keys[0]["scopes"] == ["registry.admin"] and keys[0]["last_use_time"]
    assert secret not in listed and reader["secret"] not in listed
    table = _cli(metadata_url, "list", "--tenant", "acme").stdout.splitlines()
    assert table[0].split()[:3] == ["KEY_ID", "NAME", "TENANT"] and len(table) == 3
    assert _cli(metadata_url, "list", "--tenant", "other", "--json").stdout.strip() == "[]"

    revoked = _cli(metadata_url, "revoke", key_id)
    assert f"revoked apiKeys/{key_id}" in revoked.stdout
    with (
        serving(config) as server,
        _client(server.address, secret) as admin,
        expect_error(UnauthenticatedError, "CREDENTIALS_INVALID"),
    ):
        admin.get_caller()


def test_the_cli_refuses_bad_input(metadata_url: str) -> None:
    bad_scope = _cli(metadata_url, "create", "--name", "x", "--scope", "registry.all", check=False)
    assert bad_scope.returncode == 1 and "unknown scope 'registry.all'" in bad_scope.stderr
    missing = _cli(metadata_url, "revoke", "b" * 16, check=False)
    assert missing.returncode == 1 and "does not exist" in missing.stderr
    malformed = _cli(metadata_url, "revoke", "nope", check=False)
    assert malformed.returncode == 1 and "key_id" in malformed.stderr
    assert _cli(metadata_url, "list", "--json").stdout.strip() == "[]"


@pytest.mark.postgres
def test_a_revoke_by_another_process_takes_effect_within_the_cache_bound(
    postgres_server: object, server_config: Config
) -> None:
    url = postgres_server.create_database()  # type: ignore[attr-defined]
    config = dataclasses.replace(server_config, database_url=url, api_keys=True)
    secret = _cli(url, "create", "--name", "ci", "--scope", "registry.read").stdout.strip()
    with serving(config) as server, _client(server.address, secret) as ci:
        ci.get_caller()  # verified and cached by this server
        _cli(url, "revoke", secret.split("_")[1])  # another process: the bound applies
        started = time.monotonic()
        refused = False
        while time.monotonic() - started < 15:
            try:
                ci.get_caller()
            except UnauthenticatedError:
                refused = True
                break
            time.sleep(0.2)
        assert refused
        assert time.monotonic() - started < 5.0 + 1.0  # CACHE_SECONDS plus slack
