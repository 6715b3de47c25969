"""WatchEvents and the client's resuming iterator: stored events after the cursor, then new
ones as they commit, in order, with no gaps or duplicates, across disconnects, server
restarts and (on PostgreSQL) replicas."""

from __future__ import annotations

import dataclasses
import queue
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from modelregistry.client import EventWatch, OutOfRangeError, RegistryClient
from modelregistry.v1 import events_pb2 as ev
from modelregistry_server.app import RegistryServer
from modelregistry_server.config import Config
from modelregistry_server.domain.identity import Caller
from tests.api.registry_helpers import expect_error
from tests.support.payload_helpers import wait_for
from tests.support.servers import serving

WAIT_S = 20.0
POLL_LONGER_THAN_BOUND_S = 6.0


class Collector:
    """Drains a watch on a thread of its own, so a test can wait for events with a bound."""

    def __init__(self, watch: EventWatch) -> None:
        self.watch = watch
        self.events: queue.Queue[ev.Event | BaseException] = queue.Queue()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for event in self.watch:
                self.events.put(event)
        except BaseException as exc:  # handed to the test
            self.events.put(exc)

    def take(self, count: int) -> list[ev.Event]:
        got: list[ev.Event] = []
        for _ in range(count):
            item = self.events.get(timeout=WAIT_S)
            if isinstance(item, BaseException):
                raise item
            got.append(item)
        return got

    def nothing_more(self, wait: float = 0.5) -> bool:
        try:
            self.events.get(timeout=wait)
        except queue.Empty:
            return True
        return False

    def close(self) -> None:
        self.watch.close()
        self._thread.join(timeout=WAIT_S)


@pytest.fixture
def collect(client: RegistryClient) -> Iterator[list[Collector]]:
    opened: list[Collector] = []
    yield opened
    for c in opened:
        c.close()


def _watch(client: RegistryClient, opened: list[Collector], **kw: str) -> Collector:
    collector = Collector(client.watch_events(**kw))
    opened.append(collector)
    return collector


def test_a_watch_sends_what_is_stored_then_what_commits(
    client: RegistryClient, collect: list[Collector]
) -> None:
    for model_id in ("a", "b", "c"):
        client.create_model(model_id)
    watch = _watch(client, collect, after_cursor="events/0")
    assert [e.sequence for e in watch.take(3)] == [1, 2, 3]
    client.create_model("d")
    (live,) = watch.take(1)
    assert (live.sequence, live.method, live.resource) == (4, "CreateModel", "models/d")
    assert watch.watch.cursor == "events/4"


def test_an_empty_cursor_starts_at_the_end(
    client: RegistryClient, collect: list[Collector]
) -> None:
    client.create_model("a")
    client.create_model("b")
    watch = _watch(client, collect)
    wait_for(lambda: watch.watch.cursor == "events/2", "the stream to start at the end")
    client.create_model("c")
    assert [e.sequence for e in watch.take(1)] == [3]
    assert watch.nothing_more()


def test_a_filtered_watch_moves_its_cursor_past_what_it_leaves_out(
    client: RegistryClient, collect: list[Collector]
) -> None:
    watch = _watch(client, collect, filter='resource = "models/b*"', after_cursor="events/0")
    client.create_model("a")
    client.create_model("b")
    client.create_version("a")
    client.create_version("b")
    assert [e.resource for e in watch.take(2)] == ["models/b", "models/b/versions/1"]
    client.create_model("a2")
    assert watch.nothing_more()
    assert watch.watch.cursor == "events/5"  # the progress message passed models/a2


def test_resuming_with_the_last_cursor_gives_exactly_what_was_missed(
    client: RegistryClient, collect: list[Collector]
) -> None:
    for n in range(3):
        client.create_model(f"m{n}")
    first = client.watch_events(after_cursor="events/0")
    assert [next(first).sequence for _ in range(2)] == [1, 2]
    first.close()
    assert first.cursor == "events/2"
    client.create_model("m3")
    again = _watch(client, collect, after_cursor=first.cursor)
    assert [e.sequence for e in again.take(2)] == [3, 4]
    assert again.nothing_more()


def test_concurrent_writers_leave_no_gaps_or_duplicates(
    client: RegistryClient, collect: list[Collector], server: RegistryServer
) -> None:
    watch = _watch(client, collect, after_cursor="events/0")
    writers, each = 4, 10

    def write(k: int) -> None:
        with RegistryClient(server.address, timeout=30) as own:
            for n in range(each):
                own.create_model(f"w{k}-{n}")

    threads = [threading.Thread(target=write, args=(k,)) for k in range(writers)]
    for t in threads:
        t.start()
    got = watch.take(writers * each)
    for t in threads:
        t.join(timeout=WAIT_S)
    assert [e.sequence for e in got] == list(range(1, writers * each + 1))
    assert len({e.resource for e in got}) == writers * each


