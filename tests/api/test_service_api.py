"""The service around the API: gRPC health and reflection, the ``python -m modelregistry_server``
entry point and its configuration, unexpected exceptions becoming INTERNAL, and a PostgreSQL
outage becoming UNAVAILABLE (BACKEND_UNAVAILABLE) until the database is back."""

from __future__ import annotations

import io
import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.api import field_behavior_pb2, resource_pb2
from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)
from grpc_status import rpc_status

from modelregistry.client import (
    InternalError,
    RegistryClient,
    UnavailableError,
)
from modelregistry.v1 import model_registry_pb2 as mr
from modelregistry.v1 import payload_pb2 as pl
from modelregistry.v1 import payload_pb2_grpc as pl_grpc
from modelregistry.v1 import resources_pb2 as res
from modelregistry_server.app import RegistryServer, build_server
from modelregistry_server.config import Config, load_config
from tests.api.registry_helpers import expect_error, ready_version, snapshot
from tests.support.metadata_fixtures import sqlite_url
from tests.support.postgres import PostgresCluster, require_bindir
from tests.support.reflection import VERSIONS, descriptor_database, v1_replies

REGISTRY = "modelregistry.v1.ModelRegistry"
PAYLOADS = "modelregistry.v1.PayloadService"
HEALTH = "grpc.health.v1.Health"
EVENTS = "modelregistry.v1.EventService"
REGISTRY_METHODS = {
    "CreateModel", "GetModel", "ListModels", "UpdateModel", "DeleteModel", "UndeleteModel",
    "CreateModelVersion", "GetModelVersion", "ListModelVersions", "UpdateModelVersion",
    "DeleteModelVersion", "UndeleteModelVersion", "SealModelVersion",
    "TransitionModelVersionStage", "ListStageTransitions",
    "SetAlias", "GetAlias", "ListAliases", "DeleteAlias", "ListAliasHistory", "GetLineage",
    "GetModelPolicy", "SetModelPolicy",
}  # fmt: skip


@pytest.fixture
def metadata_url(tmp_path: Path) -> str:
    """These tests are about the service, not the store: SQLite is enough."""
    return sqlite_url(tmp_path)


# -- health -----------------------------------------------------------------------------------


def test_health_serving_after_start(server: RegistryServer) -> None:
    with grpc.insecure_channel(server.address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        for service in ("", REGISTRY, PAYLOADS):
            reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING, service
        with pytest.raises(grpc.RpcError) as info:
            stub.Check(health_pb2.HealthCheckRequest(service="no.such.Service"), timeout=10)
        assert info.value.code() is grpc.StatusCode.NOT_FOUND


def test_health_not_serving_once_stop_begins(server_config: Config) -> None:
    service = build_server(server_config)
    service.start()
    stopper: threading.Thread | None = None
    try:
        with grpc.insecure_channel(service.address) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            watches = {
                name: stub.Watch(health_pb2.HealthCheckRequest(service=name), timeout=20)
                for name in ("", REGISTRY, PAYLOADS)
            }
            for watch in watches.values():
                assert next(watch).status == health_pb2.HealthCheckResponse.SERVING
            # A long grace keeps the watches open, so they can observe the change.
            stopper = threading.Thread(target=service.stop, args=(30,))
            stopper.start()
            for name, watch in watches.items():
                assert next(watch).status == health_pb2.HealthCheckResponse.NOT_SERVING, name
                watch.cancel()
            try:  # new calls are refused once the server stops; never SERVING
                reply = stub.Check(health_pb2.HealthCheckRequest(), timeout=5)
            except grpc.RpcError as err:
                # UNAVAILABLE once the port is closed; CANCELLED when the call raced the aio
                # server's shutdown and was admitted only to be cancelled.
                assert err.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED)
            else:
                assert reply.status == health_pb2.HealthCheckResponse.NOT_SERVING
        stopper.join(timeout=10)
        assert not stopper.is_alive(), "stop() kept waiting although no call was in flight"
    finally:
        if stopper is None:
            service.stop(0)


