"""Proto ↔ domain translation: the only place that knows both shapes."""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from google.protobuf import json_format, struct_pb2, timestamp_pb2
from google.protobuf.message import Message

from modelregistry.v1 import payload_pb2 as payload_pb
from modelregistry.v1 import resources_pb2 as pb

from ..domain import names
from ..domain.entities import (
    Alias,
    DatasetRef,
    DatasetRole,
    Dependency,
    DependencyKind,
    FileRecord,
    IntegrityState,
    Model,
    ModelVersion,
    SourceCode,
    Stage,
    StageTransition,
    UploadSession,
    UploadState,
    Variable,
    VersionState,
)
from ..domain.errors import InvalidArgument

# -- enums ------------------------------------------------------------------------------------
_STAGE_TO_PB = {
    Stage.DEVELOPMENT: pb.STAGE_DEVELOPMENT,
    Stage.STAGING: pb.STAGE_STAGING,
    Stage.PRODUCTION: pb.STAGE_PRODUCTION,
    Stage.ARCHIVED: pb.STAGE_ARCHIVED,
}
_STAGE_FROM_PB = {v: k for k, v in _STAGE_TO_PB.items()}
_STATE_TO_PB = {
    VersionState.DRAFT: pb.VERSION_STATE_DRAFT,
    VersionState.READY: pb.VERSION_STATE_READY,
}
_INTEGRITY_TO_PB = {
    IntegrityState.UNVERIFIED: pb.INTEGRITY_STATE_UNVERIFIED,
    IntegrityState.VERIFIED: pb.INTEGRITY_STATE_VERIFIED,
    IntegrityState.CORRUPTED: pb.INTEGRITY_STATE_CORRUPTED,
    IntegrityState.MISSING: pb.INTEGRITY_STATE_MISSING,
}
_DEP_TO_PB = {
    DependencyKind.LIBRARY: pb.DEPENDENCY_KIND_LIBRARY,
    DependencyKind.RUNTIME: pb.DEPENDENCY_KIND_RUNTIME,
    DependencyKind.MODEL: pb.DEPENDENCY_KIND_MODEL,
    DependencyKind.OTHER: pb.DEPENDENCY_KIND_OTHER,
}
_DEP_FROM_PB = {v: k for k, v in _DEP_TO_PB.items()} | {
    pb.DEPENDENCY_KIND_UNSPECIFIED: DependencyKind.LIBRARY
}
_ROLE_TO_PB = {
    DatasetRole.TRAINING: pb.DATASET_ROLE_TRAINING,
    DatasetRole.VALIDATION: pb.DATASET_ROLE_VALIDATION,
    DatasetRole.TEST: pb.DATASET_ROLE_TEST,
    DatasetRole.OTHER: pb.DATASET_ROLE_OTHER,
}
_ROLE_FROM_PB = {v: k for k, v in _ROLE_TO_PB.items()} | {
    pb.DATASET_ROLE_UNSPECIFIED: DatasetRole.TRAINING
}


def stage_from_proto(value: int, field: str) -> Stage:
    """A requested stage; UNSPECIFIED or unknown numbers are INVALID_ARGUMENT."""
    stage: Stage | None = _STAGE_FROM_PB.get(value)  # type: ignore[call-overload]  # wire ints
    if stage is None:
        raise InvalidArgument.field(field, "must be DEVELOPMENT, STAGING, PRODUCTION or ARCHIVED")
    return stage


