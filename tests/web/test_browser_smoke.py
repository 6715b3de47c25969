"""Browser journeys in headless Chromium (the system browser, driven by Playwright): the
smoke journey of the foundation; later journeys go beside it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from modelregistry.client import RegistryClient
from tests.web.conftest import WebClient

pytestmark = pytest.mark.browser


def test_find_a_model_with_the_keyboard_and_sign_in(
    registry: RegistryClient,
    web_url: str,
    people: Callable[[str], WebClient],
    page: Any,
) -> None:
    registry.create_model("fraud-detector", display_name="Fraud", labels={"team": "risk"})
    registry.create_model("churn", labels={"team": "growth"})
    people("nobody")  # authentication on from here

    page.goto(f"{web_url}/models?q=fraud")
    assert page.url.startswith(f"{web_url}/sign-in?next=")
    page.get_by_label("Token or API key").fill("vera")
    page.keyboard.press("Enter")
    page.wait_for_url(f"{web_url}/models?q=fraud")
    assert page.get_by_role("link", name="fraud-detector").is_visible()
    assert page.get_by_text("Signed in as").is_visible()

    # The filter field is reachable by label, takes the API's language, and keeps it.
    page.goto(f"{web_url}/models")
    page.get_by_label("Filter", exact=True).fill('labels.team = "growth"')
    page.get_by_label("Filter", exact=True).press("Enter")
    page.wait_for_url("**/models?*filter=*")
    rows = page.locator("table.models tbody tr")
    assert rows.count() == 1 and "churn" in rows.first.inner_text()

    # A bad filter gets a readable page, not a traceback.
    page.get_by_label("Filter", exact=True).fill("colour = red")
    page.get_by_label("Filter", exact=True).press("Enter")
    assert page.get_by_role("alert").inner_text().startswith("filter:")

    # Keyboard focus is visible: the skip link comes first and shows when focused.
    page.goto(f"{web_url}/models")
    page.keyboard.press("Tab")
    focused = page.evaluate("document.activeElement.textContent")
    assert focused == "Skip to content"
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline == "solid"

    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(f"{web_url}/sign-in")


def test_the_models_list_fits_a_phone(registry: RegistryClient, web_url: str, page: Any) -> None:
    registry.create_model("a-model-with-a-rather-long-identifier", labels={"team": "risk"})
    page.set_viewport_size({"width": 360, "height": 740})
    page.goto(f"{web_url}/models")
    overflow = page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0  # wide tables scroll inside their own box
    assert page.get_by_label("Filter", exact=True).is_visible()
