"""The event log through the API: every mutating RPC records exactly one event naming its
principal, method and resource, every read records none (driven by the service descriptors,
so a new RPC cannot forget); refused and failed calls become access events; ListEvents
filters and pages; VerifyEvents finds a tampered row."""

from __future__ import annotations

import io
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc
import pytest

from modelregistry.client import (
    NotFoundError,
    PermissionDeniedError,
    RegistryClient,
    RegistryError,
)
from modelregistry.v1 import events_pb2 as ev
from modelregistry.v1 import payload_pb2_grpc as pl_grpc
from modelregistry_server.api.authentication import Authentication, Credentials
from modelregistry_server.api.permissions import METHOD_REQUIREMENTS, MUTATING
from modelregistry_server.app import SERVICES, RegistryServer
from modelregistry_server.domain.errors import Reason, Unauthenticated
from modelregistry_server.domain.events import Event, EventKind
from modelregistry_server.domain.identity import AuthMethod, Caller, Permission
from tests.api.registry_helpers import expect_error
from tests.support.payload_helpers import chunk, header

TENANT = "default"
TOKENS = {
    "ann": frozenset({Permission.ADMIN}),
    "rob": frozenset({Permission.READ}),
    "wes": frozenset({Permission.READ, Permission.CREATE, Permission.UPDATE}),
    "eve": frozenset({Permission.READ}),
}


class _Tokens:
    """The bearer is the subject; its scopes come from TOKENS."""

    def authenticate(self, credentials: Credentials) -> Caller | None:
        if credentials.bearer is None:
            return None
        scopes = TOKENS.get(credentials.bearer)
        if scopes is None:
            raise Unauthenticated("no such token", reason=Reason.CREDENTIALS_INVALID)
        return Caller(TENANT, credentials.bearer, scopes, method=AuthMethod.JWT)


@pytest.fixture
def guarded(server: RegistryServer) -> RegistryServer:
    server.interceptor.use_authentication(Authentication([_Tokens()]))
    return server


def _as(server: RegistryServer, who: str, **metadata: str) -> RegistryClient:
    pairs = [("authorization", f"Bearer {who}"), *metadata.items()]
    return RegistryClient(server.address, metadata=pairs, timeout=20, retries=0)


def _events_after(server: RegistryServer, after: int) -> list[Event]:
    return server.store.read_events(TENANT, after, 1000)


def _last(server: RegistryServer) -> int:
    head = server.store.event_head(TENANT)
    return 0 if head is None else head.last_sequence


@dataclass(frozen=True)
class Step:
    method: str  # "/modelregistry.v1.Service/Method"
    run: Callable[[RegistryClient], Any]
    resource: str = ""  # the one event's resource (mutating steps); a trailing * a prefix

    def names(self, resource: str) -> bool:
        if self.resource.endswith("*"):
            return resource.startswith(self.resource[:-1])
        return resource == self.resource


def _unfinished_upload(client: RegistryClient, upload_id: str) -> None:
    """An upload that stops after 10 of 100 declared bytes (its session stays ACTIVE)."""
    stub = pl_grpc.PayloadServiceStub(client.channel)
    requests = [
        header("models/m/versions/2/files/part", upload_id, size=100),
        chunk(0, b"x" * 10),
    ]
    with pytest.raises(grpc.RpcError):
        stub.UploadFile(iter(requests), timeout=20, metadata=[("authorization", "Bearer ann")])


def _resend_first_delivery(client: RegistryClient) -> Any:
    """Resend the delivery the dispatcher queued for the webhook's own creation event."""
    deadline = time.monotonic() + 20
    while not (found := list(client.list_webhook_deliveries("hook"))):
        assert time.monotonic() < deadline, "the dispatcher queued nothing"
        time.sleep(0.05)
    return client.resend_webhook_delivery(found[0].name)


def _closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/down"


def _update_webhook(client: RegistryClient) -> Any:
    hook = client.get_webhook("hook")
    hook.description = "changed"
    return client.update_webhook(hook, update_mask=["description"])


def _watch_first(client: RegistryClient) -> Any:
    watch = client.watch_events(after_cursor="events/0")
    try:
        return next(watch)
    finally:
        watch.close()


