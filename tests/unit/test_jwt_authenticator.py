"""The JWT authenticator: which bearers it takes, every claim rule, leeway, algorithm
confusion, and the messages it gives."""

from __future__ import annotations

import base64
import json
import logging
import time
from pathlib import Path
from typing import Any

import jwt
import pytest

from modelregistry_server.api.authentication import Credentials
from modelregistry_server.api.jwt_authenticator import JwtAuthenticator, looks_like_jwt
from modelregistry_server.api.jwt_keys import FileKeys
from modelregistry_server.domain.errors import Reason, Unauthenticated
from modelregistry_server.domain.identity import AuthMethod, Caller, Permission
from tests.support.jwt_tokens import (
    AUDIENCE,
    ISSUER,
    ec_key,
    mint,
    public_pem,
    rsa_key,
    write,
)

SECRET = b"a development secret of 32 bytes!"


@pytest.fixture
def pem_file(tmp_path: Path) -> Path:
    """Two RSA keys and one EC key, as an identity provider mid-rotation would publish."""
    return write(
        tmp_path / "keys.pem",
        public_pem(rsa_key(0)) + public_pem(rsa_key(1)) + public_pem(ec_key()),
    )


def _authenticator(pem_file: Path, **settings: Any) -> JwtAuthenticator:
    options: dict[str, Any] = {"issuer": ISSUER, "audience": AUDIENCE, **settings}
    return JwtAuthenticator(keys=FileKeys(pem_file), **options)


def _caller(authenticator: JwtAuthenticator, token: str) -> Caller:
    caller = authenticator.authenticate(Credentials(token))
    assert caller is not None
    return caller


def _refused(authenticator: JwtAuthenticator, token: str, *words: str) -> Unauthenticated:
    with pytest.raises(Unauthenticated) as caught:
        authenticator.authenticate(Credentials(token))
    assert caught.value.reason is Reason.CREDENTIALS_INVALID, caught.value.message
    for word in words:
        assert word in caught.value.message
    assert token not in caught.value.message
    return caught.value


