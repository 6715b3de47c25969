"""``/`` and ``/models``: the models, searchable and filterable with the API's filter
language, one keyset page at a time."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlencode

from starlette.responses import Response

from ..domain.entities import Model
from ..domain.errors import InvalidArgument
from ..domain.identity import Caller
from ..domain.registry import Registry
from .pages import Page, View, registry_rpc

PAGE_SIZE = 50
MAX_PAGE_SIZE = 200
PRODUCTION_ALIAS = "production"
_SEARCH = re.compile(r"[a-z0-9-]{1,63}")


@dataclass(frozen=True)
class ModelRow:
    """One line of the list: the model (with ``latest_version_number``, its newest version)
    and where its production alias points."""

    model: Model
    production: int | None


def page_size(raw: str, default: int = PAGE_SIZE, largest: int = MAX_PAGE_SIZE) -> int:
    """A ``page_size`` query parameter: a whole number from 1 to ``largest``."""
    if not raw:
        return default
    if not raw.isdigit() or not 1 <= int(raw) <= largest:
        raise InvalidArgument.field("page_size", f"must be a whole number from 1 to {largest}")
    return int(raw)


def combined_filter(filter_text: str, search: str) -> str:
    """The API filter, narrowed to models whose id starts with ``search``."""
    if not search:
        return filter_text
    if not _SEARCH.fullmatch(search):
        raise InvalidArgument.field(
            "q", "searches model ids: lower-case letters, digits and '-' only"
        )
    prefix = f'model_id = "{search}*"'
    return f"({filter_text}) AND {prefix}" if filter_text else prefix


def _rows(
    registry: Registry,
    caller: Caller,
    filter_text: str,
    token: str,
    size: int,
    show_deleted: bool,
) -> tuple[list[ModelRow], str]:
    models, next_token = registry.list_models(
        caller, page_size=size, page_token=token, filter_text=filter_text, show_deleted=show_deleted
    )
    rows = []
    for model in models:
        production: int | None = None
        if not model.is_deleted:  # one indexed query per listed model (at most a page)
            aliases = registry.list_aliases(caller, model.model_id)
            production = next(
                (a.version_number for a in aliases if a.alias == PRODUCTION_ALIAS), None
            )
        rows.append(ModelRow(model, production))
    return rows, next_token


async def models_list(view: View) -> Response:
    filter_text = view.query("filter").strip()
    search = view.query("q").strip()
    show_deleted = view.query("show_deleted") == "1"
    size = page_size(view.query("page_size"))
    token = view.query("page_token")
    rows, next_token = await view.run(
        _rows,
        view.services.registry,
        view.caller,
        combined_filter(filter_text, search),
        token,
        size,
        show_deleted,
    )
    keep = {
        "filter": filter_text,
        "q": search,
        "show_deleted": "1" if show_deleted else "",
        "page_size": str(size) if size != PAGE_SIZE else "",
    }
    keep = {k: v for k, v in keep.items() if v}
    return view.render(
        "models.html",
        {
            "rows": rows,
            "filter": filter_text,
            "q": search,
            "show_deleted": show_deleted,
            "first_page": f"/models?{urlencode(keep)}" if token else "",
            "next_page": f"/models?{urlencode({**keep, 'page_token': next_token})}"
            if next_token
            else "",
        },
    )


PAGES = (
    Page("/", models_list, registry_rpc("ListModels"), ("GET",), "home"),
    Page("/models", models_list, registry_rpc("ListModels"), ("GET",), "models"),
)
