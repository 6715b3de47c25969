"""Throwaway PostgreSQL clusters for tests: ``initdb`` into a temp dir, ``pg_ctl`` on a free port.

Binaries are looked up on PATH, then under ``/usr/lib/postgresql/*/bin``. When they are missing
the caller is skipped, unless ``MODELREGISTRY_REQUIRE_POSTGRES=1`` (CI), where it fails. As root
the cluster runs as the ``postgres`` user (PostgreSQL refuses to run as root).
"""

from __future__ import annotations

import itertools
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg2
import pytest

REQUIRE_ENV = "MODELREGISTRY_REQUIRE_POSTGRES"
_SUPERUSER = "postgres"


def find_bindir() -> Path | None:
    """The directory holding ``initdb`` and ``pg_ctl``, or None."""
    initdb = shutil.which("initdb")
    if initdb and shutil.which("pg_ctl"):
        return Path(initdb).resolve().parent
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
        reverse=True,
    )
    for bindir in candidates:
        if (bindir / "initdb").exists() and (bindir / "pg_ctl").exists():
            return bindir
    return None


def require_bindir() -> Path:
    """:func:`find_bindir`, or skip the test (fail it when CI requires PostgreSQL)."""
    bindir = find_bindir()
    if bindir is None:
        message = "PostgreSQL binaries (initdb, pg_ctl) not found"
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail(f"{message}, but {REQUIRE_ENV}=1", pytrace=False)
        pytest.skip(message)
    return bindir


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class PostgresCluster:
    """An initialised cluster in a temp dir: :meth:`start`, :meth:`stop`, then :meth:`destroy`."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.root = Path(tempfile.mkdtemp(prefix="modelregistry-pg-"))
        self.datadir = self.root / "data"
        self.sockdir = self.root / "sock"
        self.logfile = self.root / "postgres.log"
        self.port = free_port()
        self._names = itertools.count(1)
        self._as_user: list[str] = []
        try:
            self.sockdir.mkdir()
            if os.geteuid() == 0:
                self._as_user = ["runuser", "-u", _SUPERUSER, "--"]
                subprocess.run(["chown", "-R", _SUPERUSER, str(self.root)], check=True)
            self._run(
                "initdb", "-A", "trust", "-U", _SUPERUSER, "-E", "UTF8", "--no-sync",
                *self._linguistic_collation(), "-D", str(self.datadir),
            )  # fmt: skip
        except BaseException:
            shutil.rmtree(self.root, ignore_errors=True)
            raise

    def _linguistic_collation(self) -> list[str]:
        """initdb options for a non-bytewise default collation (as most production servers
        have), so tests notice string order that depends on it; [] if unsupported."""
        usage = subprocess.run(
            [str(self.bindir / "initdb"), "--help"], capture_output=True, text=True, check=False
        ).stdout
        if "--locale-provider" not in usage:
            return []
        return ["--locale-provider=icu", "--icu-locale=en-US"]

    def _run(self, tool: str, *args: str) -> None:
        command = [*self._as_user, str(self.bindir / tool), *args]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            log = self.logfile.read_text() if self.logfile.exists() else ""
            raise RuntimeError(
                f"{tool} failed ({result.returncode}): {result.stdout}{result.stderr}{log}"
            )

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        options = (
            f"-p {self.port} -k {self.sockdir} -c listen_addresses=127.0.0.1 "
            "-c max_connections=300 -c fsync=off -c synchronous_commit=off "
            "-c full_page_writes=off"
        )
        self._run(
            "pg_ctl", "-D", str(self.datadir), "-l", str(self.logfile), "-o", options,
            "-w", "start",
        )  # fmt: skip

    def stop(self) -> None:
        """Stop the server (fast mode: running sessions are disconnected)."""
        self._run("pg_ctl", "-D", str(self.datadir), "-m", "fast", "-w", "stop")

    def destroy(self) -> None:
        """Stop the server if it runs and delete the cluster directory."""
        if (self.datadir / "postmaster.pid").exists():
            self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def url(self, dbname: str) -> str:
        """A ``postgresql://`` URL for a database of this cluster."""
        return f"postgresql://{_SUPERUSER}@127.0.0.1:{self.port}/{dbname}"

    def create_database(self) -> str:
        """A new, empty database; returns its URL."""
        name = f"test_{os.getpid()}_{next(self._names)}"
        self._admin(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, url: str) -> None:
        """Drop a database made by :meth:`create_database`, disconnecting its sessions. A
        thousand left behind cost gigabytes and over a minute of clean-up at the end."""
        name = url.rsplit("/", 1)[1]
        self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def _admin(self, statement: str) -> None:
        """Run one statement as the superuser on the ``postgres`` database, outside a
        transaction (CREATE and DROP DATABASE need that)."""
        conn = psycopg2.connect(
            host="127.0.0.1", port=self.port, user=_SUPERUSER, dbname="postgres"
        )
        try:
            conn.autocommit = True
            with conn.cursor() as cursor:
                cursor.execute(statement)
        finally:
            conn.close()


@contextmanager
def running_cluster() -> Iterator[PostgresCluster]:
    """A started throwaway cluster, stopped and deleted on exit (skips if binaries are missing)."""
    cluster = PostgresCluster(require_bindir())
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.destroy()
