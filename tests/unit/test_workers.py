"""The unary pool's hop: results, errors, cancellation, the thread bound, shutdown."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from modelregistry_server.api.workers import Workers


def test_call_resolves_on_the_loop_with_the_result_or_the_error() -> None:
    workers = Workers(2)

    def fail() -> None:
        raise ValueError("boom")

    async def main() -> None:
        assert await workers.call(lambda a, b: a + b, 2, 3) == 5
        with pytest.raises(ValueError, match="boom"):
            await workers.call(fail)
        assert await workers.call(threading.current_thread) is not threading.current_thread()

    try:
        asyncio.run(main())
    finally:
        workers.shutdown()


def test_at_most_max_workers_threads_run_at_once() -> None:
    workers = Workers(3)
    running = 0
    peak = 0
    lock = threading.Lock()

    def job() -> None:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.02)
        with lock:
            running -= 1

    async def main() -> None:
        await asyncio.gather(*(workers.call(job) for _ in range(12)))

    try:
        asyncio.run(main())
    finally:
        workers.shutdown()
    assert peak == 3


def test_work_of_a_call_cancelled_while_queued_does_not_run() -> None:
    workers = Workers(1)
    gate = threading.Event()
    ran: list[str] = []

    async def main() -> None:
        first = workers.call(gate.wait, 5)
        second = workers.call(ran.append, "second")
        second.cancel()
        gate.set()
        await first
        await workers.call(ran.append, "third")

    try:
        asyncio.run(main())
    finally:
        workers.shutdown()
    assert ran == ["third"]


def test_submit_is_an_executor_and_shutdown_refuses_new_work() -> None:
    workers = Workers(2)
    assert workers.submit(pow, 2, 10).result(timeout=5) == 1024
    workers.shutdown()
    with pytest.raises(RuntimeError):
        workers.submit(pow, 2, 3)
