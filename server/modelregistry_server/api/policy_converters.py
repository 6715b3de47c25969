"""Model policies between protobuf messages and domain objects."""

from __future__ import annotations

from modelregistry.v1 import resources_pb2 as pb

from ..domain import names
from ..domain.policies import ModelPolicy, StoredPolicy, check_policy


def policy_from_proto(msg: pb.ModelPolicy) -> ModelPolicy:
    """A validated policy of the request's ``policy`` (INVALID_ARGUMENT naming the field)."""
    return check_policy(
        [(b.role, list(b.members)) for b in msg.bindings],
        list(msg.protected_aliases),
        msg.production_open_to_editors,
    )


def policy_to_proto(model_id: str, stored: StoredPolicy) -> pb.ModelPolicy:
    """The ``ModelPolicy`` message of a stored policy (empty if the model has none)."""
    policy = stored.policy or ModelPolicy()
    return pb.ModelPolicy(
        resource=names.model_name(model_id),
        bindings=[
            pb.PolicyBinding(role=b.role.value, members=list(b.members)) for b in policy.bindings
        ],
        protected_aliases=list(policy.protected_aliases),
        production_open_to_editors=policy.production_open_to_editors,
        etag=stored.etag,
    )
