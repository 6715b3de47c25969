"""``modelregistry push`` / ``pull`` / ``cache`` through the installed script in subprocesses,
against a real server: round trips of a directory tree, an alias moved during a pull, kill -9
of a pull and of a push then a rerun (bytes sent again measured by a counting proxy), offline
pulls, concurrent pulls, and damaged cache entries."""

from __future__ import annotations

import hashlib
import os
import pty
import select
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from modelregistry.client import Cache, RegistryClient
from modelregistry_server.app import RegistryServer
from modelregistry_server.config import Config
from tests.cli.conftest import SCRIPT, Cli, base_env
from tests.support.byte_proxy import ByteProxy
from tests.support.servers import serving
from tests.support.trees import read_tree, write_tree

KiB = 1024
MiB = 1024 * KiB
# Headers, metadata calls and HTTP/2 framing of a rerun, on top of the payload bytes.
OVERHEAD = 128 * KiB
WAIT_S = 30.0
PIECE = 256 * KiB  # the test server's upload_piece_bytes


def _wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    return tmp_path / "cache"


@pytest.fixture
def run(cli: Cli, cache_dir: Path) -> Cli:
    """The command with its own cache directory."""
    return Cli({**cli.env, "MODELREGISTRY_CACHE_DIR": str(cache_dir)})


@pytest.fixture
def proxy(server: RegistryServer) -> Iterator[ByteProxy]:
    with ByteProxy(server.address) as p:
        yield p


