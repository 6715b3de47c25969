"""Browser journeys of the compare page and the writes, in headless Chromium (the system
browser, driven by Playwright): compare two versions and see the chart with its data points,
move an alias as an owner, be refused as a viewer, reach the controls with the keyboard, fit
a phone's width. Every wait is bounded (the context's default timeout, 15 s)."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import pytest

from modelregistry.client import RegistryClient
from modelregistry_server.app import RegistryServer
from tests.web.conftest import WebClient, as_grpc

pytestmark = pytest.mark.browser
WAIT_MS = 10_000


def _seed(registry: RegistryClient) -> None:
    registry.create_model("fraud", description="Finds fraud", labels={"team": "risk"})
    for number, (auc, f1, lr) in enumerate(((0.81, 0.70, 0.1), (0.86, 0.74, 0.05)), 1):
        registry.create_version(
            "fraud", metrics={"auc": auc, "f1": f1}, parameters={"lr": lr, "depth": 4}
        )
        registry.upload_file("fraud", number, io.BytesIO(b"weights %d" % number))
        registry.seal_version("fraud", number)
    registry.set_alias("fraud", "production", 1)


def _sign_in(page: Any, web_url: str, token: str, target: str) -> None:
    page.goto(f"{web_url}{target}")
    page.get_by_label("Token or API key").fill(token)
    page.keyboard.press("Enter")
    page.wait_for_url(f"{web_url}{target}", timeout=WAIT_MS)


def _overflow(page: Any) -> int:
    return int(
        page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    )


def test_compare_two_versions_and_see_the_charts(
    registry: RegistryClient, web_url: str, page: Any
) -> None:
    _seed(registry)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on(
        "console",
        lambda m: (
            errors.append(m.text)
            if m.type == "error" and not m.location.get("url", "").endswith("/favicon.ico")
            else None
        ),
    )
    page.goto(f"{web_url}/models/fraud/compare?versions=production,latest")
    page.get_by_label("Versions", exact=True).fill("1,2")
    page.get_by_label("Versions", exact=True).press("Enter")
    page.wait_for_url("**/compare?versions=1%2C2*", timeout=WAIT_MS)
    chart = page.locator("#metrics-chart")
    chart.wait_for(state="visible", timeout=WAIT_MS)
    page.wait_for_function(
        "document.getElementById('metrics-chart').dataset.points === '4'", timeout=WAIT_MS
    )
    drawn = page.evaluate(
        "Chart.getChart(document.getElementById('metrics-chart')).data.datasets"
        ".map(d => [d.label, d.data])"
    )
    assert drawn == [["v1", [0.81, 0.7]], ["v2", [0.86, 0.74]]]
    box = chart.bounding_box()
    assert box is not None and box["width"] > 200 and box["height"] > 100
    trend = page.evaluate(
        "Chart.getChart(document.getElementById('trend-chart')).data.datasets[0].data"
    )
    assert trend == [0.81, 0.86]
    # The differing parameter is marked for the eye and in text.
    lr = page.locator("#parameters-table tr.differs")
    assert lr.count() == 1 and "differs" in lr.inner_text() and "lr" in lr.inner_text()
    # Another metric across versions, chosen with the form.
    page.get_by_label("Metric across versions").select_option("f1")
    page.get_by_role("button", name="Compare").click()
    page.wait_for_url("**metric=f1*", timeout=WAIT_MS)
    page.wait_for_function(
        "document.getElementById('trend-chart').dataset.points === '2'", timeout=WAIT_MS
    )
    assert page.get_by_role("heading", name="f1 across versions").is_visible()
    assert errors == []  # no CSP violation, no script error


def test_move_an_alias_as_an_owner_and_be_refused_as_a_viewer(
    registry: RegistryClient,
    web_server: RegistryServer,
    web_url: str,
    people: Callable[[str], WebClient],
    browser: Any,
) -> None:
    _seed(registry)
    people("nobody")  # authentication on from here
    with as_grpc(web_server, "alice") as alice:
        alice.set_model_policy("fraud", {"owner": ["user:alice"], "viewer": ["user:bob"]})
    owner = browser.new_context(viewport={"width": 1280, "height": 900})
    owner.set_default_timeout(WAIT_MS)
    try:
        page = owner.new_page()
        _sign_in(page, web_url, "alice", "/models/fraud/manage")
        page.get_by_label("Alias", exact=True).fill("production")
        page.get_by_label("Version", exact=True).fill("2")
        page.get_by_role("button", name="Move alias").click()
        page.wait_for_url("**/models/fraud/manage?done=alias_set", timeout=WAIT_MS)
        assert page.get_by_role("status").inner_text() == "The alias now points at the version."
        row = page.locator("table.aliases tr", has_text="production")
        assert "v2" in row.inner_text()
    finally:
        owner.close()
    with as_grpc(web_server, "alice") as alice:
        assert alice.get_alias("fraud", "production").version.endswith("/versions/2")

    viewer = browser.new_context(viewport={"width": 1280, "height": 900})
    viewer.set_default_timeout(WAIT_MS)
    try:
        page = viewer.new_page()
        _sign_in(page, web_url, "bob", "/models/fraud/manage")
        assert page.locator("#read-only").is_visible()
        assert page.get_by_role("button", name="Move alias").count() == 0
        assert page.locator("form[method=post][action^='/models/']").count() == 0
        # A forged form from the viewer's own page (the session's CSRF token) is refused.
        status = page.evaluate(
            """async () => {
                const body = new URLSearchParams({
                    csrf_token: document.querySelector('meta[name=csrf-token]').content,
                    alias: 'production', version: '1'});
                const answer = await fetch('/models/fraud/aliases', {method: 'POST', body});
                return answer.status;
            }"""
        )
        assert status == 403
    finally:
        viewer.close()
    with as_grpc(web_server, "alice") as alice:
        assert alice.get_alias("fraud", "production").version.endswith("/versions/2")


def test_the_keyboard_reaches_the_main_controls(
    registry: RegistryClient, web_url: str, page: Any
) -> None:
    _seed(registry)
    page.goto(f"{web_url}/models/fraud/manage")
    reached: list[str] = []
    for _ in range(40):
        page.keyboard.press("Tab")
        reached.append(
            page.evaluate(
                "(() => { const e = document.activeElement;"
                " return (e.id || e.textContent || '').trim(); })()"
            )
        )
    for control in ("description", "labels", "Save", "alias", "alias-version", "Move alias"):
        assert control in reached, (control, reached)
    # Enter on the focused button submits the form.
    page.locator("#alias").focus()
    page.keyboard.type("shadow")
    page.keyboard.press("Tab")
    page.keyboard.type("2")
    page.keyboard.press("Enter")
    page.wait_for_url("**done=alias_set", timeout=WAIT_MS)
    page.goto(f"{web_url}/models/fraud/compare?versions=1,2")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    page.keyboard.press("Enter")
    tabbed = []
    for _ in range(12):
        page.keyboard.press("Tab")
        tabbed.append(
            page.evaluate("document.activeElement.id || document.activeElement.textContent")
        )
    assert "versions" in tabbed and "metric" in tabbed and "Compare" in tabbed


@pytest.mark.parametrize(
    "path",
    [
        "/models/fraud/compare?versions=1,2",
        "/models/fraud/manage",
        "/models/fraud/versions/2/manage",
    ],
)
def test_pages_fit_a_phone(registry: RegistryClient, web_url: str, page: Any, path: str) -> None:
    _seed(registry)
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{web_url}{path}")
    page.locator("main h1").wait_for(timeout=WAIT_MS)
    assert _overflow(page) <= 0  # wide tables scroll inside their own box
