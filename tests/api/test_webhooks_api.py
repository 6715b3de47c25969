"""Webhooks through the shipped client against a loopback receiver: signed deliveries in order,
retries with growing delays, the delivery log, resend, filters, disabled webhooks, two
dispatchers delivering each event once, secrets that never come back, bad input."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import itertools
import json
import logging
import socket
import threading
import time
from typing import Any

import pytest
from google.protobuf import json_format

from modelregistry.client import (
    AbortedError,
    AlreadyExistsError,
    InvalidArgumentError,
    NotFoundError,
    RegistryClient,
)
from modelregistry.v1 import webhooks_pb2 as wh
from modelregistry_server.api.webhook_servicer import event_json
from modelregistry_server.app import RegistryServer
from modelregistry_server.config import Config
from modelregistry_server.domain.registry import utc_now
from modelregistry_server.domain.webhook_dispatch import Dispatcher, DispatchSettings
from modelregistry_server.domain.webhook_signing import SecretBox
from modelregistry_server.outbound.http_sender import HttpSender
from modelregistry_server.storage.metadata import open_metadata_store
from tests.api.registry_helpers import expect_error
from tests.support.servers import serving
from tests.support.webhook_receiver import Receipt, receiving, wait_for

FAST = {
    "webhook_backoff_seconds": 0.1,
    "webhook_max_backoff_seconds": 2.0,
    "webhook_poll_seconds": 0.05,
    "webhook_timeout_seconds": 2.0,
    "webhook_max_attempts": 4,
}
POLL_LONGER_THAN_BOUND_S = 6.0
BOUND_S = 4.0  # below the poll: only wake-ups deliver in time


@pytest.fixture
def server_config(server_config: Config) -> Config:
    return dataclasses.replace(server_config, **FAST)  # type: ignore[arg-type]


def receiver_verifies(secret: str, headers: dict[str, str], body: bytes) -> bool:
    """The README's receiver check, in plain Python: signature and a 5-minute window."""
    fields = dict(p.split("=", 1) for p in headers["X-Registry-Signature"].split(","))
    timestamp = int(fields["t"])
    if abs(time.time() - timestamp) > 300:
        return False
    expected = hmac.new(
        secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256
    ).hexdigest()
    return hmac.compare_digest(expected, fields["v1"])


def _doc(receipt: Receipt) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(receipt.body)
    return document


def _deliveries(client: RegistryClient, webhook: str) -> list[wh.WebhookDelivery]:
    return list(client.list_webhook_deliveries(webhook))


def test_deliveries_arrive_in_order_signed_and_filtered(client: RegistryClient) -> None:
    with receiving() as receiver:
        made = client.create_webhook(
            "ci", receiver.url, filter='method = "CreateModel"', description="models"
        )
        assert made.secret.startswith("whsec_")
        for name in ("a", "b", "c"):
            client.create_model(name)
        model = client.get_model("a")
        model.description = "not delivered: the filter leaves UpdateModel out"
        client.update_model(model, update_mask=["description"])
        wait_for(lambda: len(receiver.got()) >= 3, what="three deliveries")
        time.sleep(0.3)  # nothing else arrives
        got = receiver.got()
    assert [_doc(r)["event"]["resource"] for r in got] == ["models/a", "models/b", "models/c"]
    events = {e.name: e for e in client.list_events(filter='method = "CreateModel"')}
    for receipt in got:
        assert receipt.path == "/hook?token=t0"
        assert receiver_verifies(made.secret, receipt.headers, receipt.body)
        assert not receiver_verifies("whsec_other", receipt.headers, receipt.body)
        doc = _doc(receipt)
        assert doc["webhook"] == "webhooks/ci"
        assert doc["cursor"] == doc["event"]["name"] == receipt.headers["X-Registry-Event"]
        assert doc["delivery"] == receipt.headers["X-Registry-Delivery"]
        assert receipt.headers["Content-Type"] == "application/json"
        assert doc["event"] == json_format.MessageToDict(events[doc["cursor"]])
    log = _deliveries(client, "ci")
    assert [d.state for d in log] == [wh.DELIVERY_STATE_DELIVERED] * 3
    assert [d.event for d in log] == [_doc(r)["cursor"] for r in reversed(got)]  # newest first
    for delivery in log:
        (attempt,) = delivery.attempts
        assert (attempt.number, attempt.status_code, attempt.error) == (1, 200, "")
        assert delivery.attempt_count == 1
    assert client.get_webhook("ci").cursor >= log[0].event


