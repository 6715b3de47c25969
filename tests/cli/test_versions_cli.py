"""``modelregistry versions …`` and ``aliases …`` through the installed script."""

from __future__ import annotations

from pathlib import Path

from modelregistry.client import RegistryClient
from tests.cli.conftest import Cli, ready_version


def test_a_version_from_create_to_production(
    cli: Cli, client: RegistryClient, tmp_path: Path
) -> None:
    assert cli("models", "create", "fraud").status == 0
    created = cli(
        "versions", "create", "fraud", "--type", "ONNX", "--author", "ci",
        "--metric", "auc=0.97", "--metric", "accuracy=0.9", "--param", "lr=0.001",
        "--param", "layers=[64,32]", "--param", "optimizer=adam", "--label", "team=risk",
        "--source-repository", "https://git.example/fraud", "--source-commit", "3f2a1c",
        "--dataset", "gs://data/fraud/2026-11", "-o", "json",
    )  # fmt: skip
    assert created.status == 0, created.stderr
    v = created.json()
    assert v["name"] == "models/fraud/versions/1"
    assert (v["state"], v["stage"]) == ("DRAFT", "DEVELOPMENT")
    assert v["metrics"] == {"accuracy": 0.9, "auc": 0.97}
    assert v["parameters"] == {"layers": [64, 32], "lr": 0.001, "optimizer": "adam"}
    assert v["source"] == {
        "repository": "https://git.example/fraud",
        "commit": "3f2a1c",
        "path": "",
    }
    assert [d["uri"] for d in v["datasets"]] == ["gs://data/fraud/2026-11"]

    model_file = tmp_path / "model.onnx"
    model_file.write_bytes(b"onnx" * 1000)
    uploaded = cli("files", "upload", "fraud:1", str(model_file), "-o", "json")
    assert uploaded.status == 0, uploaded.stderr
    assert uploaded.json()["size_bytes"] == 4000
    assert uploaded.stderr == ""  # no progress when stderr is not a terminal

    sealed = cli("versions", "seal", "fraud:1", "-o", "json").json()
    assert sealed["state"] == "READY" and sealed["manifest_digest"]
    promoted = cli("versions", "stage", "fraud:1", "PRODUCTION", "--comment", "beats v0")
    assert promoted.status == 0, promoted.stderr
    assert cli("aliases", "set", "fraud", "production", "1").status == 0
    shown = cli("versions", "show", "fraud@production", "-o", "json").json()
    assert shown["name"] == "models/fraud/versions/1"
    assert shown["stage"] == "PRODUCTION"
    assert shown["aliases"] == ["production"]
    assert cli("versions", "show", "fraud", "-o", "json").json()["version_number"] == 1  # latest

    transitions = cli("versions", "transitions", "fraud:1", "-o", "json").json()
    moves = [
        (t["from_stage"], t["to_stage"], t["comment"]) for t in transitions["stage_transitions"]
    ]
    assert moves[-1] == ("DEVELOPMENT", "PRODUCTION", "beats v0")

    updated = cli("versions", "update", "fraud:1", "--metric", "auc=0.98", "--remove-metric",
                  "accuracy", "--description", "better", "-o", "json").json()  # fmt: skip
    assert updated["metrics"] == {"auc": 0.98}
    assert updated["description"] == "better"

    # Sealed content cannot take new files: a conflict with the version's state.
    late = cli("files", "upload", "fraud:1", str(model_file), "--file-id", "late.bin")
    assert late.status == 6, late.stderr

    # Deleting removes its aliases; undelete restores the version.
    deleted = cli("versions", "delete", "fraud:1", "-o", "json")
    assert deleted.status == 0, deleted.stderr
    assert cli("versions", "show", "fraud@production").status == 3
    assert cli("versions", "undelete", "fraud:1", "-o", "json").json()["delete_time"] is None


def test_versions_list_takes_filter_and_order_by(cli: Cli, client: RegistryClient) -> None:
    for auc in (0.91, 0.97, 0.85):
        ready_version(client, "fraud", metrics={"auc": auc})
    ready_version(client, "ads", metrics={"auc": 0.99})
    best = cli("versions", "list", "fraud", "--filter", "metrics.auc > 0.9", "--order-by",
               "metrics.auc desc", "-o", "json")  # fmt: skip
    assert best.status == 0, best.stderr
    assert list(best.json()) == ["model_versions"]
    assert [v["name"] for v in best.json()["model_versions"]] == [
        "models/fraud/versions/2",
        "models/fraud/versions/1",
    ]
    everywhere = cli("versions", "list", "--order-by", "metrics.auc desc", "--limit", "2", "-o",
                     "json").json()  # fmt: skip
    assert [v["name"] for v in everywhere["model_versions"]] == [
        "models/ads/versions/1",
        "models/fraud/versions/2",
    ]
    table = cli("versions", "list", "fraud", "--order-by", "version_number desc")
    lines = table.stdout.splitlines()
    assert lines[0].split()[:4] == ["version", "state", "stage", "aliases"]
    assert [line.split()[0] for line in lines[2:]] == ["fraud:3", "fraud:2", "fraud:1"]
    bad = cli("versions", "list", "fraud", "--order-by", "nonsense")
    assert bad.status == 2 and "INVALID_ORDER_BY" in bad.stderr


def test_aliases_set_list_history_and_delete(cli: Cli, client: RegistryClient) -> None:
    one = ready_version(client, "fraud")
    two = ready_version(client, "fraud")
    assert cli("aliases", "set", "fraud", "production", str(one)).status == 0
    assert cli("aliases", "set", "fraud", "staging", "latest").status == 0
    moved = cli("aliases", "set", "fraud", "production", "staging", "-o", "json")  # alias → alias
    assert moved.json()["version"] == f"models/fraud/versions/{two}"
    listed = cli("aliases", "list", "fraud", "-o", "json").json()
    assert [(a["name"], a["version"]) for a in listed["aliases"]] == [
        ("models/fraud/aliases/production", f"models/fraud/versions/{two}"),
        ("models/fraud/aliases/staging", f"models/fraud/versions/{two}"),
    ]
    deleted = cli("aliases", "delete", "fraud", "staging", "-o", "json")
    assert deleted.json() == {"deleted": "models/fraud/aliases/staging"}
    history = cli("aliases", "history", "fraud", "-o", "json").json()["alias_moves"]
    assert [(m["alias"].rsplit("/", 1)[-1], m["version"].rsplit("/", 1)[-1], m["method"])
            for m in history] == [
        ("production", str(one), "SetAlias"),
        ("staging", str(two), "SetAlias"),
        ("production", str(two), "SetAlias"),
        ("staging", "", "DeleteAlias"),
    ]  # fmt: skip
    table = cli("aliases", "history", "fraud", "staging")
    assert "(removed)" in table.stdout
    assert cli("aliases", "show", "fraud", "staging").status == 3
    assert cli("aliases", "set", "fraud", "production", "99").status == 3
