"""The registry's rows: models, versions, aliases, stage history, request ids, purging."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from ..entities import (
    Alias,
    AliasMove,
    Model,
    ModelVersion,
    Page,
    RequestRecord,
    StageTransition,
    VersionStatus,
)
from .queries import ListQuery, PurgeCounts


class ModelCatalog(Protocol):
    """Models and their version counters."""

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

    def allocate_version_number(self, tenant: str, model_id: str) -> int | None:
        """Atomically increment and return the version counter of a live (not soft-deleted)
        model; None, changing nothing, if there is no such model. Call in a transaction."""
        ...


class VersionCatalog(Protocol):
    """Versions of models."""

    def insert_version(self, version: ModelVersion) -> None:
        """Insert a new version (its number comes from ``allocate_version_number``)."""
        ...

    def get_version(
        self, tenant: str, model_id: str, number: int, *, for_update: bool = False
    ) -> ModelVersion | None:
        """The version with its aliases filled in (soft-deleted included)."""
        ...

    def version_status(
        self, tenant: str, model_id: str, number: int, *, for_update: bool = False
    ) -> VersionStatus | None:
        """The version's state and deletion time alone (one row, no labels or metrics)."""
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


class AliasBook(Protocol):
    """Aliases: named pointers at versions of a model."""

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


class AliasHistory(Protocol):
    """Every move of every alias, kept after the alias (and its model) are gone."""

    def record_alias_move(self, move: AliasMove) -> None:
        """Append a move (call in the transaction that makes it)."""
        ...

    def alias_at(self, tenant: str, model_id: str, alias: str, at: datetime) -> AliasMove | None:
        """The last move of the alias at or before ``at``, or None if it had none yet."""
        ...

    def list_alias_moves(
        self, tenant: str, model_id: str, alias: str | None, after: int | None, limit: int
    ) -> Page[AliasMove]:
        """Moves of one alias (or of every alias of the model), oldest first; the cursor is
        ``(sequence,)``."""
        ...


class StageHistory(Protocol):
    """The recorded stage transitions of versions."""

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


class RequestLog(Protocol):
    """Request ids of creates, so a retried create returns the first result."""

    def find_request(self, tenant: str, request_id: str) -> RequestRecord | None:
        """The record of an earlier create with this request id."""
        ...

    def record_request(self, record: RequestRecord) -> None:
        """Remember a create; raises AlreadyExists(REQUEST_ID_REUSED) if the id is recorded."""
        ...


class Purger(Protocol):
    """Hard deletion of what was soft-deleted long enough ago."""

    def purge(self, now: datetime) -> PurgeCounts:
        """Hard-delete soft-deleted models and versions whose ``purge_time`` has passed,
        with their aliases, transitions and files (blobs are left to blob GC)."""
        ...
