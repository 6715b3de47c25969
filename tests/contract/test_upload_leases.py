"""Upload leases on both metadata backends: one writer per upload across servers, takeover
once the lease expired, and a stale writer fenced (docs/design.md "Uploads that survive their
replica"). Two ``Payloads`` objects on one database and one blob directory are two replicas;
each has its own clock, so a test can freeze one (a paused process) while the other moves on.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from modelregistry_server.domain import names
from modelregistry_server.domain.entities import UploadSession, UploadState
from modelregistry_server.domain.errors import Aborted, DataLoss, DomainError, NotFound, Reason
from modelregistry_server.domain.identity import Caller
from modelregistry_server.domain.payloads import Payloads, UploadItem, UploadRequest
from modelregistry_server.domain.ports import BlobStore
from modelregistry_server.domain.registry import Registry
from modelregistry_server.storage.blobs.local import LocalBlobStore
from modelregistry_server.storage.metadata import PeeweeMetadataStore
from tests.support.payload_helpers import data_of, sha256_hex, stored_uploads

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
LEASE = timedelta(seconds=30)
PIECE = 4096
CALLER = Caller(tenant="default", subject="alice")


@dataclass
class Clock:
    """A replica's wall clock and monotonic clock, moved together by :meth:`advance`."""

    wall: datetime = T0
    mono: float = 1000.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def now(self) -> datetime:
        return self.wall

    def monotonic(self) -> float:
        return self.mono

    def advance(self, seconds: float) -> None:
        with self.lock:
            self.wall += timedelta(seconds=seconds)
            self.mono += seconds


@dataclass
class Replica:
    payloads: Payloads
    clock: Clock


@pytest.fixture
def replicas(metadata_store: PeeweeMetadataStore, tmp_path: Path) -> Iterator[list[Replica]]:
    # One directory shared by both.
    yield from _replicas(metadata_store, lambda: LocalBlobStore(tmp_path / "blobs"))


def _replicas(
    metadata_store: PeeweeMetadataStore, blobs: Callable[[], BlobStore]
) -> Iterator[list[Replica]]:
    made = []
    for name in ("a", "b"):
        clock = Clock()
        registry = Registry(metadata_store, clock=clock.now)
        payloads = Payloads(
            metadata_store,
            blobs(),
            registry,
            clock=clock.now,
            monotonic=clock.monotonic,
            piece_bytes=PIECE,
            lease_holder=f"replica-{name}",
            upload_lease=LEASE,
        )
        made.append(Replica(payloads, clock))
    made[0].payloads._registry.create_model(CALLER, "m", {})
    made[0].payloads._registry.create_version(CALLER, "m", {})
    yield made
    for r in made:
        r.payloads.close()


DATA = data_of(5 * PIECE, seed=3)


def request(offset: int, upload_id: str = "u1") -> UploadRequest:
    return UploadRequest(
        target=names.FileRef(names.VersionRef("m", number=1), "weights"),
        upload_id=upload_id,
        write_offset=offset,
        size=len(DATA),
        sha256=sha256_hex(DATA),
        content_type="",
    )


def pieces(start: int, end: int) -> Iterator[UploadItem]:
    for offset in range(start, end, PIECE):
        yield offset, DATA[offset : min(end, offset + PIECE)]


class PausedStream:
    """Chunks up to ``pause_at`` (then waits for :meth:`resume`), then the rest."""

    def __init__(self, pause_at: int) -> None:
        self.pause_at = pause_at
        self.paused = threading.Event()
        self._go = threading.Event()

    def resume(self) -> None:
        self._go.set()

    def __iter__(self) -> Iterator[UploadItem]:
        yield from pieces(0, self.pause_at)
        self.paused.set()
        assert self._go.wait(30)
        yield from pieces(self.pause_at, len(DATA))


def start_writer(replica: Replica, stream: PausedStream) -> tuple[threading.Thread, list[object]]:
    """Run an upload of ``stream`` on ``replica`` in a thread; its outcome lands in the list."""
    outcome: list[object] = []

    def run() -> None:
        try:
            outcome.append(replica.payloads.upload(CALLER, request(0), iter(stream)))
        except DomainError as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert stream.paused.wait(30)
    return thread, outcome


def committed(store: PeeweeMetadataStore, size: int) -> UploadSession:
    """Wait (bounded) until the session records ``size`` committed bytes."""
    for _ in range(500):
        session = store.get_upload("default", "u1")
        assert session is not None
        if session.committed_size >= size:
            return session
        threading.Event().wait(0.01)
    raise AssertionError(f"committed size never reached {size}")


