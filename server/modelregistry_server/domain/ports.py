"""Ports: what the domain needs from storage, in the domain's words.

Two ports: :class:`MetadataStore` (rows: models, versions, aliases, files, upload sessions) and
:class:`BlobStore` (bytes: content-addressed blobs and resumable uploads). Adapters live in
``storage/``; one contract test suite per port runs over every adapter.

Conventions for every adapter:
- Every query is scoped by ``tenant``.
- A backend that cannot be reached raises :class:`~.errors.Unavailable`; no driver exception
  escapes an adapter.
- Soft-deleted rows are returned by ``get_*``; the domain decides what to do with them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from .entities import (
    Alias,
    FileRecord,
    Model,
    ModelVersion,
    Page,
    RequestRecord,
    StageTransition,
    UploadSession,
)
from .filtering import Expr


@dataclass(frozen=True)
class OrderKey:
    """One ``order_by`` term: a field (``create_time``, ``metrics.accuracy``) and direction."""

    field: str
    descending: bool = False


@dataclass(frozen=True)
class ListQuery:
    """A validated listing request.

    ``order_by`` holds only allowed, orderable fields; the store appends its own unique
    tie-breaker so the order is total. Rows lacking a map key used in ``order_by``
    (``metrics.x``) sort after all rows that have it, in both directions.
    ``after`` is the cursor of the previous page (from :attr:`Page.next_cursor`), or None.
    """

    filter: Expr | None = None
    order_by: tuple[OrderKey, ...] = ()
    show_deleted: bool = False
    page_size: int = 50
    after: tuple[Any, ...] | None = None


@dataclass(frozen=True)
class PurgeCounts:
    """How many rows a purge removed."""

    models: int
    versions: int


class MetadataStore(Protocol):
    """Rows of the registry. Writes that must be atomic run inside :meth:`transaction`."""

    # -- scopes ------------------------------------------------------------------------------
    def transaction(self) -> AbstractContextManager[None]:
        """A write transaction; nested calls join the outer one. Rolls back on exception."""
        ...

    def connection(self) -> AbstractContextManager[None]:
        """A connection scope for one request; nested scopes reuse the outer connection."""
        ...

    def close(self) -> None:
        """Close every connection (pool included)."""
        ...

    # -- models ------------------------------------------------------------------------------
    def insert_model(self, model: Model) -> None:
        """Insert a new model; raises AlreadyExists(MODEL_ALREADY_EXISTS) if the id is taken."""
        ...

    def get_model(self, tenant: str, model_id: str, *, for_update: bool = False) -> Model | None:
        """The model (soft-deleted included), locked for the transaction if ``for_update``."""
        ...

    def save_model(self, model: Model) -> None:
        """Write every mutable field (labels included) of an existing model."""
        ...

    def list_models(self, tenant: str, query: ListQuery) -> Page[Model]:
        """One page of models matching the query (soft-deleted only if ``show_deleted``)."""
        ...

    def allocate_version_number(self, tenant: str, model_id: str) -> int:
        """Atomically increment and return the model's version counter (call in a transaction)."""
        ...

    # -- versions ----------------------------------------------------------------------------
    def insert_version(self, version: ModelVersion) -> None:
        """Insert a new version (its number comes from :meth:`allocate_version_number`)."""
        ...

    def get_version(
        self, tenant: str, model_id: str, number: int, *, for_update: bool = False
    ) -> ModelVersion | None:
        """The version with its aliases filled in (soft-deleted included)."""
        ...

    def latest_version(self, tenant: str, model_id: str, now: datetime) -> ModelVersion | None:
        """The highest-numbered version that is READY, not deleted and not expired at ``now``."""
        ...

    def save_version(self, version: ModelVersion) -> None:
        """Write every mutable field (labels, metrics included) of an existing version."""
        ...

    def count_versions(self, tenant: str, model_id: str, *, include_deleted: bool) -> int:
        """How many versions the model has."""
        ...

    def list_versions(
        self, tenant: str, model_id: str | None, query: ListQuery, now: datetime
    ) -> Page[ModelVersion]:
        """One page of versions of one model, or of all models if ``model_id`` is None.

        ``now`` decides the computed ``expired`` filter field.
        """
        ...

    # -- aliases -----------------------------------------------------------------------------
    def set_alias(self, alias: Alias) -> None:
        """Create or move an alias in one step."""
        ...

    def get_alias(self, tenant: str, model_id: str, alias: str) -> Alias | None:
        """The alias, or None."""
        ...

    def delete_alias(self, tenant: str, model_id: str, alias: str) -> bool:
        """Remove an alias; False if it did not exist."""
        ...

    def list_aliases(self, tenant: str, model_id: str) -> list[Alias]:
        """All aliases of a model, ordered by name."""
        ...

    # -- stage transitions -------------------------------------------------------------------
    def add_transition(
        self, tenant: str, model_id: str, number: int, transition: StageTransition
    ) -> None:
        """Append a transition to the version's history (the store assigns ``sequence``)."""
        ...

    def list_transitions(
        self, tenant: str, model_id: str, number: int, after: int | None, limit: int
    ) -> Page[StageTransition]:
        """Transitions in order; the cursor is ``(sequence,)``."""
        ...

    # -- idempotent creates ------------------------------------------------------------------
    def find_request(self, tenant: str, request_id: str) -> RequestRecord | None:
        """The record of an earlier create with this request id."""
        ...

    def record_request(self, record: RequestRecord) -> None:
        """Remember a create; raises AlreadyExists(REQUEST_ID_REUSED) if the id is recorded."""
        ...

    # -- files -------------------------------------------------------------------------------
    def insert_file(self, record: FileRecord) -> None:
        """Make a file visible; raises AlreadyExists(FILE_ALREADY_EXISTS) if the id is taken."""
        ...

    def get_file(self, tenant: str, model_id: str, number: int, file_id: str) -> FileRecord | None:
        """The file, or None."""
        ...

    def list_files(
        self, tenant: str, model_id: str, number: int, after: str | None, limit: int
    ) -> Page[FileRecord]:
        """Files ordered by id; the cursor is ``(file_id,)``."""
        ...

    # -- blobs (reference bookkeeping for dedup and GC) --------------------------------------
    def touch_blob(self, digest: str, size: int, now: datetime) -> None:
        """Record that blob ``digest`` is (about to be) used; upsert with ``touch_time=now``."""
        ...

    def is_blob_known(self, digest: str) -> bool:
        """True if a blob row exists."""
        ...

    def collectable_blobs(self, before: datetime, limit: int) -> list[str]:
        """Digests of blobs no file references and untouched since ``before``."""
        ...

    def forget_blob(self, digest: str, before: datetime) -> bool:
        """Delete the blob row if still unreferenced and untouched since ``before``."""
        ...

    # -- upload sessions ---------------------------------------------------------------------
    def insert_upload(self, session: UploadSession) -> None:
        """Create a session; raises AlreadyExists(UPLOAD_CONFLICT) if the id is taken."""
        ...

    def get_upload(
        self, tenant: str, upload_id: str, *, for_update: bool = False
    ) -> UploadSession | None:
        """The session, or None."""
        ...

    def save_upload(self, session: UploadSession) -> None:
        """Write ``committed_size``, ``state`` and ``update_time`` of a session."""
        ...

    def delete_upload(self, tenant: str, upload_id: str) -> None:
        """Remove a session row."""
        ...

    def stale_uploads(self, before: datetime, limit: int) -> list[UploadSession]:
        """Sessions (any tenant) not updated since ``before``."""
        ...

    # -- maintenance -------------------------------------------------------------------------
    def purge(self, now: datetime) -> PurgeCounts:
        """Hard-delete soft-deleted models and versions whose ``purge_time`` has passed,
        with their aliases, transitions and files (blobs are left to blob GC)."""
        ...


