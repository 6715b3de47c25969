"""deploy/Dockerfile without a Docker engine: its instructions are read and held to the rules
deploy/README.md states, and its one build step, deploy/build-venv.sh, runs here in a fresh
directory; the server and health check it installs then serve and answer from that venv.

What this does not prove: the base image, the user and directory set-up of the final stage,
and the dependency resolution from the index (the build test installs our two wheels with
--no-deps and lends the venv this environment's dependencies, to stay offline and fast)."""

from __future__ import annotations

import fnmatch
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from functools import cache
from pathlib import Path

import httpx
import pytest

from tests.deploy.settings import DEPLOY, ROOT, port_of, server_config
from tests.support.server_process import ServerProcess

BUILD_TIMEOUT_S = 120


@cache
def instructions() -> list[tuple[int, str, str]]:
    """(stage, INSTRUCTION, arguments) of deploy/Dockerfile, continuation lines joined."""
    text = re.sub(r"\\\n", " ", (DEPLOY / "Dockerfile").read_text())
    out: list[tuple[int, str, str]] = []
    stage = -1
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        stage += word.upper() == "FROM"
        out.append((stage, word.upper(), " ".join(rest.split())))
    return out


def final(word: str) -> list[str]:
    last = instructions()[-1][0]
    return [rest for stage, w, rest in instructions() if stage == last and w == word]


def _ignored(path: str, patterns: list[str]) -> bool:
    parts = path.split("/")
    for pattern in patterns:
        anywhere = pattern.startswith("**/")
        pattern = pattern.removeprefix("**/").rstrip("/")
        for start in range(len(parts) if anywhere else 1):
            for end in range(start + 1, len(parts) + 1):
                if fnmatch.fnmatchcase("/".join(parts[start:end]), pattern):
                    return True
    return False


def test_two_stages_and_the_final_one_holds_the_venv_only() -> None:
    stages = [rest for _, word, rest in instructions() if word == "FROM"]
    assert stages == ["${PYTHON_IMAGE} AS builder", "${PYTHON_IMAGE}"]
    base, extras = [rest for _, word, rest in instructions() if word == "ARG"]
    assert extras == 'EXTRAS=""'
    assert re.fullmatch(r"PYTHON_IMAGE=python:3\.11-slim(-\w+)?", base)
    builder_runs = [rest for stage, word, rest in instructions() if stage == 0 and word == "RUN"]
    assert builder_runs == ["sh deploy/build-venv.sh /opt/venv"]
    assert final("COPY") == ["--from=builder /opt/venv /opt/venv"]
    assert not any(re.search(r"\b(pip|apt-get|apk)\b", run) for run in final("RUN"))
    assert final("USER") == ["10001:10001"], "a fixed numeric uid (runAsNonRoot can check it)"
    assert final("ENTRYPOINT") == ['["modelregistry-server"]']
    assert final("HEALTHCHECK")[0].endswith('CMD ["modelregistry-healthcheck"]')


def test_defaults_are_server_settings_and_state_lives_in_volumes() -> None:
    environ = {}
    for rest in final("ENV"):
        environ |= dict(re.findall(r"(\w+)=(\S+)", rest))
    settings = {k: v for k, v in environ.items() if k.startswith("MODELREGISTRY_")}
    config = server_config([], settings)
    volumes = set(re.findall(r'"([^"]+)"', final("VOLUME")[0]))
    assert volumes == {"/var/lib/modelregistry", "/tmp"}
    database = config.database_url.removeprefix("sqlite:///")
    blobs = config.blob_url.removeprefix("file://")
    assert database.startswith("/var/lib/modelregistry/") and blobs.startswith("/var/lib/")
    exposed = {int(p) for rest in final("EXPOSE") for p in rest.split()}
    assert exposed == {port_of(config.listen), 9090}


def test_build_context_keeps_what_the_builder_copies() -> None:
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert not any(p.startswith("!") for p in patterns), "negation is not checked here"
    sources = []
    for stage, word, rest in instructions():
        if stage == 0 and word == "COPY":
            sources.extend(rest.split()[:-1])
    tracked = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", *sources],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    for source in sources:
        assert (ROOT / source).exists(), source
    assert tracked and not [path for path in tracked if _ignored(path, patterns)]
    assert _ignored(".venv/bin/python", patterns) and _ignored("var/registry.db", patterns)


def _builder_context(into: Path) -> Path:
    """The files the builder stage COPYs, laid out as in its WORKDIR (tracked files only, so a
    stale build/ or egg-info of this checkout cannot leak in). Each COPY keeps the repository
    layout (``client/ client/``, ``a/b.sh a/``), which is asserted."""
    for stage, word, rest in instructions():
        if stage != 0 or word != "COPY":
            continue
        *sources, target = rest.split()
        for source in sources:
            parent = source if source.endswith("/") else f"{Path(source).parent}/"
            assert target == parent.removeprefix("./") or (parent == "./" and target == "./")
        tracked = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard", *sources],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        for path in tracked:
            (into / path).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / path, into / path)
    return into


@pytest.mark.slow
def test_build_venv_installs_a_server_that_serves(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    context = _builder_context(tmp_path / "src")
    # Nothing of this checkout on the path: the venv must run from its own wheels.
    environ = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    offline = {
        "PYTHON": sys.executable,
        "PIP_NO_DEPS": "1",
        "PIP_NO_INDEX": "1",
        "PIP_NO_BUILD_ISOLATION": "0",
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    }
    subprocess.run(
        ["sh", "deploy/build-venv.sh", str(venv)],
        env={**environ, **offline},
        check=True,
        timeout=BUILD_TIMEOUT_S,
        cwd=context,
    )
    site = (
        venv / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
    )
    installed = {p.name.split("-")[0] for p in site.glob("*.dist-info")}
    assert installed == {"modelregistry_client", "modelregistry_server"}, "no pip, no setuptools"
    # The dependencies come from this environment, after the venv's own packages.
    paths = sysconfig.get_paths()
    (site / "_test_dependencies.pth").write_text(f"{paths['purelib']}\n{paths['platlib']}\n")
    where = subprocess.run(
        [
            venv / "bin" / "python",
            "-c",
            "import modelregistry_server; print(modelregistry_server.__file__)",
        ],
        capture_output=True,
        text=True,
        check=True,
        env=environ,
    ).stdout
    assert Path(where.strip()).is_relative_to(site), "the server runs from the wheel"

    database = f"sqlite:///{tmp_path / 'registry.db'}"
    migrate = subprocess.run(
        [venv / "bin" / "modelregistry-server", "migrate", "--database-url", database],
        capture_output=True,
        text=True,
        timeout=60,
        env=environ,
    )
    assert migrate.returncode == 0, migrate.stderr
    command = [
        str(venv / "bin" / "modelregistry-server"),
        "--listen=127.0.0.1:0",
        "--http-listen=127.0.0.1:0",
        f"--database-url={database}",
        f"--blob-url={(tmp_path / 'blobs').as_uri()}",
        "--migrate=check",
        "--workers=1",
        "--maintenance-interval-seconds=0",
        "--shutdown-grace-seconds=1",
    ]
    log = tmp_path / "server.log"
    with ServerProcess("", "", log, command=command, env=environ) as server:
        check = subprocess.run(
            [venv / "bin" / "modelregistry-healthcheck", "--address", server.address],
            capture_output=True,
            text=True,
            timeout=30,
            env=environ,
        )
        assert check.returncode == 0, check.stderr
        page = httpx.get(f"{server.web_url}/models", timeout=10)  # templates from the wheel
        assert page.status_code == 200 and "<html" in page.text.lower()
    assert "Traceback" not in log.read_text()
