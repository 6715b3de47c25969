"""Webhook secrets, signatures, sealing at rest, URL rules and the retry schedule."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from modelregistry_server.domain.errors import InvalidArgument
from modelregistry_server.domain.webhook_dispatch import DispatchSettings
from modelregistry_server.domain.webhook_rules import check_url, shown_url
from modelregistry_server.domain.webhook_signing import (
    REPLAY_WINDOW_S,
    SecretBox,
    binding,
    new_secret,
    signature,
    verify,
)


def test_the_signature_is_hmac_sha256_over_timestamp_dot_body() -> None:
    body = b'{"event":{}}'
    expected = hmac.new(b"whsec_k", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert signature("whsec_k", 1700000000, body) == f"t=1700000000,v1={expected}"


def test_verify_enforces_the_secret_the_body_and_the_window() -> None:
    header = signature("whsec_k", 1000, b"body")
    assert verify("whsec_k", header, b"body", now=1000 + REPLAY_WINDOW_S)
    assert not verify("whsec_k", header, b"body", now=1001 + REPLAY_WINDOW_S)  # replayed late
    assert not verify("whsec_x", header, b"body", now=1000)
    assert not verify("whsec_k", header, b"bodY", now=1000)
    assert not verify("whsec_k", "v1=00", b"body", now=1000)


def test_secrets_are_fresh_and_sealed_bound_to_their_webhook() -> None:
    one, two = new_secret(), new_secret()
    assert one != two and one.startswith("whsec_") and len(one) > 40
    box = SecretBox(bytes(range(32)))
    sealed = box.seal(one, binding("acme", "h"))
    assert one not in sealed and one[6:] not in sealed
    assert box.open(sealed, binding("acme", "h")) == one
    assert box.open(sealed, binding("acme", "other")) is None  # moved to another row
    assert box.open(sealed, binding("globex", "h")) is None
    assert (
        box.open(sealed[:-2] + ("00" if sealed[-2:] != "00" else "11"), "acme/webhooks/h") is None
    )
    assert SecretBox(bytes(32)).open(sealed, binding("acme", "h")) is None  # another key


@pytest.mark.parametrize(
    "url",
    [
        "https://hooks.example/x?token=1",
        "https://10.0.0.1:8443/x",
        "http://127.0.0.1:9000/x",
        "http://localhost/x",
        "http://[::1]:8080/",
        "http://127.8.9.10/",
    ],
)
def test_good_urls(url: str) -> None:
    assert check_url(url, "webhook.url") == url


@pytest.mark.parametrize(
    "url",
    [
        "",
        "http://hooks.example/x",
        "http://10.0.0.1/x",
        "http://127.0.0.1.nip.io/x",
        "ftp://127.0.0.1/",
        "https:///x",
        "https://a:b@hooks.example/",
        "https://hooks.example/#f",
        "https://hooks.example:99999/",
        "https://hooks.example/ x",
        "https://hooks.example/" + "x" * 2000,
    ],
)
def test_bad_urls_name_the_field(url: str) -> None:
    with pytest.raises(InvalidArgument) as bad:
        check_url(url, "webhook.url")
    assert bad.value.field_violations[0].field == "webhook.url"


def test_the_event_log_shows_no_query() -> None:
    assert shown_url("https://h.example:8443/p?token=secret") == "https://h.example:8443/p"


def test_backoff_doubles_within_its_upper_half_and_is_capped() -> None:
    s = DispatchSettings(backoff_s=1.0, max_backoff_s=10.0)
    assert [s.delay(n, lambda: 0.0) for n in (1, 2, 3, 4)] == [0.5, 1.0, 2.0, 4.0]
    assert [s.delay(n, lambda: 1.0) for n in (1, 2, 3, 4, 5, 9)] == [1, 2, 4, 8, 10, 10]
