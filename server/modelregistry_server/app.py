"""``build_server(config)``: wires stores, use cases, servicers, health, reflection and TLS.

The gRPC server is a ``grpc.aio`` server on an event loop of its own thread; the servicers
and everything below them are synchronous and run in bounded executors (see
``api/interceptors.py``). :class:`RegistryServer` hides the loop: ``start`` and ``stop`` are
plain calls.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Coroutine, Sequence
from concurrent import futures
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import grpc
import grpc.aio
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from prometheus_client import CollectorRegistry

from modelregistry.v1 import access_pb2, events_pb2, model_registry_pb2, payload_pb2, webhooks_pb2
from modelregistry.v1 import access_pb2_grpc as access_grpc
from modelregistry.v1 import events_pb2_grpc as events_grpc
from modelregistry.v1 import model_registry_pb2_grpc as registry_grpc
from modelregistry.v1 import payload_pb2_grpc as payload_grpc
from modelregistry.v1 import webhooks_pb2_grpc as webhooks_grpc

from .api.access_events import AccessRecorder
from .api.access_log import AccessLog
from .api.access_servicer import AccessServicer
from .api.api_key_authenticator import ApiKeyAuthenticator
from .api.authentication import Credentials
from .api.deferred import DeferredServices
from .api.errors import status_code_for
from .api.event_servicer import EventServicer
from .api.interceptors import ErrorMappingInterceptor, ServingLimits
from .api.metrics import (
    LAG_SCAN_LIMIT,
    GrpcMetrics,
    MaintenanceMetrics,
    MetricsEndpoint,
    SampledGauges,
    ScrapeCollector,
    build_info,
    multiprocess_metrics,
)
from .api.observation import CallObserver, Observers
from .api.payload_servicer import PayloadServicer
from .api.permissions import METHOD_REQUIREMENTS, requirement
from .api.reflection import SERVICE_NAMES as REFLECTION_SERVICES
from .api.reflection import enable_reflection
from .api.registry_servicer import ModelRegistryServicer
from .api.tls import CertificateReloader, server_credentials
from .api.tracing import otlp_provider, tracing_interceptor
from .api.webhook_servicer import WebhookServicer, event_json
from .api.workers import Workers
from .config import Config
from .domain.api_keys import ApiKeys
from .domain.audit import Audit
from .domain.errors import DomainError, Unavailable
from .domain.events import Verification
from .domain.gc import GcReport
from .domain.identity import Caller, Permission
from .domain.integrity import Integrity, ScrubReport
from .domain.leases import MAINTENANCE_LEASE, LeaseKeeper
from .domain.lineage import Lineage
from .domain.listing import MIN_SECRET_BYTES, PageTokens
from .domain.payloads import Payloads
from .domain.ports import BlobStore, MetadataStore
from .domain.registry import Registry, utc_now
from .domain.webhook_dispatch import Dispatcher, DispatchSettings
from .domain.webhook_signing import SecretBox
from .domain.webhooks import Webhooks
from .fleet import FOLLOW_INTERVAL_S, FleetSlot, WorkerState
from .outbound.http_sender import HttpSender
from .security import StartRefused, build_authentication, check_exposure, tls_files
from .storage.blobs import open_blob_store
from .storage.metadata import open_metadata_store
from .web.edge import Edge, Services, ServicesSlot
from .web.serving import HttpServer
from .web.site import create_app

NO_GRPC = "none"  # --listen none: serve only the web interface

log = logging.getLogger(__name__)
T = TypeVar("T")

# Incoming messages may be this much larger than the chunk limit (or than the largest message
# the Python client sends), so an oversized chunk reaches our own check (CHUNK_TOO_LARGE)
# instead of being refused by gRPC with RESOURCE_EXHAUSTED.
CLIENT_MESSAGE_BYTES = 16 * 1024 * 1024
MESSAGE_HEADROOM_BYTES = 1024 * 1024


class ListenError(OSError):
    """The configured address cannot be bound (in use, or not an address of this host)."""


def receive_limit(max_upload_chunk_bytes: int) -> int:
    """The largest message the server accepts: every chunk the Python client can send, and
    four times the chunk limit, plus room for the message framing."""
    return max(CLIENT_MESSAGE_BYTES, 4 * max_upload_chunk_bytes) + MESSAGE_HEADROOM_BYTES


@dataclass(frozen=True)
class MaintenanceReport:
    """What one maintenance run did."""

    purged_models: int
    purged_versions: int
    gc: GcReport
    scrub: ScrubReport
    failed: tuple[str, ...] = ()
    pruned_events: int = 0  # steps that raised (logged; the others still ran)


SERVICES = (
    model_registry_pb2.DESCRIPTOR.services_by_name["ModelRegistry"],
    payload_pb2.DESCRIPTOR.services_by_name["PayloadService"],
    access_pb2.DESCRIPTOR.services_by_name["AccessService"],
    events_pb2.DESCRIPTOR.services_by_name["EventService"],
    webhooks_pb2.DESCRIPTOR.services_by_name["WebhookService"],
)
SERVICE_NAMES = tuple(s.full_name for s in SERVICES)


@dataclass(frozen=True)
class Backends:
    """The stores and the use cases on them: what exists once the database is reachable."""

    store: MetadataStore
    blobs: BlobStore
    registry: Registry
    payloads: Payloads
    lineage: Lineage
    integrity: Integrity
    api_keys: ApiKeys
    audit: Audit
    webhooks: Webhooks
    dispatcher: Dispatcher
    secret: bytes = b""  # the server secret page tokens and web sessions derive from

    def close(self) -> None:
        """Stop the upload sync pool, then close the stores."""
        self.payloads.close()
        self.store.close()


# Start-up retries of an unreachable database: first delay, doubling up to the last.
CONNECT_RETRY_S = (0.5, 10.0)
# HTTP/2 streams one connection may have open at once (SETTINGS_MAX_CONCURRENT_STREAMS).
MAX_STREAMS_PER_CONNECTION = 256
# A client may ping at most this often while no data flows; a third ping too soon (two strikes)
# closes its connection with GOAWAY ENHANCE_YOUR_CALM.
MIN_CLIENT_PING_INTERVAL_MS = 10_000
MAX_PING_STRIKES = 2
# The server pings a connection idle this long and drops it if no answer comes in time.
KEEPALIVE_TIME_MS = 60_000
KEEPALIVE_TIMEOUT_MS = 20_000
# Served on the event loop as they are: never queued behind user work.
PASSTHROUGH = frozenset({health.SERVICE_NAME, *REFLECTION_SERVICES})


class _Loop:
    """An asyncio event loop running on its own thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="grpc-loop", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def close(self) -> None:
        """Cancel what still runs on the loop (calls the server abandoned), then stop it."""
        self.call(_cancel_remaining())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join()
        self.loop.close()


