"""Event wake-ups: a hint that events may have committed, so waiters read the table again.

The event table stays the only source of what happened (see ``domain/audit.py`` and
``domain/webhook_dispatch.py``); a wake-up carries nothing but "look now". A missed or
spurious wake-up therefore costs latency or one read, never an event, and callers still poll.
"""

from __future__ import annotations

from typing import Protocol


class EventWakeups(Protocol):
    """A counter that moves after events commit, and a way to wait for it to move.

    Every adapter counts the commits of its own process. An adapter whose database can tell
    (PostgreSQL's LISTEN/NOTIFY) also counts the commits of other processes and replicas; one
    that cannot (SQLite) leaves those to the callers' poll.
    """

    def generation(self) -> int:
        """The current counter value."""
        ...

    def wait(self, generation: int, timeout: float) -> int:
        """Wait until the counter differs from ``generation`` or ``timeout`` seconds passed;
        return the counter."""
        ...
