"""``python -m modelregistry_server``: run the service until SIGTERM/SIGINT.

``python -m modelregistry_server api-keys …`` manages API keys instead (see
:mod:`.api_keys_cli`)."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from . import api_keys_cli
from .app import ListenError, build_server
from .config import load_config
from .security import StartRefused
from .storage.metadata import DatabaseInUseError, SchemaTooNewError


def main(argv: Sequence[str] | None = None) -> int:
    """Parse configuration, serve, and shut down gracefully on a signal."""
    args = sys.argv[1:] if argv is None else list(argv)
    if args[:1] == ["api-keys"]:
        return api_keys_cli.main(args[1:])
    config = load_config(args)
    logging.basicConfig(
        level=config.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # A file-size limit (RLIMIT_FSIZE) makes writes fail with EFBIG, reported as UNAVAILABLE
    # like a full disk, instead of killing the process.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    try:
        service = build_server(config)
    except ListenError as exc:
        print(f"modelregistry: {exc}", file=sys.stderr, flush=True)
        return 1
    except StartRefused as exc:  # exposed without authentication, or contradictory settings
        print(f"modelregistry: {exc}", file=sys.stderr, flush=True)
        return 2
    except (ValueError, OSError, SchemaTooNewError, DatabaseInUseError) as exc:  # not outages
        logging.getLogger(__name__).error("cannot start: %s", exc)
        return 2
    stopping = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        logging.getLogger(__name__).info("signal %d: shutting down", signum)
        stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    service.start()
    print(f"modelregistry listening on {service.address}", flush=True)
    stopping.wait()
    service.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