async def _cancel_remaining() -> None:
    tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for task in tasks:
        task.cancel()
    if tasks:
        await asyncio.wait(tasks, timeout=5)


@dataclass
class RegistryServer:
    """A wired, not yet started service.

    If the database could not be reached when it was built, :meth:`start` serves with health
    NOT_SERVING (registry calls UNAVAILABLE) and keeps connecting in the background; health
    turns SERVING once it has.
    """

    config: Config
    server: grpc.aio.Server | None  # None with --listen none (only the web interface)
    port: int
    health: HealthServicer
    interceptor: ErrorMappingInterceptor
    _loop: _Loop
    _pools: tuple[futures.Executor, ...]
    _gate: DeferredServices
    _api_keys: ApiKeyAuthenticator
    _connect: Callable[[], Backends]
    _backends: Backends | None = None
    _stopping: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    # The TLS certificate in use and its reloading (None: plaintext); gRPC calls it.
    tls: CertificateReloader | None = None
    # The web interface (--http-listen), and where it finds the use cases once connected.
    http: HttpServer | None = None
    _web: ServicesSlot = field(default_factory=ServicesSlot)
    # /metrics (--metrics-listen) and what maintenance reports to it; None without.
    metrics: MetricsEndpoint | None = None
    _maintenance_metrics: MaintenanceMetrics | None = None
    _tracer_provider: Any = None  # the one --tracing otlp made (flushed on stop)
    # A worker's pool and lag gauges (multi-process metrics), sampled by a thread of its own.
    _sampled: SampledGauges | None = None
    # With --workers N: this worker's slot in the supervisor's fleet (health follows it).
    fleet: FleetSlot | None = None
    # Held by the one process (of all sharing the database) that runs scheduled maintenance.
    maintenance_lease: LeaseKeeper | None = None

    @property
    def metrics_address(self) -> str | None:
        """host:port of /metrics, or None without --metrics-listen."""
        return None if self.metrics is None else self.metrics.address

    def pool_usage(self) -> tuple[int, int] | None:
        """Database connections in use and the pool size (None before connecting)."""
        backends = self._backends
        return None if backends is None else backends.store.connections_in_use()

    def webhook_lags(self) -> list[int] | None:
        """Events each behind webhook has still to be handed (None if unknown now)."""
        backends = self._backends
        if backends is None:
            return None
        try:
            with backends.store.connection():
                behind = backends.store.webhooks_behind(LAG_SCAN_LIMIT)
        except DomainError:
            return None
        return [head - webhook.cursor for webhook, head in behind]

    @property
    def address(self) -> str:
        """host:port the gRPC server is bound to (``none`` without one)."""
        if self.server is None:
            return NO_GRPC
        host = self.config.listen.rsplit(":", 1)[0]
        return f"{host}:{self.port}"

    @property
    def http_address(self) -> str | None:
        """host:port the web interface is bound to, or None without one."""
        return None if self.http is None else self.http.address

    def _wired(self) -> Backends:
        if self._backends is None:
            raise RuntimeError("the server has not reached its database yet")
        return self._backends

    @property
    def store(self) -> MetadataStore:
        """The metadata store (once connected)."""
        return self._wired().store

    @property
    def blobs(self) -> BlobStore:
        """The blob store (once connected)."""
        return self._wired().blobs

    @property
    def registry(self) -> Registry:
        """The registry use cases (once connected)."""
        return self._wired().registry

    @property
    def payloads(self) -> Payloads:
        """The payload use cases (once connected)."""
        return self._wired().payloads

    @property
    def integrity(self) -> Integrity:
        """The integrity use cases (once connected)."""
        return self._wired().integrity

    @property
    def api_keys(self) -> ApiKeys:
        """The API key use cases (once connected)."""
        return self._wired().api_keys

    @property
    def audit(self) -> Audit:
        """The event-log use cases (once connected)."""
        return self._wired().audit

    @property
    def webhooks(self) -> Webhooks:
        """The webhook use cases (once connected)."""
        return self._wired().webhooks

    @property
    def dispatcher(self) -> Dispatcher:
        """The webhook dispatcher its worker threads run (once connected)."""
        return self._wired().dispatcher

    def start(self) -> None:
        """Start serving; health turns SERVING now, or once the database is reachable."""
        if self.server is not None:
            self._loop.call(self.server.start())
            log.info("serving on %s", self.address)
        if self.http is not None:
            self._loop.call(self.http.start())
            scheme = "https" if self.http.tls else "http"
            log.info("web interface on %s://%s", scheme, self.http_address)
        if self.fleet is not None:
            self.fleet.mark(WorkerState.LISTENING)
        if self._backends is not None:
            self._serving()
        else:
            self._spawn(self._keep_connecting, "connect")

    def _spawn(self, target: Callable[[], None], name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _serving(self) -> None:
        if self.fleet is None:
            self._loop.call(_set_health(self.health, health_pb2.HealthCheckResponse.SERVING))
        else:
            self.fleet.mark(WorkerState.SERVING)
            self._spawn(self._follow_fleet, "fleet-health")
        if self.config.maintenance_interval_seconds > 0:
            keeper = LeaseKeeper(
                self._wired().store,
                MAINTENANCE_LEASE,
                ttl=timedelta(seconds=self.config.maintenance_lease_seconds),
                clock=utc_now,
            )
            self.maintenance_lease = keeper
            self._spawn(lambda: keeper.run(self._stopping), "maintenance-lease")
            self._spawn(self._maintain, "maintenance")
        sampled = self._sampled
        if sampled is not None:
            self._spawn(lambda: sampled.run(self._stopping), "metrics-samples")
        dispatcher = self._wired().dispatcher
        for n in range(self.config.webhook_workers):
            self._spawn(lambda: dispatcher.run(self._stopping), f"webhooks-{n}")

    def _follow_fleet(self) -> None:
        """Health SERVING while every worker of the fleet serves, NOT_SERVING otherwise."""
        assert self.fleet is not None
        shown: bool | None = None
        while True:
            serving = self.fleet.registry_serving()
            if serving != shown:
                status = health_pb2.HealthCheckResponse
                self._loop.call(
                    _set_health(self.health, status.SERVING if serving else status.NOT_SERVING)
                )
                shown = serving
            if self._stopping.wait(FOLLOW_INTERVAL_S):
                return

    def _keep_connecting(self) -> None:
        delay, longest = CONNECT_RETRY_S
        while not self._stopping.wait(delay):
            try:
                backends = self._connect()
            except Unavailable as exc:
                log.warning("database still unreachable (%s); retrying in %.1f s", exc, delay)
                delay = min(delay * 2, longest)
                continue
            except Exception:
                log.exception("cannot start: the database was reached but the set-up failed")
                return
            if self._stopping.is_set():
                backends.close()
                return
            self._backends = backends
            _install(self._gate, self._api_keys, self.config, backends, self.interceptor, self._web)
            log.info("database reachable: serving")
            self._serving()
            return

    def run_maintenance(self) -> MaintenanceReport:
        """Purge expired soft-deletes, collect unreferenced blobs and stale uploads (and stored
        objects no row accounts for), scrub (re-read and verify stored blobs), then refresh the
        database's planner statistics. Each step runs even if an earlier one failed."""
        failed: list[str] = []
        models, versions = _step("purge", self.registry.purge, (0, 0), failed)
        gc = _step("gc", self.payloads.collect_garbage, GcReport(0, 0), failed)
        scrub = _step(
            "scrub",
            lambda: self.integrity.scrub(
                self.config.scrub_bytes_per_run, self.config.scrub_reverify
            ),
            ScrubReport(),
            failed,
        )
        pruned = _step("events", self.audit.prune, 0, failed)
        _step("statistics", self.store.refresh_statistics, None, failed)
        if self._maintenance_metrics is not None:
            self._maintenance_metrics.record(at=time.time(), gc=gc, scrub=scrub, failed=len(failed))
        log.info(
            "maintenance: purged %d models, %d versions; removed %d uploads, %d blobs "
            "(%d orphan uploads, %d orphan blobs found); scrub verified %d blobs (%d bytes): "
            "%d corrupted, %d missing, %d files broken; pruned %d events; failed steps: %s",
            models,
            versions,
            gc.uploads,
            gc.blobs,
            gc.orphan_uploads,
            gc.orphan_blobs,
            scrub.blobs,
            scrub.bytes,
            scrub.corrupted,
            scrub.missing,
            scrub.broken_files,
            pruned,
            ", ".join(failed) or "none",
        )
        return MaintenanceReport(models, versions, gc, scrub, tuple(failed), pruned)

    def _maintain(self) -> None:
        """Run maintenance every interval, in this process only while it holds the lease (one
        process of all sharing the database: the workers of a supervisor, or replicas)."""
        while not self._stopping.wait(self.config.maintenance_interval_seconds):
            if self.maintenance_lease is None or not self.maintenance_lease.held():
                log.debug("maintenance: another process holds the lease")
                continue
            try:
                self.run_maintenance()
            except Exception:
                log.exception("maintenance failed; will retry at the next interval")

    def stop(self, grace: float | None = None) -> None:
        """Health turns NOT_SERVING, in-flight calls (gRPC and web alike) get ``grace``
        seconds, then the executors and the upload sync pool stop and the stores close."""
        if self.fleet is not None:
            self.fleet.mark(WorkerState.DRAINING)
        self._loop.call(self.health.enter_graceful_shutdown())
        self._stopping.set()
        self._loop.call(
            _drain(
                self.server,
                self.http,
                self.config.shutdown_grace_seconds if grace is None else grace,
            )
        )
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(timeout=CONNECT_RETRY_S[1])
        self._loop.close()
        for pool in self._pools:
            pool.shutdown(wait=True)
        if self.metrics is not None:
            self.metrics.stop()
        if self._tracer_provider is not None:
            self._tracer_provider.shutdown()
        if self._backends is not None:
            self._backends.close()


async def _drain(server: grpc.aio.Server | None, http: HttpServer | None, grace: float) -> None:
    """Stop the gRPC server and the web server together, each giving its calls ``grace``."""
    stops: list[Coroutine[Any, Any, None]] = []
    if server is not None:
        stops.append(server.stop(grace))
    if http is not None:
        stops.append(http.stop(grace))
    await asyncio.gather(*stops)


def _step(name: str, run: Callable[[], T], failed_result: T, failed: list[str]) -> T:
    """Run one maintenance step; if it raises, log it, note ``name`` and go on."""
    try:
        return run()
    except Exception:
        log.exception("maintenance: %s failed; the other steps still run", name)
        failed.append(name)
        return failed_result


def server_secret(config: Config, store: MetadataStore) -> bytes:
    """The configured secret file's bytes, else the database's own secret: page tokens are
    signed with it, and web session cookies sealed with a key derived from it."""
    if config.page_token_secret_file:
        secret = Path(config.page_token_secret_file).read_bytes().strip()
        if len(secret) < MIN_SECRET_BYTES:
            raise ValueError(
                f"{config.page_token_secret_file} must hold at least {MIN_SECRET_BYTES} bytes"
            )
        return secret
    return store.page_token_secret()


def page_tokens(config: Config, store: MetadataStore) -> PageTokens:
    """Page tokens signed with the configured secret file, else the database's own secret."""
    return PageTokens(server_secret(config, store))


def connect(config: Config, *, shared: bool = False) -> Backends:
    """Open the stores and build the use cases; Unavailable if the database is unreachable.
    ``shared``: a worker of ``--workers N``, whose siblings open the same SQLite file."""
    store = open_metadata_store(
        config.database_url,
        max_connections=config.db_max_connections,
        migrate_schema=config.migrate == "auto",
        shared=shared,
    )
    try:
        blobs = open_blob_store(config.blob_url, timeout_seconds=config.blob_timeout_seconds)
        secret = server_secret(config, store)
        tokens = PageTokens(secret)
    except BaseException:
        store.close()
        raise
    registry = Registry(store, page_tokens=tokens, clock=utc_now, retention=config.retention)
    lineage = Lineage(store, registry.resolve, registry.authorizer)
    integrity = Integrity(store, blobs, clock=utc_now)
    payloads = Payloads(
        store,
        blobs,
        registry,
        page_tokens=tokens,
        clock=utc_now,
        piece_bytes=config.upload_piece_bytes,
        max_chunk_bytes=config.max_upload_chunk_bytes,
        gc_grace=config.gc_grace,
        sync_workers=config.max_streams,  # one pending piece sync per concurrent upload
        integrity=integrity,
        upload_lease=config.upload_lease,
    )
    api_keys = ApiKeys(store, clock=utc_now, page_tokens=tokens)
    audit = Audit(
        store,
        page_tokens=tokens,
        clock=utc_now,
        retention=config.event_retention,
        watch_poll_s=config.watch_poll_seconds,
    )
    box = SecretBox(store.webhook_secret_key())
    webhooks = Webhooks(store, box, clock=utc_now, page_tokens=tokens)
    dispatcher = Dispatcher(
        store,
        HttpSender(config.webhook_ca_file),
        event_json,
        box,
        clock=utc_now,
        settings=DispatchSettings(
            max_attempts=config.webhook_max_attempts,
            backoff_s=config.webhook_backoff_seconds,
            max_backoff_s=config.webhook_max_backoff_seconds,
            timeout_s=config.webhook_timeout_seconds,
            poll_s=config.webhook_poll_seconds,
        ),
    )
    return Backends(
        store,
        blobs,
        registry,
        payloads,
        lineage,
        integrity,
        api_keys,
        audit,
        webhooks,
        dispatcher,
        secret,
    )


def verify_event_log(database_url: str) -> list[Verification]:
    """Walk every tenant's event chain in the database at ``database_url`` (the command
    ``modelregistry-server events verify``). Opening the store migrates it like the server."""
    store = open_metadata_store(database_url, max_connections=2)
    try:
        return Audit(store, clock=utc_now).verify_all()
    finally:
        store.close()


def _install(
    gate: DeferredServices,
    authenticator: ApiKeyAuthenticator,
    config: Config,
    b: Backends,
    interceptor: ErrorMappingInterceptor,
    web: ServicesSlot,
) -> None:
    registry = ModelRegistryServicer(b.registry, b.payloads, b.lineage, utc_now)
    payload = PayloadServicer(b.payloads, config.download_chunk_bytes)
    access = AccessServicer(b.api_keys)
    events = EventServicer(b.audit)
    webhooks = WebhookServicer(b.webhooks)
    authenticator.install(b.api_keys)
    recorder = AccessRecorder(b.audit)
    interceptor.use_access_log(recorder)
    gate.install(
        [
            lambda server: registry_grpc.add_ModelRegistryServicer_to_server(registry, server),
            lambda server: payload_grpc.add_PayloadServiceServicer_to_server(payload, server),
            lambda server: access_grpc.add_AccessServiceServicer_to_server(access, server),
            lambda server: events_grpc.add_EventServiceServicer_to_server(events, server),
            lambda server: webhooks_grpc.add_WebhookServiceServicer_to_server(webhooks, server),
        ],
        b.store.connection,
    )
    web.install(
        Services(
            b.registry,
            b.payloads,
            b.lineage,
            b.audit,
            b.store.connection,
            b.secret,
            recorder.record,
        )
    )


def web_edge(interceptor: ErrorMappingInterceptor) -> Edge:
    """The web adapter's admission: the gRPC edge's own authentication (whichever is
    installed on the interceptor) and the one RPC -> permission table; its errors named by
    the one error table."""

    def admit(bearer: str | None, rpc: str) -> Caller:
        return interceptor.authentication.admit(Credentials(bearer=bearer), requirement(rpc))

    def code_of(error: DomainError) -> str:
        return status_code_for(error).name

    def permits(caller: Caller, rpc: str) -> bool:
        needed = requirement(rpc)
        return not isinstance(needed, Permission) or caller.has(needed)

    return Edge(
        admit=admit,
        auth_enabled=lambda: interceptor.authentication.enabled,
        code_of=code_of,
        rpcs=frozenset(METHOD_REQUIREMENTS),
        permits=permits,
    )


def build_server(
    config: Config, *, fleet: FleetSlot | None = None, tracer_provider: Any = None
) -> RegistryServer:
    """Wire everything explicitly from ``config``; binds the port but does not start.

    An unreachable database does not fail the build: the server starts NOT_SERVING and
    connects in the background (see :class:`RegistryServer`). A malformed URL, an unreadable
    secret file or a database newer than this release raise here. The port is bound first, so
    a port in use is refused before anything waits on the database; before that, security
    settings that expose the registry without authentication, contradict each other, or name
    TLS files that do not load are refused (``StartRefused``, ValueError, OSError).

    ``--tracing otlp`` traces with ``tracer_provider`` if given (tests), else with one
    exporting over OTLP as the OTEL_* environment says. With ``--metrics-listen`` the calls
    are measured; /metrics is served here unless ``PROMETHEUS_MULTIPROC_DIR`` is set (a
    worker: its supervisor serves the sum of its workers).

    ``fleet``: this process is a worker of ``--workers N`` (see :mod:`.supervisor`): it shares
    its ports with its siblings (SO_REUSEPORT; the supervisor checked them), opens SQLite for
    sharing, and its health follows the whole fleet.
    """
    shared = fleet is not None
    api_keys = ApiKeyAuthenticator()  # verifies keys once the database is reached
    authentication = build_authentication(config, api_keys)
    check_exposure(config, authentication)
    files = tls_files(config)
    credentials, reloader = (None, None) if files is None else server_credentials(files)
    gate = DeferredServices(SERVICES)
    observers: list[CallObserver] = [AccessLog()]
    metrics_registry: CollectorRegistry | None = None
    maintenance_metrics: MaintenanceMetrics | None = None
    if config.metrics_listen:
        metrics_registry = CollectorRegistry()
        observers.append(GrpcMetrics(metrics_registry))
        maintenance_metrics = MaintenanceMetrics(metrics_registry)
        build_info(metrics_registry)
    outer: list[Any] = []  # interceptors outside ours
    made_provider = None
    if config.tracing == "otlp":
        if tracer_provider is None:
            tracer_provider = made_provider = otlp_provider()
        outer.append(tracing_interceptor(tracer_provider))
    unary_pool = Workers(config.max_workers, thread_name_prefix="unary")
    # A stream holds at most one thread at a time, so with this many no stream waits for one.
    stream_pool = futures.ThreadPoolExecutor(config.max_streams, thread_name_prefix="stream")
    interceptor = ErrorMappingInterceptor(
        unary_pool=unary_pool,
        stream_pool=stream_pool,
        limits=ServingLimits(
            max_streams=config.max_streams,
            stream_idle_timeout=config.stream_idle_timeout_seconds,
            max_download_streams=config.max_download_streams,
            max_streams_per_principal=config.max_streams_per_principal,
        ),
        passthrough=PASSTHROUGH,
        admitted_passthrough=(
            REFLECTION_SERVICES if config.reflection == "authenticated" else frozenset()
        ),
        unary_scope=gate.scope,
        authentication=authentication,
        observer=observers[0] if len(observers) == 1 else Observers(observers),
    )
    if config.listen == NO_GRPC and not config.http_listen:
        raise StartRefused("--listen none serves only the web interface: give --http-listen")
    web = ServicesSlot()
    loop = _Loop()
    backends: Backends | None = None
    http: HttpServer | None = None
    server: grpc.aio.Server | None = None
    metrics: MetricsEndpoint | None = None
    try:
        server, health_servicer, port = loop.call(
            _serve(config, gate, [*outer, interceptor], credentials, reuse_port=shared)
        )
        try:
            if metrics_registry is not None and not multiprocess_metrics():
                metrics = MetricsEndpoint(config.metrics_listen, metrics_registry)
                try:
                    metrics.start()
                except OSError as exc:
                    raise ListenError(
                        f"cannot serve metrics on {config.metrics_listen}: {exc.strerror}"
                    ) from None
            if config.http_listen:
                http = HttpServer(
                    create_app(web_edge(interceptor), web, unary_pool, secure_cookies=bool(files)),
                    config.http_listen,
                    grace_seconds=config.shutdown_grace_seconds,
                    tls=(config.tls_cert, config.tls_key) if files else None,
                    reuse_port=shared,
                )
            backends = connect(config, shared=shared)
        except Unavailable as exc:
            log.warning("database unreachable at start-up (%s); serving NOT_SERVING", exc)
        except BaseException:
            loop.call(_drain(server, http, 0))  # frees the ports
            if metrics is not None:
                metrics.stop()
            raise
    except BaseException:
        loop.close()
        unary_pool.shutdown()
        stream_pool.shutdown()
        raise
    if backends is not None:
        _install(gate, api_keys, config, backends, interceptor, web)
    service = RegistryServer(
        config,
        server,
        port,
        health_servicer,
        interceptor,
        loop,
        (unary_pool, stream_pool),
        gate,
        api_keys,
        lambda: connect(config, shared=shared),
        backends,
        tls=reloader,
        http=http,
        _web=web,
        metrics=metrics,
        _maintenance_metrics=maintenance_metrics,
        _tracer_provider=made_provider,
        fleet=fleet,
    )
    if metrics_registry is not None and multiprocess_metrics():
        service._sampled = SampledGauges(metrics_registry, service.pool_usage, service.webhook_lags)
    elif metrics_registry is not None:
        metrics_registry.register(ScrapeCollector(service.pool_usage, service.webhook_lags))
    return service


async def _set_health(
    servicer: HealthServicer, status: health_pb2.HealthCheckResponse.ServingStatus.ValueType
) -> None:
    for name in ("", *SERVICE_NAMES):
        await servicer.set(name, status)


def server_options(config: Config, *, reuse_port: bool = False) -> list[tuple[str, Any]]:
    """Transport limits (README *Limits*): message sizes, HTTP/2 streams per connection,
    keepalive enforcement against clients that ping too often, dead-peer detection.
    ``reuse_port``: a worker sharing the port its supervisor reserved."""
    return [
        ("grpc.max_receive_message_length", receive_limit(config.max_upload_chunk_bytes)),
        ("grpc.max_send_message_length", config.max_upload_chunk_bytes + MESSAGE_HEADROOM_BYTES),
        # Without this gRPC sets SO_REUSEPORT, and a second server on a port in use
        # would start and share it with the first (clients reaching either at random).
        # Workers do share it: their supervisor reserved it without SO_REUSEPORT first.
        ("grpc.so_reuseport", 1 if reuse_port else 0),
        ("grpc.max_concurrent_streams", MAX_STREAMS_PER_CONNECTION),
        ("grpc.http2.min_ping_interval_without_data_ms", MIN_CLIENT_PING_INTERVAL_MS),
        ("grpc.keepalive_permit_without_calls", 0),
        ("grpc.http2.max_ping_strikes", MAX_PING_STRIKES),
        ("grpc.keepalive_time_ms", KEEPALIVE_TIME_MS),
        ("grpc.keepalive_timeout_ms", KEEPALIVE_TIMEOUT_MS),
    ]


async def _serve(
    config: Config,
    gate: DeferredServices,
    interceptors: Sequence[Any],
    credentials: grpc.ServerCredentials | None,
    *,
    reuse_port: bool = False,
) -> tuple[grpc.aio.Server | None, HealthServicer, int]:
    """The gRPC server, bound; ``interceptors`` outermost first (tracing, then the edge)."""
    if config.listen == NO_GRPC:
        return None, HealthServicer(), 0
    server = grpc.aio.server(
        interceptors=list(interceptors),
        maximum_concurrent_rpcs=config.max_concurrent_rpcs,
        options=server_options(config, reuse_port=reuse_port),
    )
    server.add_generic_rpc_handlers((gate,))
    health_servicer = HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    await _set_health(health_servicer, health_pb2.HealthCheckResponse.NOT_SERVING)
    if config.reflection != "off":
        enable_reflection((*SERVICE_NAMES, health.SERVICE_NAME), server)
    try:
        if credentials is None:
            port = server.add_insecure_port(config.listen)
        else:
            port = server.add_secure_port(config.listen, credentials)
    except RuntimeError:  # grpcio raises this when the bind fails
        port = 0
    if port == 0:
        raise ListenError(
            f"cannot listen on {config.listen}: the address is in use or not available"
        )
    return server, health_servicer, port
