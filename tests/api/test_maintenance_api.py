"""Purge and the maintenance schedule, observed through the API."""

from __future__ import annotations

import dataclasses
import io
import time
from collections.abc import Iterator

import pytest

from modelregistry.client import NotFoundError, RegistryClient
from modelregistry_server.app import RegistryServer
from modelregistry_server.config import Config
from tests.support.servers import serving


def _serve(config: Config) -> Iterator[tuple[RegistryServer, RegistryClient]]:
    with serving(config) as service, RegistryClient(service.address, timeout=30) as client:
        yield service, client


@pytest.fixture
def expiring(server_config: Config) -> Iterator[tuple[RegistryServer, RegistryClient]]:
    """A server whose soft-deleted resources are due for purge at once (no schedule)."""
    yield from _serve(dataclasses.replace(server_config, retention_hours=0))


def test_purge_removes_soft_deleted_models_and_versions_for_good(
    expiring: tuple[RegistryServer, RegistryClient],
) -> None:
    service, client = expiring
    client.create_model("gone")
    client.create_version("gone")
    client.create_model("kept")
    client.create_version("kept")
    dropped = client.create_version("kept").version_number
    client.delete_version("kept", dropped)
    client.delete_model("gone", force=True)

    service.run_maintenance()

    with pytest.raises(NotFoundError) as model_err:
        client.get_model("gone")
    assert model_err.value.reason == "MODEL_NOT_FOUND"
    with pytest.raises(NotFoundError) as version_err:
        client.get_version("kept", dropped)
    assert version_err.value.reason == "VERSION_NOT_FOUND"
    assert [v.version_number for v in client.list_versions("kept", show_deleted=True)] == [1]
    # Purged ids are free again; version numbers are never reused.
    client.create_model("gone")
    assert client.create_version("kept").version_number == dropped + 1


def test_purge_keeps_what_is_inside_the_retention_period(
    server: RegistryServer, client: RegistryClient
) -> None:
    client.create_model("recent")
    client.delete_model("recent")
    server.run_maintenance()
    assert client.get_model("recent").HasField("delete_time")


def test_the_schedule_runs_maintenance_by_itself(server_config: Config) -> None:
    config = dataclasses.replace(
        server_config, retention_hours=0, maintenance_interval_seconds=0.05
    )
    for _service, client in _serve(config):
        client.create_model("scheduled")
        client.delete_model("scheduled")
        deadline = time.monotonic() + 20
        while True:
            try:
                client.get_model("scheduled")
            except NotFoundError:
                break
            assert time.monotonic() < deadline, "the maintenance schedule never purged"
            time.sleep(0.05)


def test_a_failing_step_does_not_stop_the_others(
    expiring: tuple[RegistryServer, RegistryClient],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    service, client = expiring
    client.create_model("gone")
    client.delete_model("gone", force=True)
    client.create_model("m")
    client.upload_file("m", client.create_version("m").version_number, io.BytesIO(b"bytes"))
    refreshed: list[bool] = []

    def broken() -> None:
        raise RuntimeError("gc broke")

    monkeypatch.setattr(service.payloads, "collect_garbage", broken)
    monkeypatch.setattr(service.store, "refresh_statistics", lambda: refreshed.append(True))

    report = service.run_maintenance()

    assert report.failed == ("gc",)
    assert report.purged_models == 1
    assert report.scrub.blobs == 1  # the scrub ran after the failed GC
    assert refreshed == [True]
    assert "maintenance: gc failed" in caplog.text
