"""Which write controls a page shows: what the caller's scopes (the permission table, through
:attr:`Edge.permits`) and the model's policy (the domain's :func:`access.decide`) allow.

This only hides controls a person could not use; the server still refuses every write on its
own (the edge checks the scope, the use case asks the Authorizer). There is no second copy of
the rules: both questions go to the code that answers them for gRPC calls.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..domain import access
from ..domain.access import Action
from ..domain.entities import Stage
from ..domain.errors import DomainError
from ..domain.identity import Caller
from ..domain.policies import ModelPolicy
from ..domain.registry import Registry
from ..domain.stages import ALLOWED_TRANSITIONS
from .edge import Edge
from .pages import registry_rpc


@dataclass(frozen=True)
class Abilities:
    """What the caller may change on one model (each flag: scope and role both allow it)."""

    update_model: bool = False
    delete_model: bool = False
    update_version: bool = False
    seal: bool = False
    transition: bool = False
    delete_version: bool = False
    set_alias: bool = False
    delete_alias: bool = False
    touch_production: bool = False
    protected_aliases: frozenset[str] = frozenset()
    move_protected: bool = False

    @property
    def any(self) -> bool:
        """Whether any write control is shown at all."""
        flags = (self.update_model, self.delete_model, self.update_version, self.seal)
        return any(flags) or any(
            (self.transition, self.delete_version, self.set_alias, self.delete_alias)
        )

    def alias(self, name: str) -> bool:
        """Whether the caller may move or delete alias ``name``."""
        return self.set_alias and (name not in self.protected_aliases or self.move_protected)

    def stages(self, current: Stage) -> list[Stage]:
        """The stages the caller may offer as targets from ``current``."""
        if not self.transition:
            return []
        if current is Stage.PRODUCTION and not self.touch_production:
            return []
        allowed = ALLOWED_TRANSITIONS[current]
        return [
            s
            for s in Stage
            if s in allowed and (s is not Stage.PRODUCTION or self.touch_production)
        ]


def _allowed(caller: Caller, model_id: str, policy: ModelPolicy | None, action: Action) -> bool:
    try:
        access.decide(caller, model_id, policy, action)
    except DomainError:
        return False
    return True


def abilities(edge: Edge, registry: Registry, caller: Caller, model_id: str) -> Abilities:
    """What ``caller`` may change on ``model_id`` (blocking: reads the model's policy)."""
    policy = registry.get_model_policy(caller, model_id).policy

    def may(rpc: str, action: Action) -> bool:
        return edge.permits(caller, rpc) and _allowed(caller, model_id, policy, action)

    return Abilities(
        update_model=may(registry_rpc("UpdateModel"), Action.UPDATE),
        delete_model=may(registry_rpc("DeleteModel"), Action.DELETE),
        update_version=may(registry_rpc("UpdateModelVersion"), Action.UPDATE),
        seal=may(registry_rpc("SealModelVersion"), Action.UPDATE),
        transition=may(registry_rpc("TransitionModelVersionStage"), Action.UPDATE),
        delete_version=may(registry_rpc("DeleteModelVersion"), Action.DELETE),
        set_alias=may(registry_rpc("SetAlias"), Action.UPDATE),
        delete_alias=may(registry_rpc("DeleteAlias"), Action.UPDATE),
        touch_production=policy is None
        or _allowed(caller, model_id, policy, Action.TOUCH_PRODUCTION),
        protected_aliases=frozenset(policy.protected_aliases)
        if policy is not None
        else frozenset(),
        move_protected=policy is None
        or _allowed(caller, model_id, policy, Action.MOVE_PROTECTED_ALIAS),
    )
