"""The registry's entities as plain dataclasses (no proto, no ORM).

Times are timezone-aware UTC ``datetime`` values with microsecond precision. JSON-like values
(``parameters``, a variable's default ``value``) are plain ``dict``/``list``/``str``/``float``/
``bool``/``None`` trees.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Generic, TypeVar

JsonValue = Any


class Stage(StrEnum):
    """Lifecycle stage of a version, changed only through stage transitions."""

    DEVELOPMENT = "DEVELOPMENT"
    STAGING = "STAGING"
    PRODUCTION = "PRODUCTION"
    ARCHIVED = "ARCHIVED"


class VersionState(StrEnum):
    """DRAFT while files may be added; READY once sealed (files immutable)."""

    DRAFT = "DRAFT"
    READY = "READY"


class DependencyKind(StrEnum):
    """What a version depends on."""

    LIBRARY = "LIBRARY"
    RUNTIME = "RUNTIME"
    MODEL = "MODEL"
    OTHER = "OTHER"


class DatasetRole(StrEnum):
    """What a dataset was used for when producing a version."""

    TRAINING = "TRAINING"
    VALIDATION = "VALIDATION"
    TEST = "TEST"
    OTHER = "OTHER"


def make_etag(uid: str, revision: int) -> str:
    """The opaque etag of revision ``revision`` of the resource ``uid``."""
    return hashlib.sha256(f"{uid}:{revision}".encode()).hexdigest()[:16]


@dataclass
class Variable:
    """An input or output of a model: name, type, description and an optional default value."""

    name: str
    type: str = ""
    description: str = ""
    value: JsonValue = None


@dataclass
class Dependency:
    """Something a version needs at run time: a library, a runtime or another model."""

    name: str
    kind: DependencyKind = DependencyKind.LIBRARY
    version: str = ""


@dataclass
class SourceCode:
    """Where the code that produced a version lives."""

    repository: str = ""
    commit: str = ""
    path: str = ""


@dataclass
class DatasetRef:
    """A dataset a version was trained, validated or tested on."""

    uri: str
    digest: str = ""
    role: DatasetRole = DatasetRole.TRAINING


@dataclass
class Model:
    """A registered model ``models/{model_id}``."""

    tenant: str
    model_id: str
    uid: str
    create_time: datetime
    update_time: datetime
    display_name: str = ""
    description: str = ""
    type: str = ""
    author: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    delete_time: datetime | None = None
    purge_time: datetime | None = None
    revision: int = 1
    latest_version_number: int = 0

    @property
    def etag(self) -> str:
        """Changes on every write of the resource itself (not on alias or counter moves)."""
        return make_etag(self.uid, self.revision)

    @property
    def is_deleted(self) -> bool:
        """True while soft-deleted."""
        return self.delete_time is not None


@dataclass
class ModelVersion:
    """A version ``models/{model_id}/versions/{number}``."""

    tenant: str
    model_id: str
    number: int
    uid: str
    create_time: datetime
    update_time: datetime
    description: str = ""
    type: str = ""
    author: str = ""
    inputs: list[Variable] = field(default_factory=list)
    outputs: list[Variable] = field(default_factory=list)
    parameters: dict[str, JsonValue] = field(default_factory=dict)
    dependencies: list[Dependency] = field(default_factory=list)
    produced_by: list[str] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    source: SourceCode | None = None
    datasets: list[DatasetRef] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)
    stage: Stage = Stage.DEVELOPMENT
    state: VersionState = VersionState.DRAFT
    manifest_digest: str = ""
    expire_time: datetime | None = None
    delete_time: datetime | None = None
    purge_time: datetime | None = None
    revision: int = 1
    file_count: int = 0
    total_size: int = 0
    # Filled by the store on reads from the alias table; never written through save_version.
    aliases: list[str] = field(default_factory=list)

    @property
    def etag(self) -> str:
        """Changes on every write of the resource itself (not on alias or counter moves)."""
        return make_etag(self.uid, self.revision)

    @property
    def is_deleted(self) -> bool:
        """True while soft-deleted."""
        return self.delete_time is not None

    def is_expired(self, now: datetime) -> bool:
        """True once ``expire_time`` has passed."""
        return self.expire_time is not None and self.expire_time <= now


@dataclass(frozen=True)
class VersionStatus:
    """Where a version stands, without its metadata: enough to check it may take files."""

    model_id: str
    number: int
    state: VersionState
    delete_time: datetime | None

    @property
    def is_deleted(self) -> bool:
        """True while soft-deleted."""
        return self.delete_time is not None


@dataclass
class Alias:
    """A per-model named pointer to one version (``production`` → 7)."""

    tenant: str
    model_id: str
    alias: str
    version_number: int
    update_time: datetime


@dataclass
class AliasMove:
    """One change of where an alias points: set (``version_number``) or removed (None), when
    and by whom (``method``: the operation that moved it). ``sequence`` orders the moves."""

    tenant: str
    model_id: str
    alias: str
    version_number: int | None
    time: datetime
    principal: str
    method: str
    sequence: int = 0


@dataclass
class StageTransition:
    """One recorded stage change of a version."""

    from_stage: Stage
    to_stage: Stage
    actor: str
    comment: str
    transition_time: datetime
    # Assigned by the store; increasing per version, used as the paging cursor.
    sequence: int = 0


@dataclass
class RequestRecord:
    """What a create call with a ``request_id`` produced, for idempotent retries.

    ``fingerprint`` identifies the request's body (computed by the API layer); a retry must
    carry the same one. Records written before fingerprints existed hold ``""``.
    """

    tenant: str
    request_id: str
    method: str
    resource_name: str
    create_time: datetime
    fingerprint: str = ""


class IntegrityState(StrEnum):
    """What the last check of a blob's stored bytes found (shared by every file of the blob).

    UNVERIFIED: stored from a verified upload and not re-read since; VERIFIED: the last re-read
    matched every block checksum and the sha256; CORRUPTED: stored bytes differ; MISSING: the
    stored bytes are gone or shorter than recorded.
    """

    UNVERIFIED = "UNVERIFIED"
    VERIFIED = "VERIFIED"
    CORRUPTED = "CORRUPTED"
    MISSING = "MISSING"


@dataclass
class FileRecord:
    """A verified, visible file of a version. Immutable once written, except for what the
    last integrity check of its blob found (``integrity``, ``verify_time``)."""

    tenant: str
    model_id: str
    version_number: int
    file_id: str
    size: int
    sha256: str
    crc32c: int
    content_type: str
    create_time: datetime
    integrity: IntegrityState = IntegrityState.UNVERIFIED
    verify_time: datetime | None = None


@dataclass(frozen=True)
class BlockSums:
    """crc32c of each consecutive ``block_size`` block of a blob (the last may be shorter),
    packed as 4-byte big-endian values."""

    block_size: int
    packed: bytes

    def __len__(self) -> int:
        return len(self.packed) // 4

    def crc(self, index: int) -> int:
        """The crc32c of block ``index``."""
        return int.from_bytes(self.packed[4 * index : 4 * index + 4], "big")


@dataclass(frozen=True)
class BlobRecord:
    """The metadata row of a content-addressed blob: its size, block sums (None for blobs
    stored before block sums existed) and the result of its last integrity check."""

    digest: str
    size: int
    sums: BlockSums | None
    integrity: IntegrityState
    verify_time: datetime | None


class UploadState(StrEnum):
    """An upload session is ACTIVE until its bytes are committed as a file."""

    ACTIVE = "ACTIVE"
    COMMITTED = "COMMITTED"


@dataclass
class UploadSession:
    """A resumable upload of one file; ``committed_size`` bytes are durably stored."""

    tenant: str
    upload_id: str
    model_id: str
    version_number: int
    file_id: str
    declared_size: int | None
    declared_sha256: str
    content_type: str
    committed_size: int
    state: UploadState
    create_time: datetime
    update_time: datetime
    # The principal that opened it (``Caller.actor``); '' for sessions from before identity.
    owner: str = ""
    # The lease of the server process writing it (see domain/upload_leases.py): its holder
    # ('' none), the fencing token (+1 at every acquisition; 0 never leased) and the expiry.
    lease_holder: str = ""
    lease_token: int = 0
    lease_expire: datetime | None = None

    def usable_by(self, actor: str) -> bool:
        """Whether ``actor`` may see and use the session: its opener (anyone for '')."""
        return not self.owner or self.owner == actor


@dataclass(frozen=True)
class ApiKey:
    """An API key of a tenant. Only a hash of its secret is kept (``secret_hash``, which
    never leaves the server); ``name`` is the label its creator gave it."""

    tenant: str
    key_id: str
    name: str
    scopes: frozenset[str]  # Permission values
    created_by: str
    create_time: datetime
    expire_time: datetime | None = None
    revoke_time: datetime | None = None
    last_used_time: datetime | None = None
    secret_hash: str = ""

    def usable(self, now: datetime) -> bool:
        """Neither revoked nor expired at ``now``."""
        return self.revoke_time is None and (self.expire_time is None or now < self.expire_time)


T = TypeVar("T")


@dataclass
class Page(Generic[T]):
    """One page of a listing; ``next_cursor`` is None on the last page.

    A cursor is a tuple of JSON-serialisable scalars (str, int, float, bool, None) produced by
    the store: the sort key of the last row. The domain turns it into an opaque page token.
    """

    items: list[T]
    next_cursor: tuple[Any, ...] | None
