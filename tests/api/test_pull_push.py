"""Whole versions through the shipped client: push_directory, pull_version and the cache."""

from __future__ import annotations

import hashlib
import os
import stat
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from modelregistry.client import (
    Cache,
    NotFoundError,
    RegistryClient,
    UnavailableError,
    parse_pull_ref,
)
from modelregistry.v1 import resources_pb2 as res
from modelregistry_server.app import RegistryServer
from modelregistry_server.config import Config
from tests.support.servers import serving
from tests.support.trees import read_tree, write_tree

KiB = 1024


@pytest.fixture
def reg(server: RegistryServer, tmp_path: Path) -> Iterator[RegistryClient]:
    with RegistryClient(
        server.address, timeout=30, chunk_size=64 * KiB, cache_dir=tmp_path / "cache"
    ) as c:
        yield c


def test_parse_pull_ref() -> None:
    assert parse_pull_ref("fraud") == parse_pull_ref("fraud@latest")
    assert parse_pull_ref("fraud@production").version == "production"
    assert parse_pull_ref("fraud:3").pinned
    assert parse_pull_ref("models/fraud/versions/3").version == "3"
    assert not parse_pull_ref("models/fraud").pinned
    with pytest.raises(ValueError):
        parse_pull_ref("Fraud:3")


def test_push_then_pull_round_trip_links_read_only_cached_files(
    reg: RegistryClient, tmp_path: Path
) -> None:
    files = write_tree(tmp_path / "src")
    pushed = reg.push_directory(
        "fraud",
        tmp_path / "src",
        create_model=True,
        alias="production",
        stage="staging",
        labels={"team": "risk"},
        metrics={"auc": 0.97},
        params={"lr": 0.01, "layers": [64, 32]},
        source_commit="3f2a1c",
        datasets=["gs://data/fraud/2026-11"],
    )
    v = pushed.version
    assert v.version_number == 1 and v.aliases == ["production"]
    assert v.labels["team"] == "risk" and v.metrics["auc"] == 0.97
    assert v.source.commit == "3f2a1c" and v.datasets[0].uri == "gs://data/fraud/2026-11"
    assert v.file_count == len(files) and sorted(pushed.uploaded) == sorted(files)

    pulled = reg.pull_version("fraud@production", tmp_path / "out")
    assert pulled.name == "models/fraud/versions/1" and not pulled.offline
    assert read_tree(tmp_path / "out") == files
    assert pulled.manifest_digest == v.manifest_digest
    # Shared content is fetched and stored once; files are links to read-only cache entries.
    distinct = {bytes(d) for d in files.values()}
    assert pulled.fetched_bytes == sum(len(d) for d in distinct)
    blobs = [p for p in (tmp_path / "cache" / "blobs").rglob("*") if p.is_file()]
    assert len([p for p in blobs if not p.name.endswith(".stamp")]) == len(distinct)
    model = (tmp_path / "out" / "model.bin").stat()
    assert model.st_nlink >= 2 and not model.st_mode & stat.S_IWUSR

    again = reg.pull_version("fraud:1", tmp_path / "out")
    assert again.fetched_bytes == 0 and read_tree(tmp_path / "out") == files
    copied = reg.pull_version("fraud:1", tmp_path / "copy", copy=True)
    assert copied.fetched_bytes == 0 and read_tree(tmp_path / "copy") == files
    assert (tmp_path / "copy" / "model.bin").stat().st_nlink == 1
    snapshot = reg.pull_version("fraud")
    assert snapshot.path.is_relative_to(tmp_path / "cache") and read_tree(snapshot.path) == files

    listed = reg.cache.list()
    assert [c.name for c in listed] == ["models/fraud/versions/1"] and listed[0].complete


def test_alias_moved_during_pull_keeps_every_file_of_the_first_version(
    reg: RegistryClient, tmp_path: Path
) -> None:
    first = write_tree(tmp_path / "v1", seed=1)
    write_tree(tmp_path / "v2", seed=2)
    reg.push_directory("fraud", tmp_path / "v1", create_model=True, alias="production")
    reg.push_directory("fraud", tmp_path / "v2")
    moved = threading.Event()

    def move_once(done: int, total: int | None) -> None:
        if done > 0 and not moved.is_set():
            moved.set()
            reg.set_alias("fraud", "production", 2)

    pulled = reg.pull_version("fraud@production", tmp_path / "out", parallel=1, progress=move_once)
    assert moved.is_set() and reg.get_alias("fraud", "production").version.endswith("/2")
    assert pulled.version_number == 1 and read_tree(tmp_path / "out") == first


