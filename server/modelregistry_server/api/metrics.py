"""Prometheus metrics (``--metrics-listen``): the gRPC edge's per-call metrics under the
go-grpc-prometheus names, and the registry's own (``modelregistry_*``).

Per call the edge costs a few label lookups cached per method and code, and the counter and
histogram updates. Everything read from the database (pool in use, webhook lag) is read at
scrape time by collectors, never per call.

Multi-process serving (``--workers N``): the supervisor calls :func:`use_multiprocess` before
it forks, so every counter, histogram and gauge its workers make (their ``multiprocess_mode``
is set here) lives in files of that directory, and serves :func:`multiprocess_registry` (the
sum over its workers) through :class:`PolledMetricsEndpoint`. What a single process reads at
scrape time (pool in use, webhook lag) each worker samples into gauges instead
(:class:`SampledGauges`; see docs/design.md "Metrics with workers").
"""

from __future__ import annotations

import os
import platform
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import HTTPServer
from importlib.metadata import PackageNotFoundError, version
from typing import Any, Literal

import grpc
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    multiprocess,
    start_http_server,
    values,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import MetricsHandler
from prometheus_client.registry import Collector

from .observation import CallRecord, MethodInfo

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
UPLOAD_METHOD = "/modelregistry.v1.PayloadService/UploadFile"
DOWNLOAD_METHOD = "/modelregistry.v1.PayloadService/DownloadFile"
# go-grpc-prometheus's default buckets (Prometheus' defaults), in seconds.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_CALL = ("grpc_type", "grpc_service", "grpc_method")
# How many behind webhooks one scrape reads at most (the most behind first).
LAG_SCAN_LIMIT = 1000
# Multi-process mode: how often a worker samples its pool, and the webhook lag.
POOL_SAMPLE_S = 1.0
LAG_SAMPLE_S = 10.0
# The longest a scrape of the supervisor may take to send its request or read the answer.
SCRAPE_TIMEOUT_S = 5.0
_HELP = {
    "modelregistry_db_connections_in_use": "Pooled database connections checked out by a "
    "request now.",
    "modelregistry_db_connections_max": "The database pool's size (--db-max-connections).",
    "modelregistry_webhooks_behind": "Enabled webhooks whose cursor is behind their tenant's "
    f"newest event (at most {LAG_SCAN_LIMIT} counted).",
    "modelregistry_webhook_lag_events": "Events between the newest event of a tenant and the "
    "cursor of its most behind webhook (0: every webhook has been handed every event).",
}


def server_version() -> str:
    """The installed modelregistry-server version."""
    try:
        return version("modelregistry-server")
    except PackageNotFoundError:  # pragma: no cover  (run from a source tree)
        return "unknown"


