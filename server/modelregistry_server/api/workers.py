"""The unary pool: threads that run synchronous servicers for calls served on the event loop.

``loop.run_in_executor`` on a ``ThreadPoolExecutor`` costs, per call, a
``concurrent.futures.Future`` (with its ``Condition``), the executor's bookkeeping, and an
asyncio future chained to it through callbacks on both sides. :meth:`Workers.call` hands the
work and the loop's own future to a worker through one queue and resolves the future with one
``call_soon_threadsafe``: the same hop with less work on the loop, which serves every call.
It is also an ``Executor``, for the few callers that need one.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any

_STOP = None


def _resolve(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.cancelled():
        return
    if error is None:
        future.set_result(result)
    else:
        future.set_exception(error)


class Workers(Executor):
    """At most ``max_workers`` threads, started as work arrives, kept until shutdown."""

    def __init__(self, max_workers: int, thread_name_prefix: str = "unary") -> None:
        if max_workers <= 0:
            raise ValueError("max_workers must be positive")
        self._max = max_workers
        self._prefix = thread_name_prefix
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._pending = 0  # queued or running
        self._closed = False

    def call(self, fn: Callable[..., Any], *args: Any) -> asyncio.Future[Any]:
        """Run ``fn(*args)`` on a worker; a future of the running loop resolves with it."""
        future = asyncio.get_running_loop().create_future()
        self._put((future, fn, args))
        return future

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        """``Executor.submit``."""
        done: Future[Any] = Future()
        self._put((done, lambda: fn(*args, **kwargs), ()))
        return done

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop the workers once the queued work has run."""
        with self._lock:
            self._closed = True
            threads = list(self._threads)
        for _ in threads:
            self._queue.put(_STOP)
        if wait:
            for thread in threads:
                thread.join()

    def _put(self, item: tuple[Any, Callable[..., Any], tuple[Any, ...]]) -> None:
        with self._lock:
            if self._closed:
                raise RuntimeError("cannot schedule new work after shutdown")
            self._pending += 1
            if self._pending > len(self._threads) and len(self._threads) < self._max:
                name = f"{self._prefix}_{len(self._threads)}"
                thread = threading.Thread(target=self._work, name=name, daemon=True)
                self._threads.append(thread)
                thread.start()
        self._queue.put(item)

    def _work(self) -> None:
        while (item := self._queue.get()) is not _STOP:
            future, fn, args = item
            try:
                self._run(future, fn, args)
            finally:
                with self._lock:
                    self._pending -= 1
            del item, future, fn, args  # hold nothing while idle

    @staticmethod
    def _run(future: Any, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        if isinstance(future, Future):
            if not future.set_running_or_notify_cancel():
                return
            try:
                future.set_result(fn(*args))
            except BaseException as exc:
                future.set_exception(exc)
            return
        if future.cancelled():  # the call ended while this waited: nothing to serve
            return
        result: Any = None
        error: BaseException | None = None
        try:
            result = fn(*args)
        except BaseException as exc:
            error = exc
        with contextlib.suppress(RuntimeError):  # a closed loop: the server is stopping
            future.get_loop().call_soon_threadsafe(_resolve, future, result, error)
