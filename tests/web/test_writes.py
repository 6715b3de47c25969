"""The writes of the web interface over HTTP: each action does what it says and redirects
(303) to its manage page; a stale form says it changed since it was loaded (ABORTED) and
saves nothing; a POST without this session's CSRF token, or from a person whose scopes or
role do not allow it, is refused with 403 and changes nothing; bad input is a 400 page;
a person who may not write sees no write control."""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from typing import Any

import pytest

from modelregistry.client import RegistryClient
from modelregistry_server.app import RegistryServer
from tests.web.conftest import WebClient, as_grpc

_ETAG = re.compile(r'<input type="hidden" name="etag" value="([^"]*)">')


def _seed(registry: RegistryClient) -> None:
    registry.create_model("fraud", description="old", labels={"team": "risk"})
    for number in (1, 2):
        registry.create_version("fraud", description=f"v{number}", metrics={"auc": 0.8})
        registry.upload_file("fraud", number, io.BytesIO(b"weights %d" % number))
        registry.seal_version("fraud", number)
    registry.create_version("fraud")  # 3 stays DRAFT
    registry.set_alias("fraud", "production", 1)
    registry.set_alias("fraud", "candidate", 2)


def _state(registry: RegistryClient) -> Any:
    """Everything the writes could change, to check a refusal changed nothing."""
    model = registry.get_model("fraud")
    versions = [
        (
            v.version_number,
            v.description,
            dict(v.labels),
            v.stage,
            v.state,
            v.etag,
            v.HasField("delete_time"),
        )
        for v in registry.list_versions("fraud", show_deleted=True)
    ]
    aliases = sorted(_aliases(registry).items())
    return (model.etag, model.description, model.HasField("delete_time"), versions, aliases)


def _aliases(registry: RegistryClient) -> dict[str, int]:
    return {
        a.name.rsplit("/", 1)[1]: int(a.version.rsplit("/", 1)[1])
        for a in registry.list_aliases("fraud")
    }


def _etag(web: WebClient, path: str) -> str:
    found = _ETAG.search(web.get(path).text)
    assert found is not None
    return found.group(1)


def _model_etag(registry: RegistryClient) -> str:
    return str(registry.get_model("fraud").etag)


def _version_etag(registry: RegistryClient, number: int) -> str:
    return str(registry.get_version("fraud", number).etag)


# Every action: (path, form for it given the registry's current etags).
Form = Callable[[RegistryClient], dict[str, str]]
ACTIONS: dict[str, tuple[str, Form]] = {
    "edit model": (
        "/models/fraud/edit",
        lambda r: {"etag": _model_etag(r), "description": "new", "labels": "team=ml"},
    ),
    "delete model": ("/models/fraud/delete", lambda r: {"etag": _model_etag(r), "force": "1"}),
    "set alias": ("/models/fraud/aliases", lambda r: {"alias": "production", "version": "2"}),
    "delete alias": ("/models/fraud/aliases/candidate/delete", lambda r: {}),
    "edit version": (
        "/models/fraud/versions/2/edit",
        lambda r: {"etag": _version_etag(r, 2), "description": "new", "labels": "a=b"},
    ),
    "stage": (
        "/models/fraud/versions/2/stage",
        lambda r: {"etag": _version_etag(r, 2), "stage": "STAGING", "comment": "ok"},
    ),
    "seal": ("/models/fraud/versions/3/seal", lambda r: {"etag": _version_etag(r, 3)}),
    "delete version": (
        "/models/fraud/versions/2/delete",
        lambda r: {"etag": _version_etag(r, 2)},
    ),
}


def test_edit_model_description_and_labels(registry: RegistryClient, web: WebClient) -> None:
    _seed(registry)
    manage = web.get("/models/fraud/manage")
    assert manage.status_code == 200 and 'action="/models/fraud/edit"' in manage.text
    assert ">team=risk</textarea>" in manage.text
    etag = _etag(web, "/models/fraud/manage")
    answer = web.post(
        "/models/fraud/edit",
        {"etag": etag, "description": "Finds fraud", "labels": "team=ml\n\nowner = alice\n"},
    )
    assert answer.status_code == 303
    assert answer.headers["location"] == "/models/fraud/manage?done=model_updated"
    model = registry.get_model("fraud")
    assert model.description == "Finds fraud"
    assert dict(model.labels) == {"team": "ml", "owner": "alice"}
    assert "Description and labels saved." in web.get(answer.headers["location"]).text


