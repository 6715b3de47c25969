"""AccessService messages <-> domain values."""

from __future__ import annotations

from datetime import UTC, datetime

from google.protobuf import timestamp_pb2

from modelregistry.v1 import access_pb2 as pb

from ..domain.api_keys import api_key_name
from ..domain.entities import ApiKey
from ..domain.errors import InvalidArgument
from ..domain.identity import Caller


def _ts(value: datetime | None) -> timestamp_pb2.Timestamp | None:
    if value is None:
        return None
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(value)
    return stamp


def api_key_to_proto(key: ApiKey) -> pb.ApiKey:
    """The key as clients see it: everything but the hash of its secret."""
    return pb.ApiKey(
        name=api_key_name(key.key_id),
        key_id=key.key_id,
        display_name=key.name,
        scopes=sorted(key.scopes),
        expire_time=_ts(key.expire_time),
        tenant=key.tenant,
        created_by=key.created_by,
        create_time=_ts(key.create_time),
        revoke_time=_ts(key.revoke_time),
        last_use_time=_ts(key.last_used_time),
    )


def caller_to_proto(caller: Caller) -> pb.Caller:
    """The authenticated caller."""
    return pb.Caller(
        actor=caller.actor,
        subject=caller.subject,
        tenant=caller.tenant,
        scopes=sorted(s.value for s in caller.scopes),
        groups=sorted(caller.groups),
        api_key_id=caller.api_key_id,
        auth_method=caller.method.value,
    )


def expire_time_of(key: pb.ApiKey) -> datetime | None:
    """The requested ``api_key.expire_time`` (None if unset)."""
    if not key.HasField("expire_time"):
        return None
    stamp = key.expire_time
    if not 0 <= stamp.nanos < 1_000_000_000:
        raise InvalidArgument.field("api_key.expire_time", "has invalid nanos")
    try:
        return stamp.ToDatetime(tzinfo=UTC)
    except (ValueError, OverflowError):
        raise InvalidArgument.field("api_key.expire_time", "is out of range") from None
