"""``build_server(config)``: wires stores, use cases, servicers, health and reflection."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from modelregistry.v1 import model_registry_pb2, payload_pb2
from modelregistry.v1 import model_registry_pb2_grpc as registry_grpc
from modelregistry.v1 import payload_pb2_grpc as payload_grpc

from .api.deferred import DeferredServices
from .api.interceptors import ErrorMappingInterceptor
from .api.payload_servicer import PayloadServicer
from .api.registry_servicer import ModelRegistryServicer
from .config import Config
from .domain.errors import Unavailable
from .domain.gc import GcReport
from .domain.integrity import Integrity, ScrubReport
from .domain.lineage import Lineage
from .domain.listing import MIN_SECRET_BYTES, PageTokens
from .domain.payloads import Payloads
from .domain.ports import BlobStore, MetadataStore
from .domain.registry import Registry, utc_now
from .storage.blobs import open_blob_store
from .storage.metadata import open_metadata_store

log = logging.getLogger(__name__)

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


SERVICES = (
    model_registry_pb2.DESCRIPTOR.services_by_name["ModelRegistry"],
    payload_pb2.DESCRIPTOR.services_by_name["PayloadService"],
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

    def close(self) -> None:
        """Stop the upload sync pool, then close the stores."""
        self.payloads.close()
        self.store.close()


# Start-up retries of an unreachable database: first delay, doubling up to the last.
CONNECT_RETRY_S = (0.5, 10.0)


@dataclass
class RegistryServer:
    """A wired, not yet started service.

    If the database could not be reached when it was built, :meth:`start` serves with health
    NOT_SERVING (registry calls UNAVAILABLE) and keeps connecting in the background; health
    turns SERVING once it has.
    """

    config: Config
    server: grpc.Server
    port: int
    health: health.HealthServicer
    _gate: DeferredServices
    _connect: Callable[[], Backends]
    _backends: Backends | None = None
    _stopping: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    @property
    def address(self) -> str:
        """host:port the server is bound to."""
        host = self.config.listen.rsplit(":", 1)[0]
        return f"{host}:{self.port}"

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

    def start(self) -> None:
        """Start serving; health turns SERVING now, or once the database is reachable."""
        self.server.start()
        if self._backends is not None:
            self._serving()
        else:
            self._spawn(self._keep_connecting, "connect")
        log.info("serving on %s", self.address)

    def _spawn(self, target: Callable[[], None], name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _serving(self) -> None:
        for name in ("", *SERVICE_NAMES):
            self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        if self.config.maintenance_interval_seconds > 0:
            self._spawn(self._maintain, "maintenance")

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
            _install(self._gate, self.config, backends)
            log.info("database reachable: serving")
            self._serving()
            return

    def run_maintenance(self) -> MaintenanceReport:
        """Purge expired soft-deletes, collect unreferenced blobs and stale uploads (and stored
        objects no row accounts for), scrub (re-read and verify stored blobs), then refresh the
        database's planner statistics."""
        models, versions = self.registry.purge()
        gc = self.payloads.collect_garbage()
        scrub = self.integrity.scrub(self.config.scrub_bytes_per_run, self.config.scrub_reverify)
        self.store.refresh_statistics()
        log.info(
            "maintenance: purged %d models, %d versions; removed %d uploads, %d blobs "
            "(%d orphan uploads, %d orphan blobs found); scrub verified %d blobs (%d bytes): "
            "%d corrupted, %d missing, %d files broken",
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
        )
        return MaintenanceReport(models, versions, gc, scrub)

    def _maintain(self) -> None:
        while not self._stopping.wait(self.config.maintenance_interval_seconds):
            try:
                self.run_maintenance()
            except Exception:
                log.exception("maintenance failed; will retry at the next interval")

    def stop(self, grace: float | None = None) -> None:
        """Health turns NOT_SERVING, in-flight calls get ``grace`` seconds, then the upload
        sync pool stops and the stores close."""
        self.health.enter_graceful_shutdown()
        self._stopping.set()
        self.server.stop(self.config.shutdown_grace_seconds if grace is None else grace).wait()
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(timeout=CONNECT_RETRY_S[1])
        if self._backends is not None:
            self._backends.close()