def test_stop_shuts_the_upload_sync_pool_down(server_config: Config, tmp_path: Path) -> None:
    before = set(threading.enumerate())
    service = build_server(server_config)
    service.start()
    try:
        with RegistryClient(service.address, timeout=30) as client:
            client.create_model("m")
            number = client.create_version("m").version_number
            source = tmp_path / "weights.bin"
            source.write_bytes(b"w" * 1000)
            client.upload_file("m", number, source)
        syncers = [
            t for t in threading.enumerate() if t not in before and t.name.startswith("sync")
        ]
        assert syncers, "the upload synced its piece on the server's pool"
    finally:
        service.stop(0)
    assert [t.name for t in syncers if t.is_alive()] == []


# -- reflection -------------------------------------------------------------------------------


@pytest.mark.parametrize("version", sorted(VERSIONS))
def test_reflection_lists_services_and_serves_descriptors(
    server: RegistryServer, version: str
) -> None:
    with grpc.insecure_channel(server.address) as channel:
        database = descriptor_database(channel, version)
        services = set(database.get_services())
        assert {REGISTRY, PAYLOADS, EVENTS, HEALTH, *VERSIONS.values()} <= services
        pool = descriptor_pool.DescriptorPool(database)
        registry = pool.FindServiceByName(REGISTRY)
        assert {m.name for m in registry.methods} == REGISTRY_METHODS
        payloads = pool.FindServiceByName(PAYLOADS)
        assert {"UploadFile", "DownloadFile", "GetFile"} <= {m.name for m in payloads.methods}
        download = payloads.FindMethodByName("DownloadFile")
        assert download.server_streaming and not download.client_streaming
        version_message = pool.FindMessageTypeByName("modelregistry.v1.ModelVersion")
        assert version_message.fields_by_name["parameters"].message_type.full_name == (
            "google.protobuf.Struct"
        )
        for service in VERSIONS.values():  # reflection describes itself under both names
            method = pool.FindServiceByName(service).FindMethodByName("ServerReflectionInfo")
            assert method.client_streaming and method.server_streaming


def test_reflection_serves_the_annotations_and_their_files(server: RegistryServer) -> None:
    """What a caller in another language (or grpcurl) sees of the contract: the field
    behaviours and resources, and the google.api files that define them."""
    with grpc.insecure_channel(server.address) as channel:
        database = descriptor_database(channel, "v1")
        resources = database.FindFileContainingSymbol("modelregistry.v1.Model")
        assert "google/api/field_behavior.proto" in resources.dependency
        model = next(m for m in resources.message_type if m.name == "Model")
        assert model.options.Extensions[resource_pb2.resource].pattern == ["models/{model}"]
        behaviours = {
            f.name: list(f.options.Extensions[field_behavior_pb2.field_behavior])
            for f in model.field
        }
        assert behaviours["name"] == [field_behavior_pb2.IDENTIFIER]
        assert behaviours["create_time"] == [field_behavior_pb2.OUTPUT_ONLY]
        assert database.FindFileByName("google/api/resource.proto").package == "google.api"
        symbol = {"file_containing_symbol": "grpc.reflection.v1.ServerReflection"}
        (reply,) = v1_replies(channel, [symbol], ())
        (file,) = reply.file_descriptor_response.file_descriptor_proto
        assert descriptor_pb2.FileDescriptorProto.FromString(file).package == "grpc.reflection.v1"


def test_call_built_from_reflected_descriptors_only(
    server: RegistryServer, client: RegistryClient
) -> None:
    """What grpcurl does: no generated code, only descriptors fetched from the server."""
    with grpc.insecure_channel(server.address) as channel:
        pool = descriptor_pool.DescriptorPool(ProtoReflectionDescriptorDatabase(channel))
        method = pool.FindServiceByName(REGISTRY).FindMethodByName("CreateModel")
        request_class = message_factory.GetMessageClass(method.input_type)
        response_class = message_factory.GetMessageClass(method.output_type)
        assert request_class is not mr.CreateModelRequest  # built from the reflected pool
        request = json_format.ParseDict(
            {"model_id": "fraud", "model": {"display_name": "Fraud", "labels": {"team": "risk"}}},
            request_class(),
        )
        create = channel.unary_unary(
            f"/{REGISTRY}/CreateModel",
            request_serializer=request_class.SerializeToString,
            response_deserializer=response_class.FromString,
        )
        reply = create(request, timeout=10)
        as_json = json_format.MessageToDict(reply)
        assert as_json["name"] == "models/fraud"
        assert as_json["labels"] == {"team": "risk"}
        assert client.get_model("fraud").display_name == "Fraud"

        # Errors carry google.rpc.Status details a generic client can decode too.
        with pytest.raises(grpc.RpcError) as info:
            create(request, timeout=10)
        assert info.value.code() is grpc.StatusCode.ALREADY_EXISTS
        status = rpc_status.from_call(info.value)
        assert status is not None
        error_info = error_details_pb2.ErrorInfo()
        assert status.details[0].Unpack(error_info)
        assert (error_info.reason, error_info.domain) == (
            "MODEL_ALREADY_EXISTS",
            "modelregistry.v1",
        )


