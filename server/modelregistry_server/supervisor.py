"""``--workers N``: one supervisor process and N worker processes serving the same ports.

This follows gRPC's multiprocessing example (grpc/examples/python/multiprocessing): the
supervisor reserves each port and forks the workers before it creates any gRPC object (gRPC
must not be initialised in a process that forks); each worker builds its own server, which
binds the same port with SO_REUSEPORT, and the kernel spreads incoming connections over them.

- **Settings.** Authentication, exposure and TLS settings are checked once, before any port
  or fork, with the single process's messages and exit status 2.
- **Port check.** The supervisor binds each port *without* SO_REUSEPORT first, so a port any
  other process holds is refused (exit 1, the single process's message), and only then sets
  SO_REUSEPORT on its reservation so its own workers can join. It never listens on it.
- **Database.** It opens the metadata store once (migrations run here, once, before any worker
  starts; with ``--migrate check`` it only checks that the schema is current; a SQLite file
  another process holds, a newer or not current schema or a bad URL end it with exit 2)
  and closes it before forking. An unreachable database is left to the workers, which keep
  connecting (health NOT_SERVING) as a single process does.
- **Health.** The workers share a :class:`~.fleet.Fleet`; each reports SERVING only while all do.
- **Crashes.** A worker that dies is restarted after a back-off (0.5 s doubling to 30 s, reset
  once it has served a minute), logged. A worker that fails at start-up before the fleet was
  ever up ends the supervisor with its status (a refused setting is refused once, not looped).
- **Metrics.** With ``--metrics-listen`` the supervisor, not the workers, binds that address
  and serves ``/metrics`` from its own loop (no thread): the sum over its workers through
  prometheus-client's multiprocess mode, in a fresh private directory made before the first
  fork and removed at exit; a dead worker's live gauges are dropped when it is reaped.
- **Stopping.** SIGTERM/SIGINT set the fleet draining (every worker NOT_SERVING at once), go
  to every worker (each drains its calls for ``--shutdown-grace-seconds``), and the supervisor
  exits once all have: 0 if they all exited cleanly. A worker whose supervisor dies drains too.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from types import FrameType

from .api.api_key_authenticator import ApiKeyAuthenticator
from .api.metrics import (
    MULTIPROC_ENV,
    PolledMetricsEndpoint,
    end_multiprocess,
    forget_process,
    multiprocess_registry,
    use_multiprocess,
)
from .app import NO_GRPC, ListenError
from .config import Config
from .domain.errors import Unavailable
from .fleet import Fleet, WorkerState
from .process import STOP_SIGNALS, run_process
from .security import StartRefused, build_authentication, check_exposure, tls_files
from .storage.metadata import (
    DatabaseInUseError,
    SchemaNotCurrentError,
    SchemaTooNewError,
    open_metadata_store,
)
from .web.serving import split_address

log = logging.getLogger(__name__)

RESTART_BACKOFF_S = (0.5, 30.0)  # first delay, doubling up to the last
HEALTHY_AFTER_S = 60.0  # a worker that lived this long restarts after the first delay again
POLL_S = 0.05  # how often the supervisor reaps and starts workers
# After SIGTERM, workers get the grace period plus this long before they are SIGKILLed.
STOP_MARGIN_S = 15.0


def reserve(listen: str) -> tuple[socket.socket, str]:
    """Bind ``listen`` (``host:port``, port 0 picks one) for the workers; the socket and the
    concrete ``host:port``. OSError if any other process holds the port."""
    host, port = split_address(listen)
    infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM)
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.bind(address)  # without SO_REUSEPORT: refused if anyone holds the port
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)  # now our workers may join
    except OSError:
        sock.close()
        raise
    bound = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    return sock, f"{shown}:{bound}"


def supervise(config: Config) -> int:
    """Run ``config.workers`` workers on ``config``'s ports until a stop signal; the exit
    status (see the module docstring)."""
    refused = _check_settings(config)
    if refused is not None:
        return refused
    reservations: list[socket.socket] = []
    metrics: _Metrics | None = None
    try:
        workers_config = config
        if config.listen != NO_GRPC:
            try:
                sock, listen = reserve(config.listen)
            except (OSError, ValueError):
                print(
                    f"modelregistry: {ListenError(_in_use(config.listen))}",
                    file=sys.stderr,
                    flush=True,
                )
                return 1
            reservations.append(sock)
            workers_config = dataclasses.replace(workers_config, listen=listen)
        if config.http_listen:
            try:
                sock, http_listen = reserve(config.http_listen)
            except (OSError, ValueError):
                log.error("cannot start: %s", _in_use(config.http_listen))
                return 2
            reservations.append(sock)
            workers_config = dataclasses.replace(workers_config, http_listen=http_listen)
        if config.metrics_listen:
            metrics = _Metrics()
            try:
                metrics.listen(config.metrics_listen)
            except (OSError, ValueError) as exc:
                reason = getattr(exc, "strerror", None) or exc
                print(
                    f"modelregistry: cannot serve metrics on {config.metrics_listen}: {reason}",
                    file=sys.stderr,
                    flush=True,
                )
                return 1
        refused = _prepare_database(config)
        if refused is not None:
            return refused
        return Supervisor(workers_config, reservations, metrics).run()
    finally:
        for sock in reservations:
            sock.close()
        if metrics is not None:
            metrics.close()


class _Metrics:
    """The supervisor's side of multi-process metrics: the directory its workers write (set
    in the environment before they fork) and the endpoint that sums them."""

    def __init__(self) -> None:
        self._previous = os.environ.get(MULTIPROC_ENV)
        self.directory = tempfile.mkdtemp(prefix="modelregistry-metrics-")  # private, empty
        use_multiprocess(self.directory)
        self.endpoint: PolledMetricsEndpoint | None = None

    def listen(self, address: str) -> None:
        self.endpoint = PolledMetricsEndpoint(address, multiprocess_registry())
        log.info("serving /metrics of the workers on http://%s/metrics", self.endpoint.address)

    def close(self) -> None:
        if self.endpoint is not None:
            self.endpoint.close()
        shutil.rmtree(self.directory, ignore_errors=True)
        end_multiprocess(self._previous)


def _in_use(listen: str) -> str:
    return f"cannot listen on {listen}: the address is in use or not available"


def _check_settings(config: Config) -> int | None:
    """What ``build_server`` refuses before it binds a port, refused here once (exit 2)."""
    try:
        check_exposure(config, build_authentication(config, ApiKeyAuthenticator()))
        tls_files(config)
        if config.listen == NO_GRPC and not config.http_listen:
            raise StartRefused("--listen none serves only the web interface: give --http-listen")
    except StartRefused as exc:
        print(f"modelregistry: {exc}", file=sys.stderr, flush=True)
        return 2
    except (ValueError, OSError) as exc:
        log.error("cannot start: %s", exc)
        return 2
    return None


def _prepare_database(config: Config) -> int | None:
    """Migrate once (``--migrate auto``) or check that the schema is current (``check``),
    before any worker starts; an exit status if the database is refused."""
    try:
        store = open_metadata_store(
            config.database_url, max_connections=2, migrate_schema=config.migrate == "auto"
        )
    except Unavailable as exc:
        log.warning("database unreachable at start-up (%s); the workers keep connecting", exc)
        return None
    except (
        ValueError,
        OSError,
        SchemaTooNewError,
        SchemaNotCurrentError,
        DatabaseInUseError,
    ) as exc:
        log.error("cannot start: %s", exc)
        return 2
    store.close()
    return None


@dataclasses.dataclass
class _Worker:
    pid: int = 0
    started: float = 0.0
    backoff: float = RESTART_BACKOFF_S[0]
    restart_at: float | None = None  # when a dead worker is due to be started again


class Supervisor:
    """Forks, watches, restarts and stops the workers (see the module docstring)."""

    def __init__(
        self,
        config: Config,
        reservations: list[socket.socket],
        metrics: _Metrics | None = None,
    ) -> None:
        self.config = config
        self.fleet = Fleet(config.workers)
        self._reservations = reservations
        self._metrics = None if metrics is None else metrics.endpoint
        self._workers = [_Worker() for _ in range(config.workers)]
        self._signalled: int | None = None
        self._announced = False

    def run(self) -> int:
        """Start every worker, keep them running until a stop signal, then drain them."""
        for signum in STOP_SIGNALS:
            signal.signal(signum, self._on_signal)
        for index in range(len(self._workers)):
            self._start(index)
        while self._signalled is None:
            failed = self._reap()
            if failed is not None:
                self._stop_all()
                return failed
            self._restart_due()
            self._announce()
            self._idle()
        log.info("signal %d: draining %d workers", self._signalled, len(self._workers))
        return self._stop_all()

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self._signalled = signum

    def _idle(self) -> None:
        """Wait one poll interval, answering scrapes of /metrics meanwhile."""
        if self._metrics is None:
            time.sleep(POLL_S)
        else:
            self._metrics.serve_for(POLL_S)

    def _start(self, index: int) -> None:
        worker = self._workers[index]
        self.fleet.set_state(index, WorkerState.STARTING)
        # Stop signals wait until the worker has its own handlers (run_process unblocks them).
        signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        try:
            pid = os.fork()
            if pid == 0:  # the worker: no gRPC object exists yet in this process
                self._become_worker(index)
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
        worker.pid, worker.started, worker.restart_at = pid, time.monotonic(), None
        log.info("worker %d started (pid %d)", index, pid)

    def _become_worker(self, index: int) -> None:
        code = 1
        try:
            for signum in STOP_SIGNALS:
                signal.signal(signum, signal.SIG_DFL)
            for sock in self._reservations:
                sock.close()  # the supervisor's copy keeps the reservation
            if self._metrics is not None:
                self._metrics.close()  # only the supervisor answers /metrics
            code = run_process(self.config, fleet=self.fleet.slot(index))
        except BaseException:
            log.exception("worker %d failed", index)
        finally:
            logging.shutdown()
            os._exit(code)

    def _reap(self) -> int | None:
        """Collect dead workers and schedule their restart; an exit status if one failed at
        start-up before the fleet was ever up."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return None
            if pid == 0:
                return None
            index = next((i for i, w in enumerate(self._workers) if w.pid == pid), None)
            if index is None:
                continue
            worker = self._workers[index]
            code = os.waitstatus_to_exitcode(status)
            was = self.fleet.state(index)
            self.fleet.set_state(index, WorkerState.DOWN)
            if self._metrics is not None:
                forget_process(pid)
            worker.pid = 0
            if not self._announced and was == WorkerState.STARTING and code in (1, 2):
                return code  # refused at start-up (its reason is logged): do not loop
            now = time.monotonic()
            if now - worker.started >= HEALTHY_AFTER_S:
                worker.backoff = RESTART_BACKOFF_S[0]
            worker.restart_at = now + worker.backoff
            log.warning(
                "worker %d (pid %d) exited with status %d; restarting in %.1f s",
                index,
                pid,
                code,
                worker.backoff,
            )
            worker.backoff = min(worker.backoff * 2, RESTART_BACKOFF_S[1])

    def _restart_due(self) -> None:
        now = time.monotonic()
        for index, worker in enumerate(self._workers):
            if worker.pid == 0 and worker.restart_at is not None and worker.restart_at <= now:
                self._start(index)

    def _announce(self) -> None:
        """Print the addresses once every worker listens (what a single process prints)."""
        if self._announced or not self.fleet.listening():
            return
        self._announced = True
        if self.config.http_listen:
            scheme = "https" if self.config.tls_cert else "http"
            print(
                f"modelregistry web interface on {scheme}://{self.config.http_listen}", flush=True
            )
        print(f"modelregistry listening on {self.config.listen}", flush=True)
        log.info("%d workers listening", len(self._workers))

    def _stop_all(self) -> int:
        """Drain every worker (SIGTERM), SIGKILL what outlives the grace; 0 if all exited 0."""
        self.fleet.drain()
        running = {w.pid: i for i, w in enumerate(self._workers) if w.pid}
        for pid in running:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + self.config.shutdown_grace_seconds + STOP_MARGIN_S
        clean = True
        while running:
            if time.monotonic() > deadline:
                for pid in running:
                    log.error("worker pid %d did not stop in time: killed", pid)
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                deadline = float("inf")
                clean = False
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                self._idle()
                continue
            if self._metrics is not None:
                forget_process(pid)
            if running.pop(pid, None) is not None and os.waitstatus_to_exitcode(status) != 0:
                clean = False
        log.info("all workers stopped")
        return 0 if clean else 1
