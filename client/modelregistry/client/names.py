"""Resource names of the registry: build them and take them apart.

``models/{model}``, ``models/{model}/versions/{version}``,
``models/{model}/versions/{version}/files/{file}`` and ``models/{model}/aliases/{alias}``.
Model ids and aliases match ``[a-z][a-z0-9-]{0,62}`` (an alias is never ``latest``); a version
segment is a number (1, 2, …), ``latest`` or an alias; a file id has 1-512 characters in
``/``-separated segments, none empty, ``.`` or ``..``, and no control characters. Builders and
parsers raise :class:`ValueError` for anything else.

The ``*_ref`` functions build names from what a caller wrote (an id or already a full name)
without checking them: :class:`~modelregistry.client.RegistryClient` uses them so that the
server validates every name and answers ``INVALID_ARGUMENT`` naming the field.
"""

from __future__ import annotations

import re
from typing import NamedTuple

__all__ = [
    "DEFAULT_FILE_ID",
    "LATEST",
    "AliasName",
    "FileName",
    "ModelName",
    "VersionName",
    "alias_name",
    "alias_ref",
    "file_name",
    "file_ref",
    "model_id_of",
    "model_name",
    "model_ref",
    "parse_alias_name",
    "parse_file_name",
    "parse_model_name",
    "parse_version_name",
    "version_name",
    "version_ref",
]

#: The version segment that resolves to the highest READY, live, unexpired version.
LATEST = "latest"
#: The file id used when none is given.
DEFAULT_FILE_ID = "payload"

_ID = re.compile(r"[a-z][a-z0-9-]{0,62}")
_NUMBER = re.compile(r"[1-9][0-9]*")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_MAX_FILE_ID = 512


class ModelName(NamedTuple):
    """Parts of ``models/{model}``."""

    model_id: str

    @property
    def name(self) -> str:
        """The resource name."""
        return model_name(self.model_id)

    def __str__(self) -> str:
        return self.name


class VersionName(NamedTuple):
    """Parts of ``models/{model}/versions/{version}``; ``version`` as written in the name."""

    model_id: str
    version: str

    @property
    def number(self) -> int | None:
        """The version number, or None when the segment is ``latest`` or an alias."""
        return int(self.version) if _NUMBER.fullmatch(self.version) else None

    @property
    def name(self) -> str:
        """The resource name."""
        return version_name(self.model_id, self.version)

    def __str__(self) -> str:
        return self.name


class FileName(NamedTuple):
    """Parts of ``models/{model}/versions/{version}/files/{file}``."""

    model_id: str
    version: str
    file_id: str

    @property
    def name(self) -> str:
        """The resource name."""
        return file_name(self.model_id, self.version, self.file_id)

    def __str__(self) -> str:
        return self.name


class AliasName(NamedTuple):
    """Parts of ``models/{model}/aliases/{alias}``."""

    model_id: str
    alias: str

    @property
    def name(self) -> str:
        """The resource name."""
        return alias_name(self.model_id, self.alias)

    def __str__(self) -> str:
        return self.name


def _check_model_id(model_id: str) -> str:
    if not isinstance(model_id, str) or not _ID.fullmatch(model_id):
        raise ValueError(f"invalid model id {model_id!r}: expected [a-z][a-z0-9-]{{0,62}}")
    return model_id


def _check_alias(alias: str) -> str:
    if not isinstance(alias, str) or not _ID.fullmatch(alias) or alias == LATEST:
        raise ValueError(f"invalid alias {alias!r}: expected [a-z][a-z0-9-]{{0,62}}, not 'latest'")
    return alias


def _check_version(version: int | str) -> str:
    if isinstance(version, bool):
        raise ValueError(f"invalid version {version!r}")
    if isinstance(version, int):
        if version < 1:
            raise ValueError(f"invalid version number {version}: numbers start at 1")
        return str(version)
    if isinstance(version, str) and (
        _NUMBER.fullmatch(version) or version == LATEST or _ID.fullmatch(version)
    ):
        return version
    raise ValueError(f"invalid version {version!r}: expected a number, 'latest' or an alias")


def _check_file_id(file_id: str) -> str:
    if (
        not isinstance(file_id, str)
        or not 1 <= len(file_id) <= _MAX_FILE_ID
        or _CONTROL.search(file_id)
        or any(seg in ("", ".", "..") for seg in file_id.split("/"))
    ):
        raise ValueError(
            f"invalid file id {file_id!r}: 1-{_MAX_FILE_ID} characters in '/'-separated "
            "segments, none empty, '.' or '..', no control characters"
        )
    return file_id


