"""The replica drill: several server processes on one PostgreSQL database and one blob store,
uploads spread over them, ``kill -9`` of random replicas mid-upload and clients resuming on the
others (the shipped client's resume, with every replica's address). Then the checks: every
upload returned its file, every visible file verifies and reads back, version numbers are
gapless, and GC (grace 0) leaves no stored object that no row accounts for and no row without
its object. Used by ``scripts/drill_replicas.py`` (the full drill) and, small, by
``tests/api/test_replica_drill.py``."""

from __future__ import annotations

import hashlib
import io
import random
import threading
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelregistry.client import RegistryClient, RegistryError
from modelregistry.v1 import resources_pb2 as res
from modelregistry_server.__main__ import migrate_command
from modelregistry_server.app import connect
from modelregistry_server.config import Config
from modelregistry_server.domain.blob_names import digest_of_key
from modelregistry_server.storage.blobs import open_blob_store
from modelregistry_server.storage.metadata import open_metadata_store
from tests.support.replica_set import ReplicaSet

KiB = 1024
MiB = 1024 * KiB


@dataclass(frozen=True)
class DrillSettings:
    replicas: int = 3
    uploads: int = 20
    models: int = 3
    concurrency: int = 6
    kills: int = 6
    min_size: int = 2 * MiB
    max_size: int = 6 * MiB
    piece_bytes: int = 256 * KiB
    chunk_bytes: int = 64 * KiB
    # Client send rate per upload (bytes/s), so uploads last long enough to be killed under.
    rate: int = 2 * MiB
    lease_seconds: float = 3.0
    kill_every: tuple[float, float] = (1.0, 2.5)
    restart_after: float = 1.0
    time_limit: float = 240.0
    seed: int = 14


@dataclass
class DrillReport:
    uploads: int = 0
    returned: int = 0
    lost: list[str] = field(default_factory=list)
    kills: int = 0
    kills_mid_upload: int = 0
    taken_over: int = 0  # uploads whose lease was acquired more than once
    most_acquisitions: int = 0
    verified: int = 0
    bad_files: list[str] = field(default_factory=list)
    gaps: list[str] = field(default_factory=list)
    orphans: list[str] = field(default_factory=list)
    gc: str = ""
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not (self.lost or self.bad_files or self.gaps or self.orphans) and (
            self.returned == self.uploads
        )

    def lines(self) -> list[str]:
        return [
            f"uploads {self.uploads}, returned {self.returned}, lost {len(self.lost)} "
            f"{self.lost[:5]}",
            f"kill -9: {self.kills} ({self.kills_mid_upload} with uploads in flight); uploads "
            f"resumed under a new lease: {self.taken_over} (most acquisitions of one: "
            f"{self.most_acquisitions})",
            f"files verified (VerifyFile + download sha256): {self.verified}, bad: "
            f"{self.bad_files[:5]}",
            f"version numbering gaps: {self.gaps[:5] or 'none'}",
            f"after GC ({self.gc}): orphans {self.orphans[:5] or 'none'}",
            f"{'PASS' if self.ok else 'FAIL'} in {self.seconds:.1f} s",
        ]


class Throttled(io.BytesIO):
    """A seekable source read at about ``rate`` bytes per second."""

    def __init__(self, data: bytes, rate: int) -> None:
        super().__init__(data)
        self._rate = rate

    def read(self, size: int | None = -1, /) -> bytes:
        data = super().read(size)
        if data:
            time.sleep(len(data) / self._rate)
        return data


def _payload(rng: random.Random, size: int) -> bytes:
    return rng.randbytes(size)


