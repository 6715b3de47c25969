"""The writes a person makes in the interface, within their role, and the pages holding
their controls (``/models/{model}/manage``, ``/models/{model}/versions/{version}/manage``).

Every write is a declared POST page naming its RPC (the edge checks the scope, the use case
the model's policy), CSRF-checked before it runs, and answered with a redirect to the manage
page (303) with what was done. A refusal the person can act on (a stale form = ABORTED, bad
input, a failed precondition) re-renders the manage page with the message and the error's
status; others (not allowed, not found) are error pages. Controls are shown only when
:mod:`.abilities` says the caller may use them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote, urlencode

from starlette.responses import Response

from ..domain import names
from ..domain.entities import Model, ModelVersion, Stage, VersionState
from ..domain.errors import (
    Aborted,
    AlreadyExists,
    DomainError,
    FailedPrecondition,
    InvalidArgument,
)
from ..domain.identity import Caller
from ..domain.updates import Patch
from .abilities import Abilities, abilities
from .edge import Edge, Services
from .pages import Page, View, registry_rpc

MAX_LABEL_LINES = 64
# What the manage page says after a write (``?done=``): fixed texts, never echoed input.
DONE = {
    "model_updated": "Description and labels saved.",
    "model_deleted": "The model is deleted. Undelete it below to restore it.",
    "model_undeleted": "The model is restored.",
    "alias_set": "The alias now points at the version.",
    "alias_deleted": "The alias is removed.",
    "version_updated": "Description and labels saved.",
    "stage_changed": "The stage is changed.",
    "sealed": "The version is sealed: it is READY and its files are immutable.",
    "version_deleted": "The version is deleted. Undelete it below to restore it.",
    "version_undeleted": "The version is restored.",
}
# Refusals re-rendered on the form (the person can fix them); anything else is an error page.
_ON_FORM = (Aborted, AlreadyExists, FailedPrecondition, InvalidArgument)
_STALE = (
    "This {what} changed since you loaded the page, so nothing was saved. "
    "The form now shows its current values: check them and submit again."
)


def parse_labels(text: str) -> dict[str, str]:
    """``key=value`` lines (blank lines ignored) → labels; the domain checks keys and values."""
    labels: dict[str, str] = {}
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if len(lines) > MAX_LABEL_LINES:
        raise InvalidArgument.field("labels", f"at most {MAX_LABEL_LINES} labels")
    for line in lines:
        key, eq, value = line.partition("=")
        if not eq or not key.strip():
            raise InvalidArgument.field("labels", f"{line[:80]!r} is not key=value")
        labels[key.strip()] = value.strip()
    return labels


def _labels_text(labels: dict[str, str]) -> str:
    return "\n".join(f"{k}={v}" for k, v in sorted(labels.items()))


def _model_id(view: View) -> str:
    return names.check_model_id(view.request.path_params["model"], "model")


def _version_ref(view: View, *, numbered: bool = False) -> names.VersionRef:
    model_id = _model_id(view)
    segment = view.request.path_params["version"]
    return names.parse_version_name(
        f"models/{model_id}/versions/{segment}", "version", numbered=numbered
    )


async def _text(view: View, name: str, limit: int = 20_000) -> str:
    value = (await view.form()).get(name, "")
    if not isinstance(value, str):
        raise InvalidArgument.field(name, "must be text")
    if len(value) > limit:
        raise InvalidArgument.field(name, f"is longer than {limit} characters")
    return value


def model_url(model_id: str) -> str:
    return f"/models/{quote(model_id)}/manage"


def version_url(model_id: str, number: int) -> str:
    return f"/models/{quote(model_id)}/versions/{number}/manage"


# -- the manage pages ------------------------------------------------------------------------
def _model_context(services: Services, edge: Edge, caller: Caller, model_id: str) -> dict[str, Any]:
    registry = services.registry
    model = registry.get_model(caller, model_id)
    aliases = [] if model.is_deleted else registry.list_aliases(caller, model_id)
    return {
        "model": model,
        "aliases": aliases,
        "labels_text": _labels_text(model.labels),
        "can": abilities(edge, registry, caller, model_id),
    }


def _version_context(
    services: Services, edge: Edge, caller: Caller, ref: names.VersionRef
) -> dict[str, Any]:
    registry = services.registry
    version = registry.get_version(caller, ref)
    can: Abilities = abilities(edge, registry, caller, ref.model_id)
    return {
        "model_id": ref.model_id,
        "version": version,
        "labels_text": _labels_text(version.labels),
        "can": can,
        "stages": can.stages(version.stage),
        "draft": version.state is VersionState.DRAFT,
    }


async def _render_model(
    view: View, model_id: str, error: DomainError | None = None, what: str = "model"
) -> Response:
    context = await view.run(_model_context, view.services, view.site.edge, view.caller, model_id)
    return _render(view, "manage_model.html", context, error, what)


async def _render_version(
    view: View, ref: names.VersionRef, error: DomainError | None = None, what: str = "version"
) -> Response:
    context = await view.run(_version_context, view.services, view.site.edge, view.caller, ref)
    return _render(view, "manage_version.html", context, error, what)


def _render(
    view: View, template: str, context: dict[str, Any], error: DomainError | None, what: str
) -> Response:
    done = DONE.get(view.query("done"), "") if error is None else ""
    status = 200
    message = ""
    if error is not None:
        status = 409 if isinstance(error, Aborted) else 400
        message = _STALE.format(what=what) if isinstance(error, Aborted) else error.message
        if isinstance(error, AlreadyExists):
            status = 409
    return view.render(template, {**context, "done": done, "error": message}, status)


async def manage_model(view: View) -> Response:
    return await _render_model(view, _model_id(view))


async def manage_version(view: View) -> Response:
    return await _render_version(view, _version_ref(view))


# -- model writes ----------------------------------------------------------------------------
Write = Callable[[View], Awaitable[str]]


async def _recorded(view: View, rpc: str, resource: str, exc: DomainError) -> None:
    """A refusal re-rendered on its form is an access event as any refusal of the page."""
    await view.run(view.services.record_refusal, view.caller, rpc, resource, exc)


def model_write(action: Write, rpc: str) -> Callable[[View], Awaitable[Response]]:
    """A model write: run it, redirect to the manage page; a fixable refusal re-renders it."""

    async def handler(view: View) -> Response:
        model_id = _model_id(view)
        try:
            done = await action(view)
        except _ON_FORM as exc:
            await _recorded(view, rpc, names.model_name(model_id), exc)
            return await _render_model(view, model_id, exc)
        return view.redirect(f"{model_url(model_id)}?{urlencode({'done': done})}")

    return handler


def version_write(action: Write, rpc: str) -> Callable[[View], Awaitable[Response]]:
    """A version write (the URL names the version by number), as :func:`model_write`."""

    async def handler(view: View) -> Response:
        ref = _version_ref(view, numbered=True)
        try:
            done = await action(view)
        except _ON_FORM as exc:
            assert ref.number is not None
            await _recorded(view, rpc, names.version_name(ref.model_id, ref.number), exc)
            return await _render_version(view, ref, exc)
        assert ref.number is not None
        return view.redirect(f"{version_url(ref.model_id, ref.number)}?{urlencode({'done': done})}")

    return handler


async def _update_model(view: View) -> str:
    model_id = _model_id(view)
    etag = await _text(view, "etag", 200)
    patch = Patch(
        ("description", "labels"),
        {
            "description": await _text(view, "description"),
            "labels": parse_labels(await _text(view, "labels")),
        },
    )
    model: Model = await view.run(
        view.services.registry.update_model, view.caller, model_id, etag, patch
    )
    del model
    return "model_updated"


async def _delete_model(view: View) -> str:
    force = await _text(view, "force", 10) == "1"
    await view.run(
        view.services.registry.delete_model,
        view.caller,
        _model_id(view),
        await _text(view, "etag", 200),
        force,
    )
    return "model_deleted"


async def _undelete_model(view: View) -> str:
    await view.run(
        view.services.registry.undelete_model,
        view.caller,
        _model_id(view),
        await _text(view, "etag", 200),
    )
    return "model_undeleted"


async def _set_alias(view: View) -> str:
    model_id = _model_id(view)
    alias = names.check_alias((await _text(view, "alias", 100)).strip(), "alias")
    segment = (await _text(view, "version", 100)).strip()
    target = names.parse_version_name(f"models/{model_id}/versions/{segment}", "version")
    await view.run(view.services.registry.set_alias, view.caller, model_id, alias, target)
    return "alias_set"


async def _delete_alias(view: View) -> str:
    model_id = _model_id(view)
    alias = names.check_alias(view.request.path_params["alias"], "alias")
    await view.run(view.services.registry.delete_alias, view.caller, model_id, alias)
    return "alias_deleted"


# -- version writes --------------------------------------------------------------------------
async def _update_version(view: View) -> str:
    patch = Patch(
        ("description", "labels"),
        {
            "description": await _text(view, "description"),
            "labels": parse_labels(await _text(view, "labels")),
        },
    )
    await view.run(
        view.services.registry.update_version,
        view.caller,
        _version_ref(view, numbered=True),
        await _text(view, "etag", 200),
        patch,
    )
    return "version_updated"


async def _transition(view: View) -> str:
    raw = (await _text(view, "stage", 40)).strip()
    try:
        stage = Stage(raw)
    except ValueError:
        allowed = ", ".join(s.value for s in Stage)
        raise InvalidArgument.field("stage", f"must be one of {allowed}") from None
    await view.run(
        view.services.registry.transition_stage,
        view.caller,
        _version_ref(view, numbered=True),
        stage,
        (await _text(view, "comment", 1000)).strip(),
        await _text(view, "etag", 200),
    )
    return "stage_changed"


async def _seal(view: View) -> str:
    version: ModelVersion = await view.run(
        view.services.payloads.seal,
        view.caller,
        _version_ref(view, numbered=True),
        await _text(view, "etag", 200),
    )
    del version
    return "sealed"


async def _delete_version(view: View) -> str:
    await view.run(
        view.services.registry.delete_version,
        view.caller,
        _version_ref(view, numbered=True),
        await _text(view, "etag", 200),
    )
    return "version_deleted"


async def _undelete_version(view: View) -> str:
    await view.run(
        view.services.registry.undelete_version,
        view.caller,
        _version_ref(view, numbered=True),
        await _text(view, "etag", 200),
    )
    return "version_undeleted"


_M = "/models/{model}"
_V = "/models/{model}/versions/{version}"
_MODEL_WRITES = (
    ("edit", _update_model, "UpdateModel"),
    ("delete", _delete_model, "DeleteModel"),
    ("undelete", _undelete_model, "UndeleteModel"),
    ("aliases", _set_alias, "SetAlias"),
    ("aliases/{alias}/delete", _delete_alias, "DeleteAlias"),
)
_VERSION_WRITES = (
    ("edit", _update_version, "UpdateModelVersion"),
    ("stage", _transition, "TransitionModelVersionStage"),
    ("seal", _seal, "SealModelVersion"),
    ("delete", _delete_version, "DeleteModelVersion"),
    ("undelete", _undelete_version, "UndeleteModelVersion"),
)
PAGES = (
    Page(f"{_M}/manage", manage_model, registry_rpc("GetModel"), ("GET",), "manage_model"),
    Page(
        f"{_V}/manage", manage_version, registry_rpc("GetModelVersion"), ("GET",), "manage_version"
    ),
    *(
        Page(f"{_M}/{tail}", model_write(fn, registry_rpc(rpc)), registry_rpc(rpc), ("POST",))
        for tail, fn, rpc in _MODEL_WRITES
    ),
    *(
        Page(f"{_V}/{tail}", version_write(fn, registry_rpc(rpc)), registry_rpc(rpc), ("POST",))
        for tail, fn, rpc in _VERSION_WRITES
    ),
)
