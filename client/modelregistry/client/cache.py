"""The client's local cache: file contents by sha256, verified before they enter it and stored
once however many versions share them, and the versions pulled whole (registry address,
version name and manifest digest → files), so a pinned version can be used offline.

Layout under the root (``MODELREGISTRY_CACHE_DIR``, default ``~/.cache/modelregistry``)::

    blobs/sha256/<ab>/<hex>          read-only content, verified (sha256 of every byte)
    blobs/sha256/<ab>/<hex>.stamp    size, mtime and inode of the content right after that
    partial/<hex>.part               a download in progress: a prefix of the content
    manifests/<registry>/<model>/<version>/<digest>.json   a version whose files are all here
    snapshots/<registry>/<model>/<version>-<digest>/        pulls without a destination
    locks/                           flock files: one per content, one for the whole cache

Every use of a content checks it cheaply (its size, and the stamp still matching the file's
mtime and inode); :meth:`Cache.verify` re-hashes everything. Writers hold the content's lock
and rename into place, so concurrent pulls never see half a file.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import queue
import re
import shutil
import stat
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TypeAlias

from modelregistry.client.errors import IntegrityError
from modelregistry.client.locks import file_lock

if TYPE_CHECKING:
    from hashlib import _Hash

__all__ = [
    "CACHE_DIR_ENV",
    "Cache",
    "CachedVersion",
    "CorruptEntry",
    "ManifestFile",
    "PruneReport",
    "VerifyReport",
    "default_cache_dir",
    "manifest_digest",
]

#: Environment variable naming the cache directory.
CACHE_DIR_ENV: Final = "MODELREGISTRY_CACHE_DIR"
_READ: Final = 1 << 20
#: Contents larger than this are hashed and written on a thread of their own.
_PIPELINE_MIN: Final = 4 << 20
_PIPELINE_DEPTH: Final = 16
_SYNC_EVERY: Final = 64 << 20
_EMPTY_SHA256: Final = hashlib.sha256(b"").hexdigest()
_HEX64: Final = re.compile(r"[0-9a-f]{64}")
#: How long prune waits for running pulls to finish before giving up.
PRUNE_WAIT_S: Final = 60.0


def default_cache_dir() -> Path:
    """``$MODELREGISTRY_CACHE_DIR``, else ``$XDG_CACHE_HOME/modelregistry``, else
    ``~/.cache/modelregistry``."""
    explicit = os.environ.get(CACHE_DIR_ENV)
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "modelregistry"


@dataclass(frozen=True)
class ManifestFile:
    """One file of a version: what its manifest digest covers."""

    file_id: str
    size_bytes: int
    sha256: str


def manifest_digest(files: Iterable[ManifestFile]) -> str:
    """``sha256:<hex>`` over the sorted ``file id, size, sha256`` lines, as the server seals."""
    h = hashlib.sha256()
    for f in sorted(files, key=lambda f: f.file_id):
        h.update(f"{f.file_id}\t{f.size_bytes}\t{f.sha256}\n".encode())
    return f"sha256:{h.hexdigest()}"


@dataclass(frozen=True)
class CachedVersion:
    """A version pulled into the cache."""

    registry: str
    name: str
    manifest_digest: str
    files: tuple[ManifestFile, ...]
    last_used: datetime
    #: Every file's content is present and passes the cheap check.
    complete: bool

    @property
    def size_bytes(self) -> int:
        """Bytes of its distinct contents."""
        return sum({f.sha256: f.size_bytes for f in self.files}.values())


@dataclass(frozen=True)
class PruneReport:
    """What :meth:`Cache.prune` removed."""

    versions: tuple[str, ...]
    blobs: int
    partials: int
    freed_bytes: int


@dataclass(frozen=True)
class CorruptEntry:
    """A cached content whose bytes no longer hash to its name (removed; fetched again)."""

    sha256: str
    actual_sha256: str
    size_bytes: int
    #: ``registry  models/m/versions/n`` of the cached versions that use it.
    versions: tuple[str, ...]


@dataclass(frozen=True)
class VerifyReport:
    """What :meth:`Cache.verify` found."""

    checked_blobs: int
    checked_bytes: int
    corrupt: tuple[CorruptEntry, ...]
    #: Cached versions with a content missing (``registry  name``).
    incomplete: tuple[str, ...] = ()
    #: Manifest records that were unreadable or did not match their digest (removed).
    bad_manifests: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """Nothing corrupt, missing or unreadable."""
        return not (self.corrupt or self.incomplete or self.bad_manifests)


#: ``fetch(offset)`` yields a content's bytes from ``offset`` to its end.
Fetch: TypeAlias = Callable[[int], Iterable[bytes]]


@dataclass
class _Record:
    path: Path
    registry: str
    name: str
    digest: str
    files: tuple[ManifestFile, ...]
    used: float = field(default=0.0)


def registry_key(registry: str) -> str:
    """A directory name for a registry address: readable, and unique by a short hash."""
    readable = re.sub(r"[^A-Za-z0-9._-]", "_", registry)[:60]
    return f"{readable}-{hashlib.sha256(registry.encode()).hexdigest()[:8]}"


class Cache:
    """A cache directory (created on first write)."""

    def __init__(self, root: str | os.PathLike[str] | None = None) -> None:
        self.root = Path(root).expanduser() if root is not None else default_cache_dir()

    def __repr__(self) -> str:
        return f"Cache({str(self.root)!r})"

    # --- paths and locks -------------------------------------------------------------------

    def blob_path(self, sha256: str) -> Path:
        """Where a content lives (whether or not it is there)."""
        sha256 = _check_sha(sha256)
        return self.root / "blobs" / "sha256" / sha256[:2] / sha256

    def _stamp_path(self, sha256: str) -> Path:
        return self.blob_path(sha256).with_name(sha256 + ".stamp")

    def _partial_path(self, sha256: str) -> Path:
        return self.root / "partial" / f"{sha256}.part"

    def partial_size(self, sha256: str) -> int:
        """Bytes of an interrupted download of this content kept for resuming (0: none)."""
        try:
            return self._partial_path(_check_sha(sha256)).stat().st_size
        except FileNotFoundError:
            return 0

    def using(self) -> contextlib.AbstractContextManager[None]:
        """Held (shared) by every pull; :meth:`prune` waits for it exclusively."""
        return file_lock(self.root / "locks" / "cache.lock", shared=True)

    def _content_lock(self, sha256: str) -> contextlib.AbstractContextManager[None]:
        return file_lock(self.root / "locks" / f"{sha256}.lock")

    # --- contents ---------------------------------------------------------------------------

    def has(self, sha256: str, size_bytes: int) -> bool:
        """Whether the content is cached and passes the cheap check (without locking)."""
        return self._state(_check_sha(sha256), size_bytes) == "ok"

    def _state(self, sha256: str, size: int) -> str:
        """``ok``, ``missing``, ``unstamped`` (present, never stamped) or ``bad``."""
        try:
            st = self.blob_path(sha256).stat()
        except FileNotFoundError:
            return "missing"
        if st.st_size != size:
            return "bad"
        try:
            stamp = json.loads(self._stamp_path(sha256).read_text())
        except (OSError, ValueError):
            return "unstamped"
        if not isinstance(stamp, dict) or (
            stamp.get("size"),
            stamp.get("mtime_ns"),
            stamp.get("ino"),
        ) != (st.st_size, st.st_mtime_ns, st.st_ino):
            return "bad"
        return "ok"

    def ensure(self, sha256: str, size_bytes: int, fetch: Fetch) -> tuple[int, int]:
        """Make the content present and verified, fetching what is missing; return (bytes
        received now, bytes reused from an interrupted download).

        Under the content's lock: a present entry that fails the cheap check is removed and
        fetched again; a partial download is continued from its end (its prefix re-hashed
        locally); the bytes are hashed as they arrive and the file enters the cache (read-only,
        by rename) only when size and sha256 match.
        """
        sha256 = _check_sha(sha256)
        with self._content_lock(sha256):
            state = self._state(sha256, size_bytes)
            if state == "ok":
                return 0, 0
            if state == "unstamped" and self._hash_file(self.blob_path(sha256)) == sha256:
                self._stamp(sha256)  # installed, then interrupted before its stamp
                return 0, 0
            if state != "missing":
                self._remove_blob(sha256)
            for _ in range(2):
                received, reused = self._download(sha256, size_bytes, fetch)
                if received >= 0:
                    return received, reused
                # The kept prefix did not belong to this content: it was discarded; once more.
            raise AssertionError("unreachable")  # pragma: no cover

    def _download(self, sha256: str, size: int, fetch: Fetch) -> tuple[int, int]:
        """One attempt; (-1, 0) when a reused prefix turned out wrong (and was discarded)."""
        part = self._partial_path(sha256)
        part.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(part, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            have = os.fstat(fd).st_size
            if have > size:
                os.ftruncate(fd, 0)
                have = 0
            digest = _hash_fd(fd, have)
            os.lseek(fd, have, os.SEEK_SET)
            received = 0
            if have < size:
                with _Sink(fd, digest, threaded=size - have > _PIPELINE_MIN) as sink:
                    for data in fetch(have):
                        if have + received + len(data) > size:
                            raise _size_error(sha256, size, have + received + len(data))
                        sink.put(data)
                        received += len(data)
            if have + received != size:
                raise _size_error(sha256, size, have + received)
            got = digest.hexdigest()
            if got != sha256:
                os.close(fd)
                fd = -1
                part.unlink(missing_ok=True)
                if have > 0:
                    return -1, 0
                raise IntegrityError(
                    f"content {sha256}: sha256 mismatch: got {got}",
                    reason="DIGEST_MISMATCH",
                    metadata={"check": "sha256", "expected": sha256, "actual": got},
                )
            os.fsync(fd)
        finally:
            if fd >= 0:
                os.close(fd)
        blob = self.blob_path(sha256)
        blob.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(part, 0o444)
        os.replace(part, blob)
        self._stamp(sha256)
        return received, have

    def _stamp(self, sha256: str) -> None:
        st = self.blob_path(sha256).stat()
        stamp = {
            "size": st.st_size,
            "mtime_ns": st.st_mtime_ns,
            "ino": st.st_ino,
            "verified": datetime.now(UTC).isoformat(),
        }
        _write_atomic(self._stamp_path(sha256), json.dumps(stamp).encode())

    def put_empty(self) -> None:
        """The empty content (no download needed)."""
        self.ensure(_EMPTY_SHA256, 0, lambda offset: ())

    def _remove_blob(self, sha256: str) -> int:
        path = self.blob_path(sha256)
        size = 0
        with contextlib.suppress(FileNotFoundError):
            size = path.stat().st_size
        path.unlink(missing_ok=True)
        self._stamp_path(sha256).unlink(missing_ok=True)
        return size

    @staticmethod
    def _hash_file(path: Path) -> str:
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            return ""
        try:
            return _hash_fd(fd, None).hexdigest()
        finally:
            os.close(fd)

    # --- versions -------------------------------------------------------------------------

    def _manifest_dir(self, registry: str, name: str) -> Path:
        model, number = _split_version(name)
        return self.root / "manifests" / registry_key(registry) / model / number

    def record_version(
        self, registry: str, name: str, digest: str, files: Sequence[ManifestFile]
    ) -> None:
        """Remember that every file of the sealed version ``name`` (manifest ``digest``) is
        cached."""
        if manifest_digest(files) != digest:
            raise IntegrityError(
                f"{name}: its files do not match its manifest digest {digest}",
                reason="DIGEST_MISMATCH",
                metadata={"name": name, "check": "manifest_digest", "expected": digest},
            )
        body = {
            "registry": registry,
            "name": name,
            "manifest_digest": digest,
            "files": [
                {"file_id": f.file_id, "size_bytes": f.size_bytes, "sha256": f.sha256}
                for f in sorted(files, key=lambda f: f.file_id)
            ],
        }
        path = self._manifest_dir(registry, name) / f"{_digest_hex(digest)}.json"
        _write_atomic(path, json.dumps(body, indent=1).encode())

    def find_version(
        self, registry: str, name: str, digest: str | None = None
    ) -> CachedVersion | None:
        """The cached version ``name`` of ``registry`` with that manifest digest (None: the one
        used most recently), or None. Marks it used."""
        directory = self._manifest_dir(registry, name)
        if digest is not None:
            candidates = [directory / f"{_digest_hex(digest)}.json"]
        else:
            candidates = sorted(directory.glob("*.json"), key=lambda p: _mtime(p), reverse=True)
        for path in candidates:
            record = self._read_record(path)
            if record is None or record.registry != registry or record.name != name:
                continue
            with contextlib.suppress(OSError):
                os.utime(path)
            return self._cached(record)
        return None

    def _cached(self, record: _Record) -> CachedVersion:
        return CachedVersion(
            registry=record.registry,
            name=record.name,
            manifest_digest=record.digest,
            files=record.files,
            last_used=datetime.fromtimestamp(record.used, UTC),
            complete=all(self._state(f.sha256, f.size_bytes) == "ok" for f in record.files),
        )

    def _read_record(self, path: Path) -> _Record | None:
        """A manifest record, or None if absent, unreadable or not matching its digest."""
        try:
            body: Any = json.loads(path.read_text())
            files = tuple(
                ManifestFile(str(f["file_id"]), int(f["size_bytes"]), _check_sha(f["sha256"]))
                for f in body["files"]
            )
            record = _Record(
                path,
                str(body["registry"]),
                str(body["name"]),
                str(body["manifest_digest"]),
                files,
                _mtime(path),
            )
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if manifest_digest(files) != record.digest or path.stem != _digest_hex(record.digest):
            return None
        return record

    def _records(self) -> tuple[list[_Record], list[Path]]:
        """Every readable manifest record, and the paths of the unreadable ones."""
        good: list[_Record] = []
        bad: list[Path] = []
        for path in sorted((self.root / "manifests").glob("*/*/*/*.json")):
            record = self._read_record(path)
            if record is None:
                bad.append(path)
            else:
                good.append(record)
        return good, bad

    def snapshot_dir(self, registry: str, name: str, digest: str) -> Path:
        """Where a pull without a destination materialises the version."""
        model, number = _split_version(name)
        suffix = _digest_hex(digest)[:12] if digest else "draft"
        return self.root / "snapshots" / registry_key(registry) / model / f"{number}-{suffix}"

    # --- list, prune, verify ----------------------------------------------------------------

    def list(self) -> list[CachedVersion]:
        """The cached versions, most recently used first."""
        records, _ = self._records()
        records.sort(key=lambda r: r.used, reverse=True)
        return [self._cached(r) for r in records]

    def size_bytes(self) -> int:
        """Bytes of every cached content and partial download."""
        total = 0
        for directory in (self.root / "blobs", self.root / "partial"):
            for path in directory.rglob("*"):
                if path.is_file() and not path.name.endswith(".stamp"):
                    total += path.stat().st_size
        return total

    def prune(
        self,
        *,
        older_than: timedelta | None = None,
        max_bytes: int | None = None,
        wait: float = PRUNE_WAIT_S,
    ) -> PruneReport:
        """Forget versions not used within ``older_than``, then the least recently used ones
        until the contents of the rest fit in ``max_bytes``; then remove every content,
        partial download and snapshot no remaining version uses. Without arguments only the
        unused contents go. Waits up to ``wait`` seconds for running pulls (then
        :class:`~modelregistry.client.locks.CacheBusyError`)."""
        with file_lock(self.root / "locks" / "cache.lock", timeout=wait):
            records, bad = self._records()
            for path in bad:
                path.unlink(missing_ok=True)
            records.sort(key=lambda r: r.used, reverse=True)  # newest first
            keep: list[_Record] = []
            dropped: list[_Record] = []
            cutoff = None if older_than is None else time.time() - older_than.total_seconds()
            for r in records:
                (dropped if cutoff is not None and r.used < cutoff else keep).append(r)
            if max_bytes is not None:
                sizes: dict[str, int] = {}
                kept: list[_Record] = []
                for r in keep:
                    more = {f.sha256: f.size_bytes for f in r.files if f.sha256 not in sizes}
                    if sum(sizes.values()) + sum(more.values()) <= max_bytes:
                        sizes.update(more)
                        kept.append(r)
                    else:
                        dropped.append(r)
                keep = kept
            for r in dropped:
                r.path.unlink(missing_ok=True)
                with contextlib.suppress(OSError):
                    r.path.parent.rmdir()
                snap = self.snapshot_dir(r.registry, r.name, r.digest)
                shutil.rmtree(snap, ignore_errors=True)
            used = {f.sha256 for r in keep for f in r.files}
            blobs = freed = 0
            for path in sorted((self.root / "blobs" / "sha256").glob("*/*")):
                sha = path.name.removesuffix(".stamp")
                if sha in used:
                    continue
                if path.name.endswith(".stamp"):
                    path.unlink(missing_ok=True)
                    continue
                freed += self._remove_blob(sha) if _HEX64.fullmatch(sha) else _unlink(path)
                blobs += 1
            partials = 0
            for path in sorted((self.root / "partial").glob("*")):
                freed += _unlink(path)
                partials += 1
            self._prune_snapshots({(r.registry, r.name, r.digest) for r in keep})
        return PruneReport(
            versions=tuple(f"{r.registry}  {r.name}" for r in dropped),
            blobs=blobs,
            partials=partials,
            freed_bytes=freed,
        )

    def _prune_snapshots(self, keep: set[tuple[str, str, str]]) -> None:
        wanted = {self.snapshot_dir(*k) for k in keep}
        for path in (self.root / "snapshots").glob("*/*/*"):
            if path not in wanted:
                shutil.rmtree(path, ignore_errors=True)

    def verify(self) -> VerifyReport:
        """Re-hash every cached content (under its lock); remove those that do not match their
        name, so the next pull fetches them again; re-stamp the good ones; check every
        manifest record. Reports which cached versions are affected."""
        with self.using():
            records, bad = self._records()
            for path in bad:
                path.unlink(missing_ok=True)
            users: dict[str, list[str]] = {}
            for r in records:
                for f in r.files:
                    users.setdefault(f.sha256, []).append(f"{r.registry}  {r.name}")
            corrupt: list[CorruptEntry] = []
            checked = checked_bytes = 0
            for path in sorted((self.root / "blobs" / "sha256").glob("*/*")):
                sha = path.name
                if not _HEX64.fullmatch(sha):
                    continue
                with self._content_lock(sha):
                    try:
                        size = path.stat().st_size
                    except FileNotFoundError:
                        continue
                    actual = self._hash_file(path)
                    checked += 1
                    checked_bytes += size
                    if actual == sha:
                        self._stamp(sha)
                        continue
                    self._remove_blob(sha)
                corrupt.append(
                    CorruptEntry(sha, actual, size, tuple(sorted(set(users.get(sha, [])))))
                )
            incomplete = tuple(
                f"{r.registry}  {r.name}"
                for r in records
                if any(self._state(f.sha256, f.size_bytes) != "ok" for f in r.files)
            )
        return VerifyReport(
            checked_blobs=checked,
            checked_bytes=checked_bytes,
            corrupt=tuple(corrupt),
            incomplete=incomplete,
            bad_manifests=tuple(str(p) for p in bad),
        )


# --- helpers -----------------------------------------------------------------------------


def _check_sha(sha256: object) -> str:
    if not isinstance(sha256, str) or not _HEX64.fullmatch(sha256):
        raise ValueError(f"not a lowercase hex sha256: {sha256!r}")
    return sha256


def _digest_hex(digest: str) -> str:
    algorithm, _, hexdigest = digest.partition(":")
    if algorithm != "sha256" or not _HEX64.fullmatch(hexdigest):
        raise ValueError(f"not a manifest digest: {digest!r}")
    return hexdigest


def _split_version(name: str) -> tuple[str, str]:
    parts = name.split("/")
    if len(parts) != 4 or parts[0] != "models" or parts[2] != "versions":
        raise ValueError(f"not a version name: {name!r}")
    if not re.fullmatch(r"[a-z][a-z0-9-]{0,62}", parts[1]) or not parts[3].isdigit():
        raise ValueError(f"not a numbered version name: {name!r}")
    return parts[1], parts[3]


def _hash_fd(fd: int, length: int | None) -> _Hash:
    """sha256 of the first ``length`` bytes of ``fd`` (None: all), read from the start."""
    digest = hashlib.sha256()
    os.lseek(fd, 0, os.SEEK_SET)
    remaining = length
    while remaining is None or remaining > 0:
        data = os.read(fd, _READ if remaining is None else min(_READ, remaining))
        if not data:
            break
        digest.update(data)
        if remaining is not None:
            remaining -= len(data)
    return digest


class _Sink:
    """Hashes and appends received bytes to the partial file. With ``threaded``, sha256 and
    the write each run on a thread of their own (both release the GIL), so they overlap each
    other and the receiving of the next message. Leaving the block waits until every byte
    handed over is hashed and written."""

    def __init__(self, fd: int, digest: _Hash, *, threaded: bool) -> None:
        self._fd = fd
        self._digest = digest
        self._threaded = threaded
        self._queues: list[queue.Queue[bytes | None]] = []
        self._threads: list[threading.Thread] = []
        self._failure: list[BaseException] = []
        self._unsynced = 0

    def __enter__(self) -> _Sink:
        if self._threaded:
            for name, step in (("hash", self._digest.update), ("write", self._write)):
                q: queue.Queue[bytes | None] = queue.Queue(maxsize=_PIPELINE_DEPTH)
                thread = threading.Thread(
                    target=self._drain, args=(q, step), name=f"modelregistry-{name}", daemon=True
                )
                thread.start()
                self._queues.append(q)
                self._threads.append(thread)
        return self

    def _write(self, data: bytes) -> None:
        _write_all(self._fd, data)
        if self._threaded:
            # Flush as it goes (on this thread), so the final fsync has little left to do.
            self._unsynced += len(data)
            if self._unsynced >= _SYNC_EVERY:
                os.fdatasync(self._fd)
                self._unsynced = 0

    def _drain(self, q: queue.Queue[bytes | None], step: Callable[[bytes], object]) -> None:
        while (data := q.get()) is not None:
            if not self._failure:
                try:
                    step(data)
                except BaseException as e:  # handed to the receiving thread
                    self._failure.append(e)

    def put(self, data: bytes) -> None:
        if not self._threaded:
            self._digest.update(data)
            self._write(data)
            return
        if self._failure:
            raise self._failure[0]
        for q in self._queues:
            q.put(data)

    def __exit__(self, *exc: object) -> None:
        for q in self._queues:
            q.put(None)
        for thread in self._threads:
            thread.join()
        if self._failure and exc[0] is None:
            raise self._failure[0]


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _unlink(path: Path) -> int:
    try:
        st = path.lstat()
    except FileNotFoundError:
        return 0
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(path, ignore_errors=True)
        return 0
    path.unlink(missing_ok=True)
    return st.st_size


def _size_error(sha256: str, expected: int, actual: int) -> IntegrityError:
    return IntegrityError(
        f"content {sha256}: size mismatch: expected {expected}, got at least {actual}",
        reason="SIZE_MISMATCH",
        metadata={"check": "size", "expected": str(expected), "actual": str(actual)},
    )
