"""Several registry server processes on one database and one blob store: replicas, for drills
and cross-replica tests. Each replica keeps its port across restarts, so a client given every
address (``target``) finds the live ones after a kill."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

from tests.support.postgres import free_port
from tests.support.server_process import ServerProcess


class ReplicaSet:
    """``count`` :class:`ServerProcess` replicas; logs go to ``log_dir/replica-N.log``."""

    def __init__(
        self,
        count: int,
        database_url: str,
        blob_url: str,
        log_dir: Path,
        *,
        extra_args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.ports = [free_port() for _ in range(count)]
        self.replicas = [
            ServerProcess(
                database_url,
                blob_url,
                log_dir / f"replica-{n}.log",
                extra_args=[*extra_args, "--listen", f"127.0.0.1:{port}"],
                env=env,
            )
            for n, port in enumerate(self.ports)
        ]
        self.kills = 0

    @property
    def addresses(self) -> list[str]:
        return [f"127.0.0.1:{port}" for port in self.ports]

    def target(self, first: int = 0) -> str:
        """A gRPC target naming every replica, starting with ``first`` (pick_first then
        prefers it and moves on to the next live one when it dies)."""
        order = self.addresses[first:] + self.addresses[:first]
        return "ipv4:" + ",".join(order)

    def start(self) -> Self:
        for replica in self.replicas:
            replica.start()
        return self

    def alive(self) -> list[int]:
        return [n for n, r in enumerate(self.replicas) if r.alive()]

    def kill(self, n: int) -> None:
        """SIGKILL replica ``n`` (no shutdown code runs)."""
        self.replicas[n].kill()
        self.kills += 1

    def kill_random(self, rng: random.Random, keep: int = 1) -> int | None:
        """Kill one live replica at random, leaving at least ``keep`` alive; its index."""
        alive = self.alive()
        if len(alive) <= keep:
            return None
        victim = rng.choice(alive)
        self.kill(victim)
        return victim

    def restart(self, n: int) -> None:
        """Start replica ``n`` again on its port (after a kill)."""
        self.replicas[n].start()

    def stop(self) -> None:
        for replica in self.replicas:
            replica.stop()

    def __enter__(self) -> Self:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
