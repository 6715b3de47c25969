"""In-process servers for API tests: built from a Config, started, and always stopped."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from modelregistry_server.app import RegistryServer, build_server
from modelregistry_server.config import Config


@contextmanager
def serving(config: Config) -> Iterator[RegistryServer]:
    """A started server for ``config`` (port 0 picks a free one), stopped at once on exit."""
    service = build_server(config)
    service.start()
    try:
        yield service
    finally:
        service.stop(0)