def _steps() -> list[Step]:
    mr, pl, es, ac, wh = (
        "/modelregistry.v1.ModelRegistry/",
        "/modelregistry.v1.PayloadService/",
        "/modelregistry.v1.EventService/",
        "/modelregistry.v1.AccessService/",
        "/modelregistry.v1.WebhookService/",
    )

    def update_model(c: RegistryClient) -> Any:
        model = c.get_model("m")
        model.description = "changed"
        return c.update_model(model, update_mask=["description"])

    def update_version(c: RegistryClient) -> Any:
        version = c.get_version("m", 1)
        version.description = "v1"
        return c.update_version(version, update_mask=["description"])

    v1, v2 = "models/m/versions/1", "models/m/versions/2"
    return [
        Step(mr + "CreateModel", lambda c: c.create_model("m"), "models/m"),
        Step(mr + "GetModel", lambda c: c.get_model("m")),
        Step(mr + "ListModels", lambda c: list(c.list_models())),
        Step(mr + "UpdateModel", update_model, "models/m"),
        Step(mr + "CreateModelVersion", lambda c: c.create_version("m"), v1),
        Step(mr + "GetModelVersion", lambda c: c.get_version("m", 1)),
        Step(mr + "ListModelVersions", lambda c: list(c.list_versions("m"))),
        Step(mr + "UpdateModelVersion", update_version, v1),
        Step(pl + "ListUploads", lambda c: list(c.list_uploads("m", 1))),
        Step(
            pl + "UploadFile",
            lambda c: c.upload_file("m", 1, io.BytesIO(b"weights"), upload_id="up-1"),
            v1 + "/files/payload",
        ),
        Step(pl + "GetUploadStatus", lambda c: c.get_upload_status("up-1")),
        Step(pl + "GetFile", lambda c: c.get_file("m", 1)),
        Step(pl + "ListFiles", lambda c: list(c.list_files("m", 1))),
        Step(pl + "DownloadFile", lambda c: b"".join(c.iter_file("m", 1))),
        Step(pl + "VerifyFile", lambda c: c.verify_file("m", 1)),
        Step(mr + "SealModelVersion", lambda c: c.seal_version("m", 1), v1),
        Step(
            mr + "TransitionModelVersionStage", lambda c: c.transition_stage("m", 1, "STAGING"), v1
        ),
        Step(mr + "ListStageTransitions", lambda c: list(c.list_stage_transitions("m", 1))),
        Step(mr + "SetAlias", lambda c: c.set_alias("m", "prod", 1), "models/m/aliases/prod"),
        Step(mr + "GetAlias", lambda c: c.get_alias("m", "prod")),
        Step(mr + "ListAliases", lambda c: c.list_aliases("m")),
        Step(mr + "ListAliasHistory", lambda c: list(c.list_alias_history("m", "prod"))),
        Step(mr + "DeleteAlias", lambda c: c.delete_alias("m", "prod"), "models/m/aliases/prod"),
        Step(mr + "GetLineage", lambda c: c.get_lineage("m", 1)),
        Step(
            mr + "SetModelPolicy",
            lambda c: c.set_model_policy("m", {"owner": ["user:ann"]}),
            "models/m",
        ),
        Step(mr + "GetModelPolicy", lambda c: c.get_model_policy("m")),
        Step(mr + "CreateModelVersion", lambda c: c.create_version("m"), v2),
        Step(
            pl + "CancelUpload",
            lambda c: (_unfinished_upload(c, "up-2"), c.cancel_upload("up-2")),
            v2 + "/files/part",
        ),
        Step(mr + "DeleteModelVersion", lambda c: c.delete_version("m", 2), v2),
        Step(mr + "UndeleteModelVersion", lambda c: c.undelete_version("m", 2), v2),
        Step(mr + "DeleteModel", lambda c: c.delete_model("m", force=True), "models/m"),
        Step(mr + "UndeleteModel", lambda c: c.undelete_model("m"), "models/m"),
        Step(es + "ListEvents", lambda c: list(c.list_events())),
        Step(es + "VerifyEvents", lambda c: c.verify_events()),
        Step(es + "WatchEvents", _watch_first),
        Step(ac + "GetCaller", lambda c: c.get_caller()),
        Step(
            ac + "CreateApiKey",
            lambda c: c.create_api_key("ci", scopes=["registry.read"]),
            "apiKeys/*",
        ),
        Step(ac + "ListApiKeys", lambda c: list(c.list_api_keys())),
        Step(
            ac + "RevokeApiKey",
            lambda c: c.revoke_api_key(next(iter(c.list_api_keys())).name),
            "apiKeys/*",
        ),
        Step(
            wh + "CreateWebhook",
            lambda c: c.create_webhook(
                "hook", _closed_port_url(), filter='method = "CreateWebhook"'
            ),
            "webhooks/hook",
        ),
        Step(wh + "GetWebhook", lambda c: c.get_webhook("hook")),
        Step(wh + "ListWebhooks", lambda c: list(c.list_webhooks())),
        Step(wh + "UpdateWebhook", _update_webhook, "webhooks/hook"),
        Step(
            wh + "RotateWebhookSecret", lambda c: c.rotate_webhook_secret("hook"), "webhooks/hook"
        ),
        Step(wh + "ListWebhookDeliveries", lambda c: list(c.list_webhook_deliveries("hook"))),
        Step(wh + "ResendWebhookDelivery", _resend_first_delivery, "webhooks/hook/deliveries/*"),
        Step(wh + "DeleteWebhook", lambda c: c.delete_webhook("hook"), "webhooks/hook"),
    ]