def test_a_second_writer_is_refused_while_the_first_holds_the_lease(
    replicas: list[Replica], metadata_store: PeeweeMetadataStore
) -> None:
    a, b = replicas
    stream = PausedStream(pause_at=2 * PIECE)
    thread, outcome = start_writer(a, stream)
    held = committed(metadata_store, 2 * PIECE)  # all it received
    assert held.lease_holder == "replica-a" and held.lease_token == 1
    b.clock.advance(LEASE.total_seconds() - 5)  # not yet expired (no renewal in between)
    with pytest.raises(Aborted) as refused:
        b.payloads.upload(CALLER, request(held.committed_size), pieces(held.committed_size, 0))
    assert refused.value.reason is Reason.UPLOAD_BUSY
    assert refused.value.metadata == {"retry_after_seconds": "5"}
    after = metadata_store.get_upload("default", "u1")
    assert after is not None and (after.lease_holder, after.lease_token) == ("replica-a", 1)
    stream.resume()
    thread.join(30)
    (record,) = outcome
    assert not isinstance(record, DomainError), record
    assert b.payloads.get_file(CALLER, _file()).sha256 == sha256_hex(DATA)


def test_after_expiry_another_server_takes_over_and_the_stale_writer_stops(
    replicas: list[Replica], metadata_store: PeeweeMetadataStore
) -> None:
    """The first writer stops getting data (its replica hangs, or its client went to another
    one); once the lease expired the second takes over from the last committed piece, and the
    first, waking up, finds by its own clock that its lease is gone and writes nothing."""
    a, b = replicas
    stream = PausedStream(pause_at=3 * PIECE)
    thread, outcome = start_writer(a, stream)
    start = committed(metadata_store, 3 * PIECE).committed_size  # all it received
    for replica in replicas:
        replica.clock.advance(LEASE.total_seconds() + 1)
    record = b.payloads.upload(CALLER, request(start), pieces(start, len(DATA)))
    assert record.sha256 == sha256_hex(DATA)
    taken = metadata_store.get_upload("default", "u1")
    assert taken is not None
    assert (taken.state, taken.lease_holder, taken.lease_token) == (
        UploadState.COMMITTED,
        "replica-b",
        2,
    )
    stream.resume()
    thread.join(30)
    (stale,) = outcome
    assert isinstance(stale, Aborted) and stale.reason is Reason.UPLOAD_LEASE_LOST, stale
    assert a.payloads.get_file(CALLER, _file()).sha256 == sha256_hex(DATA)


def test_a_stale_writer_whose_clock_stood_still_is_fenced_by_the_token(
    replicas: list[Replica], metadata_store: PeeweeMetadataStore
) -> None:
    """A paused process does not see time pass: its own clock says the lease is live. The
    token the takeover raised still refuses its next piece and its publish."""
    a, b = replicas
    stream = PausedStream(pause_at=2 * PIECE)
    thread, outcome = start_writer(a, stream)
    start = committed(metadata_store, 2 * PIECE).committed_size  # all it received
    b.clock.advance(LEASE.total_seconds() + 1)  # only b's clock moves

    def one_piece_then_stall() -> Iterator[UploadItem]:
        yield from pieces(start, start + PIECE)
        stream.resume()  # the stale writer wakes while the new one holds the upload
        thread.join(30)
        raise Stop

    with pytest.raises(Stop):
        b.payloads.upload(CALLER, request(start), one_piece_then_stall())
    (stale,) = outcome
    assert isinstance(stale, Aborted) and stale.reason is Reason.UPLOAD_LEASE_LOST, stale
    with pytest.raises(NotFound):
        a.payloads.get_file(CALLER, _file())  # the stale writer published nothing
    session = metadata_store.get_upload("default", "u1")
    assert session is not None and session.state is UploadState.ACTIVE
    assert session.lease_token == 2 and session.committed_size >= start


class Stop(Exception):
    """Ends the new writer's stream in these tests."""


def stall_then_stop(stream: PausedStream, thread: threading.Thread) -> Iterator[UploadItem]:
    """The new writer's stream: holds the upload while the stale writer wakes and ends."""
    stream.resume()
    thread.join(30)
    raise Stop
    yield  # a generator


