"""Model policies: stored with the model, their bindings indexed so lists can filter by them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from ..policies import ModelPolicy, StoredPolicy


class ModelPolicies(Protocol):
    """Read and compare-and-set the policy of a model; which models members may see."""

    def get_policy(self, tenant: str, model_id: str) -> StoredPolicy | None:
        """The model's policy record (its ``policy`` None if it has none); None if there is
        no such model (soft-deleted models have policies too)."""
        ...

    def set_policy(
        self, tenant: str, model_id: str, policy: ModelPolicy | None, expected_revision: int
    ) -> StoredPolicy | None:
        """Replace the model's policy (None: remove it) if its revision is still
        ``expected_revision``; the new record, or None (changing nothing) if the revision
        moved or there is no such model. Call in a transaction."""
        ...

    def visible_models(
        self, tenant: str, model_ids: Sequence[str], members: frozenset[str]
    ) -> set[str]:
        """Those of ``model_ids`` that exist and have no policy or a binding of one of
        ``members``."""
        ...
