"""Scheduled maintenance runs in exactly one of the servers sharing a database (the workers of
``--workers N``, or replicas): the holder of the ``maintenance`` lease. When it stops, it gives
the lease up and another server's schedule takes over."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

from modelregistry_server.app import RegistryServer, build_server
from modelregistry_server.config import Config

INTERVAL_S = 0.1
WAIT_S = 15.0


def _counting(server: RegistryServer, runs: list[str], name: str) -> None:
    original = server.run_maintenance

    def run() -> Any:
        runs.append(name)
        return original()

    server.run_maintenance = run  # type: ignore[method-assign]


def test_one_server_runs_the_schedule_and_another_takes_over(server_config: Config) -> None:
    config = replace(
        server_config, maintenance_interval_seconds=INTERVAL_S, maintenance_lease_seconds=3
    )
    runs: list[str] = []
    servers: dict[str, RegistryServer] = {}
    try:
        for name in ("a", "b"):
            servers[name] = build_server(config)
            _counting(servers[name], runs, name)
            servers[name].start()
        deadline = time.monotonic() + WAIT_S
        while len(runs) < 10:
            assert time.monotonic() < deadline, runs
            time.sleep(INTERVAL_S)
        assert len(set(runs)) == 1, runs  # the lease holder ran every one
        holder = runs[0]
        other = "b" if holder == "a" else "a"
        lease = servers[other].maintenance_lease
        assert lease is not None and not lease.held()
        servers.pop(holder).stop(0)  # gives the lease up as it stops
        # Taken over at the other's next attempt (a third of the lease), not after expiry.
        deadline = time.monotonic() + 3
        while other not in runs:
            assert time.monotonic() < deadline, runs
            time.sleep(INTERVAL_S)
    finally:
        for server in servers.values():
            server.stop(0)
