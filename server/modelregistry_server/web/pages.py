"""Pages and actions, and the request cycle every one of them goes through.

A page is declared with the RPC whose permission it needs (``registry_rpc("ListModels")``),
exactly as the gRPC edge looks a method up in the permission table; :data:`PUBLIC` marks the
few that need none (signing in and out). For every request the cycle

1. opens the session cookie (a new, anonymous session if there is none),
2. checks the CSRF token of every POST against the session's,
3. admits the caller: ``Edge.admit(session credential, rpc)`` on the unary pool, the same
   authentication and scope check as a gRPC call (UNAUTHENTICATED → the sign-in page),
4. runs the handler, which calls use cases through :meth:`View.run` (bounded pool, database
   connection, deadline),
5. turns a domain error into its page (gRPC code → HTTP status, the error's message), and
   anything else into a logged 500 "internal error" page: never a traceback.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import Executor
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar
from urllib.parse import urlencode

from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.templating import Jinja2Templates

from ..domain.errors import DomainError, PermissionDenied, Unauthenticated
from ..domain.identity import Caller
from . import sessions
from .edge import Edge, Services, ServicesSlot, run_blocking
from .http_errors import http_status, title

log = logging.getLogger(__name__)
T = TypeVar("T")

PUBLIC = "public"  # a page anyone may open: it needs no permission (sign-in, sign-out)
SIGN_IN_PATH = "/sign-in"
_REQUEST_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")
# Form bodies are small: field values and a CSRF token, never files.
MAX_FORM_FIELDS = 200
MAX_FORM_PART_BYTES = 64 * 1024


def access_rpc(method: str) -> str:
    """The full name of an AccessService RPC."""
    return f"/modelregistry.v1.AccessService/{method}"


WHO_AM_I = access_rpc("GetCaller")  # any credential that verifies, no scope


def registry_rpc(method: str) -> str:
    """The full name of a ModelRegistry RPC, as the permission table keys it."""
    return f"/modelregistry.v1.ModelRegistry/{method}"


def payload_rpc(method: str) -> str:
    """The full name of a PayloadService RPC."""
    return f"/modelregistry.v1.PayloadService/{method}"


def events_rpc(method: str) -> str:
    """The full name of an EventService RPC."""
    return f"/modelregistry.v1.EventService/{method}"


Handler = Callable[["View"], Awaitable[Response]]


@dataclass(frozen=True)
class Page:
    """One route: its path (Starlette syntax), handler, methods and the RPC it is admitted
    as (its permission), or :data:`PUBLIC`."""

    path: str
    handler: Handler
    rpc: str
    methods: tuple[str, ...] = ("GET",)
    name: str = ""


@dataclass
class Site:
    """What every request of the web adapter shares."""

    edge: Edge
    slot: ServicesSlot
    pool: Executor
    templates: Jinja2Templates
    secure_cookies: bool = False
    _codecs: dict[bytes, sessions.SessionCodec] = field(default_factory=dict)

    def codec(self, services: Services) -> sessions.SessionCodec:
        codec = self._codecs.get(services.secret)
        if codec is None:
            codec = self._codecs[services.secret] = sessions.SessionCodec(services.secret)
        return codec


class CsrfRefused(Exception):
    """A POST without this session's CSRF token."""


class BadForm(Exception):
    """A form body that cannot be read: malformed, too many fields, too large, or a file."""


@dataclass
class View:
    """One request as a handler sees it: the admitted caller, the session, the use cases."""

    site: Site
    request: Request
    services: Services
    session: sessions.Session
    caller: Caller = field(default_factory=Caller)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run blocking ``fn(*args)`` (a use case) on the server's bounded pool."""
        return await run_blocking(self.site.pool, self.services, fn, *args)

    async def run_unscoped(self, fn: Callable[..., T], *args: Any) -> T:
        """Like :meth:`run`, without a database connection (reading stored bytes)."""
        return await run_blocking(self.site.pool, None, fn, *args)

    async def form(self) -> FormData:
        """The submitted form (urlencoded or multipart, small fields only); BadForm if it
        cannot be read."""
        try:
            return await self.request.form(
                max_files=0, max_fields=MAX_FORM_FIELDS, max_part_size=MAX_FORM_PART_BYTES
            )
        # Starlette answers a bad multipart body with HTTPException(400), and its parser
        # raises KeyError for a part without a name.
        except (HTTPException, MultiPartException, KeyError, ValueError):
            raise BadForm from None

    def query(self, name: str, default: str = "") -> str:
        return self.request.query_params.get(name, default)

    def render(self, template: str, context: Mapping[str, Any], status: int = 200) -> Response:
        return render(self.site, self.request, self.session, template, context, status)

    def redirect(self, url: str) -> Response:
        """303 See Other to ``url`` (after a POST, the browser GETs it)."""
        return RedirectResponse(url, status_code=303)


def render(
    site: Site,
    request: Request,
    session: sessions.Session | None,
    template: str,
    context: Mapping[str, Any],
    status: int = 200,
) -> Response:
    """A page from ``template`` with what the base template needs."""
    enabled = site.edge.auth_enabled()
    values = {
        "csrf_token": session.csrf if session is not None else "",
        "signed_in_as": session.who if session is not None and session.token else "",
        "auth_enabled": enabled,
        "csrf_field": sessions.CSRF_FIELD,
        **context,
    }
    return site.templates.TemplateResponse(request, template, values, status_code=status)