# -- scalars ----------------------------------------------------------------------------------
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _ts(value: datetime | None) -> timestamp_pb2.Timestamp | None:
    """``Timestamp.FromDatetime`` without its per-call Python work (naive means UTC)."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    delta = value - _EPOCH
    return timestamp_pb2.Timestamp(
        seconds=delta.days * 86400 + delta.seconds, nanos=delta.microseconds * 1000
    )


def _time_from(msg: Message, field: str, path: str) -> datetime | None:
    """The timestamp ``field`` of ``msg``; errors name the request field ``path``."""
    if not msg.HasField(field):
        return None
    ts: timestamp_pb2.Timestamp = getattr(msg, field)
    if not 0 <= ts.nanos < 1_000_000_000:
        raise InvalidArgument.field(path, "has invalid nanos")
    try:
        return ts.ToDatetime(tzinfo=UTC)
    except (ValueError, OverflowError):
        raise InvalidArgument.field(path, "is out of range") from None


def time_field(msg: Message, field: str) -> datetime | None:
    """An optional timestamp field of a request (``read_time``), checked."""
    return _time_from(msg, field, field)


def _value_to_py(value: struct_pb2.Value, path: str) -> Any:
    """A ``Value`` as JSON data; NaN and ±Infinity (which JSON cannot hold, so could be neither
    stored nor returned) are INVALID_ARGUMENT naming ``path``."""
    kind = value.WhichOneof("kind")
    if kind == "number_value":
        if not math.isfinite(value.number_value):
            raise InvalidArgument.field(path, "must be a finite number (not NaN or Infinity)")
        return value.number_value
    if kind == "struct_value":
        return _struct_to_dict(value.struct_value, path)
    if kind == "list_value":
        return [_value_to_py(v, f"{path}[{i}]") for i, v in enumerate(value.list_value.values)]
    if kind in ("string_value", "bool_value"):
        return getattr(value, kind)
    return None  # null_value, or no kind set


def _py_to_value(obj: Any) -> struct_pb2.Value:
    return json_format.ParseDict(obj, struct_pb2.Value())


def _struct_to_dict(struct: struct_pb2.Struct, path: str) -> dict[str, Any]:
    return {k: _value_to_py(v, f"{path}.{k}") for k, v in struct.fields.items()}


# -- models -----------------------------------------------------------------------------------
def model_to_proto(model: Model) -> pb.Model:
    """Domain model → proto."""
    return pb.Model(
        name=names.model_name(model.model_id),
        uid=model.uid,
        display_name=model.display_name,
        description=model.description,
        type=model.type,
        author=model.author,
        labels=model.labels,
        create_time=_ts(model.create_time),
        update_time=_ts(model.update_time),
        delete_time=_ts(model.delete_time),
        purge_time=_ts(model.purge_time),
        etag=model.etag,
        latest_version_number=model.latest_version_number,
    )


def model_values(msg: pb.Model) -> dict[str, Any]:
    """Every user-settable field of a proto model, as domain values."""
    return {
        "display_name": msg.display_name,
        "description": msg.description,
        "type": msg.type,
        "author": msg.author,
        "labels": dict(msg.labels),
    }


# -- versions ---------------------------------------------------------------------------------
def version_to_proto(version: ModelVersion, now: datetime) -> pb.ModelVersion:
    """Domain version → proto (``expired`` computed at ``now``)."""
    msg = pb.ModelVersion(
        name=names.version_name(version.model_id, version.number),
        uid=version.uid,
        version_number=version.number,
        description=version.description,
        type=version.type,
        author=version.author,
        inputs=[_variable_to_proto(v) for v in version.inputs],
        outputs=[_variable_to_proto(v) for v in version.outputs],
        dependencies=[
            pb.Dependency(name=d.name, kind=_DEP_TO_PB[d.kind], version=d.version)
            for d in version.dependencies
        ],
        produced_by=version.produced_by,
        metrics=version.metrics,
        datasets=[dataset_to_proto(d) for d in version.datasets],
        labels=version.labels,
        aliases=sorted(version.aliases),
        stage=_STAGE_TO_PB[version.stage],
        state=_STATE_TO_PB[version.state],
        manifest_digest=version.manifest_digest,
        expire_time=_ts(version.expire_time),
        expired=version.is_expired(now),
        create_time=_ts(version.create_time),
        update_time=_ts(version.update_time),
        delete_time=_ts(version.delete_time),
        purge_time=_ts(version.purge_time),
        etag=version.etag,
        file_count=version.file_count,
        total_size_bytes=version.total_size,
    )
    if version.parameters:
        msg.parameters.update(version.parameters)
    if version.source is not None:
        src = version.source
        msg.source.CopyFrom(
            pb.SourceCode(repository=src.repository, commit=src.commit, path=src.path)
        )
    return msg


def dataset_to_proto(ref: DatasetRef) -> pb.DatasetReference:
    """Domain dataset reference → proto."""
    return pb.DatasetReference(uri=ref.uri, digest=ref.digest, role=_ROLE_TO_PB[ref.role])


def _variable_to_proto(var: Variable) -> pb.Variable:
    msg = pb.Variable(name=var.name, type=var.type, description=var.description)
    if var.value is not None:
        msg.value.CopyFrom(_py_to_value(var.value))
    return msg


def _variable_from_proto(msg: pb.Variable, path: str) -> Variable:
    value = _value_to_py(msg.value, f"{path}.value") if msg.HasField("value") else None
    return Variable(msg.name, msg.type, msg.description, value)


def version_values(msg: pb.ModelVersion, field: str = "model_version") -> dict[str, Any]:
    """Every user-settable field of a proto version, as domain values."""
    for i, dep in enumerate(msg.dependencies):
        if dep.kind not in _DEP_FROM_PB:
            raise InvalidArgument.field(f"{field}.dependencies[{i}].kind", "unknown value")
    for i, ds in enumerate(msg.datasets):
        if ds.role not in _ROLE_FROM_PB:
            raise InvalidArgument.field(f"{field}.datasets[{i}].role", "unknown value")
    source = None
    if msg.HasField("source"):
        source = SourceCode(msg.source.repository, msg.source.commit, msg.source.path)
    return {
        "description": msg.description,
        "type": msg.type,
        "author": msg.author,
        "inputs": [
            _variable_from_proto(v, f"{field}.inputs[{i}]") for i, v in enumerate(msg.inputs)
        ],
        "outputs": [
            _variable_from_proto(v, f"{field}.outputs[{i}]") for i, v in enumerate(msg.outputs)
        ],
        "parameters": _struct_to_dict(msg.parameters, f"{field}.parameters"),
        "dependencies": [
            Dependency(d.name, _DEP_FROM_PB[d.kind], d.version) for d in msg.dependencies
        ],
        "produced_by": list(msg.produced_by),
        "metrics": dict(msg.metrics),
        "source": source,
        "datasets": [DatasetRef(d.uri, d.digest, _ROLE_FROM_PB[d.role]) for d in msg.datasets],
        "labels": dict(msg.labels),
        "expire_time": _time_from(msg, "expire_time", f"{field}.expire_time"),
    }


def populated_paths(msg: Message, candidates: Iterable[str]) -> tuple[str, ...]:
    """AIP-134 implied mask: the candidate fields the request actually set."""
    present = {fd.name for fd, _ in msg.ListFields()}
    return tuple(name for name in candidates if name in present)


# -- aliases, transitions, files --------------------------------------------------------------
def alias_to_proto(alias: Alias) -> pb.Alias:
    """Domain alias → proto."""
    return pb.Alias(
        name=names.alias_name(alias.model_id, alias.alias),
        version=names.version_name(alias.model_id, alias.version_number),
        update_time=_ts(alias.update_time),
    )


def transition_to_proto(t: StageTransition) -> pb.StageTransition:
    """Domain stage transition → proto."""
    return pb.StageTransition(
        from_stage=_STAGE_TO_PB[t.from_stage],
        to_stage=_STAGE_TO_PB[t.to_stage],
        actor=t.actor,
        comment=t.comment,
        transition_time=_ts(t.transition_time),
    )


def file_to_proto(record: FileRecord) -> pb.File:
    """Domain file → proto."""
    return pb.File(
        name=names.file_name(record.model_id, record.version_number, record.file_id),
        size_bytes=record.size,
        sha256=record.sha256,
        crc32c=record.crc32c,
        content_type=record.content_type,
        create_time=_ts(record.create_time),
        integrity=_INTEGRITY_TO_PB[record.integrity],
        last_verify_time=_ts(record.verify_time),
    )


_UPLOAD_STATE_TO_PB = {
    UploadState.ACTIVE: payload_pb.UPLOAD_STATE_ACTIVE,
    UploadState.COMMITTED: payload_pb.UPLOAD_STATE_COMMITTED,
}


def upload_to_proto(
    session: UploadSession, record: FileRecord | None = None
) -> payload_pb.UploadStatus:
    """Domain upload session (and, once committed, its file) → proto."""
    status = payload_pb.UploadStatus(
        upload_id=session.upload_id,
        name=names.file_name(session.model_id, session.version_number, session.file_id),
        file_id=session.file_id,
        committed_size_bytes=session.committed_size,
        size_bytes=session.declared_size,
        sha256=session.declared_sha256,
        state=_UPLOAD_STATE_TO_PB[session.state],
        create_time=_ts(session.create_time),
        update_time=_ts(session.update_time),
    )
    if record is not None:
        status.file.CopyFrom(file_to_proto(record))
    return status
