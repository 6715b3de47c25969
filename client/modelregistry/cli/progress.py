"""Progress bars for transfers: bytes, rate and time left, on stderr, and only when stderr is
a terminal. Elsewhere (CI, pipes) transfers are quiet."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from modelregistry.client import ProgressCallback

__all__ = ["Transfers"]


class Transfers:
    """Progress of one or more transfers (``enabled`` False: nothing is drawn)."""

    def __init__(self, stream: TextIO, *, enabled: bool | None = None) -> None:
        self.enabled = stream.isatty() if enabled is None else enabled
        self._progress: Progress | None = None
        if self.enabled:
            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                TimeRemainingColumn(),
                console=Console(file=stream, markup=False, highlight=False),
                transient=False,
            )

    @contextmanager
    def running(self) -> Iterator[Transfers]:
        """Draws while the block runs."""
        if self._progress is None:
            yield self
            return
        with self._progress:
            yield self

    def track(self, description: str, total: int | None = None) -> ProgressCallback:
        """A ``progress(done, total)`` callback for the client's transfer methods (safe from
        gRPC's threads)."""
        progress = self._progress
        if progress is None:
            return _quiet
        task: TaskID = progress.add_task(description, total=total)

        def update(done: int, size: int | None) -> None:
            progress.update(task, completed=done, total=size if size is not None else total)

        return update


def _quiet(done: int, total: int | None) -> None:
    pass
