"""The published contract: AIP annotations and language options on every file of
modelregistry.v1, and the check against the released contract (scripts/check_contract.py:
``buf breaking`` plus field behaviours) failing on a breaking change."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from google.api import field_behavior_pb2, resource_pb2
from google.protobuf.descriptor import Descriptor, FieldDescriptor, FileDescriptor

from modelregistry.v1 import (
    access_pb2,
    events_pb2,
    lineage_pb2,
    model_registry_pb2,
    payload_pb2,
    resources_pb2,
    webhooks_pb2,
)
from tests.support.node_tools import require_buf

ROOT = Path(__file__).resolve().parents[2]
FILES: list[FileDescriptor] = [
    m.DESCRIPTOR
    for m in (
        access_pb2,
        events_pb2,
        lineage_pb2,
        model_registry_pb2,
        payload_pb2,
        resources_pb2,
        webhooks_pb2,
    )
]
RESOURCES = {
    "modelregistry/Model": ["models/{model}"],
    "modelregistry/ModelVersion": ["models/{model}/versions/{version}"],
    "modelregistry/Alias": ["models/{model}/aliases/{alias}"],
    "modelregistry/File": ["models/{model}/versions/{version}/files/{file}"],
    "modelregistry/ApiKey": ["apiKeys/{api_key}"],
    "modelregistry/Event": ["events/{event}"],
    "modelregistry/Webhook": ["webhooks/{webhook}"],
    "modelregistry/WebhookDelivery": ["webhooks/{webhook}/deliveries/{delivery}"],
}
# Request fields naming something that is not one resource type.
UNREFERENCED = {
    "modelregistry.v1.ListAliasHistoryRequest.parent",  # a model or one alias
    "modelregistry.v1.GetUploadStatusRequest.upload_id",
    "modelregistry.v1.CancelUploadRequest.upload_id",
}


def _messages() -> list[Descriptor]:
    found: list[Descriptor] = []
    for file in FILES:
        found.extend(file.message_types_by_name.values())
    return found


def _behaviours(field: FieldDescriptor) -> set[str]:
    options = field.GetOptions()
    return {
        field_behavior_pb2.FieldBehavior.Name(b)
        for b in options.Extensions[field_behavior_pb2.field_behavior]
    }


def test_every_field_of_a_request_or_resource_states_its_behaviour() -> None:
    missing = [
        field.full_name
        for message in _messages()
        if not message.name.endswith("Response")
        for field in message.fields
        if not _behaviours(field)
    ]
    assert missing == []


def test_resources_are_annotated_and_named_by_an_identifier() -> None:
    found: dict[str, list[str]] = {}
    for message in _messages():
        resource = message.GetOptions().Extensions[resource_pb2.resource]
        if resource.type:
            found[resource.type] = list(resource.pattern)
            assert resource.plural and resource.singular, message.full_name
            assert _behaviours(message.fields_by_name["name"]) == {"IDENTIFIER"}
    assert found == RESOURCES


def test_request_fields_naming_a_resource_are_required_references() -> None:
    known = set(RESOURCES) | {"*"}
    for message in _messages():
        if not message.name.endswith("Request"):
            continue
        for field in message.fields:
            if field.name not in ("name", "parent", "resource", "upload_id"):
                continue
            if message.name != "GetLineageRequest":  # name or dataset_uri
                assert "REQUIRED" in _behaviours(field), field.full_name
            if field.full_name in UNREFERENCED:
                continue
            reference = field.GetOptions().Extensions[resource_pb2.resource_reference]
            assert (reference.type or reference.child_type) in known, field.full_name


def test_every_file_carries_the_same_language_options() -> None:
    for file in FILES:
        options = file.GetOptions()
        stem = Path(file.name).stem
        assert options.go_package == "modelregistry/v1;modelregistryv1", file.name
        assert options.java_package == "modelregistry.v1", file.name
        assert options.java_multiple_files, file.name
        assert options.java_outer_classname == (
            "".join(part.title() for part in stem.split("_")) + "Proto"
        ), file.name
        assert options.csharp_namespace == "ModelRegistry.V1", file.name


def _check(root: Path) -> subprocess.CompletedProcess[str]:
    buf = require_buf()
    return subprocess.run(
        [sys.executable, ROOT / "scripts" / "check_contract.py", "--root", root, "--buf", buf],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _copy_tree(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "proto" / "modelregistry", tmp_path / "proto" / "modelregistry")
    shutil.copytree(ROOT / "third_party" / "proto", tmp_path / "third_party" / "proto")
    shutil.copy(ROOT / "buf.yaml", tmp_path / "buf.yaml")
    return tmp_path


def _edit(root: Path, old: str, new: str) -> None:
    path = root / "proto" / "modelregistry" / "v1" / "resources.proto"
    text = path.read_text()
    assert text.count(old) == 1
    path.write_text(text.replace(old, new))


def test_the_tree_is_compatible_with_the_released_contract() -> None:
    result = _check(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("old", "new", "reported"),
    [
        pytest.param(
            "  int64 latest_version_number = 13 [(google.api.field_behavior) = OUTPUT_ONLY];\n",
            "",
            'Previously present field "13" with name "latest_version_number" on message '
            '"Model" was deleted',
            id="removed-field",
        ),
        pytest.param(
            "string description = 4 [(google.api.field_behavior) = OPTIONAL];\n  // Kind of model",
            "string description = 4 [(google.api.field_behavior) = REQUIRED];\n  // Kind of model",
            "modelregistry.v1.Model.description: gained field behaviour REQUIRED",
            id="field-made-required",
        ),
    ],
)
def test_a_breaking_change_fails_the_contract_check(
    tmp_path: Path, old: str, new: str, reported: str
) -> None:
    root = _copy_tree(tmp_path)
    _edit(root, old, new)
    result = _check(root)
    assert result.returncode == 1
    assert reported in result.stdout
