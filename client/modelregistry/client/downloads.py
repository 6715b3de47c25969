"""Downloads: ranged streams resumed from the received offset, verified against the file's
size, sha256 and crc32c; files are written beside their destination and renamed when whole."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Generator
from typing import cast

import google_crc32c
import grpc

from modelregistry.client.calls import Invoker
from modelregistry.client.errors import IntegrityError, RegistryError
from modelregistry.client.hashing import BackgroundSha256
from modelregistry.client.transfers import BinaryWriter, ProgressCallback, resumable
from modelregistry.client.wire import DownloadMessage, TransferCalls
from modelregistry.v1 import payload_pb2 as pl
from modelregistry.v1 import resources_pb2 as res

__all__ = ["Downloader"]


class Downloader:
    """Reads files through ``PayloadService.DownloadFile``."""

    def __init__(self, invoke: Invoker, transfers: TransferCalls) -> None:
        self._invoke = invoke
        self._download = transfers.download

    def iter_bytes(
        self,
        name: str,
        *,
        offset: int,
        limit: int,
        progress: ProgressCallback | None,
        verify: bool,
        meta: list[res.File] | None = None,
    ) -> Generator[bytes, None, None]:
        """Yield the requested bytes, resuming dropped streams; append the File to ``meta``.

        With ``verify`` the length is checked and, for a whole file, sha256 and crc32c; a
        mismatch raises :class:`IntegrityError` when the iteration ends.
        """
        if offset < 0 or limit < 0:
            raise ValueError("offset and limit must be >= 0")
        return self._stream(name, offset, limit, progress, verify, [] if meta is None else meta)

    def to_destination(
        self,
        name: str,
        dest: str | os.PathLike[str] | BinaryWriter,
        *,
        offset: int,
        limit: int,
        progress: ProgressCallback | None,
        verify: bool,
    ) -> res.File:
        """Download to a path (via ``<dest>.part``, renamed once verified) or a stream."""
        meta: list[res.File] = []
        chunks = self.iter_bytes(
            name, offset=offset, limit=limit, progress=progress, verify=verify, meta=meta
        )
        with contextlib.closing(chunks):
            if isinstance(dest, str | os.PathLike):
                path = os.fspath(dest)
                part = path + ".part"
                try:
                    with open(part, "wb") as out:
                        for data in chunks:
                            out.write(data)
                        out.flush()
                        os.fsync(out.fileno())
                    os.replace(part, path)
                except BaseException:
                    with contextlib.suppress(FileNotFoundError):
                        os.remove(part)
                    raise
            else:
                for data in chunks:
                    _write_all(dest, data)
        return meta[0]

    def _stream(
        self,
        name: str,
        offset: int,
        limit: int,
        progress: ProgressCallback | None,
        verify: bool,
        meta: list[res.File],
    ) -> Generator[bytes, None, None]:
        # Hashed on a helper thread while the next message is received.
        digest = BackgroundSha256()
        try:
            yield from self._received(name, offset, limit, progress, verify, meta, digest)
        finally:
            digest.close()  # stops the helper of a download that failed or was abandoned

    def _received(
        self,
        name: str,
        offset: int,
        limit: int,
        progress: ProgressCallback | None,
        verify: bool,
        meta: list[res.File],
        digest: BackgroundSha256,
    ) -> Generator[bytes, None, None]:
        whole = offset == 0 and limit == 0
        crc = 0
        received = 0
        total: int | None = None
        failures = 0
        file: res.File | None = None
        while True:
            request = pl.DownloadFileRequest(
                name=name, offset=offset + received, limit=limit - received if limit else 0
            )
            call: grpc.CallIterator[DownloadMessage] | None = None
            try:
                call = self._invoke(self._download, request, transfer=True)
                with self._invoke.translated():
                    for message in call:
                        if message.file is not None:
                            if file is None:
                                file = message.file
                                meta.append(file)
                                total = _expected_length(file.size_bytes, offset, limit)
                                # Pin `latest`/aliases to the resolved file for resumes.
                                name = file.name or name
                            elif (message.file.size_bytes, message.file.sha256) != (
                                file.size_bytes,
                                file.sha256,
                            ):
                                raise IntegrityError(
                                    f"{file.name}: the file changed while resuming the download",
                                    metadata={"name": file.name, "check": "sha256"},
                                )
                        data = message.data
                        if not data:
                            continue
                        if message.offset != offset + received:
                            raise IntegrityError(
                                f"{name}: expected data at offset {offset + received}, "
                                f"got offset {message.offset}",
                                reason="WRONG_OFFSET",
                                metadata={
                                    "name": name,
                                    "check": "offset",
                                    "expected": str(offset + received),
                                    "actual": str(message.offset),
                                },
                            )
                        if whole and verify:
                            digest.update(data)
                            crc = cast(int, google_crc32c.extend(crc, data))
                        received += len(data)
                        if progress is not None:
                            progress(received, total)
                        yield data
                break
            except RegistryError as err:
                if not resumable(err) or failures >= self._invoke.retries:
                    raise
                if total is not None and received >= total:
                    break  # every byte arrived; only the end of the stream was lost
                failures += 1
                self._invoke.backoff(failures)
            finally:
                if call is not None:
                    cast(Callable[[], bool], call.cancel)()
        if file is None:
            raise IntegrityError(
                f"{name}: the download stream carried no file metadata",
                reason="METADATA_MISSING",
                metadata={"name": name, "check": "metadata"},
            )
        if verify:
            _verify(file, received, total, digest.hexdigest() if whole else None, crc)


def _expected_length(size: int, offset: int, limit: int) -> int:
    available = max(size - offset, 0)
    return min(limit, available) if limit else available


def _write_all(dest: BinaryWriter, data: bytes) -> None:
    """Write every byte, also to raw streams that may write only part of it."""
    while data:
        written = dest.write(data)
        if written is None or written >= len(data):
            return  # None: buffered streams return nothing useful; treat as complete
        if written <= 0:
            raise OSError("the destination stream accepted no bytes")
        data = data[written:]


def _verify(
    file: res.File, received: int, expected: int | None, sha256: str | None, crc32c: int
) -> None:
    """Raise :class:`IntegrityError` unless the received bytes match the file's metadata."""
    checks: list[tuple[str, str, str]] = [("size", str(expected), str(received))]
    if sha256 is not None:
        checks.append(("sha256", file.sha256.lower(), sha256))
        checks.append(("crc32c", f"{file.crc32c:08x}", f"{crc32c:08x}"))
    for check, want, got in checks:
        if want != got:
            raise IntegrityError(
                f"{file.name}: {check} mismatch: expected {want}, got {got}",
                reason="SIZE_MISMATCH" if check == "size" else "DIGEST_MISMATCH",
                metadata={"name": file.name, "check": check, "expected": want, "actual": got},
            )
