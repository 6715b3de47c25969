"""The unit of work: transactions and connection scopes around the other metadata ports."""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Protocol


class Transactions(Protocol):
    """Writes that must be atomic run inside :meth:`transaction`."""

    def transaction(self) -> AbstractContextManager[None]:
        """A write transaction; nested calls join the outer one. Rolls back on exception."""
        ...

    def connection(self) -> AbstractContextManager[None]:
        """A connection scope for one request; nested scopes reuse the outer connection."""
        ...