def error_page(
    site: Site,
    request: Request,
    session: sessions.Session | None,
    status: int,
    message: str,
    violations: tuple[tuple[str, str], ...] = (),
) -> Response:
    """The error page: the HTTP status, a title and the error's message."""
    try:
        return render(
            site,
            request,
            session,
            "error.html",
            {
                "status": status,
                "title": title(status),
                "message": message,
                "violations": violations,
            },
            status,
        )
    except Exception:
        log.exception("the error page failed to render")
        return HTMLResponse("<!doctype html><title>Error</title><p>internal error", 500)


def safe_next(target: str | None) -> str:
    """A same-site path to return to after signing in ("/" for anything else)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def _request_id(request: Request) -> str:
    given = request.headers.get("x-request-id", "")
    return given if _REQUEST_ID.fullmatch(given) else uuid.uuid4().hex


def _session_of(request: Request, codec: sessions.SessionCodec) -> sessions.Session:
    value = request.cookies.get(sessions.COOKIE)
    opened = codec.open(value) if value else None
    return opened if opened is not None else sessions.Session.anonymous()


async def _check_csrf(view: View) -> None:
    given = view.request.headers.get(sessions.CSRF_HEADER)
    if given is None:
        form = await view.form()
        value = form.get(sessions.CSRF_FIELD)
        given = value if isinstance(value, str) else None
    if not view.session.csrf_matches(given):
        raise CsrfRefused


def resource_of(path: str) -> str:
    """The resource a page is about: its URL path mirrors the resource name."""
    return path.strip("/") if path.startswith("/models/") else ""


async def _record(view: View, page: Page, exc: DomainError) -> None:
    """An access event for a refusal or failure, as the gRPC edge records one (never in the
    way of the page answering)."""
    resource = resource_of(view.request.url.path)
    try:
        await view.run(view.services.record_refusal, view.caller, page.rpc, resource, exc)
    except Exception:
        log.exception("web: could not record the refusal of %s", page.path)


async def _record_denial(
    view: View, session: sessions.Session, page: Page, exc: PermissionDenied
) -> None:
    """A scope the credential lacks: recorded for the caller it proves (who it is needs no
    scope)."""
    try:
        view.caller = await view.run(view.site.edge.admit, session.token, WHO_AM_I)
    except DomainError:
        return
    await _record(view, page, exc)


def _to_sign_in(request: Request) -> Response:
    back = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    target = back if request.method == "GET" else "/"
    return RedirectResponse(f"{SIGN_IN_PATH}?{urlencode({'next': target})}", status_code=303)


def attach_session(
    site: Site, response: Response, services: Services, session: sessions.Session | None
) -> None:
    """Send the session cookie if it changed; ``None`` clears it."""
    if session is None:
        response.delete_cookie(
            sessions.COOKIE, path="/", secure=site.secure_cookies, httponly=True, samesite="lax"
        )
        return
    if not session.changed:
        return
    response.set_cookie(
        sessions.COOKIE,
        site.codec(services).seal(session),
        max_age=max(0, int(session.expires - time.time())),
        path="/",
        secure=site.secure_cookies,
        httponly=True,
        samesite="lax",
    )


def endpoint(site: Site, page: Page) -> Callable[[Request], Awaitable[Response]]:
    """The Starlette endpoint running ``page`` through the request cycle."""

    async def serve(request: Request) -> Response:
        session: sessions.Session | None = None
        services: Services | None = None
        admitted: View | None = None
        clear = False
        try:
            services = site.slot.get()
            session = _session_of(request, site.codec(services))
            view = View(site, request, services, session)
            if request.method == "POST":
                await _check_csrf(view)
            if page.rpc != PUBLIC:
                try:
                    caller = await view.run(site.edge.admit, session.token, page.rpc)
                except PermissionDenied as exc:
                    await _record_denial(view, session, page, exc)
                    raise
                view.caller = replace(caller, request_id=_request_id(request))
                admitted = view
            response = await page.handler(view)
            session = view.session
        except CsrfRefused:
            response = error_page(
                site,
                request,
                session,
                403,
                "This form has expired or did not come from this site: reload the page and "
                "try again.",
            )
        except BadForm:
            response = error_page(
                site, request, session, 400, "The form could not be read: reload the page."
            )
        except Unauthenticated as exc:
            if site.edge.auth_enabled():
                response = _to_sign_in(request)
                clear = session is not None and session.token is not None
            else:
                response = error_page(site, request, session, 401, exc.message)
        except DomainError as exc:
            if admitted is not None:
                await _record(admitted, page, exc)
            status = http_status(site.edge.code_of(exc))
            response = error_page(
                site,
                request,
                session,
                status,
                exc.message,
                tuple((v.field, v.description) for v in exc.field_violations),
            )
        except Exception:
            log.exception("web: unexpected error serving %s %s", request.method, page.path)
            response = error_page(site, request, session, 500, "internal error")
        if services is not None:
            if clear:
                attach_session(site, response, services, None)
            elif session is not None:
                attach_session(site, response, services, session)
        return response

    return serve
