"""W1: web pages of a model with 100k versions (``--p5-versions``) load in under 200 ms.

The versions are inserted straight through the metadata store (as P5 does); the server runs
with ``--http-listen`` and each page is fetched over HTTP on loopback, the time measured from
the request to the last byte. Pages that are not served (404) are left out of the table.
"""

from __future__ import annotations

import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING

from . import procs, stats
from .results_model import Row, Target

if TYPE_CHECKING:
    from .scenarios import Context, Outcome

MODEL = "sweep"
TARGET_MS = 200.0
# What a person opens on a large model; every page reads keyset pages, never the whole model.
PAGES = {
    "model page": f"/models/{MODEL}",
    "version page": f"/models/{MODEL}/versions/latest",
    "compare 2 versions + trend of 200": f"/models/{MODEL}/compare?versions=1,latest&metric=x",
    "manage model": f"/models/{MODEL}/manage",
    "manage version": f"/models/{MODEL}/versions/latest/manage",
}


def start_web(work: Path) -> procs.Child:
    """The registry serving only its web interface (``--listen none``) on a free loopback
    port, on the SQLite database under ``work``; its address is ``http://HOST:PORT``."""
    argv = [
        sys.executable,
        "-m",
        "modelregistry_server",
        "--listen",
        "none",
        "--http-listen",
        "127.0.0.1:0",
        "--database-url",
        f"sqlite:///{work.absolute() / 'registry.db'}",
        "--blob-url",
        f"file://{work.absolute() / 'blobs'}",
        "--maintenance-interval-seconds",
        "0",
        "--log-level",
        "WARNING",
        "--workers",  # one process, as the other scenarios (P4w/P7w ask for more)
        "1",
    ]
    return procs.start_child("web", argv, "modelregistry web interface on", work / "web.log")


def _fetch(url: str) -> tuple[float, int]:
    start = time.perf_counter()
    try:
        with urllib.request.urlopen(url, timeout=30) as answer:
            answer.read()
            status = int(answer.status)
    except urllib.error.HTTPError as exc:
        exc.read()
        status = exc.code
    return (time.perf_counter() - start) * 1000, status


def w1_web_pages(ctx: Context) -> Outcome:
    """p50/p99 of each page over ``--p5-samples`` loads (after three warm-ups)."""
    from .scenarios import Outcome, seed_versions

    s = ctx.settings
    work = ctx.work / "w1"
    work.mkdir(parents=True, exist_ok=True)
    ctx.log(f"W1: inserting {s.p5_versions} versions through the metadata store")
    seed_seconds = seed_versions(
        f"sqlite:///{work.absolute() / 'registry.db'}", MODEL, s.p5_versions
    )
    child = start_web(work)
    base = child.address
    rows: list[Row] = []
    data: dict[str, object] = {"versions": s.p5_versions, "seed_seconds": round(seed_seconds, 1)}
    try:
        for label, path in PAGES.items():
            statuses = {_fetch(base + path)[1] for _ in range(3)}
            if statuses != {200}:
                ctx.log(f"W1: {path} answered {sorted(statuses)}: left out")
                data[label] = {"status": sorted(statuses)}
                continue
            samples = [_fetch(base + path)[0] for _ in range(s.p5_samples)]
            p50 = stats.percentile(samples, 50)
            rows.append(
                Row(
                    "W1",
                    f"{label} p50 ({s.p5_versions:,} versions)",
                    "ms",
                    round(p50, 1),
                    None,
                    "—",
                    None,
                    Target("max", TARGET_MS, f"≤ {TARGET_MS:g} ms"),
                    note=f"p99 {stats.percentile(samples, 99):.1f} ms",
                )
            )
            data[label] = {"path": path, "ms": stats.latency_summary(samples)}
    finally:
        child.stop()
    return Outcome(rows, data)
