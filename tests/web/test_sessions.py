"""Signing in and out, the session cookie, CSRF on every POST, error pages and headers."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import pytest

from modelregistry_server.app import RegistryServer
from modelregistry_server.domain.identity import Caller, Permission
from modelregistry_server.web import sessions
from tests.web.conftest import WebClient


def _cookie_header(response: httpx.Response) -> str:
    found = [v for k, v in response.headers.multi_items() if k == "set-cookie"]
    assert len(found) == 1, found
    return found[0]


def test_signed_out_pages_redirect_to_sign_in_and_back(
    people: Callable[[str], WebClient],
) -> None:
    browser = people("stranger")
    page = browser.get("/models?q=fr")
    assert page.status_code == 303
    target = urlsplit(page.headers["location"])
    assert target.path == "/sign-in"
    assert parse_qs(target.query) == {"next": ["/models?q=fr"]}
    form = browser.get(page.headers["location"])
    assert form.status_code == 200
    assert 'name="next" value="/models?q=fr"' in form.text
    signed = browser.post("/sign-in", {"token": "alice", "next": "/models?q=fr"})
    assert (signed.status_code, signed.headers["location"]) == (303, "/models?q=fr")
    home = browser.get("/models?q=fr")
    assert home.status_code == 200 and "Signed in as <strong>user:alice</strong>" in home.text


def test_a_token_that_does_not_verify_is_refused_on_the_page(
    people: Callable[[str], WebClient],
) -> None:
    browser = people("stranger")
    for token in ("mallory", ""):
        answer = browser.post("/sign-in", {"token": token, "next": "/"})
        assert answer.status_code == 401
        assert 'role="alert"' in answer.text
        assert browser.get("/models").status_code == 303  # still signed out


def test_next_never_leaves_the_site(people: Callable[[str], WebClient]) -> None:
    browser = people("stranger")
    for target in ("https://evil.example/", "//evil.example/x", "/\\evil", "models"):
        answer = browser.post("/sign-in", {"token": "alice", "next": target})
        assert (answer.status_code, answer.headers["location"]) == (303, "/"), target


def test_the_session_cookie_is_httponly_samesite_and_sealed(
    people: Callable[[str], WebClient],
) -> None:
    browser = people("stranger")
    answer = browser.post("/sign-in", {"token": "alice", "next": "/"})
    cookie = _cookie_header(answer).lower()
    assert cookie.startswith(f"{sessions.COOKIE}=")
    assert "httponly" in cookie and "samesite=lax" in cookie and "path=/" in cookie
    assert "secure" not in cookie.replace("samesite", "")  # plain HTTP here
    value = browser.http.cookies[sessions.COOKIE]
    assert "alice" not in value  # encrypted, not merely signed
    # An altered cookie is no session at all: signed out again.
    altered = value[:-4] + ("AAAA" if value[-4:] != "AAAA" else "BBBB")
    browser.http.cookies.set(sessions.COOKIE, altered)
    assert browser.get("/models").status_code == 303


def test_sign_out_ends_the_session(people: Callable[[str], WebClient]) -> None:
    alice = people("alice")
    assert alice.get("/models").status_code == 200
    out = alice.post("/sign-out")
    assert (out.status_code, out.headers["location"]) == (303, "/sign-in")
    assert alice.get("/models").status_code == 303


def test_every_post_needs_the_session_csrf_token(people: Callable[[str], WebClient]) -> None:
    alice = people("alice")
    for csrf in (None, "", "wrong-token"):
        refused = alice.post("/sign-out", csrf=csrf)
        assert refused.status_code == 403, csrf
        assert "did not come from this site" in refused.text
        assert alice.get("/models").status_code == 200  # still signed in
    # Another browser's token is not this session's.
    bob = people("bob")
    assert alice.post("/sign-out", csrf=bob.csrf()).status_code == 403
    # Sign-in is protected too (login CSRF).
    stranger = people("stranger")
    assert stranger.post("/sign-in", {"token": "alice"}, csrf=None).status_code == 403
    assert stranger.post("/sign-in", {"token": "alice"}, csrf="x").status_code == 403
    assert stranger.get("/models").status_code == 303


def test_the_csrf_header_is_accepted_for_scripts(people: Callable[[str], WebClient]) -> None:
    alice = people("alice")
    token = alice.csrf()
    answer = alice.http.post("/sign-out", headers={sessions.CSRF_HEADER: token})
    assert answer.status_code == 303


def test_without_authentication_there_is_no_sign_in(web: WebClient) -> None:
    assert web.get("/models").status_code == 200
    form = web.get("/sign-in")
    assert (form.status_code, form.headers["location"]) == (303, "/")
    page = web.get("/models").text
    assert "Sign out" not in page and "Sign in" not in page
    assert web.post("/sign-out", csrf=None).status_code == 403  # CSRF still guards forms


def test_unknown_paths_and_methods_get_pages_not_tracebacks(web: WebClient) -> None:
    missing = web.get("/no/such/page")
    assert missing.status_code == 404 and "Not found" in missing.text
    wrong = web.http.delete("/models")
    assert wrong.status_code == 405 and "Traceback" not in wrong.text


def test_every_response_carries_the_security_headers(web: WebClient) -> None:
    for path in ("/models", "/no/such/page", "/static/style.css"):
        answer = web.get(path)
        assert "default-src 'self'" in answer.headers["content-security-policy"]
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["x-frame-options"] == "DENY"
    assert web.get("/models").headers["cache-control"] == "no-store"
    css = web.get("/static/style.css")
    assert css.status_code == 200 and ":focus-visible" in css.text  # shipped, no CDN


def test_an_api_key_signs_in_and_revoking_it_ends_the_session(
    web_server: RegistryServer, web_url: str
) -> None:
    """Real authenticators: API keys of the database, verified on every request."""
    from modelregistry_server.api.api_key_authenticator import ApiKeyAuthenticator
    from modelregistry_server.api.authentication import Authentication

    keys = ApiKeyAuthenticator()
    keys.install(web_server.api_keys)
    web_server.interceptor.use_authentication(Authentication([keys]))
    admin = Caller(scopes=frozenset({Permission.ADMIN}))
    created = web_server.api_keys.create(admin, "web", ["registry.read"])
    browser = WebClient(web_url)
    try:
        assert browser.sign_in(created.credential).status_code == 303
        page = browser.get("/models")
        assert page.status_code == 200
        assert f"apikey:{created.key.key_id}" in page.text
        web_server.api_keys.revoke(admin, created.key.key_id)
        assert browser.get("/models").status_code == 303  # sent to sign in again
    finally:
        browser.close()


@pytest.mark.parametrize("minutes", [5])
def test_a_session_expires_with_its_jwt(minutes: int) -> None:
    now = datetime.now(UTC)
    token = jwt.encode({"sub": "a", "exp": now + timedelta(minutes=minutes)}, "k" * 32)
    session = sessions.Session.signed_in(token, "user:a", now.timestamp())
    assert session.expires == pytest.approx((now + timedelta(minutes=minutes)).timestamp(), abs=1)
    codec = sessions.SessionCodec(b"s" * 32)
    sealed = codec.seal(session)
    assert codec.open(sealed, now.timestamp()) == session.unchanged()
    assert codec.open(sealed, (now + timedelta(minutes=minutes + 1)).timestamp()) is None
    assert sessions.SessionCodec(b"t" * 32).open(sealed, now.timestamp()) is None
    api_key = sessions.Session.signed_in("mrk_a_b", "apikey:a", now.timestamp())
    assert api_key.expires == now.timestamp() + sessions.SESSION_SECONDS
