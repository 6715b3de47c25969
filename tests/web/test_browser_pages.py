"""Browser journey through the read pages: open a model from the list, sort its versions by
a metric, open a version, follow its lineage, download a file and check its bytes."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Any

import pytest

from modelregistry.client import RegistryClient

pytestmark = pytest.mark.browser
WEIGHTS = b"onnx weights " * 5000


def test_open_a_model_sort_by_a_metric_and_download(
    registry: RegistryClient, web_url: str, page: Any, tmp_path: Path
) -> None:
    registry.create_model("features")
    registry.create_version("features")
    registry.seal_version("features", 1)
    registry.create_model("fraud", display_name="Fraud detector")
    for auc in (0.91, 0.97, 0.85):
        registry.create_version(
            "fraud", metrics={"auc": auc}, produced_by=["models/features/versions/1"]
        )
    registry.upload_file("fraud", 2, io.BytesIO(WEIGHTS), file_id="model.onnx")
    registry.seal_version("fraud", 2)

    page.goto(f"{web_url}/models")
    page.get_by_role("link", name="fraud", exact=True).click()
    page.wait_for_url(f"{web_url}/models/fraud")
    assert page.get_by_role("heading", level=1).inner_text().startswith("Fraud detector")

    page.get_by_role("link", name="auc").click()
    page.wait_for_url("**/models/fraud?order_by=metrics.auc+desc")
    first = page.locator("table.versions tbody tr").first
    assert first.locator("td").first.inner_text() == "v2"
    assert page.locator("th[aria-sort=descending]").inner_text().startswith("auc")

    first.get_by_role("link", name="v2").click()
    page.wait_for_url(f"{web_url}/models/fraud/versions/2")
    with page.expect_download() as caught:
        page.get_by_role("link", name="model.onnx").click()
    saved = tmp_path / "model.onnx"
    caught.value.save_as(saved)
    assert hashlib.sha256(saved.read_bytes()).hexdigest() == hashlib.sha256(WEIGHTS).hexdigest()
    assert caught.value.suggested_filename == "model.onnx"

    page.get_by_role("link", name="features v1").click()
    page.wait_for_url(f"{web_url}/models/features/versions/1")
    downstream = page.locator("section[aria-labelledby=downstream-h]")
    assert downstream.get_by_role("link").count() == 3  # fraud v1, v2, v3