# -- configuration and the process entry point ------------------------------------------------


def test_load_config_defaults_env_and_flags() -> None:
    assert load_config([], {}) == Config()
    env = {
        "MODELREGISTRY_LISTEN": "0.0.0.0:7000",
        "MODELREGISTRY_DATABASE_URL": "postgresql://u@db:5432/reg",
        "MODELREGISTRY_BLOB_URL": "gs://bucket/prefix",
        "MODELREGISTRY_MAX_WORKERS": "8",
        "MODELREGISTRY_RETENTION_HOURS": "1.5",
        "MODELREGISTRY_SHUTDOWN_GRACE_SECONDS": "2.5",
        "MODELREGISTRY_LOG_LEVEL": "DEBUG",
        "UNRELATED": "ignored",
    }
    from_env = load_config([], env)
    assert from_env.listen == "0.0.0.0:7000"
    assert from_env.database_url == "postgresql://u@db:5432/reg"
    assert from_env.blob_url == "gs://bucket/prefix"
    assert from_env.max_workers == 8
    assert from_env.retention_hours == 1.5
    assert from_env.shutdown_grace_seconds == 2.5
    assert from_env.log_level == "DEBUG"
    assert from_env.gc_grace_hours == Config().gc_grace_hours

    flags = [
        "--database-url", "sqlite:///flag.db",
        "--max-workers", "4",
        "--retention-hours", "0.25",
        "--gc-grace-hours", "0.5",
        "--maintenance-interval-seconds", "0.5",
        "--shutdown-grace-seconds", "0",
        "--upload-piece-bytes", "1048576",
    ]  # fmt: skip
    both = load_config(flags, env)
    assert both.database_url == "sqlite:///flag.db"  # flag beats env
    assert both.max_workers == 4
    assert both.listen == "0.0.0.0:7000"  # env beats default
    assert both.retention_hours == 0.25
    assert both.retention.total_seconds() == 900
    assert both.gc_grace.total_seconds() == 1800
    assert both.maintenance_interval_seconds == 0.5
    assert both.shutdown_grace_seconds == 0
    assert both.upload_piece_bytes == 1 << 20


