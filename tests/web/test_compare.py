"""``/models/{model}/compare`` over HTTP: versions side by side with differences marked,
metrics as a table and as chart data, one metric across the model's versions, bad input and
unknown versions answered with a clear page."""

from __future__ import annotations

import html
import json
import re
from collections.abc import Callable

from modelregistry.client import RegistryClient
from modelregistry_server.web import compare
from tests.web.conftest import WebClient


def _seed(registry: RegistryClient) -> None:
    registry.create_model("fraud")
    registry.create_version(
        "fraud",
        parameters={"lr": 0.1, "depth": 4},
        metrics={"auc": 0.81, "f1": 0.70},
        labels={"team": "risk"},
        author="alice",
    )
    registry.create_version(
        "fraud",
        parameters={"lr": 0.05, "depth": 4, "dropout": 0.2},
        metrics={"auc": 0.86, "f1": 0.70},
        labels={"team": "risk"},
        author="alice",
    )
    registry.create_version("fraud", metrics={"auc": 0.84}, author="bob")
    registry.seal_version("fraud", 2)
    registry.set_alias("fraud", "production", 2)


def _chart(text: str) -> dict[str, object]:
    found = re.search(r'<script type="application/json" id="compare-data">(.*?)</script>', text)
    assert found is not None
    data = json.loads(html.unescape(found.group(1)))
    assert isinstance(data, dict)
    return data


def _row(text: str, table: str, name: str) -> str:
    body = text[text.index(f'id="{table}"') :]
    body = body[: body.index("</table>")]
    for row in re.findall(r"<tr.*?</tr>", body, re.S):
        if re.search(rf"</span></mark> {re.escape(name)}</th>|>{re.escape(name)}</th>", row):
            return str(row)
    raise AssertionError(f"no row {name} in {table}")


def test_compares_parameters_metadata_and_metrics_with_differences_marked(
    registry: RegistryClient, web: WebClient
) -> None:
    _seed(registry)
    page = web.get("/models/fraud/compare", params={"versions": "1,production"})
    assert page.status_code == 200, page.text
    text = page.text
    assert "Compare fraud: v1, v2" in text
    lr = _row(text, "parameters-table", "lr")
    depth = _row(text, "parameters-table", "depth")
    dropout = _row(text, "parameters-table", "dropout")
    assert 'class="differs"' in lr and "<mark>0.1</mark>" in lr and "<mark>0.05</mark>" in lr
    assert 'class="differs"' not in depth and "<mark>" not in depth
    assert 'class="differs"' in dropout  # present in one version only
    assert "differs:" in lr  # the marker is read out, not only coloured
    assert 'class="differs"' not in _row(text, "metadata-table", "author")
    assert 'class="differs"' in _row(text, "metadata-table", "state")
    assert 'class="differs"' in _row(text, "metrics-table", "auc")
    assert 'class="differs"' not in _row(text, "metrics-table", "f1")
    assert 'id="legend"' in text and "marks a row whose values differ" in text
    assert '<canvas id="metrics-chart"' in text and '<canvas id="trend-chart"' in text
    assert '<script src="/static/chart.umd.min.js"></script>' in text
    assert '<script src="/static/compare.js"></script>' in text
    assert "<script>" not in text  # no inline script: the CSP allows none
    data = _chart(text)
    assert data["metrics"] == {
        "labels": ["auc", "f1"],
        "datasets": [{"label": "v1", "data": [0.81, 0.7]}, {"label": "v2", "data": [0.86, 0.7]}],
    }
    # The first metric across every version of the model (3 has it too, though not compared).
    assert data["trend"] == {
        "metric": "auc",
        "labels": ["v1", "v2", "v3"],
        "data": [0.81, 0.86, 0.84],
    }
    chosen = _chart(web.get("/models/fraud/compare?versions=1,2&metric=f1").text)
    assert chosen["trend"] == {"metric": "f1", "labels": ["v1", "v2"], "data": [0.7, 0.7]}


def test_latest_and_three_versions(registry: RegistryClient, web: WebClient) -> None:
    _seed(registry)
    page = web.get("/models/fraud/compare?versions=1, 2 ,latest")
    assert page.status_code == 200
    # latest is the newest READY version: 2 (3 is a DRAFT), named twice: compared once.
    assert "Compare fraud: v1, v2</h1>" in page.text
    boxes = web.get("/models/fraud/compare?versions=2&versions=1")
    assert "Compare fraud: v2, v1</h1>" in boxes.text  # check boxes send one each
    three = web.get("/models/fraud/compare?versions=3,1,2")
    assert "Compare fraud: v3, v1, v2</h1>" in three.text


def test_bad_input_and_unknown_versions_get_clear_pages(
    registry: RegistryClient, web: WebClient
) -> None:
    _seed(registry)
    cases = {
        "/models/fraud/compare": 400,
        "/models/fraud/compare?versions=1": 400,
        "/models/fraud/compare?versions=1,1": 400,
        "/models/fraud/compare?versions=1,x_y": 400,
        "/models/fraud/compare?versions=1,0": 400,
        "/models/fraud/compare?versions=" + ",".join(str(n) for n in range(1, 13)): 400,
        "/models/fraud/compare?versions=1,2&metric=nope": 400,
        "/models/fraud/compare?versions=1,9": 404,
        "/models/fraud/compare?versions=1,staging": 404,
        "/models/ghost/compare?versions=1,2": 404,
        "/models/Bad_Id/compare?versions=1,2": 400,
    }
    for path, status in cases.items():
        page = web.get(path)
        assert page.status_code == status, (path, page.text)
        assert 'class="error-message" role="alert"' in page.text, path
        assert "Traceback" not in page.text


def test_the_trend_reads_keyset_pages_and_is_bounded(
    registry: RegistryClient, web: WebClient, monkeypatch: object
) -> None:
    import pytest

    assert isinstance(monkeypatch, pytest.MonkeyPatch)
    monkeypatch.setattr(compare, "TREND_LIMIT", 5)
    monkeypatch.setattr(compare, "TREND_PAGE", 2)
    registry.create_model("many")
    for number in range(1, 9):
        registry.create_version("many", metrics={"loss": 1.0 / number})
    data = _chart(web.get("/models/many/compare?versions=1,2").text)
    trend = data["trend"]
    assert isinstance(trend, dict)
    assert trend["labels"] == ["v4", "v5", "v6", "v7", "v8"]  # the newest five, oldest first


def test_a_person_without_a_role_is_told_the_model_does_not_exist(
    registry: RegistryClient, web_server: object, people: Callable[[str], WebClient]
) -> None:
    from modelregistry_server.app import RegistryServer
    from tests.web.conftest import as_grpc

    assert isinstance(web_server, RegistryServer)
    _seed(registry)
    alice = people("alice")
    with as_grpc(web_server, "alice") as client:
        client.set_model_policy("fraud", {"owner": ["user:alice"]})
    assert alice.get("/models/fraud/compare?versions=1,2").status_code == 200
    assert people("bob").get("/models/fraud/compare?versions=1,2").status_code == 404
    assert people("nobody").get("/models/fraud/compare?versions=1,2").status_code == 403


def test_the_chart_library_and_its_licence_are_served_from_the_package(web: WebClient) -> None:
    library = web.get("/static/chart.umd.min.js")
    assert library.status_code == 200 and "Chart.js v4.6.1" in library.text[:200]
    assert "MIT License" in web.get("/static/chart.js-LICENSE.md").text
    script = web.get("/static/compare.js")
    assert script.status_code == 200 and "compare-data" in script.text
