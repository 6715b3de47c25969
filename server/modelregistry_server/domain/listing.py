"""Listing rules shared by every List method: field allow-lists, ``order_by``, page tokens.

Page tokens are opaque to clients: base64url of a small JSON document holding the store's
keyset cursor (the last row's sort key) and a fingerprint of the query it was issued for, so a
token replayed with another filter, order or parent is rejected instead of silently skipping
rows, followed by ``.`` and an HMAC-SHA256 of that payload keyed with a server secret: a token
nobody issued, or one edited on the way, is rejected before its payload is even parsed.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import secrets
from typing import Any, TypeVar

from .errors import InvalidArgument, Reason
from .filter_parser import MAP_KEY_RE
from .filtering import FieldKind, FieldSpec, FilterSchema, split_field
from .ports import OrderKey

T = TypeVar("T")

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000

_STRING = FieldSpec(FieldKind.STRING)
_TIME = FieldSpec(FieldKind.TIMESTAMP)
_INT = FieldSpec(FieldKind.INTEGER)
_REPEATED = FieldSpec(FieldKind.STRING, orderable=False, repeated=True)

MODEL_SCHEMA = FilterSchema(
    fields={
        "model_id": _STRING,
        "display_name": _STRING,
        "description": _STRING,
        "type": _STRING,
        "author": _STRING,
        "create_time": _TIME,
        "update_time": _TIME,
        "delete_time": _TIME,
        "latest_version_number": _INT,
    },
    maps={"labels": _STRING},
)

VERSION_SCHEMA = FilterSchema(
    fields={
        "model_id": _STRING,
        "version_number": _INT,
        "description": _STRING,
        "type": _STRING,
        "author": _STRING,
        "stage": FieldSpec(
            FieldKind.ENUM, enum_values=("DEVELOPMENT", "STAGING", "PRODUCTION", "ARCHIVED")
        ),
        "state": FieldSpec(FieldKind.ENUM, enum_values=("DRAFT", "READY")),
        "create_time": _TIME,
        "update_time": _TIME,
        "delete_time": _TIME,
        "expire_time": _TIME,
        "expired": FieldSpec(FieldKind.BOOL, orderable=False),
        "file_count": _INT,
        "total_size": _INT,
        # Lineage: the source is one value per version; the others are repeated fields.
        "source.repository": _STRING,
        "source.commit": _STRING,
        "produced_by": _REPEATED,
        "datasets.uri": _REPEATED,
        "datasets.digest": _REPEATED,
        "dependencies.name": _REPEATED,
    },
    maps={"labels": _STRING, "metrics": FieldSpec(FieldKind.NUMBER)},
)

UPLOAD_SCHEMA = FilterSchema(
    fields={
        "upload_id": _STRING,
        "file_id": _STRING,
        "state": FieldSpec(FieldKind.ENUM, enum_values=("ACTIVE", "COMMITTED")),
        "sha256": _STRING,
        "size_bytes": _INT,
        "committed_size_bytes": _INT,
        "create_time": _TIME,
        "update_time": _TIME,
    },
    maps={},
)

FILE_SCHEMA = FilterSchema(
    fields={
        "file_id": _STRING,
        "size_bytes": _INT,
        "sha256": _STRING,
        "content_type": _STRING,
        "create_time": _TIME,
        "integrity": FieldSpec(
            FieldKind.ENUM, enum_values=("UNVERIFIED", "VERIFIED", "CORRUPTED", "MISSING")
        ),
    },
    maps={},
)

EVENT_SCHEMA = FilterSchema(
    fields={
        "sequence": _INT,
        "event_time": _TIME,
        "kind": FieldSpec(FieldKind.ENUM, enum_values=("CHANGE", "ACCESS")),
        "principal": _STRING,
        "method": _STRING,
        "resource": _STRING,  # `resource = "models/m*"`: everything about one model
        "model_id": _STRING,
        "outcome": _STRING,
        "request_id": _STRING,
    },
    maps={},
)

_TOKEN_RE = re.compile(r"([A-Za-z0-9_-]+={0,2})\.([A-Za-z0-9_-]+={0,2})")
_MAC_BYTES = 16
MIN_SECRET_BYTES = 16
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1

MODEL_DEFAULT_ORDER = (OrderKey("model_id"),)
VERSION_DEFAULT_ORDER = (OrderKey("model_id"), OrderKey("version_number"))
UPLOAD_DEFAULT_ORDER = (OrderKey("upload_id"),)
EVENT_DEFAULT_ORDER = (OrderKey("sequence"),)


def check_page_size(page_size: int) -> int:
    """AIP-158: 0 means the default, above the maximum is coerced, negative is an error."""
    if page_size < 0:
        raise InvalidArgument.field("page_size", "must not be negative")
    if page_size == 0:
        return DEFAULT_PAGE_SIZE
    return min(page_size, MAX_PAGE_SIZE)


def parse_order_by(
    text: str, schema: FilterSchema, default: tuple[OrderKey, ...]
) -> tuple[OrderKey, ...]:
    """Parse ``"metrics.accuracy desc, create_time"`` against the schema's orderable fields."""
    if not text.strip():
        return default
    keys: list[OrderKey] = []
    seen: set[str] = set()
    for term in text.split(","):
        words = term.split()
        if not words or len(words) > 2:
            raise _bad_order(f"cannot parse term {term.strip()!r}")
        name = words[0]
        descending = False
        if len(words) == 2:
            if words[1].lower() not in ("asc", "desc"):
                raise _bad_order(f"direction must be 'asc' or 'desc', got {words[1]!r}")
            descending = words[1].lower() == "desc"
        spec = _lookup(name, schema)
        if spec is None or not spec.orderable:
            raise _bad_order(f"cannot order by {name!r}")
        if name in seen:
            raise _bad_order(f"{name!r} appears twice")
        seen.add(name)
        keys.append(OrderKey(name, descending))
    return tuple(keys)


