"""Row <-> entity translation: the only place that knows how entities are laid out in tables.

Rows are read as plain mappings (field name -> stored value) so model instances, ``.dicts()``
listings and joined selects all decode the same way.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from ...domain.entities import (
    Alias,
    ApiKey,
    BlobRecord,
    BlockSums,
    DatasetRef,
    DatasetRole,
    Dependency,
    DependencyKind,
    FileRecord,
    IntegrityState,
    Model,
    ModelVersion,
    RequestRecord,
    SourceCode,
    Stage,
    StageTransition,
    UploadSession,
    UploadState,
    Variable,
    VersionState,
    VersionStatus,
)

Row = Mapping[str, Any]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)


def to_micros(value: datetime) -> int:
    """Microseconds since the epoch; a naive datetime is taken to be UTC."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return (value - _EPOCH) // _MICRO


def to_micros_or_none(value: datetime | None) -> int | None:
    """:func:`to_micros`, passing None through."""
    return None if value is None else to_micros(value)


def from_micros(value: int) -> datetime:
    """An aware UTC datetime from microseconds since the epoch."""
    return _EPOCH + timedelta(microseconds=value)


def from_micros_or_none(value: int | None) -> datetime | None:
    """:func:`from_micros`, passing None through."""
    return None if value is None else from_micros(value)


def _load(text: str) -> Any:
    """``json.loads``, without the decoder for the empty list and object most columns hold."""
    if text == "[]":
        return []
    if text == "{}":
        return {}
    return json.loads(text)


