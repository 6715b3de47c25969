"""Where the command's settings come from: flag > environment > profile > default.

Profiles live in a TOML file, ``$MODELREGISTRY_CONFIG`` or else
``$XDG_CONFIG_HOME/modelregistry/config.toml`` (``~/.config/modelregistry/config.toml``)::

    default_profile = "prod"            # used when no --profile / MODELREGISTRY_PROFILE

    [profiles.prod]
    address = "registry.example.org:50051"
    token_file = "~/.config/modelregistry/prod.token"   # or token = "…"
    ca_file = "/etc/ssl/registry-ca.crt"
    output = "json"

The profile is the one named by ``--profile``, else ``MODELREGISTRY_PROFILE``, else the file's
``default_profile``, else a profile called ``default`` if the file has one. Relative paths in
the file are relative to the file's directory.
"""

from __future__ import annotations

import os
import stat
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

__all__ = [
    "DEFAULT_ADDRESS",
    "ENVIRONMENT",
    "OUTPUTS",
    "ConfigError",
    "Settings",
    "config_path",
    "resolve",
]

DEFAULT_ADDRESS: Final = "127.0.0.1:50051"
DEFAULT_TIMEOUT: Final = 30.0
OUTPUTS: Final = ("table", "json", "yaml")
CONFIG_ENV: Final = "MODELREGISTRY_CONFIG"
PROFILE_ENV: Final = "MODELREGISTRY_PROFILE"

#: The environment variable of each setting (the TLS ones are the Python client's too).
ENVIRONMENT: Final[Mapping[str, str]] = {
    "address": "MODELREGISTRY_ADDRESS",
    "token": "MODELREGISTRY_TOKEN",
    "ca_file": "MODELREGISTRY_CA_FILE",
    "cert_file": "MODELREGISTRY_CLIENT_CERT_FILE",
    "key_file": "MODELREGISTRY_CLIENT_KEY_FILE",
    "output": "MODELREGISTRY_OUTPUT",
    "timeout": "MODELREGISTRY_TIMEOUT",
}
_PATHS: Final = frozenset({"ca_file", "cert_file", "key_file", "token_file"})
_PROFILE_KEYS: Final = frozenset({*ENVIRONMENT, "token_file", "tls"})


class ConfigError(Exception):
    """The configuration (file, profile, flag or variable) is unusable; exit status 2."""


@dataclass(frozen=True)
class Settings:
    """The resolved settings of one invocation; ``sources`` says where each came from
    (``flag``, ``env``, ``profile <name>``, ``default``)."""

    address: str = DEFAULT_ADDRESS
    token: str | None = None
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    tls: bool | None = None
    output: str = "table"
    timeout: float = DEFAULT_TIMEOUT
    profile: str | None = None
    config_file: str = ""
    sources: Mapping[str, str] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()  # for people, on stderr (a token file others can read)

    def redacted(self) -> dict[str, Any]:
        """The settings for display: the token itself is never shown."""
        return {
            "address": self.address,
            "token": None if self.token is None else "<set>",
            "ca_file": self.ca_file,
            "cert_file": self.cert_file,
            "key_file": self.key_file,
            "tls": self.tls,
            "output": self.output,
            "timeout": self.timeout,
            "profile": self.profile,
            "config_file": self.config_file,
            "sources": dict(self.sources),
        }


def config_path(environ: Mapping[str, str]) -> Path:
    """The configuration file's path (it need not exist)."""
    explicit = environ.get(CONFIG_ENV)
    if explicit:
        return Path(explicit).expanduser()
    base = environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "modelregistry" / "config.toml"


def _load(path: Path, *, required: bool) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        if required:
            raise ConfigError(f"configuration file {path} does not exist") from None
        return {}
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(f"configuration file {path} cannot be read: {e}") from None