class _Stop(Exception):
    pass


def test_interrupted_pull_resumes_from_the_kept_bytes(reg: RegistryClient, tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    data = os.urandom(900 * KiB)
    (tmp_path / "src" / "big.bin").write_bytes(data)
    reg.push_directory("fraud", tmp_path / "src", create_model=True)

    def stop_half_way(done: int, total: int | None) -> None:
        if done >= 400 * KiB:
            raise _Stop

    with pytest.raises(_Stop):
        reg.pull_version("fraud:1", tmp_path / "out", progress=stop_half_way)
    assert not (tmp_path / "out" / "big.bin").exists()
    kept = reg.cache.partial_size(hashlib.sha256(data).hexdigest())
    assert kept >= 300 * KiB
    pulled = reg.pull_version("fraud:1", tmp_path / "out")
    assert pulled.fetched_bytes == len(data) - kept and pulled.reused_bytes == kept
    assert (tmp_path / "out" / "big.bin").read_bytes() == data


def test_pinned_pull_from_cache_with_the_server_stopped(
    server_config: Config, tmp_path: Path
) -> None:
    files = write_tree(tmp_path / "src")
    with serving(server_config) as service:
        address = service.address
        with RegistryClient(address, cache_dir=tmp_path / "cache") as reg:
            reg.push_directory("fraud", tmp_path / "src", create_model=True, alias="prod")
            reg.pull_version("fraud@prod", tmp_path / "first")
    with RegistryClient(address, cache_dir=tmp_path / "cache", retries=1, timeout=5) as reg:
        pulled = reg.pull_version("fraud:1", tmp_path / "offline")
        assert pulled.offline and read_tree(tmp_path / "offline") == files
        assert reg.pull_version("fraud:1", tmp_path / "again", offline=True).offline
        with pytest.raises(UnavailableError, match="pinned version"):
            reg.pull_version("fraud@prod", tmp_path / "alias")
        with pytest.raises(UnavailableError, match="not in the cache"):
            reg.pull_version("fraud:2", tmp_path / "missing")
        with pytest.raises(NotFoundError):
            reg.pull_version("fraud:2", tmp_path / "missing", offline=True)


def test_two_concurrent_pulls_fetch_each_content_once(reg: RegistryClient, tmp_path: Path) -> None:
    files = write_tree(tmp_path / "src")
    reg.push_directory("fraud", tmp_path / "src", create_model=True)
    results: list[int] = []
    errors: list[BaseException] = []

    def pull(n: int) -> None:
        try:
            results.append(reg.pull_version("fraud:1", tmp_path / f"out{n}").fetched_bytes)
        except BaseException as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=pull, args=(n,)) for n in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors and len(results) == 2
    assert sum(results) == sum(len(d) for d in {bytes(d) for d in files.values()})
    assert read_tree(tmp_path / "out0") == read_tree(tmp_path / "out1") == files


def test_corrupt_cache_entry_is_detected_and_fetched_again(
    reg: RegistryClient, tmp_path: Path
) -> None:
    files = write_tree(tmp_path / "src")
    reg.push_directory("fraud", tmp_path / "src", create_model=True)
    reg.pull_version("fraud:1", tmp_path / "out")
    sha = hashlib.sha256(files["model.bin"]).hexdigest()
    blob = reg.cache.blob_path(sha)
    # A write changes the mtime: the cheap check on the next use sees it.
    blob.chmod(0o644)
    with open(blob, "r+b") as f:
        f.write(b"X")
    pulled = reg.pull_version("fraud:1", tmp_path / "out2")
    assert pulled.fetched_bytes == len(files["model.bin"])
    assert (tmp_path / "out2" / "model.bin").read_bytes() == files["model.bin"]
    # Damage that keeps size and mtime passes the cheap check; verify re-hashes and finds it.
    st = blob.stat()
    blob.chmod(0o644)
    with open(blob, "r+b") as f:
        f.seek(10)
        f.write(b"Y")
    os.utime(blob, ns=(st.st_atime_ns, st.st_mtime_ns))
    report = reg.cache.verify()
    assert not report.ok and [c.sha256 for c in report.corrupt] == [sha]
    assert report.corrupt[0].versions == (f"{reg._registry_key}  models/fraud/versions/1",)
    assert reg.cache.verify().corrupt == ()
    pulled = reg.pull_version("fraud:1", tmp_path / "out3")
    assert pulled.fetched_bytes == len(files["model.bin"])
    assert reg.cache.verify().ok


