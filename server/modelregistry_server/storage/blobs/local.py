"""Blob store on a local filesystem.

Layout under ``root``: blob ``sha256/<hex>`` is ``sha256/<hex[:2]>/<hex>``; upload ``U`` is one
file ``uploads/U`` that pieces are appended to (the domain names one per writer of an upload).
A blob appears only by hard-linking a complete, fsynced upload file to its final name
(create-only, atomic), so a reader sees either no blob or all of it. The root must live on a
filesystem with hard links (any POSIX filesystem).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import stat
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from ...domain.errors import DataLoss, Reason, Unavailable
from ...domain.ports import StoredObject
from .keys import (
    BLOB_KEY_PREFIX,
    check_key,
    check_position,
    check_upload_id,
    is_hex_digest,
    is_upload_id,
)

log = logging.getLogger(__name__)

DEFAULT_READ_CHUNK_SIZE = 1 << 20
UNAVAILABLE_MESSAGE = "the blob store is unavailable; retry later"
_COPY_BLOCK = 1 << 20


@contextlib.contextmanager
def _fs(what: str) -> Iterator[None]:
    """Report a failing filesystem call as the store being unavailable."""
    try:
        yield
    except OSError as exc:
        raise _unavailable(what, exc) from exc


def _unavailable(what: str, exc: OSError) -> Unavailable:
    """The client hears that the store is unavailable; paths and errno text go to the log."""
    log.warning("local blob store: cannot %s: %s", what, exc)
    return Unavailable(UNAVAILABLE_MESSAGE)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _mkdir_durable(path: Path) -> None:
    """Create ``path`` and missing parents, fsyncing each new directory's parent."""
    missing: list[Path] = []
    while not path.is_dir():
        missing.append(path)
        path = path.parent
    for directory in reversed(missing):
        directory.mkdir(exist_ok=True)
        _fsync_dir(directory.parent)


def _write_all(fd: int, data: bytes, position: int) -> None:
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, position)
        view = view[written:]
        position += written


def _copy_range(src: int, dst: int, size: int) -> None:
    """Copy bytes ``[0, size)`` of ``src`` to ``dst`` in the kernel where it can (bounded
    memory either way)."""
    position = 0
    while position < size:
        count = min(_COPY_BLOCK, size - position)
        try:
            copied = os.copy_file_range(src, dst, count, position, position)
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL):
                raise
            data = os.pread(src, count, position)
            _write_all(dst, data, position)
            copied = len(data)
        if copied <= 0:
            raise OSError(errno.EIO, "upload file shrank while copying")
        position += copied


def _mtime(st: os.stat_result) -> datetime:
    return datetime.fromtimestamp(st.st_mtime, tz=UTC)


class _FileChunks(Iterator[bytes]):
    """Bytes ``[start, end)`` of an open file in pieces; closes the file when done or dropped."""

    def __init__(
        self, file: BinaryIO, start: int, end: int, chunk_size: int, what: str, short: Reason
    ) -> None:
        self._file = file
        self._position = start
        self._end = end
        self._chunk_size = chunk_size
        self._what = what
        self._short = short  # the reason when the file ends early

    def __next__(self) -> bytes:
        if self._position >= self._end:
            self.close()
            raise StopIteration
        with _fs(f"read {self._what}"):
            self._file.seek(self._position)
            data = self._file.read(min(self._chunk_size, self._end - self._position))
        if not data:
            self.close()
            raise DataLoss(
                f"{self._what} ended at byte {self._position}, expected {self._end}",
                reason=self._short,
            )
        self._position += len(data)
        return data

    def close(self) -> None:
        """Release the file (also done at the end of the data)."""
        self._file.close()

    def __del__(self) -> None:
        self._file.close()