def test_a_stale_writer_asks_the_database_before_writing_more_bytes(
    replicas: list[Replica], metadata_store: PeeweeMetadataStore, tmp_path: Path
) -> None:
    """Blob bytes carry no token: a writer whose lease was last extended a third of a lease
    ago renews it before writing more, and stops when that is refused."""
    a, b = replicas
    stream = PausedStream(pause_at=3 * PIECE)
    thread, outcome = start_writer(a, stream)
    start = committed(metadata_store, 3 * PIECE).committed_size
    for replica in replicas:
        replica.clock.advance(LEASE.total_seconds() + 1)
    with pytest.raises(Stop):
        b.payloads.upload(CALLER, request(start), stall_then_stop(stream, thread))
    (stale,) = outcome
    assert isinstance(stale, Aborted) and stale.reason is Reason.UPLOAD_LEASE_LOST, stale
    (staged,) = stored_uploads(tmp_path / "blobs")
    assert staged.stat().st_size == start  # nothing written after the lease was gone


def test_a_stale_writer_with_every_byte_committed_cannot_publish(
    replicas: list[Replica], metadata_store: PeeweeMetadataStore
) -> None:
    a, b = replicas
    stream = PausedStream(pause_at=len(DATA))  # everything sent; the end not yet seen
    thread, outcome = start_writer(a, stream)
    committed(metadata_store, len(DATA))
    b.clock.advance(LEASE.total_seconds() + 1)  # a's clock stands still: it would publish
    with pytest.raises(Stop):
        b.payloads.upload(CALLER, request(len(DATA)), stall_then_stop(stream, thread))
    (stale,) = outcome
    assert isinstance(stale, Aborted) and stale.reason is Reason.UPLOAD_LEASE_LOST, stale
    with pytest.raises(NotFound):
        a.payloads.get_file(CALLER, _file())


def test_gc_on_another_server_leaves_an_upload_whose_lease_is_live(
    replicas: list[Replica], metadata_store: PeeweeMetadataStore, tmp_path: Path
) -> None:
    a, b = replicas
    stream = PausedStream(pause_at=2 * PIECE)
    thread, outcome = start_writer(a, stream)
    committed(metadata_store, 2 * PIECE)
    gc = Payloads(
        metadata_store,
        LocalBlobStore(tmp_path / "blobs"),
        b.payloads._registry,
        clock=lambda: T0 + timedelta(seconds=1),
        gc_grace=timedelta(0),
        lease_holder="gc",
    )
    try:
        assert gc.collect_garbage().uploads == 0
    finally:
        gc.close()
    stream.resume()
    thread.join(30)
    (record,) = outcome
    assert not isinstance(record, DomainError), record


class _ResumedAfterListing:
    """The metadata store as GC on another server sees it: right after GC listed the stale
    sessions, ``resume`` runs (a client resumes one of them on a second server)."""

    def __init__(self, store: PeeweeMetadataStore, resume: Callable[[], None]) -> None:
        self._store = store
        self._resume = resume

    def stale_uploads(self, before: datetime, limit: int) -> list[UploadSession]:
        listed = self._store.stale_uploads(before, limit)
        self._resume()
        return listed

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


def test_gc_leaves_an_upload_resumed_after_it_listed_the_stale_ones(
    replicas: list[Replica], metadata_store: PeeweeMetadataStore, tmp_path: Path
) -> None:
    """GC judges a session it listed again under the row's lock: a server that took the
    lease since keeps the session and its stored bytes."""
    a, b = replicas

    def broken() -> Iterator[UploadItem]:
        yield from pieces(0, 2 * PIECE)
        raise ConnectionError("the client went away")

    with pytest.raises(ConnectionError):
        a.payloads.upload(CALLER, request(0), broken())  # abandoned, its lease released
    start = committed(metadata_store, PIECE).committed_size
    later = 2 * 3600.0  # long past the grace period
    b.clock.advance(later)
    stream = PausedStream(pause_at=0)
    outcome: list[object] = []

    def resume() -> None:
        def run() -> None:
            chunks = (item for item in stream if item[0] >= start)  # type: ignore[index]
            try:
                outcome.append(b.payloads.upload(CALLER, request(start), chunks))
            except DomainError as exc:
                outcome.append(exc)

        threading.Thread(target=run, daemon=True).start()
        for _ in range(500):  # bounded: until b holds the lease
            held = metadata_store.get_upload("default", "u1")
            if held is not None and held.lease_holder == "replica-b":
                return
            threading.Event().wait(0.01)
        raise AssertionError("the second server never took the lease")

    gc = Payloads(
        _ResumedAfterListing(metadata_store, resume),  # type: ignore[arg-type]
        LocalBlobStore(tmp_path / "blobs"),
        b.payloads._registry,
        clock=lambda: T0 + timedelta(seconds=later),
        gc_grace=timedelta(hours=1),
        lease_holder="gc",
    )
    try:
        assert gc.collect_garbage().uploads == 0
    finally:
        gc.close()
    stream.resume()
    for _ in range(500):
        if outcome:
            break
        threading.Event().wait(0.01)
    (record,) = outcome
    assert not isinstance(record, DomainError), record
    assert b.payloads.get_file(CALLER, _file()).sha256 == sha256_hex(DATA)


