"""Service configuration from flags and ``MODELREGISTRY_*`` environment variables.

Precedence: command-line flag, then environment variable, then the default below.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import timedelta
from typing import Any, get_type_hints

KiB = 1024
MiB = 1024 * KiB


def cores() -> int:
    """The CPUs this process may run on (its affinity mask: a container's cpuset too)."""
    return len(os.sched_getaffinity(0)) or 1


@dataclass(frozen=True)
class Config:
    """Everything ``build_server`` needs."""

    listen: str = "127.0.0.1:50051"
    workers: int = field(default_factory=cores)
    http_listen: str = ""
    database_url: str = "sqlite:///var/registry.db"
    migrate: str = "auto"
    blob_url: str = "file://var/blobs"
    max_workers: int = 16
    max_streams: int = 1000
    max_download_streams: int = 1000
    max_streams_per_principal: int = 64
    stream_idle_timeout_seconds: float = 60
    max_concurrent_rpcs: int = 4096
    db_max_connections: int = 32
    download_chunk_bytes: int = 256 * KiB
    max_upload_chunk_bytes: int = 2 * MiB
    upload_piece_bytes: int = 64 * MiB
    upload_lease_seconds: float = 30
    retention_hours: float = 30 * 24
    gc_grace_hours: float = 24
    maintenance_interval_seconds: float = 3600
    maintenance_lease_seconds: float = 30
    scrub_bytes_per_run: int = 16 * 1024 * MiB
    scrub_reverify_hours: float = 7 * 24
    shutdown_grace_seconds: float = 10
    log_level: str = "INFO"
    log_format: str = "text"
    log_sql: bool = False
    metrics_listen: str = ""
    tracing: str = "off"
    page_token_secret_file: str = ""
    blob_timeout_seconds: float = 20
    auth: str = "auto"
    tls_cert: str = ""
    tls_key: str = ""
    tls_client_ca: str = ""
    tls_identities_file: str = ""
    reflection: str = "open"
    # JWT bearer tokens (README "JWT bearer tokens"); neither keys nor secret: no JWTs.
    jwt_public_keys: str = ""
    jwt_jwks_ca_file: str = ""
    jwt_issuer: str = ""
    jwt_audience: str = ""
    jwt_hs256_secret_file: str = ""
    jwt_tenant_claim: str = "tenant"
    jwt_default_tenant: str = ""
    jwt_scope_claim: str = "scope"
    jwt_leeway_seconds: float = 30
    api_keys: bool = False
    event_retention_days: float = 0
    watch_poll_seconds: float = 1.0
    webhook_workers: int = 2
    webhook_max_attempts: int = 8
    webhook_backoff_seconds: float = 1.0
    webhook_max_backoff_seconds: float = 600
    webhook_timeout_seconds: float = 10
    webhook_poll_seconds: float = 1.0
    webhook_ca_file: str = ""

    @property
    def upload_lease(self) -> timedelta:
        """How long an upload's writer holds it without renewing (takeover after that)."""
        return timedelta(seconds=self.upload_lease_seconds)

    @property
    def retention(self) -> timedelta:
        """How long soft-deleted models and versions are kept before purge."""
        return timedelta(hours=self.retention_hours)

    @property
    def event_retention(self) -> timedelta | None:
        """How long events are kept (None: for ever)."""
        return timedelta(days=self.event_retention_days) if self.event_retention_days > 0 else None

    @property
    def gc_grace(self) -> timedelta:
        """How old an unreferenced blob or abandoned upload must be before GC removes it."""
        return timedelta(hours=self.gc_grace_hours)

    @property
    def scrub_reverify(self) -> timedelta:
        """How long a blob's last verification counts before the scrub re-reads it."""
        return timedelta(hours=self.scrub_reverify_hours)


# Settings that take one of a few words (checked for flags and environment alike).
CHOICES: Mapping[str, tuple[str, ...]] = {
    "auth": ("auto", "none"),
    "migrate": ("auto", "check"),
    "reflection": ("open", "authenticated", "off"),
    "log_format": ("text", "json"),
    "tracing": ("off", "otlp"),
}

_HELP = {
    "listen": "gRPC address to listen on, host:port (port 0 picks a free port); none: serve "
    "only the web interface (--http-listen), e.g. a web replica on the same database and store",
    "workers": "server processes sharing the ports (SO_REUSEPORT) under one supervisor that "
    "restarts a crashed one; 1: a single process",
    "maintenance_lease_seconds": "the database lease that lets one process (of the workers and "
    "replicas sharing the database) run scheduled maintenance; a dead holder's lease is taken "
    "over after this long",
    "http_listen": "address of the web interface, host:port (port 0 picks a free port); empty: "
    "no web interface",
    "database_url": "sqlite:///path.db or postgresql://user:pass@host:port/db",
    "migrate": "auto: apply pending schema migrations at start; check: refuse to start (exit 2) "
    "unless the schema is current (migrations then run as one step: modelregistry-server "
    "migrate)",
    "blob_url": "file://dir or gs://bucket/prefix",
    "max_workers": "threads running unary calls (health never waits for them)",
    "max_streams": "open UploadFile/DownloadFile streams; more get RESOURCE_EXHAUSTED",
    "max_download_streams": "open DownloadFile streams (one being read holds up to 4 verified "
    "1 MiB blocks; an unread one parks them); more get RESOURCE_EXHAUSTED",
    "max_streams_per_principal": "open streams of one caller (tenant and identity) when "
    "authentication is on; more get RESOURCE_EXHAUSTED",
    "stream_idle_timeout_seconds": "a stream that moves no message for this long is ended",
    "max_concurrent_rpcs": "calls in flight of any kind; more get RESOURCE_EXHAUSTED",
    "db_max_connections": "PostgreSQL pool size",
    "download_chunk_bytes": "bytes per DownloadFile message",
    "max_upload_chunk_bytes": "largest accepted UploadFile chunk",
    "upload_piece_bytes": "bytes made durable (and resumable) per blob-store write",
    "upload_lease_seconds": "an upload's writer holds a lease this long, renewed as data "
    "arrives; another server resumes it only once the lease expired (every replica needs "
    "the same value)",
    "retention_hours": "soft-deleted resources are purged after this many hours",
    "gc_grace_hours": "unreferenced blobs and abandoned uploads older than this are removed",
    "maintenance_interval_seconds": "how often purge + GC + scrub run (0 disables the schedule)",
    "scrub_bytes_per_run": "bytes of stored blobs each maintenance run re-reads and verifies "
    "(0 disables the scrub)",
    "scrub_reverify_hours": "a blob verified more recently than this is not re-read by the scrub",
    "shutdown_grace_seconds": "time in-flight calls get on SIGTERM",
    "log_level": "DEBUG, INFO, WARNING or ERROR",
    "log_format": 'text, or json: one object per line (README "Logs")',
    "log_sql": "log every SQL statement with its parameters (logger peewee, at DEBUG); "
    "parameters can be secrets, so never in production",
    "metrics_listen": "serve Prometheus metrics on http://host:port/metrics (plain HTTP on its "
    "own port, whatever the TLS settings); empty: no metrics",
    "tracing": "off, or otlp: OpenTelemetry spans per RPC, exported as the OTEL_EXPORTER_OTLP_* "
    "variables say (needs modelregistry-server[tracing])",
    "blob_timeout_seconds": "GCS: bound on each request and on all retries of one request, "
    "so calls fail UNAVAILABLE promptly when the bucket cannot be reached",
    "auth": "auto: the configured authenticators; a non-loopback --listen needs one. none: no "
    "authentication, every caller is anonymous with every scope (required to serve a "
    "non-loopback address without authenticators)",
    "tls_cert": "PEM certificate chain: serve TLS (with --tls-key; reloaded when the files change)",
    "tls_key": "PEM private key of --tls-cert",
    "tls_client_ca": "PEM CA certificates: mutual TLS, clients without a certificate it signed are "
    "refused at the handshake",
    "tls_identities_file": "TOML file mapping client-certificate SANs to subject, tenant, scopes "
    "and groups (needs --tls-client-ca; reloaded when it changes)",
    "reflection": "gRPC server reflection: open (no credentials), authenticated (any valid "
    "credential) or off",
    "api_keys": "accept API keys (bearer mrk_...) and so require credentials on every call "
    "but health; API keys are accepted anyway once any other authenticator is configured",
    "event_retention_days": "events older than this many days are removed by maintenance (the "
    "chain stays verifiable from the oldest kept event); 0 keeps them for ever",
    "watch_poll_seconds": "how often a waiting WatchEvents stream looks for events committed by "
    "other replicas (this server's own commits wake it at once)",
    "webhook_workers": "webhook dispatcher threads of this server (0: this server delivers "
    "nothing; the others sharing the database still do)",
    "webhook_max_attempts": "attempts of one webhook delivery before it is FAILED",
    "webhook_backoff_seconds": "delay before the second attempt of a delivery; doubles per "
    "attempt, jittered",
    "webhook_max_backoff_seconds": "longest delay between two attempts of a delivery",
    "webhook_timeout_seconds": "time one webhook POST may take (connect, send, answer)",
    "webhook_poll_seconds": "how often an idle dispatcher looks for events of other replicas "
    "and for retries that came due",
    "webhook_ca_file": "PEM CA bundle trusted for https webhook URLs; empty: the system's CAs",
    "page_token_secret_file": "file whose bytes sign page tokens (at least 16; every replica "
    "needs the same); empty: a random secret kept in the metadata database",
    "jwt_public_keys": "JWT verification keys (RS256/ES256): a PEM file of public keys or "
    "certificates, a JWKS file, or an https:// JWKS URL",
    "jwt_jwks_ca_file": "PEM CA bundle trusted for the https JWKS URL; empty: the system's CAs",
    "jwt_issuer": "the iss every JWT must carry (required with --jwt-public-keys)",
    "jwt_audience": "the aud every JWT must include (required with --jwt-public-keys)",
    "jwt_hs256_secret_file": "development only: verify HS256 JWTs with this file's bytes (at "
    "least 32, surrounding whitespace stripped) instead of public keys",
    "jwt_tenant_claim": "JWT claim naming the caller's tenant",
    "jwt_default_tenant": "tenant of JWTs without the tenant claim; empty: such JWTs are refused",
    "jwt_scope_claim": "JWT claim with the scopes (space-separated string or list of strings)",
    "jwt_leeway_seconds": "clock skew allowed on JWT exp, nbf and iat (0 to 300)",
}


_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off", ""})


def _parse(kind: type[Any], raw: str) -> Any:
    """An environment value as ``kind``; booleans are 1/true/yes/on or 0/false/no/off."""
    if kind is bool:
        word = raw.strip().lower()
        if word not in _TRUE | _FALSE:
            raise ValueError(raw)
        return word in _TRUE
    return kind(raw)


def load_config(
    argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None
) -> Config:
    """Build a Config from flags (``--database-url``) and env (``MODELREGISTRY_DATABASE_URL``)."""
    env = os.environ if environ is None else environ
    parser = argparse.ArgumentParser(
        prog="python -m modelregistry_server", description="Model registry gRPC service"
    )
    defaults = Config()
    hints = get_type_hints(Config)
    for f in fields(Config):
        env_name = f"MODELREGISTRY_{f.name.upper()}"
        default = getattr(defaults, f.name)
        # The declared type, not type(default): `retention_hours: float = 720` takes "0.5".
        kind: type[Any] = hints[f.name]
        raw = env.get(env_name)
        try:
            value = _parse(kind, raw) if raw is not None else default
        except ValueError:
            parser.error(f"{env_name}={raw!r} is not a valid {kind.__name__}")
        flag = f"--{f.name.replace('_', '-')}"
        usage = f"{_HELP[f.name]} (env {env_name}; default {default})"
        if kind is bool:  # --api-keys / --no-api-keys
            action = argparse.BooleanOptionalAction
            parser.add_argument(flag, dest=f.name, action=action, default=value, help=usage)
        else:
            parser.add_argument(flag, dest=f.name, type=kind, default=value, help=usage)
    ns = parser.parse_args(argv)
    if ns.workers < 1:
        parser.error("--workers must be at least 1")
    if ns.maintenance_lease_seconds <= 0:
        parser.error("--maintenance-lease-seconds must be positive")
    for name, allowed in CHOICES.items():
        if getattr(ns, name) not in allowed:
            parser.error(f"--{name.replace('_', '-')} must be one of {', '.join(allowed)}")
    # Zero or less would let every replica take any upload over at once (no exclusion).
    if not ns.upload_lease_seconds > 0:
        parser.error("--upload-lease-seconds must be more than 0")
    return Config(**vars(ns))