class LocalBlobStore:
    """:class:`~modelregistry_server.domain.ports.BlobStore` on a directory tree."""

    def __init__(self, root: Path, read_chunk_size: int = DEFAULT_READ_CHUNK_SIZE) -> None:
        if read_chunk_size <= 0:
            raise ValueError(f"read_chunk_size must be positive, got {read_chunk_size}")
        self._root = Path(root).absolute()
        self._blobs = self._root / "sha256"
        self._uploads = self._root / "uploads"
        self._read_chunk_size = read_chunk_size
        with _fs(f"create {self._root}"):
            _mkdir_durable(self._blobs)
            _mkdir_durable(self._uploads)

    def __repr__(self) -> str:
        return f"LocalBlobStore({str(self._root)!r})"

    # -- names -------------------------------------------------------------------------------
    def _blob_path(self, key: str) -> Path:
        digest = check_key(key)
        return self._blobs / digest[:2] / digest

    def _upload_path(self, upload_id: str) -> Path:
        check_upload_id(upload_id)
        return self._uploads / upload_id

    # -- uploads -----------------------------------------------------------------------------
    def write_upload(self, upload_id: str, offset: int, chunks: Iterable[bytes]) -> int:
        """Truncate the upload file to ``offset`` and append ``chunks`` (durable after
        :meth:`sync_upload`)."""
        path = self._upload_path(upload_id)
        check_position("offset", offset)
        with _fs(f"open upload {upload_id}"):
            fd, created = self._open_upload(path, create=offset == 0)
        try:
            with _fs(f"prepare upload {upload_id}"):
                fd = self._own(path, fd, offset)
                stored = os.fstat(fd).st_size
            if stored < offset:
                raise self._missing_upload(upload_id, stored, offset)
            with _fs(f"prepare upload {upload_id}"):
                os.ftruncate(fd, offset)
            position = offset
            try:
                for chunk in chunks:
                    with _fs(f"write upload {upload_id}"):
                        _write_all(fd, chunk, position)
                    position += len(chunk)
            except BaseException:
                # Whatever reached the file from this call does not count.
                with contextlib.suppress(OSError):
                    if created:
                        path.unlink()
                    else:
                        os.ftruncate(fd, offset)
                raise
        finally:
            os.close(fd)
        return position - offset

    def sync_upload(self, upload_id: str) -> None:
        """fsync the upload file and its directory entry."""
        path = self._upload_path(upload_id)
        with _fs(f"sync upload {upload_id}"):
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            _fsync_dir(self._uploads)

    def read_upload(self, upload_id: str, size: int) -> Iterator[bytes]:
        """The first ``size`` bytes of the upload file."""
        path = self._upload_path(upload_id)
        check_position("size", size)
        if size == 0:
            return iter(())
        what = f"upload {upload_id}"
        file, stored = self._open_for_read(path, what, self._missing_upload(upload_id, 0, size))
        if stored < size:
            file.close()
            raise self._missing_upload(upload_id, stored, size)
        return _FileChunks(file, 0, size, self._read_chunk_size, what, Reason.UPLOAD_DATA_MISSING)

    def commit_upload(self, upload_id: str, size: int, key: str) -> bool:
        """Publish the first ``size`` bytes as blob ``key`` by hard link (create-only)."""
        path = self._upload_path(upload_id)
        final = self._blob_path(key)
        check_position("size", size)
        with _fs(f"open upload {upload_id}"):
            fd, created = self._open_upload(path, create=size == 0)
        try:
            with _fs(f"prepare upload {upload_id}"):
                if self._is_published(fd, final):
                    # An earlier commit linked this very file and stopped before cleaning up.
                    path.unlink()
                    return False
                fd = self._own(path, fd, size)
                stored = os.fstat(fd).st_size
            if stored < size:
                raise self._missing_upload(upload_id, stored, size)
            with _fs(f"sync upload {upload_id}"):
                if stored > size:
                    os.ftruncate(fd, size)
                os.utime(fd)  # a blob's modification time is its commit time
                os.fsync(fd)
                if created:
                    _fsync_dir(self._uploads)
        finally:
            os.close(fd)
        with _fs(f"publish blob {key}"):
            _mkdir_durable(final.parent)
            try:
                os.link(path, final)
            except FileExistsError:
                path.unlink()
                return False
            _fsync_dir(final.parent)
            path.unlink()
        return True

    def abort_upload(self, upload_id: str) -> None:
        """Remove the upload file if there is one."""
        path = self._upload_path(upload_id)
        with _fs(f"remove upload {upload_id}"), contextlib.suppress(FileNotFoundError):
            path.unlink()

    def copy_upload(self, source_id: str, target_id: str, size: int) -> None:
        """Copy the first ``size`` bytes of one upload file into a new file for another (a new
        inode: a writer still holding the source open cannot reach the copy)."""
        source = self._upload_path(source_id)
        target = self._upload_path(target_id)
        check_position("size", size)
        with _fs(f"open upload {source_id}"):
            try:
                src = os.open(source, os.O_RDONLY)
            except FileNotFoundError:
                raise self._missing_upload(source_id, 0, size) from None
        try:
            with _fs(f"stat upload {source_id}"):
                stored = os.fstat(src).st_size
            if stored < size:
                raise self._missing_upload(source_id, stored, size)
            with _fs(f"copy upload {source_id}"):
                with contextlib.suppress(FileNotFoundError):
                    target.unlink()
                dst = self._create(target)
                try:
                    _copy_range(src, dst, size)
                    os.fsync(dst)
                except BaseException:
                    os.close(dst)
                    with contextlib.suppress(OSError):
                        target.unlink()
                    raise
                os.close(dst)
                _fsync_dir(self._uploads)
        finally:
            os.close(src)

    def _open_upload(self, path: Path, *, create: bool) -> tuple[int, bool]:
        """Open an upload file read-write; True if this call created it.

        A missing file is created only if ``create`` (nothing stored yet is needed);
        otherwise it is reported as missing upload data.
        """
        if create:
            try:
                return self._create(path), True
            except FileExistsError:
                pass
        try:
            return os.open(path, os.O_RDWR), False
        except FileNotFoundError:
            raise self._missing_upload(path.name, 0, None) from None

    def _create(self, path: Path) -> int:
        """Create a new upload file, re-making the uploads directory if it vanished."""
        try:
            return os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        except FileNotFoundError:
            _mkdir_durable(self._uploads)
            return os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)

    @staticmethod
    def _is_published(fd: int, final: Path) -> bool:
        st = os.fstat(fd)
        if st.st_nlink <= 1:
            return False
        try:
            published = final.stat()
        except FileNotFoundError:
            return False
        return (published.st_dev, published.st_ino) == (st.st_dev, st.st_ino)

    def _own(self, path: Path, fd: int, keep: int) -> int:
        """Make sure the upload file is not also a blob before it is changed.

        An interrupted commit leaves the upload file hard-linked to its blob; writing to it
        would change the blob. Such a file is replaced by a private copy of its first ``keep``
        bytes (the blob keeps the old one). Returns the descriptor to use from now on.
        """
        st = os.fstat(fd)
        if st.st_nlink <= 1:
            return fd
        if st.st_size < keep:
            return fd  # the caller reports the missing bytes; nothing will be changed
        path.unlink()
        new_fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            position = 0
            while position < keep:
                data = os.pread(fd, min(_COPY_BLOCK, keep - position), position)
                if not data:
                    raise OSError(errno.EIO, "upload file shrank while copying")
                _write_all(new_fd, data, position)
                position += len(data)
            os.fsync(new_fd)
            _fsync_dir(self._uploads)
        except BaseException:
            os.close(new_fd)
            raise
        os.close(fd)
        return new_fd

    @staticmethod
    def _missing_upload(upload_id: str, stored: int, needed: int | None) -> DataLoss:
        wanted = "" if needed is None else f", {needed} needed"
        return DataLoss(
            f"upload {upload_id} has {stored} bytes stored{wanted}",
            reason=Reason.UPLOAD_DATA_MISSING,
        )

    # -- blobs -------------------------------------------------------------------------------
    def read(self, key: str, offset: int = 0, limit: int | None = None) -> Iterator[bytes]:
        """Stream ``limit`` bytes (all if None) of the blob from ``offset``."""
        path = self._blob_path(key)
        check_position("offset", offset)
        check_position("limit", limit)
        what = f"blob {key}"
        missing = DataLoss(f"{what} is missing", reason=Reason.BLOB_MISSING)
        file, size = self._open_for_read(path, what, missing)
        end = size if limit is None else min(size, offset + limit)
        return _FileChunks(file, offset, end, self._read_chunk_size, what, Reason.BLOB_MISSING)

    @staticmethod
    def _open_for_read(path: Path, what: str, missing: DataLoss) -> tuple[BinaryIO, int]:
        """Open a file for reading with its current size; ``missing`` if it does not exist."""
        try:
            file = path.open("rb")
        except FileNotFoundError:
            raise missing from None
        except OSError as exc:
            raise _unavailable(f"open {what}", exc) from exc
        with _fs(f"stat {what}"):
            try:
                return file, os.fstat(file.fileno()).st_size
            except BaseException:
                file.close()
                raise

    def exists(self, key: str) -> bool:
        """True if the blob file exists."""
        path = self._blob_path(key)
        with _fs(f"look up blob {key}"):
            return path.is_file()

    def delete(self, key: str) -> None:
        """Remove the blob file if there is one."""
        path = self._blob_path(key)
        with _fs(f"delete blob {key}"), contextlib.suppress(FileNotFoundError):
            path.unlink()

    def list_blobs(self, after: str = "") -> Iterator[StoredObject]:
        """Every blob file under ``sha256/`` whose key sorts after ``after``."""
        start = after.removeprefix(BLOB_KEY_PREFIX)
        with _fs("list blobs"):
            shards = sorted(e.name for e in os.scandir(self._blobs) if e.is_dir())
        for shard in shards:
            if shard < start[: len(shard)]:
                continue  # every blob of this shard sorts before ``after``
            for entry, st in self._scan(self._blobs / shard):
                key = BLOB_KEY_PREFIX + entry
                if is_hex_digest(entry) and entry.startswith(shard) and key > after:
                    yield StoredObject(key, st.st_size, _mtime(st))

    def list_uploads(self, after: str = "") -> Iterator[StoredObject]:
        """Every upload file under ``uploads/`` whose id sorts after ``after``."""
        found = sorted(self._scan(self._uploads), key=lambda item: item[0] + "/")
        for entry, st in found:
            if is_upload_id(entry) and entry + "/" > after + "/":
                yield StoredObject(entry, st.st_size, _mtime(st))

    @staticmethod
    def _scan(directory: Path) -> Iterator[tuple[str, os.stat_result]]:
        """Names and stats of the regular files in ``directory``, skipping vanished ones."""
        with _fs(f"list {directory}"):
            try:
                entries = sorted(os.scandir(directory), key=lambda e: e.name)
            except FileNotFoundError:
                return
        for entry in entries:
            try:
                st = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue  # removed while listing
            except OSError as exc:
                raise _unavailable(f"stat {entry.path}", exc) from exc
            if stat.S_ISREG(st.st_mode):
                yield entry.name, st