def _lookup(name: str, schema: FilterSchema) -> FieldSpec | None:
    if name in schema.fields:
        return schema.fields[name]
    head, key = split_field(name)
    if key is None:
        return None
    spec = schema.maps.get(head)
    if spec is None or not MAP_KEY_RE.fullmatch(key):
        return None
    return spec


def _bad_order(description: str) -> InvalidArgument:
    return InvalidArgument.field("order_by", description, reason=Reason.INVALID_ORDER_BY)


def query_fingerprint(*parts: object) -> str:
    """A short digest of everything that shapes a listing (parent, filter, order, flags)."""
    blob = json.dumps([str(p) for p in parts], separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class PageTokens:
    """Issues and checks page tokens, signed with ``secret`` (HMAC-SHA256, 128-bit tag).

    Every replica and every restart must use the same secret, or tokens issued by one are
    rejected by another (see the server's ``page_token_secret_file`` setting).
    """

    def __init__(self, secret: bytes) -> None:
        if len(secret) < MIN_SECRET_BYTES:
            raise ValueError(f"a page token secret needs at least {MIN_SECRET_BYTES} bytes")
        self._key = hashlib.sha256(b"modelregistry.v1 page token\x00" + secret).digest()

    @classmethod
    def random(cls) -> PageTokens:
        """Tokens valid only for this object (tests, single-use tools)."""
        return cls(secrets.token_bytes(32))

    def _mac(self, payload: str) -> str:
        digest = hmac.new(self._key, payload.encode(), hashlib.sha256).digest()
        return _b64(digest[:_MAC_BYTES])

    def encode(self, cursor: tuple[Any, ...] | None, fingerprint: str) -> str:
        """The token for the page after ``cursor`` ("" when there is no next page)."""
        if cursor is None:
            return ""
        doc = json.dumps({"c": list(cursor), "f": fingerprint}, separators=(",", ":"))
        payload = _b64(doc.encode())
        return f"{payload}.{self._mac(payload)}"

    def decode(self, token: str, fingerprint: str) -> tuple[Any, ...] | None:
        """The cursor inside ``token``; INVALID_ARGUMENT if it is malformed, was not issued
        with this secret, or was issued for another query."""
        if not token:
            return None
        match = _TOKEN_RE.fullmatch(token)  # the decoder would silently skip other characters
        if match is None:
            raise _bad_token("is not a token this service issued")
        payload, mac = match.group(1).rstrip("="), match.group(2).rstrip("=")
        if not hmac.compare_digest(mac, self._mac(payload)):
            raise _bad_token("is not a token this service issued")
        try:
            doc = json.loads(_unb64(payload))
        except (binascii.Error, ValueError, RecursionError):
            raise _bad_token("is not a token this service issued") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("c"), list):
            raise _bad_token("is not a token this service issued")
        if doc.get("f") != fingerprint:
            raise _bad_token("was issued for a different parent, filter or order_by")
        cursor = doc["c"]
        if not all(v is None or isinstance(v, (str, int, float, bool)) for v in cursor):
            raise _bad_token("is not a token this service issued")
        return tuple(cursor)


def single_cursor(cursor: tuple[Any, ...] | None, kind: type[T]) -> T | None:
    """The one value of a cursor that holds just one ``kind`` (an id or a sequence number)."""
    if cursor is None:
        return None
    value: Any = cursor[0] if len(cursor) == 1 else None
    if not isinstance(value, kind) or isinstance(value, bool):
        raise _bad_token("is not a token this service issued")
    _check_storable(value)
    return value


def typed_cursor(cursor: tuple[Any, ...] | None, *kinds: type) -> tuple[Any, ...] | None:
    """The values of a cursor that holds one value of each of ``kinds``, in that order."""
    if cursor is None:
        return None
    if len(cursor) != len(kinds) or not all(
        isinstance(value, kind) and not isinstance(value, bool)
        for value, kind in zip(cursor, kinds, strict=False)
    ):
        raise _bad_token("is not a token this service issued")
    for value in cursor:
        _check_storable(value)
    return cursor


def _check_storable(value: object) -> None:
    """What the store cannot hold: BIGINT overflows, NUL in PostgreSQL text."""
    if isinstance(value, int) and not _INT64_MIN <= value <= _INT64_MAX:
        raise _bad_token("holds a number out of range")
    if isinstance(value, str) and "\x00" in value:
        raise _bad_token("holds a NUL character")


def _bad_token(description: str) -> InvalidArgument:
    return InvalidArgument.field("page_token", description, reason=Reason.INVALID_PAGE_TOKEN)
