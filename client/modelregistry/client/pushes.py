"""Pushing a directory as a version: every file (its relative path is its file id) uploaded
with several streams at once, the version sealed, then staged and aliased.

A push is recognised when run again by a fingerprint of what it pushes (model, the files'
manifest digest and the metadata), kept in the version's ``modelregistry-push`` label and used
as the create's request id: a rerun finds the DRAFT version an interrupted run created, skips
the files already stored and continues unfinished uploads from their committed size
(:meth:`RegistryClient.upload_file` finds those), so finished files and committed bytes are not
sent again. A rerun after a complete push finds that sealed version and only sets the stage and
alias again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from modelregistry.client import names
from modelregistry.client.cache import ManifestFile, manifest_digest
from modelregistry.client.errors import AlreadyExistsError, IntegrityError, RegistryError
from modelregistry.client.messages import filter_string
from modelregistry.client.transfers import ProgressCallback
from modelregistry.v1 import resources_pb2 as res

if TYPE_CHECKING:
    from modelregistry.client.client import RegistryClient

__all__ = ["PUSH_LABEL", "LocalFile", "PushResult", "Pusher", "scan"]

#: The label holding a push's fingerprint.
PUSH_LABEL: Final = "modelregistry-push"
_READ: Final = 1 << 20


@dataclass(frozen=True)
class LocalFile:
    """A file to push: its id (relative path), where it is, its size and sha256."""

    file_id: str
    path: Path
    size_bytes: int
    sha256: str


@dataclass(frozen=True)
class PushResult:
    """The result of :meth:`RegistryClient.push_directory`."""

    #: The sealed version (after the stage and alias were set).
    version: res.ModelVersion
    #: File ids uploaded by this run (whole or the rest of an unfinished upload).
    uploaded: tuple[str, ...]
    #: File ids an earlier, interrupted run had stored already.
    skipped: tuple[str, ...]
    #: True when an earlier run's version was continued or found complete.
    resumed: bool


def scan(path: str | os.PathLike[str], *, parallel: int = 4) -> list[LocalFile]:
    """The files under a directory (file ids: their paths relative to it, ``/``-separated;
    symbolic links to files are followed, to directories not) or one file (its name), with
    sizes and sha256 (hashed ``parallel`` at a time)."""
    root = Path(path)
    found: list[tuple[str, Path]] = []
    if root.is_dir():
        for directory, subdirs, filenames in os.walk(root):
            subdirs.sort()
            for filename in sorted(filenames):
                full = Path(directory) / filename
                if full.is_file():
                    found.append((full.relative_to(root).as_posix(), full))
    elif root.is_file():
        found.append((root.name, root))
    else:
        raise FileNotFoundError(f"{root}: no such file or directory")
    if not found:
        raise ValueError(f"{root}: no files to push")
    for file_id, _ in found:
        names.file_name("m", 1, file_id)  # ValueError for ids the registry would refuse

    def measure(item: tuple[str, Path]) -> LocalFile:
        file_id, full = item
        digest = hashlib.sha256()
        size = 0
        with open(full, "rb") as stream:
            while data := stream.read(_READ):
                digest.update(data)
                size += len(data)
        return LocalFile(file_id, full, size, digest.hexdigest())

    with ThreadPoolExecutor(max(1, parallel), "modelregistry-hash") as pool:
        return sorted(pool.map(measure, found), key=lambda f: f.file_id)


class _Progress:
    """Adds up the bytes of parallel uploads for one ``progress(done, total)`` callback."""

    def __init__(self, callback: ProgressCallback | None, total: int) -> None:
        self._callback = callback
        self._total = total
        self._positions: dict[str, int] = {}
        self._lock = threading.Lock()
        if callback is not None:
            callback(0, total)

    def file(self, file_id: str) -> ProgressCallback | None:
        if self._callback is None:
            return None
        callback = self._callback

        def report(done: int, _total: int | None) -> None:
            with self._lock:
                self._positions[file_id] = done
                callback(sum(self._positions.values()), self._total)

        return report

    def skip(self, file_id: str, size: int) -> None:
        with self._lock:
            self._positions[file_id] = size


class Pusher:
    """Pushes directories through a :class:`RegistryClient`."""

    def __init__(self, client: RegistryClient) -> None:
        self._client = client

    def push(
        self,
        model_id: str,
        path: str | os.PathLike[str],
        *,
        create_model: bool,
        alias: str | None,
        stage: str | None,
        labels: Mapping[str, str] | None,
        metrics: Mapping[str, float] | None,
        params: Mapping[str, Any] | None,
        source_commit: str | None,
        datasets: Sequence[str] | None,
        description: str,
        parallel: int,
        progress: ProgressCallback | None,
    ) -> PushResult:
        """See :meth:`RegistryClient.push_directory`."""
        if parallel < 1:
            raise ValueError("parallel must be >= 1")
        reg = self._client
        model_id = names.model_id_of(model_id)
        files = scan(path, parallel=parallel)
        digest = manifest_digest(ManifestFile(f.file_id, f.size_bytes, f.sha256) for f in files)
        version_fields: dict[str, Any] = {
            "description": description,
            "labels": dict(labels or {}),
            "metrics": {k: float(v) for k, v in (metrics or {}).items()},
            "parameters": dict(params or {}),
            "source": {"commit": source_commit} if source_commit else None,
            "datasets": list(datasets or []),
        }
        fingerprint = _fingerprint(model_id, digest, version_fields)
        if create_model:
            with contextlib.suppress(AlreadyExistsError):
                reg.create_model(model_id)
        version = self._find(model_id, fingerprint)
        resumed = version is not None
        if version is None:
            version = self._create(model_id, fingerprint, version_fields)
        number = version.version_number
        uploaded: list[str] = []
        skipped: list[str] = []
        if version.state == res.VERSION_STATE_DRAFT:
            uploaded, skipped = self._upload_all(model_id, number, files, parallel, progress)
            version = reg.seal_version(model_id, number, cancel_uploads=True)
        else:
            skipped = [f.file_id for f in files]
        if version.manifest_digest != digest:
            raise IntegrityError(
                f"{version.name}: sealed with other files than {path}",
                metadata={
                    "name": version.name,
                    "check": "manifest_digest",
                    "expected": digest,
                    "actual": version.manifest_digest,
                },
            )
        if stage and res.Stage.Name(version.stage) != f"STAGE_{stage.upper()}":
            version = reg.transition_stage(model_id, number, stage)
        if alias:
            reg.set_alias(model_id, alias, number)
            version = reg.get_version(model_id, number)
        return PushResult(version, tuple(uploaded), tuple(skipped), resumed)

    def _find(self, model_id: str, fingerprint: str) -> res.ModelVersion | None:
        """The newest live version an earlier run of this push created."""
        found = self._client.list_versions(
            model_id,
            filter=f"labels.{PUSH_LABEL} = {filter_string(fingerprint)}",
            order_by="version_number desc",
            page_size=1,
        )
        for version in found:
            return version
        return None

    def _create(
        self, model_id: str, fingerprint: str, fields: Mapping[str, Any]
    ) -> res.ModelVersion:
        def create(request_id: str) -> res.ModelVersion:
            return self._client.create_version(
                model_id,
                description=fields["description"],
                labels={**fields["labels"], PUSH_LABEL: fingerprint},
                metrics=fields["metrics"],
                parameters=fields["parameters"] or None,
                source=fields["source"],
                datasets=fields["datasets"] or None,
                request_id=request_id,
            )

        # The same request id makes two runs that both found nothing create one version.
        version = create(fingerprint[:32])
        if version.HasField("delete_time"):
            version = create(hashlib.sha256(os.urandom(16)).hexdigest()[:32])
        return version

    def _upload_all(
        self,
        model_id: str,
        number: int,
        files: Sequence[LocalFile],
        parallel: int,
        progress: ProgressCallback | None,
    ) -> tuple[list[str], list[str]]:
        reg = self._client
        stored = {
            names.parse_file_name(f.name).file_id: f for f in reg.list_files(model_id, number)
        }
        wanted = {f.file_id for f in files}
        extra = sorted(set(stored) - wanted)
        if extra:
            raise IntegrityError(
                f"version {number} of {model_id} holds files this push does not have: "
                + ", ".join(extra[:5]),
                reason="UNEXPECTED_FILES",
                metadata={"check": "files", "extra": ",".join(extra[:10])},
            )
        meter = _Progress(progress, sum(f.size_bytes for f in files))
        todo: list[LocalFile] = []
        skipped: list[str] = []
        for f in files:
            have = stored.get(f.file_id)
            if have is None:
                todo.append(f)
                continue
            if (have.size_bytes, have.sha256.lower()) != (f.size_bytes, f.sha256):
                raise IntegrityError(
                    f"{have.name}: stored with other content than {f.path}",
                    metadata={"name": have.name, "check": "sha256", "expected": f.sha256},
                )
            meter.skip(f.file_id, f.size_bytes)
            skipped.append(f.file_id)
        todo.sort(key=lambda f: (-f.size_bytes, f.file_id))  # longest first

        def one(f: LocalFile) -> str:
            try:
                reg.upload_file(
                    model_id,
                    number,
                    f.path,
                    file_id=f.file_id,
                    sha256=f.sha256,
                    progress=meter.file(f.file_id),
                )
            except AlreadyExistsError:
                # A concurrent run of the same push stored it first: fine if it is the same.
                stored_file = reg.get_file(model_id, number, f.file_id)
                if stored_file.sha256.lower() != f.sha256:
                    raise
            return f.file_id

        _run_all(one, todo, parallel)
        return sorted(f.file_id for f in todo), skipped


def _run_all(fn: Callable[[LocalFile], str], items: Iterable[LocalFile], parallel: int) -> None:
    items = list(items)
    if not items:
        return
    if parallel == 1 or len(items) == 1:
        for item in items:
            fn(item)
        return
    with ThreadPoolExecutor(min(parallel, len(items)), "modelregistry-push") as pool:
        futures = [pool.submit(fn, item) for item in items]
        errors: list[BaseException] = []
        for future in futures:
            error = future.exception()
            if error is not None:
                errors.append(error)
        if errors:
            # A registry error says most; otherwise the first.
            raise next((e for e in errors if isinstance(e, RegistryError)), errors[0])


def _fingerprint(model_id: str, digest: str, fields: Mapping[str, Any]) -> str:
    body = json.dumps(
        {"model": model_id, "manifest_digest": digest, **fields}, sort_keys=True, default=str
    )
    return hashlib.sha256(body.encode()).hexdigest()
