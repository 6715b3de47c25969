"""The ``modelregistry`` command: the registry from a shell or a CI job.

It is a client like any other (it drives :class:`modelregistry.client.RegistryClient`) and
needs the ``cli`` extra (click, rich, PyYAML): ``pip install 'modelregistry-client[cli]'``.
The library ``modelregistry.client`` never imports this package.
"""

from __future__ import annotations

import sys

__all__ = ["main"]

_EXTRA = frozenset({"click", "rich", "yaml"})


def main() -> None:
    """Entry point of the ``modelregistry`` script."""
    try:
        from modelregistry.cli.app import run
    except ModuleNotFoundError as e:
        if (e.name or "").split(".")[0] not in _EXTRA:
            raise
        sys.stderr.write(
            "modelregistry: the command line needs its extra: "
            "pip install 'modelregistry-client[cli]'\n"
        )
        raise SystemExit(1) from None
    run()
