"""``modelregistry models …`` through the installed script: the JSON document's shape, YAML,
tables, and the round trip create → update → delete → undelete."""

from __future__ import annotations

import yaml

from modelregistry.client import RegistryClient
from tests.cli.conftest import Cli

MODEL_KEYS = [
    "name", "uid", "display_name", "description", "type", "author", "labels", "create_time",
    "update_time", "delete_time", "purge_time", "etag", "latest_version_number",
]  # fmt: skip


def test_create_show_and_list_print_one_stable_json_document(cli: Cli) -> None:
    created = cli("models", "create", "fraud", "--display-name", "Fraud", "--label",
                  "team=risk", "-o", "json")  # fmt: skip
    assert created.status == 0, created.stderr
    model = created.json()
    assert list(model) == MODEL_KEYS
    assert model["name"] == "models/fraud"
    assert model["labels"] == {"team": "risk"}
    assert model["delete_time"] is None
    assert isinstance(model["latest_version_number"], int)

    cli("models", "create", "bare")
    listed = cli("-o", "json", "models", "list")  # the global option before the command
    assert listed.status == 0, listed.stderr
    document = listed.json()
    assert list(document) == ["models"]
    assert [m["name"] for m in document["models"]] == ["models/bare", "models/fraud"]
    # Every model has every key, whatever is set.
    assert all(list(m) == MODEL_KEYS for m in document["models"])
    assert cli("models", "show", "fraud", "--output", "json").json() == document["models"][1]


def test_yaml_carries_the_same_data(cli: Cli) -> None:
    cli("models", "create", "fraud", "--label", "team=risk")
    as_json = cli("models", "list", "-o", "json").json()
    as_yaml = cli("models", "list", "-o", "yaml")
    assert as_yaml.status == 0, as_yaml.stderr
    assert yaml.safe_load(as_yaml.stdout) == as_json


def test_a_table_for_people_shows_text_not_markup(cli: Cli) -> None:
    cli("models", "create", "fraud", "--display-name", "[bold]Fraud[/bold]", "--type", "clf")
    table = cli("models", "list")
    assert table.status == 0, table.stderr
    header, _rule, row = table.stdout.splitlines()[:3]
    assert header.split() == ["model", "display", "name", "type", "author", "labels", "updated"]
    assert row.split()[:3] == ["fraud", "[bold]Fraud[/bold]", "clf"]
    assert "\x1b[" not in table.stdout  # no colour codes when stdout is not a terminal


def test_update_sends_only_the_given_fields_and_the_etag_guards_it(
    cli: Cli, client: RegistryClient
) -> None:
    cli("models", "create", "fraud", "--description", "keep", "--label", "team=risk",
        "--label", "tier=1")  # fmt: skip
    etag = client.get_model("fraud").etag
    updated = cli("models", "update", "fraud", "--display-name", "Fraud", "--label", "tier=2",
                  "--remove-label", "team", "--etag", etag, "-o", "json")  # fmt: skip
    assert updated.status == 0, updated.stderr
    model = updated.json()
    assert (model["display_name"], model["description"]) == ("Fraud", "keep")
    assert model["labels"] == {"tier": "2"}

    stale = cli("models", "update", "fraud", "--author", "x", "--etag", etag)
    assert stale.status == 6, stale.stderr  # ABORTED ETAG_MISMATCH
    assert "ETAG_MISMATCH" in stale.stderr
    assert client.get_model("fraud").author == ""

    nothing = cli("models", "update", "fraud")
    assert nothing.status == 2
    assert "nothing to update" in nothing.stderr


def test_delete_and_undelete(cli: Cli, client: RegistryClient) -> None:
    cli("models", "create", "fraud")
    deleted = cli("models", "delete", "fraud", "-o", "json")
    assert deleted.status == 0, deleted.stderr
    assert deleted.json()["delete_time"] is not None
    assert cli("models", "list", "-o", "json").json() == {"models": []}
    shown = cli("models", "list", "--show-deleted", "-o", "json").json()
    assert [m["name"] for m in shown["models"]] == ["models/fraud"]
    restored = cli("models", "undelete", "fraud", "-o", "json")
    assert restored.status == 0, restored.stderr
    assert restored.json()["delete_time"] is None
    assert client.get_model("fraud").HasField("delete_time") is False


def test_list_takes_filter_order_and_limit(cli: Cli) -> None:
    for name, team in (("a", "risk"), ("b", "ads"), ("c", "risk")):
        cli("models", "create", name, "--label", f"team={team}")
    risk = cli("models", "list", "--filter", 'labels.team = "risk"', "--order-by",
               "model_id desc", "-o", "json").json()  # fmt: skip
    assert [m["name"] for m in risk["models"]] == ["models/c", "models/a"]
    one = cli("models", "list", "--limit", "1", "-o", "json").json()
    assert len(one["models"]) == 1
