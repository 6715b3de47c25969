"""Resource names (AIP-122) and the identifier rules behind them.

``models/{model}``, ``models/{model}/versions/{version}``, ``models/{model}/aliases/{alias}``,
``models/{model}/versions/{version}/files/{file}``. Parsing errors name the request field.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import InvalidArgument

MODEL_ID_RE = re.compile(r"[a-z][a-z0-9-]{0,62}")
ALIAS_RE = MODEL_ID_RE
REQUEST_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,128}")
UPLOAD_ID_RE = REQUEST_ID_RE
LATEST = "latest"
ALL_MODELS = "-"
MAX_FILE_ID_LENGTH = 512
MAX_VERSION_NUMBER = 2**63 - 1  # version_number is an int64 on the wire and in storage


@dataclass(frozen=True)
class VersionRef:
    """A version as named in a request: a number, ``latest`` or an alias."""

    model_id: str
    number: int | None = None
    alias: str | None = None  # "latest" or an alias name when number is None

    @property
    def is_latest(self) -> bool:
        """True for ``models/{m}/versions/latest``."""
        return self.alias == LATEST


@dataclass(frozen=True)
class FileRef:
    """A file of a version."""

    version: VersionRef
    file_id: str


def model_name(model_id: str) -> str:
    """``models/{model_id}``."""
    return f"models/{model_id}"


def version_name(model_id: str, number: int) -> str:
    """``models/{model_id}/versions/{number}``."""
    return f"models/{model_id}/versions/{number}"


def alias_name(model_id: str, alias: str) -> str:
    """``models/{model_id}/aliases/{alias}``."""
    return f"models/{model_id}/aliases/{alias}"


def file_name(model_id: str, number: int, file_id: str) -> str:
    """``models/{model_id}/versions/{number}/files/{file_id}``."""
    return f"models/{model_id}/versions/{number}/files/{file_id}"


def check_model_id(model_id: str, field: str = "model_id") -> str:
    """Validate a user-chosen model id."""
    if not model_id:
        raise InvalidArgument.field(field, "is required")
    if not MODEL_ID_RE.fullmatch(model_id):
        raise InvalidArgument.field(
            field, f"{model_id!r} must match [a-z][a-z0-9-]{{0,62}} (lowercase letter first)"
        )
    return model_id


def check_alias(alias: str, field: str) -> str:
    """Validate an alias name (like a model id, and not ``latest``)."""
    if not ALIAS_RE.fullmatch(alias):
        raise InvalidArgument.field(field, f"alias {alias!r} must match [a-z][a-z0-9-]{{0,62}}")
    if alias == LATEST:
        raise InvalidArgument.field(field, "'latest' is reserved and cannot be an alias")
    return alias


def check_request_id(request_id: str, field: str = "request_id") -> str:
    """Validate an idempotency key (empty means none)."""
    if request_id and not REQUEST_ID_RE.fullmatch(request_id):
        raise InvalidArgument.field(field, "must be 1-128 characters of [A-Za-z0-9_-]")
    return request_id


def check_file_id(file_id: str, field: str) -> str:
    """Validate a file id: a relative path with no traversal and no control characters."""
    if not file_id:
        raise InvalidArgument.field(field, "file id is required")
    if len(file_id) > MAX_FILE_ID_LENGTH:
        raise InvalidArgument.field(field, f"file id is longer than {MAX_FILE_ID_LENGTH}")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in file_id) or "\\" in file_id:
        raise InvalidArgument.field(field, "file id contains a control character or backslash")
    if file_id.startswith("/"):
        raise InvalidArgument.field(field, "file id must be a relative path")
    if any(seg in ("", ".", "..") for seg in file_id.split("/")):
        raise InvalidArgument.field(field, "file id has an empty, '.' or '..' segment")
    return file_id


def parse_model_name(name: str, field: str = "name") -> str:
    """``models/{m}`` -> ``m``."""
    parts = name.split("/")
    if len(parts) != 2 or parts[0] != "models":
        raise InvalidArgument.field(field, f"{name!r} is not a model name (models/{{model}})")
    return check_model_id(parts[1], field)


def parse_parent_for_versions(parent: str, field: str = "parent") -> str | None:
    """``models/{m}`` -> ``m``; ``models/-`` -> None (every model)."""
    if parent == f"models/{ALL_MODELS}":
        return None
    return parse_model_name(parent, field)


def _parse_version_segment(model_id: str, segment: str, field: str) -> VersionRef:
    if segment.isdigit() and segment.isascii():
        number = int(segment)
        if number < 1 or segment != str(number):
            raise InvalidArgument.field(field, f"version number {segment!r} is not valid")
        if number > MAX_VERSION_NUMBER:
            raise InvalidArgument.field(field, f"version number {segment!r} is out of range")
        return VersionRef(model_id, number=number)
    if segment == LATEST:
        return VersionRef(model_id, alias=LATEST)
    if ALIAS_RE.fullmatch(segment):
        return VersionRef(model_id, alias=segment)
    raise InvalidArgument.field(field, f"{segment!r} is not a version number, 'latest' or alias")


def parse_version_name(name: str, field: str = "name", *, numbered: bool = False) -> VersionRef:
    """``models/{m}/versions/{v}``; with ``numbered`` only a number is accepted for ``v``."""
    parts = name.split("/")
    if len(parts) != 4 or parts[0] != "models" or parts[2] != "versions":
        raise InvalidArgument.field(
            field, f"{name!r} is not a version name (models/{{model}}/versions/{{version}})"
        )
    ref = _parse_version_segment(check_model_id(parts[1], field), parts[3], field)
    if numbered and ref.number is None:
        raise InvalidArgument.field(field, "must name the version by number here")
    return ref


@dataclass(frozen=True)
class FilesParent:
    """Whose files a ListFiles lists: one version (``version``), every live version of a
    model (``models/{m}/versions/-``: ``model_id`` only) or of every model
    (``models/-/versions/-``: neither)."""

    model_id: str | None = None
    version: VersionRef | None = None


def parse_files_parent(name: str, field: str = "parent") -> FilesParent:
    """``models/{m}/versions/{v}``, ``models/{m}/versions/-`` or ``models/-/versions/-``."""
    parts = name.split("/")
    if len(parts) == 4 and parts[0] == "models" and parts[2] == "versions":
        if parts[1] == ALL_MODELS:
            if parts[3] != ALL_MODELS:
                raise InvalidArgument.field(
                    field, "with every model (models/-) the version must be - as well"
                )
            return FilesParent()
        if parts[3] == ALL_MODELS:
            return FilesParent(model_id=check_model_id(parts[1], field))
    return FilesParent(version=parse_version_name(name, field))


def parse_alias_name(name: str, field: str = "name") -> tuple[str, str]:
    """``models/{m}/aliases/{a}`` -> ``(m, a)``."""
    parts = name.split("/")
    if len(parts) != 4 or parts[0] != "models" or parts[2] != "aliases":
        raise InvalidArgument.field(
            field, f"{name!r} is not an alias name (models/{{model}}/aliases/{{alias}})"
        )
    return check_model_id(parts[1], field), check_alias(parts[3], field)


def parse_file_name(name: str, field: str = "name", *, numbered: bool = False) -> FileRef:
    """``models/{m}/versions/{v}/files/{path/of/file}``."""
    parts = name.split("/", 5)
    if len(parts) != 6 or parts[0] != "models" or parts[2] != "versions" or parts[4] != "files":
        raise InvalidArgument.field(
            field, f"{name!r} is not a file name (models/{{model}}/versions/{{version}}/files/…)"
        )
    version = parse_version_name("/".join(parts[:4]), field, numbered=numbered)
    return FileRef(version, check_file_id(parts[5], field))
