"""Pulling a whole version: resolve the reference once, fetch every file of exactly that
version (by number) into the cache, verified, then materialise a directory from the cache.

An alias or ``latest`` is resolved by one GetModelVersion call; from then on every request
names the version number, and the file list is checked against the version's manifest digest,
so an alias moved mid-pull never mixes files of two versions.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from modelregistry.client import names
from modelregistry.client.cache import Cache, ManifestFile, manifest_digest
from modelregistry.client.downloads import Downloader
from modelregistry.client.errors import (
    DeadlineExceededError,
    IntegrityError,
    NotFoundError,
    RegistryError,
    UnavailableError,
)
from modelregistry.client.pager import Pager
from modelregistry.client.transfers import ProgressCallback
from modelregistry.v1 import resources_pb2 as res

__all__ = ["PulledFile", "PulledVersion", "Puller", "VersionRef", "parse_pull_ref"]

_NUMBER: Final = re.compile(r"[1-9][0-9]*")
#: Errors after which a pinned pull is served from the cache.
_OFFLINE_ERRORS: Final = (UnavailableError, DeadlineExceededError)
# Link errors after which a copy is made instead.
_NO_LINK: Final = {errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP, errno.EACCES}


@dataclass(frozen=True)
class VersionRef:
    """A model and the version segment to resolve (a number, ``latest`` or an alias)."""

    model_id: str
    version: str

    @property
    def pinned(self) -> bool:
        """Names a version number (may be served from the cache offline)."""
        return bool(_NUMBER.fullmatch(self.version))


def parse_pull_ref(ref: str) -> VersionRef:
    """``models/M/versions/V``, ``M@ALIAS``, ``M:VERSION``, ``M@latest`` or ``M`` (latest)."""
    if ref.startswith("models/"):
        parts = ref.split("/")
        if len(parts) == 2:
            parts += ["versions", names.LATEST]
        parsed = names.parse_version_name("/".join(parts))
        return VersionRef(parsed.model_id, parsed.version)
    model, at, alias = ref.partition("@")
    if not at:
        model, _, alias = ref.partition(":")
    version = alias or names.LATEST
    parsed = names.parse_version_name(names.version_name(model, version))
    return VersionRef(parsed.model_id, parsed.version)


@dataclass(frozen=True)
class PulledFile:
    """A file of a pulled version and where it was materialised."""

    file_id: str
    path: Path
    size_bytes: int
    sha256: str


@dataclass(frozen=True)
class PulledVersion:
    """The result of :meth:`RegistryClient.pull_version`."""

    #: ``models/{model}/versions/{number}``.
    name: str
    model_id: str
    version_number: int
    #: Empty for a DRAFT version (it has none until sealed).
    manifest_digest: str
    #: The directory the files were materialised in.
    path: Path
    files: tuple[PulledFile, ...]
    #: Bytes received from the server by this pull.
    fetched_bytes: int
    #: Bytes already in the cache (whole contents and kept partial downloads).
    reused_bytes: int
    #: Served from the cache without the server.
    offline: bool
    #: The version as the server returned it (None offline).
    version: res.ModelVersion | None


class _Progress:
    """Adds up the bytes of parallel downloads for one ``progress(done, total)`` callback."""

    def __init__(self, callback: ProgressCallback | None, total: int, done: int) -> None:
        self._callback = callback
        self._total = total
        self._done = done
        self._lock = threading.Lock()
        self.report(0)

    def report(self, more: int) -> None:
        if self._callback is None:
            return
        with self._lock:
            self._done += more
            self._callback(self._done, self._total)


class Puller:
    """Pulls versions through a client's stubs into a :class:`Cache`."""

    def __init__(
        self,
        *,
        registry: str,
        cache: Cache,
        downloader: Downloader,
        get_version: Callable[[str, str], res.ModelVersion],
        list_files: Callable[[str, int], Pager[res.File]],
    ) -> None:
        self._registry = registry
        self._cache = cache
        self._downloader = downloader
        self._get_version = get_version
        self._list_files = list_files

    def pull(
        self,
        ref: str,
        dest: str | os.PathLike[str] | None,
        *,
        copy: bool,
        parallel: int,
        progress: ProgressCallback | None,
        offline: bool,
    ) -> PulledVersion:
        """See :meth:`RegistryClient.pull_version`."""
        if parallel < 1:
            raise ValueError("parallel must be >= 1")
        target = parse_pull_ref(ref)
        with self._cache.using():
            if offline:
                return self._from_cache(target, dest, copy=copy, cause=None)
            try:
                version = self._get_version(target.model_id, target.version)
            except _OFFLINE_ERRORS as err:
                if not target.pinned:
                    raise _amended(
                        err,
                        "resolving an alias or 'latest' needs the server; a pinned version"
                        " (model:3) can be pulled from the cache",
                    ) from err
                return self._from_cache(target, dest, copy=copy, cause=err)
            return self._online(version, dest, copy=copy, parallel=parallel, progress=progress)

    def _online(
        self,
        version: res.ModelVersion,
        dest: str | os.PathLike[str] | None,
        *,
        copy: bool,
        parallel: int,
        progress: ProgressCallback | None,
    ) -> PulledVersion:
        parsed = names.parse_version_name(version.name)
        number = version.version_number
        digest = version.manifest_digest if version.state == res.VERSION_STATE_READY else ""
        cached = self._cache.find_version(self._registry, version.name, digest) if digest else None
        if cached is not None:
            files: Sequence[ManifestFile] = cached.files
        else:
            files = [
                ManifestFile(names.parse_file_name(f.name).file_id, f.size_bytes, f.sha256.lower())
                for f in self._list_files(parsed.model_id, number)
            ]
            if digest and manifest_digest(files) != digest:
                raise IntegrityError(
                    f"{version.name}: the files listed do not match its manifest digest",
                    metadata={
                        "name": version.name,
                        "check": "manifest_digest",
                        "expected": digest,
                        "actual": manifest_digest(files),
                    },
                )
        fetched, reused = self._fetch_all(version.name, files, parallel, progress)
        if digest:
            self._cache.record_version(self._registry, version.name, digest, files)
        path = self._destination(dest, version.name, digest)
        pulled = materialise(self._cache, files, path, copy=copy)
        return PulledVersion(
            name=version.name,
            model_id=parsed.model_id,
            version_number=number,
            manifest_digest=digest,
            path=path,
            files=pulled,
            fetched_bytes=fetched,
            reused_bytes=reused,
            offline=False,
            version=version,
        )

    def _fetch_all(
        self,
        version_name: str,
        files: Sequence[ManifestFile],
        parallel: int,
        progress: ProgressCallback | None,
    ) -> tuple[int, int]:
        """Fetch every distinct content not cached yet; (bytes received, bytes reused)."""
        wanted: dict[str, ManifestFile] = {}
        for f in sorted(files, key=lambda f: (-f.size_bytes, f.file_id)):
            wanted.setdefault(f.sha256, f)
        missing = [f for f in wanted.values() if not self._cache.has(f.sha256, f.size_bytes)]
        reused = sum(f.size_bytes for f in wanted.values()) - sum(f.size_bytes for f in missing)
        partial = sum(min(self._cache.partial_size(f.sha256), f.size_bytes) for f in missing)
        meter = _Progress(progress, sum(f.size_bytes for f in missing), partial)
        if not missing:
            return 0, reused

        def one(f: ManifestFile) -> tuple[int, int]:
            name = f"{version_name}/files/{f.file_id}"
            return self._cache.ensure(f.sha256, f.size_bytes, self._fetcher(name, f, meter))

        if parallel == 1 or len(missing) == 1:
            results = [one(f) for f in missing]
        else:
            with ThreadPoolExecutor(min(parallel, len(missing)), "modelregistry-pull") as pool:
                results = list(pool.map(one, missing))
        return sum(r[0] for r in results), reused + sum(r[1] for r in results)

    def _fetcher(
        self, name: str, file: ManifestFile, meter: _Progress
    ) -> Callable[[int], Iterator[bytes]]:
        def fetch(offset: int) -> Iterator[bytes]:
            meta: list[res.File] = []
            chunks = self._downloader.iter_bytes(
                name, offset=offset, limit=0, progress=None, verify=False, meta=meta
            )
            try:
                for data in chunks:
                    if meta and meta[0].sha256.lower() != file.sha256:
                        raise IntegrityError(
                            f"{name}: the server's file is not the one in the manifest",
                            metadata={
                                "name": name,
                                "check": "sha256",
                                "expected": file.sha256,
                                "actual": meta[0].sha256,
                            },
                        )
                    meter.report(len(data))
                    yield data
            finally:
                chunks.close()

        return fetch

    def _from_cache(
        self,
        target: VersionRef,
        dest: str | os.PathLike[str] | None,
        *,
        copy: bool,
        cause: RegistryError | None,
    ) -> PulledVersion:
        """A pinned version from the cache alone (the server is not asked)."""
        name = names.version_name(target.model_id, target.version)
        if not target.pinned:
            raise ValueError(f"{name}: only a pinned version (model:3) can be pulled offline")
        cached = self._cache.find_version(self._registry, name)
        if cached is None or not cached.complete:
            what = "is not in the cache" if cached is None else "is not whole in the cache"
            if cause is not None:
                raise _amended(cause, f"{name} {what}") from cause
            raise NotFoundError(
                f"{name} of {self._registry} {what}",
                reason="NOT_CACHED",
                metadata={"name": name, "registry": self._registry},
            )
        path = self._destination(dest, name, cached.manifest_digest)
        pulled = materialise(self._cache, cached.files, path, copy=copy)
        return PulledVersion(
            name=name,
            model_id=target.model_id,
            version_number=int(target.version),
            manifest_digest=cached.manifest_digest,
            path=path,
            files=pulled,
            fetched_bytes=0,
            reused_bytes=cached.size_bytes,
            offline=True,
            version=None,
        )

    def _destination(self, dest: str | os.PathLike[str] | None, name: str, digest: str) -> Path:
        if dest is None:
            return self._cache.snapshot_dir(self._registry, name, digest)
        return Path(dest)


