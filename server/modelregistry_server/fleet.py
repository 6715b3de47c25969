"""What the worker processes of one supervisor (``--workers N``) share: one state byte per
worker and a drain flag, in an anonymous shared memory map the supervisor makes before it
forks (so every worker maps the same page; no grpc, no pipes to read).

A worker writes its own slot: LISTENING once its ports are bound, SERVING once it reached the
database, DRAINING when it stops. The supervisor writes a slot when it starts a worker
(STARTING) or reaps one (DOWN), and the drain flag on SIGTERM/SIGINT. Every worker reports
health SERVING only while every slot is SERVING and the flag is clear, so a probe that lands
on any worker answers for the registry as a whole: NOT_SERVING while a sibling is starting,
restarting after a crash, or draining.
"""

from __future__ import annotations

import enum
import mmap
from dataclasses import dataclass

# How often a worker re-reads the shared states to update its health (the lag of a probe).
FOLLOW_INTERVAL_S = 0.1


class WorkerState(enum.IntEnum):
    """One worker's state, as its slot holds it."""

    STARTING = 0
    LISTENING = 1
    SERVING = 2
    DRAINING = 3
    DOWN = 4


class Fleet:
    """The shared states of ``size`` workers (made by the supervisor, inherited on fork)."""

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError("a fleet has at least one worker")
        self.size = size
        self._map = mmap.mmap(-1, size + 1)  # anonymous and shared: survives fork

    def state(self, index: int) -> WorkerState:
        """What worker ``index`` last said (or the supervisor about it)."""
        return WorkerState(self._map[index])

    def set_state(self, index: int, state: WorkerState) -> None:
        """Record ``state`` for worker ``index`` (one byte: never torn)."""
        self._map[index] = int(state)

    def drain(self) -> None:
        """The registry is stopping: no worker reports SERVING again."""
        self._map[self.size] = 1

    @property
    def draining(self) -> bool:
        """True once :meth:`drain` was called."""
        return self._map[self.size] == 1

    def serving(self) -> bool:
        """True while every worker serves and the registry is not draining."""
        return not self.draining and all(
            self.state(i) == WorkerState.SERVING for i in range(self.size)
        )

    def listening(self) -> bool:
        """True once every worker has bound its ports (started, maybe not yet connected)."""
        ready = (WorkerState.LISTENING, WorkerState.SERVING)
        return all(self.state(i) in ready for i in range(self.size))

    def slot(self, index: int) -> FleetSlot:
        """Worker ``index``'s view."""
        return FleetSlot(self, index)


@dataclass(frozen=True)
class FleetSlot:
    """One worker's handle on the fleet: its own slot and the registry-wide verdict."""

    fleet: Fleet
    index: int

    def mark(self, state: WorkerState) -> None:
        """Record this worker's own state."""
        self.fleet.set_state(self.index, state)

    def registry_serving(self) -> bool:
        """True while every worker of the fleet serves (see :meth:`Fleet.serving`)."""
        return self.fleet.serving()