def _served_methods() -> set[str]:
    return {f"/{s.full_name}/{m.name}" for s in SERVICES for m in s.methods}


def test_the_steps_cover_every_rpc_and_the_mutating_set_is_explicit() -> None:
    covered = {step.method for step in _steps()}
    assert covered == _served_methods(), "add a step for every new RPC"
    assert set(METHOD_REQUIREMENTS) >= MUTATING
    mutating_steps = {s.method for s in _steps() if s.resource}
    assert mutating_steps == MUTATING & _served_methods()


def test_every_mutating_rpc_records_one_event_and_reads_none(guarded: RegistryServer) -> None:
    with _as(guarded, "ann") as ann:
        for step in _steps():
            before = _last(guarded)
            step.run(ann)
            events = _events_after(guarded, before)
            short = step.method.rsplit("/", 1)[-1]
            changes = [e for e in events if e.kind is EventKind.CHANGE]
            if step.method in MUTATING:
                assert len(changes) == 1, (short, changes)
                (event,) = changes
                assert (event.principal, event.method) == ("user:ann", short), short
                assert step.names(event.resource), (short, event.resource)
                assert event.request_id, short
            else:
                assert events == [], (short, events)
    assert guarded.audit.verify_tenant(TENANT).ok


def test_events_carry_the_request_id_and_etags(guarded: RegistryServer) -> None:
    with _as(guarded, "ann", **{"x-request-id": "req-42"}) as ann:
        ann.create_model("m")
        model = ann.get_model("m")
        model.description = "d"
        updated = ann.update_model(model, update_mask=["description"])
        (page,) = [ann.list_events_page(filter='method = "UpdateModel"')]
    (event,) = page.events
    assert event.request_id == "req-42"
    assert (event.etag_before, event.etag_after) == (model.etag, updated.etag)
    assert list(event.summary["update_mask"]) == ["description"]
    assert event.kind == ev.EVENT_KIND_CHANGE and event.outcome == "OK"
    assert event.name == f"events/{event.sequence}"


def test_a_refused_or_failed_change_is_an_access_event_and_no_change(
    guarded: RegistryServer,
) -> None:
    with _as(guarded, "ann") as ann, _as(guarded, "rob") as rob:
        ann.create_model("m")
        before = _last(guarded)
        with expect_error(PermissionDeniedError, "SCOPE_MISSING"):
            rob.create_model("n")
        with pytest.raises(RegistryError):
            ann.create_model("m")  # ALREADY_EXISTS: a failed mutation
        rob.get_model("m")  # a read that succeeds: nothing
        with pytest.raises(RegistryError):
            rob.get_model("nope")  # a failed read: nothing
    events = _events_after(guarded, before)
    assert [(e.kind, e.principal, e.method, e.resource, e.outcome) for e in events] == [
        (
            EventKind.ACCESS,
            "user:rob",
            "CreateModel",
            "models/n",
            "PERMISSION_DENIED SCOPE_MISSING",
        ),
        (
            EventKind.ACCESS,
            "user:ann",
            "CreateModel",
            "models/m",
            "ALREADY_EXISTS MODEL_ALREADY_EXISTS",
        ),
    ]


def test_unauthenticated_calls_are_not_recorded(guarded: RegistryServer) -> None:
    before = _last(guarded)
    with RegistryClient(guarded.address, timeout=10, retries=0) as nobody:
        for _ in range(3):
            with pytest.raises(RegistryError):
                nobody.create_model("m")
    assert _events_after(guarded, before) == []


