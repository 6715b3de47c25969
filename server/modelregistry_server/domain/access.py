"""The one home of authorization that needs the resource: model policies, protected aliases
and PRODUCTION.

The edge (``api/permissions.py``) has already checked the scope an RPC needs. Here a use case
asks whether the caller may do an :class:`Action` on a model:

- a model without a policy is governed by scopes alone (everyone in the tenant);
- ``registry.admin`` in the tenant overrides every policy (break-glass);
- otherwise the caller needs a role, through one of its members, that grants the action
  (:data:`GRANTS`). A caller with no role at all is told the model does not exist
  (NOT_FOUND: existence does not leak); one that can see the model gets PERMISSION_DENIED
  with a reason (ROLE_MISSING, ALIAS_PROTECTED, STAGE_PROTECTED).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import StrEnum

from .entities import Stage
from .errors import Hidden, PermissionDenied, Reason
from .identity import Caller
from .policies import ModelPolicy, Role
from .ports import ModelPolicies


class Action(StrEnum):
    """What a use case does to a model, as far as roles are concerned."""

    READ = "read"  # the model, its versions, aliases, files, lineage, policy
    CREATE = "create"  # versions, files and upload sessions
    UPDATE = "update"  # metadata, stages other than PRODUCTION, unprotected aliases, seal
    DELETE = "delete"  # delete and undelete of the model and its versions
    SET_POLICY = "set_policy"
    MOVE_PROTECTED_ALIAS = "move_protected_alias"  # set or delete a protected alias
    TOUCH_PRODUCTION = "touch_production"  # move a version into or out of PRODUCTION


_VIEWER = frozenset({Action.READ})
_EDITOR = _VIEWER | {Action.CREATE, Action.UPDATE}
GRANTS: Mapping[Role, frozenset[Action]] = {
    Role.VIEWER: _VIEWER,
    Role.EDITOR: _EDITOR,
    Role.OWNER: frozenset(Action),
}

_DENIAL_REASONS: Mapping[Action, Reason] = {
    Action.MOVE_PROTECTED_ALIAS: Reason.ALIAS_PROTECTED,
    Action.TOUCH_PRODUCTION: Reason.STAGE_PROTECTED,
}


def granted(policy: ModelPolicy, roles: Iterable[Role]) -> frozenset[Action]:
    """What ``roles`` may do under ``policy``."""
    actions: set[Action] = set()
    for role in roles:
        actions |= GRANTS[role]
    if policy.production_open_to_editors and Action.UPDATE in actions:
        actions.add(Action.TOUCH_PRODUCTION)
    return frozenset(actions)


def check(caller: Caller, model_id: str, policy: ModelPolicy | None, action: Action) -> None:
    """Raise unless ``caller`` may do ``action`` on model ``model_id`` with ``policy``
    (see the module docstring); pure."""
    if policy is None or caller.is_admin:
        return
    roles = policy.roles_of(caller.members)
    if action in granted(policy, roles):
        return
    if not roles:
        raise Hidden(f"model {model_id!r} not found", reason=Reason.MODEL_NOT_FOUND)
    held = ", ".join(sorted(r.value for r in roles))
    reason = _DENIAL_REASONS.get(action, Reason.ROLE_MISSING)
    raise PermissionDenied(
        f"your role on model {model_id!r} ({held}) does not allow {action.value}" + _why(reason),
        reason=reason,
        metadata={"model": f"models/{model_id}", "action": action.value},
    )


def _why(reason: Reason) -> str:
    if reason is Reason.ALIAS_PROTECTED:
        return ": the alias is protected, only owners move or delete it"
    if reason is Reason.STAGE_PROTECTED:
        return ": only owners move versions into or out of PRODUCTION"
    return ""


def needed(
    policy: ModelPolicy, action: Action, *, alias: str | None = None, stages: Iterable[Stage] = ()
) -> list[Action]:
    """The actions a call doing ``action`` needs under ``policy``: also MOVE_PROTECTED_ALIAS
    if it sets or deletes a protected ``alias``, TOUCH_PRODUCTION if ``stages`` (from and
    to) include PRODUCTION."""
    actions = [action]
    if alias is not None and alias in policy.protected_aliases:
        actions.append(Action.MOVE_PROTECTED_ALIAS)
    if Stage.PRODUCTION in stages:
        actions.append(Action.TOUCH_PRODUCTION)
    return actions


def decide(
    caller: Caller,
    model_id: str,
    policy: ModelPolicy | None,
    action: Action,
    *,
    alias: str | None = None,
    stages: Iterable[Stage] = (),
) -> None:
    """Raise unless ``caller`` may do ``action`` (and what ``alias`` and ``stages`` add, see
    :func:`needed`) on the model; pure."""
    if policy is None or caller.is_admin:
        return
    for each in needed(policy, action, alias=alias, stages=stages):
        check(caller, model_id, policy, each)


class Authorizer:
    """Checks :class:`Action` s against the policies stored through :class:`ModelPolicies`."""

    def __init__(self, policies: ModelPolicies) -> None:
        self._policies = policies

    def require(
        self,
        caller: Caller,
        model_id: str,
        action: Action,
        *,
        alias: str | None = None,
        stages: Iterable[Stage] = (),
    ) -> None:
        """Raise unless ``caller`` may do ``action`` on the model (see :func:`decide`). An
        unknown model passes (the use case reports it); admins skip the lookup."""
        if caller.is_admin:
            return
        stored = self._policies.get_policy(caller.tenant, model_id)
        policy = None if stored is None else stored.policy
        decide(caller, model_id, policy, action, alias=alias, stages=stages)

    @staticmethod
    def visible_to(caller: Caller) -> frozenset[str] | None:
        """The members whose bindings make a model with a policy visible in lists; None
        when the caller sees every model of its tenant."""
        return None if caller.is_admin else caller.members

    def visible_models(self, caller: Caller, model_ids: Iterable[str]) -> set[str]:
        """Those of ``model_ids`` the caller may read."""
        wanted = set(model_ids)
        if caller.is_admin or not wanted:
            return wanted
        return self._policies.visible_models(caller.tenant, sorted(wanted), caller.members)
