"""Point-in-time alias reads: which version an alias pointed at at a given time, through
GetAlias and version names, and every move with its principal (ListAliasHistory)."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from modelregistry.client import InvalidArgumentError, NotFoundError, RegistryClient
from modelregistry_server.app import RegistryServer
from tests.api.registry_helpers import expect_error, ready_version


def _tick() -> datetime:
    """A time strictly between the changes before and after it."""
    time.sleep(0.01)
    now = datetime.now(UTC)
    time.sleep(0.01)
    return now


def test_an_alias_read_at_a_time_gives_the_version_of_then(client: RegistryClient) -> None:
    client.create_model("m")
    for _ in range(3):
        ready_version(client, "m")
    before_any = _tick()
    client.set_alias("m", "prod", 1)
    at_v1 = _tick()
    client.set_alias("m", "prod", 2)
    at_v2 = _tick()
    client.delete_alias("m", "prod")
    gone = _tick()
    client.set_alias("m", "prod", 3)

    assert client.get_alias("m", "prod", read_time=at_v1).version == "models/m/versions/1"
    assert client.get_alias("m", "prod", read_time=at_v2).version == "models/m/versions/2"
    assert client.get_alias("m", "prod").version == "models/m/versions/3"
    for when in (before_any, gone):
        with expect_error(NotFoundError, "ALIAS_NOT_FOUND"):
            client.get_alias("m", "prod", read_time=when)
    # Version names resolve an alias at read_time too (the version is returned as it is now).
    assert client.get_version("m", "prod", read_time=at_v1).version_number == 1
    assert client.get_version("m", 2, read_time=at_v1).version_number == 2  # a number: as is
    with expect_error(InvalidArgumentError, "INVALID_ARGUMENT"):
        client.get_version("m", "latest", read_time=at_v1)


def test_alias_history_lists_every_move_with_its_principal(client: RegistryClient) -> None:
    client.create_model("m")
    ready_version(client, "m")
    ready_version(client, "m")
    client.set_alias("m", "prod", 1)
    client.set_alias("m", "canary", 2)
    client.set_alias("m", "prod", 2)
    client.delete_alias("m", "canary")
    client.delete_version("m", 2)  # removes prod, which pointed at it

    prod = list(client.list_alias_history("m", "prod", page_size=1))
    assert [(h.version, h.method, h.principal) for h in prod] == [
        ("models/m/versions/1", "SetAlias", "anonymous"),
        ("models/m/versions/2", "SetAlias", "anonymous"),
        ("", "DeleteModelVersion", "anonymous"),
    ]
    assert all(h.alias == "models/m/aliases/prod" for h in prod)
    every = list(client.list_alias_history("m"))
    assert [h.alias.rsplit("/", 1)[-1] for h in every] == [
        "prod",
        "canary",
        "prod",
        "canary",
        "prod",
    ]
    times = [h.move_time.ToDatetime() for h in every]
    assert times == sorted(times)
    client.create_model("quiet")
    assert list(client.list_alias_history("quiet")) == []
    with expect_error(NotFoundError, "MODEL_NOT_FOUND"):
        list(client.list_alias_history("never"))  # no model and no history


def test_history_outlives_the_model(server: RegistryServer, client: RegistryClient) -> None:
    client.create_model("m")
    ready_version(client, "m")
    client.set_alias("m", "prod", 1)
    then = _tick()
    client.delete_model("m", force=True)
    server.store.purge(datetime.now(UTC).replace(year=datetime.now(UTC).year + 1))
    with pytest.raises(NotFoundError):
        client.get_model("m")
    assert client.get_alias("m", "prod", read_time=then).version == "models/m/versions/1"
    assert [h.method for h in client.list_alias_history("m", "prod")] == [
        "SetAlias",
        "DeleteModel",
    ]