class GrpcMetrics:
    """The call observer that counts (see :mod:`.observation`)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.started_total = Counter(
            "grpc_server_started_total",
            "RPCs started on the server.",
            _CALL,
            registry=registry,
        )
        self.handled_total = Counter(
            "grpc_server_handled_total",
            "RPCs completed on the server, regardless of success or failure.",
            (*_CALL, "grpc_code"),
            registry=registry,
        )
        self.handling_seconds = Histogram(
            "grpc_server_handling_seconds",
            "Response latency (seconds) of RPCs handled by the server.",
            _CALL,
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.msg_received_total = Counter(
            "grpc_server_msg_received_total",
            "Messages received on the server (per RPC, one for unary requests).",
            _CALL,
            registry=registry,
        )
        self.msg_sent_total = Counter(
            "grpc_server_msg_sent_total",
            "Messages sent by the server.",
            _CALL,
            registry=registry,
        )
        self.upload_bytes = Counter(
            "modelregistry_upload_bytes_total",
            "Bytes of UploadFile messages received (counted when the stream ends).",
            registry=registry,
        )
        self.download_bytes = Counter(
            "modelregistry_download_bytes_total",
            "Bytes of DownloadFile messages sent (counted when the stream ends).",
            registry=registry,
        )
        self.streams_active = Gauge(
            "modelregistry_streams_active",
            "Streams holding a slot now: UploadFile streams are the uploads in progress, "
            "WatchEvents streams the event watchers.",
            ("grpc_service", "grpc_method"),
            registry=registry,
            multiprocess_mode="livesum",
        )
        # Label children, looked up once: per call only the updates are paid.
        self._per_method: dict[MethodInfo, _Children] = {}
        self._handled: dict[tuple[MethodInfo, grpc.StatusCode], Any] = {}
        self._lock = threading.Lock()

    def _children(self, method: MethodInfo) -> _Children:
        children = self._per_method.get(method)
        if children is None:
            labels = (method.kind, method.service, method.name)
            children = _Children(
                self.started_total.labels(*labels),
                self.handling_seconds.labels(*labels),
                self.msg_received_total.labels(*labels),
                self.msg_sent_total.labels(*labels),
            )
            with self._lock:
                self._per_method[method] = children
        return children

    def started(self, method: MethodInfo) -> None:
        self._children(method).started.inc()

    def finished(self, call: CallRecord, seconds: float) -> None:
        method = call.method
        children = self._children(method)
        key = (method, call.code)
        handled = self._handled.get(key)
        if handled is None:
            handled = self.handled_total.labels(
                method.kind, method.service, method.name, call.code.name
            )
            with self._lock:
                self._handled[key] = handled
        handled.inc()
        children.seconds.observe(seconds)
        if call.received_messages:
            children.received.inc(call.received_messages)
        if call.sent_messages:
            children.sent.inc(call.sent_messages)
        if method.full == UPLOAD_METHOD:
            self.upload_bytes.inc(call.received_bytes)
        elif method.full == DOWNLOAD_METHOD:
            self.download_bytes.inc(call.sent_bytes)

    def _streams(self, method: MethodInfo) -> Any:
        # Only streaming methods get a child: a unary method has no streams_active series.
        return self.streams_active.labels(method.service, method.name)

    def stream_opened(self, method: MethodInfo) -> None:
        self._streams(method).inc()

    def stream_closed(self, method: MethodInfo) -> None:
        self._streams(method).dec()


@dataclass(frozen=True, slots=True)
class _Children:
    started: Any
    seconds: Any
    received: Any
    sent: Any


class MaintenanceMetrics:
    """The last maintenance run's results (GC and scrub), set by the run that made them."""

    def __init__(self, registry: CollectorRegistry) -> None:
        mode: Literal["mostrecent"] = "mostrecent"  # one process runs maintenance at a time
        self.last_run = Gauge(
            "modelregistry_maintenance_last_run_timestamp_seconds",
            "When the last maintenance run ended (Unix time).",
            registry=registry,
            multiprocess_mode=mode,
        )
        self.failed_steps = Gauge(
            "modelregistry_maintenance_last_failed_steps",
            "Steps of the last maintenance run that raised (purge, gc, scrub, events, statistics).",
            registry=registry,
            multiprocess_mode=mode,
        )
        self.gc = Gauge(
            "modelregistry_gc_last_removed",
            "What the last garbage collection removed or found: kind=uploads, blobs, "
            "orphan_uploads, orphan_blobs.",
            ("kind",),
            registry=registry,
            multiprocess_mode=mode,
        )
        self.scrub = Gauge(
            "modelregistry_scrub_last_blobs",
            "Blobs the last scrub re-read, by result=verified, corrupted, missing; and files "
            "it found broken (result=broken_files).",
            ("result",),
            registry=registry,
            multiprocess_mode=mode,
        )
        self.scrub_bytes = Gauge(
            "modelregistry_scrub_last_bytes",
            "Bytes the last scrub re-read.",
            registry=registry,
            multiprocess_mode=mode,
        )

    def record(self, *, at: float, gc: Any, scrub: Any, failed: int) -> None:
        """Set the gauges from one run's ``GcReport`` and ``ScrubReport``."""
        for kind in ("uploads", "blobs", "orphan_uploads", "orphan_blobs"):
            self.gc.labels(kind).set(getattr(gc, kind))
        self.scrub.labels("verified").set(scrub.blobs)
        self.scrub.labels("corrupted").set(scrub.corrupted)
        self.scrub.labels("missing").set(scrub.missing)
        self.scrub.labels("broken_files").set(scrub.broken_files)
        self.scrub_bytes.set(scrub.bytes)
        self.failed_steps.set(failed)
        self.last_run.set(at)


class ScrapeCollector(Collector):
    """Gauges read when Prometheus scrapes: database pool in use and the event feed's lag
    (``pool()`` and ``behind()`` return None while the database is not reached)."""

    def __init__(
        self,
        pool: Callable[[], tuple[int, int] | None],
        behind: Callable[[], list[int] | None],
    ) -> None:
        self._pool = pool
        self._behind = behind

    def collect(self) -> Iterator[GaugeMetricFamily]:
        pool = self._pool()
        if pool is not None:
            in_use, most = pool
            for name, number in (
                ("modelregistry_db_connections_in_use", in_use),
                ("modelregistry_db_connections_max", most),
            ):
                yield GaugeMetricFamily(name, _HELP[name], value=number)
        lags = self._behind()
        if lags is not None:
            for name, number in (
                ("modelregistry_webhooks_behind", len(lags)),
                ("modelregistry_webhook_lag_events", max(lags, default=0)),
            ):
                yield GaugeMetricFamily(name, _HELP[name], value=number)


