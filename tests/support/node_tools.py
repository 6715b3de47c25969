"""The npm tools of package.json (buf, and node with @grpc/grpc-js for the interop test).

``make check`` and ``make test-fast`` install them into node_modules. When they (or node) are
missing the caller is skipped, unless ``MODELREGISTRY_REQUIRE_NODE=1`` (CI), where it fails.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NODE_MODULES = ROOT / "node_modules"
REQUIRE_ENV = "MODELREGISTRY_REQUIRE_NODE"


def _missing(message: str) -> None:
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{message}, but {REQUIRE_ENV}=1", pytrace=False)
    pytest.skip(f"{message} (run `make node-tools`)")


def require_buf() -> Path:
    """node_modules/.bin/buf, or skip (fail in CI)."""
    buf = NODE_MODULES / ".bin" / "buf"
    if not buf.exists():
        _missing("buf is not installed in node_modules")
    return buf


def require_node(*packages: str) -> Path:
    """``node``, with ``packages`` installed in node_modules; or skip (fail in CI)."""
    node = shutil.which("node")
    if node is None:
        _missing("node is not on PATH")
    for package in packages:
        if not (NODE_MODULES / package / "package.json").exists():
            _missing(f"{package} is not installed in node_modules")
    return Path(str(node))
