"""Parks that come together share one heap trim, made a moment after the first of them;
memory freed after that trim has started asks for the next one, which waits for the minimum
gap between trims."""

from __future__ import annotations

import asyncio
import platform
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest

from modelregistry_server.api import heap

DELAY_S = 0.05
GAP_S = 0.3
WAIT_S = 10.0


async def _until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


def test_requests_share_a_trim_and_later_ones_wait_for_the_gap() -> None:
    trims: list[tuple[float, str]] = []

    def trim() -> None:
        trims.append((time.monotonic(), threading.current_thread().name))

    async def scenario() -> None:
        with ThreadPoolExecutor(1, thread_name_prefix="trim-pool") as pool:
            trimmer = heap.HeapTrimmer(pool, DELAY_S, trim=trim, gap=GAP_S)
            asked = time.monotonic()
            for _ in range(5):
                trimmer.soon()
            await asyncio.sleep(DELAY_S / 2)
            assert trims == []  # not before the delay
            await _until(lambda: len(trims) == 1)
            assert trims[0][0] - asked >= DELAY_S
            assert trims[0][1].startswith("trim-pool")  # on the pool, not the loop
            trimmer.soon()
            trimmer.soon()
            await _until(lambda: len(trims) == 2)
            assert trims[1][0] - trims[0][0] >= GAP_S * 0.9  # the gap, not just the delay
            await asyncio.sleep(GAP_S)
            assert len(trims) == 2  # the two requests shared one trim

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
            trimmer = heap.HeapTrimmer(pool, DELAY_S, trim=trim, gap=0.0)
            trimmer.soon()
            await _until(lambda: len(calls) == 1)
            await _until(lambda: "heap trim failed" in caplog.text)
            trimmer.soon()
            await _until(lambda: len(calls) == 2)

    asyncio.run(scenario())


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


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc_trim is glibc's")
def test_trim_heap_runs_on_glibc() -> None:
    assert heap._MALLOC_TRIM is not None
    heap.trim_heap()  # the real malloc_trim, which must not fail


class _Messages:
    """A response iterator whose park reports ``held``."""

    def __init__(self, held: bool) -> None:
        self.held = held

    def __iter__(self) -> _Messages:
        return self

    def __next__(self) -> bytes:
        raise StopIteration

    def park(self) -> bool:
        return self.held


class _Heap:
    def __init__(self) -> None:
        self.asked = 0

    def soon(self) -> None:
        self.asked += 1


@pytest.mark.parametrize("held", [True, False])
def test_only_a_park_that_let_go_of_something_asks_for_a_trim(held: bool) -> None:
    from modelregistry_server.api.interceptors import _Producer

    recorder = _Heap()

    async def scenario() -> None:
        with ThreadPoolExecutor(1) as pool:
            producer = _Producer(_Messages(held), pool, recorder)  # type: ignore[arg-type]
            await producer.park()

    asyncio.run(scenario())
    assert recorder.asked == (1 if held else 0)
