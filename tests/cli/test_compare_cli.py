"""``versions compare`` puts params and metrics side by side and marks what differs."""

from __future__ import annotations

from modelregistry.client import RegistryClient
from tests.cli.conftest import Cli, ready_version


def _seed(client: RegistryClient) -> None:
    ready_version(
        client,
        "fraud",
        metrics={"auc": 0.91, "loss": 0.2},
        parameters={"lr": 0.01, "layers": [64, 32], "opt": {"name": "adam"}},
    )
    ready_version(client, "fraud", metrics={"auc": 0.97, "loss": 0.2},
                  parameters={"lr": 0.001, "layers": [64, 32], "opt": {"name": "sgd"},
                              "dropout": 0.1})  # fmt: skip
    client.set_alias("fraud", "production", 2)


def test_compare_json_lists_every_field_with_its_values_and_whether_they_differ(
    cli: Cli, client: RegistryClient
) -> None:
    _seed(client)
    result = cli("versions", "compare", "fraud:1", "@production", "-o", "json")
    assert result.status == 0, result.stderr
    doc = result.json()
    assert doc["versions"] == ["models/fraud/versions/1", "models/fraud/versions/2"]
    rows = {r["field"]: (r["values"], r["differs"]) for r in doc["fields"]}
    assert rows["metrics.auc"] == ([0.91, 0.97], True)
    assert rows["metrics.loss"] == ([0.2, 0.2], False)
    assert rows["params.lr"] == ([0.01, 0.001], True)
    assert rows["params.layers"] == ([[64, 32], [64, 32]], False)
    assert rows["params.opt.name"] == (["adam", "sgd"], True)
    assert rows["params.dropout"] == ([None, 0.1], True)  # missing on one side
    assert rows["state"] == (["READY", "READY"], False)
    fields = [r["field"] for r in doc["fields"]]
    assert fields.index("params.dropout") < fields.index("metrics.auc")  # params, then metrics

    only = cli("versions", "compare", "fraud:1", "2", "--differences", "-o", "json").json()
    assert {r["field"] for r in only["fields"]} == {
        "params.dropout", "params.lr", "params.opt.name", "metrics.auc",
    }  # fmt: skip


def test_compare_table_marks_differing_rows(cli: Cli, client: RegistryClient) -> None:
    _seed(client)
    result = cli("versions", "compare", "fraud:1", "fraud@production")
    assert result.status == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["field", "fraud:1", "fraud:2", "(fraud@production)"]
    marked = {}
    for line in lines[2:]:
        cells = line.split()
        if cells[0] == "*":
            marked[cells[1]] = True
        else:
            marked[cells[0]] = False
    assert marked["metrics.auc"] is True
    assert marked["params.lr"] is True
    assert marked["metrics.loss"] is False
    assert marked["params.layers"] is False
    auc = next(line for line in lines if "metrics.auc" in line)
    assert auc.split()[-2:] == ["0.91", "0.97"]


def test_compare_needs_two_versions_and_existing_ones(cli: Cli, client: RegistryClient) -> None:
    _seed(client)
    assert cli("versions", "compare", "fraud:1").status == 2
    assert cli("versions", "compare", "fraud:1", "fraud:9").status == 3
    assert cli("versions", "compare", "fraud:x", "fraud:1").status == 2
