"""read_ahead: the same items in order, errors where they occurred, bounded lead, and a
consumer that stops early stops the helper thread."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from modelregistry_server.domain.read_ahead import read_ahead

WAIT_S = 10.0


def test_items_arrive_in_order() -> None:
    assert list(read_ahead(iter(range(1000)), depth=3)) == list(range(1000))
    assert list(read_ahead(iter([]))) == []


def test_an_error_is_raised_after_the_items_before_it() -> None:
    def items() -> Iterator[int]:
        yield 1
        yield 2
        raise KeyError("boom")

    got: list[int] = []
    with pytest.raises(KeyError, match="boom"):
        for item in read_ahead(items()):
            got.append(item)
    assert got == [1, 2]


def test_the_helper_runs_at_most_depth_items_ahead() -> None:
    produced: list[int] = []
    four = threading.Event()

    def items() -> Iterator[int]:
        for i in range(100):
            produced.append(i)
            if len(produced) == 4:
                four.set()
            yield i

    stream = read_ahead(items(), depth=2)
    assert next(stream) == 0
    # 0 taken, 1 and 2 queued, 3 produced and waiting for room: nothing more.
    assert four.wait(WAIT_S)
    threading.Event().wait(0.3)
    assert len(produced) == 4
    assert list(stream) == list(range(1, 100))


def test_closing_early_stops_the_helper_and_closes_the_source() -> None:
    closed = threading.Event()

    def items() -> Iterator[int]:
        try:
            i = 0
            while True:
                yield i
                i += 1
        finally:
            closed.set()

    before = {t.ident for t in threading.enumerate()}
    stream = read_ahead(items(), depth=2, name="test-ahead")
    assert [next(stream) for _ in range(5)] == [0, 1, 2, 3, 4]
    stream.close()
    assert closed.wait(WAIT_S)
    helpers = [t for t in threading.enumerate() if t.name == "test-ahead"]
    for thread in helpers:
        thread.join(WAIT_S)
        assert not thread.is_alive()
    assert {t.ident for t in threading.enumerate() if t.name == "test-ahead"} <= before


def test_depth_must_be_positive() -> None:
    with pytest.raises(ValueError, match="depth"):
        read_ahead(iter([1]), depth=0)