def test_a_failing_receiver_gets_retries_with_growing_delays(client: RegistryClient) -> None:
    with receiving([500, 500, 503]) as receiver:
        client.create_webhook("flaky", receiver.url, filter='method = "CreateModel"')
        client.create_model("m")
        wait_for(lambda: len(receiver.got()) >= 4, what="four attempts")
        got = receiver.got()
    assert len({r.headers["X-Registry-Delivery"] for r in got}) == 1  # one delivery, retried
    gaps = [b.at - a.at for a, b in itertools.pairwise(got)]
    # 0.1 s doubling, each wait in the upper half of its ceiling: [0.05-0.1], [0.1-0.2] ...
    assert gaps[0] >= 0.05 and gaps[1] >= 0.1 and gaps[2] >= 0.2, gaps
    assert gaps[2] > gaps[0], gaps
    (delivery,) = _deliveries(client, "flaky")
    assert delivery.state == wh.DELIVERY_STATE_DELIVERED
    assert [(a.number, a.status_code, a.error) for a in delivery.attempts] == [
        (1, 500, "http 500"),
        (2, 500, "http 500"),
        (3, 503, "http 503"),
        (4, 200, ""),
    ]
    assert all(a.duration_ms >= 0 for a in delivery.attempts)


def _closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/down"


def test_a_receiver_that_is_down_is_retried_then_failed_and_resent(
    client: RegistryClient,
) -> None:
    client.create_webhook("down", _closed_port_url(), filter='method = "CreateModel"')
    client.create_model("first")
    wait_for(
        lambda: [d.state for d in _deliveries(client, "down")] == [wh.DELIVERY_STATE_FAILED],
        what="the delivery to fail",
    )
    (failed,) = _deliveries(client, "down")
    assert [(a.status_code, a.error) for a in failed.attempts] == [(0, "connection refused")] * 4
    assert failed.attempt_count == 4
    with receiving() as receiver:
        hook = client.get_webhook("down")
        hook.url = receiver.url
        client.update_webhook(hook, update_mask=["url"])
        client.create_model("second")  # the webhook moved on past the failed delivery
        wait_for(lambda: len(receiver.got()) == 1, what="the next event")
        again = client.resend_webhook_delivery(failed.name)
        assert again.state == wh.DELIVERY_STATE_PENDING
        wait_for(lambda: len(receiver.got()) == 2, what="the resent delivery")
        got = receiver.got()
    assert [_doc(r)["event"]["resource"] for r in got] == ["models/second", "models/first"]
    assert got[1].headers["X-Registry-Delivery"] == failed.delivery_id
    resent = next(d for d in _deliveries(client, "down") if d.delivery_id == failed.delivery_id)
    assert resent.state == wh.DELIVERY_STATE_DELIVERED
    assert [a.number for a in resent.attempts] == [1, 2, 3, 4, 5]
    failed_only = list(client.list_webhook_deliveries("down", state="FAILED"))
    assert failed_only == []
    events = [e.method for e in client.list_events(filter='resource = "webhooks/down*"')]
    assert events == ["CreateWebhook", "UpdateWebhook", "ResendWebhookDelivery"]


def test_a_disabled_webhook_gets_nothing(client: RegistryClient) -> None:
    with receiving() as receiver:
        client.create_webhook("off", receiver.url, enabled=False)
        client.create_model("while-off")
        time.sleep(0.4)
        assert receiver.got() == []
        assert _deliveries(client, "off") == []
        hook = client.get_webhook("off")
        assert not hook.enabled
        hook.enabled = True
        client.update_webhook(hook, update_mask=["enabled"])
        client.create_model("after")
        wait_for(
            lambda: any(_doc(r)["event"]["resource"] == "models/after" for r in receiver.got())
        )
        resources = [_doc(r)["event"]["resource"] for r in receiver.got()]
    assert "models/while-off" not in resources


def test_two_dispatchers_deliver_each_event_once_in_order(
    server_config: Config, metadata_url: str
) -> None:
    """Two dispatchers (two threads each) on two stores of one PostgreSQL database, neither of
    which wrote the events (other replicas' processes), or on the server's SQLite store. Their
    poll is longer than the test's bound, so on PostgreSQL only the LISTEN/NOTIFY wake-ups can
    deliver in time."""
    config = dataclasses.replace(server_config, webhook_workers=0)
    with serving(config) as server, receiving() as receiver:
        client = RegistryClient(server.address, timeout=30)
        made = client.create_webhook("once", receiver.url, filter='method = "CreateModel"')
        on_pg = metadata_url.startswith("postgresql")
        own = [open_metadata_store(metadata_url, max_connections=4) for _ in "ab" if on_pg]
        stores = own or [server.store, server.store]
        box = SecretBox(server.store.webhook_secret_key())
        stopping = threading.Event()
        threads = []
        for store in stores:
            dispatcher = Dispatcher(
                store,
                HttpSender(),
                event_json,
                box,
                clock=utc_now,
                settings=DispatchSettings(poll_s=POLL_LONGER_THAN_BOUND_S, backoff_s=0.05),
            )
            for _ in range(2):
                thread = threading.Thread(target=dispatcher.run, args=(stopping,))
                thread.start()
                threads.append(thread)
        try:
            for store in own:  # listening before the writes, so no poll is needed
                assert store.event_wakeups().listening.wait(10)  # type: ignore[attr-defined]
            for n in range(6):
                client.create_model(f"m{n}")
            wait_for(lambda: len(receiver.got()) >= 6, what="six deliveries", timeout=BOUND_S)
            for n in range(6, 12):
                client.create_model(f"m{n}")
            wait_for(lambda: len(receiver.got()) >= 12, what="twelve deliveries", timeout=BOUND_S)
            time.sleep(0.3)
        finally:
            stopping.set()
            for thread in threads:
                thread.join(timeout=10)
            for store in own:
                store.close()
        got = receiver.got()
        client.close()
    assert [_doc(r)["event"]["resource"] for r in got] == [f"models/m{n}" for n in range(12)]
    assert all(receiver_verifies(made.secret, r.headers, r.body) for r in got)


