"""The updatable fields of models and versions, with the validators of their values.

Create and update both validate through these tables; the update path writes only the
attributes they name (see :mod:`.updates`).
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from .entities import DatasetRef, Dependency, Model, ModelVersion, SourceCode, Variable
from .errors import InvalidArgument
from .updates import FieldTable, Mutability, UpdatableField
from .validation import (
    MAX_DESCRIPTION,
    check_count,
    check_label_key,
    check_labels,
    check_metric_key,
    check_metrics,
    check_text,
)
from .webhook_rules import check_description, check_enabled, check_event_filter, check_url
from .webhook_types import Webhook

MAX_PARAMETERS_BYTES = 256 * 1024
DRAFT = Mutability.WHILE_DRAFT


def _short_text(value: str, field_name: str) -> str:
    return check_text(value, field_name)


def _description(value: str, field_name: str) -> str:
    return check_text(value, field_name, MAX_DESCRIPTION)


def _as_given(value: Any, field_name: str) -> Any:
    """Values the API layer already checked (timestamps), or that the use case resolves."""
    return value


def check_variables(items: list[Variable], field_name: str) -> list[Variable]:
    """Inputs or outputs: each named, text within limits."""
    check_count(list(items), field_name)
    for i, var in enumerate(items):
        where = f"{field_name}[{i}]"
        if not var.name:
            raise InvalidArgument.field(f"{where}.name", "is required")
        check_text(var.name, f"{where}.name")
        check_text(var.type, f"{where}.type")
        check_text(var.description, f"{where}.description", MAX_DESCRIPTION)
    return list(items)


def check_parameters(params: dict[str, Any], field_name: str) -> dict[str, Any]:
    """Parameters: finite numbers only (JSON has no NaN or Infinity), at most
    :data:`MAX_PARAMETERS_BYTES` as compact JSON."""
    try:
        text = json.dumps(params, separators=(",", ":"), allow_nan=False)
    except ValueError:
        raise InvalidArgument.field(field_name, "numbers must be finite") from None
    if len(text) > MAX_PARAMETERS_BYTES:
        raise InvalidArgument.field(field_name, f"is larger than {MAX_PARAMETERS_BYTES} bytes")
    return dict(params)


def check_dependencies(items: list[Dependency], field_name: str) -> list[Dependency]:
    """Dependencies: each named, text within limits."""
    check_count(list(items), field_name)
    for i, dep in enumerate(items):
        if not dep.name:
            raise InvalidArgument.field(f"{field_name}[{i}].name", "is required")
        check_text(dep.name, f"{field_name}[{i}].name")
        check_text(dep.version, f"{field_name}[{i}].version")
    return list(items)


def check_source(source: SourceCode | None, field_name: str) -> SourceCode | None:
    """Source code reference: text within limits."""
    if source is None:
        return None
    check_text(source.repository, f"{field_name}.repository", 2000)
    check_text(source.commit, f"{field_name}.commit")
    check_text(source.path, f"{field_name}.path", 2000)
    return replace(source)


def check_datasets(items: list[DatasetRef], field_name: str) -> list[DatasetRef]:
    """Dataset references: each with a URI, text within limits."""
    check_count(list(items), field_name)
    for i, ds in enumerate(items):
        if not ds.uri:
            raise InvalidArgument.field(f"{field_name}[{i}].uri", "is required")
        check_text(ds.uri, f"{field_name}[{i}].uri", 2000)
        check_text(ds.digest, f"{field_name}[{i}].digest")
    return list(items)


MODEL_FIELDS = FieldTable(
    "model",
    Model,
    [
        UpdatableField("display_name", "display_name", _short_text, str),
        UpdatableField("type", "type", _short_text, str),
        UpdatableField("author", "author", _short_text, str),
        UpdatableField("description", "description", _description, str),
        UpdatableField("labels", "labels", check_labels, dict, key_check=check_label_key),
    ],
    output_only=(
        "name",
        "uid",
        "create_time",
        "update_time",
        "delete_time",
        "purge_time",
        "etag",
        "latest_version_number",
    ),
)

VERSION_FIELDS = FieldTable(
    "model_version",
    ModelVersion,
    [
        UpdatableField("type", "type", _short_text, str),
        UpdatableField("author", "author", _short_text, str),
        UpdatableField("description", "description", _description, str),
        UpdatableField("labels", "labels", check_labels, dict, key_check=check_label_key),
        UpdatableField("metrics", "metrics", check_metrics, dict, key_check=check_metric_key),
        UpdatableField("expire_time", "expire_time", _as_given, lambda: None),
        UpdatableField("inputs", "inputs", check_variables, list, DRAFT),
        UpdatableField("outputs", "outputs", check_variables, list, DRAFT),
        UpdatableField("parameters", "parameters", check_parameters, dict, DRAFT),
        UpdatableField("dependencies", "dependencies", check_dependencies, list, DRAFT),
        UpdatableField("source", "source", check_source, lambda: None, DRAFT),
        UpdatableField("datasets", "datasets", check_datasets, list, DRAFT),
        # Checked and resolved to numbered names by the use case (it needs the caller).
        UpdatableField("produced_by", "produced_by", _as_given, list, DRAFT),
    ],
    output_only=(
        "name",
        "uid",
        "version_number",
        "aliases",
        "stage",
        "state",
        "manifest_digest",
        "expired",
        "create_time",
        "update_time",
        "delete_time",
        "purge_time",
        "etag",
        "file_count",
        "total_size_bytes",
    ),
)

WEBHOOK_FIELDS = FieldTable(
    "webhook",
    Webhook,
    [
        UpdatableField("url", "url", check_url, str),
        UpdatableField("filter", "filter", check_event_filter, str),
        UpdatableField("description", "description", check_description, str),
        UpdatableField("enabled", "enabled", check_enabled, lambda: False),
    ],
    output_only=(
        "name",
        "cursor",
        "created_by",
        "create_time",
        "update_time",
        "secret_time",
        "etag",
    ),
)
