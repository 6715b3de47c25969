"""Model policies (the ``ModelPolicies`` port): the JSON document in ``models.policy`` with its
``policy_revision``, and its bindings in ``model_members`` for list filters."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ...domain.policies import ModelPolicy, StoredPolicy
from .core import StoreCore, chunks, first, tuples
from .schema import Tables


def visible_model_pks(t: Tables, tenant: str, members: frozenset[str]) -> Any:
    """A subquery of the ids of the tenant's models that ``members`` may see: those without a
    policy and those binding one of the members."""
    m, mm = t.models, t.model_members
    bound = mm.select(mm.model_pk).where(mm.tenant == tenant, mm.member.in_(sorted(members)))
    return m.select(m.id).where(m.tenant == tenant, m.policy.is_null() | m.id.in_(bound))


def visible_condition(t: Tables, tenant: str, model_pk: Any, members: frozenset[str]) -> Any:
    """A condition on a ``model_pk`` column: the model is visible to ``members``."""
    return model_pk.in_(visible_model_pks(t, tenant, members))


class PolicyRows(StoreCore):
    """``models.policy``, ``models.policy_revision`` and ``model_members``."""

    def get_policy(self, tenant: str, model_id: str) -> StoredPolicy | None:
        """The model's policy record, or None if there is no such model."""
        m = self._t.models
        with self._read():
            row = first(
                m.select(m.uid, m.policy, m.policy_revision).where(
                    m.tenant == tenant, m.model_id == model_id
                )
            )
        if row is None:
            return None
        policy = None if row["policy"] is None else ModelPolicy.from_json(row["policy"])
        return StoredPolicy(row["uid"], int(row["policy_revision"]), policy)

    def set_policy(
        self, tenant: str, model_id: str, policy: ModelPolicy | None, expected_revision: int
    ) -> StoredPolicy | None:
        """Compare-and-set the policy on ``policy_revision`` (one UPDATE), then rewrite the
        model's ``model_members`` rows."""
        m, mm = self._t.models, self._t.model_members
        stored = None if policy is None else policy.to_json()
        with self._write():
            found = tuples(
                m.update(policy=stored, policy_revision=m.policy_revision + 1)
                .where(
                    m.tenant == tenant,
                    m.model_id == model_id,
                    m.policy_revision == expected_revision,
                )
                .returning(m.id, m.uid, m.policy_revision)
            )
            if not found:
                return None
            pk, uid, revision = found[0]
            mm.delete().where(mm.model_pk == pk).execute()
            pairs = sorted(policy.memberships()) if policy is not None else []
            if pairs:
                mm.insert_many(
                    [
                        {"tenant": tenant, "model_pk": pk, "member": member, "role": role.value}
                        for member, role in pairs
                    ]
                ).as_rowcount().execute()
        return StoredPolicy(uid, int(revision), policy)

    def visible_models(
        self, tenant: str, model_ids: Sequence[str], members: frozenset[str]
    ) -> set[str]:
        """Those of ``model_ids`` without a policy or with a binding of one of ``members``."""
        m = self._t.models
        visible: set[str] = set()
        with self._read(snapshot=True):
            for chunk in chunks(sorted(set(model_ids))):
                query = m.select(m.model_id).where(
                    m.tenant == tenant,
                    m.model_id.in_(list(chunk)),
                    m.id.in_(visible_model_pks(self._t, tenant, members)),
                )
                visible.update(model_id for (model_id,) in tuples(query))
        return visible