def _popen(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [str(SCRIPT), *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def _finish(process: subprocess.Popen[str]) -> tuple[int, str, str]:
    try:
        out, err = process.communicate(timeout=WAIT_S * 2)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        out, err = process.communicate()
    return process.returncode, out, err


def _kill9(process: subprocess.Popen[str]) -> None:
    os.killpg(process.pid, signal.SIGKILL)
    process.communicate(timeout=WAIT_S)
    assert process.returncode == -signal.SIGKILL


def test_push_and_pull_a_directory_tree(run: Cli, tmp_path: Path) -> None:
    files = write_tree(tmp_path / "src", model_bytes=200 * KiB)
    pushed = run(
        "push", str(tmp_path / "src"), "--model", "fraud", "--create-model",
        "--alias", "production", "--stage", "staging", "--label", "team=risk",
        "--metric", "auc=0.97", "--param", "layers=[64,32]", "--param", "opt=adam",
        "--source-commit", "3f2a1c", "--dataset", "gs://data/fraud", "-o", "json",
    )  # fmt: skip
    assert pushed.status == 0, pushed.stderr
    doc = pushed.json()
    assert list(doc) == ["version", "resumed", "uploaded", "skipped"]
    v = doc["version"]
    assert v["name"] == "models/fraud/versions/1" and v["aliases"] == ["production"]
    assert v["stage"] == "STAGING" and v["state"] == "READY"
    assert v["labels"]["team"] == "risk" and v["metrics"] == {"auc": 0.97}
    assert v["parameters"] == {"layers": [64, 32], "opt": "adam"}
    assert v["source"]["commit"] == "3f2a1c" and v["datasets"][0]["uri"] == "gs://data/fraud"
    assert sorted(doc["uploaded"]) == sorted(files) and not doc["resumed"]

    pulled = run("pull", "fraud@production", str(tmp_path / "out"), "-o", "json")
    assert pulled.status == 0, pulled.stderr
    got = pulled.json()
    assert got["name"] == "models/fraud/versions/1" and not got["offline"]
    assert got["manifest_digest"] == v["manifest_digest"]
    assert read_tree(tmp_path / "out") == files
    distinct = sum(len(d) for d in {bytes(d) for d in files.values()})
    assert got["fetched_bytes"] == distinct  # shared content once
    again = run("pull", "fraud:1", str(tmp_path / "out"), "-o", "json").json()
    assert again["fetched_bytes"] == 0 and read_tree(tmp_path / "out") == files
    # A single file, and a default destination named after the model.
    single = run("push", str(tmp_path / "src" / "config.json"), "-m", "fraud", "-o", "json")
    assert single.json()["uploaded"] == ["config.json"]
    table = run("pull", "fraud", cwd=tmp_path)
    assert table.status == 0, table.stderr
    assert "models/fraud/versions/2" in table.stdout
    assert read_tree(tmp_path / "fraud") == {"config.json": files["config.json"]}
    (tmp_path / "nothing").mkdir()
    empty = run("push", str(tmp_path / "nothing"), "-m", "fraud")
    assert empty.status == 2 and "no files to push" in empty.stderr
    assert run("pull", "Fraud:1").status == 2


def test_an_alias_moved_during_a_pull_never_mixes_versions(
    run: Cli, proxy: ByteProxy, client: RegistryClient, tmp_path: Path
) -> None:
    write_tree(tmp_path / "v1", seed=1, model_bytes=200 * KiB)
    (tmp_path / "v1" / "big.bin").write_bytes(os.urandom(2 * MiB))
    first = read_tree(tmp_path / "v1")
    write_tree(tmp_path / "v2", seed=2, model_bytes=200 * KiB)
    (tmp_path / "v2" / "big.bin").write_bytes(os.urandom(2 * MiB))
    assert run("push", str(tmp_path / "v1"), "-m", "fraud", "--create-model",
               "-a", "prod").status == 0  # fmt: skip
    assert run("push", str(tmp_path / "v2"), "-m", "fraud").status == 0
    proxy.rate = 2 * MiB
    env = {**run.env, "MODELREGISTRY_ADDRESS": proxy.address}
    pull = _popen(env, "pull", "fraud@prod", str(tmp_path / "out"), "--parallel", "1")
    _wait_for(lambda: proxy.received > 256 * KiB, "the pull to start receiving")
    client.set_alias("fraud", "prod", 2)
    status, _, err = _finish(pull)
    assert status == 0, err
    assert client.get_alias("fraud", "prod").version.endswith("/2")
    assert read_tree(tmp_path / "out") == first


def test_kill_9_of_a_pull_then_a_rerun_fetches_only_the_rest(
    run: Cli, proxy: ByteProxy, cache_dir: Path, tmp_path: Path
) -> None:
    (tmp_path / "src").mkdir()
    data = os.urandom(6 * MiB)
    (tmp_path / "src" / "weights.bin").write_bytes(data)
    (tmp_path / "src" / "small.txt").write_bytes(b"done first")
    assert run("push", str(tmp_path / "src"), "-m", "fraud", "--create-model").status == 0
    sha = hashlib.sha256(data).hexdigest()
    cache = Cache(cache_dir)
    proxy.rate = 3 * MiB
    env = {**run.env, "MODELREGISTRY_ADDRESS": proxy.address}
    pull = _popen(env, "pull", "fraud:1", str(tmp_path / "out"))
    _wait_for(lambda: cache.partial_size(sha) >= 2 * MiB, "2 MiB in the partial file")
    _kill9(pull)
    kept = cache.partial_size(sha)
    assert 2 * MiB <= kept < len(data) and not (tmp_path / "out").exists()

    proxy.reset()
    proxy.rate = None
    rerun = Cli(env)("pull", "fraud:1", str(tmp_path / "out"), "-o", "json")
    assert rerun.status == 0, rerun.stderr
    doc = rerun.json()
    assert doc["reused_bytes"] >= kept and doc["fetched_bytes"] <= len(data) - kept + 10
    # Measured on the wire: only the missing bytes came again.
    assert len(data) - kept <= proxy.received <= len(data) - kept + OVERHEAD
    assert (tmp_path / "out" / "weights.bin").read_bytes() == data


def _committed(client: RegistryClient, model: str) -> int:
    """Bytes of the model's latest version the server holds: stored files + committed parts."""
    version = client.list_versions(model, order_by="version_number desc", page_size=1)
    number = next(iter(version)).version_number
    stored = sum(f.size_bytes for f in client.list_files(model, number))
    active = client.list_uploads(model, number, filter="state = ACTIVE")
    return stored + sum(u.committed_size_bytes for u in active)


def test_kill_9_of_a_push_then_a_rerun_sends_only_what_was_not_committed(
    run: Cli, proxy: ByteProxy, client: RegistryClient, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    total = 0
    for n in range(4):
        data = os.urandom(2 * MiB)
        (src / f"shard-{n}.bin").write_bytes(data)
        total += len(data)
    client.create_model("fraud")
    proxy.rate = 3 * MiB
    env = {**run.env, "MODELREGISTRY_ADDRESS": proxy.address}
    push = _popen(env, "push", str(src), "-m", "fraud", "--parallel", "2")

    def enough() -> bool:
        try:
            return _committed(client, "fraud") >= 3 * MiB
        except StopIteration:
            return False

    _wait_for(enough, "3 MiB committed")
    _kill9(push)
    time.sleep(0.5)  # the server notices the dropped streams
    committed = _committed(client, "fraud")
    assert 3 * MiB <= committed < total

    proxy.reset()
    proxy.rate = None
    rerun = Cli(env)("push", str(src), "-m", "fraud", "-o", "json")
    assert rerun.status == 0, rerun.stderr
    doc = rerun.json()
    assert doc["resumed"] and doc["version"]["name"] == "models/fraud/versions/1"
    assert doc["version"]["state"] == "READY" and doc["version"]["file_count"] == 4
    # Measured on the wire: what the server had committed is not sent again (a piece that
    # was being written when the streams broke may still land: one piece of slack).
    assert total - committed - PIECE <= proxy.sent <= total - committed + OVERHEAD
    assert [v.version_number for v in client.list_versions("fraud")] == [1]


def test_a_pinned_pull_works_from_the_cache_with_the_server_stopped(
    cli_config: Config, home: Path, cache_dir: Path, tmp_path: Path
) -> None:
    files = write_tree(tmp_path / "src", model_bytes=200 * KiB)
    with serving(cli_config) as service:
        run = Cli({**base_env(home), "MODELREGISTRY_ADDRESS": service.address,
                   "MODELREGISTRY_CACHE_DIR": str(cache_dir)})  # fmt: skip
        assert run("push", str(tmp_path / "src"), "-m", "fraud", "--create-model",
                   "-a", "prod").status == 0  # fmt: skip
        assert run("pull", "fraud@prod", str(tmp_path / "first")).status == 0
    offline = run("pull", "fraud:1", str(tmp_path / "offline"), "-o", "json")
    assert offline.status == 0, offline.stderr
    assert offline.json()["offline"] and read_tree(tmp_path / "offline") == files
    by_alias = run("pull", "fraud@prod", str(tmp_path / "alias"))
    assert by_alias.status == 5 and "pinned version" in by_alias.stderr
    never = run("pull", "fraud:2", str(tmp_path / "never"))
    assert never.status == 5 and "not in the cache" in never.stderr
    assert run("pull", "fraud:2", "--offline", str(tmp_path / "never")).status == 3


def test_two_concurrent_pulls_fetch_each_content_once(
    run: Cli, proxy: ByteProxy, tmp_path: Path
) -> None:
    write_tree(tmp_path / "src", model_bytes=200 * KiB)
    (tmp_path / "src" / "big.bin").write_bytes(os.urandom(3 * MiB))
    files = read_tree(tmp_path / "src")
    assert run("push", str(tmp_path / "src"), "-m", "fraud", "--create-model").status == 0
    proxy.rate = 4 * MiB
    env = {**run.env, "MODELREGISTRY_ADDRESS": proxy.address}
    pulls = [_popen(env, "pull", "fraud:1", str(tmp_path / f"out{n}")) for n in range(2)]
    for pull in pulls:
        status, _, err = _finish(pull)
        assert status == 0, err
    assert read_tree(tmp_path / "out0") == read_tree(tmp_path / "out1") == files
    distinct = sum(len(d) for d in {bytes(d) for d in files.values()})
    assert distinct <= proxy.received <= distinct + OVERHEAD


def test_a_damaged_cache_file_is_fetched_again_and_verify_reports_it(
    run: Cli, cache_dir: Path, tmp_path: Path
) -> None:
    files = write_tree(tmp_path / "src", model_bytes=200 * KiB)
    assert run("push", str(tmp_path / "src"), "-m", "fraud", "--create-model").status == 0
    assert run("pull", "fraud:1", str(tmp_path / "out")).status == 0
    sha = hashlib.sha256(files["model.bin"]).hexdigest()
    blob = Cache(cache_dir).blob_path(sha)
    blob.chmod(0o644)
    with open(blob, "r+b") as f:  # a write: the cheap check on the next use sees it
        f.write(b"!")
    again = run("pull", "fraud:1", str(tmp_path / "again"), "-o", "json")
    assert again.status == 0, again.stderr
    assert again.json()["fetched_bytes"] == len(files["model.bin"])
    assert (tmp_path / "again" / "model.bin").read_bytes() == files["model.bin"]

    # Damage that keeps the size and the mtime: only a full verify finds it.
    st = blob.stat()
    blob.chmod(0o644)
    with open(blob, "r+b") as f:
        f.seek(1000)
        f.write(b"?")
    os.utime(blob, ns=(st.st_atime_ns, st.st_mtime_ns))
    verify = run("cache", "verify", "-o", "json")
    assert verify.status == 1, verify.stderr
    report = verify.json()
    assert not report["ok"] and [c["sha256"] for c in report["corrupt"]] == [sha]
    assert report["corrupt"][0]["versions"][0].endswith("models/fraud/versions/1")
    listed = run("cache", "list", "-o", "json").json()
    assert [(v["name"], v["complete"]) for v in listed["versions"]] == [
        ("models/fraud/versions/1", False)
    ]
    assert run("pull", "fraud:1", str(tmp_path / "third")).status == 0
    assert run("cache", "verify").status == 0
    assert (tmp_path / "third" / "model.bin").read_bytes() == files["model.bin"]


def test_cache_list_and_prune(run: Cli, tmp_path: Path) -> None:
    write_tree(tmp_path / "src", model_bytes=200 * KiB)
    assert run("push", str(tmp_path / "src"), "-m", "fraud", "--create-model").status == 0
    assert run("pull", "fraud:1", str(tmp_path / "out")).status == 0
    listed = run("cache", "list", "-o", "json").json()
    assert [v["name"] for v in listed["versions"]] == ["models/fraud/versions/1"]
    assert listed["size_bytes"] > 0
    assert run("cache", "list").stdout.count("models/fraud/versions/1") == 1
    kept = run("cache", "prune", "--older-than", "30d", "-o", "json").json()
    assert kept["versions"] == []
    pruned = run("cache", "prune", "--all", "-o", "json").json()
    assert len(pruned["versions"]) == 1 and pruned["freed_bytes"] > 0
    assert run("cache", "list", "-o", "json").json()["versions"] == []
    assert run("cache", "prune", "--older-than", "soon").status == 2


def _on_a_terminal(env: dict[str, str], *args: str) -> tuple[int, str]:
    """Run with stderr on a pseudo-terminal; (status, what the terminal showed)."""
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [str(SCRIPT), *args], env=env, stdout=subprocess.DEVNULL, stderr=follower
    )
    os.close(follower)
    shown = b""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        ready, _, _ = select.select([leader], [], [], 0.1)
        if ready:
            try:
                chunk = os.read(leader, 65536)
            except OSError:
                break
            if not chunk:
                break
            shown += chunk
        elif process.poll() is not None:
            break
    os.close(leader)
    return process.wait(WAIT_S), shown.decode(errors="replace")


def test_progress_is_shown_on_a_terminal_only(run: Cli, tmp_path: Path) -> None:
    write_tree(tmp_path / "src", model_bytes=200 * KiB)
    status, shown = _on_a_terminal(
        run.env, "push", str(tmp_path / "src"), "-m", "fraud", "--create-model"
    )
    assert status == 0 and "push src" in shown and "/s" in shown
    status, shown = _on_a_terminal(run.env, "pull", "fraud:1", str(tmp_path / "tty"))
    assert status == 0 and "pull fraud:1" in shown and "/s" in shown
    quiet = run("pull", "fraud:1", str(tmp_path / "quiet"))
    assert quiet.status == 0 and "pull fraud:1" not in quiet.stderr and "/s" not in quiet.stderr
