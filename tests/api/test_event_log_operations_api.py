"""Operating the event log: maintenance records purges and prunes by retention (the chain
stays verifiable), the ``events verify`` command finds a tampered row, request ids reach the
events, failed uploads are access events, and the access budget bounds what refused calls
can write."""

from __future__ import annotations

import dataclasses
import io
from typing import Any

import grpc
import pytest

from modelregistry.client import RegistryClient
from modelregistry.v1 import payload_pb2_grpc as pl_grpc
from modelregistry_server.__main__ import main
from modelregistry_server.app import RegistryServer
from modelregistry_server.config import Config
from modelregistry_server.domain.audit import AccessBudget
from modelregistry_server.domain.events import EventKind
from modelregistry_server.storage.metadata import open_metadata_store
from tests.support.payload_helpers import chunk, header
from tests.support.servers import serving


def _all_events(server: RegistryServer) -> list[Any]:
    return server.store.read_events("default", 0, 1000)


def test_maintenance_records_purges_and_prunes_old_events(server_config: Config) -> None:
    config = dataclasses.replace(server_config, retention_hours=0, event_retention_days=1e-9)
    with serving(config) as server, RegistryClient(server.address, timeout=30) as client:
        client.create_model("gone")
        client.create_version("gone")
        client.delete_model("gone", force=True)
        report = server.run_maintenance()
        assert report.failed == () and report.pruned_events == 4  # 3 changes and the purge
        events = _all_events(server)
        # The purge's event was pruned too (older than a microsecond by now): what is left is
        # the record of the pruning, anchored at the first kept sequence.
        assert [(e.sequence, e.principal, e.method) for e in events] == [
            (5, "system", "PruneEvents")
        ]
        assert events[0].summary["removed"] == 4
        assert client.verify_events().ok
        client.create_model("next")
        assert [e.sequence for e in client.list_events()] == [5, 6]
        assert client.verify_events().ok


def test_purge_events_name_what_was_purged(server_config: Config) -> None:
    config = dataclasses.replace(server_config, retention_hours=0)
    with serving(config) as server, RegistryClient(server.address, timeout=30) as client:
        client.create_model("gone")
        client.delete_model("gone")
        server.run_maintenance()
        last = _all_events(server)[-1]
        assert (last.principal, last.method) == ("system", "PurgeModel")
        assert last.resource == "models/gone"
        created = client.list_events_page(filter='resource = "models/gone"').events
        assert [e.method for e in created] == ["CreateModel", "DeleteModel", "PurgeModel"]


def _sql(url: str, statement: str) -> None:
    store = open_metadata_store(url)
    try:
        db: Any = store.backend.database
        with db.connection_context():
            db.execute_sql(statement)
    finally:
        store.close()


def test_the_verify_command_reports_the_first_bad_event(
    server_config: Config, capsys: pytest.CaptureFixture[str]
) -> None:
    url = server_config.database_url
    with serving(server_config) as server, RegistryClient(server.address, timeout=30) as client:
        for model_id in ("a", "b", "c"):
            client.create_model(model_id)
    assert main(["events", "verify", "--database-url", url]) == 0
    assert "tenant default: ok, 3 events, last 3" in capsys.readouterr().out
    _sql(url, "UPDATE events SET resource = 'models/z' WHERE sequence = 2")
    assert main(["events", "verify", "--database-url", url]) == 1
    assert "tenant default: FAILED at event 2: hash does not match" in capsys.readouterr().out
    _sql(url, "DELETE FROM events WHERE sequence = 2")
    assert main(["events", "verify", "--database-url", url]) == 1
    assert "FAILED at event 2: event 2 is missing" in capsys.readouterr().out


def test_api_keys_made_by_the_command_are_recorded(
    server_config: Config, capsys: pytest.CaptureFixture[str]
) -> None:
    url = server_config.database_url
    create = ["api-keys", "create", "--database-url", url, "--name", "boot", "--json"]
    assert main([*create, "--scope", "registry.admin"]) == 0
    capsys.readouterr()
    store = open_metadata_store(url)
    try:
        (event,) = store.read_events("default", 0, 10)
    finally:
        store.close()
    assert event.method == "CreateApiKey" and event.principal.startswith("cli:")
    assert event.resource.startswith("apiKeys/") and event.summary["name"] == "boot"
    assert main(["events", "verify", "--database-url", url]) == 0


def test_the_verify_command_refuses_a_bad_url(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["events", "verify", "--database-url", "mysql://nope"]) == 2
    assert "cannot open the database" in capsys.readouterr().err


def test_request_ids_come_from_the_header_or_are_made(
    server: RegistryServer, client: RegistryClient
) -> None:
    with RegistryClient(server.address, metadata=[("x-request-id", "bad id!")]) as odd:
        odd.create_model("a")
    with RegistryClient(server.address, metadata=[("x-request-id", "deploy-7")]) as named:
        named.create_model("b")
    client.create_model("c")
    made_a, given, made_c = (e.request_id for e in _all_events(server))
    assert given == "deploy-7"
    assert len({made_a, made_c}) == 2 and all(len(r) == 36 for r in (made_a, made_c))


def test_a_failed_upload_is_an_access_event_naming_its_file(
    server: RegistryServer, client: RegistryClient
) -> None:
    client.create_model("m")
    client.create_version("m")
    before = server.store.event_head("default")
    assert before is not None
    stub = pl_grpc.PayloadServiceStub(client.channel)
    requests = [header("models/m/versions/1/files/w.bin", "up-9", size=100), chunk(0, b"x" * 10)]
    with pytest.raises(grpc.RpcError):
        stub.UploadFile(iter(requests), timeout=20)
    (event,) = server.store.read_events("default", before.last_sequence, 10)
    assert (event.kind, event.method, event.resource) == (
        EventKind.ACCESS,
        "UploadFile",
        "models/m/versions/1/files/w.bin",
    )
    assert event.outcome == "INVALID_ARGUMENT SIZE_MISMATCH"
    client.upload_file("m", 1, io.BytesIO(b"y" * 100), file_id="w.bin")  # a fresh session
    assert server.audit.verify_tenant("default").ok


def test_the_access_budget_counts_what_it_drops() -> None:
    now = [0.0]
    budget = AccessBudget(burst=3, refill_s=1.0, monotonic=lambda: now[0])
    assert [budget.take("t", "user:a") for _ in range(5)] == [0, 0, 0, None, None]
    assert budget.take("t", "user:b") == 0  # budgets are per principal
    now[0] = 1.0
    assert budget.take("t", "user:a") == 2  # the two dropped ride on the next recorded one
    assert budget.take("t", "user:a") is None
