"""Interop: a Node caller (@grpc/grpc-js, @grpc/proto-loader, protobufjs) built only from the
repository's protos round-trips a file through an in-process server and reads the reasons of
refused calls from their ``grpc-status-details-bin`` trailers (tests/interop/node)."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
from pathlib import Path

from modelregistry.client import RegistryClient
from modelregistry_server.config import Config
from tests.support.metadata_fixtures import sqlite_url
from tests.support.node_tools import require_node
from tests.support.servers import serving

SCRIPT = Path(__file__).parent / "node" / "roundtrip.mjs"


def test_a_node_client_round_trips_a_file_and_reads_error_details(tmp_path: Path) -> None:
    node = require_node("@grpc/grpc-js", "@grpc/proto-loader", "protobufjs")
    config = Config(
        listen="127.0.0.1:0",
        database_url=sqlite_url(tmp_path),
        blob_url=(tmp_path / "blobs").as_uri(),
        maintenance_interval_seconds=0,
        shutdown_grace_seconds=0,
    )
    with serving(config) as server:
        run = subprocess.run(
            [node, SCRIPT, server.address], capture_output=True, text=True, timeout=30, check=False
        )
        assert run.returncode == 0, run.stderr
        result = json.loads(run.stdout)
        with RegistryClient(server.address, timeout=10) as client:
            version = client.get_version("node-interop", "production")
            (file,) = client.list_files("node-interop", version.version_number)
            sink = io.BytesIO()
            client.download_file("node-interop", "production", sink, file_id="weights.bin")
            downloaded = sink.getvalue()

    assert result["state"] == "VERSION_STATE_READY"
    assert result["alias_version"] == result["version"] == version.name
    assert result["manifest_digest"] == version.manifest_digest
    assert result["downloaded"]["bytes_equal"] is True
    assert result["stored"]["sha256"] == result["downloaded"]["sha256"] == file.sha256
    assert hashlib.sha256(downloaded).hexdigest() == file.sha256
    assert int(result["stored"]["size_bytes"]) == len(downloaded) == 300 * 1024

    not_found = result["not_found"]
    assert (not_found["grpc_code"], not_found["code"]) == ("NOT_FOUND", 5)
    assert not_found["google.rpc.ErrorInfo"]["reason"] == "MODEL_NOT_FOUND"
    assert not_found["google.rpc.ErrorInfo"]["domain"] == "modelregistry.v1"
    wrong = result["wrong_digest"]
    assert wrong["grpc_code"] == "INVALID_ARGUMENT"
    assert wrong["google.rpc.ErrorInfo"]["reason"] == "DIGEST_MISMATCH"
    (violation,) = wrong["google.rpc.BadRequest"]["field_violations"]
    assert violation["field"] == "finish.sha256"
