"""What a hostile or unlucky browser meets: the cookie over TLS, a fresh CSRF token after
signing in, no internals on a 500 page, malformed or oversized forms answered 400, and the
headers that keep the pages out of frames and other sites' referrers."""

from __future__ import annotations

import dataclasses
import re
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from modelregistry_server.config import Config
from modelregistry_server.web import models_list, pages, sessions
from tests.support.certificates import Authority
from tests.support.servers import serving
from tests.web.conftest import PEOPLE, WebClient


def test_the_session_cookie_is_secure_over_tls(web_config: Config, tmp_path: Path) -> None:
    ca = Authority("Web CA")
    cert, key = ca.server().write(tmp_path / "tls", "server")
    config = dataclasses.replace(web_config, tls_cert=str(cert), tls_key=str(key))
    with serving(config) as server:
        context = ssl.create_default_context(cafile=str(ca.write(tmp_path / "tls" / "ca.crt")))
        answer = httpx.get(f"https://{server.http_address}/models", verify=context, timeout=30)
    assert answer.status_code == 200
    cookie = answer.headers["set-cookie"].lower()
    assert cookie.startswith(f"{sessions.COOKIE}=")
    assert "; secure" in cookie and "httponly" in cookie and "samesite=lax" in cookie


def test_signing_in_gives_the_session_a_new_csrf_token(
    people: Callable[[str], WebClient],
) -> None:
    browser = people("stranger")
    before = browser.csrf()
    assert browser.sign_in("alice").status_code == 303
    after = browser.csrf()
    assert after != before  # a token planted before signing in is worth nothing after
    assert browser.post("/sign-out", csrf=before).status_code == 403
    assert browser.post("/sign-out", csrf=after).status_code == 303


def test_an_unexpected_error_is_a_500_page_without_internals(
    web: WebClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_args: Any) -> Any:
        raise RuntimeError("password=hunter2 at /srv/registry/secret.db")

    monkeypatch.setattr(models_list, "_rows", broken)
    page = web.get("/models")
    assert page.status_code == 500
    assert "internal error" in page.text
    for leak in ("hunter2", "RuntimeError", "Traceback", "/srv/"):
        assert leak not in page.text
    assert page.headers["cache-control"] == "no-store"


def test_a_malformed_or_oversized_form_is_a_400_page(web: WebClient) -> None:
    token = web.csrf()
    garbage = web.http.post(
        "/sign-out",
        content=b"--x\r\nContent-Disposition: form-data\r\n\r\nno end",
        headers={"content-type": "multipart/form-data; boundary=x"},
    )
    assert garbage.status_code == 400, garbage.text
    assert "Traceback" not in garbage.text
    many = {f"f{i}": "v" for i in range(pages.MAX_FORM_FIELDS + 1)}
    too_many = web.http.post(
        "/sign-out", files={k: (None, v) for k, v in many.items()} | {"csrf_token": (None, token)}
    )
    assert too_many.status_code == 400, too_many.text
    upload = web.http.post(
        "/sign-out", files={"csrf_token": (None, token), "f": ("a.bin", b"x", "application/x")}
    )
    assert upload.status_code == 400, upload.text


def test_pages_stay_out_of_frames_and_other_sites_referrers(web: WebClient) -> None:
    for path in ("/models", "/no/such/page"):
        headers = web.get(path).headers
        assert "frame-ancestors 'none'" in headers["content-security-policy"]
        assert "form-action 'self'" in headers["content-security-policy"]
        assert "script-src 'self'" in headers["content-security-policy"]
        assert headers["referrer-policy"] == "same-origin"
        assert headers["cache-control"] == "no-store"


def test_a_session_whose_credential_stops_verifying_is_cleared(
    people: Callable[[str], WebClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    alice = people("alice")
    assert alice.get("/models").status_code == 200
    monkeypatch.delitem(PEOPLE, "alice")  # revoked: the token no longer verifies
    answer = alice.get("/models")
    assert answer.status_code == 303 and answer.headers["location"].startswith("/sign-in")
    cookie = answer.headers["set-cookie"].lower()
    assert cookie.startswith(f'{sessions.COOKIE}=""') and "max-age=0" in cookie
    assert sessions.COOKIE not in alice.http.cookies


def test_the_cookie_lives_no_longer_than_its_session(people: Callable[[str], WebClient]) -> None:
    browser = people("stranger")
    anonymous = browser.get("/sign-in").headers["set-cookie"].lower()
    assert _max_age(anonymous) == pytest.approx(sessions.ANONYMOUS_SESSION_SECONDS, abs=60)
    signed = browser.sign_in("alice").headers["set-cookie"].lower()
    assert _max_age(signed) == pytest.approx(sessions.SESSION_SECONDS, abs=60)


def _max_age(cookie: str) -> int:
    found = re.search(r"max-age=(\d+)", cookie)
    assert found is not None, cookie
    return int(found.group(1))


def test_head_options_and_odd_methods(web: WebClient) -> None:
    head = web.http.head("/models")
    assert head.status_code == 200 and head.content == b""
    assert head.headers["cache-control"] == "no-store"
    for method in ("OPTIONS", "TRACE", "PUT", "PATCH", "DELETE", "FROBNICATE"):
        for path in ("/models", "/sign-in", "/sign-out"):
            answer = web.http.request(method, path)
            assert answer.status_code == 405, (method, path)
            assert "Traceback" not in answer.text
            assert answer.headers["x-frame-options"] == "DENY"
    assert web.http.get("/sign-out").status_code == 405  # signing out is a POST with CSRF