@pytest.mark.parametrize(
    ("argv", "env", "complaint"),
    [
        ([], {"MODELREGISTRY_MAX_WORKERS": "many"}, "MODELREGISTRY_MAX_WORKERS"),
        ([], {"MODELREGISTRY_RETENTION_HOURS": "soon"}, "MODELREGISTRY_RETENTION_HOURS"),
        (["--max-workers", "1.5"], {}, "--max-workers"),
        (["--no-such-flag"], {}, "--no-such-flag"),
        (["--log-format", "xml"], {}, "--log-format"),
        ([], {"MODELREGISTRY_TRACING": "jaeger"}, "--tracing"),
        (["--upload-lease-seconds", "0"], {}, "--upload-lease-seconds"),
        ([], {"MODELREGISTRY_UPLOAD_LEASE_SECONDS": "-5"}, "--upload-lease-seconds"),
    ],
)
def test_load_config_rejects_bad_values(
    argv: list[str], env: dict[str, str], complaint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        load_config(argv, env)
    assert info.value.code == 2
    assert complaint in capsys.readouterr().err


def test_help_lists_every_setting(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        load_config(["--help"], {})
    assert info.value.code == 0
    text = capsys.readouterr().out
    for name in Config.__dataclass_fields__:
        assert f"--{name.replace('_', '-')}" in text
        assert f"MODELREGISTRY_{name.upper()}" in text


def _lines(stream: io.TextIOBase) -> queue.Queue[str]:
    """Lines of ``stream`` as they arrive, read on a daemon thread."""
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        for line in stream:
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    return lines


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_entry_point_serves_and_exits_cleanly_on_signal(tmp_path: Path, signum: int) -> None:
    env_db, flag_db, blobs = tmp_path / "env.db", tmp_path / "flag.db", tmp_path / "blobs"
    env = {
        **os.environ,
        "MODELREGISTRY_DATABASE_URL": f"sqlite:///{env_db}",
        "MODELREGISTRY_BLOB_URL": f"file://{blobs}",
        "MODELREGISTRY_MAINTENANCE_INTERVAL_SECONDS": "0",
        "MODELREGISTRY_LOG_LEVEL": "WARNING",
    }
    command = [
        sys.executable, "-m", "modelregistry_server",
        "--listen", "127.0.0.1:0",
        "--database-url", f"sqlite:///{flag_db}",
        "--shutdown-grace-seconds", "2.5",
    ]  # fmt: skip
    process = subprocess.Popen(
        command,
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None and process.stderr is not None
        stdout = _lines(process.stdout)
        try:
            line = stdout.get(timeout=30)
        except queue.Empty:
            pytest.fail("the server printed no address")
        prefix = "modelregistry listening on 127.0.0.1:"
        assert line.startswith(prefix), line
        port = int(line.strip().removeprefix(prefix))
        assert port > 0
        with RegistryClient(f"127.0.0.1:{port}", retries=0) as client:
            client.create_model("fraud", display_name="Fraud")
            client.create_version("fraud")
            client.upload_file("fraud", 1, io.BytesIO(b"weights"))
            assert ready_version(client, "fraud").state == res.VERSION_STATE_READY
            assert client.get_model("fraud").latest_version_number == 2
        assert flag_db.exists() and not env_db.exists()  # the flag beat the environment
        assert any(p.is_file() for p in blobs.rglob("*"))  # the blob URL came from the env
        process.send_signal(signum)
        assert process.wait(timeout=10) == 0
        errors = process.stderr.read()
        assert "Traceback" not in errors, errors
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


# -- unexpected exceptions --------------------------------------------------------------------


def _boom(*_args: Any, **_kwargs: Any) -> Any:
    raise RuntimeError("secret detail: /etc/shadow line 3")


def _assert_internal(error: grpc.RpcError) -> None:
    assert error.code() is grpc.StatusCode.INTERNAL
    assert error.details() == "internal error"
    trailers = " ".join(str(v) for _, v in error.trailing_metadata() or ())
    for leak in ("secret", "Traceback", "RuntimeError"):
        assert leak not in trailers


def test_unexpected_exception_is_internal_error(
    server: RegistryServer,
    client: RegistryClient,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    client.create_model("fraud")
    before = snapshot(client)
    monkeypatch.setattr(server.registry, "create_version", _boom)
    with RegistryClient(server.address, retries=0) as once, pytest.raises(InternalError) as info:
        once.create_version("fraud")
    assert info.value.message == "internal error"
    assert info.value.reason is None
    assert snapshot(client) == before

    monkeypatch.setattr(server.registry, "get_model", _boom)
    with pytest.raises(InternalError) as info:
        client.get_model("fraud")
    assert info.value.message == "internal error"
    assert "secret" not in str(info.value)
    with grpc.insecure_channel(server.address) as channel:
        get_model = channel.unary_unary(
            f"/{REGISTRY}/GetModel",
            request_serializer=mr.GetModelRequest.SerializeToString,
            response_deserializer=res.Model.FromString,
        )
        with pytest.raises(grpc.RpcError) as raw:
            get_model(mr.GetModelRequest(name="models/fraud"), timeout=10)
        _assert_internal(raw.value)
    # The details go to the server log instead.
    assert any("secret detail" in str(r.exc_info[1]) for r in caplog.records if r.exc_info)


def test_unexpected_exception_mid_stream_is_internal_error(
    server: RegistryServer, client: RegistryClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    client.create_model("fraud")
    client.create_version("fraud")
    data = bytes(range(256)) * 8192  # 2 MiB: two checked blocks, many download messages
    client.upload_file("fraud", 1, io.BytesIO(data))
    block = 1024 * 1024

    def failing_read(key: str, offset: int = 0, limit: int | None = None) -> Iterator[bytes]:
        yield data[offset : offset + block]  # a whole block: checked, then sent
        _boom()

    monkeypatch.setattr(server.blobs, "read", failing_read)
    with grpc.insecure_channel(server.address) as channel:
        stream = pl_grpc.PayloadServiceStub(channel).DownloadFile(
            pl.DownloadFileRequest(name="models/fraud/versions/1/files/payload"), timeout=10
        )
        first = next(stream)
        assert first.file.size_bytes == len(data) and first.data == data[: len(first.data)]
        with pytest.raises(grpc.RpcError) as info:
            for message in stream:  # the rest of the first block, then the failure
                assert message.offset < block
        _assert_internal(info.value)
    with RegistryClient(server.address, retries=0) as once, pytest.raises(InternalError) as err:
        once.download_file("fraud", 1, io.BytesIO())
    assert err.value.message == "internal error"


def test_unexpected_exception_in_client_stream_is_internal_error(
    server: RegistryServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    with RegistryClient(server.address, retries=0) as client:
        client.create_model("fraud")
        client.create_version("fraud")
        monkeypatch.setattr(server.payloads, "upload", _boom)
        with pytest.raises(InternalError) as info:
            client.upload_file("fraud", 1, io.BytesIO(b"x" * 100))
        assert info.value.message == "internal error"


# -- database outage --------------------------------------------------------------------------


@pytest.mark.postgres
def test_postgres_outage_is_unavailable_and_recovers(tmp_path: Path) -> None:
    cluster = PostgresCluster(require_bindir())
    try:
        cluster.start()
        config = Config(
            listen="127.0.0.1:0",
            database_url=cluster.create_database(),
            blob_url=f"file://{tmp_path / 'blobs'}",
            db_max_connections=4,
            maintenance_interval_seconds=0,
            shutdown_grace_seconds=0,
        )
        service = build_server(config)
        service.start()
        try:
            with RegistryClient(service.address, retries=0) as client:
                _outage_round_trip(cluster, client)
        finally:
            service.stop(0)
    finally:
        cluster.destroy()


def _outage_round_trip(cluster: PostgresCluster, client: RegistryClient) -> None:
    client.create_model("fraud")
    ready_version(client, "fraud")
    client.create_version("fraud")
    before = snapshot(client)
    _warm_pool(client, 4)  # stale pooled connections when the database goes
    cluster.stop()
    calls: list[Callable[[], object]] = [
        lambda: client.get_model("fraud"),
        lambda: client.list_models_page(),
        lambda: client.create_model("other"),
        lambda: client.update_model(res.Model(name="models/fraud", type="x"), update_mask="type"),
        lambda: client.create_version("fraud"),
        lambda: client.get_version("fraud", "latest"),
        lambda: client.list_versions_page("fraud"),
        lambda: client.seal_version("fraud", 2),
        lambda: client.transition_stage("fraud", 1, "STAGING"),
        lambda: client.set_alias("fraud", "prod", 1),
        lambda: client.list_aliases("fraud"),
        lambda: client.delete_version("fraud", 2),
        lambda: client.get_file("fraud", 1),
        lambda: client.get_model("fraud"),
    ]
    for attempt in calls:
        with expect_error(UnavailableError, "BACKEND_UNAVAILABLE") as caught:
            attempt()
        # The driver's text (host, port, user) stays in the server log.
        leaked = [
            s for s in ("127.0.0.1", str(cluster.port), "postgres") if s in caught.value.message
        ]
        assert leaked == [], caught.value.message

    cluster.start()
    # Nothing was half-written, and the first call after the restart works (no retries).
    assert snapshot(client) == before
    client.create_version("fraud", description="after the outage")
    assert client.get_model("fraud").latest_version_number == 3

    # A restart while idle leaves stale connections in the pool: they must not fail calls.
    _warm_pool(client, 4)
    cluster.stop()
    cluster.start()
    updated = client.update_model(res.Model(name="models/fraud", type="after"), update_mask="type")
    assert updated.type == "after"
    for _ in range(6):
        assert client.get_model("fraud").type == "after"


def _warm_pool(client: RegistryClient, calls: int) -> None:
    """Run ``calls`` concurrent reads so the server's pool holds that many connections."""
    barrier = threading.Barrier(calls)

    def read() -> None:
        barrier.wait(timeout=10)
        client.get_model("fraud")

    threads = [threading.Thread(target=read) for _ in range(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