def test_a_stale_form_says_it_changed_and_saves_nothing(
    registry: RegistryClient, web: WebClient
) -> None:
    _seed(registry)
    model_etag = _etag(web, "/models/fraud/manage")
    version_etag = _etag(web, "/models/fraud/versions/2/manage")
    model = registry.get_model("fraud")
    model.description = "changed elsewhere"
    registry.update_model(model, update_mask=["description"])
    version = registry.get_version("fraud", 2)
    version.description = "changed elsewhere"
    registry.update_version(version, update_mask=["description"])
    before = _state(registry)
    for path, etag in (
        ("/models/fraud/edit", model_etag),
        ("/models/fraud/versions/2/edit", version_etag),
    ):
        answer = web.post(path, {"etag": etag, "description": "mine", "labels": ""})
        assert answer.status_code == 409, answer.text
        assert "changed since you loaded the page, so nothing was saved" in answer.text
        assert "changed elsewhere</textarea>" in answer.text  # the current values
    for path, etag in (
        ("/models/fraud/versions/2/stage", version_etag),
        ("/models/fraud/versions/2/delete", version_etag),
        ("/models/fraud/delete", model_etag),
    ):
        answer = web.post(path, {"etag": etag, "stage": "STAGING", "comment": ""})
        assert answer.status_code == 409, (path, answer.text)
        assert "changed since you loaded the page" in answer.text
    assert _state(registry) == before


def test_move_and_delete_an_alias(registry: RegistryClient, web: WebClient) -> None:
    _seed(registry)
    answer = web.post("/models/fraud/aliases", {"alias": "production", "version": "2"})
    assert answer.status_code == 303
    assert answer.headers["location"] == "/models/fraud/manage?done=alias_set"
    assert _aliases(registry)["production"] == 2
    answer = web.post("/models/fraud/aliases", {"alias": "shadow", "version": "candidate"})
    assert answer.status_code == 303
    assert _aliases(registry)["shadow"] == 2
    answer = web.post("/models/fraud/aliases/candidate/delete")
    assert answer.status_code == 303
    assert sorted(_aliases(registry)) == ["production", "shadow"]
    # A DRAFT cannot be aliased: the form says why.
    draft = web.post("/models/fraud/aliases", {"alias": "next", "version": "3"})
    assert draft.status_code == 400 and "seal it before aliasing it" in draft.text
    assert web.post("/models/fraud/aliases/nope/delete").status_code == 404


def test_transition_with_a_comment_seal_delete_and_undelete(
    registry: RegistryClient, web: WebClient
) -> None:
    _seed(registry)
    page = web.get("/models/fraud/versions/2/manage").text
    assert '<option value="STAGING">' in page and '<option value="DEVELOPMENT">' not in page
    answer = web.post(
        "/models/fraud/versions/2/stage",
        {"etag": _version_etag(registry, 2), "stage": "STAGING", "comment": "passed review"},
    )
    assert answer.status_code == 303
    assert answer.headers["location"] == "/models/fraud/versions/2/manage?done=stage_changed"
    history = list(registry.list_stage_transitions("fraud", 2))
    assert [(t.comment, t.actor) for t in history][-1] == ("passed review", "anonymous")
    # Only a DRAFT offers the seal.
    assert 'action="/models/fraud/versions/3/manage' not in page
    assert "/seal" not in page
    assert (
        'action="/models/fraud/versions/3/seal"' in web.get("/models/fraud/versions/3/manage").text
    )
    sealed = web.post("/models/fraud/versions/3/seal", {"etag": _version_etag(registry, 3)})
    assert sealed.status_code == 303
    assert registry.get_version("fraud", 3).state == 2  # READY
    deleted = web.post("/models/fraud/versions/2/delete", {"etag": _version_etag(registry, 2)})
    assert deleted.status_code == 303
    assert registry.get_version("fraud", 2).HasField("delete_time")
    assert "candidate" not in _aliases(registry)
    restored = web.post("/models/fraud/versions/2/undelete", {"etag": _version_etag(registry, 2)})
    assert restored.status_code == 303
    assert not registry.get_version("fraud", 2).HasField("delete_time")
    gone = web.post("/models/fraud/delete", {"etag": _model_etag(registry), "force": "1"})
    assert gone.status_code == 303
    assert registry.get_model("fraud").HasField("delete_time")
    page = web.get("/models/fraud/manage").text
    assert 'action="/models/fraud/undelete"' in page and 'action="/models/fraud/edit"' not in page
    back = web.post("/models/fraud/undelete", {"etag": _model_etag(registry)})
    assert back.status_code == 303 and not registry.get_model("fraud").HasField("delete_time")