def _forge(header: dict[str, Any], payload: dict[str, Any], signature: bytes = b"") -> str:
    def part(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    return ".".join(
        [part(json.dumps(header).encode()), part(json.dumps(payload).encode()), part(signature)]
    )


# -- which bearers are JWTs ------------------------------------------------------------------


@pytest.mark.parametrize(
    "bearer",
    ["mrk_abc.def.ghi", "mrk_0123456789", "opaque-token", "a.b", "a.b.c.d", "a..c", "a b.c.d"],
)
def test_other_bearers_are_left_to_other_authenticators(pem_file: Path, bearer: str) -> None:
    assert not looks_like_jwt(bearer)
    assert _authenticator(pem_file).authenticate(Credentials(bearer)) is None
    assert _authenticator(pem_file).authenticate(Credentials(None)) is None


def test_garbage_in_jwt_shape_is_invalid(pem_file: Path) -> None:
    _refused(_authenticator(pem_file), "abc.def.ghi", "not a well-formed JWT")


# -- a valid token and its caller -----------------------------------------------------------


def test_a_valid_rs256_token_becomes_its_caller(pem_file: Path) -> None:
    token = mint(rsa_key(), sub="alice", tenant="acme", groups=["ml", "ops"])
    caller = _caller(_authenticator(pem_file), token)
    assert caller == Caller(
        tenant="acme",
        subject="alice",
        scopes=frozenset({Permission.READ, Permission.CREATE}),
        groups=frozenset({"ml", "ops"}),
        method=AuthMethod.JWT,
    )
    assert caller.actor == "user:alice"
    assert caller.members == {"user:alice", "group:ml", "group:ops"}


def test_every_key_of_the_file_verifies(pem_file: Path) -> None:
    authenticator = _authenticator(pem_file)
    assert _caller(authenticator, mint(rsa_key(1), sub="bob")).subject == "bob"
    assert _caller(authenticator, mint(ec_key(), sub="carol")).subject == "carol"


def test_a_kid_is_ignored_for_unnamed_pem_keys(pem_file: Path) -> None:
    assert _caller(_authenticator(pem_file), mint(rsa_key(), kid="2026-12")).subject == "alice"


@pytest.mark.parametrize(
    ("scope", "expected"),
    [
        ("registry.read", {Permission.READ}),
        ("registry.read  registry.delete openid", {Permission.READ, Permission.DELETE}),
        (["registry.update", "profile", "registry.admin"], {Permission.UPDATE, Permission.ADMIN}),
        (["registry.read registry.create"], {Permission.READ, Permission.CREATE}),
        ("", set()),
        ([], set()),
        (None, set()),
    ],
)
def test_scopes_from_string_or_list_unknown_ignored(
    pem_file: Path, scope: object, expected: set[Permission]
) -> None:
    caller = _caller(_authenticator(pem_file), mint(rsa_key(), scope=scope))
    assert caller.scopes == expected


@pytest.mark.parametrize("scope", [42, {"registry.read": True}, ["registry.read", 7]])
def test_a_malformed_scope_claim_is_invalid(pem_file: Path, scope: object) -> None:
    _refused(_authenticator(pem_file), mint(rsa_key(), scope=scope), "'scope' claim")


def test_claim_names_are_configurable(pem_file: Path) -> None:
    authenticator = _authenticator(pem_file, tenant_claim="org", scope_claim="scp")
    token = mint(rsa_key(), tenant=None, scope=None, org="umbrella", scp=["registry.read"])
    caller = _caller(authenticator, token)
    assert (caller.tenant, set(caller.scopes)) == ("umbrella", {Permission.READ})
    _refused(authenticator, mint(rsa_key()), "no 'org' claim")


@pytest.mark.parametrize("groups", ["ml", [1], [""], {"ml": 1}])
def test_a_malformed_groups_claim_is_invalid(pem_file: Path, groups: object) -> None:
    _refused(_authenticator(pem_file), mint(rsa_key(), groups=groups), "'groups' claim")


# -- subject and tenant ----------------------------------------------------------------------


@pytest.mark.parametrize("sub", [None, "", 42, "x" * 257])
def test_sub_is_required_and_a_string(pem_file: Path, sub: object) -> None:
    _refused(_authenticator(pem_file), mint(rsa_key(), sub=sub), "sub")


def test_a_missing_tenant_is_refused_unless_a_default_is_configured(pem_file: Path) -> None:
    token = mint(rsa_key(), tenant=None)
    _refused(_authenticator(pem_file), token, "no 'tenant' claim")
    assert _caller(_authenticator(pem_file, default_tenant="default"), token).tenant == "default"
    # A token that names its tenant keeps it even with a default.
    named = mint(rsa_key(), tenant="acme")
    assert _caller(_authenticator(pem_file, default_tenant="default"), named).tenant == "acme"


@pytest.mark.parametrize("tenant", ["", 7, ["acme"], "a/b", "acme corp", "x" * 64, "-acme"])
def test_a_malformed_tenant_is_refused(pem_file: Path, tenant: object) -> None:
    _refused(_authenticator(pem_file, default_tenant="default"), mint(rsa_key(), tenant=tenant))


# -- time: exp, nbf, iat and the leeway -----------------------------------------------------


def test_exp_is_required(pem_file: Path) -> None:
    _refused(_authenticator(pem_file), mint(rsa_key(), exp=None), "no 'exp' claim")


def test_expiry_is_enforced_with_the_leeway(pem_file: Path) -> None:
    now = int(time.time())
    authenticator = _authenticator(pem_file, leeway_seconds=30)
    assert _caller(authenticator, mint(rsa_key(), exp=now - 20)).subject == "alice"
    token = mint(rsa_key(), exp=now - 40)
    with pytest.raises(Unauthenticated) as caught:
        authenticator.authenticate(Credentials(token))
    assert caught.value.reason is Reason.CREDENTIALS_EXPIRED
    assert "expired" in caught.value.message
    with pytest.raises(Unauthenticated):
        _authenticator(pem_file, leeway_seconds=0).authenticate(
            Credentials(mint(rsa_key(), exp=now - 2))
        )


def test_not_before_and_issued_at_are_enforced_with_the_leeway(pem_file: Path) -> None:
    now = int(time.time())
    authenticator = _authenticator(pem_file, leeway_seconds=30)
    assert _caller(authenticator, mint(rsa_key(), nbf=now + 20)).subject == "alice"
    _refused(authenticator, mint(rsa_key(), nbf=now + 60), "not valid yet")
    _refused(authenticator, mint(rsa_key(), iat=now + 60), "not valid yet")


def test_the_leeway_is_bounded(pem_file: Path) -> None:
    with pytest.raises(ValueError, match="leeway"):
        _authenticator(pem_file, leeway_seconds=3600)


# -- issuer and audience ---------------------------------------------------------------------


def test_issuer_and_audience_are_required_with_public_keys(pem_file: Path) -> None:
    with pytest.raises(ValueError, match="--jwt-issuer and --jwt-audience"):
        JwtAuthenticator(keys=FileKeys(pem_file), issuer=ISSUER)
    with pytest.raises(ValueError, match="--jwt-issuer and --jwt-audience"):
        JwtAuthenticator(keys=FileKeys(pem_file), audience=AUDIENCE)


def test_issuer_is_enforced(pem_file: Path) -> None:
    authenticator = _authenticator(pem_file)
    _refused(authenticator, mint(rsa_key(), iss="https://evil.example"), "issuer")
    _refused(authenticator, mint(rsa_key(), iss=None), "no 'iss' claim")


def test_audience_is_enforced(pem_file: Path) -> None:
    authenticator = _authenticator(pem_file)
    assert _caller(authenticator, mint(rsa_key(), aud=["other", AUDIENCE])).subject == "alice"
    _refused(authenticator, mint(rsa_key(), aud="another-service"), "audience")
    _refused(authenticator, mint(rsa_key(), aud=["a", "b"]), "audience")
    _refused(authenticator, mint(rsa_key(), aud=None), "no 'aud' claim")


# -- signatures and algorithms ---------------------------------------------------------------


def test_a_signature_by_an_unknown_key_is_invalid(pem_file: Path) -> None:
    error = _refused(_authenticator(pem_file), mint(rsa_key(7)), "signature does not verify")
    assert "Signature verification failed" not in error.message  # PyJWT's text stays inside


def test_a_tampered_payload_is_invalid(pem_file: Path) -> None:
    header, _, signature = mint(rsa_key()).split(".")
    payload = base64.urlsafe_b64encode(json.dumps(_claims_of(mint(rsa_key(), sub="root"))).encode())
    forged = f"{header}.{payload.rstrip(b'=').decode()}.{signature}"
    _refused(_authenticator(pem_file), forged, "signature does not verify")


def _claims_of(token: str) -> dict[str, Any]:
    return dict(jwt.decode(token, options={"verify_signature": False}))


def test_alg_none_is_refused(pem_file: Path) -> None:
    payload = _claims_of(mint(rsa_key()))
    for alg in ("none", "None", "NONE"):
        _refused(_authenticator(pem_file), _forge({"alg": alg, "typ": "JWT"}, payload), "algorithm")
    hs = JwtAuthenticator(hs256_secret=SECRET)
    _refused(hs, _forge({"alg": "none"}, payload), "algorithm")


def test_a_public_key_is_never_an_hmac_secret(pem_file: Path) -> None:
    """The classic confusion: HS256 'signed' with the RSA public key as the secret."""
    import hashlib
    import hmac

    payload = _claims_of(mint(rsa_key()))
    unsigned = _forge({"alg": "HS256", "typ": "JWT"}, payload).rsplit(".", 1)[0]
    for secret in (public_pem(rsa_key()).encode(), pem_file.read_bytes()):
        mac = hmac.new(secret, unsigned.encode(), hashlib.sha256).digest()
        token = unsigned + "." + base64.urlsafe_b64encode(mac).rstrip(b"=").decode()
        _refused(_authenticator(pem_file), token, "algorithm 'HS256' is not accepted")


def test_a_key_verifies_only_its_own_algorithm(pem_file: Path) -> None:
    # An RSA signature under an ES256 header (and the reverse) never verifies.
    rs = mint(rsa_key()).split(".")
    es = mint(ec_key()).split(".")
    swapped = [
        _forge({"alg": "ES256"}, _claims_of(mint(rsa_key()))).rsplit(".", 1)[0] + "." + rs[2],
        _forge({"alg": "RS256"}, _claims_of(mint(ec_key()))).rsplit(".", 1)[0] + "." + es[2],
    ]
    for token in swapped:
        _refused(_authenticator(pem_file), token)
    for alg in ("RS384", "PS256", "ES512", "EdDSA"):
        _refused(_authenticator(pem_file), _forge({"alg": alg}, _claims_of(mint(rsa_key()))))


def test_an_algorithm_without_a_configured_key_is_refused(tmp_path: Path) -> None:
    only_rsa = write(tmp_path / "rsa.pem", public_pem(rsa_key()))
    _refused(_authenticator(only_rsa), mint(ec_key()), "key this server does not know")


# -- HS256 for development -------------------------------------------------------------------


def test_hs256_with_a_secret_accepts_only_hs256() -> None:
    authenticator = JwtAuthenticator(hs256_secret=SECRET)
    assert _caller(authenticator, mint(SECRET, iss=None, aud=None)).subject == "alice"
    # Without a configured issuer or audience, a token's iss and aud are not checked.
    assert _caller(authenticator, mint(SECRET)).tenant == "acme"
    _refused(authenticator, mint(b"another secret of at least 32 bytes!!"), "signature")
    _refused(authenticator, mint(rsa_key()), "algorithm 'RS256' is not accepted (only HS256)")
    _refused(authenticator, mint(SECRET * 2, algorithm="HS512"), "only HS256")


def test_hs256_enforces_issuer_and_audience_when_configured() -> None:
    authenticator = JwtAuthenticator(hs256_secret=SECRET, issuer=ISSUER, audience=AUDIENCE)
    assert _caller(authenticator, mint(SECRET)).subject == "alice"
    _refused(authenticator, mint(SECRET, aud="other"), "audience")
    _refused(authenticator, mint(SECRET, iss=None), "no 'iss' claim")


def test_hs256_secrets_are_long_and_exclusive(pem_file: Path) -> None:
    with pytest.raises(ValueError, match="at least 32 bytes"):
        JwtAuthenticator(hs256_secret=b"short")
    with pytest.raises(ValueError, match="either"):
        JwtAuthenticator(
            keys=FileKeys(pem_file), hs256_secret=SECRET, issuer=ISSUER, audience=AUDIENCE
        )
    with pytest.raises(ValueError, match="either"):
        JwtAuthenticator()


def test_tokens_and_secrets_stay_out_of_the_log(
    pem_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    hs = JwtAuthenticator(hs256_secret=SECRET)
    tokens = [mint(SECRET, exp=int(time.time()) - 600), mint(SECRET, aud=None, sub=None)]
    tokens += [mint(b"wrong secret, but long enough for HS256")]
    with caplog.at_level(logging.DEBUG):
        for token in tokens:
            with pytest.raises(Unauthenticated):
                hs.authenticate(Credentials(token))
        _refused(_authenticator(pem_file), mint(rsa_key(), aud="other"))
    assert "JWT refused" in caplog.text
    assert SECRET.decode() not in caplog.text
    for token in tokens:
        assert token not in caplog.text and token.split(".")[2] not in caplog.text
