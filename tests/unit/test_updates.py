"""The update-field tables: masks checked and applied by table, tables in step with the proto."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from modelregistry.v1 import resources_pb2 as pb
from modelregistry.v1 import webhooks_pb2 as wh
from modelregistry_server.domain.entities import Model
from modelregistry_server.domain.errors import InvalidArgument, Reason
from modelregistry_server.domain.fields import MODEL_FIELDS, VERSION_FIELDS, WEBHOOK_FIELDS
from modelregistry_server.domain.updates import FieldTable, Mutability, UpdatableField

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def model() -> Model:
    return Model("t", "m", "uid", T0, T0, display_name="Fraud", labels={"a": "1", "b": "2"})


@pytest.mark.parametrize(
    ("table", "message"),
    [(MODEL_FIELDS, pb.Model), (VERSION_FIELDS, pb.ModelVersion), (WEBHOOK_FIELDS, wh.Webhook)],
)
def test_every_proto_field_is_updatable_or_output_only(table: FieldTable, message: type) -> None:
    proto_fields = {f.name for f in message.DESCRIPTOR.fields}
    updatable = set(table.updatable)
    assert updatable <= proto_fields
    for name in proto_fields - updatable:
        with pytest.raises(InvalidArgument) as caught:
            table.check_mask((name,))
        assert caught.value.reason is Reason.INVALID_UPDATE_MASK
        assert "output only" in caught.value.message, name


def test_content_fields_change_only_while_draft() -> None:
    assert set(VERSION_FIELDS.paths(Mutability.WHILE_DRAFT)) == {
        "inputs", "outputs", "parameters", "dependencies", "produced_by", "source", "datasets",
    }  # fmt: skip
    assert set(VERSION_FIELDS.paths(Mutability.ALWAYS)) == {
        "description", "type", "author", "labels", "metrics", "expire_time",
    }  # fmt: skip


def test_table_rejects_an_attribute_the_entity_lacks() -> None:
    bogus = UpdatableField("nick", "nick_name", lambda v, f: v, str)
    with pytest.raises(AssertionError, match="nick_name"):
        FieldTable("model", Model, [bogus], output_only=())


@pytest.mark.parametrize(
    ("paths", "expected"),
    [
        (("*",), MODEL_FIELDS.updatable),
        (("labels.a", "display_name", "labels.a"), ("labels.a", "display_name")),
    ],
)
def test_check_mask(paths: tuple[str, ...], expected: tuple[str, ...]) -> None:
    assert MODEL_FIELDS.check_mask(paths) == expected


@pytest.mark.parametrize(
    "paths",
    [(), ("*", "labels"), ("nope",), ("display_name.x",), ("labels.",), ("labels.Bad Key",)],
)
def test_bad_masks(paths: tuple[str, ...]) -> None:
    with pytest.raises(InvalidArgument) as caught:
        MODEL_FIELDS.check_mask(paths)
    assert caught.value.reason is Reason.INVALID_UPDATE_MASK
    assert caught.value.field_violations[0].field == "update_mask"


def test_apply_writes_the_value_or_clears_the_field() -> None:
    target = model()
    MODEL_FIELDS.apply(target, "type", {"type": "classifier"})
    MODEL_FIELDS.apply(target, "display_name", {})  # named in the mask, left out: cleared
    assert (target.type, target.display_name) == ("classifier", "")
    MODEL_FIELDS.apply(target, "labels.a", {"labels": {"a": "9"}})
    MODEL_FIELDS.apply(target, "labels.b", {"labels": {}})  # absent from the request: removed
    MODEL_FIELDS.apply(target, "labels.c", {"labels": {"c": "3"}})
    assert target.labels == {"a": "9", "c": "3"}
    MODEL_FIELDS.apply(target, "labels", {})
    assert target.labels == {}


def test_values_validates_with_field_names() -> None:
    assert MODEL_FIELDS.values({"type": "x", "other": 1}) == {"type": "x"}
    assert MODEL_FIELDS.values({"type": "x", "author": "y"}, only={"author"}) == {"author": "y"}
    with pytest.raises(InvalidArgument) as caught:
        MODEL_FIELDS.values({"description": "d" * 10_001})
    assert caught.value.field_violations[0].field == "model.description"
    with pytest.raises(InvalidArgument) as caught:
        VERSION_FIELDS.values({"metrics": {"auc": float("nan")}})
    assert caught.value.field_violations[0].field == "model_version.metrics.auc"
