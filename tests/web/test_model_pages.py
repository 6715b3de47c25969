"""``/models/{model}`` and its tabs over HTTP: the versions table (sorted by any metric and by
time, filtered, keyset pages, stage, aliases, state, size), aliases and their history, the
Activity tab; unknown models and bad input get clear pages; roles hide models as the API does."""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from modelregistry.client import RegistryClient
from modelregistry_server.app import RegistryServer
from tests.web.conftest import WebClient, as_grpc


def _seed(registry: RegistryClient) -> None:
    """``fraud``: v1 (auc .91, READY, production, PRODUCTION), v2 (auc .97, READY, staging),
    v3 (auc .85, READY, expired), v4 (DRAFT, no metrics), v5 (deleted)."""
    registry.create_model("fraud", display_name="Fraud detector", labels={"team": "risk"})
    for number, auc in ((1, 0.91), (2, 0.97), (3, 0.85)):
        registry.create_version("fraud", metrics={"auc": auc, "loss": 1 - auc})
        registry.upload_file("fraud", number, io.BytesIO(b"x" * (1000 * number)))
        registry.seal_version("fraud", number)
    registry.create_version("fraud")
    registry.create_version("fraud")
    registry.delete_version("fraud", 5)
    registry.transition_stage("fraud", 1, "PRODUCTION", comment="beats the baseline")
    registry.set_alias("fraud", "production", 1)
    registry.set_alias("fraud", "staging", 2)
    registry.set_alias("fraud", "staging", 1)
    registry.set_alias("fraud", "staging", 2)
    registry.set_expire_time("fraud", 3, datetime.now(UTC) - timedelta(seconds=1))


def _versions(html: str) -> list[int]:
    return [
        int(n) for n in re.findall(r'<td><a href="/models/fraud/versions/(\d+)">v\d+</a>', html)
    ]


def test_the_versions_table(registry: RegistryClient, web: WebClient) -> None:
    _seed(registry)
    page = web.get("/models/fraud")
    assert page.status_code == 200
    text = page.text
    assert "Fraud detector" in text and "team=risk" in text
    assert _versions(text) == [4, 3, 2, 1]  # newest first; deleted ones hidden
    row = {n: text.split(f'href="/models/fraud/versions/{n}">v{n}</a>')[1].split("</tr>")[0]
           for n in (1, 2, 3, 4)}  # fmt: skip
    assert "PRODUCTION" in row[1] and '<span class="label">production</span>' in row[1]
    assert '<span class="label">staging</span>' in row[2]
    assert "READY" in row[3] and "expired" in row[3]
    assert "DRAFT" in row[4] and "0 files" in row[4]
    assert "2.9 KiB" in row[3] and "1 file<" in row[3]
    assert ">0.91<" in row[1] and ">0.97<" in row[2]  # metric columns
    shown = web.get("/models/fraud", params={"show_deleted": "1"}).text
    assert _versions(shown) == [5, 4, 3, 2, 1] and "deleted" in shown


def test_sorted_by_a_metric_and_by_time_from_the_column_headers(
    registry: RegistryClient, web: WebClient
) -> None:
    _seed(registry)
    page = web.get("/models/fraud").text
    auc = re.search(r'aria-sort="none"><a href="([^"]+)">auc</a>', page)
    assert auc is not None
    by_auc = web.get(auc.group(1).replace("&amp;", "&"))
    assert _versions(by_auc.text) == [2, 1, 3, 4]  # best first, missing metric last
    assert 'aria-sort="descending"><a href="' in by_auc.text
    ascending = re.search(r'aria-sort="descending"><a href="([^"]+)">auc</a>', by_auc.text)
    assert ascending is not None
    assert _versions(web.get(ascending.group(1).replace("&amp;", "&")).text)[:3] == [3, 1, 2]
    oldest = web.get("/models/fraud", params={"order_by": "create_time"})
    assert _versions(oldest.text) == [1, 2, 3, 4]
    filtered = web.get("/models/fraud", params={"filter": "metrics.auc > 0.9"})
    assert _versions(filtered.text) == [2, 1]


def test_versions_come_in_keyset_pages(registry: RegistryClient, web: WebClient) -> None:
    registry.create_model("fraud")
    for auc in (0.5, 0.9, 0.7, 0.8, 0.6):
        registry.create_version("fraud", metrics={"auc": auc})
    seen: list[int] = []
    path = "/models/fraud?page_size=2&order_by=metrics.auc+desc"
    for _ in range(5):
        page = web.get(path)
        assert page.status_code == 200
        seen += _versions(page.text)
        found = re.search(r'<a href="([^"]+)" rel="next">', page.text)
        if found is None:
            break
        path = found.group(1).replace("&amp;", "&")
    assert seen == [2, 4, 3, 5, 1]


