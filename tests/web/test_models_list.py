"""``/`` and ``/models`` over HTTP: what the list shows, filtering with the API's language,
keyset pages, bad input answered with a clear 400 page, who sees what."""

from __future__ import annotations

import io
import re
from collections.abc import Callable

from modelregistry.client import RegistryClient
from tests.web.conftest import WebClient


def _seed(registry: RegistryClient) -> None:
    registry.create_model("fraud", display_name="Fraud <script>", labels={"team": "risk"})
    for number in (1, 2):
        registry.create_version("fraud")
        registry.upload_file("fraud", number, io.BytesIO(b"weights %d" % number))
        registry.seal_version("fraud", number)
    registry.create_version("fraud")  # 3 stays DRAFT
    registry.set_alias("fraud", "production", 1)
    registry.create_model("churn", labels={"team": "growth"})
    registry.create_model("ads")


def _rows(html: str) -> list[str]:
    return re.findall(r'<td><a href="/models/([a-z0-9-]+)">', html)


def test_lists_models_with_labels_latest_and_production(
    registry: RegistryClient, web: WebClient
) -> None:
    _seed(registry)
    for path in ("/", "/models"):
        page = web.get(path)
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert _rows(page.text) == ["ads", "churn", "fraud"]
    text = web.get("/models").text
    assert "Fraud &lt;script&gt;" in text and "<script>" not in text  # autoescaped
    assert '<span class="label">team=risk</span>' in text
    fraud = text[text.index('href="/models/fraud"') :]
    latest, production = re.findall(r'href="/models/fraud/versions/(\d+)"', fraud)[:2]
    assert (latest, production) == ("3", "1")  # the newest version (latest_version_number)
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in text


def test_filters_with_the_api_filter_language_and_searches_ids(
    registry: RegistryClient, web: WebClient
) -> None:
    _seed(registry)
    assert _rows(web.get("/models", params={"filter": 'labels.team = "risk"'}).text) == ["fraud"]
    assert _rows(web.get("/models", params={"filter": "labels.team:*"}).text) == [
        "churn",
        "fraud",
    ]
    assert _rows(web.get("/models", params={"q": "ch"}).text) == ["churn"]
    both = {"q": "f", "filter": 'labels.team = "growth"'}
    page = web.get("/models", params=both)
    assert _rows(page.text) == [] and "No models match" in page.text
    assert 'value="labels.team = &#34;growth&#34;"' in page.text  # the filter is kept


def test_a_bad_filter_is_a_400_page_naming_the_problem(
    registry: RegistryClient, web: WebClient
) -> None:
    _seed(registry)
    for params, words in (
        ({"filter": "colour = red"}, "unknown field 'colour'"),
        ({"filter": "labels.team = "}, "filter"),
        ({"q": "Not An Id"}, "q: searches model ids"),
        ({"page_size": "0"}, "page_size: must be a whole number"),
        ({"page_token": "forged"}, "page"),
    ):
        page = web.get("/models", params=params)
        assert page.status_code == 400, (params, page.text)
        assert "Bad request" in page.text
        assert words in page.text.replace("&#39;", "'"), (params, page.text)
        assert "Traceback" not in page.text


def test_keyset_pages_follow_the_next_link(registry: RegistryClient, web: WebClient) -> None:
    for name in ("m-a", "m-b", "m-c", "m-d", "m-e"):
        registry.create_model(name)
    seen: list[str] = []
    path = "/models?page_size=2&q=m-"
    for _ in range(5):
        page = web.get(path)
        assert page.status_code == 200
        seen += _rows(page.text)
        found = re.search(r'<a href="([^"]+)" rel="next">', page.text)
        if found is None:
            break
        path = found.group(1).replace("&amp;", "&")
        assert "page_size=2" in path and "q=m-" in path
    assert seen == ["m-a", "m-b", "m-c", "m-d", "m-e"]


def test_deleted_models_show_only_when_asked(registry: RegistryClient, web: WebClient) -> None:
    registry.create_model("gone")
    registry.create_model("kept")
    registry.delete_model("gone")
    assert _rows(web.get("/models").text) == ["kept"]
    page = web.get("/models", params={"show_deleted": "1"})
    assert _rows(page.text) == ["gone", "kept"]
    assert 'class="deleted"' in page.text


def test_each_person_sees_their_tenant_and_needs_the_read_scope(
    registry: RegistryClient, people: Callable[[str], WebClient]
) -> None:
    _seed(registry)
    assert _rows(people("vera").get("/models").text) == ["ads", "churn", "fraud"]
    other = people("other").get("/models")
    assert other.status_code == 200 and _rows(other.text) == []
    refused = people("nobody").get("/models")
    assert refused.status_code == 403
    assert "registry.read" in refused.text
