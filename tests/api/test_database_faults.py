"""A SQLite database that becomes unwritable or fills its disk: calls are UNAVAILABLE, the
server process survives, and it recovers by itself once the fault is gone.

Reproductions that work as root (who ignores file permissions):
- unwritable: ``chattr +i`` (immutable) on the database files. Writes then fail with EPERM;
  a writable shared mapping of such a file faults with SIGBUS, which is how WAL's ``-shm``
  index used to kill the process.
- full disk: the server runs under a small ``RLIMIT_FSIZE``; writes past it fail with EFBIG
  (the server ignores SIGXFSZ), as they would with ENOSPC. Raising the limit with
  ``prlimit`` on the running process is the disk getting space back.
"""

from __future__ import annotations

import io
import resource
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import grpc
import pytest

from modelregistry.client import RegistryClient, RegistryError
from tests.support.metadata_fixtures import sqlite_url
from tests.support.server_process import ServerProcess

FSIZE_LIMIT = 2 * 1024 * 1024
MAX_WRITES = 2000


def _chattr(flag: str, paths: list[Path]) -> None:
    subprocess.run(["chattr", flag, *map(str, paths)], check=True, capture_output=True)


@contextmanager
def immutable(paths: list[Path]) -> Iterator[None]:
    """Make ``paths`` immutable for the block (skip where the filesystem cannot)."""
    if shutil.which("chattr") is None:
        pytest.skip("chattr is not installed")
    try:
        _chattr("+i", paths)
    except subprocess.CalledProcessError as err:
        pytest.skip(f"cannot make files immutable here: {err.stderr!r}")
    try:
        yield
    finally:
        _chattr("-i", paths)


def _code(call: object) -> grpc.StatusCode:
    try:
        call()  # type: ignore[operator]
    except RegistryError as err:
        return err.code
    return grpc.StatusCode.OK


def test_unwritable_database_is_unavailable_and_recovers(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path)
    db = tmp_path / "metadata.db"
    log = tmp_path / "server.log"
    with (
        ServerProcess(url, (tmp_path / "blobs").as_uri(), log) as server,
        RegistryClient(server.address, retries=0, timeout=30) as client,
    ):
        client.create_model("m1")
        names = ("metadata.db", "metadata.db-wal", "metadata.db-shm")
        files = [tmp_path / n for n in names if (tmp_path / n).exists()]
        with immutable(files):
            assert _code(lambda: client.create_model("m2")) == grpc.StatusCode.UNAVAILABLE
            assert _code(lambda: client.create_version("m1")) == grpc.StatusCode.UNAVAILABLE
            assert server.alive(), f"server died: {server.returncode}\n{log.read_text()[-2000:]}"
            assert client.get_model("m1").name == "models/m1"  # reads still work
        client.create_model("m2")  # recovered, no restart
        assert [m.name for m in client.list_models()] == ["models/m1", "models/m2"]
        assert not db.with_name("metadata.db-shm").exists()  # the WAL index is not mapped
    assert "Traceback" not in log.read_text()


def _limit_file_size() -> None:
    resource.setrlimit(resource.RLIMIT_FSIZE, (FSIZE_LIMIT, resource.RLIM_INFINITY))


def test_full_disk_is_unavailable_and_recovers(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    with (
        ServerProcess(
            sqlite_url(tmp_path), (tmp_path / "blobs").as_uri(), log, preexec_fn=_limit_file_size
        ) as server,
        RegistryClient(server.address, retries=0, timeout=30) as client,
    ):
        client.create_model("m")
        codes = set()
        for _ in range(MAX_WRITES):  # fill the database until it has no room
            code = _code(lambda: client.create_version("m", description="x" * 10_000))
            codes.add(code)
            if code != grpc.StatusCode.OK:
                break
        assert codes == {grpc.StatusCode.OK, grpc.StatusCode.UNAVAILABLE}
        big = io.BytesIO(b"b" * (FSIZE_LIMIT + 1))
        version = client.get_version("m", 1).version_number
        assert _code(lambda: client.upload_file("m", version, big)) == grpc.StatusCode.UNAVAILABLE
        assert server.alive()

        resource.prlimit(server.pid, resource.RLIMIT_FSIZE, (-1, -1))  # space is back
        created = client.create_version("m", description="after")
        assert created.description == "after"
        big.seek(0)
        assert client.upload_file("m", version, big).size_bytes == FSIZE_LIMIT + 1
    assert "Traceback" not in log.read_text()
