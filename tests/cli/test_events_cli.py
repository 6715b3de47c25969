"""``events list`` and ``events watch``: the watch prints each event with its cursor and
continues exactly after ``--after CURSOR``."""

from __future__ import annotations

import json
import signal
import subprocess
import time

from modelregistry.client import RegistryClient
from tests.cli.conftest import SCRIPT, Cli


def test_events_list_filters_the_log(cli: Cli, client: RegistryClient) -> None:
    client.create_model("fraud")
    client.create_model("ads")
    listed = cli("events", "list", "--filter", 'resource = "models/fraud*"', "-o", "json")
    assert listed.status == 0, listed.stderr
    events = listed.json()["events"]
    assert [(e["method"], e["resource"], e["kind"]) for e in events] == [
        ("CreateModel", "models/fraud", "CHANGE")
    ]
    assert isinstance(events[0]["sequence"], int)
    newest = cli("events", "list", "--order-by", "sequence desc", "--limit", "1", "-o", "json")
    assert [e["resource"] for e in newest.json()["events"]] == ["models/ads"]
    table = cli("events", "list")
    assert table.stdout.splitlines()[0].split() == [
        "seq", "time", "kind", "principal", "method", "resource", "outcome",
    ]  # fmt: skip


def test_watch_prints_cursors_and_resumes_after_one(cli: Cli, client: RegistryClient) -> None:
    for name in ("a", "b", "c"):
        client.create_model(name)
    first = cli("events", "watch", "--after", "events/0", "--limit", "2", "-o", "json")
    assert first.status == 0, first.stderr
    lines = [json.loads(line) for line in first.stdout.splitlines()]
    assert [line["event"]["resource"] for line in lines] == ["models/a", "models/b"]
    assert [line["cursor"] for line in lines] == [
        lines[0]["event"]["name"],
        lines[1]["event"]["name"],
    ]
    cursor = lines[-1]["cursor"]

    # Continue from the cursor: the next event, no gap and no repeat; then a new one arrives.
    follow = subprocess.Popen(
        [str(SCRIPT), "events", "watch", "--after", cursor, "--limit", "2", "-o", "json"],
        env=cli.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        time.sleep(1.0)
        client.create_model("d")
        out, err = follow.communicate(timeout=60)
    finally:
        follow.kill()
    assert follow.returncode == 0, err
    resumed = [json.loads(line) for line in out.splitlines()]
    assert [r["event"]["resource"] for r in resumed] == ["models/c", "models/d"]

    # For people: one line per event starting with its cursor, and how to continue.
    people = cli("events", "watch", "--after", "events/0", "--limit", "1")
    assert people.stdout.split()[0] == lines[0]["cursor"]
    assert f"continue with: --after {lines[0]['cursor']}" in people.stderr


def test_watch_with_a_filter_only_prints_matching_events(cli: Cli, client: RegistryClient) -> None:
    client.create_model("a")
    client.create_model("b")
    model = client.get_model("a")
    model.description = "changed"
    client.update_model(model, update_mask=["description"])
    only = cli("events", "watch", "--after", "events/0", "--filter", 'method = "UpdateModel"',
               "--limit", "1", "-o", "yaml")  # fmt: skip
    assert only.status == 0, only.stderr
    import yaml

    docs = list(yaml.safe_load_all(only.stdout))
    assert [d["event"]["method"] for d in docs] == ["UpdateModel"]
    assert cli("events", "watch", "--after", "bogus", "--limit", "1").status == 2


def test_ctrl_c_ends_a_watch_with_130_and_says_where_to_continue(
    cli: Cli, client: RegistryClient
) -> None:
    client.create_model("a")
    watch = subprocess.Popen(
        [str(SCRIPT), "events", "watch", "--after", "events/0"],
        env=cli.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert watch.stdout is not None
        first = watch.stdout.readline()  # the event is there: the watch is running
        assert first.split()[0] == "events/1"
        watch.send_signal(signal.SIGINT)
        _, err = watch.communicate(timeout=30)
    finally:
        watch.kill()
    assert watch.returncode == 130, err
    assert "continue with: --after events/1" in err, err
    assert "Traceback" not in err, err