def test_a_stale_writer_finding_its_bytes_missing_leaves_the_new_writer_alone(
    replicas: list[Replica], metadata_store: PeeweeMetadataStore, tmp_path: Path
) -> None:
    """A writer that lost its lease while reading back the stored prefix (and found it
    missing) must not reset the upload or drop the bytes of the server that took it over."""
    a = replicas[0]

    def broken() -> Iterator[UploadItem]:
        yield from pieces(0, 2 * PIECE)
        raise ConnectionError("the client went away")

    with pytest.raises(ConnectionError):
        a.payloads.upload(CALLER, request(0), broken())
    start = committed(metadata_store, 2 * PIECE).committed_size
    staged = a.payloads._blobs
    taken: list[UploadSession] = []

    class TakenOverWhileReading:
        """a's blob store: while a reads the prefix back, b takes the upload over (a
        paused past its lease); then a finds the prefix missing."""

        def read_upload(self, sid: str, size: int) -> Iterator[bytes]:
            current = metadata_store.get_upload("default", "u1")
            assert current is not None
            took = replace(current, lease_holder="replica-b", lease_token=current.lease_token + 1)
            with metadata_store.transaction():
                metadata_store.save_upload(took)
            taken.append(took)
            raise DataLoss("gone", reason=Reason.UPLOAD_DATA_MISSING)

        def __getattr__(self, name: str) -> Any:
            return getattr(staged, name)

    a.payloads._blobs = TakenOverWhileReading()  # type: ignore[assignment]
    try:
        with pytest.raises(Aborted) as lost:
            a.payloads.upload(CALLER, request(start), pieces(start, len(DATA)))
    finally:
        a.payloads._blobs = staged
    assert lost.value.reason is Reason.UPLOAD_LEASE_LOST
    after = metadata_store.get_upload("default", "u1")
    assert after is not None and after.committed_size == start  # b's progress kept
    assert (after.lease_holder, after.lease_token) == ("replica-b", taken[0].lease_token)
    (kept,) = stored_uploads(tmp_path / "blobs")
    assert kept.stat().st_size == start  # and b's stored bytes


def test_a_stream_that_fails_releases_its_lease(
    replicas: list[Replica], metadata_store: PeeweeMetadataStore
) -> None:
    a, b = replicas

    def broken() -> Iterator[UploadItem]:
        yield from pieces(0, 2 * PIECE)
        raise ConnectionError("the client went away")

    with pytest.raises(ConnectionError):
        a.payloads.upload(CALLER, request(0), broken())
    start = committed(metadata_store, PIECE).committed_size
    # At once, without waiting for the lease: the first writer is known to be done.
    assert b.payloads.upload(CALLER, request(start), pieces(start, len(DATA))).size == len(DATA)


