"""OpenTelemetry tracing (``--tracing otlp``): one SERVER span per RPC named by its method,
with the status code the edge mapped, for unary calls and both kinds of stream; continued
from the caller's ``traceparent``. Needs the ``tracing`` extra (``make venv`` installs it)."""

from __future__ import annotations

import dataclasses
import io
import time
from collections.abc import Iterator
from typing import Any

import grpc
import pytest

pytest.importorskip("opentelemetry.instrumentation.grpc", reason="the tracing extra is missing")

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from modelregistry.client import NotFoundError, RegistryClient
from modelregistry_server.app import RegistryServer, build_server
from modelregistry_server.config import Config

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


@pytest.fixture
def traced(server_config: Config) -> Iterator[tuple[RegistryServer, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    service = build_server(
        dataclasses.replace(server_config, tracing="otlp"), tracer_provider=provider
    )
    service.start()
    try:
        yield service, exporter
    finally:
        service.stop(0)


def _spans(exporter: InMemorySpanExporter, count: int) -> dict[str, list[Any]]:
    """The finished spans by method, waiting (up to 5 s) for ``count``: a refused call's
    status may reach the client just before its span ends."""
    deadline = time.monotonic() + 5
    while len(exporter.get_finished_spans()) < count and time.monotonic() < deadline:
        time.sleep(0.01)
    found: dict[str, list[Any]] = {}
    for span in exporter.get_finished_spans():
        found.setdefault(span.name.rsplit("/", 1)[1], []).append(span)
    return found


def test_a_span_per_rpc_with_its_status(
    traced: tuple[RegistryServer, InMemorySpanExporter],
) -> None:
    server, exporter = traced
    data = b"y" * 100_000
    traceparent = (("traceparent", f"00-{TRACE_ID}-00f067aa0ba902b7-01"),)
    with RegistryClient(server.address, timeout=30, metadata=traceparent) as client:
        client.create_model("m")
        with pytest.raises(NotFoundError):
            client.get_model("absent")
        version = client.create_version("m")
        client.upload_file("m", version.version_number, io.BytesIO(data))
        sink = io.BytesIO()
        client.download_file("m", version.version_number, sink)
        assert sink.getvalue() == data
        with pytest.raises(NotFoundError):
            client.download_file("m", version.version_number, io.BytesIO(), file_id="nope")
    spans = _spans(exporter, 7)  # and CreateModelVersion, ListUploads
    [created] = spans["CreateModel"]
    assert created.name == "/modelregistry.v1.ModelRegistry/CreateModel"
    assert created.kind is SpanKind.SERVER
    assert created.attributes["rpc.service"] == "modelregistry.v1.ModelRegistry"
    assert created.attributes["rpc.method"] == "CreateModel"
    assert created.attributes["rpc.grpc.status_code"] == grpc.StatusCode.OK.value[0]
    assert created.status.status_code is not StatusCode.ERROR
    assert format(created.context.trace_id, "032x") == TRACE_ID  # the caller's trace
    [missing] = spans["GetModel"]
    assert missing.attributes["rpc.grpc.status_code"] == grpc.StatusCode.NOT_FOUND.value[0]
    # The semantic conventions: a server span's status is ERROR only for server faults
    # (INTERNAL, UNAVAILABLE, DATA_LOSS, ...); the code is on the span either way.
    assert missing.status.status_code is StatusCode.UNSET
    [upload] = spans["UploadFile"]
    assert upload.attributes["rpc.grpc.status_code"] == 0
    ok, refused = sorted(spans["DownloadFile"], key=lambda s: s.attributes["rpc.grpc.status_code"])
    assert ok.attributes["rpc.grpc.status_code"] == 0
    assert refused.attributes["rpc.grpc.status_code"] == grpc.StatusCode.NOT_FOUND.value[0]
    assert "Health" not in str(list(spans))  # health is traced only if called


def test_tracing_is_off_by_default(server_config: Config) -> None:
    assert server_config.tracing == "off"
