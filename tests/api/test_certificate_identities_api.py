"""Client certificates as identities: under mutual TLS, the identities file maps a
certificate's SAN to a subject, tenant, scopes and groups. Another tenant's model is NOT_FOUND,
a missing scope PERMISSION_DENIED, an unlisted certificate needs a token, and a bearer token
takes precedence over the certificate."""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from modelregistry.client import (
    NotFoundError,
    PermissionDeniedError,
    RegistryClient,
    UnauthenticatedError,
)
from modelregistry_server.api.authentication import Authentication, Credentials
from modelregistry_server.api.certificates import CertificateAuthenticator
from modelregistry_server.app import RegistryServer
from modelregistry_server.config import Config
from modelregistry_server.domain.identity import AuthMethod, Caller, Permission
from tests.api.registry_helpers import expect_error
from tests.support.certificates import Authority
from tests.support.servers import serving

IDENTITIES = """
[[identity]]
san = "spiffe://example.org/ns/ml/sa/trainer"
subject = "trainer"
tenant = "ml"
scopes = ["registry.read", "registry.create", "registry.update"]
groups = ["trainers"]

[[identity]]
san = "reader.risk.example.org"
subject = "risk-reader"
tenant = "risk"
scopes = ["registry.read"]

[[identity]]
san = "spiffe://example.org/ns/ml/sa/auditor"
subject = "auditor"
tenant = "ml"
scopes = ["registry.read"]
"""


@dataclass(frozen=True)
class Identities:
    server: RegistryServer
    ca: Path
    certs: dict[str, tuple[Path, Path]]

    def client(self, who: str | None, **kwargs: object) -> RegistryClient:
        cert, key = self.certs[who] if who is not None else (None, None)
        return RegistryClient(
            self.server.address,
            root_certificates=self.ca,
            client_certificate=cert,
            client_key=key,
            timeout=10,
            retries=0,
            **kwargs,  # type: ignore[arg-type]  # token= in one test
        )


@pytest.fixture
def identities(server_config: Config, tmp_path: Path) -> Iterator[Identities]:
    ca = Authority("Registry CA")
    tls = tmp_path / "tls"
    cert, key = ca.server().write(tls, "server")
    identities_file = tls / "identities.toml"
    identities_file.write_text(IDENTITIES)
    certs = {
        "trainer": ca.client("trainer", uris=("spiffe://example.org/ns/ml/sa/trainer",)),
        "risk": ca.client("risk", dns=("reader.risk.example.org",)),
        "unlisted": ca.client("nobody", dns=("nobody.example.org",)),
        # Two listed SANs naming different identities: ambiguous, refused.
        "ambiguous": ca.client(
            "two",
            dns=("reader.risk.example.org",),
            uris=("spiffe://example.org/ns/ml/sa/trainer",),
        ),
    }
    config = dataclasses.replace(
        server_config,
        tls_cert=str(cert),
        tls_key=str(key),
        tls_client_ca=str(ca.write(tls / "ca.crt")),
        tls_identities_file=str(identities_file),
    )
    with serving(config) as service:
        yield Identities(
            service,
            tls / "ca.crt",
            {who: issued.write(tls, who) for who, issued in certs.items()},
        )


def test_a_certificate_authenticates_as_its_listed_tenant_and_scopes(
    identities: Identities,
) -> None:
    with identities.client("trainer") as trainer:
        trainer.create_model("fraud")
        trainer.create_version("fraud")
        trainer.upload_file("fraud", 1, io.BytesIO(b"weights"))
        trainer.seal_version("fraud", 1)
        trainer.transition_stage("fraud", 1, "STAGING")
        [transition] = trainer.list_stage_transitions("fraud", 1)
        assert transition.actor == "user:trainer"
    with identities.client("risk") as other_tenant:
        with expect_error(NotFoundError, "MODEL_NOT_FOUND"):
            other_tenant.get_model("fraud")
        assert [m.name for m in other_tenant.list_models()] == []
        with expect_error(PermissionDeniedError, "SCOPE_MISSING"):
            other_tenant.create_model("risk-model")


def test_a_certificate_not_in_the_file_needs_a_token(identities: Identities) -> None:
    with (
        identities.client("unlisted") as unlisted,
        expect_error(UnauthenticatedError, "CREDENTIALS_MISSING"),
    ):
        list(unlisted.list_models())
    with (
        identities.client("ambiguous") as ambiguous,
        expect_error(UnauthenticatedError, "CREDENTIALS_INVALID"),
    ):
        list(ambiguous.list_models())


class _OneToken:
    def authenticate(self, credentials: Credentials) -> Caller | None:
        if credentials.bearer != "risk-token":
            return None
        return Caller("risk", "risk-bot", frozenset(Permission), method=AuthMethod.JWT)


def test_a_bearer_token_takes_precedence_over_the_certificate(
    identities: Identities, tmp_path: Path
) -> None:
    with identities.client("trainer") as trainer:
        trainer.create_model("ml-model")
    certificate = CertificateAuthenticator(Path(identities.server.config.tls_identities_file))
    identities.server.interceptor.use_authentication(Authentication([_OneToken(), certificate]))
    with identities.client("trainer", token="risk-token") as with_token:
        with expect_error(NotFoundError, "MODEL_NOT_FOUND"):
            with_token.get_model("ml-model")  # the token's tenant (risk), not the cert's (ml)
        with_token.create_model("risk-model")
    with (
        identities.client("trainer", token="not-a-token") as bad_token,
        expect_error(UnauthenticatedError, "CREDENTIALS_INVALID"),
    ):
        bad_token.get_model("ml-model")  # a bad token is not rescued by the certificate
    with identities.client("trainer") as trainer:
        assert trainer.get_model("ml-model").name == "models/ml-model"
