"""The Authorizer's table: every role and every action, protected aliases, PRODUCTION, no
policy, admin override, and which denial each refusal is."""

from __future__ import annotations

import pytest

from modelregistry_server.domain.access import Action, decide
from modelregistry_server.domain.entities import Stage
from modelregistry_server.domain.errors import InvalidArgument, NotFound, PermissionDenied, Reason
from modelregistry_server.domain.identity import AuthMethod, Caller, Permission
from modelregistry_server.domain.policies import (
    Binding,
    ModelPolicy,
    Role,
    check_member,
    check_policy,
)

POLICY = ModelPolicy(
    bindings=(
        Binding(Role.VIEWER, ("user:vera",)),
        Binding(Role.EDITOR, ("group:ml",)),
        Binding(Role.OWNER, ("apikey:k1",)),
    ),
    protected_aliases=("production",),
)
SCOPES = frozenset({Permission.READ, Permission.CREATE, Permission.UPDATE, Permission.DELETE})
VIEWER = Caller("t", "vera", SCOPES, method=AuthMethod.JWT)
EDITOR = Caller("t", "eddie", SCOPES, frozenset({"ml"}), method=AuthMethod.JWT)
OWNER = Caller("t", "ci", SCOPES, api_key_id="k1", method=AuthMethod.API_KEY)
STRANGER = Caller("t", "sam", SCOPES, method=AuthMethod.JWT)
ADMIN = Caller("t", "root", frozenset({Permission.ADMIN}), method=AuthMethod.JWT)

# role -> the actions it may do (everything else is denied).
TABLE = {
    "viewer": {Action.READ},
    "editor": {Action.READ, Action.CREATE, Action.UPDATE},
    "owner": set(Action),
}
CALLERS = {"viewer": VIEWER, "editor": EDITOR, "owner": OWNER}


@pytest.mark.parametrize("role", list(TABLE))
@pytest.mark.parametrize("action", list(Action))
def test_role_grants_exactly_its_actions(role: str, action: Action) -> None:
    caller = CALLERS[role]
    if action in TABLE[role]:
        decide(caller, "m", POLICY, action)
        return
    with pytest.raises(PermissionDenied) as denied:
        decide(caller, "m", POLICY, action)
    expected = {
        Action.MOVE_PROTECTED_ALIAS: Reason.ALIAS_PROTECTED,
        Action.TOUCH_PRODUCTION: Reason.STAGE_PROTECTED,
    }.get(action, Reason.ROLE_MISSING)
    assert denied.value.reason is expected


@pytest.mark.parametrize("action", list(Action))
def test_a_caller_without_a_role_is_told_the_model_does_not_exist(action: Action) -> None:
    with pytest.raises(NotFound) as missing:
        decide(STRANGER, "m", POLICY, action)
    assert missing.value.reason is Reason.MODEL_NOT_FOUND
    assert str(missing.value) == "model 'm' not found"  # as for a model that does not exist


@pytest.mark.parametrize("caller", [VIEWER, EDITOR, OWNER, STRANGER, ADMIN])
@pytest.mark.parametrize("action", list(Action))
def test_without_a_policy_scopes_alone_decide(caller: Caller, action: Action) -> None:
    decide(caller, "m", None, action, alias="production", stages=(Stage.PRODUCTION,))


@pytest.mark.parametrize("action", list(Action))
def test_admin_overrides_every_policy(action: Action) -> None:
    decide(ADMIN, "m", POLICY, action, alias="production", stages=(Stage.PRODUCTION,))


def test_protected_alias_needs_an_owner_other_aliases_an_editor() -> None:
    decide(EDITOR, "m", POLICY, Action.UPDATE, alias="staging")
    with pytest.raises(PermissionDenied) as denied:
        decide(EDITOR, "m", POLICY, Action.UPDATE, alias="production")
    assert denied.value.reason is Reason.ALIAS_PROTECTED
    decide(OWNER, "m", POLICY, Action.UPDATE, alias="production")
    with pytest.raises(PermissionDenied) as viewer:
        decide(VIEWER, "m", POLICY, Action.UPDATE, alias="staging")
    assert viewer.value.reason is Reason.ROLE_MISSING


@pytest.mark.parametrize(
    ("stages", "editor_may"),
    [
        ((Stage.DEVELOPMENT, Stage.STAGING), True),
        ((Stage.STAGING, Stage.ARCHIVED), True),
        ((Stage.STAGING, Stage.PRODUCTION), False),
        ((Stage.PRODUCTION, Stage.ARCHIVED), False),
    ],
)
def test_production_is_owner_only_unless_opened(
    stages: tuple[Stage, Stage], editor_may: bool
) -> None:
    if editor_may:
        decide(EDITOR, "m", POLICY, Action.UPDATE, stages=stages)
    else:
        with pytest.raises(PermissionDenied) as denied:
            decide(EDITOR, "m", POLICY, Action.UPDATE, stages=stages)
        assert denied.value.reason is Reason.STAGE_PROTECTED
    decide(OWNER, "m", POLICY, Action.UPDATE, stages=stages)
    opened = ModelPolicy(POLICY.bindings, POLICY.protected_aliases, production_open_to_editors=True)
    decide(EDITOR, "m", opened, Action.UPDATE, stages=stages)
    with pytest.raises(PermissionDenied):
        decide(VIEWER, "m", opened, Action.UPDATE, stages=stages)


@pytest.mark.parametrize(
    "member", ["user:alice", "group:ml-team", "apikey:mr_abc123", "user:a@b.example"]
)
def test_member_syntax_accepted(member: str) -> None:
    assert check_member(member, "f") == member


@pytest.mark.parametrize(
    "member", ["alice", "user:", "role:x", "user:has space", "group:a\tb", "user:" + "x" * 257]
)
def test_member_syntax_rejected_naming_the_field(member: str) -> None:
    with pytest.raises(InvalidArgument) as bad:
        check_member(member, "policy.bindings[0].members[1]")
    assert bad.value.field_violations[0].field == "policy.bindings[0].members[1]"


def test_a_policy_must_keep_an_owner() -> None:
    with pytest.raises(InvalidArgument) as bad:
        check_policy([("editor", ["user:a"])], [], False)
    assert bad.value.field_violations[0].field == "policy.bindings"
    with pytest.raises(InvalidArgument) as protected_only:
        check_policy([], ["production"], False)
    assert protected_only.value.field_violations[0].field == "policy.bindings"
    assert check_policy([], [], False).is_empty  # removing the policy is allowed


def test_policy_checks_roles_and_aliases_and_merges_bindings() -> None:
    with pytest.raises(InvalidArgument) as role:
        check_policy([("admin", ["user:a"])], [], False)
    assert role.value.field_violations[0].field == "policy.bindings[0].role"
    with pytest.raises(InvalidArgument) as alias:
        check_policy([("owner", ["user:a"])], ["Prod!"], False)
    assert alias.value.field_violations[0].field == "policy.protected_aliases[0]"
    policy = check_policy(
        [("owner", ["user:b"]), ("owner", ["user:a", "user:b"])], ["production"], False
    )
    assert policy.bindings == (Binding(Role.OWNER, ("user:a", "user:b")),)
    assert ModelPolicy.from_json(policy.to_json()) == policy
