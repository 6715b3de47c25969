"""Every RPC of every service the server serves is in the permission table, and the edge
admits a call only with a credential that verifies and carries the scope its method needs."""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

import pytest
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection_pb2

import modelregistry.v1
from modelregistry_server.api.authentication import (
    ANONYMOUS,
    Authentication,
    Credentials,
)
from modelregistry_server.api.permissions import METHOD_REQUIREMENTS, Open, requirement
from modelregistry_server.api.reflection import V1_SERVICE as V1_REFLECTION
from modelregistry_server.app import SERVICES
from modelregistry_server.domain.errors import PermissionDenied, Reason, Unauthenticated
from modelregistry_server.domain.identity import AuthMethod, Caller, Permission


def _our_services() -> list[str]:
    """Every service declared in the modelregistry.v1 protos (not only the served ones)."""
    names = []
    for info in pkgutil.iter_modules(modelregistry.v1.__path__):
        if info.name.endswith("_pb2"):
            module = importlib.import_module(f"modelregistry.v1.{info.name}")
            names.extend(s.full_name for s in module.DESCRIPTOR.services_by_name.values())
    return names


def _methods(descriptors: list[object]) -> set[str]:
    return {
        f"/{service.full_name}/{method.name}"  # type: ignore[attr-defined]
        for service in descriptors
        for method in service.methods  # type: ignore[attr-defined]
    }


def test_every_rpc_is_in_the_table() -> None:
    declared = _our_services()
    assert {s.full_name for s in SERVICES} == set(declared), "a declared service is not served"
    served = _methods(
        [
            *SERVICES,
            *health_pb2.DESCRIPTOR.services_by_name.values(),
            *reflection_pb2.DESCRIPTOR.services_by_name.values(),
            V1_REFLECTION,
        ]
    )
    assert served - set(METHOD_REQUIREMENTS) == set(), "RPCs missing from api/permissions.py"
    assert set(METHOD_REQUIREMENTS) - served == set(), "table entries for RPCs that do not exist"


def test_only_health_and_reflection_are_open() -> None:
    for method, need in METHOD_REQUIREMENTS.items():
        if need is Open.AUTHENTICATED:
            assert method == "/modelregistry.v1.AccessService/GetCaller", method
        elif isinstance(need, Open):
            assert method.startswith(("/grpc.health.v1.", "/grpc.reflection.")), method


def test_managing_api_keys_needs_admin() -> None:
    for method in ("CreateApiKey", "ListApiKeys", "RevokeApiKey"):
        assert requirement(f"/modelregistry.v1.AccessService/{method}") is Permission.ADMIN


def test_authenticated_needs_a_credential_and_no_scope() -> None:
    nothing = Authentication([_Fixed(frozenset())])
    with pytest.raises(Unauthenticated) as missing:
        nothing.admit(Credentials(), Open.AUTHENTICATED)
    assert missing.value.reason is Reason.CREDENTIALS_MISSING
    with pytest.raises(Unauthenticated):
        nothing.admit(Credentials("bad"), Open.AUTHENTICATED)
    assert nothing.admit(Credentials("good"), Open.AUTHENTICATED).actor == "user:alice"
    assert Authentication().admit(Credentials(), Open.AUTHENTICATED) is ANONYMOUS


def test_an_unknown_method_needs_admin() -> None:
    assert requirement("/modelregistry.v1.ModelRegistry/NoSuchMethod") is Permission.ADMIN


class _Fixed:
    """Recognises the bearer ``good`` (and refuses ``bad``)."""

    def __init__(self, scopes: frozenset[Permission]) -> None:
        self.caller = Caller("acme", "alice", scopes, method=AuthMethod.JWT)

    def authenticate(self, credentials: Credentials) -> Caller | None:
        if credentials.bearer == "good":
            return self.caller
        if credentials.bearer == "bad":
            raise Unauthenticated("bad", reason=Reason.CREDENTIALS_INVALID)
        return None


def test_without_authenticators_everyone_is_anonymous_with_every_scope() -> None:
    off = Authentication()
    assert not off.enabled
    caller = off.admit(Credentials(), Permission.DELETE)
    assert caller is ANONYMOUS and caller.actor == "anonymous" and caller.tenant == "default"
    assert all(caller.has(p) for p in Permission)


def test_credentials_are_required_once_an_authenticator_exists() -> None:
    auth = Authentication([_Fixed(frozenset({Permission.READ}))])
    with pytest.raises(Unauthenticated) as missing:
        auth.admit(Credentials(), Permission.READ)
    assert missing.value.reason is Reason.CREDENTIALS_MISSING
    for bearer in ("bad", "unknown"):
        with pytest.raises(Unauthenticated) as invalid:
            auth.admit(Credentials(bearer), Permission.READ)
        assert invalid.value.reason is Reason.CREDENTIALS_INVALID
    assert auth.admit(Credentials("good"), Permission.READ).actor == "user:alice"
    assert auth.admit(Credentials(), Open.HEALTH) is ANONYMOUS  # probes need nothing


def test_scopes_are_checked_and_admin_grants_all() -> None:
    reader = Authentication([_Fixed(frozenset({Permission.READ}))])
    with pytest.raises(PermissionDenied) as denied:
        reader.admit(Credentials("good"), Permission.UPDATE)
    assert denied.value.reason is Reason.SCOPE_MISSING
    assert denied.value.metadata == {"scope": "registry.update"}
    admin = Authentication([_Fixed(frozenset({Permission.ADMIN}))])
    assert admin.admit(Credentials("good"), Permission.DELETE).is_admin


@pytest.mark.parametrize("header", ["Basic abc", "Bearer", "Bearer   ", "token", "bearerabc"])
def test_a_malformed_authorization_header_is_unauthenticated(header: str) -> None:
    with pytest.raises(Unauthenticated) as bad:
        Credentials.of([("authorization", header)], None)
    assert bad.value.reason is Reason.CREDENTIALS_INVALID


def test_bearer_is_read_case_insensitively() -> None:
    assert Credentials.of([("authorization", "bearer xyz ")], None).bearer == "xyz"


def test_caller_members_name_the_principal_and_its_groups() -> None:
    user = Caller("t", "bob", frozenset(), frozenset({"ml"}), method=AuthMethod.JWT)
    assert user.members == {"user:bob", "group:ml"}
    key = Caller("t", "ci", frozenset(), api_key_id="k1", method=AuthMethod.API_KEY)
    assert key.actor == "apikey:k1"


def scope_table() -> str:
    """The README's scope table, built from the permission table."""
    needs: list[Permission | Open] = [*Permission, *(o for o in Open if o not in _UNGUARDED)]
    rows = ["| needs | RPCs |", "|---|---|"]
    for need in needs:
        methods = [
            "`{}.{}`".format(*method.strip("/").split("/")).replace("`modelregistry.v1.", "`")
            for method, required in METHOD_REQUIREMENTS.items()
            if required is need
        ]
        label = f"`{need.value}`" if isinstance(need, Permission) else "any valid credential"
        if methods:
            rows.append(f"| {label} | {', '.join(methods)} |")
    return "\n".join(rows)


_UNGUARDED = (Open.HEALTH, Open.REFLECTION)


def test_the_readme_scope_table_is_the_permission_table() -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    table = scope_table()
    assert table in readme, "README Security: replace the scope table with\n" + table
