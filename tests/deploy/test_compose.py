"""deploy/compose.yaml, checked without a Docker engine: it parses, every service has an image,
dependencies wait on health checks or a finished migration, the registry's settings are ones
the server accepts and point at the services that hold its state, and only loopback ports are
published."""

from __future__ import annotations

import re
from functools import cache
from typing import Any
from urllib.parse import urlsplit

import yaml

from tests.deploy.settings import DEPLOY, OTHER_ENVIRONMENT, port_of, server_config

COMPOSE = DEPLOY / "compose.yaml"
_VARIABLE = re.compile(r"\$\{(\w+):-([^}]*)\}")


@cache
def compose() -> dict[str, Any]:
    """The file with ``${NAME:-default}`` replaced by the default (no .env: what ``up`` gets);
    any other interpolation is refused, so this stays what compose would read."""
    text = COMPOSE.read_text()
    assert "$" not in _VARIABLE.sub("", text), "only ${NAME:-default} interpolation is checked"
    document: dict[str, Any] = yaml.safe_load(_VARIABLE.sub(lambda m: m.group(2), text))
    return document


def services() -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = compose()["services"]
    return found


def test_services_volumes_and_dependencies_are_complete() -> None:
    every = services()
    assert set(every) == {"postgres", "gcs", "migrate", "registry"}
    named = set(compose()["volumes"])
    used = set()
    for name, service in every.items():
        image = service.get("image", "")
        assert re.fullmatch(r"[\w./-]+:[\w.-]+", image), f"{name}: image {image!r} has no tag"
        assert not image.endswith(":latest"), f"{name}: pin a version, not latest"
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            assert source in named, f"{name}: {source} is not a named volume"
            used.add(source)
        for dependency, condition in service.get("depends_on", {}).items():
            assert dependency in every, f"{name} depends on unknown {dependency}"
            if condition["condition"] == "service_healthy":
                assert "healthcheck" in every[dependency], f"{dependency} has no health check"
            else:
                assert condition["condition"] == "service_completed_successfully"
                assert every[dependency]["restart"] == "no", f"{dependency} is not one-shot"
    assert used == named, "every declared volume holds state of a service"
    registry = every["registry"]
    assert registry["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert every["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert registry["image"] == every["migrate"]["image"]
    assert registry["build"] == every["migrate"]["build"]
    build = registry["build"]
    assert (COMPOSE.parent / build["context"] / build["dockerfile"]).resolve() == (
        DEPLOY / "Dockerfile"
    )


def test_registry_and_migrate_settings_point_at_the_services() -> None:
    every = services()
    postgres = every["postgres"]["environment"]
    for name in ("migrate", "registry"):
        service = every[name]
        environ = {k: str(v) for k, v in service["environment"].items()}
        argv = [a for a in service.get("command", []) if a != "migrate"]
        config = server_config(argv, environ)
        database = urlsplit(config.database_url)
        assert database.scheme == "postgresql" and database.hostname == "postgres"
        assert database.username == postgres["POSTGRES_USER"]
        assert database.password == postgres["POSTGRES_PASSWORD"]
        assert database.path == f"/{postgres['POSTGRES_DB']}"
        bucket = urlsplit(config.blob_url)
        assert bucket.scheme == "gs"
        emulator = urlsplit(environ["STORAGE_EMULATOR_HOST"])
        gcs = " ".join(every["gcs"]["command"])
        assert emulator.hostname == "gcs" and f"-port {emulator.port}" in gcs
        assert f"mkdir -p /seed/{bucket.hostname} " in gcs, "the bucket is created at start"
        assert set(environ) & OTHER_ENVIRONMENT == {"STORAGE_EMULATOR_HOST", "GOOGLE_CLOUD_PROJECT"}
        assert service["read_only"] is True and service["tmpfs"] == ["/tmp"]
        assert service["cap_drop"] == ["ALL"]
    assert every["migrate"]["command"] == ["migrate"]


def test_registry_publishes_its_ports_on_loopback_only() -> None:
    registry = services()["registry"]
    environ = {k: str(v) for k, v in registry["environment"].items()}
    config = server_config([], environ)
    published = {}
    for mapping in registry["ports"]:
        host, host_port, container_port = mapping.split(":")
        assert host == "127.0.0.1", mapping
        published[int(container_port)] = int(host_port)
    listening = {
        port_of(config.listen),
        port_of(config.http_listen),
        port_of(config.metrics_listen),
    }
    assert set(published) == listening
    assert config.auth == "auto" and config.api_keys, "authentication on, as in production"
    assert config.migrate == "check"
    assert registry["healthcheck"]["test"] == ["CMD", "modelregistry-healthcheck"]