def test_list_events_filters_pages_and_scopes(guarded: RegistryServer) -> None:
    with _as(guarded, "ann") as ann, _as(guarded, "wes") as wes, _as(guarded, "rob") as rob:
        for model_id in ("a", "b"):
            wes.create_model(model_id)
            wes.create_version(model_id)
        with pytest.raises(RegistryError):
            rob.create_model("c")  # an access event: only admins see it
        everything = list(ann.list_events(page_size=2))
        assert [e.sequence for e in everything] == list(range(1, 6))
        about_a = list(ann.list_events(filter='resource = "models/a*"'))
        assert [e.resource for e in about_a] == ["models/a", "models/a/versions/1"]
        by_wes = ann.list_events(filter='principal = "user:wes" AND method = "CreateModelVersion"')
        assert [e.resource for e in by_wes] == ["models/a/versions/1", "models/b/versions/1"]
        newest = ann.list_events_page(order_by="sequence desc", page_size=1).events
        assert newest[0].sequence == 5
        assert [e.kind for e in ann.list_events(filter="kind = ACCESS")] == [ev.EVENT_KIND_ACCESS]
        # Without registry.admin: the changes of models, no access events.
        assert [e.sequence for e in rob.list_events()] == [1, 2, 3, 4]
        first = rob.list_events_page(page_size=1)
        with expect_error(RegistryError, "INVALID_PAGE_TOKEN"):
            ann.list_events_page(page_size=1, page_token=first.next_page_token)
        with expect_error(PermissionDeniedError, "SCOPE_MISSING"):
            rob.verify_events()
        assert ann.verify_events().ok


def test_model_policies_decide_whose_events_a_caller_sees(guarded: RegistryServer) -> None:
    with _as(guarded, "ann") as ann, _as(guarded, "wes") as wes, _as(guarded, "rob") as rob:
        ann.create_model("open")
        ann.create_model("guarded")
        ann.set_model_policy("guarded", {"owner": ["user:wes"], "viewer": ["user:rob"]})
        wes.create_version("guarded")
        owner_view = [(e.method, e.resource) for e in wes.list_events()]
        assert owner_view == [
            ("CreateModel", "models/open"),
            ("CreateModel", "models/guarded"),
            ("SetModelPolicy", "models/guarded"),
            ("CreateModelVersion", "models/guarded/versions/1"),
        ]
        # A viewer sees the model, not who changed it; the policy-less model is everyone's.
        assert [e.resource for e in rob.list_events()] == ["models/open"]
        watch = rob.watch_events(after_cursor="events/0")
        try:
            assert next(watch).resource == "models/open"
        finally:
            watch.close()
        (policy_event,) = ann.list_events_page(filter='method = "SetModelPolicy"').events
        bindings = {
            b["role"]: list(b["members"]) for b in policy_event.summary["policy"]["bindings"]
        }
        assert bindings == {"owner": ["user:wes"], "viewer": ["user:rob"]}


def test_a_read_refused_by_a_policy_is_an_access_event(guarded: RegistryServer) -> None:
    with _as(guarded, "ann") as ann, _as(guarded, "eve") as eve:
        ann.create_model("guarded")
        ann.set_model_policy("guarded", {"owner": ["user:ann"]})
        before = _last(guarded)
        with expect_error(NotFoundError, "MODEL_NOT_FOUND"):
            eve.get_model("guarded")  # exactly what a missing model answers
        with expect_error(NotFoundError, "MODEL_NOT_FOUND"):
            eve.get_model("missing")  # a missing model: nothing recorded
    (event,) = _events_after(guarded, before)
    assert (event.kind, event.principal, event.method, event.resource, event.outcome) == (
        EventKind.ACCESS,
        "user:eve",
        "GetModel",
        "models/guarded",
        "NOT_FOUND MODEL_NOT_FOUND",
    )


def test_verify_events_reports_the_first_tampered_row(guarded: RegistryServer) -> None:
    with _as(guarded, "ann") as ann:
        for model_id in ("a", "b", "c"):
            ann.create_model(model_id)
        result = ann.verify_events()
        assert (result.ok, result.checked_events, result.last_sequence) == (True, 3, 3)
        _sql(guarded, "UPDATE events SET principal = 'user:eve' WHERE sequence = 2")
        result = ann.verify_events()
        assert (result.ok, result.failed_sequence) == (False, 2)
        assert "hash" in result.reason


def _sql(server: RegistryServer, statement: str) -> None:
    db: Any = server.store.backend.database
    with db.connection_context():
        db.execute_sql(statement)
