"""High-level client of the model registry.

:class:`RegistryClient` wraps the generated ``modelregistry.v1`` stubs: keyword arguments instead
of request messages, lazy pagers, :class:`~modelregistry.client.errors.RegistryError` instead of
``grpc.RpcError``, and verified, resumable file transfers. It returns the generated messages
(``Model``, ``ModelVersion``, ``File`` …) unchanged.

Ids and names are passed to the server as given (``"fraud"`` or ``"models/fraud"``); the server
validates them, so a malformed id raises :class:`InvalidArgumentError`, not ``ValueError``.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import random
import threading
import time
import uuid
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import IO, Any, Final, Protocol, Self, TypeAlias, TypeVar, cast

import google_crc32c
import grpc
from google.protobuf import field_mask_pb2, json_format, struct_pb2, timestamp_pb2
from google.protobuf.descriptor import FileDescriptor
from google.protobuf.message import Message

from modelregistry.client.errors import IntegrityError, RegistryError, from_rpc_error
from modelregistry.v1 import model_registry_pb2 as mr
from modelregistry.v1 import model_registry_pb2_grpc as mr_grpc
from modelregistry.v1 import payload_pb2 as pl
from modelregistry.v1 import payload_pb2_grpc as pl_grpc
from modelregistry.v1 import resources_pb2 as res

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "MAX_CHUNK_SIZE",
    "MAX_MESSAGE_SIZE",
    "BinaryReader",
    "BinaryWriter",
    "ProgressCallback",
    "RegistryClient",
    "channel_options",
    "service_config",
]

_MIB: Final = 1 << 20
#: Default size of upload chunks.
DEFAULT_CHUNK_SIZE: Final = _MIB
#: Largest upload chunk the contract allows.
MAX_CHUNK_SIZE: Final = 2 * _MIB
#: Largest message the channel sends or receives.
MAX_MESSAGE_SIZE: Final = 16 * _MIB
# gRPC caps retry attempts (the first call included) at 5.
_MAX_GRPC_ATTEMPTS: Final = 5
_MAX_BACKOFF: Final = 10.0
_READ_SIZE: Final = _MIB


class BinaryReader(Protocol):
    """A binary source: files, ``BytesIO``, sockets' ``makefile("rb")``, raw streams.

    Seekable sources (``seekable()``, ``seek()`` and ``tell()``) can resume uploads.
    """

    def read(self, size: int = ..., /) -> bytes | None: ...


class BinaryWriter(Protocol):
    """A binary destination with ``write(data)``."""

    def write(self, data: bytes, /) -> int | None: ...


#: ``progress(bytes_done, total)``; ``total`` is None when the size is not known.
ProgressCallback: TypeAlias = Callable[[int, int | None], None]
VersionRef: TypeAlias = "int | str"

_M = TypeVar("_M", bound=Message)
_T = TypeVar("_T")
_Req = TypeVar("_Req", contravariant=True)
_Resp = TypeVar("_Resp", covariant=True)


class _MultiCallable(Protocol[_Req, _Resp]):
    """Any generated stub method: request (or request iterator) in, response (or stream) out."""

    def __call__(
        self,
        request: _Req,
        /,
        timeout: float | None = ...,
        metadata: grpc.Metadata | None = ...,
    ) -> _Resp: ...


# --- channel configuration -------------------------------------------------------------------


def _idempotent_methods() -> list[dict[str, str]]:
    """Unary methods safe to retry: reads, and creates (they carry request ids)."""
    names: list[dict[str, str]] = []
    files: tuple[tuple[FileDescriptor, str], ...] = (
        (mr.DESCRIPTOR, "ModelRegistry"),
        (pl.DESCRIPTOR, "PayloadService"),
    )
    for file, service_name in files:
        service = file.services_by_name[service_name]
        for method in service.methods:
            if method.client_streaming or method.server_streaming:
                continue
            if (
                method.name.startswith(("Get", "List"))
                or "request_id" in method.input_type.fields_by_name
            ):
                names.append({"service": service.full_name, "method": method.name})
    return names


def service_config(retries: int = 5) -> dict[str, Any]:
    """The gRPC service config: retry UNAVAILABLE on idempotent unary methods.

    ``retries`` is the number of retries after the first attempt; gRPC allows at most 4.
    """
    method_config: dict[str, Any] = {"name": _idempotent_methods()}
    if retries > 0:
        method_config["retryPolicy"] = {
            "maxAttempts": min(retries + 1, _MAX_GRPC_ATTEMPTS),
            "initialBackoff": "0.1s",
            "maxBackoff": "5s",
            "backoffMultiplier": 2,
            "retryableStatusCodes": ["UNAVAILABLE"],
        }
    return {"methodConfig": [method_config]}


def channel_options(retries: int = 5) -> list[tuple[str, Any]]:
    """Channel options the client uses: service config with retries and 16 MiB messages.

    Pass them to ``grpc.secure_channel`` when building a channel for ``RegistryClient(channel=…)``.
    """
    return [
        ("grpc.service_config", json.dumps(service_config(retries))),
        ("grpc.enable_retries", 1 if retries > 0 else 0),
        ("grpc.max_receive_message_length", MAX_MESSAGE_SIZE),
        ("grpc.max_send_message_length", MAX_MESSAGE_SIZE),
    ]


# --- small conversions -----------------------------------------------------------------------


def _new_request_id() -> str:
    return uuid.uuid4().hex


def _model_ref(model: str) -> str:
    """``models/{model}`` from an id or a model name."""
    return model if model.startswith("models/") else f"models/{model}"


def _model_id(model: str) -> str:
    return model.removeprefix("models/")


def _version_ref(model: str, version: VersionRef) -> str:
    """A version name from a model id or name and a number, ``latest``, alias or full name."""
    if isinstance(version, str) and version.startswith("models/"):
        return version
    if isinstance(version, bool) or not isinstance(version, int | str):
        raise TypeError(f"version must be an int or a str, not {type(version).__name__}")
    return f"{_model_ref(model)}/versions/{version}"


def _file_ref(model: str, version: VersionRef, file_id: str) -> str:
    return f"{_version_ref(model, version)}/files/{file_id}"


def _alias_ref(model: str, alias: str) -> str:
    return alias if alias.startswith("models/") else f"{_model_ref(model)}/aliases/{alias}"


def _field_mask(paths: Sequence[str]) -> field_mask_pb2.FieldMask:
    """A FieldMask from paths; a single string may hold comma-separated paths."""
    if isinstance(paths, str):
        paths = [p.strip() for p in paths.split(",") if p.strip()]
    return field_mask_pb2.FieldMask(paths=list(paths))


def _enum_name(value: str, prefix: str) -> str:
    """``"production"`` / ``"PRODUCTION"`` / ``"STAGE_PRODUCTION"`` → ``"STAGE_PRODUCTION"``."""
    key = value.strip().upper()
    return key if key.startswith(prefix) else prefix + key


def _stage(stage: res.Stage.ValueType | int | str) -> res.Stage.ValueType:
    if isinstance(stage, str):
        name = _enum_name(stage, "STAGE_")
        try:
            return res.Stage.Value(name)
        except ValueError:
            known = ", ".join(v.name.removeprefix("STAGE_") for v in res.Stage.DESCRIPTOR.values)
            raise ValueError(f"unknown stage {stage!r}; expected one of {known}") from None
    return res.Stage.ValueType(stage)


def _struct(value: Mapping[str, Any] | struct_pb2.Struct) -> struct_pb2.Struct:
    if isinstance(value, struct_pb2.Struct):
        return value
    struct = struct_pb2.Struct()
    struct.update(dict(value))
    return struct


def _timestamp(value: datetime | timestamp_pb2.Timestamp) -> timestamp_pb2.Timestamp:
    """A Timestamp; naive datetimes are taken as UTC (the protobuf convention)."""
    if isinstance(value, timestamp_pb2.Timestamp):
        return value
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(value)
    return ts


MessageLike: TypeAlias = "Message | Mapping[str, Any] | Sequence[Any] | str"


def _coerce(
    cls: type[_M],
    item: MessageLike,
    positional: Sequence[str],
    enums: Mapping[str, str] | None = None,
) -> _M:
    """A message from itself, a dict of its fields, a tuple of ``positional`` fields or a str.

    Enum fields named in ``enums`` (field → value prefix) accept short names such as
    ``"library"`` for ``DEPENDENCY_KIND_LIBRARY``.
    """
    if isinstance(item, cls):
        return item
    if isinstance(item, Message):
        raise TypeError(f"expected {cls.DESCRIPTOR.name}, got {item.DESCRIPTOR.name}")
    if isinstance(item, str):
        item = (item,)
    if isinstance(item, Mapping):
        data = dict(item)
    elif isinstance(item, Sequence):
        if len(item) > len(positional):
            raise ValueError(
                f"{cls.DESCRIPTOR.name} tuple takes at most {len(positional)} items "
                f"({', '.join(positional)}), got {len(item)}"
            )
        data = dict(zip(positional, item, strict=False))
    else:
        raise TypeError(f"cannot make a {cls.DESCRIPTOR.name} from {type(item).__name__}")
    for field, prefix in (enums or {}).items():
        if isinstance(data.get(field), str):
            data[field] = _enum_name(data[field], prefix)
    try:
        return json_format.ParseDict(data, cls())
    except json_format.ParseError as e:
        raise ValueError(f"invalid {cls.DESCRIPTOR.name}: {e}") from e


def _coerce_all(
    cls: type[_M],
    items: Iterable[MessageLike] | None,
    positional: Sequence[str],
    enums: Mapping[str, str] | None = None,
) -> list[_M]:
    return [_coerce(cls, item, positional, enums) for item in items or ()]


def _pages(fetch: Callable[[str], tuple[Sequence[_T], str]]) -> Iterator[_T]:
    """Iterate the items of every page, fetching each page only when needed."""
    token = ""
    while True:
        items, token = fetch(token)
        yield from items
        if not token:
            return


# --- transfers -------------------------------------------------------------------------------


def _resumable(error: RegistryError) -> bool:
    """Whether a failed transfer may be resumed: a dropped or timed-out stream, a conflict."""
    code = error.code
    if code is grpc.StatusCode.ABORTED:
        return error.reason != "ETAG_MISMATCH"
    if code is grpc.StatusCode.INTERNAL:
        # Reset streams and broken connections surface as INTERNAL without server details.
        return error.reason is None
    return code in (
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.CANCELLED,
    )


def _seekable(stream: BinaryReader) -> bool:
    try:
        if not cast(IO[bytes], stream).seekable():
            return False
        cast(IO[bytes], stream).tell()
    except (AttributeError, OSError, ValueError):
        return False
    return True


def _write_all(dest: BinaryWriter, data: bytes) -> None:
    """Write every byte, also to raw streams that may write only part of it."""
    while data:
        written = dest.write(data)
        if written is None or written >= len(data):
            return  # None: buffered streams return nothing useful; treat as complete
        if written <= 0:
            raise OSError("the destination stream accepted no bytes")
        data = data[written:]


def _crc32c(crc: int, data: bytes) -> int:
    return cast(int, google_crc32c.extend(crc, data))


class _UploadSource:
    """The bytes to upload, read chunk by chunk; seekable sources can restart at any offset.

    gRPC pulls request messages on its own thread, so reads are serialised with a lock, and
    :meth:`stop` makes a previous attempt's iterator stop before the source is repositioned.
    """

    def __init__(self, stream: BinaryReader, chunk_size: int) -> None:
        self._reader = stream
        self._stream = cast(IO[bytes], stream)  # seek/tell used only when seekable
        self._chunk_size = chunk_size
        self._lock = threading.Lock()
        self._epoch = 0
        self.seekable = _seekable(stream)
        self.consumed = 0
        # A non-seekable source is read exactly once: hash it on the way to check the result.
        self.digest = None if self.seekable else hashlib.sha256()
        self.start = 0
        self.size: int | None = None
        if self.seekable:
            self.start = self._stream.tell()
            end = self._stream.seek(0, io.SEEK_END)
            self._stream.seek(self.start)
            self.size = max(end - self.start, 0)

    def _read(self, n: int) -> bytes:
        data = self._reader.read(n)
        if data is None:
            raise ValueError("the upload source is non-blocking and has no data ready")
        return data

    def sha256(self) -> str:
        """Hex SHA-256 of the bytes to upload (seekable sources; one read pass)."""
        digest = hashlib.sha256()
        with self._lock:
            self._stream.seek(self.start)
            remaining = self.size
            while remaining is None or remaining > 0:
                data = self._read(_READ_SIZE if remaining is None else min(_READ_SIZE, remaining))
                if not data:
                    break
                digest.update(data)
                if remaining is not None:
                    remaining -= len(data)
            self._stream.seek(self.start)
        return digest.hexdigest()

    def chunks(self, offset: int) -> Iterator[bytes]:
        """Chunks from ``offset`` (relative to the start) until the end of the source."""
        with self._lock:
            self._epoch += 1
            epoch = self._epoch
            if self.seekable:
                self._stream.seek(self.start + offset)
            elif offset != self.consumed:
                raise ValueError("a non-seekable source cannot be repositioned")
        position = offset
        while True:
            with self._lock:
                if epoch != self._epoch:
                    return
                want = self._chunk_size
                if self.size is not None:
                    want = min(want, self.size - position)
                pieces: list[bytes] = []
                got = 0
                while got < want:
                    piece = self._read(want - got)
                    if not piece:
                        break
                    pieces.append(piece)
                    got += len(piece)
                data = pieces[0] if len(pieces) == 1 else b"".join(pieces)
                position += len(data)
                if self.digest is not None:
                    self.consumed += len(data)
                    self.digest.update(data)
            if not data:
                return
            yield data

    def stop(self) -> None:
        """Make every iterator from :meth:`chunks` stop before its next read."""
        with self._lock:
            self._epoch += 1


def _expected_length(size: int, offset: int, limit: int) -> int:
    available = max(size - offset, 0)
    return min(limit, available) if limit else available


class RegistryClient:
    """Client of the model registry's ``ModelRegistry`` and ``PayloadService``.

    ``target`` is ``host:port``; alternatively pass a ready ``channel`` (then the caller owns
    it, and should build it with :func:`channel_options` to get retries and message limits).
    ``timeout`` is the deadline of unary calls; ``transfer_timeout`` the deadline of each
    upload/download stream (None: no deadline). ``metadata`` is sent with every call.
    ``chunk_size`` is the upload chunk size (at most 2 MiB). ``retries`` bounds the gRPC retries
    of idempotent calls and the resumes of a transfer; ``retry_backoff`` is the first back-off
    delay of transfer resumes in seconds (doubling, jittered, at most 10 s).

    The constructor makes no network call. Use as a context manager or call :meth:`close`.
    """

    def __init__(
        self,
        target: str = "127.0.0.1:50051",
        *,
        channel: grpc.Channel | None = None,
        credentials: grpc.ChannelCredentials | None = None,
        timeout: float = 30.0,
        transfer_timeout: float | None = None,
        metadata: Sequence[tuple[str, str]] = (),
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        retries: int = 5,
        retry_backoff: float = 0.2,
    ) -> None:
        if not 0 < chunk_size <= MAX_CHUNK_SIZE:
            raise ValueError(f"chunk_size must be between 1 and {MAX_CHUNK_SIZE} bytes")
        if retries < 0:
            raise ValueError("retries must be >= 0")
        if timeout <= 0 or (transfer_timeout is not None and transfer_timeout <= 0):
            raise ValueError("timeouts must be positive")
        if retry_backoff < 0:
            raise ValueError("retry_backoff must be >= 0")
        self._target = target if channel is None else "<channel>"
        self._owns_channel = channel is None
        if channel is None:
            options = channel_options(retries)
            if credentials is None:
                channel = grpc.insecure_channel(target, options=options)
            else:
                channel = grpc.secure_channel(target, credentials, options=options)
        self._channel = channel
        self._registry = mr_grpc.ModelRegistryStub(channel)
        self._payload = pl_grpc.PayloadServiceStub(channel)
        self._timeout = timeout
        self._transfer_timeout = transfer_timeout
        self._metadata: tuple[tuple[str, str], ...] = tuple((k, v) for k, v in metadata)
        self._chunk_size = chunk_size
        self._retries = retries
        self._retry_backoff = retry_backoff

    # --- plumbing ----------------------------------------------------------------------------

    @property
    def channel(self) -> grpc.Channel:
        """The gRPC channel."""
        return self._channel

    @property
    def chunk_size(self) -> int:
        """Upload chunk size in bytes."""
        return self._chunk_size

    def close(self) -> None:
        """Close the channel if the client created it."""
        if self._owns_channel:
            self._channel.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"RegistryClient({self._target!r})"

    def _call(
        self, method: _MultiCallable[_Req, _Resp], request: _Req, *, transfer: bool = False
    ) -> _Resp:
        """Invoke a stub method with the default deadline and metadata; errors become
        :class:`RegistryError`. Streaming responses raise while being iterated: iterate them
        inside :meth:`_translated`."""
        timeout = self._transfer_timeout if transfer else self._timeout
        with self._translated():
            return method(request, timeout=timeout, metadata=self._metadata)

    @staticmethod
    @contextlib.contextmanager
    def _translated() -> Iterator[None]:
        try:
            yield
        except grpc.RpcError as e:
            raise from_rpc_error(e) from e

    def _backoff(self, attempt: int) -> None:
        """Sleep before resume ``attempt`` (1, 2, …): exponential with jitter."""
        delay = min(self._retry_backoff * (2 ** (attempt - 1)), _MAX_BACKOFF)
        if delay > 0:
            time.sleep(delay / 2 + random.uniform(0, delay / 2))

    # --- models ------------------------------------------------------------------------------

    def create_model(
        self,
        model_id: str,
        *,
        display_name: str = "",
        description: str = "",
        type: str = "",
        author: str = "",
        labels: Mapping[str, str] | None = None,
        request_id: str | None = None,
    ) -> res.Model:
        """Register ``models/{model_id}``; a request id (generated if absent) makes retries safe."""
        model = res.Model(
            display_name=display_name,
            description=description,
            type=type,
            author=author,
            labels=dict(labels or {}),
        )
        request = mr.CreateModelRequest(
            model=model, model_id=_model_id(model_id), request_id=request_id or _new_request_id()
        )
        return self._call(self._registry.CreateModel, request)

    def get_model(self, model_id_or_name: str) -> res.Model:
        """Get a model (soft-deleted ones too) by id or ``models/{id}``."""
        return self._call(
            self._registry.GetModel, mr.GetModelRequest(name=_model_ref(model_id_or_name))
        )

    def list_models_page(
        self,
        *,
        filter: str = "",
        order_by: str = "",
        show_deleted: bool = False,
        page_size: int = 0,
        page_token: str = "",
    ) -> mr.ListModelsResponse:
        """One page of models, with its ``next_page_token``."""
        request = mr.ListModelsRequest(
            filter=filter,
            order_by=order_by,
            show_deleted=show_deleted,
            page_size=page_size,
            page_token=page_token,
        )
        return self._call(self._registry.ListModels, request)

    def list_models(
        self,
        *,
        filter: str = "",
        order_by: str = "",
        show_deleted: bool = False,
        page_size: int = 0,
    ) -> Iterator[res.Model]:
        """All matching models, fetching pages lazily."""

        def fetch(token: str) -> tuple[Sequence[res.Model], str]:
            page = self.list_models_page(
                filter=filter,
                order_by=order_by,
                show_deleted=show_deleted,
                page_size=page_size,
                page_token=token,
            )
            return page.models, page.next_page_token

        return _pages(fetch)

    def update_model(self, model: res.Model, *, update_mask: Sequence[str]) -> res.Model:
        """Update the fields of ``model`` named in ``update_mask`` (etag, if set, must match)."""
        request = mr.UpdateModelRequest(model=model, update_mask=_field_mask(update_mask))
        return self._call(self._registry.UpdateModel, request)

    def delete_model(self, name: str, *, etag: str = "", force: bool = False) -> res.Model:
        """Soft-delete a model; ``force`` also soft-deletes its live versions."""
        request = mr.DeleteModelRequest(name=_model_ref(name), etag=etag, force=force)
        return self._call(self._registry.DeleteModel, request)

    def undelete_model(self, name: str, *, etag: str = "") -> res.Model:
        """Restore a soft-deleted model."""
        request = mr.UndeleteModelRequest(name=_model_ref(name), etag=etag)
        return self._call(self._registry.UndeleteModel, request)

    # --- versions ----------------------------------------------------------------------------

    def create_version(
        self,
        model_id: str,
        *,
        description: str = "",
        type: str = "",
        author: str = "",
        inputs: Iterable[res.Variable | Mapping[str, Any] | Sequence[Any] | str] | None = None,
        outputs: Iterable[res.Variable | Mapping[str, Any] | Sequence[Any] | str] | None = None,
        parameters: Mapping[str, Any] | struct_pb2.Struct | None = None,
        dependencies: Iterable[res.Dependency | Mapping[str, Any] | Sequence[Any] | str]
        | None = None,
        produced_by: Iterable[str | tuple[str, VersionRef]] | None = None,
        metrics: Mapping[str, float] | None = None,
        source: res.SourceCode | Mapping[str, Any] | Sequence[str] | None = None,
        datasets: Iterable[res.DatasetReference | Mapping[str, Any] | Sequence[Any] | str]
        | None = None,
        labels: Mapping[str, str] | None = None,
        expire_time: datetime | timestamp_pb2.Timestamp | None = None,
        request_id: str | None = None,
    ) -> res.ModelVersion:
        """Create the next version of a model (state DRAFT).

        Besides messages: variables as ``(name, type, description)`` tuples or dicts,
        dependencies as ``(name, version, kind)`` (kind ``"library"``, ``"runtime"`` …),
        datasets as a URI or ``(uri, digest, role)``, source as ``(repository, commit, path)``,
        ``produced_by`` as version names or ``(model_id, version)`` pairs, ``parameters`` as a
        dict (becomes a Struct) and ``expire_time`` as a datetime (naive means UTC).
        """
        version = res.ModelVersion(
            description=description,
            type=type,
            author=author,
            inputs=_coerce_all(res.Variable, inputs, ("name", "type", "description", "value")),
            outputs=_coerce_all(res.Variable, outputs, ("name", "type", "description", "value")),
            dependencies=_coerce_all(
                res.Dependency,
                dependencies,
                ("name", "version", "kind"),
                {"kind": "DEPENDENCY_KIND_"},
            ),
            produced_by=[
                p if isinstance(p, str) else _version_ref(p[0], p[1]) for p in produced_by or ()
            ],
            metrics=dict(metrics or {}),
            datasets=_coerce_all(
                res.DatasetReference,
                datasets,
                ("uri", "digest", "role"),
                {"role": "DATASET_ROLE_"},
            ),
            labels=dict(labels or {}),
        )
        if parameters is not None:
            version.parameters.CopyFrom(_struct(parameters))
        if source is not None:
            version.source.CopyFrom(
                _coerce(res.SourceCode, source, ("repository", "commit", "path"))
            )
        if expire_time is not None:
            version.expire_time.CopyFrom(_timestamp(expire_time))
        request = mr.CreateModelVersionRequest(
            parent=_model_ref(model_id),
            model_version=version,
            request_id=request_id or _new_request_id(),
        )
        return self._call(self._registry.CreateModelVersion, request)

    def get_version(self, model_id: str, version: VersionRef = "latest") -> res.ModelVersion:
        """Get a version by number, ``latest`` or alias; ``model_id`` may also be a full
        version name (then ``version`` is ignored)."""
        name = model_id if "/versions/" in model_id else _version_ref(model_id, version)
        return self._call(self._registry.GetModelVersion, mr.GetModelVersionRequest(name=name))

    def list_versions_page(
        self,
        model_id: str = "-",
        *,
        filter: str = "",
        order_by: str = "",
        show_deleted: bool = False,
        page_size: int = 0,
        page_token: str = "",
    ) -> mr.ListModelVersionsResponse:
        """One page of versions of a model (``"-"``: of every model), with its token."""
        request = mr.ListModelVersionsRequest(
            parent=_model_ref(model_id),
            filter=filter,
            order_by=order_by,
            show_deleted=show_deleted,
            page_size=page_size,
            page_token=page_token,
        )
        return self._call(self._registry.ListModelVersions, request)

    def list_versions(
        self,
        model_id: str = "-",
        *,
        filter: str = "",
        order_by: str = "",
        show_deleted: bool = False,
        page_size: int = 0,
    ) -> Iterator[res.ModelVersion]:
        """All matching versions of a model (``"-"``: of every model), fetching pages lazily."""

        def fetch(token: str) -> tuple[Sequence[res.ModelVersion], str]:
            page = self.list_versions_page(
                model_id,
                filter=filter,
                order_by=order_by,
                show_deleted=show_deleted,
                page_size=page_size,
                page_token=token,
            )
            return page.model_versions, page.next_page_token

        return _pages(fetch)

    def update_version(
        self, version: res.ModelVersion, *, update_mask: Sequence[str]
    ) -> res.ModelVersion:
        """Update the fields of ``version`` named in ``update_mask`` (etag, if set, must match)."""
        request = mr.UpdateModelVersionRequest(
            model_version=version, update_mask=_field_mask(update_mask)
        )
        return self._call(self._registry.UpdateModelVersion, request)

    def delete_version(
        self, model_id: str, version: VersionRef, *, etag: str = ""
    ) -> res.ModelVersion:
        """Soft-delete a version (its aliases are removed)."""
        request = mr.DeleteModelVersionRequest(name=_version_ref(model_id, version), etag=etag)
        return self._call(self._registry.DeleteModelVersion, request)

    def undelete_version(
        self, model_id: str, version: VersionRef, *, etag: str = ""
    ) -> res.ModelVersion:
        """Restore a soft-deleted version."""
        request = mr.UndeleteModelVersionRequest(name=_version_ref(model_id, version), etag=etag)
        return self._call(self._registry.UndeleteModelVersion, request)

    def seal_version(
        self, model_id: str, version: VersionRef, *, etag: str = ""
    ) -> res.ModelVersion:
        """Seal a DRAFT version: its files become immutable and it becomes READY."""
        request = mr.SealModelVersionRequest(name=_version_ref(model_id, version), etag=etag)
        return self._call(self._registry.SealModelVersion, request)

    def transition_stage(
        self,
        model_id: str,
        version: VersionRef,
        stage: res.Stage.ValueType | int | str,
        *,
        comment: str = "",
        etag: str = "",
    ) -> res.ModelVersion:
        """Move a version to ``stage`` (``Stage.STAGE_PRODUCTION``, ``"PRODUCTION"`` …)."""
        request = mr.TransitionModelVersionStageRequest(
            name=_version_ref(model_id, version), stage=_stage(stage), comment=comment, etag=etag
        )
        return self._call(self._registry.TransitionModelVersionStage, request)

    def list_stage_transitions(
        self, model_id: str, version: VersionRef, *, page_size: int = 0
    ) -> Iterator[res.StageTransition]:
        """The stage history of a version, oldest first, fetching pages lazily."""
        parent = _version_ref(model_id, version)

        def fetch(token: str) -> tuple[Sequence[res.StageTransition], str]:
            request = mr.ListStageTransitionsRequest(
                parent=parent, page_size=page_size, page_token=token
            )
            page = self._call(self._registry.ListStageTransitions, request)
            return page.stage_transitions, page.next_page_token

        return _pages(fetch)

    # --- aliases -----------------------------------------------------------------------------

    def set_alias(self, model_id: str, alias: str, version: VersionRef) -> res.Alias:
        """Point ``alias`` at a READY version (a number, ``latest``, another alias or a name)."""
        request = mr.SetAliasRequest(
            alias=res.Alias(
                name=_alias_ref(model_id, alias), version=_version_ref(model_id, version)
            )
        )
        return self._call(self._registry.SetAlias, request)

    def get_alias(self, model_id: str, alias: str) -> res.Alias:
        """Get an alias."""
        request = mr.GetAliasRequest(name=_alias_ref(model_id, alias))
        return self._call(self._registry.GetAlias, request)

    def list_aliases(self, model_id: str) -> list[res.Alias]:
        """All aliases of a model, ordered by name."""
        request = mr.ListAliasesRequest(parent=_model_ref(model_id))
        return list(self._call(self._registry.ListAliases, request).aliases)

    def delete_alias(self, model_id: str, alias: str) -> None:
        """Remove an alias."""
        request = mr.DeleteAliasRequest(name=_alias_ref(model_id, alias))
        self._call(self._registry.DeleteAlias, request)

    # --- files -------------------------------------------------------------------------------

    def get_file(self, model_id: str, version: VersionRef, file_id: str = "payload") -> res.File:
        """Get a file's metadata."""
        request = pl.GetFileRequest(name=_file_ref(model_id, version, file_id))
        return self._call(self._payload.GetFile, request)

    def list_files_page(
        self, model_id: str, version: VersionRef, *, page_size: int = 0, page_token: str = ""
    ) -> pl.ListFilesResponse:
        """One page of a version's files, with its token."""
        request = pl.ListFilesRequest(
            parent=_version_ref(model_id, version), page_size=page_size, page_token=page_token
        )
        return self._call(self._payload.ListFiles, request)

    def list_files(
        self, model_id: str, version: VersionRef, *, page_size: int = 0
    ) -> Iterator[res.File]:
        """The files of a version ordered by id, fetching pages lazily."""

        def fetch(token: str) -> tuple[Sequence[res.File], str]:
            page = self.list_files_page(model_id, version, page_size=page_size, page_token=token)
            return page.files, page.next_page_token

        return _pages(fetch)

    def get_upload_status(self, upload_id: str) -> pl.UploadStatus:
        """How many bytes of an upload are durably stored."""
        request = pl.GetUploadStatusRequest(upload_id=upload_id)
        return self._call(self._payload.GetUploadStatus, request)

    def cancel_upload(self, upload_id: str) -> None:
        """Abandon an unfinished upload."""
        self._call(self._payload.CancelUpload, pl.CancelUploadRequest(upload_id=upload_id))

    # --- upload ------------------------------------------------------------------------------

    def upload_file(
        self,
        model_id: str,
        version: VersionRef,
        source: str | os.PathLike[str] | BinaryReader,
        *,
        file_id: str = "payload",
        content_type: str = "",
        sha256: str | None = None,
        upload_id: str | None = None,
        progress: ProgressCallback | None = None,
        max_resumes: int | None = None,
    ) -> res.File:
        """Upload a file to a DRAFT version in ``chunk_size`` chunks and return it.

        ``source`` is a path or a binary stream (read from its current position). For paths and
        seekable streams the size is declared and the SHA-256 computed first (one extra read)
        unless given, so the server verifies the whole file; non-seekable streams are sent
        without size or digest, hashed while streaming and checked against the stored file.
        A dropped stream is resumed from the committed size reported by GetUploadStatus, at
        most ``max_resumes`` times (default: ``retries``), with jittered exponential back-off;
        a non-seekable source can only restart if nothing was read from it yet. Passing the
        ``upload_id`` of an interrupted upload continues it from its committed size (seekable
        sources; one GetUploadStatus call first).
        ``progress(bytes_sent, total)`` runs after each chunk, on gRPC's sending thread (after
        a resume ``bytes_sent`` restarts from the committed size); an exception from it or
        from the source aborts the upload and is re-raised here.
        """
        name = _file_ref(model_id, version, file_id)
        # A caller-chosen id may name an upload that already has committed bytes: ask first.
        resuming = upload_id is not None
        upload_id = upload_id or _new_request_id()
        resumes = self._retries if max_resumes is None else max_resumes
        with contextlib.ExitStack() as stack:
            if isinstance(source, str | os.PathLike):
                stream: BinaryReader = stack.enter_context(open(source, "rb"))
            else:
                stream = source
            src = _UploadSource(stream, self._chunk_size)
            if sha256 is None and src.seekable:
                sha256 = src.sha256()
            header = pl.UploadHeader(
                name=name,
                upload_id=upload_id,
                size_bytes=src.size,
                sha256=(sha256 or "").lower(),
                content_type=content_type,
            )
            offset = 0
            failures = 0
            check_status = resuming and src.seekable
            while True:
                try:
                    if check_status:
                        status = self._upload_resume_point(upload_id)
                        if status is not None and status.state == pl.UPLOAD_STATE_COMMITTED:
                            if progress is not None:
                                progress(status.file.size_bytes, src.size)
                            return self._check_uploaded(status.file, header)
                        offset = 0 if status is None else status.committed_size_bytes
                    header.write_offset = offset
                    file = self._upload_once(header, src, offset, progress)
                    if src.digest is not None:
                        header.sha256 = src.digest.hexdigest()  # compare what was streamed
                    return self._check_uploaded(file, header)
                except RegistryError as err:
                    if not _resumable(err) or failures >= resumes:
                        raise
                    if not src.seekable and src.consumed > 0:
                        raise
                    failures += 1
                    check_status = src.seekable
                    self._backoff(failures)

    def _upload_resume_point(self, upload_id: str) -> pl.UploadStatus | None:
        """The upload's status, or None if the server never saw it (start over)."""
        try:
            return self.get_upload_status(upload_id)
        except RegistryError as err:
            if err.code is grpc.StatusCode.NOT_FOUND and err.reason in (None, "UPLOAD_NOT_FOUND"):
                return None
            raise

    def _upload_once(
        self,
        header: pl.UploadHeader,
        src: _UploadSource,
        offset: int,
        progress: ProgressCallback | None,
    ) -> res.File:
        """One UploadFile stream: the header, then chunks from ``offset``."""
        failure: list[BaseException] = []

        def requests() -> Iterator[pl.UploadFileRequest]:
            try:
                yield pl.UploadFileRequest(header=header)
                position = offset
                for data in src.chunks(offset):
                    yield pl.UploadFileRequest(chunk=pl.UploadChunk(offset=position, data=data))
                    position += len(data)
                    if progress is not None:
                        progress(position, src.size)
            except GeneratorExit:
                raise
            except BaseException as e:
                # gRPC cancels the call when the request iterator raises; keep the cause so
                # the caller sees it rather than the cancellation (never resume on it).
                failure.append(e)
                raise RuntimeError("upload source failed") from e

        try:
            return self._call(self._payload.UploadFile, requests(), transfer=True)
        except RegistryError as e:
            if failure:
                raise failure[0] from e
            raise
        finally:
            src.stop()

    @staticmethod
    def _check_uploaded(file: res.File, header: pl.UploadHeader) -> res.File:
        """Cross-check the stored file against what the client declared."""
        if header.HasField("size_bytes") and file.size_bytes != header.size_bytes:
            raise IntegrityError(
                f"{file.name}: server stored {file.size_bytes} bytes, sent {header.size_bytes}",
                reason="SIZE_MISMATCH",
                metadata={
                    "name": file.name,
                    "check": "size",
                    "expected": str(header.size_bytes),
                    "actual": str(file.size_bytes),
                },
            )
        if header.sha256 and file.sha256.lower() != header.sha256:
            raise IntegrityError(
                f"{file.name}: server stored sha256 {file.sha256}, sent {header.sha256}",
                metadata={
                    "name": file.name,
                    "check": "sha256",
                    "expected": header.sha256,
                    "actual": file.sha256,
                },
            )
        return file

    # --- download ----------------------------------------------------------------------------

    def iter_file(
        self,
        model_id: str,
        version: VersionRef,
        *,
        file_id: str = "payload",
        offset: int = 0,
        limit: int = 0,
        progress: ProgressCallback | None = None,
        verify: bool = True,
    ) -> Generator[bytes, None, None]:
        """Stream a file's bytes (or ``limit`` bytes from ``offset``; 0: to the end).

        A dropped stream is resumed from the bytes received. With ``verify``, the length is
        checked and, for a whole file, its sha256 and crc32c; a mismatch raises
        :class:`IntegrityError` when the iteration ends (after the bytes were yielded).
        Nothing is requested before the first ``next()``; ``close()`` cancels the stream.
        """
        return self._download(
            _file_ref(model_id, version, file_id), offset, limit, progress, verify, []
        )

    def download_file(
        self,
        model_id: str,
        version: VersionRef,
        dest: str | os.PathLike[str] | BinaryWriter,
        *,
        file_id: str = "payload",
        offset: int = 0,
        limit: int = 0,
        progress: ProgressCallback | None = None,
        verify: bool = True,
    ) -> res.File:
        """Download a file (or a range) to a path or binary stream; return its metadata.

        A path is written to ``<dest>.part`` and renamed to ``dest`` only after verification,
        so on :class:`IntegrityError` (or any failure) nothing is left at ``dest``. A stream
        receives the bytes as they arrive. Resume and verification are as in :meth:`iter_file`.
        """
        meta: list[res.File] = []
        chunks = self._download(
            _file_ref(model_id, version, file_id), offset, limit, progress, verify, meta
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

    def _download(
        self,
        name: str,
        offset: int,
        limit: int,
        progress: ProgressCallback | None,
        verify: bool,
        meta: list[res.File],
    ) -> Generator[bytes, None, None]:
        """Yield the requested bytes, resuming dropped streams; append the File to ``meta``."""
        if offset < 0 or limit < 0:
            raise ValueError("offset and limit must be >= 0")
        whole = offset == 0 and limit == 0
        digest = hashlib.sha256()
        crc = 0
        received = 0
        total: int | None = None
        failures = 0
        file: res.File | None = None
        while True:
            request = pl.DownloadFileRequest(
                name=name, offset=offset + received, limit=limit - received if limit else 0
            )
            call: grpc.CallIterator[pl.DownloadFileResponse] | None = None
            try:
                call = self._call(self._payload.DownloadFile, request, transfer=True)
                with self._translated():
                    for message in call:
                        if message.HasField("file"):
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
                            crc = _crc32c(crc, data)
                        received += len(data)
                        if progress is not None:
                            progress(received, total)
                        yield data
                break
            except RegistryError as err:
                if not _resumable(err) or failures >= self._retries:
                    raise
                if total is not None and received >= total:
                    break  # every byte arrived; only the end of the stream was lost
                failures += 1
                self._backoff(failures)
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
            _verify_download(file, received, total, digest.hexdigest() if whole else None, crc)


def _verify_download(
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