def run_drill(
    settings: DrillSettings,
    database_url: str,
    blob_url: str,
    log_dir: Path,
    env: Mapping[str, str] | None = None,
) -> DrillReport:
    """Run the drill against a fresh database and blob store; the report says what held."""
    began = time.monotonic()
    deadline = began + settings.time_limit
    rng = random.Random(settings.seed)
    report = DrillReport(uploads=settings.uploads)
    # Migrations run once, as a Job would; the replicas only check the schema.
    if migrate_command(["--database-url", database_url]) != 0:
        raise RuntimeError("migrate failed")
    args = [
        "--migrate",
        "check",
        "--upload-piece-bytes",
        str(settings.piece_bytes),
        "--upload-lease-seconds",
        str(settings.lease_seconds),
        "--webhook-workers",
        "0",
    ]
    plan = []
    for n in range(settings.uploads):
        size = rng.randrange(settings.min_size, settings.max_size + 1)
        plan.append((n, f"drill-{n % settings.models}", size, rng.randrange(1 << 30)))
    expected: dict[str, str] = {}  # "model/version/file" -> sha256
    in_flight = threading.Semaphore(0)
    flying = [0]
    lock = threading.Lock()
    stop = threading.Event()

    with ReplicaSet(
        settings.replicas, database_url, blob_url, log_dir, extra_args=args, env=env
    ) as rs:
        with RegistryClient(rs.target(), timeout=30) as admin:
            for m in range(settings.models):
                admin.create_model(f"drill-{m}")

        def upload(item: tuple[int, str, int, int]) -> None:
            n, model, size, seed = item
            data = _payload(random.Random(seed), size)
            with RegistryClient(
                rs.target(n % settings.replicas),
                timeout=30,
                chunk_size=settings.chunk_bytes,
                retries=4,
                retry_backoff=0.2,
            ) as client:
                version = _retrying(
                    lambda: int(client.create_version(model).version_number), deadline
                )
                with lock:
                    flying[0] += 1
                try:
                    file = client.upload_file(
                        model,
                        version,
                        Throttled(data, settings.rate),
                        file_id=f"f{n}",
                        max_resumes=20,
                    )
                finally:
                    with lock:
                        flying[0] -= 1
                sha = hashlib.sha256(data).hexdigest()
                if file.sha256 != sha or file.size_bytes != size:
                    raise AssertionError(f"upload {n}: the returned file differs")
                with lock:
                    expected[f"{model}/{version}/f{n}"] = sha

        def killer() -> None:
            while not stop.is_set() and rs.kills < settings.kills:
                if stop.wait(rng.uniform(*settings.kill_every)):
                    return
                with lock:
                    busy = flying[0] > 0
                victim = rs.kill_random(rng)
                if victim is None:
                    continue
                report.kills_mid_upload += busy
                if stop.wait(settings.restart_after):
                    rs.restart(victim)
                    return
                rs.restart(victim)

        chaos = threading.Thread(target=killer, name="killer", daemon=True)
        chaos.start()
        with ThreadPoolExecutor(settings.concurrency) as pool:
            futures = {pool.submit(upload, item): item for item in plan}
            for future, item in futures.items():
                try:
                    future.result(timeout=max(1.0, deadline - time.monotonic()))
                    report.returned += 1
                except Exception as exc:
                    report.lost.append(f"{item[0]}: {exc}")
        stop.set()
        chaos.join(30)
        del in_flight
        report.kills = rs.kills
        for n in range(settings.replicas):
            if not rs.replicas[n].alive():
                rs.restart(n)
        with RegistryClient(rs.target(), timeout=60) as client:
            _check_files(client, settings, expected, report)
    _leases(database_url, report)
    _gc_and_orphans(database_url, blob_url, report)
    report.seconds = time.monotonic() - began
    return report


def _retrying(call: Any, deadline: float) -> Any:
    """A unary call retried while replicas come and go (creates carry request ids)."""
    while True:
        try:
            return call()
        except RegistryError as exc:
            if not exc.retryable or time.monotonic() > deadline:
                raise
            time.sleep(0.3)


def _check_files(
    client: RegistryClient,
    settings: DrillSettings,
    expected: dict[str, str],
    report: DrillReport,
) -> None:
    seen: dict[str, str] = {}
    for m in range(settings.models):
        model = f"drill-{m}"
        numbers = sorted(int(v.version_number) for v in client.list_versions(model))
        if numbers != list(range(1, len(numbers) + 1)):
            report.gaps.append(f"{model}: {numbers}")
        for number in numbers:
            for f in client.list_files(model, number):
                key = f"{model}/{number}/{f.name.rsplit('/', 1)[-1]}"
                seen[key] = f.sha256
                checked = client.verify_file(model, number, f.name.rsplit("/", 1)[-1])
                out = io.BytesIO()
                client.download_file(model, number, out, file_id=f.name.rsplit("/", 1)[-1])
                ok = (
                    checked.integrity == res.INTEGRITY_STATE_VERIFIED
                    and hashlib.sha256(out.getvalue()).hexdigest() == f.sha256
                )
                if ok:
                    report.verified += 1
                else:
                    report.bad_files.append(key)
    for key, sha in expected.items():
        if seen.get(key) != sha:
            report.lost.append(f"{key}: not visible with its sha256")


def _leases(database_url: str, report: DrillReport) -> None:
    store = open_metadata_store(database_url, max_connections=1)
    try:
        db: Any = store.backend.database
        with db.connection_context():
            tokens = [row[0] or 0 for row in db.execute_sql("SELECT lease_token FROM uploads")]
    finally:
        store.close()
    report.taken_over = sum(1 for t in tokens if t > 1)
    report.most_acquisitions = max(tokens, default=0)


def _gc_and_orphans(database_url: str, blob_url: str, report: DrillReport) -> None:
    """GC with no grace, then compare the blob store with the rows, both ways."""
    backends = connect(
        Config(database_url=database_url, blob_url=blob_url, gc_grace_hours=0, webhook_workers=0)
    )
    try:
        gc = backends.payloads.collect_garbage()
        report.gc = (
            f"removed {gc.uploads} sessions, {gc.blobs} blobs, {gc.orphan_uploads} orphan "
            f"uploads, adopted {gc.orphan_blobs} orphan blobs"
        )
        blobs = open_blob_store(blob_url)
        stored = {digest_of_key(o.name) for o in blobs.list_blobs()}
        staged = [o.name for o in blobs.list_uploads()]
        db: Any = backends.store.backend.database  # type: ignore[attr-defined]
        with db.connection_context():
            referenced = {row[0] for row in db.execute_sql("SELECT DISTINCT sha256 FROM files")}
            active = db.execute_sql("SELECT COUNT(*) FROM uploads WHERE state = 'ACTIVE'")
            (active_count,) = active.fetchone()
        report.orphans += [f"blob {d[:12]} without a file" for d in stored - referenced]
        report.orphans += [f"file blob {d[:12]} missing" for d in referenced - stored]
        report.orphans += [f"staged upload {s[:12]}" for s in staged]
        if active_count:
            report.orphans.append(f"{active_count} ACTIVE upload sessions left")
    finally:
        backends.close()
