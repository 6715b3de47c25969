"""The names every blob store accepts: blob keys, upload ids and byte positions.

Checked before any backend is touched, so a bad name can never reach a path or object name.
"""

from __future__ import annotations

import re

from ...domain.errors import InvalidArgument

BLOB_KEY_PREFIX = "sha256/"
_BLOB_KEY = re.compile(r"sha256/[0-9a-f]{64}")
_HEX_DIGEST = re.compile(r"[0-9a-f]{64}")
_UPLOAD_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")


def check_key(key: str) -> str:
    """Validate a blob key (``sha256/`` + 64 lowercase hex digits) and return its hex digest."""
    if not isinstance(key, str) or _BLOB_KEY.fullmatch(key) is None:
        raise InvalidArgument.field(
            "key", f"{key!r} is not 'sha256/' followed by 64 lowercase hex digits"
        )
    return key[len(BLOB_KEY_PREFIX) :]


def is_hex_digest(name: str) -> bool:
    """True if ``name`` is a 64-digit lowercase hex digest (a blob's name within its store)."""
    return _HEX_DIGEST.fullmatch(name) is not None


def check_upload_id(upload_id: str) -> None:
    """Validate an upload id: 1-128 characters of ``[A-Za-z0-9_-]``."""
    if not is_upload_id(upload_id):
        raise InvalidArgument.field(
            "upload_id", f"{upload_id!r} is not 1-128 characters of [A-Za-z0-9_-]"
        )


def is_upload_id(name: str) -> bool:
    """True if ``name`` is a valid upload id."""
    return isinstance(name, str) and _UPLOAD_ID.fullmatch(name) is not None


def check_position(field: str, value: int | None) -> None:
    """Validate an offset, size or limit: None (where allowed) or a non-negative integer."""
    if value is not None and (not isinstance(value, int) or value < 0):
        raise InvalidArgument.field(field, f"must be a non-negative integer, got {value!r}")