def test_secrets_never_come_back(
    client: RegistryClient, server: RegistryServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with receiving() as receiver:
        made = client.create_webhook("s", receiver.url, filter='method = "CreateModel"')
        secret = made.secret
        assert secret.encode() not in made.webhook.SerializeToString()
        assert secret.encode() not in client.get_webhook("s").SerializeToString()
        assert secret.encode() not in client.list_webhooks_page().SerializeToString()
        rotated = client.rotate_webhook_secret("s", etag=made.webhook.etag)
        assert rotated.secret != secret and rotated.secret.startswith("whsec_")
        client.create_model("after-rotation")
        wait_for(lambda: len(receiver.got()) == 1)
        (receipt,) = receiver.got()
        assert receiver_verifies(rotated.secret, receipt.headers, receipt.body)
        assert not receiver_verifies(secret, receipt.headers, receipt.body)
    for text in (secret, rotated.secret):
        assert text not in caplog.text
        for event in client.list_events():
            assert text not in str(event)
    db: Any = server.store.backend.database  # type: ignore[attr-defined]
    with db.connection_context():
        rows = db.execute_sql("SELECT * FROM webhooks").fetchall()
    assert rotated.secret not in repr(rows) and rotated.secret[6:] not in repr(rows)


def test_bad_input_is_refused_naming_the_field(client: RegistryClient) -> None:
    for url in (
        "http://example.com/hook",  # plain http off loopback
        "ftp://127.0.0.1/x",
        "https://",
        "https://user:pw@example.com/x",
        "https://example.com/x#frag",
        "not a url",
        "",
    ):
        with expect_error(InvalidArgumentError, "INVALID_ARGUMENT", field="webhook.url", case=url):
            client.create_webhook("bad", url)
    with expect_error(InvalidArgumentError, "INVALID_FILTER", field="webhook.filter"):
        client.create_webhook("bad", "https://example.com/x", filter="nope = 1")
    with expect_error(InvalidArgumentError, "INVALID_ARGUMENT", field="webhook_id"):
        client.create_webhook("Bad_Id", "https://example.com/x")
    assert list(client.list_webhooks()) == []
    refused = list(client.list_events(filter='kind = ACCESS AND resource = "webhooks/bad"'))
    assert refused and refused[0].method == "CreateWebhook"
    assert refused[0].outcome == "INVALID_ARGUMENT INVALID_ARGUMENT"
    made = client.create_webhook("ok", "https://example.com/x", enabled=False)
    with expect_error(AlreadyExistsError, "WEBHOOK_ALREADY_EXISTS"):
        client.create_webhook("ok", "https://example.com/y")
    with expect_error(NotFoundError, "WEBHOOK_NOT_FOUND"):
        client.get_webhook("missing")
    stale = made.webhook
    fresh = client.get_webhook("ok")
    fresh.description = "changed"
    client.update_webhook(fresh, update_mask=["description"])
    stale.description = "stale"
    with expect_error(AbortedError, "ETAG_MISMATCH"):
        client.update_webhook(stale, update_mask=["description"])
    with expect_error(InvalidArgumentError, "INVALID_UPDATE_MASK", field="update_mask"):
        client.update_webhook(client.get_webhook("ok"), update_mask=["cursor"])
    hook = client.get_webhook("ok")
    hook.url = "http://10.0.0.1/x"
    with expect_error(InvalidArgumentError, "INVALID_ARGUMENT", field="webhook.url"):
        client.update_webhook(hook, update_mask=["url"])
    with expect_error(NotFoundError, "DELIVERY_NOT_FOUND"):
        client.resend_webhook_delivery("webhooks/ok/deliveries/" + "0" * 32)
    with expect_error(InvalidArgumentError, "INVALID_ARGUMENT", field="name"):
        client.resend_webhook_delivery("webhooks/ok/deliveries/nope")
    with expect_error(AbortedError, "ETAG_MISMATCH"):
        client.delete_webhook("ok", etag="stale")
    assert client.get_webhook("ok").description == "changed"
    client.delete_webhook("ok")
    with expect_error(NotFoundError, "WEBHOOK_NOT_FOUND"):
        client.list_webhook_deliveries_page("ok")


def test_listing_pages(client: RegistryClient) -> None:
    for n in range(5):
        client.create_webhook(f"h{n}", "https://example.com/x", enabled=False)
    first = client.list_webhooks_page(page_size=2)
    assert [h.name for h in first.webhooks] == ["webhooks/h0", "webhooks/h1"]
    assert [h.name for h in client.list_webhooks(page_size=2)] == [
        f"webhooks/h{n}" for n in range(5)
    ]