@pytest.mark.parametrize(
    ("path", "form", "message"),
    [
        (
            "/models/fraud/edit",
            {"description": "x", "labels": "no equals sign"},
            "is not key=value",
        ),
        ("/models/fraud/edit", {"description": "x", "labels": "Bad Key=1"}, "label key must match"),
        ("/models/fraud/aliases", {"alias": "Not_An_Alias", "version": "1"}, "alias: alias"),
        ("/models/fraud/aliases", {"alias": "latest", "version": "1"}, "reserved"),
        ("/models/fraud/aliases", {"alias": "next", "version": "0"}, "is not valid"),
        (
            "/models/fraud/versions/2/stage",
            {"stage": "LIVE", "comment": ""},
            "stage: must be one of",
        ),
        (
            "/models/fraud/versions/2/stage",
            {"stage": "STAGING", "comment": "x" * 1001},
            "longer than 1000",
        ),
        (
            "/models/fraud/versions/2/stage",
            {"stage": "DEVELOPMENT", "comment": ""},
            "already in stage",
        ),
        ("/models/fraud/versions/2/seal", {}, "is sealed (READY)"),
    ],
)
def test_bad_input_is_a_400_page_and_changes_nothing(
    registry: RegistryClient, web: WebClient, path: str, form: dict[str, str], message: str
) -> None:
    _seed(registry)
    before = _state(registry)
    answer = web.post(path, form)
    assert answer.status_code == 400, answer.text
    assert 'role="alert"' in answer.text and message in answer.text
    assert "Traceback" not in answer.text
    assert _state(registry) == before


def test_unknown_resources_and_bad_names_are_clear_pages(
    registry: RegistryClient, web: WebClient
) -> None:
    _seed(registry)
    assert web.get("/models/ghost/manage").status_code == 404
    assert web.get("/models/fraud/versions/9/manage").status_code == 404
    assert web.get("/models/fraud/versions/production/manage").status_code == 200
    assert (
        web.post("/models/ghost/edit", {"etag": "", "description": "", "labels": ""}).status_code
        == 404
    )
    # Writes name versions by number (the manage page's forms do).
    assert web.post("/models/fraud/versions/latest/seal", {}).status_code == 400
    assert web.get("/models/fraud/edit").status_code == 405


@pytest.mark.parametrize("action", sorted(ACTIONS))
@pytest.mark.parametrize("csrf", [None, "wrong-token"])
def test_a_post_without_the_session_csrf_token_is_refused(
    registry: RegistryClient, web: WebClient, action: str, csrf: str | None
) -> None:
    _seed(registry)
    path, form = ACTIONS[action]
    web.get("/models/fraud/manage")  # the session exists
    before = _state(registry)
    answer = web.post(path, form(registry), csrf=csrf)
    assert answer.status_code == 403, answer.text
    assert "did not come from this site" in answer.text
    assert _state(registry) == before


@pytest.mark.parametrize("action", sorted(ACTIONS))
def test_a_reader_sees_no_controls_and_a_forged_post_is_refused(
    registry: RegistryClient,
    web_server: RegistryServer,
    people: Callable[[str], WebClient],
    action: str,
) -> None:
    _seed(registry)
    vera = people("vera")  # the read scope only
    bob = people("bob")  # every scope, but only a viewer of this model
    with as_grpc(web_server, "alice") as alice:
        alice.set_model_policy(
            "fraud", {"owner": ["user:alice"], "viewer": ["user:bob", "user:vera"]}
        )
    path, form = ACTIONS[action]
    for person in (vera, bob):
        for page in ("/models/fraud/manage", "/models/fraud/versions/3/manage"):
            shown = person.get(page)
            assert shown.status_code == 200
            assert 'id="read-only"' in shown.text
            assert 'method="post" action="/models/' not in shown.text
        with as_grpc(web_server, "alice") as alice:
            before = _state(alice)
            answer = person.post(path, form(alice))
            assert answer.status_code == 403, (action, answer.text)
            assert _state(alice) == before