def _amended(err: RegistryError, note: str) -> RegistryError:
    """The same error (class, code, reason, metadata) with ``note`` added to its message."""
    return type(err)(
        f"{err.message} ({note})",
        code=err.code,
        reason=err.reason,
        domain=err.domain,
        metadata=err.metadata,
    )


def materialise(
    cache: Cache, files: Iterable[ManifestFile], dest: Path, *, copy: bool
) -> tuple[PulledFile, ...]:
    """Place every file under ``dest`` (file ids are relative paths): a hard link to the
    read-only cached content, or a writable copy when ``copy`` or linking is impossible
    (another filesystem). Each file is put in place by rename, so a reader never sees part of
    one; a file already linked to the cached content is left as it is."""
    dest.mkdir(parents=True, exist_ok=True)
    out: list[PulledFile] = []
    for f in sorted(files, key=lambda f: f.file_id):
        target = dest.joinpath(*_segments(f.file_id))
        blob = cache.blob_path(f.sha256)
        if f.size_bytes == 0 and not blob.exists():
            cache.put_empty()
        target.parent.mkdir(parents=True, exist_ok=True)
        if not copy and _same_file(target, blob):
            out.append(PulledFile(f.file_id, target, f.size_bytes, f.sha256))
            continue
        tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:12]}.tmp")
        try:
            if copy or not _link(blob, tmp):
                shutil.copyfile(blob, tmp)
                os.chmod(tmp, 0o644)
            os.replace(tmp, target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        out.append(PulledFile(f.file_id, target, f.size_bytes, f.sha256))
    return tuple(out)


def _segments(file_id: str) -> list[str]:
    """The path segments of a file id, refusing any that would leave the destination."""
    parts = file_id.split("/")
    if (
        not file_id
        or any(p in ("", ".", "..") for p in parts)
        or "\\" in file_id
        or "\x00" in file_id
    ):
        raise IntegrityError(
            f"file id {file_id!r} is not a relative path inside the destination",
            reason="UNSAFE_FILE_ID",
            metadata={"file_id": file_id, "check": "file_id"},
        )
    return parts


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _link(blob: Path, tmp: Path) -> bool:
    try:
        os.link(blob, tmp)
    except OSError as e:
        if e.errno in _NO_LINK:
            return False
        raise
    return True
