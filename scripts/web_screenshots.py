"""Screenshots of the web interface for the README: seeds a throw-away registry (SQLite and
blobs in a temporary directory, loopback ports chosen by the system), opens its pages in
headless Chromium (Playwright with the system browser) and writes 1280x800 PNGs.

    .venv/bin/python scripts/web_screenshots.py [--out docs/screenshots] [--chromium PATH]

A page that answers anything but 200 is skipped (and named on stderr).
"""

from __future__ import annotations

import argparse
import io
import random
import sys
import tempfile
from pathlib import Path

from modelregistry.client import RegistryClient
from modelregistry_server.app import build_server
from modelregistry_server.config import Config

MODEL = "fraud-detector"
PAGES = {
    "models.png": "/models",
    "model.png": f"/models/{MODEL}",
    "version.png": f"/models/{MODEL}/versions/production",
    "compare.png": f"/models/{MODEL}/compare?versions=9,production,latest&metric=auc",
    "compare-chart.png": f"/models/{MODEL}/compare?versions=9,production,latest&metric=auc"
    "#metrics-heading",
    "manage.png": f"/models/{MODEL}/manage",
}
VIEWPORT = {"width": 1280, "height": 800}
WAIT_MS = 15_000


def seed(client: RegistryClient) -> None:
    """A few models; ``fraud-detector`` with twelve versions, metrics, aliases and files."""
    rng = random.Random(13)
    client.create_model(
        MODEL,
        display_name="Fraud detector",
        description="Scores card transactions for fraud.",
        labels={"team": "risk", "tier": "critical"},
    )
    auc = 0.78
    for number in range(1, 13):
        auc = min(0.97, auc + rng.uniform(-0.01, 0.02))
        client.create_version(
            MODEL,
            description=f"Weekly retrain {number}",
            author=rng.choice(["alice", "bob"]),
            parameters={
                "learning_rate": rng.choice([0.1, 0.05, 0.02]),
                "max_depth": rng.choice([6, 8]),
                "n_estimators": 200 + 50 * (number % 3),
            },
            metrics={
                "auc": round(auc, 4),
                "f1": round(auc - 0.12 + rng.uniform(-0.01, 0.01), 4),
                "recall": round(auc - 0.08 + rng.uniform(-0.02, 0.02), 4),
            },
            labels={"dataset": f"2026-w{30 + number}"},
            source=("https://git.example.com/risk/fraud", f"{rng.getrandbits(40):010x}", ""),
        )
        client.upload_file(MODEL, number, io.BytesIO(b"model weights %d\n" % number * 64))
        if number < 12:
            client.seal_version(MODEL, number)
    client.set_alias(MODEL, "production", 10)
    client.set_alias(MODEL, "staging", 11)
    client.transition_stage(MODEL, 10, "PRODUCTION", comment="Beats v8 on recall")
    client.transition_stage(MODEL, 11, "STAGING", comment="Shadow traffic this week")
    for model_id, team in (("churn", "growth"), ("ads-ranker", "ads"), ("eta-estimator", "maps")):
        client.create_model(model_id, labels={"team": team})
        client.create_version(model_id, metrics={"auc": round(rng.uniform(0.7, 0.9), 3)})
        client.upload_file(model_id, 1, io.BytesIO(b"weights"))
        client.seal_version(model_id, 1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/screenshots"))
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="mr-screens-") as work:
        config = Config(
            listen="127.0.0.1:0",
            http_listen="127.0.0.1:0",
            database_url=f"sqlite:///{work}/registry.db",
            blob_url=f"file://{work}/blobs",
            maintenance_interval_seconds=0,
            shutdown_grace_seconds=0,
        )
        server = build_server(config)
        server.start()
        try:
            with RegistryClient(server.address, timeout=30) as client:
                seed(client)
            base = f"http://{server.http_address}"
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(
                    executable_path=args.chromium, args=["--no-sandbox"], headless=True
                )
                try:
                    context = browser.new_context(viewport=VIEWPORT, reduced_motion="reduce")
                    context.set_default_timeout(WAIT_MS)
                    page = context.new_page()
                    for name, target_path in PAGES.items():
                        path, _, anchor = target_path.partition("#")
                        answer = page.goto(base + path)
                        if answer is None or answer.status != 200:
                            status = answer.status if answer is not None else "no answer"
                            print(f"skipped {path}: {status}", file=sys.stderr)
                            continue
                        page.wait_for_load_state("networkidle", timeout=WAIT_MS)
                        if anchor:  # start the shot at this element
                            page.evaluate(f"document.getElementById('{anchor}').scrollIntoView()")
                            page.wait_for_timeout(300)
                        target = args.out / name
                        page.screenshot(path=str(target))
                        print(f"{target} {target.stat().st_size // 1024} KiB")
                finally:
                    browser.close()
        finally:
            server.stop(0)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
