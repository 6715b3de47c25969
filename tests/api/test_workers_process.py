"""``--workers 2``: a real supervisor with two worker processes on one port (SQLite).

One supervisor serves the module's tests in order: both workers serve calls and write the
shared SQLite file, one worker holds the maintenance lease, a worker killed with SIGKILL is
restarted (health NOT_SERVING meanwhile, the lease taken over, calls keep working), and SIGTERM
drains every worker and exits 0. Separately: ports and SQLite files held by another process are
refused before any worker starts."""

from __future__ import annotations

import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import grpc
import psutil
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families

from modelregistry.client import RegistryClient, channel_options
from modelregistry_server.__main__ import main
from modelregistry_server.storage.metadata.database import open_database
from modelregistry_server.storage.metadata.migrations import LATEST_VERSION, migrate, schema_version
from tests.support.metadata_fixtures import sqlite_url
from tests.support.server_process import START_TIMEOUT_S, ServerProcess

pytestmark = pytest.mark.slow

WAIT_S = 20.0  # bound on every wait for the fleet to change
LEASE_S = 1.5  # --maintenance-lease-seconds: a dead holder's lease is taken over this soon
POOL = 3  # --db-max-connections of each worker
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def _own_channel(address: str) -> grpc.Channel:
    """A channel with a TCP connection of its own (not shared through the global pool), so
    the kernel picks a worker for it."""
    options = [*channel_options(), ("grpc.use_local_subchannel_pool", 1)]
    return grpc.insecure_channel(address, options=options)


def _health(address: str) -> int | None:
    """Health of service "" on a new connection; None if the call failed."""
    with _own_channel(address) as channel:
        try:
            status: int = (
                health_pb2_grpc.HealthStub(channel)
                .Check(health_pb2.HealthCheckRequest(), timeout=5)
                .status
            )
        except grpc.RpcError:
            return None
        return status


def _workers(server: ServerProcess) -> list[psutil.Process]:
    return psutil.Process(server.pid).children()


def _wait(predicate: object, what: str, log: Path) -> None:
    deadline = time.monotonic() + WAIT_S
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"{what}:\n{log.read_text()[-3000:]}"
        time.sleep(0.05)


def _lease_holder_pid(database: Path) -> int | None:
    """The pid in the unexpired maintenance lease's holder name (host/pid/random)."""
    with sqlite3.connect(database, timeout=10) as db:
        rows = db.execute(
            "SELECT holder FROM leases WHERE name = 'maintenance' AND expire_time > ?",
            (int(time.time() * 1_000_000),),
        ).fetchall()
    assert len(rows) <= 1
    return int(rows[0][0].split("/")[1]) if rows else None