class SampledGauges:
    """A worker's pool and webhook-lag gauges in multi-process mode, where nothing is read at
    scrape time in the workers: the pool every :data:`POOL_SAMPLE_S` (summed over the live
    workers: the machine's connections in use, and its pools' total size), the lag every
    :data:`LAG_SAMPLE_S` (the largest of the live workers' last samples: every worker reads
    the same database)."""

    def __init__(
        self,
        registry: CollectorRegistry,
        pool: Callable[[], tuple[int, int] | None],
        behind: Callable[[], list[int] | None],
    ) -> None:
        self._pool = pool
        self._behind = behind

        def gauge(name: str, mode: Literal["livesum", "livemax"]) -> Gauge:
            return Gauge(name, _HELP[name], registry=registry, multiprocess_mode=mode)

        self.in_use = gauge("modelregistry_db_connections_in_use", "livesum")
        self.max = gauge("modelregistry_db_connections_max", "livesum")
        self.webhooks_behind = gauge("modelregistry_webhooks_behind", "livemax")
        self.lag = gauge("modelregistry_webhook_lag_events", "livemax")

    def sample(self, *, lag: bool) -> None:
        """Set the pool gauges (and the lag's, with ``lag``) from what is known now."""
        pool = self._pool()
        if pool is not None:
            self.in_use.set(pool[0])
            self.max.set(pool[1])
        lags = self._behind() if lag else None
        if lags is not None:
            self.webhooks_behind.set(len(lags))
            self.lag.set(max(lags, default=0))

    def run(self, stopping: threading.Event) -> None:
        """Sample until ``stopping`` is set (a thread of the worker)."""
        every = max(1, round(LAG_SAMPLE_S / POOL_SAMPLE_S))
        n = 0
        while True:
            self.sample(lag=n % every == 0)
            n += 1
            if stopping.wait(POOL_SAMPLE_S):
                return


def build_info(registry: CollectorRegistry) -> None:
    """``modelregistry_build_info{version, python}`` 1."""
    info = Gauge(
        "modelregistry_build_info",
        "The running modelregistry-server's version and Python, as labels; always 1.",
        ("version", "python"),
        registry=registry,
        multiprocess_mode="max",
    )
    info.labels(server_version(), platform.python_version()).set(1)


def multiprocess_metrics() -> bool:
    """Whether this process is one of several sharing ``PROMETHEUS_MULTIPROC_DIR``."""
    return bool(os.environ.get(MULTIPROC_ENV))


def use_multiprocess(directory: str) -> None:
    """Keep the metrics made from now on, in this process and those it forks, in files of
    ``directory`` (an empty one). prometheus-client picks its value class when it is first
    imported, which the supervisor did before it knew it would fork workers, so that choice
    is made again here; the first value a forked worker makes sees the new pid and writes
    files of its own."""
    os.environ[MULTIPROC_ENV] = directory
    values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]


def end_multiprocess(previous: str | None) -> None:
    """Undo :func:`use_multiprocess` (``previous``: the variable's value before it)."""
    if previous is None:
        os.environ.pop(MULTIPROC_ENV, None)
    else:
        os.environ[MULTIPROC_ENV] = previous
    values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]


def forget_process(pid: int) -> None:
    """A worker has exited: drop its ``live*`` gauges from the aggregate (its counters and
    histograms stay: the sums never go backwards)."""
    multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]


def multiprocess_registry() -> CollectorRegistry:
    """What a supervisor serves when its workers share ``PROMETHEUS_MULTIPROC_DIR``."""
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return registry


class PolledMetricsEndpoint:
    """``/metrics`` answered by its owner's own loop (:meth:`serve_for`), no thread: the
    supervisor forks its workers from that loop, and a fork never copies a thread that holds
    a lock. Binds in the constructor (OSError if the address is refused)."""

    def __init__(self, address: str, registry: CollectorRegistry) -> None:
        host, _, port = address.rpartition(":")
        host = host.strip("[]") or "127.0.0.1"
        family = socket.getaddrinfo(host, int(port), type=socket.SOCK_STREAM)[0][0]
        handler = type(
            "SupervisorMetricsHandler",
            (MetricsHandler,),
            {"registry": registry, "timeout": SCRAPE_TIMEOUT_S},
        )
        server_class = type("SupervisorMetricsServer", (HTTPServer,), {"address_family": family})
        self._host = host
        self._server: HTTPServer = server_class((host, int(port)), handler)

    @property
    def address(self) -> str:
        port = self._server.server_address[1]
        return f"[{self._host}]:{port}" if ":" in self._host else f"{self._host}:{port}"

    def serve_for(self, seconds: float) -> None:
        """Wait up to ``seconds`` for a scrape and answer it (returns after at most one)."""
        self._server.timeout = seconds
        self._server.handle_request()

    def close(self) -> None:
        """Stop listening (also what a forked worker does with its copy)."""
        self._server.server_close()


class MetricsEndpoint:
    """``/metrics`` over plain HTTP on its own address (started and stopped with the server)."""

    def __init__(self, address: str, registry: CollectorRegistry) -> None:
        host, _, port = address.rpartition(":")
        self._host = host.strip("[]") or "127.0.0.1"
        self._port = int(port)
        self._registry = registry
        self._server: Any = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._server, self._thread = start_http_server(
            self._port, addr=self._host, registry=self._registry
        )

    @property
    def port(self) -> int:
        """The bound port (after :meth:`start`)."""
        return int(self._server.server_address[1])

    @property
    def address(self) -> str:
        return f"{self._host}:{self.port}"

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            if self._thread is not None:
                self._thread.join(timeout=5)
            self._server = None
