"""The workers' shared states: health SERVING only while every worker serves and the fleet is
not draining; slots written by one process are seen by another (fork); ``--workers``."""

from __future__ import annotations

import os

import pytest

from modelregistry_server.config import cores, load_config
from modelregistry_server.fleet import Fleet, WorkerState


def test_serving_needs_every_worker_and_no_drain() -> None:
    fleet = Fleet(2)
    a, b = fleet.slot(0), fleet.slot(1)
    assert not a.registry_serving() and not fleet.listening()
    a.mark(WorkerState.SERVING)
    b.mark(WorkerState.LISTENING)
    assert fleet.listening() and not b.registry_serving()  # b has not reached the database
    b.mark(WorkerState.SERVING)
    assert a.registry_serving() and b.registry_serving()
    fleet.set_state(1, WorkerState.DOWN)  # the supervisor reaped b
    assert not a.registry_serving() and not fleet.listening()
    fleet.set_state(1, WorkerState.SERVING)
    fleet.drain()
    assert fleet.draining and not a.registry_serving()


def test_a_forked_worker_writes_the_same_page() -> None:
    fleet = Fleet(1)
    pid = os.fork()
    if pid == 0:
        fleet.slot(0).mark(WorkerState.SERVING)
        os._exit(0)
    os.waitpid(pid, 0)
    assert fleet.state(0) == WorkerState.SERVING


def test_workers_default_to_the_cores_and_take_flag_and_env() -> None:
    assert load_config([], {}).workers == cores()
    assert load_config(["--workers", "3"], {}).workers == 3
    assert load_config([], {"MODELREGISTRY_WORKERS": "1"}).workers == 1
    with pytest.raises(SystemExit):
        load_config(["--workers", "0"], {})
    with pytest.raises(ValueError):
        Fleet(0)
