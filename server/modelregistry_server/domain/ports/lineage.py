"""Lineage lookups over the indexed ``produced_by`` and dataset references of versions."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from ..entities import ModelVersion


class LineageIndex(Protocol):
    """Which versions a version came from or feeds, and which used a dataset.

    Every method is scoped by ``tenant``; versions come with labels, metrics and aliases.
    """

    def versions_named(self, tenant: str, refs: Sequence[tuple[str, int]]) -> list[ModelVersion]:
        """The versions (soft-deleted included) among ``(model_id, number)`` pairs that exist."""
        ...

    def consumers(
        self, tenant: str, upstreams: Sequence[str], *, include_deleted: bool, limit: int
    ) -> list[tuple[str, ModelVersion]]:
        """``(upstream, version)`` for versions whose ``produced_by`` names one of the
        ``upstreams`` (version names), ordered by upstream then creation, at most ``limit``."""
        ...

    def dataset_users(
        self, tenant: str, uri: str, *, include_deleted: bool, limit: int
    ) -> list[ModelVersion]:
        """Versions with a dataset reference to ``uri``, oldest first, at most ``limit``."""
        ...

    def dependents(
        self, tenant: str, model_id: str, number: int | None, limit: int
    ) -> list[tuple[str, int]]:
        """``(model_id, number)`` of live versions outside the target (version ``number`` of
        the model, or the whole model if None) whose ``produced_by`` names it; ordered, at
        most ``limit``."""
        ...