def test_lease_store_rules(metadata_store: PeeweeMetadataStore) -> None:
    """The fencing the domain relies on, as single statements of the store."""
    session = UploadSession(
        "t", "u9", "m", 1, "f", None, "", "x", 0, UploadState.ACTIVE, T0, T0,
        lease_holder="a", lease_token=1, lease_expire=T0 + LEASE,
    )  # fmt: skip
    metadata_store.insert_upload(session)
    assert metadata_store.get_upload("t", "u9") == session
    later = T0 + timedelta(seconds=5)
    assert metadata_store.advance_upload(
        "t", "u9", 0, 10, later, lease_token=1, lease_expire=later + LEASE
    )
    assert metadata_store.extend_upload_lease("t", "u9", 1, later + 2 * LEASE)
    got = metadata_store.get_upload("t", "u9")
    assert got is not None and got.lease_expire == later + 2 * LEASE
    taken = replace(got, lease_holder="b", lease_token=2, lease_expire=later + LEASE)
    with metadata_store.transaction():
        metadata_store.save_upload(taken)
    # The old token writes nothing any more.
    assert not metadata_store.advance_upload("t", "u9", 10, 20, later, lease_token=1)
    assert not metadata_store.extend_upload_lease("t", "u9", 1, later + 3 * LEASE)
    with pytest.raises(Aborted) as lost:
        metadata_store.save_upload(replace(got, state=UploadState.COMMITTED), lease_token=1)
    assert lost.value.reason is Reason.UPLOAD_LEASE_LOST
    assert metadata_store.get_upload("t", "u9") == taken
    # Rows of the previous release carry no lease (NULL): token 0, and writes without a token.
    old = UploadSession("t", "old", "m", 1, "g", None, "", "x", 0, UploadState.ACTIVE, T0, T0)
    metadata_store.insert_upload(old)
    assert metadata_store.get_upload("t", "old") == old
    assert metadata_store.advance_upload("t", "old", 0, 5, later)
    assert metadata_store.advance_upload("t", "old", 5, 6, later, lease_token=0)
    with pytest.raises(NotFound):
        metadata_store.save_upload(replace(old, upload_id="gone"), lease_token=0)


def _file() -> names.FileRef:
    return names.FileRef(names.VersionRef("m", number=1), "weights")


class _PausedInsideWrite:
    """A's blob store: its write of the piece at ``at`` takes one chunk, then waits (the
    replica paused inside a write, past its lease check) until :attr:`go` is set."""

    def __init__(self, inner: BlobStore, at: int) -> None:
        self._inner = inner
        self._at = at
        self.paused = threading.Event()
        self.go = threading.Event()

    def write_upload(self, upload_id: str, offset: int, chunks: Iterable[bytes]) -> int:
        if offset != self._at:
            return self._inner.write_upload(upload_id, offset, chunks)

        def held() -> Iterator[bytes]:
            for index, chunk in enumerate(chunks):
                if index == 1:
                    self.paused.set()
                    assert self.go.wait(30)
                yield chunk

        return self._inner.write_upload(upload_id, offset, held())

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def test_a_stale_writer_paused_inside_a_write_cannot_change_what_another_publishes(
    metadata_store: PeeweeMetadataStore, blob_store: BlobStore
) -> None:
    """A pauses inside a piece's write (past its lease check); its lease expires and B takes
    over; while B writes, A's write goes through (with other bytes). Each writer stages into
    its own bytes: B's published blob is the uploaded content, and GC leaves nothing of A's
    staging."""
    a, b = next(made := _replicas(metadata_store, lambda: blob_store))
    start = 2 * PIECE
    paused = _PausedInsideWrite(blob_store, start)
    a.payloads._blobs = paused
    outcome: list[object] = []
    half = PIECE // 2
    stale = DATA[:start] + bytes(255 - x for x in DATA[start:])  # A's bytes differ from here
    chunks = [(o, stale[o : o + half]) for o in range(0, len(DATA), half)]

    def run() -> None:
        try:
            outcome.append(a.payloads.upload(CALLER, request(0), iter(chunks)))
        except DomainError as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert paused.paused.wait(30)
    committed(metadata_store, start)
    b.clock.advance(LEASE.total_seconds() + 1)  # a's clock stands still (a paused process)

    def stale_writer_wakes_midway() -> Iterator[UploadItem]:
        yield from pieces(start, start + PIECE)
        paused.go.set()  # a's chunks (and what follows) are written now
        thread.join(30)
        yield from pieces(start + PIECE, len(DATA))

    record = b.payloads.upload(CALLER, request(start), stale_writer_wakes_midway())
    assert record.sha256 == sha256_hex(DATA)
    (lost,) = outcome
    assert isinstance(lost, Aborted) and lost.reason is Reason.UPLOAD_LEASE_LOST, lost
    assert b"".join(blob_store.read(f"sha256/{record.sha256}")) == DATA
    gc = Payloads(
        metadata_store,
        blob_store,
        b.payloads._registry,
        # Two days on from now: the stores date staging objects by the real clock.
        clock=lambda: datetime.now(UTC) + timedelta(days=2),
        lease_holder="gc",
    )
    try:
        gc.collect_garbage()
    finally:
        gc.close()
    assert list(blob_store.list_uploads()) == []
    with contextlib.suppress(StopIteration):
        next(made)  # closes the replicas