def model_name(model_id: str) -> str:
    """``models/{model_id}``."""
    return f"models/{_check_model_id(model_id)}"


def version_name(model_id: str, version: int | str) -> str:
    """``models/{model_id}/versions/{version}``; ``version`` is a number, ``latest`` or alias."""
    return f"{model_name(model_id)}/versions/{_check_version(version)}"


def file_name(model_id: str, version: int | str, file_id: str = DEFAULT_FILE_ID) -> str:
    """``models/{model_id}/versions/{version}/files/{file_id}``."""
    return f"{version_name(model_id, version)}/files/{_check_file_id(file_id)}"


def alias_name(model_id: str, alias: str) -> str:
    """``models/{model_id}/aliases/{alias}``."""
    return f"{model_name(model_id)}/aliases/{_check_alias(alias)}"


def _split(name: str, kind: str, min_parts: int) -> list[str]:
    if not isinstance(name, str):
        raise ValueError(f"invalid {kind} name {name!r}")
    parts = name.split("/", min_parts - 1) if kind == "file" else name.split("/")
    if len(parts) != min_parts or parts[0] != "models":
        raise ValueError(f"invalid {kind} name {name!r}")
    return parts


def parse_model_name(name: str) -> ModelName:
    """Split ``models/{model}``."""
    parts = _split(name, "model", 2)
    try:
        return ModelName(_check_model_id(parts[1]))
    except ValueError as e:
        raise ValueError(f"invalid model name {name!r}: {e}") from None


def parse_version_name(name: str) -> VersionName:
    """Split ``models/{model}/versions/{version}``."""
    parts = _split(name, "version", 4)
    if parts[2] != "versions":
        raise ValueError(f"invalid version name {name!r}")
    try:
        return VersionName(_check_model_id(parts[1]), _check_version(parts[3]))
    except ValueError as e:
        raise ValueError(f"invalid version name {name!r}: {e}") from None


def parse_file_name(name: str) -> FileName:
    """Split ``models/{model}/versions/{version}/files/{file}`` (the file id may hold ``/``)."""
    parts = _split(name, "file", 6)
    if parts[2] != "versions" or parts[4] != "files":
        raise ValueError(f"invalid file name {name!r}")
    try:
        return FileName(
            _check_model_id(parts[1]), _check_version(parts[3]), _check_file_id(parts[5])
        )
    except ValueError as e:
        raise ValueError(f"invalid file name {name!r}: {e}") from None


def parse_alias_name(name: str) -> AliasName:
    """Split ``models/{model}/aliases/{alias}``."""
    parts = _split(name, "alias", 4)
    if parts[2] != "aliases":
        raise ValueError(f"invalid alias name {name!r}")
    try:
        return AliasName(_check_model_id(parts[1]), _check_alias(parts[3]))
    except ValueError as e:
        raise ValueError(f"invalid alias name {name!r}: {e}") from None


# -- unchecked references ---------------------------------------------------------------------


def model_ref(model: str) -> str:
    """``models/{model}`` from a model id or a model name (unchecked)."""
    return model if model.startswith("models/") else f"models/{model}"


def model_id_of(model: str) -> str:
    """The model id in a model id or a model name (unchecked)."""
    return model.removeprefix("models/")


def version_ref(model: str, version: int | str) -> str:
    """A version name from a model id or name and a number, ``latest``, an alias or a full
    version name (then ``model`` is ignored); unchecked apart from the type of ``version``."""
    if isinstance(version, str) and version.startswith("models/"):
        return version
    if isinstance(version, bool) or not isinstance(version, int | str):
        raise TypeError(f"version must be an int or a str, not {type(version).__name__}")
    return f"{model_ref(model)}/versions/{version}"


def file_ref(model: str, version: int | str, file_id: str = DEFAULT_FILE_ID) -> str:
    """A file name from a model, a version as in :func:`version_ref` and a file id (unchecked)."""
    return f"{version_ref(model, version)}/files/{file_id}"


def alias_ref(model: str, alias: str) -> str:
    """An alias name from a model id or name and an alias or a full alias name (unchecked)."""
    return alias if alias.startswith("models/") else f"{model_ref(model)}/aliases/{alias}"
