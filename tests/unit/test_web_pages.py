"""Every page and action of the web interface declares the RPC whose permission it needs
(the one table, ``api/permissions.py``), and only signing in and out need none."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from starlette.routing import Mount, Route

from modelregistry_server.api.interceptors import ErrorMappingInterceptor, ServingLimits
from modelregistry_server.api.permissions import METHOD_REQUIREMENTS, Open
from modelregistry_server.app import web_edge
from modelregistry_server.web.edge import ServicesSlot
from modelregistry_server.web.pages import PUBLIC, Page
from modelregistry_server.web.site import PAGES, create_app

PUBLIC_PAGES = {("/sign-in", "GET"), ("/sign-in", "POST"), ("/sign-out", "POST")}


def _edge():  # type: ignore[no-untyped-def]
    pool = ThreadPoolExecutor(1)
    interceptor = ErrorMappingInterceptor(unary_pool=pool, stream_pool=pool, limits=ServingLimits())
    return web_edge(interceptor), pool


def test_every_page_names_an_rpc_of_the_permission_table() -> None:
    for page in PAGES:
        if (page.path, page.methods[0]) in PUBLIC_PAGES:
            assert page.rpc == PUBLIC
            continue
        assert page.rpc in METHOD_REQUIREMENTS, page
        need = METHOD_REQUIREMENTS[page.rpc]
        assert not isinstance(need, Open), f"{page.path} must need a scope, {page.rpc} needs none"
    public = {(p.path, m) for p in PAGES if p.rpc == PUBLIC for m in p.methods}
    assert public == PUBLIC_PAGES


def test_every_route_of_the_app_is_a_declared_page() -> None:
    edge, pool = _edge()
    try:
        app = create_app(edge, ServicesSlot(), pool)
        routes = app._app.routes  # type: ignore[attr-defined]  # SecurityHeaders wraps it
        declared = {(p.path, m) for p in PAGES for m in p.methods}
        for route in routes:
            if isinstance(route, Mount):
                assert route.path == "/static"
                continue
            assert isinstance(route, Route)
            for method in route.methods or ():
                if method != "HEAD":
                    assert (route.path, method) in declared, route.path
    finally:
        pool.shutdown()


def test_a_page_naming_an_unknown_rpc_is_refused_at_start_up() -> None:
    edge, pool = _edge()

    async def handler(view: object) -> object:  # pragma: no cover
        raise AssertionError

    typo = Page("/x", handler, "/modelregistry.v1.ModelRegistry/ListModel")  # type: ignore[arg-type]
    try:
        with pytest.raises(ValueError, match="not in the permission table"):
            create_app(edge, ServicesSlot(), pool, pages=(*PAGES, typo))
    finally:
        pool.shutdown()