def test_an_editor_sees_what_the_policy_leaves_to_owners_hidden(
    registry: RegistryClient, web_server: RegistryServer, people: Callable[[str], WebClient]
) -> None:
    _seed(registry)
    bob = people("bob")
    alice = people("alice")
    with as_grpc(web_server, "alice") as client:
        client.set_model_policy(
            "fraud",
            {"owner": ["user:alice"], "editor": ["user:bob"]},
            protected_aliases=["production"],
        )
    page = bob.get("/models/fraud/manage").text
    assert 'action="/models/fraud/aliases/candidate/delete"' in page
    assert 'action="/models/fraud/aliases/production/delete"' not in page
    assert 'action="/models/fraud/delete"' not in page  # deleting is the owner's
    assert 'action="/models/fraud/edit"' in page
    version = bob.get("/models/fraud/versions/2/manage").text
    assert '<option value="STAGING">' in version and '<option value="PRODUCTION">' not in version
    assert 'action="/models/fraud/versions/2/delete"' not in version
    # The server refuses what the page hides.
    with as_grpc(web_server, "alice") as client:
        before = _state(client)
        refused = bob.post("/models/fraud/aliases", {"alias": "production", "version": "2"})
        assert refused.status_code == 403 and "protected" in refused.text
        promoted = bob.post(
            "/models/fraud/versions/2/stage",
            {"etag": _version_etag(client, 2), "stage": "PRODUCTION", "comment": ""},
        )
        assert promoted.status_code == 403
        assert _state(client) == before
    owner = alice.get("/models/fraud/manage").text
    assert 'action="/models/fraud/aliases/production/delete"' in owner
    assert 'action="/models/fraud/delete"' in owner


def test_on_a_model_without_a_policy_the_scopes_decide(
    registry: RegistryClient, web_server: RegistryServer, people: Callable[[str], WebClient]
) -> None:
    _seed(registry)
    vera = people("vera")  # registry.read only
    alice = people("alice")  # read, create, update, delete
    for page in ("/models/fraud/manage", "/models/fraud/versions/3/manage"):
        assert 'id="read-only"' in vera.get(page).text
        shown = alice.get(page).text
        assert 'id="read-only"' not in shown and 'method="post" action="/models/' in shown
    with as_grpc(web_server, "root") as root:
        before = _state(root)
        refused = vera.post("/models/fraud/aliases", {"alias": "production", "version": "2"})
        assert refused.status_code == 403
        assert _state(root) == before


def test_refused_writes_are_access_events_as_grpc_ones(
    registry: RegistryClient, web_server: RegistryServer, people: Callable[[str], WebClient]
) -> None:
    """A write re-rendered with its message (stale, failed precondition) and one refused by
    role are recorded naming the write's RPC and the resource it writes."""
    _seed(registry)
    alice = people("alice")
    bob = people("bob")
    etag = _etag(alice, "/models/fraud/manage")
    with as_grpc(web_server, "alice") as owner:
        owner.set_model_policy("fraud", {"owner": ["user:alice"], "viewer": ["user:bob"]})
        model = owner.get_model("fraud")
        model.description = "changed elsewhere"
        owner.update_model(model, update_mask=["description"])
    stale = alice.post("/models/fraud/edit", {"etag": etag, "description": "", "labels": ""})
    assert stale.status_code == 409
    assert alice.post("/models/fraud/versions/2/seal", {}).status_code == 400
    assert bob.post("/models/fraud/aliases", {"alias": "x", "version": "1"}).status_code == 403
    with as_grpc(web_server, "root") as admin:
        events = list(admin.list_events(filter="kind = ACCESS"))
    seen = {(e.principal, e.method, e.resource, e.outcome.split()[0]) for e in events}
    assert ("user:alice", "UpdateModel", "models/fraud", "ABORTED") in seen
    assert (
        "user:alice",
        "SealModelVersion",
        "models/fraud/versions/2",
        "FAILED_PRECONDITION",
    ) in seen
    assert any(e[:2] == ("user:bob", "SetAlias") and e[3] == "PERMISSION_DENIED" for e in seen)
