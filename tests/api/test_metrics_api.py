"""Prometheus metrics (``--metrics-listen``): /metrics scraped over HTTP after real calls made
through the shipped client, with the go-grpc-prometheus names, labels and values."""

from __future__ import annotations

import dataclasses
import io
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from modelregistry.client import NotFoundError, RegistryClient
from modelregistry_server.api.metrics import server_version
from modelregistry_server.app import RegistryServer
from modelregistry_server.config import Config
from tests.support.servers import serving

REGISTRY = "modelregistry.v1.ModelRegistry"
PAYLOADS = "modelregistry.v1.PayloadService"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture
def metered(server_config: Config) -> Iterator[RegistryServer]:
    config = dataclasses.replace(server_config, metrics_listen="127.0.0.1:0", webhook_workers=0)
    with serving(config) as service:
        yield service


def scrape(server: RegistryServer) -> Samples:
    with urllib.request.urlopen(f"http://{server.metrics_address}/metrics", timeout=10) as r:
        assert r.status == 200
        text = r.read().decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def call_labels(service: str, method: str, kind: str = "unary") -> dict[str, str]:
    return {"grpc_service": service, "grpc_method": method, "grpc_type": kind}


def test_calls_are_counted_by_method_and_code(metered: RegistryServer) -> None:
    data = b"x" * 150_000
    with RegistryClient(metered.address, timeout=30, chunk_size=64 * 1024) as client:
        client.create_model("m")
        with pytest.raises(NotFoundError):
            client.get_model("absent")
        client.get_model("m")
        version = client.create_version("m")
        client.upload_file("m", version.version_number, io.BytesIO(data))
        sink = io.BytesIO()
        client.download_file("m", version.version_number, sink)
        assert sink.getvalue() == data
        webhook = client.create_webhook("hook", "http://127.0.0.1:9/hook")
        assert webhook.secret
        client.create_model("after-hook")  # an event the webhook has not been handed
    s = scrape(metered)
    get = call_labels(REGISTRY, "GetModel")
    assert value(s, "grpc_server_started_total", **get) == 2
    assert value(s, "grpc_server_handled_total", **get, grpc_code="NOT_FOUND") == 1
    assert value(s, "grpc_server_handled_total", **get, grpc_code="OK") == 1
    assert value(s, "grpc_server_handling_seconds_count", **get) == 2
    assert value(s, "grpc_server_handling_seconds_bucket", **get, le="+Inf") == 2
    assert value(s, "grpc_server_msg_received_total", **get) == 2
    assert value(s, "grpc_server_msg_sent_total", **get) == 1  # NOT_FOUND sends no message
    create = call_labels(REGISTRY, "CreateModel")
    assert value(s, "grpc_server_handled_total", **create, grpc_code="OK") == 2
    upload = call_labels(PAYLOADS, "UploadFile", "client_stream")
    assert value(s, "grpc_server_handled_total", **upload, grpc_code="OK") == 1
    assert value(s, "grpc_server_msg_received_total", **upload) >= 4  # header + 3 chunks
    download = call_labels(PAYLOADS, "DownloadFile", "server_stream")
    assert value(s, "grpc_server_handled_total", **download, grpc_code="OK") == 1
    assert value(s, "grpc_server_msg_sent_total", **download) >= 3
    assert len(data) <= value(s, "modelregistry_upload_bytes_total") < len(data) + 4096
    assert len(data) <= value(s, "modelregistry_download_bytes_total") < len(data) + 4096
    for method in ("UploadFile", "DownloadFile"):
        labels = {"grpc_service": PAYLOADS, "grpc_method": method}
        assert ("modelregistry_streams_active", frozenset(labels.items())) in s
        assert value(s, "modelregistry_streams_active", **labels) == 0
    assert not any(
        name == "modelregistry_streams_active" and ("grpc_method", "GetModel") in labels
        for name, labels in s
    )
    # Health is answered on the loop, unobserved.
    assert not any("Health" in dict(labels).get("grpc_service", "") for _, labels in s)
    assert value(s, "modelregistry_db_connections_max") == metered.config.db_max_connections
    assert ("modelregistry_db_connections_in_use", frozenset()) in s
    assert value(s, "modelregistry_webhooks_behind") == 1
    assert value(s, "modelregistry_webhook_lag_events") >= 1
    info = {
        "version": server_version(),
        "python": next(
            dict(labels)["python"] for name, labels in s if name == "modelregistry_build_info"
        ),
    }
    assert value(s, "modelregistry_build_info", **info) == 1


def test_maintenance_results_are_exported(metered: RegistryServer) -> None:
    before = scrape(metered)
    assert ("modelregistry_scrub_last_blobs", frozenset({("result", "corrupted")})) not in before
    metered.run_maintenance()
    s = scrape(metered)
    assert value(s, "modelregistry_maintenance_last_run_timestamp_seconds") > 0
    assert value(s, "modelregistry_maintenance_last_failed_steps") == 0
    for result in ("verified", "corrupted", "missing", "broken_files"):
        assert ("modelregistry_scrub_last_blobs", frozenset({("result", result)})) in s
    for kind in ("uploads", "blobs", "orphan_uploads", "orphan_blobs"):
        assert ("modelregistry_gc_last_removed", frozenset({("kind", kind)})) in s


def test_metrics_are_off_by_default(server: RegistryServer) -> None:
    assert server.metrics_address is None


def test_a_worker_of_a_multiprocess_server_does_not_serve(
    server_config: Config, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """With PROMETHEUS_MULTIPROC_DIR set the supervisor serves /metrics, not its workers."""
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    config = dataclasses.replace(server_config, metrics_listen="127.0.0.1:0")
    with serving(config) as service:
        assert service.metrics_address is None
