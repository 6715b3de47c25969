"""``/models/{model}/versions/{version}`` over HTTP: by number, ``latest`` and alias; every
piece of metadata; files with sizes and digests and a streaming download of verified bytes;
stage history; lineage both ways as links; clear pages for unknown or bad names; roles."""

from __future__ import annotations

import hashlib
import io
import re
from collections.abc import Callable
from pathlib import Path

from modelregistry.client import RegistryClient
from modelregistry_server.app import RegistryServer
from tests.web.conftest import WebClient, as_grpc

WEIGHTS = bytes(range(256)) * 1200  # 300 KiB: several download chunks


def _seed(registry: RegistryClient) -> None:
    registry.create_model("features")
    registry.create_version(
        "features", source={"repository": "https://git.example/f", "commit": "abc123"}
    )
    registry.seal_version("features", 1)
    registry.create_model("fraud")
    registry.create_version(
        "fraud",
        description="gradient boosted <trees>",
        type="ONNX",
        author="ci",
        inputs=[{"name": "amount", "type": "float", "description": "in EUR"}],
        outputs=[{"name": "score", "type": "float"}],
        parameters={"lr": 0.001, "layers": [64, 32]},
        dependencies=["torch"],
        produced_by=["models/features/versions/1"],
        metrics={"auc": 0.97},
        source={"repository": "https://git.example/fraud", "commit": "3f2a1c", "path": "train.py"},
        datasets=[{"uri": "gs://data/fraud/2026-11", "role": "TRAINING", "digest": "sha256:d1"}],
        labels={"owner": "risk"},
    )
    registry.upload_file("fraud", 1, io.BytesIO(WEIGHTS))
    registry.upload_file("fraud", 1, io.BytesIO(b'{"a": 1}'), file_id="tokenizer/vocab ü.json")
    registry.seal_version("fraud", 1)
    registry.transition_stage("fraud", 1, "STAGING", comment="shadow traffic first")
    registry.set_alias("fraud", "production", 1)
    registry.create_model("scorer")
    registry.create_version("scorer", produced_by=["models/fraud/versions/1"])


def test_every_piece_of_metadata_is_shown(registry: RegistryClient, web: WebClient) -> None:
    _seed(registry)
    page = web.get("/models/fraud/versions/1")
    assert page.status_code == 200
    text = page.text
    for expected in (
        "gradient boosted &lt;trees&gt;",
        "ONNX",
        "<code>amount</code>",
        "in EUR",
        "<code>score</code>",
        '<th scope="row">layers</th><td><code>[64, 32]</code>',
        "<code>torch</code>",
        "https://git.example/fraud",
        "3f2a1c",
        "train.py",
        "gs://data/fraud/2026-11",
        "sha256:d1",
        "owner=risk",
        '<span class="label">production</span>',
        "STAGING",
        "shadow traffic first",
        '<a href="/models/features/versions/1">models/features/versions/1</a>',
    ):
        assert expected in text, expected
    assert hashlib.sha256(WEIGHTS).hexdigest() in text
    assert f"{len(WEIGHTS)} bytes" in text


def test_latest_and_aliases_resolve(registry: RegistryClient, web: WebClient) -> None:
    _seed(registry)
    for name in ("latest", "production"):
        page = web.get(f"/models/fraud/versions/{name}")
        assert page.status_code == 200, name
        assert "fraud v1" in page.text and f"<code>{name}</code>" in page.text


def test_unknown_or_malformed_versions_get_clear_pages(
    registry: RegistryClient, web: WebClient
) -> None:
    _seed(registry)
    for path in (
        "/models/fraud/versions/9",
        "/models/fraud/versions/canary",
        "/models/nope/versions/1",
        "/models/fraud/versions/1/files/missing.bin",
    ):
        answer = web.get(path)
        assert answer.status_code == 404, path
        assert "Not found" in answer.text and "Traceback" not in answer.text
    for path in ("/models/fraud/versions/0", "/models/fraud/versions/Bad_Name"):
        assert web.get(path).status_code == 400, path
    assert web.get("/models/scorer/versions/latest").status_code == 404  # nothing READY


def test_files_download_as_verified_streams(registry: RegistryClient, web: WebClient) -> None:
    _seed(registry)
    page = web.get("/models/fraud/versions/production").text
    links = re.findall(r'<a href="(/models/fraud/versions/1/files/[^"]+)" download>', page)
    assert len(links) == 2
    payload = web.get("/models/fraud/versions/1/files/payload")
    assert payload.status_code == 200
    assert payload.content == WEIGHTS
    assert payload.headers["content-length"] == str(len(WEIGHTS))
    assert payload.headers["content-type"] == "application/octet-stream"
    assert payload.headers["content-disposition"] == (
        "attachment; filename=\"payload\"; filename*=UTF-8''payload"
    )
    vocab = next(link for link in links if "vocab" in link)
    nested = web.get(vocab)
    assert nested.status_code == 200 and nested.content == b'{"a": 1}'
    assert "filename*=UTF-8''vocab%20%C3%BC.json" in nested.headers["content-disposition"]
    by_alias = web.get("/models/fraud/versions/production/files/payload")
    assert by_alias.content == WEIGHTS
    assert web.get("/models/fraud/versions/1/files/a/../b").status_code in (400, 404)


def test_a_corrupted_file_is_refused_not_served(
    registry: RegistryClient, web_server: RegistryServer, web: WebClient
) -> None:
    """The first block is checked before the status goes out: a corrupted file is an error
    page, never 200 with wrong bytes."""
    _seed(registry)
    root = Path(web_server.config.blob_url.removeprefix("file://"))
    stored = [p for p in root.rglob("*") if p.is_file() and p.stat().st_size == len(WEIGHTS)]
    assert len(stored) == 1
    data = bytearray(stored[0].read_bytes())
    data[-10] ^= 0xFF
    stored[0].write_bytes(bytes(data))
    answer = web.get("/models/fraud/versions/1/files/payload")
    assert answer.status_code == 500, answer.status_code
    assert "Traceback" not in answer.text and bytes(data) not in answer.content


def test_lineage_both_ways_as_links(registry: RegistryClient, web: WebClient) -> None:
    _seed(registry)
    text = web.get("/models/fraud/versions/1").text
    upstream = text.split('id="upstream-h"')[1].split('id="downstream-h"')[0]
    downstream = text.split('id="downstream-h"')[1]
    assert '<a href="/models/features/versions/1">features v1</a>' in upstream
    assert "gs://data/fraud/2026-11" in upstream and "https://git.example/fraud@3f2a1c" in upstream
    assert "https://git.example/f@abc123" in upstream  # the parent's own source, nested
    assert '<a href="/models/scorer/versions/1">scorer v1</a>' in downstream
    parent = web.get("/models/features/versions/1").text
    below = parent.split('id="downstream-h"')[1]
    assert "fraud v1" in below and "scorer v1" in below  # two levels down


def test_a_person_without_a_role_gets_404_everywhere(
    registry: RegistryClient, web_server: RegistryServer, people: Callable[[str], WebClient]
) -> None:
    _seed(registry)
    people("alice")
    with as_grpc(web_server, "alice") as owner:
        owner.set_model_policy("fraud", {"owner": ["user:alice"], "viewer": ["user:vera"]})
    bob, vera = people("bob"), people("vera")
    for path in ("/models/fraud/versions/1", "/models/fraud/versions/1/files/payload"):
        assert bob.get(path).status_code == 404, path
        assert vera.get(path).status_code == 200, path
    assert vera.get("/models/fraud/versions/1/files/payload").content == WEIGHTS