def test_interrupted_push_resumes_without_sending_stored_files(
    reg: RegistryClient, tmp_path: Path
) -> None:
    files = write_tree(tmp_path / "src")
    sent: list[int] = []

    def stop_late(done: int, total: int | None) -> None:
        sent.append(done)
        if done > len(files["model.bin"]) + 10 * KiB:  # the largest file went first
            raise _Stop

    with pytest.raises(_Stop):
        reg.push_directory(
            "fraud", tmp_path / "src", create_model=True, parallel=1, progress=stop_late
        )
    draft = reg.get_version("fraud", 1)
    assert draft.state == res.VERSION_STATE_DRAFT
    stored = {f.name.split("/files/")[1] for f in reg.list_files("fraud", 1)}
    assert stored
    result = reg.push_directory("fraud", tmp_path / "src", alias="prod")
    assert result.resumed and result.version.version_number == 1
    assert set(result.skipped) == stored and set(result.uploaded) == set(files) - stored
    assert reg.pull_version("fraud@prod", tmp_path / "out").version_number == 1
    assert read_tree(tmp_path / "out") == files
    # The same push again finds the sealed version and creates no copy.
    again = reg.push_directory("fraud", tmp_path / "src", alias="prod")
    assert again.resumed and again.version.version_number == 1 and not again.uploaded


def test_prune_forgets_old_versions_and_unused_contents(
    reg: RegistryClient, tmp_path: Path
) -> None:
    write_tree(tmp_path / "v1", seed=1)
    write_tree(tmp_path / "v2", seed=2)
    reg.push_directory("fraud", tmp_path / "v1", create_model=True)
    reg.push_directory("fraud", tmp_path / "v2")
    reg.pull_version("fraud:1", tmp_path / "o1")
    reg.pull_version("fraud:2", tmp_path / "o2")
    cache: Cache = reg.cache
    assert cache.prune().versions == ()
    os.utime(next((tmp_path / "cache" / "manifests").rglob("*.json")), (0, 0))
    before = cache.size_bytes()
    report = cache.prune(older_than=timedelta(days=1))
    assert len(report.versions) == 1 and report.freed_bytes > 0
    assert cache.size_bytes() == before - report.freed_bytes
    assert len(cache.list()) == 1
    assert cache.prune(max_bytes=0).versions and cache.list() == []
    assert cache.size_bytes() == 0
    # The pulled directories keep their files (links survive the cache entries).
    assert (tmp_path / "o1" / "model.bin").stat().st_size == 300 * KiB


def test_files_shared_between_versions_are_fetched_and_stored_once(
    reg: RegistryClient, tmp_path: Path
) -> None:
    files = write_tree(tmp_path / "src")
    reg.push_directory("fraud", tmp_path / "src", create_model=True)
    (tmp_path / "src" / "config.json").write_bytes(b'{"changed": true}')
    second = reg.push_directory("fraud", tmp_path / "src")
    assert second.version.version_number == 2
    reg.pull_version("fraud:1", tmp_path / "v1")
    pulled = reg.pull_version("fraud:2", tmp_path / "v2")
    assert pulled.fetched_bytes == len(b'{"changed": true}')
    assert pulled.reused_bytes == sum(len(d) for d in {bytes(d) for d in files.values()}) - len(
        files["config.json"]
    )
    assert os.path.samefile(tmp_path / "v1" / "model.bin", tmp_path / "v2" / "model.bin")
    assert {v.name for v in reg.cache.list()} == {
        "models/fraud/versions/1",
        "models/fraud/versions/2",
    }
