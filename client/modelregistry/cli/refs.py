"""How the command names a version: ``MODEL`` (its ``latest``), ``MODEL:N``, ``MODEL:latest``,
``MODEL@ALIAS`` or a full name ``models/M/versions/V``. In a list of versions (``versions
compare``) a bare ``N``, ``:N`` or ``@ALIAS`` takes the model of the one before it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import click

from modelregistry.client import LATEST

__all__ = ["VERSION", "VersionSpec", "parse_version", "parse_versions"]


@dataclass(frozen=True)
class VersionSpec:
    """A model and a version reference: a number, ``latest`` or an alias name."""

    model: str
    version: int | str = LATEST

    def __str__(self) -> str:
        if isinstance(self.version, int) or self.version == LATEST:
            return f"{self.model}:{self.version}"
        return f"{self.model}@{self.version}"


def _version(text: str, spec: str) -> int | str:
    if text.isdigit():
        return int(text)
    if text in (LATEST, "-"):
        return text
    raise click.BadParameter(f"{spec!r}: the version after ':' is a number, 'latest' or '-'")


def parse_version(spec: str, model: str | None = None) -> VersionSpec:
    """Parse one version reference (``model``: the model of a bare ``N`` or ``@ALIAS``)."""
    if spec.startswith("models/"):
        parts = spec.split("/")
        if len(parts) == 2:
            return VersionSpec(parts[1])
        if len(parts) == 4 and parts[2] == "versions" and parts[1] and parts[3]:
            version = parts[3]
            return VersionSpec(parts[1], int(version) if version.isdigit() else version)
        raise click.BadParameter(f"{spec!r} is not models/MODEL/versions/VERSION")
    if spec == "-":
        return VersionSpec("-", "-")
    if model is not None and (spec.isdigit() or spec[:1] in (":", "@")):
        spec = model + (spec if spec[:1] in (":", "@") else f":{spec}")
    name, at, alias = spec.partition("@")
    if at:
        if not name or not alias:
            raise click.BadParameter(f"{spec!r}: write MODEL@ALIAS")
        return VersionSpec(name, alias)
    name, colon, version = spec.partition(":")
    if not name:
        raise click.BadParameter(f"{spec!r}: a version reference starts with the model")
    return VersionSpec(name, _version(version, spec) if colon else LATEST)


def parse_versions(specs: tuple[str, ...]) -> list[VersionSpec]:
    """Parse several references; each bare one takes the model of the one before it."""
    out: list[VersionSpec] = []
    for spec in specs:
        out.append(parse_version(spec, out[-1].model if out else None))
    return out


def _version_spec(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    """Converts version arguments and options (one or several) to :class:`VersionSpec`."""
    try:
        if isinstance(value, tuple):
            return tuple(parse_version(str(v)) for v in value)
        return None if value is None else parse_version(str(value))
    except click.BadParameter as e:
        raise click.BadParameter(e.message, ctx=ctx, param=param) from None


#: Keyword arguments of a version argument or option: ``@click.argument("version", **VERSION)``.
VERSION: dict[str, Any] = {"callback": _version_spec, "metavar": "MODEL[:N|@ALIAS]"}
