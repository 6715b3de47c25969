"""OpenTelemetry tracing (``--tracing otlp``; off by default), through the kept gRPC
instrumentation: ``opentelemetry-instrumentation-grpc``'s asyncio server interceptor, placed
first (outermost) among the server's interceptors, as its ``GrpcAioInstrumentorServer`` would.

It opens one SERVER span per call, named by the full method, continues the caller's trace
from the ``traceparent`` metadata, and records the status our edge sets: the edge aborts
through the context the instrumentation hands down, so every mapped error reaches the span
(``rpc.grpc.status_code``, status ERROR). Its stream wrapper iterates the handler's response
generator; the edge's server streams are asynchronous generators for that reason (see
``api/interceptors.py``).

The packages are the optional extra ``modelregistry-server[tracing]``; the exporter reads the
standard ``OTEL_EXPORTER_OTLP_*`` and ``OTEL_SERVICE_NAME`` variables.
"""

from __future__ import annotations

import os
from typing import Any

MODES = ("off", "otlp")
SERVICE_NAME = "modelregistry-server"


class TracingUnavailable(ValueError):
    """``--tracing otlp`` without the ``tracing`` extra installed."""


def tracing_interceptor(tracer_provider: Any) -> Any:
    """The instrumentation's server interceptor on ``tracer_provider``."""
    try:
        from opentelemetry.instrumentation.grpc import aio_server_interceptor
    except ImportError as exc:
        raise TracingUnavailable(
            "--tracing otlp needs the tracing extra: pip install 'modelregistry-server[tracing]'"
        ) from exc
    return aio_server_interceptor(tracer_provider=tracer_provider)  # type: ignore[no-untyped-call]


def otlp_provider() -> Any:
    """A tracer provider exporting in batches over OTLP/gRPC, configured by the OTEL_*
    environment (endpoint, headers, TLS, service name, sampler)."""
    try:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError as exc:
        raise TracingUnavailable(
            "--tracing otlp needs the tracing extra: pip install 'modelregistry-server[tracing]'"
        ) from exc
    named = {} if os.environ.get("OTEL_SERVICE_NAME") else {"service.name": SERVICE_NAME}
    provider = TracerProvider(resource=Resource.create(named))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    return provider
