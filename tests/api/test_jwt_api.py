"""JWT bearer tokens through the shipped client against a server started with
``--jwt-public-keys``: valid tokens are served in their own tenant, refused ones are
UNAUTHENTICATED and change nothing, a missing scope is PERMISSION_DENIED."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from modelregistry.client import NotFoundError, PermissionDeniedError, UnauthenticatedError
from modelregistry_server.app import RegistryServer
from modelregistry_server.config import Config
from tests.api.registry_helpers import expect_error
from tests.support.jwt_tokens import EVERY_SCOPE, as_caller, ec_key, jwt_config, mint, rsa_key
from tests.support.servers import serving


def token(**claims: Any) -> str:
    return mint(rsa_key(), **{"scope": EVERY_SCOPE, **claims})


@pytest.fixture
def jwt_server(server_config: Config, tmp_path: Path) -> Iterator[RegistryServer]:
    with serving(jwt_config(server_config, tmp_path)) as service:
        yield service


def test_calls_with_a_valid_token_are_served(jwt_server: RegistryServer) -> None:
    with as_caller(jwt_server, token()) as alice:
        alice.create_model("fraud", description="by alice")
        alice.create_version("fraud")
        alice.upload_file("fraud", 1, io.BytesIO(b"weights"))
        assert alice.get_model("fraud").description == "by alice"
        assert [m.name for m in alice.list_models()] == ["models/fraud"]
        sink = io.BytesIO()
        alice.download_file("fraud", 1, sink)
        assert sink.getvalue() == b"weights"
    with as_caller(jwt_server, mint(ec_key(), scope="registry.read")) as es256:
        assert es256.get_model("fraud").name == "models/fraud"


def _refused_tokens() -> dict[str, tuple[str | None, str]]:
    now = int(time.time())
    return {
        "no token": (None, "CREDENTIALS_MISSING"),
        "not a JWT": ("opaque-bearer", "CREDENTIALS_INVALID"),
        "malformed JWT": ("abc.def.ghi", "CREDENTIALS_INVALID"),
        "bad signature": (mint(rsa_key(9), scope=EVERY_SCOPE), "CREDENTIALS_INVALID"),
        "tampered": (token()[:-6] + "AAAAAA", "CREDENTIALS_INVALID"),
        "expired": (token(exp=now - 120), "CREDENTIALS_EXPIRED"),
        "not yet valid": (token(nbf=now + 600), "CREDENTIALS_INVALID"),
        "wrong audience": (token(aud="another-service"), "CREDENTIALS_INVALID"),
        "wrong issuer": (token(iss="https://evil.example"), "CREDENTIALS_INVALID"),
        "no tenant": (token(tenant=None), "CREDENTIALS_INVALID"),
        "no sub": (token(sub=None), "CREDENTIALS_INVALID"),
        "HS256": (mint(b"x" * 32, scope=EVERY_SCOPE), "CREDENTIALS_INVALID"),
    }


@pytest.mark.parametrize("case", list(_refused_tokens()))
def test_refused_tokens_are_unauthenticated_and_change_nothing(
    jwt_server: RegistryServer, case: str
) -> None:
    bearer, reason = _refused_tokens()[case]
    with as_caller(jwt_server, bearer) as caller:
        with expect_error(UnauthenticatedError, reason, case=case) as caught:
            caller.create_model("intruder")
        with expect_error(UnauthenticatedError, reason, case=case):
            caller.list_models_page()
        with expect_error(UnauthenticatedError, reason, case=case):
            caller.upload_file("intruder", 1, io.BytesIO(b"x"), resume_unfinished=False)
    if bearer is not None:
        assert bearer not in caught.value.message
    with as_caller(jwt_server, token()) as alice:
        assert list(alice.list_models()) == []


def test_a_token_without_the_scope_is_permission_denied(jwt_server: RegistryServer) -> None:
    with as_caller(jwt_server, token(scope="registry.read openid")) as reader:
        assert list(reader.list_models()) == []
        with expect_error(PermissionDeniedError, "SCOPE_MISSING", message="registry.create"):
            reader.create_model("fraud")
    with (
        as_caller(jwt_server, token(scope=None)) as nothing,
        expect_error(PermissionDeniedError, "SCOPE_MISSING", message="registry.read"),
    ):
        nothing.list_models_page()
    with as_caller(jwt_server, token()) as alice:
        assert list(alice.list_models()) == []


def test_tenants_from_the_token_isolate_data(jwt_server: RegistryServer) -> None:
    with (
        as_caller(jwt_server, token(sub="alice", tenant="acme")) as acme,
        as_caller(jwt_server, token(sub="bob", tenant="globex")) as globex,
    ):
        acme.create_model("fraud", description="acme's")
        acme.create_version("fraud")
        acme.upload_file("fraud", 1, io.BytesIO(b"acme weights"))
        acme.seal_version("fraud", 1)
        acme.set_alias("fraud", "champion", 1)

        with expect_error(NotFoundError, "MODEL_NOT_FOUND"):
            globex.get_model("fraud")
        with expect_error(NotFoundError, "MODEL_NOT_FOUND"):
            globex.get_version("fraud", 1)
        with expect_error(NotFoundError, "MODEL_NOT_FOUND"):
            globex.get_alias("fraud", "champion")
        with expect_error(NotFoundError, "MODEL_NOT_FOUND"):
            globex.download_file("fraud", 1, io.BytesIO())
        assert list(globex.list_models()) == []
        assert list(globex.list_versions("-")) == []

        # The same name in the other tenant is another model.
        globex.create_model("fraud", description="globex's")
        assert globex.get_model("fraud").description == "globex's"
        assert acme.get_model("fraud").description == "acme's"
        assert [v.version_number for v in acme.list_versions("-")] == [1]
        assert list(globex.list_versions("-")) == []
