"""``create_app``: the Starlette application with every page, the static assets and the
security headers of every response."""

from __future__ import annotations

import json
from collections.abc import Iterable
from concurrent.futures import Executor
from datetime import UTC, datetime
from typing import Any

import jinja2
from starlette.applications import Starlette
from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from . import compare, model_pages, models_list, sign_in, version_page, writes
from .edge import Edge, ServicesSlot
from .pages import PUBLIC, Page, Site, endpoint, error_page

# Every page and action; a module adding pages adds its PAGES here.
PAGES: tuple[Page, ...] = (
    *sign_in.PAGES,
    *models_list.PAGES,
    *model_pages.PAGES,
    *version_page.PAGES,
    *compare.PAGES,
    *writes.PAGES,
)

SECURITY_HEADERS = {
    # Everything comes from this origin: no CDN, no inline script.
    "content-security-policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",
}


class SecurityHeaders:
    """Adds :data:`SECURITY_HEADERS` to every response; pages are not cached."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        static = str(scope.get("path", "")).startswith("/static/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers.setdefault(name, value)
                if not static:
                    headers.setdefault("cache-control", "no-store")
            await send(message)

        await self._app(scope, receive, send_with_headers)


def _when(value: datetime | None) -> str:
    if value is None:
        return ""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _size(value: int) -> str:
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{value} B"  # pragma: no cover


def _plain(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _json(value: Any) -> str:
    """A JSON value as text; whole numbers without ``.0`` (parameters arrive as doubles)."""
    return json.dumps(_plain(value), ensure_ascii=False, sort_keys=True)


def templates() -> Jinja2Templates:
    """The templates shipped with the package, autoescaped, strict about undefined names."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("modelregistry_server.web", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = _when
    env.filters["size"] = _size
    env.filters["json"] = _json
    env.filters["iso"] = lambda v: v.astimezone(UTC).isoformat() if v is not None else ""
    return Jinja2Templates(env=env)


def check_pages(pages: Iterable[Page], edge: Edge) -> None:
    """ValueError if a page names an RPC the permission table does not have."""
    for page in pages:
        if page.rpc != PUBLIC and page.rpc not in edge.rpcs:
            raise ValueError(f"web page {page.path} names {page.rpc}, not in the permission table")


def create_app(
    edge: Edge,
    slot: ServicesSlot,
    pool: Executor,
    *,
    secure_cookies: bool = False,
    pages: tuple[Page, ...] = PAGES,
) -> ASGIApp:
    """The web interface as an ASGI application (see the package docstring)."""
    check_pages(pages, edge)
    site = Site(edge, slot, pool, templates(), secure_cookies)
    routes: list[BaseRoute] = [
        Route(p.path, endpoint(site, p), methods=list(p.methods), name=p.name or None)
        for p in pages
    ]
    static = StaticFiles(packages=[("modelregistry_server.web", "static")])
    routes.append(Mount("/static", static, name="static"))

    async def not_found(request: Request, _exc: Exception) -> Response:
        return error_page(site, request, None, 404, "There is no page at this address.")

    async def not_allowed(request: Request, _exc: Exception) -> Response:
        return error_page(site, request, None, 405, "This page does not take that method.")

    app = Starlette(routes=routes, exception_handlers={404: not_found, 405: not_allowed})
    app.state.site = site
    app.state.pages = pages
    return SecurityHeaders(app)