def _dump(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


# -- models ------------------------------------------------------------------------------------


def model_columns(model: Model) -> dict[str, Any]:
    """Every column of a model row except ``id`` and ``latest_version_number``."""
    return {
        "tenant": model.tenant,
        "model_id": model.model_id,
        "uid": model.uid,
        **model_mutable_columns(model),
    }


def model_mutable_columns(model: Model) -> dict[str, Any]:
    """The columns :meth:`save_model` writes (the version counter is the store's own)."""
    return {
        "display_name": model.display_name,
        "description": model.description,
        "type": model.type,
        "author": model.author,
        "create_time": to_micros(model.create_time),
        "update_time": to_micros(model.update_time),
        "delete_time": to_micros_or_none(model.delete_time),
        "purge_time": to_micros_or_none(model.purge_time),
        "revision": model.revision,
    }


def model_entity(row: Row, labels: dict[str, str]) -> Model:
    """A :class:`Model` from its row and labels."""
    return Model(
        tenant=row["tenant"],
        model_id=row["model_id"],
        uid=row["uid"],
        create_time=from_micros(row["create_time"]),
        update_time=from_micros(row["update_time"]),
        display_name=row["display_name"],
        description=row["description"],
        type=row["type"],
        author=row["author"],
        labels=labels,
        delete_time=from_micros_or_none(row["delete_time"]),
        purge_time=from_micros_or_none(row["purge_time"]),
        revision=row["revision"],
        latest_version_number=row["latest_version_number"],
    )


# -- versions ----------------------------------------------------------------------------------


def version_columns(version: ModelVersion) -> dict[str, Any]:
    """Every column of a version row except ``id``, ``model_pk`` and ``transition_seq``."""
    return {
        "tenant": version.tenant,
        "model_id": version.model_id,
        "number": version.number,
        "uid": version.uid,
        "create_time": to_micros(version.create_time),
        **version_mutable_columns(version),
    }


def version_mutable_columns(version: ModelVersion) -> dict[str, Any]:
    """The columns :meth:`save_version` writes."""
    source = version.source
    return {
        "update_time": to_micros(version.update_time),
        "description": version.description,
        "type": version.type,
        "author": version.author,
        "inputs": _dump([_variable(v) for v in version.inputs]),
        "outputs": _dump([_variable(v) for v in version.outputs]),
        "parameters": _dump(version.parameters),
        "dependencies_json": _dump(
            [
                {"name": d.name, "kind": str(d.kind), "version": d.version}
                for d in version.dependencies
            ]
        ),
        "produced_by": _dump(list(version.produced_by)),
        "source": None
        if source is None
        else _dump({"repository": source.repository, "commit": source.commit, "path": source.path}),
        "source_repository": "" if source is None else source.repository,
        "source_commit": "" if source is None else source.commit,
        "datasets": _dump(
            [{"uri": d.uri, "digest": d.digest, "role": str(d.role)} for d in version.datasets]
        ),
        "stage": str(version.stage),
        "state": str(version.state),
        "manifest_digest": version.manifest_digest,
        "expire_time": to_micros_or_none(version.expire_time),
        "delete_time": to_micros_or_none(version.delete_time),
        "purge_time": to_micros_or_none(version.purge_time),
        "revision": version.revision,
        "file_count": version.file_count,
        "total_size": version.total_size,
    }


def _variable(v: Variable) -> dict[str, Any]:
    return {"name": v.name, "type": v.type, "description": v.description, "value": v.value}


def _variables(text: str) -> list[Variable]:
    return [
        Variable(name=d["name"], type=d["type"], description=d["description"], value=d["value"])
        for d in _load(text)
    ]


def version_status(row: Row, model_id: str, number: int) -> VersionStatus:
    """A :class:`VersionStatus` from a row holding ``state`` and ``delete_time``."""
    return VersionStatus(
        model_id=model_id,
        number=number,
        state=VersionState(row["state"]),
        delete_time=from_micros_or_none(row["delete_time"]),
    )


def version_entity(
    row: Row, labels: dict[str, str], metrics: dict[str, float], aliases: list[str]
) -> ModelVersion:
    """A :class:`ModelVersion` from its row, labels, metrics and alias names."""
    source = _load(row["source"]) if row["source"] is not None else None
    return ModelVersion(
        tenant=row["tenant"],
        model_id=row["model_id"],
        number=row["number"],
        uid=row["uid"],
        create_time=from_micros(row["create_time"]),
        update_time=from_micros(row["update_time"]),
        description=row["description"],
        type=row["type"],
        author=row["author"],
        inputs=_variables(row["inputs"]),
        outputs=_variables(row["outputs"]),
        parameters=_load(row["parameters"]),
        dependencies=[
            Dependency(name=d["name"], kind=DependencyKind(d["kind"]), version=d["version"])
            for d in _load(row["dependencies_json"])
        ],
        produced_by=list(_load(row["produced_by"])),
        metrics=metrics,
        source=None if source is None else SourceCode(**source),
        datasets=[
            DatasetRef(uri=d["uri"], digest=d["digest"], role=DatasetRole(d["role"]))
            for d in _load(row["datasets"])
        ],
        labels=labels,
        stage=Stage(row["stage"]),
        state=VersionState(row["state"]),
        manifest_digest=row["manifest_digest"],
        expire_time=from_micros_or_none(row["expire_time"]),
        delete_time=from_micros_or_none(row["delete_time"]),
        purge_time=from_micros_or_none(row["purge_time"]),
        revision=row["revision"],
        file_count=row["file_count"],
        total_size=row["total_size"],
        aliases=sorted(aliases),
    )


# -- aliases, transitions, requests ------------------------------------------------------------


def alias_entity(row: Row, tenant: str, model_id: str) -> Alias:
    """An :class:`Alias` from its row (the row holds the model's row id, not its name)."""
    return Alias(
        tenant=tenant,
        model_id=model_id,
        alias=row["alias_name"],
        version_number=row["version_number"],
        update_time=from_micros(row["update_time"]),
    )


def transition_columns(transition: StageTransition) -> dict[str, Any]:
    """The columns of a transition row, minus its owner and sequence."""
    return {
        "from_stage": str(transition.from_stage),
        "to_stage": str(transition.to_stage),
        "actor": transition.actor,
        "comment": transition.comment,
        "transition_time": to_micros(transition.transition_time),
    }


def transition_entity(row: Row) -> StageTransition:
    """A :class:`StageTransition` from its row."""
    return StageTransition(
        from_stage=Stage(row["from_stage"]),
        to_stage=Stage(row["to_stage"]),
        actor=row["actor"],
        comment=row["comment"],
        transition_time=from_micros(row["transition_time"]),
        sequence=row["sequence"],
    )


def request_columns(record: RequestRecord) -> dict[str, Any]:
    """The columns of a request row."""
    return {
        "tenant": record.tenant,
        "request_id": record.request_id,
        "method": record.method,
        "resource_name": record.resource_name,
        "create_time": to_micros(record.create_time),
        "fingerprint": record.fingerprint,
    }


def request_entity(row: Row) -> RequestRecord:
    """A :class:`RequestRecord` from its row."""
    return RequestRecord(
        tenant=row["tenant"],
        request_id=row["request_id"],
        method=row["method"],
        resource_name=row["resource_name"],
        create_time=from_micros(row["create_time"]),
        fingerprint=row["fingerprint"],
    )


# -- files and uploads -------------------------------------------------------------------------


def file_columns(record: FileRecord) -> dict[str, Any]:
    """The columns of a file row, minus its owner."""
    return {
        "tenant": record.tenant,
        "file_id": record.file_id,
        "size": record.size,
        "sha256": record.sha256,
        "crc32c": record.crc32c,
        "content_type": record.content_type,
        "create_time": to_micros(record.create_time),
    }


def file_entity(row: Row, model_id: str, version_number: int) -> FileRecord:
    """A :class:`FileRecord` from its row (the row holds the version's row id), with its
    blob's ``verify_state`` and ``verify_time`` if the row was joined with the blob's."""
    return FileRecord(
        tenant=row["tenant"],
        model_id=model_id,
        version_number=version_number,
        file_id=row["file_id"],
        size=row["size"],
        sha256=row["sha256"],
        crc32c=row["crc32c"],
        content_type=row["content_type"],
        create_time=from_micros(row["create_time"]),
        integrity=IntegrityState(row.get("verify_state") or IntegrityState.UNVERIFIED),
        verify_time=verify_time_entity(row.get("verify_time")),
    )


def verify_time_entity(value: int | None) -> datetime | None:
    """A blob's ``verify_time`` column (0 or NULL: never verified)."""
    return from_micros(value) if value else None


def blob_sums_columns(sums: BlockSums | None) -> dict[str, Any]:
    """The block-sum columns of a blob row."""
    if sums is None:
        return {"block_size": None, "block_crc32c": None}
    return {"block_size": sums.block_size, "block_crc32c": sums.packed}


def blob_entity(row: Row) -> BlobRecord:
    """A :class:`BlobRecord` from its row."""
    packed = row["block_crc32c"]
    sums = None if packed is None else BlockSums(int(row["block_size"]), bytes(packed))
    return BlobRecord(
        digest=row["digest"],
        size=row["size"],
        sums=sums,
        integrity=IntegrityState(row["verify_state"]),
        verify_time=verify_time_entity(row["verify_time"]),
    )


def upload_columns(session: UploadSession) -> dict[str, Any]:
    """The columns of an upload row."""
    return {
        "tenant": session.tenant,
        "upload_id": session.upload_id,
        "model_id": session.model_id,
        "version_number": session.version_number,
        "file_id": session.file_id,
        "declared_size": session.declared_size,
        "declared_sha256": session.declared_sha256,
        "content_type": session.content_type,
        "create_time": to_micros(session.create_time),
        "owner": session.owner,
        **upload_mutable_columns(session),
    }


def upload_mutable_columns(session: UploadSession) -> dict[str, Any]:
    """The columns :meth:`save_upload` writes."""
    return {
        "committed_size": session.committed_size,
        "state": str(session.state),
        "update_time": to_micros(session.update_time),
        "lease_holder": session.lease_holder or None,
        "lease_token": session.lease_token or None,
        "lease_expire": None if session.lease_expire is None else to_micros(session.lease_expire),
    }


def upload_entity(row: Row) -> UploadSession:
    """An :class:`UploadSession` from its row."""
    return UploadSession(
        tenant=row["tenant"],
        upload_id=row["upload_id"],
        model_id=row["model_id"],
        version_number=row["version_number"],
        file_id=row["file_id"],
        declared_size=row["declared_size"],
        declared_sha256=row["declared_sha256"],
        content_type=row["content_type"],
        committed_size=row["committed_size"],
        state=UploadState(row["state"]),
        create_time=from_micros(row["create_time"]),
        update_time=from_micros(row["update_time"]),
        owner=row["owner"],
        lease_holder=row["lease_holder"] or "",
        lease_token=row["lease_token"] or 0,
        lease_expire=None if row["lease_expire"] is None else from_micros(row["lease_expire"]),
    )


# -- API keys ----------------------------------------------------------------------------------


def api_key_columns(key: ApiKey) -> dict[str, Any]:
    """Every column of an API key row except ``id``."""
    return {
        "tenant": key.tenant,
        "key_id": key.key_id,
        "name": key.name,
        "secret_hash": key.secret_hash,
        "scopes": " ".join(sorted(key.scopes)),
        "created_by": key.created_by,
        "create_time": to_micros(key.create_time),
        "expire_time": to_micros_or_none(key.expire_time),
        "revoke_time": to_micros_or_none(key.revoke_time),
        "last_used_time": to_micros_or_none(key.last_used_time),
    }


def api_key_entity(row: Row) -> ApiKey:
    """An :class:`ApiKey` from its row."""
    return ApiKey(
        tenant=row["tenant"],
        key_id=row["key_id"],
        name=row["name"],
        scopes=frozenset(row["scopes"].split()),
        created_by=row["created_by"],
        create_time=from_micros(row["create_time"]),
        expire_time=from_micros_or_none(row["expire_time"]),
        revoke_time=from_micros_or_none(row["revoke_time"]),
        last_used_time=from_micros_or_none(row["last_used_time"]),
        secret_hash=row["secret_hash"],
    )