@dataclass(frozen=True)
class StoredObject:
    """A blob or upload as listed by a blob store (for GC)."""

    name: str  # blob key (``sha256/<hex>``) or upload id
    size: int
    modified: datetime


class BlobStore(Protocol):
    """Bytes: content-addressed blobs (``sha256/<hex>``) and resumable uploads.

    Blobs are created only by committing an upload and are never overwritten.
    """

    def write_upload(self, upload_id: str, offset: int, chunks: Iterable[bytes]) -> int:
        """Store ``chunks`` at ``offset`` of the upload and return the bytes written.

        ``offset`` is the end of what earlier writes stored (0 for a new upload); anything an
        earlier unfinished write left beyond it is discarded. The bytes are durable once
        :meth:`sync_upload` returns. If ``chunks`` raises, the exception propagates and nothing
        past ``offset`` counts as written.
        """
        ...

    def sync_upload(self, upload_id: str) -> None:
        """Make every byte written to the upload so far durable.

        May run on another thread while the next :meth:`write_upload` of the same upload is
        in progress (it then may or may not include some of those newer bytes).
        """
        ...

    def read_upload(self, upload_id: str, size: int) -> Iterator[bytes]:
        """The first ``size`` bytes of an upload (to rebuild hash state when resuming).

        Raises DataLoss(UPLOAD_DATA_MISSING) if fewer bytes are stored.
        """
        ...

    def commit_upload(self, upload_id: str, size: int, key: str) -> bool:
        """Turn the first ``size`` bytes of the upload into blob ``key``, then drop the upload.

        Create-only: if ``key`` already exists the upload is dropped and False is returned
        (the bytes are already stored: dedup). True if this call created the blob.
        """
        ...

    def abort_upload(self, upload_id: str) -> None:
        """Drop an upload's stored bytes; no error if there are none."""
        ...

    def read(self, key: str, offset: int = 0, limit: int | None = None) -> Iterator[bytes]:
        """Stream ``limit`` bytes (all if None) of blob ``key`` from ``offset``.

        Raises DataLoss(BLOB_MISSING) if the blob does not exist.
        """
        ...

    def exists(self, key: str) -> bool:
        """True if blob ``key`` exists."""
        ...

    def delete(self, key: str) -> None:
        """Delete blob ``key``; no error if absent."""
        ...

    def list_blobs(self) -> Iterator[StoredObject]:
        """Every blob (for GC)."""
        ...

    def list_uploads(self) -> Iterator[StoredObject]:
        """Every upload with stored bytes (for GC of abandoned uploads)."""
        ...