def _profile(
    document: Mapping[str, Any], name: str | None, path: Path, *, named: bool
) -> tuple[str | None, dict[str, Any]]:
    profiles = document.get("profiles", {})
    if not isinstance(profiles, dict):
        raise ConfigError(f"{path}: 'profiles' must be a table of profiles")
    if name is None:
        default = document.get("default_profile")
        if default is not None:
            name, named = str(default), True
        elif "default" in profiles:
            name = "default"
        else:
            return None, {}
    if name not in profiles:
        if named:
            known = ", ".join(sorted(profiles)) or "none"
            raise ConfigError(f"profile {name!r} is not in {path} (profiles: {known})")
        return None, {}
    values = profiles[name]
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: profile {name!r} must be a table")
    unknown = sorted(set(values) - _PROFILE_KEYS)
    if unknown:
        raise ConfigError(
            f"{path}: profile {name!r} has unknown setting(s) {', '.join(unknown)} "
            f"(known: {', '.join(sorted(_PROFILE_KEYS))})"
        )
    resolved = dict(values)
    for key in _PATHS & set(resolved):
        resolved[key] = str(path.parent / Path(str(resolved[key])).expanduser())
    if "token_file" in resolved:
        token_path = Path(resolved["token_file"])
        try:
            resolved.setdefault("token", token_path.read_text().strip())
        except OSError as e:
            raise ConfigError(f"profile {name!r}: token_file {token_path}: {e.strerror}") from None
    return name, resolved


def _exposed(path: Path) -> str | None:
    """A warning if ``path`` (holding a token) can be read by the group or others."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return None
    if os.name != "posix" or not mode & (stat.S_IRWXG | stat.S_IRWXO):
        return None
    return f"{path} holds a token and others can read it (chmod 600 {path})"


def _timeout(value: Any, where: str) -> float:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"timeout from {where} must be a number of seconds") from None
    if not seconds > 0:
        raise ConfigError(f"timeout from {where} must be positive")
    return seconds


def resolve(flags: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> Settings:
    """The settings of one invocation from its ``flags`` (None: not given), the environment
    and the configuration file's profile."""
    env = os.environ if environ is None else environ
    path = config_path(env)
    document = _load(path, required=bool(env.get(CONFIG_ENV)))
    requested = flags.get("profile") or env.get(PROFILE_ENV) or None
    profile_name, profile = _profile(document, requested, path, named=requested is not None)
    warnings: list[str | None] = []
    if "token_file" in profile:
        warnings.append(_exposed(Path(profile.pop("token_file"))))
    elif "token" in profile:
        warnings.append(_exposed(path))

    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for key in ("address", "token", "ca_file", "cert_file", "key_file", "output", "timeout"):
        if flags.get(key) is not None:
            values[key], sources[key] = flags[key], "flag"
        elif env.get(ENVIRONMENT[key]):
            values[key], sources[key] = env[ENVIRONMENT[key]], "env"
        elif profile.get(key) is not None:
            values[key], sources[key] = profile[key], f"profile {profile_name}"
        else:
            sources[key] = "default"
    tls: bool | None = flags.get("tls")
    if tls is None and "tls" in profile:
        if not isinstance(profile["tls"], bool):
            raise ConfigError(f"profile {profile_name!r}: tls must be true or false")
        tls = profile["tls"]
    output = str(values.get("output", "table"))
    if output not in OUTPUTS:
        raise ConfigError(
            f"output {output!r} from {sources['output']} is not one of {', '.join(OUTPUTS)}"
        )
    timeout = (
        _timeout(values["timeout"], sources["timeout"]) if "timeout" in values else DEFAULT_TIMEOUT
    )
    return Settings(
        address=str(values.get("address", DEFAULT_ADDRESS)),
        token=None if values.get("token") is None else str(values["token"]),
        ca_file=values.get("ca_file"),
        cert_file=values.get("cert_file"),
        key_file=values.get("key_file"),
        tls=tls,
        output=output,
        timeout=timeout,
        profile=profile_name,
        config_file=str(path),
        sources=sources,
        warnings=tuple(w for w in warnings if w is not None),
    )
