"""Checks shared by the deploy tests: the server settings a manifest or compose file passes."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import fields
from pathlib import Path

import pytest

from modelregistry_server.config import Config, load_config

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
PREFIX = "MODELREGISTRY_"
# Names the deploy files set that are not server settings (read by libraries or clients).
OTHER_ENVIRONMENT = frozenset({"STORAGE_EMULATOR_HOST", "GOOGLE_CLOUD_PROJECT"})


def server_config(argv: Sequence[str], environ: Mapping[str, str]) -> Config:
    """``environ`` and ``argv`` as the server's own loader reads them; every MODELREGISTRY_*
    name must be a setting (the loader ignores unknown ones, so a typo would pass there)."""
    known = {f"{PREFIX}{f.name.upper()}" for f in fields(Config)}
    unknown = sorted(set(environ) - known - OTHER_ENVIRONMENT)
    assert not unknown, f"not server settings: {unknown}"
    try:
        return load_config(list(argv), dict(environ))
    except SystemExit as exc:  # argparse: an unknown flag or a value of the wrong type
        pytest.fail(f"the server refuses {list(argv)} / {dict(environ)}: exit {exc.code}")


def port_of(address: str) -> int:
    """The port of ``host:port``."""
    return int(address.rsplit(":", 1)[1])


def dockerfile_user() -> tuple[int, int]:
    """The final stage's ``USER uid:gid`` of deploy/Dockerfile."""
    users = re.findall(r"^USER\s+(\d+):(\d+)\s*$", (DEPLOY / "Dockerfile").read_text(), re.M)
    assert len(users) == 1, users
    return int(users[0][0]), int(users[0][1])
