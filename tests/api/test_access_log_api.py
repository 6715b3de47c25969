"""Logs: one access line per RPC (method, code, duration, principal, tenant, request id,
bytes, peer), the request id returned in the trailing metadata, JSON lines, and no secret in
any log line at any level (SQL parameters only behind ``--log-sql``)."""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from modelregistry.client import NotFoundError, RegistryClient, UnauthenticatedError
from modelregistry.v1 import model_registry_pb2 as mr
from modelregistry.v1 import model_registry_pb2_grpc as mr_grpc
from modelregistry_server.api.access_log import ACCESS_LOGGER, FIELDS
from modelregistry_server.api.logs import SQL_LOGGER, configure_logging
from modelregistry_server.app import RegistryServer
from modelregistry_server.config import Config
from modelregistry_server.domain.identity import ALL_SCOPES, Caller
from tests.support.jwt_tokens import EVERY_SCOPE, jwt_config, mint, rsa_key
from tests.support.servers import serving


def _restore_root(saved: tuple[list[logging.Handler], int]) -> None:
    """Give the root logger back the handlers and level ``saved`` holds."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in saved[0]:
        root.addHandler(handler)
    root.setLevel(saved[1])


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """Everything logged, at DEBUG on the root and on every logger that exists, as JSON."""
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    loggers = [logging.getLogger(name) for name in list(logging.root.manager.loggerDict)]
    levels = [(logger, logger.level) for logger in loggers]
    out = io.StringIO()
    configure_logging("DEBUG", "json", stream=out, force=True)
    for logger in loggers:
        logger.setLevel(logging.DEBUG)  # peewee too: its SQL must stay out all the same
    try:
        yield out
    finally:
        _restore_root(saved)
        for logger, level in levels:
            logger.setLevel(level)
        configure_logging("WARNING", "text", log_sql=True, force=True)  # no SQL filter …
        _restore_root(saved)  # … then leaves pytest's handlers as they were
        logging.getLogger(SQL_LOGGER).setLevel(logging.NOTSET)


def lines(out: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.getvalue().splitlines() if line.strip()]


def access_lines(out: io.StringIO, at_least: int = 0) -> list[dict[str, object]]:
    """The access lines, waiting (up to 5 s) for ``at_least``: a refused call's status may
    reach the client just before its line is written."""
    deadline = time.monotonic() + 5
    while True:
        found = [line for line in lines(out) if line["logger"] == ACCESS_LOGGER]
        if len(found) >= at_least or time.monotonic() > deadline:
            return found
        time.sleep(0.01)


def test_one_access_line_per_rpc_with_the_request_id_returned(
    server: RegistryServer, captured: io.StringIO
) -> None:
    with grpc.insecure_channel(server.address) as channel:
        stub = mr_grpc.ModelRegistryStub(channel)
        _, call = stub.CreateModel.with_call(
            mr.CreateModelRequest(model_id="m"), metadata=(("x-request-id", "rid-created"),)
        )
        assert ("x-request-id", "rid-created") in call.trailing_metadata()
        with pytest.raises(grpc.RpcError) as refused:
            stub.GetModel(mr.GetModelRequest(name="models/absent"))
        assert refused.value.code() is grpc.StatusCode.NOT_FOUND
        generated = dict(refused.value.trailing_metadata())["x-request-id"]
        assert len(generated) == 36  # a uuid4 made at the edge
    with RegistryClient(server.address, timeout=10) as client, pytest.raises(NotFoundError) as e:
        client.get_model("absent")
    found = access_lines(captured, 3)
    assert [(line["method"], line["code"]) for line in found] == [
        ("/modelregistry.v1.ModelRegistry/CreateModel", "OK"),
        ("/modelregistry.v1.ModelRegistry/GetModel", "NOT_FOUND"),
        ("/modelregistry.v1.ModelRegistry/GetModel", "NOT_FOUND"),
    ]
    created, missing = found[0], found[1]
    assert list(created)[4:] == list(FIELDS)  # stable keys, in order, after the common four
    assert created["request_id"] == "rid-created"
    assert missing["request_id"] == generated
    assert found[2]["request_id"] == e.value.request_id  # the client's error names it
    assert created["principal"] == "anonymous" and created["tenant"] == "default"
    assert created["bytes_received"] == len(mr.CreateModelRequest(model_id="m").SerializeToString())
    assert isinstance(created["bytes_sent"], int) and created["bytes_sent"] > 0
    assert missing["bytes_sent"] == 0
    assert isinstance(created["duration_ms"], float) and created["duration_ms"] > 0
    assert str(created["peer"]).startswith(("ipv4:127.0.0.1:", "ipv6:"))
    assert created["level"] == "INFO" and str(created["time"]).endswith("Z")


def test_text_format_names_the_fields(server: RegistryServer) -> None:
    out = io.StringIO()
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    configure_logging("INFO", "text", stream=out, force=True)
    try:
        with RegistryClient(server.address, timeout=10) as client:
            client.create_model("m")
    finally:
        _restore_root(saved)
    [line] = [x for x in out.getvalue().splitlines() if ACCESS_LOGGER in x]
    assert " INFO modelregistry.access: /modelregistry.v1.ModelRegistry/CreateModel OK " in line
    assert "principal=anonymous tenant=default request_id=" in line


@pytest.fixture
def secured(server_config: Config, tmp_path: Path) -> Iterator[RegistryServer]:
    config = jwt_config(dataclasses.replace(server_config, api_keys=True), tmp_path)
    with serving(config) as service:
        yield service


def test_no_secret_in_any_log_line(secured: RegistryServer, captured: io.StringIO) -> None:
    boot = Caller(tenant="acme", subject="cli:test", scopes=ALL_SCOPES)
    key = secured.api_keys.create(boot, "acme admin", ("registry.admin",)).credential
    token = mint(rsa_key(), scope=f"{EVERY_SCOPE} registry.admin")
    forged = mint(rsa_key(1), scope="registry.admin")  # a key the server does not trust
    secrets = [key, key.rsplit("_", 1)[1], token, forged, "mrk_nokey_s3cr3tvalue"]
    with RegistryClient(secured.address, token=key, timeout=10, retries=0) as admin:
        admin.create_model("m")
        created = admin.create_webhook("hook", "http://127.0.0.1:9/hook")
        secrets.append(created.secret)
        made = admin.create_api_key("reader", scopes=["registry.read"])
        secrets.append(made.secret)
    with RegistryClient(secured.address, token=token, timeout=10, retries=0) as user:
        user.get_model("m")
        with pytest.raises(NotFoundError):
            user.get_model("absent")
    for bad in (forged, "mrk_nokey_s3cr3tvalue", f"{key}x"):
        with (
            RegistryClient(secured.address, token=bad, timeout=10, retries=0) as intruder,
            pytest.raises(UnauthenticatedError),
        ):
            intruder.get_model("m")
    text = captured.getvalue()
    assert len(access_lines(captured, 8)) == 8  # 3 admin calls, 2 reads, 3 refused
    assert any(line["level"] == "DEBUG" for line in lines(captured))  # DEBUG was on
    for secret in secrets:
        assert secret and secret not in text
    assert "SELECT" not in text and "INSERT" not in text  # no SQL without --log-sql


def test_sql_is_logged_only_with_log_sql(server: RegistryServer, captured: io.StringIO) -> None:
    with RegistryClient(server.address, timeout=10) as client:
        client.create_model("quiet")
    assert not [line for line in lines(captured) if line["logger"] == SQL_LOGGER]
    configure_logging("DEBUG", "json", log_sql=True, stream=captured, force=True)
    with RegistryClient(server.address, timeout=10) as client:
        client.create_model("loud")
    sql = [line for line in lines(captured) if line["logger"] == SQL_LOGGER]
    assert any("INSERT" in str(line["message"]) for line in sql)
