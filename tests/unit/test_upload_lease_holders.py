"""Lease holders known to be dead: a process of this host and pid namespace that no longer runs
holds no lease, so a restarted server (or a replaced worker) continues its uploads at once."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from datetime import UTC, datetime, timedelta

from modelregistry_server.domain.entities import UploadSession, UploadState
from modelregistry_server.domain.upload_leases import (
    held_by_other,
    holder_known_dead,
    process_holder,
)


def _holder_of(pid: int) -> str:
    with open(f"/proc/{pid}/stat", "rb") as f:
        stat = f.read().rsplit(b")", 1)[1].split()
    namespace = os.readlink("/proc/self/ns/pid")
    return f"{socket.gethostname()}/{namespace}/{pid}/{stat[19].decode()}/0a1b2c3d"


def test_this_process_is_alive_and_its_holder_id_names_it() -> None:
    holder = process_holder()
    assert holder.rsplit("/", 1)[0] == _holder_of(os.getpid()).rsplit("/", 1)[0]
    assert not holder_known_dead(holder)
    assert process_holder() != holder  # two servers in one process are two holders


def test_a_process_that_ended_is_known_dead_and_a_running_one_is_not() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        holder = _holder_of(child.pid)
        assert not holder_known_dead(holder)
    finally:
        child.kill()
        child.wait()
    assert holder_known_dead(holder)


def test_a_reused_pid_is_a_different_process() -> None:
    host, namespace, pid, started, tag = process_holder().split("/")
    assert holder_known_dead(f"{host}/{namespace}/{pid}/{int(started) - 1}/{tag}")


def test_what_this_process_cannot_see_is_not_known_dead() -> None:
    namespace = process_holder().split("/")[1]
    gone = 2**22 + 17  # above pid_max: no such process here
    assert not holder_known_dead(f"other-host/{namespace}/{gone}/1/ab")
    assert not holder_known_dead(f"{socket.gethostname()}/pid:[1]/{gone}/1/ab")  # a container
    assert not holder_known_dead(f"{socket.gethostname()}/{gone}/abcd1234")  # no start time
    assert not holder_known_dead("")
    assert holder_known_dead(f"{socket.gethostname()}/{namespace}/{gone}/1/ab")


def test_a_live_lease_of_a_dead_holder_holds_nothing() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    namespace = process_holder().split("/")[1]
    dead = f"{socket.gethostname()}/{namespace}/{2**22 + 17}/1/ab"
    live = now + timedelta(seconds=30)
    assert not held_by_other(_session(dead, live), process_holder(), now)
    assert held_by_other(_session(f"other-host/{namespace}/1/1/ab", live), process_holder(), now)
    assert not held_by_other(_session(f"other-host/{namespace}/1/1/ab", now), process_holder(), now)


def _session(holder: str, expire: datetime) -> UploadSession:
    return UploadSession(
        tenant="t", upload_id="u", model_id="m", version_number=1, file_id="f",
        declared_size=None, declared_sha256="", content_type="", committed_size=0,
        state=UploadState.ACTIVE, create_time=expire, update_time=expire,
        lease_holder=holder, lease_token=1, lease_expire=expire,
    )  # fmt: skip