def page_tokens(config: Config, store: MetadataStore) -> PageTokens:
    """Page tokens signed with the configured secret file, else the database's own secret."""
    if config.page_token_secret_file:
        secret = Path(config.page_token_secret_file).read_bytes().strip()
        if len(secret) < MIN_SECRET_BYTES:
            raise ValueError(
                f"{config.page_token_secret_file} must hold at least {MIN_SECRET_BYTES} bytes"
            )
        return PageTokens(secret)
    return PageTokens(store.page_token_secret())


def connect(config: Config) -> Backends:
    """Open the stores and build the use cases; Unavailable if the database is unreachable."""
    store = open_metadata_store(config.database_url, max_connections=config.db_max_connections)
    try:
        blobs = open_blob_store(config.blob_url, timeout_seconds=config.blob_timeout_seconds)
        tokens = page_tokens(config, store)
    except BaseException:
        store.close()
        raise
    registry = Registry(store, page_tokens=tokens, clock=utc_now, retention=config.retention)
    lineage = Lineage(store, registry.resolve)
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
        sync_workers=config.max_workers,  # one pending piece sync per concurrent upload
        integrity=integrity,
    )
    return Backends(store, blobs, registry, payloads, lineage, integrity)


def _install(gate: DeferredServices, config: Config, b: Backends) -> None:
    registry = ModelRegistryServicer(b.registry, b.payloads, b.lineage, utc_now)
    payload = PayloadServicer(b.payloads, config.download_chunk_bytes)
    gate.install(
        [
            lambda server: registry_grpc.add_ModelRegistryServicer_to_server(registry, server),
            lambda server: payload_grpc.add_PayloadServiceServicer_to_server(payload, server),
        ],
        b.store.connection,
    )


def build_server(config: Config) -> RegistryServer:
    """Wire everything explicitly from ``config``; binds the port but does not start.

    An unreachable database does not fail the build: the server starts NOT_SERVING and
    connects in the background (see :class:`RegistryServer`). A malformed URL, an unreadable
    secret file or a database newer than this release raise here.
    """
    try:
        backends: Backends | None = connect(config)
    except Unavailable as exc:
        log.warning("database unreachable at start-up (%s); serving NOT_SERVING", exc)
        backends = None
    gate = DeferredServices(SERVICES)
    send_limit = config.max_upload_chunk_bytes + MESSAGE_HEADROOM_BYTES
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=config.max_workers, thread_name_prefix="rpc"),
        interceptors=[ErrorMappingInterceptor(unary_scope=gate.scope)],
        maximum_concurrent_rpcs=config.max_concurrent_rpcs,
        options=[
            ("grpc.max_receive_message_length", receive_limit(config.max_upload_chunk_bytes)),
            ("grpc.max_send_message_length", send_limit),
            # Without this gRPC sets SO_REUSEPORT, and a second server on a port in use
            # would start and share it with the first (clients reaching either at random).
            ("grpc.so_reuseport", 0),
        ],
    )
    server.add_generic_rpc_handlers((gate,))
    if backends is not None:
        _install(gate, config, backends)
    health_servicer = health.HealthServicer(experimental_non_blocking=True)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    for name in ("", *SERVICE_NAMES):
        health_servicer.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
    reflection.enable_server_reflection(
        (*SERVICE_NAMES, health.SERVICE_NAME, reflection.SERVICE_NAME), server
    )
    try:
        port = server.add_insecure_port(config.listen)
    except RuntimeError:  # grpcio raises this when the bind fails
        port = 0
    if port == 0:
        if backends is not None:
            backends.close()
        raise ListenError(
            f"cannot listen on {config.listen}: the address is in use or not available"
        )
    return RegistryServer(
        config, server, port, health_servicer, gate, lambda: connect(config), backends
    )
