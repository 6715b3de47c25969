"""Commit -> receipt latency of WatchEvents across replicas: two in-process servers on one
throw-away PostgreSQL database; a watch on B, creates through A one at a time; prints the
latency of each event's arrival at B after A's call returned (the commit precedes the return).

    .venv/bin/python scripts/watch_latency.py [--events 40] [--poll 1.0] [--mode notify|poll]

``notify`` is the shipped behaviour (LISTEN/NOTIFY wake-ups); ``poll`` replaces the PostgreSQL
wake-ups with the local-only ones (what every replica had before: B finds A's commits by its
``--watch-poll-seconds`` poll), for the before/after comparison in docs/design.md.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from modelregistry.client import RegistryClient
from modelregistry_server.config import Config
from modelregistry_server.storage.metadata import events, wakeups
from tests.support.postgres import running_cluster
from tests.support.servers import serving


def measure(url: str, blobs: Path, count: int, poll: float) -> list[float]:
    """Seconds from A's create returning to B's watch yielding it, per event."""
    config = Config(
        listen="127.0.0.1:0",
        database_url=url,
        blob_url=f"file://{blobs}",
        maintenance_interval_seconds=0,
        shutdown_grace_seconds=0,
        watch_poll_seconds=poll,
        webhook_workers=0,
    )
    with (
        serving(config) as a,
        serving(config) as b,
        RegistryClient(a.address) as on_a,
        RegistryClient(b.address) as on_b,
    ):
        watch = iter(on_b.watch_events(after_cursor="events/0"))
        on_a.create_model("warm-up")
        next(watch)
        latencies = []
        for n in range(count):
            on_a.create_model(f"m{n}")
            returned = time.monotonic()
            event = next(watch)
            latencies.append(time.monotonic() - returned)
            assert event.resource == f"models/m{n}", event.resource
        on_a.create_model("done")  # ends B's wait, so the close is prompt
        close: Any = getattr(watch, "close", None)
        if close is not None:
            close()
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=40)
    parser.add_argument("--poll", type=float, default=1.0, help="--watch-poll-seconds")
    parser.add_argument("--mode", choices=["notify", "poll"], default="notify")
    args = parser.parse_args()
    if args.mode == "poll":
        module: Any = events
        module.PostgresWakeups = _LocalOnly
    with running_cluster() as cluster, tempfile.TemporaryDirectory() as tmp:
        got = measure(cluster.create_database(), Path(tmp), args.events, args.poll)
    ms = sorted(1000 * s for s in got)
    print(
        f"{args.mode} (poll {args.poll:g} s), {len(ms)} events: "
        f"median {statistics.median(ms):.1f} ms, p90 {ms[int(0.9 * (len(ms) - 1))]:.1f} ms, "
        f"max {ms[-1]:.1f} ms"
    )


class _LocalOnly(wakeups.LocalWakeups):
    """The wake-ups before LISTEN/NOTIFY: this process's commits only."""

    @classmethod
    def for_database(cls, database: Any) -> _LocalOnly:
        return cls()


if __name__ == "__main__":
    main()
