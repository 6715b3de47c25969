"""High-level client of the model registry.

:class:`RegistryClient` is a facade over the generated ``modelregistry.v1`` stubs: keyword
arguments instead of request messages, lazy pagers (:class:`~modelregistry.client.pager.Pager`),
:class:`~modelregistry.client.errors.RegistryError` instead of ``grpc.RpcError``, and verified,
resumable file transfers. It returns the generated messages (``Model``, ``ModelVersion``,
``File`` …) unchanged. Its parts: :mod:`~modelregistry.client.channel` (channel and retry
config), :mod:`~modelregistry.client.calls` (deadlines, metadata, errors),
:mod:`~modelregistry.client.uploads` and :mod:`~modelregistry.client.downloads` (transfers),
:mod:`~modelregistry.client.pager` and :mod:`~modelregistry.client.messages` (requests).

Ids and names are passed to the server as given (``"fraud"`` or ``"models/fraud"``); the server
validates them, so a malformed id raises :class:`InvalidArgumentError`, not ``ValueError``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, Self, TypeAlias, TypeVar

import grpc
from google.protobuf import struct_pb2, timestamp_pb2

from modelregistry.client import messages, names
from modelregistry.client.access import Access
from modelregistry.client.cache import Cache
from modelregistry.client.calls import Invoker, MultiCallable, new_request_id
from modelregistry.client.channel import (
    MAX_MESSAGE_SIZE,
    channel_options,
    open_channel,
    service_config,
)
from modelregistry.client.credentials import TOKEN_ENV, Pem, TokenProvider, channel_credentials
from modelregistry.client.downloads import Downloader
from modelregistry.client.names import DEFAULT_FILE_ID, LATEST
from modelregistry.client.pager import PagedRequest, PagedResponse, Pager, pager
from modelregistry.client.pulls import PulledVersion, Puller
from modelregistry.client.pushes import Pusher, PushResult
from modelregistry.client.transfers import (
    DEFAULT_CHUNK_SIZE,
    MAX_CHUNK_SIZE,
    BinaryReader,
    BinaryWriter,
    ProgressCallback,
)
from modelregistry.client.uploads import Uploader
from modelregistry.client.watch import EventWatch
from modelregistry.client.webhooks import Webhooks
from modelregistry.client.wire import TransferCalls
from modelregistry.v1 import access_pb2 as ac
from modelregistry.v1 import access_pb2_grpc as ac_grpc
from modelregistry.v1 import events_pb2 as ev
from modelregistry.v1 import events_pb2_grpc as ev_grpc
from modelregistry.v1 import lineage_pb2 as lpb
from modelregistry.v1 import model_registry_pb2 as mr
from modelregistry.v1 import model_registry_pb2_grpc as mr_grpc
from modelregistry.v1 import payload_pb2 as pl
from modelregistry.v1 import payload_pb2_grpc as pl_grpc
from modelregistry.v1 import resources_pb2 as res
from modelregistry.v1 import webhooks_pb2 as wh
from modelregistry.v1 import webhooks_pb2_grpc as wh_grpc

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

VersionRef: TypeAlias = "int | str"

_T = TypeVar("_T")
_Req = TypeVar("_Req", bound=PagedRequest)
_Resp = TypeVar("_Resp", bound=PagedResponse)


class RegistryClient:
    """Client of the model registry's ``ModelRegistry``, ``PayloadService``, ``AccessService``,
    ``EventService`` and ``WebhookService``.

    ``target`` is ``host:port``; alternatively pass a ready ``channel`` (then the caller owns
    it, and should build it with :func:`channel_options` to get retries and message limits).
    Credentials (:mod:`~modelregistry.client.credentials`): ``token`` (a JWT or API key;
    default ``MODELREGISTRY_TOKEN``) or ``token_provider`` (called before every call, for
    tokens that expire), ``root_certificates`` (PEM bytes or a file path; default
    ``MODELREGISTRY_CA_FILE``) to verify the server, ``client_certificate`` and ``client_key``
    for mutual TLS, ``tls`` to force TLS on (system roots) or off; or ready channel
    ``credentials``. A token is sent only over TLS or to a loopback target.
    ``timeout`` is the deadline of unary calls; ``transfer_timeout`` the deadline of each
    upload/download stream (None: no deadline). ``metadata`` is sent with every call.
    ``chunk_size`` is the upload chunk size (at most 2 MiB). ``retries`` bounds the gRPC retries
    of idempotent calls and the resumes of a transfer; ``retry_backoff`` is the first back-off
    delay of transfer resumes in seconds (doubling, jittered, at most 10 s). ``cache_dir`` is
    the local cache of :meth:`pull_version` (default ``MODELREGISTRY_CACHE_DIR``, else
    ``~/.cache/modelregistry``); ``registry_key`` names this registry in it (default
    ``target``; give one when passing a ``channel``).

    The constructor makes no network call. Use as a context manager or call :meth:`close`.
    """

    def __init__(
        self,
        target: str = "127.0.0.1:50051",
        *,
        channel: grpc.Channel | None = None,
        credentials: grpc.ChannelCredentials | None = None,
        token: str | None = None,
        token_provider: TokenProvider | None = None,
        root_certificates: Pem | None = None,
        client_certificate: Pem | None = None,
        client_key: Pem | None = None,
        tls: bool | None = None,
        timeout: float = 30.0,
        transfer_timeout: float | None = None,
        metadata: Sequence[tuple[str, str]] = (),
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        retries: int = 5,
        retry_backoff: float = 0.2,
        cache_dir: str | os.PathLike[str] | None = None,
        registry_key: str | None = None,
    ) -> None:
        if not 0 < chunk_size <= MAX_CHUNK_SIZE:
            raise ValueError(f"chunk_size must be between 1 and {MAX_CHUNK_SIZE} bytes")
        self._call = Invoker(
            timeout=timeout,
            transfer_timeout=transfer_timeout,
            metadata=metadata,
            retries=retries,
            retry_backoff=retry_backoff,
        )
        self._target = target if channel is None else "<channel>"
        self._owns_channel = channel is None
        if channel is None:
            environ: Mapping[str, str] = os.environ
            if any(key.lower() == "authorization" for key, _ in metadata):
                environ = {k: v for k, v in os.environ.items() if k != TOKEN_ENV}
            transport = channel_credentials(
                target,
                credentials=credentials,
                token=token,
                token_provider=token_provider,
                root_certificates=root_certificates,
                client_certificate=client_certificate,
                client_key=client_key,
                tls=tls,
                environ=environ,
            )
            channel = open_channel(target, transport, retries)
        elif any(
            a is not None
            for a in (
                credentials,
                token,
                token_provider,
                root_certificates,
                client_certificate,
                client_key,
            )
        ):
            raise ValueError("a ready channel carries its own credentials")
        self._channel = channel
        self._registry = mr_grpc.ModelRegistryStub(self._channel)
        self._payload = pl_grpc.PayloadServiceStub(self._channel)
        self._events = ev_grpc.EventServiceStub(self._channel)
        self._chunk_size = chunk_size
        transfers = TransferCalls(self._channel)
        self._uploader = Uploader(self._call, self._payload, transfers, chunk_size)
        self._downloader = Downloader(self._call, transfers)
        self._access = Access(self._call, ac_grpc.AccessServiceStub(self._channel))
        self._cache = Cache(cache_dir)
        self._registry_key = registry_key or self._target
        self._webhooks = Webhooks(self._call, wh_grpc.WebhookServiceStub(self._channel))

    # --- plumbing ----------------------------------------------------------------------------

    @property
    def channel(self) -> grpc.Channel:
        """The gRPC channel."""
        return self._channel

    @property
    def cache(self) -> Cache:
        """The local cache :meth:`pull_version` fills (``list``, ``prune``, ``verify``)."""
        return self._cache

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

    def _pager(
        self,
        method: MultiCallable[_Req, _Resp],
        request: _Req,
        items: Callable[[_Resp], Sequence[_T]],
    ) -> Pager[_T]:
        return pager(lambda page_request: self._call(method, page_request), request, items)

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
            model=model,
            model_id=names.model_id_of(model_id),
            request_id=request_id or new_request_id(),
        )
        return self._call(self._registry.CreateModel, request)

    def get_model(self, model_id_or_name: str) -> res.Model:
        """Get a model (soft-deleted ones too) by id or ``models/{id}``."""
        return self._call(
            self._registry.GetModel, mr.GetModelRequest(name=names.model_ref(model_id_or_name))
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
    ) -> Pager[res.Model]:
        """All matching models, fetching pages lazily."""
        request = mr.ListModelsRequest(
            filter=filter, order_by=order_by, show_deleted=show_deleted, page_size=page_size
        )
        return self._pager(self._registry.ListModels, request, lambda page: page.models)

    def update_model(self, model: res.Model, *, update_mask: Sequence[str]) -> res.Model:
        """Update the fields of ``model`` named in ``update_mask`` (etag, if set, must match)."""
        request = mr.UpdateModelRequest(model=model, update_mask=messages.field_mask(update_mask))
        return self._call(self._registry.UpdateModel, request)

    def delete_model(self, name: str, *, etag: str = "", force: bool = False) -> res.Model:
        """Soft-delete a model; ``force`` also soft-deletes its live versions."""
        request = mr.DeleteModelRequest(name=names.model_ref(name), etag=etag, force=force)
        return self._call(self._registry.DeleteModel, request)

    def undelete_model(self, name: str, *, etag: str = "") -> res.Model:
        """Restore a soft-deleted model."""
        request = mr.UndeleteModelRequest(name=names.model_ref(name), etag=etag)
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
            inputs=messages.coerce_all(
                res.Variable, inputs, ("name", "type", "description", "value")
            ),
            outputs=messages.coerce_all(
                res.Variable, outputs, ("name", "type", "description", "value")
            ),
            dependencies=messages.coerce_all(
                res.Dependency,
                dependencies,
                ("name", "version", "kind"),
                {"kind": "DEPENDENCY_KIND_"},
            ),
            produced_by=[
                p if isinstance(p, str) else names.version_ref(p[0], p[1])
                for p in produced_by or ()
            ],
            metrics=dict(metrics or {}),
            datasets=messages.coerce_all(
                res.DatasetReference,
                datasets,
                ("uri", "digest", "role"),
                {"role": "DATASET_ROLE_"},
            ),
            labels=dict(labels or {}),
        )
        if parameters is not None:
            version.parameters.CopyFrom(messages.struct(parameters))
        if source is not None:
            version.source.CopyFrom(
                messages.coerce(res.SourceCode, source, ("repository", "commit", "path"))
            )
        if expire_time is not None:
            version.expire_time.CopyFrom(messages.timestamp(expire_time))
        request = mr.CreateModelVersionRequest(
            parent=names.model_ref(model_id),
            model_version=version,
            request_id=request_id or new_request_id(),
        )
        return self._call(self._registry.CreateModelVersion, request)

    def get_version(
        self,
        model_id: str,
        version: VersionRef = LATEST,
        *,
        read_time: datetime | timestamp_pb2.Timestamp | None = None,
    ) -> res.ModelVersion:
        """Get a version by number, ``latest`` or alias; ``model_id`` may also be a full
        version name (then ``version`` is ignored). With ``read_time`` an alias resolves to
        the version it pointed at then ("what was production last Tuesday")."""
        name = model_id if "/versions/" in model_id else names.version_ref(model_id, version)
        request = mr.GetModelVersionRequest(name=name)
        if read_time is not None:
            request.read_time.CopyFrom(messages.timestamp(read_time))
        return self._call(self._registry.GetModelVersion, request)

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
            parent=names.model_ref(model_id),
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
    ) -> Pager[res.ModelVersion]:
        """All matching versions of a model (``"-"``: of every model), fetching pages lazily."""
        request = mr.ListModelVersionsRequest(
            parent=names.model_ref(model_id),
            filter=filter,
            order_by=order_by,
            show_deleted=show_deleted,
            page_size=page_size,
        )
        return self._pager(
            self._registry.ListModelVersions, request, lambda page: page.model_versions
        )

    def update_version(
        self, version: res.ModelVersion, *, update_mask: Sequence[str]
    ) -> res.ModelVersion:
        """Update the fields of ``version`` named in ``update_mask`` (etag, if set, must match)."""
        request = mr.UpdateModelVersionRequest(
            model_version=version, update_mask=messages.field_mask(update_mask)
        )
        return self._call(self._registry.UpdateModelVersion, request)

    def set_expire_time(
        self,
        model_id: str,
        version: VersionRef,
        expire_time: datetime | timestamp_pb2.Timestamp | None,
        *,
        etag: str = "",
    ) -> res.ModelVersion:
        """Set when a version expires (naive datetimes are UTC), or clear it with ``None``;
        a version whose expiry is cleared or moved into the future resolves again."""
        update = res.ModelVersion(name=names.version_ref(model_id, version), etag=etag)
        if expire_time is not None:
            update.expire_time.CopyFrom(messages.timestamp(expire_time))
        return self.update_version(update, update_mask=["expire_time"])

    def delete_version(
        self, model_id: str, version: VersionRef, *, etag: str = "", force: bool = False
    ) -> res.ModelVersion:
        """Soft-delete a version (its aliases are removed). A version that live versions list in
        their ``produced_by`` raises ``FailedPreconditionError`` (``VERSION_HAS_DEPENDENTS``,
        dependents in ``.metadata["dependents"]``) unless ``force``."""
        request = mr.DeleteModelVersionRequest(
            name=names.version_ref(model_id, version), etag=etag, force=force
        )
        return self._call(self._registry.DeleteModelVersion, request)

    def undelete_version(
        self, model_id: str, version: VersionRef, *, etag: str = ""
    ) -> res.ModelVersion:
        """Restore a soft-deleted version."""
        request = mr.UndeleteModelVersionRequest(
            name=names.version_ref(model_id, version), etag=etag
        )
        return self._call(self._registry.UndeleteModelVersion, request)

    def seal_version(
        self, model_id: str, version: VersionRef, *, etag: str = "", cancel_uploads: bool = False
    ) -> res.ModelVersion:
        """Seal a DRAFT version: its files become immutable and it becomes READY.

        Unfinished uploads into the version make it fail (``UPLOADS_IN_PROGRESS``) unless
        ``cancel_uploads`` cancels them.
        """
        request = mr.SealModelVersionRequest(
            name=names.version_ref(model_id, version), etag=etag, cancel_uploads=cancel_uploads
        )
        return self._call(self._registry.SealModelVersion, request)

    def transition_stage(
        self,
        model_id: str,
        version: VersionRef,
        stage: res.Stage.ValueType | int | str,
        *,
        comment: str = "",
        etag: str = "",
        archive_existing: bool = False,
    ) -> res.ModelVersion:
        """Move a version to ``stage`` (``Stage.STAGE_PRODUCTION``, ``"PRODUCTION"`` …);
        ``archive_existing`` archives the versions that held that stage."""
        request = mr.TransitionModelVersionStageRequest(
            name=names.version_ref(model_id, version),
            stage=messages.stage(stage),
            comment=comment,
            etag=etag,
            archive_existing=archive_existing,
        )
        return self._call(self._registry.TransitionModelVersionStage, request)

    def list_stage_transitions(
        self, model_id: str, version: VersionRef, *, page_size: int = 0
    ) -> Pager[res.StageTransition]:
        """The stage history of a version, oldest first, fetching pages lazily."""
        request = mr.ListStageTransitionsRequest(
            parent=names.version_ref(model_id, version), page_size=page_size
        )
        return self._pager(
            self._registry.ListStageTransitions, request, lambda page: page.stage_transitions
        )

    # --- lineage -----------------------------------------------------------------------------

    def get_lineage(
        self,
        model_id: str = "",
        version: VersionRef = LATEST,
        *,
        dataset_uri: str = "",
        direction: lpb.LineageDirection.ValueType | int | str = "BOTH",
        max_depth: int = 0,
        show_deleted: bool = False,
    ) -> mr.GetLineageResponse:
        """The lineage graph around a version, or around a dataset if ``dataset_uri`` is given.

        ``model_id`` and ``version`` name the version as in :meth:`get_version` (``model_id``
        may be a full version name). ``direction`` is ``"upstream"`` (what it came from),
        ``"downstream"`` (what was made from it; from a dataset, the versions that used it) or
        ``"both"``; ``max_depth`` 0 means the server's default (5, at most 20).
        """
        name = ""
        if not dataset_uri:
            name = model_id if "/versions/" in model_id else names.version_ref(model_id, version)
        request = mr.GetLineageRequest(
            name=name,
            dataset_uri=dataset_uri,
            direction=messages.lineage_direction(direction),
            max_depth=max_depth,
            show_deleted=show_deleted,
        )
        return self._call(self._registry.GetLineage, request)

    # --- aliases -----------------------------------------------------------------------------

    def set_alias(self, model_id: str, alias: str, version: VersionRef) -> res.Alias:
        """Point ``alias`` at a READY version (a number, ``latest``, another alias or a name)."""
        request = mr.SetAliasRequest(
            alias=res.Alias(
                name=names.alias_ref(model_id, alias), version=names.version_ref(model_id, version)
            )
        )
        return self._call(self._registry.SetAlias, request)

    def get_alias(
        self,
        model_id: str,
        alias: str,
        *,
        read_time: datetime | timestamp_pb2.Timestamp | None = None,
    ) -> res.Alias:
        """Get an alias; with ``read_time``, where it pointed at that time."""
        request = mr.GetAliasRequest(name=names.alias_ref(model_id, alias))
        if read_time is not None:
            request.read_time.CopyFrom(messages.timestamp(read_time))
        return self._call(self._registry.GetAlias, request)

    def list_alias_history(
        self, model_id: str, alias: str = "", *, page_size: int = 0
    ) -> Pager[mr.AliasMove]:
        """Every move of ``alias`` (or, without it, of every alias of the model), oldest
        first, each with its principal, fetching pages lazily."""
        parent = names.alias_ref(model_id, alias) if alias else names.model_ref(model_id)
        request = mr.ListAliasHistoryRequest(parent=parent, page_size=page_size)
        return self._pager(self._registry.ListAliasHistory, request, lambda p: p.alias_moves)

    def list_aliases(self, model_id: str) -> list[res.Alias]:
        """All aliases of a model, ordered by name."""
        request = mr.ListAliasesRequest(parent=names.model_ref(model_id))
        return list(self._call(self._registry.ListAliases, request).aliases)

    def delete_alias(self, model_id: str, alias: str) -> None:
        """Remove an alias."""
        request = mr.DeleteAliasRequest(name=names.alias_ref(model_id, alias))
        self._call(self._registry.DeleteAlias, request)

    # --- policies ----------------------------------------------------------------------------

    def get_model_policy(self, model_id: str) -> res.ModelPolicy:
        """The model's access policy (no bindings: it has none) with its etag."""
        request = mr.GetModelPolicyRequest(resource=names.model_ref(model_id))
        return self._call(self._registry.GetModelPolicy, request)

    def set_model_policy(
        self,
        model_id: str,
        bindings: Mapping[str, Iterable[str]],
        *,
        protected_aliases: Iterable[str] = (),
        production_open_to_editors: bool = False,
        etag: str = "",
    ) -> res.ModelPolicy:
        """Replace the model's access policy: ``bindings`` maps a role (``viewer``,
        ``editor``, ``owner``) to members (``user:<sub>``, ``group:<name>``,
        ``apikey:<id>``). Empty bindings and no protected aliases remove the policy. With
        ``etag`` (from :meth:`get_model_policy`) a concurrent change fails with ABORTED."""
        policy = res.ModelPolicy(
            bindings=[
                res.PolicyBinding(role=role, members=list(members))
                for role, members in bindings.items()
            ],
            protected_aliases=list(protected_aliases),
            production_open_to_editors=production_open_to_editors,
            etag=etag,
        )
        request = mr.SetModelPolicyRequest(resource=names.model_ref(model_id), policy=policy)
        return self._call(self._registry.SetModelPolicy, request)

    # --- events ------------------------------------------------------------------------------

    def list_events_page(
        self, *, filter: str = "", order_by: str = "", page_size: int = 0, page_token: str = ""
    ) -> ev.ListEventsResponse:
        """One page of the event log, with its ``next_page_token``."""
        request = ev.ListEventsRequest(
            filter=filter, order_by=order_by, page_size=page_size, page_token=page_token
        )
        return self._call(self._events.ListEvents, request)

    def list_events(
        self, *, filter: str = "", order_by: str = "", page_size: int = 0
    ) -> Pager[ev.Event]:
        """The event log (oldest first unless ``order_by="sequence desc"``), fetching pages
        lazily; ``filter`` e.g. ``'resource = "models/fraud*" AND principal = "user:ann"'``."""
        request = ev.ListEventsRequest(filter=filter, order_by=order_by, page_size=page_size)
        return self._pager(self._events.ListEvents, request, lambda page: page.events)

    def watch_events(self, *, filter: str = "", after_cursor: str = "") -> EventWatch:
        """Follow the event log: the matching events after ``after_cursor`` (an event name
        or a previous watch's ``cursor``; ``""``: only new events, ``"events/0"``: from the
        start), then new ones as they commit, for ever. Reconnects by itself from the last
        cursor when the stream breaks (at most ``retries`` times in a row); ``close()`` it,
        or use it as ``with contextlib.closing(reg.watch_events()) as events:``."""
        return EventWatch(
            self._call,
            self._events,
            filter=filter,
            after_cursor=after_cursor,
            retries=self._call.retries,
        )

    def verify_events(self) -> ev.VerifyEventsResponse:
        """Walk the tenant's event chain (needs ``registry.admin``): ``ok``, or the first
        ``failed_sequence`` and why."""
        return self._call(self._events.VerifyEvents, ev.VerifyEventsRequest())

    # --- files -------------------------------------------------------------------------------

    def get_file(
        self, model_id: str, version: VersionRef, file_id: str = DEFAULT_FILE_ID
    ) -> res.File:
        """Get a file's metadata."""
        request = pl.GetFileRequest(name=names.file_ref(model_id, version, file_id))
        return self._call(self._payload.GetFile, request)

    def list_files_page(
        self,
        model_id: str,
        version: VersionRef,
        *,
        filter: str = "",
        page_size: int = 0,
        page_token: str = "",
    ) -> pl.ListFilesResponse:
        """One page of a version's files, with its token."""
        request = pl.ListFilesRequest(
            parent=names.version_ref(model_id, version),
            filter=filter,
            page_size=page_size,
            page_token=page_token,
        )
        return self._call(self._payload.ListFiles, request)

    def list_files(
        self, model_id: str, version: VersionRef, *, filter: str = "", page_size: int = 0
    ) -> Pager[res.File]:
        """The files of a version ordered by id, fetching pages lazily. ``version`` ``"-"``
        lists every live version of the model, and ``model_id`` ``"-"`` too every model (by
        model, version, file id); ``filter`` e.g. ``"integrity = CORRUPTED"``."""
        request = pl.ListFilesRequest(
            parent=names.version_ref(model_id, version), filter=filter, page_size=page_size
        )
        return self._pager(self._payload.ListFiles, request, lambda page: page.files)

    def get_upload_status(self, upload_id: str) -> pl.UploadStatus:
        """How many bytes of an upload are durably stored."""
        request = pl.GetUploadStatusRequest(upload_id=upload_id)
        return self._call(self._payload.GetUploadStatus, request)

    def cancel_upload(self, upload_id: str) -> None:
        """Abandon an unfinished upload."""
        self._call(self._payload.CancelUpload, pl.CancelUploadRequest(upload_id=upload_id))

    def list_uploads_page(
        self,
        model_id: str,
        version: VersionRef,
        *,
        filter: str = "",
        order_by: str = "",
        page_size: int = 0,
        page_token: str = "",
    ) -> pl.ListUploadsResponse:
        """One page of a version's upload sessions, with its token."""
        request = pl.ListUploadsRequest(
            parent=names.version_ref(model_id, version),
            filter=filter,
            order_by=order_by,
            page_size=page_size,
            page_token=page_token,
        )
        return self._call(self._payload.ListUploads, request)

    def list_uploads(
        self,
        model_id: str,
        version: VersionRef,
        *,
        filter: str = "",
        order_by: str = "",
        page_size: int = 0,
    ) -> Pager[pl.UploadStatus]:
        """The upload sessions of a version, unfinished and committed (by default ordered by
        upload id; ``filter`` e.g. ``'state = ACTIVE AND file_id = "model.onnx"'``), fetching
        pages lazily. Their ``file`` is unset: :meth:`get_upload_status` returns it."""
        request = pl.ListUploadsRequest(
            parent=names.version_ref(model_id, version),
            filter=filter,
            order_by=order_by,
            page_size=page_size,
        )
        return self._pager(self._payload.ListUploads, request, lambda page: page.uploads)

    def verify_file(
        self, model_id: str, version: VersionRef, file_id: str = DEFAULT_FILE_ID
    ) -> res.File:
        """Have the server re-read and check a file's stored bytes now; the file's
        ``integrity`` and ``last_verify_time`` say what it found. Runs with the transfer
        deadline (it reads the whole file)."""
        request = pl.VerifyFileRequest(name=names.file_ref(model_id, version, file_id))
        return self._call(self._payload.VerifyFile, request, transfer=True)

    # --- transfers ---------------------------------------------------------------------------

    def upload_file(
        self,
        model_id: str,
        version: VersionRef,
        source: str | os.PathLike[str] | BinaryReader,
        *,
        file_id: str = DEFAULT_FILE_ID,
        content_type: str = "",
        sha256: str | None = None,
        upload_id: str | None = None,
        progress: ProgressCallback | None = None,
        max_resumes: int | None = None,
        resume_unfinished: bool = True,
    ) -> res.File:
        """Upload a file to a DRAFT version in ``chunk_size`` chunks and return it.

        ``source`` is a path or a binary stream (read from its current position), read once:
        its SHA-256 is computed while sending and declared in the stream's last message, so
        the server verifies the whole file before it becomes visible (``sha256`` declares it
        in the header instead). For paths and seekable streams the size is declared too;
        non-seekable streams are sent without a size.
        A dropped stream is resumed from the committed size reported by GetUploadStatus, at
        most ``max_resumes`` times (default: ``retries``), with jittered exponential back-off;
        a non-seekable source can only restart if nothing was read from it yet. Passing the
        ``upload_id`` of an interrupted upload continues it from its committed size (seekable
        sources; one GetUploadStatus call first). Without an ``upload_id`` and with
        ``resume_unfinished`` (the default), an unfinished upload to the same file of the same
        declared size (found with one ListUploads call) is continued from its committed size,
        for example after the process crashed mid-upload: if it declared a sha256, only when
        that is the source's (the source is then hashed before sending); if not, its
        committed prefix is read and hashed, and should the server refuse the digest (other
        bytes) the source is uploaded anew.
        ``progress(bytes_sent, total)`` runs after each chunk, on gRPC's sending thread (after
        a resume ``bytes_sent`` restarts from the committed size); an exception from it or
        from the source aborts the upload and is re-raised here.
        """
        return self._uploader.upload(
            names.version_ref(model_id, version),
            file_id,
            source,
            content_type=content_type,
            sha256=sha256,
            upload_id=upload_id,
            progress=progress,
            max_resumes=max_resumes,
            resume_unfinished=resume_unfinished,
        )

    def iter_file(
        self,
        model_id: str,
        version: VersionRef,
        *,
        file_id: str = DEFAULT_FILE_ID,
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
        return self._downloader.iter_bytes(
            names.file_ref(model_id, version, file_id),
            offset=offset,
            limit=limit,
            progress=progress,
            verify=verify,
        )

    def download_file(
        self,
        model_id: str,
        version: VersionRef,
        dest: str | os.PathLike[str] | BinaryWriter,
        *,
        file_id: str = DEFAULT_FILE_ID,
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
        return self._downloader.to_destination(
            names.file_ref(model_id, version, file_id),
            dest,
            offset=offset,
            limit=limit,
            progress=progress,
            verify=verify,
        )

    # --- whole versions ----------------------------------------------------------------------

    def pull_version(
        self,
        ref: str,
        dest: str | os.PathLike[str] | None = None,
        *,
        copy: bool = False,
        parallel: int = 4,
        progress: ProgressCallback | None = None,
        offline: bool = False,
    ) -> PulledVersion:
        """Fetch every file of a version into the cache, verified, and materialise ``dest``.

        ``ref`` is ``"models/M/versions/N"``, ``"M:N"``, ``"M@alias"``, ``"M@latest"`` or
        ``"M"`` (latest). An alias or ``latest`` is resolved once; every file is then fetched
        by the version's number, and the file list checked against its manifest digest, so a
        move of the alias during the pull changes nothing. Contents already cached are not
        fetched; an interrupted fetch continues from the bytes kept; every byte is hashed
        before it enters the cache. ``dest`` (default: a directory in the cache) receives each
        file at its file id: hard links to the read-only cached files, or writable copies with
        ``copy`` (also used where links are impossible). Other files in ``dest`` are left.
        ``parallel`` files are fetched at once; ``progress(done, total)`` counts bytes to fetch.
        A pinned version (``M:N``) that was pulled before is served from the cache when the
        server is unreachable, or always with ``offline``.
        """
        puller = Puller(
            registry=self._registry_key,
            cache=self._cache,
            downloader=self._downloader,
            get_version=self.get_version,
            list_files=lambda model_id, number: self.list_files(model_id, number, page_size=1000),
        )
        return puller.pull(
            ref, dest, copy=copy, parallel=parallel, progress=progress, offline=offline
        )

    def push_directory(
        self,
        model_id: str,
        path: str | os.PathLike[str],
        *,
        create_model: bool = False,
        alias: str | None = None,
        stage: str | None = None,
        labels: Mapping[str, str] | None = None,
        metrics: Mapping[str, float] | None = None,
        params: Mapping[str, Any] | None = None,
        source_commit: str | None = None,
        datasets: Sequence[str] | None = None,
        description: str = "",
        parallel: int = 4,
        progress: ProgressCallback | None = None,
    ) -> PushResult:
        """Create a version of ``model_id`` from a directory (or one file), upload every file
        (its path relative to ``path`` is its file id) over ``parallel`` streams, seal it,
        then move it to ``stage`` and point ``alias`` at it.

        Run again after an interruption, the same push (same files and metadata) continues
        the version it created: stored files are skipped and unfinished uploads continue from
        their committed bytes. After a complete push it returns that version (setting stage
        and alias again) instead of creating a copy. ``create_model`` creates the model if it
        does not exist. ``progress(done, total)`` counts bytes over all files.
        """
        return Pusher(self).push(
            model_id,
            path,
            create_model=create_model,
            alias=alias,
            stage=stage,
            labels=labels,
            metrics=metrics,
            params=params,
            source_commit=source_commit,
            datasets=datasets,
            description=description,
            parallel=parallel,
            progress=progress,
        )

    # --- access ------------------------------------------------------------------------------

    def create_api_key(
        self,
        display_name: str,
        *,
        scopes: Iterable[str],
        expire_time: datetime | timestamp_pb2.Timestamp | None = None,
    ) -> ac.CreateApiKeyResponse:
        """Create an API key in the caller's tenant (needs ``registry.admin``). The response
        holds the key (``.api_key``) and its credential (``.secret``, ``mrk_…``), which the
        server never shows again. Not retried: a retry would make a second key."""
        return self._access.create_api_key(display_name, scopes=scopes, expire_time=expire_time)

    def list_api_keys_page(
        self, *, page_size: int = 0, page_token: str = ""
    ) -> ac.ListApiKeysResponse:
        """One page of the tenant's API keys, with its ``next_page_token``."""
        return self._access.list_api_keys_page(page_size=page_size, page_token=page_token)

    def list_api_keys(self, *, page_size: int = 0) -> Pager[ac.ApiKey]:
        """The tenant's API keys (revoked and expired too, never secrets), oldest first."""
        return self._access.list_api_keys(page_size=page_size)

    def revoke_api_key(self, key_id_or_name: str) -> ac.ApiKey:
        """Revoke an API key (``key_id`` or ``apiKeys/{key_id}``); calls with it fail at once
        (UNAUTHENTICATED). Revoking it again changes nothing."""
        return self._access.revoke_api_key(key_id_or_name)

    def get_caller(self) -> ac.Caller:
        """Who this client is to the server: actor, tenant, scopes, groups, API key id."""
        return self._access.get_caller()

    # --- webhooks ----------------------------------------------------------------------------

    def create_webhook(
        self,
        webhook_id: str,
        url: str,
        *,
        filter: str = "",
        description: str = "",
        enabled: bool = True,
    ) -> wh.CreateWebhookResponse:
        """Register a webhook (needs ``registry.admin``): ``url`` is https (or http to a
        loopback host), ``filter`` an event filter as :meth:`list_events` takes. The response
        holds the webhook (``.webhook``) and its signing secret (``.secret``), which the server
        never shows again. Not retried."""
        return self._webhooks.create(
            webhook_id, url, filter=filter, description=description, enabled=enabled
        )

    def get_webhook(self, webhook_id: str) -> wh.Webhook:
        """One webhook (``id`` or ``webhooks/{id}``); never its secret."""
        return self._webhooks.get(webhook_id)

    def list_webhooks_page(
        self, *, page_size: int = 0, page_token: str = ""
    ) -> wh.ListWebhooksResponse:
        """One page of the tenant's webhooks, with its ``next_page_token``."""
        return self._webhooks.list_page(page_size=page_size, page_token=page_token)

    def list_webhooks(self, *, page_size: int = 0) -> Pager[wh.Webhook]:
        """The tenant's webhooks, oldest first."""
        return self._webhooks.list(page_size=page_size)

    def update_webhook(self, webhook: wh.Webhook, update_mask: Sequence[str] = ()) -> wh.Webhook:
        """Change ``url``, ``filter``, ``description`` or ``enabled`` (the mask's fields, or
        those ``webhook`` sets); with ``webhook.etag`` set a concurrent change is ABORTED."""
        return self._webhooks.update(webhook, update_mask)

    def delete_webhook(self, webhook_id: str, *, etag: str = "") -> None:
        """Delete a webhook and its delivery log."""
        self._webhooks.delete(webhook_id, etag=etag)

    def rotate_webhook_secret(
        self, webhook_id: str, *, etag: str = ""
    ) -> wh.RotateWebhookSecretResponse:
        """Replace the signing secret; the new one (``.secret``) is shown only now."""
        return self._webhooks.rotate_secret(webhook_id, etag=etag)

    def list_webhook_deliveries_page(
        self,
        webhook_id: str,
        *,
        state: str | int | None = None,
        page_size: int = 0,
        page_token: str = "",
    ) -> wh.ListWebhookDeliveriesResponse:
        """One page of a webhook's deliveries (newest first), with its ``next_page_token``."""
        return self._webhooks.deliveries_page(
            webhook_id, state=state, page_size=page_size, page_token=page_token
        )

    def list_webhook_deliveries(
        self, webhook_id: str, *, state: str | int | None = None, page_size: int = 0
    ) -> Pager[wh.WebhookDelivery]:
        """A webhook's deliveries, newest first, each with its attempts; ``state`` is
        ``"PENDING"``, ``"DELIVERED"`` or ``"FAILED"`` (None: all)."""
        return self._webhooks.deliveries(webhook_id, state=state, page_size=page_size)

    def resend_webhook_delivery(self, delivery_name: str) -> wh.WebhookDelivery:
        """Queue a delivery (``webhooks/{w}/deliveries/{d}``) again, at once, with a fresh
        attempt budget."""
        return self._webhooks.resend(delivery_name)
