"""Where JWT verification keys come from: PEM and JWKS files (re-read when they change), an
https JWKS URL (refreshed on an unknown kid, at most once per interval, kept through outages),
and the start-up errors of a configuration that cannot work."""

from __future__ import annotations

import json
import logging
import ssl
import uuid
from dataclasses import replace
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from modelregistry_server.__main__ import main
from modelregistry_server.api.authentication import Credentials
from modelregistry_server.api.jwt_authenticator import JwtAuthenticator
from modelregistry_server.api.jwt_keys import FileKeys, JwksUrlKeys, parse_key_file
from modelregistry_server.config import Config
from modelregistry_server.domain.errors import Unauthenticated
from modelregistry_server.security import StartRefused, build_authentication, check_exposure
from tests.support.jwt_tokens import (
    AUDIENCE,
    ISSUER,
    CertificateAuthority,
    JwksServer,
    ec_key,
    jwk,
    jwks,
    mint,
    private_pem,
    public_pem,
    rsa_key,
    serving_jwks,
    write,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _verifies(authenticator: JwtAuthenticator, token: str) -> bool:
    try:
        return authenticator.authenticate(Credentials(token)) is not None
    except Unauthenticated:
        return False


def _authenticator(keys: FileKeys | JwksUrlKeys) -> JwtAuthenticator:
    return JwtAuthenticator(keys=keys, issuer=ISSUER, audience=AUDIENCE)


# -- parsing ---------------------------------------------------------------------------------


def test_pem_public_keys_and_certificates(tmp_path: Path) -> None:
    authority = CertificateAuthority(tmp_path)
    cert = authority.ca_file.read_text()  # an EC P-256 certificate: its key verifies ES256
    keys = parse_key_file((public_pem(rsa_key()) + cert).encode(), "test")
    assert [k.algorithm for k in keys] == ["RS256", "ES256"]
    assert isinstance(keys[0].key, rsa.RSAPublicKey)
    certified = x509.load_pem_x509_certificate(cert.encode()).public_key()
    assert isinstance(certified, ec.EllipticCurvePublicKey)
    assert keys[1].key == certified


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "no PEM public key"),
        (b"hello", "no PEM public key"),
        (b"\xff\xfe", "not UTF-8"),
        (b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", "PEM block 1"),
        (private_pem(rsa_key()).encode(), "private key"),
        (b"{", "not valid JSON"),
        (b'{"keys": "none"}', "not a JWK Set"),
        (b'{"keys": []}', "no usable RS256 or ES256"),
        (json.dumps(jwks({"kty": "oct", "k": "c2VjcmV0", "kid": "h"})).encode(), "no usable"),
        (json.dumps(jwks(jwk(rsa_key(), "enc", use="enc"))).encode(), "no usable"),
    ],
)
def test_bad_key_files_are_clear_errors(content: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_key_file(content, "JWT key file k.pem")


def test_weak_or_unsupported_keys_are_refused() -> None:
    spki = (serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    small = rsa.generate_private_key(65537, 1024).public_key().public_bytes(*spki)
    with pytest.raises(ValueError, match="1024 bits"):
        parse_key_file(small, "k")
    p384 = ec.generate_private_key(ec.SECP384R1()).public_key().public_bytes(*spki)
    with pytest.raises(ValueError, match="secp384r1"):
        parse_key_file(p384, "k")


def test_a_jwks_skips_keys_it_cannot_use(caplog: pytest.LogCaptureFixture) -> None:
    document = jwks(
        jwk(rsa_key(), "good"),
        jwk(rsa_key(1), "encryption", use="enc"),
        jwk(rsa_key(2), "other-alg", alg="RS512"),
        {"kty": "oct", "k": "c2VjcmV0c2VjcmV0", "kid": "hmac"},
        {**jwk(ec_key(), "private"), "d": "AAAA"},
        {"kty": "RSA", "kid": "broken", "n": "!!", "e": "AQAB"},
    )
    with caplog.at_level(logging.WARNING):
        keys = parse_key_file(json.dumps(document).encode(), "jwks.json")
    assert [(k.kid, k.algorithm) for k in keys] == [("good", "RS256")]
    for kid in ("other-alg", "hmac", "private", "broken"):
        assert kid in caplog.text


# -- files -----------------------------------------------------------------------------------


def test_a_jwks_file_rotates_by_kid(tmp_path: Path) -> None:
    path = write(tmp_path / "jwks.json", json.dumps(jwks(jwk(rsa_key(0), "k1"))))
    authenticator = _authenticator(FileKeys(path))
    old, new = mint(rsa_key(0), kid="k1"), mint(rsa_key(1), kid="k2")
    assert _verifies(authenticator, old) and not _verifies(authenticator, new)
    # A kid the set names only verifies with that key, not with another one of the set.
    assert not _verifies(authenticator, mint(rsa_key(1), kid="k1"))

    write(path, json.dumps(jwks(jwk(rsa_key(0), "k1"), jwk(rsa_key(1), "k2"))))
    assert _verifies(authenticator, old) and _verifies(authenticator, new)
    write(path, json.dumps(jwks(jwk(rsa_key(1), "k2"))))
    assert not _verifies(authenticator, old) and _verifies(authenticator, new)


def test_a_broken_rewrite_keeps_the_keys_read_before(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = write(tmp_path / "keys.pem", public_pem(rsa_key()))
    authenticator = _authenticator(FileKeys(path))
    with caplog.at_level(logging.WARNING):
        write(path, "-----BEGIN PUBLIC KEY-----\ntruncat")
        assert _verifies(authenticator, mint(rsa_key()))
    assert "keeping the keys read before" in caplog.text
    path.unlink()
    assert _verifies(authenticator, mint(rsa_key()))


def test_an_unreadable_key_file_is_a_start_up_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot read the JWT key file"):
        FileKeys(tmp_path / "missing.pem")


# -- an https JWKS URL -----------------------------------------------------------------------


@pytest.fixture
def authority(tmp_path: Path) -> CertificateAuthority:
    return CertificateAuthority(tmp_path)


def _url_keys(
    server: JwksServer, authority: CertificateAuthority, clock: Clock, **options: float
) -> JwksUrlKeys:
    context = ssl.create_default_context(cafile=str(authority.ca_file))
    return JwksUrlKeys(server.url, ssl_context=context, clock=clock, **options)


def test_a_jwks_url_is_fetched_once_and_rotates_on_an_unknown_kid(
    authority: CertificateAuthority,
) -> None:
    clock = Clock()
    with serving_jwks(authority, jwks(jwk(rsa_key(0), "k1"))) as server:
        keys = _url_keys(server, authority, clock)
        authenticator = _authenticator(keys)
        assert server.requests == 1  # at start-up
        for _ in range(5):
            assert _verifies(authenticator, mint(rsa_key(0), kid="k1"))
        assert server.requests == 1  # known kid: from the cache

        server.document = jwks(jwk(rsa_key(0), "k1"), jwk(ec_key(), "k2"))
        clock.now += 11  # past the minimum interval since the start-up fetch
        assert _verifies(authenticator, mint(ec_key(), kid="k2"))
        assert server.requests == 2

        server.document = jwks(jwk(ec_key(), "k2"))  # k1 withdrawn
        clock.now += 301  # the cached set is stale: refreshed on the next token
        assert not _verifies(authenticator, mint(rsa_key(0), kid="k1"))
        assert _verifies(authenticator, mint(ec_key(), kid="k2"))
        assert server.requests == 3


def test_unknown_kids_fetch_at_most_once_per_interval(authority: CertificateAuthority) -> None:
    clock = Clock()
    with serving_jwks(authority, jwks(jwk(rsa_key(0), "k1"))) as server:
        authenticator = _authenticator(_url_keys(server, authority, clock))
        clock.now += 60
        for _ in range(100):
            assert not _verifies(authenticator, mint(rsa_key(1), kid=uuid.uuid4().hex))
            clock.now += 0.05  # 100 tokens in 5 s
        assert server.requests == 2  # the start-up fetch and one refresh
        clock.now += 10
        assert not _verifies(authenticator, mint(rsa_key(1), kid="again"))
        assert server.requests == 3
        assert _verifies(authenticator, mint(rsa_key(0), kid="k1"))
        assert server.requests == 3


def test_an_unreachable_jwks_url_keeps_the_last_keys(
    authority: CertificateAuthority, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    with serving_jwks(authority, jwks(jwk(rsa_key(0), "k1"))) as server:
        keys = _url_keys(server, authority, clock)
    authenticator = _authenticator(keys)  # the server is gone now
    clock.now += 3600
    with caplog.at_level(logging.WARNING):
        assert _verifies(authenticator, mint(rsa_key(0), kid="k1"))
    assert "keeping the 1 keys fetched before" in caplog.text
    assert keys.fetches == 2


def test_a_jwks_url_served_by_an_untrusted_certificate_gives_no_keys(
    authority: CertificateAuthority, caplog: pytest.LogCaptureFixture
) -> None:
    with serving_jwks(authority, jwks(jwk(rsa_key(0), "k1"))) as server:
        with caplog.at_level(logging.WARNING):
            keys = JwksUrlKeys(server.url, min_refresh_interval=0)  # the system's CAs only
        assert "CERTIFICATE_VERIFY_FAILED" in caplog.text or "certificate" in caplog.text
        assert "no keys yet" in caplog.text
        assert not _verifies(_authenticator(keys), mint(rsa_key(0), kid="k1"))
        assert server.requests == 0  # the handshake failed before any request


def test_jwks_urls_must_be_https() -> None:
    for url in ("http://127.0.0.1/jwks.json", "file:///etc/passwd", "https:///x"):
        with pytest.raises(ValueError, match="https"):
            JwksUrlKeys(url)


# -- configuration ---------------------------------------------------------------------------


def test_build_authentication_from_config_with_a_jwks_url_and_its_ca(
    authority: CertificateAuthority,
) -> None:
    with serving_jwks(authority, jwks(jwk(rsa_key(0), "k1"))) as server:
        config = Config(
            jwt_public_keys=server.url,
            jwt_jwks_ca_file=str(authority.ca_file),
            jwt_issuer=ISSUER,
            jwt_audience=AUDIENCE,
        )
        authentication = build_authentication(config)
        assert authentication.enabled
        caller = authentication.authenticate(Credentials(mint(rsa_key(0), kid="k1")))
        assert caller.actor == "user:alice"


def test_build_authentication_from_config_with_an_hs256_secret(tmp_path: Path) -> None:
    secret = tmp_path / "jwt.secret"
    secret.write_bytes(b"0123456789abcdef0123456789abcdef\n")
    authentication = build_authentication(Config(jwt_hs256_secret_file=str(secret)))
    caller = authentication.authenticate(Credentials(mint(b"0123456789abcdef0123456789abcdef")))
    assert caller.subject == "alice"
    assert not build_authentication(Config()).enabled


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"jwt_public_keys": "{pem}"}, "--jwt-issuer and --jwt-audience"),
        ({"jwt_public_keys": "{pem}", "jwt_hs256_secret_file": "{secret}"}, "exclude each other"),
        ({"jwt_issuer": ISSUER, "jwt_audience": AUDIENCE}, "need --jwt-public-keys"),
        ({"jwt_hs256_secret_file": "{dir}/absent"}, "cannot read --jwt-hs256-secret-file"),
        ({"jwt_hs256_secret_file": "{short}"}, "at least 32 bytes"),
        ({"jwt_public_keys": "{dir}/absent.pem", "jwt_issuer": "i", "jwt_audience": "a"},
         "cannot read the JWT key file"),
        ({"jwt_public_keys": "{secret}", "jwt_issuer": "i", "jwt_audience": "a"},
         "no PEM public key"),
        ({"jwt_public_keys": "{pem}", "jwt_jwks_ca_file": "{pem}", "jwt_issuer": "i",
          "jwt_audience": "a"}, "applies only to an https JWKS URL"),
        ({"jwt_public_keys": "https://127.0.0.1:1/jwks", "jwt_jwks_ca_file": "{dir}/nope",
          "jwt_issuer": "i", "jwt_audience": "a"}, "cannot load the JWKS CA file"),
        ({"jwt_hs256_secret_file": "{secret}", "jwt_default_tenant": "a b"}, "not a tenant"),
    ],
)  # fmt: skip
def test_configurations_that_cannot_work_are_start_up_errors(
    tmp_path: Path, settings: dict[str, str], message: str
) -> None:
    files = {
        "pem": write(tmp_path / "keys.pem", public_pem(rsa_key())),
        "secret": write(tmp_path / "secret", "s" * 40),
        "short": write(tmp_path / "short", "s" * 31 + "\n"),
        "dir": tmp_path,
    }
    config = replace(Config(), **{k: v.format(**files) for k, v in settings.items()})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=message):
        build_authentication(config)


def test_a_bad_key_file_stops_the_server_with_exit_status_2(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bad = write(tmp_path / "keys.pem", private_pem(rsa_key()))
    argv = [
        "--listen", "127.0.0.1:0",
        "--database-url", f"sqlite:///{tmp_path / 'r.db'}",
        "--blob-url", f"file://{tmp_path / 'blobs'}",
        "--jwt-public-keys", str(bad), "--jwt-issuer", ISSUER, "--jwt-audience", AUDIENCE,
    ]  # fmt: skip
    with caplog.at_level(logging.ERROR):
        assert main(argv) == 2
    assert "private key" in caplog.text
    assert "BEGIN" not in caplog.text  # no key material in the log


def test_jwt_counts_as_an_authenticator_for_exposure(tmp_path: Path) -> None:
    secret = write(tmp_path / "secret", "s" * 40)
    config = Config(listen="0.0.0.0:50051", jwt_hs256_secret_file=str(secret))
    check_exposure(config, build_authentication(config))  # no StartRefused
    with pytest.raises(StartRefused, match="contradicts"):
        build_authentication(replace(config, auth="none"))
