"""Parks that come together share one heap trim, made a moment after the first of them;
memory freed after that trim has started asks for the next one."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from modelregistry_server.api import heap

DELAY_S = 0.05


def test_requests_within_the_delay_share_one_trim_and_later_ones_get_another() -> None:
    trims: list[str] = []

    async def scenario() -> None:
        with ThreadPoolExecutor(1, thread_name_prefix="trim-pool") as pool:
            trimmer = heap.HeapTrimmer(
                pool, DELAY_S, trim=lambda: trims.append(threading.current_thread().name)
            )
            for _ in range(5):
                trimmer.soon()
            await asyncio.sleep(DELAY_S / 2)
            assert trims == []  # not before the delay
            await asyncio.sleep(DELAY_S * 3)
            assert len(trims) == 1 and trims[0].startswith("trim-pool")  # on the pool
            trimmer.soon()
            await asyncio.sleep(DELAY_S * 3)
            assert len(trims) == 2

    asyncio.run(scenario())


def test_a_failing_trim_is_logged_and_the_next_request_still_trims(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls: list[int] = []

    def trim() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise OSError("no heap")

    async def scenario() -> None:
        with ThreadPoolExecutor(1) as pool:
            trimmer = heap.HeapTrimmer(pool, DELAY_S, trim=trim)
            trimmer.soon()
            await asyncio.sleep(DELAY_S * 3)
            trimmer.soon()
            await asyncio.sleep(DELAY_S * 3)

    asyncio.run(scenario())
    assert len(calls) == 2
    assert "heap trim failed" in caplog.text


def test_trim_heap_runs_on_this_machine() -> None:
    heap.trim_heap()  # glibc here: the real malloc_trim, which must not fail
    assert heap._MALLOC_TRIM is not None


def test_a_trim_due_after_the_pool_stopped_is_dropped_quietly() -> None:
    async def scenario() -> None:
        pool = ThreadPoolExecutor(1)
        trimmer = heap.HeapTrimmer(pool, DELAY_S, trim=lambda: None)
        trimmer.soon()
        pool.shutdown()
        errors: list[dict[str, object]] = []
        asyncio.get_running_loop().set_exception_handler(lambda _loop, ctx: errors.append(ctx))
        await asyncio.sleep(DELAY_S * 3)
        assert errors == []

    asyncio.run(scenario())
