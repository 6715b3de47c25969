"""One server process: build, serve until SIGTERM/SIGINT, drain. ``--workers 1`` runs it as
the whole registry; with ``--workers N`` each worker the supervisor forks runs it."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from types import FrameType

from .app import ListenError, build_server
from .config import Config
from .fleet import FleetSlot
from .security import StartRefused
from .storage.metadata import DatabaseInUseError, SchemaNotCurrentError, SchemaTooNewError

log = logging.getLogger(__name__)

# How often a worker checks that its supervisor still lives (it drains if not).
PARENT_CHECK_S = 1.0
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def run_process(config: Config, *, fleet: FleetSlot | None = None) -> int:
    """Serve ``config`` until a stop signal; the exit status (1: the port is refused, 2:
    refused settings or database). A worker (``fleet``) prints no address (its supervisor
    does) and also stops when its supervisor has gone."""
    parent = os.getppid()
    try:
        service = build_server(config, fleet=fleet)
    except ListenError as exc:
        print(f"modelregistry: {exc}", file=sys.stderr, flush=True)
        return 1
    except StartRefused as exc:  # exposed without authentication, or contradictory settings
        print(f"modelregistry: {exc}", file=sys.stderr, flush=True)
        return 2
    except (
        ValueError,
        OSError,
        SchemaTooNewError,
        SchemaNotCurrentError,
        DatabaseInUseError,
    ) as exc:  # not outages
        log.error("cannot start: %s", exc)
        return 2
    stopping = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %d: shutting down", signum)
        stopping.set()

    for signum in STOP_SIGNALS:
        signal.signal(signum, on_signal)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)  # a forked worker starts blocked
    service.start()
    if fleet is None:
        if service.http is not None:
            scheme = "https" if service.http.tls else "http"
            print(f"modelregistry web interface on {scheme}://{service.http.address}", flush=True)
        print(f"modelregistry listening on {service.address}", flush=True)
        stopping.wait()
    else:
        while not stopping.wait(PARENT_CHECK_S):
            if os.getppid() != parent:
                log.warning("the supervisor has gone: shutting down")
                break
    service.stop()
    return 0