class Fleet:
    def __init__(self, server: ServerProcess, database: Path) -> None:
        self.server = server
        self.database = database
        self.port = int(server.address.rsplit(":", 1)[1])
        found = re.search(
            r"/metrics of the workers on (http://\S+/metrics)", server.log.read_text()
        )
        assert found, server.log.read_text()[-3000:]
        self.metrics_url = found.group(1)

    def scrape(self) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        with urllib.request.urlopen(self.metrics_url, timeout=10) as reply:
            text = reply.read().decode()
        return {
            (s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }


def _created(samples: dict[tuple[str, frozenset[tuple[str, str]]], float]) -> float:
    labels = {
        "grpc_type": "unary",
        "grpc_service": "modelregistry.v1.ModelRegistry",
        "grpc_method": "CreateModel",
        "grpc_code": "OK",
    }
    return samples.get(("grpc_server_handled_total", frozenset(labels.items())), 0.0)


def _gauge(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str) -> float:
    return samples.get((name, frozenset()), -1.0)


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    root = tmp_path_factory.mktemp("workers")
    server = ServerProcess(
        sqlite_url(root / "db"),
        (root / "blobs").as_uri(),
        root / "server.log",
        extra_args=[
            "--workers",
            "2",
            "--http-listen",
            "127.0.0.1:0",
            "--maintenance-interval-seconds",
            "3600",
            "--maintenance-lease-seconds",
            str(LEASE_S),
            "--metrics-listen",
            "127.0.0.1:0",
            "--db-max-connections",
            str(POOL),
        ],
    )
    with server:
        yield Fleet(server, root / "db" / "metadata.db")


def test_both_workers_serve_calls_and_share_the_sqlite_file(fleet: Fleet) -> None:
    address = fleet.server.address
    _wait(lambda: _health(address) == SERVING, "the fleet turns SERVING", fleet.server.log)
    channels = [_own_channel(address) for _ in range(16)]
    errors: list[BaseException] = []

    def write(n: int) -> None:
        try:
            with RegistryClient(channel=channels[n], timeout=30) as client:
                for i in range(5):
                    model = client.create_model(f"m-{n}-{i}")
                    model.description = "shared file"
                    client.update_model(model, update_mask=["description"])
        except BaseException as exc:
            errors.append(exc)

    try:
        threads = [threading.Thread(target=write, args=(n,)) for n in range(len(channels))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not errors, errors
        # Which worker holds each connection: the kernel spread 16 over both.
        served = {
            w.pid: sum(
                1
                for c in w.net_connections(kind="tcp")
                if c.status == psutil.CONN_ESTABLISHED and c.laddr.port == fleet.port
            )
            for w in _workers(fleet.server)
        }
        assert len(served) == 2 and all(served.values()), served
    finally:
        for channel in channels:
            channel.close()
    with RegistryClient(address) as client:
        names = {m.name for m in client.list_models(page_size=100)}
    assert len({n for n in names if n.startswith("models/m-")}) == 80
    assert "database is locked" not in fleet.server.log.read_text()


def test_the_supervisor_serves_the_sum_of_both_workers_metrics(fleet: Fleet) -> None:
    """The 80 CreateModel calls above were spread over both workers (asserted there): the
    supervisor's /metrics counts them all; each worker's pool is in the sum."""
    samples = fleet.scrape()
    assert _created(samples) == 80
    _wait(
        lambda: _gauge(fleet.scrape(), "modelregistry_db_connections_max") == 2 * POOL,
        "both workers' pools in the sum",
        fleet.server.log,
    )
    assert _gauge(samples, "modelregistry_webhooks_behind") == 0
    text = fleet.server.log.read_text()
    assert "cannot serve metrics" not in text


def test_the_web_interface_is_served_on_the_shared_port(fleet: Fleet) -> None:
    for _ in range(4):  # new connections, spread over the workers
        with urllib.request.urlopen(f"{fleet.server.web_url}/", timeout=10) as page:
            assert page.status == 200


def test_one_worker_holds_the_maintenance_lease(fleet: Fleet) -> None:
    pids = {w.pid for w in _workers(fleet.server)}
    assert _lease_holder_pid(fleet.database) in pids
    taken = fleet.server.log.read_text().count("lease maintenance: taken by this process")
    assert taken == 1


def test_a_killed_worker_is_restarted_and_calls_keep_working(fleet: Fleet) -> None:
    address = fleet.server.address
    holder = _lease_holder_pid(fleet.database)
    assert holder is not None
    survivor = next(w.pid for w in _workers(fleet.server) if w.pid != holder)
    os.kill(holder, signal.SIGKILL)

    def listening() -> set[int]:
        pids = set()
        for w in _workers(fleet.server):
            try:
                conns = w.net_connections(kind="tcp")
            except psutil.Error:  # the killed one, until reaped
                continue
            if any(c.status == psutil.CONN_LISTEN and c.laddr.port == fleet.port for c in conns):
                pids.add(w.pid)
        return pids

    def survivor_alone_not_serving() -> bool:
        # Until the replacement listens (the restart waits 0.5 s), every connection reaches
        # the survivor, which must not say SERVING while its sibling is down.
        if listening() != {survivor}:
            return False
        return _health(address) == NOT_SERVING and listening() == {survivor}

    _wait(survivor_alone_not_serving, "the survivor turns NOT_SERVING", fleet.server.log)

    def restarted() -> bool:
        pids = {w.pid for w in _workers(fleet.server)}
        return len(pids) == 2 and holder not in pids and _health(address) == SERVING

    _wait(restarted, "the killed worker is replaced", fleet.server.log)
    text = fleet.server.log.read_text()
    assert f"(pid {holder}) exited with status -9; restarting in 0.5 s" in text
    # The dead holder's lease expired and a live worker took it over.
    live = {w.pid for w in _workers(fleet.server)}
    _wait(
        lambda: _lease_holder_pid(fleet.database) in live, "the lease taken over", fleet.server.log
    )
    assert survivor in live
    for n in range(8):
        with _own_channel(address) as channel, RegistryClient(channel=channel) as client:
            client.create_model(f"after-{n}")


def test_metrics_keep_a_dead_workers_counts_and_drop_its_live_gauges(fleet: Fleet) -> None:
    """After the restart above: the killed worker's calls still count (its files stay), its
    pool left the sum (mark_process_dead), the replacement's joined it."""
    samples = fleet.scrape()
    assert _created(samples) == 80 + 8
    _wait(
        lambda: _gauge(fleet.scrape(), "modelregistry_db_connections_max") == 2 * POOL,
        "the replacement's pool replaces the dead one's",
        fleet.server.log,
    )


def test_sigterm_drains_every_worker_and_exits_zero(fleet: Fleet) -> None:
    workers = _workers(fleet.server)
    os.kill(fleet.server.pid, signal.SIGTERM)  # the supervisor alone: it tells the workers
    deadline = time.monotonic() + WAIT_S
    while fleet.server.returncode is None:
        assert time.monotonic() < deadline, fleet.server.log.read_text()[-3000:]
        time.sleep(0.05)
    assert fleet.server.returncode == 0
    assert not [w for w in workers if w.is_running() and w.status() != psutil.STATUS_ZOMBIE]
    text = fleet.server.log.read_text()
    assert "all workers stopped" in text
    assert "Traceback" not in text


def _supervisor(
    tmp_path: Path, listen: str, database: str, *extra: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "modelregistry_server",
            "--workers",
            "2",
            "--listen",
            listen,
            "--database-url",
            database,
            "--blob-url",
            (tmp_path / "other-blobs").as_uri(),
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT_S,
    )


@pytest.mark.parametrize("reuse_port", [False, True], ids=["plain", "so_reuseport"])
def test_a_port_another_process_holds_is_refused(tmp_path: Path, reuse_port: bool) -> None:
    """Also when the holder set SO_REUSEPORT itself (the same user could share it): the
    supervisor binds without it first."""
    with socket.socket() as holder:
        if reuse_port:
            holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        address = f"127.0.0.1:{holder.getsockname()[1]}"
        done = _supervisor(tmp_path, address, sqlite_url(tmp_path / "db"))
    assert done.returncode == 1, done.stderr
    ours = [line for line in done.stderr.splitlines() if line.startswith("modelregistry:")]
    assert ours == [
        f"modelregistry: cannot listen on {address}: the address is in use or not available"
    ]
    assert "listening" not in done.stdout
    assert "worker" not in done.stderr  # refused before any worker started


def test_a_sqlite_file_a_single_process_holds_is_refused(tmp_path: Path) -> None:
    database = sqlite_url(tmp_path / "db")
    with ServerProcess(database, (tmp_path / "blobs").as_uri(), tmp_path / "single.log"):
        done = _supervisor(tmp_path, "127.0.0.1:0", database)
    assert done.returncode == 2, done.stderr
    assert "cannot start: another process holds the SQLite database" in done.stderr
    assert "worker" not in done.stderr


def test_migrate_check_refuses_a_schema_behind_before_any_worker_starts(tmp_path: Path) -> None:
    """``--migrate check`` in the supervisor: exit 2 with the single process's message and
    nothing migrated; after ``modelregistry-server migrate`` the same command serves."""
    database = sqlite_url(tmp_path / "db")
    backend = open_database(database, max_connections=1)
    try:
        migrate(backend, target=LATEST_VERSION - 1)
    finally:
        backend.close()
    done = _supervisor(tmp_path, "127.0.0.1:0", database, "--migrate", "check")
    assert done.returncode == 2, done.stderr
    assert "run `modelregistry-server migrate` first" in done.stderr
    assert "worker" not in done.stderr and "listening" not in done.stdout
    backend = open_database(database, max_connections=1)
    try:
        assert schema_version(backend) == LATEST_VERSION - 1
    finally:
        backend.close()
    assert main(["migrate", "--database-url", database]) == 0
    checked = ServerProcess(
        database,
        (tmp_path / "blobs").as_uri(),
        tmp_path / "checked.log",
        extra_args=["--workers", "2", "--migrate", "check"],
    )
    with checked:
        _wait(lambda: _health(checked.address) == SERVING, "the fleet serves", checked.log)
        assert len(_workers(checked)) == 2


def test_a_metrics_port_another_process_holds_is_refused(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        address = f"127.0.0.1:{holder.getsockname()[1]}"
        done = _supervisor(
            tmp_path, "127.0.0.1:0", sqlite_url(tmp_path / "db"), "--metrics-listen", address
        )
    assert done.returncode == 1, done.stderr
    assert f"modelregistry: cannot serve metrics on {address}: Address already in use" in (
        done.stderr
    )
    assert "worker" not in done.stderr
