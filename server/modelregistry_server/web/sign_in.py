"""Signing in with a token or API key, and signing out.

The credential is verified by the server's own authenticators (admitted as ``GetCaller``:
any credential that verifies, no scope), then kept in a new session cookie (see
:mod:`.sessions`). With authentication off there is nothing to sign in to.
"""

from __future__ import annotations

from starlette.responses import Response

from ..domain.errors import Unauthenticated
from . import sessions
from .pages import PUBLIC, SIGN_IN_PATH, WHO_AM_I, Page, View, safe_next


async def sign_in_form(view: View) -> Response:
    if not view.site.edge.auth_enabled():
        return view.redirect("/")
    return view.render("sign_in.html", {"next": safe_next(view.query("next")), "error": ""})


async def sign_in(view: View) -> Response:
    if not view.site.edge.auth_enabled():
        return view.redirect("/")
    form = await view.form()
    raw = form.get("token")
    token = raw.strip() if isinstance(raw, str) else ""
    target = safe_next(str(form.get("next") or "/"))
    error = ""
    if not token:
        error = "Enter a token or an API key."
    else:
        try:
            caller = await view.run(view.site.edge.admit, token, WHO_AM_I)
        except Unauthenticated:
            error = "That token or API key does not verify (wrong, expired or revoked)."
        else:
            session = sessions.Session.signed_in(token, caller.actor)
            if len(view.site.codec(view.services).seal(session)) > sessions.MAX_COOKIE_CHARS:
                error = "That token is too long to keep in a browser session."
            else:
                view.session = session
                return view.redirect(target)
    return view.render("sign_in.html", {"next": target, "error": error}, status=401)


async def sign_out(view: View) -> Response:
    view.session = sessions.Session.anonymous()
    return view.redirect(SIGN_IN_PATH if view.site.edge.auth_enabled() else "/")


PAGES = (
    Page(SIGN_IN_PATH, sign_in_form, PUBLIC, ("GET",), "sign_in_form"),
    Page(SIGN_IN_PATH, sign_in, PUBLIC, ("POST",), "sign_in"),
    Page("/sign-out", sign_out, PUBLIC, ("POST",), "sign_out"),
)
