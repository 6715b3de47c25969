"""The identities file, the certificate authenticator on a gRPC auth context, loading TLS files,
and the TLS settings that refuse to start."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from modelregistry_server.api.authentication import Credentials
from modelregistry_server.api.certificates import CertificateAuthenticator, load_identities
from modelregistry_server.api.tls import CertificateReloader, TlsFiles, load_certificate
from modelregistry_server.config import Config, load_config
from modelregistry_server.domain.errors import Unauthenticated
from modelregistry_server.domain.identity import AuthMethod, Permission
from modelregistry_server.security import StartRefused, build_authentication, tls_files
from tests.support.certificates import Authority, write_atomically

TRAINER = """
[[identity]]
san = "spiffe://example.org/trainer"
subject = "trainer"
tenant = "ml"
scopes = ["registry.read", "registry.create"]
groups = ["trainers"]
"""


def _peer(*sans: str, security: bytes = b"ssl") -> dict[str, list[bytes]]:
    return {
        "transport_security_type": [security],
        "x509_subject_alternative_name": [s.encode() for s in sans],
    }


@pytest.fixture
def identities_file(tmp_path: Path) -> Path:
    path = tmp_path / "identities.toml"
    path.write_text(TRAINER)
    return path


def test_a_listed_san_becomes_a_certificate_caller(identities_file: Path) -> None:
    authenticator = CertificateAuthenticator(identities_file)
    caller = authenticator.authenticate(
        Credentials(None, _peer("x.example.org", "spiffe://example.org/trainer"))
    )
    assert caller is not None
    assert (caller.tenant, caller.subject, caller.method) == (
        "ml",
        "trainer",
        AuthMethod.CERTIFICATE,
    )
    assert caller.scopes == {Permission.READ, Permission.CREATE}
    assert caller.actor == "user:trainer"
    assert caller.members == {"user:trainer", "group:trainers"}


def test_what_a_certificate_does_not_prove(identities_file: Path) -> None:
    authenticator = CertificateAuthenticator(identities_file)
    listed = "spiffe://example.org/trainer"
    assert authenticator.authenticate(Credentials(None, _peer("other.example.org"))) is None
    assert authenticator.authenticate(Credentials("a-token", _peer(listed))) is None
    assert (
        authenticator.authenticate(Credentials(None, _peer(listed, security=b"insecure"))) is None
    )
    assert authenticator.authenticate(Credentials(None, {})) is None


def test_the_file_is_reloaded_and_a_broken_change_keeps_the_old(
    identities_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    authenticator = CertificateAuthenticator(identities_file)
    peer = Credentials(None, _peer("spiffe://example.org/trainer"))
    write_atomically(
        identities_file, TRAINER.replace('tenant = "ml"', 'tenant = "vision"').encode()
    )
    caller = authenticator.authenticate(peer)
    assert caller is not None and caller.tenant == "vision"
    write_atomically(identities_file, b"[[identity]]\nsan = ")  # half-written
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            caller = authenticator.authenticate(peer)
            assert caller is not None and caller.tenant == "vision"
    assert len([r for r in caplog.records if "keeping the 1 identities" in r.getMessage()]) == 1
    identities_file.unlink()  # mid-rotation
    caller = authenticator.authenticate(peer)
    assert caller is not None and caller.tenant == "vision"


def test_two_identities_in_one_certificate_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "two.toml"
    path.write_text(TRAINER + TRAINER.replace("trainer", "auditor"))
    authenticator = CertificateAuthenticator(path)
    peer = _peer("spiffe://example.org/trainer", "spiffe://example.org/auditor")
    with pytest.raises(Unauthenticated):
        authenticator.authenticate(Credentials(None, peer))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[[identity]\n", "not valid TOML"),
        ('[[identity]]\nsan = "a"\nsubject = "s"\n', "'scopes' is required"),
        ('[[identity]]\nsan = "a"\nsubject = "s"\nscopes = ["registry.write"]\n', "unknown scopes"),
        ('[[identity]]\nsan = "a"\nscopes = []\n', "'subject' must be"),
        ('[[identity]]\nsan = "a"\nsubject = "s"\nscopes = []\nrole = "x"\n', "unknown keys"),
        ('[[identity]]\nsan = "a"\nsubject = "s"\nscopes = []\ngroups = "g"\n', "'groups' must"),
        ('[[identity]]\nsan = "a"\nsubject = "s"\nscopes = []\ntenant = ""\n', "'tenant' must"),
        ("[identities]\nx = 1\n", "unknown top-level keys"),
        (TRAINER + TRAINER, "listed twice"),
    ],
)
def test_a_malformed_identities_file_names_the_problem(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        load_identities(path)


def test_tls_files_that_do_not_make_a_configuration(tmp_path: Path) -> None:
    ca = Authority()
    cert, key = ca.server().write(tmp_path, "server")
    _, other_key = ca.server().write(tmp_path / "other", "server")
    loaded = load_certificate(TlsFiles(cert, key))
    assert loaded.serial > 0
    with pytest.raises(ValueError, match="does not belong"):
        load_certificate(TlsFiles(cert, other_key))
    with pytest.raises(ValueError, match="no PEM certificate"):
        load_certificate(TlsFiles(key, key))
    with pytest.raises(ValueError, match="private key"):
        load_certificate(TlsFiles(cert, cert))
    with pytest.raises(ValueError, match="no PEM certificate"):
        load_certificate(TlsFiles(cert, key, client_ca=key))
    with pytest.raises(OSError):
        CertificateReloader(TlsFiles(cert, tmp_path / "missing.key"))


def test_tls_settings_that_refuse_to_start(tmp_path: Path, identities_file: Path) -> None:
    ids = str(identities_file)
    for config in (
        Config(tls_cert="c.pem"),
        Config(tls_key="k.pem"),
        Config(tls_client_ca="ca.pem"),
        Config(tls_identities_file=ids),
        Config(tls_cert="c.pem", tls_key="k.pem", tls_identities_file=ids),
    ):
        with pytest.raises(StartRefused):
            tls_files(config)
    with pytest.raises(StartRefused, match="--auth none contradicts"):
        build_authentication(Config(auth="none", tls_identities_file=ids))
    assert build_authentication(Config(tls_identities_file=ids)).enabled
    assert not build_authentication(Config()).enabled


def test_choices_are_checked_for_flags_and_environment() -> None:
    assert load_config(["--reflection", "off"], {}).reflection == "off"
    assert load_config([], {"MODELREGISTRY_AUTH": "none"}).auth == "none"
    with pytest.raises(SystemExit):
        load_config(["--reflection", "closed"], {})
    with pytest.raises(SystemExit):
        load_config([], {"MODELREGISTRY_AUTH": "jwt-maybe"})