def test_a_slow_watcher_catches_up_from_the_table(
    client: RegistryClient, server: RegistryServer
) -> None:
    watch = client.watch_events(after_cursor="events/0")
    try:
        client.create_model("first")
        assert next(watch).sequence == 1
        for n in range(250):  # more than a watch holds in memory at once
            client.create_model(f"m{n}")
        assert [next(watch).sequence for _ in range(250)] == list(range(2, 252))
    finally:
        watch.close()


def test_a_cursor_before_what_retention_removed_is_out_of_range(
    server_config: Config,
) -> None:
    config = dataclasses.replace(server_config, event_retention_days=1e-9)
    with serving(config) as server, RegistryClient(server.address, retries=0) as client:
        client.create_model("a")
        client.create_model("b")
        server.run_maintenance()  # removes both, records the pruning as event 3
        with expect_error(OutOfRangeError, "EVENTS_PRUNED") as caught:
            next(client.watch_events(after_cursor="events/0"))
        assert caught.value.metadata["oldest_cursor"] == "events/2"
        watch = client.watch_events(after_cursor="events/2")
        try:
            assert next(watch).method == "PruneEvents"
        finally:
            watch.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_the_client_resumes_by_itself_after_a_server_restart(server_config: Config) -> None:
    config = dataclasses.replace(server_config, listen=f"127.0.0.1:{_free_port()}")
    reader = RegistryClient(config.listen, retries=10, retry_backoff=0.1)
    watch: Collector | None = None
    try:
        with serving(config) as first, RegistryClient(first.address) as writer:
            writer.create_model("before")
            watch = Collector(reader.watch_events(after_cursor="events/0"))
            assert [e.sequence for e in watch.take(1)] == [1]
        # The server is gone; the watch retries until the next one listens. (The writes go
        # straight to the use cases: a new channel to the same address would share the
        # reader's subchannel, which is backing off from the refused connections.)
        with serving(config) as second:
            second.registry.create_model(Caller(), "after-1", {})
            second.registry.create_model(Caller(), "after-2", {})
            assert [e.resource for e in watch.take(2)] == ["models/after-1", "models/after-2"]
            assert watch.nothing_more()
    finally:
        if watch is not None:
            watch.close()
        reader.close()


def test_a_watch_on_one_replica_sees_what_another_commits(server_config: Config) -> None:
    """Server B's watch gets what server A commits in order, exactly once, promptly (B's poll
    is longer than the bound: only the LISTEN/NOTIFY wake-up is fast enough), also after B's
    listener connection was killed and reopened."""
    if not server_config.database_url.startswith("postgresql"):
        pytest.skip("one SQLite file serves one process")
    config = dataclasses.replace(server_config, watch_poll_seconds=POLL_LONGER_THAN_BOUND_S)
    with (
        serving(config) as a,
        serving(config) as b,
        RegistryClient(a.address) as on_a,
        RegistryClient(b.address) as on_b,
    ):
        watch = Collector(on_b.watch_events(after_cursor="events/0"))
        wakeups: Any = b.store.event_wakeups()
        try:
            assert wakeups.listening.wait(WAIT_S)
            got: list[ev.Event] = []
            latencies: list[float] = []

            def write(name: str, through: RegistryClient) -> None:
                through.create_model(name)
                committed = time.monotonic()
                got.extend(watch.take(1))
                latencies.append(time.monotonic() - committed)

            write("x", on_a)
            write("y", on_b)
            write("z", on_a)
            with b.store.connection():  # kill B's listener: B reconnects and re-reads
                b.store.backend.database.execute_sql(
                    "SELECT pg_terminate_backend(%s)", (wakeups.listener_pid,)
                )
            wait_for(lambda: wakeups.connects >= 2, what="the listener's reconnect")
            for name in ("after-1", "after-2", "after-3"):
                write(name, on_a)
            assert watch.nothing_more(0.2)
            assert [(e.sequence, e.resource) for e in got] == [
                (1, "models/x"),
                (2, "models/y"),
                (3, "models/z"),
                (4, "models/after-1"),
                (5, "models/after-2"),
                (6, "models/after-3"),
            ]
            assert max(latencies) < 1.5, latencies
        finally:
            on_a.create_model("wake")  # ends B's wait at once, so the close is prompt
            watch.close()
