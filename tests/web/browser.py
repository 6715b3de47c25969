"""Headless Chromium for browser journeys: Playwright's Python package driving the system
browser (Debian's ``chromium``; ``.ci/run`` installs it when missing; Playwright's own
browser download is not used).

``browser`` is one Chromium per test session; ``page`` a fresh context (cookies) and page
per test. Without /usr/bin/chromium the browser tests are skipped, except in CI
(``MODELREGISTRY_REQUIRE_BROWSER=1``), where they fail.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path(os.environ.get("MODELREGISTRY_CHROMIUM", "/usr/bin/chromium"))


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        if os.environ.get("MODELREGISTRY_REQUIRE_BROWSER") == "1":
            pytest.fail(f"{CHROMIUM} is missing (apt-get install chromium)")
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=["--no-sandbox"], headless=True
        )
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A new browser context (no cookies) and page; phone-width tests set their viewport."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    tab = context.new_page()
    try:
        yield tab
    finally:
        context.close()
