"""deploy/kubernetes, checked without a cluster: rendered (tests/deploy/kustomize.py, compared
with ``kubectl kustomize`` where kubectl is installed), validated against the Kubernetes
schemas kubernetes-validate bundles (strict: unknown fields fail) and a vendored ServiceMonitor
schema, and held to the rules deploy/README.md states: locked-down pods, gRPC health probes,
selectors that reach the pods, server settings the server's own loader accepts, limits sized
for the settings."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from modelregistry_server.config import Config
from tests.deploy import kustomize
from tests.deploy.settings import DEPLOY, dockerfile_user, port_of, server_config

KUBERNETES = DEPLOY / "kubernetes"
TREES = {"base": KUBERNETES / "base", "production": KUBERNETES / "overlays" / "production"}
# The oldest release with GA gRPC probes, and the newest kubernetes-validate bundles.
VERSIONS = ("1.27", "1.37")
MiB = 1024 * 1024
# Bench (README "Performance", deploy/README.md "Sizing"): idle RSS of one process, and what
# one download being read steadily holds at most.
IDLE_PROCESS_BYTES = 80 * MiB
DOWNLOAD_STREAM_BYTES = 4 * MiB
DATABASE_URL = "postgresql://registry:secret@db.example:5432/registry"

Manifest = dict[str, Any]


@cache
def rendered(tree: str) -> tuple[Manifest, ...]:
    return tuple(kustomize.render(TREES[tree]))


@pytest.fixture(params=sorted(TREES))
def tree(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def one(resources: tuple[Manifest, ...], kind: str, name: str | None = None) -> Manifest:
    found = [r for r in resources if r["kind"] == kind and name in (None, r["metadata"]["name"])]
    assert len(found) == 1, f"{kind} {name or ''}: {len(found)} found"
    return found[0]


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def quantity(text: str) -> int:
    units = {"Ki": 1024, "Mi": MiB, "Gi": 1024 * MiB}
    match = re.fullmatch(r"(\d+)(Ki|Mi|Gi)?", text)
    assert match, text
    return int(match[1]) * units.get(match[2] or "", 1)


def test_every_kustomization_is_rendered_and_uses_only_what_the_renderer_implements() -> None:
    directories = {p.parent for p in KUBERNETES.rglob("kustomization.yaml")}
    assert directories == set(TREES.values())
    for directory in directories:
        kustomize.load_kustomization(directory)  # raises on any other feature


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl (with kustomize) missing")
def test_renders_as_kubectl_kustomize_does(tree: str) -> None:
    out = subprocess.run(
        ["kubectl", "kustomize", str(TREES[tree])],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    theirs = {(r["kind"], r["metadata"]["name"]): r for r in yaml.safe_load_all(out)}
    ours = {(r["kind"], r["metadata"]["name"]): r for r in rendered(tree)}
    assert ours == theirs


def test_resources_validate_against_the_kubernetes_schemas(tree: str) -> None:
    schema = json.loads((Path(__file__).parent / "servicemonitor.schema.json").read_text())
    kinds = set()
    for resource in rendered(tree):
        kinds.add(resource["kind"])
        if resource["apiVersion"] == "monitoring.coreos.com/v1":
            jsonschema.Draft202012Validator(schema).validate(resource)
            continue
        for version in VERSIONS:
            kubernetes_validate.validate(resource, version, strict=True)
    assert kinds == {
        "ConfigMap",
        "Deployment",
        "Job",
        "NetworkPolicy",
        "PodDisruptionBudget",
        "Service",
        "ServiceAccount",
        "ServiceMonitor",
    }


def test_pods_run_unprivileged_on_a_read_only_root(tree: str) -> None:
    uid, gid = dockerfile_user()
    resources = rendered(tree)
    assert one(resources, "ServiceAccount")["automountServiceAccountToken"] is False
    for resource, pod in kustomize.pod_specs(list(resources)):
        where = f"{resource['kind']} {resource['metadata']['name']}"
        context = pod["securityContext"]
        assert context["runAsNonRoot"] is True, where
        assert (context["runAsUser"], context["runAsGroup"]) == (uid, gid), where
        assert context["seccompProfile"] == {"type": "RuntimeDefault"}, where
        assert pod["automountServiceAccountToken"] is False, where
        assert all(set(v) & {"emptyDir", "secret"} for v in pod["volumes"]), where
        for container in pod["containers"]:
            security = container["securityContext"]
            assert security["allowPrivilegeEscalation"] is False, where
            assert security["readOnlyRootFilesystem"] is True, where
            assert security["runAsNonRoot"] is True, where
            assert security["capabilities"] == {"drop": ["ALL"]}, where
            assert security["seccompProfile"] == {"type": "RuntimeDefault"}, where
            mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
            assert "/tmp" in mounts, f"{where}: /tmp is the only writable path it needs"
            assert {"cpu", "memory"} <= set(container["resources"]["requests"]), where
            assert "memory" in container["resources"]["limits"], where


def _server(resources: tuple[Manifest, ...]) -> tuple[Manifest, Manifest, Config]:
    """The registry container, its pod spec and the Config it starts with."""
    deployment = one(resources, "Deployment", "modelregistry")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    return container, pod, server_config(container.get("args", []), _environ(resources, container))


def _environ(resources: tuple[Manifest, ...], container: Manifest) -> dict[str, str]:
    environ: dict[str, str] = {}
    for source in container.get("envFrom", []):
        environ |= one(resources, "ConfigMap", source["configMapRef"]["name"])["data"]
    for variable in container.get("env", []):
        if "value" in variable:
            environ[variable["name"]] = variable["value"]
        else:
            secret = variable["valueFrom"]["secretKeyRef"]
            assert (secret["name"], secret["key"]) == ("modelregistry-database", "url")
            environ[variable["name"]] = DATABASE_URL
    return environ


def test_server_settings_are_ones_the_server_accepts(tree: str) -> None:
    resources = rendered(tree)
    container, _pod, config = _server(resources)
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert port_of(config.listen) == ports["grpc"]
    assert port_of(config.metrics_listen) == ports["metrics"]
    assert config.database_url == DATABASE_URL
    assert config.blob_url.startswith("gs://"), "replicas share a bucket, never a local directory"
    assert config.migrate == "check"
    mounts = [m["mountPath"] for m in container["volumeMounts"]]
    for path in (config.tls_cert, config.tls_key, config.tls_client_ca):
        assert not path or any(path.startswith(f"{m}/") for m in mounts), path
    # The migration Job: the same image and database, the migrate command.
    job = one(resources, "Job", "modelregistry-migrate")
    (migrate,) = job["spec"]["template"]["spec"]["containers"]
    assert migrate["args"] == ["migrate"]
    assert migrate["image"] == container["image"]
    assert migrate["env"] == [e for e in container["env"] if e["name"].endswith("DATABASE_URL")]


def test_memory_limit_holds_every_process_at_its_stream_limit(tree: str) -> None:
    container, _, config = _server(rendered(tree))
    workers = config.workers
    assert workers >= 1, "set the workers explicitly: the default ignores a CPU limit"
    need = workers * (IDLE_PROCESS_BYTES + config.max_download_streams * DOWNLOAD_STREAM_BYTES)
    assert need <= quantity(container["resources"]["limits"]["memory"])
    assert workers <= int(container["resources"]["limits"]["cpu"]), "one core per process"


def test_probes_ask_the_grpc_health_service(tree: str) -> None:
    from tests.deploy.test_healthcheck import healthcheck_module

    container, _pod, config = _server(rendered(tree))
    probes = [container[p] for p in ("startupProbe", "readinessProbe", "livenessProbe")]
    if not config.tls_cert:
        assert all(p["grpc"] == {"port": port_of(config.listen)} for p in probes)
        return
    # Kubernetes' gRPC probe speaks plaintext only: over TLS the health check is exec'd.
    mounts = [m["mountPath"] for m in container["volumeMounts"]]
    for probe in probes:
        command = probe["exec"]["command"]
        assert command[0] == "modelregistry-healthcheck"
        args = healthcheck_module().parser().parse_args(command[1:])
        assert args.tls_ca and any(args.tls_ca.startswith(f"{m}/") for m in mounts)
        assert port_of(args.address) == port_of(config.listen)


def test_services_policies_and_monitor_reach_the_server_pods(tree: str) -> None:
    resources = rendered(tree)
    container, _, config = _server(resources)
    deployment = one(resources, "Deployment", "modelregistry")
    pods = deployment["spec"]["template"]["metadata"]["labels"]
    assert selects(deployment["spec"]["selector"]["matchLabels"], pods)
    job_pods = one(resources, "Job")["spec"]["template"]["metadata"]["labels"]
    assert not selects(deployment["spec"]["selector"]["matchLabels"], job_pods)
    port_names = {p["name"] for p in container["ports"]}
    services = [r for r in resources if r["kind"] == "Service"]
    for service in services:
        assert selects(service["spec"]["selector"], pods)
        assert not selects(service["spec"]["selector"], job_pods)
        assert {p["targetPort"] for p in service["spec"]["ports"]} <= port_names
    assert [s["spec"].get("clusterIP") for s in services].count("None") == 1, "one headless"
    budget = one(resources, "PodDisruptionBudget")
    assert selects(budget["spec"]["selector"]["matchLabels"], pods)
    replicas = deployment["spec"]["replicas"]
    assert budget["spec"].get("minAvailable", 0) < replicas, "a drain must be able to proceed"
    policy = one(resources, "NetworkPolicy")
    assert selects(policy["spec"]["podSelector"]["matchLabels"], pods)
    allowed_in = {p["port"] for rule in policy["spec"]["ingress"] for p in rule["ports"]}
    assert allowed_in == {port_of(config.listen), port_of(config.metrics_listen)}
    allowed_out = {p["port"] for rule in policy["spec"]["egress"] for p in rule["ports"]}
    assert {53, 5432, 443} <= allowed_out
    monitor = one(resources, "ServiceMonitor")
    scraped = [
        s
        for s in services
        if selects(monitor["spec"]["selector"]["matchLabels"], s["metadata"]["labels"])
    ]
    (endpoint,) = monitor["spec"]["endpoints"]
    exposing = [s for s in scraped if endpoint["port"] in {p["name"] for p in s["spec"]["ports"]}]
    assert len(exposing) == 1, "each pod is scraped through exactly one Service"


def test_production_overlay_runs_replicas_with_tls_and_workload_identity() -> None:
    resources = rendered("production")
    assert {r["metadata"]["namespace"] for r in resources} == {"modelregistry"}
    _container, pod, config = _server(resources)
    assert one(resources, "Deployment")["spec"]["replicas"] >= 3
    assert config.tls_cert and config.tls_key
    secrets = {v["secret"]["secretName"] for v in pod["volumes"] if "secret" in v}
    assert secrets == {"modelregistry-tls"}
    annotations = one(resources, "ServiceAccount")["metadata"]["annotations"]
    assert "iam.gke.io/gcp-service-account" in annotations
    images = {c["image"] for _, p in kustomize.pod_specs(list(resources)) for c in p["containers"]}
    assert len(images) == 1 and images != {"modelregistry:0.1.0"}
