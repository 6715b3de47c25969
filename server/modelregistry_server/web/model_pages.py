"""``/models/{model}`` and its tabs: the versions (sortable by any metric and by time,
filterable, keyset pages), the aliases and their history, and the model's activity (its
audit events)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from starlette.responses import Response

from ..domain import names
from ..domain.audit import Audit
from ..domain.entities import Alias, AliasMove, Model, ModelVersion
from ..domain.errors import InvalidArgument
from ..domain.events import Event
from ..domain.identity import Caller
from ..domain.registry import Registry, utc_now
from .models_list import page_size
from .pages import Page, View, events_rpc, registry_rpc

VERSION_PAGE_SIZE = 50
DEFAULT_VERSION_ORDER = "version_number desc"
# Columns every versions table can be sorted by (besides each metric).
SORTABLE = ("version_number", "create_time", "update_time", "stage", "state", "total_size")


@dataclass(frozen=True)
class SortLink:
    """One sortable column header: where clicking it leads, and how it sorts now."""

    key: str
    label: str
    url: str
    aria_sort: str  # "ascending", "descending" or "none"


@dataclass(frozen=True)
class VersionRow:
    version: ModelVersion
    expired: bool


def model_id_of(view: View) -> str:
    """The ``{model}`` of the path, checked like a resource name (INVALID_ARGUMENT)."""
    return names.check_model_id(str(view.request.path_params["model"]), "model")


def current_order(order_by: str) -> tuple[str, bool]:
    """The first key of ``order_by`` and whether it is descending."""
    first = order_by.split(",")[0].split()
    if not first:
        return "", False
    return first[0], len(first) > 1 and first[1].lower() == "desc"


def sort_links(
    base: str, keep: dict[str, str], order_by: str, columns: list[tuple[str, str]]
) -> dict[str, SortLink]:
    """A link per column: descending first, ascending when it is already descending."""
    key, desc = current_order(order_by)
    links = {}
    for column, label in columns:
        here = column == key
        direction = "asc" if here and desc else "desc"
        query = urlencode({**keep, "order_by": f"{column} {direction}"})
        aria = ("descending" if desc else "ascending") if here else "none"
        links[column] = SortLink(column, label, f"{base}?{query}", aria)
    return links


def _versions(
    registry: Registry,
    caller: Caller,
    model_id: str,
    filter_text: str,
    order_by: str,
    token: str,
    size: int,
    show_deleted: bool,
) -> tuple[Model, list[ModelVersion], str, list[Alias]]:
    model = registry.get_model(caller, model_id)
    versions, next_token = registry.list_versions(
        caller,
        model_id,
        page_size=size,
        page_token=token,
        filter_text=filter_text,
        order_by=order_by,
        show_deleted=show_deleted,
    )
    aliases = registry.list_aliases(caller, model_id) if not model.is_deleted else []
    return model, versions, next_token, aliases


async def model_versions(view: View) -> Response:
    model_id = model_id_of(view)
    filter_text = view.query("filter").strip()
    order_by = view.query("order_by").strip() or DEFAULT_VERSION_ORDER
    show_deleted = view.query("show_deleted") == "1"
    size = page_size(view.query("page_size"), VERSION_PAGE_SIZE)
    token = view.query("page_token")
    model, versions, next_token, aliases = await view.run(
        _versions,
        view.services.registry,
        view.caller,
        model_id,
        filter_text,
        order_by,
        token,
        size,
        show_deleted,
    )
    now = utc_now()
    metric_keys = sorted({k for v in versions for k in v.metrics})
    sorted_key, _ = current_order(order_by)
    if sorted_key.startswith("metrics.") and sorted_key[8:] not in metric_keys:
        metric_keys.append(sorted_key[8:])
    base = f"/models/{model_id}"
    keep = {
        "filter": filter_text,
        "show_deleted": "1" if show_deleted else "",
        "page_size": str(size) if size != VERSION_PAGE_SIZE else "",
    }
    keep = {k: v for k, v in keep.items() if v}
    columns = [(c, c.replace("_", " ")) for c in SORTABLE]
    columns += [(f"metrics.{k}", k) for k in metric_keys]
    paged = {**keep, "order_by": order_by} if order_by != DEFAULT_VERSION_ORDER else keep
    return view.render(
        "model_versions.html",
        {
            **_header(model, "versions"),
            "rows": [VersionRow(v, v.is_expired(now)) for v in versions],
            "aliases": aliases,
            "metric_keys": metric_keys,
            "sort": sort_links(base, keep, order_by, columns),
            "filter": filter_text,
            "order_by": order_by if order_by != DEFAULT_VERSION_ORDER else "",
            "show_deleted": show_deleted,
            "first_page": f"{base}?{urlencode(paged)}" if token else "",
            "next_page": f"{base}?{urlencode({**paged, 'page_token': next_token})}"
            if next_token
            else "",
        },
    )


def _header(model: Model, tab: str) -> dict[str, Any]:
    return {"model": model, "tab": tab}


def _aliases(
    registry: Registry, caller: Caller, model_id: str, token: str, size: int
) -> tuple[Model, list[Alias], list[AliasMove], str]:
    model = registry.get_model(caller, model_id)
    aliases = registry.list_aliases(caller, model_id) if not model.is_deleted else []
    moves, next_token = registry.list_alias_history(
        caller, model_id, None, page_size=size, page_token=token
    )
    return model, aliases, moves, next_token


async def model_aliases(view: View) -> Response:
    model_id = model_id_of(view)
    token = view.query("page_token")
    model, aliases, moves, next_token = await view.run(
        _aliases, view.services.registry, view.caller, model_id, token, VERSION_PAGE_SIZE
    )
    base = f"/models/{model_id}/aliases"
    return view.render(
        "model_aliases.html",
        {
            **_header(model, "aliases"),
            "aliases": aliases,
            "moves": moves,
            "first_page": base if token else "",
            "next_page": f"{base}?{urlencode({'page_token': next_token})}" if next_token else "",
        },
    )


ACTIVITY_KINDS = {
    "": "",
    "stages": 'method = "TransitionModelVersionStage"',
    "aliases": 'method = "SetAlias" OR method = "DeleteAlias"',
}


def _activity(
    registry: Registry,
    audit: Audit,
    caller: Caller,
    model_id: str,
    only: str,
    token: str,
    size: int,
) -> tuple[Model, list[Event], str]:
    model = registry.get_model(caller, model_id)  # NOT_FOUND for a model the caller cannot see
    narrow = ACTIVITY_KINDS[only]
    filter_text = f'model_id = "{model_id}"' + (f" AND ({narrow})" if narrow else "")
    events, next_token = audit.list_events(
        caller, page_size=size, page_token=token, filter_text=filter_text, order_by="sequence desc"
    )
    return model, events, next_token


async def model_activity(view: View) -> Response:
    model_id = model_id_of(view)
    only = view.query("only")
    if only not in ACTIVITY_KINDS:
        raise InvalidArgument.field("only", "must be stages or aliases (or empty)")
    token = view.query("page_token")
    model, events, next_token = await view.run(
        _activity,
        view.services.registry,
        view.services.audit,
        view.caller,
        model_id,
        only,
        token,
        VERSION_PAGE_SIZE,
    )
    base = f"/models/{model_id}/activity"
    keep = {"only": only} if only else {}
    return view.render(
        "model_activity.html",
        {
            **_header(model, "activity"),
            "events": events,
            "only": only,
            "first_page": f"{base}?{urlencode(keep)}" if token else "",
            "next_page": f"{base}?{urlencode({**keep, 'page_token': next_token})}"
            if next_token
            else "",
        },
    )


PAGES = (
    Page("/models/{model}", model_versions, registry_rpc("ListModelVersions"), ("GET",), "model"),
    Page(
        "/models/{model}/aliases",
        model_aliases,
        registry_rpc("ListAliasHistory"),
        ("GET",),
        "model_aliases",
    ),
    Page(
        "/models/{model}/activity",
        model_activity,
        events_rpc("ListEvents"),
        ("GET",),
        "model_activity",
    ),
)