def test_unknown_models_and_bad_input_get_clear_pages(
    registry: RegistryClient, web: WebClient
) -> None:
    _seed(registry)
    for path in ("/models/nope", "/models/nope/aliases", "/models/nope/activity"):
        missing = web.get(path)
        assert missing.status_code == 404, path
        assert "Not found" in missing.text and "nope" in missing.text
    for params, words in (
        ({"filter": "metrics.auc >"}, "filter"),
        ({"order_by": "colour desc"}, "order_by"),
        ({"page_token": "forged"}, "page_token"),
    ):
        bad = web.get("/models/fraud", params=params)
        assert bad.status_code == 400, params
        assert words in bad.text and "Traceback" not in bad.text
    assert web.get("/models/Not_An_Id").status_code == 400
    assert web.get("/models/fraud/activity", params={"only": "x"}).status_code == 400


def test_aliases_and_their_history(registry: RegistryClient, web: WebClient) -> None:
    _seed(registry)
    page = web.get("/models/fraud/aliases")
    assert page.status_code == 200
    current = page.text.split("<h2>History</h2>")[0]
    assert re.findall(
        r"<code>(\w+)</code></td>\s*<td><a href=\"/models/fraud/versions/(\d)\"", current
    ) == [
        ("production", "1"),
        ("staging", "2"),
    ]
    history = page.text.split("<h2>History</h2>")[1]
    moves = re.findall(
        r"<code>(\w+)</code></td>\s*<td><a href=\"/models/fraud/versions/(\d)\"", history
    )
    assert moves == [("production", "1"), ("staging", "2"), ("staging", "1"), ("staging", "2")]
    assert "anonymous" in history and "SetAlias" in history


def test_the_activity_tab_lists_the_model_s_events(
    registry: RegistryClient, web: WebClient
) -> None:
    _seed(registry)
    registry.create_model("fraud-other")  # a model whose id starts the same: not shown
    page = web.get("/models/fraud/activity")
    assert page.status_code == 200
    methods = re.findall(r'<td class="method">(\w+)', page.text)
    assert methods[0] == "UpdateModelVersion" and methods[-1] == "CreateModel"  # newest first
    assert "fraud-other" not in page.text
    stages = web.get("/models/fraud/activity", params={"only": "stages"}).text
    assert "TransitionModelVersionStage" in stages and "SetAlias" not in stages
    assert "beats the baseline" in stages or "PRODUCTION" in stages


def test_a_person_without_a_role_is_told_the_model_does_not_exist(
    registry: RegistryClient, web_server: RegistryServer, people: Callable[[str], WebClient]
) -> None:
    _seed(registry)
    alice = people("alice")  # authentication on from here
    with as_grpc(web_server, "alice") as owner:
        owner.set_model_policy("fraud", {"owner": ["user:alice"], "viewer": ["user:vera"]})
    bob, vera = people("bob"), people("vera")
    for path in ("/models/fraud", "/models/fraud/aliases", "/models/fraud/activity"):
        assert bob.get(path).status_code == 404, path
        assert vera.get(path).status_code == 200, path
        assert alice.get(path).status_code == 200, path
    assert 'href="/models/fraud"' not in bob.get("/models").text
    assert people("nobody").get("/models/fraud").status_code == 403  # no registry.read


def test_refusals_are_recorded_as_access_events_like_grpc_calls(
    registry: RegistryClient, web_server: RegistryServer, people: Callable[[str], WebClient]
) -> None:
    """A policy's NOT_FOUND and a missing scope are access events, naming the page's RPC and
    the resource its URL names."""
    _seed(registry)
    people("alice")
    with as_grpc(web_server, "alice") as owner:
        owner.set_model_policy("fraud", {"owner": ["user:alice"]})
    assert people("bob").get("/models/fraud/versions/1").status_code == 404
    assert people("nobody").get("/models/fraud").status_code == 403
    with as_grpc(web_server, "root") as admin:
        events = list(admin.list_events(filter="kind = ACCESS"))
    seen = {(e.principal, e.method, e.resource, e.outcome.split()[0]) for e in events}
    assert ("user:bob", "GetModelVersion", "models/fraud/versions/1", "NOT_FOUND") in seen
    assert ("user:nobody", "ListModelVersions", "models/fraud", "PERMISSION_DENIED") in seen
