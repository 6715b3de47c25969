"""When API keys are accepted (``--api-keys``, or whenever another authenticator runs), that
their authenticator claims only ``mrk_`` tokens, and that before the database is reached an
API key is UNAVAILABLE rather than admitted."""

from __future__ import annotations

import pytest

from modelregistry_server.api.api_key_authenticator import ApiKeyAuthenticator
from modelregistry_server.api.authentication import Credentials
from modelregistry_server.config import Config, load_config
from modelregistry_server.domain.api_key_tokens import (
    credential,
    new_key_id,
    new_secret,
    parse_credential,
    secret_hash,
    secret_matches,
)
from modelregistry_server.domain.errors import Unavailable
from modelregistry_server.domain.identity import Permission
from modelregistry_server.security import StartRefused, build_authentication


def test_api_keys_flag_switches_authentication_on() -> None:
    keys = ApiKeyAuthenticator()
    assert not build_authentication(Config(), keys).enabled
    assert build_authentication(Config(api_keys=True), keys).enabled
    assert not build_authentication(Config(api_keys=True)).enabled  # nothing to verify with


def test_the_flag_and_its_environment_variable() -> None:
    assert load_config([], {}).api_keys is False
    assert load_config(["--api-keys"], {}).api_keys is True
    assert load_config([], {"MODELREGISTRY_API_KEYS": "true"}).api_keys is True
    assert load_config(["--no-api-keys"], {"MODELREGISTRY_API_KEYS": "1"}).api_keys is False
    assert load_config([], {"MODELREGISTRY_API_KEYS": "off"}).api_keys is False
    with pytest.raises(SystemExit):
        load_config([], {"MODELREGISTRY_API_KEYS": "maybe"})


def test_only_mrk_tokens_are_claimed_and_wait_for_the_database() -> None:
    keys = ApiKeyAuthenticator()
    assert keys.authenticate(Credentials()) is None
    assert keys.authenticate(Credentials("eyJhbGciOi.a.b")) is None  # a JWT: someone else's
    with pytest.raises(Unavailable):
        keys.authenticate(Credentials(credential(new_key_id(), new_secret())))


def test_the_credential_format() -> None:
    key_id, secret = new_key_id(), new_secret()
    token = credential(key_id, secret)
    assert len(key_id) == 16 and len(secret) == 52  # 80 and 256 random bits
    assert parse_credential(token) == (key_id, secret)
    for bad in ("mrk_", token + "a", token.upper(), token.replace("mrk_", "mrx_"), f"{token} "):
        assert parse_credential(bad) is None, bad
    stored = secret_hash(key_id, secret)
    assert secret not in stored and secret_matches(stored, key_id, secret)
    assert not secret_matches(stored, new_key_id(), secret)  # bound to its key id
    assert not secret_matches(stored, key_id, new_secret())


def test_permission_values_are_the_scopes_keys_grant() -> None:
    assert {p.value for p in Permission} >= {"registry.read", "registry.admin"}


def test_auth_none_with_api_keys_is_refused() -> None:
    with pytest.raises(StartRefused, match="contradicts"):
        build_authentication(Config(auth="none", api_keys=True), ApiKeyAuthenticator())
